/* vmsan helper library: the contract every helper shares.
 *
 * A helper reads one JSON request on stdin, does one job, and writes one
 * JSON reply on stdout.  Failures are reported as
 *   {"ok":false,"error":{"code":"ERR_...","message":"...","fix":"..."}}
 * with exit 100 (usage/validation), 1 (refused or failed) or 111 (a system
 * call failed).  Only main() exits; everything else returns and fills a
 * struct verr.
 */
#ifndef VMSAN_H
#define VMSAN_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <time.h>

#define VMSAN_EXIT_OK 0
#define VMSAN_EXIT_FAIL 1
#define VMSAN_EXIT_USAGE 100
#define VMSAN_EXIT_SYS 111

#define VMSAN_REQUEST_MAX (1024 * 1024)

struct verr {
	const char *code; /* ERR_..., static string; NULL while no error */
	int exit;	  /* one of VMSAN_EXIT_* */
	char message[768];
	char fix[384];
};

/* Record the first error only: later calls are no-ops, so a chain of
 * checks can run and the earliest, most precise message wins. */
void verr_set(struct verr *e, int exit, const char *code, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* verr_set, then return -1: the one error wrapper, for the common
 *   if (bad) return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_X", fix, ...);
 * Files that raise one code many times name it once:
 *   #define BAD_FIELD(...) verr_fail(e, VMSAN_EXIT_USAGE, "ERR_..", NULL, __VA_ARGS__) */
int verr_fail(struct verr *e, int exit, const char *code, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Same as verr_set, with ": strerror(errno)" appended and exit 111. */
void verr_sys(struct verr *e, const char *code, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline bool verr_isset(const struct verr *e)
{
	return e->code != NULL;
}
/* The message cut to at most max bytes, at a whole UTF-8 character. */
void verr_cut(struct verr *e, size_t max);
/* If e holds error `code`, clear it and return true: for callers to whom
 * that error is an expected answer (no state directory yet = no VMs). */
bool verr_take(struct verr *e, const char *code);

/* ---- requests -------------------------------------------------------- */

/* Read at most VMSAN_REQUEST_MAX bytes from fd and parse them strictly:
 * one JSON object, no duplicate keys, valid UTF-8, no NUL, nothing after
 * it.  An empty body is the empty object. */
json_t *request_read(int fd, struct verr *e);
json_t *request_parse(const char *buf, size_t len, struct verr *e);

/* A strict reader over one JSON object.  Each accessor names the field it
 * wants; jr_end() then rejects any key nobody asked for.  Paths such as
 * "request.ports[2].host" appear in every message. */
#define JR_MAX_KEYS 48
struct jr {
	json_t *obj;
	char path[128];
	const char *seen[JR_MAX_KEYS];
	int nseen;
	struct verr *e;
};

enum { JR_OPTIONAL = 0, JR_REQUIRED = 1 };

/* A validator returns 0 when s is good, else writes why it is not. */
typedef int (*validator_fn)(const char *s, char *why, size_t whylen);

void jr_init(struct jr *r, json_t *obj, const char *path, struct verr *e);
const char *jr_string(struct jr *r, const char *key, int flags, validator_fn v);
/* Returns 1 if present and valid, 0 if absent (optional), -1 on error. */
int jr_int(struct jr *r, const char *key, int flags, long long min, long long max, long long *out);
int jr_bool(struct jr *r, const char *key, int flags, bool *out);
json_t *jr_object(struct jr *r, const char *key, int flags);
json_t *jr_array(struct jr *r, const char *key, int flags, size_t maxlen);
/* Mark a key as known without checking it (the caller takes the value). */
json_t *jr_any(struct jr *r, const char *key, int flags);
int jr_end(struct jr *r);

/* ---- replies --------------------------------------------------------- */

/* Adds "ok":true, prints one line on stdout, steals the reference. */
int reply_ok(json_t *reply);
/* Prints the error object on stdout and, when verbose, on stderr; returns
 * e->exit for main to return. */
int reply_error(const struct verr *e);
/* A porcelain command's error: the JSON document on stdout when json,
 * and "vmsan CMD: message" (and its fix) on stderr; the exit status. */
int report_error(const char *cmd, bool json, const struct verr *e);
/* Its usage error: ERR_USAGE, exit 100, the fix pointing at its --help. */
int report_usage(const char *cmd, bool json, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- helper main ----------------------------------------------------- */

struct helper_op {
	const char *name;
	/* r is positioned after "op"; the handler reads its fields, calls
	 * jr_end(), does its job and returns a reply object (NULL on error). */
	json_t *(*fn)(struct jr *r, struct verr *e);
};

struct helper {
	const char *name;
	const char *summary; /* one line for `vmsan help` */
	const char *usage;   /* --help text */
	const struct helper_op *ops;
	size_t nops;
	/* Optional: writes a successful reply instead of reply_ok (for a
	 * helper with another output format); returns the exit status. */
	int (*print)(json_t *reply);
};

extern const char *vmsan_prog;
extern int vmsan_verbose;
void vmsan_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int helper_main(const struct helper *h, int argc, char **argv);
/* Whether the command line holds a flag helper_main answers without
 * running an op (--help, -h, --summary, --complete, --version). */
bool helper_answers_only(int argc, char **argv);

/* ---- validators (validate.c) ---------------------------------------- */

int valid_vm_id(const char *s, char *why, size_t n);
int valid_abspath(const char *s, char *why, size_t n);
int valid_snapshot_id(const char *s, char *why, size_t n);
int valid_ifname(const char *s, char *why, size_t n); /* our prefix "vms" */
int valid_ipv4(const char *s, char *why, size_t n);
int valid_cidr(const char *s, char *why, size_t n);
int valid_port(const char *s, char *why, size_t n);
int valid_port_range(const char *s, char *why, size_t n);
int valid_size(const char *s, char *why, size_t n);
int valid_domain(const char *s, char *why, size_t n);
int valid_timestamp(const char *s, char *why, size_t n);

/* Parsers behind the validators. */
int parse_ipv4(const char *s, unsigned *addr /* host order */);
int parse_cidr(const char *s, unsigned *addr, unsigned *prefix, char *why, size_t n);
int parse_port_range(const char *s, unsigned *lo, unsigned *hi, char *why, size_t n);
/* Size: digits with an optional K/M/G/T suffix (binary, optional "i"/"iB"/"B",
 * any case).  A bare number is in units of 1 << default_shift bytes. */
int parse_size(const char *s, unsigned default_shift, unsigned long long *bytes, char *why, size_t n);
/* Lowercases and strips one trailing dot into out (size >= 254). */
int normalize_domain(const char *s, char *out, size_t outlen, char *why, size_t n);

/* ---- state (state.c) ------------------------------------------------- */

#define VMSAN_SCHEMA_VERSION 1

struct state {
	char dir[4096]; /* $VMSAN_DIR */
	char vms[4200]; /* $VMSAN_DIR/vms */
	int vmsfd;	/* O_DIRECTORY fd of vms/ */
	long owner_uid; /* uid files must belong to */
	long owner_gid; /* gid given to new files when running as root for a user */
	bool chown_new; /* root acting for SUDO_UID: chown what we create */
};

int state_resolve_dir(char *out, size_t outlen, struct verr *e);
/* Opens (creating if asked) the state dir and checks owner and mode. */
int state_open(struct state *st, bool create, struct verr *e);
void state_release(struct state *st);
/* Loads vms/<id>.json; returns NULL and sets e (ERR_VM_NOT_FOUND,
 * ERR_STATE_CORRUPT) on failure. */
json_t *state_load(struct state *st, const char *id, struct verr *e);
json_t *state_new(struct state *st, json_t *fields, struct verr *e);

/* sparse.c: in's first size bytes to out, holes kept (a reflink where the
 * file system has them); what names the copy in errors. */
int copy_sparse(int in, int out, uint64_t size, const char *what, struct verr *e);
/* Atomic replace of vms/<id>.json (temp + fsync + rename + dir fsync).
 * exclusive: fail with ERR_VM_EXISTS instead of replacing. */
int state_store(struct state *st, const char *id, json_t *rec, bool exclusive, struct verr *e);
int state_remove(struct state *st, const char *id, struct verr *e);
/* flock on vms/<id>.lock; returns an fd to close, or -1. */
int state_lock(struct state *st, const char *id, struct verr *e);
/* All records (ids NULL) or the named ones, newest first, status derived;
 * what could not be read goes to errors as {file, id, code, message}.
 * No state directory yet is no VMs.  Opens and releases st itself. */
int state_list(struct state *st, json_t *ids, json_t **vms, json_t **errors, struct verr *e);
/* Checks a record's shape; fills why. */
int state_check_record(json_t *rec, const char *id, char *why, size_t n);
/* Fills "status" from what is alive now; keeps "recordedStatus" if it differs. */
void state_derive_status(json_t *rec);
/* Start time of pid in clock ticks since boot (field 22 of /proc/pid/stat),
 * or -1 if the process does not exist. */
long long proc_start_time(long pid);
/* The user we act for: SUDO_UID/SUDO_GID when root runs us under sudo
 * (returns true), else our own ids. */
bool caller_ids(long *uid, long *gid);
/* Removes name below dfd and everything in it, never following a
 * symlink; 0, or -1 if anything stayed. */
int rm_tree_at(int dfd, const char *name);
/* t as 2026-01-31T12:00:00Z. */
void utc_iso(time_t t, char out[32]);

#endif
