/*
 * token.h — the stream token carried in the <Stream> URL path.
 *
 * The webhook binds the stream to the call: CallSid, caller, route and an
 * expiry, sealed with ChaCha20-Poly1305 under a key derived from
 * STREAM_SECRET.  The worker checks it at upgrade time, before it spends
 * anything on the connection, and checks again on `start` that
 * start.callSid is the CallSid of the token.  The facts are encrypted, not
 * only authenticated: the token sits in the URL path, so in every proxy's
 * access log, and must not show the caller's number there.  It stays
 * stateless: any host with the same STREAM_SECRET can redeem it.
 *
 * Encoding: base64url without padding (RFC 4648 §5) of
 *   version(1)=2 | nonce(12, random) | ciphertext | tag(16)
 * where ciphertext is ChaCha20-Poly1305 (RFC 8439) of
 *   expires(8, big-endian Unix seconds) |
 *   len(1) call_sid | len(1) caller | len(1) route [| resume(8)]
 * (resume, big-endian, only in the token of a stream resumed after a
 * transfer: the expiry of the resume marker that let it be minted)
 * with the version byte as additional data, under the key
 * HMAC-SHA256(STREAM_SECRET, "voxrelay stream token v2").
 * The alphabet is path-safe, so the token is one path segment.
 */
#ifndef VR_PROTO_TOKEN_H
#define VR_PROTO_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_MAX_LEN	512	/* encoded, with NUL */

struct stream_token {
	char		call_sid[64];
	char		caller[64];
	char		route[33];
	uint64_t	expires;	/* Unix seconds */
	uint64_t	resume;		/* 0, or the resume marker's expiry */
};

enum token_err {
	TOKEN_OK = 0,
	TOKEN_ERR_FORMAT = -1,	/* not base64url, wrong version, bad lengths */
	TOKEN_ERR_MAC = -2,	/* forged, altered or made with another secret */
	TOKEN_ERR_EXPIRED = -3,
	TOKEN_ERR_TOOLONG = -4,	/* a field does not fit (token_make) */
};

/* Encode t into out (outlen >= TOKEN_MAX_LEN is always enough).
 * Returns the encoded length, or a negative enum token_err. */
int token_make(const char *secret, const struct stream_token *t, char *out,
    size_t outlen);
/* Decode and check s[0..len).  The tag is compared in constant time and
 * checked before anything else is read, the expiry last.  Fills *t only on TOKEN_OK (and on
 * TOKEN_ERR_EXPIRED, so the caller can log which call it was). */
int token_verify(const char *secret, const char *s, size_t len,
    uint64_t now_s, struct stream_token *t);
const char *token_strerror(int err);

/*
 * The resume marker: what a transfer's "back to the line" URL carries so
 * that /voice (an inbound call) or /outbound (a call placed here) gives a
 * call whose stream has opened one more stream:
 *   base64url(first 16 bytes of HMAC-SHA256(K, "resume|<CallSid>|<expiry>|
 *   <d>|<line>")) "." <expiry, decimal Unix seconds> "." <d>
 * with d "i" (inbound) or "o" (outbound: the way back is the outbound
 * line's, the callee the caller) and K = HMAC-SHA256(STREAM_SECRET,
 * "voxrelay resume marker v2").  It is bound to the CallSid, the line and
 * the direction, and carries no phone number.  A marker of the first
 * version (no ".d", MAC under "voxrelay resume marker v1" over
 * "resume|<CallSid>|<expiry>", from a daemon before this one) is taken as
 * inbound on any line.  That it is used once is for the caller to see to
 * (daemon/replay.c).
 */
#define RESUME_MAX_LEN	48	/* encoded, with NUL */

/* Returns the encoded length, or a negative enum token_err. */
int resume_make(const char *secret, const char *call_sid, const char *line,
    int outbound, uint64_t expires, char *out, size_t outlen);
/* Check s[0..len) for call_sid on line; the MAC in constant time, then the
 * expiry.  *expires and *outbound are set on TOKEN_OK and
 * TOKEN_ERR_EXPIRED. */
int resume_verify(const char *secret, const char *call_sid, const char *line,
    const char *s, size_t len, uint64_t now_s, uint64_t *expires,
    int *outbound);

#endif
