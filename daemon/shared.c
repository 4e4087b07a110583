/*
 * shared.c — what hosts sharing one PostgreSQL (DATABASE_URL) ask it at
 * the door: a caller's minutes at the voice webhook, and whether a stream
 * token (or its call) was used on any of them at the upgrade.
 *
 * The loop never waits on the database.  A question is a query on a
 * thread of its own with its own connection: the store's thread writes
 * records in batches, and a question queued behind them (or between
 * them, splitting every batch) would wait too long when calls come in
 * together.  The request's turn on its connection is held with
 * conn_defer() meanwhile, and a timer of
 * SHARED_TIMEOUT_MS decides without the answer when it is late: the
 * webhook then goes by this host's ledger (plus the other hosts' minutes
 * as last read), the upgrade by this host's used tokens alone.  Whichever
 * comes first, the answer or the timer, decides; the other is ignored.
 * The thread skips a question whose decision was made already.
 *
 * A question is held by its connection, its query and its timer, and
 * freed on the loop by whichever lets go last.
 *
 * While calls with a quota are live here, the master asks the same thread
 * again, every SHARED_LIVE_INTERVAL, for those callers' minutes on the
 * other hosts (one SELECT for up to STORE_CALLERS_MAX callers), and puts
 * the figures where the workers' time limits count them: two calls of one
 * caller admitted at once on two hosts each saw the other's minutes as 0
 * at their webhooks.  Nobody waits for that answer; a late or failed one
 * leaves the figures as they were.
 */
#include "daemon/master.h"
#include "daemon/store.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/http.h"
#include "proto/token.h"

#include <mbedtls/md.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_MAX		96	/* a used_tokens key */
#define RETRY_MS	1000	/* between attempts to connect while down */
#define QUEUE_MAX	4096	/* questions waiting: past it, decided at once */

#define LIVE_READ_AFTER_MS 500	/* into each period: the hosts wrote theirs */

enum sq_kind { SQ_MINUTES, SQ_TOKEN, SQ_LIVE };

struct sq {
	struct sq	*next;		/* on the thread's queue, then the loop's */
	store_query_cb	 fn;
	json_t		*result;
	char		 err[256];
	enum sq_kind	 kind;
	struct master	*m;
	struct conn	*c;		/* NULL once its turn is over */
	uv_timer_t	 timer;
	int		 refs;		/* the connection, the query, the timer */
	int		 decided;	/* by the answer or by the timer */
	atomic_int	 late;		/* the same, for the thread */
	uint64_t	 asked_ms;
	/* the thread's input: written before the query is queued */
	char		 host[256];
	char		 phone[SHM_PHONE_MAX];
	char		 keys[2][KEY_MAX];	/* the token's, the call's */
	char		(*phones)[SHM_PHONE_MAX];	/* SQ_LIVE's callers */
	size_t		 nphones;
	uint64_t	 now, expires;		/* ms since the epoch */
	/* what comes next on the loop */
	shared_go_cb	 go;
	void		*ctx;
	void		 (*ctx_free)(void *);
};

/* The re-reads of live callers' minutes: one out at a time. */
static struct {
	int		 out;
	uint64_t	 period;	/* the last asked in (wall / interval) */
} L;

/* The thread that asks, and its connection. */
static struct {
	int		 started;
	pthread_t	 thr;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct sq	*qh, **qt;	/* to the thread */
	unsigned	 nq;
	struct sq	*dh, **dt;	/* answered, to the loop */
	int		 stopping;
	uv_async_t	 async;
	/* the thread's own */
	struct store_cfg cfg;
	char		*url, *host;
	struct store_db	*db;
	uint64_t	 retry_at;
} T;

int
shared_on(const struct master *m)
{
	return T.started && m->store != NULL &&
	    m->conf.database_url[0] != '\0';
}

static void query_done(json_t *res, const char *err, void *arg);
static void live_done(struct sq *q, json_t *res, const char *err);

/* Connect when there is no connection and it is time to try. */
static void
thr_open(void)
{
	char err[512];

	if (T.db != NULL || mono_ms() < T.retry_at)
		return;
	if ((T.db = store_db_open(&T.cfg, 0, err, sizeof(err))) == NULL)
		T.retry_at = mono_ms() + RETRY_MS;
}

static void
thr_ask(struct sq *q)
{
	if (atomic_load(&q->late)) {
		snprintf(q->err, sizeof(q->err), "decided without it");
		return;
	}
	thr_open();
	if (T.db == NULL) {
		snprintf(q->err, sizeof(q->err), "the database is down");
		return;
	}
	q->result = q->fn(T.db, q, q->err, sizeof(q->err));
	if (q->result != NULL || !store_db_broken(T.db))
		return;
	/* lost since the last question (a server restarted): once more on
	 * a fresh connection, so a database that is up is not taken for
	 * down */
	store_db_close(T.db);
	T.db = NULL;
	T.retry_at = 0;
	thr_open();
	if (T.db != NULL && !atomic_load(&q->late))
		q->result = q->fn(T.db, q, q->err, sizeof(q->err));
	if (T.db != NULL && q->result == NULL && store_db_broken(T.db)) {
		store_db_close(T.db);
		T.db = NULL;
		T.retry_at = mono_ms() + RETRY_MS;
	}
}

static void *
thr_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct sq *q;

		pthread_mutex_lock(&T.mu);
		while (T.qh == NULL && !T.stopping)
			pthread_cond_wait(&T.cv, &T.mu);
		if ((q = T.qh) == NULL) {
			pthread_mutex_unlock(&T.mu);
			break;		/* stopping, nothing left */
		}
		if ((T.qh = q->next) == NULL)
			T.qt = &T.qh;
		T.nq--;
		pthread_mutex_unlock(&T.mu);

		if (T.stopping)
			snprintf(q->err, sizeof(q->err), "shutting down");
		else
			thr_ask(q);
		pthread_mutex_lock(&T.mu);
		q->next = NULL;
		*T.dt = q;
		T.dt = &q->next;
		pthread_mutex_unlock(&T.mu);
		uv_async_send(&T.async);
	}
	store_db_close(T.db);
	T.db = NULL;
	return NULL;
}

/* Answers to the loop. */
static void
deliver(void)
{
	struct sq *q, *next;

	pthread_mutex_lock(&T.mu);
	q = T.dh;
	T.dh = NULL;
	T.dt = &T.dh;
	pthread_mutex_unlock(&T.mu);
	for (; q != NULL; q = next) {
		next = q->next;
		query_done(q->result, q->result ? NULL : q->err, q);
	}
}

static void
async_cb(uv_async_t *a)
{
	(void)a;
	deliver();
}

int
shared_start(struct master *m)
{
	sigset_t all, old;
	int rc;

	if (m->store == NULL || m->conf.database_url[0] == '\0' || T.started)
		return 0;
	store_cfg_from_conf(&T.cfg, &m->conf, m->hostname);
	T.url = strdup(m->conf.database_url);
	T.host = strdup(m->hostname);
	if (T.url == NULL || T.host == NULL)
		goto fail;
	T.cfg.url = T.url;
	T.cfg.host = T.host;
	T.cfg.path = T.cfg.journal = T.cfg.transcripts = "";
	T.qt = &T.qh;
	T.dt = &T.dh;
	pthread_mutex_init(&T.mu, NULL);
	pthread_cond_init(&T.cv, NULL);
	if (uv_async_init(m->loop, &T.async, async_cb) != 0)
		goto fail;
	/* no signal here: the master's signalfd reads them all */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&T.thr, NULL, thr_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		uv_close((uv_handle_t *)&T.async, NULL);
		goto fail;
	}
	T.started = 1;
	return 0;
fail:
	log_warnx("DATABASE_URL: the thread that reads shared minutes and "
	    "tokens did not start; each host goes by its own");
	free(T.url);
	free(T.host);
	T.url = T.host = NULL;
	return -1;
}

void
shared_stop(struct master *m)
{
	(void)m;
	if (!T.started)
		return;
	pthread_mutex_lock(&T.mu);
	T.stopping = 1;
	pthread_mutex_unlock(&T.mu);
	pthread_cond_signal(&T.cv);
	pthread_join(T.thr, NULL);
	T.started = 0;
	deliver();
	uv_close((uv_handle_t *)&T.async, NULL);
	free(T.url);
	free(T.host);
	T.url = T.host = NULL;
}

/* Queue q for the thread: 0, or -1 (full, stopping). */
static int
thr_enqueue(struct sq *q, store_query_cb fn)
{
	int wake;

	q->fn = fn;
	q->next = NULL;
	pthread_mutex_lock(&T.mu);
	if (T.stopping || T.nq >= QUEUE_MAX) {
		pthread_mutex_unlock(&T.mu);
		return -1;
	}
	wake = T.qh == NULL;
	*T.qt = q;
	T.qt = &q->next;
	T.nq++;
	pthread_mutex_unlock(&T.mu);
	if (wake)
		pthread_cond_signal(&T.cv);
	return 0;
}

static void
sq_put(struct sq *q)
{
	if (--q->refs > 0)
		return;
	if (q->ctx_free != NULL)
		q->ctx_free(q->ctx);
	free(q);
}

static void
timer_closed(uv_handle_t *h)
{
	sq_put(h->data);
}

/* The decision is made: no more waiting. */
static void
sq_decide(struct sq *q)
{
	q->decided = 1;
	atomic_store(&q->late, 1);
	uv_timer_stop(&q->timer);
	if (!uv_is_closing((uv_handle_t *)&q->timer))
		uv_close((uv_handle_t *)&q->timer, timer_closed);
}

/* The connection's turn is over: answered, or it closed first. */
static void
sq_conn_gone(void *arg)
{
	struct sq *q = arg;

	q->c = NULL;
	if (!q->decided)
		sq_decide(q);
	sq_put(q);
}

static void
sq_go(struct sq *q, const json_t *ans)
{
	struct conn *c = q->c;

	sq_decide(q);
	if (c != NULL)
		q->go(c, ans, q->ctx);
}

static void
timeout_cb(uv_timer_t *t)
{
	struct sq *q = t->data;
	static uint64_t logged_ms;
	uint64_t now = mono_ms();

	if (q->decided)
		return;
	master_count(q->m, q->kind == SQ_MINUTES ? SC_shared_fallbacks :
	    SC_token_claim_fallbacks);
	if (logged_ms == 0 || now - logged_ms >= 60000) {
		logged_ms = now;
		log_warnx("DATABASE_URL did not answer within SHARED_TIMEOUT_MS "
		    "(%d ms): %s (said once a minute)", q->m->conf.shared_timeout_ms,
		    q->kind == SQ_MINUTES ? "a caller admitted on this host's "
		    "ledger" : "a stream token checked on this host only");
	}
	sq_go(q, NULL);
}

/* The thread's answer, on the loop. */
static void
query_done(json_t *res, const char *err, void *arg)
{
	struct sq *q = arg;

	if (q->kind == SQ_LIVE) {
		live_done(q, res, err);
		return;
	}
	if (!q->decided) {
		if (res == NULL) {
			static uint64_t logged_ms;
			uint64_t now = mono_ms();

			/* down or failing: the same fallback as a late answer */
			master_count(q->m, q->kind == SQ_MINUTES ?
			    SC_shared_fallbacks : SC_token_claim_fallbacks);
			if (logged_ms == 0 || now - logged_ms >= 60000) {
				logged_ms = now;
				log_warnx("DATABASE_URL: %s; %s (said once a "
				    "minute)", err ? err : "no answer",
				    q->kind == SQ_MINUTES ? "a caller admitted on "
				    "this host's ledger" : "a stream token "
				    "checked on this host only");
			}
		}
		sq_go(q, res);
	}
	json_decref(res);
	sq_put(q);
}

/* On the thread: the caller's minutes split by host. */
static json_t *
minutes_query(struct store_db *db, void *arg, char *err, size_t errlen)
{
	struct sq *q = arg;
	long long mine, others;

	if (atomic_load(&q->late)) {
		snprintf(err, errlen, "decided without it");
		return NULL;
	}
	if (db == NULL) {
		snprintf(err, errlen, "the database is down");
		return NULL;
	}
	if (store_db_caller_minutes(db, q->phone, q->host, &mine, &others, err,
	    errlen) != 0)
		return NULL;
	return json_pack("{s:I, s:I}", "mine", (json_int_t)mine, "others",
	    (json_int_t)others);
}

/* On the thread: claim the token's key, then the call's.  A key
 * claimed before, by anyone, says which host did. */
static json_t *
token_query(struct store_db *db, void *arg, char *err, size_t errlen)
{
	struct sq *q = arg;
	char by[256];
	int rc;

	if (atomic_load(&q->late)) {
		snprintf(err, errlen, "decided without it");
		return NULL;
	}
	if (db == NULL) {
		snprintf(err, errlen, "the database is down");
		return NULL;
	}
	for (int i = 0; i < 2; i++) {
		rc = store_db_token_claim(db, q->keys[i], q->host, q->now,
		    q->expires, err, errlen);
		if (rc < 0)
			return NULL;
		if (rc == 0) {
			if (store_db_token_host(db, q->keys[i], by, sizeof(by),
			    err, errlen) < 0)
				return NULL;
			return json_pack("{s:b, s:s, s:s}", "claimed", 0,
			    "what", i == 0 ? "token" : "call", "by", by);
		}
	}
	/* the webhook may have been another host's: the worker's limit
	 * needs what the caller used everywhere */
	{
		long long mine, others;

		if (store_db_caller_minutes(db, q->phone, q->host, &mine,
		    &others, err, errlen) != 0)
			return json_pack("{s:b}", "claimed", 1);
		return json_pack("{s:b, s:I, s:I}", "claimed", 1, "mine",
		    (json_int_t)mine, "others", (json_int_t)others);
	}
}

static struct sq *
sq_new(struct conn *c, enum sq_kind kind)
{
	struct master *m = conn_master(c);
	struct sq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->kind = kind;
	q->m = m;
	q->asked_ms = mono_ms();
	vr_strlcpy(q->host, m->hostname, sizeof(q->host));
	return q;
}

/*
 * Ask, and hold c's turn until the answer or the timeout.  0: go will be
 * called (unless c closes first) and ctx freed in the end; -1: nothing
 * was queued, q is freed but ctx is not, and c is untouched.
 */
static int
sq_ask(struct conn *c, struct sq *q, store_query_cb fn)
{
	struct master *m = q->m;

	if (uv_timer_init(m->loop, &q->timer) != 0) {
		free(q);
		return -1;
	}
	q->timer.data = q;
	q->refs = 1;			/* the timer's */
	if (thr_enqueue(q, fn) != 0) {
		q->ctx_free = NULL;	/* the caller keeps ctx */
		q->decided = 1;
		uv_close((uv_handle_t *)&q->timer, timer_closed);
		return -1;
	}
	q->refs++;			/* the query's */
	q->refs++;			/* the connection's */
	q->c = c;
	if (conn_defer(c, sq_conn_gone, q) != 0)
		return 0;		/* closed: sq_conn_gone decided */
	uv_timer_start(&q->timer, timeout_cb,
	    (uint64_t)m->conf.shared_timeout_ms, 0);
	return 0;
}

int
shared_minutes(struct conn *c, const char *phone, shared_go_cb go, void *ctx,
    void (*ctx_free)(void *))
{
	struct sq *q = sq_new(c, SQ_MINUTES);

	if (q == NULL)
		return -1;
	vr_strlcpy(q->phone, phone, sizeof(q->phone));
	q->go = go;
	q->ctx = ctx;
	q->ctx_free = ctx_free;
	return sq_ask(c, q, minutes_query);
}

/* ---------------------------------------------------------------- */
/* the stream upgrade */

/* The key a token is claimed under: its SHA-256, not the token itself,
 * which is a bearer credential for as long as it lives. */
static int
token_key(const char *tok, size_t len, char *out, size_t outlen)
{
	const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	unsigned char h[32];
	static const char hex[] = "0123456789abcdef";

	if (info == NULL || outlen < 2 + 2 * sizeof(h) + 1 ||
	    mbedtls_md(info, (const unsigned char *)tok, len, h) != 0)
		return -1;
	out[0] = 't';
	out[1] = ':';
	for (size_t i = 0; i < sizeof(h); i++) {
		out[2 + 2 * i] = hex[h[i] >> 4];
		out[3 + 2 * i] = hex[h[i] & 15];
	}
	out[2 + 2 * sizeof(h)] = '\0';
	return 0;
}

/* The used keys as records, for the database once it is back (the
 * journal keeps them meanwhile): a token let through here cannot then be
 * redeemed on another host either. */
static void
post_claims(struct sq *q)
{
	for (int i = 0; i < 2; i++)
		store_post(q->m->store, json_pack("{s:s, s:s, s:s, s:I, s:I}",
		    "type", "token", "token", q->keys[i], "host", q->host,
		    "at", (json_int_t)q->now, "expires_at",
		    (json_int_t)q->expires));
}

/*
 * A stream whose webhook another host answered has no ledger entry here:
 * give it one, or the worker could not count its minutes and would refuse
 * it.  With the shared minutes known, the part other hosts used goes into
 * the entry for the worker's limit, as at the webhook.
 */
static void
upgrade_caller(struct sq *q, const json_t *ans)
{
	struct master *m = q->m;
	const json_t *mine = json_object_get(ans, "mine");
	uint64_t local, used, mn;
	int idx;

	if ((idx = shm_ledger_find(&m->shm, q->phone)) < 0 &&
	    (idx = shm_ledger_get_locked(&m->shm, q->phone)) < 0)
		return;		/* full: the worker refuses it, and says so */
	if (!json_is_integer(mine))
		return;
	local = shm_usage_ms(&m->shm, q->phone, mono_ms());
	mn = (uint64_t)json_integer_value(mine);
	used = (mn > local ? mn : local) +
	    (uint64_t)json_integer_value(json_object_get(ans, "others"));
	shm_remote_set(&m->shm, idx, used - local);
}

static void
upgrade_go(struct conn *c, const json_t *ans, void *ctx)
{
	struct sq *q = ctx;
	struct master *m = q->m;
	const char *by, *what, *msg;

	if (ans == NULL) {
		/* the worker checks this host's used tokens, as without a
		 * shared database */
		post_claims(q);
		upgrade_caller(q, NULL);
		conn_defer_handoff(c);
		return;
	}
	if (json_is_true(json_object_get(ans, "claimed"))) {
		upgrade_caller(q, ans);
		conn_defer_handoff(c);
		return;
	}
	by = json_string_value(json_object_get(ans, "by"));
	what = json_string_value(json_object_get(ans, "what"));
	if (by != NULL && strcmp(by, m->hostname) == 0)
		master_count(m, SC_token_replayed);
	else
		master_count(m, SC_token_replayed_shared);
	log_warnx("%s: stream upgrade refused: %s used already, on host %s",
	    conn_peer(c), strcmp(what ? what : "", "call") == 0 ?
	    "the call's stream was opened" : "its token was",
	    by && by[0] ? by : "unknown");
	msg = strcmp(what ? what : "", "call") == 0 ?
	    "call already streamed\n" : "stream token already used\n";
	conn_no_keepalive(c);
	conn_defer_respond(c, 403, "text/plain", msg, strlen(msg), NULL);
}

void
shared_upgrade(struct conn *c, struct http_req *r)
{
	struct master *m = conn_master(c);
	struct stream_token t;
	char path[2048], *route, *slash, *tok;
	struct sq *q;
	int rc;

	if (!shared_on(m)) {
		conn_handoff(c, r);
		return;
	}
	/* /media-stream/<route>/<token> or /relay/<line>/<token>: only a
	 * token that is ours is claimed; the worker refuses the rest */
	vr_strlcpy(path, http_req_url(r), sizeof(path));
	path[strcspn(path, "?#")] = '\0';
	route = strchr(path + 1, '/');
	if (route == NULL || (slash = strchr(route + 1, '/')) == NULL) {
		conn_handoff(c, r);
		return;
	}
	tok = slash + 1;
	rc = token_verify(m->conf.stream_secret, tok, strlen(tok),
	    wall_ms() / 1000, &t);
	if (rc != TOKEN_OK || (q = sq_new(c, SQ_TOKEN)) == NULL) {
		conn_handoff(c, r);
		return;
	}
	if (token_key(tok, strlen(tok), q->keys[0], sizeof(q->keys[0])) != 0) {
		free(q);
		conn_handoff(c, r);
		return;
	}
	/* one stream per call, as the worker's table keeps it: a resumed
	 * stream has a key of its own */
	if (t.resume != 0)
		snprintf(q->keys[1], sizeof(q->keys[1]), "r:%s:%llu", t.call_sid,
		    (unsigned long long)t.resume);
	else
		snprintf(q->keys[1], sizeof(q->keys[1]), "c:%s", t.call_sid);
	vr_strlcpy(q->phone, t.caller, sizeof(q->phone));
	q->now = wall_ms();
	q->expires = t.expires * 1000;
	q->go = upgrade_go;
	q->ctx = q;
	q->ctx_free = NULL;
	if (sq_ask(c, q, token_query) != 0) {
		master_count(m, SC_token_claim_fallbacks);
		conn_handoff(c, r);
	}
}

/* ---------------------------------------------------------------- */
/* calls live here: the other hosts' minutes again */

/* On the thread: every caller's minutes split by host, STORE_CALLERS_MAX
 * callers to a SELECT. */
static json_t *
live_query(struct store_db *db, void *arg, char *err, size_t errlen)
{
	struct sq *q = arg;
	const char *v[STORE_CALLERS_MAX];
	json_t *all, *rows;
	size_t k;

	if (db == NULL) {
		snprintf(err, errlen, "the database is down");
		return NULL;
	}
	if ((all = json_array()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < q->nphones; i += k) {
		k = q->nphones - i < STORE_CALLERS_MAX ? q->nphones - i :
		    STORE_CALLERS_MAX;
		for (size_t j = 0; j < k; j++)
			v[j] = q->phones[i + j];
		if ((rows = store_db_callers_minutes(db, v, k, q->host, err,
		    errlen)) == NULL) {
			json_decref(all);
			return NULL;
		}
		json_array_extend(all, rows);
		json_decref(rows);
	}
	return all;
}

/*
 * The answer, on the loop: each caller's minutes on the other hosts as
 * the webhook counts them (the larger of this host's ledger and its own
 * rows, plus the others'), less this host's, into the ledger entry the
 * worker's limit reads.  No answer: the figures stay as last read.
 */
static void
live_done(struct sq *q, json_t *res, const char *err)
{
	struct master *m = q->m;
	uint64_t now = mono_ms(), local, mine, used;
	const char *phone;
	json_t *row;
	size_t i;
	int idx;

	L.out = 0;
	if (res == NULL) {
		static uint64_t logged_ms;

		master_count(m, SC_shared_live_fallbacks);
		if (logged_ms == 0 || now - logged_ms >= 60000) {
			logged_ms = now;
			log_warnx("DATABASE_URL: %s; live calls go on with the "
			    "other hosts' minutes as last read (said once a "
			    "minute)", err ? err : "no answer");
		}
	} else {
		master_count(m, SC_shared_live_reads);
		json_array_foreach(res, i, row) {
			phone = json_string_value(json_object_get(row, "phone"));
			if (phone == NULL ||
			    (idx = shm_ledger_find(&m->shm, phone)) < 0)
				continue;
			local = shm_usage_ms(&m->shm, phone, now);
			mine = (uint64_t)json_integer_value(json_object_get(row,
			    "mine"));
			used = (mine > local ? mine : local) + (uint64_t)
			    json_integer_value(json_object_get(row, "others"));
			shm_remote_set(&m->shm, idx, used - local);
		}
		json_decref(res);
	}
	free(q->phones);
	free(q);
}

static int
phone_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * From the master's tick: once every SHARED_LIVE_INTERVAL, half a second
 * after the moment every host writes its live calls' minutes (the same
 * multiples of the interval on each host's clock: see live_minutes()),
 * ask for the minutes of each caller with a call live here on a line
 * with a quota.  So a figure is the other host's at most about an
 * interval and a second old, with clocks in step; a write that comes
 * after the read is seen an interval later.
 */
void
shared_live(struct master *m)
{
	uint64_t ivl, wall, period;
	struct shm_call_view v;
	const struct line *line;
	struct sq *q;
	size_t n = 0, u = 0;

	if (!shared_on(m))
		return;
	ivl = (uint64_t)m->conf.shared_live_interval * 1000;
	if ((wall = wall_ms()) < LIVE_READ_AFTER_MS)
		return;
	period = (wall - LIVE_READ_AFTER_MS) / ivl;
	if (period == L.period)
		return;
	L.period = period;
	if (L.out) {
		/* the last is not back (the database slow): the calls go on
		 * with the figures they have */
		master_count(m, SC_shared_live_fallbacks);
		return;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->phones = calloc(m->shm.hdr->sh_ncalls,
	    sizeof(*q->phones))) == NULL) {
		free(q);
		return;
	}
	for (unsigned i = 0; i < m->shm.hdr->sh_ncalls; i++) {
		if (atomic_load_explicit(&m->shm.calls[i].cs_state,
		    memory_order_relaxed) != CS_LIVE ||
		    shm_call_read(&m->shm, (int)i, &v) != 0 ||
		    v.state != CS_LIVE || v.phone[0] == '\0')
			continue;
		if ((line = line_find(&m->lines, v.route)) == NULL)
			line = &m->lines.fallback;
		if (line_has_quota(line))
			vr_strlcpy(q->phones[n++], v.phone, SHM_PHONE_MAX);
	}
	/* one question per caller, however many calls it has here */
	qsort(q->phones, n, sizeof(*q->phones), phone_cmp);
	for (size_t i = 0; i < n; i++)
		if (u == 0 || strcmp(q->phones[i], q->phones[u - 1]) != 0)
			memmove(q->phones[u++], q->phones[i], SHM_PHONE_MAX);
	if (u == 0) {
		free(q->phones);
		free(q);
		return;
	}
	q->nphones = u;
	q->kind = SQ_LIVE;
	q->m = m;
	q->asked_ms = mono_ms();
	vr_strlcpy(q->host, m->hostname, sizeof(q->host));
	if (thr_enqueue(q, live_query) != 0) {
		master_count(m, SC_shared_live_fallbacks);
		free(q->phones);
		free(q);
		return;
	}
	L.out = 1;
}
