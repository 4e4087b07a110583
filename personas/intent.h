/*
 * intent.h — the intake step of the practice line: which practice mode a
 * caller asked for, and which cold-call prospect they meet.
 *
 * The intake persona normally reports the caller's choice with a
 * select_practice_mode function call (whose "mode" argument
 * practice_mode_parse() reads).  intent_detect() is the fallback on the
 * caller's transcript for when that call does not come.  Pure functions: no I/O, no
 * allocation, no globals written; any process may call them.
 *
 * The rule intent_detect() follows:
 *
 *  1. The transcript is cut into words: ASCII letters are lower-cased,
 *     apostrophes (' ` and the typographic ones) are dropped ("don't" is
 *     "dont"), and everything else that is not a letter, digit or UTF-8
 *     byte separates words.  . , ; : ! ? ( ) an ellipsis, a dash, and a
 *     hyphen that is not between two words ("calling - no") also end a
 *     clause; "cold-call" is two words of one clause.  Fillers (um, uh,
 *     erm, hmm, ...) are dropped.  Only the last INTENT_MAX_WORDS words
 *     are looked at.
 *  2. Keywords are one to three words; each word also matches itself with
 *     a suffix (-s -es -ing -ings -ed -er -ers, with a doubled last
 *     consonant too: "chatting"), so "cold call" finds "cold calls",
 *     "cold-calling" and "cold calling".  At each word the longest keyword
 *     that starts there wins.  A keyword names a mode (strength 2: "cold
 *     call", "sales call", "prospecting", "interview", "mock interview",
 *     "small talk", "chit chat", "just chat", "casual conversation", ...)
 *     or only hints at it (strength 1: "sales", "selling", "pitch",
 *     "hiring manager", "recruiter", "chat", "networking", ...).
 *  3. A keyword is negated when a negation (not, no, don't, never,
 *     without, rather than, instead of, except, skip, ...) comes at most
 *     INTENT_NEG_WINDOW words before it, in the same clause, with no
 *     other keyword and none of the words that turn a sentence around
 *     (but, just, actually, maybe, perhaps, instead, rather, prefer,
 *     then, so, though, however, ...) in between.  A negation directly
 *     followed by sure, certain, know, mind, idea, problem, worries,
 *     doubt, matter or wait ("not sure", "don't mind", "no wait") is not
 *     one.  A negation also covers the keywords joined to a negated one
 *     by or, nor or and, with at most two of a, an, the, any, some, even
 *     in between: "not cold calling or an interview" negates both.
 *     Negated keywords are ignored.
 *  4. Of the keywords left, only the strongest count, and of those the
 *     one mentioned last wins: a caller who corrects themselves ("cold
 *     calling, oh wait, actually an interview") gets what they said last,
 *     and "I'd like to chat about cold calling" is a cold call.
 *  5. Nothing left: MODE_NONE.
 *
 * Examples: "I want to practice cold calling" -> MODE_COLD_CALL; "interview
 * prep please" -> MODE_INTERVIEW; "just want to chat" -> MODE_SMALL_TALK;
 * "I don't want to do an interview, just chat" -> MODE_SMALL_TALK.
 */
#ifndef VR_PERSONAS_INTENT_H
#define VR_PERSONAS_INTENT_H

#define INTENT_MAX_WORDS	256	/* words of a transcript looked at */
#define INTENT_NEG_WINDOW	6	/* words a negation reaches forward */

enum practice_mode {
	MODE_NONE = 0,
	MODE_COLD_CALL,
	MODE_INTERVIEW,
	MODE_SMALL_TALK,
};

/* The mode the transcript asks for; MODE_NONE for NULL or no match. */
enum practice_mode intent_detect(const char *transcript);

/* "cold_call", "interview", "small_talk"; "none" for MODE_NONE and for
 * values outside the enum.  Never NULL. */
const char *practice_mode_name(enum practice_mode m);

/*
 * The mode a name stands for: the names practice_mode_name() gives,
 * compared without regard to case, with '-' or ' ' accepted for '_'
 * ("Cold-Call" is MODE_COLD_CALL).  MODE_NONE for NULL, "none" and
 * anything else.
 */
enum practice_mode practice_mode_parse(const char *name);

/*
 * Which of n personas (the practice line's cold-call prospects) a caller
 * meets on their next call: an index below n (0 when n is 0).
 *
 * index = (h % n + calls_so_far % n) % n, where h is the 32-bit FNV-1a
 * hash of the caller's digits (so "+1 415 555 2671" and "+14155552671"
 * are the same caller; a caller without digits is hashed whole, NULL as
 * "").  The same caller and count always give the same index, and n
 * calls in a row by one caller meet all n.  calls_so_far is the number of
 * calls the caller made before this one.
 */
unsigned intent_pick(const char *caller, unsigned calls_so_far, unsigned n);

#endif
