/*
 * test_intent.c — the intake keyword fallback and the choice of prospect
 * (personas/intent.h).
 */
#include "test/unit/test.h"

#include "daemon/common/util.h"
#include "personas/intent.h"

#define NONE	MODE_NONE
#define COLD	MODE_COLD_CALL
#define INTV	MODE_INTERVIEW
#define TALK	MODE_SMALL_TALK

struct intent_case {
	const char		*text;
	enum practice_mode	 want;
};

static void
check_cases(const struct intent_case *c, size_t n)
{
	enum practice_mode got;
	size_t i;
	int bad = 0;

	for (i = 0; i < n; i++) {
		got = intent_detect(c[i].text);
		if (got != c[i].want) {
			fprintf(stderr, "  \"%s\": %s, want %s\n", c[i].text,
			    practice_mode_name(got),
			    practice_mode_name(c[i].want));
			bad++;
		}
	}
	if (bad > 0)
		TEST_FAIL_("%d of %zu phrasings misread", bad, n);
}

TEST(intent_issue_examples)
{
	ASSERT_EQ(intent_detect("I want to practice cold calling"), COLD);
	ASSERT_EQ(intent_detect("interview prep please"), INTV);
	ASSERT_EQ(intent_detect("just want to chat"), TALK);
	ASSERT_EQ(intent_detect("I don't want to do an interview, just chat"),
	    TALK);
}

TEST(intent_phrasings)
{
	static const struct intent_case cases[] = {
		/* cold calling, spelt and heard many ways */
		{ "I want to practise cold calling", COLD },
		{ "Cold call.", COLD },
		{ "cold-call practice please", COLD },
		{ "COLD CALLING!!!", COLD },
		{ "I'd like to do some cold calls", COLD },
		{ "can we do a coldcall", COLD },
		{ "um, cold, uh, calling I guess", COLD },
		{ "code calling", COLD },
		{ "I need to work on my sales calls", COLD },
		{ "sales pitch practice", COLD },
		{ "prospecting", COLD },
		{ "I want to practise my pitch", COLD },
		{ "pitching to a CFO", COLD },
		{ "I sell software to agencies", COLD },
		{ "objection handling", COLD },
		{ "cold_call", COLD },
		/* interviews */
		{ "Interview prep, please.", INTV },
		{ "I have a job interview on Monday", INTV },
		{ "mock interview", INTV },
		{ "practicing for interviews", INTV },
		{ "I'm interviewing next week", INTV },
		{ "the inner view one", INTV },
		{ "talking to a hiring manager", INTV },
		{ "I've got a phone screen with a recruiter", INTV },
		{ "behavioural questions", INTV },
		{ "behavioral questions", INTV },
		{ "INTERVIEW", INTV },
		{ "I'm interviewing for a sales job", INTV },
		/* small talk */
		{ "small talk", TALK },
		{ "Small-talk, please!", TALK },
		{ "smalltalk", TALK },
		{ "some chit-chat", TALK },
		{ "chitchat", TALK },
		{ "just chatting really", TALK },
		{ "I'd like a casual conversation", TALK },
		{ "networking events scare me", TALK },
		{ "Can we just talk?", TALK },
		{ "small_talk", TALK },
		/* the stronger keyword wins over a hint */
		{ "I'd like to chat about cold calling", COLD },
		{ "can we chat about interview prep", INTV },
		{ "I'm in sales but I have an interview coming up", INTV },
		/* self-corrections: the last one said wins */
		{ "cold calling, oh wait, actually an interview", INTV },
		{ "interview - no, small talk", TALK },
		/* negations */
		{ "not cold calling, interview", INTV },
		{ "I don't want to do an interview, just chat", TALK },
		{ "I don’t want an interview; small talk", TALK },
		{ "no interview please", NONE },
		{ "not cold calling or an interview, small talk", TALK },
		{ "I don't want cold calls or interviews just chit chat", TALK },
		{ "not a job interview a sales call", COLD },
		{ "small talk rather than an interview", TALK },
		{ "I'd rather do small talk than an interview", TALK },
		{ "interview instead of cold calling", INTV },
		{ "I'd rather not do interviews, maybe cold calling", COLD },
		{ "I never know what to say in small talk", TALK },
		{ "I'm not sure, maybe an interview?", INTV },
		{ "I'm not sure interview I guess", INTV },
		{ "I don't mind, cold calling is fine", COLD },
		{ "no wait, small talk", TALK },
		{ "I don't really want to practise interviews", NONE },
		{ "skip the small talk", NONE },
		/* nothing asked for */
		{ "", NONE },
		{ "   ...  ", NONE },
		{ "hello?", NONE },
		{ "yes please", NONE },
		{ "what can I practise here?", NONE },
		{ "colder weather today", NONE },
		{ "chateau", NONE },
		{ "the network is bad", NONE },
		{ "um uh hmm", NONE },
	};

	ASSERT_GE(ARRAY_LEN(cases), 40);
	check_cases(cases, ARRAY_LEN(cases));
}

TEST(intent_null_and_long)
{
	char big[16384];
	size_t i, n;

	ASSERT_EQ(intent_detect(NULL), NONE);

	/* a long transcript: only the last words count */
	n = 0;
	n += (size_t)snprintf(big + n, sizeof(big) - n, "small talk ");
	for (i = 0; i < 400; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "blah ");
	ASSERT_LT(n, sizeof(big));
	ASSERT_EQ(intent_detect(big), NONE);
	n += (size_t)snprintf(big + n, sizeof(big) - n, "and then interviews");
	ASSERT_EQ(intent_detect(big), INTV);

	/* a very long word matches nothing and breaks nothing */
	memset(big, 'x', 1000);
	memcpy(big + 1000, " cold call", 11);
	ASSERT_EQ(intent_detect(big), COLD);
	memcpy(big, "interview", 9);
	ASSERT_EQ(intent_detect(big), COLD);

	/* bytes from 0x80 up are word bytes; a lone 0xe2 is harmless */
	ASSERT_EQ(intent_detect("caf\xc3\xa9 small talk"), TALK);
	ASSERT_EQ(intent_detect("\xe2"), NONE);
	ASSERT_EQ(intent_detect("\xe2\x80"), NONE);
	ASSERT_EQ(intent_detect("cold\xe2\x80\x94" "calling"), COLD);
	ASSERT_EQ(intent_detect("-interview-"), INTV);
}

TEST(intent_mode_names)
{
	ASSERT_STR_EQ(practice_mode_name(MODE_NONE), "none");
	ASSERT_STR_EQ(practice_mode_name(MODE_COLD_CALL), "cold_call");
	ASSERT_STR_EQ(practice_mode_name(MODE_INTERVIEW), "interview");
	ASSERT_STR_EQ(practice_mode_name(MODE_SMALL_TALK), "small_talk");
	ASSERT_STR_EQ(practice_mode_name((enum practice_mode)42), "none");
	ASSERT_STR_EQ(practice_mode_name((enum practice_mode)-1), "none");

	ASSERT_EQ(practice_mode_parse("cold_call"), COLD);
	ASSERT_EQ(practice_mode_parse("interview"), INTV);
	ASSERT_EQ(practice_mode_parse("small_talk"), TALK);
	ASSERT_EQ(practice_mode_parse("Cold-Call"), COLD);
	ASSERT_EQ(practice_mode_parse("SMALL TALK"), TALK);
	ASSERT_EQ(practice_mode_parse(NULL), NONE);
	ASSERT_EQ(practice_mode_parse(""), NONE);
	ASSERT_EQ(practice_mode_parse("none"), NONE);
	ASSERT_EQ(practice_mode_parse("cold"), NONE);
	ASSERT_EQ(practice_mode_parse("cold_calls"), NONE);
	ASSERT_EQ(practice_mode_parse("interview "), NONE);

	/* every name parses back to its mode */
	ASSERT_EQ(practice_mode_parse(practice_mode_name(COLD)), COLD);
	ASSERT_EQ(practice_mode_parse(practice_mode_name(INTV)), INTV);
	ASSERT_EQ(practice_mode_parse(practice_mode_name(TALK)), TALK);
}

#define NPROSPECTS 6	/* the shipped practice line's */

TEST(intent_prospects_vary_per_call)
{
	static const char *const callers[] = {
		"+14155552671", "+447700900123", "+15005550006", "", NULL,
		"anonymous",
	};
	unsigned seen, calls, base;
	size_t c;
	int i;

	for (c = 0; c < ARRAY_LEN(callers); c++) {
		/* six calls in a row, from any starting count, meet all six */
		for (base = 0; base < 13; base += 6) {
			seen = 0;
			for (calls = base; calls < base + 6; calls++) {
				i = (int)intent_pick(callers[c], calls,
				    NPROSPECTS);
				seen |= 1u << i;
			}
			ASSERT_EQ(seen, 0x3f);
		}
		/* the next call meets someone new */
		for (calls = 0; calls < 20; calls++)
			ASSERT_NE(intent_pick(callers[c], calls, NPROSPECTS),
			    intent_pick(callers[c], calls + 1, NPROSPECTS));
		/* wrapping the count does not repeat a prospect either */
		ASSERT_NE(intent_pick(callers[c], 0xffffffffu, NPROSPECTS),
		    intent_pick(callers[c], 0xfffffffeu, NPROSPECTS));
	}
}

TEST(intent_prospects_stable)
{
	unsigned a, b, calls;
	int spread = 0, first;

	for (calls = 0; calls < 12; calls++) {
		a = intent_pick("+14155552671", calls, NPROSPECTS);
		b = intent_pick("+14155552671", calls, NPROSPECTS);
		ASSERT_EQ(a, b);
		ASSERT_LT(a, NPROSPECTS);
		/* the same digits are the same caller */
		ASSERT_EQ(intent_pick("+1 (415) 555-2671", calls, NPROSPECTS), a);
	}
	ASSERT_EQ(intent_pick(NULL, 3, NPROSPECTS), intent_pick("", 3, NPROSPECTS));
	/* any number of personas; none gives 0 */
	for (unsigned n = 1; n < 9; n++)
		for (calls = 0; calls < 20; calls++)
			ASSERT_LT(intent_pick("+14155552671", calls, n), n);
	ASSERT_EQ(intent_pick("+14155552671", 5, 0), 0);

	/* first calls are spread over the prospects, not all the same */
	first = (int)intent_pick("+14155550000", 0, NPROSPECTS);
	for (calls = 1; calls < 40; calls++) {
		char num[32];

		snprintf(num, sizeof(num), "+1415555%04u", calls);
		if ((int)intent_pick(num, 0, NPROSPECTS) != first)
			spread = 1;
	}
	ASSERT(spread);
}
