/*
 * test_b64.c — proto/b64.c against mbedTLS's base64 on the same inputs:
 * every length from 0 to 300 of random bytes encoded, decoded back, and
 * damaged strings refused by both.
 */
#include "test/unit/test.h"
#include "proto/b64.h"

#include <mbedtls/base64.h>

TEST(b64_matches_mbedtls)
{
	unsigned char raw[300], back[300];
	char enc[420], menc[420];
	size_t mlen;

	test_rnd_seed(1);
	for (int round = 0; round < 20; round++)
		for (size_t n = 0; n <= sizeof(raw); n++) {
			for (size_t i = 0; i < n; i++)
				raw[i] = (unsigned char)test_rnd(256);
			size_t el = b64_encode(raw, n, enc);
			ASSERT_EQ(mbedtls_base64_encode((unsigned char *)menc,
			    sizeof(menc), &mlen, raw, n), 0);
			ASSERT_UEQ(el, mlen);
			ASSERT_MEM_EQ(enc, menc, el);
			ASSERT_EQ(enc[el], '\0');
			ASSERT_EQ(b64_decoded_len(enc, el), (long)n);
			ASSERT_EQ(b64_decode(enc, el, back), (long)n);
			if (n > 0)
				ASSERT_MEM_EQ(back, raw, n);
		}
}

/* One character replaced, dropped or added: whenever mbedTLS refuses the
 * string, so do we; whenever we accept it, the bytes agree. */
TEST(b64_damaged_strings)
{
	static const char pick[] = "A/+=z9\"\\ \n\x80=";
	unsigned char raw[60], ours[80], mb[80];
	char enc[100];
	size_t mlen;
	int refused = 0;

	test_rnd_seed(2);
	for (int round = 0; round < 20000; round++) {
		size_t n = test_rnd(sizeof(raw));
		for (size_t i = 0; i < n; i++)
			raw[i] = (unsigned char)test_rnd(256);
		size_t el = b64_encode(raw, n, enc);
		switch (test_rnd(3)) {
		case 0:
			if (el > 0)
				enc[test_rnd((unsigned)el)] = pick[test_rnd(sizeof(pick) - 1)];
			break;
		case 1:
			if (el > 0) {
				size_t at = test_rnd((unsigned)el);
				memmove(enc + at, enc + at + 1, el - at);
				el--;
			}
			break;
		default:
			enc[el++] = pick[test_rnd(sizeof(pick) - 1)];
			break;
		}
		long got = b64_decode(enc, el, ours);
		int mrc = mbedtls_base64_decode(mb, sizeof(mb), &mlen,
		    (const unsigned char *)enc, el);
		ASSERT_EQ(b64_decoded_len(enc, el), got);
		if (got < 0) {
			refused++;
			continue;
		}
		/* mbedTLS is laxer (it skips spaces and line breaks), never
		 * stricter */
		ASSERT_EQ(mrc, 0);
		ASSERT_EQ((long)mlen, got);
		if (got > 0)
			ASSERT_MEM_EQ(ours, mb, (size_t)got);
	}
	ASSERT_GT(refused, 5000);
}
