# bash completion for vmsan.  It keeps no list of its own: the words come
# from `vmsan --complete` (commands, global flags) and from
# `vmsan COMMAND --complete` (that command's flags and, where they apply,
# VM ids).
_vmsan() {
	local cur=${COMP_WORDS[COMP_CWORD]} words
	if [ "$COMP_CWORD" -eq 1 ]; then
		words=$(vmsan --complete 2>/dev/null)
	else
		words=$(vmsan "${COMP_WORDS[1]}" --complete 2>/dev/null)
	fi
	local IFS=$'\n'
	# shellcheck disable=SC2207
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _vmsan vmsan
