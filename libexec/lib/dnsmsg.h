/* The parts of DNS messages (RFC 1035) vmsan-dns reads and writes, and the
 * allow list it matches names against.  Everything here takes bytes from
 * the guest or from an upstream resolver: nothing is trusted, every read
 * is bounds-checked, compression pointers may only point backwards. */
#ifndef VMSAN_DNSMSG_H
#define VMSAN_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HDR 12
#define DNS_NAME_MAX 256 /* 253 characters, a NUL, slack */

enum { DNS_TYPE_A = 1, DNS_TYPE_CNAME = 5, DNS_TYPE_AAAA = 28, DNS_CLASS_IN = 1 };
enum { DNS_NOERROR = 0, DNS_FORMERR = 1, DNS_SERVFAIL = 2, DNS_NXDOMAIN = 3, DNS_NOTIMP = 4, DNS_REFUSED = 5 };

struct dns_q {
	uint16_t id;
	char name[DNS_NAME_MAX]; /* lower case, no trailing dot; "" is the root */
	uint16_t type, cls;
	size_t end; /* offset just past the question */
};

/* Reads name at *off (following compression pointers) into out, lower
 * case, labels joined with '.'; *off moves past it.  -1 if malformed. */
int dns_read_name(const uint8_t *m, size_t n, size_t *off, char out[DNS_NAME_MAX]);

/* A query: header with QR=0 and exactly one question.  Returns 0, or the
 * rcode to answer with (FORMERR, NOTIMP), or -1 when there is not even a
 * header to answer. */
int dns_parse_query(const uint8_t *m, size_t n, struct dns_q *q);

/* An answer of id/rcode to q, with q's question only (RA set, RD copied
 * from the query), into out; its length, or 0 if it does not fit. */
size_t dns_make_answer(uint8_t *out, size_t cap, const uint8_t *query, const struct dns_q *q, int rcode);

struct dns_addr {
	uint32_t addr; /* host order */
	uint32_t ttl;  /* the smallest TTL on its way from the question */
};

/* An upstream's response to q: checks it answers q (QR, same question),
 * follows the CNAME chain from q->name through the answer section and
 * collects the A records of names on that chain (at most max, duplicates
 * merged); every TTL in the message is lowered to ttl_max in place.
 * Returns the response's rcode, or -1 if it is not a response to q. */
int dns_scan_response(uint8_t *m, size_t n, const struct dns_q *q, uint32_t ttl_max, struct dns_addr *out, size_t max,
		      size_t *count);

/* The allow list: exact names, and "*.zone" for every name under zone (not
 * zone itself).  Patterns are normalized (normalize_domain). */
struct dns_allow;
struct dns_allow *dns_allow_new(const char *const *patterns, size_t n);
void dns_allow_free(struct dns_allow *a);
/* The index of the pattern that allows name (exact first, then the
 * closest "*." above it), or -1. */
long dns_allow_match(const struct dns_allow *a, const char *name);
/* Pattern i's text; the index of a pattern's text, or -1. */
const char *dns_allow_pattern(const struct dns_allow *a, long i);
long dns_allow_find(const struct dns_allow *a, const char *pattern);
size_t dns_allow_count(const struct dns_allow *a);

/* The name a TCP client's first bytes ask for (--strict-domains): the
 * server_name of a TLS ClientHello (its handshake message may span
 * records), or the Host header of an HTTP/1 request's head (port
 * dropped).  The name is normalized (lower case, no trailing dot, a valid
 * domain, no wildcard).  Return 1 with name set, 0 when more bytes are
 * needed, -1 when these bytes can never name one (not TLS/HTTP, no name,
 * an IP literal, malformed, or a head above 16 KiB). */
#define PEEK_MAX 16384
int tls_sni(const uint8_t *b, size_t n, char name[DNS_NAME_MAX]);
int http_host(const uint8_t *b, size_t n, char name[DNS_NAME_MAX]);

/* --strict-domains relays one HTTP request per connection (each request
 * of a keep-alive connection could name another Host).  For a request
 * whose head http_host accepted: the head's length and its body's
 * (Content-Length, 0 without one, -1 for Transfer-Encoding: chunked);
 * -1 when the framing is ambiguous (both, several Content-Lengths,
 * another transfer coding, a bad number: request smuggling). */
int http_request_frame(const uint8_t *b, size_t n, size_t *head, long long *body);
/* The head again without its Connection and Keep-Alive headers and with
 * "Connection: close": the server ends the connection after answering.
 * Returns the new length (at most head + 19), written to out. */
size_t http_close_head(const uint8_t *b, size_t head, uint8_t *out);
/* A chunked body fed as it comes: how many of the n bytes belong to it
 * (the rest lie past its end), or -1 if it is malformed; done once its
 * last chunk and trailer have passed. */
struct http_chunked {
	int st;
	unsigned long long left;
	unsigned digits;
	bool done;
};
long http_chunked_feed(struct http_chunked *c, const uint8_t *b, size_t n);

#endif
