/*
 * twiml.c — building TwiML documents.
 *
 * The buffer is kept NUL-terminated, so t->buf is a C string between calls.
 * Once t->err is set every verb does nothing; twiml_end() reports it.
 */
#include "proto/twiml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The replacement for c, or NULL if c is copied as it is.  Control bytes
 * XML 1.0 forbids (all below 0x20 but tab, LF, CR) map to "": a document
 * holding one would be rejected whole. */
static const char *
xml_entity(unsigned char c)
{
	switch (c) {
	case '&':
		return "&amp;";
	case '<':
		return "&lt;";
	case '>':
		return "&gt;";
	case '"':
		return "&quot;";
	case '\'':
		return "&apos;";
	case '\t':
	case '\n':
	case '\r':
		return NULL;
	default:
		return c < 0x20 ? "" : NULL;
	}
}

/* An entity is written whole or not at all; once one piece does not fit,
 * nothing more is written, but the length still counts it. */
size_t
xml_escape(const char *in, char *out, size_t outlen)
{
	size_t need = 0, w = 0;
	int full = outlen == 0;

	for (; *in != '\0'; in++) {
		const char *e = xml_entity((unsigned char)*in);
		size_t n = e ? strlen(e) : 1;

		if (!full && w + n < outlen) {
			if (e)
				memcpy(out + w, e, n);
			else
				out[w] = *in;
			w += n;
		} else
			full = 1;
		need += n;
	}
	if (outlen > 0)
		out[w] = '\0';
	return need;
}

/* Make room for n more bytes and the NUL.  0 or -1 (and t->err set). */
static int
twiml_reserve(struct twiml *t, size_t n)
{
	size_t cap;
	char *p;

	if (t->err)
		return -1;
	if (t->len + n + 1 <= t->cap)
		return 0;
	for (cap = t->cap ? t->cap : 256; cap < t->len + n + 1; cap *= 2)
		;
	if ((p = realloc(t->buf, cap)) == NULL) {
		t->err = -1;
		return -1;
	}
	t->buf = p;
	t->cap = cap;
	return 0;
}

static void
twiml_raw(struct twiml *t, const char *s)
{
	size_t n = strlen(s);

	if (twiml_reserve(t, n) != 0)
		return;
	memcpy(t->buf + t->len, s, n + 1);
	t->len += n;
}

static void
twiml_text(struct twiml *t, const char *s)
{
	size_t n;

	if (s == NULL)
		return;
	n = xml_escape(s, NULL, 0);
	if (twiml_reserve(t, n) != 0)
		return;
	xml_escape(s, t->buf + t->len, n + 1);
	t->len += n;
}

/* ' name="value"', or nothing when value is NULL. */
static void
twiml_attr(struct twiml *t, const char *name, const char *value)
{
	if (value == NULL)
		return;
	twiml_raw(t, " ");
	twiml_raw(t, name);
	twiml_raw(t, "=\"");
	twiml_text(t, value);
	twiml_raw(t, "\"");
}

void
twiml_begin(struct twiml *t)
{
	memset(t, 0, sizeof(*t));
	twiml_raw(t, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
}

void
twiml_say(struct twiml *t, const char *text, const char *voice)
{
	twiml_raw(t, "<Say");
	if (voice != NULL && *voice != '\0')
		twiml_attr(t, "voice", voice);
	twiml_raw(t, ">");
	twiml_text(t, text);
	twiml_raw(t, "</Say>");
}

void
twiml_play(struct twiml *t, const char *url)
{
	twiml_raw(t, "<Play>");
	twiml_text(t, url);
	twiml_raw(t, "</Play>");
}

/* seconds <= 0 leaves Twilio's default length. */
void
twiml_pause(struct twiml *t, int seconds)
{
	char num[16];

	if (seconds <= 0) {
		twiml_raw(t, "<Pause/>");
		return;
	}
	snprintf(num, sizeof(num), "%d", seconds);
	twiml_raw(t, "<Pause");
	twiml_attr(t, "length", num);
	twiml_raw(t, "/>");
}

void
twiml_hangup(struct twiml *t)
{
	twiml_raw(t, "<Hangup/>");
}

void
twiml_connect_stream_open(struct twiml *t, const char *action,
    const char *stream_url, const char *status_callback)
{
	twiml_raw(t, "<Connect");
	twiml_attr(t, "action", action);
	twiml_raw(t, "><Stream");
	twiml_attr(t, "url", stream_url);
	twiml_attr(t, "statusCallback", status_callback);
	twiml_raw(t, ">");
}

void
twiml_parameter(struct twiml *t, const char *name, const char *value)
{
	twiml_raw(t, "<Parameter");
	twiml_attr(t, "name", name ? name : "");
	twiml_attr(t, "value", value ? value : "");
	twiml_raw(t, "/>");
}

void
twiml_connect_stream_close(struct twiml *t)
{
	twiml_raw(t, "</Stream></Connect>");
}

void
twiml_connect_relay_open(struct twiml *t, const char *action, const char *url,
    const char *const *attrs)
{
	twiml_raw(t, "<Connect");
	twiml_attr(t, "action", action);
	if (action != NULL)
		twiml_attr(t, "method", "POST");
	twiml_raw(t, "><ConversationRelay");
	twiml_attr(t, "url", url);
	/* url is ours: a line cannot name a second one */
	for (; attrs != NULL && attrs[0] != NULL && attrs[1] != NULL; attrs += 2)
		if (strcmp(attrs[0], "url") != 0)
			twiml_attr(t, attrs[0], attrs[1]);
	twiml_raw(t, ">");
}

void
twiml_connect_relay_close(struct twiml *t)
{
	twiml_raw(t, "</ConversationRelay></Connect>");
}

void
twiml_dial(struct twiml *t, const char *number, const char *sip)
{
	/* neither attribute: "<Dial>" */
	twiml_dial_with(t, number, sip, NULL, 0, NULL);
}

void
twiml_dial_with(struct twiml *t, const char *number, const char *sip,
    const char *caller_id, int timeout, const char *action)
{
	char n[16];

	twiml_raw(t, "<Dial");
	if (action != NULL && action[0] != '\0') {
		twiml_attr(t, "action", action);
		twiml_attr(t, "method", "POST");
	}
	if (caller_id != NULL && caller_id[0] != '\0')
		twiml_attr(t, "callerId", caller_id);
	if (timeout > 0) {
		snprintf(n, sizeof(n), "%d", timeout);
		twiml_attr(t, "timeout", n);
	}
	twiml_raw(t, ">");
	if (sip != NULL) {
		twiml_raw(t, "<Sip>");
		twiml_text(t, sip);
		twiml_raw(t, "</Sip>");
	} else
		twiml_text(t, number);
	twiml_raw(t, "</Dial>");
}

void
twiml_redirect(struct twiml *t, const char *url)
{
	twiml_raw(t, "<Redirect method=\"POST\">");
	twiml_text(t, url);
	twiml_raw(t, "</Redirect>");
}

int
twiml_end(struct twiml *t)
{
	twiml_raw(t, "</Response>");
	return t->err ? -1 : 0;
}

void
twiml_free(struct twiml *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}
