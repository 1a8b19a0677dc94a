/* The DNS log (fd 3, when the VM has one): a JSON line a verdict, at most
 * LOG_RATE a second with bursts of LOG_BURST (a guest asking in a loop
 * cannot fill the disk), the file started again past LOG_MAX_BYTES. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns/dns.h"

/* The log's rate limit: a token per line. */
static bool log_take(int64_t now)
{
	if (R.log < 0)
		return false;
	R.log_tokens += (double)(now - R.log_at) * LOG_RATE / 1000.0;
	if (R.log_tokens > LOG_BURST)
		R.log_tokens = LOG_BURST;
	R.log_at = now;
	if (R.log_tokens < 1) {
		R.log_suppressed++;
		return false;
	}
	R.log_tokens -= 1;
	return true;
}

static void log_put(const char *line, size_t o)
{
	struct stat sb;

	R.log_suppressed = 0;
	if (fstat(R.log, &sb) == 0 && sb.st_size > LOG_MAX_BYTES) {
		/* bounded: start again, saying so */
		if (ftruncate(R.log, 0) == 0)
			(void)!write(R.log, "{\"truncated\":true}\n", 19);
	}
	(void)!write(R.log, line, o);
}

#define LOG_LINE 1024
#define P(...) (o += (size_t)snprintf(line + o, o < LOG_LINE ? LOG_LINE - o : 0, __VA_ARGS__))

/* A log line's start, {"time":..,"verdict":..; 0 when the rate limit
 * drops it. */
static size_t log_begin(char line[LOG_LINE], const char *verdict)
{
	struct timespec ts;
	struct tm tm;
	size_t o = 0;

	if (!log_take(now_ms()))
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	P("{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"verdict\":\"%s\"", tm.tm_year + 1900, tm.tm_mon + 1,
	  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, verdict);
	return o;
}

/* Its end (the reason, what the rate limit dropped before), written. */
static void log_end(char line[LOG_LINE], size_t o, const char *why)
{
	if (why)
		P(",\"reason\":\"%s\"", why);
	if (R.log_suppressed)
		P(",\"suppressedBefore\":%llu", R.log_suppressed);
	P("}\n");
	if (o < LOG_LINE) /* names are at most 253 printable bytes: always */
		log_put(line, o);
}

/* A query's verdict: its name and type, the pattern that allowed it, the
 * addresses let in. */
void log_line(const char *verdict, const struct dns_q *q, long pat, const struct dns_addr *a, size_t na,
	      const char *why)
{
	char line[LOG_LINE];
	size_t o = log_begin(line, verdict);

	if (!o)
		return;
	P(",\"name\":\"%s\",\"type\":%u", q->name, q->type);
	if (pat >= 0)
		P(",\"pattern\":\"%s\"", dns_allow_pattern(R.allow, pat));
	if (na) {
		P(",\"addresses\":[");
		for (size_t i = 0; i < na; i++)
			P("%s\"%u.%u.%u.%u\"", i ? "," : "", a[i].addr >> 24, a[i].addr >> 16 & 255,
			  a[i].addr >> 8 & 255, a[i].addr & 255);
		P("],\"ttl\":%u", a[0].ttl);
	}
	log_end(line, o, why);
}

/* A --strict-domains connection's verdict: name (may be ""), where to. */
void log_conn(const char *verdict, bool http, const char *name, const struct sockaddr_in *dst, const char *why)
{
	char line[LOG_LINE];
	size_t o = log_begin(line, verdict);
	uint32_t a = ntohl(dst->sin_addr.s_addr);

	if (!o)
		return;
	P(",\"conn\":\"%s\",\"name\":\"%s\",\"address\":\"%u.%u.%u.%u\",\"port\":%u", http ? "http" : "tls", name,
	  a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255, (unsigned)ntohs(dst->sin_port));
	log_end(line, o, why);
}
#undef P
