/* Validators for everything a user or a caller can name.  Each returns 0
 * when the value is good, else -1 with a sentence in why. */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmsan.h"

/* A validator's refusal: the sentence into why (n bytes), then -1; what
 * verr_fail is to a verr, for callers that hold only a buffer. */
static int why_fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why_fail(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9][a-z0-9-]{0,62}: safe in a path, a netns name and a table name. */
int valid_vm_id(const char *s, char *why, size_t n)
{
	size_t len = strlen(s);

	if (len == 0)
		return why_fail(why, n, "a VM id cannot be empty");
	if (len > 63)
		return why_fail(why, n, "VM id is %zu characters long; the limit is 63", len);
	if (!is_lower_alnum(s[0]))
		return why_fail(why, n, "VM id '%.63s' must start with a-z or 0-9", s);
	for (size_t i = 1; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return why_fail(why, n, "VM id '%.63s' may contain only a-z, 0-9 and '-'", s);
	return 0;
}

/* Snapshot ids are a VM id, '-', and a millisecond timestamp. */
int valid_snapshot_id(const char *s, char *why, size_t n)
{
	const char *dash = strrchr(s, '-');
	char vm[64];
	size_t vlen;

	if (!dash || dash == s || !dash[1])
		return why_fail(why, n, "snapshot id '%.80s' must look like <vm-id>-<digits>", s);
	for (const char *p = dash + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return why_fail(why, n, "snapshot id '%.80s' must end in -<digits>", s);
	if (strlen(dash + 1) > 20)
		return why_fail(why, n, "snapshot id '%.80s' has too long a number", s);
	vlen = (size_t)(dash - s);
	if (vlen >= sizeof(vm))
		return why_fail(why, n, "snapshot id '%.80s' is too long", s);
	memcpy(vm, s, vlen);
	vm[vlen] = '\0';
	if (valid_vm_id(vm, why, n) != 0)
		return why_fail(why, n, "snapshot id '%.80s' does not start with a valid VM id", s);
	return 0;
}

/* Interface names we create: "vms" prefix, fits IFNAMSIZ (15 + NUL),
 * and only characters the kernel and every tool accept. */
int valid_ifname(const char *s, char *why, size_t n)
{
	size_t len = strlen(s);

	if (strncmp(s, "vms", 3) != 0)
		return why_fail(why, n, "interface '%.32s' is not ours: names must start with 'vms'", s);
	if (len > 15)
		return why_fail(why, n, "interface name '%.32s' is longer than 15 characters", s);
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return why_fail(why, n, "interface name '%.32s' may contain only letters, digits, '-' and '_'",
					s);
	return 0;
}

/* Dotted quad, each part 0-255 without leading zeros (which some parsers
 * read as octal: 010 would be 8). */
int parse_ipv4(const char *s, unsigned *addr)
{
	unsigned a = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		int digits = 0;

		if (part && *s++ != '.')
			return -1;
		if (s[0] == '0' && isdigit((unsigned char)s[1]))
			return -1;
		while (isdigit((unsigned char)*s) && digits < 4) {
			v = v * 10 + (unsigned)(*s++ - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || v > 255)
			return -1;
		a = (a << 8) | v;
	}
	if (*s)
		return -1;
	*addr = a;
	return 0;
}

int valid_ipv4(const char *s, char *why, size_t n)
{
	unsigned a;

	if (parse_ipv4(s, &a) != 0)
		return why_fail(why, n, "'%.64s' is not an IPv4 address (expected four numbers 0-255 like 10.0.0.1)",
				s);
	return 0;
}

/* a.b.c.d/len with the host bits clear; a bare address means /32. */
int parse_cidr(const char *s, unsigned *addr, unsigned *prefix, char *why, size_t n)
{
	char ip[16];
	const char *slash = strchr(s, '/');
	size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned a, p = 32;

	if (iplen >= sizeof(ip) || (memcpy(ip, s, iplen), ip[iplen] = '\0', parse_ipv4(ip, &a) != 0))
		return why_fail(why, n, "'%.64s' is not an IPv4 CIDR (expected a.b.c.d/len, like 10.0.0.0/8)", s);
	if (slash) {
		const char *q = slash + 1;

		if (!isdigit((unsigned char)q[0]) || (q[1] && !isdigit((unsigned char)q[1])) || (q[1] && q[2]) ||
		    (q[0] == '0' && q[1]))
			return why_fail(why, n, "'%.64s': prefix length must be a number 0-32", s);
		p = (unsigned)(q[0] - '0');
		if (q[1])
			p = p * 10 + (unsigned)(q[1] - '0');
		if (p > 32)
			return why_fail(why, n, "'%.64s': prefix length %u is more than 32", s, p);
	}
	if (p < 32 && (a & (0xffffffffu >> p))) {
		unsigned net = a & ~(0xffffffffu >> p);

		return why_fail(why, n, "'%.64s' has host bits set; did you mean %u.%u.%u.%u/%u?", s, net >> 24,
				(net >> 16) & 255, (net >> 8) & 255, net & 255, p);
	}
	*addr = a;
	*prefix = p;
	return 0;
}

int valid_cidr(const char *s, char *why, size_t n)
{
	unsigned a, p;

	return parse_cidr(s, &a, &p, why, n);
}

static int parse_port(const char *s, size_t len, unsigned *out)
{
	unsigned v = 0;

	if (len == 0 || len > 5 || (s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*out = v;
	return 0;
}

int valid_port(const char *s, char *why, size_t n)
{
	unsigned p;

	if (parse_port(s, strlen(s), &p) != 0)
		return why_fail(why, n, "'%.32s' is not a port (expected a whole number 1-65535)", s);
	return 0;
}

int parse_port_range(const char *s, unsigned *lo, unsigned *hi, char *why, size_t n)
{
	const char *dash = strchr(s, '-');

	if (!dash) {
		if (parse_port(s, strlen(s), lo) != 0)
			return why_fail(why, n, "'%.32s' is not a port or range (expected 1-65535 or lo-hi)", s);
		*hi = *lo;
		return 0;
	}
	if (parse_port(s, (size_t)(dash - s), lo) != 0 || parse_port(dash + 1, strlen(dash + 1), hi) != 0)
		return why_fail(why, n, "'%.32s' is not a port range (expected lo-hi, each 1-65535)", s);
	if (*lo > *hi)
		return why_fail(why, n, "port range '%.32s' runs backwards (%u > %u)", s, *lo, *hi);
	return 0;
}

int valid_port_range(const char *s, char *why, size_t n)
{
	unsigned lo, hi;

	return parse_port_range(s, &lo, &hi, why, n);
}

int parse_size(const char *s, unsigned default_shift, unsigned long long *bytes, char *why, size_t n)
{
	unsigned long long v = 0;
	unsigned shift = default_shift;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return why_fail(
			why, n,
			"'%.32s' is not a size (expected a number with an optional K, M, G or T, like 512M or 1G)", s);
	while (isdigit((unsigned char)*p)) {
		if (v > (~0ULL - 9) / 10)
			return why_fail(why, n, "size '%.32s' is too large", s);
		v = v * 10 + (unsigned long long)(*p++ - '0');
	}
	if (*p) {
		switch (tolower((unsigned char)*p)) {
		case 'k': shift = 10; break;
		case 'm': shift = 20; break;
		case 'g': shift = 30; break;
		case 't': shift = 40; break;
		case 'b':
			shift = 0;
			p--;
			break;
		default: return why_fail(why, n, "size '%.32s' has an unknown unit (use K, M, G or T)", s);
		}
		p++;
		if (shift && tolower((unsigned char)*p) == 'i')
			p++;
		if (tolower((unsigned char)*p) == 'b')
			p++;
		if (*p)
			return why_fail(why, n, "size '%.32s' has an unknown unit (use K, M, G or T)", s);
	}
	if (v == 0)
		return why_fail(why, n, "size '%.32s' must be more than zero", s);
	if (shift && v > (~0ULL >> shift))
		return why_fail(why, n, "size '%.32s' is too large", s);
	*bytes = v << shift;
	return 0;
}

int valid_size(const char *s, char *why, size_t n)
{
	unsigned long long b;

	return parse_size(s, 20, &b, why, n);
}

/* The original's domain rules: optional leading "*.", then a zone of
 * 1-253 characters in labels of 1-63 [a-z0-9-] not starting or ending
 * with '-'.  Case is folded and one trailing dot dropped. */
int normalize_domain(const char *s, char *out, size_t outlen, char *why, size_t n)
{
	size_t len = strlen(s), zlen;
	const char *zone = s;
	char *o = out;

	if (outlen < 256)
		return why_fail(why, n, "internal: domain buffer too small");
	if (strcmp(s, "*.") == 0)
		return why_fail(why, n, "invalid domain pattern '*.': '*.' needs a domain after it");
	if (len && s[len - 1] == '.')
		len--;
	if (len == 0)
		return why_fail(why, n, "a domain cannot be empty");
	if (len > 255)
		return why_fail(why, n, "domain '%.40s...' is longer than 253 characters", s);
	if (s[0] == '*') {
		if (len < 2 || s[1] != '.')
			return why_fail(why, n,
					"invalid domain pattern '%.64s': a wildcard is only allowed as a leading '*.'",
					s);
		zone = s + 2;
		*o++ = '*';
		*o++ = '.';
	}
	zlen = len - (size_t)(zone - s);
	if (zlen == 0)
		return why_fail(why, n, "invalid domain pattern '%.64s': '*.' needs a domain after it", s);
	if (zlen > 253)
		return why_fail(why, n, "domain '%.40s...' is longer than 253 characters", s);
	for (size_t i = 0, lab = 0; i <= zlen; i++) {
		char c = i < zlen ? (char)tolower((unsigned char)zone[i]) : '.';

		if (c == '.') {
			if (lab == 0)
				return why_fail(why, n, "domain '%.64s' has an empty label", s);
			if (lab > 63)
				return why_fail(why, n, "domain '%.64s' has a label longer than 63 characters", s);
			if (zone[i - 1] == '-')
				return why_fail(why, n, "domain '%.64s' has a label ending in '-'", s);
			lab = 0;
		} else if (c == '*') {
			return why_fail(why, n,
					"invalid domain pattern '%.64s': a wildcard is only allowed as a leading '*.'",
					s);
		} else if (c == '-' ? lab == 0 : !is_lower_alnum(c)) {
			return why_fail(why, n,
					lab == 0 && c == '-'
						? "domain '%.64s' has a label starting with '-'"
						: "domain '%.64s' may contain only letters, digits, '-' and '.'",
					s);
		} else {
			lab++;
		}
		if (i < zlen)
			*o++ = c;
	}
	*o = '\0';
	return 0;
}

int valid_domain(const char *s, char *why, size_t n)
{
	char out[256];

	return normalize_domain(s, out, sizeof(out), why, n);
}

/* RFC 3339 UTC as we write it: YYYY-MM-DDTHH:MM:SSZ. */
int valid_timestamp(const char *s, char *why, size_t n)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";

	if (strlen(s) != sizeof(shape) - 1)
		goto no;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
			goto no;
	return 0;
no:
	return why_fail(why, n, "'%.40s' is not a UTC timestamp like 2026-01-31T12:00:00Z", s);
}

/* A path a root helper hands on (to QEMU, Firecracker, a jail): absolute,
 * no "..", and nothing QEMU's option syntax (",") or a line would split. */
int valid_abspath(const char *s, char *why, size_t n)
{
	if (s[0] != '/')
		return why_fail(why, n, "'%.80s' is not an absolute path", s);
	if (strlen(s) >= PATH_MAX / 2)
		return why_fail(why, n, "path too long");
	if (strstr(s, "/../") || !strcmp(s + strlen(s) - (strlen(s) >= 3 ? 3 : 0), "/..") || strchr(s, ',') ||
	    strchr(s, '\n'))
		return why_fail(why, n, "'%.80s' contains '..', ',' or a newline", s);
	return 0;
}
