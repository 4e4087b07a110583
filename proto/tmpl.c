/*
 * tmpl.c — see tmpl.h.
 */
#include "proto/tmpl.h"

#include <ctype.h>
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
