/*
 * replay.c — one stream per call: the voice webhook's answers by CallSid,
 * and the used-token file (shm/tokfile.h) on the master's side.
 *
 * A signed webhook can be captured and sent again; each copy used to get a
 * fresh stream token, so a model session.  Twilio itself repeats a webhook
 * that timed out (protocols.md 2.3), and that repeat must still work.  So
 * the master keeps the answer it gave each CallSid until its token expires:
 *
 *  - a repeat while that answer's stream has not opened gets the very same
 *    TwiML, the same token in it, so at most one stream can follow;
 *  - once the stream has opened (the worker records the CallSid in the
 *    shared used-token table when it redeems the token), or the call is
 *    live or over in the call slots, a repeat gets no <Stream>.
 *
 * A transfer whose dial nobody answers may send the call back to its line
 * (`no_answer: "line"`): Twilio posts /voice again with the same CallSid,
 * or for a call placed here /outbound/<line> (the callee is the caller
 * again).  That URL carries a resume marker (proto/token.h) bound to the
 * CallSid, the line, the direction and an expiry; a good one is spent here (in the used-token table, and
 * its file) and lets one more stream be offered, whose token carries the
 * marker's expiry so the worker keys it apart from the first stream.
 *
 * The table is bounded: buckets of REPLAY_WAYS entries, an entry reusable
 * once its token has expired.  A full bucket refuses the call (busy)
 * rather than forget an answer whose token is still good.  Only the
 * master answers /voice, on its one loop: no lock.
 */
#include "daemon/master.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/token.h"
#include "shm/tokfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_WAYS		8
#define TOKFILE_CHECK_MS	60000	/* how often the file's size is looked at */
#define TOKFILE_COMPACT_AT	(256 * 1024)	/* bytes */

struct answer {
	char		 sid[SHM_SID_MAX];
	uint64_t	 expires;	/* Unix s, the token's; 0 free */
	char		*twiml;
	size_t		 len;
};

static struct answer	*table;
static uint32_t		 nbuckets;	/* a power of two */
static uint64_t		 seed;
static uint64_t		 next_check_ms;

static uint64_t
sid_hash(const char *sid)
{
	uint64_t h = seed ^ 1469598103934665603ULL;

	for (const char *p = sid; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	return h ^ h >> 29;
}

static int
table_init(const struct master *m)
{
	/* one bucket per two entries of the token table: at the most calls
	 * that table holds within a TTL (half its entries, two each), a
	 * bucket holds one answer on average, and a full one (8) is rare */
	uint32_t want = m->shm.hdr->sh_ntokens * 4 / REPLAY_WAYS;

	if (table != NULL)
		return 0;
	for (nbuckets = 64; nbuckets < want; nbuckets <<= 1)
		;
	/* a seed per start: nobody can pick CallSids that share a bucket */
	if (random_bytes(&seed, sizeof(seed)) != 0)
		seed = wall_ms();
	table = calloc((size_t)nbuckets * REPLAY_WAYS, sizeof(*table));
	return table == NULL ? -1 : 0;
}

static struct answer *
bucket(const char *sid)
{
	return &table[(sid_hash(sid) & (nbuckets - 1)) * REPLAY_WAYS];
}

/* A call with this CallSid in the call slots, live or ended. */
static int
call_seen(const struct master *m, const char *sid)
{
	for (unsigned i = 0; i < m->shm.hdr->sh_ncalls; i++) {
		struct shm_call *c = &m->shm.calls[i];
		uint32_t st = atomic_load_explicit(&c->cs_state,
		    memory_order_acquire);

		if ((st == CS_LIVE || st == CS_ENDED) &&
		    strncmp(c->cs_call_sid, sid, sizeof(c->cs_call_sid)) == 0)
			return 1;
	}
	return 0;
}

enum replay_verdict
replay_check(struct master *m, const char *sid, const char **twiml,
    size_t *len)
{
	uint64_t now = wall_ms() / 1000;
	struct answer *b;

	if (table_init(m) != 0)
		return REPLAY_NEW;	/* nothing remembered: no answer to repeat */
	if (shm_token_seen(&m->shm, shm_sid_key(sid), now) ||
	    call_seen(m, sid))
		return REPLAY_REFUSE;
	b = bucket(sid);
	for (int i = 0; i < REPLAY_WAYS; i++)
		if (b[i].expires > now && strcmp(b[i].sid, sid) == 0) {
			*twiml = b[i].twiml;
			*len = b[i].len;
			return REPLAY_REPEAT;
		}
	return REPLAY_NEW;
}

int
replay_resume(struct master *m, const char *sid, const char *line,
    int outbound, const char *marker, uint64_t *resume, const char **why)
{
	uint64_t now = wall_ms() / 1000, exp = 0, key;
	char path[4096];
	int rc, ob = 0;

	rc = resume_verify(m->conf.stream_secret, sid, line, marker,
	    strlen(marker), now, &exp, &ob);
	if (rc != TOKEN_OK) {
		*why = rc == TOKEN_ERR_EXPIRED ? "expired" : rc == TOKEN_ERR_MAC ?
		    "not ours, not this call's or not this line's" : "malformed";
		return -1;
	}
	/* an outbound call comes back to the outbound line, an inbound one
	 * to /voice: the marker says which it was */
	if (ob != outbound) {
		*why = ob ? "an outbound call's, on the inbound path" :
		    "an inbound call's, on the outbound path";
		return -1;
	}
	/* spent once, here and after a restart */
	key = shm_token_key(marker, strlen(marker));
	if ((rc = shm_token_use(&m->shm, key, exp, now)) != 0) {
		*why = rc > 0 ? "used already" : "no room to record it";
		return -1;
	}
	if (tokfile_path(m->conf.usage_csv_path, path, sizeof(path)) == 0)
		(void)tokfile_append(path, &key, 1, exp);
	*resume = exp;
	return 0;
}

int
replay_store(const struct master *m, const char *sid, uint64_t expires,
    const char *twiml, size_t len)
{
	uint64_t now = wall_ms() / 1000;
	struct answer *b, *e = NULL;
	char *copy;

	if (table_init(m) != 0)
		return -1;
	b = bucket(sid);
	for (int i = 0; i < REPLAY_WAYS && e == NULL; i++)
		if (b[i].expires <= now)
			e = &b[i];
	if (e == NULL || (copy = malloc(len)) == NULL)
		return -1;
	memcpy(copy, twiml, len);
	free(e->twiml);
	vr_strlcpy(e->sid, sid, sizeof(e->sid));
	e->twiml = copy;
	e->len = len;
	e->expires = expires;
	return 0;
}

/* ---------------------------------------------------------------- */
/* the used-token file */

void
replay_tokens_load(struct master *m)
{
	char path[4096];
	size_t loaded = 0, skipped = 0;
	int rc;

	if (tokfile_path(m->conf.usage_csv_path, path, sizeof(path)) != 0) {
		log_warnx("USAGE_CSV_PATH: too long for the used-token file "
		    "beside it; a restart forgets used stream tokens");
		return;
	}
	rc = tokfile_load(&m->shm, path, wall_ms() / 1000, &loaded, &skipped);
	if (rc != 0)
		log_warnx("%s: %s; used stream tokens from before this start "
		    "may be accepted again", path, strerror(-rc));
	else if (loaded > 0 || skipped > 0)
		log_info("%zu used stream token records loaded from %s%s",
		    loaded, path, skipped ? " (lines that did not parse "
		    "skipped)" : "");
	next_check_ms = mono_ms() + TOKFILE_CHECK_MS;
}

/* From the master's tick: compact the file once it has grown. */
void
replay_tokens_tick(struct master *m, uint64_t now_ms)
{
	char path[4096];
	struct stat st;
	int rc;

	if (now_ms < next_check_ms)
		return;
	next_check_ms = now_ms + TOKFILE_CHECK_MS;
	if (tokfile_path(m->conf.usage_csv_path, path, sizeof(path)) != 0 ||
	    stat(path, &st) != 0 || st.st_size < TOKFILE_COMPACT_AT)
		return;
	if ((rc = tokfile_compact(&m->shm, path, wall_ms() / 1000)) != 0)
		log_warnx("%s: compacting: %s", path, strerror(-rc));
}
