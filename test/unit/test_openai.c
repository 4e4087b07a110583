/*
 * test_openai.c — OpenAI Realtime builders and parser, both dialects
 * (protocols.md §8.3, §8.4, §8.6, §8.7, §8.9, §8.10, §11).
 */
#include "test/unit/test.h"
#include "proto/openai.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

/* Helpers ------------------------------------------------------------- */

/* The one event in b, parsed back; the caller json_decref()s it. */
static json_t *
load_event(const struct buf *b)
{
	json_error_t jerr;
	json_t *j = json_loadb(buf_head(b), buf_pending(b), 0, &jerr);

	if (j == NULL)
		TEST_FAIL_("built event is not JSON: %s: %.*s", jerr.text,
		    (int)buf_pending(b), buf_head(b));
	ASSERT(json_is_object(j));
	return j;
}

/* A member by dotted path ("session.audio.input.format.type"); array
 * elements as "[n]" segments ("session.tools.[0].name"). */
static json_t *
jget(json_t *root, const char *path)
{
	char tmp[256], *seg, *save;
	json_t *v = root;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (seg = strtok_r(tmp, ".", &save); seg != NULL && v != NULL;
	    seg = strtok_r(NULL, ".", &save)) {
		if (seg[0] == '[')
			v = json_array_get(v, strtoul(seg + 1, NULL, 10));
		else
			v = json_object_get(v, seg);
	}
	return v;
}

#define EXPECT_STR(root, path, want) do {				\
	json_t *v_ = jget((root), (path));				\
	if (!json_is_string(v_))					\
		TEST_FAIL_("%s: not a string", (path));			\
	ASSERT_STR_EQ(json_string_value(v_), (want));			\
} while (0)
#define EXPECT_INT(root, path, want) do {				\
	json_t *v_ = jget((root), (path));				\
	if (!json_is_integer(v_))					\
		TEST_FAIL_("%s: not an integer", (path));		\
	ASSERT_EQ(json_integer_value(v_), (want));			\
} while (0)
#define EXPECT_REAL(root, path, want) do {				\
	json_t *v_ = jget((root), (path));				\
	if (!json_is_number(v_))					\
		TEST_FAIL_("%s: not a number", (path));			\
	if (fabs(json_number_value(v_) - (want)) > 1e-9)		\
		TEST_FAIL_("%s: %g vs %g", (path),			\
		    json_number_value(v_), (double)(want));		\
} while (0)
#define EXPECT_BOOL(root, path, want) do {				\
	json_t *v_ = jget((root), (path));				\
	if (!json_is_boolean(v_))					\
		TEST_FAIL_("%s: not a boolean", (path));		\
	ASSERT_EQ(json_is_true(v_), (want));				\
} while (0)
#define EXPECT_NULL(root, path) do {					\
	json_t *v_ = jget((root), (path));				\
	if (!json_is_null(v_))						\
		TEST_FAIL_("%s: not null", (path));			\
} while (0)
#define EXPECT_ABSENT(root, path) do {					\
	if (jget((root), (path)) != NULL)				\
		TEST_FAIL_("%s: present", (path));			\
} while (0)

/* The object at path has exactly the keys listed (NULL-terminated). */
static void
expect_keys(json_t *root, const char *path, ...)
{
	json_t *o = path[0] ? jget(root, path) : root;
	const char *k;
	size_t n = 0;
	va_list ap;

	if (!json_is_object(o))
		TEST_FAIL_("%s: not an object", path);
	va_start(ap, path);
	while ((k = va_arg(ap, const char *)) != NULL) {
		if (json_object_get(o, k) == NULL)
			TEST_FAIL_("%s: no key %s", path, k);
		n++;
	}
	va_end(ap);
	if (json_object_size(o) != n) {
		char *s = json_dumps(o, JSON_COMPACT);
		TEST_FAIL_("%s: %zu keys, want %zu: %s", path,
		    json_object_size(o), n, s);
	}
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode standard padded base64; returns the length or -1. */
static long
b64_decode(const char *s, size_t n, unsigned char *out)
{
	size_t i, o = 0;

	if (n % 4)
		return -1;
	for (i = 0; i < n; i += 4) {
		int a = b64val(s[i]), b = b64val(s[i + 1]);
		int c = s[i + 2] == '=' ? 0 : b64val(s[i + 2]);
		int d = s[i + 3] == '=' ? 0 : b64val(s[i + 3]);

		if (a < 0 || b < 0 || c < 0 || d < 0)
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		if (s[i + 2] != '=')
			out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
		if (s[i + 3] != '=')
			out[o++] = (unsigned char)((c & 3) << 6 | d);
	}
	return (long)o;
}

static const char tools_text[] =
    "[{\"type\":\"function\",\"name\":\"book_appointment\","
    "\"description\":\"Book a service visit.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"date\":"
    "{\"type\":\"string\"},\"time\":{\"type\":\"string\"}},"
    "\"required\":[\"date\",\"time\"]}},"
    "{\"type\":\"function\",\"name\":\"end_call\","
    "\"description\":\"Hang up.\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{}}}]";

/* Every field set (§8.3 example plus the rest). */
static void
cfg_full(struct oa_session_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->instructions = "You are a friendly receptionist for Acme Heating.";
	c->voice = "marin";
	c->temperature = 0.8;
	c->speed = 1.1;
	c->max_output_tokens = 4096;
	snprintf(c->vad.type, sizeof(c->vad.type), "server_vad");
	c->vad.threshold = 0.5;
	c->vad.prefix_padding_ms = 300;
	c->vad.silence_duration_ms = 500;
	c->vad.create_response = 1;
	c->vad.interrupt_response = 0;
	c->vad.idle_timeout_ms = 6000;
	c->transcription_model = "gpt-4o-mini-transcribe";
	c->transcription_language = "en";
	c->transcription_prompt = "Heating, boiler, radiator.";
	c->noise_reduction = "near_field";
	c->tools_json = tools_text;
	c->tool_choice = "auto";
}

/* Only what is required; everything else unset. */
static void
cfg_min(struct oa_session_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->instructions = "Be brief.";
	c->temperature = -1;
	c->speed = -1;
	c->vad.threshold = -1;
	c->vad.prefix_padding_ms = -1;
	c->vad.silence_duration_ms = -1;
	c->vad.create_response = -1;
	c->vad.interrupt_response = -1;
	c->vad.idle_timeout_ms = -1;
}

static json_t *
build_session(enum oa_dialect d, const struct oa_session_cfg *c)
{
	struct buf b;
	json_t *j;

	buf_init(&b, 0);
	ASSERT_EQ(oa_build_session_update(&b, d, c), 0);
	j = load_event(&b);
	buf_free(&b);
	return j;
}

/* session.update, GA (§8.3) ------------------------------------------ */

TEST(openai_ga_session_full)
{
	struct oa_session_cfg c;
	json_t *j;

	cfg_full(&c);
	j = build_session(OA_GA, &c);
	expect_keys(j, "", "type", "session", NULL);
	EXPECT_STR(j, "type", "session.update");
	expect_keys(j, "session", "type", "output_modalities", "instructions",
	    "audio", "tools", "tool_choice", "max_output_tokens", NULL);
	EXPECT_STR(j, "session.type", "realtime");
	ASSERT_EQ(json_array_size(jget(j, "session.output_modalities")), 1);
	EXPECT_STR(j, "session.output_modalities.[0]", "audio");
	EXPECT_STR(j, "session.instructions", c.instructions);
	EXPECT_ABSENT(j, "session.temperature");
	EXPECT_ABSENT(j, "session.model");
	EXPECT_ABSENT(j, "session.voice");

	expect_keys(j, "session.audio", "input", "output", NULL);
	expect_keys(j, "session.audio.input", "format", "noise_reduction",
	    "transcription", "turn_detection", NULL);
	expect_keys(j, "session.audio.input.format", "type", NULL);
	EXPECT_STR(j, "session.audio.input.format.type", "audio/pcmu");
	expect_keys(j, "session.audio.input.noise_reduction", "type", NULL);
	EXPECT_STR(j, "session.audio.input.noise_reduction.type", "near_field");
	expect_keys(j, "session.audio.input.transcription", "model",
	    "language", "prompt", NULL);
	EXPECT_STR(j, "session.audio.input.transcription.model",
	    "gpt-4o-mini-transcribe");
	EXPECT_STR(j, "session.audio.input.transcription.language", "en");
	EXPECT_STR(j, "session.audio.input.transcription.prompt",
	    "Heating, boiler, radiator.");
	expect_keys(j, "session.audio.input.turn_detection", "type",
	    "threshold", "prefix_padding_ms", "silence_duration_ms",
	    "create_response", "interrupt_response", "idle_timeout_ms", NULL);
	EXPECT_STR(j, "session.audio.input.turn_detection.type", "server_vad");
	EXPECT_REAL(j, "session.audio.input.turn_detection.threshold", 0.5);
	EXPECT_INT(j, "session.audio.input.turn_detection.prefix_padding_ms",
	    300);
	EXPECT_INT(j, "session.audio.input.turn_detection.silence_duration_ms",
	    500);
	EXPECT_BOOL(j, "session.audio.input.turn_detection.create_response", 1);
	EXPECT_BOOL(j, "session.audio.input.turn_detection.interrupt_response",
	    0);
	EXPECT_INT(j, "session.audio.input.turn_detection.idle_timeout_ms",
	    6000);

	expect_keys(j, "session.audio.output", "format", "voice", "speed",
	    NULL);
	EXPECT_STR(j, "session.audio.output.format.type", "audio/pcmu");
	EXPECT_STR(j, "session.audio.output.voice", "marin");
	EXPECT_REAL(j, "session.audio.output.speed", 1.1);

	ASSERT_EQ(json_array_size(jget(j, "session.tools")), 2);
	expect_keys(j, "session.tools.[0]", "type", "name", "description",
	    "parameters", NULL);
	EXPECT_STR(j, "session.tools.[0].type", "function");
	EXPECT_STR(j, "session.tools.[0].name", "book_appointment");
	EXPECT_STR(j, "session.tools.[0].description", "Book a service visit.");
	EXPECT_STR(j, "session.tools.[0].parameters.type", "object");
	EXPECT_STR(j, "session.tools.[0].parameters.required.[1]", "time");
	EXPECT_STR(j, "session.tools.[1].name", "end_call");
	EXPECT_STR(j, "session.tool_choice", "auto");
	EXPECT_INT(j, "session.max_output_tokens", 4096);
	json_decref(j);
}

TEST(openai_ga_session_minimal)
{
	struct oa_session_cfg c;
	json_t *j;

	cfg_min(&c);
	j = build_session(OA_GA, &c);
	expect_keys(j, "session", "type", "output_modalities", "instructions",
	    "audio", "max_output_tokens", NULL);
	EXPECT_STR(j, "session.type", "realtime");
	EXPECT_STR(j, "session.max_output_tokens", "inf");
	/* vad.type "": the server's default is left alone */
	expect_keys(j, "session.audio.input", "format", NULL);
	expect_keys(j, "session.audio.output", "format", NULL);
	EXPECT_STR(j, "session.audio.output.format.type", "audio/pcmu");
	json_decref(j);
}

TEST(openai_ga_session_temperature_never_sent)
{
	struct oa_session_cfg c;
	json_t *j;
	char *s;

	cfg_full(&c);
	c.temperature = 1.2;
	j = build_session(OA_GA, &c);
	s = json_dumps(j, JSON_COMPACT);
	ASSERT_NULL(strstr(s, "temperature"));
	free(s);
	json_decref(j);
}

TEST(openai_ga_session_vad_shapes)
{
	struct oa_session_cfg c;
	json_t *j;

	/* "none": turn_detection null, manual turns */
	cfg_full(&c);
	snprintf(c.vad.type, sizeof(c.vad.type), "none");
	j = build_session(OA_GA, &c);
	EXPECT_NULL(j, "session.audio.input.turn_detection");
	json_decref(j);

	/* semantic_vad: eagerness, flags; none of server_vad's fields */
	cfg_full(&c);
	snprintf(c.vad.type, sizeof(c.vad.type), "semantic_vad");
	snprintf(c.vad.eagerness, sizeof(c.vad.eagerness), "medium");
	j = build_session(OA_GA, &c);
	expect_keys(j, "session.audio.input.turn_detection", "type",
	    "eagerness", "create_response", "interrupt_response", NULL);
	EXPECT_STR(j, "session.audio.input.turn_detection.type",
	    "semantic_vad");
	EXPECT_STR(j, "session.audio.input.turn_detection.eagerness", "medium");
	json_decref(j);

	/* server_vad ignores eagerness; unset fields stay out */
	cfg_min(&c);
	snprintf(c.vad.type, sizeof(c.vad.type), "server_vad");
	snprintf(c.vad.eagerness, sizeof(c.vad.eagerness), "high");
	j = build_session(OA_GA, &c);
	expect_keys(j, "session.audio.input.turn_detection", "type", NULL);
	json_decref(j);
}

TEST(openai_session_tool_choice_function)
{
	struct oa_session_cfg c;
	json_t *j;
	int d;

	for (d = OA_GA; d <= OA_BETA; d++) {
		cfg_full(&c);
		c.tool_choice = "end_call";
		j = build_session((enum oa_dialect)d, &c);
		expect_keys(j, "session.tool_choice", "type", "name", NULL);
		EXPECT_STR(j, "session.tool_choice.type", "function");
		EXPECT_STR(j, "session.tool_choice.name", "end_call");
		json_decref(j);

		c.tool_choice = "required";
		j = build_session((enum oa_dialect)d, &c);
		EXPECT_STR(j, "session.tool_choice", "required");
		json_decref(j);
	}
}

/* session.update, beta (§8.4) ---------------------------------------- */

TEST(openai_beta_session_full)
{
	struct oa_session_cfg c;
	json_t *j;

	cfg_full(&c);
	j = build_session(OA_BETA, &c);
	expect_keys(j, "", "type", "session", NULL);
	EXPECT_STR(j, "type", "session.update");
	expect_keys(j, "session", "modalities", "instructions", "voice",
	    "input_audio_format", "output_audio_format",
	    "input_audio_transcription", "input_audio_noise_reduction",
	    "turn_detection", "tools", "tool_choice", "temperature",
	    "max_response_output_tokens", "speed", NULL);
	EXPECT_ABSENT(j, "session.type");
	EXPECT_ABSENT(j, "session.audio");
	EXPECT_ABSENT(j, "session.max_output_tokens");
	ASSERT_EQ(json_array_size(jget(j, "session.modalities")), 2);
	EXPECT_STR(j, "session.modalities.[0]", "text");
	EXPECT_STR(j, "session.modalities.[1]", "audio");
	EXPECT_STR(j, "session.instructions", c.instructions);
	EXPECT_STR(j, "session.voice", "marin");
	EXPECT_STR(j, "session.input_audio_format", "g711_ulaw");
	EXPECT_STR(j, "session.output_audio_format", "g711_ulaw");
	expect_keys(j, "session.input_audio_transcription", "model",
	    "language", "prompt", NULL);
	EXPECT_STR(j, "session.input_audio_transcription.model",
	    "gpt-4o-mini-transcribe");
	EXPECT_STR(j, "session.input_audio_noise_reduction.type",
	    "near_field");
	/* no idle_timeout_ms in beta */
	expect_keys(j, "session.turn_detection", "type", "threshold",
	    "prefix_padding_ms", "silence_duration_ms", "create_response",
	    "interrupt_response", NULL);
	EXPECT_STR(j, "session.turn_detection.type", "server_vad");
	EXPECT_REAL(j, "session.turn_detection.threshold", 0.5);
	EXPECT_INT(j, "session.turn_detection.prefix_padding_ms", 300);
	EXPECT_INT(j, "session.turn_detection.silence_duration_ms", 500);
	EXPECT_STR(j, "session.tools.[1].name", "end_call");
	EXPECT_STR(j, "session.tool_choice", "auto");
	EXPECT_REAL(j, "session.temperature", 0.8);
	EXPECT_INT(j, "session.max_response_output_tokens", 4096);
	EXPECT_REAL(j, "session.speed", 1.1);
	json_decref(j);
}

TEST(openai_beta_session_minimal)
{
	struct oa_session_cfg c;
	json_t *j;

	cfg_min(&c);
	j = build_session(OA_BETA, &c);
	expect_keys(j, "session", "modalities", "instructions",
	    "input_audio_format", "output_audio_format",
	    "max_response_output_tokens", NULL);
	EXPECT_STR(j, "session.max_response_output_tokens", "inf");
	json_decref(j);

	snprintf(c.vad.type, sizeof(c.vad.type), "none");
	j = build_session(OA_BETA, &c);
	EXPECT_NULL(j, "session.turn_detection");
	EXPECT_ABSENT(j, "session.type");
	json_decref(j);
}

/* The same configuration in both dialects: the §11 checklist items. */
TEST(openai_session_dialect_switches)
{
	struct oa_session_cfg c;
	json_t *ga, *beta;

	cfg_full(&c);
	c.max_output_tokens = 0;
	ga = build_session(OA_GA, &c);
	beta = build_session(OA_BETA, &c);
	EXPECT_STR(ga, "session.type", "realtime");
	EXPECT_ABSENT(beta, "session.type");
	EXPECT_ABSENT(ga, "session.temperature");
	EXPECT_REAL(beta, "session.temperature", 0.8);
	EXPECT_STR(ga, "session.audio.input.format.type", "audio/pcmu");
	EXPECT_STR(beta, "session.input_audio_format", "g711_ulaw");
	EXPECT_STR(ga, "session.max_output_tokens", "inf");
	EXPECT_ABSENT(ga, "session.max_response_output_tokens");
	EXPECT_STR(beta, "session.max_response_output_tokens", "inf");
	EXPECT_ABSENT(beta, "session.max_output_tokens");
	EXPECT_ABSENT(ga, "session.modalities");
	EXPECT_ABSENT(beta, "session.output_modalities");
	json_decref(ga);
	json_decref(beta);
}

TEST(openai_session_rejects_bad_config)
{
	struct oa_session_cfg c;
	struct buf b;
	int d;

	buf_init(&b, 0);
	ASSERT_EQ(buf_append(&b, "prefix", 6), 0);
	for (d = OA_GA; d <= OA_BETA; d++) {
		enum oa_dialect dl = (enum oa_dialect)d;

		cfg_full(&c);
		c.tools_json = "[{\"type\":\"function\",";
		ASSERT_EQ(oa_build_session_update(&b, dl, &c), -1);
		c.tools_json = "{\"type\":\"function\"}";
		ASSERT_EQ(oa_build_session_update(&b, dl, &c), -1);
		c.tools_json = "[1,2]";
		ASSERT_EQ(oa_build_session_update(&b, dl, &c), -1);

		cfg_full(&c);
		c.instructions = NULL;
		ASSERT_EQ(oa_build_session_update(&b, dl, &c), -1);

		cfg_full(&c);
		c.instructions = "bad \xff\xfe utf-8";
		ASSERT_EQ(oa_build_session_update(&b, dl, &c), -1);

		cfg_full(&c);
		snprintf(c.vad.type, sizeof(c.vad.type), "loud_vad");
		ASSERT_EQ(oa_build_session_update(&b, dl, &c), -1);

		cfg_full(&c);
		c.max_output_tokens = -5;
		ASSERT_EQ(oa_build_session_update(&b, dl, &c), -1);

		cfg_full(&c);
		c.tool_choice = "";
		ASSERT_EQ(oa_build_session_update(&b, dl, &c), -1);
	}
	ASSERT_EQ(oa_build_session_update(&b, OA_GA, NULL), -1);
	ASSERT_EQ(buf_pending(&b), 6);
	ASSERT_MEM_EQ(buf_head(&b), "prefix", 6);
	buf_free(&b);
}

/* The small client events (§8.6) ------------------------------------- */

static void
expect_built(struct buf *b, const char *want)
{
	size_t n = strlen(want);

	if (buf_pending(b) != n || memcmp(buf_head(b), want, n) != 0)
		TEST_FAIL_("built:\n    %.*s\n want:\n    %s",
		    (int)buf_pending(b), buf_head(b), want);
	buf_consume(b, buf_pending(b));
}

TEST(openai_build_small_events)
{
	struct buf b;
	json_t *j;

	buf_init(&b, 0);
	ASSERT_EQ(oa_build_response_cancel(&b), 0);
	expect_built(&b, "{\"type\":\"response.cancel\"}");

	ASSERT_EQ(oa_build_truncate(&b, "item_Cx9a8b7c6d5e4f3g2h1i0", 0, 1840),
	    0);
	j = load_event(&b);
	expect_keys(j, "", "type", "item_id", "content_index", "audio_end_ms",
	    NULL);
	EXPECT_STR(j, "type", "conversation.item.truncate");
	EXPECT_STR(j, "item_id", "item_Cx9a8b7c6d5e4f3g2h1i0");
	EXPECT_INT(j, "content_index", 0);
	EXPECT_INT(j, "audio_end_ms", 1840);
	json_decref(j);
	expect_built(&b, "{\"type\":\"conversation.item.truncate\","
	    "\"item_id\":\"item_Cx9a8b7c6d5e4f3g2h1i0\",\"content_index\":0,"
	    "\"audio_end_ms\":1840}");

	ASSERT_EQ(oa_build_function_output(&b, "call_Ab12Cd34",
	    "{\"booked\":true,\"slot\":\"2026-09-03T10:00\"}"), 0);
	j = load_event(&b);
	expect_keys(j, "", "type", "item", NULL);
	EXPECT_STR(j, "type", "conversation.item.create");
	expect_keys(j, "item", "type", "call_id", "output", NULL);
	EXPECT_STR(j, "item.type", "function_call_output");
	EXPECT_STR(j, "item.call_id", "call_Ab12Cd34");
	EXPECT_STR(j, "item.output",
	    "{\"booked\":true,\"slot\":\"2026-09-03T10:00\"}");
	json_decref(j);
	buf_consume(&b, buf_pending(&b));

	ASSERT_EQ(oa_build_text_item(&b, "Greet the caller \"now\".\n", 0), 0);
	j = load_event(&b);
	expect_keys(j, "", "type", "item", NULL);
	EXPECT_STR(j, "type", "conversation.item.create");
	expect_keys(j, "item", "type", "role", "content", NULL);
	EXPECT_STR(j, "item.type", "message");
	EXPECT_STR(j, "item.role", "user");
	ASSERT_EQ(json_array_size(jget(j, "item.content")), 1);
	expect_keys(j, "item.content.[0]", "type", "text", NULL);
	EXPECT_STR(j, "item.content.[0].type", "input_text");
	EXPECT_STR(j, "item.content.[0].text", "Greet the caller \"now\".\n");
	json_decref(j);
	buf_consume(&b, buf_pending(&b));

	ASSERT_EQ(oa_build_text_item(&b, "The caller's name is Ana.", 1), 0);
	j = load_event(&b);
	EXPECT_STR(j, "item.role", "system");
	EXPECT_STR(j, "item.content.[0].type", "input_text");
	json_decref(j);
	buf_free(&b);
}

TEST(openai_build_response_create)
{
	struct buf b;
	json_t *j;
	int d;

	buf_init(&b, 0);
	for (d = OA_GA; d <= OA_BETA; d++) {
		enum oa_dialect dl = (enum oa_dialect)d;

		ASSERT_EQ(oa_build_response_create(&b, dl, NULL, 0), 0);
		expect_built(&b, "{\"type\":\"response.create\"}");

		ASSERT_EQ(oa_build_response_create(&b, dl,
		    "Say goodbye politely; the practice time is over.", 1), 0);
		j = load_event(&b);
		expect_keys(j, "", "type", "response", NULL);
		expect_keys(j, "response", "instructions", "tool_choice", NULL);
		EXPECT_STR(j, "response.instructions",
		    "Say goodbye politely; the practice time is over.");
		EXPECT_STR(j, "response.tool_choice", "none");
		json_decref(j);
		buf_consume(&b, buf_pending(&b));

		ASSERT_EQ(oa_build_response_create(&b, dl, "Greet.", 0), 0);
		expect_built(&b, "{\"type\":\"response.create\","
		    "\"response\":{\"instructions\":\"Greet.\"}}");

		ASSERT_EQ(oa_build_response_create(&b, dl, NULL, 1), 0);
		expect_built(&b, "{\"type\":\"response.create\","
		    "\"response\":{\"tool_choice\":\"none\"}}");
	}
	buf_free(&b);
}

TEST(openai_build_small_events_reject)
{
	struct buf b;

	buf_init(&b, 0);
	ASSERT_EQ(oa_build_truncate(&b, NULL, 0, 10), -1);
	ASSERT_EQ(oa_build_truncate(&b, "", 0, 10), -1);
	ASSERT_EQ(oa_build_truncate(&b, "item_1", -1, 10), -1);
	ASSERT_EQ(oa_build_truncate(&b, "item_1", 0, UINT64_MAX), -1);
	ASSERT_EQ(oa_build_function_output(&b, NULL, "x"), -1);
	ASSERT_EQ(oa_build_function_output(&b, "call_1", NULL), -1);
	ASSERT_EQ(oa_build_function_output(&b, "call_1", "\xc3("), -1);
	ASSERT_EQ(oa_build_text_item(&b, NULL, 0), -1);
	ASSERT_EQ(oa_build_text_item(&b, "\x80", 0), -1);
	ASSERT_EQ(oa_build_response_create(&b, OA_GA, "\xff", 0), -1);
	ASSERT_EQ(buf_pending(&b), 0);
	buf_free(&b);
}

/* input_audio_buffer.append: the hot path ------------------------------ */

TEST(openai_append_copies_payload)
{
	static const char pl[] = "//7+/v7+/39/f3/+/n9/AAECAwQFBgcICQoLDA0ODw==";
	struct buf b;
	json_t *j;
	char want[256];

	buf_init(&b, 0);
	ASSERT_EQ(buf_append(&b, "X", 1), 0);
	ASSERT_EQ(oa_build_append(&b, pl, strlen(pl)), 0);
	snprintf(want, sizeof(want), "X{\"type\":\"input_audio_buffer.append\","
	    "\"audio\":\"%s\"}", pl);
	ASSERT_EQ(buf_pending(&b), strlen(want));
	ASSERT_MEM_EQ(buf_head(&b), want, strlen(want));
	buf_consume(&b, 1);
	j = load_event(&b);
	expect_keys(j, "", "type", "audio", NULL);
	EXPECT_STR(j, "audio", pl);
	json_decref(j);
	buf_consume(&b, buf_pending(&b));

	/* only the first len bytes are taken */
	ASSERT_EQ(oa_build_append(&b, "AAAAjunk", 4), 0);
	expect_built(&b, "{\"type\":\"input_audio_buffer.append\","
	    "\"audio\":\"AAAA\"}");
	ASSERT_EQ(oa_build_append(&b, NULL, 0), 0);
	expect_built(&b, "{\"type\":\"input_audio_buffer.append\","
	    "\"audio\":\"\"}");

	/* not base64: could break the JSON, so refused */
	ASSERT_EQ(oa_build_append(&b, "AA\"A", 4), -1);
	ASSERT_EQ(oa_build_append(&b, "AAA", 3), -1);
	ASSERT_EQ(oa_build_append(&b, "AA\\/", 4), -1);
	ASSERT_EQ(oa_build_append(&b, NULL, 4), -1);
	ASSERT_EQ(buf_pending(&b), 0);

	/* the relay's variant, for payloads already parsed: the same bytes */
	ASSERT_EQ(oa_build_append_parsed(&b, pl, strlen(pl)), 0);
	ASSERT_EQ(buf_pending(&b), strlen(want) - 1);
	ASSERT_MEM_EQ(buf_head(&b), want + 1, strlen(want) - 1);
	buf_consume(&b, buf_pending(&b));
	ASSERT_EQ(oa_build_append_parsed(&b, NULL, 4), -1);
	buf_free(&b);
}

/* A 20 ms Twilio frame (160 bytes) forwarded many times: the buffer
 * holds each one, in order, byte for byte. */
TEST(openai_append_many_frames)
{
	char pl[216 + 1];
	struct buf b;
	size_t i, each;
	int k;

	for (i = 0; i < 216; i++)
		pl[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789+/"[i % 64];
	pl[216] = '\0';
	buf_init(&b, 0);
	for (k = 0; k < 500; k++)
		ASSERT_EQ(oa_build_append(&b, pl, 216), 0);
	each = strlen("{\"type\":\"input_audio_buffer.append\",\"audio\":\"\"}")
	    + 216;
	ASSERT_EQ(buf_pending(&b), 500 * each);
	for (k = 0; k < 500; k++)
		ASSERT_MEM_EQ(buf_head(&b) + k * each + each - 218, pl, 216);
	buf_free(&b);
}

TEST(openai_append_silence)
{
	static const unsigned cases[] = { 0, 1, 2, 3, 20, 37, 1000, 10000 };
	static unsigned char bytes[80000 + 3];
	struct buf b;
	size_t i, k;
	json_t *j, *a;
	long n;

	buf_init(&b, 0);
	for (i = 0; i < NCASES(cases); i++) {
		ASSERT_EQ(oa_build_append_silence(&b, cases[i]), 0);
		j = load_event(&b);
		expect_keys(j, "", "type", "audio", NULL);
		EXPECT_STR(j, "type", "input_audio_buffer.append");
		a = json_object_get(j, "audio");
		n = b64_decode(json_string_value(a), json_string_length(a),
		    bytes);
		ASSERT_EQ(n, (long)cases[i] * 8);
		for (k = 0; k < (size_t)n; k++)
			if (bytes[k] != 0xff)
				TEST_FAIL_("%u ms: byte %zu is %02x", cases[i],
				    k, bytes[k]);
		json_decref(j);
		buf_consume(&b, buf_pending(&b));
	}
	ASSERT_EQ(oa_build_append_silence(&b, 10001), -1);
	ASSERT_EQ(oa_build_append_silence(&b, UINT32_MAX), -1);
	ASSERT_EQ(buf_pending(&b), 0);

	/* 20 ms is what one Twilio frame holds */
	ASSERT_EQ(oa_build_append_silence(&b, 20), 0);
	ASSERT_NOT_NULL(memmem(buf_head(&b), buf_pending(&b),
	    "\"audio\":\"//////", 15));
	buf_free(&b);
}

/* Every builder leaves a capped buffer unchanged when the event does not
 * fit, and succeeds when exactly enough room is left. */
TEST(openai_builders_leave_full_buffer_unchanged)
{
	struct oa_session_cfg c;
	struct buf b, probe;
	size_t need, room, step, k;
	int d, rc;

	cfg_full(&c);
	for (k = 0; k < 12; k++) {
		for (d = OA_GA; d <= OA_BETA; d++) {
			enum oa_dialect dl = (enum oa_dialect)d;

#define RUN(bp) (							\
	k == 0 ? oa_build_session_update((bp), dl, &c) :		\
	k == 1 ? oa_build_append((bp), "//7+/v7+", 8) :			\
	k == 2 ? oa_build_append_silence((bp), 20) :			\
	k == 3 ? oa_build_append_silence((bp), 10000) :			\
	k == 4 ? oa_build_truncate((bp), "item_1", 0, 1840) :		\
	k == 5 ? oa_build_response_create((bp), dl, "Say bye.", 1) :	\
	k == 6 ? oa_build_response_create((bp), dl, NULL, 0) :		\
	k == 7 ? oa_build_response_cancel((bp)) :			\
	k == 8 ? oa_build_function_output((bp), "call_1", "{}") :	\
	k == 9 ? oa_build_text_item((bp), "hello", 0) :			\
	k == 10 ? oa_build_text_item((bp), "hello", 1) :		\
	oa_build_append((bp), "", 0))

			buf_init(&probe, 0);
			ASSERT_EQ(RUN(&probe), 0);
			need = buf_pending(&probe);
			buf_free(&probe);

			/* "abcdef" is already queued: the cap counts it */
			step = need > 64 ? need / 16 : 1;
			for (room = 0; room <= need; room += step) {
				buf_init(&b, 6 + room);
				ASSERT_EQ(buf_append(&b, "abcdef", 6), 0);
				rc = RUN(&b);
				if (room < need) {
					ASSERT_EQ(rc, -1);
					ASSERT_EQ(buf_pending(&b), 6);
					ASSERT_MEM_EQ(buf_head(&b), "abcdef", 6);
				} else {
					ASSERT_EQ(rc, 0);
					ASSERT_EQ(buf_pending(&b), 6 + need);
				}
				buf_free(&b);
			}
			/* the steps may have jumped over need - 1 */
			buf_init(&b, 6 + need - 1);
			ASSERT_EQ(buf_append(&b, "abcdef", 6), 0);
			ASSERT_EQ(RUN(&b), -1);
			ASSERT_EQ(buf_pending(&b), 6);
			buf_free(&b);
			buf_init(&b, 6 + need);
			ASSERT_EQ(buf_append(&b, "abcdef", 6), 0);
			ASSERT_EQ(RUN(&b), 0);
			ASSERT_EQ(buf_pending(&b), 6 + need);
			buf_free(&b);
#undef RUN
		}
	}
}

/* Parser: every server event of §8.7, both dialects ------------------ */

static int
parse(const char *s, struct oa_msg *m)
{
	return oa_parse(s, strlen(s), m);
}

/*
 * Sample server events, one a line in EVENTS_FILE: the event each must
 * parse as (its GA name, or "unknown"), a tab, the JSON.  Loaded once per
 * test process and kept until it exits.
 */
#define EVENTS_FILE "test/data/openai/server-events.tsv"

static struct {
	char	*want;
	char	*json;
} samples[128];
static size_t nsamples;

static void
load_samples(void)
{
	char *line = NULL, *tab;
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	if (nsamples > 0)
		return;
	if ((f = fopen(EVENTS_FILE, "r")) == NULL)
		TEST_FAIL_("cannot open %s (run from the source tree)",
		    EVENTS_FILE);
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if ((tab = strchr(line, '\t')) == NULL)
			TEST_FAIL_("%s: no tab in: %s", EVENTS_FILE, line);
		*tab = '\0';
		ASSERT_LT(nsamples, NCASES(samples));
		samples[nsamples].want = strdup(line);
		samples[nsamples].json = strdup(tab + 1);
		ASSERT_NOT_NULL(samples[nsamples].json);
		nsamples++;
	}
	free(line);
	fclose(f);
	ASSERT_GT(nsamples, 0);
}

static enum oa_event
event_by_name(const char *name)
{
	int e;

	for (e = 0; e < OA_EV__COUNT; e++)
		if (strcmp(oa_event_name((enum oa_event)e), name) == 0)
			return (enum oa_event)e;
	TEST_FAIL_("%s: no such event", name);
}

TEST(openai_parse_every_event_both_dialects)
{
	struct oa_msg m = {0};
	int seen[OA_EV__COUNT] = {0};
	size_t i;
	int e;

	load_samples();
	for (i = 0; i < nsamples; i++) {
		enum oa_event want = event_by_name(samples[i].want);
		int rc = parse(samples[i].json, &m);
		json_t *j = json_loads(samples[i].json, 0, NULL);

		if (rc != OA_OK || m.ev != want)
			TEST_FAIL_("sample %zu: rc %d (%s), ev %s, want %s", i,
			    rc, oa_strerror(rc), oa_event_name(m.ev),
			    samples[i].want);
		ASSERT_NOT_NULL(j);
		ASSERT_STR_EQ(m.type,
		    json_string_value(json_object_get(j, "type")));
		if (want != OA_EV_UNKNOWN)
			ASSERT_STR_EQ(m.event_id, json_string_value(
			    json_object_get(j, "event_id")));
		ASSERT_NOT_NULL(m.text);
		ASSERT_EQ(strlen(m.text), m.text_len);
		json_decref(j);
		seen[m.ev] = 1;
	}
	for (e = 1; e < OA_EV__COUNT; e++)
		if (!seen[e])
			TEST_FAIL_("no sample for %s",
			    oa_event_name((enum oa_event)e));
	oa_msg_free(&m);
}

static void
parse_sample(const char *type_prefix, size_t nth, struct oa_msg *m)
{
	size_t i, k = 0;
	char pat[128];

	load_samples();
	snprintf(pat, sizeof(pat), "{\"type\":\"%s\"", type_prefix);
	for (i = 0; i < nsamples; i++)
		if (strncmp(samples[i].json, pat, strlen(pat)) == 0 &&
		    k++ == nth) {
			ASSERT_EQ(parse(samples[i].json, m), OA_OK);
			return;
		}
	TEST_FAIL_("no sample %zu for %s", nth, type_prefix);
}

TEST(openai_parse_session_fields)
{
	struct oa_msg m = {0};

	/* GA: audio.input.turn_detection */
	parse_sample("session.created", 0, &m);
	ASSERT_EQ(m.ev, OA_EV_SESSION_CREATED);
	ASSERT_STR_EQ(m.session_id, "sess_C9G5QPteg4UIbotdKLoYQ");
	ASSERT_UEQ(m.expires_at, 1756324625);
	ASSERT_EQ(m.interrupt_response, 1);
	/* beta: flat turn_detection */
	parse_sample("session.created", 1, &m);
	ASSERT_STR_EQ(m.session_id, "sess_001");
	ASSERT_UEQ(m.expires_at, 1734000000);
	ASSERT_EQ(m.interrupt_response, 0);
	/* GA, turn_detection null: nothing interrupts */
	parse_sample("session.updated", 0, &m);
	ASSERT_EQ(m.ev, OA_EV_SESSION_UPDATED);
	ASSERT_STR_EQ(m.session_id, "sess_2");
	ASSERT_UEQ(m.expires_at, 0);
	ASSERT_EQ(m.interrupt_response, 0);
	/* beta, flag left out: the default, true */
	parse_sample("session.updated", 1, &m);
	ASSERT_EQ(m.interrupt_response, 1);
	/* no turn detection in the event at all */
	ASSERT_EQ(parse("{\"type\":\"session.updated\",\"session\":"
	    "{\"id\":\"sess_4\"}}", &m), OA_OK);
	ASSERT_EQ(m.interrupt_response, -1);
	ASSERT_EQ(parse("{\"type\":\"session.updated\",\"session\":"
	    "{\"audio\":{\"output\":{}}}}", &m), OA_OK);
	ASSERT_EQ(m.interrupt_response, -1);
	/* other events say nothing about it */
	parse_sample("input_audio_buffer.speech_started", 0, &m);
	ASSERT_EQ(m.interrupt_response, -1);
	ASSERT_STR_EQ(m.session_id, "");
	oa_msg_free(&m);
}

TEST(openai_parse_input_buffer_fields)
{
	struct oa_msg m = {0};

	parse_sample("input_audio_buffer.speech_started", 0, &m);
	ASSERT_UEQ(m.audio_start_ms, 1000);
	ASSERT_STR_EQ(m.item_id, "item_003");
	parse_sample("input_audio_buffer.speech_stopped", 0, &m);
	ASSERT_UEQ(m.audio_end_ms, 2000);
	ASSERT_UEQ(m.audio_start_ms, 0);
	ASSERT_STR_EQ(m.item_id, "item_003");
	parse_sample("input_audio_buffer.committed", 0, &m);
	ASSERT_STR_EQ(m.item_id, "item_003");
	ASSERT_STR_EQ(m.previous_item_id, "item_002");
	parse_sample("input_audio_buffer.timeout_triggered", 0, &m);
	ASSERT_UEQ(m.audio_start_ms, 13216);
	ASSERT_UEQ(m.audio_end_ms, 19232);
	ASSERT_STR_EQ(m.item_id, "item_004");
	parse_sample("conversation.item.truncated", 0, &m);
	ASSERT_STR_EQ(m.item_id, "item_004");
	ASSERT_EQ(m.content_index, 0);
	ASSERT_UEQ(m.audio_end_ms, 1500);
	parse_sample("conversation.item.deleted", 0, &m);
	ASSERT_STR_EQ(m.item_id, "item_004");
	oa_msg_free(&m);
}

TEST(openai_parse_item_fields)
{
	struct oa_msg m = {0};
	int k;

	for (k = 0; k < 2; k++) {
		parse_sample(k == 0 ? "conversation.item.added" :
		    "conversation.item.created", 0, &m);
		ASSERT_EQ(m.ev, OA_EV_ITEM_ADDED);
		ASSERT_STR_EQ(m.item_id, "item_003");
		ASSERT_STR_EQ(m.item_type, "message");
		ASSERT_STR_EQ(m.item_role, "user");
		ASSERT_STR_EQ(m.previous_item_id, k == 0 ? "" : "item_002");
	}
	parse_sample("conversation.item.done", 0, &m);
	ASSERT_EQ(m.ev, OA_EV_ITEM_DONE);
	ASSERT_STR_EQ(m.item_id, "item_004");
	ASSERT_STR_EQ(m.item_role, "assistant");

	parse_sample("response.output_item.added", 0, &m);
	ASSERT_EQ(m.ev, OA_EV_OUTPUT_ITEM_ADDED);
	ASSERT_STR_EQ(m.response_id, "resp_001");
	ASSERT_EQ(m.output_index, 0);
	ASSERT_STR_EQ(m.item_id, "item_005");
	ASSERT_STR_EQ(m.item_type, "message");
	ASSERT_STR_EQ(m.item_role, "assistant");
	ASSERT_STR_EQ(m.text, "");

	/* a function call: name, call_id and arguments from the item */
	parse_sample("response.output_item.done", 0, &m);
	ASSERT_EQ(m.ev, OA_EV_OUTPUT_ITEM_DONE);
	ASSERT_EQ(m.output_index, 1);
	ASSERT_STR_EQ(m.item_id, "item_006");
	ASSERT_STR_EQ(m.item_type, "function_call");
	ASSERT_STR_EQ(m.item_role, "");
	ASSERT_STR_EQ(m.name, "book_appointment");
	ASSERT_STR_EQ(m.call_id, "call_Ab12Cd34");
	ASSERT_STR_EQ(m.text, "{\"date\":\"2026-09-03\"}");
	ASSERT_EQ(m.text_len, strlen(m.text));

	parse_sample("response.content_part.added", 1, &m);
	ASSERT_EQ(m.ev, OA_EV_CONTENT_PART_ADDED);
	ASSERT_STR_EQ(m.response_id, "resp_001");
	ASSERT_STR_EQ(m.item_id, "item_005");
	ASSERT_EQ(m.content_index, 0);
	oa_msg_free(&m);
}

TEST(openai_parse_text_fields)
{
	static const struct {
		const char	*type;
		size_t		 nth;
		const char	*text;
	} cases[] = {
		{ "conversation.item.input_audio_transcription.delta", 0, "Hello," },
		{ "conversation.item.input_audio_transcription.completed", 0,
		  "Hello, how are you?" },
		{ "response.output_audio_transcript.delta", 0, "Sure, " },
		{ "response.audio_transcript.delta", 0, "Sure, " },
		{ "response.output_audio_transcript.done", 0,
		  "Sure, what day works for you?" },
		{ "response.audio_transcript.done", 0,
		  "Sure, what day works for you?" },
		{ "response.output_text.delta", 0, "Hel" },
		{ "response.text.delta", 0, "Hel" },
		{ "response.output_text.done", 0, "Hello." },
		{ "response.text.done", 0, "Hello." },
		{ "response.function_call_arguments.delta", 0, "{\"da" },
		{ "response.function_call_arguments.done", 0,
		  "{\"date\":\"2026-09-03\",\"time\":\"10:00\"}" },
	};
	struct oa_msg m = {0};
	size_t i;

	for (i = 0; i < NCASES(cases); i++) {
		parse_sample(cases[i].type, cases[i].nth, &m);
		ASSERT_STR_EQ(m.text, cases[i].text);
		ASSERT_EQ(m.text_len, strlen(cases[i].text));
	}
	parse_sample("conversation.item.input_audio_transcription.completed",
	    0, &m);
	ASSERT_STR_EQ(m.item_id, "item_003");
	parse_sample("response.function_call_arguments.done", 0, &m);
	ASSERT_STR_EQ(m.call_id, "call_Ab12Cd34");
	ASSERT_STR_EQ(m.name, "book_appointment");
	ASSERT_STR_EQ(m.response_id, "resp_001");
	ASSERT_STR_EQ(m.item_id, "item_006");
	ASSERT_EQ(m.output_index, 1);

	/* beta: no name on arguments.done */
	ASSERT_EQ(parse("{\"type\":\"response.function_call_arguments.done\","
	    "\"call_id\":\"call_9\",\"arguments\":\"{}\"}", &m), OA_OK);
	ASSERT_STR_EQ(m.name, "");
	ASSERT_STR_EQ(m.call_id, "call_9");
	ASSERT_STR_EQ(m.text, "{}");

	/* escapes and non-ASCII come out unescaped */
	ASSERT_EQ(parse("{\"type\":\"response.audio_transcript.delta\","
	    "\"delta\":\"caf\\u00e9 \\\"ol\\u00e9\\\"\\n\"}", &m), OA_OK);
	ASSERT_STR_EQ(m.text, "caf\xc3\xa9 \"ol\xc3\xa9\"\n");
	ASSERT_EQ(m.text_len, 13);
	oa_msg_free(&m);
}

TEST(openai_parse_response_fields)
{
	struct oa_msg m = {0};

	parse_sample("response.created", 0, &m);
	ASSERT_EQ(m.ev, OA_EV_RESPONSE_CREATED);
	ASSERT_STR_EQ(m.response_id, "resp_001");
	ASSERT_STR_EQ(m.status, "in_progress");
	ASSERT_STR_EQ(m.status_reason, "");

	parse_sample("response.done", 0, &m);
	ASSERT_EQ(m.ev, OA_EV_RESPONSE_DONE);
	ASSERT_STR_EQ(m.response_id, "resp_C1a2b3c4d5e6f7g8h9i0j");
	ASSERT_STR_EQ(m.status, "completed");
	ASSERT_STR_EQ(m.status_reason, "");
	ASSERT_STR_EQ(m.event_id, "event_C1d2e3f4g5h6i7j8k9l0m");

	/* barge-in (§8.8) */
	ASSERT_EQ(parse("{\"type\":\"response.done\",\"event_id\":\"event_9\","
	    "\"response\":{\"object\":\"realtime.response\",\"id\":\"resp_7\","
	    "\"status\":\"cancelled\",\"status_details\":{\"type\":\"cancelled"
	    "\","
	    "\"reason\":\"turn_detected\"},\"output\":[],\"usage\":null}}", &m),
	    OA_OK);
	ASSERT_STR_EQ(m.status, "cancelled");
	ASSERT_STR_EQ(m.status_reason, "turn_detected");
	ASSERT_STR_EQ(m.response_id, "resp_7");

	ASSERT_EQ(parse("{\"type\":\"response.done\",\"response\":{"
	    "\"id\":\"resp_8\",\"status\":\"incomplete\",\"status_details\":"
	    "{\"type\":\"incomplete\",\"reason\":\"max_output_tokens\"}}}", &m),
	    OA_OK);
	ASSERT_STR_EQ(m.status, "incomplete");
	ASSERT_STR_EQ(m.status_reason, "max_output_tokens");

	ASSERT_EQ(parse("{\"type\":\"response.done\",\"response\":{"
	    "\"id\":\"resp_9\",\"status\":\"failed\",\"status_details\":"
	    "{\"type\":\"failed\",\"error\":{\"type\":\"server_error\","
	    "\"code\":\"internal\"}}}}", &m), OA_OK);
	ASSERT_STR_EQ(m.status, "failed");
	ASSERT_STR_EQ(m.status_reason, "");
	ASSERT_STR_EQ(m.err_type, "server_error");
	ASSERT_STR_EQ(m.err_code, "internal");
	oa_msg_free(&m);
}

TEST(openai_parse_error_fields)
{
	struct oa_msg m = {0};

	parse_sample("error", 0, &m);
	ASSERT_EQ(m.ev, OA_EV_ERROR);
	ASSERT_STR_EQ(m.event_id, "event_D1e2f3g4h5i6j7k8l9m0n");
	ASSERT_STR_EQ(m.err_type, "invalid_request_error");
	ASSERT_STR_EQ(m.err_code, "conversation_already_has_active_response");
	ASSERT_STR_EQ(m.err_param, "");
	ASSERT_STR_EQ(m.err_event_id, "evt_client_17");
	ASSERT_NOT_NULL(strstr(m.text, "already has an active response"));
	ASSERT_EQ(m.text_len, strlen(m.text));

	ASSERT_EQ(parse("{\"type\":\"error\",\"event_id\":\"event_5\","
	    "\"error\":{\"type\":\"invalid_request_error\","
	    "\"code\":\"missing_required_parameter\","
	    "\"message\":\"Missing required parameter: 'session.type'.\","
	    "\"param\":\"session.type\",\"event_id\":null}}", &m), OA_OK);
	ASSERT_STR_EQ(m.err_code, "missing_required_parameter");
	ASSERT_STR_EQ(m.err_param, "session.type");
	ASSERT_STR_EQ(m.err_event_id, "");
	ASSERT_STR_EQ(m.text, "Missing required parameter: 'session.type'.");

	/* code null, no message */
	ASSERT_EQ(parse("{\"type\":\"error\",\"error\":{\"type\":"
	    "\"server_error\",\"code\":null}}", &m), OA_OK);
	ASSERT_STR_EQ(m.err_type, "server_error");
	ASSERT_STR_EQ(m.err_code, "");
	ASSERT_STR_EQ(m.text, "");

	parse_sample("conversation.item.input_audio_transcription.failed", 0,
	    &m);
	ASSERT_EQ(m.ev, OA_EV_INPUT_TRANSCRIPT_FAILED);
	ASSERT_STR_EQ(m.item_id, "item_003");
	ASSERT_STR_EQ(m.err_type, "transcription_error");
	ASSERT_STR_EQ(m.err_code, "audio_unintelligible");
	ASSERT_STR_EQ(m.text, "The audio could not be transcribed.");
	oa_msg_free(&m);
}

/* Audio deltas --------------------------------------------------------- */

TEST(openai_parse_audio_points_into_input)
{
	struct oa_msg m = {0};
	char *s;
	int d;

	for (d = 0; d < 2; d++) {
		ASSERT(asprintf(&s, "{\"type\":\"%s\",\"response_id\":\"resp_1\","
		    "\"item_id\":\"item_5\",\"output_index\":0,"
		    "\"content_index\":0,\"delta\":\"//7+/v7+/w==\"}",
		    d ? "response.audio.delta" :
		    "response.output_audio.delta") > 0);
		ASSERT_EQ(oa_parse(s, strlen(s), &m), OA_OK);
		ASSERT_EQ(m.ev, OA_EV_AUDIO_DELTA);
		ASSERT_STR_EQ(m.item_id, "item_5");
		ASSERT_STR_EQ(m.response_id, "resp_1");
		ASSERT(m.audio >= s && m.audio < s + strlen(s));
		ASSERT_EQ(m.audio_len, 12);
		ASSERT_MEM_EQ(m.audio, "//7+/v7+/w==", 12);
		ASSERT_EQ(m.audio_bytes, 7);
		ASSERT_NULL(m.audio_buf);
		free(s);
	}
	oa_msg_free(&m);
}

TEST(openai_parse_audio_escaped_is_copied)
{
	static const char s[] = "{\"type\":\"response.output_audio.delta\","
	    "\"item_id\":\"item_5\",\"delta\":\"\\/\\/7+\\/v7+\\u0041A==\"}";
	struct oa_msg m = {0};

	ASSERT_EQ(oa_parse(s, sizeof(s) - 1, &m), OA_OK);
	ASSERT_EQ(m.ev, OA_EV_AUDIO_DELTA);
	ASSERT_NOT_NULL(m.audio_buf);
	ASSERT(m.audio == m.audio_buf);
	ASSERT_EQ(m.audio_len, 12);
	ASSERT_MEM_EQ(m.audio, "//7+/v7+AA==", 12);
	ASSERT_EQ(m.audio_bytes, 7);
	oa_msg_free(&m);
	ASSERT_NULL(m.audio_buf);
}

TEST(openai_parse_audio_sizes)
{
	struct oa_msg m = {0};
	char *big, *s;
	size_t n = 48000 * 4 / 3, i;	/* 6 s of mu-law */

	ASSERT_EQ(parse("{\"type\":\"response.audio.delta\",\"delta\":\"\"}",
	    &m), OA_OK);
	ASSERT_EQ(m.audio_len, 0);
	ASSERT_EQ(m.audio_bytes, 0);
	ASSERT_NOT_NULL(m.audio);

	ASSERT_EQ(parse("{\"type\":\"response.audio.delta\",\"delta\":"
	    "\"AAE=\"}", &m), OA_OK);
	ASSERT_EQ(m.audio_bytes, 2);

	big = malloc(n + 1);
	ASSERT_NOT_NULL(big);
	for (i = 0; i < n; i++)
		big[i] = "AB+/"[i % 4];
	big[n] = '\0';
	ASSERT(asprintf(&s, "{\"type\":\"response.output_audio.delta\","
	    "\"delta\":\"%s\"}", big) > 0);
	ASSERT_EQ(oa_parse(s, strlen(s), &m), OA_OK);
	ASSERT_EQ(m.audio_len, n);
	ASSERT_EQ(m.audio_bytes, 48000);
	ASSERT(m.audio > s && m.audio < s + strlen(s));
	free(s);
	free(big);
	oa_msg_free(&m);
}

TEST(openai_parse_audio_bad_base64)
{
	static const char *const bad[] = {
		"abc", "ab!d", "ab=d", "a===", "====", "AAAA AAA", "AA\\u00e9A",
		"AAAA\\n",
	};
	struct oa_msg m = {0};
	char s[256];
	size_t i;

	for (i = 0; i < NCASES(bad); i++) {
		snprintf(s, sizeof(s), "{\"type\":\"response.output_audio.delta\","
		    "\"delta\":\"%s\"}", bad[i]);
		if (parse(s, &m) != OA_ERR_BASE64)
			TEST_FAIL_("%s: not refused", bad[i]);
		ASSERT_NULL(m.audio);
		ASSERT_EQ(m.audio_len, 0);
	}
	ASSERT_EQ(parse("{\"type\":\"response.audio.delta\"}", &m),
	    OA_ERR_FIELD);
	ASSERT_EQ(parse("{\"type\":\"response.audio.delta\",\"delta\":5}", &m),
	    OA_ERR_FIELD);
	ASSERT_EQ(parse("{\"type\":\"response.audio.delta\",\"delta\":null}",
	    &m), OA_ERR_FIELD);
	oa_msg_free(&m);
}

/* Hostile and odd input --------------------------------------------------- */

TEST(openai_parse_hostile)
{
	static const struct {
		const char	*json;
		int		 rc;
	} cases[] = {
		{ "", OA_ERR_JSON },
		{ "nope", OA_ERR_JSON },
		{ "{\"type\":\"error\"", OA_ERR_JSON },
		{ "[]", OA_ERR_JSON },
		{ "null", OA_ERR_JSON },
		{ "\"error\"", OA_ERR_JSON },
		{ "{\"type\":\"error\",\"type\":\"error\",\"error\":{}}",
		  OA_ERR_JSON },
		{ "{}", OA_ERR_TYPE },
		{ "{\"type\":5}", OA_ERR_TYPE },
		{ "{\"type\":null}", OA_ERR_TYPE },
		{ "{\"type\":[\"error\"]}", OA_ERR_TYPE },
		{ "{\"type\":\"error\"}", OA_ERR_FIELD },
		{ "{\"type\":\"error\",\"error\":\"boom\"}", OA_ERR_FIELD },
		{ "{\"type\":\"error\",\"error\":{\"message\":7}}", OA_ERR_FIELD },
		{ "{\"type\":\"error\",\"error\":{\"code\":{}}}", OA_ERR_FIELD },
		{ "{\"type\":\"session.created\"}", OA_ERR_FIELD },
		{ "{\"type\":\"session.created\",\"session\":[]}", OA_ERR_FIELD },
		{ "{\"type\":\"session.created\","
		  "\"session\":{\"expires_at\":\"1\"}}", OA_ERR_FIELD },
		{ "{\"type\":\"session.created\","
		  "\"session\":{\"expires_at\":-1}}", OA_ERR_FIELD },
		{ "{\"type\":\"session.created\","
		  "\"session\":{\"turn_detection\":1}}", OA_ERR_FIELD },
		{ "{\"type\":\"session.created\",\"session\":"
		  "{\"turn_detection\":{\"interrupt_response\":\"yes\"}}}",
		  OA_ERR_FIELD },
		{ "{\"type\":\"session.created\",\"session\":{\"audio\":7}}",
		  OA_ERR_FIELD },
		{ "{\"type\":\"response.done\"}", OA_ERR_FIELD },
		{ "{\"type\":\"response.done\",\"response\":{\"status\":1}}",
		  OA_ERR_FIELD },
		{ "{\"type\":\"response.done\","
		  "\"response\":{\"status_details\":\"x\"}}", OA_ERR_FIELD },
		{ "{\"type\":\"response.done\",\"response\":{\"status\":"
		  "\"a-status-much-longer-than-sixteen\"}}", OA_ERR_TOOBIG },
		{ "{\"type\":\"conversation.item.added\"}", OA_ERR_FIELD },
		{ "{\"type\":\"conversation.item.added\",\"item\":\"x\"}",
		  OA_ERR_FIELD },
		{ "{\"type\":\"conversation.item.added\",\"item\":{\"role\":"
		  "\"a-role-that-is-too-long\"}}", OA_ERR_TOOBIG },
		{ "{\"type\":\"input_audio_buffer.speech_started\","
		  "\"audio_start_ms\":\"10\"}", OA_ERR_FIELD },
		{ "{\"type\":\"input_audio_buffer.speech_started\","
		  "\"audio_start_ms\":-10}", OA_ERR_FIELD },
		{ "{\"type\":\"input_audio_buffer.speech_started\","
		  "\"audio_start_ms\":1.5}", OA_ERR_FIELD },
		{ "{\"type\":\"input_audio_buffer.speech_started\","
		  "\"audio_start_ms\":99999999999999999999999}", OA_ERR_JSON },
		{ "{\"type\":\"response.output_audio.done\",\"output_index\":"
		  "4294967296}", OA_ERR_FIELD },
		{ "{\"type\":\"response.output_audio.done\",\"content_index\":"
		  "-1}", OA_ERR_FIELD },
		{ "{\"type\":\"response.output_audio.done\",\"item_id\":7}",
		  OA_ERR_FIELD },
		{ "{\"type\":\"response.output_audio.done\",\"item_id\":{}}",
		  OA_ERR_FIELD },
		{ "{\"type\":\"response.text.delta\",\"delta\":[]}",
		  OA_ERR_FIELD },
		{ "{\"type\":\"response.text.delta\",\"delta\":\"a\\u0000b\"}",
		  OA_ERR_JSON },
		{ "{\"type\":\"response.text.delta\",\"delta\":\"\xff\"}",
		  OA_ERR_JSON },
		/* an unknown type is not checked further */
		{ "{\"type\":\"response.future_thing\",\"item_id\":7}", OA_OK },
	};
	struct oa_msg m = {0};
	size_t i;
	int rc;

	for (i = 0; i < NCASES(cases); i++) {
		rc = parse(cases[i].json, &m);
		if (rc != cases[i].rc)
			TEST_FAIL_("case %zu %s: rc %d (%s), want %d", i,
			    cases[i].json, rc, oa_strerror(rc), cases[i].rc);
		ASSERT_NOT_NULL(m.text);
		if (rc != OA_OK) {
			ASSERT_STR_EQ(m.text, "");
			ASSERT_NULL(m.audio);
		}
	}
	/* a NUL inside the buffer, binary garbage, a NULL buffer */
	ASSERT_EQ(oa_parse("{\"type\":\"error\"}\0junk", 21, &m), OA_ERR_JSON);
	ASSERT_EQ(oa_parse("\x00\x01\x02\xff", 4, &m), OA_ERR_JSON);
	ASSERT_EQ(oa_parse(NULL, 0, &m), OA_ERR_JSON);
	/* only the first len bytes are read */
	ASSERT_EQ(oa_parse("{\"type\":\"input_audio_buffer.cleared\"}XYZ", 37,
	    &m), OA_OK);
	ASSERT_EQ(m.ev, OA_EV_BUFFER_CLEARED);
	oa_msg_free(&m);
}

TEST(openai_parse_id_lengths)
{
	struct oa_msg m = {0};
	char id[OA_ID_MAX + 2], s[512];

	memset(id, 'x', sizeof(id));
	id[OA_ID_MAX - 1] = '\0';		/* the longest that fits */
	snprintf(s, sizeof(s), "{\"type\":\"conversation.item.deleted\","
	    "\"item_id\":\"%s\"}", id);
	ASSERT_EQ(parse(s, &m), OA_OK);
	ASSERT_EQ(strlen(m.item_id), OA_ID_MAX - 1);

	id[OA_ID_MAX - 1] = 'x';
	id[OA_ID_MAX] = '\0';			/* one too many */
	snprintf(s, sizeof(s), "{\"type\":\"conversation.item.deleted\","
	    "\"item_id\":\"%s\"}", id);
	ASSERT_EQ(parse(s, &m), OA_ERR_TOOBIG);
	snprintf(s, sizeof(s), "{\"type\":\"conversation.item.deleted\","
	    "\"event_id\":\"%s\"}", id);
	ASSERT_EQ(parse(s, &m), OA_ERR_TOOBIG);
	snprintf(s, sizeof(s), "{\"type\":\"session.created\","
	    "\"session\":{\"id\":\"%s\"}}", id);
	ASSERT_EQ(parse(s, &m), OA_ERR_TOOBIG);
	snprintf(s, sizeof(s), "{\"type\":\"response.done\","
	    "\"response\":{\"id\":\"%s\"}}", id);
	ASSERT_EQ(parse(s, &m), OA_ERR_TOOBIG);
	snprintf(s, sizeof(s), "{\"type\":\"response.output_item.added\","
	    "\"item\":{\"call_id\":\"%s\"}}", id);
	ASSERT_EQ(parse(s, &m), OA_ERR_TOOBIG);
	snprintf(s, sizeof(s), "{\"type\":\"error\","
	    "\"error\":{\"event_id\":\"%s\"}}", id);
	ASSERT_EQ(parse(s, &m), OA_ERR_TOOBIG);
	oa_msg_free(&m);
}

TEST(openai_parse_unknown_type_is_sanitised)
{
	struct oa_msg m = {0};
	char s[512], t[300];

	ASSERT_EQ(parse("{\"type\":\"bad\\nline\\u001b[31m\\u00e9\"}", &m),
	    OA_OK);
	ASSERT_EQ(m.ev, OA_EV_UNKNOWN);
	ASSERT_STR_EQ(m.type, "bad?line?[31m??");

	memset(t, 'a', 200);
	t[200] = '\0';
	snprintf(s, sizeof(s), "{\"type\":\"%s\"}", t);
	ASSERT_EQ(parse(s, &m), OA_OK);
	ASSERT_EQ(strlen(m.type), sizeof(m.type) - 1);
	ASSERT_STR_EQ(m.event_id, "");
	oa_msg_free(&m);
}

TEST(openai_parse_long_text)
{
	struct oa_msg m = {0};
	size_t n = 200000, i;
	char *t, *s;

	t = malloc(n + 1);
	ASSERT_NOT_NULL(t);
	for (i = 0; i < n; i++)
		t[i] = (char)('a' + i % 26);
	t[n] = '\0';
	ASSERT(asprintf(&s, "{\"type\":\"response.output_audio_transcript."
	    "done\",\"transcript\":\"%s\"}", t) > 0);
	ASSERT_EQ(oa_parse(s, strlen(s), &m), OA_OK);
	ASSERT_EQ(m.text_len, n);
	ASSERT_STR_EQ(m.text, t);
	ASSERT(m.text == m.text_buf);
	free(s);
	free(t);
	oa_msg_free(&m);
}

/* One oa_msg across many parses: nothing leaks from one to the next and
 * nothing is left allocated after oa_msg_free() (valgrind checks). */
TEST(openai_parse_reuse)
{
	struct oa_msg m = {0};
	char s[8192], txt[4096], run[200];
	int k;
	size_t n;

	memset(run, 'A', sizeof(run));

	for (k = 0; k < 2000; k++) {
		switch (k % 5) {
		case 0:
			n = (size_t)(k % 3000) + 1;
			memset(txt, 'q', n);
			txt[n] = '\0';
			snprintf(s, sizeof(s), "{\"type\":\"response.text.delta\","
			    "\"item_id\":\"item_%d\",\"delta\":\"%s\"}", k, txt);
			ASSERT_EQ(parse(s, &m), OA_OK);
			ASSERT_EQ(m.text_len, n);
			break;
		case 1:
			snprintf(s, sizeof(s), "{\"type\":\"response.audio.delta\","
			    "\"delta\":\"\\/\\/7+%.*s\"}", (k % 50) * 4, run);
			ASSERT_EQ(parse(s, &m), OA_OK);
			ASSERT(m.audio == m.audio_buf);
			ASSERT_EQ(m.audio_bytes, 3 + (size_t)(k % 50) * 3);
			ASSERT_STR_EQ(m.text, "");
			ASSERT_STR_EQ(m.item_id, "");
			break;
		case 2:
			ASSERT_EQ(parse("{\"type\":\"input_audio_buffer."
			    "speech_started\",\"audio_start_ms\":5}", &m), OA_OK);
			ASSERT_STR_EQ(m.text, "");
			ASSERT_EQ(m.text_len, 0);
			ASSERT_NULL(m.audio);
			ASSERT_UEQ(m.audio_start_ms, 5);
			break;
		case 3:
			ASSERT_EQ(parse("{\"type\":\"error\",\"error\":"
			    "{\"message\":7}}", &m), OA_ERR_FIELD);
			break;
		default:
			load_samples();
			ASSERT_EQ(parse(samples[k % nsamples].json, &m), OA_OK);
			break;
		}
	}
	oa_msg_free(&m);
	ASSERT_NULL(m.text_buf);
	ASSERT_NULL(m.audio_buf);
	ASSERT_STR_EQ(m.text, "");
	oa_msg_free(&m);		/* twice is harmless */
}

TEST(openai_names)
{
	int e;

	for (e = 0; e < OA_EV__COUNT; e++) {
		ASSERT_NOT_NULL(oa_event_name((enum oa_event)e));
		ASSERT(strlen(oa_event_name((enum oa_event)e)) > 0);
	}
	ASSERT_STR_EQ(oa_event_name(OA_EV__COUNT), "unknown");
	ASSERT_STR_EQ(oa_event_name((enum oa_event)-1), "unknown");
	ASSERT_STR_EQ(oa_event_name(OA_EV_AUDIO_DELTA),
	    "response.output_audio.delta");
	for (e = OA_ERR_BASE64; e <= OA_OK; e++)
		ASSERT_NOT_NULL(oa_strerror(e));
	ASSERT_STR_EQ(oa_strerror(OA_ERR_BASE64), "audio delta is not base64");
	ASSERT_STR_EQ(oa_strerror(-99), "unknown error");
}

/* HTTP error bodies --------------------------------------------------- */

static void
body_msg(const char *body, size_t outlen, const char *want)
{
	char out[256];

	ASSERT_LE(outlen, sizeof(out));
	memset(out, 'Z', sizeof(out));
	oa_error_body_message(body, strlen(body), out, outlen);
	ASSERT_STR_EQ(out, want);
}

TEST(openai_error_body_message)
{
	char out[8] = "unset";

	body_msg("{\"error\":{\"message\":\"Incorrect API key provided: "
	    "sk-abc***xyz.\",\"type\":\"invalid_request_error\","
	    "\"code\":\"invalid_api_key\",\"param\":null}}", 256,
	    "Incorrect API key provided: sk-abc***xyz.");
	body_msg("{\"error\":{\"message\":\"The Realtime Beta API is no longer "
	    "supported.\\nPlease use /v1/realtime.\"}}", 256,
	    "The Realtime Beta API is no longer supported. Please use "
	    "/v1/realtime.");
	/* cut to outlen - 1, never inside a UTF-8 sequence */
	body_msg("{\"error\":{\"message\":\"Model not found\"}}", 10,
	    "Model not");
	body_msg("{\"error\":{\"message\":\"caf\\u00e9\"}}", 5, "caf");
	body_msg("{\"error\":{\"message\":\"caf\\u00e9\"}}", 6, "caf\xc3\xa9");
	body_msg("{\"error\":\"plain string error\"}", 256, "plain string error");
	body_msg("{\"message\":\"top-level message\"}", 256, "top-level message");
	body_msg("{\"error\":{\"code\":\"x\"}}", 256, "");
	body_msg("{\"error\":{\"message\":42}}", 256, "");
	body_msg("[1,2]", 256, "");
	/* not JSON: a printable prefix */
	body_msg("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n",
	    256, "<html> <head><title>502 Bad Gateway</title></head>");
	body_msg("Upgrade Required\x01\x02secret", 256, "Upgrade Required");
	body_msg("\xff\xfe", 256, "");
	body_msg("   ", 256, "");
	body_msg("short", 1, "");
	body_msg("", 256, "");

	oa_error_body_message(NULL, 0, out, sizeof(out));
	ASSERT_STR_EQ(out, "");
	oa_error_body_message("x", 1, NULL, 0);
	oa_error_body_message("x", 1, out, 0);
}

/* Allocation failures inside jansson ---------------------------------- */

static int alloc_left;

static void *
failing_malloc(size_t n)
{
	if (alloc_left-- <= 0)
		return NULL;
	return malloc(n);
}

/* Fail jansson's n-th allocation, and every one after it: each builder
 * either succeeds or fails cleanly with the buffer unchanged, and the
 * parser returns an error; valgrind sees no leak either way. */
TEST(openai_allocation_failures)
{
	struct oa_session_cfg c;
	struct oa_msg m = {0};
	struct buf b;
	int n, d, rc, ok = 0;
	size_t i;

	cfg_full(&c);
	load_samples();
	buf_init(&b, 0);
	ASSERT_EQ(buf_append(&b, "keep", 4), 0);
	for (n = 0; n < 400; n++) {
		for (d = OA_GA; d <= OA_BETA; d++) {
			alloc_left = n;
			json_set_alloc_funcs(failing_malloc, free);
			rc = oa_build_session_update(&b, (enum oa_dialect)d, &c);
			json_set_alloc_funcs(malloc, free);
			if (rc == 0) {
				ASSERT_GT(buf_pending(&b), 4);
				buf_consume(&b, buf_pending(&b));
				ASSERT_EQ(buf_append(&b, "keep", 4), 0);
				ok++;
			} else {
				ASSERT_EQ(rc, -1);
				ASSERT_EQ(buf_pending(&b), 4);
			}
		}
		alloc_left = n;
		json_set_alloc_funcs(failing_malloc, free);
		rc = oa_build_text_item(&b, "hello", 0);
		json_set_alloc_funcs(malloc, free);
		if (rc == 0) {
			buf_consume(&b, buf_pending(&b));
			ASSERT_EQ(buf_append(&b, "keep", 4), 0);
		} else
			ASSERT_EQ(buf_pending(&b), 4);

		for (i = 0; i < nsamples; i++) {
			alloc_left = n;
			json_set_alloc_funcs(failing_malloc, free);
			rc = parse(samples[i].json, &m);
			json_set_alloc_funcs(malloc, free);
			ASSERT(rc == OA_OK || rc == OA_ERR_JSON);
		}
	}
	/* enough room in the end for every builder */
	ASSERT_GT(ok, 0);
	buf_free(&b);
	oa_msg_free(&m);
}

/* The audio delta's fast path must agree with the full parser on every
 * input: mutations of real deltas of both dialects. */
static void
oa_same_result(const char *buf, size_t len)
{
	static struct oa_msg a, b;
	int ra = oa_parse(buf, len, &a);
	int rb = oa_parse_full(buf, len, &b);

	if (ra != rb)
		TEST_FAIL_("fast %d vs full %d on: %.*s", ra, rb, (int)len, buf);
	if (ra != OA_OK)
		return;
	ASSERT_EQ(a.ev, b.ev);
	ASSERT_STR_EQ(a.type, b.type);
	ASSERT_STR_EQ(a.event_id, b.event_id);
	ASSERT_STR_EQ(a.response_id, b.response_id);
	ASSERT_STR_EQ(a.item_id, b.item_id);
	ASSERT_EQ(a.output_index, b.output_index);
	ASSERT_EQ(a.content_index, b.content_index);
	ASSERT_UEQ(a.audio_len, b.audio_len);
	ASSERT_UEQ(a.audio_bytes, b.audio_bytes);
	if (a.audio_len)
		ASSERT(memcmp(a.audio, b.audio, a.audio_len) == 0);
}

TEST_T(openai_fast_delta_agrees_with_full_parser, 60)
{
	static const char *seeds[] = {
		"{\"type\":\"response.output_audio.delta\",\"event_id\":\"event_1\","
		"\"response_id\":\"resp_1\",\"item_id\":\"item_1\",\"output_index\":0,"
		"\"content_index\":0,\"delta\":\"//7+/v7+/39/f3/+AAECAw==\"}",
		"{ \"delta\" : \"AAAA\" , \"type\" : \"response.audio.delta\" , "
		"\"content_index\" : 12 }",
		"{\"type\":\"response.output_audio.delta\",\"delta\":\"\","
		"\"output_index\":2147483647}",
	};
	char buf[512];
	unsigned seed = 777;

	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		size_t n = strlen(seeds[s]);
		oa_same_result(seeds[s], n);
		for (int round = 0; round < 6000; round++) {
			size_t len = n;
			memcpy(buf, seeds[s], n);
			for (int k = 0; k < 1 + round % 3; k++)
				test_mutate(buf, &len, sizeof(buf), &seed);
			oa_same_result(buf, len);
		}
	}
}

TEST(openai_session_text_only_both_dialects)
{
	struct oa_session_cfg c;
	json_t *j;

	cfg_min(&c);
	c.text_only = 1;
	c.voice = "marin";
	j = build_session(OA_GA, &c);
	expect_keys(j, "session", "type", "output_modalities", "instructions",
	    "max_output_tokens", NULL);
	EXPECT_STR(j, "session.output_modalities.[0]", "text");
	json_decref(j);
	j = build_session(OA_BETA, &c);
	expect_keys(j, "session", "modalities", "instructions", "turn_detection",
	    "max_response_output_tokens", NULL);
	EXPECT_STR(j, "session.modalities.[0]", "text");
	json_decref(j);
}

TEST(openai_build_assistant_text_item_and_delete)
{
	struct buf b;

	buf_init(&b, 0);
	ASSERT_EQ(oa_build_assistant_text_item(&b, OA_GA, "We open at 8",
	    "item_prev"), 0);
	expect_built(&b, "{\"type\":\"conversation.item.create\",\"item\":"
	    "{\"type\":\"message\",\"role\":\"assistant\",\"content\":"
	    "[{\"type\":\"output_text\",\"text\":\"We open at 8\"}]},"
	    "\"previous_item_id\":\"item_prev\"}");
	ASSERT_EQ(oa_build_assistant_text_item(&b, OA_BETA, "Hi", NULL), 0);
	expect_built(&b, "{\"type\":\"conversation.item.create\",\"item\":"
	    "{\"type\":\"message\",\"role\":\"assistant\",\"content\":"
	    "[{\"type\":\"text\",\"text\":\"Hi\"}]}}");
	ASSERT_EQ(oa_build_item_delete(&b, "item_1"), 0);
	expect_built(&b, "{\"type\":\"conversation.item.delete\","
	    "\"item_id\":\"item_1\"}");
	ASSERT_EQ(oa_build_item_delete(&b, ""), -1);
	ASSERT_EQ(buf_pending(&b), 0);
	buf_free(&b);
}
