/* envd's processes: what process.c (the table, the calls) and proc.c
 * (a process's thread) share. */
#ifndef VMSAN_ENVD_PROC_H
#define VMSAN_ENVD_PROC_H

#include "envd.h"

#define SUB_OUT_MAX (1 << 20) /* a stream's unsent bytes before output waits */
#define MAX_SUBS 16
#define MAX_PENDING 16
#define DRAIN_MS 200 /* output still read after the exit */

/* A stream subscribed to a process's events: the Start call's, or a
 * Connect call's.  Its socket belongs to the process's thread. */
struct esub {
	int fd;
	struct buf out;	      /* HTTP bytes not yet sent */
	int64_t keepalive_ms; /* Keepalive-Ping-Interval */
	int64_t next_ka;      /* when a keepalive is due (mono_ms) */
	int64_t deadline;     /* its Connect-Timeout-Ms; 0: none */
	bool closing;	      /* ended: close once out is sent */
	bool dead;
};

struct eproc {
	pthread_mutex_t mu; /* refs, pending, reaped, closed */
	int refs;	    /* the table's, the thread's, callers' */
	uint32_t pid;
	char *tag;    /* NULL: none */
	char *config; /* its ProcessConfig as JSON, for List */
	bool pty;
	int out, err; /* the pipes' read ends, or -1 */
	int master;   /* the PTY, or -1 */
	int pidfd;
	int wake[2];	       /* a new subscriber is pending */
	pthread_mutex_t in_mu; /* who writes to in or master */
	int in;		       /* stdin's write end; -1 when none or closed */
	bool reaped;	       /* waited for: its pid is no longer ours */
	bool closed;	       /* ending: no new subscriber */
	int64_t deadline;      /* the Start call's timeout kills it; 0: none */
	struct esub pending[MAX_PENDING];
	int npending;
	struct esub subs[MAX_SUBS]; /* the thread's own */
	int nsubs;
};

/* process.c */
/* Take it out of the table (its thread, at the end). */
void eproc_unlist(struct eproc *p);
void eproc_put(struct eproc *p);

/* proc.c */
/* The thread that runs p (detached; holds a reference). */
void *proc_thread(void *arg);
/* A new subscriber's HTTP head and start event ({"start":{"pid":N}}). */
void sub_init(struct esub *s, int fd, const struct rpc *r, uint32_t pid);
/* Hand s to p's thread; false when p is ending. */
bool eproc_subscribe(struct eproc *p, struct esub *s);

#endif
