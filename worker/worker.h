/*
 * worker.h — entry point of a pre-forked worker process.
 */
#ifndef VR_WORKER_H
#define VR_WORKER_H

#include <stdint.h>

#include <sys/types.h>
#include <uv.h>

#include "daemon/common/conf.h"
#include "personas/line.h"
#include "personas/persona.h"
#include "shm/shm.h"
#include "daemon/common/util.h"

struct call;
struct upstream;
struct rest;

/* One per worker process. */
struct worker {
	uv_loop_t		 loop;
	struct conf		*conf;
	struct shm		*shm;
	struct shm_worker	*sw;
	int			 slot;
	uint32_t		 generation;
	pid_t			 pid;
	int			 chan;
	uv_poll_t		 chan_poll;
	int			 sigfd;
	uv_poll_t		 sig_poll;
	uv_timer_t		 tick;
	uv_timer_t		 batch_timer;	/* partial batches (FRAMES_PER_APPEND) */
	int			 draining;
	uint64_t		 drain_ms;
	int			 shutting;
	uint64_t		 shut_ms;
	pid_t			 master_pid;	/* the parent at start */
	int			 master_gone;	/* its death seen: rescue */
	int			 rescued;	/* its calls journaled */
	struct call		*calls;		/* doubly linked */
	unsigned		 ncalls;
	struct call		*warm;		/* sessions opened at the webhook
						 * for streams still to come */
	unsigned		 nwarm;
	uint64_t		 seed;		/* for WebSocket masks */
	const struct persona_set *personas;
	const struct line_set	*lines;
	struct rest		*rest;		/* Twilio REST client (SMS) */

	/* writes are batched: whatever a loop iteration queued is written
	 * once, by the check handle, after all the reads of that iteration */
	uv_check_t		 flush_check;
	struct call		*dirty_calls;
	struct upstream		*dirty_ups;
	struct upstream		*zombies;	/* freed by the check handle */

	/* relay timing: frames forwarded during the current read callback,
	 * measured from its start to the end of the write that sent them */
	uint64_t		 read_us;
	unsigned		 relayed;
};

extern struct worker W;

/* Bump one of this worker's counters. */
static inline void
worker_count(struct worker *w, enum shm_counter c, uint64_t n)
{
	shm_count(w->sw->sw_counters, c, n);
}
void worker_call_gone(struct worker *w, struct call *c);
/* A call began gathering caller frames: make sure the batch timer runs. */
void worker_batch_opened(struct worker *w);
void worker_want_flush_upstream(struct worker *w, struct upstream *up);
/* Write everything queued, now (end of a read callback). */
void worker_flush(struct worker *w);
/* A read callback starts / ends: flush, and time what it relayed. */
static inline void
worker_read_begin(struct worker *w)
{
	w->read_us = mono_us();
	w->relayed = 0;
}
void worker_read_end(struct worker *w, enum shm_hist_id which);
/* An upstream about to be freed leaves the flush list. */
void worker_forget_upstream(struct worker *w, struct upstream *up);

/*
 * Runs in the child right after fork(), with signals already reset and
 * every descriptor but chan (its end of the channel), the log and the
 * standard ones closed.  Makes a fresh loop (the master's is left alone:
 * its epoll set is shared with the master), serves calls handed to it over
 * chan, and never returns: exits 0 when drained, EXIT_FATAL_CONFIG when it
 * cannot start.
 */
void worker_main(struct conf *conf, const struct persona_set *personas,
    const struct line_set *lines, struct shm *shm, int slot,
    uint32_t generation, int chan)
    __attribute__((noreturn));

#endif
