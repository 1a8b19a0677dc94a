/* GET /sandboxes/{id}/metrics: what the host sees of a sandbox, read from
 * its VMM process (checked to be the one the record names: its start time)
 * and its disk file.  CPU use is measured over 100 ms. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"

struct sample {
	unsigned long long ticks, start;
	long rss_pages;
};

static int sample(long pid, struct sample *s)
{
	char path[64], buf[2048];
	int fd;
	ssize_t n;
	unsigned long long ut, st;

	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* After the command name, which may hold spaces and parentheses. */
	char *p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %*u %ld",
		   &ut, &st, &s->start, &s->rss_pages) != 4)
		return -1;
	s->ticks = ut + st;
	return 0;
}

enum MHD_Result do_metrics(struct req *q, const struct box *b)
{
	struct verr e = { 0 };
	json_t *rec = run_vm_record(b->id, &e), *out;
	json_int_t pid = json_integer_value(json_object_get(json_object_get(rec, "process"), "pid"));
	json_int_t start = json_integer_value(json_object_get(json_object_get(rec, "process"), "startTime"));
	const char *disk = json_string_value(json_object_get(rec, "disk"));
	struct sample a, z;
	struct stat st;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

	if (!rec || strcmp(json_string_value(json_object_get(rec, "status")) ?: "", "running") ||
	    sample((long)pid, &a) != 0 || a.start != (unsigned long long)start) {
		json_decref(rec);
		return http_json(q, 200, json_array()); /* E2B: no metrics of a sandbox not running */
	}
	nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	if (sample((long)pid, &z) != 0 || z.start != a.start)
		z = a;
	double pct = (double)(z.ticks - a.ticks) * 100.0 / ((double)hz * 0.1) / (b->vcpus ? b->vcpus : 1);
	out = json_pack("[{s:I, s:s, s:i, s:f, s:I, s:I, s:I, s:I, s:I}]", "timestampUnix", (json_int_t)time(NULL),
			"timestamp", "", "cpuCount", b->vcpus, "cpuUsedPct", pct > 100 ? 100.0 : pct, "memUsed",
			(json_int_t)z.rss_pages * page, "memTotal", (json_int_t)b->mem_mib << 20, "memCache",
			(json_int_t)0, "diskUsed",
			(json_int_t)(disk && stat(disk, &st) == 0 ? (json_int_t)st.st_blocks * 512 : 0), "diskTotal",
			(json_int_t)b->disk_mib << 20);
	char ts[32];
	struct tm tm;
	time_t now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(json_array_get(out, 0), "timestamp", json_string(ts));
	json_decref(rec);
	return http_json(q, 200, out);
}
