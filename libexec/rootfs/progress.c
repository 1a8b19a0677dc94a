/* progress.c: the one progress line a build shows on stderr, when the
 * request asked for it and stderr is a terminal (pull's "progress"). */
#include "rootfs/rootfs.h"

#include <stdio.h>

bool progress_on;

void show_progress(void *ctx, uint64_t done)
{
	struct progress *p = ctx;
	double t = now_s();
	if (!progress_on || (t - p->last < 0.1 && done < p->total))
		return;
	p->last = t;
	fprintf(stderr, "\r%s: %.1f/%.1f MiB %3d%%\033[K", p->what, (double)done / 1048576.0,
		(double)p->total / 1048576.0, p->total ? (int)(done * 100 / p->total) : 100);
}

void progress_end(void)
{
	if (progress_on)
		fputs("\r\033[K", stderr);
}
