/*
 * practice.h — the practice line's part of a call: tools the personas call,
 * the switch from the intake persona to a practice persona (a second
 * upstream session, swapped in between turns), the caller's time limit
 * with a spoken wrap-up, and the goodbye SMS.
 *
 * Tool results are not sent the moment a tool is called: a response that
 * calls a tool is still active until its response.done, and a
 * response.create before that is refused.  Results are queued and sent,
 * with the response.create that lets the model go on, at response.done.
 */
#ifndef VR_PRACTICE_H
#define VR_PRACTICE_H

#include <stdint.h>

#include "personas/intent.h"
#include "proto/openai.h"

#define PRACTICE_TOOLS_MAX 4

struct call;
struct upstream;
struct persona;

struct practice_result {
	char	 call_id[OA_ID_MAX];
	char	*output;		/* JSON text, owned */
};

enum wrapup_state {
	WRAP_NONE = 0,
	WRAP_WANTED,	/* the limit is reached; waiting for the model to be idle */
	WRAP_ASKED,	/* the goodbye response was requested */
};

enum switch_state {
	SW_NONE = 0,
	SW_OPENING,	/* the next session is connecting; intake hands over */
	SW_DONE,
};

struct practice {
	/* tools */
	struct practice_result	 results[PRACTICE_TOOLS_MAX];
	unsigned		 nresults;
	int			 want_response;	/* after the results go out */
	/* end_call */
	int			 ending;
	uint64_t		 ending_deadline_ms;
	/* time limit */
	uint64_t		 limit_at_ms;	/* mono; 0: none */
	enum wrapup_state	 wrap;
	uint64_t		 wrap_deadline_ms;
	char			 wrap_response[OA_ID_MAX];
	int			 wrap_done;	/* its response.done came */
	int			 limit_reached;
	int			 sms_sent;
	/* persona switch */
	enum switch_state	 sw;
	struct upstream		*next;
	const struct persona	*next_persona;
	enum practice_mode	 mode;
	char			 summary[256];
	int			 next_open;
	int			 handover_wanted;	/* ask the old one to hand over */
	char			 handover_response[OA_ID_MAX];
	int			 handover_done;
	uint64_t		 switch_started_ms;
	uint64_t		 swap_deadline_ms;
	uint64_t		 last_audio_ms;		/* of the old session */
	/* keyword fallback */
	enum practice_mode	 intent_mode;
	uint64_t		 intent_at_ms;
	char			 intent_text[256];
};

void practice_init(struct practice *p);
void practice_free(struct practice *p);

/* The call's `start`: the time limit from the caller's balance. */
void practice_call_started(struct call *c);
/* The call ended: the goodbye SMS if its time ran out. */
void practice_call_ended(struct call *c);
/* Once a tick. */
void practice_tick(struct call *c, uint64_t now);

/* From the relay. */
void practice_on_tool_call(struct call *c, struct upstream *up, struct oa_msg *m);
void practice_on_response_created(struct call *c, struct upstream *up,
    struct oa_msg *m);
void practice_on_response_done(struct call *c, struct upstream *up,
    struct oa_msg *m);
void practice_on_caller_transcript(struct call *c, const char *text);
/* Every mark echoed: the caller has heard everything sent. */
void practice_on_played(struct call *c);

/* The next session (not c->up) reports. */
int  practice_is_next(struct call *c, struct upstream *up);
void practice_next_open(struct call *c, struct upstream *up);
void practice_next_failed(struct call *c, struct upstream *up, const char *why);
void practice_next_gone(struct call *c, struct upstream *up);
void practice_stop(struct call *c);

#endif
