/*
 * persona.h — personas: one JSON file per persona in PERSONAS_DIR.
 *
 * The file name without ".json" is the persona's id and its route
 * (POST /voice/<id>).  Loaded and validated by the master at start, on
 * SIGHUP and by `voxrelay -t` (which reports the file and field that is
 * wrong); workers inherit the loaded set when they are forked.
 *
 * File format (every field but instructions optional):
 *
 *   {
 *     "name": "Sarah Mitchell",          shown on /health and in logs
 *     "mode": "cold_call",               intake, cold_call, interview,
 *                                        small_talk, receptionist, ...
 *     "voice": "ash",                    alloy ash ballad coral echo sage
 *                                        shimmer verse marin cedar
 *     "instructions": "..." or ["...", "..."],   lines joined with "\n"
 *     "greeting": "...",                 instructions for the first
 *                                        response; absent: wait for the caller
 *     "temperature": 0.8,                beta only (0.6-1.2); kept and not
 *                                        sent under GA, without a warning
 *     "speed": 1.0,                      0.25-1.5
 *     "max_output_tokens": 4096 | "inf",
 *     "turn_detection": {"type": "server_vad", "threshold": 0.5,
 *                        "prefix_padding_ms": 300, "silence_duration_ms": 500,
 *                        "create_response": true, "interrupt_response": true,
 *                        "idle_timeout_ms": 6000}
 *                     | {"type": "semantic_vad", "eagerness": "auto"} | null,
 *     "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en",
 *                       "prompt": "..."} | null,
 *     "noise_reduction": "near_field" | "far_field" | null,
 *     "tools": [{"name": "...", "description": "...", "parameters": {...},
 *                "sensitive": ["date_of_birth", ...]}],   arguments never
 *                                        logged (names, dates of birth,
 *                                        account digits, addresses)
 *     "tool_choice": "auto" | "none" | "required"
 *   }
 */
#ifndef VR_PERSONA_H
#define VR_PERSONA_H

#include <stddef.h>

#include "proto/openai.h"

#define PERSONA_ID_MAX 33

struct persona {
	char		 id[PERSONA_ID_MAX];	/* file name without .json */
	char		*file;			/* path, for messages */
	char		*name;
	char		*mode;
	char		*voice;			/* NULL: server default */
	char		*instructions;
	char		*greeting;		/* NULL: none */
	double		 temperature;		/* < 0 unset */
	double		 speed;			/* < 0 unset */
	int		 max_output_tokens;	/* 0: inf */
	struct oa_vad	 vad;
	char		*transcription_model;
	char		*transcription_language;
	char		*transcription_prompt;
	char		*noise_reduction;
	char		*tools_json;		/* normalised JSON array, NULL none */
	char		**tool_names;
	char		**tool_sensitive;	/* per tool ",a,b," or NULL */
	size_t		 ntools;
	char		*tool_choice;
};

struct persona_set {
	struct persona	*v;
	size_t		 n;
};

/*
 * Load every *.json file in dir.  Returns 0, or the number of problems,
 * written one per line into err as "file: field: problem".  Warnings
 * (fields the dialect cannot honour, e.g. temperature with GA) go to warn,
 * one per line, and are not errors.  On error *ps is left empty.
 */
int  persona_set_load(struct persona_set *ps, const char *dir,
    enum oa_dialect dialect, char *err, size_t errlen, char *warn,
    size_t warnlen);
/* Load one file (used by the loader and the tests). */
int  persona_load_file(struct persona *p, const char *path,
    enum oa_dialect dialect, char *err, size_t errlen, char *warn,
    size_t warnlen);
void persona_set_free(struct persona_set *ps);
void persona_free(struct persona *p);
const struct persona *persona_find(const struct persona_set *ps, const char *id);
/* Whether the persona marks argument field of its tool as sensitive. */
int  persona_field_sensitive(const struct persona *p, const char *tool,
    const char *field);
/* The session configuration for a persona (pointers into p). */
void persona_session_cfg(const struct persona *p, struct oa_session_cfg *cfg);

#endif
