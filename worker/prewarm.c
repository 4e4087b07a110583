/*
 * prewarm.c — the warm first answer, the worker's half (the master's is
 * daemon/prewarm.c).
 *
 * The master sends IPC_PREWARM with a stream token as its webhook admits
 * a call.  The worker verifies the token as the upgrade would, makes the
 * call it names without a socket (CALL_WARM, on w->warm, not counted as a
 * stream) and opens its model session: connect, TLS, session.update, and
 * session.updated comes back while Twilio is still reading our TwiML.
 * The greeting is held: audio before `start` could not be played.
 *
 * The upgrade that carries the token finds the warm call (call_accept ->
 * prewarm_take, prewarm_adopt), gives it the socket and the session; at
 * `start` the greeting's response.create goes out (call_go_live), so its
 * first audio follows the stream's first frames by the model's reply time
 * alone.  A session that failed in the meantime is replaced by a cold
 * one, as is the session of a stream the master had to send elsewhere.
 *
 * No stream by the token's expiry: the session is closed and counted
 * (prewarm_expired).  A dropped warm call stays on the list, CALL_CLOSING,
 * until its upstream is gone, so the upstream's closing deadline is still
 * ticked.
 */
#include "worker/app.h"
#include "worker/call.h"
#include "worker/leg.h"
#include "worker/upstream.h"
#include "worker/worker.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "personas/line.h"
#include "proto/ipc.h"

#include <stdlib.h>
#include <string.h>

static void
warm_link(struct worker *w, struct call *c)
{
	c->prev = NULL;
	c->next = w->warm;
	if (w->warm != NULL)
		w->warm->prev = c;
	w->warm = c;
	w->nwarm++;
}

static void
warm_unlink(struct worker *w, struct call *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->warm = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	w->nwarm--;
}

/* The session is open and session.update went out: hold the greeting. */
static void
warm_up_open(struct call *c, struct upstream *up)
{
	c->warm_open = 1;
	log_set_call(call_sid_of(c));
	log_debug("openai session open with %s before the stream (persona %s)",
	    up->peer, c->persona->id);
	log_set_call(NULL);
}

/* Before the stream only the session's own events mean anything. */
static void
warm_up_event(struct call *c, struct upstream *up, struct oa_msg *m)
{
	if (m->ev == OA_EV_SESSION_UPDATED && !c->warm_ready) {
		c->warm_ready = 1;
		shm_hist_add(&c->w->sw->sw_hist[SH_READY],
		    mono_us() - c->webhook_us);
	}
	if (m->ev == OA_EV_SESSION_CREATED || m->ev == OA_EV_SESSION_UPDATED ||
	    m->ev == OA_EV_ERROR)
		leg_media_streams.up_event(c, up, m);
}

/* Adopted before session.updated came: still timed, then as any call. */
static void
adopted_up_event(struct call *c, struct upstream *up, struct oa_msg *m)
{
	if (m->ev == OA_EV_SESSION_UPDATED && up == c->up) {
		c->warm_ready = 1;
		shm_hist_add(&c->w->sw->sw_hist[SH_READY],
		    mono_us() - c->webhook_us);
		c->leg = &leg_media_streams;
	}
	leg_media_streams.up_event(c, up, m);
}

/*
 * A warm call is a Media Streams call whose model events go elsewhere
 * until its stream comes (warm_ops), and until session.updated is timed
 * once it has (adopting_ops): the Media Streams leg with one or two
 * operations changed, its own state (init, free) and the rest the same.
 */
static struct leg_ops warm_ops, adopting_ops;

static void
ops_init(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	warm_ops = leg_media_streams;
	warm_ops.up_open = warm_up_open;
	warm_ops.up_event = warm_up_event;
	adopting_ops = leg_media_streams;
	adopting_ops.up_event = adopted_up_event;
}

void
prewarm_open(struct worker *w, const struct ipc_prewarm *pw)
{
	struct stream_token t;
	const struct line *line;
	const struct persona *persona;
	const struct app *app;
	struct call *c;
	size_t tlen = strlen(pw->pw_token);
	uint64_t key;
	int rc;

	if (w->draining || w->shutting)
		return;
	rc = token_verify(w->conf->stream_secret, pw->pw_token, tlen,
	    wall_ms() / 1000, &t);
	if (rc != TOKEN_OK) {
		log_warnx("prewarm with a token that does not verify: %s",
		    token_strerror(rc));
		return;
	}
	key = shm_token_key(pw->pw_token, tlen);
	for (c = w->warm; c != NULL; c = c->next)
		if (c->token_key == key)
			return;		/* told twice */
	if ((line = line_find(w->lines, t.route)) == NULL)
		line = &w->lines->fallback;
	persona = line_persona(line, w->personas, t.route);
	app = app_find(line->app);
	if (persona == NULL || app == NULL ||
	    (int)line->transport != leg_media_streams.transport)
		return;
	ops_init();
	if ((c = call_new(w, &t, line, persona, app, &leg_media_streams,
	    0)) == NULL)
		return;
	c->leg = &warm_ops;
	c->state = CALL_WARM;
	c->token_key = key;
	c->webhook_us = pw->pw_webhook_us;
	warm_link(w, c);
	if (relay_start(c) != 0) {
		prewarm_drop(c, "cannot start the model session");
		return;
	}
	worker_count(w, SC_prewarm_opened, 1);
	log_set_call(t.call_sid);
	log_debug("opening the model session before the stream (route %s)",
	    t.route);
	log_set_call(NULL);
}

struct call *
prewarm_take(struct worker *w, uint64_t key)
{
	struct call *c;

	for (c = w->warm; c != NULL; c = c->next)
		if (c->state == CALL_WARM && c->token_key == key) {
			warm_unlink(w, c);
			c->state = CALL_OPEN;	/* off the list */
			return c;
		}
	return NULL;
}

struct call *
prewarm_adopt(struct call *c, const struct leg_ops *leg,
    const struct line *line, const struct persona *persona, uint64_t id)
{
	struct worker *w = c->w;
	struct upstream *up = c->up;

	if (leg != &leg_media_streams || c->line != line ||
	    c->persona != persona) {
		worker_count(w, SC_prewarm_fallback, 1);
		prewarm_drop(c, "the line changed before the stream came");
		return NULL;
	}
	c->id = id;
	c->leg = c->warm_ready ? &leg_media_streams : &adopting_ops;
	log_set_call(call_sid_of(c));
	if (up == NULL || up->failed || up->state >= UP_CLOSING) {
		/* its end still releases its reference (relay_upstream_gone) */
		c->up = NULL;
		c->leg = &leg_media_streams;
		worker_count(w, SC_prewarm_fallback, 1);
		log_info("the session opened at the webhook failed; opening "
		    "another");
	} else {
		worker_count(w, SC_prewarm_used, 1);
		/* open already: the greeting waits for `start`; still opening:
		 * it goes when it opens, as on a cold call */
		c->greet_on_start = c->warm_open;
		log_debug("stream takes the session opened at the webhook "
		    "(%s)", c->warm_ready ? "ready" : c->warm_open ?
		    "updating" : "connecting");
	}
	log_set_call(NULL);
	return c;
}

void
prewarm_drop(struct call *c, const char *why)
{
	struct worker *w = c->w;

	if (c->state == CALL_WARM)
		warm_unlink(w, c);
	else if (c->state != CALL_OPEN)
		return;		/* dropping already */
	c->state = CALL_CLOSING;
	c->reason = why;
	c->leg = &leg_media_streams;
	warm_link(w, c);
	log_set_call(call_sid_of(c));
	log_debug("closing the session opened at the webhook: %s", why);
	log_set_call(NULL);
	if (c->up != NULL)
		upstream_close(c->up, why);
}

void
prewarm_tick(struct worker *w, uint64_t now)
{
	struct call *c, *next;
	uint64_t wall = wall_ms();

	for (c = w->warm; c != NULL; c = next) {
		next = c->next;
		if (c->state == CALL_CLOSING && c->up == NULL) {
			warm_unlink(w, c);
			call_release(c);
			continue;
		}
		if (c->state == CALL_WARM && wall >= c->tok.expires * 1000) {
			worker_count(w, SC_prewarm_expired, 1);
			log_set_call(call_sid_of(c));
			log_info("no stream came for the session opened at the "
			    "webhook (STREAM_TOKEN_TTL); closing it");
			log_set_call(NULL);
			prewarm_drop(c, "no stream came");
		}
		if (c->up != NULL)
			upstream_tick(c->up, now);
	}
}

void
prewarm_drop_all(struct worker *w, const char *why)
{
	struct call *c, *next;

	for (c = w->warm; c != NULL; c = next) {
		next = c->next;
		if (c->state == CALL_WARM)
			prewarm_drop(c, why);
	}
}
