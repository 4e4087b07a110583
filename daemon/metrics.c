/*
 * metrics.c — GET /metrics: the figures of /health in the Prometheus text
 * exposition format, version 0.0.4.
 *
 * Runs in the master, on its loop, like every route: it reads the shared
 * table and the master's own worker table, and waits on nothing.  The
 * figures are read without a lock while workers write them, so two series
 * of one scrape may be a few events apart; each one alone is exact.
 *
 * Names follow Prometheus' conventions, which `promtool check metrics`
 * enforces: base units (seconds), counters end in _total, nothing else
 * does.  Every counter of shm/counters.h is voxrelay_<name>_total with the
 * X-macro's help text, with two exceptions for base units: the one
 * counted in ms (silence_fill_ms) is voxrelay_silence_fill_seconds_total,
 * and refused_minutes (a count of calls, not of minutes) is
 * voxrelay_refused_quota_total, since a name with "minutes" in it reads as
 * a time in minutes.
 *
 * Latency histograms: shm keeps 100 buckets of integer µs, four per power
 * of two; bucket b holds the values up to shm_hist_bucket_le(b).  Buckets
 * nest, so the cumulative count at any bucket's bound is exact.  We expose
 * every other bound from 1 µs to ~50 s, two per power of two (2^k - 1 and
 * 1.5 * 2^k - 1 µs, 49 in all), written as exact decimal seconds.  The
 * last shm bucket (the overflow) only counts in +Inf.  _count is the +Inf
 * bucket, summed from the same copy of the buckets, so the two agree.
 */
#include "daemon/master.h"
#include "daemon/store.h"
#include "daemon/common/util.h"
#include "proto/buf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define METRICS_TYPE	"text/plain; version=0.0.4; charset=utf-8"
#define METRICS_MAX	(4u << 20)	/* a scrape is ~30 KB */

/* first and step of the bucket bounds exposed (see the top comment) */
#define LE_FIRST	1
#define LE_STEP		2

struct out {
	struct buf	 b;
	int		 err;
	struct master	*m;		/* whose figures */
};

static void out_printf(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	if (o->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (p = buf_reserve(&o->b, (size_t)n + 1)) == NULL) {
		o->err = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_commit(&o->b, (size_t)n);
}

/* An integer count of 1/den units as an exact decimal: 1500 µs ->
 * "0.0015".  den is 1000 or 1000000. */
static const char *
decimal(char *s, size_t len, uint64_t v, uint64_t den)
{
	int digits = den == 1000 ? 3 : 6;
	size_t n;

	snprintf(s, len, "%" PRIu64 ".%0*" PRIu64, v / den, digits, v % den);
	n = strlen(s);
	while (n > 0 && s[n - 1] == '0')
		s[--n] = '\0';
	if (n > 0 && s[n - 1] == '.')
		s[--n] = '\0';
	return s;
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	out_printf(o, "# HELP voxrelay_%s %s\n# TYPE voxrelay_%s %s\n",
	    name, help, name, type);
}

static void
gauge(struct out *o, const char *name, const char *help, uint64_t v)
{
	family(o, name, "gauge", help);
	out_printf(o, "voxrelay_%s %" PRIu64 "\n", name, v);
}

static void
counter(struct out *o, const char *name, const char *help, uint64_t v)
{
	size_t n;
	char num[48];

	if (strcmp(name, "refused_minutes") == 0)
		name = "refused_quota";
	n = strlen(name);
	if (n > 3 && strcmp(name + n - 3, "_ms") == 0) {
		/* base units: ms become seconds */
		out_printf(o, "# HELP voxrelay_%.*s_seconds_total %s "
		    "(in seconds)\n# TYPE voxrelay_%.*s_seconds_total counter\n"
		    "voxrelay_%.*s_seconds_total %s\n", (int)(n - 3), name, help,
		    (int)(n - 3), name, (int)(n - 3), name,
		    decimal(num, sizeof(num), v, 1000));
		return;
	}
	out_printf(o, "# HELP voxrelay_%s_total %s\n"
	    "# TYPE voxrelay_%s_total counter\nvoxrelay_%s_total %" PRIu64 "\n",
	    name, help, name, name, v);
}

static const struct {
	const char	*name;
	const char	*help;
} hists[SH__COUNT] = {
	[SH_RELAY_IN] = { "relay_in_latency_seconds",
	    "Time from reading a Twilio media frame to queueing it upstream." },
	[SH_RELAY_OUT] = { "relay_out_latency_seconds",
	    "Time from reading model audio to queueing it for Twilio." },
	[SH_RESPONSE] = { "response_latency_seconds",
	    "Time from the caller's end of speech to the first audio sent back." },
	[SH_BARGEIN] = { "barge_in_latency_seconds",
	    "Time from the caller's speech start to the clear sent to Twilio." },
	[SH_HANDOFF] = { "handoff_latency_seconds",
	    "Time from the master's accept to the 101 written by the worker." },
	[SH_READY] = { "session_ready_seconds",
	    "Time from the webhook's answer to the model's session.updated." },
	[SH_GREETING] = { "greeting_latency_seconds",
	    "Time from the stream's start to the first greeting audio sent." },
};

static void
histogram(struct out *o, enum shm_hist_id id)
{
	struct shm_hist h;
	uint64_t cum = 0, total = 0;
	char num[48];
	unsigned b;

	shm_hist_sum(&o->m->shm, id, &h);
	for (b = 0; b < SHM_HIST_BUCKETS; b++)
		total += h.h_bucket[b];
	family(o, hists[id].name, "histogram", hists[id].help);
	for (b = 0; b < SHM_HIST_BUCKETS - 1; b++) {
		cum += h.h_bucket[b];
		if (b < LE_FIRST || (b - LE_FIRST) % LE_STEP != 0)
			continue;
		out_printf(o, "voxrelay_%s_bucket{le=\"%s\"} %" PRIu64 "\n",
		    hists[id].name, decimal(num, sizeof(num),
		    shm_hist_bucket_le(b), 1000000), cum);
	}
	out_printf(o, "voxrelay_%s_bucket{le=\"+Inf\"} %" PRIu64 "\n",
	    hists[id].name, total);
	out_printf(o, "voxrelay_%s_sum %s\n", hists[id].name,
	    decimal(num, sizeof(num), h.h_sum_us, 1000000));
	out_printf(o, "voxrelay_%s_count %" PRIu64 "\n", hists[id].name, total);
}

/* The worker slots /health lists: in use, or not yet free. */
static int
worker_shown(const struct master *m, unsigned i)
{
	return atomic_load(&m->shm.workers[i].sw_state) != SW_FREE ||
	    m->w[i].in_use;
}

/* One series per shown worker of a per-worker gauge or counter. */
static void
per_worker(struct out *o, const char *name, const char *type,
    const char *help, uint64_t (*get)(const struct shm_worker *, uint64_t),
    int seconds_ms)
{
	const struct master *m = o->m;
	uint64_t now = mono_ms();
	char num[48];

	family(o, name, type, help);
	for (unsigned i = 0; i < m->shm.hdr->sh_nworkers; i++) {
		const struct shm_worker *sw = &m->shm.workers[i];
		uint64_t v;

		if (!worker_shown(m, i))
			continue;
		v = get(sw, now);
		if (seconds_ms)
			decimal(num, sizeof(num), v, 1000);
		else
			snprintf(num, sizeof(num), "%" PRIu64, v);
		out_printf(o, "voxrelay_%s{slot=\"%u\",generation=\"%" PRIu32
		    "\"} %s\n", name, i, atomic_load(&sw->sw_generation), num);
	}
}

static uint64_t
w_streams(const struct shm_worker *sw, uint64_t now)
{
	return atomic_load(&sw->sw_active_streams);
}

static uint64_t
w_calls(const struct shm_worker *sw, uint64_t now)
{
	return atomic_load(&sw->sw_live_calls);
}

static uint64_t
w_restarts(const struct shm_worker *sw, uint64_t now)
{
	return atomic_load(&sw->sw_restarts);
}

static uint64_t
w_calls_total(const struct shm_worker *sw, uint64_t now)
{
	return atomic_load(&sw->sw_calls_total);
}

static uint64_t
w_heartbeat_age_ms(const struct shm_worker *sw, uint64_t now)
{
	uint64_t hb = atomic_load(&sw->sw_heartbeat_ms);

	return hb && now > hb ? now - hb : 0;
}

/* The same rule as /health (routes.c): draining, or ok when every worker
 * of the live generation is ready and the ledger takes new callers, else
 * degraded. */
static const char *
status_now(const struct master *m)
{
	unsigned ready = 0, expected = 0;

	if (m->draining)
		return "draining";
	for (unsigned i = 0; i < m->shm.hdr->sh_nworkers; i++) {
		if (m->w[i].in_use && !m->w[i].retire)
			expected++;
		if (atomic_load(&m->shm.workers[i].sw_state) == SW_READY &&
		    !m->w[i].retire)
			ready++;
	}
	return ready < expected || expected == 0 || shm_ledger_full(&m->shm) ?
	    "degraded" : "ok";
}

static void
metrics_write(struct out *o)
{
	static const char *const statuses[] = { "ok", "degraded", "draining" };
	struct master *m = o->m;
	const char *status = status_now(m);
	uint64_t now = mono_ms(), now_wall = wall_ms(), up_ms, day_ms, day_calls;
	char num[48];

	up_ms = now - m->shm.hdr->sh_birth_ms;
	family(o, "build_info", "gauge",
	    "The running version, as a label; always 1.");
	out_printf(o, "voxrelay_build_info{version=\"%s\"} 1\n",
	    VOXRELAY_VERSION);
	family(o, "status", "gauge", "1 for the daemon's status as /health "
	    "gives it (ok, degraded, draining), 0 for the others.");
	for (size_t i = 0; i < ARRAY_LEN(statuses); i++)
		out_printf(o, "voxrelay_status{status=\"%s\"} %d\n", statuses[i],
		    strcmp(status, statuses[i]) == 0);
	family(o, "uptime_seconds", "gauge",
	    "Seconds since the master started.");
	out_printf(o, "voxrelay_uptime_seconds %s\n",
	    decimal(num, sizeof(num), up_ms, 1000));
	family(o, "start_time_seconds", "gauge",
	    "When the master started, in seconds since the Unix epoch.");
	out_printf(o, "voxrelay_start_time_seconds %s\n", decimal(num,
	    sizeof(num), m->shm.hdr->sh_birth_wall_ms, 1000));
	gauge(o, "generation", "Worker generation: 1 at start, one more for "
	    "each accepted reload.", m->generation);
	gauge(o, "active_calls", "Calls whose media stream is live.",
	    shm_calls_live(&m->shm));
	gauge(o, "active_streams", "Media stream connections held by the "
	    "workers, counted against MAX_WEBSOCKET_CONNECTIONS.",
	    master_streams_in_use(m));
	gauge(o, "max_streams", "MAX_WEBSOCKET_CONNECTIONS.",
	    (uint64_t)m->conf.max_ws_connections);
	gauge(o, "signature_validation", "1 when webhooks must carry a valid "
	    "X-Twilio-Signature; 0 when VALIDATE_TWILIO_SIGNATURE=false waives "
	    "it.", (uint64_t)m->conf.validate_signature);
	gauge(o, "http_connections", "HTTP connections open on the master.",
	    m->nconns);
	gauge(o, "ledger_callers", "Callers in the usage ledger.",
	    atomic_load(&m->shm.hdr->sh_ledger_used));
	gauge(o, "ledger_capacity", "Callers the usage ledger takes "
	    "(LEDGER_CAPACITY); a new caller past it is refused.",
	    atomic_load(&m->shm.hdr->sh_ledger_cap));
	gauge(o, "ledger_saved", "1 when the usage CSV on disk is up to date.",
	    m->flushed_version == atomic_load(&m->shm.hdr->sh_ledger_version));
	shm_today(&m->shm, now, now_wall, &day_ms, &day_calls);
	gauge(o, "today_calls", "Calls started today (UTC), ended or live, "
	    "since the master started.", day_calls);
	family(o, "today_call_seconds", "gauge", "Time of the calls started "
	    "today (UTC), ended or live, since the master started.");
	out_printf(o, "voxrelay_today_call_seconds %s\n",
	    decimal(num, sizeof(num), day_ms, 1000));
	if (m->store != NULL) {
		struct store_stats ss;

		store_get_stats(m->store, &ss);
		gauge(o, "records_up", "1 when the call-record database is open "
		    "and answering.", (uint64_t)ss.up);
		gauge(o, "records_queued", "Call records waiting in memory for "
		    "the store thread.", ss.queued);
		gauge(o, "records_backlog", "Call records in the journal, not yet "
		    "in the database.", ss.backlog);
		counter(o, "records_written", "call records written to the "
		    "database as they came", ss.written);
		counter(o, "records_journaled", "call records appended to the "
		    "journal while the database was unavailable", ss.journaled);
		counter(o, "records_replayed", "call records written to the "
		    "database from the journal", ss.replayed);
		counter(o, "records_rejected", "call records refused as "
		    "malformed", ss.rejected);
		counter(o, "records_dropped", "call records lost: neither the "
		    "database nor the journal took them", ss.dropped);
	}

#define X(name, help) counter(o, #name, help, \
	    shm_counter_sum(&m->shm, SC_##name));
	SHM_COUNTERS(X)
#undef X

	family(o, "worker_state", "gauge",
	    "1 for the worker slot's state, 0 for the others.");
	for (unsigned i = 0; i < m->shm.hdr->sh_nworkers; i++) {
		const struct shm_worker *sw = &m->shm.workers[i];
		uint32_t st = atomic_load(&sw->sw_state);

		if (!worker_shown(m, i))
			continue;
		for (unsigned k = 0; k < SW__COUNT; k++)
			out_printf(o, "voxrelay_worker_state{slot=\"%u\","
			    "generation=\"%" PRIu32 "\",state=\"%s\"} %d\n", i,
			    atomic_load(&sw->sw_generation),
			    shm_worker_state_names[k], st == k);
	}
	per_worker(o, "worker_active_streams", "gauge",
	    "Media stream connections the worker holds.", w_streams, 0);
	per_worker(o, "worker_live_calls", "gauge",
	    "Of those, calls past their start message.", w_calls, 0);
	per_worker(o, "worker_restarts", "gauge",
	    "Times the worker slot was respawned.", w_restarts, 0);
	per_worker(o, "worker_heartbeat_age_seconds", "gauge",
	    "Seconds since the worker's last heartbeat.", w_heartbeat_age_ms, 1);
	per_worker(o, "worker_calls_total", "counter",
	    "Calls the worker slot has carried.", w_calls_total, 0);

	for (int i = 0; i < SH__COUNT; i++)
		histogram(o, (enum shm_hist_id)i);
}

void
route_metrics(struct conn *c)
{
	struct out o = { .err = 0, .m = conn_master(c) };

	buf_init(&o.b, METRICS_MAX);
	metrics_write(&o);
	if (o.err)
		conn_respond(c, 500, "text/plain; charset=utf-8",
		    "out of memory\n", 14, NULL);
	else
		conn_respond(c, 200, METRICS_TYPE, buf_head(&o.b),
		    buf_pending(&o.b), NULL);
	buf_free(&o.b);
}
