/*
 * test_twilio.c — Media Streams parser and builders (protocols.md §4, §11).
 */
#include "test/unit/test.h"
#include "proto/twilio.h"

#include <jansson.h>
#include <stdarg.h>

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

#define AC "AC00000000000000000000000000000000"
#define MZ "MZ22222222222222222222222222222222"
#define CA "CA11111111111111111111111111111111"

static int
parse(const char *s, struct tw_msg *m)
{
	return tw_parse(s, strlen(s), m);
}

/* Parse a message built with printf-style arguments; the message buffer
 * is returned in *keep so payload pointers into it stay valid. */
static int
parsef(struct tw_msg *m, char **keep, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
parsef(struct tw_msg *m, char **keep, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n, rc;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ASSERT(n >= 0);
	rc = tw_parse(s, (size_t)n, m);
	if (keep != NULL)
		*keep = s;
	else
		free(s);
	return rc;
}

static int
in_buf(const char *p, const char *buf, size_t len)
{
	return p >= buf && p < buf + len;
}

/* §4.2 examples, as printed ----------------------------------------- */

TEST(twilio_connected)
{
	struct tw_msg m = {0};
	const char *s =
	    "{\"event\": \"connected\", \"protocol\": \"Call\", "
	    "\"version\": \"1.0.0\"}";

	ASSERT_EQ(parse(s, &m), TW_OK);
	ASSERT_EQ(m.event, TW_CONNECTED);
	ASSERT_STR_EQ(m.event_name, "connected");
	ASSERT_EQ(m.has_seq, 0);
	ASSERT_STR_EQ(m.stream_sid, "");
	tw_msg_free(&m);
}

static const char start_example[] =
    "{\n"
    "  \"event\": \"start\",\n"
    "  \"sequenceNumber\": \"1\",\n"
    "  \"start\": {\n"
    "    \"accountSid\": \"" AC "\",\n"
    "    \"streamSid\": \"" MZ "\",\n"
    "    \"callSid\": \"" CA "\",\n"
    "    \"tracks\": [\"inbound\"],\n"
    "    \"customParameters\": {\"persona\": \"cold-call-3\", "
    "\"token\": \"c2VjcmV0LW9uZS10aW1l\"},\n"
    "    \"mediaFormat\": {\"encoding\": \"audio/x-mulaw\", "
    "\"sampleRate\": 8000, \"channels\": 1}\n"
    "  },\n"
    "  \"streamSid\": \"" MZ "\"\n"
    "}";

TEST(twilio_start_example)
{
	struct tw_msg m = {0};

	ASSERT_EQ(parse(start_example, &m), TW_OK);
	ASSERT_EQ(m.event, TW_START);
	ASSERT_EQ(m.has_seq, 1);
	ASSERT_UEQ(m.seq, 1);
	ASSERT_STR_EQ(m.stream_sid, MZ);
	ASSERT_STR_EQ(m.account_sid, AC);
	ASSERT_STR_EQ(m.call_sid, CA);
	ASSERT_EQ(m.nparams, 2);
	ASSERT_STR_EQ(m.param_name[0], "persona");
	ASSERT_STR_EQ(m.param_value[0], "cold-call-3");
	ASSERT_STR_EQ(m.param_name[1], "token");
	ASSERT_STR_EQ(tw_param(&m, "token"), "c2VjcmV0LW9uZS10aW1l");
	ASSERT_STR_EQ(tw_param(&m, "persona"), "cold-call-3");
	ASSERT_NULL(tw_param(&m, "Persona"));
	ASSERT_NULL(tw_param(&m, "missing"));
	ASSERT_STR_EQ(m.encoding, "audio/x-mulaw");
	ASSERT_EQ(m.sample_rate, 8000);
	ASSERT_EQ(m.channels, 1);
	tw_msg_free(&m);
}

TEST(twilio_media_example)
{
	struct tw_msg m = {0};
	const char *s =
	    "{\n"
	    "  \"event\": \"media\",\n"
	    "  \"sequenceNumber\": \"3\",\n"
	    "  \"media\": {\"track\": \"inbound\", \"chunk\": \"2\", "
	    "\"timestamp\": \"40\", \"payload\": \"//7+/v7+/39/f3/+/n9/\"},\n"
	    "  \"streamSid\": \"" MZ "\"\n"
	    "}";

	ASSERT_EQ(parse(s, &m), TW_OK);
	ASSERT_EQ(m.event, TW_MEDIA);
	ASSERT_UEQ(m.seq, 3);
	ASSERT_STR_EQ(m.stream_sid, MZ);
	ASSERT_STR_EQ(m.track, "inbound");
	ASSERT_UEQ(m.chunk, 2);
	ASSERT_UEQ(m.timestamp, 40);
	ASSERT_UEQ(m.payload_len, 20);
	ASSERT_UEQ(m.audio_len, 15);
	ASSERT_MEM_EQ(m.payload, "//7+/v7+/39/f3/+/n9/", 20);
	/* no escapes: the payload is found in the caller's buffer */
	ASSERT(in_buf(m.payload, s, strlen(s)));
	ASSERT_NULL(m.payload_buf);
	tw_msg_free(&m);
}

TEST(twilio_dtmf_example)
{
	struct tw_msg m = {0};
	const char *s =
	    "{\n"
	    "  \"event\": \"dtmf\",\n"
	    "  \"streamSid\": \"" MZ "\",\n"
	    "  \"sequenceNumber\": \"57\",\n"
	    "  \"dtmf\": {\"track\": \"inbound_track\", \"digit\": \"7\"}\n"
	    "}";

	ASSERT_EQ(parse(s, &m), TW_OK);
	ASSERT_EQ(m.event, TW_DTMF);
	ASSERT_UEQ(m.seq, 57);
	ASSERT_STR_EQ(m.stream_sid, MZ);
	ASSERT_STR_EQ(m.track, "inbound_track");
	ASSERT_STR_EQ(m.digit, "7");
	tw_msg_free(&m);
}

TEST(twilio_mark_example)
{
	struct tw_msg m = {0};
	const char *s =
	    "{\n"
	    "  \"event\": \"mark\",\n"
	    "  \"sequenceNumber\": \"88\",\n"
	    "  \"streamSid\": \"" MZ "\",\n"
	    "  \"mark\": {\"name\": \"r7-i3-1840\"}\n"
	    "}";

	ASSERT_EQ(parse(s, &m), TW_OK);
	ASSERT_EQ(m.event, TW_MARK);
	ASSERT_UEQ(m.seq, 88);
	ASSERT_STR_EQ(m.mark_name, "r7-i3-1840");
	tw_msg_free(&m);
}

TEST(twilio_stop_example)
{
	struct tw_msg m = {0};
	const char *s =
	    "{\n"
	    "  \"event\": \"stop\",\n"
	    "  \"sequenceNumber\": \"1203\",\n"
	    "  \"stop\": {\"accountSid\": \"" AC "\", \"callSid\": \"" CA "\"},\n"
	    "  \"streamSid\": \"" MZ "\"\n"
	    "}";

	ASSERT_EQ(parse(s, &m), TW_OK);
	ASSERT_EQ(m.event, TW_STOP);
	ASSERT_UEQ(m.seq, 1203);
	ASSERT_STR_EQ(m.stream_sid, MZ);
	ASSERT_STR_EQ(m.account_sid, AC);
	ASSERT_STR_EQ(m.call_sid, CA);
	tw_msg_free(&m);
}

/* start ---------------------------------------------------------------- */

TEST(twilio_start_empty_params)
{
	struct tw_msg m = {0};

	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"sequenceNumber\":\"1\","
	    "\"start\":{\"callSid\":\"%s\",\"streamSid\":\"%s\","
	    "\"customParameters\":{}},\"streamSid\":\"%s\"}", CA, MZ, MZ), TW_OK);
	ASSERT_EQ(m.nparams, 0);
	ASSERT_NULL(tw_param(&m, "persona"));
	ASSERT_STR_EQ(m.encoding, "");
	ASSERT_EQ(m.sample_rate, 0);
	ASSERT_STR_EQ(m.account_sid, "");

	/* no customParameters and no mediaFormat at all */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"start\":"
	    "{\"callSid\":\"%s\"},\"streamSid\":\"%s\"}", CA, MZ), TW_OK);
	ASSERT_EQ(m.nparams, 0);
	ASSERT_EQ(m.has_seq, 0);
	tw_msg_free(&m);
}

TEST(twilio_start_stream_sid_rules)
{
	struct tw_msg m = {0};
	const char *other = "MZ33333333333333333333333333333333";

	/* only inside start */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"start\":"
	    "{\"callSid\":\"%s\",\"streamSid\":\"%s\"}}", CA, MZ), TW_OK);
	ASSERT_STR_EQ(m.stream_sid, MZ);
	/* only at the top */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\","
	    "\"start\":{\"callSid\":\"%s\"}}", MZ, CA), TW_OK);
	ASSERT_STR_EQ(m.stream_sid, MZ);
	/* both, different */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\","
	    "\"start\":{\"callSid\":\"%s\",\"streamSid\":\"%s\"}}",
	    MZ, CA, other), TW_ERR_FIELD);
	/* neither */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"start\":"
	    "{\"callSid\":\"%s\"}}", CA), TW_ERR_FIELD);
	/* malformed inner one */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"start\":"
	    "{\"callSid\":\"%s\",\"streamSid\":\"MZ-1\"}}", CA), TW_ERR_SID);
	/* no callSid, bad callSid, bad accountSid */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\","
	    "\"start\":{}}", MZ), TW_ERR_FIELD);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\","
	    "\"start\":{\"callSid\":\"CA 1\"}}", MZ), TW_ERR_SID);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\","
	    "\"start\":{\"callSid\":1}}", MZ), TW_ERR_FIELD);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\","
	    "\"start\":{\"callSid\":\"%s\",\"accountSid\":\"A\"}}", MZ, CA),
	    TW_ERR_SID);
	/* no start object, or not an object */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\"}",
	    MZ), TW_ERR_FIELD);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\","
	    "\"start\":[]}", MZ), TW_ERR_FIELD);
	tw_msg_free(&m);
}

static int
start_with_params(struct tw_msg *m, const char *params)
{
	return parsef(m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\","
	    "\"start\":{\"callSid\":\"%s\",\"customParameters\":%s}}",
	    MZ, CA, params);
}

TEST(twilio_start_params)
{
	struct tw_msg m = {0};
	char buf[8192], name[128], value[1024];
	int i, n;

	/* TW_PARAMS_MAX entries fit, one more does not */
	n = snprintf(buf, sizeof(buf), "{");
	for (i = 0; i < TW_PARAMS_MAX; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n,
		    "%s\"p%d\":\"v%d\"", i ? "," : "", i, i);
	snprintf(buf + n, sizeof(buf) - (size_t)n, "}");
	ASSERT_EQ(start_with_params(&m, buf), TW_OK);
	ASSERT_EQ(m.nparams, TW_PARAMS_MAX);
	ASSERT_STR_EQ(tw_param(&m, "p15"), "v15");
	ASSERT_STR_EQ(m.param_name[0], "p0");
	buf[n] = '\0';
	snprintf(buf + n, sizeof(buf) - (size_t)n, ",\"extra\":\"x\"}");
	ASSERT_EQ(start_with_params(&m, buf), TW_ERR_TOOBIG);

	/* values must be strings */
	ASSERT_EQ(start_with_params(&m, "{\"a\":1}"), TW_ERR_FIELD);
	ASSERT_EQ(start_with_params(&m, "{\"a\":null}"), TW_ERR_FIELD);
	ASSERT_EQ(start_with_params(&m, "{\"a\":\"x\",\"b\":{}}"), TW_ERR_FIELD);
	ASSERT_EQ(start_with_params(&m, "[]"), TW_ERR_FIELD);
	ASSERT_EQ(start_with_params(&m, "\"a=b\""), TW_ERR_FIELD);
	/* empty strings are fine, escapes are decoded */
	ASSERT_EQ(start_with_params(&m, "{\"\":\"\",\"q\":\"a\\\"b\\u00e9\"}"),
	    TW_OK);
	ASSERT_STR_EQ(tw_param(&m, ""), "");
	ASSERT_STR_EQ(tw_param(&m, "q"), "a\"b\xc3\xa9");

	/* name: 63 bytes fit, 64 do not */
	memset(name, 'n', 63);
	name[63] = '\0';
	snprintf(buf, sizeof(buf), "{\"%s\":\"v\"}", name);
	ASSERT_EQ(start_with_params(&m, buf), TW_OK);
	ASSERT_STR_EQ(m.param_name[0], name);
	snprintf(buf, sizeof(buf), "{\"%sn\":\"v\"}", name);
	ASSERT_EQ(start_with_params(&m, buf), TW_ERR_TOOBIG);

	/* value: 511 bytes fit, 512 do not */
	memset(value, 'v', 511);
	value[511] = '\0';
	snprintf(buf, sizeof(buf), "{\"k\":\"%s\"}", value);
	ASSERT_EQ(start_with_params(&m, buf), TW_OK);
	ASSERT_STR_EQ(tw_param(&m, "k"), value);
	snprintf(buf, sizeof(buf), "{\"k\":\"%sv\"}", value);
	ASSERT_EQ(start_with_params(&m, buf), TW_ERR_TOOBIG);

	/* a NUL inside a value is not allowed by the parser */
	ASSERT_EQ(start_with_params(&m, "{\"k\":\"a\\u0000b\"}"), TW_ERR_JSON);
	tw_msg_free(&m);
}

static int
start_with_format(struct tw_msg *m, const char *fmt)
{
	return parsef(m, NULL, "{\"event\":\"start\",\"streamSid\":\"%s\","
	    "\"start\":{\"callSid\":\"%s\",\"mediaFormat\":%s}}", MZ, CA, fmt);
}

TEST(twilio_start_media_format)
{
	struct tw_msg m = {0};

	ASSERT_EQ(start_with_format(&m, "{}"), TW_OK);
	ASSERT_EQ(m.sample_rate, 0);
	ASSERT_EQ(m.channels, 0);
	ASSERT_EQ(start_with_format(&m, "{\"sampleRate\":\"16000\"}"), TW_OK);
	ASSERT_EQ(m.sample_rate, 16000);
	ASSERT_EQ(start_with_format(&m, "{\"sampleRate\":8000.5}"),
	    TW_ERR_NUMBER);
	ASSERT_EQ(start_with_format(&m, "{\"channels\":-1}"), TW_ERR_NUMBER);
	ASSERT_EQ(start_with_format(&m, "{\"sampleRate\":4294967296}"),
	    TW_ERR_NUMBER);
	ASSERT_EQ(start_with_format(&m, "{\"encoding\":7}"), TW_ERR_FIELD);
	ASSERT_EQ(start_with_format(&m,
	    "{\"encoding\":\"0123456789012345678901234567890\"}"), TW_OK);
	ASSERT_EQ(start_with_format(&m,
	    "{\"encoding\":\"01234567890123456789012345678901\"}"),
	    TW_ERR_TOOBIG);
	ASSERT_EQ(start_with_format(&m, "\"audio/x-mulaw\""), TW_ERR_FIELD);
	tw_msg_free(&m);
}

/* media ---------------------------------------------------------------- */

static int
media_with(struct tw_msg *m, const char *seq, const char *chunk,
    const char *ts)
{
	return parsef(m, NULL, "{\"event\":\"media\",\"sequenceNumber\":%s,"
	    "\"media\":{\"track\":\"inbound\",\"chunk\":%s,\"timestamp\":%s,"
	    "\"payload\":\"//8=\"},\"streamSid\":\"%s\"}", seq, chunk, ts, MZ);
}

TEST(twilio_media_counters)
{
	static const struct {
		const char	*json;
		int		 rc;
		uint64_t	 value;
	} cases[] = {
		{ "\"0\"", TW_OK, 0 },
		{ "\"1\"", TW_OK, 1 },
		{ "\"007\"", TW_OK, 7 },
		{ "\"123456789\"", TW_OK, 123456789 },
		{ "\"9223372036854775807\"", TW_OK, INT64_MAX },
		{ "\"00000000000000000000000009223372036854775807\"", TW_OK,
		    INT64_MAX },
		{ "42", TW_OK, 42 },
		{ "0", TW_OK, 0 },
		{ "9223372036854775807", TW_OK, INT64_MAX },
		{ "\"9223372036854775808\"", TW_ERR_NUMBER, 0 },
		{ "\"18446744073709551615\"", TW_ERR_NUMBER, 0 },
		{ "\"18446744073709551616\"", TW_ERR_NUMBER, 0 },
		{ "\"99999999999999999999999999\"", TW_ERR_NUMBER, 0 },
		{ "\"\"", TW_ERR_NUMBER, 0 },
		{ "\"-1\"", TW_ERR_NUMBER, 0 },
		{ "\"-0\"", TW_ERR_NUMBER, 0 },
		{ "\"+1\"", TW_ERR_NUMBER, 0 },
		{ "\" 1\"", TW_ERR_NUMBER, 0 },
		{ "\"1 \"", TW_ERR_NUMBER, 0 },
		{ "\"1a\"", TW_ERR_NUMBER, 0 },
		{ "\"abc\"", TW_ERR_NUMBER, 0 },
		{ "\"1:\"", TW_ERR_NUMBER, 0 },	/* '9' + 1 */
		{ "\"/1\"", TW_ERR_NUMBER, 0 },	/* '0' - 1 */
		{ "\"0x10\"", TW_ERR_NUMBER, 0 },
		{ "\"1.0\"", TW_ERR_NUMBER, 0 },
		{ "\"1e3\"", TW_ERR_NUMBER, 0 },
		{ "\"\\u0661\"", TW_ERR_NUMBER, 0 },	/* Arabic-Indic one */
		{ "-1", TW_ERR_NUMBER, 0 },
		{ "1.0", TW_ERR_NUMBER, 0 },
		{ "1.5", TW_ERR_NUMBER, 0 },
		{ "1e3", TW_ERR_NUMBER, 0 },
		{ "true", TW_ERR_NUMBER, 0 },
		{ "null", TW_ERR_NUMBER, 0 },
		{ "[1]", TW_ERR_NUMBER, 0 },
		{ "{}", TW_ERR_NUMBER, 0 },
		/* jansson itself refuses an integer past 64 bits */
		{ "99999999999999999999", TW_ERR_JSON, 0 },
	};
	struct tw_msg m = {0};
	size_t i;

	for (i = 0; i < NCASES(cases); i++) {
		int rc;

		rc = media_with(&m, cases[i].json, "\"1\"", "\"20\"");
		if (rc != cases[i].rc)
			TEST_FAIL_("sequenceNumber %s: %d, want %d",
			    cases[i].json, rc, cases[i].rc);
		if (rc == TW_OK) {
			ASSERT_EQ(m.has_seq, 1);
			ASSERT_UEQ(m.seq, cases[i].value);
			ASSERT_UEQ(m.chunk, 1);
			ASSERT_UEQ(m.timestamp, 20);
		}
		rc = media_with(&m, "\"5\"", cases[i].json, "\"20\"");
		if (rc != cases[i].rc)
			TEST_FAIL_("chunk %s: %d, want %d",
			    cases[i].json, rc, cases[i].rc);
		if (rc == TW_OK)
			ASSERT_UEQ(m.chunk, cases[i].value);
		rc = media_with(&m, "\"5\"", "\"1\"", cases[i].json);
		if (rc != cases[i].rc)
			TEST_FAIL_("timestamp %s: %d, want %d",
			    cases[i].json, rc, cases[i].rc);
		if (rc == TW_OK)
			ASSERT_UEQ(m.timestamp, cases[i].value);
	}
	tw_msg_free(&m);
}

TEST(twilio_media_optional_fields)
{
	struct tw_msg m = {0};

	/* no chunk, timestamp, track or sequenceNumber */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"media\",\"streamSid\":\"%s\","
	    "\"media\":{\"payload\":\"AAAA\"}}", MZ), TW_OK);
	ASSERT_EQ(m.has_seq, 0);
	ASSERT_UEQ(m.chunk, 0);
	ASSERT_UEQ(m.timestamp, 0);
	ASSERT_STR_EQ(m.track, "");
	ASSERT_UEQ(m.audio_len, 3);
	/* unknown fields anywhere are ignored */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"media\",\"streamSid\":\"%s\","
	    "\"x\":[1,{\"y\":null}],\"media\":{\"payload\":\"AAAA\","
	    "\"z\":true}}", MZ), TW_OK);
	/* a track that does not fit, or is not a string */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"media\",\"streamSid\":\"%s\","
	    "\"media\":{\"payload\":\"AAAA\",\"track\":"
	    "\"0123456789abcdef\"}}", MZ), TW_ERR_TOOBIG);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"media\",\"streamSid\":\"%s\","
	    "\"media\":{\"payload\":\"AAAA\",\"track\":1}}", MZ), TW_ERR_FIELD);
	/* streamSid is required on media */
	ASSERT_EQ(parse("{\"event\":\"media\",\"media\":{\"payload\":\"AAAA\"}}",
	    &m), TW_ERR_FIELD);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"media\",\"streamSid\":\"%s\"}",
	    MZ), TW_ERR_FIELD);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"media\",\"streamSid\":\"%s\","
	    "\"media\":\"AAAA\"}", MZ), TW_ERR_FIELD);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"media\",\"streamSid\":\"%s\","
	    "\"media\":{}}", MZ), TW_ERR_FIELD);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"media\",\"streamSid\":\"%s\","
	    "\"media\":{\"payload\":null}}", MZ), TW_ERR_FIELD);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"media\",\"streamSid\":\"%s\","
	    "\"media\":{\"payload\":1234}}", MZ), TW_ERR_FIELD);
	tw_msg_free(&m);
}

static int
media_payload(struct tw_msg *m, char **keep, const char *payload_json)
{
	return parsef(m, keep, "{\"event\":\"media\",\"streamSid\":\"%s\","
	    "\"media\":{\"payload\":\"%s\"}}", MZ, payload_json);
}

TEST(twilio_media_payload_base64)
{
	static const struct {
		const char	*json;		/* as written inside the quotes */
		int		 rc;
		size_t		 audio;
	} cases[] = {
		{ "", TW_OK, 0 },
		{ "AAAA", TW_OK, 3 },
		{ "AA==", TW_OK, 1 },
		{ "AAA=", TW_OK, 2 },
		{ "+/+/", TW_OK, 3 },
		{ "AAAAAAAA", TW_OK, 6 },
		{ "A", TW_ERR_BASE64, 0 },
		{ "AA", TW_ERR_BASE64, 0 },
		{ "AAA", TW_ERR_BASE64, 0 },
		{ "AAAAA", TW_ERR_BASE64, 0 },
		{ "A===", TW_ERR_BASE64, 0 },
		{ "====", TW_ERR_BASE64, 0 },
		{ "=AAA", TW_ERR_BASE64, 0 },
		{ "AA=A", TW_ERR_BASE64, 0 },
		{ "AA==AAAA", TW_ERR_BASE64, 0 },
		{ "AAA=AAAA", TW_ERR_BASE64, 0 },
		{ "AA-_", TW_ERR_BASE64, 0 },	/* base64url */
		{ "AA A", TW_ERR_BASE64, 0 },
		{ "AAAA\\n", TW_ERR_BASE64, 0 },
		{ "AA\\r\\nAA", TW_ERR_BASE64, 0 },
		{ "AA\\u00e9A", TW_ERR_BASE64, 0 },
		{ "AA.A", TW_ERR_BASE64, 0 },
	};
	struct tw_msg m = {0};
	size_t i;

	for (i = 0; i < NCASES(cases); i++) {
		int rc = media_payload(&m, NULL, cases[i].json);

		if (rc != cases[i].rc)
			TEST_FAIL_("payload \"%s\": %d, want %d",
			    cases[i].json, rc, cases[i].rc);
		if (rc == TW_OK) {
			ASSERT_UEQ(m.payload_len, strlen(cases[i].json));
			ASSERT_UEQ(m.audio_len, cases[i].audio);
			ASSERT_NOT_NULL(m.payload);
		} else {
			ASSERT_NULL(m.payload);
			ASSERT_UEQ(m.payload_len, 0);
		}
	}
	tw_msg_free(&m);
}

TEST(twilio_b64_decoded_len)
{
	ASSERT_EQ(b64_decoded_len("", 0), 0);
	ASSERT_EQ(b64_decoded_len("AAAA", 4), 3);
	ASSERT_EQ(b64_decoded_len("AAA=", 4), 2);
	ASSERT_EQ(b64_decoded_len("AA==", 4), 1);
	ASSERT_EQ(b64_decoded_len("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28), 20);
	ASSERT_EQ(b64_decoded_len("AAAA", 3), -1);
	ASSERT_EQ(b64_decoded_len("A===", 4), -1);
	ASSERT_EQ(b64_decoded_len("AA\0A", 4), -1);
	ASSERT_EQ(b64_decoded_len("AB=C", 4), -1);
	ASSERT_EQ(b64_decoded_len("AAAA====", 8), -1);
	/* every byte value in every position */
	for (int pos = 0; pos < 4; pos++) {
		for (int c = 0; c < 256; c++) {
			char s[4] = { 'Q', 'U', 'J', 'D' };
			int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
			    || (c >= '0' && c <= '9') || c == '+' || c == '/';
			long want;

			s[pos] = (char)c;
			if (ok)
				want = 3;
			else if (c == '=' && pos == 3)
				want = 2;
			else
				want = -1;
			ASSERT_EQ(b64_decoded_len(s, 4), want);
		}
	}
}

/* The typical 20 ms frame: 160 bytes of μ-law silence, 216 characters. */
TEST(twilio_media_frame_160)
{
	struct tw_msg m = {0};
	char payload[217], *keep;
	int i;

	for (i = 0; i < 216; i++)
		payload[i] = '/';
	payload[216] = '\0';
	ASSERT_EQ(media_payload(&m, &keep, payload), TW_OK);
	ASSERT_UEQ(m.payload_len, 216);
	ASSERT_UEQ(m.audio_len, 162);
	ASSERT(in_buf(m.payload, keep, strlen(keep)));
	free(keep);

	/* 160 0xff bytes: "////" per 3 bytes, and "/w==" for the last one */
	for (i = 0; i < 212; i++)
		payload[i] = '/';
	memcpy(payload + 212, "/w==", 5);
	ASSERT_EQ(media_payload(&m, NULL, payload), TW_OK);
	ASSERT_UEQ(m.payload_len, 216);
	ASSERT_UEQ(m.audio_len, 160);
	tw_msg_free(&m);
}

TEST(twilio_media_payload_escaped)
{
	struct tw_msg m = {0};
	char *keep;

	/* "\/" is a legal escape for '/': the value must be unescaped */
	ASSERT_EQ(media_payload(&m, &keep, "\\/\\/7+\\/v7+"), TW_OK);
	ASSERT_UEQ(m.payload_len, 8);
	ASSERT_MEM_EQ(m.payload, "//7+/v7+", 8);
	ASSERT_NOT_NULL(m.payload_buf);
	ASSERT(m.payload == m.payload_buf);
	free(keep);
	ASSERT_MEM_EQ(m.payload, "//7+/v7+", 8);	/* survives the input */

	/* \u escapes too */
	ASSERT_EQ(media_payload(&m, &keep, "\\u0041AAA"), TW_OK);
	ASSERT_MEM_EQ(m.payload, "AAAA", 4);
	free(keep);

	/* the buffer is kept and reused; an unescaped one points into input */
	char *before = m.payload_buf;
	ASSERT_EQ(media_payload(&m, &keep, "AAAABBBB"), TW_OK);
	ASSERT(m.payload_buf == before);
	ASSERT(in_buf(m.payload, keep, strlen(keep)));
	free(keep);

	/* growth past the first allocation: "\/AAA" decodes to "/AAA" */
	size_t units = 1000;
	char *big = malloc(5 * units + 1);
	ASSERT_NOT_NULL(big);
	for (size_t i = 0; i < units; i++)
		memcpy(big + 5 * i, "\\/AAA", 5);
	big[5 * units] = '\0';
	ASSERT_EQ(media_payload(&m, &keep, big), TW_OK);
	free(keep);
	free(big);
	ASSERT_UEQ(m.payload_len, 4 * units);
	ASSERT_UEQ(m.audio_len, 3 * units);
	ASSERT(m.payload == m.payload_buf);
	ASSERT_GE(m.payload_cap, 4 * units);
	for (size_t i = 0; i < units; i++)
		ASSERT_MEM_EQ(m.payload + 4 * i, "/AAA", 4);
	tw_msg_free(&m);
	ASSERT_NULL(m.payload_buf);
	ASSERT_UEQ(m.payload_cap, 0);
}

TEST(twilio_media_payload_limit)
{
	struct tw_msg m = {0};
	char *p = malloc(TW_PAYLOAD_MAX + 5), *keep;

	ASSERT_NOT_NULL(p);
	memset(p, 'A', TW_PAYLOAD_MAX);
	p[TW_PAYLOAD_MAX] = '\0';
	ASSERT_EQ(media_payload(&m, &keep, p), TW_OK);
	ASSERT_UEQ(m.payload_len, TW_PAYLOAD_MAX);
	ASSERT_UEQ(m.audio_len, TW_PAYLOAD_MAX / 4 * 3);
	ASSERT(in_buf(m.payload, keep, strlen(keep)));
	free(keep);
	memcpy(p + TW_PAYLOAD_MAX, "AAAA", 5);
	ASSERT_EQ(media_payload(&m, NULL, p), TW_ERR_TOOBIG);
	free(p);
	tw_msg_free(&m);
}

/* dtmf, mark, stop ----------------------------------------------------- */

TEST(twilio_dtmf_digits)
{
	static const char ok[] = "0123456789*#ABCD";
	static const char *const bad[] = {
		"\"E\"", "\"a\"", "\"d\"", "\"\"", "\"77\"", "\" 7\"", "7",
		"null", "\"\\u0000\"", "\"+\"",
	};
	struct tw_msg m = {0};
	size_t i;

	for (i = 0; ok[i] != '\0'; i++) {
		ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"dtmf\",\"streamSid\":"
		    "\"%s\",\"sequenceNumber\":\"2\",\"dtmf\":{\"digit\":\"%c\"}}",
		    MZ, ok[i]), TW_OK);
		ASSERT_EQ(m.digit[0], ok[i]);
		ASSERT_EQ(m.digit[1], '\0');
		ASSERT_STR_EQ(m.track, "");
	}
	for (i = 0; i < NCASES(bad); i++) {
		int rc = parsef(&m, NULL, "{\"event\":\"dtmf\",\"streamSid\":"
		    "\"%s\",\"dtmf\":{\"digit\":%s}}", MZ, bad[i]);
		if (rc != TW_ERR_DIGIT && !(rc == TW_ERR_JSON &&
		    strstr(bad[i], "u0000")))
			TEST_FAIL_("digit %s: %d", bad[i], rc);
	}
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"dtmf\",\"streamSid\":\"%s\","
	    "\"dtmf\":{}}", MZ), TW_ERR_DIGIT);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"dtmf\",\"streamSid\":\"%s\"}",
	    MZ), TW_ERR_DIGIT);
	tw_msg_free(&m);
}

TEST(twilio_mark_names)
{
	struct tw_msg m = {0};
	char name[300];

	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"mark\",\"streamSid\":\"%s\","
	    "\"mark\":{\"name\":\"a\\\"b\\\\c\\n\\u0001\\u00e9\"}}", MZ), TW_OK);
	ASSERT_STR_EQ(m.mark_name, "a\"b\\c\n\x01\xc3\xa9");
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"mark\",\"streamSid\":\"%s\","
	    "\"mark\":{\"name\":\"\"}}", MZ), TW_OK);
	ASSERT_STR_EQ(m.mark_name, "");

	memset(name, 'x', 255);
	name[255] = '\0';
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"mark\",\"streamSid\":\"%s\","
	    "\"mark\":{\"name\":\"%s\"}}", MZ, name), TW_OK);
	ASSERT_STR_EQ(m.mark_name, name);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"mark\",\"streamSid\":\"%s\","
	    "\"mark\":{\"name\":\"%sx\"}}", MZ, name), TW_ERR_TOOBIG);

	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"mark\",\"streamSid\":\"%s\","
	    "\"mark\":{}}", MZ), TW_ERR_FIELD);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"mark\",\"streamSid\":\"%s\","
	    "\"mark\":{\"name\":5}}", MZ), TW_ERR_FIELD);
	/* the shape one demo sends: no mark object */
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"mark\",\"streamSid\":\"%s\","
	    "\"name\":\"x\"}", MZ), TW_ERR_FIELD);
	tw_msg_free(&m);
}

TEST(twilio_stop_variants)
{
	struct tw_msg m = {0};

	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"stop\",\"streamSid\":\"%s\"}",
	    MZ), TW_OK);
	ASSERT_EQ(m.event, TW_STOP);
	ASSERT_STR_EQ(m.call_sid, "");
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"stop\",\"streamSid\":\"%s\","
	    "\"stop\":{}}", MZ), TW_OK);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"stop\",\"streamSid\":\"%s\","
	    "\"stop\":{\"callSid\":\"C\"}}", MZ), TW_ERR_SID);
	ASSERT_EQ(parsef(&m, NULL, "{\"event\":\"stop\",\"streamSid\":\"%s\","
	    "\"stop\":\"bye\"}", MZ), TW_ERR_FIELD);
	ASSERT_EQ(parse("{\"event\":\"stop\"}", &m), TW_ERR_FIELD);
	tw_msg_free(&m);
}

/* events, SIDs, JSON ---------------------------------------------------- */

TEST(twilio_unknown_event)
{
	struct tw_msg m = {0};

	ASSERT_EQ(parse("{\"event\":\"transcription\",\"x\":{\"y\":[1,2]}}", &m),
	    TW_OK);
	ASSERT_EQ(m.event, TW_UNKNOWN);
	ASSERT_STR_EQ(m.event_name, "transcription");
	/* not checked further, whatever else it carries */
	ASSERT_EQ(parse("{\"event\":\"newthing\",\"sequenceNumber\":\"x\","
	    "\"streamSid\":7}", &m), TW_OK);
	ASSERT_EQ(m.event, TW_UNKNOWN);
	ASSERT_EQ(m.has_seq, 0);
	/* case matters */
	ASSERT_EQ(parse("{\"event\":\"Media\"}", &m), TW_OK);
	ASSERT_EQ(m.event, TW_UNKNOWN);
	ASSERT_EQ(parse("{\"event\":\"\"}", &m), TW_OK);
	ASSERT_EQ(m.event, TW_UNKNOWN);
	ASSERT_STR_EQ(m.event_name, "");
	/* truncated to 31 characters, control characters made harmless */
	ASSERT_EQ(parse("{\"event\":\"abcdefghijklmnopqrstuvwxyz0123456789\"}",
	    &m), TW_OK);
	ASSERT_STR_EQ(m.event_name, "abcdefghijklmnopqrstuvwxyz01234");
	ASSERT_EQ(parse("{\"event\":\"a\\nb\\u001bc\\u00e9\"}", &m), TW_OK);
	ASSERT_STR_EQ(m.event_name, "a?b?c??");
	/* a known name with a suffix is not the known event */
	ASSERT_EQ(parse("{\"event\":\"mediax\"}", &m), TW_OK);
	ASSERT_EQ(m.event, TW_UNKNOWN);
	tw_msg_free(&m);
}

TEST(twilio_bad_json)
{
	static const char *const cases[] = {
		"", " ", "{", "}", "[]", "[{\"event\":\"stop\"}]", "\"media\"",
		"1", "null", "{\"event\":\"connected\"", "{\"event\":connected}",
		"{'event':'connected'}", "{\"event\":\"connected\",}",
		"{\"event\":\"connected\"} {}", "{\"event\":\"connected\"}x",
		"{\"event\":\"connected\",\"event\":\"connected\"}",
		"{\"event\":\"\xff\"}", "{\"event\":\"\xc0\xaf\"}",
		"{\"event\":\"\\ud800\"}", "{\"event\":\"a\\u0000b\"}",
	};
	struct tw_msg m = {0};
	size_t i;

	for (i = 0; i < NCASES(cases); i++) {
		int rc = parse(cases[i], &m);
		if (rc != TW_ERR_JSON)
			TEST_FAIL_("case %zu \"%s\": %d", i, cases[i], rc);
	}
	/* a NUL byte inside the buffer */
	ASSERT_EQ(tw_parse("{\"event\":\"stop\"}\0", 17, &m), TW_ERR_JSON);
	/* trailing whitespace is fine */
	ASSERT_EQ(parse("{\"event\":\"connected\"}\r\n ", &m), TW_OK);
	/* the length is honoured: bytes past it are not read */
	ASSERT_EQ(tw_parse("{\"event\":\"connected\"}garbage", 21, &m), TW_OK);
	ASSERT_EQ(m.event, TW_CONNECTED);

	ASSERT_EQ(parse("{}", &m), TW_ERR_EVENT);
	ASSERT_EQ(parse("{\"Event\":\"media\"}", &m), TW_ERR_EVENT);
	ASSERT_EQ(parse("{\"event\":1}", &m), TW_ERR_EVENT);
	ASSERT_EQ(parse("{\"event\":null}", &m), TW_ERR_EVENT);
	ASSERT_EQ(parse("{\"event\":[\"media\"]}", &m), TW_ERR_EVENT);
	tw_msg_free(&m);
}

TEST(twilio_sids)
{
	static const struct {
		const char	*sid;
		int		 rc;
	} cases[] = {
		{ "MZ", TW_OK },
		{ "ab", TW_OK },
		{ "MZ22222222222222222222222222222222", TW_OK },
		{ "MZ2222222222222222222222222222222222222222222222222222222222222"
		    "2", TW_OK },				/* 64 */
		{ "MZ2222222222222222222222222222222222222222222222222222222222222"
		    "22", TW_ERR_SID },				/* 65 */
		{ "M", TW_ERR_SID },
		{ "", TW_ERR_SID },
		{ "MZ-2", TW_ERR_SID },
		{ "MZ 2", TW_ERR_SID },
		{ "MZ_2", TW_ERR_SID },
		{ "MZ\\\"2", TW_ERR_SID },
		{ "MZ\\u00e92", TW_ERR_SID },
		{ "MZ2\\n", TW_ERR_SID },
	};
	struct tw_msg m = {0};
	size_t i;

	for (i = 0; i < NCASES(cases); i++) {
		int rc = parsef(&m, NULL, "{\"event\":\"mark\",\"streamSid\":"
		    "\"%s\",\"mark\":{\"name\":\"n\"}}", cases[i].sid);
		if (rc != cases[i].rc)
			TEST_FAIL_("sid \"%s\": %d, want %d", cases[i].sid, rc,
			    cases[i].rc);
	}
	ASSERT_EQ(parse("{\"event\":\"mark\",\"streamSid\":12,"
	    "\"mark\":{\"name\":\"n\"}}", &m), TW_ERR_FIELD);
	ASSERT_EQ(parse("{\"event\":\"mark\",\"streamSid\":null,"
	    "\"mark\":{\"name\":\"n\"}}", &m), TW_ERR_FIELD);
	/* connected may carry one, and it is checked when it does */
	ASSERT_EQ(parse("{\"event\":\"connected\",\"streamSid\":\"M-\"}", &m),
	    TW_ERR_SID);
	tw_msg_free(&m);
}

/* A reused struct carries nothing over from the previous message. */
TEST(twilio_reuse)
{
	struct tw_msg m = {0};
	const char *media = "{\"event\":\"media\",\"sequenceNumber\":\"9\","
	    "\"streamSid\":\"" MZ "\",\"media\":{\"track\":\"inbound\","
	    "\"chunk\":\"3\",\"timestamp\":\"60\",\"payload\":\"AAAA\"}}";

	ASSERT_EQ(parse(start_example, &m), TW_OK);
	ASSERT_EQ(parse(media, &m), TW_OK);
	ASSERT_EQ(m.nparams, 0);
	ASSERT_STR_EQ(m.call_sid, "");
	ASSERT_STR_EQ(m.encoding, "");
	ASSERT_EQ(parse("{\"event\":\"connected\"}", &m), TW_OK);
	ASSERT_EQ(m.has_seq, 0);
	ASSERT_STR_EQ(m.stream_sid, "");
	ASSERT_STR_EQ(m.track, "");
	ASSERT_NULL(m.payload);
	ASSERT_UEQ(m.payload_len, 0);
	ASSERT_UEQ(m.chunk, 0);
	tw_msg_free(&m);
	tw_msg_free(&m);	/* twice is harmless */
}

TEST(twilio_names)
{
	ASSERT_STR_EQ(tw_event_name(TW_MEDIA), "media");
	ASSERT_STR_EQ(tw_event_name(TW_CONNECTED), "connected");
	ASSERT_STR_EQ(tw_event_name(TW_STOP), "stop");
	ASSERT_STR_EQ(tw_event_name(TW_UNKNOWN), "unknown");
	ASSERT_STR_EQ(tw_event_name((enum tw_event)99), "unknown");
	for (int e = TW_ERR_BASE64; e <= TW_OK; e++)
		ASSERT_NOT_NULL(tw_strerror(e));
	ASSERT_STR_EQ(tw_strerror(TW_OK), "ok");
	ASSERT_STR_EQ(tw_strerror(-99), "unknown error");
}

/* Allocation-failure sweep: fail jansson's nth allocation for every n. */

static int alloc_left;

static void *
failing_malloc(size_t n)
{
	if (alloc_left == 0)
		return NULL;
	alloc_left--;
	return malloc(n);
}

TEST(twilio_alloc_failures)
{
	struct tw_msg m = {0};
	int n, rc = TW_ERR_JSON;

	json_set_alloc_funcs(failing_malloc, free);
	for (n = 0; n < 10000; n++) {
		alloc_left = n;
		rc = parse(start_example, &m);
		if (rc == TW_OK)
			break;
		ASSERT_EQ(rc, TW_ERR_JSON);
	}
	ASSERT_EQ(rc, TW_OK);
	ASSERT_GT(n, 0);
	ASSERT_STR_EQ(tw_param(&m, "persona"), "cold-call-3");
	json_set_alloc_funcs(malloc, free);
	tw_msg_free(&m);
}

/* Builders -------------------------------------------------------------- */

/*
 * Check that a builder writes exactly want (and its NUL) with enough room,
 * and fails with -1 for every smaller cap, without writing past cap.
 */
#define CHECK_BUILDER(want, call_with_cap) do {				\
	size_t want_len_ = strlen(want), cap_;				\
	char *o_ = malloc(want_len_ + 16);				\
	ASSERT_NOT_NULL(o_);						\
	for (cap_ = 0; cap_ <= want_len_; cap_++) {			\
		memset(o_, '#', want_len_ + 16);			\
		char *out = o_;						\
		size_t cap = cap_;					\
		if ((call_with_cap) != -1)				\
			TEST_FAIL_("cap %zu of %zu accepted", cap_,	\
			    want_len_ + 1);				\
		for (size_t k_ = cap_; k_ < want_len_ + 16; k_++)	\
			if (o_[k_] != '#')				\
				TEST_FAIL_("cap %zu: wrote at %zu",	\
				    cap_, k_);				\
	}								\
	for (cap_ = want_len_ + 1; cap_ < want_len_ + 16; cap_++) {	\
		char *out = o_;						\
		size_t cap = cap_;					\
		memset(o_, '#', want_len_ + 16);			\
		ASSERT_EQ((call_with_cap), (long long)want_len_);	\
		ASSERT_STR_EQ(o_, want);				\
	}								\
	free(o_);							\
} while (0)

TEST(twilio_build_media)
{
	CHECK_BUILDER("{\"event\":\"media\",\"streamSid\":\"" MZ "\","
	    "\"media\":{\"payload\":\"f39/f3/+/v7+\"}}",
	    tw_build_media(out, cap, MZ, "f39/f3/+/v7+", 12));
	/* the length is honoured: only payload_len bytes are taken */
	CHECK_BUILDER("{\"event\":\"media\",\"streamSid\":\"" MZ "\","
	    "\"media\":{\"payload\":\"AAAA\"}}",
	    tw_build_media(out, cap, MZ, "AAAABBBB", 4));
	CHECK_BUILDER("{\"event\":\"media\",\"streamSid\":\"" MZ "\","
	    "\"media\":{\"payload\":\"\"}}",
	    tw_build_media(out, cap, MZ, "", 0));
}

TEST(twilio_build_mark)
{
	CHECK_BUILDER("{\"event\":\"mark\",\"streamSid\":\"" MZ "\","
	    "\"mark\":{\"name\":\"r7-i3-1840\"}}",
	    tw_build_mark(out, cap, MZ, "r7-i3-1840"));
	CHECK_BUILDER("{\"event\":\"mark\",\"streamSid\":\"" MZ "\","
	    "\"mark\":{\"name\":\"\"}}",
	    tw_build_mark(out, cap, MZ, ""));
	CHECK_BUILDER("{\"event\":\"mark\",\"streamSid\":\"" MZ "\","
	    "\"mark\":{\"name\":\"a\\\"b\\\\c\\\\/d\"}}",
	    tw_build_mark(out, cap, MZ, "a\"b\\c\\/d"));
}

TEST(twilio_build_clear)
{
	CHECK_BUILDER("{\"event\":\"clear\",\"streamSid\":\"" MZ "\"}",
	    tw_build_clear(out, cap, MZ));
	CHECK_BUILDER("{\"event\":\"clear\",\"streamSid\":\"ab\"}",
	    tw_build_clear(out, cap, "ab"));
}

TEST(twilio_build_mark_escapes)
{
	char name[40], buf[512];
	struct tw_msg m = {0};
	int n, i;

	CHECK_BUILDER("{\"event\":\"mark\",\"streamSid\":\"" MZ "\","
	    "\"mark\":{\"name\":\"q\\\"b\\\\\\n\\r\\t\\b\\f\\u0001\\u001f"
	    "\x7f\xc3\xa9\"}}",
	    tw_build_mark(out, cap, MZ, "q\"b\\\n\r\t\b\f\x01\x1f\x7f\xc3\xa9"));

	/* every control character survives a round trip through the parser */
	for (i = 1; i < 0x20; i++) {
		snprintf(name, sizeof(name), "a%cb\"c\\", i);
		n = tw_build_mark(buf, sizeof(buf), MZ, name);
		ASSERT_GT(n, 0);
		ASSERT_EQ(tw_parse(buf, (size_t)n, &m), TW_OK);
		ASSERT_EQ(m.event, TW_MARK);
		ASSERT_STR_EQ(m.stream_sid, MZ);
		ASSERT_STR_EQ(m.mark_name, name);
	}
	tw_msg_free(&m);
}

TEST(twilio_build_round_trip)
{
	struct tw_msg m = {0};
	char out[1024], payload[217];
	int n;

	memset(payload, '/', 212);
	memcpy(payload + 212, "/w==", 5);
	n = tw_build_media(out, sizeof(out), MZ, payload, 216);
	ASSERT_GT(n, 0);
	{	/* the relay's unchecked variant writes the same bytes */
		char out2[1024];
		ASSERT_EQ(tw_build_media_parsed(out2, sizeof(out2), MZ, payload,
		    216), n);
		ASSERT_MEM_EQ(out2, out, (size_t)n);
	}
	ASSERT_EQ(tw_parse(out, (size_t)n, &m), TW_OK);
	ASSERT_EQ(m.event, TW_MEDIA);
	ASSERT_STR_EQ(m.stream_sid, MZ);
	ASSERT_UEQ(m.payload_len, 216);
	ASSERT_UEQ(m.audio_len, 160);
	ASSERT_MEM_EQ(m.payload, payload, 216);
	ASSERT(in_buf(m.payload, out, (size_t)n));

	n = tw_build_clear(out, sizeof(out), MZ);
	ASSERT_GT(n, 0);
	/* our own clear is an event we do not receive: unknown, but valid */
	ASSERT_EQ(tw_parse(out, (size_t)n, &m), TW_OK);
	ASSERT_EQ(m.event, TW_UNKNOWN);
	ASSERT_STR_EQ(m.event_name, "clear");
	tw_msg_free(&m);
}

TEST(twilio_build_refuses_bad_input)
{
	char out[1024];

	ASSERT_EQ(tw_build_clear(out, sizeof(out), ""), -1);
	ASSERT_EQ(tw_build_clear(out, sizeof(out), "M"), -1);
	ASSERT_EQ(tw_build_clear(out, sizeof(out), "MZ\"1"), -1);
	ASSERT_EQ(tw_build_clear(out, sizeof(out), NULL), -1);
	ASSERT_EQ(tw_build_clear(out, sizeof(out),
	    "MZ22222222222222222222222222222222222222222222222222222222222222"
	    "2"), -1);
	ASSERT_EQ(tw_build_mark(out, sizeof(out), "MZ-1", "x"), -1);
	ASSERT_EQ(tw_build_mark(out, sizeof(out), MZ, NULL), -1);
	ASSERT_EQ(tw_build_media(out, sizeof(out), MZ, "AA\"A", 4), -1);
	ASSERT_EQ(tw_build_media(out, sizeof(out), MZ, "AAA", 3), -1);
	ASSERT_EQ(tw_build_media(out, sizeof(out), MZ, NULL, 4), -1);
	ASSERT_EQ(tw_build_media(out, sizeof(out), "M", "AAAA", 4), -1);
	ASSERT_EQ(tw_build_media(NULL, 0, MZ, "AAAA", 4), -1);
}

TEST(twilio_build_big_payload)
{
	size_t n = 3 * 65536;
	char *payload = malloc(n), *out = malloc(n + 200);
	int len;

	ASSERT_NOT_NULL(payload);
	ASSERT_NOT_NULL(out);
	memset(payload, 'A', n);
	len = tw_build_media(out, n + 200, MZ, payload, n);
	ASSERT_GT(len, (long long)n);
	ASSERT_EQ(out[len], '\0');
	ASSERT_MEM_EQ(out + len - 3 - 4, "AAAA\"}}", 7);
	ASSERT_EQ(tw_build_media(out, n + 10, MZ, payload, n), -1);
	free(payload);
	free(out);
}

/*
 * The fast path for `media` must agree with the full parser on every
 * input: same result code, same fields.  Thousands of mutations of real
 * media messages: byte flips, cuts, insertions, reordered keys, escapes.
 */
static void
same_result(const char *buf, size_t len)
{
	static struct tw_msg a, b;
	int ra = tw_parse(buf, len, &a);
	int rb = tw_parse_full(buf, len, &b);

	if (ra != rb)
		TEST_FAIL_("fast %d vs full %d on: %.*s", ra, rb, (int)len, buf);
	if (ra != TW_OK)
		return;
	ASSERT_EQ(a.event, b.event);
	ASSERT_STR_EQ(a.event_name, b.event_name);
	ASSERT_EQ(a.has_seq, b.has_seq);
	ASSERT_UEQ(a.seq, b.seq);
	ASSERT_STR_EQ(a.stream_sid, b.stream_sid);
	ASSERT_STR_EQ(a.mark_name, b.mark_name);
	if (a.event == TW_MEDIA) {
		ASSERT_STR_EQ(a.track, b.track);
		ASSERT_UEQ(a.chunk, b.chunk);
		ASSERT_UEQ(a.timestamp, b.timestamp);
		ASSERT_UEQ(a.payload_len, b.payload_len);
		ASSERT_UEQ(a.audio_len, b.audio_len);
		ASSERT(memcmp(a.payload, b.payload, a.payload_len) == 0);
	}
}

TEST_T(twilio_fast_media_agrees_with_full_parser, 60)
{
	static const char *seeds[] = {
		"{\"event\":\"media\",\"sequenceNumber\":\"3\",\"media\":{\"track\":"
		"\"inbound\",\"chunk\":\"2\",\"timestamp\":\"40\",\"payload\":"
		"\"//7+/v7+/39/f3/+/n9/AAECAw==\"},\"streamSid\":"
		"\"MZ22222222222222222222222222222222\"}",
		"{ \"streamSid\" : \"MZ1\", \"media\" : { \"payload\" : \"AAAA\" } , "
		"\"event\" : \"media\" }",
		"{\"event\":\"media\",\"streamSid\":\"MZab\",\"media\":{\"payload\":"
		"\"\",\"timestamp\":\"0\"},\"sequenceNumber\":\"18446744073709551615\"}",
		"{\"event\":\"media\",\"streamSid\":\"MZab\",\"media\":{\"payload\":"
		"\"QUJD\\/\",\"chunk\":7}}",
		"{\"event\":\"mark\",\"sequenceNumber\":\"88\",\"streamSid\":"
		"\"MZ22222222222222222222222222222222\",\"mark\":{\"name\":\"3.17\"}}",
		"{ \"mark\" : { \"name\" : \"\" } , \"streamSid\" : \"MZ1\", "
		"\"event\" : \"mark\" }",
	};
	char buf[512];
	unsigned seed = 12345;

	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		size_t n = strlen(seeds[s]);
		same_result(seeds[s], n);
		for (int round = 0; round < 6000; round++) {
			size_t len = n;
			memcpy(buf, seeds[s], n);
			for (int k = 0; k < 1 + round % 3; k++)
				test_mutate(buf, &len, sizeof(buf), &seed);
			same_result(buf, len);
		}
	}
}
