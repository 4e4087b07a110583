/*
 * test_form.c — form bodies and percent-decoding.
 */
#include "test/unit/test.h"

#include "proto/form.h"

static const char twilio_body[] =
    "AccountSid=AC00000000000000000000000000000000&ApiVersion=2010-04-01"
    "&CallSid=CA11111111111111111111111111111111&CallStatus=ringing"
    "&Called=%2B15005550006&Caller=%2B14155552671&Direction=inbound"
    "&From=%2B14155552671&To=%2B15005550006";

static void
parse_str(struct form *f, const char *s)
{
	ASSERT_EQ(form_parse(f, s, strlen(s)), 0);
}

static void
assert_rejected(const char *s)
{
	struct form f;

	if (form_parse(&f, s, strlen(s)) != -1)
		TEST_FAIL_("accepted \"%s\"", s);
	ASSERT_EQ(f.n, 0);
	ASSERT_NULL(f.v);
}

TEST(form_twilio_webhook)
{
	struct form f;

	parse_str(&f, twilio_body);
	ASSERT_EQ(f.n, 9);
	ASSERT_STR_EQ(f.v[0].name, "AccountSid");
	ASSERT_STR_EQ(f.v[8].name, "To");
	ASSERT_STR_EQ(form_get(&f, "From"), "+14155552671");
	ASSERT_STR_EQ(form_get(&f, "Called"), "+15005550006");
	ASSERT_STR_EQ(form_get(&f, "CallStatus"), "ringing");
	ASSERT_EQ(f.v[5].value_len, strlen("+14155552671"));
	ASSERT_NULL(form_get(&f, "from"));
	ASSERT_NULL(form_get(&f, "Missing"));
	form_free(&f);
	ASSERT_EQ(f.n, 0);
	ASSERT_NULL(f.v);
}

TEST(form_plus_and_escapes)
{
	struct form f;

	parse_str(&f, "a=b+c&x=%2B1&y=%2b2&z=+%2B+&n%41me=%e2%82%ac");
	ASSERT_STR_EQ(form_get(&f, "a"), "b c");
	ASSERT_STR_EQ(form_get(&f, "x"), "+1");
	ASSERT_STR_EQ(form_get(&f, "y"), "+2");
	ASSERT_STR_EQ(form_get(&f, "z"), " + ");
	ASSERT_STR_EQ(form_get(&f, "nAme"), "\xe2\x82\xac");
	form_free(&f);
}

TEST(form_repeated_names_kept_in_order)
{
	struct form f;

	parse_str(&f, "a=1&b=3&a=2&a=1");
	ASSERT_EQ(f.n, 4);
	ASSERT_STR_EQ(f.v[0].name, "a");
	ASSERT_STR_EQ(f.v[0].value, "1");
	ASSERT_STR_EQ(f.v[1].name, "b");
	ASSERT_STR_EQ(f.v[2].name, "a");
	ASSERT_STR_EQ(f.v[2].value, "2");
	ASSERT_STR_EQ(f.v[3].value, "1");
	ASSERT_STR_EQ(form_get(&f, "a"), "1");
	form_free(&f);
}

TEST(form_unknown_fields_kept)
{
	struct form f;

	parse_str(&f, "CallSid=CA1&FutureThing=x&SipHeader_X-Foo=bar");
	ASSERT_EQ(f.n, 3);
	ASSERT_STR_EQ(form_get(&f, "FutureThing"), "x");
	ASSERT_STR_EQ(form_get(&f, "SipHeader_X-Foo"), "bar");
	form_free(&f);
}

TEST(form_empty_pairs_and_missing_equals)
{
	struct form f;

	parse_str(&f, "&a=1&&b&=z&c=&d=e=f&");
	ASSERT_EQ(f.n, 5);
	ASSERT_STR_EQ(f.v[0].name, "a");
	ASSERT_STR_EQ(f.v[1].name, "b");
	ASSERT_STR_EQ(f.v[1].value, "");
	ASSERT_EQ(f.v[1].value_len, 0);
	ASSERT_STR_EQ(f.v[2].name, "");
	ASSERT_STR_EQ(f.v[2].value, "z");
	ASSERT_STR_EQ(form_get(&f, "c"), "");
	ASSERT_STR_EQ(form_get(&f, "d"), "e=f");
	form_free(&f);

	parse_str(&f, "");
	ASSERT_EQ(f.n, 0);
	form_free(&f);
	parse_str(&f, "&&&");
	ASSERT_EQ(f.n, 0);
	form_free(&f);
}

TEST(form_malformed_rejected)
{
	assert_rejected("a=%G1");
	assert_rejected("a=%1G");
	assert_rejected("a=%4");
	assert_rejected("a=%");
	assert_rejected("a=1&b=%zz&c=3");
	assert_rejected("%=1");
	assert_rejected("a=%00");
	assert_rejected("n%00=1");
}

TEST(form_raw_nul_rejected)
{
	static const char body[] = "a=1\0b";
	struct form f;

	ASSERT_EQ(form_parse(&f, body, sizeof(body) - 1), -1);
	ASSERT_EQ(f.n, 0);
	/* the length bounds the parse, not a NUL */
	ASSERT_EQ(form_parse(&f, body, 3), 0);
	ASSERT_STR_EQ(form_get(&f, "a"), "1");
	form_free(&f);
}

TEST(form_pair_limit)
{
	size_t cap = (FORM_MAX_PAIRS + 1) * 4 + 1;
	char *s = malloc(cap);
	struct form f;
	size_t i, o = 0;

	ASSERT_NOT_NULL(s);
	for (i = 0; i < FORM_MAX_PAIRS; i++)
		o += (size_t)snprintf(s + o, cap - o, "a=1&");
	ASSERT_EQ(form_parse(&f, s, o), 0);
	ASSERT_EQ(f.n, FORM_MAX_PAIRS);
	form_free(&f);
	o += (size_t)snprintf(s + o, cap - o, "b=2");
	ASSERT_EQ(form_parse(&f, s, o), -1);
	ASSERT_EQ(f.n, 0);
	free(s);
}

TEST(form_url_decode)
{
	char out[32];

	ASSERT_EQ(url_decode("a+b%2Fc", 7, out, 0), 5);
	ASSERT_STR_EQ(out, "a+b/c");
	ASSERT_EQ(url_decode("a+b%2Fc", 7, out, 1), 5);
	ASSERT_STR_EQ(out, "a b/c");
	ASSERT_EQ(url_decode("", 0, out, 1), 0);
	ASSERT_STR_EQ(out, "");
	/* only len bytes are read */
	ASSERT_EQ(url_decode("abc%41", 3, out, 1), 3);
	ASSERT_STR_EQ(out, "abc");
	ASSERT_EQ(url_decode("abc%4", 5, out, 1), -1);
	ASSERT_EQ(url_decode("abc%41", 5, out, 1), -1);
	ASSERT_EQ(url_decode("%00", 3, out, 0), -1);
	ASSERT_EQ(url_decode("a\0b", 3, out, 0), -1);
	ASSERT_EQ(url_decode("%ff%FF", 6, out, 0), 2);
	ASSERT_EQ((unsigned char)out[0], 0xff);
}

/* Every prefix of a body parses or fails without touching bytes past it. */
TEST(form_every_prefix)
{
	size_t len = strlen(twilio_body), i;

	for (i = 0; i <= len; i++) {
		char *copy = malloc(i ? i : 1);
		struct form f;
		int rc;

		ASSERT_NOT_NULL(copy);
		memcpy(copy, twilio_body, i);
		rc = form_parse(&f, copy, i);
		ASSERT(rc == 0 || rc == -1);
		form_free(&f);
		free(copy);
	}
}
