/* vmsan-agent's connection layer (conn.c): what a handler reads a
 * request body with and answers through. */
#ifndef VMSAN_AGENT_CONN_H
#define VMSAN_AGENT_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "../proto/http.h"
#include "../proto/json.h"

#define CONN_BUF (256 * 1024)

struct conn {
	int fd;
	char *rbuf;
	size_t rpos, rlen; /* unread bytes are rbuf[rpos..rlen) */
	char peer[64];
	bool close_after; /* framing lost: close after this response */
	bool streaming;	  /* a chunked response is open */
	bool more;	  /* send the next bytes with MSG_MORE */
	int status;	  /* the last answer's status, for the log */
};

struct body {
	struct conn *c;
	enum http_body kind;
	uint64_t left; /* BODY_LENGTH */
	struct chunked ch;
	char *dptr; /* decoded chunk bytes not yet returned */
	size_t dlen;
	bool done;
	uint64_t total;
};

void body_init(struct body *b, struct conn *c, const struct http_head *hd);
/* Blocking read of body data: >0 bytes, 0 end, -1 error (framing lost). */
ssize_t body_read(struct body *b, void *buf, size_t n);
/* At most one read(2); -2 when nothing decoded yet (call again later). */
ssize_t body_read_some(struct body *b, void *buf, size_t n);
/* body_read and body_read_some without the copy: *p points at the bytes
 * in the connection's buffer, valid until the next read of the body. */
ssize_t body_peek(struct body *b, const void **p, size_t n);
ssize_t body_peek_some(struct body *b, const void **p, size_t n);
/* Read more bytes into rbuf; 0 on EOF, -1 on error. */
ssize_t conn_fill(struct conn *c);
int conn_send(struct conn *c, const void *p, size_t n);
/* Discard what is left of a body (bounded), so the connection can serve
 * the next request; else mark it for closing. */
void body_drain(struct body *b);
int respond(struct conn *c, int status, const char *ctype, const char *body, size_t len);
int respond_error(struct conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int stream_begin(struct conn *c, int status, const char *ctype);
int stream_chunk(struct conn *c, const void *p, size_t n);
int stream_end(struct conn *c);
/* Read a whole small JSON body (<= 1 MiB); replies the error itself. */
struct jv *read_json_body(struct conn *c, struct body *b, struct jarena *a, struct buf *raw);

#endif
