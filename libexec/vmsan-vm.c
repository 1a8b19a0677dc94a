/* vmsan create | start | stop | rm | run | gc: a VM's life cycle.
 *
 * Porcelain, in C for the reason vmsan-list is: jq costs ~22 ms per call
 * on our machines and create has a 30 ms control-plane budget.  It still
 * only composes the helpers, each through its JSON contract:
 *
 *   vmsan-state     the record (created first, so every later step has an
 *                   id that names what it makes, and gc finds leftovers)
 *   vmsan-rootfs    pull: the image's read-only disk; vmdisk: the VM's own
 *                   writable disk and agent token
 *   vmsan-nftables  the egress policy compiled to a ruleset
 *   vmsan-net       (root) netns, veth, TAP, rules, published ports
 *   vmsan-fc        (root) the VMM
 *
 * and talks to the guest agent itself only to wait for /health and to ask
 * for a clean /shutdown.  The two root helpers run through `sudo -n` unless
 * we are root already.  Every step of create is undone, in reverse, when a
 * later one fails or create is interrupted (SIGINT, SIGTERM, SIGHUP); a
 * create killed with SIGKILL leaves a record in "creating" whose process is
 * gone, which `vmsan gc` removes with everything it names.  Operations on
 * one VM hold its lock (vms/<id>.lock), so they are serialized.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "lib/netplan.h"
#include "lib/policy.h"
#include "lib/vmsan.h"

#define AGENT_PORT 9119
#define BOOT_TIMEOUT_S 120

extern char **environ;

static bool json_mode, verbose;
static const char *cmd = "create";
static char libexec[PATH_MAX];
static volatile sig_atomic_t interrupted;

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "vmsan %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- calling helpers ---------------------------------------------------- */

/* Error codes copied out of helper replies live here (verr keeps a
 * pointer to a static string). */
static char err_code[64];

/* Helpers that replied but had not exited yet; waited for at exit. */
static pid_t unreaped[32];
static size_t nunreaped;
static pid_t main_pid;

static void reap_all(void)
{
	if (getpid() != main_pid)
		return;
	while (nunreaped > 0)
		while (waitpid(unreaped[--nunreaped], NULL, 0) < 0 && errno == EINTR)
			;
}

static void reap_later(pid_t pid)
{
	if (nunreaped == sizeof unreaped / sizeof *unreaped)
		reap_all();
	unreaped[nunreaped++] = pid;
}

/* A helper started, its reply not read yet. */
struct pending {
	pid_t pid;
	int out;            /* its stdout; -1: nothing pending */
	const char *helper, *op;
	bool root;
};

/* Starts vmsan-<helper> OP with req (stolen) on stdin. */
static int call_start(const char *helper, const char *op, json_t *req, bool root, struct pending *pd,
		      struct verr *e)
{
	pd->out = -1;
	pd->helper = helper;
	pd->op = op;
	pd->root = root;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/vmsan-%s", libexec, helper);
	const char *argv[6];
	int n = 0;
	if (root && geteuid() != 0) {
		argv[n++] = "sudo";
		argv[n++] = "-n";
	}
	argv[n++] = path;
	argv[n++] = op;
	argv[n] = NULL;
	if (!req) {
		verr_set(e, VMSAN_EXIT_SYS, "ERR_INTERNAL", "report this bug",
			 "the request for vmsan-%s %s could not be built (a record field is missing)", helper, op);
		return -1;
	}
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	int in[2], out[2];
	if (!body || pipe2(in, O_CLOEXEC) < 0) {
		free(body);
		verr_sys(e, "ERR_SYSTEM", NULL, "pipe");
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		free(body);
		verr_sys(e, "ERR_SYSTEM", NULL, "pipe");
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (rc) {
		close(in[1]);
		close(out[0]);
		free(body);
		errno = rc;
		verr_sys(e, "ERR_MISSING_TOOL", root ? "reinstall vmsan (./install.sh)" : NULL, "cannot run %s",
			 argv[0]);
		return -1;
	}
	size_t bl = strlen(body), off = 0;
	while (off < bl) {
		ssize_t w = write(in[1], body + off, bl - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(in[1]);
	free(body);
	pd->pid = pid;
	pd->out = out[0];
	return 0;
}

/* Reads the reply of a started helper: the reply without "ok", or NULL
 * with e set from the helper's error. */
static json_t *call_finish(struct pending *pd, struct verr *e)
{
	const char *helper = pd->helper, *op = pd->op;
	bool root = pd->root;
	pid_t pid = pd->pid;
	int out[2] = { pd->out, -1 };
	if (pd->out < 0)
		return NULL;
	pd->out = -1;
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (buf && len + 4096 > cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
		if (!buf)
			break;
		ssize_t r = read(out[0], buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		/* A reply is one line: the helper's work is done when it ends. */
		bool eol = memchr(buf + len, '\n', (size_t)r) != NULL;
		len += (size_t)r;
		if (eol)
			break;
	}
	close(out[0]);
	int st = 0;
	json_t *reply = buf ? json_loadb(buf, len, 0, NULL) : NULL;
	free(buf);
	/* A helper that has replied ok may still be exiting: closing a
	 * netfilter socket after a commit waits for an RCU grace period
	 * (10-20 ms here, in nf_tables' NETLINK_URELEASE handler), and sudo
	 * holds our pipe until its child is gone.  Its reply is its result;
	 * it is reaped before we exit. */
	if (json_is_true(json_object_get(reply, "ok")) && waitpid(pid, &st, WNOHANG) == 0)
		reap_later(pid);
	else
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	if (!json_is_object(reply)) {
		json_decref(reply);
		if (root && geteuid() != 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1)
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_SUDO",
				 "add yourself to the vmsan group (./install.sh did, for the user who ran it) and log in again",
				 "sudo refused to run vmsan-%s", helper);
		else
			verr_set(e, VMSAN_EXIT_SYS, "ERR_HELPER", "see vmsan doctor",
				 "vmsan-%s %s gave no JSON reply (exit status %d)", helper, op,
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		return NULL;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		json_t *er = json_object_get(reply, "error");
		const char *code = json_string_value(json_object_get(er, "code"));
		const char *fix = json_string_value(json_object_get(er, "fix"));
		snprintf(err_code, sizeof err_code, "%s", code ? code : "ERR_HELPER");
		int ex = WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : VMSAN_EXIT_FAIL;
		verr_set(e, ex, err_code, fix, "%s",
			 json_string_value(json_object_get(er, "message")) ?: "failed");
		json_decref(reply);
		return NULL;
	}
	json_object_del(reply, "ok");
	return reply;
}

/* Runs vmsan-<helper> OP with req (stolen) on stdin; the reply without
 * "ok", or NULL with e set from the helper's error. */
static json_t *call(const char *helper, const char *op, json_t *req, bool root, struct verr *e)
{
	struct pending pd;
	return call_start(helper, op, req, root, &pd, e) < 0 ? NULL : call_finish(&pd, e);
}

/* Best-effort call whose failure only goes to stderr (undo paths). */
static void call_quiet(const char *helper, const char *op, json_t *req, bool root)
{
	struct verr e = { 0 };
	json_t *r = call(helper, op, req, root, &e);
	if (!r)
		fprintf(stderr, "vmsan %s: cleanup: vmsan-%s %s: %s\n", cmd, helper, op, e.message);
	json_decref(r);
}

/* For tests of interrupted creates: VMSAN_CREATE_PAUSE=STEP stops this
 * process (SIGSTOP) just before STEP (image, network, vmm, boot,
 * running), so a test can kill it there.  Documented in vmsan(1). */
static void pause_at(const char *step)
{
	const char *p = getenv("VMSAN_CREATE_PAUSE");
	if (p && !strcmp(p, step))
		raise(SIGSTOP);
}

/* ---- small things -------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static long long jint(json_t *o, const char *k, long long dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static int report(const struct verr *e)
{
	return report_error(cmd, json_mode, e);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	struct verr e = { 0 };
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char fix[80];
	snprintf(fix, sizeof fix, "see 'vmsan %s --help'", cmd);
	verr_set(&e, VMSAN_EXIT_USAGE, "ERR_USAGE", fix, "%s", msg);
	return report(&e);
}

/* "30s", "5m", "2h", "1d" or bare seconds; 1 s to 30 days. */
static int parse_duration(const char *s, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0)
		return -1;
	long long mul = 1;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60;
	else if (!strcmp(end, "h"))
		mul = 3600;
	else if (!strcmp(end, "d"))
		mul = 86400;
	else
		return -1;
	if (v > 30LL * 86400 / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* Appends the comma-separated items of s to arr (strings), each without
 * the blanks around it. */
static void csv_append(json_t *arr, const char *s)
{
	const char *p = s;
	while (*p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p), skip = n + (c ? 1 : 0);
		while (n && isspace((unsigned char)*p)) {
			p++;
			n--;
			skip--;
		}
		while (n && isspace((unsigned char)p[n - 1]))
			n--;
		if (n)
			json_array_append_new(arr, json_stringn(p, n));
		p += skip;
	}
}

/* --allowed-domain values in their one spelling (lower case, no trailing
 * dot), each checked: a pattern that is not valid is refused, named. */
static int normalize_domains(json_t *list, struct verr *e)
{
	size_t i;
	json_t *x;
	json_array_foreach(list, i, x) {
		char out[256], why[200];
		if (normalize_domain(json_string_value(x), out, sizeof out, why, sizeof why)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DOMAIN",
				 "give names like example.com or *.example.com (its subdomains)", "--allowed-domain: %s",
				 why);
			return -1;
		}
		json_array_set_new(list, i, json_string(out));
	}
	return 0;
}

/* --strict-domains (create, network) checks connections to the allowed
 * domains: without any it has nothing to check. */
static int strict_needs_domains(bool strict, json_t *domains, struct verr *e)
{
	if (!strict || json_array_size(domains))
		return 0;
	verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS", "give the names with --allowed-domain",
		 "--strict-domains checks connections to allowed domains: there are none");
	return -1;
}

/* The guest kernel: --kernel, $VMSAN_KERNEL, else the lexically last
 * vmlinux* in $VMSAN_DIR/kernels, then in the data dir's kernels/. */
static int find_kernel(const struct state *st, const char *given, char *out, size_t n, struct verr *e)
{
	const char *env = getenv("VMSAN_KERNEL");
	if (given || (env && *env)) {
		const char *k = given ? given : env;
		char *r = realpath(k, NULL);
		if (!r || access(r, R_OK) != 0) {
			free(r);
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_KERNEL", "give a readable vmlinux",
				 "kernel %s cannot be read", k);
			return -1;
		}
		snprintf(out, n, "%s", r);
		free(r);
		return 0;
	}
	char dirs[2][PATH_MAX + 16];
	snprintf(dirs[0], sizeof dirs[0], "%.4000s/kernels", st->dir);
	const char *data = getenv("VMSAN_DATADIR");
	snprintf(dirs[1], sizeof dirs[1], "%s/kernels", data && *data ? data : "/usr/local/share/vmsan");
	for (int i = 0; i < 2; i++) {
		DIR *d = opendir(dirs[i]);
		char best[256] = "";
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (!strncmp(de->d_name, "vmlinux", 7) && strcmp(de->d_name, best) > 0)
				snprintf(best, sizeof best, "%s", de->d_name);
		if (d)
			closedir(d);
		if (best[0]) {
			if ((size_t)snprintf(out, n, "%s/%s", dirs[i], best) < n)
				return 0;
		}
	}
	verr_set(e, VMSAN_EXIT_FAIL, "ERR_KERNEL",
		 "run 'make kernel && sudo make install-kernel' in the source tree, or ./install.sh",
		 "no guest kernel (vmlinux*) in %s or %s", dirs[0], dirs[1]);
	return -1;
}

/* Who the VMM runs as: the user (also when root acts for them through
 * sudo); for root itself, a uid of its own per network slot, so that no
 * two VMMs share a uid. */
static void vmm_identity(long slot, long long *uid, long long *gid)
{
	long u, g;
	caller_ids(&u, &g);
	*uid = u;
	*gid = g;
	if (u == 0)
		*uid = *gid = (long long)NET_VMM_UID_BASE + (slot > 0 ? slot : 0);
}

/* ---- the guest agent ------------------------------------------------------ */

/* One HTTP request to the agent; the status code, or -1.  connect_ms
 * bounds the connection, timeout_ms the request and its answer. */
static int agent_http_body(const char *addr, int port, const char *method, const char *path, const char *token,
			   const char *body, int connect_ms, int timeout_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	struct timeval ct = { .tv_sec = connect_ms / 1000, .tv_usec = (connect_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &ct, sizeof ct);     /* connect() */
	char req[1024], resp[64] = "";
	int n = snprintf(req, sizeof req,
			 "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 method, path, addr, token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
			 body ? "Content-Type: application/json\r\n" : "", body ? strlen(body) : 0, body ? body : "");
	if (n < 0 || (size_t)n >= sizeof req) {
		close(fd);
		return -1;
	}
	int code = -1;
	int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (ok && write(fd, req, (size_t)n) == n) {
		ssize_t r = read(fd, resp, sizeof resp - 1);
		if (r > 12 && !strncmp(resp, "HTTP/1.1 ", 9))
			code = atoi(resp + 9);
	}
	explicit_bzero(req, sizeof req);
	close(fd);
	return code;
}

static int agent_http(const char *addr, int port, const char *method, const char *path, const char *token,
		      int connect_ms, int timeout_ms)
{
	return agent_http_body(addr, port, method, path, token, NULL, connect_ms, timeout_ms);
}

/* Waits for GET /health to answer 200, while the VMM lives. */
static int wait_agent(const char *addr, int port, long long pid, long long start, double timeout_s,
		      const char *console, struct verr *e)
{
	double t0 = now_ms();
	while (!interrupted) {
		/* A SYN sent before the guest's network is up is lost (TCP would
		 * resend it only after a second): a short connect timeout and a
		 * fresh SYN instead; a refused one (the stack is up, the agent
		 * not yet) is retried after 5 ms. */
		if (agent_http(addr, port, "GET", "/health", NULL, 50, 2000) == 200)
			return 0;
		if (proc_start_time((long)pid) != start) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_BOOT", "read the guest's console log",
				 "the VM stopped while booting (see %s)", console);
			return -1;
		}
		if (now_ms() - t0 > timeout_s * 1e3) {
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_BOOT_TIMEOUT", "read the guest's console log",
				 "the guest agent did not answer within %.0f s (see %s)", timeout_s, console);
			return -1;
		}
		poll(NULL, 0, 5);
	}
	verr_set(e, 130, "ERR_INTERRUPTED", NULL, "interrupted");
	return -1;
}

static int read_token(const struct state *st, const char *id, char *tok, size_t n)
{
	char name[96];
	snprintf(name, sizeof name, "%s.token", id);
	int fd = openat(st->vmsfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, tok, n - 1);
	close(fd);
	if (r <= 0)
		return -1;
	tok[r] = 0;
	tok[strcspn(tok, "\r\n")] = 0;
	return 0;
}

/* ---- undoing -------------------------------------------------------------- */

/* The VMM of a VM killed, if it runs: vmsan-fc finds it by id in root's
 * own record, and acts only for its owner. */
static void kill_vmm(const char *id)
{
	call_quiet("fc", "kill", json_pack("{s:s}", "id", id), true);
}

static void kill_timer(json_t *rec)
{
	json_t *t = json_object_get(rec, "timer");
	long long pid = jint(t, "pid", 0), start = jint(t, "startTime", -1);
	if (pid > 1 && pid != getpid() && start >= 0 && proc_start_time((long)pid) == start)
		kill((pid_t)pid, SIGKILL);
}

/* What runs for a VM, gone: its VMM, its timer, its network. */
static void take_down(const char *id, json_t *rec)
{
	kill_vmm(id);
	kill_timer(rec);
	call_quiet("net", "teardown", json_pack("{s:s}", "id", id), true);
}

/* Everything a VM has, gone: VMM, timer, network, files, record. */
static void remove_all(struct state *st, const char *id, json_t *rec)
{
	take_down(id, rec);
	call_quiet("fc", "cleanup", json_pack("{s:s}", "id", id), true);
	if (rm_tree_at(st->vmsfd, id) < 0)
		fprintf(stderr, "vmsan %s: cleanup: cannot remove all of %s/%s\n", cmd, st->vms, id);
	char name[96];
	snprintf(name, sizeof name, "%s.token", id);
	unlinkat(st->vmsfd, name, 0);
	struct verr e = { 0 };
	if (state_remove(st, id, &e) < 0)
		fprintf(stderr, "vmsan %s: cleanup: %s\n", cmd, e.message);
}

/* ---- record ---------------------------------------------------------------- */

/* Merges the fields of rec (stolen) into the VM's record. */
static int store(struct state *st, const char *id, json_t *rec, struct verr *e)
{
	json_t *cur = state_load(st, id, e);
	if (!cur) {
		json_decref(rec);
		return -1;
	}
	json_object_update(cur, rec);
	/* a pid without its start time could later name another process */
	if (json_is_integer(json_object_get(cur, "pid")) && !json_object_get(rec, "pidStartTime")) {
		long long s = proc_start_time((long)json_integer_value(json_object_get(cur, "pid")));
		json_object_set_new(cur, "pidStartTime", s >= 0 ? json_integer(s) : json_null());
	}
	int rc = state_store(st, id, cur, false, e);
	json_decref(cur);
	json_decref(rec);
	return rc;
}

/* ---- the network and the VMM, shared by create and start ------------------ */

struct boot {
	double t_policy, t_net, t_vmm, t_vmm_init, t_boot;
	const char *incoming;   /* a snapshot's directory to restore from */
	json_t *net;     /* vmsan-net setup's reply */
	json_t *vmm;     /* vmsan-fc start's reply */
};

/* The VM's ruleset from the record's network section (vmsan-nftables
 * validates every field): the reply, with "ruleset". */
static json_t *policy_of(json_t *nw)
{
	json_t *p = json_pack("{s:s, s:O, s:O, s:O, s:O, s:i}", "policy", jstr(nw, "policy"), "allowedCidrs",
			      json_object_get(nw, "allowedCidrs"), "deniedCidrs", json_object_get(nw, "deniedCidrs"),
			      "dnsResolvers", json_object_get(nw, "dns"), "publishedPorts",
			      json_object_get(nw, "publishedPorts"), "agentPort", AGENT_PORT);
	if (json_array_size(json_object_get(nw, "allowedDomains")))
		json_object_set(p, "allowedDomains", json_object_get(nw, "allowedDomains"));
	if (json_is_true(json_object_get(nw, "strictDomains")))
		json_object_set_new(p, "strictDomains", json_true());
	return p;
}

/* The compiler vmsan-nftables runs, in-process (a process start less);
 * vmsan-nftables stays the way to read a policy's rules. */
static json_t *compile_policy(json_t *nw, struct verr *e)
{
	struct policy_target t = { NET_TABLE, NET_TAP, NET_UPLINK, NET_GUEST_ADDR };
	json_t *pol = policy_of(nw);
	struct jr r;
	jr_init(&r, pol, "policy", e);
	json_t *c = policy_compile(&r, &t, e);
	json_decref(pol);
	return c;
}

/* The request that (re)applies a VM's rules: the compiled ruleset for its
 * namespace, or with --no-netns the policy (vmsan-net compiles the host's
 * rules itself), and with allowed domains its resolver's settings (the
 * upstreams are the VM's resolvers; the log is dns.log in the VM's
 * directory dir); NULL with e set when the policy does not compile. */
static json_t *rules_request(const char *id, const char *dir, json_t *nw, struct verr *e)
{
	if (json_is_true(json_object_get(nw, "noNetns")))
		return json_pack("{s:s, s:o}", "id", id, "policy", policy_of(nw));
	json_t *c = compile_policy(nw, e);
	if (!c)
		return NULL;
	json_t *req = json_pack("{s:s, s:O}", "id", id, "ruleset", json_object_get(c, "ruleset"));
	json_decref(c);
	json_t *doms = json_object_get(nw, "allowedDomains");
	if (json_array_size(doms)) {
		json_t *dns = json_pack("{s:O, s:O}", "domains", doms, "upstreams", json_object_get(nw, "dns"));
		if (json_is_integer(json_object_get(nw, "dnsTtlMin")))
			json_object_set(dns, "ttlMin", json_object_get(nw, "dnsTtlMin"));
		if (json_is_integer(json_object_get(nw, "dnsTtlMax")))
			json_object_set(dns, "ttlMax", json_object_get(nw, "dnsTtlMax"));
		if (json_is_true(json_object_get(nw, "strictDomains")))
			json_object_set_new(dns, "strict", json_true());
		if (dir)
			json_object_set_new(dns, "log", json_sprintf("%s/dns.log", dir));
		json_object_set_new(req, "dns", dns);
	}
	return req;
}

/* The policy compiled and the network set up (b->net). */
static int net_up(const char *id, json_t *rec, struct boot *b, struct verr *e)
{
	json_t *nw = json_object_get(rec, "network");
	bool no_netns = json_is_true(json_object_get(nw, "noNetns"));
	double t = now_ms();
	json_t *setup = rules_request(id, jstr(rec, "dir"), nw, e);
	if (!setup)
		return -1;
	b->t_policy = now_ms() - t;
	pause_at("network");
	t = now_ms();
	if (no_netns) {
		json_object_set_new(setup, "hostMode", json_true());
	} else {
		json_t *hostports = json_array(), *p;
		size_t i;
		json_array_foreach(json_object_get(nw, "publishedPorts"), i, p)
			json_array_append_new(hostports, json_integer(jint(p, "hostPort", 0)));
		json_object_set_new(setup, "publishedPorts", hostports);
	}
	if (jint(nw, "bandwidthMbit", 0) > 0)
		json_object_set_new(setup, "bandwidthMbit", json_integer(jint(nw, "bandwidthMbit", 0)));
	if (no_netns)
		say("network: no namespace (--no-netns), policy %s", jstr(nw, "policy"));
	else
		say("network: namespace vmsan-%s, policy %s", id, jstr(nw, "policy"));
	b->net = call("net", "setup", setup, true, e);
	if (!b->net)
		return -1;
	b->t_net = now_ms() - t;
	return 0;
}

/* The VMM started on the network net_up made, the record told, the guest
 * awaited. */
static int vmm_up(struct state *st, const char *id, json_t *rec, struct boot *b, struct verr *e)
{
	json_t *nw = json_object_get(rec, "network");
	double t = now_ms();
	long long uid, gid;
	vmm_identity(jint(b->net, "slot", 0), &uid, &gid);
	json_t *img = json_object_get(rec, "image");
	json_t *start = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:i, s:s,"
		" s:{s:s, s:s, s:s, s:s, s:s, s:I, s:O}}",
		"id", id, "vmm", jstr(rec, "vmm"), "kernel", jstr(rec, "kernel"), "vmDisk", jstr(rec, "disk"),
		"runDir", jstr(rec, "dir"), "uid", uid, "gid", gid, "vcpus", jint(rec, "vcpuCount", 1), "memoryMib",
		jint(rec, "memSizeMib", 256), "accel", jstr(rec, "accel") ?: "auto", "agentPort", AGENT_PORT,
		"hostname", id, "network", "netns", jstr(b->net, "netns") ?: "", "tap", jstr(b->net, "tap"), "mac",
		jstr(b->net, "mac"), "guestIp", jstr(b->net, "guestIp"), "gatewayIp", jstr(b->net, "gatewayIp"),
		"prefixLen", jint(b->net, "prefixLen", 30), "dns", json_object_get(nw, "dns"));
	if (b->incoming)
		json_object_set_new(start, "incoming", json_string(b->incoming));
	if (!jstr(b->net, "netns"))     /* --no-netns: the VMM stays in the host's namespace */
		json_object_del(json_object_get(start, "network"), "netns");
	if (jstr(img, "path"))
		json_object_set_new(start, "imageDisk", json_string(jstr(img, "path")));
	if (!strcmp(jstr(rec, "vmm"), "firecracker"))
		json_object_del(start, "accel");
	pause_at("vmm");
	say("VMM: starting %s", jstr(rec, "vmm"));
	b->vmm = call("fc", "start", start, true, e);
	if (!b->vmm)
		return -1;
	b->t_vmm = now_ms() - t;
	/* The guest boots from here: what follows (the record naming the
	 * VMM) runs beside its boot, and the boot is timed from now. */
	double t_boot0 = now_ms();
	/* The VMM's own start (QEMU: fork to QMP answering; Firecracker: the
	 * jailer to InstanceStart), as vmsan-fc measured it; the rest of
	 * t_vmm is vmsan-fc's. */
	b->t_vmm_init = json_real_value(json_object_get(b->vmm, "startMs"));
	/* The record names the VMM before we wait on the guest. */
	json_t *upd = json_pack("{s:{s:I, s:I, s:I}, s:s, s:{s:s, s:i}}", "process", "pid", jint(b->vmm, "pid", 0),
				"startTime", jint(b->vmm, "startTime", 0), "uid", jint(b->vmm, "uid", 0), "accelUsed",
				jstr(b->vmm, "accel"), "agent", "addr", jstr(b->net, "agentAddr"), "port", AGENT_PORT);
	if (jstr(b->vmm, "apiSocket"))
		json_object_set_new(json_object_get(upd, "process"), "apiSocket",
				    json_string(jstr(b->vmm, "apiSocket")));
	json_t *nwu = json_deep_copy(nw);
	json_object_set(nwu, "netns", json_object_get(b->net, "netns"));
	json_object_set(nwu, "slot", json_object_get(b->net, "slot"));
	json_object_set(nwu, "hostAddr", json_object_get(b->net, "hostAddr"));
	json_object_set(nwu, "guestIp", json_object_get(b->net, "guestIp"));
	json_object_set(nwu, "tapDevice", json_object_get(b->net, "tap"));
	json_object_set(nwu, "macAddress", json_object_get(b->net, "mac"));
	json_object_set_new(upd, "network", nwu);
	if (store(st, id, upd, e) < 0)
		return -1;
	pause_at("boot");
	say("boot: waiting for the guest agent");
	const char *bt = getenv("VMSAN_BOOT_TIMEOUT");
	int boot_timeout = bt && atoi(bt) > 0 ? atoi(bt) : BOOT_TIMEOUT_S;
	if (wait_agent(jstr(b->net, "agentAddr"), AGENT_PORT, jint(b->vmm, "pid", 0), jint(b->vmm, "startTime", 0),
		       boot_timeout, jstr(b->vmm, "console") ? jstr(b->vmm, "console") : "vmm.log", e) < 0)
		return -1;
	b->t_boot = now_ms() - t_boot0;
	return 0;
}

static int boot_vm(struct state *st, const char *id, json_t *rec, struct boot *b, struct verr *e)
{
	return net_up(id, rec, b, e) < 0 ? -1 : vmm_up(st, id, rec, b, e);
}

/* The auto-stop: a detached process that sleeps until the deadline, then
 * runs `vmsan stop` on the VM (which also tears its network down). */
static int arm_timer(struct state *st, const char *id, long long seconds, struct verr *e)
{
	pid_t pid = fork();
	if (pid < 0) {
		verr_sys(e, "ERR_SYSTEM", NULL, "fork");
		return -1;
	}
	if (pid == 0) {
		setsid();
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		closefrom(3);
		signal(SIGHUP, SIG_IGN);
		struct timespec ts = { .tv_sec = (time_t)seconds };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		char self[PATH_MAX + 16];
		snprintf(self, sizeof self, "%s/vmsan-stop", libexec);
		setenv("VMSAN_STOP_REASON", "timeout", 1);
		execl(self, "vmsan-stop", id, (char *)NULL);
		_exit(127);
	}
	time_t at = time(NULL) + seconds;
	char iso[32];
	utc_iso(at, iso);
	return store(st, id,
		     json_pack("{s:{s:i, s:I}, s:s}", "timer", "pid", (int)pid, "startTime", proc_start_time((long)pid),
			       "timeoutAt", iso),
		     e);
}

/* ---- create ----------------------------------------------------------------- */

static const char create_usage[] =
	"usage: vmsan create [--runtime NAME | --from-image REF] [--vcpus N] [--memory MIB]\n"
	"                    [--disk-size SIZE] [--network-policy allow-all|deny-all|custom]\n"
	"                    [--allowed-cidr CIDR,...] [--denied-cidr CIDR,...] [--dns IP,...]\n"
	"                    [--allowed-domain NAME|*.NAME,...] [--strict-domains]\n"
	"                    [--publish-port PORT[:GUEST],...] [--bandwidth NMbit] [--timeout DURATION]\n"
	"                    [--vmm qemu|firecracker] [--accel auto|kvm|tcg] [--kernel PATH]\n"
	"                    [--pull] [--project LABEL] [--json] [--verbose]\n"
	"\n"
	"Creates a microVM and returns once its agent answers: the image's disk shared\n"
	"read-only, a writable disk of its own (sparse, --disk-size, default 10G), its own\n"
	"network namespace with the egress policy enforced, and the VMM as an\n"
	"unprivileged user.  --json (or --verbose) reports how long each step took.\n"
	"A failed or interrupted create removes everything it made.\n"
	"\n"
	"  --runtime NAME      base (default, offline), node22, node24, python3.13\n"
	"  --from-image REF    any OCI image: alpine:3.20, registry:5000/app:1, oci:DIR:TAG\n"
	"  --vcpus N           1-32 (default 1)      --memory MIB  128-32768 (default 256)\n"
	"  --network-policy    allow-all (default), deny-all, custom; CIDR lists make it custom\n"
	"  --allowed-domain    names the guest may reach (*.NAME: names under NAME): its DNS\n"
	"                      is answered by the VM's filtering resolver, whose answers'\n"
	"                      addresses alone are let through (with allowed CIDRs; denied\n"
	"                      CIDRs still win); log: vmsan logs ID --dns\n"
	"  --strict-domains    also check each TCP connection to those addresses: 443 must\n"
	"                      name an allowed host in its TLS ClientHello (SNI), 80 in its\n"
	"                      HTTP Host header; other ports to them are dropped\n"
	"  --dns IP,...        the guest's resolvers (default $VMSAN_DNS, else dns = in\n"
	"                      $VMSAN_DIR/config or /etc/vmsan/config, else 8.8.8.8,1.1.1.1)\n"
	"  --publish-port      host ports reachable from outside, PORT or HOST:GUEST\n"
	"  --bandwidth         50mbit: shaped in both directions\n"
	"  --snapshot S        restore snapshot S (vmsan snapshot list): its image, size, disk,\n"
	"                      memory and running processes; a new id, namespace and token\n"
	"  --no-netns          no namespace of its own: TAP vmst<slot> in this namespace, the\n"
	"                      same policy enforced on its traffic (no --bandwidth)\n"
	"  --timeout           30s, 5m, 2h, 1d: the VM is stopped then (network torn down)\n"
	"  --vmm               qemu (default without Firecracker) or firecracker\n";

struct create_opts {
	const char *runtime, *image, *disk, *policy, *vmm, *accel, *kernel, *project, *snapshot;
	long long vcpus, mem, bandwidth, timeout;
	bool pull, no_netns, policy_given, sized, strict;
	json_t *allowed, *denied, *domains, *dns, *ports;
};

static void free_opts(struct create_opts *o)
{
	json_decref(o->allowed);
	json_decref(o->denied);
	json_decref(o->domains);
	json_decref(o->dns);
	json_decref(o->ports);
	o->allowed = o->denied = o->domains = o->dns = o->ports = NULL;
}

static int parse_ports(const char *s, json_t *ports, struct verr *e)
{
	json_t *items = json_array(), *x;
	size_t i;
	csv_append(items, s);
	json_array_foreach(items, i, x) {
		const char *v = json_string_value(x);
		char *end;
		long h = strtol(v, &end, 10), g = h;
		if (*end == ':')
			g = strtol(end + 1, &end, 10);
		if (*end || h < 1 || h > 65535 || g < 1 || g > 65535 || !isdigit((unsigned char)v[0])) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_PORT", "give PORT or HOST:GUEST, 1-65535",
				 "--publish-port: '%s' is not a port", v);
			json_decref(items);
			return -1;
		}
		json_array_append_new(ports, json_pack("{s:i, s:i}", "hostPort", (int)h, "guestPort", (int)g));
	}
	json_decref(items);
	return 0;
}

static int num_opt(const char *name, const char *v, long long lo, long long hi, long long *out, struct verr *e)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_INTEGER", NULL,
			 "invalid %s: \"%s\"; must be an integer from %lld to %lld", name, v, lo, hi);
		return -1;
	}
	*out = x;
	return 0;
}

static int parse_create(int argc, char **argv, int i, struct create_opts *o, struct verr *e)
{
	memset(o, 0, sizeof *o);
	o->vcpus = 1;
	o->mem = 256;
	o->policy = "allow-all";
	o->allowed = json_array();
	o->denied = json_array();
	o->domains = json_array();
	o->dns = json_array();
	o->ports = json_array();
	for (; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char *eq = strchr(a, '=');
		char name[40];
		if (!strncmp(a, "--", 2) && eq && (size_t)(eq - a) < sizeof name) {
			snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
			a = name;
			v = eq + 1;
		} else if (!strcmp(a, "--json") || !strcmp(a, "--verbose") || !strcmp(a, "--pull") ||
			   !strcmp(a, "--no-netns") || !strcmp(a, "--strict-domains")) {
			if (!strcmp(a, "--json"))
				json_mode = true;
			else if (!strcmp(a, "--strict-domains"))
				o->strict = true;
			else if (!strcmp(a, "--verbose"))
				verbose = true;
			else if (!strcmp(a, "--no-netns"))
				o->no_netns = true;
			else
				o->pull = true;
			continue;
		} else if (v) {
			i++;
		}
		if (!v) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see 'vmsan create --help'",
				 "unknown option or missing value: %s", a);
			return -1;
		}
#define IS(x) (!strcmp(a, x))
		if (IS("--runtime"))
			o->runtime = *v ? v : "base";
		else if (IS("--from-image"))
			o->image = v;
		else if (IS("--vcpus")) {
			if (num_opt("--vcpus", v, 1, 32, &o->vcpus, e))
				return -1;
			o->sized = true;
		} else if (IS("--memory")) {
			if (num_opt("--memory", v, 128, 32768, &o->mem, e))
				return -1;
			o->sized = true;
		} else if (IS("--disk-size") || IS("--disk"))
			o->disk = v, o->sized = true;
		else if (IS("--network-policy"))
			o->policy = v, o->policy_given = true;
		else if (IS("--allowed-cidr"))
			csv_append(o->allowed, v), o->policy_given = true;
		else if (IS("--denied-cidr"))
			csv_append(o->denied, v), o->policy_given = true;
		else if (IS("--snapshot"))
			o->snapshot = v;
		else if (IS("--allowed-domain"))
			csv_append(o->domains, v);
		else if (IS("--dns"))
			csv_append(o->dns, v);
		else if (IS("--publish-port")) {
			if (parse_ports(v, o->ports, e))
				return -1;
		} else if (IS("--bandwidth")) {
			char *end;
			long long bw = strtoll(v, &end, 10);
			if (end == v || bw < 1 || bw > 1000 ||
			    (*end && strcasecmp(end, "mbit") && strcasecmp(end, "m"))) {
				verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_INTEGER", "such as 50mbit (1-1000)",
					 "invalid --bandwidth: \"%s\"", v);
				return -1;
			}
			o->bandwidth = bw;
		} else if (IS("--timeout")) {
			if (parse_duration(v, &o->timeout)) {
				verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DURATION", "such as 30s, 5m, 2h (up to 30d)",
					 "invalid --timeout: \"%s\"", v);
				return -1;
			}
		} else if (IS("--vmm"))
			o->vmm = v;
		else if (IS("--accel"))
			o->accel = v;
		else if (IS("--kernel"))
			o->kernel = v;
		else if (IS("--project"))
			o->project = v;
		else {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see 'vmsan create --help'", "unknown option %s",
				 a);
			return -1;
		}
#undef IS
	}
	if (o->snapshot && (o->runtime || o->image || o->sized || json_array_size(o->dns) || o->no_netns)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS",
			 "give the policy, ports, bandwidth or timeout; the rest comes from the snapshot",
			 "--snapshot restores the snapshot's image, size, disk, resolvers and namespace mode");
		return -1;
	}
	if (o->runtime && o->image) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS", "give one of them",
			 "--runtime and --from-image cannot be combined");
		return -1;
	}
	if (normalize_domains(o->domains, e) < 0)
		return -1;
	if (strict_needs_domains(o->strict, o->domains, e) < 0)
		return -1;
	if (o->no_netns && json_array_size(o->domains)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS", "drop --no-netns, or use --allowed-cidr",
			 "--allowed-domain needs the VM's own namespace (its resolver and address set live there)");
		return -1;
	}
	if (o->no_netns && o->bandwidth) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS", "drop --no-netns or --bandwidth",
			 "--bandwidth shapes both directions in the VM's own namespace, which --no-netns does not make");
		return -1;
	}
	if (o->vmm && strcmp(o->vmm, "qemu") && strcmp(o->vmm, "firecracker")) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_VMM", "use qemu or firecracker",
			 "invalid --vmm: \"%s\"", o->vmm);
		return -1;
	}
	if (o->accel && strcmp(o->accel, "auto") && strcmp(o->accel, "kvm") && strcmp(o->accel, "tcg")) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_ACCEL", "use auto, kvm or tcg",
			 "invalid --accel: \"%s\"", o->accel);
		return -1;
	}
	return 0;
}

/* A setting from the config files: /etc/vmsan/config, then the state
 * directory's config (the later wins).  Lines are "key = value"; # starts
 * a comment.  *out is NULL when no file sets it. */
#define SYSTEM_CONFIG "/etc/vmsan/config"
static int config_get(const struct state *st, const char *key, char *out, size_t n, bool *found, struct verr *e)
{
	static const char *const known[] = { "dns", "dns-ttl-min", "dns-ttl-max" };
	char user[PATH_MAX];
	snprintf(user, sizeof user, "%.4000s/config", st->dir);
	const char *files[] = { SYSTEM_CONFIG, user };
	*found = false;
	for (size_t f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "re");
		if (!fp) {
			if (errno == ENOENT)
				continue;
			verr_sys(e, "ERR_CONFIG", NULL, "cannot read %s", files[f]);
			return -1;
		}
		char line[1024];
		for (int ln = 1; fgets(line, sizeof line, fp); ln++) {
			char *h = strchr(line, '#'), *k = line, *eq;
			if (h)
				*h = 0;
			while (isspace((unsigned char)*k))
				k++;
			size_t l = strlen(k);
			while (l && isspace((unsigned char)k[l - 1]))
				k[--l] = 0;
			if (!*k)
				continue;
			if (!(eq = strchr(k, '='))) {
				fclose(fp);
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_CONFIG", "write it as: key = value",
					 "%s:%d: no '=' in \"%s\"", files[f], ln, k);
				return -1;
			}
			char *v = eq + 1;
			while (eq > k && isspace((unsigned char)eq[-1]))
				eq--;
			*eq = 0;
			while (isspace((unsigned char)*v))
				v++;
			size_t i = 0;
			while (i < sizeof known / sizeof *known && strcmp(known[i], k))
				i++;
			if (i == sizeof known / sizeof *known) {
				fclose(fp);
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_CONFIG", "the settings known are: dns, dns-ttl-min, dns-ttl-max",
					 "%s:%d: unknown setting '%s'", files[f], ln, k);
				return -1;
			}
			if (!strcmp(k, key)) {
				snprintf(out, n, "%s", v);
				*found = true;
			}
		}
		fclose(fp);
	}
	return 0;
}

/* The guest's resolvers: --dns, else $VMSAN_DNS, else the config files'
 * dns, else the original's public resolvers.  Checked here, before
 * anything is made. */
static int resolve_dns(const struct state *st, json_t *dns, struct verr *e)
{
	const char *from = "--dns";
	if (!json_array_size(dns)) {
		const char *d = getenv("VMSAN_DNS");
		char conf[1024];
		bool found = false;
		if (d && *d) {
			from = "VMSAN_DNS";
		} else if (config_get(st, "dns", conf, sizeof conf, &found, e) < 0) {
			return -1;
		} else if (found) {
			from = "the config file's dns";
			d = conf;
		} else {
			from = "the default";
			d = "8.8.8.8,1.1.1.1";
		}
		csv_append(dns, d);
	}
	size_t i;
	json_t *x;
	json_array_foreach(dns, i, x) {
		char why[128];
		if (valid_ipv4(json_string_value(x), why, sizeof why)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DNS", "give IPv4 addresses, such as 192.0.2.53",
				 "%s: invalid resolver '%s': %s", from, json_string_value(x), why);
			return -1;
		}
	}
	if (!json_array_size(dns) || json_array_size(dns) > 3) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DNS", "give 1 to 3 resolvers",
			 "%s: %zu DNS resolvers", from, json_array_size(dns));
		return -1;
	}
	return 0;
}

/* How long an allowed domain's address stays allowed: its TTL, at least
 * dns-ttl-min and at most dns-ttl-max seconds (config files; 30 and 3600
 * when not set), into the network section. */
static int set_dns_ttls(const struct state *st, json_t *nw, struct verr *e)
{
	static const char *const keys[] = { "dns-ttl-min", "dns-ttl-max" };
	long long v[2] = { 30, 3600 };
	for (int k = 0; k < 2; k++) {
		char conf[256], *end;
		bool found;
		if (config_get(st, keys[k], conf, sizeof conf, &found, e) < 0)
			return -1;
		if (!found)
			continue;
		errno = 0;
		v[k] = strtoll(conf, &end, 10);
		if (errno || end == conf || *end || v[k] < 1 || v[k] > 86400) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_CONFIG", "give whole seconds, 1 to 86400",
				 "%s: '%s' is not a number of seconds", keys[k], conf);
			return -1;
		}
	}
	if (v[0] > v[1]) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_CONFIG", "make dns-ttl-min at most dns-ttl-max",
			 "dns-ttl-min %lld is above dns-ttl-max %lld", v[0], v[1]);
		return -1;
	}
	json_object_set_new(nw, "dnsTtlMin", json_integer(v[0]));
	json_object_set_new(nw, "dnsTtlMax", json_integer(v[1]));
	return 0;
}

static void print_created(json_t *rec, json_t *timing)
{
	if (json_mode) {
		json_t *doc = json_pack("{s:b, s:O, s:O}", "ok", 1, "vm", rec, "timing", timing);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
		return;
	}
	const char *id = jstr(rec, "id");
	printf("%s running (%s/%s) in %.2f s\n", id, jstr(rec, "vmm"), jstr(rec, "accelUsed"),
	       json_real_value(json_object_get(timing, "totalMs")) / 1e3);
	if (verbose) {
		const char *k;
		json_t *v;
		json_object_foreach(timing, k, v)
			fprintf(stderr, "  %-16s %8.1f ms\n", k, json_real_value(v));
	}
	printf("  vmsan exec %s -- uname -a\n  vmsan connect %s\n  vmsan rm -f %s\n", id, id, id);
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int snapshots_dir(const struct state *st, bool create, struct verr *e);
static json_t *load_snapshot(int sfd, const char *sid, struct verr *e);

/* A restored VM's disk: the snapshot's, copied (holes stay holes), with a
 * fresh token written where the snapshot's was (what the guest reads if
 * it boots again) and in vms/<id>.token.  The record's update, or NULL. */
static json_t *restore_disk(struct state *st, const char *id, json_t *snap, const char *snapdir, struct verr *e)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], src[PATH_MAX + 16], tokp[PATH_MAX + 16], tok[65], old[300], name[96];
	unsigned char raw[32];
	int in = -1, out = -1, tf = -1;
	json_t *upd = NULL;
	long long off = jint(snap, "tokenOffset", 0);
	snprintf(dir, sizeof dir, "%.4000s/%s", st->vms, id);
	snprintf(path, sizeof path, "%s/disk.ext4", dir);
	snprintf(src, sizeof src, "%s/disk.ext4", snapdir);
	snprintf(tokp, sizeof tokp, "%s/token", snapdir);
	int of = open(tokp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t ol = of < 0 ? -1 : read(of, old, sizeof old - 1);
	if (of >= 0)
		close(of);
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw || ol != 64) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", NULL, "snapshot %s has no agent token", jstr(snap, "id"));
		return NULL;
	}
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(tok + 2 * i, 3, "%02x", raw[i]);
	struct stat sb;
	char held[64];
	if (mkdir(dir, 0700) < 0 || (in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(in, &sb) < 0 ||
	    (out = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot make %s's disk from the snapshot", id);
		goto out;
	}
	if (copy_sparse(in, out, (uint64_t)sb.st_size, "copying the snapshot's disk", e) < 0)
		goto out;
	if (off <= 0 || pread(out, held, 64, (off_t)off) != 64 || memcmp(held, old, 64) ||
	    pwrite(out, tok, 64, (off_t)off) != 64) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT", "take the snapshot again",
			 "snapshot %s's disk does not hold its token where its record says", jstr(snap, "id"));
		goto out;
	}
	snprintf(name, sizeof name, "%s.token", id);
	if ((tf = openat(st->vmsfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0 ||
	    write(tf, tok, 64) != 64) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot write %s's token", id);
		goto out;
	}
	upd = json_pack("{s:O, s:s, s:s, s:I, s:I, s:s}", "image", json_object_get(snap, "image"), "dir", dir, "disk",
			path, "diskSize", jint(snap, "diskSize", 0), "tokenOffset", off, "restoredFrom", jstr(snap, "id"));
	if (jstr(snap, "runtime"))
		json_object_set_new(upd, "runtime", json_string(jstr(snap, "runtime")));
out:
	explicit_bzero(old, sizeof old);
	explicit_bzero(tok, sizeof tok);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (tf >= 0)
		close(tf);
	return upd;
}

static int do_create(int argc, char **argv, int i, json_t **rec_out, char *id_out)
{
	struct verr e = { 0 };
	struct create_opts o;
	if (parse_create(argc, argv, i, &o, &e) < 0) {
		free_opts(&o);
		return report(&e);
	}
	double t_start = now_ms(), t;
	struct state st = { .vmsfd = -1 };
	char kernel[PATH_MAX], id[80] = "";
	json_t *rec = NULL, *timing = json_object();
	struct boot b = { 0 };
	int lock = -1;
	bool made = false;
	json_t *snap = NULL;
	int snapfd = -1;
	char snapdir[PATH_MAX];
	if (state_open(&st, true, &e) < 0)
		goto fail;
	if (o.snapshot) {
		/* Restoring: held (shared lock) so that no delete takes it from
		 * under the copy; its settings are the new VM's. */
		int sfd = snapshots_dir(&st, false, &e);
		snap = load_snapshot(sfd, o.snapshot, &e);
		if (snap)
			snapfd = openat(sfd, o.snapshot, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd >= 0)
			close(sfd);
		if (!snap)
			goto fail;
		if (snapfd < 0 || flock(snapfd, LOCK_SH) < 0) {
			verr_sys(&e, "ERR_SNAPSHOT", NULL, "cannot open snapshot %s", o.snapshot);
			goto fail;
		}
		snprintf(snapdir, sizeof snapdir, "%.3800s/snapshots/%s", st.dir, o.snapshot);
		if (o.vmm && strcmp(o.vmm, jstr(snap, "vmm"))) {
			verr_set(&e, VMSAN_EXIT_USAGE, "ERR_SNAPSHOT_VMM", "leave --vmm out",
				 "snapshot %s was made by %s: it restores with %s only", o.snapshot, jstr(snap, "vmm"),
				 jstr(snap, "vmm"));
			goto fail;
		}
		o.vmm = jstr(snap, "vmm");
		o.vcpus = jint(snap, "vcpuCount", 1);
		o.mem = jint(snap, "memSizeMib", 256);
		json_t *sn = json_object_get(snap, "network");
		if (!o.policy_given) {
			o.policy = jstr(sn, "policy");
			json_array_extend(o.allowed, json_object_get(sn, "allowedCidrs"));
			json_array_extend(o.denied, json_object_get(sn, "deniedCidrs"));
			if (json_is_array(json_object_get(sn, "allowedDomains")))
				json_array_extend(o.domains, json_object_get(sn, "allowedDomains"));
			o.strict = o.strict || json_is_true(json_object_get(sn, "strictDomains"));
		}
		/* the guest's resolv.conf is the snapshot's */
		json_array_extend(o.dns, json_object_get(sn, "dns"));
		if (!jstr(json_object_get(snap, "image"), "path") ||
		    access(jstr(json_object_get(snap, "image"), "path"), R_OK) < 0) {
			verr_set(&e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_IMAGE", "pull the image again (vmsan images pull)",
				 "the image of snapshot %s is gone: %s", o.snapshot,
				 jstr(json_object_get(snap, "image"), "ref") ?: "?");
			goto fail;
		}
		if (!o.kernel && jstr(snap, "kernel") && access(jstr(snap, "kernel"), R_OK) == 0)
			o.kernel = jstr(snap, "kernel");
	}
	if (resolve_dns(&st, o.dns, &e) < 0)
		goto fail;
	if (find_kernel(&st, o.kernel, kernel, sizeof kernel, &e) < 0)
		goto fail;
	if (!o.vmm)
		o.vmm = "qemu";
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	/* 1. the record, first: from here on an id names all we make */
	t = now_ms();
	/* lists make allow-all custom (the original's rule; the compiler
	 * applies it too): the record says what is in force */
	if (!strcmp(o.policy, "allow-all") &&
	    (json_array_size(o.allowed) || json_array_size(o.denied) || json_array_size(o.domains)))
		o.policy = "custom";
	json_t *nw = json_pack("{s:s, s:O, s:O, s:O, s:O}", "policy", o.policy, "allowedCidrs", o.allowed,
			       "deniedCidrs", o.denied, "dns", o.dns, "publishedPorts", o.ports);
	if (json_array_size(o.domains)) {
		json_object_set(nw, "allowedDomains", o.domains);
		if (o.strict)
			json_object_set_new(nw, "strictDomains", json_true());
		if (set_dns_ttls(&st, nw, &e) < 0) {
			json_decref(nw);
			goto fail;
		}
	}
	if (o.bandwidth)
		json_object_set_new(nw, "bandwidthMbit", json_integer(o.bandwidth));
	if (o.no_netns)
		json_object_set_new(nw, "noNetns", json_true());
	json_t *init = json_pack("{s:s, s:i, s:s, s:I, s:I, s:s, s:s, s:s, s:o}", "status", "creating", "pid",
				 (int)getpid(), "pidRole", "create", "vcpuCount", o.vcpus, "memSizeMib", o.mem, "vmm",
				 o.vmm, "accel", o.accel ? o.accel : "auto", "kernel", kernel, "network", nw);
	if (o.project)
		json_object_set_new(init, "project", json_string(o.project));
	if (o.timeout)
		json_object_set_new(init, "timeoutSec", json_integer(o.timeout));
	/* in-process (lib/state.c, what vmsan-state new runs): a process
	 * start less, ~1 ms */
	json_t *nr = state_new(&st, init, &e);
	json_decref(init);
	if (!nr)
		goto fail;
	snprintf(id, sizeof id, "%s", jstr(nr, "id") ?: "");
	json_decref(nr);
	if (!id[0]) {
		verr_set(&e, VMSAN_EXIT_SYS, "ERR_HELPER", NULL, "vmsan-state new replied with no id");
		goto fail;
	}
	made = true;
	if ((lock = state_lock(&st, id, &e)) < 0)
		goto fail;
	json_object_set_new(timing, "recordMs", json_real(now_ms() - t));
	say("%s: record made", id);

	json_t *upd;
	if (snap) {
		/* 2-5. restoring: the snapshot's disk with a token of its own,
		 * then policy and network */
		t = now_ms();
		if (!(upd = restore_disk(&st, id, snap, snapdir, &e)))
			goto fail;
		json_object_set_new(timing, "diskMs", json_real(now_ms() - t));
		if (store(&st, id, upd, &e) < 0)
			goto fail;
		rec = state_load(&st, id, &e);
		if (!rec || interrupted || net_up(id, rec, &b, &e) < 0)
			goto fail;
		b.incoming = snapdir;
	} else {
		/* 2-3. the image's disk (pulled and built unless cached), then the
		 * VM's own disk and token: one vmsan-rootfs process for both. */
		pause_at("image");
		t = now_ms();
		json_t *preq = o.image ? json_pack("{s:s}", "ref", o.image) :
					 json_pack("{s:s}", "runtime", o.runtime ? o.runtime : "base");
		if (o.pull)
			json_object_set_new(preq, "pull", json_true());
		if (isatty(STDERR_FILENO))
			json_object_set_new(preq, "progress", json_true());
		char guest[PATH_MAX + 8];
		snprintf(guest, sizeof guest, "%s/guest", libexec);
		json_t *dreq = json_pack("{s:s, s:s, s:o}", "id", id, "guestDir", guest, "pull", preq);
		if (o.disk)
			json_object_set_new(dreq, "diskSize", json_string(o.disk));
		/* The disk is made while the policy is compiled and the network set
		 * up: neither needs the other (a user's network step runs through
		 * sudo, ~5 ms of process start alone). */
		struct pending dp;
		if (call_start("rootfs", "vmdisk", dreq, false, &dp, &e) < 0)
			goto fail;

		/* 4-5. policy and network, beside the disk; the VM's directory
		 * (vmdisk makes it too) first: the resolver's log goes there */
		rec = state_load(&st, id, &e);
		char vmdir[PATH_MAX];
		snprintf(vmdir, sizeof vmdir, "%.4000s/%s", st.vms, id);
		if (rec && !jstr(rec, "dir") && (mkdir(vmdir, 0700) == 0 || errno == EEXIST))
			json_object_set_new(rec, "dir", json_string(vmdir));
		int nrc = !rec || interrupted ? -1 : net_up(id, rec, &b, &e);
		double t_net_done = now_ms();
		struct verr de = { 0 };
		json_t *disk = call_finish(&dp, &de);
		if (nrc < 0 || !disk || interrupted) {
			if (nrc == 0 && !disk)
				e = de;
			json_decref(disk);
			goto fail;
		}
		json_t *img = json_incref(json_object_get(disk, "image"));
		/* imageMs: the pull inside vmsan-rootfs (beside the network);
		 * diskMs: what the disk added after the network was up. */
		double pull_ms = json_real_value(json_object_get(img, "seconds")) * 1e3;
		json_object_set_new(timing, "imageMs", json_real(pull_ms));
		json_object_set_new(timing, "diskMs", json_real(now_ms() - t_net_done));
		(void)t;
		upd = json_pack("{s:{s:s, s:s, s:s}, s:s, s:s, s:I, s:I}", "image", "ref", jstr(img, "ref"), "digest",
					jstr(img, "digest"), "path", jstr(img, "path"), "dir", jstr(disk, "dir"), "disk",
					jstr(disk, "disk"), "diskSize", jint(disk, "diskSize", 0), "tokenOffset",
					jint(disk, "tokenOffset", 0));
		if (jstr(img, "runtime"))
			json_object_set_new(upd, "runtime", json_string(jstr(img, "runtime")));
		json_decref(img);
		json_decref(disk);
	}
	if (!snap && store(&st, id, upd, &e) < 0)
		goto fail;

	/* 6. VMM and boot, with the disk in the record */
	json_decref(rec);
	rec = state_load(&st, id, &e);
	if (!rec || interrupted || vmm_up(&st, id, rec, &b, &e) < 0)
		goto fail;
	if (snap) {
		/* The restored guest: a token of its own (the snapshot's stops
		 * working), the host's clock, its own name. */
		double t_rs = now_ms();
		char oldtok[300], newtok[300], body[512], tp[PATH_MAX + 16];
		snprintf(tp, sizeof tp, "%s/token", snapdir);
		int tf = open(tp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		ssize_t tl = tf < 0 ? -1 : read(tf, oldtok, sizeof oldtok - 1);
		if (tf >= 0)
			close(tf);
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int code = -1;
		if (tl > 0 && read_token(&st, id, newtok, sizeof newtok) == 0) {
			oldtok[tl] = 0;
			oldtok[strcspn(oldtok, "\r\n")] = 0;
			snprintf(body, sizeof body, "{\"token\":\"%s\",\"sec\":%lld,\"nsec\":%ld,\"hostname\":\"%s\"}", newtok,
				 (long long)now.tv_sec, now.tv_nsec, id);
			code = agent_http_body(jstr(b.net, "agentAddr"), AGENT_PORT, "POST", "/restored", oldtok, body, 2000,
					       5000);
		}
		explicit_bzero(oldtok, sizeof oldtok);
		explicit_bzero(newtok, sizeof newtok);
		explicit_bzero(body, sizeof body);
		if (code != 200) {
			verr_set(&e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_RESTORE", "take the snapshot again with this vmsan",
				 "the restored guest's agent did not take its new token (HTTP %d)", code);
			goto fail;
		}
		json_object_set_new(timing, "restoredMs", json_real(now_ms() - t_rs));
	}
	json_object_set_new(timing, "policyMs", json_real(b.t_policy));
	json_object_set_new(timing, "networkMs", json_real(b.t_net));
	json_object_set_new(timing, "vmmStartMs", json_real(b.t_vmm));
	json_object_set_new(timing, "vmmInitMs", json_real(b.t_vmm_init));
	json_object_set_new(timing, "bootMs", json_real(b.t_boot));

	/* 7. running */
	pause_at("running");
	t = now_ms();
	if (o.timeout && arm_timer(&st, id, o.timeout, &e) < 0)
		goto fail;
	upd = json_pack("{s:s, s:I, s:I, s:s}", "status", "running", "pid", jint(b.vmm, "pid", 0), "pidStartTime",
			jint(b.vmm, "startTime", 0), "pidRole", "vmm");
	if (store(&st, id, upd, &e) < 0)
		goto fail;
	json_object_set_new(timing, "finishMs", json_real(now_ms() - t));
	double total = now_ms() - t_start;
	json_object_set_new(timing, "totalMs", json_real(total));
	json_object_set_new(timing, "controlPlaneMs", json_real(total - b.t_boot - b.t_vmm_init));
	json_decref(rec);
	rec = state_load(&st, id, &e);
	if (!rec)
		goto fail;
	state_derive_status(rec);
	json_decref(b.net);
	json_decref(b.vmm);
	close(lock);
	if (rec_out) {
		*rec_out = rec;
		snprintf(id_out, 80, "%s", id);
		json_decref(timing);
	} else {
		print_created(rec, timing);
		json_decref(rec);
		json_decref(timing);
	}
	json_decref(snap);
	if (snapfd >= 0)
		close(snapfd);
	state_release(&st);
	free_opts(&o);
	return 0;
fail:
	if (!verr_isset(&e))
		verr_set(&e, 130, "ERR_INTERRUPTED", "nothing was left behind", "create was interrupted");
	if (made) {
		say("%s: undoing what create made", id);
		json_t *cur = state_load(&st, id, &(struct verr){ 0 });
		remove_all(&st, id, cur ? cur : rec);
		json_decref(cur);
	}
	json_decref(rec);
	json_decref(timing);
	json_decref(b.net);
	json_decref(b.vmm);
	if (lock >= 0)
		close(lock);
	json_decref(snap);
	if (snapfd >= 0)
		close(snapfd);
	state_release(&st);
	free_opts(&o);
	return report(&e);
}

/* ---- start, stop, rm -------------------------------------------------------- */

/* Opens the state and locks the VM; its record with status derived. */
static json_t *open_vm(struct state *st, const char *id, int *lock, struct verr *e)
{
	char why[128];
	if (valid_vm_id(id, why, sizeof why)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_VM_ID", "VM ids look like vm-1a2b3c4d",
			 "invalid VM id '%s': %s", id, why);
		return NULL;
	}
	if (state_open(st, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_FOUND", "run 'vmsan list' to see your VMs",
				 "VM not found: %s", id);
		return NULL;
	}
	json_t *rec = state_load(st, id, e);
	if (!rec)
		return NULL;
	json_decref(rec);
	if ((*lock = state_lock(st, id, e)) < 0)
		return NULL;
	rec = state_load(st, id, e);   /* again, under the lock */
	if (rec)
		state_derive_status(rec);
	return rec;
}

/* open_vm for an operation on a running VM: NULL with ERR_VM_NOT_RUNNING
 * (the lock, if taken, left to the caller) when it is not. */
static json_t *open_running_vm(struct state *st, const char *id, int *lock, struct verr *e)
{
	json_t *rec = open_vm(st, id, lock, e);
	if (rec && strcmp(jstr(rec, "status"), "running")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_RUNNING", "start it first (vmsan start)",
			 "%s is %s, not running", id, jstr(rec, "status"));
		json_decref(rec);
		rec = NULL;
	}
	return rec;
}

/* What a vmsan-fc request on a running VM names: its id; vmsan-fc finds
 * the VMM, its socket and its jail in root's own record. */
static json_t *vmm_ref(const char *id)
{
	return json_pack("{s:s}", "id", id);
}

/* A running VM stopped: the guest asked to power off, the VMM made to
 * end, the network torn down; the disk stays. */
static int stop_vm(struct state *st, const char *id, json_t *rec, long long grace, struct verr *e)
{
	const char *status = jstr(rec, "status");
	json_t *vmm = json_object_get(rec, "process");
	long long pid = jint(vmm, "pid", 0);
	if (!strcmp(status, "running") && pid > 1) {
		char tok[128];
		json_t *ag = json_object_get(rec, "agent");
		if (read_token(st, id, tok, sizeof tok) == 0 && jstr(ag, "addr")) {
			int code = agent_http(jstr(ag, "addr"), (int)jint(ag, "port", AGENT_PORT), "POST", "/shutdown",
					      tok, 2000, 2000);
			say("asked the guest to power off: HTTP %d", code);
		}
		explicit_bzero(tok, sizeof tok);
		json_t *r = call("fc", "stop", json_pack("{s:s, s:I}", "id", id, "timeoutSec", grace), true, e);
		if (!r)
			return -1;
		say("VMM %s", jstr(r, "how"));
		json_decref(r);
	} else {
		kill_vmm(id);
	}
	kill_timer(rec);
	json_t *r = call("net", "teardown", json_pack("{s:s}", "id", id), true, e);
	if (!r)
		return -1;
	json_decref(r);
	json_t *upd = json_pack("{s:s, s:n, s:n, s:n, s:n, s:n, s:n}", "status", "stopped", "pid", "pidStartTime",
				"pidRole", "process", "timer", "timeoutAt");
	const char *reason = getenv("VMSAN_STOP_REASON");
	json_object_set_new(upd, "stopReason", json_string(reason && *reason ? reason : "requested"));
	return store(st, id, upd, e);
}

static const char start_usage[] =
	"usage: vmsan start ID [--json] [--verbose]\n\n"
	"Starts a stopped VM on the same disk: a new network namespace (the same\n"
	"policy), the VMM, and waits for the agent.  --timeout is armed again.\n";
static const char stop_usage[] =
	"usage: vmsan stop ID... [--grace SECONDS] [--json]\n\n"
	"Asks the guest to power off (processes stopped, disks synced), waits up to\n"
	"--grace seconds (default 10) for the VMM to end, then ends it; tears the\n"
	"network down.  The disk stays: vmsan start boots it again.\n";
static const char rm_usage[] =
	"usage: vmsan rm ID... [-f|--force] [--json]\n\n"
	"Removes stopped VMs: disk, logs, token, record.  --force also removes a\n"
	"running, creating or broken VM (its VMM killed, its network torn down).\n";
static const char gc_usage[] =
	"usage: vmsan gc [--dry-run] [--json]\n\n"
	"Finds what interrupted or crashed operations left: records of creates\n"
	"that never finished, VMs whose VMM is gone, VM directories and tokens\n"
	"with no record; and the network's own leftovers (slots, links,\n"
	"namespaces and published ports no VM accounts for, whoever's they were).\n"
	"Unfinished VMs are removed; crashed ones are stopped (network torn\n"
	"down, disk kept).  --dry-run only lists them.\n";

static int do_start(const char *id)
{
	struct verr e = { 0 };
	struct state st;
	int lock = -1;
	struct boot b = { 0 };
	double t0 = now_ms();
	json_t *rec = open_vm(&st, id, &lock, &e);
	if (!rec)
		goto fail;
	if (strcmp(jstr(rec, "status"), "stopped")) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_VM_STATE",
			 !strcmp(jstr(rec, "status"), "running") ? "it is running already" :
								   "stop it first (vmsan stop), or vmsan rm -f",
			 "%s is %s, not stopped", id, jstr(rec, "status"));
		goto fail;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (boot_vm(&st, id, rec, &b, &e) < 0) {
		json_t *cur = state_load(&st, id, &(struct verr){ 0 });
		take_down(id, cur);
		json_decref(cur);
		json_t *down = json_pack("{s:s, s:n}", "status", "stopped", "process");
		store(&st, id, down, &(struct verr){ 0 });
		goto fail;
	}
	long long to = jint(rec, "timeoutSec", 0);
	if (to && arm_timer(&st, id, to, &e) < 0)
		goto fail;
	json_t *upd = json_pack("{s:s, s:I, s:I, s:s}", "status", "running", "pid", jint(b.vmm, "pid", 0),
				"pidStartTime", jint(b.vmm, "startTime", 0), "pidRole", "vmm");
	int rc = store(&st, id, upd, &e);
	if (rc < 0)
		goto fail;
	if (json_mode)
		printf("{\"ok\":true,\"id\":\"%s\",\"status\":\"running\",\"timing\":{\"networkMs\":%.1f,"
		       "\"vmmStartMs\":%.1f,\"bootMs\":%.1f,\"totalMs\":%.1f}}\n",
		       id, b.t_net, b.t_vmm, b.t_boot, now_ms() - t0);
	else
		printf("%s running\n", id);
	json_decref(rec);
	json_decref(b.net);
	json_decref(b.vmm);
	close(lock);
	state_release(&st);
	return 0;
fail:
	json_decref(rec);
	json_decref(b.net);
	json_decref(b.vmm);
	if (lock >= 0)
		close(lock);
	return report(&e);
}

static int do_stop(const char *id, long long grace)
{
	struct verr e = { 0 };
	struct state st;
	int lock = -1;
	json_t *rec = open_vm(&st, id, &lock, &e);
	if (!rec)
		return report(&e);
	char was[16];
	snprintf(was, sizeof was, "%s", jstr(rec, "status"));
	int rc = 0;
	if (!strcmp(was, "stopped")) {
		/* idempotent */
	} else if (!strcmp(was, "creating")) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_VM_STATE", "wait for create to finish, or vmsan rm -f",
			 "%s is being created", id);
		rc = -1;
	} else {
		rc = stop_vm(&st, id, rec, grace, &e);
	}
	json_decref(rec);
	close(lock);
	state_release(&st);
	if (rc < 0)
		return report(&e);
	if (json_mode)
		printf("{\"ok\":true,\"id\":\"%s\",\"status\":\"stopped\",\"was\":\"%s\"}\n", id, was);
	else
		printf("%s stopped\n", id);
	return 0;
}

static int do_rm(const char *id, bool force, json_t *removed)
{
	struct verr e = { 0 };
	struct state st;
	int lock = -1;
	json_t *rec = open_vm(&st, id, &lock, &e);
	if (!rec)
		return report(&e);
	const char *status = jstr(rec, "status");
	if (strcmp(status, "stopped") && !force) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_VM_STATE", "stop it first (vmsan stop), or use rm -f",
			 "%s is %s", id, status);
		json_decref(rec);
		close(lock);
		state_release(&st);
		return report(&e);
	}
	remove_all(&st, id, rec);
	json_decref(rec);
	close(lock);
	state_release(&st);
	json_array_append_new(removed, json_string(id));
	return 0;
}

/* ---- gc ---------------------------------------------------------------------- */

/* What is left over of VM id, or NULL when nothing is; *rec gets its
 * record (status derived) when it has one. */
static const char *leftover(struct state *st, const char *id, json_t **rec)
{
	struct verr le = { 0 };
	*rec = state_load(st, id, &le);
	if (!*rec)
		return verr_take(&le, "ERR_VM_NOT_FOUND") ? "files with no record" : NULL;
	state_derive_status(*rec);
	const char *status = jstr(*rec, "status"), *was = jstr(*rec, "recordedStatus");
	if (!strcmp(status, "error"))
		return was && !strcmp(was, "creating") ? "a create that did not finish" : "a VM whose VMM is gone";
	if (!strcmp(status, "stopped")) {
		char ns[128];
		json_t *vmm = json_object_get(*rec, "process");
		snprintf(ns, sizeof ns, "/run/netns/vmsan-%s", id);
		if (access(ns, F_OK) == 0 ||
		    (jint(vmm, "pid", 0) > 1 && proc_start_time((long)jint(vmm, "pid", 0)) == jint(vmm, "startTime", -1)))
			return "a stopped VM with a VMM or network left";
	}
	return NULL;
}

static int do_gc(bool dry)
{
	struct verr e = { 0 };
	struct state st;
	if (state_open(&st, false, &e) < 0) {
		if (verr_take(&e, "ERR_STATE_DIR_MISSING")) {
			if (json_mode)
				puts("{\"ok\":true,\"found\":[]}");
			return 0;
		}
		return report(&e);
	}
	/* every id our state directory knows: records, VM dirs, tokens */
	json_t *ids = json_object(), *found = json_array();
	DIR *d = opendir(st.vms);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char id[80], why[128];
		if (strlen(de->d_name) >= sizeof id)
			continue;
		memcpy(id, de->d_name, strlen(de->d_name) + 1);
		char *dot = strchr(id, '.');
		if (dot)
			*dot = 0;
		if (!valid_vm_id(id, why, sizeof why) && !strncmp(id, "vm-", 3))
			json_object_set_new(ids, id, json_true());
	}
	if (d)
		closedir(d);
	const char *id;
	json_t *v;
	size_t i;
	json_object_foreach(ids, id, v) {
		json_t *rec = NULL;
		const char *what = leftover(&st, id, &rec);
		bool remove = !rec || !strcmp(jstr(rec, "recordedStatus") ?: "", "creating");
		if (what && !dry) {
			/* decided again under the lock: an operation that held it may
			 * have changed everything */
			struct verr le = { 0 };
			int lock = state_lock(&st, id, &le);
			json_decref(rec);
			rec = NULL;
			if ((what = leftover(&st, id, &rec))) {
				remove = !rec || !strcmp(jstr(rec, "recordedStatus") ?: "", "creating");
				if (remove)
					remove_all(&st, id, rec);
				else
					stop_vm(&st, id, rec, 0, &le);
			}
			if (lock >= 0)
				close(lock);
		}
		if (what)
			json_array_append_new(found, json_pack("{s:s, s:s, s:s}", "id", id, "found", what, "action",
							      remove ? "remove" : "stop"));
		json_decref(rec);
	}
	json_decref(ids);
	/* Snapshots a killed `snapshot create` left half made (hidden
	 * .<snapshot>.<pid>.tmp directories whose process is gone). */
	int sfd = snapshots_dir(&st, false, &(struct verr){ 0 });
	DIR *sd = sfd < 0 ? NULL : fdopendir(dup(sfd));
	while (sd && (de = readdir(sd))) {
		size_t n = strlen(de->d_name);
		const char *dot = n > 5 ? strrchr(de->d_name, '.') : NULL;
		if (de->d_name[0] != '.' || !dot || strcmp(dot, ".tmp"))
			continue;
		const char *p = dot - 1;
		while (p > de->d_name && isdigit((unsigned char)*p))
			p--;
		long pid = *p == '.' ? strtol(p + 1, NULL, 10) : 0;
		if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		json_array_append_new(found, json_pack("{s:n, s:o, s:s}", "id", "found",
						      json_sprintf("unfinished snapshot %s", de->d_name), "action",
						      "remove"));
		if (!dry)
			rm_tree_at(sfd, de->d_name);
	}
	if (sd)
		closedir(sd);
	if (sfd >= 0)
		close(sfd);
	state_release(&st);
	/* The network's own leftovers, whoever's they were: what no runtime
	 * record of vmsan-net accounts for (see vmsan-net(8), sweep). */
	struct verr ne = { 0 };
	json_t *sw = call("net", "sweep", json_pack("{s:b}", "dryRun", dry), true, &ne);
	if (sw) {
		json_array_foreach(json_object_get(sw, dry ? "found" : "removed"), i, v)
			json_array_append_new(found, json_pack("{s:n, s:s, s:s}", "id", "found", json_string_value(v),
							      "action", "remove"));
		json_decref(sw);
	} else {
		fprintf(stderr, "vmsan gc: the network's leftovers were not checked: %s\n", ne.message);
	}
	if (json_mode) {
		json_t *doc = json_pack("{s:b, s:b, s:o}", "ok", 1, "dryRun", dry, "found", found);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
	} else {
		json_array_foreach(found, i, v)
			printf("%s%s %s (%s)\n", dry ? "would " : "", jstr(v, "action"), jstr(v, "id") ?: "network",
			       jstr(v, "found"));
		if (!json_array_size(found))
			printf("nothing to collect\n");
		json_decref(found);
	}
	return 0;
}

/* ---- network: a running VM's egress policy, changed live -------------------- */

static const char network_usage[] =
	"usage: vmsan network ID --network-policy allow-all|deny-all|custom\n"
	"                     [--allowed-cidr CIDR,...] [--denied-cidr CIDR,...]\n"
	"                     [--allowed-domain NAME|*.NAME,...] [--strict-domains] [--json]\n\n"
	"Replaces a running VM's egress policy in one nftables batch: the new\n"
	"rules apply to every packet at once, established flows included.  The\n"
	"lists given replace the old ones (none given: none); addresses that only\n"
	"a removed domain allowed are unreachable at once.  DNS resolvers and\n"
	"published ports stay as they are.  Nothing changes when anything is\n"
	"invalid.\n";

static int do_network(int argc, char **argv)
{
	struct verr e = { 0 };
	const char *id = NULL, *policy = NULL;
	json_t *allowed = json_array(), *denied = json_array(), *domains = json_array();
	json_t *rec = NULL, *compiled = NULL, *nw = NULL;
	struct state st = { .vmsfd = -1 };
	int lock = -1, rc;
	bool strict = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			json_mode = true;
			continue;
		}
		if (!strcmp(a, "--strict-domains")) {
			strict = true;
			continue;
		}
		if (a[0] != '-') {
			if (id) {
				rc = usage_error("network takes one VM id");
				goto out;
			}
			id = a;
			continue;
		}
		if (!v) {
			rc = usage_error("unknown option or missing value: %s", a);
			goto out;
		}
		i++;
		if (!strcmp(a, "--network-policy"))
			policy = v;
		else if (!strcmp(a, "--allowed-cidr"))
			csv_append(allowed, v);
		else if (!strcmp(a, "--denied-cidr"))
			csv_append(denied, v);
		else if (!strcmp(a, "--allowed-domain"))
			csv_append(domains, v);
		else {
			rc = usage_error("unknown option %s", a);
			goto out;
		}
	}
	if (!id || !policy) {
		rc = usage_error(!id ? "give the VM's id" : "--network-policy is required");
		goto out;
	}
	if (normalize_domains(domains, &e) < 0)
		goto fail;
	if (strict_needs_domains(strict, domains, &e) < 0)
		goto fail;
	rec = open_running_vm(&st, id, &lock, &e);
	if (!rec)
		goto fail;
	json_t *old = json_object_get(rec, "network");
	nw = json_deep_copy(old);
	if (!strcmp(policy, "allow-all") &&
	    (json_array_size(allowed) || json_array_size(denied) || json_array_size(domains)))
		policy = "custom";      /* as create records it */
	json_object_set_new(nw, "policy", json_string(policy));
	json_object_set(nw, "allowedCidrs", allowed);
	json_object_set(nw, "deniedCidrs", denied);
	json_object_del(nw, "strictDomains");
	if (json_array_size(domains)) {
		json_object_set(nw, "allowedDomains", domains);
		if (strict)
			json_object_set_new(nw, "strictDomains", json_true());
		if (set_dns_ttls(&st, nw, &e) < 0)
			goto fail;
	} else {
		json_object_del(nw, "allowedDomains");
	}
	/* Compiled first (by vmsan-nftables, or with --no-netns by vmsan-net
	 * before it applies anything): a bad CIDR or policy name changes
	 * nothing. */
	if (!(compiled = rules_request(id, jstr(rec, "dir"), nw, &e)))
		goto fail;
	json_t *ap = call("net", "apply-rules", json_incref(compiled), true, &e);
	if (!ap)
		goto fail;
	json_decref(ap);
	if (store(&st, id, json_pack("{s:O}", "network", nw), &e) < 0) {
		/* The record still names the old policy: put its rules back. */
		json_t *back = rules_request(id, jstr(rec, "dir"), old, &(struct verr){ 0 });
		if (back)
			json_decref(call("net", "apply-rules", back, true, &(struct verr){ 0 }));
		goto fail;
	}
	if (json_mode) {
		json_t *doc = json_pack("{s:b, s:s, s:s, s:s, s:O, s:O, s:b, s:[]}", "ok", 1, "vmId", id,
					"previousPolicy", jstr(old, "policy"), "newPolicy", policy, "allowedCidrs", allowed,
					"deniedCidrs", denied, "strictDomains", strict, "allowedDomains");
		json_array_extend(json_object_get(doc, "allowedDomains"), domains);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
	} else {
		printf("Network policy updated for %s: %s -> %s\n", id, jstr(old, "policy"), policy);
	}
	rc = 0;
	goto out;
fail:
	rc = report(&e);
out:
	if (lock >= 0)
		close(lock);
	if (st.vmsfd >= 0)
		state_release(&st);
	json_decref(rec);
	json_decref(nw);
	json_decref(compiled);
	json_decref(allowed);
	json_decref(denied);
	json_decref(domains);
	return rc;
}

/* ---- snapshots ----------------------------------------------------------------- */

static const char snapshot_usage[] =
	"usage: vmsan snapshot create ID [--resume|--no-resume] [--json]\n"
	"       vmsan snapshot list|ls [--json]\n"
	"       vmsan snapshot delete|rm SNAPSHOT... [--json]\n\n"
	"create pauses a running VM, saves its device state, memory and disk into\n"
	"$VMSAN_DIR/snapshots/ID-MILLISECONDS and resumes it (--no-resume leaves it\n"
	"paused: vmsan resume).  vmsan create --snapshot SNAPSHOT restores one into a\n"
	"new VM (its own id, namespace, policy and agent token, the clock set), as\n"
	"many times as wanted.  QEMU VMs only, so far.\n";

static const char pause_usage[] =
	"usage: vmsan pause ID [--json]\n       vmsan resume ID [--json]\n\n"
	"Stops a running VM's vCPUs, or starts them again.\n";

/* $VMSAN_DIR/snapshots, made on demand (the user's alone), as a descriptor. */
static int snapshots_dir(const struct state *st, bool create, struct verr *e)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%.4000s/snapshots", st->dir);
	if (create && mkdir(p, 0700) < 0 && errno != EEXIST) {
		verr_sys(e, "ERR_STATE_WRITE", NULL, "cannot create %s", p);
		return -1;
	}
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (create || errno != ENOENT))
		verr_sys(e, "ERR_STATE", NULL, "cannot open %s", p);
	return fd;
}

static long long du_at(int dfd, const char *name)
{
	long long sum = 0;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	struct stat sb;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			sum += (long long)sb.st_blocks * 512;
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
	return sum;
}

static json_t *load_snapshot(int sfd, const char *sid, struct verr *e)
{
	char why[160], p[128];
	if (valid_snapshot_id(sid, why, sizeof why)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_SNAPSHOT_ID", "snapshot ids look like vm-1a2b3c4d-1764000000000",
			 "invalid snapshot id '%s': %s", sid, why);
		return NULL;
	}
	snprintf(p, sizeof p, "%s/snapshot.json", sid);
	int fd = sfd < 0 ? -1 : openat(sfd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	json_t *meta = fd < 0 ? NULL : json_loadfd(fd, 0, NULL);
	if (fd >= 0)
		close(fd);
	if (!json_is_object(meta)) {
		json_decref(meta);
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_NOT_FOUND", "run 'vmsan snapshot list'",
			 "snapshot not found: %s", sid);
		return NULL;
	}
	return meta;
}

static int snapshot_create(const char *id, bool resume)
{
	struct verr e = { 0 };
	struct state st = { .vmsfd = -1 };
	int lock = -1, sfd = -1;
	char sid[96], tmp[128], path[PATH_MAX], when[32], tok[300];
	json_t *rec = open_running_vm(&st, id, &lock, &e), *r = NULL;
	if (!rec)
		goto fail;
	if (json_is_true(json_object_get(json_object_get(rec, "network"), "noNetns"))) {
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_NOT_SUPPORTED", "snapshot VMs that have a namespace of their own",
			 "%s runs without a namespace (--no-netns): its guest's address is its slot's, so a "
			 "snapshot of it could not restore anywhere else", id);
		goto fail;
	}
	if ((sfd = snapshots_dir(&st, true, &e)) < 0 || read_token(&st, id, tok, sizeof tok) < 0) {
		if (!verr_isset(&e))
			verr_set(&e, VMSAN_EXIT_FAIL, "ERR_TOKEN", NULL, "%s has no agent token", id);
		goto fail;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(sid, sizeof sid, "%s-%lld", id, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	/* made under a name list ignores, renamed when whole */
	snprintf(tmp, sizeof tmp, ".%s.%d.tmp", sid, (int)getpid());
	if (mkdirat(sfd, tmp, 0700) < 0) {
		verr_sys(&e, "ERR_STATE_WRITE", NULL, "cannot create a snapshot directory");
		goto fail;
	}
	snprintf(path, sizeof path, "%.3800s/snapshots/%s", st.dir, tmp);
	say("%s: pausing, saving state, memory and disk", id);
	json_t *sreq = vmm_ref(id);
	json_object_update_new(sreq, json_pack("{s:s, s:s, s:b}", "vmDisk", jstr(rec, "disk"), "dir", path, "resume",
					       resume));
	r = call("fc", "snapshot", sreq, true, &e);
	if (!r)
		goto fail_tmp;
	utc_iso(now.tv_sec, when);
	json_t *meta = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:O, s:O, s:I, s:O, s:O}", "id", sid, "vmId", id,
				 "createdAt", when, "vmm", jstr(rec, "vmm"), "memSizeMib", jint(rec, "memSizeMib", 256), "vcpuCount",
				 jint(rec, "vcpuCount", 1), "kernel", jstr(rec, "kernel"), "image",
				 json_object_get(rec, "image"), "network", json_object_get(rec, "network"), "diskSize",
				 jint(rec, "diskSize", 0), "sizes", r, "accel", json_object_get(rec, "accel") ?: json_null());
	if (jstr(rec, "runtime"))
		json_object_set_new(meta, "runtime", json_string(jstr(rec, "runtime")));
	/* where the token is on the disk: a restore writes its own there */
	json_object_set_new(meta, "tokenOffset", json_integer(jint(rec, "tokenOffset", 0)));
	char mp[160];
	snprintf(mp, sizeof mp, "%s/snapshot.json", tmp);
	int mfd = openat(sfd, mp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	snprintf(mp, sizeof mp, "%s/token", tmp);
	int tfd = openat(sfd, mp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	bool ok = mfd >= 0 && tfd >= 0 && json_dumpfd(meta, mfd, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 &&
		  write(tfd, tok, strlen(tok)) == (ssize_t)strlen(tok) && fsync(mfd) == 0 && fsync(tfd) == 0;
	explicit_bzero(tok, sizeof tok);
	if (mfd >= 0)
		close(mfd);
	if (tfd >= 0)
		close(tfd);
	json_decref(meta);
	if (!ok || renameat(sfd, tmp, sfd, sid) < 0) {
		verr_sys(&e, "ERR_STATE_WRITE", "check free space on the state directory's file system",
			 "cannot write the snapshot");
		goto fail_tmp;
	}
	fsync(sfd);
	if (!resume)
		store(&st, id, json_pack("{s:b}", "paused", 1), &(struct verr){ 0 });
	snprintf(path, sizeof path, "%.3800s/snapshots/%s", st.dir, sid);
	if (json_mode) {
		json_t *doc = json_pack("{s:b, s:s, s:s, s:s, s:s+, s:O, s:b}", "ok", 1, "snapshotId", sid, "vmId", id,
					"snapshotPath", path, "memPath", path, "/memory", "sizes", r, "resumed", resume);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
	} else {
		printf("Snapshot created: %s (%s paused %.0f ms)\n", sid, id,
		       json_real_value(json_object_get(r, "pausedMs")));
	}
	json_decref(r);
	json_decref(rec);
	close(sfd);
	close(lock);
	state_release(&st);
	return 0;
fail_tmp:
	rm_tree_at(sfd, tmp);
fail:
	json_decref(r);
	json_decref(rec);
	if (sfd >= 0)
		close(sfd);
	if (lock >= 0)
		close(lock);
	state_release(&st);
	return report(&e);
}

static int snapshot_list(void)
{
	struct verr e = { 0 };
	struct state st;
	json_t *all = json_array();
	if (state_open(&st, false, &e) == 0) {
		int sfd = snapshots_dir(&st, false, &e);
		DIR *d = sfd < 0 ? NULL : fdopendir(dup(sfd));
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			struct verr ignore = { 0 };
			json_t *m = load_snapshot(sfd, de->d_name, &ignore);
			if (!m)
				continue;
			json_object_set_new(m, "diskUsageBytes", json_integer(du_at(sfd, de->d_name)));
			json_array_append_new(all, m);
		}
		if (d)
			closedir(d);
		if (sfd >= 0)
			close(sfd);
		state_release(&st);
	} else if (!verr_take(&e, "ERR_STATE_DIR_MISSING")) {
		json_decref(all);
		return report(&e);
	}
	size_t i;
	json_t *m;
	if (json_mode) {
		json_dumpf(all, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (!json_array_size(all)) {
		printf("no snapshots\n");
	} else {
		printf("%-34s %-12s %-22s %8s %10s\n", "SNAPSHOT", "VM", "CREATED", "MEMORY", "DISK USE");
		json_array_foreach(all, i, m)
			printf("%-34s %-12s %-22s %6lldMi %8.1fMi\n", jstr(m, "id"), jstr(m, "vmId"), jstr(m, "createdAt"),
			       jint(m, "memSizeMib", 0), (double)jint(m, "diskUsageBytes", 0) / 1048576.0);
	}
	json_decref(all);
	return 0;
}

static int snapshot_delete(json_t *ids)
{
	struct verr e = { 0 };
	struct state st;
	size_t i;
	json_t *v, *gone = json_array();
	int rc = 0, sfd = -1;
	if (state_open(&st, false, &e) == 0)
		sfd = snapshots_dir(&st, false, &e);
	verr_take(&e, "ERR_STATE_DIR_MISSING");
	json_array_foreach(ids, i, v) {
		const char *sid = json_string_value(v);
		json_t *m = load_snapshot(sfd, sid, &e);
		if (!m) {
			rc = report(&e);
			memset(&e, 0, sizeof e);
			continue;
		}
		json_decref(m);
		/* a restore holds it (shared lock) while it copies from it */
		int dfd = openat(sfd, sid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0 || flock(dfd, LOCK_EX | LOCK_NB) < 0) {
			verr_set(&e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_IN_USE", "try again once the restore is done",
				 "snapshot %s is being restored from", sid);
			rc = report(&e);
			memset(&e, 0, sizeof e);
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		if (rm_tree_at(sfd, sid) < 0) {
			verr_sys(&e, "ERR_STATE_WRITE", NULL, "cannot remove all of snapshot %s", sid);
			rc = report(&e);
			memset(&e, 0, sizeof e);
		} else {
			json_array_append_new(gone, json_string(sid));
		}
		close(dfd);
	}
	if (sfd >= 0) {
		close(sfd);
		state_release(&st);
	}
	if (!rc) {
		if (json_mode) {
			json_t *doc = json_pack("{s:b, s:O}", "ok", 1, "deleted", gone);
			json_dumpf(doc, stdout, JSON_COMPACT);
			putchar('\n');
			json_decref(doc);
		} else {
			json_array_foreach(gone, i, v)
				printf("Snapshot deleted: %s\n", json_string_value(v));
		}
	}
	json_decref(gone);
	return rc;
}

static int do_snapshot(int argc, char **argv)
{
	const char *sub = NULL;
	bool resume = true;
	json_t *args = json_array();
	int rc;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--json"))
			json_mode = true;
		else if (!strcmp(a, "--resume"))
			resume = true;
		else if (!strcmp(a, "--no-resume"))
			resume = false;
		else if (a[0] == '-') {
			json_decref(args);
			return usage_error("unknown option %s", a);
		} else if (!sub)
			sub = a;
		else
			json_array_append_new(args, json_string(a));
	}
	if (sub && !strcmp(sub, "create"))
		rc = json_array_size(args) == 1 ? snapshot_create(json_string_value(json_array_get(args, 0)), resume)
					      : usage_error("snapshot create takes one VM id");
	else if (sub && (!strcmp(sub, "list") || !strcmp(sub, "ls")))
		rc = json_array_size(args) ? usage_error("snapshot list takes no arguments") : snapshot_list();
	else if (sub && (!strcmp(sub, "delete") || !strcmp(sub, "rm")))
		rc = json_array_size(args) ? snapshot_delete(args) : usage_error("give the snapshots to delete");
	else
		rc = usage_error(sub ? "no such snapshot command '%s' (create, list, delete)" : "give a snapshot command%s",
				 sub ? sub : " (create, list, delete)");
	json_decref(args);
	return rc;
}

static int do_pause(const char *id, bool pause)
{
	struct verr e = { 0 };
	struct state st = { .vmsfd = -1 };
	int lock = -1;
	json_t *rec = open_running_vm(&st, id, &lock, &e), *r = NULL;
	if (rec) {
		r = call("fc", pause ? "pause" : "resume", vmm_ref(id), true, &e);
		if (r)
			store(&st, id, json_pack("{s:b}", "paused", pause), &e);
	}
	json_decref(rec);
	if (lock >= 0)
		close(lock);
	state_release(&st);
	if (!r)
		return report(&e);
	json_decref(r);
	if (json_mode)
		printf("{\"ok\":true,\"id\":\"%s\",\"paused\":%s}\n", id, pause ? "true" : "false");
	else
		printf("%s %s\n", id, pause ? "paused" : "resumed");
	return 0;
}

/* ---- run ---------------------------------------------------------------------- */

static int do_run(int argc, char **argv, int i)
{
	/* vmsan run [--rm] [create options] [IMAGE|RUNTIME] -- CMD [ARG...] */
	bool rm = false;
	int dash = -1;
	for (int k = i; k < argc; k++)
		if (!strcmp(argv[k], "--")) {
			dash = k;
			break;
		}
	if (dash < 0 || dash == argc - 1)
		return usage_error("vmsan run needs a command after '--'");
	const char **cargv = calloc((size_t)argc + 4, sizeof *cargv);
	int cn = 0;
	const char *what = NULL;
	/* A word that is not the value of the option before it names the
	 * image: options take a value unless written --opt=value or one of
	 * the flags. */
	static const char *const flags[] = { "--rm", "--pull", "--json", "--verbose" };
	for (int k = i; k < dash; k++) {
		bool prev_takes_value = k > i && argv[k - 1][0] == '-' && !strchr(argv[k - 1], '=');
		for (size_t f = 0; prev_takes_value && f < sizeof flags / sizeof *flags; f++)
			prev_takes_value = strcmp(argv[k - 1], flags[f]) != 0;
		if (!strcmp(argv[k], "--rm"))
			rm = true;
		else if (argv[k][0] != '-' && !prev_takes_value)
			what = argv[k];
		else
			cargv[cn++] = argv[k];
	}
	if (what) {
		static const char *const rts[] = { "base", "node22", "node24", "python3.13" };
		bool rt = false;
		for (size_t k = 0; k < 4; k++)
			rt = rt || !strcmp(what, rts[k]);
		cargv[cn++] = rt ? "--runtime" : "--from-image";
		cargv[cn++] = what;
	}
	bool js = json_mode;
	json_mode = false;
	json_t *rec = NULL;
	char id[80];
	cmd = "run";
	int rc = do_create(cn, (char **)cargv, 0, &rec, id);
	free(cargv);
	json_mode = js;
	if (rc)
		return rc;
	json_decref(rec);
	/* the command, through vmsan-agentctl, whose exit status is ours */
	char ctl[PATH_MAX + 32];
	snprintf(ctl, sizeof ctl, "%s/vmsan-agentctl", libexec);
	const char **xargv = calloc((size_t)(argc - dash) + 8, sizeof *xargv);
	int xn = 0;
	xargv[xn++] = ctl;
	if (js)
		xargv[xn++] = "--json";
	xargv[xn++] = "--vm";
	xargv[xn++] = id;
	xargv[xn++] = "exec";
	xargv[xn++] = "--";
	for (int k = dash + 1; k < argc; k++)
		xargv[xn++] = argv[k];
	pid_t pid;
	int st = 0;
	signal(SIGINT, SIG_IGN);   /* the command gets it, through agentctl */
	if (posix_spawn(&pid, ctl, NULL, NULL, (char *const *)xargv, environ) == 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	else
		st = 127 << 8;
	free(xargv);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (rm) {
		json_t *removed = json_array();
		bool j = json_mode;
		json_mode = false;
		do_rm(id, true, removed);
		json_mode = j;
		json_decref(removed);
	} else if (!js) {
		fprintf(stderr, "vmsan run: %s is still running (vmsan rm -f %s)\n", id, id);
	}
	return code;
}

/* ---- main ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (!strncmp(base, "vmsan-", 6))
		base += 6;
	cmd = base;
	vmsan_prog = "vmsan";
	main_pid = getpid();
	atexit(reap_all);
	json_mode = getenv("VMSAN_JSON") && !strcmp(getenv("VMSAN_JSON"), "1");
	verbose = getenv("VMSAN_VERBOSE") && !strcmp(getenv("VMSAN_VERBOSE"), "1");
	const char *le = getenv("VMSAN_LIBEXECDIR");
	if (le && *le) {
		snprintf(libexec, sizeof libexec, "%s", le);
	} else {
		ssize_t n = readlink("/proc/self/exe", libexec, sizeof libexec - 1);
		libexec[n > 0 ? n : 0] = 0;
		char *s = strrchr(libexec, '/');
		if (s)
			*s = 0;
	}
	static const struct { const char *name, *summary, *usage, *complete; } cmds[] = {
		{ "create", "create a VM and wait until its agent answers", create_usage,
		  "--runtime --from-image --vcpus --memory --disk-size --network-policy --allowed-cidr "
		  "--denied-cidr --allowed-domain --strict-domains --dns --publish-port --bandwidth --no-netns --snapshot "
		  "--timeout --vmm --accel --kernel --pull --project "
		  "--json --verbose" },
		{ "start", "start a stopped VM on the same disk", start_usage, "--json --verbose" },
		{ "stop", "power a VM off (its disk stays) and tear its network down", stop_usage,
		  "--grace --json" },
		{ "rm", "remove VMs (-f: even running ones)", rm_usage, "-f --force --json" },
		{ "remove", "remove VMs (same as rm)", rm_usage, "-f --force --json" },
		{ "run", "create a VM, run one command in it, and (--rm) remove it",
		  "usage: vmsan run [--rm] [create options] [RUNTIME|IMAGE] -- CMD [ARG...]\n\n"
		  "Creates a VM (a runtime name or any image reference), runs CMD in it\n"
		  "through its agent and exits with CMD's status; --rm removes the VM after.\n",
		  "--rm --json --verbose" },
		{ "gc", "remove what interrupted creates and crashed VMs left", gc_usage, "--dry-run --json" },
		{ "network", "change a running VM's egress policy, live", network_usage,
		  "--network-policy --allowed-cidr --denied-cidr --allowed-domain --strict-domains --json" },
		{ "snapshot", "save a running VM (create), list and delete snapshots", snapshot_usage,
		  "create list ls delete rm --resume --no-resume --json" },
		{ "pause", "stop a running VM's vCPUs", pause_usage, "--json" },
		{ "resume", "start a paused VM's vCPUs again", pause_usage, "--json" },
	};
	size_t which = 0;
	for (; which < sizeof cmds / sizeof *cmds; which++)
		if (!strcmp(cmds[which].name, cmd))
			break;
	if (which == sizeof cmds / sizeof *cmds) {
		fprintf(stderr, "vmsan-create: run me as vmsan-create, -start, -stop, -rm, -run, -gc, -network, -snapshot, -pause or -resume\n");
		return VMSAN_EXIT_USAGE;
	}
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(cmds[which].usage, stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--summary")) {
			puts(cmds[which].summary);
			return 0;
		}
		if (!strcmp(argv[i], "--complete")) {
			for (const char *p = cmds[which].complete; *p; p++)
				putchar(*p == ' ' ? '\n' : *p);
			putchar('\n');
			return 0;
		}
	}
	if (!strcmp(cmd, "create"))
		return do_create(argc, argv, 1, NULL, NULL);
	if (!strcmp(cmd, "run"))
		return do_run(argc, argv, 1);
	if (!strcmp(cmd, "network"))
		return do_network(argc, argv);
	if (!strcmp(cmd, "snapshot"))
		return do_snapshot(argc, argv);
	if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
		const char *pid = NULL;
		for (int i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "--json"))
				json_mode = true;
			else if (argv[i][0] == '-' || pid)
				return usage_error("usage: vmsan %s ID [--json]", cmd);
			else
				pid = argv[i];
		}
		return pid ? do_pause(pid, !strcmp(cmd, "pause")) : usage_error("give the VM's id");
	}
	/* ID... with a few flags */
	bool force = false, dry = false;
	long long grace = 10;
	json_t *idl = json_array();
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--json"))
			json_mode = true;
		else if (!strcmp(a, "--verbose"))
			verbose = true;
		else if ((!strcmp(a, "-f") || !strcmp(a, "--force")) && (!strcmp(cmd, "rm") || !strcmp(cmd, "remove")))
			force = true;
		else if (!strcmp(a, "--dry-run") && !strcmp(cmd, "gc"))
			dry = true;
		else if (!strcmp(a, "--grace") && !strcmp(cmd, "stop") && i + 1 < argc) {
			struct verr e = { 0 };
			if (num_opt("--grace", argv[++i], 0, 3600, &grace, &e))
				return report(&e);
		} else if (a[0] == '-') {
			json_decref(idl);
			return usage_error("unknown option %s", a);
		} else
			json_array_append_new(idl, json_string(a));
	}
	if (!strcmp(cmd, "gc")) {
		json_decref(idl);
		return !json_array_size(idl) ? do_gc(dry) : usage_error("gc takes no VM ids");
	}
	if (!json_array_size(idl)) {
		json_decref(idl);
		return usage_error("no VM id given");
	}
	int rc = 0;
	size_t i;
	json_t *v;
	if (!strcmp(cmd, "start")) {
		if (json_array_size(idl) != 1) {
			json_decref(idl);
			return usage_error("start takes one VM id");
		}
		rc = do_start(json_string_value(json_array_get(idl, 0)));
	} else if (!strcmp(cmd, "stop")) {
		json_array_foreach(idl, i, v) {
			int r = do_stop(json_string_value(v), grace);
			rc = rc ? rc : r;
		}
	} else {
		json_t *removed = json_array();
		bool js = json_mode;
		json_array_foreach(idl, i, v) {
			int r = do_rm(json_string_value(v), force, removed);
			rc = rc ? rc : r;
		}
		if (js && !rc) {
			json_t *doc = json_pack("{s:b, s:o}", "ok", 1, "removed", removed);
			json_dumpf(doc, stdout, JSON_COMPACT);
			putchar('\n');
			json_decref(doc);
		} else {
			if (!js)
				json_array_foreach(removed, i, v)
					printf("%s removed\n", json_string_value(v));
			json_decref(removed);
		}
	}
	json_decref(idl);
	return rc;
}
