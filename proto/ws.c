/* WebSocket framing (RFC 6455), SHA-1 (FIPS 180-4) and base64 (RFC 4648). */
#include "ws.h"
#include "md.h"

#include <string.h>

int ws_parse_header(const uint8_t *buf, size_t len, bool require_mask, uint64_t max_payload, struct ws_frame *f)
{
	if (len < 2)
		return 0;
	uint8_t b0 = buf[0], b1 = buf[1];
	if (b0 & 0x70)
		return -WS_CLOSE_PROTOCOL; /* no extensions negotiated */
	f->fin = b0 & 0x80;
	f->opcode = b0 & 0x0f;
	switch (f->opcode) {
	case WS_CONT:
	case WS_TEXT:
	case WS_BINARY: break;
	case WS_CLOSE:
	case WS_PING:
	case WS_PONG:
		if (!f->fin || (b1 & 0x7f) > 125)
			return -WS_CLOSE_PROTOCOL;
		break;
	default: return -WS_CLOSE_PROTOCOL;
	}
	f->masked = b1 & 0x80;
	if (f->masked != require_mask)
		return -WS_CLOSE_PROTOCOL;
	size_t need = 2;
	uint64_t plen = b1 & 0x7f;
	if (plen == 126) {
		need += 2;
		if (len < need)
			return 0;
		plen = (uint64_t)buf[2] << 8 | buf[3];
		if (plen < 126)
			return -WS_CLOSE_PROTOCOL;
	} else if (plen == 127) {
		need += 8;
		if (len < need)
			return 0;
		plen = 0;
		for (int i = 0; i < 8; i++)
			plen = plen << 8 | buf[2 + i];
		if (plen >> 63 || plen <= 0xffff)
			return -WS_CLOSE_PROTOCOL;
	}
	if (f->masked) {
		if (len < need + 4)
			return 0;
		memcpy(f->mask, buf + need, 4);
		need += 4;
	}
	if (plen > max_payload)
		return -WS_CLOSE_TOO_BIG;
	f->len = plen;
	f->hdrlen = need;
	return 1;
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
	for (size_t i = 0; i < n; i++)
		p[i] ^= mask[(offset + i) & 3];
}

size_t ws_encode_header(uint8_t *out, int opcode, bool fin, uint64_t len, const uint8_t *mask)
{
	size_t n = 0;
	out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	uint8_t m = mask ? 0x80 : 0;
	if (len < 126) {
		out[n++] = (uint8_t)(m | len);
	} else if (len <= 0xffff) {
		out[n++] = m | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = m | 127;
		for (int i = 7; i >= 0; i--)
			out[n++] = (uint8_t)(len >> (8 * i));
	}
	if (mask) {
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

/* UTF-8 as RFC 3629 defines it: no overlongs, no surrogates, <= U+10FFFF.
 * State: bits 0-7 continuation bytes still expected, 8-15 and 16-23 the
 * range the next byte must fall in. */
uint32_t ws_utf8_step(uint32_t st, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && st != WS_UTF8_REJECT; i++) {
		uint32_t b = p[i];
		uint32_t need = st & 0xff;
		if (need) {
			uint32_t lo = (st >> 8) & 0xff, hi = (st >> 16) & 0xff;
			if (b < lo || b > hi)
				return WS_UTF8_REJECT;
			st = (need - 1) ? ((need - 1) | 0x80u << 8 | 0xbfu << 16) : 0;
			continue;
		}
		if (b < 0x80)
			continue;
		else if (b >= 0xc2 && b <= 0xdf)
			st = 1 | 0x80u << 8 | 0xbfu << 16;
		else if (b == 0xe0)
			st = 2 | 0xa0u << 8 | 0xbfu << 16;
		else if (b == 0xed)
			st = 2 | 0x80u << 8 | 0x9fu << 16;
		else if (b >= 0xe1 && b <= 0xef)
			st = 2 | 0x80u << 8 | 0xbfu << 16;
		else if (b == 0xf0)
			st = 3 | 0x90u << 8 | 0xbfu << 16;
		else if (b >= 0xf1 && b <= 0xf3)
			st = 3 | 0x80u << 8 | 0xbfu << 16;
		else if (b == 0xf4)
			st = 3 | 0x80u << 8 | 0x8fu << 16;
		else
			return WS_UTF8_REJECT;
	}
	return st;
}

/* ---- SHA-1 (only for the handshake; not used for anything secret) ---- */

static uint32_t rol(uint32_t x, int n)
{
	return x << n | x >> (32 - n);
}

static void sha1_block(uint32_t *h, const uint8_t *p)
{
	uint32_t w[80];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
		       p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		uint32_t t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void sha1(const void *data, size_t len, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
	md_hash(data, len, h, 5, sha1_block, out);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = 0;
	return o;
}

ssize_t base64_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
	if (n % 4)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			const char *c = in[i + j] ? strchr(b64, in[i + j]) : NULL;
			if (in[i + j] == '=' && i + 4 == n && j >= 2) {
				pad++;
				v <<= 6;
				continue;
			}
			if (!c || pad)
				return -1;
			v = v << 6 | (uint32_t)(c - b64);
		}
		size_t k = (size_t)(3 - pad);
		if (o + k > outlen)
			return -1;
		out[o++] = (uint8_t)(v >> 16);
		if (k > 1)
			out[o++] = (uint8_t)(v >> 8);
		if (k > 2)
			out[o++] = (uint8_t)v;
	}
	return (ssize_t)o;
}

int ws_accept_key(const char *key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t raw[16], dig[20];
	size_t kl = strlen(key);
	if (kl != 24 || base64_decode(key, kl, raw, sizeof raw) != 16)
		return -1;
	char buf[24 + sizeof guid];
	memcpy(buf, key, 24);
	memcpy(buf + 24, guid, sizeof guid);
	sha1(buf, 24 + sizeof guid - 1, dig);
	base64_encode(dig, 20, out);
	return 0;
}
