#!/usr/bin/env bats
# make install / uninstall and install.sh: layout, no setuid, sudoers.
load test_helper

@test "make install DESTDIR=... installs everything and nothing setuid" {
	run make -C "$TOP" -s install DESTDIR="$TEST_TMP/dest" PREFIX=/usr/local
	[ "$status" -eq 0 ]
	d=$TEST_TMP/dest/usr/local
	for f in bin/vmsan libexec/vmsan/vmsan-list libexec/vmsan/vmsan-doctor \
		libexec/vmsan/vmsan-help libexec/vmsan/vmsan-state libexec/vmsan/vmsan-probe \
		libexec/vmsan/lib/common.sh share/man/man1/vmsan.1 share/man/man7/vmsan.7 \
		share/man/man8/vmsan-state.8 share/man/man8/vmsan-probe.8 \
		share/bash-completion/completions/vmsan share/zsh/vendor-completions/_vmsan \
		share/fish/vendor_completions.d/vmsan.fish; do
		[ -e "$d/$f" ] || { echo "missing $f"; false; }
	done
	[ -L "$d/libexec/vmsan/vmsan-ls" ]
	[ -z "$(find "$TEST_TMP/dest" -perm /6000)" ]
	# The libexec dir is compiled into the installed dispatcher.
	grep -qx 'libexecdir=/usr/local/libexec/vmsan' "$d/bin/vmsan"
}

@test "an installed vmsan runs from its prefix; uninstall removes it all" {
	p=$TEST_TMP/prefix
	make -C "$TOP" -s install PREFIX="$p"
	run "$p/bin/vmsan" list --json
	[ "$status" -eq 0 ]
	assert_eq "$output" "[]"
	run "$p/bin/vmsan" help
	assert_contains "$output" "list (ls)"
	make -C "$TOP" -s uninstall PREFIX="$p"
	[ -z "$(find "$p" -type f -o -type l)" ]
}

@test "install.sh writes a valid sudoers rule naming exactly the two root helpers" {
	require_root
	require_cmd visudo
	p=$TEST_TMP/prefix g=vmsantest$$
	chmod 755 "$TEST_TMP"
	run "$TOP/install.sh" --no-deps --no-demo --prefix "$p" --sudoers "$TEST_TMP/sudoers" --group "$g"
	[ -f "$TEST_TMP/sudoers" ]
	visudo -cqf "$TEST_TMP/sudoers"
	[ "$(stat -c %a "$TEST_TMP/sudoers")" = 440 ]
	rule=$(grep "^%$g " "$TEST_TMP/sudoers")
	assert_eq "$rule" "%$g ALL=(root) NOPASSWD: $p/libexec/vmsan/vmsan-net, $p/libexec/vmsan/vmsan-fc"
	[ "$(grep -c NOPASSWD "$TEST_TMP/sudoers")" -eq 1 ]
	getent group "$g" >/dev/null
	[ -z "$(find "$p" -perm /6000)" ]
	# Idempotent: a second run gives the same result.
	cp "$TEST_TMP/sudoers" "$TEST_TMP/sudoers.first"
	run "$TOP/install.sh" --no-deps --no-demo --prefix "$p" --sudoers "$TEST_TMP/sudoers" --group "$g"
	cmp "$TEST_TMP/sudoers" "$TEST_TMP/sudoers.first"
	run "$TOP/install.sh" --uninstall --prefix "$p" --sudoers "$TEST_TMP/sudoers" --group "$g"
	[ "$status" -eq 0 ]
	[ ! -e "$TEST_TMP/sudoers" ]
	[ ! -e "$p/bin/vmsan" ]
	run ! getent group "$g"
}

@test "install.sh gives /dev/kvm to group kvm 0660 where nothing did, and leaves a group chosen already" {
	require_root
	require_cmd visudo
	[ -c /dev/kvm ] || skip "no /dev/kvm on this host"
	local p=$TEST_TMP/prefix g=vmsantest$$ mode group
	mode=$(stat -c %a /dev/kvm) group=$(stat -c %G /dev/kvm)
	chmod 755 "$TEST_TMP"
	# as the kernel makes it without udev: root's alone
	chgrp root /dev/kvm
	chmod 0600 /dev/kvm
	run "$TOP/install.sh" --no-deps --no-demo --prefix "$p" --sudoers "$TEST_TMP/sudoers" --group "$g"
	local after_mode after_group
	after_mode=$(stat -c %a /dev/kvm) after_group=$(stat -c %G /dev/kvm)
	# a group chosen already (here: disk, as if by a local rule) is left
	chgrp disk /dev/kvm
	run "$TOP/install.sh" --no-deps --no-demo --prefix "$p" --sudoers "$TEST_TMP/sudoers" --group "$g"
	local kept
	kept=$(stat -c %G /dev/kvm)
	chgrp "$group" /dev/kvm
	chmod "$mode" /dev/kvm
	"$TOP/install.sh" --uninstall --prefix "$p" --sudoers "$TEST_TMP/sudoers" --group "$g" >/dev/null 2>&1
	assert_eq "$after_group $after_mode" "kvm 660"
	assert_eq "$kept" disk
}

@test "install.sh refuses a sudoers rule for helpers a user could replace" {
	require_root
	chmod 755 "$TEST_TMP"
	mkdir -p "$TEST_TMP/userprefix"
	chown nobody "$TEST_TMP/userprefix"
	run "$TOP/install.sh" --no-deps --no-demo --prefix "$TEST_TMP/userprefix" --sudoers "$TEST_TMP/sudoers" --group vmsantest$$
	[ "$status" -ne 0 ]
	assert_contains "$output" "is not owned by root: refusing to write a sudoers rule"
	[ ! -e "$TEST_TMP/sudoers" ]
	run ! getent group vmsantest$$
}

@test "install.sh rejects bad options with a clear message" {
	run "$TOP/install.sh" --prefix relative
	[ "$status" -ne 0 ]
	assert_contains "$output" "--prefix must be an absolute path"
	run "$TOP/install.sh" --bogus
	[ "$status" -ne 0 ]
	assert_contains "$output" "unknown option '--bogus'"
}
