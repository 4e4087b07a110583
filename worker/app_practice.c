/*
 * app_practice.c — the practice line: an intake persona asks what the
 * caller wants to practise and hands them to a persona for it (a tool
 * call, or the keyword fallback on what the caller said); a repeat caller
 * meets a new prospect; the caller's free minutes end the call with a
 * spoken wrap-up, and a caller whose time ran out gets the goodbye SMS.
 */
#include "worker/app.h"
#include "worker/call.h"
#include "worker/relay.h"
#include "worker/tools.h"
#include "worker/worker.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "personas/intent.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct practice {
	enum practice_mode	 mode;		/* chosen */
	int			 by_quota;	/* the allowance ends the call */
	int			 sms_sent;
	/* keyword fallback */
	enum practice_mode	 intent_mode;
	uint64_t		 intent_at_ms;
	char			 intent_text[256];
};

static struct practice *
state(struct call *c)
{
	return c->app_state;
}

static void
note(struct call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note(struct call *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_set_call(call_sid_of(c));
	log_info("%s", msg);
	log_set_call(NULL);
}

static const char *
mode_words(enum practice_mode mode)
{
	return mode == MODE_COLD_CALL ? "cold-call" : mode == MODE_INTERVIEW ?
	    "job interview" : "small talk";
}

/* ---------------------------------------------------------------- */
/* minutes */

static void
practice_started(struct call *c)
{
	state(c)->by_quota = app_line_limit(c);
}

/* A caller whose allowance ran out is texted the line's goodbye. */
static void
practice_ended(struct call *c)
{
	struct practice *p = state(c);

	if (!relay_limit_reached(c) || !p->by_quota || p->sms_sent)
		return;
	p->sms_sent = 1;
	app_line_sms(c);
}

/* ---------------------------------------------------------------- */
/* the switch to a practice persona */

/*
 * The persona for a mode: the personas whose "mode" is that mode's name,
 * in the order of their ids.  Cold calls go round the prospects, so a
 * repeat caller meets someone new; the other modes take the first.
 */
static const struct persona *
persona_for_mode(struct call *c, enum practice_mode mode)
{
	const struct persona_set *ps = c->w->personas;
	const char *want = practice_mode_name(mode);
	const struct persona *v[64];
	unsigned n = 0, calls = 0;
	int e;

	if (mode == MODE_NONE)
		return NULL;
	for (size_t i = 0; i < ps->n && n < 64; i++)
		if (ps->v[i].mode != NULL && strcmp(ps->v[i].mode, want) == 0)
			v[n++] = &ps->v[i];
	if (n == 0)
		return NULL;
	if (mode != MODE_COLD_CALL)
		return v[0];
	e = shm_ledger_find(c->w->shm, c->tok.caller);
	if (e >= 0)
		calls = atomic_load(&c->w->shm->ledger[e].le_calls);
	return v[intent_pick(c->tok.caller, calls, n)];
}

/* handover: as relay_switch_persona().  The persona, or NULL. */
static const struct persona *
switch_to(struct call *c, enum practice_mode mode, const char *summary,
    const char *handover)
{
	struct practice *p = state(c);
	const struct persona *np;
	char intro[512];

	if (relay_switching(c) || relay_limit_reached(c))
		return NULL;
	if ((np = persona_for_mode(c, mode)) == NULL) {
		log_set_call(call_sid_of(c));
		log_warnx("no persona for %s practice in this configuration",
		    practice_mode_name(mode));
		log_set_call(NULL);
		return NULL;
	}
	summary = summary != NULL ? summary : "";
	snprintf(intro, sizeof(intro), "The caller chose %s practice%s%s. The "
	    "call is connected to you now: answer it as yourself.",
	    mode_words(mode), summary[0] ? ": " : "", summary);
	if (relay_switch_persona(c, np, intro, handover) != 0)
		return NULL;
	p->mode = mode;
	p->intent_mode = MODE_NONE;
	note(c, "%s practice with %s", practice_mode_name(mode), np->id);
	return np;
}

static int
practice_tool_call(struct call *c, const struct app_tool *t)
{
	const struct persona *np;
	const char *ms, *sum;
	enum practice_mode mode;
	char out[512];
	json_t *args;

	if (strcmp(t->name, "select_practice_mode") != 0)
		return tools_business(c, t);
	args = json_loads(t->args, 0, NULL);
	ms = json_string_value(json_object_get(args, "mode"));
	sum = json_string_value(json_object_get(args, "summary"));
	mode = ms ? practice_mode_parse(ms) : MODE_NONE;
	if (mode == MODE_NONE)
		snprintf(out, sizeof(out), "{\"ok\":false,\"error\":\"mode must be "
		    "cold_call, interview or small_talk\"}");
	else if ((np = switch_to(c, mode, sum, NULL)) == NULL)
		snprintf(out, sizeof(out), "{\"ok\":false,\"error\":\"that "
		    "practice is not available right now\"}");
	else
		snprintf(out, sizeof(out), "{\"ok\":true,\"connecting_to\":\"%s\","
		    "\"instructions\":\"Say one short hand-over sentence; the "
		    "caller will then be connected.\"}",
		    np->name ? np->name : np->id);
	relay_tool_result(c, t->call_id, out, 1);
	json_decref(args);
	return 1;
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
	struct practice *p = state(c);
	enum practice_mode mode = p->intent_mode;
	char instr[256];

	note(c, "keyword fallback: the caller asked for %s practice",
	    practice_mode_name(mode));
	snprintf(instr, sizeof(instr), "Tell the caller in one short sentence "
	    "that you are connecting them to %s practice now.", mode_words(mode));
	switch_to(c, mode, p->intent_text, instr);
}

static void
practice_transcript(struct call *c, const char *role, const char *text)
{
	struct practice *p = state(c);
	enum practice_mode mode;

	if (strcmp(role, "caller") != 0 || c->persona->mode == NULL ||
	    strcmp(c->persona->mode, "intake") != 0 || relay_switching(c) ||
	    relay_limit_reached(c))
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

static void
practice_tick(struct call *c, uint64_t now)
{
	struct practice *p = state(c);
	int by_quota = app_line_recheck(c, now);

	if (by_quota >= 0)
		p->by_quota = by_quota;
	if (p->intent_mode != MODE_NONE && !relay_switching(c) &&
	    !relay_limit_reached(c) && now - p->intent_at_ms >=
	    (uint64_t)c->w->conf->intent_fallback_seconds * 1000)
		fallback_switch(c);
}

const struct app app_practice = {
	.name = "practice",
	.state_size = sizeof(struct practice),
	.started = practice_started,
	.tool_call = practice_tool_call,
	.transcript = practice_transcript,
	.tick = practice_tick,
	.ended = practice_ended,
};
