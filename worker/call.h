/*
 * call.h — one call in a worker: the Twilio WebSocket, and (later) its
 * upstream, its state machine and its one close path.
 *
 * A call is created from a hand-off (the socket the master accepted and the
 * upgrade request it read).  It owns one uv_tcp_t; it is freed only in that
 * handle's close callback, never inside its own callbacks: call_close()
 * marks it, queues a close frame, ends its shared-memory slot, and the
 * handle is closed once the output has drained (or after a grace period).
 */
#ifndef VR_CALL_H
#define VR_CALL_H

#include <stdint.h>
#include <uv.h>

#include "proto/buf.h"
#include "proto/ipc.h"
#include "proto/token.h"
#include "proto/twilio.h"
#include "proto/ws.h"
#include "personas/persona.h"
#include "worker/relay.h"

#define CALL_MAGIC 0x43414c4cu	/* "CALL" */

enum call_state {
	CALL_WARM,	/* no stream yet: its session opened at the webhook
			 * (prewarm.c), on the worker's warm list */
	CALL_OPEN,	/* upgraded; waiting for `start` */
	CALL_LIVE,	/* `start` seen; counted in shared memory */
	CALL_CLOSING,	/* close frame queued; handle closes when drained */
	CALL_CLOSED,	/* handle closing */
};

struct worker;
struct upstream;
struct app;
struct line;
struct leg_ops;

struct call {
	uint32_t		 magic;
	struct worker		*w;
	struct call		*prev, *next;
	uint64_t		 id;		/* hand-off id */
	enum call_state		 state;

	/* Twilio leg */
	uv_tcp_t		 tw;
	struct ws_codec		 ws;
	int			 ws_ready;
	struct buf		 out;		/* being filled */
	struct buf		 wbuf;		/* being written */
	uv_write_t		 wreq;
	int			 writing;
	uv_shutdown_t		 shutreq;	/* after the close frame */
	int			 shut;

	/* identity, from the token and `start` */
	struct stream_token	 tok;
	char			 stream_sid[TW_SID_MAX];
	char			 masked[64];	/* caller, for logs */
	int			 outbound;	/* placed by /api/request-call:
						 * the caller is the callee */
	struct json_t		*outvars;	/* outbound: name and variables
						 * for the templates, or NULL */
	uint64_t		 greet_at_ms;	/* the greeting is due then
						 * unless the callee speaks
						 * first (app_greeting());
						 * 0: not due */
	int			 amd_human;	/* outbound: Twilio's verdict
						 * said a person answered */
	int			 slot;		/* shm call slot, -1 */

	/* clocks (mono ms) and counts */
	uint64_t		 opened_ms, start_ms, last_msg_ms, closing_ms;
	uint64_t		 frames_in, frames_out, audio_in_bytes;
	uint64_t		 next_ts;	/* expected next media timestamp */
	int			 have_ts;
	uint64_t		 gap_fill_ms;	/* silence owed to the model */
	int			 logged_bad;	/* a per-frame error logged once */

	/* the caller's leg (leg.h): Media Streams or ConversationRelay, set
	 * once at the upgrade so no per-event test chooses; its own state */
	const struct leg_ops	*leg;
	void			*leg_state;
	uint64_t		 idle_ms;	/* no message from Twilio this long */

	/* the model */
	const struct persona	*persona;
	struct upstream		*up;		/* the session in use */
	struct relay		 relay;
	const struct line	*line;		/* what its route runs */
	const struct app	*app;		/* the line's app */
	void			*app_state;	/* the app's, app->state_size */
	uint64_t		 limit_remote_ms;	/* other hosts' ms the
							 * time limit counts */
	uint64_t		 limit_max_at_ms;	/* the line's per-call
							 * maximum ends it (0: none) */
	unsigned		 limit_live;	/* the caller's live calls here,
						 * as the master last counted */
	char			 fail_reason[160];

	/* life: the Twilio socket holds one reference, each upstream one */
	int			 refs;
	int			 dirty;		/* on the worker's flush list */
	struct call		*dirty_next;

	/* end */
	const char		*reason;
	int			 failed;

	/* the warm first answer (prewarm.c) */
	uint64_t		 webhook_us;	/* mono, the webhook's answer */
	uint64_t		 token_key;	/* shm_token_key() of its token */
	uint64_t		 start_us;	/* mono, `start` */
	int			 warm_open;	/* session.update sent early */
	int			 warm_ready;	/* session.updated came */
	int			 greet_on_start; /* greeting waits for `start` */
	int			 greet_timed;	/* SH_GREETING taken */
};

static inline const char *
call_sid_of(const struct call *c)
{
	return c->tok.call_sid;
}

/* Write what is queued at the end of this loop iteration. */
void call_want_flush(struct call *c);
/* Drop a reference; the last one frees the call. */
void call_release(struct call *c);

/* A call for token t on line (persona, app), over leg, before it has a
 * socket: state CALL_OPEN, one reference.  NULL when out of memory. */
struct call *call_new(struct worker *w, const struct stream_token *t,
    const struct line *line, const struct persona *persona,
    const struct app *app, const struct leg_ops *leg, uint64_t id);
/* Take a handed-off socket.  Verifies the upgrade (version, key, route,
 * token, replay) and answers 101 or an error; never fails the worker. */
void call_accept(struct worker *w, int fd, const struct ipc_handoff *ho,
    const uint8_t *extra, size_t extra_len, uint64_t id);
/* The one close path.  failed: count the call as failed.  ws_code: the
 * close code for Twilio (0: none, just drop the connection). */
void call_close(struct call *c, const char *reason, int failed, uint16_t ws_code);
/* Every worker tick (250 ms): billing, time-outs, the closing grace. */
void call_tick(struct call *c, uint64_t now);
/* s with an outbound call's {{name}} and {{variables}} filled in: a new
 * string, or NULL when there is nothing to fill (use s as it is). */
char *call_fill(const struct call *c, const char *s);
/* Write what is queued. */
void call_flush(struct call *c);
/* One text message to Twilio on the call's WebSocket, the legs' one way
 * out: 0, or -1 (the call is closing; a full MAX_OUTBOUND_BUFFER closes
 * it, logged and counted). */
int  call_send(struct call *c, const char *msg, size_t n);

/* The call's first message (`start`, `setup`) came: claim its shared-memory
 * slot, count it and start the app.  call_sid: what the message says the
 * call is; sid2: its stream or session id.  0, or 1 when the call was
 * closed instead. */
int  call_go_live(struct call *c, const char *call_sid, const char *sid2);

/* prewarm.c: sessions opened at the webhook, waiting for their stream */
struct ipc_prewarm;
void prewarm_open(struct worker *w, const struct ipc_prewarm *pw);
/* The warm call for the token whose key is key, taken off the list (the
 * list's reference becomes the stream's), or NULL. */
struct call *prewarm_take(struct worker *w, uint64_t key);
/* The stream of warm call c came (hand-off id) over leg for line and
 * persona: c, now CALL_OPEN and with its session if that is still good,
 * or NULL (dropped: the caller makes a new call). */
struct call *prewarm_adopt(struct call *c, const struct leg_ops *leg,
    const struct line *line, const struct persona *persona, uint64_t id);
/* Close a warm call and its session. */
void prewarm_drop(struct call *c, const char *why);
/* Every worker tick: expiry at the token's, the upstreams' deadlines. */
void prewarm_tick(struct worker *w, uint64_t now);
/* Drain or shutdown: close them all. */
void prewarm_drop_all(struct worker *w, const char *why);

#endif
