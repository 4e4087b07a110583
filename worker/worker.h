/*
 * worker.h — entry point of a pre-forked worker process.
 */
#ifndef VR_WORKER_H
#define VR_WORKER_H

#include <stdint.h>

#include <sys/types.h>
#include <uv.h>

#include "daemon/common/conf.h"
#include "shm/shm.h"

struct call;

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
	int			 draining;
	uint64_t		 drain_ms;
	int			 shutting;
	uint64_t		 shut_ms;
	struct call		*calls;		/* doubly linked */
	unsigned		 ncalls;
	uint64_t		 seed;		/* for WebSocket masks */
};

extern struct worker W;

/* Bump one of this worker's counters. */
static inline void
worker_count(struct worker *w, enum shm_counter c, uint64_t n)
{
	shm_count(w->sw->sw_counters, c, n);
}
void worker_call_gone(struct worker *w, struct call *c);

/*
 * Runs in the child right after fork(), with signals already reset and
 * every descriptor but chan (its end of the channel), the log and the
 * standard ones closed.  Makes a fresh loop (the master's is left alone:
 * its epoll set is shared with the master), serves calls handed to it over
 * chan, and never returns: exits 0 when drained, EXIT_FATAL_CONFIG when it
 * cannot start.
 */
void worker_main(struct conf *conf, struct shm *shm, int slot,
    uint32_t generation, int chan) __attribute__((noreturn));

#endif
