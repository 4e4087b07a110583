/*
 * test_relay.c — the relay (worker/relay.c) between two fake legs.
 *
 * The caller's leg is a fake leg object (leg.h) that records what the
 * relay asks of it: audio pieces, marks, clears.  The OpenAI leg is a fake
 * upstream that records every event the relay sends.  The functions of
 * call.c, leg_openai.c and rest.c that relay.c calls are defined here
 * instead, so what is tested is relay.c alone: barge-in arithmetic against
 * marks, the persona-swap state machine, and the order of tool results
 * around a response.
 */
#include "test/unit/test.h"
#include "worker/app.h"
#include "worker/call.h"
#include "worker/leg.h"
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
/* the app's hook alone: the line's policy is app.c's */
int app_greeting(struct call *c)
{
	return c->app->greeting != NULL ? c->app->greeting(c) : 0;
}
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

/* What the relay asked of the caller's leg, in order. */
#define MAX_LEG 512

static struct leg_out {
	char		 kind;		/* 'a' audio, 'm' mark, 'c' clear */
	char		 name[32];	/* a mark's */
	size_t		 len;		/* audio: base64 characters */
} legout[MAX_LEG];
static unsigned nlegout;
static int leg_refuse_audio;	/* the leg's audio fails (call closing) */

static struct leg_out *
leg_record(char kind)
{
	ASSERT(nlegout < MAX_LEG);
	legout[nlegout].kind = kind;
	legout[nlegout].name[0] = '\0';
	legout[nlegout].len = 0;
	return &legout[nlegout++];
}

static int
fake_audio(struct call *c, const char *b64, size_t len)
{
	if (leg_refuse_audio)
		return -1;
	leg_record('a')->len = len;
	return 0;
}

static int
fake_mark(struct call *c, const char *name)
{
	snprintf(leg_record('m')->name, sizeof(legout[0].name), "%s", name);
	return 0;
}

static void
fake_clear(struct call *c)
{
	leg_record('c');
}

static const struct leg_ops fake_leg = {
	.title = "fake",
	.name = "fake",
	.audio = fake_audio,
	.mark = fake_mark,
	.clear = fake_clear,
	.up_open = relay_upstream_open,
	.up_event = relay_upstream_event,
};

static struct worker fw;
static struct shm_worker fsw;
static struct conf fconf;
static char greeting1[] = "Greet.", greeting2[] = "Answer.";
static struct persona intake = { .id = "intake", .greeting = greeting1 };
static struct persona prospect = { .id = "sarah", .greeting = greeting2 };

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
	c->leg = &fake_leg;
	relay_init(&c->relay);
	nlegout = 0;
	leg_refuse_audio = 0;
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

/* What the relay asked of the leg since the last call: the kinds, in
 * order, as a string ("amam c"...), and the entries in *out. */
static const char *
leg_out(struct leg_out **out)
{
	static char kinds[MAX_LEG + 1];

	for (unsigned i = 0; i < nlegout; i++)
		kinds[i] = legout[i].kind;
	kinds[nlegout] = '\0';
	if (out != NULL)
		*out = legout;
	nlegout = 0;
	return kinds;
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
	struct leg_out *o;

	created(c, c->up, "r1");
	audio(c, "r1", "i1", 2000);	/* 250 ms: pieces of 960, 960, 80 */
	ASSERT_STR_EQ(leg_out(&o), "amamam");
	/* 960 bytes are 1280 base64 characters; the last piece's 80, 108
	 * with its padding */
	ASSERT_EQ(o[0].len, 1280);
	ASSERT_EQ(o[4].len, 108);
	ASSERT_STR_EQ(o[1].name, "0.1");
	ASSERT_STR_EQ(o[5].name, "0.3");
	ASSERT_EQ(c->relay.mcount, 3);
}

TEST(relay_barge_in_truncates_at_what_was_heard)
{
	struct call *c = new_call(&plain_app);
	json_t *t;
	unsigned before;

	model(c, c->up, "{\"type\":\"session.updated\",\"event_id\":\"e\","
	    "\"session\":{\"id\":\"s\"}}");
	created(c, c->up, "r1");
	audio(c, "r1", "i1", 4800);	/* 600 ms in 5 pieces of 120 ms */
	ASSERT_STR_EQ(leg_out(NULL), "amamamamam");
	/* Twilio played the first two pieces: 1920 bytes, 240 ms */
	relay_caller_mark(c, "0.1");
	relay_caller_mark(c, "0.2");
	ASSERT_EQ(c->relay.mcount, 3);
	before = nsent;
	model(c, c->up, "{\"type\":\"input_audio_buffer.speech_started\","
	    "\"event_id\":\"e\",\"audio_start_ms\":100,\"item_id\":\"u1\"}");
	ASSERT_STR_EQ(leg_out(NULL), "c");
	/* one truncate, at the 240 ms heard plus the 50 ms allowance */
	ASSERT_EQ(nsent, before + 1);
	t = sent_json(before);
	ASSERT_STR_EQ(jstr(t, "type", NULL), "conversation.item.truncate");
	ASSERT_STR_EQ(jstr(t, "item_id", NULL), "i1");
	ASSERT_EQ(json_integer_value(json_object_get(t, "audio_end_ms")), 290);
	json_decref(t);
	/* the rest of the cancelled response is not played */
	audio(c, "r1", "i1", 960);
	ASSERT_STR_EQ(leg_out(NULL), "");
	ASSERT_EQ(c->relay.dropped_deltas, 1);
	/* the echoes of the cleared marks mean "flushed": ignored */
	relay_caller_mark(c, "0.3");
	ASSERT_EQ(c->relay.mcount, 0);
	ASSERT_EQ(c->relay.gen, 1);
}

TEST(relay_barge_in_never_truncates_past_what_was_sent)
{
	struct call *c = new_call(&plain_app);
	json_t *t;
	unsigned before;

	created(c, c->up, "r1");
	audio(c, "r1", "i1", 1000);	/* 125 ms: pieces of 960 and 40 */
	ASSERT_STR_EQ(leg_out(NULL), "amam");
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
	unsigned before = nsent;

	model(c, c->up, "{\"type\":\"input_audio_buffer.speech_started\","
	    "\"event_id\":\"e\",\"audio_start_ms\":100,\"item_id\":\"u1\"}");
	ASSERT_STR_EQ(leg_out(NULL), "");
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
	unsigned before;

	created(c, c->up, "r1");
	tool(c, "r1", "call_a", "end_call");
	audio(c, "r1", "i1", 960);
	ASSERT_STR_EQ(leg_out(NULL), "am");
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
	ASSERT_STR_EQ(leg_out(NULL), "am");
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

/* ---------------------------------------------------------------- */
/* more barge-in arithmetic: several items, stale and foreign echoes */

static void
speech(struct call *c)
{
	model(c, c->up, "{\"type\":\"input_audio_buffer.speech_started\","
	    "\"event_id\":\"e\",\"audio_start_ms\":100,\"item_id\":\"u1\"}");
}

static void
audio_done(struct call *c, const char *resp, const char *item)
{
	model(c, c->up, "{\"type\":\"response.output_audio.done\",\"event_id\":"
	    "\"e\",\"response_id\":\"%s\",\"item_id\":\"%s\",\"output_index\":0,"
	    "\"content_index\":0}", resp, item);
}

/* The truncate sent for item `item` at index i of what went upstream:
 * its audio_end_ms. */
static long long
truncated_at(unsigned i, const char *item)
{
	json_t *t = sent_json(i);
	long long ms;

	ASSERT_STR_EQ(jstr(t, "type", NULL), "conversation.item.truncate");
	ASSERT_STR_EQ(jstr(t, "item_id", NULL), item);
	ms = json_integer_value(json_object_get(t, "audio_end_ms"));
	json_decref(t);
	return ms;
}

TEST(relay_barge_in_gives_the_allowance_to_the_first_item_only)
{
	struct call *c = new_call(&plain_app);
	unsigned before;

	created(c, c->up, "r1");
	audio(c, "r1", "i1", 1920);	/* 240 ms: marks 0.1, 0.2 */
	audio(c, "r1", "i2", 960);	/* 120 ms: mark 0.3 */
	ASSERT_STR_EQ(leg_out(NULL), "amamam");
	relay_caller_mark(c, "0.1");	/* 120 ms of i1 heard */
	before = nsent;
	speech(c);
	ASSERT_STR_EQ(leg_out(NULL), "c");
	/* i1 at 120 + 50 ms; i2, not heard at all, at 0: the allowance is
	 * for the audio playing when the caller spoke, not the next item */
	ASSERT_EQ(nsent, before + 2);
	ASSERT_EQ(truncated_at(before, "i1"), 170);
	ASSERT_EQ(truncated_at(before + 1, "i2"), 0);
	ASSERT_EQ(c->relay.bargeins, 1);
}

TEST(relay_barge_in_skips_an_item_played_to_its_end)
{
	struct call *c = new_call(&plain_app);
	unsigned before;

	created(c, c->up, "r1");
	audio(c, "r1", "i1", 960);	/* mark 0.1 */
	audio_done(c, "r1", "i1");	/* its last mark, 0.2 */
	audio(c, "r1", "i2", 1920);	/* marks 0.3, 0.4 */
	ASSERT_STR_EQ(leg_out(NULL), "ammamam");
	/* the echo of 0.2 covers 0.1 too: i1 was heard to its end */
	relay_caller_mark(c, "0.2");
	ASSERT_EQ(c->relay.mcount, 2);
	before = nsent;
	speech(c);
	/* only i2, which now plays first: nothing of it heard yet, so the
	 * allowance alone, 50 ms */
	ASSERT_EQ(nsent, before + 1);
	ASSERT_EQ(truncated_at(before, "i2"), 50);
}

TEST(relay_barge_in_truncates_nothing_when_all_was_heard)
{
	struct call *c = new_call(&plain_app);
	unsigned before;

	created(c, c->up, "r1");
	audio(c, "r1", "i1", 960);
	audio(c, "r1", "i1", 960);	/* one item, two deltas: 0.1, 0.2 */
	done(c, c->up, "r1");
	ASSERT_STR_EQ(leg_out(NULL), "amam");
	relay_caller_mark(c, "0.1");
	relay_caller_mark(c, "0.2");	/* every byte sent was heard */
	ASSERT_EQ(c->relay.mcount, 0);
	created(c, c->up, "r2");	/* the next answer, no audio yet */
	before = nsent;
	speech(c);
	/* nothing queued at Twilio: no clear, and what was heard is not
	 * truncated; but r2 is stopped: its audio is dropped */
	ASSERT_STR_EQ(leg_out(NULL), "");
	ASSERT_EQ(nsent, before);
	audio(c, "r2", "i2", 960);
	ASSERT_STR_EQ(leg_out(NULL), "");
	ASSERT_EQ(c->relay.dropped_deltas, 1);
	/* the next response plays */
	done(c, c->up, "r2");
	created(c, c->up, "r3");
	audio(c, "r3", "i3", 960);
	ASSERT_STR_EQ(leg_out(NULL), "am");
}

TEST(relay_mark_echoes_of_old_generations_and_strangers_are_ignored)
{
	struct call *c = new_call(&plain_app);
	struct leg_out *o;
	const char *junk[] = { "", "1", "1.", ".1", "1.2.3", "1.x", "x.1",
	    "-1.1", "1.-1", "99999999999.1", "1.4294967296", "1 .1" };

	created(c, c->up, "r1");
	audio(c, "r1", "i1", 1920);	/* 0.1, 0.2 */
	leg_out(NULL);
	speech(c);			/* generation 1 from here */
	ASSERT_STR_EQ(leg_out(NULL), "c");
	ASSERT_EQ(c->relay.gen, 1);
	done(c, c->up, "r1");
	created(c, c->up, "r2");
	audio(c, "r2", "i2", 1920);
	ASSERT_STR_EQ(leg_out(&o), "amam");
	/* the sequence goes on across generations */
	ASSERT_STR_EQ(o[1].name, "1.3");
	ASSERT_STR_EQ(o[3].name, "1.4");
	/* Twilio's echoes of the cleared marks: flushed, not played */
	relay_caller_mark(c, "0.1");
	relay_caller_mark(c, "0.2");
	relay_caller_mark(c, "0.4");
	ASSERT_EQ(c->relay.mcount, 2);
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		relay_caller_mark(c, junk[i]);
		ASSERT_EQ(c->relay.mcount, 2);
	}
	/* an echo of a mark already handled changes nothing */
	relay_caller_mark(c, "1.3");
	ASSERT_EQ(c->relay.mcount, 1);
	relay_caller_mark(c, "1.3");
	ASSERT_EQ(c->relay.mcount, 1);
	/* and what the caller heard is what a barge-in truncates at */
	unsigned before = nsent;
	speech(c);
	ASSERT_EQ(truncated_at(before, "i2"), 170);
}

TEST(relay_barge_in_cancels_when_the_session_does_not)
{
	struct call *c = new_call(&plain_app);
	unsigned before;

	/* turn detection that does not interrupt: the relay cancels */
	model(c, c->up, "{\"type\":\"session.updated\",\"event_id\":\"e\","
	    "\"session\":{\"id\":\"s\",\"turn_detection\":{\"type\":"
	    "\"server_vad\",\"interrupt_response\":false}}}");
	ASSERT_EQ(c->relay.interrupt_response, 0);
	created(c, c->up, "r1");
	audio(c, "r1", "i1", 960);
	leg_out(NULL);
	before = nsent;
	speech(c);
	ASSERT_EQ(nsent, before + 2);
	ASSERT_STR_EQ(leg_out(NULL), "c");
	ASSERT_EQ(truncated_at(before, "i1"), 50);
	ASSERT_STR_EQ(sent_type(before + 1), "response.cancel");
	/* once the response is done, speech finds nothing to stop */
	done(c, c->up, "r1");
	before = nsent;
	speech(c);
	ASSERT_EQ(nsent, before);
	ASSERT_STR_EQ(leg_out(NULL), "");
}

TEST(relay_audio_stops_when_the_leg_refuses_it)
{
	struct call *c = new_call(&plain_app);

	created(c, c->up, "r1");
	leg_refuse_audio = 1;		/* the leg's call is closing */
	audio(c, "r1", "i1", 2000);
	/* no mark for audio that was not sent, and nothing counted sent */
	ASSERT_STR_EQ(leg_out(NULL), "");
	ASSERT_EQ(c->relay.mcount, 0);
	ASSERT_EQ(c->frames_out, 0);
}

/* ---------------------------------------------------------------- */
/* more of the persona swap */

TEST(relay_swap_ignores_the_next_session_until_it_takes_over)
{
	struct call *c = new_call(&plain_app);
	struct upstream *old = c->up, *next;

	ASSERT_EQ(relay_switch_persona(c, &prospect, NULL, NULL), 0);
	next = c->relay.ctl.next;
	/* the next session speaking early reaches neither the caller nor
	 * the state of the call */
	model(c, next, "{\"type\":\"response.created\",\"event_id\":\"e\","
	    "\"response\":{\"id\":\"rn\",\"status\":\"in_progress\"}}");
	model(c, next, "{\"type\":\"response.output_audio.delta\",\"event_id\":"
	    "\"e\",\"response_id\":\"rn\",\"item_id\":\"in\",\"output_index\":0,"
	    "\"content_index\":0,\"delta\":\"/////w==\"}");
	ASSERT_STR_EQ(leg_out(NULL), "");
	ASSERT(!relay_model_busy(c));
	/* the open next session waits for the hand-over the tool result
	 * asks for: a response of the old session, heard */
	relay_upstream_open(c, next);
	ASSERT(c->up == old);
	created(c, old, "r1");
	audio(c, "r1", "i1", 960);
	done(c, old, "r1");
	ASSERT(c->up == old);
	relay_caller_mark(c, "0.1");
	ASSERT(c->up == next);
	ASSERT(c->persona == &prospect);
}

TEST(relay_swap_fails_the_call_when_the_next_session_does_not_open)
{
	struct call *c = new_call(&plain_app);
	struct upstream *next;

	ASSERT_EQ(relay_switch_persona(c, &prospect, NULL, NULL), 0);
	next = c->relay.ctl.next;
	relay_upstream_failed(c, next, "refused");
	ASSERT_EQ(c->state, CALL_CLOSING);
	ASSERT(strstr(closed_reason, "persona sarah did not open") != NULL);
	ASSERT(strstr(closed_reason, "refused") != NULL);
}

TEST(relay_swap_goes_ahead_at_its_deadline_if_never_quiet)
{
	struct call *c = new_call(&plain_app);
	struct upstream *old = c->up, *next;

	ASSERT_EQ(relay_switch_persona(c, &prospect, NULL, "Hand over."), 0);
	next = c->relay.ctl.next;
	relay_upstream_open(c, next);
	created(c, old, "r1");		/* the hand-over, never done */
	audio(c, "r1", "i1", 960);
	relay_tick(c, mono_ms());
	ASSERT(c->up == old);
	/* SWAP_GRACE_MS passed (the deadline is the relay's own) */
	c->relay.ctl.swap_deadline_ms = mono_ms() - 1;
	relay_tick(c, mono_ms());
	ASSERT(c->up == next);
	ASSERT_EQ(old->state, UP_CLOSED);
	ASSERT_EQ(c->relay.mcount, 0);	/* the old audio's marks forgotten */
	ASSERT(!relay_model_busy(c));
}

/* ---------------------------------------------------------------- */
/* tool results across responses */

TEST(relay_tool_results_wait_for_their_own_response)
{
	struct call *c = new_call(&plain_app);
	unsigned before;
	json_t *j;

	created(c, c->up, "r1");
	tool(c, "r1", "call_a", "get_remaining_time");
	before = nsent;
	done(c, c->up, "r1");
	ASSERT_EQ(nsent, before + 2);	/* call_a's output, then go on */
	ASSERT_STR_EQ(sent_type(before + 1), "response.create");
	/* the response that follows calls another tool: its result waits
	 * for that response's end, not the one before */
	created(c, c->up, "r2");
	tool(c, "r2", "call_b", "no_such_tool");
	ASSERT_EQ(nsent, before + 2);
	done(c, c->up, "r2");
	ASSERT_EQ(nsent, before + 4);
	j = sent_json(before + 2);
	ASSERT_STR_EQ(jstr(j, "item", "call_id"), "call_b");
	json_decref(j);
	ASSERT_STR_EQ(sent_type(before + 3), "response.create");
	/* a response without tools is followed by nothing */
	created(c, c->up, "r3");
	done(c, c->up, "r3");
	ASSERT_EQ(nsent, before + 4);
}

/* An app whose tool "quiet" answers without asking the model to go on,
 * and "loud" answers and asks it to. */
static int
quiet_loud_tool(struct call *c, const struct app_tool *t)
{
	relay_tool_result(c, t->call_id, "{\"ok\":true}",
	    strcmp(t->name, "loud") == 0);
	return 1;
}

static const struct app quiet_loud_app = { .name = "quiet-loud",
    .tool_call = quiet_loud_tool };

TEST(relay_tool_results_past_the_queue_still_go_on)
{
	struct call *c = new_call(&quiet_loud_app);
	char id[32];
	unsigned before;

	created(c, c->up, "r1");
	/* RELAY_RESULTS answers that do not go on, then one past the queue
	 * that does: its output is lost, not its request to go on */
	for (int i = 0; i <= RELAY_RESULTS; i++) {
		snprintf(id, sizeof(id), "call_%d", i);
		tool(c, "r1", id, i < RELAY_RESULTS ? "quiet" : "loud");
	}
	before = nsent;
	done(c, c->up, "r1");
	/* the first RELAY_RESULTS, in the order called, then the go-on */
	ASSERT_EQ(nsent, before + RELAY_RESULTS + 1);
	for (int i = 0; i < RELAY_RESULTS; i++) {
		json_t *j = sent_json(before + (unsigned)i);
		snprintf(id, sizeof(id), "call_%d", i);
		ASSERT_STR_EQ(jstr(j, "item", "call_id"), id);
		json_decref(j);
	}
	ASSERT_STR_EQ(sent_type(before + RELAY_RESULTS), "response.create");
	ASSERT_EQ(c->relay.ctl.nresults, 0);
	/* quiet answers alone do not go on */
	created(c, c->up, "r2");
	tool(c, "r2", "call_q", "quiet");
	before = nsent;
	done(c, c->up, "r2");
	ASSERT_EQ(nsent, before + 1);
	ASSERT_STR_EQ(sent_type(before), "conversation.item.create");
}

TEST(relay_tool_results_then_the_wrap_up_not_a_plain_go_on)
{
	struct call *c = new_call(&plain_app);
	unsigned before;
	json_t *q;

	relay_set_limit(c, mono_ms() + 1000, "Say goodbye now.", 5, 0.5);
	created(c, c->up, "r1");
	tool(c, "r1", "call_a", "get_remaining_time");
	relay_tick(c, mono_ms() + 2000);	/* the limit, mid-response */
	ASSERT(relay_limit_reached(c));
	before = nsent;
	done(c, c->up, "r1");
	/* the tool's output, then the goodbye without tools, and no
	 * response.create that would let the model call more */
	ASSERT_EQ(nsent, before + 2);
	ASSERT_STR_EQ(sent_type(before), "conversation.item.create");
	q = sent_json(before + 1);
	ASSERT_STR_EQ(jstr(q, "type", NULL), "response.create");
	ASSERT_STR_EQ(jstr(q, "response", "instructions"), "Say goodbye now.");
	ASSERT_STR_EQ(jstr(q, "response", "tool_choice"), "none");
	json_decref(q);
}

TEST(relay_tool_results_with_end_call_do_not_go_on)
{
	struct call *c = new_call(&plain_app);
	unsigned before;

	created(c, c->up, "r1");
	tool(c, "r1", "call_a", "get_remaining_time");	/* would go on */
	tool(c, "r1", "call_b", "end_call");
	before = nsent;
	done(c, c->up, "r1");
	/* both outputs, in order; the call is ending: no response.create */
	ASSERT_EQ(nsent, before + 2);
	json_t *a = sent_json(before), *b = sent_json(before + 1);
	ASSERT_STR_EQ(jstr(a, "item", "call_id"), "call_a");
	ASSERT_STR_EQ(jstr(b, "item", "call_id"), "call_b");
	json_decref(a);
	json_decref(b);
	/* nothing was playing: the call ends at once */
	ASSERT_EQ(c->state, CALL_CLOSING);
	ASSERT_STR_EQ(closed_reason, "the persona ended the call");
}

/* ---------------------------------------------------------------- */
/* the greeting held for the callee: the app says how long */

static int greet_wait_ms;

static int
held_greeting(struct call *c)
{
	(void)c;
	return greet_wait_ms;
}

static const struct app holding_app = { .name = "hold",
    .greeting = held_greeting };

static unsigned
creates_since(unsigned from)
{
	unsigned n = 0;

	for (unsigned i = from; i < nsent; i++)
		if (strcmp(sent_type(i), "response.create") == 0)
			n++;
	return n;
}

TEST(relay_greeting_waits_as_long_as_the_app_says)
{
	struct call *c = new_call(&holding_app);
	unsigned before = nsent;

	/* no wait: greeted as the session opens */
	greet_wait_ms = 0;
	relay_upstream_open(c, c->up);
	ASSERT_EQ(creates_since(before), 1);
	/* held: the callee speaks first, and nobody is greeted after */
	c = new_call(&holding_app);
	greet_wait_ms = 5000;
	before = nsent;
	relay_upstream_open(c, c->up);
	ASSERT_EQ(creates_since(before), 0);
	ASSERT(c->greet_at_ms != 0);
	relay_tick(c, mono_ms() + 1000);
	ASSERT_EQ(creates_since(before), 0);
	speech(c);
	ASSERT_EQ(c->greet_at_ms, 0);
	relay_tick(c, mono_ms() + 6000);
	ASSERT_EQ(creates_since(before), 0);
	/* held: the time runs out */
	c = new_call(&holding_app);
	before = nsent;
	relay_upstream_open(c, c->up);
	relay_tick(c, mono_ms() + 6000);
	ASSERT_EQ(creates_since(before), 1);
	/* held: a human verdict greets at once, once */
	c = new_call(&holding_app);
	before = nsent;
	relay_upstream_open(c, c->up);
	relay_amd(c, "human");
	ASSERT_EQ(creates_since(before), 1);
	relay_tick(c, mono_ms() + 6000);
	ASSERT_EQ(creates_since(before), 1);
}
