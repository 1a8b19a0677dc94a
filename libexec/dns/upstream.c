/* Forwarding: a query the allow list admits goes to the upstreams in
 * turn (UDP, or TCP for a TCP client), each tried twice at most; an
 * answer's addresses go into the set before the answer goes to the guest. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns/dns.h"

/* (Re)sends p's query to upstream p->up. */
int upstream_send(struct pending *p)
{
	uint16_t id;

	if (p->fd >= 0)
		close(p->fd);
	free(p->rbuf);
	p->rbuf = NULL;
	p->rlen = p->woff = 0;
	p->fd = socket(AF_INET, (p->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return -1;
	if (getrandom(&id, sizeof id, 0) != sizeof id)
		return -1;
	p->up_id = id;
	p->query[0] = (uint8_t)(id >> 8);
	p->query[1] = (uint8_t)id;
	if (connect(p->fd, (struct sockaddr *)&R.up[p->up], sizeof R.up[0]) < 0 && errno != EINPROGRESS)
		return -1;
	if (!p->tcp && send(p->fd, p->query, p->qlen, 0) != (ssize_t)p->qlen)
		return -1;
	p->deadline = now_ms() + UPSTREAM_TIMEOUT_MS;
	return 0;
}

void fail_pending(struct pending *p, const char *why)
{
	R.failed++;
	log_line("error", &p->q, p->pat, NULL, 0, why);
	p->query[0] = (uint8_t)(p->q.id >> 8);
	p->query[1] = (uint8_t)p->q.id;
	if (p->client >= 0 && R.conn[p->client].gen == p->client_gen)
		R.conn[p->client].busy = false;
	answer_rcode(p, p->client, p->client_gen, &p->from, p->query, &p->q, DNS_SERVFAIL);
}

/* The next upstream, or SERVFAIL when each was tried twice. */
void upstream_retry(struct pending *p, const char *why)
{
	if (++p->tries >= 2 * R.nup) {
		fail_pending(p, why);
		return;
	}
	p->up = (p->up + 1) % R.nup;
	if (upstream_send(p))
		fail_pending(p, "cannot reach an upstream resolver");
}

/* A response from upstream for p: addresses allowed, then the answer. */
static void upstream_response(struct pending *p, uint8_t *m, size_t n)
{
	struct dns_addr a[MAX_ADDRS];
	size_t na = 0;
	uint16_t id = (uint16_t)(m[0] << 8 | m[1]);

	if (n < DNS_HDR || id != p->up_id)
		return; /* not the answer (UDP: keep waiting) */
	struct dns_q q = p->q;
	int rc = dns_scan_response(m, n, &q, R.ttl_max, a, MAX_ADDRS, &na);
	if (rc < 0) {
		if (p->tcp)
			upstream_retry(p, "malformed response");
		return;
	}
	if (na && allow_addrs(p->pat, a, na)) {
		fail_pending(p, R.ntrack >= MAX_TRACK ? "allow set full" : "cannot update the allow set");
		return;
	}
	R.allowed++;
	log_line("allow", &p->q, p->pat, a, na, NULL);
	m[0] = (uint8_t)(p->q.id >> 8);
	m[1] = (uint8_t)p->q.id;
	client_reply(p, p->client, p->client_gen, &p->from, m, n);
}

/* TCP upstream progress: connect, write length + query, read the answer. */
static void upstream_tcp(struct pending *p, short rev)
{
	if (rev & (POLLERR | POLLHUP) && !(rev & POLLIN)) {
		upstream_retry(p, "upstream closed the connection");
		return;
	}
	if (p->woff < p->qlen + 2 && (rev & POLLOUT)) {
		uint8_t buf[2 + QUERY_MAX];
		buf[0] = (uint8_t)(p->qlen >> 8);
		buf[1] = (uint8_t)p->qlen;
		memcpy(buf + 2, p->query, p->qlen);
		ssize_t w = send(p->fd, buf + p->woff, p->qlen + 2 - p->woff, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN)
				upstream_retry(p, "cannot send to the upstream");
			return;
		}
		p->woff += (size_t)w;
		return;
	}
	if (!(rev & POLLIN))
		return;
	if (!p->rbuf && !(p->rbuf = malloc(2 + 65535))) {
		fail_pending(p, "out of memory");
		return;
	}
	size_t want = p->rlen < 2 ? 2 : 2 + (size_t)(p->rbuf[0] << 8 | p->rbuf[1]);
	ssize_t r = recv(p->fd, p->rbuf + p->rlen, want - p->rlen, 0);
	if (r <= 0) {
		if (r < 0 && errno == EAGAIN)
			return;
		upstream_retry(p, "upstream closed the connection");
		return;
	}
	p->rlen += (size_t)r;
	if (p->rlen >= 2 && p->rlen == 2 + (size_t)(p->rbuf[0] << 8 | p->rbuf[1]))
		upstream_response(p, p->rbuf + 2, p->rlen - 2);
}

/* What poll reported on p's upstream socket: TCP progress, or a UDP
 * answer (read into buf). */
void upstream_io(struct pending *p, short rev, uint8_t *buf, size_t size)
{
	ssize_t r;

	if (p->tcp) {
		upstream_tcp(p, rev);
		return;
	}
	r = recv(p->fd, buf, size, MSG_DONTWAIT);
	if (r > 0)
		upstream_response(p, buf, (size_t)r);
	else if (r < 0 && errno != EAGAIN)
		upstream_retry(p, "upstream refused");
}
