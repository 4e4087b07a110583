/*
 * form.c — application/x-www-form-urlencoded bodies and query strings.
 *
 * Each pair owns one allocation holding "name\0value\0": form_pair.name
 * points at its start and form_pair.value into it, so form_free() frees
 * name only.
 */
#include "proto/form.h"

#include <stdlib.h>
#include <string.h>

static int
hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long
url_decode(const char *in, size_t len, char *out, int plus_is_space)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '%') {
			int hi, lo;

			if (len - i < 3)
				return -1;
			hi = hex_val((unsigned char)in[i + 1]);
			lo = hex_val((unsigned char)in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_is_space)
			c = ' ';
		/* a NUL would cut the C string the caller gets */
		if (c == '\0')
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (long)o;
}

/* Grow f->v so one more pair fits.  0 or -1. */
static int
form_reserve(struct form *f)
{
	struct form_pair *v;
	size_t cap;

	if (f->n < f->cap)
		return 0;
	cap = f->cap ? f->cap * 2 : 16;
	if (cap > FORM_MAX_PAIRS)
		cap = FORM_MAX_PAIRS;
	v = realloc(f->v, cap * sizeof(*v));
	if (v == NULL)
		return -1;
	f->v = v;
	f->cap = cap;
	return 0;
}

/* Decode one "name[=value]" segment s[0..len) and append it.  0 or -1. */
static int
form_add(struct form *f, const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len);
	size_t nlen = eq ? (size_t)(eq - s) : len;
	size_t vlen = eq ? len - nlen - 1 : 0;
	struct form_pair *p;
	char *blk;
	long dn, dv;

	if (f->n == FORM_MAX_PAIRS || form_reserve(f) != 0)
		return -1;
	/* decoding never grows: name and value fit in their raw lengths */
	if ((blk = malloc(nlen + vlen + 2)) == NULL)
		return -1;
	if ((dn = url_decode(s, nlen, blk, 1)) < 0)
		goto fail;
	if ((dv = url_decode(eq ? eq + 1 : "", vlen, blk + dn + 1, 1)) < 0)
		goto fail;
	p = &f->v[f->n++];
	p->name = blk;
	p->name_len = (size_t)dn;
	p->value = blk + dn + 1;
	p->value_len = (size_t)dv;
	return 0;
fail:
	free(blk);
	return -1;
}

/* *f is an output: whatever it held before is not freed. */
int
form_parse(struct form *f, const char *body, size_t len)
{
	size_t i = 0;

	memset(f, 0, sizeof(*f));
	while (i < len) {
		const char *amp = memchr(body + i, '&', len - i);
		size_t seg = amp ? (size_t)(amp - (body + i)) : len - i;

		if (seg > 0 && form_add(f, body + i, seg) != 0)
			goto fail;
		i += seg + 1;
	}
	return 0;
fail:
	form_free(f);
	return -1;
}

const char *
form_get(const struct form *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->v[i].name, name) == 0)
			return f->v[i].value;
	return NULL;
}

void
form_free(struct form *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		free(f->v[i].name);
	free(f->v);
	memset(f, 0, sizeof(*f));
}
