/*
 * rescue.c — see rescue.h.
 *
 * Nothing here runs while a master lives: the writers are workers whose
 * master is gone, on their way out, so they may wait on the disk.
 */
#include "shm/rescue.h"
#include "daemon/common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAIT_STEP_MS	20
#define SAVE_WAIT_MS	5000	/* for a ledger save in progress */

static uint32_t
check_of(const char *p, size_t n)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 16777619u;
	}
	return h;
}

static int
plain(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '%';
}

/* Percent-encode s into out (NUL-terminated).  Its length or -1. */
static int
enc(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (*s == '\0')
		return -1;	/* an empty field would not parse */
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (o + 4 > outlen)
			return -1;
		if (plain(c))
			out[o++] = (char)c;
		else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return (int)o;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
dec(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			if ((hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
			if (c == 0)
				return -1;
		} else if (!plain((unsigned char)c))
			return -1;
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* Append " <check>\n" to the n bytes in out.  The length, or -1. */
static int
seal(char *out, size_t outlen, int n)
{
	int m;

	if (n < 0 || (size_t)n >= outlen)
		return -1;
	m = snprintf(out + n, outlen - (size_t)n, " %08" PRIx32 "\n",
	    check_of(out, (size_t)n));
	if (m < 0 || (size_t)(n + m) >= outlen)
		return -1;
	return n + m;
}

int
rescue_format(const struct rescue_rec *r, char *out, size_t outlen)
{
	char id[RESCUE_ID_MAX * 3 + 1], phone[SHM_PHONE_MAX * 3 + 1];
	char sid[SHM_SID_MAX * 3 + 1] = "-";

	if (enc(r->id, id, sizeof(id)) < 0 ||
	    enc(r->phone, phone, sizeof(phone)) < 0 ||
	    (r->call_sid[0] != '\0' && (strcmp(r->call_sid, "-") == 0 ||
	    enc(r->call_sid, sid, sizeof(sid)) < 0)))
		return -1;
	return seal(out, outlen, snprintf(out, outlen, "r1 %s %s %" PRIu64
	    " %" PRIu32 " %" PRIu64 " %s", id, phone, r->ms, r->calls,
	    r->last_call_ms, sid));
}

int
rescue_format_stamp(const struct rescue_stamp *t, char *out, size_t outlen)
{
	return seal(out, outlen, snprintf(out, outlen, "t1 %" PRIu64 " %" PRIu64
	    " %" PRIu64 " %" PRIu64, t->dev, t->ino, t->size, t->mtime_ns));
}

/* A decimal field: digits only, no more than 19 of them. */
static int
num(const char *s, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	*v = x;
	return 0;
}

#define MAX_FIELDS	8

/* Split a line into space-separated fields; -1 on an empty field. */
static int
fields(const char *p, size_t n, const char **f, size_t *fl, int max)
{
	int k = 0;
	size_t i = 0;

	while (i <= n) {
		size_t j = i;

		while (j < n && p[j] != ' ')
			j++;
		if (j == i || k == max)
			return -1;
		f[k] = p + i;
		fl[k] = j - i;
		k++;
		i = j + 1;
	}
	return k;
}

/* One line, without its newline: 1 a record, 2 a stamp, -1 damaged (why). */
static int
parse_line(const char *p, size_t n, struct rescue_rec *r,
    struct rescue_stamp *t, const char **why)
{
	const char *f[MAX_FIELDS];
	size_t fl[MAX_FIELDS];
	uint64_t v[4], chk;
	int k;

	if (n < 12 || n >= RESCUE_LINE_MAX) {
		*why = "not a record";
		return -1;
	}
	/* the check: the last 8 characters, after a space */
	if (p[n - 9] != ' ') {
		*why = "no check";
		return -1;
	}
	chk = 0;
	for (size_t i = n - 8; i < n; i++) {
		int h = hexval(p[i]);

		if (h < 0 || (p[i] >= 'A' && p[i] <= 'F')) {
			*why = "no check";
			return -1;
		}
		chk = chk << 4 | (uint64_t)h;
	}
	if (check_of(p, n - 9) != (uint32_t)chk) {
		*why = "check does not match";
		return -1;
	}
	if ((k = fields(p, n - 9, f, fl, MAX_FIELDS)) < 0) {
		*why = "malformed";
		return -1;
	}
	if (k == 5 && fl[0] == 2 && memcmp(f[0], "t1", 2) == 0) {
		for (int i = 0; i < 4; i++)
			if (num(f[i + 1], fl[i + 1], &v[i]) != 0) {
				*why = "malformed stamp";
				return -1;
			}
		t->dev = v[0];
		t->ino = v[1];
		t->size = v[2];
		t->mtime_ns = v[3];
		return 2;
	}
	if (k != 7 || fl[0] != 2 || memcmp(f[0], "r1", 2) != 0) {
		*why = "unknown record";
		return -1;
	}
	memset(r, 0, sizeof(*r));
	if (dec(f[1], fl[1], r->id, sizeof(r->id)) != 0 ||
	    dec(f[2], fl[2], r->phone, sizeof(r->phone)) != 0 ||
	    num(f[3], fl[3], &v[0]) != 0 || num(f[4], fl[4], &v[1]) != 0 ||
	    num(f[5], fl[5], &v[2]) != 0 || v[1] > UINT32_MAX ||
	    (!(fl[6] == 1 && f[6][0] == '-') &&
	    dec(f[6], fl[6], r->call_sid, sizeof(r->call_sid)) != 0)) {
		*why = "malformed record";
		return -1;
	}
	r->ms = v[0];
	r->calls = (uint32_t)v[1];
	r->last_call_ms = v[2];
	return 1;
}

unsigned
rescue_scan(const char *buf, size_t len, const struct rescue_scan_cb *cb)
{
	struct rescue_rec r;
	struct rescue_stamp t;
	unsigned line = 0, skipped = 0;
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) : len - i;
		const char *why = NULL;
		int kind;

		line++;
		if (n == 0) {
			i++;
			continue;
		}
		if (nl == NULL) {
			/* the last line, cut short by a crash */
			kind = -1;
			why = "torn (no end of line)";
		} else
			kind = parse_line(buf + i, n, &r, &t, &why);
		if (kind == 1 && cb->rec != NULL)
			cb->rec(cb->arg, &r);
		else if (kind == 2 && cb->stamp != NULL)
			cb->stamp(cb->arg, &t);
		else if (kind < 0) {
			skipped++;
			if (cb->skip != NULL)
				cb->skip(cb->arg, line, why);
		}
		i += n + (nl != NULL);
	}
	return skipped;
}

int
rescue_append(const char *path, const char *text, size_t len)
{
	struct stat a, b;
	int fd, rc;

	for (int tries = 0; tries < 16; tries++) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return -errno;
		while (flock(fd, LOCK_EX) != 0)
			if (errno != EINTR) {
				rc = -errno;
				close(fd);
				return rc;
			}
		/* the master may have taken the file away meanwhile */
		if (fstat(fd, &a) != 0 || stat(path, &b) != 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
			close(fd);
			continue;
		}
		/* a newline first: ends a line a crash may have torn */
		rc = vr_write_all(fd, "\n", 1);
		if (rc == 0)
			rc = vr_write_all(fd, text, len);
		if (rc == 0 && fsync(fd) != 0)
			rc = -errno;
		if (close(fd) != 0 && rc == 0)
			rc = -errno;
		if (rc == 0)
			(void)vr_fsync_dir(path);
		return rc;
	}
	return -EAGAIN;
}

/* ---------------------------------------------------------------- */
/* the writers */

static uint64_t
now_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

struct text {
	char	*p;
	size_t	 len, cap;
	int	 nrec;
};

static int
text_add(struct text *t, const struct rescue_rec *r)
{
	char line[RESCUE_LINE_MAX];
	int n = rescue_format(r, line, sizeof(line));

	if (n < 0)
		return 0;	/* cannot be written; not expected */
	if (t->len + (size_t)n > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4096;
		char *np;

		while (cap < t->len + (size_t)n)
			cap *= 2;
		if ((np = realloc(t->p, cap)) == NULL)
			return -ENOMEM;
		t->p = np;
		t->cap = cap;
	}
	memcpy(t->p + t->len, line, (size_t)n);
	t->len += (size_t)n;
	t->nrec++;
	return 0;
}

static void
copy_field(char *dst, size_t dlen, const char *src, size_t slen)
{
	size_t n = strnlen(src, slen);

	if (n >= dlen)
		n = dlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* A slot's time as a record; its id from its stream (unique per call
 * leg), else its CallSid, else where it was.  -1 when it has no caller. */
static int
slot_rec(const struct shm *s, unsigned i, uint64_t end_ms,
    struct rescue_rec *r)
{
	const struct shm_call *c = &s->calls[i];
	uint64_t start = atomic_load_explicit(&c->cs_start_ms,
	    memory_order_relaxed);

	memset(r, 0, sizeof(*r));
	copy_field(r->phone, sizeof(r->phone), c->cs_phone, sizeof(c->cs_phone));
	if (r->phone[0] == '\0')
		return -1;
	if (c->cs_stream_sid[0] != '\0')
		snprintf(r->id, sizeof(r->id), "s:%.*s", SHM_SID_MAX - 1,
		    c->cs_stream_sid);
	else if (c->cs_call_sid[0] != '\0')
		snprintf(r->id, sizeof(r->id), "c:%.*s", SHM_SID_MAX - 1,
		    c->cs_call_sid);
	else
		snprintf(r->id, sizeof(r->id), "slot:%u.%" PRIu32 ".%" PRIu64, i,
		    atomic_load_explicit(&c->cs_gen, memory_order_relaxed), start);
	r->ms = end_ms > start ? end_ms - start : 0;
	r->calls = 1;
	r->last_call_ms = atomic_load_explicit(&c->cs_start_wall_ms,
	    memory_order_relaxed);
	return 0;
}

/* The master died folding slot i, after its add: the ledger holds it. */
static int
folded_already(const struct shm *s, unsigned i)
{
	const struct shm_hdr *h = s->hdr;
	char phone[SHM_PHONE_MAX];
	int idx;

	if (atomic_load(&h->sh_fold_slot) != i + 1)
		return 0;
	copy_field(phone, sizeof(phone), s->calls[i].cs_phone,
	    sizeof(s->calls[i].cs_phone));
	idx = shm_ledger_find(s, phone);
	return idx >= 0 && atomic_load(&s->ledger[idx].le_calls) !=
	    atomic_load(&h->sh_fold_calls);
}

int
rescue_own_calls(struct shm *s, int slot, pid_t pid, const char *path,
    uint64_t now_ms, int (*close_record)(void *arg, int idx), void *arg)
{
	struct text t = { NULL, 0, 0, 0 };
	struct rescue_rec r;
	unsigned n = s->hdr->sh_ncalls;
	char *mine;
	int rc = 0;

	if ((mine = calloc(n, 1)) == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct shm_call *c = &s->calls[i];
		uint32_t st = atomic_load_explicit(&c->cs_state,
		    memory_order_acquire);
		uint64_t end;

		if ((st != CS_LIVE && st != CS_ENDED) ||
		    atomic_load_explicit(&c->cs_worker, memory_order_relaxed) != slot ||
		    atomic_load_explicit(&c->cs_pid, memory_order_relaxed) != pid)
			continue;
		end = st == CS_ENDED ? atomic_load_explicit(&c->cs_end_ms,
		    memory_order_relaxed) : now_ms;
		mine[i] = 1;
		if (folded_already(s, i) || slot_rec(s, i, end, &r) != 0)
			continue;
		if (close_record != NULL && close_record(arg, (int)i))
			copy_field(r.call_sid, sizeof(r.call_sid), c->cs_call_sid,
			    sizeof(c->cs_call_sid));
		if ((rc = text_add(&t, &r)) != 0)
			goto out;
	}
	if (t.nrec > 0 && (rc = rescue_append(path, t.p, t.len)) != 0)
		goto out;
	/* in the journal now: nobody else may count them */
	for (unsigned i = 0; i < n; i++)
		if (mine[i])
			atomic_store_explicit(&s->calls[i].cs_state, CS_FREE,
			    memory_order_release);
	rc = t.nrec;
out:
	free(mine);
	free(t.p);
	return rc;
}

static int
pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* A call slot some process still alive holds (other than self). */
static int
others_hold_calls(const struct shm *s, pid_t self)
{
	for (unsigned i = 0; i < s->hdr->sh_ncalls; i++) {
		const struct shm_call *c = &s->calls[i];
		uint32_t st = atomic_load_explicit(&c->cs_state,
		    memory_order_acquire);
		pid_t pid = atomic_load_explicit(&c->cs_pid, memory_order_relaxed);

		if ((st == CS_LIVE || st == CS_ENDED || st == CS_CLAIMED) &&
		    pid != self && pid_alive(pid))
			return 1;
	}
	return 0;
}

int
rescue_as_rescuer(struct shm *s, pid_t self, const char *path, uint64_t wait_ms)
{
	struct shm_hdr *h = s->hdr;
	struct text t = { NULL, 0, 0, 0 };
	struct rescue_rec r;
	char *dead = NULL;
	int32_t none = 0, save;
	uint64_t until;
	int rc = 0, written = 0;

	if (!atomic_compare_exchange_strong(&h->sh_rescuer, &none, (int32_t)self))
		return 0;

	/* a save child still writing: what it saves is saved (it sets
	 * le_saved_* when it is done), so wait for it */
	until = now_mono_ms() + SAVE_WAIT_MS;
	while ((save = atomic_load(&h->sh_save_pid)) != 0 &&
	    (save < 0 || pid_alive(save)) && now_mono_ms() < until)
		sleep_ms(WAIT_STEP_MS);

	/* the ledger's unsaved part, one record per caller */
	for (unsigned i = 0; i < h->sh_nledger; i++) {
		struct shm_ledger *e = &s->ledger[i];
		uint64_t used, saved;
		uint32_t calls, scalls;

		if (atomic_load_explicit(&e->le_state, memory_order_acquire) == 0)
			continue;
		used = atomic_load_explicit(&e->le_used_ms, memory_order_relaxed);
		saved = atomic_load_explicit(&e->le_saved_ms, memory_order_relaxed);
		calls = atomic_load_explicit(&e->le_calls, memory_order_relaxed);
		scalls = atomic_load_explicit(&e->le_saved_calls,
		    memory_order_relaxed);
		if (used <= saved && calls <= scalls)
			continue;
		memset(&r, 0, sizeof(r));
		copy_field(r.phone, sizeof(r.phone), e->le_phone,
		    sizeof(e->le_phone));
		/* one master's life: its pid and its birth */
		snprintf(r.id, sizeof(r.id), "l:%" PRId32 ".%" PRIu64 ":%.*s",
		    h->sh_master_pid, h->sh_birth_wall_ms, SHM_PHONE_MAX - 1,
		    r.phone);
		r.ms = used > saved ? used - saved : 0;
		r.calls = calls > scalls ? calls - scalls : 0;
		r.last_call_ms = atomic_load_explicit(&e->le_last_call_ms,
		    memory_order_relaxed);
		if (r.phone[0] != '\0' && (rc = text_add(&t, &r)) != 0)
			goto out;
	}
	if (t.nrec > 0) {
		if ((rc = rescue_append(path, t.p, t.len)) != 0)
			goto out;
		written += t.nrec;
	}
	t.len = 0;
	t.nrec = 0;

	/* the other workers journal their own calls; then what is left in
	 * a slot belongs to a worker that died before it could */
	until = now_mono_ms() + wait_ms;
	while (others_hold_calls(s, self) && now_mono_ms() < until)
		sleep_ms(WAIT_STEP_MS);
	if ((dead = calloc(h->sh_ncalls, 1)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	uint64_t now = now_mono_ms();
	for (unsigned i = 0; i < h->sh_ncalls; i++) {
		struct shm_call *c = &s->calls[i];
		uint32_t st = atomic_load_explicit(&c->cs_state,
		    memory_order_acquire);
		pid_t pid = atomic_load_explicit(&c->cs_pid, memory_order_relaxed);
		uint64_t end, start;

		if ((st != CS_LIVE && st != CS_ENDED) || pid == self ||
		    pid_alive(pid))
			continue;
		dead[i] = 1;
		start = atomic_load_explicit(&c->cs_start_ms, memory_order_relaxed);
		if (st == CS_ENDED)
			end = atomic_load_explicit(&c->cs_end_ms,
			    memory_order_relaxed);
		else {
			/* its worker died at some moment since its last
			 * tick: billed that far, at most a tick short */
			uint64_t billed = atomic_load_explicit(&c->cs_billed_ms,
			    memory_order_relaxed);
			end = billed > 0 ? start + billed : now;
		}
		if (!folded_already(s, i) && slot_rec(s, i, end, &r) == 0 &&
		    (rc = text_add(&t, &r)) != 0)
			goto out;
	}
	if (t.nrec > 0) {
		if ((rc = rescue_append(path, t.p, t.len)) != 0)
			goto out;
		written += t.nrec;
	}
	for (unsigned i = 0; i < h->sh_ncalls; i++)
		if (dead[i])
			atomic_store(&s->calls[i].cs_state, CS_FREE);
	rc = written;
out:
	free(dead);
	free(t.p);
	return rc;
}
