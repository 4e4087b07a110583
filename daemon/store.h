/*
 * store.h — call records: one interface, two backends (SQLite by default,
 * PostgreSQL when DATABASE_URL is set).
 *
 * Two layers:
 *
 *  - store_db_*: synchronous calls on one open database (schema, writes,
 *    the queries the API needs).  They block on the disk or the network, so
 *    in the daemon only the store's own thread calls them; `voxrelay -t`
 *    and the tests call them directly.
 *
 *  - store_*: the master's side.  store_post() queues a record and returns
 *    at once; the store thread writes queued records in batches, one
 *    transaction per batch.  When the database is down, locked or full the
 *    thread appends them to the journal (DATABASE_JOURNAL, NDJSON) instead,
 *    and replays the journal in order once the database answers again,
 *    before anything newer.  Every write is an upsert keyed by call_sid,
 *    (call_sid, seq), (call_sid, status), (phone, call_sid), token,
 *    (campaign, phone), a campaign's id or a number, so a record replayed
 *    twice leaves one row.  Queries go through the same
 *    thread and come back on the loop through a uv_async_t.
 *
 * A record is a JSON object with a "type" (see store_record_check() and the
 * README's "Records" section): call, status, utterance, tool, minutes,
 * token, contact, campaign, do_not_call.  Times are ms since the epoch (UTC).
 */
#ifndef VR_STORE_H
#define VR_STORE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

/* The schema version this binary writes and migrates to. */
#define STORE_SCHEMA_VERSION	4

enum store_backend { STORE_SQLITE = 0, STORE_PG = 1 };

struct store_cfg {
	const char	*path;		/* DATABASE_PATH (SQLite) */
	const char	*url;		/* DATABASE_URL: postgresql://...; "" for SQLite */
	const char	*journal;	/* DATABASE_JOURNAL */
	const char	*host;		/* this host's name, recorded with calls */
	const char	*transcripts;	/* TRANSCRIPTS_DIR, purged with the calls */
	int		 retention_days;/* 0: keep everything */
	int		 retry_ms;	/* between attempts while down; 0: 1000 */
	int		 busy_ms;	/* SQLite lock wait; 0: 2000 */
};

struct conf;
/* The store's keys of a loaded configuration (pointers into c). */
void store_cfg_from_conf(struct store_cfg *sc, const struct conf *c,
    const char *host);

/* Return codes of the store_db_* writes. */
#define STORE_OK	0
#define STORE_EDATA	(-1)	/* this statement or record is wrong */
#define STORE_EDOWN	(-2)	/* the database is unreachable, locked or full */

struct store_db;

/* ---- synchronous ---- */

/* Open (SQLite: create) the database and migrate it to
 * STORE_SCHEMA_VERSION; upto > 0 stops at that version (tests build a
 * database of an older version with it).  NULL and a reason in err. */
struct store_db *store_db_open(const struct store_cfg *cfg, int upto,
    char *err, size_t errlen);
/* Connect without creating or migrating anything (`voxrelay -t`). */
struct store_db *store_db_connect(const struct store_cfg *cfg, char *err,
    size_t errlen);
void store_db_close(struct store_db *db);
enum store_backend store_db_backend(const struct store_db *db);
/* Whether a statement found the database gone (STORE_EDOWN): the
 * connection is to be opened again. */
int  store_db_broken(const struct store_db *db);
/* The version found in the database: 0 for an empty one, or -1. */
int  store_db_version(struct store_db *db, char *err, size_t errlen);

/* For `voxrelay -t`: connect without creating or migrating anything and
 * check the schema is one this binary knows (empty, older, or current).
 * 0, or -1 with a reason.  *version gets what was found. */
int  store_check(const struct store_cfg *cfg, int *version, char *err,
    size_t errlen);

/* NULL when rec is a record the store can write, else why not. */
const char *store_record_check(const json_t *rec);

/* Write the records of an array in one transaction.  STORE_EDATA means
 * one of them was refused and none was written (store_db_apply_each()
 * then writes them one at a time). */
int  store_db_apply(struct store_db *db, json_t *records, char *err,
    size_t errlen);
/* One transaction per record; refused ones are counted in *rejected.
 * STORE_EDOWN as soon as the database is gone (what was written stays). */
int  store_db_apply_each(struct store_db *db, json_t *records,
    unsigned *rejected, char *err, size_t errlen);

#define STORE_PAGE_MAX	1000	/* calls in one page of the history */

struct store_filter {
	const char	*from, *to, *line, *status, *direction;
	uint64_t	 since, until;	/* ms; 0: open */
	long		 limit, offset;
};
/* {"calls": [...], "total": N, "limit": L, "offset": O}, newest first. */
json_t *store_db_history(struct store_db *db, const struct store_filter *f,
    char *err, size_t errlen);
/* The whole record with "status_history" and "tool_calls"; NULL with
 * err "" for an unknown call_sid, NULL with a reason on failure. */
json_t *store_db_call(struct store_db *db, const char *call_sid, char *err,
    size_t errlen);
/* {"call_sid": ..., "utterances": [...]} in order; NULL as above. */
json_t *store_db_conversation(struct store_db *db, const char *call_sid,
    char *err, size_t errlen);
/* Calls started in [since, until) (0: open), and per_hour for the 24 h
 * before now. */
json_t *store_db_analytics(struct store_db *db, uint64_t since,
    uint64_t until, uint64_t now, char *err, size_t errlen);
/* One page of GET /api/export: {"text": NDJSON, "n": calls, "after_at",
 * "after_sid": the cursor for the next page}, oldest first. */
json_t *store_db_export(struct store_db *db, uint64_t since, uint64_t until,
    long long after_at, const char *after_sid, long limit, char *err,
    size_t errlen);
/* Delete calls started before `before` with their status history,
 * utterances and tool calls, and tokens expired before now.  The number
 * of calls deleted, or -1. */
long store_db_purge(struct store_db *db, uint64_t before, uint64_t now,
    char *err, size_t errlen);
/* Delete the transcript files (<CallSid>.jsonl) in dir last written
 * before `before` (ms since the epoch).  The number deleted, or -1 when
 * the directory cannot be read (a missing one is 0). */
long store_purge_transcripts(const char *dir, uint64_t before);
/* ms a caller has used over every host, or -1. */
long long store_db_caller_used_ms(struct store_db *db, const char *phone,
    char *err, size_t errlen);
/* A caller's ms split by who reported them: *mine the rows of host,
 * *others the rest (other hosts, or none named).  0, or -1. */
int  store_db_caller_minutes(struct store_db *db, const char *phone,
    const char *host, long long *mine, long long *others, char *err,
    size_t errlen);
/* The same for up to STORE_CALLERS_MAX phones in one SELECT: an array of
 * {"phone", "mine", "others"}, one per phone with a row, or NULL. */
#define STORE_CALLERS_MAX	100
json_t *store_db_callers_minutes(struct store_db *db, const char *const *phones,
    size_t n, const char *host, char *err, size_t errlen);
/* Who claimed a used token: 1 and its host (maybe "") in host, 0 when it
 * is not used, -1 on failure. */
int  store_db_token_host(struct store_db *db, const char *token, char *host,
    size_t hostlen, char *err, size_t errlen);
/* Mark a stream token used: 1 if it was not used before, 0 if it was
 * (on any host sharing the database), -1 on failure. */
int  store_db_token_claim(struct store_db *db, const char *token,
    const char *host, uint64_t now, uint64_t expires, char *err,
    size_t errlen);

/* Campaigns (daemon/campaign.c): {"contacts": [every contact's row with
 * its call's status and answered_by], "campaigns": [{id, paused}],
 * "do_not_call": [{phone}]}, or NULL. */
json_t *store_db_campaign_state(struct store_db *db, char *err,
    size_t errlen);
/* One contact's {state, attempts} as written ({} when no row), or NULL. */
json_t *store_db_contact(struct store_db *db, const char *campaign,
    const char *phone, char *err, size_t errlen);
/* Outbound calls (daemon/callcheck.c): the newest `limit` records of
 * calls placed by host (or by no host yet) not final, [{call_sid, line,
 * status}], or NULL. */
json_t *store_db_outbound_open(struct store_db *db, const char *host,
    int limit, char *err, size_t errlen);

/* One campaign's rows of campaign_contacts, as in
 * store_db_campaign_state()'s "contacts", or NULL. */
json_t *store_db_campaign_contacts(struct store_db *db, const char *campaign,
    char *err, size_t errlen);

/*
 * A campaign's contacts table (PostgreSQL only).  Its name, and the
 * schema's when given (else the search_path finds it), must be
 * identifiers of letters, digits and _ not starting with a digit: they
 * are quoted into the SQL, so they are matched as written (case
 * included).
 */
#define STORE_IDENT_MAX	63
int  store_ident_valid(const char *s);
/* The table's column names in order; NULL with err "no such table" or
 * another reason (store_db_broken() tells the database's absence). */
json_t *store_db_table_columns(struct store_db *db, const char *schema,
    const char *table, char *err, size_t errlen);
/* Up to max rows of the columns cols (their names), each one read as
 * text (null stays null), ordered by the column order when not NULL:
 * an array of objects keyed by column name, or NULL with err. */
json_t *store_db_table_rows(struct store_db *db, const char *schema,
    const char *table, const json_t *cols, const char *order, long max,
    char *err, size_t errlen);

/* ---- asynchronous (the master) ---- */

struct store;

struct store_stats {
	uint64_t	 queued;	/* records waiting in memory */
	uint64_t	 backlog;	/* records in the journal, not yet replayed */
	uint64_t	 written;	/* records written to the database */
	uint64_t	 journaled;	/* records appended to the journal */
	uint64_t	 replayed;	/* records written from the journal */
	uint64_t	 rejected;	/* records the database refused */
	uint64_t	 dropped;	/* records lost: queue and journal full */
	uint64_t	 purged;	/* calls purged by RETENTION_DAYS */
	int		 up;		/* database open and answering */
	int		 version;	/* its schema version, -1 unknown */
};

/* A query run on the store thread (db NULL when the database is down);
 * what it returns is handed to the done callback on the loop, which owns
 * it. */
typedef json_t *(*store_query_cb)(struct store_db *db, void *arg,
    char *err, size_t errlen);
typedef void (*store_done_cb)(json_t *result, const char *err, void *arg);

/* Copies cfg.  Nothing is opened yet. */
struct store *store_new(const struct store_cfg *cfg);
/*
 * Start the store thread and its async handle on loop.  The thread opens
 * and migrates the database itself, so a slow or absent database never
 * holds the loop; until it answers, records go to the journal.
 *
 * Call it after the workers are forked where that is possible.  A fork
 * afterwards (a respawned worker, the ledger writer) is still safe: the
 * children never call into the store, the thread holds no lock a child
 * takes (glibc's fork resets malloc's and stdio's), and every signal is
 * blocked in the thread, so the master's signalfd stays the only reader.
 */
int  store_start(struct store *st, uv_loop_t *loop);
/* Queue a record (the store takes the reference).  Never blocks on the
 * database; a record store_record_check() refuses is dropped with a log
 * line and counted as rejected.  Past the queue's limit (while the thread
 * is stuck in a call to the database) records are counted as dropped. */
void store_post(struct store *st, json_t *rec);
/* Run fn on the store thread after the records queued before it. */
int  store_query_async(struct store *st, store_query_cb fn, void *arg,
    store_done_cb done, void *done_arg);
void store_get_stats(struct store *st, struct store_stats *out);
/* Write what is queued (or journal it), stop the thread, close the async
 * handle and free st once it is closed.  Bounded by timeout_ms for the
 * queue; what is left is journaled. */
void store_stop(struct store *st, int timeout_ms);

#endif
