/*
 * line.h — lines: what a route runs.  One JSON file per line in LINES_DIR;
 * the file name without ".json" is the route (POST /voice/<line>, and the
 * stream URL carries it).  Loaded and checked with the personas, at start,
 * on SIGHUP and by `voxrelay -t`; workers inherit the loaded set.
 *
 *   {
 *     "app": "agent",              an app of worker/app.c (required)
 *     "persona": "hvac",           who answers (default: the line's name)
 *     "free_minutes": 3 | null,    the caller's allowance across calls;
 *                                  null: no quota (absent: FREE_CALL_MINUTES)
 *     "min_minutes": 0.5,          needed to be admitted (MIN_CALL_DURATION)
 *     "max_call_minutes": 20 | null,  one call's maximum (null: none)
 *     "wrapup": "..." | null,      what the persona is told at the limit
 *                                  (WRAPUP_INSTRUCTIONS); null: no goodbye
 *     "wrapup_grace": 15,          s the goodbye may take (WRAPUP_GRACE)
 *     "sms": "..." | null,         the text sent when the allowance ran out,
 *                                  {url} is CONVOREPS_URL (SMS_MESSAGE)
 *     "tools": ["book_appointment", "end_call"],   the persona's tools this
 *                                  line offers (absent: all of them)
 *     "facts": {"full_name": "...", "date_of_birth": "YYYY-MM-DD",
 *               "account_last4": "1234"},   what verify_identity checks
 *                                  the caller's answers against; a line
 *                                  without facts does not offer that tool
 *     "keypad": {"9": "end_call", "*": "repeat",
 *                "2": {"action": "persona", "persona": "dental"}},
 *                                  what a key does; other keys are told
 *                                  to the model
 *     "transport": "media_streams" | "conversation_relay",
 *     "conversation_relay": {      <ConversationRelay>'s attributes:
 *       "welcomeGreeting": "...", "language": "en-US", "voice": "...",
 *       "ttsProvider": "...", "transcriptionProvider": "...",
 *       "interruptible": "any", "dtmfDetection": true,
 *       "hints": ["cleaning", "crown"], ...  (strings, booleans, numbers;
 *       hints also a list)
 *     },
 *     "speaks_first": "agent" | "callee",   who talks first: the persona's
 *                                  greeting at once, or held for the
 *                                  callee's first words (absent: the callee
 *                                  on an outbound call, else the agent)
 *     "greeting_pause_ms": 3000,   how long it is held: the greeting is said
 *                                  then if nobody spoke (0: at once;
 *                                  OUTBOUND_GREETING_PAUSE)
 *     "facts_from": "line" | "call",   what verify_identity checks: "facts"
 *                                  or the call's own (an outbound request's
 *                                  name, date_of_birth, account_last4);
 *                                  absent: the call's when outbound
 *     "voicemail": "..." | null,   an outbound call that reaches a machine
 *                                  leaves this message after the beep and
 *                                  hangs up; null or absent: hangs up at once
 *     "transfer_targets": [{"label": "office manager",
 *                           "number": "+15551234567" | "sip": "sip:..."}],
 *                                  transfer_call and the keypad's
 *                                  transfer dial one of these
 *     "session_rollover_minutes": 55,   a fresh session after this
 *                                  (SESSION_ROLLOVER_MINUTES)
 *     "transfer": {"caller_id": "+15550001111", "timeout": 20,
 *                  "no_answer": "voicemail" | "line",
 *                  "voicemail": "Nobody could answer. ...",
 *                  "warm": "sms"},     a summary to the number first
 *     "webhooks": {"book_appointment": {"url": "https://...",
 *                  "method": "POST", "headers": {"Authorization":
 *                  "Bearer ${HVAC_API_KEY}"}, "secret": "${HVAC_SECRET}",
 *                  "timeout_ms": 8000, "filler_ms": 1500}}
 *                                  tools the business answers; a url that
 *                                  names an unset variable turns it off
 *   }
 *
 * A route with no line file runs its persona as a practice-app line with
 * the configuration's keys (line_set.fallback), as before lines existed.
 */
#ifndef VR_LINE_H
#define VR_LINE_H

#include <stddef.h>

#include "daemon/common/conf.h"
#include "personas/persona.h"

#define LINE_APP_MAX	16
#define LINE_KEYS	16	/* 0-9 * # A-D */

/* What a key of the caller's keypad does on a line. */
enum line_key_action {
	LK_MODEL = 0,		/* told to the model ("The caller pressed 5") */
	LK_END,			/* end the call */
	LK_REPEAT,		/* say the last answer again */
	LK_PERSONA,		/* switch to persona `arg` */
	LK_TRANSFER,		/* transfer to the target labelled `arg` */
};

struct line_key {
	char			 digit;
	enum line_key_action	 action;
	char			 arg[64];	/* a persona id, or a target label */
};

#define LINE_TARGETS_MAX 16
#define LINE_LABEL_MAX	64

enum line_transport {
	LINE_MEDIA_STREAMS = 0,
	LINE_CONVERSATION_RELAY,
};

/* Who talks first on a call (speaks_first). */
enum line_speaker {
	LINE_SPEAKS_BY_DIRECTION = 0,	/* the callee when outbound */
	LINE_SPEAKS_AGENT,
	LINE_SPEAKS_CALLEE,
};

/* What verify_identity checks the caller against (facts_from). */
enum line_facts_from {
	LINE_FACTS_BY_DIRECTION = 0,	/* the call's when outbound */
	LINE_FACTS_LINE,
	LINE_FACTS_CALL,
};

/* Where transfer_call may send the caller: a label the model chooses by,
 * and a number (E.164) or a SIP URI. */
struct line_target {
	char	 label[LINE_LABEL_MAX];
	char	*number;		/* NULL for a SIP target */
	char	*sip;			/* NULL for a number */
};

/* A tool answered by the business's own system: its arguments are posted
 * there as JSON, its answer goes back to the model.  Values of ${NAME}
 * are taken from the environment when the line is loaded. */
struct line_hook {
	char	 tool[64];
	char	*url;
	char	 method[8];		/* POST or PUT */
	char	**headers;		/* "Name: value", NULL-terminated */
	char	*secret;		/* keys X-Voxrelay-Signature */
	int	 timeout_ms;
	int	 filler_ms;		/* 0: the caller hears no filler */
};

struct line {
	char		 id[PERSONA_ID_MAX];	/* route; "" for the fallback */
	char		*file;
	char		 app[LINE_APP_MAX];
	char		 persona[PERSONA_ID_MAX];	/* "": the route's own */
	double		 free_minutes;		/* < 0: no quota */
	double		 min_minutes;
	double		 max_call_minutes;	/* < 0: none */
	double		 rollover_minutes;	/* SESSION_ROLLOVER_MINUTES */
	char		*wrapup;		/* NULL: no goodbye */
	int		 wrapup_grace;		/* s */
	char		*sms;			/* NULL: no SMS */
	char		*voicemail;		/* outbound: message for a machine */
	char		*tools_json;		/* NULL: the persona's own */
	char		*facts_json;		/* JSON object, NULL: none */
	enum line_facts_from	 facts_from;
	enum line_speaker	 speaks_first;
	int		 greeting_pause_ms;	/* the callee first: the wait */
	struct line_key	 keys[LINE_KEYS];	/* the keypad map */
	int		 nkeys;
	enum line_transport	 transport;
	/* ConversationRelay: <ConversationRelay>'s attributes as name, value
	 * pairs, NULL-terminated; welcome: its welcomeGreeting, or NULL */
	char		**relay_attrs;
	char		*welcome;
	struct line_target	*targets;
	size_t		 ntargets;
	/* a transfer's <Dial>: callerId ("" none), ring time (s), and when
	 * nobody answers: back to the line (1) or the voicemail text */
	char		 transfer_caller_id[24];
	int		 transfer_timeout;
	int		 transfer_back;
	int		 transfer_warm_sms;	/* text the target a summary first */
	struct line_hook *transfer_hook;	/* or post it here; NULL: not */
	char		*transfer_voicemail;
	struct line_hook	*hooks;
	size_t		 nhooks;
	/* a tool call's arguments go into the call records (the persona's
	 * sensitive fields masked); off by default */
	int		 record_arguments;
};

struct line_set {
	struct line	*v;
	size_t		 n;
	struct line	 fallback;	/* routes without a line file */
};

/*
 * Load every *.json file in dir (a missing directory is no lines) against
 * the configuration (its keys are the defaults), the loaded personas and
 * the names of the apps (NULL-terminated).  Returns 0, or the number of
 * problems, one per line in err as "file: field: problem"; on error the
 * set is left empty.
 */
int  line_set_load(struct line_set *ls, const char *dir, const struct conf *cf,
    const struct persona_set *ps, const char *const *apps, char *err,
    size_t errlen);
void line_set_free(struct line_set *ls);
/* The line of a route, or NULL (then the route is a persona's, if any). */
const struct line *line_find(const struct line_set *ls, const char *route);
/* The persona a call on line l for route answers with, or NULL. */
const struct persona *line_persona(const struct line *l,
    const struct persona_set *ps, const char *route);
/* tools_json (a JSON array of function tools) without the tool `name`:
 * a new string, or NULL when it has no such tool (or on error). */
char *line_tools_without(const char *tools_json, const char *name);
/* The action of key digit on line l: LK_MODEL when the line names none. */
const struct line_key *line_key(const struct line *l, char digit);
/* The transfer target labelled label, or NULL. */
const struct line_target *line_target_find(const struct line *l,
    const char *label);
/* The webhook that answers tool `tool` on line l, or NULL. */
const struct line_hook *line_hook_find(const struct line *l, const char *tool);
/* The caller's allowance applies. */
static inline int
line_has_quota(const struct line *l)
{
	return l->free_minutes >= 0;
}

#endif
