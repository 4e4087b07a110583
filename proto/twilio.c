/*
 * twilio.c — see twilio.h.
 *
 * Parsing goes through jansson (duplicate keys rejected, no NUL inside
 * strings); the tree is dropped before tw_parse() returns, so everything
 * kept is copied into struct tw_msg.  The one exception is the media
 * payload, the only large field: it is located in the caller's buffer
 * with memmem() over the raw message.  A validated base64 string holds no
 * quote or backslash, so if its exact bytes appear anywhere in buf they are
 * the payload's bytes (wherever memmem finds them).  When the payload was
 * written with escapes ("\/" is common) it is not found and is copied into
 * payload_buf instead, which grows and is kept across calls.
 *
 * Field rules, in addition to twilio.h:
 *  - every known event except "connected" needs a top-level streamSid
 *    ("start" may carry it in start.streamSid instead); a SID present
 *    anywhere we read one must be well formed, or TW_ERR_SID;
 *  - sequenceNumber is optional (has_seq) but must be valid when present;
 *  - an optional field present with the wrong JSON type is TW_ERR_FIELD;
 *    a string we keep that does not fit its array is TW_ERR_TOOBIG;
 *  - start.streamSid and streamSid, when both present, must be equal
 *    (TW_ERR_FIELD otherwise);
 *  - an unknown event fills only event and event_name and is not checked
 *    further, so a new Twilio event never breaks a call.
 *
 * The `media` message, fifty a second per call, is first read in place by a
 * narrow scanner (proto/jscan.h) that takes only its common shape and
 * hands anything else to jansson; test_twilio.c checks on thousands of
 * mutated messages that the two never disagree.
 *
 * A struct tw_msg must start zeroed ({0} or memset) before its first
 * tw_parse(): payload_buf is kept from call to call and given to realloc().
 *
 * The builders write with memcpy only and NUL-terminate: they need
 * cap >= length + 1.  They also return -1 for an invalid stream_sid or a
 * payload that is not base64, so a caller's mistake cannot produce broken
 * JSON on the wire.
 */
#include "proto/twilio.h"
#include "proto/jscan.h"
#include "proto/b64.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *const tw_event_names[] = {
	[TW_UNKNOWN] = "unknown",
	[TW_CONNECTED] = "connected",
	[TW_START] = "start",
	[TW_MEDIA] = "media",
	[TW_DTMF] = "dtmf",
	[TW_MARK] = "mark",
	[TW_STOP] = "stop",
};

const char *
tw_strerror(int err)
{
	switch (err) {
	case TW_OK:		return "ok";
	case TW_ERR_JSON:	return "not a JSON object";
	case TW_ERR_EVENT:	return "no event string";
	case TW_ERR_FIELD:	return "missing or mistyped field";
	case TW_ERR_NUMBER:	return "bad decimal counter";
	case TW_ERR_SID:	return "malformed SID";
	case TW_ERR_TOOBIG:	return "field too long";
	case TW_ERR_BASE64:	return "payload is not base64";
	case TW_ERR_DIGIT:	return "dtmf without a key 0-9, *, #, A-D";
	}
	return "unknown error";
}

const char *
tw_event_name(enum tw_event e)
{
	if ((unsigned)e >= sizeof(tw_event_names) / sizeof(tw_event_names[0]))
		return "unknown";
	return tw_event_names[e];
}

const char *
tw_param(const struct tw_msg *m, const char *name)
{
	int i;

	for (i = 0; i < m->nparams; i++)
		if (strcmp(m->param_name[i], name) == 0)
			return m->param_value[i];
	return NULL;
}

void
tw_msg_free(struct tw_msg *m)
{
	free(m->payload_buf);
	m->payload_buf = NULL;
	m->payload_cap = 0;
	m->payload = NULL;
	m->payload_len = 0;
}

static int
sid_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 2 || len > TW_SID_MAX - 1)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z')))
			return 0;
	}
	return 1;
}

/* Copy a JSON string into dst[cap] with its NUL. */
static int
copy_str(char *dst, size_t cap, const json_t *v)
{
	size_t n;

	if (!json_is_string(v))
		return TW_ERR_FIELD;
	n = json_string_length(v);
	if (n >= cap)
		return TW_ERR_TOOBIG;
	memcpy(dst, json_string_value(v), n);
	dst[n] = '\0';
	return TW_OK;
}

/* An optional string: absent is fine and leaves dst alone. */
static int
copy_opt(char *dst, size_t cap, const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return v == NULL ? TW_OK : copy_str(dst, cap, v);
}

/* A SID, required or not; dst has TW_SID_MAX bytes. */
static int
copy_sid(char *dst, const json_t *obj, const char *key, int required)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return required ? TW_ERR_FIELD : TW_OK;
	if (!json_is_string(v))
		return TW_ERR_FIELD;
	if (!sid_valid(json_string_value(v), json_string_length(v)))
		return TW_ERR_SID;
	return copy_str(dst, TW_SID_MAX, v);
}

/*
 * A counter: a string of 1..n decimal digits, or a JSON integer, in
 * [0, 2^63-1].  No sign, no blanks, no fraction or exponent.
 */
static int
parse_counter(const json_t *v, uint64_t *out)
{
	const char *s;
	size_t n, i;
	uint64_t x = 0;

	if (json_is_integer(v)) {
		json_int_t iv = json_integer_value(v);
		if (iv < 0)
			return TW_ERR_NUMBER;
		*out = (uint64_t)iv;
		return TW_OK;
	}
	if (!json_is_string(v))
		return TW_ERR_NUMBER;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0)
		return TW_ERR_NUMBER;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';
		if (d > 9)
			return TW_ERR_NUMBER;
		if (x > ((uint64_t)INT64_MAX - d) / 10)
			return TW_ERR_NUMBER;
		x = x * 10 + d;
	}
	*out = x;
	return TW_OK;
}

static int
opt_counter(const json_t *obj, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		*out = 0;
		return TW_OK;
	}
	return parse_counter(v, out);
}

static int
opt_small_int(const json_t *obj, const char *key, int *out)
{
	uint64_t x;
	int rc;

	if ((rc = opt_counter(obj, key, &x)) != TW_OK)
		return rc;
	if (x > INT_MAX)
		return TW_ERR_NUMBER;
	*out = (int)x;
	return TW_OK;
}

/* An optional member that, when present, must be an object. */
static int
opt_object(const json_t *obj, const char *key, json_t **out)
{
	json_t *v = json_object_get(obj, key);

	*out = v;
	if (v != NULL && !json_is_object(v))
		return TW_ERR_FIELD;
	return TW_OK;
}

static void
set_event_name(struct tw_msg *m, const char *s, size_t n)
{
	size_t i;

	if (n > sizeof(m->event_name) - 1)
		n = sizeof(m->event_name) - 1;
	/* for logs: nothing that could forge a line or a terminal escape */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		m->event_name[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	m->event_name[n] = '\0';
}

static enum tw_event
event_lookup(const char *s, size_t n)
{
	unsigned e;

	for (e = TW_CONNECTED; e <= TW_STOP; e++)
		if (strlen(tw_event_names[e]) == n &&
		    memcmp(tw_event_names[e], s, n) == 0)
			return (enum tw_event)e;
	return TW_UNKNOWN;
}

static int
parse_start(const json_t *root, struct tw_msg *m)
{
	const json_t *st;
	json_t *params, *fmt, *v;
	char inner[TW_SID_MAX] = "";
	const char *key;
	int rc;

	st = json_object_get(root, "start");
	if (!json_is_object(st))
		return TW_ERR_FIELD;
	if ((rc = copy_sid(m->call_sid, st, "callSid", 1)) != TW_OK ||
	    (rc = copy_sid(m->account_sid, st, "accountSid", 0)) != TW_OK ||
	    (rc = copy_sid(inner, st, "streamSid", 0)) != TW_OK)
		return rc;
	if (m->stream_sid[0] == '\0') {
		if (inner[0] == '\0')
			return TW_ERR_FIELD;
		memcpy(m->stream_sid, inner, sizeof(inner));
	} else if (inner[0] != '\0' && strcmp(inner, m->stream_sid) != 0)
		return TW_ERR_FIELD;

	if ((rc = opt_object(st, "customParameters", &params)) != TW_OK)
		return rc;
	if (params != NULL) {
		/* jansson keeps insertion order, so params keep Twilio's */
		json_object_foreach(params, key, v) {
			size_t kn = strlen(key);

			if (!json_is_string(v))
				return TW_ERR_FIELD;
			if (m->nparams == TW_PARAMS_MAX || kn >= TW_PARAM_NAME)
				return TW_ERR_TOOBIG;
			memcpy(m->param_name[m->nparams], key, kn + 1);
			if ((rc = copy_str(m->param_value[m->nparams],
			    TW_PARAM_VALUE, v)) != TW_OK)
				return rc;
			m->nparams++;
		}
	}

	if ((rc = opt_object(st, "mediaFormat", &fmt)) != TW_OK)
		return rc;
	if (fmt != NULL) {
		if ((rc = copy_opt(m->encoding, sizeof(m->encoding), fmt,
		    "encoding")) != TW_OK ||
		    (rc = opt_small_int(fmt, "sampleRate",
		    &m->sample_rate)) != TW_OK ||
		    (rc = opt_small_int(fmt, "channels",
		    &m->channels)) != TW_OK)
			return rc;
	}
	return TW_OK;
}

static int
payload_store(struct tw_msg *m, const char *buf, size_t len, const char *s,
    size_t n)
{
	const char *p;
	char *nb;
	size_t ncap;

	if (n == 0) {
		m->payload = "";
		return TW_OK;
	}
	if ((p = memmem(buf, len, s, n)) != NULL) {
		m->payload = p;
		return TW_OK;
	}
	if (n > m->payload_cap) {
		ncap = m->payload_cap ? m->payload_cap : 256;
		while (ncap < n)
			ncap *= 2;
		/* no code for "out of memory": call the payload too big */
		if ((nb = realloc(m->payload_buf, ncap)) == NULL)
			return TW_ERR_TOOBIG;
		m->payload_buf = nb;
		m->payload_cap = ncap;
	}
	memcpy(m->payload_buf, s, n);
	m->payload = m->payload_buf;
	return TW_OK;
}

static int
parse_media(const json_t *root, struct tw_msg *m, const char *buf, size_t len)
{
	const json_t *md, *pl;
	size_t n;
	long dl;
	int rc;

	md = json_object_get(root, "media");
	if (!json_is_object(md))
		return TW_ERR_FIELD;
	if ((rc = copy_opt(m->track, sizeof(m->track), md, "track")) != TW_OK ||
	    (rc = opt_counter(md, "chunk", &m->chunk)) != TW_OK ||
	    (rc = opt_counter(md, "timestamp", &m->timestamp)) != TW_OK)
		return rc;
	pl = json_object_get(md, "payload");
	if (!json_is_string(pl))
		return TW_ERR_FIELD;
	n = json_string_length(pl);
	if (n > TW_PAYLOAD_MAX)
		return TW_ERR_TOOBIG;
	if ((dl = b64_decoded_len(json_string_value(pl), n)) < 0)
		return TW_ERR_BASE64;
	rc = payload_store(m, buf, len, json_string_value(pl), n);
	if (rc != TW_OK)
		return rc;
	m->payload_len = n;
	m->audio_len = (size_t)dl;
	return TW_OK;
}

/* Every fault of a dtmf event is TW_ERR_DIGIT: the caller's keypad is not
 * worth a call, so the worker counts and ignores it. */
static int
parse_dtmf(const json_t *root, struct tw_msg *m)
{
	const json_t *d, *dg;
	const char *s;

	d = json_object_get(root, "dtmf");
	if (!json_is_object(d))
		return TW_ERR_DIGIT;
	if (copy_opt(m->track, sizeof(m->track), d, "track") != TW_OK)
		return TW_ERR_DIGIT;
	dg = json_object_get(d, "digit");
	if (!json_is_string(dg) || json_string_length(dg) != 1)
		return TW_ERR_DIGIT;
	s = json_string_value(dg);
	if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '*' || s[0] == '#' ||
	    (s[0] >= 'A' && s[0] <= 'D')))
		return TW_ERR_DIGIT;
	m->digit[0] = s[0];
	m->digit[1] = '\0';
	return TW_OK;
}

static int
parse_mark(const json_t *root, struct tw_msg *m)
{
	const json_t *mk, *name;

	mk = json_object_get(root, "mark");
	if (!json_is_object(mk))
		return TW_ERR_FIELD;
	name = json_object_get(mk, "name");
	if (name == NULL)
		return TW_ERR_FIELD;
	return copy_str(m->mark_name, sizeof(m->mark_name), name);
}

static int
parse_stop(const json_t *root, struct tw_msg *m)
{
	json_t *sp;
	int rc;

	if ((rc = opt_object(root, "stop", &sp)) != TW_OK)
		return rc;
	if (sp == NULL)
		return TW_OK;
	if ((rc = copy_sid(m->account_sid, sp, "accountSid", 0)) != TW_OK ||
	    (rc = copy_sid(m->call_sid, sp, "callSid", 0)) != TW_OK)
		return rc;
	return TW_OK;
}

/*
 * Runs in the worker for every text frame from Twilio, about 50 times a
 * second per call: no logging, no allocation except the payload copy (and
 * jansson's own), nothing left allocated but payload_buf.
 */
/*
 * Every field a parse may set, back to "absent".  Not a memset of the
 * whole struct: the customParameters arrays are ~9 KB and are only ever
 * read up to nparams.
 */
static void
tw_reset(struct tw_msg *m)
{
	m->event = TW_UNKNOWN;
	m->event_name[0] = '\0';
	m->has_seq = 0;
	m->seq = 0;
	m->stream_sid[0] = '\0';
	m->account_sid[0] = '\0';
	m->call_sid[0] = '\0';
	m->nparams = 0;
	m->encoding[0] = '\0';
	m->sample_rate = 0;
	m->channels = 0;
	m->track[0] = '\0';
	m->chunk = 0;
	m->timestamp = 0;
	m->payload = NULL;
	m->payload_len = 0;
	m->audio_len = 0;
	m->digit[0] = '\0';
	m->mark_name[0] = '\0';
}

/* The digits of a counter written as a string, by parse_counter's rule. */
static int
fast_counter(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0)
		return JSCAN_NO;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)v[i] - '0';
		if (d > 9 || x > ((uint64_t)INT64_MAX - d) / 10)
			return JSCAN_NO;
		x = x * 10 + d;
	}
	*out = x;
	return JSCAN_OK;
}

/* The inner "media" object of a media message. */
static int
fast_media_body(struct jscan *s, struct tw_msg *m, const char **pl, size_t *pn)
{
	unsigned seen = 0;
	const char *k, *v;
	size_t kl, vl, bytes;
	int first = 1, rc;

	while ((rc = jscan_member(s, &first, &k, &kl)) == 1) {
		if (jscan_key_is(k, kl, "payload") && !(seen & 1)) {
			seen |= 1;
			if (jscan_b64(s, pl, pn, &bytes) != JSCAN_OK)
				return JSCAN_NO;
			m->audio_len = bytes;
			continue;
		}
		if (jscan_string(s, &v, &vl) != JSCAN_OK)
			return JSCAN_NO;
		if (jscan_key_is(k, kl, "timestamp") && !(seen & 2)) {
			seen |= 2;
			if (fast_counter(v, vl, &m->timestamp) != JSCAN_OK)
				return JSCAN_NO;
		} else if (jscan_key_is(k, kl, "chunk") && !(seen & 4)) {
			seen |= 4;
			if (fast_counter(v, vl, &m->chunk) != JSCAN_OK)
				return JSCAN_NO;
		} else if (jscan_key_is(k, kl, "track") && !(seen & 8)) {
			seen |= 8;
			if (vl >= sizeof(m->track))
				return JSCAN_NO;
			memcpy(m->track, v, vl);
			m->track[vl] = '\0';
		} else
			return JSCAN_NO;
	}
	return rc == 0 && (seen & 1) ? JSCAN_OK : JSCAN_NO;
}

/*
 * What media and mark messages share: "event" (which must be `want`),
 * "streamSid" and "sequenceNumber", each at most once (bits 2, 4, 8 of
 * *seen).  The value is read here; any other key is JSCAN_NO.
 */
static int
fast_common(struct jscan *s, const char *k, size_t kl, const char *want,
    struct tw_msg *m, unsigned *seen)
{
	const char *v;
	size_t vl;

	if (jscan_string(s, &v, &vl) != JSCAN_OK)
		return JSCAN_NO;
	if (jscan_key_is(k, kl, "event") && !(*seen & 2)) {
		*seen |= 2;
		return jscan_key_is(v, vl, want) ? JSCAN_OK : JSCAN_NO;
	}
	if (jscan_key_is(k, kl, "streamSid") && !(*seen & 4)) {
		*seen |= 4;
		if (!sid_valid(v, vl))
			return JSCAN_NO;
		memcpy(m->stream_sid, v, vl);
		m->stream_sid[vl] = '\0';
		return JSCAN_OK;
	}
	if (jscan_key_is(k, kl, "sequenceNumber") && !(*seen & 8)) {
		*seen |= 8;
		m->has_seq = 1;
		return fast_counter(v, vl, &m->seq);
	}
	return JSCAN_NO;
}

/*
 * The common shape of Twilio's `media` message, read in place (see
 * proto/jscan.h).  JSCAN_NO sends the message to the full parser.
 */
static int
tw_parse_fast_media(const char *buf, size_t len, struct tw_msg *m)
{
	struct jscan s = { buf, buf + len };
	const char *k, *pl = NULL;
	size_t kl, pn = 0;
	unsigned seen = 0;
	int first = 1, rc;

	while ((rc = jscan_member(&s, &first, &k, &kl)) == 1) {
		if (jscan_key_is(k, kl, "media") && !(seen & 1)) {
			seen |= 1;
			if (fast_media_body(&s, m, &pl, &pn) != JSCAN_OK)
				return JSCAN_NO;
		} else if (fast_common(&s, k, kl, "media", m, &seen) != JSCAN_OK)
			return JSCAN_NO;
	}
	if (rc != 0 || (seen != 15 && seen != 7))
		return JSCAN_NO;	/* event, streamSid, media required */
	if (jscan_end(&s) != JSCAN_OK || pn > TW_PAYLOAD_MAX)
		return JSCAN_NO;
	m->event = TW_MEDIA;
	memcpy(m->event_name, "media", 6);
	m->payload = pn ? pl : "";
	m->payload_len = pn;
	return JSCAN_OK;
}

/*
 * The `mark` echo, as frequent as the model's audio pieces: the same kind
 * of narrow scan.  {"event":"mark","sequenceNumber":..,"streamSid":..,
 * "mark":{"name":..}} in any order.
 */
static int
tw_parse_fast_mark(const char *buf, size_t len, struct tw_msg *m)
{
	struct jscan s = { buf, buf + len };
	const char *k, *v;
	size_t kl, vl;
	unsigned seen = 0;
	int first = 1, rc;

	while ((rc = jscan_member(&s, &first, &k, &kl)) == 1) {
		if (jscan_key_is(k, kl, "mark") && !(seen & 1)) {
			seen |= 1;
			if (jscan_char(&s, '{') != JSCAN_OK ||
			    jscan_string(&s, &k, &kl) != JSCAN_OK ||
			    !jscan_key_is(k, kl, "name") ||
			    jscan_char(&s, ':') != JSCAN_OK ||
			    jscan_string(&s, &v, &vl) != JSCAN_OK ||
			    jscan_char(&s, '}') != JSCAN_OK ||
			    vl >= sizeof(m->mark_name))
				return JSCAN_NO;
			memcpy(m->mark_name, v, vl);
			m->mark_name[vl] = '\0';
		} else if (fast_common(&s, k, kl, "mark", m, &seen) != JSCAN_OK)
			return JSCAN_NO;
	}
	if (rc != 0 || (seen != 15 && seen != 7) || jscan_end(&s) != JSCAN_OK)
		return JSCAN_NO;
	m->event = TW_MARK;
	memcpy(m->event_name, "mark", 5);
	return JSCAN_OK;
}

int
tw_parse(const char *buf, size_t len, struct tw_msg *m)
{
	tw_reset(m);
	if (tw_parse_fast_media(buf, len, m) == JSCAN_OK)
		return TW_OK;
	tw_reset(m);
	if (tw_parse_fast_mark(buf, len, m) == JSCAN_OK)
		return TW_OK;
	return tw_parse_full(buf, len, m);
}

int
tw_parse_full(const char *buf, size_t len, struct tw_msg *m)
{
	const json_t *ev, *seq;
	json_t *root;
	json_error_t jerr;
	int rc;

	tw_reset(m);

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return TW_ERR_JSON;
	if (!json_is_object(root)) {
		rc = TW_ERR_JSON;
		goto fail;
	}
	ev = json_object_get(root, "event");
	if (!json_is_string(ev)) {
		rc = TW_ERR_EVENT;
		goto fail;
	}
	set_event_name(m, json_string_value(ev), json_string_length(ev));
	m->event = event_lookup(json_string_value(ev), json_string_length(ev));
	if (m->event == TW_UNKNOWN) {
		rc = TW_OK;
		goto done;
	}

	if ((seq = json_object_get(root, "sequenceNumber")) != NULL) {
		if ((rc = parse_counter(seq, &m->seq)) != TW_OK)
			goto fail;
		m->has_seq = 1;
	}
	/* start may carry it in start.streamSid; connected has none */
	if ((rc = copy_sid(m->stream_sid, root, "streamSid",
	    m->event != TW_CONNECTED && m->event != TW_START)) != TW_OK)
		goto fail;

	switch (m->event) {
	case TW_START:
		rc = parse_start(root, m);
		break;
	case TW_MEDIA:
		rc = parse_media(root, m, buf, len);
		break;
	case TW_DTMF:
		rc = parse_dtmf(root, m);
		break;
	case TW_MARK:
		rc = parse_mark(root, m);
		break;
	case TW_STOP:
		rc = parse_stop(root, m);
		break;
	default:
		rc = TW_OK;
		break;
	}
	if (rc != TW_OK)
		goto fail;
done:
	json_decref(root);
	return TW_OK;
fail:
	json_decref(root);
	m->payload = NULL;
	m->payload_len = 0;
	m->audio_len = 0;
	return rc;
}

/* Builders ------------------------------------------------------------ */

struct out {
	char	*p;
	size_t	 len, cap;
	int	 full;
};

static void
out_put(struct out *o, const char *s, size_t n)
{
	if (o->full || n > o->cap - o->len) {
		o->full = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

#define OUT_LIT(o, lit) out_put((o), (lit), sizeof(lit) - 1)

/* NUL-terminate and return the length, or -1 if anything did not fit. */
static int
out_end(struct out *o)
{
	if (o->full || o->len >= o->cap || o->len > INT_MAX)
		return -1;
	o->p[o->len] = '\0';
	return (int)o->len;
}

static int
out_head(struct out *o, char *buf, size_t cap, const char *event,
    const char *stream_sid)
{
	size_t n;

	o->p = buf;
	o->len = 0;
	o->cap = cap;
	o->full = 0;
	if (stream_sid == NULL)
		return -1;
	n = strnlen(stream_sid, TW_SID_MAX);
	if (!sid_valid(stream_sid, n))
		return -1;
	OUT_LIT(o, "{\"event\":\"");
	out_put(o, event, strlen(event));
	OUT_LIT(o, "\",\"streamSid\":\"");
	out_put(o, stream_sid, n);
	OUT_LIT(o, "\"");
	return 0;
}

int
tw_build_media(char *out, size_t cap, const char *stream_sid,
    const char *payload, size_t payload_len)
{
	if (payload_len > 0 && payload != NULL &&
	    b64_decoded_len(payload, payload_len) < 0)
		return -1;
	return tw_build_media_parsed(out, cap, stream_sid, payload,
	    payload_len);
}

int
tw_build_media_parsed(char *out, size_t cap, const char *stream_sid,
    const char *payload, size_t payload_len)
{
	struct out o;

	if (payload == NULL && payload_len > 0)
		return -1;
	if (out_head(&o, out, cap, "media", stream_sid) != 0)
		return -1;
	OUT_LIT(&o, ",\"media\":{\"payload\":\"");
	if (payload_len > 0)
		out_put(&o, payload, payload_len);
	OUT_LIT(&o, "\"}}");
	return out_end(&o);
}

/*
 * Mark names are ours, but escape them fully anyway: '"', '\\' and every
 * control character.  Bytes from 0x80 up are copied as they are, so the
 * name must be UTF-8 for the frame to be valid text.
 */
int
tw_build_mark(char *out, size_t cap, const char *stream_sid, const char *name)
{
	static const char hex[] = "0123456789abcdef";
	struct out o;
	const unsigned char *s;
	size_t run;

	if (name == NULL)
		return -1;
	if (out_head(&o, out, cap, "mark", stream_sid) != 0)
		return -1;
	OUT_LIT(&o, ",\"mark\":{\"name\":\"");
	for (s = (const unsigned char *)name; *s != '\0'; ) {
		char esc[6];

		for (run = 0; s[run] >= 0x20 && s[run] != '"' &&
		    s[run] != '\\'; run++)
			;
		out_put(&o, (const char *)s, run);
		s += run;
		if (*s == '\0')
			break;
		esc[0] = '\\';
		switch (*s) {
		case '"':  esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[*s >> 4];
			esc[5] = hex[*s & 0xf];
			out_put(&o, esc, 6);
			s++;
			continue;
		}
		out_put(&o, esc, 2);
		s++;
	}
	OUT_LIT(&o, "\"}}");
	return out_end(&o);
}

int
tw_build_clear(char *out, size_t cap, const char *stream_sid)
{
	struct out o;

	if (out_head(&o, out, cap, "clear", stream_sid) != 0)
		return -1;
	OUT_LIT(&o, "}");
	return out_end(&o);
}
