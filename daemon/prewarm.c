/*
 * prewarm.c — the warm first answer, the master's half.
 *
 * When the voice webhook admits a call, the master picks the worker that
 * will take its stream and tells it (IPC_PREWARM, with the stream token)
 * to open the model's session now: the TLS handshake and session.update
 * then overlap Twilio's work between our TwiML and its WebSocket upgrade,
 * and the greeting can start with the stream's first frames.  The master
 * remembers which worker has which token; the upgrade that carries the
 * token goes to that worker.  If it is gone (a respawned slot has another
 * pid), draining or its channel is full, the upgrade goes the usual way
 * and the call opens a session cold: never a lost call for the sake of a
 * faster one.  The worker closes a session nobody came for when its token
 * expires.
 *
 * The table is small and fixed: a slot per offered stream until its token
 * expires or its upgrade comes.  When it is full the call is not
 * prewarmed, which costs only the head start.
 */
#include "daemon/master.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define PREWARM_SLOTS	4096

struct warm_entry {
	uint64_t	key;		/* shm_token_key() of the token; 0 free */
	uint64_t	expires;	/* wall seconds, the token's */
	pid_t		pid;		/* the worker told */
	int		slot;
};

static struct warm_entry table[PREWARM_SLOTS];

/*
 * The session.update a line sends must be the same at the webhook as at
 * `start`.  An outbound call's instructions may name the callee and the
 * request's variables, which arrive with `start` only: such a line waits.
 * The greeting is filled later, at `start`, so it does not matter here.
 * ConversationRelay sessions are text sessions whose greeting Twilio
 * speaks: not prewarmed.
 */
static int
line_can_prewarm(const struct line *line, const struct persona *p,
    int outbound)
{
	if (line->transport == LINE_CONVERSATION_RELAY)
		return 0;
	if (outbound && p->instructions != NULL &&
	    strstr(p->instructions, "{{") != NULL)
		return 0;
	return 1;
}

/* A free slot, or NULL; *live: the sessions waiting for a stream. */
static struct warm_entry *
entry_free(uint64_t now_s, unsigned *live)
{
	struct warm_entry *e = NULL;

	*live = 0;
	for (int i = 0; i < PREWARM_SLOTS; i++) {
		if (table[i].key != 0 && table[i].expires > now_s)
			(*live)++;
		else if (e == NULL)
			e = &table[i];
	}
	return e;
}

void
prewarm_offer(struct master *m, const struct line *line,
    const struct persona *p, int outbound, const char *token,
    uint64_t expires, uint64_t webhook_us)
{
	static char msg[64 + sizeof(struct ipc_prewarm)];
	struct ipc_prewarm pw;
	struct warm_entry *e;
	size_t tlen = strlen(token);
	unsigned live;
	long len;
	int slot;

	if (!m->conf.prewarm)
		return;
	if (!line_can_prewarm(line, p, outbound)) {
		master_count(m, SC_prewarm_skipped);
		return;
	}
	/* sessions waiting for their stream count against the streams'
	 * cap, so webhooks whose streams never come cannot hold more
	 * model sessions than calls could */
	if (tlen >= sizeof(pw.pw_token) ||
	    (e = entry_free(wall_ms() / 1000, &live)) == NULL ||
	    master_streams_in_use(m) + live >=
	    (unsigned)m->conf.max_ws_connections ||
	    (slot = master_pick_worker(m, 0)) < 0)
		return;
	memset(&pw, 0, sizeof(pw));
	memcpy(pw.pw_token, token, tlen);
	pw.pw_webhook_us = webhook_us;
	len = ipc_encode(msg, sizeof(msg), IPC_PREWARM, 0, &pw, sizeof(pw));
	if (len < 0)
		return;
	if (send(m->w[slot].chan, msg, (size_t)len,
	    MSG_DONTWAIT | MSG_NOSIGNAL) != len) {
		/* a full channel: this call opens cold, as before */
		log_debug("prewarm to worker %d: %s", slot, strerror(errno));
		return;
	}
	e->key = shm_token_key(token, tlen);
	e->expires = expires;
	e->pid = m->w[slot].pid;
	e->slot = slot;
}

/*
 * The worker an upgrade to path should go to: the one holding its warm
 * session, if it is still the same process and takes calls; else -1 (and
 * a session that was opened is counted as a fallback).  The entry is
 * spent either way: one upgrade per token.
 */
int
prewarm_route(struct master *m, const char *path)
{
	const char *tok, *end;
	uint64_t key;
	struct worker_proc *wp;

	if ((tok = strrchr(path, '/')) == NULL)
		return -1;
	tok++;
	end = tok + strcspn(tok, "?#");
	if (end == tok)
		return -1;
	key = shm_token_key(tok, (size_t)(end - tok));
	for (int i = 0; i < PREWARM_SLOTS; i++) {
		struct warm_entry *e = &table[i];

		if (e->key != key)
			continue;
		e->key = 0;
		wp = &m->w[e->slot];
		if (e->expires <= wall_ms() / 1000)
			return -1;	/* the worker closed it, counted there */
		if (!wp->in_use || wp->retire || wp->pid != e->pid ||
		    wp->chan < 0 || atomic_load(&m->shm.workers[e->slot].sw_state)
		    != SW_READY) {
			master_count(m, SC_prewarm_fallback);
			log_info("stream upgrade: the worker that opened its "
			    "session is gone or not taking calls; another one "
			    "opens it");
			return -1;
		}
		return e->slot;
	}
	return -1;
}
