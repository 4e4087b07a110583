/*
 * sig.c — Twilio request signatures (X-Twilio-Signature), protocols.md §5.
 *
 * The string to sign is never built: the URL and the sorted parameters are
 * fed to the HMAC piece by piece, so the variants with and without the
 * default port share one sort.
 */
#include "proto/sig.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>

#include "daemon/common/util.h"

#define SIG_DIGEST_LEN	20
/* longest port we insert, with its colon */
#define SIG_PORT_MAX	4

static int
bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Byte order on names, then on values (§5.1 step 2). */
static int
pair_cmp(const void *a, const void *b)
{
	const struct form_pair *x = *(const struct form_pair *const *)a;
	const struct form_pair *y = *(const struct form_pair *const *)b;
	int c = bytes_cmp(x->name, x->name_len, y->name, y->name_len);

	return c ? c : bytes_cmp(x->value, x->value_len, y->value,
	    y->value_len);
}

static int
pair_same(const struct form_pair *x, const struct form_pair *y)
{
	return bytes_cmp(x->name, x->name_len, y->name, y->name_len) == 0 &&
	    bytes_cmp(x->value, x->value_len, y->value, y->value_len) == 0;
}

/*
 * Sorted pointers to the pairs of params, with exact (name, value)
 * duplicates dropped: Twilio signs each distinct value of a repeated name
 * once.  *out is NULL when there are none.  0 or -1 (out of memory).
 */
static int
sig_sort(const struct form *params, const struct form_pair ***out,
    size_t *n)
{
	const struct form_pair **v;
	size_t i, k;

	*out = NULL;
	*n = 0;
	if (params == NULL || params->n == 0)
		return 0;
	if ((v = calloc(params->n, sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i < params->n; i++)
		v[i] = &params->v[i];
	qsort(v, params->n, sizeof(*v), pair_cmp);
	for (i = 1, k = 1; i < params->n; i++)
		if (!pair_same(v[k - 1], v[i]))
			v[k++] = v[i];
	*out = v;
	*n = k;
	return 0;
}

/* HMAC-SHA1 of url[0..url_len) followed by the pairs, base64 into out. */
static int
sig_b64(const char *key, const char *url, size_t url_len,
    const struct form_pair **v, size_t n, char *out)
{
	const mbedtls_md_info_t *info;
	mbedtls_md_context_t md;
	unsigned char dig[SIG_DIGEST_LEN];
	size_t i, olen;
	int rc = -1;

	mbedtls_md_init(&md);
	info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
	if (info == NULL || mbedtls_md_setup(&md, info, 1) != 0)
		goto fail;
	if (mbedtls_md_hmac_starts(&md, (const unsigned char *)key,
	    strlen(key)) != 0 ||
	    mbedtls_md_hmac_update(&md, (const unsigned char *)url,
	    url_len) != 0)
		goto fail;
	for (i = 0; i < n; i++)
		if (mbedtls_md_hmac_update(&md,
		    (const unsigned char *)v[i]->name, v[i]->name_len) != 0 ||
		    mbedtls_md_hmac_update(&md,
		    (const unsigned char *)v[i]->value, v[i]->value_len) != 0)
			goto fail;
	if (mbedtls_md_hmac_finish(&md, dig) != 0)
		goto fail;
	if (mbedtls_base64_encode((unsigned char *)out, SIG_B64_LEN + 1,
	    &olen, dig, sizeof(dig)) != 0 || olen != SIG_B64_LEN)
		goto fail;
	rc = 0;
fail:
	mbedtls_md_free(&md);
	return rc;
}

int
sig_compute(const char *auth_token, const char *url,
    const struct form *params, char *out)
{
	const struct form_pair **v;
	size_t n;
	int rc;

	if (sig_sort(params, &v, &n) != 0)
		return -1;
	rc = sig_b64(auth_token, url, strlen(url), v, n, out);
	free(v);
	return rc;
}

/*
 * Write into alt (strlen(url) + SIG_PORT_MAX + 1 bytes) the other form of
 * url: without the port when it names the scheme's default one, with it
 * when it has none.  Returns 1 if there is such a variant, 0 if not (an
 * unknown scheme, another port, a malformed authority).
 */
static int
sig_port_variant(const char *url, char *alt)
{
	static const struct { const char *scheme, *port; } dflt[] = {
		{ "https", "443" }, { "http", "80" },
		{ "wss", "443" }, { "ws", "80" },
	};
	const char *sep = strstr(url, "://"), *auth, *end, *host, *colon, *at;
	const char *port = NULL;
	size_t i, plen;

	if (sep == NULL)
		return 0;
	for (i = 0; i < ARRAY_LEN(dflt); i++)
		if ((size_t)(sep - url) == strlen(dflt[i].scheme) &&
		    strncasecmp(url, dflt[i].scheme, (size_t)(sep - url)) == 0)
			port = dflt[i].port;
	if (port == NULL)
		return 0;
	auth = sep + 3;
	end = auth + strcspn(auth, "/?#");
	/* userinfo may hold a colon of its own; the host follows the last @ */
	if ((at = memrchr(auth, '@', (size_t)(end - auth))) != NULL)
		auth = at + 1;
	host = auth;
	if (*host == '[') {
		/* an IPv6 literal: the port, if any, follows the bracket */
		const char *rb = memchr(host, ']', (size_t)(end - host));
		if (rb == NULL || (rb + 1 != end && rb[1] != ':'))
			return 0;
		host = rb + 1;
	} else if (host == end)
		return 0;
	colon = memchr(host, ':', (size_t)(end - host));
	plen = strlen(port);
	if (colon == NULL) {
		/* no port: insert the default one at the end of the authority */
		memcpy(alt, url, (size_t)(end - url));
		alt[end - url] = ':';
		memcpy(alt + (end - url) + 1, port, plen);
		strcpy(alt + (end - url) + 1 + plen, end);
		return 1;
	}
	if ((size_t)(end - colon - 1) != plen ||
	    memcmp(colon + 1, port, plen) != 0)
		return 0;
	/* the default port, spelt out: drop it */
	memcpy(alt, url, (size_t)(colon - url));
	strcpy(alt + (colon - url), end);
	return 1;
}

int
sig_validate(const char *auth_token, const char *url,
    const struct form *params, const char *header)
{
	const struct form_pair **v = NULL;
	char want[SIG_B64_LEN + 1], *alt = NULL;
	size_t n;
	int ok = 0, match;

	if (auth_token == NULL || url == NULL || header == NULL ||
	    strlen(header) != SIG_B64_LEN)
		return 0;
	if (sig_sort(params, &v, &n) != 0)
		goto fail;
	if (sig_b64(auth_token, url, strlen(url), v, n, want) != 0)
		goto fail;
	match = ct_equal(want, SIG_B64_LEN, header, SIG_B64_LEN);
	if ((alt = malloc(strlen(url) + SIG_PORT_MAX + 1)) == NULL)
		goto fail;
	if (sig_port_variant(url, alt)) {
		if (sig_b64(auth_token, alt, strlen(alt), v, n, want) != 0)
			goto fail;
		match |= ct_equal(want, SIG_B64_LEN, header, SIG_B64_LEN);
	}
	ok = match;
fail:
	free(alt);
	free(v);
	return ok;
}
