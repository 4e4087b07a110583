/*
 * test_store.c — the call-record store (daemon/store*.c).
 *
 * By default every test runs on SQLite in a file of the test's scratch
 * directory.  With VR_TEST_DATABASE_URL set (test/store/pg.sh sets it, to
 * a server it started) the same tests run on PostgreSQL, each on an
 * emptied schema; VR_TEST_PG_STOP and VR_TEST_PG_START are the commands
 * that stop and start that server for the outage test.
 */
#include "test/unit/test.h"
#include "daemon/store.h"
#include "daemon/store_drv.h"
#include "daemon/common/util.h"

#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static struct store_cfg cfg;
static char db_path[512], journal_path[512];

static int
on_pg(void)
{
	const char *u = getenv("VR_TEST_DATABASE_URL");
	return u != NULL && u[0] != '\0';
}

static const struct store_drv *
drv(void)
{
	return on_pg() ? &store_drv_pg : &store_drv_sqlite;
}

/* Run SQL on a connection of our own, outside the store. */
static void
raw(const char *sql)
{
	char err[512];
	void *h = drv()->open(&cfg, 1, err, sizeof(err));

	if (h == NULL)
		TEST_FAIL_("open: %s", err);
	if (drv()->exec(h, sql, NULL, 0, NULL, err, sizeof(err)) != STORE_OK)
		TEST_FAIL_("%s: %s", sql, err);
	drv()->close(h);
}

static long long
count(const char *sql)
{
	char err[512];
	json_t *rows;
	long long n;
	void *h = drv()->open(&cfg, 1, err, sizeof(err));

	if (h == NULL)
		TEST_FAIL_("open: %s", err);
	if (drv()->exec(h, sql, NULL, 0, &rows, err, sizeof(err)) != STORE_OK)
		TEST_FAIL_("%s: %s", sql, err);
	n = json_integer_value(json_object_get(json_array_get(rows, 0), "n"));
	json_decref(rows);
	drv()->close(h);
	return n;
}

/* A fresh, empty database for this test. */
static void
fresh(void)
{
	snprintf(db_path, sizeof(db_path), "%s/store.db", test_tmpdir());
	snprintf(journal_path, sizeof(journal_path), "%s/journal.ndjson",
	    test_tmpdir());
	memset(&cfg, 0, sizeof(cfg));
	cfg.path = db_path;
	cfg.journal = journal_path;
	cfg.url = on_pg() ? getenv("VR_TEST_DATABASE_URL") : "";
	cfg.host = "test-host";
	cfg.retry_ms = 200;
	cfg.busy_ms = 200;
	if (on_pg())
		raw("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public");
}

static struct store_db *
open_db(void)
{
	char err[512];
	struct store_db *db = store_db_open(&cfg, 0, err, sizeof(err));

	if (db == NULL)
		TEST_FAIL_("store_db_open: %s", err);
	return db;
}

static void
apply(struct store_db *db, json_t *recs)
{
	char err[512];
	int rc = store_db_apply(db, recs, err, sizeof(err));

	if (rc != STORE_OK)
		TEST_FAIL_("store_db_apply: %d %s", rc, err);
	json_decref(recs);
}

#define T0	1767225600000LL		/* 2026-01-01T00:00:00Z */

static json_t *
call_rec(const char *sid, const char *from, const char *line,
    const char *status, const char *dir, long long started, long long dur_ms)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, "
	    "s:s, s:i, s:{s:i, s:i}, s:f}",
	    "type", "call", "call_sid", sid, "from", from, "to", "+15550000000",
	    "line", line, "status", status, "direction", dir,
	    "started_at", (json_int_t)started,
	    "ended_at", (json_int_t)(started + dur_ms),
	    "duration_ms", (json_int_t)dur_ms, "host", "h1", "worker", 1,
	    "usage", "input_audio_tokens", 100, "output_audio_tokens", 50,
	    "cost_usd", 0.25);
}

static json_t *
utt(const char *sid, int seq, const char *role, const char *text)
{
	return json_pack("{s:s, s:s, s:i, s:I, s:s, s:s}", "type", "utterance",
	    "call_sid", sid, "seq", seq, "at", (json_int_t)(T0 + seq * 1000),
	    "role", role, "text", text);
}

/* ---------------------------------------------------------------- */

TEST(store_schema_created_at_current_version)
{
	char err[512];
	struct store_db *db;

	fresh();
	db = open_db();
	ASSERT_EQ(store_db_version(db, err, sizeof(err)), STORE_SCHEMA_VERSION);
	store_db_close(db);
	/* opening again migrates nothing and keeps one version row */
	db = open_db();
	ASSERT_EQ(store_db_version(db, err, sizeof(err)), STORE_SCHEMA_VERSION);
	store_db_close(db);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM schema_version"), 1);
	/* every table the records need is there */
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM calls"), 0);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM call_status"), 0);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM utterances"), 0);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM tool_calls"), 0);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM caller_minutes"), 0);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM used_tokens"), 0);
	if (!on_pg())
		ASSERT_EQ(count("SELECT COUNT(*) AS n FROM pragma_journal_mode "
		    "WHERE journal_mode = 'wal'"), 1);
}

TEST(store_migrates_from_version_1)
{
	char err[512];
	struct store_db *db;
	json_t *h, *c;

	fresh();
	db = store_db_open(&cfg, 1, err, sizeof(err));
	ASSERT_NOT_NULL(db);
	ASSERT_EQ(store_db_version(db, err, sizeof(err)), 1);
	store_db_close(db);
	/* what a version-1 daemon wrote */
	raw("INSERT INTO calls (call_sid, from_number, status, started_at, "
	    "duration_ms) VALUES ('CAold', '+15551112222', 'completed', "
	    "1767225600000, 42000)");
	raw("INSERT INTO utterances (call_sid, seq, at, role, text) VALUES "
	    "('CAold', 0, 1767225600000, 'caller', 'hello from v1')");

	db = open_db();
	ASSERT_EQ(store_db_version(db, err, sizeof(err)), STORE_SCHEMA_VERSION);
	h = store_db_history(db, &(struct store_filter){ .limit = 10 }, err,
	    sizeof(err));
	ASSERT_NOT_NULL(h);
	ASSERT_EQ(json_integer_value(json_object_get(h, "total")), 1);
	c = json_array_get(json_object_get(h, "calls"), 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "call_sid")), "CAold");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "started_at")),
	    "2026-01-01T00:00:00Z");
	json_decref(h);
	/* the columns version 2 added take writes */
	apply(db, json_pack("[{s:s, s:s, s:{s:i}, s:f}]", "type", "call",
	    "call_sid", "CAold", "usage", "input_text_tokens", 7, "cost_usd", 1.5));
	c = store_db_call(db, "CAold", err, sizeof(err));
	ASSERT_NOT_NULL(c);
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(c, "usage"),
	    "input_text_tokens")), 7);
	ASSERT(json_real_value(json_object_get(c, "cost_usd")) == 1.5);
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "from")),
	    "+15551112222");
	json_decref(c);
	c = store_db_conversation(db, "CAold", err, sizeof(err));
	ASSERT_EQ(json_array_size(json_object_get(c, "utterances")), 1);
	json_decref(c);
	store_db_close(db);
}

TEST(store_migrates_from_version_2)
{
	char err[512];
	struct store_db *db;
	json_t *c;

	fresh();
	db = store_db_open(&cfg, 2, err, sizeof(err));
	ASSERT_NOT_NULL(db);
	ASSERT_EQ(store_db_version(db, err, sizeof(err)), 2);
	store_db_close(db);
	/* what a version-2 daemon wrote */
	raw("INSERT INTO calls (call_sid, status, started_at, to_number, "
	    "cost_usd) VALUES ('CAtwo', 'ringing', 1767225600000, "
	    "'+15550009999', 0.25)");

	db = open_db();
	ASSERT_EQ(store_db_version(db, err, sizeof(err)), STORE_SCHEMA_VERSION);
	c = store_db_call(db, "CAtwo", err, sizeof(err));
	ASSERT_NOT_NULL(c);
	ASSERT_EQ(json_integer_value(json_object_get(c, "rollovers")), 0);
	ASSERT(json_is_null(json_object_get(c, "transfer_s")));
	json_decref(c);
	/* the columns version 3 added take writes; a later start (the
	 * stream's) leaves the webhook's earlier one */
	apply(db, json_pack("[{s:s, s:s, s:i, s:s, s:i, s:s, s:I, s:s}]",
	    "type", "call", "call_sid", "CAtwo", "rollovers", 2,
	    "transferred_to", "+15557654321", "transfer_s", 95,
	    "transfer_status", "completed", "started_at",
	    (json_int_t)1767225601000LL, "status", "in-progress"));
	c = store_db_call(db, "CAtwo", err, sizeof(err));
	ASSERT_NOT_NULL(c);
	ASSERT_EQ(json_integer_value(json_object_get(c, "rollovers")), 2);
	ASSERT_EQ(json_integer_value(json_object_get(c, "transfer_s")), 95);
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "transferred_to")),
	    "+15557654321");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "transfer_status")),
	    "completed");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "to")),
	    "+15550009999");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "started_at")),
	    "2026-01-01T00:00:00Z");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "status")),
	    "in-progress");
	json_decref(c);
	/* an earlier start does replace a later one */
	apply(db, json_pack("[{s:s, s:s, s:I}]", "type", "call", "call_sid",
	    "CAtwo", "started_at", (json_int_t)1767225599000LL));
	c = store_db_call(db, "CAtwo", err, sizeof(err));
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "started_at")),
	    "2025-12-31T23:59:59Z");
	json_decref(c);
	store_db_close(db);
}

TEST(store_migrates_from_version_3_campaigns)
{
	char err[512];
	struct store_db *db;
	json_t *st, *row;

	fresh();
	db = store_db_open(&cfg, 3, err, sizeof(err));
	ASSERT_NOT_NULL(db);
	ASSERT_EQ(store_db_version(db, err, sizeof(err)), 3);
	store_db_close(db);
	raw("INSERT INTO calls (call_sid, status, answered_by, started_at) "
	    "VALUES ('CAcamp', 'busy', NULL, 1767225600000)");
	db = open_db();
	ASSERT_EQ(store_db_version(db, err, sizeof(err)), 4);
	/* a contact's whole state, written twice: the last one stands */
	apply(db, json_pack("[{s:s,s:s,s:s,s:s,s:i,s:s}, {s:s,s:s,s:s,s:s,"
	    "s:i,s:s,s:s,s:{s:f,s:s}}, {s:s,s:b,s:s}, {s:s,s:s,s:I,s:s}]",
	    "type", "contact", "campaign", "c1", "phone", "+15550100001",
	    "state", "calling", "attempts", 1, "call_sid", "CAother",
	    "type", "contact", "campaign", "c1", "phone", "+15550100001",
	    "state", "calling", "attempts", 2, "call_sid", "CAcamp",
	    "outcome", "arranged", "detail", "amount", 120.5, "date",
	    "2026-02-01",
	    "type", "campaign", "paused", 1, "id", "c1",
	    "type", "do_not_call", "phone", "+15550100002", "at",
	    (json_int_t)1767225600000LL, "campaign", "c1"));
	st = store_db_campaign_state(db, err, sizeof(err));
	ASSERT_NOT_NULL(st);
	ASSERT_EQ(json_array_size(json_object_get(st, "contacts")), 1);
	row = json_array_get(json_object_get(st, "contacts"), 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "state")), "calling");
	ASSERT_EQ(json_integer_value(json_object_get(row, "attempts")), 2);
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "outcome")),
	    "arranged");
	/* the call's record comes with it, to reconcile a restart */
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "call_status")),
	    "busy");
	ASSERT(strstr(json_string_value(json_object_get(row, "detail")),
	    "2026-02-01") != NULL);
	row = json_array_get(json_object_get(st, "campaigns"), 0);
	ASSERT_EQ(json_integer_value(json_object_get(row, "paused")), 1);
	row = json_array_get(json_object_get(st, "do_not_call"), 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "phone")),
	    "+15550100002");
	json_decref(st);
	row = store_db_contact(db, "c1", "+15550100001", err, sizeof(err));
	ASSERT_EQ(json_integer_value(json_object_get(row, "attempts")), 2);
	json_decref(row);
	row = store_db_contact(db, "c1", "+15550100009", err, sizeof(err));
	ASSERT_EQ(json_object_size(row), 0);
	json_decref(row);
	/* a contact in a state nobody knows is refused */
	ASSERT_NOT_NULL(store_record_check(json_pack("{s:s,s:s,s:s,s:s,s:i}",
	    "type", "contact", "campaign", "c1", "phone", "+1", "state",
	    "dialling", "attempts", 1)));
	store_db_close(db);
}

/* A campaign's contacts table: only identifiers are taken, quoted as
 * written; every column comes back as text, NULL as null, in the order
 * asked; SQLite has no such tables. */
TEST(store_contacts_table_read_as_text)
{
	char err[512];
	struct store_db *db;
	json_t *cols, *rows, *row;

	ASSERT(store_ident_valid("payers"));
	ASSERT(store_ident_valid("_Payers_2"));
	ASSERT(!store_ident_valid(""));
	ASSERT(!store_ident_valid(NULL));
	ASSERT(!store_ident_valid("2payers"));
	ASSERT(!store_ident_valid("payers; DROP TABLE calls"));
	ASSERT(!store_ident_valid("pay\"ers"));
	ASSERT(!store_ident_valid("a.b"));
	ASSERT(!store_ident_valid("a234567890123456789012345678901234567890"
	    "123456789012345678901234"));	/* 64 */
	fresh();
	db = open_db();
	if (!on_pg()) {
		ASSERT_NULL(store_db_table_columns(db, "", "payers", err,
		    sizeof(err)));
		ASSERT(strstr(err, "DATABASE_URL") != NULL);
		store_db_close(db);
		return;
	}
	raw("CREATE TABLE payers (id serial, phone_number text, name text, "
	    "timezone text, balance numeric, due date, \"Mixed\" int)");
	raw("INSERT INTO payers (phone_number, name, timezone, balance, due, "
	    "\"Mixed\") VALUES ('+15550100002', 'B', 'UTC', 12.50, "
	    "'2026-02-01', 7), ('+15550100001', 'A', 'UTC', NULL, NULL, NULL)");
	raw("CREATE SCHEMA billing; CREATE TABLE billing.payers "
	    "(phone_number text, name text, timezone text)");
	cols = store_db_table_columns(db, "", "payers", err, sizeof(err));
	ASSERT_NOT_NULL(cols);
	ASSERT_EQ(json_array_size(cols), 7);
	ASSERT_STR_EQ(json_string_value(json_array_get(cols, 0)), "id");
	ASSERT_STR_EQ(json_string_value(json_array_get(cols, 6)), "Mixed");
	rows = store_db_table_rows(db, "", "payers", cols, "phone_number", 10,
	    err, sizeof(err));
	ASSERT_NOT_NULL(rows);
	ASSERT_EQ(json_array_size(rows), 2);
	row = json_array_get(rows, 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "phone_number")),
	    "+15550100001");
	ASSERT(json_is_null(json_object_get(row, "balance")));
	row = json_array_get(rows, 1);
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "id")), "1");
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "balance")),
	    "12.50");
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "due")),
	    "2026-02-01");
	ASSERT_STR_EQ(json_string_value(json_object_get(row, "Mixed")), "7");
	json_decref(rows);
	/* max rows */
	rows = store_db_table_rows(db, "", "payers", cols, "phone_number", 1,
	    err, sizeof(err));
	ASSERT_EQ(json_array_size(rows), 1);
	json_decref(rows);
	json_decref(cols);
	/* a schema of its own; names are matched as written */
	cols = store_db_table_columns(db, "billing", "payers", err, sizeof(err));
	ASSERT_NOT_NULL(cols);
	ASSERT_EQ(json_array_size(cols), 3);
	json_decref(cols);
	ASSERT_NULL(store_db_table_columns(db, "", "Payers", err, sizeof(err)));
	ASSERT_STR_EQ(err, "no such table");
	ASSERT_NULL(store_db_table_columns(db, "nosuch", "payers", err,
	    sizeof(err)));
	ASSERT_STR_EQ(err, "no such table");
	ASSERT_NULL(store_db_table_columns(db, "", "payers\"; DROP TABLE "
	    "calls; --", err, sizeof(err)));
	ASSERT_STR_EQ(err, "not an SQL identifier");
	ASSERT(!store_db_broken(db));
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM calls"), 0);
	store_db_close(db);
}

TEST(store_newer_schema_refused)
{
	char err[512];
	int v;

	fresh();
	store_db_close(open_db());
	raw("UPDATE schema_version SET version = 99");
	ASSERT_NULL(store_db_open(&cfg, 0, err, sizeof(err)));
	ASSERT(strstr(err, "newer") != NULL);
	ASSERT_EQ(store_check(&cfg, &v, err, sizeof(err)), -1);
	ASSERT_EQ(v, 99);
	ASSERT(strstr(err, "version 99") != NULL);
}

TEST(store_check_reachable_and_known)
{
	char err[512];
	int v;

	fresh();
	/* empty: fine, created at start */
	ASSERT_EQ(store_check(&cfg, &v, err, sizeof(err)), 0);
	ASSERT_EQ(v, 0);
	store_db_close(open_db());
	ASSERT_EQ(store_check(&cfg, &v, err, sizeof(err)), 0);
	ASSERT_EQ(v, STORE_SCHEMA_VERSION);
	/* unreachable */
	if (on_pg())
		cfg.url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2";
	else
		cfg.path = "/nonexistent-dir/voxrelay.db";
	ASSERT_EQ(store_check(&cfg, &v, err, sizeof(err)), -1);
	ASSERT(err[0] != '\0');
}

TEST(store_record_check_refuses_bad_records)
{
	static const char *const bad[] = {
		"[]",
		"{\"type\": \"call\"}",
		"{\"type\": \"call\", \"call_sid\": \"\"}",
		"{\"type\": \"call\", \"call_sid\": \"CA1\", \"status\": \"done\"}",
		"{\"type\": \"call\", \"call_sid\": \"CA1\", \"started_at\": \"x\"}",
		"{\"type\": \"call\", \"call_sid\": \"CA1\", \"usage\": {\"input_text_tokens\": \"x\"}}",
		"{\"type\": \"status\", \"call_sid\": \"CA1\", \"status\": \"ringing\"}",
		"{\"type\": \"utterance\", \"call_sid\": \"CA1\", \"seq\": 1, \"at\": 1, \"role\": \"bot\", \"text\": \"x\"}",
		"{\"type\": \"tool\", \"call_sid\": \"CA1\", \"seq\": 1}",
		"{\"type\": \"minutes\", \"phone\": \"+1\", \"call_sid\": \"CA1\"}",
		"{\"type\": \"token\", \"token\": \"t\"}",
		"{\"type\": \"nonsense\", \"call_sid\": \"CA1\"}",
	};
	static const char *const good[] = {
		"{\"type\": \"call\", \"call_sid\": \"CA1\"}",
		"{\"type\": \"call\", \"call_sid\": \"CA1\", \"status\": \"no-answer\", \"cost_usd\": 1}",
		"{\"type\": \"status\", \"call_sid\": \"CA1\", \"status\": \"ringing\", \"at\": 5}",
		"{\"type\": \"utterance\", \"call_sid\": \"CA1\", \"seq\": 1, \"at\": 1, \"role\": \"assistant\", \"text\": \"x\"}",
		"{\"type\": \"tool\", \"call_sid\": \"CA1\", \"seq\": 1, \"name\": \"book\"}",
		"{\"type\": \"minutes\", \"phone\": \"+1\", \"call_sid\": \"CA1\", \"used_ms\": 5}",
		"{\"type\": \"token\", \"token\": \"t\", \"at\": 1, \"expires_at\": 2}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *r = json_loads(bad[i], 0, NULL);
		ASSERT_NOT_NULL(r);
		if (store_record_check(r) == NULL)
			TEST_FAIL_("accepted: %s", bad[i]);
		json_decref(r);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		json_t *r = json_loads(good[i], 0, NULL);
		const char *why = store_record_check(r);
		if (why != NULL)
			TEST_FAIL_("refused (%s): %s", why, good[i]);
		json_decref(r);
	}
}

/* One call's every kind of record, twice over: one row each. */
static json_t *
one_call_records(void)
{
	return json_pack("[o, {s:s, s:s, s:s, s:I}, {s:s, s:s, s:s, s:I}, o, o, "
	    "{s:s, s:s, s:i, s:I, s:s, s:s, s:i, s:{s:s}}, "
	    "{s:s, s:s, s:s, s:I}, {s:s, s:s, s:I, s:I}]",
	    call_rec("CA1", "+15551230001", "sales", "in-progress", "inbound",
	    T0, 0),
	    "type", "status", "call_sid", "CA1", "status", "ringing",
	    "at", (json_int_t)T0,
	    "type", "status", "call_sid", "CA1", "status", "in-progress",
	    "at", (json_int_t)(T0 + 2000),
	    utt("CA1", 0, "assistant", "Hello!"),
	    utt("CA1", 1, "caller", "Hi."),
	    "type", "tool", "call_sid", "CA1", "seq", 0, "at",
	    (json_int_t)(T0 + 3000), "name", "book", "outcome", "ok",
	    "latency_ms", 120, "arguments", "day", "monday",
	    "type", "minutes", "phone", "+15551230001", "call_sid", "CA1",
	    "used_ms", (json_int_t)60000,
	    "type", "token", "token", "tok-1", "at", (json_int_t)T0,
	    "expires_at", (json_int_t)(T0 + 120000));
}

TEST(store_writes_are_idempotent)
{
	char err[512];
	struct store_db *db;
	json_t *c;

	fresh();
	db = open_db();
	apply(db, one_call_records());
	apply(db, one_call_records());
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM calls"), 1);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM call_status"), 2);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM utterances"), 2);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM tool_calls"), 1);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM caller_minutes"), 1);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM used_tokens"), 1);
	ASSERT_EQ(store_db_caller_used_ms(db, "+15551230001", err, sizeof(err)),
	    60000);

	/* a partial record keeps what it leaves out; a final status is not
	 * undone by a live one that arrives late */
	apply(db, json_pack("[{s:s, s:s, s:s, s:s, s:I, s:I}, {s:s, s:s, s:s}, "
	    "{s:s, s:s, s:s, s:I}]",
	    "type", "call", "call_sid", "CA1", "status", "completed",
	    "end_reason", "caller hung up", "ended_at", (json_int_t)(T0 + 90000),
	    "duration_ms", (json_int_t)90000,
	    "type", "call", "call_sid", "CA1", "status", "in-progress",
	    "type", "status", "call_sid", "CA1", "status", "ringing",
	    "at", (json_int_t)(T0 + 99000)));
	c = store_db_call(db, "CA1", err, sizeof(err));
	ASSERT_NOT_NULL(c);
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "status")),
	    "completed");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "line")), "sales");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "end_reason")),
	    "caller hung up");
	ASSERT(json_real_value(json_object_get(c, "duration_s")) == 90.0);
	ASSERT_EQ(json_array_size(json_object_get(c, "status_history")), 2);
	json_decref(c);

	/* a call's minutes only grow; two calls of one caller add up */
	apply(db, json_pack("[{s:s, s:s, s:s, s:I}, {s:s, s:s, s:s, s:I}, "
	    "{s:s, s:s, s:s, s:I}]",
	    "type", "minutes", "phone", "+15551230001", "call_sid", "CA1",
	    "used_ms", (json_int_t)30000,
	    "type", "minutes", "phone", "+15551230001", "call_sid", "CA2",
	    "used_ms", (json_int_t)15000,
	    "type", "minutes", "phone", "+15551230001", "call_sid", "CA2",
	    "used_ms", (json_int_t)15000));
	ASSERT_EQ(store_db_caller_used_ms(db, "+15551230001", err, sizeof(err)),
	    75000);
	ASSERT_EQ(store_db_caller_used_ms(db, "+19999999999", err, sizeof(err)),
	    0);
	store_db_close(db);
}

TEST(store_refused_record_spares_its_batch)
{
	char err[512];
	unsigned rejected = 0;
	struct store_db *db;
	json_t *recs;

	fresh();
	db = open_db();
	recs = json_pack("[o, {s:s, s:s}, o]",
	    call_rec("CA1", "+1555", "a", "completed", "inbound", T0, 1000),
	    "type", "utterance", "call_sid", "CA1",
	    call_rec("CA2", "+1555", "a", "completed", "inbound", T0, 1000));
	ASSERT_EQ(store_db_apply(db, recs, err, sizeof(err)), STORE_EDATA);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM calls"), 0);
	ASSERT_EQ(store_db_apply_each(db, recs, &rejected, err, sizeof(err)),
	    STORE_OK);
	ASSERT_EQ(rejected, 1);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM calls"), 2);
	json_decref(recs);
	store_db_close(db);
}

TEST(store_token_claimed_once)
{
	char err[512];
	struct store_db *db;

	fresh();
	db = open_db();
	ASSERT_EQ(store_db_token_claim(db, "tok-a", "h1", T0, T0 + 1000, err,
	    sizeof(err)), 1);
	ASSERT_EQ(store_db_token_claim(db, "tok-a", "h2", T0, T0 + 1000, err,
	    sizeof(err)), 0);
	ASSERT_EQ(store_db_token_claim(db, "tok-b", "h2", T0, T0 + 1000, err,
	    sizeof(err)), 1);
	store_db_close(db);
}

/* The same split for many callers in one SELECT, as the master re-reads
 * the callers live on a host: a caller without rows has no row, and a
 * full batch of STORE_CALLERS_MAX takes its parameters. */
static void
callers_minutes(struct store_db *db)
{
	static char many[STORE_CALLERS_MAX][16];
	const char *phones[STORE_CALLERS_MAX + 1];
	char err[512];
	json_t *rows, *r;
	size_t i;
	int seen = 0;

	phones[0] = "+15550000002";
	phones[1] = "+19999999999";
	phones[2] = "+15550000001";
	rows = store_db_callers_minutes(db, phones, 3, "h2", err, sizeof(err));
	ASSERT(rows != NULL);
	ASSERT_EQ(json_array_size(rows), 2);
	json_array_foreach(rows, i, r) {
		const char *p = json_string_value(json_object_get(r, "phone"));

		ASSERT(p != NULL);
		if (strcmp(p, "+15550000001") == 0) {
			ASSERT_EQ(json_integer_value(json_object_get(r, "mine")),
			    15000);
			ASSERT_EQ(json_integer_value(json_object_get(r, "others")),
			    25000);
			seen |= 1;
		} else {
			ASSERT_STR_EQ(p, "+15550000002");
			ASSERT_EQ(json_integer_value(json_object_get(r, "mine")), 0);
			ASSERT_EQ(json_integer_value(json_object_get(r, "others")),
			    7000);
			seen |= 2;
		}
	}
	ASSERT_EQ(seen, 3);
	json_decref(rows);

	for (i = 0; i < STORE_CALLERS_MAX; i++) {
		snprintf(many[i], sizeof(many[i]), "+1555010%04zu", i);
		phones[i] = many[i];
	}
	phones[STORE_CALLERS_MAX - 1] = "+15550000001";
	rows = store_db_callers_minutes(db, phones, STORE_CALLERS_MAX, "h1",
	    err, sizeof(err));
	ASSERT(rows != NULL);
	ASSERT_EQ(json_array_size(rows), 1);
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(rows, 0),
	    "mine")), 20000);
	json_decref(rows);
	phones[STORE_CALLERS_MAX] = "+15550000002";
	ASSERT(store_db_callers_minutes(db, phones, STORE_CALLERS_MAX + 1, "h1",
	    err, sizeof(err)) == NULL);
	ASSERT(store_db_callers_minutes(db, phones, 0, "h1", err,
	    sizeof(err)) == NULL);
}

/* Who used a token, and a caller's minutes split by the host that
 * reported them: what a host asks at the door. */
TEST(store_token_host_and_minutes_by_host)
{
	char err[512], host[64];
	long long mine = -1, others = -1;
	struct store_db *db;

	fresh();
	db = open_db();
	ASSERT_EQ(store_db_token_claim(db, "tok-a", "h1", T0, T0 + 1000, err,
	    sizeof(err)), 1);
	ASSERT_EQ(store_db_token_host(db, "tok-a", host, sizeof(host), err,
	    sizeof(err)), 1);
	ASSERT_STR_EQ(host, "h1");
	ASSERT_EQ(store_db_token_host(db, "tok-z", host, sizeof(host), err,
	    sizeof(err)), 0);
	/* h1 reported 20 s (one call twice, growing), h2 15 s, nobody 5 s */
	apply(db, json_pack("[{s:s, s:s, s:s, s:I, s:s}, {s:s, s:s, s:s, s:I, "
	    "s:s}, {s:s, s:s, s:s, s:I, s:s}, {s:s, s:s, s:s, s:I}, "
	    "{s:s, s:s, s:s, s:I, s:s}]",
	    "type", "minutes", "phone", "+15550000001", "call_sid", "CA1",
	    "used_ms", (json_int_t)10000, "host", "h1",
	    "type", "minutes", "phone", "+15550000001", "call_sid", "CA1",
	    "used_ms", (json_int_t)20000, "host", "h1",
	    "type", "minutes", "phone", "+15550000001", "call_sid", "CA2",
	    "used_ms", (json_int_t)15000, "host", "h2",
	    "type", "minutes", "phone", "+15550000001", "call_sid", "CA3",
	    "used_ms", (json_int_t)5000,
	    "type", "minutes", "phone", "+15550000002", "call_sid", "CA4",
	    "used_ms", (json_int_t)7000, "host", "h1"));
	ASSERT_EQ(store_db_caller_minutes(db, "+15550000001", "h1", &mine,
	    &others, err, sizeof(err)), 0);
	ASSERT_EQ(mine, 20000);
	ASSERT_EQ(others, 20000);
	ASSERT_EQ(store_db_caller_minutes(db, "+15550000001", "h2", &mine,
	    &others, err, sizeof(err)), 0);
	ASSERT_EQ(mine, 15000);
	ASSERT_EQ(others, 25000);
	ASSERT_EQ(store_db_caller_minutes(db, "+19999999999", "h1", &mine,
	    &others, err, sizeof(err)), 0);
	ASSERT_EQ(mine, 0);
	ASSERT_EQ(others, 0);
	callers_minutes(db);
	store_db_close(db);
}

/* 30 calls: sid CA<i>, a minute apart, newest last; from alternates
 * between two callers, line between three, every fifth failed, every
 * seventh outbound. */
static void
seed_history(struct store_db *db)
{
	json_t *recs = json_array();

	for (int i = 0; i < 30; i++) {
		char sid[16];
		snprintf(sid, sizeof(sid), "CA%02d", i);
		json_array_append_new(recs, call_rec(sid,
		    i % 2 ? "+15550000001" : "+15550000002",
		    i % 3 == 0 ? "sales" : i % 3 == 1 ? "support" : "billing",
		    i % 5 == 0 ? "failed" : "completed",
		    i % 7 == 0 ? "outbound" : "inbound",
		    T0 + i * 60000LL, (i + 1) * 1000LL));
	}
	apply(db, recs);
}

static json_t *
history(struct store_db *db, struct store_filter f)
{
	char err[512];
	json_t *h = store_db_history(db, &f, err, sizeof(err));

	if (h == NULL)
		TEST_FAIL_("store_db_history: %s", err);
	return h;
}

static const char *
sid_at(json_t *h, size_t i)
{
	return json_string_value(json_object_get(json_array_get(
	    json_object_get(h, "calls"), i), "call_sid"));
}

static long long
total(json_t *h)
{
	return json_integer_value(json_object_get(h, "total"));
}

TEST(store_history_pages_and_filters)
{
	struct store_db *db;
	json_t *h;

	fresh();
	db = open_db();
	seed_history(db);

	h = history(db, (struct store_filter){ .limit = 10 });
	ASSERT_EQ(total(h), 30);
	ASSERT_EQ(json_array_size(json_object_get(h, "calls")), 10);
	ASSERT_STR_EQ(sid_at(h, 0), "CA29");	/* newest first */
	ASSERT_STR_EQ(sid_at(h, 9), "CA20");
	ASSERT_EQ(json_integer_value(json_object_get(h, "limit")), 10);
	json_decref(h);

	/* a page is capped, and says so */
	h = history(db, (struct store_filter){ .limit = 5000 });
	ASSERT_EQ(json_integer_value(json_object_get(h, "limit")),
	    STORE_PAGE_MAX);
	ASSERT_EQ(json_array_size(json_object_get(h, "calls")), 30);
	json_decref(h);

	h = history(db, (struct store_filter){ .limit = 10, .offset = 25 });
	ASSERT_EQ(json_array_size(json_object_get(h, "calls")), 5);
	ASSERT_STR_EQ(sid_at(h, 0), "CA04");
	ASSERT_EQ(json_integer_value(json_object_get(h, "offset")), 25);
	json_decref(h);

	h = history(db, (struct store_filter){ .from = "+15550000001",
	    .limit = 100 });
	ASSERT_EQ(total(h), 15);
	ASSERT_STR_EQ(sid_at(h, 0), "CA29");
	json_decref(h);
	h = history(db, (struct store_filter){ .to = "+15550000000",
	    .limit = 100 });
	ASSERT_EQ(total(h), 30);
	json_decref(h);
	h = history(db, (struct store_filter){ .to = "+15559999999",
	    .limit = 100 });
	ASSERT_EQ(total(h), 0);
	ASSERT_EQ(json_array_size(json_object_get(h, "calls")), 0);
	json_decref(h);
	h = history(db, (struct store_filter){ .line = "billing", .limit = 100 });
	ASSERT_EQ(total(h), 10);
	ASSERT_STR_EQ(sid_at(h, 0), "CA29");
	json_decref(h);
	h = history(db, (struct store_filter){ .status = "failed", .limit = 100 });
	ASSERT_EQ(total(h), 6);
	ASSERT_STR_EQ(sid_at(h, 0), "CA25");
	json_decref(h);
	h = history(db, (struct store_filter){ .direction = "outbound",
	    .limit = 100 });
	ASSERT_EQ(total(h), 5);		/* 0, 7, 14, 21, 28 */
	ASSERT_STR_EQ(sid_at(h, 0), "CA28");
	json_decref(h);
	/* [since, until): calls 10..19 */
	h = history(db, (struct store_filter){ .since = T0 + 10 * 60000ULL,
	    .until = T0 + 20 * 60000ULL, .limit = 100 });
	ASSERT_EQ(total(h), 10);
	ASSERT_STR_EQ(sid_at(h, 0), "CA19");
	ASSERT_STR_EQ(sid_at(h, 9), "CA10");
	json_decref(h);
	/* filters combine */
	h = history(db, (struct store_filter){ .line = "sales",
	    .status = "failed", .direction = "outbound", .limit = 100 });
	ASSERT_EQ(total(h), 1);		/* 0 */
	ASSERT_STR_EQ(sid_at(h, 0), "CA00");
	json_decref(h);
	store_db_close(db);
}

TEST(store_call_record_whole)
{
	char err[512];
	struct store_db *db;
	json_t *c, *hist, *tools, *t;

	fresh();
	db = open_db();
	apply(db, one_call_records());
	apply(db, json_pack("[{s:s, s:s, s:[s, s]}, {s:s, s:s, s:s}]",
	    "type", "call", "call_sid", "CA1", "personas", "intake", "dental",
	    "type", "call", "call_sid", "CA2", "personas", "intake"));
	c = store_db_call(db, "CA2", err, sizeof(err));
	ASSERT_EQ(json_array_size(json_object_get(c, "personas")), 1);
	ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(c,
	    "personas"), 0)), "intake");
	json_decref(c);
	c = store_db_call(db, "CA1", err, sizeof(err));
	ASSERT_NOT_NULL(c);
	ASSERT_EQ(json_array_size(json_object_get(c, "personas")), 2);
	ASSERT_STR_EQ(json_string_value(json_array_get(json_object_get(c,
	    "personas"), 1)), "dental");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "from")),
	    "+15551230001");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "direction")),
	    "inbound");
	ASSERT_STR_EQ(json_string_value(json_object_get(c, "host")), "h1");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(c, "usage"),
	    "output_audio_tokens")), 50);
	ASSERT(json_is_null(json_object_get(c, "answered_by")));
	hist = json_object_get(c, "status_history");
	ASSERT_EQ(json_array_size(hist), 2);
	ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(hist, 0),
	    "status")), "ringing");
	ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(hist, 1),
	    "at")), "2026-01-01T00:00:02Z");
	tools = json_object_get(c, "tool_calls");
	ASSERT_EQ(json_array_size(tools), 1);
	t = json_array_get(tools, 0);
	ASSERT_STR_EQ(json_string_value(json_object_get(t, "name")), "book");
	ASSERT_EQ(json_integer_value(json_object_get(t, "latency_ms")), 120);
	ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(t,
	    "arguments"), "day")), "monday");
	json_decref(c);

	ASSERT_NULL(store_db_call(db, "CAnone", err, sizeof(err)));
	ASSERT_STR_EQ(err, "");
	store_db_close(db);
}

TEST(store_conversation_in_order)
{
	char err[512];
	struct store_db *db;
	json_t *c, *u;

	fresh();
	db = open_db();
	/* sent out of order, and one cut off by the caller */
	apply(db, json_pack("[o, o, o, {s:s, s:s, s:i, s:I, s:s, s:s, s:b, "
	    "s:i}]",
	    call_rec("CA1", "+1555", "a", "completed", "inbound", T0, 1000),
	    utt("CA1", 2, "assistant", "third"),
	    utt("CA1", 0, "assistant", "first"),
	    "type", "utterance", "call_sid", "CA1", "seq", 1,
	    "at", (json_int_t)(T0 + 500), "role", "caller", "text", "second",
	    "interrupted", 1, "interrupted_at_ms", 350));
	c = store_db_conversation(db, "CA1", err, sizeof(err));
	ASSERT_NOT_NULL(c);
	u = json_object_get(c, "utterances");
	ASSERT_EQ(json_array_size(u), 3);
	ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(u, 0),
	    "text")), "first");
	ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(u, 1),
	    "text")), "second");
	ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(u, 2),
	    "text")), "third");
	ASSERT(json_is_true(json_object_get(json_array_get(u, 1),
	    "interrupted")));
	ASSERT_EQ(json_integer_value(json_object_get(json_array_get(u, 1),
	    "interrupted_at_ms")), 350);
	ASSERT(json_is_false(json_object_get(json_array_get(u, 0),
	    "interrupted")));
	ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(u, 1),
	    "role")), "caller");
	json_decref(c);
	ASSERT_NULL(store_db_conversation(db, "CAnone", err, sizeof(err)));
	ASSERT_STR_EQ(err, "");
	store_db_close(db);
}

TEST(store_analytics_figures)
{
	char err[512];
	struct store_db *db;
	json_t *a, *ph;
	uint64_t now = T0 + 30 * 60000ULL;	/* 00:30 */
	long long hour_total = 0;

	fresh();
	db = open_db();
	seed_history(db);
	apply(db, json_pack("[o, o, o]", utt("CA03", 0, "assistant", "a"),
	    utt("CA03", 1, "caller", "b"), utt("CA03", 2, "assistant", "c")));

	a = store_db_analytics(db, 0, 0, now, err, sizeof(err));
	ASSERT_NOT_NULL(a);
	ASSERT_EQ(json_integer_value(json_object_get(a, "total_calls")), 30);
	/* 24 of 30 completed */
	ASSERT(fabs(json_real_value(json_object_get(a, "success_rate")) - 0.8) <
	    1e-9);
	/* durations 1..30 s: mean 15.5, nearest-rank p90 the 27th */
	ASSERT(fabs(json_real_value(json_object_get(a, "avg_duration_s")) -
	    15.5) < 1e-9);
	ASSERT(json_real_value(json_object_get(a, "p90_duration_s")) == 27.0);
	ASSERT(fabs(json_real_value(json_object_get(a, "minutes")) -
	    465.0 / 60.0) < 1e-9);
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(a,
	    "by_status"), "failed")), 6);
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(a,
	    "by_line"), "support")), 10);
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(a,
	    "by_direction"), "outbound")), 5);
	ASSERT_EQ(json_integer_value(json_object_get(a, "ai_responses")), 2);
	ASSERT_EQ(json_integer_value(json_object_get(a, "caller_inputs")), 1);
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(a, "usage"),
	    "input_audio_tokens")), 3000);
	ASSERT(fabs(json_real_value(json_object_get(a, "cost_usd")) - 7.5) <
	    1e-9);
	/* per hour: 24 buckets ending with this one, which holds 00:00-00:30 */
	ph = json_object_get(a, "per_hour");
	ASSERT_EQ(json_array_size(ph), 24);
	ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(ph, 23),
	    "hour")), "2026-01-01T00:00:00Z");
	ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(ph, 0),
	    "hour")), "2025-12-31T01:00:00Z");
	for (size_t i = 0; i < 24; i++)
		hour_total += json_integer_value(json_object_get(
		    json_array_get(ph, i), "total"));
	ASSERT_EQ(hour_total, 30);	/* 00:00 .. 00:29, all up to now */
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(
	    json_array_get(ph, 23), "by_status"), "failed")), 6);
	json_decref(a);

	/* a window: calls 20..29 */
	a = store_db_analytics(db, T0 + 20 * 60000ULL, 0, now, err, sizeof(err));
	ASSERT_EQ(json_integer_value(json_object_get(a, "total_calls")), 10);
	ASSERT(json_real_value(json_object_get(a, "p90_duration_s")) == 29.0);
	ASSERT_EQ(json_integer_value(json_object_get(a, "ai_responses")), 0);
	json_decref(a);
	/* nothing in it */
	a = store_db_analytics(db, T0 + 99 * 60000ULL, 0, now, err, sizeof(err));
	ASSERT_EQ(json_integer_value(json_object_get(a, "total_calls")), 0);
	ASSERT(json_is_null(json_object_get(a, "p90_duration_s")));
	ASSERT(json_real_value(json_object_get(a, "success_rate")) == 0.0);
	json_decref(a);
	store_db_close(db);
}

TEST(store_purge_by_age)
{
	char err[512];
	struct store_db *db;

	fresh();
	db = open_db();
	seed_history(db);
	apply(db, json_pack("[o, o, {s:s, s:s, s:s, s:I}, {s:s, s:s, s:I, s:I}, "
	    "{s:s, s:s, s:i, s:s}]",
	    utt("CA03", 0, "assistant", "old"), utt("CA25", 0, "assistant", "new"),
	    "type", "status", "call_sid", "CA03", "status", "ringing",
	    "at", (json_int_t)T0,
	    "type", "token", "token", "expired", "at", (json_int_t)T0,
	    "expires_at", (json_int_t)(T0 + 1000),
	    "type", "tool", "call_sid", "CA04", "seq", 0, "name", "x"));
	ASSERT_EQ(store_db_token_claim(db, "live", NULL, T0, T0 + 1000000000LL, err,
	    sizeof(err)), 1);
	/* before call 10: ten calls go with what hangs off them */
	ASSERT_EQ(store_db_purge(db, T0 + 10 * 60000ULL, T0 + 5000, err,
	    sizeof(err)), 10);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM calls"), 20);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM utterances"), 1);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM call_status"), 0);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM tool_calls"), 0);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM used_tokens"), 1);
	ASSERT_EQ(store_db_purge(db, T0 + 10 * 60000ULL, T0 + 5000, err,
	    sizeof(err)), 0);
	store_db_close(db);
}

static void
touch(const char *dir, const char *name, time_t mtime)
{
	char path[1024];
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ASSERT((f = fopen(path, "w")) != NULL);
	fputs("{}\n", f);
	fclose(f);
	ASSERT_EQ(utimensat(AT_FDCWD, path, ts, 0), 0);
}

TEST(store_purge_transcripts_by_age)
{
	char dir[512], path[1024];
	time_t now = time(NULL), old = now - 40 * 86400;

	snprintf(dir, sizeof(dir), "%s/transcripts", test_tmpdir());
	ASSERT_EQ(store_purge_transcripts(dir, 0), 0);	/* none yet */
	ASSERT_EQ(mkdir(dir, 0755), 0);
	touch(dir, "CAold.jsonl", old);
	touch(dir, "CAnew.jsonl", now);
	touch(dir, "notes.txt", old);		/* not a transcript */
	snprintf(path, sizeof(path), "%s/CAdir.jsonl", dir);
	ASSERT_EQ(mkdir(path, 0755), 0);	/* not a file */
	ASSERT_EQ(store_purge_transcripts(dir,
	    (uint64_t)(now - 30 * 86400) * 1000), 1);
	snprintf(path, sizeof(path), "%s/CAold.jsonl", dir);
	ASSERT(access(path, F_OK) != 0);
	snprintf(path, sizeof(path), "%s/CAnew.jsonl", dir);
	ASSERT(access(path, F_OK) == 0);
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	ASSERT(access(path, F_OK) == 0);
	ASSERT_EQ(store_purge_transcripts(dir,
	    (uint64_t)(now - 30 * 86400) * 1000), 0);
	ASSERT_EQ(store_purge_transcripts("", 0), 0);
}

/* ---------------------------------------------------------------- */
/* the thread, the queue and the journal */

static json_t *q_result;
static int q_done;

static json_t *
q_history(struct store_db *db, void *arg, char *err, size_t errlen)
{
	if (db == NULL) {
		snprintf(err, errlen, "database down");
		return NULL;
	}
	return store_db_history(db, &(struct store_filter){ .limit = 5 }, err,
	    errlen);
}

static void
q_cb(json_t *result, const char *err, void *arg)
{
	q_result = result;
	q_done = 1;
}

static void
spin(uv_loop_t *loop, int ms)
{
	uint64_t end = mono_ms() + (uint64_t)ms;

	while (mono_ms() < end) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(2000);
	}
}

/* Wait (bounded) until nothing is queued or journaled. */
static uint64_t
drain(struct store *st, uv_loop_t *loop, int max_ms)
{
	struct store_stats s;
	uint64_t t0 = mono_ms();

	for (;;) {
		store_get_stats(st, &s);
		if (s.queued == 0 && s.backlog == 0 && s.up)
			return mono_ms() - t0;
		if (mono_ms() - t0 > (uint64_t)max_ms)
			TEST_FAIL_("not drained in %d ms: queued %llu backlog %llu "
			    "up %d", max_ms, (unsigned long long)s.queued,
			    (unsigned long long)s.backlog, s.up);
		spin(loop, 20);
	}
}

static void
post_call(struct store *st, int i)
{
	char sid[16], text[32];

	snprintf(sid, sizeof(sid), "CA%05d", i);
	snprintf(text, sizeof(text), "line %d", i);
	store_post(st, call_rec(sid, "+1555", "a", "completed", "inbound",
	    T0 + i, 1000));
	store_post(st, utt(sid, 0, "caller", text));
	store_post(st, utt(sid, 1, "assistant", text));
}

TEST_T(store_async_writes_then_answers, 30)
{
	uv_loop_t loop;
	struct store *st;
	struct store_stats s;
	/* VR_TEST_STORE_CALLS: more calls, to measure */
	const char *nenv = getenv("VR_TEST_STORE_CALLS");
	int n = nenv ? atoi(nenv) : 1000;
	uint64_t t0, t1;
	char last[16];

	fresh();
	uv_loop_init(&loop);
	st = store_new(&cfg);
	ASSERT_NOT_NULL(st);
	ASSERT_EQ(store_start(st, &loop), 0);
	drain(st, &loop, 10000);
	t0 = mono_us();
	for (int i = 0; i < n; i++)
		post_call(st, i);
	t1 = mono_us();
	/* a record it cannot write is refused at the door */
	store_post(st, json_pack("{s:s}", "type", "call"));
	/* the query runs after the records queued before it */
	ASSERT_EQ(store_query_async(st, q_history, NULL, q_cb, NULL), 0);
	for (int i = 0; i < 6000 && !q_done; i++)
		spin(&loop, 5);
	ASSERT(q_done);
	fprintf(stderr, "  %d records: posted in %.1f ms (%.2f us each), "
	    "written in %.1f ms (%.0f a second)\n", 3 * n,
	    (t1 - t0) / 1e3, (double)(t1 - t0) / (3.0 * n),
	    (mono_us() - t0) / 1e3, 3.0 * n * 1e6 / (double)(mono_us() - t0));
	ASSERT_NOT_NULL(q_result);
	ASSERT_EQ(total(q_result), n);
	snprintf(last, sizeof(last), "CA%05d", n - 1);
	ASSERT_STR_EQ(sid_at(q_result, 0), last);
	json_decref(q_result);
	store_get_stats(st, &s);
	ASSERT_EQ(s.written, 3 * n);
	ASSERT_EQ(s.rejected, 1);
	ASSERT_EQ(s.journaled, 0);
	ASSERT_EQ(s.version, STORE_SCHEMA_VERSION);
	ASSERT_EQ(s.up, 1);
	store_stop(st, 5000);
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_EQ(uv_loop_close(&loop), 0);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM utterances"), 2 * n);
}

/*
 * An outage: SQLite locked by another process's write transaction, or the
 * PostgreSQL server stopped.
 */
static sqlite3 *locker;

static void
outage_begin(void)
{
	if (on_pg()) {
		ASSERT_EQ(system(getenv("VR_TEST_PG_STOP")), 0);
		return;
	}
	ASSERT_EQ(sqlite3_open(db_path, &locker), SQLITE_OK);
	/* the store may be in the middle of a batch: wait for it */
	sqlite3_busy_timeout(locker, 5000);
	ASSERT_EQ(sqlite3_exec(locker, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
	    SQLITE_OK);
}

static void
outage_end(void)
{
	if (on_pg()) {
		ASSERT_EQ(system(getenv("VR_TEST_PG_START")), 0);
		return;
	}
	ASSERT_EQ(sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(locker);
	locker = NULL;
}

TEST_T(store_outage_loses_nothing_duplicates_nothing, 90)
{
	uv_loop_t loop;
	struct store *st;
	struct store_stats s;
	const int n = 600;
	uint64_t back_at = 0, took;

	if (on_pg() && (getenv("VR_TEST_PG_STOP") == NULL ||
	    getenv("VR_TEST_PG_START") == NULL))
		TEST_FAIL_("VR_TEST_PG_STOP and VR_TEST_PG_START are needed");
	fresh();
	uv_loop_init(&loop);
	st = store_new(&cfg);
	ASSERT_EQ(store_start(st, &loop), 0);
	drain(st, &loop, 10000);	/* open and migrated */
	/* a stream of writes; the database goes away for its middle third */
	for (int i = 0; i < n; i++) {
		if (i == n / 3)
			outage_begin();
		if (i == 2 * n / 3) {
			store_get_stats(st, &s);
			ASSERT_GT(s.journaled, 0);
			ASSERT_EQ(s.up, 0);
			outage_end();
			back_at = mono_ms();
		}
		post_call(st, i);
		spin(&loop, 3);
	}
	drain(st, &loop, 15000);
	took = mono_ms() - back_at;
	fprintf(stderr, "  journal replayed %llu ms after the database came "
	    "back\n", (unsigned long long)took);
	ASSERT_LT(took, 10000);
	store_get_stats(st, &s);
	fprintf(stderr, "  written %llu, journaled %llu, replayed %llu\n",
	    (unsigned long long)s.written, (unsigned long long)s.journaled,
	    (unsigned long long)s.replayed);
	ASSERT_GT(s.journaled, 0);
	ASSERT_EQ(s.replayed, s.journaled);
	ASSERT_EQ(s.dropped, 0);
	ASSERT_EQ(s.rejected, 0);
	store_stop(st, 5000);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM calls"), n);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM utterances"), 2 * n);
	ASSERT_EQ(count("SELECT COUNT(DISTINCT call_sid) AS n FROM utterances"),
	    n);
	/* the journal is empty again */
	{
		struct stat sb;
		ASSERT_EQ(stat(journal_path, &sb), 0);
		ASSERT_EQ(sb.st_size, 0);
	}
}

TEST_T(store_journal_replayed_at_next_start, 60)
{
	uv_loop_t loop;
	struct store *st;
	struct store_stats s;
	FILE *f;

	fresh();
	store_db_close(open_db());
	/* a run that ends during an outage leaves its records in the journal */
	uv_loop_init(&loop);
	outage_begin();
	st = store_new(&cfg);
	ASSERT_EQ(store_start(st, &loop), 0);
	for (int i = 0; i < 50; i++)
		post_call(st, i);
	spin(&loop, 300);
	store_stop(st, 500);
	uv_run(&loop, UV_RUN_DEFAULT);
	outage_end();
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM calls"), 0);
	/* and a line cut short by a crash */
	f = fopen(journal_path, "a");
	ASSERT_NOT_NULL(f);
	fputs("{\"type\": \"call\", \"call_", f);
	fclose(f);

	st = store_new(&cfg);
	ASSERT_EQ(store_start(st, &loop), 0);
	post_call(st, 50);	/* after the journal, in order */
	drain(st, &loop, 10000);
	store_get_stats(st, &s);
	ASSERT_EQ(s.replayed, 150);
	ASSERT_EQ(s.rejected, 1);
	store_stop(st, 5000);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM calls"), 51);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM utterances"), 102);
}

/*
 * Hosts sharing one database: several processes, each with its own
 * connection, claim the same tokens in different orders and report
 * minutes for the same caller.  Each token is won once; the minutes add
 * up once per call whatever the number of reports.
 */
TEST_T(store_hosts_share_tokens_and_minutes, 60)
{
	enum { HOSTS = 4, TOKENS = 60 };
	int fds[HOSTS][2], wins = 0;
	pid_t pids[HOSTS];
	char err[512];
	struct store_db *db;

	fresh();
	store_db_close(open_db());
	for (int h = 0; h < HOSTS; h++) {
		ASSERT_EQ(pipe(fds[h]), 0);
		if ((pids[h] = fork()) == 0) {
			struct store_db *mine;
			char tok[32], host[16], sid[16];
			int won = 0;

			cfg.busy_ms = 5000;
			if ((mine = store_db_open(&cfg, 0, err, sizeof(err))) == NULL)
				_exit(100);
			snprintf(host, sizeof(host), "host%d", h);
			for (int i = 0; i < TOKENS; i++) {
				/* each host its own order */
				int t = (i * (2 * h + 1) + h * 7) % TOKENS;
				int r;

				snprintf(tok, sizeof(tok), "tok-%d", t);
				r = store_db_token_claim(mine, tok, host, T0,
				    T0 + 60000, err, sizeof(err));
				if (r < 0)
					_exit(101);
				won += r;
			}
			/* every host reports both calls of one caller, growing */
			for (int k = 1; k <= 5; k++)
				for (int c = 0; c < 2; c++) {
					snprintf(sid, sizeof(sid), "CAm%d", c);
					apply(mine, json_pack("[{s:s, s:s, s:s, s:I, s:s}]",
					    "type", "minutes", "phone", "+15557770000",
					    "call_sid", sid, "used_ms",
					    (json_int_t)(k * 1000 * (c + 1)), "host", host));
				}
			store_db_close(mine);
			if (write(fds[h][1], &won, sizeof(won)) != sizeof(won))
				_exit(102);
			_exit(0);
		}
		close(fds[h][1]);
	}
	for (int h = 0; h < HOSTS; h++) {
		int won = -1, st;

		ASSERT_EQ(read(fds[h][0], &won, sizeof(won)), sizeof(won));
		ASSERT_EQ(waitpid(pids[h], &st, 0), pids[h]);
		ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		close(fds[h][0]);
		wins += won;
	}
	ASSERT_EQ(wins, TOKENS);
	ASSERT_EQ(count("SELECT COUNT(*) AS n FROM used_tokens"), TOKENS);
	db = open_db();
	/* 5 s of call 0 and 10 s of call 1 */
	ASSERT_EQ(store_db_caller_used_ms(db, "+15557770000", err, sizeof(err)),
	    15000);
	store_db_close(db);
}
