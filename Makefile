# vmsan — build, install, test.
#   make                      build the helpers
#   make check                run the whole test suite (bats)
#   make lint                 clang-format (the house style), shellcheck, mandoc -Tlint, cppcheck
#   make format               clang-format -i: the house style (.clang-format) applied
#   make bench                run bench/ (results: BENCHMARKS.md)
#   make soak                 VM life cycles until anything leaks (SOAK_CYCLES, SOAK_PARALLEL, ...: bench/soak)
#   make install              PREFIX=/usr/local DESTDIR= LIBEXECDIR=$(PREFIX)/libexec/vmsan
#   make DEVELOPER=1          -Werror and stricter warnings
#   make SANITIZE=address,undefined
.SUFFIXES:

VERSION := $(shell sed -n 's/^VMSAN_VERSION=//p' bin/vmsan)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/vmsan
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/vendor-completions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system

CC ?= cc
PKG_CONFIG ?= pkg-config
# Overridable as a whole; the warnings and includes below are always added.
CFLAGS ?= -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
	-fstack-clash-protection -fcf-protection -fPIE
LDFLAGS ?= -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack -Wl,--as-needed

WARN = -Wall -Wextra -Wformat=2 -Wformat-security -Wshadow -Wpointer-arith \
	-Wstrict-prototypes -Wmissing-prototypes -Wvla
ifeq ($(DEVELOPER),1)
WARN += -Werror -Wcast-align -Wwrite-strings -Wundef -Wnull-dereference \
	-Wimplicit-fallthrough -Wold-style-definition -Wno-error=format-nonliteral
endif
ifneq ($(SANITIZE),)
SAN_FLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

DEPS_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson libnftnl libmnl libnl-route-3.0 \
	libarchive ext2fs libcrypto libzstd zlib 2>/dev/null)
JANSSON_LIBS := $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)
NL_LIBS := $(shell $(PKG_CONFIG) --libs libnl-route-3.0 2>/dev/null || echo -lnl-route-3 -lnl-3)
NFT_LIBS := $(shell $(PKG_CONFIG) --libs libnftnl libmnl 2>/dev/null || echo -lnftnl -lmnl)
# libarchive is linked statically when its archive is there: we read tar
# with it and nothing else, and its shared library drags in libxml2, ICU and
# libstdc++, whose symbol lookups took 1.5 of vmsan-rootfs's 3.4 ms start
# (measured: 3.4 -> 1.9 ms; every create runs it once).
ARCHIVE_A := $(shell $(CC) -print-file-name=libarchive.a)
ARCHIVE_LIBS := $(if $(filter /%,$(ARCHIVE_A)),$(ARCHIVE_A),-larchive)
IMG_LIBS := $(ARCHIVE_LIBS) $(shell $(PKG_CONFIG) --libs ext2fs com_err libcrypto libzstd zlib 2>/dev/null || \
	echo -lext2fs -lcom_err -lcrypto -lzstd -lz) -lpthread

ALL_CFLAGS = -std=gnu11 $(WARN) $(DEPS_CFLAGS) -DVMSAN_VERSION='"$(VERSION)"' \
	-Ilibexec $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

LIB_SRC = libexec/lib/reply.c libexec/lib/request.c libexec/lib/helper.c \
	libexec/lib/validate.c libexec/lib/state.c libexec/lib/nft.c libexec/lib/nftrule.c libexec/lib/nftnl.c \
	libexec/lib/netplan.c libexec/lib/ext4.c libexec/lib/ext4-tree.c libexec/lib/layer.c libexec/lib/policy.c \
	libexec/lib/sparse.c \
	libexec/lib/dnsmsg.c libexec/lib/rootconf.c libexec/lib/caller.c libexec/lib/claim.c \
	libexec/lib/vmhome.c libexec/lib/kvmboot.c libexec/lib/rootproc.c
LIB_OBJ = $(LIB_SRC:.c=.o)
LIB = libexec/lib/libvmsan.a

HELPERS = libexec/vmsan-state libexec/vmsan-probe libexec/vmsan-list libexec/vmsan-nftables libexec/vmsan-net \
	libexec/vmsan-rootfs libexec/vmsan-agentctl libexec/vmsan-fc libexec/vmsan-create libexec/vmsan-dns \
	libexec/vmsan-serve
# vmsan-create (libexec/vm/) is the life-cycle porcelain: one binary, also
# under each of these names (links made here, none committed); and ls is
# vmsan-list's.
VM_CMDS = start stop rm remove run gc network snapshot template pause resume
VM_LINKS = $(addprefix libexec/vmsan-,$(VM_CMDS))
ALIASES = $(VM_LINKS) libexec/vmsan-ls

# The wire-protocol code shared by the guest agent and the host client.
PROTO_SRC = proto/http.c proto/ws.c proto/json.c proto/tar.c proto/tar-write.c
PROTO_OBJ = $(PROTO_SRC:.c=.o)
PROTO_H = proto/md.h proto/http.h proto/ws.h proto/json.h proto/tar.h proto/tar-impl.h proto/connect.h proto/multipart.h proto/sha256.h

# Guest binaries: static, built with musl when musl-gcc is there (small,
# and no NSS), else with the system libc.  zlib (inflate only) is linked
# from its static archive; its two headers are reached through agent/.inc
# so musl's include path does not take in glibc's headers.
MUSL_CC ?= $(shell command -v musl-gcc 2>/dev/null)
GUEST_CC = $(if $(MUSL_CC),$(MUSL_CC),$(CC))
ZLIB_A ?= $(shell $(CC) -print-file-name=libz.a)
ZLIB_INC ?= /usr/include
GUEST_CFLAGS = -std=gnu11 $(WARN) -Os -static -s -fstack-protector-strong -isystem agent/.inc \
	-DVMSAN_VERSION='"$(VERSION)"'
# envd/: E2B's envd protocol beside the agent's own; its parsers (the
# agent's alone) are in proto/.
ENVD_SRC = agent/envd/rpc.c agent/envd/pjson.c agent/envd/process.c agent/envd/proc.c agent/envd/fs.c \
	agent/envd/watch.c agent/envd/files.c proto/connect.c proto/multipart.c proto/sha256.c
AGENT_SRC = agent/agent.c agent/conn.c agent/log.c agent/exec.c agent/spawn.c agent/files.c agent/shell.c agent/session.c agent/user.c agent/tunnel.c agent/token.c $(ENVD_SRC) $(PROTO_SRC)
GUEST = agent/vmsan-agent agent/vmsan-init
TESTBINS = tests/unit/test-validate tests/unit/test-request tests/tools/tap-pump tests/tools/exec-rtt \
	tests/tools/connect-rate tests/tools/dns-load tests/tools/http-load tests/tools/tap-attach \
	tests/tools/tcp-copy
# Every shell file: the ones with a #! line, and the sourced library.
SCRIPTS = $(shell grep -l '^\#!/bin/sh' bin/* libexec/vmsan-* install.sh .ci/run \
	tests/run bench/* share/vmsan/kernel/build 2>/dev/null) libexec/lib/common.sh
MAN1 = share/man/man1/vmsan.1 share/man/man1/vmsan-serve.1
MAN7 = share/man/man7/vmsan.7 share/man/man7/vmsan-security.7
MAN8 = share/man/man8/vmsan-dns.8 share/man/man8/vmsan-state.8 share/man/man8/vmsan-probe.8 \
	share/man/man8/vmsan-net.8 share/man/man8/vmsan-nftables.8 \
	share/man/man8/vmsan-rootfs.8 share/man/man8/vmsan-agent.8 \
	share/man/man8/vmsan-agentctl.8 share/man/man8/vmsan-init.8 share/man/man8/vmsan-fc.8

all: $(HELPERS) $(GUEST) libexec/guest/vmsan-agent libexec/guest/vmsan-init $(ALIASES)

$(VM_LINKS):
	ln -sf vmsan-create $@

libexec/vmsan-ls:
	ln -sf vmsan-list $@

# Rebuild everything when the flags change (DEVELOPER, SANITIZE, CFLAGS).
FLAGS_STAMP = .build-flags
$(FLAGS_STAMP): FORCE
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@

%.o: %.c libexec/lib/vmsan.h libexec/lib/nft.h libexec/lib/nft-impl.h libexec/lib/netplan.h libexec/lib/ext4.h \
	libexec/lib/ext4-impl.h \
	libexec/lib/layer.h libexec/lib/dnsmsg.h libexec/lib/policy.h libexec/lib/rootconf.h \
	libexec/lib/caller.h libexec/lib/claim.h libexec/lib/kvmboot.h libexec/lib/vmhome.h libexec/untar.h $(PROTO_H) $(FLAGS_STAMP)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

agent/.inc/zlib.h:
	mkdir -p agent/.inc
	ln -sf $(ZLIB_INC)/zlib.h $(ZLIB_INC)/zconf.h agent/.inc/

agent/vmsan-agent: $(AGENT_SRC) $(PROTO_H) agent/agent.h agent/conn.h agent/spawn.h agent/session.h \
	agent/envd/envd.h agent/envd/proc.h agent/.inc/zlib.h $(FLAGS_STAMP)
	$(GUEST_CC) $(GUEST_CFLAGS) -o $@ $(AGENT_SRC) $(ZLIB_A) -lpthread

# In the source tree the guest binaries are found where they are installed:
# $(LIBEXECDIR)/guest.
libexec/guest/%: agent/%
	mkdir -p libexec/guest
	ln -sf ../../$< $@

agent/vmsan-init: agent/init.c $(FLAGS_STAMP)
	$(GUEST_CC) $(GUEST_CFLAGS) -o $@ agent/init.c

# vmsan-fc: a root core over its VMMs, one file a job (see fc/fc.h).
FC_SRC = libexec/fc/record.c libexec/fc/util.c libexec/fc/qmp.c libexec/fc/qemu.c \
	libexec/fc/firecracker.c libexec/fc/snapshot.c libexec/fc/orphans.c
FC_OBJ = $(FC_SRC:.c=.o)
$(FC_OBJ) libexec/vmsan-fc.o: libexec/fc/fc.h

libexec/vmsan-fc: libexec/vmsan-fc.o $(FC_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(FC_OBJ) $(LIB) $(JANSSON_LIBS)

# vmsan serve: E2B's API over libmicrohttpd, one file a job (see serve/serve.h).
SERVE_SRC = libexec/serve/http.c libexec/serve/keys.c libexec/serve/box.c libexec/serve/control.c \
	libexec/serve/run.c libexec/serve/proxy.c libexec/serve/egress.c libexec/serve/metrics.c libexec/serve/snap.c
SERVE_OBJ = $(SERVE_SRC:.c=.o)
MHD_LIBS := $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
$(SERVE_OBJ) libexec/vmsan-serve.o: libexec/serve/serve.h

libexec/vmsan-serve: libexec/vmsan-serve.o $(SERVE_OBJ) proto/http.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(SERVE_OBJ) proto/http.o $(LIB) $(MHD_LIBS) \
		$(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto) $(JANSSON_LIBS) -lpthread

# vmsan-agentctl: a core over one file a command (see agentctl/agentctl.h).
# Downloads are read with libarchive's tar reader (libexec/untar.c says why).
AGENTCTL_SRC = libexec/agentctl/target.c libexec/agentctl/conn.c libexec/agentctl/util.c \
	libexec/agentctl/simple.c libexec/agentctl/exec.c libexec/agentctl/shell.c \
	libexec/agentctl/upload.c libexec/agentctl/download.c
AGENTCTL_OBJ = $(AGENTCTL_SRC:.c=.o)
$(AGENTCTL_OBJ) libexec/vmsan-agentctl.o: libexec/agentctl/agentctl.h

libexec/vmsan-agentctl: libexec/vmsan-agentctl.o $(AGENTCTL_OBJ) libexec/untar.o $(PROTO_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(AGENTCTL_OBJ) libexec/untar.o $(PROTO_OBJ) $(LIB) $(ARCHIVE_LIBS) \
		$(JANSSON_LIBS)

$(LIB): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

libexec/vmsan-state: libexec/vmsan-state.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(JANSSON_LIBS)

# vmsan-create: the life-cycle porcelain, a core over one file a command
# family (see vm/vm.h).
VM_SRC = libexec/vm/main.c libexec/vm/util.c libexec/vm/options.c libexec/vm/call.c libexec/vm/agent.c \
	libexec/vm/steps.c libexec/vm/create.c libexec/vm/lifecycle.c libexec/vm/snapshot.c \
	libexec/vm/network.c libexec/vm/gc.c libexec/vm/run.c libexec/vm/pause.c libexec/vm/template.c
VM_OBJ = $(VM_SRC:.c=.o)
$(VM_OBJ): libexec/vm/vm.h

# template.c's key is a SHA-256: proto/'s (libvmsan's needs libcrypto)
libexec/vmsan-create: $(VM_OBJ) proto/sha256.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(VM_OBJ) proto/sha256.o $(LIB) $(NFT_LIBS) $(JANSSON_LIBS)

libexec/vmsan-list: libexec/vmsan-list.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(JANSSON_LIBS)

libexec/vmsan-nftables: libexec/vmsan-nftables.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(NFT_LIBS) $(JANSSON_LIBS)

# vmsan-net: a root core over its parts, one file a job (see net/net.h).
NET_SRC = libexec/net/link.c libexec/net/netns.c libexec/net/record.c libexec/net/setup.c \
	libexec/net/dns.c libexec/net/teardown.c libexec/net/sweep.c libexec/net/orphans.c
NET_OBJ = $(NET_SRC:.c=.o)
$(NET_OBJ) libexec/vmsan-net.o: libexec/net/net.h

libexec/vmsan-net: libexec/vmsan-net.o $(NET_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(NET_OBJ) $(LIB) $(NL_LIBS) $(NFT_LIBS) $(JANSSON_LIBS)

# vmsan-dns: a core that binds as root and splits, over one file a job
# (see dns/dns.h); the resolver's sandbox is libseccomp's.
DNS_SRC = libexec/dns/config.c libexec/dns/sandbox.c libexec/dns/setter.c libexec/dns/loop.c \
	libexec/dns/query.c libexec/dns/upstream.c libexec/dns/track.c libexec/dns/relay.c libexec/dns/ctl.c \
	libexec/dns/log.c
DNS_OBJ = $(DNS_SRC:.c=.o)
$(DNS_OBJ) libexec/vmsan-dns.o: libexec/dns/dns.h
SECCOMP_LIBS := $(shell $(PKG_CONFIG) --libs libseccomp 2>/dev/null || echo -lseccomp)
libexec/vmsan-dns: libexec/vmsan-dns.o $(DNS_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(DNS_OBJ) $(LIB) $(NFT_LIBS) $(SECCOMP_LIBS) $(JANSSON_LIBS)

# vmsan-rootfs: a core over one file a job (see rootfs/rootfs.h).
ROOTFS_SRC = libexec/rootfs/util.c libexec/rootfs/cache.c libexec/rootfs/images.c libexec/rootfs/ref.c \
	libexec/rootfs/skopeo.c libexec/rootfs/pull.c libexec/rootfs/build.c libexec/rootfs/progress.c \
	libexec/rootfs/put.c libexec/rootfs/base.c libexec/rootfs/vmdisk.c
ROOTFS_OBJ = $(ROOTFS_SRC:.c=.o)
$(ROOTFS_OBJ) libexec/vmsan-rootfs.o: libexec/rootfs/rootfs.h

libexec/vmsan-rootfs: libexec/vmsan-rootfs.o $(ROOTFS_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(ROOTFS_OBJ) $(LIB) $(IMG_LIBS) $(JANSSON_LIBS)

libexec/vmsan-probe: libexec/vmsan-probe.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(NFT_LIBS) $(JANSSON_LIBS)

# static like the guest's binaries: bench/transfer.sh runs it in a guest too
tests/tools/tcp-copy: tests/tools/tcp-copy.c $(FLAGS_STAMP)
	$(GUEST_CC) $(GUEST_CFLAGS) -o $@ tests/tools/tcp-copy.c

tests/tools/%: tests/tools/%.o
	$(CC) $(ALL_LDFLAGS) -o $@ $<

tests/unit/%: tests/unit/%.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(NFT_LIBS) $(JANSSON_LIBS)

# libFuzzer targets for the parsers that face untrusted bytes (clang).
FUZZ_CC ?= clang
FUZZERS = tests/fuzz/fuzz-http tests/fuzz/fuzz-ws tests/fuzz/fuzz-tar tests/fuzz/fuzz-dns tests/fuzz/fuzz-untar \
	tests/fuzz/fuzz-request tests/fuzz/fuzz-connect tests/fuzz/fuzz-multipart
FUZZ_SECONDS ?= 60
tests/fuzz/fuzz-%: tests/fuzz/fuzz-%.c proto/%.c $(PROTO_H)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -o $@ $< proto/$*.c
tests/fuzz/fuzz-dns: tests/fuzz/fuzz-dns.c libexec/lib/dnsmsg.c libexec/lib/validate.c libexec/lib/dnsmsg.h
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined $(DEPS_CFLAGS) -o $@ $< libexec/lib/dnsmsg.c \
		libexec/lib/validate.c

# The root helpers' request readers: vmsan-fc's (compiled in, main renamed)
# and the ruleset checker and policy compiler vmsan-net runs.
FUZZ_REQ_SRC = libexec/vmsan-fc.c $(FC_SRC) $(addprefix libexec/lib/,reply.c request.c helper.c validate.c \
	state.c nft.c nftrule.c nftnl.c netplan.c policy.c sparse.c rootconf.c caller.c claim.c vmhome.c kvmboot.c \
	rootproc.c)
tests/fuzz/fuzz-request: tests/fuzz/fuzz-request.c $(FUZZ_REQ_SRC) libexec/fc/fc.h libexec/lib/vmsan.h
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined $(DEPS_CFLAGS) -Ilibexec -o $@ $< \
		$(filter-out libexec/vmsan-fc.c,$(FUZZ_REQ_SRC)) $(JANSSON_LIBS) $(NFT_LIBS)
tests/fuzz/fuzz-untar: tests/fuzz/fuzz-untar.c libexec/untar.c libexec/untar.h proto/tar.c proto/tar.h
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -o $@ $< libexec/untar.c proto/tar.c $(ARCHIVE_LIBS)

# Each target for FUZZ_SECONDS, from an empty corpus kept in tests/fuzz/corpus.
fuzz: $(FUZZERS)
	for f in $(FUZZERS); do mkdir -p tests/fuzz/corpus/$${f##*/}; \
		seeds=tests/fuzz/seeds/$${f##*/fuzz-}; [ -d $$seeds ] || seeds=; \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=70000 tests/fuzz/corpus/$${f##*/} $$seeds || exit 1; done

check: all $(TESTBINS) $(FUZZERS) tests/tools/node_modules/ws kernel
	tests/run

# node's ws package (npm registry), an independent client for the tests.
tests/tools/node_modules/ws: tests/tools/package.json tests/tools/package-lock.json
	cd tests/tools && npm ci --no-audit --no-fund --silent

# The C the formatter keeps in the house style (.clang-format).
C_FILES = $(wildcard libexec/*.[ch] libexec/*/*.[ch] agent/*.[ch] agent/*/*.[ch] proto/*.[ch] \
	tests/unit/*.c tests/fuzz/*.c tests/tools/*.c)

format:
	clang-format -i $(C_FILES)

lint:
	clang-format --dry-run --Werror $(C_FILES)
	shellcheck -x $(SCRIPTS)
	# Bats sets $$stderr and runs each test in a subshell (SC2154, SC2030/1);
	# tests list directories of names they made themselves (SC2010, SC2143).
	shellcheck -s bash -e SC2154,SC2030,SC2031,SC2010,SC2143 \
		tests/*.bats tests/*.bash completions/vmsan.bash $(shell grep -l '^\#!/bin/bash' bench/*)
	mandoc -Tlint -Wwarning $(MAN1) $(MAN7) $(MAN8)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--std=c11 --inline-suppr -Ilibexec --include=/usr/include/jansson.h \
		--suppress=missingIncludeSystem libexec/*.c libexec/*/*.c \
		tests/unit/*.c agent/*.c agent/envd/*.c proto/*.c tests/fuzz/*.c

bench: all $(TESTBINS)
	bench/run

# SOAK_JSON=1 for the JSON summary; the rest of the settings are bench/soak's.
soak: all
	bench/soak $(if $(SOAK_JSON),--json)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/lib \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) \
		$(DESTDIR)$(DATADIR)/vmsan
	sed -e 's|^libexecdir=.*|libexecdir=$(LIBEXECDIR)|' \
	    -e 's|^datadir=.*|datadir=$(DATADIR)/vmsan|' bin/vmsan > $(DESTDIR)$(BINDIR)/vmsan.tmp
	chmod 755 $(DESTDIR)$(BINDIR)/vmsan.tmp
	mv -f $(DESTDIR)$(BINDIR)/vmsan.tmp $(DESTDIR)$(BINDIR)/vmsan
	for f in libexec/vmsan-*; do \
		case $$f in *.c|*.o) continue;; esac; \
		if [ -L "$$f" ]; then ln -sf "$$(readlink "$$f")" "$(DESTDIR)$(LIBEXECDIR)/$${f#libexec/}"; \
		else install -m 755 "$$f" "$(DESTDIR)$(LIBEXECDIR)/"; fi; \
	done
	install -m 644 libexec/lib/common.sh $(DESTDIR)$(LIBEXECDIR)/lib/
	install -d $(DESTDIR)$(LIBEXECDIR)/guest
	install -m 755 $(GUEST) $(DESTDIR)$(LIBEXECDIR)/guest/
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7/
	install -m 644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	# the guest kernel, when one was built (make kernel)
	for k in share/vmsan/kernels/vmlinux-*; do \
		[ -f "$$k" ] || continue; \
		install -d $(DESTDIR)$(DATADIR)/vmsan/kernels; \
		install -m 644 "$$k" $(DESTDIR)$(DATADIR)/vmsan/kernels/; \
	done
	# vmsan serve's unit, not enabled (vmsan-serve(1))
	install -d $(DESTDIR)$(SYSTEMDDIR)
	sed 's|@BINDIR@|$(BINDIR)|' share/vmsan/systemd/vmsan-serve@.service > $(DESTDIR)$(SYSTEMDDIR)/vmsan-serve@.service
	install -m 644 completions/vmsan.bash $(DESTDIR)$(BASHCOMPDIR)/vmsan
	install -m 644 completions/_vmsan $(DESTDIR)$(ZSHCOMPDIR)/_vmsan
	install -m 644 completions/vmsan.fish $(DESTDIR)$(FISHCOMPDIR)/vmsan.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/vmsan
	rm -rf $(DESTDIR)$(LIBEXECDIR)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
	      $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(notdir $(MAN7))) \
	      $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8)))
	rm -f $(DESTDIR)$(BASHCOMPDIR)/vmsan $(DESTDIR)$(ZSHCOMPDIR)/_vmsan \
	      $(DESTDIR)$(FISHCOMPDIR)/vmsan.fish
	rm -rf $(DESTDIR)$(DATADIR)/vmsan/kernels
	rm -f $(DESTDIR)$(SYSTEMDDIR)/vmsan-serve@.service
	-rmdir $(DESTDIR)$(DATADIR)/vmsan 2>/dev/null

clean:
	rm -f $(HELPERS) $(ALIASES) $(TESTBINS) $(LIB) $(FLAGS_STAMP) $(GUEST) $(FUZZERS) \
		libexec/*.o libexec/*/*.o \
		tests/unit/*.o tests/tools/*.o \
		agent/*.o proto/*.o
	rm -rf agent/.inc libexec/guest

FORCE:
# The guest kernel, from Debian's linux-source, cached outside the tree
# (share/vmsan/kernel/build says where and how).
kernel:
	share/vmsan/kernel/build share/vmsan/kernels

install-kernel: kernel install

.PHONY: all check lint format bench soak install uninstall clean fuzz kernel install-kernel FORCE
.PRECIOUS: tests/unit/%.o
