/* The main() every helper shares: flags, one request, one op, one reply. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmsan.h"

#ifndef VMSAN_VERSION
#define VMSAN_VERSION "0.0.0"
#endif

/* fds 0-2 must exist, or the first file we open becomes "stdout". */
static int sane_stdio(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		struct stat sb;

		if (fstat(fd, &sb) == 0)
			continue;
		if (open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
			return -1;
	}
	return 0;
}

static const struct helper_op *find_op(const struct helper *h, const char *name)
{
	for (size_t i = 0; i < h->nops; i++)
		if (strcmp(h->ops[i].name, name) == 0)
			return &h->ops[i];
	return NULL;
}

static void op_list(const struct helper *h, char *buf, size_t n)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < h->nops && used < n; i++)
		used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", h->ops[i].name);
}

/* The flags, and at most one op on the command line (into *argop): -1 to
 * go on, else the exit status (a flag answered, or bad usage replied). */
static int parse_flags(const struct helper *h, int argc, char **argv, const char **argop)
{
	struct verr e = { 0 };

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(h->usage, stdout);
			return VMSAN_EXIT_OK;
		} else if (strcmp(a, "--summary") == 0) {
			puts(h->summary);
			return VMSAN_EXIT_OK;
		} else if (strcmp(a, "--complete") == 0) {
			for (size_t k = 0; k < h->nops; k++)
				puts(h->ops[k].name);
			puts("--help\n--summary\n--verbose\n--version");
			return VMSAN_EXIT_OK;
		} else if (strcmp(a, "--version") == 0) {
			printf("%s %s\n", h->name, VMSAN_VERSION);
			return VMSAN_EXIT_OK;
		} else if (strcmp(a, "--verbose") == 0) {
			vmsan_verbose = 1;
		} else if (a[0] == '-' || *argop) {
			verr_set(&e, VMSAN_EXIT_USAGE, "ERR_USAGE", "run it with --help for usage",
				 "unexpected argument '%s'", a);
			return reply_error(&e);
		} else {
			*argop = a;
		}
	}
	if (getenv("VMSAN_VERBOSE") && strcmp(getenv("VMSAN_VERBOSE"), "1") == 0)
		vmsan_verbose = 1;
	return -1;
}

/* The op the request names (or the command line), run: its reply, or
 * NULL with e set. */
static json_t *run_op(const struct helper *h, struct jr *r, const char *argop, struct verr *e)
{
	const struct helper_op *hop;
	const char *op;
	char ops[512];

	op = jr_string(r, "op", argop ? JR_OPTIONAL : JR_REQUIRED, NULL);
	if (verr_isset(e))
		return NULL;
	if (argop && op && strcmp(argop, op) != 0) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "op '%s' on the command line but '%s' in the request",
			 argop, op);
		return NULL;
	}
	if (!op)
		op = argop;
	hop = find_op(h, op);
	if (!hop) {
		op_list(h, ops, sizeof(ops));
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "unknown op '%s' (known: %s)", op, ops);
		return NULL;
	}
	vmsan_debug("op %s", op);
	return hop->fn(r, e);
}

bool helper_answers_only(int argc, char **argv)
{
	static const char *const answers[] = { "--help", "-h", "--summary", "--complete", "--version" };

	for (int i = 1; i < argc; i++)
		for (size_t k = 0; k < sizeof answers / sizeof *answers; k++)
			if (!strcmp(argv[i], answers[k]))
				return true;
	return false;
}

int helper_main(const struct helper *h, int argc, char **argv)
{
	const char *argop = NULL;
	struct verr e = { 0 };
	json_t *req, *reply;
	struct jr r;
	int rc;

	vmsan_prog = h->name;
	if (sane_stdio() != 0)
		return VMSAN_EXIT_SYS;
	rc = parse_flags(h, argc, argv, &argop);
	if (rc >= 0)
		return rc;

	/* With the op on the command line a terminal on stdin means "no body". */
	if (argop && isatty(STDIN_FILENO))
		req = json_object();
	else
		req = request_read(STDIN_FILENO, &e);
	if (!req)
		return reply_error(&e);

	jr_init(&r, req, "request", &e);
	reply = run_op(h, &r, argop, &e);
	if (reply)
		rc = h->print ? h->print(reply) : reply_ok(reply);
	else {
		if (!verr_isset(&e))
			verr_set(&e, VMSAN_EXIT_FAIL, "ERR_INTERNAL", NULL, "op failed without saying why");
		rc = reply_error(&e);
	}
	json_decref(req);
	return rc;
}
