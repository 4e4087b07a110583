/*
 * leg_crelay.c — the ConversationRelay leg (leg.h; protocols.md 7):
 * Twilio does speech recognition and text-to-speech, the WebSocket carries
 * text, and the model runs a text-only Realtime session.
 *
 * From Twilio: `setup` opens the call (counted and billed as a Media
 * Stream's `start` is, through call_go_live); a final `prompt` becomes a
 * user item and a response; `interrupt` stops what is being said and
 * rewrites the assistant's item to what the caller heard; `dtmf` goes to
 * the line's keypad; `error` is logged and counted.  To Twilio: the
 * response's text deltas as `text` tokens as they arrive, the turn closed
 * by an empty token with `last: true`; at our end of the call, `end` with
 * the hand-off for the <Connect action> (routes.c, /relay/<line>/ended).
 *
 * Hostile or broken input (a message that is not a JSON object, one over
 * CRELAY_MAX_MESSAGE, an unknown type, anything before `setup`, a second
 * `setup`, a field of the wrong type) is ignored and counted, each kind in
 * its own counter, and logged once per call; only a `setup` for another
 * call than the token's ends the call.  Nothing here ends the worker.
 *
 * The model's events reach crelay_upstream_event (the leg's up_event); what
 * is not about text goes on to the relay (relay_upstream_event), so tools,
 * hang-ups, the time limit and persona switches work as on Media Streams.
 */
#include "worker/app.h"
#include "worker/call.h"
#include "worker/leg.h"
#include "worker/record.h"
#include "worker/relay.h"
#include "worker/upstream.h"
#include "worker/worker.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "personas/line.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRELAY_MAX_MESSAGE	16384	/* bigger messages are ignored */
#define CRELAY_IDLE_MS	(10 * 60 * 1000)	/* the least idle time: Twilio
						 * sends only what the caller
						 * says, and a quiet caller is
						 * not a dead connection */

/* c->logged_bad bits: each kind logged once per call */
#define LOG_BAD_JSON	0x100
#define LOG_OVERSIZE	0x200
#define LOG_EARLY	0x400
#define LOG_SETUP2	0x800
#define LOG_UNKNOWN	0x1000
#define LOG_FIELDS	0x2000
#define LOG_ERRORS	0x4000

struct crelay {
	int	 setup;			/* `setup` came: the call is live */
	int	 up_open;		/* the model's session is open */
	int	 greeted;		/* the welcome is said or asked for */
	/* the response whose text goes to Twilio, and its tokens so far */
	char	 resp[OA_ID_MAX];
	unsigned resp_tokens;
	/* a response the caller interrupted: nothing more of it is sent */
	char	 cut[OA_ID_MAX];
	/* the assistant item whose text was sent last, and the item before
	 * it, for putting the heard text in its place */
	char	 item[OA_ID_MAX];
	char	 item_prev[OA_ID_MAX];
	/* the last conversation item the server announced */
	char	 added[OA_ID_MAX];
	char	 added_prev[OA_ID_MAX];
	int	 want_response;		/* a prompt waits for the cancel */
	/* the assistant item whose text was done last; an item cut off
	 * before its text was done, and what of it was heard */
	char	 done_item[OA_ID_MAX];
	char	 heard_item[OA_ID_MAX];
	char	*heard;
	const struct upstream *sess;	/* the session the ids above are of */
	unsigned errors;		/* error messages logged */
};

static int
crelay_init(struct call *c)
{
	return (c->leg_state = calloc(1, sizeof(struct crelay))) != NULL ? 0 : -1;
}

static void
crelay_free(struct call *c)
{
	struct crelay *cr = c->leg_state;

	if (cr != NULL)
		free(cr->heard);
	free(c->leg_state);
	c->leg_state = NULL;
}

/* One message to Twilio.  0, or -1 (the call is closing). */
static int
cr_send(struct call *c, json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	int rc;

	json_decref(j);
	if (s == NULL)
		return -1;
	rc = call_send(c, s, strlen(s));
	free(s);
	return rc;
}

static void
send_token(struct call *c, const char *token, int last)
{
	if (cr_send(c, json_pack("{s:s,s:s,s:b}", "type", "text", "token",
	    token, "last", last)) == 0)
		worker_count(c->w, SC_relay_tokens, 1);
}

/* Ignored input: its counter, and one line per kind per call. */
static int
ignored(struct call *c, enum shm_counter counter, int bit, const char *what)
{
	worker_count(c->w, counter, 1);
	if (!(c->logged_bad & bit)) {
		c->logged_bad |= bit;
		log_set_call(call_sid_of(c));
		log_warnx("relay: ignoring %s (further ones are only counted)",
		    what);
		log_set_call(NULL);
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* from Twilio */

/* The welcome: Twilio says the line's welcomeGreeting (the model is told
 * it was said, and does not greet again); without one the model greets. */
static void
maybe_greet(struct call *c)
{
	struct crelay *cr = c->leg_state;
	const char *g = c->persona->greeting;

	if (cr->greeted || !cr->setup || !cr->up_open || c->state != CALL_LIVE)
		return;
	cr->greeted = 1;
	if (g != NULL && g[0] != '\0')
		relay_say(c, g, 0);
}

static int
on_setup(struct call *c, json_t *j)
{
	struct crelay *cr = c->leg_state;
	const char *sid = json_string_value(json_object_get(j, "callSid"));
	const char *sess = json_string_value(json_object_get(j, "sessionId"));

	if (cr->setup)
		return ignored(c, SC_relay_second_setup, LOG_SETUP2,
		    "a second setup");
	if (sid == NULL || strcmp(sid, c->tok.call_sid) != 0) {
		worker_count(c->w, SC_token_rejected, 1);
		log_set_call(call_sid_of(c));
		log_warnx("relay: setup is for another call than its token; "
		    "closing the call");
		log_set_call(NULL);
		call_close(c, "setup is for another call than its token", 1,
		    1008);
		return 1;
	}
	if (sess == NULL || strlen(sess) >= TW_SID_MAX)
		sess = "";
	if (call_go_live(c, sid, sess) != 0)
		return 1;
	cr->setup = 1;
	maybe_greet(c);
	return c->state == CALL_LIVE ? 0 : 1;
}

/* Stop the response in flight: nothing more of it goes to Twilio. */
static void
cut_response(struct call *c)
{
	struct crelay *cr = c->leg_state;
	struct buf *b;

	if (!relay_model_busy(c))
		return;
	vr_strlcpy(cr->cut, c->relay.active_response, sizeof(cr->cut));
	b = relay_scratch();
	if (oa_build_response_cancel(b) == 0)
		relay_send_up(c, b);
}

static int
on_prompt(struct call *c, json_t *j)
{
	struct crelay *cr = c->leg_state;
	json_t *text = json_object_get(j, "voicePrompt");
	json_t *last = json_object_get(j, "last");
	struct buf *b;

	if (!json_is_string(text) || (last != NULL && !json_is_boolean(last)))
		return ignored(c, SC_relay_bad_fields, LOG_FIELDS,
		    "a prompt without a voicePrompt string");
	/* partial prompts (last: false) are what the caller is still saying */
	if (last != NULL && !json_is_true(last))
		return 0;
	if (json_string_length(text) == 0)
		return 0;
	worker_count(c->w, SC_relay_prompts, 1);
	relay_transcript(c, "caller", json_string_value(text));
	if (c->state != CALL_LIVE)
		return 1;
	/* the first token of the answer is timed from here */
	c->relay.speech_stopped_us = mono_us();
	c->relay.awaiting_audio = 1;
	/* the caller said something new over an answer (with interruptible
	 * off Twilio sends no interrupt): the answer stops, the new one
	 * comes once the cancel is done */
	if (relay_model_busy(c)) {
		if (cr->resp_tokens > 0 && strcmp(cr->cut, cr->resp) != 0)
			send_token(c, "", 1);
		cut_response(c);
		cr->want_response = 1;
	}
	b = relay_scratch();
	if (oa_build_text_item(b, json_string_value(text), 0) == 0)
		relay_send_up(c, b);
	if (!cr->want_response && !c->relay.ctl.ending)
		relay_say(c, NULL, 0);
	return 0;
}

/*
 * The caller talked over the answer.  Twilio stopped speaking at
 * utteranceUntilInterrupt; the model must remember only that.  A Realtime
 * text item cannot be truncated (GA's truncate is for audio), so the item
 * is deleted and one holding the heard text is created in its place.  This
 * holds too when the whole answer was sent already, the usual case, since
 * speech lags the text.
 */
static int
on_interrupt(struct call *c, json_t *j)
{
	struct crelay *cr = c->leg_state;
	json_t *heard = json_object_get(j, "utteranceUntilInterrupt");
	json_t *dur = json_object_get(j, "durationUntilInterruptMs");
	struct buf *b;
	json_int_t ms = 0;

	if (heard != NULL && !json_is_string(heard))
		return ignored(c, SC_relay_bad_fields, LOG_FIELDS,
		    "an interrupt whose utteranceUntilInterrupt is not a string");
	worker_count(c->w, SC_relay_interrupts, 1);
	c->relay.bargeins++;
	cut_response(c);
	if (cr->item[0] == '\0')
		return 0;	/* nothing of ours was being said */
	/* the record marks the answer cut where Twilio stopped speaking
	 * (an integer, or a string in an old sample) */
	if (json_is_integer(dur))
		ms = json_integer_value(dur);
	else if (json_is_string(dur))
		ms = strtoll(json_string_value(dur), NULL, 10);
	record_cut(c, cr->item, ms > 0 ? (uint64_t)ms : 0);
	b = relay_scratch();
	if (oa_build_item_delete(b, cr->item) == 0)
		relay_send_up(c, b);
	if (heard != NULL && json_string_length(heard) > 0) {
		b = relay_scratch();
		if (oa_build_assistant_text_item(b, relay_dialect(c),
		    json_string_value(heard), cr->item_prev) == 0)
			relay_send_up(c, b);
	}
	/* a fresh session (a rollover) is seeded with what was heard too */
	if (strcmp(cr->item, cr->done_item) == 0)
		relay_said_heard(c, heard != NULL ? json_string_value(heard) : "");
	else {
		free(cr->heard);
		cr->heard = strdup(heard != NULL ? json_string_value(heard) : "");
		vr_strlcpy(cr->heard_item, cr->item, sizeof(cr->heard_item));
	}
	log_set_call(call_sid_of(c));
	log_debug("relay: interrupted; %s rewritten to the %zu characters heard",
	    cr->item, heard != NULL ? json_string_length(heard) : 0);
	log_set_call(NULL);
	cr->item[0] = '\0';
	return 0;
}

static int
on_dtmf(struct call *c, json_t *j)
{
	const char *d = json_string_value(json_object_get(j, "digit"));

	if (d == NULL || strlen(d) != 1 || strchr("0123456789*#ABCD", d[0]) ==
	    NULL) {
		worker_count(c->w, SC_dtmf_bad, 1);
		return 0;
	}
	worker_count(c->w, SC_dtmf_in, 1);
	relay_keypress(c, d[0]);
	return c->state == CALL_LIVE ? 0 : 1;
}

static int
on_error(struct call *c, json_t *j)
{
	struct crelay *cr = c->leg_state;
	const char *d = json_string_value(json_object_get(j, "description"));
	char clean[200];

	worker_count(c->w, SC_relay_errors, 1);
	if (++cr->errors > 5)
		return 0;
	snprintf(clean, sizeof(clean), "%s", d != NULL ? d : "(none)");
	for (char *p = clean; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	log_set_call(call_sid_of(c));
	log_warnx("relay: error from twilio: %s%s", clean, cr->errors == 5 ?
	    " (further errors of this call are only counted)" : "");
	log_set_call(NULL);
	return 0;
}

static int
crelay_on_message(void *arg, int opcode, const uint8_t *data, size_t len)
{
	struct call *c = arg;
	json_t *j;
	const char *type;
	int rc;

	if (c->state >= CALL_CLOSING)
		return 1;
	c->last_msg_ms = mono_ms();
	if (len > CRELAY_MAX_MESSAGE)
		return ignored(c, SC_relay_oversize, LOG_OVERSIZE,
		    "a message over 16 KB");
	if (opcode != WSLAY_TEXT_FRAME ||
	    (j = json_loadb((const char *)data, len, 0, NULL)) == NULL)
		return ignored(c, SC_relay_bad_json, LOG_BAD_JSON,
		    "a message that is not JSON text");
	if (!json_is_object(j) ||
	    (type = json_string_value(json_object_get(j, "type"))) == NULL) {
		json_decref(j);
		return ignored(c, SC_relay_bad_json, LOG_BAD_JSON,
		    "a message that is not an object with a type");
	}
	if (strcmp(type, "setup") == 0)
		rc = on_setup(c, j);
	else if (strcmp(type, "prompt") != 0 && strcmp(type, "interrupt") != 0 &&
	    strcmp(type, "dtmf") != 0 && strcmp(type, "error") != 0)
		/* "info" (debug) and whatever Twilio adds later */
		rc = ignored(c, SC_relay_unknown, LOG_UNKNOWN,
		    "messages of an unknown type");
	else if (!((struct crelay *)c->leg_state)->setup)
		rc = ignored(c, SC_relay_before_setup, LOG_EARLY,
		    "a message before setup");
	else if (type[0] == 'p')
		rc = on_prompt(c, j);
	else if (type[0] == 'i')
		rc = on_interrupt(c, j);
	else if (type[0] == 'd')
		rc = on_dtmf(c, j);
	else
		rc = on_error(c, j);
	json_decref(j);
	return rc;
}

/* ---------------------------------------------------------------- */
/* from the model */

static void
crelay_upstream_open(struct call *c, struct upstream *up)
{
	struct crelay *cr = c->leg_state;
	struct buf *b;

	if (up != c->up) {
		relay_upstream_open(c, up);	/* the next persona's session */
		return;
	}
	log_set_call(call_sid_of(c));
	log_debug("openai text session open with %s (persona %s)", up->peer,
	    c->persona->id);
	log_set_call(NULL);
	cr->up_open = 1;
	if (c->line->welcome != NULL && !cr->greeted) {
		/* Twilio said it: the model remembers having said it */
		b = relay_scratch();
		if (oa_build_assistant_text_item(b, relay_dialect(c), c->line->welcome,
		    NULL) == 0)
			upstream_send(up, buf_head(b), buf_pending(b));
		cr->greeted = 1;
	}
	maybe_greet(c);
}

static void
crelay_upstream_event(struct call *c, struct upstream *up, struct oa_msg *m)
{
	struct crelay *cr = c->leg_state;
	struct relay *r = &c->relay;

	if (c->state >= CALL_CLOSING)
		return;
	if (up != c->up) {
		relay_upstream_event(c, up, m);
		return;
	}
	if (cr->sess != up) {
		/* a fresh session (a rollover, a persona switch): the items
		 * and responses of the old one are not in it */
		cr->sess = up;
		cr->resp[0] = cr->cut[0] = cr->item[0] = cr->added[0] = '\0';
		cr->done_item[0] = cr->heard_item[0] = '\0';
		free(cr->heard);
		cr->heard = NULL;
		cr->resp_tokens = 0;
	}
	switch (m->ev) {
	case OA_EV_ITEM_ADDED:
		vr_strlcpy(cr->added, m->item_id, sizeof(cr->added));
		vr_strlcpy(cr->added_prev, m->previous_item_id,
		    sizeof(cr->added_prev));
		break;
	case OA_EV_RESPONSE_CREATED:
		vr_strlcpy(cr->resp, m->response_id, sizeof(cr->resp));
		cr->resp_tokens = 0;
		break;
	case OA_EV_TEXT_DELTA:
		if (c->state != CALL_LIVE || m->text[0] == '\0' ||
		    strcmp(m->response_id, cr->cut) == 0) {
			r->dropped_deltas++;
			return;
		}
		if (strcmp(cr->item, m->item_id) != 0) {
			vr_strlcpy(cr->item, m->item_id, sizeof(cr->item));
			if (strcmp(cr->added, m->item_id) == 0)
				vr_strlcpy(cr->item_prev, cr->added_prev,
				    sizeof(cr->item_prev));
			else
				cr->item_prev[0] = '\0';
		}
		if (r->awaiting_audio) {
			r->awaiting_audio = 0;
			shm_hist_add(&c->w->sw->sw_hist[SH_RESPONSE],
			    mono_us() - r->speech_stopped_us);
		}
		if (strcmp(m->response_id, cr->resp) == 0)
			cr->resp_tokens++;
		send_token(c, m->text, 0);
		c->frames_out++;
		return;
	case OA_EV_TEXT_DONE:
		/* the transcript, the app's hook, the keypad's "repeat" */
		m->ev = OA_EV_TRANSCRIPT_DONE;
		vr_strlcpy(cr->done_item, m->item_id, sizeof(cr->done_item));
		relay_upstream_event(c, up, m);
		if (cr->heard != NULL && strcmp(cr->heard_item, m->item_id) == 0) {
			/* cut off before its text was done */
			relay_said_heard(c, cr->heard);
			free(cr->heard);
			cr->heard = NULL;
		}
		return;
	case OA_EV_RESPONSE_DONE:
		/* the turn ends before the relay acts on the response's end
		 * (which may end the call: `end` comes after the last token) */
		if (strcmp(m->response_id, cr->resp) == 0) {
			if (cr->resp_tokens > 0 && strcmp(cr->cut, cr->resp) != 0)
				send_token(c, "", 1);
			cr->resp[0] = '\0';
			cr->resp_tokens = 0;
		}
		if (strcmp(m->response_id, cr->cut) == 0)
			cr->cut[0] = '\0';
		relay_upstream_event(c, up, m);
		if (c->state == CALL_LIVE && cr->want_response &&
		    !relay_model_busy(c)) {
			cr->want_response = 0;
			if (!c->relay.ctl.ending)
				relay_say(c, NULL, 0);
		}
		return;
	case OA_EV_AUDIO_DELTA:
	case OA_EV_AUDIO_DONE:
	case OA_EV_SPEECH_STARTED:
	case OA_EV_SPEECH_STOPPED:
		return;		/* a text session has no audio */
	default:
		break;
	}
	relay_upstream_event(c, up, m);
}

/* Send text as one finished turn for Twilio to say (the keypad's repeat):
 * 0, or -1 while an answer is being sent. */
static int
crelay_say_again(struct call *c, const char *text)
{
	struct crelay *cr = c->leg_state;

	if (cr == NULL || !cr->setup || relay_model_busy(c) ||
	    cr->resp_tokens > 0 || text == NULL || text[0] == '\0')
		return -1;
	send_token(c, text, 1);
	return 0;
}

/* ---------------------------------------------------------------- */
/* the end */

/* The call is closing on our side: tell Twilio with `end` and its
 * hand-off, so the <Connect action> runs next. */
static void
crelay_closing(struct call *c)
{
	struct crelay *cr = c->leg_state;
	const struct relay_ctl *k = &c->relay.ctl;
	json_t *j, *ho;
	char *s, *hs;

	if (!c->ws_ready || !cr->setup || c->state != CALL_LIVE)
		return;
	/* handoffData is a string: JSON text, for routes.c to read back */
	if (k->transfer != NULL && !k->limit_reached)
		ho = json_pack("{s:s,s:s}", "reason", "transfer", "to",
		    k->transfer->label);
	else
		ho = json_pack("{s:s}", "reason", c->failed ? "error" : "hangup");
	hs = ho != NULL ? json_dumps(ho, JSON_COMPACT) : NULL;
	json_decref(ho);
	j = hs != NULL ? json_pack("{s:s,s:s}", "type", "end", "handoffData",
	    hs) : NULL;
	free(hs);
	s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (k->transfer != NULL && !k->limit_reached) {
		worker_count(c->w, SC_transfers, 1);
		log_set_call(call_sid_of(c));
		log_info("relay: handing the caller to \"%s\"", k->transfer->label);
		log_set_call(NULL);
	}
	/* the call is closing already: a full buffer just loses the end */
	if (s != NULL)
		ws_codec_send(&c->ws, WSLAY_TEXT_FRAME, s, strlen(s));
	free(s);
}

/* ---------------------------------------------------------------- */
/* the leg */

/*
 * A ConversationRelay handshake must be signed, over the wss:// form of
 * its URL (protocols.md 7.1): Twilio documents it, so a missing or wrong
 * signature is refused before the token is spent.
 */
static int
crelay_refuse(struct worker *w, const struct ipc_handoff *ho)
{
	if (!w->conf->validate_signature || (ho->ho_signature[0] != '\0' &&
	    twilio_upgrade_signed(w, ho, "wss")))
		return 0;
	worker_count(w, SC_relay_sig_refused, 1);
	log_warnx("relay upgrade from %s refused: %s X-Twilio-Signature",
	    ho->ho_peer, ho->ho_signature[0] ? "a wrong" : "no");
	return 1;
}

/* A text session has no audio to play: the relay never sends any (the
 * model's audio events stop in crelay_upstream_event). */
static int
crelay_no_audio(struct call *c, const char *b64, size_t len)
{
	return -1;
}

static int
crelay_no_mark(struct call *c, const char *name)
{
	return -1;
}

static void
crelay_no_clear(struct call *c)
{
}

const struct leg_ops leg_conversation_relay = {
	.title = "ConversationRelay",
	.name = "relay session",
	.path = "/relay/",
	.transport = LINE_CONVERSATION_RELAY,
	.text_only = 1,
	.ends_itself = 1,
	.min_idle_ms = CRELAY_IDLE_MS,
	.refuse = crelay_refuse,
	.init = crelay_init,
	.free = crelay_free,
	.on_message = crelay_on_message,
	.up_open = crelay_upstream_open,
	.up_event = crelay_upstream_event,
	.audio = crelay_no_audio,
	.mark = crelay_no_mark,
	.clear = crelay_no_clear,
	.closing = crelay_closing,
	.say_again = crelay_say_again,
};
