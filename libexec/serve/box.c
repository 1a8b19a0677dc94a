/* The sandboxes: a table in memory, a record per sandbox on disk (so a
 * restarted daemon finds them again), and the reaper that ends each one
 * when its time is up.
 *
 * Records live in $VMSAN_DIR/serve/<id>.json (the directory 0700, the
 * files 0600, written whole to a temporary file and renamed). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/serve.h"

#define BOXES_MAX 1024

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static struct box boxes[BOXES_MAX];
static size_t nboxes;
static int dirfd_ = -1;
static bool stopping;
static pthread_t reaper;
static bool reaper_running;

static json_t *box_json(const struct box *b)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:i, s:i, s:i, s:O}", "sandboxID", b->id, "owner",
			      b->owner, "templateID", b->template, "started", (json_int_t)b->started, "end",
			      (json_int_t)b->end, "pauseOnTimeout", b->pause_on_timeout, "cpuCount", b->vcpus,
			      "memoryMB", b->mem_mib, "diskSizeMB", b->disk_mib, "metadata", b->metadata);

	if (j && b->traffic_token[0])
		json_object_set_new(j, "trafficToken", json_string(b->traffic_token));
	return j;
}

static int box_from_json(json_t *j, struct box *b)
{
	const char *id = NULL, *owner = NULL, *tmpl = NULL;
	json_int_t started = 0, end = 0;
	int pause = 0;
	json_t *md = NULL;
	char why[128];

	memset(b, 0, sizeof *b);
	if (json_unpack(j, "{s:s, s:s, s:s, s:I, s:I, s:b, s:i, s:i, s:i, s:o}", "sandboxID", &id, "owner", &owner,
			"templateID", &tmpl, "started", &started, "end", &end, "pauseOnTimeout", &pause, "cpuCount",
			&b->vcpus, "memoryMB", &b->mem_mib, "diskSizeMB", &b->disk_mib, "metadata", &md) != 0 ||
	    valid_vm_id(id, why, sizeof why) != 0 || !json_is_object(md) || strlen(owner) >= sizeof b->owner ||
	    strlen(tmpl) >= sizeof b->template)
		return -1;
	snprintf(b->id, sizeof b->id, "%s", id);
	snprintf(b->owner, sizeof b->owner, "%s", owner);
	snprintf(b->template, sizeof b->template, "%s", tmpl);
	b->started = (time_t)started;
	b->end = (time_t)end;
	b->pause_on_timeout = pause;
	b->metadata = json_incref(md);
	const char *tt = json_string_value(json_object_get(j, "trafficToken"));
	if (tt && strlen(tt) < sizeof b->traffic_token)
		snprintf(b->traffic_token, sizeof b->traffic_token, "%s", tt);
	return 0;
}

static int store(const struct box *b, struct verr *e)
{
	char tmp[96], name[80];
	json_t *j = box_json(b);
	int fd, rc = -1;

	snprintf(name, sizeof name, "%s.json", b->id);
	snprintf(tmp, sizeof tmp, ".%s.tmp", b->id);
	fd = openat(dirfd_, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || !j || json_dumpfd(j, fd, JSON_COMPACT) != 0 || fsync(fd) != 0) {
		verr_sys(e, "ERR_SERVE_STATE", NULL, "cannot write the record of sandbox %s", b->id);
		goto out;
	}
	if (renameat(dirfd_, tmp, dirfd_, name) != 0) {
		verr_sys(e, "ERR_SERVE_STATE", NULL, "cannot store the record of sandbox %s", b->id);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlinkat(dirfd_, tmp, 0);
	json_decref(j);
	return rc;
}

static void load_all(void)
{
	DIR *d = fdopendir(dup(dirfd_));
	struct dirent *de;

	if (!d)
		return;
	rewinddir(d);
	while ((de = readdir(d)) && nboxes < BOXES_MAX) {
		size_t n = strlen(de->d_name);
		json_error_t je;
		json_t *j;

		if (de->d_name[0] == '.' || n < 6 || strcmp(de->d_name + n - 5, ".json"))
			continue;
		int fd = openat(dirfd_, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &je);
		close(fd);
		if (j && box_from_json(j, &boxes[nboxes]) == 0)
			nboxes++;
		json_decref(j);
	}
	closedir(d);
}

int serve_dir(const char *path, struct verr *e)
{
	struct stat st;
	int fd;

	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return verr_sys(e, "ERR_SERVE_STATE", NULL, "cannot make %s", path), -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return verr_sys(e, "ERR_SERVE_STATE", NULL, "cannot open %s", path), -1;
	if (fstat(fd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_SERVE_STATE", "chmod 700 it; it must be yours",
				 "%s is not a directory of yours with mode 0700", path);
	}
	return fd;
}

int box_init(const char *statedir, struct verr *e)
{
	char path[4200];

	snprintf(path, sizeof path, "%s/serve", statedir);
	if ((dirfd_ = serve_dir(path, e)) < 0)
		return -1;
	load_all();
	return 0;
}

static struct box *find(const char *id)
{
	for (size_t i = 0; i < nboxes; i++)
		if (!strcmp(boxes[i].id, id))
			return &boxes[i];
	return NULL;
}

int box_add(const struct box *b, struct verr *e)
{
	int rc = -1;

	pthread_mutex_lock(&lock);
	if (nboxes == BOXES_MAX) {
		verr_fail(e, VMSAN_EXIT_FAIL, "ERR_SERVE_FULL", "kill some sandboxes", "%d sandboxes already",
			  BOXES_MAX);
	} else if (store(b, e) == 0) {
		boxes[nboxes] = *b;
		boxes[nboxes].metadata = json_incref(b->metadata);
		nboxes++;
		rc = 0;
		pthread_cond_signal(&wake);
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

bool box_get(const char *id, const char *owner, struct box *out)
{
	bool ok = false;

	pthread_mutex_lock(&lock);
	struct box *b = find(id);
	if (b && (!owner || !strcmp(b->owner, owner))) {
		*out = *b;
		out->metadata = json_incref(b->metadata);
		ok = true;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

void box_release(struct box *b)
{
	json_decref(b->metadata);
	b->metadata = NULL;
}

int box_set_end(const char *id, time_t end, struct verr *e)
{
	int rc = -1;

	pthread_mutex_lock(&lock);
	struct box *b = find(id);
	if (b) {
		time_t old = b->end;
		b->end = end;
		rc = store(b, e);
		if (rc)
			b->end = old;
		pthread_cond_signal(&wake);
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void box_remove(const char *id)
{
	char name[80];

	pthread_mutex_lock(&lock);
	struct box *b = find(id);
	if (b) {
		snprintf(name, sizeof name, "%s.json", id);
		unlinkat(dirfd_, name, 0);
		json_decref(b->metadata);
		*b = boxes[--nboxes];
	}
	pthread_mutex_unlock(&lock);
}

size_t box_list(const char *owner, struct box **out)
{
	size_t n = 0;

	pthread_mutex_lock(&lock);
	*out = calloc(nboxes ? nboxes : 1, sizeof **out);
	for (size_t i = 0; *out && i < nboxes; i++)
		if (!owner || !strcmp(boxes[i].owner, owner)) {
			(*out)[n] = boxes[i];
			json_incref(boxes[i].metadata);
			n++;
		}
	pthread_mutex_unlock(&lock);
	return n;
}

void box_free_list(struct box *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(v[i].metadata);
	free(v);
}

/* Ends a sandbox whose time is up: paused (E2B's autoPause) or killed. */
static void expire(const struct box *b)
{
	struct verr e = { 0 };
	const char *args[] = { b->id, NULL };
	json_t *r;

	if (b->pause_on_timeout) {
		r = run_vmsan("pause", args, &e);
		if (r) {
			json_decref(r);
			box_set_end(b->id, 0, &e); /* paused: no end until resumed */
			return;
		}
		fprintf(stderr, "vmsan-serve: cannot pause %s at its timeout (%s); killing it\n", b->id, e.message);
		e = (struct verr){ 0 };
	}
	const char *rm[] = { "--force", b->id, NULL };
	r = run_vmsan("rm", rm, &e);
	if (!r && strcmp(e.code, "ERR_VM_NOT_FOUND")) {
		/* Kept, and tried again: a sandbox is never forgotten alive. */
		fprintf(stderr, "vmsan-serve: cannot remove %s at its timeout (%s); trying again in 30 s\n", b->id,
			e.message);
		box_set_end(b->id, time(NULL) + 30, &e);
		return;
	}
	json_decref(r);
	box_remove(b->id);
}

static void *reap(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stopping) {
		time_t now = time(NULL), next = now + 3600;
		struct box due;
		bool found = false;

		for (size_t i = 0; i < nboxes; i++) {
			if (boxes[i].end == 0)
				continue;
			if (boxes[i].end <= now) {
				due = boxes[i];
				due.metadata = NULL;
				found = true;
				break;
			}
			if (boxes[i].end < next)
				next = boxes[i].end;
		}
		if (found) {
			pthread_mutex_unlock(&lock);
			expire(&due);
			pthread_mutex_lock(&lock);
			continue;
		}
		struct timespec ts = { .tv_sec = next };
		pthread_cond_timedwait(&wake, &lock, &ts);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int box_reaper_start(struct verr *e)
{
	pthread_condattr_t a;

	/* The condition's clock is CLOCK_REALTIME, as time() and end are. */
	pthread_condattr_init(&a);
	pthread_cond_init(&wake, &a);
	if (pthread_create(&reaper, NULL, reap, NULL) != 0)
		return verr_fail(e, VMSAN_EXIT_SYS, "ERR_SYSTEM", NULL, "cannot start the reaper thread");
	reaper_running = true;
	return 0;
}

void box_reaper_stop(void)
{
	if (!reaper_running)
		return;
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(reaper, NULL);
	reaper_running = false;
}
