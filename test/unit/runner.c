/*
 * runner.c — runs every registered test, each in its own process, with a
 * time limit.  Usage: test_unit [substring...]   The last line is
 * "N passed, N failed".
 */
#include "test/unit/test.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct test {
	const char	*name, *file;
	test_fn_cb	 fn;
	int		 timeout;
};

static struct test *tests;
static size_t ntests, captests;
static char tmpdir[256];

void
test_register(const char *name, const char *file, test_fn_cb fn, int timeout_s)
{
	if (ntests == captests) {
		captests = captests ? captests * 2 : 64;
		tests = realloc(tests, captests * sizeof(*tests));
		if (tests == NULL)
			abort();
	}
	tests[ntests++] = (struct test){ name, file, fn, timeout_s };
}

const char *
test_tmpdir(void)
{
	if (tmpdir[0] == '\0') {
		const char *base = getenv("TMPDIR");
		/* a fresh directory each time: a failed test leaves its own
		 * behind, and a later test may get the same pid */
		snprintf(tmpdir, sizeof(tmpdir), "%s/vrunit.%d.XXXXXX",
		    base ? base : "/tmp", (int)getpid());
		if (mkdtemp(tmpdir) == NULL)
			abort();
	}
	return tmpdir;
}

static uint64_t rnd_state = 0x9E3779B97F4A7C15ULL;

void
test_rnd_seed(uint64_t seed)
{
	rnd_state = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

unsigned
test_rnd(unsigned n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return n ? (unsigned)(rnd_state % n) : 0;
}

void
test_mutate(char *buf, size_t *len, size_t cap, unsigned *seed)
{
	static const char alphabet[] =
	    "{}[]\":,\\ 0123456789aAzZ+/=-.eE\x01\xc3\xa9";
	size_t n = *len, at;
	char c;

	*seed = *seed * 1103515245u + 12345u;
	at = (*seed >> 8) % (n ? n : 1);
	c = alphabet[(*seed >> 20) % (sizeof(alphabet) - 1)];
	switch ((*seed >> 16) % 3) {
	case 0:		/* replace */
		if (n > 0)
			buf[at] = c;
		break;
	case 1:		/* cut */
		if (n > 0) {
			memmove(buf + at, buf + at + 1, n - at - 1);
			*len = n - 1;
		}
		break;
	default:	/* insert */
		if (n + 1 < cap) {
			memmove(buf + at + 1, buf + at, n - at);
			buf[at] = c;
			*len = n + 1;
		}
	}
}

static int
cmp_test(const void *a, const void *b)
{
	const struct test *x = a, *y = b;
	int c = strcmp(x->file, y->file);
	return c ? c : strcmp(x->name, y->name);
}

static int
selected(const struct test *t, int argc, char **argv)
{
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++)
		if (strstr(t->name, argv[i]) || strstr(t->file, argv[i]))
			return 1;
	return 0;
}

int
main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	qsort(tests, ntests, sizeof(*tests), cmp_test);
	for (size_t i = 0; i < ntests; i++) {
		struct test *t = &tests[i];
		struct timespec a, b;
		int st;
		pid_t pid;

		if (!selected(t, argc, argv))
			continue;
		clock_gettime(CLOCK_MONOTONIC, &a);
		fflush(NULL);
		if ((pid = fork()) < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			setpgid(0, 0);
			alarm(t->timeout);
			t->fn();
			fflush(NULL);
			if (tmpdir[0]) {
				char cmd[300];
				snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
				if (system(cmd) != 0)
					fprintf(stderr, "could not remove %s\n", tmpdir);
			}
			_exit(0);
		}
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		/* the test's own children, if any were left behind */
		kill(-pid, SIGKILL);
		clock_gettime(CLOCK_MONOTONIC, &b);
		double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			passed++;
			printf("ok    %-40s %8.1f ms\n", t->name, ms);
		} else {
			failed++;
			if (WIFSIGNALED(st))
				printf("FAIL  %-40s (%s%s)\n", t->name,
				    WTERMSIG(st) == SIGALRM ? "timed out" :
				    strsignal(WTERMSIG(st)), "");
			else
				printf("FAIL  %-40s (exit %d)\n", t->name,
				    WEXITSTATUS(st));
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
