/* The commands that are one request and one JSON answer: health,
 * shutdown, sessions, kill and session-kill. */
#define _GNU_SOURCE
#include "agentctl/agentctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The answer as our reply, or indented for a person. */
static void print_answer(json_t *j)
{
	if (json_out) {
		json_t *o = json_is_object(j) ? json_incref(j) : json_pack("{s:O}", "items", j);
		reply_ok(o);
	} else {
		/* ASCII escapes: a guest string cannot drive the terminal. */
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		if (s)
			puts(s);
		free(s);
	}
}

static int simple_request(const struct target *t, const char *method, const char *path, const char *body,
			  const char *what, struct verr *e)
{
	struct hc *h = hc_open(t, e);
	size_t bl = body ? strlen(body) : 0;
	char *resp = NULL;
	json_t *j = NULL;
	int rc = -1;

	if (!h)
		return -1;
	if (hc_send_head(h, t, method, path, body ? "application/json" : NULL, (long long)bl, NULL) < 0 ||
	    (bl && send_all(h, body, bl) < 0) || hc_response(h) < 0) {
		hc_fail(h, what, e);
		goto out;
	}
	if (h->status / 100 != 2) {
		agent_error(h, what, e);
		goto out;
	}
	resp = hc_slurp(h, NULL);
	j = resp ? json_loads(resp, 0, NULL) : NULL;
	if (!resp) {
		hc_fail(h, what, e);
	} else if (!j) {
		verr_set(e, 1, "ERR_AGENT_PROTOCOL", NULL, "%s: the agent's answer is not JSON", what);
	} else {
		print_answer(j);
		rc = 0;
	}
out:
	json_decref(j);
	free(resp);
	hc_close(h);
	return rc;
}

int cmd_health(const struct target *t, int ac, char **av, struct verr *e)
{
	(void)av;
	if (ac != 1)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "health takes no arguments");
	return simple_request(t, "GET", "/health", NULL, "health", e);
}

int cmd_sessions(const struct target *t, int ac, char **av, struct verr *e)
{
	(void)av;
	if (ac != 1)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "sessions takes no arguments");
	return simple_request(t, "GET", "/shell/sessions", NULL, "sessions", e);
}

int cmd_shutdown(const struct target *t, int ac, char **av, struct verr *e)
{
	(void)av;
	if (ac != 1)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "shutdown takes no arguments");
	return simple_request(t, "POST", "/shutdown", "", "shutdown", e);
}

/* kill EXEC_ID [--signal SIG], session-kill SESSION_ID: the agent ends a
 * session its own way (SIGHUP, then SIGKILL, to its process group), so
 * session-kill refuses --signal rather than drop it. */
int cmd_kill(const struct target *t, int ac, char **av, struct verr *e)
{
	static const struct option lo[] = { { "signal", required_argument, 0, 's' }, { 0, 0, 0, 0 } };
	const char *cmd = av[0], *sig = NULL, *id;
	bool session = strcmp(cmd, "kill") != 0;
	char path[128], body[96];
	json_t *b;
	char *s;
	int c;

	while ((c = getopt_long(ac, av, "+s:", lo, NULL)) != -1) {
		if (c == 's' && !session)
			sig = optarg;
		else if (c == 's')
			return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "drop --signal",
					 "session-kill takes no --signal: a session is hung up (SIGHUP), then killed");
		else
			return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "unknown option %s", av[optind - 1]);
	}
	if (optind != ac - 1)
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_USAGE", NULL, "%s takes one id", cmd);
	id = av[optind];
	if (!token_ok(id, 64, "0123456789abcdef"))
		return verr_fail(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_ID",
				 "give the id exec --detach or sessions printed",
				 "'%.64s' is not an id (1 to 64 hex digits)", id);
	if (session) {
		snprintf(path, sizeof path, "/shell/sessions/%s/kill", id);
		return simple_request(t, "POST", path, "", "session-kill", e);
	}
	snprintf(path, sizeof path, "/exec/%s/kill", id);
	b = json_pack("{s:s}", "signal", sig ? sig : "KILL");
	s = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	snprintf(body, sizeof body, "%s", s ? s : "{}");
	free(s);
	return simple_request(t, "POST", path, body, "kill", e);
}
