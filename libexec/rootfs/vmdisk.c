/* vmdisk.c: vms/<id>/disk.ext4, a VM's writable disk, which vmsan-init
 * boots from (/vmsan/init, the agent, its token and the image's
 * environment) and whose /upper and /work it lays over the image's
 * read-only disk.  Its cost does not depend on the image: a template per
 * (size, image environment, guest binaries) is made once in
 * images/vmdisk/, and each VM gets a sparse copy (a reflink where
 * possible) with its own token written over the placeholder.  The token
 * also goes to vms/<id>.token (0600), where vmsan-agentctl --vm finds it. */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* VM disk templates: rebuilt on demand, so prune may drop them all; a
 * build that died leaves <key>.ext4.<pid>.tmp, swept when its pid is gone. */
uint64_t sweep_templates(const struct cache *c, bool all)
{
	char p[PATH_MAX];
	uint64_t freed = 0;
	bfmt(p, sizeof(p), "%s/vmdisk", c->dir);
	int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		const char *t = strstr(de->d_name, ".ext4.");
		bool drop = all;
		if (t && strcmp(t + 6, "offset")) {
			long pid = strtol(t + 6, NULL, 10);
			drop = pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
		}
		struct stat st;
		if (drop && fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    unlinkat(dfd, de->d_name, 0) == 0)
			freed += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return freed;
}

#define TOKEN_HOLDER "0000000000000000000000000000000000000000000000000000000000000000"

/* Builds the template of a VM disk: everything but the token, which is a
 * placeholder of the same length whose data block is found once, so each
 * VM's copy only has it overwritten in place. */
static int build_template(const struct cache *c, const char *tpl, const char *init, const char *agent, const char *env,
			  uint64_t disk, uint64_t *tok_off, struct verr *e)
{
	char tmp[PATH_MAX], meta[PATH_MAX];
	sweep_templates(c, false);
	bfmt(tmp, sizeof(tmp), "%s.%d.tmp", tpl, (int)getpid());
	struct e4 *w = NULL;
	if (e4_mkfs(tmp, disk, true, "vmsan-vm", e) < 0 || !(w = e4_open(tmp, e)))
		goto fail;
	struct e4_entry d1 = { .path = "vmsan", .mode = S_IFDIR | 0700 };
	struct e4_entry d2 = { .path = "upper", .mode = S_IFDIR | 0755 };
	struct e4_entry d3 = { .path = "work", .mode = S_IFDIR | 0700 };
	if (e4_put(w, &d1, e) || e4_put(w, &d2, e) || e4_put(w, &d3, e) || put_file(w, "vmsan/init", 0755, init, e) ||
	    put_file(w, "vmsan/vmsan-agent", 0755, agent, e) ||
	    put_text(w, "vmsan/agent.token", 0600, TOKEN_HOLDER, e) || put_text(w, "vmsan/agent.env", 0600, env, e))
		goto fail;
	int rc = e4_close(w, e);
	w = NULL;
	if (rc < 0 || e4_data_offset(tmp, "vmsan/agent.token", tok_off, e) < 0)
		goto fail;
	/* the offset beside it, then the template: present means complete */
	bfmt(meta, sizeof(meta), "%s.offset", tpl);
	FILE *f = fopen(meta, "we");
	if (!f || fprintf(f, "%llu\n", (unsigned long long)*tok_off) < 0 || fclose(f) != 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot write %s", meta);
		goto fail;
	}
	own(c, meta);
	own(c, tmp);
	if (rename(tmp, tpl) < 0) {
		verr_sys(e, "ERR_IO", NULL, "cannot rename %s", tmp);
		goto fail;
	}
	return 0;
fail:
	if (w)
		e4_abort(w);
	unlink(tmp);
	return -1;
}

/* A VM's file that must not exist yet (0600). */
static int create_new(const char *path, int mode, const char *id, const char *what, struct verr *e)
{
	int fd = open(path, mode | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST)
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_EXISTS", "remove the VM first (vmsan rm -f)", "%s already has %s",
			 id, what);
	else if (fd < 0)
		verr_sys(e, "ERR_IO", NULL, "cannot create %s", path);
	return fd;
}

/* The image's environment, a "K=V" line each, into text: from the pull's
 * reply, else from the image's record. */
static int image_env(const struct cache *c, const struct vmdisk *v, char *text, size_t n, struct verr *e)
{
	json_t *rec = NULL, *env = NULL, *x;
	size_t k = 0, i;
	if (v->img)
		env = json_object_get(json_object_get(v->img, "config"), "env");
	else if (v->image) {
		if (!(rec = load_image(c, v->image + 7, e)))
			return -1;
		env = json_object_get(json_object_get(rec, "config"), "env");
	}
	json_array_foreach(env, i, x) {
		const char *s = json_string_value(x);
		if (s && !strchr(s, '\n') && k + strlen(s) + 2 < n)
			k += (size_t)snprintf(text + k, n - k, "%s\n", s);
	}
	text[k] = 0;
	json_decref(rec);
	return 0;
}

struct template
{
	char init[PATH_MAX], agent[PATH_MAX]; /* the guest binaries */
	char path[PATH_MAX];		      /* images/vmdisk/<key>.ext4 */
	uint64_t tok_off;		      /* where its token's placeholder is */
	bool hit;			      /* it was made before */
};

/* The template's name: a hash of its key, the disk size, the environment
 * and the guest binaries (device, inode, size, mtime). */
static int template_path(const struct cache *c, const struct vmdisk *v, const char *env, struct template *t,
			 struct verr *e)
{
	char key[PATH_MAX + 9000], hex[72];
	struct stat si, sa;
	bfmt(t->init, sizeof(t->init), "%s/vmsan-init", v->guest);
	bfmt(t->agent, sizeof(t->agent), "%s/vmsan-agent", v->guest);
	if (stat(t->init, &si) < 0 || stat(t->agent, &sa) < 0) {
		verr_sys(e, "ERR_GUEST_MISSING", "build it (make) or reinstall vmsan", "cannot find %s",
			 access(t->init, F_OK) ? t->init : t->agent);
		return -1;
	}
	int kl = snprintf(key, sizeof(key), "%llu\n%s\n%llu.%llu.%lld.%lld.%ld\n%llu.%llu.%lld.%lld.%ld\n",
			  (unsigned long long)v->disk, env, (unsigned long long)si.st_dev,
			  (unsigned long long)si.st_ino, (long long)si.st_size, (long long)si.st_mtim.tv_sec,
			  si.st_mtim.tv_nsec, (unsigned long long)sa.st_dev, (unsigned long long)sa.st_ino,
			  (long long)sa.st_size, (long long)sa.st_mtim.tv_sec, sa.st_mtim.tv_nsec);
	sha256_hex(key, (size_t)kl, hex);
	bfmt(t->path, sizeof(t->path), "%s/vmdisk", c->dir);
	if (mkdir_own(c, t->path, e) < 0)
		return -1;
	bfmt(t->path, sizeof(t->path), "%s/vmdisk/%.32s.ext4", c->dir, hex + 7);
	return 0;
}

/* The template, made before (its .offset file says where the token goes)
 * or built now. */
static int template_get(const struct cache *c, const struct vmdisk *v, const char *env, struct template *t,
			struct verr *e)
{
	char meta[PATH_MAX + 8];
	unsigned long long o = 0;
	int rc = 0;
	bfmt(meta, sizeof(meta), "%s.offset", t->path);
	FILE *f = access(t->path, F_OK) == 0 ? fopen(meta, "re") : NULL;
	t->hit = f && fscanf(f, "%llu", &o) == 1 && o;
	if (t->hit)
		t->tok_off = o;
	else
		rc = build_template(c, t->path, t->init, t->agent, env, v->disk, &t->tok_off, e);
	if (f)
		fclose(f);
	return rc;
}

/* The token: 32 random bytes, as hex. */
static int new_token(char token[65], struct verr *e)
{
	unsigned char raw[32];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		verr_sys(e, "ERR_SYSTEM", NULL, "getrandom");
		return -1;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(token + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* The VM's disk at path: the template copied, the token written over its
 * placeholder; *made once the file is there. */
static int write_disk(const struct cache *c, const struct vmdisk *v, const struct template *t, const char *path,
		      const char *token, bool *made, struct verr *e)
{
	char holder[64];
	int in, fd, rc = 0;
	if ((fd = create_new(path, O_RDWR, v->id, "a disk", e)) < 0)
		return -1;
	*made = true;
	own(c, path);
	in = open(t->path, O_RDONLY | O_CLOEXEC);
	if (in < 0 || copy_sparse(in, fd, v->disk, "copying the VM disk template", e) < 0 ||
	    pread(fd, holder, 64, (off_t)t->tok_off) != 64 || memcmp(holder, TOKEN_HOLDER, 64) != 0 ||
	    pwrite(fd, token, 64, (off_t)t->tok_off) != 64) {
		if (!verr_isset(e))
			verr_set(e, VMSAN_EXIT_SYS, "ERR_IO", "remove images/vmdisk/ to rebuild the template",
				 "the VM disk template %s is not as it was made", t->path);
		rc = -1;
	}
	if (in >= 0)
		close(in);
	close(fd);
	return rc;
}

/* vms/<id>.token, for vmsan-agentctl --vm; *made once the file is there. */
static int write_token(const struct cache *c, const struct vmdisk *v, const char *tok, const char *token, bool *made,
		       struct verr *e)
{
	int fd, rc = 0;
	if ((fd = create_new(tok, O_WRONLY, v->id, "a token", e)) < 0)
		return -1;
	*made = true;
	own(c, tok);
	if (write(fd, token, 64) != 64) {
		verr_sys(e, "ERR_IO", NULL, "cannot write %s", tok);
		rc = -1;
	}
	close(fd);
	return rc;
}

json_t *vmdisk_make(struct cache *c, const struct vmdisk *v, struct verr *e)
{
	char text[8192], dir[PATH_MAX], path[PATH_MAX] = "", tok[PATH_MAX] = "", token[65];
	struct template t;
	bool made_disk = false, made_tok = false;
	json_t *out = NULL;

	if (image_env(c, v, text, sizeof(text), e) < 0 || template_path(c, v, text, &t, e) < 0 ||
	    template_get(c, v, text, &t, e) < 0)
		goto out;
	bfmt(dir, sizeof(dir), "%s/%s", c->st.vms, v->id);
	bfmt(path, sizeof(path), "%s/disk.ext4", dir);
	bfmt(tok, sizeof(tok), "%s/%s.token", c->st.vms, v->id);
	if (mkdir_own(c, dir, e) < 0 || new_token(token, e) < 0 ||
	    write_disk(c, v, &t, path, token, &made_disk, e) < 0 || write_token(c, v, tok, token, &made_tok, e) < 0)
		goto out;
	out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:f, s:I}", "id", v->id, "dir", dir, "disk", path, "tokenFile",
			tok, "diskSize", (json_int_t)v->disk, "templateHit", t.hit, "seconds", now_s() - v->t0,
			"tokenOffset", (json_int_t)t.tok_off);
	if (v->img)
		json_object_set(out, "image", v->img);
out:
	if (!out) {
		if (made_disk)
			unlink(path);
		if (made_tok)
			unlink(tok);
	}
	explicit_bzero(token, sizeof(token));
	return out;
}
