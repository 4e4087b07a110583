/*
 * test_ws.c — ws_codec, both roles, over frames built byte by byte here.
 *
 * Every input is fed whole, split in two at every offset and one byte at
 * a time, and must give the same transcript: the messages delivered, the
 * return code, the error or close code, and every frame the codec wrote
 * (decoded here, with the masking rule of its role checked).
 */
#include "test/unit/test.h"
#include "proto/ws.h"

#include <stdarg.h>

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

enum { OP_CONT = 0, OP_TEXT = 1, OP_BIN = 2, OP_CLOSE = 8, OP_PING = 9,
    OP_PONG = 10 };

static const uint8_t mask_key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* ---- building input ---- */

static void
put_raw(struct buf *b, const void *p, size_t n)
{
	ASSERT_EQ(buf_append(b, p, n), 0);
}

/* A frame with the given header bits; mask uses mask_key. */
static void
put_frame(struct buf *b, int fin, int rsv, int op, int mask,
    const void *payload, size_t n)
{
	uint8_t h[14];
	size_t hl = 0;
	const uint8_t *src = payload;
	char *w;

	h[hl++] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (op & 0xf));
	if (n < 126)
		h[hl++] = (uint8_t)((mask ? 0x80 : 0) | n);
	else if (n < 65536) {
		h[hl++] = (uint8_t)((mask ? 0x80 : 0) | 126);
		h[hl++] = (uint8_t)(n >> 8);
		h[hl++] = (uint8_t)n;
	} else {
		h[hl++] = (uint8_t)((mask ? 0x80 : 0) | 127);
		for (int i = 7; i >= 0; i--)
			h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	if (mask) {
		memcpy(h + hl, mask_key, 4);
		hl += 4;
	}
	put_raw(b, h, hl);
	if (n == 0)
		return;
	w = buf_reserve(b, n);
	ASSERT_NOT_NULL(w);
	for (size_t i = 0; i < n; i++)
		w[i] = (char)(mask ? src[i] ^ mask_key[i % 4] : src[i]);
	buf_commit(b, n);
}

/* Shorthands: a final frame, masked as the client sends (to a server). */
static void
put_c(struct buf *b, int fin, int op, const char *s)
{
	put_frame(b, fin, 0, op, 1, s, strlen(s));
}

static void
put_close(struct buf *b, int mask, unsigned code, const char *reason,
    size_t rlen)
{
	uint8_t p[125];

	p[0] = (uint8_t)(code >> 8);
	p[1] = (uint8_t)code;
	memcpy(p + 2, reason, rlen);
	put_frame(b, 1, 0, OP_CLOSE, mask, p, 2 + rlen);
}

/* ---- reading output ---- */

struct frame {
	int		 fin, rsv, op, masked;
	uint8_t		*data;		/* unmasked, malloc'd */
	size_t		 len;
};

/* Decode one frame from p[0..n); returns its size, 0 if incomplete. */
static size_t
parse_frame(const uint8_t *p, size_t n, struct frame *f)
{
	size_t hl = 2;
	uint64_t len;
	const uint8_t *key = NULL;

	if (n < 2)
		return 0;
	f->fin = p[0] >> 7;
	f->rsv = (p[0] >> 4) & 7;
	f->op = p[0] & 0xf;
	f->masked = p[1] >> 7;
	len = p[1] & 0x7f;
	if (len == 126) {
		if (n < 4)
			return 0;
		len = (uint64_t)p[2] << 8 | p[3];
		ASSERT_GE(len, 126);
		hl = 4;
	} else if (len == 127) {
		if (n < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		ASSERT_GE(len, 65536);
		hl = 10;
	}
	if (f->masked) {
		if (n < hl + 4)
			return 0;
		key = p + hl;
		hl += 4;
	}
	if (n - hl < len)
		return 0;
	f->len = (size_t)len;
	f->data = malloc(f->len + 1);
	ASSERT_NOT_NULL(f->data);
	for (size_t i = 0; i < f->len; i++)
		f->data[i] = key ? p[hl + i] ^ key[i % 4] : p[hl + i];
	return hl + f->len;
}

static uint32_t
fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void
put_repr(FILE *f, const uint8_t *p, size_t n)
{
	if (n > 48) {
		fprintf(f, "<%zu bytes %08x>", n, fnv(p, n));
		return;
	}
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			fprintf(f, "\\x%02x", p[i]);
		else
			fputc(p[i], f);
	}
	fputc('"', f);
}

static const char *
op_name(int op)
{
	switch (op) {
	case OP_CONT: return "cont";
	case OP_TEXT: return "text";
	case OP_BIN: return "binary";
	case OP_CLOSE: return "close";
	case OP_PING: return "ping";
	case OP_PONG: return "pong";
	default: return "op?";
	}
}

/*
 * Describe every frame in out; a server writes unmasked frames, a client
 * masked ones, both whole and without reserved bits.
 */
static void
describe_output(FILE *f, struct buf *out, int role)
{
	const uint8_t *p = (const uint8_t *)buf_head(out);
	size_t n = buf_pending(out), used;
	struct frame fr;

	while (n > 0) {
		used = parse_frame(p, n, &fr);
		ASSERT_GT(used, 0);
		ASSERT_EQ(fr.fin, 1);
		ASSERT_EQ(fr.rsv, 0);
		ASSERT_EQ(fr.masked, role == WS_CLIENT);
		if (fr.op == OP_CLOSE) {
			ASSERT_NE(fr.len, 1);
			if (fr.len == 0)
				fprintf(f, "out close\n");
			else {
				fprintf(f, "out close %u\n",
				    (unsigned)fr.data[0] << 8 | fr.data[1]);
				ASSERT_EQ(utf8_valid(fr.data + 2, fr.len - 2), 1);
			}
		} else {
			fprintf(f, "out %s ", op_name(fr.op));
			put_repr(f, fr.data, fr.len);
			fputc('\n', f);
		}
		free(fr.data);
		p += used;
		n -= used;
	}
}

/* ---- running the codec ---- */

struct sink {
	FILE		*f;
	unsigned	 count;
	unsigned	 stop_after;	/* 0: never stop */
};

static int
on_msg(void *arg, int opcode, const uint8_t *msg, size_t len)
{
	struct sink *s = arg;

	ASSERT(len == 0 || msg != NULL);
	fprintf(s->f, "msg %d ", opcode);
	put_repr(s->f, msg, len);
	fputc('\n', s->f);
	s->count++;
	return s->stop_after != 0 && s->count >= s->stop_after;
}

struct wcase {
	int		 role;
	size_t		 max_msg;
	unsigned	 stop_after;
};

/* Feed in[0..len) in the pieces cuts[] marks, stopping at the first
 * return code other than WS_OK as an owner does; the transcript is
 * malloc'd. */
static char *
run_cuts(const struct wcase *wc, const uint8_t *in, size_t len,
    const size_t *cuts, size_t ncuts)
{
	struct ws_codec w;
	struct buf out;
	struct sink s = { 0 };
	char *t = NULL;
	size_t tlen = 0;
	int rc = WS_OK;

	s.f = open_memstream(&t, &tlen);
	ASSERT_NOT_NULL(s.f);
	s.stop_after = wc->stop_after;
	buf_init(&out, 0);
	ASSERT_EQ(ws_codec_init(&w, wc->role, wc->max_msg, &out, on_msg, &s,
	    42), 0);
	for (size_t c = 0; c + 1 < ncuts; c++) {
		rc = ws_codec_feed(&w, in + cuts[c], cuts[c + 1] - cuts[c]);
		if (rc != WS_OK)
			break;
	}
	fprintf(s.f, "rc %d\n", rc);
	if (rc < 0) {
		fprintf(s.f, "error %u\n", w.error_code);
		ASSERT_NOT_NULL(w.error);
		/* the error sticks, and nothing more is written */
		size_t before = buf_pending(&out);
		ASSERT_EQ(ws_codec_feed(&w, in, len), WS_ERR_PROTO);
		ASSERT_UEQ(buf_pending(&out), before);
	}
	if (rc == WS_CLOSED) {
		fprintf(s.f, "peer close %u\n", w.close_code);
		ASSERT_EQ(ws_codec_feed(&w, in, len), WS_CLOSED);
	}
	describe_output(s.f, &out, wc->role);
	fclose(s.f);
	ws_codec_free(&w);
	buf_free(&out);
	return t;
}

static void
same(const char *name, const char *how, size_t at, const char *got,
    const char *want)
{
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "  case %s, fed %s %zu:\n", name, how, at);
		ASSERT_STR_EQ(got, want);
	}
}

static void
check_all(const char *name, const struct wcase *wc, const struct buf *in,
    const char *expect)
{
	const uint8_t *p = (const uint8_t *)buf_head(in);
	size_t len = buf_pending(in);
	size_t whole[2] = { 0, len }, two[3] = { 0, 0, len }, *cuts;
	char *t;

	t = run_cuts(wc, p, len, whole, 2);
	same(name, "whole", len, t, expect);
	free(t);
	for (size_t at = 1; at < len; at++) {
		two[1] = at;
		t = run_cuts(wc, p, len, two, 3);
		same(name, "split at", at, t, expect);
		free(t);
	}
	cuts = malloc((len + 1) * sizeof(*cuts));
	ASSERT_NOT_NULL(cuts);
	for (size_t i = 0; i <= len; i++)
		cuts[i] = i;
	t = run_cuts(wc, p, len, cuts, len + 1);
	same(name, "bytewise", 1, t, expect);
	free(t);
	free(cuts);
}

static const struct wcase server = { WS_SERVER, 1024, 0 };
static const struct wcase client = { WS_CLIENT, 1024, 0 };

/* The transcript line for a message or an output frame. */
static char *
fmt(const char *fmtstr, ...) __attribute__((format(printf, 1, 2)));

static char *
fmt(const char *fmtstr, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmtstr);
	ASSERT(vasprintf(&s, fmtstr, ap) >= 0);
	va_end(ap);
	return s;
}

static char *
repr(const void *p, size_t n)
{
	char *t = NULL;
	size_t tl = 0;
	FILE *f = open_memstream(&t, &tl);

	ASSERT_NOT_NULL(f);
	put_repr(f, p, n);
	fclose(f);
	return t;
}

/* ---- server role: what Twilio sends ---- */

TEST(ws_server_masked_text)
{
	struct buf in;

	buf_init(&in, 0);
	put_c(&in, 1, OP_TEXT, "Hello");
	check_all("text", &server, &in, "msg 1 \"Hello\"\nrc 0\n");
	/* the RFC 6455 §5.7 example, byte for byte */
	buf_consume(&in, buf_pending(&in));
	put_raw(&in, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
	check_all("rfc_example", &server, &in, "msg 1 \"Hello\"\nrc 0\n");
	buf_free(&in);
}

TEST(ws_server_several_messages)
{
	struct buf in;

	buf_init(&in, 0);
	put_c(&in, 1, OP_TEXT, "{\"event\":\"connected\"}");
	put_c(&in, 1, OP_TEXT, "");
	put_frame(&in, 1, 0, OP_BIN, 1, "\x00\xff\x80", 3);
	put_c(&in, 1, OP_PONG, "late");
	put_c(&in, 1, OP_TEXT, "caf\xc3\xa9");
	check_all("several", &server, &in,
	    "msg 1 \"{\\\"event\\\":\\\"connected\\\"}\"\n"
	    "msg 1 \"\"\n"
	    "msg 2 \"\\x00\\xff\\x80\"\n"
	    "msg 1 \"caf\\xc3\\xa9\"\n"
	    "rc 0\n");
	buf_free(&in);
}

TEST(ws_server_refuses_unmasked)
{
	struct buf in;

	buf_init(&in, 0);
	put_frame(&in, 1, 0, OP_TEXT, 0, "Hello", 5);
	check_all("unmasked", &server, &in, "rc -1\nerror 1002\nout close 1002\n");
	/* a good message first is still delivered */
	buf_consume(&in, buf_pending(&in));
	put_c(&in, 1, OP_TEXT, "ok");
	put_frame(&in, 1, 0, OP_PING, 0, "p", 1);
	check_all("unmasked_second", &server, &in,
	    "msg 1 \"ok\"\nrc -1\nerror 1002\nout close 1002\n");
	buf_free(&in);
}

TEST(ws_client_role)
{
	struct buf in;

	buf_init(&in, 0);
	/* a server's frames are not masked */
	put_frame(&in, 1, 0, OP_TEXT, 0, "from server", 11);
	put_frame(&in, 1, 0, OP_PING, 0, "hb", 2);
	check_all("client_ok", &client, &in,
	    "msg 1 \"from server\"\nrc 0\nout pong \"hb\"\n");
	/* a masked frame from the server is refused, with a masked close */
	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 1, 0, OP_TEXT, 1, "masked", 6);
	check_all("client_masked", &client, &in,
	    "rc -1\nerror 1002\nout close 1002\n");
	buf_free(&in);
}

TEST(ws_client_masks_what_it_sends)
{
	struct ws_codec w;
	struct buf out;
	struct frame f1, f2;
	size_t n1, n2;
	const uint8_t *p;

	buf_init(&out, 0);
	ASSERT_EQ(ws_codec_init(&w, WS_CLIENT, 1024, &out, NULL, NULL, 7), 0);
	ASSERT_EQ(ws_codec_send(&w, OP_TEXT, "{\"type\":\"x\"}", 12), WS_OK);
	ASSERT_EQ(ws_codec_send(&w, OP_TEXT, "{\"type\":\"x\"}", 12), WS_OK);
	p = (const uint8_t *)buf_head(&out);
	ASSERT_UEQ(buf_pending(&out), 2 * (2 + 4 + 12));
	ASSERT_EQ(p[0], 0x81);
	ASSERT_EQ(p[1], 0x80 | 12);
	n1 = parse_frame(p, buf_pending(&out), &f1);
	ASSERT_UEQ(n1, 18);
	n2 = parse_frame(p + n1, buf_pending(&out) - n1, &f2);
	ASSERT_UEQ(n2, 18);
	ASSERT_EQ(f1.masked, 1);
	ASSERT_MEM_EQ(f1.data, "{\"type\":\"x\"}", 12);
	ASSERT_MEM_EQ(f2.data, "{\"type\":\"x\"}", 12);
	/* a fresh key per frame */
	ASSERT(memcmp(p + 2, p + n1 + 2, 4) != 0);
	/* the masked bytes are not the text */
	ASSERT(memcmp(p + 6, "{\"type\":\"x\"}", 12) != 0);
	free(f1.data);
	free(f2.data);
	ws_codec_free(&w);
	buf_free(&out);
}

TEST(ws_fragmented_message)
{
	struct buf in;

	buf_init(&in, 0);
	put_c(&in, 0, OP_TEXT, "Hel");
	put_c(&in, 0, OP_CONT, "lo, ");
	put_c(&in, 1, OP_CONT, "world");
	check_all("three", &server, &in, "msg 1 \"Hello, world\"\nrc 0\n");

	/* empty fragments, and a binary one */
	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_TEXT, "");
	put_c(&in, 0, OP_CONT, "");
	put_c(&in, 1, OP_CONT, "");
	put_frame(&in, 0, 0, OP_BIN, 1, "\x01", 1);
	put_frame(&in, 1, 0, OP_CONT, 1, "\x02\x03", 2);
	put_c(&in, 1, OP_TEXT, "after");
	check_all("empty_and_binary", &server, &in,
	    "msg 1 \"\"\nmsg 2 \"\\x01\\x02\\x03\"\nmsg 1 \"after\"\nrc 0\n");

	/* a UTF-8 sequence cut between fragments is fine */
	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_TEXT, "caf\xc3");
	put_c(&in, 1, OP_CONT, "\xa9!");
	check_all("utf8_across", &server, &in, "msg 1 \"caf\\xc3\\xa9!\"\nrc 0\n");
	buf_free(&in);
}

TEST(ws_control_inside_fragmented)
{
	struct buf in;

	buf_init(&in, 0);
	put_c(&in, 0, OP_TEXT, "a");
	put_c(&in, 1, OP_PING, "pp");
	put_c(&in, 0, OP_CONT, "b");
	put_c(&in, 1, OP_PONG, "ignored");
	put_c(&in, 1, OP_PING, "");
	put_c(&in, 1, OP_CONT, "c");
	check_all("ping_inside", &server, &in,
	    "msg 1 \"abc\"\nrc 0\nout pong \"pp\"\nout pong \"\"\n");

	/* a close in the middle ends it; the partial message is dropped */
	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_TEXT, "a");
	put_close(&in, 1, 1001, "", 0);
	put_c(&in, 1, OP_CONT, "b");
	check_all("close_inside", &server, &in,
	    "rc 1\npeer close 1001\nout close 1001\n");
	buf_free(&in);
}

TEST(ws_fragmentation_errors)
{
	struct buf in;
	const char *proto = "rc -1\nerror 1002\nout close 1002\n";

	buf_init(&in, 0);
	put_c(&in, 1, OP_CONT, "x");
	check_all("cont_without_start", &server, &in, proto);

	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_CONT, "x");
	check_all("cont_without_start_nofin", &server, &in, proto);

	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_TEXT, "a");
	put_c(&in, 1, OP_TEXT, "b");
	check_all("text_inside", &server, &in, proto);

	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_BIN, "a");
	put_c(&in, 0, OP_BIN, "b");
	check_all("binary_inside", &server, &in, proto);

	/* a finished message leaves no state behind */
	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_TEXT, "a");
	put_c(&in, 1, OP_CONT, "b");
	put_c(&in, 1, OP_CONT, "c");
	check_all("cont_after_end", &server, &in, "msg 1 \"ab\"\nrc -1\nerror 1002\n"
	    "out close 1002\n");

	/* control frames are never fragmented */
	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_PING, "x");
	check_all("ping_not_fin", &server, &in, proto);
	buf_free(&in);
}

TEST(ws_reserved_bits_and_opcodes)
{
	struct buf in;
	const char *proto = "rc -1\nerror 1002\nout close 1002\n";
	static const int ops[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };

	buf_init(&in, 0);
	for (int rsv = 1; rsv <= 7; rsv++) {
		buf_consume(&in, buf_pending(&in));
		put_frame(&in, 1, rsv, OP_TEXT, 1, "x", 1);
		check_all("rsv", &server, &in, proto);
		/* on control frames too */
		buf_consume(&in, buf_pending(&in));
		put_frame(&in, 1, rsv, OP_PING, 1, "", 0);
		check_all("rsv_ping", &server, &in, proto);
	}
	for (size_t i = 0; i < NCASES(ops); i++) {
		buf_consume(&in, buf_pending(&in));
		put_frame(&in, 1, 0, ops[i], 1, "xy", 2);
		check_all("opcode", &server, &in, proto);
		buf_consume(&in, buf_pending(&in));
		put_frame(&in, 1, 0, ops[i], 1, "", 0);
		check_all("opcode_empty", &server, &in, proto);
	}
	buf_free(&in);
}

TEST(ws_bad_lengths)
{
	struct buf in;
	const char *proto = "rc -1\nerror 1002\nout close 1002\n";

	buf_init(&in, 0);
	/* 5 bytes announced in the 16-bit form */
	put_raw(&in, "\x81\xfe\x00\x05", 4);
	put_raw(&in, mask_key, 4);
	put_raw(&in, "abcde", 5);
	check_all("nonminimal16", &server, &in, proto);
	/* 200 bytes announced in the 64-bit form */
	buf_consume(&in, buf_pending(&in));
	put_raw(&in, "\x81\xff\x00\x00\x00\x00\x00\x00\x00\xc8", 10);
	check_all("nonminimal64", &server, &in, proto);
	/* the top bit of a 64-bit length */
	buf_consume(&in, buf_pending(&in));
	put_raw(&in, "\x82\xff\x80\x00\x00\x00\x00\x01\x00\x00", 10);
	check_all("length_top_bit", &server, &in, proto);
	buf_free(&in);
}

TEST(ws_too_big)
{
	struct buf in;
	char big[1100];
	char *want;
	const char *toobig = "rc -2\nerror 1009\nout close 1009\n";

	memset(big, 'x', sizeof(big));
	buf_init(&in, 0);
	/* exactly max_msg is fine */
	put_frame(&in, 1, 0, OP_TEXT, 1, big, 1024);
	want = fmt("msg 1 <1024 bytes %08x>\nrc 0\n", fnv((uint8_t *)big, 1024));
	check_all("at_max", &server, &in, want);
	free(want);

	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 1, 0, OP_TEXT, 1, big, 1025);
	check_all("single", &server, &in, toobig);

	/* refused from the header alone, before the payload arrives */
	buf_consume(&in, buf_pending(&in));
	put_raw(&in, "\x82\xff\x00\x00\x00\x01\x00\x00\x00\x00", 10);
	put_raw(&in, mask_key, 4);
	put_raw(&in, "abc", 3);
	check_all("huge_header", &server, &in, toobig);

	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 0, 0, OP_TEXT, 1, big, 600);
	put_frame(&in, 1, 0, OP_CONT, 1, big, 424);
	want = fmt("msg 1 <1024 bytes %08x>\nrc 0\n", fnv((uint8_t *)big, 1024));
	check_all("fragments_at_max", &server, &in, want);
	free(want);

	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 0, 0, OP_TEXT, 1, big, 600);
	put_frame(&in, 0, 0, OP_CONT, 1, big, 424);
	put_frame(&in, 1, 0, OP_CONT, 1, big, 1);
	check_all("fragments", &server, &in, toobig);

	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 0, 0, OP_BIN, 1, big, 600);
	put_frame(&in, 1, 0, OP_CONT, 1, big, 600);
	check_all("fragments_binary", &server, &in, toobig);

	/* a long run of empty fragments is not a big message */
	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_TEXT, "");
	for (int i = 0; i < 20; i++)
		put_c(&in, 0, OP_CONT, "");
	put_c(&in, 1, OP_CONT, "!");
	check_all("empty_fragments", &server, &in, "msg 1 \"!\"\nrc 0\n");
	buf_free(&in);
}

TEST(ws_utf8)
{
	struct buf in;
	const char *bad = "rc -3\nerror 1007\nout close 1007\n";

	buf_init(&in, 0);
	put_c(&in, 1, OP_TEXT, "\xc3\x28");
	check_all("invalid", &server, &in, bad);

	buf_consume(&in, buf_pending(&in));
	put_c(&in, 1, OP_TEXT, "\xed\xa0\x80");		/* a surrogate */
	check_all("surrogate", &server, &in, bad);

	buf_consume(&in, buf_pending(&in));
	put_c(&in, 1, OP_TEXT, "\xc0\xaf");		/* overlong */
	check_all("overlong", &server, &in, bad);

	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_TEXT, "ok so far ");
	put_c(&in, 1, OP_CONT, "\xff");
	check_all("fragmented", &server, &in, bad);

	/* truncated sequence at the end of the message */
	buf_consume(&in, buf_pending(&in));
	put_c(&in, 0, OP_TEXT, "a");
	put_c(&in, 1, OP_CONT, "\xe2\x82");
	check_all("truncated", &server, &in, bad);

	/* binary is not checked */
	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 1, 0, OP_BIN, 1, "\xc3\x28\xff", 3);
	check_all("binary", &server, &in, "msg 2 \"\\xc3(\\xff\"\nrc 0\n");
	buf_free(&in);
}

TEST(ws_close_from_peer)
{
	struct buf in;

	buf_init(&in, 0);
	put_close(&in, 1, 1000, "bye", 3);
	check_all("normal", &server, &in, "rc 1\npeer close 1000\nout close 1000\n");

	buf_consume(&in, buf_pending(&in));
	put_close(&in, 1, 4001, "custom", 6);
	check_all("app_code", &server, &in, "rc 1\npeer close 4001\nout close 4001\n");

	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 1, 0, OP_CLOSE, 1, "", 0);
	check_all("empty", &server, &in, "rc 1\npeer close 1005\nout close 1000\n");

	/* nothing after the close counts */
	buf_consume(&in, buf_pending(&in));
	put_close(&in, 1, 1001, "", 0);
	put_c(&in, 1, OP_TEXT, "too late");
	put_c(&in, 1, OP_PING, "too late");
	check_all("then_data", &server, &in,
	    "rc 1\npeer close 1001\nout close 1001\n");

	/* client role: the echo is masked */
	buf_consume(&in, buf_pending(&in));
	put_close(&in, 0, 1011, "server error", 12);
	check_all("client", &client, &in, "rc 1\npeer close 1011\nout close 1011\n");
	buf_free(&in);
}

TEST(ws_close_bad)
{
	static const unsigned bad_codes[] = {
		0, 1, 999, 1004, 1005, 1006, 1012, 1015, 1016, 1100, 2000,
		2999, 5000, 65535,
	};
	static const unsigned good_codes[] = {
		1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000,
		3999, 4000, 4999,
	};
	const char *proto = "rc -1\nerror 1002\nout close 1002\n";
	struct buf in;
	char *want;

	buf_init(&in, 0);
	for (size_t i = 0; i < NCASES(bad_codes); i++) {
		buf_consume(&in, buf_pending(&in));
		put_close(&in, 1, bad_codes[i], "", 0);
		check_all("bad_code", &server, &in, proto);
	}
	for (size_t i = 0; i < NCASES(good_codes); i++) {
		buf_consume(&in, buf_pending(&in));
		put_close(&in, 1, good_codes[i], "r", 1);
		want = fmt("rc 1\npeer close %u\nout close %u\n", good_codes[i],
		    good_codes[i]);
		check_all("good_code", &server, &in, want);
		free(want);
	}
	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 1, 0, OP_CLOSE, 1, "\x03", 1);
	check_all("one_byte", &server, &in, proto);

	buf_consume(&in, buf_pending(&in));
	put_close(&in, 1, 1000, "\xc3\x28", 2);
	check_all("reason_not_utf8", &server, &in,
	    "rc -3\nerror 1007\nout close 1007\n");
	buf_free(&in);
}

TEST(ws_ping_sizes)
{
	uint8_t p[126];
	struct buf in;
	char *want, *r;

	for (size_t i = 0; i < sizeof(p); i++)
		p[i] = (uint8_t)i;
	buf_init(&in, 0);
	put_frame(&in, 1, 0, OP_PING, 1, p, 125);
	r = repr(p, 125);
	want = fmt("rc 0\nout pong %s\n", r);
	check_all("ping125", &server, &in, want);
	free(want);
	free(r);

	/* a control frame longer than 125 bytes is malformed */
	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 1, 0, OP_PING, 1, p, 126);
	check_all("ping126", &server, &in, "rc -1\nerror 1002\nout close 1002\n");
	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 1, 0, OP_CLOSE, 1, p, 126);
	check_all("close126", &server, &in, "rc -1\nerror 1002\nout close 1002\n");
	buf_consume(&in, buf_pending(&in));
	put_frame(&in, 1, 0, OP_PONG, 1, p, 126);
	check_all("pong126", &server, &in, "rc -1\nerror 1002\nout close 1002\n");
	buf_free(&in);
}

TEST(ws_callback_stops)
{
	struct buf in;
	struct wcase stop1 = { WS_SERVER, 1024, 1 };
	struct wcase stop2 = { WS_SERVER, 1024, 2 };

	buf_init(&in, 0);
	put_c(&in, 1, OP_TEXT, "one");
	put_c(&in, 0, OP_TEXT, "tw");
	put_c(&in, 1, OP_CONT, "o");
	put_c(&in, 1, OP_TEXT, "three");
	check_all("stop1", &stop1, &in, "msg 1 \"one\"\nrc 2\n");
	check_all("stop2", &stop2, &in, "msg 1 \"one\"\nmsg 1 \"two\"\nrc 2\n");
	buf_free(&in);
}

TEST(ws_stopped_codec_goes_on)
{
	struct ws_codec w;
	struct buf in, out;
	struct sink s = { 0 };
	char *t = NULL;
	size_t tl = 0;

	/* after WS_STOPPED the codec is not in error: new input is parsed */
	s.f = open_memstream(&t, &tl);
	s.stop_after = 1;
	buf_init(&in, 0);
	buf_init(&out, 0);
	put_c(&in, 1, OP_TEXT, "one");
	ASSERT_EQ(ws_codec_init(&w, WS_SERVER, 1024, &out, on_msg, &s, 1), 0);
	ASSERT_EQ(ws_codec_feed(&w, (uint8_t *)buf_head(&in), buf_pending(&in)),
	    WS_STOPPED);
	ASSERT_NULL(w.error);
	s.stop_after = 0;
	ASSERT_EQ(ws_codec_feed(&w, (uint8_t *)buf_head(&in), buf_pending(&in)),
	    WS_OK);
	fclose(s.f);
	ASSERT_STR_EQ(t, "msg 1 \"one\"\nmsg 1 \"one\"\n");
	free(t);
	ws_codec_free(&w);
	buf_free(&in);
	buf_free(&out);
}

/* ---- sending ---- */

static size_t
header_len(size_t n, int masked)
{
	return 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + (masked ? 4 : 0);
}

struct collect {
	int		 op;
	size_t		 len, count;
	uint8_t		*data;
};

static int
collect_cb(void *arg, int opcode, const uint8_t *msg, size_t len)
{
	struct collect *c = arg;

	c->op = opcode;
	c->len = len;
	c->count++;
	free(c->data);
	c->data = malloc(len + 1);
	ASSERT_NOT_NULL(c->data);
	if (len)
		memcpy(c->data, msg, len);
	return 0;
}

/* Feed src to a codec of role `role` in pieces of `step` bytes (0: whole)
 * and check that exactly one message equal to want arrives. */
static void
decode_check(int role, size_t max_msg, const struct buf *src, size_t step,
    int op, const uint8_t *want, size_t n)
{
	struct ws_codec w;
	struct buf out;
	struct collect c = { 0 };
	const uint8_t *p = (const uint8_t *)buf_head(src);
	size_t len = buf_pending(src);

	buf_init(&out, 0);
	ASSERT_EQ(ws_codec_init(&w, role, max_msg, &out, collect_cb, &c, 99), 0);
	if (step == 0)
		step = len;
	for (size_t off = 0; off < len; off += step)
		ASSERT_EQ(ws_codec_feed(&w, p + off,
		    len - off < step ? len - off : step), WS_OK);
	ASSERT_UEQ(c.count, 1);
	ASSERT_EQ(c.op, op);
	ASSERT_UEQ(c.len, n);
	ASSERT_MEM_EQ(c.data, want, n);
	ASSERT_UEQ(buf_pending(&out), 0);
	free(c.data);
	ws_codec_free(&w);
	buf_free(&out);
}

TEST_T(ws_send_round_trip, 60)
{
	static const size_t sizes[] = { 0, 1, 125, 126, 65535, 65536, 200000 };
	static const size_t steps[] = { 0, 1, 7, 4096, 5000 };
	uint8_t *payload = malloc(200000);

	ASSERT_NOT_NULL(payload);
	for (size_t i = 0; i < 200000; i++)
		payload[i] = (uint8_t)('a' + i % 26);
	for (size_t si = 0; si < NCASES(sizes); si++) {
		size_t n = sizes[si];

		for (int from = WS_SERVER; from <= WS_CLIENT; from++) {
			int to = from == WS_SERVER ? WS_CLIENT : WS_SERVER;
			int op = si % 2 ? OP_TEXT : OP_BIN;
			struct ws_codec w;
			struct buf out;
			struct frame f;

			buf_init(&out, 0);
			ASSERT_EQ(ws_codec_init(&w, from, n, &out, NULL, NULL,
			    n + 1), 0);
			ASSERT_EQ(ws_codec_send(&w, op, payload, n), WS_OK);
			ASSERT_UEQ(buf_pending(&out),
			    header_len(n, from == WS_CLIENT) + n);
			ASSERT_UEQ(parse_frame((uint8_t *)buf_head(&out),
			    buf_pending(&out), &f), buf_pending(&out));
			ASSERT_EQ(f.fin, 1);
			ASSERT_EQ(f.op, op);
			ASSERT_EQ(f.masked, from == WS_CLIENT);
			ASSERT_UEQ(f.len, n);
			ASSERT_MEM_EQ(f.data, payload, n);
			free(f.data);
			for (size_t k = 0; k < NCASES(steps); k++)
				decode_check(to, n, &out, steps[k], op, payload, n);
			ws_codec_free(&w);
			buf_free(&out);
		}
	}
	free(payload);
}

TEST(ws_receiver_limit_is_exact)
{
	static const size_t sizes[] = { 1, 125, 126, 65535, 65536 };
	uint8_t *payload = calloc(1, 65536);

	ASSERT_NOT_NULL(payload);
	for (size_t si = 0; si < NCASES(sizes); si++) {
		size_t n = sizes[si];
		struct ws_codec tx, rx;
		struct buf out, back;
		struct collect c = { 0 };
		struct frame f;

		buf_init(&out, 0);
		buf_init(&back, 0);
		ASSERT_EQ(ws_codec_init(&tx, WS_CLIENT, n, &out, NULL, NULL, 3), 0);
		ASSERT_EQ(ws_codec_send(&tx, OP_BIN, payload, n), WS_OK);
		ASSERT_EQ(ws_codec_init(&rx, WS_SERVER, n - 1, &back, collect_cb,
		    &c, 4), 0);
		ASSERT_EQ(ws_codec_feed(&rx, (uint8_t *)buf_head(&out),
		    buf_pending(&out)), WS_ERR_TOOBIG);
		ASSERT_UEQ(c.count, 0);
		ASSERT_GT(parse_frame((uint8_t *)buf_head(&back),
		    buf_pending(&back), &f), 0);
		ASSERT_EQ(f.op, OP_CLOSE);
		ASSERT_EQ(f.data[0] << 8 | f.data[1], 1009);
		free(f.data);
		ws_codec_free(&tx);
		ws_codec_free(&rx);
		buf_free(&out);
		buf_free(&back);
	}
	free(payload);
}

TEST(ws_send_control_and_empty)
{
	struct ws_codec w;
	struct buf out;
	struct frame f;
	size_t n;

	buf_init(&out, 0);
	ASSERT_EQ(ws_codec_init(&w, WS_SERVER, 1024, &out, NULL, NULL, 0), 0);
	ASSERT_EQ(ws_codec_send(&w, OP_PING, NULL, 0), WS_OK);
	ASSERT_EQ(ws_codec_send(&w, OP_TEXT, "", 0), WS_OK);
	ASSERT_UEQ(buf_pending(&out), 4);
	ASSERT_MEM_EQ(buf_head(&out), "\x89\x00\x81\x00", 4);
	buf_consume(&out, 4);
	/* a control frame cannot carry 126 bytes: refused, nothing written,
	 * and the codec still frames the next message correctly */
	{
		uint8_t big[126] = { 0 };
		ASSERT_LT(ws_codec_send(&w, OP_PING, big, sizeof(big)), 0);
		ASSERT_UEQ(buf_pending(&out), 0);
	}
	ASSERT_EQ(ws_codec_send(&w, OP_TEXT, "x", 1), WS_OK);
	n = parse_frame((uint8_t *)buf_head(&out), buf_pending(&out), &f);
	ASSERT_UEQ(n, 3);
	ASSERT_UEQ(buf_pending(&out), 3);
	ASSERT_EQ(f.op, OP_TEXT);
	ASSERT_MEM_EQ(f.data, "x", 1);
	free(f.data);
	ws_codec_free(&w);
	buf_free(&out);
}

/* A refused send leaves what was queued exactly as it was, even when the
 * buffer had to be slid down or regrown to make room first. */
TEST(ws_refused_send_keeps_queued_bytes)
{
	struct ws_codec w;
	struct buf out;
	uint8_t big[126];
	char queued[140], copy[100];

	memset(big, 'p', sizeof(big));
	for (size_t i = 0; i < sizeof(queued); i++)
		queued[i] = (char)('A' + i % 50);
	for (int grow = 0; grow <= 1; grow++) {
		buf_init(&out, 0);
		ASSERT_EQ(ws_codec_init(&w, WS_SERVER, 1024, &out, NULL, NULL, 5), 0);
		ASSERT_EQ(buf_append(&out, queued, sizeof(queued)), 0);
		ASSERT_UEQ(out.cap, 256);
		/* 100 bytes pending at offset 40: room for a 130-byte frame
		 * only after sliding them down over themselves */
		buf_consume(&out, 40);
		if (grow)	/* or only after growing */
			ASSERT_EQ(buf_append(&out, queued, 60), 0);
		memcpy(copy, buf_head(&out), 100);
		size_t pending = buf_pending(&out);
		ASSERT_LT(ws_codec_send(&w, OP_PING, big, sizeof(big)), 0);
		ASSERT_UEQ(buf_pending(&out), pending);
		ASSERT_MEM_EQ(buf_head(&out), copy, 100);
		ASSERT_MEM_EQ(buf_head(&out), queued + 40, 100);
		if (grow)
			ASSERT_MEM_EQ(buf_head(&out) + 100, queued, 60);
		ws_codec_free(&w);
		buf_free(&out);
	}
}

TEST(ws_output_full)
{
	struct ws_codec w;
	struct buf out;
	char copy[64];

	for (int role = WS_SERVER; role <= WS_CLIENT; role++) {
		size_t hl = header_len(10, role == WS_CLIENT);

		/* room for exactly one 10-byte frame */
		buf_init(&out, hl + 10);
		ASSERT_EQ(ws_codec_init(&w, role, 1024, &out, NULL, NULL, 9), 0);
		ASSERT_EQ(ws_codec_send(&w, OP_TEXT, "0123456789", 10), WS_OK);
		ASSERT_UEQ(buf_pending(&out), hl + 10);
		memcpy(copy, buf_head(&out), hl + 10);
		ASSERT_EQ(ws_codec_send(&w, OP_TEXT, "x", 1), WS_ERR_OUTPUT);
		ASSERT_EQ(ws_codec_send(&w, OP_PING, NULL, 0), WS_ERR_OUTPUT);
		ASSERT_UEQ(buf_pending(&out), hl + 10);
		ASSERT_MEM_EQ(buf_head(&out), copy, hl + 10);
		/* one byte short of a frame */
		buf_consume(&out, hl + 10);
		ASSERT_EQ(ws_codec_send(&w, OP_TEXT, "0123456789a", 11),
		    WS_ERR_OUTPUT);
		ASSERT_UEQ(buf_pending(&out), 0);
		/* drained: the codec goes on, frames intact */
		ASSERT_EQ(ws_codec_send(&w, OP_TEXT, "abc", 3), WS_OK);
		{
			struct frame f;
			ASSERT_UEQ(parse_frame((uint8_t *)buf_head(&out),
			    buf_pending(&out), &f), buf_pending(&out));
			ASSERT_MEM_EQ(f.data, "abc", 3);
			ASSERT_EQ(f.masked, role == WS_CLIENT);
			free(f.data);
		}
		ws_codec_free(&w);
		buf_free(&out);
	}
}

TEST(ws_close_then_send)
{
	struct ws_codec w;
	struct buf out;
	struct frame f;
	size_t n, before;
	char reason[200];

	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	buf_init(&out, 0);
	ASSERT_EQ(ws_codec_init(&w, WS_SERVER, 1024, &out, NULL, NULL, 0), 0);
	ASSERT_EQ(ws_codec_close(&w, 1000, reason), WS_OK);
	n = parse_frame((uint8_t *)buf_head(&out), buf_pending(&out), &f);
	ASSERT_UEQ(n, buf_pending(&out));
	ASSERT_EQ(f.op, OP_CLOSE);
	ASSERT_UEQ(f.len, 125);		/* the reason is cut to fit */
	ASSERT_EQ(f.data[0] << 8 | f.data[1], 1000);
	free(f.data);
	before = buf_pending(&out);
	/* once only */
	ASSERT_EQ(ws_codec_close(&w, 1001, NULL), WS_OK);
	ASSERT_UEQ(buf_pending(&out), before);
	ASSERT_EQ(ws_codec_send(&w, OP_TEXT, "late", 4), WS_ERR_PROTO);
	ASSERT_EQ(ws_codec_send(&w, OP_PING, NULL, 0), WS_ERR_PROTO);
	ASSERT_UEQ(buf_pending(&out), before);
	ws_codec_free(&w);
	buf_free(&out);

	/* no code: an empty close */
	buf_init(&out, 0);
	ASSERT_EQ(ws_codec_init(&w, WS_CLIENT, 1024, &out, NULL, NULL, 0), 0);
	ASSERT_EQ(ws_codec_close(&w, 0, "ignored"), WS_OK);
	n = parse_frame((uint8_t *)buf_head(&out), buf_pending(&out), &f);
	ASSERT_UEQ(n, 6);
	ASSERT_EQ(f.op, OP_CLOSE);
	ASSERT_UEQ(f.len, 0);
	free(f.data);
	ASSERT_EQ(ws_codec_send(&w, OP_BIN, "x", 1), WS_ERR_PROTO);
	ws_codec_free(&w);
	buf_free(&out);
}

TEST(ws_peer_close_after_ours)
{
	struct ws_codec w;
	struct buf out, in;
	size_t before;

	buf_init(&out, 0);
	buf_init(&in, 0);
	ASSERT_EQ(ws_codec_init(&w, WS_SERVER, 1024, &out, NULL, NULL, 0), 0);
	ASSERT_EQ(ws_codec_close(&w, 1000, NULL), WS_OK);
	before = buf_pending(&out);
	/* the peer answers: no second close from us, and pings go unanswered */
	put_c(&in, 1, OP_PING, "x");
	put_close(&in, 1, 1000, "", 0);
	ASSERT_EQ(ws_codec_feed(&w, (uint8_t *)buf_head(&in), buf_pending(&in)),
	    WS_CLOSED);
	ASSERT_UEQ(buf_pending(&out), before);
	ASSERT_EQ(w.close_code, 1000);
	ws_codec_free(&w);
	buf_free(&out);
	buf_free(&in);
}

/* Codecs of both roles share one writer context per role: frames written
 * in turn by a client and a server, with a refused frame between them,
 * each come out whole, masked only by the client. */
TEST(ws_codecs_take_turns_writing)
{
	struct ws_codec cl, sv;
	struct buf out_c, out_s;
	uint8_t big[126];
	char msg[300];

	memset(big, 'b', sizeof(big));
	buf_init(&out_c, 0);
	buf_init(&out_s, 0);
	ASSERT_EQ(ws_codec_init(&cl, WS_CLIENT, 4096, &out_c, NULL, NULL, 11), 0);
	ASSERT_EQ(ws_codec_init(&sv, WS_SERVER, 4096, &out_s, NULL, NULL, 12), 0);
	for (int i = 0; i < 6; i++) {
		struct ws_codec *w = i % 2 ? &sv : &cl;
		struct buf *o = i % 2 ? &out_s : &out_c;
		struct frame f;
		size_t n = (size_t)(20 + 50 * i);

		memset(msg, 'a' + i, n);
		if (i == 3)	/* wslay refuses a control frame over 125 bytes */
			ASSERT_LT(ws_codec_send(w, OP_PING, big, sizeof(big)), 0);
		ASSERT_EQ(ws_codec_send(w, OP_TEXT, msg, n), WS_OK);
		ASSERT_UEQ(parse_frame((uint8_t *)buf_head(o), buf_pending(o), &f),
		    buf_pending(o));
		ASSERT_EQ(f.masked, w == &cl);
		ASSERT_EQ(f.op, OP_TEXT);
		ASSERT_UEQ(f.len, n);
		ASSERT_MEM_EQ(f.data, msg, n);
		free(f.data);
		buf_consume(o, buf_pending(o));
	}
	ws_codec_free(&cl);
	ws_codec_free(&sv);
	buf_free(&out_c);
	buf_free(&out_s);
}
