# fish completion for vmsan: the words come from the commands themselves.
function __vmsan_complete
    set -l tokens (commandline -opc)
    if test (count $tokens) -le 1
        vmsan --complete 2>/dev/null
    else
        vmsan $tokens[2] --complete 2>/dev/null
    end
end
complete -c vmsan -f -a '(__vmsan_complete)'
