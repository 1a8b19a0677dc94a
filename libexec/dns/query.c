/* The guest's side: its queries (UDP, and TCP clients), each allowed,
 * denied or forwarded, and the answers that go back to it, UDP ones in
 * the order their queries came. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns/dns.h"

/* A TCP client gone: its slot free again. */
void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	c->out = NULL;
	c->fd = -1;
	c->busy = false;
	c->inlen = c->outlen = c->outoff = 0;
}

static void pending_free(struct pending *p)
{
	if (p->fd >= 0)
		close(p->fd);
	free(p->rbuf);
	free(p->held);
	p->rbuf = p->held = NULL;
	p->fd = -1;
	p->done = false;
	p->used = false;
}

/* The oldest open or waiting UDP query from this client with this id. */
static struct pending *oldest(const struct sockaddr_in *from, uint16_t id)
{
	struct pending *o = NULL;

	for (size_t i = 0; i < MAX_PENDING; i++) {
		struct pending *p = &R.pend[i];
		if (p->used && p->client < 0 && p->q.id == id && p->from.sin_port == from->sin_port &&
		    p->from.sin_addr.s_addr == from->sin_addr.s_addr && (!o || p->seq < o->seq))
			o = p;
	}
	return o;
}

static struct pending *pending_slot(void)
{
	for (size_t i = 0; i < MAX_PENDING; i++)
		if (!R.pend[i].used) {
			struct pending *p = &R.pend[i];
			memset(p, 0, offsetof(struct pending, query));
			p->used = true;
			p->fd = -1;
			return p;
		}
	return NULL;
}

/*
 * A UDP answer, in the order the queries came. Resolvers such as
 * BusyBox's send A and AAAA under one id and take the answers in order,
 * so an answer made at once (AAAA, NXDOMAIN) must not overtake the
 * forwarded one asked before it: it waits in a slot of its own until
 * the earlier queries with its (client, id) are answered. own: the
 * query's pending slot, or NULL for an answer made without one; freed.
 */
static void udp_answer(struct pending *own, const struct sockaddr_in *from, uint16_t id, const uint8_t *m, size_t n)
{
	struct pending *first = oldest(from, id);

	if (first && first != own) {
		struct pending *h = own ? own : pending_slot();
		uint8_t *copy = malloc(n);
		if (h && copy) {
			if (!own) {
				h->client = -1;
				h->from = *from;
				h->q.id = id;
				h->seq = ++R.seq;
			}
			if (h->fd >= 0)
				close(h->fd);
			h->fd = -1;
			memcpy(copy, m, n);
			h->held = copy;
			h->heldlen = n;
			h->done = true;
			return;
		}
		free(copy); /* no room to wait: out of order it goes */
		if (h && !own)
			pending_free(h);
	}
	(void)!sendto(R.udp, m, n, MSG_DONTWAIT, (const struct sockaddr *)from, sizeof *from);
	if (!first)
		return; /* nothing of this (client, id) was open: none waits */
	if (own)
		pending_free(own);
	while ((first = oldest(from, id)) && first->done) {
		(void)!sendto(R.udp, first->held, first->heldlen, MSG_DONTWAIT, (const struct sockaddr *)from,
			      sizeof *from);
		pending_free(first);
	}
}

/* An answer to a client: UDP in order, TCP queued with its length; own
 * (the query's pending slot, or NULL) is freed. */
void client_reply(struct pending *own, int client, uint32_t gen, const struct sockaddr_in *from, const uint8_t *m,
		  size_t n)
{
	if (client < 0) {
		udp_answer(own, from, (uint16_t)(m[0] << 8 | m[1]), m, n);
		return;
	}
	struct conn *c = &R.conn[client];
	if (c->fd >= 0 && c->gen == gen) { /* else the client left */
		c->busy = false;
		free(c->out);
		c->out = malloc(n + 2);
		if (!c->out) {
			conn_close(c);
		} else {
			c->out[0] = (uint8_t)(n >> 8);
			c->out[1] = (uint8_t)n;
			memcpy(c->out + 2, m, n);
			c->outlen = n + 2;
			c->outoff = 0;
			c->idle_until = now_ms() + TCP_IDLE_MS;
		}
	}
	/* last: m may be own's (a TCP upstream's answer is in own->rbuf) */
	if (own)
		pending_free(own);
}

/* own: as for client_reply() */
void answer_rcode(struct pending *own, int client, uint32_t gen, const struct sockaddr_in *from, const uint8_t *query,
		  const struct dns_q *q, int rcode)
{
	uint8_t out[DNS_HDR + DNS_NAME_MAX + 8];
	size_t n = dns_make_answer(out, sizeof out, query, q, rcode);

	if (n)
		client_reply(own, client, gen, from, out, n);
	else if (own)
		pending_free(own);
}

/* A query from the guest (UDP: client -1). */
static void guest_query(int client, const struct sockaddr_in *from, uint8_t *m, size_t n)
{
	struct dns_q q;
	uint32_t gen = client >= 0 ? R.conn[client].gen : 0;
	int rc = dns_parse_query(m, n, &q);

	R.queries++;
	if (rc < 0)
		return;
	if (rc) {
		q.name[0] = '\0';
		q.type = q.cls = 0;
		answer_rcode(NULL, client, gen, from, m, &q, rc);
		return;
	}
	long pat = dns_allow_match(R.allow, q.name);
	if (pat < 0) {
		R.denied++;
		log_line("deny", &q, -1, NULL, 0, NULL);
		answer_rcode(NULL, client, gen, from, m, &q, DNS_NXDOMAIN);
		return;
	}
	if (q.type == DNS_TYPE_AAAA) {
		answer_rcode(NULL, client, gen, from, m, &q, DNS_NOERROR);
		return;
	}
	if (n > QUERY_MAX) {
		answer_rcode(NULL, client, gen, from, m, &q, DNS_FORMERR);
		return;
	}
	struct pending *p = pending_slot();
	if (!p) {
		R.failed++;
		answer_rcode(NULL, client, gen, from, m, &q, DNS_SERVFAIL);
		return;
	}
	p->seq = ++R.seq;
	p->q = q;
	p->pat = pat;
	p->client = client;
	p->client_gen = gen;
	if (from)
		p->from = *from;
	p->tcp = client >= 0;
	memcpy(p->query, m, n);
	p->qlen = n;
	p->started = now_ms();
	p->up = (int)(R.queries % (unsigned)R.nup);
	if (client >= 0)
		R.conn[client].busy = true;
	if (upstream_send(p))
		upstream_retry(p, "cannot reach an upstream resolver");
}

/* A TCP client's turn: its answer written, then (none pending) its next
 * query read, length first, one at a time. */
void tcp_client(struct conn *c, int idx, short rev)
{
	if (rev & POLLOUT && c->out) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno != EAGAIN)
				conn_close(c);
			return;
		}
		c->outoff += (size_t)w;
		if (c->outoff == c->outlen) {
			free(c->out);
			c->out = NULL;
		}
	}
	if (!(rev & (POLLIN | POLLHUP | POLLERR)) || c->busy || c->out)
		return;
	ssize_t r = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, MSG_DONTWAIT);
	if (r <= 0) {
		if (r == 0 || errno != EAGAIN)
			conn_close(c);
		return;
	}
	c->inlen += (size_t)r;
	c->idle_until = now_ms() + TCP_IDLE_MS;
	if (c->inlen < 2)
		return;
	size_t len = (size_t)(c->in[0] << 8 | c->in[1]);
	if (len > QUERY_MAX || len < DNS_HDR) {
		conn_close(c);
		return;
	}
	if (c->inlen < 2 + len)
		return;
	uint8_t q[QUERY_MAX];
	memcpy(q, c->in + 2, len);
	memmove(c->in, c->in + 2 + len, c->inlen - 2 - len);
	c->inlen -= 2 + len;
	guest_query(idx, NULL, q, len);
}

/* The UDP socket's queries: a burst at a time, then the others get their
 * turn. */
void udp_queries(uint8_t *buf, size_t size)
{
	struct sockaddr_in from;
	socklen_t fl = sizeof from;

	for (int k = 0; k < 64; k++) {
		ssize_t r = recvfrom(R.udp, buf, size, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (r < 0)
			break;
		guest_query(-1, &from, buf, (size_t)r);
	}
}

/* A new TCP client, in a free slot; none free: closed (it retries). */
void tcp_accept(void)
{
	int fd = accept4(R.tcp, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int k;

	if (fd < 0)
		return;
	for (k = 0; k < MAX_TCP_CLIENTS && R.conn[k].fd >= 0; k++)
		;
	if (k == MAX_TCP_CLIENTS) {
		close(fd);
		return;
	}
	R.conn[k].fd = fd;
	R.conn[k].gen = ++R.gen;
	R.conn[k].idle_until = now_ms() + TCP_IDLE_MS;
}
