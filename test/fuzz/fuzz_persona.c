/*
 * fuzz_persona.c — personas/persona.c: one persona file.
 *
 * Input: a whole persona file, loaded with persona_load_file() from a path
 * ending in "fuzz.json" (see fuzz_file() in fuzz.h), in the GA or the beta
 * dialect, with report buffers whose size depends on the input's length.
 * Checked:
 *  - problems and warnings are NUL-terminated within their buffers, one
 *    line each, no more lines than problems;
 *  - a refused file leaves the persona empty (nothing to free);
 *  - a persona that loads holds what the format promises (id, non-blank
 *    instructions, a known voice, values in range, tools as a JSON array
 *    with one name per tool) and its session.update builds, in both
 *    dialects: a persona that passes `voxrelay -t` never fails a call;
 *  - persona_free() frees it all (LeakSanitizer).
 */
#include "test/fuzz/fuzz.h"

#include <jansson.h>

#include "personas/persona.h"

FUZZ_TARGET("persona");

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void
check_persona(const struct persona *p, const char *path)
{
	static const char *const voices[] = {
		"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer",
		"verse", "marin", "cedar",
	};
	struct oa_session_cfg cfg;
	struct buf out;
	json_t *tools;
	size_t i;
	int found;

	FUZZ_ASSERT(strcmp(p->id, "fuzz") == 0);
	FUZZ_ASSERT(p->file != NULL && strcmp(p->file, path) == 0);
	FUZZ_ASSERT(p->instructions != NULL);
	FUZZ_ASSERT(strspn(p->instructions, " \t\r\n") <
	    strlen(p->instructions));
	if (p->voice != NULL) {
		for (i = 0, found = 0; i < sizeof(voices) / sizeof(voices[0]);
		    i++)
			found |= strcmp(p->voice, voices[i]) == 0;
		FUZZ_ASSERT(found);
	}
	FUZZ_ASSERT(p->temperature == -1 ||
	    (p->temperature >= 0.6 && p->temperature <= 1.2));
	FUZZ_ASSERT(p->speed == -1 || (p->speed >= 0.25 && p->speed <= 1.5));
	FUZZ_ASSERT(p->max_output_tokens >= 0 && p->max_output_tokens <= 4096);
	FUZZ_ASSERT(memchr(p->vad.type, '\0', sizeof(p->vad.type)) != NULL);
	FUZZ_ASSERT(memchr(p->vad.eagerness, '\0',
	    sizeof(p->vad.eagerness)) != NULL);
	if (p->tools_json != NULL) {
		tools = json_loads(p->tools_json, 0, NULL);
		FUZZ_ASSERT(json_is_array(tools));
		FUZZ_ASSERT(json_array_size(tools) == p->ntools);
		json_decref(tools);
	} else
		FUZZ_ASSERT(p->ntools == 0);
	for (i = 0; i < p->ntools; i++)
		FUZZ_ASSERT(p->tool_names[i] != NULL);

	persona_session_cfg(p, &cfg);
	for (int d = OA_GA; d <= OA_BETA; d++) {
		buf_init(&out, 0);
		FUZZ_ASSERT(oa_build_session_update(&out, (enum oa_dialect)d,
		    &cfg) == 0);
		buf_free(&out);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t lens[] = { 8192, 0, 1, 64, 300 };
	const char *path = fuzz_file("fuzz.json", data, size);
	size_t errlen = lens[size % 5], warnlen = lens[(size / 5) % 5];
	char *err = errlen > 0 ? malloc(errlen) : NULL;
	char *warn = warnlen > 0 ? malloc(warnlen) : NULL;
	struct persona p;
	int rc;

	if ((errlen > 0 && err == NULL) || (warnlen > 0 && warn == NULL))
		abort();
	rc = persona_load_file(&p, path, size & 1 ? OA_BETA : OA_GA, err,
	    errlen, warn, warnlen);
	FUZZ_ASSERT(rc >= 0);
	if (err != NULL) {
		FUZZ_ASSERT(memchr(err, '\0', errlen) != NULL);
		FUZZ_ASSERT(count_lines(err) <= (size_t)rc);
		FUZZ_ASSERT(rc > 0 || err[0] == '\0');
	}
	if (warn != NULL)
		FUZZ_ASSERT(memchr(warn, '\0', warnlen) != NULL);
	if (rc == 0) {
		check_persona(&p, path);
		persona_free(&p);
	} else
		FUZZ_ASSERT(p.instructions == NULL && p.file == NULL &&
		    p.tools_json == NULL && p.tool_names == NULL);
	free(err);
	free(warn);
	return 0;
}
