/* HTTP/1.1 message heads and chunked bodies: pure parsers, no I/O.
 *
 * Shared by vmsan-agent (requests) and vmsan-agentctl (responses), and
 * fuzzed by tests/fuzz/fuzz-http.c.  Every limit is explicit; anything
 * outside the grammar is an error, never a guess.
 */
#ifndef VMSAN_HTTP_H
#define VMSAN_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

#define HTTP_HEAD_MAX 16384 /* request or status line plus headers */
#define HTTP_TARGET_MAX 4096
#define HTTP_HEADERS_MAX 64

enum http_body { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_UNTIL_CLOSE };

struct http_head {
	/* request */
	char method[16];
	char target[HTTP_TARGET_MAX]; /* as sent: path and query */
	/* response */
	int status;
	char reason[64];
	int minor; /* HTTP/1.<minor> */

	enum http_body body;
	uint64_t content_length;
	bool keep_alive;
	bool upgrade_websocket; /* Connection: upgrade + Upgrade: websocket */
	bool expect_continue;
	/* Raw header lines, names as sent; values trimmed.  Pointers into the
	 * caller's buffer, which must outlive the lookup. */
	int nheaders;
	struct {
		const char *name, *value;
		size_t nlen, vlen;
	} h[HTTP_HEADERS_MAX];
};

/* Parse a request (is_request) or a response head from buf.  Returns the
 * number of bytes of the head (through the blank line) when complete, 0
 * when more bytes are needed, or -status on a malformed head: -400, -431
 * (too large), -501 (unknown transfer coding), -505 (not HTTP/1.x).  The
 * head's text is not modified: hd->h points into buf. */
ssize_t http_parse_head(char *buf, size_t len, bool is_request, struct http_head *hd);

/* Case-insensitive header lookup; copies the value (NUL-terminated) and
 * returns its length, or -1 when absent, -2 when too long for out (out
 * untouched). */
ssize_t http_header(const struct http_head *hd, const char *name, char *out, size_t outlen);

/* Chunked transfer coding, decoded in place. */
struct chunked {
	int state;
	uint64_t left; /* bytes of the current chunk still to come */
	unsigned ndigits;
	unsigned extlen;
	bool done; /* last chunk and trailers seen */
};

/* Consume up to len bytes of buf; decoded data is moved to the front of
 * buf and its length stored in *out.  Returns bytes consumed, or -1 when
 * the coding is malformed.  Stops consuming once done. */
ssize_t chunked_decode(struct chunked *c, char *buf, size_t len, size_t *out);
/* The same without moving anything: the framing at the front of buf, then
 * at most one run of data where it lies, buf[*skip .. *skip + *out).
 * Returns bytes consumed (*skip + *out), or -1.  Called until done, it
 * decodes what chunked_decode does. */
ssize_t chunked_span(struct chunked *c, const char *buf, size_t len, size_t *skip, size_t *out);

/* Find a parameter in a query (the target after its '?'),
 * percent-decoded into out.  Returns its length or -1. */
ssize_t http_query(const char *query, const char *name, char *out, size_t outlen);
/* Percent-decode in place; returns -1 on a bad escape or an encoded NUL. */
ssize_t http_pct_decode(char *s);

const char *http_reason(int status);

/* All n bytes of p sent on socket fd (send(2) with MSG_NOSIGNAL and
 * flags, again after EINTR): 0, or -1 with errno set. */
int http_send_all(int fd, const void *p, size_t n, int flags);
/* The same for cnt pieces in one sendmsg(2) each time (iov is used up):
 * a chunk's size line, data and CRLF leave as one write, not three. */
struct iovec;
int http_sendv_all(int fd, struct iovec *iov, int cnt);
/* The cnt buffers at *iov with sent bytes of them gone (*iov moved past
 * those sent whole, the next one cut): how many are left. */
int iov_advance(struct iovec **iov, int cnt, size_t sent);

#endif
