/* The control socket (abstract "vmsan-dns-ctl" of the namespace): one
 * JSON request per connection, from root only (vmsan-net, SO_PEERCRED).
 * {"domains":[...]} replaces the allow list: the tracking follows the
 * patterns that remain, queries of dropped ones fail, and the set is
 * re-synced to what is left (vmsan-net sends the list after every rules
 * change, which replaced the set).  {"op":"stats"} reports counters. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "dns/dns.h"

#define CTL_REQUEST_MAX (8u << 20)

static void ctl_reply(int fd, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (s) {
		(void)!write(fd, s, strlen(s));
		(void)!write(fd, "\n", 1);
		free(s);
	}
	json_decref(j);
}

static json_t *stats(void)
{
	size_t pending = 0;

	for (size_t i = 0; i < MAX_PENDING; i++)
		pending += R.pend[i].used;
	track_purge(now_ms());
	return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", 1, "domains",
			 (json_int_t)dns_allow_count(R.allow), "tracked", (json_int_t)R.ntrack, "pending",
			 (json_int_t)pending, "queries", (json_int_t)R.queries, "allowed", (json_int_t)R.allowed,
			 "denied", (json_int_t)R.denied, "failed", (json_int_t)R.failed);
}

/* The new list a in place of R.allow: the tracking follows the patterns
 * by their text (what only dropped patterns justified goes), pending
 * queries of dropped patterns fail (their answers go nowhere near the
 * set), and the set is re-synced. */
static json_t *set_domains(struct dns_allow *a)
{
	size_t k = 0, before = R.ntrack;
	int rc;

	for (size_t i = 0; i < R.ntrack; i++) {
		long np = dns_allow_find(a, dns_allow_pattern(R.allow, R.track[i].pat));
		if (np >= 0) {
			R.track[k] = R.track[i];
			R.track[k++].pat = np;
		}
	}
	R.ntrack = k;
	track_rehash();
	for (size_t i = 0; i < MAX_PENDING; i++)
		if (R.pend[i].used && !R.pend[i].done) {
			long np = dns_allow_find(a, dns_allow_pattern(R.allow, R.pend[i].pat));
			if (np < 0)
				fail_pending(&R.pend[i], "domain removed");
			else
				R.pend[i].pat = np;
		}
	dns_allow_free(R.allow);
	R.allow = a;
	rc = track_resync();
	return json_pack("{s:b, s:I, s:I, s:I}", "ok", rc == 0, "domains", (json_int_t)dns_allow_count(a), "tracked",
			 (json_int_t)R.ntrack, "dropped", (json_int_t)(before - R.ntrack));
}

/* One request's answer. */
static json_t *ctl_answer(json_t *rq)
{
	const char *op = json_string_value(json_object_get(rq, "op"));
	json_t *list = json_object_get(rq, "domains");
	struct dns_allow *a;
	char why[256];

	if (!rq)
		return json_pack("{s:b, s:s}", "ok", 0, "error", "not JSON");
	if (op && !strcmp(op, "stats"))
		return stats();
	if (!json_is_array(list))
		return json_pack("{s:b, s:s}", "ok", 0, "error", "expected {\"domains\":[...]} or {\"op\":\"stats\"}");
	a = allow_from(list, why, sizeof why);
	if (!a)
		return json_pack("{s:b, s:s}", "ok", 0, "error", why);
	return set_domains(a);
}

/* The request, up to the client's end of writing (2 s at most between
 * reads, CTL_REQUEST_MAX at most): *len bytes, or NULL. */
static char *ctl_read(int fd, size_t *len)
{
	struct timeval tv = { 2, 0 };
	char *buf = NULL;
	size_t cap = 0;

	*len = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	for (;;) {
		ssize_t r;

		if (*len + 4096 > cap) {
			char *nb;

			if (cap >= CTL_REQUEST_MAX)
				goto fail;
			nb = realloc(buf, cap = cap ? cap * 2 : 65536);
			if (!nb)
				goto fail;
			buf = nb;
		}
		r = read(fd, buf + *len, cap - *len);
		if (r < 0)
			goto fail;
		if (r == 0)
			return buf;
		*len += (size_t)r;
	}
fail:
	free(buf);
	return NULL;
}

void ctl_accept(void)
{
	int fd = accept4(R.ctl, NULL, NULL, SOCK_CLOEXEC);
	struct ucred cr;
	socklen_t cl = sizeof cr;
	json_error_t je;
	json_t *rq;
	char *buf;
	size_t len;

	if (fd < 0)
		return;
	/* root (vmsan-net) only */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.uid != 0 || !(buf = ctl_read(fd, &len))) {
		close(fd);
		return;
	}
	rq = json_loadb(buf, len, 0, &je);
	ctl_reply(fd, ctl_answer(rq));
	json_decref(rq);
	free(buf);
	close(fd);
}
