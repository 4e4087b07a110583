/*
 * test_sig.c — X-Twilio-Signature, with the vectors of protocols.md §5.4.
 * Extra expected values were computed independently with Python's hmac.
 */
#include "test/unit/test.h"

#include <mbedtls/sha256.h>

#include "proto/form.h"
#include "proto/sig.h"

#define TOKEN	"12345"
#define URL1	"https://example.com/voice/incoming"
#define SIG1	"J9AZk7iNaXPV0fUUq/wviJgkTak="
#define SIG1_443 "I/OsQYtAnEscKFlq3tQt9k1Jv1E="
#define SIG1_HTTP "drw/Qe7egYl/vwPEujnNAKQkM6I="
#define SIG1_QUERY "BxI4y/EpFpHzseTWmBlgFnRc7lg="

/* Vector 1's parameters, in the order Twilio sends them. */
static const char body1[] =
    "AccountSid=AC00000000000000000000000000000000&ApiVersion=2010-04-01"
    "&CallSid=CA11111111111111111111111111111111&CallStatus=ringing"
    "&Called=%2B15005550006&Caller=%2B14155552671&Direction=inbound"
    "&From=%2B14155552671&To=%2B15005550006";

/* The same, shuffled: the signature must not depend on arrival order. */
static const char body1_shuffled[] =
    "To=%2B15005550006&Caller=%2B14155552671&CallStatus=ringing"
    "&From=%2B14155552671&AccountSid=AC00000000000000000000000000000000"
    "&Direction=inbound&Called=%2B15005550006"
    "&CallSid=CA11111111111111111111111111111111&ApiVersion=2010-04-01";

static void
form_of(struct form *f, const char *body)
{
	ASSERT_EQ(form_parse(f, body, strlen(body)), 0);
}

static void
assert_sig(const char *url, const char *body, const char *want)
{
	char out[SIG_B64_LEN + 1];
	struct form f;

	form_of(&f, body);
	ASSERT_EQ(sig_compute(TOKEN, url, &f, out), 0);
	ASSERT_STR_EQ(out, want);
	form_free(&f);
}

static int
valid(const char *url, const char *body, const char *header)
{
	struct form f;
	int ok;

	form_of(&f, body);
	ok = sig_validate(TOKEN, url, &f, header);
	form_free(&f);
	return ok;
}

TEST(sig_vector1_compute)
{
	assert_sig(URL1, body1, SIG1);
	assert_sig(URL1, body1_shuffled, SIG1);
	assert_sig("https://example.com:443/voice/incoming", body1, SIG1_443);
	assert_sig("http://example.com/voice/incoming", body1, SIG1_HTTP);
	assert_sig(URL1 "?tenant=acme&lang=en", body1, SIG1_QUERY);
}

TEST(sig_vector1_validate)
{
	ASSERT_EQ(valid(URL1, body1, SIG1), 1);
	ASSERT_EQ(valid(URL1, body1_shuffled, SIG1), 1);
	ASSERT_EQ(valid(URL1 "?tenant=acme&lang=en", body1, SIG1_QUERY), 1);
	ASSERT_EQ(valid(URL1, body1, SIG1_QUERY), 0);
	ASSERT_EQ(valid(URL1 "?tenant=acme&lang=en", body1, SIG1), 0);
}

/* Twilio may sign either form: both must be accepted, whichever we have. */
TEST(sig_vector1_default_port_both_ways)
{
	/* configured with :443, Twilio signed without it */
	ASSERT_EQ(valid("https://example.com:443/voice/incoming", body1, SIG1),
	    1);
	/* configured without, Twilio signed with :443 */
	ASSERT_EQ(valid(URL1, body1, SIG1_443), 1);
	ASSERT_EQ(valid("https://example.com:443/voice/incoming", body1,
	    SIG1_443), 1);
	/* the port goes before the query, not after it */
	ASSERT_EQ(valid("https://example.com:443/voice/incoming?tenant=acme"
	    "&lang=en", body1, SIG1_QUERY), 1);
}

TEST(sig_vector1_scheme_matters)
{
	ASSERT_EQ(valid("http://example.com/voice/incoming", body1, SIG1), 0);
	ASSERT_EQ(valid(URL1, body1, SIG1_HTTP), 0);
	ASSERT_EQ(valid("http://example.com/voice/incoming", body1,
	    SIG1_HTTP), 1);
	/* :80 is http's default, so the port-less signature still matches */
	ASSERT_EQ(valid("http://example.com:80/voice/incoming", body1,
	    SIG1_HTTP), 1);
	/* but :443 is not http's default, and :80 not https's */
	ASSERT_EQ(valid("http://example.com:443/voice/incoming", body1,
	    SIG1_HTTP), 0);
	ASSERT_EQ(valid("https://example.com:80/voice/incoming", body1,
	    SIG1), 0);
}

TEST(sig_other_ports_never_tried)
{
	ASSERT_EQ(valid("https://example.com:8443/voice/incoming", body1,
	    SIG1), 0);
	ASSERT_EQ(valid("https://example.com:4430/voice/incoming", body1,
	    SIG1), 0);
	ASSERT_EQ(valid("https://example.com:0443/voice/incoming", body1,
	    SIG1), 0);
	ASSERT_EQ(valid("https://example.com:/voice/incoming", body1,
	    SIG1), 0);
}

TEST(sig_vector2_websocket)
{
	char out[SIG_B64_LEN + 1];
	struct form empty = { 0 };

	ASSERT_EQ(sig_compute(TOKEN, "wss://example.com/media-stream", NULL,
	    out), 0);
	ASSERT_STR_EQ(out, "XFfwGS2Ev7f9qAP9MmRoMS7C724=");
	ASSERT_EQ(sig_compute(TOKEN, "wss://example.com/media-stream", &empty,
	    out), 0);
	ASSERT_STR_EQ(out, "XFfwGS2Ev7f9qAP9MmRoMS7C724=");
	ASSERT_EQ(sig_validate(TOKEN, "wss://example.com/media-stream", NULL,
	    "XFfwGS2Ev7f9qAP9MmRoMS7C724="), 1);
	ASSERT_EQ(sig_validate(TOKEN, "wss://example.com:443/media-stream",
	    NULL, "XFfwGS2Ev7f9qAP9MmRoMS7C724="), 1);
	ASSERT_EQ(sig_validate(TOKEN, "ws://example.com/media-stream", NULL,
	    "XFfwGS2Ev7f9qAP9MmRoMS7C724="), 0);
	ASSERT_EQ(sig_validate(TOKEN, "wss://example.com/media-stream2",
	    NULL, "XFfwGS2Ev7f9qAP9MmRoMS7C724="), 0);
}

TEST(sig_ws_default_port)
{
	ASSERT_EQ(sig_validate(TOKEN, "ws://example.com/m", NULL,
	    "Cp/dDXNkfrWhYe96Y5B2bJTa0lw="), 1);
	ASSERT_EQ(sig_validate(TOKEN, "ws://example.com/m", NULL,
	    "Dal/TeBocGHkTYjzgadkg8QnmXw="), 1);
	ASSERT_EQ(sig_validate(TOKEN, "ws://example.com:80/m", NULL,
	    "Cp/dDXNkfrWhYe96Y5B2bJTa0lw="), 1);
}

TEST(sig_vector3_json_body)
{
	static const char body[] = "{\"event\":\"test\",\"value\":42}";
	static const char hex[] =
	    "cf6e8aaf6b038b50fd3f440054aa712a8d8adf1569a25ffa5e084c423cbd29fc";
	const char *url = "https://example.com/hooks/json?bodySHA256="
	    "cf6e8aaf6b038b50fd3f440054aa712a8d8adf1569a25ffa5e084c423cbd29fc";
	unsigned char dig[32];
	char got[65], out[SIG_B64_LEN + 1];
	size_t i;

	/* the vector's own consistency: bodySHA256 is the body's digest */
	ASSERT_EQ(mbedtls_sha256_ret((const unsigned char *)body,
	    sizeof(body) - 1, dig, 0), 0);
	for (i = 0; i < sizeof(dig); i++)
		snprintf(got + 2 * i, 3, "%02x", dig[i]);
	ASSERT_STR_EQ(got, hex);

	ASSERT_EQ(sig_compute(TOKEN, url, NULL, out), 0);
	ASSERT_STR_EQ(out, "t8ddLD0mLoo/IEIpj9UOWk9tz64=");
	ASSERT_EQ(sig_validate(TOKEN, url, NULL,
	    "t8ddLD0mLoo/IEIpj9UOWk9tz64="), 1);
}

TEST(sig_tampering_rejected)
{
	/* a changed value */
	ASSERT_EQ(valid(URL1, "AccountSid=AC00000000000000000000000000000000"
	    "&ApiVersion=2010-04-01&CallSid=CA11111111111111111111111111111111"
	    "&CallStatus=completed&Called=%2B15005550006"
	    "&Caller=%2B14155552671&Direction=inbound&From=%2B14155552671"
	    "&To=%2B15005550006", SIG1), 0);
	/* an added parameter, even with an empty value */
	ASSERT_EQ(valid(URL1, "Extra=1&" "AccountSid=AC0000000000000000000000"
	    "0000000000&ApiVersion=2010-04-01"
	    "&CallSid=CA11111111111111111111111111111111&CallStatus=ringing"
	    "&Called=%2B15005550006&Caller=%2B14155552671&Direction=inbound"
	    "&From=%2B14155552671&To=%2B15005550006", SIG1), 0);
	ASSERT_EQ(valid(URL1, "Extra&AccountSid=AC000000000000000000000000000"
	    "00000&ApiVersion=2010-04-01"
	    "&CallSid=CA11111111111111111111111111111111&CallStatus=ringing"
	    "&Called=%2B15005550006&Caller=%2B14155552671&Direction=inbound"
	    "&From=%2B14155552671&To=%2B15005550006", SIG1), 0);
	/* a name whose case changed */
	ASSERT_EQ(valid(URL1, "AccountSid=AC00000000000000000000000000000000"
	    "&ApiVersion=2010-04-01&Callsid=CA11111111111111111111111111111111"
	    "&CallStatus=ringing&Called=%2B15005550006&Caller=%2B14155552671"
	    "&Direction=inbound&From=%2B14155552671&To=%2B15005550006",
	    SIG1), 0);
	/* a value whose case changed */
	ASSERT_EQ(valid(URL1, "AccountSid=AC00000000000000000000000000000000"
	    "&ApiVersion=2010-04-01&CallSid=CA11111111111111111111111111111111"
	    "&CallStatus=Ringing&Called=%2B15005550006&Caller=%2B14155552671"
	    "&Direction=inbound&From=%2B14155552671&To=%2B15005550006",
	    SIG1), 0);
	/* '+' left undecoded would be a space: From=+1415... is " 1415..." */
	ASSERT_EQ(valid(URL1, "AccountSid=AC00000000000000000000000000000000"
	    "&ApiVersion=2010-04-01&CallSid=CA11111111111111111111111111111111"
	    "&CallStatus=ringing&Called=%2B15005550006&Caller=%2B14155552671"
	    "&Direction=inbound&From=+14155552671&To=%2B15005550006",
	    SIG1), 0);
	/* the URL's case, path and trailing slash */
	ASSERT_EQ(valid("https://Example.com/voice/incoming", body1, SIG1), 0);
	ASSERT_EQ(valid("https://example.com/voice/Incoming", body1, SIG1), 0);
	ASSERT_EQ(valid(URL1 "/", body1, SIG1), 0);
	/* another auth token */
	{
		struct form f;
		form_of(&f, body1);
		ASSERT_EQ(sig_validate("54321", URL1, &f, SIG1), 0);
		form_free(&f);
	}
}

TEST(sig_header_malformed)
{
	ASSERT_EQ(valid(URL1, body1, NULL), 0);
	ASSERT_EQ(valid(URL1, body1, ""), 0);
	ASSERT_EQ(valid(URL1, body1, "J9AZk7iNaXPV0fUUq/wviJgkTak"), 0);
	ASSERT_EQ(valid(URL1, body1, "J9AZk7iNaXPV0fUUq/wviJgkTak=="), 0);
	ASSERT_EQ(valid(URL1, body1, " J9AZk7iNaXPV0fUUq/wviJgkTak="), 0);
	ASSERT_EQ(valid(URL1, body1, "j9AZk7iNaXPV0fUUq/wviJgkTak="), 0);
	ASSERT_EQ(valid(URL1, body1, "J9AZk7iNaXPV0fUUq/wviJgkTaK="), 0);
}

/* §5.1 step 2: each distinct value once, values sorted, names in byte
 * order; empty values still contribute their name. */
TEST(sig_repeated_names)
{
	/* "...A1A2Bx" */
	assert_sig(URL1, "A=1&A=2&B=x", "oOfwiifwKe42Y3yoxkpLpeR7H5k=");
	assert_sig(URL1, "B=x&A=2&A=1", "oOfwiifwKe42Y3yoxkpLpeR7H5k=");
	assert_sig(URL1, "A=2&B=x&A=1&A=2", "oOfwiifwKe42Y3yoxkpLpeR7H5k=");
	/* "...A1": a repeated identical pair counts once */
	assert_sig(URL1, "A=1&A=1", "6OLPfhYZJd6Fie/8E4qlypdD7ng=");
	assert_sig(URL1, "A=1", "6OLPfhYZJd6Fie/8E4qlypdD7ng=");
	/* "...AB1" */
	assert_sig(URL1, "B=1&A=", "pNlZUINRa1tTRvU8+sQeIPW3z4M=");
	assert_sig(URL1, "A&B=1", "pNlZUINRa1tTRvU8+sQeIPW3z4M=");
	ASSERT_EQ(valid(URL1, "A=2&A=1&B=x", "oOfwiifwKe42Y3yoxkpLpeR7H5k="),
	    1);
}

TEST(sig_url_shapes)
{
	/* userinfo with a colon in it: the port is looked for after the @ */
	ASSERT_EQ(sig_validate(TOKEN, "https://user:pa:ss@example.com/x", NULL,
	    "kHh4s54HllStgm6q62JDiLWhoHc="), 1);
	ASSERT_EQ(sig_validate(TOKEN, "https://user:pa:ss@example.com:443/x",
	    NULL, "YhqaAhUDJqK1ttQytB+8/q+C3jA="), 1);
	/* IPv6 literals */
	ASSERT_EQ(sig_validate(TOKEN, "https://[::1]/x", NULL,
	    "pLxLgtKSgIIWGAFTOtNyd5C9LEE="), 1);
	ASSERT_EQ(sig_validate(TOKEN, "https://[::1]:443/x", NULL,
	    "zc0aoKHkuUCtes4oOh0dugnL/EE="), 1);
	/* no path at all, and a query right after the host */
	ASSERT_EQ(sig_validate(TOKEN, "https://example.com", NULL,
	    "fREkL35/aD4LpcsnbmSobI/G0Xw="), 1);
	ASSERT_EQ(sig_validate(TOKEN, "https://example.com:443", NULL,
	    "ieVG2B5SgzqCePC8rBU5pmQP7hU="), 1);
	ASSERT_EQ(sig_validate(TOKEN, "https://example.com?a=b", NULL,
	    "hTbuT4ZKObLxBC1URUrRs89dN48="), 1);
	/* not a URL: only the string itself is tried */
	ASSERT_EQ(sig_validate(TOKEN, "", NULL, "hTbuT4ZKObLxBC1URUrRs89dN48="),
	    0);
	ASSERT_EQ(sig_validate(TOKEN, "https://", NULL,
	    "hTbuT4ZKObLxBC1URUrRs89dN48="), 0);
	ASSERT_EQ(sig_validate(TOKEN, "https://[::1/x", NULL,
	    "pLxLgtKSgIIWGAFTOtNyd5C9LEE="), 0);
}
