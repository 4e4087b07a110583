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

struct conf;
struct rest;

/* A client on loop with configuration cf (kept, not copied: see
 * rest_set_conf()).  outcome(arg, sent) is called once per SMS at its end:
 * sent 1 when Twilio accepted it, 0 when given up.  NULL on failure. */
struct rest *rest_new(uv_loop_t *loop, const struct conf *cf,
    void (*outcome)(void *arg, int sent), void *arg);
/* A new configuration for the jobs started from now on. */
void rest_set_conf(struct rest *r, const struct conf *cf);
/* Queue an SMS to `to` from TWILIO_PHONE_NUMBER.  call_sid is for logs.
 * Returns 0, or -1 if SMS is not configured or `to` is not a number. */
int  rest_send_sms(struct rest *r, const char *to, const char *body,
    const char *call_sid);
/* Jobs not finished yet (a draining worker waits for them). */
unsigned rest_pending(const struct rest *r);
/* The configuration allows SMS (account SID, auth token, from number). */
int  rest_sms_configured(const struct rest *r);

#endif
