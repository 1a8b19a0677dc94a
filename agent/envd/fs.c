/* filesystem.Filesystem's unary calls (Stat, ListDir, MakeDir, Move,
 * Remove) and what the envd side shares about files: a request's path
 * resolved as envd resolves it, an EntryInfo as JSON, mkdir -p, and the
 * request user's credentials for every file access: the calling thread's
 * fsuid, fsgid and groups (per thread in Linux, as the raw syscalls set
 * them), so a call reaches what its user may reach and what it makes is
 * the user's. */
#define _GNU_SOURCE
#include "envd.h"
#include "../../proto/connect.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Entries one ListDir answers at most (each is about 300 bytes). */
#define LIST_MAX 50000

static _Thread_local bool switched;
static _Thread_local gid_t agent_groups[64];
static _Thread_local int agent_ngroups;

int as_user(const struct user *u)
{
	if (u->uid == geteuid())
		return 0; /* root: the agent's own rights */
	agent_ngroups = getgroups(64, agent_groups);
	if (agent_ngroups < 0)
		agent_ngroups = 0;
	if (syscall(SYS_setgroups, u->ngroups, u->groups) < 0)
		return -1;
	setfsgid(u->gid);
	setfsuid(u->uid);
	switched = true;
	return 0;
}

void as_agent(void)
{
	if (!switched)
		return;
	setfsuid(geteuid());
	setfsgid(getegid());
	syscall(SYS_setgroups, agent_ngroups, agent_groups);
	switched = false;
}

/* ---- paths ------------------------------------------------------------ */

/* Lexically clean an absolute path in place: no "//", ".", "..". */
static void clean(char *p)
{
	char *w = p;
	const char *r = p;
	while (*r) {
		while (*r == '/')
			r++;
		const char *seg = r;
		while (*r && *r != '/')
			r++;
		size_t n = (size_t)(r - seg);
		if (!n || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			while (w > p && *--w != '/')
				;
			continue;
		}
		*w++ = '/';
		memmove(w, seg, n);
		w += n;
	}
	if (w == p)
		*w++ = '/';
	*w = 0;
}

int path_resolve(const char *in, const struct user *u, char *out, size_t outlen, char *why, size_t wl)
{
	const char *home = u->home[0] ? u->home : "/";
	int n;
	if (in[0] == '~' && in[1] && in[1] != '/') {
		snprintf(why, wl, "cannot expand user-specific home dir: '%.200s'", in);
		return -1;
	}
	if (in[0] == '/')
		n = snprintf(out, outlen, "%s", in);
	else
		n = snprintf(out, outlen, "%s/%s", home, in[0] == '~' ? in + 1 : in);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(why, wl, "path too long");
		return -1;
	}
	/* envd keeps an absolute path as given and cleans the others */
	if (in[0] != '/')
		clean(out);
	return 0;
}

int mkdirs(const char *path)
{
	char tmp[4200];
	struct stat sb;
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char ch = *p;
		*p = 0;
		/* what is there already is not made again (the user may not
		 * write in its parent) */
		if (stat(tmp, &sb) < 0 && (errno != ENOENT || (mkdir(tmp, 0755) < 0 && errno != EEXIST)))
			return -1;
		if ((stat(tmp, &sb) < 0 || !S_ISDIR(sb.st_mode)))
			return errno = ENOTDIR, -1;
		*p = ch;
		if (!ch)
			return 0;
	}
}

/* ---- entries ---------------------------------------------------------- */

/* The name of uid (or gid) in passwd (or group), else the number. */
static void id_name(const char *file, unsigned id, char *out, size_t n)
{
	char line[1024];
	FILE *f = fopen(file, "re");
	snprintf(out, n, "%u", id);
	while (f && fgets(line, sizeof line, f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || strtoul(c2 + 1, NULL, 10) != id || c2[1] < '0' || c2[1] > '9')
			continue;
		*c1 = 0;
		snprintf(out, n, "%.63s", line);
		break;
	}
	if (f)
		fclose(f);
}

/* Go's os.FileMode.String(), which envd answers with: "-rw-r--r--",
 * "drwxr-xr-x", "Lrwxrwxrwx", "urwxr-xr-x" (setuid), "Dcrw-rw-rw-". */
static void mode_string(mode_t m, char out[24])
{
	static const char rwx[] = "rwxrwxrwx";
	int o = 0;
	if (S_ISDIR(m))
		out[o++] = 'd';
	if (S_ISLNK(m))
		out[o++] = 'L';
	if (S_ISBLK(m) || S_ISCHR(m))
		out[o++] = 'D';
	if (S_ISFIFO(m))
		out[o++] = 'p';
	if (S_ISSOCK(m))
		out[o++] = 'S';
	if (m & S_ISUID)
		out[o++] = 'u';
	if (m & S_ISGID)
		out[o++] = 'g';
	if (S_ISCHR(m))
		out[o++] = 'c';
	if (m & S_ISVTX)
		out[o++] = 't';
	if (!o)
		out[o++] = '-';
	for (int i = 0; i < 9; i++)
		out[o++] = m & (1u << (8 - i)) ? rwx[i] : '-';
	out[o] = 0;
}

static const char *file_type(mode_t m)
{
	return S_ISREG(m)   ? "FILE_TYPE_FILE"
	       : S_ISDIR(m) ? "FILE_TYPE_DIRECTORY"
	       : S_ISLNK(m) ? "FILE_TYPE_SYMLINK"
			    : "FILE_TYPE_UNSPECIFIED";
}

/* The user.e2b.* extended attributes (the metadata of an upload). */
static void put_metadata(struct buf *b, const char *path)
{
	char names[4096], val[4096];
	ssize_t n = listxattr(path, names, sizeof names);
	bool first = true;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		if (strncmp(names + i, "user.e2b.", 9))
			continue;
		ssize_t vl = getxattr(path, names + i, val, sizeof val);
		if (vl < 0)
			continue;
		buf_puts(b, first ? ",\"metadata\":{" : ",");
		pj_put_str(b, names + i + 9, strlen(names + i + 9));
		buf_puts(b, ":");
		pj_put_str(b, val, (size_t)vl);
		first = false;
	}
	if (!first)
		buf_puts(b, "}");
}

static int entry_json_as(struct buf *b, const char *path, const char *shown)
{
	struct stat ls, ts;
	char perms[24], owner[64], group[64], target[4200];
	const char *base;
	size_t bl;
	if (lstat(path, &ls) < 0)
		return -1;
	/* a link's type and mode are its target's (when it has one) */
	bool link = S_ISLNK(ls.st_mode), have_target = false;
	if (link) {
		have_target = realpath(path, target) != NULL;
		if (!have_target)
			snprintf(target, sizeof target, "%s", path);
	}
	bool target_ok = link && have_target && stat(target, &ts) == 0;
	mode_string(ls.st_mode, perms);
	id_name("/etc/passwd", ls.st_uid, owner, sizeof owner);
	id_name("/etc/group", ls.st_gid, group, sizeof group);
	/* the name is the last element, as filepath.Base has it */
	bl = strlen(shown);
	while (bl > 1 && shown[bl - 1] == '/')
		bl--;
	base = shown + bl;
	while (base > shown && base[-1] != '/' && bl > 1)
		base--;
	buf_puts(b, "{\"name\":");
	pj_put_str(b, base, (size_t)(shown + bl - base));
	buf_printf(b, ",\"type\":\"%s\",\"path\":",
		   link ? (target_ok ? file_type(ts.st_mode) : "FILE_TYPE_UNSPECIFIED") : file_type(ls.st_mode));
	pj_put_str(b, shown, strlen(shown));
	buf_printf(b, ",\"size\":\"%lld\",\"mode\":%u,\"permissions\":\"%s\",\"owner\":", (long long)ls.st_size,
		   (unsigned)((link ? (target_ok ? ts.st_mode : 0) : ls.st_mode) & 0777), perms);
	pj_put_str(b, owner, strlen(owner));
	buf_puts(b, ",\"group\":");
	pj_put_str(b, group, strlen(group));
	buf_puts(b, ",\"modifiedTime\":");
	pj_put_time(b, &ls.st_mtim);
	if (link) {
		buf_puts(b, ",\"symlinkTarget\":");
		pj_put_str(b, target, strlen(target));
	}
	put_metadata(b, path);
	buf_puts(b, "}");
	return 0;
}

int entry_json(struct buf *b, const char *path)
{
	return entry_json_as(b, path, path);
}

/* A file error's Connect code. */
static int errno_code(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR: return CC_NOT_FOUND;
	case EACCES:
	case EPERM:
	case EROFS: return CC_PERMISSION_DENIED;
	case EEXIST:
	case ENOTEMPTY: return CC_ALREADY_EXISTS;
	case ENOSPC:
	case EDQUOT: return CC_RESOURCE_EXHAUSTED;
	case ELOOP: return CC_FAILED_PRECONDITION;
	case ENAMETOOLONG:
	case EINVAL:
	case EXDEV: return CC_INVALID_ARGUMENT;
	default: return CC_INTERNAL;
	}
}

/* ---- the calls -------------------------------------------------------- */

static const char *const path_only[] = { "path", NULL };

/* The request's one path, resolved: 0, or the status answered. */
static int one_path(struct rpc *r, const char *const *fields, char *path, size_t n)
{
	char why[256];
	pj_fields(&r->pj, r->msg, r->name, fields);
	const char *p = pj_str(&r->pj, r->msg, "path", NULL);
	if (r->pj.bad)
		return rpc_bad(r);
	if (path_resolve(p, &r->u, path, n, why, sizeof why) < 0)
		return rpc_fail(r, CC_INVALID_ARGUMENT, "%s", why);
	return 0;
}

/* {"entry":EntryInfo} of path, or its error; as_agent() after. */
static int answer_entry(struct rpc *r, const char *path)
{
	struct buf b = { 0 };
	int st;
	buf_puts(&b, "{\"entry\":");
	if (entry_json(&b, path) < 0) {
		int e = errno;
		as_agent();
		buf_free(&b);
		return rpc_fail(r, errno_code(e), "file not found: %s: %s", path, strerror(e));
	}
	as_agent();
	buf_puts(&b, "}");
	st = rpc_ok(r, &b);
	buf_free(&b);
	return st;
}

int fs_stat(struct rpc *r)
{
	char path[4200];
	int st = one_path(r, path_only, path, sizeof path);
	if (st)
		return st;
	if (as_user(&r->u) < 0)
		return rpc_fail(r, CC_INTERNAL, "cannot take the user's credentials: %s", strerror(errno));
	return answer_entry(r, path);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Entries below dir (its requested spelling shown) to depth, in
 * lexical order, each directory's right after it, as filepath.WalkDir
 * walks; 0, -1 with errno. */
static int walk(struct buf *b, const char *dir, const char *shown, unsigned depth, size_t *count)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	if (!d)
		return errno == EACCES && *count ? 0 : -1; /* an unreadable subdirectory is skipped */
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
			if (!nn)
				break;
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, name_cmp);
	for (size_t i = 0; i < n && !rc; i++) {
		char path[4200], sp[4200];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", strcmp(dir, "/") ? dir : "", names[i]);
		snprintf(sp, sizeof sp, "%s/%s", strcmp(shown, "/") ? shown : "", names[i]);
		if (++*count > LIST_MAX)
			rc = (errno = E2BIG, -1);
		else if (lstat(path, &sb) < 0)
			continue; /* gone meanwhile */
		else {
			buf_puts(b, *count > 1 ? "," : "");
			if (entry_json_as(b, path, sp) == 0 && depth > 1 && S_ISDIR(sb.st_mode))
				rc = walk(b, path, sp, depth - 1, count);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int fs_list(struct rpc *r)
{
	static const char *const fields[] = { "path", "depth", NULL };
	char path[4200], real[4200];
	struct stat sb;
	struct buf b = { 0 };
	size_t count = 0;
	int st = one_path(r, fields, path, sizeof path);
	uint32_t depth = pj_u32(&r->pj, r->msg, "depth", NULL);
	if (st)
		return st;
	if (r->pj.bad)
		return rpc_bad(r);
	if (as_user(&r->u) < 0)
		return rpc_fail(r, CC_INTERNAL, "cannot take the user's credentials: %s", strerror(errno));
	if (!realpath(path, real) || stat(real, &sb) < 0) {
		int e = errno;
		as_agent();
		return rpc_fail(r, errno_code(e),
				e == ELOOP ? "cyclic symlink or chain of links at %s" : "path not found: %s: %s", path,
				strerror(e));
	}
	if (!S_ISDIR(sb.st_mode)) {
		as_agent();
		return rpc_fail(r, CC_INVALID_ARGUMENT, "path is not a directory: %s", path);
	}
	buf_puts(&b, "{\"entries\":[");
	int rc = walk(&b, real, path, depth ? depth : 1, &count);
	int e = errno;
	as_agent();
	if (rc < 0) {
		buf_free(&b);
		if (e == E2BIG)
			return rpc_fail(r, CC_RESOURCE_EXHAUSTED, "more than %d entries: ask for less depth", LIST_MAX);
		return rpc_fail(r, errno_code(e), "error reading directory %s: %s", path, strerror(e));
	}
	buf_puts(&b, "]}");
	st = rpc_ok(r, &b);
	buf_free(&b);
	return st;
}

int fs_mkdir(struct rpc *r)
{
	char path[4200];
	struct stat sb;
	int st = one_path(r, path_only, path, sizeof path);
	if (st)
		return st;
	if (as_user(&r->u) < 0)
		return rpc_fail(r, CC_INTERNAL, "cannot take the user's credentials: %s", strerror(errno));
	if (stat(path, &sb) == 0) {
		as_agent();
		return rpc_fail(r, S_ISDIR(sb.st_mode) ? CC_ALREADY_EXISTS : CC_INVALID_ARGUMENT,
				S_ISDIR(sb.st_mode) ? "directory already exists: %s"
						    : "path already exists but it is not a directory: %s",
				path);
	}
	if (mkdirs(path) < 0) {
		int e = errno;
		as_agent();
		return rpc_fail(r, errno_code(e), "failed to create directory %s: %s", path, strerror(e));
	}
	return answer_entry(r, path);
}

int fs_move(struct rpc *r)
{
	static const char *const fields[] = { "source", "destination", NULL };
	char src[4200], dst[4200], why[256];
	pj_fields(&r->pj, r->msg, r->name, fields);
	const char *s = pj_str(&r->pj, r->msg, "source", NULL), *d = pj_str(&r->pj, r->msg, "destination", NULL);
	if (r->pj.bad)
		return rpc_bad(r);
	if (path_resolve(s, &r->u, src, sizeof src, why, sizeof why) < 0 ||
	    path_resolve(d, &r->u, dst, sizeof dst, why, sizeof why) < 0)
		return rpc_fail(r, CC_INVALID_ARGUMENT, "%s", why);
	if (as_user(&r->u) < 0)
		return rpc_fail(r, CC_INTERNAL, "cannot take the user's credentials: %s", strerror(errno));
	char parent[4200];
	snprintf(parent, sizeof parent, "%s", dst);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = 0;
	if ((slash && slash != parent && mkdirs(parent) < 0) || rename(src, dst) < 0) {
		int e = errno;
		as_agent();
		return rpc_fail(r, errno_code(e),
				e == ENOENT ? "source file not found: %s: %s" : "error renaming %s: %s", src,
				strerror(e));
	}
	return answer_entry(r, dst);
}

static _Thread_local int remove_errno;

static int remove_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(p) : unlink(p)) < 0 && errno != ENOENT) {
		remove_errno = errno;
		return 1;
	}
	return 0;
}

int fs_remove(struct rpc *r)
{
	char path[4200];
	struct stat sb;
	struct buf b = { 0 };
	int st = one_path(r, path_only, path, sizeof path);
	if (st)
		return st;
	if (as_user(&r->u) < 0)
		return rpc_fail(r, CC_INTERNAL, "cannot take the user's credentials: %s", strerror(errno));
	/* as os.RemoveAll: the tree, without following links; nothing
	 * there is no error */
	remove_errno = 0;
	if (lstat(path, &sb) == 0 && nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && !remove_errno)
		remove_errno = errno;
	as_agent();
	if (remove_errno)
		return rpc_fail(r, errno_code(remove_errno), "error removing file or directory %s: %s", path,
				strerror(remove_errno));
	buf_puts(&b, "{}");
	st = rpc_ok(r, &b);
	buf_free(&b);
	return st;
}
