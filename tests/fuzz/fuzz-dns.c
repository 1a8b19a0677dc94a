/* libFuzzer target: what vmsan-dns reads from the guest and the upstreams
 * (DNS queries and responses) and, under --strict-domains, a connection's
 * first bytes (TLS ClientHello, HTTP request head, its framing, a chunked
 * body), on arbitrary bytes.
 * Names that come out must be what the allow list can match: lower case,
 * printable, no wildcard, at most 253 characters.  Build: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../libexec/lib/dnsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > 253)
		abort();
	for (size_t i = 0; i < len; i++)
		if (n[i] <= ' ' || n[i] > '~' || (n[i] >= 'A' && n[i] <= 'Z') || n[i] == '*')
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const pats[] = { "example.test", "*.wild.test", "a.b.c" };
	struct dns_allow *allow = dns_allow_new(pats, 3);
	char name[DNS_NAME_MAX];
	struct dns_q q;
	uint8_t *m = malloc(size ? size : 1);

	if (!allow || !m)
		abort();
	/* a query, and an answer to it */
	if (dns_parse_query(data, size, &q) == 0) {
		uint8_t out[600];
		if (strlen(q.name) > 253)
			abort();
		(void)dns_allow_match(allow, q.name);
		if (dns_make_answer(out, sizeof out, data, &q, DNS_NXDOMAIN) > sizeof out)
			abort();
	}
	/* a response, to the question it carries (so the scan gets past it) */
	memcpy(m, data, size);
	if (size >= DNS_HDR) {
		size_t off = DNS_HDR;
		struct dns_q rq = { 0 };
		if (dns_read_name(data, size, &off, rq.name) == 0 && off + 4 <= size) {
			struct dns_addr a[8];
			size_t na = 0;
			rq.type = (uint16_t)(data[off] << 8 | data[off + 1]);
			rq.cls = (uint16_t)(data[off + 2] << 8 | data[off + 3]);
			(void)dns_scan_response(m, size, &rq, 300, a, 8, &na);
			if (na > 8)
				abort();
			for (size_t i = 0; i < na; i++)
				if (a[i].ttl > 300)
					abort();
		}
	}
	if (tls_sni(data, size, name) == 1) {
		check_name(name);
		(void)dns_allow_match(allow, name);
	}
	if (http_host(data, size, name) == 1) {
		check_name(name);
		(void)dns_allow_match(allow, name);
		/* the strict relay's framing of that request, its rewritten
		 * head, and a chunked body fed in uneven pieces */
		size_t head;
		long long body;
		if (http_request_frame(data, size, &head, &body) == 0) {
			if (head > size)
				abort();
			uint8_t *out = malloc(head + 20);
			if (!out || http_close_head(data, head, out) > head + 19)
				abort();
			free(out);
		}
	}
	struct http_chunked ch = { 0 };
	size_t off = 0, step = 1 + size % 5;
	while (off < size && !ch.done) {
		size_t k = size - off < step ? size - off : step;
		long used = http_chunked_feed(&ch, data + off, k);
		if (used < 0)
			break;
		if ((size_t)used > k)
			abort();
		if ((size_t)used < k && !ch.done)
			abort(); /* bytes left over only past the body's end */
		off += (size_t)used;
		if ((size_t)used < k)
			break;
	}
	free(m);
	dns_allow_free(allow);
	return 0;
}
