/* What exec and shell share: signals turned into bytes on a pipe their
 * poll loops watch, writing the remote output out, and the care every
 * guest string gets before we print it. */
#define _GNU_SOURCE
#include "agentctl/agentctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "untar.h"

int sigpipe_fds[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	if (sigpipe_fds[1] >= 0)
		(void)!write(sigpipe_fds[1], &(char){ (char)sig }, 1);
	errno = saved;
}

/* Without the pipe the signals keep their default action. */
void sigpipe_open(const int *sigs, int n)
{
	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) == 0) {
		struct sigaction sa = { .sa_handler = on_signal };
		for (int i = 0; i < n; i++)
			sigaction(sigs[i], &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
}

void write_all_fd(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

const char *clean(char *buf, size_t n, const char *s)
{
	untar_printable(buf, n, s ? s : "", s ? strlen(s) : 0, 200);
	return buf;
}

/* An id or a signal name from the agent is printed and put in paths. */
bool token_ok(const char *s, size_t max, const char *alphabet)
{
	size_t n = s ? strlen(s) : 0;
	return n && n <= max && strspn(s, alphabet) == n;
}

int busy_wait(int ms, int sig, const char *what, const char *nothing, struct verr *e)
{
	struct pollfd pf = { .fd = sigpipe_fds[0], .events = POLLIN };
	int64_t until =
		now_ms() + ms / 2 + (int64_t)(((unsigned)getpid() * 2654435761u ^ (unsigned)now_ms()) % (unsigned)ms);
	int64_t left;
	char s;

	while (!sig && (left = until - now_ms()) > 0)
		if (poll(&pf, sigpipe_fds[0] >= 0, (int)left) > 0 && read(sigpipe_fds[0], &s, 1) == 1 &&
		    s != SIGWINCH) /* a resize, for a terminal not there yet */
			sig = s;
	if (sig)
		return verr_fail(e, 128 + sig, "ERR_INTERRUPTED", NULL,
				 "%s: %s while waiting for the agent to free a slot; %s", what, strsignal(sig),
				 nothing);
	return 0;
}
