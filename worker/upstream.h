/*
 * upstream.h — one WebSocket client connection to the OpenAI Realtime API,
 * owned by a call.
 *
 * The connection walks RESOLVE -> CONNECT (each address in turn, IPv6 and
 * IPv4) -> TLS (wss only) -> UPGRADE -> OPEN, with a deadline per step
 * checked by upstream_tick().  When OPEN it sends the persona's
 * session.update before anything else; events queued earlier (caller audio
 * that arrived during the handshake) follow it in order.
 *
 * It reports to its call through three functions in relay.c:
 * relay_upstream_open(), relay_upstream_event() and relay_upstream_failed().
 * It is freed only after its socket's close callback (upstream_close() is
 * the one way to end it; relay_upstream_gone() is called at the very end).
 */
#ifndef VR_UPSTREAM_H
#define VR_UPSTREAM_H

#include <netinet/in.h>
#include <stdint.h>
#include <uv.h>

#include "personas/persona.h"
#include "proto/buf.h"
#include "proto/http_resp.h"
#include "proto/openai.h"
#include "proto/ws.h"
#include "worker/tls.h"

#define UPSTREAM_MAGIC 0x55505354u	/* "UPST" */
#define UPSTREAM_MAX_ADDRS 8

enum up_state {
	UP_RESOLVE,
	UP_CONNECT,
	UP_TLS,
	UP_UPGRADE,
	UP_OPEN,
	UP_CLOSING,	/* close frame queued; socket closes when drained */
	UP_CLOSED,	/* waiting for the close callback */
};

struct call;
struct worker;

struct upstream {
	uint32_t		 magic;
	struct call		*call;
	struct worker		*w;		/* the call's */
	const struct persona	*persona;
	enum up_state		 state;
	uint64_t		 id;		/* for logs: per worker */

	/* resolution and connection */
	uv_getaddrinfo_t	 gai;
	int			 gai_pending;
	struct sockaddr_storage	 addrs[UPSTREAM_MAX_ADDRS];
	int			 naddrs, addr_i;
	uv_tcp_t		 tcp;
	uv_connect_t		 creq;
	int			 tcp_init;	/* tcp handle initialised */
	int			 tcp_closing;
	uint64_t		 deadline_ms;	/* of the current step */
	char			 peer[64];

	/* bytes */
	int			 use_tls;
	struct tls_conn		 tls;
	struct buf		 cin;		/* ciphertext read, not yet decrypted */
	struct buf		 plain;		/* plaintext to encrypt (TLS) */
	struct buf		 out;		/* bytes for the socket */
	struct buf		 wbuf;		/* bytes on the wire */
	uv_write_t		 wreq;
	int			 writing;
	int			 dirty;		/* on the worker's flush list */
	struct upstream		*dirty_next;

	/* handshake */
	char			 ws_key[32];
	struct http_resp	 resp;
	int			 resp_init;

	/* WebSocket */
	struct ws_codec		 ws;
	int			 ws_ready;
	struct buf		 scratch;	/* events being built */
	struct buf		 pending;	/* events queued before OPEN */
	unsigned		 npending;
	uint64_t		 opened_ms, last_rx_ms, ping_ms;
	int			 ping_out;
	int			 session_sent;
	int			 failed;	/* already reported */
	int			 zombie;	/* waiting to be freed */
	const char		*close_reason;
	char			*tools_own;	/* the persona's tools, less some */
	char			*instr_own;	/* its instructions, filled in */
};

/* Start connecting for call c with persona p.  NULL on memory failure. */
struct upstream *upstream_new(struct call *c, const struct persona *p);
/* Send one event (JSON text).  Before OPEN it is queued (bounded: older
 * audio is dropped first, see the .c).  0 or -1 (the connection failed). */
int  upstream_send(struct upstream *up, const char *json, size_t len);
/* An outbound call's variables came with the stream's start after the
 * session opened: its templated instructions are sent again, filled. */
void upstream_refill_session(struct upstream *up);
/* Close: a close frame if open, then the socket.  Idempotent. */
void upstream_close(struct upstream *up, const char *reason);
/* Deadlines and keep-alive pings; called by the call's tick. */
void upstream_tick(struct upstream *up, uint64_t now);
/* Write what is queued (the worker's check handle calls this). */
void upstream_flush(struct upstream *up);
/* Free a closed upstream (the worker's check handle, never a callback of
 * the upstream itself). */
void upstream_destroy(struct upstream *up);
/* The worker's TLS context, made once after fork. */
int  upstream_global_init(struct worker *w, char *err, size_t errlen);
const char *upstream_state_name(enum up_state s);

#endif
