/* ref.c: an image reference parsed into the name the cache keys it by
 * and the one skopeo is given.  oci:PATH[:TAG] and oci-archive:PATH[:TAG]
 * name a layout on this machine; anything else is a registry reference,
 * Docker's way: alpine:3.20 is docker.io/library/alpine:3.20. */
#define _GNU_SOURCE
#include "rootfs/rootfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD_REF(fix, ...) verr_fail(e, VMSAN_EXIT_USAGE, "ERR_IMAGE_REF", fix, __VA_ARGS__)

/* A registry reference taken apart. */
struct refparts {
	char name[520]; /* what is before '@', then before the tag */
	char tag[160], digest[80], domain[256];
	const char *path; /* the repository: in name, after the domain */
};

static int is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-' || ch == '/';
}

/* oci:PATH[:TAG] or oci-archive:PATH[:TAG], the path made absolute. */
static int parse_oci(const char *in, struct ref *r, struct verr *e)
{
	const char *rest = strchr(in, ':') + 1;
	char path[PATH_MAX], real[PATH_MAX];
	const char *colon = strchr(rest, ':');
	size_t pl = colon ? (size_t)(colon - rest) : strlen(rest);
	if (pl == 0 || pl >= sizeof(path))
		return BAD_REF("write oci:PATH[:TAG] or oci-archive:PATH[:TAG]", "image reference '%s' has no path",
			       in);
	memcpy(path, rest, pl);
	path[pl] = '\0';
	if (!realpath(path, real)) {
		verr_sys(e, "ERR_IMAGE_NOT_FOUND", "check the path", "image layout %s", path);
		e->exit = VMSAN_EXIT_FAIL;
		return -1;
	}
	bfmt(r->canon, sizeof(r->canon), "%.*s%s%s%s", (int)(rest - in), in, real, colon ? ":" : "",
	     colon ? colon + 1 : "");
	snprintf(r->skopeo, sizeof(r->skopeo), "%s", r->canon);
	if (strncmp(in, "oci:", 4) == 0) { /* read in place, no copy */
		bfmt(r->layout, sizeof(r->layout), "%s", real);
		bfmt(r->tag, sizeof(r->tag), "%s", colon ? colon + 1 : "");
	}
	return 0;
}

/* name@sha256:<hex>: the digest off the name. */
static int split_digest(const char *in, size_t len, struct refparts *p, struct verr *e)
{
	const char *at = strchr(in, '@');
	size_t nl = at ? (size_t)(at - in) : len;
	if (at) {
		if (strncmp(at + 1, "sha256:", 7) != 0 || !valid_hex64(at + 8))
			return BAD_REF("a digest is sha256: and 64 lowercase hex digits",
				       "image reference '%s' has a bad digest", in);
		snprintf(p->digest, sizeof(p->digest), "%s", at + 1);
	}
	memcpy(p->name, in, nl);
	p->name[nl] = '\0';
	return 0;
}

/* The tag follows the last ':' that comes after the last '/'. */
static int split_tag(const char *in, struct refparts *p, struct verr *e)
{
	char *slash = strrchr(p->name, '/'), *colon = strrchr(p->name, ':');
	if (!colon || (slash && colon < slash))
		return 0;
	*colon = '\0';
	snprintf(p->tag, sizeof(p->tag), "%s", colon + 1);
	if (!p->tag[0])
		return BAD_REF("leave the tag out for :latest, or name one", "image reference '%s' has an empty tag",
			       in);
	for (const char *t = p->tag; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') || *t == '_' ||
		      *t == '.' || *t == '-') ||
		    t - p->tag >= 128)
			return BAD_REF("tags are up to 128 of [A-Za-z0-9_.-]", "image reference '%s' has a bad tag",
				       in);
	return 0;
}

/* The first component is a registry if it looks like a host; none is
 * Docker Hub's. */
static void split_domain(struct refparts *p)
{
	char *first = strchr(p->name, '/');
	p->path = p->name;
	if (first) {
		size_t dl = (size_t)(first - p->name);
		if (memchr(p->name, '.', dl) || memchr(p->name, ':', dl) ||
		    (dl == 9 && strncmp(p->name, "localhost", 9) == 0)) {
			if (dl >= sizeof(p->domain))
				dl = sizeof(p->domain) - 1;
			memcpy(p->domain, p->name, dl);
			p->domain[dl] = '\0';
			p->path = first + 1;
		}
	}
	if (!p->domain[0] || strcmp(p->domain, "index.docker.io") == 0)
		snprintf(p->domain, sizeof(p->domain), "docker.io");
}

static int check_names(const char *in, const struct refparts *p, struct verr *e)
{
	const char *path = p->path;
	for (const char *q = p->domain; *q; q++)
		if (!(is_name_char(*q) || (*q >= 'A' && *q <= 'Z') || *q == ':') || *q == '/')
			return BAD_REF(NULL, "image reference '%s' has a bad registry name", in);
	bool bad = !*path || path[0] == '/' || path[strlen(path) - 1] == '/';
	for (const char *q = path; *q && !bad; q++)
		bad = !is_name_char(*q) || (*q == '/' && q[1] == '/');
	if (bad)
		return BAD_REF("repository names are lowercase letters, digits and . _ - /",
			       "image reference '%s' is not a valid name", in);
	return 0;
}

static int parse_registry(const char *in, struct ref *r, struct verr *e)
{
	struct refparts p = { .tag = "" };
	size_t len = strlen(in);
	if (len == 0 || len > 500)
		return BAD_REF("give a reference such as alpine:3.20 or registry:5000/team/app@sha256:...",
			       len ? "image reference is too long" : "image reference is empty");
	if (split_digest(in, len, &p, e) < 0 || split_tag(in, &p, e) < 0)
		return -1;
	split_domain(&p);
	if (check_names(in, &p, e) < 0)
		return -1;
	bool library = strcmp(p.domain, "docker.io") == 0 && !strchr(p.path, '/');
	if (!p.tag[0] && !p.digest[0])
		snprintf(p.tag, sizeof(p.tag), "latest");
	bfmt(r->canon, sizeof(r->canon), "%s/%s%s%s%s%s", p.domain, library ? "library/" : "", p.path,
	     p.tag[0] ? ":" : "", p.tag, p.digest[0] ? "@" : "");
	if (p.digest[0])
		strncat(r->canon, p.digest, sizeof(r->canon) - strlen(r->canon) - 1);
	snprintf(r->skopeo, sizeof(r->skopeo), "docker://%s", r->canon);
	snprintf(r->registry, sizeof(r->registry), "%s", p.domain);
	r->docker = true;
	return 0;
}

int parse_ref(const char *in, struct ref *r, struct verr *e)
{
	memset(r, 0, sizeof(*r));
	while (*in == ' ' || *in == '\t')
		in++;
	if (strncmp(in, "oci:", 4) == 0 || strncmp(in, "oci-archive:", 12) == 0)
		return parse_oci(in, r, e);
	if (strncmp(in, "docker://", 9) == 0)
		in += 9;
	return parse_registry(in, r, e);
}
