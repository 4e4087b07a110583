/*
 * bench_common.c — see bench_common.h.
 */
#include "test/bench/bench_common.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha1.h>

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

long
bench_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}

int
bench_write_out(int fd, struct buf *out, uint64_t *bytes)
{
	ssize_t n;

	while (buf_pending(out) > 0) {
		n = write(fd, buf_head(out), buf_pending(out));
		if (n > 0) {
			*bytes += (uint64_t)n;
			buf_consume(out, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		return -1;
	}
	return 0;
}

int64_t
bench_clock_offset(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return ((int64_t)r.tv_sec - (int64_t)m.tv_sec) * 1000000000LL +
	    ((int64_t)r.tv_nsec - (int64_t)m.tv_nsec);
}

int
bench_rx_timestamps(int fd)
{
	int one = 1;

	return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
}

long
bench_recv_ts(int fd, void *buf, size_t len, int64_t real_minus_mono,
    uint64_t *rx_ns)
{
	union {
		char		buf[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr	align;
	} ctl;
	struct iovec iov = { buf, len };
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	*rx_ns = 0;
	n = recvmsg(fd, &mh, 0);
	if (n <= 0)
		return (long)n;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;
			memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
			int64_t real = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
			if (real > real_minus_mono)
				*rx_ns = (uint64_t)(real - real_minus_mono);
		}
	}
	return (long)n;
}

/* ---------------------------------------------------------------- */

size_t
bws_header(uint8_t *out, int opcode, uint64_t len, const uint8_t *mask)
{
	size_t h = 0;
	uint8_t mbit = mask ? 0x80 : 0;

	out[h++] = (uint8_t)(0x80 | (opcode & 0x0f));
	if (len < 126) {
		out[h++] = (uint8_t)(mbit | len);
	} else if (len < 65536) {
		out[h++] = (uint8_t)(mbit | 126);
		out[h++] = (uint8_t)(len >> 8);
		out[h++] = (uint8_t)len;
	} else {
		out[h++] = (uint8_t)(mbit | 127);
		for (int i = 7; i >= 0; i--)
			out[h++] = (uint8_t)(len >> (8 * i));
	}
	if (mask) {
		memcpy(out + h, mask, 4);
		h += 4;
	}
	return h;
}

void
bws_mask(uint8_t *p, size_t n, const uint8_t mask[4])
{
	uint64_t m8;
	uint32_t m4;
	size_t i = 0;

	memcpy(&m4, mask, 4);
	m8 = (uint64_t)m4 << 32 | m4;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		v ^= m8;
		memcpy(p + i, &v, 8);
	}
	for (; i < n; i++)
		p[i] ^= mask[i & 3];
}

int
bws_parse(const uint8_t *p, size_t n, struct bws_frame *f)
{
	size_t h = 2;
	uint64_t len;

	if (n < 2)
		return 0;
	if (p[0] & 0x70)
		return -1;
	f->fin = (p[0] & 0x80) != 0;
	f->opcode = p[0] & 0x0f;
	f->masked = (p[1] & 0x80) != 0;
	len = p[1] & 0x7f;
	if (len == 126) {
		if (n < 4)
			return 0;
		len = (uint64_t)p[2] << 8 | p[3];
		h = 4;
	} else if (len == 127) {
		if (n < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		if (len >> 63)
			return -1;
		h = 10;
	}
	if (f->masked) {
		if (n < h + 4)
			return 0;
		memcpy(f->mask, p + h, 4);
		h += 4;
	}
	if ((f->opcode & 0x8) && (len > 125 || !f->fin))
		return -1;
	f->hlen = h;
	f->plen = len;
	return 1;
}

int
bws_next(uint8_t *p, size_t n, size_t *off, int masked, uint64_t max,
    struct bws_frame *f, uint8_t **pl)
{
	int rc = bws_parse(p + *off, n - *off, f);

	if (rc < 0 || (rc > 0 && (f->masked != masked || f->plen > max)))
		return -1;
	if (rc == 0 || n - *off < f->hlen + f->plen)
		return 0;
	*pl = p + *off + f->hlen;
	if (f->masked)
		bws_mask(*pl, (size_t)f->plen, f->mask);
	*off += f->hlen + (size_t)f->plen;
	return 1;
}

uint8_t *
bws_input(struct buf *in, uint8_t *p, size_t n, size_t *len)
{
	if (buf_pending(in) == 0) {
		*len = n;
		return p;
	}
	if (buf_append(in, p, n) != 0)
		return NULL;
	*len = buf_pending(in);
	return (uint8_t *)buf_head(in);
}

int
bws_input_done(struct buf *in, uint8_t *d, size_t len, size_t used)
{
	if (buf_pending(in) > 0 && d == (uint8_t *)buf_head(in)) {
		buf_consume(in, used);
		return 0;
	}
	/* a frame cut by the read waits in the buffer for its rest */
	return used < len ? buf_append(in, d + used, len - used) : 0;
}

int
bws_put(struct buf *b, int opcode, const void *p, size_t n,
    const uint8_t *mask)
{
	uint8_t *w;
	size_t h;

	if ((w = (uint8_t *)buf_reserve(b, n + BWS_MAX_HEADER)) == NULL)
		return -1;
	h = bws_header(w, opcode, n, mask);
	if (n > 0)
		memcpy(w + h, p, n);
	if (mask != NULL)
		bws_mask(w + h, n, mask);
	buf_commit(b, h + n);
	return 0;
}

int
bws_accept(const char *key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char in[128], sha[20];
	size_t kl = strlen(key);

	if (kl == 0 || kl + sizeof(guid) > sizeof(in))
		return -1;
	memcpy(in, key, kl);
	memcpy(in + kl, guid, sizeof(guid) - 1);
	if (mbedtls_sha1_ret(in, kl + sizeof(guid) - 1, sha) != 0)
		return -1;
	b64_encode(sha, 20, out);
	return 0;
}

size_t
bench_utoa(uint64_t v, char *out)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* ---------------------------------------------------------------- */

static size_t
hist_index(uint64_t v)
{
	int e;

	if (v < HIST_LINEAR)
		return (size_t)v;
	e = 63 - __builtin_clzll(v);
	if (e >= HIST_MAXEXP)
		return HIST_BUCKETS - 1;
	return HIST_LINEAR + (size_t)(e - 10) * HIST_SUB +
	    (size_t)((v >> (e - 9)) - HIST_SUB);
}

/* The largest value that falls in bucket i. */
static uint64_t
hist_upper(size_t i)
{
	size_t k;
	int e;

	if (i < HIST_LINEAR)
		return i;
	k = i - HIST_LINEAR;
	e = (int)(k / HIST_SUB) + 10;
	return ((uint64_t)(k % HIST_SUB + HIST_SUB + 1) << (e - 9)) - 1;
}

void
hist_add(struct hist *h, uint64_t v)
{
	if (h->count == 0 || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += v;
	h->b[hist_index(v)]++;
}

void
hist_merge(struct hist *into, const struct hist *from)
{
	if (from->count == 0)
		return;
	if (into->count == 0 || from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
	into->count += from->count;
	into->sum += from->sum;
	for (size_t i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)(q * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t u = hist_upper(i);
			return u < h->max ? u : h->max;
		}
	}
	return h->max;
}

void
hist_diff(struct hist *out, const struct hist *b, const struct hist *a)
{
	out->count = b->count - a->count;
	out->sum = b->sum - a->sum;
	out->max = 0;
	out->min = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		out->b[i] = b->b[i] - a->b[i];
		if (out->b[i] != 0) {
			uint64_t u = hist_upper(i);
			out->max = u < b->max ? u : b->max;
		}
	}
}

const char *const bench_reply_words[BENCH_REPLY_NWORDS] = {
	"We", "open", "at", "eight", "in", "the", "morning", "on", "Tuesdays,",
	"thanks.",
};
