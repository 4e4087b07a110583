/*
 * rest.h — Twilio REST calls: libcurl's multi interface driven by a libuv
 * loop (curl tells us which sockets to watch and when to wake it; libuv
 * watches them), so a request never blocks the loop it runs on.
 *
 * A client (struct rest) takes its context explicitly: the loop, the
 * configuration (account, token, from number, API base) and where to
 * report each outcome.  Nothing here reads a process's globals, so the
 * master can hold a client as well as a worker.
 *
 * A job outlives the call that started it (the goodbye SMS is sent after
 * the stream closed).  Failed attempts are retried with backoff; the final
 * outcome is reported once per job.
 */
#ifndef VR_REST_H
#define VR_REST_H

#include <uv.h>

#include <stdint.h>

struct conf;
struct rest;

#define REST_CREATE_TIMEOUT_S	4	/* one attempt to create a call */

enum rest_kind {
	REST_SMS,		/* a message to the caller */
	REST_CALL,		/* an update of the live call (hang-up, transfer) */
	REST_HOOK,		/* a business webhook a tool calls */
	REST_CREATE,		/* a new outbound call (Calls.json) */
	REST_GET,		/* a resource of the account read (rest_get) */
};

/* How a job ended, once. */
struct rest_done {
	enum rest_kind	 kind;
	int		 ok;		/* Twilio accepted it (2xx) */
	int		 attempts;
	uint64_t	 ref;		/* the caller's, from the request */
	/* REST_HOOK: the HTTP status, the answer (ok only; not NUL-
	 * terminated, valid during the callback), or why there is none;
	 * REST_CREATE, REST_GET: the status and the answer (NUL-terminated) */
	long		 status;
	const char	*body;
	size_t		 body_len;
	const char	*error;
	const char	*tag;		/* the caller's, from the request */
	/* REST_CREATE not ok: the request reached Twilio but no answer says
	 * what became of it (a timeout, a connection lost, a 500, 502 or
	 * 504), so the call may exist; it was not tried again */
	int		 unsure;
};

/* A client on loop with configuration cf (kept, not copied: see
 * rest_set_conf()).  outcome(arg, done) is called once per job at its end.
 * NULL on failure. */
struct rest *rest_new(uv_loop_t *loop, const struct conf *cf,
    void (*outcome)(void *arg, const struct rest_done *done), void *arg);
/* A new configuration for the jobs started from now on. */
void rest_set_conf(struct rest *r, const struct conf *cf);
/* Queue an SMS to `to` from TWILIO_PHONE_NUMBER.  call_sid is for logs.
 * Returns 0, or -1 if SMS is not configured or `to` is not a number. */
int  rest_send_sms(struct rest *r, const char *to, const char *body,
    const char *call_sid);
/* Update the live call call_sid (POST .../Calls/<call_sid>.json) with one
 * form field: Status=completed ends it, Twiml=<Response>... replaces what
 * it runs.  ref comes back in the outcome.  0, or -1 if the account is not
 * configured or call_sid is not a CallSid. */
int  rest_update_call(struct rest *r, const char *call_sid, const char *name,
    const char *value, uint64_t ref);
/* Create a call (POST .../Calls.json) with form, a complete
 * application/x-www-form-urlencoded body (copied), tried within
 * REST_CREATE_TIMEOUT_S and retried with backoff only while the failure
 * shows no call was made (not connected, 429, 503); any other failure
 * after the request went out ends the job at once with `unsure`.
 * ref comes back in the outcome, with the last attempt's HTTP status (0:
 * none came) and its answer (the Call resource, or Twilio's error).  0,
 * or -1 if the account is not configured. */
int  rest_create_call(struct rest *r, const char *form, uint64_t ref);
/* Read a resource of the account: GET .../Accounts/<sid>/<path>, path
 * with its query string already encoded ("Calls/CA....json",
 * "Calls.json?To=%2B1...").  Tried once within timeout_ms; an answer over
 * 64 KiB fails.  ref comes back in the outcome (REST_GET) with the HTTP
 * status (0: none came) and the answer.  0, or -1 if the account is not
 * configured. */
int  rest_get(struct rest *r, const char *path, long timeout_ms,
    uint64_t ref);
/* Send body (JSON) to a business webhook with method and headers ("Name:
 * value", NULL-terminated), tried once within timeout_ms; an answer over
 * 64 KiB is refused.  ref and tag come back in the outcome.  0 or -1. */
int  rest_webhook(struct rest *r, const char *url, const char *method,
    const char *const *headers, const char *body, long timeout_ms,
    const char *call_sid, uint64_t ref, const char *tag);
/* The account is configured for call updates (account SID, auth token). */
int  rest_calls_configured(const struct rest *r);
/* Jobs not finished yet (a draining worker waits for them). */
unsigned rest_pending(const struct rest *r);
/* The configuration allows SMS (account SID, auth token, from number). */
int  rest_sms_configured(const struct rest *r);

#endif
