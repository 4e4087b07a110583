/*
 * test_relay.c — the relay (worker/relay.c) between two fake legs.
 *
 * The Twilio leg is a real server-role WebSocket codec writing into the
 * call's output buffer, which the test reads back frame by frame; the
 * OpenAI leg is a fake upstream that records every event the relay sends.
 * The functions of call.c, leg_openai.c and rest.c that relay.c calls are
 * defined here instead, so what is tested is relay.c alone: barge-in
 * arithmetic against marks, the persona-swap state machine, and the order
 * of tool results around a response.
 */
#include "test/unit/test.h"
#include "worker/app.h"
#include "worker/call.h"
#include "worker/relay.h"
#include "worker/record.h"
#include "worker/rest.h"
#include "worker/upstream.h"
#include "worker/worker.h"
#include "proto/b64.h"

#include <jansson.h>

/* ---------------------------------------------------------------- */
/* the fake legs */

#define MAX_SENT 256

static struct {
	struct upstream	*up;
	char		*json;
} sent[MAX_SENT];
static unsigned nsent;
static unsigned ncreated, nclosed;
static const char *closed_reason;
static int sms_calls;

struct upstream *
upstream_new(struct call *c, const struct persona *p)
{
	struct upstream *up = calloc(1, sizeof(*up));

	if (up == NULL)
		abort();
	up->magic = UPSTREAM_MAGIC;
	up->call = c;
	up->persona = p;
	up->state = UP_OPEN;
	up->id = ++ncreated;
	return up;
}

int
upstream_send(struct upstream *up, const char *json, size_t len)
{
	if (up->state != UP_OPEN || nsent == MAX_SENT)
		return -1;
	sent[nsent].up = up;
	sent[nsent].json = strndup(json, len);
	nsent++;
	return 0;
}

void
upstream_close(struct upstream *up, const char *reason)
{
	if (up->state != UP_OPEN)
		return;
	up->state = UP_CLOSED;
	nclosed++;
}

void
call_close(struct call *c, const char *reason, int failed, uint16_t ws_code)
{
	if (c->state >= CALL_CLOSING)
		return;
	c->state = CALL_CLOSING;
	closed_reason = reason;
}

/* the records (worker/record.c) are tested through the daemon */
void record_call_started(struct call *c) { }
void record_utterance(struct call *c, const char *role, const char *text,
    const char *item_id) { }
void record_cut(struct call *c, const char *item_id, uint64_t ms) { }
void record_tool(struct call *c, const char *name, const char *args,
    const char *outcome, uint64_t latency_ms) { }
void record_usage(struct call *c, const struct oa_msg *m) { }
void record_persona(struct call *c, const char *id) { }
void record_rollover(struct call *c) { }
void record_transfer(struct call *c, const char *to) { }
void record_ended(struct call *c) { }
void record_free(struct rec_call *rc) { }
void call_want_flush(struct call *c) { }
void call_release(struct call *c) { c->refs--; }
void worker_batch_opened(struct worker *w) { }
int rest_sms_configured(const struct rest *r) { return 1; }
/* no account for call updates: the relay closes the stream itself */
int rest_calls_configured(const struct rest *r) { return 0; }
int rest_webhook(struct rest *r, const char *url, const char *method,
    const char *const *headers, const char *body, long timeout_ms,
    const char *call_sid, uint64_t ref, const char *tag)
{
	return -1;
}
int rest_update_call(struct rest *r, const char *call_sid, const char *name,
    const char *value, uint64_t ref)
{
	return -1;
}
int rest_send_sms(struct rest *r, const char *to, const char *body,
    const char *sid)
{
	sms_calls++;
	return 0;
}

static struct worker fw;
static struct shm_worker fsw;
static struct conf fconf;
static char greeting1[] = "Greet.", greeting2[] = "Answer.";
static struct persona intake = { .id = "intake", .greeting = greeting1 };
static struct persona prospect = { .id = "sarah", .greeting = greeting2 };

static int
on_twilio(void *arg, int opcode, const uint8_t *msg, size_t len)
{
	return 0;
}

static struct call *
new_call(const struct app *app)
{
	struct call *c = calloc(1, sizeof(*c));
	char err[256];

	/* the defaults, with the one key they lack to load */
	ASSERT_EQ(setenv("TWILIO_AUTH_TOKEN", "unit-test-auth-token", 1), 0);
	ASSERT_EQ(conf_load(NULL, &fconf, err, sizeof(err)), 0);
	fconf.mark_interval_ms = 120;	/* 960 bytes a piece */
	fconf.frames_per_append = 1;
	fw.conf = &fconf;
	fw.sw = &fsw;
	c->magic = CALL_MAGIC;
	c->w = &fw;
	c->slot = -1;
	c->state = CALL_LIVE;
	c->refs = 1;
	c->persona = &intake;
	c->app = app;
	snprintf(c->stream_sid, sizeof(c->stream_sid), "MZ%032d", 1);
	relay_init(&c->relay);
	buf_init(&c->out, 1 << 22);
	ASSERT_EQ(ws_codec_init(&c->ws, WS_SERVER, 1 << 20, &c->out, on_twilio,
	    c, 1), 0);
	c->ws_ready = 1;
	ASSERT_EQ(relay_start(c), 0);
	return c;
}

/* One event from the model, as the server would send it. */
static void
model(struct call *c, struct upstream *up, const char *fmt, ...)
{
	static struct oa_msg m;
	char json[65536];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(json, sizeof(json), fmt, ap);
	va_end(ap);
	rc = oa_parse(json, strlen(json), &m);
	if (rc != OA_OK)
		TEST_FAIL_("oa_parse %s: %s", json, oa_strerror(rc));
	relay_upstream_event(c, up, &m);
}

/* Model audio: n bytes of μ-law for item `item` of response `resp`. */
static void
audio(struct call *c, const char *resp, const char *item, size_t n)
{
	static unsigned char pcm[48000];
	static char b64[65000];

	memset(pcm, 0xff, n);
	b64[b64_encode(pcm, n, b64)] = '\0';
	model(c, c->up, "{\"type\":\"response.output_audio.delta\",\"event_id\":"
	    "\"e\",\"response_id\":\"%s\",\"item_id\":\"%s\",\"output_index\":0,"
	    "\"content_index\":0,\"delta\":\"%s\"}", resp, item, b64);
}

static void
created(struct call *c, struct upstream *up, const char *resp)
{
	model(c, up, "{\"type\":\"response.created\",\"event_id\":\"e\","
	    "\"response\":{\"id\":\"%s\",\"status\":\"in_progress\"}}", resp);
}

static void
done(struct call *c, struct upstream *up, const char *resp)
{
	model(c, up, "{\"type\":\"response.done\",\"event_id\":\"e\","
	    "\"response\":{\"id\":\"%s\",\"status\":\"completed\"}}", resp);
}

static void
tool(struct call *c, const char *resp, const char *call_id, const char *name)
{
	model(c, c->up, "{\"type\":\"response.function_call_arguments.done\","
	    "\"event_id\":\"e\",\"response_id\":\"%s\",\"item_id\":\"it_%s\","
	    "\"output_index\":0,\"call_id\":\"%s\",\"name\":\"%s\","
	    "\"arguments\":\"{}\"}", resp, call_id, call_id, name);
}

/* The messages sent to Twilio since the last call, as JSON. */
static unsigned
twilio_out(struct call *c, json_t **msgs, unsigned max)
{
	const uint8_t *p = (const uint8_t *)buf_head(&c->out);
	size_t left = buf_pending(&c->out);
	unsigned n = 0;

	while (left >= 2) {
		size_t len = p[1] & 0x7f, hl = 2;
		if (len == 126) {
			len = (size_t)p[2] << 8 | p[3];
			hl = 4;
		} else if (len == 127) {
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | p[2 + i];
			hl = 10;
		}
		ASSERT(left >= hl + len);
		ASSERT_EQ(p[1] & 0x80, 0);	/* a server does not mask */
		if ((p[0] & 0x0f) == 1 && n < max)
			msgs[n++] = json_loadb((const char *)p + hl, len, 0, NULL);
		p += hl + len;
		left -= hl + len;
	}
	buf_consume(&c->out, buf_pending(&c->out));
	return n;
}

static void
free_msgs(json_t **msgs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		json_decref(msgs[i]);
}

static const char *
jstr(json_t *j, const char *a, const char *b)
{
	json_t *v = json_object_get(j, a);

	if (b != NULL)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static json_t *
sent_json(unsigned i)
{
	ASSERT(i < nsent);
	return json_loads(sent[i].json, 0, NULL);
}

static const char *
sent_type(unsigned i)
{
	static char type[64];
	json_t *j = sent_json(i);

	snprintf(type, sizeof(type), "%s", jstr(j, "type", NULL));
	json_decref(j);
	return type;
}

/* ---------------------------------------------------------------- */
/* barge-in against marks */

static const struct app plain_app = { .name = "test" };

TEST(relay_marks_follow_each_piece_of_audio)
{
	struct call *c = new_call(&plain_app);
	json_t *m[64];
	unsigned n;

	created(c, c->up, "r1");
	audio(c, "r1", "i1", 2000);	/* 250 ms: pieces of 960, 960, 80 */
	n = twilio_out(c, m, 64);
	ASSERT_EQ(n, 6);
	for (unsigned i = 0; i < n; i++)
		ASSERT_STR_EQ(jstr(m[i], "event", NULL), i % 2 ? "mark" : "media");
	ASSERT_STR_EQ(jstr(m[1], "mark", "name"), "0.1");
	ASSERT_STR_EQ(jstr(m[5], "mark", "name"), "0.3");
	ASSERT_EQ(c->relay.mcount, 3);
	free_msgs(m, n);
}

TEST(relay_barge_in_truncates_at_what_was_heard)
{
	struct call *c = new_call(&plain_app);
	json_t *m[64], *t;
	unsigned n, before;

	model(c, c->up, "{\"type\":\"session.updated\",\"event_id\":\"e\","
	    "\"session\":{\"id\":\"s\"}}");
	created(c, c->up, "r1");
	audio(c, "r1", "i1", 4800);	/* 600 ms in 5 pieces of 120 ms */
	twilio_out(c, m, 64);
	free_msgs(m, 10);
	/* Twilio played the first two pieces: 1920 bytes, 240 ms */
	relay_caller_mark(c, "0.1");
	relay_caller_mark(c, "0.2");
	ASSERT_EQ(c->relay.mcount, 3);
	before = nsent;
	model(c, c->up, "{\"type\":\"input_audio_buffer.speech_started\","
	    "\"event_id\":\"e\",\"audio_start_ms\":100,\"item_id\":\"u1\"}");
	n = twilio_out(c, m, 64);
	ASSERT_EQ(n, 1);
	ASSERT_STR_EQ(jstr(m[0], "event", NULL), "clear");
	free_msgs(m, n);
	/* one truncate, at the 240 ms heard plus the 50 ms allowance */
	ASSERT_EQ(nsent, before + 1);
	t = sent_json(before);
	ASSERT_STR_EQ(jstr(t, "type", NULL), "conversation.item.truncate");
	ASSERT_STR_EQ(jstr(t, "item_id", NULL), "i1");
	ASSERT_EQ(json_integer_value(json_object_get(t, "audio_end_ms")), 290);
	json_decref(t);
	/* the rest of the cancelled response is not played */
	audio(c, "r1", "i1", 960);
	ASSERT_EQ(twilio_out(c, m, 64), 0);
	ASSERT_EQ(c->relay.dropped_deltas, 1);
	/* the echoes of the cleared marks mean "flushed": ignored */
	relay_caller_mark(c, "0.3");
	ASSERT_EQ(c->relay.mcount, 0);
	ASSERT_EQ(c->relay.gen, 1);
}

TEST(relay_barge_in_never_truncates_past_what_was_sent)
{
	struct call *c = new_call(&plain_app);
	json_t *m[64], *t;
	unsigned before;

	created(c, c->up, "r1");
	audio(c, "r1", "i1", 1000);	/* 125 ms: pieces of 960 and 40 */
	twilio_out(c, m, 64);
	free_msgs(m, 4);
	relay_caller_mark(c, "0.1");	/* 120 ms heard; 50 more would pass 125 */
	before = nsent;
	model(c, c->up, "{\"type\":\"input_audio_buffer.speech_started\","
	    "\"event_id\":\"e\",\"audio_start_ms\":100,\"item_id\":\"u1\"}");
	ASSERT_EQ(nsent, before + 1);
	t = sent_json(before);
	ASSERT_EQ(json_integer_value(json_object_get(t, "audio_end_ms")), 125);
	json_decref(t);
}

TEST(relay_speech_with_nothing_playing_does_nothing)
{
	struct call *c = new_call(&plain_app);
	json_t *m[8];
	unsigned before = nsent;

	model(c, c->up, "{\"type\":\"input_audio_buffer.speech_started\","
	    "\"event_id\":\"e\",\"audio_start_ms\":100,\"item_id\":\"u1\"}");
	ASSERT_EQ(twilio_out(c, m, 8), 0);
	ASSERT_EQ(nsent, before);
	ASSERT_EQ(c->relay.gen, 0);
}

/* ---------------------------------------------------------------- */
/* tool results wait for the end of the response that called them */

TEST(relay_tool_results_follow_response_done_in_order)
{
	struct call *c = new_call(&plain_app);
	unsigned before;

	created(c, c->up, "r1");
	before = nsent;
	tool(c, "r1", "call_a", "get_remaining_time");
	tool(c, "r1", "call_b", "no_such_tool");
	ASSERT_EQ(nsent, before);	/* nothing while r1 is active */
	done(c, c->up, "r1");
	ASSERT_EQ(nsent, before + 3);
	json_t *a = sent_json(before), *b = sent_json(before + 1);
	ASSERT_STR_EQ(jstr(a, "type", NULL), "conversation.item.create");
	ASSERT_STR_EQ(jstr(a, "item", "call_id"), "call_a");
	ASSERT_STR_EQ(jstr(b, "item", "call_id"), "call_b");
	ASSERT(strstr(jstr(b, "item", "output"), "not available") != NULL);
	/* no limit on this call: the tool says so */
	ASSERT(strstr(jstr(a, "item", "output"), "\"unlimited\":true") != NULL);
	json_decref(a);
	json_decref(b);
	/* then one response.create, after every output */
	ASSERT_STR_EQ(sent_type(before + 2), "response.create");
}

TEST(relay_end_call_hangs_up_once_heard_and_does_not_go_on)
{
	struct call *c = new_call(&plain_app);
	json_t *m[16];
	unsigned before;

	created(c, c->up, "r1");
	tool(c, "r1", "call_a", "end_call");
	audio(c, "r1", "i1", 960);
	twilio_out(c, m, 16);
	free_msgs(m, 2);
	before = nsent;
	done(c, c->up, "r1");
	ASSERT_EQ(nsent, before + 1);	/* the output, no response.create */
	ASSERT_STR_EQ(sent_type(before), "conversation.item.create");
	ASSERT_EQ(c->state, CALL_LIVE);	/* the goodbye is still playing */
	relay_caller_mark(c, "0.1");
	ASSERT_EQ(c->state, CALL_CLOSING);
	ASSERT_STR_EQ(closed_reason, "the persona ended the call");
}

/* ---------------------------------------------------------------- */
/* the persona swap */

TEST(relay_swap_waits_for_the_hand_over_to_be_heard)
{
	struct call *c = new_call(&plain_app);
	struct upstream *old = c->up, *next;
	json_t *m[16];
	unsigned i, before;

	created(c, old, "r1");
	ASSERT_EQ(relay_switch_persona(c, &prospect, "The caller chose X.", NULL), 0);
	ASSERT_EQ(relay_switch_persona(c, &prospect, NULL, NULL), -1);
	next = c->relay.ctl.next;
	ASSERT_NOT_NULL(next);
	ASSERT(next->persona == &prospect);
	tool(c, "r1", "call_a", "get_remaining_time");
	done(c, old, "r1");	/* the result goes out; the model goes on */
	created(c, old, "r2");	/* ... with the hand-over sentence */
	audio(c, "r2", "i2", 960);
	twilio_out(c, m, 16);
	free_msgs(m, 2);
	relay_upstream_open(c, next);
	ASSERT(c->up == old);	/* not before the hand-over is done */
	done(c, old, "r2");
	ASSERT(c->up == old);	/* nor before the caller heard it */
	before = nsent;
	relay_caller_mark(c, "0.1");
	ASSERT(c->up == next);
	ASSERT(c->persona == &prospect);
	ASSERT_EQ(old->state, UP_CLOSED);
	/* the new session is told why, then speaks first with its greeting */
	ASSERT_EQ(nsent, before + 2);
	ASSERT(sent[before].up == next && sent[before + 1].up == next);
	json_t *intro = sent_json(before), *greet = sent_json(before + 1);
	ASSERT_STR_EQ(jstr(intro, "type", NULL), "conversation.item.create");
	ASSERT(strstr(sent[before].json, "The caller chose X.") != NULL);
	ASSERT_STR_EQ(jstr(greet, "type", NULL), "response.create");
	ASSERT_STR_EQ(jstr(greet, "response", "instructions"), "Answer.");
	json_decref(intro);
	json_decref(greet);
	/* marks of the old session mean nothing now */
	ASSERT_EQ(c->relay.mcount, 0);
	for (i = 0; i < nsent; i++)
		ASSERT(sent[i].up != next || i >= before);
	ASSERT(relay_switching(c));
	ASSERT_EQ(relay_switch_persona(c, &intake, NULL, NULL), -1);
}

TEST(relay_swap_asks_for_the_hand_over_when_quiet)
{
	struct call *c = new_call(&plain_app);
	struct upstream *old = c->up;
	unsigned before = nsent;

	ASSERT_EQ(relay_switch_persona(c, &prospect, NULL, "Say goodbye."), 0);
	ASSERT_EQ(nsent, before + 1);
	json_t *q = sent_json(before);
	ASSERT_STR_EQ(jstr(q, "type", NULL), "response.create");
	ASSERT_STR_EQ(jstr(q, "response", "instructions"), "Say goodbye.");
	json_decref(q);
	relay_upstream_open(c, c->relay.ctl.next);
	created(c, old, "r9");
	ASSERT(c->up == old);
	done(c, old, "r9");	/* no audio: nothing left to hear */
	ASSERT(c->up != old);
}

TEST(relay_time_limit_cancels_a_switch_and_wraps_up)
{
	struct call *c = new_call(&plain_app);
	struct upstream *next;
	unsigned before;
	json_t *q;

	relay_set_limit(c, mono_ms() + 1000, "Say goodbye now.", 5, 0.5);
	ASSERT_EQ(relay_switch_persona(c, &prospect, NULL, NULL), 0);
	next = c->relay.ctl.next;
	created(c, c->up, "r1");
	relay_tick(c, mono_ms() + 2000);
	ASSERT(relay_limit_reached(c));
	ASSERT_EQ(next->state, UP_CLOSED);	/* no new persona now */
	ASSERT(!relay_switching(c));
	before = nsent;
	done(c, c->up, "r1");	/* then the goodbye, without tools */
	ASSERT_EQ(nsent, before + 1);
	q = sent_json(before);
	ASSERT_STR_EQ(jstr(q, "response", "instructions"), "Say goodbye now.");
	ASSERT_STR_EQ(jstr(q, "response", "tool_choice"), "none");
	json_decref(q);
	created(c, c->up, "r2");
	done(c, c->up, "r2");
	ASSERT_EQ(c->state, CALL_CLOSING);
	ASSERT_STR_EQ(closed_reason, "time limit reached");
}
