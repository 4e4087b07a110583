/*
 * rest.c — see rest.h.  The integration follows libcurl's socket API:
 * CURLMOPT_SOCKETFUNCTION asks us to watch a socket (one uv_poll_t each),
 * CURLMOPT_TIMERFUNCTION to wake it after a delay (one uv_timer_t), and
 * every readiness or expiry is handed back with curl_multi_socket_action().
 */
#include "worker/rest.h"
#include "daemon/common/conf.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define SMS_ATTEMPTS	4		/* 1 + 3 retries */
#define SMS_TIMEOUT_S	10		/* per attempt */
#define RESP_MAX	8192
#define HOOK_RESP_MAX	(64 * 1024)	/* a business webhook's answer */

struct sock {
	uv_poll_t	 poll;
	curl_socket_t	 fd;
	struct rest	*r;
};

struct job {
	struct rest	*r;
	struct job	*next;
	enum rest_kind	 kind;
	uint64_t	 ref;
	const char	*what;		/* for logs: "goodbye SMS to +1***" */
	CURL		*easy;
	char		*url;
	char		*form;
	char		 call_sid[64];
	char		 to_masked[64];
	int		 attempt;
	long		 status;	/* HTTP status of the last attempt */
	uv_timer_t	 retry;		/* backoff between attempts */
	int		 retry_init;
	char		*resp;		/* resp_cap bytes */
	size_t		 resp_len, resp_cap;
	int		 too_big;	/* a webhook answered more than that */
	int		 unsure;	/* REST_CREATE: see rest_done */
	/* a business webhook (REST_HOOK) */
	struct curl_slist *hdrs;
	char		 method[8];
	long		 timeout_ms;
	char		 tag[64];
	char		 errbuf[CURL_ERROR_SIZE];
};

struct rest {
	uv_loop_t		*loop;
	const struct conf	*cf;
	CURLM			*multi;
	uv_timer_t		 timer;
	struct job		*jobs;
	unsigned		 pending;
	void			(*outcome)(void *arg, const struct rest_done *);
	void			*arg;
};

static void rest_attempt(struct job *j);

int
rest_sms_configured(const struct rest *r)
{
	const struct conf *cf = r->cf;

	return cf->sms_enabled && cf->twilio_account_sid[0] &&
	    cf->twilio_auth_token[0] && cf->twilio_phone_number[0];
}

int
rest_calls_configured(const struct rest *r)
{
	return r->cf->twilio_account_sid[0] && r->cf->twilio_auth_token[0];
}

unsigned
rest_pending(const struct rest *r)
{
	return r->pending;
}

void
rest_set_conf(struct rest *r, const struct conf *cf)
{
	r->cf = cf;
}

/* ---------------------------------------------------------------- */
/* curl <-> libuv */

static void
check_done(struct rest *r);

static void
poll_cb(uv_poll_t *p, int status, int events)
{
	struct sock *s = p->data;
	struct rest *r = s->r;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(r->multi, s->fd, flags, &running);
	check_done(r);
}

static void
sock_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct sock *s = sockp;
	struct rest *r = userp;
	int events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			uv_poll_stop(&s->poll);
			uv_close((uv_handle_t *)&s->poll, sock_closed_cb);
			curl_multi_assign(r->multi, fd, NULL);
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->fd = fd;
		s->r = r;
		if (uv_poll_init_socket(r->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		curl_multi_assign(r->multi, fd, s);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, poll_cb);
	return 0;
}

static void
timer_cb(uv_timer_t *t)
{
	struct rest *r = t->data;
	int running;

	curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(r);
}

static int
timerfunc_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct rest *r = userp;

	if (timeout_ms < 0)
		uv_timer_stop(&r->timer);
	else
		uv_timer_start(&r->timer, timer_cb, (uint64_t)timeout_ms, 0);
	return 0;
}

struct rest *
rest_new(uv_loop_t *loop, const struct conf *cf,
    void (*outcome)(void *arg, const struct rest_done *), void *arg)
{
	static int curl_ready;
	struct rest *r;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			return NULL;
		curl_ready = 1;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->loop = loop;
	r->cf = cf;
	r->outcome = outcome;
	r->arg = arg;
	if ((r->multi = curl_multi_init()) == NULL) {
		free(r);
		return NULL;
	}
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, timerfunc_cb);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	return r;
}

/* ---------------------------------------------------------------- */
/* jobs */

static size_t
write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	size_t len = size * n, keep = j->resp_cap - 1 - j->resp_len;

	if (keep < len && (j->kind == REST_HOOK || j->kind == REST_GET)) {
		j->too_big = 1;		/* no partial JSON: the transfer stops */
		return 0;
	}
	if (keep > len)
		keep = len;
	memcpy(j->resp + j->resp_len, p, keep);
	j->resp_len += keep;
	j->resp[j->resp_len] = '\0';
	return len;
}

static void
job_destroy(struct job *j)
{
	free(j->resp);
	curl_slist_free_all(j->hdrs);
	free(j->url);
	free(j->form);
	free(j);
}

/* A job built by one of the rest_* calls joins the list and is tried. */
static void
job_start(struct job *j)
{
	j->next = j->r->jobs;
	j->r->jobs = j;
	j->r->pending++;
	rest_attempt(j);
}

static void
job_closed_cb(uv_handle_t *h)
{
	job_destroy(h->data);
}

static void
job_free(struct job *j)
{
	struct rest *r = j->r;
	struct job **pp;

	for (pp = &r->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	r->pending--;
	if (j->easy != NULL) {
		curl_multi_remove_handle(r->multi, j->easy);
		curl_easy_cleanup(j->easy);
		j->easy = NULL;
	}
	if (j->retry_init)
		uv_close((uv_handle_t *)&j->retry, job_closed_cb);
	else
		job_destroy(j);
}

static void
retry_cb(uv_timer_t *t)
{
	rest_attempt(t->data);
}

/* Twilio's error body: {"code":21211,"message":"..."} */
static void
error_text(const struct job *j, char *out, size_t len)
{
	const char *m = strstr(j->resp, "\"message\"");
	const char *q, *e;

	out[0] = '\0';
	if (m == NULL || (q = strchr(m + 9, '"')) == NULL)
		return;
	for (e = q + 1; *e && *e != '"'; e++)
		if (*e == '\\' && e[1])
			e++;
	snprintf(out, len, "%.*s", (int)(e - q - 1), q + 1);
}

/* The outcome, after the job is gone: the callback may start others. */
static void
report(struct job *j, int ok)
{
	struct rest *r = j->r;
	struct rest_done d = { j->kind, ok, j->attempt, j->ref, j->status, NULL,
	    0, NULL, NULL, j->unsure };
	char *body = NULL;

	/* a created call's answer holds its sid; a read, what was read */
	if ((j->kind == REST_CREATE || j->kind == REST_GET) && j->resp_len > 0 &&
	    (body = malloc(j->resp_len + 1)) != NULL) {
		memcpy(body, j->resp, j->resp_len);
		body[j->resp_len] = '\0';
		d.body = body;
		d.body_len = j->resp_len;
	}
	job_free(j);
	if (r->outcome != NULL)
		r->outcome(r->arg, &d);
	free(body);
}

/* A business webhook is tried once (a booking must not be made twice);
 * the caller gets its answer, or why there is none. */
static void
hook_finished(struct job *j, CURLcode res, long status)
{
	struct rest *r = j->r;
	struct rest_done d = { REST_HOOK, 0, 1, j->ref, status, NULL, 0, NULL,
	    NULL, 0 };
	char tag[sizeof(j->tag)];

	vr_strlcpy(tag, j->tag, sizeof(tag));
	d.tag = tag;
	if (j->too_big)
		d.error = "answer too large";
	else if (res == CURLE_OPERATION_TIMEDOUT)
		d.error = "timed out";
	else if (res != CURLE_OK)
		d.error = "unreachable";
	else if (status < 200 || status >= 300)
		d.error = "HTTP error";
	else {
		d.ok = 1;
		d.body = j->resp;
		d.body_len = j->resp_len;
	}
	/* the body is the job's: reported before the job is freed */
	if (r->outcome != NULL)
		r->outcome(r->arg, &d);
	job_free(j);
}

/* A failed create that shows Twilio made no call: the request never went
 * out (no connection, no name, nothing sent), or an answer that means
 * "not now" (429, 503).  Anything else may have made it. */
static int
create_unmade(CURLcode res, long sent, long status)
{
	if (res != CURLE_OK)
		return sent == 0 || res == CURLE_COULDNT_CONNECT ||
		    res == CURLE_COULDNT_RESOLVE_HOST ||
		    res == CURLE_COULDNT_RESOLVE_PROXY;
	return status == 429 || status == 503;
}

static void
job_finished(struct job *j, CURLcode res)
{
	struct rest *r = j->r;
	long status = 0, sent = 0;
	char why[256];
	int retry;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(j->easy, CURLINFO_REQUEST_SIZE, &sent);
	curl_multi_remove_handle(r->multi, j->easy);
	curl_easy_cleanup(j->easy);
	j->easy = NULL;
	if (j->kind == REST_HOOK) {
		hook_finished(j, res, status);
		return;
	}
	j->status = res == CURLE_OK ? status : 0;
	log_set_call(j->call_sid);
	if (res == CURLE_OK && status >= 200 && status < 300) {
		log_info("%s%s accepted by Twilio (HTTP %ld, attempt %d)", j->what,
		    j->to_masked, status, j->attempt);
		log_set_call(NULL);
		report(j, 1);
		return;
	}
	if (res != CURLE_OK)
		snprintf(why, sizeof(why), "%s", j->errbuf[0] ? j->errbuf :
		    curl_easy_strerror(res));
	else {
		char msg[200];
		error_text(j, msg, sizeof(msg));
		snprintf(why, sizeof(why), "HTTP %ld%s%s", status, msg[0] ? ": " : "", msg);
	}
	/* network trouble, throttling and server errors are worth another go;
	 * a 4xx about the request itself is not */
	retry = res != CURLE_OK || status == 429 || status >= 500;
	/* but a call created twice rings someone twice: a create is tried
	 * again only when nothing reached Twilio, or Twilio said it made no
	 * call; the caller finds out what became of any other */
	if (j->kind == REST_CREATE && retry && !create_unmade(res, sent,
	    status)) {
		log_warnx("%s%s failed (%s); not tried again, the call may "
		    "exist", j->what, j->to_masked, why);
		log_set_call(NULL);
		j->unsure = 1;
		report(j, 0);
		return;
	}
	/* a read is tried once: its caller knows when to ask again */
	if (j->kind == REST_GET)
		retry = 0;
	if (retry && j->attempt < SMS_ATTEMPTS) {
		uint64_t delay = 1000ull << (j->attempt - 1);
		log_warnx("%s%s failed (%s); retrying in %llu ms", j->what,
		    j->to_masked, why, (unsigned long long)delay);
		log_set_call(NULL);
		if (!j->retry_init) {
			uv_timer_init(r->loop, &j->retry);
			j->retry.data = j;
			j->retry_init = 1;
		}
		uv_timer_start(&j->retry, retry_cb, delay, 0);
		return;
	}
	log_warnx("%s%s given up after %d attempt%s: %s", j->what, j->to_masked,
	    j->attempt, j->attempt == 1 ? "" : "s", why);
	log_set_call(NULL);
	report(j, 0);
}

static void
check_done(struct rest *r)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
		struct job *j;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		job_finished(j, msg->data.result);
	}
}

static void
rest_attempt(struct job *j)
{
	const struct conf *cf = j->r->cf;
	CURL *e = curl_easy_init();

	j->attempt++;
	if (j->resp == NULL) {
		j->resp_cap = j->kind == REST_HOOK || j->kind == REST_GET ?
		    HOOK_RESP_MAX : RESP_MAX;
		j->resp = malloc(j->resp_cap);
	}
	if (e == NULL || j->resp == NULL) {
		if (e != NULL)
			curl_easy_cleanup(e);
		if (j->kind == REST_HOOK)
			hook_finished(j, CURLE_OUT_OF_MEMORY, 0);
		else
			report(j, 0);
		return;
	}
	j->resp_len = 0;
	j->resp[0] = '\0';
	j->errbuf[0] = '\0';
	j->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, j->url);
	if (j->kind == REST_GET)
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	else
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->form);
	if (j->kind == REST_HOOK) {
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, j->method);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, j->timeout_ms);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, cf->twilio_account_sid);
		curl_easy_setopt(e, CURLOPT_PASSWORD, cf->twilio_auth_token);
		if (j->kind == REST_GET)
			curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, j->timeout_ms);
		else if (j->kind == REST_CREATE)
			curl_easy_setopt(e, CURLOPT_TIMEOUT,
			    (long)REST_CREATE_TIMEOUT_S);
		else
			curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)SMS_TIMEOUT_S);
	}
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "voxrelay/" VOXRELAY_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, j);
	if (curl_multi_add_handle(j->r->multi, e) != CURLM_OK)
		job_finished(j, CURLE_FAILED_INIT);
}

static char *
form_field(CURL *e, const char *name, const char *value, char *acc)
{
	char *v = curl_easy_escape(e, value, 0), *out;
	size_t n;

	if (v == NULL) {
		free(acc);
		return NULL;
	}
	n = (acc ? strlen(acc) + 1 : 0) + strlen(name) + 1 + strlen(v) + 1;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "%s%s%s=%s", acc ? acc : "", acc ? "&" : "", name, v);
	curl_free(v);
	free(acc);
	return out;
}

int
rest_send_sms(struct rest *r, const char *to, const char *body,
    const char *call_sid)
{
	const struct conf *cf;
	struct job *j;
	CURL *e;
	size_t n;

	if (r == NULL || !rest_sms_configured(r))
		return -1;
	cf = r->cf;
	/* only a phone number can get a text: +E.164 */
	if (to == NULL || to[0] != '+' || strlen(to) < 8 || strlen(to) > 16)
		return -1;
	for (const char *p = to + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	if ((j = calloc(1, sizeof(*j))) == NULL || (e = curl_easy_init()) == NULL) {
		free(j);
		return -1;
	}
	j->r = r;
	n = strlen(cf->twilio_api_base) + strlen(cf->twilio_account_sid) + 64;
	j->url = malloc(n);
	if (j->url)
		snprintf(j->url, n, "%s/2010-04-01/Accounts/%s/Messages.json",
		    cf->twilio_api_base, cf->twilio_account_sid);
	j->form = form_field(e, "To", to, NULL);
	if (j->form)
		j->form = form_field(e, "From", cf->twilio_phone_number, j->form);
	if (j->form)
		j->form = form_field(e, "Body", body, j->form);
	curl_easy_cleanup(e);
	if (j->url == NULL || j->form == NULL) {
		job_destroy(j);
		return -1;
	}
	vr_strlcpy(j->call_sid, call_sid ? call_sid : "", sizeof(j->call_sid));
	mask_phone(to, j->to_masked, sizeof(j->to_masked));
	j->kind = REST_SMS;
	j->what = "goodbye SMS to ";
	job_start(j);
	return 0;
}

int
rest_update_call(struct rest *r, const char *call_sid, const char *name,
    const char *value, uint64_t ref)
{
	const struct conf *cf;
	struct job *j;
	CURL *e;
	size_t n;

	if (r == NULL || !rest_calls_configured(r))
		return -1;
	cf = r->cf;
	/* it goes into the URL: CA and 32 hex digits, nothing else */
	n = strlen(call_sid);
	if (n != 34 || call_sid[0] != 'C' || call_sid[1] != 'A')
		return -1;
	for (size_t i = 2; i < n; i++)
		if (!isxdigit((unsigned char)call_sid[i]))
			return -1;
	if ((j = calloc(1, sizeof(*j))) == NULL || (e = curl_easy_init()) == NULL) {
		free(j);
		return -1;
	}
	j->r = r;
	n = strlen(cf->twilio_api_base) + strlen(cf->twilio_account_sid) + 96;
	if ((j->url = malloc(n)) != NULL)
		snprintf(j->url, n, "%s/2010-04-01/Accounts/%s/Calls/%s.json",
		    cf->twilio_api_base, cf->twilio_account_sid, call_sid);
	j->form = form_field(e, name, value, NULL);
	curl_easy_cleanup(e);
	if (j->url == NULL || j->form == NULL) {
		job_destroy(j);
		return -1;
	}
	vr_strlcpy(j->call_sid, call_sid, sizeof(j->call_sid));
	j->kind = REST_CALL;
	j->ref = ref;
	j->what = strcmp(name, "Status") == 0 ? "hang-up" : "call update";
	job_start(j);
	return 0;
}

int
rest_webhook(struct rest *r, const char *url, const char *method,
    const char *const *headers, const char *body, long timeout_ms,
    const char *call_sid, uint64_t ref, const char *tag)
{
	struct job *j;

	if (r == NULL || (j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->r = r;
	j->kind = REST_HOOK;
	j->ref = ref;
	j->what = "webhook";
	j->timeout_ms = timeout_ms;
	vr_strlcpy(j->method, method, sizeof(j->method));
	vr_strlcpy(j->tag, tag, sizeof(j->tag));
	vr_strlcpy(j->call_sid, call_sid ? call_sid : "", sizeof(j->call_sid));
	j->url = strdup(url);
	j->form = strdup(body);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		struct curl_slist *h = curl_slist_append(j->hdrs, headers[i]);
		if (h == NULL)
			break;
		j->hdrs = h;
	}
	if (j->url == NULL || j->form == NULL) {
		job_destroy(j);
		return -1;
	}
	job_start(j);
	return 0;
}

int
rest_create_call(struct rest *r, const char *form, uint64_t ref)
{
	const struct conf *cf;
	struct job *j;
	size_t n;

	if (r == NULL || !rest_calls_configured(r))
		return -1;
	cf = r->cf;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->r = r;
	n = strlen(cf->twilio_api_base) + strlen(cf->twilio_account_sid) + 64;
	if ((j->url = malloc(n)) != NULL)
		snprintf(j->url, n, "%s/2010-04-01/Accounts/%s/Calls.json",
		    cf->twilio_api_base, cf->twilio_account_sid);
	j->form = strdup(form);
	if (j->url == NULL || j->form == NULL) {
		job_destroy(j);
		return -1;
	}
	j->kind = REST_CREATE;
	j->ref = ref;
	j->what = "outbound call";
	job_start(j);
	return 0;
}

int
rest_get(struct rest *r, const char *path, long timeout_ms, uint64_t ref)
{
	const struct conf *cf;
	struct job *j;
	size_t n;

	if (r == NULL || !rest_calls_configured(r) || path[0] == '/')
		return -1;
	cf = r->cf;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->r = r;
	n = strlen(cf->twilio_api_base) + strlen(cf->twilio_account_sid) +
	    strlen(path) + 32;
	if ((j->url = malloc(n)) == NULL) {
		job_destroy(j);
		return -1;
	}
	snprintf(j->url, n, "%s/2010-04-01/Accounts/%s/%s",
	    cf->twilio_api_base, cf->twilio_account_sid, path);
	j->kind = REST_GET;
	j->ref = ref;
	j->timeout_ms = timeout_ms;
	j->what = "read of the account";
	job_start(j);
	return 0;
}
