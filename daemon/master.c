/*
 * master.c — supervision: the worker table, spawn, reap, respawn, the
 * heartbeat watch, reload, drain and shutdown, and the 100 ms tick that
 * folds finished calls into the ledger.
 *
 * Signals reach the loop through a signalfd under a uv_poll_t, never
 * through uv_signal_t: libuv's signal handler writes to every loop that
 * registered a handle, and a forked worker would inherit the master's
 * registrations and forward its own signals to the master (style.md §8).
 * The master keeps TERM, INT, HUP, USR1, QUIT and CHLD blocked for its
 * whole life; a child resets them before it unblocks.
 */
#include "daemon/config.h"
#include "daemon/master.h"
#include "daemon/outbound.h"
#include "daemon/store.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/ipc.h"
#include "worker/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TICK_MS			100
#define YOUNG_MS		60000	/* a death before this is "young" */
#define BACKOFF_MAX_MS		30000
#define SHUTDOWN_GRACE_MS	5000	/* after IPC_SHUTDOWN, SIGKILL */
#define SPAWN_GRACE_MS		10000	/* to become ready */
/* at every start and accepted reload, so the waiver is never forgotten */
#define SIG_WAIVED_WARNING	"VALIDATE_TWILIO_SIGNATURE=false: webhooks are " \
	"accepted without a valid X-Twilio-Signature; anyone who can reach " \
	"this port can open calls on the OpenAI account (set " \
	"TWILIO_AUTH_TOKEN and remove the waiver)"

static const int handled_signals[] = {
	SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGQUIT, SIGCHLD,
};

void
master_count(struct master *m, enum shm_counter c)
{
	shm_count(m->shm.hdr->sh_counters, c, 1);
}

static uint64_t
worker_load(struct master *m, int i)
{
	struct shm_worker *sw = &m->shm.workers[i];
	uint64_t seen = atomic_load(&sw->sw_handoffs_seen);
	uint64_t inflight = m->w[i].handoffs_sent > seen ?
	    m->w[i].handoffs_sent - seen : 0;

	return atomic_load(&sw->sw_active_streams) + inflight;
}

int
master_pick_worker(struct master *m, uint64_t skip)
{
	int best = -1;
	uint64_t best_load = UINT64_MAX;

	for (int i = 0; i < SHM_MAX_WORKERS; i++) {
		struct worker_proc *p = &m->w[i];

		if (!p->in_use || p->retire || p->pid == 0 || p->chan < 0 ||
		    (skip & (1ull << i)))
			continue;
		if (atomic_load(&m->shm.workers[i].sw_state) != SW_READY)
			continue;
		uint64_t l = worker_load(m, i);
		if (l < best_load) {
			best = i;
			best_load = l;
		}
	}
	return best;
}

unsigned
master_streams_in_use(struct master *m)
{
	uint64_t n = 0;

	for (int i = 0; i < SHM_MAX_WORKERS; i++)
		if (m->w[i].pid != 0)
			n += worker_load(m, i);
	return (unsigned)n;
}

static int
chan_send(struct master *m, int slot, enum ipc_type type)
{
	char msg[64];
	long n = ipc_encode(msg, sizeof(msg), type, 0, NULL, 0);

	if (n < 0 || m->w[slot].chan < 0)
		return -1;
	if (send(m->w[slot].chan, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		log_warn("send(%s) to worker %d", ipc_type_name(type), slot);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* answering-machine verdicts, for the worker holding the call's stream */

/*
 * Twilio may give its verdict before the callee's stream has started
 * (AsyncAmd runs beside the TwiML request): such a verdict waits here, a
 * few at a time and briefly, for the first record of its call from a
 * worker, which comes right after the stream's `start`.
 */
#define AMD_WAIT_MAX	64
#define AMD_WAIT_MS	30000

struct amd_wait {
	struct ipc_amd	 a;
	uint64_t	 until_ms;	/* mono; 0: free */
};

static struct amd_wait	amd_waits[AMD_WAIT_MAX];
static unsigned		amd_nwaits;

static int
amd_send(struct master *m, int slot, const struct ipc_amd *a)
{
	char msg[sizeof(struct ipc_hdr) + sizeof(*a)];
	long n = ipc_encode(msg, sizeof(msg), IPC_AMD, 0, a, sizeof(*a));

	if (n < 0 || slot < 0 || slot >= SHM_MAX_WORKERS || m->w[slot].chan < 0)
		return -1;
	if (send(m->w[slot].chan, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
		log_warn("send(amd) to worker %d", slot);
		return -1;
	}
	return 0;
}

int
master_amd(struct master *m, const char *sid, const char *by)
{
	struct shm_call_view v;
	struct amd_wait *free_w = NULL, *oldest = NULL;
	struct ipc_amd a;
	uint64_t now = mono_ms();

	memset(&a, 0, sizeof(a));
	if (strlen(sid) >= sizeof(a.ia_call_sid) ||
	    strlen(by) >= sizeof(a.ia_answered_by))
		return -1;
	memcpy(a.ia_call_sid, sid, strlen(sid));
	memcpy(a.ia_answered_by, by, strlen(by));
	for (uint32_t i = 0; i < m->shm.hdr->sh_ncalls; i++)
		if (shm_call_read(&m->shm, (int)i, &v) == 0 &&
		    v.state == CS_LIVE && strcmp(v.call_sid, sid) == 0)
			return amd_send(m, v.worker, &a) == 0 ? 0 : -1;
	/* no stream yet: kept for it, in place of an older one if full */
	for (int i = 0; i < AMD_WAIT_MAX; i++) {
		struct amd_wait *w = &amd_waits[i];

		if (w->until_ms != 0 && w->until_ms <= now) {
			w->until_ms = 0;
			amd_nwaits--;
		}
		if (w->until_ms != 0 && strcmp(w->a.ia_call_sid, sid) == 0)
			free_w = w;
		else if (w->until_ms == 0 && free_w == NULL)
			free_w = w;
		else if (w->until_ms != 0 && (oldest == NULL ||
		    w->until_ms < oldest->until_ms))
			oldest = w;
	}
	if (free_w == NULL)
		free_w = oldest;
	if (free_w->until_ms == 0)
		amd_nwaits++;
	free_w->a = a;
	free_w->until_ms = now + AMD_WAIT_MS;
	return 1;
}

/* A record of call sid came from the worker in slot: a verdict waiting
 * for that call goes to it. */
static void
amd_stream_seen(struct master *m, int slot, const char *sid)
{
	uint64_t now = mono_ms();

	for (int i = 0; i < AMD_WAIT_MAX && amd_nwaits > 0; i++) {
		struct amd_wait *w = &amd_waits[i];

		if (w->until_ms == 0 || strcmp(w->a.ia_call_sid, sid) != 0)
			continue;
		if (w->until_ms > now && amd_send(m, slot, &w->a) == 0) {
			log_set_call(sid);
			log_debug("answering-machine verdict %s sent to worker %d "
			    "at the stream's start", w->a.ia_answered_by, slot);
			log_set_call(NULL);
		}
		w->until_ms = 0;
		amd_nwaits--;
	}
}

/* ---------------------------------------------------------------- */
/* records from the workers */

#define CHAN_READ_MAX	256	/* packets per callback: others wait a turn */

/* Take up to max packets off a worker's channel: each is one call record
 * for the store, with this host's name added. */
static void
chan_read(struct master *m, struct worker_proc *p, int max)
{
	static char buf[IPC_MAX_MSG + 1];
	struct ipc_hdr h;
	const void *payload;
	size_t plen;
	json_t *rec;
	ssize_t n;

	while (max-- > 0 && p->chan >= 0) {
		const char *type;

		n = recv(p->chan, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
		if (n <= 0)
			return;		/* nothing yet, or the worker is gone */
		rec = NULL;
		if ((size_t)n <= IPC_MAX_MSG && ipc_decode(buf, (size_t)n, 0, &h,
		    &payload, &plen) == 0 && h.ih_type == IPC_RECORD)
			rec = json_loadb(payload, plen, 0, NULL);
		if (!json_is_object(rec)) {
			json_decref(rec);
			master_count(m, SC_records_bad_messages);
			log_warnx("worker %d: a message on its channel that is not "
			    "a call record (%zd bytes)", p->slot, n);
			continue;
		}
		master_count(m, SC_records_from_workers);
		type = json_string_value(json_object_get(rec, "type"));
		if (amd_nwaits > 0 && type != NULL && strcmp(type, "call") == 0 &&
		    json_is_string(json_object_get(rec, "call_sid")))
			amd_stream_seen(m, p->slot, json_string_value(
			    json_object_get(rec, "call_sid")));
		if (type != NULL && strcmp(type, "outcome") == 0) {
			/* a line's tool decided how the call went: the
			 * campaign writes it with the contact */
			campaign_call_outcome(m, rec);
			json_decref(rec);
			continue;
		}
		if (type != NULL && (strcmp(type, "call") == 0 ||
		    strcmp(type, "minutes") == 0))
			json_object_set_new(rec, "host", json_string(m->hostname));
		if (m->store != NULL)
			store_post(m->store, rec);
		else
			json_decref(rec);
	}
}

static void
chan_cb(uv_poll_t *h, int status, int events)
{
	struct worker_proc *p = h->data;

	(void)events;
	if (status < 0) {
		uv_poll_stop(h);
		return;
	}
	chan_read(h->loop->data, p, CHAN_READ_MAX);
}

static void
chan_poll_closed(uv_handle_t *h)
{
	free(h);
}

static void
chan_watch(struct master *m, struct worker_proc *p)
{
	if ((p->chan_poll = malloc(sizeof(*p->chan_poll))) == NULL)
		return;
	if (uv_poll_init(m->loop, p->chan_poll, p->chan) != 0) {
		free(p->chan_poll);
		p->chan_poll = NULL;
		return;
	}
	p->chan_poll->data = p;
	uv_poll_start(p->chan_poll, UV_READABLE, chan_cb);
}

static void
chan_unwatch(struct worker_proc *p)
{
	if (p->chan_poll != NULL)
		uv_close((uv_handle_t *)p->chan_poll, chan_poll_closed);
	p->chan_poll = NULL;
}

/*
 * A worker died with calls live: what it had sent is in the store's queue
 * (chan_read took it first); close each such call's record as failed, with
 * a reason that says how the worker ended.
 */
static void
records_close_dead(struct master *m, int slot, pid_t pid, const char *how)
{
	uint64_t now = mono_ms(), wall = wall_ms();
	char reason[160];

	if (m->store == NULL)
		return;
	snprintf(reason, sizeof(reason), "worker died (%s)", how);
	for (unsigned i = 0; i < m->shm.hdr->sh_ncalls; i++) {
		struct shm_call *c = &m->shm.calls[i];
		uint64_t start, dur;
		char sid[SHM_SID_MAX];

		if (atomic_load(&c->cs_state) != CS_LIVE ||
		    atomic_load(&c->cs_worker) != slot ||
		    atomic_load(&c->cs_pid) != pid)
			continue;
		memcpy(sid, c->cs_call_sid, sizeof(sid));
		sid[sizeof(sid) - 1] = '\0';
		if (sid[0] == '\0')
			continue;
		start = atomic_load(&c->cs_start_ms);
		dur = now > start ? now - start : 0;
		store_post(m->store, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,"
		    "s:s,s:s}", "type", "call", "call_sid", sid,
		    "status", "failed", "ended_at", (json_int_t)wall,
		    "duration_ms", (json_int_t)dur,
		    "billed_s", (json_int_t)((dur + 999) / 1000),
		    "end_reason", reason, "failure_class", "worker",
		    "host", m->hostname));
		store_post(m->store, json_pack("{s:s,s:s,s:s,s:I}", "type",
		    "status", "call_sid", sid, "status", "failed", "at",
		    (json_int_t)wall));
		if (c->cs_phone[0] != '\0')
			store_post(m->store, json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}",
			    "type", "minutes", "phone", c->cs_phone, "call_sid",
			    sid, "used_ms", (json_int_t)dur, "at", (json_int_t)wall,
			    "host", m->hostname));
		master_count(m, SC_records_closed_dead);
	}
}

/* ---------------------------------------------------------------- */
/* spawning */

static void
child_close_fds(int keep1, int keep2)
{
	int keep[2] = { keep1 < keep2 ? keep1 : keep2, keep1 < keep2 ? keep2 : keep1 };
	unsigned from = 3;

	for (int i = 0; i < 2; i++) {
		if (keep[i] < 3 || (unsigned)keep[i] < from)
			continue;
		if ((unsigned)keep[i] > from)
			close_range(from, (unsigned)keep[i] - 1, 0);
		from = (unsigned)keep[i] + 1;
	}
	close_range(from, ~0u, 0);
}

static void
child_reset_signals(void)
{
	sigset_t all;

	for (size_t i = 0; i < ARRAY_LEN(handled_signals); i++)
		signal(handled_signals[i], SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

static int
spawn_worker(struct master *m, int slot, uint32_t gen)
{
	struct worker_proc *p = &m->w[slot];
	struct shm_worker *sw = &m->shm.workers[slot];
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		log_warn("socketpair for worker %d", slot);
		return -1;
	}
	atomic_store(&sw->sw_state, SW_SPAWNING);
	atomic_store(&sw->sw_generation, gen);
	atomic_store(&sw->sw_heartbeat_ms, mono_ms());
	atomic_store(&sw->sw_active_streams, 0);
	atomic_store(&sw->sw_live_calls, 0);
	sw->sw_last_error[0] = '\0';
	p->handoffs_sent = atomic_load(&sw->sw_handoffs_seen);

	if ((pid = fork()) < 0) {
		log_warn("fork for worker %d", slot);
		close(sv[0]);
		close(sv[1]);
		atomic_store(&sw->sw_state, SW_EXITED);
		return -1;
	}
	if (pid == 0) {
		char name[32];

		close(sv[0]);
		child_reset_signals();
		log_child_prepare();
		child_close_fds(sv[1], log_fd());
		log_child_ready();
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		snprintf(name, sizeof(name), "voxrelay-w%d", slot);
		prctl(PR_SET_NAME, name);
		log_set_role("worker", slot);
		worker_main(&m->conf, &m->personas, &m->lines, &m->shm, slot, gen,
		    sv[1]);
		/* not reached */
	}
	close(sv[1]);
	p->slot = slot;
	p->pid = pid;
	p->chan = sv[0];
	chan_watch(m, p);
	p->generation = gen;
	p->in_use = 1;
	p->retire = 0;
	p->started_ms = mono_ms();
	p->respawn_at_ms = 0;
	p->deadline_ms = 0;
	p->kill_at_ms = 0;
	atomic_store(&sw->sw_pid, pid);
	atomic_store(&sw->sw_started_ms, p->started_ms);
	master_count(m, SC_workers_spawned);
	log_info("worker %d started (pid %d, generation %u)", slot, (int)pid, gen);
	return 0;
}

/* ---------------------------------------------------------------- */
/* reaping */

static void
describe_status(int st, char *out, size_t len)
{
	if (WIFEXITED(st))
		snprintf(out, len, "exited with code %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(out, len, "killed by signal %d (%s)%s", WTERMSIG(st),
		    strsignal(WTERMSIG(st)), WCOREDUMP(st) ? ", core dumped" : "");
	else
		snprintf(out, len, "status 0x%x", st);
}

static void
worker_died(struct master *m, int slot, int st)
{
	struct worker_proc *p = &m->w[slot];
	struct shm_worker *sw = &m->shm.workers[slot];
	uint64_t now = mono_ms(), lived = now - p->started_ms;
	unsigned lost = 0;
	char how[128];
	int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;

	describe_status(st, how, sizeof(how));
	/* what it sent before it died, then what it could not send */
	chan_read(m, p, INT32_MAX);
	records_close_dead(m, slot, p->pid, how);
	shm_fold_locked(&m->shm, now, wall_ms(), slot, p->pid, &lost);
	atomic_store(&sw->sw_last_status, st);
	atomic_store(&sw->sw_last_lost, lost);
	atomic_store(&sw->sw_active_streams, 0);
	atomic_store(&sw->sw_live_calls, 0);
	sw->sw_last_error[sizeof(sw->sw_last_error) - 1] = '\0';
	if (clean && p->retire)
		log_info("worker %d (pid %d) %s after draining", slot,
		    (int)p->pid, how);
	else
		log_warnx("worker %d (pid %d) %s after %llu s; %u call%s lost%s%s",
		    slot, (int)p->pid, how, (unsigned long long)lived / 1000, lost,
		    lost == 1 ? "" : "s",
		    sw->sw_last_error[0] ? "; last error: " : "", sw->sw_last_error);
	if (!(clean && p->retire))
		master_count(m, SC_workers_died);
	chan_unwatch(p);
	if (p->chan >= 0)
		close(p->chan);
	p->chan = -1;
	p->pid = 0;
	atomic_store(&sw->sw_pid, 0);
	atomic_store(&sw->sw_state, SW_EXITED);

	if (p->retire || m->draining) {
		p->in_use = 0;
		atomic_store(&sw->sw_state, SW_FREE);
		return;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_FATAL_CONFIG) {
		log_warnx("worker %d cannot start with this configuration; not "
		    "respawning it until a reload", slot);
		p->in_use = 0;
		atomic_store(&sw->sw_state, SW_FREE);
		return;
	}
	/* at once, unless it keeps dying young: 1 s, 2 s, ... 30 s */
	if (lived < YOUNG_MS)
		p->young_deaths++;
	else
		p->young_deaths = 0;
	uint64_t delay = 0;
	if (p->young_deaths > 1) {
		delay = 1000ull << (p->young_deaths - 2 < 5 ? p->young_deaths - 2 : 5);
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
		log_warnx("worker %d died young %d times in a row; respawn in %llu ms",
		    slot, p->young_deaths, (unsigned long long)delay);
	}
	p->restarts++;
	atomic_store(&sw->sw_restarts, p->restarts);
	p->respawn_at_ms = now + delay;
	if (delay == 0)
		spawn_worker(m, slot, p->generation);
}

static void
reap(struct master *m)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == m->flush_pid) {
			ledger_flush_done(m, st);
			continue;
		}
		for (int i = 0; i < SHM_MAX_WORKERS; i++)
			if (m->w[i].pid == pid) {
				worker_died(m, i, st);
				break;
			}
	}
}

/* ---------------------------------------------------------------- */
/* reload, drain, shutdown */

static void
reload(struct master *m)
{
	struct conf nc;
	char err[8192], *line, *save;
	int nfree = 0, old = 0;
	uint32_t gen;

	if (m->draining) {
		log_warnx("reload ignored: shutting down");
		return;
	}
	log_info("reloading %s", m->conf_path[0] ? m->conf_path : "(environment)");
	struct persona_set np;
	struct line_set nl;
	struct campaign_set ncs, ocs;
	char pwarn[4096];
	if (config_build(m->conf_path[0] ? m->conf_path : NULL, &nc, &np, &nl,
	    &ncs, err, sizeof(err), pwarn, sizeof(pwarn)) != 0) {
		for (line = strtok_r(err, "\n", &save); line;
		    line = strtok_r(NULL, "\n", &save))
			log_warnx("reload: %s", line);
		log_warnx("reload refused; the running configuration stays in force");
		return;
	}
	for (line = strtok_r(pwarn, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save))
		log_warnx("reload: %s", line);
	if (nc.port != m->conf.port || strcmp(nc.bind, m->conf.bind) != 0) {
		log_warnx("reload: BIND/PORT changes need a restart; still "
		    "listening on %s port %d", m->conf.bind, m->conf.port);
		nc.port = m->conf.port;
		free(nc.bind);
		nc.bind = strdup(m->conf.bind);
	}
	if (nc.admin_port != m->conf.admin_port ||
	    strcmp(nc.admin_bind, m->conf.admin_bind) != 0) {
		log_warnx("reload: ADMIN_BIND/ADMIN_PORT changes need a restart; "
		    "still listening on %s port %d", m->conf.admin_bind,
		    m->conf.admin_port);
		nc.admin_port = m->conf.admin_port;
		free(nc.admin_bind);
		nc.admin_bind = strdup(m->conf.admin_bind);
	}
	if (strcmp(nc.database_path, m->conf.database_path) != 0 ||
	    strcmp(nc.database_url, m->conf.database_url) != 0 ||
	    strcmp(nc.database_journal, m->conf.database_journal) != 0 ||
	    nc.retention_days != m->conf.retention_days) {
		/* the store thread keeps its own copy of these */
		log_warnx("reload: DATABASE_PATH, DATABASE_URL, DATABASE_JOURNAL "
		    "and RETENTION_DAYS changes need a restart; the call records "
		    "stay where they are");
		free(nc.database_path);
		free(nc.database_url);
		free(nc.database_journal);
		nc.database_path = strdup(m->conf.database_path);
		nc.database_url = strdup(m->conf.database_url);
		nc.database_journal = strdup(m->conf.database_journal);
		nc.retention_days = m->conf.retention_days;
	}
	if (strcmp(nc.host_name, m->conf.host_name) != 0) {
		/* the records and the shared claims keep the name they had */
		log_warnx("reload: HOST_NAME changes need a restart; still %s",
		    m->hostname);
		char *keep = strdup(m->conf.host_name);

		if (keep != NULL) {
			free(nc.host_name);
			nc.host_name = keep;
		}
	}
	/* the listener stays where it is: it must not lose its token there */
	if (nc.admin_bind == NULL || nc.bind == NULL ||
	    (nc.admin_token[0] == '\0' &&
	    !conf_addr_is_loopback(nc.admin_bind))) {
		log_warnx("reload: ADMIN_BIND: %s is not a loopback address and "
		    "ADMIN_TOKEN is empty", m->conf.admin_bind);
		log_warnx("reload refused; the running configuration stays in force");
		config_free(&nc, &np, &nl, &ncs);
		return;
	}
	if (shm_ledger_set_cap(&m->shm, (uint32_t)nc.ledger_capacity) <
	    (uint32_t)nc.ledger_capacity) {
		log_warnx("reload: LEDGER_CAPACITY above %u needs a restart; "
		    "using %u", atomic_load(&m->shm.hdr->sh_ledger_cap),
		    atomic_load(&m->shm.hdr->sh_ledger_cap));
		nc.ledger_capacity = (int)atomic_load(&m->shm.hdr->sh_ledger_cap);
	}
	if ((unsigned)nc.max_ws_connections > m->shm.hdr->sh_ncalls) {
		log_warnx("reload: MAX_WEBSOCKET_CONNECTIONS above %u needs a "
		    "restart; using %u", m->shm.hdr->sh_ncalls, m->shm.hdr->sh_ncalls);
		nc.max_ws_connections = (int)m->shm.hdr->sh_ncalls;
	}
	if (nc.stream_secret_random && m->conf.stream_secret_random) {
		/* tokens already handed to Twilio must stay valid */
		free(nc.stream_secret);
		nc.stream_secret = strdup(m->conf.stream_secret);
	}
	for (int i = 0; i < SHM_MAX_WORKERS; i++)
		if (!m->w[i].in_use)
			nfree++;
	if (nfree < nc.workers) {
		log_warnx("reload refused: %d worker slots free, %d needed (old "
		    "generations still draining)", nfree, nc.workers);
		config_free(&nc, &np, &nl, &ncs);
		return;
	}
	gen = ++m->generation;
	atomic_store(&m->shm.hdr->sh_generation, gen);
	for (int i = 0; i < SHM_MAX_WORKERS; i++) {
		struct worker_proc *p = &m->w[i];

		if (!p->in_use || p->retire)
			continue;
		if (p->pid == 0) {	/* waiting for a respawn: just drop it */
			p->in_use = 0;
			atomic_store(&m->shm.workers[i].sw_state, SW_FREE);
			continue;
		}
		p->retire = 1;
		p->deadline_ms = mono_ms() + (uint64_t)nc.reload_timeout * 1000;
		atomic_store(&m->shm.workers[i].sw_state, SW_DRAINING);
		chan_send(m, i, IPC_DRAIN);
		old++;
	}
	conf_free(&m->conf);
	m->conf = nc;
	persona_set_free(&m->personas);
	m->personas = np;
	line_set_free(&m->lines);
	m->lines = nl;
	ocs = m->campaigns;
	m->campaigns = ncs;
	campaign_reloaded(m, &ocs);
	log_set_level(m->conf.log_level);
	atomic_store(&m->shm.hdr->sh_free_ms,
	    (uint64_t)(m->conf.free_call_minutes * 60000.0 + 0.5));
	for (int i = 0, n = 0; i < SHM_MAX_WORKERS && n < m->conf.workers; i++)
		if (!m->w[i].in_use) {
			m->w[i].restarts = 0;
			m->w[i].young_deaths = 0;
			if (spawn_worker(m, i, gen) == 0)
				n++;
		}
	log_info("reloaded: generation %u with %d workers; %d old worker%s "
	    "draining", gen, m->conf.workers, old, old == 1 ? "" : "s");
	if (!m->conf.validate_signature)
		log_warnx(SIG_WAIVED_WARNING);
}

static void
drain_start(struct master *m, int now_please)
{
	uint64_t now = mono_ms();

	if (!m->draining) {
		m->draining = 1;
		m->drain_deadline_ms = now + (uint64_t)m->conf.drain_timeout * 1000;
		atomic_store(&m->shm.hdr->sh_status, SHM_DRAINING);
		log_info("draining: no new calls; live calls have %d s to finish",
		    m->conf.drain_timeout);
		for (int i = 0; i < SHM_MAX_WORKERS; i++) {
			struct worker_proc *p = &m->w[i];
			if (p->pid == 0)
				continue;
			p->retire = 1;
			if (p->deadline_ms == 0 || p->deadline_ms > m->drain_deadline_ms)
				p->deadline_ms = m->drain_deadline_ms;
			atomic_store(&m->shm.workers[i].sw_state, SW_DRAINING);
			chan_send(m, i, IPC_DRAIN);
		}
	} else if (now_please && !m->stopping) {
		m->stopping = 1;
		log_info("second signal: closing every call now");
		for (int i = 0; i < SHM_MAX_WORKERS; i++)
			m->w[i].deadline_ms = m->w[i].pid ? now : 0;
	}
}

static int
workers_running(struct master *m)
{
	int n = 0;

	for (int i = 0; i < SHM_MAX_WORKERS; i++)
		if (m->w[i].pid != 0)
			n++;
	return n;
}

/* ---------------------------------------------------------------- */
/* the loop's callbacks */

static void
signal_cb(uv_poll_t *h, int status, int events)
{
	struct master *m = h->data;
	struct signalfd_siginfo si;

	while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(m);
			break;
		case SIGTERM:
			drain_start(m, m->draining);
			break;
		case SIGINT:
		case SIGQUIT:
			drain_start(m, 1);
			if (si.ssi_signo == SIGQUIT || m->draining > 1)
				drain_start(m, 1);
			m->draining++;
			break;
		case SIGHUP:
			reload(m);
			break;
		case SIGUSR1:
			if (log_reopen() != 0)
				log_warn("reopening the log file");
			else
				log_info("log file reopened");
			for (int i = 0; i < SHM_MAX_WORKERS; i++)
				if (m->w[i].pid)
					chan_send(m, i, IPC_REOPEN);
			break;
		}
	}
}

static void
supervise(struct master *m, uint64_t now)
{
	for (int i = 0; i < SHM_MAX_WORKERS; i++) {
		struct worker_proc *p = &m->w[i];
		struct shm_worker *sw = &m->shm.workers[i];

		if (p->pid == 0) {
			if (p->in_use && !p->retire && p->respawn_at_ms &&
			    now >= p->respawn_at_ms && !m->draining)
				spawn_worker(m, i, p->generation);
			continue;
		}
		/* heartbeat: a stopped or wedged worker is killed and replaced */
		uint64_t hb = atomic_load(&sw->sw_heartbeat_ms);
		uint32_t st = atomic_load(&sw->sw_state);
		uint64_t limit = st == SW_SPAWNING ? SPAWN_GRACE_MS :
		    (uint64_t)m->conf.heartbeat_timeout;
		if (p->kill_at_ms == 0 && now > hb && now - hb > limit) {
			log_warnx("worker %d (pid %d): no heartbeat for %llu ms; "
			    "killing it", i, (int)p->pid,
			    (unsigned long long)(now - hb));
			snprintf(sw->sw_last_error, sizeof(sw->sw_last_error),
			    "killed: no heartbeat for %llu ms",
			    (unsigned long long)(now - hb));
			master_count(m, SC_workers_killed);
			kill(p->pid, SIGKILL);
			kill(p->pid, SIGCONT);
			p->kill_at_ms = now;
			continue;
		}
		/* drain deadline: close the calls (billed), then insist */
		if (p->retire && p->deadline_ms && now >= p->deadline_ms &&
		    p->kill_at_ms == 0) {
			log_info("worker %d (pid %d): drain deadline reached; closing "
			    "its calls", i, (int)p->pid);
			chan_send(m, i, IPC_SHUTDOWN);
			p->kill_at_ms = now + SHUTDOWN_GRACE_MS;
		} else if (p->kill_at_ms && now >= p->kill_at_ms &&
		    now - p->kill_at_ms < 60000 && p->retire) {
			log_warnx("worker %d (pid %d) did not exit; killing it", i,
			    (int)p->pid);
			master_count(m, SC_workers_killed);
			kill(p->pid, SIGKILL);
			p->kill_at_ms = now - 60000;	/* once */
		}
	}
}

/*
 * With DATABASE_URL, each live call's minutes so far go into its
 * caller_minutes row every SHARED_LIVE_INTERVAL seconds, so another host's
 * webhook counts a call still going on here (else a caller could run one
 * call per host, each with the whole remainder).  The figure is the one
 * the worker refreshes each second (cs_billed_ms): never above the
 * duration it reports at the end, and the row keeps the larger, so the
 * final figure wins.  One pass over the call table every few seconds, no
 * work per frame; the store thread batches the records with the rest.
 * The writes come at the multiples of the interval on the wall clock, the
 * same moments on every host, so that the others' re-reads half a second
 * later (shared_live()) find them fresh.
 */
static void
live_minutes(struct master *m)
{
	struct shm_call_view v;
	uint64_t wall, period;

	if (m->store == NULL || m->conf.database_url[0] == '\0')
		return;
	wall = wall_ms();
	period = wall / ((uint64_t)m->conf.shared_live_interval * 1000);
	if (period == m->live_period)
		return;
	m->live_period = period;
	for (unsigned i = 0; i < m->shm.hdr->sh_ncalls; i++) {
		if (atomic_load_explicit(&m->shm.calls[i].cs_state,
		    memory_order_relaxed) != CS_LIVE ||
		    shm_call_read(&m->shm, (int)i, &v) != 0 ||
		    v.state != CS_LIVE || v.billed_ms == 0 ||
		    v.call_sid[0] == '\0' || v.phone[0] == '\0')
			continue;
		store_post(m->store, json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}",
		    "type", "minutes", "phone", v.phone, "call_sid", v.call_sid,
		    "used_ms", (json_int_t)v.billed_ms, "at", (json_int_t)wall,
		    "host", m->hostname));
	}
}

static void
tick_cb(uv_timer_t *t)
{
	struct master *m = t->data;
	uint64_t now = mono_ms();

	shm_fold_locked(&m->shm, now, wall_ms(), -1, 0, NULL);
	shm_live_count_locked(&m->shm, &m->live_count);
	supervise(m, now);
	replay_tokens_tick(m, now);
	live_minutes(m);
	shared_live(m);
	if (now >= m->next_flush_ms) {
		/* workers of a dead master may still be journaling */
		ledger_rescue_take_async(m);
		ledger_flush_async(m);
		m->next_flush_ms = now + (uint64_t)m->conf.usage_flush_interval * 1000;
	}
	if (m->draining && workers_running(m) == 0 && m->flush_pid == 0)
		uv_stop(m->loop);
}

/* ---------------------------------------------------------------- */

static int
signals_setup(struct master *m)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_LEN(handled_signals); i++)
		sigaddset(&set, handled_signals[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->sigfd < 0)
		return -1;
	uv_poll_init(m->loop, &m->sigpoll, m->sigfd);
	m->sigpoll.data = m;
	uv_poll_start(&m->sigpoll, UV_READABLE, signal_cb);
	return 0;
}

/*
 * The call-record store's thread starts after the first workers are
 * forked; later forks (respawns, the ledger writer) are safe too, as
 * store.h says.  A store that cannot start costs the records, never a
 * call.
 */
static void
store_open_async(struct master *m)
{
	struct store_cfg sc;
	int rc;

	/* HOST_NAME tells apart hosts sharing DATABASE_URL, whatever
	 * gethostname() says (two daemons on one machine, containers) */
	if (m->conf.host_name[0] != '\0')
		vr_strlcpy(m->hostname, m->conf.host_name, sizeof(m->hostname));
	else if (gethostname(m->hostname, sizeof(m->hostname)) != 0)
		vr_strlcpy(m->hostname, "localhost", sizeof(m->hostname));
	m->hostname[sizeof(m->hostname) - 1] = '\0';
	store_cfg_from_conf(&sc, &m->conf, m->hostname);
	if (!m->conf.call_records) {
		log_info("call records: off (CALL_RECORDS)");
		return;
	}
	if ((m->store = store_new(&sc)) == NULL ||
	    (rc = store_start(m->store, m->loop)) != 0) {
		log_warnx("call records: the store did not start; calls are not "
		    "recorded in this run");
		store_stop(m->store, 0);
		m->store = NULL;
	}
}

static void
close_walk_cb(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int
master_run(struct master *m)
{
	char err[4096];
	unsigned ncalls, nledger, ntokens;
	int rc;

	m->loop = uv_default_loop();
	m->loop->data = m;	/* how a handle's callback finds its master */
	for (int i = 0; i < LS__COUNT; i++) {
		m->ls[i].kind = (enum listener_kind)i;
		m->ls[i].fd = -1;
	}
	m->reserve_fd = -1;
	for (int i = 0; i < SHM_MAX_WORKERS; i++) {
		m->w[i].chan = -1;
		m->w[i].slot = i;
	}
	ncalls = (unsigned)m->conf.max_ws_connections +
	    (unsigned)m->conf.max_ws_connections / 4 + 16;
	nledger = (unsigned)m->conf.ledger_capacity / 3 * 4 + 4;
	/* two entries per stream (its token and its CallSid, replay.c) */
	ntokens = ncalls * 8 > 8192 ? ncalls * 8 : 8192;
	if ((rc = shm_create(&m->shm, SHM_MAX_WORKERS, ncalls, nledger, ntokens)) != 0) {
		log_warnx("shared memory: %s", strerror(-rc));
		return EXIT_FATAL_CONFIG;
	}
	if (shm_live_init(&m->shm, &m->live_count) != 0) {
		log_warnx("out of memory for the live calls' count");
		return EXIT_FATAL_CONFIG;
	}
	/* exactly LEDGER_CAPACITY callers: the table has room for more */
	shm_ledger_set_cap(&m->shm, (uint32_t)m->conf.ledger_capacity);
	m->shm.hdr->sh_master_pid = getpid();
	m->shm.hdr->sh_birth_wall_ms = wall_ms();
	m->shm.hdr->sh_birth_ms = mono_ms();
	atomic_store(&m->shm.hdr->sh_free_ms,
	    (uint64_t)(m->conf.free_call_minutes * 60000.0 + 0.5));
	if (ledger_load(m, err, sizeof(err)) != 0) {
		log_warnx("%s", err);
		return EXIT_FATAL_CONFIG;
	}
	m->flushed_version = atomic_load(&m->shm.hdr->sh_ledger_version);
	/* what a master that died left, before anybody is served */
	ledger_rescue_take_sync(m);
	routes_usage_warm(m);
	replay_tokens_load(m);
	if (front_listen(m) != 0)
		return EXIT_FATAL_CONFIG;
	if (signals_setup(m) != 0) {
		log_warn("signals");
		return EXIT_FATAL_CONFIG;
	}
	m->generation = 1;
	atomic_store(&m->shm.hdr->sh_generation, 1);
	for (int i = 0; i < m->conf.workers; i++)
		spawn_worker(m, i, m->generation);
	store_open_async(m);
	ledger_rescue_records(m);
	shared_start(m);
	outbound_init(m);
	campaign_start(m);
	log_info("voxrelay %s listening on %s port %d with %d workers (pid %d)",
	    VOXRELAY_VERSION, m->conf.bind, m->conf.port, m->conf.workers,
	    (int)getpid());
	log_info("admin endpoints on %s port %d, %s", m->conf.admin_bind,
	    m->conf.admin_port, m->conf.admin_token[0] ? "ADMIN_TOKEN required" :
	    "no ADMIN_TOKEN (loopback only)");
	if (m->conf.stream_secret_random)
		log_info("STREAM_SECRET is not set: using a random one for this run");
	if (!m->conf.validate_signature)
		log_warnx(SIG_WAIVED_WARNING);

	uv_timer_init(m->loop, &m->tick);
	m->tick.data = m;
	uv_timer_start(&m->tick, tick_cb, TICK_MS, TICK_MS);
	m->next_flush_ms = mono_ms() + (uint64_t)m->conf.usage_flush_interval * 1000;
	front_start(m);
	if (m->ready_fd >= 0) {
		if (write(m->ready_fd, "1", 1) != 1)
			log_warn("telling the parent we are up");
		close(m->ready_fd);
		m->ready_fd = -1;
	}

	uv_run(m->loop, UV_RUN_DEFAULT);

	/* every worker is gone: fold what they left, save, leave */
	if (m->flush_pid > 0) {
		int st;
		waitpid(m->flush_pid, &st, 0);
		m->flush_pid = 0;
	}
	shm_fold_locked(&m->shm, mono_ms(), wall_ms(), -1, 0, NULL);
	ledger_rescue_take_sync(m);
	rc = ledger_flush_sync(m);
	if (rc != 0)
		log_warnx("final save of the usage ledger failed: %s; the minutes "
		    "of this run are lost", strerror(-rc));
	else
		log_info("usage ledger saved (%u callers)",
		    (unsigned)atomic_load(&m->shm.hdr->sh_ledger_used));
	front_stop(m);
	shared_stop(m);
	store_stop(m->store, 5000);
	m->store = NULL;
	shm_live_free(&m->live_count);
	uv_walk(m->loop, close_walk_cb, NULL);
	uv_run(m->loop, UV_RUN_DEFAULT);
	log_info("stopped");
	return rc == 0 ? 0 : 1;
}
