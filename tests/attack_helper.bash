# Attacks on the privilege boundary, run as the attacker would: an
# ordinary user in the vmsan group, through the sudoers rule install.sh
# writes for an installed prefix.  attack_up (from setup_file) installs
# once and makes the users; attack_down undoes all of it.
#
#   ATK  the attacker (in the group)     VIC  another user (in the group)
#   P    the installed prefix            FCH, NETH  the installed root helpers

attack_up() {
	TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
	export TOP
	local s=$$
	export ATK=vmsatk$s VIC=vmsvic$s AGRP=vmsag$s P=/opt/vmsan-atk$s
	export SUDOERS=/etc/sudoers.d/vmsan-atk$s
	export FCH=$P/libexec/vmsan/vmsan-fc NETH=$P/libexec/vmsan/vmsan-net
	"$TOP/install.sh" --no-deps --no-demo --prefix "$P" --sudoers "$SUDOERS" --group "$AGRP" >/dev/null 2>&1
	useradd -m -G "$AGRP" "$ATK"
	useradd -m -G "$AGRP" "$VIC"
	# root's own secrets, for the attacker to aim at
	export SECRET_DIR=/var/lib/vmsan-atk$s
	mkdir -m 700 "$SECRET_DIR"
	echo "root's secret" >"$SECRET_DIR/secret"
	chmod 600 "$SECRET_DIR/secret"
	# the root configuration the installed helpers read; saved, and put
	# back by attack_down
	export ROOTCONF=/etc/vmsan/root.conf
	if [ -e "$ROOTCONF" ]; then cp -a "$ROOTCONF" "$BATS_FILE_TMPDIR/root.conf.saved"; fi
}

attack_down() {
	[ -n "${P:-}" ] || return 0
	local u id
	for u in "$ATK" "$VIC"; do
		for id in "/home/$u/.vmsan/vms"/vm-*.json; do
			[ -e "$id" ] || continue
			id=${id##*/}
			as_user "$u" vmsan rm -f "${id%.json}" >/dev/null 2>&1 || true
		done
		grep -lx "$(id -u "$u" 2>/dev/null)" /run/vmsan/ids/* 2>/dev/null | while read -r id; do
			"$TOP/libexec/vmsan-fc" cleanup <<<"{\"id\":\"${id##*/}\"}" >/dev/null 2>&1 || true
		done
	done
	"$TOP/install.sh" --uninstall --prefix "$P" --sudoers "$SUDOERS" --group "$AGRP" >/dev/null 2>&1 || true
	userdel -r "$ATK" 2>/dev/null || true
	userdel -r "$VIC" 2>/dev/null || true
	groupdel "$AGRP" 2>/dev/null || true
	rm -rf "$P" "$SUDOERS" "$SECRET_DIR"
	if [ -e "$BATS_FILE_TMPDIR/root.conf.saved" ]; then
		cp -a "$BATS_FILE_TMPDIR/root.conf.saved" "$ROOTCONF"
	else
		rm -f "$ROOTCONF"
	fi
}

# set_root_conf LINE...: /etc/vmsan/root.conf for the installed helpers.
set_root_conf() {
	mkdir -p /etc/vmsan
	printf '%s\n' "$@" >"$ROOTCONF"
	chmod 644 "$ROOTCONF"
}

# as_user USER CMD ARGS...: CMD (vmsan, or a path) as USER, as a login
# would run it: that user's uid, groups and a clean environment (extra
# variables from $AS_ENV), in the test host namespace when there is one.
as_user() {
	local u=$1 cmd=$2
	shift 2
	[ "$cmd" != vmsan ] || cmd=$P/bin/vmsan
	local ns=()
	[ -z "${H:-}" ] || ns=(nsenter --net="/run/netns/$H")
	# shellcheck disable=SC2086 # AS_ENV: words on purpose
	"${ns[@]}" timeout 120 setpriv --reuid="$u" --regid="$u" --init-groups \
		env -i HOME="/home/$u" PATH=/usr/bin:/bin VMSAN_DNS=192.0.2.53 ${AS_ENV:-} "$cmd" "$@"
}

# helper_as USER HELPER OP: the installed root helper through sudo -n, as
# the attacker would call it; the request on stdin.  Given 20 s: a helper
# that hangs fails the test (exit 124, no reply).
helper_as() {
	local u=$1 h=$2 op=$3
	as_user "$u" /usr/bin/timeout 20 /usr/bin/sudo -n "$h" "$op"
}

# reached OUTPUT: the reply is one of the helper's own (a JSON document
# with "ok"), not sudo's refusal or a shell error: the control that the
# attempt got to the code under test.
reached() {
	jq -e 'has("ok")' <<<"$1" >/dev/null || { echo "not a helper reply: $1" >&2; return 1; }
}

# own_vmm_files USER DIR: what a VMM of USER's needs, made by USER in DIR
# (a copy of the guest kernel, an empty disk, a run directory).
own_vmm_files() {
	local u=$1 d=$2
	as_user "$u" /bin/mkdir -p "$d/run"
	as_user "$u" /bin/sh -c "cat >'$d/vmlinux'" <"$(guest_kernel)"
	as_user "$u" /usr/bin/truncate -s 64M "$d/vm.ext4"
}

# fc_start_req USER ID DIR [JQ]: USER's start request for a VMM with no
# network on the files own_vmm_files made, edited by JQ.
fc_start_req() {
	jq -nc --arg id "$2" --arg d "$3" --argjson u "$(id -u "$1")" --argjson g "$(id -g "$1")" \
		'{id:$id, vmm:"qemu", kernel:($d + "/vmlinux"), vmDisk:($d + "/vm.ext4"),
		  runDir:($d + "/run"), uid:$u, gid:$g, accel:"tcg"}' | jq -c "${4:-.}"
}
