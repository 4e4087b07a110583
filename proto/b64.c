/*
 * b64.c — see b64.h.
 */
#include "proto/b64.h"

#include <limits.h>
#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const int8_t b64_value[256] = {
#define N16 -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
	N16, N16,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	N16, N16, N16, N16, N16, N16, N16, N16,
#undef N16
};

long
b64_decoded_len(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i, body, pad = 0;

	if (len % 4 != 0 || len / 4 > LONG_MAX / 3)
		return -1;
	if (len == 0)
		return 0;
	if (p[len - 1] == '=') {
		pad = 1;
		if (p[len - 2] == '=')
			pad = 2;
	}
	body = len - pad;
	/* four at a time: payloads are hundreds of characters */
	for (i = 0; i + 4 <= body; i += 4)
		if ((b64_value[p[i]] | b64_value[p[i + 1]] | b64_value[p[i + 2]] |
		    b64_value[p[i + 3]]) < 0)
			return -1;
	for (; i < body; i++)
		if (b64_value[p[i]] < 0)
			return -1;
	return (long)(len / 4 * 3 - pad);
}

size_t
b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i;
	char *o = out;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		o[0] = alphabet[v >> 18];
		o[1] = alphabet[(v >> 12) & 63];
		o[2] = alphabet[(v >> 6) & 63];
		o[3] = alphabet[v & 63];
		o += 4;
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		o[0] = alphabet[v >> 18];
		o[1] = alphabet[(v >> 12) & 63];
		o[2] = '=';
		o[3] = '=';
		o += 4;
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		o[0] = alphabet[v >> 18];
		o[1] = alphabet[(v >> 12) & 63];
		o[2] = alphabet[(v >> 6) & 63];
		o[3] = '=';
		o += 4;
	}
	*o = '\0';
	return (size_t)(o - out);
}

long
b64_decode(const char *in, size_t len, unsigned char *out)
{
	const unsigned char *p = (const unsigned char *)in;
	unsigned char *o = out;
	size_t i, body;
	int bad = 0;

	/* length and padding first; the alphabet is checked as we go */
	if (len % 4 != 0 || len / 4 > LONG_MAX / 3)
		return -1;
	if (len == 0)
		return 0;
	/* every group but the last: no padding there */
	body = len - 4;
	for (i = 0; i < body; i += 4) {
		int a = b64_value[p[i]], b = b64_value[p[i + 1]],
		    c = b64_value[p[i + 2]], d = b64_value[p[i + 3]];
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 |
		    (uint32_t)c << 6 | (uint32_t)d;
		bad |= a | b | c | d;
		o[0] = (unsigned char)(v >> 16);
		o[1] = (unsigned char)(v >> 8);
		o[2] = (unsigned char)v;
		o += 3;
	}
	/* the last group: "xxxx", "xxx=" or "xx==" */
	int a = b64_value[p[i]], b = b64_value[p[i + 1]];
	uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12;
	bad |= a | b;
	*o++ = (unsigned char)(v >> 16);
	if (p[i + 2] != '=') {
		int c = b64_value[p[i + 2]];
		bad |= c;
		v |= (uint32_t)c << 6;
		*o++ = (unsigned char)(v >> 8);
		if (p[i + 3] != '=') {
			int d = b64_value[p[i + 3]];
			bad |= d;
			v |= (uint32_t)d;
			*o++ = (unsigned char)v;
		}
	} else if (p[i + 3] != '=')
		bad = -1;		/* "xx=x" */
	return bad < 0 ? -1 : (long)(o - out);
}
