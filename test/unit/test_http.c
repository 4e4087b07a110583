/*
 * test_http.c — requests through the llhttp glue, fed whole, split in two
 * at every offset and one byte at a time; limits; the response head.
 *
 * Each case is data: an input and the transcript it must produce.  The
 * transcript lists every request the parser completed (method, target,
 * keep-alive, headers in order, body), how it ended (complete, upgrade,
 * error) and the bytes left after it, so a split that changes anything
 * at all shows up as a different transcript.
 */
#include "test/unit/test.h"
#include "proto/http.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

struct lim {
	size_t		max_head;
	unsigned	max_headers;
	size_t		max_body;
};

static const struct lim dflt = { 8192, 64, 65536 };

/* Printable form of bytes: at most 24 of them, escaped. */
static void
put_bytes(FILE *f, const char *p, size_t n)
{
	size_t shown = n < 24 ? n : 24;

	fputc('"', f);
	for (size_t i = 0; i < shown; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '\r')
			fputs("\\r", f);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\x%02x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
	if (shown < n)
		fprintf(f, "+%zu", n - shown);
}

static void
describe(FILE *f, const struct http_req *r, const char *how,
    const char *rest, size_t restlen)
{
	fprintf(f, "%s %s ka=%d\n", http_req_method(r), http_req_url(r),
	    r->keep_alive);
	for (unsigned i = 0; i < r->nhdrs; i++) {
		const struct http_hdr *h = &r->hdrs[i];
		const char *name = r->head + h->name_off;
		const char *value = h->value_off ? r->head + h->value_off : "";

		ASSERT_UEQ(strlen(name), h->name_len);
		ASSERT_UEQ(strlen(value), h->value_len);
		fprintf(f, "  %s: %s\n", name, value);
	}
	if (r->body_len > 0) {
		fprintf(f, "  body ");
		put_bytes(f, r->body, r->body_len);
		fputc('\n', f);
	}
	fprintf(f, "%s, rest ", how);
	put_bytes(f, rest, restlen);
	fputc('\n', f);
}

/*
 * Feed in[0..len) in the pieces that cuts[] marks (cuts[0] == 0,
 * cuts[n-1] == len) the way a connection does: after a complete request,
 * reset and go on with what is left of the same piece.  Returns the
 * transcript (malloc'd).
 */
static char *
run_cuts(const char *in, size_t len, const struct lim *l, const size_t *cuts,
    size_t ncuts)
{
	struct http_req r;
	char *out = NULL;
	size_t outlen = 0, used;
	FILE *f = open_memstream(&out, &outlen);
	int rc = HTTP_NEED_MORE, done = 0;

	ASSERT_NOT_NULL(f);
	ASSERT_EQ(http_req_init(&r, l->max_head, l->max_headers, l->max_body), 0);
	for (size_t c = 0; c + 1 < ncuts && !done; c++) {
		size_t p = cuts[c], end = cuts[c + 1];

		while (p < end) {
			rc = http_req_feed(&r, in + p, end - p, &used);
			ASSERT_LE(used, end - p);
			p += used;
			if (rc == HTTP_NEED_MORE) {
				ASSERT_UEQ(p, end);
				break;
			}
			if (rc == HTTP_COMPLETE) {
				ASSERT_GT(used, 0);
				describe(f, &r, "complete", in + p, len - p);
				http_req_reset(&r);
				continue;
			}
			if (rc == HTTP_UPGRADE) {
				describe(f, &r, "upgrade", in + p, len - p);
				done = 1;
				break;
			}
			ASSERT_LT(rc, 0);
			fprintf(f, "error %d status %d\n", rc, http_err_status(rc));
			/* the error sticks */
			ASSERT_EQ(http_req_feed(&r, "x", 1, &used), rc);
			ASSERT_UEQ(used, 0);
			done = 1;
			break;
		}
	}
	if (!done && r.started)
		fprintf(f, "incomplete\n");
	fclose(f);
	http_req_free(&r);
	return out;
}

static char *
run_whole(const char *in, size_t len, const struct lim *l)
{
	size_t cuts[2] = { 0, len };

	return run_cuts(in, len, l, cuts, 2);
}

static char *
run_split(const char *in, size_t len, const struct lim *l, size_t at)
{
	size_t cuts[3] = { 0, at, len };

	return run_cuts(in, len, l, cuts, 3);
}

static char *
run_bytes(const char *in, size_t len, const struct lim *l)
{
	size_t *cuts = malloc((len + 1) * sizeof(*cuts));
	char *t;

	ASSERT_NOT_NULL(cuts);
	for (size_t i = 0; i <= len; i++)
		cuts[i] = i;
	t = run_cuts(in, len, l, cuts, len + 1);
	free(cuts);
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

/* Whole, split at every offset, one byte at a time: all give `expect`. */
static void
check_all(const char *name, const char *in, size_t len, const struct lim *l,
    const char *expect)
{
	char *t;

	t = run_whole(in, len, l);
	same(name, "whole", len, t, expect);
	free(t);
	for (size_t at = 1; at < len; at++) {
		t = run_split(in, len, l, at);
		same(name, "split at", at, t, expect);
		free(t);
	}
	t = run_bytes(in, len, l);
	same(name, "bytewise", 1, t, expect);
	free(t);
}

struct hcase {
	const char	*name;
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	const char	*expect;
};

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
/* a masked WebSocket text frame, "Hello" */
#define WS_FRAME "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"

static const struct hcase good[] = {
	{ "get_simple",
	  "GET /index.html?x=1&y=2 HTTP/1.1\r\n"
	  "Host: example.com\r\n"
	  "User-Agent: test/1.0\r\n"
	  "Accept: */*\r\n"
	  "\r\n", 0,
	  "GET /index.html?x=1&y=2 ka=1\n"
	  "  Host: example.com\n"
	  "  User-Agent: test/1.0\n"
	  "  Accept: */*\n"
	  "complete, rest \"\"\n" },
	{ "post_content_length",
	  "POST /twilio/voice HTTP/1.1\r\n"
	  "Host: h\r\n"
	  "Content-Type: application/x-www-form-urlencoded\r\n"
	  "Content-Length: 23\r\n"
	  "\r\n"
	  "CallSid=CA1&From=%2B155", 0,
	  "POST /twilio/voice ka=1\n"
	  "  Host: h\n"
	  "  Content-Type: application/x-www-form-urlencoded\n"
	  "  Content-Length: 23\n"
	  "  body \"CallSid=CA1&From=%2B155\"\n"
	  "complete, rest \"\"\n" },
	{ "post_chunked",
	  "POST /c HTTP/1.1\r\n"
	  "Host: h\r\n"
	  "Transfer-Encoding: chunked\r\n"
	  "\r\n"
	  "5\r\nhello\r\n"
	  "6\r\n world\r\n"
	  "0\r\n\r\n", 0,
	  "POST /c ka=1\n"
	  "  Host: h\n"
	  "  Transfer-Encoding: chunked\n"
	  "  body \"hello world\"\n"
	  "complete, rest \"\"\n" },
	{ "post_chunked_ext_hex",
	  "POST /c HTTP/1.1\r\n"
	  "Transfer-Encoding: chunked\r\n"
	  "\r\n"
	  "A;name=value\r\n0123456789\r\n"
	  "1\r\n!\r\n"
	  "0\r\n\r\n", 0,
	  "POST /c ka=1\n"
	  "  Transfer-Encoding: chunked\n"
	  "  body \"0123456789!\"\n"
	  "complete, rest \"\"\n" },
	{ "post_empty_body",
	  "POST /e HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0,
	  "POST /e ka=1\n"
	  "  Content-Length: 0\n"
	  "complete, rest \"\"\n" },
	{ "connection_close",
	  "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0,
	  "GET / ka=0\n"
	  "  Connection: close\n"
	  "complete, rest \"\"\n" },
	{ "http10",
	  "GET /old HTTP/1.0\r\n\r\n", 0,
	  "GET /old ka=0\n"
	  "complete, rest \"\"\n" },
	{ "http10_keep_alive",
	  "GET /old HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0,
	  "GET /old ka=1\n"
	  "  Connection: Keep-Alive\n"
	  "complete, rest \"\"\n" },
	{ "empty_header_values",
	  "GET / HTTP/1.1\r\n"
	  "X-Empty:\r\n"
	  "Host: h\r\n"
	  "X-Blank: \r\n"
	  "X-Last:\r\n"
	  "\r\n", 0,
	  "GET / ka=1\n"
	  "  X-Empty: \n"
	  "  Host: h\n"
	  "  X-Blank: \n"
	  "  X-Last: \n"
	  "complete, rest \"\"\n" },
	{ "value_blanks_trimmed",
	  "GET / HTTP/1.1\r\n"
	  "Upgrade:   websocket  \r\n"
	  "X-Tab:\tv\t\r\n"
	  "\r\n", 0,
	  "GET / ka=1\n"
	  "  Upgrade: websocket\n"
	  "  X-Tab: v\n"
	  "complete, rest \"\"\n" },
	{ "obs_fold_joined",
	  "GET / HTTP/1.1\r\nX: a\r\n b\r\nY: c\r\n\r\n", 0,
	  "GET / ka=1\n"
	  "  X: a b\n"
	  "  Y: c\n"
	  "complete, rest \"\"\n" },
	{ "pipelined",
	  "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
	  "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
	  "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n", 0,
	  "GET /a ka=1\n"
	  "  Host: h\n"
	  "complete, rest \"POST /b HTTP/1.1\\r\\nConten\"+56\n"
	  "POST /b ka=1\n"
	  "  Content-Length: 3\n"
	  "  body \"xyz\"\n"
	  "complete, rest \"GET /c HTTP/1.1\\r\\nConnect\"+14\n"
	  "GET /c ka=0\n"
	  "  Connection: close\n"
	  "complete, rest \"\"\n" },
	{ "pipelined_chunked_then_get",
	  "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "3\r\nabc\r\n0\r\n\r\n"
	  "GET /z HTTP/1.1\r\n\r\n", 0,
	  "POST /a ka=1\n"
	  "  Transfer-Encoding: chunked\n"
	  "  body \"abc\"\n"
	  "complete, rest \"GET /z HTTP/1.1\\r\\n\\r\\n\"\n"
	  "GET /z ka=1\n"
	  "complete, rest \"\"\n" },
	{ "upgrade_websocket",
	  "GET /stream/abc HTTP/1.1\r\n"
	  "Host: h\r\n"
	  "Upgrade: websocket\r\n"
	  "Connection: Upgrade\r\n"
	  "Sec-WebSocket-Version: 13\r\n"
	  "Sec-WebSocket-Key: " WS_KEY "\r\n"
	  "\r\n"
	  WS_FRAME, 0,
	  "GET /stream/abc ka=1\n"
	  "  Host: h\n"
	  "  Upgrade: websocket\n"
	  "  Connection: Upgrade\n"
	  "  Sec-WebSocket-Version: 13\n"
	  "  Sec-WebSocket-Key: " WS_KEY "\n"
	  "upgrade, rest \"\\x81\\x857\\xfa!=\\x7f\\x9fMQX\"\n" },
	{ "upgrade_connection_list",
	  "GET /s HTTP/1.1\r\n"
	  "Connection: keep-alive, Upgrade\r\n"
	  "Upgrade: websocket\r\n"
	  "\r\n", 0,
	  "GET /s ka=1\n"
	  "  Connection: keep-alive, Upgrade\n"
	  "  Upgrade: websocket\n"
	  "upgrade, rest \"\"\n" },
	{ "upgrade_header_without_connection",
	  "GET /s HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /t HTTP/1.1\r\n\r\n", 0,
	  "GET /s ka=1\n"
	  "  Upgrade: websocket\n"
	  "complete, rest \"GET /t HTTP/1.1\\r\\n\\r\\n\"\n"
	  "GET /t ka=1\n"
	  "complete, rest \"\"\n" },
	{ "incomplete_head",
	  "GET / HTTP/1.1\r\nHost: h\r\n", 0,
	  "incomplete\n" },
	{ "incomplete_body",
	  "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345", 0,
	  "incomplete\n" },
	{ "other_methods",
	  "PUT /p HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
	  "DELETE /d HTTP/1.1\r\n\r\n"
	  "OPTIONS * HTTP/1.1\r\n\r\n"
	  "HEAD /h HTTP/1.1\r\n\r\n", 0,
	  "PUT /p ka=1\n"
	  "  Content-Length: 1\n"
	  "  body \"x\"\n"
	  "complete, rest \"DELETE /d HTTP/1.1\\r\\n\\r\\nOP\"+40\n"
	  "DELETE /d ka=1\n"
	  "complete, rest \"OPTIONS * HTTP/1.1\\r\\n\\r\\nHE\"+18\n"
	  "OPTIONS * ka=1\n"
	  "complete, rest \"HEAD /h HTTP/1.1\\r\\n\\r\\n\"\n"
	  "HEAD /h ka=1\n"
	  "complete, rest \"\"\n" },
};

static const struct hcase bad[] = {
	{ "tls_hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0,
	  "error -1 status 400\n" },
	{ "binary_zero", "GET /\0 HTTP/1.1\r\n\r\n", 20,
	  "error -1 status 400\n" },
	{ "no_colon", "GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 0,
	  "error -1 status 400\n" },
	{ "space_in_target", "GET /a b HTTP/1.1\r\n\r\n", 0,
	  "error -1 status 400\n" },
	{ "bad_version", "GET / HTTP/1.x\r\n\r\n", 0,
	  "error -1 status 400\n" },
	{ "bad_method", "G@T / HTTP/1.1\r\n\r\n", 0,
	  "error -1 status 400\n" },
	{ "space_before_colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 0,
	  "error -1 status 400\n" },
	{ "space_before_colon_length",
	  "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello", 0,
	  "error -1 status 400\n" },
	{ "tab_before_colon", "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 0,
	  "error -1 status 400\n" },
	{ "nul_in_value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26,
	  "error -1 status 400\n" },
	{ "length_and_chunked",
	  "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 0,
	  "error -1 status 400\n" },
	{ "two_lengths",
	  "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 0,
	  "error -1 status 400\n" },
	{ "length_not_a_number",
	  "POST / HTTP/1.1\r\nContent-Length: 3x\r\n\r\nabc", 0,
	  "error -1 status 400\n" },
	{ "length_overflows",
	  "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0,
	  "error -1 status 400\n" },
	{ "bad_chunk_size",
	  "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0,
	  "error -1 status 400\n" },
	{ "after_good_request",
	  "GET / HTTP/1.1\r\n\r\nBLAH\x01\r\n", 0,
	  "GET / ka=1\n"
	  "complete, rest \"BLAH\\x01\\r\\n\"\n"
	  "error -1 status 400\n" },
};

TEST(http_cases_every_split)
{
	for (size_t i = 0; i < NCASES(good); i++) {
		const struct hcase *c = &good[i];
		check_all(c->name, c->in, c->len ? c->len : strlen(c->in), &dflt,
		    c->expect);
	}
}

TEST(http_parse_errors_every_split)
{
	for (size_t i = 0; i < NCASES(bad); i++) {
		const struct hcase *c = &bad[i];
		check_all(c->name, c->in, c->len ? c->len : strlen(c->in), &dflt,
		    c->expect);
	}
}

/* Parse one request whole; the caller frees with http_req_free. */
static void
parse_one(struct http_req *r, const char *in, int want)
{
	size_t used;

	ASSERT_EQ(http_req_init(r, dflt.max_head, dflt.max_headers,
	    dflt.max_body), 0);
	ASSERT_EQ(http_req_feed(r, in, strlen(in), &used), want);
	ASSERT_UEQ(used, strlen(in));
}

TEST(http_header_lookup)
{
	struct http_req r;

	parse_one(&r,
	    "GET /x HTTP/1.1\r\n"
	    "Host: example.com\r\n"
	    "content-TYPE: text/plain\r\n"
	    "X-Twilio-Signature: abc=\r\n"
	    "X-Dup: first\r\n"
	    "x-dup: second\r\n"
	    "X-Empty:\r\n"
	    "\r\n", HTTP_COMPLETE);
	ASSERT_STR_EQ(http_req_method(&r), "GET");
	ASSERT_STR_EQ(http_req_url(&r), "/x");
	ASSERT_STR_EQ(http_req_header(&r, "host"), "example.com");
	ASSERT_STR_EQ(http_req_header(&r, "HOST"), "example.com");
	ASSERT_STR_EQ(http_req_header(&r, "Content-Type"), "text/plain");
	ASSERT_STR_EQ(http_req_header(&r, "x-twilio-signature"), "abc=");
	ASSERT_STR_EQ(http_req_header(&r, "X-DUP"), "first");
	ASSERT_STR_EQ(http_req_header(&r, "x-empty"), "");
	ASSERT_NULL(http_req_header(&r, "Content-Length"));
	ASSERT_NULL(http_req_header(&r, "Hos"));
	ASSERT_NULL(http_req_header(&r, "Host2"));
	ASSERT_NULL(http_req_header(&r, ""));
	http_req_free(&r);
}

TEST(http_header_has_tokens)
{
	struct http_req r;

	parse_one(&r,
	    "GET /s HTTP/1.1\r\n"
	    "Connection: keep-alive, Upgrade\r\n"
	    "Upgrade: websocket\r\n"
	    "X-List: ,, a ,\tB\t, c d ,\r\n"
	    "X-More: one\r\n"
	    "x-more: Two\r\n"
	    "X-Empty:\r\n"
	    "\r\n", HTTP_UPGRADE);
	ASSERT_EQ(http_req_header_has(&r, "Connection", "upgrade"), 1);
	ASSERT_EQ(http_req_header_has(&r, "connection", "Upgrade"), 1);
	ASSERT_EQ(http_req_header_has(&r, "Connection", "keep-alive"), 1);
	ASSERT_EQ(http_req_header_has(&r, "Connection", "KEEP-ALIVE"), 1);
	ASSERT_EQ(http_req_header_has(&r, "Connection", "close"), 0);
	ASSERT_EQ(http_req_header_has(&r, "Connection", "keep"), 0);
	ASSERT_EQ(http_req_header_has(&r, "Connection", "Upgrad"), 0);
	ASSERT_EQ(http_req_header_has(&r, "Connection", "alive, Upgrade"), 0);
	ASSERT_EQ(http_req_header_has(&r, "Upgrade", "websocket"), 1);
	ASSERT_EQ(http_req_header_has(&r, "Upgrade", "h2c"), 0);
	ASSERT_EQ(http_req_header_has(&r, "X-List", "a"), 1);
	ASSERT_EQ(http_req_header_has(&r, "X-List", "b"), 1);
	ASSERT_EQ(http_req_header_has(&r, "X-List", "c d"), 1);
	ASSERT_EQ(http_req_header_has(&r, "X-List", "c"), 0);
	ASSERT_EQ(http_req_header_has(&r, "X-List", ""), 0);
	/* every header of that name counts */
	ASSERT_EQ(http_req_header_has(&r, "X-More", "one"), 1);
	ASSERT_EQ(http_req_header_has(&r, "X-More", "two"), 1);
	ASSERT_EQ(http_req_header_has(&r, "X-Empty", "x"), 0);
	ASSERT_EQ(http_req_header_has(&r, "X-Empty", ""), 0);
	ASSERT_EQ(http_req_header_has(&r, "X-Missing", "x"), 0);
	http_req_free(&r);
}

TEST(http_upgrade_leaves_the_frame)
{
	static const char req[] =
	    "GET /stream HTTP/1.1\r\n"
	    "Host: h\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Sec-WebSocket-Key: " WS_KEY "\r\n"
	    "\r\n";
	static const char frame[] = WS_FRAME;
	char in[sizeof(req) + sizeof(frame)];
	size_t hl = sizeof(req) - 1, fl = sizeof(frame) - 1, used;
	struct http_req r;

	memcpy(in, req, hl);
	memcpy(in + hl, frame, fl);
	ASSERT_EQ(http_req_init(&r, 1024, 16, 1024), 0);
	ASSERT_EQ(http_req_feed(&r, in, hl + fl, &used), HTTP_UPGRADE);
	ASSERT_UEQ(used, hl);
	ASSERT_MEM_EQ(in + used, frame, fl);
	ASSERT_EQ(r.upgrade, 1);
	ASSERT_EQ(r.complete, 1);
	ASSERT_STR_EQ(http_req_header(&r, "Sec-WebSocket-Key"), WS_KEY);
	ASSERT_EQ(http_req_header_has(&r, "Upgrade", "websocket"), 1);
	http_req_free(&r);

	/* the head alone: nothing left over */
	ASSERT_EQ(http_req_init(&r, 1024, 16, 1024), 0);
	ASSERT_EQ(http_req_feed(&r, in, hl, &used), HTTP_UPGRADE);
	ASSERT_UEQ(used, hl);
	http_req_free(&r);
}

TEST(http_pipelined_used_and_reset)
{
	static const char in[] =
	    "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
	    "POST /second HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nok";
	size_t first = strlen("GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
	size_t len = sizeof(in) - 1, used;
	struct http_req r;

	ASSERT_EQ(http_req_init(&r, 1024, 16, 1024), 0);
	ASSERT_EQ(http_req_feed(&r, in, len, &used), HTTP_COMPLETE);
	ASSERT_UEQ(used, first);
	ASSERT_STR_EQ(http_req_url(&r), "/first");
	ASSERT_STR_EQ(http_req_header(&r, "host"), "a");
	ASSERT_UEQ(r.body_len, 0);
	http_req_reset(&r);
	ASSERT_EQ(r.started, 0);
	ASSERT_EQ(http_req_feed(&r, in + used, len - used, &used), HTTP_COMPLETE);
	ASSERT_UEQ(used, len - first);
	ASSERT_STR_EQ(http_req_method(&r), "POST");
	ASSERT_STR_EQ(http_req_url(&r), "/second");
	ASSERT_STR_EQ(http_req_header(&r, "host"), "b");
	ASSERT_NULL(http_req_header(&r, "nothing"));
	ASSERT_UEQ(r.body_len, 2);
	ASSERT_MEM_EQ(r.body, "ok", 3);
	http_req_reset(&r);
	/* an empty feed asks for more */
	ASSERT_EQ(http_req_feed(&r, in, 0, &used), HTTP_NEED_MORE);
	ASSERT_UEQ(used, 0);
	http_req_free(&r);
}

/* ---- limits ---- */

static char *
repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * n + tl + 1), *p = s;

	ASSERT_NOT_NULL(s);
	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < n; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, tail, tl + 1);
	return s;
}

static void
check_limit(const char *name, const char *in, const struct lim *l,
    const char *expect)
{
	check_all(name, in, strlen(in), l, expect);
}

TEST_T(http_limit_head, 30)
{
	struct lim l = { 256, 64, 1024 };
	char *s, *w;

	/* one long value */
	s = repeat("GET / HTTP/1.1\r\nX-Long: ", "a", 300, "\r\n\r\n");
	check_limit("long_value", s, &l, "error -2 status 431\n");
	free(s);
	/* one long name */
	s = repeat("GET / HTTP/1.1\r\nX-", "n", 300, ": v\r\n\r\n");
	check_limit("long_name", s, &l, "error -2 status 431\n");
	free(s);
	/* many small headers that add up */
	s = repeat("GET / HTTP/1.1\r\n", "X-Abc: defghijk\r\n", 30, "\r\n");
	check_limit("many_small", s, &l, "error -2 status 431\n");
	free(s);
	/* a head as long as max_head on the wire fits */
	s = repeat("GET / HTTP/1.1\r\nX-Long: ", "a", 256 - 28, "\r\n\r\n");
	ASSERT_UEQ(strlen(s), 256);
	w = repeat("GET / ka=1\n  X-Long: ", "a", 256 - 28,
	    "\ncomplete, rest \"\"\n");
	check_limit("fits", s, &l, w);
	free(w);
	free(s);
}

TEST_T(http_limit_url, 30)
{
	struct lim l = { 256, 64, 1024 };
	char *s;
	int rc;
	size_t used;
	struct http_req r;

	/* a target longer than the whole head may be */
	s = repeat("GET /", "u", 400, " HTTP/1.1\r\n\r\n");
	check_limit("long_url", s, &l, "error -5 status 414\n");
	ASSERT_EQ(http_err_status(HTTP_ERR_URI_TOO_LONG), 414);
	free(s);
	/* a target that fits, headers that push the head over */
	s = repeat("GET /", "u", 200, " HTTP/1.1\r\n"
	    "X-A: 01234567890123456789012345678901234567890123456789"
	    "012345678901234567890123456789\r\n\r\n");
	check_limit("url_plus_headers", s, &l, "error -2 status 431\n");
	free(s);
	/* the same target alone fits */
	s = repeat("GET /", "u", 200, " HTTP/1.1\r\n\r\n");
	ASSERT_EQ(http_req_init(&r, l.max_head, l.max_headers, l.max_body), 0);
	rc = http_req_feed(&r, s, strlen(s), &used);
	ASSERT_EQ(rc, HTTP_COMPLETE);
	ASSERT_UEQ(strlen(http_req_url(&r)), 201);
	http_req_free(&r);
	free(s);
}

TEST(http_limit_header_count)
{
	struct lim l = { 4096, 4, 1024 };

	check_limit("four",
	    "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", &l,
	    "GET / ka=1\n  A: 1\n  B: 2\n  C: 3\n  D: 4\ncomplete, rest \"\"\n");
	check_limit("five",
	    "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", &l,
	    "error -3 status 431\n");
	check_limit("five_empty",
	    "GET / HTTP/1.1\r\nA:\r\nB:\r\nC:\r\nD:\r\nE:\r\n\r\n", &l,
	    "error -3 status 431\n");
	/* the count starts again with each request */
	check_limit("four_twice",
	    "GET /1 HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"
	    "GET /2 HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", &l,
	    "GET /1 ka=1\n  A: 1\n  B: 2\n  C: 3\n  D: 4\n"
	    "complete, rest \"GET /2 HTTP/1.1\\r\\nA: 1\\r\\nB\"+19\n"
	    "GET /2 ka=1\n  A: 1\n  B: 2\n  C: 3\n  D: 4\ncomplete, rest \"\"\n");
}

TEST(http_limit_body)
{
	struct lim l = { 4096, 16, 16 };
	char *s;

	check_limit("length_at_max",
	    "POST / HTTP/1.1\r\nContent-Length: 16\r\n\r\n0123456789abcdef", &l,
	    "POST / ka=1\n  Content-Length: 16\n  body \"0123456789abcdef\"\n"
	    "complete, rest \"\"\n");
	/* refused from the header, before any body arrives */
	check_limit("length_over_max",
	    "POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n", &l,
	    "error -4 status 413\n");
	check_limit("length_huge",
	    "POST / HTTP/1.1\r\nContent-Length: 18446744073709551614\r\n\r\n", &l,
	    "error -4 status 413\n");
	check_limit("chunked_at_max",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "a\r\n0123456789\r\n6\r\nabcdef\r\n0\r\n\r\n", &l,
	    "POST / ka=1\n  Transfer-Encoding: chunked\n"
	    "  body \"0123456789abcdef\"\ncomplete, rest \"\"\n");
	check_limit("chunked_over_max",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "a\r\n0123456789\r\n7\r\nabcdefg\r\n0\r\n\r\n", &l,
	    "error -4 status 413\n");
	/* one chunk that announces more than max_body */
	s = repeat("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "FFFFFFFF\r\n", "x", 40, "");
	check_limit("chunk_huge", s, &l, "error -4 status 413\n");
	free(s);
	ASSERT_EQ(http_err_status(HTTP_ERR_BODY_TOO_LARGE), 413);
}

TEST(http_err_status_map)
{
	ASSERT_EQ(http_err_status(HTTP_ERR_PARSE), 400);
	ASSERT_EQ(http_err_status(HTTP_ERR_HEADERS_TOO_LARGE), 431);
	ASSERT_EQ(http_err_status(HTTP_ERR_TOO_MANY_HEADERS), 431);
	ASSERT_EQ(http_err_status(HTTP_ERR_BODY_TOO_LARGE), 413);
	ASSERT_EQ(http_err_status(HTTP_ERR_URI_TOO_LONG), 414);
	ASSERT_EQ(http_err_status(HTTP_ERR_NOMEM), 500);
	ASSERT_STR_EQ(http_status_text(200), "OK");
	ASSERT_STR_EQ(http_status_text(101), "Switching Protocols");
	ASSERT_STR_EQ(http_status_text(413), "Content Too Large");
	ASSERT_STR_EQ(http_status_text(414), "URI Too Long");
	ASSERT_STR_EQ(http_status_text(431), "Request Header Fields Too Large");
	ASSERT_STR_EQ(http_status_text(999), "Unknown");
}

TEST(http_parse_error_reason)
{
	struct http_req r;
	size_t used;

	ASSERT_EQ(http_req_init(&r, 1024, 16, 1024), 0);
	ASSERT_EQ(http_req_feed(&r, "GET / HTTP/1.1\r\nbad header\r\n\r\n", 30,
	    &used), HTTP_ERR_PARSE);
	ASSERT_NOT_NULL(r.reason);
	ASSERT_GT(strlen(r.reason), 0);
	http_req_free(&r);
}

/* ---- responses ---- */

TEST(http_response_head_shape)
{
	char out[512];
	const char *want =
	    "HTTP/1.1 200 OK\r\n"
	    "Server: voxrelay\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 2\r\n"
	    "Connection: keep-alive\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Cache-Control: no-store\r\n"
	    "\r\n";
	int n;

	n = http_response_head(out, sizeof(out), 200, "application/json", 2, 1,
	    NULL);
	ASSERT_EQ(n, (int)strlen(want));
	ASSERT_STR_EQ(out, want);

	want =
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Server: voxrelay\r\n"
	    "Content-Length: 0\r\n"
	    "Connection: close\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Cache-Control: no-store\r\n"
	    "Upgrade: websocket\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	    "\r\n";
	n = http_response_head(out, sizeof(out), 101, NULL, 0, 0,
	    "Upgrade: websocket\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
	ASSERT_EQ(n, (int)strlen(want));
	ASSERT_STR_EQ(out, want);

	n = http_response_head(out, sizeof(out), 431, "text/plain", 123456, 0, "");
	ASSERT_GT(n, 0);
	ASSERT(strncmp(out, "HTTP/1.1 431 Request Header Fields Too Large\r\n",
	    46) == 0);
	ASSERT_NOT_NULL(strstr(out, "\r\nContent-Length: 123456\r\n"));
	ASSERT_NOT_NULL(strstr(out, "\r\nContent-Type: text/plain\r\n"));
	ASSERT(strcmp(out + n - 4, "\r\n\r\n") == 0);
}

TEST(http_response_head_does_not_fit)
{
	char full[512], out[512];
	int n, m;

	n = http_response_head(full, sizeof(full), 404, "text/plain", 9, 1,
	    "X-A: b\r\n");
	ASSERT_GT(n, 0);
	/* every capacity up to and including n is too small (no room for
	 * the NUL), n + 1 is enough */
	for (size_t cap = 0; cap <= (size_t)n; cap++) {
		memset(out, 'Z', sizeof(out));
		m = http_response_head(out, cap, 404, "text/plain", 9, 1,
		    "X-A: b\r\n");
		ASSERT_EQ(m, -1);
		ASSERT_EQ(out[cap], 'Z');	/* nothing past cap */
	}
	m = http_response_head(out, (size_t)n + 1, 404, "text/plain", 9, 1,
	    "X-A: b\r\n");
	ASSERT_EQ(m, n);
	ASSERT_STR_EQ(out, full);
}

TEST(http_response_head_stream_shape)
{
	char out[512];
	const char *want =
	    "HTTP/1.1 200 OK\r\n"
	    "Server: voxrelay\r\n"
	    "Content-Type: text/csv\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Connection: keep-alive\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-A: b\r\n"
	    "\r\n";
	int n;

	n = http_response_head_stream(out, sizeof(out), 200, "text/csv", 1, 1,
	    "X-A: b\r\n");
	ASSERT_EQ(n, (int)strlen(want));
	ASSERT_STR_EQ(out, want);
	/* HTTP/1.0: no framing header, and the close ends the body, whatever
	 * keep-alive was asked for */
	want =
	    "HTTP/1.1 200 OK\r\n"
	    "Server: voxrelay\r\n"
	    "Content-Type: text/csv\r\n"
	    "Connection: close\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Cache-Control: no-store\r\n"
	    "\r\n";
	n = http_response_head_stream(out, sizeof(out), 200, "text/csv", 0, 1,
	    NULL);
	ASSERT_EQ(n, (int)strlen(want));
	ASSERT_STR_EQ(out, want);
	ASSERT_EQ(http_response_head_stream(out, 40, 200, "text/csv", 1, 1,
	    NULL), -1);
}
