/*
 * test.h — a small unit-test kit.
 *
 * TEST(name) { ... } defines a test and registers it before main() runs, so
 * a new test file needs no list to edit.  The runner (runner.c) starts each
 * test in its own process with a time limit; a crash or a hang fails that
 * test only.  The ASSERT macros print both sides on failure.
 */
#ifndef VR_TEST_H
#define VR_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn_cb)(void);
void test_register(const char *name, const char *file, test_fn_cb fn, int timeout_s);
/* One random edit of buf[0..*len) (cap bytes): a byte replaced, cut or
 * inserted, drawn from characters that matter to JSON and base64.
 * *seed is the state of a small LCG, so a run is repeatable. */
void test_mutate(char *buf, size_t *len, size_t cap, unsigned *seed);
/* A repeatable random number below n (0 for n = 0), from an xorshift
 * generator; a test that uses it seeds it first. */
void     test_rnd_seed(uint64_t seed);
unsigned test_rnd(unsigned n);
/* A scratch directory unique to the running test (created on first use). */
const char *test_tmpdir(void);

#define TEST_T(name, timeout)						\
	static void test_##name(void);					\
	__attribute__((constructor)) static void test_reg_##name(void)	\
	{ test_register(#name, __FILE__, test_##name, timeout); }	\
	static void test_##name(void)
#define TEST(name) TEST_T(name, 10)

#define TEST_FAIL_(...) do {						\
	fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);		\
	fprintf(stderr, __VA_ARGS__);					\
	fputc('\n', stderr);						\
	abort();							\
} while (0)

#define ASSERT(c) do { if (!(c)) TEST_FAIL_("assertion failed: %s", #c); } while (0)

#define ASSERT_INT_(a, op, b) do {					\
	long long a_ = (long long)(a), b_ = (long long)(b);		\
	if (!(a_ op b_))						\
		TEST_FAIL_("%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_); \
} while (0)
#define ASSERT_EQ(a, b) ASSERT_INT_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_(a, >=, b)

#define ASSERT_UEQ(a, b) do {						\
	unsigned long long a_ = (a), b_ = (b);				\
	if (a_ != b_)							\
		TEST_FAIL_("%s == %s: %llu vs %llu", #a, #b, a_, b_);	\
} while (0)

#define ASSERT_STR_EQ(a, b) do {					\
	const char *a_ = (a), *b_ = (b);				\
	if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)		\
		TEST_FAIL_("%s == %s:\n    \"%s\"\n vs \"%s\"", #a, #b,	\
		    a_ ? a_ : "(null)", b_ ? b_ : "(null)");		\
} while (0)

#define ASSERT_MEM_EQ(a, b, n) do {					\
	if (memcmp((a), (b), (n)) != 0)					\
		TEST_FAIL_("%s == %s over %zu bytes", #a, #b, (size_t)(n)); \
} while (0)

#define ASSERT_NULL(p) do { if ((p) != NULL) TEST_FAIL_("%s is not NULL", #p); } while (0)
#define ASSERT_NOT_NULL(p) do { if ((p) == NULL) TEST_FAIL_("%s is NULL", #p); } while (0)

#endif
