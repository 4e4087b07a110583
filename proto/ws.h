/*
 * ws.h — WebSocket helpers and the wslay glue, for both roles (RFC 6455).
 *
 * ws_codec wraps a wslay event context with no I/O of its own: the owner
 * feeds it the bytes it read, receives whole messages through callbacks,
 * and drains the bytes to write from its output buffer.  Server role
 * insists on masked client frames; client role masks what it sends.
 */
#ifndef VR_PROTO_WS_H
#define VR_PROTO_WS_H

#include <stddef.h>
#include <stdint.h>

#define WS_ACCEPT_LEN 28	/* base64 of SHA-1 */

/* Sec-WebSocket-Accept for a client key: base64(SHA1(key + GUID)).
 * out holds WS_ACCEPT_LEN + 1 bytes.  Returns 0, or -1 if the key is not
 * base64 of 16 bytes (24 characters). */
int ws_accept_key(const char *client_key, char *out);
/* A fresh random client key (24 characters + NUL) from the given 16 bytes. */
void ws_client_key(const unsigned char rnd[16], char *out);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, at most
 * U+10FFFF), else 0. */
int utf8_valid(const unsigned char *s, size_t n);

#endif
