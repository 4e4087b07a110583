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
 *
 * Resource limits that one client must not be able to exhaust:
 *   - connections: idle ones (between requests, or before the first) sit on
 *     a list, oldest first; at MAX_HTTP_CONNECTIONS the oldest idle one is
 *     closed to make room before accepting pauses, and above 3/4 of the cap
 *     any idle for a second are closed.  A client address holds at most
 *     MAX_CONNECTIONS_PER_IP; behind a proxy in TRUSTED_PROXIES the address
 *     is X-Forwarded-For's last untrusted hop, re-counted per request.
 *   - answer memory: a long answer (/usage-data) is written as a stream of
 *     pieces, the next produced only once the last has reached the kernel,
 *     so a client that does not read holds one piece; ANSWER_BUDGET bounds
 *     what all of them hold together.
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
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_MAGIC	0x434f4e4eu	/* "CONN" */
#define READ_BUF	16384
#define MAX_WRITE_QUEUE	(512 * 1024)
#define READ_PAUSE_QUEUE (64 * 1024)
#define STREAM_PIECE	4096	/* body bytes per piece of a streamed answer */
#define STREAM_HDR	12	/* room for a chunk's "<hex>\r\n" before it */
#define PRESSURE_IDLE_MS 1000	/* idle allowed above 3/4 of the cap */

/* Open connections of one client address (IPv4 mapped into IPv6). */
struct ipent {
	struct ipent	*next;
	uint8_t		 addr[16];
	unsigned	 n;
};

struct stream {
	conn_fill_cb	 fill;
	conn_free_cb	 done;
	void		*arg;
	int		 chunked;
	int		 keep;		/* keep-alive once it is over */
	int		 inflight;	/* our writes not yet completed */
	int		 finished;	/* the last piece is queued */
	int		 waiting;	/* fill said CONN_FILL_AGAIN */
	int		 deferred;	/* conn_defer(): no head written yet */
	int		 head_only;	/* the deferred request was HEAD */
};

struct conn {
	uint32_t	 magic;
	struct master	*m;		/* the process it belongs to */
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
	unsigned	 requests;	/* answered on this connection */
	int		 read_paused;	/* answers queued: stop reading */
	enum listener_kind listener;	/* accepted on: what it may ask for */
	char		 peer[64];
	uint64_t	 accepted_us;
	/* bytes read past an upgrade request's headers */
	char		*extra;
	size_t		 extra_len;
	/* idle list: between requests, nothing to write */
	TAILQ_ENTRY(conn) idle_link;
	int		 idle;
	uint64_t	 idle_since_ms;
	/* the client address it is counted under (NULL: not counted) */
	struct ipent	*ip;
	int		 via_proxy;	/* the peer is in TRUSTED_PROXIES */
	/* an answer being streamed, and requests read behind it */
	struct stream	*stream;
	char		*pending;
	size_t		 pending_len;
};

static char read_buf[READ_BUF];	/* one loop, one read at a time */
static TAILQ_HEAD(, conn) idle_conns = TAILQ_HEAD_INITIALIZER(idle_conns);
static unsigned nclosing;	/* closed, their handles not yet released */
static unsigned nstreams;
static size_t queued_bytes;	/* answers written but not yet sent */
static uv_timer_t sweep_timer;	/* above 3/4 of the cap: idle sweep */
static struct ipent **ipt;	/* client addresses, chained */
static unsigned ipt_mask;
static uint64_t ipt_seed;

static void conn_close(struct conn *c);
static void conn_arm_timer(struct conn *c);
static void conn_idle_update(struct conn *c);
static void conn_feed(struct conn *c, const char *p, size_t left);

const char *
conn_peer(const struct conn *c)
{
	return c->peer;
}

struct master *
conn_master(const struct conn *c)
{
	return c->m;
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
	struct master *m = c->m;

	return c->keep_alive && !m->draining;
}

/* ---------------------------------------------------------------- */
/* connections per client address */

/* Once a minute at most, for lines a flood would repeat. */
static int
log_allowed(uint64_t *last_ms)
{
	uint64_t now = mono_ms();

	if (*last_ms != 0 && now - *last_ms < 60000)
		return 0;
	*last_ms = now;
	return 1;
}

static void
addr_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
}

static void
addr_text(const uint8_t key[16], char *out, size_t len)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (memcmp(key, mapped, 12) == 0)
		inet_ntop(AF_INET, key + 12, out, (socklen_t)len);
	else
		inet_ntop(AF_INET6, key, out, (socklen_t)len);
}

/* FNV-1a over a per-start seed: a client picking addresses cannot aim
 * them at one chain it knows in advance. */
static uint32_t
ip_hash(const uint8_t key[16])
{
	uint64_t h = 0xcbf29ce484222325ull ^ ipt_seed;

	for (int i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 0x100000001b3ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

/* The entry for key, created with n = 0; NULL when out of memory.  There
 * are never more entries than open connections. */
static struct ipent *
ip_get(const struct master *m, const uint8_t key[16])
{
	struct ipent *e;
	uint32_t b;

	if (ipt == NULL) {
		unsigned n = 64;

		while (n < (unsigned)m->conf.max_http_connections && n < 65536)
			n *= 2;
		if ((ipt = calloc(n, sizeof(*ipt))) == NULL)
			return NULL;
		ipt_mask = n - 1;
		if (random_bytes(&ipt_seed, sizeof(ipt_seed)) != 0)
			ipt_seed = mono_us();
	}
	b = ip_hash(key) & ipt_mask;
	for (e = ipt[b]; e != NULL; e = e->next)
		if (memcmp(e->addr, key, 16) == 0)
			return e;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->addr, key, 16);
	e->next = ipt[b];
	ipt[b] = e;
	return e;
}

static void
ip_put(struct ipent *e)
{
	struct ipent **pp;

	if (e->n > 0 && --e->n > 0)
		return;
	for (pp = &ipt[ip_hash(e->addr) & ipt_mask]; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			free(e);
			return;
		}
}

/* Count one more connection under key: 0, or -1 at the cap. */
static int
ip_take(struct master *m, const uint8_t key[16], struct ipent **out)
{
	struct ipent *e = ip_get(m, key);

	*out = NULL;
	if (e == NULL)
		return 0;	/* out of memory: uncounted, not refused */
	if (e->n >= (unsigned)m->conf.max_conns_per_ip) {
		static uint64_t logged_ms;
		char text[INET6_ADDRSTRLEN];

		master_count(m, SC_per_ip_capped);
		if (log_allowed(&logged_ms)) {
			addr_text(key, text, sizeof(text));
			log_warnx("%s has %u connections open, the "
			    "MAX_CONNECTIONS_PER_IP cap; refusing more (said once a "
			    "minute)", text, e->n);
		}
		return -1;
	}
	e->n++;
	*out = e;
	return 0;
}

/*
 * The client behind a trusted proxy: the rightmost X-Forwarded-For hop
 * that is not itself a trusted proxy (the leftmost if all are).  Every
 * X-Forwarded-For header counts, in order.  0 with key set, or -1 when
 * there is none usable.
 */
static int
xff_client(const struct master *m, const struct http_req *r, uint8_t key[16])
{
	int found = 0;

	for (unsigned i = r->nhdrs; i-- > 0; ) {
		const char *v, *end;

		if (strcasecmp(r->head + r->hdrs[i].name_off, "X-Forwarded-For") != 0 ||
		    r->hdrs[i].value_off == 0)
			continue;
		v = r->head + r->hdrs[i].value_off;
		end = v + strlen(v);
		while (end > v) {
			const char *s = end, *a, *b;
			char tmp[INET6_ADDRSTRLEN + 8];
			struct in_addr a4;
			struct in6_addr a6;
			size_t n;

			while (s > v && s[-1] != ',')
				s--;
			for (a = s; a < end && (*a == ' ' || *a == '\t'); a++)
				;
			for (b = end; b > a && (b[-1] == ' ' || b[-1] == '\t'); b--)
				;
			end = s > v ? s - 1 : v;
			if (a == b)
				continue;
			/* "[v6]", "[v6]:port", "v4:port" as well as bare */
			if (*a == '[') {
				const char *rb = memchr(a, ']', (size_t)(b - a));
				if (rb == NULL)
					return found ? 0 : -1;
				a++;
				b = rb;
			} else if (memchr(a, '.', (size_t)(b - a)) != NULL) {
				const char *colon = memchr(a, ':', (size_t)(b - a));
				if (colon != NULL)
					b = colon;
			}
			n = (size_t)(b - a);
			if (n >= sizeof(tmp))
				return found ? 0 : -1;
			memcpy(tmp, a, n);
			tmp[n] = '\0';
			memset(key, 0, 16);
			if (inet_pton(AF_INET, tmp, &a4) == 1) {
				key[10] = key[11] = 0xff;
				memcpy(key + 12, &a4, 4);
			} else if (inet_pton(AF_INET6, tmp, &a6) == 1)
				memcpy(key, &a6, 16);
			else
				return found ? 0 : -1;
			found = 1;
			if (!conf_addr_trusted(&m->conf, key))
				return 0;
		}
	}
	return found ? 0 : -1;
}

/*
 * A request through a trusted proxy: count the connection under its
 * client.  -1 when that client is at its cap: answered 429, closing.
 */
static int
conn_client_from_proxy(struct conn *c)
{
	uint8_t key[16];
	struct ipent *e;

	if (xff_client(c->m, &c->req, key) != 0)
		return 0;	/* the proxy's own request: not counted */
	if (c->ip != NULL && memcmp(c->ip->addr, key, 16) == 0)
		return 0;
	if (ip_take(c->m, key, &e) != 0) {
		c->keep_alive = 0;
		uv_read_stop((uv_stream_t *)&c->tcp);
		conn_respond(c, 429, "text/plain",
		    "too many connections from your address\n", 39,
		    "Retry-After: 1\r\n");
		c->close_after_write = 1;
		return -1;
	}
	if (c->ip != NULL)
		ip_put(c->ip);
	c->ip = e;
	return 0;
}

/* ---------------------------------------------------------------- */
/* idle connections */

static unsigned
open_conns(const struct master *m)
{
	return m->nconns - nclosing;
}

/* Idle: no request under way, nothing to write, not going anywhere. */
static void
conn_idle_update(struct conn *c)
{
	struct master *m = c->m;
	int idle = !c->closing && !c->handed_off && !c->in_request &&
	    c->stream == NULL && !c->close_after_write && !c->read_paused &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0;

	if (idle == c->idle)
		return;
	if (idle) {
		c->idle_since_ms = mono_ms();
		TAILQ_INSERT_TAIL(&idle_conns, c, idle_link);
		/* paused at the cap: there is room to make now */
		front_start(m);
	} else
		TAILQ_REMOVE(&idle_conns, c, idle_link);
	c->idle = idle;
}

static void
idle_close(struct conn *c, const char *why)
{
	struct master *m = c->m;
	static uint64_t logged_ms;

	master_count(m, SC_idle_closed);
	if (log_allowed(&logged_ms))
		log_warnx("%u connections open, %s; closing idle keep-alive "
		    "connections, oldest first (said once a minute)",
		    open_conns(m), why);
	log_debug("%s: idle for %llu ms; closed to make room", c->peer,
	    (unsigned long long)(mono_ms() - c->idle_since_ms));
	conn_close(c);
}

/*
 * The connection to close for room: the longest idle, among the first few,
 * that made a request or has been silent a second (one just accepted has
 * not had the time to send its first).  NULL if none.
 */
static struct conn *
idle_victim(void)
{
	uint64_t now = mono_ms();
	struct conn *c;
	int n = 0;

	TAILQ_FOREACH(c, &idle_conns, idle_link) {
		if (c->requests > 0 || now - c->idle_since_ms >= PRESSURE_IDLE_MS)
			return c;
		if (++n == 16)
			break;
	}
	return NULL;
}

/* Above 3/4 of the cap an idle connection keeps its socket a second. */
static void
sweep_cb(uv_timer_t *t)
{
	struct master *m = t->data;
	uint64_t now = mono_ms();
	struct conn *c;

	while ((c = TAILQ_FIRST(&idle_conns)) != NULL &&
	    now - c->idle_since_ms >= PRESSURE_IDLE_MS &&
	    open_conns(m) * 4 >= (unsigned)m->conf.max_http_connections * 3)
		idle_close(c, "over 3/4 of MAX_HTTP_CONNECTIONS");
	if (open_conns(m) * 4 < (unsigned)m->conf.max_http_connections * 3)
		uv_timer_stop(t);
}

static void
pressure_check(struct master *m)
{
	if (open_conns(m) * 4 < (unsigned)m->conf.max_http_connections * 3)
		return;
	if (sweep_timer.data == NULL) {
		uv_timer_init(m->loop, &sweep_timer);
		sweep_timer.data = m;
	}
	if (!uv_is_active((uv_handle_t *)&sweep_timer))
		uv_timer_start(&sweep_timer, sweep_cb, 250, 250);
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
	struct master *m = c->m;

	if (c->closing)
		return;
	master_count(m, SC_http_timeouts);
	if (c->stream != NULL && (c->stream->deferred || c->stream->waiting)) {
		static uint64_t logged_ms;

		/* a queue of slow queries would say it once per client */
		if (log_allowed(&logged_ms))
			log_info("%s: no answer from the store within "
			    "KEEPALIVE_TIMEOUT (%d s); closing (said once a "
			    "minute)", c->peer, m->conf.keepalive_timeout);
		conn_close(c);
		return;
	}
	if (c->stream != NULL) {
		log_info("%s: answer not read for KEEPALIVE_TIMEOUT (%d s); "
		    "closing", c->peer, m->conf.keepalive_timeout);
		conn_close(c);
		return;
	}
	if (c->in_request) {
		/* slow headers: tell the client why, then go */
		log_info("%s: request not complete within HEADER_TIMEOUT (%d s); "
		    "answering 408", c->peer, m->conf.header_timeout);
		c->keep_alive = 0;
		conn_respond(c, 408, "text/plain", "request timeout\n", 16, NULL);
		c->close_after_write = 1;
		/* if the peer does not read, the next tick still closes */
		uv_timer_start(&c->timer, conn_timer_cb, 2000, 0);
		c->in_request = 0;
		return;
	}
	log_debug("%s: idle for KEEPALIVE_TIMEOUT (%d s); closing", c->peer,
	    m->conf.keepalive_timeout);
	conn_close(c);
}

static void
conn_arm_timer(struct conn *c)
{
	struct master *m = c->m;
	uint64_t ms = (uint64_t)(c->in_request ? m->conf.header_timeout :
	    m->conf.keepalive_timeout) * 1000;
	uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
}

static void
front_accept_one(struct master *m, struct listener *l, int fd,
    const struct sockaddr *sa)
{
	struct conn *c;
	struct ipent *ip = NULL;
	uint8_t key[16];
	int one = 1, via_proxy;

	addr_key(sa, key);
	via_proxy = conf_addr_trusted(&m->conf, key);
	/* over its cap the client is shut out at once: nothing read, nothing
	 * allocated.  A proxy's connections are counted per request. */
	if (!via_proxy && ip_take(m, key, &ip) != 0) {
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || http_req_init(&c->req, m->conf.max_header_size,
	    m->conf.max_headers, m->conf.max_body_size) != 0) {
		free(c);
		if (ip != NULL)
			ip_put(ip);
		close(fd);
		return;
	}
	c->ip = ip;
	c->via_proxy = via_proxy;
	c->magic = CONN_MAGIC;
	c->m = m;
	c->listener = l->kind;
	c->accepted_us = mono_us();
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	peer_name(fd, c->peer, sizeof(c->peer));
	uv_tcp_init(m->loop, &c->tcp);
	uv_timer_init(m->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	m->nconns++;	/* before any close: the close callback counts down */
	if (uv_tcp_open(&c->tcp, fd) != 0) {
		close(fd);
		conn_close(c);
		return;
	}
	conn_arm_timer(c);
	uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
	conn_idle_update(c);
	pressure_check(m);
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
	struct master *m = p->loop->data;
	struct conn *c;

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (open_conns(m) >= (unsigned)m->conf.max_http_connections &&
		    (c = idle_victim()) != NULL) {
			/* its descriptor is free at once; the handles follow */
			idle_close(c, "the MAX_HTTP_CONNECTIONS cap");
		}
		if (open_conns(m) >= (unsigned)m->conf.max_http_connections) {
			/* resumes when a connection closes; said once a minute
			 * at most, counted every time */
			static uint64_t logged_ms;
			uint64_t now = mono_ms();

			master_count(m, SC_accept_capped);
			if (logged_ms == 0 || now - logged_ms >= 60000) {
				logged_ms = now;
				log_warnx("accept: %u connections open, the "
				    "MAX_HTTP_CONNECTIONS cap; pausing until one "
				    "closes", m->nconns);
			}
			front_stop(m);
			return;
		}
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			front_accept_one(m, l, fd, (struct sockaddr *)&ss);
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
			master_count(m, SC_accept_paused);
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
	if (open_conns(m) >= (unsigned)m->conf.max_http_connections &&
	    idle_victim() == NULL)
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

static void stream_free(struct conn *c);

static void
conn_handle_closed_cb(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct master *m = c->m;	/* c is freed below */

	if (--c->open_handles > 0)
		return;
	stream_free(c);
	http_req_free(&c->req);
	free(c->extra);
	free(c->pending);
	c->magic = 0;
	free(c);
	nclosing--;
	m->nconns--;
	front_start(m);	/* may have been paused at the cap */
}

static void
conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	nclosing++;
	conn_idle_update(c);
	if (c->ip != NULL) {
		ip_put(c->ip);
		c->ip = NULL;
	}
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed_cb);
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
}

struct wreq {
	uv_write_t	 req;
	struct conn	*c;
	size_t		 len;		/* counted in queued_bytes */
	int		 stream;	/* a piece of c->stream */
	char		 data[];
};

static void stream_written(struct conn *c);

static void
conn_write_cb(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct conn *c = wr->c;
	int piece = wr->stream;

	queued_bytes -= wr->len;
	free(wr);
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->stream != NULL) {
		/* the stream's end resumes reading and closing */
		if (piece)
			stream_written(c);
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
	conn_idle_update(c);
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
	 * one large answer is fine */
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
	wr->len = (size_t)hl + len;
	wr->stream = 0;
	b = uv_buf_init(wr->data, (unsigned)(hl + len));
	if (!keep)
		c->close_after_write = 1;
	if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb) != 0) {
		free(wr);
		conn_close(c);
		return;
	}
	queued_bytes += wr->len;
}

/* ---------------------------------------------------------------- */
/* streamed answers */

static void
stream_free(struct conn *c)
{
	struct stream *st = c->stream;

	if (st == NULL)
		return;
	c->stream = NULL;
	st->done(st->arg);
	free(st);
	nstreams--;
}

/* Queue len bytes at data, which a struct wreq holds; 0 or -1. */
static int
stream_write(struct conn *c, struct wreq *wr, const char *data, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);

	wr->c = c;
	wr->len = 0;	/* what a stream holds is its reservation */
	wr->stream = 1;
	if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb) != 0) {
		free(wr);
		return -1;
	}
	c->stream->inflight++;
	return 0;
}

/* The next piece: at most one in flight, so what a client that does not
 * read holds here is one piece, the rest waiting in the producer. */
static void
stream_pump(struct conn *c)
{
	struct stream *st = c->stream;
	struct wreq *wr = malloc(sizeof(*wr) + STREAM_HDR + STREAM_PIECE + 8);
	char *body, hex[STREAM_HDR + 1];
	ssize_t n;
	int hl;

	if (wr == NULL) {
		conn_close(c);
		return;
	}
	body = wr->data + STREAM_HDR;
	n = st->fill(st->arg, body, STREAM_PIECE);
	if (n == CONN_FILL_AGAIN) {
		/* the producer waits for its source: conn_stream_wake() */
		free(wr);
		st->waiting = 1;
		return;
	}
	if (n < 0) {
		/* the head is gone: a cut connection is the only way to say
		 * the body is incomplete */
		free(wr);
		conn_close(c);
		return;
	}
	if (n == 0) {
		st->finished = 1;
		if (!st->chunked) {
			free(wr);
			return;
		}
		memcpy(body, "0\r\n\r\n", 5);
		if (stream_write(c, wr, body, 5) != 0)
			conn_close(c);
		return;
	}
	if (!st->chunked) {
		if (stream_write(c, wr, body, (size_t)n) != 0)
			conn_close(c);
		return;
	}
	hl = snprintf(hex, sizeof(hex), "%zx\r\n", (size_t)n);
	memcpy(body - hl, hex, (size_t)hl);
	memcpy(body + n, "\r\n", 2);
	if (stream_write(c, wr, body - hl, (size_t)hl + (size_t)n + 2) != 0)
		conn_close(c);
}

/* Requests that came in behind the stream, then reading again. */
static void
conn_resume(struct conn *c)
{
	char *p = c->pending;
	size_t n = c->pending_len;

	c->pending = NULL;
	c->pending_len = 0;
	c->read_paused = 0;
	uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
	if (p != NULL) {
		conn_feed(c, p, n);
		free(p);
	} else
		conn_idle_update(c);
}

static void
stream_written(struct conn *c)
{
	struct stream *st = c->stream;

	if (--st->inflight > 0)
		return;
	if (!st->finished && !st->waiting) {
		conn_arm_timer(c);	/* progress: the stall clock restarts */
		stream_pump(c);
	}
	if (c->closing || c->stream != st || !st->finished || st->inflight > 0)
		return;
	if (!st->keep) {
		stream_free(c);
		conn_close(c);
		return;
	}
	stream_free(c);
	conn_arm_timer(c);
	conn_resume(c);
}

int
conn_stream(struct conn *c, int status, const char *content_type,
    const char *extra, conn_fill_cb fill, conn_free_cb done, void *arg)
{
	struct master *m = c->m;
	static uint64_t logged_ms;
	struct stream *st = NULL;
	struct wreq *wr = NULL;
	char head[1024];
	int chunked, hl;

	if (c->closing) {
		done(arg);
		return -1;
	}
	/* each stream holds up to a piece: reserve it before the first */
	if (queued_bytes + (size_t)(nstreams + 1) * (STREAM_HDR + STREAM_PIECE) >
	    (size_t)m->conf.answer_budget) {
		done(arg);
		master_count(m, SC_answer_budget_refused);
		if (log_allowed(&logged_ms))
			log_warnx("%s: answered 503: %zu bytes of answers queued "
			    "and %u streams, over ANSWER_BUDGET (%d); said once a "
			    "minute", c->peer, queued_bytes, nstreams,
			    m->conf.answer_budget);
		conn_respond(c, 503, "text/plain", "too many answers queued; "
		    "retry later\n", 37, "Retry-After: 2\r\n");
		return -1;
	}
	/* HTTP/1.0 has no chunks: the body ends with the connection */
	chunked = c->req.parser.http_major > 1 ||
	    (c->req.parser.http_major == 1 && c->req.parser.http_minor >= 1);
	hl = http_response_head_stream(head, sizeof(head), status, content_type,
	    chunked, conn_keep_alive(c) && !c->close_after_write, extra);
	if (hl < 0 || (st = calloc(1, sizeof(*st))) == NULL ||
	    (wr = malloc(sizeof(*wr) + (size_t)hl)) == NULL) {
		free(st);
		done(arg);
		conn_close(c);
		return -1;
	}
	st->fill = fill;
	st->done = done;
	st->arg = arg;
	st->chunked = chunked;
	st->keep = chunked && conn_keep_alive(c) && !c->close_after_write;
	c->stream = st;
	nstreams++;
	conn_idle_update(c);
	memcpy(wr->data, head, (size_t)hl);
	if (stream_write(c, wr, wr->data, (size_t)hl) != 0) {
		conn_close(c);	/* the close frees the stream */
		return -1;
	}
	if (c->head_only)
		st->finished = 1;
	else
		stream_pump(c);
	return 0;
}

void
conn_stream_wake(struct conn *c)
{
	struct stream *st = c->stream;

	if (c->closing || st == NULL || !st->waiting)
		return;
	st->waiting = 0;
	conn_arm_timer(c);
	if (st->inflight == 0) {
		stream_pump(c);
		/* an empty rest: the end went out, or nothing is left */
		if (!c->closing && c->stream == st && st->finished &&
		    st->inflight == 0) {
			st->inflight = 1;
			stream_written(c);
		}
	}
}

/*
 * A deferred answer is a stream whose head is not written yet: the
 * connection reads nothing more, requests behind it wait in pending, and
 * done(arg) is called once, when the answer is out or the connection went
 * first.  It holds no piece until it starts, so it is not counted against
 * ANSWER_BUDGET before conn_defer_stream().
 */
int
conn_defer(struct conn *c, conn_free_cb done, void *arg)
{
	struct stream *st;

	if (c->closing || (st = calloc(1, sizeof(*st))) == NULL) {
		done(arg);
		if (!c->closing)
			conn_close(c);
		return -1;
	}
	st->done = done;
	st->arg = arg;
	st->deferred = 1;
	st->head_only = c->head_only;
	c->stream = st;
	nstreams++;
	conn_idle_update(c);
	return 0;
}

void
conn_defer_respond(struct conn *c, int status, const char *content_type,
    const char *body, size_t len, const char *extra)
{
	struct stream *st = c->stream;
	struct wreq *wr;
	char head[1024];
	int hl;

	if (c->closing || st == NULL || !st->deferred)
		return;
	st->deferred = 0;
	st->keep = conn_keep_alive(c) && !c->close_after_write;
	hl = http_response_head(head, sizeof(head), status, content_type, len,
	    st->keep, extra);
	if (st->head_only)
		len = 0;
	if (hl < 0 || (wr = malloc(sizeof(*wr) + (size_t)hl + len)) == NULL) {
		conn_close(c);
		return;
	}
	memcpy(wr->data, head, (size_t)hl);
	if (len)
		memcpy(wr->data + hl, body, len);
	st->finished = 1;
	conn_arm_timer(c);
	if (stream_write(c, wr, wr->data, (size_t)hl + len) != 0)
		conn_close(c);
}

int
conn_defer_stream(struct conn *c, int status, const char *content_type,
    const char *extra, conn_fill_cb fill)
{
	struct master *m = c->m;
	struct stream *st = c->stream;
	struct wreq *wr;
	char head[1024];
	int hl;

	if (c->closing || st == NULL || !st->deferred)
		return -1;
	if (queued_bytes + (size_t)nstreams * (STREAM_HDR + STREAM_PIECE) >
	    (size_t)m->conf.answer_budget) {
		master_count(m, SC_answer_budget_refused);
		conn_defer_respond(c, 503, "text/plain", "too many answers "
		    "queued; retry later\n", 37, "Retry-After: 2\r\n");
		return -1;
	}
	st->deferred = 0;
	st->fill = fill;
	st->chunked = c->req.parser.http_major > 1 ||
	    (c->req.parser.http_major == 1 && c->req.parser.http_minor >= 1);
	st->keep = st->chunked && conn_keep_alive(c) && !c->close_after_write;
	hl = http_response_head_stream(head, sizeof(head), status, content_type,
	    st->chunked, st->keep, extra);
	if (hl < 0 || (wr = malloc(sizeof(*wr) + (size_t)hl)) == NULL) {
		conn_close(c);
		return -1;
	}
	memcpy(wr->data, head, (size_t)hl);
	conn_arm_timer(c);
	if (stream_write(c, wr, wr->data, (size_t)hl) != 0) {
		conn_close(c);
		return -1;
	}
	if (st->head_only)
		st->finished = 1;
	else
		stream_pump(c);
	return 0;
}

/* ---------------------------------------------------------------- */
/* requests */

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

	master_count(c->m, SC_http_bad_requests);
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

	if (c->closing)
		return;
	if (n < 0) {
		/* EOF or reset.  A half-closed client still gets answers to
		 * what it sent: close once the writes are done. */
		uv_read_stop(s);
		if (n == UV_EOF && uv_stream_get_write_queue_size(s) > 0) {
			c->close_after_write = 1;
			conn_idle_update(c);
		} else
			conn_close(c);
		return;
	}
	conn_feed(c, b->base, (size_t)n);
}

/* Parse and answer what p holds; what follows a streamed answer waits. */
static void
conn_feed(struct conn *c, const char *p, size_t left)
{
	uv_stream_t *s = (uv_stream_t *)&c->tcp;
	size_t used;
	int rc;

	while (left > 0 && !c->closing && !c->handed_off) {
		if (!c->in_request) {
			c->in_request = 1;
			conn_arm_timer(c);	/* the header clock starts */
			conn_idle_update(c);
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
		master_count(c->m, SC_http_requests);
		c->requests++;
		c->keep_alive = c->req.keep_alive;
		c->in_request = 0;
		if (c->via_proxy && conn_client_from_proxy(c) != 0)
			return;
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
		if (c->stream != NULL && !c->closing) {
			/* answered in pieces: the next request waits its turn */
			uv_read_stop(s);
			if (left > 0) {
				if ((c->pending = malloc(left)) == NULL) {
					conn_close(c);
					return;
				}
				memcpy(c->pending, p, left);
				c->pending_len = left;
			}
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
	if (!c->closing)
		conn_idle_update(c);
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
	struct master *m = c->m;
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
	len = ipc_encode(msg, sizeof(msg), IPC_HANDOFF, ++m->handoff_seq, payload,
	    sizeof(*ho) + c->extra_len);
	if (len < 0 || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
		goto busy;

	/* the worker that opened the call's session at the webhook first;
	 * then least loaded first; a worker whose channel is full is skipped */
	uint64_t skip = 0;
	int warm = prewarm_route(m, ho->ho_path);
	while (tried < 4) {
		int slot = tried == 0 && warm >= 0 ? warm :
		    master_pick_worker(m, skip);
		if (tried == 1 && warm >= 0)	/* its channel was full */
			master_count(m, SC_prewarm_fallback);
		if (slot < 0)
			break;
		tried++;
		skip |= 1ull << slot;
		if (send_fd(m->w[slot].chan, msg, (size_t)len, fd) == 0) {
			m->w[slot].handoffs_sent++;
			c->handed_off = 1;
			/* the worker has its own copy; ours closes without FIN */
			conn_close(c);
			return;
		}
		log_warn("sendmsg() to worker %d", slot);
	}
busy:
	master_count(m, SC_handoff_failed);
	c->keep_alive = 0;
	conn_respond(c, 503, "text/plain", "no worker available\n", 20, NULL);
}

void
conn_defer_handoff(struct conn *c)
{
	if (c->closing || c->stream == NULL || !c->stream->deferred)
		return;
	stream_free(c);
	conn_handoff(c, &c->req);
}
