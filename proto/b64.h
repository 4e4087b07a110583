/*
 * b64.h — standard base64 (RFC 4648 §4, with padding) for audio payloads.
 *
 * mbedTLS's base64 is constant-time, built for keys: at one decode per
 * caller frame and one encode per gathered append (FRAMES_PER_APPEND > 1)
 * it was 70 % of a worker's instructions.  Audio is not a secret; these are
 * plain table lookups.  test_b64.c holds them to mbedTLS's results.
 */
#ifndef VR_PROTO_B64_H
#define VR_PROTO_B64_H

#include <stddef.h>
#include <stdint.h>

/* The value of each character of the alphabet; -1 for every other byte. */
extern const int8_t b64_value[256];

/* Bytes that len characters decode to, or -1 if they are not standard
 * base64: the alphabet, a multiple of 4, '=' only as the last one or two. */
long   b64_decoded_len(const char *s, size_t len);
/* Encode n bytes into out (4 * ceil(n / 3) characters and a NUL); returns
 * the characters written, NUL not counted. */
size_t b64_encode(const unsigned char *in, size_t n, char *out);
/* Decode len characters into out (room for len / 4 * 3 bytes) in one pass
 * that also checks them; returns the bytes written, or -1 under
 * b64_decoded_len()'s rule (out then holds junk).  The unused low bits of
 * a padded last group are not checked. */
long   b64_decode(const char *in, size_t len, unsigned char *out);

#endif
