/*
 * test_ws_reader.c — the frame reader of proto/ws.c against wslay's.
 *
 * ws.c reads frames itself (ws_hdr_read, ws_unmask_copy) instead of through
 * wslay_frame_recv(), for speed.  Here both read the same random streams —
 * well-formed frames of every length encoding, masked and not, with a share
 * of damaged headers — cut into the same random pieces, and must agree on
 * every frame (opcode, FIN, reserved bits, mask bit, length, unmasked
 * payload) and on the piece where the stream turns out to be malformed.
 */
#include "test/unit/test.h"
#include "proto/ws.h"

#include <stdlib.h>

#define MAXFRAMES	64

struct rframe {
	uint8_t		 op, fin, rsv, masked;
	uint64_t	 len;
	struct buf	 data;
};

struct rlog {
	struct rframe	 f[MAXFRAMES];
	int		 n;		/* frames begun */
	int		 err_piece;	/* piece where the stream was refused, or -1 */
};

static void
log_free(struct rlog *l)
{
	for (int i = 0; i < l->n; i++)
		buf_free(&l->f[i].data);
}

static struct rframe *
log_begin(struct rlog *l, uint8_t op, uint8_t fin, uint8_t rsv,
    uint8_t masked, uint64_t len)
{
	struct rframe *f;

	ASSERT_LT(l->n, MAXFRAMES);
	f = &l->f[l->n++];
	f->op = op;
	f->fin = fin;
	f->rsv = rsv;
	f->masked = masked;
	f->len = len;
	buf_init(&f->data, 0);
	return f;
}

/* A random stream of frames into b; some headers are damaged on purpose. */
static void
make_stream(struct buf *b)
{
	int nframes = 1 + (int)test_rnd(8);

	for (int k = 0; k < nframes; k++) {
		uint8_t h[14], key[4];
		size_t hl = 0, n;
		int masked = (int)test_rnd(2), form;
		uint8_t op = (uint8_t)test_rnd(16);

		static const size_t edge[] = { 1, 125, 126, 127, 65535, 65536 };

		switch (test_rnd(7)) {
		case 0: n = 0; break;
		case 5: n = edge[test_rnd(6)]; break;
		case 1: n = test_rnd(126); break;
		case 2: n = 126 + test_rnd(400); break;
		case 3: n = test_rnd(4) ? test_rnd(9000) : 65536 + test_rnd(3000); break;
		default: n = 100 + test_rnd(300); break;	/* media-sized */
		}
		if ((op & 8) && test_rnd(4))
			n = test_rnd(126);		/* control frames mostly legal */
		/* the length's form: shortest, or a longer one sometimes */
		form = n < 126 ? 0 : n < 65536 ? 1 : 2;
		if (test_rnd(12) == 0 && form < 2)
			form++;
		h[hl++] = (uint8_t)((test_rnd(6) ? 0x80 : 0) |
		    (test_rnd(10) ? 0 : test_rnd(8) << 4) | op);
		if (form == 0)
			h[hl++] = (uint8_t)((masked ? 0x80 : 0) | n);
		else if (form == 1) {
			h[hl++] = (uint8_t)((masked ? 0x80 : 0) | 126);
			h[hl++] = (uint8_t)(n >> 8);
			h[hl++] = (uint8_t)n;
		} else {
			uint64_t L = n;
			h[hl++] = (uint8_t)((masked ? 0x80 : 0) | 127);
			if (test_rnd(20) == 0)
				L |= UINT64_C(1) << 63;
			for (int i = 7; i >= 0; i--)
				h[hl++] = (uint8_t)(L >> (8 * i));
		}
		if (masked) {
			for (int i = 0; i < 4; i++)
				key[i] = (uint8_t)test_rnd(256);
			memcpy(h + hl, key, 4);
			hl += 4;
		}
		ASSERT_EQ(buf_append(b, h, hl), 0);
		for (size_t i = 0; i < n; i++) {
			/* mostly ASCII, sometimes any byte */
			uint8_t c = (uint8_t)(test_rnd(30) ? 32 + test_rnd(95) : test_rnd(256));
			ASSERT_EQ(buf_append(b, &c, 1), 0);
		}
	}
	if (test_rnd(8) == 0) {	/* a stray byte or two at the end */
		uint8_t junk[2] = { (uint8_t)test_rnd(256), (uint8_t)test_rnd(256) };
		ASSERT_EQ(buf_append(b, junk, 1 + test_rnd(2)), 0);
	}
}

/* ---- wslay's reading ---- */

struct wsrc {
	const uint8_t	*p;
	size_t		 n;
};

static ssize_t
src_recv(uint8_t *buf, size_t len, int flags, void *user)
{
	struct wsrc *s = user;
	size_t n = s->n < len ? s->n : len;

	(void)flags;
	if (n == 0)
		return -1;
	memcpy(buf, s->p, n);
	s->p += n;
	s->n -= n;
	return (ssize_t)n;
}

static ssize_t
src_send(const uint8_t *d, size_t n, int flags, void *user)
{
	(void)d; (void)n; (void)flags; (void)user;
	return -1;
}

static int
src_genmask(uint8_t *buf, size_t n, void *user)
{
	(void)user;
	memset(buf, 0, n);
	return 0;
}

static void
read_wslay(const uint8_t *in, const size_t *cuts, int npieces, struct rlog *l)
{
	static const struct wslay_frame_callbacks cbs = {
		src_send, src_recv, src_genmask,
	};
	wslay_frame_context_ptr fr;
	struct wsrc src;
	uint64_t left = 0;
	int in_frame = 0;

	ASSERT_EQ(wslay_frame_context_init(&fr, &cbs, &src), 0);
	l->n = 0;
	l->err_piece = -1;
	for (int c = 0; c < npieces && l->err_piece < 0; c++) {
		src.p = in + cuts[c];
		src.n = cuts[c + 1] - cuts[c];
		for (;;) {
			struct wslay_frame_iocb io;
			ssize_t r;

			memset(&io, 0, sizeof(io));
			r = wslay_frame_recv(fr, &io);
			if (r == WSLAY_ERR_WANT_READ)
				break;
			if (r < 0) {
				l->err_piece = c;
				break;
			}
			if (!in_frame) {
				log_begin(l, io.opcode, io.fin, io.rsv, io.mask,
				    io.payload_length);
				left = io.payload_length;
				in_frame = 1;
			}
			if (io.data_length > 0)
				ASSERT_EQ(buf_append(&l->f[l->n - 1].data, io.data,
				    io.data_length), 0);
			left -= io.data_length;
			if (left == 0)
				in_frame = 0;
		}
	}
	wslay_frame_context_free(fr);
}

/* ---- ours ---- */

static void
read_ours(const uint8_t *in, const size_t *cuts, int npieces, struct rlog *l)
{
	struct ws_hdr_in hi;
	struct ws_fhdr fh;
	uint64_t off = 0;
	int in_frame = 0;

	memset(&hi, 0, sizeof(hi));
	memset(&fh, 0, sizeof(fh));
	l->n = 0;
	l->err_piece = -1;
	for (int c = 0; c < npieces && l->err_piece < 0; c++) {
		const uint8_t *p = in + cuts[c];
		size_t len = cuts[c + 1] - cuts[c];

		while (len > 0 || (in_frame && off == fh.len)) {
			if (in_frame && off == fh.len) {
				in_frame = 0;	/* an empty frame is done */
				continue;
			}
			if (!in_frame) {
				int rc = ws_hdr_read(&hi, &p, &len, &fh);
				if (rc < 0) {
					l->err_piece = c;
					break;
				}
				if (rc == 0)
					break;
				/* wslay shows a header with its first payload
				 * byte, or at once for an empty frame */
				log_begin(l, fh.op, fh.fin, fh.rsv, fh.masked,
				    fh.len);
				in_frame = 1;
				off = 0;
				continue;
			}
			size_t n = fh.len - off < len ? (size_t)(fh.len - off) :
			    len;
			struct buf *d = &l->f[l->n - 1].data;
			char *dst = buf_reserve(d, n);
			ASSERT_NOT_NULL(dst);
			if (fh.masked)
				ws_unmask_copy((uint8_t *)dst, p, n, fh.key, off);
			else
				memcpy(dst, p, n);
			buf_commit(d, n);
			off += n;
			p += n;
			len -= n;
			if (off == fh.len)
				in_frame = 0;
		}
	}
	if (l->n > 0 && l->f[l->n - 1].len > 0 &&
	    buf_pending(&l->f[l->n - 1].data) == 0) {
		l->n--;		/* a header whose payload never came */
		buf_free(&l->f[l->n].data);
	}
}

static void
same_log(const struct rlog *a, const struct rlog *b)
{
	ASSERT_EQ(a->err_piece, b->err_piece);
	ASSERT_EQ(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		const struct rframe *x = &a->f[i], *y = &b->f[i];

		ASSERT_EQ(x->op, y->op);
		ASSERT_EQ(x->fin, y->fin);
		ASSERT_EQ(x->rsv, y->rsv);
		ASSERT_EQ(x->masked, y->masked);
		ASSERT_UEQ(x->len, y->len);
		ASSERT_UEQ(buf_pending(&x->data), buf_pending(&y->data));
		if (buf_pending(&x->data) > 0)
			ASSERT_MEM_EQ(buf_head(&x->data), buf_head(&y->data),
			    buf_pending(&x->data));
	}
}

TEST_T(ws_reader_agrees_with_wslay, 60)
{
	struct rlog a, b;
	int refused = 0, frames = 0;

	test_rnd_seed(0x2545F4914F6CDD1DULL);
	for (int round = 0; round < 3000; round++) {
		struct buf in;
		size_t cuts[40];
		int np;

		buf_init(&in, 0);
		make_stream(&in);
		size_t total = buf_pending(&in);
		/* whole, byte by byte (short streams), or random pieces */
		switch (round % 3) {
		case 0:
			np = 1;
			break;
		case 1:
			np = total < 38 ? (int)total : 38;
			break;
		default:
			np = 1 + (int)test_rnd(38);
			break;
		}
		if (np < 1)
			np = 1;
		cuts[0] = 0;
		cuts[np] = total;
		for (int i = 1; i < np; i++) {
			size_t r = round % 3 == 1 ? (size_t)i : test_rnd((uint32_t)total + 1);
			cuts[i] = r;
		}
		/* sorted cut points */
		for (int i = 1; i < np; i++)
			for (int j = i + 1; j < np; j++)
				if (cuts[j] < cuts[i]) {
					size_t t = cuts[i];
					cuts[i] = cuts[j];
					cuts[j] = t;
				}
		read_wslay((const uint8_t *)buf_head(&in), cuts, np, &a);
		read_ours((const uint8_t *)buf_head(&in), cuts, np, &b);
		same_log(&a, &b);
		refused += a.err_piece >= 0;
		frames += a.n;
		log_free(&a);
		log_free(&b);
		buf_free(&in);
	}
	/* the streams exercised both outcomes */
	ASSERT_GT(refused, 100);
	ASSERT_GT(frames, 3000);
}

/* The unmasking copy against the plain definition, at every offset and
 * length around the eight-byte steps, with the ASCII summary checked. */
TEST(ws_unmask_copy_definition)
{
	uint8_t src[64], dst[64], key[4] = { 0x81, 0x02, 0x7f, 0xc3 };

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 37 + 11);
	for (uint64_t off = 0; off < 8; off++)
		for (size_t n = 0; n <= 40; n++) {
			uint64_t bits = ws_unmask_copy(dst, src, n, key, off);
			int high = 0;

			for (size_t i = 0; i < n; i++) {
				ASSERT_EQ(dst[i], src[i] ^ key[(off + i) % 4]);
				high |= dst[i] >= 0x80;
			}
			ASSERT_EQ(!!(bits & UINT64_C(0x8080808080808080)), high);
		}
}
