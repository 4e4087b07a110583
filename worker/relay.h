/*
 * relay.h — what a call does between its two legs: caller audio upstream,
 * model audio to Twilio with marks, barge-in (protocols.md 9.4), tool calls,
 * transcripts, latency figures.
 *
 * Playback bookkeeping: every piece of model audio sent to Twilio is
 * followed by a mark named "<generation>.<seq>".  Twilio echoes marks in
 * order when the audio before them has played, and echoes all pending ones
 * at once on `clear`; the generation changes at every clear, so an echo of
 * an older generation means "flushed", never "played".  An item's played
 * position is the end of its last echoed mark, which is what the caller
 * actually heard; a truncate never goes past what was sent.
 */
#ifndef VR_RELAY_H
#define VR_RELAY_H

#include <stdint.h>

#include "proto/openai.h"
#include "proto/twilio.h"

#define RELAY_ITEMS	4	/* assistant items tracked for playback */
#define RELAY_DROPS	4	/* cancelled responses whose audio is dropped */

struct call;
struct upstream;

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
	uint64_t		 session_expires;	/* Unix s, 0 unknown */
};

void relay_init(struct relay *r);
/* An empty buffer for building one event, shared by the worker's code
 * (used and sent before anything else builds). */
struct buf *relay_scratch(void);
/* Forget playback state (a new session takes over the call). */
void relay_reset_playback(struct relay *r);
void relay_free(struct relay *r);

/* The call's upgrade was accepted: start its upstream.  0 or -1. */
int  relay_start(struct call *c);
/* The call is closing: close its upstreams. */
void relay_stop(struct call *c);
/* Caller audio (a parsed Twilio media message). */
void relay_caller_media(struct call *c, const struct tw_msg *m);
/* Send gathered caller frames now (FRAMES_PER_APPEND > 1). */
void relay_flush_batch(struct call *c);
/* A mark echo from Twilio. */
void relay_caller_mark(struct call *c, const char *name);
/* Once a second: session expiry. */
void relay_tick(struct call *c, uint64_t now);
/* Send c's partial batch if it is due; 1 if c still holds one after. */
int  relay_batch_due(struct call *c, uint64_t now);

/* Called by the upstream (leg_openai.c). */
void relay_upstream_open(struct call *c, struct upstream *up);
void relay_upstream_event(struct call *c, struct upstream *up, struct oa_msg *m);
void relay_upstream_failed(struct call *c, struct upstream *up, const char *why);
void relay_upstream_gone(struct call *c, struct upstream *up);

#endif
