/* Errors and replies: the only place a helper writes to stdout. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmsan.h"

const char *vmsan_prog = "vmsan";
int vmsan_verbose;

/* The length of the UTF-8 character at s (RFC 3629: no overlong form,
 * no surrogate, nothing past U+10FFFF), 0 when there is none: what
 * jansson takes in a string. */
static size_t utf8_char(const unsigned char *s)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* A message made valid UTF-8 in place, for the JSON reply (jansson
 * refuses anything else, and the reply would be lost): a character cut at
 * the end of the buffer is dropped, any other byte that is not UTF-8
 * becomes '?'. */
static void utf8_repair(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = utf8_char(p);
		if (n) {
			p += n;
			continue;
		}
		/* the start of a character the end cut short */
		size_t k = 1;
		while (p[k] >= 0x80 && p[k] <= 0xbf && k < 4)
			k++;
		if (!p[k] && *p >= 0xc2 && *p <= 0xf4 && k < (*p >= 0xf0 ? 4u : *p >= 0xe0 ? 3u : 2u)) {
			*p = 0;
			return;
		}
		*p++ = '?';
	}
}

static void verr_vset(struct verr *e, int exit, const char *code, const char *fix, const char *fmt, va_list ap)
{
	if (verr_isset(e))
		return;
	e->code = code;
	e->exit = exit;
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	snprintf(e->fix, sizeof(e->fix), "%s", fix ? fix : "");
	utf8_repair(e->message);
	utf8_repair(e->fix);
}

void verr_set(struct verr *e, int exit, const char *code, const char *fix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr_vset(e, exit, code, fix, fmt, ap);
	va_end(ap);
}

int verr_fail(struct verr *e, int exit, const char *code, const char *fix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr_vset(e, exit, code, fix, fmt, ap);
	va_end(ap);
	return -1;
}

void verr_sys(struct verr *e, const char *code, const char *fix, const char *fmt, ...)
{
	int saved = errno;
	char buf[512];
	va_list ap;

	if (verr_isset(e))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	utf8_repair(buf);
	verr_set(e, VMSAN_EXIT_SYS, code, fix, "%s: %s", buf, strerror(saved));
}

void verr_cut(struct verr *e, size_t max)
{
	if (max >= sizeof(e->message) || strlen(e->message) <= max)
		return;
	e->message[max] = 0;
	utf8_repair(e->message);
}

bool verr_take(struct verr *e, const char *code)
{
	if (!e->code || strcmp(e->code, code) != 0)
		return false;
	*e = (struct verr){ 0 };
	return true;
}

void vmsan_debug(const char *fmt, ...)
{
	va_list ap;

	if (!vmsan_verbose)
		return;
	fprintf(stderr, "%s: ", vmsan_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int emit(json_t *doc)
{
	int rc = json_dumpf(doc, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);

	if (rc == 0 && (fputc('\n', stdout) == EOF || fflush(stdout) == EOF))
		rc = -1;
	json_decref(doc);
	if (rc != 0) {
		fprintf(stderr, "%s: cannot write reply: %s\n", vmsan_prog, strerror(errno));
		return VMSAN_EXIT_SYS;
	}
	return VMSAN_EXIT_OK;
}

int reply_ok(json_t *reply)
{
	if (!reply)
		return VMSAN_EXIT_SYS;
	json_object_set_new(reply, "ok", json_true());
	return emit(reply);
}

static json_t *error_doc(const struct verr *e)
{
	json_t *err = json_pack("{s:s, s:s}", "code", e->code ? e->code : "ERR_INTERNAL", "message", e->message);

	if (e->fix[0])
		json_object_set_new(err, "fix", json_string(e->fix));
	return json_pack("{s:b, s:o}", "ok", 0, "error", err);
}

int reply_error(const struct verr *e)
{
	if (vmsan_verbose)
		fprintf(stderr, "%s: %s\n", vmsan_prog, e->message);
	emit(error_doc(e));
	return e->exit ? e->exit : VMSAN_EXIT_FAIL;
}

int report_error(const char *cmd, bool json, const struct verr *e)
{
	if (json)
		emit(error_doc(e));
	fprintf(stderr, "vmsan %s: %s\n", cmd, e->message);
	if (e->fix[0])
		fprintf(stderr, "  fix: %s\n", e->fix);
	return e->exit ? e->exit : VMSAN_EXIT_FAIL;
}

int report_usage(const char *cmd, bool json, const char *fmt, ...)
{
	struct verr e = { 0 };
	char fix[96];
	va_list ap;

	snprintf(fix, sizeof fix, "see 'vmsan %s --help'", cmd);
	va_start(ap, fmt);
	verr_vset(&e, VMSAN_EXIT_USAGE, "ERR_USAGE", fix, fmt, ap);
	va_end(ap);
	return report_error(cmd, json, &e);
}
