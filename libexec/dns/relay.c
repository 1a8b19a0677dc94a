/* --strict-domains: the guest's TCP to the set's addresses on 443 and 80
 * is DNATed to 172.16.0.1:10443 and :10080, where a connection is relayed
 * only when its TLS server_name or HTTP Host is an allowed name that
 * brought that address into the set; HTTP one request per connection
 * (each request could name another Host). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <linux/netfilter_ipv4.h> /* SO_ORIGINAL_DST; after netinet/in.h */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns/dns.h"

void relay_close(struct relay *x)
{
	if (x->c >= 0)
		close(x->c);
	if (x->u >= 0)
		close(x->u);
	free(x->cu);
	free(x->uc);
	memset(x, 0, sizeof *x);
	x->c = x->u = -1;
}

void relay_accept(int which)
{
	struct sockaddr_in dst;
	socklen_t dl = sizeof dst;
	int fd = accept4(R.px[which], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct relay *x = NULL;

	if (fd < 0)
		return;
	for (int i = 0; i < MAX_RELAYS && !x; i++)
		if (R.relay[i].c < 0)
			x = &R.relay[i];
	/* full, or not DNATed here (the ruleset sends only what is for
	 * the set's addresses): closed */
	if (!x || getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dl) || dst.sin_family != AF_INET ||
	    !(x->cu = malloc(RELAY_BUF + 64)) || !(x->uc = malloc(RELAY_BUF))) {
		if (x)
			relay_close(x);
		close(fd);
		return;
	}
	x->c = fd;
	x->u = -1;
	x->http = which == 1;
	x->state = RL_PEEK;
	x->dst = dst;
	x->deadline = now_ms() + PEEK_MS;
}

void relay_refuse(struct relay *x, const char *name, const char *why)
{
	static const char forbidden[] =
		"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 60\r\n\r\n"
		"vmsan: this host is not in the VM's allowed domains (strict)\n";

	R.denied++;
	log_conn("deny", x->http, name, &x->dst, why);
	if (x->http)
		(void)!send(x->c, forbidden, sizeof forbidden - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	relay_close(x);
}

/* The last n bytes in x->cu are the guest's, after the head: those of the
 * first request's body stay, the rest go; -1 if the body is malformed. */
static int http_body_take(struct relay *x, size_t n)
{
	size_t keep = n;

	if (x->req_done) {
		keep = 0;
	} else if (x->body >= 0) {
		keep = (unsigned long long)x->body < n ? (size_t)x->body : n;
		x->body -= (long long)keep;
		x->req_done = x->body == 0;
	} else {
		long k = http_chunked_feed(&x->ck, x->cu + x->culen, n);

		if (k < 0)
			return -1;
		keep = (size_t)k;
		x->req_done = x->ck.done;
	}
	if (keep < n && !x->dropped) {
		x->dropped = true;
		log_conn("deny", true, "", &x->dst, "more than one request on a connection (not relayed)");
	}
	x->culen += keep;
	return 0;
}

/* HTTP: the bytes of the first request that are in (x->cu), of those
 * read, the rest dropped; its head rewritten with "Connection: close".
 * -1 if its framing is ambiguous. */
static int http_first_only(struct relay *x)
{
	static uint8_t head[RELAY_BUF + 64];
	size_t h, nh, rest;
	long long body;

	if (http_request_frame(x->cu, x->culen, &h, &body))
		return -1;
	nh = http_close_head(x->cu, h, head);
	rest = x->culen - h;
	memmove(x->cu + nh, x->cu + h, rest);
	memcpy(x->cu, head, nh);
	x->culen = nh;
	x->body = body;
	memset(&x->ck, 0, sizeof x->ck);
	return http_body_take(x, rest);
}

/* The first bytes: once they name a host, allowed or refused. */
static void relay_peek(struct relay *x)
{
	char name[DNS_NAME_MAX];
	ssize_t r = recv(x->c, x->cu + x->culen, RELAY_BUF - x->culen, MSG_DONTWAIT);

	if (r < 0 && errno == EAGAIN)
		return;
	if (r <= 0) {
		relay_close(x); /* gone before naming anything */
		return;
	}
	x->culen += (size_t)r;
	int rc = x->http ? http_host(x->cu, x->culen, name) : tls_sni(x->cu, x->culen, name);
	if (rc == 0 && x->culen < RELAY_BUF)
		return;
	if (rc != 1) {
		relay_refuse(x, "", x->http ? "no Host header" : "no TLS server_name");
		return;
	}
	long pat = dns_allow_match(R.allow, name);
	if (pat < 0) {
		relay_refuse(x, name, "name not allowed");
		return;
	}
	if (!track_has(ntohl(x->dst.sin_addr.s_addr), pat)) {
		relay_refuse(x, name, "the address is not one the name resolved to");
		return;
	}
	if (x->http && http_first_only(x)) {
		relay_refuse(x, name, "ambiguous request framing");
		return;
	}
	x->u = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (x->u < 0 || (connect(x->u, (struct sockaddr *)&x->dst, sizeof x->dst) && errno != EINPROGRESS)) {
		log_conn("error", x->http, name, &x->dst, "cannot connect");
		relay_close(x);
		return;
	}
	R.allowed++;
	log_conn("allow", x->http, name, &x->dst, NULL);
	x->state = RL_CONNECT;
	x->deadline = now_ms() + CONNECT_MS;
}

/* Moves what one side sent to the other; false when the relay is done. */
static bool pipe_in(int from, uint8_t *buf, size_t *len, size_t *off, bool *eof)
{
	if (*off == *len)
		*off = *len = 0;
	else if (*off && *len >= RELAY_BUF) {
		memmove(buf, buf + *off, *len - *off);
		*len -= *off;
		*off = 0;
	}
	if (*len >= RELAY_BUF)
		return true;
	ssize_t r = recv(from, buf + *len, RELAY_BUF - *len, MSG_DONTWAIT);
	if (r < 0)
		return errno == EAGAIN;
	if (r == 0)
		*eof = true;
	*len += (size_t)r;
	return true;
}

static bool pipe_out(int to, uint8_t *buf, size_t len, size_t *off)
{
	if (*off == len)
		return true;
	ssize_t w = send(to, buf + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0)
		return errno == EAGAIN;
	*off += (size_t)w;
	return true;
}

/* The guest's side of an HTTP relay: the first request's bytes are
 * relayed, whatever follows it is read and dropped. */
static bool http_in(struct relay *x)
{
	static uint8_t drop[4096];
	size_t before;

	if (x->req_done) {
		ssize_t r = recv(x->c, drop, sizeof drop, MSG_DONTWAIT);

		if (r < 0)
			return errno == EAGAIN;
		if (r == 0)
			x->c_eof = true;
		else if (!x->dropped) {
			x->dropped = true;
			log_conn("deny", true, "", &x->dst, "more than one request on a connection (not relayed)");
		}
		return true;
	}
	if (x->cuoff == x->culen)
		x->cuoff = x->culen = 0;
	else if (x->cuoff && x->culen >= RELAY_BUF) {
		memmove(x->cu, x->cu + x->cuoff, x->culen - x->cuoff);
		x->culen -= x->cuoff;
		x->cuoff = 0;
	}
	if (x->culen >= RELAY_BUF)
		return true;
	before = x->culen;
	ssize_t r = recv(x->c, x->cu + before, RELAY_BUF - before, MSG_DONTWAIT);
	if (r < 0)
		return errno == EAGAIN;
	if (r == 0) {
		x->c_eof = true;
		return true;
	}
	return http_body_take(x, (size_t)r) == 0;
}

/* Room to read into (pipe_in moves what is left to the front). */
static bool room(size_t len, size_t off)
{
	return len - off < RELAY_BUF;
}

/* What poll reported on one side of x: the first bytes read (and judged),
 * the connect finished, bytes moved each way, an end passed on. */
void relay_io(struct relay *x, bool upstream, short rev)
{
	bool ok = true;

	if (x->state == RL_PEEK) {
		if (!upstream)
			relay_peek(x);
		return;
	}
	if (x->state == RL_CONNECT) {
		int err = 0;
		socklen_t el = sizeof err;
		if (!upstream || !(rev & (POLLOUT | POLLERR | POLLHUP)))
			return;
		if (getsockopt(x->u, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			relay_close(x);
			return;
		}
		x->state = RL_PIPE;
	}
	if (rev & (POLLIN | POLLHUP | POLLERR))
		ok = upstream  ? pipe_in(x->u, x->uc, &x->uclen, &x->ucoff, &x->u_eof)
		     : x->http ? http_in(x)
			       : pipe_in(x->c, x->cu, &x->culen, &x->cuoff, &x->c_eof);
	ok = ok && pipe_out(x->u, x->cu, x->culen, &x->cuoff) && pipe_out(x->c, x->uc, x->uclen, &x->ucoff);
	if (!ok) {
		relay_close(x);
		return;
	}
	/* a side that ended, once its bytes are through: end it on the other */
	if (x->c_eof && x->cuoff == x->culen && !x->u_shut) {
		shutdown(x->u, SHUT_WR);
		x->u_shut = true;
	}
	if (x->u_eof && x->ucoff == x->uclen && !x->c_shut) {
		shutdown(x->c, SHUT_WR);
		x->c_shut = true;
	}
	/* HTTP: the one response relayed whole, the connection ends */
	if ((x->c_shut && x->u_shut) || (x->http && x->req_done && x->c_shut)) {
		relay_close(x);
		return;
	}
	x->deadline = now_ms() + RELAY_IDLE_MS;
}

/* What a relay waits for on each side. */
short relay_events(const struct relay *x, bool upstream)
{
	if (x->state == RL_PEEK)
		return upstream ? 0 : POLLIN;
	if (x->state == RL_CONNECT)
		return upstream ? POLLOUT : 0;
	if (upstream)
		return (short)((x->u_eof || !room(x->uclen, x->ucoff) ? 0 : POLLIN) |
			       (x->cuoff < x->culen ? POLLOUT : 0));
	if (x->http && x->req_done) /* what follows the request: read and dropped */
		return (short)((x->c_eof ? 0 : POLLIN) | (x->ucoff < x->uclen ? POLLOUT : 0));
	return (short)((x->c_eof || !room(x->culen, x->cuoff) ? 0 : POLLIN) | (x->ucoff < x->uclen ? POLLOUT : 0));
}
