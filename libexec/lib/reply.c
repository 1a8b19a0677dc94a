/* Errors and replies: the only place a helper writes to stdout. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmsan.h"

const char *vmsan_prog = "vmsan";
int vmsan_verbose;

static void verr_vset(struct verr *e, int exit, const char *code, const char *fix, const char *fmt, va_list ap)
{
	if (verr_isset(e))
		return;
	e->code = code;
	e->exit = exit;
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	snprintf(e->fix, sizeof(e->fix), "%s", fix ? fix : "");
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
	verr_set(e, VMSAN_EXIT_SYS, code, fix, "%s: %s", buf, strerror(saved));
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
