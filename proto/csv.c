/*
 * csv.c — the usage CSV (RFC 4180).
 *
 * The reader splits the buffer into records of fields that point into it
 * (a quoted field still holds its doubled quotes) and decodes only the
 * fields it needs, into small fixed buffers.  Line numbers are physical
 * lines, 1-based; an error names the line its record (or quote) starts on.
 * Blank lines are skipped wherever they are.
 *
 * Minutes go through strtod() and printf("%.6f"), which follow LC_NUMERIC:
 * the daemon never calls setlocale(), so both stay in the "C" locale.
 */
#include "proto/csv.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/common/util.h"

#define CSV_MAX_FIELDS	64
#define CSV_VALUE_MAX	64	/* decoded numbers and dates, with NUL */
/* keeps minutes * 60000 well inside what llround() and uint64_t hold */
#define CSV_MINUTES_MAX	1e13

static const char csv_header[] =
    "phone_number,minutes_used,minutes_remaining,last_call_date,total_calls\n";

enum csv_col { COL_PHONE, COL_USED, COL_DATE, COL_CALLS, COL_COUNT };
static const char *const csv_col_name[COL_COUNT] = {
	"phone_number", "minutes_used", "last_call_date", "total_calls",
};

struct csv_field {
	const char	*p;	/* raw bytes, between the quotes if quoted */
	size_t		 len;
	int		 quoted;
};

struct csv_lexer {
	const char	*buf;
	size_t		 len, pos;
	int		 line;		/* line the lexer is on */
	int		 err_line;
	const char	*err;		/* static reason when a read failed */
};

/* Parse state shared by the helpers below. */
struct csv_parse {
	int		 col[COL_COUNT];	/* field index, or -1 */
	size_t		 ncols;
	int		*err_line;
	char		*err;
	size_t		 errlen;
};

static void
csv_fail(struct csv_parse *cp, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
csv_fail(struct csv_parse *cp, int line, const char *fmt, ...)
{
	va_list ap;

	if (cp->err_line != NULL)
		*cp->err_line = line;
	if (cp->err != NULL && cp->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(cp->err, cp->errlen, fmt, ap);
		va_end(ap);
	}
}

/* A byte that ends an unquoted field. */
static int
is_sep(char c)
{
	return c == ',' || c == '\r' || c == '\n';
}

/*
 * A cell a spreadsheet would run as a formula: one that starts with = + -
 * @, a tab or a CR.  An E.164 number starts with '+' but is digits only,
 * which no spreadsheet runs, so it is written as it is (the format stays
 * what it always was for phone numbers).  A leading quote counts too, so
 * that the guard below can be told from a cell that began with one.
 */
static int
csv_needs_guard(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || strchr("=+-@\t\r'", s[0]) == NULL)
		return 0;
	if (s[0] != '+' || n < 2)
		return 1;
	for (i = 1; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 1;
	return 0;
}

/* Consume a line end at lx->pos (CRLF, LF or a lone CR) if there is one. */
static int
lex_eol(struct csv_lexer *lx)
{
	if (lx->pos < lx->len && lx->buf[lx->pos] == '\r') {
		lx->pos++;
		if (lx->pos < lx->len && lx->buf[lx->pos] == '\n')
			lx->pos++;
	} else if (lx->pos < lx->len && lx->buf[lx->pos] == '\n')
		lx->pos++;
	else
		return 0;
	lx->line++;
	return 1;
}

/* A quoted field; lx->pos is on the opening quote.  0 or -1. */
static int
lex_quoted(struct csv_lexer *lx, struct csv_field *f)
{
	int start_line = lx->line;
	size_t i;

	f->p = lx->buf + lx->pos + 1;
	f->quoted = 1;
	for (i = lx->pos + 1; i < lx->len; i++) {
		char c = lx->buf[i];

		if (c == '"' && i + 1 < lx->len && lx->buf[i + 1] == '"')
			i++;
		else if (c == '"')
			break;
		else if (c == '\n' || (c == '\r' && (i + 1 == lx->len ||
		    lx->buf[i + 1] != '\n')))
			lx->line++;
	}
	if (i == lx->len) {
		lx->err_line = start_line;
		lx->err = "unterminated quote";
		return -1;
	}
	f->len = i - (lx->pos + 1);
	lx->pos = i + 1;
	if (lx->pos < lx->len && !is_sep(lx->buf[lx->pos])) {
		lx->err_line = lx->line;
		lx->err = "unexpected character after closing quote";
		return -1;
	}
	return 0;
}

/* An unquoted field, up to a comma, a line end or the end.  0 or -1. */
static int
lex_plain(struct csv_lexer *lx, struct csv_field *f)
{
	size_t i = lx->pos;

	while (i < lx->len && !is_sep(lx->buf[i])) {
		if (lx->buf[i] == '"') {
			lx->err_line = lx->line;
			lx->err = "quote inside an unquoted field";
			return -1;
		}
		i++;
	}
	f->p = lx->buf + lx->pos;
	f->len = i - lx->pos;
	f->quoted = 0;
	lx->pos = i;
	return 0;
}

/*
 * Read the next record into f[0..*n).  Returns 1 with *line set to the
 * line it starts on, 0 at the end of the buffer, -1 on a syntax error
 * (lx->err, lx->err_line).
 */
static int
lex_record(struct csv_lexer *lx, struct csv_field *f, size_t *n, int *line)
{
	if (lx->pos >= lx->len)
		return 0;
	*n = 0;
	*line = lx->line;
	for (;;) {
		if (*n == CSV_MAX_FIELDS) {
			lx->err_line = lx->line;
			lx->err = "too many fields";
			return -1;
		}
		if (lx->pos < lx->len && lx->buf[lx->pos] == '"') {
			if (lex_quoted(lx, &f[*n]) != 0)
				return -1;
		} else if (lex_plain(lx, &f[*n]) != 0)
			return -1;
		(*n)++;
		if (lx->pos < lx->len && lx->buf[lx->pos] == ',') {
			lx->pos++;
			continue;
		}
		lex_eol(lx);
		return 1;
	}
}

/* A record that is one unquoted field of blanks: an empty line. */
static int
record_blank(const struct csv_field *f, size_t n)
{
	size_t i;

	if (n != 1 || f[0].quoted)
		return 0;
	for (i = 0; i < f[0].len; i++)
		if (f[0].p[i] != ' ' && f[0].p[i] != '\t')
			return 0;
	return 1;
}

/* Decode f into dst (size bytes, NUL included), undoubling quotes.
 * Returns 0, -1 if it does not fit, -2 if it holds a NUL byte; dst is a
 * C string (the part that fitted) in every case. */
static int
field_get(const struct csv_field *f, char *dst, size_t size)
{
	size_t i, o = 0;
	int rc = 0;

	for (i = 0; i < f->len; i++) {
		if (f->p[i] == '\0') {
			rc = -2;
			break;
		}
		if (o + 1 >= size) {
			rc = -1;
			break;
		}
		dst[o++] = f->p[i];
		if (f->quoted && f->p[i] == '"')
			i++;	/* the second of a doubled quote */
	}
	dst[o] = '\0';
	return rc;
}

/* Map the header's names to columns.  0 or -1 (reported). */
static int
csv_map_header(struct csv_parse *cp, const struct csv_field *f, size_t n,
    int line)
{
	char name[CSV_VALUE_MAX];
	size_t i, c;

	for (c = 0; c < COL_COUNT; c++)
		cp->col[c] = -1;
	cp->ncols = n;
	for (i = 0; i < n; i++) {
		if (field_get(&f[i], name, sizeof(name)) != 0)
			continue;	/* too long to be one of ours */
		for (c = 0; c < COL_COUNT; c++) {
			if (strcmp(name, csv_col_name[c]) != 0)
				continue;
			if (cp->col[c] >= 0) {
				csv_fail(cp, line, "duplicate column %s", name);
				return -1;
			}
			cp->col[c] = (int)i;
		}
	}
	for (c = COL_PHONE; c <= COL_USED; c++)
		if (cp->col[c] < 0) {
			csv_fail(cp, line, "missing column %s",
			    csv_col_name[c]);
			return -1;
		}
	return 0;
}

/* Plain decimal minutes ("12", "0.016667") to ms.  0 or -1. */
static int
parse_minutes(const char *s, uint64_t *ms)
{
	const char *p = s;
	char *end;
	double m;

	/* strtod alone would take "-1", " 1", "1e3", "nan" and "0x10" */
	while (*p >= '0' && *p <= '9')
		p++;
	if (p == s)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (*p != '\0')
		return -1;
	m = strtod(s, &end);
	if (*end != '\0' || !(m <= CSV_MINUTES_MAX))
		return -1;
	*ms = (uint64_t)llround(m * 60000.0);
	return 0;
}

static int
parse_calls(const char *s, uint32_t *calls)
{
	uint64_t v = 0;

	if (*s == '\0') {
		*calls = 0;
		return 0;
	}
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*calls = (uint32_t)v;
	return 0;
}

/* Decode the optional column c of a record into val ("" if absent). */
static int
row_value(const struct csv_parse *cp, const struct csv_field *f, int c,
    char *val, size_t size)
{
	val[0] = '\0';
	if (cp->col[c] < 0)
		return 0;
	return field_get(&f[cp->col[c]], val, size);
}

/* Build a usage_row from one data record.  0 or -1 (reported). */
static int
csv_row(struct csv_parse *cp, const struct csv_field *f, size_t n,
    int line, struct usage_row *r)
{
	char val[CSV_VALUE_MAX];
	int rc;

	memset(r, 0, sizeof(*r));
	if (n != cp->ncols) {
		csv_fail(cp, line, "expected %zu fields, got %zu", cp->ncols,
		    n);
		return -1;
	}
	rc = field_get(&f[cp->col[COL_PHONE]], r->phone, sizeof(r->phone));
	if (rc != 0) {
		csv_fail(cp, line, rc == -1 ? "phone number too long" :
		    "NUL byte in phone_number");
		return -1;
	}
	if (r->phone[0] == '\0') {
		csv_fail(cp, line, "empty phone_number");
		return -1;
	}
	/* the writer's formula guard (csv_cell) */
	if (r->phone[0] == '\'' && csv_needs_guard(r->phone + 1,
	    strlen(r->phone + 1)))
		memmove(r->phone, r->phone + 1, strlen(r->phone));
	if (row_value(cp, f, COL_USED, val, sizeof(val)) != 0 ||
	    parse_minutes(val, &r->used_ms) != 0) {
		csv_fail(cp, line, "bad minutes_used \"%.32s\"", val);
		return -1;
	}
	if (row_value(cp, f, COL_DATE, val, sizeof(val)) != 0 ||
	    (val[0] != '\0' && iso8601_parse(val, &r->last_call_ms) != 0)) {
		csv_fail(cp, line, "bad last_call_date \"%.32s\"", val);
		return -1;
	}
	if (row_value(cp, f, COL_CALLS, val, sizeof(val)) != 0 ||
	    parse_calls(val, &r->calls) != 0) {
		csv_fail(cp, line, "bad total_calls \"%.32s\"", val);
		return -1;
	}
	return 0;
}

int
csv_usage_parse(const char *buf, size_t len, csv_row_cb cb, void *arg,
    int *err_line, char *err, size_t errlen)
{
	struct csv_field f[CSV_MAX_FIELDS];
	struct csv_lexer lx = { buf, len, 0, 1, 0, NULL };
	struct csv_parse cp = { .err_line = err_line, .err = err,
	    .errlen = errlen };
	struct usage_row r;
	int have_header = 0, line, rc;
	size_t n;

	if (err_line != NULL)
		*err_line = 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	/* a byte order mark, as spreadsheets write */
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		lx.pos = 3;
	while ((rc = lex_record(&lx, f, &n, &line)) == 1) {
		if (record_blank(f, n))
			continue;
		if (!have_header) {
			if (csv_map_header(&cp, f, n, line) != 0)
				return -1;
			have_header = 1;
			continue;
		}
		if (csv_row(&cp, f, n, line, &r) != 0)
			return -1;
		if ((rc = cb(arg, &r)) != 0)
			return rc;
	}
	if (rc < 0) {
		csv_fail(&cp, lx.err_line, "%s", lx.err);
		return -1;
	}
	return 0;
}

size_t
csv_usage_header(char *out, size_t outlen)
{
	if (outlen > 0)
		vr_strlcpy(out, csv_header, outlen);
	return sizeof(csv_header) - 1;
}

size_t
csv_cell(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0, need;
	int quote = 0, guard = csv_needs_guard(s, n);

	for (i = 0; i < n; i++)
		if (s[i] == '"' || is_sep(s[i]))
			quote = 1;
	need = (size_t)guard + (quote ? 2 : 0) + n;
	for (i = 0; i < n; i++)
		need += s[i] == '"';
	if (need + 1 > outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return need;
	}
	if (quote)
		out[o++] = '"';
	if (guard)
		out[o++] = '\'';	/* shown as text, read back without it */
	for (i = 0; i < n; i++) {
		if (s[i] == '"')
			out[o++] = '"';
		out[o++] = s[i];
	}
	if (quote)
		out[o++] = '"';
	out[o] = '\0';
	return o;
}

int
csv_usage_format(const struct usage_row *r, double free_minutes,
    char *out, size_t outlen)
{
	char phone[2 * CSV_PHONE_MAX + 4], date[32] = "";
	double used = (double)r->used_ms / 60000.0;
	double left = free_minutes - used;

	/* also catches a NaN, and never prints "-0.000000" */
	if (!(left > 0))
		left = 0;
	csv_cell(r->phone, strnlen(r->phone, CSV_PHONE_MAX - 1), phone,
	    sizeof(phone));
	if (r->last_call_ms != 0)
		iso8601_utc(r->last_call_ms, date, sizeof(date));
	return snprintf(out, outlen, "%s,%.6f,%.6f,%s,%" PRIu32 "\n", phone,
	    used, left, date, r->calls);
}
