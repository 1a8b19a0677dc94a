/* http-load: HTTP/1.0 requests over fresh TCP connections, for benchmarks
 * of what lies between (--strict-domains puts vmsan-dns's check there).
 *
 *   http-load -l ADDR PORT                serve: read a request head, answer
 *                                         200 with N bytes for "GET /N"; for
 *                                         a POST, read its Content-Length
 *                                         bytes and answer 200 with 2 bytes
 *                                         if all came (else 400); close;
 *                                         one connection at a time
 *   http-load ADDR PORT HOST PATH COUNT [UPLOAD]
 *                                         COUNT requests one after another,
 *                                         each on a new connection; with
 *                                         UPLOAD, POSTs of that many bytes
 *
 * The client prints one JSON object: requests, ok (a 200 and its whole
 * body), the time from connect to the last byte (p50, p99, in
 * microseconds), and the body bytes per second over all of them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int serve(const struct sockaddr_in *sa)
{
	static char body[1 << 16];
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);

	memset(body, 'x', sizeof body);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(s, (const struct sockaddr *)sa, sizeof *sa) || listen(s, 128)) {
		perror("http-load: listen");
		return 111;
	}
	for (;;) {
		char req[4096], head[128];
		size_t got = 0;
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		while (got < sizeof req - 1) {
			ssize_t r = read(c, req + got, sizeof req - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
			req[got] = 0;
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[got] = 0;
		long long n = 2, post = -1;
		const char *cl = strstr(req, "Content-Length: "), *end = strstr(req, "\r\n\r\n");
		if (!strncmp(req, "GET /", 5))
			n = atoll(req + 5);
		if (!strncmp(req, "POST ", 5) && cl && end) {
			long long want = atoll(cl + 16), have = (long long)got - (end + 4 - req);
			while (have < want) {
				ssize_t r = read(c, body, sizeof body);
				if (r <= 0)
					break;
				have += r;
			}
			post = have == want;
		}
		int hl = snprintf(head, sizeof head, "HTTP/1.0 %s\r\nContent-Length: %lld\r\n\r\n",
				  post == 0 ? "400 Short" : "200 OK", n);
		if (write(c, head, (size_t)hl) == hl)
			for (long long left = n; left > 0;) {
				ssize_t w =
					write(c, body,
					      (size_t)(left < (long long)sizeof body ? left : (long long)sizeof body));
				if (w <= 0)
					break;
				left -= w;
			}
		close(c);
	}
}

/* A test tool: the options, the threads, the report, in the order they run
 * (81 lines; split, the order would be harder to see). */
int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int listen_mode = argc == 4 && !strcmp(argv[1], "-l");

	if (!listen_mode && argc != 6 && argc != 7) {
		fprintf(stderr, "usage: http-load -l ADDR PORT | ADDR PORT HOST PATH COUNT [UPLOAD]\n");
		return 100;
	}
	if (inet_pton(AF_INET, argv[listen_mode ? 2 : 1], &sa.sin_addr) != 1) {
		fprintf(stderr, "http-load: bad address\n");
		return 100;
	}
	sa.sin_port = htons((uint16_t)atoi(argv[listen_mode ? 3 : 2]));
	if (listen_mode)
		return serve(&sa);
	long count = atol(argv[5]), ok = 0;
	int64_t *lat = calloc((size_t)(count > 0 ? count : 1), sizeof *lat), total = 0;
	long long bytes = 0;
	static char buf[1 << 16];
	char req[512];
	long long up = argc == 7 ? atoll(argv[6]) : -1;
	int rl = up < 0 ? snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", argv[4], argv[3])
			: snprintf(req, sizeof req, "POST %s HTTP/1.0\r\nHost: %s\r\nContent-Length: %lld\r\n\r\n",
				   argv[4], argv[3], up);
	memset(buf, 'y', sizeof buf);

	if (!lat || count <= 0)
		return 100;
	for (long i = 0; i < count; i++) {
		int64_t t0 = now_us();
		int s = socket(AF_INET, SOCK_STREAM, 0);
		long long got = 0, want = -1, body = 0;
		bool sent = s >= 0 && !connect(s, (struct sockaddr *)&sa, sizeof sa) && write(s, req, (size_t)rl) == rl;
		for (long long left = up; sent && left > 0;) {
			ssize_t w =
				write(s, buf, (size_t)(left < (long long)sizeof buf ? left : (long long)sizeof buf));
			sent = w > 0;
			left -= w;
		}
		if (!sent) {
			if (s >= 0)
				close(s);
			lat[i] = now_us() - t0;
			continue;
		}
		char head[256];
		size_t hn = 0;
		for (;;) {
			ssize_t r = read(s, buf, sizeof buf);
			if (r <= 0)
				break;
			got += r;
			if (want < 0) {
				size_t k = (size_t)r < sizeof head - 1 - hn ? (size_t)r : sizeof head - 1 - hn;
				memcpy(head + hn, buf, k);
				hn += k;
				head[hn] = 0;
				char *e = strstr(head, "\r\n\r\n"), *cl = strstr(head, "Content-Length: ");
				if (e && cl && !strncmp(head, "HTTP/1.0 200", 12)) {
					want = atoll(cl + 16);
					body = got - (e + 4 - head);
				}
			} else {
				body += r;
			}
		}
		close(s);
		lat[i] = now_us() - t0;
		total += lat[i];
		if (want >= 0 && body == want) {
			ok++;
			bytes += body;
		}
	}
	qsort(lat, (size_t)count, sizeof *lat, cmp);
	printf("{\"requests\":%ld,\"ok\":%ld,\"p50us\":%lld,\"p99us\":%lld,\"MBps\":%.1f}\n", count, ok,
	       (long long)lat[count / 2], (long long)lat[count * 99 / 100],
	       total ? (double)bytes / (double)total : 0.0);
	free(lat);
	return 0;
}
