/*
 * intent.c — see intent.h for the rule.
 *
 * The transcript is scanned twice with the same word reader: once to count
 * the words, once to keep the last INTENT_MAX_WORDS of them in a fixed
 * array on the stack.  Keyword matching, negation and the choice then work
 * on that array.  Everything is bounded by the array; nothing is allocated.
 */
#include "personas/intent.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WORD_MAX	23	/* longer words are kept but match nothing */
#define KW_WORDS_MAX	3
#define CHAIN_GAP_MAX	3	/* "or" plus at most two determiners */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct word {
	char		w[WORD_MAX + 1];	/* "" when too long */
	unsigned	clause;
};

struct reader {
	const unsigned char	*start;
	const unsigned char	*p;
	unsigned		 clause;
};

struct keyword {
	const char		*words;		/* one space between words */
	enum practice_mode	 mode;
	int			 strength;	/* 2 names the mode, 1 hints */
};

struct hit {
	size_t			 start, end;	/* words [start, end) */
	enum practice_mode	 mode;
	int			 strength;
	int			 negated;
};

static const char *const mode_names[] = {
	[MODE_NONE] = "none",
	[MODE_COLD_CALL] = "cold_call",
	[MODE_INTERVIEW] = "interview",
	[MODE_SMALL_TALK] = "small_talk",
};

/*
 * Base forms; suffixes are matched by word_match().  Order does not
 * matter: the longest keyword at a position wins, and keywords of the
 * same length starting at the same word never disagree on the mode.
 */
static const struct keyword keywords[] = {
	{ "cold call",			MODE_COLD_CALL, 2 },
	{ "coldcall",			MODE_COLD_CALL, 2 },
	{ "code call",			MODE_COLD_CALL, 2 },	/* ASR */
	{ "cold outreach",		MODE_COLD_CALL, 2 },
	{ "cold pitch",			MODE_COLD_CALL, 2 },
	{ "sales call",			MODE_COLD_CALL, 2 },
	{ "sales pitch",		MODE_COLD_CALL, 2 },
	{ "sales practice",		MODE_COLD_CALL, 2 },
	{ "sales practise",		MODE_COLD_CALL, 2 },
	{ "discovery call",		MODE_COLD_CALL, 2 },
	{ "prospecting",		MODE_COLD_CALL, 2 },
	{ "telemarketing",		MODE_COLD_CALL, 2 },
	{ "telesales",			MODE_COLD_CALL, 2 },
	{ "objection handling",		MODE_COLD_CALL, 2 },
	{ "sales",			MODE_COLD_CALL, 1 },
	{ "sell",			MODE_COLD_CALL, 1 },
	{ "selling",			MODE_COLD_CALL, 1 },
	{ "pitch",			MODE_COLD_CALL, 1 },
	{ "elevator pitch",		MODE_COLD_CALL, 1 },
	{ "objection",			MODE_COLD_CALL, 1 },

	{ "interview",			MODE_INTERVIEW, 2 },
	{ "job interview",		MODE_INTERVIEW, 2 },
	{ "mock interview",		MODE_INTERVIEW, 2 },
	{ "interview prep",		MODE_INTERVIEW, 2 },
	{ "inner view",			MODE_INTERVIEW, 2 },	/* ASR */
	{ "enter view",			MODE_INTERVIEW, 2 },	/* ASR */
	{ "phone screen",		MODE_INTERVIEW, 2 },
	{ "behavioral question",	MODE_INTERVIEW, 2 },
	{ "behavioural question",	MODE_INTERVIEW, 2 },
	{ "hiring manager",		MODE_INTERVIEW, 1 },
	{ "recruiter",			MODE_INTERVIEW, 1 },
	{ "star method",		MODE_INTERVIEW, 1 },

	{ "small talk",			MODE_SMALL_TALK, 2 },
	{ "smalltalk",			MODE_SMALL_TALK, 2 },
	{ "chit chat",			MODE_SMALL_TALK, 2 },
	{ "chitchat",			MODE_SMALL_TALK, 2 },
	{ "just chat",			MODE_SMALL_TALK, 2 },
	{ "just talk",			MODE_SMALL_TALK, 2 },
	{ "casual conversation",	MODE_SMALL_TALK, 2 },
	{ "casual chat",		MODE_SMALL_TALK, 2 },
	{ "casual talk",		MODE_SMALL_TALK, 2 },
	{ "coffee chat",		MODE_SMALL_TALK, 2 },
	{ "chat",			MODE_SMALL_TALK, 1 },
	{ "networking",			MODE_SMALL_TALK, 1 },
	{ "mingle",			MODE_SMALL_TALK, 1 },
	{ "mingling",			MODE_SMALL_TALK, 1 },
	{ "banter",			MODE_SMALL_TALK, 1 },
	{ "icebreaker",			MODE_SMALL_TALK, 1 },
	{ "ice breaker",		MODE_SMALL_TALK, 1 },
	{ "water cooler",		MODE_SMALL_TALK, 1 },
};

static const char *const fillers[] = {
	"um", "umm", "uh", "uhh", "uhm", "erm", "er", "ah", "eh", "hmm", "hm",
	"mm", "mmm", "mhm",
};

static const char *const negations[] = {
	"not", "no", "dont", "doesnt", "didnt", "never", "without", "nor",
	"neither", "wont", "cant", "cannot", "wouldnt", "shouldnt", "isnt",
	"arent", "wasnt", "werent", "havent", "hasnt", "skip", "except",
	"than",
};

/* A negation directly followed by one of these is not one. */
static const char *const not_negating[] = {
	"sure", "certain", "know", "mind", "idea", "problem", "worries",
	"worry", "doubt", "matter", "wait",
};

/* Words that turn a sentence around: a negation does not reach past. */
static const char *const turns[] = {
	"but", "just", "actually", "maybe", "perhaps", "prefer", "then", "so",
	"though", "although", "however", "only", "because", "instead",
	"rather", "anyway",
};

static const char *const connectors[] = { "or", "nor", "and" };
static const char *const determiners[] = {
	"a", "an", "the", "any", "some", "even",
};

static const char *const suffixes[] = {
	"s", "es", "ing", "ings", "ed", "er", "ers",
};

static int
in_list(const char *w, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(w, list[i]) == 0)
			return 1;
	return 0;
}

static int
is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80;
}

/*
 * The length of the punctuation at p that is not part of a word, and
 * whether it ends a clause (*brk) or is an apostrophe (*apos); 0 when p
 * is a word byte.  UTF-8: U+2018/U+2019 are apostrophes, U+2013/U+2014
 * (dashes) and U+2026 (ellipsis) end a clause, U+201C/U+201D (quotes) and
 * U+00A0 separate words; any other byte from 0x80 up is part of a word.
 */
static size_t
punct_len(const struct reader *r, const unsigned char *p, int *brk,
    int *apos)
{
	unsigned char c = p[0];

	*brk = 0;
	*apos = 0;
	if (c == 0xe2 && p[1] == 0x80) {
		switch (p[2]) {
		case 0x98: case 0x99:
			*apos = 1;
			return 3;
		case 0x93: case 0x94: case 0xa6:
			*brk = 1;
			return 3;
		case 0x9c: case 0x9d:
			return 3;
		}
		return 0;
	}
	if (c == 0xc2 && p[1] == 0xa0)
		return 2;
	if (is_word_byte(c))
		return 0;
	switch (c) {
	case '\'': case '`':
		*apos = 1;
		break;
	case '.': case ',': case ';': case ':': case '!': case '?': case '(':
	case ')':
		*brk = 1;
		break;
	case '-':
		/* "cold-call" joins; "calling - no, interview" breaks */
		*brk = p == r->start || !is_word_byte(p[-1]) ||
		    !is_word_byte(p[1]);
		break;
	}
	return 1;
}

/* The next word, fillers skipped; 0 at the end of the text. */
static int
read_word(struct reader *r, struct word *w)
{
	size_t n, len;
	int brk, apos;

	for (;;) {
		/* separators */
		while (*r->p != '\0' && (n = punct_len(r, r->p, &brk,
		    &apos)) > 0) {
			if (brk)
				r->clause++;
			r->p += n;
		}
		if (*r->p == '\0')
			return 0;
		/* the word; an apostrophe inside it is dropped */
		len = 0;
		while (*r->p != '\0') {
			n = punct_len(r, r->p, &brk, &apos);
			if (n > 0 && !(apos && is_word_byte(r->p[n])))
				break;
			if (n > 0) {
				r->p += n;
				continue;
			}
			if (len < WORD_MAX + 1) {
				unsigned char c = *r->p;

				w->w[len] = (char)(c >= 'A' && c <= 'Z' ?
				    c - 'A' + 'a' : c);
			}
			len++;
			r->p++;
		}
		if (len > WORD_MAX)
			len = 0;
		w->w[len] = '\0';
		w->clause = r->clause;
		if (!in_list(w->w, fillers, NELEM(fillers)))
			return 1;
	}
}

static int
is_vowel(char c)
{
	return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

/* Does word w match the keyword word k[0..klen), suffixes allowed? */
static int
word_match(const char *w, const char *k, size_t klen)
{
	const char *rest;

	if (klen == 0 || strncmp(w, k, klen) != 0)
		return 0;
	rest = w + klen;
	if (*rest == '\0')
		return 1;
	/* a doubled last consonant: chat -> chatting, prep -> prepping */
	if (*rest == k[klen - 1] && !is_vowel(*rest))
		rest++;
	return in_list(rest, suffixes, NELEM(suffixes));
}

/* How many words of ws[i..n) the keyword matches: its length, or 0. */
static size_t
keyword_match(const struct word *ws, size_t n, size_t i,
    const struct keyword *kw)
{
	const char *k = kw->words, *sp;
	size_t len, m = 0;

	for (;;) {
		sp = strchr(k, ' ');
		len = sp != NULL ? (size_t)(sp - k) : strlen(k);
		if (i + m >= n || !word_match(ws[i + m].w, k, len))
			return 0;
		m++;
		if (sp == NULL)
			return m;
		k = sp + 1;
	}
}

static int
is_negation(const struct word *ws, size_t n, size_t j)
{
	if (strcmp(ws[j].w, "of") == 0)
		return j > 0 && strcmp(ws[j - 1].w, "instead") == 0;
	if (!in_list(ws[j].w, negations, NELEM(negations)))
		return 0;
	return !(j + 1 < n && ws[j + 1].clause == ws[j].clause &&
	    in_list(ws[j + 1].w, not_negating, NELEM(not_negating)));
}

/* A word that stops a negation; "instead of" and "rather than" do not. */
static int
is_turn(const struct word *ws, size_t n, size_t j)
{
	if (!in_list(ws[j].w, turns, NELEM(turns)))
		return 0;
	if (j + 1 < n && strcmp(ws[j].w, "instead") == 0 &&
	    strcmp(ws[j + 1].w, "of") == 0)
		return 0;
	if (j + 1 < n && strcmp(ws[j].w, "rather") == 0 &&
	    strcmp(ws[j + 1].w, "than") == 0)
		return 0;
	return 1;
}

/* Is hit h negated by a negation before it?  prev: the hit before h. */
static int
negated_directly(const struct word *ws, size_t n, const struct hit *h,
    const struct hit *prev)
{
	size_t j, lo = h->start > INTENT_NEG_WINDOW ?
	    h->start - INTENT_NEG_WINDOW : 0;

	for (j = h->start; j-- > lo; ) {
		if (ws[j].clause != ws[h->start].clause || is_turn(ws, n, j))
			return 0;
		/* another keyword in between takes the negation */
		if (prev != NULL && j < prev->end)
			return 0;
		if (is_negation(ws, n, j))
			return 1;
	}
	return 0;
}

/* Is hit h joined to a negated prev by "or", "nor" or "and"? */
static int
negated_by_chain(const struct word *ws, const struct hit *h,
    const struct hit *prev)
{
	size_t j;

	if (prev == NULL || !prev->negated || h->start <= prev->end ||
	    h->start - prev->end > CHAIN_GAP_MAX)
		return 0;
	if (!in_list(ws[prev->end].w, connectors, NELEM(connectors)))
		return 0;
	for (j = prev->end; j <= h->start; j++)
		if (ws[j].clause != ws[prev->end].clause)
			return 0;
	for (j = prev->end + 1; j < h->start; j++)
		if (!in_list(ws[j].w, determiners, NELEM(determiners)))
			return 0;
	return 1;
}

enum practice_mode
intent_detect(const char *transcript)
{
	struct word ws[INTENT_MAX_WORDS], skip;
	struct reader r;
	struct hit h, prev;
	enum practice_mode best = MODE_NONE;
	size_t total = 0, n = 0, i, k, len, m;
	int have_prev = 0, best_strength = 0;

	if (transcript == NULL)
		return MODE_NONE;

	/* keep the last INTENT_MAX_WORDS words */
	r = (struct reader){ (const unsigned char *)transcript,
	    (const unsigned char *)transcript, 0 };
	while (read_word(&r, &skip))
		total++;
	r = (struct reader){ (const unsigned char *)transcript,
	    (const unsigned char *)transcript, 0 };
	for (i = 0; i < total; i++) {
		if (i + INTENT_MAX_WORDS < total)
			(void)read_word(&r, &skip);
		else
			(void)read_word(&r, &ws[n++]);
	}

	for (i = 0; i < n; ) {
		len = 0;
		h.mode = MODE_NONE;
		h.strength = 0;
		for (k = 0; k < NELEM(keywords); k++) {
			m = keyword_match(ws, n, i, &keywords[k]);
			if (m > len) {
				len = m;
				h.mode = keywords[k].mode;
				h.strength = keywords[k].strength;
			}
		}
		if (len == 0) {
			i++;
			continue;
		}
		h.start = i;
		h.end = i + len;
		h.negated = negated_directly(ws, n, &h,
		    have_prev ? &prev : NULL) ||
		    negated_by_chain(ws, &h, have_prev ? &prev : NULL);
		if (!h.negated && h.strength >= best_strength) {
			best_strength = h.strength;
			best = h.mode;
		}
		prev = h;
		have_prev = 1;
		i = h.end;
	}
	return best;
}

const char *
practice_mode_name(enum practice_mode m)
{
	if ((unsigned)m >= NELEM(mode_names))
		return mode_names[MODE_NONE];
	return mode_names[m];
}

enum practice_mode
practice_mode_parse(const char *name)
{
	const char *s;
	size_t i, j;
	char a, b;

	if (name == NULL)
		return MODE_NONE;
	for (i = MODE_NONE + 1; i < NELEM(mode_names); i++) {
		s = mode_names[i];
		for (j = 0; s[j] != '\0' && name[j] != '\0'; j++) {
			a = name[j];
			b = s[j];
			if (a >= 'A' && a <= 'Z')
				a = (char)(a - 'A' + 'a');
			if (a == '-' || a == ' ')
				a = '_';
			if (a != b)
				break;
		}
		if (s[j] == '\0' && name[j] == '\0')
			return (enum practice_mode)i;
	}
	return MODE_NONE;
}

/* 32-bit FNV-1a over the digits of s, or over all of s if it has none. */
static uint32_t
caller_hash(const char *s)
{
	const unsigned char *p;
	uint32_t h = 2166136261u;
	int digits = 0;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p >= '0' && *p <= '9') {
			h = (h ^ *p) * 16777619u;
			digits = 1;
		}
	if (digits)
		return h;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

unsigned
intent_pick(const char *caller, unsigned calls_so_far, unsigned n)
{
	uint32_t h = caller_hash(caller != NULL ? caller : "");

	if (n == 0)
		return 0;
	return (h % n + calls_so_far % n) % n;
}
