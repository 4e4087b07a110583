/*
 * test_buf.c — the capped byte buffer: append, consume, reserve/commit,
 * the cap, and sliding down before growing.
 */
#include "test/unit/test.h"
#include "proto/buf.h"

static void
fill(char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + (seed + i) % 26);
}

TEST(buf_empty)
{
	struct buf b;

	buf_init(&b, 0);
	ASSERT_UEQ(buf_pending(&b), 0);
	ASSERT_EQ(b.max, 0);
	buf_consume(&b, 0);
	ASSERT_UEQ(buf_pending(&b), 0);
	ASSERT_EQ(buf_append(&b, "", 0), 0);
	ASSERT_UEQ(buf_pending(&b), 0);
	buf_free(&b);
	buf_free(&b);
}

TEST(buf_append_consume)
{
	struct buf b;

	buf_init(&b, 0);
	ASSERT_EQ(buf_append(&b, "hello", 5), 0);
	ASSERT_EQ(buf_append(&b, ", world", 7), 0);
	ASSERT_UEQ(buf_pending(&b), 12);
	ASSERT_MEM_EQ(buf_head(&b), "hello, world", 12);
	buf_consume(&b, 7);
	ASSERT_UEQ(buf_pending(&b), 5);
	ASSERT_MEM_EQ(buf_head(&b), "world", 5);
	ASSERT_EQ(buf_append(&b, "!", 1), 0);
	ASSERT_MEM_EQ(buf_head(&b), "world!", 6);
	buf_consume(&b, 6);
	ASSERT_UEQ(buf_pending(&b), 0);
	/* everything consumed: back to the start of the storage */
	ASSERT_UEQ(b.off, 0);
	ASSERT_UEQ(b.len, 0);
	ASSERT_EQ(buf_append(&b, "again", 5), 0);
	ASSERT_MEM_EQ(buf_head(&b), "again", 5);
	ASSERT_MEM_EQ(b.data, "again", 5);
	buf_free(&b);
	ASSERT_NULL(b.data);
	ASSERT_UEQ(buf_pending(&b), 0);
	/* usable again after free */
	ASSERT_EQ(buf_append(&b, "x", 1), 0);
	ASSERT_MEM_EQ(buf_head(&b), "x", 1);
	buf_free(&b);
}

TEST(buf_reserve_commit)
{
	struct buf b;
	char *w;

	buf_init(&b, 0);
	w = buf_reserve(&b, 100);
	ASSERT_NOT_NULL(w);
	ASSERT_UEQ(buf_pending(&b), 0);		/* nothing until commit */
	memcpy(w, "abcd", 4);
	buf_commit(&b, 4);
	ASSERT_UEQ(buf_pending(&b), 4);
	ASSERT_MEM_EQ(buf_head(&b), "abcd", 4);
	/* a second reserve starts right after what was committed */
	w = buf_reserve(&b, 3);
	ASSERT_NOT_NULL(w);
	ASSERT(w == buf_head(&b) + 4);
	memcpy(w, "efg", 3);
	buf_commit(&b, 3);
	ASSERT_MEM_EQ(buf_head(&b), "abcdefg", 7);
	/* reserving and committing nothing changes nothing */
	ASSERT_NOT_NULL(buf_reserve(&b, 0));
	buf_commit(&b, 0);
	ASSERT_UEQ(buf_pending(&b), 7);
	/* a big reserve grows and keeps the data */
	w = buf_reserve(&b, 100000);
	ASSERT_NOT_NULL(w);
	ASSERT_GE(b.cap, 100007);
	ASSERT_MEM_EQ(buf_head(&b), "abcdefg", 7);
	memset(w, 'z', 100000);
	buf_commit(&b, 100000);
	ASSERT_UEQ(buf_pending(&b), 100007);
	ASSERT_EQ(buf_head(&b)[100006], 'z');
	buf_free(&b);
}

TEST(buf_cap_refuses)
{
	struct buf b;
	char big[64];

	fill(big, sizeof(big), 0);
	buf_init(&b, 8);
	ASSERT_EQ(buf_append(&b, "12345", 5), 0);
	/* one byte too many: refused, nothing written */
	ASSERT_EQ(buf_append(&b, "6789", 4), -1);
	ASSERT_UEQ(buf_pending(&b), 5);
	ASSERT_MEM_EQ(buf_head(&b), "12345", 5);
	ASSERT_NULL(buf_reserve(&b, 4));
	ASSERT_UEQ(buf_pending(&b), 5);
	/* exactly to the cap is fine */
	ASSERT_EQ(buf_append(&b, "678", 3), 0);
	ASSERT_UEQ(buf_pending(&b), 8);
	ASSERT_MEM_EQ(buf_head(&b), "12345678", 8);
	ASSERT_EQ(buf_append(&b, "9", 1), -1);
	ASSERT_NULL(buf_reserve(&b, 1));
	/* an empty append is never refused */
	ASSERT_EQ(buf_append(&b, "", 0), 0);
	/* the cap counts what is pending, not what was ever written */
	buf_consume(&b, 3);
	ASSERT_EQ(buf_append(&b, "9ab", 3), 0);
	ASSERT_MEM_EQ(buf_head(&b), "45678", 5);
	ASSERT_MEM_EQ(buf_head(&b) + 5, "9ab", 3);
	ASSERT_EQ(buf_append(&b, "c", 1), -1);
	ASSERT_MEM_EQ(buf_head(&b), "456789ab", 8);
	buf_consume(&b, 8);
	ASSERT_EQ(buf_append(&b, big, 9), -1);
	ASSERT_UEQ(buf_pending(&b), 0);
	ASSERT_EQ(buf_append(&b, big, 8), 0);
	ASSERT_MEM_EQ(buf_head(&b), big, 8);
	buf_free(&b);
}

TEST(buf_slides_instead_of_growing)
{
	struct buf b;
	char a[200], c[150];
	char *data;
	size_t cap;

	fill(a, sizeof(a), 1);
	fill(c, sizeof(c), 7);
	buf_init(&b, 0);
	ASSERT_EQ(buf_append(&b, a, sizeof(a)), 0);
	data = b.data;
	cap = b.cap;
	ASSERT_GE(cap, 200);
	/* consume most, then add more than the tail room but less than the
	 * room left after sliding the pending bytes down */
	buf_consume(&b, 180);
	ASSERT_LE(20 + sizeof(c), cap);
	ASSERT_GT(b.len + sizeof(c), cap);
	ASSERT_EQ(buf_append(&b, c, sizeof(c)), 0);
	ASSERT(b.data == data);
	ASSERT_UEQ(b.cap, cap);
	ASSERT_UEQ(b.off, 0);
	ASSERT_UEQ(buf_pending(&b), 20 + sizeof(c));
	ASSERT_MEM_EQ(buf_head(&b), a + 180, 20);
	ASSERT_MEM_EQ(buf_head(&b) + 20, c, sizeof(c));
	buf_free(&b);
}

TEST(buf_slide_overlapping)
{
	struct buf b;
	char a[140], c[140];
	size_t cap;

	/* pending bytes overlap their own destination when slid down */
	fill(a, sizeof(a), 3);
	fill(c, sizeof(c), 11);
	buf_init(&b, 0);
	ASSERT_EQ(buf_append(&b, a, sizeof(a)), 0);
	cap = b.cap;
	buf_consume(&b, 40);
	ASSERT_LE(100 + sizeof(c), cap);
	ASSERT_GT(b.len + sizeof(c), cap);
	ASSERT_EQ(buf_append(&b, c, sizeof(c)), 0);
	ASSERT_UEQ(b.cap, cap);
	ASSERT_MEM_EQ(buf_head(&b), a + 40, 100);
	ASSERT_MEM_EQ(buf_head(&b) + 100, c, sizeof(c));
	buf_free(&b);
}

TEST(buf_grows_when_sliding_is_not_enough)
{
	struct buf b;
	char a[200], c[300];
	size_t cap;

	fill(a, sizeof(a), 5);
	fill(c, sizeof(c), 9);
	buf_init(&b, 0);
	ASSERT_EQ(buf_append(&b, a, sizeof(a)), 0);
	cap = b.cap;
	buf_consume(&b, 50);
	ASSERT_EQ(buf_append(&b, c, sizeof(c)), 0);
	ASSERT_GT(b.cap, cap);
	ASSERT_UEQ(b.off, 0);
	ASSERT_UEQ(buf_pending(&b), 150 + sizeof(c));
	ASSERT_MEM_EQ(buf_head(&b), a + 50, 150);
	ASSERT_MEM_EQ(buf_head(&b) + 150, c, sizeof(c));
	buf_free(&b);
}

/* One byte at a time in, irregular amounts out, checked against a plain
 * array model, with and without a cap. */
static void
model_run(size_t max)
{
	enum { N = 20000 };
	static char model[N];
	struct buf b;
	size_t mhead = 0, mtail = 0, step = 0;
	unsigned x = 12345;

	buf_init(&b, max);
	for (size_t i = 0; i < N; i++) {
		char ch = (char)(i * 31 + 7);

		x = x * 1103515245u + 12345u;
		if (max && mtail - mhead == max) {
			ASSERT_EQ(buf_append(&b, &ch, 1), -1);
		} else if ((x >> 16) % 3 == 0) {
			char *w = buf_reserve(&b, 1);
			ASSERT_NOT_NULL(w);
			*w = ch;
			buf_commit(&b, 1);
			model[mtail++] = ch;
		} else {
			ASSERT_EQ(buf_append(&b, &ch, 1), 0);
			model[mtail++] = ch;
		}
		ASSERT_UEQ(buf_pending(&b), mtail - mhead);
		if (++step % 37 == 0) {
			size_t n = (x >> 8) % (mtail - mhead + 1);
			ASSERT_MEM_EQ(buf_head(&b), model + mhead, mtail - mhead);
			buf_consume(&b, n);
			mhead += n;
			ASSERT_UEQ(buf_pending(&b), mtail - mhead);
		}
		if (max)
			ASSERT_LE(buf_pending(&b), max);
	}
	ASSERT_MEM_EQ(buf_head(&b), model + mhead, mtail - mhead);
	buf_free(&b);
}

TEST(buf_model_uncapped)
{
	model_run(0);
}

TEST(buf_model_capped)
{
	model_run(300);
	model_run(1);
	model_run(256);
}
