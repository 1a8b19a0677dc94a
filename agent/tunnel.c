/* GET /tunnel/PORT with "Upgrade: vmsan-tcp": after 101, the connection
 * carries raw bytes to and from 127.0.0.1:PORT in the guest, until either
 * side is done.  vmsan serve reaches a sandbox's ports this way (E2B's
 * getHost(port)): through the agent's token, so no other port of the VM
 * is opened to the host. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "conn.h"

#define TUNNELS_MAX 64
#define CONNECT_MS 5000
#define RELAY_BUF 65536

static atomic_int ntunnels;

/* A TCP connection to 127.0.0.1:port, given CONNECT_MS; -1 when nothing
 * listens there. */
static int dial_local(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0;
	socklen_t len = sizeof err;
	struct pollfd p;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
		goto fail;
	p = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&p, 1, CONNECT_MS) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		struct pollfd w = { .fd = fd, .events = POLLOUT };
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && poll(&w, 1, -1) >= 0)
			continue;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Both directions until both have ended; an end is passed on as a
 * half-close, so request-then-EOF protocols work. */
static void relay(int a, int b)
{
	char *buf = malloc(RELAY_BUF);
	bool open[2] = { true, true }; /* a->b, b->a */
	int fds[2] = { a, b };

	while (buf && (open[0] || open[1])) {
		struct pollfd p[2] = { { .fd = open[0] ? a : -1, .events = POLLIN },
				       { .fd = open[1] ? b : -1, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (!open[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = recv(fds[i], buf, RELAY_BUF, MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0 || write_all(fds[1 - i], buf, (size_t)r) != 0) {
				open[i] = false;
				shutdown(fds[1 - i], SHUT_WR);
				if (r < 0)
					open[0] = open[1] = false;
			}
		}
	}
	free(buf);
}

int handle_tunnel(struct conn *c, const struct http_head *hd, const char *port)
{
	char up[32], *end;
	unsigned long n = port ? strtoul(port, &end, 10) : 0;
	int fd;

	if (!port || !*port || *end || n < 1 || n > 65535)
		return respond_error(c, 400, "give a port 1-65535: /tunnel/PORT"), 400;
	if (http_header(hd, "Upgrade", up, sizeof up) < 0 || strcasecmp(up, "vmsan-tcp"))
		return respond_error(c, 426, "a tunnel needs Connection: Upgrade and Upgrade: vmsan-tcp"), 426;
	if (atomic_fetch_add(&ntunnels, 1) >= TUNNELS_MAX) {
		atomic_fetch_sub(&ntunnels, 1);
		return respond_error(c, 429, "%d tunnels are open already", TUNNELS_MAX), 429;
	}
	fd = dial_local((unsigned)n);
	if (fd < 0) {
		atomic_fetch_sub(&ntunnels, 1);
		c->close_after = true;
		return respond_error(c, 502, "nothing answers on port %lu in the guest", n), 502;
	}
	static const char ok[] =
		"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: vmsan-tcp\r\n\r\n";
	if (conn_send(c, ok, sizeof ok - 1) == 0 &&
	    (c->rlen == c->rpos || write_all(fd, c->rbuf + c->rpos, c->rlen - c->rpos) == 0)) {
		c->rpos = c->rlen;
		relay(c->fd, fd);
	}
	close(fd);
	atomic_fetch_sub(&ntunnels, 1);
	c->close_after = true;
	return 101;
}
