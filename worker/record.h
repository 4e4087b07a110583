/*
 * record.h — a call's records, sent to the master as they happen.
 *
 * Each record is one JSON object (the store's format: store.h and the
 * README's "Records") in one IPC_RECORD packet on the worker's channel.
 * The master adds its host name and hands it to the store.  Nothing here
 * runs per frame: a call sends a handful of records at its start and end,
 * one per final transcript line, tool call, response and persona switch.
 *
 * The channel is written with MSG_DONTWAIT.  What the socket does not take
 * waits in a queue of at most RECORD_QUEUE_MAX records, retried on every
 * worker tick and on the next record; past that, records are dropped and
 * counted (records_dropped), never waited for.
 */
#ifndef VR_WORKER_RECORD_H
#define VR_WORKER_RECORD_H

#include <stdint.h>

#define RECORD_QUEUE_MAX	4096
#define RECORD_TEXT_MAX		8000	/* bytes of one utterance's text */

struct call;
struct oa_msg;
struct rec_call;
struct worker;

/* `start` came: the call record (in-progress) and its status. */
void record_call_started(struct call *c);
/* A final transcript line; item_id names the model's item ("" for the
 * caller's), so a barge-in can mark it cut off. */
void record_utterance(struct call *c, const char *role, const char *text,
    const char *item_id);
/* The caller cut the model's item off at ms of its audio (barge-in). */
void record_cut(struct call *c, const char *item_id, uint64_t ms);
/* A tool call: its name, arguments (kept only where the line says so),
 * outcome and how long the worker took to answer it. */
void record_tool(struct call *c, const char *name, const char *args,
    const char *outcome, uint64_t latency_ms);
/* A line's tool decided how the call went (arranged, refused,
 * wrong_number, do_not_call): an "outcome" record, which the master hands
 * to the call's campaign rather than to the store.  args: the tool's
 * arguments (amount, first_payment_date, plan are kept), or NULL.  Sent
 * whether or not the call is recorded: a campaign must not lose it. */
void record_outcome(struct call *c, const char *outcome, const char *args);
/* response.done: add its usage to the call's and send the totals. */
void record_usage(struct call *c, const struct oa_msg *m);
/* The call now talks to persona id. */
void record_persona(struct call *c, const char *id);
/* The call went to a fresh session (SESSION_ROLLOVER_MINUTES): the
 * call's count of them. */
void record_rollover(struct call *c);
/* Twilio took the transfer: the number or SIP URI the call was handed to. */
void record_transfer(struct call *c, const char *to);
/* The call ended: its final status, times, reason. */
void record_ended(struct call *c);
/* Free a call's recording state (the relay's free path). */
void record_free(struct rec_call *rc);

/* Send what is queued, as far as the channel takes it (worker tick). */
void record_flush(struct worker *w);
/* Before the worker exits: wait at most ms for the channel to take the
 * queue. */
void record_flush_final(struct worker *w, int ms);

#endif
