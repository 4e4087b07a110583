/*
 * fuzz_token.c — proto/token.c: the stream token in the <Stream> URL.
 *
 * Input: a mode byte, a clock (8 bytes), then NUL-separated parts.
 *  - verify (even mode): a secret, then a token as a client would send it.
 *    token_verify() answers with one of its codes; a token it accepts
 *    (or finds expired) has NUL-terminated fields, and token_make() of
 *    those fields gives a token of the same length that verifies to the
 *    same fields (not the same string: each token has a nonce of its own).
 *  - make (odd mode): a secret, a call SID, a caller, a route and an
 *    expiry.  token_make() refuses exactly the fields that do not fit; a
 *    made token is base64url, verifies to the same fields (expired or not
 *    as the clock says), and fails with another secret, with any one
 *    character changed, and cut short.
 */
#include "test/fuzz/fuzz.h"

#include "proto/token.h"

FUZZ_TARGET("token");

static int
b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void
check_fields(const struct stream_token *t)
{
	FUZZ_ASSERT(memchr(t->call_sid, '\0', sizeof(t->call_sid)) != NULL);
	FUZZ_ASSERT(memchr(t->caller, '\0', sizeof(t->caller)) != NULL);
	FUZZ_ASSERT(memchr(t->route, '\0', sizeof(t->route)) != NULL);
}

static void
mode_verify(struct fuzz_in *in, uint64_t now)
{
	struct stream_token t, back;
	char *secret, *tok, again[TOKEN_MAX_LEN];
	size_t len;
	int rc, n;

	secret = fuzz_part(in, NULL);
	tok = (char *)fuzz_dup(in->p, in->n);
	len = in->n;
	memset(&t, 0, sizeof(t));
	rc = token_verify(secret, tok, len, now, &t);
	FUZZ_ASSERT(rc <= TOKEN_OK && rc >= TOKEN_ERR_EXPIRED);
	FUZZ_ASSERT(token_strerror(rc) != NULL);
	if (rc == TOKEN_OK || rc == TOKEN_ERR_EXPIRED) {
		check_fields(&t);
		FUZZ_ASSERT((rc == TOKEN_ERR_EXPIRED) == (now >= t.expires));
		n = token_make(secret, &t, again, sizeof(again));
		FUZZ_ASSERT(n > 0 && (size_t)n == len);
		memset(&back, 0, sizeof(back));
		FUZZ_ASSERT(token_verify(secret, again, (size_t)n, now, &back) ==
		    rc);
		FUZZ_ASSERT(strcmp(back.call_sid, t.call_sid) == 0);
		FUZZ_ASSERT(strcmp(back.caller, t.caller) == 0);
		FUZZ_ASSERT(strcmp(back.route, t.route) == 0);
		FUZZ_ASSERT(back.expires == t.expires);
	}
	free(secret);
	free(tok);
}

/* A field from the input: as much as fits, and no NUL when it is too
 * long, so token_make() sees a field that does not fit. */
static int
fill(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size) {
		memcpy(dst, src, size);
		return 0;
	}
	memcpy(dst, src, n + 1);
	return 1;
}

static void
mode_make(struct fuzz_in *in, uint64_t now)
{
	struct stream_token t, back;
	char *secret, *a, *b, *c, *other;
	char out[TOKEN_MAX_LEN], bad[TOKEN_MAX_LEN];
	int fits, n, rc;
	size_t i;

	secret = fuzz_part(in, NULL);
	a = fuzz_part(in, NULL);
	b = fuzz_part(in, NULL);
	c = fuzz_part(in, NULL);
	memset(&t, 0, sizeof(t));
	fits = fill(t.call_sid, sizeof(t.call_sid), a);
	fits &= fill(t.caller, sizeof(t.caller), b);
	fits &= fill(t.route, sizeof(t.route), c);
	t.expires = fuzz_u64(in);

	n = token_make(secret, &t, out, sizeof(out));
	if (!fits) {
		FUZZ_ASSERT(n == TOKEN_ERR_TOOLONG);
		goto done;
	}
	FUZZ_ASSERT(n > 0 && (size_t)n < sizeof(out));
	FUZZ_ASSERT(strlen(out) == (size_t)n);
	for (i = 0; i < (size_t)n; i++)
		FUZZ_ASSERT(b64url_char(out[i]));
	/* too small a buffer is refused */
	FUZZ_ASSERT(token_make(secret, &t, bad, (size_t)n) ==
	    TOKEN_ERR_TOOLONG);

	memset(&back, 0, sizeof(back));
	rc = token_verify(secret, out, (size_t)n, now, &back);
	FUZZ_ASSERT(rc == (now >= t.expires ? TOKEN_ERR_EXPIRED : TOKEN_OK));
	FUZZ_ASSERT(strcmp(back.call_sid, t.call_sid) == 0);
	FUZZ_ASSERT(strcmp(back.caller, t.caller) == 0);
	FUZZ_ASSERT(strcmp(back.route, t.route) == 0);
	FUZZ_ASSERT(back.expires == t.expires);

	/* another secret */
	if (asprintf(&other, "%s!", secret) == -1)
		abort();
	FUZZ_ASSERT(token_verify(other, out, (size_t)n, 0, &back) ==
	    TOKEN_ERR_MAC);
	free(other);
	/* one character changed, anywhere */
	memcpy(bad, out, (size_t)n);
	i = (size_t)(t.expires % (uint64_t)n);
	bad[i] = bad[i] == 'A' ? 'B' : 'A';
	rc = token_verify(secret, bad, (size_t)n, 0, &back);
	FUZZ_ASSERT(rc == TOKEN_ERR_FORMAT || rc == TOKEN_ERR_MAC);
	/* cut short */
	rc = token_verify(secret, out, (size_t)n - 1, 0, &back);
	FUZZ_ASSERT(rc == TOKEN_ERR_FORMAT || rc == TOKEN_ERR_MAC);
done:
	free(secret);
	free(a);
	free(b);
	free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_u8(&in);
	uint64_t now = fuzz_u64(&in);

	if (mode & 1)
		mode_make(&in, now);
	else
		mode_verify(&in, now);
	return 0;
}
