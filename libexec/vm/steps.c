/* The shared VM steps: the record stored, the policy compiled and the
 * network up, the VMM up and the guest awaited, the timer armed; a VM
 * opened under its lock, stopped, taken down, removed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vm/vm.h"

/* Who the VMM runs as: the user (also when root acts for them through
 * sudo); for root itself, a uid of its own per network slot, so that no
 * two VMMs share a uid. */
static void vmm_identity(long slot, long long *uid, long long *gid)
{
	long u, g;
	caller_ids(&u, &g);
	*uid = u;
	*gid = g;
	if (u == 0)
		*uid = *gid = (long long)NET_VMM_UID_BASE + (slot > 0 ? slot : 0);
}

/* ---- undoing -------------------------------------------------------------- */

/* The VMM of a VM killed, if it runs: vmsan-fc finds it by id in root's
 * own record, and acts only for its owner. */
void kill_vmm(const char *id)
{
	call_quiet("fc", "kill", json_pack("{s:s}", "id", id), true);
}

void kill_timer(json_t *rec)
{
	json_t *t = json_object_get(rec, "timer");
	long long pid = jint(t, "pid", 0), start = jint(t, "startTime", -1);
	if (pid > 1 && pid != getpid() && start >= 0 && proc_start_time((long)pid) == start)
		kill((pid_t)pid, SIGKILL);
}

/* What runs for a VM, gone: its VMM, its timer, its network. */
void take_down(const char *id, json_t *rec)
{
	kill_vmm(id);
	kill_timer(rec);
	call_quiet("net", "teardown", json_pack("{s:s}", "id", id), true);
}

/* Everything a VM has, gone: VMM, timer, network, files, record. */
void remove_all(struct state *st, const char *id, json_t *rec)
{
	take_down(id, rec);
	call_quiet("fc", "cleanup", json_pack("{s:s}", "id", id), true);
	if (rm_tree_at(st->vmsfd, id) < 0)
		fprintf(stderr, "vmsan %s: cleanup: cannot remove all of %s/%s\n", cmd, st->vms, id);
	char name[96];
	snprintf(name, sizeof name, "%s.token", id);
	unlinkat(st->vmsfd, name, 0);
	struct verr e = { 0 };
	if (state_remove(st, id, &e) < 0)
		fprintf(stderr, "vmsan %s: cleanup: %s\n", cmd, e.message);
}

/* ---- record ---------------------------------------------------------------- */

/* Merges the fields of rec (stolen) into the VM's record, as it is on
 * disk now (read under the VM's lock); with merged, the record as stored
 * is handed back there (a reference of the caller's, set on success). */
int store(struct state *st, const char *id, json_t *rec, json_t **merged, struct verr *e)
{
	json_t *cur = state_load(st, id, e);
	if (!cur) {
		json_decref(rec);
		return -1;
	}
	json_object_update(cur, rec);
	/* a pid without its start time could later name another process */
	if (json_is_integer(json_object_get(cur, "pid")) && !json_object_get(rec, "pidStartTime")) {
		long long s = proc_start_time((long)json_integer_value(json_object_get(cur, "pid")));
		json_object_set_new(cur, "pidStartTime", s >= 0 ? json_integer(s) : json_null());
	}
	int rc = state_store(st, id, cur, false, e);
	if (rc == 0 && merged)
		*merged = json_incref(cur);
	json_decref(cur);
	json_decref(rec);
	return rc;
}

/* The policy request from the record's network section (the compiler,
 * lib/policy.c, validates every field). */
static json_t *policy_of(json_t *nw)
{
	json_t *p = json_pack("{s:s, s:O, s:O, s:O, s:O, s:i}", "policy", jstr(nw, "policy"), "allowedCidrs",
			      json_object_get(nw, "allowedCidrs"), "deniedCidrs", json_object_get(nw, "deniedCidrs"),
			      "dnsResolvers", json_object_get(nw, "dns"), "publishedPorts",
			      json_object_get(nw, "publishedPorts"), "agentPort", AGENT_PORT);
	if (json_array_size(json_object_get(nw, "allowedDomains")))
		json_object_set(p, "allowedDomains", json_object_get(nw, "allowedDomains"));
	if (json_is_true(json_object_get(nw, "strictDomains")))
		json_object_set_new(p, "strictDomains", json_true());
	return p;
}

/* The compiler vmsan-nftables runs, in-process (a process start less);
 * vmsan-nftables stays the way to read a policy's rules. */
static json_t *compile_policy(json_t *nw, struct verr *e)
{
	struct policy_target t = { NET_TABLE, NET_TAP, NET_UPLINK, NET_GUEST_ADDR };
	json_t *pol = policy_of(nw);
	struct jr r;
	jr_init(&r, pol, "policy", e);
	json_t *c = policy_compile(&r, &t, e);
	json_decref(pol);
	return c;
}

/* The request that (re)applies a VM's rules: the compiled ruleset for its
 * namespace, or with --no-netns the policy (vmsan-net compiles the host's
 * rules itself), and with allowed domains its resolver's settings (the
 * upstreams are the VM's resolvers; the log is dns.log in the VM's
 * directory dir); NULL with e set when the policy does not compile. */
json_t *rules_request(const char *id, const char *dir, json_t *nw, struct verr *e)
{
	if (json_is_true(json_object_get(nw, "noNetns")))
		return json_pack("{s:s, s:o}", "id", id, "policy", policy_of(nw));
	json_t *c = compile_policy(nw, e);
	if (!c)
		return NULL;
	json_t *req = json_pack("{s:s, s:O}", "id", id, "ruleset", json_object_get(c, "ruleset"));
	json_decref(c);
	json_t *doms = json_object_get(nw, "allowedDomains");
	if (json_array_size(doms)) {
		json_t *dns = json_pack("{s:O, s:O}", "domains", doms, "upstreams", json_object_get(nw, "dns"));
		if (json_is_integer(json_object_get(nw, "dnsTtlMin")))
			json_object_set(dns, "ttlMin", json_object_get(nw, "dnsTtlMin"));
		if (json_is_integer(json_object_get(nw, "dnsTtlMax")))
			json_object_set(dns, "ttlMax", json_object_get(nw, "dnsTtlMax"));
		if (json_is_true(json_object_get(nw, "strictDomains")))
			json_object_set_new(dns, "strict", json_true());
		if (dir)
			json_object_set_new(dns, "log", json_sprintf("%s/dns.log", dir));
		json_object_set_new(req, "dns", dns);
	}
	return req;
}

/* The policy compiled and the network set up (b->net). */
int net_up(const char *id, json_t *rec, struct boot *b, struct verr *e)
{
	json_t *nw = json_object_get(rec, "network");
	bool no_netns = json_is_true(json_object_get(nw, "noNetns"));
	double t = now_ms();
	json_t *setup = rules_request(id, jstr(rec, "dir"), nw, e);
	if (!setup)
		return -1;
	b->t_policy = now_ms() - t;
	pause_at("network");
	t = now_ms();
	if (no_netns) {
		json_object_set_new(setup, "hostMode", json_true());
	} else {
		json_t *hostports = json_array(), *p;
		size_t i;
		json_array_foreach(json_object_get(nw, "publishedPorts"), i, p)
			json_array_append_new(hostports, json_integer(jint(p, "hostPort", 0)));
		json_object_set_new(setup, "publishedPorts", hostports);
	}
	if (jint(nw, "bandwidthMbit", 0) > 0)
		json_object_set_new(setup, "bandwidthMbit", json_integer(jint(nw, "bandwidthMbit", 0)));
	/* root notes where our state keeps the VM: gc's sign of an orphan */
	if (jstr(rec, "dir"))
		json_object_set_new(setup, "vmDir", json_string(jstr(rec, "dir")));
	if (no_netns)
		say("network: no namespace (--no-netns), policy %s", jstr(nw, "policy"));
	else
		say("network: namespace vmsan-%s, policy %s", id, jstr(nw, "policy"));
	b->net = call("net", "setup", setup, true, e);
	if (!b->net)
		return -1;
	b->t_net = now_ms() - t;
	return 0;
}

/* The VMM started on the network net_up made, the record told, the guest
 * awaited. */
int vmm_up(struct state *st, const char *id, json_t *rec, struct boot *b, struct verr *e)
{
	json_t *nw = json_object_get(rec, "network");
	double t = now_ms();
	long long uid, gid;
	vmm_identity(jint(b->net, "slot", 0), &uid, &gid);
	json_t *img = json_object_get(rec, "image");
	json_t *start = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:i, s:s,"
		" s:{s:s, s:s, s:s, s:s, s:s, s:I, s:O}}",
		"id", id, "vmm", jstr(rec, "vmm"), "kernel", jstr(rec, "kernel"), "vmDisk", jstr(rec, "disk"), "runDir",
		jstr(rec, "dir"), "uid", uid, "gid", gid, "vcpus", jint(rec, "vcpuCount", 1), "memoryMib",
		jint(rec, "memSizeMib", 256), "accel", b->accel ?: jstr(rec, "accel") ?: "auto", "agentPort", AGENT_PORT,
		"hostname", id, "network", "netns", jstr(b->net, "netns") ?: "", "tap", jstr(b->net, "tap"), "mac",
		jstr(b->net, "mac"), "guestIp", jstr(b->net, "guestIp"), "gatewayIp", jstr(b->net, "gatewayIp"),
		"prefixLen", jint(b->net, "prefixLen", 30), "dns", json_object_get(nw, "dns"));
	if (b->incoming)
		json_object_set_new(start, "incoming", json_string(b->incoming));
	if (!jstr(b->net, "netns")) /* --no-netns: the VMM stays in the host's namespace */
		json_object_del(json_object_get(start, "network"), "netns");
	if (jstr(img, "path"))
		json_object_set_new(start, "imageDisk", json_string(jstr(img, "path")));
	if (!strcmp(jstr(rec, "vmm"), "firecracker"))
		json_object_del(start, "accel");
	pause_at("vmm");
	say("VMM: starting %s", jstr(rec, "vmm"));
	b->vmm = call("fc", "start", start, true, e);
	if (!b->vmm)
		return -1;
	b->t_vmm = now_ms() - t;
	/* The guest boots from here: what follows (the record naming the
	 * VMM) runs beside its boot, and the boot is timed from now. */
	double t_boot0 = now_ms();
	/* The VMM's own start (QEMU: fork to QMP answering; Firecracker: the
	 * jailer to InstanceStart), as vmsan-fc measured it; the rest of
	 * t_vmm is vmsan-fc's. */
	b->t_vmm_init = json_real_value(json_object_get(b->vmm, "startMs"));
	/* The record names the VMM before we wait on the guest. */
	json_t *upd = json_pack("{s:{s:I, s:I, s:I}, s:s, s:{s:s, s:i}}", "process", "pid", jint(b->vmm, "pid", 0),
				"startTime", jint(b->vmm, "startTime", 0), "uid", jint(b->vmm, "uid", 0), "accelUsed",
				jstr(b->vmm, "accel"), "agent", "addr", jstr(b->net, "agentAddr"), "port", AGENT_PORT);
	if (jstr(b->vmm, "apiSocket"))
		json_object_set_new(json_object_get(upd, "process"), "apiSocket",
				    json_string(jstr(b->vmm, "apiSocket")));
	/* why auto chose TCG where KVM opens (vmsan-fc's boot check) */
	if (jstr(b->vmm, "kvmRefused"))
		json_object_set_new(upd, "kvmRefused", json_string(jstr(b->vmm, "kvmRefused")));
	json_t *nwu = json_deep_copy(nw);
	json_object_set(nwu, "netns", json_object_get(b->net, "netns"));
	json_object_set(nwu, "slot", json_object_get(b->net, "slot"));
	json_object_set(nwu, "hostAddr", json_object_get(b->net, "hostAddr"));
	json_object_set(nwu, "guestIp", json_object_get(b->net, "guestIp"));
	json_object_set(nwu, "tapDevice", json_object_get(b->net, "tap"));
	json_object_set(nwu, "macAddress", json_object_get(b->net, "mac"));
	json_object_set_new(upd, "network", nwu);
	if (store(st, id, upd, NULL, e) < 0)
		return -1;
	pause_at("boot");
	say("boot: waiting for the guest agent");
	const char *bt = getenv("VMSAN_BOOT_TIMEOUT");
	int boot_timeout = bt && atoi(bt) > 0 ? atoi(bt) : BOOT_TIMEOUT_S;
	if (wait_agent(jstr(b->net, "agentAddr"), AGENT_PORT, jint(b->vmm, "pid", 0), jint(b->vmm, "startTime", 0),
		       boot_timeout, jstr(b->vmm, "console") ? jstr(b->vmm, "console") : "vmm.log", e) < 0)
		return -1;
	b->t_boot = now_ms() - t_boot0;
	return 0;
}

int boot_vm(struct state *st, const char *id, json_t *rec, struct boot *b, struct verr *e)
{
	return net_up(id, rec, b, e) < 0 ? -1 : vmm_up(st, id, rec, b, e);
}

/* The auto-stop: a detached process that sleeps until the deadline, then
 * runs `vmsan stop` on the VM (which also tears its network down). */
int arm_timer(struct state *st, const char *id, long long seconds, struct verr *e)
{
	pid_t pid = fork();
	if (pid < 0) {
		verr_sys(e, "ERR_SYSTEM", NULL, "fork");
		return -1;
	}
	if (pid == 0) {
		setsid();
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		closefrom(3);
		signal(SIGHUP, SIG_IGN);
		struct timespec ts = { .tv_sec = (time_t)seconds };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		char self[PATH_MAX + 16];
		snprintf(self, sizeof self, "%s/vmsan-stop", libexec);
		setenv("VMSAN_STOP_REASON", "timeout", 1);
		execl(self, "vmsan-stop", id, (char *)NULL);
		_exit(127);
	}
	time_t at = time(NULL) + seconds;
	char iso[32];
	utc_iso(at, iso);
	return store(st, id,
		     json_pack("{s:{s:i, s:I}, s:s}", "timer", "pid", (int)pid, "startTime", proc_start_time((long)pid),
			       "timeoutAt", iso),
		     NULL, e);
}

/* ---- a VM opened, stopped ------------------------------------------------- */

/* Opens the state and locks the VM; its record with status derived. */
json_t *open_vm(struct state *st, const char *id, int *lock, struct verr *e)
{
	char why[128];
	if (valid_vm_id(id, why, sizeof why)) {
		verr_set(e, VMSAN_EXIT_USAGE, "ERR_VALIDATION_VM_ID", "VM ids look like vm-1a2b3c4d",
			 "invalid VM id '%s': %s", id, why);
		return NULL;
	}
	if (state_open(st, false, e) < 0) {
		if (verr_take(e, "ERR_STATE_DIR_MISSING"))
			verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_FOUND", "run 'vmsan list' to see your VMs",
				 "VM not found: %s", id);
		return NULL;
	}
	json_t *rec = state_load(st, id, e);
	if (!rec)
		return NULL;
	json_decref(rec);
	if ((*lock = state_lock(st, id, e)) < 0)
		return NULL;
	rec = state_load(st, id, e); /* again, under the lock */
	if (rec)
		state_derive_status(rec);
	return rec;
}

/* open_vm for an operation on a running VM: NULL with ERR_VM_NOT_RUNNING
 * (the lock, if taken, left to the caller) when it is not. */
json_t *open_running_vm(struct state *st, const char *id, int *lock, struct verr *e)
{
	json_t *rec = open_vm(st, id, lock, e);
	if (rec && strcmp(jstr(rec, "status"), "running")) {
		verr_set(e, VMSAN_EXIT_FAIL, "ERR_VM_NOT_RUNNING", "start it first (vmsan start)",
			 "%s is %s, not running", id, jstr(rec, "status"));
		json_decref(rec);
		rec = NULL;
	}
	return rec;
}

/* What a vmsan-fc request on a running VM names: its id; vmsan-fc finds
 * the VMM, its socket and its jail in root's own record. */
json_t *vmm_ref(const char *id)
{
	return json_pack("{s:s}", "id", id);
}

/* A running VM stopped: the guest asked to power off, the VMM made to
 * end, the network torn down; the disk stays. */
int stop_vm(struct state *st, const char *id, json_t *rec, long long grace, struct verr *e)
{
	const char *status = jstr(rec, "status");
	json_t *vmm = json_object_get(rec, "process");
	long long pid = jint(vmm, "pid", 0);
	if (!strcmp(status, "running") && pid > 1) {
		char tok[128];
		json_t *ag = json_object_get(rec, "agent");
		if (read_token(st, id, tok, sizeof tok) == 0 && jstr(ag, "addr")) {
			int code = agent_http(jstr(ag, "addr"), (int)jint(ag, "port", AGENT_PORT), "POST", "/shutdown",
					      tok, 2000, 2000);
			say("asked the guest to power off: HTTP %d", code);
		}
		explicit_bzero(tok, sizeof tok);
		json_t *r = call("fc", "stop", json_pack("{s:s, s:I}", "id", id, "timeoutSec", grace), true, e);
		if (!r)
			return -1;
		say("VMM %s", jstr(r, "how"));
		json_decref(r);
	} else {
		kill_vmm(id);
	}
	kill_timer(rec);
	json_t *r = call("net", "teardown", json_pack("{s:s}", "id", id), true, e);
	if (!r)
		return -1;
	json_decref(r);
	json_t *upd = json_pack("{s:s, s:n, s:n, s:n, s:n, s:n, s:n}", "status", "stopped", "pid", "pidStartTime",
				"pidRole", "process", "timer", "timeoutAt");
	const char *reason = getenv("VMSAN_STOP_REASON");
	json_object_set_new(upd, "stopReason", json_string(reason && *reason ? reason : "requested"));
	return store(st, id, upd, NULL, e);
}
