/* The Merkle-Damgard frame SHA-1 and SHA-256 share (FIPS 180-4, 5.1.1 and
 * 6.1.2/6.2.2): 64-byte blocks, the message padded with 0x80, zeros and its
 * length in bits (64-bit big-endian), the state output big-endian.  The
 * guest agent is one static binary under 1 MiB with zlib alone; a crypto
 * library for two one-shot hashes (the WebSocket accept key, envd's
 * signed URLs) would be most of it. */
#ifndef VMSAN_MD_H
#define VMSAN_MD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void md_hash(const void *data, size_t len, uint32_t *h, size_t nwords,
			   void (*block)(uint32_t *h, const uint8_t *p), uint8_t *out)
{
	const uint8_t *p = data;
	size_t n = len, tl;
	uint8_t tail[128] = { 0 };
	uint64_t bits = (uint64_t)len * 8;

	for (; n >= 64; p += 64, n -= 64)
		block(h, p);
	memcpy(tail, p, n);
	tail[n] = 0x80;
	tl = n < 56 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
	block(h, tail);
	if (tl == 128)
		block(h, tail + 64);
	for (size_t i = 0; i < nwords; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}

#endif
