/* vmsan create: its options, then its steps, in order. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/vm.h"

const char create_usage[] =
	"usage: vmsan create [--runtime NAME | --from-image REF] [--vcpus N] [--memory MIB]\n"
	"                    [--disk-size SIZE] [--network-policy allow-all|deny-all|custom]\n"
	"                    [--allowed-cidr CIDR,...] [--denied-cidr CIDR,...] [--dns IP,...]\n"
	"                    [--allowed-domain NAME|*.NAME,...] [--strict-domains]\n"
	"                    [--publish-port PORT[:GUEST],...] [--bandwidth NMbit] [--timeout DURATION]\n"
	"                    [--vmm qemu|firecracker] [--accel auto|kvm|tcg] [--kernel PATH]\n"
	"                    [--no-netns] [--pull] [--cold] [--project LABEL] [--json] [--verbose]\n"
	"\n"
	"Creates a microVM and returns once its agent answers: the image's disk shared\n"
	"read-only, a writable disk of its own (sparse, --disk-size, default 10G), its own\n"
	"network namespace with the egress policy enforced, and the VMM as an\n"
	"unprivileged user.  --json (or --verbose) reports how long each step took.\n"
	"A failed or interrupted create removes everything it made.  The first create\n"
	"of a kind (image, kernel, size, resolvers) saves its VM, just booted, as a\n"
	"template; the next ones of that kind restore it instead of booting (vmsan\n"
	"template list).\n"
	"\n"
	"  --runtime NAME      base (default, offline), node22, node24, python3.13\n"
	"  --from-image REF    any OCI image: alpine:3.20, registry:5000/app:1, oci:DIR:TAG\n"
	"                      (a registry without TLS: name it in $VMSAN_INSECURE_REGISTRIES)\n"
	"  --vcpus N           1-32 (default 1)      --memory MIB  128-32768 (default 256)\n"
	"  --network-policy    allow-all (default), deny-all, custom; CIDR lists make it custom\n"
	"  --allowed-domain    names the guest may reach (*.NAME: names under NAME): its DNS\n"
	"                      is answered by the VM's filtering resolver, whose answers'\n"
	"                      addresses alone are let through (with allowed CIDRs; denied\n"
	"                      CIDRs still win); log: vmsan logs ID --dns\n"
	"  --strict-domains    also check each TCP connection to those addresses: 443 must\n"
	"                      name an allowed host in its TLS ClientHello (SNI), 80 in its\n"
	"                      HTTP Host header; other ports to them are dropped\n"
	"  --dns IP,...        the guest's resolvers (default $VMSAN_DNS, else dns = in\n"
	"                      $VMSAN_DIR/config or /etc/vmsan/config, else 8.8.8.8,1.1.1.1)\n"
	"  --publish-port      host ports reachable from outside, PORT or HOST:GUEST\n"
	"  --bandwidth         50mbit: shaped in both directions\n"
	"  --snapshot S        restore snapshot S (vmsan snapshot list): its image, size, disk,\n"
	"                      memory and running processes; a new id, namespace and token\n"
	"  --no-netns          no namespace of its own: TAP vmst<slot> in this namespace, the\n"
	"                      same policy enforced on its traffic (no --bandwidth)\n"
	"  --cold              boot, and make no template (also VMSAN_TEMPLATES=off, or\n"
	"                      templates = off in the config file)\n"
	"  --timeout           30s, 5m, 2h, 1d: the VM is stopped then (network torn down)\n"
	"  --vmm               qemu (default without Firecracker) or firecracker\n";

static void free_opts(struct create_opts *o)
{
	json_decref(o->allowed);
	json_decref(o->denied);
	json_decref(o->domains);
	json_decref(o->dns);
	json_decref(o->ports);
	o->allowed = o->denied = o->domains = o->dns = o->ports = NULL;
}

static int parse_ports(const char *s, json_t *ports, struct verr *e)
{
	json_t *items = json_array(), *x;
	size_t i;
	csv_append(items, s);
	json_array_foreach(items, i, x) {
		const char *v = json_string_value(x);
		char *end;
		long h = strtol(v, &end, 10), g = h;
		if (*end == ':')
			g = strtol(end + 1, &end, 10);
		if (*end || h < 1 || h > 65535 || g < 1 || g > 65535 || !isdigit((unsigned char)v[0])) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_PORT", "give PORT or HOST:GUEST, 1-65535",
				 "--publish-port: '%s' is not a port", v);
			json_decref(items);
			return -1;
		}
		json_array_append_new(ports, json_pack("{s:i, s:i}", "hostPort", (int)h, "guestPort", (int)g));
	}
	json_decref(items);
	return 0;
}

/* One option with a value (a is its name, v its value) into o. */
static int create_value(struct create_opts *o, const char *a, const char *v, struct verr *e)
{
#define IS(x) (!strcmp(a, x))
	if (IS("--runtime"))
		o->runtime = *v ? v : "base";
	else if (IS("--from-image"))
		o->image = v;
	else if (IS("--vcpus")) {
		if (num_opt("--vcpus", v, 1, 32, &o->vcpus, e))
			return -1;
		o->sized = true;
	} else if (IS("--memory")) {
		if (num_opt("--memory", v, 128, 32768, &o->mem, e))
			return -1;
		o->sized = true;
	} else if (IS("--disk-size") || IS("--disk"))
		o->disk = v, o->sized = true;
	else if (IS("--network-policy"))
		o->policy = v, o->policy_given = true;
	else if (IS("--allowed-cidr"))
		csv_append(o->allowed, v), o->policy_given = true;
	else if (IS("--denied-cidr"))
		csv_append(o->denied, v), o->policy_given = true;
	else if (IS("--snapshot"))
		o->snapshot = v;
	else if (IS("--allowed-domain"))
		csv_append(o->domains, v);
	else if (IS("--dns"))
		csv_append(o->dns, v);
	else if (IS("--publish-port")) {
		if (parse_ports(v, o->ports, e))
			return -1;
	} else if (IS("--bandwidth")) {
		char *end;
		long long bw = strtoll(v, &end, 10);
		if (end == v || bw < 1 || bw > 1000 || (*end && strcasecmp(end, "mbit") && strcasecmp(end, "m"))) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_INTEGER", "such as 50mbit (1-1000)",
				 "invalid --bandwidth: \"%s\"", v);
			return -1;
		}
		o->bandwidth = bw;
	} else if (IS("--timeout")) {
		if (parse_duration(v, &o->timeout)) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_DURATION", "such as 30s, 5m, 2h (up to 30d)",
				 "invalid --timeout: \"%s\"", v);
			return -1;
		}
	} else if (IS("--vmm"))
		o->vmm = v;
	else if (IS("--accel"))
		o->accel = v;
	else if (IS("--kernel"))
		o->kernel = v;
	else if (IS("--project"))
		o->project = v;
	else {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see 'vmsan create --help'", "unknown option %s", a);
		return -1;
	}
#undef IS
	return 0;
}

/* What the options cannot be together, and the values of a fixed set. */
static int check_create(struct create_opts *o, struct verr *e)
{
	if (o->snapshot && (o->runtime || o->image || o->sized || json_array_size(o->dns) || o->no_netns)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS",
			 "give the policy, ports, bandwidth or timeout; the rest comes from the snapshot",
			 "--snapshot restores the snapshot's image, size, disk, resolvers and namespace mode");
		return -1;
	}
	if (o->runtime && o->image) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS", "give one of them",
			 "--runtime and --from-image cannot be combined");
		return -1;
	}
	if (normalize_domains(o->domains, e) < 0)
		return -1;
	if (strict_needs_domains(o->strict, o->domains, e) < 0)
		return -1;
	if (o->no_netns && json_array_size(o->domains)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS", "drop --no-netns, or use --allowed-cidr",
			 "--allowed-domain needs the VM's own namespace (its resolver and address set live there)");
		return -1;
	}
	if (o->no_netns && o->bandwidth) {
		verr_set(
			e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_FLAGS", "drop --no-netns or --bandwidth",
			"--bandwidth shapes both directions in the VM's own namespace, which --no-netns does not make");
		return -1;
	}
	if (o->vmm && strcmp(o->vmm, "qemu") && strcmp(o->vmm, "firecracker")) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_VMM", "use qemu or firecracker", "invalid --vmm: \"%s\"",
			 o->vmm);
		return -1;
	}
	if (o->accel && strcmp(o->accel, "auto") && strcmp(o->accel, "kvm") && strcmp(o->accel, "tcg")) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_ACCEL", "use auto, kvm or tcg", "invalid --accel: \"%s\"",
			 o->accel);
		return -1;
	}
	return 0;
}

/* create's options that take no value, and what each sets: the one list
 * of them, which run's reading of create's words asks too (create_flag).
 * NULL: a is not one. */
static bool *flag_field(struct create_opts *o, const char *a)
{
	const struct {
		const char *name;
		bool *set;
	} flags[] = {
		{ "--json", &json_mode }, { "--verbose", &verbose },	  { "--pull", &o->pull },
		{ "--cold", &o->cold },	  { "--no-netns", &o->no_netns }, { "--strict-domains", &o->strict },
	};
	for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
		if (!strcmp(flags[k].name, a))
			return flags[k].set;
	return NULL;
}

bool create_flag(const char *a)
{
	struct create_opts o = { 0 };
	return flag_field(&o, a) != NULL;
}

static int parse_create(int argc, char **argv, int i, struct create_opts *o, struct verr *e)
{
	memset(o, 0, sizeof *o);
	o->vcpus = 1;
	o->mem = 256;
	o->policy = "allow-all";
	o->allowed = json_array();
	o->denied = json_array();
	o->domains = json_array();
	o->dns = json_array();
	o->ports = json_array();
	for (; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char *eq = strchr(a, '=');
		char name[40];
		if (!strncmp(a, "--", 2) && eq && (size_t)(eq - a) < sizeof name) {
			snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
			a = name;
			v = eq + 1;
		} else if (flag_field(o, a)) {
			*flag_field(o, a) = true;
			continue;
		} else if (v) {
			i++;
		}
		if (!v) {
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_USAGE", "see 'vmsan create --help'",
				 "unknown option or missing value: %s", a);
			return -1;
		}
		if (create_value(o, a, v, e) < 0)
			return -1;
	}
	return check_create(o, e);
}

/* The guest kernel: --kernel, $VMSAN_KERNEL, else the lexically last
 * vmlinux* in $VMSAN_DIR/kernels, then in the data dir's kernels/. */
static int find_kernel(const struct state *st, const char *given, char *out, size_t n, struct verr *e)
{
	const char *env = getenv("VMSAN_KERNEL");
	if (given || (env && *env)) {
		const char *k = given ? given : env;
		char *r = realpath(k, NULL);
		if (!r || access(r, R_OK) != 0) {
			free(r);
			verr_set(e, VMSAN_EXIT_USAGE, "ERR_KERNEL", "give a readable vmlinux",
				 "kernel %s cannot be read", k);
			return -1;
		}
		snprintf(out, n, "%s", r);
		free(r);
		return 0;
	}
	char dirs[2][PATH_MAX + 16];
	snprintf(dirs[0], sizeof dirs[0], "%.4000s/kernels", st->dir);
	const char *data = getenv("VMSAN_DATADIR");
	snprintf(dirs[1], sizeof dirs[1], "%s/kernels", data && *data ? data : "/usr/local/share/vmsan");
	for (int i = 0; i < 2; i++) {
		DIR *d = opendir(dirs[i]);
		char best[256] = "";
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (!strncmp(de->d_name, "vmlinux", 7) && strcmp(de->d_name, best) > 0)
				snprintf(best, sizeof best, "%s", de->d_name);
		if (d)
			closedir(d);
		if (best[0]) {
			if ((size_t)snprintf(out, n, "%s/%s", dirs[i], best) < n)
				return 0;
		}
	}
	verr_set(e, VMSAN_EXIT_FAIL, "ERR_KERNEL",
		 "run 'make kernel && sudo make install-kernel' in the source tree, or ./install.sh",
		 "no guest kernel (vmlinux*) in %s or %s", dirs[0], dirs[1]);
	return -1;
}

static void print_created(struct create *c)
{
	json_t *rec = c->rec, *timing = c->timing;
	if (json_mode) {
		json_t *doc = json_pack("{s:b, s:O, s:O}", "ok", 1, "vm", rec, "timing", timing);
		tmpl_report(c, doc);
		json_dumpf(doc, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(doc);
		return;
	}
	const char *id = jstr(rec, "id");
	const char *start = c->t.start ? c->t.start : "cold";
	printf("%s running (%s/%s) in %.2f s%s\n", id, jstr(rec, "vmm"), jstr(rec, "accelUsed"),
	       json_real_value(json_object_get(timing, "totalMs")) / 1e3,
	       !strcmp(start, "template")	      ? ", from a template"
	       : !strcmp(start, "cold+template-made") ? ", booted (template made)"
						      : "");
	if (verbose) {
		const char *k;
		json_t *v;
		json_object_foreach(timing, k, v)
			fprintf(stderr, "  %-16s %8.1f ms\n", k, json_real_value(v));
	}
	printf("  vmsan exec %s -- uname -a\n  vmsan connect %s\n  vmsan rm -f %s\n", id, id, id);
}

/* --snapshot: held (shared lock) so that no delete takes it from under
 * the copy; its settings are the new VM's. */
static int from_snapshot(struct create *c, struct verr *e)
{
	struct create_opts *o = &c->o;
	int sfd = snapshots_dir(&c->st, false, e);
	c->snap = load_snapshot(sfd, o->snapshot, e);
	if (c->snap)
		c->snapfd = openat(sfd, o->snapshot, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd >= 0)
		close(sfd);
	if (!c->snap)
		return -1;
	json_t *snap = c->snap;
	if (c->snapfd < 0 || flock(c->snapfd, LOCK_SH) < 0) {
		verr_sys(e, "ERR_SNAPSHOT", NULL, "cannot open snapshot %s", o->snapshot);
		return -1;
	}
	snprintf(c->snapdir, sizeof c->snapdir, "%.3800s/snapshots/%s", c->st.dir, o->snapshot);
	if (o->vmm && strcmp(o->vmm, jstr(snap, "vmm"))) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_SNAPSHOT_VMM", "leave --vmm out",
			 "snapshot %s was made by %s: it restores with %s only", o->snapshot, jstr(snap, "vmm"),
			 jstr(snap, "vmm"));
		return -1;
	}
	o->vmm = jstr(snap, "vmm");
	o->vcpus = jint(snap, "vcpuCount", 1);
	o->mem = jint(snap, "memSizeMib", 256);
	json_t *sn = json_object_get(snap, "network");
	if (!o->policy_given) {
		o->policy = jstr(sn, "policy");
		json_array_extend(o->allowed, json_object_get(sn, "allowedCidrs"));
		json_array_extend(o->denied, json_object_get(sn, "deniedCidrs"));
		if (json_is_array(json_object_get(sn, "allowedDomains")))
			json_array_extend(o->domains, json_object_get(sn, "allowedDomains"));
		o->strict = o->strict || json_is_true(json_object_get(sn, "strictDomains"));
	}
	/* the guest's resolv.conf is the snapshot's */
	json_array_extend(o->dns, json_object_get(sn, "dns"));
	json_t *img = json_object_get(snap, "image");
	if (!jstr(img, "path") || access(jstr(img, "path"), R_OK) < 0) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_SNAPSHOT_IMAGE", "pull the image again (vmsan images pull)",
			 "the image of snapshot %s is gone: %s", o->snapshot, jstr(img, "ref") ?: "?");
		return -1;
	}
	if (!o->kernel && jstr(snap, "kernel") && access(jstr(snap, "kernel"), R_OK) == 0)
		o->kernel = jstr(snap, "kernel");
	return 0;
}

/* The record's network section from the options; NULL with e set. */
static json_t *network_section(struct create *c, struct verr *e)
{
	struct create_opts *o = &c->o;
	/* lists make allow-all custom (the original's rule; the compiler
	 * applies it too): the record says what is in force */
	if (!strcmp(o->policy, "allow-all") &&
	    (json_array_size(o->allowed) || json_array_size(o->denied) || json_array_size(o->domains)))
		o->policy = "custom";
	json_t *nw = json_pack("{s:s, s:O, s:O, s:O, s:O}", "policy", o->policy, "allowedCidrs", o->allowed,
			       "deniedCidrs", o->denied, "dns", o->dns, "publishedPorts", o->ports);
	if (json_array_size(o->domains)) {
		json_object_set(nw, "allowedDomains", o->domains);
		if (o->strict)
			json_object_set_new(nw, "strictDomains", json_true());
		if (set_dns_ttls(&c->st, nw, e) < 0) {
			json_decref(nw);
			return NULL;
		}
	}
	if (o->bandwidth)
		json_object_set_new(nw, "bandwidthMbit", json_integer(o->bandwidth));
	if (o->no_netns)
		json_object_set_new(nw, "noNetns", json_true());
	return nw;
}

/* 1. the record, first: from here on an id names all we make.  In-process
 * (lib/state.c, what vmsan-state new runs): a process start less, ~1 ms. */
static int make_record(struct create *c, struct verr *e)
{
	struct create_opts *o = &c->o;
	double t = now_ms();
	json_t *nw = network_section(c, e);
	if (!nw)
		return -1;
	json_t *init = json_pack("{s:s, s:i, s:s, s:I, s:I, s:s, s:s, s:s, s:o}", "status", "creating", "pid",
				 (int)getpid(), "pidRole", "create", "vcpuCount", o->vcpus, "memSizeMib", o->mem, "vmm",
				 o->vmm, "accel", o->accel ? o->accel : "auto", "kernel", c->kernel, "network", nw);
	if (o->project)
		json_object_set_new(init, "project", json_string(o->project));
	if (o->timeout)
		json_object_set_new(init, "timeoutSec", json_integer(o->timeout));
	c->rec = state_new(&c->st, init, e); /* the record as stored */
	json_decref(init);
	if (!c->rec)
		return -1;
	snprintf(c->id, sizeof c->id, "%s", jstr(c->rec, "id") ?: "");
	if (!c->id[0]) {
		verr_set(e, VMSAN_EXIT_SYS, "ERR_HELPER", NULL, "vmsan-state new replied with no id");
		return -1;
	}
	c->made = true;
	if ((c->lock = state_lock(&c->st, c->id, e)) < 0)
		return -1;
	json_object_set_new(c->timing, "recordMs", json_real(now_ms() - t));
	say("%s: record made", c->id);
	return 0;
}

/* The snapshot's (or template's) disk with a token of its own. */
static int restored_disk(struct create *c, struct verr *e)
{
	double t = now_ms();
	json_t *upd = restore_disk(&c->st, c->id, c->snap, c->snapdir, e);
	if (!upd)
		return -1;
	json_object_set_new(c->timing, "diskMs", json_real(now_ms() - t));
	json_t *merged = NULL;
	if (store(&c->st, c->id, upd, &merged, e) < 0)
		return -1;
	json_decref(c->rec);
	c->rec = merged;
	c->b.incoming = c->snapdir;
	return 0;
}

/* 2-5, restoring --snapshot: its disk, then policy and network. */
static int restored_disk_and_net(struct create *c, struct verr *e)
{
	if (restored_disk(c, e) < 0 || interrupted || net_up(c->id, c->rec, &c->b, e) < 0)
		return -1;
	return 0;
}

/* vmsan-rootfs pull's request: the image, pulled and built unless cached. */
static json_t *pull_request(const struct create *c)
{
	const struct create_opts *o = &c->o;
	json_t *preq = o->image ? json_pack("{s:s}", "ref", o->image)
				: json_pack("{s:s}", "runtime", o->runtime ? o->runtime : "base");
	if (o->pull)
		json_object_set_new(preq, "pull", json_true());
	if (isatty(STDERR_FILENO))
		json_object_set_new(preq, "progress", json_true());
	return preq;
}

/* vmsan-rootfs vmdisk's request: the VM's own disk and token, over the
 * image digest names (pulled already), else over the image it pulls. */
static json_t *vmdisk_request(const struct create *c, const char *digest)
{
	char guest[PATH_MAX + 8];
	snprintf(guest, sizeof guest, "%s/guest", libexec);
	json_t *dreq = json_pack("{s:s, s:s}", "id", c->id, "guestDir", guest);
	if (digest)
		json_object_set_new(dreq, "image", json_string(digest));
	else
		json_object_set_new(dreq, "pull", pull_request(c));
	if (c->o.disk)
		json_object_set_new(dreq, "diskSize", json_string(c->o.disk));
	return dreq;
}

/* The record's disk and image from vmdisk's reply (disk) and the image's
 * (img), stored. */
static int store_disk(struct create *c, json_t *img, json_t *disk, struct verr *e)
{
	json_t *upd = json_pack("{s:{s:s, s:s, s:s}, s:s, s:s, s:I, s:I}", "image", "ref", jstr(img, "ref"), "digest",
				jstr(img, "digest"), "path", jstr(img, "path"), "dir", jstr(disk, "dir"), "disk",
				jstr(disk, "disk"), "diskSize", jint(disk, "diskSize", 0), "tokenOffset",
				jint(disk, "tokenOffset", 0));
	if (jstr(img, "runtime"))
		json_object_set_new(upd, "runtime", json_string(jstr(img, "runtime")));
	json_t *merged = NULL;
	if (store(&c->st, c->id, upd, &merged, e) < 0)
		return -1;
	json_decref(c->rec);
	c->rec = merged;
	return 0;
}

/* With templates, the image pulled (got) decides: its key's template
 * restored, else the VM's own disk made over it. */
static int template_or_disk(struct create *c, json_t *got, struct verr *e)
{
	int found = tmpl_find(c, got, e);
	if (found < 0)
		return -1;
	if (found) {
		/* the image as this create named it (the template's maker may
		 * have named the same digest otherwise) */
		json_object_set_new(c->snap, "image",
				    json_pack("{s:s, s:s, s:s}", "ref", jstr(got, "ref"), "digest", jstr(got, "digest"),
					      "path", jstr(got, "path")));
		json_object_del(c->snap, "runtime");
		if (jstr(got, "runtime"))
			json_object_set_new(c->snap, "runtime", json_string(jstr(got, "runtime")));
		return restored_disk(c, e);
	}
	double t = now_ms();
	json_t *disk = call("rootfs", "vmdisk", vmdisk_request(c, jstr(got, "digest")), false, e);
	int rc = disk ? store_disk(c, got, disk, e) : -1;
	json_object_set_new(c->timing, "diskMs", json_real(now_ms() - t));
	json_decref(disk);
	return rc;
}

/* 2-5: the image's disk, then the VM's own disk and token (one
 * vmsan-rootfs process for both; with templates, the image first: its
 * digest is in the key), made while the policy is compiled and the
 * network set up: neither needs the other (a user's network step runs
 * through sudo, ~5 ms of process start alone).  The disk goes into the
 * record. */
static int disk_and_net(struct create *c, struct verr *e)
{
	pause_at("image");
	struct pending dp;
	bool tpl = c->t.on;
	if (call_start("rootfs", tpl ? "pull" : "vmdisk", tpl ? pull_request(c) : vmdisk_request(c, NULL), false, &dp,
		       e) < 0)
		return -1;
	/* the VM's directory (vmdisk makes it too) first: the resolver's log
	 * goes there */
	char vmdir[PATH_MAX];
	snprintf(vmdir, sizeof vmdir, "%.4000s/%s", c->st.vms, c->id);
	if (!jstr(c->rec, "dir") && (mkdir(vmdir, 0700) == 0 || errno == EEXIST))
		json_object_set_new(c->rec, "dir", json_string(vmdir));
	int nrc = interrupted ? -1 : net_up(c->id, c->rec, &c->b, e);
	double t_net_done = now_ms();
	struct verr de = { 0 };
	json_t *got = call_finish(&dp, &de);
	if (nrc < 0 || !got || interrupted) {
		if (nrc == 0 && !got)
			*e = de;
		json_decref(got);
		return -1;
	}
	json_t *img = tpl ? got : json_object_get(got, "image");
	/* imageMs: the pull inside vmsan-rootfs (beside the network);
	 * diskMs: what the disk added after the network was up. */
	json_object_set_new(c->timing, "imageMs", json_real(json_real_value(json_object_get(img, "seconds")) * 1e3));
	int rc;
	if (tpl) {
		rc = template_or_disk(c, got, e);
	} else {
		json_object_set_new(c->timing, "diskMs", json_real(now_ms() - t_net_done));
		rc = store_disk(c, img, got, e);
	}
	json_decref(got);
	return rc;
}

/* 6. VMM and boot, with the disk in the record; a restored guest given its
 * own token, the host's clock and its name. */
static int boot(struct create *c, struct verr *e)
{
	if (interrupted || vmm_up(&c->st, c->id, c->rec, &c->b, e) < 0)
		return -1;
	if (c->snap) {
		double t = now_ms();
		if (restore_token(&c->st, c->id, c->snapdir, jstr(c->b.net, "agentAddr"), e) < 0)
			return -1;
		json_object_set_new(c->timing, "restoredMs", json_real(now_ms() - t));
	}
	json_object_set_new(c->timing, "policyMs", json_real(c->b.t_policy));
	json_object_set_new(c->timing, "networkMs", json_real(c->b.t_net));
	json_object_set_new(c->timing, "vmmStartMs", json_real(c->b.t_vmm));
	json_object_set_new(c->timing, "vmmInitMs", json_real(c->b.t_vmm_init));
	json_object_set_new(c->timing, "bootMs", json_real(c->b.t_boot));
	return 0;
}

/* 7. running: the timer armed, the record says so (the VMM its process). */
static int running(struct create *c, double t_start, struct verr *e)
{
	pause_at("running");
	double t = now_ms();
	if (c->o.timeout && arm_timer(&c->st, c->id, c->o.timeout, e) < 0)
		return -1;
	json_t *upd = json_pack("{s:s, s:I, s:I, s:s}", "status", "running", "pid", jint(c->b.vmm, "pid", 0),
				"pidStartTime", jint(c->b.vmm, "startTime", 0), "pidRole", "vmm");
	json_t *merged = NULL;
	if (store(&c->st, c->id, upd, &merged, e) < 0)
		return -1;
	json_object_set_new(c->timing, "finishMs", json_real(now_ms() - t));
	double total = now_ms() - t_start;
	json_object_set_new(c->timing, "totalMs", json_real(total));
	/* vmsan's own work: not the VMM's start, the boot, or a template's
	 * making (templateMs, once per kind) */
	double tpl = json_real_value(json_object_get(c->timing, "templateMs"));
	json_object_set_new(c->timing, "controlPlaneMs", json_real(total - c->b.t_boot - c->b.t_vmm_init - tpl));
	json_decref(c->rec);
	c->rec = merged;
	state_derive_status(c->rec);
	return 0;
}

static void create_release(struct create *c)
{
	json_decref(c->rec);
	json_decref(c->timing);
	json_decref(c->b.net);
	json_decref(c->b.vmm);
	if (c->lock >= 0)
		close(c->lock);
	json_decref(c->snap);
	if (c->snapfd >= 0)
		close(c->snapfd);
	state_release(&c->st);
	free_opts(&c->o);
}

/* create: its steps, in order; whatever failed or was interrupted, all
 * that was made is removed.  For run (rec_out), the record and id. */
/* A template's restore that failed: the VM undone, the template removed,
 * create back to before its record (it boots cold next). */
static void undo_restore(struct create *c, struct verr *e)
{
	say("%s: the template did not restore: %s", c->id, e->message);
	tmpl_drop(c, e);
	json_t *cur = state_load(&c->st, c->id, &(struct verr){ 0 });
	remove_all(&c->st, c->id, cur ? cur : c->rec);
	json_decref(cur);
	json_decref(c->rec);
	json_decref(c->b.net);
	json_decref(c->b.vmm);
	json_decref(c->snap);
	c->rec = c->snap = NULL;
	memset(&c->b, 0, sizeof c->b);
	if (c->lock >= 0)
		close(c->lock);
	if (c->snapfd >= 0)
		close(c->snapfd);
	c->lock = c->snapfd = -1;
	c->snapdir[0] = 0;
	c->made = false;
	json_object_clear(c->timing);
	memset(e, 0, sizeof *e);
}

int do_create(int argc, char **argv, int i, json_t **rec_out, char *id_out)
{
	struct verr e = { 0 };
	struct create c = { .st = { .vmsfd = -1 }, .lock = -1, .snapfd = -1 };
	if (parse_create(argc, argv, i, &c.o, &e) < 0) {
		free_opts(&c.o);
		return report(&e);
	}
	double t_start = now_ms();
	c.timing = json_object();
	if (state_open(&c.st, true, &e) < 0 || (c.o.snapshot && from_snapshot(&c, &e) < 0) ||
	    resolve_dns(&c.st, c.o.dns, &e) < 0 || find_kernel(&c.st, c.o.kernel, c.kernel, sizeof c.kernel, &e) < 0)
		goto fail;
	if (!c.o.vmm)
		c.o.vmm = "qemu";
	if (tmpl_init(&c, &e) < 0)
		goto fail;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	while (make_record(&c, &e) < 0 || (c.o.snapshot ? restored_disk_and_net(&c, &e) : disk_and_net(&c, &e)) < 0 ||
	       boot(&c, &e) < 0) {
		if (!c.t.restoring || c.t.retried || interrupted)
			goto fail;
		undo_restore(&c, &e); /* and again, cold */
	}
	tmpl_make(&c); /* before anyone has the VM */
	if (interrupted || running(&c, t_start, &e) < 0)
		goto fail;
	close(c.lock); /* released before anything is said, as ever */
	c.lock = -1;
	if (rec_out) {
		*rec_out = json_incref(c.rec);
		snprintf(id_out, 80, "%s", c.id);
	} else {
		print_created(&c);
	}
	create_release(&c);
	return 0;
fail:
	if (!verr_isset(&e))
		verr_set(&e, 130, "ERR_INTERRUPTED", "nothing was left behind", "create was interrupted");
	if (c.made) {
		say("%s: undoing what create made", c.id);
		json_t *cur = state_load(&c.st, c.id, &(struct verr){ 0 });
		remove_all(&c.st, c.id, cur ? cur : c.rec);
		json_decref(cur);
	}
	create_release(&c);
	return report(&e);
}

int cmd_create(int argc, char **argv)
{
	return do_create(argc, argv, 1, NULL, NULL);
}
