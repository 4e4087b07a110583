/*
 * callcheck.h — asking Twilio how an outbound call went when its status
 * callbacks did not say (callcheck.c).
 */
#ifndef VR_CALLCHECK_H
#define VR_CALLCHECK_H

#include <stdint.h>

struct master;
struct rest_done;

/* The bit of a REST_GET's ref that makes it a status query's. */
#define CALLCHECK_REF	(1ull << 62)
/* ... and with it, one of the list queries for a lost create's call */
#define CALLCHECK_LIST_REF	(1ull << 61)

/* At start, on the loop, once the campaigns' contacts are read (their
 * outcomes come from the answers): the outbound calls the last run left
 * open are asked about.  Only the first call does anything. */
void callcheck_start(struct master *m);
/* Twilio created call sid on line here: watched from now on. */
void callcheck_watch(struct master *m, const char *sid, const char *line);
/* A call the last run placed and left open (a campaign's contact still
 * calling): asked about now. */
void callcheck_restore(struct master *m, const char *sid, const char *line);
/* A campaign's contact the last run left calling with no CallSid (killed
 * between the create and its answer): its call is looked for among
 * Twilio's calls to phone created since marked_ms (wall), and adopted
 * (campaign_adopt()) if found; else its attempt is spent as unknown. */
void callcheck_find(struct master *m, const char *campaign,
    const char *phone, uint64_t marked_ms);
/* A status callback that is not final, or a verdict, came for sid. */
void callcheck_heard(struct master *m, const char *sid);
/* sid has its final status: no more asking. */
void callcheck_forget(const char *sid);
/* sid is watched: placed here, or left open by the last run. */
int  callcheck_watching(const char *sid);
/* sid was given up (no final status after its queries) and has had none
 * since: a late callback of it still updates its record. */
int  callcheck_given_up(const char *sid);
/* The calls the last run left open that are not known to be over (live
 * at Twilio, not asked yet, or a lost create's not looked for yet): each
 * holds a place under MAX_CONCURRENT_CALLS until it is over or given up. */
unsigned callcheck_held(void);
/* The calls the last run left open have been read from the store (or
 * there is no store): until then nobody knows how many there are. */
int  callcheck_settled(const struct master *m);
/* The REST client's outcome of a query (REST_GET, CALLCHECK_REF set). */
void callcheck_answer(struct master *m, const struct rest_done *d);

#endif
