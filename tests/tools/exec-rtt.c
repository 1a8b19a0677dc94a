/* exec-rtt: latency of running a command, two ways, N times each.
 *   exec-rtt spawn N PATH            fork + execve + waitpid, locally
 *   exec-rtt agent N HOST PORT TOKEN PATH
 *                                    POST /exec to vmsan-agent on a new
 *                                    TCP connection, until the exit event
 * Prints p50 and p99 in microseconds as JSON.  For bench/agent.sh. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double one_agent(const char *host, int port, const char *token, const char *path)
{
	char req[1024], body[512], buf[65536];
	int bl = snprintf(body, sizeof body, "{\"cmd\":\"%s\"}", path);
	int rl = snprintf(req, sizeof req, "POST /exec HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
			  "Content-Length: %d\r\nConnection: close\r\n\r\n%s", token, bl, body);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	inet_pton(AF_INET, host, &sin.sin_addr);
	double t0 = now_us();
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || write(fd, req, (size_t)rl) != rl) {
		perror("exec-rtt: connect");
		exit(1);
	}
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = 0;
		if (strstr(buf, "\"type\":\"exit\""))
			break;
	}
	double t1 = now_us();
	close(fd);
	if (!strstr(buf, "\"exitCode\":0")) {
		fprintf(stderr, "exec-rtt: no exit 0 in: %s\n", buf);
		exit(1);
	}
	return t1 - t0;
}

static double one_spawn(const char *path)
{
	double t0 = now_us();
	pid_t p = fork();
	if (p == 0) {
		char *argv[] = { (char *)path, NULL }, *envp[] = { NULL };
		execve(path, argv, envp);
		_exit(127);
	}
	int st;
	waitpid(p, &st, 0);
	return now_us() - t0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: exec-rtt spawn N PATH | agent N HOST PORT TOKEN PATH\n");
		return 2;
	}
	int n = atoi(argv[2]);
	int agent = !strcmp(argv[1], "agent");
	if (n < 1 || (agent && argc < 7))
		return 2;
	double *v = calloc((size_t)n, sizeof *v);
	for (int i = 0; i < n + n / 10; i++) {   /* the first tenth warms up */
		double d = agent ? one_agent(argv[3], atoi(argv[4]), argv[5], argv[6]) : one_spawn(argv[3]);
		if (i >= n / 10)
			v[i - n / 10] = d;
	}
	qsort(v, (size_t)n, sizeof *v, cmp);
	printf("{\"n\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f}\n", n, v[n / 2], v[(n * 99) / 100]);
	free(v);
	return 0;
}
