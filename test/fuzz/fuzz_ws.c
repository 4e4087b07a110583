/*
 * fuzz_ws.c — proto/ws.c and proto/ws_util.c.
 *
 * Input: a mode byte, a seed byte, then the rest.  The mode picks:
 *  - feed: the rest is what a peer sends, fed in random chunks to a
 *    ws_codec in the role the mode names (server: Twilio's side, client:
 *    OpenAI's).  Every message is a text or binary message within the
 *    limit, and text is UTF-8 by the reference decoder in fuzz.h.  On a
 *    protocol error the reason is set and the close frame queued.  What
 *    the codec wrote (pongs, the close) is fed to a codec of the other
 *    role, which must take it without an error: our frames are valid.
 *  - send: the rest is a list of messages that one role sends with
 *    ws_codec_send() and ws_codec_close(); the other role, fed in random
 *    chunks, must deliver the same messages, refuse exactly the text that
 *    is not UTF-8 and the messages over its limit, and see the close code
 *    (a code a peer may not send is refused).
 *  - keys: ws_accept_key() against a reference (the key's shape checked
 *    by hand, SHA-1 and base64 redone here), and ws_client_key() keys
 *    accepted.
 * In every mode utf8_valid() is checked against the reference on the rest
 * of the input at eight alignments.
 */
#include "test/fuzz/fuzz.h"

#include <mbedtls/sha1.h>

#include "proto/buf.h"
#include "proto/ws.h"

FUZZ_TARGET("ws");

static const size_t max_msgs[] = { 65536, 125, 16, 1 << 20 };

struct rx {
	size_t		 max_msg;
	unsigned	 n;
	unsigned	 stop_at;	/* return non-zero at this message, 0 never */
	/* send mode: what must arrive */
	const uint8_t	*want;
	size_t		 want_len;
	int		 want_op;
	int		 got;
};

static int
on_msg(void *arg, int opcode, const uint8_t *msg, size_t len)
{
	struct rx *rx = arg;

	FUZZ_ASSERT(opcode == WSLAY_TEXT_FRAME || opcode == WSLAY_BINARY_FRAME);
	FUZZ_ASSERT(len <= rx->max_msg);
	FUZZ_ASSERT(opcode != WSLAY_TEXT_FRAME || fuzz_utf8_ok(msg, len));
	FUZZ_ASSERT(len == 0 || msg != NULL);
	if (rx->want != NULL) {
		FUZZ_ASSERT(!rx->got);
		FUZZ_ASSERT(opcode == rx->want_op);
		FUZZ_ASSERT(len == rx->want_len);
		FUZZ_ASSERT(len == 0 || memcmp(msg, rx->want, len) == 0);
		rx->got = 1;
	}
	rx->n++;
	return rx->stop_at != 0 && rx->n == rx->stop_at;
}

static int
codec_error(int rc)
{
	return rc == WS_ERR_PROTO || rc == WS_ERR_TOOBIG || rc == WS_ERR_UTF8;
}

/* Our own frames, fed to the other role in one go: no error allowed. */
static void
peer_takes(enum ws_role role, const struct buf *b, int want_close,
    uint16_t code)
{
	struct rx rx = { .max_msg = 1 << 20 };
	struct ws_codec w;
	struct buf out;
	int rc;

	buf_init(&out, 0);
	if (ws_codec_init(&w, role, rx.max_msg, &out, on_msg, &rx, 1) != 0)
		abort();
	rc = buf_pending(b) > 0 ? ws_codec_feed(&w,
	    (const uint8_t *)buf_head(b), buf_pending(b)) : WS_OK;
	FUZZ_ASSERT(rc == WS_OK || rc == WS_CLOSED);
	FUZZ_ASSERT(rx.n == 0);
	if (want_close) {
		FUZZ_ASSERT(rc == WS_CLOSED);
		FUZZ_ASSERT(w.close_code == code);
	}
	ws_codec_free(&w);
	buf_free(&out);
}

static void
mode_feed(struct fuzz_in *in, unsigned mode, struct fuzz_rng *rng)
{
	enum ws_role role = mode & 1 ? WS_CLIENT : WS_SERVER;
	int small_out = mode & 8;
	struct rx rx = { .max_msg = max_msgs[mode >> 1 & 3] };
	struct ws_codec w;
	struct buf out;
	uint8_t *p = fuzz_dup(in->p, in->n);
	size_t off = 0, chunk;
	int rc = WS_OK;

	rx.stop_at = mode & 0x40 ? 2 : 0;
	buf_init(&out, small_out ? 64 : 1 << 20);
	if (ws_codec_init(&w, role, rx.max_msg, &out, on_msg, &rx,
	    fuzz_rng_next(rng)) != 0)
		abort();
	while (off < in->n && rc == WS_OK) {
		chunk = fuzz_rng_chunk(rng, in->n - off);
		rc = ws_codec_feed(&w, p + off, chunk);
		off += chunk;
	}
	FUZZ_ASSERT(rc >= WS_ERR_OUTPUT && rc <= WS_STOPPED);
	if (codec_error(rc)) {
		FUZZ_ASSERT(w.error != NULL);
		FUZZ_ASSERT(w.close_sent);
		/* once failed, always failed */
		FUZZ_ASSERT(ws_codec_feed(&w, p, in->n) == WS_ERR_PROTO);
	}
	if (rc == WS_STOPPED)
		FUZZ_ASSERT(rx.n == rx.stop_at);
	if (rc == WS_CLOSED)
		FUZZ_ASSERT(w.close_received && w.close_sent);
	peer_takes(role == WS_SERVER ? WS_CLIENT : WS_SERVER, &out,
	    codec_error(rc) && !small_out, w.error_code);
	ws_codec_free(&w);
	buf_free(&out);
	free(p);
}

/* Feed b to r in random chunks until it is used up or r stops. */
static int
deliver(struct ws_codec *r, struct buf *b, struct fuzz_rng *rng)
{
	int rc = WS_OK;
	size_t chunk;

	while (buf_pending(b) > 0 && rc == WS_OK) {
		chunk = fuzz_rng_chunk(rng, buf_pending(b));
		rc = ws_codec_feed(r, (const uint8_t *)buf_head(b), chunk);
		buf_consume(b, chunk);
	}
	buf_consume(b, buf_pending(b));
	return rc;
}

static void
mode_send(struct fuzz_in *in, unsigned mode, struct fuzz_rng *rng)
{
	static const int ops[] = {
		WSLAY_TEXT_FRAME, WSLAY_BINARY_FRAME, WSLAY_PING, WSLAY_PONG,
	};
	enum ws_role srole = mode & 1 ? WS_CLIENT : WS_SERVER;
	struct rx rx = { .max_msg = max_msgs[mode >> 1 & 3] };
	struct ws_codec s, r;
	struct buf wire, back;
	int rc = WS_OK, src;

	buf_init(&wire, 0);
	buf_init(&back, 0);
	if (ws_codec_init(&s, srole, 1 << 20, &wire, NULL, NULL,
	    fuzz_rng_next(rng)) != 0 ||
	    ws_codec_init(&r, srole == WS_SERVER ? WS_CLIENT : WS_SERVER,
	    rx.max_msg, &back, on_msg, &rx, fuzz_rng_next(rng)) != 0)
		abort();
	while (in->n > 0 && rc == WS_OK) {
		unsigned sel = fuzz_u8(in);
		size_t len = fuzz_u8(in);
		uint8_t *msg;
		size_t before;

		if (sel & 0x80)
			len = len << 8 | fuzz_u8(in);
		if (len > in->n)
			len = in->n;
		msg = fuzz_dup(in->p, len);
		in->p += len;
		in->n -= len;
		if ((sel & 0x70) == 0x70) {
			/* a close with a code and a reason from the input */
			uint16_t code = (uint16_t)(1000 + (sel & 0x0f));
			char reason[256];

			/* past 123 bytes ws_codec_close() cuts the reason at a
			 * character boundary */
			snprintf(reason, sizeof(reason), "%.*s",
			    (int)(len < 200 ? len : 200), (const char *)msg);
			free(msg);
			FUZZ_ASSERT(ws_codec_close(&s, code, reason) == WS_OK);
			FUZZ_ASSERT(ws_codec_send(&s, WSLAY_TEXT_FRAME, "x", 1) ==
			    WS_ERR_PROTO);
			rc = deliver(&r, &wire, rng);
			if (code == 1005)
				FUZZ_ASSERT(rc == WS_CLOSED && r.close_code == 1005);
			else if (code == 1004 || code == 1006 || code > 1011)
				FUZZ_ASSERT(rc == WS_ERR_PROTO);
			else	/* a reason that is not UTF-8 is left out,
				 * a long one cut where a character starts */
				FUZZ_ASSERT(rc == WS_CLOSED && r.close_code == code);
			goto done;
		}
		before = buf_pending(&wire);
		src = ws_codec_send(&s, ops[sel & 3], msg, len);
		if (ops[sel & 3] == WSLAY_PING || ops[sel & 3] == WSLAY_PONG) {
			if (len > 125) {
				FUZZ_ASSERT(src == WS_ERR_OUTPUT);
				FUZZ_ASSERT(buf_pending(&wire) == before);
				free(msg);
				continue;
			}
			FUZZ_ASSERT(src == WS_OK);
			rx.want = NULL;
			rc = deliver(&r, &wire, rng);
			FUZZ_ASSERT(rc == WS_OK);
			FUZZ_ASSERT(rx.n == 0);
			free(msg);
			continue;
		}
		FUZZ_ASSERT(src == WS_OK);
		rx.want = msg;
		rx.want_len = len;
		rx.want_op = ops[sel & 3];
		rx.got = 0;
		rc = deliver(&r, &wire, rng);
		if (len > rx.max_msg)
			FUZZ_ASSERT(rc == WS_ERR_TOOBIG && !rx.got);
		else if (rx.want_op == WSLAY_TEXT_FRAME &&
		    !fuzz_utf8_ok(msg, len))
			FUZZ_ASSERT(rc == WS_ERR_UTF8 && !rx.got);
		else
			FUZZ_ASSERT(rc == WS_OK && rx.got);
		rx.n = 0;
		free(msg);
	}
done:
	/* what the receiver wrote back is valid for the sender too */
	peer_takes(srole, &back, 0, 0);
	ws_codec_free(&s);
	ws_codec_free(&r);
	buf_free(&wire);
	buf_free(&back);
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
ref_key_ok(const char *k)
{
	size_t i;

	if (strlen(k) != 24 || k[22] != '=' || k[23] != '=')
		return 0;
	for (i = 0; i < 22; i++)
		if (k[i] == '\0' || strchr(b64, k[i]) == NULL)
			return 0;
	return 1;
}

static void
ref_b64(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i < n; i += 3) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = '\0';
}

static void
check_accept(const char *key)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char out[WS_ACCEPT_LEN + 1 + 8], want[WS_ACCEPT_LEN + 1];
	unsigned char cat[24 + sizeof(guid)], dig[20];
	int rc;

	memset(out, 'x', sizeof(out));
	rc = ws_accept_key(key, out);
	FUZZ_ASSERT((rc == 0) == ref_key_ok(key));
	if (rc != 0)
		return;
	memcpy(cat, key, 24);
	memcpy(cat + 24, guid, sizeof(guid) - 1);
	if (mbedtls_sha1_ret(cat, 24 + sizeof(guid) - 1, dig) != 0)
		abort();
	ref_b64(dig, sizeof(dig), want);
	FUZZ_ASSERT(strcmp(out, want) == 0);
	FUZZ_ASSERT(out[WS_ACCEPT_LEN + 1] == 'x');
}

static void
mode_keys(struct fuzz_in *in)
{
	unsigned char rnd[16];
	char key[25 + 8], *k;

	k = fuzz_part(in, NULL);
	check_accept(k);
	free(k);
	for (int i = 0; i < 16; i++)
		rnd[i] = (unsigned char)fuzz_u8(in);
	memset(key, 'x', sizeof(key));
	ws_client_key(rnd, key);
	FUZZ_ASSERT(strlen(key) == 24 && key[25] == 'x');
	FUZZ_ASSERT(ref_key_ok(key));
	check_accept(key);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct fuzz_rng rng;
	unsigned mode, seed;
	uint8_t *p;

	mode = fuzz_u8(&in);
	seed = fuzz_u8(&in);
	rng.s = seed | (uint64_t)mode << 8;

	/* utf8_valid against the reference, at every alignment of 8 */
	p = fuzz_dup(in.p, in.n);
	for (size_t k = 0; k < 8 && k <= in.n; k++)
		FUZZ_ASSERT(utf8_valid(p + k, in.n - k) ==
		    fuzz_utf8_ok(p + k, in.n - k));
	free(p);

	switch (mode >> 4 & 3) {
	case 0:
	case 1:
		mode_feed(&in, mode, &rng);
		break;
	case 2:
		mode_send(&in, mode, &rng);
		break;
	default:
		mode_keys(&in);
		break;
	}
	return 0;
}
