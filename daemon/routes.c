/*
 * routes.c — what the master answers.  On the public listener: the voice
 * webhook (TwiML), the WebSocket upgrades it hands off, the front page and
 * /healthz.  On the operator's: /health, /usage-data, /metrics and
 * /dashboard, behind ADMIN_TOKEN when it is set.
 *
 * Every answer comes from the config and the shared table; none waits on a
 * worker, on the disk or on the network.
 */
#include "daemon/master.h"
#include "daemon/store.h"
#include "daemon/outbound.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/csv.h"
#include "proto/form.h"
#include "proto/http.h"
#include "proto/sig.h"
#include "proto/token.h"
#include "proto/twiml.h"
#include "worker/app.h"

#include <ctype.h>
#include <strings.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX_VOICE	"/voice"
#define PREFIX_STREAM	"/media-stream/"
#define PREFIX_RELAY	"/relay/"
#define PREFIX_TRANSFER	"/transfer/"

/* A route (persona or tenant) is one path segment: [A-Za-z0-9_-]{1,32}. */
static int
route_valid(const char *s, size_t n)
{
	if (n == 0 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return 0;
	return 1;
}

static void
respond_text(struct conn *c, int status, const char *text)
{
	conn_respond(c, status, "text/plain; charset=utf-8", text, strlen(text),
	    NULL);
}

/* ---------------------------------------------------------------- */
/* /voice */

/* The public base URL for signatures and the stream URL, without a
 * trailing slash.  Empty PUBLIC_URL: https:// + the Host header. */
static int
public_base(const struct master *m, struct http_req *r, char *out, size_t len)
{
	const char *host;

	if (m->conf.public_url[0] != '\0')
		return (size_t)snprintf(out, len, "%s", m->conf.public_url) < len ?
		    0 : -1;
	host = http_req_header(r, "Host");
	if (host == NULL || host[0] == '\0' || strlen(host) > 255)
		return -1;
	for (const char *p = host; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-:[]", *p))
			return -1;
	snprintf(out, len, "https://%s", host);
	return 0;
}

/*
 * 1 if X-Twilio-Signature signs base + target and f (NULL: no body);
 * otherwise 0, the request answered (403, or 500) and a refusal counted
 * and logged, naming what was refused.  The whole URL, however long, is
 * checked: a signature over a prefix of it would accept any tail.
 */
static int
twilio_signed(struct conn *c, struct http_req *r, const char *base,
    const char *target, const struct form *f, const char *what)
{
	struct master *m = conn_master(c);
	const char *hdr = http_req_header(r, "X-Twilio-Signature");
	char *url;
	int ok;

	if (asprintf(&url, "%s%s", base, target) < 0) {
		respond_text(c, 500, "out of memory\n");
		return 0;
	}
	ok = sig_validate(m->conf.twilio_auth_token, url, f, hdr);
	free(url);
	if (!ok) {
		master_count(m, SC_sig_rejected);
		log_warnx("%s: %s with %s X-Twilio-Signature refused",
		    conn_peer(c), what, hdr ? "a wrong" : "no");
		respond_text(c, 403, "invalid signature\n");
	}
	return ok;
}

/*
 * The public base URL into base, and (VALIDATE_TWILIO_SIGNATURE) the
 * signature over it, the request's target and f: 1, or 0 with the request
 * answered (400 for a base there is none of, or as twilio_signed()).
 */
static int
signed_base(struct conn *c, struct http_req *r, const struct form *f,
    const char *what, char *base, size_t len)
{
	struct master *m = conn_master(c);

	if (public_base(m, r, base, len) != 0) {
		respond_text(c, 400, "no usable Host header, or PUBLIC_URL too "
		    "long\n");
		return 0;
	}
	return !m->conf.validate_signature ||
	    twilio_signed(c, r, base, http_req_url(r), f, what);
}

static void
twiml_send(struct conn *c, struct twiml *t)
{
	if (twiml_end(t) != 0) {
		respond_text(c, 500, "out of memory\n");
	} else
		conn_respond(c, 200, "text/xml; charset=utf-8", t->buf, t->len,
		    NULL);
	twiml_free(t);
}

static void
voice_refuse(struct conn *c, const char *message)
{
	struct master *m = conn_master(c);
	struct twiml t = { 0 };

	twiml_begin(&t);
	twiml_say(&t, message, m->conf.say_voice);
	twiml_hangup(&t);
	twiml_send(c, &t);
}

/*
 * A caller gets a stream only with a ledger entry to bill: a new caller
 * takes one now (the fold then always finds it), and with the ledger full
 * is refused rather than given minutes nothing counts.  0 or -1 (refused,
 * counted, logged at most once a minute).
 */
static int
ledger_reserve(struct master *m, const char *sid, const char *caller,
    const char *masked)
{
	static uint64_t logged_ms;
	uint64_t now;

	if (shm_ledger_find(&m->shm, caller) >= 0 ||
	    shm_ledger_get_locked(&m->shm, caller) >= 0)
		return 0;
	master_count(m, SC_refused_ledger_full);
	now = mono_ms();
	if (logged_ms == 0 || now - logged_ms >= 60000) {
		logged_ms = now;
		log_warnx("call %s from %s refused: the usage ledger is full "
		    "(%u callers); new callers are refused until "
		    "LEDGER_CAPACITY is raised (and the daemon restarted)", sid,
		    masked, atomic_load(&m->shm.hdr->sh_ledger_cap));
	}
	return -1;
}

/*
 * An inbound call admitted at the webhook: its record starts here, ringing
 * (or queued, as Twilio says), with the number it called, which the stream
 * does not carry to the record.  The worker's record at `start` makes it
 * in-progress; the call's start is the earlier of the two.
 */
static void
record_admitted(struct master *m, const char *sid, const char *from,
    const char *to, const char *line, const char *status)
{
	uint64_t now = wall_ms();
	json_t *r;

	if (m->store == NULL)
		return;
	if (status == NULL || strcmp(status, "queued") != 0)
		status = "ringing";
	r = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "type", "call",
	    "call_sid", sid, "direction", "inbound", "from", from, "line", line,
	    "started_at", (json_int_t)now, "status", status);
	if (r != NULL && to != NULL && to[0] != '\0' && strlen(to) < 128)
		json_object_set_new(r, "to", json_string(to));
	store_post(m->store, r);
	store_post(m->store, json_pack("{s:s,s:s,s:s,s:I}", "type", "status",
	    "call_sid", sid, "status", status, "at", (json_int_t)now));
}

/* What the webhook's answer needs once the caller's minutes are known:
 * copies, since a deferred answer outlives the request. */
struct voice_adm {
	char			 sid[SHM_SID_MAX];
	char			 to[512];
	int			 has_to;
	char			 route[33];
	char			 base[600];
	char			 masked[64];
	struct stream_token	 tok;
	uint64_t		 resume;
	int			 outbound;
	char			 call_status[16];	/* Twilio's CallStatus */
};

/* Answer now, or (deferred) the request whose turn conn_defer() holds. */
static void
voice_send(struct conn *c, int deferred, int status, const char *type,
    const char *body, size_t len)
{
	if (deferred)
		conn_defer_respond(c, status, type, body, len, NULL);
	else
		conn_respond(c, status, type, body, len, NULL);
}

static void
voice_text(struct conn *c, int deferred, int status, const char *text)
{
	voice_send(c, deferred, status, "text/plain; charset=utf-8", text,
	    strlen(text));
}

static void
voice_say_bye(struct conn *c, int deferred, const char *message)
{
	struct master *m = conn_master(c);
	struct twiml t = { 0 };

	twiml_begin(&t);
	twiml_say(&t, message, m->conf.say_voice);
	twiml_hangup(&t);
	if (twiml_end(&t) != 0)
		voice_text(c, deferred, 500, "out of memory\n");
	else
		voice_send(c, deferred, 200, "text/xml; charset=utf-8", t.buf,
		    t.len);
	twiml_free(&t);
}

/*
 * The admission proper, with used the caller's minutes (ms) on every host
 * as known, remote the part of it other hosts used (kept in the ledger
 * entry for the worker's limit; with set_remote only).
 */
static void
voice_admit(struct conn *c, const struct voice_adm *va, uint64_t used,
    uint64_t remote, int set_remote, int deferred)
{
	struct master *m = conn_master(c);
	struct stream_token tok = va->tok;
	struct twiml t = { 0 };
	char tokbuf[TOKEN_MAX_LEN], stream_url[2048], action[700], left[32];
	const char *base = va->base, *routebuf = va->route, *sid = va->sid,
	    *masked = va->masked;
	const struct line *line;
	uint64_t free_ms;
	int relay, idx;

	/* looked up again: a reload may have come while the database was
	 * asked */
	if ((line = line_find(&m->lines, routebuf)) == NULL)
		line = &m->lines.fallback;
	if (line_persona(line, &m->personas, routebuf) == NULL) {
		voice_text(c, deferred, 404, "no such route\n");
		return;
	}
	if (m->draining) {
		master_count(m, SC_refused_draining);
		voice_say_bye(c, deferred, m->conf.busy_message);
		return;
	}
	/* the line's app decides (a line with no quota admits every caller;
	 * minutes are still counted in the ledger) */
	free_ms = (uint64_t)(line->free_minutes * 60000.0 + 0.5);
	if (!app_admit(line, tok.caller, used)) {
		master_count(m, SC_refused_minutes);
		log_info("call %s from %s refused: %.2f of %.2f minutes used",
		    sid, masked, used / 60000.0, line->free_minutes);
		voice_say_bye(c, deferred, m->conf.out_of_minutes_message);
		return;
	}
	if (master_streams_in_use(m) >= (unsigned)m->conf.max_ws_connections) {
		master_count(m, SC_refused_capacity);
		log_warnx("call %s from %s refused: %d streams in use", sid,
		    masked, m->conf.max_ws_connections);
		voice_say_bye(c, deferred, m->conf.busy_message);
		return;
	}

	if (ledger_reserve(m, sid, tok.caller, masked) != 0) {
		voice_say_bye(c, deferred, m->conf.busy_message);
		return;
	}
	/* the worker's limit counts the other hosts' minutes as read now */
	if (set_remote && (idx = shm_ledger_find(&m->shm, tok.caller)) >= 0)
		shm_remote_set(&m->shm, idx, remote);

	/* the stream URL carries the route and a token for this call */
	vr_strlcpy(tok.call_sid, sid, sizeof(tok.call_sid));
	vr_strlcpy(tok.route, routebuf, sizeof(tok.route));
	tok.expires = wall_ms() / 1000 + (uint64_t)m->conf.stream_token_ttl;
	tok.resume = va->resume;
	if (token_make(m->conf.stream_secret, &tok, tokbuf, sizeof(tokbuf)) < 0) {
		voice_text(c, deferred, 400, "call facts too long\n");
		return;
	}
	relay = line->transport == LINE_CONVERSATION_RELAY;
	if (strncmp(base, "https://", 8) == 0)
		snprintf(stream_url, sizeof(stream_url), "wss://%s%s%s/%s",
		    base + 8, relay ? PREFIX_RELAY : PREFIX_STREAM, routebuf,
		    tokbuf);
	else
		snprintf(stream_url, sizeof(stream_url), "ws://%s%s%s/%s",
		    base + 7, relay ? PREFIX_RELAY : PREFIX_STREAM, routebuf,
		    tokbuf);

	twiml_begin(&t);
	/* a recorded greeting (and its beep) plays before the stream opens */
	if (m->conf.greeting_url[0] != '\0')
		twiml_play(&t, m->conf.greeting_url);
	if (relay) {
		/* the session's end comes back to the action URL, with the
		 * hand-off the worker wrote */
		snprintf(action, sizeof(action), "%s%s%s/ended", base,
		    PREFIX_RELAY, routebuf);
		twiml_connect_relay_open(&t, action, stream_url,
		    (const char *const *)line->relay_attrs);
	} else
		twiml_connect_stream_open(&t, NULL, stream_url, NULL);
	twiml_parameter(&t, "callSid", sid);
	twiml_parameter(&t, "caller", tok.caller);
	if (va->has_to)
		twiml_parameter(&t, "called", va->to);
	twiml_parameter(&t, "route", routebuf);
	if (line_has_quota(line))
		snprintf(left, sizeof(left), "%.2f", (free_ms - used) / 60000.0);
	else
		snprintf(left, sizeof(left), "unlimited");
	twiml_parameter(&t, "minutesLeft", left);
	if (va->outbound)
		outbound_params(sid, &t);
	if (relay)
		twiml_connect_relay_close(&t);
	else {
		twiml_connect_stream_close(&t);
		/* Twilio runs these once the stream's socket closes */
		twiml_say(&t, m->conf.after_stream_message, m->conf.say_voice);
		twiml_hangup(&t);
	}
	if (twiml_end(&t) != 0) {
		twiml_free(&t);
		voice_text(c, deferred, 500, "out of memory\n");
		return;
	}
	/* remembered until the token expires, for a repeat of this webhook
	 * (a resumed call's marker is spent: no repeat of it is answered) */
	if (va->resume == 0 && replay_store(m, sid, tok.expires, t.buf,
	    t.len) != 0) {
		twiml_free(&t);
		master_count(m, SC_refused_capacity);
		log_warnx("call %s from %s refused: no room to remember its "
		    "answer (too many calls within STREAM_TOKEN_TTL)", sid,
		    masked);
		voice_say_bye(c, deferred, m->conf.busy_message);
		return;
	}
	if (!va->outbound && va->resume == 0)
		record_admitted(m, sid, tok.caller, va->has_to ? va->to : NULL,
		    routebuf, va->call_status);
	log_info("call %s from %s to route %s: stream offered (%s minutes left)",
	    sid, masked, routebuf, left);
	voice_send(c, deferred, 200, "text/xml; charset=utf-8", t.buf, t.len);
	twiml_free(&t);
	/* the model's session opens while Twilio reads the TwiML */
	prewarm_offer(m, line, line_persona(line, &m->personas, routebuf),
	    va->outbound, tokbuf, tok.expires, mono_us());
}

/*
 * The shared minutes came back (ans), or did not in time (NULL).  The
 * caller has used the larger of this host's ledger and what this host
 * reported to the database (a ledger file lost or reset), plus what the
 * other hosts reported.  Without an answer: this host's ledger plus the
 * other hosts' minutes as last read.
 */
static void
voice_shared_go(struct conn *c, const json_t *ans, void *ctx)
{
	struct master *m = conn_master(c);
	const struct voice_adm *va = ctx;
	uint64_t local = shm_usage_ms(&m->shm, va->tok.caller, mono_ms());
	uint64_t remote, mine, used;

	if (ans == NULL) {
		remote = shm_remote_ms(&m->shm, va->tok.caller);
		voice_admit(c, va, local + remote, 0, 0, 1);
		return;
	}
	master_count(m, SC_shared_reads);
	mine = (uint64_t)json_integer_value(json_object_get(ans, "mine"));
	used = (mine > local ? mine : local) +
	    (uint64_t)json_integer_value(json_object_get(ans, "others"));
	remote = used - local;
	voice_admit(c, va, used, remote, 1, 1);
}

/*
 * What the three webhooks of a line share before they read the call: /voice
 * (and /outbound's TwiML request), POST /relay/<line>/ended and POST
 * /transfer/<line>/done.
 */
enum line_route_kind {
	LR_VOICE,	/* POST or GET; no route is the default route; a line,
			   or a persona's route with the configuration's keys */
	LR_RELAY,	/* POST; a ConversationRelay line */
	LR_TRANSFER,	/* POST; any line */
};

struct line_req {
	const struct line *line;
	struct form	 body;		/* a POST's form body, a GET's query */
	struct form	 query;		/* a POST's query string (not LR_RELAY) */
	int		 is_post;
	char		 route[33];
	char		 base[600];	/* public_base() */
};

static void
line_req_free(struct line_req *lr)
{
	form_free(&lr->body);
	form_free(&lr->query);
}

/*
 * The method, the route and its line, the parameters and Twilio's
 * signature over them (what names the request in the refusal's log line).
 * 1 with lr filled: line_req_free() it; otherwise 0, the request answered
 * (405, 404, 400 or the signature's 403) and nothing to free.
 */
static int
line_route(struct conn *c, struct http_req *r, const char *route, size_t rlen,
    enum line_route_kind kind, const char *what, struct line_req *lr)
{
	struct master *m = conn_master(c);
	const char *q = strchr(http_req_url(r), '?');

	memset(lr, 0, sizeof(*lr));
	lr->is_post = strcmp(http_req_method(r), "POST") == 0;
	if (!lr->is_post && (kind != LR_VOICE ||
	    strcmp(http_req_method(r), "GET") != 0)) {
		conn_respond(c, 405, "text/plain", "method not allowed\n", 19,
		    kind == LR_VOICE ? "Allow: POST, GET\r\n" : "Allow: POST\r\n");
		return 0;
	}
	if (rlen == 0 && kind == LR_VOICE) {
		route = m->conf.default_route;
		rlen = strlen(route);
	} else if (!route_valid(route, rlen)) {
		respond_text(c, 404, "no such route\n");
		return 0;
	}
	memcpy(lr->route, route, rlen);
	lr->route[rlen] = '\0';
	lr->line = line_find(&m->lines, lr->route);
	switch (kind) {
	case LR_VOICE:
		if (lr->line == NULL)
			lr->line = &m->lines.fallback;
		if (line_persona(lr->line, &m->personas, lr->route) == NULL) {
			respond_text(c, 404, "no such route\n");
			return 0;
		}
		break;
	case LR_RELAY:
		if (lr->line == NULL ||
		    lr->line->transport != LINE_CONVERSATION_RELAY) {
			respond_text(c, 404, "no such ConversationRelay line\n");
			return 0;
		}
		break;
	case LR_TRANSFER:
		if (lr->line == NULL) {
			respond_text(c, 404, "no such line\n");
			return 0;
		}
		break;
	}

	if (lr->is_post ? form_parse(&lr->body, r->body ? r->body : "",
	    r->body_len) : form_parse(&lr->body, q ? q + 1 : "",
	    q ? strlen(q + 1) : 0)) {
		master_count(m, SC_http_bad_requests);
		respond_text(c, 400, "malformed form body\n");
		return 0;
	}
	/* a POST's query string: the resume marker of a transfer's way back */
	if (kind != LR_RELAY && lr->is_post && q != NULL &&
	    form_parse(&lr->query, q + 1, strlen(q + 1))) {
		master_count(m, SC_http_bad_requests);
		respond_text(c, 400, "malformed query string\n");
		goto refused;
	}
	if (!signed_base(c, r, lr->is_post ? &lr->body : NULL, what, lr->base,
	    sizeof(lr->base)))
		goto refused;
	return 1;
refused:
	line_req_free(lr);
	return 0;
}

/*
 * The voice webhook, and (outbound) Twilio's request for the TwiML of a
 * call placed here: then the callee (To) is the caller the call is billed
 * and recorded under, and the stream carries the request's parameters.
 */
static void
route_voice_any(struct conn *c, struct http_req *r, const char *route,
    size_t rlen, int outbound)
{
	struct master *m = conn_master(c);
	struct line_req lr;
	struct stream_token tok;
	struct voice_adm va;
	const char *marker, *why;
	uint64_t resume = 0;
	char masked[64];
	const char *sid, *from, *to, *prev;
	size_t prev_len;

	if (!line_route(c, r, route, rlen, LR_VOICE, "voice webhook", &lr))
		return;
	marker = form_get(lr.is_post ? &lr.query : &lr.body, "resume");
	sid = form_get(&lr.body, "CallSid");
	from = form_get(&lr.body, "From");
	to = form_get(&lr.body, "To");
	if (outbound) {
		const char *swap = from;
		from = to;
		to = swap;
	}
	if (sid == NULL || sid[0] == '\0' || strlen(sid) >= SHM_SID_MAX) {
		respond_text(c, 400, "missing CallSid\n");
		goto out;
	}
	for (const char *p = sid; *p; p++)
		if (!isalnum((unsigned char)*p)) {
			respond_text(c, 400, "malformed CallSid\n");
			goto out;
		}
	/* From becomes a ledger key, a CSV cell and a TwiML parameter */
	if (from != NULL && (!caller_valid(from) || strlen(from) >= SHM_PHONE_MAX)) {
		master_count(m, SC_bad_caller);
		log_warnx("%s: call %s refused with 400: From is not an E.164 "
		    "number, client:, sip: or anonymous", conn_peer(c), sid);
		respond_text(c, 400, "malformed From\n");
		goto out;
	}
	if (to != NULL && strlen(to) >= sizeof(va.to)) {
		respond_text(c, 400, "malformed To\n");
		goto out;
	}
	if (from == NULL || from[0] == '\0')
		from = "anonymous";
	/* the Url's token finds a call whose create Twilio has not answered
	 * yet: it learns its sid here */
	if (outbound && !outbound_known(sid, form_get(lr.is_post ? &lr.query :
	    &lr.body, "t"))) {
		log_warnx("%s: outbound TwiML asked for call %s, which was not "
		    "placed here (or is over)", conn_peer(c), sid);
		voice_refuse(c, m->conf.after_stream_message);
		goto out;
	}
	master_count(m, SC_voice_requests);
	memset(&tok, 0, sizeof(tok));
	vr_strlcpy(tok.caller, from, SHM_PHONE_MAX);	/* what the ledger keys on */
	mask_phone(tok.caller, masked, sizeof(masked));
	/* back from a transfer nobody answered: a good marker, signed with
	 * the URL, opens one more stream; any other goes the usual way */
	if (marker != NULL) {
		if (replay_resume(m, sid, lr.route, outbound, marker, &resume,
		    &why) == 0) {
			master_count(m, SC_voice_resumes);
			log_info("call %s: back on %sroute %s after a transfer",
			    sid, outbound ? "the outbound " : "", lr.route);
			goto admit;
		}
		log_warnx("%s: voice webhook for call %s with a resume marker "
		    "%s", conn_peer(c), sid, why);
	}
	switch (replay_check(m, sid, &prev, &prev_len)) {
	case REPLAY_REPEAT:
		/* Twilio's retry of a webhook that timed out */
		master_count(m, SC_voice_repeats);
		log_info("call %s: webhook repeated before its stream opened: "
		    "the same answer", sid);
		conn_respond(c, 200, "text/xml; charset=utf-8", prev, prev_len,
		    NULL);
		goto out;
	case REPLAY_REFUSE:
		master_count(m, SC_voice_replays);
		log_warnx("%s: voice webhook for call %s refused: the call's "
		    "stream has opened already (a replayed webhook?)",
		    conn_peer(c), sid);
		voice_refuse(c, m->conf.busy_message);
		goto out;
	case REPLAY_NEW:
		break;
	}

admit:
	memset(&va, 0, sizeof(va));
	vr_strlcpy(va.sid, sid, sizeof(va.sid));
	vr_strlcpy(va.to, to ? to : "", sizeof(va.to));
	va.has_to = to != NULL;
	vr_strlcpy(va.route, lr.route, sizeof(va.route));
	vr_strlcpy(va.base, lr.base, sizeof(va.base));
	vr_strlcpy(va.masked, masked, sizeof(va.masked));
	va.tok = tok;
	va.resume = resume;
	va.outbound = outbound;
	vr_strlcpy(va.call_status, form_get(&lr.body, "CallStatus") ?
	    form_get(&lr.body, "CallStatus") : "", sizeof(va.call_status));
	/* with DATABASE_URL, a line with a quota reads what the caller used
	 * on every host first; not answering in time is not a refusal */
	if (!m->draining && line_has_quota(lr.line) && shared_on(m)) {
		struct voice_adm *held = malloc(sizeof(*held));

		if (held != NULL) {
			*held = va;
			if (shared_minutes(c, tok.caller, voice_shared_go, held,
			    free) == 0)
				goto out;
			free(held);
		}
		master_count(m, SC_shared_fallbacks);
	}
	voice_admit(c, &va, shm_usage_ms(&m->shm, tok.caller, mono_ms()) +
	    (shared_on(m) ? shm_remote_ms(&m->shm, tok.caller) : 0), 0, 0, 0);
out:
	line_req_free(&lr);
}

static void
route_voice(struct conn *c, struct http_req *r, const char *route, size_t rlen)
{
	route_voice_any(c, r, route, rlen, 0);
}

void
routes_voice_outbound(struct conn *c, struct http_req *r, const char *route,
    size_t rlen)
{
	if (rlen == 0) {
		respond_text(c, 404, "no such route\n");
		return;
	}
	route_voice_any(c, r, route, rlen, 1);
}

int
routes_signed(struct conn *c, struct http_req *r, struct form *f,
    const char *what)
{
	char base[600];

	if (!conn_master(c)->conf.validate_signature)
		return 1;
	return signed_base(c, r, f, what, base, sizeof(base));
}

/* ---------------------------------------------------------------- */
/* POST /relay/<line>/ended: a ConversationRelay session is over */

/*
 * Twilio asks the <Connect action> URL what comes next, with HandoffData:
 * the text of the worker's `end` ({"reason":"transfer","to":"<label>"} or
 * {"reason":"hangup"}).  A transfer to one of the line's targets dials it;
 * anything else (a hang-up, an error, a target not in the list, no
 * hand-off at all) says goodbye and hangs up.
 */
static void
route_relay_ended(struct conn *c, struct http_req *r, const char *route,
    size_t rlen)
{
	struct master *m = conn_master(c);
	struct line_req lr;
	struct twiml t = { 0 };
	const struct line_target *tg = NULL;
	const char *sid, *ho, *st, *to = NULL, *reason = NULL;
	char action[700];
	json_t *j = NULL;

	if (!line_route(c, r, route, rlen, LR_RELAY, "relay action callback",
	    &lr))
		return;
	sid = form_get(&lr.body, "CallSid");
	if (sid == NULL || strlen(sid) >= SHM_SID_MAX)
		sid = "(no CallSid)";
	ho = form_get(&lr.body, "HandoffData");
	st = form_get(&lr.body, "SessionStatus");
	if (ho != NULL && ho[0] != '\0' && strlen(ho) <= 4096 &&
	    (j = json_loads(ho, 0, NULL)) != NULL) {
		reason = json_string_value(json_object_get(j, "reason"));
		to = json_string_value(json_object_get(j, "to"));
	}
	twiml_begin(&t);
	if (reason != NULL && strcmp(reason, "transfer") == 0) {
		if (to != NULL && (tg = line_target_find(lr.line, to)) != NULL) {
			master_count(m, SC_relay_transfers);
			log_info("call %s on line %s: transfer to \"%s\"", sid,
			    lr.route, tg->label);
			/* the dial's end comes back with its length */
			snprintf(action, sizeof(action), "%s%s%s/done", lr.base,
			    PREFIX_TRANSFER, lr.route);
			twiml_dial_with(&t, tg->number, tg->sip, NULL, 0,
			    action);
		} else {
			master_count(m, SC_relay_transfer_refused);
			log_warnx("call %s on line %s: transfer to a target not in "
			    "the line's transfer_targets refused; hanging up", sid,
			    lr.route);
		}
	} else
		log_info("call %s on line %s: session ended (%s%s%.64s)", sid,
		    lr.route, reason ? reason : "no hand-off",
		    st != NULL ? ", status " : "", st != NULL ? st : "");
	if (tg == NULL) {
		twiml_say(&t, m->conf.after_stream_message, m->conf.say_voice);
		twiml_hangup(&t);
	}
	twiml_send(c, &t);
	json_decref(j);
	line_req_free(&lr);
}

/* ---------------------------------------------------------------- */
/* POST /transfer/<line>/done: a transfer's <Dial action> */

/*
 * The dialled leg of a transfer ended.  Twilio says how (DialCallStatus)
 * and how long the person talked (DialCallDuration, seconds); the call's
 * record keeps both, and billed_s counts that time beside the stream's.
 * What follows: a hang-up once somebody answered; otherwise the way back
 * to the line (the resume marker the worker put in this URL) or the
 * line's voicemail message.
 */
static void
route_transfer_done(struct conn *c, struct http_req *r, const char *route,
    size_t rlen)
{
	struct master *m = conn_master(c);
	struct line_req lr;
	struct twiml t = { 0 };
	const char *sid, *st, *dur, *marker;
	char url[1200];
	uint64_t exp = 0;
	long secs = -1;
	int answered, outbound = 0;

	if (!line_route(c, r, route, rlen, LR_TRANSFER,
	    "transfer action callback", &lr))
		return;
	sid = form_get(&lr.body, "CallSid");
	st = form_get(&lr.body, "DialCallStatus");
	dur = form_get(&lr.body, "DialCallDuration");
	if (sid == NULL || sid[0] == '\0' || strlen(sid) >= SHM_SID_MAX ||
	    strspn(sid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789") != strlen(sid)) {
		respond_text(c, 400, "missing or malformed CallSid\n");
		goto out;
	}
	if (st == NULL || st[0] == '\0' || strlen(st) > 32)
		st = "unknown";
	if (dur != NULL && dur[0] != '\0' && strlen(dur) < 8 &&
	    strspn(dur, "0123456789") == strlen(dur))
		secs = strtol(dur, NULL, 10);
	answered = strcmp(st, "completed") == 0 || strcmp(st, "answered") == 0;
	if (secs > 0)
		shm_count(m->shm.hdr->sh_counters, SC_transfers_billed_ms,
		    (uint64_t)secs * 1000);
	if (m->store != NULL) {
		json_t *rec = json_pack("{s:s,s:s,s:s}", "type", "call",
		    "call_sid", sid, "transfer_status", st);

		if (rec != NULL && secs >= 0)
			json_object_set_new(rec, "transfer_s", json_integer(secs));
		store_post(m->store, rec);
	}
	log_info("call %s on line %s: the transfer's dial ended %s after %ld s",
	    sid, lr.route, st, secs > 0 ? secs : 0);
	marker = form_get(&lr.query, "resume");
	twiml_begin(&t);
	if (answered)
		twiml_hangup(&t);
	else if (lr.line->transfer_back && marker != NULL && marker[0] != '\0' &&
	    strlen(marker) < RESUME_MAX_LEN &&
	    strspn(marker, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_.") == strlen(marker) &&
	    resume_verify(m->conf.stream_secret, sid, lr.route, marker,
	    strlen(marker), wall_ms() / 1000, &exp, &outbound) == TOKEN_OK) {
		/* the way back by the path the call came in on: a call placed
		 * here to its outbound line, whose request makes the callee
		 * the caller again; /voice or /outbound spends the marker */
		snprintf(url, sizeof(url), "%s%s/%s?resume=%s", lr.base,
		    outbound ? "/outbound" : PREFIX_VOICE, lr.route, marker);
		twiml_redirect(&t, url);
	} else {
		twiml_say(&t, lr.line->transfer_voicemail ?
		    lr.line->transfer_voicemail : "Goodbye.", m->conf.say_voice);
		twiml_hangup(&t);
	}
	twiml_send(c, &t);
out:
	line_req_free(&lr);
}

/* ---------------------------------------------------------------- */
/* /health */

static json_t *
hist_json(struct master *m, enum shm_hist_id id)
{
	struct shm_hist h;

	shm_hist_sum(&m->shm, id, &h);
	return json_pack("{s:I,s:I,s:I,s:I,s:I}",
	    "count", (json_int_t)h.h_count,
	    "p50_us", (json_int_t)shm_hist_percentile(&h, 0.50),
	    "p99_us", (json_int_t)shm_hist_percentile(&h, 0.99),
	    "max_us", (json_int_t)h.h_max_us,
	    "mean_us", (json_int_t)(h.h_count ? h.h_sum_us / h.h_count : 0));
}

static const char *const hist_names[SH__COUNT] = {
	"relay_in", "relay_out", "response", "barge_in", "handoff",
	"session_ready", "greeting",
};

static void
route_health(struct conn *c, struct http_req *r)
{
	struct master *m = conn_master(c);
	json_t *root, *workers, *metrics, *counters, *latency, *calls;
	uint64_t now = mono_ms(), now_wall = wall_ms(), today_ms, today_calls;
	unsigned live = 0, ready = 0, expected = 0;
	const char *status;
	char *text;

	workers = json_array();
	for (unsigned i = 0; i < m->shm.hdr->sh_nworkers; i++) {
		struct shm_worker *sw = &m->shm.workers[i];
		uint32_t st = atomic_load(&sw->sw_state);
		uint64_t hb = atomic_load(&sw->sw_heartbeat_ms);

		if (st == SW_FREE && !m->w[i].in_use)
			continue;
		if (m->w[i].in_use && !m->w[i].retire)
			expected++;
		if (st == SW_READY && !m->w[i].retire)
			ready++;
		json_array_append_new(workers, json_pack(
		    "{s:i,s:i,s:s,s:i,s:i,s:i,s:I,s:i,s:I,s:I}",
		    "slot", (int)i,
		    "pid", (int)atomic_load(&sw->sw_pid),
		    "state", shm_worker_state_names[st < SW__COUNT ? st : 0],
		    "generation", (int)atomic_load(&sw->sw_generation),
		    "active_streams", (int)atomic_load(&sw->sw_active_streams),
		    "live_calls", (int)atomic_load(&sw->sw_live_calls),
		    "calls_total", (json_int_t)atomic_load(&sw->sw_calls_total),
		    "restarts", (int)atomic_load(&sw->sw_restarts),
		    "last_heartbeat_ms_ago", (json_int_t)(hb && now > hb ? now - hb : 0),
		    "uptime_s", (json_int_t)(m->w[i].pid && m->w[i].started_ms ?
		    (now - m->w[i].started_ms) / 1000 : 0)));
	}

	calls = json_array();
	for (unsigned i = 0; i < m->shm.hdr->sh_ncalls; i++) {
		struct shm_call_view v;
		char masked[64];

		if (shm_call_read(&m->shm, (int)i, &v) != 0 || v.state != CS_LIVE)
			continue;
		live++;
		mask_phone(v.phone, masked, sizeof(masked));
		json_array_append_new(calls, json_pack(
		    "{s:s,s:s,s:s,s:s,s:i,s:f,s:I,s:I}",
		    "call_sid", v.call_sid,
		    "caller", masked,
		    "route", v.route,
		    "persona", v.persona[0] ? v.persona : v.route,
		    "worker", v.worker,
		    "duration_s", now > v.start_ms ? (now - v.start_ms) / 1000.0 : 0.0,
		    "frames_in", (json_int_t)v.frames_in,
		    "frames_out", (json_int_t)v.frames_out));
	}

	/* calls started today (UTC), ended and live: see shm_today */
	shm_today(&m->shm, now, now_wall, &today_ms, &today_calls);
	metrics = json_pack("{s:I,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
	    "total_calls", (json_int_t)shm_counter_sum(&m->shm, SC_total_calls),
	    "active_calls", (int)live,
	    "failed_calls", (json_int_t)shm_counter_sum(&m->shm, SC_failed_calls),
	    "sms_sent", (json_int_t)shm_counter_sum(&m->shm, SC_sms_sent),
	    "sms_failed", (json_int_t)shm_counter_sum(&m->shm, SC_sms_failed),
	    "tool_calls", (json_int_t)shm_counter_sum(&m->shm, SC_tool_calls),
	    "api_errors", (json_int_t)shm_counter_sum(&m->shm, SC_api_errors),
	    "calls_today", (json_int_t)today_calls,
	    "minutes_today", today_ms / 60000.0);
	counters = json_object();
#define X(name, help) json_object_set_new(counters, #name, \
	    json_integer((json_int_t)shm_counter_sum(&m->shm, SC_##name)));
	SHM_COUNTERS(X)
#undef X
	latency = json_object();
	for (int i = 0; i < SH__COUNT; i++)
		json_object_set_new(latency, hist_names[i], hist_json(m, i));

	if (m->draining)
		status = "draining";
	else if (ready < expected || expected == 0 || shm_ledger_full(&m->shm))
		status = "degraded";
	else
		status = "ok";
	root = json_pack("{s:s,s:s,s:I,s:I,s:i,s:i,s:i,s:i,s:i,s:o,s:o,s:o,s:o,"
	    "s:o}",
	    "status", status,
	    "version", VOXRELAY_VERSION,
	    "uptime_s", (json_int_t)((now - m->shm.hdr->sh_birth_ms) / 1000),
	    "time_ms", (json_int_t)now_wall,
	    "generation", (int)m->generation,
	    "active_streams", (int)master_streams_in_use(m),
	    "max_streams", m->conf.max_ws_connections,
	    "signature_validation", m->conf.validate_signature,
	    "http_connections", (int)m->nconns,
	    "workers", workers,
	    "metrics", metrics,
	    "counters", counters,
	    "latency_us", latency,
	    "calls", calls);
	if (root == NULL) {
		respond_text(c, 500, "out of memory\n");
		return;
	}
	json_object_set_new(root, "ledger", json_pack("{s:i,s:i,s:b,s:I,s:b}",
	    "callers", (int)atomic_load(&m->shm.hdr->sh_ledger_used),
	    "capacity", (int)atomic_load(&m->shm.hdr->sh_ledger_cap),
	    "full", shm_ledger_full(&m->shm),
	    "version", (json_int_t)atomic_load(&m->shm.hdr->sh_ledger_version),
	    "saved", m->flushed_version == atomic_load(&m->shm.hdr->sh_ledger_version)));
	if (m->store != NULL) {
		struct store_stats ss;

		store_get_stats(m->store, &ss);
		json_object_set_new(root, "records", json_pack(
		    "{s:b,s:i,s:I,s:I,s:I,s:I,s:I,s:I}",
		    "up", ss.up, "version", ss.version,
		    "queued", (json_int_t)ss.queued,
		    "backlog", (json_int_t)ss.backlog,
		    "written", (json_int_t)ss.written,
		    "journaled", (json_int_t)ss.journaled,
		    "rejected", (json_int_t)ss.rejected,
		    "dropped", (json_int_t)ss.dropped));
	} else
		json_object_set_new(root, "records", json_pack("{s:b}", "up", 0));
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text == NULL) {
		respond_text(c, 500, "out of memory\n");
		return;
	}
	conn_respond(c, 200, "application/json", text, strlen(text), NULL);
	free(text);
}

/* ---------------------------------------------------------------- */
/* /usage-data */

/*
 * The answer is written in pieces as the client reads it (conn_stream), so
 * what it holds must not be the whole CSV.  Its order is a sorted array of
 * ledger slots, shared by every answer in progress and rebuilt only when a
 * caller is added (slots are never freed, so a new one is merged into the
 * last array instead of sorting them all again).  Each piece reads the
 * ledger and the live calls as they are when it is written: a row is never
 * counted in both (the master folds calls in, and not while it writes).
 */
struct usage_index {
	unsigned	 refs;
	uint32_t	 used;		/* sh_ledger_used it covers */
	size_t		 n;
	uint32_t	 slot[];	/* ledger slots, by phone number */
};

static struct usage_index *usage_idx;	/* the latest */
static uint8_t *usage_seen;		/* slots in usage_idx, a bit each */

struct usage_live {
	char		 phone[SHM_PHONE_MAX];
	uint64_t	 ms, last_call_ms;
	uint32_t	 calls;
};

static struct usage_live *live;		/* this piece's live calls */
static size_t nlive;

struct usage_stream {
	struct master	*m;
	struct usage_index *ix;
	size_t		 pos;
	char		(*extra)[SHM_PHONE_MAX];	/* not in the ledger */
	size_t		 nextra, epos;
	int		 head_done;
};

/* ledger slots by phone number; arg: the master */
static int
slot_cmp(const void *x, const void *y, void *arg)
{
	const struct master *m = arg;

	return strcmp(m->shm.ledger[*(const uint32_t *)x].le_phone,
	    m->shm.ledger[*(const uint32_t *)y].le_phone);
}

static void
usage_index_put(struct usage_index *ix)
{
	if (ix != NULL && --ix->refs == 0 && ix != usage_idx)
		free(ix);
}

static struct usage_index *
usage_index_get(struct master *m)
{
	uint32_t used = atomic_load(&m->shm.hdr->sh_ledger_used);
	unsigned nl = m->shm.hdr->sh_nledger;
	struct usage_index *ix, *old = usage_idx;
	uint32_t *add = NULL;
	size_t nadd = 0, i, j, k;

	if (old != NULL && old->used == used) {
		old->refs++;
		return old;
	}
	if (usage_seen == NULL && (usage_seen = calloc(nl / 8 + 1, 1)) == NULL)
		return NULL;
	uint64_t t0 = mono_us();

	if ((add = malloc((size_t)(used - (old ? old->used : 0)) *
	    sizeof(*add) + sizeof(*add))) == NULL)
		return NULL;
	for (i = 0; i < nl; i++)
		if (atomic_load(&m->shm.ledger[i].le_state) != 0 &&
		    !(usage_seen[i / 8] & (1u << (i % 8))) &&
		    nadd < used - (old ? old->used : 0))
			add[nadd++] = (uint32_t)i;
	qsort_r(add, nadd, sizeof(*add), slot_cmp, m);
	ix = malloc(sizeof(*ix) + ((old ? old->n : 0) + nadd) * sizeof(uint32_t));
	if (ix == NULL) {
		free(add);
		return NULL;
	}
	/* merge the new slots into the old order */
	for (i = j = k = 0; old != NULL && i < old->n; ) {
		if (j < nadd && slot_cmp(&add[j], &old->slot[i], m) < 0)
			ix->slot[k++] = add[j++];
		else
			ix->slot[k++] = old->slot[i++];
	}
	while (j < nadd)
		ix->slot[k++] = add[j++];
	for (j = 0; j < nadd; j++)
		usage_seen[add[j] / 8] |= 1u << (add[j] % 8);
	free(add);
	ix->n = k;
	ix->used = used;
	ix->refs = 1;
	usage_idx = ix;
	if (old != NULL && old->refs == 0)
		free(old);
	log_debug("/usage-data: %zu callers in order, %zu new, in %llu ms", k,
	    nadd, (unsigned long long)((mono_us() - t0) / 1000));
	return ix;
}

void
routes_usage_warm(struct master *m)
{
	usage_index_put(usage_index_get(m));
}

static int
live_cmp(const void *x, const void *y)
{
	return strcmp(((const struct usage_live *)x)->phone,
	    ((const struct usage_live *)y)->phone);
}

/* The live (and ended, not yet folded) calls now, one entry a number. */
static int
usage_live_collect(struct master *m, uint64_t now)
{
	unsigned nc = m->shm.hdr->sh_ncalls;
	size_t i, o;

	if (live == NULL && (live = calloc(nc, sizeof(*live))) == NULL)
		return -1;
	nlive = 0;
	for (i = 0; i < nc; i++) {
		struct shm_call_view v;
		struct usage_live *l;

		if (shm_call_read(&m->shm, (int)i, &v) != 0)
			continue;
		l = &live[nlive++];
		vr_strlcpy(l->phone, v.phone, sizeof(l->phone));
		l->ms = (v.state == CS_ENDED ? v.end_ms : now) - v.start_ms;
		l->calls = 1;
		l->last_call_ms = v.start_wall_ms;
	}
	if (nlive > 1)
		qsort(live, nlive, sizeof(*live), live_cmp);
	for (i = o = 0; i < nlive; i++) {
		if (o > 0 && strcmp(live[o - 1].phone, live[i].phone) == 0) {
			live[o - 1].ms += live[i].ms;
			live[o - 1].calls++;
			if (live[i].last_call_ms > live[o - 1].last_call_ms)
				live[o - 1].last_call_ms = live[i].last_call_ms;
		} else
			live[o++] = live[i];
	}
	nlive = o;
	return 0;
}

static void
usage_row_fill(struct master *m, struct usage_row *u, const char *phone,
    int slot)
{
	struct usage_live key, *l;

	memset(u, 0, sizeof(*u));
	vr_strlcpy(u->phone, phone, sizeof(u->phone));
	if (slot >= 0) {
		struct shm_ledger *e = &m->shm.ledger[slot];

		u->used_ms = atomic_load(&e->le_used_ms);
		u->calls = atomic_load(&e->le_calls);
		u->last_call_ms = atomic_load(&e->le_last_call_ms);
	}
	if (nlive == 0)
		return;
	vr_strlcpy(key.phone, phone, sizeof(key.phone));
	l = bsearch(&key, live, nlive, sizeof(*live), live_cmp);
	if (l == NULL)
		return;
	u->used_ms += l->ms;
	u->calls += l->calls;
	if (l->last_call_ms > u->last_call_ms)
		u->last_call_ms = l->last_call_ms;
}

static ssize_t
usage_fill(void *arg, char *buf, size_t cap)
{
	struct usage_stream *us = arg;
	struct master *m = us->m;
	size_t off = 0;
	enum { LINE_MAX_ = 256 };	/* a longer row is left out, as ever */

	if (usage_live_collect(m, mono_ms()) != 0)
		return -1;
	if (!us->head_done) {
		off = csv_usage_header(buf, cap);
		us->head_done = 1;
	}
	while (cap - off >= LINE_MAX_) {
		const char *lp = NULL, *ep = NULL;
		struct usage_row r;
		int n;

		if (us->pos < us->ix->n)
			lp = m->shm.ledger[us->ix->slot[us->pos]].le_phone;
		if (us->epos < us->nextra)
			ep = us->extra[us->epos];
		if (lp == NULL && ep == NULL)
			break;
		if (lp != NULL && (ep == NULL || strcmp(lp, ep) < 0))
			usage_row_fill(m, &r, lp, (int)us->ix->slot[us->pos++]);
		else {
			/* a first caller's call may have been folded since */
			usage_row_fill(m, &r, ep, shm_ledger_find(&m->shm, ep));
			us->epos++;
		}
		/* an entry its webhook took, no call made yet: not a row */
		if (r.calls == 0 && r.used_ms == 0)
			continue;
		n = csv_usage_format(&r, m->conf.free_call_minutes, buf + off,
		    LINE_MAX_);
		if (n < 0 || n >= LINE_MAX_)
			continue;
		off += (size_t)n;
	}
	return (ssize_t)off;
}

static void
usage_free(void *arg)
{
	struct usage_stream *us = arg;

	usage_index_put(us->ix);
	free(us->extra);
	free(us);
}

static int
extra_cmp(const void *x, const void *y)
{
	return strcmp(x, y);
}

static void
route_usage(struct conn *c)
{
	struct master *m = conn_master(c);
	static char (*scratch)[SHM_PHONE_MAX];
	struct usage_stream *us = calloc(1, sizeof(*us));
	unsigned nc = m->shm.hdr->sh_ncalls;
	size_t n = 0;

	if (scratch == NULL)
		scratch = calloc(nc, sizeof(*scratch));
	if (us == NULL || scratch == NULL ||
	    (us->ix = usage_index_get(m)) == NULL) {
		free(us);
		respond_text(c, 500, "out of memory\n");
		return;
	}
	us->m = m;
	/* callers on their first call are not in the ledger yet */
	for (unsigned i = 0; i < nc; i++) {
		struct shm_call_view v;

		if (shm_call_read(&m->shm, (int)i, &v) != 0 ||
		    shm_ledger_find(&m->shm, v.phone) >= 0)
			continue;
		vr_strlcpy(scratch[n++], v.phone, SHM_PHONE_MAX);
	}
	if (n > 1) {
		size_t o = 1;

		qsort(scratch, n, sizeof(*scratch), extra_cmp);
		for (size_t i = 1; i < n; i++)
			if (strcmp(scratch[o - 1], scratch[i]) != 0)
				memcpy(scratch[o++], scratch[i], SHM_PHONE_MAX);
		n = o;
	}
	if (n > 0) {
		if ((us->extra = malloc(n * sizeof(*us->extra))) == NULL) {
			usage_free(us);
			respond_text(c, 500, "out of memory\n");
			return;
		}
		memcpy(us->extra, scratch, n * sizeof(*us->extra));
		us->nextra = n;
	}
	conn_stream(c, 200, "text/csv; charset=utf-8",
	    "Content-Disposition: inline; filename=\"usage.csv\"\r\n",
	    usage_fill, usage_free, us);
}

/* ---------------------------------------------------------------- */

/* ---------------------------------------------------------------- */
/* the public listener: what Twilio needs, a front page, /healthz */

static const char front_page[] =
	"<!doctype html>\n<html><head><meta charset=\"utf-8\">"
	"<title>voxrelay</title></head>\n<body><h1>voxrelay is running</h1>\n"
	"<p>Twilio voice webhook: <code>POST /voice</code>. Liveness: "
	"<a href=\"/healthz\">/healthz</a>.</p>\n</body></html>\n";

/* Liveness for a load balancer or a probe through the proxy: no figure
 * and no identifier, only whether new calls are taken. */
static void
route_healthz(struct conn *c)
{
	struct master *m = conn_master(c);
	static const char ok[] = "{\"status\":\"ok\"}";
	static const char draining[] = "{\"status\":\"draining\"}";

	if (m->draining)
		conn_respond(c, 503, "application/json", draining,
		    sizeof(draining) - 1, NULL);
	else
		conn_respond(c, 200, "application/json", ok, sizeof(ok) - 1, NULL);
}

/*
 * The line of a path prefix<line>suffix (url[0..plen) starts with prefix),
 * *rlen its length; NULL for any other path under prefix.
 */
static const char *
line_path(const char *url, size_t plen, const char *prefix,
    const char *suffix, size_t *rlen)
{
	const char *rt = url + strlen(prefix);
	const char *sl = memchr(rt, '/', plen - strlen(prefix));
	size_t sn = strlen(suffix);

	if (sl == NULL || (size_t)(url + plen - sl) != sn ||
	    strncmp(sl, suffix, sn) != 0)
		return NULL;
	*rlen = (size_t)(sl - rt);
	return rt;
}

static void
public_dispatch(struct conn *c, struct http_req *r)
{
	struct master *m = conn_master(c);
	const char *url = http_req_url(r), *method = http_req_method(r), *rt;
	size_t plen = strcspn(url, "?"), rtlen;
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (r->upgrade) {
		if ((strncmp(url, PREFIX_STREAM, strlen(PREFIX_STREAM)) != 0 &&
		    strncmp(url, PREFIX_RELAY, strlen(PREFIX_RELAY)) != 0) ||
		    !get || !http_req_header_has(r, "Upgrade", "websocket")) {
			master_count(m, SC_http_bad_requests);
			log_info("%s: upgrade refused with 404: not a WebSocket "
			    "upgrade to a media stream", conn_peer(c));
			conn_no_keepalive(c);
			respond_text(c, 404, "no WebSocket here\n");
			return;
		}
		if (m->draining) {
			master_count(m, SC_refused_draining);
			conn_no_keepalive(c);
			respond_text(c, 503, "shutting down\n");
			return;
		}
		/* the webhook checks the cap too, but tokens handed out
		 * together can all be redeemed at once: enforce it here */
		if (master_streams_in_use(m) >= (unsigned)m->conf.max_ws_connections) {
			master_count(m, SC_refused_capacity);
			log_warnx("%s: stream upgrade refused with 503: %d streams "
			    "in use (MAX_WEBSOCKET_CONNECTIONS)", conn_peer(c),
			    m->conf.max_ws_connections);
			conn_no_keepalive(c);
			respond_text(c, 503, "too many streams\n");
			return;
		}
		shared_upgrade(c, r);
		return;
	}
	if (plen == strlen(PREFIX_VOICE) && strncmp(url, PREFIX_VOICE, plen) == 0) {
		route_voice(c, r, "", 0);
		return;
	}
	if (plen > strlen(PREFIX_VOICE) + 1 &&
	    strncmp(url, PREFIX_VOICE "/", strlen(PREFIX_VOICE) + 1) == 0) {
		size_t off = strlen(PREFIX_VOICE) + 1;
		route_voice(c, r, url + off, plen - off);
		return;
	}
	if (strncmp(url, PREFIX_RELAY, strlen(PREFIX_RELAY)) == 0) {
		/* /relay/<line>/ended, or a session URL without its upgrade */
		if ((rt = line_path(url, plen, PREFIX_RELAY, "/ended",
		    &rtlen)) != NULL) {
			route_relay_ended(c, r, rt, rtlen);
			return;
		}
		respond_text(c, 426, "WebSocket upgrade required\n");
		return;
	}
	if (strncmp(url, PREFIX_STREAM, strlen(PREFIX_STREAM)) == 0) {
		respond_text(c, 426, "WebSocket upgrade required\n");
		return;
	}
	if (strncmp(url, PREFIX_TRANSFER, strlen(PREFIX_TRANSFER)) == 0) {
		if ((rt = line_path(url, plen, PREFIX_TRANSFER, "/done",
		    &rtlen)) != NULL) {
			route_transfer_done(c, r, rt, rtlen);
			return;
		}
		respond_text(c, 404, "not found\n");
		return;
	}
	if (outbound_public(c, r))
		return;
	/* nothing else: the operator's endpoints are on ADMIN_PORT */
	if (!(plen == 1 && url[0] == '/') &&
	    !(plen == 8 && strncmp(url, "/healthz", 8) == 0)) {
		respond_text(c, 404, "not found\n");
		return;
	}
	if (!get) {
		conn_respond(c, 405, "text/plain", "method not allowed\n", 19,
		    "Allow: GET, HEAD\r\n");
		return;
	}
	if (plen == 1)
		conn_respond(c, 200, "text/html; charset=utf-8", front_page,
		    sizeof(front_page) - 1, NULL);
	else
		route_healthz(c);
}

/* ---------------------------------------------------------------- */
/* the operator's listener */

/*
 * Every endpoint of the operator's listener is a line here.  A path ending
 * in '/' is a prefix (a family under /api/, say); allow lists the methods,
 * as an Allow header says them (HEAD goes with GET).  With ADMIN_TOKEN set
 * every request needs it, except those of an AR_OPEN route.
 */
#define AR_OPEN		0x1	/* answered without the token */

struct admin_route {
	const char	*path;
	const char	*allow;
	int		 flags;
	void		(*fn)(struct conn *, struct http_req *);
};

static void
admin_usage(struct conn *c, struct http_req *r)
{
	route_usage(c);
}

static void
admin_metrics(struct conn *c, struct http_req *r)
{
	route_metrics(c);
}

/* The page itself holds nothing: it asks for the token, and every request
 * it makes for figures carries it. */
static void
admin_dashboard(struct conn *c, struct http_req *r)
{
	route_dashboard(c);
}

static void
admin_dashboard_calls(struct conn *c, struct http_req *r)
{
	route_dashboard_calls(c);
}

static const struct admin_route admin_routes[] = {
	{ "/health",		"GET, HEAD",	0,	 route_health },
	{ "/metrics",		"GET, HEAD",	0,	 admin_metrics },
	{ "/usage-data",	"GET, HEAD",	0,	 admin_usage },
	{ "/dashboard",		"GET, HEAD",	AR_OPEN, admin_dashboard },
	{ "/dashboard/calls",	"GET, HEAD",	AR_OPEN, admin_dashboard_calls },
	/* before the /api/ family, which would take it first */
	{ "/api/request-call",	"POST",		0,	 outbound_request },
	{ "/api/campaigns",	"GET, HEAD",	0,	 campaign_api },
	{ "/api/campaigns/",	"GET, HEAD, POST", 0,	 campaign_api },
	{ "/api/",		"GET, HEAD",	0,	 api_route },
};

static const struct admin_route *
admin_route_find(const char *url, size_t plen)
{
	for (size_t i = 0; i < ARRAY_LEN(admin_routes); i++) {
		const char *p = admin_routes[i].path;
		size_t n = strlen(p);

		if (p[n - 1] == '/' ? plen >= n && strncmp(url, p, n) == 0 :
		    plen == n && strncmp(url, p, n) == 0)
			return &admin_routes[i];
	}
	return NULL;
}

/* Is method in allow ("GET, HEAD")?  HEAD goes wherever GET does. */
static int
method_allowed(const char *allow, const char *method)
{
	size_t n = strlen(method);

	if (strcmp(method, "HEAD") == 0)
		method = "GET", n = 3;
	for (const char *p = allow; *p != '\0'; p += strspn(p, ", ")) {
		size_t len = strcspn(p, ", ");

		if (len == n && strncmp(p, method, n) == 0)
			return 1;
		p += len;
	}
	return 0;
}

/* ADMIN_TOKEN unset, or "Authorization: Bearer <it>", compared in
 * constant time. */
static int
admin_authorized(const struct master *m, struct http_req *r)
{
	const char *tok = m->conf.admin_token, *h;

	if (tok[0] == '\0')
		return 1;
	h = http_req_header(r, "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	for (h += 7; *h == ' '; h++)
		;
	return ct_equal(h, strlen(h), tok, strlen(tok));
}

static void
admin_refuse(struct conn *c, struct http_req *r, const char *cors)
{
	char h[640];

	/* said once a minute at most: a guesser must not fill the log */
	static uint64_t logged_ms, since;
	uint64_t now = mono_ms();

	master_count(conn_master(c), SC_admin_auth_failed);
	since++;
	if (logged_ms == 0 || now - logged_ms >= 60000) {
		log_info("%s: admin request refused with 401: %s ADMIN_TOKEN "
		    "(%llu refused since the last such line)", conn_peer(c),
		    http_req_header(r, "Authorization") ? "not the" : "no",
		    (unsigned long long)since);
		logged_ms = now;
		since = 0;
	}
	snprintf(h, sizeof(h), "WWW-Authenticate: Bearer realm=\"voxrelay\"\r\n"
	    "%s", cors);
	conn_respond(c, 401, "text/plain", "admin token required\n", 21, h);
}

static void
admin_dispatch(struct conn *c, struct http_req *r)
{
	const char *url = http_req_url(r), *method = http_req_method(r);
	size_t plen = strcspn(url, "?");
	const struct admin_route *ar = admin_route_find(url, plen);
	char allow[64], cors[512] = "";
	int api = plen >= 5 && strncmp(url, "/api/", 5) == 0;

	if (r->upgrade)
		conn_no_keepalive(c);	/* reading stopped at the upgrade */
	if (api && !r->upgrade) {
		/* a browser's preflight carries no token: answered by the
		 * origin alone */
		if (strcmp(method, "OPTIONS") == 0) {
			api_preflight(c, r);
			return;
		}
		api_cors_headers(conn_master(c), r, cors, sizeof(cors));
	}
	if (!admin_authorized(conn_master(c), r) && !(ar != NULL &&
	    (ar->flags & AR_OPEN) && !r->upgrade &&
	    method_allowed(ar->allow, method))) {
		admin_refuse(c, r, cors);
		return;
	}
	if (r->upgrade || ar == NULL) {
		respond_text(c, 404, "not found\n");
		return;
	}
	if (!method_allowed(ar->allow, method)) {
		snprintf(allow, sizeof(allow), "Allow: %s\r\n", ar->allow);
		conn_respond(c, 405, "text/plain", "method not allowed\n", 19,
		    allow);
		return;
	}
	ar->fn(c, r);
}

void
routes_dispatch(struct conn *c, struct http_req *r)
{
	if (conn_listener(c) == LS_ADMIN)
		admin_dispatch(c, r);
	else
		public_dispatch(c, r);
}
