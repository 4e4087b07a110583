/*
 * rest.h — Twilio REST calls from a worker: libcurl's multi interface
 * driven by the worker's libuv loop (curl tells us which sockets to watch
 * and when to wake it; libuv watches them), so a request never blocks the
 * audio of any call.
 *
 * A job outlives the call that started it (the goodbye SMS is sent after
 * the stream closed).  Failed attempts are retried with backoff; the final
 * outcome is counted in sms_sent or sms_failed.
 */
#ifndef VR_REST_H
#define VR_REST_H

#include <uv.h>

int  rest_init(uv_loop_t *loop);
/* Queue an SMS to `to` from TWILIO_PHONE_NUMBER.  call_sid is for logs.
 * Returns 0, or -1 if SMS is not configured or `to` is not a number. */
int  rest_send_sms(const char *to, const char *body, const char *call_sid);
/* Jobs not finished yet (a draining worker waits for them). */
unsigned rest_pending(void);
/* The configuration allows SMS (account SID, auth token, from number). */
int  rest_sms_configured(void);

#endif
