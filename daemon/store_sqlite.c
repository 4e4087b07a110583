/*
 * store_sqlite.c — the SQLite backend (DATABASE_PATH), in WAL mode.
 *
 * Statements name their parameters $1..$n, which SQLite takes as named
 * parameters; each is bound by name, so their order in the text does not
 * matter.  A lock held too long by another process (busy_ms), a full disk
 * or an I/O error is "down" (the records go to the journal); any other
 * error is the statement's or the data's.
 */
#include "daemon/store_drv.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQ_CACHE	16	/* prepared statements kept */

struct sq {
	sqlite3		*db;
	struct {
		const char	*ptr;	/* the text it was asked for with */
		char		*sql;	/* a copy, compared too */
		sqlite3_stmt	*s;
	} cache[SQ_CACHE];
};

static int
sq_class(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_NOMEM:
	case SQLITE_PROTOCOL:
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return STORE_EDOWN;
	default:
		return STORE_EDATA;
	}
}

static void *
sq_open(const struct store_cfg *cfg, int create, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	struct sq *q;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
	    (create ? SQLITE_OPEN_CREATE : 0);
	int rc;

	rc = sqlite3_open_v2(cfg->path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", cfg->path,
		    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, cfg->busy_ms > 0 ? cfg->busy_ms : 2000);
	sqlite3_extended_result_codes(db, 0);
	/*
	 * WAL: readers (the API's queries) do not wait for the writer, and a
	 * commit is one append to the log.  synchronous=NORMAL in WAL mode
	 * may lose the last commits on a power cut, never corrupt the file.
	 */
	rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	    "PRAGMA foreign_keys=OFF;", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", cfg->path,
		    sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		sqlite3_close(db);
		return NULL;
	}
	q->db = db;
	return q;
}

static void
sq_close(void *h)
{
	struct sq *q = h;

	for (int i = 0; i < SQ_CACHE; i++)
		if (q->cache[i].s != NULL) {
			sqlite3_finalize(q->cache[i].s);
			free(q->cache[i].sql);
		}
	sqlite3_close(q->db);
	free(q);
}

/*
 * The writes are a handful of statements run over and over (the records'
 * upserts): each is prepared once and kept, found again by its text.  A
 * query (with rows, built for its filters) is prepared each time.  A
 * statement made stale by a schema change is prepared again by SQLite
 * itself (sqlite3_prepare_v2).
 */
static sqlite3_stmt *
sq_cached(struct sq *q, const char *sql, int *cached)
{
	sqlite3_stmt *s = NULL;
	int i, free_at = -1;

	*cached = 0;
	for (i = 0; i < SQ_CACHE; i++) {
		if (q->cache[i].s == NULL) {
			if (free_at < 0)
				free_at = i;
			continue;
		}
		if (q->cache[i].ptr == sql && strcmp(q->cache[i].sql, sql) == 0) {
			*cached = 1;
			return q->cache[i].s;
		}
	}
	if (sqlite3_prepare_v2(q->db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	if (free_at >= 0 && (q->cache[free_at].sql = strdup(sql)) != NULL) {
		q->cache[free_at].ptr = sql;
		q->cache[free_at].s = s;
		*cached = 1;
	}
	return s;
}

static json_t *
sq_row(sqlite3_stmt *s)
{
	json_t *o = json_object();
	int n = sqlite3_column_count(s);

	for (int i = 0; o != NULL && i < n; i++) {
		json_t *v;

		switch (sqlite3_column_type(s, i)) {
		case SQLITE_INTEGER:
			v = json_integer(sqlite3_column_int64(s, i));
			break;
		case SQLITE_FLOAT:
			v = json_real(sqlite3_column_double(s, i));
			break;
		case SQLITE_TEXT:
			v = json_stringn((const char *)sqlite3_column_text(s, i),
			    (size_t)sqlite3_column_bytes(s, i));
			break;
		default:
			v = NULL;
		}
		json_object_set_new(o, sqlite3_column_name(s, i),
		    v ? v : json_null());
	}
	return o;
}

/* A statement's run is over: a kept one is reset for the next. */
static void
sq_done(sqlite3_stmt *s, int cached)
{
	if (cached) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	} else
		sqlite3_finalize(s);
}

static int
sq_exec(void *h, const char *sql, const struct store_param *p, int np,
    json_t **rows, char *err, size_t errlen)
{
	struct sq *q = h;
	sqlite3 *db = q->db;
	sqlite3_stmt *s = NULL;
	int rc = SQLITE_OK, cached = 0;

	if (rows != NULL)
		*rows = NULL;
	if (rows == NULL && np == 0) {
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(db));
			return sq_class(rc);
		}
		return STORE_OK;
	}
	if (rows == NULL)
		s = sq_cached(q, sql, &cached);
	else
		rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (s == NULL) {
		rc = sqlite3_errcode(db);
		snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(db));
		return sq_class(rc);
	}
	for (int i = 0; i < np; i++) {
		char name[16];
		int at;

		snprintf(name, sizeof(name), "$%d", i + 1);
		if ((at = sqlite3_bind_parameter_index(s, name)) == 0)
			continue;
		switch (p[i].type) {
		case SP_NULL:
			rc = sqlite3_bind_null(s, at);
			break;
		case SP_INT:
			rc = sqlite3_bind_int64(s, at, p[i].i);
			break;
		case SP_DBL:
			rc = sqlite3_bind_double(s, at, p[i].d);
			break;
		case SP_TEXT:
			rc = sqlite3_bind_text(s, at, p[i].s, -1, SQLITE_STATIC);
			break;
		}
		if (rc != SQLITE_OK)
			goto fail;
	}
	if (rows != NULL && (*rows = json_array()) == NULL) {
		rc = SQLITE_NOMEM;
		goto fail;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (rows != NULL)
			json_array_append_new(*rows, sq_row(s));
	if (rc != SQLITE_DONE)
		goto fail;
	sq_done(s, cached);
	return STORE_OK;
fail:
	snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(db));
	sq_done(s, cached);
	if (rows != NULL) {
		json_decref(*rows);
		*rows = NULL;
	}
	return sq_class(rc);
}

const struct store_drv store_drv_sqlite = {
	.name = "sqlite",
	.backend = STORE_SQLITE,
	.open = sq_open,
	.close = sq_close,
	.exec = sq_exec,
	/* IMMEDIATE: take the write lock at the start, so a busy database
	 * fails the batch before any of it ran */
	.begin_sql = "BEGIN IMMEDIATE",
};
