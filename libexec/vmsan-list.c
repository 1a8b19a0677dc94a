/* vmsan list: the VM table, or with --json the array of records.
 *
 * Porcelain written in C rather than sh + jq: jq alone costs ~30 ms to
 * start on our machines, and listing 1000 VMs has a 50 ms budget
 * (BENCHMARKS.md).  It reads records through the same state_list() as
 * vmsan-state, so status derivation and error reporting are shared.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/vmsan.h"

#define NCOLS 8

static const char usage[] = "usage: vmsan list [--json] [ID...]\n"
			    "\n"
			    "Lists VMs, newest first: a table, or with --json an array of VM records.\n"
			    "Status is derived, not trusted: a VM whose process is gone shows as\n"
			    "\"error\" whatever its record says (a running one's reason begins\n"
			    "\"crashed:\", and with --json its console's last lines are in\n"
			    "consoleTail).  A record that cannot be read is\n"
			    "reported on stderr by file name and the others are still listed; the\n"
			    "exit status is 1 only when a VM named on the command line is missing\n"
			    "or unreadable.\n";

static time_t parse_utc(const char *s)
{
	struct tm tm = { 0 };

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			 &tm.tm_sec) != 6)
		return (time_t)-1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

static void ago(char *buf, size_t n, const char *when, time_t now)
{
	time_t t = parse_utc(when);
	long d = t == (time_t)-1 ? -1 : (long)(now - t);

	if (d < 0)
		snprintf(buf, n, "%s", d == -1 && t == (time_t)-1 ? "-" : "just now");
	else if (d < 30)
		snprintf(buf, n, "just now");
	else if (d < 90)
		snprintf(buf, n, "1 minute ago");
	else if (d < 3600)
		snprintf(buf, n, "%ld minutes ago", d / 60);
	else if (d < 5400)
		snprintf(buf, n, "1 hour ago");
	else if (d < 86400)
		snprintf(buf, n, "%ld hours ago", d / 3600);
	else if (d < 172800)
		snprintf(buf, n, "1 day ago");
	else
		snprintf(buf, n, "%ld days ago", d / 86400);
}

static void until(char *buf, size_t n, const char *when, time_t now)
{
	time_t t = parse_utc(when);
	long d = (long)(t - now);

	if (t == (time_t)-1)
		snprintf(buf, n, "-");
	else if (d <= 0)
		snprintf(buf, n, "expired");
	else if (d < 90)
		snprintf(buf, n, "in %ld seconds", d);
	else if (d < 5400)
		snprintf(buf, n, "in %ld minutes", d / 60);
	else
		snprintf(buf, n, "in %ld hours", d / 3600);
}

static const char *str_or(json_t *rec, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(rec, key));

	return s && *s ? s : dflt;
}

static const char *status_color(const char *s)
{
	static const char *const map[][2] = {
		{ "running", "36" }, { "creating", "35" }, { "stopped", "2" }, { "error", "31" }
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
		if (strcmp(s, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

static void print_table(json_t *vms, bool color)
{
	static const char *const head[NCOLS] = { "ID",	  "STATUS",  "CREATED", "MEMORY",
						 "VCPUS", "RUNTIME", "TIMEOUT", "SNAPSHOT" };
	size_t rows = json_array_size(vms) + 1, w[NCOLS] = { 0 }, i;
	char(*cell)[NCOLS][72] = calloc(rows, sizeof(*cell));
	time_t now = time(NULL);
	json_t *rec;

	if (!cell) {
		fputs("vmsan list: out of memory\n", stderr);
		return;
	}
	for (int c = 0; c < NCOLS; c++)
		snprintf(cell[0][c], sizeof(cell[0][c]), "%s", head[c]);
	json_array_foreach(vms, i, rec) {
		char(*row)[72] = cell[i + 1];
		json_t *mem = json_object_get(rec, "memSizeMib");
		json_t *cpu = json_object_get(rec, "vcpuCount");

		snprintf(row[0], 72, "%s", str_or(rec, "id", "?"));
		snprintf(row[1], 72, "%s", str_or(rec, "status", "?"));
		ago(row[2], 72, str_or(rec, "createdAt", NULL), now);
		if (json_is_integer(mem))
			snprintf(row[3], 72, "%lld MiB", json_integer_value(mem));
		else
			snprintf(row[3], 72, "-");
		if (json_is_integer(cpu))
			snprintf(row[4], 72, "%lld", json_integer_value(cpu));
		else
			snprintf(row[4], 72, "-");
		snprintf(row[5], 72, "%s", str_or(rec, "runtime", str_or(rec, "image", "-")));
		until(row[6], 72, str_or(rec, "timeoutAt", NULL), now);
		snprintf(row[7], 72, "%s", str_or(rec, "snapshot", "-"));
	}
	for (i = 0; i < rows; i++)
		for (int c = 0; c < NCOLS; c++)
			if (strlen(cell[i][c]) > w[c])
				w[c] = strlen(cell[i][c]);
	for (i = 0; i < rows; i++) {
		for (int c = 0; c < NCOLS; c++) {
			const char *code = (c == 1 && i > 0 && color) ? status_color(cell[i][c]) : NULL;
			int pad = c < NCOLS - 1 ? (int)(w[c] - strlen(cell[i][c]) + 2) : 0;

			if (code)
				printf("\033[%sm%s\033[0m%*s", code, cell[i][c], pad, "");
			else
				printf("%s%*s", cell[i][c], pad, "");
		}
		putchar('\n');
	}
	free(cell);
}

/* --complete: the options, then the ids of the VMs there are. */
static void complete(void)
{
	struct state st = { .vmsfd = -1 };
	struct verr e = { 0 };
	json_t *vms = NULL, *errors = NULL, *rec;
	size_t i;

	puts("--json");
	if (state_list(&st, NULL, &vms, &errors, &e) == 0)
		json_array_foreach(vms, i, rec)
			puts(str_or(rec, "id", ""));
	json_decref(vms);
	json_decref(errors);
}

/* The command line: --json into *json, the ids asked for into ids.  -1 to
 * go on, else the exit status (a flag answered, or bad usage reported). */
static int parse_args(int argc, char **argv, bool *json, json_t *ids)
{
	bool dashdash = false;
	struct verr e = { 0 };

	for (int a = 1; a < argc; a++) {
		const char *s = argv[a];

		if (!dashdash && strcmp(s, "--") == 0) {
			dashdash = true;
		} else if (!dashdash && strcmp(s, "--help") == 0) {
			fputs(usage, stdout);
			return VMSAN_EXIT_OK;
		} else if (!dashdash && strcmp(s, "--summary") == 0) {
			puts("list VMs and their status");
			return VMSAN_EXIT_OK;
		} else if (!dashdash && strcmp(s, "--complete") == 0) {
			complete();
			return VMSAN_EXIT_OK;
		} else if (!dashdash && strcmp(s, "--json") == 0) {
			*json = true;
		} else if (!dashdash && s[0] == '-') {
			verr_set(&e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see 'vmsan list --help'", "unknown option '%.64s'",
				 s);
			return report_error("list", *json, &e);
		} else {
			json_array_append_new(ids, json_string(s));
		}
	}
	return -1;
}

/* Records that could not be read, named on stderr (the rest are listed). */
static void report_skipped(const struct state *st, json_t *errors)
{
	json_t *err;
	size_t i;

	json_array_foreach(errors, i, err) {
		const char *file = str_or(err, "file", "");

		if (*file)
			fprintf(stderr, "vmsan list: skipping %s/%s: %s\n", st->vms, file, str_or(err, "message", ""));
		else
			fprintf(stderr, "vmsan list: skipping %s: %s\n", str_or(err, "id", "?"),
				str_or(err, "message", ""));
	}
}

/* A VM whose VMM died: its console's last lines (at most 10, from its
 * last 4 KiB), as consoleTail, for what the guest printed before it. */
#define TAIL_BYTES 4096
#define TAIL_LINES 10
static void console_tail(json_t *rec)
{
	char path[PATH_MAX], buf[TAIL_BYTES + 1];
	const char *dir = str_or(rec, "dir", ""), *p;
	json_t *lines;
	off_t size;
	ssize_t n;
	int fd, k = 0;

	if (strcmp(str_or(rec, "status", ""), "error") || strcmp(str_or(rec, "recordedStatus", ""), "running") ||
	    !*dir || snprintf(path, sizeof path, "%s/console.log", dir) >= (int)sizeof path)
		return;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	n = size < 0 ? -1 : pread(fd, buf, TAIL_BYTES, size > TAIL_BYTES ? size - TAIL_BYTES : 0);
	close(fd);
	if (n < 0)
		return;
	buf[n] = 0;
	/* what a guest printed, kept to printable ASCII */
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != '\n' && buf[i] != '\t' && ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e))
			buf[i] = buf[i] == '\r' ? '\r' : '?';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	for (p = buf + n; p > buf && k < TAIL_LINES; p--)
		if (p[-1] == '\n' && ++k == TAIL_LINES)
			break;
	lines = json_array();
	while (*p) {
		size_t l = strcspn(p, "\n");
		size_t t = l && p[l - 1] == '\r' ? l - 1 : l;

		json_array_append_new(lines, json_stringn(p, t));
		p += l + (p[l] ? 1 : 0);
	}
	json_object_set_new(rec, "consoleTail", lines);
}

/* The VMs on stdout, as JSON or as the table: 0, or -1 when stdout
 * failed. */
static int print_vms(json_t *vms, bool json)
{
	int rc = 0;

	if (json) {
		char *text = json_dumps(vms, JSON_COMPACT | JSON_ENSURE_ASCII);

		if (!text || puts(text) == EOF)
			rc = -1;
		free(text);
	} else if (json_array_size(vms) == 0) {
		puts("No VMs found.");
	} else {
		print_table(vms, isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && getenv("TERM") &&
					 strcmp(getenv("TERM"), "dumb"));
	}
	if (fflush(stdout) != 0)
		rc = -1;
	return rc;
}

int main(int argc, char **argv)
{
	const char *env = getenv("VMSAN_JSON");
	bool json = env && strcmp(env, "1") == 0;
	struct state st = { .vmsfd = -1 };
	struct verr e = { 0 };
	json_t *ids = json_array(), *vms = NULL, *errors = NULL, *err;
	int rc;

	vmsan_prog = "vmsan list";
	rc = parse_args(argc, argv, &json, ids);
	if (rc >= 0)
		goto out;
	rc = VMSAN_EXIT_OK;
	if (state_list(&st, json_array_size(ids) ? ids : NULL, &vms, &errors, &e) != 0) {
		/* "request.ids[N]: why" is the helper's wording; a user typed an id. */
		const char *colon = strstr(e.message, "]: ");

		if (colon && strncmp(e.message, "request.ids[", 12) == 0)
			memmove(e.message, colon + 3, strlen(colon + 3) + 1);
		rc = report_error("list", json, &e);
		goto out;
	}
	report_skipped(&st, errors);
	if (json_array_size(ids) && json_array_size(errors)) {
		err = json_array_get(errors, 0);
		verr_set(&e, VMSAN_EXIT_FAIL, str_or(err, "code", "ERR_VM_NOT_FOUND"),
			 "run 'vmsan list' to see your VMs", "%s", str_or(err, "message", ""));
		if (json) {
			rc = report_error("list", json, &e);
			goto out;
		}
		rc = VMSAN_EXIT_FAIL;
	}
	if (json) {
		size_t i;
		json_t *v;

		json_array_foreach(vms, i, v)
			console_tail(v);
	}
	if (print_vms(vms, json) < 0)
		rc = VMSAN_EXIT_SYS;
out:
	json_decref(ids);
	json_decref(vms);
	json_decref(errors);
	return rc;
}
