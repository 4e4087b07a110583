/*
 * outbound.c — calls voxrelay places: POST /api/request-call on the
 * operator's listener, and Twilio's callbacks for those calls on the
 * public one.
 *
 * A request is checked in a fixed order (400 for the request itself, 403
 * for a number not allowed, 429 for one in its cooldown, 503 while the
 * daemon drains or at MAX_CONCURRENT_CALLS), then the call is created through Twilio's REST
 * API on the master's loop (worker/rest.c, retried only when Twilio
 * surely made no call: see lookup_start() for the others) and the request
 * is answered when Twilio has answered, or with 503 at OB_ANSWER_MS
 * whatever happens.  Twilio then asks POST /outbound/<line>
 * for the call's TwiML (the stream, as for an inbound call, with the
 * callee as the caller and the request's name and variables as stream
 * parameters), and reports progress to /outbound/status and the
 * answering machine verdict to /outbound/amd, each signed like the voice
 * webhook.  Every callback updates the call's record; one that comes
 * before the create's answer names its call is kept until it does
 * (early_or_apply()).
 *
 * A number's cooldown starts when Twilio created its call, and is kept in
 * a file beside the usage ledger (one "number<TAB>ms" line a call), read
 * at start, so a restart does not forget it.
 */
#include "daemon/master.h"
#include "proto/form.h"
#include "daemon/outbound.h"
#include "daemon/callcheck.h"
#include "daemon/campaign.h"
#include "daemon/store.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/form.h"
#include "proto/http.h"
#include "proto/nanp.h"
#include "proto/sig.h"
#include "proto/tmpl.h"
#include "proto/twiml.h"
#include "worker/rest.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OB_ANSWER_MS	9000		/* a request is answered within this */
#define OB_STALE_MS	(4 * 3600 * 1000ull)	/* a call never reported over */
#define OB_NAME_MAX	128
#define OB_VARS_MAX	32
#define OB_VAR_MAX	256
#define OB_COOLDOWN_FILE "outbound-cooldown.tsv"
#define OB_LOOKUP_MS	3000		/* a look for a call that may exist */
#define OB_EARLY_MAX	64		/* callbacks kept before their call's sid */
#define OB_EARLY_MS	30000		/* ... for at most this long */
#define OB_TOKEN_LEN	16		/* hex digits of a call's Url token */
#define OB_LIST_PAGE	50		/* calls in one page of Twilio's list */
#define OB_SKEW_S	5		/* our clock against Twilio's */
#define OB_LOOKUP_REF	(1ull << 63)	/* a REST_GET's ref: a call's look */
#define OB_SETTLE_MS	5000		/* at most this long at start, every
					 * place held until the calls the last
					 * run left open are read (a request
					 * held is still answered within
					 * OB_ANSWER_MS + 1 s) */

/* A call created (or being created) here. */
struct ob_call {
	struct ob_call		*next;
	uint64_t		 id;		/* the REST job's ref */
	char			 sid[SHM_SID_MAX];	/* "" until created */
	char			 to[SHM_PHONE_MAX];
	char			 line[33];
	char			 name[OB_NAME_MAX];
	json_t			*vars;		/* object of strings */
	uint64_t		 since_ms;	/* mono: asked */
	struct ob_wait		*wait;		/* the request, until answered */
	uv_timer_t		*deadline;
	int			 amd_done;
	char			 campaign[CAMP_ID_MAX];	/* "" for a request */
	/* in the Url: Twilio's request for the TwiML, or its list of calls,
	 * tell the call before its create's answer does */
	char			 token[OB_TOKEN_LEN + 1];
	char			*form;		/* the create's, for its one retry */
	int			 creates;	/* create requests made */
	uint64_t		 asked_ms;	/* wall: first asked */
	uint64_t		 status_ms;	/* wall: its last status's, in
						 * the history */
};

/* A status or AMD callback, as it came: applied at once, or kept while
 * its call's sid is not known yet (the create's answer may come after
 * Twilio's first callbacks). */
struct ob_event {
	struct ob_event		*next;
	int			 amd;		/* an AMD verdict, else a status */
	char			 sid[SHM_SID_MAX];
	char			 status[16];	/* CallStatus as Twilio says it */
	char			 by[32];	/* AnsweredBy, "" if none */
	char			 duration[10];	/* CallDuration, "" if none */
	uint64_t		 at_ms;		/* wall: arrived */
	uint64_t		 kept_ms;	/* mono: arrived */
};

/* A request waiting for Twilio's answer (conn_defer()'s argument): gone
 * when answered or when the client went first. */
struct ob_wait {
	struct conn	*c;
	struct ob_call	*oc;		/* NULL once answered */
};

/* A number's last call, for the cooldown. */
struct ob_cool {
	char		 phone[SHM_PHONE_MAX];
	uint64_t	 at_ms;		/* wall: created at Twilio */
};

static struct rest	*ob_rest;
static struct ob_call	*ob_calls;
static unsigned		 ob_ncalls;
static uint64_t		 ob_seq;
static struct ob_cool	*ob_cool;
static size_t		 ob_ncool, ob_capcool;
static char		 ob_cool_path[1100];
static struct master	*ob_m;
static struct ob_event	*ob_early;	/* oldest first */
static unsigned		 ob_nearly;
static uv_timer_t	 ob_early_timer;
static uint64_t		 ob_start_ms;	/* mono: outbound_init() */

/* A request that came before the calls the last run left open were read
 * (unsettled()): its connection is deferred and the request decided again
 * once they are, or at OB_SETTLE_MS; an operator waits a moment rather
 * than have MAX_CONCURRENT_CALLS overrun. */
struct ob_hold {
	struct ob_hold		*next;
	struct conn		*c;
	char			*body;
	size_t			 len;
	uint64_t		 since_ms;	/* mono: held */
	struct ob_wait		*w;	/* then the wait for Twilio's answer */
};
static struct ob_hold	*ob_holds;
static uv_timer_t	 ob_hold_timer;
/* the request being decided again: its connection is deferred already */
static struct ob_hold	*ob_replaying;

static void ob_outcome(void *arg, const struct rest_done *d);
static void early_apply(struct master *m, const char *sid);
static void early_expire_cb(uv_timer_t *t);

/* ---------------------------------------------------------------- */
/* the cooldown */

static struct ob_cool *
cool_find(const char *phone)
{
	for (size_t i = 0; i < ob_ncool; i++)
		if (strcmp(ob_cool[i].phone, phone) == 0)
			return &ob_cool[i];
	return NULL;
}

static void
cool_set(struct master *m, const char *phone, uint64_t at_ms)
{
	struct ob_cool *c = cool_find(phone);
	uint64_t now = wall_ms(), keep = (uint64_t)m->conf.outbound_cooldown * 1000;

	if (c == NULL) {
		/* make room from the expired ones first */
		for (size_t i = 0; i < ob_ncool; )
			if (ob_cool[i].at_ms + keep <= now)
				ob_cool[i] = ob_cool[--ob_ncool];
			else
				i++;
		if (ob_ncool == ob_capcool) {
			size_t n = ob_capcool ? ob_capcool * 2 : 64;
			struct ob_cool *v = realloc(ob_cool, n * sizeof(*v));
			if (v == NULL)
				return;
			ob_cool = v;
			ob_capcool = n;
		}
		c = &ob_cool[ob_ncool++];
		vr_strlcpy(c->phone, phone, sizeof(c->phone));
		c->at_ms = 0;
	}
	if (at_ms > c->at_ms)
		c->at_ms = at_ms;
}

/* Seconds left of phone's cooldown, 0 if none. */
static uint64_t
cool_left(struct master *m, const char *phone)
{
	struct ob_cool *c = cool_find(phone);
	uint64_t end, now = wall_ms();

	if (c == NULL || m->conf.outbound_cooldown == 0)
		return 0;
	end = c->at_ms + (uint64_t)m->conf.outbound_cooldown * 1000;
	return end > now ? (end - now + 999) / 1000 : 0;
}

/* One line appended, unsynced: losing the last lines to a power cut
 * costs a cooldown, never a record. */
static void
cool_save(const char *phone, uint64_t at_ms)
{
	char line[128];
	int fd, n;

	if (ob_cool_path[0] == '\0')
		return;
	n = snprintf(line, sizeof(line), "%s\t%llu\n", phone,
	    (unsigned long long)at_ms);
	fd = open(ob_cool_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		log_warnx("outbound: cannot save a cooldown to %s: %s",
		    ob_cool_path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* At start: the cooldowns still running, and the file rewritten with only
 * those. */
static void
cool_load(struct master *m)
{
	const char *csv = m->conf.usage_csv_path, *slash = strrchr(csv, '/');
	char line[128], tmp[1200];
	uint64_t now = wall_ms(), keep = (uint64_t)m->conf.outbound_cooldown * 1000;
	FILE *f;

	if (slash == NULL)
		snprintf(ob_cool_path, sizeof(ob_cool_path), "%s", OB_COOLDOWN_FILE);
	else
		snprintf(ob_cool_path, sizeof(ob_cool_path), "%.*s/%s",
		    (int)(slash - csv), csv, OB_COOLDOWN_FILE);
	if ((f = fopen(ob_cool_path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *tab = strchr(line, '\t');
		unsigned long long at;

		if (tab == NULL)
			continue;
		*tab = '\0';
		if (!e164_valid(line) || sscanf(tab + 1, "%llu", &at) != 1)
			continue;
		if ((uint64_t)at + keep > now)
			cool_set(m, line, (uint64_t)at);
	}
	fclose(f);
	snprintf(tmp, sizeof(tmp), "%s.tmp", ob_cool_path);
	if ((f = fopen(tmp, "we")) == NULL)
		return;
	for (size_t i = 0; i < ob_ncool; i++)
		fprintf(f, "%s\t%llu\n", ob_cool[i].phone,
		    (unsigned long long)ob_cool[i].at_ms);
	if (fclose(f) == 0)
		rename(tmp, ob_cool_path);
	else
		unlink(tmp);
	log_info("outbound: %zu number%s in their cooldown", ob_ncool,
	    ob_ncool == 1 ? "" : "s");
}

/* ---------------------------------------------------------------- */
/* calls */

static struct ob_call *
call_by_sid(const char *sid)
{
	for (struct ob_call *c = ob_calls; c != NULL; c = c->next)
		if (c->sid[0] != '\0' && strcmp(c->sid, sid) == 0)
			return c;
	return NULL;
}

static struct ob_call *
call_by_token(const char *token)
{
	for (struct ob_call *c = ob_calls; c != NULL; c = c->next)
		if (strcmp(c->token, token) == 0)
			return c;
	return NULL;
}

/* A create was asked and its call's sid is not known yet. */
static int
call_unnamed(void)
{
	for (struct ob_call *c = ob_calls; c != NULL; c = c->next)
		if (c->sid[0] == '\0')
			return 1;
	return 0;
}

static struct ob_call *
call_by_id(uint64_t id)
{
	for (struct ob_call *c = ob_calls; c != NULL; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void
timer_closed_cb(uv_handle_t *h)
{
	free(h);
}

static void
call_free(struct ob_call *oc)
{
	struct ob_call **pp;

	for (pp = &ob_calls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == oc) {
			*pp = oc->next;
			ob_ncalls--;
			break;
		}
	if (oc->wait != NULL)
		oc->wait->oc = NULL;
	if (oc->deadline != NULL)
		uv_close((uv_handle_t *)oc->deadline, timer_closed_cb);
	json_decref(oc->vars);
	free(oc->form);
	free(oc);
}

/* At start, before the calls the last run left open are read from the
 * store: how many still ring at Twilio is not known, so none may be
 * placed (for OB_SETTLE_MS at most: a store that does not answer must
 * not stop outbound calls for good). */
static int
unsettled(void)
{
	if (ob_m == NULL || callcheck_settled(ob_m))
		return 0;
	return mono_ms() - ob_start_ms < OB_SETTLE_MS;
}

unsigned
outbound_active(void)
{
	uint64_t now = mono_ms();
	unsigned n;

	/* a call whose end Twilio never reported stops counting */
	for (struct ob_call *c = ob_calls, *next; c != NULL; c = next) {
		next = c->next;
		if (c->wait == NULL && now - c->since_ms > OB_STALE_MS)
			call_free(c);
	}
	/* and those the last run left that may still ring, until their
	 * final status comes or they are given up (callcheck.c) */
	n = ob_ncalls + callcheck_held();
	if (unsettled() && n < (unsigned)ob_m->conf.max_concurrent_calls)
		n = (unsigned)ob_m->conf.max_concurrent_calls;
	return n;
}

/* ---------------------------------------------------------------- */
/* POST /api/request-call */

static void
answer_json(struct conn *c, int deferred, int status, json_t *o,
    const char *extra)
{
	char *text = json_dumps(o, JSON_COMPACT);
	void (*respond)(struct conn *, int, const char *, const char *, size_t,
	    const char *) = deferred ? conn_defer_respond : conn_respond;

	json_decref(o);
	if (text == NULL) {
		respond(c, 500, "text/plain", "out of memory\n", 14, NULL);
		return;
	}
	respond(c, status, "application/json", text, strlen(text), extra);
	free(text);
}

static void
wait_gone(void *arg)
{
	struct ob_wait *w = arg;

	if (w->oc != NULL)
		w->oc->wait = NULL;
	free(w);
}

/* The request of oc, answered now if its client is still there. */
static void
answer_later(struct ob_call *oc, int status, json_t *o, const char *extra)
{
	struct ob_wait *w = oc->wait;

	if (w == NULL) {
		json_decref(o);
		return;
	}
	oc->wait = NULL;
	w->oc = NULL;
	answer_json(w->c, 1, status, o, extra);
}

static void
refuse(struct conn *c, int status, enum shm_counter ctr, const char *reason,
    const char *message, const char *extra)
{
	master_count(conn_master(c), ctr);
	answer_json(c, ob_replaying != NULL, status, json_pack("{s:s,s:s}",
	    "error", reason,
	    "message", message), extra);
}

/* The variables a line's templates use that the request lacks. */
struct need {
	const char	*name;		/* the contact's name, "" when none */
	json_t		*vars;
	char		 missing[64];
};

static int
need_one(void *arg, const char *name, size_t len)
{
	struct need *n = arg;
	char key[64];

	snprintf(key, sizeof(key), "%.*s", (int)len, name);
	if (strcmp(key, "name") == 0 ? n->name[0] == '\0' :
	    json_object_get(n->vars, key) == NULL) {
		vr_strlcpy(n->missing, key, sizeof(n->missing));
		return 1;
	}
	return 0;
}

int
outbound_allowed(const struct master *m, const char *to)
{
	const char *p = m->conf.verified_phone_numbers;

	while (*p != '\0') {
		size_t n;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n > 0 && n == strlen(to) && strncmp(p, to, n) == 0)
			return 1;
		p += n;
	}
	return m->conf.allow_all_us_canada && nanp_us_canada(to, NULL);
}

static void
deadline_cb(uv_timer_t *t)
{
	struct master *m = t->loop->data;
	struct ob_call *oc = t->data;
	char masked[64];

	if (oc->wait == NULL)
		return;
	mask_phone(oc->to, masked, sizeof(masked));
	log_warnx("outbound call to %s: Twilio has not created it within %d s; "
	    "answered 503", masked, OB_ANSWER_MS / 1000);
	master_count(m, SC_outbound_refused_twilio);
	answer_later(oc, 503, json_pack("{s:s,s:s}", "error", "twilio_failed",
	    "message", "Twilio's API did not create the call in time"),
	    "Retry-After: 30\r\n");
	/* the job may still succeed: the call is then tracked, not
	 * answered */
}

/* value percent-encoded for a form body: a new string, or NULL */
static char *
form_escape(const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(value) * 3 + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if (isalnum(*p) || strchr("-._~", *p))
			*o++ = (char)*p;
		else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	*o = '\0';
	return out;
}

static int
add_field(char **form, const char *name, const char *value)
{
	char *v = form_escape(value), *out;

	if (v == NULL)
		return -1;
	if (asprintf(&out, "%s%s%s=%s", *form ? *form : "", *form ? "&" : "",
	    name, v) < 0) {
		free(v);
		return -1;
	}
	free(v);
	free(*form);
	*form = out;
	return 0;
}

static char *
create_form(const struct master *m, const struct ob_call *oc,
    const struct line *line)
{
	const char *base = m->conf.public_url;
	char url[700], status[700], amd[700];
	char *form = NULL;
	int ok;

	snprintf(url, sizeof(url), "%s/outbound/%s?t=%s", base, oc->line,
	    oc->token);
	snprintf(status, sizeof(status), "%s/outbound/status", base);
	snprintf(amd, sizeof(amd), "%s/outbound/amd", base);
	ok = add_field(&form, "To", oc->to) == 0 &&
	    add_field(&form, "From", m->conf.phone_number_from) == 0 &&
	    add_field(&form, "Url", url) == 0 &&
	    add_field(&form, "Method", "POST") == 0 &&
	    add_field(&form, "StatusCallback", status) == 0 &&
	    add_field(&form, "StatusCallbackMethod", "POST") == 0 &&
	    add_field(&form, "StatusCallbackEvent", "initiated") == 0 &&
	    add_field(&form, "StatusCallbackEvent", "ringing") == 0 &&
	    add_field(&form, "StatusCallbackEvent", "answered") == 0 &&
	    add_field(&form, "StatusCallbackEvent", "completed") == 0 &&
	    add_field(&form, "MachineDetection", line->voicemail ?
	    "DetectMessageEnd" : "Enable") == 0 &&
	    add_field(&form, "AsyncAmd", "true") == 0 &&
	    add_field(&form, "AsyncAmdStatusCallback", amd) == 0 &&
	    add_field(&form, "AsyncAmdStatusCallbackMethod", "POST") == 0;
	if (!ok) {
		free(form);
		return NULL;
	}
	return form;
}

/*
 * The one place a call is set up and its creation asked of Twilio: for
 * the request on c (answered once Twilio has answered, or at
 * OB_ANSWER_MS), or for a campaign's contact when c is NULL
 * (campaign_created() is told).  0; or -1, c answered (or closed).
 */
static int
call_place(struct master *m, struct conn *c, const char *to,
    const struct line *line, const char *name, json_t *vars,
    const char *campaign)
{
	struct ob_call *oc;
	struct ob_wait *w = NULL;
	unsigned char rnd[OB_TOKEN_LEN / 2];
	uint64_t answer_ms = OB_ANSWER_MS, held;

	/* a request held at start has waited already */
	if (ob_replaying != NULL) {
		held = mono_ms() - ob_replaying->since_ms;
		answer_ms = held + 1000 < OB_ANSWER_MS ? OB_ANSWER_MS - held :
		    1000;
	}

	if ((oc = calloc(1, sizeof(*oc))) == NULL ||
	    (oc->deadline = malloc(sizeof(*oc->deadline))) == NULL) {
		free(oc);
		if (c != NULL)
			(ob_replaying ? conn_defer_respond : conn_respond)(c,
			    500, "text/plain", "out of memory\n", 14, NULL);
		return -1;
	}
	oc->id = ++ob_seq;
	vr_strlcpy(oc->to, to, sizeof(oc->to));
	vr_strlcpy(oc->line, line->id, sizeof(oc->line));
	vr_strlcpy(oc->name, name ? name : "", sizeof(oc->name));
	vr_strlcpy(oc->campaign, campaign ? campaign : "", sizeof(oc->campaign));
	oc->vars = vars ? json_deep_copy(vars) : json_object();
	oc->since_ms = mono_ms();
	oc->asked_ms = wall_ms();
	uv_timer_init(m->loop, oc->deadline);
	oc->deadline->data = oc;
	oc->next = ob_calls;
	ob_calls = oc;
	ob_ncalls++;
	if (random_bytes(rnd, sizeof(rnd)) != 0)
		/* unique is enough: the Url is signed by Twilio anyway */
		snprintf(oc->token, sizeof(oc->token), "%016llx",
		    (unsigned long long)(oc->id ^ (oc->asked_ms << 20)));
	else
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(oc->token + 2 * i, 3, "%02x", rnd[i]);
	if ((oc->form = create_form(m, oc, line)) == NULL ||
	    (c != NULL && (w = calloc(1, sizeof(*w))) == NULL)) {
		call_free(oc);
		if (c != NULL)
			(ob_replaying ? conn_defer_respond : conn_respond)(c,
			    500, "text/plain", "out of memory\n", 14, NULL);
		return -1;
	}
	if (c != NULL) {
		w->c = c;
		w->oc = oc;
		oc->wait = w;
		if (ob_replaying != NULL)
			/* deferred already: its end frees w (hold_gone()) */
			ob_replaying->w = w;
		else if (conn_defer(c, wait_gone, w) != 0) {
			/* c is closed, w freed */
			call_free(oc);
			return -1;
		}
	}
	oc->creates++;
	if (rest_create_call(ob_rest, oc->form, oc->id) != 0) {
		answer_later(oc, 500, json_pack("{s:s,s:s}", "error", "internal",
		    "message", "cannot start the request to Twilio"), NULL);
		call_free(oc);
		return -1;
	}
	if (c != NULL)
		uv_timer_start(oc->deadline, deadline_cb, answer_ms, 0);
	return 0;
}

static void hold(struct conn *c, const char *body, size_t len);

static void
request_decide(struct conn *c, const char *body, size_t len)
{
	struct master *m = conn_master(c);
	json_t *root = NULL, *vars, *v;
	json_error_t jerr;
	const char *to, *name, *lname, *k;
	const struct line *line;
	const struct persona *p;
	struct need need;
	char msg[256], masked[64], extra[64];
	uint64_t left;

	if (body == NULL || len == 0 ||
	    (root = json_loadb(body, len, 0, &jerr)) == NULL ||
	    !json_is_object(root)) {
		refuse(c, 400, SC_outbound_refused_bad_json, "bad_json",
		    "the body must be a JSON object", NULL);
		goto out;
	}
	to = json_string_value(json_object_get(root, "phone_number"));
	name = json_string_value(json_object_get(root, "name"));
	lname = json_string_value(json_object_get(root, "line"));
	vars = json_object_get(root, "variables");
	if ((json_object_get(root, "name") != NULL && (name == NULL ||
	    strlen(name) >= OB_NAME_MAX)) ||
	    (json_object_get(root, "line") != NULL && lname == NULL) ||
	    (vars != NULL && !json_is_object(vars)) ||
	    json_object_size(vars) > OB_VARS_MAX) {
		refuse(c, 400, SC_outbound_refused_bad_json, "bad_json",
		    "name and line are strings (name under 128 bytes), variables "
		    "an object of at most 32 strings", NULL);
		goto out;
	}
	json_object_foreach(vars, k, v)
		if (!json_is_string(v) || json_string_length(v) >= OB_VAR_MAX ||
		    strlen(k) > 32) {
			refuse(c, 400, SC_outbound_refused_bad_json, "bad_json",
			    "each variable is a string under 256 bytes, its "
			    "name at most 32", NULL);
			goto out;
		}
	if (!e164_valid(to) || strlen(to) >= SHM_PHONE_MAX) {
		refuse(c, 400, SC_outbound_refused_not_e164, "not_e164",
		    "phone_number must be an E.164 number (+ and 8 to 15 digits)",
		    NULL);
		goto out;
	}
	if (lname == NULL)
		lname = m->conf.default_outbound_line;
	if ((line = line_find(&m->lines, lname)) == NULL ||
	    (p = line_persona(line, &m->personas, lname)) == NULL) {
		snprintf(msg, sizeof(msg), "no line \"%.40s\"", lname);
		refuse(c, 400, SC_outbound_refused_unknown_line, "unknown_line",
		    msg, NULL);
		goto out;
	}
	need.name = name ? name : "";
	need.vars = vars;
	need.missing[0] = '\0';
	if (tmpl_each(p->instructions, need_one, &need) != 0 ||
	    (p->greeting != NULL && tmpl_each(p->greeting, need_one, &need) != 0) ||
	    (line->voicemail != NULL &&
	    tmpl_each(line->voicemail, need_one, &need) != 0)) {
		snprintf(msg, sizeof(msg), "line %s needs the variable \"%s\"",
		    line->id, need.missing);
		refuse(c, 400, SC_outbound_refused_missing_variable,
		    "missing_variable", msg, NULL);
		goto out;
	}
	mask_phone(to, masked, sizeof(masked));
	if (!outbound_allowed(m, to)) {
		log_info("outbound call to %s refused: not in "
		    "VERIFIED_PHONE_NUMBERS%s", masked, m->conf.allow_all_us_canada ?
		    " nor a US or Canadian number" : "");
		refuse(c, 403, SC_outbound_refused_not_allowed, "not_allowed",
		    "this number may not be called", NULL);
		goto out;
	}
	if ((left = cool_left(m, to)) > 0) {
		snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n",
		    (unsigned long long)left);
		snprintf(msg, sizeof(msg), "this number was called less than %d s "
		    "ago; try again in %llu s", m->conf.outbound_cooldown,
		    (unsigned long long)left);
		refuse(c, 429, SC_outbound_refused_cooldown, "cooldown", msg, extra);
		goto out;
	}
	if (m->draining) {
		/* a call created now would ring into a daemon on its way out */
		refuse(c, 503, SC_outbound_refused_draining, "draining",
		    "the daemon is shutting down; ask another one, or later",
		    "Retry-After: 30\r\n");
		goto out;
	}
	if (unsettled() && ob_replaying == NULL) {
		hold(c, body, len);
		goto out;
	}
	if (outbound_active() >= (unsigned)m->conf.max_concurrent_calls) {
		if (unsettled())
			snprintf(msg, sizeof(msg), "the calls the last run left "
			    "open are being read; MAX_CONCURRENT_CALLS is %d",
			    m->conf.max_concurrent_calls);
		else if (callcheck_held() > 0)
			snprintf(msg, sizeof(msg), "%d outbound calls in progress "
			    "(MAX_CONCURRENT_CALLS), %u of them left by the last "
			    "run and not known to be over",
			    m->conf.max_concurrent_calls, callcheck_held());
		else
			snprintf(msg, sizeof(msg), "%d outbound calls in progress "
			    "(MAX_CONCURRENT_CALLS)", m->conf.max_concurrent_calls);
		refuse(c, 503, SC_outbound_refused_capacity, "capacity", msg,
		    "Retry-After: 30\r\n");
		goto out;
	}
	if (!outbound_ready(m)) {
		refuse(c, 503, SC_outbound_refused_twilio, "not_configured",
		    "outbound calls need TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, "
		    "PHONE_NUMBER_FROM (or TWILIO_PHONE_NUMBER) and PUBLIC_URL",
		    NULL);
		goto out;
	}

	if (call_place(m, c, to, line, name, vars, NULL) != 0)
		goto out;
	log_info("outbound call to %s on line %s: asking Twilio", masked,
	    line->id);
out:
	json_decref(root);
}

static void
hold_gone(void *arg)
{
	struct ob_hold *h = arg, **pp;

	for (pp = &ob_holds; *pp != NULL; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	if (h->w != NULL)
		wait_gone(h->w);
	if (ob_replaying == h)
		ob_replaying = NULL;
	free(h->body);
	free(h);
}

static void
hold_cb(uv_timer_t *t)
{
	struct ob_hold *h;

	if (unsettled())
		return;
	uv_timer_stop(t);
	while ((h = ob_holds) != NULL) {
		ob_holds = h->next;
		h->next = NULL;
		ob_replaying = h;
		/* answered (h freed), or waiting for Twilio (h->w) */
		request_decide(h->c, h->body, h->len);
		ob_replaying = NULL;
	}
}

static void
hold(struct conn *c, const char *body, size_t len)
{
	struct ob_hold *h = calloc(1, sizeof(*h));

	if (h == NULL || (h->body = malloc(len)) == NULL) {
		free(h);
		conn_respond(c, 500, "text/plain", "out of memory\n", 14, NULL);
		return;
	}
	memcpy(h->body, body, len);
	h->len = len;
	h->c = c;
	h->since_ms = mono_ms();
	if (conn_defer(c, hold_gone, h) != 0)
		return;		/* c closed, h freed */
	h->next = ob_holds;
	ob_holds = h;
	master_count(conn_master(c), SC_outbound_requests_held);
	if (!uv_is_active((uv_handle_t *)&ob_hold_timer))
		uv_timer_start(&ob_hold_timer, hold_cb, 20, 20);
}

void
outbound_request(struct conn *c, struct http_req *r)
{
	request_decide(c, r->body, r->body_len);
}

int
outbound_ready(const struct master *m)
{
	return ob_rest != NULL && rest_calls_configured(ob_rest) &&
	    m->conf.phone_number_from[0] != '\0' && m->conf.public_url[0] != '\0';
}

uint64_t
outbound_cooldown_left(struct master *m, const char *to)
{
	return cool_left(m, to);
}

int
outbound_place(struct master *m, const char *to, const char *line_id,
    const char *name, json_t *vars, const char *campaign)
{
	const struct line *line = line_find(&m->lines, line_id);

	if (line == NULL || !outbound_ready(m))
		return -1;
	return call_place(m, NULL, to, line, name, vars, campaign);
}

/* The Call resource's sid: CA and 32 hex digits. */
static int
sid_from(const char *body, char *out, size_t len)
{
	json_t *o = json_loads(body, 0, NULL);
	const char *sid = json_string_value(json_object_get(o, "sid"));
	int ok = sid != NULL && strlen(sid) == 34 && strncmp(sid, "CA", 2) == 0 &&
	    strspn(sid + 2, "0123456789abcdefABCDEF") == 32 && strlen(sid) < len;

	if (ok)
		vr_strlcpy(out, sid, len);
	json_decref(o);
	return ok ? 0 : -1;
}

static void
ob_outcome(void *arg, const struct rest_done *d);

/*
 * oc's sid is known (from the create's answer, from the calls found at
 * Twilio, or from Twilio's request for its TwiML): the call is counted,
 * its cooldown starts, its record is written, the request is answered,
 * the campaign told, then the callbacks kept for it are applied in the
 * order they came.  oc may be gone after.
 */
static void
created(struct master *m, struct ob_call *oc, const char *how)
{
	char masked[64], sid[SHM_SID_MAX];
	uint64_t now = wall_ms(), started = now;

	uv_timer_stop(oc->deadline);
	mask_phone(oc->to, masked, sizeof(masked));
	vr_strlcpy(sid, oc->sid, sizeof(sid));
	/* it began no later than its first callback */
	for (struct ob_event *e = ob_early; e != NULL; e = e->next)
		if (strcmp(e->sid, sid) == 0 && e->at_ms < started)
			started = e->at_ms;
	master_count(m, SC_outbound_calls);
	cool_set(m, oc->to, now);
	cool_save(oc->to, now);
	log_set_call(sid);
	log_info("outbound call to %s on line %s %s", masked, oc->line, how);
	log_set_call(NULL);
	if (m->store != NULL)
		store_post(m->store, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,"
		    "s:s}", "type", "call", "call_sid", sid, "direction",
		    "outbound-api", "from", m->conf.phone_number_from, "to", oc->to,
		    "line", oc->line, "started_at", (json_int_t)started, "status",
		    "queued", "host", m->hostname));
	/* asked about should its callbacks stop coming */
	callcheck_watch(m, sid, oc->line);
	answer_later(oc, 201, json_pack("{s:s,s:s}", "call_sid", sid,
	    "status", "queued"), NULL);
	if (oc->campaign[0] != '\0')
		campaign_created(m, oc->campaign, oc->to, sid);
	early_apply(m, sid);
}

/* oc was not created, or (unsure) nothing says whether it was: the
 * request is answered, the campaign told, oc freed. */
static void
not_created(struct master *m, struct ob_call *oc, const struct rest_done *d,
    int unsure)
{
	int busy = unsure || d->status == 0 || d->status == 429 ||
	    d->status >= 500 || d->ok;
	char masked[64];

	uv_timer_stop(oc->deadline);
	mask_phone(oc->to, masked, sizeof(masked));
	if (unsure) {
		/* it may ring: no other call to the number for a while */
		cool_set(m, oc->to, wall_ms());
		cool_save(oc->to, wall_ms());
		log_warnx("outbound call to %s: Twilio did not say whether it "
		    "created the call and it was not found; not asked again",
		    masked);
	} else
		log_warnx("outbound call to %s not created (HTTP %ld after %d "
		    "attempt%s)", masked, d->status, d->attempts,
		    d->attempts == 1 ? "" : "s");
	if (oc->wait != NULL) {
		master_count(m, SC_outbound_refused_twilio);
		if (unsure)
			answer_later(oc, 503, json_pack("{s:s,s:s}", "error",
			    "twilio_failed", "message", "Twilio's API did not say "
			    "whether it created the call; it was not asked again"),
			    "Retry-After: 30\r\n");
		else if (busy)
			answer_later(oc, 503, json_pack("{s:s,s:s}",
			    "error", "twilio_failed", "message",
			    "Twilio's API is failing; try again later"),
			    "Retry-After: 30\r\n");
		else {
			json_t *e = d->body ? json_loads(d->body, 0, NULL) : NULL;
			const char *msg = json_string_value(
			    json_object_get(e, "message"));
			answer_later(oc, 502, json_pack("{s:s,s:s,s:I}",
			    "error", "twilio_refused", "message", msg ? msg :
			    "Twilio refused the call", "twilio_status",
			    (json_int_t)d->status), NULL);
			json_decref(e);
		}
	}
	if (oc->campaign[0] != '\0')
		campaign_created(m, oc->campaign, oc->to, NULL);
	call_free(oc);
}

/*
 * Twilio's calls to number to, the first page, newest first
 * (Calls.json?To=&PageSize=): the caller filters them by date_created.
 * No StartTime>= filter: a call still queued has no start time yet, and
 * Twilio's filter would leave it out.  0, or -1 if not asked.
 */
int
outbound_list_calls(const char *to, long timeout_ms, uint64_t ref)
{
	char path[200], *esc;
	int n;

	if (ob_rest == NULL || (esc = form_escape(to)) == NULL)
		return -1;
	n = snprintf(path, sizeof(path), "Calls.json?To=%s&PageSize=%d", esc,
	    OB_LIST_PAGE);
	free(esc);
	if (n < 0 || n >= (int)sizeof(path))
		return -1;
	return rest_get(ob_rest, path, timeout_ms, ref);
}

/*
 * The create went out and no answer says what became of it: Twilio's
 * latest calls to the number are searched for it.
 */
static void
lookup_start(struct master *m, struct ob_call *oc, const struct rest_done *d)
{
	char masked[64];

	mask_phone(oc->to, masked, sizeof(masked));
	if (outbound_list_calls(oc->to, OB_LOOKUP_MS, oc->id | OB_LOOKUP_REF) !=
	    0) {
		not_created(m, oc, d, 1);
		return;
	}
	master_count(m, SC_outbound_create_lookups);
	log_info("outbound call to %s: its create went unanswered; looking for "
	    "it among Twilio's calls", masked);
}

/* date_created, RFC 2822 in GMT ("Sun, 06 Dec 2026 18:27:33 +0000"), in
 * seconds; 0 if unreadable. */
static time_t
rfc2822(const char *s)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || (end = strptime(s, "%a, %d %b %Y %H:%M:%S", &tm)) ==
	    NULL)
		return 0;
	return timegm(&tm);
}

int
outbound_call_placed(const struct master *m, json_t *call, const char *to,
    uint64_t since_ms)
{
	const char *from = json_string_value(json_object_get(call, "from"));
	const char *cto = json_string_value(json_object_get(call, "to"));
	const char *dir = json_string_value(json_object_get(call, "direction"));
	time_t made = rfc2822(json_string_value(json_object_get(call,
	    "date_created")));

	/* date_created is to the second, and the clocks may differ a
	 * little: OB_SKEW_S of slack */
	return made > 0 && from != NULL &&
	    strcmp(from, m->conf.phone_number_from) == 0 && cto != NULL &&
	    strcmp(cto, to) == 0 && dir != NULL &&
	    strcmp(dir, "outbound-api") == 0 &&
	    (uint64_t)made + OB_SKEW_S >= since_ms / 1000;
}

/*
 * Whether call (a Call resource in Twilio's list) is oc's: its Url, which
 * carries oc's token, when the resource shows it; else (Twilio's Call
 * resource does not) a call from our number to oc's, placed through the
 * API, created since oc was first asked, that no other call here has.
 */
static int
call_is(const struct master *m, const struct ob_call *oc, json_t *call)
{
	const char *url = json_string_value(json_object_get(call, "url"));
	char t[OB_TOKEN_LEN + 4];

	if (url != NULL) {
		snprintf(t, sizeof(t), "?t=%s", oc->token);
		return strstr(url, t) != NULL;
	}
	return outbound_call_placed(m, call, oc->to, oc->asked_ms);
}

/* What the search for oc's call found: the call, adopted; none, so the
 * create is asked once more (once); or no answer, so nothing is known. */
static void
lookup_done(struct master *m, struct ob_call *oc, const struct rest_done *d)
{
	json_t *o = d->ok && d->body ? json_loads(d->body, 0, NULL) : NULL;
	json_t *calls = json_object_get(o, "calls"), *call;
	char masked[64];
	size_t i;

	mask_phone(oc->to, masked, sizeof(masked));
	if (!json_is_array(calls)) {
		json_decref(o);
		log_warnx("outbound call to %s: Twilio's calls could not be read "
		    "(HTTP %ld)", masked, d->status);
		not_created(m, oc, d, 1);
		return;
	}
	json_array_foreach(calls, i, call) {
		const char *sid = json_string_value(json_object_get(call, "sid"));
		char buf[64];

		if (sid == NULL || strlen(sid) >= sizeof(oc->sid) ||
		    call_by_sid(sid) != NULL || !call_is(m, oc, call))
			continue;
		/* the same checks as the create's answer */
		snprintf(buf, sizeof(buf), "{\"sid\":\"%.40s\"}", sid);
		if (sid_from(buf, oc->sid, sizeof(oc->sid)) != 0)
			continue;
		json_decref(o);
		master_count(m, SC_outbound_create_found);
		created(m, oc, "found at Twilio after its create went unanswered");
		return;
	}
	json_decref(o);
	if (oc->creates >= 2) {
		not_created(m, oc, d, 1);
		return;
	}
	log_info("outbound call to %s: not among Twilio's calls; asking once "
	    "more", masked);
	oc->creates++;
	if (rest_create_call(ob_rest, oc->form, oc->id) != 0)
		not_created(m, oc, d, 1);
}

static void
ob_outcome(void *arg, const struct rest_done *d)
{
	struct master *m = arg;
	struct ob_call *oc;

	if (d->attempts > 1)
		shm_count(m->shm.hdr->sh_counters, SC_rest_retries,
		    (uint64_t)d->attempts - 1);
	/* a status query's answer (its ref says whose) */
	if (d->kind == REST_GET && (d->ref & CALLCHECK_REF) != 0) {
		callcheck_answer(m, d);
		return;
	}
	if (d->kind == REST_CREATE)
		oc = call_by_id(d->ref);
	else if (d->kind == REST_GET && (d->ref & OB_LOOKUP_REF))
		oc = call_by_id(d->ref & ~OB_LOOKUP_REF);
	else
		oc = NULL;
	if (oc == NULL)
		return;
	if (oc->sid[0] != '\0') {
		/* learnt first from Twilio's request for its TwiML */
		char got[SHM_SID_MAX];
		if (d->kind == REST_CREATE && d->ok && d->body != NULL &&
		    sid_from(d->body, got, sizeof(got)) == 0 &&
		    strcmp(got, oc->sid) != 0)
			log_warnx("outbound call %s: its create answered with "
			    "another call, %s", oc->sid, got);
		return;
	}
	if (d->kind == REST_GET)
		lookup_done(m, oc, d);
	else if (d->ok && d->body != NULL &&
	    sid_from(d->body, oc->sid, sizeof(oc->sid)) == 0) {
		char how[48];
		snprintf(how, sizeof(how), "created (attempt %d)", d->attempts);
		created(m, oc, how);
	} else if (d->unsure)
		lookup_start(m, oc, d);
	else
		not_created(m, oc, d, 0);
}

/* ---------------------------------------------------------------- */
/* Twilio's requests for our calls, on the public listener */

/* The form of a signed POST, or -1 once answered. */
static int
callback_form(struct conn *c, struct http_req *r, struct form *f,
    const char *what)
{
	if (strcmp(http_req_method(r), "POST") != 0) {
		conn_respond(c, 405, "text/plain", "method not allowed\n", 19,
		    "Allow: POST\r\n");
		return -1;
	}
	if (form_parse(f, r->body ? r->body : "", r->body_len) != 0) {
		master_count(conn_master(c), SC_http_bad_requests);
		conn_respond(c, 400, "text/plain", "malformed form body\n", 20,
		    NULL);
		return -1;
	}
	if (!routes_signed(c, r, f, what)) {
		form_free(f);
		return -1;
	}
	return 0;
}

static const char *const terminal[] = { "completed", "busy", "no-answer",
    "failed", "canceled", NULL };

static int
is_terminal(const char *s)
{
	for (size_t i = 0; terminal[i] != NULL; i++)
		if (strcmp(s, terminal[i]) == 0)
			return 1;
	return 0;
}

/*
 * What Twilio says of call sid, by its status callback or by the answer to
 * a query (callcheck.c): one path, so the record and the contact's outcome
 * do not depend on which brought it.  status is the record's (initiated is
 * queued, answered in-progress), or "unknown" for a call Twilio never
 * created (the record closed as failed).  at: when it happened (wall ms),
 * 0 when not known (now, for the history; no answered_at).
 */
void
outbound_status(struct master *m, const char *sid, const char *status,
    const char *by, const char *dur, uint64_t at)
{
	struct ob_call *oc = call_by_sid(sid);
	int unknown = strcmp(status, "unknown") == 0;
	const char *rec = unknown ? "failed" : status;
	uint64_t when = at ? at : wall_ms();
	/* given up (callcheck.c) and now heard of after all: Twilio's
	 * word is still the record's (one the last run placed has no oc) */
	int late = !callcheck_watching(sid) && callcheck_given_up(sid);

	if (by != NULL && (by[0] == '\0' || strlen(by) >= 32))
		by = NULL;
	/* the history is ordered by time: two statuses in one millisecond
	 * (ringing, then busy) keep the order they came in */
	if (oc != NULL) {
		if (when <= oc->status_ms)
			when = oc->status_ms + 1;
		oc->status_ms = when;
	}
	if (late) {
		master_count(m, SC_outbound_status_after_given_up);
		log_set_call(sid);
		log_info("outbound call: %s, after it was given up; its record "
		    "updated", rec);
		log_set_call(NULL);
	}
	/* a call placed here, or one the last run left open */
	if (m->store != NULL && (oc != NULL || callcheck_watching(sid) ||
	    late)) {
		json_t *call = json_pack("{s:s,s:s,s:s}", "type", "call", "call_sid",
		    sid, "status", rec);
		if (by != NULL)
			json_object_set_new(call, "answered_by", json_string(by));
		if (strcmp(rec, "in-progress") == 0 && at != 0)
			json_object_set_new(call, "answered_at", json_integer(
			    (json_int_t)at));
		if (is_terminal(rec)) {
			json_object_set_new(call, "ended_at", json_integer(
			    (json_int_t)when));
			json_object_set_new(call, "end_reason", json_string(unknown ?
			    "not_found" : rec));
			if (dur != NULL && strspn(dur, "0123456789") == strlen(dur) &&
			    dur[0] != '\0' && strlen(dur) < 9)
				json_object_set_new(call, "duration_ms",
				    json_integer((json_int_t)atol(dur) * 1000));
		}
		store_post(m->store, call);
		store_post(m->store, json_pack("{s:s,s:s,s:s,s:I}", "type", "status",
		    "call_sid", sid, "status", rec, "at", (json_int_t)when));
	}
	if (by != NULL && (strcmp(by, "human") == 0 || strncmp(by, "machine_",
	    8) == 0))
		campaign_call_amd(m, sid, by);
	if (is_terminal(rec)) {
		callcheck_forget(sid);
		if (oc != NULL && oc->wait == NULL)
			call_free(oc);
	}
	/* also a call placed by the run before a restart */
	campaign_call_status(m, sid, status);
}

/* A status callback's effect: the record, the campaign's contact. */
static void
status_apply(struct master *m, const struct ob_event *ev)
{
	struct ob_call *oc = call_by_sid(ev->sid);
	const char *st = ev->status, *rec;

	/* the record knows Twilio's call statuses (initiated is queued) */
	if (strcmp(st, "initiated") == 0)
		rec = "queued";
	else if (strcmp(st, "answered") == 0)
		rec = "in-progress";
	else
		rec = st;
	log_set_call(ev->sid);
	log_info("outbound call: %s%s", st, oc != NULL ||
	    callcheck_watching(ev->sid) || callcheck_given_up(ev->sid) ? "" :
	    " (not one placed here)");
	log_set_call(NULL);
	outbound_status(m, ev->sid, rec, ev->by, ev->duration[0] != '\0' ?
	    ev->duration : NULL, ev->at_ms);
	if (!is_terminal(rec))
		callcheck_heard(m, ev->sid);
}

/* An AMD verdict's effect: the record, the campaign's contact, the
 * worker told of a person, a machine's message or hang-up. */
static void
amd_apply(struct master *m, const struct ob_event *ev)
{
	struct ob_call *oc = call_by_sid(ev->sid);
	const struct line *line;
	const char *sid = ev->sid, *by = ev->by;

	campaign_call_amd(m, sid, by);
	callcheck_heard(m, sid);
	log_set_call(sid);
	log_info("outbound call: answered by %s", by);
	if (m->store != NULL && (oc != NULL || callcheck_watching(sid) ||
	    callcheck_given_up(sid)))
		store_post(m->store, json_pack("{s:s,s:s,s:s}", "type", "call",
		    "call_sid", sid, "answered_by", by));
	/* a person: the worker's model need not wait out the pause for
	 * their first words */
	if (oc != NULL && strcmp(by, "human") == 0 &&
	    master_amd(m, sid, by) < 0)
		log_warnx("outbound call: cannot tell the worker a human answered");
	if (oc != NULL && !oc->amd_done && strncmp(by, "machine_", 8) == 0 &&
	    (line = line_find(&m->lines, oc->line)) != NULL) {
		struct twiml t = { 0 };
		int rc;

		oc->amd_done = 1;
		master_count(m, SC_outbound_machines);
		/* the message after the beep, then the end; or the end now */
		if (line->voicemail != NULL && strncmp(by, "machine_end", 11) == 0) {
			char *msg = outbound_fill(line->voicemail, oc->name,
			    oc->vars, 0);
			twiml_begin(&t);
			twiml_say(&t, msg ? msg : line->voicemail, m->conf.say_voice);
			twiml_hangup(&t);
			free(msg);
			rc = twiml_end(&t) == 0 ? rest_update_call(ob_rest, sid,
			    "Twiml", t.buf, 0) : -1;
			twiml_free(&t);
			master_count(m, SC_outbound_voicemails);
			log_info("outbound call: leaving the line's voicemail message");
		} else {
			rc = rest_update_call(ob_rest, sid, "Status", "completed", 0);
			log_info("outbound call: a machine; hanging up");
		}
		if (rc != 0)
			log_warnx("outbound call: cannot update the call at Twilio");
	}
	log_set_call(NULL);
}

/* ---------------------------------------------------------------- */
/* callbacks that come before their call's sid */

static void
early_apply_one(struct master *m, struct ob_event *ev)
{
	if (ev->amd)
		amd_apply(m, ev);
	else
		status_apply(m, ev);
}

/* Applied now, or kept: a callback for a sid no call here has, while a
 * create is still unanswered, is that call's (Twilio may post
 * `initiated`, even `busy`, before its answer to the create reaches us). */
static void
early_or_apply(struct master *m, struct ob_event *ev)
{
	struct ob_event *e, **pp;

	if (call_by_sid(ev->sid) != NULL || !call_unnamed() ||
	    callcheck_watching(ev->sid) || callcheck_given_up(ev->sid) ||
	    campaign_call_known(m, ev->sid)) {
		early_apply_one(m, ev);
		return;
	}
	if (ob_nearly >= OB_EARLY_MAX || (e = malloc(sizeof(*e))) == NULL) {
		master_count(m, SC_outbound_early_dropped);
		log_warnx("outbound call %s: a callback before its create's "
		    "answer, with %u kept already (at most %d): not kept",
		    ev->sid, ob_nearly, OB_EARLY_MAX);
		early_apply_one(m, ev);
		return;
	}
	*e = *ev;
	e->next = NULL;
	e->kept_ms = mono_ms();
	for (pp = &ob_early; *pp != NULL; pp = &(*pp)->next)
		/* the history is ordered by time: two in one millisecond
		 * keep the order they came in */
		if (strcmp((*pp)->sid, e->sid) == 0 && e->at_ms <= (*pp)->at_ms)
			e->at_ms = (*pp)->at_ms + 1;
	*pp = e;
	ob_nearly++;
	master_count(m, SC_outbound_early_callbacks);
	log_set_call(ev->sid);
	log_info("outbound call: %s %s before its create's answer; kept",
	    ev->amd ? "AMD verdict" : "status", ev->amd ? ev->by : ev->status);
	log_set_call(NULL);
	if (!uv_is_active((uv_handle_t *)&ob_early_timer))
		uv_timer_start(&ob_early_timer, early_expire_cb, 1000, 1000);
}

/* The callbacks kept for sid, in the order they came. */
static void
early_apply(struct master *m, const char *sid)
{
	struct ob_event **pp = &ob_early, *e;

	while ((e = *pp) != NULL) {
		if (strcmp(e->sid, sid) != 0) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		ob_nearly--;
		master_count(m, SC_outbound_early_applied);
		early_apply_one(m, e);
		free(e);
		/* applying may have changed the list: from the start */
		pp = &ob_early;
	}
}

static void
early_expire_cb(uv_timer_t *t)
{
	struct master *m = t->loop->data;
	struct ob_event **pp = &ob_early, *e;
	uint64_t now = mono_ms();

	while ((e = *pp) != NULL) {
		if (now - e->kept_ms < OB_EARLY_MS) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		ob_nearly--;
		master_count(m, SC_outbound_early_expired);
		log_set_call(e->sid);
		log_warnx("outbound call: its %s %s, kept %d s for a create "
		    "that never named this call, dropped", e->amd ?
		    "AMD verdict" : "status", e->amd ? e->by : e->status,
		    OB_EARLY_MS / 1000);
		log_set_call(NULL);
		free(e);
	}
	if (ob_early == NULL)
		uv_timer_stop(t);
}

static void
status_callback(struct conn *c, struct http_req *r)
{
	struct master *m = conn_master(c);
	static const char *const known[] = { "queued", "initiated", "ringing",
	    "in-progress", "answered", "completed", "busy", "no-answer",
	    "failed", "canceled", NULL };
	struct form f = { 0 };
	struct ob_event ev;
	const char *sid, *st, *by, *dur;
	size_t i;

	if (callback_form(c, r, &f, "outbound status callback") != 0)
		return;
	sid = form_get(&f, "CallSid");
	st = form_get(&f, "CallStatus");
	if (sid == NULL || strlen(sid) >= SHM_SID_MAX || st == NULL) {
		conn_respond(c, 400, "text/plain", "missing CallSid or CallStatus\n",
		    30, NULL);
		goto out;
	}
	for (i = 0; known[i] != NULL && strcmp(known[i], st) != 0; i++)
		;
	if (known[i] == NULL) {
		conn_respond(c, 400, "text/plain", "unknown CallStatus\n", 19, NULL);
		goto out;
	}
	master_count(m, SC_outbound_status_callbacks);
	memset(&ev, 0, sizeof(ev));
	vr_strlcpy(ev.sid, sid, sizeof(ev.sid));
	vr_strlcpy(ev.status, st, sizeof(ev.status));
	by = form_get(&f, "AnsweredBy");
	if (by != NULL && strlen(by) < sizeof(ev.by))
		vr_strlcpy(ev.by, by, sizeof(ev.by));
	dur = form_get(&f, "CallDuration");
	if (dur != NULL && dur[0] != '\0' && strlen(dur) < 9 &&
	    strspn(dur, "0123456789") == strlen(dur))
		vr_strlcpy(ev.duration, dur, sizeof(ev.duration));
	ev.at_ms = wall_ms();
	early_or_apply(m, &ev);
	conn_respond(c, 204, "text/plain", "", 0, NULL);
out:
	form_free(&f);
}

static void
amd_callback(struct conn *c, struct http_req *r)
{
	struct master *m = conn_master(c);
	struct form f = { 0 };
	struct ob_event ev;
	const char *sid, *by;

	if (callback_form(c, r, &f, "outbound AMD callback") != 0)
		return;
	sid = form_get(&f, "CallSid");
	by = form_get(&f, "AnsweredBy");
	if (sid == NULL || strlen(sid) >= SHM_SID_MAX || by == NULL ||
	    by[0] == '\0' || strlen(by) >= 32) {
		conn_respond(c, 400, "text/plain", "missing CallSid or AnsweredBy\n",
		    30, NULL);
		goto out;
	}
	memset(&ev, 0, sizeof(ev));
	ev.amd = 1;
	vr_strlcpy(ev.sid, sid, sizeof(ev.sid));
	vr_strlcpy(ev.by, by, sizeof(ev.by));
	ev.at_ms = wall_ms();
	early_or_apply(m, &ev);
	conn_respond(c, 204, "text/plain", "", 0, NULL);
out:
	form_free(&f);
}

int
outbound_public(struct conn *c, struct http_req *r)
{
	const char *url = http_req_url(r);
	size_t plen = strcspn(url, "?");

	if (plen < 10 || strncmp(url, "/outbound/", 10) != 0)
		return 0;
	if (plen == 16 && strncmp(url, "/outbound/status", 16) == 0)
		status_callback(c, r);
	else if (plen == 13 && strncmp(url, "/outbound/amd", 13) == 0)
		amd_callback(c, r);
	else
		routes_voice_outbound(c, r, url + 10, plen - 10);
	return 1;
}

/* The stream's parameters for an outbound call: who it is for and the
 * request's variables (the worker fills the templates with them). */
void
outbound_params(const char *sid, struct twiml *t)
{
	struct ob_call *oc = call_by_sid(sid);
	const char *k;
	json_t *v;
	char name[48];

	twiml_parameter(t, "direction", "outbound-api");
	if (oc == NULL)
		return;
	if (oc->name[0] != '\0')
		twiml_parameter(t, "name", oc->name);
	json_object_foreach(oc->vars, k, v) {
		snprintf(name, sizeof(name), "var_%s", k);
		twiml_parameter(t, name, json_string_value(v));
	}
}

int
outbound_known(const char *sid, const char *token)
{
	struct ob_call *oc;
	char buf[64];

	if (call_by_sid(sid) != NULL)
		return 1;
	if (token == NULL || (oc = call_by_token(token)) == NULL ||
	    oc->sid[0] != '\0')
		return 0;
	/* Twilio asks for the TwiML of a call whose create it has not
	 * answered yet (or whose answer was lost): its sid is learnt here,
	 * from a request signed by Twilio */
	snprintf(buf, sizeof(buf), "{\"sid\":\"%.40s\"}", sid);
	if (sid_from(buf, oc->sid, sizeof(oc->sid)) != 0)
		return 0;
	created(ob_m, oc, "named by Twilio's request for its TwiML, before "
	    "its create's answer");
	return call_by_sid(sid) != NULL;
}

/* ---------------------------------------------------------------- */
/* templates */

struct fill {
	const char	*name;
	json_t		*vars;
	int		 json;
};

char *
outbound_fill(const char *s, const char *name, json_t *vars, int json)
{
	size_t cap = strlen(s) + 1, len = 0;
	char *out = malloc(cap);
	const char *p = s;

	if (out == NULL)
		return NULL;
	while (*p != '\0') {
		const char *q, *val = NULL;
		size_t n, vlen;

		if (p[0] == '{' && p[1] == '{') {
			for (q = p + 2; isalnum((unsigned char)*q) || *q == '_'; q++)
				;
			n = (size_t)(q - p - 2);
			if (n > 0 && n <= 32 && q[0] == '}' && q[1] == '}') {
				char key[40];
				snprintf(key, sizeof(key), "%.*s", (int)n, p + 2);
				val = strcmp(key, "name") == 0 ? name :
				    json_string_value(json_object_get(vars, key));
				if (val != NULL) {
					char *esc = NULL;
					if (json) {
						/* the value goes inside a JSON
						 * string: escape it as one */
						json_t *js = json_string(val);
						char *d = js ? json_dumps(js,
						    JSON_ENCODE_ANY) : NULL;
						json_decref(js);
						if (d != NULL) {
							d[strlen(d) - 1] = '\0';
							esc = strdup(d + 1);
							free(d);
						}
						if (esc == NULL) {
							free(out);
							return NULL;
						}
						val = esc;
					}
					vlen = strlen(val);
					if (len + vlen + 1 > cap) {
						char *nb = realloc(out, cap = len +
						    vlen + strlen(q + 2) + 1);
						if (nb == NULL) {
							free(esc);
							free(out);
							return NULL;
						}
						out = nb;
					}
					memcpy(out + len, val, vlen);
					len += vlen;
					free(esc);
					p = q + 2;
					continue;
				}
			}
		}
		if (len + 2 > cap) {
			char *nb = realloc(out, cap = cap * 2 + 2);
			if (nb == NULL) {
				free(out);
				return NULL;
			}
			out = nb;
		}
		out[len++] = *p++;
	}
	out[len] = '\0';
	return out;
}

/* ---------------------------------------------------------------- */

struct rest *
outbound_rest(void)
{
	return ob_rest;
}

int
outbound_init(struct master *m)
{
	ob_m = m;
	ob_start_ms = mono_ms();
	uv_timer_init(m->loop, &ob_early_timer);
	uv_timer_init(m->loop, &ob_hold_timer);
	uv_unref((uv_handle_t *)&ob_hold_timer);
	cool_load(m);
	if ((ob_rest = rest_new(m->loop, &m->conf, ob_outcome, m)) == NULL) {
		log_warnx("outbound: cannot start the REST client; outbound "
		    "calls are refused");
		return -1;
	}
	return 0;
}
