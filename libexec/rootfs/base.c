/* base.c: the offline base image, vmsan/base: busybox-static, its applets
 * as symlinks and a minimal /etc, built with no registry.  Its digest
 * stands for what it is made of (the recipe, the image format, busybox's
 * sum), so a new busybox is a new image. */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ref_key("vmsan/base"): the name its files in refs/ share with the
 * ref's record, so that images rm finds them all. */
#define BASE_KEY "vmsan%2fbase"

extern char **environ;

#define BASE_RECIPE 1
#define BASE_NEED (64ULL << 20) /* the disk it needs, at most */

static bool is_static_elf(int fd)
{
	/* A dynamic executable names its loader in a PT_INTERP header. */
	unsigned char h[64];
	if (pread(fd, h, sizeof(h), 0) != sizeof(h) || memcmp(h, "\177ELF", 4) != 0 || h[4] != 2)
		return false;
	uint64_t phoff;
	uint16_t phentsize, phnum;
	memcpy(&phoff, h + 32, 8);
	memcpy(&phentsize, h + 54, 2);
	memcpy(&phnum, h + 56, 2);
	for (unsigned i = 0; i < phnum && i < 64; i++) {
		uint32_t type;
		if (pread(fd, &type, 4, (off_t)(phoff + (uint64_t)i * phentsize)) != 4)
			return false;
		if (type == 3)
			return false;
	}
	return true;
}

/* busybox (NULL: $VMSAN_BUSYBOX or /bin/busybox) open, once it is known
 * to be a static executable. */
static int open_busybox(const char **busybox, struct verr *e)
{
	if (!*busybox)
		*busybox =
			getenv("VMSAN_BUSYBOX") && *getenv("VMSAN_BUSYBOX") ? getenv("VMSAN_BUSYBOX") : "/bin/busybox";
	int fd = open(*busybox, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		verr_sys(e, "ERR_MISSING_TOOL", "install busybox-static (apt-get install busybox-static)",
			 "cannot open %s", *busybox);
		e->exit = VMSAN_EXIT_FAIL;
		return -1;
	}
	if (!is_static_elf(fd)) {
		close(fd);
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_MISSING_TOOL",
				 "install busybox-static, whose /bin/busybox needs no libraries",
				 "%s is not a static x86_64 executable", *busybox);
	}
	return fd;
}

/* Hashing busybox (2 MB) costs more than the rest of a cache hit: its sum
 * is remembered in sump as "<device> <inode> <size> <mtime> sha256:...",
 * the line starting with want. */
static void remembered_sum(const char *sump, const char *want, char bbsum[72])
{
	char sl[256];
	FILE *f = fopen(sump, "re");
	if (f && fgets(sl, sizeof(sl), f) && !strncmp(sl, want, strlen(want)) && strlen(sl + strlen(want)) >= 71 &&
	    !strncmp(sl + strlen(want), "sha256:", 7)) {
		memcpy(bbsum, sl + strlen(want), 71);
		bbsum[71] = 0;
	}
	if (f)
		fclose(f);
}

static void remember_sum(const struct cache *c, const char *sump, const char *want, const char *bbsum)
{
	char tmp[PATH_MAX + 16];
	bfmt(tmp, sizeof(tmp), "%s.%d", sump, (int)getpid());
	FILE *f = fopen(tmp, "we");
	bool wrote = f && fprintf(f, "%s%s\n", want, bbsum) > 0;
	if (f && fclose(f) != 0)
		wrote = false;
	if (wrote) {
		own(c, tmp);
		if (rename(tmp, sump) < 0)
			unlink(tmp);
	} else {
		unlink(tmp);
	}
}

/* busybox's sum, remembered or computed (and then remembered). */
static int busybox_sum(const struct cache *c, int fd, const char *busybox, char bbsum[72], struct verr *e)
{
	char sump[PATH_MAX], want[200] = "";
	struct stat bs;
	bbsum[0] = '\0';
	bfmt(sump, sizeof(sump), "%s/refs/%s.busybox", c->dir, BASE_KEY);
	if (fstat(fd, &bs) == 0) {
		snprintf(want, sizeof(want), "%llu %llu %lld %lld.%09ld ", (unsigned long long)bs.st_dev,
			 (unsigned long long)bs.st_ino, (long long)bs.st_size, (long long)bs.st_mtim.tv_sec,
			 bs.st_mtim.tv_nsec);
		remembered_sum(sump, want, bbsum);
	}
	if (bbsum[0])
		return 0;
	if (sha256_file(busybox, bbsum, e) < 0)
		return -1;
	remember_sum(c, sump, want, bbsum);
	return 0;
}

static int put_dirs(struct e4 *w, struct verr *e)
{
	static const struct {
		const char *path;
		mode_t mode;
	} dirs[] = {
		{ "bin", 0755 },      { "sbin", 0755 }, { "usr", 0755 },      { "usr/bin", 0755 },
		{ "usr/sbin", 0755 }, { "etc", 0755 },	{ "root", 0700 },     { "home", 0755 },
		{ "tmp", 01777 },     { "proc", 0555 }, { "sys", 0555 },      { "dev", 0755 },
		{ "run", 0755 },      { "var", 0755 },	{ "var/tmp", 01777 }, { "mnt", 0755 },
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs) && rc == 0; i++) {
		struct e4_entry d = { .path = dirs[i].path, .mode = S_IFDIR | dirs[i].mode };
		rc = e4_put(w, &d, e);
	}
	return rc;
}

/* The applets, as busybox itself lists them ("/bin/sh" ...), as links to
 * /bin/busybox.  Its list is read to the end whatever fails. */
static int put_applets(struct e4 *w, const char *busybox, struct verr *e)
{
	int pfd[2], rc = 0;
	pid_t pid = -1;
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		verr_sys(e, "ERR_IO", NULL, "pipe");
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	const char *argv[] = { busybox, "--list-full", NULL };
	if (posix_spawn(&pid, busybox, &fa, NULL, (char *const *)argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	FILE *f = fdopen(pfd[0], "r");
	char line[256];
	unsigned n = 0;
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *ap = line[0] == '/' ? line + 1 : line;
		if (!*ap || strcmp(ap, "bin/busybox") == 0 || rc)
			continue;
		struct e4_entry l = { .path = ap, .mode = S_IFLNK | 0777, .target = "/bin/busybox" };
		rc = e4_put(w, &l, e);
		n++;
	}
	if (f)
		fclose(f);
	else
		close(pfd[0]);
	if (rc == 0 && n < 50)
		rc = verr_fail(e, VMSAN_EXIT_FAIL, "ERR_MISSING_TOOL", "install busybox-static",
			       "%s lists only %u applets", busybox, n);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return rc;
}

static int put_etc(struct e4 *w, struct verr *e)
{
	if (put_text(w, "etc/passwd", 0644,
		     "root:x:0:0:root:/root:/bin/sh\n"
		     "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		     e) < 0 ||
	    put_text(w, "etc/group", 0644, "root:x:0:\nnogroup:x:65534:\n", e) < 0 ||
	    put_text(w, "etc/shadow", 0640, "root:*:1::::::\nnobody:*:1::::::\n", e) < 0 ||
	    put_text(w, "etc/os-release", 0644,
		     "NAME=\"vmsan base\"\nID=vmsan-base\nPRETTY_NAME=\"vmsan base (busybox)\"\n", e) < 0 ||
	    put_text(w, "etc/hosts", 0644, "127.0.0.1 localhost\n", e) < 0)
		return -1;
	return 0;
}

/* The image's filesystem in b; u its usage.  fd is busybox, open. */
static int build_base(struct build *b, int fd, const char *busybox, struct e4_usage *u, struct verr *e)
{
	struct e4 *w;
	if (e4_mkfs(b->img, b->disk, false, "vmsan-base", e) < 0 || !(w = e4_open(b->img, e)))
		return -1;
	if (put_dirs(w, e) < 0 || put_fd(w, "bin/busybox", 0755, fd, busybox, e) < 0 ||
	    put_applets(w, busybox, e) < 0 || put_etc(w, e) < 0) {
		if (e4_is_full(e)) {
			memset(e, 0, sizeof(*e));
			disk_full_error(b->disk, BASE_NEED, "the base image", e);
		}
		e4_abort(w);
		return -1;
	}
	e4_usage(w, u);
	return e4_close(w, e);
}

static json_t *base_record(const char *digest, const char *bbsum, const struct build *b, const struct e4_usage *u)
{
	char when[32];
	utc_iso(time(NULL), when);
	json_t *rec = json_pack("{s:i, s:s, s:s, s:{s:[s], s:s, s:s, s:[s]}, s:{s:s, s:s}, s:s, s:s, s:i,"
				" s:I, s:I, s:I, s:I, s:[]}",
				"schemaVersion", 1, "digest", digest, "source", "vmsan/base", "config", "env",
				"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "workingDir", "/", "user", "root", "cmd",
				"/bin/sh", "platform", "os", "linux", "architecture", "amd64", "builtAt", when,
				"builder", "vmsan-rootfs " VMSAN_VERSION, "format", IMAGE_FORMAT, "diskSize",
				(json_int_t)b->disk, "usedBytes", (json_int_t)(u->blocks_used * u->block_size),
				"neededDiskSize", (json_int_t)BASE_NEED, "files", (json_int_t)u->files, "layers");
	json_object_set_new(rec, "busybox", json_string(bbsum));
	return rec;
}

json_t *base_image(struct cache *c, const char *busybox, uint64_t disk, struct verr *e)
{
	double t0 = now_s();
	const char *canon = "vmsan/base";
	char bbsum[72], idsrc[160], digest[72], lockp[PATH_MAX];
	struct build b = { 0 };
	struct e4_usage u;
	struct verr le = { 0 };
	json_t *rec = NULL;
	bool ok = false, cached = true;
	int fd, lk = -1;

	if ((fd = open_busybox(&busybox, e)) < 0)
		return NULL;
	if (busybox_sum(c, fd, busybox, bbsum, e) < 0)
		goto out;
	snprintf(idsrc, sizeof(idsrc), "vmsan-base recipe %d format %d busybox %s", BASE_RECIPE, IMAGE_FORMAT, bbsum);
	sha256_hex(idsrc, strlen(idsrc), digest);
	bfmt(lockp, sizeof(lockp), "%s/refs/%s.lock", c->dir, BASE_KEY);
	if ((lk = lock_file(c, lockp, e)) < 0)
		goto out;
	if ((rec = load_image(c, digest + 7, &le))) {
		ok = check_disk(rec, disk, canon, e) == 0 && store_ref(c, canon, digest, e) == 0;
		goto out;
	}
	sweep_tmp(c);
	if (new_build(&b, c, disk ? disk : DEFAULT_DISK, e) < 0 || build_base(&b, fd, busybox, &u, e) < 0)
		goto out;
	rec = base_record(digest, bbsum, &b, &u);
	cached = false;
	if (publish(&b, digest + 7, rec, e) < 0 || store_ref(c, canon, digest, e) < 0)
		goto out;
	json_decref(rec);
	ok = (rec = load_image(c, digest + 7, e)) != NULL;
out:
	close(fd);
	drop_build(&b);
	if (lk >= 0)
		close(lk);
	if (!ok) {
		json_decref(rec);
		return NULL;
	}
	return answer(rec, canon, cached, t0);
}
