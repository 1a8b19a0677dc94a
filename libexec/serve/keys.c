/* API keys: the file that lists them, and the check of X-API-KEY.
 *
 * The file is the daemon user's secret: it must be its own (or root's),
 * mode 0600 or stricter, so that no other user of the machine can read or
 * swap the keys.  Records name a key only by a hash of it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "serve/serve.h"

#define KEYS_MAX 64
#define KEY_MIN 20
#define KEY_MAX 128
#define KEYS_FILE_MAX (64 * 1024)

static struct {
	char key[KEY_MAX + 1];
	size_t len;
	char tag[72]; /* "k" + 16 hex of sha256(key): the owner tag */
} keys[KEYS_MAX];
static size_t nkeys;

static void tag_of(const char *key, size_t len, char out[72])
{
	unsigned char md[32];
	unsigned n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, key, len);
	EVP_DigestFinal_ex(c, md, &n);
	EVP_MD_CTX_free(c);
	out[0] = 'k';
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
}

static bool key_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

/* Opens path refusing what another user could have written or read. */
static int open_private(const char *path, int flags, struct verr *e)
{
	struct stat st;
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return verr_sys(e, "ERR_KEYS_FILE", "create it with 'vmsan serve --new-key'",
				"cannot open the API key file %s", path),
		       -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_uid != geteuid() && st.st_uid != 0) ||
	    (st.st_mode & 077)) {
		close(fd);
		return verr_fail(e, VMSAN_EXIT_FAIL, "ERR_KEYS_FILE", "chmod 600 it; it must be yours",
				 "the API key file %s is not a regular file of yours with mode 0600", path);
	}
	return fd;
}

int keys_load(const char *path, struct verr *e)
{
	char *buf = malloc(KEYS_FILE_MAX + 1);
	int fd = open_private(path, O_RDONLY, e);
	ssize_t n = 0, r;
	int rc = -1;

	if (fd < 0 || !buf)
		goto out;
	while ((r = read(fd, buf + n, (size_t)(KEYS_FILE_MAX + 1 - n))) > 0)
		n += r;
	if (r < 0 || n > KEYS_FILE_MAX) {
		verr_fail(e, VMSAN_EXIT_FAIL, "ERR_KEYS_FILE", NULL, "cannot read %s (or it is over %d bytes)", path,
			  KEYS_FILE_MAX);
		goto out;
	}
	buf[n] = '\0';
	nkeys = 0;
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t len = strcspn(line, " \t#\r");
		if (len == 0)
			continue;
		if (len < KEY_MIN || len > KEY_MAX || !key_chars_ok(line, len) || nkeys == KEYS_MAX) {
			verr_fail(e, VMSAN_EXIT_FAIL, "ERR_KEYS_FILE", "one key per line, 20-128 printable characters",
				  "%s: a line is not a key (or there are over %d keys)", path, KEYS_MAX);
			goto out;
		}
		memset(keys[nkeys].key, 0, sizeof keys[nkeys].key);
		memcpy(keys[nkeys].key, line, len);
		keys[nkeys].key[len] = '\0';
		keys[nkeys].len = len;
		tag_of(line, len, keys[nkeys].tag);
		nkeys++;
	}
	if (nkeys == 0) {
		verr_fail(e, VMSAN_EXIT_FAIL, "ERR_KEYS_FILE", "add one with 'vmsan serve --new-key'",
			  "%s holds no API key", path);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* Compares every loaded key in full whatever matched: the time taken says
 * nothing about which bytes were right. */
const char *keys_check(const char *key)
{
	size_t len = key ? strnlen(key, KEY_MAX + 1) : 0;
	const char *found = NULL;

	if (len < KEY_MIN || len > KEY_MAX)
		return NULL;
	for (size_t i = 0; i < nkeys; i++) {
		unsigned char d = (unsigned char)(keys[i].len != len);
		for (size_t k = 0; k < KEY_MAX; k++)
			d |= (unsigned char)((k < len ? (unsigned char)key[k] : 0) ^ (unsigned char)keys[i].key[k]);
		if (d == 0)
			found = keys[i].tag;
	}
	return found;
}

int keys_new(const char *path, struct verr *e)
{
	unsigned char rnd[20];
	char key[64];
	int fd;

	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return verr_sys(e, "ERR_SYSTEM", NULL, "getrandom"), -1;
	strcpy(key, "e2b_");
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(key + 4 + 2 * i, 3, "%02x", rnd[i]);
	fd = open_private(path, O_WRONLY | O_APPEND | O_CREAT, e);
	if (fd < 0)
		return -1;
	if (dprintf(fd, "%s\n", key) < 0 || fsync(fd) < 0) {
		close(fd);
		return verr_sys(e, "ERR_KEYS_FILE", NULL, "cannot write %s", path), -1;
	}
	close(fd);
	printf("%s\n", key);
	return 0;
}
