/*
 * fuzz_openai.c — proto/openai.c: Realtime server events, the error body
 * of a refused handshake, and the client-event builders.
 *
 * Input: a mode byte, then the rest.
 *  - parse (even mode): the rest is one server event, parsed twice with
 *    the same struct oa_msg (text_buf and audio_buf reused), and once with
 *    oa_parse_full(), jansson alone, without the in-place scanner for the
 *    audio delta (proto/jscan.h).  All three agree, field by field; a
 *    message jansson cannot read is OA_ERR_JSON; fixed arrays are
 *    NUL-terminated, the text is NUL-terminated at text_len, the audio
 *    delta points into the message or audio_buf and is base64 of
 *    audio_bytes bytes; a failed parse leaves no audio and no text.
 *  - build (odd mode): the rest is the body of a refused handshake for
 *    oa_error_body_message() (the message out is UTF-8 without control
 *    characters or outer blanks, within outlen), and its parts are strings
 *    for the builders: each builds valid JSON holding exactly what went in,
 *    or fails (a string that is not UTF-8, a missing id, no room) and
 *    leaves the buffer as it was.
 */
#include "test/fuzz/fuzz.h"

#include <jansson.h>

#include "proto/openai.h"
#include "proto/twilio.h"

FUZZ_TARGET("openai");

static void
check_str(const char *a, size_t cap)
{
	FUZZ_ASSERT(memchr(a, '\0', cap) != NULL);
}

static void
check_msg(const struct oa_msg *m, const char *buf, size_t len)
{
	check_str(m->type, sizeof(m->type));
	for (const char *c = m->type; *c; c++)
		FUZZ_ASSERT(*c >= 0x20 && *c < 0x7f);
	check_str(m->event_id, sizeof(m->event_id));
	check_str(m->response_id, sizeof(m->response_id));
	check_str(m->item_id, sizeof(m->item_id));
	check_str(m->previous_item_id, sizeof(m->previous_item_id));
	check_str(m->call_id, sizeof(m->call_id));
	check_str(m->name, sizeof(m->name));
	check_str(m->item_type, sizeof(m->item_type));
	check_str(m->item_role, sizeof(m->item_role));
	check_str(m->status, sizeof(m->status));
	check_str(m->status_reason, sizeof(m->status_reason));
	check_str(m->session_id, sizeof(m->session_id));
	check_str(m->err_type, sizeof(m->err_type));
	check_str(m->err_code, sizeof(m->err_code));
	check_str(m->err_param, sizeof(m->err_param));
	check_str(m->err_event_id, sizeof(m->err_event_id));
	FUZZ_ASSERT((unsigned)m->ev < OA_EV__COUNT);
	FUZZ_ASSERT(strcmp(oa_event_name(m->ev), "unknown") != 0 ||
	    m->ev == OA_EV_UNKNOWN);
	FUZZ_ASSERT(m->output_index >= 0 && m->content_index >= 0);
	FUZZ_ASSERT(m->interrupt_response >= -1 && m->interrupt_response <= 1);
	FUZZ_ASSERT(m->text != NULL);
	FUZZ_ASSERT(m->text[m->text_len] == '\0');
	FUZZ_ASSERT(strlen(m->text) == m->text_len);
	FUZZ_ASSERT(fuzz_utf8_ok((const unsigned char *)m->text, m->text_len));
	if (m->ev == OA_EV_AUDIO_DELTA) {
		FUZZ_ASSERT(m->audio != NULL);
		FUZZ_ASSERT(m->audio_len == 0 ||
		    (m->audio >= buf && m->audio + m->audio_len <= buf + len) ||
		    (m->audio == m->audio_buf && m->audio_len <= m->audio_cap));
		FUZZ_ASSERT(b64_decoded_len(m->audio, m->audio_len) ==
		    (long)m->audio_bytes);
	} else
		FUZZ_ASSERT(m->audio == NULL && m->audio_len == 0);
}

#define SAME_STR(f)	FUZZ_ASSERT(strcmp(a->f, b->f) == 0)

/* What oa_parse() (with its fast path) and oa_parse_full() (jansson only)
 * made of the same event: they must not differ in anything. */
static void
same_msg(const struct oa_msg *a, const struct oa_msg *b)
{
	FUZZ_ASSERT(a->ev == b->ev);
	SAME_STR(type);
	SAME_STR(event_id);
	SAME_STR(response_id);
	SAME_STR(item_id);
	SAME_STR(previous_item_id);
	SAME_STR(call_id);
	SAME_STR(name);
	FUZZ_ASSERT(a->output_index == b->output_index);
	FUZZ_ASSERT(a->content_index == b->content_index);
	FUZZ_ASSERT(a->audio_start_ms == b->audio_start_ms);
	FUZZ_ASSERT(a->audio_end_ms == b->audio_end_ms);
	FUZZ_ASSERT((a->audio == NULL) == (b->audio == NULL));
	FUZZ_ASSERT(a->audio_len == b->audio_len);
	FUZZ_ASSERT(a->audio_bytes == b->audio_bytes);
	FUZZ_ASSERT(a->audio_len == 0 ||
	    memcmp(a->audio, b->audio, a->audio_len) == 0);
	FUZZ_ASSERT(a->text_len == b->text_len);
	SAME_STR(text);
	SAME_STR(item_type);
	SAME_STR(item_role);
	SAME_STR(status);
	SAME_STR(status_reason);
	SAME_STR(session_id);
	FUZZ_ASSERT(a->expires_at == b->expires_at);
	FUZZ_ASSERT(a->interrupt_response == b->interrupt_response);
	SAME_STR(err_type);
	SAME_STR(err_code);
	SAME_STR(err_param);
	SAME_STR(err_event_id);
}

static void
mode_parse(const uint8_t *data, size_t size)
{
	struct oa_msg m, first, full;
	json_t *j;
	char *buf = (char *)fuzz_dup(data, size), *text;
	int rc, rc2;

	memset(&m, 0, sizeof(m));
	memset(&full, 0, sizeof(full));
	rc = oa_parse(buf, size, &m);
	FUZZ_ASSERT(oa_parse_full(buf, size, &full) == rc);
	same_msg(&m, &full);
	oa_msg_free(&full);
	FUZZ_ASSERT(rc <= OA_OK && rc >= OA_ERR_BASE64);
	FUZZ_ASSERT(strcmp(oa_strerror(rc), "unknown error") != 0);
	FUZZ_ASSERT(strcmp(oa_event_name((enum oa_event)(OA_EV__COUNT +
	    size % 3)), "unknown") == 0);
	j = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
	if (j == NULL)
		FUZZ_ASSERT(rc == OA_ERR_JSON);
	json_decref(j);
	if (rc == OA_OK)
		check_msg(&m, buf, size);
	else
		FUZZ_ASSERT(m.audio == NULL && m.audio_len == 0 &&
		    m.text_len == 0 && strcmp(m.text, "") == 0);

	first = m;
	if ((text = strdup(m.text)) == NULL)
		abort();
	rc2 = oa_parse(buf, size, &m);
	FUZZ_ASSERT(rc2 == rc);
	FUZZ_ASSERT(m.ev == first.ev && m.text_len == first.text_len &&
	    m.audio_len == first.audio_len &&
	    m.audio_bytes == first.audio_bytes);
	FUZZ_ASSERT(strcmp(m.text, text) == 0);
	FUZZ_ASSERT(strcmp(m.item_id, first.item_id) == 0);
	FUZZ_ASSERT(m.audio_len == 0 ||
	    memcmp(m.audio, first.audio, m.audio_len) == 0);
	free(text);
	oa_msg_free(&m);
	free(buf);
}

/* out after a builder: on failure exactly as before; on success one more
 * JSON object after what was there, which is returned (NULL on failure).
 * out is then left holding one byte again, so each builder appends. */
static json_t *
built(struct buf *out, size_t before, int rc)
{
	json_t *j;

	FUZZ_ASSERT(before == 1 && buf_head(out)[0] == 'x');
	if (rc != 0) {
		FUZZ_ASSERT(rc == -1);
		FUZZ_ASSERT(buf_pending(out) == before);
		return NULL;
	}
	FUZZ_ASSERT(buf_pending(out) > before);
	j = json_loadb(buf_head(out) + before, buf_pending(out) - before,
	    JSON_REJECT_DUPLICATES, NULL);
	FUZZ_ASSERT(json_is_object(j));
	FUZZ_ASSERT(json_is_string(json_object_get(j, "type")));
	buf_consume(out, buf_pending(out));
	if (buf_append(out, "x", 1) != 0)
		abort();
	return j;
}

static int
str_is(const json_t *v, const char *s)
{
	return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

static void
check_error_body(const uint8_t *body, size_t len, size_t outlen)
{
	char *out = malloc(outlen > 0 ? outlen : 1);
	size_t n;

	if (out == NULL)
		abort();
	oa_error_body_message((const char *)body, len, out, outlen);
	if (outlen == 0) {
		free(out);
		return;
	}
	n = strlen(out);
	FUZZ_ASSERT(n < outlen);
	FUZZ_ASSERT(fuzz_utf8_ok((const unsigned char *)out, n));
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
	FUZZ_ASSERT(n == 0 || (out[0] != ' ' && out[n - 1] != ' '));
	free(out);
}

static void
mode_build(struct fuzz_in *in)
{
	static const char *const vads[] = {
		"", "none", "server_vad", "semantic_vad", "bogus",
	};
	struct oa_session_cfg cfg;
	struct buf out;
	size_t before, l1, l2, outlen;
	unsigned sel, ms, silence;
	char *s1, *s2;
	uint8_t *body;
	json_t *j, *v;
	int ok1, ok2, rc;

	outlen = fuzz_u8(in);
	body = fuzz_dup(in->p, in->n);
	check_error_body(body, in->n, outlen);
	free(body);

	sel = fuzz_u8(in);
	ms = fuzz_u8(in) << 8;
	ms |= fuzz_u8(in);
	s1 = fuzz_part(in, &l1);
	s2 = fuzz_part(in, &l2);
	ok1 = fuzz_utf8_ok((const unsigned char *)s1, l1);
	ok2 = fuzz_utf8_ok((const unsigned char *)s2, l2);
	/* a small cap now and then: out of room must leave out alone */
	buf_init(&out, sel & 0x80 ? 96 : 0);
	if (buf_append(&out, "x", 1) != 0)
		abort();
	before = buf_pending(&out);

	rc = oa_build_text_item(&out, s1, sel & 1);
	if ((j = built(&out, before, rc)) != NULL) {
		FUZZ_ASSERT(ok1);
		v = json_array_get(json_object_get(json_object_get(j, "item"),
		    "content"), 0);
		FUZZ_ASSERT(str_is(json_object_get(v, "text"), s1));
		json_decref(j);
	} else
		FUZZ_ASSERT(!ok1 || (sel & 0x80));

	rc = oa_build_function_output(&out, s1, s2);
	if ((j = built(&out, before, rc)) != NULL) {
		FUZZ_ASSERT(ok1 && ok2 && l1 > 0);
		v = json_object_get(j, "item");
		FUZZ_ASSERT(str_is(json_object_get(v, "call_id"), s1));
		FUZZ_ASSERT(str_is(json_object_get(v, "output"), s2));
		json_decref(j);
	} else
		FUZZ_ASSERT(!ok1 || !ok2 || l1 == 0 || (sel & 0x80));

	rc = oa_build_truncate(&out, s1, (int)(sel & 7) - 1,
	    (uint64_t)ms << (sel & 0x40 ? 48 : 0));
	if ((j = built(&out, before, rc)) != NULL) {
		FUZZ_ASSERT(ok1 && l1 > 0 && (sel & 7) > 0);
		FUZZ_ASSERT(str_is(json_object_get(j, "item_id"), s1));
		json_decref(j);
	}

	rc = oa_build_append(&out, s2, l2);
	if ((j = built(&out, before, rc)) != NULL) {
		FUZZ_ASSERT(b64_decoded_len(s2, l2) >= 0);
		FUZZ_ASSERT(str_is(json_object_get(j, "audio"), s2));
		json_decref(j);
	} else
		FUZZ_ASSERT(b64_decoded_len(s2, l2) < 0 || (sel & 0x80));

	/* mostly short: the longest, 10 s, is a 107 kB event, so only
	 * now and then the limit and one past it */
	silence = (sel & 0x7e) == 0x7e ? 10000 + ms % 2 : ms % 512;
	rc = oa_build_append_silence(&out, silence);
	if ((j = built(&out, before, rc)) != NULL) {
		v = json_object_get(j, "audio");
		FUZZ_ASSERT(silence <= 10000 && json_is_string(v));
		FUZZ_ASSERT(b64_decoded_len(json_string_value(v),
		    json_string_length(v)) == (long)silence * 8);
		json_decref(j);
	}

	rc = oa_build_response_create(&out, sel & 2 ? OA_BETA : OA_GA,
	    sel & 4 ? s1 : NULL, sel & 8);
	if ((j = built(&out, before, rc)) != NULL) {
		if (sel & 4)
			FUZZ_ASSERT(str_is(json_object_get(json_object_get(j,
			    "response"), "instructions"), s1));
		json_decref(j);
	} else
		FUZZ_ASSERT(((sel & 4) && !ok1) || (sel & 0x80));

	/* session.update from strings of the input */
	memset(&cfg, 0, sizeof(cfg));
	cfg.instructions = s1;
	cfg.voice = sel & 0x10 ? s2 : NULL;
	cfg.temperature = sel & 0x20 ? 0.8 : -1;
	cfg.speed = sel & 0x40 ? 1.25 : -1;
	cfg.max_output_tokens = (int)(ms % 5000);
	snprintf(cfg.vad.type, sizeof(cfg.vad.type), "%s", vads[sel % 5]);
	cfg.vad.threshold = sel & 0x40 ? 0.5 : -1;
	cfg.vad.prefix_padding_ms = (int)(ms & 0x3ff) - 512;
	cfg.vad.silence_duration_ms = (int)ms - 1000;
	cfg.vad.create_response = (int)(ms >> 10 & 3) - 1;
	cfg.vad.interrupt_response = (int)(sel % 3) - 1;
	cfg.vad.idle_timeout_ms = (int)(ms >> 12) - 4;
	snprintf(cfg.vad.eagerness, sizeof(cfg.vad.eagerness), "%s",
	    sel & 0x02 ? "auto" : "");
	cfg.transcription_model = sel & 0x01 ? s2 : NULL;
	cfg.transcription_language = sel & 0x02 ? s1 : NULL;
	cfg.transcription_prompt = sel & 0x04 ? s2 : NULL;
	cfg.noise_reduction = sel & 0x20 ? s2 : NULL;
	cfg.tools_json = sel & 0x08 ? s2 : NULL;
	cfg.tool_choice = sel & 0x04 ? s2 : NULL;
	for (int d = OA_GA; d <= OA_BETA; d++) {
		rc = oa_build_session_update(&out, (enum oa_dialect)d, &cfg);
		if ((j = built(&out, before, rc)) != NULL) {
			FUZZ_ASSERT(ok1);
			v = json_object_get(j, "session");
			FUZZ_ASSERT(str_is(json_object_get(v, "instructions"),
			    s1));
			json_decref(j);
		}
	}
	rc = oa_build_response_cancel(&out);
	if ((j = built(&out, before, rc)) != NULL) {
		FUZZ_ASSERT(str_is(json_object_get(j, "type"),
		    "response.cancel"));
		json_decref(j);
	}
	buf_free(&out);
	free(s1);
	free(s2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_u8(&in);

	if (mode & 1)
		mode_build(&in);
	else
		mode_parse(in.p, in.n);
	return 0;
}
