#!/bin/sh
# install.sh: set vmsan up on Debian 12 or Ubuntu 24.04, idempotently.
#
#   ./install.sh [--prefix DIR] [--no-deps] [--dev] [--no-demo] [--sudoers FILE] [--group NAME]
#   ./install.sh --uninstall [--prefix DIR] [--sudoers FILE] [--group NAME]
#
# Installs the Debian packages vmsan needs to build and run (--dev adds the
# ones its tests and lint need), builds, installs under the prefix, creates
# the group whose members may use vmsan, and writes a sudoers drop-in that
# allows exactly vmsan-net and vmsan-fc, by absolute path, to that group.
# Nothing installed is setuid.  It builds the guest kernel from Debian's
# linux-source (cached in ~/.cache/vmsan/kernel: about 10 minutes on two
# cores the first time), then does the main job once: creates a VM, runs
# a command in it and removes it (--no-demo skips that).
set -eu

prefix=/usr/local
sudoers=/etc/sudoers.d/vmsan
group=vmsan
deps=1
dev=0
demo=1
uninstall=0

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

case ${1:-} in -h | --help) sed -n '2,/^set -eu/{ /^set/d; s/^# \{0,1\}//; p; }' "$0"; exit 0 ;; esac
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "run this as root (sudo is not installed)"
	say "root is needed for packages, the prefix and the sudoers rule: re-running with sudo"
	exec sudo "$0" "$@"
fi

while [ $# -gt 0 ]; do
	case $1 in
	--prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift ;;
	--prefix=*) prefix=${1#*=} ;;
	--sudoers) [ $# -ge 2 ] || die "--sudoers needs a file"; sudoers=$2; shift ;;
	--group) [ $# -ge 2 ] || die "--group needs a name"; group=$2; shift ;;
	--no-deps) deps=0 ;;
	--dev) dev=1 ;;
	--no-demo) demo=0 ;;
	--uninstall) uninstall=1 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
	shift
done
case $prefix in /*) ;; *) die "--prefix must be an absolute path, not '$prefix'" ;; esac
case $group in *[!a-z0-9_-]* | '') die "--group '$group' is not a valid group name" ;; esac

src=$(cd "$(dirname "$0")" && pwd)
libexecdir=$prefix/libexec/vmsan

if [ $uninstall = 1 ]; then
	make -C "$src" -s uninstall PREFIX="$prefix"
	rm -f "$sudoers"
	if getent group "$group" >/dev/null && [ -z "$(getent group "$group" | cut -d: -f4)" ]; then
		groupdel "$group"
	fi
	say "removed vmsan from $prefix and $sudoers (state in ~/.vmsan is kept)"
	exit 0
fi

if [ $deps = 1 ]; then
	# Build: compiler and -dev libraries.  Run: jq, skopeo, e2fsprogs,
	# nftables (for inspection; vmsan itself talks netlink), sudo, and
	# busybox-static for the offline base image; QEMU, and Debian's
	# kernel source with what building it needs, for the guest kernel.
	pkgs="build-essential pkg-config libjansson-dev libnftnl-dev libmnl-dev
		libnl-3-dev libnl-route-3-dev libarchive-dev libext2fs-dev libssl-dev libseccomp-dev
		libmicrohttpd-dev libzstd-dev zlib1g-dev musl-tools jq skopeo e2fsprogs busybox-static iproute2 nftables sudo
		qemu-system-x86 linux-source-6.1 flex bison bc libelf-dev"
	# Tests: a registry on 127.0.0.1 (docker-registry), zstd to make zstd
	# layers, attr/libcap2-bin for xattrs and file capabilities, openssl and
	# apache2-utils (htpasswd) for a registry with TLS and a password.
	[ $dev = 0 ] || pkgs="$pkgs bats dash shellcheck mandoc cppcheck hyperfine util-linux
		socat dnsmasq-base bind9-dnsutils iputils-ping netcat-openbsd tcpdump bc curl docker-registry zstd
		openssl apache2-utils
		attr libcap2-bin tmux clang clang-format libclang-rt-14-dev openssh-server openssh-client python3 python3-yaml strace"
	# The WebSocket tests drive the agent with node's ws package as well.
	[ $dev = 0 ] || command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
	missing=
	for p in $pkgs; do
		dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		say "installing:$missing"
		apt-get update -qq
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
fi

# A sudoers rule on a file a user can replace is a root shell for that
# user: every directory from / down to the helpers must be root's alone.
# Checked before installing (on what exists) and after (on all of it).
check_root_owned() {
	d=$1
	while :; do
		if [ -e "$d" ]; then
			[ "$(stat -c %u "$d")" = 0 ] ||
				die "$d is not owned by root: refusing to write a sudoers rule for it"
			case $(stat -c %A "$d") in
			?????w???? | ????????w?)
				[ -k "$d" ] || die "$d is writable by others: refusing to write a sudoers rule for it"
				;;
			esac
		fi
		[ "$d" = / ] && break
		d=$(dirname "$d")
	done
}
check_root_owned "$libexecdir"

say "building"
make -C "$src" -s
say "building the guest kernel (cached after the first time)"
make -C "$src" -s kernel
make -C "$src" -s install PREFIX="$prefix"
check_root_owned "$libexecdir/vmsan-state"

getent group "$group" >/dev/null || groupadd --system "$group"
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
	usermod -aG "$group" "$SUDO_USER"
	say "added $SUDO_USER to group $group (log in again for it to take effect)"
fi

# /dev/kvm for group kvm, 0660, as Debian's udev rule makes it, where
# nothing did (no udev): a VMM never runs as root and reaches KVM only
# through the device's group.  Whether the guest boots under this KVM is
# vmsan-fc's question (it boots the kernel once): where it does not,
# creates fall back to TCG, and vmsan doctor says why.
if [ -c /dev/kvm ] && [ "$(stat -c %g /dev/kvm)" = 0 ]; then
	getent group kvm >/dev/null || groupadd --system kvm
	chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
	say "gave /dev/kvm to group kvm (0660), as Debian's udev rule does"
	if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
		usermod -aG kvm "$SUDO_USER"
		say "added $SUDO_USER to group kvm"
	fi
fi

mkdir -p "$(dirname "$sudoers")"
tmp=$(mktemp "${sudoers}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<EOF
# vmsan: members of group $group may run its two root helpers, and nothing
# else, without a password.  Each reads one JSON request on stdin and
# validates every field itself.  Written by install.sh; --uninstall removes it.
Defaults!$libexecdir/vmsan-net, $libexecdir/vmsan-fc env_reset, !requiretty
%$group ALL=(root) NOPASSWD: $libexecdir/vmsan-net, $libexecdir/vmsan-fc
EOF
chmod 0440 "$tmp"
visudo -cqf "$tmp" || die "the generated sudoers file does not validate"
mv -f "$tmp" "$sudoers"
trap - EXIT

say "installed: $prefix/bin/vmsan (helpers in $libexecdir); sudoers: $sudoers"
# The base image, built offline from busybox-static into the cache of the
# user who ran install.sh (not root's, when run through sudo).
as_user() {
	if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
		sudo -u "$SUDO_USER" -H "$@"
	else
		"$@"
	fi
}
as_user "$prefix/bin/vmsan" images pull --runtime base ||
	say "could not build the base image; 'vmsan images pull --runtime base' says why"
as_user "$prefix/bin/vmsan" doctor || say "vmsan doctor reports problems above; each comes with a fix"
# The main job: a VM from the base image, one command in it, removed.
# deny-all: it sends no packet anywhere.
if [ $demo = 1 ]; then
	say "creating a VM and running a command in it: vmsan run --rm --network-policy deny-all base -- uname -a"
	as_user "$prefix/bin/vmsan" run --rm --network-policy deny-all base -- uname -a ||
		die "the demo VM failed; 'vmsan doctor' says what is missing"
fi
