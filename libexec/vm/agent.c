/* The little HTTP the host speaks to the guest agent: /health,
 * /shutdown, /restored; and the VM's agent token. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "vm/vm.h"

/* One HTTP request to the agent; the status code, or -1.  connect_ms
 * bounds the connection, timeout_ms the request and its answer. */
int agent_http_body(const char *addr, int port, const char *method, const char *path, const char *token,
		    const char *body, int connect_ms, int timeout_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	struct timeval ct = { .tv_sec = connect_ms / 1000, .tv_usec = (connect_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &ct, sizeof ct); /* connect() */
	char req[1024], resp[64] = "";
	int n = snprintf(req, sizeof req,
			 "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 method, path, addr, token ? "Authorization: Bearer " : "", token ? token : "",
			 token ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "", body ? strlen(body) : 0,
			 body ? body : "");
	if (n < 0 || (size_t)n >= sizeof req) {
		close(fd);
		return -1;
	}
	int code = -1;
	int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (ok && write(fd, req, (size_t)n) == n) {
		ssize_t r = read(fd, resp, sizeof resp - 1);
		if (r > 12 && !strncmp(resp, "HTTP/1.1 ", 9))
			code = atoi(resp + 9);
	}
	explicit_bzero(req, sizeof req);
	close(fd);
	return code;
}

int agent_http(const char *addr, int port, const char *method, const char *path, const char *token, int connect_ms,
	       int timeout_ms)
{
	return agent_http_body(addr, port, method, path, token, NULL, connect_ms, timeout_ms);
}

/* Waits for GET /health to answer 200, while the VMM lives. */
int wait_agent(const char *addr, int port, long long pid, long long start, double timeout_s, const char *console,
	       struct verr *e)
{
	double t0 = now_ms();
	while (!interrupted) {
		/* A SYN sent before the guest's network is up is lost (TCP would
		 * resend it only after a second): a short connect timeout and a
		 * fresh SYN instead; a refused one (the stack is up, the agent
		 * not yet) is retried after 5 ms. */
		if (agent_http(addr, port, "GET", "/health", NULL, 50, 2000) == 200)
			return 0;
		if (proc_start_time((long)pid) != start) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_BOOT", "read the guest's console log",
				 "the VM stopped while booting (see %s)", console);
			return -1;
		}
		if (now_ms() - t0 > timeout_s * 1e3) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_BOOT_TIMEOUT", "read the guest's console log",
				 "the guest agent did not answer within %.0f s (see %s)", timeout_s, console);
			return -1;
		}
		poll(NULL, 0, 5);
	}
	verr_set(e, 130, "ERR_INTERRUPTED", NULL, "interrupted");
	return -1;
}

int read_token(const struct state *st, const char *id, char *tok, size_t n)
{
	char name[96];
	snprintf(name, sizeof name, "%s.token", id);
	int fd = openat(st->vmsfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, tok, n - 1);
	close(fd);
	if (r <= 0)
		return -1;
	tok[r] = 0;
	tok[strcspn(tok, "\r\n")] = 0;
	return 0;
}
