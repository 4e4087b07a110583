/*
 * twiml.h — building TwiML documents, every interpolated value XML-escaped.
 *
 * A struct twiml is a growable buffer; the verbs append to it.  An
 * allocation failure is remembered and reported by twiml_end(), so callers
 * need check only once.  Element and attribute names are Twilio's
 * (case-sensitive camelCase).  <Stream> inside <Connect> never gets a
 * track attribute other than the default inbound_track (protocols.md 3.1).
 */
#ifndef VR_PROTO_TWIML_H
#define VR_PROTO_TWIML_H

#include <stddef.h>

struct twiml {
	char	*buf;
	size_t	 len, cap;
	int	 err;		/* sticky: -1 after an allocation failure */
};

/* '<?xml version="1.0" encoding="UTF-8"?><Response>' */
void twiml_begin(struct twiml *t);
/* <Say voice="..">text</Say>; voice NULL or "" omits the attribute. */
void twiml_say(struct twiml *t, const char *text, const char *voice);
void twiml_play(struct twiml *t, const char *url);
void twiml_pause(struct twiml *t, int seconds);
void twiml_hangup(struct twiml *t);
/* <Connect[ action=".."]><Stream url=".."[ statusCallback=".."]> ; NULLs omit */
void twiml_connect_stream_open(struct twiml *t, const char *action,
    const char *stream_url, const char *status_callback);
void twiml_parameter(struct twiml *t, const char *name, const char *value);
/* </Stream></Connect> */
void twiml_connect_stream_close(struct twiml *t);
/* <Connect action=".." method="POST"><ConversationRelay url=".." name="value"
 * ..> with attrs as name, value pairs ending in NULL (attrs NULL: none);
 * the <Parameter>s follow, then twiml_connect_relay_close(). */
void twiml_connect_relay_open(struct twiml *t, const char *action,
    const char *url, const char *const *attrs);
/* </ConversationRelay></Connect> */
void twiml_connect_relay_close(struct twiml *t);
/* <Dial>number</Dial>, or <Dial><Sip>uri</Sip></Dial> when sip is set. */
void twiml_dial(struct twiml *t, const char *number, const char *sip);
/* <Dial action=".." method="POST" callerId=".." timeout="N">, the target
 * as twiml_dial(); action, caller_id NULL or "" omit them, timeout <= 0
 * omits it (Twilio's 30 s).  With an action, Twilio asks it what follows
 * once the dialled leg ends (DialCallStatus, DialCallDuration). */
void twiml_dial_with(struct twiml *t, const char *number, const char *sip,
    const char *caller_id, int timeout, const char *action);
/* <Redirect method="POST">url</Redirect> */
void twiml_redirect(struct twiml *t, const char *url);
/* Appends </Response>.  Returns 0, or -1 if any step ran out of memory. */
int  twiml_end(struct twiml *t);
void twiml_free(struct twiml *t);

/* Escape in for XML text and attribute values (& < > " ').  Writes at most
 * outlen bytes including the NUL; returns the length the full escape needs
 * (excluding NUL), like snprintf. */
size_t xml_escape(const char *in, char *out, size_t outlen);

#endif
