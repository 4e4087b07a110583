/*
 * persona.c — see persona.h.
 *
 * Runs in the master only (start, SIGHUP, -t), never on a call's path, so
 * it favours complete reports over speed: every field is checked even after
 * an earlier one failed, and each problem is one line
 * "file: field: problem", where field is a path into the file such as
 * "turn_detection.threshold" or "tools[1].name".
 *
 * Rules beyond the format in persona.h:
 *  - the file is read whole (at most PERSONA_FILE_MAX bytes) and must be a
 *    JSON object without duplicate keys; every key must be one the format
 *    lists, so a misspelt field is an error rather than silently ignored;
 *  - instructions and greeting take a string or an array of strings (joined
 *    with "\n") and must not be empty or blank;
 *  - name and mode, when present, are non-empty strings;
 *  - turn_detection needs its "type"; the fields of the other VAD type are
 *    errors; idle_timeout_ms null means unset;
 *  - transcription needs "model"; language is two lower-case letters;
 *  - each tool needs name and description; "type", if given, must be
 *    "function"; parameters may be left out (an empty object schema is
 *    sent); anything else in a tool is an error, since OpenAI rejects it;
 *  - tool_choice "required" needs at least one tool;
 *  - what only one dialect can honour is a warning, not an error:
 *    idle_timeout_ms and the voices marin and cedar under beta.  The
 *    temperature is the beta dialect's own setting (persona.h): under GA
 *    it is kept and not sent, without a warning, so personas written for
 *    both dialects (the shipped ones) start without noise.
 * persona_set_load() skips names that start with '.' (editor lock and
 * backup files) and reads the rest of *.json in strcmp() order.
 */
#include "personas/persona.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PERSONA_FILE_MAX	(1024 * 1024)
#define TOOL_NAME_MAX		64

/* Problems or warnings, one line each, into a caller's buffer. */
struct report {
	char	*buf;
	size_t	 cap;
	size_t	 len;
	int	 n;
	int	 full;
};

struct ctx {
	const char	*file;
	enum oa_dialect	 dialect;
	struct report	*err;
	struct report	*warn;
	int		 nerr;		/* problems in this file */
};

static const char *const voices[] = {
	"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse",
	"marin", "cedar",
};
#define VOICES_LIST "alloy ash ballad coral echo sage shimmer verse marin cedar"

static const char *const top_fields[] = {
	"name", "mode", "voice", "instructions", "greeting", "temperature",
	"speed", "max_output_tokens", "turn_detection", "transcription",
	"noise_reduction", "tools", "tool_choice",
};

static const char *const vad_fields[] = {
	"type", "threshold", "prefix_padding_ms", "silence_duration_ms",
	"create_response", "interrupt_response", "idle_timeout_ms",
	"eagerness",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
report_init(struct report *r, char *buf, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->buf = buf;
	r->cap = buf != NULL ? cap : 0;
	if (r->cap > 0)
		r->buf[0] = '\0';
}

static void
report_vadd(struct report *r, const char *file, const char *field,
    const char *fmt, va_list ap)
{
	char line[1024];
	int a, b;
	size_t n;

	r->n++;
	if (r->full || r->cap == 0)
		return;
	a = snprintf(line, sizeof(line), "%s: %s: ", file, field);
	if (a < 0 || (size_t)a >= sizeof(line))
		a = (int)sizeof(line) - 1;
	b = vsnprintf(line + a, sizeof(line) - (size_t)a, fmt, ap);
	n = (size_t)a + (b < 0 ? 0 : (size_t)b);
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* one line per problem: jansson's error text quotes the file, and
	 * a file name may hold anything, so no control character survives */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n++] = '\n';
	line[n] = '\0';
	if (r->len + n < r->cap) {
		memcpy(r->buf + r->len, line, n + 1);
		r->len += n;
		return;
	}
	/* whole lines only; say that some were left out if there is room */
	r->full = 1;
	if (r->len + 4 < r->cap) {
		memcpy(r->buf + r->len, "...\n", 5);
		r->len += 4;
	}
}

static void bad(struct ctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warnp(struct ctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
bad(struct ctx *c, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_vadd(c->err, c->file, field, fmt, ap);
	va_end(ap);
	c->nerr++;
}

static void
warnp(struct ctx *c, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_vadd(c->warn, c->file, field, fmt, ap);
	va_end(ap);
}

/* A string from the file, quoted for a message: at most 40 characters,
 * anything not printable ASCII shown as '?'. */
static const char *
quote(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0, max = 40;

	if (outlen < max + 6)
		max = outlen > 6 ? outlen - 6 : 0;
	out[o++] = '"';
	for (i = 0; i < n && i < max; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	out[o++] = '"';
	if (i < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static const char *
jquote(json_t *v, char *out, size_t outlen)
{
	return quote(json_string_value(v), json_string_length(v), out, outlen);
}

static const char *
type_name(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:	return "an object";
	case JSON_ARRAY:	return "an array";
	case JSON_STRING:	return "a string";
	case JSON_INTEGER:	return "an integer";
	case JSON_REAL:		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:	return "a boolean";
	case JSON_NULL:		return "null";
	}
	return "something else";
}

static const char *
num_text(json_t *v, char *out, size_t outlen)
{
	if (json_is_integer(v))
		snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
	else
		snprintf(out, outlen, "%g", json_real_value(v));
	return out;
}

static char *
xstrdup(struct ctx *c, const char *field, const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		bad(c, field, "out of memory");
	return d;
}

static int
in_list(const char *s, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return 1;
	return 0;
}

static int
name_valid(const char *s, size_t n, size_t max)
{
	size_t i;

	if (n < 1 || n > max)
		return 0;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* Field checks.  Each reports its own problem and returns 0 or -1. ----- */

static int
want_string(struct ctx *c, json_t *v, const char *field, int nonempty)
{
	if (!json_is_string(v)) {
		bad(c, field, "must be a string, not %s", type_name(v));
		return -1;
	}
	if (nonempty && json_string_length(v) == 0) {
		bad(c, field, "must not be empty");
		return -1;
	}
	return 0;
}

/* An optional non-empty string member copied into *out. */
static int
opt_string(struct ctx *c, json_t *obj, const char *key,
    const char *field, int nonempty, char **out)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return 0;
	if (want_string(c, v, field, nonempty) != 0)
		return -1;
	if ((*out = xstrdup(c, field, json_string_value(v))) == NULL)
		return -1;
	return 0;
}

static int
want_number(struct ctx *c, json_t *v, const char *field, double lo,
    double hi, double *out)
{
	char num[64];
	double x;

	if (!json_is_number(v)) {
		bad(c, field, "must be a number, not %s", type_name(v));
		return -1;
	}
	x = json_number_value(v);
	if (!(x >= lo && x <= hi)) {
		bad(c, field, "%s is out of range %g..%g",
		    num_text(v, num, sizeof(num)), lo, hi);
		return -1;
	}
	*out = x;
	return 0;
}

static int
want_int(struct ctx *c, json_t *v, const char *field, int lo, int hi,
    int *out)
{
	char num[64];
	json_int_t x;

	if (!json_is_integer(v)) {
		bad(c, field, "must be an integer, not %s", type_name(v));
		return -1;
	}
	x = json_integer_value(v);
	if (x < lo || x > hi) {
		bad(c, field, "%s is out of range %d..%d",
		    num_text(v, num, sizeof(num)), lo, hi);
		return -1;
	}
	*out = (int)x;
	return 0;
}

static int
want_bool(struct ctx *c, json_t *v, const char *field, int *out)
{
	if (!json_is_boolean(v)) {
		bad(c, field, "must be true or false, not %s", type_name(v));
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

/* A string or an array of strings, joined with "\n"; not blank. */
static int
want_text(struct ctx *c, json_t *v, const char *field, char **out)
{
	char sub[96];
	json_t *e;
	size_t i, len = 0, at;
	char *s;
	int fail = 0;

	if (json_is_string(v)) {
		len = json_string_length(v);
	} else if (json_is_array(v)) {
		if (json_array_size(v) == 0) {
			bad(c, field, "must not be empty");
			return -1;
		}
		json_array_foreach(v, i, e) {
			if (!json_is_string(e)) {
				snprintf(sub, sizeof(sub), "%s[%zu]", field, i);
				bad(c, sub, "must be a string, not %s",
				    type_name(e));
				fail = 1;
				continue;
			}
			len += json_string_length(e) + 1;
		}
		if (fail)
			return -1;
	} else {
		bad(c, field, "must be a string or an array of strings, not %s",
		    type_name(v));
		return -1;
	}
	if ((s = malloc(len + 1)) == NULL) {
		bad(c, field, "out of memory");
		return -1;
	}
	if (json_is_string(v)) {
		memcpy(s, json_string_value(v), len);
		at = len;
	} else {
		at = 0;
		json_array_foreach(v, i, e) {
			if (i > 0)
				s[at++] = '\n';
			memcpy(s + at, json_string_value(e),
			    json_string_length(e));
			at += json_string_length(e);
		}
	}
	s[at] = '\0';
	if (strspn(s, " \t\r\n") == at) {
		bad(c, field, "must not be empty");
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

/* Sections ------------------------------------------------------------ */

/* A key from the file as part of a field path: printable ASCII only, at
 * most 40 characters. */
static void
key_text(const char *key, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; key[i] != '\0' && i < 40 && i + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)key[i];
		out[i] = (ch > 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	out[i] = '\0';
}

static void
check_unknown(struct ctx *c, json_t *obj, const char *prefix,
    const char *const *known, size_t nknown)
{
	char field[160], k[48];
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		if (in_list(key, known, nknown))
			continue;
		key_text(key, k, sizeof(k));
		if (prefix != NULL)
			snprintf(field, sizeof(field), "%s.%s", prefix, k);
		else
			snprintf(field, sizeof(field), "%s", k);
		bad(c, field, "unknown field");
	}
}

static void
load_voice(struct ctx *c, json_t *root, struct persona *p)
{
	json_t *v = json_object_get(root, "voice");
	char q[64];

	if (v == NULL || want_string(c, v, "voice", 1) != 0)
		return;
	if (!in_list(json_string_value(v), voices, NELEM(voices))) {
		bad(c, "voice", "%s is not one of " VOICES_LIST,
		    jquote(v, q, sizeof(q)));
		return;
	}
	if (c->dialect == OA_BETA && (strcmp(json_string_value(v), "marin") ==
	    0 || strcmp(json_string_value(v), "cedar") == 0))
		warnp(c, "voice", "%s may not be available in the beta "
		    "dialect (GA voice)", json_string_value(v));
	p->voice = xstrdup(c, "voice", json_string_value(v));
}

static void
load_numbers(struct ctx *c, json_t *root, struct persona *p)
{
	json_t *v;
	char q[64];

	if ((v = json_object_get(root, "temperature")) != NULL)
		(void)want_number(c, v, "temperature", 0.6, 1.2, &p->temperature);
	if ((v = json_object_get(root, "speed")) != NULL)
		(void)want_number(c, v, "speed", 0.25, 1.5, &p->speed);
	if ((v = json_object_get(root, "max_output_tokens")) != NULL) {
		if (json_is_string(v)) {
			if (strcmp(json_string_value(v), "inf") != 0)
				bad(c, "max_output_tokens", "%s is not an "
				    "integer 1..4096 or \"inf\"",
				    jquote(v, q, sizeof(q)));
		} else if (!json_is_integer(v))
			bad(c, "max_output_tokens", "must be an integer "
			    "1..4096 or \"inf\", not %s", type_name(v));
		else
			(void)want_int(c, v, "max_output_tokens", 1, 4096,
			    &p->max_output_tokens);
	}
}

static void
load_vad(struct ctx *c, json_t *root, struct persona *p)
{
	json_t *td = json_object_get(root, "turn_detection"), *v;
	char q[64];
	int server = -1;

	if (td == NULL)
		return;
	if (json_is_null(td)) {
		snprintf(p->vad.type, sizeof(p->vad.type), "none");
		return;
	}
	if (!json_is_object(td)) {
		bad(c, "turn_detection", "must be an object or null, not %s",
		    type_name(td));
		return;
	}
	check_unknown(c, td, "turn_detection", vad_fields, NELEM(vad_fields));

	v = json_object_get(td, "type");
	if (v == NULL)
		bad(c, "turn_detection.type", "missing (server_vad or "
		    "semantic_vad)");
	else if (want_string(c, v, "turn_detection.type", 1) == 0) {
		if (strcmp(json_string_value(v), "server_vad") == 0)
			server = 1;
		else if (strcmp(json_string_value(v), "semantic_vad") == 0)
			server = 0;
		else
			bad(c, "turn_detection.type", "%s is not server_vad or "
			    "semantic_vad", jquote(v, q, sizeof(q)));
	}
	if (server >= 0)
		snprintf(p->vad.type, sizeof(p->vad.type), "%s",
		    json_string_value(v));

	if ((v = json_object_get(td, "threshold")) != NULL) {
		if (server == 0)
			bad(c, "turn_detection.threshold", "only for "
			    "server_vad");
		else
			(void)want_number(c, v, "turn_detection.threshold",
			    0, 1, &p->vad.threshold);
	}
	if ((v = json_object_get(td, "prefix_padding_ms")) != NULL) {
		if (server == 0)
			bad(c, "turn_detection.prefix_padding_ms", "only for "
			    "server_vad");
		else
			(void)want_int(c, v, "turn_detection.prefix_padding_ms",
			    0, 5000, &p->vad.prefix_padding_ms);
	}
	if ((v = json_object_get(td, "silence_duration_ms")) != NULL) {
		if (server == 0)
			bad(c, "turn_detection.silence_duration_ms", "only "
			    "for server_vad");
		else
			(void)want_int(c, v,
			    "turn_detection.silence_duration_ms", 0, 10000,
			    &p->vad.silence_duration_ms);
	}
	if ((v = json_object_get(td, "idle_timeout_ms")) != NULL) {
		if (server == 0)
			bad(c, "turn_detection.idle_timeout_ms", "only for "
			    "server_vad");
		else if (!json_is_null(v) && want_int(c, v,
		    "turn_detection.idle_timeout_ms", 5000, 30000,
		    &p->vad.idle_timeout_ms) == 0 && c->dialect == OA_BETA)
			warnp(c, "turn_detection.idle_timeout_ms",
			    "idle_timeout_ms is not supported by the beta "
			    "dialect; not sent");
	}
	if ((v = json_object_get(td, "create_response")) != NULL)
		(void)want_bool(c, v, "turn_detection.create_response",
		    &p->vad.create_response);
	if ((v = json_object_get(td, "interrupt_response")) != NULL)
		(void)want_bool(c, v, "turn_detection.interrupt_response",
		    &p->vad.interrupt_response);
	if ((v = json_object_get(td, "eagerness")) != NULL) {
		static const char *const eag[] = {
			"low", "medium", "high", "auto",
		};

		if (server == 1)
			bad(c, "turn_detection.eagerness", "only for "
			    "semantic_vad");
		else if (want_string(c, v, "turn_detection.eagerness", 1) != 0)
			;
		else if (!in_list(json_string_value(v), eag, NELEM(eag)))
			bad(c, "turn_detection.eagerness", "%s is not one of "
			    "low medium high auto", jquote(v, q, sizeof(q)));
		else
			snprintf(p->vad.eagerness, sizeof(p->vad.eagerness),
			    "%s", json_string_value(v));
	}
}

static void
load_transcription(struct ctx *c, json_t *root, struct persona *p)
{
	static const char *const fields[] = { "model", "language", "prompt" };
	json_t *t = json_object_get(root, "transcription"), *v;
	const char *s;
	char q[64];

	if (t == NULL || json_is_null(t))
		return;
	if (!json_is_object(t)) {
		bad(c, "transcription", "must be an object or null, not %s",
		    type_name(t));
		return;
	}
	check_unknown(c, t, "transcription", fields, NELEM(fields));
	if ((v = json_object_get(t, "model")) == NULL)
		bad(c, "transcription.model", "missing (e.g. "
		    "\"gpt-4o-mini-transcribe\")");
	else if (want_string(c, v, "transcription.model", 1) == 0)
		p->transcription_model = xstrdup(c, "transcription.model",
		    json_string_value(v));
	if ((v = json_object_get(t, "language")) != NULL &&
	    want_string(c, v, "transcription.language", 1) == 0) {
		s = json_string_value(v);
		if (json_string_length(v) != 2 || s[0] < 'a' || s[0] > 'z' ||
		    s[1] < 'a' || s[1] > 'z')
			bad(c, "transcription.language", "%s is not a 2-letter "
			    "ISO-639-1 code such as \"en\"",
			    jquote(v, q, sizeof(q)));
		else
			p->transcription_language = xstrdup(c,
			    "transcription.language", s);
	}
	(void)opt_string(c, t, "prompt", "transcription.prompt", 0,
	    &p->transcription_prompt);
}

static void
load_noise(struct ctx *c, json_t *root, struct persona *p)
{
	json_t *v = json_object_get(root, "noise_reduction");
	char q[64];

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_string(v)) {
		bad(c, "noise_reduction", "must be near_field, far_field or "
		    "null, not %s", type_name(v));
		return;
	}
	if (strcmp(json_string_value(v), "near_field") != 0 &&
	    strcmp(json_string_value(v), "far_field") != 0) {
		bad(c, "noise_reduction", "%s is not near_field, far_field or "
		    "null", jquote(v, q, sizeof(q)));
		return;
	}
	p->noise_reduction = xstrdup(c, "noise_reduction",
	    json_string_value(v));
}

/*
 * A tool's "sensitive": the argument names that are never logged, each one
 * of its parameters' properties.  0 or -1 (reported).
 */
static int
load_sensitive(struct ctx *c, json_t *t, json_t *params, const char *prefix)
{
	json_t *v = json_object_get(t, "sensitive"), *f, *props;
	char field[96], q[64];
	size_t i;
	int fail = 0;

	if (v == NULL)
		return 0;
	snprintf(field, sizeof(field), "%s.sensitive", prefix);
	if (!json_is_array(v)) {
		bad(c, field, "must be an array of parameter names, not %s",
		    type_name(v));
		return -1;
	}
	props = json_is_object(params) ? json_object_get(params, "properties") :
	    NULL;
	json_array_foreach(v, i, f) {
		snprintf(field, sizeof(field), "%s.sensitive[%zu]", prefix, i);
		if (want_string(c, f, field, 1) != 0)
			fail = 1;
		else if (json_object_get(props, json_string_value(f)) == NULL) {
			bad(c, field, "%s is not one of the tool's parameters",
			    jquote(f, q, sizeof(q)));
			fail = 1;
		}
	}
	return fail ? -1 : 0;
}

/* ",a,b," from a checked "sensitive" array, or NULL when there is none. */
static char *
sensitive_list(struct ctx *c, json_t *v)
{
	json_t *f;
	size_t i, n = 2;
	char *out;

	if (json_array_size(v) == 0)
		return NULL;
	json_array_foreach(v, i, f)
		n += strlen(json_string_value(f)) + 1;
	if ((out = malloc(n)) == NULL) {
		bad(c, "tools", "out of memory");
		return NULL;
	}
	strcpy(out, ",");
	json_array_foreach(v, i, f) {
		strcat(out, json_string_value(f));
		strcat(out, ",");
	}
	return out;
}

/* One tool, checked and normalised into *out (NULL on error). */
static json_t *
load_tool(struct ctx *c, json_t *t, size_t i, json_t *names)
{
	static const char *const fields[] = {
		"type", "name", "description", "parameters", "sensitive",
	};
	char prefix[32], field[64], q[64];
	json_t *v, *name, *desc, *params, *pt;
	json_t *out, *seen, *pcopy;
	int fail = 0;

	snprintf(prefix, sizeof(prefix), "tools[%zu]", i);
	if (!json_is_object(t)) {
		bad(c, prefix, "must be an object, not %s", type_name(t));
		return NULL;
	}
	check_unknown(c, t, prefix, fields, NELEM(fields));

	snprintf(field, sizeof(field), "%s.type", prefix);
	if ((v = json_object_get(t, "type")) != NULL &&
	    (!json_is_string(v) ||
	    strcmp(json_string_value(v), "function") != 0)) {
		bad(c, field, "must be \"function\" (or left out)");
		fail = 1;
	}

	snprintf(field, sizeof(field), "%s.name", prefix);
	if ((name = json_object_get(t, "name")) == NULL) {
		bad(c, field, "missing");
		fail = 1;
	} else if (want_string(c, name, field, 1) != 0)
		fail = 1;
	else if (!name_valid(json_string_value(name),
	    json_string_length(name), TOOL_NAME_MAX)) {
		bad(c, field, "%s must be 1-%d characters of A-Z a-z 0-9 _ -",
		    jquote(name, q, sizeof(q)), TOOL_NAME_MAX);
		fail = 1;
	} else if ((seen = json_object_get(names,
	    json_string_value(name))) != NULL) {
		bad(c, field, "%s is a duplicate of tools[%lld].name",
		    jquote(name, q, sizeof(q)),
		    (long long)json_integer_value(seen));
		fail = 1;
	} else if (json_object_set_new(names, json_string_value(name),
	    json_integer((json_int_t)i)) != 0) {
		bad(c, field, "out of memory");
		fail = 1;
	}

	snprintf(field, sizeof(field), "%s.description", prefix);
	if ((desc = json_object_get(t, "description")) == NULL) {
		bad(c, field, "missing (the model reads it to decide when "
		    "to call the tool)");
		fail = 1;
	} else if (want_string(c, desc, field, 1) != 0)
		fail = 1;

	snprintf(field, sizeof(field), "%s.parameters", prefix);
	if ((params = json_object_get(t, "parameters")) != NULL) {
		pt = json_is_object(params) ?
		    json_object_get(params, "type") : NULL;
		if (!json_is_string(pt) ||
		    strcmp(json_string_value(pt), "object") != 0) {
			bad(c, field, "must be a JSON Schema object with "
			    "\"type\": \"object\"");
			fail = 1;
		}
	}
	if (load_sensitive(c, t, params, prefix) != 0)
		fail = 1;
	if (fail)
		return NULL;

	/* "sensitive" is ours: OpenAI never sees it */
	if (params != NULL)
		pcopy = json_deep_copy(params);
	else
		pcopy = json_pack("{s:s,s:{}}", "type", "object",
		    "properties");
	out = json_pack("{s:s,s:O,s:O,s:o}", "type", "function",
	    "name", name, "description", desc, "parameters", pcopy);
	if (out == NULL)
		bad(c, prefix, "out of memory");
	return out;
}

static void
load_tools(struct ctx *c, json_t *root, struct persona *p,
    int *tools_ok)
{
	json_t *ts = json_object_get(root, "tools"), *t;
	json_t *norm = NULL, *names = NULL, *one;
	int before = c->nerr;
	size_t i, n;

	*tools_ok = 1;
	if (ts == NULL || json_is_null(ts))
		return;
	*tools_ok = 0;
	if (!json_is_array(ts)) {
		bad(c, "tools", "must be an array, not %s", type_name(ts));
		return;
	}
	if ((norm = json_array()) == NULL || (names = json_object()) == NULL) {
		bad(c, "tools", "out of memory");
		goto done;
	}
	json_array_foreach(ts, i, t) {
		if ((one = load_tool(c, t, i, names)) != NULL &&
		    json_array_append_new(norm, one) != 0)
			bad(c, "tools", "out of memory");
	}
	if (c->nerr != before)
		goto done;
	n = json_array_size(norm);
	if (n > 0) {
		if ((p->tool_names = calloc(n, sizeof(char *))) == NULL ||
		    (p->tool_sensitive = calloc(n, sizeof(char *))) == NULL) {
			bad(c, "tools", "out of memory");
			goto done;
		}
		json_array_foreach(norm, i, one) {
			p->tool_names[i] = xstrdup(c, "tools",
			    json_string_value(json_object_get(one, "name")));
			if (p->tool_names[i] == NULL)
				goto done;
			p->tool_sensitive[i] = sensitive_list(c, json_object_get(
			    json_array_get(ts, i), "sensitive"));
			p->ntools++;
		}
		if ((p->tools_json = json_dumps(norm, JSON_COMPACT)) == NULL) {
			bad(c, "tools", "out of memory");
			goto done;
		}
	}
	*tools_ok = 1;
done:
	json_decref(norm);
	json_decref(names);
}

static void
load_tool_choice(struct ctx *c, json_t *root, struct persona *p,
    int tools_ok)
{
	json_t *v = json_object_get(root, "tool_choice");
	const char *s;
	char q[64];
	size_t i;

	if (v == NULL || want_string(c, v, "tool_choice", 1) != 0)
		return;
	s = json_string_value(v);
	if (strcmp(s, "required") == 0 && tools_ok && p->ntools == 0) {
		bad(c, "tool_choice", "\"required\" but the persona has no "
		    "tools");
		return;
	}
	if (strcmp(s, "auto") != 0 && strcmp(s, "none") != 0 &&
	    strcmp(s, "required") != 0) {
		/* with broken tools the names are unknown: say nothing more */
		if (!tools_ok)
			return;
		for (i = 0; i < p->ntools; i++)
			if (strcmp(s, p->tool_names[i]) == 0)
				break;
		if (i == p->ntools) {
			bad(c, "tool_choice", "%s is not auto, none, required "
			    "or the name of one of the persona's tools",
			    jquote(v, q, sizeof(q)));
			return;
		}
	}
	p->tool_choice = xstrdup(c, "tool_choice", s);
}

static void
load_fields(struct ctx *c, json_t *root, struct persona *p)
{
	json_t *v;
	int tools_ok;

	check_unknown(c, root, NULL, top_fields, NELEM(top_fields));

	(void)opt_string(c, root, "name", "name", 1, &p->name);
	(void)opt_string(c, root, "mode", "mode", 1, &p->mode);
	load_voice(c, root, p);
	if ((v = json_object_get(root, "instructions")) == NULL)
		bad(c, "instructions", "missing (the persona's system "
		    "prompt)");
	else
		(void)want_text(c, v, "instructions", &p->instructions);
	if ((v = json_object_get(root, "greeting")) != NULL)
		(void)want_text(c, v, "greeting", &p->greeting);
	load_numbers(c, root, p);
	load_vad(c, root, p);
	load_transcription(c, root, p);
	load_noise(c, root, p);
	load_tools(c, root, p, &tools_ok);
	load_tool_choice(c, root, p, tools_ok);
}

/* The file, whole, NUL-terminated; NULL after reporting why not. */
static char *
read_file(struct ctx *c, size_t *lenp)
{
	struct stat st;
	char *data = NULL;
	size_t len = 0;
	ssize_t r;
	int fd;

	if ((fd = open(c->file, O_RDONLY | O_CLOEXEC)) == -1) {
		bad(c, "file", "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		bad(c, "file", "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		bad(c, "file", "not a regular file");
		goto fail;
	}
	if (st.st_size > PERSONA_FILE_MAX) {
		bad(c, "file", "larger than %d bytes", PERSONA_FILE_MAX);
		goto fail;
	}
	if ((data = malloc((size_t)st.st_size + 1)) == NULL) {
		bad(c, "file", "out of memory");
		goto fail;
	}
	/* the size may change under us: read to EOF, within the bound */
	for (;;) {
		r = read(fd, data + len, (size_t)st.st_size + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			bad(c, "file", "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > (size_t)st.st_size) {
			bad(c, "file", "changed while being read");
			goto fail;
		}
	}
	close(fd);
	data[len] = '\0';
	*lenp = len;
	return data;
fail:
	free(data);
	close(fd);
	return NULL;
}

/* The id from the path: base name without ".json". */
static void
load_id(struct ctx *c, struct persona *p)
{
	const char *base = strrchr(c->file, '/');
	size_t n;
	char q[64];

	base = base != NULL ? base + 1 : c->file;
	n = strlen(base);
	if (n < 5 || strcmp(base + n - 5, ".json") != 0) {
		bad(c, "id", "the file name must end in .json");
		return;
	}
	n -= 5;
	if (!name_valid(base, n, PERSONA_ID_MAX - 1)) {
		bad(c, "id", "%s (the file name without .json) must be 1-%d "
		    "characters of A-Z a-z 0-9 _ -", quote(base, n, q,
		    sizeof(q)), PERSONA_ID_MAX - 1);
		return;
	}
	memcpy(p->id, base, n);
	p->id[n] = '\0';
}

static int
load_file(struct persona *p, const char *path, enum oa_dialect dialect,
    struct report *err, struct report *warn)
{
	struct ctx c = { path, dialect, err, warn, 0 };
	json_error_t jerr;
	json_t *root = NULL;
	char where[64], *data;
	size_t len;

	memset(p, 0, sizeof(*p));
	p->temperature = -1;
	p->speed = -1;
	p->vad.threshold = -1;
	p->vad.prefix_padding_ms = -1;
	p->vad.silence_duration_ms = -1;
	p->vad.create_response = -1;
	p->vad.interrupt_response = -1;
	p->vad.idle_timeout_ms = -1;

	load_id(&c, p);
	if ((data = read_file(&c, &len)) == NULL)
		goto done;
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	free(data);
	if (root == NULL) {
		snprintf(where, sizeof(where), "line %d column %d", jerr.line,
		    jerr.column);
		bad(&c, where, "%s", jerr.text);
		goto done;
	}
	if (!json_is_object(root)) {
		bad(&c, "top level", "must be a JSON object, not %s",
		    type_name(root));
		goto done;
	}
	load_fields(&c, root, p);
	if (c.nerr == 0)
		p->file = xstrdup(&c, "file", path);
done:
	json_decref(root);
	if (c.nerr > 0)
		persona_free(p);
	return c.nerr;
}

int
persona_load_file(struct persona *p, const char *path,
    enum oa_dialect dialect, char *err, size_t errlen, char *warn,
    size_t warnlen)
{
	struct report er, wr;

	report_init(&er, err, errlen);
	report_init(&wr, warn, warnlen);
	return load_file(p, path, dialect, &er, &wr);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
is_persona_name(const char *s)
{
	size_t n = strlen(s);

	return s[0] != '.' && n > 5 && strcmp(s + n - 5, ".json") == 0;
}

int
persona_set_load(struct persona_set *ps, const char *dir,
    enum oa_dialect dialect, char *err, size_t errlen, char *warn,
    size_t warnlen)
{
	struct report er, wr;
	struct ctx c;
	struct dirent *de;
	char **names = NULL, **nn, *path;
	size_t n = 0, cap = 0, i, dl;
	DIR *d;
	int nerr = 0;

	ps->v = NULL;
	ps->n = 0;
	report_init(&er, err, errlen);
	report_init(&wr, warn, warnlen);
	c = (struct ctx){ dir, dialect, &er, &wr, 0 };

	if ((d = opendir(dir)) == NULL) {
		bad(&c, "directory", "cannot read: %s", strerror(errno));
		return 1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (!is_persona_name(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nn = realloc(names, cap * sizeof(*names))) ==
			    NULL)
				break;
			names = nn;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			break;
		n++;
	}
	if (de != NULL || errno != 0) {
		bad(&c, "directory", "cannot read: %s",
		    de != NULL ? "out of memory" : strerror(errno));
		closedir(d);
		goto done;
	}
	closedir(d);
	if (n == 0) {
		bad(&c, "directory", "no *.json persona files");
		goto done;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	if ((ps->v = calloc(n, sizeof(*ps->v))) == NULL) {
		bad(&c, "directory", "out of memory");
		goto done;
	}
	dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	for (i = 0; i < n; i++) {
		if (asprintf(&path, "%.*s/%s", (int)dl, dir, names[i]) == -1) {
			bad(&c, "directory", "out of memory");
			break;
		}
		nerr += load_file(&ps->v[ps->n], path, dialect, &er, &wr);
		if (ps->v[ps->n].file != NULL)
			ps->n++;
		free(path);
	}
done:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	nerr += c.nerr;
	if (nerr > 0)
		persona_set_free(ps);
	return nerr;
}

void
persona_free(struct persona *p)
{
	size_t i;

	if (p == NULL)
		return;
	free(p->file);
	free(p->name);
	free(p->mode);
	free(p->voice);
	free(p->instructions);
	free(p->greeting);
	free(p->transcription_model);
	free(p->transcription_language);
	free(p->transcription_prompt);
	free(p->noise_reduction);
	free(p->tools_json);
	for (i = 0; i < p->ntools; i++) {
		free(p->tool_names[i]);
		if (p->tool_sensitive != NULL)
			free(p->tool_sensitive[i]);
	}
	free(p->tool_names);
	free(p->tool_sensitive);
	free(p->tool_choice);
	memset(p, 0, sizeof(*p));
}

void
persona_set_free(struct persona_set *ps)
{
	size_t i;

	if (ps == NULL)
		return;
	for (i = 0; i < ps->n; i++)
		persona_free(&ps->v[i]);
	free(ps->v);
	ps->v = NULL;
	ps->n = 0;
}

const struct persona *
persona_find(const struct persona_set *ps, const char *id)
{
	size_t i;

	if (ps == NULL || id == NULL)
		return NULL;
	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->v[i].id, id) == 0)
			return &ps->v[i];
	return NULL;
}

void
persona_session_cfg(const struct persona *p, struct oa_session_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->instructions = p->instructions;
	cfg->voice = p->voice;
	cfg->temperature = p->temperature;
	cfg->speed = p->speed;
	cfg->max_output_tokens = p->max_output_tokens;
	cfg->vad = p->vad;
	cfg->transcription_model = p->transcription_model;
	cfg->transcription_language = p->transcription_language;
	cfg->transcription_prompt = p->transcription_prompt;
	cfg->noise_reduction = p->noise_reduction;
	cfg->tools_json = p->tools_json;
	cfg->tool_choice = p->tool_choice;
}

int
persona_field_sensitive(const struct persona *p, const char *tool,
    const char *field)
{
	size_t i, n = strlen(field);
	const char *at;

	for (i = 0; i < p->ntools; i++) {
		if (strcmp(p->tool_names[i], tool) != 0)
			continue;
		if (p->tool_sensitive == NULL || p->tool_sensitive[i] == NULL)
			return 0;
		/* the list starts with a comma: a match is never at its head */
		for (at = p->tool_sensitive[i] + 1; n > 0 &&
		    (at = strstr(at, field)) != NULL; at++)
			if (at[-1] == ',' && at[n] == ',')
				return 1;
		return 0;
	}
	return 0;
}
