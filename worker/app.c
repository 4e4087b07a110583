/*
 * app.c — the table of apps; see app.h.  Adding an app is a file of its
 * own (app_<name>.c) and one line here.
 */
#include "worker/app.h"
#include "worker/call.h"
#include "worker/relay.h"
#include "worker/worker.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "personas/line.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct app *const apps[] = {
	&app_practice,
	&app_agent,
};

static const char *const names[] = {
	"practice",
	"agent",
	NULL,
};

const struct app *
app_find(const char *name)
{
	for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++)
		if (strcmp(apps[i]->name, name) == 0)
			return apps[i];
	return NULL;
}

int
app_admit(const struct line *l, const char *caller, uint64_t used_ms)
{
	const struct app *a = app_find(l->app);
	uint64_t allow, min;

	if (a != NULL && a->admitted != NULL)
		return a->admitted(l, caller, used_ms);
	if (!line_has_quota(l))
		return 1;
	allow = (uint64_t)(l->free_minutes * 60000.0 + 0.5);
	min = (uint64_t)(l->min_minutes * 60000.0 + 0.5);
	return used_ms < allow && allow - used_ms >= min;
}

/* When the caller's allowance runs out for this call, counting remote,
 * the ms other hosts used as last read, and this host's calls up to now.
 * The caller's calls live here spend what is left together, so each gets
 * its share: they all end when it is spent, whichever started first. */
static uint64_t
quota_end(const struct call *c, uint64_t now, uint64_t remote)
{
	const struct line *l = c->line;
	uint64_t used, allow;
	unsigned n;

	used = shm_usage_live_ms(c->w->shm, c->tok.caller, now, &n) + remote;
	allow = (uint64_t)(l->free_minutes * 60000.0 + 0.5);
	if (n == 0)
		n = 1;
	return now + (used >= allow ? 0 : (allow - used) / n);
}

int
app_line_limit(struct call *c)
{
	const struct line *l = c->line;
	uint64_t now = mono_ms(), at = 0;
	double minutes = -1;
	int by_quota = 0;

	if (line_has_quota(l)) {
		/* with DATABASE_URL, the minutes other hosts reported at
		 * the webhook count too */
		shm_caller_peek(c->w->shm, c->tok.caller, &c->limit_remote_ms,
		    &c->limit_live);
		at = quota_end(c, now, c->limit_remote_ms);
		minutes = l->free_minutes;
		by_quota = 1;
	}
	c->limit_max_at_ms = 0;
	if (l->max_call_minutes > 0) {
		uint64_t max = now + (uint64_t)(l->max_call_minutes * 60000.0 + 0.5);
		c->limit_max_at_ms = max;
		if (at == 0 || max < at) {
			at = max;
			minutes = l->max_call_minutes;
			by_quota = 0;
		}
	}
	if (at != 0)
		relay_set_limit(c, at, l->wrapup, (unsigned)l->wrapup_grace,
		    minutes);
	return by_quota;
}

int
app_line_recheck(struct call *c, uint64_t now)
{
	const struct line *l = c->line;
	uint64_t remote, at, left, cur;
	unsigned live;
	int fewer, by_quota = 1;

	if (!line_has_quota(l) || relay_limit_reached(c))
		return -1;
	shm_caller_peek(c->w->shm, c->tok.caller, &remote, &live);
	if (remote == c->limit_remote_ms && live == c->limit_live)
		return -1;
	fewer = live < c->limit_live;
	c->limit_remote_ms = remote;
	c->limit_live = live;
	/* this host's calls as now, the call itself included: the same
	 * end as at the start when nothing but a figure's timing moved */
	at = quota_end(c, now, remote);
	left = relay_remaining_ms(c, now);
	cur = left == UINT64_MAX ? 0 : now + left;
	if (!fewer && cur != 0 && at >= cur)
		return -1;	/* an earlier end stands (or a lower figure) */
	if (c->limit_max_at_ms != 0 && c->limit_max_at_ms <= at) {
		at = c->limit_max_at_ms;
		by_quota = 0;
	}
	if (at == cur)
		return -1;
	log_set_call(call_sid_of(c));
	log_debug("the caller's minutes on other hosts are %.1f s, %u of "
	    "their calls live here: the time limit comes in %.1f s",
	    remote / 1000.0, live, (at - now) / 1000.0);
	log_set_call(NULL);
	relay_set_limit(c, at, l->wrapup, (unsigned)l->wrapup_grace,
	    by_quota ? l->free_minutes : l->max_call_minutes);
	return by_quota;
}

void
app_line_sms(struct call *c)
{
	const char *tmpl = c->line->sms, *at;
	char body[1024];

	if (tmpl == NULL)
		return;
	if ((at = strstr(tmpl, "{url}")) != NULL)
		snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - tmpl), tmpl,
		    c->w->conf->convoreps_url, at + 5);
	else
		snprintf(body, sizeof(body), "%s", tmpl);
	relay_send_sms(c, body);
}

int
app_greeting(struct call *c)
{
	if (c->app->greeting != NULL)
		return c->app->greeting(c);
	return app_line_greeting(c);
}

int
app_line_greeting(struct call *c)
{
	const struct line *l = c->line;

	if (l == NULL || (l->speaks_first != LINE_SPEAKS_CALLEE &&
	    (l->speaks_first != LINE_SPEAKS_BY_DIRECTION || !c->outbound)))
		return 0;
	return l->greeting_pause_ms;
}

/* An outbound call's facts: the request's name and its date_of_birth and
 * account_last4 variables; NULL when it gave no name or neither of those
 * (then nothing can be verified). */
static json_t *
call_facts(const struct call *c)
{
	const char *name = json_string_value(json_object_get(c->outvars, "name"));
	json_t *f, *v;

	if (name == NULL || name[0] == '\0' ||
	    (json_object_get(c->outvars, "date_of_birth") == NULL &&
	    json_object_get(c->outvars, "account_last4") == NULL) ||
	    (f = json_pack("{s:s}", "full_name", name)) == NULL)
		return NULL;
	if ((v = json_object_get(c->outvars, "date_of_birth")) != NULL)
		json_object_set(f, "date_of_birth", v);
	if ((v = json_object_get(c->outvars, "account_last4")) != NULL)
		json_object_set(f, "account_last4", v);
	return f;
}

json_t *
app_line_facts(const struct call *c, int *of_call)
{
	const struct line *l = c->line;
	int call;

	call = l != NULL && (l->facts_from == LINE_FACTS_CALL ||
	    (l->facts_from == LINE_FACTS_BY_DIRECTION && c->outbound));
	if (of_call != NULL)
		*of_call = call;
	if (call)
		return call_facts(c);
	return l != NULL && l->facts_json != NULL ?
	    json_loads(l->facts_json, 0, NULL) : NULL;
}

const char *
app_line_tools(const struct call *c, const struct persona *p,
    const char *tools, char **own)
{
	const struct line *l = c->line;
	const char *lp;

	if (l == NULL)
		return tools;
	lp = l->persona[0] ? l->persona : c->tok.route;
	if (l->tools_json != NULL && strcmp(p->id, lp) == 0)
		return l->tools_json;
	/* the call's facts come with the stream's start, perhaps after the
	 * session opened: a line whose facts are the call's keeps it */
	if (l->facts_json == NULL && l->facts_from != LINE_FACTS_CALL &&
	    tools != NULL && strstr(tools, "\"verify_identity\"") != NULL) {
		free(*own);
		if ((*own = line_tools_without(tools, "verify_identity")) != NULL)
			return *own;
	}
	return tools;
}

const char *const *
app_names(void)
{
	return names;
}
