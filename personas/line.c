/*
 * line.c — see line.h.
 */
#include "personas/line.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lctx {
	const char	*file;
	char		*err;
	size_t		 errlen, len;
	int		 nerr;
};

static void bad(struct lctx *x, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
bad(struct lctx *x, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	x->nerr++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	if (x->err == NULL || x->len + 1 >= x->errlen)
		return;
	n = snprintf(x->err + x->len, x->errlen - x->len, "%s: %s: %s\n",
	    x->file, field, msg);
	if (n > 0)
		x->len = (size_t)n >= x->errlen - x->len ? x->errlen - 1 :
		    x->len + (size_t)n;
}

static void hook_clear(struct line_hook *lh);

static void
line_free(struct line *l)
{
	free(l->file);
	free(l->wrapup);
	free(l->sms);
	free(l->voicemail);
	free(l->tools_json);
	free(l->facts_json);
	if (l->relay_attrs != NULL)
		for (char **a = l->relay_attrs; *a != NULL; a++)
			free(*a);
	free(l->relay_attrs);
	free(l->welcome);
	for (size_t i = 0; i < l->ntargets; i++) {
		free(l->targets[i].number);
		free(l->targets[i].sip);
	}
	free(l->targets);
	free(l->transfer_voicemail);
	for (size_t i = 0; i < l->nhooks; i++)
		hook_clear(&l->hooks[i]);
	free(l->hooks);
	if (l->transfer_hook != NULL)
		hook_clear(l->transfer_hook);
	free(l->transfer_hook);
	memset(l, 0, sizeof(*l));
}

void
line_set_free(struct line_set *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		line_free(&ls->v[i]);
	free(ls->v);
	ls->v = NULL;
	ls->n = 0;
	line_free(&ls->fallback);
}

const struct line *
line_find(const struct line_set *ls, const char *route)
{
	for (size_t i = 0; i < ls->n; i++)
		if (strcmp(ls->v[i].id, route) == 0)
			return &ls->v[i];
	return NULL;
}

const struct persona *
line_persona(const struct line *l, const struct persona_set *ps,
    const char *route)
{
	return persona_find(ps, l->persona[0] != '\0' ? l->persona : route);
}

/* The policy the configuration's keys give: the practice line's. */
static int
line_defaults(struct line *l, const struct conf *cf)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->app, sizeof(l->app), "practice");
	l->free_minutes = cf->free_call_minutes;
	l->min_minutes = cf->min_call_duration;
	l->max_call_minutes = -1;
	l->wrapup_grace = cf->wrapup_grace;
	l->rollover_minutes = cf->session_rollover_minutes;
	l->greeting_pause_ms = cf->outbound_greeting_pause;
	l->wrapup = strdup(cf->wrapup_instructions);
	l->sms = strdup(cf->sms_message);
	return l->wrapup != NULL && l->sms != NULL ? 0 : -1;
}

/* A number of minutes, or null (-1) when nullable.  0 or -1 (reported). */
static int
get_minutes(struct lctx *x, json_t *root, const char *key, double *out,
    int nullable, double min)
{
	json_t *v = json_object_get(root, key);

	if (v == NULL)
		return 0;
	if (json_is_null(v) && nullable) {
		*out = -1;
		return 0;
	}
	if (!json_is_number(v) || json_number_value(v) < min ||
	    json_number_value(v) > 1e6) {
		bad(x, key, "a number of minutes, at least %g%s", min,
		    nullable ? ", or null" : "");
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

/* A string, or null (NULL) when nullable; absent keeps *out. */
static int
get_text(struct lctx *x, json_t *root, const char *key, char **out)
{
	json_t *v = json_object_get(root, key);

	if (v == NULL)
		return 0;
	if (json_is_null(v)) {
		free(*out);
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > 2000) {
		bad(x, key, "a string of 1 to 2000 characters, or null");
		return -1;
	}
	free(*out);
	*out = strdup(json_string_value(v));
	return 0;
}

/* The persona's tools that the line names, as a JSON array. */
static void
get_tools(struct lctx *x, json_t *root, struct line *l, const struct persona *p)
{
	json_t *v = json_object_get(root, "tools"), *all, *keep, *t;
	size_t i, j;

	if (v == NULL)
		return;
	if (!json_is_array(v)) {
		bad(x, "tools", "an array of tool names");
		return;
	}
	all = p != NULL && p->tools_json != NULL ?
	    json_loads(p->tools_json, 0, NULL) : json_array();
	keep = json_array();
	json_array_foreach(v, i, t) {
		const char *name = json_string_value(t);
		json_t *tool;
		int found = 0;

		if (name == NULL) {
			bad(x, "tools", "item %zu is not a tool name", i);
			continue;
		}
		json_array_foreach(all, j, tool) {
			const char *n = json_string_value(json_object_get(tool,
			    "name"));
			if (n != NULL && strcmp(n, name) == 0) {
				json_array_append(keep, tool);
				found = 1;
				break;
			}
		}
		if (!found && p != NULL)
			bad(x, "tools", "persona %s has no tool \"%s\"", p->id,
			    name);
	}
	l->tools_json = json_dumps(keep, JSON_COMPACT);
	json_decref(keep);
	json_decref(all);
}

static const char *const keys[] = { "app", "persona", "free_minutes",
    "min_minutes", "max_call_minutes", "wrapup", "wrapup_grace", "sms",
    "tools", "transport", "description", "facts", "keypad",
    "conversation_relay", "transfer_targets", "transfer", "webhooks",
    "session_rollover_minutes", "record_tool_arguments",
    "voicemail", "speaks_first", "greeting_pause_ms", "facts_from", NULL };

/* <ConversationRelay>'s attributes a line may set (protocols.md 7.1); url
 * is the daemon's. */
static const char *const relay_keys[] = { "welcomeGreeting",
    "welcomeGreetingInterruptible", "language", "ttsLanguage", "ttsProvider",
    "voice", "transcriptionLanguage", "transcriptionProvider", "speechModel",
    "interruptible", "interruptSensitivity", "preemptible", "dtmfDetection",
    "partialPrompts", "reportInputDuringAgentSpeech", "hints",
    "profanityFilter", "debug", "elevenlabsTextNormalization",
    "intelligenceService", "events", NULL };

static void
get_relay(struct lctx *x, json_t *root, struct line *l)
{
	json_t *v = json_object_get(root, "conversation_relay"), *a, *h;
	const char *k;
	size_t n = 0, i;
	char buf[2048];

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_object(v)) {
		bad(x, "conversation_relay", "an object of <ConversationRelay> "
		    "attributes");
		return;
	}
	if (l->transport != LINE_CONVERSATION_RELAY)
		bad(x, "conversation_relay", "only for \"transport\": "
		    "\"conversation_relay\"");
	l->relay_attrs = calloc(json_object_size(v) * 2 + 1, sizeof(char *));
	if (l->relay_attrs == NULL) {
		bad(x, "conversation_relay", "out of memory");
		return;
	}
	json_object_foreach(v, k, a) {
		int known = 0;

		for (i = 0; relay_keys[i] != NULL; i++)
			if (strcmp(relay_keys[i], k) == 0)
				known = 1;
		if (!known) {
			bad(x, "conversation_relay", "%s: not an attribute a line "
			    "sets", k);
			continue;
		}
		buf[0] = '\0';
		if (json_is_string(a) && json_string_length(a) > 0 &&
		    json_string_length(a) < sizeof(buf))
			snprintf(buf, sizeof(buf), "%s", json_string_value(a));
		else if (json_is_boolean(a))
			snprintf(buf, sizeof(buf), "%s", json_is_true(a) ? "true" :
			    "false");
		else if (json_is_integer(a))
			snprintf(buf, sizeof(buf), "%lld",
			    (long long)json_integer_value(a));
		else if (json_is_array(a) && strcmp(k, "hints") == 0) {
			size_t off = 0;
			json_array_foreach(a, i, h) {
				const char *s = json_string_value(h);
				if (s == NULL || strchr(s, ',') != NULL ||
				    off + strlen(s) + 2 >= sizeof(buf)) {
					buf[0] = '\0';
					break;
				}
				off += (size_t)snprintf(buf + off, sizeof(buf) - off,
				    "%s%s", off ? "," : "", s);
			}
		}
		if (buf[0] == '\0') {
			bad(x, "conversation_relay", "%s: a string of 1 to %zu "
			    "characters, a boolean or a number%s", k, sizeof(buf) - 1,
			    strcmp(k, "hints") == 0 ? ", or a list of words "
			    "without commas" : "");
			continue;
		}
		l->relay_attrs[n] = strdup(k);
		l->relay_attrs[n + 1] = strdup(buf);
		if (l->relay_attrs[n] == NULL || l->relay_attrs[n + 1] == NULL) {
			bad(x, "conversation_relay", "out of memory");
			return;
		}
		if (strcmp(k, "welcomeGreeting") == 0)
			l->welcome = strdup(buf);
		n += 2;
	}
}

/* A number for <Dial>: E.164. */
static int
target_number_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 3 || n > 16 || s[0] != '+')
		return 0;
	for (size_t i = 1; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int
target_sip_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 5 || n > 255 || (strncmp(s, "sip:", 4) != 0 &&
	    strncmp(s, "sips:", 5) != 0))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == '<' || s[i] == '>' ||
		    s[i] == '"')
			return 0;
	return 1;
}

static void
get_targets(struct lctx *x, json_t *root, struct line *l)
{
	json_t *v = json_object_get(root, "transfer_targets"), *t;
	size_t i;

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > LINE_TARGETS_MAX) {
		bad(x, "transfer_targets", "a list of 1 to %d targets",
		    LINE_TARGETS_MAX);
		return;
	}
	if ((l->targets = calloc(json_array_size(v), sizeof(*l->targets))) == NULL) {
		bad(x, "transfer_targets", "out of memory");
		return;
	}
	json_array_foreach(v, i, t) {
		const char *label = json_string_value(json_object_get(t, "label"));
		const char *num = json_string_value(json_object_get(t, "number"));
		const char *sip = json_string_value(json_object_get(t, "sip"));
		struct line_target *lt = &l->targets[l->ntargets];

		if (!json_is_object(t) || json_object_size(t) != 2 ||
		    label == NULL || label[0] == '\0' ||
		    strlen(label) >= sizeof(lt->label) || (num == NULL) == (sip == NULL)) {
			bad(x, "transfer_targets", "item %zu: {\"label\": \"...\", "
			    "\"number\": \"+E.164\"} or {\"label\", \"sip\": "
			    "\"sip:...\"}", i);
			continue;
		}
		if (line_target_find(l, label) != NULL) {
			bad(x, "transfer_targets", "item %zu: label \"%s\" twice",
			    i, label);
			continue;
		}
		if ((num != NULL && !target_number_ok(num)) ||
		    (sip != NULL && !target_sip_ok(sip))) {
			bad(x, "transfer_targets", "item %zu: %s", i, num != NULL ?
			    "number: E.164, + and up to 15 digits" :
			    "sip: a sip: or sips: URI");
			continue;
		}
		snprintf(lt->label, sizeof(lt->label), "%s", label);
		lt->number = num != NULL ? strdup(num) : NULL;
		lt->sip = sip != NULL ? strdup(sip) : NULL;
		l->ntargets++;
	}
}

const struct line_target *
line_target_find(const struct line *l, const char *label)
{
	for (size_t i = 0; i < l->ntargets; i++)
		if (strcmp(l->targets[i].label, label) == 0)
			return &l->targets[i];
	return NULL;
}

/*
 * transfer_call, offered on a ConversationRelay line with transfer
 * targets: the model chooses a target by its label.
 */
static void
add_transfer_tool(struct lctx *x, struct line *l, const struct persona *p)
{
	json_t *all, *labels, *tool;
	const char *base = l->tools_json ? l->tools_json :
	    p != NULL ? p->tools_json : NULL;

	all = base != NULL ? json_loads(base, 0, NULL) : json_array();
	labels = json_array();
	for (size_t i = 0; i < l->ntargets; i++)
		json_array_append_new(labels, json_string(l->targets[i].label));
	tool = json_pack("{s:s,s:s,s:s,s:{s:s,s:{s:{s:s,s:s,s:o}},s:[s]}}",
	    "type", "function", "name", "transfer_call", "description",
	    "Transfer the caller to a person. Say in one short sentence that "
	    "you are transferring them before you call this.",
	    "parameters", "type", "object", "properties", "target", "type",
	    "string", "description", "Who to transfer to, by label.", "enum",
	    labels, "required", "target");
	if (!json_is_array(all) || tool == NULL ||
	    json_array_append_new(all, tool) != 0) {
		bad(x, "transfer_targets", "cannot add the transfer_call tool");
		json_decref(all);
		return;
	}
	free(l->tools_json);
	l->tools_json = json_dumps(all, JSON_COMPACT);
	json_decref(all);
}

char *
line_tools_without(const char *tools_json, const char *name)
{
	json_t *all, *keep, *t;
	char *out = NULL;
	size_t i;
	int found = 0;

	if (tools_json == NULL || (all = json_loads(tools_json, 0, NULL)) == NULL)
		return NULL;
	keep = json_array();
	json_array_foreach(all, i, t) {
		const char *n = json_string_value(json_object_get(t, "name"));
		if (n != NULL && strcmp(n, name) == 0)
			found = 1;
		else
			json_array_append(keep, t);
	}
	if (found)
		out = json_dumps(keep, JSON_COMPACT);
	json_decref(keep);
	json_decref(all);
	return out;
}

/* What verify_identity checks against: strings, a name and one more. */
static void
get_facts(struct lctx *x, json_t *root, struct line *l)
{
	json_t *v = json_object_get(root, "facts"), *f;
	const char *k;

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_object(v)) {
		bad(x, "facts", "an object of strings");
		return;
	}
	json_object_foreach(v, k, f)
		if (!json_is_string(f) || json_string_length(f) == 0 ||
		    json_string_length(f) > 200) {
			bad(x, "facts", "%s: a string of 1 to 200 characters", k);
			return;
		}
	if (json_object_get(v, "full_name") == NULL ||
	    (json_object_get(v, "date_of_birth") == NULL &&
	    json_object_get(v, "account_last4") == NULL)) {
		bad(x, "facts", "full_name and date_of_birth or account_last4 "
		    "are needed to check an identity");
		return;
	}
	l->facts_json = json_dumps(v, JSON_COMPACT);
}

/* One of names (NULL-terminated) as its index plus one in *out; absent
 * keeps *out.  0, or -1 (reported). */
static int
get_choice(struct lctx *x, json_t *root, const char *key,
    const char *const *names, int *out)
{
	json_t *v = json_object_get(root, key);
	const char *s = json_string_value(v);

	if (v == NULL)
		return 0;
	for (int i = 0; s != NULL && names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0) {
			*out = i + 1;
			return 0;
		}
	bad(x, key, "\"%s\" or \"%s\"", names[0], names[1]);
	return -1;
}

/* Who talks first, how long the greeting waits for the callee, and where
 * verify_identity's facts come from. */
static void
get_greeting(struct lctx *x, json_t *root, struct line *l)
{
	static const char *const speakers[] = { "agent", "callee", NULL };
	static const char *const sources[] = { "line", "call", NULL };
	json_t *v = json_object_get(root, "greeting_pause_ms");
	int who = 0, from = 0;

	if (get_choice(x, root, "speaks_first", speakers, &who) == 0)
		l->speaks_first = who == 0 ? LINE_SPEAKS_BY_DIRECTION :
		    who == 1 ? LINE_SPEAKS_AGENT : LINE_SPEAKS_CALLEE;
	if (l->speaks_first != LINE_SPEAKS_BY_DIRECTION &&
	    l->transport == LINE_CONVERSATION_RELAY)
		bad(x, "speaks_first", "a Media Streams line's: ConversationRelay "
		    "greets with welcomeGreeting");
	if (v != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 60000)
			bad(x, "greeting_pause_ms", "whole ms, 0 to 60000");
		else if (l->speaks_first == LINE_SPEAKS_AGENT)
			bad(x, "greeting_pause_ms", "not used: speaks_first is "
			    "\"agent\"");
		else
			l->greeting_pause_ms = (int)json_integer_value(v);
	}
	if (get_choice(x, root, "facts_from", sources, &from) == 0)
		l->facts_from = from == 0 ? LINE_FACTS_BY_DIRECTION :
		    from == 1 ? LINE_FACTS_LINE : LINE_FACTS_CALL;
	if (l->facts_from == LINE_FACTS_CALL && l->facts_json != NULL)
		bad(x, "facts_from", "\"call\": the line's \"facts\" would never "
		    "be checked");
}

const struct line_key *
line_key(const struct line *l, char digit)
{
	for (int i = 0; i < l->nkeys; i++)
		if (l->keys[i].digit == digit)
			return &l->keys[i];
	return NULL;
}

const struct line_hook *
line_hook_find(const struct line *l, const char *tool)
{
	for (size_t i = 0; i < l->nhooks; i++)
		if (strcmp(l->hooks[i].tool, tool) == 0)
			return &l->hooks[i];
	return NULL;
}

/* s with every ${NAME} replaced by the environment's value: a new string,
 * or NULL with *unset naming a variable that is not set. */
static char *
expand_env(const char *s, char *unset, size_t unsetlen)
{
	size_t cap = strlen(s) + 1, len = 0;
	char *out = malloc(cap), *nout;

	unset[0] = '\0';
	while (out != NULL && *s != '\0') {
		const char *add = s, *end;
		size_t n = 1;
		char name[128];

		if (s[0] == '$' && s[1] == '{' && (end = strchr(s, '}')) != NULL &&
		    end - s - 2 > 0 && (size_t)(end - s - 2) < sizeof(name)) {
			snprintf(name, sizeof(name), "%.*s", (int)(end - s - 2), s + 2);
			if ((add = getenv(name)) == NULL) {
				snprintf(unset, unsetlen, "%s", name);
				free(out);
				return NULL;
			}
			n = strlen(add);
			s = end + 1;
		} else
			s++;
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			if ((nout = realloc(out, cap)) == NULL) {
				free(out);
				return NULL;
			}
			out = nout;
		}
		memcpy(out + len, add, n);
		len += n;
	}
	if (out != NULL)
		out[len] = '\0';
	return out;
}

static int
tool_offered(const struct line *l, const struct persona *p, const char *name)
{
	const char *t = l->tools_json ? l->tools_json : p ? p->tools_json : NULL;
	char *less = line_tools_without(t, name);

	free(less);
	return less != NULL;
}

static void
hook_clear(struct line_hook *lh)
{
	free(lh->url);
	free(lh->secret);
	for (size_t i = 0; lh->headers && lh->headers[i]; i++)
		free(lh->headers[i]);
	free(lh->headers);
	memset(lh, 0, sizeof(*lh));
}

/*
 * One webhook: {"url", "method", "headers", "secret", "timeout_ms",
 * "filler_ms"} (filler_ms only where filler is set) into lh; what and name
 * say where it is in an error.  1 filled, 0 its URL is empty (an unset
 * variable: not configured here), -1 refused (lh is cleared).
 */
static int
hook_get(struct lctx *x, const char *what, const char *name, json_t *h,
    struct line_hook *lh, int filler)
{
	const char *url = json_string_value(json_object_get(h, "url"));
	const char *sec = json_string_value(json_object_get(h, "secret"));
	json_t *f, *hv;
	const char *k;
	char unset[128], why[600];
	size_t nh = 0;
	int ok = 1;

	memset(lh, 0, sizeof(*lh));
	if (!json_is_object(h) || url == NULL) {
		bad(x, what, "%.64s: an object with \"url\"", name);
		return -1;
	}
	if ((lh->url = expand_env(url, unset, sizeof(unset))) == NULL ||
	    lh->url[0] == '\0') {
		free(lh->url);
		lh->url = NULL;
		return 0;
	}
	snprintf(lh->tool, sizeof(lh->tool), "%s", name);
	snprintf(lh->method, sizeof(lh->method), "POST");
	lh->timeout_ms = 8000;
	lh->filler_ms = filler ? 1500 : 0;
	if (conf_url_check(lh->url, "https://", "http://", why,
	    sizeof(why)) != 0) {
		bad(x, what, "%.64s: url %s", name, why);
		ok = 0;
	}
	if (sec == NULL || (lh->secret = expand_env(sec, unset,
	    sizeof(unset))) == NULL || strlen(lh->secret) < 16) {
		bad(x, what, "%.64s: secret: 16 characters or more%s%s",
		    name, unset[0] ? ", and unset: " : "", unset);
		ok = 0;
	}
	f = json_object_get(h, "headers");
	lh->headers = calloc(json_object_size(f) + 1, sizeof(char *));
	if (f != NULL && !json_is_object(f)) {
		bad(x, what, "%.64s: headers: an object of strings", name);
		ok = 0;
	}
	json_object_foreach(f, k, hv) {
		const char *sv = json_string_value(hv);
		char *ev;
		size_t n;

		if (sv == NULL || strpbrk(k, ":\r\n ") != NULL ||
		    (ev = expand_env(sv, unset, sizeof(unset))) == NULL) {
			bad(x, what, "%.64s: header %.64s: a string%s%s",
			    name, k, unset[0] ? "; unset: " : "", unset);
			ok = 0;
			break;
		}
		n = strlen(k) + strlen(ev) + 3;
		if (strpbrk(ev, "\r\n") == NULL && lh->headers != NULL &&
		    (lh->headers[nh] = malloc(n)) != NULL)
			snprintf(lh->headers[nh++], n, "%s: %s", k, ev);
		free(ev);
	}
	json_object_foreach(h, k, f) {
		if (strcmp(k, "method") == 0) {
			const char *m = json_string_value(f);
			if (m == NULL || (strcmp(m, "POST") != 0 &&
			    strcmp(m, "PUT") != 0)) {
				bad(x, what, "%.64s: method: POST or PUT", name);
				ok = 0;
			} else
				snprintf(lh->method, sizeof(lh->method), "%s", m);
		} else if (strcmp(k, "timeout_ms") == 0 ||
		    (filler && strcmp(k, "filler_ms") == 0)) {
			int min = k[0] == 't' ? 100 : 0;
			if (!json_is_integer(f) || json_integer_value(f) < min ||
			    json_integer_value(f) > 60000) {
				bad(x, what, "%.64s: %s: %d to 60000 ms", name, k,
				    min);
				ok = 0;
			} else if (k[0] == 't')
				lh->timeout_ms = (int)json_integer_value(f);
			else
				lh->filler_ms = (int)json_integer_value(f);
		} else if (strcmp(k, "url") != 0 && strcmp(k, "secret") != 0 &&
		    strcmp(k, "headers") != 0) {
			bad(x, what, "%.64s: unknown field \"%.32s\"", name, k);
			ok = 0;
		}
	}
	if (!ok) {
		hook_clear(lh);
		return -1;
	}
	return 1;
}

/* "webhooks": {"<tool>": {"url", "method", "headers", "secret",
 * "timeout_ms", "filler_ms"}} for tools the line offers. */
static void
get_hooks(struct lctx *x, json_t *root, struct line *l, const struct persona *p)
{
	json_t *v = json_object_get(root, "webhooks"), *h;
	const char *tool;

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_object(v) || json_object_size(v) > 32) {
		bad(x, "webhooks", "an object of tool names to webhooks");
		return;
	}
	if ((l->hooks = calloc(json_object_size(v), sizeof(*l->hooks))) == NULL)
		return;
	json_object_foreach(v, tool, h) {
		if (json_is_object(h) && json_is_string(json_object_get(h,
		    "url")) && !tool_offered(l, p, tool)) {
			bad(x, "webhooks", "%.64s: not a tool this line offers", tool);
			continue;
		}
		/* an empty URL: not configured here, the tool keeps its own
		 * answer */
		if (hook_get(x, "webhooks", tool, h, &l->hooks[l->nhooks], 1) > 0)
			l->nhooks++;
	}
}

#define VOICEMAIL_DEFAULT "Sorry, nobody could take your call right now. " \
    "Please call again later. Goodbye."

/* "transfer": how a transfer dials, and what follows when nobody answers. */
static void
get_transfer(struct lctx *x, json_t *root, struct line *l)
{
	json_t *v = json_object_get(root, "transfer"), *f;
	const char *k;

	l->transfer_timeout = 20;
	l->transfer_voicemail = strdup(VOICEMAIL_DEFAULT);
	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_object(v)) {
		bad(x, "transfer", "an object: caller_id, timeout, no_answer, "
		    "voicemail");
		return;
	}
	json_object_foreach(v, k, f) {
		const char *sv = json_string_value(f);
		if (strcmp(k, "caller_id") == 0) {
			if (sv == NULL || !target_number_ok(sv))
				bad(x, "transfer", "caller_id: E.164, + and up to "
				    "15 digits");
			else
				snprintf(l->transfer_caller_id,
				    sizeof(l->transfer_caller_id), "%s", sv);
		} else if (strcmp(k, "timeout") == 0) {
			if (!json_is_integer(f) || json_integer_value(f) < 5 ||
			    json_integer_value(f) > 600)
				bad(x, "transfer", "timeout: whole seconds, 5 to 600");
			else
				l->transfer_timeout = (int)json_integer_value(f);
		} else if (strcmp(k, "no_answer") == 0) {
			if (sv != NULL && strcmp(sv, "line") == 0)
				l->transfer_back = 1;
			else if (sv == NULL || strcmp(sv, "voicemail") != 0)
				bad(x, "transfer", "no_answer: \"voicemail\" or "
				    "\"line\"");
		} else if (strcmp(k, "warm") == 0) {
			if (sv != NULL && strcmp(sv, "sms") == 0)
				l->transfer_warm_sms = 1;
			else if (json_is_object(f)) {
				/* a webhook of the business's: the summary is
				 * posted there, signed like a tool's */
				if ((l->transfer_hook = calloc(1,
				    sizeof(*l->transfer_hook))) != NULL &&
				    hook_get(x, "transfer", "warm", f,
				    l->transfer_hook, 0) <= 0) {
					free(l->transfer_hook);
					l->transfer_hook = NULL;
				}
			} else if (!json_is_null(f) && (sv == NULL ||
			    strcmp(sv, "none") != 0))
				bad(x, "transfer", "warm: \"sms\", \"none\" or a "
				    "webhook {\"url\", \"secret\", ...}");
		} else if (strcmp(k, "voicemail") == 0) {
			if (sv == NULL || sv[0] == '\0' || strlen(sv) > 1000)
				bad(x, "transfer", "voicemail: 1 to 1000 characters");
			else {
				free(l->transfer_voicemail);
				l->transfer_voicemail = strdup(sv);
			}
		} else
			bad(x, "transfer", "unknown field \"%.32s\"", k);
	}
}

/*
 * "keypad": {"<key>": action}: an action is "end_call", "repeat", "model",
 * {"action": "persona", "persona": id} or {"action": "transfer",
 * "target": label} (a label of transfer_targets).
 */
static void
get_keypad(struct lctx *x, json_t *root, struct line *l,
    const struct persona_set *ps)
{
	json_t *v = json_object_get(root, "keypad"), *a;
	const char *k, *act, *arg;

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_object(v)) {
		bad(x, "keypad", "an object of keys (0-9, *, #, A-D) to actions");
		return;
	}
	json_object_foreach(v, k, a) {
		struct line_key *lk;

		if (strlen(k) != 1 || strchr("0123456789*#ABCD", k[0]) == NULL) {
			bad(x, "keypad", "\"%.16s\" is not a key (0-9, *, #, A-D)", k);
			continue;
		}
		lk = &l->keys[l->nkeys];
		lk->digit = k[0];
		arg = NULL;
		if (json_is_string(a))
			act = json_string_value(a);
		else if (json_is_object(a))
			act = json_string_value(json_object_get(a, "action"));
		else
			act = NULL;
		if (act == NULL) {
			bad(x, "keypad", "%s: an action name, or an object with "
			    "\"action\"", k);
			continue;
		}
		if (strcmp(act, "end_call") == 0)
			lk->action = LK_END;
		else if (strcmp(act, "repeat") == 0)
			lk->action = LK_REPEAT;
		else if (strcmp(act, "model") == 0)
			lk->action = LK_MODEL;
		else if (strcmp(act, "persona") == 0) {
			lk->action = LK_PERSONA;
			arg = json_string_value(json_object_get(a, "persona"));
			if (arg == NULL || persona_find(ps, arg) == NULL) {
				bad(x, "keypad", "%s: \"persona\" names no persona "
				    "in PERSONAS_DIR", k);
				continue;
			}
		} else if (strcmp(act, "transfer") == 0) {
			lk->action = LK_TRANSFER;
			arg = json_string_value(json_object_get(a, "target"));
			if (arg == NULL || line_target_find(l, arg) == NULL) {
				bad(x, "keypad", "%s: \"target\" names no label of "
				    "transfer_targets", k);
				continue;
			}
		} else {
			bad(x, "keypad", "%s: no action \"%.32s\" (end_call, repeat, "
			    "model, persona, transfer)", k, act);
			continue;
		}
		if (arg != NULL)
			snprintf(lk->arg, sizeof(lk->arg), "%s", arg);
		l->nkeys++;
	}
}

static int
load_line(struct line *l, const char *path, const char *id,
    const struct conf *cf, const struct persona_set *ps,
    const char *const *apps, struct lctx *x)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key, *s;
	const struct persona *p;
	int known;

	x->file = path;
	x->nerr = 0;
	if (line_defaults(l, cf) != 0) {
		bad(x, "file", "out of memory");
		return 1;
	}
	snprintf(l->id, sizeof(l->id), "%s", id);
	l->file = strdup(path);
	if ((root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		bad(x, "file", "line %d: %s", jerr.line, jerr.text);
		return x->nerr;
	}
	if (!json_is_object(root)) {
		bad(x, "file", "not a JSON object");
		json_decref(root);
		return x->nerr;
	}
	json_object_foreach(root, key, v) {
		known = 0;
		for (size_t i = 0; keys[i] != NULL; i++)
			if (strcmp(keys[i], key) == 0)
				known = 1;
		if (!known)
			bad(x, key, "unknown field");
	}
	s = json_string_value(json_object_get(root, "app"));
	if (s == NULL)
		bad(x, "app", "required: one of the apps (%s%s)", apps[0],
		    apps[1] ? ", ..." : "");
	else {
		int found = 0;
		for (size_t i = 0; apps[i] != NULL; i++)
			if (strcmp(apps[i], s) == 0)
				found = 1;
		if (!found)
			bad(x, "app", "no app \"%s\"", s);
		else
			snprintf(l->app, sizeof(l->app), "%s", s);
	}
	v = json_object_get(root, "persona");
	if (v != NULL) {
		s = json_string_value(v);
		if (s == NULL || strlen(s) >= sizeof(l->persona) || s[0] == '\0')
			bad(x, "persona", "a persona's name");
		else
			snprintf(l->persona, sizeof(l->persona), "%s", s);
	}
	p = line_persona(l, ps, id);
	if (p == NULL)
		bad(x, "persona", "no persona \"%s\" in PERSONAS_DIR",
		    l->persona[0] ? l->persona : id);
	get_minutes(x, root, "free_minutes", &l->free_minutes, 1, 0);
	get_minutes(x, root, "min_minutes", &l->min_minutes, 0, 0);
	get_minutes(x, root, "max_call_minutes", &l->max_call_minutes, 1, 0.01);
	get_minutes(x, root, "session_rollover_minutes", &l->rollover_minutes, 0,
	    0.01);
	if (l->rollover_minutes > 59)
		bad(x, "session_rollover_minutes", "at most 59 (the model's "
		    "sessions end at 60)");
	if (line_has_quota(l) && l->min_minutes > l->free_minutes)
		bad(x, "min_minutes", "%g is more than free_minutes %g",
		    l->min_minutes, l->free_minutes);
	get_text(x, root, "wrapup", &l->wrapup);
	get_text(x, root, "sms", &l->sms);
	get_text(x, root, "voicemail", &l->voicemail);
	v = json_object_get(root, "wrapup_grace");
	if (v != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 120)
			bad(x, "wrapup_grace", "whole seconds, 1 to 120");
		else
			l->wrapup_grace = (int)json_integer_value(v);
	}
	v = json_object_get(root, "record_tool_arguments");
	if (v != NULL && !json_is_boolean(v))
		bad(x, "record_tool_arguments", "true or false");
	else
		l->record_arguments = json_is_true(v);
	v = json_object_get(root, "transport");
	if (v != NULL && json_is_string(v) &&
	    strcmp(json_string_value(v), "conversation_relay") == 0)
		l->transport = LINE_CONVERSATION_RELAY;
	else if (v != NULL && (!json_is_string(v) ||
	    strcmp(json_string_value(v), "media_streams") != 0))
		bad(x, "transport", "\"media_streams\" or "
		    "\"conversation_relay\"");
	get_relay(x, root, l);
	get_targets(x, root, l);
	get_facts(x, root, l);
	get_greeting(x, root, l);
	get_tools(x, root, l, p);
	if (l->ntargets == 0 && json_object_get(root, "transfer") != NULL)
		bad(x, "transfer", "needs transfer_targets");
	get_keypad(x, root, l, ps);
	if (l->facts_json == NULL && l->facts_from != LINE_FACTS_CALL) {
		/* nothing to check an identity against: not offered */
		const char *t = l->tools_json ? l->tools_json :
		    p ? p->tools_json : NULL;
		char *less = line_tools_without(t, "verify_identity");
		if (less != NULL && json_object_get(root, "tools") != NULL)
			bad(x, "tools", "verify_identity needs \"facts\" to check "
			    "the caller against (or \"facts_from\": \"call\")");
		if (less != NULL) {
			free(l->tools_json);
			l->tools_json = less;
		}
	}
	get_transfer(x, root, l);
	if (l->ntargets > 0)
		add_transfer_tool(x, l, p);
	get_hooks(x, root, l, p);
	v = json_object_get(root, "description");
	if (v != NULL && !json_is_string(v))
		bad(x, "description", "a string");
	json_decref(root);
	return x->nerr;
}

static int
is_line_file(const char *s, char *id, size_t idlen)
{
	size_t n = strlen(s);

	if (s[0] == '.' || n <= 5 || strcmp(s + n - 5, ".json") != 0)
		return 0;
	if (n - 5 >= idlen)
		return -1;
	for (size_t i = 0; i < n - 5; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return -1;
	memcpy(id, s, n - 5);
	id[n - 5] = '\0';
	return 1;
}

static int
cmp_lines(const void *a, const void *b)
{
	return strcmp(((const struct line *)a)->id, ((const struct line *)b)->id);
}

int
line_set_load(struct line_set *ls, const char *dir, const struct conf *cf,
    const struct persona_set *ps, const char *const *apps, char *err,
    size_t errlen)
{
	struct lctx x = { dir, err, errlen, 0, 0 };
	struct dirent *de;
	char id[PERSONA_ID_MAX], *path;
	int nerr = 0, k;
	DIR *d;

	memset(ls, 0, sizeof(*ls));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (line_defaults(&ls->fallback, cf) != 0) {
		bad(&x, "LINES_DIR", "out of memory");
		return 1;
	}
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;	/* no lines: every route is a persona's */
		bad(&x, "LINES_DIR", "cannot read: %s", strerror(errno));
		line_set_free(ls);
		return 1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if ((k = is_line_file(de->d_name, id, sizeof(id))) == 0)
			continue;
		x.file = de->d_name;
		if (k < 0) {
			bad(&x, "file name", "a route is 1 to 32 letters, digits, "
			    "'-' or '_', then .json");
			nerr++;
			continue;
		}
		struct line *nv = realloc(ls->v, (ls->n + 1) * sizeof(*nv));
		if (nv == NULL || asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
			if (nv != NULL)
				ls->v = nv;
			bad(&x, "LINES_DIR", "out of memory");
			nerr++;
			break;
		}
		ls->v = nv;
		nerr += load_line(&ls->v[ls->n], path, id, cf, ps, apps, &x);
		ls->n++;
		free(path);
	}
	closedir(d);
	qsort(ls->v, ls->n, sizeof(*ls->v), cmp_lines);
	if (nerr > 0)
		line_set_free(ls);
	return nerr;
}
