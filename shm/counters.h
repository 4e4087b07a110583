/*
 * counters.h — every counter in shared memory, as one X-macro list.
 *
 * Each process bumps its own copy (a worker in its slot, the master in the
 * header); readers sum them.  Counters only ever grow and are never reset,
 * not even when a worker slot is reused, so sums stay monotonic for
 * Prometheus.  X(name, help).
 *
 * /metrics (daemon/metrics.c) shows each as voxrelay_<name>_total, and a
 * name ending in _ms in seconds.  `promtool check metrics` (test_metrics)
 * refuses other units in a name: no "minutes", "hours" or "bits".
 */
#ifndef VR_SHM_COUNTERS_H
#define VR_SHM_COUNTERS_H

#define SHM_COUNTERS(X)								\
	X(total_calls,		"calls whose media stream started")		\
	X(failed_calls,		"calls that ended on an error or a dead worker") \
	X(sms_sent,		"goodbye SMS accepted by Twilio")		\
	X(sms_failed,		"goodbye SMS given up after retries")		\
	X(tool_calls,		"tool calls made by the model")			\
	X(call_updates,		"live-call updates (hang-up, transfer) Twilio accepted") \
	X(call_updates_failed,	"live-call updates given up after retries")	\
	X(rest_retries,		"Twilio REST attempts retried")			\
	X(transfers,		"calls transferred to a person (Twilio took the Dial)") \
	X(webhook_calls,	"tool calls sent to a business webhook")	\
	X(webhook_failed,	"business webhooks that timed out, failed or answered no JSON") \
	X(transfer_summaries,	"warm transfer summaries a business webhook took (2xx)") \
	X(transfer_summaries_failed, "warm transfer summaries not sent or not taken") \
	X(transfers_billed_ms,	"ms the dialled party of a transfer talked (Dial action)") \
	X(webhook_fillers,	"filler lines asked for while a webhook was slow") \
	X(session_rollovers,	"calls moved to a fresh model session (SESSION_ROLLOVER_MINUTES)") \
	X(transfers_failed,	"transfers Twilio did not take; the call went on") \
	X(api_errors,		"upstream (OpenAI) failures of any kind")	\
	X(upstream_error_events, "error events from the model that kept the session") \
	X(voice_requests,	"voice webhooks answered")			\
	X(refused_minutes,	"calls refused: caller out of minutes")		\
	X(refused_capacity,	"calls refused: no free stream capacity")	\
	X(refused_draining,	"calls refused: daemon draining")		\
	X(refused_ledger_full,	"calls refused: a new caller and the ledger full") \
	X(bad_caller,		"voice webhooks refused: From not a caller we accept") \
	X(sig_rejected,		"webhooks refused: bad X-Twilio-Signature")	\
	X(voice_repeats,	"voice webhooks repeated before the stream opened: same answer") \
	X(voice_replays,	"voice webhooks refused: the call's stream had opened") \
	X(voice_resumes,	"calls back on their line after a transfer nobody answered") \
	X(token_rejected,	"stream upgrades refused: bad or expired token") \
	X(token_replayed,	"stream upgrades refused: token already used")	\
	X(ws_sig_mismatch,	"stream upgrades whose signature header did not match") \
	X(handoff_failed,	"upgrades that could not be handed to a worker") \
	X(prewarm_opened,	"model sessions opened at the webhook, before the stream") \
	X(prewarm_used,		"streams that took the session opened for them at the webhook") \
	X(prewarm_expired,	"sessions opened at the webhook closed: no stream came in the token's life") \
	X(prewarm_fallback,	"streams with a session opened for them that opened another (worker gone, full, session failed)") \
	X(prewarm_skipped,	"calls admitted with PREWARM on whose line waits for start (templates, relay)") \
	X(http_requests,	"HTTP requests parsed by the master")		\
	X(http_bad_requests,	"HTTP requests refused as malformed or too large") \
	X(http_timeouts,	"HTTP connections closed by the header or idle timer") \
	X(accept_paused,	"times accepting paused for lack of descriptors") \
	X(accept_capped,	"times accepting paused at MAX_HTTP_CONNECTIONS") \
	X(admin_auth_failed,	"admin requests refused: no or wrong ADMIN_TOKEN") \
	X(idle_closed,		"idle keep-alive connections closed to make room") \
	X(per_ip_capped,	"connections refused at MAX_CONNECTIONS_PER_IP") \
	X(answer_budget_refused, "/usage-data answered 503: ANSWER_BUDGET in use") \
	X(ws_protocol_errors,	"WebSocket protocol errors (framing, UTF-8, size)") \
	X(ws_ping_floods,	"calls closed for a flood of pings from Twilio") \
	X(bad_messages,		"Media Streams messages refused as malformed")	\
	X(media_oversize,	"calls closed: a media payload over MAX_MEDIA_PAYLOAD") \
	X(media_too_fast,	"calls closed: caller audio ahead of the call's age") \
	X(unknown_events,	"Media Streams messages with an unknown event")	\
	X(frames_in,		"media frames received from Twilio")		\
	X(frames_out,		"media messages sent to Twilio")		\
	X(marks_in,		"mark echoes received from Twilio")		\
	X(dtmf_in,		"DTMF digits received")				\
	X(dtmf_bad,		"dtmf events without a key we know, ignored")	\
	X(dtmf_dropped,		"key presses past five a second, not acted on") \
	X(silence_fill_ms,	"ms of silence inserted for gaps in Twilio timestamps") \
	X(calls_timed_out,	"calls closed because Twilio went silent")	\
	X(calls_cut,		"calls closed by a shutdown (drain or reload deadline)") \
	X(outbuf_overflows,	"calls closed because the peer did not read")	\
	X(ledger_full,		"ledger inserts refused: table full")		\
	X(flush_ok,		"usage CSV flushes that succeeded")		\
	X(flush_failed,		"usage CSV flushes that failed (retried)")	\
	X(rescue_records_taken,	"records of a dead master's unsaved minutes added from the rescue journal") \
	X(rescue_lines_skipped,	"rescue journal lines skipped: torn, damaged or a record already taken") \
	X(relay_transfers,	"ConversationRelay sessions ended by a transfer we dialled") \
	X(relay_transfer_refused, "ConversationRelay hand-offs to a target not in the line's list") \
	X(relay_sig_refused,	"ConversationRelay upgrades refused: missing or wrong signature") \
	X(relay_errors,		"ConversationRelay error messages from Twilio")	\
	X(relay_unknown,	"ConversationRelay messages of an unknown type, ignored") \
	X(relay_bad_json,	"ConversationRelay messages that are not a JSON object, ignored") \
	X(relay_oversize,	"ConversationRelay messages over 16 KB, ignored") \
	X(relay_before_setup,	"ConversationRelay messages before setup, ignored") \
	X(relay_second_setup,	"ConversationRelay second setup messages, ignored") \
	X(relay_bad_fields,	"ConversationRelay messages missing a field they need, ignored") \
	X(relay_prompts,	"ConversationRelay final prompts given to the model") \
	X(relay_interrupts,	"ConversationRelay interrupts (the caller talked over)") \
	X(relay_tokens,		"ConversationRelay text tokens sent to Twilio")	\
	X(worker_records_sent,	"call records a worker sent to the master")	\
	X(worker_records_dropped,"call records a worker dropped: its queue to the master was full") \
	X(records_from_workers,	"call records the master took from its workers") \
	X(records_bad_messages,	"record messages from a worker that were not a JSON object") \
	X(records_closed_dead,	"calls whose record the master closed for a dead worker") \
	X(records_closed_master_died, "calls whose record a master closed from a dead master's rescue journal") \
	X(shared_reads,		"voice webhooks that read the caller's minutes in DATABASE_URL") \
	X(shared_fallbacks,	"voice webhooks decided on this host's ledger: DATABASE_URL did not answer in SHARED_TIMEOUT_MS") \
	X(token_replayed_shared, "stream upgrades refused: token or call used on another host sharing DATABASE_URL") \
	X(token_claim_fallbacks, "stream upgrades checked on this host's used tokens only: DATABASE_URL did not answer") \
	X(shared_live_reads,	"re-reads of the other hosts' minutes for callers with a call live here (one per SHARED_LIVE_INTERVAL)") \
	X(shared_live_fallbacks, "re-reads of live callers' minutes DATABASE_URL did not answer (or not before the next): the calls keep the last figures") \
	X(outbound_calls,	"outbound calls Twilio created for /api/request-call") \
	X(outbound_refused_bad_json, "call requests refused: body not the JSON asked for") \
	X(outbound_refused_not_e164, "call requests refused: phone_number not E.164") \
	X(outbound_refused_unknown_line, "call requests refused: no such line") \
	X(outbound_refused_missing_variable, "call requests refused: a variable the line uses is missing") \
	X(outbound_refused_not_allowed, "call requests refused: number not allowed") \
	X(outbound_refused_cooldown, "call requests refused: number in its OUTBOUND_COOLDOWN") \
	X(outbound_refused_draining, "call requests refused: daemon draining") \
	X(outbound_refused_capacity, "call requests refused: MAX_CONCURRENT_CALLS outbound calls") \
	X(outbound_requests_held, "call requests held at start until the calls the last run left open were read") \
	X(outbound_refused_twilio, "call requests refused: Twilio's API failing or not configured") \
	X(outbound_status_callbacks, "status callbacks of outbound calls")	\
	X(outbound_early_callbacks, "outbound callbacks kept: they came before Twilio's answer to the call's create") \
	X(outbound_early_applied, "kept outbound callbacks applied once the call's sid was known") \
	X(outbound_early_expired, "kept outbound callbacks dropped: no call created here got their sid in time") \
	X(outbound_early_dropped, "outbound callbacks not kept: too many kept already") \
	X(outbound_create_lookups, "outbound creates left unanswered: Twilio's calls searched for the call") \
	X(outbound_create_found, "outbound calls found at Twilio after their create was left unanswered") \
	X(outbound_machines,	"outbound calls answered by a machine")		\
	X(outbound_voicemails,	"outbound calls that left the line's voicemail message") \
	X(outbound_status_queries, "outbound calls' status asked of Twilio (GET Calls/{sid}.json)") \
	X(outbound_status_query_final, "status queries that found the call over: its record and contact closed from the answer") \
	X(outbound_status_query_live, "status queries that found the call still queued, ringing or in progress") \
	X(outbound_status_query_not_found, "status queries answered 404: the call was never created, its attempt spent as unknown") \
	X(outbound_status_query_failed, "status queries with no usable answer after their retries (no answer, 429, 5xx, 401, no known status)") \
	X(outbound_status_given_up, "outbound calls no longer asked about: no final status after their queries") \
	X(outbound_status_after_given_up, "status callbacks of outbound calls given up, applied to their records (and contacts) all the same") \
	X(workers_spawned,	"worker processes started")			\
	X(workers_died,		"worker processes that exited unexpectedly")	\
	X(workers_killed,	"workers killed for a stale heartbeat or drain deadline")

enum shm_counter {
#define X(name, help) SC_##name,
	SHM_COUNTERS(X)
#undef X
	SC__COUNT
};

#endif
