/*
 * twilio.h — Twilio Media Streams messages (protocols.md §4): parsing what
 * Twilio sends, building what we send.  Pure: no I/O, no globals.
 *
 * Parsing is strict about what we use and lenient about what we do not:
 * unknown events and unknown fields are accepted (event TW_UNKNOWN);
 * sequenceNumber, chunk and timestamp are decimal strings (a JSON number is
 * accepted too) checked to fit in 63 bits; SIDs must be 2-64 characters of
 * [A-Za-z0-9].  Strings we keep are copied into the fixed arrays of
 * struct tw_msg, so it owns nothing after tw_parse() returns — except the
 * media payload, which points into the caller's buffer when it needed no
 * unescaping, or into tw_msg.payload_buf otherwise.
 */
#ifndef VR_PROTO_TWILIO_H
#define VR_PROTO_TWILIO_H

#include <stddef.h>
#include <stdint.h>

enum tw_event {
	TW_UNKNOWN = 0,
	TW_CONNECTED,
	TW_START,
	TW_MEDIA,
	TW_DTMF,
	TW_MARK,
	TW_STOP,
};

#define TW_SID_MAX	 65	/* with NUL */
#define TW_MARK_MAX	 256
#define TW_PARAMS_MAX	 16
#define TW_PARAM_NAME	 64
#define TW_PARAM_VALUE	 512
#define TW_PAYLOAD_MAX	 65536	/* base64 characters of one media payload */

enum tw_err {
	TW_OK = 0,
	TW_ERR_JSON = -1,	/* not JSON, or not an object */
	TW_ERR_EVENT = -2,	/* no "event" string */
	TW_ERR_FIELD = -3,	/* a field we need is missing or of the wrong type */
	TW_ERR_NUMBER = -4,	/* a counter that is not a decimal in range */
	TW_ERR_SID = -5,	/* a SID that is not [A-Za-z0-9]{2,64} */
	TW_ERR_TOOBIG = -6,	/* a string longer than its array */
	TW_ERR_BASE64 = -7,	/* media payload is not base64 */
	TW_ERR_DIGIT = -8,	/* a dtmf event without a key we know */
};

struct tw_msg {
	enum tw_event	event;
	char		event_name[32];		/* as received, for logs; truncated */
	int		has_seq;
	uint64_t	seq;			/* sequenceNumber */
	char		stream_sid[TW_SID_MAX];	/* "" when absent (connected) */

	/* start */
	char		account_sid[TW_SID_MAX];
	char		call_sid[TW_SID_MAX];
	int		nparams;
	char		param_name[TW_PARAMS_MAX][TW_PARAM_NAME];
	char		param_value[TW_PARAMS_MAX][TW_PARAM_VALUE];
	char		encoding[32];		/* mediaFormat.encoding */
	int		sample_rate;		/* mediaFormat.sampleRate, 0 absent */
	int		channels;

	/* media */
	char		track[16];
	uint64_t	chunk;
	uint64_t	timestamp;		/* ms since the stream started */
	const char	*payload;		/* base64, not NUL-terminated */
	size_t		payload_len;		/* base64 characters */
	size_t		audio_len;		/* decoded bytes: (3*len/4)-padding */

	/* dtmf */
	char		digit[4];

	/* mark */
	char		mark_name[TW_MARK_MAX];

	/* private: payload storage when unescaping was needed */
	char		*payload_buf;
	size_t		 payload_cap;
};

/* Parse one text message buf[0..len).  Returns TW_OK or an enum tw_err.
 * m may be reused across calls (payload_buf is kept and grown); release
 * it with tw_msg_free(). */
int  tw_parse(const char *buf, size_t len, struct tw_msg *m);
/* The same with the full parser only (no fast path): for tests. */
int  tw_parse_full(const char *buf, size_t len, struct tw_msg *m);
void tw_msg_free(struct tw_msg *m);
const char *tw_strerror(int err);
const char *tw_event_name(enum tw_event e);
/* customParameters lookup; NULL when absent. */
const char *tw_param(const struct tw_msg *m, const char *name);

/* b64_decoded_len() checks a base64 payload: see proto/b64.h. */
#include "proto/b64.h"

/*
 * Builders.  Each writes one JSON message into out and returns its length,
 * or -1 if it does not fit (nothing useful is left in out then).
 * stream_sid must already be valid (it came from tw_parse).  payload is
 * base64 and written as is; mark names are escaped.
 */
int tw_build_media(char *out, size_t cap, const char *stream_sid,
    const char *payload, size_t payload_len);
/* The same for a payload oa_parse() already checked (the model's audio on
 * the relay's path): not scanned a second time. */
int tw_build_media_parsed(char *out, size_t cap, const char *stream_sid,
    const char *payload, size_t payload_len);
int tw_build_mark(char *out, size_t cap, const char *stream_sid,
    const char *name);
int tw_build_clear(char *out, size_t cap, const char *stream_sid);

#endif
