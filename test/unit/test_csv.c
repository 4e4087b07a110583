/*
 * test_csv.c — the usage CSV.
 */
#include "test/unit/test.h"

#include <math.h>

#include "daemon/common/util.h"
#include "proto/csv.h"

#define HDR "phone_number,minutes_used,minutes_remaining,last_call_date," \
	    "total_calls"

/* 2026-11-21T03:04:05Z */
#define T0_MS 1795230245000ULL

struct rows {
	struct usage_row r[64];
	size_t n;
};

static int
collect(void *arg, const struct usage_row *r)
{
	struct rows *rs = arg;

	ASSERT_LT(rs->n, ARRAY_LEN(rs->r));
	rs->r[rs->n++] = *r;
	return 0;
}

/* Parse s; returns the parser's result.  line/err as the parser left them. */
static int
parse(const char *s, struct rows *rs, int *line, char *err, size_t errlen)
{
	memset(rs, 0, sizeof(*rs));
	return csv_usage_parse(s, strlen(s), collect, rs, line, err, errlen);
}

static void
parse_ok(const char *s, struct rows *rs)
{
	char err[128];
	int line, rc = parse(s, rs, &line, err, sizeof(err));

	if (rc != 0)
		TEST_FAIL_("rc %d at line %d: %s", rc, line, err);
}

static void
parse_err(const char *s, int want_line, const char *want_err)
{
	struct rows rs;
	char err[128];
	int line = -7;

	ASSERT_EQ(parse(s, &rs, &line, err, sizeof(err)), -1);
	ASSERT_EQ(line, want_line);
	ASSERT_STR_EQ(err, want_err);
}

static void
row(struct usage_row *r, const char *phone, uint64_t used_ms,
    uint64_t last_ms, uint32_t calls)
{
	memset(r, 0, sizeof(*r));
	vr_strlcpy(r->phone, phone, sizeof(r->phone));
	r->used_ms = used_ms;
	r->last_call_ms = last_ms;
	r->calls = calls;
}

static void
assert_row_eq(const struct usage_row *a, const struct usage_row *b)
{
	ASSERT_STR_EQ(a->phone, b->phone);
	ASSERT_UEQ(a->used_ms, b->used_ms);
	ASSERT_UEQ(a->last_call_ms, b->last_call_ms);
	ASSERT_UEQ(a->calls, b->calls);
}

TEST(csv_header)
{
	char out[128], small[10];

	ASSERT_EQ(csv_usage_header(out, sizeof(out)), strlen(HDR "\n"));
	ASSERT_STR_EQ(out, HDR "\n");
	ASSERT_EQ(csv_usage_header(small, sizeof(small)), strlen(HDR "\n"));
	ASSERT_STR_EQ(small, "phone_num");
	ASSERT_EQ(csv_usage_header(NULL, 0), strlen(HDR "\n"));
}

TEST(csv_format_row)
{
	struct usage_row r;
	char out[256];
	int n;

	row(&r, "+14155552671", 90000, T0_MS, 3);
	n = csv_usage_format(&r, 10.0, out, sizeof(out));
	ASSERT_STR_EQ(out, "+14155552671,1.500000,8.500000,"
	    "2026-11-21T03:04:05Z,3\n");
	ASSERT_EQ(n, (int)strlen(out));

	/* never called: empty date; over the allowance: 0 remaining */
	row(&r, "+14155552671", 61001, 0, 0);
	csv_usage_format(&r, 1.0, out, sizeof(out));
	ASSERT_STR_EQ(out, "+14155552671,1.016683,0.000000,,0\n");
	csv_usage_format(&r, 1.0166833, out, sizeof(out));
	ASSERT_STR_EQ(out, "+14155552671,1.016683,0.000000,,0\n");
	csv_usage_format(&r, NAN, out, sizeof(out));
	ASSERT_STR_EQ(out, "+14155552671,1.016683,0.000000,,0\n");

	/* snprintf-like truncation */
	row(&r, "+1", 0, 0, 0);
	n = csv_usage_format(&r, 0, out, 5);
	ASSERT_EQ(n, (int)strlen("+1,0.000000,0.000000,,0\n"));
	ASSERT_STR_EQ(out, "+1,0");
}

TEST(csv_format_quoting)
{
	struct usage_row r;
	char out[256];

	row(&r, "+1 (415), \"home\"", 0, 0, 1);
	csv_usage_format(&r, 5, out, sizeof(out));
	/* not E.164: a leading '+' could run as a formula */
	ASSERT_STR_EQ(out, "\"'+1 (415), \"\"home\"\"\",0.000000,5.000000,,1\n");
	row(&r, "a\nb", 0, 0, 1);
	csv_usage_format(&r, 5, out, sizeof(out));
	ASSERT_STR_EQ(out, "\"a\nb\",0.000000,5.000000,,1\n");
	/* the longest phone, all quotes, fits the quoting buffer */
	memset(&r, 0, sizeof(r));
	memset(r.phone, '"', sizeof(r.phone) - 1);
	ASSERT_EQ(csv_usage_format(&r, 0, out, sizeof(out)),
	    2 + 2 * (CSV_PHONE_MAX - 1) + (int)strlen(",0.000000,0.000000,,0\n"));
	/* and with the formula guard in front */
	r.phone[0] = '=';
	ASSERT_EQ(csv_usage_format(&r, 0, out, sizeof(out)),
	    3 + 1 + 2 * (CSV_PHONE_MAX - 2) + (int)strlen(",0.000000,0.000000,,0\n"));
}

/* Format rows, parse them back, compare. */
static void
round_trip(const struct usage_row *in, size_t n)
{
	size_t cap = 128 * (n + 1), len, i;
	char *buf = malloc(cap);
	struct rows rs;

	ASSERT_NOT_NULL(buf);
	len = csv_usage_header(buf, cap);
	for (i = 0; i < n; i++)
		len += (size_t)csv_usage_format(&in[i], 60.0, buf + len,
		    cap - len);
	ASSERT_LT(len, cap);
	parse_ok(buf, &rs);
	ASSERT_EQ(rs.n, n);
	for (i = 0; i < n; i++)
		assert_row_eq(&rs.r[i], &in[i]);
	free(buf);
}

TEST(csv_round_trip)
{
	struct usage_row in[6];

	row(&in[0], "+14155552671", 90000, T0_MS, 3);
	row(&in[1], "+1 (415), \"home\"", 1, T0_MS + 1000, 1);
	row(&in[2], "client:alice", 0, 0, 0);
	row(&in[3], "anonymous", 3600000, 0, 4294967295u);
	row(&in[4], "line\r\nbreak", 59999, 1000, 2);
	row(&in[5], "012345678901234567890123456789012345678901234,6",
	    123456789, T0_MS, 7);
	round_trip(in, ARRAY_LEN(in));
}

TEST(csv_formula_guard)
{
	static const struct {
		const char *in, *want;
	} cells[] = {
		{ "+14155552671", "+14155552671" },
		{ "+1", "+1" },
		{ "+", "'+" },
		{ "+1+1", "'+1+1" },
		{ "=HYPERLINK(\"http://x\",\"y\")",
		  "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"" },
		{ "@SUM(A1:A9)", "'@SUM(A1:A9)" },
		{ "-2+3", "'-2+3" },
		{ "\tx", "'\tx" },
		{ "\rx", "\"'\rx\"" },
		{ "'=x", "''=x" },
		{ "'plain", "''plain" },
		{ "client:alice", "client:alice" },
		{ "a=b", "a=b" },
		{ "", "" },
	};
	struct usage_row in[ARRAY_LEN(cells)];
	char out[128];
	size_t n;

	for (size_t i = 0; i < ARRAY_LEN(cells); i++) {
		n = csv_cell(cells[i].in, strlen(cells[i].in), out, sizeof(out));
		ASSERT_STR_EQ(out, cells[i].want);
		ASSERT_EQ(n, strlen(cells[i].want));
	}
	/* too small: nothing written, the length needed told */
	ASSERT_EQ(csv_cell("@x", 2, out, 3), 3);
	ASSERT_STR_EQ(out, "");
	/* every one of them reads back as it was (the empty one is not a
	 * phone number the reader takes) */
	for (size_t i = 0; i + 1 < ARRAY_LEN(cells); i++)
		row(&in[i], cells[i].in, i * 1000, T0_MS, (uint32_t)i);
	round_trip(in, ARRAY_LEN(cells) - 1);
}

/* Minutes go through "%.6f" and back through a double, and must still
 * give the exact ms. */
TEST(csv_ms_exact)
{
	static const uint64_t edge[] = {
		0, 1, 2, 29, 30, 31, 59999, 60000, 60001, 119999, 3599999,
		86400000, 999999999, 1000000000000ULL, 99999999999999ULL,
	};
	struct usage_row r, in[64];
	struct rows rs;
	char buf[128];
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	size_t i;

	for (i = 0; i < ARRAY_LEN(edge); i++) {
		row(&r, "+1", edge[i], 0, 0);
		ASSERT_EQ(csv_usage_header(buf, sizeof(buf)), strlen(HDR "\n"));
		csv_usage_format(&r, 0, buf + strlen(buf),
		    sizeof(buf) - strlen(buf));
		parse_ok(buf, &rs);
		ASSERT_EQ(rs.n, 1);
		ASSERT_UEQ(rs.r[0].used_ms, edge[i]);
	}
	for (i = 0; i < 200000; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		/* mostly call-sized values, some up to ~30 years */
		row(&in[i % 64], "+1", i % 2 ? seed % 100000000 :
		    seed % 1000000000000ULL, 0, 0);
		if (i % 64 == 63)
			round_trip(in, 64);
	}
}

TEST(csv_empty_and_header_only)
{
	struct rows rs;

	ASSERT_EQ(csv_usage_parse(NULL, 0, collect, &rs, NULL, NULL, 0), 0);
	parse_ok("", &rs);
	ASSERT_EQ(rs.n, 0);
	parse_ok("\n\n", &rs);
	ASSERT_EQ(rs.n, 0);
	parse_ok(HDR, &rs);
	ASSERT_EQ(rs.n, 0);
	parse_ok(HDR "\n", &rs);
	ASSERT_EQ(rs.n, 0);
	parse_ok(HDR "\r\n", &rs);
	ASSERT_EQ(rs.n, 0);
	parse_ok("\xEF\xBB\xBF" HDR "\r\n", &rs);
	ASSERT_EQ(rs.n, 0);
}

TEST(csv_trailing_newline_and_blank_lines)
{
	struct rows rs;

	parse_ok(HDR "\n+1,1.000000,0,,1", &rs);
	ASSERT_EQ(rs.n, 1);
	ASSERT_UEQ(rs.r[0].used_ms, 60000);
	parse_ok(HDR "\n+1,1.000000,0,,1\n", &rs);
	ASSERT_EQ(rs.n, 1);
	parse_ok(HDR "\n+1,1.000000,0,,1\n\n", &rs);
	ASSERT_EQ(rs.n, 1);
	parse_ok(HDR "\r\n+1,1.000000,0,,1\r\n\r\n", &rs);
	ASSERT_EQ(rs.n, 1);
	parse_ok(HDR "\n+1,1.000000,0,,1\n  \n", &rs);
	ASSERT_EQ(rs.n, 1);
	parse_ok(HDR "\n\n+1,1,0,,1\n\n+2,2,0,,1\n", &rs);
	ASSERT_EQ(rs.n, 2);
	ASSERT_STR_EQ(rs.r[1].phone, "+2");
}

TEST(csv_crlf)
{
	static const char lf[] = HDR "\n"
	    "+14155552671,1.500000,8.5,2026-11-21T03:04:05Z,3\n"
	    "\"+1, \"\"x\"\"\",0.000017,0,,1\n";
	static const char crlf[] = HDR "\r\n"
	    "+14155552671,1.500000,8.5,2026-11-21T03:04:05Z,3\r\n"
	    "\"+1, \"\"x\"\"\",0.000017,0,,1\r\n";
	struct rows a, b;
	size_t i;

	parse_ok(lf, &a);
	parse_ok(crlf, &b);
	ASSERT_EQ(a.n, 2);
	ASSERT_EQ(b.n, 2);
	for (i = 0; i < a.n; i++)
		assert_row_eq(&a.r[i], &b.r[i]);
	ASSERT_STR_EQ(b.r[0].phone, "+14155552671");
	ASSERT_UEQ(b.r[0].used_ms, 90000);
	ASSERT_UEQ(b.r[0].last_call_ms, T0_MS);
	ASSERT_UEQ(b.r[0].calls, 3);
	ASSERT_STR_EQ(b.r[1].phone, "+1, \"x\"");
	ASSERT_UEQ(b.r[1].used_ms, 1);
	ASSERT_UEQ(b.r[1].last_call_ms, 0);
}

TEST(csv_columns_by_name)
{
	struct rows rs;

	/* reordered, unknown columns, minutes_remaining ignored */
	parse_ok("note,total_calls,minutes_used,extra,phone_number\n"
	    "\"a, b\",5,2.5,,+33612345678\n"
	    "\"multi\nline\",0,0,x,+4420\n", &rs);
	ASSERT_EQ(rs.n, 2);
	ASSERT_STR_EQ(rs.r[0].phone, "+33612345678");
	ASSERT_UEQ(rs.r[0].used_ms, 150000);
	ASSERT_UEQ(rs.r[0].calls, 5);
	ASSERT_UEQ(rs.r[0].last_call_ms, 0);
	ASSERT_STR_EQ(rs.r[1].phone, "+4420");

	/* an older file: no last_call_date, no total_calls */
	parse_ok("phone_number,minutes_used\n+1,3\n", &rs);
	ASSERT_EQ(rs.n, 1);
	ASSERT_UEQ(rs.r[0].used_ms, 180000);
	ASSERT_UEQ(rs.r[0].calls, 0);

	/* other accepted date forms, an empty total_calls */
	parse_ok("phone_number,minutes_used,last_call_date,total_calls\n"
	    "+1,0,2026-11-21 03:04:05,\n+2,0,2026-11-21,\n"
	    "+3,0,\"2026-11-21T03:04:05Z\",9\n", &rs);
	ASSERT_EQ(rs.n, 3);
	ASSERT_UEQ(rs.r[0].last_call_ms, T0_MS);
	ASSERT_UEQ(rs.r[1].last_call_ms, T0_MS - (3 * 3600 + 4 * 60 + 5) * 1000);
	ASSERT_UEQ(rs.r[2].last_call_ms, T0_MS);
	ASSERT_UEQ(rs.r[2].calls, 9);
}

TEST(csv_missing_columns)
{
	parse_err("minutes_used,total_calls\n1,2\n", 1,
	    "missing column phone_number");
	parse_err("\n\nphone,minutes_used\n", 3, "missing column phone_number");
	parse_err("phone_number,minutes\n+1,2\n", 1,
	    "missing column minutes_used");
	parse_err("phone_number,minutes_used,phone_number\n", 1,
	    "duplicate column phone_number");
	/* a header is matched exactly */
	parse_err("Phone_Number,minutes_used\n", 1,
	    "missing column phone_number");
}

TEST(csv_bad_numbers)
{
	parse_err(HDR "\n+1,1,0,,1\n+2,x,0,,1\n", 3, "bad minutes_used \"x\"");
	parse_err(HDR "\n+1,-1,0,,1\n", 2, "bad minutes_used \"-1\"");
	parse_err(HDR "\n+1,-0.5,0,,1\n", 2, "bad minutes_used \"-0.5\"");
	parse_err(HDR "\n+1,,0,,1\n", 2, "bad minutes_used \"\"");
	parse_err(HDR "\n+1,1e3,0,,1\n", 2, "bad minutes_used \"1e3\"");
	parse_err(HDR "\n+1,nan,0,,1\n", 2, "bad minutes_used \"nan\"");
	parse_err(HDR "\n+1,inf,0,,1\n", 2, "bad minutes_used \"inf\"");
	parse_err(HDR "\n+1, 1,0,,1\n", 2, "bad minutes_used \" 1\"");
	parse_err(HDR "\n+1,.5,0,,1\n", 2, "bad minutes_used \".5\"");
	parse_err(HDR "\n+1,1.2.3,0,,1\n", 2, "bad minutes_used \"1.2.3\"");
	parse_err(HDR "\n+1,0x10,0,,1\n", 2, "bad minutes_used \"0x10\"");
	parse_err(HDR "\n+1,99999999999999999999,0,,1\n", 2,
	    "bad minutes_used \"99999999999999999999\"");
	parse_err(HDR "\r\n+1,1,0,,1\r\n+2,1,0,,x\r\n", 3,
	    "bad total_calls \"x\"");
	parse_err(HDR "\n+1,1,0,,4294967296\n", 2,
	    "bad total_calls \"4294967296\"");
	parse_err(HDR "\n+1,1,0,,-1\n", 2, "bad total_calls \"-1\"");
	parse_err(HDR "\n+1,1,0,yesterday,1\n", 2,
	    "bad last_call_date \"yesterday\"");
	/* the remaining minutes are derived, not read */
	{
		struct rows rs;
		parse_ok(HDR "\n+1,1,whatever,,1\n", &rs);
		ASSERT_EQ(rs.n, 1);
	}
}

TEST(csv_structure_errors)
{
	/* the quote opens on line 3 and never closes */
	parse_err(HDR "\n+1,1,0,,1\n\"+2,1,0,,1\n+3,1,0,,1\n", 3,
	    "unterminated quote");
	parse_err(HDR "\n+1,1,0,,\"1", 2, "unterminated quote");
	parse_err("\"", 1, "unterminated quote");
	parse_err(HDR "\n+1,1,0,,\"1\"x\n", 2,
	    "unexpected character after closing quote");
	parse_err(HDR "\n+1\"2,1,0,,1\n", 2, "quote inside an unquoted field");
	parse_err(HDR "\n+1,1,0,1\n", 2, "expected 5 fields, got 4");
	parse_err(HDR "\n+1,1,0,,1,\n", 2, "expected 5 fields, got 6");
	parse_err(HDR "\n,1,0,,1\n", 2, "empty phone_number");
	parse_err(HDR "\n0123456789012345678901234567890123456789012345678"
	    ",1,0,,1\n", 2, "phone number too long");
	/* lines inside a quoted field count */
	parse_err("a,phone_number,minutes_used\n\"x\ny\r\nz\",+1,1\n"
	    "q,+2,bad\n", 5, "bad minutes_used \"bad\"");
}

TEST(csv_nul_bytes)
{
	static const char s[] = HDR "\n+1\0,1,0,,1\n";
	static const char t[] = HDR "\n+1,1,0,,1\n\0\n";
	struct rows rs;
	char err[64];
	int line;

	memset(&rs, 0, sizeof(rs));
	ASSERT_EQ(csv_usage_parse(s, sizeof(s) - 1, collect, &rs, &line, err,
	    sizeof(err)), -1);
	ASSERT_EQ(line, 2);
	ASSERT_STR_EQ(err, "NUL byte in phone_number");
	ASSERT_EQ(csv_usage_parse(t, sizeof(t) - 1, collect, &rs, &line, err,
	    sizeof(err)), -1);
	ASSERT_EQ(line, 3);
}

static int
stop_at_second(void *arg, const struct usage_row *r)
{
	int *n = arg;

	return ++*n == 2 ? 42 : 0;
}

TEST(csv_callback_stops)
{
	static const char s[] = HDR "\n+1,1,0,,1\n+2,1,0,,1\n+3,x,0,,1\n";
	char err[64] = "unchanged";
	int n = 0, line = -1;

	ASSERT_EQ(csv_usage_parse(s, strlen(s), stop_at_second, &n, &line, err,
	    sizeof(err)), 42);
	ASSERT_EQ(n, 2);
	ASSERT_EQ(line, 0);
	ASSERT_STR_EQ(err, "");
}

/* Every prefix of a file parses or fails cleanly, reading only its bytes. */
TEST(csv_every_prefix)
{
	static const char s[] = HDR "\r\n\"+1, \"\"x\"\"\",1.5,0,"
	    "2026-11-21T03:04:05Z,3\r\n+2,0.000017,0,,1\n";
	size_t i, len = strlen(s);

	for (i = 0; i <= len; i++) {
		char *c = malloc(i ? i : 1);
		struct rows rs;
		char err[64];
		int line, rc;

		ASSERT_NOT_NULL(c);
		memcpy(c, s, i);
		memset(&rs, 0, sizeof(rs));
		rc = csv_usage_parse(c, i, collect, &rs, &line, err,
		    sizeof(err));
		ASSERT(rc == 0 || rc == -1);
		if (rc == -1)
			ASSERT_GT(line, 0);
		free(c);
	}
}
