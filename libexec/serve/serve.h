/* vmsan serve: an E2B-compatible API over vmsan, for E2B's SDKs.
 *
 * One unprivileged daemon (libmicrohttpd, a thread per connection) serves
 * two faces on one address:
 *   - E2B's control API (what the SDK reaches through E2B_API_URL):
 *     sandboxes created from templates, listed, timed out, paused,
 *     resumed, killed; authorized by X-API-KEY;
 *   - each sandbox's envd (E2B_SANDBOX_URL: the E2b-Sandbox-Id header, or
 *     a Host of PORT-ID.DOMAIN), proxied to the guest's agent, which
 *     speaks envd itself; authorized by the sandbox's access token.
 * Every sandbox is a vmsan VM of the daemon's user, made and ended with
 * the same commands a user types (vmsan create, rm, pause, resume).
 *
 *   vmsan-serve.c  options, the key file, start and graceful stop
 *   serve/http.c    the libmicrohttpd glue: requests, bodies, errors, logs
 *   serve/keys.c    API keys: the owner-only file, constant-time checks
 *   serve/box.c     the sandboxes: records on disk, the table, the reaper
 *   serve/control.c the control API's routes
 *   serve/egress.c  E2B's network settings as vmsan's egress policy
 *   serve/snap.c    snapshots and fork, as vmsan snapshots
 *   serve/metrics.c what the host sees of a sandbox's CPU, memory and disk
 *   serve/run.c     running vmsan's own commands and reading their JSON
 *   serve/proxy.c   envd and sandbox ports, proxied to the guest
 */
#ifndef SERVE_H
#define SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <jansson.h>
#include <microhttpd.h>

#include "lib/vmsan.h"

/* E2B's limits where it has them; ours where it does not. */
#define SERVE_BODY_MAX (1024 * 1024)  /* control API request bodies */
#define SERVE_TIMEOUT_DEFAULT 300     /* seconds, NewSandboxV2's default */
#define SERVE_TIMEOUT_MAX (24 * 3600) /* E2B's Pro tier limit */
#define SERVE_METADATA_MAX 64	      /* keys per sandbox */
#define SERVE_ENVD_VERSION "0.6.4"    /* what the agent built beside it implements */

/* ---- keys.c ---------------------------------------------------------- */

/* The key file: one key per line ("e2b_" and 40 hex digits, or any 20-128
 * printable characters), '#' comments; owned by us or root, mode 0600 or
 * stricter, as every directory above it is not writable by others. */
int keys_load(const char *path, struct verr *e);
/* The key's owner tag (a hash of it: records never hold a key) when key is
 * one of the loaded keys, else NULL.  Constant time in the key's bytes. */
const char *keys_check(const char *key);
/* A new random key appended to path (made 0600 if missing); printed. */
int keys_new(const char *path, struct verr *e);

/* ---- box.c ----------------------------------------------------------- */

struct box {
	char id[64];	/* the sandbox id = the vmsan VM id */
	char owner[72]; /* keys_check() of the key that made it */
	char template[160];
	time_t started, end;   /* end: when the reaper ends it */
	bool pause_on_timeout; /* E2B's autoPause: pause, not kill, then */
	int vcpus, mem_mib, disk_mib;
	json_t *metadata;	/* {string: string} */
	char traffic_token[72]; /* E2B's, for the sandbox's ports; "" for public */
};

/* path made (0700) if missing, opened, and refused unless ours and 0700. */
int serve_dir(const char *path, struct verr *e);
int box_init(const char *statedir, struct verr *e);
/* Adds b (copied) and stores its record. */
int box_add(const struct box *b, struct verr *e);
/* Copies the sandbox id into out if owner may see it; false if not found. */
bool box_get(const char *id, const char *owner, struct box *out);
int box_set_end(const char *id, time_t end, struct verr *e);
void box_remove(const char *id);
/* Every sandbox of owner, as copies (metadata referenced); n returned. */
size_t box_list(const char *owner, struct box **out);
void box_free_list(struct box *v, size_t n);
void box_release(struct box *b);
/* The reaper: a thread that ends each sandbox at its end time. */
int box_reaper_start(struct verr *e);
void box_reaper_stop(void);

/* ---- run.c ----------------------------------------------------------- */

/* Runs $VMSAN_LIBEXECDIR/vmsan-CMD with argv and --json; returns its JSON
 * document (NULL and e filled, from the document's error when there is
 * one).  At most one minute plus the command's own timeout. */
json_t *run_vmsan(const char *cmd, const char *const *args, struct verr *e);
/* The VM record of id (status derived), or NULL. */
json_t *run_vm_record(const char *id, struct verr *e);
/* The agent's address, port and token of a running VM. */
struct agent_addr {
	char host[64];
	char port[8];
	char token[300];
};
int run_agent_addr(const char *id, struct agent_addr *a, struct verr *e);

/* ---- egress.c -------------------------------------------------------- */

/* E2B's network settings as vmsan's policy flags (--network-policy,
 * --allowed-cidr, --allowed-domain, --denied-cidr), for create and for
 * the network update; NULL, or why they cannot be mapped. */
struct egress {
	const char *args[24];
	size_t n;
	char lists[3][4096];
};
const char *egress_args(json_t *network, json_t *allow_internet, struct egress *out);

/* ---- http.c ---------------------------------------------------------- */

struct req {
	struct MHD_Connection *conn;
	char *target; /* as sent: path and query (the proxy forwards it) */
	bool started;
	const char *method, *url;
	char *body; /* control API bodies, NUL-terminated */
	size_t len;
	bool too_big;
	unsigned status;  /* for the log line */
	char sandbox[64]; /* for the log line */
	struct timespec t0;
	void *proxy; /* proxy.c's state for envd requests */
};

/* An answer: JSON (stolen; NULL for none) with status. */
enum MHD_Result http_json(struct req *q, unsigned status, json_t *doc);
/* E2B's error shape: {"code":status,"message":...}. */
enum MHD_Result http_error(struct req *q, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *req_header(struct req *q, const char *name);
const char *req_query(struct req *q, const char *name);

struct serve_opts {
	const char *listen;
	unsigned port;
	const char *domain; /* for PORT-ID.DOMAIN hosts */
	unsigned max_conns;
};
struct MHD_Daemon *http_start(const struct serve_opts *o, struct verr *e);

/* ---- control.c / proxy.c -------------------------------------------- */

enum MHD_Result control_route(struct req *q);
/* Keys of o that are not in known (NULL-terminated); null values count. */
const char *body_unknown_key(json_t *o, const char *const *known);
/* The Sandbox answer (id, template, tokens) of b. */
json_t *sandbox_doc(const struct box *b, struct verr *e);
/* A VM made by vmsan create with args, kept as sandbox b: see control.c. */
json_t *sandbox_from(struct box *b, const char *const *args, long timeout, struct verr *e);

/* ---- snap.c ---------------------------------------------------------- */

int snap_init(const char *statedir, struct verr *e);
bool snap_find(const char *template, const char *owner, char *out, size_t n);
enum MHD_Result snap_create(struct req *q, const struct box *b, json_t *body);
enum MHD_Result snap_fork(struct req *q, const struct box *b, json_t *body);
enum MHD_Result snap_list(struct req *q, const char *owner);
enum MHD_Result do_metrics(struct req *q, const struct box *b);
/* True when the request is for a sandbox (header or host): proxy.c answers. */
bool proxy_wants(struct req *q, const char *domain);
enum MHD_Result proxy_handle(struct req *q, const char *upload, size_t *upload_len);
void proxy_done(struct req *q);

#endif
