/*
 * practice.c — see practice.h.
 */
#include "worker/practice.h"
#include "worker/call.h"
#include "worker/relay.h"
#include "worker/rest.h"
#include "worker/upstream.h"
#include "worker/worker.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define END_CALL_GRACE_MS	6000	/* end_call: audio left to play */
#define SWAP_GRACE_MS		12000	/* intake's hand-over may take this long */

static enum oa_dialect
dialect(struct call *c)
{
	return (enum oa_dialect)c->w->conf->openai_dialect;
}

static void
send_event(struct upstream *up, struct buf *b)
{
	if (up != NULL)
		upstream_send(up, buf_head(b), buf_pending(b));
}

static void
say(struct call *c, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(struct call *c, const char *level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_set_call(call_sid_of(c));
	if (level[0] == 'w')
		log_warnx("%s", msg);
	else if (level[0] == 'd')
		log_debug("%s", msg);
	else
		log_info("%s", msg);
	log_set_call(NULL);
}

void
practice_init(struct practice *p)
{
	memset(p, 0, sizeof(*p));
}

void
practice_free(struct practice *p)
{
	for (unsigned i = 0; i < p->nresults; i++)
		free(p->results[i].output);
	p->nresults = 0;
}

/* ---------------------------------------------------------------- */
/* minutes */

static uint64_t
free_ms(struct call *c)
{
	return (uint64_t)(c->w->conf->free_call_minutes * 60000.0 + 0.5);
}

static uint64_t
remaining_ms(struct call *c, uint64_t now)
{
	uint64_t used = shm_usage_ms(c->w->shm, c->tok.caller, now), f = free_ms(c);

	return used >= f ? 0 : f - used;
}

void
practice_call_started(struct call *c)
{
	uint64_t now = mono_ms();

	c->practice.limit_at_ms = now + remaining_ms(c, now);
}

static void
wrapup_request(struct call *c)
{
	struct practice *p = &c->practice;
	struct buf *b = relay_scratch();

	if (oa_build_response_create(b, dialect(c), c->w->conf->wrapup_instructions,
	    1) == 0)
		send_event(c->up, b);
	p->wrap = WRAP_ASKED;
	p->wrap_response[0] = '\0';
	p->wrap_done = 0;
}

static void
limit_reached(struct call *c, uint64_t now)
{
	struct practice *p = &c->practice;

	p->limit_reached = 1;
	p->wrap_deadline_ms = now + (uint64_t)c->w->conf->wrapup_grace * 1000;
	say(c, "info", "time limit reached (%.2f free minutes): asking %s to wrap up",
	    c->w->conf->free_call_minutes, c->persona->id);
	if (p->sw == SW_OPENING && p->next != NULL) {
		/* no new persona for a caller whose time is up */
		upstream_close(p->next, "time limit");
		p->sw = SW_NONE;
	}
	if (c->relay.active_response[0] == '\0')
		wrapup_request(c);
	else
		p->wrap = WRAP_WANTED;	/* after the current response */
}

void
practice_call_ended(struct call *c)
{
	struct practice *p = &c->practice;
	const char *tmpl = c->w->conf->sms_message, *at;
	char body[1024];

	if (!p->limit_reached || p->sms_sent || !rest_sms_configured())
		return;
	p->sms_sent = 1;
	/* {url} in the message is the link */
	if ((at = strstr(tmpl, "{url}")) != NULL)
		snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - tmpl), tmpl,
		    c->w->conf->convoreps_url, at + 5);
	else
		snprintf(body, sizeof(body), "%s", tmpl);
	if (rest_send_sms(c->tok.caller, body, call_sid_of(c)) != 0)
		say(c, "info", "no goodbye SMS: %s is not a phone number",
		    c->masked);
}

/* ---------------------------------------------------------------- */
/* tools */

static void
result_add(struct call *c, const char *call_id, const char *output)
{
	struct practice *p = &c->practice;
	struct practice_result *r;

	if (p->nresults == PRACTICE_TOOLS_MAX)
		return;
	r = &p->results[p->nresults];
	vr_strlcpy(r->call_id, call_id, sizeof(r->call_id));
	if ((r->output = strdup(output)) != NULL)
		p->nresults++;
}

static const struct persona *
persona_for_mode(struct call *c, enum practice_mode mode)
{
	const char *id = NULL;
	unsigned calls = 0;
	int e;

	switch (mode) {
	case MODE_COLD_CALL:
		/* a repeat caller meets someone new */
		e = shm_ledger_find(c->w->shm, c->tok.caller);
		if (e >= 0)
			calls = atomic_load(&c->w->shm->ledger[e].le_calls);
		id = intent_pick_prospect(c->tok.caller, calls);
		break;
	case MODE_INTERVIEW:
		id = "rachel";
		break;
	case MODE_SMALL_TALK:
		id = "alex";
		break;
	default:
		return NULL;
	}
	return persona_find(c->w->personas, id);
}

/*
 * Open the practice persona's own session now, while intake finishes its
 * sentence: a Realtime session cannot change its voice once it has spoken.
 */
static int
switch_begin(struct call *c, enum practice_mode mode, const char *summary)
{
	struct practice *p = &c->practice;
	const struct persona *np;

	if (p->sw != SW_NONE || p->limit_reached)
		return -1;
	if ((np = persona_for_mode(c, mode)) == NULL) {
		say(c, "warn", "no persona for %s practice in this configuration",
		    practice_mode_name(mode));
		return -1;
	}
	if ((p->next = upstream_new(c, np)) == NULL)
		return -1;
	c->refs++;
	p->next_persona = np;
	p->mode = mode;
	vr_strlcpy(p->summary, summary ? summary : "", sizeof(p->summary));
	p->sw = SW_OPENING;
	p->next_open = 0;
	p->handover_done = 0;
	p->handover_response[0] = '\0';
	p->switch_started_ms = mono_ms();
	p->swap_deadline_ms = p->switch_started_ms + SWAP_GRACE_MS;
	p->intent_mode = MODE_NONE;
	say(c, "info", "switching to %s (%s) for %s practice", np->id,
	    np->name ? np->name : np->id, practice_mode_name(mode));
	return 0;
}

static void
record_json_line(struct call *c, const char *tool, const char *args,
    const char *ref)
{
	const char *path = c->w->conf->bookings_path;
	char when[32];
	json_t *j, *a;
	char *line;
	int fd;

	if (path[0] == '\0')
		return;
	iso8601_utc(wall_ms(), when, sizeof(when));
	a = json_loads(args, 0, NULL);
	j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "t", when, "reference", ref,
	    "call_sid", call_sid_of(c), "caller", c->tok.caller, "persona",
	    c->persona->id, "tool", tool, "arguments", a ? a : json_object());
	line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (line == NULL)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd >= 0) {
		size_t n = strlen(line);
		line[n] = '\n';
		if (write(fd, line, n + 1) < 0)
			say(c, "warn", "%s: %s", path, strerror(errno));
		close(fd);
	} else
		say(c, "warn", "%s: %s", path, strerror(errno));
	free(line);
}

void
practice_on_tool_call(struct call *c, struct upstream *up, struct oa_msg *m)
{
	struct practice *p = &c->practice;
	char out[512];
	json_t *args;

	if (up != c->up)
		return;
	worker_count(c->w, SC_tool_calls, 1);
	say(c, "info", "tool call %s(%s) by %s", m->name, m->text, c->persona->id);
	args = json_loads(m->text, 0, NULL);
	if (strcmp(m->name, "get_remaining_time") == 0) {
		uint64_t left = remaining_ms(c, mono_ms());
		snprintf(out, sizeof(out), "{\"minutes_remaining\":%.1f,"
		    "\"seconds_remaining\":%llu,\"free_minutes\":%g}",
		    left / 60000.0, (unsigned long long)(left / 1000),
		    c->w->conf->free_call_minutes);
		result_add(c, m->call_id, out);
		p->want_response = 1;
	} else if (strcmp(m->name, "end_call") == 0) {
		/* the persona said goodbye; hang up once the caller heard it */
		result_add(c, m->call_id, "{\"ok\":true}");
		p->ending = 1;
		p->ending_deadline_ms = mono_ms() + END_CALL_GRACE_MS;
	} else if (strcmp(m->name, "select_practice_mode") == 0) {
		const char *ms = json_string_value(json_object_get(args, "mode"));
		const char *sum = json_string_value(json_object_get(args, "summary"));
		enum practice_mode mode = ms ? practice_mode_parse(ms) : MODE_NONE;
		if (mode == MODE_NONE)
			snprintf(out, sizeof(out), "{\"ok\":false,\"error\":\"mode must be "
			    "cold_call, interview or small_talk\"}");
		else if (switch_begin(c, mode, sum) != 0)
			snprintf(out, sizeof(out), "{\"ok\":false,\"error\":\"that "
			    "practice is not available right now\"}");
		else {
			snprintf(out, sizeof(out), "{\"ok\":true,\"connecting_to\":\"%s\","
			    "\"instructions\":\"Say one short hand-over sentence; the "
			    "caller will then be connected.\"}",
			    p->next_persona->name ? p->next_persona->name :
			    p->next_persona->id);
			p->handover_wanted = 1;
		}
		result_add(c, m->call_id, out);
		p->want_response = 1;
	} else if (strcmp(m->name, "book_appointment") == 0 ||
	    strcmp(m->name, "record_payment_arrangement") == 0) {
		unsigned char r[3];
		char ref[16];
		random_bytes(r, sizeof(r));
		snprintf(ref, sizeof(ref), "VR-%02X%02X%02X", r[0], r[1], r[2]);
		record_json_line(c, m->name, m->text, ref);
		snprintf(out, sizeof(out), "{\"%s\":true,\"reference\":\"%s\"}",
		    m->name[0] == 'b' ? "booked" : "recorded", ref);
		result_add(c, m->call_id, out);
		p->want_response = 1;
	} else if (strcmp(m->name, "verify_identity") == 0) {
		result_add(c, m->call_id, "{\"verified\":true}");
		p->want_response = 1;
	} else {
		result_add(c, m->call_id, "{\"error\":\"this tool is not available\"}");
		p->want_response = 1;
	}
	json_decref(args);
}

/* The model's response is over: send what its tools returned. */
static void
results_flush(struct call *c)
{
	struct practice *p = &c->practice;
	struct buf *b;

	for (unsigned i = 0; i < p->nresults; i++) {
		b = relay_scratch();
		if (oa_build_function_output(b, p->results[i].call_id,
		    p->results[i].output) == 0)
			send_event(c->up, b);
		free(p->results[i].output);
	}
	p->nresults = 0;
	if (p->want_response && !p->ending && p->wrap == WRAP_NONE) {
		b = relay_scratch();
		if (oa_build_response_create(b, dialect(c), NULL, 0) == 0)
			send_event(c->up, b);
	}
	p->want_response = 0;
}

/* ---------------------------------------------------------------- */
/* the swap */

static int
old_is_quiet(struct call *c)
{
	return c->relay.active_response[0] == '\0' && c->relay.mcount == 0;
}

/*
 * Between turns: intake has said its last sentence and the caller has
 * heard it; the next session is open.  It becomes the call's session, is
 * told in one line what the caller asked for, and speaks first.
 */
static void
swap(struct call *c)
{
	struct practice *p = &c->practice;
	struct upstream *old = c->up;
	const struct persona *np = p->next_persona;
	char line[512];
	struct buf *b;

	c->up = p->next;
	p->next = NULL;
	p->sw = SW_DONE;
	c->persona = np;
	relay_reset_playback(&c->relay);
	if (c->slot >= 0)
		shm_call_set_persona(c->w->shm, c->slot, np->id);
	snprintf(line, sizeof(line), "The caller chose %s practice%s%s. The call "
	    "is connected to you now: answer it as yourself.",
	    p->mode == MODE_COLD_CALL ? "cold-call" : p->mode == MODE_INTERVIEW ?
	    "job interview" : "small talk", p->summary[0] ? ": " : "", p->summary);
	b = relay_scratch();
	if (oa_build_text_item(b, line, 1) == 0)
		send_event(c->up, b);
	b = relay_scratch();
	if (oa_build_response_create(b, dialect(c), np->greeting, 0) == 0)
		send_event(c->up, b);
	say(c, "info", "now talking to %s (switch took %llu ms)", np->id,
	    (unsigned long long)(mono_ms() - p->switch_started_ms));
	if (old != NULL)
		upstream_close(old, "persona switch");
}

static void
maybe_swap(struct call *c)
{
	struct practice *p = &c->practice;

	if (p->sw != SW_OPENING || !p->next_open || c->state != CALL_LIVE)
		return;
	if ((p->handover_done && old_is_quiet(c)) || mono_ms() >= p->swap_deadline_ms)
		swap(c);
}

int
practice_is_next(struct call *c, struct upstream *up)
{
	return up != NULL && c->practice.next == up;
}

void
practice_next_open(struct call *c, struct upstream *up)
{
	c->practice.next_open = 1;
	say(c, "debug", "next session open (persona %s)", up->persona->id);
	maybe_swap(c);
}

void
practice_next_failed(struct call *c, struct upstream *up, const char *why)
{
	snprintf(c->fail_reason, sizeof(c->fail_reason),
	    "openai: the practice session did not open: %s", why);
	call_close(c, c->fail_reason, 1, 1011);
}

void
practice_next_gone(struct call *c, struct upstream *up)
{
	if (c->practice.next == up)
		c->practice.next = NULL;
}

void
practice_stop(struct call *c)
{
	if (c->practice.next != NULL)
		upstream_close(c->practice.next, "call over");
}

/* ---------------------------------------------------------------- */

void
practice_on_response_created(struct call *c, struct upstream *up, struct oa_msg *m)
{
	struct practice *p = &c->practice;

	if (up != c->up)
		return;
	if (p->wrap == WRAP_ASKED && p->wrap_response[0] == '\0')
		vr_strlcpy(p->wrap_response, m->response_id, sizeof(p->wrap_response));
	if (p->sw == SW_OPENING && p->handover_wanted &&
	    p->handover_response[0] == '\0') {
		vr_strlcpy(p->handover_response, m->response_id,
		    sizeof(p->handover_response));
		p->handover_wanted = 0;
	}
}

void
practice_on_response_done(struct call *c, struct upstream *up, struct oa_msg *m)
{
	struct practice *p = &c->practice;

	if (up != c->up)
		return;
	if (p->nresults > 0 || p->want_response)
		results_flush(c);
	if (p->wrap == WRAP_WANTED) {
		wrapup_request(c);
		return;
	}
	if (p->wrap == WRAP_ASKED && strcmp(m->response_id, p->wrap_response) == 0)
		p->wrap_done = 1;
	if (p->sw == SW_OPENING && strcmp(m->response_id, p->handover_response) == 0)
		p->handover_done = 1;
	practice_on_played(c);
}

void
practice_on_played(struct call *c)
{
	struct practice *p = &c->practice;

	if (c->state != CALL_LIVE)
		return;
	if (p->wrap == WRAP_ASKED && p->wrap_done && old_is_quiet(c)) {
		call_close(c, "time limit reached", 0, 1000);
		return;
	}
	if (p->ending && old_is_quiet(c)) {
		call_close(c, "the persona ended the call", 0, 1000);
		return;
	}
	maybe_swap(c);
}

/*
 * The keyword fallback: intake's caller said what to practise, but the
 * model did not call select_practice_mode.  Said twice, or still not acted
 * on after INTENT_FALLBACK_SECONDS, the worker switches by itself and asks
 * intake to say the hand-over line.
 */
static void
fallback_switch(struct call *c)
{
	struct practice *p = &c->practice;
	enum practice_mode mode = p->intent_mode;
	char instr[256];
	struct buf *b;

	say(c, "info", "keyword fallback: the caller asked for %s practice",
	    practice_mode_name(mode));
	if (switch_begin(c, mode, p->intent_text) != 0)
		return;
	snprintf(instr, sizeof(instr), "Tell the caller in one short sentence that "
	    "you are connecting them to %s practice now.",
	    mode == MODE_COLD_CALL ? "cold-call" : mode == MODE_INTERVIEW ?
	    "job interview" : "small talk");
	p->handover_wanted = 1;
	if (c->relay.active_response[0] == '\0') {
		b = relay_scratch();
		if (oa_build_response_create(b, dialect(c), instr, 1) == 0)
			send_event(c->up, b);
	} else
		/* it is talking: let that be the hand-over */
		vr_strlcpy(p->handover_response, c->relay.active_response,
		    sizeof(p->handover_response));
}

void
practice_on_caller_transcript(struct call *c, const char *text)
{
	struct practice *p = &c->practice;
	enum practice_mode mode;

	if (c->persona->mode == NULL || strcmp(c->persona->mode, "intake") != 0 ||
	    p->sw != SW_NONE || p->limit_reached)
		return;
	if ((mode = intent_detect(text)) == MODE_NONE)
		return;
	if (p->intent_mode == mode) {
		fallback_switch(c);	/* said twice */
		return;
	}
	p->intent_mode = mode;
	p->intent_at_ms = mono_ms();
	vr_strlcpy(p->intent_text, text, sizeof(p->intent_text));
}

void
practice_tick(struct call *c, uint64_t now)
{
	struct practice *p = &c->practice;

	if (c->state != CALL_LIVE)
		return;
	if (!p->limit_reached && p->limit_at_ms != 0 && now >= p->limit_at_ms) {
		limit_reached(c, now);
		return;
	}
	if (p->limit_reached && now >= p->wrap_deadline_ms) {
		call_close(c, "time limit reached", 0, 1000);
		return;
	}
	if (p->ending && now >= p->ending_deadline_ms) {
		call_close(c, "the persona ended the call", 0, 1000);
		return;
	}
	if (p->intent_mode != MODE_NONE && p->sw == SW_NONE &&
	    now - p->intent_at_ms >= (uint64_t)c->w->conf->intent_fallback_seconds * 1000)
		fallback_switch(c);
	maybe_swap(c);
}
