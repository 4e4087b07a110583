/*
 * token.c — the stream token carried in the <Stream> URL path.
 *
 * Layout and encoding are in token.h.  token_verify() checks the sizes,
 * then the AEAD tag (constant time), and only then parses the plaintext,
 * with every length checked against what is left, and looks at the
 * expiry: an attacker learns nothing about the call or its expiry from a
 * token he could not have made.
 */
#include "proto/token.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "daemon/common/util.h"

#define TOKEN_VERSION	2
#define TOKEN_NONCE_LEN	12
#define TOKEN_TAG_LEN	16
/* expires, three length bytes, the fields at their longest */
#define TOKEN_PLAIN_MAX	(8 + 3 + (64 - 1) + (64 - 1) + (33 - 1) + 8)
#define TOKEN_RAW_MAX	(1 + TOKEN_NONCE_LEN + TOKEN_PLAIN_MAX + TOKEN_TAG_LEN)
#define TOKEN_RAW_MIN	(1 + TOKEN_NONCE_LEN + 8 + 3 + TOKEN_TAG_LEN)

/* what the key is for: a secret used elsewhere never gives this key */
static const char key_label[] = "voxrelay stream token v2";

_Static_assert((TOKEN_RAW_MAX + 2) / 3 * 4 < TOKEN_MAX_LEN,
    "TOKEN_MAX_LEN too small for the longest token");

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of a base64url character, or -1. */
static int
b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Encode in[0..len) without padding into out, NUL-terminated; out has
 * room for (len * 4 + 2) / 3 + 1 bytes.  Returns the encoded length. */
static size_t
b64url_encode(const unsigned char *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	if (len - i == 1) {
		out[o++] = b64url[in[i] >> 2];
		out[o++] = b64url[(in[i] & 3) << 4];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
		out[o++] = b64url[v >> 10 & 63];
		out[o++] = b64url[v >> 4 & 63];
		out[o++] = b64url[(v & 15) << 2];
	}
	out[o] = '\0';
	return o;
}

/*
 * Decode s[0..len) into out (len * 3 / 4 bytes).  Rejects characters
 * outside the alphabet, padding, a length of 4k+1, and bits left over in
 * the last character (so each byte string has one encoding only).
 * Returns the decoded length, or -1.
 */
static long
b64url_decode(const char *s, size_t len, unsigned char *out)
{
	uint32_t acc = 0;
	size_t i, o = 0;
	int bits = 0;

	if (len % 4 == 1)
		return -1;
	for (i = 0; i < len; i++) {
		int v = b64url_val((unsigned char)s[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return -1;
	return (long)o;
}

/* The AEAD key: HMAC-SHA256(secret, key_label).  0 or -1. */
static int
token_key(const char *secret, unsigned char key[32])
{
	const mbedtls_md_info_t *info;

	info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	if (info == NULL || mbedtls_md_hmac(info,
	    (const unsigned char *)secret, strlen(secret),
	    (const unsigned char *)key_label, sizeof(key_label) - 1, key) != 0)
		return -1;
	return 0;
}

/* Append a length byte and the string s (at most size - 1 bytes). */
static int
put_field(unsigned char *raw, size_t *pos, const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == size)
		return -1;
	raw[(*pos)++] = (unsigned char)n;
	memcpy(raw + *pos, s, n);
	*pos += n;
	return 0;
}

int
token_make(const char *secret, const struct stream_token *t, char *out,
    size_t outlen)
{
	unsigned char raw[TOKEN_RAW_MAX], plain[TOKEN_PLAIN_MAX], key[32];
	mbedtls_chachapoly_context ctx;
	size_t pos = 0, plen = 0, enc;
	int i, rc;

	for (i = 7; i >= 0; i--)
		plain[plen++] = (unsigned char)(t->expires >> (i * 8));
	if (put_field(plain, &plen, t->call_sid, sizeof(t->call_sid)) != 0 ||
	    put_field(plain, &plen, t->caller, sizeof(t->caller)) != 0 ||
	    put_field(plain, &plen, t->route, sizeof(t->route)) != 0)
		return TOKEN_ERR_TOOLONG;
	if (t->resume != 0)
		for (i = 7; i >= 0; i--)
			plain[plen++] = (unsigned char)(t->resume >> (i * 8));
	pos = 1 + TOKEN_NONCE_LEN + plen + TOKEN_TAG_LEN;
	enc = (pos * 4 + 2) / 3;
	if (outlen < enc + 1)
		return TOKEN_ERR_TOOLONG;
	raw[0] = TOKEN_VERSION;
	/* a fresh nonce per token: the key never changes while the secret
	 * does not, so a repeated nonce would leak both plaintexts */
	if (random_bytes(raw + 1, TOKEN_NONCE_LEN) != 0 ||
	    token_key(secret, key) != 0)
		return TOKEN_ERR_FORMAT;
	mbedtls_chachapoly_init(&ctx);
	rc = mbedtls_chachapoly_setkey(&ctx, key) != 0 ||
	    mbedtls_chachapoly_encrypt_and_tag(&ctx, plen, raw + 1, raw, 1,
	    plain, raw + 1 + TOKEN_NONCE_LEN, raw + 1 + TOKEN_NONCE_LEN + plen)
	    != 0;
	mbedtls_chachapoly_free(&ctx);
	mbedtls_platform_zeroize(key, sizeof(key));
	mbedtls_platform_zeroize(plain, sizeof(plain));
	if (rc)
		return TOKEN_ERR_FORMAT;
	return (int)b64url_encode(raw, pos, out);
}

/* Read a length byte and that many bytes from raw[*pos..end) into dst
 * (size bytes, NUL included).  A NUL inside the field is refused. */
static int
get_field(const unsigned char *raw, size_t *pos, size_t end, char *dst,
    size_t size)
{
	size_t n;

	if (*pos >= end)
		return -1;
	n = raw[(*pos)++];
	if (n >= size || n > end - *pos || memchr(raw + *pos, '\0', n))
		return -1;
	memcpy(dst, raw + *pos, n);
	dst[n] = '\0';
	*pos += n;
	return 0;
}

int
token_verify(const char *secret, const char *s, size_t len,
    uint64_t now_s, struct stream_token *t)
{
	unsigned char raw[TOKEN_RAW_MAX + 3], plain[TOKEN_PLAIN_MAX], key[32];
	mbedtls_chachapoly_context ctx;
	struct stream_token tok;
	size_t pos = 0, plen;
	long n;
	int i, rc;

	/* longer than the longest valid token: do not even decode it */
	if (len == 0 || len > (TOKEN_RAW_MAX + 2) / 3 * 4)
		return TOKEN_ERR_FORMAT;
	if ((n = b64url_decode(s, len, raw)) < TOKEN_RAW_MIN ||
	    n > TOKEN_RAW_MAX || raw[0] != TOKEN_VERSION)
		return TOKEN_ERR_FORMAT;
	plen = (size_t)n - 1 - TOKEN_NONCE_LEN - TOKEN_TAG_LEN;
	if (token_key(secret, key) != 0)
		return TOKEN_ERR_FORMAT;
	/* the tag first (in constant time, inside mbedTLS): nothing of the
	 * plaintext is looked at before it is known to be ours */
	mbedtls_chachapoly_init(&ctx);
	rc = mbedtls_chachapoly_setkey(&ctx, key);
	if (rc == 0)
		rc = mbedtls_chachapoly_auth_decrypt(&ctx, plen, raw + 1, raw, 1,
		    raw + 1 + TOKEN_NONCE_LEN + plen, raw + 1 + TOKEN_NONCE_LEN,
		    plain);
	mbedtls_chachapoly_free(&ctx);
	mbedtls_platform_zeroize(key, sizeof(key));
	if (rc != 0)
		return rc == MBEDTLS_ERR_CHACHAPOLY_AUTH_FAILED ? TOKEN_ERR_MAC :
		    TOKEN_ERR_FORMAT;
	memset(&tok, 0, sizeof(tok));
	for (i = 0; i < 8; i++)
		tok.expires = tok.expires << 8 | plain[pos++];
	rc = get_field(plain, &pos, plen, tok.call_sid, sizeof(tok.call_sid)) ||
	    get_field(plain, &pos, plen, tok.caller, sizeof(tok.caller)) ||
	    get_field(plain, &pos, plen, tok.route, sizeof(tok.route));
	/* a resumed stream's token: one encoding only, never a zero */
	if (rc == 0 && plen - pos == 8) {
		for (i = 0; i < 8; i++)
			tok.resume = tok.resume << 8 | plain[pos++];
		rc = tok.resume == 0;
	}
	rc = rc || pos != plen;
	mbedtls_platform_zeroize(plain, sizeof(plain));
	if (rc)
		return TOKEN_ERR_FORMAT;
	*t = tok;
	return now_s >= tok.expires ? TOKEN_ERR_EXPIRED : TOKEN_OK;
}

const char *
token_strerror(int err)
{
	switch (err) {
	case TOKEN_OK:
		return "ok";
	case TOKEN_ERR_FORMAT:
		return "malformed token";
	case TOKEN_ERR_MAC:
		return "bad token MAC";
	case TOKEN_ERR_EXPIRED:
		return "token expired";
	case TOKEN_ERR_TOOLONG:
		return "token field too long";
	default:
		return "unknown token error";
	}
}

/* ---------------------------------------------------------------- */
/* the resume marker */

static const char resume_label_v1[] = "voxrelay resume marker v1";
static const char resume_label[] = "voxrelay resume marker v2";

#define RESUME_MAC_LEN	16

/* dir: 'i' or 'o' (and line) for a marker of this version, 0 for one of
 * the first (neither in its MAC) */
static int
resume_mac(const char *secret, const char *call_sid, const char *line,
    int dir, uint64_t expires, unsigned char mac[RESUME_MAC_LEN])
{
	const mbedtls_md_info_t *info;
	const char *label = dir ? resume_label : resume_label_v1;
	unsigned char key[32], full[32];
	char msg[192];
	int n, rc;

	info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	if (dir)
		n = snprintf(msg, sizeof(msg), "resume|%s|%llu|%c|%s", call_sid,
		    (unsigned long long)expires, dir, line);
	else
		n = snprintf(msg, sizeof(msg), "resume|%s|%llu", call_sid,
		    (unsigned long long)expires);
	if (info == NULL || n < 0 || (size_t)n >= sizeof(msg))
		return -1;
	rc = mbedtls_md_hmac(info, (const unsigned char *)secret,
	    strlen(secret), (const unsigned char *)label, strlen(label),
	    key) != 0 ||
	    mbedtls_md_hmac(info, key, sizeof(key), (const unsigned char *)msg,
	    (size_t)n, full) != 0;
	mbedtls_platform_zeroize(key, sizeof(key));
	memcpy(mac, full, RESUME_MAC_LEN);
	return rc ? -1 : 0;
}

int
resume_make(const char *secret, const char *call_sid, const char *line,
    int outbound, uint64_t expires, char *out, size_t outlen)
{
	unsigned char mac[RESUME_MAC_LEN];
	int dir = outbound ? 'o' : 'i';
	size_t n;
	int m;

	if (expires == 0 || strlen(call_sid) >= 64 || strlen(line) >= 64)
		return TOKEN_ERR_TOOLONG;
	if (outlen < RESUME_MAX_LEN)
		return TOKEN_ERR_TOOLONG;
	if (resume_mac(secret, call_sid, line, dir, expires, mac) != 0)
		return TOKEN_ERR_FORMAT;
	n = b64url_encode(mac, sizeof(mac), out);
	m = snprintf(out + n, outlen - n, ".%llu.%c", (unsigned long long)expires,
	    dir);
	if (m < 0 || (size_t)m >= outlen - n)
		return TOKEN_ERR_TOOLONG;
	return (int)(n + (size_t)m);
}

int
resume_verify(const char *secret, const char *call_sid, const char *line,
    const char *s, size_t len, uint64_t now_s, uint64_t *expires,
    int *outbound)
{
	unsigned char got[RESUME_MAC_LEN + 3], want[RESUME_MAC_LEN];
	const size_t enc = (RESUME_MAC_LEN * 4 + 2) / 3;
	uint64_t exp = 0;
	size_t i, end = len;
	int dir = 0;

	/* this version's ".i" or ".o" at the end; none in the first's */
	if (len >= 2 && s[len - 2] == '.') {
		if (s[len - 1] != 'i' && s[len - 1] != 'o')
			return TOKEN_ERR_FORMAT;
		dir = s[len - 1];
		end = len - 2;
	}
	/* MAC "." 1 to 20 digits, no sign, no leading zero */
	if (end < enc + 2 || end > enc + 21 || s[enc] != '.' ||
	    s[enc + 1] == '0')
		return TOKEN_ERR_FORMAT;
	for (i = enc + 1; i < end; i++) {
		if (s[i] < '0' || s[i] > '9' ||
		    exp > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return TOKEN_ERR_FORMAT;
		exp = exp * 10 + (uint64_t)(s[i] - '0');
	}
	if (b64url_decode(s, enc, got) != RESUME_MAC_LEN ||
	    strlen(call_sid) >= 64 || strlen(line) >= 64 ||
	    resume_mac(secret, call_sid, line, dir, exp, want) != 0)
		return TOKEN_ERR_FORMAT;
	if (!ct_equal(got, RESUME_MAC_LEN, want, RESUME_MAC_LEN))
		return TOKEN_ERR_MAC;
	*expires = exp;
	*outbound = dir == 'o';
	return now_s >= exp ? TOKEN_ERR_EXPIRED : TOKEN_OK;
}
