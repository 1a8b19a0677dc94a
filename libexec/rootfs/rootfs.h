/* vmsan-rootfs's parts: the core (vmsan-rootfs.c: the requests, the
 * runtimes, the op table) over
 *   util.c      small file utilities: atomic JSON files, locks, chown
 *   cache.c     the cache's layout: references, image records, builds in tmp/
 *   images.c    the cached images listed, found and removed
 *   ref.c       image references parsed into what the cache and skopeo use
 *   skopeo.c    skopeo copy, and its complaints as errors
 *   pull.c      an image pulled (or read in place) and built
 *   build.c     a manifest's layers into ext4 (lib/layer.c), sizes
 *   progress.c  the progress line on a terminal
 *   put.c       text and host files into an image
 *   base.c      the offline base image, from busybox-static
 *   vmdisk.c    a VM's own disk from a template, and its token
 * None of it needs privilege: images are written without root or a mount
 * (lib/ext4.c). */
#ifndef VMSAN_ROOTFS_H
#define VMSAN_ROOTFS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/vmsan.h"
#include "lib/ext4.h"
#include "lib/layer.h"

#define IMAGE_FORMAT 1 /* bump when the built image changes shape */
#define DEFAULT_DISK (10ULL << 30)
#define MIN_DISK (16ULL << 20)
#define MAX_DISK (1ULL << 40)

struct cache {
	struct state st;
	char dir[4200]; /* $VMSAN_DIR/images */
};

/* util.c */
double now_s(void);
/* snprintf where truncation is harmless: paths under the state directory
 * (its length was checked when it was resolved; an overlong one fails at
 * open()) and messages. */
char *bfmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* path given to the state directory's owner (when we run for them). */
void own(const struct cache *c, const char *path);
int mkdir_own(const struct cache *c, const char *path, struct verr *e);
/* j written to path whole (a temporary, fsync, rename) or not at all. */
int dump_file(const struct cache *c, const char *path, json_t *j, struct verr *e);
/* ERR_NOENT when path is not there, ERR_CACHE_CORRUPT when it is no JSON. */
json_t *load_json(const char *path, struct verr *e);
/* An exclusive flock on path (made if need be); its fd. */
int lock_file(const struct cache *c, const char *path, struct verr *e);
bool valid_hex64(const char *s);

/* cache.c */
int cache_open(struct cache *c, bool create, struct verr *e);
/* A reference as a file name: percent-encoding keeps it reversible. */
void ref_key(const char *ref, char *out, size_t n);
void ref_unkey(const char *key, char *out, size_t n);
/* Removes tmp/<pid>.* of builders that are gone (killed mid-build). */
void sweep_tmp(const struct cache *c);
/* images/<hex>'s record, with "path" its rootfs.ext4. */
json_t *load_image(const struct cache *c, const char *hex, struct verr *e);
int store_ref(const struct cache *c, const char *canon, const char *digest, struct verr *e);
/* The digest a reference points at, or NULL (not pulled yet). */
char *lookup_ref(const struct cache *c, const char *canon);
/* ERR_DISK_TOO_SMALL when the image rec needs more than disk (0: any). */
int check_disk(json_t *rec, uint64_t disk, const char *what, struct verr *e);
/* rec as the reply of pull and base. */
json_t *answer(json_t *rec, const char *ref, bool cached, double t0);

/* A build happens in tmp/ and becomes visible by one rename (publish), so
 * the cache never holds a half-built image whatever kills us. */
struct build {
	const struct cache *c;
	char tmp[PATH_MAX]; /* build directory */
	char img[PATH_MAX]; /* tmp/rootfs.ext4 */
	uint64_t disk;
	double t0;
};
int new_build(struct build *b, const struct cache *c, uint64_t disk, struct verr *e);
/* tmp -> images/<hex>; if another builder got there first, keep theirs. */
int publish(struct build *b, const char *hex, json_t *rec, struct verr *e);
void drop_build(struct build *b);

/* images.c */
/* All images with their references ("refs") and users ("usedBy"). */
json_t *list_images(const struct cache *c, struct verr *e);
/* arr, newest first (it is consumed). */
json_t *sorted(json_t *arr);
/* By digest (full or a unique prefix of 4+ hex digits) or by reference. */
json_t *find_image(json_t *imgs, const char *what, struct verr *e);
/* img and the references to it (moved aside first: a half-deleted image
 * must never look whole). */
int drop_image(const struct cache *c, json_t *img, struct verr *e);
/* The reply of remove and prune.  A failure after some images went is
 * still a failure, and says which went. */
json_t *removal_reply(json_t *removed, json_t *reply, struct verr *e);

/* ref.c */
struct ref {
	char canon[600];   /* what the cache is keyed by */
	char skopeo[4200]; /* what skopeo is given */
	bool docker;	   /* a registry (TLS and auth options apply) */
	char registry[256];
	char layout[PATH_MAX]; /* oci: a local layout, read in place */
	char tag[256];
};
int parse_ref(const char *in, struct ref *r, struct verr *e);

/* skopeo.c */
struct pull_opts {
	bool tls_verify;
	const char *auth_file;
	const char *cert_dir;
};
/* r copied by skopeo into the directory dest (skopeo's dir: layout). */
int skopeo_copy(const struct ref *r, const struct pull_opts *o, const char *dest, struct verr *e);

/* pull.c */
json_t *pull_image(struct cache *c, const char *refstr, const struct pull_opts *o, bool force, uint64_t disk,
		   struct verr *e);

/* build.c */
/* Applies the layers listed by a manifest, blob <hex> being the file
 * <blobs><hex>; fills rec. */
int build_from_manifest(struct build *b, const char *blobs, json_t *manifest, json_t *config, json_t *rec,
			struct verr *e);
/* ERR_DISK_TOO_SMALL: disk cannot hold what, which needs about need. */
int disk_full_error(uint64_t disk, uint64_t need, const char *what, struct verr *e);

/* progress.c: shown on stderr when asked for and it is a terminal. */
extern bool progress_on;
struct progress {
	uint64_t total;
	double last;
	const char *what;
};
void show_progress(void *ctx, uint64_t done);
/* The progress line erased. */
void progress_end(void);

/* put.c */
int put_text(struct e4 *w, const char *path, mode_t mode, const char *text, struct verr *e);
/* Copies the regular file open as fd (from its start) into the image;
 * src names it in messages. */
int put_fd(struct e4 *w, const char *path, mode_t mode, int fd, const char *src, struct verr *e);
/* Copies a host file into the image (the guest binaries). */
int put_file(struct e4 *w, const char *path, mode_t mode, const char *src, struct verr *e);

/* base.c: busybox NULL is $VMSAN_BUSYBOX, else /bin/busybox. */
json_t *base_image(struct cache *c, const char *busybox, uint64_t disk, struct verr *e);

/* vmdisk.c */
struct vmdisk {
	const char *id;
	const char *guest; /* where vmsan-init and vmsan-agent are */
	const char *image; /* the image's digest, or NULL */
	json_t *img;	   /* the pull's reply when it was pulled first, or NULL */
	uint64_t disk;
	double t0;
};
json_t *vmdisk_make(struct cache *c, const struct vmdisk *v, struct verr *e);
/* images/vmdisk/: the templates builders that are gone left half-made,
 * or (all) every template; the bytes freed. */
uint64_t sweep_templates(const struct cache *c, bool all);

#endif
