/*
 * test_line.c — lines (personas/line.c): the shipped ones against the
 * shipped personas, the configuration's keys as defaults, and a wrong
 * field named with its file.
 */
#include "test/unit/test.h"
#include "personas/line.h"

#include <sys/stat.h>

static const char *const apps[] = { "practice", "agent", NULL };

static void
load_env(struct conf *cf, struct persona_set *ps)
{
	char err[4096], warn[4096];

	/* the defaults, with the one key they lack to load */
	ASSERT_EQ(setenv("TWILIO_AUTH_TOKEN", "unit-test-auth-token", 1), 0);
	ASSERT_EQ(conf_load(NULL, cf, err, sizeof(err)), 0);
	cf->free_call_minutes = 7;
	cf->min_call_duration = 1;
	ASSERT_EQ(persona_set_load(ps, "personas", OA_GA, err, sizeof(err), warn,
	    sizeof(warn)), 0);
}

TEST(line_shipped_lines_load)
{
	struct conf cf;
	struct persona_set ps;
	struct line_set ls;
	const struct line *l;
	char err[4096];

	load_env(&cf, &ps);
	ASSERT_EQ(line_set_load(&ls, "etc/lines", &cf, &ps, apps, err,
	    sizeof(err)), 0);
	ASSERT_GE(ls.n, 4);
	l = line_find(&ls, "hvac");
	ASSERT_NOT_NULL(l);
	ASSERT_STR_EQ(l->app, "agent");
	ASSERT(!line_has_quota(l));
	ASSERT_NULL(l->sms);
	ASSERT(strstr(l->tools_json, "book_appointment") != NULL);
	ASSERT_STR_EQ(line_persona(l, &ps, "hvac")->id, "hvac");
	/* verify_identity only where there are facts to check */
	l = line_find(&ls, "collections");
	ASSERT_NOT_NULL(l);
	ASSERT_NOT_NULL(l->facts_json);
	ASSERT(strstr(l->tools_json, "verify_identity") != NULL);
	/* the practice line takes its policy from the keys */
	l = line_find(&ls, "intake");
	ASSERT_NOT_NULL(l);
	ASSERT_STR_EQ(l->app, "practice");
	ASSERT(l->free_minutes == 7 && l->min_minutes == 1);
	ASSERT_STR_EQ(l->sms, cf.sms_message);
	ASSERT_STR_EQ(l->wrapup, cf.wrapup_instructions);
	ASSERT_NULL(l->tools_json);
	/* a route without a line: its persona, the keys' policy */
	ASSERT_NULL(line_find(&ls, "sarah"));
	ASSERT_STR_EQ(ls.fallback.app, "practice");
	ASSERT(ls.fallback.free_minutes == 7);
	ASSERT_STR_EQ(line_persona(&ls.fallback, &ps, "sarah")->id, "sarah");
	line_set_free(&ls);
	/* a line on that persona without facts is not offered the tool */
	{
		char dir[512], path[600];
		FILE *f;
		snprintf(dir, sizeof(dir), "%s/nofacts", test_tmpdir());
		ASSERT_EQ(mkdir(dir, 0700), 0);
		snprintf(path, sizeof(path), "%s/owe.json", dir);
		ASSERT_NOT_NULL(f = fopen(path, "w"));
		fputs("{\"app\":\"agent\",\"persona\":\"collections\"}", f);
		fclose(f);
		ASSERT_EQ(line_set_load(&ls, dir, &cf, &ps, apps, err,
		    sizeof(err)), 0);
		l = line_find(&ls, "owe");
		ASSERT_NOT_NULL(l->tools_json);
		ASSERT(strstr(l->tools_json, "verify_identity") == NULL);
		ASSERT(strstr(l->tools_json, "record_payment_arrangement") != NULL);
		line_set_free(&ls);
	}
	/* no directory: no lines, still a fallback */
	ASSERT_EQ(line_set_load(&ls, "/nonexistent/lines", &cf, &ps, apps, err,
	    sizeof(err)), 0);
	ASSERT_EQ(ls.n, 0);
	ASSERT_STR_EQ(ls.fallback.app, "practice");
	line_set_free(&ls);
}

static void
one_bad(const char *text, const char *want)
{
	struct conf cf;
	struct persona_set ps;
	struct line_set ls;
	char err[4096], dir[512], path[600];
	FILE *f;

	load_env(&cf, &ps);
	snprintf(dir, sizeof(dir), "%s/lines%u", test_tmpdir(), (unsigned)rand());
	ASSERT_EQ(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/shop.json", dir);
	ASSERT_NOT_NULL(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	ASSERT_GT(line_set_load(&ls, dir, &cf, &ps, apps, err, sizeof(err)), 0);
	if (strstr(err, want) == NULL || strstr(err, "shop.json") == NULL)
		TEST_FAIL_("wanted \"%s\" in:\n%s", want, err);
	ASSERT_EQ(ls.n, 0);
}

TEST(line_errors_name_file_and_field)
{
	one_bad("{\"persona\":\"hvac\"}", "app: required");
	one_bad("{\"app\":\"shop\"}", "app: no app");
	one_bad("{\"app\":\"agent\"}", "persona: no persona \"shop\"");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"free_minutes\":-1}",
	    "free_minutes:");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"max_call_minutes\":0}",
	    "max_call_minutes:");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"free_minutes\":1,"
	    "\"min_minutes\":2}", "min_minutes:");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"tools\":[\"fly\"]}",
	    "tools: persona hvac has no tool \"fly\"");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"transport\":\"sip\"}",
	    "transport:");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"colour\":1}",
	    "colour: unknown field");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"sms\":5}", "sms:");
	one_bad("{\"app\":\"agent\",\"persona\":\"collections\",\"tools\":"
	    "[\"verify_identity\"]}", "tools: verify_identity needs \"facts\"");
	one_bad("{\"app\":\"agent\",\"persona\":\"collections\",\"facts\":"
	    "{\"account_last4\":\"1234\"}}", "facts: full_name and");
	one_bad("{\"app\":\"agent\",\"persona\":\"collections\",\"facts\":"
	    "{\"full_name\":\"A B\",\"account_last4\":1234}}", "facts: account_last4");
	one_bad("[1]", "file: not a JSON object");
	one_bad("{", "file: line");
}

TEST(line_conversation_relay_settings_and_targets)
{
	struct conf cf;
	struct persona_set ps;
	struct line_set ls;
	const struct line *l;
	char err[4096], dir[512], path[600];
	FILE *f;

	load_env(&cf, &ps);
	snprintf(dir, sizeof(dir), "%s/relaylines", test_tmpdir());
	ASSERT_EQ(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/desk.json", dir);
	ASSERT_NOT_NULL(f = fopen(path, "w"));
	fputs("{\"app\":\"agent\",\"persona\":\"dental\",\"tools\":[\"end_call\"],"
	    "\"transport\":\"conversation_relay\",\"conversation_relay\":"
	    "{\"welcomeGreeting\":\"Hello\",\"dtmfDetection\":true,"
	    "\"hints\":[\"crown\",\"filling\"]},\"transfer_targets\":"
	    "[{\"label\":\"manager\",\"number\":\"+15551230001\"},"
	    "{\"label\":\"pbx\",\"sip\":\"sip:desk@pbx.example.com\"}]}", f);
	fclose(f);
	ASSERT_EQ(line_set_load(&ls, dir, &cf, &ps, apps, err, sizeof(err)), 0);
	l = line_find(&ls, "desk");
	ASSERT_NOT_NULL(l);
	ASSERT_EQ(l->transport, LINE_CONVERSATION_RELAY);
	ASSERT_STR_EQ(l->welcome, "Hello");
	ASSERT_STR_EQ(l->relay_attrs[0], "welcomeGreeting");
	ASSERT_STR_EQ(l->relay_attrs[3], "true");
	ASSERT_STR_EQ(l->relay_attrs[5], "crown,filling");
	ASSERT_NULL(l->relay_attrs[6]);
	ASSERT_EQ(l->ntargets, 2);
	ASSERT_STR_EQ(line_target_find(l, "manager")->number, "+15551230001");
	ASSERT_STR_EQ(line_target_find(l, "pbx")->sip, "sip:desk@pbx.example.com");
	ASSERT_NULL(line_target_find(l, "+15551230001"));
	/* the line's tools plus transfer_call, choosing by label */
	ASSERT(strstr(l->tools_json, "\"end_call\"") != NULL);
	ASSERT(strstr(l->tools_json, "\"transfer_call\"") != NULL);
	ASSERT(strstr(l->tools_json, "\"manager\"") != NULL);
	ASSERT(strstr(l->tools_json, "book_appointment") == NULL);
	line_set_free(&ls);

	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"conversation_relay\":"
	    "{\"language\":\"en-US\"}}", "conversation_relay: only for");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"transport\":"
	    "\"conversation_relay\",\"conversation_relay\":{\"url\":\"wss://x\"}}",
	    "url: not an attribute");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"transport\":"
	    "\"conversation_relay\",\"conversation_relay\":{\"hints\":[\"a,b\"]}}",
	    "hints: a string");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"transfer_targets\":"
	    "[{\"label\":\"x\",\"number\":\"5551234\"}]}", "number: E.164");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"transfer_targets\":"
	    "[{\"label\":\"x\",\"number\":\"+15551234\",\"sip\":\"sip:a@b\"}]}",
	    "item 0:");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"transfer_targets\":"
	    "[{\"label\":\"x\",\"sip\":\"http://a\"}]}", "sip: a sip:");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"transfer_targets\":"
	    "[{\"label\":\"x\",\"number\":\"+15551234\"},{\"label\":\"x\","
	    "\"number\":\"+15551235\"}]}", "label \"x\" twice");
}

TEST(line_telephony_fields_checked)
{
#define HV "{\"app\":\"agent\",\"persona\":\"hvac\","
#define TT "\"transfer_targets\":[{\"label\":\"desk\",\"number\":\"+15551230001\"}],"
	one_bad(HV "\"keypad\":{\"77\":\"end_call\"}}", "keypad: \"77\" is not a key");
	one_bad(HV "\"keypad\":{\"5\":\"dance\"}}", "keypad: 5: no action \"dance\"");
	one_bad(HV "\"keypad\":{\"2\":{\"action\":\"persona\",\"persona\":\"x\"}}}",
	    "keypad: 2: \"persona\" names no persona");
	one_bad(HV "\"keypad\":{\"0\":{\"action\":\"transfer\",\"target\":\"desk\"}}}",
	    "keypad: 0: \"target\" names no label");
	one_bad(HV "\"transfer\":{\"timeout\":20}}", "transfer: needs transfer_targets");
	one_bad(HV TT "\"transfer\":{\"timeout\":2}}", "transfer: timeout");
	one_bad(HV TT "\"transfer\":{\"no_answer\":\"beep\"}}", "transfer: no_answer");
	one_bad(HV TT "\"transfer\":{\"caller_id\":\"555\"}}", "transfer: caller_id");
	one_bad(HV "\"session_rollover_minutes\":60}", "session_rollover_minutes:");
	one_bad(HV "\"webhooks\":{\"book_appointment\":{\"url\":"
	    "\"http://api.example.com/b\",\"secret\":\"0123456789abcdef\"}}}",
	    "webhooks: book_appointment: url http:// is in clear");
	one_bad(HV "\"webhooks\":{\"book_appointment\":{\"url\":"
	    "\"https://api.example.com/b\",\"secret\":\"short\"}}}",
	    "webhooks: book_appointment: secret");
	one_bad(HV "\"webhooks\":{\"book_appointment\":{\"url\":"
	    "\"https://api.example.com/b\",\"secret\":\"${VR_UNIT_UNSET_X}\"}}}",
	    "unset: VR_UNIT_UNSET_X");
	one_bad(HV "\"tools\":[\"end_call\"],\"webhooks\":{\"book_appointment\":"
	    "{\"url\":\"https://a.example.com/\",\"secret\":\"0123456789abcdef\"}}}",
	    "webhooks: book_appointment: not a tool this line offers");
	one_bad(HV "\"webhooks\":{\"book_appointment\":{\"url\":"
	    "\"https://a.example.com/\",\"secret\":\"0123456789abcdef\","
	    "\"timeout_ms\":5}}}", "webhooks: book_appointment: timeout_ms");
	/* a warm transfer's summary webhook is checked like a tool's */
	one_bad(HV TT "\"transfer\":{\"warm\":\"fax\"}}", "transfer: warm:");
	one_bad(HV TT "\"transfer\":{\"warm\":{\"url\":\"https://a.example.com/\","
	    "\"secret\":\"short\"}}}", "transfer: warm: secret");
	one_bad(HV TT "\"transfer\":{\"warm\":{\"url\":\"http://a.example.com/\","
	    "\"secret\":\"0123456789abcdef\"}}}", "transfer: warm: url http://");
	one_bad(HV TT "\"transfer\":{\"warm\":{\"url\":\"https://a.example.com/\","
	    "\"secret\":\"0123456789abcdef\",\"filler_ms\":5}}}",
	    "transfer: warm: unknown field \"filler_ms\"");
#undef HV
#undef TT
}

TEST(line_webhook_environment)
{
	struct conf cf;
	struct persona_set ps;
	struct line_set ls;
	const struct line_hook *h;
	char err[4096];

	load_env(&cf, &ps);
	ASSERT_EQ(unsetenv("HVAC_BOOKING_URL"), 0);
	ASSERT_EQ(line_set_load(&ls, "etc/lines", &cf, &ps, apps, err,
	    sizeof(err)), 0);
	/* not configured: the bookings file answers, as before */
	ASSERT_NULL(line_hook_find(line_find(&ls, "hvac"), "book_appointment"));
	line_set_free(&ls);
	ASSERT_EQ(setenv("HVAC_BOOKING_URL", "https://book.example.com/v1", 1), 0);
	ASSERT_EQ(setenv("HVAC_BOOKING_SECRET", "s3cret-s3cret-s3cret", 1), 0);
	ASSERT_EQ(line_set_load(&ls, "etc/lines", &cf, &ps, apps, err,
	    sizeof(err)), 0);
	h = line_hook_find(line_find(&ls, "hvac"), "book_appointment");
	ASSERT_NOT_NULL(h);
	ASSERT_STR_EQ(h->url, "https://book.example.com/v1");
	ASSERT_STR_EQ(h->secret, "s3cret-s3cret-s3cret");
	ASSERT_STR_EQ(h->method, "POST");
	ASSERT_EQ(h->timeout_ms, 8000);
	ASSERT_NULL(line_hook_find(line_find(&ls, "dental"), "book_appointment"));
	line_set_free(&ls);
	unsetenv("HVAC_BOOKING_URL");
	unsetenv("HVAC_BOOKING_SECRET");
}

/* Who speaks first and whose facts are checked: the defaults go by the
 * call's direction, the pause by OUTBOUND_GREETING_PAUSE; a bad value is
 * named with its file. */
TEST(line_greeting_and_facts_from)
{
	struct conf cf;
	struct persona_set ps;
	struct line_set ls;
	const struct line *l;
	char err[4096], dir[512], path[600];
	FILE *f;

	load_env(&cf, &ps);
	cf.outbound_greeting_pause = 2500;
	snprintf(dir, sizeof(dir), "%s/greetlines", test_tmpdir());
	ASSERT_EQ(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/quiet.json", dir);
	ASSERT_NOT_NULL(f = fopen(path, "w"));
	fputs("{\"app\":\"agent\",\"persona\":\"collections\",\"speaks_first\":"
	    "\"callee\",\"greeting_pause_ms\":900,\"facts_from\":\"call\","
	    "\"tools\":[\"verify_identity\",\"end_call\"]}", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/plain.json", dir);
	ASSERT_NOT_NULL(f = fopen(path, "w"));
	fputs("{\"app\":\"agent\",\"persona\":\"hvac\"}", f);
	fclose(f);
	ASSERT_EQ(line_set_load(&ls, dir, &cf, &ps, apps, err, sizeof(err)), 0);
	l = line_find(&ls, "quiet");
	ASSERT_EQ(l->speaks_first, LINE_SPEAKS_CALLEE);
	ASSERT_EQ(l->greeting_pause_ms, 900);
	ASSERT_EQ(l->facts_from, LINE_FACTS_CALL);
	/* the call's facts: offered without the line's */
	ASSERT(strstr(l->tools_json, "verify_identity") != NULL);
	l = line_find(&ls, "plain");
	ASSERT_EQ(l->speaks_first, LINE_SPEAKS_BY_DIRECTION);
	ASSERT_EQ(l->greeting_pause_ms, 2500);
	ASSERT_EQ(l->facts_from, LINE_FACTS_BY_DIRECTION);
	ASSERT_EQ(ls.fallback.greeting_pause_ms, 2500);
	line_set_free(&ls);
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"speaks_first\":"
	    "\"caller\"}", "speaks_first: \"agent\" or \"callee\"");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"greeting_pause_ms\":"
	    "60001}", "greeting_pause_ms: whole ms");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"greeting_pause_ms\":"
	    "1.5}", "greeting_pause_ms: whole ms");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"speaks_first\":"
	    "\"agent\",\"greeting_pause_ms\":100}", "greeting_pause_ms: not used");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"facts_from\":1}",
	    "facts_from: \"line\" or \"call\"");
	one_bad("{\"app\":\"agent\",\"persona\":\"collections\",\"facts_from\":"
	    "\"call\",\"facts\":{\"full_name\":\"A B\",\"account_last4\":"
	    "\"1234\"}}", "facts_from: \"call\"");
	one_bad("{\"app\":\"agent\",\"persona\":\"collections\",\"facts_from\":"
	    "\"line\",\"tools\":[\"verify_identity\"]}",
	    "tools: verify_identity needs \"facts\"");
	one_bad("{\"app\":\"agent\",\"persona\":\"hvac\",\"transport\":"
	    "\"conversation_relay\",\"speaks_first\":\"callee\"}",
	    "speaks_first: a Media Streams line's");
}
