/*
 * test_twiml.c — TwiML building and XML escaping.
 */
#include "test/unit/test.h"

#include "proto/twiml.h"

#define PROLOG "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>"

TEST(twiml_escape_all_five)
{
	char out[128];

	ASSERT_EQ(xml_escape("a&b<c>d\"e'f", out, sizeof(out)),
	    strlen("a&amp;b&lt;c&gt;d&quot;e&apos;f"));
	ASSERT_STR_EQ(out, "a&amp;b&lt;c&gt;d&quot;e&apos;f");
	ASSERT_EQ(xml_escape("", out, sizeof(out)), 0);
	ASSERT_STR_EQ(out, "");
	/* already escaped text is escaped again, not trusted */
	ASSERT_EQ(xml_escape("&amp;", out, sizeof(out)), 9);
	ASSERT_STR_EQ(out, "&amp;amp;");
	/* UTF-8 passes through */
	xml_escape("caf\xc3\xa9 \xe2\x82\xac", out, sizeof(out));
	ASSERT_STR_EQ(out, "caf\xc3\xa9 \xe2\x82\xac");
}

TEST(twiml_escape_control_bytes)
{
	char out[64];

	/* tab, LF and CR are legal XML; other C0 bytes would void the
	 * whole document, so they are dropped */
	ASSERT_EQ(xml_escape("a\tb\nc\rd", out, sizeof(out)), 7);
	ASSERT_STR_EQ(out, "a\tb\nc\rd");
	ASSERT_EQ(xml_escape("a\x01" "b\x1f" "c\x1b", out, sizeof(out)), 3);
	ASSERT_STR_EQ(out, "abc");
}

TEST(twiml_escape_truncation)
{
	char out[8];
	size_t i;

	/* like snprintf: the full length is returned, out always ends */
	ASSERT_EQ(xml_escape("ab&cd", NULL, 0), 9);
	memset(out, 'X', sizeof(out));
	ASSERT_EQ(xml_escape("ab&cd", out, 4), 9);
	/* an entity is never cut in half */
	ASSERT_STR_EQ(out, "ab");
	ASSERT_EQ(xml_escape("ab&cd", out, 8), 9);
	ASSERT_STR_EQ(out, "ab&amp;");
	for (i = 1; i <= sizeof(out); i++) {
		ASSERT_EQ(xml_escape("<<<<", out, i), 16);
		ASSERT_EQ(strlen(out), (i - 1) / 4 * 4);
	}
}

TEST(twiml_document_shape)
{
	struct twiml t;

	twiml_begin(&t);
	twiml_connect_stream_open(&t, "https://voice.example.com/after-stream",
	    "wss://voice.example.com/media-stream/practice",
	    "https://voice.example.com/stream-status");
	twiml_parameter(&t, "persona", "cold-call-3");
	twiml_parameter(&t, "token", "c2VjcmV0LW9uZS10aW1l");
	twiml_connect_stream_close(&t);
	twiml_say(&t, "Your practice time is over. Goodbye.", NULL);
	twiml_hangup(&t);
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT_STR_EQ(t.buf, PROLOG
	    "<Connect action=\"https://voice.example.com/after-stream\">"
	    "<Stream url=\"wss://voice.example.com/media-stream/practice\""
	    " statusCallback=\"https://voice.example.com/stream-status\">"
	    "<Parameter name=\"persona\" value=\"cold-call-3\"/>"
	    "<Parameter name=\"token\" value=\"c2VjcmV0LW9uZS10aW1l\"/>"
	    "</Stream></Connect>"
	    "<Say>Your practice time is over. Goodbye.</Say>"
	    "<Hangup/></Response>");
	ASSERT_EQ(t.len, strlen(t.buf));
	ASSERT(strstr(t.buf, "track") == NULL);
	twiml_free(&t);
	ASSERT_NULL(t.buf);
}

TEST(twiml_stream_url_as_given)
{
	struct twiml t;
	const char *url = "wss://voice.example.com/media-stream/"
	    "AQAAAABn-_xyz_-09/abc";

	twiml_begin(&t);
	twiml_connect_stream_open(&t, NULL, url, NULL);
	twiml_connect_stream_close(&t);
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT_STR_EQ(t.buf, PROLOG "<Connect><Stream url=\"wss://voice."
	    "example.com/media-stream/AQAAAABn-_xyz_-09/abc\"></Stream>"
	    "</Connect></Response>");
	twiml_free(&t);

	/* no query logic: a '&' is escaped, not dropped or re-encoded */
	twiml_begin(&t);
	twiml_connect_stream_open(&t, NULL, "wss://h/p?a=1&b=2", NULL);
	twiml_connect_stream_close(&t);
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT(strstr(t.buf, "<Stream url=\"wss://h/p?a=1&amp;b=2\">") != NULL);
	twiml_free(&t);
}

TEST(twiml_escaping_in_attributes_and_text)
{
	struct twiml t;

	twiml_begin(&t);
	twiml_say(&t, "Tom & Jerry's <\"show\">", "Polly.Joanna");
	twiml_say(&t, "plain", "");
	twiml_connect_stream_open(&t, "https://a/b?x=1&y='2'", "wss://a/<s>",
	    "https://a/\"cb\"");
	twiml_parameter(&t, "n&m", "<v'\">");
	twiml_connect_stream_close(&t);
	twiml_play(&t, "https://a/p.mp3?x=1&y=2");
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT_STR_EQ(t.buf, PROLOG
	    "<Say voice=\"Polly.Joanna\">Tom &amp; Jerry&apos;s "
	    "&lt;&quot;show&quot;&gt;</Say>"
	    "<Say>plain</Say>"
	    "<Connect action=\"https://a/b?x=1&amp;y=&apos;2&apos;\">"
	    "<Stream url=\"wss://a/&lt;s&gt;\""
	    " statusCallback=\"https://a/&quot;cb&quot;\">"
	    "<Parameter name=\"n&amp;m\" value=\"&lt;v&apos;&quot;&gt;\"/>"
	    "</Stream></Connect>"
	    "<Play>https://a/p.mp3?x=1&amp;y=2</Play>"
	    "</Response>");
	twiml_free(&t);
}

TEST(twiml_pause_and_empty)
{
	struct twiml t;

	twiml_begin(&t);
	twiml_pause(&t, 2);
	twiml_pause(&t, 0);
	twiml_say(&t, NULL, NULL);
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT_STR_EQ(t.buf, PROLOG "<Pause length=\"2\"/><Pause/><Say></Say>"
	    "</Response>");
	twiml_free(&t);

	twiml_begin(&t);
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT_STR_EQ(t.buf, PROLOG "</Response>");
	twiml_free(&t);
}

TEST(twiml_large_document)
{
	struct twiml t;
	char *big = malloc(100001);
	size_t i;

	ASSERT_NOT_NULL(big);
	for (i = 0; i < 100000; i++)
		big[i] = "a&<"[i % 3];
	big[100000] = '\0';
	twiml_begin(&t);
	twiml_say(&t, big, NULL);
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT_EQ(t.len, strlen(PROLOG "<Say></Say></Response>") +
	    33334 * 1 + 33333 * 5 + 33333 * 4);
	ASSERT_EQ(strlen(t.buf), t.len);
	twiml_free(&t);
	free(big);
}

TEST(twiml_sticky_error)
{
	struct twiml t;

	twiml_begin(&t);
	/* as if an allocation had failed: later verbs do nothing */
	t.err = -1;
	twiml_hangup(&t);
	ASSERT_EQ(twiml_end(&t), -1);
	ASSERT_STR_EQ(t.buf, PROLOG);
	twiml_free(&t);
}

TEST(twiml_conversation_relay_shape)
{
	struct twiml t;
	const char *attrs[] = { "welcomeGreeting", "Hi & welcome <back>",
	    "language", "en-US", "dtmfDetection", "true", "url", "wss://evil/",
	    "hints", "crown,filling", NULL };

	twiml_begin(&t);
	twiml_connect_relay_open(&t, "https://v.example.com/relay/dental/ended",
	    "wss://v.example.com/relay/dental/TOK", attrs);
	twiml_parameter(&t, "callSid", "CA1");
	twiml_connect_relay_close(&t);
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT_STR_EQ(t.buf, PROLOG
	    "<Connect action=\"https://v.example.com/relay/dental/ended\""
	    " method=\"POST\">"
	    "<ConversationRelay url=\"wss://v.example.com/relay/dental/TOK\""
	    " welcomeGreeting=\"Hi &amp; welcome &lt;back&gt;\""
	    " language=\"en-US\" dtmfDetection=\"true\""
	    " hints=\"crown,filling\">"
	    "<Parameter name=\"callSid\" value=\"CA1\"/>"
	    "</ConversationRelay></Connect></Response>");
	twiml_free(&t);

	/* no attributes, no action */
	twiml_begin(&t);
	twiml_connect_relay_open(&t, NULL, "wss://h/r", NULL);
	twiml_connect_relay_close(&t);
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT_STR_EQ(t.buf, PROLOG "<Connect><ConversationRelay url=\"wss://h/r\">"
	    "</ConversationRelay></Connect></Response>");
	twiml_free(&t);
}

TEST(twiml_dial_number_and_sip)
{
	struct twiml t;

	twiml_begin(&t);
	twiml_dial(&t, "+15551234567", NULL);
	twiml_dial(&t, NULL, "sip:desk@pbx.example.com;transport=tls&x=<1>");
	ASSERT_EQ(twiml_end(&t), 0);
	ASSERT_STR_EQ(t.buf, PROLOG "<Dial>+15551234567</Dial>"
	    "<Dial><Sip>sip:desk@pbx.example.com;transport=tls&amp;x=&lt;1&gt;"
	    "</Sip></Dial></Response>");
	twiml_free(&t);
}
