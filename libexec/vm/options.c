/* Option values and the settings from the config files. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/vm.h"

int args_next(struct args *a, const char **opt, const char **val)
{
	*opt = *val = NULL;
	if (a->i >= a->argc)
		return 0;
	const char *w = a->argv[a->i++];
	if (!a->ended && !strcmp(w, "--")) {
		a->ended = true;
		return args_next(a, opt, val);
	}
	if (a->ended || w[0] != '-' || !w[1]) {
		*val = w;
		return 1;
	}
	/* --name=value for an option that takes one; any other word with '='
	 * is an option of that name, unknown */
	const char *eq = strncmp(w, "--", 2) ? NULL : strchr(w, '=');
	for (const char *const *v = a->valued; eq && v && *v; v++) {
		if (strlen(*v) != (size_t)(eq - w) || strncmp(*v, w, (size_t)(eq - w)))
			continue;
		snprintf(a->name, sizeof a->name, "%s", *v);
		*opt = a->name;
		*val = eq + 1;
		return 1;
	}
	*opt = w;
	for (const char *const *v = a->valued; !eq && v && *v; v++) {
		if (strcmp(*v, w))
			continue;
		if (a->i >= a->argc || !strcmp(a->argv[a->i], "--")) {
			usage_error("%s needs a value", w);
			return -1;
		}
		*val = a->argv[a->i++];
	}
	return 1;
}

int sub_args(int argc, char **argv, const struct sub_flag *flags, const char **sub, json_t *operands)
{
	struct args it = ARGS_INIT(argc, argv, NULL);
	const char *a, *v;
	int rc;
	*sub = NULL;
	while ((rc = args_next(&it, &a, &v)) > 0) {
		const struct sub_flag *f = flags;
		while (a && f && f->name && strcmp(f->name, a))
			f++;
		if (!a && !*sub)
			*sub = v;
		else if (!a)
			json_array_append_new(operands, json_string(v));
		else if (!strcmp(a, "--json"))
			json_mode = true;
		else if (f && f->name)
			*f->set = f->value;
		else
			return usage_error("unknown option %s", a);
	}
	return rc < 0 ? VMSAN_EXIT_USAGE : 0;
}

bool sub_is(const char *sub, const char *name, const char *alias)
{
	return sub && (!strcmp(sub, name) || (alias && !strcmp(sub, alias)));
}

/* "30s", "5m", "2h", "1d" or bare seconds; 1 s to 30 days. */
int parse_duration(const char *s, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0)
		return -1;
	long long mul = 1;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60;
	else if (!strcmp(end, "h"))
		mul = 3600;
	else if (!strcmp(end, "d"))
		mul = 86400;
	else
		return -1;
	if (v > 30LL * 86400 / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* Appends the comma-separated items of s to arr (strings), each without
 * the blanks around it. */
void csv_append(json_t *arr, const char *s)
{
	const char *p = s;
	while (*p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p), skip = n + (c ? 1 : 0);
		while (n && isspace((unsigned char)*p)) {
			p++;
			n--;
			skip--;
		}
		while (n && isspace((unsigned char)p[n - 1]))
			n--;
		if (n)
			json_array_append_new(arr, json_stringn(p, n));
		p += skip;
	}
}

/* --allowed-domain values in their one spelling (lower case, no trailing
 * dot), each checked: a pattern that is not valid is refused, named. */
int normalize_domains(json_t *list, struct verr *e)
{
	size_t i;
	json_t *x;
	json_array_foreach(list, i, x) {
		char out[256], why[200];
		if (normalize_domain(json_string_value(x), out, sizeof out, why, sizeof why)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DOMAIN",
				 "give names like example.com or *.example.com (its subdomains)",
				 "--allowed-domain: %s", why);
			return -1;
		}
		json_array_set_new(list, i, json_string(out));
	}
	return 0;
}

/* --strict-domains (create, network) checks connections to the allowed
 * domains: without any it has nothing to check. */
int strict_needs_domains(bool strict, json_t *domains, struct verr *e)
{
	if (!strict || json_array_size(domains))
		return 0;
	verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS", "give the names with --allowed-domain",
		 "--strict-domains checks connections to allowed domains: there are none");
	return -1;
}

int num_opt(const char *name, const char *v, long long lo, long long hi, long long *out, struct verr *e)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_INTEGER", NULL,
			 "invalid %s: \"%s\"; must be an integer from %lld to %lld", name, v, lo, hi);
		return -1;
	}
	*out = x;
	return 0;
}

/* A setting from the config files: /etc/vmsan/config, then the state
 * directory's config (the later wins).  Lines are "key = value"; # starts
 * a comment.  *out is NULL when no file sets it. */
#define SYSTEM_CONFIG "/etc/vmsan/config"
int config_get(const struct state *st, const char *key, char *out, size_t n, bool *found, struct verr *e)
{
	static const char *const known[] = { "dns",	  "dns-ttl-min",   "dns-ttl-max",
					     "templates", "templates-max", "templates_max" };
	char user[PATH_MAX];
	snprintf(user, sizeof user, "%.4000s/config", st->dir);
	const char *files[] = { SYSTEM_CONFIG, user };
	*found = false;
	for (size_t f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "re");
		if (!fp) {
			if (errno == ENOENT)
				continue;
			verr_sys(e, "ERR_CONFIG", NULL, "cannot read %s", files[f]);
			return -1;
		}
		char line[1024];
		for (int ln = 1; fgets(line, sizeof line, fp); ln++) {
			char *h = strchr(line, '#'), *k = line, *eq;
			if (h)
				*h = 0;
			while (isspace((unsigned char)*k))
				k++;
			size_t l = strlen(k);
			while (l && isspace((unsigned char)k[l - 1]))
				k[--l] = 0;
			if (!*k)
				continue;
			if (!(eq = strchr(k, '='))) {
				fclose(fp);
				verr_set(e, VMSAN_EXIT_FAIL, "ERR_CONFIG", "write it as: key = value",
					 "%s:%d: no '=' in \"%s\"", files[f], ln, k);
				return -1;
			}
			char *v = eq + 1;
			while (eq > k && isspace((unsigned char)eq[-1]))
				eq--;
			*eq = 0;
			while (isspace((unsigned char)*v))
				v++;
			size_t i = 0;
			while (i < sizeof known / sizeof *known && strcmp(known[i], k))
				i++;
			if (i == sizeof known / sizeof *known) {
				fclose(fp);
				verr_set(
					e, VMSAN_EXIT_FAIL, "ERR_CONFIG",
					"the settings known are: dns, dns-ttl-min, dns-ttl-max, templates, templates-max",
					"%s:%d: unknown setting '%s'", files[f], ln, k);
				return -1;
			}
			if (!strcmp(k, key)) {
				snprintf(out, n, "%s", v);
				*found = true;
			}
		}
		fclose(fp);
	}
	return 0;
}

/* The guest's resolvers: --dns, else $VMSAN_DNS, else the config files'
 * dns, else the original's public resolvers.  Checked here, before
 * anything is made. */
int resolve_dns(const struct state *st, json_t *dns, struct verr *e)
{
	const char *from = "--dns";
	if (!json_array_size(dns)) {
		const char *d = getenv("VMSAN_DNS");
		char conf[1024];
		bool found = false;
		if (d && *d) {
			from = "VMSAN_DNS";
		} else if (config_get(st, "dns", conf, sizeof conf, &found, e) < 0) {
			return -1;
		} else if (found) {
			from = "the config file's dns";
			d = conf;
		} else {
			from = "the default";
			d = "8.8.8.8,1.1.1.1";
		}
		csv_append(dns, d);
	}
	size_t i;
	json_t *x;
	json_array_foreach(dns, i, x) {
		char why[128];
		if (valid_ipv4(json_string_value(x), why, sizeof why)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DNS", "give IPv4 addresses, such as 192.0.2.53",
				 "%s: invalid resolver '%s': %s", from, json_string_value(x), why);
			return -1;
		}
	}
	if (!json_array_size(dns) || json_array_size(dns) > 3) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DNS", "give 1 to 3 resolvers", "%s: %zu DNS resolvers",
			 from, json_array_size(dns));
		return -1;
	}
	return 0;
}

/* How long an allowed domain's address stays allowed: its TTL, at least
 * dns-ttl-min and at most dns-ttl-max seconds (config files; 30 and 3600
 * when not set), into the network section. */
int set_dns_ttls(const struct state *st, json_t *nw, struct verr *e)
{
	static const char *const keys[] = { "dns-ttl-min", "dns-ttl-max" };
	long long v[2] = { NET_DNS_TTL_MIN, NET_DNS_TTL_MAX };
	for (int k = 0; k < 2; k++) {
		char conf[256], *end;
		bool found;
		if (config_get(st, keys[k], conf, sizeof conf, &found, e) < 0)
			return -1;
		if (!found)
			continue;
		errno = 0;
		v[k] = strtoll(conf, &end, 10);
		if (errno || end == conf || *end || v[k] < 1 || v[k] > 86400) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_CONFIG", "give whole seconds, 1 to 86400",
				 "%s: '%s' is not a number of seconds", keys[k], conf);
			return -1;
		}
	}
	if (v[0] > v[1]) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_CONFIG", "make dns-ttl-min at most dns-ttl-max",
			 "dns-ttl-min %lld is above dns-ttl-max %lld", v[0], v[1]);
		return -1;
	}
	json_object_set_new(nw, "dnsTtlMin", json_integer(v[0]));
	json_object_set_new(nw, "dnsTtlMax", json_integer(v[1]));
	return 0;
}
