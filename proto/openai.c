/*
 * openai.c — see openai.h.
 *
 * Builders.  session.update and the small events go through jansson: the
 * tree is built, dumped compact into a temporary string and appended with
 * one buf_append(), which either takes all of it or nothing, so a failure
 * leaves out unchanged.  A caller's string that is not valid UTF-8 makes
 * json_string() fail, and with it the builder (-1): nothing invalid ever
 * reaches the wire.  input_audio_buffer.append is the exception, written
 * with memcpy into space taken with buf_reserve() and published with
 * buf_commit() at the end; it runs once per 20 ms frame per call.
 *
 * Builder rules beyond openai.h (each broken one gives -1, like a full
 * buffer):
 *  - instructions is required; so are the ids and texts of the small
 *    events (item_id and call_id must not be empty either);
 *  - vad.type must be "", "none", "server_vad" or "semantic_vad" (else -1);
 *    only the fields meant for that type are sent; idle_timeout_ms only in
 *    GA and only for server_vad;
 *  - a tool_choice other than auto/none/required is a function name and is
 *    sent as {"type":"function","name":...}, the shape both dialects take;
 *  - tools_json must parse as an array of objects (else -1);
 *  - noise_reduction NULL and transcription_model NULL leave the field out
 *    (off is the server's default at session start);
 *  - oa_build_append() checks that the payload is base64 (it can then hold
 *    no quote or backslash and needs no escaping); oa_build_append_parsed()
 *    leaves that to the parser the payload came through;
 *  - oa_build_append_silence() takes 0..OA_SILENCE_MAX_MS milliseconds.
 *
 * Parser.  jansson builds the tree (duplicate keys rejected, no NUL inside
 * strings); whatever we keep is copied into struct oa_msg before the tree is
 * dropped.  Two fields do not fit fixed arrays: the text (in text_buf) and
 * the audio delta.  The delta is located in the caller's buffer with
 * memmem(): a validated base64 string holds no quote or backslash, so if its
 * exact bytes occur anywhere in the raw message they are the delta's bytes.
 * When the sender escaped it ("\/"), it is not found and is copied into
 * audio_buf.  text_buf and audio_buf grow and are kept across parses.
 *
 * Lifetimes: m->audio is valid while the caller's buffer is (when it
 * points there) and until the next oa_parse()/oa_msg_free() (when it points
 * into audio_buf); m->text until the next oa_parse()/oa_msg_free().  Copy
 * either before reusing the message.  Numbers that are absent read 0
 * (output_index and content_index included: check the event type);
 * interrupt_response reads -1.  For output_item and item events of a
 * function_call, text holds item.arguments.
 *
 * Field rules: a field we read that is present with the wrong JSON type is
 * OA_ERR_FIELD; null counts as absent for strings and objects (OpenAI sends
 * "previous_item_id": null and "status_details": null); counters must be
 * integers from 0 up (int fields up to INT_MAX); a string longer than its
 * array is OA_ERR_TOOBIG.  The payload object of an event (session,
 * response, item, error) and the audio delta are required.  An unknown
 * type fills only ev and type and is not checked further.
 */
#include "proto/openai.h"
#include "proto/jscan.h"
#include "proto/twilio.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define OA_DUMP_FLAGS		(JSON_COMPACT | JSON_REAL_PRECISION(10))
#define OA_SILENCE_MAX_MS	10000

/* Builders ------------------------------------------------------------ */

/* Dump root (consumed, may be NULL) compact and append it: all or nothing. */
static int
emit(struct buf *out, json_t *root, int fail)
{
	char *s;
	int rc;

	if (root == NULL)
		return -1;
	if (fail) {
		json_decref(root);
		return -1;
	}
	s = json_dumps(root, OA_DUMP_FLAGS);
	json_decref(root);
	if (s == NULL)
		return -1;
	rc = buf_append(out, s, strlen(s));
	free(s);
	return rc;
}

/* json_object_set_new() that also accepts a NULL value (then fails);
 * the value is consumed either way.  Returns nonzero on failure. */
static int
put(json_t *obj, const char *key, json_t *v)
{
	return json_object_set_new(obj, key, v) != 0;
}

/* A fixed char array that must hold a NUL-terminated string. */
static int
arr_str_ok(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static json_t *
pcmu_format(enum oa_dialect d)
{
	if (d == OA_BETA)
		return json_string("g711_ulaw");
	return json_pack("{s:s}", "type", "audio/pcmu");
}

/*
 * The turn_detection value: NULL with *omit set when it is left out, a JSON
 * null for "none", an object otherwise; NULL without *omit on error.
 */
static json_t *
vad_json(const struct oa_vad *v, enum oa_dialect d, int *omit)
{
	json_t *o;
	int server, fail = 0;

	*omit = 0;
	if (!arr_str_ok(v->type, sizeof(v->type)) ||
	    !arr_str_ok(v->eagerness, sizeof(v->eagerness)))
		return NULL;
	if (v->type[0] == '\0') {
		*omit = 1;
		return NULL;
	}
	if (strcmp(v->type, "none") == 0)
		return json_null();
	if (strcmp(v->type, "server_vad") == 0)
		server = 1;
	else if (strcmp(v->type, "semantic_vad") == 0)
		server = 0;
	else
		return NULL;

	if ((o = json_object()) == NULL)
		return NULL;
	fail |= put(o, "type", json_string(v->type));
	if (server) {
		if (v->threshold >= 0)
			fail |= put(o, "threshold", json_real(v->threshold));
		if (v->prefix_padding_ms >= 0)
			fail |= put(o, "prefix_padding_ms",
			    json_integer(v->prefix_padding_ms));
		if (v->silence_duration_ms >= 0)
			fail |= put(o, "silence_duration_ms",
			    json_integer(v->silence_duration_ms));
	} else if (v->eagerness[0] != '\0')
		fail |= put(o, "eagerness", json_string(v->eagerness));
	if (v->create_response >= 0)
		fail |= put(o, "create_response",
		    json_boolean(v->create_response));
	if (v->interrupt_response >= 0)
		fail |= put(o, "interrupt_response",
		    json_boolean(v->interrupt_response));
	if (server && d == OA_GA && v->idle_timeout_ms >= 0)
		fail |= put(o, "idle_timeout_ms",
		    json_integer(v->idle_timeout_ms));
	if (fail) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
transcription_json(const struct oa_session_cfg *cfg)
{
	json_t *o;
	int fail = 0;

	if ((o = json_object()) == NULL)
		return NULL;
	fail |= put(o, "model", json_string(cfg->transcription_model));
	if (cfg->transcription_language != NULL)
		fail |= put(o, "language",
		    json_string(cfg->transcription_language));
	if (cfg->transcription_prompt != NULL)
		fail |= put(o, "prompt",
		    json_string(cfg->transcription_prompt));
	if (fail) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
tools_parse(const char *text)
{
	json_t *a, *t;
	size_t i;

	if ((a = json_loads(text, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return NULL;
	if (!json_is_array(a))
		goto fail;
	json_array_foreach(a, i, t)
		if (!json_is_object(t))
			goto fail;
	return a;
fail:
	json_decref(a);
	return NULL;
}

static json_t *
tool_choice_json(const char *tc)
{
	if (tc[0] == '\0')
		return NULL;
	if (strcmp(tc, "auto") == 0 || strcmp(tc, "none") == 0 ||
	    strcmp(tc, "required") == 0)
		return json_string(tc);
	return json_pack("{s:s,s:s}", "type", "function", "name", tc);
}

static json_t *
max_tokens_json(int n)
{
	if (n < 0)
		return NULL;
	return n == 0 ? json_string("inf") : json_integer(n);
}

/* The fields both dialects place at the top of "session", in order. */
static int
put_tools(json_t *s, const struct oa_session_cfg *cfg)
{
	int fail = 0;

	if (cfg->tools_json != NULL)
		fail |= put(s, "tools", tools_parse(cfg->tools_json));
	if (cfg->tool_choice != NULL)
		fail |= put(s, "tool_choice",
		    tool_choice_json(cfg->tool_choice));
	return fail;
}

static json_t *
session_ga(const struct oa_session_cfg *cfg)
{
	json_t *s, *audio, *in, *outp, *td;
	int fail = 0, omit;

	s = json_object();
	audio = json_object();
	in = json_object();
	outp = json_object();
	if (s == NULL || audio == NULL || in == NULL || outp == NULL) {
		json_decref(s);
		json_decref(audio);
		json_decref(in);
		json_decref(outp);
		return NULL;
	}
	fail |= put(s, "type", json_string("realtime"));
	fail |= put(s, "output_modalities", json_pack("[s]",
	    cfg->text_only ? "text" : "audio"));
	fail |= put(s, "instructions", json_string(cfg->instructions));
	if (cfg->text_only) {
		/* Twilio hears and speaks: no audio either way */
		json_decref(audio);
		json_decref(in);
		json_decref(outp);
		goto tools;
	}

	fail |= put(in, "format", pcmu_format(OA_GA));
	if (cfg->noise_reduction != NULL)
		fail |= put(in, "noise_reduction",
		    json_pack("{s:s}", "type", cfg->noise_reduction));
	if (cfg->transcription_model != NULL)
		fail |= put(in, "transcription", transcription_json(cfg));
	td = vad_json(&cfg->vad, OA_GA, &omit);
	if (!omit)
		fail |= put(in, "turn_detection", td);

	fail |= put(outp, "format", pcmu_format(OA_GA));
	if (cfg->voice != NULL)
		fail |= put(outp, "voice", json_string(cfg->voice));
	if (cfg->speed >= 0)
		fail |= put(outp, "speed", json_real(cfg->speed));

	fail |= put(audio, "input", in);
	fail |= put(audio, "output", outp);
	fail |= put(s, "audio", audio);
tools:
	fail |= put_tools(s, cfg);
	fail |= put(s, "max_output_tokens",
	    max_tokens_json(cfg->max_output_tokens));
	if (fail) {
		json_decref(s);
		return NULL;
	}
	return s;
}

static json_t *
session_beta(const struct oa_session_cfg *cfg)
{
	json_t *s, *td;
	int fail = 0, omit;

	if ((s = json_object()) == NULL)
		return NULL;
	if (cfg->text_only) {
		fail |= put(s, "modalities", json_pack("[s]", "text"));
		fail |= put(s, "instructions", json_string(cfg->instructions));
		fail |= put(s, "turn_detection", json_null());
		fail |= put_tools(s, cfg);
		if (cfg->temperature >= 0)
			fail |= put(s, "temperature", json_real(cfg->temperature));
		fail |= put(s, "max_response_output_tokens",
		    max_tokens_json(cfg->max_output_tokens));
		if (fail) {
			json_decref(s);
			return NULL;
		}
		return s;
	}
	fail |= put(s, "modalities", json_pack("[s,s]", "text", "audio"));
	fail |= put(s, "instructions", json_string(cfg->instructions));
	if (cfg->voice != NULL)
		fail |= put(s, "voice", json_string(cfg->voice));
	fail |= put(s, "input_audio_format", pcmu_format(OA_BETA));
	fail |= put(s, "output_audio_format", pcmu_format(OA_BETA));
	if (cfg->transcription_model != NULL)
		fail |= put(s, "input_audio_transcription",
		    transcription_json(cfg));
	if (cfg->noise_reduction != NULL)
		fail |= put(s, "input_audio_noise_reduction",
		    json_pack("{s:s}", "type", cfg->noise_reduction));
	td = vad_json(&cfg->vad, OA_BETA, &omit);
	if (!omit)
		fail |= put(s, "turn_detection", td);
	fail |= put_tools(s, cfg);
	if (cfg->temperature >= 0)
		fail |= put(s, "temperature", json_real(cfg->temperature));
	fail |= put(s, "max_response_output_tokens",
	    max_tokens_json(cfg->max_output_tokens));
	if (cfg->speed >= 0)
		fail |= put(s, "speed", json_real(cfg->speed));
	if (fail) {
		json_decref(s);
		return NULL;
	}
	return s;
}

int
oa_build_session_update(struct buf *out, enum oa_dialect d,
    const struct oa_session_cfg *cfg)
{
	json_t *root, *s;
	int fail = 0;

	if (cfg == NULL || cfg->instructions == NULL ||
	    (d != OA_GA && d != OA_BETA))
		return -1;
	s = d == OA_GA ? session_ga(cfg) : session_beta(cfg);
	if (s == NULL)
		return -1;
	if ((root = json_object()) == NULL) {
		json_decref(s);
		return -1;
	}
	fail |= put(root, "type", json_string("session.update"));
	fail |= put(root, "session", s);
	return emit(out, root, fail);
}

static const char append_head[] =
    "{\"type\":\"input_audio_buffer.append\",\"audio\":\"";
static const char append_tail[] = "\"}";
#define APPEND_HEAD_LEN	(sizeof(append_head) - 1)
#define APPEND_TAIL_LEN	(sizeof(append_tail) - 1)

/* Reserve room for an append event with n base64 characters, write its
 * head and return where the characters go; NULL if it does not fit. */
static char *
append_begin(struct buf *out, size_t n)
{
	char *w;

	if (n > SIZE_MAX - APPEND_HEAD_LEN - APPEND_TAIL_LEN)
		return NULL;
	if ((w = buf_reserve(out, APPEND_HEAD_LEN + n + APPEND_TAIL_LEN)) ==
	    NULL)
		return NULL;
	memcpy(w, append_head, APPEND_HEAD_LEN);
	return w + APPEND_HEAD_LEN;
}

static void
append_end(struct buf *out, char *w, size_t n)
{
	memcpy(w + n, append_tail, APPEND_TAIL_LEN);
	buf_commit(out, APPEND_HEAD_LEN + n + APPEND_TAIL_LEN);
}

int
oa_build_append(struct buf *out, const char *b64, size_t len)
{
	if (b64 == NULL && len > 0)
		return -1;
	if (len > 0 && b64_decoded_len(b64, len) < 0)
		return -1;
	return oa_build_append_parsed(out, b64, len);
}

int
oa_build_append_parsed(struct buf *out, const char *b64, size_t len)
{
	char *w;

	if (b64 == NULL && len > 0)
		return -1;
	if ((w = append_begin(out, len)) == NULL)
		return -1;
	if (len > 0)
		memcpy(w, b64, len);
	append_end(out, w, len);
	return 0;
}

/*
 * mu-law silence is the byte 0xFF.  Three such bytes encode as "////";
 * a last group of one byte as "/w==", of two bytes as "//8=".
 */
int
oa_build_append_silence(struct buf *out, unsigned ms)
{
	size_t bytes, groups, rem, n;
	char *w;

	if (ms > OA_SILENCE_MAX_MS)
		return -1;
	bytes = (size_t)ms * 8;
	groups = bytes / 3;
	rem = bytes % 3;
	n = groups * 4 + (rem ? 4 : 0);
	if ((w = append_begin(out, n)) == NULL)
		return -1;
	memset(w, '/', groups * 4);
	if (rem == 1)
		memcpy(w + groups * 4, "/w==", 4);
	else if (rem == 2)
		memcpy(w + groups * 4, "//8=", 4);
	append_end(out, w, n);
	return 0;
}

int
oa_build_truncate(struct buf *out, const char *item_id, int content_index,
    uint64_t audio_end_ms)
{
	json_t *root;
	int fail = 0;

	if (item_id == NULL || item_id[0] == '\0' || content_index < 0 ||
	    audio_end_ms > (uint64_t)INT64_MAX)
		return -1;
	if ((root = json_object()) == NULL)
		return -1;
	fail |= put(root, "type", json_string("conversation.item.truncate"));
	fail |= put(root, "item_id", json_string(item_id));
	fail |= put(root, "content_index", json_integer(content_index));
	fail |= put(root, "audio_end_ms",
	    json_integer((json_int_t)audio_end_ms));
	return emit(out, root, fail);
}

int
oa_build_response_create(struct buf *out, enum oa_dialect d,
    const char *instructions, int tool_choice_none)
{
	json_t *root, *r;
	int fail = 0;

	/* the fields we set have the same names in both dialects */
	if (d != OA_GA && d != OA_BETA)
		return -1;
	if ((root = json_object()) == NULL)
		return -1;
	fail |= put(root, "type", json_string("response.create"));
	if (instructions != NULL || tool_choice_none) {
		if ((r = json_object()) == NULL) {
			json_decref(root);
			return -1;
		}
		if (instructions != NULL)
			fail |= put(r, "instructions",
			    json_string(instructions));
		if (tool_choice_none)
			fail |= put(r, "tool_choice", json_string("none"));
		fail |= put(root, "response", r);
	}
	return emit(out, root, fail);
}

int
oa_build_response_cancel(struct buf *out)
{
	static const char ev[] = "{\"type\":\"response.cancel\"}";

	return buf_append(out, ev, sizeof(ev) - 1);
}

int
oa_build_function_output(struct buf *out, const char *call_id,
    const char *output)
{
	json_t *root, *item;
	int fail = 0;

	if (call_id == NULL || call_id[0] == '\0' || output == NULL)
		return -1;
	if ((root = json_object()) == NULL)
		return -1;
	if ((item = json_object()) == NULL) {
		json_decref(root);
		return -1;
	}
	fail |= put(root, "type", json_string("conversation.item.create"));
	fail |= put(item, "type", json_string("function_call_output"));
	fail |= put(item, "call_id", json_string(call_id));
	fail |= put(item, "output", json_string(output));
	fail |= put(root, "item", item);
	return emit(out, root, fail);
}

int
oa_build_text_item(struct buf *out, const char *text, int system)
{
	json_t *root, *item, *part, *content;
	int fail = 0;

	if (text == NULL)
		return -1;
	root = json_object();
	item = json_object();
	part = json_object();
	content = json_array();
	if (root == NULL || item == NULL || part == NULL || content == NULL) {
		json_decref(root);
		json_decref(item);
		json_decref(part);
		json_decref(content);
		return -1;
	}
	fail |= put(root, "type", json_string("conversation.item.create"));
	fail |= put(item, "type", json_string("message"));
	fail |= put(item, "role", json_string(system ? "system" : "user"));
	fail |= put(part, "type", json_string("input_text"));
	fail |= put(part, "text", json_string(text));
	fail |= json_array_append_new(content, part) != 0;
	fail |= put(item, "content", content);
	fail |= put(root, "item", item);
	return emit(out, root, fail);
}

int
oa_build_assistant_text_item(struct buf *out, enum oa_dialect d,
    const char *text, const char *previous_item_id)
{
	json_t *root;

	if (text == NULL || (d != OA_GA && d != OA_BETA))
		return -1;
	root = json_pack("{s:s,s:{s:s,s:s,s:[{s:s,s:s}]}}",
	    "type", "conversation.item.create", "item", "type", "message",
	    "role", "assistant", "content", "type",
	    d == OA_GA ? "output_text" : "text", "text", text);
	if (root == NULL)
		return -1;
	if (previous_item_id != NULL && previous_item_id[0] != '\0')
		return emit(out, root, put(root, "previous_item_id",
		    json_string(previous_item_id)));
	return emit(out, root, 0);
}

int
oa_build_item_delete(struct buf *out, const char *item_id)
{
	json_t *root;

	if (item_id == NULL || item_id[0] == '\0')
		return -1;
	root = json_pack("{s:s,s:s}", "type", "conversation.item.delete",
	    "item_id", item_id);
	return root == NULL ? -1 : emit(out, root, 0);
}

/* Parser -------------------------------------------------------------- */

static const char *const oa_event_names[OA_EV__COUNT] = {
	[OA_EV_UNKNOWN] = "unknown",
	[OA_EV_SESSION_CREATED] = "session.created",
	[OA_EV_SESSION_UPDATED] = "session.updated",
	[OA_EV_SPEECH_STARTED] = "input_audio_buffer.speech_started",
	[OA_EV_SPEECH_STOPPED] = "input_audio_buffer.speech_stopped",
	[OA_EV_COMMITTED] = "input_audio_buffer.committed",
	[OA_EV_BUFFER_CLEARED] = "input_audio_buffer.cleared",
	[OA_EV_TIMEOUT_TRIGGERED] = "input_audio_buffer.timeout_triggered",
	[OA_EV_ITEM_ADDED] = "conversation.item.added",
	[OA_EV_ITEM_DONE] = "conversation.item.done",
	[OA_EV_ITEM_TRUNCATED] = "conversation.item.truncated",
	[OA_EV_ITEM_DELETED] = "conversation.item.deleted",
	[OA_EV_INPUT_TRANSCRIPT_DELTA] =
	    "conversation.item.input_audio_transcription.delta",
	[OA_EV_INPUT_TRANSCRIPT_DONE] =
	    "conversation.item.input_audio_transcription.completed",
	[OA_EV_INPUT_TRANSCRIPT_FAILED] =
	    "conversation.item.input_audio_transcription.failed",
	[OA_EV_RESPONSE_CREATED] = "response.created",
	[OA_EV_OUTPUT_ITEM_ADDED] = "response.output_item.added",
	[OA_EV_OUTPUT_ITEM_DONE] = "response.output_item.done",
	[OA_EV_CONTENT_PART_ADDED] = "response.content_part.added",
	[OA_EV_CONTENT_PART_DONE] = "response.content_part.done",
	[OA_EV_AUDIO_DELTA] = "response.output_audio.delta",
	[OA_EV_AUDIO_DONE] = "response.output_audio.done",
	[OA_EV_TRANSCRIPT_DELTA] = "response.output_audio_transcript.delta",
	[OA_EV_TRANSCRIPT_DONE] = "response.output_audio_transcript.done",
	[OA_EV_TEXT_DELTA] = "response.output_text.delta",
	[OA_EV_TEXT_DONE] = "response.output_text.done",
	[OA_EV_FUNCTION_ARGS_DELTA] = "response.function_call_arguments.delta",
	[OA_EV_FUNCTION_ARGS_DONE] = "response.function_call_arguments.done",
	[OA_EV_RESPONSE_DONE] = "response.done",
	[OA_EV_RATE_LIMITS] = "rate_limits.updated",
	[OA_EV_ERROR] = "error",
};

/* Names that differ from the GA ones above; the audio delta comes first
 * because it is by far the most frequent event. */
static const struct {
	const char	*name;
	enum oa_event	 ev;
} oa_beta_names[] = {
	{ "response.audio.delta",		OA_EV_AUDIO_DELTA },
	{ "response.audio_transcript.delta",	OA_EV_TRANSCRIPT_DELTA },
	{ "response.audio.done",		OA_EV_AUDIO_DONE },
	{ "response.audio_transcript.done",	OA_EV_TRANSCRIPT_DONE },
	{ "response.text.delta",		OA_EV_TEXT_DELTA },
	{ "response.text.done",			OA_EV_TEXT_DONE },
	{ "conversation.item.created",		OA_EV_ITEM_ADDED },
};

const char *
oa_event_name(enum oa_event e)
{
	if ((unsigned)e >= OA_EV__COUNT)
		return "unknown";
	return oa_event_names[e];
}

const char *
oa_strerror(int err)
{
	switch (err) {
	case OA_OK:		return "ok";
	case OA_ERR_JSON:	return "not a JSON object";
	case OA_ERR_TYPE:	return "no type string";
	case OA_ERR_FIELD:	return "missing or mistyped field";
	case OA_ERR_TOOBIG:	return "field too long";
	case OA_ERR_BASE64:	return "audio delta is not base64";
	}
	return "unknown error";
}

static int
name_is(const char *name, const char *s, size_t n)
{
	return strlen(name) == n && memcmp(name, s, n) == 0;
}

static enum oa_event
event_lookup(const char *s, size_t n)
{
	size_t i;

	if (name_is(oa_event_names[OA_EV_AUDIO_DELTA], s, n))
		return OA_EV_AUDIO_DELTA;
	for (i = 0; i < sizeof(oa_beta_names) / sizeof(oa_beta_names[0]); i++)
		if (name_is(oa_beta_names[i].name, s, n))
			return oa_beta_names[i].ev;
	for (i = OA_EV_UNKNOWN + 1; i < OA_EV__COUNT; i++)
		if (name_is(oa_event_names[i], s, n))
			return (enum oa_event)i;
	return OA_EV_UNKNOWN;
}

void
oa_msg_free(struct oa_msg *m)
{
	free(m->audio_buf);
	free(m->text_buf);
	m->audio_buf = m->text_buf = NULL;
	m->audio_cap = m->text_cap = 0;
	m->audio = NULL;
	m->audio_len = m->audio_bytes = 0;
	m->text = "";
	m->text_len = 0;
}

static void
set_type(struct oa_msg *m, const char *s, size_t n)
{
	size_t i;

	if (n > sizeof(m->type) - 1)
		n = sizeof(m->type) - 1;
	/* for logs: nothing that could forge a line or a terminal escape */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		m->type[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	m->type[n] = '\0';
}

/* An optional string member into dst[cap]; absent or null leaves dst. */
static int
get_str(char *dst, size_t cap, const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	size_t n;

	if (v == NULL || json_is_null(v))
		return OA_OK;
	if (!json_is_string(v))
		return OA_ERR_FIELD;
	n = json_string_length(v);
	if (n >= cap)
		return OA_ERR_TOOBIG;
	memcpy(dst, json_string_value(v), n);
	dst[n] = '\0';
	return OA_OK;
}

/* An optional counter member; absent or null leaves *out. */
static int
get_u64(uint64_t *out, const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return OA_OK;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return OA_ERR_FIELD;
	*out = (uint64_t)json_integer_value(v);
	return OA_OK;
}

static int
get_int(int *out, const json_t *obj, const char *key)
{
	uint64_t x = (uint64_t)*out;
	int rc;

	if ((rc = get_u64(&x, obj, key)) != OA_OK)
		return rc;
	if (x > INT_MAX)
		return OA_ERR_FIELD;
	*out = (int)x;
	return OA_OK;
}

/* An object member: *out NULL when absent or null. */
static int
get_obj(const json_t **out, const json_t *obj, const char *key, int required)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return required ? OA_ERR_FIELD : OA_OK;
	if (!json_is_object(v))
		return OA_ERR_FIELD;
	*out = v;
	return OA_OK;
}

/* Grow *p (with *cap) to hold n bytes; keeps the contents. */
static int
grow(char **p, size_t *cap, size_t n)
{
	size_t ncap;
	char *np;

	if (n <= *cap)
		return OA_OK;
	ncap = *cap ? *cap : 256;
	while (ncap < n) {
		if (ncap > SIZE_MAX / 2)
			return OA_ERR_TOOBIG;
		ncap *= 2;
	}
	/* no code for "out of memory": call the string too big */
	if ((np = realloc(*p, ncap)) == NULL)
		return OA_ERR_TOOBIG;
	*p = np;
	*cap = ncap;
	return OA_OK;
}

/* The text of the event from member key; absent or null leaves "". */
static int
get_text(struct oa_msg *m, const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	size_t n;
	int rc;

	if (v == NULL || json_is_null(v))
		return OA_OK;
	if (!json_is_string(v))
		return OA_ERR_FIELD;
	n = json_string_length(v);
	if (n == 0) {
		m->text = "";
		m->text_len = 0;
		return OA_OK;
	}
	if (n == SIZE_MAX)
		return OA_ERR_TOOBIG;
	if ((rc = grow(&m->text_buf, &m->text_cap, n + 1)) != OA_OK)
		return rc;
	memcpy(m->text_buf, json_string_value(v), n);
	m->text_buf[n] = '\0';
	m->text = m->text_buf;
	m->text_len = n;
	return OA_OK;
}

/* Members that sit at the top of many events, each optional. */
static int
parse_top(const json_t *root, struct oa_msg *m)
{
	int rc;

	if ((rc = get_str(m->event_id, sizeof(m->event_id), root,
	    "event_id")) != OA_OK ||
	    (rc = get_str(m->response_id, sizeof(m->response_id), root,
	    "response_id")) != OA_OK ||
	    (rc = get_str(m->item_id, sizeof(m->item_id), root,
	    "item_id")) != OA_OK ||
	    (rc = get_str(m->previous_item_id, sizeof(m->previous_item_id),
	    root, "previous_item_id")) != OA_OK ||
	    (rc = get_str(m->call_id, sizeof(m->call_id), root,
	    "call_id")) != OA_OK ||
	    (rc = get_str(m->name, sizeof(m->name), root, "name")) != OA_OK ||
	    (rc = get_int(&m->output_index, root, "output_index")) != OA_OK ||
	    (rc = get_int(&m->content_index, root, "content_index")) != OA_OK ||
	    (rc = get_u64(&m->audio_start_ms, root, "audio_start_ms")) !=
	    OA_OK ||
	    (rc = get_u64(&m->audio_end_ms, root, "audio_end_ms")) != OA_OK)
		return rc;
	return OA_OK;
}

/*
 * interrupt_response as the session will apply it: the flag of its
 * turn_detection object (true when the object leaves it out, the
 * documented default), 0 when turn_detection is null (no VAD, nothing
 * interrupts), -1 when the session does not say.
 */
static int
parse_interrupt(const json_t *td, struct oa_msg *m)
{
	const json_t *v;

	if (td == NULL)
		return OA_OK;
	if (json_is_null(td)) {
		m->interrupt_response = 0;
		return OA_OK;
	}
	if (!json_is_object(td))
		return OA_ERR_FIELD;
	v = json_object_get(td, "interrupt_response");
	if (v == NULL || json_is_null(v))
		m->interrupt_response = 1;
	else if (json_is_boolean(v))
		m->interrupt_response = json_is_true(v);
	else
		return OA_ERR_FIELD;
	return OA_OK;
}

static int
parse_session(const json_t *root, struct oa_msg *m)
{
	const json_t *s, *audio, *in;
	int rc;

	if ((rc = get_obj(&s, root, "session", 1)) != OA_OK ||
	    (rc = get_str(m->session_id, sizeof(m->session_id), s,
	    "id")) != OA_OK ||
	    (rc = get_u64(&m->expires_at, s, "expires_at")) != OA_OK ||
	    (rc = get_obj(&audio, s, "audio", 0)) != OA_OK)
		return rc;
	/* GA nests it under audio.input; beta keeps it flat */
	if (audio != NULL) {
		if ((rc = get_obj(&in, audio, "input", 0)) != OA_OK)
			return rc;
		if (in != NULL)
			return parse_interrupt(json_object_get(in,
			    "turn_detection"), m);
	}
	return parse_interrupt(json_object_get(s, "turn_detection"), m);
}

static int
parse_error_obj(const json_t *e, struct oa_msg *m)
{
	int rc;

	if ((rc = get_str(m->err_type, sizeof(m->err_type), e,
	    "type")) != OA_OK ||
	    (rc = get_str(m->err_code, sizeof(m->err_code), e,
	    "code")) != OA_OK ||
	    (rc = get_str(m->err_param, sizeof(m->err_param), e,
	    "param")) != OA_OK ||
	    (rc = get_str(m->err_event_id, sizeof(m->err_event_id), e,
	    "event_id")) != OA_OK ||
	    (rc = get_text(m, e, "message")) != OA_OK)
		return rc;
	return OA_OK;
}

/* A count in usage: a wrong type or a negative one reads as 0, never
 * refuses the event (usage is for the records, not the relay). */
static uint64_t
usage_count(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ?
	    (uint64_t)json_integer_value(v) : 0;
}

static void
parse_usage(const json_t *r, struct oa_msg *m)
{
	const json_t *u = json_object_get(r, "usage");
	const json_t *in = json_object_get(u, "input_token_details");
	const json_t *out = json_object_get(u, "output_token_details");

	if (!json_is_object(u))
		return;
	m->in_text_tokens = usage_count(in, "text_tokens");
	m->in_audio_tokens = usage_count(in, "audio_tokens");
	m->in_cached_tokens = usage_count(in, "cached_tokens");
	m->out_text_tokens = usage_count(out, "text_tokens");
	m->out_audio_tokens = usage_count(out, "audio_tokens");
	/* without details, the totals count as text */
	if (!json_is_object(in))
		m->in_text_tokens = usage_count(u, "input_tokens");
	if (!json_is_object(out))
		m->out_text_tokens = usage_count(u, "output_tokens");
}

static int
parse_response(const json_t *root, struct oa_msg *m)
{
	const json_t *r, *sd, *e;
	int rc;

	if ((rc = get_obj(&r, root, "response", 1)) != OA_OK ||
	    (rc = get_str(m->response_id, sizeof(m->response_id), r,
	    "id")) != OA_OK ||
	    (rc = get_str(m->status, sizeof(m->status), r,
	    "status")) != OA_OK ||
	    (rc = get_obj(&sd, r, "status_details", 0)) != OA_OK)
		return rc;
	if (m->ev == OA_EV_RESPONSE_DONE)
		parse_usage(r, m);
	if (sd == NULL)
		return OA_OK;
	if ((rc = get_str(m->status_reason, sizeof(m->status_reason), sd,
	    "reason")) != OA_OK ||
	    (rc = get_obj(&e, sd, "error", 0)) != OA_OK)
		return rc;
	if (e != NULL && ((rc = get_str(m->err_type, sizeof(m->err_type), e,
	    "type")) != OA_OK ||
	    (rc = get_str(m->err_code, sizeof(m->err_code), e,
	    "code")) != OA_OK))
		return rc;
	return OA_OK;
}

static int
parse_item(const json_t *root, struct oa_msg *m)
{
	const json_t *it;
	int rc;

	if ((rc = get_obj(&it, root, "item", 1)) != OA_OK ||
	    (rc = get_str(m->item_id, sizeof(m->item_id), it, "id")) != OA_OK ||
	    (rc = get_str(m->item_type, sizeof(m->item_type), it,
	    "type")) != OA_OK ||
	    (rc = get_str(m->item_role, sizeof(m->item_role), it,
	    "role")) != OA_OK ||
	    (rc = get_str(m->call_id, sizeof(m->call_id), it,
	    "call_id")) != OA_OK ||
	    (rc = get_str(m->name, sizeof(m->name), it, "name")) != OA_OK ||
	    (rc = get_text(m, it, "arguments")) != OA_OK)
		return rc;
	return OA_OK;
}

static int
parse_audio(const json_t *root, struct oa_msg *m, const char *buf,
    size_t len)
{
	const json_t *d = json_object_get(root, "delta");
	const char *s, *p;
	size_t n;
	long dl;
	int rc;

	if (!json_is_string(d))
		return OA_ERR_FIELD;
	s = json_string_value(d);
	n = json_string_length(d);
	if ((dl = b64_decoded_len(s, n)) < 0)
		return OA_ERR_BASE64;
	if (n == 0)
		m->audio = "";
	else if ((p = memmem(buf, len, s, n)) != NULL)
		m->audio = p;
	else {
		if ((rc = grow(&m->audio_buf, &m->audio_cap, n)) != OA_OK)
			return rc;
		memcpy(m->audio_buf, s, n);
		m->audio = m->audio_buf;
	}
	m->audio_len = n;
	m->audio_bytes = (size_t)dl;
	return OA_OK;
}

static int
parse_body(const json_t *root, struct oa_msg *m, const char *buf, size_t len)
{
	const json_t *e;
	int rc;

	switch (m->ev) {
	case OA_EV_SESSION_CREATED:
	case OA_EV_SESSION_UPDATED:
		return parse_session(root, m);
	case OA_EV_RESPONSE_CREATED:
	case OA_EV_RESPONSE_DONE:
		return parse_response(root, m);
	case OA_EV_ITEM_ADDED:
	case OA_EV_ITEM_DONE:
	case OA_EV_OUTPUT_ITEM_ADDED:
	case OA_EV_OUTPUT_ITEM_DONE:
		return parse_item(root, m);
	case OA_EV_AUDIO_DELTA:
		return parse_audio(root, m, buf, len);
	case OA_EV_INPUT_TRANSCRIPT_DELTA:
	case OA_EV_TRANSCRIPT_DELTA:
	case OA_EV_TEXT_DELTA:
	case OA_EV_FUNCTION_ARGS_DELTA:
		return get_text(m, root, "delta");
	case OA_EV_INPUT_TRANSCRIPT_DONE:
	case OA_EV_TRANSCRIPT_DONE:
		return get_text(m, root, "transcript");
	case OA_EV_TEXT_DONE:
		return get_text(m, root, "text");
	case OA_EV_FUNCTION_ARGS_DONE:
		return get_text(m, root, "arguments");
	case OA_EV_ERROR:
		if ((rc = get_obj(&e, root, "error", 1)) != OA_OK)
			return rc;
		return parse_error_obj(e, m);
	case OA_EV_INPUT_TRANSCRIPT_FAILED:
		if ((rc = get_obj(&e, root, "error", 0)) != OA_OK)
			return rc;
		return e == NULL ? OA_OK : parse_error_obj(e, m);
	default:
		return OA_OK;
	}
}

/*
 * Runs in the worker for every text frame from OpenAI, dozens a second per
 * call while the assistant speaks: no logging, no allocation but jansson's
 * and the growth of text_buf/audio_buf.
 */
static void
oa_reset(struct oa_msg *m)
{
	char *abuf = m->audio_buf, *tbuf = m->text_buf;
	size_t acap = m->audio_cap, tcap = m->text_cap;

	memset(m, 0, sizeof(*m));
	m->audio_buf = abuf;
	m->audio_cap = acap;
	m->text_buf = tbuf;
	m->text_cap = tcap;
	m->text = "";
	m->interrupt_response = -1;
}

static int
fast_id(char *dst, size_t cap, const char *v, size_t n)
{
	if (n >= cap)
		return JSCAN_NO;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return JSCAN_OK;
}

/*
 * The audio delta, the model's most frequent event, read in place by a
 * narrow scanner (proto/jscan.h): only its common flat shape, everything
 * else goes to jansson.  The fields it sets are exactly parse_top's and
 * parse_audio's for that shape; test_openai.c checks the two agree.
 */
static int
oa_parse_fast_delta(const char *buf, size_t len, struct oa_msg *m)
{
	struct jscan s = { buf, buf + len };
	const char *k, *v, *audio = NULL;
	size_t kl, vl, an = 0, bytes = 0;
	unsigned seen = 0;
	uint64_t x;
	int first = 1, rc;

	while ((rc = jscan_member(&s, &first, &k, &kl)) == 1) {
		if (jscan_key_is(k, kl, "output_index") || jscan_key_is(k, kl, "content_index")) {
			unsigned bit = k[0] == 'o' ? 64 : 128;
			if ((seen & bit) || jscan_uint(&s, &x) != JSCAN_OK || x > INT_MAX)
				return JSCAN_NO;
			seen |= bit;
			if (bit == 64)
				m->output_index = (int)x;
			else
				m->content_index = (int)x;
			continue;
		}
		if (jscan_key_is(k, kl, "delta") && !(seen & 2)) {
			seen |= 2;
			if (jscan_b64(&s, &audio, &an, &bytes) != JSCAN_OK)
				return JSCAN_NO;
			continue;
		}
		if (jscan_string(&s, &v, &vl) != JSCAN_OK)
			return JSCAN_NO;
		if (jscan_key_is(k, kl, "type") && !(seen & 1)) {
			seen |= 1;
			if (!jscan_key_is(v, vl, "response.output_audio.delta") &&
			    !jscan_key_is(v, vl, "response.audio.delta"))
				return JSCAN_NO;
			set_type(m, v, vl);
		} else if (jscan_key_is(k, kl, "event_id") && !(seen & 4)) {
			seen |= 4;
			if (fast_id(m->event_id, sizeof(m->event_id), v, vl) != JSCAN_OK)
				return JSCAN_NO;
		} else if (jscan_key_is(k, kl, "response_id") && !(seen & 8)) {
			seen |= 8;
			if (fast_id(m->response_id, sizeof(m->response_id), v, vl) != JSCAN_OK)
				return JSCAN_NO;
		} else if (jscan_key_is(k, kl, "item_id") && !(seen & 16)) {
			seen |= 16;
			if (fast_id(m->item_id, sizeof(m->item_id), v, vl) != JSCAN_OK)
				return JSCAN_NO;
		} else
			return JSCAN_NO;
	}
	if (rc != 0 || (seen & 3) != 3 || jscan_end(&s) != JSCAN_OK)
		return JSCAN_NO;
	m->ev = OA_EV_AUDIO_DELTA;
	m->audio = an ? audio : "";
	m->audio_len = an;
	m->audio_bytes = bytes;
	return JSCAN_OK;
}

int
oa_parse(const char *buf, size_t len, struct oa_msg *m)
{
	oa_reset(m);
	if (buf != NULL && oa_parse_fast_delta(buf, len, m) == JSCAN_OK)
		return OA_OK;
	return oa_parse_full(buf, len, m);
}

int
oa_parse_full(const char *buf, size_t len, struct oa_msg *m)
{
	const json_t *ty;
	json_t *root;
	int rc;

	oa_reset(m);

	if (buf == NULL)
		return OA_ERR_JSON;
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	if (root == NULL)
		return OA_ERR_JSON;
	if (!json_is_object(root)) {
		rc = OA_ERR_JSON;
		goto fail;
	}
	ty = json_object_get(root, "type");
	if (!json_is_string(ty)) {
		rc = OA_ERR_TYPE;
		goto fail;
	}
	set_type(m, json_string_value(ty), json_string_length(ty));
	m->ev = event_lookup(json_string_value(ty), json_string_length(ty));
	if (m->ev == OA_EV_UNKNOWN) {
		json_decref(root);
		return OA_OK;
	}
	if ((rc = parse_top(root, m)) != OA_OK ||
	    (rc = parse_body(root, m, buf, len)) != OA_OK)
		goto fail;
	json_decref(root);
	return OA_OK;
fail:
	json_decref(root);
	m->audio = NULL;
	m->audio_len = m->audio_bytes = 0;
	m->text = "";
	m->text_len = 0;
	return rc;
}

/* HTTP error bodies --------------------------------------------------- */

/*
 * Copy s[0..n) into out[outlen] for a log line: control characters become
 * spaces (runs of them one space), leading and trailing blanks go, and a
 * cut never splits a UTF-8 sequence.  With stop_at_binary, the copy ends
 * at the first byte that is neither printable ASCII nor a blank (a body
 * that is not JSON may be anything).
 */
static void
copy_for_log(char *out, size_t outlen, const char *s, size_t n,
    int stop_at_binary)
{
	size_t i, o = 0, clen;
	int space = 0;

	for (i = 0; i < n; i += clen) {
		unsigned char c = (unsigned char)s[i];

		clen = 1;
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			space = o > 0;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			if (stop_at_binary)
				break;
			space = o > 0;
			continue;
		}
		if (c >= 0x80) {
			if (stop_at_binary)
				break;
			/* the lead byte gives the length; jansson checked
			 * that the sequence is well formed */
			if (c >= 0xf0)
				clen = 4;
			else if (c >= 0xe0)
				clen = 3;
			else if (c >= 0xc0)
				clen = 2;
			if (clen > n - i)
				break;
		}
		if (o + space + clen > outlen - 1)
			break;
		if (space)
			out[o++] = ' ';
		space = 0;
		memcpy(out + o, s + i, clen);
		o += clen;
	}
	out[o] = '\0';
}

void
oa_error_body_message(const char *body, size_t len, char *out, size_t outlen)
{
	const json_t *e, *msg = NULL;
	json_t *root;

	if (out == NULL || outlen == 0)
		return;
	out[0] = '\0';
	if (body == NULL || len == 0)
		return;
	root = json_loadb(body, len, 0, NULL);
	if (root == NULL) {
		copy_for_log(out, outlen, body, len, 1);
		return;
	}
	if (json_is_object(root)) {
		e = json_object_get(root, "error");
		if (json_is_object(e))
			msg = json_object_get(e, "message");
		else if (json_is_string(e))
			msg = e;
		else
			msg = json_object_get(root, "message");
	}
	if (json_is_string(msg))
		copy_for_log(out, outlen, json_string_value(msg),
		    json_string_length(msg), 0);
	json_decref(root);
}
