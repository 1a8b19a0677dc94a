/* vmsan-agent's token: loaded from its file (or, once, the environment),
 * re-read on SIGHUP, checked in constant time, and replaced by POST
 * /restored in a VM restored from a snapshot. */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_MAX 256
static char token[TOKEN_MAX + 1];
static size_t token_len;
static pthread_mutex_t token_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int reload_token;

/* ---- token ----------------------------------------------------------- */

static int token_check_chars(const char *t, size_t n)
{
	if (n < 16 || n > TOKEN_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return -1;
	return 0;
}

int token_load(const char *env_token)
{
	char t[TOKEN_MAX + 2];
	size_t n;
	if (env_token) {
		n = strlen(env_token);
		if (n > TOKEN_MAX)
			return -1;
		memcpy(t, env_token, n);
	} else {
		int fd = open(cfg.token_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -1;
		ssize_t r = read(fd, t, sizeof t - 1);
		close(fd);
		if (r < 0)
			return -1;
		n = (size_t)r;
		while (n && (t[n - 1] == '\n' || t[n - 1] == '\r'))
			n--;
	}
	if (token_check_chars(t, n) < 0)
		return -2;
	pthread_mutex_lock(&token_mu);
	memcpy(token, t, n);
	token[n] = 0;
	token_len = n;
	pthread_mutex_unlock(&token_mu);
	explicit_bzero(t, sizeof t);
	return 0;
}

/* Constant time in the length of the presented token and ours. */
static bool token_ok(const char *got, size_t n)
{
	if (atomic_exchange(&reload_token, 0)) {
		if (token_load(NULL) == 0)
			logj("info", "token reloaded", NULL);
		else
			logj("error", "token reload failed; keeping the old token", NULL);
	}
	pthread_mutex_lock(&token_mu);
	unsigned diff = (unsigned)(n ^ token_len);
	for (size_t i = 0; i < TOKEN_MAX; i++) {
		unsigned char a = i < n ? (unsigned char)got[i] : 0;
		unsigned char b = i < token_len ? (unsigned char)token[i] : 0;
		diff |= (unsigned)(a ^ b);
	}
	pthread_mutex_unlock(&token_mu);
	return diff == 0 && n > 0;
}

size_t token_copy(char *out, size_t n)
{
	size_t k;
	pthread_mutex_lock(&token_mu);
	k = token_len < n ? token_len : n - 1;
	memcpy(out, token, k);
	out[k] = 0;
	pthread_mutex_unlock(&token_mu);
	return k;
}

/* linux/random.h's, which this libc does not carry */
#define RND_ADD_ENTROPY _IOW('R', 0x03, int[2])
#define RND_RESEED_CRNG _IO('R', 0x07)
#define SEED_BYTES 64

/* The host's random bytes into the guest's pool, credited, and the
 * kernel's generator reseeded from it at once.  Every VM restored from one
 * snapshot wakes with the snapshot's generator state: without this, two
 * of them read the same bytes from /dev/urandom (the same keys, ids and
 * nonces) until the kernel's next reseed, up to a minute later. */
static int reseed(const char *hex, size_t n, char *why, size_t wl)
{
	struct {
		int bits, size;
		unsigned char buf[SEED_BYTES];
	} in = { SEED_BYTES * 8, SEED_BYTES, { 0 } };
	int fd, rc = -1;

	if (n != 2 * SEED_BYTES || strspn(hex, "0123456789abcdef") != n) {
		snprintf(why, wl, "seed: %d bytes in lowercase hex", SEED_BYTES);
		return -1;
	}
	for (size_t i = 0; i < SEED_BYTES; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		in.buf[i] = (unsigned char)v;
	}
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd >= 0 && ioctl(fd, RND_ADD_ENTROPY, &in) == 0 && ioctl(fd, RND_RESEED_CRNG) == 0)
		rc = 0;
	else
		snprintf(why, wl, "cannot reseed the kernel's random number generator: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	explicit_bzero(&in, sizeof in);
	return rc;
}

/* POST /restored: a VM restored from a snapshot takes a token of its own
 * (the snapshot's stops working), fresh randomness from the host (see
 * reseed), the host's clock (the guest's stood still while it was saved)
 * and its own name.  Body {"token":T, "seed":HEX, "sec":S, "nsec":N,
 * "hostname":H}. */
void handle_restored(struct conn *c, struct body *b)
{
	struct jarena a = { 0 };
	struct buf raw = { 0 };
	struct jv *req = read_json_body(c, b, &a, &raw);
	long long sec = 0, nsec = 0;
	if (!req)
		goto out;
	for (struct jv *m = req->child; m; m = m->next)
		if (strcmp(m->key, "token") && strcmp(m->key, "seed") && strcmp(m->key, "sec") &&
		    strcmp(m->key, "nsec") && strcmp(m->key, "hostname")) {
			respond_error(c, 400, "unknown field '%.60s' (known: token, seed, sec, nsec, hostname)",
				      m->key);
			goto out;
		}
	struct jv *sv = json_get(req, "seed");
	char why[160];
	if (!sv || sv->t != J_STR || reseed(sv->s, sv->slen, why, sizeof why) < 0) {
		respond_error(c, sv && sv->t == J_STR && sv->slen == 2 * SEED_BYTES ? 500 : 400, "%s",
			      sv && sv->t == J_STR ? why : "seed: the host's random bytes, in hex, are required");
		goto out;
	}
	struct jv *hv = json_get(req, "hostname");
	if (hv && (hv->t != J_STR || !hv->slen || hv->slen > 63 ||
		   strspn(hv->s, "abcdefghijklmnopqrstuvwxyz0123456789-") != hv->slen)) {
		respond_error(c, 400, "hostname: 1-63 of a-z, 0-9 and -");
		goto out;
	}
	struct jv *tv = json_get(req, "token");
	if (!tv || tv->t != J_STR || token_check_chars(tv->s, tv->slen) < 0 || tv->slen > TOKEN_MAX) {
		respond_error(c, 400, "token: 1-%d printable characters", TOKEN_MAX);
		goto out;
	}
	if (json_int(req, "sec", 1, 1LL << 40, &sec) != 1 || json_int(req, "nsec", 0, 999999999, &nsec) < 0) {
		respond_error(c, 400, "sec (and nsec) give the host's time");
		goto out;
	}
	struct timespec now = { .tv_sec = (time_t)sec, .tv_nsec = (long)nsec };
	if (clock_settime(CLOCK_REALTIME, &now) < 0) {
		respond_error(c, 500, "cannot set the clock: %s", strerror(errno));
		goto out;
	}
	/* the new VM's name (the snapshot's VM named itself at boot) */
	if (hv) {
		int hf = open("/etc/hostname", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (sethostname(hv->s, hv->slen) < 0 || hf < 0 || write(hf, hv->s, hv->slen) != (ssize_t)hv->slen ||
		    write(hf, "\n", 1) != 1) {
			if (hf >= 0)
				close(hf);
			respond_error(c, 500, "cannot set the hostname: %s", strerror(errno));
			goto out;
		}
		close(hf);
	}
	/* The new token to the token file (what a restart of the agent reads),
	 * then in memory. */
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.new", cfg.token_file);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, tv->s, tv->slen) == (ssize_t)tv->slen && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, cfg.token_file) < 0) {
		unlink(tmp);
		respond_error(c, 500, "cannot store the new token: %s", strerror(errno));
		goto out;
	}
	pthread_mutex_lock(&token_mu);
	memcpy(token, tv->s, tv->slen);
	token[tv->slen] = 0;
	token_len = tv->slen;
	pthread_mutex_unlock(&token_mu);
	static const char done[] = "{\"status\":\"ok\"}\n";
	respond(c, 200, "application/json", done, sizeof done - 1);
out:
	if (raw.p)
		explicit_bzero(raw.p, raw.len);
	buf_free(&raw);
	json_free(&a);
}

void on_sighup(int sig)
{
	(void)sig;
	atomic_store(&reload_token, 1);
}

/* The token comes as Authorization: Bearer, or as E2B's SDK sends it to
 * envd, X-Access-Token (wrong: 401, as envd answers); its Authorization
 * then names a user (envd/rpc.c reads it). */
int authorize(const struct http_head *hd, const char *query, bool allow_query)
{
	char v[TOKEN_MAX + 32];
	ssize_t n = http_header(hd, "authorization", v, sizeof v);
	if (n >= 7 && strncasecmp(v, "Bearer ", 7) == 0)
		return token_ok(v + 7, (size_t)n - 7) ? 0 : 403;
	ssize_t x = http_header(hd, "x-access-token", v, sizeof v);
	if (x >= 0)
		return token_ok(v, (size_t)x) ? 0 : 401;
	if (n >= 0)
		return 401;
	if (allow_query && query) {
		n = http_query(query, "token", v, sizeof v);
		if (n >= 0)
			return token_ok(v, (size_t)n) ? 0 : 403;
	}
	return 401;
}
