/*
 * fuzz_intent.c — personas/intent.c: the practice mode a caller asked for.
 *
 * Input: a transcript (cut at a NUL byte, as a C string is).  Checked:
 *  - intent_detect() answers a mode of the enum, and the same one for the
 *    transcript with its ASCII letters upper-cased (words are compared
 *    lower-cased, and case never moves a word boundary);
 *  - the mode's name parses back to the mode; practice_mode_parse() of
 *    the transcript is a mode too;
 *  - intent_pick() gives an index below n, the same for the caller's
 *    digits alone, and n calls in a row meet all n (n = 6, the shipped
 *    practice line's prospects).
 */
#include "test/fuzz/fuzz.h"

#include "personas/intent.h"

FUZZ_TARGET("intent");

#define NPROSPECTS 6

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	enum practice_mode m, m2;
	char *s, *up, *digits;
	size_t len, i, nd = 0;
	unsigned seen = 0, calls;

	s = fuzz_part(&in, &len);
	m = intent_detect(s);
	FUZZ_ASSERT(m >= MODE_NONE && m <= MODE_SMALL_TALK);
	FUZZ_ASSERT(practice_mode_parse(practice_mode_name(m)) == m);

	if ((up = strdup(s)) == NULL || (digits = malloc(len + 1)) == NULL)
		abort();
	for (i = 0; i < len; i++) {
		if (up[i] >= 'a' && up[i] <= 'z')
			up[i] = (char)(up[i] - 'a' + 'A');
		if (s[i] >= '0' && s[i] <= '9')
			digits[nd++] = s[i];
	}
	digits[nd] = '\0';
	m2 = intent_detect(up);
	FUZZ_ASSERT(m2 == m);

	m2 = practice_mode_parse(s);
	FUZZ_ASSERT(m2 >= MODE_NONE && m2 <= MODE_SMALL_TALK);

	calls = (unsigned)(len % 1000) * 7919u;
	for (i = 0; i < NPROSPECTS; i++) {
		unsigned k = intent_pick(s, calls + (unsigned)i, NPROSPECTS);

		FUZZ_ASSERT(k < NPROSPECTS);
		seen |= 1u << k;
	}
	FUZZ_ASSERT(seen == (1u << NPROSPECTS) - 1);
	if (nd > 0)
		FUZZ_ASSERT(intent_pick(s, calls, NPROSPECTS) ==
		    intent_pick(digits, calls, NPROSPECTS));
	free(up);
	free(digits);
	free(s);
	return 0;
}
