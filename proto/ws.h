/*
 * ws.h — WebSocket helpers and the wslay glue, for both roles (RFC 6455).
 *
 * ws_codec does no I/O of its own: the owner feeds it the bytes it read,
 * receives whole messages through callbacks, and drains the bytes to write
 * from its output buffer.  Server role insists on masked client frames;
 * client role masks what it sends.  Frames are written through wslay's
 * frame layer and read by ws.c itself (see there why).
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



/* ---- the frame reader ---- */

/* A frame header (RFC 6455 §5.2). */
struct ws_fhdr {
	uint8_t		 op, fin, rsv, masked;
	uint8_t		 key[4];		/* zero when not masked */
	uint64_t	 len;
};

/* A header being gathered across reads. */
struct ws_hdr_in {
	uint8_t		 b[14];
	uint8_t		 n;
};

/*
 * Read the next frame header from *p: straight from the input when it is
 * whole there, else gathered in hi across calls.  Advances *p and *len
 * past what it used.  Returns 1 with *fh filled, 0 when more bytes are
 * needed, -1 for what wslay's frame layer refuses, as soon as the bytes
 * that show it are in: a control frame longer than 125 bytes or
 * fragmented, a length not in its shortest form, a 64-bit length with the
 * top bit set.
 */
int ws_hdr_read(struct ws_hdr_in *hi, const uint8_t **p, size_t *len,
    struct ws_fhdr *fh);
/*
 * Copy n payload bytes from src to dst, unmasking with key from payload
 * offset off on, eight bytes at a time.  Returns the copied bytes ORed
 * together (in some byte of the result): a high bit set means some byte
 * was 0x80 or more.
 */
uint64_t ws_unmask_copy(uint8_t *dst, const uint8_t *src, size_t n,
    const uint8_t key[4], uint64_t off);

/* ---- ws_codec: framing, no I/O ---- */

#include <wslay/wslay.h>

#include "proto/buf.h"

enum ws_role { WS_SERVER = 0, WS_CLIENT = 1 };

enum ws_rc {
	WS_OK = 0,
	WS_CLOSED = 1,		/* close handshake complete: close the socket */
	WS_STOPPED = 2,		/* the message callback asked to stop */
	WS_ERR_PROTO = -1,	/* framing error; a close frame is queued */
	WS_ERR_TOOBIG = -2,	/* message over the limit; close 1009 queued */
	WS_ERR_UTF8 = -3,	/* text not UTF-8; close 1007 queued */
	WS_ERR_OUTPUT = -4,	/* output buffer full or memory gone */
};

/*
 * Called once per complete text or binary message.  msg is valid during
 * the call only.  Return 0 to go on, non-zero to stop (the owner is
 * closing the connection; ws_codec_feed returns WS_STOPPED).
 */
typedef int (*ws_msg_cb)(void *arg, int opcode, const uint8_t *msg, size_t len);

struct ws_codec {
	int			 role;
	size_t			 max_msg;
	struct ws_hdr_in	 hin;		/* a header spanning reads */
	/* current frame */
	int			 in_frame;
	uint8_t			 f_opcode, f_fin, f_masked;
	uint8_t			 f_key[4];
	uint64_t		 f_len, f_off;
	uint8_t			 ctrl[125];	/* control frame payload */
	/* current message */
	int			 in_msg;
	uint8_t			 m_opcode;
	uint8_t			 m_scanned;	/* every byte went through unmask_copy */
	uint64_t		 m_bits;	/* those bytes ORed: high bits = not ASCII */
	struct buf		 msg;
	/* output goes here (owned by the caller) */
	struct buf		*out;
	uint64_t		 rng;		/* mask keys (client role) */
	ws_msg_cb		 cb;
	void			*arg;
	/* state */
	int			 close_sent;
	int			 close_received;
	uint16_t		 close_code;	/* received, 1005 if none */
	uint16_t		 error_code;	/* what we closed with */
	const char		*error;		/* why, for the log */
	uint64_t		 pings, messages;
};

/* out receives every byte to write.  seed: any random 64-bit value. */
int  ws_codec_init(struct ws_codec *w, enum ws_role role, size_t max_msg,
    struct buf *out, ws_msg_cb cb, void *arg, uint64_t seed);
void ws_codec_free(struct ws_codec *w);
/* Feed bytes read from the peer.  Returns an enum ws_rc; on error the
 * reason is in w->error and a close frame is already in out. */
int  ws_codec_feed(struct ws_codec *w, const uint8_t *data, size_t len);
/* Frame one message (WSLAY_TEXT_FRAME, WSLAY_BINARY_FRAME, WSLAY_PING...)
 * into out.  Returns 0, or WS_ERR_OUTPUT (out full: the peer is not
 * reading) or WS_ERR_PROTO (after our close). */
int  ws_codec_send(struct ws_codec *w, int opcode, const void *data, size_t len);
/* Queue a close frame (once).  Returns 0 or WS_ERR_OUTPUT. */
int  ws_codec_close(struct ws_codec *w, uint16_t code, const char *reason);
#endif
