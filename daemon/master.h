/*
 * master.h — the master process: one libuv loop that accepts every
 * connection, answers the short requests from the config and the shared
 * table, hands WebSocket upgrades to workers and supervises them.
 *
 * Everything here runs in the master only, on its loop.  The master does no
 * DNS, no TLS and no disk sync on the request path: the usage CSV is written
 * by a short-lived child (ledger.c).
 */
#ifndef VR_MASTER_H
#define VR_MASTER_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "daemon/campaign.h"
#include "daemon/common/conf.h"
#include "personas/line.h"
#include "personas/persona.h"
#include "shm/shm.h"

/*
 * The master listens twice: on BIND:PORT for Twilio (the webhook, the
 * media streams, a bare liveness check) and on ADMIN_BIND:ADMIN_PORT for
 * the operator (/health, /metrics, /dashboard, /usage-data, /api/...).
 * Both share one accept loop, one connection cap and one descriptor
 * reserve; each connection remembers which one it came in on, and only
 * that decides what it may ask for.
 */
enum listener_kind {
	LS_PUBLIC,
	LS_ADMIN,
	LS__COUNT
};

struct listener {
	enum listener_kind	 kind;
	int			 fd;		/* -1 until front_listen() */
	uv_poll_t		 poll;
	int			 poll_init;
	int			 accepting;	/* poll started */
};

/* What the master keeps about one worker slot (the slot in shm is what
 * everybody else sees). */
struct worker_proc {
	int		 slot;
	pid_t		 pid;		/* 0 when not running */
	int		 chan;		/* master's end of the socketpair, -1 */
	uv_poll_t	*chan_poll;	/* records from the worker; NULL */
	uint32_t	 generation;
	int		 retire;	/* do not respawn when it exits */
	uint64_t	 started_ms;
	uint64_t	 handoffs_sent;
	uint32_t	 restarts;
	int		 young_deaths;	/* consecutive deaths under a minute */
	uint64_t	 respawn_at_ms;	/* 0: no respawn scheduled */
	uint64_t	 deadline_ms;	/* draining: shut down at */
	uint64_t	 kill_at_ms;	/* shut down sent: SIGKILL at */
	int		 in_use;	/* slot belongs to a live generation */
};

struct master {
	uv_loop_t		*loop;
	struct conf		 conf;
	struct persona_set	 personas;
	struct line_set		 lines;
	struct campaign_set	 campaigns;
	struct shm		 shm;
	int			 foreground;
	int			 ready_fd;	/* told "1" once serving, -1 */
	char			 conf_path[1024];

	/* listening */
	struct listener		 ls[LS__COUNT];
	int			 accept_init;
	uv_timer_t		 accept_pause;	/* EMFILE back-off */
	int			 reserve_fd;	/* released on EMFILE */
	unsigned		 nconns;

	/* signals, through a signalfd: see master.c */
	int			 sigfd;
	uv_poll_t		 sigpoll;

	uv_timer_t		 tick;		/* 100 ms: fold, supervise */
	struct worker_proc	 w[SHM_MAX_WORKERS];
	uint32_t		 generation;
	uint64_t		 handoff_seq;

	/* shutdown */
	int			 draining;
	int			 stopping;	/* second signal: no more waiting */
	uint64_t		 drain_deadline_ms;

	/* call records: NULL when the store could not start */
	struct store		*store;
	char			 hostname[256];

	/* ledger flush */
	pid_t			 flush_pid;
	uint64_t		 flush_version;	/* ledger version being written */
	uint64_t		 flushed_version;
	uint64_t		 next_flush_ms;
	uint64_t		 live_period;	/* live calls' minutes to the database:
						 * the last period written (wall
						 * ms / SHARED_LIVE_INTERVAL) */
	uint64_t		 flush_fail_logged;
	struct shm_live_count	 live_count;	/* each caller's live calls */
	/* what each ledger entry held in the save in progress (ledger.c) */
	struct ledger_saved	*save_snap;
	/* the rescue journal taken into the ledger, waiting for a save that
	 * holds it (version rescue_version or later) to be removed */
	int			 rescue_wait;
	uint64_t		 rescue_version;
	uint64_t		*rescue_ids;	/* ids of the records taken */
	unsigned		 rescue_nids;
	json_t			*rescue_records; /* for the store, once it is up */
};

/* master.c */
int  master_run(struct master *m);
void master_count(struct master *m, enum shm_counter c);
/* Worker slot with the least load that takes new calls and is not in the
 * skip mask (bit per slot), or -1. */
int  master_pick_worker(struct master *m, uint64_t skip);
unsigned master_streams_in_use(struct master *m);
/* An outbound call's answering-machine verdict, to the worker holding its
 * stream: 0 sent, 1 kept until the stream starts (30 s at most), -1 not
 * sent. */
int  master_amd(struct master *m, const char *sid, const char *by);

/* front.c: listeners and HTTP connections */
int  front_listen(struct master *m);
void front_start(struct master *m);
void front_stop(struct master *m);

/* routes.c: the answers */
struct conn;
struct http_req;
void routes_dispatch(struct conn *c, struct http_req *r);
/* Sort the ledger for /usage-data now (at start), not on the request path. */
void routes_usage_warm(struct master *m);
/* Send a response on c; body copied.  Used by routes and front. */
void conn_respond(struct conn *c, int status, const char *content_type,
    const char *body, size_t len, const char *extra_headers);
int  conn_keep_alive(const struct conn *c);
/* Answer the current request, then close. */
void conn_no_keepalive(struct conn *c);
const char *conn_peer(const struct conn *c);
/* The master c was accepted by: what a route reads and changes. */
struct master *conn_master(const struct conn *c);
/* The listener c was accepted on. */
enum listener_kind conn_listener(const struct conn *c);
/*
 * An answer of unknown length, produced in pieces as the client takes
 * them: fill writes up to cap bytes of body into buf and returns how many,
 * 0 at the end, -1 on failure (the connection is cut).  done frees arg,
 * always, whatever happens.  Over ANSWER_BUDGET the client gets 503 and
 * fill is never called.  Returns 0 when the answer started, else -1.
 */
typedef ssize_t (*conn_fill_cb)(void *arg, char *buf, size_t cap);
typedef void (*conn_free_cb)(void *arg);
int  conn_stream(struct conn *c, int status, const char *content_type,
    const char *extra_headers, conn_fill_cb fill, conn_free_cb done,
    void *arg);
/* A fill with nothing ready yet returns CONN_FILL_AGAIN; the producer
 * calls conn_stream_wake() once it has more (or knows it is at the end). */
#define CONN_FILL_AGAIN	(-2)
void conn_stream_wake(struct conn *c);
/*
 * An answer that comes later (a query on the store thread): conn_defer()
 * holds the connection's turn (nothing more is read, requests behind it
 * wait) until conn_defer_respond() or conn_defer_stream() answers.  done
 * frees arg, always, once: when the answer is out, or when the connection
 * closes first (a client gone, a timeout), after which c must not be
 * used.  conn_defer() returns 0, or -1 (done called, c closed).
 */
int  conn_defer(struct conn *c, conn_free_cb done, void *arg);
void conn_defer_respond(struct conn *c, int status, const char *content_type,
    const char *body, size_t len, const char *extra_headers);
int  conn_defer_stream(struct conn *c, int status, const char *content_type,
    const char *extra_headers, conn_fill_cb fill);
/* Hand c (an upgrade request r) to a worker, or answer 503. */
void conn_handoff(struct conn *c, struct http_req *r);
/* A deferred upgrade request (conn_defer()) handed to a worker after
 * all: its turn ends (done is called) and c is the worker's. */
void conn_defer_handoff(struct conn *c);

/* shared.c: what hosts sharing DATABASE_URL ask it at the door */
int  shared_on(const struct master *m);
/* With DATABASE_URL and the store started: the thread that asks, with
 * its own connection.  shared_stop() answers what is left "down". */
int  shared_start(struct master *m);
void shared_stop(struct master *m);
/* The answer on the loop: ans NULL when the database did not answer
 * within SHARED_TIMEOUT_MS (or is down).  c is deferred: answer it with
 * conn_defer_respond(). */
typedef void (*shared_go_cb)(struct conn *c, const json_t *ans, void *ctx);
/* A caller's minutes, {"mine": ms this host reported, "others": ms
 * other hosts did}.  0: c deferred, go called unless c closes first,
 * ctx_free(ctx) called in the end; -1: nothing asked, ctx still the
 * caller's. */
int  shared_minutes(struct conn *c, const char *phone, shared_go_cb go,
    void *ctx, void (*ctx_free)(void *));
/* A stream upgrade: its token and call claimed in the database, then
 * handed to a worker, or refused with 403 when another host (or this
 * one) used either; handed over on a timeout, the keys posted to the
 * store for later. */
void shared_upgrade(struct conn *c, struct http_req *r);
/* From the tick: every SHARED_LIVE_INTERVAL, the minutes other hosts
 * report for the callers with a call live here, re-read for the workers'
 * limits (shm_remote_set); nothing waits for the answer. */
void shared_live(struct master *m);

/* prewarm.c: the model's session opened at the webhook (PREWARM) */
/* The webhook admitted a call to line (persona p) with this stream token
 * (expiring at expires, wall seconds): have a worker open its session. */
void prewarm_offer(struct master *m, const struct line *line,
    const struct persona *p, int outbound, const char *token,
    uint64_t expires, uint64_t webhook_us);
/* The worker slot that holds the session of the upgrade to path, or -1. */
int  prewarm_route(struct master *m, const char *path);

/* metrics.c: GET /metrics, the figures of /health for Prometheus (text
 * format 0.0.4), from the shared table only. */
void route_metrics(struct conn *c);
/* api.c: the call records under /api/ (the token already checked), and
 * the CORS preflight (answered without it) */
void api_route(struct conn *c, struct http_req *r);
void api_preflight(struct conn *c, struct http_req *r);
/* Access-Control-Allow-Origin for an allowed Origin, and Vary, into out. */
const char *api_cors_headers(const struct master *m, struct http_req *r,
    char *out, size_t len);
/* dashboard.c: GET /dashboard, a page built into the binary that polls
 * /health. */
void route_dashboard(struct conn *c);
/* GET /dashboard/calls: the calls page, which reads /api/... */
void route_dashboard_calls(struct conn *c);

/* ledger.c */
/* replay.c: the voice webhook's answers by CallSid, the used-token file */
enum replay_verdict {
	REPLAY_NEW,		/* no answer for this CallSid yet */
	REPLAY_REPEAT,		/* answered, stream not open: same answer */
	REPLAY_REFUSE,		/* its stream opened, or the call is live/over */
};
enum replay_verdict replay_check(struct master *m, const char *sid,
    const char **twiml, size_t *len);
/* A resume marker for sid on line, coming back by the inbound or the
 * outbound path: 0 and *resume its expiry when it is good (for that line
 * and that direction) and now used; -1 (why in *why) when not. */
int  replay_resume(struct master *m, const char *sid, const char *line,
    int outbound, const char *marker, uint64_t *resume, const char **why);
int  replay_store(const struct master *m, const char *sid, uint64_t expires,
    const char *twiml, size_t len);
void replay_tokens_load(struct master *m);
void replay_tokens_tick(struct master *m, uint64_t now_ms);

int  ledger_load(struct master *m, char *err, size_t errlen);
/* Start a flush in a child if the ledger changed and none is running. */
void ledger_flush_async(struct master *m);
/* The flush child exited with status st. */
void ledger_flush_done(struct master *m, int st);
/* Write now, in this process (at exit).  0 or -errno. */
int  ledger_flush_sync(struct master *m);
/* The rescue journal a dead master's workers left (shm/rescue.h): into
 * the ledger, then saved, then removed.  _sync saves in this process (at
 * start, before serving, and at exit); _async leaves the save to the next
 * flush child and removes the journal when that one succeeds. */
void ledger_rescue_take_sync(struct master *m);
void ledger_rescue_take_async(struct master *m);
/* The records of the inbound calls a dead master's workers ended, to the
 * store (closed as failed, "master died"): when the store is up. */
void ledger_rescue_records(struct master *m);

#endif
