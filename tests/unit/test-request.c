/* Table-driven tests of the strict request parser and field reader. */
#include <stdio.h>
#include <string.h>

#include "lib/vmsan.h"

static int ntest, nfail;

static void ok(int cond, const char *what, const char *detail)
{
	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - %s\n", cond ? "" : "not ", ntest, what);
	if (!cond && detail && *detail)
		printf("#   %s\n", detail);
}

struct rcase {
	const char *body;
	size_t len;	  /* 0: strlen */
	const char *code; /* expected error code, NULL if good */
	const char *msg;  /* substring of the message */
};

/* A request with op, id (vm id), port (1-65535), on (bool), tags (array). */
static void read_fields(json_t *req, struct verr *e)
{
	struct jr r;
	long long port;
	bool on;

	jr_init(&r, req, "request", e);
	jr_string(&r, "op", JR_REQUIRED, NULL);
	jr_string(&r, "id", JR_OPTIONAL, valid_vm_id);
	jr_int(&r, "port", JR_OPTIONAL, 1, 65535, &port);
	jr_bool(&r, "on", JR_OPTIONAL, &on);
	jr_array(&r, "tags", JR_OPTIONAL, 2);
	jr_end(&r);
}

static const struct rcase cases[] = {
	{ "{\"op\":\"x\"}", 0, NULL, NULL },
	{ "  {\"op\":\"x\",\"id\":\"vm-1\",\"port\":80,\"on\":true,\"tags\":[]}\n", 0, NULL, NULL },
	{ "{\"op\":\"x\",\"op\":\"y\"}", 0, "ERR_REQUEST_JSON", "duplicate" },
	{ "{\"op\":\"x\",\"bogus\":1}", 0, "ERR_REQUEST_FIELD", "unknown field 'bogus'" },
	{ "{\"op\":\"x\"} {}", 0, "ERR_REQUEST_JSON", "end of file expected" },
	{ "{\"op\":\"x\"}garbage", 0, "ERR_REQUEST_JSON", NULL },
	{ "{\"op\":1}", 0, "ERR_REQUEST_FIELD", "request.op: expected a string, got an integer" },
	{ "{\"op\":\"x\",\"id\":7}", 0, "ERR_REQUEST_FIELD", "request.id: expected a string" },
	{ "{\"op\":\"x\",\"id\":\"../x\"}", 0, "ERR_REQUEST_FIELD", "request.id: VM id" },
	{ "{\"op\":\"x\",\"port\":0}", 0, "ERR_REQUEST_FIELD", "request.port: 0 is out of range" },
	{ "{\"op\":\"x\",\"port\":70000}", 0, "ERR_REQUEST_FIELD", "out of range" },
	{ "{\"op\":\"x\",\"port\":\"80\"}", 0, "ERR_REQUEST_FIELD", "expected an integer, got a string" },
	{ "{\"op\":\"x\",\"port\":80.0}", 0, "ERR_REQUEST_FIELD", "expected an integer, got a number" },
	{ "{\"op\":\"x\",\"port\":99999999999999999999999}", 0, "ERR_REQUEST_JSON", "too big" },
	{ "{\"op\":\"x\",\"on\":\"yes\"}", 0, "ERR_REQUEST_FIELD", "expected a boolean" },
	{ "{\"op\":\"x\",\"tags\":[1,2,3]}", 0, "ERR_REQUEST_FIELD", "at most 2" },
	{ "{}", 0, "ERR_REQUEST_FIELD", "missing required field 'op'" },
	{ "", 0, "ERR_REQUEST_FIELD", "missing required field 'op'" },
	{ "[]", 0, "ERR_REQUEST_JSON", "must be a JSON object" },
	{ "\"op\"", 0, "ERR_REQUEST_JSON", "'[' or '{' expected" },
	{ "{\"op\":\"\xff\"}", 0, "ERR_REQUEST_JSON", "unable to decode byte 0xff" },
	{ "{\"op\":\"a\\u0000b\"}", 0, "ERR_REQUEST_JSON", NULL },
	{ "{\"op\":\"x\"", 0, "ERR_REQUEST_JSON", NULL },
	{ "{\"op\":\"x\"}\0{}", 13, "ERR_REQUEST_JSON", NULL },
};

/* An error's message as the reply carries it: valid UTF-8 whatever it was
 * given (jansson refuses anything else, and the reply is lost), a
 * character the 768-byte buffer cuts dropped whole. */
struct mcase {
	size_t pad;	  /* 'a's before text */
	const char *text; /* then this */
	const char *want; /* the message's end, after the 'a's */
};

static const struct mcase mcases[] = {
	{ 765, "\xc3\xa9", "\xc3\xa9" },		 /* e-acute ends at byte 767: kept */
	{ 766, "\xc3\xa9", "" },			 /* cut after its first byte: dropped */
	{ 765, "\xe2\x82\xac", "" },			 /* euro sign cut after two */
	{ 764, "\xf0\x9f\x98\x80", "" },		 /* emoji cut after three */
	{ 763, "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80" }, /* whole */
	{ 0, "x\xffy", "x?y" },				 /* not UTF-8: replaced, the rest kept */
	{ 0, "\xc3(", "?(" },				 /* a lead byte without its continuation */
	{ 0, "\xed\xa0\x80", "???" },			 /* a surrogate */
	{ 0, "\xc0\xaf", "??" },			 /* an overlong '/' */
	{ 0, "\xf4\x90\x80\x80", "????" },		 /* past U+10FFFF */
	{ 0, "ok \xe2\x9c\x93", "ok \xe2\x9c\x93" },	 /* valid: untouched */
};

static void message_cases(void)
{
	for (size_t i = 0; i < sizeof(mcases) / sizeof(*mcases); i++) {
		const struct mcase *c = &mcases[i];
		char in[1024], want[1024], what[96];
		struct verr e = { 0 };
		memset(in, 'a', c->pad);
		snprintf(in + c->pad, sizeof in - c->pad, "%s", c->text);
		memset(want, 'a', c->pad);
		snprintf(want + c->pad, sizeof want - c->pad, "%s", c->want);
		verr_set(&e, VMSAN_EXIT_FAIL, "ERR_X", NULL, "%s", in);
		json_t *j = json_string(e.message);
		snprintf(what, sizeof what, "message case %zu: %zu 'a's then %zu bytes", i, c->pad, strlen(c->text));
		ok(j && !strcmp(e.message, want), what, e.message + c->pad);
		json_decref(j);
	}
}

int main(void)
{
	message_cases();
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const struct rcase *c = &cases[i];
		struct verr e = { 0 };
		char what[160];
		json_t *req = request_parse(c->body, c->len ? c->len : strlen(c->body), &e);

		if (req)
			read_fields(req, &e);
		json_decref(req);
		snprintf(what, sizeof(what), "case %zu %s: %s", i, c->code ? c->code : "accepted",
			 c->msg ? c->msg : "");
		if (!c->code)
			ok(!verr_isset(&e), what, e.message);
		else
			ok(verr_isset(&e) && strcmp(e.code, c->code) == 0 && e.exit == VMSAN_EXIT_USAGE &&
				   (!c->msg || strstr(e.message, c->msg)),
			   what, e.message);
	}
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
