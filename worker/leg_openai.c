/*
 * leg_openai.c — the OpenAI Realtime connection of a call; see upstream.h.
 *
 * Bytes flow like this:
 *   read:  socket -> [cin -> mbedTLS ->] plaintext -> upgrade response
 *          parser, then the WebSocket codec -> oa_parse -> relay.c
 *   write: relay.c -> upstream_send -> WebSocket codec -> [plain ->
 *          mbedTLS ->] out -> socket (uv_try_write, else uv_write)
 * No step blocks: mbedTLS is fed from memory (worker/tls.c), DNS runs on
 * libuv's thread pool, every wait has a deadline checked by the tick.
 */
#include "worker/upstream.h"
#include "worker/app.h"
#include "worker/call.h"
#include "worker/leg.h"
#include "worker/worker.h"
#include "worker/relay.h"
#include "worker/wpath.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_BUF		65536
#define MAX_MESSAGE		(4u << 20)	/* one server event */
#define MAX_PENDING		(256u << 10)	/* events queued before OPEN */
#define MAX_OUT			(4u << 20)	/* bytes queued for the socket */
#define DNS_CACHE_MS		30000
#define LOGGED_BAD_EVENT	0x2	/* call->logged_bad: a malformed event */

static struct tls_ctx tls;
static struct oa_msg upstream_msg;	/* one parse at a time, for all calls */
static char read_buf[READ_BUF], plain_buf[READ_BUF];
static uint64_t next_id;

/* One resolution per worker, reused for a while: every call goes to the
 * same host, and the thread pool is not free. */
static struct {
	struct sockaddr_storage	addrs[UPSTREAM_MAX_ADDRS];
	int			n;
	uint64_t		at_ms;
} dns_cache;

static void up_fail(struct upstream *up, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void up_connect_next(struct upstream *up);
static void up_tcp_closed_cb(uv_handle_t *h);

const char *
upstream_state_name(enum up_state s)
{
	static const char *names[] = { "resolve", "connect", "tls", "upgrade",
	    "open", "closing", "closed" };
	return (unsigned)s < ARRAY_LEN(names) ? names[s] : "?";
}

int
upstream_global_init(struct worker *w, char *err, size_t errlen)
{
	struct conf *cf = w->conf;

	if (!cf->openai_tls)
		return 0;
	return tls_ctx_init(&tls, cf->openai_ca_bundle, cf->openai_ca_file,
	    w->slot, err, errlen);
}

static void
up_log_call(struct upstream *up)
{
	log_set_call(up->call ? call_sid_of(up->call) : NULL);
}

/* ---------------------------------------------------------------- */
/* freeing: only from the socket's close callback, or when no socket */

static void
up_maybe_free(struct upstream *up)
{
	if (up->gai_pending || up->tcp_init || up->state != UP_CLOSED || up->zombie)
		return;
	/* not here: we may be deep inside one of its own callbacks */
	up->zombie = 1;
	worker_forget_upstream(up->w, up);
	up->dirty_next = up->w->zombies;
	up->w->zombies = up;
}

void
upstream_destroy(struct upstream *up)
{
	struct call *c = up->call;

	if (up->ws_ready)
		ws_codec_free(&up->ws);
	if (up->use_tls)
		tls_conn_free(&up->tls);
	if (up->resp_init)
		http_resp_free(&up->resp);
	buf_free(&up->cin);
	buf_free(&up->plain);
	buf_free(&up->out);
	buf_free(&up->wbuf);
	buf_free(&up->scratch);
	buf_free(&up->pending);
	free(up->tools_own);
	free(up->instr_own);
	up->magic = 0;
	relay_upstream_gone(c, up);
	free(up);
}

static void
up_tcp_final_cb(uv_handle_t *h)
{
	struct upstream *up = h->data;

	up->tcp_init = 0;
	up->tcp_closing = 0;
	up_maybe_free(up);
}

void
upstream_close(struct upstream *up, const char *reason)
{
	if (up->state >= UP_CLOSING)
		return;
	up->close_reason = reason;
	if (up->state == UP_OPEN && up->ws_ready) {
		ws_codec_close(&up->ws, 1000, NULL);
		up->state = UP_CLOSING;
		up->deadline_ms = mono_ms() + 1000;
		upstream_flush(up);
		return;
	}
	up->state = UP_CLOSED;
	if (up->gai_pending)
		uv_cancel((uv_req_t *)&up->gai);
	if (up->tcp_init && !up->tcp_closing) {
		up->tcp_closing = 1;
		uv_close((uv_handle_t *)&up->tcp, up_tcp_final_cb);
	}
	up_maybe_free(up);
}

/* After a close frame drained (or the grace ran out). */
static void
up_close_socket(struct upstream *up)
{
	up->state = UP_CLOSED;
	if (up->use_tls)
		tls_conn_close_notify(&up->tls);
	if (up->tcp_init && !up->tcp_closing) {
		up->tcp_closing = 1;
		uv_close((uv_handle_t *)&up->tcp, up_tcp_final_cb);
	}
	up_maybe_free(up);
}

static void
up_fail(struct upstream *up, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (up->failed || up->state >= UP_CLOSING)
		return;
	up->failed = 1;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	worker_count(up->w, SC_api_errors, 1);
	up_log_call(up);
	log_warnx("openai: %s", why);
	log_set_call(NULL);
	relay_upstream_failed(up->call, up, why);
	upstream_close(up, "failed");
}

/* ---------------------------------------------------------------- */
/* writing */

static void
up_write_cb(uv_write_t *req, int status)
{
	struct upstream *up = req->data;

	up->writing = 0;
	wpath_written(&up->wbuf, 8192);
	if (up->state == UP_CLOSED)
		return;
	if (status < 0) {
		up_fail(up, "writing to %s: %s", up->peer, uv_strerror(status));
		return;
	}
	upstream_flush(up);
}

void
upstream_flush(struct upstream *up)
{
	int n;

	if (up->state == UP_CLOSED || !up->tcp_init || up->tcp_closing)
		return;
	if (up->use_tls && up->tls.done && buf_pending(&up->plain) > 0) {
		if (tls_conn_write(&up->tls, (const uint8_t *)buf_head(&up->plain),
		    buf_pending(&up->plain)) != TLS_OK) {
			char e[200];
			tls_conn_error(&up->tls, e, sizeof(e));
			up_fail(up, "TLS write: %s", e);
			return;
		}
		buf_consume(&up->plain, buf_pending(&up->plain));
	}
	if (up->writing)
		return;
	up->wreq.data = up;
	n = wpath_flush((uv_stream_t *)&up->tcp, &up->out, &up->wbuf, &up->wreq,
	    up_write_cb);
	if (n < 0) {
		up_fail(up, "writing to %s: %s", up->peer, uv_strerror(n));
		return;
	}
	if (n > 0) {
		up->writing = 1;
		return;
	}
	buf_shrink(&up->out, 8192);
	buf_shrink(&up->plain, 8192);
	buf_shrink(&up->cin, 8192);
	if (up->state == UP_CLOSING && buf_pending(&up->plain) == 0)
		up_close_socket(up);
}

/* The codec's output buffer: plaintext to encrypt, or straight out. */
static struct buf *
up_frame_buf(struct upstream *up)
{
	return up->use_tls ? &up->plain : &up->out;
}

int
upstream_send(struct upstream *up, const char *json, size_t len)
{
	if (up->state == UP_OPEN) {
		if (ws_codec_send(&up->ws, WSLAY_TEXT_FRAME, json, len) != WS_OK) {
			up_fail(up, "%s is not reading (%zu bytes queued)", up->peer,
			    buf_pending(&up->out) + buf_pending(&up->wbuf));
			return -1;
		}
		worker_want_flush_upstream(up->w, up);
		return 0;
	}
	if (up->state >= UP_CLOSING)
		return -1;
	/* not open yet: keep it, length first, for when it is */
	uint32_t n = (uint32_t)len;
	if (buf_pending(&up->pending) + len + 4 > MAX_PENDING)
		return 0;	/* dropped: counted by the relay as lost audio */
	buf_append(&up->pending, &n, 4);
	buf_append(&up->pending, json, len);
	up->npending++;
	return 0;
}

/* ---------------------------------------------------------------- */
/* the session starts: session.update first, then what was queued */

/*
 * session.update for the upstream's persona, with the line's tools and the
 * call's variables as they are now, queued on its socket.  0 or -1 (the
 * session has been failed).
 */
static int
up_send_session(struct upstream *up)
{
	struct oa_session_cfg cfg;

	persona_session_cfg(up->persona, &cfg);
	cfg.text_only = up->call->leg->text_only;	/* Twilio speaks and hears */
	/* which of them the call's line offers is the line's to say */
	cfg.tools_json = app_line_tools(up->call, up->persona, cfg.tools_json,
	    &up->tools_own);
	/* an outbound call's instructions name the callee and the request's
	 * variables (the JSON builder escapes them) */
	free(up->instr_own);
	if ((up->instr_own = call_fill(up->call, cfg.instructions)) != NULL)
		cfg.instructions = up->instr_own;
	buf_consume(&up->scratch, buf_pending(&up->scratch));
	if (oa_build_session_update(&up->scratch, (enum oa_dialect)up->w->conf->openai_dialect,
	    &cfg) != 0) {
		up_fail(up, "cannot build session.update for persona %s",
		    up->persona->id);
		return -1;
	}
	if (ws_codec_send(&up->ws, WSLAY_TEXT_FRAME, buf_head(&up->scratch),
	    buf_pending(&up->scratch)) != WS_OK) {
		up_fail(up, "cannot queue session.update");
		return -1;
	}
	up->session_sent = 1;
	buf_consume(&up->scratch, buf_pending(&up->scratch));
	return 0;
}

/*
 * The stream's start brought an outbound call's variables after its
 * session had opened: the instructions are sent again, filled.
 */
void
upstream_refill_session(struct upstream *up)
{
	if (up == NULL || up->state != UP_OPEN || !up->session_sent ||
	    up->persona->instructions == NULL ||
	    strstr(up->persona->instructions, "{{") == NULL)
		return;
	if (up_send_session(up) == 0)
		worker_want_flush_upstream(up->w, up);
}

static void
up_opened(struct upstream *up)
{
	char *p;

	up->state = UP_OPEN;
	up->opened_ms = up->last_rx_ms = mono_ms();
	if (up_send_session(up) != 0)
		return;
	while (buf_pending(&up->pending) >= 4) {
		uint32_t n;
		memcpy(&n, buf_head(&up->pending), 4);
		p = buf_head(&up->pending) + 4;
		if (ws_codec_send(&up->ws, WSLAY_TEXT_FRAME, p, n) != WS_OK) {
			up_fail(up, "cannot queue %u early events", up->npending);
			return;
		}
		buf_consume(&up->pending, 4 + n);
	}
	up->npending = 0;
	buf_free(&up->pending);		/* only the start of a call needs it */
	worker_want_flush_upstream(up->w, up);
	up->call->leg->up_open(up->call, up);
}

/* ---------------------------------------------------------------- */
/* reading */

static int
up_on_ws_message(void *arg, int opcode, const uint8_t *data, size_t len)
{
	struct upstream *up = arg;
	int rc;

	if (up->state != UP_OPEN)
		return 1;
	if (opcode != WSLAY_TEXT_FRAME) {
		up_fail(up, "binary message from the server");
		return 1;
	}
	rc = oa_parse((const char *)data, len, &upstream_msg);
	if (rc == OA_ERR_JSON || rc == OA_ERR_TYPE) {
		up_fail(up, "the server sent something that is not an event "
		    "(%s, %zu bytes)", oa_strerror(rc), len);
		return 1;
	}
	if (rc != OA_OK) {
		/* a malformed event of a known type: skip it, keep the call;
		 * logged once per call, then only counted */
		worker_count(up->w, SC_api_errors, 1);
		if (!(up->call->logged_bad & LOGGED_BAD_EVENT)) {
			up->call->logged_bad |= LOGGED_BAD_EVENT;
			up_log_call(up);
			log_warnx("openai: ignoring a malformed %s event: %s "
			    "(further ones are only counted)", upstream_msg.type,
			    oa_strerror(rc));
			log_set_call(NULL);
		}
		return 0;
	}
	up->call->leg->up_event(up->call, up, &upstream_msg);
	return up->state == UP_OPEN ? 0 : 1;
}

static void
up_send_upgrade(struct upstream *up)
{
	struct conf *cf = up->w->conf;
	unsigned char rnd[16];
	char req[2048], hostport[300];
	int n;

	random_bytes(rnd, sizeof(rnd));
	ws_client_key(rnd, up->ws_key);
	if ((cf->openai_tls && cf->openai_port == 443) ||
	    (!cf->openai_tls && cf->openai_port == 80))
		snprintf(hostport, sizeof(hostport), strchr(cf->openai_host, ':') ?
		    "[%s]" : "%s", cf->openai_host);
	else
		snprintf(hostport, sizeof(hostport), strchr(cf->openai_host, ':') ?
		    "[%s]:%d" : "%s:%d", cf->openai_host, cf->openai_port);
	n = snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Authorization: Bearer %s\r\n"
	    "%s%s%s%s%s%s%s"
	    "User-Agent: voxrelay/" VOXRELAY_VERSION "\r\n"
	    "\r\n",
	    cf->openai_target, hostport, up->ws_key, cf->openai_api_key,
	    cf->openai_dialect ? "OpenAI-Beta: realtime=v1\r\n" : "",
	    cf->openai_organization[0] ? "OpenAI-Organization: " : "",
	    cf->openai_organization, cf->openai_organization[0] ? "\r\n" : "",
	    cf->openai_project[0] ? "OpenAI-Project: " : "",
	    cf->openai_project, cf->openai_project[0] ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req)) {
		up_fail(up, "upgrade request too long");
		return;
	}
	if (http_resp_init(&up->resp, 16384, 4096) != 0) {
		up_fail(up, "out of memory");
		return;
	}
	up->resp_init = 1;
	up->state = UP_UPGRADE;
	up->deadline_ms = mono_ms() + (uint64_t)cf->openai_handshake_timeout * 1000;
	buf_append(up_frame_buf(up), req, (size_t)n);
	explicit_bzero(req, sizeof(req));	/* it held the key */
	upstream_flush(up);
}

static void
up_handshake_answer(struct upstream *up)
{
	char msg[300];

	oa_error_body_message(up->resp.body, up->resp.body_len, msg, sizeof(msg));
	up_fail(up, "handshake refused by %s: %d %s%s%s%s%s", up->peer,
	    up->resp.status, http_status_text(up->resp.status),
	    msg[0] ? ": " : "", msg,
	    up->resp.request_id[0] ? "; request id " : "", up->resp.request_id);
}

/* Plaintext from the server. */
static void
up_on_plain(struct upstream *up, const char *p, size_t n)
{
	size_t used;
	int rc;

	up->last_rx_ms = mono_ms();
	up->ping_out = 0;
	if (up->state == UP_UPGRADE) {
		rc = http_resp_feed(&up->resp, p, n, &used);
		if (rc == HTTP_NEED_MORE)
			return;
		if (rc < 0) {
			up_fail(up, "unreadable handshake answer from %s", up->peer);
			return;
		}
		if (rc == HTTP_COMPLETE) {
			up_handshake_answer(up);
			return;
		}
		/* 101: check what makes it a WebSocket */
		char want[WS_ACCEPT_LEN + 1];
		ws_accept_key(up->ws_key, want);
		if (strcasecmp(up->resp.upgrade, "websocket") != 0 ||
		    strcmp(up->resp.accept, want) != 0) {
			up_fail(up, "handshake: bad %s from %s",
			    strcasecmp(up->resp.upgrade, "websocket") ?
			    "Upgrade header" : "Sec-WebSocket-Accept", up->peer);
			return;
		}
		if (ws_codec_init(&up->ws, WS_CLIENT, MAX_MESSAGE, up_frame_buf(up),
		    up_on_ws_message, up, up->w->seed ^ up->id) != 0) {
			up_fail(up, "out of memory");
			return;
		}
		up->w->seed = up->w->seed * 6364136223846793005ULL + 1442695040888963407ULL;
		up->ws_ready = 1;
		/* the handshake is over: its parser and body buffer go */
		http_resp_free(&up->resp);
		up->resp_init = 0;
		up_opened(up);
		if (up->state != UP_OPEN)
			return;
		p += used;
		n -= used;
		if (n == 0)
			return;
	}
	if (up->state != UP_OPEN && up->state != UP_CLOSING)
		return;
	rc = ws_codec_feed(&up->ws, (const uint8_t *)p, n);
	if (rc < 0)
		up_fail(up, "websocket error from %s: %s", up->peer, up->ws.error);
	else if (rc == WS_CLOSED) {
		if (up->state == UP_CLOSING)
			up_close_socket(up);
		else
			up_fail(up, "%s closed the session (code %u)", up->peer,
			    up->ws.close_code);
	}
	worker_want_flush_upstream(up->w, up);
}

static void
up_read(struct upstream *up, ssize_t n, const uv_buf_t *b)
{
	if (up->state == UP_CLOSED)
		return;
	if (n < 0) {
		if (up->state == UP_UPGRADE && up->resp_init &&
		    http_resp_eof(&up->resp) == HTTP_COMPLETE && up->resp.status) {
			up_handshake_answer(up);
			return;
		}
		if (up->state == UP_CLOSING)
			up_close_socket(up);
		else
			up_fail(up, "%s %s during %s", up->peer, n == UV_EOF ?
			    "closed the connection" : uv_strerror((int)n),
			    upstream_state_name(up->state));
		return;
	}
	if (n == 0)
		return;
	if (!up->use_tls) {
		up_on_plain(up, b->base, (size_t)n);
		return;
	}
	if (buf_append(&up->cin, b->base, (size_t)n) != 0) {
		up_fail(up, "out of memory");
		return;
	}
	if (up->state == UP_TLS) {
		int rc = tls_conn_handshake(&up->tls);
		worker_want_flush_upstream(up->w, up);
		if (rc == TLS_AGAIN)
			return;
		if (rc != TLS_OK) {
			char e[300];
			tls_conn_error(&up->tls, e, sizeof(e));
			up_fail(up, "TLS with %s (%s): %s", up->peer,
			    up->w->conf->openai_host, e);
			return;
		}
		up_send_upgrade(up);
	}
	for (int i = 0; i < 1024 && up->state != UP_CLOSED; i++) {
		long r = tls_conn_read(&up->tls, (uint8_t *)plain_buf, sizeof(plain_buf));
		if (r == TLS_AGAIN)
			break;
		if (r == TLS_EOF) {
			if (up->state == UP_CLOSING)
				up_close_socket(up);
			else
				up_fail(up, "%s ended the TLS session", up->peer);
			return;
		}
		if (r < 0) {
			char e[300];
			tls_conn_error(&up->tls, e, sizeof(e));
			up_fail(up, "TLS read from %s: %s", up->peer, e);
			return;
		}
		up_on_plain(up, plain_buf, (size_t)r);
	}
}

static void
up_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct upstream *up = s->data;
	struct worker *w = up->w;	/* up is freed only by the check handle */

	worker_read_begin(w);
	up_read(up, n, b);
	worker_read_end(w, SH_RELAY_OUT);
}

static void
up_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	b->base = read_buf;
	b->len = sizeof(read_buf);
}

/* ---------------------------------------------------------------- */
/* connecting */

static void
addr_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%d", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%d", host, ntohs(s4->sin_port));
	}
}

static void
up_connect_cb(uv_connect_t *req, int status)
{
	struct upstream *up = req->data;
	int one = 1;
	uv_os_fd_t fd;

	/* closed meanwhile; or the connect timed out and the tick closed the
	 * handle, which cancels this request: up_tcp_closed_cb() goes on */
	if (up->state != UP_CONNECT || up->tcp_closing)
		return;
	if (status < 0) {
		up_log_call(up);
		log_debug("openai: connect to %s: %s", up->peer, uv_strerror(status));
		log_set_call(NULL);
		up->tcp_closing = 1;
		uv_close((uv_handle_t *)&up->tcp, up_tcp_closed_cb);
		return;
	}
	if (uv_fileno((uv_handle_t *)&up->tcp, &fd) == 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	uv_read_start((uv_stream_t *)&up->tcp, up_alloc_cb, up_read_cb);
	if (up->use_tls) {
		if (tls_conn_init(&up->tls, &tls, up->w->conf->openai_host, &up->cin,
		    &up->out) != TLS_OK) {
			char e[200];
			tls_conn_error(&up->tls, e, sizeof(e));
			up_fail(up, "TLS setup: %s", e);
			return;
		}
		up->state = UP_TLS;
		up->deadline_ms = mono_ms() +
		    (uint64_t)up->w->conf->openai_handshake_timeout * 1000;
		tls_conn_handshake(&up->tls);	/* queues the ClientHello */
		upstream_flush(up);
		return;
	}
	up_send_upgrade(up);
}

/* A failed attempt's socket is closed: try the next address. */
static void
up_tcp_closed_cb(uv_handle_t *h)
{
	struct upstream *up = h->data;

	up->tcp_init = 0;
	up->tcp_closing = 0;
	if (up->state != UP_CONNECT) {
		up_maybe_free(up);
		return;
	}
	up->addr_i++;
	up_connect_next(up);
}

static void
up_connect_next(struct upstream *up)
{
	int rc;

	if (up->addr_i >= up->naddrs) {
		up_fail(up, "cannot connect to %s port %d (%d address%s tried, "
		    "last %s)", up->w->conf->openai_host, up->w->conf->openai_port,
		    up->naddrs, up->naddrs == 1 ? "" : "es", up->peer);
		return;
	}
	addr_name(&up->addrs[up->addr_i], up->peer, sizeof(up->peer));
	if ((rc = uv_tcp_init(&up->w->loop, &up->tcp)) != 0) {
		up_fail(up, "socket: %s", uv_strerror(rc));
		return;
	}
	up->tcp.data = up;
	up->tcp_init = 1;
	up->deadline_ms = mono_ms() + (uint64_t)up->w->conf->openai_connect_timeout * 1000;
	up->creq.data = up;
	rc = uv_tcp_connect(&up->creq, &up->tcp,
	    (const struct sockaddr *)&up->addrs[up->addr_i], up_connect_cb);
	if (rc != 0) {
		up_log_call(up);
		log_debug("openai: connect to %s: %s", up->peer, uv_strerror(rc));
		log_set_call(NULL);
		up->tcp_closing = 1;
		uv_close((uv_handle_t *)&up->tcp, up_tcp_closed_cb);
	}
}

static void
up_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct upstream *up = req->data;
	struct addrinfo *ai;

	up->gai_pending = 0;
	if (up->state != UP_RESOLVE) {
		uv_freeaddrinfo(res);
		up_maybe_free(up);
		return;
	}
	if (status < 0) {
		up_fail(up, "cannot resolve %s: %s", up->w->conf->openai_host,
		    uv_strerror(status));
		uv_freeaddrinfo(res);
		return;
	}
	up->naddrs = 0;
	for (ai = res; ai && up->naddrs < UPSTREAM_MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		memcpy(&up->addrs[up->naddrs++], ai->ai_addr, ai->ai_addrlen);
	}
	uv_freeaddrinfo(res);
	if (up->naddrs == 0) {
		up_fail(up, "%s has no address", up->w->conf->openai_host);
		return;
	}
	memcpy(dns_cache.addrs, up->addrs, sizeof(up->addrs));
	dns_cache.n = up->naddrs;
	dns_cache.at_ms = mono_ms();
	up->state = UP_CONNECT;
	up->addr_i = 0;
	up_connect_next(up);
}

struct upstream *
upstream_new(struct call *c, const struct persona *p)
{
	struct upstream *up = calloc(1, sizeof(*up));
	struct addrinfo hints;
	char port[8];
	int rc;

	if (up == NULL)
		return NULL;
	up->magic = UPSTREAM_MAGIC;
	up->call = c;
	up->w = c->w;
	up->persona = p;
	up->id = ++next_id;
	up->use_tls = up->w->conf->openai_tls;
	buf_init(&up->cin, 0);
	buf_init(&up->plain, 0);
	buf_init(&up->out, MAX_OUT);
	buf_init(&up->wbuf, 0);
	buf_init(&up->scratch, 0);
	buf_init(&up->pending, MAX_PENDING + 8);
	snprintf(up->peer, sizeof(up->peer), "%s", up->w->conf->openai_host);

	if (dns_cache.n > 0 && mono_ms() - dns_cache.at_ms < DNS_CACHE_MS) {
		memcpy(up->addrs, dns_cache.addrs, sizeof(up->addrs));
		up->naddrs = dns_cache.n;
		up->state = UP_CONNECT;
		up_connect_next(up);
		return up;
	}
	up->state = UP_RESOLVE;
	up->deadline_ms = mono_ms() + (uint64_t)up->w->conf->openai_connect_timeout * 1000;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", up->w->conf->openai_port);
	up->gai.data = up;
	rc = uv_getaddrinfo(&up->w->loop, &up->gai, up_gai_cb, up->w->conf->openai_host,
	    port, &hints);
	if (rc != 0) {
		up->state = UP_CLOSED;
		free(up);
		return NULL;
	}
	up->gai_pending = 1;
	return up;
}

/* ---------------------------------------------------------------- */

void
upstream_tick(struct upstream *up, uint64_t now)
{
	struct conf *cf = up->w->conf;

	switch (up->state) {
	case UP_RESOLVE:
	case UP_CONNECT:
	case UP_TLS:
	case UP_UPGRADE:
		if (now < up->deadline_ms)
			break;
		if (up->state == UP_CONNECT && up->tcp_init && !up->tcp_closing) {
			/* this address is not answering: on to the next */
			up_log_call(up);
			log_debug("openai: connect to %s timed out", up->peer);
			log_set_call(NULL);
			up->tcp_closing = 1;
			uv_close((uv_handle_t *)&up->tcp, up_tcp_closed_cb);
			break;
		}
		up_fail(up, "%s timed out after %d s (%s)",
		    upstream_state_name(up->state), up->state <= UP_CONNECT ?
		    cf->openai_connect_timeout : cf->openai_handshake_timeout,
		    up->peer);
		break;
	case UP_OPEN:
		if (up->ping_out && now - up->ping_ms >
		    (uint64_t)cf->openai_pong_timeout * 1000) {
			up_fail(up, "%s stopped answering (no data for %llu ms)",
			    up->peer, (unsigned long long)(now - up->last_rx_ms));
			break;
		}
		if (!up->ping_out && now - up->last_rx_ms >
		    (uint64_t)cf->openai_ping_interval * 1000) {
			ws_codec_send(&up->ws, WSLAY_PING, "vr", 2);
			up->ping_out = 1;
			up->ping_ms = now;
			worker_want_flush_upstream(up->w, up);
		}
		break;
	case UP_CLOSING:
		if (now >= up->deadline_ms)
			up_close_socket(up);
		break;
	case UP_CLOSED:
		break;
	}
}
