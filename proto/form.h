/*
 * form.h — application/x-www-form-urlencoded bodies and query strings.
 *
 * Pure: no I/O, no globals.  Every pair is kept in arrival order, names and
 * values decoded ('+' is a space, %XX a byte), unknown names included,
 * because a Twilio signature covers every parameter received.
 */
#ifndef VR_PROTO_FORM_H
#define VR_PROTO_FORM_H

#include <stddef.h>

struct form_pair {
	char	*name;		/* decoded, NUL-terminated (may hold no NUL) */
	char	*value;
	size_t	 name_len, value_len;
};

struct form {
	struct form_pair *v;
	size_t		  n, cap;
};

#define FORM_MAX_PAIRS 512

/* Parse body[0..len).  Empty pairs ("a=1&&b=2") are skipped; a pair without
 * '=' has an empty value.  Returns 0, or -1 on a malformed escape (%G1, a
 * truncated %4), a decoded NUL byte, more than FORM_MAX_PAIRS pairs, or
 * out of memory.  On error *f is left empty. */
int  form_parse(struct form *f, const char *body, size_t len);
/* First value of name, or NULL. */
const char *form_get(const struct form *f, const char *name);
void form_free(struct form *f);

/* Percent-decode in[0..len) into out (at least len+1 bytes), NUL-terminated.
 * plus_is_space: '+' decodes to ' ' (form bodies) or stays '+' (paths).
 * Returns the decoded length, or -1 on a malformed escape or a NUL byte. */
long url_decode(const char *in, size_t len, char *out, int plus_is_space);

#endif
