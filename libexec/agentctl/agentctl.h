/* vmsan-agentctl's parts: the core (vmsan-agentctl.c: the options, the
 * command table, where errors are reported) over one file a job:
 *   target.c    which agent, and its token (--vm, or --agent and --token-file)
 *   conn.c      the HTTP client: connect, send, read the answer within its bounds
 *   util.c      what exec and shell share: the signal pipe, output, guest strings
 *   simple.c    health, shutdown, sessions, kill, session-kill: one request, one answer
 *   exec.c      exec: the request and its stream of events
 *   shell.c     shell (and exec -t): a PTY over a WebSocket
 *   upload.c    upload: local files sent as a tar stream
 *   download.c  download: a tar stream written through ../untar.c
 * Every command returns its exit status, or -1 with its struct verr set;
 * only the core reports an error, once.  The guest is hostile: the bounds
 * on what it sends are listed in vmsan-agentctl.c. */
#ifndef VMSAN_AGENTCTL_H
#define VMSAN_AGENTCTL_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/vmsan.h"
#include "../proto/http.h"

#define EXIT_TIMEOUT 124
#define HEAD_TIMEOUT_S 30	    /* VMSAN_AGENT_TIMEOUT overrides */
#define CONNECT_TIMEOUT_S 10	    /* a SYN the guest never answers */
#define BODY_MAX (1u << 20)	    /* a reply read whole */
#define EVENT_LINE_MAX (1u << 20)   /* exec: agent lines are < 400 KiB */
#define JSON_OUTPUT_MAX (16u << 20) /* exec --json: per stream */
#define WS_FRAME_MAX (128u << 10)   /* the agent sends <= 64 KiB */
#define WS_MSG_MAX (1u << 20)

/* --json: one JSON document on stdout instead of text (the core's option). */
extern bool json_out;

/* target.c */
struct target {
	char host[256];
	char port[8];
	char token[300];
	char vm[64];
	long long vmm_pid, vmm_start; /* a VM's: its VMM (0: not known) */
};
int target_from_vm(struct target *t, const char *id, struct verr *e);
int target_from_agent(struct target *t, const char *agent, const char *tokfile, struct verr *e);
/* The VM's VMM has gone since its record was read (never, for an agent
 * named by address): nothing will answer any more. */
bool target_vmm_gone(const struct target *t);

/* conn.c: one HTTP exchange with the agent, on one connection. */
struct hc {
	int fd;
	char buf[256 * 1024];
	size_t pos, len;
	struct http_head hd;
	enum http_body kind;
	uint64_t left;
	struct chunked ch;
	char *dptr;
	size_t dlen;
	bool done;
	int status;
	char ctype[128];
	int64_t deadline;	/* ms, CLOCK_MONOTONIC; 0 = none */
	volatile int *abort;	/* a signal stops a download */
	const struct target *t; /* whose agent: its VMM is watched */
	const char *job;	/* "command", "transfer", "session": words for a crash */
	const char *ecode;	/* why the last hc_* call failed ... */
	char why[200];		/* ... in words */
};
int64_t now_ms(void);
int head_timeout_s(void);
/* A connection to the agent, or NULL with e set.  Every wait on it (to
 * read or to send) is a 1 s tick at a time, and at each tick the VM's VMM
 * is looked at: a VM that dies sends nothing, not even a reset, so
 * without it a read or a full socket buffer would wait forever. */
struct hc *hc_open(const struct target *t, struct verr *e);
void hc_close(struct hc *h);
/* 0, or -1 with h->why set (and errno). */
int send_all(struct hc *h, const void *p, size_t n);
int send_chunk(struct hc *h, const void *p, size_t n);
/* The VMM has gone (see target_vmm_gone): true with h->why and h->ecode
 * (ERR_VM_CRASHED) set. */
bool hc_vmm_gone(struct hc *h);
/* The last failure on h was the VMM's death. */
bool hc_crashed(const struct hc *h);
/* The failure h->why tells, as ours: "WHAT: why" with its code (and, for
 * ERR_VM_CRASHED, what to do); -1. */
int hc_fail(struct hc *h, const char *what, struct verr *e);
/* Sends the request head; body_len < 0 means a chunked body follows. */
int hc_send_head(struct hc *h, const struct target *t, const char *method, const char *path, const char *ctype,
		 long long body_len, const char *extra);
/* >0 bytes added, 0 the agent closed, -1 error with h->why set. */
ssize_t hc_fill(struct hc *h);
void hc_take_head(struct hc *h, ssize_t hl);
void hc_bad_head(struct hc *h, ssize_t hl);
/* The response head, within the deadline: the status, or -1 with h->why set. */
int hc_response(struct hc *h);
/* >0 bytes, 0 end of body, -1 error (connection lost mid-body). */
ssize_t hc_read(struct hc *h, void *buf, size_t n);
/* The whole (small) body, NUL-terminated; caller frees.  NULL with h->why set. */
char *hc_slurp(struct hc *h, size_t *len);
/* An error answer from the agent, as a failure of ours: -1, e set. */
int agent_error(struct hc *h, const char *what, struct verr *e);

/* util.c */
extern int sigpipe_fds[2];
/* Each of sigs (n of them) written to sigpipe_fds[1] as a byte; SIGPIPE ignored. */
void sigpipe_open(const int *sigs, int n);
void write_all_fd(int fd, const char *p, size_t n);
/* Guest bytes in our own messages: printable, and at most 200 bytes. */
const char *clean(char *buf, size_t n, const char *s);
/* A guest's id or signal name, used only when it looks like one. */
bool token_ok(const char *s, size_t max, const char *alphabet);
/* The agent was busy (429, 503: nothing was started): wait about ms
 * (jittered, so that those waiting do not all come back at once) for the
 * next try.  0, or -1 with e set ("WHAT: ...; NOTHING", 128+N) when
 * signal N came first (sig, or one on the signal pipe): it ends the wait
 * as it would have ended the command, which never started. */
int busy_wait(int ms, int sig, const char *what, const char *nothing, struct verr *e);

/* A command's options as getopt_long takes them: the command parses with
 * them, and the core finds the VM id among them (--vm-operand). */
struct cmd_opts {
	const char *shortopts;
	const struct option *longopts;
};
extern const struct cmd_opts exec_opts, shell_opts, upload_opts, download_opts;

/* The commands: av[0] is the command's name, av[1..ac) its arguments. */
int cmd_health(const struct target *t, int ac, char **av, struct verr *e);
int cmd_sessions(const struct target *t, int ac, char **av, struct verr *e);
int cmd_shutdown(const struct target *t, int ac, char **av, struct verr *e);
int cmd_kill(const struct target *t, int ac, char **av, struct verr *e); /* and session-kill */
int cmd_exec(const struct target *t, int ac, char **av, struct verr *e);
int cmd_shell(const struct target *t, int ac, char **av, struct verr *e);
int cmd_upload(const struct target *t, int ac, char **av, struct verr *e);
int cmd_download(const struct target *t, int ac, char **av, struct verr *e);

/* shell.c: a terminal session, new or resumed, or (cmd non-NULL) exec -t. */
int run_shell(const struct target *t, const char *session, const char *shell, const char *user, json_t *cmd,
	      const char *workdir, struct verr *e);

#endif
