/* vmsan-agent's PTY sessions: what shell.c (creating, attaching,
 * listing, killing) and session.c (the thread that runs one) share. */
#ifndef VMSAN_AGENT_SESSION_H
#define VMSAN_AGENT_SESSION_H

#include <pthread.h>

#include "agent.h"

#define RING (64 * 1024)
#define MSG_MAX (64 * 1024)
#define IN_CAP (MSG_MAX + 64)
#define OUT_MAX (1 << 20)
#define MAX_SUBS 8
#define MAX_PENDING 16

enum { T_DATA = 0, T_RESIZE = 1, T_READY = 2 };

struct sub {
	int fd;
	bool ready, dead;
	uint8_t *in;
	size_t inlen;
	uint8_t *msg;
	size_t msglen;
	int msgop;
	bool inmsg;
	struct buf out;
};

struct session {
	char id[33];
	char shell[256];
	char created[64];
	pid_t pid;
	int master, pidfd;
	int wake[2];
	pthread_mutex_t mu;
	struct {
		int fd;
		char *data;
		size_t len;
	} pending[MAX_PENDING];
	int npending;
	bool kill_req, dying;
	int nsubs_visible;
	struct sub subs[MAX_SUBS];
	int nsubs;
	uint8_t ring[RING];
	size_t ringpos;
	bool ringfull;
	struct buf input; /* bytes for the PTY not yet written */
};

/* cfg.max_sessions slots, NULL when free; under sessions_mu. */
extern struct session **sessions;
extern pthread_mutex_t sessions_mu;

/* The session's thread (detached): runs it until it ends, then frees it. */
void *session_thread(void *arg);

#endif
