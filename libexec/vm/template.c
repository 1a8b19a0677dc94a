/* create's automatic templates: a plain create starts from a prepared
 * state, made once.  The key is a hash of everything the guest sees at
 * boot (key_text says what); $VMSAN_DIR/templates/<key>/ holds a snapshot
 * of a VM of that key taken as soon as its agent answered, before anyone
 * had it (no user code ever ran in it), laid out as snapshot.c's are so
 * that create restores it with --snapshot's code.  A create that finds
 * the key's template restores it (held with a shared lock, as --snapshot
 * holds a snapshot); one that does not boots cold and then makes it (in a
 * hidden directory, renamed into place: two creates making the same key
 * cannot mix their files; the first rename wins).  A template that is not
 * whole, or whose restore fails, is removed and the create boots cold.
 * Also here: vmsan template list|rm, and what vmsan gc takes of them. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "lib/rootconf.h"
#include "../proto/sha256.h"
#include "vm/vm.h"

#define TEMPLATE_FORMAT 1 /* bump when a template's layout or key changes */

const char template_usage[] = "usage: vmsan template list|ls [--json]\n"
			      "       vmsan template delete|rm KEY...|--all [--json]\n\n"
			      "vmsan create keeps, per set of what the guest sees at boot (image digest,\n"
			      "kernel, vCPUs, memory, disk size, resolvers, VMM, accelerator, guest agent),\n"
			      "a template in $VMSAN_DIR/templates: a snapshot of a VM of that kind taken as\n"
			      "soon as its agent answered, before it was handed to anyone.  The next create\n"
			      "of that kind restores it (a new id, disk copy, token, clock, name and seed)\n"
			      "instead of booting.  create --cold, VMSAN_TEMPLATES=off or templates = off in\n"
			      "the config turn them off; vmsan gc removes those whose image or kernel is\n"
			      "gone and keeps at most templates-max (config, default 8), least recently\n"
			      "used first out.\n";

static bool valid_key(const char *s)
{
	return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/* $VMSAN_DIR/templates (the user's alone, made on demand), a descriptor;
 * -1 without e set when it is not there and not wanted. */
static int templates_dir(const struct state *st, bool create, struct verr *e)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%.4000s/templates", st->dir);
	if (create && mkdir(p, 0700) < 0 && errno != EEXIST) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot create %s", p);
		return -1;
	}
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (create || errno != ENOENT))
		verr_sys(e, "ERR_STATE", NULL, "cannot open %s", p);
	return fd;
}

/* A file's identity (device, inode, size, modification time): a file
 * replaced or rewritten has another. */
static void file_id(const char *path, char *out, size_t n)
{
	struct stat sb;
	if (stat(path, &sb) < 0)
		snprintf(out, n, "%s missing", path);
	else
		snprintf(out, n, "%s %llu.%llu.%lld.%lld.%ld", path, (unsigned long long)sb.st_dev,
			 (unsigned long long)sb.st_ino, (long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
			 sb.st_mtim.tv_nsec);
}

/* ---- create's side --------------------------------------------------------- */

static bool word_is(const char *v, const char *a, const char *b)
{
	return !strcasecmp(v, a) || !strcasecmp(v, b);
}

/* Whether this create may use or make a template, and if not, why. */
int tmpl_init(struct create *c, struct verr *e)
{
	struct tmpl *t = &c->t;
	const char *env = getenv("VMSAN_TEMPLATES"), *from = "VMSAN_TEMPLATES", *v = env;
	char conf[64];
	bool found = false;
	t->start = c->o.snapshot ? "snapshot" : "cold";
	if (!(env && *env)) {
		if (config_get(&c->st, "templates", conf, sizeof conf, &found, e) < 0)
			return -1;
		from = "the config file's templates";
		v = found ? conf : "on";
	}
	if (!word_is(v, "on", "yes") && !word_is(v, "off", "no"))
		return verr_set(e, VMSAN_EXIT_USAGE, "ERR_CONFIG", "give on or off", "%s: '%s' is neither on nor off",
				from, v),
		       -1;
	if (c->o.snapshot)
		snprintf(t->off, sizeof t->off, "--snapshot restores the snapshot given");
	else if (c->o.cold)
		snprintf(t->off, sizeof t->off, "--cold");
	else if (word_is(v, "off", "no"))
		snprintf(t->off, sizeof t->off, "%s is off", from);
	else if (c->o.no_netns)
		snprintf(t->off, sizeof t->off, "--no-netns: the guest's address is its slot's");
	else if (strcmp(c->o.vmm, "qemu"))
		snprintf(t->off, sizeof t->off, "QEMU VMs only, so far");
	t->on = !t->off[0];
	return 0;
}

/* The key's inputs: all the guest sees at boot.  The image by digest
 * (what vmsan-rootfs resolved: an image pulled again under the same
 * reference is another key); the kernel, the guest's init and agent (they
 * are on the VM's disk), QEMU and vmsan-fc (which gives QEMU its devices:
 * a saved state restores only into the same set) by file identity; the
 * host's kernel (KVM's
 * behaviour, and the KVM boot check's verdict, follow it); the sizes; the
 * resolvers (on the kernel's command line).  The guest's address, gateway
 * and agent port are the same in every VM's namespace; the hostname, token,
 * clock and seed are a restore's own; the policy, ports, bandwidth,
 * timeout and project are the host's and applied after a restore. */
static int key_text(struct create *c, json_t *img)
{
	struct tmpl *t = &c->t;
	char kern[PATH_MAX + 100], qemu[PATH_MAX + 100], init[PATH_MAX + 100], agent[PATH_MAX + 100],
		fc[PATH_MAX + 100];
	char p[PATH_MAX + 32], dns[200] = "", why[128];
	unsigned long long disk;
	struct rootconf rc;
	struct utsname u;
	size_t i;
	json_t *x;
	if (parse_size(c->o.disk ? c->o.disk : "10G", 30, &disk, why, sizeof why) != 0)
		return -1; /* vmsan-rootfs vmdisk says what is wrong with it */
	t->disk = disk;
	file_id(c->kernel, kern, sizeof kern);
	file_id(rootconf_load(&rc, &(struct verr){ 0 }) == 0 ? rc.qemu : "unknown", qemu, sizeof qemu);
	snprintf(p, sizeof p, "%s/vmsan-fc", libexec);
	file_id(p, fc, sizeof fc);
	snprintf(p, sizeof p, "%s/guest/vmsan-init", libexec);
	file_id(p, init, sizeof init);
	snprintf(p, sizeof p, "%s/guest/vmsan-agent", libexec);
	file_id(p, agent, sizeof agent);
	json_array_foreach(c->o.dns, i, x)
		snprintf(dns + strlen(dns), sizeof dns - strlen(dns), "%s%s", i ? "," : "", json_string_value(x));
	if (uname(&u) < 0)
		memset(&u, 0, sizeof u);
	snprintf(t->text, sizeof t->text,
		 "format %d\nimage %s\nkernel %s\nvmm %s %s\naccel %s\nhost %s %s %s\nvcpus %lld\nmemory %lld\n"
		 "disk %llu\ndns %s\nnetns own\nagent port %d\nguest init %s\nguest agent %s\ndevices %s\n",
		 TEMPLATE_FORMAT, jstr(img, "digest") ?: "?", kern, c->o.vmm, qemu, c->o.accel ? c->o.accel : "auto",
		 u.release, u.version, u.machine, c->o.vcpus, c->o.mem, disk, dns, AGENT_PORT, init, agent, fc);
	uint8_t h[32];
	sha256(t->text, strlen(t->text), h);
	for (int k = 0; k < 16; k++)
		snprintf(t->key + 2 * k, 3, "%02x", h[k]);
	return 0;
}

/* What is wrong with the template open at dfd (record m), or NULL: it
 * must be this key's and whole, or it is never used. */
static const char *bad_template(const struct create *c, int dfd, json_t *m)
{
	static char why[160];
	if (!json_is_object(m))
		return "its record is missing or not JSON";
	if (jint(m, "format", 0) != TEMPLATE_FORMAT || strcmp(jstr(m, "templateKey") ?: "", c->t.key) ||
	    jint(m, "memSizeMib", 0) != c->o.mem || jint(m, "vcpuCount", 0) != c->o.vcpus ||
	    strcmp(jstr(m, "vmm") ?: "", c->o.vmm) || strcmp(jstr(m, "kernel") ?: "", c->kernel))
		return "its record is not its key's";
	const char *acc = jstr(m, "accelUsed") ?: "";
	if (jint(m, "tokenOffset", 0) <= 0 || jint(m, "diskSize", 0) <= 0 || (strcmp(acc, "kvm") && strcmp(acc, "tcg")))
		return "its record lacks the token's place, the disk's size or the accelerator";
	if (jint(m, "diskSize", 0) != (long long)c->t.disk)
		return "its disk is not its key's size";
	const struct {
		const char *name;
		long long size; /* 0: any but empty */
	} f[] = {
		{ "state", 0 }, { "memory", c->o.mem << 20 }, { "disk.ext4", jint(m, "diskSize", 0) }, { "token", 64 }
	};
	for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
		struct stat sb;
		if (fstatat(dfd, f[i].name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
			return snprintf(why, sizeof why, "its %s is missing", f[i].name), why;
		if (f[i].size ? sb.st_size != f[i].size : sb.st_size == 0)
			return snprintf(why, sizeof why, "its %s has the wrong size", f[i].name), why;
	}
	return NULL;
}

/* templates/<name> moved aside (no create finds it from now on), then
 * removed unless a create still holds it (fd, if ours, is upgraded; gc
 * removes what is left). */
static void remove_template(int tfd, const char *name, int fd)
{
	char aside[96];
	snprintf(aside, sizeof aside, ".%s.%d.bad", name, (int)getpid());
	if (renameat(tfd, name, tfd, aside) < 0)
		return;
	int own = fd < 0 ? openat(tfd, aside, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : fd;
	if (own >= 0 && flock(own, LOCK_EX | LOCK_NB) == 0)
		rm_tree_at(tfd, aside);
	if (own >= 0 && own != fd)
		close(own);
}

static void warn(const char *what)
{
	if (!json_mode)
		fprintf(stderr, "vmsan %s: warning: %s\n", cmd, what);
}

int tmpl_find(struct create *c, json_t *img, struct verr *e)
{
	struct tmpl *t = &c->t;
	(void)e;
	if (key_text(c, img) < 0) {
		t->on = false;
		return 0;
	}
	int tfd = templates_dir(&c->st, false, &(struct verr){ 0 });
	int dfd = tfd < 0 ? -1 : openat(tfd, t->key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* a delete (exclusive) holds it: as if it were not there */
	if (dfd < 0 || flock(dfd, LOCK_SH | LOCK_NB) < 0) {
		if (dfd >= 0)
			close(dfd);
		if (tfd >= 0)
			close(tfd);
		return 0;
	}
	int mfd = openat(dfd, "snapshot.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	json_t *m = mfd < 0 ? NULL : json_loadfd(mfd, 0, NULL);
	if (mfd >= 0)
		close(mfd);
	const char *why = bad_template(c, dfd, m);
	if (why) {
		snprintf(t->error, sizeof t->error, "template %s refused and removed: %s", t->key, why);
		warn(t->error);
		remove_template(tfd, t->key, dfd);
		json_decref(m);
		close(dfd);
		close(tfd);
		return 0;
	}
	close(tfd);
	futimens(dfd, NULL); /* its last use: gc keeps the most recently used */
	c->snap = m;
	c->snapfd = dfd;
	snprintf(c->snapdir, sizeof c->snapdir, "%.3800s/templates/%s", c->st.dir, t->key);
	c->b.accel = jstr(m, "accelUsed"); /* restored as it was made */
	t->restoring = true;
	t->start = "template";
	return 1;
}

void tmpl_drop(struct create *c, const struct verr *why)
{
	struct tmpl *t = &c->t;
	snprintf(t->error, sizeof t->error, "template %s did not restore (%s): removed; booted cold", t->key,
		 why->message);
	warn(t->error);
	int tfd = templates_dir(&c->st, false, &(struct verr){ 0 });
	if (tfd >= 0) {
		remove_template(tfd, t->key, c->snapfd);
		close(tfd);
	}
	t->restoring = false;
	t->retried = true;
	t->start = "cold";
}

static long long templates_max(const struct state *st)
{
	static const char *const keys[] = { "templates-max", "templates_max" };
	char conf[64];
	bool found = false;
	for (int k = 0; k < 2; k++) {
		if (config_get(st, keys[k], conf, sizeof conf, &found, &(struct verr){ 0 }) == 0 && found) {
			char *end;
			long long v = strtoll(conf, &end, 10);
			if (end != conf && !*end && v >= 1 && v <= 100000)
				return v;
			fprintf(stderr, "vmsan %s: %s: '%s' is not 1 to 100000: %d used\n", cmd, keys[k], conf,
				TEMPLATES_MAX_DEFAULT);
		}
	}
	return TEMPLATES_MAX_DEFAULT;
}

/* The templates beyond templates-max, least recently used first, removed
 * (keep: one never to remove); each appended to found (NULL: not said). */
static void trim(const struct state *st, int tfd, const char *keep, bool dry, json_t *found)
{
	json_t *all = json_array(), *x;
	DIR *d = fdopendir(dup(tfd));
	struct dirent *de;
	struct stat sb;
	if (d) /* from the start: a dup shares the offset of a read before */
		rewinddir(d);
	while (d && (de = readdir(d)))
		if (valid_key(de->d_name) && fstatat(tfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			json_array_append_new(
				all, json_pack("{s:s, s:I}", "key", de->d_name, "used",
					       (json_int_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec));
	if (d)
		closedir(d);
	long long max = templates_max(st), n = (long long)json_array_size(all);
	while (n > max) {
		size_t i, old = 0;
		json_array_foreach(all, i, x)
			if (jint(x, "used", 0) < jint(json_array_get(all, old), "used", 0))
				old = i;
		const char *k = jstr(json_array_get(all, old), "key");
		if (!(keep && !strcmp(k, keep))) {
			if (found)
				json_array_append_new(found, json_pack("{s:n, s:o, s:s}", "id", "found",
								       json_sprintf("template %s beyond templates-max "
										    "(%lld), least recently used",
										    k, max),
								       "action", "remove"));
			if (!dry)
				remove_template(tfd, k, -1);
		}
		json_array_remove(all, old);
		n--;
	}
	json_decref(all);
}

/* Token `to` for VM id where it is kept: its state file, and its disk's
 * /vmsan/agent.token (at tokenOffset, where it must hold `from`), which
 * the guest's init reads at boot and never writes. */
static int put_token(struct create *c, const char *from, const char *to, struct verr *e)
{
	char name[96], tmp[112], held[64];
	long long off = jint(c->rec, "tokenOffset", 0);
	int d = open(jstr(c->rec, "disk") ?: "", O_RDWR | O_NOFOLLOW | O_CLOEXEC), fd;
	if (d < 0 || off <= 0 || pread(d, held, 64, (off_t)off) != 64 || memcmp(held, from, 64) ||
	    pwrite(d, to, 64, (off_t)off) != 64 || fsync(d) < 0) {
		if (d >= 0)
			close(d);
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_TOKEN", NULL,
				 "%s's disk does not hold its token where its record says", c->id);
	}
	close(d);
	snprintf(name, sizeof name, "%s.token", c->id);
	snprintf(tmp, sizeof tmp, ".%s.token.%d", c->id, (int)getpid());
	fd = openat(c->st.vmsfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, to, 64) != 64 || fsync(fd) < 0 || renameat(c->st.vmsfd, tmp, c->st.vmsfd, name) < 0) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot write %s's token", c->id);
		unlinkat(c->st.vmsfd, tmp, 0);
	}
	if (fd >= 0)
		close(fd);
	return verr_isset(e) ? -1 : 0;
}

/* The maker's token, drawn anew once the template holds the old one:
 * every VM restored from the template has that one in its guest memory,
 * and it must not open the maker.  Undone where the agent does not take
 * it. */
static int new_token(struct create *c, const char *tpath, const char *old, struct verr *e)
{
	char tok[65];
	unsigned char raw[32];
	int rc = -1;
	if (strlen(old) != 64 || getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_TOKEN", NULL, "cannot draw a token for %s", c->id);
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(tok + 2 * i, 3, "%02x", raw[i]);
	if (put_token(c, old, tok, e) == 0) {
		rc = restore_token(&c->st, c->id, tpath, jstr(c->b.net, "agentAddr"), e);
		if (rc < 0)
			put_token(c, tok, old, &(struct verr){ 0 });
	}
	explicit_bzero(raw, sizeof raw);
	explicit_bzero(tok, sizeof tok);
	return rc;
}

/* The VM just booted (its agent answered; nobody has had it yet) saved as
 * its key's template and resumed; it is then given the host's clock (it
 * stood still while saved), a seed of its own (its generator's state is
 * in the template) and a token of its own.  A failure is said, never
 * fatal. */
void tmpl_make(struct create *c)
{
	struct tmpl *t = &c->t;
	struct verr e = { 0 };
	char tmp[96], path[PATH_MAX], tok[300], when[32];
	json_t *r = NULL, *meta = NULL;
	bool made = false;
	if (!t->on || t->restoring || !t->key[0])
		return;
	double t0 = now_ms();
	int tfd = templates_dir(&c->st, true, &e);
	snprintf(tmp, sizeof tmp, ".%s.%d.tmp", t->key, (int)getpid());
	if (tfd < 0 || mkdirat(tfd, tmp, 0700) < 0) {
		if (!verr_isset(&e))
			verr_sys(&e, "ERR_STATE_WRITE", NULL, "cannot create a template directory");
		goto out;
	}
	made = true;
	pause_at("template");
	say("%s: saving it as template %s", c->id, t->key);
	snprintf(path, sizeof path, "%.3800s/templates/%s", c->st.dir, tmp);
	if (read_token(&c->st, c->id, tok, sizeof tok) < 0) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_TOKEN", NULL, "%s has no agent token", c->id);
		goto out;
	}
	if (!(r = save_vm(c->id, c->rec, path, true, &e)))
		goto out;
	utc_iso(time(NULL), when);
	meta = snapshot_meta(c->rec, t->key, when, r);
	json_object_update_new(meta, json_pack("{s:i, s:s, s:s, s:s}", "format", TEMPLATE_FORMAT, "templateKey", t->key,
					       "keyText", t->text, "accelUsed", jstr(c->b.vmm, "accel") ?: ""));
	if (snapshot_files(tfd, tmp, meta, tok, &e) < 0 || new_token(c, path, tok, &e) < 0)
		goto out;
	if (renameat2(tfd, tmp, tfd, t->key, RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			verr_sys(&e, "ERR_STATE_WRITE", NULL, "cannot rename the template into place");
		else
			snprintf(t->note, sizeof t->note, "another create made template %s meanwhile", t->key);
		goto out;
	}
	made = false;
	fsync(tfd);
	t->start = "cold+template-made";
	json_object_set_new(c->timing, "templateMs", json_real(now_ms() - t0));
	trim(&c->st, tfd, t->key, false, NULL);
out:
	explicit_bzero(tok, sizeof tok);
	if (verr_isset(&e)) {
		snprintf(t->error, sizeof t->error, "no template made: %s", e.message);
		warn(t->error);
	}
	if (made)
		rm_tree_at(tfd, tmp);
	if (tfd >= 0)
		close(tfd);
	json_decref(r);
	json_decref(meta);
}

/* create --json's "start" and "template". */
void tmpl_report(struct create *c, json_t *doc)
{
	struct tmpl *t = &c->t;
	json_t *o = json_pack("{s:s?}", "key", t->key[0] ? t->key : NULL);
	if (t->off[0])
		json_object_set_new(o, "off", json_string(t->off));
	if (t->error[0])
		json_object_set_new(o, "error", json_string(t->error));
	if (t->note[0])
		json_object_set_new(o, "note", json_string(t->note));
	json_object_set_new(doc, "start", json_string(t->start ? t->start : "cold"));
	json_object_set_new(doc, "template", o);
}

/* ---- vmsan template list|rm, and gc ------------------------------------- */

/* A template's record, NULL if it is not one (a hidden or bad name, no
 * record). */
static json_t *load_template(int tfd, const char *key, bool with_key_text)
{
	char p[96];
	if (!valid_key(key))
		return NULL;
	snprintf(p, sizeof p, "%s/snapshot.json", key);
	int fd = openat(tfd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	json_t *m = fd < 0 ? NULL : json_loadfd(fd, 0, NULL);
	if (fd >= 0)
		close(fd);
	if (!json_is_object(m)) {
		json_decref(m);
		return NULL;
	}
	struct stat sb;
	char when[32] = "";
	if (fstatat(tfd, key, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		utc_iso(sb.st_mtim.tv_sec, when);
	json_object_set_new(m, "lastUsedAt", json_string(when));
	json_object_set_new(m, "diskUsageBytes", json_integer(du_at(tfd, key)));
	if (!with_key_text)
		json_object_del(m, "keyText");
	return m;
}

static int template_list(void)
{
	struct verr e = { 0 };
	struct state st;
	json_t *all = json_array(), *m;
	size_t i;
	if (state_open(&st, false, &e) == 0) {
		int tfd = templates_dir(&st, false, &e);
		DIR *d = tfd < 0 ? NULL : fdopendir(dup(tfd));
		struct dirent *de;
		while (d && (de = readdir(d)))
			if ((m = load_template(tfd, de->d_name, false)))
				json_array_append_new(all, m);
		if (d)
			closedir(d);
		if (tfd >= 0)
			close(tfd);
		state_release(&st);
	}
	if (verr_isset(&e) && !verr_take(&e, "ERR_STATE_DIR_MISSING")) {
		json_decref(all);
		return report(&e);
	}
	if (json_mode) {
		json_dumpf(all, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (!json_array_size(all)) {
		printf("no templates\n");
	} else {
		printf("%-32s %-28s %5s %7s %-20s %-20s %9s\n", "TEMPLATE", "IMAGE", "VCPUS", "MEMORY", "CREATED",
		       "LAST USED", "DISK USE");
		json_array_foreach(all, i, m)
			printf("%-32s %-28.28s %5lld %5lldMi %-20s %-20s %7.1fMi\n", jstr(m, "id"),
			       jstr(m, "runtime") ?: jstr(json_object_get(m, "image"), "ref") ?: "?",
			       jint(m, "vcpuCount", 0), jint(m, "memSizeMib", 0), jstr(m, "createdAt") ?: "",
			       jstr(m, "lastUsedAt"), (double)jint(m, "diskUsageBytes", 0) / 1048576.0);
	}
	json_decref(all);
	return 0;
}

/* Removes the templates named (all: every one); one a create is restoring
 * from is refused (it holds it). */
static int template_delete(json_t *keys, bool all)
{
	struct verr e = { 0 };
	struct state st;
	json_t *gone = json_array(), *v;
	size_t i;
	int rc = 0, tfd = -1;
	bool have = state_open(&st, false, &e) == 0;
	if (have)
		tfd = templates_dir(&st, false, &e);
	verr_take(&e, "ERR_STATE_DIR_MISSING");
	if (all && tfd >= 0) {
		DIR *d = fdopendir(dup(tfd));
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (valid_key(de->d_name))
				json_array_append_new(keys, json_string(de->d_name));
		if (d)
			closedir(d);
	}
	json_array_foreach(keys, i, v) {
		const char *k = json_string_value(v);
		int dfd =
			valid_key(k) && tfd >= 0 ? openat(tfd, k, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
		if (!valid_key(k))
			verr_set(&e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_TEMPLATE", "run 'vmsan template list'",
				 "invalid template key '%.80s': 32 hex digits", k);
		else if (dfd < 0)
			verr_set(&e, VMSAN_EXIT_FAIL, "ERR_TEMPLATE_NOT_FOUND", "run 'vmsan template list'",
				 "template not found: %s", k);
		else if (flock(dfd, LOCK_EX | LOCK_NB) < 0)
			verr_set(&e, VMSAN_EXIT_FAIL, "ERR_TEMPLATE_IN_USE", "try again once the create is done",
				 "template %s is being restored from", k);
		else if (rm_tree_at(tfd, k) < 0)
			verr_sys(&e, "ERR_STATE_WRITE", NULL, "cannot remove all of template %s", k);
		else
			json_array_append_new(gone, json_string(k));
		if (dfd >= 0)
			close(dfd);
		if (verr_isset(&e)) {
			rc = report(&e);
			memset(&e, 0, sizeof e);
		}
	}
	if (tfd >= 0)
		close(tfd);
	if (have)
		state_release(&st);
	if (!rc)
		report_deleted(gone, "Template");
	json_decref(gone);
	return rc;
}

int cmd_template(int argc, char **argv)
{
	bool all = false;
	const struct sub_flag flags[] = { { "--all", &all, true }, { 0 } };
	const char *sub;
	json_t *args = json_array();
	int rc = sub_args(argc, argv, flags, &sub, args);
	if (rc) {
		json_decref(args);
		return rc;
	}
	if (sub_is(sub, "list", "ls"))
		rc = json_array_size(args) || all ? usage_error("template list takes no arguments") : template_list();
	else if (sub_is(sub, "delete", "rm"))
		rc = !json_array_size(args) == !all ? usage_error("give the templates to delete, or --all")
						    : template_delete(args, all);
	else
		rc = usage_error(sub ? "no such template command '%s' (list, delete)" : "give a template command%s",
				 sub ? sub : " (list, delete)");
	json_decref(args);
	return rc;
}

/* What is wrong with a template for gc, or NULL: its image or its kernel
 * gone or changed (no create's key can name it again), its record bad. */
static const char *stale(int tfd, const char *key, char *why, size_t n)
{
	json_t *m = load_template(tfd, key, true);
	json_t *img = json_object_get(m, "image");
	const char *kern = jstr(m, "kernel"), *text = jstr(m, "keyText");
	char id[PATH_MAX + 100], line[PATH_MAX + 110] = "";
	if (kern) {
		file_id(kern, id, sizeof id);
		snprintf(line, sizeof line, "\nkernel %s\n", id);
	}
	if (!m || !text || !kern)
		snprintf(why, n, "template %s: its record is bad", key);
	else if (!jstr(img, "path") || access(jstr(img, "path"), R_OK) < 0)
		snprintf(why, n, "template %s: its image is gone (%.200s)", key, jstr(img, "ref") ?: "?");
	else if (!strstr(text, line))
		snprintf(why, n, "template %s: its kernel is gone or changed (%.200s)", key, kern);
	json_decref(m);
	return why[0] ? why : NULL;
}

/* Templates a killed create left half made or refused (hidden
 * .KEY.PID.tmp/.bad whose process is gone and which nobody holds), those
 * whose image or kernel is gone, and those beyond templates-max. */
void gc_templates(struct state *st, bool dry, json_t *found)
{
	int tfd = templates_dir(st, false, &(struct verr){ 0 });
	DIR *d = tfd < 0 ? NULL : fdopendir(dup(tfd));
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char why[400] = "";
		if (de->d_name[0] == '.') {
			if (!tmp_abandoned(de->d_name, ".tmp") && !tmp_abandoned(de->d_name, ".bad"))
				continue;
			snprintf(why, sizeof why, "unfinished template %s", de->d_name);
		} else if (!valid_key(de->d_name) || !stale(tfd, de->d_name, why, sizeof why)) {
			continue;
		}
		int fd = openat(tfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) { /* a create holds it */
			if (fd >= 0)
				close(fd);
			continue;
		}
		json_array_append_new(found, json_pack("{s:n, s:s, s:s}", "id", "found", why, "action", "remove"));
		if (!dry)
			rm_tree_at(tfd, de->d_name);
		close(fd);
	}
	if (d)
		closedir(d);
	if (tfd >= 0) {
		trim(st, tfd, NULL, dry, found);
		close(tfd);
	}
}
