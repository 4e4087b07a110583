/*
 * fuzz_csv.c — proto/csv.c: the usage CSV.
 *
 * Input: a mode byte, then a CSV file.  Checked:
 *  - every row handed over has a non-empty, NUL-terminated phone number;
 *    a failure names a line and a reason that fit the error buffer;
 *  - a non-zero return of the callback stops the parse with that value;
 *  - the rows written back with csv_usage_header() and csv_usage_format()
 *    (what the daemon saves) parse to the same rows: same phone, same
 *    milliseconds, same date, same count.
 */
#include "test/fuzz/fuzz.h"

#include "proto/csv.h"

FUZZ_TARGET("csv");

#define ROWS_MAX	128

struct rows {
	struct usage_row	v[ROWS_MAX];
	size_t			n;	/* rows seen (kept: up to ROWS_MAX) */
	size_t			stop;	/* return 7 at this row, 0 never */
};

static int
collect(void *arg, const struct usage_row *r)
{
	struct rows *rs = arg;

	FUZZ_ASSERT(memchr(r->phone, '\0', sizeof(r->phone)) != NULL);
	FUZZ_ASSERT(r->phone[0] != '\0');
	if (rs->n < ROWS_MAX)
		rs->v[rs->n] = *r;
	rs->n++;
	return rs->stop != 0 && rs->n == rs->stop ? 7 : 0;
}

static int
parse(const char *buf, size_t len, struct rows *rs, size_t errlen)
{
	char *err = errlen > 0 ? malloc(errlen) : NULL;
	int line = -1, rc;

	if (errlen > 0 && err == NULL)
		abort();
	rc = csv_usage_parse(buf, len, collect, rs, &line, err, errlen);
	FUZZ_ASSERT(rc == 0 || rc == -1 || rc == 7);
	if (rc == -1) {
		FUZZ_ASSERT(line >= 1);
		FUZZ_ASSERT(err == NULL || (strlen(err) < errlen &&
		    (errlen == 1 || err[0] != '\0')));
	} else if (rc == 0) {
		FUZZ_ASSERT(line == 0);
		FUZZ_ASSERT(err == NULL || err[0] == '\0');
	}
	free(err);
	return rc;
}

/* Write rows as the daemon saves them and read them back. */
static void
round_trip(const struct rows *rs, double free_minutes)
{
	size_t n = rs->n < ROWS_MAX ? rs->n : ROWS_MAX, len, cap;
	struct rows back = { .n = 0 };
	char *file;
	int w;

	cap = 128 + n * 256;
	if ((file = malloc(cap)) == NULL)
		abort();
	len = csv_usage_header(file, cap);
	FUZZ_ASSERT(len < cap && strlen(file) == len);
	for (size_t i = 0; i < n; i++) {
		w = csv_usage_format(&rs->v[i], free_minutes, file + len,
		    cap - len);
		FUZZ_ASSERT(w > 0 && (size_t)w < cap - len);
		FUZZ_ASSERT(file[len + (size_t)w - 1] == '\n');
		len += (size_t)w;
	}
	FUZZ_ASSERT(parse(file, len, &back, 256) == 0);
	FUZZ_ASSERT(back.n == n);
	for (size_t i = 0; i < n; i++) {
		const struct usage_row *a = &rs->v[i], *b = &back.v[i];

		FUZZ_ASSERT(strcmp(a->phone, b->phone) == 0);
		FUZZ_ASSERT(a->used_ms == b->used_ms);
		FUZZ_ASSERT(a->last_call_ms == b->last_call_ms);
		FUZZ_ASSERT(a->calls == b->calls);
	}
	free(file);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t errlens[] = { 256, 0, 1, 16 };
	static const double frees[] = { 3.0, 0, 1e6, 0.5 };
	struct fuzz_in in = { data, size };
	struct rows *rs;
	unsigned mode = fuzz_u8(&in);
	char *buf = (char *)fuzz_dup(in.p, in.n);
	int rc;

	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		abort();
	rc = parse(buf, in.n, rs, errlens[mode & 3]);
	if (rc == 0 && rs->n > 0) {
		round_trip(rs, frees[mode >> 2 & 3]);
		/* the callback's answer stops the parse */
		size_t seen = rs->n;
		memset(rs, 0, sizeof(*rs));
		rs->stop = (mode >> 4) % seen + 1;
		FUZZ_ASSERT(parse(buf, in.n, rs, 64) == 7);
		FUZZ_ASSERT(rs->n == rs->stop);
	}
	free(rs);
	free(buf);
	return 0;
}
