/*
 * outbound.h — calls voxrelay places (outbound.c).
 */
#ifndef VR_OUTBOUND_H
#define VR_OUTBOUND_H

#include <jansson.h>
#include <stdint.h>

struct conn;
struct master;
struct http_req;
struct twiml;
struct form;
struct rest;

/* At start, on the loop: the cooldowns kept, the REST client.  0 or -1. */
int  outbound_init(struct master *m);
/* POST /api/request-call on the operator's listener. */
void outbound_request(struct conn *c, struct http_req *r);
/* /outbound/... on the public listener: 1 if answered here. */
int  outbound_public(struct conn *c, struct http_req *r);
/* Outbound calls being created or not over yet. */
unsigned outbound_active(void);
/* The call sid was placed here and is not over; or Twilio asks for the
 * TwiML of the call whose Url carried token ("t") before answering its
 * create, and the call learns its sid now. */
int  outbound_known(const char *sid, const char *token);
/* The stream parameters of outbound call sid (its name, its variables). */
void outbound_params(const char *sid, struct twiml *t);
/* s with its {{name}} variables filled from name and vars (an object of
 * strings); json: each value escaped for a JSON string.  A variable with
 * no value is left as written.  A new string, or NULL. */
char *outbound_fill(const char *s, const char *name, json_t *vars, int json);

/* For campaigns (campaign.c): whether to may be called, the seconds left
 * of its cooldown, whether calls can be placed at all (Twilio's keys,
 * PHONE_NUMBER_FROM, PUBLIC_URL). */
int  outbound_allowed(const struct master *m, const char *to);
uint64_t outbound_cooldown_left(struct master *m, const char *to);
int  outbound_ready(const struct master *m);
/* Place a call for a campaign's contact: campaign_created() is told how
 * the creation went.  0, or -1 when it could not be started. */
int  outbound_place(struct master *m, const char *to, const char *line,
    const char *name, json_t *vars, const char *campaign);

/* What Twilio says of call sid (a status callback, or the answer to a
 * query): the record, its status history and a campaign's contact.
 * status: queued, ringing, in-progress, completed, busy, no-answer, failed,
 * canceled, or "unknown" for a call Twilio never created; by
 * (answered_by) and dur (seconds) may be NULL; at: wall ms, 0 if not
 * known. */
void outbound_status(struct master *m, const char *sid, const char *status,
    const char *by, const char *dur, uint64_t at);
/* Ask for Twilio's latest calls to to (one page, newest first; the
 * answer comes to the REST client's outcome with ref).  0, or -1. */
int  outbound_list_calls(const char *to, long timeout_ms, uint64_t ref);
/* Whether call, a Call resource of that list, is one placed from our
 * number to to through the API, created at or after since_ms (wall). */
int  outbound_call_placed(const struct master *m, json_t *call,
    const char *to, uint64_t since_ms);
/* The master's REST client (callcheck.c asks with it), or NULL. */
struct rest *outbound_rest(void);

/* routes.c, for outbound.c */
/* Answered 403 (and counted) unless the request's signature is good. */
int  routes_signed(struct conn *c, struct http_req *r, struct form *f,
    const char *what);
/* The TwiML of an outbound call on line (route, rlen). */
void routes_voice_outbound(struct conn *c, struct http_req *r,
    const char *route, size_t rlen);

#endif
