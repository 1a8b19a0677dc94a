/* E2B's control API (what the SDK calls through E2B_API_URL), mapped onto
 * vmsan's commands.  Every route but /health needs X-API-KEY; a sandbox
 * made with one key does not exist for another (404, as E2B answers). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "serve/serve.h"

#define TEMPLATE_MAX 150
#define META_KEY_MAX 256
#define META_VALUE_MAX 2048

static const char *const runtimes[] = { "base", "node22", "node24", "python3.13" };

static int random_token(char *out, size_t n)
{
	unsigned char r[24];

	if (n < 2 * sizeof r + 1 || getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		return -1;
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}

/* ---- what a sandbox looks like to the SDK ---------------------------- */

static void rfc3339(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *state_of(const char *id)
{
	struct verr e = { 0 };
	json_t *rec = run_vm_record(id, &e);
	const char *s = rec ? json_string_value(json_object_get(rec, "status")) : NULL;
	/* vmsan pause stops the vCPUs of a VM that stays "running". */
	bool paused = json_is_true(json_object_get(rec, "paused"));
	const char *state = s && !strcmp(s, "running") ? (paused ? "paused" : "running") : NULL;

	json_decref(rec);
	return state;
}

/* ListedSandbox, or SandboxDetail with the token when detail. */
static json_t *describe(const struct box *b, const char *state, bool detail)
{
	char started[32], end[32];
	json_t *j;

	rfc3339(b->started, started);
	rfc3339(b->end ? b->end : time(NULL), end);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:O, s:s, s:s}", "sandboxID", b->id, "templateID",
		      b->template, "clientID", "vmsan", "startedAt", started, "endAt", end, "cpuCount", b->vcpus,
		      "memoryMB", b->mem_mib, "diskSizeMB", b->disk_mib, "metadata", b->metadata, "state", state,
		      "envdVersion", SERVE_ENVD_VERSION);
	if (j && detail) {
		struct agent_addr a;
		struct verr e = { 0 };
		if (run_agent_addr(b->id, &a, &e) == 0)
			json_object_set_new(j, "envdAccessToken", json_string(a.token));
		json_object_set_new(j, "domain", json_null());
	}
	return j;
}

/* The Sandbox answer of create and connect. */
json_t *sandbox_doc(const struct box *b, struct verr *e)
{
	struct agent_addr a;

	if (run_agent_addr(b->id, &a, e) != 0)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:n, s:s?}", "sandboxID", b->id, "templateID", b->template,
			 "clientID", "vmsan", "envdVersion", SERVE_ENVD_VERSION, "envdAccessToken", a.token, "domain",
			 "trafficAccessToken", b->traffic_token[0] ? b->traffic_token : NULL);
}

static enum MHD_Result fail_verr(struct req *q, const struct verr *e)
{
	unsigned status = e->exit == VMSAN_EXIT_USAGE ? 400 : 500;

	if (!strcmp(e->code, "ERR_VM_LIMIT"))
		status = 429;
	else if (!strcmp(e->code, "ERR_VM_NOT_FOUND"))
		status = 404;
	return http_error(q, status, "%s", e->message);
}

/* A template vmsan could not make a VM from: not there (404), or its
 * registry not answering (502); anything else is the create's own error. */
static enum MHD_Result template_error(struct req *q, const char *tmpl, const struct verr *e)
{
	static const char *const missing[] = { "ERR_IMAGE_NOT_FOUND", "ERR_IMAGE_REF", "ERR_MANIFEST",
					       "ERR_VALIDATION_RUNTIME" };
	static const char *const unreachable[] = { "ERR_REGISTRY_UNREACHABLE", "ERR_REGISTRY_TLS", "ERR_REGISTRY_AUTH",
						   "ERR_PULL" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcmp(e->code, missing[i]))
			return http_error(q, 404, "template '%.150s' not found: %s", tmpl, e->message);
		if (!strcmp(e->code, unreachable[i]))
			return http_error(q, 502, "cannot get template '%.150s': %s", tmpl, e->message);
	}
	return fail_verr(q, e);
}

/* ---- request bodies ---------------------------------------------------- */

/* The body as a JSON object (an empty body is {}), or an answer sent. */
static json_t *body_object(struct req *q, enum MHD_Result *answered)
{
	json_error_t je;
	json_t *j;

	if (q->len == 0)
		return json_object();
	j = json_loadb(q->body, q->len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		json_decref(j);
		*answered = http_error(q, 400, "the body is not a JSON object: %s", j ? "another JSON value" : je.text);
		return NULL;
	}
	return j;
}

/* Every key of o is one of known (NULL-terminated); a null value counts as
 * absent, as the SDK sends undefined fields that way at times. */
const char *body_unknown_key(json_t *o, const char *const *known)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		size_t i;
		for (i = 0; known[i] && strcmp(known[i], k); i++)
			;
		if (!known[i])
			return k;
	}
	return NULL;
}

static bool timeout_of(json_t *o, long *out, const char **why)
{
	json_t *t = json_object_get(o, "timeout");

	if (!t || json_is_null(t))
		return true;
	if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > SERVE_TIMEOUT_MAX) {
		*why = "timeout: expected whole seconds, 1 to 86400";
		return false;
	}
	*out = (long)json_integer_value(t);
	return true;
}

static const char *check_metadata(json_t *md)
{
	const char *k;
	json_t *v;

	if (!json_is_object(md))
		return "metadata: expected an object of strings";
	if (json_object_size(md) > SERVE_METADATA_MAX)
		return "metadata: at most 64 keys";
	json_object_foreach(md, k, v)
		if (!json_is_string(v) || strlen(k) > META_KEY_MAX || json_string_length(v) > META_VALUE_MAX || !*k)
			return "metadata: keys of 1-256 characters, values strings of at most 2048";
	return NULL;
}

/* A template is a vmsan runtime or an OCI reference; nothing that could be
 * read as an option. */
static bool template_ok(const char *t, bool *is_runtime)
{
	size_t n = strlen(t);

	*is_runtime = false;
	for (size_t i = 0; i < sizeof runtimes / sizeof *runtimes; i++)
		if (!strcmp(t, runtimes[i]))
			return *is_runtime = true;
	if (n == 0 || n > TEMPLATE_MAX || t[0] == '-' || !strpbrk(t, ":/"))
		return false;
	return strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@") == n;
}

/* ---- the routes ---------------------------------------------------------- */

/* A VM made by vmsan create with args (NULL-terminated), kept as the
 * sandbox b (owner, template, metadata, pause and traffic token set by the
 * caller; the rest filled here), ending timeout seconds from now.  Its
 * Sandbox answer, or NULL with e set and nothing left behind. */
json_t *sandbox_from(struct box *b, const char *const *args, long timeout, struct verr *e)
{
	json_t *doc = run_vmsan("create", args, e), *vm, *reply = NULL;

	if (!doc)
		return NULL;
	vm = json_object_get(doc, "vm");
	snprintf(b->id, sizeof b->id, "%s", json_string_value(json_object_get(vm, "id")) ?: "");
	b->started = time(NULL);
	b->end = b->started + timeout;
	b->vcpus = (int)json_integer_value(json_object_get(vm, "vcpuCount")) ?: 1;
	b->mem_mib = (int)json_integer_value(json_object_get(vm, "memSizeMib")) ?: 256;
	b->disk_mib = (int)(json_integer_value(json_object_get(vm, "diskSize")) >> 20) ?: 10240;
	if (box_add(b, e) == 0)
		reply = sandbox_doc(b, e);
	if (!reply) {
		const char *rm[] = { "--force", b->id, NULL };
		json_decref(run_vmsan("rm", rm, &(struct verr){ 0 }));
		box_remove(b->id);
	}
	json_decref(doc);
	return reply;
}

/* What a create's body asks for, checked: NULL, or why not. */
static const char *create_check(json_t *body, long *timeout, struct egress *c)
{
	static const char *const known[] = { "templateID",
					     "timeout",
					     "metadata",
					     "envVars",
					     "autoPause",
					     "autoPauseMemory",
					     "allow_internet_access",
					     "network",
					     "secure",
					     "mcp",
					     "autoResume",
					     "volumeMounts",
					     "iam",
					     NULL };
	static char unknown[96];
	json_t *md = json_object_get(body, "metadata");
	const char *why = NULL, *k;

	if ((k = body_unknown_key(body, known))) {
		snprintf(unknown, sizeof unknown, "unknown field '%.64s'", k);
		return unknown;
	}
	if (!json_is_string(json_object_get(body, "templateID")))
		return "templateID: required, a string";
	if (!timeout_of(body, timeout, &why) || (md && !json_is_null(md) && (why = check_metadata(md))) ||
	    (why = egress_args(json_object_get(body, "network"), json_object_get(body, "allow_internet_access"), c)))
		return why;
	if (json_object_size(json_object_get(body, "envVars")) ||
	    json_is_true(json_object_get(json_object_get(body, "autoResume"), "enabled")) ||
	    json_array_size(json_object_get(body, "volumeMounts")) ||
	    (json_object_get(body, "mcp") && !json_is_null(json_object_get(body, "mcp"))) ||
	    json_object_size(json_object_get(body, "iam")))
		return "envVars, autoResume, volumeMounts, mcp and iam are not supported by vmsan serve";
	return NULL;
}

static enum MHD_Result do_create(struct req *q, const char *owner)
{
	enum MHD_Result answered = MHD_NO;
	json_t *body = body_object(q, &answered), *md, *reply;
	struct egress c = { .n = 0 };
	struct box b = { 0 };
	struct verr e = { 0 };
	const char *tmpl, *why;
	char snap[96];
	long timeout = SERVE_TIMEOUT_DEFAULT;
	bool runtime = false, is_snap;

	if (!body)
		return answered;
	tmpl = json_string_value(json_object_get(body, "templateID"));
	md = json_object_get(body, "metadata");
	if ((why = create_check(body, &timeout, &c))) {
		answered = http_error(q, 400, "%s", why);
		goto out;
	}
	/* A template is one of the key's snapshots, a runtime or a reference. */
	is_snap = snap_find(tmpl, owner, snap, sizeof snap);
	if (!is_snap && !template_ok(tmpl, &runtime)) {
		answered = http_error(q, 404, "template '%.150s' not found", tmpl);
		goto out;
	}
	if (c.n + 3 > sizeof c.args / sizeof *c.args) {
		answered = http_error(q, 400, "network: too many settings");
		goto out;
	}
	c.args[c.n++] = is_snap ? "--snapshot" : runtime ? "--runtime" : "--from-image";
	c.args[c.n++] = is_snap ? snap : tmpl;
	c.args[c.n] = NULL;
	snprintf(b.owner, sizeof b.owner, "%s", owner);
	snprintf(b.template, sizeof b.template, "%s", tmpl);
	b.pause_on_timeout = json_is_true(json_object_get(body, "autoPause"));
	b.metadata = md && !json_is_null(md) ? json_incref(md) : json_object();
	/* allowPublicTraffic false: the sandbox's ports want E2B's traffic token. */
	if (json_is_false(json_object_get(json_object_get(body, "network"), "allowPublicTraffic")) &&
	    random_token(b.traffic_token, sizeof b.traffic_token) != 0) {
		answered = http_error(q, 500, "cannot make a traffic token");
		goto out;
	}
	reply = sandbox_from(&b, c.args, timeout, &e);
	snprintf(q->sandbox, sizeof q->sandbox, "%s", b.id);
	if (reply)
		answered = http_json(q, 201, reply);
	else /* no VM made: the template's fault, or the create's own */
		answered = b.id[0] ? fail_verr(q, &e) : template_error(q, tmpl, &e);
out:
	box_release(&b);
	json_decref(body);
	return answered;
}

/* Template.exists(name): vmsan's runtimes are the templates it has by
 * name; an OCI reference is not an alias (it is pulled when used). */
static enum MHD_Result do_alias(struct req *q, const char *alias)
{
	for (size_t i = 0; i < sizeof runtimes / sizeof *runtimes; i++)
		if (!strcmp(alias, runtimes[i]))
			return http_json(q, 200, json_pack("{s:s, s:b}", "templateID", alias, "public", 1));
	return http_error(q, 404, "template alias '%.150s' not found", alias);
}

/* The metadata filter: "k=v&k2=v2", keys and values URL-encoded. */
static bool metadata_matches(json_t *md, const char *filter)
{
	char buf[4096], *save = NULL;

	if (!filter || !*filter)
		return true;
	snprintf(buf, sizeof buf, "%s", filter);
	for (char *pair = strtok_r(buf, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(pair, '=');
		if (!eq)
			return false;
		*eq = '\0';
		MHD_http_unescape(pair);
		MHD_http_unescape(eq + 1);
		const char *v = json_string_value(json_object_get(md, pair));
		if (!v || strcmp(v, eq + 1))
			return false;
	}
	return true;
}

static enum MHD_Result do_list(struct req *q, const char *owner)
{
	const char *filter = req_query(q, "metadata"), *want = req_query(q, "state");
	struct box *v;
	size_t n = box_list(owner, &v);
	json_t *out = json_array();

	for (size_t i = 0; i < n; i++) {
		const char *state = state_of(v[i].id);
		if (!state || !metadata_matches(v[i].metadata, filter) || (want && !strstr(want, state)))
			continue;
		json_array_append_new(out, describe(&v[i], state, false));
	}
	box_free_list(v, n);
	return http_json(q, 200, out);
}

static enum MHD_Result do_get(struct req *q, const struct box *b)
{
	const char *state = state_of(b->id);

	if (!state)
		return http_error(q, 404, "sandbox \"%s\" not found", b->id);
	return http_json(q, 200, describe(b, state, true));
}

static enum MHD_Result do_kill(struct req *q, const struct box *b)
{
	const char *rm[] = { "--force", b->id, NULL };
	struct verr e = { 0 };
	json_t *r = run_vmsan("rm", rm, &e);

	if (!r && strcmp(e.code, "ERR_VM_NOT_FOUND"))
		return fail_verr(q, &e);
	json_decref(r);
	box_remove(b->id);
	return http_json(q, 204, NULL);
}

static enum MHD_Result do_timeout(struct req *q, const struct box *b)
{
	enum MHD_Result answered = MHD_NO;
	json_t *body = body_object(q, &answered);
	static const char *const known[] = { "timeout", NULL };
	const char *why = NULL, *k;
	long t = 0;
	struct verr e = { 0 };

	if (!body)
		return answered;
	if ((k = body_unknown_key(body, known)))
		answered = http_error(q, 400, "unknown field '%.64s'", k);
	else if (!timeout_of(body, &t, &why) || t == 0)
		answered = http_error(q, 400, "%s", why ? why : "timeout: required");
	else if (box_set_end(b->id, time(NULL) + t, &e) != 0)
		answered = fail_verr(q, &e);
	else
		answered = http_json(q, 204, NULL);
	json_decref(body);
	return answered;
}

static enum MHD_Result do_pause(struct req *q, const struct box *b)
{
	static const char *const known[] = { "memory", NULL };
	const char *args[] = { b->id, NULL }, *state = state_of(b->id), *k;
	enum MHD_Result answered = MHD_NO;
	json_t *body = body_object(q, &answered), *r, *mem;
	struct verr e = { 0 };

	if (!body)
		return answered;
	k = body_unknown_key(body, known);
	mem = json_object_get(body, "memory");
	json_decref(body);
	if (k)
		return http_error(q, 400, "unknown field '%.64s'", k);
	/* vmsan's pause keeps the memory: a snapshot of the disk alone is
	 * vmsan snapshot's job. */
	if (json_is_false(mem))
		return http_error(q, 400, "memory: false is not supported: a paused sandbox keeps its memory");
	if (!state)
		return http_error(q, 404, "sandbox \"%s\" not found", b->id);
	if (!strcmp(state, "paused"))
		return http_error(q, 409, "sandbox \"%s\" is already paused", b->id);
	r = run_vmsan("pause", args, &e);
	if (!r)
		return fail_verr(q, &e);
	json_decref(r);
	box_set_end(b->id, 0, &e); /* a paused sandbox waits to be resumed */
	return http_json(q, 204, NULL);
}

/* Connect (and the older resume): a paused sandbox is resumed (201), a
 * running one just gets its new timeout (200). */
static enum MHD_Result do_connect(struct req *q, const struct box *b)
{
	static const char *const known[] = { "timeout", "memory", "autoPause", NULL };
	enum MHD_Result answered = MHD_NO;
	json_t *body = body_object(q, &answered), *doc;
	const char *why = NULL, *k, *state = NULL;
	const char *args[] = { b->id, NULL };
	long t = SERVE_TIMEOUT_DEFAULT;
	unsigned status = 200;
	struct verr e = { 0 };

	if (!body)
		return answered;
	if ((k = body_unknown_key(body, known)))
		answered = http_error(q, 400, "unknown field '%.64s'", k);
	else if (!timeout_of(body, &t, &why))
		answered = http_error(q, 400, "%s", why);
	else if (!(state = state_of(b->id)))
		answered = http_error(q, 404, "sandbox \"%s\" not found", b->id);
	if (answered != MHD_NO || q->status)
		goto out;
	if (!strcmp(state, "paused")) {
		json_t *r = run_vmsan("resume", args, &e);
		if (!r) {
			answered = fail_verr(q, &e);
			goto out;
		}
		json_decref(r);
		status = 201;
	}
	if (box_set_end(b->id, time(NULL) + t, &e) != 0 || !(doc = sandbox_doc(b, &e)))
		answered = fail_verr(q, &e);
	else
		answered = http_json(q, status, doc);
out:
	json_decref(body);
	return answered;
}

/* The live policy: vmsan network, one nftables batch. */
static enum MHD_Result do_network(struct req *q, const struct box *b)
{
	static const char *const known[] = { "allowOut", "denyOut", "allow_internet_access", NULL };
	enum MHD_Result answered = MHD_NO;
	json_t *body = body_object(q, &answered), *net, *r;
	struct egress g;
	struct verr e = { 0 };
	const char *k, *why;

	if (!body)
		return answered;
	net = json_pack("{s:O?, s:O?}", "allowOut", json_object_get(body, "allowOut"), "denyOut",
			json_object_get(body, "denyOut"));
	if ((k = body_unknown_key(body, known)))
		answered = http_error(q, 400, "unknown field '%.64s'", k);
	else if ((why = egress_args(net, json_object_get(body, "allow_internet_access"), &g)))
		answered = http_error(q, 400, "%s", why);
	else if (!state_of(b->id))
		answered = http_error(q, 404, "sandbox \"%s\" not found", b->id);
	if (q->status)
		goto out;
	memmove(g.args + 1, g.args, g.n * sizeof *g.args);
	g.args[0] = b->id;
	g.args[g.n + 1] = NULL;
	r = run_vmsan("network", g.args, &e);
	answered = r ? http_json(q, 204, NULL) : fail_verr(q, &e);
	json_decref(r);
out:
	json_decref(net);
	json_decref(body);
	return answered;
}

static enum MHD_Result with_body(struct req *q, const struct box *b,
				 enum MHD_Result (*fn)(struct req *, const struct box *, json_t *))
{
	enum MHD_Result answered = MHD_NO;
	json_t *body = body_object(q, &answered);

	if (!body)
		return answered;
	answered = fn(q, b, body);
	json_decref(body);
	return answered;
}

static bool known_sub(const char *sub)
{
	static const char *const subs[] = { "",		"/timeout", "/pause",	  "/connect", "/resume",
					    "/network", "/metrics", "/snapshots", "/fork" };

	for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
		if (!strcmp(sub, subs[i]))
			return true;
	return false;
}

/* Routes under /sandboxes/{id}: the id, then what follows it. */
static enum MHD_Result sandbox_route(struct req *q, const char *owner, const char *rest)
{
	char id[64], why[128];
	const char *slash = strchr(rest, '/'), *sub = slash ? slash : "";
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	const char *m = q->method;
	struct box b;
	enum MHD_Result rc;

	if (n == 0 || n >= sizeof id)
		return http_error(q, 404, "no such sandbox");
	memcpy(id, rest, n);
	id[n] = '\0';
	snprintf(q->sandbox, sizeof q->sandbox, "%s", id);
	if (valid_vm_id(id, why, sizeof why) != 0 || !box_get(id, owner, &b))
		return http_error(q, 404, "sandbox \"%s\" not found", id);
	if (!strcmp(sub, "") && !strcmp(m, "GET"))
		rc = do_get(q, &b);
	else if (!strcmp(sub, "") && !strcmp(m, "DELETE"))
		rc = do_kill(q, &b);
	else if (!strcmp(sub, "/timeout") && !strcmp(m, "POST"))
		rc = do_timeout(q, &b);
	else if (!strcmp(sub, "/pause") && !strcmp(m, "POST"))
		rc = do_pause(q, &b);
	else if ((!strcmp(sub, "/connect") || !strcmp(sub, "/resume")) && !strcmp(m, "POST"))
		rc = do_connect(q, &b);
	else if (!strcmp(sub, "/network") && !strcmp(m, "PUT"))
		rc = do_network(q, &b);
	else if (!strcmp(sub, "/metrics") && !strcmp(m, "GET"))
		rc = do_metrics(q, &b);
	else if ((!strcmp(sub, "/snapshots") || !strcmp(sub, "/fork")) && !strcmp(m, "POST"))
		rc = with_body(q, &b, sub[1] == 's' ? snap_create : snap_fork);
	else
		rc = http_error(q, known_sub(sub) ? 405 : 404, "%s %s is not supported", m, q->url);
	box_release(&b);
	return rc;
}

enum MHD_Result control_route(struct req *q)
{
	const char *url = q->url, *owner;

	if (!strcmp(url, "/health"))
		return http_json(q, 200, json_pack("{s:s}", "status", "ok"));
	owner = keys_check(req_header(q, "X-API-KEY"));
	if (!owner)
		return http_error(q, 401, "Invalid API key");
	if (!strncmp(url, "/v2/", 4))
		url += 3;
	if (!strcmp(url, "/sandboxes")) {
		if (!strcmp(q->method, "POST"))
			return do_create(q, owner);
		if (!strcmp(q->method, "GET"))
			return do_list(q, owner);
		return http_error(q, 405, "%s %s is not supported", q->method, q->url);
	}
	if (!strncmp(url, "/sandboxes/", 11))
		return sandbox_route(q, owner, url + 11);
	if (!strcmp(url, "/snapshots") && !strcmp(q->method, "GET"))
		return snap_list(q, owner);
	if (!strncmp(url, "/templates/aliases/", 19) && !strcmp(q->method, "GET"))
		return do_alias(q, url + 19);
	return http_error(q, 404, "%s %s: no such route", q->method, q->url);
}
