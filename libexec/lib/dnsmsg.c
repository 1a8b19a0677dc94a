/* DNS messages and the allow list of vmsan-dns (dnsmsg.h). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnsmsg.h"
#include "vmsan.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Label bytes we accept: printable, no '.' (a dot inside a label would
 * read as a label boundary and let one name pass for another), folded to
 * lower case. */
static int name_byte(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f || c == '.')
		return -1;
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

int dns_read_name(const uint8_t *m, size_t n, size_t *off, char out[DNS_NAME_MAX])
{
	size_t p = *off, len = 0, end = 0;
	int jumped = 0;

	for (;;) {
		if (p >= n)
			return -1;
		uint8_t l = m[p];
		if (l == 0) {
			if (!jumped)
				end = p + 1;
			break;
		}
		if ((l & 0xc0) == 0xc0) {
			if (p + 1 >= n)
				return -1;
			size_t to = (size_t)(l & 0x3f) << 8 | m[p + 1];
			/* only backwards, so every jump shortens the way: no loops */
			if (to >= p)
				return -1;
			if (!jumped)
				end = p + 2;
			jumped = 1;
			p = to;
			continue;
		}
		if (l & 0xc0)
			return -1;
		if (p + 1 + l > n || len + l + 1 > 254)
			return -1;
		if (len)
			out[len++] = '.';
		for (size_t i = 0; i < l; i++) {
			int c = name_byte(m[p + 1 + i]);
			if (c < 0)
				return -1;
			out[len++] = (char)c;
		}
		p += 1 + l;
	}
	out[len] = '\0';
	*off = end;
	return 0;
}

int dns_parse_query(const uint8_t *m, size_t n, struct dns_q *q)
{
	if (n < DNS_HDR)
		return -1;
	q->id = get16(m);
	if (m[2] & 0x80) /* a response: not ours to answer */
		return -1;
	if ((m[2] >> 3 & 0xf) != 0) /* opcode other than QUERY */
		return DNS_NOTIMP;
	if (get16(m + 4) != 1)
		return DNS_FORMERR;
	size_t off = DNS_HDR;
	if (dns_read_name(m, n, &off, q->name) < 0 || off + 4 > n)
		return DNS_FORMERR;
	q->type = get16(m + off);
	q->cls = get16(m + off + 2);
	q->end = off + 4;
	return 0;
}

/* A name in wire form, uncompressed; its length or 0. */
static size_t put_name(uint8_t *out, size_t cap, const char *name)
{
	size_t o = 0;
	const char *s = name;

	while (*s) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		if (l == 0 || l > 63 || o + 1 + l >= cap)
			return 0;
		out[o++] = (uint8_t)l;
		memcpy(out + o, s, l);
		o += l;
		s += l + (dot ? 1 : 0);
	}
	if (o >= cap)
		return 0;
	out[o++] = 0;
	return o;
}

size_t dns_make_answer(uint8_t *out, size_t cap, const uint8_t *query, const struct dns_q *q, int rcode)
{
	if (cap < DNS_HDR)
		return 0;
	memset(out, 0, DNS_HDR);
	out[0] = (uint8_t)(q->id >> 8);
	out[1] = (uint8_t)q->id;
	out[2] = (uint8_t)(0x80 | (query[2] & 0x01)); /* QR, RD as asked */
	out[3] = (uint8_t)(0x80 | (rcode & 0xf));     /* RA */
	if (rcode == DNS_FORMERR && !q->name[0] && !q->type)
		return DNS_HDR; /* no question to echo */
	size_t l = put_name(out + DNS_HDR, cap - DNS_HDR, q->name);
	if (!l || DNS_HDR + l + 4 > cap)
		return q->name[0] ? 0 : DNS_HDR;
	out[5] = 1;
	uint8_t *t = out + DNS_HDR + l;
	t[0] = (uint8_t)(q->type >> 8);
	t[1] = (uint8_t)q->type;
	t[2] = (uint8_t)(q->cls >> 8);
	t[3] = (uint8_t)q->cls;
	return DNS_HDR + l + 4;
}

#define MAX_RR 128
#define MAX_CHAIN 16

struct rr {
	char owner[DNS_NAME_MAX];
	uint16_t type;
	uint32_t ttl;
	uint32_t addr;		   /* A */
	char target[DNS_NAME_MAX]; /* CNAME */
};

/* The header and question of a response to q; *off past the question. */
static int scan_question(const uint8_t *m, size_t n, const struct dns_q *q, size_t *off)
{
	char name[DNS_NAME_MAX];

	if (n < DNS_HDR || !(m[2] & 0x80) || get16(m + 4) != 1)
		return -1;
	*off = DNS_HDR;
	if (dns_read_name(m, n, off, name) < 0 || *off + 4 > n || strcmp(name, q->name) || get16(m + *off) != q->type ||
	    get16(m + *off + 2) != q->cls)
		return -1;
	*off += 4;
	return 0;
}

/* Every record from off on: each TTL above ttl_max lowered in place, and
 * the answer section's A and CNAME records of class IN (at most MAX_RR)
 * into rr; how many, or -1 if the message is malformed. */
static long scan_records(uint8_t *m, size_t n, size_t off, uint32_t ttl_max, struct rr *rr)
{
	unsigned an = get16(m + 6), total = an + get16(m + 8) + get16(m + 10);
	size_t nrr = 0;

	for (unsigned i = 0; i < total; i++) {
		char owner[DNS_NAME_MAX];
		if (dns_read_name(m, n, &off, owner) < 0 || off + 10 > n)
			return -1;
		uint16_t type = get16(m + off), cls = get16(m + off + 2);
		uint32_t ttl = get32(m + off + 4);
		size_t rdlen = get16(m + off + 8), rd = off + 10;
		if (rd + rdlen > n)
			return -1;
		if (type != 41 && ttl > ttl_max) { /* OPT's "TTL" is flags */
			ttl = ttl_max;
			put32(m + off + 4, ttl);
		}
		if (i < an && cls == DNS_CLASS_IN && nrr < MAX_RR &&
		    ((type == DNS_TYPE_A && rdlen == 4) || type == DNS_TYPE_CNAME)) {
			struct rr *r = &rr[nrr];
			memcpy(r->owner, owner, sizeof owner);
			r->type = type;
			r->ttl = ttl;
			if (type == DNS_TYPE_A) {
				r->addr = get32(m + rd);
			} else {
				size_t t = rd;
				if (dns_read_name(m, n, &t, r->target) < 0 || t != rd + rdlen)
					return -1;
			}
			nrr++;
		}
		off = rd + rdlen;
	}
	return (long)nrr;
}

/* The chain from the question's name through CNAMEs (at most MAX_CHAIN,
 * ending at a loop) into chain; its length, the smallest CNAME TTL on it
 * in *ttl. */
static size_t cname_chain(const struct rr *rr, size_t nrr, const char *qname, const char *chain[MAX_CHAIN + 1],
			  uint32_t *ttl)
{
	size_t nchain = 1;

	*ttl = UINT32_MAX;
	chain[0] = qname;
	for (size_t hop = 0; hop < MAX_CHAIN; hop++) {
		size_t k;
		for (k = 0; k < nrr; k++)
			if (rr[k].type == DNS_TYPE_CNAME && !strcmp(rr[k].owner, chain[nchain - 1]))
				break;
		if (k == nrr)
			break;
		for (size_t j = 0; j < nchain; j++)
			if (!strcmp(chain[j], rr[k].target))
				return nchain; /* a loop */
		if (rr[k].ttl < *ttl)
			*ttl = rr[k].ttl;
		chain[nchain++] = rr[k].target;
	}
	return nchain;
}

/* The A records of names on the chain into out (at most max, each
 * address once at its smallest TTL, none above the chain's). */
static size_t chain_addrs(const struct rr *rr, size_t nrr, const char *const *chain, size_t nchain, uint32_t chain_ttl,
			  struct dns_addr *out, size_t max)
{
	size_t count = 0;

	for (size_t k = 0; k < nrr; k++) {
		if (rr[k].type != DNS_TYPE_A)
			continue;
		size_t j;
		for (j = 0; j < nchain; j++)
			if (!strcmp(rr[k].owner, chain[j]))
				break;
		if (j == nchain)
			continue; /* not on the way from the question */
		uint32_t ttl = rr[k].ttl < chain_ttl ? rr[k].ttl : chain_ttl;
		for (j = 0; j < count; j++)
			if (out[j].addr == rr[k].addr)
				break;
		if (j < count) {
			if (ttl < out[j].ttl)
				out[j].ttl = ttl;
		} else if (count < max) {
			out[count].addr = rr[k].addr;
			out[count].ttl = ttl;
			count++;
		}
	}
	return count;
}

int dns_scan_response(uint8_t *m, size_t n, const struct dns_q *q, uint32_t ttl_max, struct dns_addr *out, size_t max,
		      size_t *count)
{
	static struct rr rr[MAX_RR]; /* one scan at a time: vmsan-dns is one thread */
	const char *chain[MAX_CHAIN + 1];
	uint32_t chain_ttl;
	size_t off, nchain;
	long nrr;

	*count = 0;
	if (scan_question(m, n, q, &off) < 0 || (nrr = scan_records(m, n, off, ttl_max, rr)) < 0)
		return -1;
	nchain = cname_chain(rr, (size_t)nrr, q->name, chain, &chain_ttl);
	*count = chain_addrs(rr, (size_t)nrr, chain, nchain, chain_ttl, out, max);
	return m[3] & 0xf;
}

/* ---- the allow list: open addressing over the patterns' text ---------- */

struct dns_allow {
	char **pat;
	size_t n;
	long *slot; /* pattern index or -1; size a power of two */
	size_t mask;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ULL;
	return h;
}

long dns_allow_find(const struct dns_allow *a, const char *pattern)
{
	if (!a || !a->n)
		return -1;
	for (size_t i = hash(pattern) & a->mask;; i = (i + 1) & a->mask) {
		if (a->slot[i] < 0)
			return -1;
		if (!strcmp(a->pat[a->slot[i]], pattern))
			return a->slot[i];
	}
}

struct dns_allow *dns_allow_new(const char *const *patterns, size_t n)
{
	struct dns_allow *a = calloc(1, sizeof *a);
	size_t size = 16;

	if (!a)
		return NULL;
	while (size < n * 2)
		size *= 2;
	a->pat = calloc(n ? n : 1, sizeof *a->pat);
	a->slot = malloc(size * sizeof *a->slot);
	if (!a->pat || !a->slot)
		goto fail;
	a->mask = size - 1;
	for (size_t i = 0; i < size; i++)
		a->slot[i] = -1;
	for (size_t i = 0; i < n; i++) {
		if (dns_allow_find(a, patterns[i]) >= 0)
			continue; /* listed twice */
		if (!(a->pat[a->n] = strdup(patterns[i])))
			goto fail;
		size_t s = hash(patterns[i]) & a->mask;
		while (a->slot[s] >= 0)
			s = (s + 1) & a->mask;
		a->slot[s] = (long)a->n++;
	}
	return a;
fail:
	dns_allow_free(a);
	return NULL;
}

void dns_allow_free(struct dns_allow *a)
{
	if (!a)
		return;
	for (size_t i = 0; a->pat && i < a->n; i++)
		free(a->pat[i]);
	free(a->pat);
	free(a->slot);
	free(a);
}

long dns_allow_match(const struct dns_allow *a, const char *name)
{
	char buf[DNS_NAME_MAX + 2];
	long i = dns_allow_find(a, name);

	if (i >= 0 || !name[0])
		return i;
	/* "*.zone" for each zone above name, closest first */
	for (const char *p = strchr(name, '.'); p; p = strchr(p + 1, '.')) {
		if (strlen(p + 1) + 3 > sizeof buf)
			return -1;
		buf[0] = '*';
		strcpy(buf + 1, p);
		if ((i = dns_allow_find(a, buf)) >= 0)
			return i;
	}
	return -1;
}

const char *dns_allow_pattern(const struct dns_allow *a, long i)
{
	return a && i >= 0 && (size_t)i < a->n ? a->pat[i] : NULL;
}

size_t dns_allow_count(const struct dns_allow *a)
{
	return a ? a->n : 0;
}

/* ---- names in a connection's first bytes ---------------------------------- */

static int peek_name(const char *s, size_t len, char name[DNS_NAME_MAX])
{
	char raw[DNS_NAME_MAX], why[160];

	if (len == 0 || len > 254)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == '*')
			return -1;
	memcpy(raw, s, len);
	raw[len] = '\0';
	if (normalize_domain(raw, name, DNS_NAME_MAX, why, sizeof why))
		return -1;
	/* an address is not a name: the last label of a name is not numeric */
	const char *last = strrchr(name, '.');
	last = last ? last + 1 : name;
	if (strspn(last, "0123456789") == strlen(last))
		return -1;
	return 1;
}

int tls_sni(const uint8_t *b, size_t n, char name[DNS_NAME_MAX])
{
	uint8_t hs[PEEK_MAX];
	size_t hlen = 0, off = 0, need = 0;

	/* the handshake bytes, record after record */
	for (;;) {
		if (off + 5 > n)
			return 0;
		if (b[off] != 22 || b[off + 1] != 3)
			return -1; /* not a TLS handshake record */
		size_t rl = (size_t)(b[off + 3] << 8 | b[off + 4]);
		if (rl == 0 || rl > 16384)
			return -1;
		if (off + 5 + rl > n)
			return 0;
		if (hlen + rl > sizeof hs)
			return -1;
		memcpy(hs + hlen, b + off + 5, rl);
		hlen += rl;
		off += 5 + rl;
		if (hlen >= 4) {
			if (hs[0] != 1)
				return -1; /* not a ClientHello */
			need = 4 + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
			if (need > sizeof hs)
				return -1;
			if (hlen >= need)
				break;
		}
	}
	/* ClientHello: version, random, session id, cipher suites,
	 * compression methods, extensions */
	size_t p = 4 + 2 + 32;
	if (p + 1 > need)
		return -1;
	p += 1 + hs[p];
	if (p + 2 > need)
		return -1;
	p += 2 + (size_t)(hs[p] << 8 | hs[p + 1]);
	if (p + 1 > need)
		return -1;
	p += 1 + hs[p];
	if (p + 2 > need)
		return -1;
	size_t end = p + 2 + (size_t)(hs[p] << 8 | hs[p + 1]);
	if (end > need)
		return -1;
	for (p += 2; p + 4 <= end;) {
		unsigned type = (unsigned)(hs[p] << 8 | hs[p + 1]);
		size_t el = (size_t)(hs[p + 2] << 8 | hs[p + 3]);
		p += 4;
		if (p + el > end)
			return -1;
		if (type == 0) { /* server_name: a list of (type, name) */
			if (el < 5)
				return -1;
			size_t lend = p + 2 + (size_t)(hs[p] << 8 | hs[p + 1]);
			if (lend > p + el)
				return -1;
			for (size_t q = p + 2; q + 3 <= lend;) {
				size_t nl = (size_t)(hs[q + 1] << 8 | hs[q + 2]);
				if (q + 3 + nl > lend)
					return -1;
				if (hs[q] == 0)
					return peek_name((const char *)hs + q + 3, nl, name);
				q += 3 + nl;
			}
			return -1;
		}
		p += el;
	}
	return -1; /* no server_name */
}

int http_host(const uint8_t *b, size_t n, char name[DNS_NAME_MAX])
{
	const char *s = (const char *)b;
	size_t head = 0;

	/* a method token, then the head up to its blank line */
	for (size_t i = 0; i < n && s[i] != ' '; i++)
		if (s[i] < 'A' || s[i] > 'Z' || i >= 16)
			return -1;
	for (size_t i = 3; i < n; i++)
		if (s[i - 3] == '\r' && s[i - 2] == '\n' && s[i - 1] == '\r' && s[i] == '\n') {
			head = i + 1;
			break;
		}
	if (!head)
		return n >= PEEK_MAX ? -1 : 0;
	int found = 0;
	/* header lines after the request line: exactly one Host */
	for (size_t i = 0; i + 1 < head;) {
		size_t e = i;
		while (e + 1 < head && !(s[e] == '\r' && s[e + 1] == '\n'))
			e++;
		if (i > 0 && e - i > 5 && strncasecmp(s + i, "host:", 5) == 0) {
			size_t a = i + 5, z = e;
			while (a < z && (s[a] == ' ' || s[a] == '\t'))
				a++;
			while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t'))
				z--;
			for (size_t k = a; k < z; k++)
				if (s[k] == ':') { /* a port */
					for (size_t d = k + 1; d < z; d++)
						if (s[d] < '0' || s[d] > '9')
							return -1;
					z = k;
					break;
				}
			if (found++ || peek_name(s + a, z - a, name) != 1)
				return -1;
		}
		i = e + 2;
	}
	return found == 1 ? 1 : -1;
}

/* Header line i..e (no CRLF) named name ("content-length"): its value,
 * trimmed, in *v (length *vn); false if another header. */
static bool header_is(const char *s, size_t i, size_t e, const char *name, const char **v, size_t *vn)
{
	size_t k = strlen(name), a, z;

	if (e - i <= k || strncasecmp(s + i, name, k) || s[i + k] != ':')
		return false;
	a = i + k + 1;
	z = e;
	while (a < z && (s[a] == ' ' || s[a] == '\t'))
		a++;
	while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t'))
		z--;
	*v = s + a;
	*vn = z - a;
	return true;
}

static size_t head_end(const char *s, size_t n)
{
	for (size_t i = 3; i < n; i++)
		if (s[i - 3] == '\r' && s[i - 2] == '\n' && s[i - 1] == '\r' && s[i] == '\n')
			return i + 1;
	return 0;
}

int http_request_frame(const uint8_t *b, size_t n, size_t *head, long long *body)
{
	const char *s = (const char *)b, *v;
	size_t vn, h = head_end(s, n);
	int ncl = 0, nte = 0;
	long long cl = 0;

	if (!h)
		return -1;
	for (size_t i = 0; i + 1 < h;) {
		size_t e = i;
		while (e + 1 < h && !(s[e] == '\r' && s[e + 1] == '\n'))
			e++;
		if (i > 0 && header_is(s, i, e, "content-length", &v, &vn)) {
			if (ncl++ || !vn || vn > 15)
				return -1;
			for (size_t k = 0; k < vn; k++) {
				if (v[k] < '0' || v[k] > '9')
					return -1;
				cl = cl * 10 + (v[k] - '0');
			}
		} else if (i > 0 && header_is(s, i, e, "transfer-encoding", &v, &vn)) {
			if (nte++ || vn != 7 || strncasecmp(v, "chunked", 7))
				return -1;
		}
		i = e + 2;
	}
	if (ncl && nte)
		return -1;
	*head = h;
	*body = nte ? -1 : cl;
	return 0;
}

size_t http_close_head(const uint8_t *b, size_t head, uint8_t *out)
{
	const char *s = (const char *)b, *v;
	size_t o = 0, vn;
	static const char close_hdr[] = "Connection: close\r\n\r\n";

	for (size_t i = 0; i + 2 < head;) {
		size_t e = i;
		while (e + 1 < head && !(s[e] == '\r' && s[e + 1] == '\n'))
			e++;
		if (!(i > 0 &&
		      (header_is(s, i, e, "connection", &v, &vn) || header_is(s, i, e, "keep-alive", &v, &vn)))) {
			memmove(out + o, s + i, e + 2 - i);
			o += e + 2 - i;
		}
		i = e + 2;
	}
	memcpy(out + o, close_hdr, sizeof close_hdr - 1);
	return o + sizeof close_hdr - 1;
}

enum {
	CK_SIZE,
	CK_EXT,
	CK_SIZE_LF,
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TRAILER_START,
	CK_TRAILER,
	CK_TRAILER_LF,
	CK_END_LF
};

static int hexval(uint8_t c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

long http_chunked_feed(struct http_chunked *c, const uint8_t *b, size_t n)
{
	size_t i = 0;

	while (i < n && !c->done) {
		uint8_t ch = b[i];

		switch (c->st) {
		case CK_SIZE:
			if (hexval(ch) >= 0) {
				if (++c->digits > 15)
					return -1;
				c->left = c->left * 16 + (unsigned)hexval(ch);
			} else if (c->digits && (ch == ';' || ch == ' ' || ch == '\t')) {
				c->st = CK_EXT;
			} else if (c->digits && ch == '\r') {
				c->st = CK_SIZE_LF;
			} else {
				return -1;
			}
			break;
		case CK_EXT:
			if (ch == '\r')
				c->st = CK_SIZE_LF;
			else if (ch == '\n')
				return -1;
			break;
		case CK_SIZE_LF:
			if (ch != '\n')
				return -1;
			c->st = c->left ? CK_DATA : CK_TRAILER_START;
			break;
		case CK_DATA: {
			size_t k = n - i < c->left ? n - i : (size_t)c->left;

			c->left -= k;
			i += k;
			if (!c->left)
				c->st = CK_DATA_CR;
			continue;
		}
		case CK_DATA_CR:
			if (ch != '\r')
				return -1;
			c->st = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return -1;
			c->st = CK_SIZE;
			c->digits = 0;
			c->left = 0;
			break;
		case CK_TRAILER_START:
			c->st = ch == '\r' ? CK_END_LF : CK_TRAILER;
			if (ch == '\n')
				return -1;
			break;
		case CK_TRAILER:
			if (ch == '\r')
				c->st = CK_TRAILER_LF;
			else if (ch == '\n')
				return -1;
			break;
		case CK_TRAILER_LF:
			if (ch != '\n')
				return -1;
			c->st = CK_TRAILER_START;
			break;
		case CK_END_LF:
			if (ch != '\n')
				return -1;
			c->done = true;
			break;
		default: return -1;
		}
		i++;
	}
	return (long)i;
}
