/* SHA-256 (FIPS 180-4), one-shot: what envd's signed file URLs are made
 * with.  No I/O. */
#ifndef VMSAN_SHA256_H
#define VMSAN_SHA256_H

#include <stddef.h>
#include <stdint.h>

void sha256(const void *data, size_t len, uint8_t out[32]);

#endif
