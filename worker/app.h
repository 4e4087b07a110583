/*
 * app.h — apps: the products that run on the relay.
 *
 * The relay (relay.c) is mechanism: audio both ways, marks, barge-in,
 * session swaps, tool plumbing, the time limit.  Everything a customer
 * would describe in words (which persona answers, what a tool does, when
 * the caller is texted) is an app.  An app is a table of hooks the relay
 * calls at fixed points of a call, and it acts through the relay's
 * services (relay.h, "services"): say something, answer a tool, switch
 * persona, hang up, the time limit and what is left of it, send an SMS.
 *
 * Every hook is optional.  All run on the worker's loop, for a live call
 * (CALL_LIVE), and may close the call; the relay checks the call's state
 * after each.  An app keeps its per-call state in c->app_state, state_size
 * zeroed bytes allocated with the call and freed with it (free is called
 * first, for what the state points to).
 *
 * Apps register in one table, app.c.
 */
#ifndef VR_APP_H
#define VR_APP_H

#include <stddef.h>
#include <stdint.h>

struct call;
struct json_t;
struct line;
struct persona;

/* One function call of the model, complete. */
struct app_tool {
	const char	*name;
	const char	*call_id;
	const char	*args;		/* JSON text, as the model wrote it */
};

struct app {
	const char	*name;
	size_t		 state_size;
	/* at the webhook, in the master (no call yet): 1 to let the caller
	 * in, 0 to refuse them as out of minutes.  used_ms: their minutes in
	 * the ledger.  NULL: the line's quota decides (app_admit()). */
	int		(*admitted)(const struct line *l, const char *caller,
			    uint64_t used_ms);
	/* the session in use opened and its persona has a greeting: ms to
	 * hold it for the callee's first words, 0 to say it now.  The relay
	 * waits for their speech (answering them is the greeting), Twilio's
	 * `human` verdict or the time, whichever comes first.  NULL: the
	 * line's speaks_first and greeting_pause_ms (app_line_greeting()) */
	int		(*greeting)(struct call *c);
	/* `start` came: the call is counted, its persona is talking */
	void		(*started)(struct call *c);
	/* the model called a tool: 1 if the app answered it (with
	 * relay_tool_result), 0 to leave it to the relay's own tools */
	int		(*tool_call)(struct call *c, const struct app_tool *t);
	/* one finished line of the transcript; role "caller" or "assistant" */
	void		(*transcript)(struct call *c, const char *role,
			    const char *text);
	/* a response of the session in use is done */
	void		(*response_done)(struct call *c, const char *response_id);
	/* no response is active and the caller heard everything sent */
	void		(*idle)(struct call *c);
	/* every worker tick (250 ms) */
	void		(*tick)(struct call *c, uint64_t now);
	/* the call ended (once, for a call that started) */
	void		(*ended)(struct call *c);
	/* the call is being freed: release what app_state points to */
	void		(*free)(struct call *c);
};

/* The app named name, or NULL. */
const struct app *app_find(const char *name);

/* The webhook's question for a caller of line l: the app's admitted hook,
 * or the line's quota (free_minutes, min_minutes; none admits everyone).
 * 1 admit, 0 refuse. */
int  app_admit(const struct line *l, const char *caller, uint64_t used_ms);

/* Policy the lines set, for apps to apply (app.c). */
/* The time limit of the call's line: the caller's allowance (free_minutes
 * less the ledger) or the per-call maximum, whichever ends first, with the
 * line's wrap-up.  Returns 1 when the allowance ends the call. */
int  app_line_limit(struct call *c);
/* Each tick: when the other hosts' minutes for the caller moved (the
 * master re-reads them while calls are live) or the number of the
 * caller's calls live here changed, the limit moves to where the
 * allowance, shared between those calls, now ends: sooner, or later when
 * a call of the caller ended (never past the per-call maximum).  -1 when
 * nothing moved, else 1 when the allowance now ends the call, 0 when the
 * per-call maximum does. */
int  app_line_recheck(struct call *c, uint64_t now);
/* Text the caller the line's goodbye SMS ({url}: CONVOREPS_URL), if any. */
void app_line_sms(struct call *c);
/* How long the call's greeting waits for the callee: the app's greeting
 * hook, or the line's (app_line_greeting()).  ms, 0: greet now. */
int  app_greeting(struct call *c);
/* The line's: greeting_pause_ms when the callee speaks first (speaks_first;
 * absent: on an outbound call), else 0. */
int  app_line_greeting(struct call *c);
/* The facts verify_identity checks the caller against on this call, as
 * the line's facts_from says: the line's "facts", or the call's own (an
 * outbound request's name with its date_of_birth and account_last4
 * variables); absent: the call's on an outbound call.  A new object, or
 * NULL when there are none; *of_call (if not NULL) says whose were meant. */
struct json_t *app_line_facts(const struct call *c, int *of_call);
/* The tools a session of persona p offers on the call's line: the line's
 * list for its own persona; another's own list (tools, may be NULL) less
 * verify_identity when the line has no facts to check it against.  A
 * list made here is left in *own, for the caller to free. */
const char *app_line_tools(const struct call *c, const struct persona *p,
    const char *tools, char **own);
/* Names of every app, NULL-terminated (for messages). */
const char *const *app_names(void);

/* The apps (app_<name>.c). */
extern const struct app app_practice;
extern const struct app app_agent;

#endif
