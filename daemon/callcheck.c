/*
 * callcheck.c — an outbound call whose status callbacks stopped coming is
 * asked about: GET /2010-04-01/Accounts/<AccountSid>/Calls/<CallSid>.json
 * on the master's REST client (outbound.c's rest_get(), basic auth, never
 * blocking the loop), tried CC_TRIES times, CC_BACKOFF_MS apart and
 * doubled, on 429, 5xx and no answer.
 *
 * Callbacks get lost: the daemon was down (a restart, a crash, kill -9)
 * when Twilio posted the final one, or Twilio gave up posting it.  Without
 * it the call's record stays open and a campaign's contact stays
 * `calling`.  So a call is asked about
 *  - at start, when the last run left it open (its record not final, or
 *    its contact still calling), and
 *  - when no callback came for longer than its line lets a call last
 *    (max_call_minutes, or CC_NO_LIMIT_MS on a line with none) plus
 *    OUTBOUND_STATUS_GRACE (ringing, wrap-up, Twilio's own delay).
 *
 * The answer goes through outbound_status(), the status callback's own
 * path, so the record and the contact's outcome are the same whichever
 * brought them.  A call still live keeps waiting for its callbacks and is
 * asked again after the same quiet time; a 404 means the call was never
 * created (the record is closed as failed, the contact's attempt spent as
 * "unknown").  After CC_ASKS_MAX answers without a final status, or when
 * the account is not configured, the call is given up: its contact's
 * attempt is spent as "unknown", its record left as it is (a later start
 * asks again).  Never more than CC_INFLIGHT queries at once.
 *
 * A contact left calling with no CallSid was marked, and the master
 * killed before the create's answer was stored: Twilio may have made the
 * call.  Its call is looked for in Twilio's latest calls to the number
 * (outbound_list_calls(): no StartTime filter, a queued call has no start
 * time), one from our number, placed through the API, created since the
 * attempt was marked and no other contact's: found, the contact adopts it
 * and it is asked about as above, so the contact gets the call's real
 * outcome; not there, the attempt is spent as "unknown"; the list not
 * read, asked again CC_LIST_TRIES times, doubling from CC_BACKOFF_MS,
 * before the attempt is spent as "unknown".  Never dialled again for it.
 */
#include "daemon/master.h"
#include "daemon/callcheck.h"
#include "daemon/campaign.h"
#include "daemon/outbound.h"
#include "daemon/store.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "personas/line.h"
#include "worker/rest.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CC_TICK_MS	500
#define CC_INFLIGHT	4		/* queries at once */
#define CC_TRIES	4		/* one query: 1 + 3 retries */
#define CC_BACKOFF_MS	1000		/* before its first retry, doubled */
#define CC_TIMEOUT_MS	10000		/* one try */
#define CC_ASKS_MAX	10		/* answers without a final status */
#define CC_RETRY_MS	30000		/* after a failed query, doubled */
#define CC_NO_LIMIT_MS	(4 * 3600 * 1000ull)	/* a line with no limit */
#define CC_RESTORE_MAX	500		/* open records read at start */
#define CC_RELOAD_MS	5000		/* the store did not answer */
#define CC_LIST_TRIES	6		/* one lost create's list: 1 + 5 */
#define CC_GONE_MAX	256		/* calls given up, remembered */

struct cc_call {
	struct cc_call	*next;
	char		 sid[SHM_SID_MAX];
	char		 line[33];
	uint64_t	 ref;		/* the query's, in its outcome */
	uint64_t	 due_ms;	/* mono: ask then */
	int		 asks;		/* answers without a final status */
	int		 tries;		/* of the query being made */
	int		 asking;	/* a query in flight */
	int		 restored;	/* left open by the last run */
};

/* a contact left calling with no CallSid, its call looked for */
struct cc_lost {
	struct cc_lost	*next;
	char		 campaign[CAMP_ID_MAX];
	char		 phone[SHM_PHONE_MAX];
	uint64_t	 marked_ms;	/* wall: the attempt's mark */
	uint64_t	 ref;
	uint64_t	 due_ms;	/* mono */
	int		 tries;
	int		 asking;
};

static struct cc_call	*cc_calls;
static struct cc_lost	*cc_lost;
/* the calls given up, newest last (a ring): a late callback of one still
 * updates its record */
static char		 cc_gone[CC_GONE_MAX][SHM_SID_MAX];
static size_t		 cc_gone_next;
static int		 cc_open_read;	/* the calls left open are known */
static uint64_t		 cc_seq;
static unsigned		 cc_inflight;
static uv_timer_t	 cc_timer, cc_again;
static int		 cc_timer_on, cc_again_on;

static const char *const live[] = { "queued", "ringing", "in-progress", NULL };
static const char *const final[] = { "completed", "busy", "no-answer",
    "failed", "canceled", NULL };

static int
one_of(const char *const *v, const char *s)
{
	for (size_t i = 0; s != NULL && v[i] != NULL; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

static struct cc_call *
cc_find(const char *sid)
{
	for (struct cc_call *c = cc_calls; c != NULL; c = c->next)
		if (strcmp(c->sid, sid) == 0)
			return c;
	return NULL;
}

static struct cc_call *
cc_by_ref(uint64_t ref)
{
	for (struct cc_call *c = cc_calls; c != NULL; c = c->next)
		if (c->ref == ref)
			return c;
	return NULL;
}

/* How long a call on line may go without a callback. */
static uint64_t
quiet_ms(struct master *m, const char *line_id)
{
	const struct line *l = line_find(&m->lines, line_id);
	uint64_t q = CC_NO_LIMIT_MS;

	if (l != NULL && l->max_call_minutes > 0)
		q = (uint64_t)(l->max_call_minutes * 60000.0);
	return q + (uint64_t)m->conf.outbound_status_grace * 1000;
}

static struct cc_call *
cc_add(const char *sid, const char *line)
{
	struct cc_call *c;

	if ((c = cc_find(sid)) != NULL)
		return c;
	if (strlen(sid) >= sizeof(c->sid) || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	vr_strlcpy(c->sid, sid, sizeof(c->sid));
	vr_strlcpy(c->line, line ? line : "", sizeof(c->line));
	c->next = cc_calls;
	cc_calls = c;
	return c;
}

static void
cc_free(struct cc_call *c)
{
	struct cc_call **pp;

	for (pp = &cc_calls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	free(c);
}

/* No final status will come from asking: the contact's attempt is spent,
 * the record left for a later start to ask about. */
static void
give_up(struct master *m, struct cc_call *c, const char *why)
{
	char sid[SHM_SID_MAX];

	master_count(m, SC_outbound_status_given_up);
	log_set_call(c->sid);
	log_warnx("outbound call: no final status (%s); given up, its "
	    "campaign attempt spent as unknown", why);
	log_set_call(NULL);
	vr_strlcpy(sid, c->sid, sizeof(sid));
	cc_free(c);
	vr_strlcpy(cc_gone[cc_gone_next], sid, sizeof(cc_gone[0]));
	cc_gone_next = (cc_gone_next + 1) % CC_GONE_MAX;
	campaign_call_status(m, sid, "unknown");
}

/* The next question after an answer without a final status. */
static void
again(struct master *m, struct cc_call *c, uint64_t delay, const char *why)
{
	c->tries = 0;
	if (++c->asks >= CC_ASKS_MAX) {
		give_up(m, c, why);
		return;
	}
	c->due_ms = mono_ms() + delay;
}

/* CA and 32 hex digits, nothing else: it goes into the URL */
static int
sid_valid(const char *sid)
{
	return strlen(sid) == 34 && strncmp(sid, "CA", 2) == 0 &&
	    strspn(sid + 2, "0123456789abcdefABCDEF") == 32;
}

static void
ask(struct master *m, struct cc_call *c)
{
	struct rest *r = outbound_rest();
	char path[64];

	if (r == NULL || !rest_calls_configured(r)) {
		give_up(m, c, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not "
		    "set");
		return;
	}
	if (!sid_valid(c->sid)) {
		give_up(m, c, "not a CallSid Twilio could know");
		return;
	}
	snprintf(path, sizeof(path), "Calls/%s.json", c->sid);
	c->ref = CALLCHECK_REF | ++cc_seq;
	if (rest_get(r, path, CC_TIMEOUT_MS, c->ref) != 0) {
		again(m, c, CC_RETRY_MS, "cannot ask for it");
		return;
	}
	c->asking = 1;
	cc_inflight++;
	if (c->tries++ > 0) {
		master_count(m, SC_rest_retries);
		return;
	}
	master_count(m, SC_outbound_status_queries);
	log_set_call(c->sid);
	log_info("outbound call: asking Twilio for its status (%s)",
	    c->restored && c->asks == 0 ? "left open by the last run" :
	    "no status callback for longer than its line allows");
	log_set_call(NULL);
}

static void lost_ask(struct master *m, struct cc_lost *l);

static void
scan(struct master *m)
{
	uint64_t now = mono_ms();

	for (struct cc_lost *l = cc_lost, *next; l != NULL; l = next) {
		next = l->next;
		if (cc_inflight >= CC_INFLIGHT)
			return;
		if (!l->asking && l->due_ms <= now)
			lost_ask(m, l);	/* may free l, never next */
	}

	for (struct cc_call *c = cc_calls, *next; c != NULL; c = next) {
		next = c->next;
		if (cc_inflight >= CC_INFLIGHT)
			return;
		if (!c->asking && c->due_ms <= now)
			ask(m, c);	/* may free c, never next */
	}
}

static void
tick_cb(uv_timer_t *t)
{
	scan(t->loop->data);
}

static void
timer_start(struct master *m)
{
	if (cc_timer_on)
		return;
	uv_timer_init(m->loop, &cc_timer);
	uv_unref((uv_handle_t *)&cc_timer);
	uv_timer_start(&cc_timer, tick_cb, CC_TICK_MS, CC_TICK_MS);
	cc_timer_on = 1;
}

void
callcheck_watch(struct master *m, const char *sid, const char *line)
{
	struct cc_call *c = cc_add(sid, line);

	if (c == NULL)
		return;
	timer_start(m);
	c->due_ms = mono_ms() + quiet_ms(m, c->line);
}

void
callcheck_restore(struct master *m, const char *sid, const char *line)
{
	struct cc_call *c = cc_find(sid);

	if (c != NULL)
		return;		/* asked about already */
	if ((c = cc_add(sid, line)) == NULL)
		return;
	timer_start(m);
	c->restored = 1;
	c->due_ms = 0;		/* the next tick asks */
}

void
callcheck_heard(struct master *m, const char *sid)
{
	struct cc_call *c = cc_find(sid);

	if (c == NULL)
		return;
	c->asks = 0;
	if (!c->asking)
		c->due_ms = mono_ms() + quiet_ms(m, c->line);
}

static char *
gone_find(const char *sid)
{
	for (size_t i = 0; sid != NULL && sid[0] != '\0' && i < CC_GONE_MAX; i++)
		if (strcmp(cc_gone[i], sid) == 0)
			return cc_gone[i];
	return NULL;
}

void
callcheck_forget(const char *sid)
{
	struct cc_call *c = cc_find(sid);
	char *g;

	if (c != NULL)
		cc_free(c);	/* a query in flight finds nothing */
	if ((g = gone_find(sid)) != NULL)
		g[0] = '\0';	/* its record is final now */
}

int
callcheck_watching(const char *sid)
{
	return sid != NULL && cc_find(sid) != NULL;
}

int
callcheck_given_up(const char *sid)
{
	return gone_find(sid) != NULL;
}

unsigned
callcheck_held(void)
{
	unsigned n = 0;

	/* left by the last run and not known to be over: live at Twilio,
	 * or not asked yet, or a lost create's call not looked for yet */
	for (struct cc_call *c = cc_calls; c != NULL; c = c->next)
		n += c->restored;
	for (struct cc_lost *l = cc_lost; l != NULL; l = l->next)
		n++;
	return n;
}

int
callcheck_settled(const struct master *m)
{
	return m->store == NULL || cc_open_read;
}

/* Twilio's "Tue, 10 Aug 2010 08:02:17 +0000" in wall ms, 0 if not: the
 * end of that second, so that a call the record started in it does not
 * end before it started. */
static uint64_t
rfc2822_ms(const char *s)
{
	struct tm tm;
	const char *rest;
	time_t t;

	if (s == NULL)
		return 0;
	memset(&tm, 0, sizeof(tm));
	if ((rest = strptime(s, "%a, %d %b %Y %H:%M:%S", &tm)) == NULL ||
	    strcmp(rest, " +0000") != 0 || (t = timegm(&tm)) < 0)
		return 0;
	return (uint64_t)t * 1000 + 999;
}

static void lost_answer(struct master *m, const struct rest_done *d);

void
callcheck_answer(struct master *m, const struct rest_done *d)
{
	struct cc_call *c = cc_by_ref(d->ref);
	json_t *o = NULL;
	const char *st, *by;
	char dur[24], sid[SHM_SID_MAX];
	json_t *jd;
	uint64_t end;

	if (d->ref & CALLCHECK_LIST_REF) {
		lost_answer(m, d);
		return;
	}
	if (cc_inflight > 0)
		cc_inflight--;
	if (c == NULL || !c->asking)
		goto next;	/* its final callback came meanwhile */
	c->asking = 0;
	vr_strlcpy(sid, c->sid, sizeof(sid));
	log_set_call(sid);
	if (d->status == 404) {
		master_count(m, SC_outbound_status_query_not_found);
		log_info("outbound call: Twilio has no such call; it was never "
		    "created");
		log_set_call(NULL);
		outbound_status(m, sid, "unknown", NULL, NULL, 0);
		goto next;
	}
	if (d->status == 0 || d->status == 429 || d->status >= 500) {
		if (c->tries < CC_TRIES) {
			/* throttled, failing or not reached: again soon */
			uint64_t delay = (uint64_t)CC_BACKOFF_MS << (c->tries - 1);
			log_warnx("outbound call: its status query failed (HTTP "
			    "%ld); retrying in %llu ms", d->status,
			    (unsigned long long)delay);
			log_set_call(NULL);
			c->due_ms = mono_ms() + delay;
			goto next;
		}
	}
	if (d->ok && d->body != NULL)
		o = json_loadb(d->body, d->body_len, 0, NULL);
	st = json_string_value(json_object_get(o, "status"));
	if (o == NULL || (!one_of(live, st) && !one_of(final, st))) {
		master_count(m, SC_outbound_status_query_failed);
		log_warnx("outbound call: its status query %s (HTTP %ld after %d "
		    "attempt%s); asking again later", o == NULL ? "failed" :
		    "had no known status", d->status, c->tries,
		    c->tries == 1 ? "" : "s");
		log_set_call(NULL);
		again(m, c, CC_RETRY_MS << (c->asks < 6 ? c->asks : 6),
		    "its status queries failed");
		goto next;
	}
	by = json_string_value(json_object_get(o, "answered_by"));
	jd = json_object_get(o, "duration");
	dur[0] = '\0';
	if (json_is_string(jd))
		vr_strlcpy(dur, json_string_value(jd), sizeof(dur));
	else if (json_is_integer(jd))
		snprintf(dur, sizeof(dur), "%lld", (long long)json_integer_value(jd));
	if (one_of(final, st)) {
		master_count(m, SC_outbound_status_query_final);
		log_info("outbound call: Twilio says %s%s%s", st, by ? ", answered "
		    "by " : "", by ? by : "");
		log_set_call(NULL);
		end = rfc2822_ms(json_string_value(json_object_get(o,
		    "end_time")));
		outbound_status(m, sid, st, by, dur[0] ? dur : NULL,
		    end ? end : wall_ms());
		goto next;
	}
	master_count(m, SC_outbound_status_query_live);
	log_info("outbound call: Twilio says %s; waiting for its callbacks", st);
	log_set_call(NULL);
	/* the record learns what the query says; then, the callbacks */
	outbound_status(m, sid, st, by, NULL, 0);
	if ((c = cc_find(sid)) != NULL)
		again(m, c, quiet_ms(m, c->line), "still live after its queries");
next:
	json_decref(o);
	scan(m);
}

/* ---------------------------------------------------------------- */
/* a create whose answer the last run never stored */

static void
lost_free(struct cc_lost *l)
{
	struct cc_lost **pp;

	for (pp = &cc_lost; *pp != NULL; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	free(l);
}

/* l's call is sid, or (NULL) none: the contact told, l freed. */
static void
lost_end(struct master *m, struct cc_lost *l, const char *sid,
    uint64_t created_ms, const char *why)
{
	char campaign[CAMP_ID_MAX], phone[SHM_PHONE_MAX], masked[64];

	vr_strlcpy(campaign, l->campaign, sizeof(campaign));
	vr_strlcpy(phone, l->phone, sizeof(phone));
	lost_free(l);
	mask_phone(phone, masked, sizeof(masked));
	if (sid != NULL) {
		log_set_call(sid);
		log_info("campaign %s: %s: the call its last attempt made before "
		    "the restart found at Twilio; asking how it went", campaign,
		    masked);
		log_set_call(NULL);
	} else
		log_warnx("campaign %s: %s: the call of its last attempt before "
		    "the restart %s; the attempt spent as unknown", campaign,
		    masked, why);
	campaign_adopt(m, campaign, phone, sid, created_ms);
}

static void
lost_ask(struct master *m, struct cc_lost *l)
{
	struct rest *r = outbound_rest();

	if (r == NULL || !rest_calls_configured(r)) {
		lost_end(m, l, NULL, 0, "cannot be looked for "
		    "(TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set)");
		return;
	}
	l->ref = CALLCHECK_REF | CALLCHECK_LIST_REF | ++cc_seq;
	if (outbound_list_calls(l->phone, CC_TIMEOUT_MS, l->ref) != 0) {
		lost_end(m, l, NULL, 0, "cannot be looked for");
		return;
	}
	l->asking = 1;
	cc_inflight++;
	if (l->tries++ > 0)
		master_count(m, SC_rest_retries);
}

static void
lost_answer(struct master *m, const struct rest_done *d)
{
	struct cc_lost *l;
	json_t *o = NULL, *calls, *call;
	const char *best = NULL;
	uint64_t best_ms = 0;
	char sid[SHM_SID_MAX], masked[64];
	size_t i;

	if (cc_inflight > 0)
		cc_inflight--;
	for (l = cc_lost; l != NULL && l->ref != d->ref; l = l->next)
		;
	if (l == NULL || !l->asking)
		goto next;
	l->asking = 0;
	if (d->ok && d->body != NULL)
		o = json_loadb(d->body, d->body_len, 0, NULL);
	if (!json_is_array(calls = json_object_get(o, "calls"))) {
		if (l->tries < CC_LIST_TRIES) {
			uint64_t delay = (uint64_t)CC_BACKOFF_MS << (l->tries - 1);
			mask_phone(l->phone, masked, sizeof(masked));
			log_warnx("campaign %s: %s: Twilio's calls could not be read "
			    "(HTTP %ld); asking again in %llu ms", l->campaign,
			    masked, d->status, (unsigned long long)delay);
			l->due_ms = mono_ms() + delay;
		} else
			lost_end(m, l, NULL, 0, "could not be looked for (Twilio's "
			    "calls could not be read)");
		goto next;
	}
	/* newest first: the earliest made since the mark is the attempt's,
	 * a later one would be another's */
	json_array_foreach(calls, i, call) {
		const char *s = json_string_value(json_object_get(call, "sid"));

		if (s == NULL || strlen(s) != 34 || strncmp(s, "CA", 2) != 0 ||
		    strspn(s + 2, "0123456789abcdefABCDEF") != 32 ||
		    cc_find(s) != NULL || outbound_known(s, NULL) ||
		    campaign_call_known(m, s) ||
		    !outbound_call_placed(m, call, l->phone, l->marked_ms))
			continue;
		best = s;
		best_ms = rfc2822_ms(json_string_value(json_object_get(call,
		    "date_created")));
	}
	if (best == NULL) {
		lost_end(m, l, NULL, 0, "is not among Twilio's calls");
		goto next;
	}
	vr_strlcpy(sid, best, sizeof(sid));
	lost_end(m, l, sid, best_ms > 999 ? best_ms - 999 : 0, NULL);
next:
	json_decref(o);
	scan(m);
}

void
callcheck_find(struct master *m, const char *campaign, const char *phone,
    uint64_t marked_ms)
{
	struct cc_lost *l;

	for (l = cc_lost; l != NULL; l = l->next)
		if (strcmp(l->campaign, campaign) == 0 &&
		    strcmp(l->phone, phone) == 0)
			return;		/* looked for already */
	/* with no mark time any older call to the number would do */
	if (marked_ms == 0 || (l = calloc(1, sizeof(*l))) == NULL) {
		campaign_adopt(m, campaign, phone, NULL, 0);
		return;
	}
	vr_strlcpy(l->campaign, campaign, sizeof(l->campaign));
	vr_strlcpy(l->phone, phone, sizeof(l->phone));
	l->marked_ms = marked_ms;
	l->next = cc_lost;
	cc_lost = l;
	timer_start(m);
	l->due_ms = 0;		/* the next tick asks */
}

/* ---------------------------------------------------------------- */
/* at start */

static json_t *
open_q(struct store_db *db, void *arg, char *err, size_t errlen)
{
	struct master *m = arg;

	if (db == NULL) {
		snprintf(err, errlen, "the database is down");
		return NULL;
	}
	return store_db_outbound_open(db, m->hostname, CC_RESTORE_MAX, err,
	    errlen);
}

static void open_done(json_t *res, const char *err, void *arg);

static void
again_cb(uv_timer_t *t)
{
	struct master *m = t->loop->data;

	if (m->store != NULL &&
	    store_query_async(m->store, open_q, m, open_done, m) != 0)
		log_warnx("outbound: cannot ask the store for the calls left "
		    "open");
}

static void
open_done(json_t *res, const char *err, void *arg)
{
	struct master *m = arg;
	size_t i, n = 0;
	json_t *row;

	if (res == NULL) {
		log_warnx("outbound: cannot read the calls the last run left "
		    "open (%s); trying again", err ? err : "?");
		if (!cc_again_on) {
			uv_timer_init(m->loop, &cc_again);
			uv_unref((uv_handle_t *)&cc_again);
			cc_again_on = 1;
		}
		uv_timer_start(&cc_again, again_cb, CC_RELOAD_MS, 0);
		return;
	}
	json_array_foreach(res, i, row) {
		const char *sid = json_string_value(json_object_get(row,
		    "call_sid"));
		if (sid == NULL || cc_find(sid) != NULL)
			continue;
		callcheck_restore(m, sid, json_string_value(json_object_get(row,
		    "line")));
		n++;
	}
	json_decref(res);
	cc_open_read = 1;
	scan(m);
	if (n > 0)
		log_info("outbound: %zu call%s left open by the last run; asking "
		    "Twilio how %s", n, n == 1 ? "" : "s", n == 1 ? "it went" :
		    "they went");
}

void
callcheck_start(struct master *m)
{
	static int started;

	if (started || m->store == NULL)
		return;
	started = 1;
	if (store_query_async(m->store, open_q, m, open_done, m) != 0)
		log_warnx("outbound: cannot ask the store for the calls left "
		    "open");
}
