/* exec: the command as one request; the agent answers with a stream of
 * JSON event lines (started, stdout, stderr, exit, timeout, error) that
 * may take as long as the command does.  Our signals are passed on to
 * it; with -i our stdin is the request's chunked body; with -t the
 * command runs in a terminal session instead (shell.c). */
#define _GNU_SOURCE
#include "agentctl/agentctl.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../proto/ws.h" /* base64 */

struct exec_opts {
	json_t *env;
	const char *workdir, *user;
	long long timeout_ms;
	bool interactive, tty, detach;
	char **argv;
	int argc;
};

struct exec_result {
	int exit_code;
	bool timed_out, have_exit;
	char id[40];
	char signal[16];
	char error[512];
	struct {
		char *p;
		size_t len, cap;
	} out, err;	      /* --json: collected output */
	const char *overflow; /* "stdout" or "stderr" */
};

/* --json keeps the output in memory, so it has a bound. */
static int collect(struct exec_result *r, bool is_out, const char *data, size_t n)
{
	__typeof__(r->out) *acc = is_out ? &r->out : &r->err;
	if (acc->len + n > JSON_OUTPUT_MAX) {
		r->overflow = is_out ? "stdout" : "stderr";
		return -1;
	}
	if (acc->len + n + 1 > acc->cap) {
		size_t cap = acc->cap ? acc->cap : 4096;
		while (cap < acc->len + n + 1)
			cap *= 2;
		char *np = realloc(acc->p, cap);
		if (!np) {
			r->overflow = is_out ? "stdout" : "stderr";
			return -1;
		}
		acc->p = np;
		acc->cap = cap;
	}
	memcpy(acc->p + acc->len, data, n);
	acc->len += n;
	return 0;
}

/* Text when it is UTF-8, else base64 under NAME + "B64". */
static void put_output(json_t *o, const char *name, const char *p, size_t n)
{
	json_t *s = json_stringn(p ? p : "", n);
	if (s) {
		json_object_set_new(o, name, s);
		return;
	}
	char *b = malloc(4 * (n + 2) / 3 + 1), key[32];
	if (!b)
		return;
	base64_encode((const uint8_t *)p, n, b);
	snprintf(key, sizeof key, "%sB64", name);
	json_object_set_new(o, key, json_string(b));
	free(b);
}

/* A stdout or stderr event: text, or base64 for bytes that are not UTF-8.
 * -1 when --json's output bound is crossed. */
static int on_output(json_t *ev, struct exec_result *r, bool is_out)
{
	json_t *d = json_object_get(ev, "data");
	const char *b64 = json_string_value(json_object_get(ev, "b64"));
	char *raw = NULL;
	const char *p = NULL;
	size_t n = 0;
	int rc = 0;

	if (json_is_string(d)) {
		p = json_string_value(d);
		n = json_string_length(d);
	} else if (b64) {
		size_t bl = strlen(b64);
		raw = malloc(bl / 4 * 3 + 3);
		ssize_t k = raw ? base64_decode(b64, bl, (uint8_t *)raw, bl / 4 * 3 + 3) : -1;
		if (k >= 0) {
			p = raw;
			n = (size_t)k;
		}
	}
	if (p) {
		if (json_out)
			rc = collect(r, is_out, p, n);
		else
			write_all_fd(is_out ? 1 : 2, p, n);
	}
	free(raw);
	return rc;
}

/* -1 when --json's output bound is crossed. */
static int handle_event(json_t *ev, struct exec_result *r)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!type)
		return 0;
	if (!strcmp(type, "started")) {
		const char *id = json_string_value(json_object_get(ev, "id"));
		if (token_ok(id, sizeof r->id - 1, "0123456789abcdef"))
			snprintf(r->id, sizeof r->id, "%s", id);
	} else if (!strcmp(type, "stdout") || !strcmp(type, "stderr")) {
		return on_output(ev, r, type[3] == 'o');
	} else if (!strcmp(type, "exit")) {
		r->exit_code = (int)json_integer_value(json_object_get(ev, "exitCode"));
		r->have_exit = true;
		const char *sg = json_string_value(json_object_get(ev, "signal"));
		if (token_ok(sg, sizeof r->signal - 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-"))
			snprintf(r->signal, sizeof r->signal, "%s", sg);
	} else if (!strcmp(type, "timeout")) {
		r->timed_out = true;
	} else if (!strcmp(type, "error")) {
		/* The guest's words, printable and short, for stderr and JSON. */
		const char *e = json_string_value(json_object_get(ev, "error"));
		clean(r->error, sizeof r->error, e ? e : "unknown error");
		if (!json_out)
			fprintf(stderr, "vmsan exec: %s\n", r->error);
	}
	return 0;
}

/* A kill that fails is not worth a message: the stream tells what happened. */
static void remote_kill(const struct target *t, const char *id, int sig)
{
	struct verr quiet = { 0 };
	struct hc *h = hc_open(t, &quiet);
	char path[96], body[64];
	int n;

	if (!h)
		return;
	snprintf(path, sizeof path, "/exec/%s/kill", id);
	n = snprintf(body, sizeof body, "{\"signal\":%d}", sig);
	if (hc_send_head(h, t, "POST", path, "application/json", n, NULL) == 0 && send_all(h, body, (size_t)n) == 0 &&
	    hc_response(h) >= 0)
		free(hc_slurp(h, NULL));
	hc_close(h);
}

/* ---- the stream ------------------------------------------------------ */

/* One exec on its way: what its loop reads, and what it keeps. */
struct exec_run {
	const struct target *t;
	const struct exec_opts *o;
	struct verr *e;
	struct hc *h;
	struct exec_result r;
	char *line; /* event bytes not yet ended by a newline */
	size_t linelen, linecap;
	char *inbuf; /* -i: our stdin, on its way */
	bool in_open, head_done;
	int64_t head_by; /* the answer's head is due by then */
	int pending_sig; /* came before the command had an id */
};

static char *exec_body(const struct exec_opts *o)
{
	json_t *req = json_object();
	json_t *args = json_array();
	char *body;

	for (int i = 1; i < o->argc; i++)
		json_array_append_new(args, json_string(o->argv[i]));
	json_object_set_new(req, "cmd", json_string(o->argv[0]));
	json_object_set_new(req, "args", args);
	if (json_object_size(o->env))
		json_object_set(req, "env", o->env);
	if (o->workdir)
		json_object_set_new(req, "cwd", json_string(o->workdir));
	if (o->user)
		json_object_set_new(req, "user", json_string(o->user));
	if (o->timeout_ms)
		json_object_set_new(req, "timeoutMs", json_integer(o->timeout_ms));
	if (o->detach)
		json_object_set_new(req, "detached", json_true());
	if (o->interactive)
		json_object_set_new(req, "stdin", json_true());
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return body;
}

/* With -i the body goes on as our stdin: chunked, the request first. */
static int exec_send(struct exec_run *x, const char *body)
{
	struct hc *h = x->h;
	size_t bl = strlen(body);
	int sent = x->o->interactive
			   ? hc_send_head(h, x->t, "POST", "/exec", "application/json", -1, NULL) ||
				     send_chunk(h, body, bl)
			   : hc_send_head(h, x->t, "POST", "/exec", "application/json", (long long)bl, NULL) ||
				     send_all(h, body, bl);
	if (sent)
		return hc_fail(h, "exec", x->e);
	return 0;
}

/* A signal before the command has an id is kept: it goes to the command
 * once it starts, or ends the wait for a slot. */
static void exec_on_signals(struct exec_run *x)
{
	char s;
	while (read(sigpipe_fds[0], &s, 1) == 1)
		if (x->r.id[0])
			remote_kill(x->t, x->r.id, s);
		else
			x->pending_sig = s;
}

static void exec_on_stdin(struct exec_run *x)
{
	ssize_t n = x->inbuf ? read(0, x->inbuf, 65536) : 0;
	if (n > 0) {
		if (send_chunk(x->h, x->inbuf, (size_t)n) < 0)
			x->in_open = false;
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		send_all(x->h, "0\r\n\r\n", 5); /* EOF of stdin = end of body */
		x->in_open = false;
	}
}

/* The agent is busy: nothing was started, ask again (not an error). */
#define EXEC_BUSY (-2)

/* The answer's head, as its bytes come: 1 to read on, -1 on error,
 * EXEC_BUSY. */
static int exec_on_head(struct exec_run *x)
{
	struct hc *h = x->h;
	ssize_t hl;

	if (h->pos == h->len || (hl = http_parse_head(h->buf + h->pos, h->len - h->pos, false, &h->hd)) == 0) {
		if (hc_fill(h) <= 0)
			return hc_fail(h, "exec", x->e);
		return 1;
	}
	if (hl < 0) {
		hc_bad_head(h, hl);
		return hc_fail(h, "exec", x->e);
	}
	if (h->hd.status == 100) {
		h->pos += (size_t)hl;
		return 1;
	}
	hc_take_head(h, hl);
	x->head_done = true;
	h->deadline = 0;
	/* Every slot taken (429), or every connection (503, answered before
	 * the request is read): nothing started, so it can be asked again. */
	if (h->status == 429 || h->status == 503) {
		free(hc_slurp(h, NULL));
		return EXEC_BUSY;
	}
	if (h->status != 200)
		return agent_error(h, "exec", x->e);
	return 1;
}

static int line_append(struct exec_run *x, const char *p, size_t n)
{
	if (x->linelen + n + 1 > x->linecap) {
		size_t cap = x->linecap ? x->linecap : 65536;
		while (cap < x->linelen + n + 1)
			cap *= 2;
		char *nl = realloc(x->line, cap);
		if (!nl)
			return verr_fail(x->e, VMSAN_EXIT_SYS, "ERR_NOMEM", NULL, "out of memory");
		x->line = nl;
		x->linecap = cap;
	}
	memcpy(x->line + x->linelen, p, n);
	x->linelen += n;
	return 0;
}

/* Each whole line handled, the rest kept.  -1 when --json's bound on the
 * output is crossed. */
static int exec_lines(struct exec_run *x)
{
	size_t start = 0;
	int over = 0;

	for (size_t i = 0; i < x->linelen && !over; i++)
		if (x->line[i] == '\n') {
			json_t *ev = json_loadb(x->line + start, i - start, 0, NULL);
			if (ev)
				over = handle_event(ev, &x->r);
			json_decref(ev);
			start = i + 1;
		}
	memmove(x->line, x->line + start, x->linelen - start);
	x->linelen -= start;
	return over;
}

/* The events: 1 to read on, 0 at their end, -1 on error. */
static int exec_on_events(struct exec_run *x)
{
	char rd[65536];
	ssize_t n = hc_read(x->h, rd, sizeof rd);

	if (n < 0 && hc_crashed(x->h))
		return hc_fail(x->h, "exec", x->e);
	if (n < 0)
		return verr_fail(x->e, 1, "ERR_AGENT_PROTOCOL", NULL,
				 "the connection to the agent broke mid-command (%s)", x->h->why);
	if (n == 0)
		return 0;
	if (line_append(x, rd, (size_t)n) < 0)
		return -1;
	int over = exec_lines(x);
	if (x->pending_sig && x->r.id[0]) {
		remote_kill(x->t, x->r.id, x->pending_sig);
		x->pending_sig = 0;
	}
	if (over < 0) {
		if (x->r.id[0])
			remote_kill(x->t, x->r.id, SIGKILL);
		return verr_fail(x->e, 1, "ERR_OUTPUT_TOO_LARGE",
				 "run it without --json to stream the output, or "
				 "write it to a file in the guest and use 'vmsan download'",
				 "exec --json: the command's %s exceeds %u bytes; it was stopped", x->r.overflow,
				 JSON_OUTPUT_MAX);
	}
	if (x->linelen > EVENT_LINE_MAX) {
		if (x->r.id[0])
			remote_kill(x->t, x->r.id, SIGKILL);
		return verr_fail(x->e, 1, "ERR_AGENT_PROTOCOL", NULL,
				 "exec: the agent sent an event line of more than %u bytes without a newline",
				 EVENT_LINE_MAX);
	}
	return 1;
}

/* One turn of the loop: waits for the agent, a signal or our stdin and
 * deals with what came.  1 to go on, 0 when the stream ended, -1 on error,
 * EXEC_BUSY. */
static int exec_turn(struct exec_run *x)
{
	struct pollfd pf[3];
	int np = 0, isig = -1, iin = -1, wait = 1000, pr;
	bool buffered;

	pf[np++] = (struct pollfd){ .fd = x->h->fd, .events = POLLIN };
	if (sigpipe_fds[0] >= 0) {
		isig = np;
		pf[np++] = (struct pollfd){ .fd = sigpipe_fds[0], .events = POLLIN };
	}
	/* Our stdin only once the command runs: until then the request may
	 * have to be sent again, and what it carried would be lost. */
	if (x->in_open && x->head_done) {
		iin = np;
		pf[np++] = (struct pollfd){ .fd = 0, .events = POLLIN };
	}
	/* Bytes already buffered need no poll. */
	buffered = x->h->pos < x->h->len || x->h->dlen;
	/* A tick a second: a VM that dies sends nothing, not even a reset,
	 * so its VMM is looked at (hc_vmm_gone, as conn.c's waits do). */
	if (!x->head_done) {
		int64_t left = x->head_by - now_ms();
		wait = left <= 0 ? 0 : left < 1000 ? (int)left : 1000;
	}
	pr = buffered ? 1 : poll(pf, (nfds_t)np, wait);
	if (pr < 0 && errno != EINTR)
		return 0;
	if (pr == 0 && hc_vmm_gone(x->h))
		return hc_fail(x->h, "exec", x->e);
	if (pr == 0 && !x->head_done && now_ms() < x->head_by)
		return 1;
	if (pr == 0 && !x->head_done)
		return verr_fail(x->e, 1, "ERR_AGENT_TIMEOUT",
				 "check the VM ('vmsan list'); VMSAN_AGENT_TIMEOUT sets the limit",
				 "exec: no answer from the agent within %d s", head_timeout_s());
	if (isig >= 0 && pf[isig].revents)
		exec_on_signals(x);
	if (iin >= 0 && pf[iin].revents)
		exec_on_stdin(x);
	if (!buffered && !(pf[0].revents))
		return 1;
	return x->head_done ? exec_on_events(x) : exec_on_head(x);
}

/* The stream ended: what it said, as our answer and exit status. */
static int exec_finish(struct exec_run *x)
{
	const struct exec_result *r = &x->r;
	json_t *o2;

	if (x->o->detach && !r->id[0])
		return verr_fail(x->e, 1, "ERR_AGENT_PROTOCOL", NULL,
				 "exec --detach: the agent sent no usable command id");
	if (x->o->detach) {
		if (json_out)
			reply_ok(json_pack("{s:s, s:b}", "id", r->id, "detached", 1));
		else
			printf("%s\n", r->id);
		return 0;
	}
	if (!r->have_exit)
		return verr_fail(x->e, 1, "ERR_AGENT_PROTOCOL", NULL,
				 "the agent ended the stream without an exit status");
	if (r->timed_out && !json_out)
		fprintf(stderr, "vmsan exec: timed out after %lld ms; the command was killed\n", x->o->timeout_ms);
	if (json_out) {
		o2 = json_pack("{s:s, s:i, s:b}", "id", r->id, "exitCode", r->exit_code, "timedOut", r->timed_out);
		if (r->signal[0])
			json_object_set_new(o2, "signal", json_string(r->signal));
		if (r->error[0])
			json_object_set_new(o2, "error", json_string(r->error));
		put_output(o2, "stdout", r->out.p, r->out.len);
		put_output(o2, "stderr", r->err.p, r->err.len);
		reply_ok(o2);
	}
	return r->timed_out ? EXIT_TIMEOUT : r->exit_code;
}

/* The agent runs so many commands at once (vmsan-agent --max-execs) and
 * answers 429 past that: a user who starts 100 at once wants 100 run, so
 * the request is sent again, 50 ms apart doubling to 1 s, until a slot is
 * free.  The wait is said once on a terminal. */
static int run_exec(const struct target *t, const struct exec_opts *o, struct verr *e)
{
	/* Signals are passed to the remote command, which then decides. */
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct exec_run x = { .t = t, .o = o, .e = e, .r = { .exit_code = -1 }, .in_open = o->interactive };
	char *body = exec_body(o);
	int rc = -1;

	if (!body)
		return verr_fail(e, VMSAN_EXIT_SYS, "ERR_NOMEM", NULL, "out of memory");
	sigpipe_open(sigs, 3);
	x.inbuf = malloc(65536);
	for (int delay = 50;; delay = delay < 1000 ? delay * 2 : 1000) {
		x.h = hc_open(t, e);
		if (!x.h)
			goto out;
		x.h->job = "command";
		if (exec_send(&x, body) < 0)
			goto out;
		/* The head within the deadline; the events after it may
		 * take as long as the command does. */
		x.head_done = false;
		x.head_by = now_ms() + head_timeout_s() * 1000LL;
		x.h->deadline = x.head_by; /* for hc_fill, with part of a head in */
		while ((rc = exec_turn(&x)) > 0)
			;
		if (rc != EXEC_BUSY)
			break;
		hc_close(x.h);
		x.h = NULL;
		if (delay == 50 && isatty(2))
			fprintf(stderr, "vmsan exec: the agent runs as many commands as it may; waiting for a slot\n");
		if (busy_wait(delay, x.pending_sig, "exec", "the command did not run", e) < 0) {
			rc = -1;
			goto out;
		}
	}
	if (rc == 0)
		rc = exec_finish(&x);
out:
	free(body);
	free(x.r.out.p);
	free(x.r.err.p);
	free(x.line);
	free(x.inbuf);
	hc_close(x.h);
	return rc;
}

/* ---- options --------------------------------------------------------- */

static int exec_env(struct exec_opts *o, const char *arg, struct verr *e)
{
	const char *eq = strchr(arg, '=');
	char name[256];

	if (!eq || eq == arg)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_ENV", "write --env NAME=VALUE",
				 "--env '%s' is not NAME=VALUE", arg);
	snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
	json_object_set_new(o->env, name, json_string(eq + 1));
	if (!json_object_get(o->env, name))
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_ENV", NULL,
				 "--env %s: the value is not valid UTF-8", name);
	return 0;
}

static int exec_timeout(struct exec_opts *o, const char *arg, struct verr *e)
{
	unsigned long long ms;
	char *end;
	double secs = strtod(arg, &end);

	if (end == arg || *end || secs <= 0 || secs > 86400 * 365)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_TIMEOUT", "give seconds, such as 30 or 0.5",
				 "--timeout '%s' is not a number of seconds", arg);
	ms = (unsigned long long)(secs * 1000 + 0.5);
	o->timeout_ms = (long long)(ms ? ms : 1);
	return 0;
}

static const struct option exec_lo[] = { { "env", required_argument, 0, 'e' },
					 { "workdir", required_argument, 0, 'w' },
					 { "user", required_argument, 0, 'u' },
					 { "sudo", no_argument, 0, 'S' },
					 { "timeout", required_argument, 0, 'T' },
					 { "interactive", no_argument, 0, 'i' },
					 { "tty", no_argument, 0, 't' },
					 { "detach", no_argument, 0, 'd' },
					 { 0, 0, 0, 0 } };
/* '+': options end at the command (its first operand, or after "--"):
 * what follows is its own. */
const struct cmd_opts exec_opts = { "+e:w:u:itd", exec_lo };

static int exec_options(struct exec_opts *o, int ac, char **av, struct verr *e)
{
	int c;

	while ((c = getopt_long(ac, av, exec_opts.shortopts, exec_opts.longopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			if (exec_env(o, optarg, e) < 0)
				return -1;
			break;
		case 'w': o->workdir = optarg; break;
		case 'u': o->user = optarg; break;
		case 'S': o->user = "root"; break;
		case 'i': o->interactive = true; break;
		case 't': o->tty = true; break;
		case 'd': o->detach = true; break;
		case 'T':
			if (exec_timeout(o, optarg, e) < 0)
				return -1;
			break;
		default:
			return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see vmsan exec --help", "unknown option %s",
					 av[optind - 1]);
		}
	}
	if (optind >= ac)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "usage: vmsan exec ID [--] CMD [ARG...]",
				 "no command given");
	if (o->workdir && o->workdir[0] != '/')
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_WORKDIR", NULL,
				 "--workdir must be an absolute path in the guest, not '%s'", o->workdir);
	o->argv = av + optind;
	o->argc = ac - optind;
	if (o->tty && (o->detach || json_out || o->timeout_ms || json_object_size(o->env)))
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL,
				 "-t cannot be combined with --detach, --json, --timeout or --env");
	if (!o->tty && o->detach && o->interactive)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "--detach cannot be combined with -i");
	return 0;
}

/* exec -t: the command in a terminal session, as the shell is. */
static int exec_tty(const struct target *t, const struct exec_opts *o, struct verr *e)
{
	json_t *argvj = json_array();
	int rc;

	for (int k = 0; k < o->argc; k++)
		json_array_append_new(argvj, json_string(o->argv[k]));
	rc = run_shell(t, NULL, NULL, o->user, argvj, o->workdir, e);
	json_decref(argvj);
	return rc;
}

int cmd_exec(const struct target *t, int ac, char **av, struct verr *e)
{
	struct exec_opts o = { .env = json_object() };
	int rc = exec_options(&o, ac, av, e);

	if (rc == 0)
		rc = o.tty ? exec_tty(t, &o, e) : run_exec(t, &o, e);
	json_decref(o.env);
	return rc;
}
