/*
 * fuzz_form.c — proto/form.c: form bodies and percent-decoding.
 *
 * Input: a body.  Checked against a reference written
 * here the plain way (split on '&', skip empty segments, split at the
 * first '=', decode '+' and %XX, refuse a bad escape, a NUL or more than
 * FORM_MAX_PAIRS pairs):
 *  - form_parse() agrees with it, pair by pair; names and values are
 *    NUL-terminated at their lengths; form_get() finds the first value;
 *    a refused body leaves the form empty;
 *  - url_decode() agrees with it, both ways of reading '+';
 *  - the pairs, percent-encoded again, parse back to the same pairs.
 */
#include "test/fuzz/fuzz.h"

#include "proto/form.h"

FUZZ_TARGET("form");

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The reference decoder: length, or -1. */
static long
ref_decode(const char *in, size_t len, char *out, int plus)
{
	size_t i = 0, o = 0;

	while (i < len) {
		int c = (unsigned char)in[i];

		if (c == '%') {
			if (len - i < 3)
				return -1;
			if (hexval((unsigned char)in[i + 1]) < 0 ||
			    hexval((unsigned char)in[i + 2]) < 0)
				return -1;
			c = hexval((unsigned char)in[i + 1]) * 16 +
			    hexval((unsigned char)in[i + 2]);
			i += 3;
		} else {
			if (c == '+' && plus)
				c = ' ';
			i++;
		}
		if (c == 0)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (long)o;
}

static void
check_decode(const char *in, size_t len, int plus)
{
	char *a = malloc(len + 1), *b = malloc(len + 1);
	long na, nb;

	if (a == NULL || b == NULL)
		abort();
	na = url_decode(in, len, a, plus);
	nb = ref_decode(in, len, b, plus);
	FUZZ_ASSERT(na == nb);
	if (na >= 0) {
		FUZZ_ASSERT((size_t)na <= len);
		FUZZ_ASSERT(memcmp(a, b, (size_t)na + 1) == 0);
	}
	free(a);
	free(b);
}

/* Compare f with the reference parse of body[0..len). */
static void
check_form(const struct form *f, int rc, const char *body, size_t len)
{
	size_t i = 0, k = 0;
	int ref_ok = 1;
	char *buf = malloc(len + 1);

	if (buf == NULL)
		abort();
	while (i < len && ref_ok) {
		const char *seg = body + i, *amp = memchr(seg, '&', len - i);
		size_t sl = amp ? (size_t)(amp - seg) : len - i;
		const char *eq = memchr(seg, '=', sl);
		size_t nl = eq ? (size_t)(eq - seg) : sl;
		long dn, dv;

		i += sl + 1;
		if (sl == 0)
			continue;
		if (k == FORM_MAX_PAIRS) {
			ref_ok = 0;
			break;
		}
		dn = ref_decode(seg, nl, buf, 1);
		if (dn < 0) {
			ref_ok = 0;
			break;
		}
		if (rc == 0) {
			FUZZ_ASSERT(k < f->n);
			FUZZ_ASSERT(f->v[k].name_len == (size_t)dn);
			FUZZ_ASSERT(memcmp(f->v[k].name, buf, (size_t)dn + 1) == 0);
		}
		dv = ref_decode(eq ? eq + 1 : "", eq ? sl - nl - 1 : 0, buf, 1);
		if (dv < 0) {
			ref_ok = 0;
			break;
		}
		if (rc == 0) {
			FUZZ_ASSERT(f->v[k].value_len == (size_t)dv);
			FUZZ_ASSERT(memcmp(f->v[k].value, buf,
			    (size_t)dv + 1) == 0);
		}
		k++;
	}
	FUZZ_ASSERT(ref_ok == (rc == 0));
	if (rc == 0)
		FUZZ_ASSERT(k == f->n);
	else
		FUZZ_ASSERT(f->n == 0 && f->v == NULL);
	free(buf);
}

/* Percent-encode s[0..n) into out (3n + 1 bytes). */
static size_t
encode(const char *s, size_t n, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~')
			out[o++] = (char)c;
		else if (c == ' ')
			out[o++] = '+';
		else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return o;
}

static void
round_trip(const struct form *f, size_t len)
{
	struct form g;
	char *body = malloc(3 * len + f->n * 2 + 1);
	size_t o = 0;

	if (body == NULL)
		abort();
	for (size_t i = 0; i < f->n; i++) {
		if (i > 0)
			body[o++] = '&';
		o += encode(f->v[i].name, f->v[i].name_len, body + o);
		body[o++] = '=';
		o += encode(f->v[i].value, f->v[i].value_len, body + o);
	}
	FUZZ_ASSERT(form_parse(&g, body, o) == 0);
	FUZZ_ASSERT(g.n == f->n);
	for (size_t i = 0; i < f->n; i++) {
		FUZZ_ASSERT(g.v[i].name_len == f->v[i].name_len);
		FUZZ_ASSERT(g.v[i].value_len == f->v[i].value_len);
		FUZZ_ASSERT(memcmp(g.v[i].name, f->v[i].name,
		    f->v[i].name_len) == 0);
		FUZZ_ASSERT(memcmp(g.v[i].value, f->v[i].value,
		    f->v[i].value_len) == 0);
	}
	form_free(&g);
	free(body);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct form f;
	char *body = (char *)fuzz_dup(data, size);
	int rc;

	rc = form_parse(&f, body, size);
	FUZZ_ASSERT(rc == 0 || rc == -1);
	check_form(&f, rc, body, size);
	if (rc == 0) {
		FUZZ_ASSERT(f.n <= FORM_MAX_PAIRS);
		for (size_t i = 0; i < f.n; i++) {
			const char *v = form_get(&f, f.v[i].name);
			size_t j;

			FUZZ_ASSERT(strlen(f.v[i].name) == f.v[i].name_len);
			FUZZ_ASSERT(strlen(f.v[i].value) == f.v[i].value_len);
			for (j = 0; strcmp(f.v[j].name, f.v[i].name) != 0; j++)
				;
			FUZZ_ASSERT(v == f.v[j].value);
		}
		round_trip(&f, size);
	}
	form_free(&f);
	check_decode(body, size, 0);
	check_decode(body, size, 1);
	free(body);
	return 0;
}
