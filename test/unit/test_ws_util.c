/*
 * test_ws_util.c — handshake keys (RFC 6455 §1.3, §4) and utf8_valid().
 */
#include "test/unit/test.h"
#include "proto/ws.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

/* Handshake keys -------------------------------------------------------- */

TEST(ws_accept_rfc_example)
{
	char out[WS_ACCEPT_LEN + 8];

	memset(out, '#', sizeof(out));
	ASSERT_EQ(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	ASSERT_STR_EQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	ASSERT_EQ(strlen(out), WS_ACCEPT_LEN);
	/* nothing written past WS_ACCEPT_LEN + 1 bytes */
	for (size_t i = WS_ACCEPT_LEN + 1; i < sizeof(out); i++)
		ASSERT_EQ(out[i], '#');
}

TEST(ws_accept_vectors)
{
	static const struct {
		const char *key, *accept;
	} cases[] = {
		/* computed with an independent SHA-1 and base64 */
		{ "x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=" },
		{ "AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI=" },
		{ "/////////////////////w==", "XXpj4jYzLM2yUE0C7TIgMwTQh2g=" },
	};
	char out[WS_ACCEPT_LEN + 1];

	for (size_t i = 0; i < NCASES(cases); i++) {
		ASSERT_EQ(ws_accept_key(cases[i].key, out), 0);
		ASSERT_STR_EQ(out, cases[i].accept);
	}
}

TEST(ws_accept_bad_keys)
{
	static const char *const bad[] = {
		"",
		"dGhlIHNhbXBsZSBub25jZQ",		/* no padding */
		"dGhlIHNhbXBsZSBub25jZQ=",		/* 23 */
		"dGhlIHNhbXBsZSBub25jZQ===",		/* 25 */
		"dGhlIHNhbXBsZSBub25jZQ==x",
		"dGhlIHNhbXBsZSBub25jZQAA",		/* 18 bytes */
		"dGhlIHNhbXBsZSBub25jZQ=A",
		"dGhlIHNhbXBsZSBub25jZ===",		/* 15 bytes and junk */
		"dGhlIHNhbXBsZSBub25jZQ.=",
		"dGhlIHNhbXBsZSBub25j ZQ==",
		"dGhlIHNhbXBsZSBub25jZ ==",
		" dGhlIHNhbXBsZSBub25jZQ==",
		"dGhlIHNhbXBsZSBub25jZQ== ",
		"dGhlIHNhbXBsZSBub25j-_==",		/* base64url */
		"dGhlIHNhbXBsZSBub25jZQ\r\n",
		"=GhlIHNhbXBsZSBub25jZQ==",
		"dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
		"dGhlIHNhbXBsZSBub25jZ\xc3\xa9=",
	};
	char out[WS_ACCEPT_LEN + 1];

	for (size_t i = 0; i < NCASES(bad); i++)
		if (ws_accept_key(bad[i], out) != -1)
			TEST_FAIL_("key \"%s\" accepted", bad[i]);
	ASSERT_EQ(ws_accept_key(NULL, out), -1);
}

TEST(ws_client_key)
{
	static const unsigned char nonce[16] = "the sample nonce";
	unsigned char rnd[16];
	char key[32], out[WS_ACCEPT_LEN + 1];
	uint32_t x = 12345;

	memset(key, '#', sizeof(key));
	ws_client_key(nonce, key);
	ASSERT_STR_EQ(key, "dGhlIHNhbXBsZSBub25jZQ==");
	ASSERT_EQ(key[25], '#');
	memset(rnd, 0, sizeof(rnd));
	ws_client_key(rnd, key);
	ASSERT_STR_EQ(key, "AAAAAAAAAAAAAAAAAAAAAA==");
	memset(rnd, 0xff, sizeof(rnd));
	ws_client_key(rnd, key);
	ASSERT_STR_EQ(key, "/////////////////////w==");
	/* whatever the bytes, the server side accepts the key */
	for (int i = 0; i < 2000; i++) {
		for (int k = 0; k < 16; k++) {
			x = x * 1103515245 + 12345;
			rnd[k] = (unsigned char)(x >> 16);
		}
		ws_client_key(rnd, key);
		ASSERT_EQ(strlen(key), 24);
		ASSERT_EQ(ws_accept_key(key, out), 0);
		ASSERT_EQ(strlen(out), WS_ACCEPT_LEN);
	}
}

/* UTF-8 ------------------------------------------------------------------ */

#define U(lit, v) { lit, sizeof(lit) - 1, v }

static const struct {
	const char	*s;
	size_t		 n;
	int		 valid;
} utf8_cases[] = {
	U("", 1),
	U("a", 1),
	U("\0", 1),
	U("\x7f", 1),
	U("hello, world and then some more ASCII to fill a few words", 1),
	U("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1),	/* κόσμε */
	U("\xc2\x80", 1),			/* U+0080 */
	U("\xdf\xbf", 1),			/* U+07FF */
	U("\xe0\xa0\x80", 1),			/* U+0800 */
	U("\xed\x9f\xbf", 1),			/* U+D7FF */
	U("\xee\x80\x80", 1),			/* U+E000 */
	U("\xef\xbf\xbd", 1),			/* U+FFFD */
	U("\xef\xbf\xbe", 1),			/* U+FFFE, a noncharacter */
	U("\xef\xbf\xbf", 1),			/* U+FFFF */
	U("\xef\xbb\xbf", 1),			/* BOM */
	U("\xf0\x90\x80\x80", 1),		/* U+10000 */
	U("\xf0\x9f\x98\x80", 1),		/* U+1F600 */
	U("\xf3\xbf\xbf\xbf", 1),		/* U+FFFFF */
	U("\xf4\x80\x80\x80", 1),		/* U+100000 */
	U("\xf4\x8f\xbf\xbf", 1),		/* U+10FFFF */
	U("1234567\xc2\x80" "1234567", 1),	/* across a word boundary */
	U("1234567\xf4\x8f\xbf\xbf", 1),
	U("12345678\xe2\x82\xac", 1),

	/* lone continuation bytes */
	U("\x80", 0),
	U("\xbf", 0),
	U("a\x80" "b", 0),
	U("\x80\x80\x80\x80\x80\x80\x80\x80", 0),
	U("\xc2\x80\x80", 0),
	/* overlong '/' in 2, 3, 4, 5 and 6 bytes */
	U("\xc0\xaf", 0),
	U("\xe0\x80\xaf", 0),
	U("\xf0\x80\x80\xaf", 0),
	U("\xf8\x80\x80\x80\xaf", 0),
	U("\xfc\x80\x80\x80\x80\xaf", 0),
	/* largest overlongs, and overlong NUL */
	U("\xc1\xbf", 0),
	U("\xe0\x9f\xbf", 0),
	U("\xf0\x8f\xbf\xbf", 0),
	U("\xc0\x80", 0),
	U("\xe0\x80\x80", 0),
	/* surrogates, alone and paired (CESU-8) */
	U("\xed\xa0\x80", 0),			/* U+D800 */
	U("\xed\xad\xbf", 0),			/* U+DB7F */
	U("\xed\xb0\x80", 0),			/* U+DC00 */
	U("\xed\xbf\xbf", 0),			/* U+DFFF */
	U("\xed\xa0\x80\xed\xb0\x80", 0),
	U("\xed\xaf\xbf\xed\xbf\xbf", 0),
	/* past U+10FFFF */
	U("\xf4\x90\x80\x80", 0),		/* U+110000 */
	U("\xf4\xbf\xbf\xbf", 0),
	U("\xf5\x80\x80\x80", 0),
	U("\xf7\xbf\xbf\xbf", 0),
	U("\xf8\x88\x80\x80\x80", 0),
	U("\xfe", 0),
	U("\xff", 0),
	U("\xfe\xfe\xff\xff", 0),
	/* truncated sequences */
	U("\xc2", 0),
	U("\xe0\xa0", 0),
	U("\xe2\x82", 0),
	U("\xf0\x90\x80", 0),
	U("\xf4\x8f\xbf", 0),
	U("\xf0\x9f\x98", 0),
	U("abc\xf0", 0),
	U("1234567\xf0\x9f\x98", 0),
	/* sequences cut by a byte that is not a continuation */
	U("\xc2\x41", 0),
	U("\xe2\x82\x41", 0),
	U("\xe2\x41\xac", 0),
	U("\xf0\x9f\x98\x41", 0),
	U("\xf0\x9f\x41\x80", 0),
	U("\xf0\x41\x98\x80", 0),
	U("\xc2\xc2\x80", 0),
	U("\xe2\x82\xe2\x82\xac", 0),
	U("\xe0\xa0\xc0", 0),
	U("\xf1\x80\x80\xc0", 0),
};

TEST(ws_utf8_table)
{
	for (size_t i = 0; i < NCASES(utf8_cases); i++) {
		/* an exact-size copy, so a sanitizer sees any overread */
		unsigned char *b = malloc(utf8_cases[i].n + 1);
		int v;

		ASSERT_NOT_NULL(b);
		memcpy(b, utf8_cases[i].s, utf8_cases[i].n);
		v = utf8_valid(b, utf8_cases[i].n);
		if (v != utf8_cases[i].valid)
			TEST_FAIL_("case %zu (%zu bytes): %d, want %d", i,
			    utf8_cases[i].n, v, utf8_cases[i].valid);
		free(b);
	}
}

/* The length is honoured: a valid prefix of an invalid buffer is valid. */
TEST(ws_utf8_length)
{
	const unsigned char s[] = "ab\xc3\xa9\xff";

	ASSERT_EQ(utf8_valid(s, 0), 1);
	ASSERT_EQ(utf8_valid(NULL, 0), 1);
	ASSERT_EQ(utf8_valid(s, 2), 1);
	ASSERT_EQ(utf8_valid(s, 3), 0);
	ASSERT_EQ(utf8_valid(s, 4), 1);
	ASSERT_EQ(utf8_valid(s, 5), 0);
}

/*
 * The reference: decode each sequence by its lead byte's length, then
 * check the value, slowly and without cleverness.
 */
static int
ref_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		size_t len, k;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else
			return 0;
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

TEST(ws_utf8_reference_agrees_on_table)
{
	for (size_t i = 0; i < NCASES(utf8_cases); i++)
		ASSERT_EQ(ref_utf8_valid((const unsigned char *)utf8_cases[i].s,
		    utf8_cases[i].n), utf8_cases[i].valid);
}

/* Every sequence of up to three bytes, and every four-byte one whose last
 * two bytes are at the edges of the continuation range. */
TEST_T(ws_utf8_exhaustive_short, 60)
{
	static const unsigned char edge[] = { 0x00, 0x7f, 0x80, 0x8f, 0x90,
	    0x9f, 0xa0, 0xbf, 0xc0, 0xff };
	unsigned char b[4];
	uint32_t v;

	for (v = 0; v < 0x100; v++) {
		b[0] = (unsigned char)v;
		ASSERT_EQ(utf8_valid(b, 1), ref_utf8_valid(b, 1));
	}
	for (v = 0; v < 0x10000; v++) {
		b[0] = (unsigned char)(v >> 8), b[1] = (unsigned char)v;
		ASSERT_EQ(utf8_valid(b, 2), ref_utf8_valid(b, 2));
	}
	for (v = 0; v < 0x1000000; v++) {
		b[0] = (unsigned char)(v >> 16), b[1] = (unsigned char)(v >> 8);
		b[2] = (unsigned char)v;
		if (utf8_valid(b, 3) != ref_utf8_valid(b, 3))
			TEST_FAIL_("%02x %02x %02x", b[0], b[1], b[2]);
	}
	for (v = 0; v < 0x10000; v++) {
		b[0] = (unsigned char)(v >> 8), b[1] = (unsigned char)v;
		for (size_t j = 0; j < sizeof(edge); j++) {
			for (size_t k = 0; k < sizeof(edge); k++) {
				b[2] = edge[j], b[3] = edge[k];
				if (utf8_valid(b, 4) != ref_utf8_valid(b, 4))
					TEST_FAIL_("%02x %02x %02x %02x",
					    b[0], b[1], b[2], b[3]);
			}
		}
	}
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
}

/* Encode cp in len bytes (1-4) whatever its value: overlongs, surrogates
 * and values past U+10FFFF come out as the buggy encoders make them. */
static size_t
put_cp(unsigned char *o, uint32_t cp, size_t len)
{
	switch (len) {
	case 1:
		o[0] = (unsigned char)(cp & 0x7f);
		break;
	case 2:
		o[0] = (unsigned char)(0xc0 | ((cp >> 6) & 0x1f));
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		break;
	case 3:
		o[0] = (unsigned char)(0xe0 | ((cp >> 12) & 0x0f));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		break;
	default:
		o[0] = (unsigned char)(0xf0 | ((cp >> 18) & 0x07));
		o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[3] = (unsigned char)(0x80 | (cp & 0x3f));
		len = 4;
		break;
	}
	return len;
}

static uint32_t
interesting_cp(void)
{
	static const uint32_t edges[] = { 0, 0x7f, 0x80, 0x7ff, 0x800, 0xfff,
	    0x1000, 0xd7ff, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xe000, 0xfffd,
	    0xffff, 0x10000, 0x3ffff, 0x40000, 0xfffff, 0x100000, 0x10ffff,
	    0x110000, 0x13ffff, 0x1fffff };
	uint32_t e = edges[rng() % NCASES(edges)];

	switch (rng() % 4) {
	case 0:
		return e;
	case 1:
		return e + (rng() % 3) - 1;
	default:
		return rng() % 0x110000;
	}
}

static size_t
natural_len(uint32_t cp)
{
	return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* A buffer of up to cap bytes: ASCII runs, encodings right and wrong,
 * random bytes, and now and then a damaged or cut sequence. */
static size_t
random_text(unsigned char *b, size_t cap)
{
	size_t n = 0, want = rng() % cap;

	while (n + 4 <= want) {
		uint32_t r = rng() % 16, cp;
		size_t k;

		if (r < 5) {
			for (k = rng() % 12; k > 0 && n < want; k--)
				b[n++] = (unsigned char)(0x20 + rng() % 0x5f);
		} else if (r < 11) {
			cp = interesting_cp();
			n += put_cp(b + n, cp, natural_len(cp));
		} else if (r < 13) {
			cp = interesting_cp();
			n += put_cp(b + n, cp, 1 + rng() % 4);
		} else if (r < 14) {
			b[n++] = (unsigned char)rng();
		} else if (r < 15) {
			cp = interesting_cp();
			k = put_cp(b + n, cp, natural_len(cp));
			n += k > 1 ? 1 + rng() % (k - 1) : k;	/* cut */
		} else {
			cp = interesting_cp();
			k = put_cp(b + n, cp, natural_len(cp));
			b[n + rng() % k] ^= (unsigned char)(1u << (rng() % 8));
			n += k;
		}
	}
	return n;
}

TEST_T(ws_utf8_random_vs_reference, 60)
{
	unsigned char tmp[96];
	long valid = 0, invalid = 0;

	for (int i = 0; i < 300000; i++) {
		size_t n = random_text(tmp, sizeof(tmp));
		/* an exact-size copy at a varying alignment */
		size_t shift = (size_t)i % 8;
		unsigned char *b = malloc(n + shift + 1);
		int want, got;

		ASSERT_NOT_NULL(b);
		memcpy(b + shift, tmp, n);
		want = ref_utf8_valid(b + shift, n);
		got = utf8_valid(b + shift, n);
		if (want != got) {
			fprintf(stderr, "  mismatch on %zu bytes:", n);
			for (size_t k = 0; k < n; k++)
				fprintf(stderr, " %02x", b[shift + k]);
			fputc('\n', stderr);
			TEST_FAIL_("utf8_valid %d, reference %d", got, want);
		}
		if (want)
			valid++;
		else
			invalid++;
		free(b);
	}
	/* the generator must exercise both outcomes */
	ASSERT_GT(valid, 30000);
	ASSERT_GT(invalid, 30000);
}

/* Long inputs: a bad byte at every position of a long ASCII run. */
TEST(ws_utf8_long_runs)
{
	size_t n = 200, pos;
	unsigned char *b = malloc(n);

	ASSERT_NOT_NULL(b);
	memset(b, 'a', n);
	ASSERT_EQ(utf8_valid(b, n), 1);
	for (pos = 0; pos < n; pos++) {
		b[pos] = 0x80;
		ASSERT_EQ(utf8_valid(b, n), 0);
		b[pos] = 0xc3;		/* followed by 'a', or by nothing */
		ASSERT_EQ(utf8_valid(b, n), 0);
		if (pos + 1 < n) {
			b[pos + 1] = 0xa9;
			ASSERT_EQ(utf8_valid(b, n), 1);
			b[pos + 1] = 'a';
		}
		b[pos] = 'a';
	}
	free(b);
}
