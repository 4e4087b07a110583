/*
 * store_drv.h — what store_db.c needs from a backend: open, run one
 * statement with parameters, close.  Everything above (schema, upserts,
 * queries) is one SQL text for both backends, written in the dialect they
 * share: $1..$n parameters, INSERT ... ON CONFLICT ... DO UPDATE with
 * excluded, BIGINT and DOUBLE PRECISION (SQLite reads them as INTEGER and
 * REAL), integer division, CAST.
 */
#ifndef VR_STORE_DRV_H
#define VR_STORE_DRV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/store.h"

enum store_ptype { SP_NULL, SP_INT, SP_DBL, SP_TEXT };

struct store_param {
	enum store_ptype	 type;
	long long		 i;
	double			 d;
	const char		*s;
};

struct store_drv {
	const char	*name;
	enum store_backend backend;
	/* Connect; NULL with a reason.  create: SQLite may create the file. */
	void	*(*open)(const struct store_cfg *cfg, int create, char *err,
		    size_t errlen);
	void	 (*close)(void *h);
	/*
	 * Run one statement.  rows non-NULL: *rows gets a new array of
	 * objects, one per row, keyed by column name (integers, reals, text,
	 * null).  np == 0 and rows == NULL may run several statements.
	 * STORE_OK, STORE_EDATA or STORE_EDOWN with a reason.
	 */
	int	 (*exec)(void *h, const char *sql, const struct store_param *p,
		    int np, json_t **rows, char *err, size_t errlen);
	/* The statement that starts a write transaction. */
	const char *begin_sql;
};

extern const struct store_drv store_drv_sqlite;
extern const struct store_drv store_drv_pg;

#endif
