/*
 * api.c — the call records on the operator's listener: /api/call-history,
 * /api/call/{sid}, /api/call/{sid}/conversation, /api/analytics and
 * /api/export, plus the CORS preflight of a browser frontend.
 *
 * Every answer comes from a query on the store's thread (store.h), never
 * from the loop: the request's turn on its connection is held with
 * conn_defer() and answered when the query comes back.  The connection may
 * be gone by then (its client left, a timeout): a request's state is held
 * by both the connection and the query, and freed by whichever lets go
 * last, on the loop.
 *
 * The body is serialised on the store thread too; the loop copies text.
 */
#include "daemon/master.h"
#include "daemon/store.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/form.h"
#include "proto/http.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_PAGE	100	/* calls per query of the export */
#define API_STR_MAX	64	/* a filter's value, a call_sid */

enum api_kind { API_HISTORY, API_CALL, API_CONVERSATION, API_ANALYTICS,
    API_EXPORT };

struct api_req {
	enum api_kind	 kind;
	struct master	*m;
	struct conn	*c;		/* NULL once its turn is over */
	atomic_int	 gone;		/* the same, for the store thread */
	int		 refs;		/* the connection, a query */
	char		 cors[512];	/* headers for an allowed origin */
	char		 sid[API_STR_MAX + 1];
	char		 from[API_STR_MAX + 1], to[API_STR_MAX + 1],
			 line[API_STR_MAX + 1], status[API_STR_MAX + 1],
			 direction[API_STR_MAX + 1];
	struct store_filter f;
	/* the export: the page being written and the cursor after it */
	char		*text;
	size_t		 len, pos;
	long long	 after_at;
	char		 after_sid[API_STR_MAX + 1];
	int		 querying, end, failed;
	int		 started;	/* the head is out */
};

static void
api_put(struct api_req *a)
{
	if (--a->refs > 0)
		return;
	free(a->text);
	free(a);
}

/* The connection's turn is over (answered, or it closed first). */
static void
api_gone(void *arg)
{
	struct api_req *a = arg;

	a->c = NULL;
	atomic_store(&a->gone, 1);
	api_put(a);
}

/* ---------------------------------------------------------------- */
/* CORS */

/* Is origin (its whole text) one of CORS_ORIGINS? */
static int
cors_allowed(const struct master *m, const char *origin)
{
	const char *p = m->conf.cors_origins;
	size_t olen;

	if (origin == NULL || (olen = strlen(origin)) == 0)
		return 0;
	while (*p != '\0') {
		size_t n;

		p += strspn(p, ", \t");
		if ((n = strcspn(p, ", \t")) == 0)
			break;
		if (n == olen && strncasecmp(p, origin, n) == 0)
			return 1;
		p += n;
	}
	return 0;
}

/*
 * The headers that let an allowed origin's page read the answer, into out
 * ("" for a request from no allowed origin).  Vary always: the answer
 * differs by Origin, and a cache must not hand one origin's to another.
 */
const char *
api_cors_headers(const struct master *m, struct http_req *r, char *out,
    size_t len)
{
	const char *origin = http_req_header(r, "Origin");

	if (cors_allowed(m, origin))
		snprintf(out, len, "Access-Control-Allow-Origin: %s\r\n"
		    "Vary: Origin\r\n", origin);
	else
		snprintf(out, len, "Vary: Origin\r\n");
	return out;
}

static void
api_error(struct conn *c, int status, const char *cors, const char *why)
{
	json_t *o = json_pack("{s:s}", "error", why);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (body == NULL) {
		conn_respond(c, 500, "text/plain", "out of memory\n", 14, cors);
		return;
	}
	conn_respond(c, status, "application/json", body, strlen(body), cors);
	free(body);
}

/*
 * OPTIONS /api/...: a browser asks whether a page of Origin may send a GET
 * with an Authorization header.  Answered without the token (a browser
 * sends none with a preflight); an origin not listed gets 403 and no
 * Access-Control header, so the browser stops there.
 */
void
api_preflight(struct conn *c, struct http_req *r)
{
	const char *origin = http_req_header(r, "Origin");
	const char *meth = http_req_header(r, "Access-Control-Request-Method");
	char h[768];

	if (!cors_allowed(conn_master(c), origin)) {
		api_error(c, 403, "Vary: Origin\r\n", "origin not in CORS_ORIGINS");
		return;
	}
	if (meth != NULL && strcmp(meth, "GET") != 0 &&
	    strcmp(meth, "HEAD") != 0) {
		snprintf(h, sizeof(h), "Access-Control-Allow-Origin: %s\r\n"
		    "Vary: Origin\r\n", origin);
		api_error(c, 405, h, "only GET and HEAD");
		return;
	}
	snprintf(h, sizeof(h), "Access-Control-Allow-Origin: %s\r\n"
	    "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"
	    "Access-Control-Allow-Headers: Authorization\r\n"
	    "Access-Control-Max-Age: 600\r\n"
	    "Vary: Origin\r\n", origin);
	conn_respond(c, 204, NULL, "", 0, h);
}

/* ---------------------------------------------------------------- */
/* parameters */

static const char *const statuses[] = {
	"queued", "ringing", "in-progress", "completed", "busy", "no-answer",
	"failed", "canceled",
};

static int
sid_valid(const char *s, size_t n)
{
	if (n == 0 || n > API_STR_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A phone number's '+' sent unescaped in a query string reads as a space:
 * " 15551234567" is taken as "+15551234567". */
static void
phone_plus(char *s)
{
	if (s[0] == ' ' && s[1] >= '0' && s[1] <= '9')
		s[0] = '+';
}

/*
 * The query string into a; 0, or -1 with why.  Every parameter is checked:
 * an unknown or repeated one is refused, so a misspelt filter is not
 * silently a page of everything.
 */
static int
api_params(struct api_req *a, const char *query, const char *const *allowed,
    char *why, size_t whylen)
{
	struct form f;
	size_t i, j;
	int rc = -1;

	memset(&f, 0, sizeof(f));
	if (form_parse(&f, query, strlen(query)) != 0) {
		snprintf(why, whylen, "malformed query string");
		return -1;
	}
	for (i = 0; i < f.n; i++) {
		const char *k = f.v[i].name, *v = f.v[i].value;
		const char *const *ok;

		for (ok = allowed; *ok != NULL && strcmp(*ok, k) != 0; ok++)
			;
		if (*ok == NULL) {
			snprintf(why, whylen, "unknown parameter \"%.32s\"", k);
			goto out;
		}
		for (j = 0; j < i; j++)
			if (strcmp(f.v[j].name, k) == 0) {
				snprintf(why, whylen, "parameter \"%s\" given "
				    "twice", k);
				goto out;
			}
		if (strcmp(k, "limit") == 0) {
			if (parse_long(v, 1, STORE_PAGE_MAX, &a->f.limit) != 0) {
				snprintf(why, whylen, "limit: a whole number "
				    "from 1 to %d", STORE_PAGE_MAX);
				goto out;
			}
		} else if (strcmp(k, "offset") == 0) {
			if (parse_long(v, 0, 1000000000L, &a->f.offset) != 0) {
				snprintf(why, whylen, "offset: a whole number "
				    "from 0 to 1000000000");
				goto out;
			}
		} else if (strcmp(k, "since") == 0 || strcmp(k, "until") == 0) {
			uint64_t ms;

			if (iso8601_parse(v, &ms) != 0) {
				snprintf(why, whylen, "%s: not an ISO 8601 UTC "
				    "time (2026-01-31T09:30:00Z or 2026-01-31)",
				    k);
				goto out;
			}
			*(k[0] == 's' ? &a->f.since : &a->f.until) = ms;
		} else {
			char *dst = strcmp(k, "from") == 0 ? a->from :
			    strcmp(k, "to") == 0 ? a->to :
			    strcmp(k, "line") == 0 ? a->line :
			    strcmp(k, "status") == 0 ? a->status : a->direction;

			if (v[0] == '\0' || strlen(v) > API_STR_MAX) {
				snprintf(why, whylen, "%s: 1 to %d characters",
				    k, API_STR_MAX);
				goto out;
			}
			vr_strlcpy(dst, v, API_STR_MAX + 1);
		}
	}
	phone_plus(a->from);
	phone_plus(a->to);
	if (a->status[0] != '\0') {
		for (i = 0; i < ARRAY_LEN(statuses); i++)
			if (strcmp(a->status, statuses[i]) == 0)
				break;
		if (i == ARRAY_LEN(statuses)) {
			snprintf(why, whylen, "status: one of queued, ringing, "
			    "in-progress, completed, busy, no-answer, failed, "
			    "canceled");
			goto out;
		}
	}
	if (a->direction[0] != '\0' && strcmp(a->direction, "inbound") != 0 &&
	    strcmp(a->direction, "outbound") != 0) {
		snprintf(why, whylen, "direction: inbound or outbound");
		goto out;
	}
	if (a->f.since && a->f.until && a->f.since >= a->f.until) {
		snprintf(why, whylen, "since must be before until");
		goto out;
	}
	a->f.from = a->from;
	a->f.to = a->to;
	a->f.line = a->line;
	a->f.status = a->status;
	a->f.direction = a->direction;
	rc = 0;
out:
	form_free(&f);
	return rc;
}

/* ---------------------------------------------------------------- */
/* the queries, on the store thread */

static json_t *
text_of(json_t *o, char *err, size_t errlen)
{
	char *s;
	json_t *t;

	if (o == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL || (t = json_string_nocheck(s)) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	free(s);
	return t;
}

static json_t *
api_query(struct store_db *db, void *arg, char *err, size_t errlen)
{
	struct api_req *a = arg;

	if (db == NULL) {
		snprintf(err, errlen, "the database is not available");
		return NULL;
	}
	/* its client is gone (a timeout while this waited its turn): the
	 * answer would be dropped, so do not ask the database */
	if (atomic_load(&a->gone)) {
		snprintf(err, errlen, "nobody waits for it");
		return NULL;
	}
	switch (a->kind) {
	case API_HISTORY:
		return text_of(store_db_history(db, &a->f, err, errlen), err,
		    errlen);
	case API_CALL:
		return text_of(store_db_call(db, a->sid, err, errlen), err,
		    errlen);
	case API_CONVERSATION:
		return text_of(store_db_conversation(db, a->sid, err, errlen),
		    err, errlen);
	case API_ANALYTICS:
		return text_of(store_db_analytics(db, a->f.since, a->f.until,
		    wall_ms(), err, errlen), err, errlen);
	case API_EXPORT:
		return store_db_export(db, a->f.since, a->f.until, a->after_at,
		    a->after_sid, EXPORT_PAGE, err, errlen);
	}
	snprintf(err, errlen, "unknown query");
	return NULL;
}

/* ---------------------------------------------------------------- */
/* answers, on the loop */

static void
api_failed(struct api_req *a, const char *err)
{
	json_t *o;
	char *body;
	int status = err[0] == '\0' ? 404 : 503;

	if (status == 503) {
		static uint64_t logged_ms;
		uint64_t now = mono_ms();

		if (logged_ms == 0 || now - logged_ms >= 60000) {
			log_warnx("/api: a query failed: %s (said once a minute)",
			    err);
			logged_ms = now;
		}
	}
	o = json_pack("{s:s}", "error", status == 404 ? "no such call" :
	    "the call records are not available now");
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	conn_defer_respond(a->c, status, "application/json", body ? body : "",
	    body ? strlen(body) : 0, a->cors);
	free(body);
}

static void
api_done(json_t *result, const char *err, void *arg)
{
	struct api_req *a = arg;

	if (a->c != NULL) {
		if (result == NULL)
			api_failed(a, err ? err : "unknown failure");
		else
			conn_defer_respond(a->c, 200, "application/json",
			    json_string_value(result),
			    json_string_length(result), a->cors);
	}
	json_decref(result);
	api_put(a);
}

static int export_next(struct api_req *a);

static ssize_t
export_fill(void *arg, char *buf, size_t cap)
{
	struct api_req *a = arg;
	size_t n;

	if (a->pos < a->len) {
		n = a->len - a->pos < cap ? a->len - a->pos : cap;
		memcpy(buf, a->text + a->pos, n);
		a->pos += n;
		return (ssize_t)n;
	}
	free(a->text);
	a->text = NULL;
	a->len = a->pos = 0;
	if (a->failed)
		return -1;	/* cut: the client sees an incomplete body */
	if (a->end)
		return 0;
	if (!a->querying && export_next(a) != 0)
		return -1;
	return CONN_FILL_AGAIN;
}

static void
export_done(json_t *result, const char *err, void *arg)
{
	struct api_req *a = arg;
	const char *text = json_string_value(json_object_get(result, "text"));
	const char *sid = json_string_value(json_object_get(result,
	    "after_sid"));
	int first = !a->started;

	a->querying = 0;
	if (a->c == NULL)
		goto out;
	if (result == NULL || text == NULL) {
		if (first) {
			api_failed(a, err && err[0] ? err : "export failed");
			goto out;
		}
		log_warnx("/api/export: a page failed: %s; the answer is cut",
		    err ? err : "?");
		a->failed = 1;
		conn_stream_wake(a->c);
		goto out;
	}
	if ((a->text = strdup(text)) == NULL) {
		a->failed = 1;
		if (first)
			api_failed(a, "out of memory");
		else
			conn_stream_wake(a->c);
		goto out;
	}
	a->len = strlen(text);
	a->pos = 0;
	if (json_integer_value(json_object_get(result, "n")) < EXPORT_PAGE)
		a->end = 1;
	if (sid != NULL) {
		a->after_at = json_integer_value(json_object_get(result,
		    "after_at"));
		vr_strlcpy(a->after_sid, sid, sizeof(a->after_sid));
	}
	if (first) {
		char h[sizeof(a->cors) + 128];

		snprintf(h, sizeof(h), "%sContent-Disposition: inline; "
		    "filename=\"calls.ndjson\"\r\n", a->cors);
		a->started = 1;
		conn_defer_stream(a->c, 200, "application/x-ndjson", h,
		    export_fill);
	} else
		conn_stream_wake(a->c);
out:
	json_decref(result);
	api_put(a);
}

static int
export_next(struct api_req *a)
{
	a->refs++;
	a->querying = 1;
	if (store_query_async(a->m->store, api_query, a, export_done, a) != 0) {
		a->refs--;
		a->querying = 0;
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- */

static const char *const p_history[] = { "limit", "offset", "from", "to",
    "line", "status", "direction", "since", "until", NULL };
static const char *const p_range[] = { "since", "until", NULL };
static const char *const p_none[] = { NULL };

/* GET /api/...: everything under /api/ after the token was checked. */
void
api_route(struct conn *c, struct http_req *r)
{
	const char *url = http_req_url(r), *q = strchr(url, '?'), *rest;
	size_t plen = q ? (size_t)(q - url) : strlen(url);
	const char *const *allowed;
	struct api_req *a;
	char why[160];

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		conn_respond(c, 500, "text/plain", "out of memory\n", 14, NULL);
		return;
	}
	a->m = conn_master(c);
	api_cors_headers(a->m, r, a->cors, sizeof(a->cors));
	a->after_at = -1;
	if (plen == 17 && strncmp(url, "/api/call-history", 17) == 0) {
		a->kind = API_HISTORY;
		allowed = p_history;
	} else if (plen == 14 && strncmp(url, "/api/analytics", 14) == 0) {
		a->kind = API_ANALYTICS;
		allowed = p_range;
	} else if (plen == 11 && strncmp(url, "/api/export", 11) == 0) {
		a->kind = API_EXPORT;
		allowed = p_range;
	} else if (plen > 10 && strncmp(url, "/api/call/", 10) == 0) {
		const char *sl;
		size_t n;

		rest = url + 10;
		sl = memchr(rest, '/', plen - 10);
		n = sl ? (size_t)(sl - rest) : plen - 10;
		if (sl != NULL && !(url + plen - sl == 13 &&
		    strncmp(sl, "/conversation", 13) == 0)) {
			api_error(c, 404, a->cors, "no such endpoint");
			free(a);
			return;
		}
		if (!sid_valid(rest, n)) {
			api_error(c, 400, a->cors, "call_sid: 1 to 64 letters, "
			    "digits, '_' or '-'");
			free(a);
			return;
		}
		memcpy(a->sid, rest, n);
		a->kind = sl ? API_CONVERSATION : API_CALL;
		allowed = p_none;
	} else {
		api_error(c, 404, a->cors, "no such endpoint");
		free(a);
		return;
	}
	if (api_params(a, q ? q + 1 : "", allowed, why, sizeof(why)) != 0) {
		api_error(c, 400, a->cors, why);
		free(a);
		return;
	}
	if (a->m->store == NULL) {
		api_error(c, 503, a->cors, a->m->conf.call_records ?
		    "the call records are not available (the store did not "
		    "start)" : "the call records are off (CALL_RECORDS)");
		free(a);
		return;
	}
	a->c = c;
	a->refs = 1;
	if (conn_defer(c, api_gone, a) != 0)
		return;
	if (a->kind == API_EXPORT) {
		if (export_next(a) != 0)
			api_failed(a, "the store's queue is full");
		return;
	}
	a->refs++;
	if (store_query_async(a->m->store, api_query, a, api_done, a) != 0) {
		a->refs--;
		api_failed(a, "the store's queue is full");
	}
}
