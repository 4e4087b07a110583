/*
 * store_db.c — the schema, its migrations, the idempotent writes and the
 * API's queries, once for both backends (store_drv.h says which SQL they
 * share).  Synchronous: in the daemon only the store thread calls these.
 */
#include "daemon/store_drv.h"
#include "daemon/common/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct store_db {
	const struct store_drv	*drv;
	void			*h;
	int			 broken;	/* a statement found it gone */
};

#define DAY_MS		86400000ULL
#define HOUR_MS		3600000ULL

/* ---------------------------------------------------------------- */
/* the schema: one ordered list of steps; a step names its version and
 * the SQL for each backend (the same text where the dialects agree) */

struct step {
	int		 version;
	const char	*sqlite, *pg;
};
#define BOTH(v, sql)	{ v, sql, sql }

static const struct step steps[] = {
	/* 1: calls, their status history, utterances, tool calls */
	BOTH(1, "CREATE TABLE calls ("
	    "call_sid TEXT PRIMARY KEY, direction TEXT, from_number TEXT, "
	    "to_number TEXT, line TEXT, persona TEXT, app TEXT, status TEXT, "
	    "started_at BIGINT, answered_at BIGINT, ended_at BIGINT, "
	    "duration_ms BIGINT, billed_s BIGINT, end_reason TEXT, "
	    "failure_class TEXT, host TEXT, worker INTEGER, answered_by TEXT, "
	    "transferred_to TEXT, updated_at BIGINT)"),
	BOTH(1, "CREATE TABLE call_status ("
	    "call_sid TEXT NOT NULL, status TEXT NOT NULL, at BIGINT NOT NULL, "
	    "PRIMARY KEY (call_sid, status))"),
	BOTH(1, "CREATE TABLE utterances ("
	    "call_sid TEXT NOT NULL, seq INTEGER NOT NULL, at BIGINT NOT NULL, "
	    "role TEXT NOT NULL, text TEXT NOT NULL, "
	    "interrupted INTEGER NOT NULL DEFAULT 0, interrupted_at_ms INTEGER, "
	    "PRIMARY KEY (call_sid, seq))"),
	BOTH(1, "CREATE TABLE tool_calls ("
	    "call_sid TEXT NOT NULL, seq INTEGER NOT NULL, at BIGINT, "
	    "name TEXT NOT NULL, outcome TEXT, latency_ms INTEGER, "
	    "arguments TEXT, PRIMARY KEY (call_sid, seq))"),
	BOTH(1, "CREATE INDEX calls_started ON calls (started_at DESC)"),

	/* 2: the model's usage and cost, every persona of a call, minutes
	 * and used tokens shared by hosts, the history's filters */
	BOTH(2, "ALTER TABLE calls ADD COLUMN personas TEXT"),
	BOTH(2, "ALTER TABLE calls ADD COLUMN input_text_tokens BIGINT"),
	BOTH(2, "ALTER TABLE calls ADD COLUMN input_audio_tokens BIGINT"),
	BOTH(2, "ALTER TABLE calls ADD COLUMN input_cached_tokens BIGINT"),
	BOTH(2, "ALTER TABLE calls ADD COLUMN output_text_tokens BIGINT"),
	BOTH(2, "ALTER TABLE calls ADD COLUMN output_audio_tokens BIGINT"),
	BOTH(2, "ALTER TABLE calls ADD COLUMN cost_usd DOUBLE PRECISION"),
	BOTH(2, "CREATE TABLE caller_minutes ("
	    "phone TEXT NOT NULL, call_sid TEXT NOT NULL, "
	    "used_ms BIGINT NOT NULL, host TEXT, updated_at BIGINT NOT NULL, "
	    "PRIMARY KEY (phone, call_sid))"),
	BOTH(2, "CREATE TABLE used_tokens ("
	    "token TEXT PRIMARY KEY, host TEXT, used_at BIGINT NOT NULL, "
	    "expires_at BIGINT NOT NULL)"),
	BOTH(2, "CREATE INDEX used_tokens_expires ON used_tokens (expires_at)"),
	BOTH(2, "CREATE INDEX calls_from ON calls (from_number, started_at DESC)"),
	BOTH(2, "CREATE INDEX calls_to ON calls (to_number, started_at DESC)"),
	BOTH(2, "CREATE INDEX calls_line ON calls (line, started_at DESC)"),
	BOTH(2, "CREATE INDEX calls_status ON calls (status, started_at DESC)"),
	BOTH(2, "CREATE INDEX calls_direction ON calls (direction, started_at DESC)"),

	/* 3: session rollovers, and the transferred leg: how long the
	 * dialled party talked (Twilio's DialCallDuration) and how the dial
	 * ended */
	BOTH(3, "ALTER TABLE calls ADD COLUMN rollovers INTEGER"),
	BOTH(3, "ALTER TABLE calls ADD COLUMN transfer_s BIGINT"),
	BOTH(3, "ALTER TABLE calls ADD COLUMN transfer_status TEXT"),

	/* 4: campaigns: each contact's state, a campaign's pause, the
	 * numbers never to be called again */
	BOTH(4, "CREATE TABLE campaign_contacts ("
	    "campaign TEXT NOT NULL, phone TEXT NOT NULL, state TEXT NOT NULL, "
	    "attempts INTEGER NOT NULL DEFAULT 0, outcome TEXT, "
	    "retry_at BIGINT, call_sid TEXT, detail TEXT, updated_at BIGINT, "
	    "PRIMARY KEY (campaign, phone))"),
	BOTH(4, "CREATE TABLE campaigns ("
	    "id TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0, "
	    "updated_at BIGINT)"),
	BOTH(4, "CREATE TABLE do_not_call ("
	    "phone TEXT PRIMARY KEY, at BIGINT NOT NULL, campaign TEXT, "
	    "call_sid TEXT)"),
};

static int
run(struct store_db *db, const char *sql, const struct store_param *p, int np,
    json_t **rows, char *err, size_t errlen)
{
	int rc = db->drv->exec(db->h, sql, p, np, rows, err, errlen);

	if (rc == STORE_EDOWN)
		db->broken = 1;
	return rc;
}

int
store_db_broken(const struct store_db *db)
{
	return db->broken;
}

static void
rollback(struct store_db *db)
{
	char ignored[256];

	run(db, "ROLLBACK", NULL, 0, NULL, ignored, sizeof(ignored));
}

/* Whether schema_version exists: the catalogs differ. */
static int
version_table_exists(struct store_db *db, char *err, size_t errlen)
{
	const char *sql = db->drv->backend == STORE_SQLITE ?
	    "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' "
	    "AND name = 'schema_version'" :
	    "SELECT COUNT(*) AS n FROM information_schema.tables WHERE "
	    "table_schema = current_schema() AND table_name = 'schema_version'";
	json_t *rows;
	int rc, n;

	if ((rc = run(db, sql, NULL, 0, &rows, err, errlen)) != STORE_OK)
		return rc;
	n = (int)json_integer_value(json_object_get(json_array_get(rows, 0),
	    "n"));
	json_decref(rows);
	return n > 0;
}

int
store_db_version(struct store_db *db, char *err, size_t errlen)
{
	json_t *rows;
	int rc;

	if ((rc = version_table_exists(db, err, errlen)) <= 0)
		return rc == 0 ? 0 : -1;
	if (run(db, "SELECT MAX(version) AS v FROM schema_version", NULL, 0,
	    &rows, err, errlen) != STORE_OK)
		return -1;
	rc = (int)json_integer_value(json_object_get(json_array_get(rows, 0),
	    "v"));
	json_decref(rows);
	return rc;
}

/*
 * Bring the schema to `target` in one transaction.  On PostgreSQL the
 * version table is locked first, so two hosts starting together migrate
 * once; on SQLite BEGIN IMMEDIATE takes the write lock.
 */
static int
migrate(struct store_db *db, int target, char *err, size_t errlen)
{
	int v, rc;

	if (run(db, "CREATE TABLE IF NOT EXISTS schema_version "
	    "(version INTEGER NOT NULL)", NULL, 0, NULL, err, errlen) != STORE_OK)
		return -1;
	if (run(db, db->drv->begin_sql, NULL, 0, NULL, err, errlen) != STORE_OK)
		return -1;
	if (db->drv->backend == STORE_PG && run(db, "LOCK TABLE schema_version "
	    "IN EXCLUSIVE MODE", NULL, 0, NULL, err, errlen) != STORE_OK)
		goto fail;
	if ((v = store_db_version(db, err, errlen)) < 0)
		goto fail;
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "the database's schema is version %d, newer "
		    "than this voxrelay knows (%d)", v, STORE_SCHEMA_VERSION);
		goto fail;
	}
	for (size_t i = 0; i < ARRAY_LEN(steps); i++) {
		const char *sql;

		if (steps[i].version <= v || steps[i].version > target)
			continue;
		sql = db->drv->backend == STORE_SQLITE ? steps[i].sqlite :
		    steps[i].pg;
		if (run(db, sql, NULL, 0, NULL, err, errlen) != STORE_OK)
			goto fail;
	}
	if (target > v) {
		struct store_param p = { .type = SP_INT, .i = target };

		if (run(db, "DELETE FROM schema_version", NULL, 0, NULL, err,
		    errlen) != STORE_OK ||
		    run(db, "INSERT INTO schema_version (version) VALUES ($1)",
		    &p, 1, NULL, err, errlen) != STORE_OK)
			goto fail;
	}
	if (run(db, "COMMIT", NULL, 0, NULL, err, errlen) != STORE_OK)
		goto fail;
	return 0;
fail:
	rc = -1;
	rollback(db);
	return rc;
}

static const struct store_drv *
pick_drv(const struct store_cfg *cfg)
{
	return cfg->url != NULL && cfg->url[0] != '\0' ? &store_drv_pg :
	    &store_drv_sqlite;
}

/* The backend's connection; create says whether a missing database may
 * be made. */
static struct store_db *
db_new(const struct store_cfg *cfg, int create, char *err, size_t errlen)
{
	struct store_db *db = calloc(1, sizeof(*db));

	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	db->drv = pick_drv(cfg);
	if ((db->h = db->drv->open(cfg, create, err, errlen)) == NULL) {
		free(db);
		return NULL;
	}
	return db;
}

struct store_db *
store_db_open(const struct store_cfg *cfg, int upto, char *err, size_t errlen)
{
	struct store_db *db = db_new(cfg, 1, err, errlen);

	if (db != NULL && migrate(db, upto > 0 ? upto : STORE_SCHEMA_VERSION,
	    err, errlen) != 0) {
		store_db_close(db);
		return NULL;
	}
	return db;
}

struct store_db *
store_db_connect(const struct store_cfg *cfg, char *err, size_t errlen)
{
	return db_new(cfg, 0, err, errlen);
}

void
store_db_close(struct store_db *db)
{
	if (db == NULL)
		return;
	db->drv->close(db->h);
	free(db);
}

enum store_backend
store_db_backend(const struct store_db *db)
{
	return db->drv->backend;
}

int
store_check(const struct store_cfg *cfg, int *version, char *err,
    size_t errlen)
{
	struct store_db db;
	int v;

	*version = -1;
	db.drv = pick_drv(cfg);
	if (db.drv->backend == STORE_SQLITE && access(cfg->path, F_OK) != 0) {
		/* created at start: its directory must let us */
		char dir[1024], *slash;

		vr_strlcpy(dir, cfg->path, sizeof(dir));
		if ((slash = strrchr(dir, '/')) == NULL)
			strcpy(dir, ".");
		else if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (access(dir, W_OK | X_OK) != 0) {
			snprintf(err, errlen, "directory %s is not "
			    "writable: %s", dir, strerror(errno));
			return -1;
		}
		*version = 0;
		return 0;
	}
	if ((db.h = db.drv->open(cfg, 0, err, errlen)) == NULL)
		return -1;
	v = store_db_version(&db, err, errlen);
	db.drv->close(db.h);
	if (v < 0)
		return -1;
	*version = v;
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "the database's schema is version %d, newer "
		    "than this voxrelay knows (%d)", v, STORE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* records */

enum ctype { C_TEXT, C_INT, C_DBL, C_JSON, C_USAGE };

/* The columns of calls a "call" record may set, by its JSON key. */
static const struct ccol {
	const char	*key, *col;
	enum ctype	 type;
} call_cols[] = {
	{ "direction",		"direction",		C_TEXT },
	{ "from",		"from_number",		C_TEXT },
	{ "to",			"to_number",		C_TEXT },
	{ "line",		"line",			C_TEXT },
	{ "persona",		"persona",		C_TEXT },
	{ "personas",		"personas",		C_JSON },
	{ "app",		"app",			C_TEXT },
	{ "status",		"status",		C_TEXT },
	{ "started_at",		"started_at",		C_INT },
	{ "answered_at",	"answered_at",		C_INT },
	{ "ended_at",		"ended_at",		C_INT },
	{ "duration_ms",	"duration_ms",		C_INT },
	{ "billed_s",		"billed_s",		C_INT },
	{ "end_reason",		"end_reason",		C_TEXT },
	{ "failure_class",	"failure_class",	C_TEXT },
	{ "host",		"host",			C_TEXT },
	{ "worker",		"worker",		C_INT },
	{ "answered_by",	"answered_by",		C_TEXT },
	{ "transferred_to",	"transferred_to",	C_TEXT },
	{ "transfer_s",		"transfer_s",		C_INT },
	{ "transfer_status",	"transfer_status",	C_TEXT },
	{ "rollovers",		"rollovers",		C_INT },
	{ "input_text_tokens",	"input_text_tokens",	C_USAGE },
	{ "input_audio_tokens",	"input_audio_tokens",	C_USAGE },
	{ "input_cached_tokens", "input_cached_tokens",	C_USAGE },
	{ "output_text_tokens",	"output_text_tokens",	C_USAGE },
	{ "output_audio_tokens", "output_audio_tokens",	C_USAGE },
	{ "cost_usd",		"cost_usd",		C_DBL },
};
#define NCALLCOLS ARRAY_LEN(call_cols)

static const char *const statuses[] = {
	"queued", "ringing", "in-progress", "completed", "busy", "no-answer",
	"failed", "canceled",
};
/* A final status is not replaced by a live one arriving late. */
#define TERMINAL "('completed', 'busy', 'no-answer', 'failed', 'canceled')"
#define STATUS_RULE(excl)						\
	"CASE WHEN calls.status IN " TERMINAL " AND " excl " NOT IN "	\
	TERMINAL " THEN calls.status ELSE COALESCE(" excl ", calls.status) END"

static char call_upsert_sql[4096];
static pthread_once_t call_upsert_once = PTHREAD_ONCE_INIT;

/* INSERT INTO calls (call_sid, <cols>, updated_at) VALUES ($1..) ON
 * CONFLICT DO UPDATE: a key the record leaves out keeps its value. */
static void
call_upsert_build(void)
{
	char *p = call_upsert_sql, *end = p + sizeof(call_upsert_sql);
	size_t i;

	p += snprintf(p, (size_t)(end - p), "INSERT INTO calls (call_sid");
	for (i = 0; i < NCALLCOLS; i++)
		p += snprintf(p, (size_t)(end - p), ", %s", call_cols[i].col);
	p += snprintf(p, (size_t)(end - p), ", updated_at) VALUES ($1");
	for (i = 0; i <= NCALLCOLS; i++)
		p += snprintf(p, (size_t)(end - p), ", $%zu", i + 2);
	p += snprintf(p, (size_t)(end - p), ") ON CONFLICT (call_sid) DO UPDATE "
	    "SET updated_at = excluded.updated_at");
	for (i = 0; i < NCALLCOLS; i++) {
		const char *c = call_cols[i].col;

		if (strcmp(c, "status") == 0)
			p += snprintf(p, (size_t)(end - p), ", status = "
			    STATUS_RULE("excluded.status"));
		else if (strcmp(c, "started_at") == 0)
			/* the webhook's admission and the stream's opening
			 * both say when the call started: the earlier wins */
			p += snprintf(p, (size_t)(end - p), ", started_at = "
			    "CASE WHEN calls.started_at IS NULL OR "
			    "excluded.started_at < calls.started_at THEN "
			    "excluded.started_at ELSE calls.started_at END");
		else
			p += snprintf(p, (size_t)(end - p),
			    ", %s = COALESCE(excluded.%s, calls.%s)", c, c, c);
	}
}

static int
is_status(const char *s)
{
	for (size_t i = 0; i < ARRAY_LEN(statuses); i++)
		if (strcmp(s, statuses[i]) == 0)
			return 1;
	return 0;
}

static int
opt_type(const json_t *rec, const char *key, json_type type)
{
	const json_t *v = json_object_get(rec, key);

	return v == NULL || json_is_null(v) || json_typeof(v) == type ||
	    (type == JSON_REAL && json_is_integer(v));
}

static int
sid_ok(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= 64;
}

const char *
store_record_check(const json_t *rec)
{
	const char *type = json_string_value(json_object_get(rec, "type"));

	if (!json_is_object(rec) || type == NULL)
		return "not an object with a \"type\"";
	if (strcmp(type, "minutes") == 0) {
		if (!json_is_string(json_object_get(rec, "phone")) ||
		    !sid_ok(json_object_get(rec, "call_sid")) ||
		    !json_is_integer(json_object_get(rec, "used_ms")))
			return "minutes: needs phone, call_sid and used_ms";
		return NULL;
	}
	if (strcmp(type, "token") == 0) {
		if (!json_is_string(json_object_get(rec, "token")) ||
		    !json_is_integer(json_object_get(rec, "at")) ||
		    !json_is_integer(json_object_get(rec, "expires_at")))
			return "token: needs token, at and expires_at";
		return NULL;
	}
	if (strcmp(type, "contact") == 0) {
		const char *st = json_string_value(json_object_get(rec, "state"));
		if (!sid_ok(json_object_get(rec, "campaign")) ||
		    !sid_ok(json_object_get(rec, "phone")) || st == NULL ||
		    !json_is_integer(json_object_get(rec, "attempts")) ||
		    !opt_type(rec, "outcome", JSON_STRING) ||
		    !opt_type(rec, "retry_at", JSON_INTEGER) ||
		    !opt_type(rec, "call_sid", JSON_STRING) ||
		    !opt_type(rec, "detail", JSON_OBJECT))
			return "contact: needs campaign, phone, state and attempts";
		if (strcmp(st, "pending") != 0 && strcmp(st, "calling") != 0 &&
		    strcmp(st, "retry") != 0 && strcmp(st, "done") != 0 &&
		    strcmp(st, "exhausted") != 0)
			return "contact: unknown state";
		return NULL;
	}
	if (strcmp(type, "campaign") == 0) {
		if (!sid_ok(json_object_get(rec, "id")) ||
		    !json_is_boolean(json_object_get(rec, "paused")))
			return "campaign: needs id and paused";
		return NULL;
	}
	if (strcmp(type, "do_not_call") == 0) {
		if (!sid_ok(json_object_get(rec, "phone")) ||
		    !json_is_integer(json_object_get(rec, "at")) ||
		    !opt_type(rec, "campaign", JSON_STRING) ||
		    !opt_type(rec, "call_sid", JSON_STRING))
			return "do_not_call: needs phone and at";
		return NULL;
	}
	if (!sid_ok(json_object_get(rec, "call_sid")))
		return "call_sid missing, empty or longer than 64";
	if (strcmp(type, "call") == 0) {
		const json_t *st = json_object_get(rec, "status");
		const json_t *u = json_object_get(rec, "usage");

		for (size_t i = 0; i < NCALLCOLS; i++) {
			const struct ccol *c = &call_cols[i];
			int ok = 1;

			switch (c->type) {
			case C_TEXT:
				ok = opt_type(rec, c->key, JSON_STRING);
				break;
			case C_INT:
				ok = opt_type(rec, c->key, JSON_INTEGER);
				break;
			case C_DBL:
				ok = opt_type(rec, c->key, JSON_REAL);
				break;
			case C_JSON:
				ok = opt_type(rec, c->key, JSON_ARRAY) ||
				    opt_type(rec, c->key, JSON_STRING);
				break;
			case C_USAGE:
				ok = u == NULL || (json_is_object(u) &&
				    opt_type(u, c->key, JSON_INTEGER));
				break;
			}
			if (!ok)
				return "call: a field has the wrong type";
		}
		if (st != NULL && !json_is_null(st) &&
		    !is_status(json_string_value(st)))
			return "call: unknown status";
		return NULL;
	}
	if (strcmp(type, "status") == 0) {
		const char *s = json_string_value(json_object_get(rec, "status"));
		if (s == NULL || !is_status(s) ||
		    !json_is_integer(json_object_get(rec, "at")))
			return "status: needs a known status and at";
		return NULL;
	}
	if (strcmp(type, "utterance") == 0) {
		const char *role = json_string_value(json_object_get(rec, "role"));
		if (!json_is_integer(json_object_get(rec, "seq")) ||
		    !json_is_integer(json_object_get(rec, "at")) ||
		    !json_is_string(json_object_get(rec, "text")) || role == NULL ||
		    (strcmp(role, "caller") != 0 && strcmp(role, "assistant") != 0) ||
		    !opt_type(rec, "interrupted_at_ms", JSON_INTEGER))
			return "utterance: needs seq, at, role (caller or "
			    "assistant) and text";
		return NULL;
	}
	if (strcmp(type, "tool") == 0) {
		if (!json_is_integer(json_object_get(rec, "seq")) ||
		    !json_is_string(json_object_get(rec, "name")) ||
		    !opt_type(rec, "at", JSON_INTEGER) ||
		    !opt_type(rec, "outcome", JSON_STRING) ||
		    !opt_type(rec, "latency_ms", JSON_INTEGER))
			return "tool: needs seq and name";
		return NULL;
	}
	return "unknown type";
}

/* A parameter from a JSON value: NULL for absent or null. */
static struct store_param
param_of(const json_t *v, enum ctype t, char **tofree)
{
	struct store_param p = { .type = SP_NULL };

	if (v == NULL || json_is_null(v))
		return p;
	switch (t) {
	case C_TEXT:
		p.type = SP_TEXT;
		p.s = json_string_value(v);
		break;
	case C_INT:
	case C_USAGE:
		p.type = SP_INT;
		p.i = (long long)json_integer_value(v);
		break;
	case C_DBL:
		p.type = SP_DBL;
		p.d = json_number_value(v);
		break;
	case C_JSON:
		if (json_is_string(v)) {
			p.type = SP_TEXT;
			p.s = json_string_value(v);
		} else if ((*tofree = json_dumps(v, JSON_COMPACT)) != NULL) {
			p.type = SP_TEXT;
			p.s = *tofree;
		}
		break;
	}
	return p;
}

#define PTEXT(v)	((struct store_param){ .type = SP_TEXT, .s = (v) })
#define PINT(v)		((struct store_param){ .type = SP_INT, .i = (long long)(v) })
#define PNULL		((struct store_param){ .type = SP_NULL })

static int
apply_call(struct store_db *db, const json_t *rec, char *err, size_t errlen)
{
	struct store_param p[NCALLCOLS + 2];
	char *tofree = NULL;
	const json_t *u = json_object_get(rec, "usage");
	int rc;

	pthread_once(&call_upsert_once, call_upsert_build);
	p[0] = PTEXT(json_string_value(json_object_get(rec, "call_sid")));
	for (size_t i = 0; i < NCALLCOLS; i++) {
		const struct ccol *c = &call_cols[i];
		const json_t *v = c->type == C_USAGE ?
		    json_object_get(u, c->key) : json_object_get(rec, c->key);

		p[i + 1] = param_of(v, c->type, &tofree);
	}
	p[NCALLCOLS + 1] = PINT(wall_ms());
	rc = run(db, call_upsert_sql, p, (int)NCALLCOLS + 2, NULL, err, errlen);
	free(tofree);
	return rc;
}

static int
apply_status(struct store_db *db, const json_t *rec, char *err, size_t errlen)
{
	struct store_param p[3] = {
		PTEXT(json_string_value(json_object_get(rec, "call_sid"))),
		PTEXT(json_string_value(json_object_get(rec, "status"))),
		PINT(json_integer_value(json_object_get(rec, "at"))),
	};
	int rc;

	rc = run(db, "INSERT INTO call_status (call_sid, status, at) "
	    "VALUES ($1, $2, $3) ON CONFLICT (call_sid, status) DO NOTHING",
	    p, 3, NULL, err, errlen);
	if (rc != STORE_OK)
		return rc;
	/* a status seen before the call's own record starts the row, with
	 * its time as the start until that record says otherwise */
	return run(db, "INSERT INTO calls (call_sid, status, started_at, "
	    "updated_at) VALUES ($1, $2, $3, $3) ON CONFLICT (call_sid) DO "
	    "UPDATE SET status = " STATUS_RULE("excluded.status") ", "
	    "updated_at = excluded.updated_at", p, 3, NULL, err, errlen);
}

static int
apply_utterance(struct store_db *db, const json_t *rec, char *err,
    size_t errlen)
{
	const json_t *ia = json_object_get(rec, "interrupted_at_ms");
	struct store_param p[7] = {
		PTEXT(json_string_value(json_object_get(rec, "call_sid"))),
		PINT(json_integer_value(json_object_get(rec, "seq"))),
		PINT(json_integer_value(json_object_get(rec, "at"))),
		PTEXT(json_string_value(json_object_get(rec, "role"))),
		PTEXT(json_string_value(json_object_get(rec, "text"))),
		PINT(json_is_true(json_object_get(rec, "interrupted")) ||
		    json_is_integer(ia)),
		json_is_integer(ia) ? PINT(json_integer_value(ia)) : PNULL,
	};

	return run(db, "INSERT INTO utterances (call_sid, seq, at, role, text, "
	    "interrupted, interrupted_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) "
	    "ON CONFLICT (call_sid, seq) DO UPDATE SET at = excluded.at, "
	    "role = excluded.role, text = excluded.text, "
	    "interrupted = excluded.interrupted, "
	    "interrupted_at_ms = excluded.interrupted_at_ms",
	    p, 7, NULL, err, errlen);
}

static int
apply_tool(struct store_db *db, const json_t *rec, char *err, size_t errlen)
{
	char *tofree = NULL;
	const json_t *args = json_object_get(rec, "arguments");
	struct store_param p[7] = {
		PTEXT(json_string_value(json_object_get(rec, "call_sid"))),
		PINT(json_integer_value(json_object_get(rec, "seq"))),
		param_of(json_object_get(rec, "at"), C_INT, NULL),
		PTEXT(json_string_value(json_object_get(rec, "name"))),
		param_of(json_object_get(rec, "outcome"), C_TEXT, NULL),
		param_of(json_object_get(rec, "latency_ms"), C_INT, NULL),
		param_of(args, C_JSON, &tofree),
	};
	int rc;

	rc = run(db, "INSERT INTO tool_calls (call_sid, seq, at, name, outcome, "
	    "latency_ms, arguments) VALUES ($1, $2, $3, $4, $5, $6, $7) "
	    "ON CONFLICT (call_sid, seq) DO UPDATE SET at = excluded.at, "
	    "name = excluded.name, outcome = excluded.outcome, "
	    "latency_ms = excluded.latency_ms, arguments = excluded.arguments",
	    p, 7, NULL, err, errlen);
	free(tofree);
	return rc;
}

/* A call's minutes only grow: the larger of two reports wins, so one
 * replayed or sent twice is not counted twice. */
static int
apply_minutes(struct store_db *db, const json_t *rec, char *err, size_t errlen)
{
	const json_t *at = json_object_get(rec, "at");
	struct store_param p[5] = {
		PTEXT(json_string_value(json_object_get(rec, "phone"))),
		PTEXT(json_string_value(json_object_get(rec, "call_sid"))),
		PINT(json_integer_value(json_object_get(rec, "used_ms"))),
		param_of(json_object_get(rec, "host"), C_TEXT, NULL),
		PINT(json_is_integer(at) ? (uint64_t)json_integer_value(at) :
		    wall_ms()),
	};

	return run(db, "INSERT INTO caller_minutes (phone, call_sid, used_ms, "
	    "host, updated_at) VALUES ($1, $2, $3, $4, $5) "
	    "ON CONFLICT (phone, call_sid) DO UPDATE SET used_ms = CASE WHEN "
	    "excluded.used_ms > caller_minutes.used_ms THEN excluded.used_ms "
	    "ELSE caller_minutes.used_ms END, updated_at = excluded.updated_at",
	    p, 5, NULL, err, errlen);
}

static int
apply_token(struct store_db *db, const json_t *rec, char *err, size_t errlen)
{
	struct store_param p[4] = {
		PTEXT(json_string_value(json_object_get(rec, "token"))),
		param_of(json_object_get(rec, "host"), C_TEXT, NULL),
		PINT(json_integer_value(json_object_get(rec, "at"))),
		PINT(json_integer_value(json_object_get(rec, "expires_at"))),
	};

	return run(db, "INSERT INTO used_tokens (token, host, used_at, "
	    "expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (token) DO NOTHING",
	    p, 4, NULL, err, errlen);
}

/* A contact's whole state: the master sends all of it each time, so the
 * last record written is the state. */
static int
apply_contact(struct store_db *db, const json_t *rec, char *err, size_t errlen)
{
	char *tofree = NULL;
	const json_t *at = json_object_get(rec, "at");
	struct store_param p[9] = {
		PTEXT(json_string_value(json_object_get(rec, "campaign"))),
		PTEXT(json_string_value(json_object_get(rec, "phone"))),
		PTEXT(json_string_value(json_object_get(rec, "state"))),
		PINT(json_integer_value(json_object_get(rec, "attempts"))),
		param_of(json_object_get(rec, "outcome"), C_TEXT, NULL),
		param_of(json_object_get(rec, "retry_at"), C_INT, NULL),
		param_of(json_object_get(rec, "call_sid"), C_TEXT, NULL),
		param_of(json_object_get(rec, "detail"), C_JSON, &tofree),
		PINT(json_is_integer(at) ? (uint64_t)json_integer_value(at) :
		    wall_ms()),
	};
	int rc;

	rc = run(db, "INSERT INTO campaign_contacts (campaign, phone, state, "
	    "attempts, outcome, retry_at, call_sid, detail, updated_at) VALUES "
	    "($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (campaign, phone) "
	    "DO UPDATE SET state = excluded.state, attempts = excluded.attempts, "
	    "outcome = excluded.outcome, retry_at = excluded.retry_at, "
	    "call_sid = excluded.call_sid, detail = excluded.detail, "
	    "updated_at = excluded.updated_at", p, 9, NULL, err, errlen);
	free(tofree);
	return rc;
}

static int
apply_campaign(struct store_db *db, const json_t *rec, char *err,
    size_t errlen)
{
	struct store_param p[3] = {
		PTEXT(json_string_value(json_object_get(rec, "id"))),
		PINT(json_is_true(json_object_get(rec, "paused"))),
		PINT(wall_ms()),
	};

	return run(db, "INSERT INTO campaigns (id, paused, updated_at) VALUES "
	    "($1, $2, $3) ON CONFLICT (id) DO UPDATE SET paused = "
	    "excluded.paused, updated_at = excluded.updated_at", p, 3, NULL, err,
	    errlen);
}

static int
apply_dnc(struct store_db *db, const json_t *rec, char *err, size_t errlen)
{
	struct store_param p[4] = {
		PTEXT(json_string_value(json_object_get(rec, "phone"))),
		PINT(json_integer_value(json_object_get(rec, "at"))),
		param_of(json_object_get(rec, "campaign"), C_TEXT, NULL),
		param_of(json_object_get(rec, "call_sid"), C_TEXT, NULL),
	};

	/* the first request stands */
	return run(db, "INSERT INTO do_not_call (phone, at, campaign, call_sid) "
	    "VALUES ($1, $2, $3, $4) ON CONFLICT (phone) DO NOTHING", p, 4, NULL,
	    err, errlen);
}

static int
apply_one(struct store_db *db, const json_t *rec, char *err, size_t errlen)
{
	const char *why = store_record_check(rec), *type;

	if (why != NULL) {
		snprintf(err, errlen, "record refused: %s", why);
		return STORE_EDATA;
	}
	type = json_string_value(json_object_get(rec, "type"));
	if (strcmp(type, "call") == 0)
		return apply_call(db, rec, err, errlen);
	if (strcmp(type, "status") == 0)
		return apply_status(db, rec, err, errlen);
	if (strcmp(type, "utterance") == 0)
		return apply_utterance(db, rec, err, errlen);
	if (strcmp(type, "tool") == 0)
		return apply_tool(db, rec, err, errlen);
	if (strcmp(type, "minutes") == 0)
		return apply_minutes(db, rec, err, errlen);
	if (strcmp(type, "contact") == 0)
		return apply_contact(db, rec, err, errlen);
	if (strcmp(type, "campaign") == 0)
		return apply_campaign(db, rec, err, errlen);
	if (strcmp(type, "do_not_call") == 0)
		return apply_dnc(db, rec, err, errlen);
	return apply_token(db, rec, err, errlen);
}

int
store_db_apply(struct store_db *db, json_t *records, char *err, size_t errlen)
{
	size_t i;
	json_t *rec;
	int rc;

	if ((rc = run(db, db->drv->begin_sql, NULL, 0, NULL, err, errlen)) !=
	    STORE_OK)
		return rc;
	json_array_foreach(records, i, rec)
		if ((rc = apply_one(db, rec, err, errlen)) != STORE_OK) {
			rollback(db);
			return rc;
		}
	if ((rc = run(db, "COMMIT", NULL, 0, NULL, err, errlen)) != STORE_OK)
		rollback(db);
	return rc;
}

int
store_db_apply_each(struct store_db *db, json_t *records, unsigned *rejected,
    char *err, size_t errlen)
{
	size_t i;
	json_t *rec;

	json_array_foreach(records, i, rec) {
		json_t *one = json_array();
		int rc;

		json_array_append(one, rec);
		rc = store_db_apply(db, one, err, errlen);
		json_decref(one);
		if (rc == STORE_EDOWN)
			return rc;
		if (rc == STORE_EDATA)
			(*rejected)++;
	}
	return STORE_OK;
}

/* ---------------------------------------------------------------- */
/* queries */

static json_t *
iso_or_null(const json_t *ms)
{
	char buf[32];

	if (!json_is_integer(ms))
		return json_null();
	iso8601_utc((uint64_t)json_integer_value(ms), buf, sizeof(buf));
	return json_string(buf);
}

static long long
num_int(const json_t *row, const char *key)
{
	const json_t *v = json_object_get(row, key);

	if (json_is_integer(v))
		return (long long)json_integer_value(v);
	if (json_is_real(v))
		return llround(json_real_value(v));
	return 0;
}

static double
num_dbl(const json_t *row, const char *key)
{
	return json_number_value(json_object_get(row, key));
}

/* A row of calls as the API shows it. */
static json_t *
call_json(const json_t *row)
{
	json_t *o = json_object(), *usage = json_object(), *v;
	const char *ps;

	json_object_set(o, "call_sid", json_object_get(row, "call_sid"));
	json_object_set(o, "direction", json_object_get(row, "direction"));
	json_object_set(o, "from", json_object_get(row, "from_number"));
	json_object_set(o, "to", json_object_get(row, "to_number"));
	json_object_set(o, "line", json_object_get(row, "line"));
	json_object_set(o, "persona", json_object_get(row, "persona"));
	ps = json_string_value(json_object_get(row, "personas"));
	/* a JSON array as written from a record's array; a plain name
	 * from a record's string */
	v = ps ? json_loads(ps, 0, NULL) : NULL;
	if (v == NULL && ps != NULL)
		v = json_pack("[s]", ps);
	json_object_set_new(o, "personas", v ? v : json_array());
	json_object_set(o, "app", json_object_get(row, "app"));
	json_object_set(o, "status", json_object_get(row, "status"));
	json_object_set_new(o, "started_at",
	    iso_or_null(json_object_get(row, "started_at")));
	json_object_set_new(o, "answered_at",
	    iso_or_null(json_object_get(row, "answered_at")));
	json_object_set_new(o, "ended_at",
	    iso_or_null(json_object_get(row, "ended_at")));
	v = json_object_get(row, "duration_ms");
	json_object_set_new(o, "duration_s", json_is_integer(v) ?
	    json_real((double)json_integer_value(v) / 1000.0) : json_null());
	/* the stream's seconds, and a transfer's dialled leg after it
	 * (Twilio's DialCallDuration, from the <Dial action>) */
	v = json_object_get(row, "billed_s");
	if (json_is_integer(v) && json_is_integer(json_object_get(row,
	    "transfer_s")))
		json_object_set_new(o, "billed_s", json_integer(
		    json_integer_value(v) + json_integer_value(json_object_get(row,
		    "transfer_s"))));
	else
		json_object_set(o, "billed_s", v);
	json_object_set(o, "end_reason", json_object_get(row, "end_reason"));
	json_object_set(o, "failure_class", json_object_get(row, "failure_class"));
	json_object_set(o, "host", json_object_get(row, "host"));
	json_object_set(o, "worker", json_object_get(row, "worker"));
	json_object_set(o, "answered_by", json_object_get(row, "answered_by"));
	json_object_set(o, "transferred_to",
	    json_object_get(row, "transferred_to"));
	json_object_set(o, "transfer_s", json_object_get(row, "transfer_s"));
	json_object_set(o, "transfer_status",
	    json_object_get(row, "transfer_status"));
	v = json_object_get(row, "rollovers");
	json_object_set_new(o, "rollovers", json_integer(json_is_integer(v) ?
	    json_integer_value(v) : 0));
	for (size_t i = 0; i < NCALLCOLS; i++)
		if (call_cols[i].type == C_USAGE)
			json_object_set_new(usage, call_cols[i].key,
			    json_integer(num_int(row, call_cols[i].col)));
	json_object_set_new(o, "usage", usage);
	v = json_object_get(row, "cost_usd");
	json_object_set_new(o, "cost_usd", json_is_number(v) ?
	    json_real(json_number_value(v)) : json_null());
	/* a null from json_object_get() is not stored: put it back */
	for (const char *const *k = (const char *const[]){ "call_sid",
	    "direction", "from", "to", "line", "persona", "app", "status",
	    "billed_s", "end_reason", "failure_class", "host", "worker",
	    "answered_by", "transferred_to", "transfer_s", "transfer_status",
	    NULL }; *k != NULL; k++)
		if (json_object_get(o, *k) == NULL)
			json_object_set_new(o, *k, json_null());
	return o;
}

json_t *
store_db_history(struct store_db *db, const struct store_filter *f,
    char *err, size_t errlen)
{
	struct store_param p[9];
	char where[512], sql[1024];
	json_t *rows = NULL, *cnt = NULL, *out, *calls;
	size_t at = 0, i;
	int np = 0;
	long limit = f->limit > 0 ? f->limit : 50, offset = f->offset > 0 ?
	    f->offset : 0;

	/* one page is at most STORE_PAGE_MAX calls, whatever was asked */
	if (limit > STORE_PAGE_MAX)
		limit = STORE_PAGE_MAX;
	static const struct { size_t off; const char *col; } eq[] = {
		{ offsetof(struct store_filter, from), "from_number" },
		{ offsetof(struct store_filter, to), "to_number" },
		{ offsetof(struct store_filter, line), "line" },
		{ offsetof(struct store_filter, status), "status" },
		{ offsetof(struct store_filter, direction), "direction" },
	};

	at += (size_t)snprintf(where, sizeof(where), "WHERE 1 = 1");
	for (i = 0; i < ARRAY_LEN(eq); i++) {
		const char *v = *(const char *const *)((const char *)f + eq[i].off);

		if (v == NULL || v[0] == '\0')
			continue;
		p[np++] = PTEXT(v);
		at += (size_t)snprintf(where + at, sizeof(where) - at,
		    " AND %s = $%d", eq[i].col, np);
	}
	if (f->since) {
		p[np++] = PINT(f->since);
		at += (size_t)snprintf(where + at, sizeof(where) - at,
		    " AND started_at >= $%d", np);
	}
	if (f->until) {
		p[np++] = PINT(f->until);
		at += (size_t)snprintf(where + at, sizeof(where) - at,
		    " AND started_at < $%d", np);
	}
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) AS n FROM calls %s", where);
	if (run(db, sql, p, np, &cnt, err, errlen) != STORE_OK)
		return NULL;
	p[np] = PINT(limit);
	p[np + 1] = PINT(offset);
	snprintf(sql, sizeof(sql), "SELECT * FROM calls %s ORDER BY started_at "
	    "DESC NULLS LAST, call_sid DESC LIMIT $%d OFFSET $%d", where, np + 1,
	    np + 2);
	if (run(db, sql, p, np + 2, &rows, err, errlen) != STORE_OK) {
		json_decref(cnt);
		return NULL;
	}
	calls = json_array();
	for (i = 0; i < json_array_size(rows); i++)
		json_array_append_new(calls, call_json(json_array_get(rows, i)));
	out = json_pack("{s:o, s:I, s:I, s:I}", "calls", calls, "total",
	    (json_int_t)num_int(json_array_get(cnt, 0), "n"), "limit",
	    (json_int_t)limit, "offset", (json_int_t)offset);
	json_decref(rows);
	json_decref(cnt);
	return out;
}

json_t *
store_db_call(struct store_db *db, const char *call_sid, char *err,
    size_t errlen)
{
	struct store_param p = PTEXT(call_sid);
	json_t *rows = NULL, *hist = NULL, *tools = NULL, *o, *a;
	size_t i;

	err[0] = '\0';
	if (run(db, "SELECT * FROM calls WHERE call_sid = $1", &p, 1, &rows,
	    err, errlen) != STORE_OK)
		return NULL;
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return NULL;
	}
	if (run(db, "SELECT status, at FROM call_status WHERE call_sid = $1 "
	    "ORDER BY at, status", &p, 1, &hist, err, errlen) != STORE_OK ||
	    run(db, "SELECT seq, at, name, outcome, latency_ms, arguments FROM "
	    "tool_calls WHERE call_sid = $1 ORDER BY seq", &p, 1, &tools, err,
	    errlen) != STORE_OK) {
		json_decref(rows);
		json_decref(hist);
		return NULL;
	}
	o = call_json(json_array_get(rows, 0));
	a = json_array();
	for (i = 0; i < json_array_size(hist); i++) {
		json_t *h = json_array_get(hist, i);
		json_array_append_new(a, json_pack("{s:O, s:o}", "status",
		    json_object_get(h, "status"), "at",
		    iso_or_null(json_object_get(h, "at"))));
	}
	json_object_set_new(o, "status_history", a);
	a = json_array();
	for (i = 0; i < json_array_size(tools); i++) {
		json_t *t = json_array_get(tools, i), *args;
		const char *as = json_string_value(json_object_get(t, "arguments"));

		args = as ? json_loads(as, JSON_DECODE_ANY, NULL) : NULL;
		if (args == NULL && as != NULL)
			args = json_string(as);
		json_array_append_new(a, json_pack("{s:I, s:o, s:O, s:O, s:O, s:o}",
		    "seq", (json_int_t)num_int(t, "seq"),
		    "at", iso_or_null(json_object_get(t, "at")),
		    "name", json_object_get(t, "name"),
		    "outcome", json_object_get(t, "outcome"),
		    "latency_ms", json_object_get(t, "latency_ms"),
		    "arguments", args ? args : json_null()));
	}
	json_object_set_new(o, "tool_calls", a);
	json_decref(rows);
	json_decref(hist);
	json_decref(tools);
	return o;
}

json_t *
store_db_conversation(struct store_db *db, const char *call_sid, char *err,
    size_t errlen)
{
	struct store_param p = PTEXT(call_sid);
	json_t *rows = NULL, *known = NULL, *a;
	size_t i;

	err[0] = '\0';
	if (run(db, "SELECT COUNT(*) AS n FROM calls WHERE call_sid = $1", &p, 1,
	    &known, err, errlen) != STORE_OK)
		return NULL;
	if (num_int(json_array_get(known, 0), "n") == 0) {
		json_decref(known);
		return NULL;
	}
	json_decref(known);
	if (run(db, "SELECT seq, at, role, text, interrupted, interrupted_at_ms "
	    "FROM utterances WHERE call_sid = $1 ORDER BY seq", &p, 1, &rows,
	    err, errlen) != STORE_OK)
		return NULL;
	a = json_array();
	for (i = 0; i < json_array_size(rows); i++) {
		json_t *u = json_array_get(rows, i);

		json_array_append_new(a, json_pack("{s:I, s:o, s:O, s:O, s:b, s:O}",
		    "seq", (json_int_t)num_int(u, "seq"),
		    "at", iso_or_null(json_object_get(u, "at")),
		    "role", json_object_get(u, "role"),
		    "text", json_object_get(u, "text"),
		    "interrupted", num_int(u, "interrupted") != 0,
		    "interrupted_at_ms", json_object_get(u, "interrupted_at_ms")));
	}
	json_decref(rows);
	return json_pack("{s:s, s:o}", "call_sid", call_sid, "utterances", a);
}

/* rows of (k, n) as {"k": n, ...}; a NULL key shows as "". */
static json_t *
counts_by(const json_t *rows)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < json_array_size(rows); i++) {
		const json_t *r = json_array_get(rows, i);
		const char *k = json_string_value(json_object_get(r, "k"));

		json_object_set_new(o, k ? k : "", json_integer(num_int(r, "n")));
	}
	return o;
}

json_t *
store_db_analytics(struct store_db *db, uint64_t since, uint64_t until,
    uint64_t now, char *err, size_t errlen)
{
	struct store_param p[3];
	char where[128], sql[1024];
	json_t *tot = NULL, *bs = NULL, *bl = NULL, *bd = NULL, *p90 = NULL,
	    *roles = NULL, *hours = NULL, *out = NULL, *usage, *per_hour,
	    *dist = NULL, *hist;
	static const int dur_bounds[] = { 30, 60, 120, 300, 600, 0 };
	int np = 0, rc = -1;
	long long total, completed, ndur;
	uint64_t h0;
	size_t i;

	snprintf(where, sizeof(where), "WHERE 1 = 1");
	if (since) {
		p[np++] = PINT(since);
		snprintf(where + strlen(where), sizeof(where) - strlen(where),
		    " AND started_at >= $%d", np);
	}
	if (until) {
		p[np++] = PINT(until);
		snprintf(where + strlen(where), sizeof(where) - strlen(where),
		    " AND started_at < $%d", np);
	}
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) AS n, "
	    "COUNT(duration_ms) AS ndur, "
	    "CAST(AVG(duration_ms) AS DOUBLE PRECISION) AS avg_ms, "
	    "CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT) AS sum_ms, "
	    "CAST(COALESCE(SUM(input_text_tokens), 0) AS BIGINT) AS input_text_tokens, "
	    "CAST(COALESCE(SUM(input_audio_tokens), 0) AS BIGINT) AS input_audio_tokens, "
	    "CAST(COALESCE(SUM(input_cached_tokens), 0) AS BIGINT) AS input_cached_tokens, "
	    "CAST(COALESCE(SUM(output_text_tokens), 0) AS BIGINT) AS output_text_tokens, "
	    "CAST(COALESCE(SUM(output_audio_tokens), 0) AS BIGINT) AS output_audio_tokens, "
	    "CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost "
	    "FROM calls %s", where);
	if (run(db, sql, p, np, &tot, err, errlen) != STORE_OK)
		goto done;
	snprintf(sql, sizeof(sql), "SELECT status AS k, COUNT(*) AS n FROM calls "
	    "%s GROUP BY status", where);
	if (run(db, sql, p, np, &bs, err, errlen) != STORE_OK)
		goto done;
	snprintf(sql, sizeof(sql), "SELECT line AS k, COUNT(*) AS n FROM calls "
	    "%s GROUP BY line", where);
	if (run(db, sql, p, np, &bl, err, errlen) != STORE_OK)
		goto done;
	snprintf(sql, sizeof(sql), "SELECT direction AS k, COUNT(*) AS n FROM "
	    "calls %s GROUP BY direction", where);
	if (run(db, sql, p, np, &bd, err, errlen) != STORE_OK)
		goto done;
	/* p90 by nearest rank: the ceil(0.9 n)-th shortest */
	ndur = num_int(json_array_get(tot, 0), "ndur");
	if (ndur > 0) {
		p[np] = PINT((ndur * 9 + 9) / 10 - 1);
		snprintf(sql, sizeof(sql), "SELECT duration_ms AS d FROM calls %s "
		    "AND duration_ms IS NOT NULL ORDER BY duration_ms LIMIT 1 "
		    "OFFSET $%d", where, np + 1);
		if (run(db, sql, p, np + 1, &p90, err, errlen) != STORE_OK)
			goto done;
	}
	snprintf(sql, sizeof(sql), "SELECT u.role AS k, COUNT(*) AS n FROM "
	    "utterances u JOIN calls ON calls.call_sid = u.call_sid %s "
	    "GROUP BY u.role", where);
	if (run(db, sql, p, np, &roles, err, errlen) != STORE_OK)
		goto done;
	/* the duration distribution, for a chart: buckets by their upper
	 * bound (dur_bounds), the last open */
	snprintf(sql, sizeof(sql), "SELECT CASE WHEN duration_ms < 30000 THEN 0 "
	    "WHEN duration_ms < 60000 THEN 1 WHEN duration_ms < 120000 THEN 2 "
	    "WHEN duration_ms < 300000 THEN 3 WHEN duration_ms < 600000 THEN 4 "
	    "ELSE 5 END AS b, COUNT(*) AS n FROM calls %s AND duration_ms IS "
	    "NOT NULL GROUP BY 1", where);
	if (run(db, sql, p, np, &dist, err, errlen) != STORE_OK)
		goto done;
	h0 = (now / HOUR_MS - 23) * HOUR_MS;
	{
		struct store_param hp[2] = { PINT(h0), PINT(now) };
		if (run(db, "SELECT started_at / 3600000 AS h, status AS k, "
		    "COUNT(*) AS n FROM calls WHERE started_at >= $1 AND "
		    "started_at <= $2 GROUP BY started_at / 3600000, status",
		    hp, 2, &hours, err, errlen) != STORE_OK)
			goto done;
	}

	{
		json_t *t = json_array_get(tot, 0), *bsj = counts_by(bs),
		    *rl = counts_by(roles);
		char iso[32];

		total = num_int(t, "n");
		completed = json_integer_value(json_object_get(bsj, "completed"));
		usage = json_object();
		for (i = 0; i < NCALLCOLS; i++)
			if (call_cols[i].type == C_USAGE)
				json_object_set_new(usage, call_cols[i].key,
				    json_integer(num_int(t, call_cols[i].col)));
		per_hour = json_array();
		for (i = 0; i < 24; i++) {
			json_t *b = json_object(), *st = json_object();
			long long n = 0;

			iso8601_utc(h0 + i * HOUR_MS, iso, sizeof(iso));
			for (size_t j = 0; j < json_array_size(hours); j++) {
				json_t *r = json_array_get(hours, j);
				const char *k = json_string_value(
				    json_object_get(r, "k"));

				if ((uint64_t)num_int(r, "h") != h0 / HOUR_MS + i)
					continue;
				n += num_int(r, "n");
				json_object_set_new(st, k ? k : "",
				    json_integer(num_int(r, "n")));
			}
			json_object_set_new(b, "hour", json_string(iso));
			json_object_set_new(b, "total", json_integer(n));
			json_object_set_new(b, "by_status", st);
			json_array_append_new(per_hour, b);
		}
		out = json_pack("{s:I, s:f, s:o, s:o, s:o, s:o, s:o, s:f, s:o, "
		    "s:I, s:I, s:o, s:f}",
		    "total_calls", (json_int_t)total,
		    "success_rate", total ? (double)completed / (double)total : 0.0,
		    "avg_duration_s", ndur ? json_real(num_dbl(t, "avg_ms") /
		    1000.0) : json_null(),
		    "p90_duration_s", ndur ? json_real((double)num_int(
		    json_array_get(p90, 0), "d") / 1000.0) : json_null(),
		    "by_status", bsj,
		    "by_line", counts_by(bl),
		    "by_direction", counts_by(bd),
		    "minutes", (double)num_int(t, "sum_ms") / 60000.0,
		    "per_hour", per_hour,
		    "ai_responses", (json_int_t)json_integer_value(
		    json_object_get(rl, "assistant")),
		    "caller_inputs", (json_int_t)json_integer_value(
		    json_object_get(rl, "caller")),
		    "usage", usage,
		    "cost_usd", num_dbl(t, "cost"));
		json_decref(rl);
		hist = json_array();
		for (i = 0; i < ARRAY_LEN(dur_bounds); i++) {
			long long n = 0;

			for (size_t j = 0; j < json_array_size(dist); j++)
				if (num_int(json_array_get(dist, j), "b") ==
				    (long long)i)
					n = num_int(json_array_get(dist, j), "n");
			json_array_append_new(hist, json_pack("{s:o, s:I}",
			    "up_to_s", dur_bounds[i] ? json_integer(
			    dur_bounds[i]) : json_null(), "calls", (json_int_t)n));
		}
		json_object_set_new(out, "duration_histogram", hist);
	}
	rc = 0;
done:
	json_decref(tot);
	json_decref(bs);
	json_decref(bl);
	json_decref(bd);
	json_decref(p90);
	json_decref(roles);
	json_decref(hours);
	json_decref(dist);
	return rc == 0 ? out : NULL;
}

long
store_db_purge(struct store_db *db, uint64_t before, uint64_t now, char *err,
    size_t errlen)
{
	static const char *const del[] = {
		"DELETE FROM utterances WHERE call_sid IN (SELECT call_sid FROM "
		    "calls WHERE started_at < $1)",
		"DELETE FROM tool_calls WHERE call_sid IN (SELECT call_sid FROM "
		    "calls WHERE started_at < $1)",
		"DELETE FROM call_status WHERE call_sid IN (SELECT call_sid FROM "
		    "calls WHERE started_at < $1)",
		"DELETE FROM calls WHERE started_at < $1",
	};
	struct store_param p[2] = { PINT(before), PINT(now) };
	json_t *cnt = NULL;
	long n;

	if (run(db, db->drv->begin_sql, NULL, 0, NULL, err, errlen) != STORE_OK)
		return -1;
	if (run(db, "SELECT COUNT(*) AS n FROM calls WHERE started_at < $1", p,
	    1, &cnt, err, errlen) != STORE_OK)
		goto fail;
	n = (long)num_int(json_array_get(cnt, 0), "n");
	json_decref(cnt);
	for (size_t i = 0; i < ARRAY_LEN(del); i++)
		if (run(db, del[i], p, 1, NULL, err, errlen) != STORE_OK)
			goto fail;
	if (run(db, "DELETE FROM used_tokens WHERE expires_at < $1", p + 1, 1,
	    NULL, err, errlen) != STORE_OK)
		goto fail;
	if (run(db, "COMMIT", NULL, 0, NULL, err, errlen) != STORE_OK)
		goto fail;
	return n;
fail:
	rollback(db);
	return -1;
}

long long
store_db_caller_used_ms(struct store_db *db, const char *phone, char *err,
    size_t errlen)
{
	struct store_param p = PTEXT(phone);
	json_t *rows;
	long long n;

	if (run(db, "SELECT CAST(COALESCE(SUM(used_ms), 0) AS BIGINT) AS n FROM "
	    "caller_minutes WHERE phone = $1", &p, 1, &rows, err, errlen) !=
	    STORE_OK)
		return -1;
	n = num_int(json_array_get(rows, 0), "n");
	json_decref(rows);
	return n;
}

json_t *
store_db_campaign_state(struct store_db *db, char *err, size_t errlen)
{
	json_t *contacts = NULL, *camps = NULL, *dnc = NULL;

	/* a contact left calling is decided by its call's record */
	if (run(db, "SELECT cc.campaign, cc.phone, cc.state, cc.attempts, "
	    "cc.outcome, cc.retry_at, cc.call_sid, cc.detail, cc.updated_at, "
	    "calls.status AS call_status, calls.answered_by AS answered_by "
	    "FROM campaign_contacts cc LEFT JOIN calls ON calls.call_sid = "
	    "cc.call_sid", NULL, 0, &contacts, err, errlen) != STORE_OK ||
	    run(db, "SELECT id, paused FROM campaigns", NULL, 0, &camps, err,
	    errlen) != STORE_OK ||
	    run(db, "SELECT phone FROM do_not_call", NULL, 0, &dnc, err,
	    errlen) != STORE_OK) {
		json_decref(contacts);
		json_decref(camps);
		return NULL;
	}
	return json_pack("{s:o,s:o,s:o}", "contacts", contacts, "campaigns",
	    camps, "do_not_call", dnc);
}

json_t *
store_db_campaign_contacts(struct store_db *db, const char *campaign,
    char *err, size_t errlen)
{
	struct store_param p = PTEXT(campaign);
	json_t *rows;

	if (run(db, "SELECT cc.campaign, cc.phone, cc.state, cc.attempts, "
	    "cc.outcome, cc.retry_at, cc.call_sid, cc.detail, cc.updated_at, "
	    "calls.status AS call_status, calls.answered_by AS answered_by "
	    "FROM campaign_contacts cc LEFT JOIN calls ON calls.call_sid = "
	    "cc.call_sid WHERE cc.campaign = $1", &p, 1, &rows, err, errlen) !=
	    STORE_OK)
		return NULL;
	return rows;
}

int
store_ident_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > STORE_IDENT_MAX || isdigit((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

static void
str_cat(char *buf, const char *s, size_t len)
{
	size_t o = strlen(buf);

	if (o < len)
		vr_strlcpy(buf + o, s, len - o);
}

/* "name" with any '"' doubled, appended to buf: an identifier quoted,
 * so that it is never read as SQL whatever it holds. */
static void
ident_cat(char *buf, size_t len, const char *name)
{
	size_t o = strlen(buf);

	if (o + 1 < len)
		buf[o++] = '"';
	for (; *name != '\0' && o + 2 < len; name++) {
		if (*name == '"')
			buf[o++] = '"';
		buf[o++] = *name;
	}
	if (o + 1 < len)
		buf[o++] = '"';
	buf[o] = '\0';
}

/* schema.table quoted, or table alone (found on the search_path). */
static int
table_name(char *buf, size_t len, const char *schema, const char *table,
    char *err, size_t errlen)
{
	if ((schema != NULL && schema[0] != '\0' && !store_ident_valid(schema)) ||
	    !store_ident_valid(table)) {
		snprintf(err, errlen, "not an SQL identifier");
		return -1;
	}
	buf[0] = '\0';
	if (schema != NULL && schema[0] != '\0') {
		ident_cat(buf, len, schema);
		str_cat(buf, ".", len);
	}
	ident_cat(buf, len, table);
	return 0;
}

json_t *
store_db_table_columns(struct store_db *db, const char *schema,
    const char *table, char *err, size_t errlen)
{
	char name[2 * STORE_IDENT_MAX + 8];
	struct store_param p;
	json_t *rows, *cols, *row;
	size_t i;

	if (db->drv->backend != STORE_PG) {
		snprintf(err, errlen, "a contacts table needs DATABASE_URL "
		    "(PostgreSQL)");
		return NULL;
	}
	if (table_name(name, sizeof(name), schema, table, err, errlen) != 0)
		return NULL;
	p = PTEXT(name);
	if (run(db, "SELECT to_regclass($1) IS NOT NULL AS found", &p, 1,
	    &rows, err, errlen) != STORE_OK)
		return NULL;
	if (!json_is_true(json_object_get(json_array_get(rows, 0), "found"))) {
		json_decref(rows);
		snprintf(err, errlen, "no such table");
		return NULL;
	}
	json_decref(rows);
	if (run(db, "SELECT attname AS name FROM pg_catalog.pg_attribute "
	    "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT "
	    "attisdropped ORDER BY attnum", &p, 1, &rows, err, errlen) !=
	    STORE_OK)
		return NULL;
	cols = json_array();
	json_array_foreach(rows, i, row)
		json_array_append(cols, json_object_get(row, "name"));
	json_decref(rows);
	return cols;
}

json_t *
store_db_table_rows(struct store_db *db, const char *schema,
    const char *table, const json_t *cols, const char *order, long max,
    char *err, size_t errlen)
{
	char name[2 * STORE_IDENT_MAX + 8], *sql;
	size_t len, i;
	json_t *v, *rows;

	if (db->drv->backend != STORE_PG) {
		snprintf(err, errlen, "a contacts table needs DATABASE_URL "
		    "(PostgreSQL)");
		return NULL;
	}
	if (table_name(name, sizeof(name), schema, table, err, errlen) != 0)
		return NULL;
	len = 128 + strlen(name) + 2 * STORE_IDENT_MAX +
	    json_array_size(cols) * (4 * STORE_IDENT_MAX + 32);
	if ((sql = malloc(len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* every column as text, whatever its type */
	vr_strlcpy(sql, "SELECT ", len);
	json_array_foreach(cols, i, v) {
		const char *c = json_string_value(v);

		if (c == NULL || strlen(c) > STORE_IDENT_MAX) {
			free(sql);
			snprintf(err, errlen, "a column's name is too long");
			return NULL;
		}
		if (i > 0)
			str_cat(sql, ", ", len);
		str_cat(sql, "CAST(", len);
		ident_cat(sql, len, c);
		str_cat(sql, " AS TEXT) AS ", len);
		ident_cat(sql, len, c);
	}
	str_cat(sql, " FROM ", len);
	str_cat(sql, name, len);
	if (order != NULL) {
		str_cat(sql, " ORDER BY ", len);
		ident_cat(sql, len, order);
	}
	snprintf(sql + strlen(sql), len - strlen(sql), " LIMIT %ld", max);
	if (run(db, sql, NULL, 0, &rows, err, errlen) != STORE_OK)
		rows = NULL;
	free(sql);
	return rows;
}

json_t *
store_db_outbound_open(struct store_db *db, const char *host, int limit,
    char *err, size_t errlen)
{
	struct store_param p[2] = { PTEXT(host), PINT(limit) };
	json_t *rows;

	/* a call this host placed whose final status never came; one with
	 * no host yet was never answered (no worker's record) */
	if (run(db, "SELECT call_sid, line, status FROM calls WHERE "
	    "direction = 'outbound-api' AND (status IS NULL OR status NOT IN "
	    TERMINAL ") AND (host IS NULL OR host = $1) ORDER BY started_at "
	    "DESC LIMIT $2", p, 2, &rows, err, errlen) != STORE_OK)
		return NULL;
	return rows;
}

json_t *
store_db_contact(struct store_db *db, const char *campaign, const char *phone,
    char *err, size_t errlen)
{
	struct store_param p[2] = { PTEXT(campaign), PTEXT(phone) };
	json_t *rows, *row;

	if (run(db, "SELECT state, attempts FROM campaign_contacts WHERE "
	    "campaign = $1 AND phone = $2", p, 2, &rows, err, errlen) !=
	    STORE_OK)
		return NULL;
	row = json_incref(json_array_get(rows, 0));
	json_decref(rows);
	if (row == NULL)
		row = json_object();
	return row;
}

int
store_db_caller_minutes(struct store_db *db, const char *phone,
    const char *host, long long *mine, long long *others, char *err,
    size_t errlen)
{
	struct store_param p[2] = { PTEXT(phone), PTEXT(host) };
	json_t *rows, *r;

	/* a row with no host is somebody else's */
	if (run(db, "SELECT CAST(COALESCE(SUM(CASE WHEN host = $2 THEN used_ms "
	    "ELSE 0 END), 0) AS BIGINT) AS mine, CAST(COALESCE(SUM(CASE WHEN "
	    "host = $2 THEN 0 ELSE used_ms END), 0) AS BIGINT) AS others FROM "
	    "caller_minutes WHERE phone = $1", p, 2, &rows, err, errlen) !=
	    STORE_OK)
		return -1;
	r = json_array_get(rows, 0);
	*mine = num_int(r, "mine");
	*others = num_int(r, "others");
	json_decref(rows);
	return 0;
}

/*
 * Several callers' ms in one SELECT, split as in store_db_caller_minutes:
 * the master re-reads every caller with a call live on this host at once,
 * not one question per caller.  n <= STORE_CALLERS_MAX.
 */
json_t *
store_db_callers_minutes(struct store_db *db, const char *const *phones,
    size_t n, const char *host, char *err, size_t errlen)
{
	struct store_param p[STORE_CALLERS_MAX + 1];
	char sql[512 + STORE_CALLERS_MAX * 8];
	json_t *rows;
	size_t len;

	if (n == 0 || n > STORE_CALLERS_MAX) {
		snprintf(err, errlen, "%zu callers asked at once", n);
		return NULL;
	}
	p[0] = PTEXT(host);
	len = (size_t)snprintf(sql, sizeof(sql), "SELECT phone, "
	    "CAST(COALESCE(SUM(CASE WHEN host = $1 THEN used_ms ELSE 0 END), 0) "
	    "AS BIGINT) AS mine, CAST(COALESCE(SUM(CASE WHEN host = $1 THEN 0 "
	    "ELSE used_ms END), 0) AS BIGINT) AS others FROM caller_minutes "
	    "WHERE phone IN (");
	for (size_t i = 0; i < n; i++) {
		p[i + 1] = PTEXT(phones[i]);
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s$%zu",
		    i ? ", " : "", i + 2);
	}
	snprintf(sql + len, sizeof(sql) - len, ") GROUP BY phone");
	if (run(db, sql, p, (int)n + 1, &rows, err, errlen) != STORE_OK)
		return NULL;
	return rows;
}

int
store_db_token_host(struct store_db *db, const char *token, char *host,
    size_t hostlen, char *err, size_t errlen)
{
	struct store_param p = PTEXT(token);
	json_t *rows;
	const char *h;
	int n;

	if (run(db, "SELECT host FROM used_tokens WHERE token = $1", &p, 1,
	    &rows, err, errlen) != STORE_OK)
		return -1;
	n = json_array_size(rows) > 0;
	h = json_string_value(json_object_get(json_array_get(rows, 0), "host"));
	snprintf(host, hostlen, "%s", h ? h : "");
	json_decref(rows);
	return n;
}

int
store_db_token_claim(struct store_db *db, const char *token, const char *host,
    uint64_t now, uint64_t expires, char *err, size_t errlen)
{
	struct store_param p[4] = { PTEXT(token),
	    host ? PTEXT(host) : PNULL, PINT(now), PINT(expires) };
	json_t *rows;
	int n;

	/* RETURNING gives a row only when this insert made it */
	if (run(db, "INSERT INTO used_tokens (token, host, used_at, expires_at) "
	    "VALUES ($1, $2, $3, $4) ON CONFLICT (token) DO NOTHING "
	    "RETURNING token", p, 4, &rows, err, errlen) != STORE_OK)
		return -1;
	n = json_array_size(rows) > 0;
	json_decref(rows);
	return n;
}

/*
 * One page of the export: up to limit calls started in [since, until) (0:
 * open) after the cursor (started_at, call_sid), oldest first, each with
 * its utterances, as NDJSON text built here, on the store thread, so the
 * loop only copies it out.
 */
json_t *
store_db_export(struct store_db *db, uint64_t since, uint64_t until,
    long long after_at, const char *after_sid, long limit, char *err,
    size_t errlen)
{
	struct store_param p[5];
	json_t *rows = NULL, *out = NULL, *last = NULL;
	char sql[512], *text = NULL;
	size_t len = 0, cap = 0, i;
	int np = 0;

	p[np++] = PINT(after_at);
	p[np++] = PTEXT(after_sid);
	p[np++] = PINT(since);
	p[np++] = PINT(until ? until : (uint64_t)INT64_MAX);
	p[np++] = PINT(limit);
	snprintf(sql, sizeof(sql), "SELECT * FROM calls WHERE "
	    "(COALESCE(started_at, 0) > $1 OR (COALESCE(started_at, 0) = $1 "
	    "AND call_sid > $2)) AND COALESCE(started_at, 0) >= $3 AND "
	    "COALESCE(started_at, 0) < $4 ORDER BY COALESCE(started_at, 0), "
	    "call_sid LIMIT $5");
	if (run(db, sql, p, np, &rows, err, errlen) != STORE_OK)
		return NULL;
	for (i = 0; i < json_array_size(rows); i++) {
		json_t *row = json_array_get(rows, i), *o, *conv;
		const char *sid = json_string_value(json_object_get(row,
		    "call_sid"));
		char *line;
		size_t n;

		if ((conv = store_db_conversation(db, sid, err, errlen)) == NULL) {
			if (err[0] == '\0')	/* purged meanwhile */
				continue;
			goto fail;
		}
		o = call_json(row);
		json_object_set(o, "utterances", json_object_get(conv,
		    "utterances"));
		json_decref(conv);
		line = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (line == NULL)
			goto oom;
		n = strlen(line);
		if (len + n + 2 > cap) {
			size_t ncap = (len + n + 2) * 2;
			char *t = realloc(text, ncap);

			if (t == NULL) {
				free(line);
				goto oom;
			}
			text = t;
			cap = ncap;
		}
		memcpy(text + len, line, n);
		text[len + n] = '\n';
		len += n + 1;
		free(line);
		last = row;
	}
	out = json_object();
	json_object_set_new(out, "text", json_stringn(text ? text : "", len));
	json_object_set_new(out, "n", json_integer((json_int_t)
	    json_array_size(rows)));
	if (last != NULL) {
		json_object_set_new(out, "after_at", json_integer(
		    (json_int_t)num_int(last, "started_at")));
		json_object_set(out, "after_sid", json_object_get(last,
		    "call_sid"));
	}
	free(text);
	json_decref(rows);
	return out;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	free(text);
	json_decref(rows);
	return NULL;
}
