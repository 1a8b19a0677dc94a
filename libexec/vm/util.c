/* What every command shares: its name, the output mode, messages. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <limits.h>

#include "vm/vm.h"

bool json_mode, verbose;
const char *cmd = "create";
char libexec[PATH_MAX];
volatile sig_atomic_t interrupted;

double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

void say(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "vmsan %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* For tests of interrupted creates: VMSAN_CREATE_PAUSE=STEP stops this
 * process (SIGSTOP) just before STEP (image, network, vmm, boot,
 * running), so a test can kill it there.  Documented in vmsan(1). */
void pause_at(const char *step)
{
	const char *p = getenv("VMSAN_CREATE_PAUSE");
	if (p && !strcmp(p, step))
		raise(SIGSTOP);
}

const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

long long jint(json_t *o, const char *k, long long dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

int report(const struct verr *e)
{
	return report_error(cmd, json_mode, e);
}

void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

bool tmp_abandoned(const char *name, const char *suffix)
{
	const char *dot = strrchr(name, '.'), *p;
	if (name[0] != '.' || !dot || dot == name || strcmp(dot, suffix))
		return false;
	for (p = dot - 1; p > name && isdigit((unsigned char)*p); p--)
		;
	long pid = *p == '.' && p + 1 < dot ? strtol(p + 1, NULL, 10) : 0;
	return !(pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH));
}

void report_deleted(json_t *gone, const char *what)
{
	size_t i;
	json_t *v;
	if (json_mode) {
		json_t *doc = json_pack("{s:b, s:O}", "ok", 1, "deleted", gone);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
		return;
	}
	json_array_foreach(gone, i, v)
		printf("%s deleted: %s\n", what, json_string_value(v));
}
