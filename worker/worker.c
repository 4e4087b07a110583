/*
 * worker.c — the worker process: its loop, the channel from the master,
 * the heartbeat, drain and shutdown.
 *
 * Signals: SIGTERM arrives through a signalfd (as in the master; libuv's
 * signal machinery was set up by the master before fork and its lock pipe
 * is among the descriptors the child closed).  SIGINT, SIGHUP, SIGQUIT and
 * SIGUSR1 are the master's business: a terminal's Ctrl-C reaches the whole
 * process group, and the master decides what happens to the calls.
 */
#include "worker/worker.h"
#include "worker/record.h"
#include "shm/rescue.h"
#include "worker/call.h"
#include "worker/rest.h"
#include "worker/upstream.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/ipc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define TICK_MS		250
#define SHUTDOWN_MAX_MS	3000	/* after IPC_SHUTDOWN, exit regardless */
#define RECORD_EXIT_MS	500	/* for the master to take the last records */
#define DRAIN_SETTLE_MS	500	/* hand-offs already in the channel */

struct worker W;

static void worker_shutdown(struct worker *w, const char *why);

/* Longest a rescuer waits for the other workers to journal their calls:
 * they end them as soon as they see the master gone, within a tick. */
#define RESCUE_WAIT_MS	(SHUTDOWN_MAX_MS + 1000)

/* The store's record of the call in slot idx is closed by the next master
 * ("master died") for an inbound call; an outbound call's record is
 * Twilio's to say, and that master asks Twilio about it. */
static int
rescue_closes_record(void *arg, int idx)
{
	struct worker *w = arg;

	for (struct call *c = w->calls; c != NULL; c = c->next)
		if (c->slot == idx && c->start_ms != 0 &&
		    strncmp(c->stream_sid, w->shm->calls[idx].cs_stream_sid,
		    SHM_SID_MAX) == 0)
			return !c->outbound;
	return 0;
}

/*
 * The master is dead and nobody will fold this worker's calls into the
 * ledger or save it: journal their time for the next master (shm/rescue.h),
 * and if no other worker does it, the ledger's unsaved part too.  Once,
 * after the calls were ended (worker_shutdown ends them at once).
 */
static void
worker_rescue(struct worker *w)
{
	char path[1100];
	int n;

	if (!w->master_gone || w->rescued)
		return;
	w->rescued = 1;
	snprintf(path, sizeof(path), "%s.rescue", w->conf->usage_csv_path);
	if ((n = rescue_own_calls(w->shm, w->slot, w->pid, path, mono_ms(),
	    rescue_closes_record, w)) < 0)
		log_warnx("the master is gone and this worker's calls could not "
		    "be journaled to %s: %s; their minutes are lost", path,
		    strerror(-n));
	else if (n > 0)
		log_info("the master is gone: %d call%s journaled to %s for the "
		    "next start", n, n == 1 ? "" : "s", path);
	n = rescue_as_rescuer(w->shm, w->pid, path, RESCUE_WAIT_MS);
	if (n < 0)
		log_warnx("the master is gone and its unsaved minutes could not "
		    "be journaled to %s: %s; they are lost", path, strerror(-n));
	else if (n > 0)
		log_info("the master is gone: %d unsaved record%s of the usage "
		    "ledger journaled to %s", n, n == 1 ? "" : "s", path);
}

/* The master died: end the calls, keep their minutes, go. */
static void
worker_master_gone(struct worker *w, const char *why)
{
	if (w->master_gone)
		return;
	w->master_gone = 1;
	log_warnx("%s: ending the calls here and journaling their minutes", why);
	worker_shutdown(w, why);	/* may exit, after the rescue */
	/* calls still closing: their slots are ended already */
	worker_rescue(w);
}

static void
worker_exit(struct worker *w, int code)
{
	worker_rescue(w);
	atomic_store(&w->sw->sw_active_streams, 0);
	record_flush_final(w, RECORD_EXIT_MS);
	log_info("exiting (%s)", w->shutting ? "shut down" : "drained");
	exit(code);
}

void
worker_call_gone(struct worker *w, struct call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		w->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->ncalls--;
	atomic_store(&w->sw->sw_active_streams, w->ncalls);
	if (w->ncalls == 0 && w->shutting)
		worker_exit(w, 0);
}

static void
worker_shutdown(struct worker *w, const char *why)
{
	struct call *c, *next;

	if (w->shutting)
		return;
	w->shutting = 1;
	w->shut_ms = mono_ms();
	prewarm_drop_all(w, "daemon shutting down");
	log_info("shutting down: %s; closing %u calls", why, w->ncalls);
	for (c = w->calls; c != NULL; c = next) {
		next = c->next;
		call_close(c, "daemon shutting down", 0, 1001);
	}
	if (w->ncalls == 0)
		worker_exit(w, 0);
}

static void
handle_msg(struct worker *w, const char *buf, size_t n, int fd)
{
	struct ipc_hdr h;
	const void *payload;
	size_t plen;

	if (ipc_decode(buf, n, fd >= 0, &h, &payload, &plen) != 0) {
		log_warnx("malformed message on the channel (%zu bytes%s)", n,
		    fd >= 0 ? ", with a descriptor" : "");
		if (fd >= 0)
			close(fd);
		return;
	}
	switch (h.ih_type) {
	case IPC_HANDOFF: {
		struct ipc_handoff ho;
		memcpy(&ho, payload, sizeof(ho));
		atomic_fetch_add(&w->sw->sw_handoffs_seen, 1);
		call_accept(w, fd, &ho, (const uint8_t *)payload + sizeof(ho),
		    ho.ho_extra_len, h.ih_id);
		break;
	}
	case IPC_PREWARM: {
		struct ipc_prewarm pw;
		memcpy(&pw, payload, sizeof(pw));
		prewarm_open(w, &pw);
		break;
	}
	case IPC_DRAIN:
		prewarm_drop_all(w, "worker draining");
		if (!w->draining) {
			w->draining = 1;
			w->drain_ms = mono_ms();
			log_info("draining: %u calls to finish", w->ncalls);
		}
		break;
	case IPC_REOPEN:
		if (log_reopen() != 0)
			log_warn("reopening the log file");
		break;
	case IPC_SHUTDOWN:
		worker_shutdown(w, "asked by the master");
		break;
	case IPC_AMD: {
		struct ipc_amd a;
		struct call *c;

		memcpy(&a, payload, sizeof(a));
		for (c = w->calls; c != NULL; c = c->next)
			if (c->outbound && strcmp(call_sid_of(c),
			    a.ia_call_sid) == 0)
				break;
		if (c != NULL)
			relay_amd(c, a.ia_answered_by);
		else
			log_debug("answering-machine verdict for a call not "
			    "here (%s)", a.ia_call_sid);
		break;
	}
	default:
		log_warnx("unexpected %s message from the master",
		    ipc_type_name(h.ih_type));
		break;
	}
}

static void
chan_cb(uv_poll_t *p, int status, int events)
{
	struct worker *w = p->data;
	static char buf[IPC_MAX_MSG + 64];

	for (int i = 0; i < 64; i++) {
		union {
			char b[CMSG_SPACE(sizeof(int) * 4)];
			struct cmsghdr align;
		} u;
		struct msghdr mh;
		struct iovec iov = { buf, sizeof(buf) };
		struct cmsghdr *cm;
		int fd = -1, extra = 0;
		ssize_t n;

		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = u.b;
		mh.msg_controllen = sizeof(u.b);
		n = recvmsg(w->chan, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			log_warn("recvmsg() on the channel");
			if (getppid() != w->master_pid)
				worker_master_gone(w, "the master is gone");
			else
				worker_shutdown(w, "channel error");
			return;
		}
		if (n == 0) {
			uv_poll_stop(p);
			/* only the master's death closes its end */
			worker_master_gone(w, "the master is gone");
			return;
		}
		/* one descriptor per message at most: close any other */
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t j = 0; j < k; j++) {
				int f;
				memcpy(&f, CMSG_DATA(cm) + j * sizeof(int), sizeof(int));
				if (fd < 0)
					fd = f;
				else {
					close(f);
					extra++;
				}
			}
		}
		if (extra || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
			log_warnx("channel message truncated or with extra "
			    "descriptors; dropped");
			if (fd >= 0)
				close(fd);
			continue;
		}
		handle_msg(w, buf, (size_t)n, fd);
	}
}

static void
sig_cb(uv_poll_t *p, int status, int events)
{
	struct worker *w = p->data;
	struct signalfd_siginfo si;

	while (read(w->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (si.ssi_signo == SIGTERM) {
			/* the master's death sends it too (PR_SET_PDEATHSIG) */
			if (getppid() != w->master_pid)
				worker_master_gone(w, "SIGTERM, the master is gone");
			else
				worker_shutdown(w, "SIGTERM");
		}
}

void
call_want_flush(struct call *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->dirty_next = W.dirty_calls;
	W.dirty_calls = c;
}

void
worker_want_flush_upstream(struct worker *w, struct upstream *up)
{
	if (up->dirty || up->zombie)
		return;
	up->dirty = 1;
	up->dirty_next = w->dirty_ups;
	w->dirty_ups = up;
}

void
worker_forget_upstream(struct worker *w, struct upstream *up)
{
	struct upstream **pp;

	if (!up->dirty)
		return;
	for (pp = &w->dirty_ups; *pp != NULL; pp = &(*pp)->dirty_next)
		if (*pp == up) {
			*pp = up->dirty_next;
			break;
		}
	up->dirty = 0;
}

/*
 * Write what was queued: one write per connection however many messages
 * it holds.  Called at the end of every read callback (so a long loop
 * iteration under load never holds audio back until it ends) and by the
 * check handle after each iteration (for timers and other callbacks).
 * The heartbeat is stamped here too: a worker busy draining a backlog is
 * alive, and only a stopped or wedged one stops stamping.
 */
void
worker_flush(struct worker *w)
{
	atomic_store_explicit(&w->sw->sw_heartbeat_ms, mono_ms(),
	    memory_order_relaxed);
	while (w->dirty_calls != NULL || w->dirty_ups != NULL) {
		while (w->dirty_calls != NULL) {
			struct call *c = w->dirty_calls;
			w->dirty_calls = c->dirty_next;
			c->dirty = 0;
			call_flush(c);
		}
		while (w->dirty_ups != NULL) {
			struct upstream *up = w->dirty_ups;
			w->dirty_ups = up->dirty_next;
			up->dirty = 0;
			upstream_flush(up);
		}
	}
}

void
worker_read_end(struct worker *w, enum shm_hist_id which)
{
	worker_flush(w);
	if (w->relayed > 0) {
		shm_hist_add_n(&w->sw->sw_hist[which], mono_us() - w->read_us,
		    w->relayed);
		w->relayed = 0;
	}
}

static void
flush_cb(uv_check_t *h)
{
	struct worker *w = h->data;

	worker_flush(w);
	while (w->zombies != NULL) {
		struct upstream *up = w->zombies;
		w->zombies = up->dirty_next;
		upstream_destroy(up);
	}
}

static void
tick_cb(uv_timer_t *t)
{
	struct worker *w = t->data;
	uint64_t now = mono_ms();
	struct call *c, *next;

	atomic_store_explicit(&w->sw->sw_heartbeat_ms, now, memory_order_relaxed);
	if (!w->master_gone && getppid() != w->master_pid)
		worker_master_gone(w, "the master is gone");
	record_flush(w);
	for (c = w->calls; c != NULL; c = next) {
		next = c->next;
		call_tick(c, now);
	}
	prewarm_tick(w, now);
	/* a draining worker also waits for its goodbye SMS (bounded by retries) */
	if (w->draining && w->ncalls == 0 && rest_pending(w->rest) == 0 &&
	    now - w->drain_ms >= DRAIN_SETTLE_MS)
		worker_exit(w, 0);
	if (w->shutting && now - w->shut_ms > SHUTDOWN_MAX_MS)
		worker_exit(w, 0);
}

/*
 * With FRAMES_PER_APPEND > 1 a caller who stops sending (the end of a call,
 * a gap) leaves a partial batch; this timer sends it once it is as old as a
 * full batch would be, give or take BATCH_CHECK_MS, instead of waiting for
 * the next tick.  It runs only while some call holds a partial batch.
 */
#define BATCH_CHECK_MS	5

static void
batch_cb(uv_timer_t *t)
{
	struct worker *w = t->data;
	uint64_t now = mono_ms();
	struct call *c, *next;
	int open = 0;

	for (c = w->calls; c != NULL; c = next) {
		next = c->next;
		open |= relay_batch_due(c, now);
	}
	if (!open)
		uv_timer_stop(t);
	worker_flush(w);
}

void
worker_batch_opened(struct worker *w)
{
	if (!uv_is_active((uv_handle_t *)&w->batch_timer))
		uv_timer_start(&w->batch_timer, batch_cb, BATCH_CHECK_MS,
		    BATCH_CHECK_MS);
}

/* A REST job ended: the worker's counters, and the call that waits for it
 * (if it is still here: a job outlives its call). */
static void
rest_outcome(void *arg, const struct rest_done *d)
{
	struct worker *w = arg;
	struct call *c;

	if (d->attempts > 1)
		worker_count(w, SC_rest_retries, (uint64_t)d->attempts - 1);
	if (d->kind == REST_SMS) {
		worker_count(w, d->ok ? SC_sms_sent : SC_sms_failed, 1);
		return;
	}
	if (d->kind == REST_HOOK && strcmp(d->tag, RELAY_SUMMARY_TAG) == 0) {
		/* the call has most likely ended: nobody waits for it */
		worker_count(w, d->ok ?
		    SC_transfer_summaries : SC_transfer_summaries_failed, 1);
		if (!d->ok)
			log_warnx("a transfer's summary webhook: %s (HTTP %ld)",
			    d->error, d->status);
		return;
	}
	if (d->kind == REST_HOOK) {
		for (c = w->calls; c != NULL; c = c->next)
			if (c->id == d->ref) {
				relay_hook_done(c, d);
				break;
			}
		return;
	}
	worker_count(w, d->ok ? SC_call_updates : SC_call_updates_failed, 1);
	for (c = w->calls; c != NULL; c = c->next)
		if (c->id == d->ref) {
			relay_rest_done(c, d->ok);
			break;
		}
}

void
worker_main(struct conf *conf, const struct persona_set *personas,
    const struct line_set *lines, struct shm *shm, int slot,
    uint32_t generation, int chan)
{
	struct worker *w = &W;
	char err[512];
	sigset_t set;
	int rc;

	memset(w, 0, sizeof(*w));
	w->conf = conf;
	w->personas = personas;
	w->lines = lines;
	w->shm = shm;
	w->slot = slot;
	w->sw = &shm->workers[slot];
	w->generation = generation;
	w->pid = getpid();
	w->master_pid = shm->hdr->sh_master_pid;
	w->chan = chan;
	atomic_store(&w->sw->sw_pid, w->pid);
	atomic_store(&w->sw->sw_heartbeat_ms, mono_ms());
	if (random_bytes(&w->seed, sizeof(w->seed)) != 0)
		w->seed = (uint64_t)w->pid * 0x9E3779B97F4A7C15ULL ^ mono_us();

	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((w->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		fatal("signalfd");

	if ((rc = uv_loop_init(&w->loop)) != 0)
		fatalx("uv_loop_init: %s", uv_strerror(rc));
	uv_poll_init(&w->loop, &w->chan_poll, chan);
	w->chan_poll.data = w;
	uv_poll_start(&w->chan_poll, UV_READABLE, chan_cb);
	uv_poll_init(&w->loop, &w->sig_poll, w->sigfd);
	w->sig_poll.data = w;
	uv_poll_start(&w->sig_poll, UV_READABLE, sig_cb);
	uv_timer_init(&w->loop, &w->tick);
	w->tick.data = w;
	uv_timer_start(&w->tick, tick_cb, TICK_MS, TICK_MS);
	uv_timer_init(&w->loop, &w->batch_timer);
	w->batch_timer.data = w;
	uv_check_init(&w->loop, &w->flush_check);
	w->flush_check.data = w;
	uv_check_start(&w->flush_check, flush_cb);
	if ((w->rest = rest_new(&w->loop, w->conf, rest_outcome, w)) == NULL)
		fatalx("libcurl could not start");
	if (upstream_global_init(w, err, sizeof(err)) != 0) {
		vr_strlcpy(w->sw->sw_last_error, err, sizeof(w->sw->sw_last_error));
		fatalx("TLS: %s", err);
	}

	/* the master may have marked us draining before we got here */
	uint32_t expect = SW_SPAWNING;
	atomic_compare_exchange_strong(&w->sw->sw_state, &expect, SW_READY);
	log_debug("ready (generation %u)", generation);

	uv_run(&w->loop, UV_RUN_DEFAULT);
	exit(0);
}
