/*
 * ws.c — WebSocket framing; see ws.h.
 *
 * Frames out go through wslay's frame layer (one context for all codecs,
 * see "Writing" below).  Frames in are read here.
 * wslay_frame_recv() copies every byte into a buffer of its own, unmasks
 * it one byte at a time and hands the payload back in pieces; on the
 * relay's path (three small masked or unmasked messages per relayed frame)
 * that was the largest user-space item of a worker, 17 % of its
 * instructions under callgrind.  The reader below takes the header from the
 * caller's bytes, and unmasks eight bytes at a time while it copies the
 * payload into the message buffer, noting on the way whether any byte has
 * its high bit set: a text message of plain ASCII needs no UTF-8 pass.  It
 * applies the checks wslay's frame layer applies (control frames short and
 * whole, lengths in their shortest form, no 64-bit length with the top bit
 * set), at the same point of the input; test_ws.c and fuzz_ws.c hold the
 * two to the same verdict on the same bytes.
 *
 * Above the frame, this file does what RFC 6455 asks: the masking rule per
 * role, reserved bits, opcodes, fragmentation, control frames (ping
 * answered, close echoed), the message size limit and UTF-8 of text.
 * Messages are assembled in one buffer reused for the life of the
 * connection; an unmasked message that arrives whole is handed to the
 * callback straight from the caller's bytes.
 */
#include "proto/ws.h"

#include <string.h>

/*
 * Writing.  One wslay frame context per role serves every codec of the
 * process: it holds only the state of a frame being written, and
 * ws_frame_out() always writes a frame whole, so between frames the
 * context is idle and any codec of that role may take it.  (Per role,
 * because wslay remembers that a context masks once it has masked.)  Its
 * callbacks reach the codec writing through tx_w.  A context per codec
 * would cost 4 KiB each (wslay's read buffer, which the reader below does
 * not use): 8 KiB per call.  If wslay ever stops halfway through a frame,
 * the context is made afresh, so no state carries over to another codec's
 * frame.
 */
static wslay_frame_context_ptr tx_fr[2];	/* by enum ws_role */
static struct ws_codec *tx_w;

static ssize_t
ws_recv_cb(uint8_t *buf, size_t len, int flags, void *user)
{
	return -1;	/* never called: frames are read by ws_codec_feed() */
}

static ssize_t
ws_send_cb(const uint8_t *data, size_t len, int flags, void *user)
{
	if (buf_append(tx_w->out, data, len) != 0)
		return -1;	/* wslay: want write */
	return (ssize_t)len;
}

static int
ws_genmask_cb(uint8_t *buf, size_t len, void *user)
{
	struct ws_codec *w = tx_w;

	/* xorshift64*: unpredictable enough for masking, no syscall */
	for (size_t i = 0; i < len; i++) {
		w->rng ^= w->rng >> 12;
		w->rng ^= w->rng << 25;
		w->rng ^= w->rng >> 27;
		buf[i] = (uint8_t)((w->rng * 0x2545F4914F6CDD1DULL) >> 56);
	}
	return 0;
}

static int
tx_context(int role)
{
	static const struct wslay_frame_callbacks cbs = {
		ws_send_cb, ws_recv_cb, ws_genmask_cb,
	};

	if (tx_fr[role] != NULL)
		return 0;
	return wslay_frame_context_init(&tx_fr[role], &cbs, NULL) == 0 ? 0 : -1;
}

int
ws_codec_init(struct ws_codec *w, enum ws_role role, size_t max_msg,
    struct buf *out, ws_msg_cb cb, void *arg, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->role = role;
	w->max_msg = max_msg;
	w->out = out;
	w->cb = cb;
	w->arg = arg;
	w->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
	w->close_code = 1005;
	buf_init(&w->msg, max_msg);
	return tx_context(w->role);
}

void
ws_codec_free(struct ws_codec *w)
{
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
	if (tx_context(w->role) != 0)
		return WS_ERR_OUTPUT;
	tx_w = w;
	do {
		r = wslay_frame_send(tx_fr[w->role], &io);
		if (r < 0) {
			/* wslay refused the frame (a control frame over 125
			 * bytes): put back what it wrote, if anything, and
			 * start the next frame from a clean context */
			w->out->len = mark;
			w->out->off = off;
			wslay_frame_context_free(tx_fr[w->role]);
			tx_fr[w->role] = NULL;
			tx_w = NULL;
			return WS_ERR_OUTPUT;
		}
		io.data += r;
		io.data_length -= (size_t)r;
	} while (io.data_length > 0);
	tx_w = NULL;
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

/* A complete data message: check and deliver.  ascii: every byte of it is
 * known to be below 0x80. */
static int
ws_deliver(struct ws_codec *w, uint8_t op, const uint8_t *p, size_t n,
    int ascii)
{
	w->messages++;
	if (op == WSLAY_TEXT_FRAME && !ascii && !utf8_valid(p, n))
		return ws_fail(w, WS_ERR_UTF8, 1007, "text message is not UTF-8");
	if (w->cb != NULL && w->cb(w->arg, op, p, n) != 0)
		return WS_STOPPED;
	return WS_OK;
}

#define HIGH_BITS	UINT64_C(0x8080808080808080)

uint64_t
ws_unmask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4],
    uint64_t off)
{
	uint8_t k[8];
	uint64_t k8, v, bits = 0;
	size_t i = 0;

	for (int j = 0; j < 8; j++)
		k[j] = key[(off + (uint64_t)j) & 3];
	memcpy(&k8, k, 8);
	for (; i + 8 <= n; i += 8) {
		memcpy(&v, src + i, 8);
		v ^= k8;
		bits |= v;
		memcpy(dst + i, &v, 8);
	}
	for (; i < n; i++) {
		dst[i] = src[i] ^ k[i & 7];
		bits |= dst[i];
	}
	return bits;
}

/* First bytes of a frame: everything the header tells us is checked here,
 * before any payload is buffered. */
static int
ws_frame_begin(struct ws_codec *w, uint8_t op, uint8_t fin, uint8_t rsv,
    uint8_t masked, uint64_t len)
{
	if (rsv != 0)
		return ws_fail(w, WS_ERR_PROTO, 1002, "reserved bits set");
	if (w->role == WS_SERVER && !masked)
		return ws_fail(w, WS_ERR_PROTO, 1002, "unmasked client frame");
	if (w->role == WS_CLIENT && masked)
		return ws_fail(w, WS_ERR_PROTO, 1002, "masked server frame");
	if (wslay_is_ctrl_frame(op)) {
		if (op != WSLAY_PING && op != WSLAY_PONG &&
		    op != WSLAY_CONNECTION_CLOSE)
			return ws_fail(w, WS_ERR_PROTO, 1002, "unknown opcode");
	} else if (op == WSLAY_CONTINUATION_FRAME) {
		if (!w->in_msg)
			return ws_fail(w, WS_ERR_PROTO, 1002,
			    "continuation without a message");
		if (buf_pending(&w->msg) + len > w->max_msg)
			return ws_fail(w, WS_ERR_TOOBIG, 1009, "message too big");
	} else if (op == WSLAY_TEXT_FRAME || op == WSLAY_BINARY_FRAME) {
		if (w->in_msg)
			return ws_fail(w, WS_ERR_PROTO, 1002,
			    "new message inside a fragmented one");
		if (len > w->max_msg)
			return ws_fail(w, WS_ERR_TOOBIG, 1009, "message too big");
		w->m_bits = 0;
		w->m_scanned = 1;
	} else
		return ws_fail(w, WS_ERR_PROTO, 1002, "unknown opcode");
	w->in_frame = 1;
	w->f_opcode = op;
	w->f_fin = fin;
	w->f_masked = masked;
	w->f_len = len;
	w->f_off = 0;
	return WS_OK;
}

/* One piece of payload, n bytes at p (masked if the frame is); called
 * with every piece, in order, and once with n = 0 for an empty frame. */
static int
ws_frame_data(struct ws_codec *w, const uint8_t *p, size_t n)
{
	uint8_t op = w->f_opcode, *dst;
	int done = w->f_off + n == w->f_len, rc;

	if (wslay_is_ctrl_frame(op)) {
		if (w->f_masked)
			ws_unmask_copy(w->ctrl + w->f_off, p, n, w->f_key, w->f_off);
		else if (n > 0)
			memcpy(w->ctrl + w->f_off, p, n);
		w->f_off += n;
		if (done) {
			w->in_frame = 0;
			return ws_control(w, op, w->ctrl, (size_t)w->f_len);
		}
		return WS_OK;
	}
	/* an unmasked message that arrived whole: no copy */
	if (!w->f_masked && op != WSLAY_CONTINUATION_FRAME && w->f_fin &&
	    w->f_off == 0 && done) {
		w->in_frame = 0;
		return ws_deliver(w, op, p, n, 0);
	}
	if (op != WSLAY_CONTINUATION_FRAME && w->f_off == 0)
		w->m_opcode = op;
	w->in_msg = 1;
	if (n > 0) {
		if ((dst = (uint8_t *)buf_reserve(&w->msg, n)) == NULL)
			return ws_fail(w, WS_ERR_TOOBIG, 1009, "message too big");
		if (w->f_masked)
			w->m_bits |= ws_unmask_copy(dst, p, n, w->f_key, w->f_off);
		else {
			memcpy(dst, p, n);
			w->m_scanned = 0;
		}
		buf_commit(&w->msg, n);
	}
	w->f_off += n;
	if (!done)
		return WS_OK;
	w->in_frame = 0;
	if (!w->f_fin)
		return WS_OK;
	w->in_msg = 0;
	rc = ws_deliver(w, w->m_opcode, (const uint8_t *)buf_head(&w->msg),
	    buf_pending(&w->msg), w->m_scanned && !(w->m_bits & HIGH_BITS));
	buf_consume(&w->msg, buf_pending(&w->msg));
	return rc;
}

/* Header size from its first two bytes: 2 to 14. */
static size_t
hdr_size(const uint8_t *h)
{
	size_t n = 2 + ((h[1] & 0x80) ? 4 : 0);

	if ((h[1] & 0x7F) == 126)
		n += 2;
	else if ((h[1] & 0x7F) == 127)
		n += 8;
	return n;
}

/*
 * What wslay's frame layer refuses, checked on the have bytes of a header
 * gathered so far, as soon as they are there: a control frame that is long
 * or fragmented (two bytes), a length not in its shortest form or with the
 * top bit set (the extended length).  Returns 0 or -1.
 */
static int
hdr_check(const uint8_t *h, size_t have)
{
	unsigned l7 = h[1] & 0x7F;
	uint64_t len = 0;

	if (have < 2)
		return 0;
	if ((h[0] & 0x08) && (l7 > 125 || !(h[0] & 0x80)))
		return -1;
	if (l7 == 126 && have >= 4) {
		len = (uint64_t)h[2] << 8 | h[3];
		if (len < 126)
			return -1;
	} else if (l7 == 127 && have >= 10) {
		for (int i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
		if (len < 65536 || (len >> 63) != 0)
			return -1;
	}
	return 0;
}

/* A whole header at h, checked. */
static void
hdr_decode(const uint8_t *h, struct ws_fhdr *fh)
{
	unsigned l7 = h[1] & 0x7F;
	const uint8_t *q = h + 2;

	fh->op = h[0] & 0x0F;
	fh->fin = h[0] >> 7;
	fh->rsv = (h[0] >> 4) & 7;
	fh->masked = h[1] >> 7;
	fh->len = l7;
	if (l7 == 126) {
		fh->len = (uint64_t)q[0] << 8 | q[1];
		q += 2;
	} else if (l7 == 127) {
		fh->len = 0;
		for (int i = 0; i < 8; i++)
			fh->len = fh->len << 8 | q[i];
		q += 8;
	}
	if (fh->masked)
		memcpy(fh->key, q, 4);
	else
		memset(fh->key, 0, 4);
}

int
ws_hdr_read(struct ws_hdr_in *hi, const uint8_t **p, size_t *len,
    struct ws_fhdr *fh)
{
	size_t need, take;

	if (hi->n == 0 && *len >= 2 && *len >= (need = hdr_size(*p))) {
		if (hdr_check(*p, need) != 0)
			return -1;
		hdr_decode(*p, fh);
		*p += need;
		*len -= need;
		return 1;
	}
	while (hi->n < 2 && *len > 0) {
		hi->b[hi->n++] = **p;
		(*p)++;
		(*len)--;
	}
	if (hi->n < 2)
		return 0;
	need = hdr_size(hi->b);
	take = need - hi->n < *len ? need - hi->n : *len;
	memcpy(hi->b + hi->n, *p, take);
	hi->n += (uint8_t)take;
	*p += take;
	*len -= take;
	if (hdr_check(hi->b, hi->n) != 0)
		return -1;
	if (hi->n < need)
		return 0;
	hi->n = 0;
	hdr_decode(hi->b, fh);
	return 1;
}

int
ws_codec_feed(struct ws_codec *w, const uint8_t *data, size_t len)
{
	size_t n;
	int rc;

	if (w->error)
		return WS_ERR_PROTO;
	if (w->close_received)
		return WS_CLOSED;	/* nothing after a close counts */
	while (len > 0) {
		if (!w->in_frame) {
			struct ws_fhdr fh;

			if ((rc = ws_hdr_read(&w->hin, &data, &len, &fh)) < 0)
				return ws_fail(w, WS_ERR_PROTO, 1002,
				    "malformed frame");
			if (rc == 0)
				break;		/* the rest of the header later */
			memcpy(w->f_key, fh.key, 4);
			if ((rc = ws_frame_begin(w, fh.op, fh.fin, fh.rsv,
			    fh.masked, fh.len)) != WS_OK)
				return rc;
			if (w->f_len == 0 &&
			    (rc = ws_frame_data(w, data, 0)) != WS_OK)
				return rc;
			continue;
		}
		n = w->f_len - w->f_off < len ? (size_t)(w->f_len - w->f_off) :
		    len;
		if ((rc = ws_frame_data(w, data, n)) != WS_OK)
			return rc;
		data += n;
		len -= n;
	}
	return WS_OK;
}
