/*
 * bench_common.h — what the load generator and the fake Realtime server
 * share: the clock, descriptor limits, base64, a minimal WebSocket framing
 * (RFC 6455 §5.2) for both roles with its input and output buffering, a
 * socket's writes, and a log-linear latency histogram.
 *
 * The framing here is deliberately small: both ends of the benchmark are
 * ours, so it handles exactly what voxrelay sends (whole, unfragmented text
 * messages, pings and closes) and refuses the rest.
 */
#ifndef VR_BENCH_COMMON_H
#define VR_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"

/* ---- time, limits ---- */

/* CLOCK_MONOTONIC in ns: the same clock in every process of the machine. */
uint64_t bench_now_ns(void);
/* Raise RLIMIT_NOFILE's soft limit to its hard limit; returns the new
 * soft limit. */
long bench_raise_nofile(void);

/* base64: b64_encode() and b64_decode() of proto/b64.h */
#include "proto/b64.h"

/* ---- WebSocket framing ---- */

enum {
	BWS_CONT = 0x0, BWS_TEXT = 0x1, BWS_BINARY = 0x2,
	BWS_CLOSE = 0x8, BWS_PING = 0x9, BWS_PONG = 0xA,
};

#define BWS_MAX_HEADER	14	/* 2 + 8 length + 4 mask */

/* Write a frame header for a final frame of opcode with a payload of len
 * bytes; if mask is non-NULL (client role) the 4 mask bytes follow.
 * Returns the header length. */
size_t bws_header(uint8_t *out, int opcode, uint64_t len, const uint8_t *mask);
/* XOR p[0..n) with the mask, starting at mask offset 0. */
void bws_mask(uint8_t *p, size_t n, const uint8_t mask[4]);

struct bws_frame {
	int		 fin;
	int		 opcode;
	int		 masked;
	uint8_t		 mask[4];
	size_t		 hlen;		/* header bytes */
	uint64_t	 plen;		/* payload bytes */
};

/*
 * Parse the frame header at p[0..n).  Returns 1 when the header is whole
 * (f filled; the frame is whole if n >= hlen + plen), 0 if more bytes are
 * needed, -1 on a header we refuse (reserved bits, 64-bit length with the
 * top bit, a control frame over 125 bytes or fragmented).
 */
int bws_parse(const uint8_t *p, size_t n, struct bws_frame *f);

/*
 * The next whole frame of p[0..n) from *off: 1 with f and *pl (its
 * payload, unmasked) filled and *off past it; 0 if the frame is not whole
 * yet; -1 for a header bws_parse() refuses, a frame masked other than
 * masked says (a client's frames are, a server's are not) or a payload
 * over max.
 */
int bws_next(uint8_t *p, size_t n, size_t *off, int masked, uint64_t max,
    struct bws_frame *f, uint8_t **pl);

/*
 * Bytes read from a socket, in whole frames: bws_input() gives what to
 * parse, p[0..n) itself or, when the last read ended inside a frame, the
 * stream's buffer in with p appended (NULL: in is full); once the frames
 * are parsed, bws_input_done() consumes the used bytes of it and keeps the
 * rest (-1: in is full).
 */
uint8_t *bws_input(struct buf *in, uint8_t *p, size_t n, size_t *len);
int      bws_input_done(struct buf *in, uint8_t *d, size_t len, size_t used);

/* One final frame of opcode with payload p[0..n) into b, masked with mask
 * unless it is NULL; 0, or -1 when b is full. */
int bws_put(struct buf *b, int opcode, const void *p, size_t n,
    const uint8_t *mask);

/* Sec-WebSocket-Accept (28 characters + NUL) of a client key; 0 or -1. */
int bws_accept(const char *key, char out[29]);

/* xorshift64* */
static inline uint64_t
bench_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* Decimal digits of v into out (no NUL); returns the count. */
size_t bench_utoa(uint64_t v, char *out);

/* ---- latency histogram ----
 * Exact below 1024, then 512 sub-buckets per power of two (0.2 %), up to
 * 2^41 units.  Plain counters: one writer per histogram. */

#define HIST_SUB	512
#define HIST_LINEAR	1024
#define HIST_MAXEXP	41
#define HIST_BUCKETS	(HIST_LINEAR + (HIST_MAXEXP - 10) * HIST_SUB)

struct hist {
	uint64_t	count;
	uint64_t	sum;
	uint64_t	max;
	uint64_t	min;
	uint64_t	b[HIST_BUCKETS];
};

void     hist_add(struct hist *h, uint64_t v);
void     hist_merge(struct hist *into, const struct hist *from);
/* The value at quantile q (0..1): the upper bound of its bucket, never
 * above the exact maximum.  0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);
/* out = b - a, bucket by bucket (b a later copy of the same histogram);
 * the maximum is the top of the highest bucket that grew, at most b's. */
void     hist_diff(struct hist *out, const struct hist *b, const struct hist *a);

/* ---- sockets ---- */

/* write() what out holds to the non-blocking fd until it is empty or the
 * socket takes no more, adding what went to *bytes; 0, or -1 (errno) when
 * the write failed. */
int bench_write_out(int fd, struct buf *out, uint64_t *bytes);

/* Ask the kernel for receive timestamps (SO_TIMESTAMPNS) on fd. */
int bench_rx_timestamps(int fd);
/*
 * recvmsg() into buf; *rx_ns gets the kernel's receive time of the last
 * segment read, as CLOCK_MONOTONIC ns (0 if the kernel gave none).
 * real_minus_mono converts: CLOCK_REALTIME - CLOCK_MONOTONIC, in ns, from
 * bench_clock_offset().  Returns what recvmsg() returns.
 */
long bench_recv_ts(int fd, void *buf, size_t len, int64_t real_minus_mono,
    uint64_t *rx_ns);
int64_t bench_clock_offset(void);

/* ---- the fake server's shared statistics (fake_upstream -S FILE) ----
 * One slot per worker process, each written by its worker only: the
 * loadgen maps the file and reads the lag histogram over its window. */

struct fake_wstats {
	uint64_t	appends, deltas, conns;
	struct hist	lag;	/* µs: kernel arrival of an append to its echo
				   written; in a text session, of a
				   response.create to its first delta written */
	uint64_t	responses, cancels;	/* text sessions */
};

struct fake_shared {
	uint32_t		magic;	/* FAKE_STATS_MAGIC */
	uint32_t		procs;
	struct fake_wstats	w[];
};

#define FAKE_STATS_MAGIC	0x66616b65u

/* ---- ConversationRelay (text sessions) ----
 * The fake server answers each response.create of a text session with
 * these words, one output_text delta each (a space after all but the
 * last), so the load generator can check every token that reaches it.
 * The first delta starts with "@RX,TX@": the fake's kernel arrival time of
 * the response.create and the time it wrote the delta, CLOCK_MONOTONIC ns,
 * from which the generator takes the daemon's own share of the first
 * token's latency. */
#define BENCH_REPLY_NWORDS	10
extern const char *const bench_reply_words[BENCH_REPLY_NWORDS];

#endif
