/* vmsan serve: an E2B-compatible API, so E2B's SDKs drive vmsan unchanged.
 * Unprivileged: it does what its user could do with vmsan's commands.
 * The jobs are in serve/ (serve/serve.h maps them); this file holds the
 * options, the key file, and the start and graceful stop. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/serve.h"

static const char usage[] = "usage: vmsan serve [--listen ADDR] [--port N] [--keys FILE] [--max-connections N]\n"
			    "       vmsan serve --new-key [--keys FILE]\n"
			    "\n"
			    "Serves E2B's API (the control API and each sandbox's envd) so that E2B's\n"
			    "SDKs drive vmsan: set E2B_API_URL and E2B_SANDBOX_URL to http://ADDR:PORT\n"
			    "and E2B_API_KEY to a key of the key file.  Sandboxes are your vmsan VMs;\n"
			    "they keep running when the daemon stops, and it finds them again.\n"
			    "\n"
			    "  --listen ADDR        IPv4 address to listen on (default 127.0.0.1)\n"
			    "  --port N             TCP port (default 3000)\n"
			    "  --keys FILE          API keys, one per line, mode 0600\n"
			    "                       (default $VMSAN_DIR/api-keys)\n"
			    "  --new-key            add a new random key to the file and print it\n"
			    "  --max-connections N  at most N clients at once (default 256)\n"
			    "\n"
			    "Logs one JSON line per request on stderr.  SIGTERM or SIGINT stops it:\n"
			    "no new connection is taken, requests under way get 5 seconds.\n";

#define usage_error(...) report_usage("serve", false, __VA_ARGS__)

static bool number(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

/* Waits for SIGTERM or SIGINT, then stops: the listener first, then the
 * reaper, then what is in flight, for 5 seconds at most. */
static void wait_and_stop(struct MHD_Daemon *d, const sigset_t *set)
{
	int sig = 0;

	while (sigwait(set, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
		;
	fprintf(stderr, "{\"event\":\"stopping\",\"signal\":%d}\n", sig);
	MHD_quiesce_daemon(d);
	box_reaper_stop();
	alarm(5);
	MHD_stop_daemon(d);
}

int main(int argc, char **argv)
{
	struct serve_opts o = { .listen = "127.0.0.1", .port = 3000, .max_conns = 256 };
	char dir[4096], keys[4200];
	const char *keyfile = NULL;
	bool new_key = false;
	struct verr e = { 0 };
	struct MHD_Daemon *d;
	sigset_t set;

	vmsan_prog = "vmsan-serve";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			return fputs(usage, stdout), 0;
		if (!strcmp(a, "--summary"))
			return puts("serve E2B's API, so E2B's SDKs drive vmsan"), 0;
		if (!strcmp(a, "--complete"))
			return puts("--listen\n--port\n--keys\n--new-key\n--max-connections\n--help"), 0;
		if (!strcmp(a, "--new-key")) {
			new_key = true;
			continue;
		}
		if (!v)
			return usage_error("unknown option or missing value: %s", a);
		if (!strcmp(a, "--listen"))
			o.listen = v;
		else if (!strcmp(a, "--port") && !number(v, 1, 65535, &o.port))
			return usage_error("--port %s: expected 1-65535", v);
		else if (!strcmp(a, "--max-connections") && !number(v, 1, 4096, &o.max_conns))
			return usage_error("--max-connections %s: expected 1-4096", v);
		else if (!strcmp(a, "--keys"))
			keyfile = v;
		else if (strcmp(a, "--port") && strcmp(a, "--max-connections"))
			return usage_error("unknown option %s", a);
		i++;
	}
	if (state_resolve_dir(dir, sizeof dir, &e) != 0)
		return report_error("serve", false, &e);
	snprintf(keys, sizeof keys, "%s/api-keys", dir);
	if (!keyfile)
		keyfile = keys;
	/* The state directory first: it holds the default key file. */
	struct state st;
	if (state_open(&st, true, &e) != 0)
		return report_error("serve", false, &e);
	state_release(&st);
	if (new_key)
		return keys_new(keyfile, &e) == 0 ? 0 : report_error("serve", false, &e);

	/* Signals are taken by sigwait alone: every thread starts with them
	 * blocked; a peer that goes away is an error return, not SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (keys_load(keyfile, &e) != 0)
		return report_error("serve", false, &e);
	if (box_init(dir, &e) != 0 || snap_init(dir, &e) != 0 || box_reaper_start(&e) != 0 || !(d = http_start(&o, &e)))
		return report_error("serve", false, &e);
	fprintf(stderr, "{\"event\":\"listening\",\"address\":\"%s\",\"port\":%u}\n", o.listen, o.port);
	wait_and_stop(d, &set);
	return 0;
}
