/*
 * ws.c — WebSocket framing on top of wslay's frame layer; see ws.h.
 *
 * wslay_frame_recv() parses frame headers, unmasks and hands us payload in
 * pieces; this file does what RFC 6455 asks above the frame: the masking
 * rule per role, reserved bits, opcodes, fragmentation, control frames
 * (ping answered, close echoed), the message size limit and UTF-8 of text.
 * Messages are assembled in one buffer reused for the life of the
 * connection; an unfragmented message that arrives in one piece is handed
 * to the callback straight from wslay's buffer, without a copy.
 */
#include "proto/ws.h"

#include <string.h>

static ssize_t
ws_recv_cb(uint8_t *buf, size_t len, int flags, void *user)
{
	struct ws_codec *w = user;
	size_t n = w->in_len < len ? w->in_len : len;

	if (n == 0)
		return -1;	/* wslay: want read */
	memcpy(buf, w->in, n);
	w->in += n;
	w->in_len -= n;
	return (ssize_t)n;
}

static ssize_t
ws_send_cb(const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws_codec *w = user;

	if (buf_append(w->out, data, len) != 0)
		return -1;	/* wslay: want write */
	return (ssize_t)len;
}

static int
ws_genmask_cb(uint8_t *buf, size_t len, void *user)
{
	struct ws_codec *w = user;

	/* xorshift64*: unpredictable enough for masking, no syscall */
	for (size_t i = 0; i < len; i++) {
		w->rng ^= w->rng >> 12;
		w->rng ^= w->rng << 25;
		w->rng ^= w->rng >> 27;
		buf[i] = (uint8_t)((w->rng * 0x2545F4914F6CDD1DULL) >> 56);
	}
	return 0;
}

int
ws_codec_init(struct ws_codec *w, enum ws_role role, size_t max_msg,
    struct buf *out, ws_msg_cb cb, void *arg, uint64_t seed)
{
	static const struct wslay_frame_callbacks cbs = {
		ws_send_cb, ws_recv_cb, ws_genmask_cb,
	};

	memset(w, 0, sizeof(*w));
	w->role = role;
	w->max_msg = max_msg;
	w->out = out;
	w->cb = cb;
	w->arg = arg;
	w->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
	w->close_code = 1005;
	buf_init(&w->msg, max_msg);
	if (wslay_frame_context_init(&w->fr, &cbs, w) != 0)
		return -1;
	return 0;
}

void
ws_codec_free(struct ws_codec *w)
{
	if (w->fr != NULL)
		wslay_frame_context_free(w->fr);
	w->fr = NULL;
	buf_free(&w->msg);
}

/* Frame one whole message into out, all or nothing. */
static int
ws_frame_out(struct ws_codec *w, int opcode, const uint8_t *data, size_t len)
{
	struct wslay_frame_iocb io;
	size_t mark, off, hl;
	ssize_t r;

	memset(&io, 0, sizeof(io));
	io.fin = 1;
	io.opcode = (uint8_t)opcode;
	io.mask = w->role == WS_CLIENT;
	io.payload_length = len;
	io.data = data;
	io.data_length = len;
	/* reserve the whole frame up front so wslay never sees a short write */
	hl = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + (io.mask ? 4 : 0);
	if (buf_reserve(w->out, hl + len) == NULL)
		return WS_ERR_OUTPUT;
	/* after the reserve: it may have moved what is already queued */
	mark = w->out->len;
	off = w->out->off;
	do {
		r = wslay_frame_send(w->fr, &io);
		if (r < 0) {
			/* wslay refused the frame (a control frame over 125
			 * bytes): put back what it wrote, if anything */
			w->out->len = mark;
			w->out->off = off;
			return WS_ERR_OUTPUT;
		}
		io.data += r;
		io.data_length -= (size_t)r;
	} while (io.data_length > 0);
	return WS_OK;
}

int
ws_codec_send(struct ws_codec *w, int opcode, const void *data, size_t len)
{
	if (w->close_sent)
		return WS_ERR_PROTO;
	return ws_frame_out(w, opcode, data, len);
}

int
ws_codec_close(struct ws_codec *w, uint16_t code, const char *reason)
{
	uint8_t p[125];
	size_t n = 0;

	if (w->close_sent)
		return WS_OK;
	if (code != 0 && code != 1005) {
		size_t rl = reason ? strlen(reason) : 0;
		if (rl > sizeof(p) - 2) {
			/* cut at a character boundary: the peer checks UTF-8 */
			rl = sizeof(p) - 2;
			while (rl > 0 && ((unsigned char)reason[rl] & 0xC0) == 0x80)
				rl--;
		}
		if (rl > 0 && !utf8_valid((const unsigned char *)reason, rl))
			rl = 0;
		p[0] = (uint8_t)(code >> 8);
		p[1] = (uint8_t)code;
		if (rl)
			memcpy(p + 2, reason, rl);
		n = 2 + rl;
	}
	w->close_sent = 1;
	return ws_frame_out(w, WSLAY_CONNECTION_CLOSE, p, n);
}

static int
ws_fail(struct ws_codec *w, int rc, uint16_t code, const char *why)
{
	w->error = why;
	w->error_code = code;
	ws_codec_close(w, code, why);
	return rc;
}

/* Close codes a peer may send (RFC 6455 §7.4). */
static int
close_code_ok(unsigned c)
{
	if (c >= 3000 && c <= 4999)
		return 1;
	switch (c) {
	case 1000: case 1001: case 1002: case 1003: case 1007:
	case 1008: case 1009: case 1010: case 1011:
		return 1;
	}
	return 0;
}

static int
ws_control(struct ws_codec *w, uint8_t op, const uint8_t *p, size_t n)
{
	switch (op) {
	case WSLAY_PING:
		w->pings++;
		if (!w->close_sent && ws_frame_out(w, WSLAY_PONG, p, n) != WS_OK) {
			/* no room even for a close frame: the owner drops the
			 * connection, but it needs a reason for its log */
			w->error = "output buffer full (a ping left unanswered)";
			return WS_ERR_OUTPUT;
		}
		return WS_OK;
	case WSLAY_PONG:
		return WS_OK;
	case WSLAY_CONNECTION_CLOSE:
		w->close_received = 1;
		if (n == 1)
			return ws_fail(w, WS_ERR_PROTO, 1002, "close frame of 1 byte");
		if (n >= 2) {
			unsigned c = (unsigned)p[0] << 8 | p[1];
			if (!close_code_ok(c))
				return ws_fail(w, WS_ERR_PROTO, 1002, "bad close code");
			if (!utf8_valid(p + 2, n - 2))
				return ws_fail(w, WS_ERR_UTF8, 1007,
				    "close reason is not UTF-8");
			w->close_code = (uint16_t)c;
			if (!w->close_sent)
				ws_codec_close(w, (uint16_t)c, NULL);
		} else if (!w->close_sent)
			ws_codec_close(w, 1000, NULL);
		return WS_CLOSED;
	}
	return ws_fail(w, WS_ERR_PROTO, 1002, "unknown control opcode");
}

/* A complete data message: check and deliver. */
static int
ws_deliver(struct ws_codec *w, uint8_t op, const uint8_t *p, size_t n)
{
	w->messages++;
	if (op == WSLAY_TEXT_FRAME && !utf8_valid(p, n))
		return ws_fail(w, WS_ERR_UTF8, 1007, "text message is not UTF-8");
	if (w->cb != NULL && w->cb(w->arg, op, p, n) != 0)
		return WS_STOPPED;
	return WS_OK;
}

/* First piece of a frame: everything the header tells us is checked here,
 * before any payload is buffered. */
static int
ws_frame_begin(struct ws_codec *w, const struct wslay_frame_iocb *io)
{
	uint8_t op = io->opcode;

	if (io->rsv != 0)
		return ws_fail(w, WS_ERR_PROTO, 1002, "reserved bits set");
	if (w->role == WS_SERVER && !io->mask)
		return ws_fail(w, WS_ERR_PROTO, 1002, "unmasked client frame");
	if (w->role == WS_CLIENT && io->mask)
		return ws_fail(w, WS_ERR_PROTO, 1002, "masked server frame");
	if (wslay_is_ctrl_frame(op)) {
		if (op != WSLAY_PING && op != WSLAY_PONG &&
		    op != WSLAY_CONNECTION_CLOSE)
			return ws_fail(w, WS_ERR_PROTO, 1002, "unknown opcode");
	} else if (op == WSLAY_CONTINUATION_FRAME) {
		if (!w->in_msg)
			return ws_fail(w, WS_ERR_PROTO, 1002,
			    "continuation without a message");
		if (buf_pending(&w->msg) + io->payload_length > w->max_msg)
			return ws_fail(w, WS_ERR_TOOBIG, 1009, "message too big");
	} else if (op == WSLAY_TEXT_FRAME || op == WSLAY_BINARY_FRAME) {
		if (w->in_msg)
			return ws_fail(w, WS_ERR_PROTO, 1002,
			    "new message inside a fragmented one");
		if (io->payload_length > w->max_msg)
			return ws_fail(w, WS_ERR_TOOBIG, 1009, "message too big");
	} else
		return ws_fail(w, WS_ERR_PROTO, 1002, "unknown opcode");
	w->in_frame = 1;
	w->f_opcode = op;
	w->f_fin = io->fin;
	w->f_len = io->payload_length;
	w->f_off = 0;
	return WS_OK;
}

/* One piece of payload; called with every piece, in order. */
static int
ws_frame_data(struct ws_codec *w, const uint8_t *p, size_t n)
{
	uint8_t op = w->f_opcode;
	int done = w->f_off + n == w->f_len;

	if (wslay_is_ctrl_frame(op)) {
		memcpy(w->ctrl + w->f_off, p, n);
		w->f_off += n;
		if (done) {
			w->in_frame = 0;
			return ws_control(w, op, w->ctrl, (size_t)w->f_len);
		}
		return WS_OK;
	}
	/* fast path: a whole unfragmented message in one piece */
	if (op != WSLAY_CONTINUATION_FRAME && w->f_fin && w->f_off == 0 && done) {
		w->in_frame = 0;
		return ws_deliver(w, op, p, n);
	}
	if (op != WSLAY_CONTINUATION_FRAME && w->f_off == 0) {
		w->in_msg = 1;
		w->m_opcode = op;
	}
	if (buf_append(&w->msg, p, n) != 0)
		return ws_fail(w, WS_ERR_TOOBIG, 1009, "message too big");
	w->f_off += n;
	if (!done)
		return WS_OK;
	w->in_frame = 0;
	if (!w->f_fin) {
		w->in_msg = 1;
		if (op != WSLAY_CONTINUATION_FRAME)
			w->m_opcode = op;
		return WS_OK;
	}
	w->in_msg = 0;
	int rc = ws_deliver(w, w->m_opcode, (const uint8_t *)buf_head(&w->msg),
	    buf_pending(&w->msg));
	buf_consume(&w->msg, buf_pending(&w->msg));
	return rc;
}

int
ws_codec_feed(struct ws_codec *w, const uint8_t *data, size_t len)
{
	struct wslay_frame_iocb io;
	ssize_t r;
	int rc;

	if (w->error)
		return WS_ERR_PROTO;
	if (w->close_received)
		return WS_CLOSED;	/* nothing after a close counts */
	w->in = data;
	w->in_len = len;
	for (;;) {
		memset(&io, 0, sizeof(io));
		r = wslay_frame_recv(w->fr, &io);
		if (r == WSLAY_ERR_WANT_READ)
			break;
		if (r < 0)
			return ws_fail(w, WS_ERR_PROTO, 1002, "malformed frame");
		if (!w->in_frame && (rc = ws_frame_begin(w, &io)) != WS_OK)
			return rc;
		if ((rc = ws_frame_data(w, io.data, io.data_length)) != WS_OK)
			return rc;
	}
	return WS_OK;
}
