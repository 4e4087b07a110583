/*
 * call.c — a call's life in a worker: accepting the hand-off, the write
 * path, the tick, and the one close path.  What the Twilio messages mean is
 * in leg_twilio.c.
 */
#include "worker/app.h"
#include "worker/call.h"
#include "worker/leg.h"
#include "worker/upstream.h"
#include "worker/worker.h"
#include "worker/wpath.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "personas/line.h"
#include "shm/tokfile.h"

#include <jansson.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLOSE_GRACE_MS	2000	/* for the close frame to drain */
#define BUF_KEEP	8192	/* buffers above this are freed once empty */
#define READ_BUF	65536
#define PING_FLOOD_MAX	20	/* pings from Twilio within one second */

static char read_buf[READ_BUF];	/* one loop, one read at a time */

/* ---------------------------------------------------------------- */
/* refusing an upgrade: no call is made, the socket is answered and closed */

static void
reject_upgrade(struct worker *w, int fd, int status, const char *reason,
    const char *extra_header)
{
	char resp[512];
	int n;

	n = snprintf(resp, sizeof(resp),
	    "HTTP/1.1 %d %s\r\nServer: voxrelay\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s\n",
	    status, status == 403 ? "Forbidden" : status == 400 ? "Bad Request" :
	    status == 426 ? "Upgrade Required" : status == 404 ? "Not Found" :
	    "Service Unavailable", strlen(reason) + 1,
	    extra_header ? extra_header : "", reason);
	/* small enough for the socket buffer; one try, never block */
	if (n > 0 && write(fd, resp, (size_t)n) < 0)
		log_debug("answering a refused upgrade: %s", strerror(errno));
	close(fd);
	atomic_store(&w->sw->sw_active_streams, w->ncalls);
}

/*
 * Note the redeemed token and its CallSid in the used-token file, so a
 * restart with the same STREAM_SECRET refuses them too (shm/tokfile.h).
 * A failure costs that protection only: logged once per process.
 */
static void
save_used(struct worker *w, const uint64_t keys[2], uint64_t expires)
{
	static int warned;
	char path[4096];
	int rc;

	if (tokfile_path(w->conf->usage_csv_path, path, sizeof(path)) != 0)
		rc = -ENAMETOOLONG;
	else
		rc = tokfile_append(path, keys, 2, expires);
	if (rc != 0 && !warned) {
		warned = 1;
		log_warnx("used stream tokens are not saved (%s in the directory "
		    "of USAGE_CSV_PATH: %s): a restart forgets them", TOKFILE_NAME,
		    strerror(-rc));
	}
}

/* The callers' transports, by the upgrade's path (leg.h). */
static const struct leg_ops *const legs[] = {
	&leg_media_streams,
	&leg_conversation_relay,
};

static void call_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void call_closed_cb(uv_handle_t *h);
static void call_ws_failed(struct call *c, int rc);

static void
call_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	b->base = read_buf;
	b->len = sizeof(read_buf);
}

/*
 * A call for the token t on line (persona, app) over leg: what it is
 * before it has a socket.  NULL when out of memory.
 */
struct call *
call_new(struct worker *w, const struct stream_token *t,
    const struct line *line, const struct persona *persona,
    const struct app *app, const struct leg_ops *leg, uint64_t id)
{
	struct call *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->magic = CALL_MAGIC;
	c->w = w;
	c->id = id;
	c->tok = *t;
	c->slot = -1;
	c->state = CALL_OPEN;
	c->persona = persona;
	c->refs = 1;
	relay_init(&c->relay);
	c->line = line;
	c->app = app;
	c->leg = leg;
	c->idle_ms = (uint64_t)w->conf->ws_idle_timeout * 1000;
	if (c->idle_ms < leg->min_idle_ms)
		c->idle_ms = leg->min_idle_ms;
	if ((c->app->state_size > 0 &&
	    (c->app_state = calloc(1, c->app->state_size)) == NULL) ||
	    (leg->init != NULL && leg->init(c) != 0)) {
		free(c->app_state);
		relay_free(&c->relay);
		free(c);
		return NULL;
	}
	mask_phone(t->caller, c->masked, sizeof(c->masked));
	return c;
}

void
call_accept(struct worker *w, int fd, const struct ipc_handoff *ho,
    const uint8_t *extra, size_t extra_len, uint64_t id)
{
	char accept_key[WS_ACCEPT_LEN + 1], resp[256], path[1024];
	const char *route, *tok, *slash;
	const struct leg_ops *leg = NULL;
	struct stream_token t;
	struct call *c;
	uint64_t keys[2];
	int rc, n, one = 1;

	if (w->shutting) {
		reject_upgrade(w, fd, 503, "shutting down", NULL);
		return;
	}
	if (strcmp(ho->ho_ws_version, "13") != 0) {
		reject_upgrade(w, fd, 426, "WebSocket version 13 only",
		    "Sec-WebSocket-Version: 13\r\n");
		return;
	}
	if (ws_accept_key(ho->ho_ws_key, accept_key) != 0) {
		reject_upgrade(w, fd, 400, "bad Sec-WebSocket-Key", NULL);
		return;
	}
	/* /media-stream/<route>/<token> or /relay/<line>/<token>, a query
	 * string ignored */
	snprintf(path, sizeof(path), "%s", ho->ho_path);
	path[strcspn(path, "?#")] = '\0';
	for (size_t i = 0; i < sizeof(legs) / sizeof(legs[0]); i++)
		if (strncmp(path, legs[i]->path, strlen(legs[i]->path)) == 0)
			leg = legs[i];
	route = path + (leg != NULL ? strlen(leg->path) : 0);
	slash = strchr(route, '/');
	if (leg == NULL || slash == NULL || slash == route ||
	    slash - route > 32) {
		worker_count(w, SC_token_rejected, 1);
		reject_upgrade(w, fd, 403, "no stream token", NULL);
		return;
	}
	if (leg->refuse != NULL && leg->refuse(w, ho)) {
		reject_upgrade(w, fd, 403, "invalid signature", NULL);
		return;
	}
	tok = slash + 1;
	rc = token_verify(w->conf->stream_secret, tok, strlen(tok),
	    wall_ms() / 1000, &t);
	if (rc != TOKEN_OK || strlen(t.route) != (size_t)(slash - route) ||
	    strncmp(t.route, route, (size_t)(slash - route)) != 0) {
		worker_count(w, SC_token_rejected, 1);
		log_warnx("stream upgrade from %s refused: %s%s%s", ho->ho_peer,
		    rc != TOKEN_OK ? token_strerror(rc) : "route does not match "
		    "its token", rc == TOKEN_ERR_EXPIRED ? " for " : "",
		    rc == TOKEN_ERR_EXPIRED ? t.call_sid : "");
		reject_upgrade(w, fd, 403, "invalid stream token", NULL);
		return;
	}
	keys[0] = shm_token_key(tok, strlen(tok));
	/* a stream resumed after a transfer has its own key: the call's
	 * first stream has used the CallSid's */
	keys[1] = t.resume != 0 ? shm_resume_key(t.call_sid, t.resume) :
	    shm_sid_key(t.call_sid);
	rc = shm_token_use(w->shm, keys[0], t.expires, wall_ms() / 1000);
	if (rc != 0) {
		worker_count(w, rc > 0 ? SC_token_replayed : SC_token_rejected, 1);
		log_warnx("%s: stream upgrade from %s refused: %s", t.call_sid,
		    ho->ho_peer, rc > 0 ? "token already used" :
		    "token table full");
		reject_upgrade(w, fd, rc > 0 ? 403 : 503, rc > 0 ?
		    "stream token already used" : "busy", NULL);
		return;
	}
	/* one stream per call, whichever of its tokens comes first: the
	 * webhook answers a repeat with the same token, but a token minted
	 * before a restart is another one */
	rc = shm_token_use(w->shm, keys[1], t.expires, wall_ms() / 1000);
	if (rc != 0) {
		worker_count(w, rc > 0 ? SC_token_replayed : SC_token_rejected, 1);
		log_warnx("%s: stream upgrade from %s refused: %s", t.call_sid,
		    ho->ho_peer, rc > 0 ? "the call's stream has opened already" :
		    "token table full");
		reject_upgrade(w, fd, rc > 0 ? 403 : 503, rc > 0 ?
		    "call already streamed" : "busy", NULL);
		save_used(w, keys, t.expires);
		return;
	}
	save_used(w, keys, t.expires);
	/* the route's line, else its persona with the configuration's keys */
	const struct line *line = line_find(w->lines, t.route);
	if (line == NULL)
		line = &w->lines->fallback;
	const struct persona *persona = line_persona(line, w->personas, t.route);
	const struct app *app = app_find(line->app);
	if (persona == NULL || app == NULL) {
		log_warnx("%s: stream upgrade refused: no line or persona \"%s\" "
		    "in this configuration", t.call_sid, t.route);
		reject_upgrade(w, fd, 404, "unknown route", NULL);
		return;
	}
	/* a line's calls come over its own transport only */
	if ((int)line->transport != leg->transport) {
		log_warnx("%s: %s upgrade refused: line %s runs another transport",
		    t.call_sid, leg->title, t.route);
		reject_upgrade(w, fd, 404, "not this line's transport", NULL);
		return;
	}
	if (leg->upgraded != NULL)
		leg->upgraded(w, ho, t.call_sid);

	/* the session opened for it at the webhook, or a new call */
	if ((c = prewarm_take(w, keys[0])) != NULL)
		c = prewarm_adopt(c, leg, line, persona, id);
	if (c == NULL && (c = call_new(w, &t, line, persona, app, leg,
	    id)) == NULL) {
		reject_upgrade(w, fd, 503, "out of memory", NULL);
		return;
	}
	c->opened_ms = c->last_msg_ms = mono_ms();
	buf_init(&c->out, (size_t)w->conf->max_outbound_buffer);
	buf_init(&c->wbuf, 0);
	if (uv_tcp_init(&w->loop, &c->tw) != 0) {
		/* a warm session goes with it */
		if (c->up != NULL)
			upstream_close(c->up, "out of memory");
		call_release(c);
		reject_upgrade(w, fd, 503, "out of memory", NULL);
		return;
	}
	c->tw.data = c;
	/* linked before anything can close it */
	c->next = w->calls;
	if (w->calls)
		w->calls->prev = c;
	w->calls = c;
	w->ncalls++;
	atomic_store(&w->sw->sw_active_streams, w->ncalls);
	if (uv_tcp_open(&c->tw, fd) != 0) {
		close(fd);
		call_close(c, "cannot use the socket", 1, 0);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ws_codec_init(&c->ws, WS_SERVER, (size_t)w->conf->ws_max_message,
	    &c->out, leg->on_message, c,
	    w->seed ^ id) != 0) {
		call_close(c, "out of memory", 1, 0);
		return;
	}
	w->seed = w->seed * 6364136223846793005ULL + 1442695040888963407ULL;
	c->ws_ready = 1;
	n = snprintf(resp, sizeof(resp),
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept_key);
	buf_append(&c->out, resp, (size_t)n);
	shm_hist_add(&w->sw->sw_hist[SH_HANDOFF], mono_us() - ho->ho_accepted_us);
	log_set_call(t.call_sid);
	log_debug("stream accepted from %s (route %s)", ho->ho_peer, t.route);
	log_set_call(NULL);
	/* the route is known: the model's session starts now, in parallel
	 * with Twilio's connected/start (unless it started at the webhook) */
	if (c->up == NULL && relay_start(c) != 0) {
		call_close(c, "cannot start the model session", 1, 1011);
		call_flush(c);
		return;
	}
	if (extra_len > 0) {
		rc = ws_codec_feed(&c->ws, extra, extra_len);
		if (rc < 0)
			call_ws_failed(c, rc);
		else if (rc == WS_CLOSED)
			call_close(c, "twilio closed the stream", 0, 0);
	}
	if (c->state == CALL_OPEN)
		uv_read_start((uv_stream_t *)&c->tw, call_alloc_cb, call_read_cb);
	call_flush(c);
}

/* ---------------------------------------------------------------- */
/* write path: `out` fills while `wbuf` is on the wire */

static void
call_close_handle(struct call *c)
{
	if (c->state == CALL_CLOSED)
		return;
	c->state = CALL_CLOSED;
	uv_close((uv_handle_t *)&c->tw, call_closed_cb);
}

static void
call_shutdown_cb(uv_shutdown_t *req, int status)
{
	struct call *c = req->data;

	/* UV_ECANCELED: the handle is already closing */
	if (status < 0 && status != UV_ECANCELED && c->state != CALL_CLOSED)
		call_close_handle(c);
}

static void
call_write_cb(uv_write_t *req, int status)
{
	struct call *c = req->data;

	c->writing = 0;
	wpath_written(&c->wbuf, BUF_KEEP);
	if (c->state == CALL_CLOSED)
		return;
	if (status < 0) {
		call_close(c, "twilio connection lost while writing", 1, 0);
		call_close_handle(c);
		return;
	}
	call_flush(c);
}

void
call_flush(struct call *c)
{
	int rc;

	if (c->state == CALL_CLOSED || c->writing)
		return;
	c->wreq.data = c;
	rc = wpath_flush((uv_stream_t *)&c->tw, &c->out, &c->wbuf, &c->wreq,
	    call_write_cb);
	if (rc < 0) {
		call_close(c, "twilio connection lost while writing", 1, 0);
		call_close_handle(c);
		return;
	}
	if (rc > 0) {
		c->writing = 1;
		return;
	}
	buf_shrink(&c->out, BUF_KEEP);
	if (c->state == CALL_CLOSING && !c->shut) {
		/* everything is written: send our FIN and wait for the peer's
		 * (or CLOSE_GRACE_MS).  Closing now, with its frames still
		 * arriving, would answer them with a reset that can destroy
		 * the close frame and its reason before the peer reads them */
		c->shut = 1;
		c->shutreq.data = c;
		if (uv_shutdown(&c->shutreq, (uv_stream_t *)&c->tw,
		    call_shutdown_cb) != 0)
			call_close_handle(c);
	}
}

int
call_send(struct call *c, const char *msg, size_t n)
{
	if (c->state >= CALL_CLOSING)
		return -1;
	if (ws_codec_send(&c->ws, WSLAY_TEXT_FRAME, msg, n) != WS_OK) {
		worker_count(c->w, SC_outbuf_overflows, 1);
		log_set_call(call_sid_of(c));
		log_warnx("twilio is not reading: MAX_OUTBOUND_BUFFER (%d bytes) "
		    "is full; dropping the call", c->w->conf->max_outbound_buffer);
		log_set_call(NULL);
		call_close(c, "twilio is not reading (outbound buffer full)", 1, 0);
		return -1;
	}
	call_want_flush(c);
	return 0;
}

/* ---------------------------------------------------------------- */
/* reading */

static void
call_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct call *c = s->data;
	int rc;

	if (c->state >= CALL_CLOSING) {
		/* what the peer sends after our close is dropped unread; its
		 * EOF (or the closing grace) ends the connection */
		if (n < 0)
			call_close_handle(c);
		return;
	}
	if (n < 0) {
		/* Twilio hanging up without `stop` is a normal end (4.2) */
		call_close(c, n == UV_EOF ? "twilio closed the connection" :
		    "twilio connection reset", c->state != CALL_LIVE, 0);
		call_close_handle(c);
		return;
	}
	if (n == 0)
		return;
	worker_read_begin(c->w);
	rc = ws_codec_feed(&c->ws, (const uint8_t *)b->base, (size_t)n);
	if (rc < 0)
		call_ws_failed(c, rc);
	else if (rc == WS_CLOSED)
		call_close(c, "twilio closed the stream", 0, 0);
	else if (c->ws.pings > PING_FLOOD_MAX && c->state < CALL_CLOSING) {
		worker_count(c->w, SC_ws_ping_floods, 1);
		log_set_call(c->tok.call_sid);
		log_warnx("ping flood from twilio (%llu pings within a second); "
		    "closing the call", (unsigned long long)c->ws.pings);
		log_set_call(NULL);
		call_close(c, "ping flood", 1, 1008);
	}
	call_want_flush(c);
	worker_read_end(c->w, SH_RELAY_IN);
}

/*
 * The codec refused what Twilio sent: one line and one counter, then the
 * call ends.  Its close frame is already queued, unless the output was full
 * (the peer does not read), in which case the connection is just dropped.
 */
static void
call_ws_failed(struct call *c, int rc)
{
	const char *why = c->ws.error != NULL ? c->ws.error : "websocket error";

	worker_count(c->w, rc == WS_ERR_OUTPUT ? SC_outbuf_overflows :
	    SC_ws_protocol_errors, 1);
	log_set_call(c->tok.call_sid);
	log_warnx("websocket error from twilio: %s", why);
	log_set_call(NULL);
	call_close(c, why, 1, 0);
}

/*
 * The codec answers every ping and counts them in ws.pings; the read path
 * ends a call whose count passes PING_FLOOD_MAX.  The count covers one
 * second: the first tick of each second zeroes it for every call, so
 * neither the codec nor the call needs a clock of its own.
 */
static void
ping_window(struct worker *w, uint64_t now)
{
	static uint64_t second;

	if (now / 1000 == second)
		return;
	second = now / 1000;
	for (struct call *k = w->calls; k != NULL; k = k->next)
		k->ws.pings = 0;
}

/* ---------------------------------------------------------------- */
/* the start: the same for both transports, so minutes count the same */

int
call_go_live(struct call *c, const char *call_sid, const char *sid2)
{
	struct worker *w = c->w;
	struct shm_call *sc;
	int idx;

	/* the webhook gave the caller a ledger entry; without one (a token
	 * minted before a restart) nothing would count the minutes */
	if (shm_ledger_find(w->shm, c->tok.caller) < 0) {
		worker_count(w, SC_refused_ledger_full, 1);
		log_set_call(c->tok.call_sid);
		log_warnx("caller %s has no usage ledger entry; refusing the "
		    "call rather than giving it minutes nothing counts",
		    c->masked);
		log_set_call(NULL);
		call_close(c, "caller cannot be counted", 1, 1013);
		return 1;
	}
	if ((idx = shm_call_claim(w->shm, w->slot, w->pid)) < 0) {
		log_set_call(c->tok.call_sid);
		log_warnx("no free call slot; refusing the call");
		log_set_call(NULL);
		call_close(c, "no free call slot", 1, 1013);
		return 1;
	}
	snprintf(c->stream_sid, sizeof(c->stream_sid), "%s", sid2);
	sc = &w->shm->calls[idx];
	vr_strlcpy(sc->cs_call_sid, call_sid, sizeof(sc->cs_call_sid));
	vr_strlcpy(sc->cs_stream_sid, sid2, sizeof(sc->cs_stream_sid));
	vr_strlcpy(sc->cs_phone, c->tok.caller, sizeof(sc->cs_phone));
	vr_strlcpy(sc->cs_route, c->tok.route, sizeof(sc->cs_route));
	vr_strlcpy(sc->cs_persona, c->tok.route, sizeof(sc->cs_persona));
	c->slot = idx;
	c->start_ms = mono_ms();
	shm_call_publish(w->shm, idx, c->start_ms, wall_ms());
	c->state = CALL_LIVE;
	worker_count(w, SC_total_calls, 1);
	atomic_fetch_add(&w->sw->sw_calls_total, 1);
	atomic_fetch_add(&w->sw->sw_live_calls, 1);
	log_set_call(c->tok.call_sid);
	log_info("call started: caller %s, route %s, %s %s", c->masked,
	    c->tok.route, c->leg->name,
	    c->stream_sid);
	log_set_call(NULL);
	c->start_us = mono_us();
	relay_call_started(c);
	/* a session opened at the webhook held its greeting until now */
	if (c->greet_on_start && c->state == CALL_LIVE && c->up != NULL) {
		c->greet_on_start = 0;
		c->leg->up_open(c, c->up);
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* the end */

void
call_close(struct call *c, const char *reason, int failed, uint16_t ws_code)
{
	struct worker *w = c->w;
	uint64_t now = mono_ms();

	if (c->state >= CALL_CLOSING)
		return;
	if (c->state == CALL_WARM) {
		/* its session, opened at the webhook, failed: the stream, if
		 * it comes, opens another (prewarm_adopt) */
		log_set_call(c->tok.call_sid);
		log_info("the session opened before the stream failed: %s",
		    reason);
		log_set_call(NULL);
		return;
	}
	c->reason = reason;
	c->failed = failed;
	c->closing_ms = now;
	if (w->shutting && c->state == CALL_LIVE)
		worker_count(w, SC_calls_cut, 1);	/* a drain or reload deadline */
	log_set_call(c->tok.call_sid);
	if (c->state == CALL_LIVE) {
		shm_call_end(w->shm, c->slot, now, failed, reason);
		atomic_fetch_sub(&w->sw->sw_live_calls, 1);
		if (failed)
			worker_count(w, SC_failed_calls, 1);
		log_info("call ended: caller %s, persona %s, %.1f s, %.2f minutes "
		    "used in all, %llu frames in, %llu out: %s%s", c->masked,
		    c->persona->id, (now - c->start_ms) / 1000.0,
		    shm_usage_ms(w->shm, c->tok.caller, now) / 60000.0,
		    (unsigned long long)c->frames_in,
		    (unsigned long long)c->frames_out, reason,
		    failed ? " (failed)" : "");
		relay_call_ended(c);
	} else
		log_info("stream closed before start: %s", reason);
	log_set_call(NULL);
	if (c->leg->closing != NULL && ws_code != 0)
		c->leg->closing(c);
	c->state = CALL_CLOSING;
	relay_stop(c);
	/* the reason tells Twilio (and whoever reads its logs) why; an
	 * upstream failure's reason names our infrastructure, so not that */
	if (c->ws_ready && ws_code != 0)
		ws_codec_close(&c->ws, ws_code, ws_code == 1011 ?
		    "upstream failure" : reason);
	/* reading goes on, discarding, until the peer's EOF: see call_flush */
	call_want_flush(c);
}

void
call_tick(struct call *c, uint64_t now)
{
	struct worker *w = c->w;

	ping_window(w, now);
	switch (c->state) {
	case CALL_OPEN:
		if (now - c->opened_ms > (uint64_t)w->conf->ws_start_timeout * 1000) {
			worker_count(w, SC_calls_timed_out, 1);
			log_set_call(c->tok.call_sid);
			log_warnx("no start message within WS_START_TIMEOUT (%d s); "
			    "closing the stream", w->conf->ws_start_timeout);
			log_set_call(NULL);
			call_close(c, "no start message from twilio", 1, 1008);
		}
		break;
	case CALL_LIVE:
		atomic_store_explicit(&w->shm->calls[c->slot].cs_billed_ms,
		    now - c->start_ms, memory_order_relaxed);
		relay_tick(c, now);
		if (c->state != CALL_LIVE)
			break;
		if (now - c->last_msg_ms > c->idle_ms) {
			char note[64] = "";

			if (c->leg->min_idle_ms > 0)
				snprintf(note, sizeof(note), ", at least %llu s on "
				    "a %s call", (unsigned long long)
				    (c->leg->min_idle_ms / 1000), c->leg->title);
			worker_count(w, SC_calls_timed_out, 1);
			log_set_call(c->tok.call_sid);
			log_warnx("no message from twilio within %llu s "
			    "(WS_IDLE_TIMEOUT%s); closing the call",
			    (unsigned long long)(c->idle_ms / 1000), note);
			log_set_call(NULL);
			call_close(c, "twilio went silent", 1, 1001);
		}
		break;
	case CALL_CLOSING:
		if (now - c->closing_ms > CLOSE_GRACE_MS)
			call_close_handle(c);
		break;
	case CALL_WARM:		/* on the warm list: prewarm_tick() */
	case CALL_CLOSED:
		break;
	}
	if (c->up != NULL && c->state < CALL_CLOSED)
		upstream_tick(c->up, now);
}

void
call_release(struct call *c)
{
	if (--c->refs > 0)
		return;
	if (c->dirty) {
		struct call **pp;
		for (pp = &c->w->dirty_calls; *pp != NULL; pp = &(*pp)->dirty_next)
			if (*pp == c) {
				*pp = c->dirty_next;
				break;
			}
	}
	if (c->app->free != NULL)
		c->app->free(c);
	free(c->app_state);
	if (c->leg->free != NULL)
		c->leg->free(c);
	relay_free(&c->relay);
	json_decref(c->outvars);
	c->magic = 0;
	free(c);
}

static void
call_closed_cb(uv_handle_t *h)
{
	struct call *c = h->data;
	struct worker *w = c->w;

	if (c->ws_ready)
		ws_codec_free(&c->ws);
	c->ws_ready = 0;
	buf_free(&c->out);
	buf_free(&c->wbuf);
	worker_call_gone(w, c);
	call_release(c);
}
