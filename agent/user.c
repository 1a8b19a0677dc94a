/* Users from the image's /etc/passwd and /etc/group (no NSS: the agent is
 * static and the image may be musl, glibc or busybox), the child
 * environment, PATH search and signal names. */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr("._-", s[i])) ||
		    (i == 0 && s[i] == '-'))
			return 0;
	return 1;
}

static int all_digits(const char *s, size_t n)
{
	if (!n || n > 10)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Split a colon-separated line into at most max fields (in place). */
static int split(char *line, char **f, int max)
{
	int n = 0;
	f[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == ':') {
			*p = 0;
			f[n++] = p + 1;
		}
	return n;
}

static void add_group(struct user *u, gid_t g)
{
	for (int i = 0; i < u->ngroups; i++)
		if (u->groups[i] == g)
			return;
	if (u->ngroups < (int)(sizeof u->groups / sizeof u->groups[0]))
		u->groups[u->ngroups++] = g;
}

static void load_groups(struct user *u)
{
	add_group(u, u->gid);
	FILE *f = fopen("/etc/group", "re");
	if (!f)
		return;
	char line[4096];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		char *fl[4];
		if (split(line, fl, 4) < 4 || !all_digits(fl[2], strlen(fl[2])))
			continue;
		for (char *m = strtok(fl[3], ","); m; m = strtok(NULL, ","))
			if (!strcmp(m, u->name))
				add_group(u, (gid_t)strtoul(fl[2], NULL, 10));
	}
	fclose(f);
}

int user_resolve(const char *spec, struct user *u, char *why, size_t n)
{
	memset(u, 0, sizeof *u);
	if (!spec || !*spec)
		spec = cfg.default_user[0] ? cfg.default_user : "root";
	const char *colon = strchr(spec, ':');
	bool numeric = all_digits(spec, colon ? (size_t)(colon - spec) : strlen(spec));
	long long want_uid = numeric ? strtoll(spec, NULL, 10) : -1;
	long long want_gid = -1;
	if (colon) {
		if (!numeric || !all_digits(colon + 1, strlen(colon + 1))) {
			snprintf(why, n, "user '%s': use a name, a uid or uid:gid", spec);
			return -1;
		}
		want_gid = strtoll(colon + 1, NULL, 10);
	}
	if (!numeric && !valid_name(spec)) {
		snprintf(why, n, "user '%.40s' is not a valid user name", spec);
		return -1;
	}
	FILE *f = fopen("/etc/passwd", "re");
	char line[4096];
	bool found = false;
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		char *fl[7];
		if (split(line, fl, 7) < 7 || !all_digits(fl[2], strlen(fl[2])) || !all_digits(fl[3], strlen(fl[3])))
			continue;
		if (numeric ? strtoll(fl[2], NULL, 10) != want_uid : strcmp(fl[0], spec) != 0)
			continue;
		u->uid = (uid_t)strtoul(fl[2], NULL, 10);
		u->gid = (gid_t)strtoul(fl[3], NULL, 10);
		snprintf(u->name, sizeof u->name, "%s", fl[0]);
		snprintf(u->home, sizeof u->home, "%s", fl[5][0] ? fl[5] : "/");
		snprintf(u->shell, sizeof u->shell, "%s", fl[6]);
		found = true;
		break;
	}
	if (f)
		fclose(f);
	if (!found) {
		if (!numeric) {
			snprintf(why, n, "unknown user '%s' (not in the guest's /etc/passwd)", spec);
			return -1;
		}
		/* A bare uid with no passwd entry works, as in docker exec -u. */
		u->uid = (uid_t)want_uid;
		u->gid = (gid_t)(want_gid >= 0 ? want_gid : want_uid);
		snprintf(u->name, sizeof u->name, "%lld", want_uid);
		snprintf(u->home, sizeof u->home, "/");
	}
	if (want_gid >= 0)
		u->gid = (gid_t)want_gid;
	if (found)
		load_groups(u);
	else
		add_group(u, u->gid);
	return 0;
}

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const char *env_get(char *const *env, const char *key)
{
	size_t kl = strlen(key);
	for (; env && *env; env++)
		if (!strncmp(*env, key, kl) && (*env)[kl] == '=')
			return *env + kl + 1;
	return NULL;
}

struct envb {
	char **v;
	size_t n, cap;
};

static int env_set(struct envb *e, const char *key, size_t kl, const char *val)
{
	char *s = malloc(kl + strlen(val) + 2);
	if (!s)
		return -1;
	memcpy(s, key, kl);
	s[kl] = '=';
	strcpy(s + kl + 1, val);
	for (size_t i = 0; i < e->n; i++)
		if (!strncmp(e->v[i], key, kl) && e->v[i][kl] == '=') {
			free(e->v[i]);
			e->v[i] = s;
			return 0;
		}
	if (e->n + 2 > e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 32;
		char **nv = realloc(e->v, cap * sizeof *nv);
		if (!nv) {
			free(s);
			return -1;
		}
		e->v = nv;
		e->cap = cap;
	}
	e->v[e->n++] = s;
	e->v[e->n] = NULL;
	return 0;
}

void env_free(char **env)
{
	for (char **p = env; p && *p; p++)
		free(*p);
	free(env);
}

char **env_build(const struct user *u, const struct jv *reqenv, const char *term, char *why, size_t n)
{
	struct envb e = { 0 };
	int bad = env_set(&e, "PATH", 4, DEFAULT_PATH);
	/* The image's environment (config Env), written by vmsan-init. */
	FILE *f = fopen(cfg.env_file, "re");
	char line[8192];
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		char *eq = strchr(line, '=');
		if (eq && eq != line)
			bad |= env_set(&e, line, (size_t)(eq - line), eq + 1);
	}
	if (f)
		fclose(f);
	bad |= env_set(&e, "HOME", 4, u->home);
	bad |= env_set(&e, "USER", 4, u->name);
	bad |= env_set(&e, "LOGNAME", 7, u->name);
	if (u->shell[0])
		bad |= env_set(&e, "SHELL", 5, u->shell);
	if (term)
		bad |= env_set(&e, "TERM", 4, term);
	if (reqenv) {
		if (reqenv->t != J_OBJ) {
			snprintf(why, n, "env must be an object of strings");
			env_free(e.v);
			return NULL;
		}
		for (struct jv *c = reqenv->child; c; c = c->next) {
			if (c->t != J_STR || !c->key[0] || strchr(c->key, '=')) {
				snprintf(why, n, "env: '%.60s' must be a name without '=' and a string value", c->key);
				env_free(e.v);
				return NULL;
			}
			bad |= env_set(&e, c->key, strlen(c->key), c->s);
		}
	}
	if (bad || !e.v) {
		snprintf(why, n, "out of memory");
		env_free(e.v);
		return NULL;
	}
	return e.v;
}

int path_search(const char *cmd, const char *path, char *out, size_t outlen)
{
	if (!*cmd) {
		errno = ENOENT;
		return -1;
	}
	if (strchr(cmd, '/')) {
		if ((size_t)snprintf(out, outlen, "%s", cmd) >= outlen) {
			errno = ENAMETOOLONG;
			return -1;
		}
		return 0;
	}
	int seen_eacces = 0;
	const char *p = path ? path : DEFAULT_PATH;
	while (p) {
		const char *colon = strchr(p, ':');
		size_t dl = colon ? (size_t)(colon - p) : strlen(p);
		if ((size_t)snprintf(out, outlen, "%.*s%s%s", (int)dl, p, dl ? "/" : "", cmd) < outlen) {
			struct stat sb;
			if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode)) {
				if (sb.st_mode & 0111)
					return 0;
				seen_eacces = 1;
			}
		}
		p = colon ? colon + 1 : NULL;
	}
	errno = seen_eacces ? EACCES : ENOENT;
	return -1;
}

static const struct {
	int sig;
	const char *name;
} sigs[] = {
	{ SIGHUP, "HUP" },   { SIGINT, "INT" },	    { SIGQUIT, "QUIT" }, { SIGILL, "ILL" },   { SIGTRAP, "TRAP" },
	{ SIGABRT, "ABRT" }, { SIGBUS, "BUS" },	    { SIGFPE, "FPE" },	 { SIGKILL, "KILL" }, { SIGUSR1, "USR1" },
	{ SIGSEGV, "SEGV" }, { SIGUSR2, "USR2" },   { SIGPIPE, "PIPE" }, { SIGALRM, "ALRM" }, { SIGTERM, "TERM" },
	{ SIGCHLD, "CHLD" }, { SIGCONT, "CONT" },   { SIGSTOP, "STOP" }, { SIGTSTP, "TSTP" }, { SIGTTIN, "TTIN" },
	{ SIGTTOU, "TTOU" }, { SIGURG, "URG" },	    { SIGXCPU, "XCPU" }, { SIGXFSZ, "XFSZ" }, { SIGVTALRM, "VTALRM" },
	{ SIGPROF, "PROF" }, { SIGWINCH, "WINCH" }, { SIGSYS, "SYS" },
};

const char *signal_name(int sig)
{
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (sigs[i].sig == sig)
			return sigs[i].name;
	return NULL;
}

/* "TERM", "SIGTERM", "sigterm" or a number 1..64. */
int parse_signal(const struct jv *v, int *sig)
{
	if (!v || v->t == J_NULL) {
		*sig = SIGKILL;
		return 0;
	}
	if (v->t == J_NUM) {
		if (v->num < 1 || v->num > 64 || v->num != (double)(int)v->num)
			return -1;
		*sig = (int)v->num;
		return 0;
	}
	if (v->t != J_STR)
		return -1;
	const char *s = v->s;
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (!strcasecmp(s, sigs[i].name)) {
			*sig = sigs[i].sig;
			return 0;
		}
	return -1;
}
