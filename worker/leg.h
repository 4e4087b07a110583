/*
 * leg.h — the caller's side of a call, as the relay and call.c see it: one
 * object behind a small table of operations.  Two transports implement it:
 * Media Streams (leg_twilio.c: μ-law audio, marks, clear) and
 * ConversationRelay (leg_crelay.c: text tokens; Twilio speaks and hears).
 * What a transport's messages look like, and how its upgrade is checked,
 * stays in its own file; the relay knows the transport only through this.
 *
 * Both transports ride one WebSocket to Twilio, whose socket, codec and
 * write path (wpath.h) are call.c's; a leg writes through call_send().
 *
 * The caller's facts are fields of struct call that the leg fills: the
 * token's (call_sid, caller, route) at the upgrade, then from the first
 * message (call_go_live(): the stream or session id; `outbound` and the
 * template variables `outvars` from a Media Stream's parameters).
 */
#ifndef VR_LEG_H
#define VR_LEG_H

#include <stddef.h>
#include <stdint.h>

struct call;
struct upstream;
struct oa_msg;
struct worker;
struct ipc_handoff;

struct leg_ops {
	const char	*title;		/* "Media Streams", "ConversationRelay" */
	const char	*name;		/* what its id is: "stream", "relay session" */
	const char	*path;		/* the upgrade's path prefix, with '/'s */
	int		 transport;	/* the lines it serves (enum line_transport) */
	int		 text_only;	/* the model runs a text session */
	/* the hang-up: the transport ends the call itself, and carries a
	 * transfer, in its own closing message (ops.closing); 0: the relay
	 * ends the call at Twilio through REST */
	int		 ends_itself;
	uint64_t	 min_idle_ms;	/* the least WS_IDLE_TIMEOUT it gets */

	/* the upgrade: refuse it before its token is spent (1: refuse);
	 * then, once the call is made, what its handshake says */
	int	(*refuse)(struct worker *, const struct ipc_handoff *);
	void	(*upgraded)(struct worker *, const struct ipc_handoff *,
		    const char *call_sid);
	/* the transport's own state: made at the upgrade (0 or -1), freed
	 * with the call */
	int	(*init)(struct call *);
	void	(*free)(struct call *);
	/* one WebSocket message from Twilio (a ws_msg_cb, arg the call) */
	int	(*on_message)(void *arg, int opcode, const uint8_t *msg,
		    size_t len);
	/* the model's session opened; one of its events (the transport
	 * takes what is its own and hands the rest to relay_upstream_*) */
	void	(*up_open)(struct call *, struct upstream *);
	void	(*up_event)(struct call *, struct upstream *, struct oa_msg *);

	/* to the caller (Media Streams; NULL on a text transport): a piece
	 * of model audio (base64 μ-law, a multiple of 4 characters but the
	 * last), a mark named `name` after it, and the playback dropped.
	 * 0, or -1 (the call is closing now) */
	int	(*audio)(struct call *, const char *b64, size_t len);
	int	(*mark)(struct call *, const char *name);
	void	(*clear)(struct call *);
	/* the call is closing on our side, with a close code */
	void	(*closing)(struct call *);
	/* a text transport: text said again as one finished turn (the
	 * keypad's repeat), 0 or -1 while an answer is being sent; NULL on
	 * an audio one, which replays the answer's audio */
	int	(*say_again)(struct call *, const char *text);
};

extern const struct leg_ops leg_media_streams;	/* leg_twilio.c */
extern const struct leg_ops leg_conversation_relay;	/* leg_crelay.c */

/* The upgrade's X-Twilio-Signature is good for its URL with this scheme
 * ("wss", "https") on PUBLIC_URL's host (else the request's Host).  1 or
 * 0.  Both transports' (leg_twilio.c). */
int twilio_upgrade_signed(struct worker *w, const struct ipc_handoff *ho,
    const char *scheme);

#endif
