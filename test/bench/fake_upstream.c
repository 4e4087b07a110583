/*
 * fake_upstream.c — a fast fake OpenAI Realtime server for `make bench`:
 * echo mode, and text answers for text sessions (protocols.md §8).
 *
 *   fake_upstream [-b ADDR] [-p PORT] [-j PROCS] [-c CERT -k KEY]
 *                 [-P PORT_FILE] [-i PID_FILE] [-C own|proto] [-t N] [-w MS]
 *
 * Per connection: the WebSocket upgrade (Authorization: Bearer required,
 * else 401 with OpenAI's error shape), session.created, session.updated for
 * every session.update, and for every input_audio_buffer.append one
 * response.output_audio.delta carrying the same base64 (a response.created
 * goes first, once).  Pings are answered, a close is echoed.  With -t N,
 * every N appends of a connection also bring a final caller transcript and
 * a final assistant transcript (a line each for the call records: `make
 * bench`'s records run).
 *
 * A session.update asking for text output only (a ConversationRelay call)
 * makes the connection a text session: each response.create is answered as
 * the API does, with the words of bench_common.h as output_text deltas,
 * one every -w MS (all at once without -w), the first stamped with the
 * response.create's arrival and its own write; response.cancel ends the
 * answer early, and conversation.item.create and .delete are answered.
 *
 * PROCS worker processes each listen on the same port with SO_REUSEPORT, so
 * the kernel spreads the connections; the parent only supervises.  With -c
 * and -k the workers speak TLS (mbedTLS, fed from memory).  -C proto frames
 * with the project's own codec (proto/ws.c over wslay) instead of the small
 * one in bench_common.c, to compare their cost; -T N compares the two in
 * memory and exits.
 *
 * The port file is written once every worker listens; the pid file holds
 * the parent's pid and then each worker's, one a line.  -S FILE keeps, per
 * worker, counters and a histogram of the lag from an append's arrival in
 * the socket (the kernel's receive timestamp) to its echo being written,
 * in a file the load generator maps: the fake's own share of a round trip.
 *
 * Sockets are plain non-blocking descriptors under uv_poll (recvmsg for the
 * timestamps, write(2) for the rest); no libuv streams.
 */
#include "test/bench/bench_common.h"
#include "proto/buf.h"
#include "proto/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#define MAX_PROCS	64
#define READ_BUF	(256 * 1024)
#define MAX_HEAD	16384
#define MAX_MSG		(4u << 20)
#define OUT_MAX		(64u << 20)

/* Append a string literal at p + k. */
#define PUT_LIT(p, k, lit) \
	do { memcpy((p) + (k), lit, sizeof(lit) - 1); (k) += sizeof(lit) - 1; } while (0)

enum { ST_TLS, ST_HTTP, ST_OPEN, ST_CLOSING, ST_CLOSED };

struct conn {
	uv_poll_t		 poll;
	int			 fd;
	int			 events;	/* what poll watches */
	int			 state;
	uint64_t		 id;
	struct buf		 in;	/* plaintext not parsed yet */
	struct buf		 out;	/* bytes for the socket */
	struct buf		 pout;	/* plaintext to encrypt (TLS) */
	struct buf		 tin;	/* ciphertext read (TLS) */
	struct buf		 frag;	/* a fragmented message */
	int			 frag_op;
	mbedtls_ssl_context	*ssl;
	struct ws_codec		*ws;	/* -C proto */
	int			 responded;
	uint64_t		 nev;
	uint64_t		 nappends;
	char			 ids[24];	/* per-connection id stem */
	/* a text session (a ConversationRelay call): the daemon asked for
	 * output_modalities ["text"] */
	int			 text_only;
	uint64_t		 nresp, nitems;
	char			 last_item[40];	/* the conversation's last item */
	struct {
		int		 active;
		int		 word;		/* the next word to send */
		int		 talking;	/* index in S.talking, or -1 */
		uint64_t	 due;		/* when it is due (ns) */
		uint64_t	 rx;		/* arrival of its response.create */
		char		 rid[40], iid[40], prev[40];
		char		 said[256];	/* the text sent so far */
		size_t		 nsaid;
	} rp;
};

static struct {
	const char	*addr;
	int		 port;
	int		 procs;
	const char	*cert, *key;
	const char	*port_file, *pid_file;
	int		 proto_codec;
	int		 transcript_every;	/* -t: appends a line, 0 none */
	int		 delta_ms;	/* -w: ms between a text reply's deltas */
	uv_timer_t	 tick;		/* paces the text replies (-w) */
	struct conn	**talking;	/* connections with a reply under way */
	size_t		 ntalking, ctalking;
	int		 slot;
	uint64_t	 seed;
	uv_loop_t	*loop;
	int		 lfd;
	uv_poll_t	 listener;
	int64_t		 clock_off;	/* CLOCK_REALTIME - CLOCK_MONOTONIC */
	const char	*stats_file;
	struct fake_wstats *ws;		/* this worker's slot of the stats file */
	uint64_t	 rx_ns;		/* kernel arrival of what is being read */
	uint64_t	 now_ns;	/* when it was read */
	uv_signal_t	 sigterm, sigint;
	/* TLS */
	int			 tls;
	mbedtls_ssl_config	 sconf;
	mbedtls_x509_crt	 crt;
	mbedtls_pk_context	 pk;
	mbedtls_entropy_context	 entropy;
	mbedtls_ctr_drbg_context drbg;
	/* counters */
	uint64_t	 conns, live, upgrades, refused, tls_fail, proto_err;
	uint64_t	 appends, deltas, updates, other, pings;
	uint64_t	 responses, cancels, items;
	uint64_t	 bytes_in, bytes_out;
} S;

static uint8_t rbuf[READ_BUF];
static uint8_t pbuf[READ_BUF];	/* TLS plaintext */
static char scratch[MAX_MSG + 1024];

static void conn_flush(struct conn *c);
static void conn_close(struct conn *c);
static int on_message(struct conn *c, const uint8_t *m, size_t n);

/* ---------------------------------------------------------------- */
/* ids that look like OpenAI's: prefix_ + 21 alphanumerics */

static const char alnum[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static size_t
put_id(char *out, const char *prefix, const char *stem, uint64_t n)
{
	size_t p = strlen(prefix);

	memcpy(out, prefix, p);
	memcpy(out + p, stem, 13);
	p += 13;
	for (int i = 7; i >= 0; i--) {
		out[p + (size_t)i] = alnum[n % 62];
		n /= 62;
	}
	return p + 8;
}

/* ---------------------------------------------------------------- */
/* output */

static struct buf *
frame_buf(struct conn *c)
{
	return S.tls ? &c->pout : &c->out;
}

static void
send_frame(struct conn *c, int opcode, const void *p, size_t n)
{
	if (c->ws != NULL) {
		if (ws_codec_send(c->ws, opcode, p, n) != WS_OK)
			conn_close(c);
		return;
	}
	if (bws_put(frame_buf(c), opcode, p, n, NULL) != 0)
		conn_close(c);
}

static void
send_text(struct conn *c, const char *p, size_t n)
{
	send_frame(c, BWS_TEXT, p, n);
}

static size_t
event_id(struct conn *c, char *out)
{
	return put_id(out, "event_", c->ids, ++c->nev);
}

static const char session_tail_created[] =
    "\"model\":\"gpt-realtime\",\"output_modalities\":[\"audio\"],"
    "\"instructions\":\"Echo.\",\"tools\":[],\"tool_choice\":\"auto\","
    "\"max_output_tokens\":\"inf\",\"tracing\":null,\"truncation\":\"auto\","
    "\"prompt\":null,\"include\":null,\"audio\":{\"input\":{\"format\":"
    "{\"type\":\"audio/pcm\",\"rate\":24000},\"transcription\":null,"
    "\"noise_reduction\":null,\"turn_detection\":{\"type\":\"server_vad\","
    "\"threshold\":0.5,\"prefix_padding_ms\":300,\"silence_duration_ms\":500,"
    "\"idle_timeout_ms\":null,\"create_response\":true,"
    "\"interrupt_response\":true}},\"output\":{\"format\":{\"type\":"
    "\"audio/pcm\",\"rate\":24000},\"voice\":\"alloy\",\"speed\":1.0}}}}";

static const char session_tail_updated[] =
    "\"model\":\"gpt-realtime\",\"output_modalities\":[\"audio\"],"
    "\"instructions\":\"Echo.\",\"tools\":[],\"tool_choice\":\"auto\","
    "\"max_output_tokens\":\"inf\",\"tracing\":null,\"truncation\":\"auto\","
    "\"prompt\":null,\"include\":null,\"audio\":{\"input\":{\"format\":"
    "{\"type\":\"audio/pcmu\"},\"transcription\":null,"
    "\"noise_reduction\":null,\"turn_detection\":{\"type\":\"server_vad\","
    "\"threshold\":0.5,\"prefix_padding_ms\":300,\"silence_duration_ms\":500,"
    "\"idle_timeout_ms\":null,\"create_response\":true,"
    "\"interrupt_response\":true}},\"output\":{\"format\":{\"type\":"
    "\"audio/pcmu\"},\"voice\":\"marin\",\"speed\":1.0}}}}";

static void
send_session(struct conn *c, int updated)
{
	char *p = scratch;
	size_t n = 0, l;
	char eid[40], sid[40];
	int k;

	l = event_id(c, eid);
	eid[l] = '\0';
	l = put_id(sid, "sess_", c->ids, 0);
	sid[l] = '\0';
	k = snprintf(p, 512, "{\"type\":\"session.%s\",\"event_id\":\"%s\","
	    "\"session\":{\"type\":\"realtime\",\"object\":\"realtime.session\","
	    "\"id\":\"%s\",\"expires_at\":%lld,", updated ? "updated" : "created",
	    eid, sid, (long long)time(NULL) + 3600);
	n = (size_t)k;
	l = updated ? sizeof(session_tail_updated) - 1 :
	    sizeof(session_tail_created) - 1;
	memcpy(p + n, updated ? session_tail_updated : session_tail_created, l);
	n += l;
	send_text(c, p, n);
}

static void
send_response_created(struct conn *c)
{
	char eid[40], rid[40], cid[40];
	size_t l;
	int n;

	l = event_id(c, eid);
	eid[l] = '\0';
	l = put_id(rid, "resp_", c->ids, 1);
	rid[l] = '\0';
	l = put_id(cid, "conv_", c->ids, 1);
	cid[l] = '\0';
	n = snprintf(scratch, 1024, "{\"type\":\"response.created\",\"event_id\":"
	    "\"%s\",\"response\":{\"object\":\"realtime.response\",\"id\":\"%s\","
	    "\"status\":\"in_progress\",\"status_details\":null,"
	    "\"conversation_id\":\"%s\",\"output\":[],\"usage\":null,"
	    "\"metadata\":null,\"output_modalities\":[\"audio\"],"
	    "\"max_output_tokens\":\"inf\",\"audio\":{\"output\":{\"format\":"
	    "{\"type\":\"audio/pcmu\"},\"voice\":\"marin\"}}}}", eid, rid, cid);
	send_text(c, scratch, (size_t)n);
}

static const char delta_head[] =
    "{\"type\":\"response.output_audio.delta\",\"event_id\":\"";

/* One delta with the caller's base64 as it came. */
static void
echo_audio(struct conn *c, const uint8_t *audio, size_t alen)
{
	char *p = scratch;
	size_t n;

	if (alen > MAX_MSG)
		return;
	if (!c->responded) {
		c->responded = 1;
		send_response_created(c);
	}
	memcpy(p, delta_head, sizeof(delta_head) - 1);
	n = sizeof(delta_head) - 1;
	n += event_id(c, p + n);
	PUT_LIT(p, n, "\",\"response_id\":\"");
	n += put_id(p + n, "resp_", c->ids, 1);
	PUT_LIT(p, n, "\",\"item_id\":\"");
	n += put_id(p + n, "item_", c->ids, 1);
	PUT_LIT(p, n, "\",\"output_index\":0,\"content_index\":0,\"delta\":\"");
	memcpy(p + n, audio, alen);
	n += alen;
	p[n++] = '"';
	p[n++] = '}';
	send_text(c, p, n);
	S.deltas++;
	if (S.ws != NULL) {
		S.ws->deltas++;
		if (S.rx_ns != 0 && S.now_ns >= S.rx_ns)
			hist_add(&S.ws->lag, (S.now_ns - S.rx_ns) / 1000);
	}
}

/* ---------------------------------------------------------------- */
/* input: events */

/* The value of "key":"..." in m (no escapes inside: ours never have any). */
static const uint8_t *
str_field(const uint8_t *m, size_t n, const char *key, size_t *vlen)
{
	size_t kl = strlen(key);
	const uint8_t *p = m, *end = m + n, *q;

	while ((q = memmem(p, (size_t)(end - p), key, kl)) != NULL) {
		q += kl;
		while (q < end && (*q == ' ' || *q == ':'))
			q++;
		if (q < end && *q == '"') {
			const uint8_t *v = q + 1, *e;
			e = memchr(v, '"', (size_t)(end - v));
			if (e == NULL)
				return NULL;
			*vlen = (size_t)(e - v);
			return v;
		}
		p = q;
	}
	return NULL;
}

/* Every -t appends: what the caller said and what the model said. */
static void
maybe_transcripts(struct conn *c)
{
	char eid[40], iid[40], rid[40];
	size_t l;
	int n;

	if (S.transcript_every <= 0 ||
	    ++c->nappends % (uint64_t)S.transcript_every != 0)
		return;
	l = event_id(c, eid);
	eid[l] = '\0';
	l = put_id(iid, "item_", c->ids, c->nappends);
	iid[l] = '\0';
	n = snprintf(scratch, 1024, "{\"type\":\"conversation.item.input_audio_"
	    "transcription.completed\",\"event_id\":\"%s\",\"item_id\":\"%s\","
	    "\"content_index\":0,\"transcript\":\"I would like to hear more "
	    "about the offer, line %llu.\"}", eid, iid,
	    (unsigned long long)c->nappends);
	send_text(c, scratch, (size_t)n);
	l = event_id(c, eid);
	eid[l] = '\0';
	l = put_id(rid, "resp_", c->ids, 1);
	rid[l] = '\0';
	n = snprintf(scratch, 1024, "{\"type\":\"response.output_audio_"
	    "transcript.done\",\"event_id\":\"%s\",\"response_id\":\"%s\","
	    "\"item_id\":\"%s\",\"output_index\":0,\"content_index\":0,"
	    "\"transcript\":\"Of course. It includes a year of service and "
	    "free installation.\"}", eid, rid, iid);
	send_text(c, scratch, (size_t)n);
}

/* ---------------------------------------------------------------- */
/* text sessions: ConversationRelay calls (the daemon's leg_crelay.c) */

/* A NUL-terminated id: prefix, the connection's stem, n. */
static const char *
mk_id(char *out, const char *prefix, const struct conn *c, uint64_t n)
{
	out[put_id(out, prefix, c->ids, n)] = '\0';
	return out;
}

static const char *
mk_eid(struct conn *c, char *out)
{
	out[event_id(c, out)] = '\0';
	return out;
}

/* "previous_item_id":"..." or null */
static const char *
prev_json(const char *prev, char *out, size_t cap)
{
	if (prev[0] == '\0')
		snprintf(out, cap, "null");
	else
		snprintf(out, cap, "\"%s\"", prev);
	return out;
}

/* An item: a message of role, with one part (kind, text) or none. */
static int
item_json(char *out, size_t cap, const char *iid, const char *role,
    const char *status, const char *kind, const char *text)
{
	if (kind == NULL)
		return snprintf(out, cap, "{\"id\":\"%s\",\"object\":"
		    "\"realtime.item\",\"type\":\"message\",\"status\":\"%s\","
		    "\"role\":\"%s\",\"content\":[]}", iid, status, role);
	return snprintf(out, cap, "{\"id\":\"%s\",\"object\":\"realtime.item\","
	    "\"type\":\"message\",\"status\":\"%s\",\"role\":\"%s\",\"content\":"
	    "[{\"type\":\"%s\",\"text\":\"%s\"}]}", iid, status, role, kind, text);
}

static void
send_error(struct conn *c, const char *code, const char *msg)
{
	char eid[40];
	int n;

	n = snprintf(scratch, 1024, "{\"type\":\"error\",\"event_id\":\"%s\","
	    "\"error\":{\"type\":\"invalid_request_error\",\"code\":\"%s\","
	    "\"message\":\"%s\",\"param\":null,\"event_id\":null}}",
	    mk_eid(c, eid), code, msg);
	send_text(c, scratch, (size_t)n);
}

/* A client's conversation.item.create: the item joins the conversation. */
static void
text_item_created(struct conn *c, const uint8_t *m, size_t n)
{
	char eid[40], iid[40], prev[48], role[16] = "user", item[512];
	const uint8_t *r;
	size_t rl;
	int k;

	if ((r = str_field(m, n, "\"role\"", &rl)) != NULL && rl < sizeof(role)) {
		memcpy(role, r, rl);
		role[rl] = '\0';
	}
	mk_id(iid, "item_", c, ++c->nitems);
	prev_json(c->last_item, prev, sizeof(prev));
	item_json(item, sizeof(item), iid, role, "completed", NULL, NULL);
	k = snprintf(scratch, 2048, "{\"type\":\"conversation.item.added\","
	    "\"event_id\":\"%s\",\"previous_item_id\":%s,\"item\":%s}",
	    mk_eid(c, eid), prev, item);
	send_text(c, scratch, (size_t)k);
	k = snprintf(scratch, 2048, "{\"type\":\"conversation.item.done\","
	    "\"event_id\":\"%s\",\"previous_item_id\":%s,\"item\":%s}",
	    mk_eid(c, eid), prev, item);
	send_text(c, scratch, (size_t)k);
	snprintf(c->last_item, sizeof(c->last_item), "%s", iid);
	S.items++;
}

static void
text_item_deleted(struct conn *c, const uint8_t *m, size_t n)
{
	char eid[40];
	const uint8_t *v;
	size_t vl;
	int k;

	if ((v = str_field(m, n, "\"item_id\"", &vl)) == NULL || vl > 64) {
		send_error(c, "invalid_value", "Missing item_id.");
		return;
	}
	k = snprintf(scratch, 1024, "{\"type\":\"conversation.item.deleted\","
	    "\"event_id\":\"%s\",\"item_id\":\"%.*s\"}", mk_eid(c, eid),
	    (int)vl, (const char *)v);
	send_text(c, scratch, (size_t)k);
}

static void
talking_remove(struct conn *c)
{
	int i = c->rp.talking;

	if (i < 0)
		return;
	S.talking[i] = S.talking[--S.ntalking];
	S.talking[i]->rp.talking = i;
	c->rp.talking = -1;
}

static void
talking_add(struct conn *c)
{
	if (S.ntalking == S.ctalking) {
		size_t nc = S.ctalking ? S.ctalking * 2 : 256;
		struct conn **nv = realloc(S.talking, nc * sizeof(*nv));
		if (nv == NULL)
			abort();
		S.talking = nv;
		S.ctalking = nc;
	}
	c->rp.talking = (int)S.ntalking;
	S.talking[S.ntalking++] = c;
}

/* The reply's next word as an output_text delta; the first carries the
 * stamps of bench_common.h. */
static void
text_delta(struct conn *c)
{
	char eid[40], word[96];
	const char *w = bench_reply_words[c->rp.word];
	int last = c->rp.word == BENCH_REPLY_NWORDS - 1, k;
	uint64_t now = bench_now_ns();

	if (c->rp.word == 0)
		snprintf(word, sizeof(word), "@%llu,%llu@%s ",
		    (unsigned long long)c->rp.rx, (unsigned long long)now, w);
	else
		snprintf(word, sizeof(word), "%s%s", w, last ? "" : " ");
	k = snprintf(scratch, 1024, "{\"type\":\"response.output_text.delta\","
	    "\"event_id\":\"%s\",\"response_id\":\"%s\",\"item_id\":\"%s\","
	    "\"output_index\":0,\"content_index\":0,\"delta\":\"%s\"}",
	    mk_eid(c, eid), c->rp.rid, c->rp.iid, word);
	send_text(c, scratch, (size_t)k);
	if (c->rp.nsaid + strlen(word) < sizeof(c->rp.said)) {
		memcpy(c->rp.said + c->rp.nsaid, word, strlen(word) + 1);
		c->rp.nsaid += strlen(word);
	}
	if (c->rp.word == 0 && S.ws != NULL) {
		S.ws->responses++;
		if (c->rp.rx != 0 && now >= c->rp.rx)
			hist_add(&S.ws->lag, (now - c->rp.rx) / 1000);
	}
	c->rp.word++;
	S.deltas++;
	if (S.ws != NULL)
		S.ws->deltas++;
}

/* The end of the reply: every word said, or cancelled. */
static void
text_done(struct conn *c, int cancelled)
{
	char eid[40], prev[48], item[512], cid[40];
	const char *status = cancelled ? "incomplete" : "completed";
	char ids[160];
	int k, words = c->rp.word;

	snprintf(ids, sizeof(ids), "\"response_id\":\"%s\",\"item_id\":\"%s\","
	    "\"output_index\":0,\"content_index\":0", c->rp.rid, c->rp.iid);
	k = snprintf(scratch, 2048, "{\"type\":\"response.output_text.done\","
	    "\"event_id\":\"%s\",%s,\"text\":\"%s\"}", mk_eid(c, eid), ids,
	    c->rp.said);
	send_text(c, scratch, (size_t)k);
	k = snprintf(scratch, 2048, "{\"type\":\"response.content_part.done\","
	    "\"event_id\":\"%s\",%s,\"part\":{\"type\":\"output_text\","
	    "\"text\":\"%s\"}}", mk_eid(c, eid), ids, c->rp.said);
	send_text(c, scratch, (size_t)k);
	item_json(item, sizeof(item), c->rp.iid, "assistant", status,
	    "output_text", c->rp.said);
	k = snprintf(scratch, 2048, "{\"type\":\"response.output_item.done\","
	    "\"event_id\":\"%s\",\"response_id\":\"%s\",\"output_index\":0,"
	    "\"item\":%s}", mk_eid(c, eid), c->rp.rid, item);
	send_text(c, scratch, (size_t)k);
	k = snprintf(scratch, 2048, "{\"type\":\"conversation.item.done\","
	    "\"event_id\":\"%s\",\"previous_item_id\":%s,\"item\":%s}",
	    mk_eid(c, eid), prev_json(c->rp.prev, prev, sizeof(prev)), item);
	send_text(c, scratch, (size_t)k);
	k = snprintf(scratch, 4096, "{\"type\":\"response.done\",\"event_id\":"
	    "\"%s\",\"response\":{\"object\":\"realtime.response\",\"id\":\"%s\","
	    "\"status\":\"%s\",\"status_details\":%s,\"conversation_id\":\"%s\","
	    "\"output\":[%s],\"usage\":{\"total_tokens\":%d,\"input_tokens\":%d,"
	    "\"output_tokens\":%d,\"input_token_details\":{\"text_tokens\":%d,"
	    "\"audio_tokens\":0,\"image_tokens\":0,\"cached_tokens\":0,"
	    "\"cached_tokens_details\":{\"text_tokens\":0,\"audio_tokens\":0,"
	    "\"image_tokens\":0}},\"output_token_details\":{\"text_tokens\":%d,"
	    "\"audio_tokens\":0}},\"metadata\":null,\"output_modalities\":"
	    "[\"text\"],\"max_output_tokens\":\"inf\"}}", mk_eid(c, eid),
	    c->rp.rid, cancelled ? "cancelled" : "completed", cancelled ?
	    "{\"type\":\"cancelled\",\"reason\":\"client_cancelled\"}" : "null",
	    mk_id(cid, "conv_", c, 1), item, 200 + 12 * (int)c->nitems + words,
	    200 + 12 * (int)c->nitems, words, 200 + 12 * (int)c->nitems, words);
	send_text(c, scratch, (size_t)k);
	c->rp.active = 0;
	talking_remove(c);
}

/* A response.create of a text session: the reply's head and first delta
 * now, the other words now too (-w 0) or one every -w ms. */
static void
text_reply(struct conn *c)
{
	char eid[40], cid[40], prev[48], item[512];
	int k;

	if (c->rp.active) {
		send_error(c, "conversation_already_has_active_response",
		    "Conversation already has an active response in progress.");
		return;
	}
	S.responses++;
	c->rp.active = 1;
	c->rp.word = 0;
	c->rp.nsaid = 0;
	c->rp.said[0] = '\0';
	c->rp.rx = S.rx_ns;
	mk_id(c->rp.rid, "resp_", c, ++c->nresp);
	mk_id(c->rp.iid, "item_", c, ++c->nitems);
	snprintf(c->rp.prev, sizeof(c->rp.prev), "%s", c->last_item);
	snprintf(c->last_item, sizeof(c->last_item), "%s", c->rp.iid);
	k = snprintf(scratch, 2048, "{\"type\":\"response.created\",\"event_id\":"
	    "\"%s\",\"response\":{\"object\":\"realtime.response\",\"id\":\"%s\","
	    "\"status\":\"in_progress\",\"status_details\":null,"
	    "\"conversation_id\":\"%s\",\"output\":[],\"usage\":null,"
	    "\"metadata\":null,\"output_modalities\":[\"text\"],"
	    "\"max_output_tokens\":\"inf\"}}", mk_eid(c, eid), c->rp.rid,
	    mk_id(cid, "conv_", c, 1));
	send_text(c, scratch, (size_t)k);
	item_json(item, sizeof(item), c->rp.iid, "assistant", "in_progress",
	    NULL, NULL);
	k = snprintf(scratch, 2048, "{\"type\":\"response.output_item.added\","
	    "\"event_id\":\"%s\",\"response_id\":\"%s\",\"output_index\":0,"
	    "\"item\":%s}", mk_eid(c, eid), c->rp.rid, item);
	send_text(c, scratch, (size_t)k);
	k = snprintf(scratch, 2048, "{\"type\":\"conversation.item.added\","
	    "\"event_id\":\"%s\",\"previous_item_id\":%s,\"item\":%s}",
	    mk_eid(c, eid), prev_json(c->rp.prev, prev, sizeof(prev)), item);
	send_text(c, scratch, (size_t)k);
	k = snprintf(scratch, 2048, "{\"type\":\"response.content_part.added\","
	    "\"event_id\":\"%s\",\"response_id\":\"%s\",\"item_id\":\"%s\","
	    "\"output_index\":0,\"content_index\":0,\"part\":{\"type\":"
	    "\"output_text\",\"text\":\"\"}}", mk_eid(c, eid), c->rp.rid,
	    c->rp.iid);
	send_text(c, scratch, (size_t)k);
	text_delta(c);
	if (S.delta_ms <= 0) {
		while (c->rp.word < BENCH_REPLY_NWORDS)
			text_delta(c);
		text_done(c, 0);
		return;
	}
	c->rp.due = bench_now_ns() + (uint64_t)S.delta_ms * 1000000ULL;
	talking_add(c);
}

static void
text_cancel(struct conn *c)
{
	if (!c->rp.active) {
		send_error(c, "response_cancel_not_active",
		    "Cancellation failed: no active response found");
		return;
	}
	S.cancels++;
	if (S.ws != NULL)
		S.ws->cancels++;
	text_done(c, 1);
}

/* -w: every ms, the words that are due. */
static void
tick_cb(uv_timer_t *t)
{
	uint64_t now = bench_now_ns();

	for (size_t i = S.ntalking; i-- > 0; ) {
		struct conn *c = S.talking[i];
		if (c->state != ST_OPEN || !c->rp.active || c->rp.due > now)
			continue;
		while (c->rp.active && c->rp.due <= now) {
			text_delta(c);
			if (c->rp.word >= BENCH_REPLY_NWORDS)
				text_done(c, 0);
			else
				c->rp.due += (uint64_t)S.delta_ms * 1000000ULL;
		}
		conn_flush(c);
	}
}

/* in a session.update: GA output_modalities or beta modalities ["text"] */
static const char text_only_key[] = "odalities\":[\"text\"]";

static const char append_head[] =
    "{\"type\":\"input_audio_buffer.append\",\"audio\":\"";
#define APPEND_HEAD_LEN (sizeof(append_head) - 1)

static int
on_message(struct conn *c, const uint8_t *m, size_t n)
{
	const uint8_t *v;
	size_t vl;

	/* the daemon's exact append (proto/openai.c oa_build_append) */
	if (n >= APPEND_HEAD_LEN + 2 && memcmp(m, append_head,
	    APPEND_HEAD_LEN) == 0 && m[n - 2] == '"' && m[n - 1] == '}' &&
	    memchr(m + APPEND_HEAD_LEN, '"', n - APPEND_HEAD_LEN - 2) == NULL) {
		S.appends++;
		echo_audio(c, m + APPEND_HEAD_LEN, n - APPEND_HEAD_LEN - 2);
		maybe_transcripts(c);
		return 0;
	}
	v = str_field(m, n, "\"type\"", &vl);
	if (v == NULL) {
		S.other++;
		return 0;
	}
	if (vl == 14 && memcmp(v, "session.update", 14) == 0) {
		S.updates++;
		if (memmem(m, n, text_only_key, sizeof(text_only_key) - 1) != NULL)
			c->text_only = 1;
		send_session(c, 1);
	} else if (c->text_only && vl == 15 &&
	    memcmp(v, "response.create", 15) == 0)
		text_reply(c);
	else if (c->text_only && vl == 15 &&
	    memcmp(v, "response.cancel", 15) == 0)
		text_cancel(c);
	else if (c->text_only && vl == 24 &&
	    memcmp(v, "conversation.item.create", 24) == 0)
		text_item_created(c, m, n);
	else if (c->text_only && vl == 24 &&
	    memcmp(v, "conversation.item.delete", 24) == 0)
		text_item_deleted(c, m, n);
	else if (vl == 25 && memcmp(v, "input_audio_buffer.append", 25) == 0) {
		const uint8_t *a = str_field(m, n, "\"audio\"", &vl);
		S.appends++;
		if (a != NULL)
			echo_audio(c, a, vl);
		maybe_transcripts(c);
	} else
		S.other++;
	return 0;
}

static int
proto_msg_cb(void *arg, int opcode, const uint8_t *msg, size_t len)
{
	struct conn *c = arg;

	if (opcode != WSLAY_TEXT_FRAME)
		return 0;
	return on_message(c, msg, len);
}

/* ---------------------------------------------------------------- */
/* input: frames (own codec) */

static void
on_control(struct conn *c, int op, const uint8_t *p, size_t n)
{
	switch (op) {
	case BWS_PING:
		S.pings++;
		send_frame(c, BWS_PONG, p, n);
		break;
	case BWS_CLOSE:
		send_frame(c, BWS_CLOSE, p, n >= 2 ? 2 : 0);
		c->state = ST_CLOSING;
		break;
	default:
		break;
	}
}

/* Parse whole frames from p[0..n); returns the bytes used (all of them
 * once the connection takes no more frames), or -1. */
static long
parse_frames(struct conn *c, uint8_t *p, size_t n)
{
	struct bws_frame f;
	size_t off = 0;
	uint8_t *pl;
	int rc;

	while (off < n && c->state == ST_OPEN) {
		if ((rc = bws_next(p, n, &off, 1, MAX_MSG, &f, &pl)) < 0)
			return -1;
		if (rc == 0)
			break;
		size_t pn = (size_t)f.plen;
		if (f.opcode & 0x8) {
			on_control(c, f.opcode, pl, pn);
			continue;
		}
		if (f.opcode == BWS_CONT) {
			if (c->frag_op == 0 || buf_append(&c->frag, pl, pn) != 0)
				return -1;
			if (f.fin) {
				if (c->frag_op == BWS_TEXT)
					on_message(c, (uint8_t *)buf_head(&c->frag),
					    buf_pending(&c->frag));
				buf_consume(&c->frag, buf_pending(&c->frag));
				c->frag_op = 0;
			}
			continue;
		}
		if (c->frag_op != 0)
			return -1;
		if (!f.fin) {
			c->frag_op = f.opcode;
			if (buf_append(&c->frag, pl, pn) != 0)
				return -1;
			continue;
		}
		if (f.opcode == BWS_TEXT)
			on_message(c, pl, pn);
	}
	return c->state == ST_OPEN ? (long)off : (long)n;
}

static void
ws_input(struct conn *c, uint8_t *p, size_t n)
{
	uint8_t *d;
	size_t dn;
	long used;

	if (c->ws != NULL) {
		int rc = ws_codec_feed(c->ws, p, n);
		if (rc < 0) {
			S.proto_err++;
			c->state = ST_CLOSING;
		} else if (rc == WS_CLOSED)
			c->state = ST_CLOSING;
		return;
	}
	if ((d = bws_input(&c->in, p, n, &dn)) == NULL) {
		conn_close(c);
		return;
	}
	if ((used = parse_frames(c, d, dn)) < 0) {
		S.proto_err++;
		send_frame(c, BWS_CLOSE, "\x03\xea", 2);	/* 1002 */
		c->state = ST_CLOSING;
		return;
	}
	if (bws_input_done(&c->in, d, dn, (size_t)used) != 0)
		conn_close(c);
}

/* ---------------------------------------------------------------- */
/* the upgrade */

/* Header value (trimmed) of name in head, or NULL; *vl its length. */
static const char *
header(const char *head, size_t n, const char *name, size_t *vl)
{
	size_t nl = strlen(name);
	const char *p = memchr(head, '\n', n), *end = head + n;

	while (p != NULL && p + 1 < end) {
		const char *line = p + 1, *eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - line) > nl && line[nl] == ':' &&
		    strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1, *e = eol;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			while (e > v && (e[-1] == '\r' || e[-1] == ' '))
				e--;
			*vl = (size_t)(e - v);
			return v;
		}
		p = eol;
	}
	return NULL;
}

static void
http_refuse(struct conn *c, int status, const char *text, const char *code,
    const char *msg)
{
	char body[512], resp[1024];
	int bl, n;

	bl = snprintf(body, sizeof(body), "{\"error\":{\"type\":"
	    "\"invalid_request_error\",\"code\":\"%s\",\"message\":\"%s\","
	    "\"param\":null,\"event_id\":null}}", code, msg);
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d %s\r\nContent-Type: "
	    "application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
	    status, text, bl, body);
	buf_append(frame_buf(c), resp, (size_t)n);
	S.refused++;
	c->state = ST_CLOSING;
}

static void
on_upgrade(struct conn *c, const char *head, size_t n)
{
	const char *key, *auth, *up;
	size_t kl, al, ul;
	char k[64], accept[29], resp[256];
	int rn;

	key = header(head, n, "Sec-WebSocket-Key", &kl);
	auth = header(head, n, "Authorization", &al);
	up = header(head, n, "Upgrade", &ul);
	if (n < 4 || memcmp(head, "GET ", 4) != 0 || key == NULL ||
	    kl >= sizeof(k) || up == NULL || ul != 9 ||
	    strncasecmp(up, "websocket", 9) != 0) {
		http_refuse(c, 400, "Bad Request", "bad_upgrade",
		    "A WebSocket upgrade was expected.");
		return;
	}
	if (auth == NULL || al <= 7 || strncasecmp(auth, "Bearer ", 7) != 0) {
		http_refuse(c, 401, "Unauthorized", "missing_api_key",
		    "Missing bearer authentication in header");
		return;
	}
	memcpy(k, key, kl);
	k[kl] = '\0';
	if (bws_accept(k, accept) != 0) {
		http_refuse(c, 400, "Bad Request", "bad_key", "Bad key.");
		return;
	}
	rn = snprintf(resp, sizeof(resp), "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
	buf_append(frame_buf(c), resp, (size_t)rn);
	c->state = ST_OPEN;
	S.upgrades++;
	if (S.proto_codec) {
		c->ws = calloc(1, sizeof(*c->ws));
		if (c->ws == NULL || ws_codec_init(c->ws, WS_SERVER, MAX_MSG,
		    frame_buf(c), proto_msg_cb, c, bench_rand(&S.seed)) != 0) {
			conn_close(c);
			return;
		}
	}
	send_session(c, 0);
}

static void
on_plain(struct conn *c, uint8_t *p, size_t n)
{
	if (c->state == ST_HTTP) {
		const char *h, *e;
		size_t hl;

		if (buf_append(&c->in, p, n) != 0 || buf_pending(&c->in) > MAX_HEAD) {
			conn_close(c);
			return;
		}
		h = buf_head(&c->in);
		e = memmem(h, buf_pending(&c->in), "\r\n\r\n", 4);
		if (e == NULL)
			return;
		hl = (size_t)(e - h) + 4;
		on_upgrade(c, h, hl);
		/* bytes after the head: the client does not send any before
		 * the 101, but accept them */
		size_t rest = buf_pending(&c->in) - hl;
		if (rest > 0 && c->state == ST_OPEN) {
			memmove(pbuf, h + hl, rest);
			buf_consume(&c->in, buf_pending(&c->in));
			ws_input(c, pbuf, rest);
		} else
			buf_consume(&c->in, buf_pending(&c->in));
		return;
	}
	if (c->state == ST_OPEN)
		ws_input(c, p, n);
}

/* ---------------------------------------------------------------- */
/* TLS */

static int
bio_send(void *arg, const unsigned char *p, size_t n)
{
	struct conn *c = arg;

	if (buf_append(&c->out, p, n) != 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	return (int)n;
}

static int
bio_recv(void *arg, unsigned char *p, size_t n)
{
	struct conn *c = arg;
	size_t have = buf_pending(&c->tin);

	if (have == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (n > have)
		n = have;
	memcpy(p, buf_head(&c->tin), n);
	buf_consume(&c->tin, n);
	return (int)n;
}

static int
tls_setup(char *err, size_t errlen)
{
	char pers[64];
	int rc;

	mbedtls_ssl_config_init(&S.sconf);
	mbedtls_x509_crt_init(&S.crt);
	mbedtls_pk_init(&S.pk);
	mbedtls_entropy_init(&S.entropy);
	mbedtls_ctr_drbg_init(&S.drbg);
	snprintf(pers, sizeof(pers), "fake_upstream %d %d", S.slot, (int)getpid());
	if ((rc = mbedtls_ctr_drbg_seed(&S.drbg, mbedtls_entropy_func, &S.entropy,
	    (const unsigned char *)pers, strlen(pers))) != 0 ||
	    (rc = mbedtls_x509_crt_parse_file(&S.crt, S.cert)) != 0 ||
	    (rc = mbedtls_pk_parse_keyfile(&S.pk, S.key, NULL)) != 0 ||
	    (rc = mbedtls_ssl_config_defaults(&S.sconf, MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
		mbedtls_strerror(rc, err, errlen);
		return -1;
	}
	mbedtls_ssl_conf_rng(&S.sconf, mbedtls_ctr_drbg_random, &S.drbg);
	if ((rc = mbedtls_ssl_conf_own_cert(&S.sconf, &S.crt, &S.pk)) != 0) {
		mbedtls_strerror(rc, err, errlen);
		return -1;
	}
	return 0;
}

/* Ciphertext arrived: handshake, then plaintext to on_plain. */
static void
tls_input(struct conn *c, const uint8_t *p, size_t n)
{
	int rc;

	if (buf_append(&c->tin, p, n) != 0) {
		conn_close(c);
		return;
	}
	if (c->state == ST_TLS) {
		rc = mbedtls_ssl_handshake(c->ssl);
		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			return;
		if (rc != 0) {
			S.tls_fail++;
			conn_close(c);
			return;
		}
		c->state = ST_HTTP;
	}
	for (;;) {
		rc = mbedtls_ssl_read(c->ssl, pbuf, sizeof(pbuf));
		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			break;
		if (rc <= 0) {
			c->state = ST_CLOSING;
			break;
		}
		on_plain(c, pbuf, (size_t)rc);
		if (c->state >= ST_CLOSED)
			return;
	}
}

/* ---------------------------------------------------------------- */
/* connections */

static void
conn_free_cb(uv_handle_t *h)
{
	struct conn *c = h->data;

	close(c->fd);
	if (c->ws != NULL) {
		ws_codec_free(c->ws);
		free(c->ws);
	}
	if (c->ssl != NULL) {
		mbedtls_ssl_free(c->ssl);
		free(c->ssl);
	}
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->pout);
	buf_free(&c->tin);
	buf_free(&c->frag);
	free(c);
}

static void
conn_close(struct conn *c)
{
	if (c->state == ST_CLOSED)
		return;
	c->state = ST_CLOSED;
	S.live--;
	talking_remove(c);
	uv_poll_stop(&c->poll);
	uv_close((uv_handle_t *)&c->poll, conn_free_cb);
}

static void conn_poll_cb(uv_poll_t *h, int status, int events);

static void
conn_watch(struct conn *c, int events)
{
	if (c->events != events && c->state != ST_CLOSED) {
		c->events = events;
		uv_poll_start(&c->poll, events, conn_poll_cb);
	}
}

/* Encrypt what is queued (TLS), then write what the socket takes; the
 * rest waits for it to be writable. */
static void
conn_flush(struct conn *c)
{
	if (c->state == ST_CLOSED)
		return;
	if (S.tls && c->state != ST_TLS && buf_pending(&c->pout) > 0) {
		while (buf_pending(&c->pout) > 0) {
			int w = mbedtls_ssl_write(c->ssl,
			    (const uint8_t *)buf_head(&c->pout), buf_pending(&c->pout));
			if (w <= 0) {
				conn_close(c);
				return;
			}
			buf_consume(&c->pout, (size_t)w);
		}
	}
	if (bench_write_out(c->fd, &c->out, &S.bytes_out) != 0) {
		conn_close(c);
		return;
	}
	if (buf_pending(&c->out) > 0) {
		conn_watch(c, UV_READABLE | UV_WRITABLE);
		return;
	}
	if (c->state == ST_CLOSING) {
		conn_close(c);
		return;
	}
	conn_watch(c, UV_READABLE);
}

static void
conn_poll_cb(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;
	long n;

	if (c->state == ST_CLOSED)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (events & UV_READABLE) {
		for (int i = 0; i < 16 && c->state != ST_CLOSED; i++) {
			n = bench_recv_ts(c->fd, rbuf, sizeof(rbuf), S.clock_off, &S.rx_ns);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n <= 0) {
				conn_close(c);
				return;
			}
			S.bytes_in += (uint64_t)n;
			S.now_ns = bench_now_ns();
			if (S.tls)
				tls_input(c, rbuf, (size_t)n);
			else
				on_plain(c, rbuf, (size_t)n);
			if ((size_t)n < sizeof(rbuf))
				break;
		}
	}
	conn_flush(c);
}

static void
on_accept(uv_poll_t *h, int status, int events)
{
	struct conn *c;
	int fd, one = 1;

	for (int i = 0; i < 64; i++) {
		fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			return;
		}
		c->fd = fd;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		bench_rx_timestamps(fd);
		S.conns++;
		S.live++;
		if (S.ws)
			S.ws->conns++;
		c->id = S.conns;
		c->rp.talking = -1;
		buf_init(&c->in, MAX_MSG + 64);
		buf_init(&c->out, OUT_MAX);
		buf_init(&c->pout, OUT_MAX);
		buf_init(&c->tin, OUT_MAX);
		buf_init(&c->frag, MAX_MSG);
		uint64_t r = bench_rand(&S.seed);
		for (int k = 0; k < 13; k++) {
			c->ids[k] = alnum[r % 62];
			r = r / 62 ^ (uint64_t)(k + 1) * 0x9E3779B97F4A7C15ULL;
		}
		uv_poll_init(S.loop, &c->poll, fd);
		c->poll.data = c;
		c->state = S.tls ? ST_TLS : ST_HTTP;
		if (S.tls) {
			c->ssl = calloc(1, sizeof(*c->ssl));
			if (c->ssl == NULL) {
				conn_close(c);
				continue;
			}
			mbedtls_ssl_init(c->ssl);
			if (mbedtls_ssl_setup(c->ssl, &S.sconf) != 0) {
				conn_close(c);
				continue;
			}
			mbedtls_ssl_set_bio(c->ssl, c, bio_send, bio_recv, NULL);
		}
		conn_watch(c, UV_READABLE);
	}
}

/* ---------------------------------------------------------------- */
/* processes */

static void
print_stats(void)
{
	fprintf(stderr, "fake_upstream[%d] pid %d: %llu connections (%llu open), "
	    "%llu upgrades, %llu refused, %llu TLS failures, %llu protocol "
	    "errors, %llu session.update, %llu appends, %llu deltas, %llu other, "
	    "%llu pings, %llu text responses (%llu cancelled), %llu items, "
	    "%llu bytes in, %llu out\n", S.slot, (int)getpid(),
	    (unsigned long long)S.conns, (unsigned long long)S.live,
	    (unsigned long long)S.upgrades, (unsigned long long)S.refused,
	    (unsigned long long)S.tls_fail, (unsigned long long)S.proto_err,
	    (unsigned long long)S.updates, (unsigned long long)S.appends,
	    (unsigned long long)S.deltas, (unsigned long long)S.other,
	    (unsigned long long)S.pings, (unsigned long long)S.responses,
	    (unsigned long long)S.cancels, (unsigned long long)S.items,
	    (unsigned long long)S.bytes_in,
	    (unsigned long long)S.bytes_out);
}

static void
on_signal(uv_signal_t *h, int sig)
{
	print_stats();
	exit(0);
}

static int
listen_socket(struct sockaddr_in *sa, int do_listen)
{
	int fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)sa, sizeof(*sa)) != 0 ||
	    (do_listen && listen(fd, 4096) != 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
child_main(int slot, struct sockaddr_in *sa, int ready_fd)
{
	char err[256];
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	S.slot = slot;
	S.seed = bench_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (S.tls && tls_setup(err, sizeof(err)) != 0) {
		fprintf(stderr, "fake_upstream: TLS: %s\n", err);
		_exit(1);
	}
	if ((fd = listen_socket(sa, 1)) < 0) {
		fprintf(stderr, "fake_upstream: listen: %s\n", strerror(errno));
		_exit(1);
	}
	S.loop = uv_default_loop();
	S.lfd = fd;
	S.clock_off = bench_clock_offset();
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
	    uv_poll_init(S.loop, &S.listener, fd) != 0 ||
	    uv_poll_start(&S.listener, UV_READABLE, on_accept) != 0) {
		fprintf(stderr, "fake_upstream: cannot listen\n");
		_exit(1);
	}
	if (S.stats_file != NULL) {
		int sfd = open(S.stats_file, O_RDWR | O_CLOEXEC);
		size_t sz = sizeof(struct fake_shared) +
		    sizeof(struct fake_wstats) * (size_t)S.procs;
		void *m = sfd < 0 ? MAP_FAILED : mmap(NULL, sz, PROT_READ |
		    PROT_WRITE, MAP_SHARED, sfd, 0);
		if (m == MAP_FAILED) {
			fprintf(stderr, "fake_upstream: %s: %s\n", S.stats_file,
			    strerror(errno));
			_exit(1);
		}
		close(sfd);
		S.ws = &((struct fake_shared *)m)->w[slot];
	}
	if (S.delta_ms > 0) {
		uv_timer_init(S.loop, &S.tick);
		uv_timer_start(&S.tick, tick_cb, 1, 1);
	}
	uv_signal_init(S.loop, &S.sigterm);
	uv_signal_start(&S.sigterm, on_signal, SIGTERM);
	uv_signal_init(S.loop, &S.sigint);
	uv_signal_start(&S.sigint, on_signal, SIGINT);
	if (write(ready_fd, "R", 1) != 1)
		_exit(1);
	close(ready_fd);
	uv_run(S.loop, UV_RUN_DEFAULT);
	print_stats();
	_exit(0);
}

/*
 * -T N: the two framings side by side, in memory: N appends as the daemon
 * frames them (masked, 216 base64 characters of audio) are parsed and each
 * is answered with its delta, in batches of 64 like a busy socket's reads.
 * CPU ns per append, both ways; no sockets, so only the framing and the
 * event handling differ.
 */
static double
codec_run(int proto, long n, const uint8_t *tmpl, size_t tlen, int per)
{
	struct conn *c = calloc(1, sizeof(*c));
	uint8_t *work = malloc(tlen);
	struct timespec a, b;
	long done = 0;

	if (c == NULL || work == NULL)
		exit(1);
	c->state = ST_OPEN;
	buf_init(&c->in, MAX_MSG + 64);
	buf_init(&c->out, 0);
	buf_init(&c->frag, MAX_MSG);
	memset(c->ids, 'x', sizeof(c->ids));
	if (proto) {
		c->ws = calloc(1, sizeof(*c->ws));
		ws_codec_init(c->ws, WS_SERVER, MAX_MSG, &c->out, proto_msg_cb, c, 1);
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	while (done < n) {
		memcpy(work, tmpl, tlen);	/* unmasking works in place */
		ws_input(c, work, tlen);
		buf_consume(&c->out, buf_pending(&c->out));
		done += per;
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	if (c->ws) {
		ws_codec_free(c->ws);
		free(c->ws);
	}
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->frag);
	free(c);
	free(work);
	return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec -
	    a.tv_nsec)) / (double)done;
}

static void
codec_selftest(long n)
{
	enum { PER = 64 };
	char msg[512], b64[220];
	uint8_t audio[160], *tmpl, mask[4];
	size_t ml, tl = 0;
	uint64_t seed = 42;

	for (int i = 0; i < 160; i++)
		audio[i] = (uint8_t)(i * 37 + 11);
	b64_encode(audio, 160, b64);
	ml = (size_t)snprintf(msg, sizeof(msg), "%s%s\"}", append_head, b64);
	tmpl = malloc(PER * (ml + BWS_MAX_HEADER));
	for (int i = 0; i < PER; i++) {
		uint64_t r = bench_rand(&seed);
		memcpy(mask, &r, 4);
		tl += bws_header(tmpl + tl, BWS_TEXT, ml, mask);
		memcpy(tmpl + tl, msg, ml);
		bws_mask(tmpl + tl, ml, mask);
		tl += ml;
	}
	codec_run(0, n / 10 + 1, tmpl, tl, PER);	/* warm up */
	double own = codec_run(0, n, tmpl, tl, PER);
	codec_run(1, n / 10 + 1, tmpl, tl, PER);
	double pro = codec_run(1, n, tmpl, tl, PER);
	printf("framing of %ld appends (%zu-byte messages) and their deltas, "
	    "CPU per append:\n  own (bench_common.c): %.0f ns\n  proto/ws.c "
	    "(its own reader, wslay writing): %.0f ns\n", n, ml, own, pro);
	free(tmpl);
}

static volatile sig_atomic_t got_signal;

static void
parent_signal(int sig)
{
	got_signal = sig;
}

static void
usage(void)
{
	fprintf(stderr, "usage: fake_upstream [-b ADDR] [-p PORT] [-j PROCS] "
	    "[-c CERT -k KEY] [-P PORT_FILE] [-i PID_FILE] [-C own|proto]\n"
	    "       [-S STATS_FILE] [-t APPENDS_PER_LINE] [-w DELTA_MS]\n"
	    "       fake_upstream -T N   (compare the two framings on N appends)\n");
	exit(2);
}

static int
write_file(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	pid_t pids[MAX_PROCS];
	int opt, fd0, pfd[2], ready = 0;
	char text[64 * (MAX_PROCS + 1)];
	size_t tl = 0;

	S.addr = "127.0.0.1";
	S.procs = 1;
	while ((opt = getopt(argc, argv, "b:p:j:c:k:P:i:C:T:S:t:w:h")) != -1) {
		switch (opt) {
		case 'b': S.addr = optarg; break;
		case 'p': S.port = atoi(optarg); break;
		case 'j': S.procs = atoi(optarg); break;
		case 'c': S.cert = optarg; break;
		case 'k': S.key = optarg; break;
		case 'P': S.port_file = optarg; break;
		case 'S': S.stats_file = optarg; break;
		case 't': S.transcript_every = atoi(optarg); break;
		case 'w': S.delta_ms = atoi(optarg); break;
		case 'T':
			codec_selftest(atol(optarg));
			return 0;
		case 'i': S.pid_file = optarg; break;
		case 'C':
			if (strcmp(optarg, "proto") == 0)
				S.proto_codec = 1;
			else if (strcmp(optarg, "own") != 0)
				usage();
			break;
		default: usage();
		}
	}
	if (S.procs < 1 || S.procs > MAX_PROCS || (!S.cert != !S.key))
		usage();
	S.tls = S.cert != NULL;
	bench_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (S.stats_file != NULL) {
		struct fake_shared hdr = { FAKE_STATS_MAGIC, (uint32_t)S.procs };
		size_t sz = sizeof(struct fake_shared) +
		    sizeof(struct fake_wstats) * (size_t)S.procs;
		int sfd = open(S.stats_file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0644);
		if (sfd < 0 || ftruncate(sfd, (off_t)sz) != 0 ||
		    pwrite(sfd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
			fprintf(stderr, "fake_upstream: %s: %s\n", S.stats_file,
			    strerror(errno));
			return 1;
		}
		close(sfd);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)S.port);
	if (inet_pton(AF_INET, S.addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "fake_upstream: bad address %s\n", S.addr);
		return 2;
	}
	/* held bound (not listening) so the port stays ours until every
	 * worker has its own listening socket on it */
	if ((fd0 = listen_socket(&sa, 0)) < 0 ||
	    getsockname(fd0, (struct sockaddr *)&sa, &sl) != 0) {
		fprintf(stderr, "fake_upstream: bind %s:%d: %s\n", S.addr, S.port,
		    strerror(errno));
		return 1;
	}
	if (pipe(pfd) != 0)
		return 1;
	for (int i = 0; i < S.procs; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fork");
			for (int j = 0; j < i; j++)
				kill(pids[j], SIGTERM);
			return 1;
		}
		if (pids[i] == 0) {
			close(pfd[0]);
			close(fd0);
			child_main(i, &sa, pfd[1]);
		}
	}
	close(pfd[1]);
	{
		/* no SA_RESTART: waitpid() below must see EINTR */
		struct sigaction act;
		memset(&act, 0, sizeof(act));
		act.sa_handler = parent_signal;
		sigemptyset(&act.sa_mask);
		sigaction(SIGTERM, &act, NULL);
		sigaction(SIGINT, &act, NULL);
	}
	while (ready < S.procs) {
		char ch;
		ssize_t r = read(pfd[0], &ch, 1);
		if (r == 1) {
			ready++;
			continue;
		}
		if (r < 0 && errno == EINTR && !got_signal)
			continue;
		fprintf(stderr, "fake_upstream: a worker did not start\n");
		for (int j = 0; j < S.procs; j++)
			kill(pids[j], SIGTERM);
		return 1;
	}
	close(pfd[0]);
	close(fd0);
	tl = (size_t)snprintf(text, sizeof(text), "%d\n", (int)getpid());
	for (int i = 0; i < S.procs; i++)
		tl += (size_t)snprintf(text + tl, sizeof(text) - tl, "%d\n",
		    (int)pids[i]);
	if (S.pid_file && write_file(S.pid_file, text) != 0)
		perror(S.pid_file);
	snprintf(text, sizeof(text), "%d\n", ntohs(sa.sin_port));
	if (S.port_file && write_file(S.port_file, text) != 0)
		perror(S.port_file);
	fprintf(stderr, "fake_upstream: %d worker%s on %s:%d (%s, %s framing)\n",
	    S.procs, S.procs == 1 ? "" : "s", S.addr, ntohs(sa.sin_port),
	    S.tls ? "TLS" : "plain", S.proto_codec ? "proto/ws.c" : "own");

	/* supervise: pass a signal on, exit when every worker has */
	int left = S.procs, forwarded = 0;
	while (left > 0) {
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p > 0) {
			left--;
			if (!got_signal && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
				fprintf(stderr, "fake_upstream: worker %d ended (%s %d)\n",
				    (int)p, WIFSIGNALED(st) ? "signal" : "status",
				    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			continue;
		}
		if (errno == EINTR && got_signal && !forwarded) {
			forwarded = 1;
			for (int i = 0; i < S.procs; i++)
				kill(pids[i], SIGTERM);
			continue;
		}
		if (errno == ECHILD)
			break;
	}
	return 0;
}
