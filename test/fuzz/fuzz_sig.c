/*
 * fuzz_sig.c — proto/sig.c: X-Twilio-Signature.
 *
 * Input: NUL-separated parts: auth token, URL, form body, a header, then
 * one byte.  Checked:
 *  - sig_validate() of the header as sent answers 0 or 1 (any URL, any
 *    header, with and without parameters);
 *  - sig_compute() gives 28 base64 characters that sig_validate() accepts;
 *    the same parameters in another order sign the same; one character
 *    changed is refused;
 *  - for an http(s)/ws(s) URL whose authority is a plain host, the
 *    signature made over the form with the default port spelt out is
 *    accepted for the URL without it, and the other way round.
 */
#include "test/fuzz/fuzz.h"

#include <strings.h>

#include "proto/form.h"
#include "proto/sig.h"

FUZZ_TARGET("sig");

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* url with ":port" after a plain host, or NULL when it has no such form. */
static char *
with_port(const char *url)
{
	static const struct { const char *s, *port; } dflt[] = {
		{ "https", "443" }, { "http", "80" },
		{ "wss", "443" }, { "ws", "80" },
	};
	const char *sep = strstr(url, "://"), *auth, *end, *port = NULL;
	char *alt;
	size_t i;

	if (sep == NULL)
		return NULL;
	for (i = 0; i < sizeof(dflt) / sizeof(dflt[0]); i++)
		if ((size_t)(sep - url) == strlen(dflt[i].s) &&
		    strncasecmp(url, dflt[i].s, strlen(dflt[i].s)) == 0)
			port = dflt[i].port;
	if (port == NULL)
		return NULL;
	auth = sep + 3;
	end = auth + strcspn(auth, "/?#");
	if (end == auth)
		return NULL;
	for (const char *p = auth; p < end; p++)
		if (*p == ':' || *p == '@' || *p == '[' || *p == ']')
			return NULL;
	if (asprintf(&alt, "%.*s:%s%s", (int)(end - url), url, port, end) == -1)
		abort();
	return alt;
}

static void
check(const char *token, const char *url, const struct form *params,
    unsigned flip)
{
	char sig[SIG_B64_LEN + 1 + 8], other[SIG_B64_LEN + 1];
	char *alt;
	size_t i;

	memset(sig, 'x', sizeof(sig));
	FUZZ_ASSERT(sig_compute(token, url, params, sig) == 0);
	FUZZ_ASSERT(strlen(sig) == SIG_B64_LEN && sig[SIG_B64_LEN + 1] == 'x');
	for (i = 0; i < SIG_B64_LEN - 1; i++)
		FUZZ_ASSERT(strchr(b64, sig[i]) != NULL);
	FUZZ_ASSERT(sig[SIG_B64_LEN - 1] == '=');
	FUZZ_ASSERT(sig_validate(token, url, params, sig) == 1);

	/* one character changed */
	memcpy(other, sig, sizeof(other));
	i = flip % SIG_B64_LEN;
	other[i] = other[i] == 'A' ? 'B' : 'A';
	FUZZ_ASSERT(sig_validate(token, url, params, other) == 0);
	other[i] = '\0';
	FUZZ_ASSERT(sig_validate(token, url, params, other) == 0);

	if ((alt = with_port(url)) != NULL) {
		FUZZ_ASSERT(sig_compute(token, alt, params, other) == 0);
		FUZZ_ASSERT(sig_validate(token, url, params, other) == 1);
		FUZZ_ASSERT(sig_validate(token, alt, params, sig) == 1);
		free(alt);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct form f;
	struct form_pair tmp;
	char *token, *url, *body, *header;
	char s1[SIG_B64_LEN + 1], s2[SIG_B64_LEN + 1];
	size_t blen;
	unsigned flip;
	int have;

	token = fuzz_part(&in, NULL);
	url = fuzz_part(&in, NULL);
	body = fuzz_part(&in, &blen);
	header = fuzz_part(&in, NULL);
	flip = fuzz_u8(&in);
	have = form_parse(&f, body, blen) == 0;

	FUZZ_ASSERT(sig_validate(token, url, NULL, header) <= 1);
	if (have) {
		FUZZ_ASSERT(sig_validate(token, url, &f, header) <= 1);
		check(token, url, &f, flip);
		/* the order of the parameters does not matter */
		FUZZ_ASSERT(sig_compute(token, url, &f, s1) == 0);
		for (size_t i = 0; i < f.n / 2; i++) {
			tmp = f.v[i];
			f.v[i] = f.v[f.n - 1 - i];
			f.v[f.n - 1 - i] = tmp;
		}
		FUZZ_ASSERT(sig_compute(token, url, &f, s2) == 0);
		FUZZ_ASSERT(strcmp(s1, s2) == 0);
		form_free(&f);
	} else
		check(token, url, NULL, flip);
	free(token);
	free(url);
	free(body);
	free(header);
	return 0;
}
