/* dns-load: A queries over UDP at a server, for tests and benchmarks.
 *
 *   dns-load SERVER COUNT RATE NAME-FORMAT
 *
 * Sends COUNT queries at about RATE per second (0: one after another, each
 * waiting for its answer), names from NAME-FORMAT with %u replaced by a
 * random number (for example "r%u.wild.test"), %i with the query's
 * number (0, 1, ...), or taken as is.  Prints one
 * JSON object: sent, answered, lost (no answer in 2 s), rcodes by number,
 * the latency p50/p99/max in microseconds of those answered, and the rate
 * achieved.
 *
 *   dns-load SERVER pair NAME
 *
 * Sends an A and then an AAAA query for NAME under one id from one socket
 * (as BusyBox's nslookup does) and prints the question types of the
 * answers in the order they came, for example "1 28"; "lost" for each
 * missing after 3 s. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXQ 1000000

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t build_type(uint8_t *b, uint16_t id, const char *name, uint16_t type)
{
	size_t o = 12;

	memset(b, 0, 12);
	b[0] = (uint8_t)(id >> 8);
	b[1] = (uint8_t)id;
	b[2] = 1; /* RD */
	b[5] = 1;
	for (const char *s = name; *s;) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		b[o++] = (uint8_t)l;
		memcpy(b + o, s, l);
		o += l;
		s += l + (dot != NULL);
	}
	b[o++] = 0;
	b[o++] = (uint8_t)(type >> 8), b[o++] = (uint8_t)type;
	b[o++] = 0, b[o++] = 1; /* IN */
	return o;
}

static size_t build(uint8_t *b, uint16_t id, const char *name)
{
	return build_type(b, id, name, 1);
}

static int pair(int fd, const char *name)
{
	uint8_t b[4096];
	size_t n;

	for (uint16_t type = 1; type; type = type == 1 ? 28 : 0) {
		n = build_type(b, 0x4242, name, type);
		if (send(fd, b, n, 0) != (ssize_t)n) {
			perror("dns-load: send");
			return 1;
		}
	}
	for (int k = 0; k < 2; k++) {
		struct pollfd pf = { fd, POLLIN, 0 };
		ssize_t r = poll(&pf, 1, 3000) == 1 ? recv(fd, b, sizeof b, 0) : -1;
		size_t o = 12;
		while (r > 12 && o < (size_t)r && b[o])
			o += (size_t)b[o] + 1;
		if (r < 12 || o + 3 > (size_t)r) {
			printf("%slost", k ? " " : "");
			continue;
		}
		printf("%s%u", k ? " " : "", (unsigned)(b[o + 1] << 8 | b[o + 2]));
	}
	printf("\n");
	return 0;
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The run's bookkeeping, by query id (the low 16 bits of its number). */
static int64_t sent_at[65536], lat[MAXQ], last_answer;
static uint8_t answered[65536];
static unsigned long rcodes[16];
static long nlat, sent;

/* Query number i, its name from fmt. */
static void send_query(int fd, const char *fmt, long i, int64_t now)
{
	const char *pct = strstr(fmt, "%u"), *seq = strstr(fmt, "%i");
	char name[300];
	uint8_t b[512];
	uint32_t r;

	(void)!getrandom(&r, sizeof r, 0);
	if (pct)
		snprintf(name, sizeof name, "%.*s%u%s", (int)(pct - fmt), fmt, r, pct + 2);
	else if (seq)
		snprintf(name, sizeof name, "%.*s%ld%s", (int)(seq - fmt), fmt, i, seq + 2);
	else
		snprintf(name, sizeof name, "%s", fmt);
	uint16_t id = (uint16_t)i;
	size_t n = build(b, id, name);
	sent_at[id] = now;
	answered[id] = 0;
	if (send(fd, b, n, 0) == (ssize_t)n)
		sent++;
}

/* An answer, if one comes within wait ms: its latency and rcode noted
 * (the first answer to an id only). */
static void take_answer(int fd, int wait)
{
	struct pollfd pf = { fd, POLLIN, 0 };
	uint8_t b[4096];

	if (poll(&pf, 1, wait < 0 ? 0 : wait) != 1)
		return;
	ssize_t r = recv(fd, b, sizeof b, 0);
	if (r >= 12) {
		uint16_t id = (uint16_t)(b[0] << 8 | b[1]);
		if (!answered[id]) {
			answered[id] = 1;
			lat[nlat++] = now_us() - sent_at[id];
			rcodes[b[3] & 15]++;
			last_answer = now_us();
		}
	}
}

static void report(int64_t t0)
{
	double secs = (double)(now_us() - t0) / 1e6;
	qsort(lat, (size_t)nlat, sizeof *lat, cmp);
	printf("{\"sent\":%ld,\"answered\":%ld,\"lost\":%ld,\"rcodes\":{", sent, nlat, sent - nlat);
	for (int k = 0, first = 1; k < 16; k++)
		if (rcodes[k]) {
			printf("%s\"%d\":%lu", first ? "" : ",", k, rcodes[k]);
			first = 0;
		}
	printf("},\"p50us\":%lld,\"p99us\":%lld,\"maxus\":%lld,\"qps\":%.0f}\n", nlat ? (long long)lat[nlat / 2] : -1,
	       nlat ? (long long)lat[nlat * 99 / 100] : -1, nlat ? (long long)lat[nlat - 1] : -1, (double)nlat / secs);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
	long count, rate;
	int fd;

	if (argc == 4 && !strcmp(argv[2], "pair") && inet_pton(AF_INET, argv[1], &sa.sin_addr) == 1) {
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
			perror("dns-load");
			return 1;
		}
		return pair(fd, argv[3]);
	}
	if (argc != 5 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 || (count = atol(argv[2])) <= 0 ||
	    count > MAXQ || (rate = atol(argv[3])) < 0) {
		fprintf(stderr, "usage: dns-load SERVER COUNT RATE NAME-FORMAT\n       dns-load SERVER pair NAME\n");
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
		perror("dns-load");
		return 1;
	}
	/* Send on schedule (or each after the last answer); between sends,
	 * and for 2 s after the last, take answers. */
	int64_t t0 = now_us();
	last_answer = t0;
	for (long i = 0; i < count || (sent > nlat && now_us() - last_answer < 2000000);) {
		int64_t now = now_us();
		bool may_send = i < count && (rate ? now >= t0 + i * 1000000 / rate : sent == nlat);
		if (may_send) {
			send_query(fd, argv[4], i, now);
			i++;
			if (i == count)
				last_answer = now_us();
			continue;
		}
		int64_t next = i < count && rate ? t0 + i * 1000000 / rate : now + 100000;
		take_answer(fd, (int)((next - now) / 1000));
	}
	report(t0);
	return 0;
}
