/* exec-rtt: latency of running a command, two ways, N times each.
 *   exec-rtt spawn N PATH            fork + execve + waitpid, locally
 *   exec-rtt posix-spawn N PATH      posix_spawn (vfork-like) + waitpid
 *   exec-rtt agent N HOST PORT TOKEN PATH
 *                                    POST /exec to vmsan-agent on a new
 *                                    TCP connection, until the exit event
 *   exec-rtt all N HOST PORT TOKEN PATH
 *                                    all four of these, interleaved
 *   exec-rtt health N HOST PORT TOKEN
 *                                    GET /health on a new TCP connection
 *                                    (the HTTP part of the round trip)
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
#include <spawn.h>
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
	int bl = snprintf(body, sizeof body, "{\"cmd\":\"%s\"}", path ? path : "");
	int rl = path ? snprintf(req, sizeof req,
				 "POST /exec HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
				 "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
				 token, bl, body)
		      : snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
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
		if (path && strstr(buf, "\"type\":\"exit\""))
			break;
	}
	double t1 = now_us();
	close(fd);
	if (!path && strncmp(buf, "HTTP/1.1 200", 12)) {
		fprintf(stderr, "exec-rtt: /health failed: %s\n", buf);
		exit(1);
	}
	if (path && !strstr(buf, "\"exitCode\":0")) {
		fprintf(stderr, "exec-rtt: no exit 0 in: %s\n", buf);
		exit(1);
	}
	return t1 - t0;
}

static double one_spawn(const char *path, int use_posix_spawn)
{
	char *argv[] = { (char *)path, NULL }, *envp[] = { NULL };
	double t0 = now_us();
	pid_t p;
	if (use_posix_spawn) {
		if (posix_spawn(&p, path, NULL, NULL, argv, envp) != 0) {
			perror("exec-rtt: posix_spawn");
			exit(1);
		}
	} else if ((p = fork()) == 0) {
		execve(path, argv, envp);
		_exit(127);
	}
	int st;
	waitpid(p, &st, 0);
	return now_us() - t0;
}

static void report(const char *name, double *v, int n, int last)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	printf("\"%s\":{\"n\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f}%s", name, n, v[n / 2], v[(n * 99) / 100],
	       last ? "" : ",");
}

/* exec-rtt all N HOST PORT TOKEN PATH: the four, interleaved run by run
 * so that they share whatever the machine is doing at the time. */
static int all(int n, const char *host, int port, const char *token, const char *path)
{
	double *v[4];
	for (int k = 0; k < 4; k++)
		v[k] = calloc((size_t)n, sizeof(double));
	for (int i = 0; i < n + n / 10; i++) {
		double d[4] = { one_spawn(path, 0), one_spawn(path, 1), one_agent(host, port, token, path),
				one_agent(host, port, token, NULL) };
		if (i >= n / 10)
			for (int k = 0; k < 4; k++)
				v[k][i - n / 10] = d[k];
	}
	printf("{");
	report("fork_exec", v[0], n, 0);
	report("posix_spawn", v[1], n, 0);
	report("agent_exec", v[2], n, 0);
	report("agent_health", v[3], n, 1);
	printf("}\n");
	for (int k = 0; k < 4; k++)
		free(v[k]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr,
			"usage: exec-rtt spawn|posix-spawn N PATH | all N HOST PORT TOKEN PATH | agent N HOST PORT TOKEN PATH | health N HOST PORT TOKEN\n");
		return 2;
	}
	int n = atoi(argv[2]);
	if (!strcmp(argv[1], "all"))
		return n < 1 || argc < 7 ? 2 : all(n, argv[3], atoi(argv[4]), argv[5], argv[6]);
	int agent = !strcmp(argv[1], "agent"), health = !strcmp(argv[1], "health");
	if (n < 1 || (agent && argc < 7) || (health && argc < 6))
		return 2;
	double *v = calloc((size_t)n, sizeof *v);
	for (int i = 0; i < n + n / 10; i++) { /* the first tenth warms up */
		double d = agent    ? one_agent(argv[3], atoi(argv[4]), argv[5], argv[6])
			   : health ? one_agent(argv[3], atoi(argv[4]), argv[5], NULL)
				    : one_spawn(argv[3], !strcmp(argv[1], "posix-spawn"));
		if (i >= n / 10)
			v[i - n / 10] = d;
	}
	qsort(v, (size_t)n, sizeof *v, cmp);
	printf("{\"n\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f}\n", n, v[n / 2], v[(n * 99) / 100]);
	free(v);
	return 0;
}
