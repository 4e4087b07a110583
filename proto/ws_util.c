/*
 * ws_util.c — the parts of ws.h that need no wslay: the handshake keys of
 * RFC 6455 §4 and the UTF-8 check that text frames need (§8.1).
 */
#include "proto/ws.h"
#include "proto/b64.h"

#include <mbedtls/md.h>
#include <string.h>

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN	24	/* base64 of 16 bytes */

/*
 * 16 bytes encode to 22 characters and "==".  The unused low bits of the
 * last character are not checked, as most servers do not.
 */
static int
client_key_valid(const char *key)
{
	if (key == NULL || strnlen(key, WS_KEY_LEN + 1) != WS_KEY_LEN)
		return 0;
	return b64_decoded_len(key, WS_KEY_LEN) == 16;
}

int
ws_accept_key(const char *client_key, char *out)
{
	const mbedtls_md_info_t *md;
	unsigned char in[WS_KEY_LEN + sizeof(WS_GUID) - 1];
	unsigned char digest[20];

	if (!client_key_valid(client_key))
		return -1;
	if ((md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1)) == NULL)
		return -1;
	memcpy(in, client_key, WS_KEY_LEN);
	memcpy(in + WS_KEY_LEN, WS_GUID, sizeof(WS_GUID) - 1);
	if (mbedtls_md(md, in, sizeof(in), digest) != 0)
		return -1;
	b64_encode(digest, sizeof(digest), out);
	return 0;
}

void
ws_client_key(const unsigned char rnd[16], char *out)
{
	b64_encode(rnd, 16, out);
}

/*
 * RFC 3629 §4, byte by byte after the lead byte:
 *   C2..DF 80..BF
 *   E0 A0..BF 80..BF | E1..EC 80..BF 80..BF | ED 80..9F 80..BF
 *   EE..EF 80..BF 80..BF
 *   F0 90..BF 80..BF 80..BF | F1..F3 80..BF x3 | F4 80..8F 80..BF 80..BF
 * C0, C1 and F5..FF never appear.  The second byte's range is what rules
 * out overlongs (E0, F0), surrogates (ED) and values past U+10FFFF (F4).
 * Runs on every text frame of both legs, so ASCII, nearly all of the JSON
 * we see, goes 8 bytes at a time.
 */
int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], lo = 0x80, hi = 0xBF;

		if (c < 0x80) {
			while (n - i >= 8) {
				uint64_t w;

				memcpy(&w, s + i, 8);
				if (w & UINT64_C(0x8080808080808080))
					break;
				i += 8;
			}
			while (i < n && s[i] < 0x80)
				i++;
			continue;
		}
		if (c < 0xC2 || c > 0xF4)
			return 0;
		if (c < 0xE0) {
			if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80)
				return 0;
			i += 2;
			continue;
		}
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
		else if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
		if (c < 0xF0) {
			if (n - i < 3 || s[i + 1] < lo || s[i + 1] > hi ||
			    (s[i + 2] & 0xC0) != 0x80)
				return 0;
			i += 3;
		} else {
			if (n - i < 4 || s[i + 1] < lo || s[i + 1] > hi ||
			    (s[i + 2] & 0xC0) != 0x80 ||
			    (s[i + 3] & 0xC0) != 0x80)
				return 0;
			i += 4;
		}
	}
	return 1;
}
