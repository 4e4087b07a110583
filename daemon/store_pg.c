/*
 * store_pg.c — the PostgreSQL backend (DATABASE_URL), through libpq.
 *
 * Only the store thread calls it, so the plain blocking calls are used:
 * the master's loop never waits on them.  Parameters go as text and the
 * server infers their types from where they stand; results come back as
 * text and are typed again from the column's type OID.  A lost
 * connection, a server shutting down, a full disk, a lock timeout or a
 * serialisation failure is "down"; any other error is the statement's or
 * the data's.
 */
#include "daemon/store_drv.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Type OIDs from PostgreSQL's catalog (pg_type.dat); they never change. */
#define OID_BOOL	16
#define OID_INT8	20
#define OID_INT2	21
#define OID_INT4	23
#define OID_FLOAT4	700
#define OID_FLOAT8	701
#define OID_NUMERIC	1700

static void
pg_quiet(void *arg, const char *msg)
{
	/* NOTICEs ("already exists, skipping") are not worth a log line */
}

static void
pg_errcopy(char *err, size_t errlen, const char *what, const char *msg)
{
	snprintf(err, errlen, "postgresql: %s%s", what, msg ? msg : "");
	/* one line: libpq ends its messages with a newline, and may add
	 * DETAIL and HINT lines */
	for (char *q = err; *q != '\0'; q++)
		if (*q == '\t')
			*q = ' ';
		else if (*q == '\n') {
			*q = (q[1] == '\0') ? '\0' : ' ';
			if (*q == '\0')
				break;
		}
}

static void *
pg_open(const struct store_cfg *cfg, int create, char *err, size_t errlen)
{
	/* ours first: a connect_timeout in the URL overrides it */
	const char *const keys[] = { "connect_timeout", "application_name",
	    "keepalives_idle", "keepalives_interval", "keepalives_count",
	    "dbname", NULL };
	const char *const vals[] = { "5", "voxrelay", "10", "5", "3", cfg->url,
	    NULL };
	PGconn *c;
	PGresult *r;

	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL) {
		snprintf(err, errlen, "postgresql: out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		pg_errcopy(err, errlen, "", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, pg_quiet, NULL);
	/* a statement stuck on a lock fails instead of holding the thread
	 * (and so the queue) for good; it is retried from the journal */
	r = PQexec(c, "SET statement_timeout = '30s'; "
	    "SET lock_timeout = '10s'; SET TIME ZONE 'UTC'");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		pg_errcopy(err, errlen, "", PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		return NULL;
	}
	PQclear(r);
	return c;
}

static void
pg_close(void *h)
{
	PQfinish(h);
}

static int
pg_class(PGconn *c, PGresult *r)
{
	const char *st;

	if (PQstatus(c) != CONNECTION_OK)
		return STORE_EDOWN;
	st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (st == NULL)
		return STORE_EDOWN;	/* failed on our side: the connection */
	if (!strncmp(st, "08", 2) ||	/* connection exception */
	    !strncmp(st, "53", 2) ||	/* insufficient resources: disk full */
	    !strncmp(st, "57", 2) ||	/* operator intervention: shutdown */
	    !strncmp(st, "58", 2) ||	/* system error: I/O */
	    !strncmp(st, "40", 2) ||	/* serialisation failure, deadlock */
	    !strcmp(st, "55P03"))	/* lock not available */
		return STORE_EDOWN;
	return STORE_EDATA;
}

static json_t *
pg_value(PGresult *r, int row, int col)
{
	const char *v;

	if (PQgetisnull(r, row, col))
		return json_null();
	v = PQgetvalue(r, row, col);
	switch (PQftype(r, col)) {
	case OID_BOOL:
		return json_boolean(v[0] == 't');
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
		return json_integer(strtoll(v, NULL, 10));
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC:
		return json_real(strtod(v, NULL));
	default:
		return json_stringn(v, (size_t)PQgetlength(r, row, col));
	}
}

static int
pg_exec(void *h, const char *sql, const struct store_param *p, int np,
    json_t **rows, char *err, size_t errlen)
{
	PGconn *c = h;
	PGresult *r;
	ExecStatusType es;
	const char **vals = NULL;
	char (*num)[32] = NULL;
	int rc = STORE_OK;

	if (rows != NULL)
		*rows = NULL;
	if (np == 0 && rows == NULL)
		r = PQexec(c, sql);
	else {
		vals = calloc((size_t)np + 1, sizeof(*vals));
		num = calloc((size_t)np + 1, sizeof(*num));
		if (vals == NULL || num == NULL) {
			free(vals);
			free(num);
			snprintf(err, errlen, "postgresql: out of memory");
			return STORE_EDOWN;
		}
		for (int i = 0; i < np; i++) {
			switch (p[i].type) {
			case SP_NULL:
				vals[i] = NULL;
				break;
			case SP_INT:
				snprintf(num[i], sizeof(num[i]), "%lld", p[i].i);
				vals[i] = num[i];
				break;
			case SP_DBL:
				snprintf(num[i], sizeof(num[i]), "%.17g", p[i].d);
				vals[i] = num[i];
				break;
			case SP_TEXT:
				vals[i] = p[i].s;
				break;
			}
		}
		r = PQexecParams(c, sql, np, NULL, vals, NULL, NULL, 0);
	}
	es = PQresultStatus(r);
	if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
		const char *msg = r ? PQresultErrorMessage(r) : "";

		pg_errcopy(err, errlen, "", msg[0] ? msg : PQerrorMessage(c));
		rc = pg_class(c, r);
	} else if (rows != NULL) {
		int nr = PQntuples(r), nf = PQnfields(r);

		if ((*rows = json_array()) == NULL) {
			rc = STORE_EDOWN;
			snprintf(err, errlen, "postgresql: out of memory");
		}
		for (int i = 0; *rows != NULL && i < nr; i++) {
			json_t *o = json_object();
			for (int j = 0; o != NULL && j < nf; j++)
				json_object_set_new(o, PQfname(r, j),
				    pg_value(r, i, j));
			json_array_append_new(*rows, o);
		}
	}
	PQclear(r);
	free(vals);
	free(num);
	return rc;
}

const struct store_drv store_drv_pg = {
	.name = "postgresql",
	.backend = STORE_PG,
	.open = pg_open,
	.close = pg_close,
	.exec = pg_exec,
	.begin_sql = "BEGIN",
};
