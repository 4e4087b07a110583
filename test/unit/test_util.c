/*
 * test_util.c — caller masking and checking, loopback URLs.
 */
#include "test/unit/test.h"

#include "daemon/common/util.h"

static void
masked_is(const char *in, const char *want)
{
	char out[64];

	mask_phone(in, out, sizeof(out));
	ASSERT_STR_EQ(out, want);
}

/* At most four digits of any caller show. */
static int
digits(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s >= '0' && *s <= '9';
	return n;
}

TEST(util_mask_phone)
{
	static const char *const callers[] = {
		"+14155552671", "+442071838750", "+123456789012345", "+1555",
		"+15551234", "client:alice", "client:a_very_long_name",
		"sip:+14155552671@pbx.example.com", "sip:1234@10.0.0.1",
		"14155552671", "x",
	};
	char out[64], small[6];

	masked_is("+14155558642", "+*******8642");
	masked_is("+442071838750", "+********8750");
	masked_is("+1555", "+****");
	masked_is("+15551234", "+****1234");
	masked_is("+1555123", "+*******");
	masked_is("client:alice", "client:*****");
	masked_is("client:alexander", "client:*****nder");
	masked_is("sip:+14155552671@pbx", "sip:************@pbx");
	/* the anonymous forms say nothing about the caller */
	masked_is("anonymous", "anonymous");
	masked_is("Restricted", "Restricted");
	masked_is("+266696687", "+266696687");
	masked_is("", "");
	masked_is(NULL, "");
	for (size_t i = 0; i < ARRAY_LEN(callers); i++) {
		mask_phone(callers[i], out, sizeof(out));
		ASSERT_LE(digits(out), 4);
		ASSERT_EQ(strlen(out), strlen(callers[i]));
	}
	/* truncated, still terminated, never the number's head */
	mask_phone("+14155558642", small, sizeof(small));
	ASSERT_STR_EQ(small, "+****");
	mask_phone("+14155558642", out, 0);
}

TEST(util_caller_valid)
{
	static const char *const good[] = {
		"+14155552671", "+1", "+123456789012345", "anonymous",
		"Anonymous", "ANONYMOUS", "restricted", "Restricted", "unknown",
		"private", "unavailable", "blocked", "+266696687", "",
		"client:alice", "client:agent_7.desk-2@acme",
		"sip:alice@example.com", "sip:+14155552671@10.0.0.1:5060;transport=udp",
		"sips:bob@example.com",
	};
	static const char *const bad[] = {
		"=HYPERLINK(\"http://x\",\"y\")", "@SUM(A1:A9)", "-1+1", "+",
		"+1234567890123456", "+1 415 555 2671", "+1-415", "14155552671",
		"+14155552671\n", "+1415555,2671", "client:", "client:a b",
		"client:a,b", "client:<b>", "sip:", "sip:a\"b@x", "sip:a,b@x",
		"sip:a b", "sip:a\r\nb", "tel:+14155552671", "anonymous2",
		"client:\xc3\xa9", "\"+14155552671\"",
	};

	for (size_t i = 0; i < ARRAY_LEN(good); i++)
		if (!caller_valid(good[i]))
			TEST_FAIL_("refused \"%s\"", good[i]);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (caller_valid(bad[i]))
			TEST_FAIL_("accepted \"%s\"", bad[i]);
}

TEST(util_url_host_loopback)
{
	static const char *const yes[] = {
		"http://127.0.0.1", "http://127.0.0.1:5050/x", "ws://127.1.2.3/v1",
		"ws://[::1]:8080/v1?model=x", "http://localhost/", "http://LOCALHOST:1",
		"http://localhost.:80", "http://127.255.255.255",
	};
	static const char *const no[] = {
		"http://128.0.0.1", "http://10.0.0.1", "http://example.com",
		"http://127.0.0.1.example.com/", "http://localhost.example.com",
		"http://127.0.0.1@evil.example/", "http://evil@127.0.0.1/",
		"http://[::2]/", "http://[::1", "http://", "127.0.0.1",
		"http://127.1/", "http://0x7f000001/", "ws://[::ffff:8.8.8.8]/",
		"http://:80/",
	};

	for (size_t i = 0; i < ARRAY_LEN(yes); i++)
		if (!url_host_loopback(yes[i]))
			TEST_FAIL_("%s not loopback", yes[i]);
	for (size_t i = 0; i < ARRAY_LEN(no); i++)
		if (url_host_loopback(no[i]))
			TEST_FAIL_("%s loopback", no[i]);
}
