/*
 * loadgen.c — the load generator of `make bench`: N simulated Twilio calls
 * through a running voxrelay, for a fixed time, measured.
 *
 *   loadgen --url http://127.0.0.1:PORT --calls N --seconds S
 *           [--daemon-pid PID] [--fake-pids P1,P2,...] [--fake-stats FILE]
 *           [-j PROCS] ...
 *
 * Each call does what Twilio does: POST /voice (form body; From unique per
 * call; signed with --auth-token over http://HOST:PORT/voice, the daemon's
 * PUBLIC_URL in make bench), the Stream URL out of the TwiML, the WebSocket upgrade (client
 * frames masked), `connected` and `start` (customParameters from the
 * TwiML's <Parameter>s), then a media frame of 160 μ-law bytes every 20 ms
 * with Twilio's string counters.  The first 9 bytes of each frame carry the
 * call's index and the frame's number, the rest is a fixed pattern, so an
 * echo is matched to its frame and checked byte for byte.  What comes back
 * is played out on a clock per call (8 bytes a ms) and each mark is echoed
 * when the audio before it has played, as Twilio does.
 *
 * With --relay each call is a ConversationRelay session instead (protocols.md
 * 7; --route names a conversation_relay line): the <ConversationRelay> URL
 * out of the TwiML, the upgrade signed over its wss:// form, `setup`, then a
 * final `prompt` every --every s.  Each `text` token is checked against the
 * fake's words (bench_common.h) in order up to `last: true`; every
 * --interrupt-every-th turn is cut by an `interrupt` after its third token.
 * The first token's latency runs from the prompt's write() to its arrival
 * in the socket, and the fake's stamps in it give the daemon's part.
 *
 * PROCS processes each take every PROCS-th call; in each, one 1 ms timer
 * drives every call: frames fall due on a 20-slot wheel (a call's phase is
 * the moment it went live, so sends are spread like real streams), marks on
 * a wheel of their own, and every socket written gets one write per tick.
 * The webhook uses a libuv stream; the Media Stream is a plain non-blocking
 * descriptor under uv_poll, read with recvmsg() for the kernel's receive
 * timestamp (SO_TIMESTAMPNS): a round trip runs from the frame's write() to
 * its echo's arrival in the socket, so this process's own lateness in
 * reading is measured apart (the read lag) and is not in it.
 *
 * Timeline (T0 = start): calls start over --ramp seconds, then --settle
 * seconds pass, then the parent waits (at most --setup-max s) until every
 * call that did not fail has had an echo back, and opens the measured
 * window of --seconds.  Frames stop at its end and echoes are awaited for
 * --grace seconds; then each call sends `stop` and closes.  Round trips and
 * cadence drift are for frames sent in the window; loss counts every frame.
 *
 * The parent process reads /proc: CPU of the daemon (master, with its reaped
 * children, and workers), of the fake server and of this generator over the
 * window, and of the whole machine; RSS and PSS of the daemon idle and
 * under load.  It reads /health for the daemon's own relay latency and
 * counters, /metrics for the relay latency in the window alone, and the
 * fake server's stats file for its lag.  It prints a report and one JSON
 * line starting with "BENCH_JSON ".
 */
#include "test/bench/bench_common.h"
#include "proto/buf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>

#define FRAME_BYTES	160
#define FRAME_B64	216
#define FRAME_NS	20000000ULL
#define TICK_NS		1000000ULL
#define SLOTS		20		/* FRAME_NS / TICK_NS */
#define RING		512		/* frames remembered per call (10 s) */
#define RECV_BIT	0x80000000u
#define NMARKS		128		/* 2.5 s of audio queued for playout */
#define MWHEEL		512		/* mark wheel: 512 ms ahead */
#define READ_BUF	(256 * 1024)
#define OUT_MAX		(8u << 20)
#define SETUP_TIMEOUT_NS (15ULL * 1000000000ULL)
#define MAX_PROCS	32

/* Append a string literal at p + k. */
#define PUT_LIT(p, k, lit) \
	do { memcpy((p) + (k), lit, sizeof(lit) - 1); (k) += sizeof(lit) - 1; } while (0)

/* ---------------------------------------------------------------- */
/* options */

static struct {
	char		 host[64];
	int		 port;
	char		 admin_host[64];	/* /health, /metrics */
	int		 admin_port;
	char		 route[64];
	int		 calls;
	double		 seconds, ramp, settle, grace, setup_max;
	int		 procs;
	pid_t		 daemon_pid;
	pid_t		 fake_pids[MAX_PROCS + 1];
	int		 nfake;
	const char	*fake_stats;
	char		 label[64];
	int		 marks_with_frames;	/* echo marks with the next frame */
	unsigned	 run_id;
	double		 max_p99_ms;
	int		 quiet;
	const char	*auth_token;	/* signs each webhook when set */
	int		 relay;		/* ConversationRelay conversations */
	double		 every;		/* relay: s between a call's prompts */
	int		 interrupt_every; /* relay: every Nth turn is cut */
} O;

/* ---------------------------------------------------------------- */
/* what each generator process reports, in shared memory */

struct gstats {
	pid_t		 pid;
	int		 finished;
	uint64_t	 attempted, established, flowing;
	uint64_t	 fail_connect, fail_http, refused, fail_upgrade, fail_timeout;
	uint64_t	 dropped, closed_ok, closed_unclean;
	uint64_t	 frames_sent, frames_recv, frames_lost;
	uint64_t	 frames_dup, frames_late, frames_bad, frames_misrouted,
			 frames_other;
	uint64_t	 marks_in, marks_echoed, marks_forced, clears, msgs_other,
			 pings;
	uint64_t	 bytes_in, bytes_out, write_again, max_out;
	uint64_t	 live_w0, live_w1;
	double		 call_seconds;	/* live call time inside the window */
	char		 first_error[200];
	struct hist	 rtt_win, rtt_ramp;	/* µs, write() to the echo's arrival
						   in the socket (kernel time) */
	struct hist	 rtt_app_win;		/* µs, write() to the echo read */
	struct hist	 rx_lag;		/* µs, arrival in the socket to read */
	struct hist	 lateness;		/* µs: frame written after its due time */
	struct hist	 setup;			/* µs: webhook to first echo */
	/* relay mode: turns are prompts with last: true */
	uint64_t	 turns_sent, turns_done, turns_cut, turns_lost, turns_bad;
	uint64_t	 tokens_in, tokens_late, ends;
	struct hist	 ftl_win;	/* µs: prompt write() to the first
					   token's arrival in the socket */
	struct hist	 added_win;	/* µs: the daemon's part of ftl_win */
	struct hist	 leg_in, leg_out;	/* µs: its two legs: the prompt to
					   the fake, the delta from it */
	struct hist	 turn_win;	/* µs: prompt write() to last: true */
};

/* The window, decided by the parent once every call is flowing (0 until
 * then); the generator processes read it every tick. */
struct timeline {
	uint64_t	 W0, W1, G1, END;
};

static struct timeline *TL;
static struct gstats *GS;	/* [O.procs] */

/* ---------------------------------------------------------------- */
/* one call */

enum cstate {
	C_WAIT, C_HTTP, C_HTTP_CLOSE, C_WS_CONNECT, C_UPGRADE, C_LIVE, C_DRAIN,
	C_CLOSING, C_DONE,
};

struct mark {
	uint64_t	due;
	uint8_t		len;
	char		name[23];
};

struct call {
	uint32_t	 idx;
	uint8_t		 state;
	uint8_t		 writing, dirty, in_wheel, tcp_open, was_live, poll_open;
	uv_tcp_t	 tcp;		/* the webhook's connection */
	uv_connect_t	 creq;
	uv_write_t	 wreq;
	uv_poll_t	 poll;		/* the Media Stream: a plain descriptor */
	int		 fd, events;
	uint32_t	 unstamped;	/* first frame not yet handed to write() */
	struct buf	 out, wbuf, in;
	char		*path, *params;
	char		*sig;		/* relay: the handshake's signature */
	char		 ws_key[25];
	uint64_t	 t_start, t_begin, t_live, t_dead, next_due, play_end;
	uint64_t	 wheel_slot;
	uint32_t	 next_frame, seq;
	uint64_t	 sent, recv;
	int		 first_echo;
	uint8_t		 mhead, mcount;
	/* relay mode: the turn under way */
	uint8_t		 turn_open, turn_bad, turn_cut, stamp_prompt;
	uint8_t		 ntok;		/* its tokens so far */
	uint32_t	 turns;		/* prompts sent */
	uint64_t	 t_queued;	/* its prompt queued */
	uint64_t	 t_prompt;	/* its prompt handed to write() */
	uint8_t		 carry[FRAME_BYTES];	/* a frame split across media */
	size_t		 ncarry;
	struct mark	 marks[NMARKS];
	struct {
		uint32_t frame;		/* | RECV_BIT once echoed */
		uint32_t t_us;		/* sent, µs after T0 */
	} ring[RING];
};

struct vec {
	struct call	**v;
	size_t		  n, cap;
};

static struct {
	int		 slot;
	struct gstats	*st;
	uv_loop_t	*loop;
	uv_timer_t	 timer;
	struct sockaddr_in daemon;
	struct call	*calls;
	int		 ncalls, next_start, open, in_setup;
	uint64_t	 T0, W0, W1, G1, END;
	int		 phase;		/* 0 sending, 1 draining, 2 ending */
	int		 counting;
	uint64_t	 last_slot, last_mslot;
	struct vec	 buckets[SLOTS];
	struct vec	 mwheel[MWHEEL];
	struct vec	 dirty, spare;
	uint64_t	 rng;
	uint64_t	 last_scan;
	int64_t		 clock_off;	/* CLOCK_REALTIME - CLOCK_MONOTONIC */
} G;

static uint8_t rbuf[READ_BUF];
static char scratch[8192];
static char fill_b64[FRAME_B64 - 12 + 1];	/* bytes 9..159, encoded */
static uint8_t fill_raw[FRAME_BYTES];		/* the same, as bytes */

static const char account_sid[] = "AC00000000000000000000000000000000";

static void call_fail(struct call *c, uint64_t *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ws_connect(struct call *c);
static void flush_call(struct call *c);
static int sign_url(const char *s, char *hdr, size_t len);

/* ---------------------------------------------------------------- */

static void
vec_push(struct vec *v, struct call *c)
{
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 64;
		struct call **nv = realloc(v->v, nc * sizeof(*nv));
		if (nv == NULL)
			abort();
		v->v = nv;
		v->cap = nc;
	}
	v->v[v->n++] = c;
}

/* 1 ms slots from T0, the first being 1 (0 is "before T0"). */
static uint64_t
slot_of(uint64_t t)
{
	return t >= G.T0 ? (t - G.T0) / TICK_NS + 1 : 0;
}

static uint32_t
us_since_t0(uint64_t t)
{
	return t > G.T0 ? (uint32_t)((t - G.T0) / 1000) : 0;
}

static void
set_dirty(struct call *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		vec_push(&G.dirty, c);
	}
}

static void
note_error(const char *fmt, va_list ap)
{
	if (G.st->first_error[0] == '\0')
		vsnprintf(G.st->first_error, sizeof(G.st->first_error), fmt, ap);
}

static void
close_cb(uv_handle_t *h)
{
	struct call *c = h->data;

	c->tcp_open = 0;
	if (c->state == C_HTTP_CLOSE)
		ws_connect(c);
	else if (c->state == C_DONE)
		G.open--;
}

static void
poll_close_cb(uv_handle_t *h)
{
	struct call *c = h->data;

	close(c->fd);
	c->fd = -1;
	c->poll_open = 0;
	if (c->state == C_DONE)
		G.open--;
}

/* Close the socket (if any) and move to next_state; a call counts as open
 * until its socket's close callback has run in state C_DONE. */
static void
close_handle(struct call *c, int next_state)
{
	c->state = (uint8_t)next_state;
	if (c->tcp_open) {
		if (!uv_is_closing((uv_handle_t *)&c->tcp))
			uv_close((uv_handle_t *)&c->tcp, close_cb);
		return;
	}
	if (c->poll_open) {
		if (!uv_is_closing((uv_handle_t *)&c->poll)) {
			uv_poll_stop(&c->poll);
			uv_close((uv_handle_t *)&c->poll, poll_close_cb);
		}
		return;
	}
	if (next_state == C_DONE)
		G.open--;
}

static void
leave_setup(struct call *c)
{
	if (c->state == C_HTTP || c->state == C_HTTP_CLOSE ||
	    c->state == C_WS_CONNECT || c->state == C_UPGRADE)
		G.in_setup--;
}

static void
call_fail(struct call *c, uint64_t *counter, const char *fmt, ...)
{
	va_list ap;

	if (c->state >= C_DONE)
		return;
	va_start(ap, fmt);
	note_error(fmt, ap);
	va_end(ap);
	(*counter)++;
	leave_setup(c);
	close_handle(c, C_DONE);
}

/* ---------------------------------------------------------------- */
/* writing: setup requests with uv_write, the rest with one try per tick */

static void
setup_write_cb(uv_write_t *req, int status)
{
	struct call *c = req->data;

	c->writing = 0;
	buf_consume(&c->wbuf, buf_pending(&c->wbuf));
	if (status < 0 && status != UV_ECANCELED && c->state < C_DONE) {
		call_fail(c, &G.st->fail_connect, "write: %s", uv_strerror(status));
		return;
	}
	if (buf_pending(&c->out) > 0)
		set_dirty(c);
}

static void
setup_write(struct call *c, const char *p, size_t n)
{
	uv_buf_t b;

	buf_consume(&c->wbuf, buf_pending(&c->wbuf));
	buf_append(&c->wbuf, p, n);
	b = uv_buf_init(buf_head(&c->wbuf), (unsigned)buf_pending(&c->wbuf));
	c->wreq.data = c;
	if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, setup_write_cb) != 0) {
		call_fail(c, &G.st->fail_connect, "uv_write failed");
		return;
	}
	c->writing = 1;
	G.st->bytes_out += n;
}

static void poll_cb(uv_poll_t *h, int status, int events);

static void
call_watch(struct call *c, int events)
{
	if (c->events != events && c->poll_open &&
	    !uv_is_closing((uv_handle_t *)&c->poll)) {
		c->events = events;
		uv_poll_start(&c->poll, events, poll_cb);
	}
}

/*
 * Write what is queued.  Frames are stamped here, as they are handed to
 * write(): their round trip starts now, and how late that is against their
 * 20 ms schedule is the cadence drift.  What the socket does not take
 * waits for it to be writable (the daemon not reading counts in the round
 * trip).
 */
static void
flush_call(struct call *c)
{
	if (!c->poll_open || buf_pending(&c->out) == 0 ||
	    uv_is_closing((uv_handle_t *)&c->poll))
		return;
	if (c->unstamped < c->next_frame) {
		uint64_t now = bench_now_ns();
		uint32_t t = us_since_t0(now);
		for (uint32_t f = c->unstamped; f < c->next_frame; f++) {
			uint64_t due = c->t_live + (uint64_t)f * FRAME_NS;
			c->ring[f % RING].t_us = t;
			if (now >= G.W0)
				hist_add(&G.st->lateness, now > due ? (now - due) / 1000 : 0);
		}
		c->unstamped = c->next_frame;
	}
	if (c->stamp_prompt) {
		/* a prompt's latency runs from here */
		c->stamp_prompt = 0;
		c->t_prompt = bench_now_ns();
	}
	if (bench_write_out(c->fd, &c->out, &G.st->bytes_out) != 0) {
		if (c->state == C_LIVE || c->state == C_DRAIN) {
			c->t_dead = bench_now_ns();
			G.st->dropped++;
			if (G.st->first_error[0] == '\0')
				snprintf(G.st->first_error, sizeof(G.st->first_error),
				    "call %u: write: %s", c->idx, strerror(errno));
			close_handle(c, C_DONE);
		} else if (c->state == C_CLOSING) {
			G.st->closed_unclean++;
			close_handle(c, C_DONE);
		} else
			call_fail(c, &G.st->fail_upgrade, "call %u: write: %s",
			    c->idx, strerror(errno));
		return;
	}
	if (buf_pending(&c->out) > 0) {
		G.st->write_again++;
		if (buf_pending(&c->out) > G.st->max_out)
			G.st->max_out = buf_pending(&c->out);
		call_watch(c, UV_READABLE | UV_WRITABLE);
	} else
		call_watch(c, UV_READABLE);
}

/* One masked frame into out; a text frame out has no room for counts
 * as a write that has to wait. */
static void
send_ws(struct call *c, int op, const void *p, size_t n)
{
	uint8_t mask[4];
	uint64_t r = bench_rand(&G.rng);

	memcpy(mask, &r, 4);
	if (bws_put(&c->out, op, p, n, mask) != 0) {
		if (op == BWS_TEXT)
			G.st->write_again++;
		return;
	}
	set_dirty(c);
}

static void
send_text(struct call *c, const char *p, size_t n)
{
	send_ws(c, BWS_TEXT, p, n);
}

/* ---------------------------------------------------------------- */
/* Twilio's messages */

static void
sids(const struct call *c, char *call_sid, char *stream_sid)
{
	snprintf(call_sid, 35, "CA%08x%08x%016x", O.run_id, c->idx, 0x5eedu);
	snprintf(stream_sid, 35, "MZ%08x%08x%016x", O.run_id, c->idx, 0x5eedu);
}

static void
send_connected_start(struct call *c)
{
	char cs[35], ss[35];
	int n;

	sids(c, cs, ss);
	n = snprintf(scratch, sizeof(scratch),
	    "{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}");
	send_text(c, scratch, (size_t)n);
	n = snprintf(scratch, sizeof(scratch),
	    "{\"event\":\"start\",\"sequenceNumber\":\"%u\",\"start\":"
	    "{\"accountSid\":\"%s\",\"streamSid\":\"%s\",\"callSid\":\"%s\","
	    "\"tracks\":[\"inbound\"],\"customParameters\":%s,\"mediaFormat\":"
	    "{\"encoding\":\"audio/x-mulaw\",\"sampleRate\":8000,\"channels\":1}},"
	    "\"streamSid\":\"%s\"}", ++c->seq, account_sid, ss, cs,
	    c->params ? c->params : "{}", ss);
	if (n > 0 && (size_t)n < sizeof(scratch))
		send_text(c, scratch, (size_t)n);
}

static void
send_stop(struct call *c)
{
	char cs[35], ss[35];
	int n;

	sids(c, cs, ss);
	n = snprintf(scratch, sizeof(scratch),
	    "{\"event\":\"stop\",\"sequenceNumber\":\"%u\",\"stop\":"
	    "{\"accountSid\":\"%s\",\"callSid\":\"%s\"},\"streamSid\":\"%s\"}",
	    ++c->seq, account_sid, cs, ss);
	send_text(c, scratch, (size_t)n);
}

/* ---------------------------------------------------------------- */
/* ConversationRelay: Twilio's side of a text conversation (protocols.md 7) */

static void
send_setup(struct call *c)
{
	char cs[35], ss[35];
	unsigned phone = (O.run_id * 7919u + c->idx) % 10000000u;
	int n;

	sids(c, cs, ss);
	n = snprintf(scratch, sizeof(scratch),
	    "{\"type\":\"setup\",\"sessionId\":\"VX%08x%08x%016x\","
	    "\"accountSid\":\"%s\",\"parentCallSid\":\"\",\"callSid\":\"%s\","
	    "\"from\":\"+1555%07u\",\"to\":\"+15005550006\",\"forwardedFrom\":"
	    "\"\",\"callType\":\"PSTN\",\"callerName\":\"\",\"direction\":"
	    "\"inbound\",\"callStatus\":\"RINGING\",\"customParameters\":%s}",
	    O.run_id, c->idx, 0x5eedu, account_sid, cs, phone,
	    c->params ? c->params : "{}");
	if (n > 0 && (size_t)n < sizeof(scratch))
		send_text(c, scratch, (size_t)n);
}

/*
 * A prompt falls due every --every s: the caller's final words of an
 * utterance.  A turn still unanswered holds the next prompt back, and
 * after 5 s counts as lost.
 */
static void
relay_due(struct call *c, uint64_t now)
{
	int n;

	c->next_due += (uint64_t)(O.every * 1e9);
	if (c->turn_open) {
		if (now - c->t_queued < 5000000000ULL)
			return;
		G.st->turns_lost++;
		c->turn_open = 0;
	}
	c->turns++;
	n = snprintf(scratch, sizeof(scratch), "{\"type\":\"prompt\","
	    "\"voicePrompt\":\"What time do you open on Tuesday? This is "
	    "conversation %u, turn %u.\",\"lang\":\"en-US\",\"last\":true}",
	    c->idx, c->turns);
	send_text(c, scratch, (size_t)n);
	c->turn_open = 1;
	c->turn_bad = 0;
	c->ntok = 0;
	c->turn_cut = O.interrupt_every > 0 &&
	    c->turns % (unsigned)O.interrupt_every == 0;
	c->t_queued = now;
	c->t_prompt = 0;
	c->stamp_prompt = 1;
	G.st->turns_sent++;
}

/* The caller talks over the answer after its third token: Twilio stops
 * speaking and says what was heard. */
static void
send_interrupt(struct call *c)
{
	char heard[128];
	size_t hl = 0;
	int n;

	for (int i = 0; i < c->ntok && i < BENCH_REPLY_NWORDS; i++)
		hl += (size_t)snprintf(heard + hl, sizeof(heard) - hl, "%s%s",
		    i ? " " : "", bench_reply_words[i]);
	n = snprintf(scratch, sizeof(scratch), "{\"type\":\"interrupt\","
	    "\"utteranceUntilInterrupt\":\"%s\",\"durationUntilInterruptMs\":"
	    "%d}", heard, 300 * c->ntok);
	send_text(c, scratch, (size_t)n);
}

/* "@RX,TX@" at the head of a first token (bench_common.h): the fake's
 * arrival of the response.create and its write of the delta. */
static size_t
token_stamps(const char *t, size_t n, uint64_t *frx, uint64_t *ftx)
{
	const char *e;
	char *end;

	*frx = *ftx = 0;
	if (n < 5 || t[0] != '@' || (e = memchr(t + 1, '@', n - 1)) == NULL)
		return 0;
	*frx = strtoull(t + 1, &end, 10);
	if (*end == ',')
		*ftx = strtoull(end + 1, NULL, 10);
	return (size_t)(e + 1 - t);
}

static void
on_token(struct call *c, const char *t, size_t n, int last, uint64_t now,
    uint64_t rx)
{
	struct gstats *st = G.st;
	uint64_t frx, ftx;
	char want[64];
	int k = c->ntok;

	st->tokens_in++;
	if (!c->turn_open) {
		st->tokens_late++;	/* after an interrupt, or a lost turn */
		return;
	}
	if (last) {
		if (n != 0 || k != BENCH_REPLY_NWORDS)
			c->turn_bad = 1;
		c->turn_open = 0;
		if (c->turn_bad)
			st->turns_bad++;
		st->turns_done++;
		if (c->t_prompt >= G.W0 && c->t_prompt != 0 && G.counting)
			hist_add(&st->turn_win, rx > c->t_prompt ?
			    (rx - c->t_prompt) / 1000 : 0);
		return;
	}
	if (k == 0) {
		size_t sl = token_stamps(t, n, &frx, &ftx);
		t += sl;
		n -= sl;
		if (sl == 0)
			c->turn_bad = 1;
		else if (c->t_prompt != 0 && c->t_prompt >= G.W0 && G.counting) {
			hist_add(&st->ftl_win, rx > c->t_prompt ?
			    (rx - c->t_prompt) / 1000 : 0);
			/* before the fake had the response.create, and after it
			 * wrote the delta */
			if (frx >= c->t_prompt && rx >= ftx && ftx >= frx) {
				hist_add(&st->added_win, (frx - c->t_prompt +
				    rx - ftx) / 1000);
				hist_add(&st->leg_in, (frx - c->t_prompt) / 1000);
				hist_add(&st->leg_out, (rx - ftx) / 1000);
			}
		}
		if (!c->first_echo) {
			c->first_echo = 1;
			st->flowing++;
			hist_add(&st->setup, (now - c->t_begin) / 1000);
		}
	}
	if (k >= BENCH_REPLY_NWORDS)
		c->turn_bad = 1;
	else {
		snprintf(want, sizeof(want), "%s%s", bench_reply_words[k],
		    k < BENCH_REPLY_NWORDS - 1 ? " " : "");
		if (n != strlen(want) || memcmp(t, want, n) != 0)
			c->turn_bad = 1;
	}
	c->ntok++;
	if (c->turn_cut && c->ntok == 3 && !c->turn_bad) {
		send_interrupt(c);
		c->turn_open = 0;
		st->turns_cut++;
	}
}

/* What the daemon sends on a ConversationRelay socket. */
static void
on_relay_text(struct call *c, const char *m, size_t n, uint64_t now,
    uint64_t rx)
{
	static const char tok[] = "{\"type\":\"text\",\"token\":\"";
	const char *v, *e;

	if (n > sizeof(tok) && memcmp(m, tok, sizeof(tok) - 1) == 0) {
		v = m + sizeof(tok) - 1;
		/* our words need no escapes: a backslash is a wrong token */
		for (e = v; e < m + n && *e != '"' && *e != '\\'; e++)
			;
		if (e < m + n && *e == '"') {
			size_t rest = (size_t)(m + n - e);
			int last = rest >= 12 && memcmp(e, "\",\"last\":true", 12) == 0;
			on_token(c, v, (size_t)(e - v), last, now, rx);
			return;
		}
	} else if (n > 14 && memcmp(m, "{\"type\":\"end\"", 14) == 0) {
		G.st->ends++;
		return;
	}
	G.st->msgs_other++;
}

static uint8_t
frame_check(uint32_t idx, uint32_t frame)
{
	uint32_t x = idx * 2654435761u ^ frame * 40503u;
	return (uint8_t)(x >> 24 ^ x >> 8 ^ 0xA5);
}

static void
send_frame(struct call *c, uint64_t now)
{
	static const char head[] = "{\"event\":\"media\",\"sequenceNumber\":\"";
	uint32_t n = c->next_frame++;
	uint8_t hb[9];
	char *p = scratch;
	size_t k;

	c->ring[n % RING].frame = n;
	c->ring[n % RING].t_us = us_since_t0(now);
	hb[0] = (uint8_t)(c->idx >> 24);
	hb[1] = (uint8_t)(c->idx >> 16);
	hb[2] = (uint8_t)(c->idx >> 8);
	hb[3] = (uint8_t)c->idx;
	hb[4] = (uint8_t)(n >> 24);
	hb[5] = (uint8_t)(n >> 16);
	hb[6] = (uint8_t)(n >> 8);
	hb[7] = (uint8_t)n;
	hb[8] = frame_check(c->idx, n);

	memcpy(p, head, sizeof(head) - 1);
	k = sizeof(head) - 1;
	k += bench_utoa(++c->seq, p + k);
	PUT_LIT(p, k, "\",\"media\":{\"track\":\"inbound\",\"chunk\":\"");
	k += bench_utoa((uint64_t)n + 1, p + k);
	PUT_LIT(p, k, "\",\"timestamp\":\"");
	k += bench_utoa((uint64_t)n * 20, p + k);
	PUT_LIT(p, k, "\",\"payload\":\"");
	k += b64_encode(hb, 9, p + k);
	memcpy(p + k, fill_b64, FRAME_B64 - 12);
	k += FRAME_B64 - 12;
	PUT_LIT(p, k, "\"},\"streamSid\":\"MZ");
	k += (size_t)snprintf(p + k, 40, "%08x%08x%016x\"}", O.run_id, c->idx,
	    0x5eedu);
	send_text(c, p, k);
	c->next_due += FRAME_NS;
	c->sent++;
}

static void
echo_mark(struct call *c, const char *name, size_t len)
{
	char cs[35], ss[35];
	int n;

	sids(c, cs, ss);
	n = snprintf(scratch, sizeof(scratch),
	    "{\"event\":\"mark\",\"sequenceNumber\":\"%u\",\"streamSid\":\"%s\","
	    "\"mark\":{\"name\":\"%.*s\"}}", ++c->seq, ss, (int)len, name);
	send_text(c, scratch, (size_t)n);
	G.st->marks_echoed++;
}

/* ---------------------------------------------------------------- */
/* marks: a wheel of 1 ms slots, each call in it at most once (at the due
 * time of its oldest mark) */

static void
wheel_add(struct call *c, uint64_t due)
{
	uint64_t s = slot_of(due);

	if (s <= G.last_mslot)
		s = G.last_mslot + 1;
	if (s >= G.last_mslot + MWHEEL)
		s = G.last_mslot + MWHEEL - 1;
	c->wheel_slot = s;
	c->in_wheel = 1;
	vec_push(&G.mwheel[s % MWHEEL], c);
}

/* Echo the marks whose audio has played (all of them if force). */
static void
marks_due(struct call *c, uint64_t now, int force)
{
	while (c->mcount > 0) {
		struct mark *m = &c->marks[c->mhead];
		if (!force && m->due > now)
			break;
		if (c->state == C_LIVE || c->state == C_DRAIN)
			echo_mark(c, m->name, m->len);
		c->mhead = (uint8_t)((c->mhead + 1) % NMARKS);
		c->mcount--;
	}
}

static void
on_mark(struct call *c, const char *name, size_t len, uint64_t now)
{
	struct mark *m;

	G.st->marks_in++;
	if (len >= sizeof(m->name) || c->mcount == NMARKS) {
		/* a name we cannot keep, or too much queued: answer now */
		marks_due(c, now, 1);
		echo_mark(c, name, len);
		G.st->marks_forced++;
		return;
	}
	m = &c->marks[(c->mhead + c->mcount) % NMARKS];
	m->due = c->play_end > now ? c->play_end : now;
	m->len = (uint8_t)len;
	memcpy(m->name, name, len);
	c->mcount++;
	if (!c->in_wheel && !O.marks_with_frames)
		wheel_add(c, m->due);
}

/* ---------------------------------------------------------------- */
/* what the daemon sends */

static const char *
field(const char *m, size_t n, const char *key, size_t kl, size_t *vlen)
{
	const char *v = memmem(m, n, key, kl), *e;

	if (v == NULL)
		return NULL;
	v += kl;
	e = memchr(v, '"', (size_t)(m + n - v));
	if (e == NULL)
		return NULL;
	*vlen = (size_t)(e - v);
	return v;
}

/* One 160-byte frame out of an echo: whose, which, intact, in time. */
static void
on_frame(struct call *c, const uint8_t *f, uint64_t now, uint64_t rx)
{
	uint32_t idx, n;

	idx = (uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 |
	    (uint32_t)f[2] << 8 | f[3];
	n = (uint32_t)f[4] << 24 | (uint32_t)f[5] << 16 |
	    (uint32_t)f[6] << 8 | f[7];
	if (f[8] != frame_check(idx, n) ||
	    memcmp(f + 9, fill_raw + 9, FRAME_BYTES - 9) != 0) {
		G.st->frames_bad++;
		return;
	}
	if (idx != c->idx) {
		G.st->frames_misrouted++;
		return;
	}
	if (n >= c->next_frame || (c->ring[n % RING].frame & ~RECV_BIT) != n) {
		G.st->frames_late++;	/* beyond the ring: counted lost */
		return;
	}
	if (c->ring[n % RING].frame & RECV_BIT) {
		G.st->frames_dup++;
		return;
	}
	c->ring[n % RING].frame |= RECV_BIT;
	if (!G.counting) {
		G.st->frames_late++;
		return;
	}
	c->recv++;
	uint64_t sent_ns = G.T0 + (uint64_t)c->ring[n % RING].t_us * 1000;
	uint64_t rtt = rx > sent_ns ? (rx - sent_ns) / 1000 : 0;
	if (sent_ns >= G.W0) {
		hist_add(&G.st->rtt_win, rtt);
		hist_add(&G.st->rtt_app_win, now > sent_ns ? (now - sent_ns) / 1000 : 0);
		hist_add(&G.st->rx_lag, now > rx ? (now - rx) / 1000 : 0);
	} else
		hist_add(&G.st->rtt_ramp, rtt);
	if (!c->first_echo) {
		c->first_echo = 1;
		G.st->flowing++;
		hist_add(&G.st->setup, (now - c->t_begin) / 1000);
	}
}

/*
 * An echoed media payload: one frame, or several when the daemon gathers
 * caller frames into one append (FRAMES_PER_APPEND); each frame in it is
 * matched on its own. The daemon cuts model audio into pieces of at most
 * MARK_INTERVAL_MS at whole base64 quanta (3 bytes), so a frame may straddle
 * two media messages: its head waits in c->carry for the rest.
 */
static void
on_echo(struct call *c, const char *b64, size_t len, uint64_t now,
    uint64_t rx)
{
	static uint8_t raw[FRAME_BYTES * 64];
	size_t bytes = len / 4 * 3;
	long got;

	if (len >= 1 && b64[len - 1] == '=')
		bytes--;
	if (len >= 2 && b64[len - 2] == '=')
		bytes--;
	/* the caller's playout clock: audio plays from its arrival on */
	c->play_end = (c->play_end > rx ? c->play_end : rx) +
	    (uint64_t)bytes * 125000;
	if (len == 0 || len % 4 != 0 ||
	    c->ncarry + bytes > sizeof(raw) - 3) {
		G.st->frames_other++;
		c->ncarry = 0;
		return;
	}
	memcpy(raw, c->carry, c->ncarry);
	if ((got = b64_decode(b64, len, raw + c->ncarry)) != (long)bytes) {
		G.st->frames_bad++;
		c->ncarry = 0;
		return;
	}
	bytes += c->ncarry;
	size_t k;
	for (k = 0; k + FRAME_BYTES <= bytes; k += FRAME_BYTES)
		on_frame(c, raw + k, now, rx);
	c->ncarry = bytes - k;
	memcpy(c->carry, raw + k, c->ncarry);
}

static void
on_text(struct call *c, const char *m, size_t n, uint64_t now, uint64_t rx)
{
	const char *v;
	size_t vl;

	if (O.relay) {
		on_relay_text(c, m, n, now, rx);
		return;
	}
	if (n > 18 && memcmp(m, "{\"event\":\"media\"", 16) == 0) {
		v = field(m, n, "\"payload\":\"", 11, &vl);
		if (v != NULL) {
			on_echo(c, v, vl, now, rx);
			return;
		}
	} else if (n > 17 && memcmp(m, "{\"event\":\"mark\"", 15) == 0) {
		v = field(m, n, "\"name\":\"", 8, &vl);
		if (v != NULL) {
			on_mark(c, v, vl, rx);
			return;
		}
	} else if (n > 18 && memcmp(m, "{\"event\":\"clear\"", 16) == 0) {
		/* Twilio drops what is queued and returns every mark */
		G.st->clears++;
		c->play_end = now;
		c->ncarry = 0;
		marks_due(c, now, 1);
		return;
	}
	G.st->msgs_other++;
}

static void
call_ended_by_peer(struct call *c, const char *why)
{
	if (c->state == C_CLOSING) {
		G.st->closed_ok++;
		close_handle(c, C_DONE);
		return;
	}
	c->t_dead = bench_now_ns();
	G.st->dropped++;
	if (G.st->first_error[0] == '\0')
		snprintf(G.st->first_error, sizeof(G.st->first_error),
		    "call %u dropped by the daemon: %s", c->idx, why);
	close_handle(c, C_DONE);
}

/* Whole frames from p[0..n); returns the bytes used (all of them once
 * the call is over), or -1. */
static long
parse_frames(struct call *c, uint8_t *p, size_t n, uint64_t now, uint64_t rx)
{
	struct bws_frame f;
	size_t off = 0;
	uint8_t *pl;
	int rc;

	while (off < n && c->state < C_DONE) {
		if ((rc = bws_next(p, n, &off, 0, UINT64_MAX, &f, &pl)) < 0 ||
		    (rc > 0 && !f.fin))
			return -1;
		if (rc == 0)
			break;
		size_t pn = (size_t)f.plen;
		switch (f.opcode) {
		case BWS_TEXT:
			on_text(c, (const char *)pl, pn, now, rx);
			break;
		case BWS_PING:
			G.st->pings++;
			send_ws(c, BWS_PONG, pl, pn);
			break;
		case BWS_CLOSE: {
			char why[32];
			unsigned code = pn >= 2 ? (unsigned)pl[0] << 8 | pl[1] : 1005;
			if (c->state != C_CLOSING)
				send_ws(c, BWS_CLOSE, pl, pn >= 2 ? 2 : 0);
			flush_call(c);
			snprintf(why, sizeof(why), "close %u", code);
			call_ended_by_peer(c, why);
			break;
		}
		default:
			break;
		}
	}
	return c->state < C_DONE ? (long)off : (long)n;
}

/* Bytes of the Media Stream; rx: when they reached the socket. */
static void
ws_input(struct call *c, uint8_t *p, size_t n, uint64_t now, uint64_t rx)
{
	uint8_t *d;
	size_t dn;
	long used;

	if ((d = bws_input(&c->in, p, n, &dn)) == NULL ||
	    (used = parse_frames(c, d, dn, now, rx)) < 0 ||
	    bws_input_done(&c->in, d, dn, (size_t)used) != 0)
		call_ended_by_peer(c, "bad WebSocket framing from the daemon");
}

/* ---------------------------------------------------------------- */
/* setup: the webhook, the TwiML, the upgrade */

static void
xml_unescape(char *s)
{
	static const struct { const char *e; char c; } ents[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
		{ "&quot;", '"' }, { "&apos;", '\'' },
	};
	char *r = s, *w = s;

	while (*r) {
		if (*r == '&') {
			size_t i;
			for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
				size_t l = strlen(ents[i].e);
				if (strncmp(r, ents[i].e, l) == 0) {
					*w++ = ents[i].c;
					r += l;
					break;
				}
			}
			if (i < sizeof(ents) / sizeof(ents[0]))
				continue;
		}
		*w++ = *r++;
	}
	*w = '\0';
}

/* The attribute value after `key` (e.g. `url="`) in s, unescaped, into
 * out; returns the position after it or NULL. */
static const char *
attr(const char *s, const char *key, char *out, size_t outlen)
{
	const char *v = strstr(s, key), *e;
	size_t l;

	if (v == NULL)
		return NULL;
	v += strlen(key);
	if ((e = strchr(v, '"')) == NULL)
		return NULL;
	l = (size_t)(e - v);
	if (l >= outlen)
		return NULL;
	memcpy(out, v, l);
	out[l] = '\0';
	xml_unescape(out);
	return e + 1;
}

/* JSON string body of s (quotes and backslashes escaped) appended at w. */
static size_t
json_str(char *w, const char *s, size_t cap)
{
	size_t n = 0;

	for (; *s && n + 2 < cap; s++) {
		if (*s == '"' || *s == '\\')
			w[n++] = '\\';
		w[n++] = *s;
	}
	return n;
}

static void
on_twiml(struct call *c, int status, const char *body)
{
	char url[2048], name[256], value[1024], params[4096];
	const char *s, *p;
	size_t pl = 0;

	if (status != 200) {
		call_fail(c, &G.st->fail_http, "call %u: webhook answered %d",
		    c->idx, status);
		return;
	}
	s = strstr(body, O.relay ? "<ConversationRelay " : "<Stream ");
	if (s == NULL || attr(s, "url=\"", url, sizeof(url)) == NULL) {
		call_fail(c, &G.st->refused, "call %u: no stream offered: %.120s",
		    c->idx, body);
		return;
	}
	if (strncmp(url, "ws://", 5) != 0 && strncmp(url, "wss://", 6) != 0) {
		call_fail(c, &G.st->fail_http, "call %u: stream url %s", c->idx, url);
		return;
	}
	p = strchr(url + 6, '/');
	if (p == NULL) {
		call_fail(c, &G.st->fail_http, "call %u: stream url %s", c->idx, url);
		return;
	}
	c->path = strdup(p);
	if (O.relay && O.auth_token != NULL) {
		/* the handshake is signed over the wss:// form of the URL */
		char wss[2100], hdr[80];
		snprintf(wss, sizeof(wss), "wss://%s", strstr(url, "://") + 3);
		if (sign_url(wss, hdr, sizeof(hdr)) == 0)
			c->sig = strdup(hdr);
	}
	/* the <Parameter>s become start.customParameters (or setup's) */
	params[pl++] = '{';
	for (p = s; (p = strstr(p, "<Parameter ")) != NULL; ) {
		p = attr(p, "name=\"", name, sizeof(name));
		if (p == NULL || (p = attr(p, "value=\"", value, sizeof(value))) == NULL)
			break;
		if (pl + strlen(name) * 2 + strlen(value) * 2 + 8 >= sizeof(params))
			break;
		if (pl > 1)
			params[pl++] = ',';
		params[pl++] = '"';
		pl += json_str(params + pl, name, sizeof(params) - pl);
		memcpy(params + pl, "\":\"", 3);
		pl += 3;
		pl += json_str(params + pl, value, sizeof(params) - pl);
		params[pl++] = '"';
	}
	params[pl++] = '}';
	params[pl] = '\0';
	c->params = strdup(params);
	buf_consume(&c->in, buf_pending(&c->in));
	close_handle(c, C_HTTP_CLOSE);
}

/* A whole HTTP response in c->in?  1 yes (status, body set), 0 not yet. */
static int
http_response(struct call *c, int eof, int *status, char **body)
{
	char *h = buf_head(&c->in), *e, *cl;
	size_t n = buf_pending(&c->in), hl;
	long clen = -1;

	e = memmem(h, n, "\r\n\r\n", 4);
	if (e == NULL)
		return 0;
	hl = (size_t)(e - h) + 4;
	if (n < 12 || strncmp(h, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(h + 9);
	*e = '\0';
	cl = strcasestr(h, "\r\nContent-Length:");
	*e = '\r';
	if (cl != NULL)
		clen = atol(cl + 17);
	if (clen >= 0 && n - hl < (size_t)clen)
		return 0;
	if (clen < 0 && !eof)
		return 0;
	/* NUL-terminate the body in the buffer's spare room */
	if (buf_reserve(&c->in, 1) == NULL)
		return -1;
	h = buf_head(&c->in);
	h[clen >= 0 ? hl + (size_t)clen : n] = '\0';
	*body = h + hl;
	return 1;
}

static void
on_upgrade_answer(struct call *c, uint64_t now, uint64_t rx)
{
	char *h = buf_head(&c->in), *e, accept[29];
	size_t n = buf_pending(&c->in), hl, rest;

	e = memmem(h, n, "\r\n\r\n", 4);
	if (e == NULL) {
		if (n > 16384)
			call_fail(c, &G.st->fail_upgrade, "call %u: upgrade answer "
			    "too long", c->idx);
		return;
	}
	hl = (size_t)(e - h) + 4;
	if (n < 12 || strncmp(h, "HTTP/1.1 101", 12) != 0) {
		call_fail(c, &G.st->fail_upgrade, "call %u: upgrade answered %.40s",
		    c->idx, h);
		return;
	}
	*e = '\0';
	bws_accept(c->ws_key, accept);
	if (strstr(h, accept) == NULL) {
		*e = '\r';
		call_fail(c, &G.st->fail_upgrade, "call %u: wrong "
		    "Sec-WebSocket-Accept", c->idx);
		return;
	}
	*e = '\r';
	leave_setup(c);
	c->state = C_LIVE;
	c->was_live = 1;
	c->t_live = now;
	G.st->established++;
	if (O.relay) {
		/* the first prompt once the model's session is likely open */
		send_setup(c);
		c->next_due = now + 300000000ULL;
	} else {
		send_connected_start(c);
		c->next_due = now;
	}
	c->unstamped = 0;
	vec_push(&G.buckets[slot_of(now) % SLOTS], c);
	rest = n - hl;
	if (rest > 0) {
		memcpy(rbuf, h + hl, rest);
		buf_consume(&c->in, n);
		ws_input(c, rbuf, rest, now, rx);
	} else
		buf_consume(&c->in, n);
}

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	b->base = (char *)rbuf;
	b->len = sizeof(rbuf);
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct call *c = s->data;
	int status = 0;
	char *body = NULL;

	if (nread == 0 || c->state >= C_DONE)
		return;
	if (nread > 0)
		G.st->bytes_in += (uint64_t)nread;
	switch (c->state) {
	case C_HTTP:
		if (nread > 0 && buf_append(&c->in, b->base, (size_t)nread) != 0) {
			call_fail(c, &G.st->fail_http, "webhook answer too big");
			return;
		}
		switch (http_response(c, nread < 0, &status, &body)) {
		case 1:
			on_twiml(c, status, body);
			return;
		case -1:
			call_fail(c, &G.st->fail_http, "call %u: unreadable webhook "
			    "answer", c->idx);
			return;
		}
		if (nread < 0)
			call_fail(c, &G.st->fail_http, "call %u: webhook: %s", c->idx,
			    uv_strerror((int)nread));
		return;
	default:
		return;
	}
}

/* The Media Stream's socket: connected, the upgrade, then frames. */
static void
poll_cb(uv_poll_t *h, int status, int events)
{
	struct call *c = h->data;
	uint64_t now, rx;
	long n;

	if (c->state >= C_DONE)
		return;
	if (c->state == C_WS_CONNECT) {
		unsigned char rnd[16];
		char req_text[2048];
		int err = 0, len;
		socklen_t el = sizeof(err);

		if (status < 0 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err,
		    &el) != 0 || err != 0) {
			call_fail(c, &G.st->fail_connect, "call %u: connect (stream): "
			    "%s", c->idx, strerror(err ? err : EIO));
			return;
		}
		for (int i = 0; i < 16; i += 8) {
			uint64_t r = bench_rand(&G.rng);
			memcpy(rnd + i, &r, 8);
		}
		b64_encode(rnd, 16, c->ws_key);
		len = snprintf(req_text, sizeof(req_text),
		    "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
		    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		    "Sec-WebSocket-Version: 13\r\n%sUser-Agent: Twilio.TmeWs/1.0\r\n\r\n",
		    c->path, O.host, O.port, c->ws_key, c->sig ? c->sig : "");
		c->state = C_UPGRADE;
		buf_append(&c->out, req_text, (size_t)len);
		flush_call(c);
		return;
	}
	if (status < 0) {
		if (c->state == C_UPGRADE)
			call_fail(c, &G.st->fail_upgrade, "call %u: upgrade: %s",
			    c->idx, uv_strerror(status));
		else
			call_ended_by_peer(c, uv_strerror(status));
		return;
	}
	if (events & UV_READABLE) {
		for (int i = 0; i < 16 && c->state < C_DONE; i++) {
			n = bench_recv_ts(c->fd, rbuf, sizeof(rbuf), G.clock_off, &rx);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			now = bench_now_ns();
			if (n <= 0) {
				const char *why = n == 0 ? "connection closed" :
				    strerror(errno);
				if (c->state == C_UPGRADE)
					call_fail(c, &G.st->fail_upgrade, "call %u: "
					    "upgrade: %s", c->idx, why);
				else
					call_ended_by_peer(c, why);
				return;
			}
			if (rx == 0 || rx > now)
				rx = now;
			G.st->bytes_in += (uint64_t)n;
			if (c->state == C_UPGRADE) {
				if (buf_append(&c->in, rbuf, (size_t)n) != 0) {
					call_fail(c, &G.st->fail_upgrade, "call %u: "
					    "upgrade answer too big", c->idx);
					return;
				}
				on_upgrade_answer(c, now, rx);
			} else
				ws_input(c, rbuf, (size_t)n, now, rx);
			if ((size_t)n < sizeof(rbuf))
				break;
		}
	}
	if ((events & UV_WRITABLE) && c->state < C_DONE)
		flush_call(c);
}

static void
ws_connect(struct call *c)
{
	int one = 1, rc;

	c->state = C_WS_CONNECT;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		call_fail(c, &G.st->fail_connect, "call %u: socket: %s", c->idx,
		    strerror(errno));
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bench_rx_timestamps(c->fd);
	rc = connect(c->fd, (const struct sockaddr *)&G.daemon, sizeof(G.daemon));
	if (rc != 0 && errno != EINPROGRESS) {
		int e = errno;
		close(c->fd);
		c->fd = -1;
		call_fail(c, &G.st->fail_connect, "call %u: connect (stream): %s",
		    c->idx, strerror(e));
		return;
	}
	uv_poll_init(G.loop, &c->poll, c->fd);
	c->poll.data = c;
	c->poll_open = 1;
	c->events = 0;
	call_watch(c, UV_WRITABLE);
}

/*
 * X-Twilio-Signature of our webhook, as Twilio computes it (protocols.md
 * 5.1): HMAC-SHA1 of the URL followed by each name and decoded value, names
 * in byte order, which is the order http_connected_cb writes them in.
 */
/* "X-Twilio-Signature: ...\r\n" of the signed text s into hdr; 0 or -1. */
static int
sign_url(const char *s, char *hdr, size_t len)
{
	unsigned char mac[20], b64[32];
	size_t olen;

	hdr[0] = '\0';
	if (mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA1),
	    (const unsigned char *)O.auth_token, strlen(O.auth_token),
	    (const unsigned char *)s, strlen(s), mac) != 0 ||
	    mbedtls_base64_encode(b64, sizeof(b64), &olen, mac, sizeof(mac)) != 0)
		return -1;
	snprintf(hdr, len, "X-Twilio-Signature: %.*s\r\n", (int)olen, b64);
	return 0;
}

static void
sign_webhook(const char *cs, unsigned phone, char *hdr, size_t len)
{
	char s[512], caller[16];
	int n;

	hdr[0] = '\0';
	if (O.auth_token == NULL)
		return;
	snprintf(caller, sizeof(caller), "+1555%07u", phone);
	n = snprintf(s, sizeof(s), "http://%s:%d/voice%s%s"
	    "AccountSid%sApiVersion2010-04-01CallSid%sCallStatusringing"
	    "Called+15005550006Caller%sDirectioninboundFrom%sTo+15005550006",
	    O.host, O.port, O.route[0] ? "/" : "", O.route, account_sid, cs,
	    caller, caller);
	if (n < 0 || (size_t)n >= sizeof(s))
		return;
	sign_url(s, hdr, len);
}

static void
http_connected_cb(uv_connect_t *req, int status)
{
	struct call *c = req->data;
	char cs[35], ss[35], body[1024], req_text[2048], sig[64];
	unsigned phone;
	int bl, n;

	if (c->state >= C_DONE)
		return;
	if (status < 0) {
		call_fail(c, &G.st->fail_connect, "call %u: connect (webhook): %s",
		    c->idx, uv_strerror(status));
		return;
	}
	sids(c, cs, ss);
	/* a caller of its own per call, so nobody runs out of minutes */
	phone = (O.run_id * 7919u + c->idx) % 10000000u;
	bl = snprintf(body, sizeof(body),
	    "AccountSid=%s&ApiVersion=2010-04-01&CallSid=%s&CallStatus=ringing"
	    "&Called=%%2B15005550006&Caller=%%2B1555%07u&Direction=inbound"
	    "&From=%%2B1555%07u&To=%%2B15005550006", account_sid, cs, phone,
	    phone);
	sign_webhook(cs, phone, sig, sizeof(sig));
	n = snprintf(req_text, sizeof(req_text),
	    "POST /voice%s%s HTTP/1.1\r\nHost: %s:%d\r\n"
	    "Content-Type: application/x-www-form-urlencoded\r\n"
	    "Content-Length: %d\r\nConnection: close\r\n%s"
	    "User-Agent: TwilioProxy/1.1\r\n\r\n%s",
	    O.route[0] ? "/" : "", O.route, O.host, O.port, bl, sig, body);
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	setup_write(c, req_text, (size_t)n);
}

static void
start_call(struct call *c, uint64_t now)
{
	G.st->attempted++;
	c->t_begin = now;
	c->state = C_HTTP;
	G.in_setup++;
	G.open++;
	uv_tcp_init(G.loop, &c->tcp);
	c->tcp.data = c;
	c->tcp_open = 1;
	c->creq.data = c;
	if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&G.daemon,
	    http_connected_cb) != 0)
		call_fail(c, &G.st->fail_connect, "call %u: connect failed", c->idx);
}

/* ---------------------------------------------------------------- */
/* the tick */

static void
process_bucket(struct vec *b, uint64_t now)
{
	size_t w = 0;

	for (size_t i = 0; i < b->n; i++) {
		struct call *c = b->v[i];
		if (c->state != C_LIVE)
			continue;	/* dropped from the bucket */
		b->v[w++] = c;
		while (c->next_due <= now) {
			if (O.relay) {
				relay_due(c, now);
				continue;
			}
			if (O.marks_with_frames)
				marks_due(c, now, 0);
			send_frame(c, now);
		}
	}
	b->n = w;
}

static void
end_calls(uint64_t now)
{
	for (int i = 0; i < G.ncalls; i++) {
		struct call *c = &G.calls[i];
		switch (c->state) {
		case C_WAIT:
			c->state = C_DONE;
			break;
		case C_HTTP:
		case C_HTTP_CLOSE:
		case C_WS_CONNECT:
		case C_UPGRADE:
			call_fail(c, &G.st->fail_timeout, "call %u: not set up by the "
			    "end of the run", c->idx);
			break;
		case C_LIVE:
		case C_DRAIN:
			marks_due(c, now, 1);
			if (!O.relay)
				send_stop(c);
			send_ws(c, BWS_CLOSE, (const uint8_t *)"\x03\xe8", 2);
			c->state = C_CLOSING;
			break;
		default:
			break;
		}
	}
}

static void
finish(void)
{
	struct gstats *st = G.st;

	for (int i = 0; i < G.ncalls; i++) {
		struct call *c = &G.calls[i];
		if (c->state != C_DONE) {
			st->closed_unclean++;
			close_handle(c, C_DONE);
		}
		if (!c->was_live)
			continue;
		st->frames_sent += c->sent;
		st->frames_recv += c->recv;
		if (c->turn_open)
			st->turns_lost++;
		uint64_t a = c->t_live > G.W0 ? c->t_live : G.W0;
		uint64_t z = c->t_dead && c->t_dead < G.W1 ? c->t_dead : G.W1;
		if (z > a)
			st->call_seconds += (double)(z - a) / 1e9;
		if (c->t_live <= G.W0 && (!c->t_dead || c->t_dead > G.W0))
			st->live_w0++;
		if (!c->t_dead || c->t_dead >= G.W1)
			st->live_w1++;
	}
	st->frames_lost = st->frames_sent - st->frames_recv;
	uv_timer_stop(&G.timer);
	uv_close((uv_handle_t *)&G.timer, NULL);
}

static uint64_t
tl_get(const uint64_t *p)
{
	uint64_t v = __atomic_load_n(p, __ATOMIC_ACQUIRE);

	return v ? v : UINT64_MAX;
}

static void
tick_cb(uv_timer_t *t)
{
	uint64_t now = bench_now_ns(), cur;

	G.clock_off = bench_clock_offset();
	G.W0 = tl_get(&TL->W0);
	G.W1 = tl_get(&TL->W1);
	G.G1 = tl_get(&TL->G1);
	G.END = tl_get(&TL->END);

	/* phases */
	if (G.phase == 0 && now >= G.W1) {
		G.phase = 1;
		for (int i = 0; i < G.ncalls; i++)
			if (G.calls[i].state == C_LIVE)
				G.calls[i].state = C_DRAIN;
	}
	if (G.phase == 1 && now >= G.G1) {
		G.phase = 2;
		G.counting = 0;
		end_calls(now);
	}
	if (G.phase == 2 && (G.open <= 0 || now >= G.END)) {
		finish();
		return;
	}

	/* calls that start now */
	while (G.phase == 0 && G.next_start < G.ncalls &&
	    G.calls[G.next_start].t_start <= now) {
		start_call(&G.calls[G.next_start], now);
		G.next_start++;
	}

	/* frames: every slot that has fully elapsed */
	cur = slot_of(now);
	if (G.phase == 0 && cur > G.last_slot) {
		uint64_t from = G.last_slot + 1;
		if (cur - from > SLOTS)
			from = cur - SLOTS;
		for (uint64_t s = from; s < cur; s++)
			process_bucket(&G.buckets[s % SLOTS], now);
		G.last_slot = cur - 1;
	}

	/* marks whose audio has played */
	if (!O.marks_with_frames) {
		uint64_t from = G.last_mslot + 1;
		if (cur >= G.last_mslot + MWHEEL)
			from = cur - MWHEEL + 1;
		for (uint64_t s = from; s <= cur; s++) {
			struct vec *v = &G.mwheel[s % MWHEEL];
			size_t n = v->n;
			v->n = 0;
			G.last_mslot = s;
			for (size_t i = 0; i < n; i++) {
				struct call *c = v->v[i];
				if (!c->in_wheel || c->wheel_slot != s)
					continue;
				c->in_wheel = 0;
				marks_due(c, now, 0);
				if (c->mcount > 0)
					wheel_add(c, c->marks[c->mhead].due);
			}
		}
		if (G.last_mslot < cur)
			G.last_mslot = cur;
	}

	/* calls stuck in setup */
	if (G.in_setup > 0 && now - G.last_scan > 1000000000ULL) {
		G.last_scan = now;
		for (int i = 0; i < G.ncalls; i++) {
			struct call *c = &G.calls[i];
			if ((c->state == C_HTTP || c->state == C_WS_CONNECT ||
			    c->state == C_UPGRADE) &&
			    now - c->t_begin > SETUP_TIMEOUT_NS)
				call_fail(c, &G.st->fail_timeout, "call %u: no answer "
				    "in %llu s", c->idx,
				    (unsigned long long)(SETUP_TIMEOUT_NS / 1000000000ULL));
		}
	}

	/* one write per socket; a partial write puts the call on the next
	 * tick's list */
	{
		struct vec work = G.dirty;
		G.dirty = G.spare;
		G.dirty.n = 0;
		for (size_t i = 0; i < work.n; i++) {
			work.v[i]->dirty = 0;
			flush_call(work.v[i]);
		}
		work.n = 0;
		G.spare = work;
	}
}

static void
child_main(int slot)
{
	int per = 0;

	uint64_t t0 = G.T0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	memset(&G, 0, sizeof(G));
	G.T0 = t0;
	G.W0 = G.W1 = G.G1 = G.END = UINT64_MAX;
	G.slot = slot;
	G.st = &GS[slot];
	G.st->pid = getpid();
	G.rng = bench_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x2545F4914F6CDD1DULL;
	G.clock_off = bench_clock_offset();
	G.loop = uv_default_loop();
	G.counting = 1;
	uv_ip4_addr(O.host, O.port, &G.daemon);

	for (int i = slot; i < O.calls; i += O.procs)
		per++;
	G.calls = calloc((size_t)per ? (size_t)per : 1, sizeof(struct call));
	if (G.calls == NULL)
		_exit(1);
	G.ncalls = per;
	for (int k = 0, i = slot; i < O.calls; i += O.procs, k++) {
		struct call *c = &G.calls[k];
		c->idx = (uint32_t)i;
		c->fd = -1;
		c->t_start = G.T0 + (uint64_t)((double)i * O.ramp * 1e9 / O.calls);
		buf_init(&c->out, OUT_MAX);
		buf_init(&c->wbuf, 0);
		buf_init(&c->in, 1u << 20);
	}
	uv_timer_init(G.loop, &G.timer);
	uv_timer_start(&G.timer, tick_cb, 1, 1);
	uv_run(G.loop, UV_RUN_DEFAULT);
	G.st->finished = 1;
	_exit(0);
}

/* ---------------------------------------------------------------- */
/* the parent: /proc, /health, the report */

/* kernel-mode ticks of the last proc_cpu() call (the share of *ticks spent
 * in system calls and the network stack). */
static uint64_t proc_cpu_sys;

static int
proc_cpu(pid_t pid, uint64_t *ticks, int with_children)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st, cut, cst;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime(14) stime cutime cstime */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
	    "%llu %llu", &ut, &st, &cut, &cst) != 4)
		return -1;
	*ticks = ut + st + (with_children ? cut + cst : 0);
	proc_cpu_sys = st + (with_children ? cst : 0);
	return 0;
}

static int
proc_mem(pid_t pid, uint64_t *rss_kb, uint64_t *pss_kb)
{
	char path[64], line[256];
	FILE *f;

	*rss_kb = *pss_kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			*rss_kb = strtoull(line + 6, NULL, 10);
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "Pss:", 4) == 0)
				*pss_kb = strtoull(line + 4, NULL, 10);
		fclose(f);
	}
	return 0;
}

/* /proc/stat's first line: busy, total and stolen jiffies of the machine
 * (stolen: the hypervisor ran something else; neither busy nor idle). */
static void
sys_cpu(uint64_t *busy, uint64_t *total, uint64_t *steal)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*busy = *total = *steal = 0;
	if (f == NULL)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
	    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
	    &v[9]) >= 8) {
		/* user nice system idle iowait irq softirq steal (guest is
		 * inside user) */
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*steal = v[7];
		*busy = *total - v[3] - v[4] - v[7];
	}
	fclose(f);
}

/* A blocking GET of path on the daemon's operator listener; returns the body (malloc) or NULL. */
static char *
http_get(const char *path)
{
	struct sockaddr_in sa;
	struct timeval tv = { 5, 0 };
	char req[256], *resp = NULL, *body;
	size_t len = 0, cap = 0;
	int fd, n;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	uv_ip4_addr(O.admin_host, O.admin_port, &sa);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return NULL;
	}
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
	    "Connection: close\r\n\r\n", path, O.admin_host, O.admin_port);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return NULL;
	}
	for (;;) {
		if (len + 65536 + 1 > cap) {
			char *nr = realloc(resp, cap = cap ? cap * 2 : 262144);
			if (nr == NULL)
				break;
			resp = nr;
		}
		ssize_t r = read(fd, resp + len, cap - len - 1);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (resp == NULL)
		return NULL;
	resp[len] = '\0';
	if (strncmp(resp, "HTTP/1.1 200", 12) != 0 ||
	    (body = strstr(resp, "\r\n\r\n")) == NULL) {
		free(resp);
		return NULL;
	}
	memmove(resp, body + 4, strlen(body + 4) + 1);
	return resp;
}

static json_t *
health(void)
{
	char *b = http_get("/health");
	json_t *j;

	if (b == NULL)
		return NULL;
	j = json_loads(b, 0, NULL);
	free(b);
	return j;
}

/* The pids of the daemon: the master, then its workers. */
static int
daemon_pids(json_t *h, pid_t *out, int max)
{
	json_t *ws = json_object_get(h, "workers"), *w;
	size_t i;
	int n = 0;

	if (O.daemon_pid > 0 && n < max)
		out[n++] = O.daemon_pid;
	json_array_foreach(ws, i, w) {
		json_int_t p = json_integer_value(json_object_get(w, "pid"));
		if (p > 0 && n < max)
			out[n++] = (pid_t)p;
	}
	return n;
}

/* The summed ticks of pids; *sys (if not NULL) gets the kernel part. */
static uint64_t
cpu_sum2(const pid_t *pids, int n, int master_first, uint64_t *sys)
{
	uint64_t sum = 0, ssum = 0, t;

	for (int i = 0; i < n; i++)
		if (proc_cpu(pids[i], &t, master_first && i == 0) == 0) {
			sum += t;
			ssum += proc_cpu_sys;
		}
	if (sys != NULL)
		*sys = ssum;
	return sum;
}

static uint64_t
cpu_sum(const pid_t *pids, int n, int master_first)
{
	return cpu_sum2(pids, n, master_first, NULL);
}

/* System calls and context switches of the daemon's processes: read-like
 * and write-like calls from /proc/PID/io, voluntary (went to sleep) and
 * involuntary (preempted) switches from /proc/PID/status. */
struct sysc {
	uint64_t rd, wr, vcs, ivcs;
};

static void
proc_sysc(pid_t pid, struct sysc *c)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "syscr:", 6) == 0)
				c->rd += strtoull(line + 6, NULL, 10);
			else if (strncmp(line, "syscw:", 6) == 0)
				c->wr += strtoull(line + 6, NULL, 10);
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
				c->vcs += strtoull(line + 24, NULL, 10);
			else if (strncmp(line, "nonvoluntary_ctxt_switches:", 27)
			    == 0)
				c->ivcs += strtoull(line + 27, NULL, 10);
		fclose(f);
	}
}

static struct sysc
sysc_sum(const pid_t *pids, int n)
{
	struct sysc c = { 0, 0, 0, 0 };

	for (int i = 0; i < n; i++)
		proc_sysc(pids[i], &c);
	return c;
}

/* Time the daemon's processes spent runnable but waiting for a CPU, and
 * the times they were given one (/proc/PID/schedstat): on a machine shared
 * with other work, the scheduler's share of every latency here. */
struct wait {
	uint64_t wait_ns, slices;
};

static struct wait
wait_sum(const pid_t *pids, int n)
{
	struct wait w = { 0, 0 };
	unsigned long long run, wait, slices;
	char path[64];
	FILE *f;

	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pids[i]);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fscanf(f, "%llu %llu %llu", &run, &wait, &slices) == 3) {
			w.wait_ns += wait;
			w.slices += slices;
		}
		fclose(f);
	}
	return w;
}

struct memsum {
	uint64_t rss, pss;
};

static struct memsum
mem_sum(const pid_t *pids, int n)
{
	struct memsum m = { 0, 0 };
	uint64_t r, p;

	for (int i = 0; i < n; i++)
		if (proc_mem(pids[i], &r, &p) == 0) {
			m.rss += r;
			m.pss += p;
		}
	return m;
}

static void
sleep_until(uint64_t t)
{
	for (;;) {
		uint64_t now = bench_now_ns();
		struct timespec ts;
		if (now >= t)
			return;
		ts.tv_sec = (time_t)((t - now) / 1000000000ULL);
		ts.tv_nsec = (long)((t - now) % 1000000000ULL);
		nanosleep(&ts, NULL);
	}
}

/* A latency histogram of /metrics: cumulative counts at each bound. */
#define MH_MAX 64
struct mhist {
	int		n;
	double		le_us[MH_MAX];	/* the last is +Inf */
	uint64_t	cum[MH_MAX];
};

static void
parse_metrics(const char *text, const char *name, struct mhist *m)
{
	char key[128];
	const char *p = text;
	size_t kl;

	m->n = 0;
	if (text == NULL)
		return;
	kl = (size_t)snprintf(key, sizeof(key), "voxrelay_%s_bucket{le=\"", name);
	while ((p = strstr(p, key)) != NULL && m->n < MH_MAX) {
		p += kl;
		m->le_us[m->n] = strncmp(p, "+Inf", 4) == 0 ? INFINITY :
		    strtod(p, NULL) * 1e6;
		const char *q = strchr(p, '}');
		if (q == NULL)
			break;
		m->cum[m->n++] = strtoull(q + 1, NULL, 10);
		p = q;
	}
}

/* The bound (µs) under which a share q of the values added between a and b
 * fall; -1 when nothing was added, INFINITY past the last bound. */
static double
mhist_quantile(const struct mhist *a, const struct mhist *b, double q,
    uint64_t *count)
{
	uint64_t total, rank;

	*count = 0;
	if (b->n == 0 || a->n != b->n)
		return -1;
	total = b->cum[b->n - 1] - a->cum[a->n - 1];
	*count = total;
	if (total == 0)
		return -1;
	rank = (uint64_t)(q * (double)total + 0.999999);
	for (int i = 0; i < b->n; i++)
		if (b->cum[i] - a->cum[i] >= rank)
			return b->le_us[i];
	return INFINITY;
}

/* JSON has no infinity: past the last bound reads 1e9 µs. */
static double
fin(double v)
{
	return isfinite(v) ? v : 1e9;
}

static double
lat_field(json_t *h, const char *which, const char *key)
{
	json_t *l = json_object_get(json_object_get(h, "latency_us"), which);
	return (double)json_integer_value(json_object_get(l, key));
}

/* The fake server's lag histograms, summed over its workers. */
static const struct fake_shared *FS;

static void
fake_lag(struct hist *out, uint64_t *appends)
{
	memset(out, 0, sizeof(*out));
	*appends = 0;
	if (FS == NULL)
		return;
	for (uint32_t i = 0; i < FS->procs; i++) {
		hist_merge(out, &FS->w[i].lag);
		*appends += FS->w[i].deltas;
	}
}

static void
map_fake_stats(void)
{
	struct fake_shared hdr;
	FILE *f;
	int fd;

	if (O.fake_stats == NULL || (f = fopen(O.fake_stats, "r")) == NULL)
		return;
	if (fread(&hdr, sizeof(hdr), 1, f) == 1 && hdr.magic == FAKE_STATS_MAGIC) {
		size_t sz = sizeof(hdr) + sizeof(struct fake_wstats) * hdr.procs;
		fd = fileno(f);
		void *m = mmap(NULL, sz, PROT_READ, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED)
			FS = m;
	}
	fclose(f);
}

static pid_t kids[MAX_PROCS];
static int nkids;

static void
parent_signal(int sig)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen --url http://HOST:PORT --calls N --seconds S\n"
	    "       [--admin-url http://HOST:ADMIN_PORT] [--route NAME] [--ramp S] [--settle S] [--grace S] [-j PROCS]\n"
	    "       [--daemon-pid PID] [--fake-pids P,P,...] [--label TEXT]\n"
	    "       [--marks-with-frames] [--max-p99-ms MS] [--run-id N]\n"
	    "       [--setup-max S] [--fake-stats FILE] [--auth-token TOKEN]\n"
	    "       [--quiet] [--relay [--every S] [--interrupt-every N]]\n");
	exit(2);
}

/* http://HOST:PORT into host (64 bytes) and *port. */
static void
parse_url(const char *url, char *host, int *port)
{
	const char *h = url, *colon;

	if (strncmp(h, "http://", 7) == 0)
		h += 7;
	colon = strchr(h, ':');
	if (colon == NULL || (size_t)(colon - h) >= sizeof(O.host))
		usage();
	memcpy(host, h, (size_t)(colon - h));
	host[colon - h] = '\0';
	*port = atoi(colon + 1);
	if (*port <= 0)
		usage();
}

int
main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "url", 1, NULL, 'u' }, { "calls", 1, NULL, 'n' },
		{ "seconds", 1, NULL, 's' }, { "route", 1, NULL, 'r' },
		{ "ramp", 1, NULL, 'R' }, { "settle", 1, NULL, 'S' },
		{ "grace", 1, NULL, 'g' }, { "procs", 1, NULL, 'j' },
		{ "daemon-pid", 1, NULL, 'd' }, { "fake-pids", 1, NULL, 'f' },
		{ "label", 1, NULL, 'l' }, { "marks-with-frames", 0, NULL, 'm' },
		{ "max-p99-ms", 1, NULL, 'p' }, { "run-id", 1, NULL, 'i' },
		{ "quiet", 0, NULL, 'q' }, { "setup-max", 1, NULL, 'M' },
		{ "fake-stats", 1, NULL, 'F' }, { "admin-url", 1, NULL, 'A' },
		{ "auth-token", 1, NULL, 'a' }, { "relay", 0, NULL, 'X' },
		{ "every", 1, NULL, 'E' }, { "interrupt-every", 1, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	long nofile;
	uint8_t fill[FRAME_BYTES];

	O.calls = 100;
	O.seconds = 20;
	O.ramp = -1;
	O.settle = 2;
	O.setup_max = 30;
	O.grace = 2;
	O.procs = 1;
	O.max_p99_ms = 20;
	O.every = 2;
	O.interrupt_every = 4;
	O.run_id = (unsigned)(bench_now_ns() / 1000) ^ (unsigned)getpid();
	snprintf(O.label, sizeof(O.label), "run");
	snprintf(O.route, sizeof(O.route), "%s", "");
	while ((opt = getopt_long(argc, argv, "j:h", longs, NULL)) != -1) {
		switch (opt) {
		case 'u': parse_url(optarg, O.host, &O.port); break;
		case 'A': parse_url(optarg, O.admin_host, &O.admin_port); break;
		case 'n': O.calls = atoi(optarg); break;
		case 's': O.seconds = atof(optarg); break;
		case 'r': snprintf(O.route, sizeof(O.route), "%s", optarg); break;
		case 'R': O.ramp = atof(optarg); break;
		case 'S': O.settle = atof(optarg); break;
		case 'g': O.grace = atof(optarg); break;
		case 'j': O.procs = atoi(optarg); break;
		case 'd': O.daemon_pid = atoi(optarg); break;
		case 'f': {
			char *s = optarg, *e;
			while (*s && O.nfake < MAX_PROCS + 1) {
				long v = strtol(s, &e, 10);
				if (e == s)
					break;
				O.fake_pids[O.nfake++] = (pid_t)v;
				s = *e ? e + 1 : e;
			}
			break;
		}
		case 'l': snprintf(O.label, sizeof(O.label), "%s", optarg); break;
		case 'm': O.marks_with_frames = 1; break;
		case 'p': O.max_p99_ms = atof(optarg); break;
		case 'i': O.run_id = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'q': O.quiet = 1; break;
		case 'M': O.setup_max = atof(optarg); break;
		case 'F': O.fake_stats = optarg; break;
		case 'a': O.auth_token = optarg; break;
		case 'X': O.relay = 1; break;
		case 'E': O.every = atof(optarg); break;
		case 'I': O.interrupt_every = atoi(optarg); break;
		default: usage();
		}
	}
	if (O.port == 0 || O.calls < 1 || O.seconds <= 0 || O.procs < 1 ||
	    O.procs > MAX_PROCS || O.every < 0.05 || O.interrupt_every < 0)
		usage();
	if (O.admin_port == 0) {	/* the daemon's defaults: 5050, 5051 */
		snprintf(O.admin_host, sizeof(O.admin_host), "%s", O.host);
		O.admin_port = O.port + 1;
	}
	if (O.procs > O.calls)
		O.procs = O.calls;
	if (O.ramp < 0)
		O.ramp = O.calls * 1.5 / 1000.0 < 1 ? 1 : O.calls * 1.5 / 1000.0;
	nofile = bench_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (nofile > 0 && nofile < (long)O.calls / O.procs * 2 + 64)
		fprintf(stderr, "loadgen: warning: %ld descriptors per process "
		    "for %d calls in %d processes\n", nofile, O.calls, O.procs);

	for (int i = 0; i < FRAME_BYTES; i++)
		fill[i] = (uint8_t)(0x80 ^ ((i * 37 + 11) & 0x7f));
	b64_encode(fill + 9, FRAME_BYTES - 9, fill_b64);
	memcpy(fill_raw, fill, FRAME_BYTES);

	TL = mmap(NULL, sizeof(struct timeline) + sizeof(struct gstats) *
	    (size_t)O.procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (TL == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	GS = (struct gstats *)(TL + 1);

	/* idle: the daemon before any call */
	json_t *h0 = health();
	if (h0 == NULL) {
		fprintf(stderr, "loadgen: no /health from %s:%d\n", O.admin_host,
		    O.admin_port);
		return 1;
	}
	pid_t dp[64];
	int ndp = daemon_pids(h0, dp, 64);
	struct memsum idle = mem_sum(dp, ndp);
	int nworkers = ndp - (O.daemon_pid > 0);
	json_t *c0 = json_incref(json_object_get(h0, "counters"));
	json_decref(h0);

	G.T0 = bench_now_ns() + 200000000ULL;

	signal(SIGINT, parent_signal);
	signal(SIGTERM, parent_signal);
	for (int i = 0; i < O.procs; i++) {
		pid_t p = fork();
		if (p < 0) {
			perror("fork");
			parent_signal(SIGTERM);
		}
		if (p == 0)
			child_main(i);
		kids[nkids++] = p;
	}

	/* setup: the ramp and the settling time, then until every call that
	 * did not fail has its first echo back (at most --setup-max s more) */
	uint64_t d0, d1, f0, f1, g0, g1, s0b, s0t, s1b, s1t, self0, self1, dT0;
	uint64_t ds0 = 0, ds1 = 0;
	uint64_t st0, st1;
	sleep_until(G.T0);
	dT0 = cpu_sum(dp, ndp, 1);
	sleep_until(G.T0 + (uint64_t)((O.ramp + O.settle) * 1e9));
	uint64_t setup_deadline = bench_now_ns() + (uint64_t)(O.setup_max * 1e9);
	int all_flowing = 0;
	for (;;) {
		uint64_t fl = 0, gone = 0;
		for (int i = 0; i < O.procs; i++) {
			fl += GS[i].flowing;
			gone += GS[i].fail_connect + GS[i].fail_http + GS[i].refused +
			    GS[i].fail_upgrade + GS[i].fail_timeout + GS[i].dropped;
		}
		if (fl + gone >= (uint64_t)O.calls) {
			all_flowing = 1;
			break;
		}
		if (bench_now_ns() >= setup_deadline)
			break;
		usleep(50000);
	}
	G.W0 = bench_now_ns() + 500000000ULL;
	G.W1 = G.W0 + (uint64_t)(O.seconds * 1e9);
	G.G1 = G.W1 + (uint64_t)(O.grace * 1e9);
	G.END = G.G1 + 5000000000ULL;
	__atomic_store_n(&TL->END, G.END, __ATOMIC_RELEASE);
	__atomic_store_n(&TL->G1, G.G1, __ATOMIC_RELEASE);
	__atomic_store_n(&TL->W1, G.W1, __ATOMIC_RELEASE);
	__atomic_store_n(&TL->W0, G.W0, __ATOMIC_RELEASE);
	double setup_s = (double)(G.W0 - G.T0) / 1e9;

	/* the window */
	struct mhist mi0, mo0, mi1, mo1, mr0, mr1;
	struct hist *fl0 = calloc(1, sizeof(*fl0)), *fl1 = calloc(1, sizeof(*fl1)),
	    *flw = calloc(1, sizeof(*flw));
	uint64_t fa0, fa1;
	map_fake_stats();
	sleep_until(G.W0);
	json_t *hw = health();
	char spread[512] = "";
	if (hw != NULL) {
		json_t *ws = json_object_get(hw, "workers"), *w;
		size_t i, sl = 0;
		ndp = daemon_pids(hw, dp, 64);
		json_array_foreach(ws, i, w)
			sl += (size_t)snprintf(spread + sl, sizeof(spread) - sl,
			    "%s%lld", sl ? "/" : "", (long long)json_integer_value(
			    json_object_get(w, "live_calls")));
		json_decref(hw);
	}
	char *mt = http_get("/metrics");
	parse_metrics(mt, "relay_in_latency_seconds", &mi0);
	parse_metrics(mt, "relay_out_latency_seconds", &mo0);
	parse_metrics(mt, "response_latency_seconds", &mr0);
	free(mt);
	uint64_t w0 = bench_now_ns();
	fake_lag(fl0, &fa0);
	uint64_t m0 = 0, m1 = 0;
	if (O.daemon_pid > 0)
		proc_cpu(O.daemon_pid, &m0, 1);
	struct sysc sc0 = sysc_sum(dp, ndp), sc1;
	struct wait wt0 = wait_sum(dp, ndp), wt1;
	d0 = cpu_sum2(dp, ndp, 1, &ds0);
	double setup_cpu = (double)(d0 - dT0) / (double)sysconf(_SC_CLK_TCK);
	f0 = cpu_sum(O.fake_pids, O.nfake, 0);
	g0 = cpu_sum(kids, nkids, 0);
	proc_cpu(getpid(), &self0, 0);
	sys_cpu(&s0b, &s0t, &st0);
	sleep_until(G.W1);
	uint64_t w1 = bench_now_ns();
	d1 = cpu_sum2(dp, ndp, 1, &ds1);
	sc1 = sysc_sum(dp, ndp);
	wt1 = wait_sum(dp, ndp);
	if (O.daemon_pid > 0)
		proc_cpu(O.daemon_pid, &m1, 1);
	f1 = cpu_sum(O.fake_pids, O.nfake, 0);
	g1 = cpu_sum(kids, nkids, 0);
	proc_cpu(getpid(), &self1, 0);
	sys_cpu(&s1b, &s1t, &st1);
	struct memsum load = mem_sum(dp, ndp);
	fake_lag(fl1, &fa1);
	hist_diff(flw, fl1, fl0);
	mt = http_get("/metrics");
	parse_metrics(mt, "relay_in_latency_seconds", &mi1);
	parse_metrics(mt, "relay_out_latency_seconds", &mo1);
	parse_metrics(mt, "response_latency_seconds", &mr1);
	free(mt);
	uint64_t win_in_n, win_out_n;
	double win_in50 = mhist_quantile(&mi0, &mi1, 0.50, &win_in_n);
	double win_in99 = mhist_quantile(&mi0, &mi1, 0.99, &win_in_n);
	double win_out50 = mhist_quantile(&mo0, &mo1, 0.50, &win_out_n);
	double win_out99 = mhist_quantile(&mo0, &mo1, 0.99, &win_out_n);
	uint64_t win_resp_n;
	double win_resp50 = mhist_quantile(&mr0, &mr1, 0.50, &win_resp_n);
	double win_resp99 = mhist_quantile(&mr0, &mr1, 0.99, &win_resp_n);
	pid_t dp_w0[64];
	int ndp_w0 = ndp;
	memcpy(dp_w0, dp, sizeof(dp));

	/* the end: children finish on their own, bounded */
	int left = nkids;
	uint64_t deadline = G.END + 10000000000ULL;
	while (left > 0) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p > 0) {
			left--;
			continue;
		}
		if (bench_now_ns() > deadline) {
			for (int i = 0; i < nkids; i++)
				kill(kids[i], SIGKILL);
			while (waitpid(-1, &st, 0) > 0)
				;
			fprintf(stderr, "loadgen: generator processes killed at the "
			    "deadline\n");
			break;
		}
		usleep(20000);
	}
	json_t *h1 = health();

	/* ---- totals ---- */
	struct gstats *T = calloc(1, sizeof(*T));
	char first_error[200] = "";
	for (int i = 0; i < O.procs; i++) {
		struct gstats *s = &GS[i];
#define ADD(f) T->f += s->f
		ADD(attempted); ADD(established); ADD(flowing); ADD(fail_connect);
		ADD(fail_http);
		ADD(refused); ADD(fail_upgrade); ADD(fail_timeout); ADD(dropped);
		ADD(closed_ok); ADD(closed_unclean); ADD(frames_sent);
		ADD(frames_recv); ADD(frames_lost); ADD(frames_dup); ADD(frames_late);
		ADD(frames_bad); ADD(frames_misrouted); ADD(frames_other);
		ADD(marks_in); ADD(marks_echoed); ADD(marks_forced); ADD(clears);
		ADD(msgs_other); ADD(pings); ADD(bytes_in); ADD(bytes_out);
		ADD(write_again); ADD(live_w0); ADD(live_w1); ADD(call_seconds);
		ADD(turns_sent); ADD(turns_done); ADD(turns_cut); ADD(turns_lost);
		ADD(turns_bad); ADD(tokens_in); ADD(tokens_late); ADD(ends);
#undef ADD
		if (s->max_out > T->max_out)
			T->max_out = s->max_out;
		hist_merge(&T->rtt_win, &s->rtt_win);
		hist_merge(&T->rtt_ramp, &s->rtt_ramp);
		hist_merge(&T->rtt_app_win, &s->rtt_app_win);
		hist_merge(&T->rx_lag, &s->rx_lag);
		hist_merge(&T->lateness, &s->lateness);
		hist_merge(&T->setup, &s->setup);
		hist_merge(&T->ftl_win, &s->ftl_win);
		hist_merge(&T->added_win, &s->added_win);
		hist_merge(&T->leg_in, &s->leg_in);
		hist_merge(&T->leg_out, &s->leg_out);
		hist_merge(&T->turn_win, &s->turn_win);
		if (!first_error[0] && s->first_error[0])
			snprintf(first_error, sizeof(first_error), "%s", s->first_error);
		if (!s->finished)
			fprintf(stderr, "loadgen: generator process %d did not finish\n",
			    i);
	}
	double win_s = (double)(w1 - w0) / 1e9;
	double tck = (double)sysconf(_SC_CLK_TCK);
	double ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN);
	/* ms per call-second; 0 when no call was live in the window */
	double callsec = T->call_seconds > 0 ? T->call_seconds : 1e-9;
	double per_cs = T->call_seconds > 0 ? 1000 / callsec : 0;
	double d_cpu = (double)(d1 - d0) / tck;
	double f_cpu = (double)(f1 - f0) / tck;
	double g_cpu = (double)(g1 - g0 + self1 - self0) / tck;
	double sys_busy = s1t > s0t ? (double)(s1b - s0b) / (double)(s1t - s0t) : 0;
	/* what the rest of the machine used meanwhile, in cores */
	double other_cores = (double)(s1b - s0b) / tck / win_s -
	    (d_cpu + f_cpu + g_cpu) / win_s;
	if (other_cores < 0)
		other_cores = 0;
	double steal_pct = s1t > s0t ? (double)(st1 - st0) * 100 /
	    (double)(s1t - s0t) : 0;
	double rtt50 = hist_quantile(&T->rtt_win, 0.50) / 1000.0;
	double rtt99 = hist_quantile(&T->rtt_win, 0.99) / 1000.0;
	double rttmax = T->rtt_win.max / 1000.0;
	double late99 = hist_quantile(&T->lateness, 0.99) / 1000.0;
	double rxlag99 = hist_quantile(&T->rx_lag, 0.99) / 1000.0;
	double fakelag99 = hist_quantile(flw, 0.99) / 1000.0;
	double latemax = T->lateness.max / 1000.0;
	uint64_t failed = T->fail_connect + T->fail_http + T->refused +
	    T->fail_upgrade + T->fail_timeout;
	double rss_pc = T->live_w1 ? ((double)load.rss - (double)idle.rss) /
	    (double)T->live_w1 : 0;
	double pss_pc = T->live_w1 ? ((double)load.pss - (double)idle.pss) /
	    (double)T->live_w1 : 0;

	/* bottlenecks */
	char bneck[1024] = "";
	size_t bl = 0;
	double gen_cores = O.procs < ncpu ? O.procs : ncpu;
	double fake_procs = O.nfake > 1 ? O.nfake - 1 : O.nfake;
	double fake_cores = fake_procs < ncpu ? fake_procs : ncpu;
	double gen_pct = g_cpu / win_s * 100, fake_pct = f_cpu / win_s * 100;
	int saturated = 0;
	if (gen_pct >= 90 * gen_cores) {
		bl += (size_t)snprintf(bneck + bl, sizeof(bneck) - bl,
		    "%sgenerator CPU %.0f%% of its %.0f core(s)", bl ? "; " : "",
		    gen_pct, gen_cores);
		saturated = 1;
	}
	if (O.nfake > 0 && fake_pct >= 90 * fake_cores) {
		bl += (size_t)snprintf(bneck + bl, sizeof(bneck) - bl,
		    "%sfake server CPU %.0f%% of its %.0f core(s)", bl ? "; " : "",
		    fake_pct, fake_cores);
		saturated = 1;
	}
	if (late99 > 5) {
		bl += (size_t)snprintf(bneck + bl, sizeof(bneck) - bl,
		    "%sgenerator cadence drift p99 %.1f ms > 5 ms", bl ? "; " : "",
		    late99);
		saturated = 1;
	}
	if (rxlag99 > 5) {
		bl += (size_t)snprintf(bneck + bl, sizeof(bneck) - bl,
		    "%sgenerator read lag p99 %.1f ms > 5 ms", bl ? "; " : "",
		    rxlag99);
		saturated = 1;
	}
	if (fakelag99 > 5) {
		bl += (size_t)snprintf(bneck + bl, sizeof(bneck) - bl,
		    "%sfake server lag p99 %.1f ms > 5 ms", bl ? "; " : "",
		    fakelag99);
		saturated = 1;
	}
	if (other_cores >= 0.2) {
		bl += (size_t)snprintf(bneck + bl, sizeof(bneck) - bl,
		    "%sother processes used %.0f%% of a core", bl ? "; " : "",
		    other_cores * 100);
		saturated = 1;
	}
	if (sys_busy >= 0.90) {
		bl += (size_t)snprintf(bneck + bl, sizeof(bneck) - bl,
		    "%smachine %.0f%% busy (all %d cores)", bl ? "; " : "",
		    sys_busy * 100, (int)ncpu);
		saturated = 1;
	}

	int lost_any = T->frames_lost > 0 || T->dropped > 0 || failed > 0 ||
	    T->frames_bad > 0 || T->frames_misrouted > 0;
	int pass = !lost_any && T->rtt_win.count > 0 && rtt99 < O.max_p99_ms &&
	    T->established == (uint64_t)O.calls;
	/* relay: every turn answered whole, the first token in time */
	double ftl50 = hist_quantile(&T->ftl_win, 0.50) / 1000.0;
	double ftl99 = hist_quantile(&T->ftl_win, 0.99) / 1000.0;
	double add50 = (double)hist_quantile(&T->added_win, 0.50);
	double add99 = (double)hist_quantile(&T->added_win, 0.99);
	double turn50 = hist_quantile(&T->turn_win, 0.50) / 1000.0;
	double turn99 = hist_quantile(&T->turn_win, 0.99) / 1000.0;
	if (O.relay)
		pass = T->dropped == 0 && failed == 0 && T->turns_lost == 0 &&
		    T->turns_bad == 0 && T->ftl_win.count > 0 &&
		    ftl99 < O.max_p99_ms && T->established == (uint64_t)O.calls;

	/* the daemon's own view */
	double rin50 = 0, rin99 = 0, rinmax = 0, rout50 = 0, rout99 = 0, routmax = 0;
	int restarts = 0;
	char trouble[1024] = "";
	size_t tl = 0;
	uint64_t d_frames_in = 0, d_frames_out = 0, d_marks_in = 0;
	uint64_t d_prompts = 0, d_tokens = 0, d_interrupts = 0;
	if (h1 != NULL) {
		rin50 = lat_field(h1, "relay_in", "p50_us");
		rin99 = lat_field(h1, "relay_in", "p99_us");
		rinmax = lat_field(h1, "relay_in", "max_us");
		rout50 = lat_field(h1, "relay_out", "p50_us");
		rout99 = lat_field(h1, "relay_out", "p99_us");
		routmax = lat_field(h1, "relay_out", "max_us");
		json_t *ws = json_object_get(h1, "workers"), *w;
		size_t i;
		json_array_foreach(ws, i, w)
			restarts += (int)json_integer_value(json_object_get(w,
			    "restarts"));
		static const char *bad[] = {
			"failed_calls", "api_errors", "upstream_error_events",
			"refused_minutes", "refused_capacity", "refused_draining",
			"token_rejected", "token_replayed", "handoff_failed",
			"http_bad_requests", "http_timeouts", "accept_paused",
			"accept_capped", "ws_protocol_errors", "bad_messages",
			"unknown_events", "silence_fill_ms", "calls_timed_out",
			"outbuf_overflows", "ledger_full", "workers_died",
			"workers_killed", "relay_sig_refused", "relay_errors",
			"relay_unknown", "relay_bad_json", "relay_oversize",
			"relay_before_setup", "relay_second_setup",
			"relay_bad_fields",
		};
		json_t *cn = json_object_get(h1, "counters");
#define DELTA(name) (json_integer_value(json_object_get(cn, name)) - \
		    json_integer_value(json_object_get(c0, name)))
		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			json_int_t v = DELTA(bad[k]);
			if (v != 0)
				tl += (size_t)snprintf(trouble + tl, sizeof(trouble) - tl,
				    "%s%s=%lld", tl ? " " : "", bad[k], (long long)v);
		}
		d_frames_in = (uint64_t)DELTA("frames_in");
		d_frames_out = (uint64_t)DELTA("frames_out");
		d_marks_in = (uint64_t)DELTA("marks_in");
		d_prompts = (uint64_t)DELTA("relay_prompts");
		d_tokens = (uint64_t)DELTA("relay_tokens");
		d_interrupts = (uint64_t)DELTA("relay_interrupts");
#undef DELTA
	}
	json_decref(c0);
	int pids_changed = 0;
	{
		json_t *hx = h1;
		pid_t dq[64];
		int ndq = hx ? daemon_pids(hx, dq, 64) : 0;
		if (ndq != ndp_w0 || memcmp(dq, dp_w0, sizeof(pid_t) * (size_t)ndq))
			pids_changed = 1;
	}

	/* ---- report ---- */
	if (!O.quiet) {
		printf("== %s: %d calls, %.1f s window (ramp %.1f s, settle %.1f s), "
		    "%d daemon workers, %d generator procs, %d fake procs\n",
		    O.label, O.calls, win_s, O.ramp, O.settle, nworkers, O.procs,
		    (int)fake_procs);
		printf("  calls      established %llu of %llu attempted; failed %llu "
		    "(connect %llu, webhook %llu, refused %llu, upgrade %llu, "
		    "timeout %llu); dropped %llu; live in window %llu..%llu\n",
		    (unsigned long long)T->established,
		    (unsigned long long)T->attempted, (unsigned long long)failed,
		    (unsigned long long)T->fail_connect,
		    (unsigned long long)T->fail_http, (unsigned long long)T->refused,
		    (unsigned long long)T->fail_upgrade,
		    (unsigned long long)T->fail_timeout,
		    (unsigned long long)T->dropped, (unsigned long long)T->live_w0,
		    (unsigned long long)T->live_w1);
		if (O.relay) {
		printf("  turns      %llu prompts sent, %llu answered to last:true "
		    "(%llu with a wrong or missing token), %llu interrupted after "
		    "3 tokens, %llu lost; tokens %llu (%llu after an interrupt); "
		    "end messages %llu\n",
		    (unsigned long long)T->turns_sent,
		    (unsigned long long)T->turns_done,
		    (unsigned long long)T->turns_bad,
		    (unsigned long long)T->turns_cut,
		    (unsigned long long)T->turns_lost,
		    (unsigned long long)T->tokens_in,
		    (unsigned long long)T->tokens_late,
		    (unsigned long long)T->ends);
		printf("  prompt to first token in window (write to the token's "
		    "arrival in the socket): p50 %.2f ms, p99 %.2f ms, max %.2f ms "
		    "(%llu turns); to last:true p50 %.2f ms, p99 %.2f ms\n",
		    ftl50, ftl99, T->ftl_win.max / 1000.0,
		    (unsigned long long)T->ftl_win.count, turn50, turn99);
		printf("    of which the daemon's (prompt to the fake's arrival of "
		    "response.create, plus the fake's write of the first delta to "
		    "its arrival here): p50 %.0f us, p99 %.0f us, max %.0f us "
		    "(%llu); fake server p50 %.0f / p99 %.0f us\n", add50, add99,
		    (double)T->added_win.max,
		    (unsigned long long)T->added_win.count,
		    (double)hist_quantile(flw, 0.5), (double)hist_quantile(flw,
		    0.99));
		printf("    the daemon's part, prompt in: p50 %.0f / p99 %.0f / max "
		    "%.0f us; first token out: p50 %.0f / p99 %.0f / max %.0f us\n",
		    (double)hist_quantile(&T->leg_in, 0.5),
		    (double)hist_quantile(&T->leg_in, 0.99), (double)T->leg_in.max,
		    (double)hist_quantile(&T->leg_out, 0.5),
		    (double)hist_quantile(&T->leg_out, 0.99),
		    (double)T->leg_out.max);
		printf("  the daemon's own prompt-to-first-delta (/metrics "
		    "response_latency buckets, upper bounds): p50 <= %.0f / p99 <= "
		    "%.0f us (%llu)\n", win_resp50, win_resp99,
		    (unsigned long long)win_resp_n);
		printf("  call setup (webhook to first token): p50 %.1f ms, p99 "
		    "%.1f ms, max %.1f ms\n", hist_quantile(&T->setup, 0.5) / 1000.0,
		    hist_quantile(&T->setup, 0.99) / 1000.0, T->setup.max / 1000.0);
		} else {
		printf("  frames     sent %llu, received %llu, lost %llu "
		    "(late %llu, dup %llu, corrupt %llu, misrouted %llu, other %llu)\n",
		    (unsigned long long)T->frames_sent,
		    (unsigned long long)T->frames_recv,
		    (unsigned long long)T->frames_lost,
		    (unsigned long long)T->frames_late,
		    (unsigned long long)T->frames_dup,
		    (unsigned long long)T->frames_bad,
		    (unsigned long long)T->frames_misrouted,
		    (unsigned long long)T->frames_other);
		printf("  marks      %llu received, %llu echoed at playout "
		    "(%llu early: queue full), clears %llu\n",
		    (unsigned long long)T->marks_in,
		    (unsigned long long)T->marks_echoed,
		    (unsigned long long)T->marks_forced,
		    (unsigned long long)T->clears);
		printf("  round trip in window (write to the echo's arrival in the "
		    "socket): p50 %.2f ms, p99 %.2f ms, max %.2f ms (%llu samples); "
		    "before the window: p99 %.2f ms, max %.2f ms\n",
		    rtt50, rtt99, rttmax, (unsigned long long)T->rtt_win.count,
		    hist_quantile(&T->rtt_ramp, 0.99) / 1000.0,
		    T->rtt_ramp.max / 1000.0);
		printf("    of which outside the daemon: generator read lag p50 "
		    "%.2f / p99 %.2f / max %.2f ms (not in the round trip); fake "
		    "server lag p50 %.2f / p99 %.2f / max %.2f ms (in it); as read "
		    "by the generator: p99 %.2f ms\n",
		    hist_quantile(&T->rx_lag, 0.5) / 1000.0, rxlag99,
		    T->rx_lag.max / 1000.0, hist_quantile(flw, 0.5) / 1000.0,
		    fakelag99, flw->max / 1000.0,
		    hist_quantile(&T->rtt_app_win, 0.99) / 1000.0);
		printf("  call setup (webhook to first echo): p50 %.1f ms, p99 %.1f "
		    "ms, max %.1f ms\n", hist_quantile(&T->setup, 0.5) / 1000.0,
		    hist_quantile(&T->setup, 0.99) / 1000.0, T->setup.max / 1000.0);
		printf("  daemon relay (/health, whole run): in p50 %.0f / p99 %.0f / "
		    "max %.0f us; out p50 %.0f / p99 %.0f / max %.0f us\n",
		    rin50, rin99, rinmax, rout50, rout99, routmax);
		printf("  daemon relay in the window (/metrics buckets, upper "
		    "bounds): in p50 <= %.0f / p99 <= %.0f us (%llu frames); out "
		    "p50 <= %.0f / p99 <= %.0f us (%llu)\n", win_in50, win_in99,
		    (unsigned long long)win_in_n, win_out50, win_out99,
		    (unsigned long long)win_out_n);
		printf("  echo rate in the window %.0f frames/s for %.0f expected "
		    "(50 per live call)\n", (double)T->rtt_win.count / win_s,
		    T->call_seconds / win_s * 50);
		}
		printf("  daemon CPU %.2f s in window = %.1f%% of a core = %.3f ms per "
		    "call-second (%.0f call-s; kernel %.3f, user %.3f); master %.2f s; "
		    "calls per worker %s\n",
		    d_cpu, d_cpu / win_s * 100, d_cpu * per_cs, T->call_seconds,
		    (double)(ds1 - ds0) / tck * per_cs,
		    (d_cpu - (double)(ds1 - ds0) / tck) * per_cs,
		    (double)(m1 - m0) / tck, spread);
		printf("  daemon system calls per call-second: %.1f read-like, %.1f "
		    "write-like; context switches %.1f voluntary, %.1f involuntary\n",
		    (double)(sc1.rd - sc0.rd) / callsec,
		    (double)(sc1.wr - sc0.wr) / callsec,
		    (double)(sc1.vcs - sc0.vcs) / callsec,
		    (double)(sc1.ivcs - sc0.ivcs) / callsec);
		printf("  daemon waited for a CPU (run queue) %.1f ms per s of "
		    "window, %.0f us per time it was given one (%.0f a s)\n",
		    (double)(wt1.wait_ns - wt0.wait_ns) / 1e6 / win_s,
		    wt1.slices > wt0.slices ? (double)(wt1.wait_ns - wt0.wait_ns) /
		    1e3 / (double)(wt1.slices - wt0.slices) : 0,
		    (double)(wt1.slices - wt0.slices) / win_s);
		printf("  daemon memory: idle RSS %.1f MiB (PSS %.1f); under load "
		    "RSS %.1f MiB (PSS %.1f); per call RSS %.1f KiB, PSS %.1f KiB\n",
		    idle.rss / 1024.0, idle.pss / 1024.0, load.rss / 1024.0,
		    load.pss / 1024.0, rss_pc, pss_pc);
		printf("  generator CPU %.1f%% (%d procs) = %.3f ms per call-second; "
		    "cadence drift p99 %.2f ms, max %.2f ms\n", gen_pct, O.procs,
		    g_cpu * per_cs, late99, latemax);
		if (O.nfake > 0)
			printf("  fake server CPU %.1f%% (%d procs) = %.3f ms per "
			    "call-second\n", fake_pct, (int)fake_procs,
			    f_cpu * per_cs);
		printf("  machine busy %.0f%% of %d cores (other processes: %.0f%% of a "
		    "core; stolen by the hypervisor: %.1f%%)\n", sys_busy * 100,
		    (int)ncpu, other_cores * 100, steal_pct);
		printf("  setup: every call flowing %s %.1f s after the first; daemon "
		    "CPU meanwhile %.2f s = %.2f ms per call\n", all_flowing ? "at" :
		    "NOT by", setup_s, setup_cpu, T->attempted ? setup_cpu * 1000 /
		    (double)T->attempted : 0);
		if (O.relay)
			printf("  daemon counters: relay_prompts %llu, relay_tokens "
			    "%llu, relay_interrupts %llu; trouble: %s\n",
			    (unsigned long long)d_prompts,
			    (unsigned long long)d_tokens,
			    (unsigned long long)d_interrupts,
			    trouble[0] ? trouble : "none");
		else
		printf("  daemon counters: frames_in %llu, frames_out %llu, marks_in "
		    "%llu; trouble: %s\n", (unsigned long long)d_frames_in,
		    (unsigned long long)d_frames_out, (unsigned long long)d_marks_in,
		    trouble[0] ? trouble : "none");
		if (restarts || pids_changed)
			printf("  WARNING: daemon workers restarted (%d restarts; pids "
			    "changed: %s)\n", restarts, pids_changed ? "yes" : "no");
		if (first_error[0])
			printf("  first error: %s\n", first_error);
		if (saturated)
			printf("  BOTTLENECK: %s -- the load generator, the fake "
			    "server or other work on the machine may have limited these "
			    "figures, not only the daemon\n", bneck);
		if (O.relay)
			printf("  verdict: %s (first token p99 < %.0f ms, every turn "
			    "answered whole, every call established)\n",
			    pass ? "PASS" : "FAIL", O.max_p99_ms);
		else
		printf("  verdict: %s (p99 < %.0f ms, no frame lost, every call "
		    "established)\n", pass ? "PASS" : "FAIL", O.max_p99_ms);
	}

	json_t *j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:f,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:I}",
	    "label", O.label, "calls", O.calls, "workers", nworkers,
	    "gen_procs", O.procs, "fake_procs", (int)fake_procs,
	    "window_s", win_s,
	    "established", (json_int_t)T->established,
	    "failed", (json_int_t)failed,
	    "dropped", (json_int_t)T->dropped,
	    "frames_sent", (json_int_t)T->frames_sent,
	    "frames_received", (json_int_t)T->frames_recv,
	    "frames_lost", (json_int_t)T->frames_lost,
	    "frames_corrupt", (json_int_t)(T->frames_bad + T->frames_misrouted),
	    "rtt_samples", (json_int_t)T->rtt_win.count);
	json_object_set_new(j, "rtt_ms", json_pack("{s:f,s:f,s:f}", "p50", rtt50,
	    "p99", rtt99, "max", rttmax));
	json_object_set_new(j, "rtt_app_ms", json_pack("{s:f,s:f,s:f}", "p50",
	    hist_quantile(&T->rtt_app_win, 0.5) / 1000.0, "p99",
	    hist_quantile(&T->rtt_app_win, 0.99) / 1000.0, "max",
	    T->rtt_app_win.max / 1000.0));
	json_object_set_new(j, "gen_rx_lag_ms", json_pack("{s:f,s:f,s:f}", "p50",
	    hist_quantile(&T->rx_lag, 0.5) / 1000.0, "p99", rxlag99, "max",
	    T->rx_lag.max / 1000.0));
	json_object_set_new(j, "fake_lag_ms", json_pack("{s:f,s:f,s:f}", "p50",
	    hist_quantile(flw, 0.5) / 1000.0, "p99", fakelag99, "max",
	    flw->max / 1000.0));
	json_object_set_new(j, "rtt_before_window_ms", json_pack("{s:f,s:f}",
	    "p99", hist_quantile(&T->rtt_ramp, 0.99) / 1000.0,
	    "max", T->rtt_ramp.max / 1000.0));
	json_object_set_new(j, "setup_ms", json_pack("{s:f,s:f}",
	    "p50", hist_quantile(&T->setup, 0.5) / 1000.0,
	    "p99", hist_quantile(&T->setup, 0.99) / 1000.0));
	json_object_set_new(j, "relay_us", json_pack("{s:{s:f,s:f,s:f},"
	    "s:{s:f,s:f,s:f}}", "in", "p50", rin50, "p99", rin99, "max", rinmax,
	    "out", "p50", rout50, "p99", rout99, "max", routmax));
	json_object_set_new(j, "relay_window_us", json_pack("{s:{s:f,s:f,s:I},"
	    "s:{s:f,s:f,s:I}}", "in", "p50_le", fin(win_in50), "p99_le",
	    fin(win_in99), "count", (json_int_t)win_in_n, "out", "p50_le",
	    fin(win_out50), "p99_le", fin(win_out99), "count",
	    (json_int_t)win_out_n));
	json_object_set_new(j, "daemon_cpu_s", json_real(d_cpu));
	json_object_set_new(j, "daemon_cpu_pct", json_real(d_cpu / win_s * 100));
	json_object_set_new(j, "daemon_cpu_ms_per_call_s",
	    json_real(d_cpu * per_cs));
	json_object_set_new(j, "daemon_kernel_ms_per_call_s",
	    json_real((double)(ds1 - ds0) / tck * per_cs));
	json_object_set_new(j, "daemon_syscalls_per_call_s", json_pack(
	    "{s:f,s:f,s:f,s:f}", "read", (double)(sc1.rd - sc0.rd) / callsec,
	    "write", (double)(sc1.wr - sc0.wr) / callsec, "voluntary_cs",
	    (double)(sc1.vcs - sc0.vcs) / callsec, "involuntary_cs",
	    (double)(sc1.ivcs - sc0.ivcs) / callsec));
	json_object_set_new(j, "daemon_runq_wait_ms_per_s", json_real(
	    (double)(wt1.wait_ns - wt0.wait_ns) / 1e6 / win_s));
	json_object_set_new(j, "daemon_runq_wait_us_per_slice", json_real(
	    wt1.slices > wt0.slices ? (double)(wt1.wait_ns - wt0.wait_ns) / 1e3 /
	    (double)(wt1.slices - wt0.slices) : 0));
	json_object_set_new(j, "call_seconds", json_real(T->call_seconds));
	json_object_set_new(j, "master_cpu_s", json_real((double)(m1 - m0) / tck));
	json_object_set_new(j, "calls_per_worker", json_string(spread));
	json_object_set_new(j, "daemon_rss_kib", json_pack("{s:I,s:I,s:f}",
	    "idle", (json_int_t)idle.rss, "load", (json_int_t)load.rss,
	    "per_call", rss_pc));
	json_object_set_new(j, "daemon_pss_kib", json_pack("{s:I,s:I,s:f}",
	    "idle", (json_int_t)idle.pss, "load", (json_int_t)load.pss,
	    "per_call", pss_pc));
	json_object_set_new(j, "gen_cpu_pct", json_real(gen_pct));
	json_object_set_new(j, "gen_cpu_ms_per_call_s",
	    json_real(g_cpu * per_cs));
	json_object_set_new(j, "fake_cpu_pct", json_real(fake_pct));
	json_object_set_new(j, "fake_cpu_ms_per_call_s",
	    json_real(f_cpu * per_cs));
	json_object_set_new(j, "drift_ms", json_pack("{s:f,s:f}", "p99", late99,
	    "max", latemax));
	json_object_set_new(j, "machine_busy_pct", json_real(sys_busy * 100));
	json_object_set_new(j, "other_cpu_pct", json_real(other_cores * 100));
	json_object_set_new(j, "steal_pct", json_real(steal_pct));
	json_object_set_new(j, "setup_s", json_real(setup_s));
	json_object_set_new(j, "all_flowing", json_boolean(all_flowing));
	json_object_set_new(j, "setup_cpu_ms_per_call", json_real(T->attempted ?
	    setup_cpu * 1000 / (double)T->attempted : 0));
	json_object_set_new(j, "worker_restarts", json_integer(restarts));
	json_object_set_new(j, "daemon_trouble", json_string(trouble));
	json_object_set_new(j, "first_error", json_string(first_error));
	json_object_set_new(j, "bottleneck", json_string(bneck));
	if (O.relay)
		json_object_set_new(j, "relay", json_pack("{s:I,s:I,s:I,s:I,s:I,"
		    "s:I,s:I,s:I,s:f,s:{s:f,s:f,s:f,s:I},s:{s:f,s:f,s:f,s:I},"
		    "s:{s:f,s:f},s:{s:f,s:f},s:{s:f,s:f},s:{s:f,s:f,s:I},s:{s:f,s:f},s:I,s:I,s:I}",
		    "turns_sent", (json_int_t)T->turns_sent,
		    "turns_done", (json_int_t)T->turns_done,
		    "turns_bad", (json_int_t)T->turns_bad,
		    "turns_cut", (json_int_t)T->turns_cut,
		    "turns_lost", (json_int_t)T->turns_lost,
		    "tokens", (json_int_t)T->tokens_in,
		    "tokens_after_interrupt", (json_int_t)T->tokens_late,
		    "ends", (json_int_t)T->ends,
		    "every_s", O.every,
		    "first_token_ms", "p50", ftl50, "p99", ftl99, "max",
		    T->ftl_win.max / 1000.0, "count", (json_int_t)T->ftl_win.count,
		    "added_us", "p50", add50, "p99", add99, "max",
		    (double)T->added_win.max, "count",
		    (json_int_t)T->added_win.count,
		    "added_in_us", "p50", (double)hist_quantile(&T->leg_in, 0.5),
		    "p99", (double)hist_quantile(&T->leg_in, 0.99),
		    "added_out_us", "p50", (double)hist_quantile(&T->leg_out, 0.5),
		    "p99", (double)hist_quantile(&T->leg_out, 0.99),
		    "turn_ms", "p50", turn50, "p99", turn99,
		    "daemon_response_us", "p50_le", fin(win_resp50), "p99_le",
		    fin(win_resp99), "count", (json_int_t)win_resp_n,
		    "fake_lag_us", "p50", (double)hist_quantile(flw, 0.5), "p99",
		    (double)hist_quantile(flw, 0.99),
		    "daemon_prompts", (json_int_t)d_prompts,
		    "daemon_tokens", (json_int_t)d_tokens,
		    "daemon_interrupts", (json_int_t)d_interrupts));
	json_object_set_new(j, "pass", json_boolean(pass));
	char *line = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
	printf("BENCH_JSON %s\n", line ? line : "{}");
	fflush(stdout);
	free(line);
	json_decref(j);
	json_decref(h1);
	free(T);
	free(fl0);
	free(fl1);
	free(flw);
	return 0;
}
