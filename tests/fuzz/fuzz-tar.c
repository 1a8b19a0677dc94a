/* libFuzzer target: the tar reader (ustar, pax, GNU long names) on
 * arbitrary bytes.  Build: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct src {
	const uint8_t *p;
	size_t n, off;
};

static ssize_t rd(void *ctx, void *buf, size_t n)
{
	struct src *s = ctx;
	size_t k = s->n - s->off < n ? s->n - s->off : n;
	if (k > 700)
		k = 700; /* short reads, as from a socket */
	memcpy(buf, s->p + s->off, k);
	s->off += k;
	return (ssize_t)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct src s = { data, size, 0 };
	struct tar_reader t;
	struct tar_entry *e;
	char buf[4096], clean[4200];
	tar_reader_init(&t, rd, &s);
	for (int i = 0; i < 64 && tar_next(&t, &e) == 1; i++) {
		tar_clean_path(e->path, clean, sizeof clean);
		while (tar_data(&t, buf, sizeof buf) > 0)
			;
	}
	tar_reader_free(&t);
	return 0;
}
