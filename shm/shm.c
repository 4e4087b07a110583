/*
 * shm.c — see shm.h for who writes what.  Everything that does arithmetic
 * on the region lives here.
 */
#include "shm/shm.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

const char *const shm_worker_state_names[SW__COUNT] = {
	"free", "spawning", "ready", "draining", "exited",
};

_Static_assert(sizeof(struct shm_worker) % 64 == 0, "worker slot alignment");
_Static_assert(sizeof(struct shm_call) % 64 == 0, "call slot alignment");
_Static_assert(sizeof(struct shm_ledger) == 96, "ledger entry size");
_Static_assert(sizeof(struct shm_token) == 16, "token entry size");

static size_t
round_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

static unsigned
pow2_at_least(unsigned n)
{
	unsigned p = 16;
	while (p < n)
		p <<= 1;
	return p;
}

static void
shm_map(struct shm *s, void *base)
{
	struct shm_hdr *h = base;

	s->hdr = h;
	s->workers = (struct shm_worker *)((char *)base + h->sh_off_workers);
	s->calls = (struct shm_call *)((char *)base + h->sh_off_calls);
	s->ledger = (struct shm_ledger *)((char *)base + h->sh_off_ledger);
	s->tokens = (struct shm_token *)((char *)base + h->sh_off_tokens);
	s->size = h->sh_total_size;
}

int
shm_create(struct shm *s, unsigned nworkers, unsigned ncalls, unsigned nledger,
    unsigned ntokens)
{
	pthread_mutexattr_t ma;
	struct shm_hdr *h;
	size_t off, total;
	void *base;
	int rc;

	if (nworkers == 0 || nworkers > SHM_MAX_WORKERS || ncalls == 0)
		return -EINVAL;
	nledger = pow2_at_least(nledger);
	ntokens = pow2_at_least(ntokens);

	off = round_up(sizeof(struct shm_hdr), 4096);
	size_t off_w = off;
	off += round_up((size_t)nworkers * sizeof(struct shm_worker), 4096);
	size_t off_c = off;
	off += round_up((size_t)ncalls * sizeof(struct shm_call), 4096);
	size_t off_l = off;
	off += round_up((size_t)nledger * sizeof(struct shm_ledger), 4096);
	size_t off_t = off;
	off += round_up((size_t)ntokens * sizeof(struct shm_token), 4096);
	total = off;

	base = mmap(NULL, total, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	h = base;
	h->sh_magic = SHM_MAGIC;
	h->sh_version = SHM_VERSION;
	h->sh_hdr_size = sizeof(struct shm_hdr);
	h->sh_worker_size = sizeof(struct shm_worker);
	h->sh_call_size = sizeof(struct shm_call);
	h->sh_ledger_size = sizeof(struct shm_ledger);
	h->sh_token_size = sizeof(struct shm_token);
	h->sh_nworkers = nworkers;
	h->sh_ncalls = ncalls;
	h->sh_nledger = nledger;
	h->sh_ledger_cap = nledger / 4 * 3;
	h->sh_ntokens = ntokens;
	h->sh_off_workers = off_w;
	h->sh_off_calls = off_c;
	h->sh_off_ledger = off_l;
	h->sh_off_tokens = off_t;
	h->sh_total_size = total;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(&h->sh_token_lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (rc != 0) {
		munmap(base, total);
		return -rc;
	}
	shm_map(s, base);
	return 0;
}

void
shm_destroy(struct shm *s)
{
	if (s->hdr != NULL)
		munmap(s->hdr, s->size);
	memset(s, 0, sizeof(*s));
}

int
shm_validate(const struct shm *s)
{
	const struct shm_hdr *h = s->hdr;

	if (h == NULL || h->sh_magic != SHM_MAGIC || h->sh_version != SHM_VERSION ||
	    h->sh_hdr_size != sizeof(struct shm_hdr) ||
	    h->sh_worker_size != sizeof(struct shm_worker) ||
	    h->sh_call_size != sizeof(struct shm_call) ||
	    h->sh_ledger_size != sizeof(struct shm_ledger) ||
	    h->sh_token_size != sizeof(struct shm_token) ||
	    h->sh_nworkers == 0 || h->sh_nworkers > SHM_MAX_WORKERS)
		return -EINVAL;
	if (h->sh_off_tokens + (uint64_t)h->sh_ntokens * h->sh_token_size >
	    h->sh_total_size)
		return -EINVAL;
	return 0;
}

/* ---------------------------------------------------------------- */
/* histograms */

unsigned
shm_hist_bucket(uint64_t us)
{
	unsigned msb, b;

	if (us < 4)
		return (unsigned)us;
	msb = 63 - __builtin_clzll(us);
	/* 4 sub-buckets per power of two: the two bits under the top one */
	b = 4 * (msb - 1) + (unsigned)((us >> (msb - 2)) & 3);
	return b < SHM_HIST_BUCKETS ? b : SHM_HIST_BUCKETS - 1;
}

uint64_t
shm_hist_bucket_le(unsigned b)
{
	unsigned msb, sub;

	if (b < 4)
		return b;
	if (b >= SHM_HIST_BUCKETS - 1)
		return UINT64_MAX;
	msb = b / 4 + 1;
	sub = b % 4;
	/* largest value whose bucket is b */
	return ((uint64_t)(4 + sub + 1) << (msb - 2)) - 1;
}

void
shm_hist_add(struct shm_hist *h, uint64_t us)
{
	shm_hist_add_n(h, us, 1);
}

void
shm_hist_add_n(struct shm_hist *h, uint64_t us, uint64_t n)
{
	uint64_t max;

	if (n == 0)
		return;
	atomic_fetch_add_explicit(&h->h_bucket[shm_hist_bucket(us)], n,
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&h->h_count, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->h_sum_us, us * n, memory_order_relaxed);
	max = atomic_load_explicit(&h->h_max_us, memory_order_relaxed);
	if (us > max)
		atomic_store_explicit(&h->h_max_us, us, memory_order_relaxed);
}

static void
hist_merge(struct shm_hist *out, const struct shm_hist *in)
{
	for (unsigned b = 0; b < SHM_HIST_BUCKETS; b++)
		out->h_bucket[b] += atomic_load_explicit(&in->h_bucket[b],
		    memory_order_relaxed);
	out->h_count += atomic_load_explicit(&in->h_count, memory_order_relaxed);
	out->h_sum_us += atomic_load_explicit(&in->h_sum_us, memory_order_relaxed);
	uint64_t m = atomic_load_explicit(&in->h_max_us, memory_order_relaxed);
	if (m > out->h_max_us)
		out->h_max_us = m;
}

void
shm_hist_sum(const struct shm *s, enum shm_hist_id id, struct shm_hist *out)
{
	memset(out, 0, sizeof(*out));
	hist_merge(out, &s->hdr->sh_hist[id]);
	for (unsigned i = 0; i < s->hdr->sh_nworkers; i++)
		hist_merge(out, &s->workers[i].sw_hist[id]);
}

uint64_t
shm_hist_percentile(const struct shm_hist *h, double q)
{
	uint64_t n = h->h_count, want, seen = 0;

	if (n == 0)
		return 0;
	want = (uint64_t)(q * (double)n + 0.999999);
	if (want == 0)
		want = 1;
	for (unsigned b = 0; b < SHM_HIST_BUCKETS; b++) {
		seen += h->h_bucket[b];
		if (seen >= want) {
			uint64_t le = shm_hist_bucket_le(b);
			return le < h->h_max_us ? le : h->h_max_us;
		}
	}
	return h->h_max_us;
}

uint64_t
shm_counter_sum(const struct shm *s, enum shm_counter c)
{
	uint64_t sum = atomic_load_explicit(&s->hdr->sh_counters[c],
	    memory_order_relaxed);

	for (unsigned i = 0; i < s->hdr->sh_nworkers; i++)
		sum += atomic_load_explicit(&s->workers[i].sw_counters[c],
		    memory_order_relaxed);
	return sum;
}

/* ---------------------------------------------------------------- */
/* call slots */

int
shm_call_claim(struct shm *s, int slot, pid_t pid)
{
	static unsigned hint;	/* per process: spreads workers over the table */
	unsigned n = s->hdr->sh_ncalls;

	for (unsigned k = 0; k < n; k++) {
		unsigned i = (hint + k) % n;
		struct shm_call *c = &s->calls[i];
		uint32_t expect = CS_FREE;

		if (atomic_load_explicit(&c->cs_state, memory_order_relaxed) != CS_FREE)
			continue;
		if (!atomic_compare_exchange_strong_explicit(&c->cs_state, &expect,
		    CS_CLAIMED, memory_order_acq_rel, memory_order_relaxed))
			continue;
		atomic_fetch_add_explicit(&c->cs_gen, 1, memory_order_release);
		atomic_store_explicit(&c->cs_worker, slot, memory_order_relaxed);
		atomic_store_explicit(&c->cs_pid, pid, memory_order_relaxed);
		atomic_store_explicit(&c->cs_frames_in, 0, memory_order_relaxed);
		atomic_store_explicit(&c->cs_frames_out, 0, memory_order_relaxed);
		atomic_store_explicit(&c->cs_billed_ms, 0, memory_order_relaxed);
		atomic_store_explicit(&c->cs_end_ms, 0, memory_order_relaxed);
		atomic_store_explicit(&c->cs_failed, 0, memory_order_relaxed);
		atomic_store_explicit(&c->cs_start_ms, 0, memory_order_relaxed);
		memset(c->cs_call_sid, 0, sizeof(c->cs_call_sid));
		memset(c->cs_stream_sid, 0, sizeof(c->cs_stream_sid));
		memset(c->cs_phone, 0, sizeof(c->cs_phone));
		memset(c->cs_route, 0, sizeof(c->cs_route));
		memset(c->cs_persona, 0, sizeof(c->cs_persona));
		memset(c->cs_reason, 0, sizeof(c->cs_reason));
		hint = i + 1;
		return (int)i;
	}
	return -1;
}

void
shm_call_publish(struct shm *s, int idx, uint64_t start_ms, uint64_t start_wall_ms)
{
	struct shm_call *c = &s->calls[idx];

	c->cs_call_sid[SHM_SID_MAX - 1] = '\0';
	c->cs_stream_sid[SHM_SID_MAX - 1] = '\0';
	c->cs_phone[SHM_PHONE_MAX - 1] = '\0';
	c->cs_route[SHM_NAME_MAX - 1] = '\0';
	c->cs_persona[SHM_NAME_MAX - 1] = '\0';
	atomic_store_explicit(&c->cs_start_ms, start_ms, memory_order_relaxed);
	atomic_store_explicit(&c->cs_start_wall_ms, start_wall_ms,
	    memory_order_relaxed);
	/* everything above becomes visible with the state */
	atomic_store_explicit(&c->cs_state, CS_LIVE, memory_order_release);
}

void
shm_call_set_persona(struct shm *s, int idx, const char *persona)
{
	struct shm_call *c = &s->calls[idx];
	uint32_t q = atomic_load_explicit(&c->cs_persona_seq, memory_order_relaxed);
	size_t n = strlen(persona);

	if (n >= SHM_NAME_MAX)
		n = SHM_NAME_MAX - 1;
	atomic_store_explicit(&c->cs_persona_seq, q + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	memset(c->cs_persona, 0, sizeof(c->cs_persona));
	memcpy(c->cs_persona, persona, n);
	atomic_store_explicit(&c->cs_persona_seq, q + 2, memory_order_release);
}

void
shm_call_end(struct shm *s, int idx, uint64_t end_ms, int failed,
    const char *reason)
{
	struct shm_call *c = &s->calls[idx];
	size_t n = reason ? strlen(reason) : 0;

	if (n >= SHM_REASON_MAX)
		n = SHM_REASON_MAX - 1;
	memset(c->cs_reason, 0, sizeof(c->cs_reason));
	if (n)
		memcpy(c->cs_reason, reason, n);
	atomic_store_explicit(&c->cs_end_ms, end_ms, memory_order_relaxed);
	atomic_store_explicit(&c->cs_failed, failed ? 1 : 0, memory_order_relaxed);
	atomic_store_explicit(&c->cs_state, CS_ENDED, memory_order_release);
}

void
shm_call_abandon(struct shm *s, int idx)
{
	atomic_store_explicit(&s->calls[idx].cs_state, CS_FREE,
	    memory_order_release);
}

static void
copy_str(char *dst, const char *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n - 1] = '\0';
}

int
shm_call_read(const struct shm *s, int idx, struct shm_call_view *v)
{
	const struct shm_call *c = &s->calls[idx];
	uint32_t gen, st, pseq;

	for (int tries = 0; tries < 4; tries++) {
		gen = atomic_load_explicit(&c->cs_gen, memory_order_acquire);
		st = atomic_load_explicit(&c->cs_state, memory_order_acquire);
		if (st != CS_LIVE && st != CS_ENDED)
			return -1;
		v->state = st;
		v->worker = atomic_load_explicit(&c->cs_worker, memory_order_relaxed);
		v->pid = atomic_load_explicit(&c->cs_pid, memory_order_relaxed);
		v->start_ms = atomic_load_explicit(&c->cs_start_ms, memory_order_relaxed);
		v->start_wall_ms = atomic_load_explicit(&c->cs_start_wall_ms,
		    memory_order_relaxed);
		v->end_ms = atomic_load_explicit(&c->cs_end_ms, memory_order_relaxed);
		v->billed_ms = atomic_load_explicit(&c->cs_billed_ms, memory_order_relaxed);
		v->frames_in = atomic_load_explicit(&c->cs_frames_in, memory_order_relaxed);
		v->frames_out = atomic_load_explicit(&c->cs_frames_out, memory_order_relaxed);
		v->failed = atomic_load_explicit(&c->cs_failed, memory_order_relaxed);
		copy_str(v->call_sid, c->cs_call_sid, sizeof(v->call_sid));
		copy_str(v->stream_sid, c->cs_stream_sid, sizeof(v->stream_sid));
		copy_str(v->phone, c->cs_phone, sizeof(v->phone));
		copy_str(v->route, c->cs_route, sizeof(v->route));
		copy_str(v->reason, c->cs_reason, sizeof(v->reason));
		do {
			pseq = atomic_load_explicit(&c->cs_persona_seq,
			    memory_order_acquire);
			copy_str(v->persona, c->cs_persona, sizeof(v->persona));
			atomic_thread_fence(memory_order_acquire);
		} while ((pseq & 1) || pseq != atomic_load_explicit(
		    &c->cs_persona_seq, memory_order_relaxed));
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&c->cs_gen, memory_order_relaxed) == gen)
			return 0;
	}
	return -1;
}

unsigned
shm_calls_live(const struct shm *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->hdr->sh_ncalls; i++)
		if (atomic_load_explicit(&s->calls[i].cs_state,
		    memory_order_relaxed) == CS_LIVE)
			n++;
	return n;
}

/* ---------------------------------------------------------------- */
/* ledger */

static uint32_t
phone_hash(const char *p)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 16777619u;
	}
	return h ? h : 1;
}

int
shm_ledger_find(const struct shm *s, const char *phone)
{
	uint32_t h = phone_hash(phone), mask = s->hdr->sh_nledger - 1;

	for (uint32_t k = 0; k <= mask; k++) {
		const struct shm_ledger *e = &s->ledger[(h + k) & mask];

		if (atomic_load_explicit(&e->le_state, memory_order_acquire) == 0)
			return -1;
		if (e->le_hash == h && strcmp(e->le_phone, phone) == 0)
			return (int)((h + k) & mask);
	}
	return -1;
}

int
shm_ledger_get_locked(struct shm *s, const char *phone)
{
	uint32_t h = phone_hash(phone), mask = s->hdr->sh_nledger - 1;
	size_t n = strlen(phone);

	if (n == 0 || n >= SHM_PHONE_MAX)
		return -1;
	/* keep a free quarter so probe chains stay short */
	for (uint32_t k = 0; k <= mask; k++) {
		uint32_t i = (h + k) & mask;
		struct shm_ledger *e = &s->ledger[i];

		if (atomic_load_explicit(&e->le_state, memory_order_relaxed) == 0) {
			if (shm_ledger_full(s))
				return -1;
			/* fill first, publish last */
			e->le_hash = h;
			memset(e->le_phone, 0, sizeof(e->le_phone));
			memcpy(e->le_phone, phone, n);
			atomic_store_explicit(&e->le_used_ms, 0, memory_order_relaxed);
			atomic_store_explicit(&e->le_last_call_ms, 0, memory_order_relaxed);
			atomic_store_explicit(&e->le_calls, 0, memory_order_relaxed);
			atomic_store_explicit(&e->le_remote_ms, 0, memory_order_relaxed);
			atomic_store_explicit(&e->le_saved_ms, 0, memory_order_relaxed);
			atomic_store_explicit(&e->le_saved_calls, 0, memory_order_relaxed);
			atomic_store_explicit(&e->le_state, 1, memory_order_release);
			atomic_fetch_add_explicit(&s->hdr->sh_ledger_used, 1,
			    memory_order_relaxed);
			return (int)i;
		}
		if (e->le_hash == h && strcmp(e->le_phone, phone) == 0)
			return (int)i;
	}
	return -1;
}

uint32_t
shm_ledger_set_cap(struct shm *s, uint32_t cap)
{
	uint32_t most = s->hdr->sh_nledger / 4 * 3;

	atomic_store(&s->hdr->sh_ledger_cap, cap < most ? cap : most);
	return atomic_load(&s->hdr->sh_ledger_cap);
}

void
shm_ledger_add_locked(struct shm *s, int idx, uint64_t ms, uint64_t call_wall_ms,
    uint32_t calls)
{
	struct shm_ledger *e = &s->ledger[idx];

	atomic_fetch_add_explicit(&e->le_used_ms, ms, memory_order_relaxed);
	atomic_fetch_add_explicit(&e->le_calls, calls, memory_order_relaxed);
	if (call_wall_ms > atomic_load_explicit(&e->le_last_call_ms,
	    memory_order_relaxed))
		atomic_store_explicit(&e->le_last_call_ms, call_wall_ms,
		    memory_order_relaxed);
	atomic_fetch_add_explicit(&s->hdr->sh_ledger_version, 1,
	    memory_order_release);
}

int
shm_ledger_load_locked(struct shm *s, const char *phone, uint64_t used_ms,
    uint64_t last_call_ms, uint32_t calls)
{
	int idx = shm_ledger_get_locked(s, phone);

	if (idx < 0)
		return -1;
	struct shm_ledger *e = &s->ledger[idx];
	atomic_store_explicit(&e->le_used_ms, used_ms, memory_order_relaxed);
	atomic_store_explicit(&e->le_last_call_ms, last_call_ms, memory_order_relaxed);
	atomic_store_explicit(&e->le_calls, calls, memory_order_relaxed);
	/* what the file holds is saved */
	atomic_store_explicit(&e->le_saved_ms, used_ms, memory_order_relaxed);
	atomic_store_explicit(&e->le_saved_calls, calls, memory_order_relaxed);
	return idx;
}

uint64_t
shm_remote_ms(const struct shm *s, const char *phone)
{
	int idx = shm_ledger_find(s, phone);

	return idx < 0 ? 0 : atomic_load_explicit(&s->ledger[idx].le_remote_ms,
	    memory_order_relaxed);
}

void
shm_remote_set(struct shm *s, int idx, uint64_t ms)
{
	atomic_store_explicit(&s->ledger[idx].le_remote_ms, ms > UINT32_MAX ?
	    UINT32_MAX : (uint32_t)ms, memory_order_relaxed);
}

void
shm_caller_peek(const struct shm *s, const char *phone, uint64_t *remote_ms,
    unsigned *live)
{
	int idx = shm_ledger_find(s, phone);

	*remote_ms = idx < 0 ? 0 : atomic_load_explicit(
	    &s->ledger[idx].le_remote_ms, memory_order_relaxed);
	*live = idx < 0 ? 0 : atomic_load_explicit(&s->ledger[idx].le_live,
	    memory_order_relaxed);
}

uint64_t
shm_usage_ms(const struct shm *s, const char *phone, uint64_t now_ms)
{
	return shm_usage_live_ms(s, phone, now_ms, NULL);
}

uint64_t
shm_usage_live_ms(const struct shm *s, const char *phone, uint64_t now_ms,
    unsigned *nlive)
{
	uint64_t seq, total;
	unsigned live;

	/* Bounded: a master killed in the middle of a fold leaves the word
	 * odd for ever, and then a slightly torn sum is the best there is. */
	for (int tries = 0;; tries++) {
		seq = atomic_load_explicit(&s->hdr->sh_fold_seq, memory_order_acquire);
		if ((seq & 1) && tries < 100000)
			continue;	/* a fold is running: it takes microseconds */
		total = 0;
		live = 0;
		int idx = shm_ledger_find(s, phone);
		if (idx >= 0)
			total = atomic_load_explicit(&s->ledger[idx].le_used_ms,
			    memory_order_relaxed);
		for (unsigned i = 0; i < s->hdr->sh_ncalls; i++) {
			const struct shm_call *c = &s->calls[i];
			uint32_t st = atomic_load_explicit(&c->cs_state,
			    memory_order_acquire);
			uint64_t start, end;

			if (st != CS_LIVE && st != CS_ENDED)
				continue;
			if (strncmp(c->cs_phone, phone, SHM_PHONE_MAX) != 0)
				continue;
			start = atomic_load_explicit(&c->cs_start_ms, memory_order_relaxed);
			end = st == CS_ENDED ? atomic_load_explicit(&c->cs_end_ms,
			    memory_order_relaxed) : now_ms;
			if (end > start)
				total += end - start;
			live += st == CS_LIVE;
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&s->hdr->sh_fold_seq,
		    memory_order_relaxed) == seq || tries >= 100000) {
			if (nlive != NULL)
				*nlive = live;
			return total;
		}
	}
}

#define DAY_MS	86400000ull

/* Master, inside a fold: count a call that started at wall ms. */
static void
day_add(struct shm_hdr *h, uint64_t wall, uint64_t ms)
{
	uint64_t day = wall / DAY_MS;
	uint64_t cur = atomic_load_explicit(&h->sh_day, memory_order_relaxed);

	if (day < cur)
		return;
	if (day > cur) {
		atomic_store_explicit(&h->sh_day_ms, 0, memory_order_relaxed);
		atomic_store_explicit(&h->sh_day_calls, 0, memory_order_relaxed);
		atomic_store_explicit(&h->sh_day, day, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&h->sh_day_ms, ms, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sh_day_calls, 1, memory_order_relaxed);
}

void
shm_today(const struct shm *s, uint64_t now_ms, uint64_t now_wall_ms,
    uint64_t *ms, uint64_t *calls)
{
	const struct shm_hdr *h = s->hdr;
	uint64_t day = now_wall_ms / DAY_MS, tms = 0, tcalls = 0;

	if (atomic_load_explicit(&h->sh_day, memory_order_relaxed) == day) {
		tms = atomic_load_explicit(&h->sh_day_ms, memory_order_relaxed);
		tcalls = atomic_load_explicit(&h->sh_day_calls,
		    memory_order_relaxed);
	}
	for (unsigned i = 0; i < h->sh_ncalls; i++) {
		const struct shm_call *c = &s->calls[i];
		uint32_t st = atomic_load_explicit(&c->cs_state,
		    memory_order_acquire);
		uint64_t start, end, wall;

		if (st != CS_LIVE && st != CS_ENDED)
			continue;
		/* as the fold will date it */
		wall = atomic_load_explicit(&c->cs_start_wall_ms,
		    memory_order_relaxed);
		if ((wall ? wall : now_wall_ms) / DAY_MS != day)
			continue;
		start = atomic_load_explicit(&c->cs_start_ms, memory_order_relaxed);
		end = st == CS_ENDED ? atomic_load_explicit(&c->cs_end_ms,
		    memory_order_relaxed) : now_ms;
		tms += end > start ? end - start : 0;
		tcalls++;
	}
	*ms = tms;
	*calls = tcalls;
}

int
shm_fold_locked(struct shm *s, uint64_t now_ms, uint64_t now_wall_ms,
    int dead_slot, pid_t dead_pid, unsigned *lost)
{
	struct shm_hdr *h = s->hdr;
	int folded = 0;
	unsigned nlost = 0;

	atomic_fetch_add_explicit(&h->sh_fold_seq, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (unsigned i = 0; i < h->sh_ncalls; i++) {
		struct shm_call *c = &s->calls[i];
		uint32_t st = atomic_load_explicit(&c->cs_state, memory_order_acquire);
		uint64_t start, end, wall;
		int dead;

		if (st == CS_FREE)
			continue;
		dead = dead_slot >= 0 &&
		    atomic_load_explicit(&c->cs_worker, memory_order_relaxed) == dead_slot &&
		    atomic_load_explicit(&c->cs_pid, memory_order_relaxed) == dead_pid;
		if (st == CS_CLAIMED) {
			if (dead)
				atomic_store_explicit(&c->cs_state, CS_FREE,
				    memory_order_release);
			continue;
		}
		if (st == CS_LIVE && !dead)
			continue;
		start = atomic_load_explicit(&c->cs_start_ms, memory_order_relaxed);
		if (st == CS_LIVE) {
			/* its worker died: the call ended when it did */
			end = now_ms;
			memset(c->cs_reason, 0, sizeof(c->cs_reason));
			strcpy(c->cs_reason, "worker died");
			atomic_store_explicit(&c->cs_failed, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&h->sh_counters[SC_failed_calls], 1,
			    memory_order_relaxed);
			nlost++;
		} else
			end = atomic_load_explicit(&c->cs_end_ms, memory_order_relaxed);
		wall = atomic_load_explicit(&c->cs_start_wall_ms, memory_order_relaxed);
		if (wall == 0)
			wall = now_wall_ms;
		day_add(h, wall, end > start ? end - start : 0);
		int idx = shm_ledger_get_locked(s, c->cs_phone);
		if (idx >= 0) {
			/* a master killed between the add and the free: the
			 * rescue tells by the calls whether the add happened */
			atomic_store_explicit(&h->sh_fold_calls, atomic_load_explicit(
			    &s->ledger[idx].le_calls, memory_order_relaxed),
			    memory_order_relaxed);
			atomic_store_explicit(&h->sh_fold_slot, i + 1,
			    memory_order_relaxed);
			shm_ledger_add_locked(s, idx, end > start ? end - start : 0,
			    wall, 1);
		} else
			atomic_fetch_add_explicit(&h->sh_counters[SC_ledger_full], 1,
			    memory_order_relaxed);
		atomic_store_explicit(&c->cs_state, CS_FREE, memory_order_release);
		atomic_store_explicit(&h->sh_fold_slot, 0, memory_order_relaxed);
		folded++;
	}
	atomic_thread_fence(memory_order_release);
	atomic_fetch_add_explicit(&h->sh_fold_seq, 1, memory_order_release);
	if (lost)
		*lost = nlost;
	return folded;
}

int
shm_live_init(const struct shm *s, struct shm_live_count *lc)
{
	memset(lc, 0, sizeof(*lc));
	lc->cnt = calloc(s->hdr->sh_nledger, sizeof(*lc->cnt));
	lc->cur = calloc(s->hdr->sh_ncalls, sizeof(*lc->cur));
	lc->prev = calloc(s->hdr->sh_ncalls, sizeof(*lc->prev));
	if (lc->cnt == NULL || lc->cur == NULL || lc->prev == NULL) {
		shm_live_free(lc);
		return -1;
	}
	return 0;
}

void
shm_live_free(struct shm_live_count *lc)
{
	free(lc->cnt);
	free(lc->cur);
	free(lc->prev);
	memset(lc, 0, sizeof(*lc));
}

void
shm_live_count_locked(struct shm *s, struct shm_live_count *lc)
{
	uint32_t *t;

	if (lc->cnt == NULL)
		return;
	lc->ncur = 0;
	for (unsigned i = 0; i < s->hdr->sh_ncalls; i++) {
		const struct shm_call *c = &s->calls[i];
		int idx;

		if (atomic_load_explicit(&c->cs_state, memory_order_acquire) !=
		    CS_LIVE || (idx = shm_ledger_find(s, c->cs_phone)) < 0)
			continue;
		if (lc->cnt[idx]++ == 0)
			lc->cur[lc->ncur++] = (uint32_t)idx;
	}
	/* callers whose last live call ended since */
	for (unsigned i = 0; i < lc->nprev; i++)
		if (lc->cnt[lc->prev[i]] == 0)
			atomic_store_explicit(&s->ledger[lc->prev[i]].le_live, 0,
			    memory_order_relaxed);
	for (unsigned i = 0; i < lc->ncur; i++) {
		uint32_t idx = lc->cur[i];

		if (atomic_load_explicit(&s->ledger[idx].le_live,
		    memory_order_relaxed) != lc->cnt[idx])
			atomic_store_explicit(&s->ledger[idx].le_live,
			    lc->cnt[idx], memory_order_relaxed);
		lc->cnt[idx] = 0;
	}
	t = lc->prev;
	lc->prev = lc->cur;
	lc->cur = t;
	lc->nprev = lc->ncur;
}

/* ---------------------------------------------------------------- */
/* stream tokens */

static int
token_lock(struct shm *s)
{
	int rc = pthread_mutex_lock(&s->hdr->sh_token_lock);

	if (rc == EOWNERDEAD) {
		/*
		 * The holder died inside the critical section.  Each step
		 * there is one store that leaves the table consistent (the
		 * expiry is written before the key), so there is nothing to
		 * repair: mark the lock usable again.
		 */
		pthread_mutex_consistent(&s->hdr->sh_token_lock);
		rc = 0;
	}
	return rc;
}

int
shm_token_use(struct shm *s, uint64_t key, uint64_t expires, uint64_t now_s)
{
	uint32_t mask = s->hdr->sh_ntokens - 1;
	int where = -1, rc = -1;

	if (key == 0)
		key = 1;
	if (token_lock(s) != 0)
		return -1;
	for (uint32_t k = 0; k <= mask; k++) {
		uint32_t i = (uint32_t)(key + k) & mask;
		struct shm_token *t = &s->tokens[i];
		uint64_t tk = atomic_load_explicit(&t->tk_key, memory_order_relaxed);
		uint64_t ex = atomic_load_explicit(&t->tk_expires, memory_order_relaxed);

		if (tk == key && ex >= now_s) {
			rc = 1;
			goto out;
		}
		if (tk != 0 && ex < now_s && where < 0)
			where = (int)i;		/* expired: reusable */
		if (tk == 0) {
			if (where < 0)
				where = (int)i;
			break;
		}
	}
	if (where >= 0) {
		struct shm_token *t = &s->tokens[where];
		atomic_store_explicit(&t->tk_expires, expires, memory_order_relaxed);
		atomic_store_explicit(&t->tk_key, key, memory_order_release);
		rc = 0;
	}
out:
	pthread_mutex_unlock(&s->hdr->sh_token_lock);
	return rc;
}

int
shm_token_seen(const struct shm *s, uint64_t key, uint64_t now_s)
{
	uint32_t mask = s->hdr->sh_ntokens - 1;

	if (key == 0)
		key = 1;
	/* lock-free: an entry is published key last, with release */
	for (uint32_t k = 0; k <= mask; k++) {
		const struct shm_token *t = &s->tokens[(uint32_t)(key + k) & mask];
		uint64_t tk = atomic_load_explicit(&t->tk_key, memory_order_acquire);

		if (tk == 0)
			return 0;
		if (tk == key && atomic_load_explicit(&t->tk_expires,
		    memory_order_relaxed) >= now_s)
			return 1;
	}
	return 0;
}

int
shm_token_lock(struct shm *s)
{
	return token_lock(s);
}

void
shm_token_unlock(struct shm *s)
{
	pthread_mutex_unlock(&s->hdr->sh_token_lock);
}

size_t
shm_token_list_locked(const struct shm *s, uint64_t now_s,
    struct shm_token_rec *out, size_t max)
{
	size_t n = 0;

	for (uint32_t i = 0; i < s->hdr->sh_ntokens && n < max; i++) {
		const struct shm_token *t = &s->tokens[i];
		uint64_t tk = atomic_load_explicit(&t->tk_key, memory_order_relaxed);
		uint64_t ex = atomic_load_explicit(&t->tk_expires,
		    memory_order_relaxed);

		if (tk != 0 && ex >= now_s) {
			out[n].key = tk;
			out[n].expires = ex;
			n++;
		}
	}
	return n;
}

static uint64_t
fnv64(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

uint64_t
shm_token_key(const char *tok, size_t len)
{
	return fnv64(1469598103934665603ULL, tok, len);
}

uint64_t
shm_sid_key(const char *sid)
{
	/* its own prefix: a CallSid and a token never share a key */
	return fnv64(fnv64(1469598103934665603ULL, "sid:", 4), sid,
	    strlen(sid));
}

uint64_t
shm_resume_key(const char *sid, uint64_t resume)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), ":%llu", (unsigned long long)resume);

	/* a resumed stream of the call: its own key, one stream per marker */
	return fnv64(fnv64(fnv64(1469598103934665603ULL, "resume:", 7), sid,
	    strlen(sid)), buf, (size_t)n);
}
