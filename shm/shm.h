/*
 * shm.h — the shared-memory table: layout and the only code that touches it.
 *
 * One MAP_SHARED|MAP_ANONYMOUS region, created by the master before the first
 * fork and inherited by every worker.  No pointers inside: offsets from the
 * start and fixed-size arrays.  Layout:
 *
 *   header | worker slots [nworkers] | call slots [ncalls] |
 *   ledger [nledger] | token table [ntokens]
 *
 * Writers and readers (who may write what is the whole point of this file):
 *
 *   header     master writes; everybody reads.  Master counters are bumped
 *              by the master only.
 *   worker     master writes sw_pid, sw_generation, sw_restarts, sw_last_*
 *              and the SPAWNING/DRAINING/EXITED states; the worker writes
 *              everything else in its own slot (heartbeat, counters,
 *              histograms, READY).  Readers never block a writer.
 *   call slot  claimed FREE->CLAIMED by compare-and-swap (any worker); then
 *              written by its owner only, published LIVE with a release
 *              store, finished as ENDED.  Only the master turns ENDED (or a
 *              dead owner's LIVE/CLAIMED) into FREE, after folding the time
 *              into the ledger; once the master is dead, a worker frees the
 *              slots whose time it journaled (shm/rescue.h).  cs_gen
 *              changes on every claim, so a reader copying a slot can tell
 *              it was reused under it.
 *   ledger     the master is its only writer: it folds ended calls in
 *              (and the save child that set le_saved_* writes only those).
 *              Workers read it lock-free to learn a caller's balance.  A
 *              caller's live usage is ledger + the live slots for that
 *              number (shm_usage_ms), so no minute is in two places and none
 *              is in neither, whatever instruction a writer dies at.
 *   tokens     used stream tokens (replay protection): several workers
 *              insert, under a robust process-shared mutex held for a few
 *              stores only.
 *
 * Time: cs_*_ms, sw_*_ms are CLOCK_MONOTONIC ms (mono_ms), valid across
 * processes on one host; *_wall_ms are the wall clock.
 */
#ifndef VR_SHM_H
#define VR_SHM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/counters.h"

#define SHM_MAGIC	0x52584f56u	/* "VOXR" */
#define SHM_VERSION	6
#define SHM_MAX_WORKERS	64

#define SHM_SID_MAX	40		/* CA/MZ + 32 hex, NUL, slack */
#define SHM_PHONE_MAX	48
#define SHM_NAME_MAX	33		/* route, persona */
#define SHM_REASON_MAX	64

/* Latency histograms: µs, 4 buckets per power of two up to ~16.7 s. */
#define SHM_HIST_BUCKETS 100
enum shm_hist_id {
	SH_RELAY_IN,		/* Twilio frame read -> upstream write queued */
	SH_RELAY_OUT,		/* upstream delta read -> Twilio write queued */
	SH_RESPONSE,		/* speech_stopped -> first audio to Twilio */
	SH_BARGEIN,		/* speech_started -> clear sent */
	SH_HANDOFF,		/* master accept -> 101 written by the worker */
	SH_READY,		/* webhook answered -> session.updated */
	SH_GREETING,		/* `start` -> first greeting audio to Twilio */
	SH__COUNT
};
struct shm_hist {
	_Atomic uint64_t	h_bucket[SHM_HIST_BUCKETS];
	_Atomic uint64_t	h_count;
	_Atomic uint64_t	h_sum_us;
	_Atomic uint64_t	h_max_us;
};

enum shm_worker_state {
	SW_FREE = 0,		/* slot never used, or its worker exited for good */
	SW_SPAWNING,		/* forked, not ready yet */
	SW_READY,		/* taking calls */
	SW_DRAINING,		/* no new calls; exits when idle */
	SW_EXITED,		/* dead, waiting to be respawned */
	SW__COUNT
};
extern const char *const shm_worker_state_names[SW__COUNT];

struct shm_worker {
	_Atomic int32_t		sw_pid;
	_Atomic uint32_t	sw_state;
	_Atomic uint32_t	sw_generation;
	_Atomic uint32_t	sw_restarts;
	_Atomic uint64_t	sw_started_ms;
	_Atomic uint64_t	sw_heartbeat_ms;
	_Atomic uint32_t	sw_active_streams;	/* connections it holds */
	_Atomic uint32_t	sw_live_calls;		/* of those, past start */
	_Atomic uint64_t	sw_calls_total;
	_Atomic uint64_t	sw_handoffs_seen;	/* handoffs received */
	_Atomic int32_t		sw_last_status;		/* waitpid status */
	_Atomic uint32_t	sw_last_lost;		/* calls lost at that death */
	char			sw_last_error[128];	/* last words, NUL-term. */
	_Atomic uint64_t	sw_counters[SC__COUNT];
	struct shm_hist		sw_hist[SH__COUNT];
} __attribute__((aligned(64)));

enum shm_call_state {
	CS_FREE = 0,
	CS_CLAIMED,		/* owner filling it in; readers skip */
	CS_LIVE,
	CS_ENDED,		/* owner done; master folds and frees */
};

struct shm_call {
	_Atomic uint32_t	cs_state;
	_Atomic uint32_t	cs_gen;
	_Atomic int32_t		cs_worker;	/* owner slot */
	_Atomic int32_t		cs_pid;		/* owner pid */
	_Atomic uint64_t	cs_start_ms;	/* mono, at `start` */
	_Atomic uint64_t	cs_start_wall_ms;
	_Atomic uint64_t	cs_end_ms;	/* mono, set with ENDED */
	_Atomic uint64_t	cs_billed_ms;	/* elapsed, refreshed each second */
	_Atomic uint64_t	cs_frames_in;
	_Atomic uint64_t	cs_frames_out;
	_Atomic uint32_t	cs_failed;
	_Atomic uint32_t	cs_persona_seq;	/* odd while cs_persona changes */
	char			cs_call_sid[SHM_SID_MAX];
	char			cs_stream_sid[SHM_SID_MAX];
	char			cs_phone[SHM_PHONE_MAX];
	char			cs_route[SHM_NAME_MAX];
	char			cs_persona[SHM_NAME_MAX];
	char			cs_reason[SHM_REASON_MAX];	/* why it ended */
} __attribute__((aligned(64)));

struct shm_ledger {
	_Atomic uint32_t	le_state;	/* 0 free, 1 ready */
	uint32_t		le_hash;
	char			le_phone[SHM_PHONE_MAX];
	_Atomic uint64_t	le_used_ms;
	_Atomic uint64_t	le_last_call_ms;	/* wall */
	_Atomic uint32_t	le_calls;
	/* ms the caller used on other hosts sharing DATABASE_URL, as last
	 * read from the database at a webhook (capped at 2^32 - 1); not in
	 * the CSV, which stays this host's own */
	_Atomic uint32_t	le_remote_ms;
	/* the caller's calls live on this host, as the master last counted
	 * them (shm_live_count_locked): a change tells a worker to share
	 * what is left between them again */
	_Atomic uint32_t	le_live;
	/* what the last save that reached the disk holds for this caller,
	 * set by the save (ledger.c); used_ms - saved_ms is what a master
	 * that dies now would lose, and what the rescue journal keeps */
	_Atomic uint32_t	le_saved_calls;
	_Atomic uint64_t	le_saved_ms;
};

struct shm_token {
	_Atomic uint64_t	tk_key;		/* hash of the token; 0 free */
	_Atomic uint64_t	tk_expires;	/* Unix seconds */
};

enum shm_status { SHM_RUNNING = 0, SHM_DRAINING, SHM_STOPPING };

struct shm_hdr {
	uint32_t		sh_magic;
	uint32_t		sh_version;
	uint32_t		sh_hdr_size, sh_worker_size, sh_call_size;
	uint32_t		sh_ledger_size, sh_token_size;
	uint32_t		sh_nworkers, sh_ncalls, sh_nledger, sh_ntokens;
	uint64_t		sh_off_workers, sh_off_calls, sh_off_ledger;
	uint64_t		sh_off_tokens, sh_total_size;
	int32_t			sh_master_pid;
	uint64_t		sh_birth_wall_ms;
	uint64_t		sh_birth_ms;		/* mono */
	_Atomic uint32_t	sh_status;
	_Atomic uint32_t	sh_generation;
	_Atomic uint64_t	sh_ledger_version;	/* bumped on every change */
	_Atomic uint64_t	sh_fold_seq;		/* odd while a fold runs */
	_Atomic uint32_t	sh_ledger_used;
	/* callers the ledger takes: LEDGER_CAPACITY, never more than three
	 * quarters of sh_nledger (probe chains stay short) */
	_Atomic uint32_t	sh_ledger_cap;
	_Atomic uint64_t	sh_free_ms;		/* FREE_CALL_MINUTES in ms */
	/*
	 * Calls folded into the ledger that started on UTC day sh_day (days
	 * since the epoch): their number and their ms.  The master writes
	 * them in shm_fold_locked and reads them in shm_today; a fold of a
	 * call that started on a later day starts that day afresh, one that
	 * started on an earlier day is not counted.  A new region starts
	 * at zero: the figures cover what this master has folded.
	 */
	_Atomic uint64_t	sh_day;
	_Atomic uint64_t	sh_day_ms;
	_Atomic uint64_t	sh_day_calls;
	/*
	 * The rescue after the master's death (shm/rescue.h): sh_rescuer is
	 * 0 until the first worker that finds the master gone takes it (its
	 * pid, compare-and-swap); that one journals the ledger's unsaved
	 * part.  sh_save_pid is the ledger save child's pid while a save
	 * runs (set by the master before the fork, cleared by the child when
	 * le_saved_* are set, or by the master when it reaps the child).
	 */
	_Atomic int32_t		sh_rescuer;
	_Atomic int32_t		sh_save_pid;
	/* the call slot a fold is adding (its index + 1; 0 none), and its
	 * caller's le_calls before the add: a master killed between the add
	 * and the slot's free leaves them, and the rescue counts that slot
	 * only if the ledger does not hold it yet */
	_Atomic uint32_t	sh_fold_slot;
	_Atomic uint32_t	sh_fold_calls;
	pthread_mutex_t		sh_token_lock;		/* robust, shared */
	_Atomic uint64_t	sh_counters[SC__COUNT];	/* the master's own */
	struct shm_hist		sh_hist[SH__COUNT];	/* the master's own */
} __attribute__((aligned(64)));

/* One process's view of the region. */
struct shm {
	struct shm_hdr		*hdr;
	struct shm_worker	*workers;
	struct shm_call		*calls;
	struct shm_ledger	*ledger;
	struct shm_token	*tokens;
	size_t			 size;
};

/* Master, before the first fork.  Returns 0 or -errno. */
int  shm_create(struct shm *s, unsigned nworkers, unsigned ncalls,
    unsigned nledger, unsigned ntokens);
void shm_destroy(struct shm *s);
/* Check magic, version, sizes and offsets of a region.  0 or -EINVAL. */
int  shm_validate(const struct shm *s);

/* ---- counters and histograms (owner process only) ---- */
static inline void
shm_count(_Atomic uint64_t *counters, enum shm_counter c, uint64_t n)
{
	atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}
void     shm_hist_add(struct shm_hist *h, uint64_t us);
/* n samples of the same value. */
void     shm_hist_add_n(struct shm_hist *h, uint64_t us, uint64_t n);
unsigned shm_hist_bucket(uint64_t us);
/* Upper bound (µs) of bucket b. */
uint64_t shm_hist_bucket_le(unsigned b);
/* Sum of one counter over the master and every worker slot. */
uint64_t shm_counter_sum(const struct shm *s, enum shm_counter c);
/* Merge every slot's histogram id into out (a plain copy, not shared). */
void     shm_hist_sum(const struct shm *s, enum shm_hist_id id, struct shm_hist *out);
/* Percentile (0..1) from a histogram: the upper bound of its bucket. */
uint64_t shm_hist_percentile(const struct shm_hist *h, double q);

/* ---- call slots ---- */
/* Claim a free slot for worker `slot` (pid).  Returns its index or -1. */
int  shm_call_claim(struct shm *s, int slot, pid_t pid);
/* Owner: fill strings of a CLAIMED slot, then shm_call_publish(). */
void shm_call_publish(struct shm *s, int idx, uint64_t start_ms,
    uint64_t start_wall_ms);
/* Owner: change the persona shown for a LIVE slot (seqlock). */
void shm_call_set_persona(struct shm *s, int idx, const char *persona);
/* Owner: the call is over; elapsed = end_ms - start.  The master folds it. */
void shm_call_end(struct shm *s, int idx, uint64_t end_ms, int failed,
    const char *reason);
/* Owner: release a slot claimed but never published. */
void shm_call_abandon(struct shm *s, int idx);

/* A consistent copy of a slot for readers.  Returns 0 if the copy is of a
 * LIVE or ENDED slot and was not torn by a reuse, -1 otherwise. */
struct shm_call_view {
	uint32_t	state;
	int		worker;
	pid_t		pid;
	uint64_t	start_ms, start_wall_ms, end_ms, billed_ms;
	uint64_t	frames_in, frames_out;
	int		failed;
	char		call_sid[SHM_SID_MAX], stream_sid[SHM_SID_MAX];
	char		phone[SHM_PHONE_MAX], route[SHM_NAME_MAX];
	char		persona[SHM_NAME_MAX], reason[SHM_REASON_MAX];
};
int  shm_call_read(const struct shm *s, int idx, struct shm_call_view *v);
/* Live streams and calls, counted from the call slots. */
unsigned shm_calls_live(const struct shm *s);

/* ---- ledger ---- */
/* Lock-free lookup (any process).  Index or -1. */
int      shm_ledger_find(const struct shm *s, const char *phone);
/* Master only: lookup or insert.  Index or -1 when the table is full. */
int      shm_ledger_get_locked(struct shm *s, const char *phone);
/* Master only: the callers the ledger takes, at most three quarters of
 * its table (what shm_create set); returns the capacity set. */
uint32_t shm_ledger_set_cap(struct shm *s, uint32_t cap);
/* No new caller fits: every one of sh_ledger_cap entries is in use. */
static inline int
shm_ledger_full(const struct shm *s)
{
	return atomic_load_explicit(&s->hdr->sh_ledger_used, memory_order_relaxed) >=
	    atomic_load_explicit(&s->hdr->sh_ledger_cap, memory_order_relaxed);
}
/* Master only: add a finished call's time. */
void     shm_ledger_add_locked(struct shm *s, int idx, uint64_t ms,
    uint64_t call_wall_ms, uint32_t calls);
/* Master only, at start: set an entry from the saved CSV. */
int      shm_ledger_load_locked(struct shm *s, const char *phone,
    uint64_t used_ms, uint64_t last_call_ms, uint32_t calls);
/* ms used by phone: folded ledger plus its live calls' elapsed time at
 * now_ms (mono).  Any process. */
uint64_t shm_usage_ms(const struct shm *s, const char *phone, uint64_t now_ms);
/* The same, and *nlive gets how many of those calls are live. */
uint64_t shm_usage_live_ms(const struct shm *s, const char *phone,
    uint64_t now_ms, unsigned *nlive);
/* The phone's le_remote_ms and le_live in one look-up (0 when unknown). */
void     shm_caller_peek(const struct shm *s, const char *phone,
    uint64_t *remote_ms, unsigned *live);
/* The ms phone used on other hosts as last read (0 when unknown).  Any
 * process; set by the master only. */
uint64_t shm_remote_ms(const struct shm *s, const char *phone);
void     shm_remote_set(struct shm *s, int idx, uint64_t ms);

/*
 * Master only: count each caller's LIVE calls into le_live.  The work is
 * one look-up per live call and per entry counted last time, never a pass
 * over the ledger; lc is the master's own scratch (shm_live_init).
 */
struct shm_live_count {
	uint32_t	*cnt;		/* per ledger entry, zero between passes */
	uint32_t	*cur, *prev;	/* entries with live calls */
	unsigned	 ncur, nprev;
};
int  shm_live_init(const struct shm *s, struct shm_live_count *lc);
void shm_live_count_locked(struct shm *s, struct shm_live_count *lc);
void shm_live_free(struct shm_live_count *lc);

/*
 * Master only: fold every ENDED call into the ledger and free its slot.
 * With dead_slot >= 0, also finish the LIVE/CLAIMED calls of that worker
 * (pid dead_pid): billed up to now_ms, counted as failed, reason set.
 * Returns the number of calls folded; *lost gets the dead worker's calls.
 */
int  shm_fold_locked(struct shm *s, uint64_t now_ms, uint64_t now_wall_ms,
    int dead_slot, pid_t dead_pid, unsigned *lost);

/*
 * Master only (the folder: nothing is folded under it): the calls that
 * started on the UTC day of now_wall_ms, ended or live, folded or not.
 * *calls gets their number and *ms their time, a live call's up to now_ms
 * (mono).  A call belongs to the day it started on, however long it runs.
 */
void shm_today(const struct shm *s, uint64_t now_ms, uint64_t now_wall_ms,
    uint64_t *ms, uint64_t *calls);

/* ---- stream tokens ---- */
/* Record a token as used until expires (Unix s).  Returns 0 if it was
 * new, 1 if it was already used, -1 if the table is full. */
int  shm_token_use(struct shm *s, uint64_t key, uint64_t expires, uint64_t now_s);
/* Whether key is recorded and unexpired (lock-free, any process). */
int  shm_token_seen(const struct shm *s, uint64_t key, uint64_t now_s);
/* The table's keys: a redeemed stream token (its text), and a CallSid
 * whose stream has opened (a worker records both at the upgrade). */
uint64_t shm_token_key(const char *tok, size_t len);
uint64_t shm_sid_key(const char *sid);
/* the key of a stream resumed after a transfer, by its marker's expiry */
uint64_t shm_resume_key(const char *sid, uint64_t resume);
/* The table's lock, for a writer that must keep inserts out while it
 * works (the used-token file's compaction, shm/tokfile.c). */
int  shm_token_lock(struct shm *s);
void shm_token_unlock(struct shm *s);
struct shm_token_rec {
	uint64_t	key, expires;
};
/* With the lock held: the unexpired entries, at most max.  Their count. */
size_t shm_token_list_locked(const struct shm *s, uint64_t now_s,
    struct shm_token_rec *out, size_t max);

/* ---- worker slots ---- */
static inline struct shm_worker *
shm_worker(const struct shm *s, int slot)
{
	return &s->workers[slot];
}

#endif
