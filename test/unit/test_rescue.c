/*
 * test_rescue.c — the rescue journal: its lines, and what a worker whose
 * master is gone writes into it.
 */
#include "test/unit/test.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/rescue.h"

struct got {
	struct rescue_rec	r[16];
	unsigned		nr;
	struct rescue_stamp	t[4];
	unsigned		nt;
	unsigned		skip_line[16];
	unsigned		ns;
};

static void
got_rec(void *arg, const struct rescue_rec *r)
{
	struct got *g = arg;

	ASSERT_LT(g->nr, 16);
	g->r[g->nr++] = *r;
}

static void
got_stamp(void *arg, const struct rescue_stamp *t)
{
	struct got *g = arg;

	ASSERT_LT(g->nt, 4);
	g->t[g->nt++] = *t;
}

static void
got_skip(void *arg, unsigned line, const char *why)
{
	struct got *g = arg;

	ASSERT_NOT_NULL(why);
	ASSERT_LT(g->ns, 16);
	g->skip_line[g->ns++] = line;
}

static unsigned
scan(const char *buf, size_t len, struct got *g)
{
	struct rescue_scan_cb cb = { got_rec, got_stamp, got_skip, g };

	memset(g, 0, sizeof(*g));
	return rescue_scan(buf, len, &cb);
}

static struct rescue_rec
rec(const char *id, const char *phone, uint64_t ms, uint32_t calls,
    uint64_t last)
{
	struct rescue_rec r;

	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.phone, sizeof(r.phone), "%s", phone);
	r.ms = ms;
	r.calls = calls;
	r.last_call_ms = last;
	return r;
}

TEST(rescue_line_round_trip)
{
	struct rescue_rec a = rec("s:MZ0123", "+15551230001", 61234, 1,
	    1795230245000ULL);
	struct rescue_stamp t = { 2049, 1234567, 88, 1795230245123456789ULL };
	char buf[2048];
	struct got g;
	int n, m;

	n = rescue_format(&a, buf, sizeof(buf));
	ASSERT_GT(n, 0);
	ASSERT_EQ(buf[n - 1], '\n');
	ASSERT(strncmp(buf, "r1 s:MZ0123 +15551230001 61234 1 1795230245000 - ", 49) == 0);
	m = rescue_format_stamp(&t, buf + n, sizeof(buf) - (size_t)n);
	ASSERT_GT(m, 0);
	ASSERT_EQ(scan(buf, (size_t)(n + m), &g), 0);
	ASSERT_EQ(g.nr, 1);
	ASSERT_STR_EQ(g.r[0].id, "s:MZ0123");
	ASSERT_STR_EQ(g.r[0].phone, "+15551230001");
	ASSERT_STR_EQ(g.r[0].call_sid, "");
	ASSERT_UEQ(g.r[0].ms, 61234);
	ASSERT_EQ(g.r[0].calls, 1);
	ASSERT_UEQ(g.r[0].last_call_ms, 1795230245000ULL);
	ASSERT_EQ(g.nt, 1);
	ASSERT_MEM_EQ(&g.t[0], &t, sizeof(t));
}

TEST(rescue_odd_callers_are_encoded)
{
	/* a space, a percent sign, a byte above 0x7e: one field each */
	struct rescue_rec a = rec("l:12.34:client:a b", "client:a b%\xc3\xa9",
	    5, 0, 0);
	char buf[1024];
	struct got g;
	int n;

	n = rescue_format(&a, buf, sizeof(buf));
	ASSERT_GT(n, 0);
	ASSERT_NULL(memchr(buf, '\xc3', (size_t)n));
	ASSERT_EQ(scan(buf, (size_t)n, &g), 0);
	ASSERT_EQ(g.nr, 1);
	ASSERT_STR_EQ(g.r[0].phone, "client:a b%\xc3\xa9");
	ASSERT_STR_EQ(g.r[0].id, "l:12.34:client:a b");
	/* a CallSid to close, as written */
	snprintf(a.call_sid, sizeof(a.call_sid), "CA 1");
	n = rescue_format(&a, buf, sizeof(buf));
	ASSERT_GT(n, 0);
	ASSERT_EQ(scan(buf, (size_t)n, &g), 0);
	ASSERT_STR_EQ(g.r[0].call_sid, "CA 1");
	/* nothing to name: not written */
	a = rec("x", "", 5, 1, 0);
	ASSERT_EQ(rescue_format(&a, buf, sizeof(buf)), -1);
}

TEST(rescue_torn_and_damaged_lines_are_skipped)
{
	struct rescue_rec a = rec("s:MZ1", "+15551230001", 1000, 1, 7);
	struct rescue_rec b = rec("s:MZ2", "+15551230002", 2000, 1, 8);
	char la[512], lb[512], buf[4096];
	struct got g;
	int na, nb;
	size_t len;

	na = rescue_format(&a, la, sizeof(la));
	nb = rescue_format(&b, lb, sizeof(lb));
	ASSERT_GT(na, 0);
	ASSERT_GT(nb, 0);

	/* a torn last line: the good one before it counts */
	len = (size_t)snprintf(buf, sizeof(buf), "\n%s\n%.*s", la, nb / 2, lb);
	ASSERT_EQ(scan(buf, len, &g), 1);
	ASSERT_EQ(g.nr, 1);
	ASSERT_STR_EQ(g.r[0].id, "s:MZ1");
	ASSERT_EQ(g.skip_line[0], 4);

	/* a torn line followed by another append (which starts with a
	 * newline): the torn one is skipped, the next one counts */
	len = (size_t)snprintf(buf, sizeof(buf), "\n%.*s\n%s", na - 5, la, lb);
	ASSERT_EQ(scan(buf, len, &g), 1);
	ASSERT_EQ(g.nr, 1);
	ASSERT_STR_EQ(g.r[0].id, "s:MZ2");

	/* one digit changed: the check does not match */
	len = (size_t)snprintf(buf, sizeof(buf), "%s", la);
	buf[strlen("r1 s:MZ1 +15551230001 ")] = '2';
	ASSERT_EQ(scan(buf, len, &g), 1);
	ASSERT_EQ(g.nr, 0);

	/* not a record at all, and a record of a kind not known */
	len = (size_t)snprintf(buf, sizeof(buf), "hello\nr2 a b 1 1 1 00000000\n"
	    "\n\n%s", lb);
	ASSERT_EQ(scan(buf, len, &g), 2);
	ASSERT_EQ(g.nr, 1);
	ASSERT_EQ(g.skip_line[0], 1);
	ASSERT_EQ(g.skip_line[1], 2);

	/* random damage never crashes and never makes up a record that
	 * was not written */
	test_rnd_seed(13);
	for (int k = 0; k < 2000; k++) {
		unsigned seed = (unsigned)k;

		len = (size_t)snprintf(buf, sizeof(buf), "%s%s", la, lb);
		for (int e = 0; e < 1 + k % 4; e++)
			test_mutate(buf, &len, sizeof(buf), &seed);
		scan(buf, len, &g);
		for (unsigned i = 0; i < g.nr; i++)
			ASSERT((g.r[i].ms == 1000 && strcmp(g.r[i].phone,
			    "+15551230001") == 0) || (g.r[i].ms == 2000 &&
			    strcmp(g.r[i].phone, "+15551230002") == 0));
	}
}

static char *
slurp(const char *path, size_t *len)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ASSERT(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	ASSERT(n >= 0);
	close(fd);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

TEST(rescue_append_adds_whole_lines)
{
	char path[512], *text;
	struct rescue_rec a = rec("s:MZ1", "+15551230001", 1000, 1, 7);
	char la[512];
	struct got g;
	size_t len;
	int na;

	snprintf(path, sizeof(path), "%s/usage.csv.rescue", test_tmpdir());
	na = rescue_format(&a, la, sizeof(la));
	ASSERT_EQ(rescue_append(path, la, (size_t)na), 0);
	/* a torn write by a process that died, then another append */
	int fd = open(path, O_WRONLY | O_APPEND);
	ASSERT(fd >= 0);
	ASSERT_EQ(write(fd, la, 10), 10);
	close(fd);
	ASSERT_EQ(rescue_append(path, la, (size_t)na), 0);
	text = slurp(path, &len);
	ASSERT_EQ(scan(text, len, &g), 1);
	ASSERT_EQ(g.nr, 2);
	/* taken away (renamed) meanwhile: the next append makes a new one */
	char aside[600];
	snprintf(aside, sizeof(aside), "%s.taking", path);
	ASSERT_EQ(rename(path, aside), 0);
	ASSERT_EQ(rescue_append(path, la, (size_t)na), 0);
	text = slurp(path, &len);
	ASSERT_EQ(scan(text, len, &g), 0);
	ASSERT_EQ(g.nr, 1);
}

/* A call slot as a worker leaves it. */
static int
live_call(struct shm *s, int slot, pid_t pid, const char *phone,
    const char *sid, uint64_t start)
{
	int idx = shm_call_claim(s, slot, pid);

	ASSERT(idx >= 0);
	snprintf(s->calls[idx].cs_phone, SHM_PHONE_MAX, "%s", phone);
	snprintf(s->calls[idx].cs_stream_sid, SHM_SID_MAX, "%s", sid);
	snprintf(s->calls[idx].cs_call_sid, SHM_SID_MAX, "CA%s", sid);
	shm_call_publish(s, idx, start, 1795230245000ULL);
	return idx;
}

/* The record of the call in slot *arg only is closed. */
static int
closes_a(void *arg, int idx)
{
	return idx == *(int *)arg;
}

TEST(rescue_worker_journals_what_the_master_had_not_saved)
{
	struct shm s;
	char path[512], *text;
	struct got g;
	size_t len;
	pid_t dead;
	int e, a, b, c;

	ASSERT_EQ(shm_create(&s, 4, 16, 64, 64), 0);
	snprintf(path, sizeof(path), "%s/u.csv.rescue", test_tmpdir());
	s.hdr->sh_master_pid = 4242;
	s.hdr->sh_birth_wall_ms = 99;

	/* saved: 10 s of one call; then 5 s more folded, not saved */
	e = shm_ledger_load_locked(&s, "+15550000001", 10000, 5, 1);
	ASSERT(e >= 0);
	shm_ledger_add_locked(&s, e, 5000, 6, 1);
	/* a caller all of whose time is saved: nothing to journal */
	ASSERT(shm_ledger_load_locked(&s, "+15550000002", 7000, 5, 1) >= 0);

	/* this worker (slot 0): one live call, one ended */
	a = live_call(&s, 0, getpid(), "+15550000003", "MZa", 1000);
	b = live_call(&s, 0, getpid(), "+15550000004", "MZb", 1000);
	shm_call_end(&s, b, 4000, 0, "done");
	/* a worker that died unreaped (a child that exited) */
	dead = fork();
	ASSERT(dead >= 0);
	if (dead == 0)
		_exit(0);
	ASSERT_EQ(waitpid(dead, NULL, 0), dead);
	c = live_call(&s, 1, dead, "+15550000005", "MZc", 1000);
	atomic_store(&s.calls[c].cs_billed_ms, 2500);

	ASSERT_EQ(rescue_own_calls(&s, 0, getpid(), path, 11000, closes_a, &a), 2);
	ASSERT_EQ(atomic_load(&s.calls[a].cs_state), CS_FREE);
	ASSERT_EQ(atomic_load(&s.calls[b].cs_state), CS_FREE);
	ASSERT_EQ(atomic_load(&s.calls[c].cs_state), CS_LIVE);
	ASSERT_EQ(rescue_as_rescuer(&s, getpid(), path, 1000), 2);
	ASSERT_EQ(atomic_load(&s.calls[c].cs_state), CS_FREE);
	/* one rescuer only */
	ASSERT_EQ(rescue_as_rescuer(&s, getpid(), path, 1000), 0);

	text = slurp(path, &len);
	ASSERT_EQ(scan(text, len, &g), 0);
	ASSERT_EQ(g.nr, 4);
	uint64_t want_ms[6] = { 0, 5000, 0, 10000, 3000, 2500 };
	for (unsigned i = 0; i < g.nr; i++) {
		unsigned k = (unsigned)(g.r[i].phone[11] - '0');

		ASSERT(k >= 1 && k <= 5 && k != 2);
		ASSERT_UEQ(g.r[i].ms, want_ms[k]);
		ASSERT_EQ(g.r[i].calls, 1);
	}
	ASSERT_STR_EQ(g.r[2].id, "l:4242.99:+15550000001");
	/* the record to close: the call the worker said, only */
	ASSERT_STR_EQ(g.r[0].call_sid, "CAMZa");
	ASSERT_STR_EQ(g.r[1].call_sid, "");
	ASSERT_STR_EQ(g.r[2].call_sid, "");
	ASSERT_STR_EQ(g.r[3].call_sid, "");

	/* what a finished save holds is saved */
	shm_destroy(&s);
}

TEST(rescue_master_killed_inside_a_fold)
{
	struct shm s;
	char path[512], *text;
	struct got g;
	size_t len;
	int e, a, b;

	ASSERT_EQ(shm_create(&s, 4, 16, 64, 64), 0);
	snprintf(path, sizeof(path), "%s/f.csv.rescue", test_tmpdir());
	e = shm_ledger_load_locked(&s, "+15550000001", 10000, 5, 1);
	ASSERT(e >= 0);
	ASSERT(shm_ledger_load_locked(&s, "+15550000002", 10000, 5, 1) >= 0);
	a = live_call(&s, 0, getpid(), "+15550000001", "MZa", 1000);
	shm_call_end(&s, a, 4000, 0, "done");
	b = live_call(&s, 0, getpid(), "+15550000002", "MZb", 1000);
	shm_call_end(&s, b, 2000, 0, "done");

	/* killed after the add of a, before its slot was freed */
	atomic_store(&s.hdr->sh_fold_calls, atomic_load(&s.ledger[e].le_calls));
	atomic_store(&s.hdr->sh_fold_slot, (uint32_t)a + 1);
	shm_ledger_add_locked(&s, e, 3000, 7, 1);
	ASSERT_EQ(rescue_own_calls(&s, 0, getpid(), path, 5000, NULL, NULL), 1);
	ASSERT_EQ(atomic_load(&s.calls[a].cs_state), CS_FREE);
	ASSERT_EQ(atomic_load(&s.calls[b].cs_state), CS_FREE);
	text = slurp(path, &len);
	ASSERT_EQ(scan(text, len, &g), 0);
	ASSERT_EQ(g.nr, 1);
	ASSERT_STR_EQ(g.r[0].phone, "+15550000002");
	ASSERT_UEQ(g.r[0].ms, 1000);

	/* killed before the add: the slot is journaled */
	unlink(path);
	a = live_call(&s, 0, getpid(), "+15550000001", "MZc", 1000);
	shm_call_end(&s, a, 1500, 0, "done");
	atomic_store(&s.hdr->sh_fold_calls, atomic_load(&s.ledger[e].le_calls));
	atomic_store(&s.hdr->sh_fold_slot, (uint32_t)a + 1);
	ASSERT_EQ(rescue_own_calls(&s, 0, getpid(), path, 5000, NULL, NULL), 1);
	text = slurp(path, &len);
	ASSERT_EQ(scan(text, len, &g), 0);
	ASSERT_EQ(g.nr, 1);
	ASSERT_UEQ(g.r[0].ms, 500);
	shm_destroy(&s);
}
