/*
 * front.c — the listening sockets and the master's HTTP connections.
 *
 * Two listeners, the public one and the operator's (master.h), go through
 * the same code.  Each is polled by hand (uv_poll_t + accept4) rather than
 * through uv_listen, so the master can stop accepting when it runs out of
 * descriptors or reaches MAX_HTTP_CONNECTIONS, and resume a second later,
 * instead of spinning on EMFILE.  Each connection parses requests with
 * llhttp (proto/http.c), answers them in order, and either stays open
 * (keep-alive), closes, or — for a WebSocket upgrade — is handed to a
 * worker with the bytes already read.
 */
#include "daemon/master.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/http.h"
#include "proto/ipc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_MAGIC	0x434f4e4eu	/* "CONN" */
#define READ_BUF	16384
#define MAX_WRITE_QUEUE	(512 * 1024)
#define READ_PAUSE_QUEUE (64 * 1024)

struct conn {
	uint32_t	 magic;
	uv_tcp_t	 tcp;
	uv_timer_t	 timer;
	struct http_req	 req;
	int		 open_handles;
	int		 closing;
	int		 handed_off;
	int		 close_after_write;
	int		 keep_alive;
	int		 in_request;	/* bytes of a request seen */
	int		 head_only;	/* the request being answered is HEAD */
	int		 read_paused;	/* answers queued: stop reading */
	enum listener_kind listener;	/* accepted on: what it may ask for */
	char		 peer[64];
	uint64_t	 accepted_us;
	/* bytes read past an upgrade request's headers */
	char		*extra;
	size_t		 extra_len;
};

static char read_buf[READ_BUF];	/* one loop, one read at a time */

static void conn_close(struct conn *c);
static void conn_arm_timer(struct conn *c);

const char *
conn_peer(const struct conn *c)
{
	return c->peer;
}

enum listener_kind
conn_listener(const struct conn *c)
{
	return c->listener;
}

void
conn_no_keepalive(struct conn *c)
{
	c->keep_alive = 0;
}

int
conn_keep_alive(const struct conn *c)
{
	return c->keep_alive && !M.draining;
}

/* ---------------------------------------------------------------- */
/* listeners */

/* The keys that place a listener, for the messages. */
static const char *const ls_bind_key[LS__COUNT] = { "BIND", "ADMIN_BIND" };
static const char *const ls_port_key[LS__COUNT] = { "PORT", "ADMIN_PORT" };

static int
listen_one(struct listener *l, const char *addr, int portnum)
{
	struct addrinfo hints, *res = NULL;
	char port[16];
	int fd = -1, one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", portnum);
	if ((rc = getaddrinfo(addr, port, &hints, &res)) != 0) {
		log_warnx("%s %s: not a numeric address: %s", ls_bind_key[l->kind],
		    addr, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6) {
		int zero = 0;	/* "::" takes IPv4 too */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
		goto fail;
	if (listen(fd, 1024) != 0)
		goto fail;
	freeaddrinfo(res);
	l->fd = fd;
	return 0;
fail:
	log_warn("listen on %s port %d (%s, %s)", addr, portnum,
	    ls_bind_key[l->kind], ls_port_key[l->kind]);
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

int
front_listen(struct master *m)
{
	if (listen_one(&m->ls[LS_PUBLIC], m->conf.bind, m->conf.port) != 0 ||
	    listen_one(&m->ls[LS_ADMIN], m->conf.admin_bind,
	    m->conf.admin_port) != 0)
		return -1;
	/* one descriptor held back, given up when accept() hits EMFILE */
	m->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return 0;
}

static void
peer_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	snprintf(out, len, "?");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%d", host, ntohs(s4->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%d", host, ntohs(s6->sin6_port));
	}
}

static void conn_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void
conn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	b->base = read_buf;
	b->len = sizeof(read_buf);
}

static void
conn_timer_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->closing)
		return;
	master_count(SC_http_timeouts);
	if (c->in_request) {
		/* slow headers: tell the client why, then go */
		log_info("%s: request not complete within HEADER_TIMEOUT (%d s); "
		    "answering 408", c->peer, M.conf.header_timeout);
		c->keep_alive = 0;
		conn_respond(c, 408, "text/plain", "request timeout\n", 16, NULL);
		c->close_after_write = 1;
		/* if the peer does not read, the next tick still closes */
		uv_timer_start(&c->timer, conn_timer_cb, 2000, 0);
		c->in_request = 0;
		return;
	}
	log_debug("%s: idle for KEEPALIVE_TIMEOUT (%d s); closing", c->peer,
	    M.conf.keepalive_timeout);
	conn_close(c);
}

static void
conn_arm_timer(struct conn *c)
{
	uint64_t ms = (uint64_t)(c->in_request ? M.conf.header_timeout :
	    M.conf.keepalive_timeout) * 1000;
	uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
}

static void
front_accept_one(struct master *m, struct listener *l, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL || http_req_init(&c->req, m->conf.max_header_size,
	    m->conf.max_headers, m->conf.max_body_size) != 0) {
		free(c);
		close(fd);
		return;
	}
	c->magic = CONN_MAGIC;
	c->listener = l->kind;
	c->accepted_us = mono_us();
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	peer_name(fd, c->peer, sizeof(c->peer));
	uv_tcp_init(m->loop, &c->tcp);
	uv_timer_init(m->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	if (uv_tcp_open(&c->tcp, fd) != 0) {
		close(fd);
		conn_close(c);
		return;
	}
	m->nconns++;
	conn_arm_timer(c);
	uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
}

static void
accept_resume_cb(uv_timer_t *t)
{
	struct master *m = t->data;

	if (m->reserve_fd < 0)
		m->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	front_start(m);
}

static void
listen_cb(uv_poll_t *p, int status, int events)
{
	struct listener *l = p->data;
	struct master *m = &M;

	for (int i = 0; i < 64; i++) {
		if (m->nconns >= (unsigned)m->conf.max_http_connections) {
			/* resumes when a connection closes; said once a minute
			 * at most, counted every time */
			static uint64_t logged_ms;
			uint64_t now = mono_ms();

			master_count(SC_accept_capped);
			if (logged_ms == 0 || now - logged_ms >= 60000) {
				logged_ms = now;
				log_warnx("accept: %u connections open, the "
				    "MAX_HTTP_CONNECTIONS cap; pausing until one "
				    "closes", m->nconns);
			}
			front_stop(m);
			return;
		}
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			front_accept_one(m, l, fd);
			continue;
		}
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
			return;
		if (errno == EMFILE || errno == ENFILE) {
			/*
			 * Out of descriptors.  Use the reserve to take the
			 * connection off the queue and close it, so the client
			 * is told at once rather than left hanging, then stop
			 * accepting for a second.
			 */
			if (m->reserve_fd >= 0) {
				close(m->reserve_fd);
				m->reserve_fd = -1;
				fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close(fd);
			}
			master_count(SC_accept_paused);
			log_warnx("accept: out of file descriptors (%u "
			    "connections); pausing for a second", m->nconns);
			front_stop(m);
			uv_timer_start(&m->accept_pause, accept_resume_cb, 1000, 0);
			return;
		}
		log_warn("accept");
		return;
	}
}

/* Accept on every listener, unless at the cap or backing off. */
void
front_start(struct master *m)
{
	if (m->stopping)
		return;
	if (m->nconns >= (unsigned)m->conf.max_http_connections)
		return;
	if (!m->accept_init) {
		uv_timer_init(m->loop, &m->accept_pause);
		m->accept_pause.data = m;
		m->accept_init = 1;
	}
	if (uv_is_active((uv_handle_t *)&m->accept_pause))
		return;
	for (int i = 0; i < LS__COUNT; i++) {
		struct listener *l = &m->ls[i];

		if (l->accepting || l->fd < 0)
			continue;
		if (!l->poll_init) {
			uv_poll_init(m->loop, &l->poll, l->fd);
			l->poll.data = l;
			l->poll_init = 1;
		}
		uv_poll_start(&l->poll, UV_READABLE, listen_cb);
		l->accepting = 1;
	}
}

void
front_stop(struct master *m)
{
	for (int i = 0; i < LS__COUNT; i++) {
		struct listener *l = &m->ls[i];

		if (!l->accepting)
			continue;
		uv_poll_stop(&l->poll);
		l->accepting = 0;
	}
}

/* ---------------------------------------------------------------- */
/* connections */

static void
conn_handle_closed_cb(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (--c->open_handles > 0)
		return;
	http_req_free(&c->req);
	free(c->extra);
	c->magic = 0;
	free(c);
	M.nconns--;
	front_start(&M);	/* may have been paused at the cap */
}

static void
conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed_cb);
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
}

struct wreq {
	uv_write_t	 req;
	struct conn	*c;
	char		 data[];
};

static void
conn_write_cb(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct conn *c = wr->c;

	free(wr);
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->close_after_write &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
		conn_close(c);
		return;
	}
	if (c->read_paused &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
		c->read_paused = 0;
		uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
	}
}

void
conn_respond(struct conn *c, int status, const char *content_type,
    const char *body, size_t len, const char *extra)
{
	char head[1024];
	int keep = conn_keep_alive(c) && !c->close_after_write;
	int hl = http_response_head(head, sizeof(head), status, content_type,
	    len, keep, extra);
	struct wreq *wr;
	uv_buf_t b;

	if (c->closing)
		return;
	/* a client that pipelines without reading its answers is cut off;
	 * one large answer (a big /usage-data) is fine */
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > MAX_WRITE_QUEUE) {
		conn_close(c);
		return;
	}
	if (c->head_only)
		len = 0;	/* HEAD: the same head, Content-Length included */
	if (hl < 0 || (wr = malloc(sizeof(*wr) + hl + len)) == NULL) {
		conn_close(c);
		return;
	}
	memcpy(wr->data, head, hl);
	if (len)
		memcpy(wr->data + hl, body, len);
	wr->c = c;
	b = uv_buf_init(wr->data, (unsigned)(hl + len));
	if (!keep)
		c->close_after_write = 1;
	if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb) != 0) {
		free(wr);
		conn_close(c);
		return;
	}
}

static const char *
conn_error_why(const struct conn *c, int err)
{
	switch (err) {
	case HTTP_ERR_HEADERS_TOO_LARGE:
		return "request head over MAX_HEADER_SIZE";
	case HTTP_ERR_TOO_MANY_HEADERS:
		return "more headers than MAX_HEADERS";
	case HTTP_ERR_BODY_TOO_LARGE:
		return "body over MAX_BODY_SIZE";
	case HTTP_ERR_URI_TOO_LONG:
		return "request target over MAX_HEADER_SIZE";
	case HTTP_ERR_NOMEM:
		return "out of memory";
	default:
		return c->req.reason != NULL ? c->req.reason : "malformed request";
	}
}

static void
conn_error(struct conn *c, int err)
{
	int status = http_err_status(err);
	char msg[128];
	int n;

	master_count(SC_http_bad_requests);
	log_info("%s: request refused with %d: %s", c->peer, status,
	    conn_error_why(c, err));
	n = snprintf(msg, sizeof(msg), "%d %s\n", status, http_status_text(status));
	c->keep_alive = 0;
	c->close_after_write = 1;
	uv_read_stop((uv_stream_t *)&c->tcp);
	conn_respond(c, status, "text/plain", msg, (size_t)n, NULL);
}

static void
conn_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = s->data;
	const char *p = b->base;
	size_t left, used;
	int rc;

	if (c->closing)
		return;
	if (n < 0) {
		/* EOF or reset.  A half-closed client still gets answers to
		 * what it sent: close once the writes are done. */
		uv_read_stop(s);
		if (n == UV_EOF && uv_stream_get_write_queue_size(s) > 0)
			c->close_after_write = 1;
		else
			conn_close(c);
		return;
	}
	left = (size_t)n;
	while (left > 0 && !c->closing && !c->handed_off) {
		if (!c->in_request) {
			c->in_request = 1;
			conn_arm_timer(c);	/* the header clock starts */
		}
		rc = http_req_feed(&c->req, p, left, &used);
		p += used;
		left -= used;
		if (rc == HTTP_NEED_MORE)
			break;
		if (rc < 0) {
			conn_error(c, rc);
			return;
		}
		master_count(SC_http_requests);
		c->keep_alive = c->req.keep_alive;
		c->in_request = 0;
		if (rc == HTTP_UPGRADE) {
			/* everything after the head belongs to the WebSocket */
			if (left > IPC_MAX_EXTRA) {
				conn_error(c, HTTP_ERR_BODY_TOO_LARGE);
				return;
			}
			if (left > 0) {
				c->extra = malloc(left);
				if (c->extra == NULL) {
					conn_close(c);
					return;
				}
				memcpy(c->extra, p, left);
				c->extra_len = left;
			}
			uv_read_stop(s);
			routes_dispatch(c, &c->req);
			return;
		}
		c->head_only = strcmp(http_req_method(&c->req), "HEAD") == 0;
		routes_dispatch(c, &c->req);
		c->head_only = 0;
		http_req_reset(&c->req);
		if (!c->closing)
			conn_arm_timer(c);
		if (c->close_after_write) {
			uv_read_stop(s);
			return;
		}
	}
	/* answers are piling up: read no more until they are written, so a
	 * pipelining client holds one read buffer's worth of answers at most */
	if (!c->closing && !c->handed_off &&
	    uv_stream_get_write_queue_size(s) > READ_PAUSE_QUEUE) {
		uv_read_stop(s);
		c->read_paused = 1;
	}
	if (c->in_request && left == 0 && c->req.started == 0) {
		/* only whitespace between requests so far */
		c->in_request = 0;
		conn_arm_timer(c);
	}
}

/* ---------------------------------------------------------------- */
/* hand-off of a WebSocket upgrade to a worker */

static int
copy_field(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= cap)
		return -1;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
	return 0;
}

static int
send_fd(int chan, const void *msg, size_t len, int fd)
{
	struct msghdr mh;
	struct iovec iov;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct cmsghdr *cm;
	ssize_t r;

	memset(&mh, 0, sizeof(mh));
	memset(&u, 0, sizeof(u));
	iov.iov_base = (void *)(uintptr_t)msg;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do
		r = sendmsg(chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r == (ssize_t)len ? 0 : -1;
}

void
conn_handoff(struct conn *c, struct http_req *r)
{
	static char msg[IPC_MAX_MSG];
	static char payload[sizeof(struct ipc_handoff) + IPC_MAX_EXTRA];
	struct ipc_handoff *ho = (struct ipc_handoff *)payload;
	uv_os_fd_t fd;
	long len;
	int tried = 0;

	memset(ho, 0, sizeof(*ho));
	if (copy_field(ho->ho_path, sizeof(ho->ho_path), http_req_url(r)) ||
	    copy_field(ho->ho_host, sizeof(ho->ho_host), http_req_header(r, "Host")) ||
	    copy_field(ho->ho_ws_key, sizeof(ho->ho_ws_key),
	    http_req_header(r, "Sec-WebSocket-Key")) ||
	    copy_field(ho->ho_ws_version, sizeof(ho->ho_ws_version),
	    http_req_header(r, "Sec-WebSocket-Version")) ||
	    copy_field(ho->ho_signature, sizeof(ho->ho_signature),
	    http_req_header(r, "X-Twilio-Signature")) ||
	    copy_field(ho->ho_peer, sizeof(ho->ho_peer), c->peer)) {
		c->keep_alive = 0;
		conn_respond(c, 400, "text/plain", "bad upgrade request\n", 20, NULL);
		return;
	}
	ho->ho_accepted_us = c->accepted_us;
	ho->ho_extra_len = (uint32_t)c->extra_len;
	if (c->extra_len)
		memcpy(payload + sizeof(*ho), c->extra, c->extra_len);
	len = ipc_encode(msg, sizeof(msg), IPC_HANDOFF, ++M.handoff_seq, payload,
	    sizeof(*ho) + c->extra_len);
	if (len < 0 || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
		goto busy;

	/* least loaded first; a worker whose channel is full is skipped */
	uint64_t skip = 0;
	while (tried < 4) {
		int slot = master_pick_worker(&M, skip);
		if (slot < 0)
			break;
		tried++;
		skip |= 1ull << slot;
		if (send_fd(M.w[slot].chan, msg, (size_t)len, fd) == 0) {
			M.w[slot].handoffs_sent++;
			c->handed_off = 1;
			/* the worker has its own copy; ours closes without FIN */
			conn_close(c);
			return;
		}
		log_warn("sendmsg() to worker %d", slot);
	}
busy:
	master_count(SC_handoff_failed);
	c->keep_alive = 0;
	conn_respond(c, 503, "text/plain", "no worker available\n", 20, NULL);
}
