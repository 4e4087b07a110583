/*
 * fuzz_twilio.c — proto/twilio.c: Media Streams messages.
 *
 * Input: a mode byte, then the rest.
 *  - parse (even mode): the rest is one text message from Twilio, parsed
 *    twice with the same struct tw_msg (payload_buf reused), and once with
 *    tw_parse_full(), jansson alone, without the in-place scanner for the
 *    frequent messages (proto/jscan.h).  All three agree, field by field;
 *    a message jansson cannot read is TW_ERR_JSON; what a good
 *    parse keeps is NUL-terminated inside its array, SIDs are well formed,
 *    customParameters are found by name, the media payload points into the
 *    message or payload_buf and is base64 of audio_len bytes; a failed
 *    parse leaves no payload.
 *  - build (odd mode): a stream SID, a mark name and a payload from the
 *    input go through tw_build_mark/media/clear and back through tw_parse:
 *    the builders refuse exactly the bad SIDs and payloads, and what they
 *    build parses back to what went in (a mark name that is not UTF-8 makes
 *    a message jansson refuses, as the header says).
 * b64_decoded_len() is checked against a reference on the rest too, and
 * b64_decode() and b64_encode() against each other.
 */
#include "test/fuzz/fuzz.h"

#include <jansson.h>

#include "proto/twilio.h"

FUZZ_TARGET("twilio");

static int
b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* The reference: length a multiple of 4, the alphabet, and at most two
 * '=' at the very end. */
static long
ref_b64_len(const unsigned char *s, size_t n)
{
	size_t pad = 0, i;

	if (n % 4 != 0)
		return -1;
	while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
		pad++;
	for (i = 0; i < n - pad; i++)
		if (!b64_char(s[i]))
			return -1;
	return (long)(n / 4 * 3 - pad);
}

static int
ref_sid_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 2 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z')))
			return 0;
	return 1;
}

static void
check_str(const char *a, size_t cap)
{
	FUZZ_ASSERT(memchr(a, '\0', cap) != NULL);
}

static void
check_msg(const struct tw_msg *m, const char *buf, size_t len)
{
	check_str(m->event_name, sizeof(m->event_name));
	for (const char *c = m->event_name; *c; c++)
		FUZZ_ASSERT(*c >= 0x20 && *c < 0x7f);
	check_str(m->stream_sid, sizeof(m->stream_sid));
	check_str(m->account_sid, sizeof(m->account_sid));
	check_str(m->call_sid, sizeof(m->call_sid));
	check_str(m->encoding, sizeof(m->encoding));
	check_str(m->track, sizeof(m->track));
	check_str(m->digit, sizeof(m->digit));
	check_str(m->mark_name, sizeof(m->mark_name));
	FUZZ_ASSERT(m->event >= TW_UNKNOWN && m->event <= TW_STOP);
	FUZZ_ASSERT(m->seq <= (uint64_t)INT64_MAX);
	FUZZ_ASSERT(m->has_seq || m->seq == 0);
	if (m->event != TW_UNKNOWN && m->event != TW_CONNECTED)
		FUZZ_ASSERT(ref_sid_ok(m->stream_sid));
	if (m->account_sid[0] != '\0')
		FUZZ_ASSERT(ref_sid_ok(m->account_sid));
	if (m->call_sid[0] != '\0')
		FUZZ_ASSERT(ref_sid_ok(m->call_sid));
	FUZZ_ASSERT(m->nparams >= 0 && m->nparams <= TW_PARAMS_MAX);
	for (int i = 0; i < m->nparams; i++) {
		check_str(m->param_name[i], TW_PARAM_NAME);
		check_str(m->param_value[i], TW_PARAM_VALUE);
		FUZZ_ASSERT(tw_param(m, m->param_name[i]) == m->param_value[i]);
	}
	switch (m->event) {
	case TW_START:
		FUZZ_ASSERT(m->call_sid[0] != '\0');
		FUZZ_ASSERT(m->sample_rate >= 0 && m->channels >= 0);
		break;
	case TW_MEDIA:
		FUZZ_ASSERT(m->payload != NULL);
		FUZZ_ASSERT(m->payload_len <= TW_PAYLOAD_MAX);
		FUZZ_ASSERT(m->payload_len == 0 ||
		    (m->payload >= buf && m->payload + m->payload_len <= buf + len) ||
		    (m->payload == m->payload_buf &&
		    m->payload_len <= m->payload_cap));
		FUZZ_ASSERT(ref_b64_len((const unsigned char *)m->payload,
		    m->payload_len) == (long)m->audio_len);
		break;
	case TW_DTMF:
		FUZZ_ASSERT(m->digit[0] != '\0' && m->digit[1] == '\0');
		FUZZ_ASSERT(strchr("0123456789*#ABCD", m->digit[0]) != NULL);
		break;
	default:
		break;
	}
}

/* What tw_parse() (with its fast paths) and tw_parse_full() (jansson
 * only) made of the same message: they must not differ in anything. */
static void
same_msg(const struct tw_msg *a, const struct tw_msg *b)
{
	FUZZ_ASSERT(a->event == b->event);
	FUZZ_ASSERT(strcmp(a->event_name, b->event_name) == 0);
	FUZZ_ASSERT(a->has_seq == b->has_seq && a->seq == b->seq);
	FUZZ_ASSERT(strcmp(a->stream_sid, b->stream_sid) == 0);
	FUZZ_ASSERT(strcmp(a->account_sid, b->account_sid) == 0);
	FUZZ_ASSERT(strcmp(a->call_sid, b->call_sid) == 0);
	FUZZ_ASSERT(a->nparams == b->nparams);
	for (int i = 0; i < a->nparams; i++) {
		FUZZ_ASSERT(strcmp(a->param_name[i], b->param_name[i]) == 0);
		FUZZ_ASSERT(strcmp(a->param_value[i], b->param_value[i]) == 0);
	}
	FUZZ_ASSERT(strcmp(a->encoding, b->encoding) == 0);
	FUZZ_ASSERT(a->sample_rate == b->sample_rate);
	FUZZ_ASSERT(a->channels == b->channels);
	FUZZ_ASSERT(strcmp(a->track, b->track) == 0);
	FUZZ_ASSERT(a->chunk == b->chunk && a->timestamp == b->timestamp);
	FUZZ_ASSERT(a->payload_len == b->payload_len);
	FUZZ_ASSERT(a->audio_len == b->audio_len);
	FUZZ_ASSERT((a->payload == NULL) == (b->payload == NULL));
	FUZZ_ASSERT(a->payload_len == 0 ||
	    memcmp(a->payload, b->payload, a->payload_len) == 0);
	FUZZ_ASSERT(strcmp(a->digit, b->digit) == 0);
	FUZZ_ASSERT(strcmp(a->mark_name, b->mark_name) == 0);
}

static void
mode_parse(const uint8_t *data, size_t size)
{
	struct tw_msg m, first, full;
	json_t *j;
	char *buf = (char *)fuzz_dup(data, size);
	int rc, rc2;

	memset(&m, 0, sizeof(m));
	memset(&full, 0, sizeof(full));
	rc = tw_parse(buf, size, &m);
	FUZZ_ASSERT(tw_parse_full(buf, size, &full) == rc);
	if (rc == TW_OK)
		same_msg(&m, &full);
	tw_msg_free(&full);
	FUZZ_ASSERT(rc <= TW_OK && rc >= TW_ERR_DIGIT);
	FUZZ_ASSERT(tw_strerror(rc) != NULL);
	FUZZ_ASSERT(tw_event_name(m.event) != NULL);
	j = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
	if (j == NULL)
		FUZZ_ASSERT(rc == TW_ERR_JSON);
	json_decref(j);
	if (rc == TW_OK)
		check_msg(&m, buf, size);
	else
		FUZZ_ASSERT(m.payload == NULL && m.payload_len == 0);

	/* again, reusing payload_buf: the same answer */
	first = m;
	rc2 = tw_parse(buf, size, &m);
	FUZZ_ASSERT(rc2 == rc);
	FUZZ_ASSERT(m.event == first.event && m.seq == first.seq &&
	    m.payload_len == first.payload_len && m.audio_len == first.audio_len);
	FUZZ_ASSERT(strcmp(m.stream_sid, first.stream_sid) == 0);
	FUZZ_ASSERT(strcmp(m.mark_name, first.mark_name) == 0);
	FUZZ_ASSERT(m.payload_len == 0 ||
	    memcmp(m.payload, first.payload, m.payload_len) == 0);
	tw_msg_free(&m);
	free(buf);
}

static void
mode_build(struct fuzz_in *in)
{
	struct tw_msg m;
	size_t cap = fuzz_u8(in) * 8 + 1, nlen, plen;
	char *sid, *name, *payload, *out;
	int sid_ok, n, rc;
	long dl;

	sid = fuzz_part(in, NULL);
	name = fuzz_part(in, &nlen);
	payload = fuzz_part(in, &plen);
	out = malloc(cap);
	if (out == NULL)
		abort();
	memset(&m, 0, sizeof(m));
	sid_ok = ref_sid_ok(sid);

	n = tw_build_mark(out, cap, sid, name);
	FUZZ_ASSERT(sid_ok || n == -1);
	FUZZ_ASSERT(n == -1 || ((size_t)n < cap && strlen(out) == (size_t)n));
	if (n > 0) {
		rc = tw_parse(out, (size_t)n, &m);
		if (!fuzz_utf8_ok((const unsigned char *)name, nlen))
			FUZZ_ASSERT(rc == TW_ERR_JSON);
		else if (nlen >= TW_MARK_MAX)
			FUZZ_ASSERT(rc == TW_ERR_TOOBIG);
		else {
			FUZZ_ASSERT(rc == TW_OK && m.event == TW_MARK);
			FUZZ_ASSERT(strcmp(m.mark_name, name) == 0);
			FUZZ_ASSERT(strcmp(m.stream_sid, sid) == 0);
		}
	}

	dl = ref_b64_len((const unsigned char *)payload, plen);
	n = tw_build_media(out, cap, sid, payload, plen);
	FUZZ_ASSERT((sid_ok && dl >= 0) || n == -1);
	FUZZ_ASSERT(n == -1 || ((size_t)n < cap && strlen(out) == (size_t)n));
	if (n > 0) {
		rc = tw_parse(out, (size_t)n, &m);
		FUZZ_ASSERT(rc == TW_OK && m.event == TW_MEDIA);
		FUZZ_ASSERT(m.payload_len == plen && (long)m.audio_len == dl);
		FUZZ_ASSERT(plen == 0 || memcmp(m.payload, payload, plen) == 0);
		FUZZ_ASSERT(strcmp(m.stream_sid, sid) == 0);
	}

	n = tw_build_clear(out, cap, sid);
	FUZZ_ASSERT(sid_ok || n == -1);
	if (n > 0) {
		rc = tw_parse(out, (size_t)n, &m);
		FUZZ_ASSERT(rc == TW_OK && m.event == TW_UNKNOWN);
		FUZZ_ASSERT(strcmp(m.event_name, "clear") == 0);
	}
	tw_msg_free(&m);
	free(out);
	free(sid);
	free(name);
	free(payload);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_u8(&in);
	uint8_t *p;

	p = fuzz_dup(in.p, in.n);
	long want = ref_b64_len(p, in.n);
	FUZZ_ASSERT(b64_decoded_len((const char *)p, in.n) == want);
	{	/* decoding agrees, and encoding gives back what it read
		 * (but for unused low bits of a padded last group) */
		unsigned char *raw = malloc(in.n / 4 * 3 + 1);
		char *enc = malloc(in.n + 5);
		FUZZ_ASSERT(raw != NULL && enc != NULL);
		long got = b64_decode((const char *)p, in.n, raw);
		FUZZ_ASSERT(got == want);
		if (got > 0) {
			size_t el = b64_encode(raw, (size_t)got, enc);
			FUZZ_ASSERT(el == in.n);
			FUZZ_ASSERT(memcmp(enc, p, el - 4) == 0);
		}
		free(raw);
		free(enc);
	}
	free(p);
	if (mode & 1)
		mode_build(&in);
	else
		mode_parse(in.p, in.n);
	return 0;
}
