/*
 * jscan.c — see jscan.h.
 */
#include "proto/jscan.h"
#include "proto/b64.h"

/* 1 for bytes that may stand in a string the scanner takes: printable
 * ASCII other than the quote and the backslash. */
static const unsigned char plain[256] = {
#define R16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
	R16(0), R16(0),
	1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,		/* ' ' '"' */
	R16(1), R16(1),
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,		/* '\\' */
	R16(1), R16(1),
	R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};

int
jscan_string(struct jscan *s, const char **str, size_t *len)
{
	const unsigned char *q, *end;

	if (jscan_char(s, '"') != JSCAN_OK)
		return JSCAN_NO;
	q = (const unsigned char *)s->p;
	end = (const unsigned char *)s->end;
	/* four at a time through the ordinary bytes */
	while (end - q >= 4 && (plain[q[0]] & plain[q[1]] & plain[q[2]] &
	    plain[q[3]]))
		q += 4;
	while (q < end && plain[*q])
		q++;
	/* escapes, controls and anything outside ASCII (whose UTF-8 the
	 * full parser would check) go the slow way */
	if (q >= end || *q != '"')
		return JSCAN_NO;
	*str = s->p;
	*len = (size_t)((const char *)q - s->p);
	s->p = (const char *)q + 1;
	return JSCAN_OK;
}

int
jscan_b64(struct jscan *s, const char **str, size_t *len, size_t *bytes)
{
	const unsigned char *q, *start, *end;
	size_t n, pad = 0;

	if (jscan_char(s, '"') != JSCAN_OK)
		return JSCAN_NO;
	start = q = (const unsigned char *)s->p;
	end = (const unsigned char *)s->end;
	/* four at a time: the payloads are hundreds of characters */
	while (end - q >= 4 && (b64_value[q[0]] | b64_value[q[1]] |
	    b64_value[q[2]] | b64_value[q[3]]) >= 0)
		q += 4;
	while (q < end && b64_value[*q] >= 0)
		q++;
	while (q < end && *q == '=' && pad < 2) {
		q++;
		pad++;
	}
	if (q >= end || *q != '"')
		return JSCAN_NO;
	n = (size_t)(q - start);
	if (n % 4 != 0 || (n == 0 && pad))
		return JSCAN_NO;
	*str = (const char *)start;
	*len = n;
	*bytes = n / 4 * 3 - pad;
	s->p = (const char *)q + 1;
	return JSCAN_OK;
}

int
jscan_uint(struct jscan *s, uint64_t *out)
{
	uint64_t x = 0;
	const char *start;

	jscan_ws(s);
	start = s->p;
	while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
		unsigned d = (unsigned)(*s->p - '0');
		if (x > ((uint64_t)INT64_MAX - d) / 10)
			return JSCAN_NO;
		x = x * 10 + d;
		s->p++;
	}
	if (s->p == start || (s->p - start > 1 && *start == '0'))
		return JSCAN_NO;
	/* a fraction or an exponent is not a plain integer */
	if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))
		return JSCAN_NO;
	*out = x;
	return JSCAN_OK;
}

int
jscan_member(struct jscan *s, int *first, const char **key, size_t *klen)
{
	if (*first) {
		*first = 0;
		if (jscan_char(s, '{') != JSCAN_OK)
			return JSCAN_NO;
	} else {
		jscan_ws(s);
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			return 0;
		}
		if (jscan_char(s, ',') != JSCAN_OK)
			return JSCAN_NO;
	}
	if (jscan_string(s, key, klen) != JSCAN_OK ||
	    jscan_char(s, ':') != JSCAN_OK)
		return JSCAN_NO;
	return 1;
}

int
jscan_end(struct jscan *s)
{
	jscan_ws(s);
	return s->p == s->end ? JSCAN_OK : JSCAN_NO;
}
