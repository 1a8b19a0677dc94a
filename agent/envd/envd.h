/* vmsan-agent's second protocol: E2B's envd (Connect RPCs with the JSON
 * codec, and the /files REST endpoints) on the agent's port, so E2B's SDK
 * drives a vmsan guest.  Its files:
 *   rpc.c      the Connect layer: procedures and their kinds, request
 *              bodies and envelopes, answers and errors, the user a call
 *              acts as, a refused token in envd's words
 *   pjson.c    proto3 JSON: a request's fields read strictly; strings,
 *              bytes and timestamps written
 *   process.c  process.Process: the process table, Start, Connect and the
 *              calls that steer a process (List, SendInput, StreamInput,
 *              SendSignal, CloseStdin, Update)
 *   proc.c     a process's thread: its output to every stream subscribed,
 *              keepalives, deadlines, its end
 *   fs.c       filesystem.Filesystem's unary calls; paths, entries, and
 *              the request user's file system credentials
 *   watch.c    WatchDir and the polled watchers (inotify)
 *   files.c    GET and POST /files: downloads, and uploads (multipart or
 *              raw, gzip'd or not) with their metadata
 * The parsers are in ../../proto/ (connect.c, multipart.c). */
#ifndef VMSAN_ENVD_H
#define VMSAN_ENVD_H

#include <pthread.h>
#include <time.h>

#include "../agent.h"

/* The envd version whose API this agent implements (GET /health tells
 * it as "envdVersion"; the SDK enables features by it). */
#define ENVD_VERSION "0.6.4"

/* ---- what agent.c calls ---- */
void envd_init(void);
/* POST /process.Process/... and /filesystem.Filesystem/...: returns the
 * status to log, 101 when a process's thread took the connection over. */
int envd_rpc(struct conn *c, struct http_head *hd, struct body *b, const char *path);
/* GET and POST /files. */
int envd_files(struct conn *c, struct http_head *hd, struct body *b, const char *query);
/* A refused token (status 401 or 403) answered as envd would, for its
 * paths; false for the agent's own. */
bool envd_deny(struct conn *c, const char *path, int status);

/* ---- pjson.c ---- */
struct pj {
	bool bad;
	char err[256]; /* the first error */
};
struct pj_enum {
	const char *name;
	int value;
};
void pj_fail(struct pj *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* o must be an object whose members are all among fields (NULL-ended,
 * lowerCamelCase); what names it in the error. */
void pj_fields(struct pj *p, const struct jv *o, const char *what, const char *const *fields);
/* A field: NULL, "", 0 or false when absent or null (*present false). */
const struct jv *pj_msg(struct pj *p, const struct jv *o, const char *name, const char *const *fields);
const char *pj_str(struct pj *p, const struct jv *o, const char *name, bool *present);
bool pj_bool(struct pj *p, const struct jv *o, const char *name, bool *present);
uint32_t pj_u32(struct pj *p, const struct jv *o, const char *name, bool *present);
int pj_enum(struct pj *p, const struct jv *o, const char *name, const struct pj_enum *values);
/* Decoded into malloc'd memory. */
uint8_t *pj_bytes(struct pj *p, const struct jv *o, const char *name, size_t *len, bool *present);
const struct jv *pj_strmap(struct pj *p, const struct jv *o, const char *name);
const struct jv *pj_strlist(struct pj *p, const struct jv *o, const char *name);
void pj_put_str(struct buf *b, const char *s, size_t n);
void pj_put_bytes(struct buf *b, const uint8_t *p, size_t n);
void pj_put_time(struct buf *b, const struct timespec *ts);

/* ---- rpc.c ---- */
/* One call, from its head to its answer. */
struct rpc {
	struct conn *c;
	struct http_head *hd; /* valid until the body is read */
	struct body *b;
	const char *name;   /* the procedure: "Start" */
	bool stream;	    /* answered with envelopes */
	struct user u;	    /* whom it acts as */
	int64_t timeout_ms; /* Connect-Timeout-Ms; 0 for none */
	int keepalive_s;    /* Keepalive-Ping-Interval */
	struct jarena a;
	struct buf raw;	      /* the request body */
	const struct jv *msg; /* the request message */
	struct pj pj;	      /* the first bad field */
};
#define RPC_TOOK_OVER 101

/* The answer of a unary call (json: the message); returns 200. */
int rpc_ok(struct rpc *r, const struct buf *json);
/* An empty answer ({}) when st is 0, else st: the call's error. */
int rpc_ok_empty(struct rpc *r, int st);
/* An error: a unary call's HTTP status and {"code","message"}, or a
 * stream's end with that error.  Returns the HTTP status. */
int rpc_fail(struct rpc *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The first bad field, as invalid_argument. */
int rpc_bad(struct rpc *r);
/* A stream's HTTP head (it is closed at the end: a process's thread
 * writes it, and hands no connection back). */
void rpc_stream_head(struct buf *out);
/* One envelope holding json (flags 0: a message), as one HTTP chunk. */
void rpc_env(struct buf *out, uint8_t flags, const char *json, size_t n);
/* The end of a stream: its last envelope ({} or the error; code 0 for
 * none) and the last chunk. */
void rpc_end(struct buf *out, int code, const char *msg);
/* Start a stream this connection's thread serves itself: the head and
 * the first message. */
int rpc_stream_begin(struct rpc *r, const char *json);
int rpc_stream_send(struct rpc *r, const char *json);
void rpc_stream_finish(struct rpc *r, int code, const char *msg);

/* ---- fs.c ---- */
/* The calling thread's file system accesses as u (fsuid, fsgid and its
 * groups, with the capabilities they drop) until as_agent(). */
int as_user(const struct user *u);
void as_agent(void);
/* A request's path as envd resolves it: "~" and relative paths from the
 * user's home, "" the home itself; -1 with why for "~other". */
int path_resolve(const char *in, const struct user *u, char *out, size_t outlen, char *why, size_t wl);
/* EntryInfo of path (not following a last symlink) as JSON into b:
 * 0, or -1 with errno. */
int entry_json(struct buf *b, const char *path);
/* mkdir -p; -1 with errno (ENOTDIR when a part is a file). */
int mkdirs(const char *path);
int fs_stat(struct rpc *r);
int fs_list(struct rpc *r);
int fs_mkdir(struct rpc *r);
int fs_move(struct rpc *r);
int fs_remove(struct rpc *r);

/* ---- watch.c ---- */
void watch_init(void);
int watch_dir(struct rpc *r);
int watch_create(struct rpc *r);
int watch_events(struct rpc *r);
int watch_remove(struct rpc *r);

/* ---- process.c, proc.c ---- */
int64_t mono_ms(void); /* CLOCK_MONOTONIC in milliseconds */
void proc_init(void);
int proc_start(struct rpc *r);
int proc_connect(struct rpc *r);
int proc_list(struct rpc *r);
int proc_send_input(struct rpc *r);
int proc_stream_input(struct rpc *r);
int proc_signal(struct rpc *r);
int proc_close_stdin(struct rpc *r);
int proc_update(struct rpc *r);

#endif
