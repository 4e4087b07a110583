/*
 * conf.c — see conf.h.  One table lists every key, its type, default and
 * bounds; parsing, defaults, the environment override and conf_dump() all
 * walk that table, so a new key is one line here and one in
 * etc/voxrelay.conf.
 */
#include "daemon/common/conf.h"
#include "daemon/common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum ktype { K_INT, K_DBL, K_STR, K_BOOL, K_LEVEL };

struct key {
	const char	*name;
	enum ktype	 type;
	size_t		 off;
	const char	*def;
	double		 min, max;
	int		 flags;
};

#define O(f) offsetof(struct conf, f)
static const struct key keys[] = {
	{ "PORT",			K_INT,  O(port), "5050", 1, 65535, 0 },
	{ "BIND",			K_STR,  O(bind), "0.0.0.0", 0, 0, 0 },
	{ "WORKERS",			K_INT,  O(workers), "0", 0, 64, 0 },
	{ "PUBLIC_URL",			K_STR,  O(public_url), "", 0, 0, 0 },
	{ "ADMIN_BIND",			K_STR,  O(admin_bind), "127.0.0.1", 0, 0, 0 },
	{ "ADMIN_PORT",			K_INT,  O(admin_port), "5051", 1, 65535, 0 },
	{ "ADMIN_TOKEN",		K_STR,  O(admin_token), "", 0, 0, CONF_SECRET },
	{ "TWILIO_ACCOUNT_SID",		K_STR,  O(twilio_account_sid), "", 0, 0, 0 },
	{ "TWILIO_AUTH_TOKEN",		K_STR,  O(twilio_auth_token), "", 0, 0, CONF_SECRET },
	{ "TWILIO_PHONE_NUMBER",	K_STR,  O(twilio_phone_number), "", 0, 0, 0 },
	{ "VALIDATE_TWILIO_SIGNATURE",	K_BOOL, O(validate_signature), "auto", 0, 0, 0 },
	{ "STREAM_SECRET",		K_STR,  O(stream_secret), "", 0, 0, CONF_SECRET },
	{ "STREAM_TOKEN_TTL",		K_INT,  O(stream_token_ttl), "120", 5, 86400, 0 },
	{ "PREWARM",			K_BOOL, O(prewarm), "on", 0, 0, 0 },
	{ "FREE_CALL_MINUTES",		K_DBL,  O(free_call_minutes), "3.0", 0, 1e6, 0 },
	{ "SESSION_ROLLOVER_MINUTES",	K_DBL,  O(session_rollover_minutes), "55", 0.01, 59, 0 },
	{ "MIN_CALL_DURATION",		K_DBL,  O(min_call_duration), "0.5", 0, 1e6, 0 },
	{ "USAGE_CSV_PATH",		K_STR,  O(usage_csv_path), "/var/lib/voxrelay/user_usage.csv", 0, 0, 0 },
	{ "USAGE_CSV_BACKUP_PATH",	K_STR,  O(usage_csv_backup_path), "/var/lib/voxrelay/user_usage_backup.csv", 0, 0, 0 },
	{ "USAGE_FLUSH_INTERVAL",	K_INT,  O(usage_flush_interval), "5", 1, 3600, 0 },
	{ "LEDGER_CAPACITY",		K_INT,  O(ledger_capacity), "65536", 16, 4194304, 0 },
	{ "MAX_WEBSOCKET_CONNECTIONS",	K_INT,  O(max_ws_connections), "1000", 1, 100000, 0 },
	{ "MAX_HTTP_CONNECTIONS",	K_INT,  O(max_http_connections), "4096", 8, 1000000, 0 },
	{ "MAX_CONNECTIONS_PER_IP",	K_INT,  O(max_conns_per_ip), "256", 1, 1000000, 0 },
	{ "TRUSTED_PROXIES",		K_STR,  O(trusted_proxies), "", 0, 0, 0 },
	{ "CORS_ORIGINS",		K_STR,  O(cors_origins), "", 0, 0, 0 },
	{ "ANSWER_BUDGET",		K_INT,  O(answer_budget), "16777216", 16384, 1073741824, 0 },
	{ "MAX_HEADER_SIZE",		K_INT,  O(max_header_size), "8192", 512, 65536, 0 },
	{ "MAX_HEADERS",		K_INT,  O(max_headers), "64", 8, 512, 0 },
	{ "MAX_BODY_SIZE",		K_INT,  O(max_body_size), "65536", 1024, 1048576, 0 },
	{ "HEADER_TIMEOUT",		K_INT,  O(header_timeout), "10", 1, 300, 0 },
	{ "KEEPALIVE_TIMEOUT",		K_INT,  O(keepalive_timeout), "30", 1, 3600, 0 },
	{ "WS_MAX_MESSAGE",		K_INT,  O(ws_max_message), "65536", 1024, 16777216, 0 },
	{ "MAX_MEDIA_PAYLOAD",		K_INT,  O(max_media_payload), "4096", 160, 49152, 0 },
	{ "WS_IDLE_TIMEOUT",		K_INT,  O(ws_idle_timeout), "20", 1, 3600, 0 },
	{ "WS_START_TIMEOUT",		K_INT,  O(ws_start_timeout), "10", 1, 600, 0 },
	{ "MAX_OUTBOUND_BUFFER",	K_INT,  O(max_outbound_buffer), "2097152", 65536, 268435456, 0 },
	{ "HEARTBEAT_TIMEOUT",		K_INT,  O(heartbeat_timeout), "3000", 500, 600000, 0 },
	{ "DRAIN_TIMEOUT",		K_INT,  O(drain_timeout), "30", 0, 86400, 0 },
	{ "RELOAD_TIMEOUT",		K_INT,  O(reload_timeout), "3600", 1, 86400, 0 },
	{ "OPENAI_URL",			K_STR,  O(openai_url), "wss://api.openai.com/v1/realtime?model=gpt-realtime", 0, 0, 0 },
	{ "OPENAI_API_KEY",		K_STR,  O(openai_api_key), "", 0, 0, CONF_SECRET },
	{ "OPENAI_DIALECT",		K_STR,  O(openai_dialect_name), "ga", 0, 0, 0 },
	{ "OPENAI_CA_FILE",		K_STR,  O(openai_ca_file), "", 0, 0, 0 },
	{ "OPENAI_CA_BUNDLE",		K_STR,  O(openai_ca_bundle), "/etc/ssl/certs/ca-certificates.crt", 0, 0, 0 },
	{ "OPENAI_ORGANIZATION",	K_STR,  O(openai_organization), "", 0, 0, 0 },
	{ "OPENAI_PROJECT",		K_STR,  O(openai_project), "", 0, 0, 0 },
	{ "OPENAI_CONNECT_TIMEOUT",	K_INT,  O(openai_connect_timeout), "5", 1, 120, 0 },
	{ "OPENAI_HANDSHAKE_TIMEOUT",	K_INT,  O(openai_handshake_timeout), "10", 1, 120, 0 },
	{ "OPENAI_PING_INTERVAL",	K_INT,  O(openai_ping_interval), "15", 1, 3600, 0 },
	{ "OPENAI_PONG_TIMEOUT",	K_INT,  O(openai_pong_timeout), "10", 1, 600, 0 },
	{ "MARK_INTERVAL_MS",		K_INT,  O(mark_interval_ms), "100", 0, 10000, 0 },
	{ "FRAMES_PER_APPEND",		K_INT,  O(frames_per_append), "1", 1, 50, 0 },
	{ "TWILIO_API_BASE",		K_STR,  O(twilio_api_base), "https://api.twilio.com", 0, 0, 0 },
	{ "PHONE_NUMBER_FROM",		K_STR,  O(phone_number_from), "", 0, 0, 0 },
	{ "VERIFIED_PHONE_NUMBERS",	K_STR,  O(verified_phone_numbers), "", 0, 0, 0 },
	{ "ALLOW_ALL_US_CANADA",	K_BOOL, O(allow_all_us_canada), "false", 0, 0, 0 },
	{ "OUTBOUND_COOLDOWN",		K_INT,  O(outbound_cooldown), "300", 0, 604800, 0 },
	{ "MAX_CONCURRENT_CALLS",	K_INT,  O(max_concurrent_calls), "10", 0, 100000, 0 },
	{ "OUTBOUND_GREETING_PAUSE",	K_INT,  O(outbound_greeting_pause), "3000", 0, 60000, 0 },
	{ "DEFAULT_OUTBOUND_LINE",	K_STR,  O(default_outbound_line), "reminder", 0, 0, 0 },
	{ "OUTBOUND_STATUS_GRACE",	K_INT,  O(outbound_status_grace), "300", 1, 86400, 0 },
	{ "CAMPAIGNS_DIR",		K_STR,  O(campaigns_dir), "/etc/voxrelay/campaigns", 0, 0, 0 },
	{ "SMS_ENABLED",		K_BOOL, O(sms_enabled), "auto", 0, 0, 0 },
	{ "CONVOREPS_URL",		K_STR,  O(convoreps_url), "https://convoreps.com", 0, 0, 0 },
	{ "SMS_MESSAGE",		K_STR,  O(sms_message), "Thanks for practising with us! Your free minutes are used up. Keep practising at {url}", 0, 0, 0 },
	{ "GREETING_URL",		K_STR,  O(greeting_url), "", 0, 0, 0 },
	{ "WRAPUP_INSTRUCTIONS",	K_STR,  O(wrapup_instructions), "The caller's free practice time is over. Wrap up now in one short, friendly sentence, in character, and say goodbye. Do not ask anything.", 0, 0, 0 },
	{ "WRAPUP_GRACE",		K_INT,  O(wrapup_grace), "15", 1, 120, 0 },
	{ "INTENT_FALLBACK_SECONDS",	K_INT,  O(intent_fallback_seconds), "8", 0, 600, 0 },
	{ "BOOKINGS_PATH",		K_STR,  O(bookings_path), "/var/lib/voxrelay/bookings.jsonl", 0, 0, 0 },
	{ "PERSONAS_DIR",		K_STR,  O(personas_dir), "/etc/voxrelay/personas", 0, 0, 0 },
	{ "LINES_DIR",			K_STR,  O(lines_dir), "/etc/voxrelay/lines", 0, 0, 0 },
	{ "TRANSCRIPTS_DIR",		K_STR,  O(transcripts_dir), "/var/lib/voxrelay/transcripts", 0, 0, 0 },
	{ "TRANSCRIPT_CSV_PATH",	K_STR,  O(transcript_csv_path), "", 0, 0, 0 },
	{ "CALL_RECORDS",		K_BOOL, O(call_records), "true", 0, 0, 0 },
	{ "DATABASE_PATH",		K_STR,  O(database_path), "/var/lib/voxrelay/voxrelay.db", 0, 0, 0 },
	{ "DATABASE_URL",		K_STR,  O(database_url), "", 0, 0, CONF_SECRET },
	{ "DATABASE_JOURNAL",		K_STR,  O(database_journal), "/var/lib/voxrelay/voxrelay-journal.ndjson", 0, 0, 0 },
	{ "RETENTION_DAYS",		K_INT,  O(retention_days), "90", 0, 36500, 0 },
	{ "HOST_NAME",			K_STR,  O(host_name), "", 0, 0, 0 },
	{ "SHARED_TIMEOUT_MS",		K_INT,  O(shared_timeout_ms), "200", 10, 10000, 0 },
	{ "SHARED_LIVE_INTERVAL",	K_INT,  O(shared_live_interval), "5", 1, 60, 0 },
	{ "PRICE_TEXT_IN_PER_M",	K_DBL,  O(price_text_in), "4.0", 0, 1e6, 0 },
	{ "PRICE_CACHED_IN_PER_M",	K_DBL,  O(price_cached_in), "0.4", 0, 1e6, 0 },
	{ "PRICE_AUDIO_IN_PER_M",	K_DBL,  O(price_audio_in), "32.0", 0, 1e6, 0 },
	{ "PRICE_TEXT_OUT_PER_M",	K_DBL,  O(price_text_out), "16.0", 0, 1e6, 0 },
	{ "PRICE_AUDIO_OUT_PER_M",	K_DBL,  O(price_audio_out), "64.0", 0, 1e6, 0 },
	{ "DEFAULT_ROUTE",		K_STR,  O(default_route), "default", 0, 0, 0 },
	{ "SAY_VOICE",			K_STR,  O(say_voice), "", 0, 0, 0 },
	{ "AFTER_STREAM_MESSAGE",	K_STR,  O(after_stream_message), "Thank you for calling. Goodbye.", 0, 0, 0 },
	{ "OUT_OF_MINUTES_MESSAGE",	K_STR,  O(out_of_minutes_message), "Sorry, you have used all of your free minutes. Goodbye.", 0, 0, 0 },
	{ "BUSY_MESSAGE",		K_STR,  O(busy_message), "Sorry, all of our lines are busy right now. Please call again in a few minutes.", 0, 0, 0 },
	{ "LOG_FILE",			K_STR,  O(log_file), "", 0, 0, 0 },
	{ "PID_FILE",			K_STR,  O(pid_file), "", 0, 0, 0 },
	{ "LOG_LEVEL",			K_LEVEL, O(log_level), "info", 0, 0, 0 },
};
#undef O

struct errs {
	char	*buf;
	size_t	 len, used;
	int	 n;
	/* where each key was last set ("file:line", "environment KEY"),
	 * by its index in keys[], for the checks made after parsing */
	char	 set_at[ARRAY_LEN(keys)][256];
};

static void
err_add(struct errs *e, const char *fmt, ...)
{
	va_list ap;
	size_t start;
	int m;

	e->n++;
	if (e->buf == NULL || e->used + 2 >= e->len)
		return;
	va_start(ap, fmt);
	m = vsnprintf(e->buf + e->used, e->len - e->used, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	start = e->used;
	e->used += (size_t)m < e->len - e->used ? (size_t)m : e->len - e->used - 1;
	/* one line per problem: a value quoted with "\n" in it, or any
	 * other control character, must not start another */
	for (size_t i = start; i < e->used; i++)
		if ((unsigned char)e->buf[i] < 0x20 || e->buf[i] == 0x7f)
			e->buf[i] = '?';
	if (e->used + 1 < e->len) {
		e->buf[e->used++] = '\n';
		e->buf[e->used] = '\0';
	}
}

static const struct key *
key_find(const char *name, size_t n)
{
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		if (strlen(keys[i].name) == n && memcmp(keys[i].name, name, n) == 0)
			return &keys[i];
	return NULL;
}

static void
note_where(struct errs *e, const struct key *k, const char *where)
{
	vr_strlcpy(e->set_at[k - keys], where, sizeof(e->set_at[0]));
}

/* Where the key name was last set, for an error message. */
static const char *
where_set(const struct errs *e, const char *name)
{
	const struct key *k = key_find(name, strlen(name));

	return k != NULL && e->set_at[k - keys][0] != '\0' ?
	    e->set_at[k - keys] : "default";
}

/* Parse and store one value.  where: "file:line" or "environment". */
static int
key_set(struct conf *c, const struct key *k, const char *v, const char *where,
    struct errs *e)
{
	void *p = (char *)c + k->off;
	char *end;

	switch (k->type) {
	case K_INT: {
		long l;
		errno = 0;
		l = strtol(v, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (errno != 0 || end == v || *end != '\0') {
			err_add(e, "%s: %s: not an integer: \"%s\"", where, k->name, v);
			return -1;
		}
		if (l < k->min || l > k->max) {
			err_add(e, "%s: %s: %ld is out of range %.0f..%.0f", where,
			    k->name, l, k->min, k->max);
			return -1;
		}
		*(int *)p = (int)l;
		return 0;
	}
	case K_DBL: {
		double d;
		errno = 0;
		d = strtod(v, &end);
		while (*end == ' ' || *end == '\t')
			end++;
		if (errno != 0 || end == v || *end != '\0' || !isfinite(d)) {
			err_add(e, "%s: %s: not a number: \"%s\"", where, k->name, v);
			return -1;
		}
		if (d < k->min || d > k->max) {
			err_add(e, "%s: %s: %g is out of range %g..%g", where,
			    k->name, d, k->min, k->max);
			return -1;
		}
		*(double *)p = d;
		return 0;
	}
	case K_BOOL:
		if (!strcasecmp(v, "1") || !strcasecmp(v, "true") ||
		    !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
			*(int *)p = 1;
		else if (!strcasecmp(v, "0") || !strcasecmp(v, "false") ||
		    !strcasecmp(v, "no") || !strcasecmp(v, "off"))
			*(int *)p = 0;
		else if (!strcasecmp(v, "auto") || v[0] == '\0')
			*(int *)p = -1;
		else {
			err_add(e, "%s: %s: expected true, false or auto, not \"%s\"",
			    where, k->name, v);
			return -1;
		}
		return 0;
	case K_LEVEL:
		if (!strcasecmp(v, "info") || !strcasecmp(v, "warn") ||
		    !strcasecmp(v, "warning") || !strcasecmp(v, "error"))
			*(int *)p = 0;
		else if (!strcasecmp(v, "debug"))
			*(int *)p = 1;
		else {
			err_add(e, "%s: %s: expected info or debug, not \"%s\"",
			    where, k->name, v);
			return -1;
		}
		return 0;
	case K_STR: {
		char *s = strdup(v), **sp = p;
		if (s == NULL) {
			err_add(e, "%s: %s: out of memory", where, k->name);
			return -1;
		}
		free(*sp);
		*sp = s;
		return 0;
	}
	}
	return -1;
}

/*
 * Unquote a value in place.  Double quotes understand \" \\ \n \t; single
 * quotes are literal; an unquoted value ends at " #" (a comment) and loses
 * trailing blanks.  Returns 0, or -1 for an unterminated quote.
 */
static int
unquote(char *v)
{
	char *r, *w, q = v[0];

	if (q == '"' || q == '\'') {
		for (r = v + 1, w = v; *r != '\0' && *r != q; r++) {
			if (q == '"' && *r == '\\' && r[1] != '\0') {
				r++;
				*w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r;
			} else
				*w++ = *r;
		}
		if (*r != q)
			return -1;
		/* after the closing quote only blanks and a comment */
		for (r++; *r == ' ' || *r == '\t'; r++)
			;
		if (*r != '\0' && *r != '#')
			return -1;
		*w = '\0';
		return 0;
	}
	for (r = v; *r != '\0'; r++)
		if (*r == '#' && r > v && (r[-1] == ' ' || r[-1] == '\t')) {
			*r = '\0';
			break;
		}
	for (w = v + strlen(v); w > v && (w[-1] == ' ' || w[-1] == '\t'); w--)
		w[-1] = '\0';
	return 0;
}

static void
conf_parse_file(struct conf *c, const char *path, struct errs *e)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, where[600];
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;

	if (f == NULL) {
		err_add(e, "%s: cannot open: %s", path, strerror(errno));
		return;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *s = line, *eq, *name, *v;
		const struct key *k;
		size_t nl;

		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		if (strncmp(s, "export ", 7) == 0)
			for (s += 7; *s == ' '; s++)
				;
		if ((eq = strchr(s, '=')) == NULL) {
			err_add(e, "%s: expected KEY=value", where);
			continue;
		}
		name = s;
		for (nl = eq - s; nl > 0 && (name[nl - 1] == ' ' || name[nl - 1] == '\t'); nl--)
			;
		for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
			;
		if ((k = key_find(name, nl)) == NULL)
			continue;	/* another service's key: not ours to judge */
		if (unquote(v) != 0) {
			err_add(e, "%s: %.*s: unterminated or misplaced quote", where,
			    (int)nl, name);
			continue;
		}
		if (key_set(c, k, v, where, e) == 0)
			note_where(e, k, where);
	}
	free(line);
	fclose(f);
}

static int
ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

int
conf_url_check(const char *url, const char *tls_scheme,
    const char *plain_scheme, char *why, size_t whylen)
{
	size_t tl = strlen(tls_scheme), pl = strlen(plain_scheme);

	if (strncmp(url, tls_scheme, tl) == 0)
		return 0;
	if (strncmp(url, plain_scheme, pl) != 0) {
		snprintf(why, whylen, "must start with %s, not \"%s\"",
		    tls_scheme, url);
		return -1;
	}
	if (url_host_loopback(url))
		return 0;
	snprintf(why, whylen, "%s is in clear: use %s (%s only for a "
	    "loopback host: 127.0.0.0/8, ::1, localhost)", plain_scheme,
	    tls_scheme, plain_scheme);
	return -1;
}

/* The length of u's "https://" or "http://"; 0 for another scheme. */
static size_t
http_scheme_len(const char *u)
{
	if (strncmp(u, "https://", 8) == 0)
		return 8;
	if (strncmp(u, "http://", 7) == 0)
		return 7;
	return 0;
}

/* A base URL loses its trailing slashes: paths are appended to it. */
static void
trim_slashes(char *u)
{
	size_t n = strlen(u);

	while (n > 0 && u[n - 1] == '/')
		u[--n] = '\0';
}

/* The same as a config error naming key and what would leak. */
static void
conf_url_secure(struct errs *e, const char *key, const char *url,
    const char *tls_scheme, const char *plain_scheme, const char *what)
{
	char why[600];

	if (conf_url_check(url, tls_scheme, plain_scheme, why, sizeof(why)) != 0)
		err_add(e, "%s: %s; it would carry %s", key, why, what);
}

/*
 * OPENAI_URL: ws:// or wss://, a host (a bracketed IPv6 literal allowed), an
 * optional port, and the request target kept byte for byte.
 */
static void
conf_parse_openai_url(struct conf *c, struct errs *e)
{
	const char *u = c->openai_url, *h, *end, *colon;
	char host[256];
	long port;

	free(c->openai_host);
	free(c->openai_target);
	c->openai_host = c->openai_target = NULL;
	if (strncmp(u, "wss://", 6) == 0) {
		c->openai_tls = 1;
		h = u + 6;
		port = 443;
	} else if (strncmp(u, "ws://", 5) == 0) {
		if (!url_host_loopback(u)) {
			conf_url_secure(e, "OPENAI_URL", u, "wss://", "ws://",
			    "OPENAI_API_KEY");
			return;
		}
		c->openai_tls = 0;
		h = u + 5;
		port = 80;
	} else {
		err_add(e, "OPENAI_URL: must start with wss:// or ws://, not \"%s\"", u);
		return;
	}
	end = h + strcspn(h, "/?#");
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (rb == NULL) {
			err_add(e, "OPENAI_URL: unterminated IPv6 address");
			return;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(rb - h - 1), h + 1);
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		snprintf(host, sizeof(host), "%.*s",
		    (int)((colon ? colon : end) - h), h);
	}
	if (colon != NULL) {
		char *pe;
		port = strtol(colon + 1, &pe, 10);
		if (pe != end || port < 1 || port > 65535) {
			err_add(e, "OPENAI_URL: bad port");
			return;
		}
	}
	if (host[0] == '\0' || memchr(h, '@', (size_t)(end - h))) {
		err_add(e, "OPENAI_URL: no host, or credentials in the URL");
		return;
	}
	if (*end == '#') {
		err_add(e, "OPENAI_URL: a fragment is never sent; remove it");
		return;
	}
	c->openai_host = strdup(host);
	c->openai_port = (int)port;
	if (*end == '\0')
		c->openai_target = strdup("/");
	else if (*end == '?') {
		c->openai_target = malloc(strlen(end) + 2);
		if (c->openai_target)
			sprintf(c->openai_target, "/%s", end);
	} else
		c->openai_target = strdup(end);
	for (const char *p = c->openai_target; p && *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			err_add(e, "OPENAI_URL: spaces or control characters in the "
			    "path");
			break;
		}
}

/*
 * TRUSTED_PROXIES: addresses or CIDRs, separated by commas or blanks.  Kept
 * as IPv6 (IPv4 as ::ffff:a.b.c.d), so one compare serves both families
 * whatever the listener's.
 */
static void
conf_parse_proxies(struct conf *c, struct errs *e)
{
	char *list = strdup(c->trusted_proxies), *save = NULL, *tok;

	free(c->trusted);
	c->trusted = NULL;
	c->ntrusted = 0;
	if (list == NULL) {
		err_add(e, "TRUSTED_PROXIES: out of memory");
		return;
	}
	for (tok = strtok_r(list, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		struct conf_net n, *nt;
		char *slash = strchr(tok, '/'), *end;
		struct in_addr a4;
		long bits = -1;

		memset(&n, 0, sizeof(n));
		if (slash != NULL) {
			*slash = '\0';
			errno = 0;
			bits = strtol(slash + 1, &end, 10);
			if (errno != 0 || end == slash + 1 || *end != '\0' || bits < 0)
				goto bad;
		}
		if (inet_pton(AF_INET, tok, &a4) == 1) {
			if (bits > 32)
				goto bad;
			n.cn_addr[10] = n.cn_addr[11] = 0xff;
			memcpy(n.cn_addr + 12, &a4, 4);
			n.cn_bits = bits < 0 ? 128 : 96 + (int)bits;
		} else if (inet_pton(AF_INET6, tok, n.cn_addr) == 1) {
			if (bits > 128)
				goto bad;
			n.cn_bits = bits < 0 ? 128 : (int)bits;
		} else
			goto bad;
		nt = realloc(c->trusted, (c->ntrusted + 1) * sizeof(*nt));
		if (nt == NULL) {
			err_add(e, "TRUSTED_PROXIES: out of memory");
			break;
		}
		c->trusted = nt;
		c->trusted[c->ntrusted++] = n;
		continue;
bad:
		if (slash != NULL)
			*slash = '/';
		err_add(e, "TRUSTED_PROXIES: \"%s\" is not an address or a CIDR "
		    "(10.0.0.1, 10.0.0.0/8, ::1)", tok);
	}
	free(list);
}

int
conf_addr_trusted(const struct conf *c, const uint8_t addr[16])
{
	for (unsigned i = 0; i < c->ntrusted; i++) {
		const struct conf_net *n = &c->trusted[i];
		int full = n->cn_bits / 8, rest = n->cn_bits % 8;

		if (memcmp(n->cn_addr, addr, (size_t)full) != 0)
			continue;
		if (rest != 0 && ((n->cn_addr[full] ^ addr[full]) &
		    (0xff << (8 - rest)) & 0xff) != 0)
			continue;
		return 1;
	}
	return 0;
}

static void
conf_check(struct conf *c, struct errs *e)
{
	const char *u = c->public_url;
	size_t h;

	if (c->workers == 0)
		c->workers = ncpus();
	if (u[0] != '\0') {
		if ((h = http_scheme_len(u)) == 0)
			err_add(e, "PUBLIC_URL: must start with https:// (Twilio "
			    "reaches us over TLS), not \"%s\"", u);
		else if (h == 7 && !url_host_loopback(u))
			conf_url_secure(e, "PUBLIC_URL", u, "https://", "http://",
			    "the stream tokens, and Twilio reaches us over TLS");
		else if (strchr(u, '?') != NULL || strchr(u, '#') != NULL)
			err_add(e, "PUBLIC_URL: must not carry a query or fragment");
		else if (u[h] == '\0' || u[h] == '/')
			err_add(e, "PUBLIC_URL: has no host name");
		trim_slashes(c->public_url);
	}
	/*
	 * Closed by default: without the auth token nothing proves a webhook
	 * came from Twilio, and every unsigned POST would open a model
	 * session on the operator's account.  Only an explicit "false"
	 * waives the check (master_run() and reload() warn about it).
	 */
	if (c->validate_signature < 0 && c->twilio_auth_token[0] == '\0')
		err_add(e, "%s: TWILIO_AUTH_TOKEN: not set, so Twilio's request "
		    "signatures cannot be checked: set it to the account's auth "
		    "token (Twilio console), or set VALIDATE_TWILIO_SIGNATURE=false "
		    "to accept unsigned webhooks", c->path && c->path[0] ?
		    c->path : "environment");
	else if (c->validate_signature < 0)
		c->validate_signature = 1;
	else if (c->validate_signature && c->twilio_auth_token[0] == '\0')
		err_add(e, "VALIDATE_TWILIO_SIGNATURE: is on but TWILIO_AUTH_TOKEN "
		    "is empty");
	if (c->min_call_duration > c->free_call_minutes && c->free_call_minutes > 0)
		err_add(e, "MIN_CALL_DURATION: %g is more than FREE_CALL_MINUTES %g: "
		    "every caller would be refused", c->min_call_duration,
		    c->free_call_minutes);
	if (c->usage_csv_path[0] == '\0')
		err_add(e, "USAGE_CSV_PATH: must not be empty");
	if (c->usage_csv_backup_path[0] == '\0')
		err_add(e, "USAGE_CSV_BACKUP_PATH: must not be empty");
	else if (strcmp(c->usage_csv_path, c->usage_csv_backup_path) == 0)
		err_add(e, "USAGE_CSV_BACKUP_PATH: must differ from USAGE_CSV_PATH");
	if (c->database_url[0] != '\0' &&
	    strncmp(c->database_url, "postgresql://", 13) != 0 &&
	    strncmp(c->database_url, "postgres://", 11) != 0)
		err_add(e, "DATABASE_URL: must start with postgresql:// (empty: "
		    "SQLite at DATABASE_PATH)");
	else if (c->database_url[0] == '\0' && c->database_path[0] == '\0')
		err_add(e, "DATABASE_PATH: must not be empty without DATABASE_URL");
	if (c->database_journal[0] == '\0')
		err_add(e, "DATABASE_JOURNAL: must not be empty");
	for (const char *r = c->default_route; *r; r++)
		if (!isalnum((unsigned char)*r) && *r != '-' && *r != '_') {
			err_add(e, "DEFAULT_ROUTE: only letters, digits, '-' and '_'");
			break;
		}
	if (c->default_route[0] == '\0' || strlen(c->default_route) > 32)
		err_add(e, "DEFAULT_ROUTE: 1 to 32 characters");
	if (c->stream_secret[0] != '\0' && strlen(c->stream_secret) < 16)
		err_add(e, "STREAM_SECRET: at least 16 characters when set");
	if (strcasecmp(c->openai_dialect_name, "ga") == 0)
		c->openai_dialect = 0;
	else if (strcasecmp(c->openai_dialect_name, "beta") == 0)
		c->openai_dialect = 1;
	else
		err_add(e, "OPENAI_DIALECT: ga or beta, not \"%s\"",
		    c->openai_dialect_name);
	conf_parse_openai_url(c, e);
	if (c->sms_enabled < 0)
		c->sms_enabled = c->twilio_account_sid[0] && c->twilio_auth_token[0] &&
		    c->twilio_phone_number[0];
	if (c->sms_enabled && (c->twilio_account_sid[0] == '\0' ||
	    c->twilio_auth_token[0] == '\0' || c->twilio_phone_number[0] == '\0'))
		err_add(e, "SMS_ENABLED: needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN "
		    "and TWILIO_PHONE_NUMBER");
	if ((h = http_scheme_len(c->twilio_api_base)) == 0)
		err_add(e, "TWILIO_API_BASE: must be an http(s) URL");
	else if (h == 7 && !url_host_loopback(c->twilio_api_base))
		conf_url_secure(e, "TWILIO_API_BASE", c->twilio_api_base,
		    "https://", "http://", "TWILIO_AUTH_TOKEN");
	else
		trim_slashes(c->twilio_api_base);
	conf_parse_proxies(c, e);
	/* an outbound call is from this number (E.164) */
	if (c->phone_number_from[0] == '\0') {
		char *from = strdup(c->twilio_phone_number);
		if (from == NULL)
			err_add(e, "PHONE_NUMBER_FROM: out of memory");
		else {
			free(c->phone_number_from);
			c->phone_number_from = from;
		}
	}
	for (const char *p = c->verified_phone_numbers; *p; p++)
		if (!isdigit((unsigned char)*p) && !strchr("+, \t", *p)) {
			err_add(e, "VERIFIED_PHONE_NUMBERS: E.164 numbers separated "
			    "by commas");
			break;
		}
	if (c->greeting_url[0] != '\0' && http_scheme_len(c->greeting_url) == 0)
		err_add(e, "GREETING_URL: must be an http(s) URL Twilio can fetch");
}

int
conf_addr_is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

/*
 * CORS_ORIGINS: origins as a browser sends them (scheme://host[:port], no
 * path), separated by commas or blanks.  A wildcard would hand the API to
 * any page the operator happens to open, so "*" is refused.
 */
static void
conf_check_cors(struct conf *c, struct errs *e)
{
	const char *p = c->cors_origins;

	while (*p != '\0') {
		size_t n, h;

		p += strspn(p, ", \t");
		if ((n = strcspn(p, ", \t")) == 0)
			break;
		h = http_scheme_len(p);
		if (h == 0 || n == h || memchr(p + h, '/', n - h) != NULL ||
		    memchr(p, '*', n) != NULL) {
			err_add(e, "%s: CORS_ORIGINS: \"%.*s\" is not an origin "
			    "(http://host[:port] or https://host[:port], no path, "
			    "no *)", where_set(e, "CORS_ORIGINS"), (int)n, p);
			return;
		}
		p += n;
	}
}

/*
 * The operator's listener answers with every caller's number and minutes:
 * off the loopback interface it must ask for a token.  Said with the place
 * ADMIN_BIND was set, since that line is what the operator has to change.
 */
static void
conf_check_admin(struct conf *c, struct errs *e)
{
	struct in_addr a4;
	struct in6_addr a6;
	const char *t = c->admin_token;

	if (inet_pton(AF_INET, c->admin_bind, &a4) != 1 &&
	    inet_pton(AF_INET6, c->admin_bind, &a6) != 1) {
		err_add(e, "%s: ADMIN_BIND: not a numeric IPv4 or IPv6 address: "
		    "\"%s\"", where_set(e, "ADMIN_BIND"), c->admin_bind);
		return;
	}
	if (t[0] != '\0') {
		if (strlen(t) < 16)
			err_add(e, "%s: ADMIN_TOKEN: at least 16 characters when "
			    "set", where_set(e, "ADMIN_TOKEN"));
		for (; *t != '\0'; t++)
			if (*t <= ' ' || *t > '~') {
				err_add(e, "%s: ADMIN_TOKEN: only printable ASCII, "
				    "no spaces", where_set(e, "ADMIN_TOKEN"));
				break;
			}
	} else if (!conf_addr_is_loopback(c->admin_bind))
		err_add(e, "%s: ADMIN_BIND: %s is not a loopback address and "
		    "ADMIN_TOKEN is empty: anyone who reaches it would read every "
		    "caller's number; set ADMIN_TOKEN or bind to 127.0.0.1",
		    where_set(e, "ADMIN_BIND"), c->admin_bind);
	conf_check_cors(c, e);
	if (c->admin_port == c->port)
		err_add(e, "%s: ADMIN_PORT: %d is PORT too; the operator's "
		    "listener needs a port of its own", where_set(e, "ADMIN_PORT"),
		    c->admin_port);
}

int
conf_load(const char *path, struct conf *out, char *err, size_t errlen)
{
	struct errs e;
	struct conf c;
	size_t i;

	if (err && errlen)
		err[0] = '\0';
	memset(&e, 0, sizeof(e));
	e.buf = err;
	e.len = errlen;
	memset(&c, 0, sizeof(c));
	for (i = 0; i < ARRAY_LEN(keys); i++)
		key_set(&c, &keys[i], keys[i].def, "default", &e);
	if (path != NULL)
		conf_parse_file(&c, path, &e);
	for (i = 0; i < ARRAY_LEN(keys); i++) {
		const char *v = getenv(keys[i].name);
		char where[80], *copy;

		if (v == NULL)
			continue;
		snprintf(where, sizeof(where), "environment %s", keys[i].name);
		if ((copy = strdup(v)) == NULL)
			continue;
		/* the shell already removed its quotes: taken literally, so a
		 * '#' or a quote in an environment value is part of it */
		if (key_set(&c, &keys[i], copy, where, &e) == 0)
			note_where(&e, &keys[i], where);
		free(copy);
	}
	c.path = strdup(path ? path : "");
	conf_check(&c, &e);
	conf_check_admin(&c, &e);
	if (c.stream_secret[0] == '\0') {
		unsigned char r[32];
		char hex[65];
		if (random_bytes(r, sizeof(r)) != 0)
			err_add(&e, "STREAM_SECRET: no randomness available");
		for (i = 0; i < sizeof(r); i++)
			snprintf(hex + 2 * i, 3, "%02x", r[i]);
		free(c.stream_secret);
		c.stream_secret = strdup(hex);
		c.stream_secret_random = 1;
	}
	if (e.n > 0) {
		conf_free(&c);
		return e.n;
	}
	*out = c;
	return 0;
}

void
conf_free(struct conf *c)
{
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		if (keys[i].type == K_STR) {
			char **sp = (char **)((char *)c + keys[i].off);
			free(*sp);
			*sp = NULL;
		}
	free(c->path);
	c->path = NULL;
	free(c->openai_host);
	free(c->openai_target);
	c->openai_host = c->openai_target = NULL;
	free(c->trusted);
	c->trusted = NULL;
	c->ntrusted = 0;
}

void
conf_dump(const struct conf *c, int fd)
{
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		const void *p = (const char *)c + k->off;

		switch (k->type) {
		case K_INT:
		case K_BOOL:
			dprintf(fd, "%s=%d\n", k->name, *(const int *)p);
			break;
		case K_LEVEL:
			dprintf(fd, "%s=%s\n", k->name, *(const int *)p ? "debug" : "info");
			break;
		case K_DBL:
			dprintf(fd, "%s=%g\n", k->name, *(const double *)p);
			break;
		case K_STR: {
			const char *s = *(char *const *)p;
			if (k->flags & CONF_SECRET)
				dprintf(fd, "%s=%s\n", k->name,
				    s && s[0] ? "(set)" : "(unset)");
			else
				dprintf(fd, "%s=%s\n", k->name, s ? s : "");
			break;
		}
		}
	}
}
