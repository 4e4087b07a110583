/*
 * fuzz_twiml.c — proto/twiml.c: XML escaping and the TwiML builders.
 *
 * Input: a byte of output size, a byte of choices, then NUL-separated
 * strings.  Checked:
 *  - xml_escape() of each string never writes a raw < > " ' or an & that
 *    does not start one of the five entities; it unescapes to the string
 *    without the control characters XML forbids; it returns the same
 *    length whatever the room, and with too little room writes a prefix of
 *    the full escape that does not end inside an entity;
 *  - a document built from the strings is well formed: one prolog, then
 *    <Response> holding only balanced elements, attribute values quoted
 *    and escaped, text escaped; the text of <Say> reads back as given.
 */
#include "test/fuzz/fuzz.h"

#include "proto/twiml.h"

FUZZ_TARGET("twiml");

static const char *const ents[] = {
	"&amp;", "&lt;", "&gt;", "&quot;", "&apos;",
};
static const char ent_chars[] = "&<>\"'";

/* The entity at s, as an index into ents, or -1. */
static int
entity_at(const char *s)
{
	for (int i = 0; i < 5; i++)
		if (strncmp(s, ents[i], strlen(ents[i])) == 0)
			return i;
	return -1;
}

/* Unescape s[0..n) into out; -1 on a raw special or a bad entity. */
static long
unescape(const char *s, size_t n, char *out)
{
	size_t i = 0, o = 0;
	int e;

	while (i < n) {
		if (s[i] == '<' || s[i] == '>' || s[i] == '"' || s[i] == '\'')
			return -1;
		if (s[i] == '&') {
			if ((e = entity_at(s + i)) < 0 ||
			    i + strlen(ents[e]) > n)
				return -1;
			out[o++] = ent_chars[e];
			i += strlen(ents[e]);
			continue;
		}
		out[o++] = s[i++];
	}
	out[o] = '\0';
	return (long)o;
}

/* s without the control bytes XML 1.0 forbids. */
static size_t
strip_controls(const char *s, char *out)
{
	size_t o = 0;

	for (; *s; s++)
		if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n' ||
		    *s == '\r')
			out[o++] = *s;
	out[o] = '\0';
	return o;
}

static void
check_escape(const char *s, size_t outlen)
{
	size_t len = strlen(s), need, need2, n;
	char *full, *part, *plain, *back;

	need = xml_escape(s, NULL, 0);
	FUZZ_ASSERT(need <= 6 * len);
	if ((full = malloc(need + 1)) == NULL ||
	    (part = malloc(outlen > 0 ? outlen : 1)) == NULL ||
	    (plain = malloc(len + 1)) == NULL ||
	    (back = malloc(need + 1)) == NULL)
		abort();
	FUZZ_ASSERT(xml_escape(s, full, need + 1) == need);
	FUZZ_ASSERT(strlen(full) == need);
	n = strip_controls(s, plain);
	FUZZ_ASSERT(unescape(full, need, back) == (long)n);
	FUZZ_ASSERT(memcmp(back, plain, n) == 0);

	need2 = xml_escape(s, part, outlen);
	FUZZ_ASSERT(need2 == need);
	if (outlen > 0) {
		size_t pl = strlen(part);

		FUZZ_ASSERT(pl < outlen);
		FUZZ_ASSERT(memcmp(part, full, pl) == 0);
		/* not cut inside an entity */
		FUZZ_ASSERT(unescape(part, pl, back) >= 0);
	}
	free(full);
	free(part);
	free(plain);
	free(back);
}

/* ---- a small well-formedness check for what the builders make ---- */

struct xml {
	const char	*p, *end;
	const char	*stack[32];
	size_t		 stack_len[32];
	int		 depth;
};

static int
name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Escaped character data up to the next '<' (or a closing quote). */
static void
xml_chars(struct xml *x, char stop)
{
	while (x->p < x->end && *x->p != '<' && *x->p != stop) {
		FUZZ_ASSERT(*x->p != '>' && *x->p != '"' && *x->p != '\'');
		if (*x->p == '&') {
			int e = entity_at(x->p);

			FUZZ_ASSERT(e >= 0);
			x->p += strlen(ents[e]);
		} else {
			FUZZ_ASSERT((unsigned char)*x->p >= 0x20 ||
			    *x->p == '\t' || *x->p == '\n' || *x->p == '\r');
			x->p++;
		}
	}
}

static void
xml_check(const char *doc, size_t len)
{
	static const char prolog[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
	struct xml x = { doc, doc + len, { NULL }, { 0 }, 0 };
	const char *name;
	size_t nl;
	int seen_root = 0;

	FUZZ_ASSERT(strncmp(doc, prolog, sizeof(prolog) - 1) == 0);
	x.p += sizeof(prolog) - 1;
	while (x.p < x.end) {
		if (x.depth > 0)
			xml_chars(&x, '\0');
		if (x.p == x.end)
			break;
		FUZZ_ASSERT(*x.p == '<');
		x.p++;
		if (*x.p == '/') {
			x.p++;
			for (name = x.p; x.p < x.end && name_char(*x.p); x.p++)
				;
			nl = (size_t)(x.p - name);
			FUZZ_ASSERT(x.depth > 0);
			x.depth--;
			FUZZ_ASSERT(nl == x.stack_len[x.depth] &&
			    memcmp(name, x.stack[x.depth], nl) == 0);
			FUZZ_ASSERT(x.p < x.end && *x.p == '>');
			x.p++;
			if (x.depth == 0)
				break;
			continue;
		}
		for (name = x.p; x.p < x.end && name_char(*x.p); x.p++)
			;
		nl = (size_t)(x.p - name);
		FUZZ_ASSERT(nl > 0);
		if (x.depth == 0) {
			FUZZ_ASSERT(!seen_root && nl == 8 &&
			    memcmp(name, "Response", 8) == 0);
			seen_root = 1;
		}
		/* attributes: name="escaped" */
		while (x.p < x.end && *x.p == ' ') {
			x.p++;
			while (x.p < x.end && name_char(*x.p))
				x.p++;
			FUZZ_ASSERT(x.p + 1 < x.end && x.p[0] == '=' &&
			    x.p[1] == '"');
			x.p += 2;
			xml_chars(&x, '"');
			FUZZ_ASSERT(x.p < x.end && *x.p == '"');
			x.p++;
		}
		if (x.p < x.end && *x.p == '/') {
			FUZZ_ASSERT(x.p + 1 < x.end && x.p[1] == '>');
			x.p += 2;
			continue;
		}
		FUZZ_ASSERT(x.p < x.end && *x.p == '>');
		x.p++;
		FUZZ_ASSERT(x.depth < 32);
		x.stack[x.depth] = name;
		x.stack_len[x.depth] = nl;
		x.depth++;
	}
	FUZZ_ASSERT(seen_root && x.depth == 0 && x.p == x.end);
}

/* The text of the first <Say> reads back as s. */
static void
say_reads_back(const char *doc, const char *s)
{
	const char *a = strstr(doc, "<Say"), *b, *e;
	char *back, *plain;

	FUZZ_ASSERT(a != NULL);
	b = strchr(a, '>') + 1;
	e = strstr(b, "</Say>");
	FUZZ_ASSERT(e != NULL);
	if ((back = malloc((size_t)(e - b) + 1)) == NULL ||
	    (plain = malloc(strlen(s) + 1)) == NULL)
		abort();
	FUZZ_ASSERT(unescape(b, (size_t)(e - b), back) ==
	    (long)strip_controls(s, plain));
	FUZZ_ASSERT(strcmp(back, plain) == 0);
	free(back);
	free(plain);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct twiml t;
	char *s[6];
	size_t outlen = fuzz_u8(&in);
	unsigned sel = fuzz_u8(&in);
	int i;

	for (i = 0; i < 6; i++)
		s[i] = fuzz_part(&in, NULL);
	for (i = 0; i < 6; i++)
		check_escape(s[i], outlen);

	twiml_begin(&t);
	twiml_say(&t, s[0], sel & 1 ? s[1] : NULL);
	if (sel & 2)
		twiml_play(&t, s[2]);
	if (sel & 4)
		twiml_pause(&t, (int)(sel >> 4) - 4);
	if (sel & 8) {
		twiml_connect_stream_open(&t, sel & 0x10 ? s[3] : NULL, s[2],
		    sel & 0x20 ? s[1] : NULL);
		twiml_parameter(&t, s[4], s[5]);
		twiml_parameter(&t, sel & 0x40 ? NULL : s[5], NULL);
		twiml_connect_stream_close(&t);
	}
	if (sel & 0x80)
		twiml_hangup(&t);
	FUZZ_ASSERT(twiml_end(&t) == 0);
	FUZZ_ASSERT(strlen(t.buf) == t.len && t.len < t.cap);
	xml_check(t.buf, t.len);
	say_reads_back(t.buf, s[0]);
	twiml_free(&t);
	for (i = 0; i < 6; i++)
		free(s[i]);
	return 0;
}
