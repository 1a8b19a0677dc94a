/* The resolver's loop: one poll over the listeners, the control socket,
 * the setter's end, the relays, the TCP clients and the queries waiting
 * for an upstream (expiring what is past its time on the way), then each
 * event handed to the file whose job it is. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>

#include "dns/dns.h"

/* Whose a poll entry is: the fixed sockets, then by index a TCP client,
 * a pending query, a relay's side (2 * relay + side). */
enum { W_UDP = -1, W_TCP = -2, W_CTL = -3, W_SETTER = -4, W_PROXY = -5 /* -5, -6: TLS, HTTP */ };
enum { W_CONN = 0, W_PEND = 1000, W_RELAY = 2000 };
#define NPOLL (6 + MAX_TCP_CLIENTS + MAX_PENDING + 2 * MAX_RELAYS)

struct polls {
	struct pollfd pfd[NPOLL];
	int who[NPOLL];
	size_t n;
	int64_t now, wait; /* the poll's timeout: the nearest deadline */
};

static void watch(struct polls *p, int fd, short events, int who)
{
	p->pfd[p->n] = (struct pollfd){ fd, events, 0 };
	p->who[p->n++] = who;
}

static void deadline(struct polls *p, int64_t at)
{
	if (at - p->now < p->wait)
		p->wait = at - p->now;
}

/* Relays past their deadline end (one that named nothing in time is
 * refused); the others' sides are watched for what each awaits. */
static void watch_relays(struct polls *p)
{
	for (int i = 0; i < MAX_RELAYS; i++) {
		struct relay *x = &R.relay[i];
		if (x->c < 0)
			continue;
		if (p->now >= x->deadline) {
			if (x->state == RL_PEEK)
				relay_refuse(x, "", "no name in time");
			else
				relay_close(x);
			continue;
		}
		for (int side = 0; side < 2; side++) {
			short ev = relay_events(x, side);
			/* nothing awaited: not polled (a hung-up socket would
			 * report POLLHUP all the same) */
			watch(p, ev ? (side ? x->u : x->c) : -1, ev, W_RELAY + 2 * i + side);
		}
		deadline(p, x->deadline);
	}
}

/* TCP clients idle too long (none of their queries pending) are closed. */
static void watch_conns(struct polls *p)
{
	for (int i = 0; i < MAX_TCP_CLIENTS; i++) {
		struct conn *c = &R.conn[i];
		if (c->fd < 0)
			continue;
		if (p->now >= c->idle_until && !c->busy) {
			conn_close(c);
			continue;
		}
		watch(p, c->fd, (short)((c->out ? POLLOUT : 0) | (c->busy || c->out ? 0 : POLLIN)), W_CONN + i);
		deadline(p, c->idle_until);
	}
}

/* Queries whose upstream is past its time go to the next one. */
static void watch_pending(struct polls *p)
{
	for (int i = 0; i < MAX_PENDING; i++) {
		struct pending *q = &R.pend[i];
		if (!q->used || q->done)
			continue;
		if (p->now >= q->deadline) {
			upstream_retry(q, "upstream timed out");
			if (!q->used)
				continue;
		}
		watch(p, q->fd, (short)(POLLIN | (q->tcp && q->woff < q->qlen + 2 ? POLLOUT : 0)), W_PEND + i);
		deadline(p, q->deadline);
	}
}

/* Entry i's events to their handler; false when the setter is gone. */
static bool dispatch(const struct polls *p, size_t i, uint8_t *buf, size_t size)
{
	int who = p->who[i], fd = p->pfd[i].fd;
	short rev = p->pfd[i].revents;

	if (who == W_UDP) {
		udp_queries(buf, size);
	} else if (who == W_TCP) {
		tcp_accept();
	} else if (who == W_CTL) {
		ctl_accept();
	} else if (who == W_SETTER) {
		return false; /* the setter is gone: so are we */
	} else if (who <= W_PROXY) {
		relay_accept(W_PROXY - who);
	} else if (who < W_CONN + MAX_TCP_CLIENTS) {
		tcp_client(&R.conn[who - W_CONN], who - W_CONN, rev);
	} else if (who >= W_PEND && who < W_PEND + MAX_PENDING) {
		struct pending *q = &R.pend[who - W_PEND];
		if (q->used && q->fd == fd)
			upstream_io(q, rev, buf, size);
	} else if (who >= W_RELAY) {
		struct relay *x = &R.relay[(who - W_RELAY) / 2];
		int side = (who - W_RELAY) % 2;
		if (x->c >= 0 && fd == (side ? x->u : x->c))
			relay_io(x, side, rev);
	}
	return true;
}

/* Until the setter goes (or poll fails). */
void resolver_loop(void)
{
	static struct polls p;
	static uint8_t buf[65536];

	for (;;) {
		p.n = 0;
		p.now = now_ms();
		p.wait = 5000;
		watch(&p, R.udp, POLLIN, W_UDP);
		watch(&p, R.tcp, POLLIN, W_TCP);
		watch(&p, R.ctl, POLLIN, W_CTL);
		watch(&p, R.sp, POLLIN, W_SETTER); /* only its end */
		for (int k = 0; k < 2; k++)
			if (R.px[k] >= 0)
				watch(&p, R.px[k], POLLIN, W_PROXY - k);
		watch_relays(&p);
		watch_conns(&p);
		watch_pending(&p);
		if (poll(p.pfd, p.n, (int)(p.wait < 0 ? 0 : p.wait)) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (size_t i = 0; i < p.n; i++)
			if (p.pfd[i].revents && !dispatch(&p, i, buf, sizeof buf))
				return;
	}
}
