/*
 * test_token.c — the stream token.
 */
#include "test/unit/test.h"

#include <mbedtls/base64.h>
#include <mbedtls/chachapoly.h>
#include <mbedtls/md.h>

#include "proto/token.h"

#define SECRET	"stream-secret-0123456789"
#define NOW	1790000000ULL

static void
sample(struct stream_token *t)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->call_sid, "CA11111111111111111111111111111111");
	strcpy(t->caller, "+14155552671");
	strcpy(t->route, "practice");
	t->expires = NOW + 60;
}

static int
make(const struct stream_token *t, char *out)
{
	int n = token_make(SECRET, t, out, TOKEN_MAX_LEN);

	ASSERT_GT(n, 0);
	ASSERT_EQ((size_t)n, strlen(out));
	return n;
}

static void
assert_same(const struct stream_token *a, const struct stream_token *b)
{
	ASSERT_STR_EQ(a->call_sid, b->call_sid);
	ASSERT_STR_EQ(a->caller, b->caller);
	ASSERT_STR_EQ(a->route, b->route);
	ASSERT_UEQ(a->expires, b->expires);
	ASSERT_UEQ(a->resume, b->resume);
}

static int
verify(const char *s, size_t len, uint64_t now)
{
	struct stream_token t;

	return token_verify(SECRET, s, len, now, &t);
}

TEST(token_round_trip)
{
	struct stream_token in, out;
	char s[TOKEN_MAX_LEN];
	int n, i;

	sample(&in);
	n = make(&in, s);
	for (i = 0; i < n; i++)
		ASSERT(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_", s[i]) != NULL);
	memset(&out, 0x55, sizeof(out));
	ASSERT_EQ(token_verify(SECRET, s, (size_t)n, NOW, &out), TOKEN_OK);
	assert_same(&in, &out);
	/* the length bounds the token, not a NUL */
	s[n] = 'A';
	ASSERT_EQ(token_verify(SECRET, s, (size_t)n, NOW, &out), TOKEN_OK);
}

TEST(token_round_trip_field_sizes)
{
	struct stream_token in, out;
	char s[TOKEN_MAX_LEN];
	size_t lc, lr;
	int n;

	/* empty and full-length fields, and every base64 tail length */
	for (lc = 0; lc < sizeof(in.caller); lc += 7) {
		for (lr = 0; lr < sizeof(in.route); lr++) {
			sample(&in);
			memset(in.caller, 'c', lc);
			in.caller[lc] = '\0';
			memset(in.route, 'r', lr);
			in.route[lr] = '\0';
			in.expires = UINT64_MAX - lr;
			n = make(&in, s);
			ASSERT_EQ(token_verify(SECRET, s, (size_t)n, NOW, &out),
			    TOKEN_OK);
			assert_same(&in, &out);
		}
	}
	sample(&in);
	memset(in.call_sid, 'S', sizeof(in.call_sid) - 1);
	in.call_sid[sizeof(in.call_sid) - 1] = '\0';
	memset(in.caller, 'C', sizeof(in.caller) - 1);
	in.caller[sizeof(in.caller) - 1] = '\0';
	memset(in.route, 'R', sizeof(in.route) - 1);
	in.route[sizeof(in.route) - 1] = '\0';
	n = make(&in, s);
	ASSERT_LT(n, TOKEN_MAX_LEN);
	ASSERT_EQ(token_verify(SECRET, s, (size_t)n, NOW, &out), TOKEN_OK);
	assert_same(&in, &out);
}

TEST(token_make_too_long)
{
	struct stream_token in;
	char s[TOKEN_MAX_LEN];
	int n;

	sample(&in);
	memset(in.route, 'r', sizeof(in.route));	/* no NUL */
	ASSERT_EQ(token_make(SECRET, &in, s, sizeof(s)), TOKEN_ERR_TOOLONG);
	sample(&in);
	memset(in.call_sid, 'x', sizeof(in.call_sid));
	ASSERT_EQ(token_make(SECRET, &in, s, sizeof(s)), TOKEN_ERR_TOOLONG);
	/* an output buffer one byte short */
	sample(&in);
	n = make(&in, s);
	ASSERT_EQ(token_make(SECRET, &in, s, (size_t)n), TOKEN_ERR_TOOLONG);
	ASSERT_EQ(token_make(SECRET, &in, s, (size_t)n + 1), n);
}

TEST(token_tampered_byte)
{
	struct stream_token in;
	char s[TOKEN_MAX_LEN], orig[TOKEN_MAX_LEN];
	int n, i, rc;

	sample(&in);
	n = make(&in, orig);
	/* any changed character: the tag catches it, or (for a changed
	 * version byte or a non-canonical last character) the layout does */
	for (i = 0; i < n; i++) {
		memcpy(s, orig, (size_t)n);
		s[i] = s[i] == 'A' ? 'B' : 'A';
		rc = verify(s, (size_t)n, NOW);
		if (rc != TOKEN_ERR_MAC && rc != TOKEN_ERR_FORMAT)
			TEST_FAIL_("byte %d changed: %d", i, rc);
	}
	/* a change inside the sealed facts is a MAC failure */
	memcpy(s, orig, (size_t)n);
	s[30] = s[30] == 'A' ? 'B' : 'A';
	ASSERT_EQ(verify(s, (size_t)n, NOW), TOKEN_ERR_MAC);
	/* and so is a change in the MAC itself */
	memcpy(s, orig, (size_t)n);
	s[n - 3] = s[n - 3] == 'A' ? 'B' : 'A';
	ASSERT_EQ(verify(s, (size_t)n, NOW), TOKEN_ERR_MAC);
}

TEST(token_other_secret)
{
	struct stream_token in, out;
	char s[TOKEN_MAX_LEN];
	int n;

	sample(&in);
	n = token_make("another secret", &in, s, sizeof(s));
	ASSERT_GT(n, 0);
	ASSERT_EQ(token_verify(SECRET, s, (size_t)n, NOW, &out),
	    TOKEN_ERR_MAC);
	/* even when expired: the MAC is checked first */
	ASSERT_EQ(token_verify(SECRET, s, (size_t)n, NOW + 3600, &out),
	    TOKEN_ERR_MAC);
	ASSERT_EQ(token_verify("another secret", s, (size_t)n, NOW, &out),
	    TOKEN_OK);
}

TEST(token_expired)
{
	struct stream_token in, out;
	char s[TOKEN_MAX_LEN];
	int n;

	sample(&in);
	n = make(&in, s);
	ASSERT_EQ(token_verify(SECRET, s, (size_t)n, in.expires - 1, &out),
	    TOKEN_OK);
	memset(&out, 0, sizeof(out));
	ASSERT_EQ(token_verify(SECRET, s, (size_t)n, in.expires, &out),
	    TOKEN_ERR_EXPIRED);
	assert_same(&in, &out);
	memset(&out, 0, sizeof(out));
	ASSERT_EQ(token_verify(SECRET, s, (size_t)n, in.expires + 86400, &out),
	    TOKEN_ERR_EXPIRED);
	ASSERT_STR_EQ(out.call_sid, "CA11111111111111111111111111111111");
}

/*
 * Build a token by hand from its plaintext, as token.h describes it
 * (version byte, a fixed nonce, ChaCha20-Poly1305 under
 * HMAC-SHA256(secret, label)), to reach checks a token_make() output never
 * trips.
 */
static int
forge_v(unsigned char version, const unsigned char *plain, size_t len,
    char *out)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	static const char label[] = "voxrelay stream token v2";
	mbedtls_chachapoly_context ctx;
	unsigned char buf[600], key[32];
	size_t i, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	ASSERT_EQ(mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
	    (const unsigned char *)SECRET, strlen(SECRET),
	    (const unsigned char *)label, strlen(label), key), 0);
	buf[0] = version;
	memset(buf + 1, 0x42, 12);
	mbedtls_chachapoly_init(&ctx);
	ASSERT_EQ(mbedtls_chachapoly_setkey(&ctx, key), 0);
	ASSERT_EQ(mbedtls_chachapoly_encrypt_and_tag(&ctx, len, buf + 1, buf, 1,
	    plain, buf + 13, buf + 13 + len), 0);
	mbedtls_chachapoly_free(&ctx);
	len += 1 + 12 + 16;
	for (i = 0; i < len; i++) {
		acc = acc << 8 | buf[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = a[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = a[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	return (int)o;
}

static int
forge(const unsigned char *plain, size_t len, char *out)
{
	return forge_v(2, plain, len, out);
}

TEST(token_forged_layouts)
{
	unsigned char raw[300];
	struct stream_token t;
	char s[600];
	size_t p;
	int n;

	/* well formed, by hand: accepted */
	memset(raw, 0, sizeof(raw));
	raw[7] = 0xff;		/* expires 255, so use now = 0 */
	p = 8;
	raw[p++] = 2; raw[p++] = 'C'; raw[p++] = 'A';
	raw[p++] = 1; raw[p++] = '+';
	raw[p++] = 0;
	n = forge(raw, p, s);
	ASSERT_EQ(token_verify(SECRET, s, (size_t)n, 0, &t), TOKEN_OK);
	ASSERT_STR_EQ(t.call_sid, "CA");
	ASSERT_STR_EQ(t.caller, "+");
	ASSERT_STR_EQ(t.route, "");
	ASSERT_UEQ(t.expires, 255);

	/* version 1 (the MAC-only layout) or 3, sealed properly */
	n = forge_v(1, raw, p, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_ERR_FORMAT);
	n = forge_v(3, raw, p, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_ERR_FORMAT);

	/* trailing garbage inside the sealed part */
	raw[p] = 'x';
	n = forge(raw, p + 1, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_ERR_FORMAT);

	/* lengths that overrun */
	raw[11] = 200;
	n = forge(raw, p, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_ERR_FORMAT);
	raw[11] = 1;
	raw[13] = 1;
	n = forge(raw, p, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_ERR_FORMAT);
	raw[13] = 0;

	/* a NUL inside a field */
	raw[9] = '\0';
	n = forge(raw, p, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_ERR_FORMAT);
	raw[9] = 'C';

	/* a route of 33 bytes does not fit route[33] with its NUL */
	p = 13;
	raw[p++] = 33;
	memset(raw + p, 'r', 33);
	p += 33;
	n = forge(raw, p, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_ERR_FORMAT);
	/* 32 does */
	raw[13] = 32;
	n = forge(raw, p - 1, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_OK);

	/* a call_sid of 64 bytes does not fit call_sid[64] */
	p = 8;
	raw[p++] = 64;
	memset(raw + p, 'S', 64);
	p += 64;
	raw[p++] = 0;
	raw[p++] = 0;
	n = forge(raw, p, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_ERR_FORMAT);

	/* too short to hold expires and three lengths, sealed properly */
	n = forge(raw, 10, s);
	ASSERT_EQ(verify(s, (size_t)n, 0), TOKEN_ERR_FORMAT);
}

/* Whether the bytes of needle appear in hay. */
static int
contains(const void *hay, size_t hlen, const char *needle)
{
	return memmem(hay, hlen, needle, strlen(needle)) != NULL;
}

TEST(token_hides_the_call)
{
	struct stream_token in, out;
	char s[TOKEN_MAX_LEN], s2[TOKEN_MAX_LEN];
	unsigned char raw[TOKEN_MAX_LEN];
	size_t rlen;
	int n, n2;

	sample(&in);
	n = make(&in, s);
	n2 = make(&in, s2);
	/* a fresh nonce each time: two tokens of one call differ */
	ASSERT(n == n2 && memcmp(s, s2, (size_t)n) != 0);
	ASSERT_EQ(token_verify(SECRET, s2, (size_t)n2, NOW, &out), TOKEN_OK);
	assert_same(&in, &out);
	/* neither the text nor its decoding shows the number, its last four
	 * digits, the CallSid or the route */
	ASSERT(!contains(s, (size_t)n, "4155552671"));
	ASSERT(!contains(s, (size_t)n, "2671"));
	{
		/* base64url to base64 with padding, for mbedTLS */
		char b[TOKEN_MAX_LEN + 4];
		int i;

		for (i = 0; i < n; i++)
			b[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
		while (i % 4)
			b[i++] = '=';
		ASSERT_EQ(mbedtls_base64_decode(raw, sizeof(raw), &rlen,
		    (unsigned char *)b, (size_t)i), 0);
	}
	ASSERT_EQ(raw[0], 2);
	ASSERT(!contains(raw, rlen, "4155552671"));
	ASSERT(!contains(raw, rlen, "2671"));
	ASSERT(!contains(raw, rlen, "CA1111"));
	ASSERT(!contains(raw, rlen, "practice"));
}

TEST(token_garbage)
{
	struct stream_token in;
	char s[TOKEN_MAX_LEN + 64], bad[TOKEN_MAX_LEN];
	int n, i;
	static const char *junk[] = {
		"", "A", "AA", "AAAA", "hello", "!!!!!!!!", "a b c d",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	};

	for (i = 0; i < (int)(sizeof(junk) / sizeof(junk[0])); i++)
		ASSERT_EQ(verify(junk[i], strlen(junk[i]), NOW),
		    TOKEN_ERR_FORMAT);
	sample(&in);
	n = make(&in, s);
	/* characters from other alphabets, or padding */
	for (i = 0; i < n; i += 5) {
		static const char others[] = "+/=.~%\0 \n";
		size_t k;

		for (k = 0; k < sizeof(others) - 1; k++) {
			memcpy(bad, s, (size_t)n);
			bad[i] = others[k];
			ASSERT_EQ(verify(bad, (size_t)n, NOW), TOKEN_ERR_FORMAT);
		}
	}
	/* a padded copy */
	memcpy(bad, s, (size_t)n);
	bad[n] = '=';
	ASSERT_EQ(verify(bad, (size_t)n + 1, NOW), TOKEN_ERR_FORMAT);
	/* overlong: extra characters after a valid token (the tag no
	 * longer matches, or the length is not base64) */
	for (i = 1; i <= 40; i++) {
		int rc;

		memcpy(bad, s, (size_t)n);
		memset(bad + n, 'A', (size_t)i);
		rc = verify(bad, (size_t)n + (size_t)i, NOW);
		if (rc != TOKEN_ERR_FORMAT && rc != TOKEN_ERR_MAC)
			TEST_FAIL_("%d characters added: %d", i, rc);
	}
	/* far too long */
	memset(bad, 'A', sizeof(bad));
	ASSERT_EQ(verify(bad, sizeof(bad), NOW), TOKEN_ERR_FORMAT);
}

TEST(token_noncanonical_tail)
{
	struct stream_token in;
	char s[TOKEN_MAX_LEN];
	int n;

	/* 1+12+8+1+34+1+12+1+8+16 = 94 bytes: 94 % 3 = 1, so the last
	 * char carries 2 bits and 4 zero bits that must stay zero */
	sample(&in);
	n = make(&in, s);
	ASSERT_EQ(n % 4, 2);
	ASSERT(strchr("AQgw", s[n - 1]) != NULL);
	s[n - 1] = (char)(s[n - 1] + 1);
	ASSERT_EQ(verify(s, (size_t)n, NOW), TOKEN_ERR_FORMAT);
}

TEST(token_every_truncation)
{
	struct stream_token in, out;
	char s[TOKEN_MAX_LEN];
	int n, i, rc;

	sample(&in);
	n = make(&in, s);
	for (i = 0; i < n; i++) {
		/* a copy of exactly i bytes, so a read past it is caught */
		char *c = malloc((size_t)i + 1);

		ASSERT_NOT_NULL(c);
		memcpy(c, s, (size_t)i);
		memset(&out, 0x55, sizeof(out));
		rc = token_verify(SECRET, c, (size_t)i, NOW, &out);
		if (rc != TOKEN_ERR_FORMAT && rc != TOKEN_ERR_MAC)
			TEST_FAIL_("truncated to %d: %d", i, rc);
		/* *t untouched on failure */
		ASSERT_EQ((unsigned char)out.call_sid[0], 0x55);
		free(c);
	}
	/* and every single byte dropped from the middle */
	for (i = 0; i < n; i++) {
		char c[TOKEN_MAX_LEN];

		memcpy(c, s, (size_t)i);
		memcpy(c + i, s + i + 1, (size_t)(n - i - 1));
		rc = verify(c, (size_t)n - 1, NOW);
		if (rc != TOKEN_ERR_FORMAT && rc != TOKEN_ERR_MAC)
			TEST_FAIL_("byte %d dropped: %d", i, rc);
	}
}

TEST(token_strerror_names)
{
	ASSERT_STR_EQ(token_strerror(TOKEN_OK), "ok");
	ASSERT(strstr(token_strerror(TOKEN_ERR_MAC), "MAC") != NULL);
	ASSERT(strstr(token_strerror(TOKEN_ERR_EXPIRED), "expired") != NULL);
	ASSERT_NOT_NULL(token_strerror(TOKEN_ERR_FORMAT));
	ASSERT_NOT_NULL(token_strerror(TOKEN_ERR_TOOLONG));
	ASSERT_NOT_NULL(token_strerror(12345));
}

TEST(token_resumed_stream_carries_its_marker)
{
	struct stream_token in, out;
	char s[TOKEN_MAX_LEN], first[TOKEN_MAX_LEN];

	sample(&in);
	make(&in, first);
	memset(&out, 0, sizeof(out));
	ASSERT_EQ(token_verify(SECRET, first, strlen(first), NOW, &out),
	    TOKEN_OK);
	ASSERT_UEQ(out.resume, 0);
	in.resume = NOW + 140;
	make(&in, s);
	ASSERT_EQ(token_verify(SECRET, s, strlen(s), NOW, &out), TOKEN_OK);
	assert_same(&in, &out);
	/* the longest fields with a resume still fit */
	memset(in.call_sid, 'C', sizeof(in.call_sid) - 1);
	memset(in.caller, '+', sizeof(in.caller) - 1);
	memset(in.route, 'r', sizeof(in.route) - 1);
	in.call_sid[63] = in.caller[63] = in.route[32] = '\0';
	make(&in, s);
	ASSERT_EQ(token_verify(SECRET, s, strlen(s), NOW, &out), TOKEN_OK);
	assert_same(&in, &out);
}

#define SID	"CA11111111111111111111111111111111"

TEST(resume_marker_round_trip_and_binding)
{
	char m[RESUME_MAX_LEN], bad[RESUME_MAX_LEN + 8];
	uint64_t exp = 0;
	int n, ob;

	n = resume_make(SECRET, SID, "desk", 0, NOW + 140, m, sizeof(m));
	ASSERT_GT(n, 0);
	ASSERT_EQ((size_t)n, strlen(m));
	/* short, path- and query-safe, no phone number, no CallSid */
	ASSERT(n < 40);
	ASSERT(strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_.") == (size_t)n);
	ASSERT(strstr(m, "CA1111") == NULL);
	ob = 7;
	ASSERT_EQ(resume_verify(SECRET, SID, "desk", m, (size_t)n, NOW, &exp,
	    &ob), TOKEN_OK);
	ASSERT_UEQ(exp, NOW + 140);
	ASSERT_EQ(ob, 0);
	/* another call, another secret, another line */
	ASSERT_EQ(resume_verify(SECRET, "CA22222222222222222222222222222222",
	    "desk", m, (size_t)n, NOW, &exp, &ob), TOKEN_ERR_MAC);
	ASSERT_EQ(resume_verify("another-secret-0123456", SID, "desk", m,
	    (size_t)n, NOW, &exp, &ob), TOKEN_ERR_MAC);
	ASSERT_EQ(resume_verify(SECRET, SID, "sales", m, (size_t)n, NOW, &exp,
	    &ob), TOKEN_ERR_MAC);
	/* expired, at its second exactly */
	ASSERT_EQ(resume_verify(SECRET, SID, "desk", m, (size_t)n, NOW + 140,
	    &exp, &ob), TOKEN_ERR_EXPIRED);
	/* a later expiry under the same MAC */
	snprintf(bad, sizeof(bad), "%.*s%llu.i", (int)(strchr(m, '.') - m + 1),
	    m, (unsigned long long)NOW + 100000);
	ASSERT_EQ(resume_verify(SECRET, SID, "desk", bad, strlen(bad), NOW,
	    &exp, &ob), TOKEN_ERR_MAC);
	/* the direction is in the MAC: an inbound marker made outbound */
	memcpy(bad, m, (size_t)n + 1);
	ASSERT_EQ(bad[n - 1], 'i');
	bad[n - 1] = 'o';
	ASSERT_EQ(resume_verify(SECRET, SID, "desk", bad, (size_t)n, NOW, &exp,
	    &ob), TOKEN_ERR_MAC);
	/* an outbound call's marker says so */
	n = resume_make(SECRET, SID, "reminder", 1, NOW + 140, m, sizeof(m));
	ASSERT_GT(n, 0);
	ASSERT_EQ(m[n - 1], 'o');
	ASSERT_EQ(resume_verify(SECRET, SID, "reminder", m, (size_t)n, NOW,
	    &exp, &ob), TOKEN_OK);
	ASSERT_EQ(ob, 1);
	bad[0] = '\0';
	memcpy(bad, m, (size_t)n + 1);
	bad[n - 1] = 'i';
	ASSERT_EQ(resume_verify(SECRET, SID, "reminder", bad, (size_t)n, NOW,
	    &exp, &ob), TOKEN_ERR_MAC);
	/* the longest line still fits */
	ASSERT_GT(resume_make(SECRET, SID, "abcdefghijklmnopqrstuvwxyz012345",
	    1, UINT64_MAX, m, sizeof(m)), 0);
}

/* A marker as the first version made them, written out again here. */
static int
resume_v1(char *out, size_t outlen)
{
	static const char label[] = "voxrelay resume marker v1";
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	unsigned char key[32], full[32], b64[64];
	char msg[128];
	size_t olen, j = 0;
	int n;

	n = snprintf(msg, sizeof(msg), "resume|%s|%llu", SID, NOW + 140);
	if (mbedtls_md_hmac(md, (const unsigned char *)SECRET, strlen(SECRET),
	    (const unsigned char *)label, sizeof(label) - 1, key) != 0 ||
	    mbedtls_md_hmac(md, key, sizeof(key), (const unsigned char *)msg,
	    (size_t)n, full) != 0 ||
	    mbedtls_base64_encode(b64, sizeof(b64), &olen, full, 16) != 0)
		return -1;
	for (size_t i = 0; i < olen && b64[i] != '='; i++)
		out[j++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
	return snprintf(out + j, outlen - j, ".%llu", NOW + 140);
}

/* A marker from the daemon before this one (no direction, no line in its
 * MAC): taken as inbound on any line. */
TEST(resume_marker_first_version)
{
	/* made by that version with SECRET, SID and expiry NOW + 140 */
	char m[RESUME_MAX_LEN];
	uint64_t exp = 0;
	int ob = 7;

	ASSERT(resume_v1(m, sizeof(m)) > 0);
	ASSERT_EQ(resume_verify(SECRET, SID, "anything", m, strlen(m), NOW,
	    &exp, &ob), TOKEN_OK);
	ASSERT_UEQ(exp, NOW + 140);
	ASSERT_EQ(ob, 0);
	ASSERT_EQ(resume_verify(SECRET, "CA22222222222222222222222222222222",
	    "anything", m, strlen(m), NOW, &exp, &ob), TOKEN_ERR_MAC);
}

TEST(resume_marker_malformed)
{
	char m[RESUME_MAX_LEN], c[RESUME_MAX_LEN + 8];
	uint64_t exp = 0;
	int n, i, rc, ob;
	static const char *const junk[] = {
		"", ".", "abc", "AAAAAAAAAAAAAAAAAAAAAA.", "AAAAAAAAAAAAAAAAAAAAAA.0",
		"AAAAAAAAAAAAAAAAAAAAAA.01790000140",
		"AAAAAAAAAAAAAAAAAAAAAA.-1", "AAAAAAAAAAAAAAAAAAAAAA.+17",
		"AAAAAAAAAAAAAAAAAAAAAA.99999999999999999999",
		"AAAAAAAAAAAAAAAAAAAAA=.1790000140",
		"AAAAAAAAAAAAAAAAAAAAAB.1790000140",	/* bits left over */
		"AAAAAAAAAAAAAAAAAAAAA.1790000140",
		"AAAAAAAAAAAAAAAAAAAAAA 1790000140",
		"AAAAAAAAAAAAAAAAAAAAAA.1790000140.x",
		"AAAAAAAAAAAAAAAAAAAAAA.1790000140.",
		"AAAAAAAAAAAAAAAAAAAAAA.1790000140.io",
		"AAAAAAAAAAAAAAAAAAAAAA..o",
	};

	for (i = 0; i < (int)(sizeof(junk) / sizeof(junk[0])); i++)
		if (resume_verify(SECRET, SID, "desk", junk[i], strlen(junk[i]),
		    NOW, &exp, &ob) != TOKEN_ERR_FORMAT)
			TEST_FAIL_("accepted as well-formed: \"%s\"", junk[i]);
	n = resume_make(SECRET, SID, "desk", 0, NOW + 140, m, sizeof(m));
	ASSERT_GT(n, 0);
	/* every prefix, and every byte changed, is refused */
	for (i = 0; i < n; i++) {
		rc = resume_verify(SECRET, SID, "desk", m, (size_t)i, NOW,
		    &exp, &ob);
		if (rc == TOKEN_OK)
			TEST_FAIL_("prefix of %d accepted", i);
		memcpy(c, m, (size_t)n + 1);
		c[i] = c[i] == 'A' ? 'B' : 'A';
		rc = resume_verify(SECRET, SID, "desk", c, (size_t)n, NOW,
		    &exp, &ob);
		if (rc == TOKEN_OK)
			TEST_FAIL_("byte %d changed, accepted", i);
	}
	/* too small a buffer, no expiry */
	ASSERT(resume_make(SECRET, SID, "desk", 0, NOW, m, 10) < 0);
	ASSERT(resume_make(SECRET, SID, "desk", 0, 0, m, sizeof(m)) < 0);
}
