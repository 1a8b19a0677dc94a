#!/usr/bin/env bats
# vmsan-rootfs: OCI images into ext4, checked with debugfs (no mount).

load test_helper
load rootfs_helper

teardown_extra() {
	registry_stop
}

# A tree for layer 1, made with the owners, modes, links, devices and
# xattrs the image must keep whatever uid builds it.
make_layer1() {
	local t=$TEST_TMP/l1
	mkdir -p "$t/etc" "$t/usr/bin" "$t/opaque/sub" "$t/f2d" "$t/real" "$t/keep"
	echo hello >"$t/etc/motd"
	echo gone >"$t/etc/gone"
	echo lower >"$t/opaque/old"
	echo lower >"$t/opaque/sub/deep"
	printf 'data' >"$t/hardsrc"
	echo was-a-file >"$t/d2f"
	rmdir "$t/f2d" && echo was-a-file >"$t/f2d"
	mkdir "$t/d2f.dir" && mv "$t/d2f" "$t/d2f.tmp" && mv "$t/d2f.dir" "$t/d2f" &&
		mv "$t/d2f.tmp" "$t/d2f/inner"
	printf '#!/bin/sh\n' >"$t/usr/bin/suid"
	chmod 4755 "$t/usr/bin/suid"
	chmod 2710 "$t/keep"
	echo owned >"$t/owned"
	chown 1234:5678 "$t/owned"
	chown 70000:70001 "$t/keep"
	ln -s /etc/motd "$t/abs-link"
	ln -s ../nowhere/at/all "$t/dangling"
	ln -s real "$t/via"
	printf 'caps' >"$t/usr/bin/ping"
	setcap cap_net_raw+ep "$t/usr/bin/ping"
	setfattr -n user.vmsan -v tested "$t/etc/motd"
	mknod "$t/null" c 1 3
	mknod "$t/bigdev" b 259 300
	printf 'u' >"$t/$(printf 'sp ace-\xc3\xa9\xe2\x9c\x93')"
	touch -d @1700000000 "$t/etc/motd"
	tar_layer "$t" "$TEST_TMP/layer1.tgz" gzip
}

# Layer 2 (zstd): whiteouts, an opaque directory, a hard link to a file of
# layer 1, a file replacing a directory and a directory replacing a file,
# and a file created through a symlinked directory.
make_layer2() {
	local t=$TEST_TMP/l2
	mkdir -p "$t/etc" "$t/opaque" "$t/f2d" "$t/via"
	: >"$t/etc/.wh.gone"
	: >"$t/opaque/.wh..wh..opq"
	echo upper >"$t/opaque/new"
	echo now-a-file >"$TEST_TMP/d2f.new"
	echo inside >"$t/f2d/child"
	echo through >"$t/via/file"
	printf 'data' >"$t/hardsrc"
	ln "$t/hardsrc" "$t/hardlink"
	: >"$t/.wh.d2f"
	tar_layer "$t" "$TEST_TMP/layer2.tar" none --exclude=./via --exclude=./hardsrc \
		--exclude=./hardlink
	tar --format=posix -C "$t" -rf "$TEST_TMP/layer2.tar" ./hardsrc ./hardlink
	# "via" is a symlink in layer 1: the member via/file must land in real/.
	tar --format=posix -C "$t" -rf "$TEST_TMP/layer2.tar" ./via/file
	# A whiteout in a directory no layer has, without that directory's own
	# member: it removes nothing and must not create the directory.
	mkdir -p "$TEST_TMP/l2ghost/ghost"
	: >"$TEST_TMP/l2ghost/ghost/.wh.nothing"
	tar --format=posix -C "$TEST_TMP/l2ghost" -rf "$TEST_TMP/layer2.tar" ./ghost/.wh.nothing
	# Keep only the link record of hardlink (its target is layer 1's file).
	tar --delete -f "$TEST_TMP/layer2.tar" ./hardsrc
	# d2f comes back as a file in the same layer, after its whiteout.
	mv "$TEST_TMP/d2f.new" "$t/d2f"
	tar --format=posix -C "$t" -rf "$TEST_TMP/layer2.tar" ./d2f
	zstd -q --rm "$TEST_TMP/layer2.tar" -o "$TEST_TMP/layer2.tzst"
}

make_empty_layer() {
	tar -cf "$TEST_TMP/empty.tar" -T /dev/null
	gzip -n "$TEST_TMP/empty.tar"
}

build_semantics_image() {
	make_layer1
	make_layer2
	make_empty_layer
	oci_image "$TEST_TMP/oci" v1 \
		'{"Env":["PATH=/usr/bin:/bin","LANG=C.UTF-8"],"WorkingDir":"/srv","User":"1000:1000","Entrypoint":["/bin/sh"],"Cmd":["-c","echo hi"]}' \
		"$TEST_TMP/layer1.tgz" "$TEST_TMP/layer2.tzst" "$TEST_TMP/empty.tar.gz"
}

# Builds the semantics image, pulls it, sets $img to its ext4 file.
pull_semantics_image() {
	require_root
	require_cmd debugfs
	require_cmd setcap
	build_semantics_image
	img=$(rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}" | jq -er .path)
	[ -f "$img" ]
}

@test "base: built offline from busybox-static, cached on the second call" {
	require_cmd debugfs
	run -0 rootfs pull '{"runtime":"base"}'
	assert_one_json "$output"
	assert_eq "$(jq -r .cached <<<"$output")" false
	assert_eq "$(jq -r .runtime <<<"$output")" base
	img=$(jq -r .path <<<"$output")
	run -0 dfs "$img" 'stat /bin/busybox'
	assert_contains "$output" "Mode:  0755"
	assert_contains "$output" "User:     0   Group:     0"
	run -0 dfs "$img" 'stat /bin/sh'
	assert_contains "$output" "Type: symlink"
	assert_contains "$output" 'Fast link dest: "/bin/busybox"'
	run -0 dfs "$img" 'cat /etc/passwd'
	assert_contains "$output" "root:x:0:0:root:/root:/bin/sh"
	run -0 dfs "$img" 'stat /tmp'
	assert_contains "$output" "Mode:  01777"
	run -0 e2fsck -fn "$img"
	run -0 rootfs pull '{"runtime":"base"}'
	assert_eq "$(jq -r .cached <<<"$output")" true
	assert_cache_clean
}

@test "layers: whiteouts, opaque dirs, hard links across layers, replacements, symlinked parents" {
	pull_semantics_image
	run -0 e2fsck -fn "$img"
	# Whiteout: gone; its sibling kept.
	run -0 dfs "$img" 'ls /etc'
	assert_contains "$output" "motd"
	[[ $output != *gone* ]]
	run -0 dfs "$img" 'cat /etc/motd'
	assert_eq "$output" hello
	run -0 dfs "$img" 'ls /'
	[[ $output != *ghost* ]]
	# Opaque: the lower children are gone, the upper one is there.
	run -0 dfs "$img" 'ls /opaque'
	assert_contains "$output" "new"
	[[ $output != *old* && $output != *sub* ]]
	# Hard link to a file that only layer 1 has: one inode, two links.
	a=$(dfs "$img" 'stat /hardsrc' | sed -n 's/^Inode: \([0-9]*\).*/\1/p')
	b=$(dfs "$img" 'stat /hardlink' | sed -n 's/^Inode: \([0-9]*\).*/\1/p')
	[ -n "$a" ] && assert_eq "$a" "$b"
	run -0 dfs "$img" 'stat /hardlink'
	assert_contains "$output" "Links: 2"
	# File -> directory and directory -> file.
	run -0 dfs "$img" 'cat /f2d/child'
	assert_eq "$output" inside
	run -0 dfs "$img" 'cat /d2f'
	assert_eq "$output" now-a-file
	# via -> real: the member via/file was written inside real/.
	run -0 dfs "$img" 'cat /real/file'
	assert_eq "$output" through
	run -0 dfs "$img" 'stat /via'
	assert_contains "$output" "Type: symlink"
}

@test "layers: owners, modes, setuid, symlinks, devices, xattrs, capabilities, odd names" {
	pull_semantics_image
	run -0 dfs "$img" 'stat /owned'
	assert_contains "$output" "User:  1234   Group:  5678"
	run -0 dfs "$img" 'stat /keep'
	assert_contains "$output" "User: 70000   Group: 70001"
	assert_contains "$output" "Mode:  02710"
	run -0 dfs "$img" 'stat /usr/bin/suid'
	assert_contains "$output" "Mode:  04755"
	run -0 dfs "$img" 'stat /abs-link'
	assert_contains "$output" 'Fast link dest: "/etc/motd"'
	run -0 dfs "$img" 'stat /dangling'
	assert_contains "$output" 'Fast link dest: "../nowhere/at/all"'
	run -0 dfs "$img" 'stat /null'
	assert_contains "$output" "Type: character special"
	assert_contains "$output" "Device major/minor number: 01:03"
	run -0 dfs "$img" 'stat /bigdev'
	assert_contains "$output" "Type: block special"
	assert_contains "$output" "Device major/minor number: 259:300"
	run -0 dfs "$img" 'ea_list /etc/motd'
	assert_contains "$output" 'user.vmsan (6) = "tested"'
	run -0 dfs "$img" 'ea_list /usr/bin/ping'
	assert_contains "$output" "security.capability"
	run -0 dfs "$img" 'stat /etc/motd'
	assert_contains "$output" "mtime: 0x6553f100"
	# debugfs shows bytes above 0x7f escaped: the name's bytes are exact.
	run -0 dfs "$img" 'ls /'
	assert_contains "$output" 'sp ace-\xc3\xa9\xe2\x9c\x93'
}

@test "image config is kept for exec defaults; a second pull is a cache hit" {
	require_root
	require_cmd setcap
	build_semantics_image
	run -0 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}"
	assert_eq "$(jq -r .cached <<<"$output")" false
	assert_eq "$(jq -c .config.env <<<"$output")" '["PATH=/usr/bin:/bin","LANG=C.UTF-8"]'
	assert_eq "$(jq -r .config.workingDir <<<"$output")" /srv
	assert_eq "$(jq -r .config.user <<<"$output")" 1000:1000
	assert_eq "$(jq -c .config.entrypoint <<<"$output")" '["/bin/sh"]'
	assert_eq "$(jq -c .config.cmd <<<"$output")" '["-c","echo hi"]'
	assert_eq "$(jq -r '.layers | length' <<<"$output")" 3
	digest=$(jq -r .digest <<<"$output")
	# The image file is sparse: far less allocated than its 10 GiB size.
	f=$(image_file "$digest")
	assert_eq "$(stat -c %s "$f")" $((10 << 30))
	[ "$(stat -c %b "$f")" -lt $((200 << 11)) ]
	run -0 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}"
	assert_eq "$(jq -r .cached <<<"$output")" true
	assert_eq "$(jq -r .digest <<<"$output")" "$digest"
	assert_cache_clean
}

@test "registry on 127.0.0.1: pull by tag and by digest, --pull re-resolves, cache keyed by digest" {
	require_cmd docker-registry
	mkdir -p "$TEST_TMP/t1/etc"
	echo v1 >"$TEST_TMP/t1/etc/version"
	tar_layer "$TEST_TMP/t1" "$TEST_TMP/a.tgz" gzip
	oci_image "$TEST_TMP/oci" v1 '{"Cmd":["/bin/sh"]}' "$TEST_TMP/a.tgz"
	registry_start
	push "$TEST_TMP/oci" v1 test/app:v1
	run -1 rootfs pull "{\"ref\":\"$REG/test/app:v1\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_REGISTRY_TLS
	assert_contains "$(jq -r .error.fix <<<"$output")" "insecure"
	run -0 rootfs pull "{\"ref\":\"$REG/test/app:v1\",\"tlsVerify\":false}"
	assert_eq "$(jq -r .ref <<<"$output")" "$REG/test/app:v1"
	digest=$(jq -r .digest <<<"$output")
	run -0 dfs "$(jq -r .path <<<"$output")" 'cat /etc/version'
	assert_eq "$output" v1
	# By digest: the same image, from the cache.
	run -0 rootfs pull "{\"ref\":\"$REG/test/app@$digest\",\"tlsVerify\":false}"
	assert_eq "$(jq -r .digest <<<"$output")" "$digest"
	# The tag moves: without "pull" the cached image is used, with it the new one.
	echo v2 >"$TEST_TMP/t1/etc/version"
	tar_layer "$TEST_TMP/t1" "$TEST_TMP/b.tgz" gzip
	oci_image "$TEST_TMP/oci" v1 '{"Cmd":["/bin/sh"]}' "$TEST_TMP/b.tgz"
	push "$TEST_TMP/oci" v1 test/app:v1
	run -0 rootfs pull "{\"ref\":\"$REG/test/app:v1\",\"tlsVerify\":false}"
	assert_eq "$(jq -r '.digest, .cached' <<<"$output" | paste -sd' ')" "$digest true"
	run -0 rootfs pull "{\"ref\":\"$REG/test/app:v1\",\"tlsVerify\":false,\"pull\":true}"
	[ "$(jq -r .digest <<<"$output")" != "$digest" ]
	run -0 dfs "$(jq -r .path <<<"$output")" 'cat /etc/version'
	assert_eq "$output" v2
	run -0 rootfs list
	assert_eq "$(jq '.images | length' <<<"$output")" 2
	assert_cache_clean
}

@test "bad input: a reference that does not exist, a registry that refuses" {
	require_cmd docker-registry
	registry_start
	run -1 rootfs pull "{\"ref\":\"$REG/test/nothing:v9\",\"tlsVerify\":false}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_IMAGE_NOT_FOUND
	assert_contains "$(jq -r .error.message <<<"$output")" "$REG/test/nothing:v9"
	assert_cache_clean
	registry_stop
	run -1 rootfs pull "{\"ref\":\"$REG/test/nothing:v9\",\"tlsVerify\":false}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_REGISTRY_UNREACHABLE
	assert_cache_clean
	run -1 rootfs pull "{\"ref\":\"oci:$TEST_TMP/no-such-layout:v1\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_IMAGE_NOT_FOUND
	[ -z "$(ls "$VMSAN_DIR/images/refs" | grep json)" ]
}

@test "bad input: malformed references are refused before anything runs" {
	for ref in "" "   " "ubuntu:" "Ubuntu/App" "a//b" "x@sha256:abc" "/abs:1" "reg:5000/"; do
		run -100 rootfs pull "$(jq -nc --arg r "$ref" '{ref:$r}')"
		assert_eq "$(jq -r .error.code <<<"$output")" ERR_IMAGE_REF
	done
	run -100 rootfs pull '{"runtime":"ruby"}'
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VALIDATION_RUNTIME
	assert_contains "$(jq -r .error.fix <<<"$output")" "node22"
	run -100 rootfs pull '{"ref":"alpine","diskSize":"1M"}'
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_DISK_SIZE
	run -100 rootfs pull '{"ref":"alpine","runtime":"base"}'
	[ ! -e "$VMSAN_DIR/images/tmp" ] || [ -z "$(ls "$VMSAN_DIR/images/tmp")" ]
}

@test "bad input: a corrupt layer (digest mismatch) leaves nothing in the cache" {
	mkdir -p "$TEST_TMP/t/etc"
	head -c 100000 /dev/urandom >"$TEST_TMP/t/etc/blob"
	tar_layer "$TEST_TMP/t" "$TEST_TMP/a.tar" none
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/a.tar"
	# Flip one byte inside the file data of the stored blob.
	d=$(sha "$TEST_TMP/a.tar")
	corrupt "$TEST_TMP/oci/blobs/sha256/$d" 5000
	run -1 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_DIGEST_MISMATCH
	# A local layout is read in place: our own check caught it, not skopeo's.
	assert_contains "$(jq -r .error.message <<<"$output")" "layer 1/1: digest mismatch"
	assert_cache_clean
	[ -z "$(ls "$VMSAN_DIR/images" | grep -E '^[0-9a-f]{64}$')" ]
	# The same through a registry whose stored blob went bad: skopeo sees it.
	require_cmd docker-registry
	oci_image "$TEST_TMP/good" v1 '{}' "$TEST_TMP/a.tar"
	registry_start
	push "$TEST_TMP/good" v1 test/bad:v1
	# skopeo compresses the layer on push: the largest blob is the layer.
	data=$(find "$REG_DIR/data" -path "*/blobs/sha256/*/data" -printf '%s %p\n' |
		sort -rn | head -1 | cut -d' ' -f2)
	[ "$(stat -c %s "$data")" -gt 50000 ]
	corrupt "$data" 5000
	run -1 rootfs pull "{\"ref\":\"$REG/test/bad:v1\",\"tlsVerify\":false}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_DIGEST_MISMATCH
	assert_cache_clean
}

@test "bad input: a layer naming ../../etc/passwd is refused and writes nothing" {
	mkdir -p "$TEST_TMP/ev/etc"
	echo 'evil:x:0:0::/:/bin/sh' >"$TEST_TMP/ev/etc/passwd"
	tar -C "$TEST_TMP/ev" -cPf "$TEST_TMP/evil.tar" --transform='s,^,../../,' etc/passwd
	tar -tPf "$TEST_TMP/evil.tar" | grep -qx '../../etc/passwd'
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/evil.tar"
	before=$(sha256sum /etc/passwd)
	run -1 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_LAYER_UNSAFE
	assert_contains "$(jq -r .error.message <<<"$output")" "../../etc/passwd"
	assert_eq "$(sha256sum /etc/passwd)" "$before"
	assert_cache_clean
	[ -z "$(ls "$VMSAN_DIR/images" | grep -E '^[0-9a-f]{64}$')" ]
}

@test "bad input: a disk size too small names the size needed, which then works" {
	mkdir -p "$TEST_TMP/t"
	head -c $((40 << 20)) /dev/urandom >"$TEST_TMP/t/big"
	tar_layer "$TEST_TMP/t" "$TEST_TMP/a.tar" none
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/a.tar"
	run -1 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\",\"diskSize\":\"16M\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_DISK_TOO_SMALL
	msg=$(jq -r .error.message <<<"$output")
	assert_contains "$msg" "16M is too small"
	need=$(jq -r .error.fix <<<"$output" | sed -n 's/.*--disk-size \([0-9]*[MG]\).*/\1/p')
	[ -n "$need" ]
	assert_cache_clean
	run -0 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\",\"diskSize\":\"$need\"}"
	run -0 e2fsck -fn "$(jq -r .path <<<"$output")"
	# A later create asking for less than the image needs is refused too.
	run -1 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\",\"diskSize\":\"16M\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_DISK_TOO_SMALL
}

@test "bad input: no space left where the cache lives: clear error, nothing left" {
	require_root
	mkdir -p "$TEST_TMP/t" "$TEST_TMP/small"
	head -c $((30 << 20)) /dev/urandom >"$TEST_TMP/t/big"
	tar_layer "$TEST_TMP/t" "$TEST_TMP/a.tar" none
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/a.tar"
	mount -t tmpfs -o size=24m tmpfs "$TEST_TMP/small"
	export VMSAN_DIR=$TEST_TMP/small/state
	run rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}"
	code=$(jq -r .error.code <<<"$output")
	left=$(find "$VMSAN_DIR/images" -mindepth 1 -not -path '*/refs*' -not -name tmp -not -name lock)
	umount "$TEST_TMP/small"
	[ "$status" -ne 0 ]
	assert_eq "$code" ERR_NO_SPACE
	[ -z "$left" ] || { echo "left: $left" >&2; false; }
}

@test "a build killed midway is swept by the next pull; the cache never shows it" {
	run -0 rootfs pull '{"runtime":"base"}'
	mkdir -p "$VMSAN_DIR/images/tmp/999999999.0/blobs"
	: >"$VMSAN_DIR/images/tmp/999999999.0/rootfs.ext4"
	run -0 rootfs list
	assert_eq "$(jq '.images | length' <<<"$output")" 1
	mkdir -p "$TEST_TMP/t/etc" && echo x >"$TEST_TMP/t/etc/x"
	tar_layer "$TEST_TMP/t" "$TEST_TMP/a.tgz" gzip
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/a.tgz"
	run -0 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}"
	[ ! -e "$VMSAN_DIR/images/tmp/999999999.0" ]
}

@test "list, inspect, remove (refused while a VM uses it), prune" {
	run -0 rootfs list
	assert_eq "$output" '{"images":[],"ok":true}'
	run -0 rootfs pull '{"runtime":"base"}'
	digest=$(jq -r .digest <<<"$output")
	mkdir -p "$TEST_TMP/t/etc" && echo x >"$TEST_TMP/t/etc/x"
	tar_layer "$TEST_TMP/t" "$TEST_TMP/a.tgz" gzip
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/a.tgz"
	run -0 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}"
	other=$(jq -r .digest <<<"$output")
	run -0 rootfs inspect '{"image":"vmsan/base"}'
	assert_eq "$(jq -r .image.digest <<<"$output")" "$digest"
	run -0 rootfs inspect "{\"image\":\"${digest:7:12}\"}"
	assert_eq "$(jq -r '.image.refs[0]' <<<"$output")" vmsan/base
	run -1 rootfs inspect '{"image":"nope:1"}'
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_IMAGE_NOT_FOUND
	# A VM record naming the image pins it.
	id=$(new_vm "{\"imageDigest\":\"$digest\"}")
	run -1 rootfs remove '{"images":["vmsan/base"]}'
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_IMAGE_IN_USE
	assert_contains "$(jq -r .error.message <<<"$output")" "$id"
	[ -f "$(image_file "$digest")" ]
	# prune --all keeps what is in use and removes the rest.
	run -0 rootfs prune '{"all":true}'
	assert_eq "$(jq -c .removed <<<"$output")" "[\"$other\"]"
	[ ! -e "$VMSAN_DIR/images/${other#sha256:}" ]
	state delete "{\"id\":\"$id\"}" >/dev/null
	run -0 rootfs remove '{"images":["vmsan/base"]}'
	assert_eq "$(jq -c .removed <<<"$output")" "[\"$digest\"]"
	run -0 rootfs list
	assert_eq "$(jq '.images | length' <<<"$output")" 0
	assert_cache_clean
}

@test "progress goes to a terminal only; --json output stays one document" {
	require_cmd script
	mkdir -p "$TEST_TMP/t" && head -c 3000000 /dev/urandom >"$TEST_TMP/t/f"
	tar_layer "$TEST_TMP/t" "$TEST_TMP/a.tgz" gzip
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/a.tgz"
	body="{\"ref\":\"oci:$TEST_TMP/oci:v1\",\"progress\":true}"
	# Not a terminal: stderr stays empty.
	run -0 --separate-stderr rootfs pull "$body"
	assert_eq "$stderr" ""
	assert_one_json "$output"
	rootfs remove "{\"images\":[\"oci:$TEST_TMP/oci:v1\"]}" >/dev/null
	# A terminal: progress lines, and stdout is still just the reply.
	printf '%s' "$body" >"$TEST_TMP/req"
	script -qec "$ROOTFS pull <'$TEST_TMP/req' >'$TEST_TMP/out'" "$TEST_TMP/typescript" >/dev/null
	assert_one_json "$(cat "$TEST_TMP/out")"
	grep -q 'building rootfs: .* MiB .*%' "$TEST_TMP/typescript"
}

@test "untrusted layers: absolute names stay inside, symlinks never lead out of the image" {
	require_cmd debugfs
	# Layer 1: symlinks that point far outside the root, absolutely and by "..".
	mkdir -p "$TEST_TMP/l1"
	ln -s ../../../../../../tmp "$TEST_TMP/l1/up"
	ln -s /etc "$TEST_TMP/l1/abs"
	tar_layer "$TEST_TMP/l1" "$TEST_TMP/l1.tgz" gzip
	# Layer 2: members written through them, and an absolute member name.
	mkdir -p "$TEST_TMP/l2/up" "$TEST_TMP/l2/abs"
	echo a >"$TEST_TMP/l2/up/vmsan-escape-$$"
	echo b >"$TEST_TMP/l2/abs/vmsan-escape-$$"
	tar --format=posix -C "$TEST_TMP/l2" -cf "$TEST_TMP/l2.tar" ./up/vmsan-escape-$$ \
		./abs/vmsan-escape-$$
	mkdir -p "$TEST_TMP/l3/srv"
	echo c >"$TEST_TMP/l3/srv/rooted"
	tar -C "$TEST_TMP/l3" -cPf "$TEST_TMP/l3.tar" --transform='s,^,/,' srv/rooted
	tar -tPf "$TEST_TMP/l3.tar" | grep -qx /srv/rooted
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/l1.tgz" "$TEST_TMP/l2.tar" "$TEST_TMP/l3.tar"
	run -0 rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}"
	img=$(jq -r .path <<<"$output")
	# "up" resolves to the image's /tmp, "abs" to the image's /etc.
	run -0 dfs "$img" "cat /tmp/vmsan-escape-$$"
	assert_eq "$output" a
	run -0 dfs "$img" "cat /etc/vmsan-escape-$$"
	assert_eq "$output" b
	run -0 dfs "$img" 'cat /srv/rooted'
	assert_eq "$output" c
	[ ! -e "/tmp/vmsan-escape-$$" ] && [ ! -e "/etc/vmsan-escape-$$" ]
	run -0 e2fsck -fn "$img"
}

@test "oci-archive: and runtime overrides (VMSAN_RUNTIME_NODE22) go through the same cache" {
	require_cmd docker-registry
	mkdir -p "$TEST_TMP/t/etc" && echo arch >"$TEST_TMP/t/etc/x"
	tar_layer "$TEST_TMP/t" "$TEST_TMP/a.tgz" gzip
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/a.tgz"
	tar -C "$TEST_TMP/oci" -cf "$TEST_TMP/img.tar" .
	run -0 rootfs pull "{\"ref\":\"oci-archive:$TEST_TMP/img.tar:v1\"}"
	digest=$(jq -r .digest <<<"$output")
	run -0 dfs "$(jq -r .path <<<"$output")" 'cat /etc/x'
	assert_eq "$output" arch
	registry_start
	push "$TEST_TMP/oci" v1 runtimes/node:22
	VMSAN_RUNTIME_NODE22=$REG/runtimes/node:22 run -0 rootfs pull '{"runtime":"node22","tlsVerify":false}'
	assert_eq "$(jq -r .runtime <<<"$output")" node22
	assert_eq "$(jq -r .ref <<<"$output")" "$REG/runtimes/node:22"
	assert_eq "$(jq -r .digest <<<"$output")" "$digest"
	assert_eq "$(jq -r .cached <<<"$output")" true
}

@test "vmsan images: pull, ls (table and --json), inspect, rm, prune, bad subcommand" {
	run -0 "$VMSAN" images pull --runtime base
	assert_contains "$output" "vmsan/base sha256:"
	run -0 "$VMSAN" images
	assert_contains "${lines[0]}" "IMAGE"
	assert_contains "${lines[1]}" "vmsan/base"
	run -0 "$VMSAN" --json images
	assert_one_json "$output"
	assert_eq "$(jq -r '.[0].refs[0]' <<<"$output")" vmsan/base
	run -0 "$VMSAN" images inspect vmsan/base --json
	assert_eq "$(jq -c .config.cmd <<<"$output")" '["/bin/sh"]'
	run -1 "$VMSAN" --json images rm nope:1
	assert_one_json "$output"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_IMAGE_NOT_FOUND
	run -100 "$VMSAN" images bogus
	assert_contains "$output" "no such images command"
	run -100 "$VMSAN" images pull
	run -0 "$VMSAN" images rm vmsan/base
	assert_contains "$output" "removed sha256:"
	run -0 "$VMSAN" --json images
	assert_eq "$output" "[]"
	# nothing of it is left in the cache's refs (its lock and busybox sum too)
	assert_eq "$(find "$VMSAN_DIR/images/refs" -mindepth 1)" ""
}

@test "vmsan images pull: VMSAN_INSECURE_REGISTRIES turns TLS off for the listed registry only" {
	require_cmd docker-registry
	mkdir -p "$TEST_TMP/t/etc" && echo x >"$TEST_TMP/t/etc/x"
	tar_layer "$TEST_TMP/t" "$TEST_TMP/a.tgz" gzip
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/a.tgz"
	registry_start
	oci_image "$TEST_TMP/oci2" v1 '{"Env":["Y=1"]}' "$TEST_TMP/a.tgz"
	push "$TEST_TMP/oci" v1 test/x:v1
	push "$TEST_TMP/oci2" v1 test/y:v1
	run -1 "$VMSAN" images pull "$REG/test/x:v1"
	assert_contains "$output" "does not speak TLS"
	assert_contains "$output" "set VMSAN_INSECURE_REGISTRIES=$REG"
	# a list without this registry: the fix says so, and does not ask for it to be set
	VMSAN_INSECURE_REGISTRIES="other:1" run -1 "$VMSAN" images pull "$REG/test/x:v1"
	assert_contains "$output" "does not name $REG"
	[[ $output != *"set VMSAN_INSECURE_REGISTRIES"* ]]
	VMSAN_INSECURE_REGISTRIES="other:1, $REG " run -0 "$VMSAN" --json images pull "$REG/test/x:v1"
	assert_eq "$(jq -r .cached <<<"$output")" false
	# read by vmsan-rootfs itself: every command that pulls goes through it
	VMSAN_INSECURE_REGISTRIES=$REG run -0 rootfs pull "{\"ref\":\"$REG/test/y:v1\"}"
	assert_eq "$(jq -r '.cached, .config.env[0]' <<<"$output" | paste -sd' ')" "false Y=1"
}

@test "a registry's error is one JSON document, its message quoted once (skopeo's Go quoting undone)" {
	require_cmd docker-registry
	registry_start
	run -1 --separate-stderr "$VMSAN" --json images pull "$REG/test/x:v1"
	assert_eq "$(jq -s length <<<"$output")" 1
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_REGISTRY_TLS
	msg=$(jq -r .error.message <<<"$output")
	# skopeo says: Get "https://127.0.0.1:PORT/v2/": http: server gave ...
	assert_contains "$msg" "Get \"https://$REG/v2/\": http: server gave HTTP response"
	[[ $msg != *\\* ]]
	# the human form, too
	run -1 "$VMSAN" images pull "$REG/test/x:v1"
	assert_contains "$output" "Get \"https://$REG/v2/\""
	[[ $output != *'\"'* ]]
}

@test "a registry with TLS and a password: its CA through certDir, credentials through auth files" {
	require_cmd docker-registry
	require_cmd openssl
	require_cmd htpasswd
	export XDG_RUNTIME_DIR=$TEST_TMP/xdg
	mkdir -p "$XDG_RUNTIME_DIR" "$TEST_TMP/t/etc"
	echo private >"$TEST_TMP/t/etc/x"
	tar_layer "$TEST_TMP/t" "$TEST_TMP/a.tgz" gzip
	oci_image "$TEST_TMP/oci" v1 '{}' "$TEST_TMP/a.tgz"
	registry_start tls
	skopeo copy --quiet --dest-cert-dir "$REG_CERTS" --dest-creds "vmsan:$REG_PASS" \
		"oci:$TEST_TMP/oci:v1" "docker://$REG/test/private:v1"
	# A CA nobody told us about: refused, with the fix.
	run -1 rootfs pull "{\"ref\":\"$REG/test/private:v1\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_REGISTRY_TLS
	assert_contains "$(jq -r .error.fix <<<"$output")" "cert-dir"
	# The CA, but no credentials.
	run -1 rootfs pull "{\"ref\":\"$REG/test/private:v1\",\"certDir\":\"$REG_CERTS\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_REGISTRY_AUTH
	assert_cache_clean
	# Credentials in a file named by the request.
	printf '{"auths":{"%s":{"auth":"%s"}}}' "$REG" "$(printf 'vmsan:%s' "$REG_PASS" | base64 -w0)" \
		>"$TEST_TMP/auth.json"
	run -0 rootfs pull "{\"ref\":\"$REG/test/private:v1\",\"certDir\":\"$REG_CERTS\",\"authFile\":\"$TEST_TMP/auth.json\"}"
	digest=$(jq -r .digest <<<"$output")
	run -0 dfs "$(jq -r .path <<<"$output")" 'cat /etc/x'
	assert_eq "$output" private
	# Credentials where skopeo looks by itself (skopeo login writes there).
	mkdir -p "$XDG_RUNTIME_DIR/containers"
	cp "$TEST_TMP/auth.json" "$XDG_RUNTIME_DIR/containers/auth.json"
	run -0 rootfs pull "{\"ref\":\"$REG/test/private:v1\",\"certDir\":\"$REG_CERTS\",\"pull\":true}"
	assert_eq "$(jq -r .digest <<<"$output")" "$digest"
}

@test "vmdisk: a VM's disk from a template, its own token in place and in vms/ID.token, nothing shared but the template" {
	run rootfs vmdisk "{\"id\":\"vm-0000000a\",\"guestDir\":\"$LIBEXEC/guest\",\"pull\":{\"runtime\":\"base\"}}"
	assert_eq "$status" 0
	assert_eq "$(jq -r .templateHit <<<"$output")" false
	assert_eq "$(jq -r .image.ref <<<"$output")" vmsan/base
	local d=$VMSAN_DIR/vms/vm-0000000a
	assert_eq "$(stat -c %a "$d/disk.ext4" "$VMSAN_DIR/vms/vm-0000000a.token")" "600
600"
	assert_eq "$(stat -c %s "$d/disk.ext4")" 10737418240
	run rootfs vmdisk "{\"id\":\"vm-0000000b\",\"guestDir\":\"$LIBEXEC/guest\",\"pull\":{\"runtime\":\"base\"}}"
	assert_eq "$(jq -r .templateHit <<<"$output")" true
	# each disk holds its own token, the one in its token file
	local a b
	a=$(debugfs -R "cat /vmsan/agent.token" "$d/disk.ext4" 2>/dev/null)
	b=$(debugfs -R "cat /vmsan/agent.token" "$VMSAN_DIR/vms/vm-0000000b/disk.ext4" 2>/dev/null)
	assert_eq "$a" "$(cat "$VMSAN_DIR/vms/vm-0000000a.token")"
	assert_eq "$b" "$(cat "$VMSAN_DIR/vms/vm-0000000b.token")"
	[ "$a" != "$b" ]
	[[ $a =~ ^[0-9a-f]{64}$ ]]
	# the guest binaries and the layout vmsan-init wants; a clean file system
	debugfs -R "ls -l /vmsan" "$d/disk.ext4" 2>/dev/null | grep -q vmsan-agent
	debugfs -R "stat /work" "$d/disk.ext4" 2>/dev/null | grep -q "Mode:  0700"
	e2fsck -fn "$d/disk.ext4" >/dev/null
	# refused: an id that has a disk, and image with pull
	run rootfs vmdisk "{\"id\":\"vm-0000000a\",\"guestDir\":\"$LIBEXEC/guest\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_VM_EXISTS
	assert_eq "$(cat "$VMSAN_DIR/vms/vm-0000000a.token")" "$a"
	run rootfs vmdisk "{\"id\":\"vm-0000000c\",\"guestDir\":\"$LIBEXEC/guest\",\"image\":\"sha256:$(printf '%064d' 0)\",\"pull\":{\"runtime\":\"base\"}}"
	assert_eq "$status" 100
	run rootfs vmdisk "{\"id\":\"vm-0000000c\",\"guestDir\":\"/nonexistent\"}"
	assert_eq "$(jq -r .error.code <<<"$output")" ERR_GUEST_MISSING
	[ ! -e "$VMSAN_DIR/vms/vm-0000000c" ] || [ -z "$(ls "$VMSAN_DIR/vms/vm-0000000c")" ]
	[ ! -e "$VMSAN_DIR/vms/vm-0000000c.token" ]
	# a template build that died is swept; prune drops templates (rebuilt on demand)
	local tdir=$VMSAN_DIR/images/vmdisk
	: >"$tdir/0123.ext4.4194303.tmp"
	rm -f "$tdir"/*.ext4 "$tdir"/*.offset
	run rootfs vmdisk "{\"id\":\"vm-0000000d\",\"guestDir\":\"$LIBEXEC/guest\"}"
	assert_eq "$(jq -r .templateHit <<<"$output")" false
	[ ! -e "$tdir/0123.ext4.4194303.tmp" ]
	run rootfs prune '{}'
	assert_eq "$status" 0
	[ -z "$(ls "$tdir")" ]
}

@test "empty layers anywhere: a 0-byte blob, a compressed empty stream and an empty tar, after and before others (RUN true), from a layout and a registry" {
	require_cmd docker-registry
	mkdir -p "$TEST_TMP/t1/etc" "$TEST_TMP/t2/etc"
	echo one >"$TEST_TMP/t1/etc/one"
	echo two >"$TEST_TMP/t2/etc/two"
	tar_layer "$TEST_TMP/t1" "$TEST_TMP/a.tgz" gzip
	tar_layer "$TEST_TMP/t2" "$TEST_TMP/b.tgz" gzip
	: >"$TEST_TMP/zero"
	gzip -n <"$TEST_TMP/zero" >"$TEST_TMP/zero.gz"
	tar -cf "$TEST_TMP/empty.tar" -T /dev/null
	gzip -n <"$TEST_TMP/empty.tar" >"$TEST_TMP/empty.tgz"
	local l
	for l in zero zero.gz empty.tgz; do
		rm -rf "$TEST_TMP/oci"
		oci_image "$TEST_TMP/oci" v1 '{"Cmd":["/bin/sh"]}' "$TEST_TMP/a.tgz" "$TEST_TMP/$l" "$TEST_TMP/b.tgz"
		run rootfs pull "{\"ref\":\"oci:$TEST_TMP/oci:v1\"}"
		echo "$l: $output"
		assert_eq "$status" 0
		img=$(jq -r .path <<<"$output")
		# the layers before and after the empty one are both in
		run -0 dfs "$img" 'cat /etc/one'
		assert_eq "$output" one
		run -0 dfs "$img" 'cat /etc/two'
		assert_eq "$output" two
	done
	# through a registry (skopeo compresses an uncompressed layer on push)
	registry_start
	rm -rf "$TEST_TMP/oci"
	oci_image "$TEST_TMP/oci" v1 '{"Cmd":["/bin/sh"]}' "$TEST_TMP/a.tgz" "$TEST_TMP/zero" "$TEST_TMP/zero.gz" \
		"$TEST_TMP/b.tgz"
	push "$TEST_TMP/oci" v1 test/empty:v1
	run -0 rootfs pull "{\"ref\":\"$REG/test/empty:v1\",\"tlsVerify\":false}"
	run -0 dfs "$(jq -r .path <<<"$output")" 'cat /etc/two'
	assert_eq "$output" two
	assert_cache_clean
}

@test "a skopeo error cut at the message's 767 bytes ends at a whole UTF-8 character: the reply is one JSON document" {
	# skopeo names the --cert-dir it cannot read (here a file): a path of
	# 2-byte characters, its message over 768 bytes; one of two offsets
	# cuts it inside a character, which lost the whole reply
	local k pre d
	k=$(printf '\xc3\xa9%.0s' $(seq 100))
	for pre in "" x; do
		d=$TEST_TMP/$pre$k/$k/$k
		mkdir -p "$d"
		echo junk >"$d/$k"
		run -1 rootfs pull "{\"ref\":\"127.0.0.1:1/x:y\",\"certDir\":\"$d/$k\"}"
		assert_one_json "$output"
		assert_eq "$(jq -r .error.code <<<"$output")" ERR_PULL
		assert_contains "$(jq -r .error.message <<<"$output")" "$TEST_TMP/$pre$k"
		# cut: 767 bytes, or 766 when the last character was dropped
		[ "$(jq -j .error.message <<<"$output" | wc -c)" -ge 766 ]
	done
}
