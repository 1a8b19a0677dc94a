/* libFuzzer target: what the root helpers read from a caller, on arbitrary
 * bytes.  A request goes through the strict parser (request_parse: one
 * object, no duplicate keys, valid UTF-8); then, as vmsan-fc's start/plan
 * request (read_cfg: every field checked, the caller's nothing trusted),
 * as vmsan-net's ruleset (nft_ruleset_check, the check every ruleset from
 * a request passes before root applies it, and nft_ruleset_render on what
 * passed), and as the policy vmsan-net compiles itself in --no-netns mode
 * (policy_compile).  Nothing here runs as root or touches the system:
 * vmsan-fc.c is compiled in with its main renamed, and only its readers
 * are called.  Build: make fuzz. */
#define main vmsan_fc_main
#include "../../libexec/vmsan-fc.c"
#undef main

#include "../../libexec/lib/nft.h"
#include "../../libexec/lib/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verr e = { 0 };
	json_t *req = request_parse((const char *)data, size, &e);
	if (!req)
		return 0;
	/* vmsan-fc: a start/plan request, with the built-in configuration */
	struct rootconf conf;
	struct vmcfg c;
	struct jr r;
	memset(&conf, 0, sizeof conf);
	snprintf(conf.qemu, sizeof conf.qemu, "/usr/bin/qemu-system-x86_64");
	snprintf(conf.firecracker, sizeof conf.firecracker, "/usr/bin/firecracker");
	snprintf(conf.jailer, sizeof conf.jailer, "/usr/bin/jailer");
	snprintf(conf.chroot_base, sizeof conf.chroot_base, "/srv/jailer");
	jr_init(&r, req, "request", &e);
	if (read_cfg(&r, &c, &conf, &e) == 0 && jr_end(&r) == 0) {
		json_t *p = plan(&c);
		char *s = json_dumps(p, JSON_COMPACT);
		if (!s)
			abort(); /* a plan is always a JSON document */
		free(s);
		json_decref(p);
	}
	/* vmsan-net: the ruleset a request carries (the object itself, or
	 * its "ruleset" member) */
	json_t *rs = json_object_get(req, "ruleset") ? json_object_get(req, "ruleset") : req;
	struct verr e2 = { 0 };
	if (nft_ruleset_check(rs, &e2) == 0)
		free(nft_ruleset_render(rs));
	/* and the policy it compiles for the host's namespace */
	struct verr e3 = { 0 };
	struct jr pr;
	struct policy_target t = { .table = "vmsan_vm_x", .tap = "vmst1", .uplink = NULL, .guest = "198.18.0.6" };
	jr_init(&pr,
		json_object_get(req, "policy") && json_is_object(json_object_get(req, "policy"))
			? json_object_get(req, "policy")
			: req,
		"request.policy", &e3);
	json_t *compiled = policy_compile(&pr, &t, &e3);
	if (compiled) {
		struct verr e4 = { 0 };
		/* what the compiler makes, the checker accepts */
		if (nft_ruleset_check(json_object_get(compiled, "ruleset"), &e4) != 0)
			abort();
		json_decref(compiled);
	}
	json_decref(req);
	return 0;
}
