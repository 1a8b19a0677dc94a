/* Table-driven tests of every validator: good values, bad values, and the
 * parsed result where there is one.  Prints TAP. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/vmsan.h"

static int ntest, nfail;

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(int cond, const char *fmt, ...)
{
	va_list ap;

	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - ", cond ? "" : "not ", ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

struct vcase {
	const char *in;
	int good;
	const char *why; /* substring the error must contain (bad cases) */
};

static void run(const char *name, validator_fn fn, const struct vcase *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char why[256] = "", shown[80];
		int rc = fn(c[i].in, why, sizeof(why));

		/* Keep TAP to one line per test whatever the input holds. */
		snprintf(shown, sizeof(shown), "%s", c[i].in);
		for (char *p = shown; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = '?';
		if (c[i].good)
			ok(rc == 0, "%s accepts '%s'", name, shown);
		else
			ok(rc != 0 && (!c[i].why || strstr(why, c[i].why)), "%s rejects '%s'", name, shown);
		if (!c[i].good && rc != 0 && c[i].why && !strstr(why, c[i].why))
			printf("#   message was: %s\n", why);
	}
}

#define RUN(name, fn, tbl) run(name, fn, tbl, sizeof(tbl) / sizeof(*tbl))

static const struct vcase vm_ids[] = {
	{ "vm-1a2b3c4d", 1, NULL },
	{ "a", 1, NULL },
	{ "0", 1, NULL },
	{ "my-vm-2", 1, NULL },
	{ "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk", 1, NULL }, /* 63 */
	{ "", 0, "empty" },
	{ "../x", 0, "start" },
	{ "A B", 0, "start" },
	{ "vm-ABCD", 0, "only" },
	{ "vm x", 0, "only" },
	{ "-vm", 0, "start" },
	{ "vm/../../etc", 0, "only" },
	{ "vm.json", 0, "only" },
	{ "vm_1", 0, "only" },
	{ "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqr", 0, "70" },
	{ "vm-1\n", 0, "only" },
};

static const struct vcase snapshot_ids[] = {
	{ "vm-1a2b3c4d-1700000000000", 1, NULL },
	{ "a-1", 1, NULL },
	{ "../vms", 0, NULL },
	{ "vm-1a2b3c4d", 0, "digits" },
	{ "vm-1a2b3c4d-", 0, NULL },
	{ "-123", 0, NULL },
	{ "VM-1-123", 0, "valid VM id" },
	{ "vm-1-12a", 0, "digits" },
	{ "vm-1-123456789012345678901", 0, "too long" },
};

static const struct vcase ifnames[] = {
	{ "vmsveth0", 1, NULL },	{ "vms-1a2b3c4d", 1, NULL },	 { "vms_tap", 1, NULL },
	{ "vms123456789012", 1, NULL }, /* 15 */
	{ "eth0", 0, "not ours" },	{ "vms1234567890123", 0, "15" }, { "vms a", 0, "only" },
	{ "vms/x", 0, "only" },		{ "vms:1", 0, "only" },		 { "", 0, "not ours" },
	{ "vm", 0, "not ours" },
};

static const struct vcase ipv4s[] = {
	{ "10.0.0.1", 1, NULL },  { "0.0.0.0", 1, NULL },   { "255.255.255.255", 1, NULL }, { "172.16.0.2", 1, NULL },
	{ "256.0.0.1", 0, NULL }, { "10.0.0", 0, NULL },    { "10.0.0.1.2", 0, NULL },	    { "010.0.0.1", 0, NULL },
	{ "10.0.0.1 ", 0, NULL }, { " 10.0.0.1", 0, NULL }, { "10.0.0.-1", 0, NULL },	    { "a.b.c.d", 0, NULL },
	{ "", 0, NULL },	  { "1..2.3", 0, NULL },    { "1000.0.0.1", 0, NULL },	    { "::1", 0, NULL },
};

static const struct vcase cidrs[] = {
	{ "10.0.0.0/8", 1, NULL },
	{ "0.0.0.0/0", 1, NULL },
	{ "255.255.255.255/32", 1, NULL },
	{ "192.168.1.0/24", 1, NULL },
	{ "10.0.0.7", 1, NULL },
	{ "10.1.2.3/32", 1, NULL },
	{ "10.0.0.5/24", 0, "did you mean 10.0.0.0/24" },
	{ "10.0.0.0/33", 0, "more than 32" },
	{ "10.0.0.0/", 0, "prefix" },
	{ "10.0.0/24", 0, "CIDR" },
	{ "not-cidr", 0, "CIDR" },
	{ "256.0.0.0/8", 0, "CIDR" },
	{ "10.0.0.0/08", 0, "prefix" },
	{ "10.0.0.0/-1", 0, "prefix" },
	{ "10.0.0.0/123", 0, "prefix" },
	{ "10.0.0.0/24 ", 0, "prefix" },
	{ "", 0, "CIDR" },
};

static const struct vcase ports[] = {
	{ "1", 1, NULL },     { "80", 1, NULL },  { "65535", 1, NULL }, { "0", 0, NULL },
	{ "65536", 0, NULL }, { "-1", 0, NULL },  { "80.5", 0, NULL },	{ "http", 0, NULL },
	{ "", 0, NULL },      { "080", 0, NULL }, { "+80", 0, NULL },	{ "100000", 0, NULL },
};

static const struct vcase port_ranges[] = {
	{ "80", 1, NULL },
	{ "8000-8080", 1, NULL },
	{ "1-65535", 1, NULL },
	{ "443-443", 1, NULL },
	{ "8080-8000", 0, "backwards" },
	{ "0-10", 0, NULL },
	{ "10-", 0, NULL },
	{ "-10", 0, NULL },
	{ "1-2-3", 0, NULL },
	{ "a-b", 0, NULL },
	{ "1-70000", 0, NULL },
};

static const struct vcase sizes[] = {
	{ "512", 1, NULL },
	{ "1G", 1, NULL },
	{ "1g", 1, NULL },
	{ "1GiB", 1, NULL },
	{ "10gb", 1, NULL },
	{ "512M", 1, NULL },
	{ "64k", 1, NULL },
	{ "2T", 1, NULL },
	{ "4096B", 1, NULL },
	{ "0", 0, "more than zero" },
	{ "-1", 0, NULL },
	{ "1.5G", 0, "unit" },
	{ "G", 0, NULL },
	{ "1X", 0, "unit" },
	{ "1GG", 0, "unit" },
	{ "", 0, NULL },
	{ "99999999999999999999", 0, "too large" },
	{ "20000000T", 0, "too large" },
	{ "1 G", 0, "unit" },
};

static const struct vcase domains[] = {
	{ "example.com", 1, NULL },
	{ "*.github.com", 1, NULL },
	{ "API.Example.COM", 1, NULL },
	{ "example.com.", 1, NULL },
	{ "a-b.c", 1, NULL },
	{ "localhost", 1, NULL },
	{ "xn--bcher-kva.example", 1, NULL },
	{ "*.", 0, "needs a domain" },
	{ "a..b", 0, "empty label" },
	{ "*foo.com", 0, "wildcard" },
	{ "example.*.com", 0, "wildcard" },
	{ "*.*.example.com", 0, "wildcard" },
	{ "exam_ple.com", 0, "only" },
	{ "-a.com", 0, "starting" },
	{ "a-.com", 0, "ending" },
	{ "a b.com", 0, "only" },
	{ "a\nb.com", 0, "only" },
	{ "", 0, "empty" },
	{ ".", 0, "empty" },
	{ "example.com..", 0, "empty label" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", 0, "63" },
};

static const struct vcase timestamps[] = {
	{ "2026-11-23T20:41:00Z", 1, NULL },
	{ "2026-11-23 20:41:00Z", 0, NULL },
	{ "2026-11-23T20:41:00", 0, NULL },
	{ "2026-11-23T20:41:00.123Z", 0, NULL },
	{ "", 0, NULL },
};

static void test_parsed_values(void)
{
	unsigned a, p, lo, hi;
	unsigned long long b;
	char why[256], out[256];

	ok(parse_cidr("10.1.0.0/16", &a, &p, why, sizeof(why)) == 0 && a == 0x0a010000 && p == 16, "parse_cidr %s%s",
	   "10.1.0.0/16 -> 0x0a010000/16", "");
	ok(parse_cidr("10.1.2.3", &a, &p, why, sizeof(why)) == 0 && p == 32, "parse_cidr %s%s", "bare address is /32",
	   "");
	ok(parse_port_range("8000-8080", &lo, &hi, why, sizeof(why)) == 0 && lo == 8000 && hi == 8080,
	   "parse_port_range %s%s", "8000-8080", "");
	ok(parse_size("512", 20, &b, why, sizeof(why)) == 0 && b == 512ULL << 20, "parse_size %s%s", "512 in MiB units",
	   "");
	ok(parse_size("1G", 20, &b, why, sizeof(why)) == 0 && b == 1ULL << 30, "parse_size %s%s", "1G = 2^30", "");
	ok(parse_size("4096b", 20, &b, why, sizeof(why)) == 0 && b == 4096, "parse_size %s%s", "4096b = 4096 bytes",
	   "");
	ok(normalize_domain("API.Example.COM.", out, sizeof(out), why, sizeof(why)) == 0 &&
		   strcmp(out, "api.example.com") == 0,
	   "normalize_domain %s%s", "folds case, drops dot", "");
	ok(normalize_domain("*.GitHub.com", out, sizeof(out), why, sizeof(why)) == 0 &&
		   strcmp(out, "*.github.com") == 0,
	   "normalize_domain %s%s", "keeps *.", "");
	{
		/* 300-character names are refused whatever their labels. */
		char longname[301];

		for (int i = 0; i < 300; i++)
			longname[i] = (i % 50 == 49) ? '.' : 'a';
		longname[300] = '\0';
		ok(valid_domain(longname, why, sizeof(why)) != 0 && strstr(why, "253"), "valid_domain %s%s",
		   "rejects a 300-character name", "");
		/* 253 characters in labels of 63: accepted. */
		memset(longname, 'a', 253);
		longname[63] = longname[127] = longname[191] = '.';
		longname[253] = '\0';
		ok(valid_domain(longname, why, sizeof(why)) == 0, "valid_domain %s%s", "accepts a 253-character name",
		   "");
	}
}

int main(void)
{
	RUN("valid_vm_id", valid_vm_id, vm_ids);
	RUN("valid_snapshot_id", valid_snapshot_id, snapshot_ids);
	RUN("valid_ifname", valid_ifname, ifnames);
	RUN("valid_ipv4", valid_ipv4, ipv4s);
	RUN("valid_cidr", valid_cidr, cidrs);
	RUN("valid_port", valid_port, ports);
	RUN("valid_port_range", valid_port_range, port_ranges);
	RUN("valid_size", valid_size, sizes);
	RUN("valid_domain", valid_domain, domains);
	RUN("valid_timestamp", valid_timestamp, timestamps);
	test_parsed_values();
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
