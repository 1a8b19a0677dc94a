/* What every command shares: its name, the output mode, messages. */
#define _GNU_SOURCE
#include <errno.h>
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
