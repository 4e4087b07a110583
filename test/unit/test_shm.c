/*
 * test_shm.c — the shared-memory table, including several processes
 * writing at once and a writer killed at an arbitrary instruction.
 */
#include "test/unit/test.h"
#include "shm/shm.h"
#include "shm/tokfile.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void
mk(struct shm *s, unsigned ncalls)
{
	ASSERT_EQ(shm_create(s, 8, ncalls, 64, 64), 0);
	ASSERT_EQ(shm_validate(s), 0);
}

TEST(shm_layout_validates)
{
	struct shm s;

	mk(&s, 100);
	ASSERT_EQ(s.hdr->sh_nledger, 64);
	ASSERT_EQ((uintptr_t)s.workers % 64, 0);
	ASSERT_EQ((uintptr_t)s.calls % 64, 0);
	s.hdr->sh_version++;
	ASSERT_NE(shm_validate(&s), 0);
	s.hdr->sh_version--;
	ASSERT_EQ(shm_create(&s, 0, 1, 1, 1), -EINVAL);
	shm_destroy(&s);
}

TEST(shm_hist_buckets_are_monotonic)
{
	uint64_t prev = 0;

	for (uint64_t v = 0; v < 5000000; v = v < 100 ? v + 1 : v * 1.01) {
		unsigned b = shm_hist_bucket(v);
		ASSERT_LE(v, shm_hist_bucket_le(b));
		if (b > 0)
			ASSERT_GT(v, shm_hist_bucket_le(b - 1));
		ASSERT_GE(b, prev);
		prev = b;
	}
}

TEST(shm_hist_percentile)
{
	struct shm_hist h;

	memset(&h, 0, sizeof(h));
	for (int i = 1; i <= 1000; i++)
		shm_hist_add(&h, (uint64_t)i);
	uint64_t p50 = shm_hist_percentile(&h, 0.5);
	uint64_t p99 = shm_hist_percentile(&h, 0.99);
	/* a bucket is at most 25% wide */
	ASSERT_GE(p50, 500);
	ASSERT_LE(p50, 500 * 5 / 4);
	ASSERT_GE(p99, 990);
	ASSERT_LE(p99, 1000);
	ASSERT_EQ(h.h_max_us, 1000);
}

static int
claim_live(struct shm *s, int slot, const char *phone, uint64_t start)
{
	int i = shm_call_claim(s, slot, getpid());
	ASSERT_GE(i, 0);
	snprintf(s->calls[i].cs_phone, SHM_PHONE_MAX, "%s", phone);
	snprintf(s->calls[i].cs_call_sid, SHM_SID_MAX, "CA%030d", i);
	shm_call_publish(s, i, start, 1700000000000ull);
	return i;
}

TEST(shm_call_lifecycle_and_fold)
{
	struct shm s;
	struct shm_call_view v;
	unsigned lost;

	mk(&s, 4);
	int a = claim_live(&s, 0, "+15550001", 1000);
	int b = claim_live(&s, 1, "+15550001", 1500);
	ASSERT_EQ(shm_calls_live(&s), 2);
	ASSERT_EQ(shm_call_read(&s, a, &v), 0);
	ASSERT_STR_EQ(v.phone, "+15550001");
	/* live usage: both calls at now=3000 */
	ASSERT_UEQ(shm_usage_ms(&s, "+15550001", 3000), 2000 + 1500);
	shm_call_end(&s, a, 2500, 0, "stop");
	ASSERT_UEQ(shm_usage_ms(&s, "+15550001", 3000), 1500 + 1500);
	ASSERT_EQ(shm_fold_locked(&s, 3000, 0, -1, 0, &lost), 1);
	ASSERT_EQ(lost, 0);
	ASSERT_UEQ(shm_usage_ms(&s, "+15550001", 3000), 1500 + 1500);
	int e = shm_ledger_find(&s, "+15550001");
	ASSERT_GE(e, 0);
	ASSERT_UEQ(s.ledger[e].le_used_ms, 1500);
	ASSERT_EQ(s.ledger[e].le_calls, 1);
	/* worker 1 dies: its call is billed to now and counted failed */
	s.calls[b].cs_pid = 4242;
	ASSERT_EQ(shm_fold_locked(&s, 4000, 0, 1, 4242, &lost), 1);
	ASSERT_EQ(lost, 1);
	ASSERT_UEQ(s.ledger[e].le_used_ms, 1500 + 2500);
	ASSERT_EQ(s.ledger[e].le_calls, 2);
	ASSERT_UEQ(s.hdr->sh_counters[SC_failed_calls], 1);
	ASSERT_EQ(shm_calls_live(&s), 0);
	/* all four slots are free again */
	for (int k = 0; k < 4; k++)
		ASSERT_GE(shm_call_claim(&s, 0, getpid()), 0);
	ASSERT_EQ(shm_call_claim(&s, 0, getpid()), -1);
	shm_destroy(&s);
}

TEST(shm_live_counts_each_callers_calls)
{
	struct shm s;
	struct shm_live_count lc;
	uint64_t remote;
	unsigned live, n;

	mk(&s, 4);
	ASSERT_EQ(shm_live_init(&s, &lc), 0);
	ASSERT_GE(shm_ledger_get_locked(&s, "+15550001"), 0);
	ASSERT_GE(shm_ledger_get_locked(&s, "+15550002"), 0);
	int a = claim_live(&s, 0, "+15550001", 1000);
	int b = claim_live(&s, 1, "+15550001", 1500);
	int c = claim_live(&s, 1, "+15550002", 1500);
	/* the worker's own count at a call's start, and the master's */
	ASSERT_UEQ(shm_usage_live_ms(&s, "+15550001", 2000, &n), 1000 + 500);
	ASSERT_EQ(n, 2);
	shm_caller_peek(&s, "+15550001", &remote, &live);
	ASSERT_EQ(live, 0);
	shm_live_count_locked(&s, &lc);
	shm_caller_peek(&s, "+15550001", &remote, &live);
	ASSERT_EQ(live, 2);
	shm_caller_peek(&s, "+15550002", &remote, &live);
	ASSERT_EQ(live, 1);
	/* an ended call stops counting, before and after its fold */
	shm_call_end(&s, b, 2500, 0, "stop");
	ASSERT_UEQ(shm_usage_live_ms(&s, "+15550001", 3000, &n), 2000 + 1000);
	ASSERT_EQ(n, 1);
	shm_live_count_locked(&s, &lc);
	shm_caller_peek(&s, "+15550001", &remote, &live);
	ASSERT_EQ(live, 1);
	ASSERT_EQ(shm_fold_locked(&s, 3000, 0, -1, 0, NULL), 1);
	/* a caller's last call ends: back to 0, the other caller kept */
	shm_call_end(&s, a, 3000, 0, "stop");
	shm_live_count_locked(&s, &lc);
	shm_caller_peek(&s, "+15550001", &remote, &live);
	ASSERT_EQ(live, 0);
	shm_caller_peek(&s, "+15550002", &remote, &live);
	ASSERT_EQ(live, 1);
	shm_call_end(&s, c, 3000, 0, "stop");
	shm_live_count_locked(&s, &lc);
	shm_caller_peek(&s, "+15550002", &remote, &live);
	ASSERT_EQ(live, 0);
	/* the scratch counters are zero again between passes */
	for (unsigned i = 0; i < s.hdr->sh_nledger; i++)
		ASSERT_EQ(lc.cnt[i], 0);
	shm_live_free(&lc);
	shm_destroy(&s);
}

static int
claim_live_at(struct shm *s, int slot, const char *phone, uint64_t start,
    uint64_t wall)
{
	int i = shm_call_claim(s, slot, getpid());
	ASSERT_GE(i, 0);
	snprintf(s->calls[i].cs_phone, SHM_PHONE_MAX, "%s", phone);
	shm_call_publish(s, i, start, wall);
	return i;
}

TEST(shm_today_counts_calls_by_start_day)
{
	const uint64_t day = 86400000ull, base = 19700 * day;
	struct shm s;
	uint64_t ms, calls;

	mk(&s, 8);
	int a = claim_live_at(&s, 0, "+15550001", 1000, base + 1000);
	/* started yesterday: never today's, however long it runs */
	int b = claim_live_at(&s, 1, "+15550002", 500, base - 5000);
	shm_today(&s, 3000, base + 3000, &ms, &calls);
	ASSERT_UEQ(calls, 1);
	ASSERT_UEQ(ms, 2000);
	/* ended, not folded yet; then folded: the same figures */
	shm_call_end(&s, a, 2500, 0, "stop");
	shm_today(&s, 3000, base + 3000, &ms, &calls);
	ASSERT_UEQ(calls, 1);
	ASSERT_UEQ(ms, 1500);
	ASSERT_EQ(shm_fold_locked(&s, 3000, base + 3000, -1, 0, NULL), 1);
	shm_today(&s, 3000, base + 3000, &ms, &calls);
	ASSERT_UEQ(calls, 1);
	ASSERT_UEQ(ms, 1500);
	int c = claim_live_at(&s, 0, "+15550003", 2800, base + 2800);
	shm_today(&s, 3000, base + 3000, &ms, &calls);
	ASSERT_UEQ(calls, 2);
	ASSERT_UEQ(ms, 1500 + 200);
	/* the next day: nothing yet */
	shm_today(&s, 4000, base + day + 1, &ms, &calls);
	ASSERT_UEQ(calls, 0);
	ASSERT_UEQ(ms, 0);
	/* c, from the day before, folds into that day; d starts a new one */
	shm_call_end(&s, c, 3800, 0, "stop");
	ASSERT_EQ(shm_fold_locked(&s, 4000, base + day + 1, -1, 0, NULL), 1);
	ASSERT_UEQ(s.hdr->sh_day_calls, 2);
	int d = claim_live_at(&s, 0, "+15550004", 4000, base + day + 2);
	shm_call_end(&s, d, 4700, 0, "stop");
	ASSERT_EQ(shm_fold_locked(&s, 5000, base + day + 1000, -1, 0, NULL), 1);
	shm_today(&s, 5000, base + day + 1000, &ms, &calls);
	ASSERT_UEQ(calls, 1);
	ASSERT_UEQ(ms, 700);
	/* a dead worker's call is billed up to the fold, on its start day */
	s.calls[b].cs_pid = 4242;
	ASSERT_EQ(shm_fold_locked(&s, 6000, base + day + 2000, 1, 4242, NULL), 1);
	shm_today(&s, 6000, base + day + 2000, &ms, &calls);
	ASSERT_UEQ(calls, 1);
	ASSERT_UEQ(ms, 700);
	shm_destroy(&s);
}

TEST(shm_ledger_fills_to_three_quarters)
{
	struct shm s;
	char p[32];
	int n = 0;

	mk(&s, 4);
	for (int i = 0; i < 64; i++) {
		snprintf(p, sizeof(p), "+1555%07d", i);
		if (shm_ledger_get_locked(&s, p) >= 0)
			n++;
	}
	ASSERT_EQ(n, 48);
	for (int i = 0; i < 48; i++) {
		snprintf(p, sizeof(p), "+1555%07d", i);
		ASSERT_GE(shm_ledger_find(&s, p), 0);
	}
	ASSERT_EQ(shm_ledger_find(&s, "+19999999"), -1);
	shm_destroy(&s);
}

TEST(shm_token_replay_and_expiry)
{
	struct shm s;

	mk(&s, 4);
	ASSERT_EQ(shm_token_use(&s, 77, 1000, 900), 0);
	ASSERT_EQ(shm_token_use(&s, 77, 1000, 950), 1);
	ASSERT_EQ(shm_token_use(&s, 78, 1000, 950), 0);
	/* after expiry the entry is reusable */
	ASSERT_EQ(shm_token_use(&s, 77 + 64, 2000, 1001), 0);
	ASSERT_EQ(shm_token_use(&s, 78, 1000, 999), 1);
	shm_destroy(&s);
}

TEST(shm_token_seen_and_keys)
{
	struct shm s;

	mk(&s, 4);
	ASSERT_EQ(shm_token_seen(&s, 77, 900), 0);
	ASSERT_EQ(shm_token_use(&s, 77, 1000, 900), 0);
	ASSERT_EQ(shm_token_seen(&s, 77, 900), 1);
	ASSERT_EQ(shm_token_seen(&s, 77, 1001), 0);	/* expired */
	ASSERT_EQ(shm_token_seen(&s, 77 + 64, 900), 0);	/* same probe start */
	/* a CallSid's key is not the key of a token spelt the same */
	ASSERT(shm_sid_key("CA1") != shm_token_key("CA1", 3));
	ASSERT(shm_sid_key("CA1") != shm_sid_key("CA2"));
	ASSERT_UEQ(shm_token_key("abc", 3), shm_token_key("abcd", 3));
	shm_destroy(&s);
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ASSERT_NOT_NULL(f);
	ASSERT(fputs(text, f) >= 0);
	ASSERT_EQ(fclose(f), 0);
}

static char *
read_text(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	ASSERT_NOT_NULL(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

TEST(tokfile_load_skips_torn_and_expired)
{
	struct shm s;
	char path[512], dir[512], *text;
	size_t loaded = 99, skipped = 99;
	uint64_t keys[2] = { 0xabcdef0123456789ULL, 42 };

	mk(&s, 4);
	ASSERT_EQ(tokfile_path("/var/lib/x/usage.csv", path, sizeof(path)), 0);
	ASSERT_STR_EQ(path, "/var/lib/x/" TOKFILE_NAME);
	ASSERT_EQ(tokfile_path("usage.csv", path, sizeof(path)), 0);
	ASSERT_STR_EQ(path, TOKFILE_NAME);
	ASSERT_EQ(tokfile_path("/a/usage.csv", path, 8), -1);

	/* a directory of its own: other tests share the scratch directory */
	snprintf(path, sizeof(path), "%s/tokfile.%d", test_tmpdir(),
	    (int)getpid());
	ASSERT_EQ(mkdir(path, 0700), 0);
	strcat(path, "/u.csv");
	ASSERT_EQ(tokfile_path(path, dir, sizeof(dir)), 0);
	memcpy(path, dir, sizeof(path));
	/* no file yet: nothing loaded, and an empty one written */
	ASSERT_EQ(tokfile_load(&s, path, 1000, &loaded, &skipped), 0);
	ASSERT_EQ(loaded, 0);
	ASSERT_EQ(skipped, 0);
	ASSERT_STR_EQ(read_text(path), "");
	/* a good record, an expired one, garbage, and a torn last line */
	write_text(path,
	    "00000000000000aa 2000\n"
	    "00000000000000bb 999\n"
	    "not a record\n"
	    "00000000000000CC 2000\n"		/* upper case: not ours */
	    "0000000000000000 2000\n"		/* key 0 means free */
	    "00000000000000dd 99999999999999999999999\n"
	    "00000000000000ee 20");		/* cut short */
	ASSERT_EQ(tokfile_load(&s, path, 1000, &loaded, &skipped), 0);
	ASSERT_EQ(loaded, 1);
	ASSERT_EQ(skipped, 5);
	ASSERT_EQ(shm_token_seen(&s, 0xaa, 1000), 1);
	ASSERT_EQ(shm_token_seen(&s, 0xbb, 900), 0);
	ASSERT_EQ(shm_token_seen(&s, 0xee, 1000), 0);
	/* compacted: only the live record is left */
	ASSERT_STR_EQ(read_text(path), "00000000000000aa 2000\n");
	/* appended records survive a "restart": a new table loads them */
	ASSERT_EQ(tokfile_append(path, keys, 2, 3000), 0);
	shm_destroy(&s);
	mk(&s, 4);
	ASSERT_EQ(tokfile_load(&s, path, 1500, &loaded, &skipped), 0);
	ASSERT_EQ(loaded, 3);
	ASSERT_EQ(skipped, 0);
	ASSERT_EQ(shm_token_seen(&s, keys[0], 1500), 1);
	ASSERT_EQ(shm_token_seen(&s, keys[1], 1500), 1);
	ASSERT_EQ(shm_token_use(&s, keys[0], 3000, 1500), 1);
	/* later, the first record has expired and is compacted away */
	ASSERT_EQ(tokfile_compact(&s, path, 2500), 0);
	text = read_text(path);
	ASSERT_NULL(strstr(text, "00000000000000aa"));
	ASSERT_NOT_NULL(strstr(text, "abcdef0123456789 3000\n"));
	ASSERT_NOT_NULL(strstr(text, "000000000000002a 3000\n"));
	shm_destroy(&s);
}

TEST(shm_token_lock_survives_dead_holder)
{
	struct shm s;
	pid_t pid;
	int st;

	mk(&s, 4);
	if ((pid = fork()) == 0) {
		pthread_mutex_lock(&s.hdr->sh_token_lock);
		_exit(0);	/* dies holding the lock */
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_EQ(shm_token_use(&s, 5, 100, 1), 0);
	ASSERT_EQ(shm_token_use(&s, 5, 100, 1), 1);
	shm_destroy(&s);
}

/*
 * Several worker processes claim, publish and end calls as fast as they
 * can on a few shared phone numbers while the parent folds; one of them is
 * killed with SIGKILL at an arbitrary point.  Every call's time must end
 * up in the ledger exactly once.  Clocks are synthetic so the expected
 * totals are known: call j of worker w starts at 10*j and lasts d(w, j).
 */
#define NW 4
#define NCALLS 3000
static uint64_t d_of(int w, int j) { return 1 + (uint64_t)((w * 7919 + j * 104729) % 997); }

TEST_T(shm_ledger_concurrent_writers_and_kill, 60)
{
	struct shm s;
	pid_t pids[NW];
	_Atomic uint32_t *progress;
	const char *phones[3] = { "+15550100", "+15550101", "+15550102" };
	unsigned lost, total_lost = 0;

	ASSERT_EQ(shm_create(&s, NW, 64, 64, 64), 0);
	progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(progress != MAP_FAILED);
	for (int w = 0; w < NW; w++)
		atomic_store(&progress[w], 0);

	for (int w = 0; w < NW; w++) {
		if ((pids[w] = fork()) == 0) {
			for (int j = 0; j < NCALLS; j++) {
				int i;
				while ((i = shm_call_claim(&s, w, getpid())) < 0)
					usleep(50);
				snprintf(s.calls[i].cs_phone, SHM_PHONE_MAX, "%s",
				    phones[(w + j) % 3]);
				shm_call_publish(&s, i, 10 * (uint64_t)j, 1);
				shm_call_end(&s, i, 10 * (uint64_t)j + d_of(w, j), 0, "stop");
				atomic_store(&progress[w], (uint32_t)j + 1);
				if (w == 2)	/* slow, so the kill lands mid-run */
					usleep(20);
			}
			_exit(0);
		}
	}
	/* fold while they run; kill worker 2 part-way */
	int killed = 0;
	for (int spins = 0; spins < 200000; spins++) {
		shm_fold_locked(&s, 5000000, 1, -1, 0, &lost);
		if (!killed && atomic_load(&progress[2]) > NCALLS / 3) {
			kill(pids[2], SIGKILL);
			killed = 1;
		}
		int done = 1;
		for (int w = 0; w < NW; w++)
			if (w != 2 && atomic_load(&progress[w]) < NCALLS)
				done = 0;
		if (done && killed)
			break;
		usleep(20);
	}
	ASSERT(killed);
	ASSERT_LT(atomic_load(&progress[2]), NCALLS);
	for (int w = 0; w < NW; w++) {
		int st;
		ASSERT_EQ(waitpid(pids[w], &st, 0), pids[w]);
	}
	/* the dead worker's slots are reclaimed at "now" = 5000000 */
	shm_fold_locked(&s, 5000000, 1, 2, pids[2], &lost);
	total_lost += lost;
	shm_fold_locked(&s, 5000000, 1, -1, 0, &lost);
	ASSERT_EQ(shm_calls_live(&s), 0);

	/* expected per phone, for all but worker 2 */
	uint64_t want[3] = { 0, 0, 0 }, got[3];
	uint64_t calls_want = 0, calls_got = 0;
	for (int w = 0; w < NW; w++) {
		int n = w == 2 ? (int)atomic_load(&progress[2]) : NCALLS;
		for (int j = 0; j < n; j++)
			want[(w + j) % 3] += d_of(w, j);
		calls_want += n;
	}
	for (int p = 0; p < 3; p++) {
		int e = shm_ledger_find(&s, phones[p]);
		ASSERT_GE(e, 0);
		got[p] = s.ledger[e].le_used_ms;
		calls_got += s.ledger[e].le_calls;
	}
	/*
	 * Worker 2's call number progress[2] was in one of: not claimed,
	 * claimed (dropped: no time had started), live (billed to the kill
	 * fold: 5000000 - 10*j), or ended (billed d).  Exactly one phone may
	 * differ, by exactly one of those amounts.
	 */
	int j = (int)atomic_load(&progress[2]);
	int p = (2 + j) % 3;
	for (int q = 0; q < 3; q++)
		if (q != p)
			ASSERT_UEQ(got[q], want[q]);
	uint64_t extra = got[p] - want[p];
	ASSERT(got[p] >= want[p]);
	ASSERT(extra == 0 || extra == d_of(2, j) || extra == 5000000 - 10 * (uint64_t)j);
	ASSERT(calls_got == calls_want || calls_got == calls_want + 1);
	ASSERT_LE(total_lost, 1);
	shm_destroy(&s);
}

TEST(shm_ledger_capacity_is_exact)
{
	struct shm s;
	char p[32];
	int n = 0;

	mk(&s, 4);
	/* never more than three quarters of the table */
	ASSERT_EQ(shm_ledger_set_cap(&s, 1000), 48);
	ASSERT_EQ(shm_ledger_set_cap(&s, 10), 10);
	ASSERT_EQ(shm_ledger_full(&s), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(p, sizeof(p), "+1555%07d", i);
		if (shm_ledger_get_locked(&s, p) >= 0)
			n++;
	}
	ASSERT_EQ(n, 10);
	ASSERT_EQ(shm_ledger_full(&s), 1);
	/* a caller already in it is still found */
	ASSERT_GE(shm_ledger_get_locked(&s, "+15550000003"), 0);
	ASSERT_EQ(shm_ledger_get_locked(&s, "+15550000019"), -1);
	shm_destroy(&s);
}
