/*
 * leg_twilio.c — the Media Streams leg (leg.h): what each message from
 * Twilio means for the call (protocols.md §4.2), the framing of what goes
 * back (media, mark, clear), and the checks of its upgrade's signature.
 *
 * Rules a hostile or broken peer meets here: binary frames, malformed JSON,
 * a missing or wrong streamSid, media before `start`, a `start` for another
 * call than the token's — each closes this call with a reason and a counter,
 * never the worker and never another call.  Unknown events are counted and
 * ignored, since Twilio adds events over time.
 */
#include "worker/call.h"
#include "worker/leg.h"
#include "worker/relay.h"
#include "worker/upstream.h"
#include "worker/worker.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "personas/line.h"
#include "proto/sig.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define MAX_GAP_FILL_MS 10000	/* silence owed for one timestamp jump */
/* Caller audio may run this far ahead of the call's age (since `start`):
 * Twilio sends in real time, a burst after a network stall is a few
 * seconds at most, and audio sent faster than it is spoken would be
 * relayed (and paid for upstream) without being billed. */
#define MEDIA_AHEAD_MS	5000

/* One parse at a time per worker, handled before the next: one message
 * struct for all calls (it is 10 KB, most of it customParameters). */
static struct tw_msg twilio_msg;
#define LOGGED_UNKNOWN	0x1	/* c->logged_bad: an unknown event */
#define LOGGED_DIGIT	0x2	/* c->logged_bad: a dtmf without a key */

static int
bad_message(struct call *c, const char *what, uint16_t code)
{
	worker_count(c->w, SC_bad_messages, 1);
	log_set_call(c->tok.call_sid);
	log_warnx("bad message from twilio: %s; closing the call", what);
	log_set_call(NULL);
	call_close(c, what, 1, code);
	return 1;
}

static int
on_start(struct call *c, struct tw_msg *m)
{
	if (c->state != CALL_OPEN)
		return bad_message(c, "second start message", 1008);
	if (strcmp(m->call_sid, c->tok.call_sid) != 0) {
		worker_count(c->w, SC_token_rejected, 1);
		return bad_message(c, "start is for another call than its token",
		    1008);
	}
	/* the master's TwiML for a call it placed says so */
	c->outbound = tw_param(m, "direction") != NULL &&
	    strcmp(tw_param(m, "direction"), "outbound-api") == 0;
	/* the request's name and variables fill the line's templates */
	if (c->outbound && c->outvars == NULL &&
	    (c->outvars = json_object()) != NULL)
		for (int i = 0; i < m->nparams; i++) {
			const char *n = m->param_name[i];
			if (strcmp(n, "name") == 0 || strncmp(n, "var_", 4) == 0)
				json_object_set_new(c->outvars, n[0] == 'n' ? n :
				    n + 4, json_string(m->param_value[i]));
		}
	if (c->outvars != NULL)
		upstream_refill_session(c->up);
	return call_go_live(c, m->call_sid, m->stream_sid);
}

/*
 * Caller audio.  Twilio's `timestamp` is the only clock it gives us; a jump
 * past where the previous frame ended means frames were lost, and the
 * model's input timeline stays aligned only if the gap is filled with
 * silence (protocols.md 9.4).  The amount owed is kept in gap_fill_ms for
 * the upstream leg.  Hostile timestamps cannot make us invent unbounded
 * audio: a jump is capped, a step backwards fills nothing and does not move
 * next_ts back (so timestamps that swing back and forth fill only once),
 * and nothing is filled past the call's age plus one cap, since a timestamp
 * is milliseconds since the stream started.
 */
static int
media_refused(struct call *c, enum shm_counter counter, const char *why)
{
	worker_count(c->w, counter, 1);
	log_set_call(c->tok.call_sid);
	log_warnx("%s; closing the call after %.1f s", why,
	    (mono_ms() - c->start_ms) / 1000.0);
	log_set_call(NULL);
	call_close(c, why, 1, 1008);
	return 1;
}

static int
on_media(struct call *c, struct tw_msg *m)
{
	struct worker *w = c->w;
	uint64_t dur = m->audio_len / 8;
	uint64_t age = mono_ms() - c->start_ms;
	uint64_t limit = age + MAX_GAP_FILL_MS;

	if (c->state != CALL_LIVE)
		return bad_message(c, "media before start", 1008);
	if (strcmp(m->stream_sid, c->stream_sid) != 0)
		return bad_message(c, "media for another stream", 1008);
	/* two compares a frame; the close bills the call its real time */
	if (m->audio_len > (size_t)w->conf->max_media_payload)
		return media_refused(c, SC_media_oversize,
		    "media payload over MAX_MEDIA_PAYLOAD");
	if ((c->audio_in_bytes + m->audio_len) / 8 > age + MEDIA_AHEAD_MS)
		return media_refused(c, SC_media_too_fast,
		    "caller audio more than 5 s ahead of the call");
	if (c->have_ts && m->timestamp > c->next_ts && c->next_ts < limit) {
		uint64_t to = m->timestamp < limit ? m->timestamp : limit;
		uint64_t gap = to - c->next_ts;
		if (gap > MAX_GAP_FILL_MS)
			gap = MAX_GAP_FILL_MS;
		c->gap_fill_ms += gap;
		worker_count(w, SC_silence_fill_ms, gap);
	}
	if (!c->have_ts || m->timestamp + dur > c->next_ts)
		c->next_ts = m->timestamp + dur;
	c->have_ts = 1;
	c->frames_in++;
	c->audio_in_bytes += m->audio_len;
	worker_count(w, SC_frames_in, 1);
	atomic_store_explicit(&w->shm->calls[c->slot].cs_frames_in, c->frames_in,
	    memory_order_relaxed);
	relay_caller_audio(c, m->payload, m->payload_len, m->audio_len);
	return c->state == CALL_LIVE ? 0 : 1;
}

static int
twilio_on_message(void *arg, int opcode, const uint8_t *data, size_t len)
{
	struct call *c = arg;
	struct tw_msg *m = &twilio_msg;
	int rc;

	if (c->state >= CALL_CLOSING)
		return 1;
	c->last_msg_ms = mono_ms();
	if (opcode != WSLAY_TEXT_FRAME)
		return bad_message(c, "binary frame (Media Streams is JSON text)",
		    1003);
	if ((rc = tw_parse((const char *)data, len, m)) == TW_ERR_DIGIT) {
		/* a keypad is no reason to drop a caller: counted, ignored */
		worker_count(c->w, SC_dtmf_bad, 1);
		if (!(c->logged_bad & LOGGED_DIGIT)) {
			c->logged_bad |= LOGGED_DIGIT;
			log_set_call(c->tok.call_sid);
			log_info("ignoring a dtmf event: %s", tw_strerror(rc));
			log_set_call(NULL);
		}
		return 0;
	}
	if (rc != TW_OK)
		return bad_message(c, tw_strerror(rc), 1007);
	if (m->event != TW_CONNECTED && m->event != TW_START &&
	    m->event != TW_UNKNOWN && c->state == CALL_LIVE &&
	    strcmp(m->stream_sid, c->stream_sid) != 0)
		return bad_message(c, "message for another stream", 1008);

	switch (m->event) {
	case TW_CONNECTED:
		return 0;
	case TW_START:
		return on_start(c, m);
	case TW_MEDIA:
		return on_media(c, m);
	case TW_MARK:
		if (c->state != CALL_LIVE)
			return bad_message(c, "mark before start", 1008);
		worker_count(c->w, SC_marks_in, 1);
		relay_caller_mark(c, m->mark_name);
		return 0;
	case TW_DTMF:
		if (c->state != CALL_LIVE)
			return bad_message(c, "dtmf before start", 1008);
		worker_count(c->w, SC_dtmf_in, 1);
		relay_keypress(c, m->digit[0]);
		return c->state == CALL_LIVE ? 0 : 1;
	case TW_STOP:
		call_close(c, "stop", 0, 1000);
		return 1;
	case TW_UNKNOWN:
	default:
		worker_count(c->w, SC_unknown_events, 1);
		if (!(c->logged_bad & LOGGED_UNKNOWN)) {
			c->logged_bad |= LOGGED_UNKNOWN;
			log_set_call(c->tok.call_sid);
			log_info("ignoring twilio event \"%s\"", m->event_name);
			log_set_call(NULL);
		}
		return 0;
	}
}

/* ---------------------------------------------------------------- */
/* to Twilio */

/* A piece of model audio as one media message, built in the relay's
 * scratch buffer (the hot path: no copy of the base64 but this one). */
static int
twilio_audio(struct call *c, const char *b64, size_t len)
{
	struct buf *b = relay_scratch();
	char *dst = buf_reserve(b, len + 160);
	int n;

	if (dst == NULL)
		return -1;
	n = tw_build_media_parsed(dst, len + 160, c->stream_sid, b64, len);
	if (n < 0)
		return -1;
	return call_send(c, dst, (size_t)n);
}

static int
twilio_mark(struct call *c, const char *name)
{
	char msg[256];
	int n;

	n = tw_build_mark(msg, sizeof(msg), c->stream_sid, name);
	return n < 0 ? -1 : call_send(c, msg, (size_t)n);
}

static void
twilio_clear(struct call *c)
{
	char msg[160];
	int n;

	n = tw_build_clear(msg, sizeof(msg), c->stream_sid);
	if (n > 0)
		call_send(c, msg, (size_t)n);
}

/* ---------------------------------------------------------------- */
/* the upgrade */

int
twilio_upgrade_signed(struct worker *w, const struct ipc_handoff *ho,
    const char *scheme)
{
	const char *base = w->conf->public_url, *rest;
	char url[2048];

	if (base[0] != '\0')
		rest = strchr(base, ':') + 3;
	else
		rest = ho->ho_host;
	/* a URL that does not fit is not checked at all: never a prefix */
	return (size_t)snprintf(url, sizeof(url), "%s://%s%s", scheme, rest,
	    ho->ho_path) < sizeof(url) &&
	    sig_validate(w->conf->twilio_auth_token, url, NULL, ho->ho_signature);
}

/*
 * Twilio's handshake signature: which URL it signs for a Media Stream is
 * not confirmed (protocols.md 4.1), so try the wss:// form, then https://;
 * sig_validate() adds the :443 variants.  The token already proves the
 * stream belongs to a call we answered, so a mismatch is counted and
 * logged, not refused.
 */
static void
twilio_upgraded(struct worker *w, const struct ipc_handoff *ho,
    const char *call_sid)
{
	if (!w->conf->validate_signature || ho->ho_signature[0] == '\0')
		return;
	if (twilio_upgrade_signed(w, ho, "wss") ||
	    twilio_upgrade_signed(w, ho, "https"))
		return;
	worker_count(w, SC_ws_sig_mismatch, 1);
	log_warnx("%s: stream upgrade from %s has an X-Twilio-Signature that "
	    "matches neither URL form; accepted on its token", call_sid,
	    ho->ho_peer);
}

const struct leg_ops leg_media_streams = {
	.title = "Media Streams",
	.name = "stream",
	.path = "/media-stream/",
	.transport = LINE_MEDIA_STREAMS,
	.upgraded = twilio_upgraded,
	.on_message = twilio_on_message,
	.up_open = relay_upstream_open,
	.up_event = relay_upstream_event,
	.audio = twilio_audio,
	.mark = twilio_mark,
	.clear = twilio_clear,
};
