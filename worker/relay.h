/*
 * relay.h — what a call does between its two legs: caller audio upstream,
 * model audio to the caller's leg (leg.h) with marks, barge-in (protocols.md
 * 9.4), tool calls, transcripts, latency figures.
 *
 * Playback bookkeeping: every piece of model audio sent to the caller is
 * followed by a mark named "<generation>.<seq>".  Twilio echoes marks in
 * order when the audio before them has played, and echoes all pending ones
 * at once on `clear`; the generation changes at every clear, so an echo of
 * an older generation means "flushed", never "played".  An item's played
 * position is the end of its last echoed mark, which is what the caller
 * actually heard; a truncate never goes past what was sent.
 */
#ifndef VR_RELAY_H
#define VR_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "proto/openai.h"

#define RELAY_ITEMS	4	/* assistant items tracked for playback */
#define RELAY_DROPS	4	/* cancelled responses whose audio is dropped */
#define RELAY_RESULTS	4	/* tool results queued within one response */
#define RELAY_KEYS_PER_S 5	/* key presses acted on per second */
#define RELAY_HOOKS	4	/* business webhooks in flight per call */
/* the tag of a warm transfer's summary webhook (no tool call's id) */
#define RELAY_SUMMARY_TAG	"transfer-summary"

struct call;
struct upstream;
struct persona;

struct relay_item {
	uint32_t	uid;		/* 0: free slot */
	char		response_id[OA_ID_MAX];
	char		item_id[OA_ID_MAX];
	int		content_index;
	uint64_t	sent_bytes;
	uint64_t	played_bytes;
	int		done_sent;
};

struct relay_mark {
	uint32_t	seq;
	uint32_t	item_uid;
	uint64_t	end_bytes;
	int		done;		/* the item's last mark */
};

/* A tool's answer, held until the response that called it is done. */
struct relay_result {
	char	 call_id[OA_ID_MAX];
	char	*output;		/* JSON text, owned */
};

/* One finished line of the conversation, for a fresh session. */
struct relay_said {
	char		 role;		/* 'c' caller, 'a' assistant */
	char		*text;
};

/* A tool call the business's webhook is answering. */
struct relay_hook_wait {
	char		 call_id[OA_ID_MAX];	/* "": free */
	uint64_t	 filler_at_ms;		/* mono; 0: none (due or said) */
};

enum relay_wrap {
	RELAY_WRAP_NONE = 0,
	RELAY_WRAP_WANTED,	/* the limit is reached; waiting for the model */
	RELAY_WRAP_ASKED,	/* the goodbye response was requested */
};

enum relay_switch {
	RELAY_SW_NONE = 0,
	RELAY_SW_OPENING,	/* the next session is connecting; the old hands over */
	RELAY_SW_DONE,
};

/*
 * What the relay does for apps (the services below): queued tool results,
 * a hang-up once the caller heard the goodbye, the time limit with its
 * spoken wrap-up, and the switch to another persona's session.
 */
struct relay_ctl {
	/* tool results */
	struct relay_result	 results[RELAY_RESULTS];
	unsigned		 nresults;
	int			 want_response;	/* after the results go out */
	/* hang-up */
	int			 ending;
	uint64_t		 ending_deadline_ms;
	const char		*ending_reason;
	/* the end at Twilio: the stream closes once it accepted (or gave up) */
	int			 finishing;
	uint64_t		 finish_deadline_ms;
	const char		*finish_reason;
	/* transfer: the target, once asked for; the hand-over asked for and
	 * its response not created yet */
	const struct line_target *transfer;
	int			 transfer_arm;
	/* tool calls out at a business webhook */
	struct relay_hook_wait	 hooks[RELAY_HOOKS];
	/* time limit */
	uint64_t		 limit_at_ms;	/* mono; 0: none */
	double			 quota_minutes;	/* reported by get_remaining_time */
	char			*wrapup;	/* instructions for the goodbye */
	unsigned		 wrapup_grace_s;
	enum relay_wrap		 wrap;
	uint64_t		 wrap_deadline_ms;
	char			 wrap_response[OA_ID_MAX];
	int			 wrap_done;	/* its response.done came */
	int			 limit_reached;
	/* persona switch */
	enum relay_switch	 sw;
	struct upstream		*next;
	const struct persona	*next_persona;
	char			*intro;		/* told to the next session */
	int			 next_open;
	int			 handover_wanted;	/* the next response hands over */
	char			 handover_response[OA_ID_MAX];
	int			 handover_done;
	uint64_t		 switch_started_ms;
	uint64_t		 swap_deadline_ms;
	/* session rollover: the same persona on a fresh session */
	uint64_t		 rollover_at_ms;	/* mono; 0: none due */
	int			 rollover;		/* the next session is one */
	enum relay_switch	 sw_before;
	uint64_t		 next_expires;		/* its session's, Unix s */
};

struct rec_call;

struct relay {
	uint32_t		 gen;
	uint32_t		 seq;
	uint32_t		 next_uid;
	struct relay_item	 items[RELAY_ITEMS];
	struct relay_mark	*marks;		/* FIFO of marks not yet echoed */
	unsigned		 mhead, mcount, mcap;
	char			 active_response[OA_ID_MAX];
	char			 dropped[RELAY_DROPS][OA_ID_MAX];
	unsigned		 drop_next;
	int			 interrupt_response;	/* session's, 1 default */
	uint64_t		 speech_stopped_us;
	int			 awaiting_audio;
	uint64_t		 bargeins;
	uint64_t		 dropped_deltas;
	unsigned		 error_logs;	/* error events logged so far */
	/* caller audio batching (FRAMES_PER_APPEND > 1) */
	unsigned char		*batch;
	size_t			 batch_len, batch_cap;
	unsigned		 batch_frames;
	uint64_t		 batch_ms;	/* when its first frame came */
	/* transcripts */
	int			 transcript_fd;	/* -1 until the first line */
	struct rec_call		*rec;		/* record.c's, NULL: none */
	uint64_t		 session_expires;	/* Unix s, 0 unknown */
	char			*last_answer;	/* the model's last sentence(s) */
	/* the last complete answer's audio (mu-law), for the keypad's
	 * repeat, and the one being received */
	unsigned char		*ans_audio, *cap_audio;
	size_t			 ans_len, ans_cap, cap_len, cap_cap;
	char			 cap_resp[OA_ID_MAX];
	int			 cap_bad;	/* too long, or not base64 */
	struct relay_said	*said;		/* the conversation, oldest first */
	unsigned		 nsaid, saidcap;
	size_t			 said_bytes;
	uint64_t		 key_ms[RELAY_KEYS_PER_S];	/* last acted on */
	unsigned		 key_next;
	struct relay_ctl	 ctl;
};

void relay_init(struct relay *r);
/* An empty buffer for building one event, shared by the worker's code
 * (used and sent before anything else builds). */
struct buf *relay_scratch(void);
/* The call's OpenAI dialect; send the event built in b to the session in
 * use (none: dropped).  For both transports. */
enum oa_dialect relay_dialect(const struct call *c);
void relay_send_up(struct call *c, struct buf *b);
/* Forget playback state (a new session takes over the call). */
void relay_reset_playback(struct relay *r);
void relay_free(struct relay *r);

/* The call's upgrade was accepted: start its upstream.  0 or -1. */
int  relay_start(struct call *c);
/* The call is closing: close its upstreams. */
void relay_stop(struct call *c);
/* Caller audio: base64 μ-law as the leg received it (b64_len characters,
 * audio_len bytes once decoded). */
void relay_caller_audio(struct call *c, const char *b64, size_t b64_len,
    size_t audio_len);
/* Send gathered caller frames now (FRAMES_PER_APPEND > 1). */
void relay_flush_batch(struct call *c);
/* A mark played at the caller's side (Media Streams echoes it). */
void relay_caller_mark(struct call *c, const char *name);
/* Once a second: session expiry. */
void relay_tick(struct call *c, uint64_t now);
/* Send c's partial batch if it is due; 1 if c still holds one after. */
int  relay_batch_due(struct call *c, uint64_t now);

/* A REST update of this call ended (worker.c): ok when Twilio took it. */
void relay_rest_done(struct call *c, int ok);
/* A business webhook of this call answered, or failed (worker.c). */
struct rest_done;
void relay_hook_done(struct call *c, const struct rest_done *d);

/* Called by the upstream (leg_openai.c). */
void relay_upstream_open(struct call *c, struct upstream *up);
void relay_upstream_event(struct call *c, struct upstream *up, struct oa_msg *m);
void relay_upstream_failed(struct call *c, struct upstream *up, const char *why);
void relay_upstream_gone(struct call *c, struct upstream *up);

/* One finished line of the transcript (role "caller" or "assistant"):
 * the transcript files and the app's hook. */
void relay_transcript(struct call *c, const char *role, const char *text);
/* The caller heard only `heard` of the model's last line (a ConversationRelay
 * interrupt): a fresh session is seeded with that, not the whole line. */
void relay_said_heard(struct call *c, const char *heard);

/* The call's `start` / its end: the app's started and ended hooks. */
void relay_call_started(struct call *c);
/* An outbound call's answering-machine verdict (the master's): `human`
 * greets the callee now rather than after the pause. */
void relay_amd(struct call *c, const char *answered_by);
void relay_call_ended(struct call *c);

/*
 * Services for apps (app.h).  They act on the session in use; each is
 * safe to call from any hook.
 */

/* Ask the model to speak now with these instructions (NULL: its own).
 * no_tools: a response that may not call tools (a goodbye). */
void relay_say(struct call *c, const char *instructions, int no_tools);
/* A response is being generated. */
int  relay_model_busy(const struct call *c);
/* Answer a tool call.  The result is sent when the response that called
 * the tool is done (a response.create before that is refused); go_on: then
 * ask the model to go on. */
void relay_tool_result(struct call *c, const char *call_id,
    const char *output, int go_on);
/* Hang up once the caller has heard what is being said (or after a few
 * seconds at most): the call is ended at Twilio through REST (Status=
 * completed) when the account is configured, and the stream closed once
 * Twilio accepted that, so no call is left open.  The time limit and the
 * keypad end calls the same way.  reason: static text, for the call
 * record. */
void relay_hangup(struct call *c, const char *reason);
/* The call may last until at_ms (mono).  Then the model is asked to say
 * goodbye with `wrapup` (no tools), and the call ends once it has been
 * heard, or grace_s later.  quota_minutes is what get_remaining_time
 * reports as the caller's allowance. */
void relay_set_limit(struct call *c, uint64_t at_ms, const char *wrapup,
    unsigned grace_s, double quota_minutes);
/* The limit was reached during the call. */
int  relay_limit_reached(const struct call *c);
/* Milliseconds left before the limit; UINT64_MAX when there is none. */
uint64_t relay_remaining_ms(const struct call *c, uint64_t now);
/* Switch the call to persona p: its own session opens now (a Realtime
 * session cannot change its voice once it spoke) and takes over between
 * turns, after the current persona's hand-over sentence has been heard.
 * intro: a line told to the new persona before it greets the caller.
 * handover: instructions for that sentence, asked for now if the model is
 * quiet (else what it is saying hands over); NULL: the next response the
 * model makes is the hand-over (a tool result asked for it).  0 or -1
 * (a switch under way, the time is up, no memory). */
int  relay_switch_persona(struct call *c, const struct persona *p,
    const char *intro, const char *handover);
/* A switch is under way or done. */
int  relay_switching(const struct call *c);
/* The caller pressed a key (any transport; digit is one of 0-9 * # A-D):
 * the line's keypad action for it, or a short user item told to the model.
 * A burst past RELAY_KEYS_PER_S a second is counted and not acted on. */
void relay_keypress(struct call *c, char digit);
/* Transfer the caller to the target of the call's line labelled label:
 * once the caller heard the hand-over (handover: instructions for it,
 * asked for now if the model is quiet; NULL: what is being said, or the
 * response a tool result leads to), the live call is updated through REST
 * with TwiML that <Dial>s the target, and the stream closes once Twilio
 * took it.  If Twilio refuses, the model is told and the call goes on.
 * 0, or -1 (no such target, no REST account, the call is ending). */
int  relay_transfer(struct call *c, const char *label, const char *handover);
/* Queue an SMS to the caller (TWILIO_PHONE_NUMBER sends it).  0 or -1. */
int  relay_send_sms(struct call *c, const char *body);

#endif
