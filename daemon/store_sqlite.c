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
	return db;
}

static void
sq_close(void *h)
{
	sqlite3_close(h);
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

static int
sq_exec(void *h, const char *sql, const struct store_param *p, int np,
    json_t **rows, char *err, size_t errlen)
{
	sqlite3 *db = h;
	sqlite3_stmt *s = NULL;
	int rc;

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
	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK) {
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
	sqlite3_finalize(s);
	return STORE_OK;
fail:
	snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(db));
	sqlite3_finalize(s);
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
