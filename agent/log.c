/* vmsan-agent's log lines (JSON on stderr), timestamps and random ids. */
#define _GNU_SOURCE
#include "agent.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void ts_now(char out[64])
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

/* One JSON line on stderr: {"ts","level","msg",<fields>}.  fmt gives the
 * remaining members, already JSON (callers escape strings with buf_jstr). */
void logj(const char *level, const char *msg, const char *fmt, ...)
{
	if (cfg.quiet && strcmp(level, "error") != 0)
		return;
	char ts[64], rest[2048] = "";
	ts_now(ts);
	if (fmt && *fmt) {
		va_list ap;
		va_start(ap, fmt);
		rest[0] = ',';
		vsnprintf(rest + 1, sizeof rest - 1, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_lock(&log_mu);
	fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"%s}\n", ts, level, msg, rest);
	fflush(stderr);
	pthread_mutex_unlock(&log_mu);
}

#ifndef GRND_INSECURE
#define GRND_INSECURE 0x0004 /* Linux 5.6 */
#endif

void random_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[64];
	size_t need = (n + 1) / 2;
	if (need > sizeof b)
		need = sizeof b;
	/* Ids, not secrets (every route they name needs the token): taken
	 * without waiting for the guest's entropy pool, which under TCG was
	 * still filling a second after boot and held the first exec that long. */
	if (getrandom(b, need, GRND_INSECURE) != (ssize_t)need) {
		/* The kernel's CSPRNG failing is not something to paper over. */
		logj("error", "getrandom failed", NULL);
		abort();
	}
	for (size_t i = 0; i < n; i++)
		out[i] = hex[(b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	out[n] = 0;
}
