/* connect-rate: TCP connections per second, for benchmarks.
 *
 *   connect-rate -l ADDR PORT           accept and close, forever
 *   connect-rate ADDR PORT SECONDS      connect, read the close, repeat;
 *                                       print connections per second
 *
 * Every connection is a full handshake and teardown through whatever lies
 * between, so the rate measures the per-connection cost of the path.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int listen_mode = argc == 4 && strcmp(argv[1], "-l") == 0;
	const char *addr = argv[listen_mode ? 2 : 1];
	long count = 0;
	double end;

	if (argc != 4) {
		fprintf(stderr, "usage: connect-rate -l ADDR PORT | ADDR PORT SECONDS\n");
		return 100;
	}
	sa.sin_port = htons((unsigned short)atoi(argv[listen_mode ? 3 : 2]));
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "connect-rate: bad address %s\n", addr);
		return 100;
	}
	if (listen_mode) {
		int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);

		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(s, 1024) != 0) {
			perror("connect-rate: listen");
			return 111;
		}
		for (;;) {
			int c = accept(s, NULL, NULL);

			if (c >= 0)
				close(c);
		}
	}
	end = now() + atof(argv[3]);
	while (now() < end) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		char b;

		if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			perror("connect-rate: connect");
			return 1;
		}
		if (read(s, &b, 1) < 0)
			perror("connect-rate: read");
		close(s);
		count++;
	}
	printf("%.0f\n", (double)count / atof(argv[3]));
	return 0;
}
