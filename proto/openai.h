/*
 * openai.h — OpenAI Realtime events (protocols.md §8): building the client
 * events we send, in either dialect, and parsing the server events of both
 * dialects into one shape, so one handler serves GA and beta alike.
 *
 * Pure: no I/O, no globals.  The GA dialect is the default; the beta one
 * (header OpenAI-Beta: realtime=v1) stays for OpenAI-compatible servers.
 */
#ifndef VR_PROTO_OPENAI_H
#define VR_PROTO_OPENAI_H

#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"

enum oa_dialect { OA_GA = 0, OA_BETA = 1 };

/* ---- session configuration (filled from a persona by the caller) ---- */

struct oa_vad {
	char	type[16];	/* "server_vad", "semantic_vad", "none" (null),
				   or "" to leave the server's default alone */
	double	threshold;	/* < 0: unset */
	int	prefix_padding_ms;	/* < 0: unset */
	int	silence_duration_ms;	/* < 0: unset */
	int	create_response;	/* < 0: unset, else 0/1 */
	int	interrupt_response;	/* < 0: unset, else 0/1 */
	int	idle_timeout_ms;	/* < 0: unset (GA only, server_vad only) */
	char	eagerness[8];		/* semantic_vad: low/medium/high/auto, "" unset */
};

struct oa_session_cfg {
	const char	*instructions;		/* required */
	const char	*voice;			/* NULL: server default */
	double		 temperature;		/* < 0: unset; beta only */
	double		 speed;			/* < 0: unset */
	int		 max_output_tokens;	/* 0: "inf" */
	struct oa_vad	 vad;
	const char	*transcription_model;	/* NULL: no input transcription */
	const char	*transcription_language;/* NULL: unset */
	const char	*transcription_prompt;	/* NULL: unset */
	const char	*noise_reduction;	/* NULL: off; near_field/far_field */
	const char	*tools_json;		/* JSON array of function tools
						   ({"type":"function",name,
						   description,parameters}), NULL: none */
	const char	*tool_choice;		/* NULL: auto */
	int		 text_only;		/* text in and out, no audio
						   (a ConversationRelay call) */
};

/*
 * Each builder appends one complete event (JSON text, no newline) to out
 * and returns 0, or -1 (out of room or memory; out is then unchanged).
 */

/* session.update for the dialect: GA {"type":"realtime", audio.input/output
 * with {"type":"audio/pcmu"}, output_modalities ["audio"], max_output_tokens;
 * never temperature}; beta {flat fields, "g711_ulaw" both ways, modalities
 * ["text","audio"], max_response_output_tokens; never "type"}.  text_only:
 * GA output_modalities ["text"] and no audio object, beta modalities
 * ["text"] with turn_detection null, no voice, formats or transcription. */
int oa_build_session_update(struct buf *out, enum oa_dialect d,
    const struct oa_session_cfg *cfg);
/* input_audio_buffer.append with a base64 payload copied as is. */
int oa_build_append(struct buf *out, const char *b64, size_t len);
/* The same for a payload tw_parse() or our own encoder already checked:
 * the relay's path, which need not scan it a second time. */
int oa_build_append_parsed(struct buf *out, const char *b64, size_t len);
/* input_audio_buffer.append of ms milliseconds of mu-law silence (0xFF). */
int oa_build_append_silence(struct buf *out, unsigned ms);
int oa_build_truncate(struct buf *out, const char *item_id, int content_index,
    uint64_t audio_end_ms);
/* response.create; instructions NULL for a plain one.  tool_choice_none:
 * forbid tools for this response (goodbyes). */
int oa_build_response_create(struct buf *out, enum oa_dialect d,
    const char *instructions, int tool_choice_none);
int oa_build_response_cancel(struct buf *out);
/* conversation.item.create of a function_call_output. */
int oa_build_function_output(struct buf *out, const char *call_id,
    const char *output);
/* conversation.item.create of a user (or system, when system != 0) message
 * with one input_text part. */
int oa_build_text_item(struct buf *out, const char *text, int system);

/* conversation.item.create of an assistant message with one text part
 * (GA "output_text", beta "text"), placed after previous_item_id (NULL or
 * "": at the end). */
int oa_build_assistant_text_item(struct buf *out, enum oa_dialect d,
    const char *text, const char *previous_item_id);
/* conversation.item.delete */
int oa_build_item_delete(struct buf *out, const char *item_id);

/* ---- server events ---- */

enum oa_event {
	OA_EV_UNKNOWN = 0,
	OA_EV_SESSION_CREATED,
	OA_EV_SESSION_UPDATED,
	OA_EV_SPEECH_STARTED,
	OA_EV_SPEECH_STOPPED,
	OA_EV_COMMITTED,
	OA_EV_BUFFER_CLEARED,
	OA_EV_TIMEOUT_TRIGGERED,
	OA_EV_ITEM_ADDED,		/* GA conversation.item.added, beta .created */
	OA_EV_ITEM_DONE,
	OA_EV_ITEM_TRUNCATED,
	OA_EV_ITEM_DELETED,
	OA_EV_INPUT_TRANSCRIPT_DELTA,
	OA_EV_INPUT_TRANSCRIPT_DONE,	/* ...input_audio_transcription.completed */
	OA_EV_INPUT_TRANSCRIPT_FAILED,
	OA_EV_RESPONSE_CREATED,
	OA_EV_OUTPUT_ITEM_ADDED,
	OA_EV_OUTPUT_ITEM_DONE,
	OA_EV_CONTENT_PART_ADDED,
	OA_EV_CONTENT_PART_DONE,
	OA_EV_AUDIO_DELTA,		/* GA response.output_audio.delta, beta response.audio.delta */
	OA_EV_AUDIO_DONE,
	OA_EV_TRANSCRIPT_DELTA,		/* output audio transcript */
	OA_EV_TRANSCRIPT_DONE,
	OA_EV_TEXT_DELTA,
	OA_EV_TEXT_DONE,
	OA_EV_FUNCTION_ARGS_DELTA,
	OA_EV_FUNCTION_ARGS_DONE,
	OA_EV_RESPONSE_DONE,
	OA_EV_RATE_LIMITS,
	OA_EV_ERROR,
	OA_EV__COUNT
};

enum oa_err {
	OA_OK = 0,
	OA_ERR_JSON = -1,	/* not JSON, not an object */
	OA_ERR_TYPE = -2,	/* no "type" string */
	OA_ERR_FIELD = -3,	/* a field we need is missing or of the wrong type */
	OA_ERR_TOOBIG = -4,	/* a string longer than we keep */
	OA_ERR_BASE64 = -5,	/* an audio delta that is not base64 */
};

#define OA_ID_MAX	96	/* ids are opaque strings; longer ones refused */

struct oa_msg {
	enum oa_event	 ev;
	char		 type[64];		/* as received (truncated), for logs */
	char		 event_id[OA_ID_MAX];
	char		 response_id[OA_ID_MAX];
	char		 item_id[OA_ID_MAX];
	char		 previous_item_id[OA_ID_MAX];
	char		 call_id[OA_ID_MAX];
	char		 name[OA_ID_MAX];	/* function name */
	int		 output_index;
	int		 content_index;
	uint64_t	 audio_start_ms;	/* speech_started, timeout_triggered */
	uint64_t	 audio_end_ms;		/* speech_stopped, item.truncated */

	/* audio delta: base64, not NUL-terminated; points into the input when
	 * the JSON string had no escapes, else into audio_buf */
	const char	*audio;
	size_t		 audio_len;
	size_t		 audio_bytes;		/* decoded length */

	/* text: transcript/text deltas and dones, function arguments, the
	 * error message; NUL-terminated, owned (text_buf), "" when absent */
	const char	*text;
	size_t		 text_len;

	/* items (output_item.added/done, item.added/done) */
	char		 item_type[32];		/* message, function_call, ... */
	char		 item_role[16];

	/* response.created/done */
	char		 status[16];		/* completed, cancelled, failed, incomplete */
	char		 status_reason[32];	/* turn_detected, client_cancelled, ... */
	/* response.done's usage, by modality; 0 where absent */
	uint64_t	 in_text_tokens, in_audio_tokens, in_cached_tokens;
	uint64_t	 out_text_tokens, out_audio_tokens;

	/* session.created/updated */
	char		 session_id[OA_ID_MAX];
	uint64_t	 expires_at;		/* Unix s, 0 absent */
	int		 interrupt_response;	/* effective; -1 unknown */

	/* error */
	char		 err_type[64];
	char		 err_code[64];
	char		 err_param[64];
	char		 err_event_id[OA_ID_MAX];

	/* private storage, reused across parses; zero the struct first */
	char		*audio_buf;
	size_t		 audio_cap;
	char		*text_buf;
	size_t		 text_cap;
};

/* Parse one server event.  Unknown types are OA_OK with OA_EV_UNKNOWN.
 * m may be reused; free with oa_msg_free(). */
int  oa_parse(const char *buf, size_t len, struct oa_msg *m);
/* The same with the full parser only (no fast path): for tests. */
int  oa_parse_full(const char *buf, size_t len, struct oa_msg *m);
void oa_msg_free(struct oa_msg *m);
const char *oa_strerror(int err);
const char *oa_event_name(enum oa_event e);

/* The OpenAI error message out of a non-101 handshake body
 * ({"error":{"message":...}}), at most outlen-1 bytes; "" if none. */
void oa_error_body_message(const char *body, size_t len, char *out, size_t outlen);

#endif
