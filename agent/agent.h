/* vmsan-agent internals shared by its source files:
 *   agent.c    main, the route table, the worker threads
 *   token.c    the token (Bearer or X-Access-Token), SIGHUP, POST /restored
 *   conn.c     the connection layer handlers answer through (conn.h)
 *   log.c      log lines, timestamps, random ids
 *   exec.c     POST /exec and /exec/{id}/kill; spawn.c starts the command
 *   files.c    POST /files/write and /files/read (tar, ../proto/tar.h)
 *   shell.c    GET /ws/shell and /shell/sessions; session.c runs a session
 *   user.c     users, environments, PATH, signals
 *   envd/      E2B's envd protocol on the same port (envd/envd.h maps it)
 * (init.c is vmsan-init, the guest's PID 1: a binary of its own.)
 * The wire protocol (HTTP, WebSocket, JSON, tar) is in ../proto/, shared
 * with the host's vmsan-agentctl. */
#ifndef VMSAN_AGENT_H
#define VMSAN_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "../proto/http.h"
#include "../proto/json.h"
#include "conn.h"

struct config {
	char listen_addr[64];
	int port;
	char token_file[256];
	char env_file[256];
	char default_user[64];
	uint64_t max_upload;
	int max_execs;
	int max_sessions;
	int max_subscribers;
	int session_grace; /* seconds */
	bool quiet;
	bool init_shutdown; /* POST /shutdown signals PID 1 (vmsan-init) */
};
extern struct config cfg;

/* token.c: the token.  token_load reads the file (or env_token): 0, or
 * -1 (unreadable), -2 (not 16-256 printable characters).  on_sighup asks
 * for it to be read again.  POST /restored: handle_restored. */
int token_load(const char *env_token);
void on_sighup(int sig);
void handle_restored(struct conn *c, struct body *b);
/* 0 when hd carries the token (query too, with
 * allow_query), else the status to refuse with (401 missing, 403 wrong). */
int authorize(const struct http_head *hd, const char *query, bool allow_query);
/* A copy of the token, for what is signed with it; the caller wipes it. */
size_t token_copy(char *out, size_t n);

/* log.c */
void logj(const char *level, const char *msg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ts_now(char out[64]);
/* Fill a random lowercase hex id of n chars. */
void random_hex(char *out, size_t n);

/* user.c */
struct user {
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	int ngroups;
	char name[64];
	char home[512];
	char shell[256];
};
/* name, "uid" or "uid:gid"; NULL/"" means the default user.  Returns 0 or
 * -1 with why filled. */
int user_resolve(const char *spec, struct user *u, char *why, size_t n);
/* Build the child's environment: the image's defaults, the user's
 * HOME/USER/LOGNAME/SHELL, then the request's pairs; PATH as given by the
 * request, else the image's, else the standard one.  NULL-terminated,
 * malloc'd strings. */
char **env_build(const struct user *u, const struct jv *reqenv, const char *term, char *why, size_t n);
void env_free(char **env);
const char *env_get(char *const *env, const char *key);
/* Find cmd in PATH (when it has no '/'); -1 with errno. */
int path_search(const char *cmd, const char *path, char *out, size_t outlen);
int parse_signal(const struct jv *v, int *sig);
const char *signal_name(int sig);

/* exec.c */
void exec_worker_exit(void); /* frees what a worker kept for handle_exec */
void handle_exec(struct conn *c, struct http_head *hd, struct body *b);
void handle_exec_kill(struct conn *c, struct body *b, const char *id);
void exec_init(void);

/* files.c */
void handle_files_write(struct conn *c, struct http_head *hd, struct body *b, const char *query);
void handle_files_read(struct conn *c, struct body *b);

/* tunnel.c: GET /tunnel/PORT, raw bytes to 127.0.0.1:PORT; returns the
 * status it answered (101 once the tunnel has ended). */
int handle_tunnel(struct conn *c, const struct http_head *hd, const char *port);

/* shell.c */
void shell_init(void);
/* Takes over c->fd on success (returns true). */
bool handle_ws_shell(struct conn *c, struct http_head *hd, const char *sid, const char *query);
void handle_sessions_list(struct conn *c);
void handle_session_kill(struct conn *c, const char *sid);

#endif
