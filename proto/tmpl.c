/*
 * tmpl.c — see tmpl.h.
 */
#include "proto/tmpl.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define TMPL_NAME_MAX	32

int
tmpl_each(const char *s, int (*fn)(void *, const char *, size_t), void *arg)
{
	const char *p, *q;
	int rc;

	for (p = s; p != NULL && (p = strstr(p, "{{")) != NULL; ) {
		p += 2;
		for (q = p; isalnum((unsigned char)*q) || *q == '_'; q++)
			;
		if (q > p && q - p <= TMPL_NAME_MAX && q[0] == '}' &&
		    q[1] == '}') {
			if ((rc = fn(arg, p, (size_t)(q - p))) != 0)
				return rc;
			p = q + 2;
		} else
			p -= 1;		/* "{{{x}}": the variable starts later */
	}
	return 0;
}

/* The variable at p ("{{name}}"): its length (name only), or 0. */
static size_t
tmpl_at(const char *p)
{
	const char *q;

	if (p[0] != '{' || p[1] != '{')
		return 0;
	for (q = p + 2; isalnum((unsigned char)*q) || *q == '_'; q++)
		;
	if (q == p + 2 || q - p - 2 > TMPL_NAME_MAX || q[0] != '}' || q[1] != '}')
		return 0;
	return (size_t)(q - p - 2);
}

char *
tmpl_fill(const char *s, const char *(*lookup)(void *, const char *, size_t),
    void *arg)
{
	size_t len = 0, cap = 0, n;
	const char *p, *v;
	char *out = NULL;
	int pass;

	/* twice: measure, then write */
	for (pass = 0; pass < 2; pass++) {
		len = 0;
		for (p = s; *p != '\0'; ) {
			if ((n = tmpl_at(p)) > 0 &&
			    (v = lookup(arg, p + 2, n)) != NULL) {
				size_t vl = strlen(v);
				if (out != NULL)
					memcpy(out + len, v, vl);
				len += vl;
				p += n + 4;
				continue;
			}
			if (out != NULL)
				out[len] = *p;
			len++;
			p++;
		}
		if (out == NULL) {
			cap = len + 1;
			if ((out = malloc(cap)) == NULL)
				return NULL;
		}
	}
	out[len] = '\0';
	return out;
}
