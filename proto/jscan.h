/*
 * jscan.h — a strict, narrow JSON scanner for the hot messages.
 *
 * The two messages of the audio path (Twilio's `media`, the model's audio
 * delta) arrive 50 times a second per call.  A full parse builds a tree and
 * allocates for every one of them; these helpers read one flat object in
 * place instead.  They are deliberately narrow: a string with an escape, a
 * number that is not a plain non-negative integer, a key the caller does not
 * expect, a repeated key — anything outside the common shape makes the scan
 * give up (JSCAN_NO), and the caller falls back to the full parser, which
 * then decides and reports exactly as before.  So the fast path never
 * accepts what the full parser would refuse.  Pure: no I/O, no allocation.
 */
#ifndef VR_PROTO_JSCAN_H
#define VR_PROTO_JSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define JSCAN_OK	0
#define JSCAN_NO	(-1)	/* not the simple shape: use the full parser */

struct jscan {
	const char	*p, *end;
};

static inline void
jscan_ws(struct jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
	    *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static inline int
jscan_char(struct jscan *s, char c)
{
	jscan_ws(s);
	if (s->p >= s->end || *s->p != c)
		return JSCAN_NO;
	s->p++;
	return JSCAN_OK;
}

/* A string of printable ASCII with no escape; *str points at its first
 * byte (not NUL-terminated). */
int jscan_string(struct jscan *s, const char **str, size_t *len);
/* A string holding standard base64 (the alphabet, '=' padding only at the
 * end, a multiple of 4 characters): read and checked in one pass.  *bytes
 * gets the decoded length. */
int jscan_b64(struct jscan *s, const char **str, size_t *len, size_t *bytes);
/* A JSON integer 0..2^63-1 written plainly ("0" or no leading zero). */
int jscan_uint(struct jscan *s, uint64_t *out);
/*
 * The members of an object, one per call: *first starts at 1 and the
 * first call reads the '{'.  Returns 1 with the member's key read and its
 * ':' consumed, 0 once the closing '}' is read, JSCAN_NO on anything
 * else (an empty object included: no shape scanned here has one).
 */
int jscan_member(struct jscan *s, int *first, const char **key, size_t *klen);

static inline int
jscan_key_is(const char *k, size_t kl, const char *want)
{
	size_t n = strlen(want);
	return kl == n && memcmp(k, want, n) == 0;
}

/* After the closing brace: only whitespace to the end. */
int jscan_end(struct jscan *s);

#endif
