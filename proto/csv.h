/*
 * csv.h — the usage CSV (RFC 4180 quoting), the file /usage-data serves and
 * the ledger is saved to:
 *   phone_number,minutes_used,minutes_remaining,last_call_date,total_calls
 * minutes with 6 decimals (ms-exact when read back), last_call_date in ISO
 * 8601 UTC ("2026-11-21T03:04:05Z").  The reader finds columns by header
 * name, ignores columns it does not know and minutes_remaining (derived),
 * and accepts an older file without total_calls or last_call_date.
 */
#ifndef VR_PROTO_CSV_H
#define VR_PROTO_CSV_H

#include <stddef.h>
#include <stdint.h>

#define CSV_PHONE_MAX 48	/* bytes including NUL */

struct usage_row {
	char		phone[CSV_PHONE_MAX];
	uint64_t	used_ms;
	uint64_t	last_call_ms;	/* wall clock, ms since epoch; 0 = never */
	uint32_t	calls;
};

typedef int (*csv_row_cb)(void *arg, const struct usage_row *r);

/*
 * Parse a whole file in buf[0..len).  Calls cb per data row; a non-zero
 * return from cb stops parsing with that value.  An empty buffer is a
 * valid empty ledger.  On a malformed file returns -1 with *err_line set
 * (1-based) and a reason in err ("missing column phone_number", "bad
 * minutes_used \"x\"", "unterminated quote", "phone number too long").
 */
int csv_usage_parse(const char *buf, size_t len, csv_row_cb cb, void *arg,
    int *err_line, char *err, size_t errlen);

/*
 * One cell of s[0..n) into out: quoted (RFC 4180) when it holds a comma,
 * a quote or a line end, and with a leading "'" when a spreadsheet would
 * run it as a formula (= + - @ tab CR first; an E.164 number, '+' and
 * digits only, is left alone).  The usage reader takes that "'" off again.
 * Returns the length it needs without the NUL; out is "" when outlen is
 * too small.
 */
size_t csv_cell(const char *s, size_t n, char *out, size_t outlen);

/* The header line, with "\n".  Returns its length. */
size_t csv_usage_header(char *out, size_t outlen);
/* One row with "\n"; minutes_remaining = max(0, free_minutes - used).
 * Fields that need it are quoted.  Returns the length like snprintf. */
int csv_usage_format(const struct usage_row *r, double free_minutes,
    char *out, size_t outlen);

#endif
