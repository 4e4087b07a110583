/*
 * test_nanp.c — who an outbound call may ring, and template variables.
 */
#include "test/unit/test.h"

#include "daemon/common/util.h"
#include "proto/nanp.h"
#include "proto/tmpl.h"

TEST(e164_syntax)
{
	ASSERT(e164_valid("+14155550123"));
	ASSERT(e164_valid("+442071838750"));
	ASSERT(e164_valid("+12345678"));
	ASSERT(!e164_valid("+1234567"));		/* 7 digits */
	ASSERT(!e164_valid("+1234567890123456"));	/* 16 */
	ASSERT(!e164_valid("14155550123"));
	ASSERT(!e164_valid("+04155550123"));
	ASSERT(!e164_valid("+1415555012a"));
	ASSERT(!e164_valid("+1 415 555 0123"));
	ASSERT(!e164_valid(""));
	ASSERT(!e164_valid(NULL));
}

TEST(nanp_us_canada_table)
{
	static const struct { const char *n; int ok; } v[] = {
		{ "+14155550123", 1 },	/* San Francisco */
		{ "+12125550123", 1 },	/* New York */
		{ "+14165550123", 1 },	/* Toronto */
		{ "+16045550123", 1 },	/* Vancouver */
		{ "+18005550123", 1 },	/* toll-free */
		{ "+19075550123", 1 },	/* Alaska */
		{ "+18085550123", 1 },	/* Hawaii */
		{ "+18765550123", 0 },	/* Jamaica */
		{ "+16585550123", 0 },	/* Jamaica */
		{ "+18095550123", 0 },	/* Dominican Republic */
		{ "+18295550123", 0 },
		{ "+18495550123", 0 },
		{ "+12425550123", 0 },	/* Bahamas */
		{ "+14415550123", 0 },	/* Bermuda */
		{ "+18685550123", 0 },	/* Trinidad */
		{ "+17875550123", 0 },	/* Puerto Rico */
		{ "+19005550123", 0 },	/* pay-per-call */
		{ "+14159765555", 0 },	/* 976 exchange */
		{ "+19765550123", 0 },	/* N9X: not an area code */
		{ "+14115550123", 0 },	/* N11 */
		{ "+11235550123", 0 },	/* NPA starting 1 */
		{ "+14151550123", 0 },	/* NXX starting 1 */
		{ "+1415555012", 0 },	/* too short */
		{ "+141555501234", 0 },	/* too long */
		{ "+442071838750", 0 },	/* not +1 */
	};
	const char *why;

	for (size_t i = 0; i < ARRAY_LEN(v); i++) {
		int ok = nanp_us_canada(v[i].n, &why);
		if (ok != v[i].ok)
			TEST_FAIL_("%s: %d, want %d", v[i].n, ok, v[i].ok);
		if (!ok)
			ASSERT_NOT_NULL(why);
	}
	ASSERT(!nanp_us_canada("+18765550123", &why));
	ASSERT_STR_EQ(why, "Jamaica");
	ASSERT(!nanp_us_canada("+19005550123", &why));
	ASSERT_STR_EQ(why, "pay-per-call");
}

struct names {
	char	 buf[256];
	size_t	 n;
};

static int
collect(void *arg, const char *name, size_t len)
{
	struct names *nm = arg;

	ASSERT_LT(nm->n + len + 1, sizeof(nm->buf));
	memcpy(nm->buf + nm->n, name, len);
	nm->n += len;
	nm->buf[nm->n++] = ',';
	nm->buf[nm->n] = '\0';
	return 0;
}

TEST(tmpl_variables)
{
	struct names nm = { "", 0 };

	ASSERT_EQ(tmpl_each("Hello {{name}}, you owe {{amount_due}} "
	    "{{ spaced }} {{bad-name}} {{}} {{{x}}} {{name}}", collect, &nm), 0);
	ASSERT_STR_EQ(nm.buf, "name,amount_due,x,name,");
	nm.n = 0;
	nm.buf[0] = '\0';
	ASSERT_EQ(tmpl_each("no variables { {a} } {{", collect, &nm), 0);
	ASSERT_STR_EQ(nm.buf, "");
}

static const char *
lookup(void *arg, const char *name, size_t len)
{
	if (len == 4 && strncmp(name, "name", 4) == 0)
		return "Ann \"Q\" Lee";
	if (len == 3 && strncmp(name, "amt", 3) == 0)
		return "$5";
	return NULL;
}

TEST(tmpl_fill_values)
{
	char *s = tmpl_fill("Hi {{name}}, {{amt}} due; {{other}} {{{amt}}} {{name",
	    lookup, NULL);

	ASSERT_NOT_NULL(s);
	ASSERT_STR_EQ(s, "Hi Ann \"Q\" Lee, $5 due; {{other}} {$5} {{name");
	free(s);
	s = tmpl_fill("", lookup, NULL);
	ASSERT_NOT_NULL(s);
	ASSERT_STR_EQ(s, "");
	free(s);
}
