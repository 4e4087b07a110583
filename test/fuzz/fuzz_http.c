/*
 * fuzz_http.c — proto/http.c: requests fed in random splits.
 *
 * Input: one byte of limits, one byte of split seed, then the bytes a
 * client sends (any number of pipelined requests).  They are fed as the
 * front end feeds them (daemon/front.c): after each complete request the
 * parser is reset and fed what is left.  Checked:
 *  - used never exceeds what was fed, and NEED_MORE used all of it;
 *  - a complete request uses at least one byte (or the front end spins);
 *  - the url and every header name and value are NUL-terminated inside
 *    the arena, with the lengths the parser recorded; lookups by name
 *    return strings inside the arena; the body is within its limit;
 *  - the same bytes fed whole and fed in pieces give the same requests,
 *    ending at the same offsets, and an error at the same request (which
 *    error may differ: limits count llhttp's spans as they are flushed,
 *    and a split flushes early, so it can pass a limit before llhttp
 *    reaches the byte it rejects).
 * The limits byte also drives http_response_head() with strings from the
 * input.
 */
#include "test/fuzz/fuzz.h"

#include "proto/http.h"

FUZZ_TARGET("http");

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

/* A NUL-terminated field at off of length len, inside the arena. */
static void
check_field(const struct http_req *r, uint32_t off, uint32_t len)
{
	FUZZ_ASSERT((size_t)off + len < r->head_len);
	FUZZ_ASSERT(r->head_len <= r->max_head);
	FUZZ_ASSERT(r->head[off + len] == '\0');
	FUZZ_ASSERT(strlen(r->head + off) == len);
}

static int
in_arena(const struct http_req *r, const char *s)
{
	return s >= r->head && s < r->head + r->head_len;
}

/* Check one finished request and fold it into h. */
static uint64_t
check_req(const struct http_req *r, int rc, uint64_t end, uint64_t h)
{
	const char *m, *u, *v;

	FUZZ_ASSERT(r->complete);
	FUZZ_ASSERT(r->head_len <= r->max_head);
	FUZZ_ASSERT(r->nhdrs <= r->max_headers);
	FUZZ_ASSERT(r->body_len <= r->max_body);
	FUZZ_ASSERT(r->body_len == 0 || r->body[r->body_len] == '\0');
	m = http_req_method(r);
	FUZZ_ASSERT(m != NULL);
	u = http_req_url(r);
	FUZZ_ASSERT(r->url_off == 0);
	check_field(r, r->url_off, r->url_len);
	h = mix_u64(h, (uint64_t)rc);
	h = mix_u64(h, end);
	h = mix(h, m, strlen(m) + 1);
	h = mix(h, u, r->url_len + 1);
	for (unsigned i = 0; i < r->nhdrs; i++) {
		const struct http_hdr *hd = &r->hdrs[i];

		check_field(r, hd->name_off, hd->name_len);
		FUZZ_ASSERT(hd->value_off != 0);
		check_field(r, hd->value_off, hd->value_len);
		FUZZ_ASSERT(hd->value_off > hd->name_off + hd->name_len);
		v = http_req_header(r, r->head + hd->name_off);
		FUZZ_ASSERT(v != NULL);
		FUZZ_ASSERT(in_arena(r, v));
		FUZZ_ASSERT(strlen(v) < r->head_len);
		(void)http_req_header_has(r, r->head + hd->name_off,
		    "websocket");
		h = mix(h, r->head + hd->name_off, hd->name_len + 1);
		h = mix(h, r->head + hd->value_off, hd->value_len + 1);
	}
	/* the headers the daemon asks for, present or not */
	v = http_req_header(r, "Host");
	FUZZ_ASSERT(v == NULL || in_arena(r, v));
	v = http_req_header(r, "X-Twilio-Signature");
	FUZZ_ASSERT(v == NULL || in_arena(r, v));
	(void)http_req_header_has(r, "Upgrade", "websocket");
	(void)http_req_header_has(r, "Connection", "upgrade");
	h = mix_u64(h, r->body_len);
	if (r->body_len > 0)
		h = mix(h, r->body, r->body_len);
	h = mix_u64(h, (uint64_t)r->keep_alive << 1 | (uint64_t)r->upgrade);
	return h;
}

struct limits {
	size_t		max_head;
	unsigned	max_headers;
	size_t		max_body;
};

/*
 * Feed p[0..n) in chunks (all of it at once when rng is NULL) and return
 * a digest of what came out: each request, where it ended, the error.
 */
static uint64_t
run(const uint8_t *p, size_t n, const struct limits *l, struct fuzz_rng *rng)
{
	struct http_req r;
	uint64_t h = FNV_INIT;
	size_t off = 0, chunk, used;
	int rc;

	if (http_req_init(&r, l->max_head, l->max_headers, l->max_body) != 0)
		abort();
	while (off < n) {
		chunk = rng != NULL ? fuzz_rng_chunk(rng, n - off) : n - off;
		while (chunk > 0) {
			if (chunk == 1) {
				/* nothing fed, nothing done */
				FUZZ_ASSERT(http_req_feed(&r, (const char *)p +
				    off, 0, &used) == HTTP_NEED_MORE &&
				    used == 0);
			}
			rc = http_req_feed(&r, (const char *)p + off, chunk,
			    &used);
			FUZZ_ASSERT(used <= chunk);
			off += used;
			chunk -= used;
			if (rc == HTTP_NEED_MORE) {
				FUZZ_ASSERT(chunk == 0);
				FUZZ_ASSERT(!r.complete);
				continue;
			}
			if (rc < 0) {
				FUZZ_ASSERT(r.error == rc);
				FUZZ_ASSERT(http_err_status(rc) >= 400);
				FUZZ_ASSERT(strcmp(http_status_text(
				    http_err_status(rc)), "Unknown") != 0);
				/* an error sticks */
				FUZZ_ASSERT(http_req_feed(&r, (const char *)p,
				    n, &used) == rc && used == 0);
				h = mix_u64(h, 1);
				goto out;
			}
			FUZZ_ASSERT(rc == HTTP_COMPLETE || rc == HTTP_UPGRADE);
			FUZZ_ASSERT(used > 0);
			h = check_req(&r, rc, off, h);
			if (rc == HTTP_UPGRADE) {
				FUZZ_ASSERT(r.upgrade);
				goto out;
			}
			http_req_reset(&r);
		}
	}
	h = mix_u64(h, (uint64_t)r.started);
out:
	http_req_free(&r);
	return h;
}

static void
response_head(struct fuzz_in *in, unsigned sel)
{
	char *ct, *extra, *out;
	size_t cap = fuzz_u8(in) * 4;
	int n;

	ct = fuzz_part(in, NULL);
	extra = fuzz_part(in, NULL);
	out = malloc(cap > 0 ? cap : 1);
	if (out == NULL)
		abort();
	n = http_response_head(out, cap, 100 + (int)(sel % 450),
	    sel & 1 ? ct : NULL, cap * 3, sel & 2, sel & 4 ? extra : NULL);
	FUZZ_ASSERT(n == -1 || ((size_t)n < cap && strlen(out) == (size_t)n));
	if (n > 0)
		FUZZ_ASSERT(strncmp(out, "HTTP/1.1 ", 9) == 0);
	if (n > 0 && !(sel & 4))
		FUZZ_ASSERT(memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
	free(out);
	free(ct);
	free(extra);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t heads[] = { 8192, 512, 64, 65536 };
	static const unsigned nhdrs[] = { 64, 8, 1, 512 };
	static const size_t bodies[] = { 65536, 1024, 16, 0 };
	struct fuzz_in in = { data, size };
	struct fuzz_rng rng;
	struct limits l;
	unsigned cfg, seed;
	uint8_t *p;
	uint64_t whole, split;

	cfg = fuzz_u8(&in);
	seed = fuzz_u8(&in);
	if (cfg == 0xff) {
		response_head(&in, seed);
		return 0;
	}
	l.max_head = heads[cfg & 3];
	l.max_headers = nhdrs[cfg >> 2 & 3];
	l.max_body = bodies[cfg >> 4 & 3];
	p = fuzz_dup(in.p, in.n);
	whole = run(p, in.n, &l, NULL);
	rng.s = seed | (uint64_t)cfg << 8;
	split = run(p, in.n, &l, &rng);
	FUZZ_ASSERT(whole == split);
	free(p);
	return 0;
}
