/*
 * record.c — see record.h.
 *
 * A record sent twice is harmless (the store upserts on its keys), so an
 * utterance the caller cut off after it was sent is simply sent again
 * with the same seq and interrupted set.  Usage goes out as the call's
 * running totals, never as increments, for the same reason.
 */
#include "worker/record.h"
#include "proto/ipc.h"
#include "proto/openai.h"
#include "personas/line.h"
#include "personas/persona.h"
#include "worker/app.h"
#include "worker/call.h"
#include "worker/worker.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define RECENT	4	/* assistant lines a barge-in may still mark */

struct rec_msg {
	struct rec_msg	*next;
	size_t		 len;
	char		 data[];
};

static struct {
	struct rec_msg	*head, *tail;
	unsigned	 n;
	uint64_t	 dropped;
	uint64_t	 drop_logged;
} Q;

struct rec_said {
	char		 item_id[OA_ID_MAX];
	uint32_t	 seq;
	uint64_t	 at;
	char		*text;
	int64_t		 cut_ms;	/* -1: heard whole */
};

struct rec_cut {
	char		 item_id[OA_ID_MAX];
	int64_t		 ms;
};

struct rec_call {
	uint32_t	 utt_seq, tool_seq;
	uint32_t	 rollovers;
	uint64_t	 tok[5];	/* in text, audio, cached; out text, audio */
	json_t		*personas;
	struct rec_said	 said[RECENT];
	unsigned	 said_next;
	struct rec_cut	 cut[RECENT];
	unsigned	 cut_next;
};

/* ---------------------------------------------------------------- */
/* the channel */

/* 0 sent (or refused for good: dropped with a log line), 1 would block */
static int
send_one(struct worker *w, const char *data, size_t len)
{
	static char msg[IPC_MAX_MSG];
	long n = ipc_encode(msg, sizeof(msg), IPC_RECORD, 0, data, len);

	if (n < 0) {
		log_warnx("a call record of %zu bytes does not fit a message; "
		    "dropped", len);
		worker_count(w, SC_worker_records_dropped, 1);
		return 0;
	}
	if (send(w->chan, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n) {
		worker_count(w, SC_worker_records_sent, 1);
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ||
	    errno == EINTR)
		return 1;
	/* the master is gone: nobody will read it */
	log_debug("send(record) to the master: %s", strerror(errno));
	worker_count(w, SC_worker_records_dropped, 1);
	return 0;
}

void
record_flush(struct worker *w)
{
	struct rec_msg *m;

	while ((m = Q.head) != NULL) {
		if (send_one(w, m->data, m->len) != 0)
			return;
		Q.head = m->next;
		if (Q.head == NULL)
			Q.tail = NULL;
		Q.n--;
		free(m);
	}
}

void
record_flush_final(struct worker *w, int ms)
{
	uint64_t end = mono_ms() + (uint64_t)ms;
	struct pollfd pfd = { .fd = w->chan, .events = POLLOUT };

	record_flush(w);
	while (Q.head != NULL && w->chan >= 0) {
		uint64_t now = mono_ms();

		if (now >= end)
			break;
		if (poll(&pfd, 1, (int)(end - now)) <= 0)
			break;
		record_flush(w);
	}
	if (Q.n > 0)
		log_warnx("exiting with %u call record%s the master did not take",
		    Q.n, Q.n == 1 ? "" : "s");
}

/* Send rec (consumed) now, or queue it behind what waits. */
static void
post(struct call *c, json_t *rec)
{
	struct worker *w = c->w;
	struct rec_msg *m;
	char *s;
	size_t len;

	if (rec == NULL)
		return;
	s = json_dumps(rec, JSON_COMPACT);
	json_decref(rec);
	if (s == NULL)
		return;
	len = strlen(s);
	record_flush(w);
	if (Q.head == NULL && send_one(w, s, len) == 0) {
		free(s);
		return;
	}
	if (Q.n >= RECORD_QUEUE_MAX ||
	    (m = malloc(sizeof(*m) + len)) == NULL) {
		worker_count(w, SC_worker_records_dropped, 1);
		if (++Q.dropped > Q.drop_logged) {
			log_warnx("the master does not take call records; %llu "
			    "dropped", (unsigned long long)Q.dropped);
			Q.drop_logged = Q.dropped * 2;
		}
		free(s);
		return;
	}
	m->next = NULL;
	m->len = len;
	memcpy(m->data, s, len);
	free(s);
	if (Q.tail != NULL)
		Q.tail->next = m;
	else
		Q.head = m;
	Q.tail = m;
	Q.n++;
}

/* ---------------------------------------------------------------- */
/* the records */

static json_t *
rec_new(const struct call *c, const char *type)
{
	return json_pack("{s:s,s:s}", "type", type, "call_sid", call_sid_of(c));
}

static double
cost_usd(const struct conf *cf, const uint64_t *t)
{
	/* cached tokens are part of the input and billed at their own
	 * price; usage does not say which modality they were, so they are
	 * taken off the text first, then the audio */
	uint64_t cached = t[2], text = t[0], audio = t[1];
	uint64_t ct = cached < text ? cached : text;
	uint64_t ca = cached - ct < audio ? cached - ct : audio;

	return ((double)(text - ct) * cf->price_text_in +
	    (double)(audio - ca) * cf->price_audio_in +
	    (double)(ct + ca) * cf->price_cached_in +
	    (double)t[3] * cf->price_text_out +
	    (double)t[4] * cf->price_audio_out) / 1e6;
}

static void
set_usage(const struct call *c, json_t *rec)
{
	const uint64_t *t = c->relay.rec->tok;

	json_object_set_new(rec, "usage", json_pack("{s:I,s:I,s:I,s:I,s:I}",
	    "input_text_tokens", (json_int_t)t[0],
	    "input_audio_tokens", (json_int_t)t[1],
	    "input_cached_tokens", (json_int_t)t[2],
	    "output_text_tokens", (json_int_t)t[3],
	    "output_audio_tokens", (json_int_t)t[4]));
	json_object_set_new(rec, "cost_usd",
	    json_real(cost_usd(c->w->conf, t)));
}

static json_t *
status_rec(const struct call *c, const char *status, uint64_t at)
{
	json_t *r = rec_new(c, "status");

	json_object_set_new(r, "status", json_string(status));
	json_object_set_new(r, "at", json_integer((json_int_t)at));
	return r;
}

void
record_call_started(struct call *c)
{
	struct rec_call *rc;
	uint64_t wall = wall_ms(), mono = mono_ms();
	json_t *r;

	/* off: no state, so every record_*() below does nothing */
	if (c->relay.rec != NULL || !c->w->conf->call_records)
		return;
	if ((rc = calloc(1, sizeof(*rc))) == NULL)
		return;
	for (int i = 0; i < RECENT; i++)
		rc->said[i].cut_ms = -1;
	rc->personas = json_pack("[s]", c->persona->id);
	c->relay.rec = rc;
	r = rec_new(c, "call");
	if (c->outbound)
		/* the master recorded its start (the call's creation) and
		 * its numbers; the callee is the token's caller */
		json_object_set_new(r, "direction", json_string("outbound-api"));
	else {
		json_object_set_new(r, "direction", json_string("inbound"));
		json_object_set_new(r, "from", json_string(c->tok.caller));
	}
	json_object_set_new(r, "line", json_string(c->line != NULL &&
	    c->line->id[0] != '\0' ? c->line->id : c->tok.route));
	json_object_set_new(r, "persona", json_string(c->persona->id));
	json_object_set(r, "personas", rc->personas);
	json_object_set_new(r, "app", json_string(c->app->name));
	json_object_set_new(r, "status", json_string("in-progress"));
	/* the stream opened (the call was connected to us) before `start` */
	if (!c->outbound)
		json_object_set_new(r, "started_at", json_integer((json_int_t)(wall -
		    (mono > c->opened_ms ? mono - c->opened_ms : 0))));
	json_object_set_new(r, "answered_at", json_integer((json_int_t)wall));
	json_object_set_new(r, "worker", json_integer(c->w->slot));
	post(c, r);
	post(c, status_rec(c, "in-progress", wall));
}

/* The text as recorded: at most RECORD_TEXT_MAX bytes, cut on a UTF-8
 * character boundary. */
static json_t *
text_json(const char *text)
{
	size_t n = strlen(text);

	if (n > RECORD_TEXT_MAX) {
		n = RECORD_TEXT_MAX;
		while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
			n--;
	}
	return json_stringn_nocheck(text, n);
}

static json_t *
utterance_rec(const struct call *c, uint32_t seq, uint64_t at,
    const char *role, const char *text, int64_t cut_ms)
{
	json_t *r = rec_new(c, "utterance");

	json_object_set_new(r, "seq", json_integer(seq));
	json_object_set_new(r, "at", json_integer((json_int_t)at));
	json_object_set_new(r, "role", json_string(role));
	json_object_set_new(r, "text", text_json(text));
	json_object_set_new(r, "interrupted", json_boolean(cut_ms >= 0));
	if (cut_ms >= 0)
		json_object_set_new(r, "interrupted_at_ms",
		    json_integer((json_int_t)cut_ms));
	return r;
}

void
record_utterance(struct call *c, const char *role, const char *text,
    const char *item_id)
{
	struct rec_call *rc = c->relay.rec;
	uint64_t at = wall_ms();
	int64_t cut_ms = -1;
	uint32_t seq;

	if (rc == NULL || text == NULL || text[0] == '\0')
		return;
	seq = ++rc->utt_seq;
	if (strcmp(role, "assistant") == 0 && item_id != NULL &&
	    item_id[0] != '\0') {
		struct rec_said *s = &rc->said[rc->said_next++ % RECENT];

		/* cut off before its transcript was final */
		for (int i = 0; i < RECENT; i++)
			if (strcmp(rc->cut[i].item_id, item_id) == 0) {
				cut_ms = rc->cut[i].ms;
				rc->cut[i].item_id[0] = '\0';
			}
		free(s->text);
		vr_strlcpy(s->item_id, item_id, sizeof(s->item_id));
		s->seq = seq;
		s->at = at;
		s->text = strndup(text, RECORD_TEXT_MAX);
		s->cut_ms = cut_ms;
	}
	post(c, utterance_rec(c, seq, at, role, text, cut_ms));
}

void
record_cut(struct call *c, const char *item_id, uint64_t ms)
{
	struct rec_call *rc = c->relay.rec;
	struct rec_cut *k;

	if (rc == NULL || item_id == NULL || item_id[0] == '\0')
		return;
	for (int i = 0; i < RECENT; i++) {
		struct rec_said *s = &rc->said[i];

		if (s->text != NULL && strcmp(s->item_id, item_id) == 0) {
			if (s->cut_ms >= 0)
				return;
			s->cut_ms = (int64_t)ms;
			post(c, utterance_rec(c, s->seq, s->at, "assistant",
			    s->text, s->cut_ms));
			return;
		}
	}
	k = &rc->cut[rc->cut_next++ % RECENT];
	vr_strlcpy(k->item_id, item_id, sizeof(k->item_id));
	k->ms = (int64_t)ms;
}

void
record_tool(struct call *c, const char *name, const char *args,
    const char *outcome, uint64_t latency_ms)
{
	struct rec_call *rc = c->relay.rec;
	json_t *r, *a, *v;
	const char *k;

	if (rc == NULL || name == NULL)
		return;
	r = rec_new(c, "tool");
	json_object_set_new(r, "seq", json_integer(++rc->tool_seq));
	json_object_set_new(r, "at", json_integer((json_int_t)wall_ms()));
	json_object_set_new(r, "name", json_string(name));
	json_object_set_new(r, "outcome", json_string(outcome));
	json_object_set_new(r, "latency_ms", json_integer((json_int_t)latency_ms));
	if (c->line != NULL && c->line->record_arguments && args != NULL &&
	    (a = json_loads(args, 0, NULL)) != NULL) {
		/* what the persona marks sensitive is kept out here too */
		if (json_is_object(a))
			json_object_foreach(a, k, v)
				if (persona_field_sensitive(c->persona, name, k))
					json_object_set_new(a, k,
					    json_string("(sensitive)"));
		json_object_set_new(r, "arguments", a);
	}
	post(c, r);
}

void
record_outcome(struct call *c, const char *outcome, const char *args)
{
	json_t *r = rec_new(c, "outcome"), *a, *v;

	if (r == NULL)
		return;
	json_object_set_new(r, "outcome", json_string(outcome));
	json_object_set_new(r, "phone", json_string(c->tok.caller));
	json_object_set_new(r, "at", json_integer((json_int_t)wall_ms()));
	if (args != NULL && (a = json_loads(args, 0, NULL)) != NULL) {
		if (json_is_number(v = json_object_get(a, "amount")))
			json_object_set(r, "amount", v);
		if (json_is_string(v = json_object_get(a, "first_payment_date")) &&
		    json_string_length(v) < 64)
			json_object_set(r, "date", v);
		if (json_is_string(v = json_object_get(a, "plan")) &&
		    json_string_length(v) < 32)
			json_object_set(r, "plan", v);
		json_decref(a);
	}
	post(c, r);
}

void
record_usage(struct call *c, const struct oa_msg *m)
{
	struct rec_call *rc = c->relay.rec;
	json_t *r;

	if (rc == NULL)
		return;
	if ((m->in_text_tokens | m->in_audio_tokens | m->in_cached_tokens |
	    m->out_text_tokens | m->out_audio_tokens) == 0)
		return;
	rc->tok[0] += m->in_text_tokens;
	rc->tok[1] += m->in_audio_tokens;
	rc->tok[2] += m->in_cached_tokens;
	rc->tok[3] += m->out_text_tokens;
	rc->tok[4] += m->out_audio_tokens;
	r = rec_new(c, "call");
	set_usage(c, r);
	post(c, r);
}

void
record_persona(struct call *c, const char *id)
{
	struct rec_call *rc = c->relay.rec;
	json_t *r;

	if (rc == NULL)
		return;
	json_array_append_new(rc->personas, json_string(id));
	r = rec_new(c, "call");
	json_object_set_new(r, "persona", json_string(id));
	json_object_set(r, "personas", rc->personas);
	post(c, r);
}

void
record_rollover(struct call *c)
{
	struct rec_call *rc = c->relay.rec;
	json_t *r;

	if (rc == NULL)
		return;
	r = rec_new(c, "call");
	json_object_set_new(r, "rollovers", json_integer(++rc->rollovers));
	post(c, r);
}

void
record_transfer(struct call *c, const char *to)
{
	json_t *r;

	if (c->relay.rec == NULL || to == NULL)
		return;
	r = rec_new(c, "call");
	json_object_set_new(r, "transferred_to", json_string(to));
	post(c, r);
}

/* What kind of failure a reason names, for the failure_class column. */
static const char *
failure_class(const char *reason)
{
	if (reason == NULL)
		return "relay";
	if (strncmp(reason, "openai", 6) == 0 ||
	    strstr(reason, "model") != NULL)
		return "upstream";
	if (strncmp(reason, "twilio", 6) == 0 ||
	    strstr(reason, "start message") != NULL)
		return "twilio";
	return "relay";
}

void
record_ended(struct call *c)
{
	struct rec_call *rc = c->relay.rec;
	uint64_t at = wall_ms(), mono = mono_ms();
	uint64_t dur = mono > c->start_ms ? mono - c->start_ms : 0;
	const char *status = c->failed ? "failed" : "completed";
	json_t *r;

	if (rc == NULL)
		return;
	r = rec_new(c, "call");
	json_object_set_new(r, "status", json_string(status));
	json_object_set_new(r, "ended_at", json_integer((json_int_t)at));
	json_object_set_new(r, "duration_ms", json_integer((json_int_t)dur));
	/* Twilio bills each started minute; we keep seconds, rounded up */
	json_object_set_new(r, "billed_s", json_integer((json_int_t)
	    ((dur + 999) / 1000)));
	json_object_set_new(r, "end_reason", json_string(c->reason ?
	    c->reason : "ended"));
	if (c->failed)
		json_object_set_new(r, "failure_class",
		    json_string(failure_class(c->reason)));
	set_usage(c, r);
	post(c, r);
	post(c, status_rec(c, status, at));
	/* the caller's minutes, shared by hosts on one database: one row a
	 * call, so a record sent twice counts once */
	post(c, json_pack("{s:s,s:s,s:s,s:I,s:I}", "type", "minutes",
	    "phone", c->tok.caller, "call_sid", call_sid_of(c),
	    "used_ms", (json_int_t)dur, "at", (json_int_t)at));
	record_free(rc);
	c->relay.rec = NULL;
}

void
record_free(struct rec_call *rc)
{
	if (rc == NULL)
		return;
	for (int i = 0; i < RECENT; i++)
		free(rc->said[i].text);
	json_decref(rc->personas);
	free(rc);
}
