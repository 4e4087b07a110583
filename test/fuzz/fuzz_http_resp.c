/*
 * fuzz_http_resp.c — proto/http_resp.c: the answer to our upgrade request,
 * fed as the OpenAI leg feeds it (worker/leg_openai.c).
 *
 * Input: one byte of limits, one byte of split seed, then what the server
 * sends.  After a 101 the rest goes to a client-role ws_codec, as on the
 * leg.  Checked:
 *  - used never exceeds what was fed, and NEED_MORE used all of it;
 *  - HTTP_UPGRADE only for a 101; the kept headers are NUL-terminated
 *    inside their arrays; the kept body is within its limit and
 *    NUL-terminated;
 *  - fed whole or in pieces, the same answer, ending at the same offset,
 *    and the same WebSocket messages after it; or an error both times
 *    (which one may differ: a limit counts llhttp's spans as they are
 *    flushed, which a split does early, so a split can pass the head
 *    limit before llhttp sees the byte it rejects).
 */
#include "test/fuzz/fuzz.h"

#include "proto/buf.h"
#include "proto/http_resp.h"
#include "proto/ws.h"

FUZZ_TARGET("http_resp");

#define FNV_INIT	0xcbf29ce484222325ULL

static uint64_t
mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t
mix_u64(uint64_t h, uint64_t v)
{
	return mix(h, &v, sizeof(v));
}

static uint64_t
mix_str(uint64_t h, const char *a, size_t cap)
{
	const char *z = memchr(a, '\0', cap);

	FUZZ_ASSERT(z != NULL);
	return mix(h, a, (size_t)(z - a) + 1);
}

static int
on_msg(void *arg, int opcode, const uint8_t *msg, size_t len)
{
	uint64_t *h = arg;

	FUZZ_ASSERT(opcode == WSLAY_TEXT_FRAME || opcode == WSLAY_BINARY_FRAME);
	FUZZ_ASSERT(opcode != WSLAY_TEXT_FRAME || fuzz_utf8_ok(msg, len));
	*h = mix_u64(*h, (uint64_t)opcode);
	*h = mix_u64(*h, len);
	if (len > 0)
		*h = mix(*h, msg, len);
	return 0;
}

static uint64_t
check_resp(const struct http_resp *r, int rc, uint64_t h)
{
	FUZZ_ASSERT(r->body_len <= r->max_body);
	FUZZ_ASSERT(r->body[r->body_len] == '\0');
	FUZZ_ASSERT(r->head_bytes <= r->max_head || r->error);
	FUZZ_ASSERT(rc != HTTP_UPGRADE || r->status == 101);
	FUZZ_ASSERT(rc != HTTP_COMPLETE || r->complete);
	h = mix_u64(h, (uint64_t)rc);
	h = mix_u64(h, (uint64_t)r->status);
	h = mix_str(h, r->accept, sizeof(r->accept));
	h = mix_str(h, r->upgrade, sizeof(r->upgrade));
	h = mix_str(h, r->connection, sizeof(r->connection));
	h = mix_str(h, r->request_id, sizeof(r->request_id));
	h = mix_u64(h, r->body_len);
	return mix(h, r->body, r->body_len);
}

/* The WebSocket after a 101: messages and the codec's last answer. */
static uint64_t
run_ws(const uint8_t *p, size_t n, struct fuzz_rng *rng, uint64_t h)
{
	struct ws_codec w;
	struct buf out;
	size_t off = 0, chunk;
	int rc = WS_OK;

	buf_init(&out, 1 << 20);
	if (ws_codec_init(&w, WS_CLIENT, 65536, &out, on_msg, &h, 7) != 0)
		abort();
	while (off < n && rc >= 0 && rc != WS_CLOSED) {
		chunk = rng != NULL ? fuzz_rng_chunk(rng, n - off) : n - off;
		rc = ws_codec_feed(&w, p + off, chunk);
		off += chunk;
	}
	h = mix_u64(h, (uint64_t)rc);
	ws_codec_free(&w);
	buf_free(&out);
	return h;
}

static uint64_t
run(const uint8_t *p, size_t n, size_t max_head, size_t max_body,
    struct fuzz_rng *rng)
{
	struct http_resp r;
	uint64_t h = FNV_INIT;
	size_t off = 0, chunk, used;
	int rc = HTTP_NEED_MORE;

	if (http_resp_init(&r, max_head, max_body) != 0)
		abort();
	while (off < n) {
		chunk = rng != NULL ? fuzz_rng_chunk(rng, n - off) : n - off;
		rc = http_resp_feed(&r, (const char *)p + off, chunk, &used);
		FUZZ_ASSERT(used <= chunk);
		off += used;
		if (rc == HTTP_NEED_MORE) {
			FUZZ_ASSERT(used == chunk);
			continue;
		}
		break;
	}
	if (rc < 0)
		FUZZ_ASSERT(r.error == rc);
	if (rc == HTTP_NEED_MORE) {
		rc = http_resp_eof(&r);
		FUZZ_ASSERT(rc == HTTP_COMPLETE || rc == HTTP_ERR_PARSE);
	}
	if (rc < 0) {
		/* which error depends on where llhttp flushed a span */
		h = mix_u64(h, 1);
	} else {
		h = check_resp(&r, rc, h);
		h = mix_u64(h, off);
		if (rc == HTTP_UPGRADE)
			h = run_ws(p + off, n - off, rng, h);
	}
	http_resp_free(&r);
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t heads[] = { 16384, 256, 64, 1 };
	static const size_t bodies[] = { 4096, 16, 1, 0 };
	struct fuzz_in in = { data, size };
	struct fuzz_rng rng;
	unsigned cfg, seed;
	uint8_t *p;
	uint64_t whole, split;

	cfg = fuzz_u8(&in);
	seed = fuzz_u8(&in);
	p = fuzz_dup(in.p, in.n);
	whole = run(p, in.n, heads[cfg & 3], bodies[cfg >> 2 & 3], NULL);
	rng.s = seed | (uint64_t)cfg << 8;
	split = run(p, in.n, heads[cfg & 3], bodies[cfg >> 2 & 3], &rng);
	FUZZ_ASSERT(whole == split);
	free(p);
	return 0;
}
