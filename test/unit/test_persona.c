/*
 * test_persona.c — persona files: loading, validation messages, the
 * session configuration they give (persona.h, protocols.md §8.3, §8.4).
 *
 * Paths are relative to the source tree: run test_unit from there.
 */
#include "test/unit/test.h"
#include "personas/intent.h"
#include "personas/persona.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>

#define BAD_DIR		"test/data/personas/bad"
#define GOOD_DIR	"test/data/personas/good"
#define DEFAULT_FILE	"personas/default.json"

static char err[16384], warn[4096];

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ASSERT_NOT_NULL(f);
	ASSERT_EQ(fputs(text, f) >= 0, 1);
	ASSERT_EQ(fclose(f), 0);
}

/* A fresh directory under the test's scratch directory. */
static const char *
subdir(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", test_tmpdir(), name);
	ASSERT_EQ(mkdir(path, 0700), 0);
	return path;
}

/* Load text as dir/name in dialect d; returns the loader's result. */
static int
load_text(struct persona *p, const char *name, const char *text,
    enum oa_dialect d)
{
	char path[512];

	write_file(test_tmpdir(), name, text);
	snprintf(path, sizeof(path), "%s/%s", test_tmpdir(), name);
	return persona_load_file(p, path, d, err, sizeof(err), warn,
	    sizeof(warn));
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

#define ASSERT_HAS(hay, needle) do {					\
	if (strstr((hay), (needle)) == NULL)				\
		TEST_FAIL_("\"%s\" not found in:\n%s", (needle), (hay)); \
} while (0)

/* The default persona ------------------------------------------------ */

static void
check_default(const struct persona *p)
{
	ASSERT_STR_EQ(p->id, "default");
	ASSERT_STR_EQ(p->file, DEFAULT_FILE);
	ASSERT_NOT_NULL(p->name);
	ASSERT_STR_EQ(p->voice, "marin");
	ASSERT_NOT_NULL(p->instructions);
	ASSERT_NOT_NULL(strchr(p->instructions, '\n'));
	ASSERT_GT(strlen(p->instructions), 500);
	ASSERT_NOT_NULL(p->greeting);
	ASSERT_LT(p->temperature, 0);
	ASSERT_LT(p->speed, 0);
	ASSERT_EQ(p->max_output_tokens, 0);
	ASSERT_STR_EQ(p->vad.type, "server_vad");
	ASSERT(fabs(p->vad.threshold - 0.5) < 1e-9);
	ASSERT_EQ(p->vad.prefix_padding_ms, 300);
	ASSERT_EQ(p->vad.silence_duration_ms, 500);
	ASSERT_EQ(p->vad.create_response, 1);
	ASSERT_EQ(p->vad.interrupt_response, 1);
	ASSERT_EQ(p->vad.idle_timeout_ms, -1);
	ASSERT_STR_EQ(p->vad.eagerness, "");
	ASSERT_STR_EQ(p->transcription_model, "gpt-4o-mini-transcribe");
	ASSERT_STR_EQ(p->transcription_language, "en");
	ASSERT_NULL(p->transcription_prompt);
	ASSERT_STR_EQ(p->noise_reduction, "near_field");
	ASSERT_NULL(p->tools_json);
	ASSERT_EQ(p->ntools, 0);
	ASSERT_NULL(p->tool_choice);
}

TEST(persona_default_loads_ga)
{
	struct persona p;

	ASSERT_EQ(persona_load_file(&p, DEFAULT_FILE, OA_GA, err, sizeof(err),
	    warn, sizeof(warn)), 0);
	ASSERT_STR_EQ(err, "");
	ASSERT_STR_EQ(warn, "");
	check_default(&p);
	persona_free(&p);
	ASSERT_NULL(p.instructions);
}

TEST(persona_default_loads_beta)
{
	struct persona p;

	ASSERT_EQ(persona_load_file(&p, DEFAULT_FILE, OA_BETA, err,
	    sizeof(err), warn, sizeof(warn)), 0);
	ASSERT_STR_EQ(err, "");
	/* marin is a GA voice: a warning, not an error */
	ASSERT_HAS(warn, DEFAULT_FILE ": voice: marin may not be available");
	ASSERT_EQ(count_lines(warn), 1);
	check_default(&p);
	persona_free(&p);
}

/* Bad files: test/data/personas/bad/<case>.json + <case>.expected ------- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

TEST(persona_bad_files)
{
	char *names[256], path[512], line[512], want[1100];
	struct persona p;
	struct dirent *de;
	size_t n = 0, i, len;
	DIR *d;
	FILE *f;
	int rc, nwant;

	d = opendir(BAD_DIR);
	ASSERT_NOT_NULL(d);
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0) {
			ASSERT_LT(n, sizeof(names) / sizeof(names[0]));
			names[n] = strndup(de->d_name, len - 5);
			ASSERT_NOT_NULL(names[n]);
			n++;
		}
	}
	closedir(d);
	ASSERT_GE(n, 40);
	qsort(names, n, sizeof(names[0]), cmp_str);

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), BAD_DIR "/%s.json", names[i]);
		memset(&p, 0x5a, sizeof(p));
		rc = persona_load_file(&p, path, OA_GA, err, sizeof(err), warn,
		    sizeof(warn));
		if (rc <= 0)
			TEST_FAIL_("%s: accepted", path);
		/* a failed load leaves the persona empty */
		ASSERT_NULL(p.instructions);
		ASSERT_NULL(p.file);
		ASSERT_EQ(p.ntools, 0);

		snprintf(line, sizeof(line), BAD_DIR "/%s.expected", names[i]);
		f = fopen(line, "r");
		if (f == NULL)
			TEST_FAIL_("%s: no expected file", line);
		nwant = 0;
		while (fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0] == '\0')
				continue;
			snprintf(want, sizeof(want), "%s: %s", path, line);
			ASSERT_HAS(err, want);
			nwant++;
		}
		fclose(f);
		if (rc != nwant || count_lines(err) != nwant)
			TEST_FAIL_("%s: %d problems, %d lines, want %d:\n%s",
			    path, rc, count_lines(err), nwant, err);
		free(names[i]);
	}
}

/* Warnings: what one dialect cannot honour ------------------------------ */

TEST(persona_temperature_ga_kept_quietly)
{
	static const char text[] =
	    "{\"instructions\": \"Be brief.\", \"temperature\": 0.8}";
	struct oa_session_cfg cfg;
	struct persona p;
	struct buf b;
	json_t *j;

	ASSERT_EQ(load_text(&p, "warm.json", text, OA_GA), 0);
	ASSERT_STR_EQ(err, "");
	/* the beta dialect's setting: no warning under GA */
	ASSERT_STR_EQ(warn, "");
	ASSERT(fabs(p.temperature - 0.8) < 1e-9);

	/* kept in the configuration, never sent by the GA builder */
	persona_session_cfg(&p, &cfg);
	ASSERT(fabs(cfg.temperature - 0.8) < 1e-9);
	buf_init(&b, 0);
	ASSERT_EQ(oa_build_session_update(&b, OA_GA, &cfg), 0);
	ASSERT_NULL(memmem(buf_head(&b), buf_pending(&b), "temperature", 11));
	buf_consume(&b, buf_pending(&b));
	ASSERT_EQ(oa_build_session_update(&b, OA_BETA, &cfg), 0);
	j = json_loadb(buf_head(&b), buf_pending(&b), 0, NULL);
	ASSERT_NOT_NULL(j);
	ASSERT(fabs(json_number_value(json_object_get(json_object_get(j,
	    "session"), "temperature")) - 0.8) < 1e-9);
	json_decref(j);
	buf_free(&b);
	persona_free(&p);

	/* beta takes it silently */
	ASSERT_EQ(load_text(&p, "warm.json", text, OA_BETA), 0);
	ASSERT_STR_EQ(warn, "");
	persona_free(&p);
}

TEST(persona_beta_warnings)
{
	static const char text[] =
	    "{\"instructions\": \"Be brief.\", \"voice\": \"cedar\","
	    "\"turn_detection\": {\"type\": \"server_vad\","
	    "\"idle_timeout_ms\": 6000}}";
	struct persona p;

	ASSERT_EQ(load_text(&p, "idle.json", text, OA_BETA), 0);
	ASSERT_STR_EQ(err, "");
	ASSERT_HAS(warn, "/idle.json: voice: cedar may not be available");
	ASSERT_HAS(warn, "/idle.json: turn_detection.idle_timeout_ms: "
	    "idle_timeout_ms is not supported by the beta dialect; not sent");
	ASSERT_EQ(count_lines(warn), 2);
	ASSERT_EQ(p.vad.idle_timeout_ms, 6000);
	persona_free(&p);

	ASSERT_EQ(load_text(&p, "idle.json", text, OA_GA), 0);
	ASSERT_STR_EQ(warn, "");
	ASSERT_EQ(p.vad.idle_timeout_ms, 6000);
	persona_free(&p);
}

/* Field handling ------------------------------------------------------ */

TEST(persona_fields_and_defaults)
{
	struct persona p;

	ASSERT_EQ(load_text(&p, "bare.json", "{\"instructions\": \"Hi.\"}",
	    OA_GA), 0);
	ASSERT_STR_EQ(p.id, "bare");
	ASSERT_STR_EQ(p.instructions, "Hi.");
	ASSERT_NULL(p.name);
	ASSERT_NULL(p.mode);
	ASSERT_NULL(p.voice);
	ASSERT_NULL(p.greeting);
	ASSERT_LT(p.temperature, 0);
	ASSERT_LT(p.speed, 0);
	ASSERT_EQ(p.max_output_tokens, 0);
	/* turn_detection left out: the server's default */
	ASSERT_STR_EQ(p.vad.type, "");
	ASSERT_LT(p.vad.threshold, 0);
	ASSERT_EQ(p.vad.prefix_padding_ms, -1);
	ASSERT_EQ(p.vad.silence_duration_ms, -1);
	ASSERT_EQ(p.vad.create_response, -1);
	ASSERT_EQ(p.vad.interrupt_response, -1);
	ASSERT_EQ(p.vad.idle_timeout_ms, -1);
	ASSERT_NULL(p.transcription_model);
	ASSERT_NULL(p.noise_reduction);
	ASSERT_NULL(p.tools_json);
	ASSERT_NULL(p.tool_choice);
	persona_free(&p);

	ASSERT_EQ(load_text(&p, "nulls.json", "{\"instructions\": [\"a\", "
	    "\"\", \"b\"], \"greeting\": [\"Say hi.\", \"Ask why.\"], "
	    "\"turn_detection\": null, \"transcription\": null, "
	    "\"noise_reduction\": null, \"tools\": [], "
	    "\"max_output_tokens\": \"inf\", \"speed\": 0.25, "
	    "\"tool_choice\": \"none\"}", OA_GA), 0);
	ASSERT_STR_EQ(p.instructions, "a\n\nb");
	ASSERT_STR_EQ(p.greeting, "Say hi.\nAsk why.");
	ASSERT_STR_EQ(p.vad.type, "none");
	ASSERT_NULL(p.transcription_model);
	ASSERT_NULL(p.noise_reduction);
	ASSERT_NULL(p.tools_json);
	ASSERT_EQ(p.ntools, 0);
	ASSERT_EQ(p.max_output_tokens, 0);
	ASSERT(fabs(p.speed - 0.25) < 1e-9);
	ASSERT_STR_EQ(p.tool_choice, "none");
	persona_free(&p);

	/* the edges of each range are inside it */
	ASSERT_EQ(load_text(&p, "edges.json", "{\"instructions\": \"x\", "
	    "\"temperature\": 1.2, \"speed\": 1.5, \"max_output_tokens\": 1, "
	    "\"turn_detection\": {\"type\": \"server_vad\", \"threshold\": 0, "
	    "\"prefix_padding_ms\": 5000, \"silence_duration_ms\": 10000, "
	    "\"idle_timeout_ms\": 30000, \"create_response\": false, "
	    "\"interrupt_response\": false}}", OA_BETA), 0);
	ASSERT_EQ(p.max_output_tokens, 1);
	ASSERT_EQ(p.vad.prefix_padding_ms, 5000);
	ASSERT_EQ(p.vad.silence_duration_ms, 10000);
	ASSERT_EQ(p.vad.idle_timeout_ms, 30000);
	ASSERT_EQ(p.vad.create_response, 0);
	ASSERT_EQ(p.vad.interrupt_response, 0);
	ASSERT(p.vad.threshold == 0);
	persona_free(&p);

	ASSERT_EQ(load_text(&p, "sem.json", "{\"instructions\": \"x\", "
	    "\"turn_detection\": {\"type\": \"semantic_vad\", "
	    "\"eagerness\": \"medium\"}, \"turn_detection\": null}", OA_GA), 1);
	ASSERT_HAS(err, "duplicate object key");
	ASSERT_EQ(load_text(&p, "sem.json", "{\"instructions\": \"x\", "
	    "\"turn_detection\": {\"type\": \"semantic_vad\", "
	    "\"eagerness\": \"medium\", \"idle_timeout_ms\": null}}", OA_GA),
	    1);
	ASSERT_HAS(err, "turn_detection.idle_timeout_ms: only for server_vad");
	ASSERT_EQ(load_text(&p, "sem.json", "{\"instructions\": \"x\", "
	    "\"turn_detection\": {\"type\": \"semantic_vad\", "
	    "\"eagerness\": \"medium\"}}", OA_GA), 0);
	ASSERT_STR_EQ(p.vad.type, "semantic_vad");
	ASSERT_STR_EQ(p.vad.eagerness, "medium");
	persona_free(&p);
}

TEST(persona_tools_normalised)
{
	struct persona p;
	json_t *j, *t;

	ASSERT_EQ(persona_load_file(&p, GOOD_DIR "/intake.json", OA_GA, err,
	    sizeof(err), warn, sizeof(warn)), 0);
	ASSERT_EQ(p.ntools, 2);
	ASSERT_STR_EQ(p.tool_names[0], "save_callback");
	ASSERT_STR_EQ(p.tool_names[1], "end_call");
	ASSERT_STR_EQ(p.tool_choice, "auto");
	j = json_loads(p.tools_json, 0, NULL);
	ASSERT_NOT_NULL(j);
	ASSERT_EQ(json_array_size(j), 2);

	t = json_array_get(j, 0);
	ASSERT_EQ(json_object_size(t), 4);
	ASSERT_STR_EQ(json_string_value(json_object_get(t, "type")),
	    "function");
	ASSERT_STR_EQ(json_string_value(json_object_get(t, "name")),
	    "save_callback");
	ASSERT_STR_EQ(json_string_value(json_object_get(t, "description")),
	    "Save the caller's details for a callback.");
	ASSERT_EQ(json_array_size(json_object_get(json_object_get(t,
	    "parameters"), "required")), 2);

	/* no parameters given: an empty object schema */
	t = json_array_get(j, 1);
	ASSERT_EQ(json_object_size(t), 4);
	ASSERT_STR_EQ(json_string_value(json_object_get(t, "name")),
	    "end_call");
	ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(t,
	    "parameters"), "type")), "object");
	ASSERT(json_is_object(json_object_get(json_object_get(t,
	    "parameters"), "properties")));
	json_decref(j);
	persona_free(&p);
}

TEST(persona_tool_problems)
{
	struct persona p;

	ASSERT_EQ(load_text(&p, "dup.json", "{\"instructions\": \"x\", "
	    "\"tools\": [{\"name\": \"a\", \"description\": \"A.\"}, "
	    "{\"name\": \"a\", \"description\": \"A again.\"}], "
	    "\"tool_choice\": \"a\"}", OA_GA), 1);
	ASSERT_HAS(err, "/dup.json: tools[1].name: \"a\" is a duplicate of "
	    "tools[0].name");
	/* with the tools broken, tool_choice is not blamed as well */
	ASSERT_EQ(count_lines(err), 1);

	ASSERT_EQ(load_text(&p, "missing.json", "{\"instructions\": \"x\", "
	    "\"tools\": [{\"name\": \"lookup\", \"description\": \"L.\"}], "
	    "\"tool_choice\": \"cancel_order\"}", OA_GA), 1);
	ASSERT_HAS(err, "/missing.json: tool_choice: \"cancel_order\" is not "
	    "auto, none, required or the name of one of the persona's tools");

	ASSERT_EQ(load_text(&p, "req.json", "{\"instructions\": \"x\", "
	    "\"tools\": [{\"name\": \"lookup\", \"description\": \"L.\"}], "
	    "\"tool_choice\": \"required\"}", OA_GA), 0);
	ASSERT_STR_EQ(p.tool_choice, "required");
	persona_free(&p);

	/* 64 characters is the longest name */
	ASSERT_EQ(load_text(&p, "long.json", "{\"instructions\": \"x\", "
	    "\"tools\": [{\"name\": \"a123456789b123456789c123456789d123456789"
	    "e123456789f123456789g123\", \"description\": \"L.\"}]}", OA_GA), 0);
	ASSERT_EQ(strlen(p.tool_names[0]), 64);
	persona_free(&p);
	ASSERT_EQ(load_text(&p, "long.json", "{\"instructions\": \"x\", "
	    "\"tools\": [{\"name\": \"a123456789b123456789c123456789d123456789"
	    "e123456789f123456789g1234\", \"description\": \"L.\"}]}", OA_GA),
	    1);
	ASSERT_HAS(err, "tools[0].name: ");
}

TEST(persona_id_rules)
{
	struct persona p;

	ASSERT_EQ(load_text(&p, "abcdefghij0123456789ABCDEFGHIJ_-.json",
	    "{\"instructions\": \"x\"}", OA_GA), 0);
	ASSERT_STR_EQ(p.id, "abcdefghij0123456789ABCDEFGHIJ_-");
	persona_free(&p);
	ASSERT_EQ(load_text(&p, "abcdefghij0123456789ABCDEFGHIJ_-x.json",
	    "{\"instructions\": \"x\"}", OA_GA), 1);
	ASSERT_HAS(err, "x.json: id: \"abcdefghij0123456789ABCDEFGHIJ_-x\" "
	    "(the file name without .json) must be 1-32 characters");
	ASSERT_EQ(load_text(&p, ".json", "{\"instructions\": \"x\"}", OA_GA),
	    1);
	ASSERT_HAS(err, "/.json: id: ");
	ASSERT_EQ(load_text(&p, "persona.txt", "{\"instructions\": \"x\"}",
	    OA_GA), 1);
	ASSERT_HAS(err, "/persona.txt: id: the file name must end in .json");
}

TEST(persona_file_problems)
{
	struct persona p;
	char path[512];
	char *big;
	size_t n = 1024 * 1024 + 10;

	ASSERT_EQ(persona_load_file(&p, "/nonexistent/x.json", OA_GA, err,
	    sizeof(err), warn, sizeof(warn)), 1);
	ASSERT_HAS(err, "/nonexistent/x.json: file: cannot open: No such file");

	snprintf(path, sizeof(path), "%s/dir.json", test_tmpdir());
	ASSERT_EQ(mkdir(path, 0700), 0);
	ASSERT_EQ(persona_load_file(&p, path, OA_GA, err, sizeof(err), warn,
	    sizeof(warn)), 1);
	ASSERT_HAS(err, "dir.json: file: ");

	ASSERT_EQ(load_text(&p, "empty.json", "", OA_GA), 1);
	ASSERT_HAS(err, "/empty.json: line ");

	big = malloc(n + 1);
	ASSERT_NOT_NULL(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	ASSERT_EQ(load_text(&p, "big.json", big, OA_GA), 1);
	ASSERT_HAS(err, "/big.json: file: larger than");
	free(big);

	/* a NUL inside a string is refused by the JSON reader */
	ASSERT_EQ(load_text(&p, "nul.json",
	    "{\"instructions\": \"a\\u0000b\"}", OA_GA), 1);
}

TEST(persona_report_buffers)
{
	static const char text[] = "{\"a1\": 1, \"a2\": 2, \"a3\": 3, "
	    "\"a4\": 4, \"a5\": 5, \"a6\": 6, \"instructions\": \"x\"}";
	struct persona p;
	char small[120], path[512];
	size_t len;

	write_file(test_tmpdir(), "six.json", text);
	snprintf(path, sizeof(path), "%s/six.json", test_tmpdir());
	memset(small, 'Z', sizeof(small));
	ASSERT_EQ(persona_load_file(&p, path, OA_GA, small, sizeof(small),
	    NULL, 0), 6);
	len = strlen(small);
	ASSERT_LT(len, sizeof(small));
	/* whole lines only, then a marker */
	ASSERT_EQ(small[len - 1], '\n');
	ASSERT_NOT_NULL(strstr(small, "...\n"));
	ASSERT_HAS(small, ": a1: unknown field\n");

	ASSERT_EQ(persona_load_file(&p, path, OA_GA, NULL, 0, NULL, 0), 6);
	ASSERT_EQ(persona_load_file(&p, path, OA_GA, small, 1, warn, 1), 6);
	ASSERT_STR_EQ(small, "");
}

/* Sets ------------------------------------------------------------------ */

TEST(persona_set_load_good_dir)
{
	struct persona_set ps;
	const struct persona *p;

	ASSERT_EQ(persona_set_load(&ps, GOOD_DIR, OA_GA, err, sizeof(err),
	    warn, sizeof(warn)), 0);
	ASSERT_STR_EQ(err, "");
	ASSERT_EQ(ps.n, 3);
	/* sorted by file name */
	ASSERT_STR_EQ(ps.v[0].id, "front-desk");
	ASSERT_STR_EQ(ps.v[1].id, "intake");
	ASSERT_STR_EQ(ps.v[2].id, "small_talk");
	ASSERT_STR_EQ(ps.v[1].file, GOOD_DIR "/intake.json");
	/* small_talk has a temperature: kept, no warning under GA */
	ASSERT_STR_EQ(warn, "");
	ASSERT(persona_find(&ps, "small_talk")->temperature > 0);

	p = persona_find(&ps, "intake");
	ASSERT_NOT_NULL(p);
	ASSERT_STR_EQ(p->mode, "intake");
	ASSERT_STR_EQ(p->vad.type, "semantic_vad");
	ASSERT_STR_EQ(p->vad.eagerness, "low");
	ASSERT_STR_EQ(p->transcription_prompt,
	    "Dental terms: crown, filling, hygienist.");
	ASSERT_STR_EQ(p->noise_reduction, "far_field");
	p = persona_find(&ps, "front-desk");
	ASSERT_NOT_NULL(p);
	ASSERT_STR_EQ(p->tool_choice, "check_rooms");
	ASSERT_EQ(p->vad.idle_timeout_ms, 8000);
	p = persona_find(&ps, "small_talk");
	ASSERT_NOT_NULL(p);
	ASSERT_STR_EQ(p->vad.type, "none");
	ASSERT_NULL(persona_find(&ps, "default"));
	ASSERT_NULL(persona_find(&ps, "intake.json"));
	ASSERT_NULL(persona_find(&ps, NULL));
	persona_set_free(&ps);
	ASSERT_EQ(ps.n, 0);
	ASSERT_NULL(ps.v);
	persona_set_free(&ps);

	/* a trailing slash changes nothing */
	ASSERT_EQ(persona_set_load(&ps, GOOD_DIR "/", OA_BETA, err,
	    sizeof(err), warn, sizeof(warn)), 0);
	ASSERT_EQ(ps.n, 3);
	ASSERT_STR_EQ(ps.v[0].file, GOOD_DIR "/front-desk.json");
	/* beta: the idle timeout of front-desk is not sent */
	ASSERT_HAS(warn, "front-desk.json: turn_detection.idle_timeout_ms: ");
	persona_set_free(&ps);
}

TEST(persona_set_load_skips_other_files)
{
	struct persona_set ps;
	const char *dir = subdir("mixed");

	write_file(dir, "b.json", "{\"instructions\": \"B\"}");
	write_file(dir, "a.json", "{\"instructions\": \"A\"}");
	write_file(dir, "c.json", "{\"instructions\": \"C\"}");
	write_file(dir, "notes.txt", "not a persona");
	write_file(dir, ".#a.json", "editor lock file");
	write_file(dir, "d.json~", "backup");
	ASSERT_EQ(persona_set_load(&ps, dir, OA_GA, err, sizeof(err), warn,
	    sizeof(warn)), 0);
	ASSERT_EQ(ps.n, 3);
	ASSERT_STR_EQ(ps.v[0].instructions, "A");
	ASSERT_STR_EQ(ps.v[1].instructions, "B");
	ASSERT_STR_EQ(ps.v[2].instructions, "C");
	ASSERT_STR_EQ(persona_find(&ps, "b")->instructions, "B");
	persona_set_free(&ps);
}

TEST(persona_set_load_reports_every_file)
{
	struct persona_set ps = { (struct persona *)1, 99 };
	const char *dir = subdir("broken");
	char want[768];

	write_file(dir, "a_good.json", "{\"instructions\": \"fine\"}");
	write_file(dir, "b_bad.json", "{\"instructions\": \"x\", "
	    "\"turn_detection\": {\"type\": \"server_vad\", "
	    "\"threshold\": 1.7}}");
	write_file(dir, "c_good.json", "{\"instructions\": \"fine too\"}");
	write_file(dir, "d_bad.json", "{\"instruction\": \"typo\", "
	    "\"temperature\": 0.7}");
	ASSERT_EQ(persona_set_load(&ps, dir, OA_GA, err, sizeof(err), warn,
	    sizeof(warn)), 3);
	ASSERT_EQ(ps.n, 0);
	ASSERT_NULL(ps.v);
	snprintf(want, sizeof(want), "%s/b_bad.json: turn_detection.threshold: "
	    "1.7 is out of range 0..1\n", dir);
	ASSERT_HAS(err, want);
	snprintf(want, sizeof(want), "%s/d_bad.json: instruction: unknown "
	    "field\n", dir);
	ASSERT_HAS(err, want);
	snprintf(want, sizeof(want), "%s/d_bad.json: instructions: missing",
	    dir);
	ASSERT_HAS(err, want);
	ASSERT_EQ(count_lines(err), 3);
	/* a temperature under GA is not a warning */
	ASSERT_NULL(strstr(warn, "temperature"));
}

TEST(persona_set_load_empty_or_missing_dir)
{
	struct persona_set ps;
	const char *dir = subdir("empty");
	char want[768];

	write_file(dir, "README", "no personas here");
	ASSERT_EQ(persona_set_load(&ps, dir, OA_GA, err, sizeof(err), warn,
	    sizeof(warn)), 1);
	snprintf(want, sizeof(want), "%s: directory: no *.json persona files",
	    dir);
	ASSERT_HAS(err, want);
	ASSERT_EQ(ps.n, 0);
	ASSERT_NULL(ps.v);

	ASSERT_EQ(persona_set_load(&ps, "/nonexistent/personas", OA_GA, err,
	    sizeof(err), warn, sizeof(warn)), 1);
	ASSERT_HAS(err, "/nonexistent/personas: directory: cannot read: No "
	    "such file");
	ASSERT_EQ(ps.n, 0);
}

TEST(persona_set_load_shipped_dir)
{
	struct persona_set ps;

	ASSERT_EQ(persona_set_load(&ps, "personas", OA_GA, err, sizeof(err),
	    warn, sizeof(warn)), 0);
	ASSERT_NOT_NULL(persona_find(&ps, "default"));
	persona_set_free(&ps);
}

/* Persona to session.update ------------------------------------------- */

static json_t *
build(const struct oa_session_cfg *cfg, enum oa_dialect d)
{
	struct buf b;
	json_t *j;

	buf_init(&b, 0);
	ASSERT_EQ(oa_build_session_update(&b, d, cfg), 0);
	j = json_loadb(buf_head(&b), buf_pending(&b), 0, NULL);
	ASSERT_NOT_NULL(j);
	buf_free(&b);
	return j;
}

static const char *
sget(json_t *j, const char *a, const char *b, const char *c, const char *d)
{
	json_t *v = json_object_get(j, a);

	if (b != NULL)
		v = json_object_get(v, b);
	if (c != NULL)
		v = json_object_get(v, c);
	if (d != NULL)
		v = json_object_get(v, d);
	return json_string_value(v);
}

TEST(persona_session_round_trip)
{
	struct oa_session_cfg cfg;
	struct persona p;
	json_t *ga, *beta, *s, *td;

	ASSERT_EQ(persona_load_file(&p, DEFAULT_FILE, OA_GA, err, sizeof(err),
	    warn, sizeof(warn)), 0);
	persona_session_cfg(&p, &cfg);
	ASSERT(cfg.instructions == p.instructions);
	ASSERT(cfg.voice == p.voice);
	ASSERT(cfg.tools_json == NULL);
	ASSERT_EQ(cfg.max_output_tokens, 0);

	ga = build(&cfg, OA_GA);
	s = json_object_get(ga, "session");
	ASSERT_STR_EQ(sget(ga, "type", NULL, NULL, NULL), "session.update");
	ASSERT_STR_EQ(sget(s, "type", NULL, NULL, NULL), "realtime");
	ASSERT_STR_EQ(sget(s, "instructions", NULL, NULL, NULL),
	    p.instructions);
	ASSERT_STR_EQ(sget(s, "audio", "output", "voice", NULL), "marin");
	ASSERT_STR_EQ(sget(s, "audio", "input", "format", "type"),
	    "audio/pcmu");
	ASSERT_STR_EQ(sget(s, "audio", "output", "format", "type"),
	    "audio/pcmu");
	ASSERT_STR_EQ(sget(s, "audio", "input", "noise_reduction", "type"),
	    "near_field");
	ASSERT_STR_EQ(sget(s, "audio", "input", "transcription", "model"),
	    "gpt-4o-mini-transcribe");
	ASSERT_STR_EQ(sget(s, "audio", "input", "transcription", "language"),
	    "en");
	td = json_object_get(json_object_get(json_object_get(s, "audio"),
	    "input"), "turn_detection");
	ASSERT_EQ(json_object_size(td), 6);
	ASSERT_STR_EQ(sget(td, "type", NULL, NULL, NULL), "server_vad");
	ASSERT(fabs(json_number_value(json_object_get(td, "threshold")) -
	    0.5) < 1e-9);
	ASSERT_EQ(json_integer_value(json_object_get(td, "prefix_padding_ms")),
	    300);
	ASSERT_EQ(json_integer_value(json_object_get(td,
	    "silence_duration_ms")), 500);
	ASSERT(json_is_true(json_object_get(td, "create_response")));
	ASSERT(json_is_true(json_object_get(td, "interrupt_response")));
	ASSERT_STR_EQ(sget(s, "max_output_tokens", NULL, NULL, NULL), "inf");
	ASSERT_NULL(json_object_get(s, "tools"));
	ASSERT_NULL(json_object_get(s, "temperature"));

	beta = build(&cfg, OA_BETA);
	s = json_object_get(beta, "session");
	ASSERT_NULL(json_object_get(s, "type"));
	ASSERT_STR_EQ(sget(s, "instructions", NULL, NULL, NULL),
	    p.instructions);
	ASSERT_STR_EQ(sget(s, "voice", NULL, NULL, NULL), "marin");
	ASSERT_STR_EQ(sget(s, "input_audio_format", NULL, NULL, NULL),
	    "g711_ulaw");
	ASSERT_STR_EQ(sget(s, "input_audio_transcription", "model", NULL,
	    NULL), "gpt-4o-mini-transcribe");
	ASSERT_STR_EQ(sget(s, "input_audio_noise_reduction", "type", NULL,
	    NULL), "near_field");
	ASSERT_STR_EQ(sget(s, "turn_detection", "type", NULL, NULL),
	    "server_vad");
	ASSERT_STR_EQ(sget(s, "max_response_output_tokens", NULL, NULL, NULL),
	    "inf");
	json_decref(ga);
	json_decref(beta);
	persona_free(&p);
}

TEST(persona_session_round_trip_tools)
{
	struct oa_session_cfg cfg;
	struct persona_set ps;
	const struct persona *p;
	json_t *j, *s;
	int d;

	ASSERT_EQ(persona_set_load(&ps, GOOD_DIR, OA_GA, err, sizeof(err),
	    warn, sizeof(warn)), 0);
	for (d = OA_GA; d <= OA_BETA; d++) {
		p = persona_find(&ps, "front-desk");
		persona_session_cfg(p, &cfg);
		j = build(&cfg, (enum oa_dialect)d);
		s = json_object_get(j, "session");
		ASSERT_EQ(json_array_size(json_object_get(s, "tools")), 1);
		ASSERT_STR_EQ(json_string_value(json_object_get(
		    json_array_get(json_object_get(s, "tools"), 0), "type")),
		    "function");
		ASSERT_STR_EQ(sget(s, "tool_choice", "type", NULL, NULL),
		    "function");
		ASSERT_STR_EQ(sget(s, "tool_choice", "name", NULL, NULL),
		    "check_rooms");
		json_decref(j);

		p = persona_find(&ps, "intake");
		persona_session_cfg(p, &cfg);
		j = build(&cfg, (enum oa_dialect)d);
		s = json_object_get(j, "session");
		ASSERT_EQ(json_array_size(json_object_get(s, "tools")), 2);
		ASSERT_STR_EQ(sget(s, "tool_choice", NULL, NULL, NULL), "auto");
		if (d == OA_GA) {
			ASSERT_EQ(json_integer_value(json_object_get(s,
			    "max_output_tokens")), 800);
			ASSERT_STR_EQ(sget(s, "audio", "input",
			    "turn_detection", "eagerness"), "low");
		} else {
			ASSERT_EQ(json_integer_value(json_object_get(s,
			    "max_response_output_tokens")), 800);
			ASSERT_STR_EQ(sget(s, "turn_detection", "eagerness",
			    NULL, NULL), "low");
		}
		json_decref(j);

		/* turn_detection null in the file: null on the wire */
		p = persona_find(&ps, "small_talk");
		persona_session_cfg(p, &cfg);
		j = build(&cfg, (enum oa_dialect)d);
		s = json_object_get(j, "session");
		if (d == OA_GA)
			ASSERT(json_is_null(json_object_get(json_object_get(
			    json_object_get(s, "audio"), "input"),
			    "turn_detection")));
		else
			ASSERT(json_is_null(json_object_get(s,
			    "turn_detection")));
		json_decref(j);
	}
	persona_set_free(&ps);
}

/* The shipped personas, every file in personas/ -------------------- */

#define SHIPPED_DIR	"personas"

struct shipped {
	const char	*id;
	const char	*mode;
	const char	*voice;
	const char	*name;		/* a prefix of the name */
	int		 practice;	/* timed: get_remaining_time, end_call */
};

static const struct shipped shipped[] = {
	{ "intake",	 "intake",	 "marin",   "Practice line",   0 },
	{ "sarah",	 "cold_call",	 "ash",	    "Sarah Mitchell",  1 },
	{ "david",	 "cold_call",	 "sage",    "David ",	       1 },
	{ "maria",	 "cold_call",	 "shimmer", "Maria ",	       1 },
	{ "james",	 "cold_call",	 "ballad",  "James ",	       1 },
	{ "lisa",	 "cold_call",	 "ash",	    "Lisa ",	       1 },
	{ "robert",	 "cold_call",	 "verse",   "Robert ",	       1 },
	{ "rachel",	 "interview",	 "coral",   "Rachel Chen",     1 },
	{ "alex",	 "small_talk",	 "shimmer", "Alex ",	       1 },
	{ "hvac",	 "receptionist", "alloy",   "Summit Comfort",  0 },
	{ "dental",	 "front_desk",	 "coral",   "Maple Grove",     0 },
	{ "collections", "collections",	 "cedar",   "Crestview",       0 },
};

#define NSHIPPED (sizeof(shipped) / sizeof(shipped[0]))

/* The number of *.json files in dir, dot files left out. */
static size_t
count_json(const char *dir)
{
	struct dirent *de;
	size_t n = 0, len;
	DIR *d;

	d = opendir(dir);
	ASSERT_NOT_NULL(d);
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] != '.' && len > 5 &&
		    strcmp(de->d_name + len - 5, ".json") == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Each line of a report contains needle. */
static void
assert_each_line_has(const char *report, const char *needle)
{
	const char *line = report, *nl;
	char one[1024];
	size_t len;

	for (; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		ASSERT_NOT_NULL(nl);
		len = (size_t)(nl - line);
		if (len >= sizeof(one))
			len = sizeof(one) - 1;
		memcpy(one, line, len);
		one[len] = '\0';
		if (strstr(one, needle) == NULL)
			TEST_FAIL_("\"%s\" not in warning line:\n%s", needle,
			    one);
	}
}

/* The tool named name in p's tools, as a new reference; fails if absent. */
static json_t *
tool_get(const struct persona *p, const char *name)
{
	json_t *tools, *t, *out = NULL;
	size_t i;

	ASSERT_NOT_NULL(p->tools_json);
	tools = json_loads(p->tools_json, 0, NULL);
	ASSERT_NOT_NULL(tools);
	json_array_foreach(tools, i, t) {
		if (strcmp(json_string_value(json_object_get(t, "name")),
		    name) == 0) {
			out = json_incref(t);
			break;
		}
	}
	json_decref(tools);
	if (out == NULL)
		TEST_FAIL_("%s has no tool %s", p->id, name);
	ASSERT_GT(strlen(json_string_value(json_object_get(out,
	    "description"))), 20);
	return out;
}

/* Is key in the tool's parameters.required? */
static int
tool_requires(json_t *tool, const char *key)
{
	json_t *req = json_object_get(json_object_get(tool, "parameters"),
	    "required"), *v;
	size_t i;

	json_array_foreach(req, i, v)
		if (strcmp(json_string_value(v), key) == 0)
			return 1;
	return 0;
}

static json_t *
tool_prop(json_t *tool, const char *key)
{
	json_t *v = json_object_get(json_object_get(json_object_get(tool,
	    "parameters"), "properties"), key);

	if (v == NULL)
		TEST_FAIL_("tool %s has no parameter %s",
		    json_string_value(json_object_get(tool, "name")), key);
	return v;
}

static void
load_shipped(struct persona_set *ps, enum oa_dialect d)
{
	ASSERT_EQ(persona_set_load(ps, SHIPPED_DIR, d, err, sizeof(err), warn,
	    sizeof(warn)), 0);
	ASSERT_STR_EQ(err, "");
}

TEST(persona_shipped_load_both_dialects)
{
	char path[512];
	struct persona_set ps;
	struct persona p;
	size_t i, n = count_json(SHIPPED_DIR), ntemp = 0;

	/* GA: no warning at all (the temperatures are beta's, kept) */
	load_shipped(&ps, OA_GA);
	ASSERT_EQ(ps.n, n);
	ASSERT_GE(ps.n, NSHIPPED + 1);
	ASSERT_STR_EQ(warn, "");
	for (i = 0; i < ps.n; i++)
		if (ps.v[i].temperature >= 0)
			ntemp++;
	ASSERT_GE(ntemp, 8);
	persona_set_free(&ps);

	/* beta: only the GA voices are warned about */
	load_shipped(&ps, OA_BETA);
	ASSERT_EQ(ps.n, n);
	assert_each_line_has(warn, "may not be available in the beta dialect");
	ASSERT_HAS(warn, SHIPPED_DIR "/intake.json: voice: marin ");
	ASSERT_HAS(warn, SHIPPED_DIR "/collections.json: voice: cedar ");
	persona_set_free(&ps);

	/* one by one, as -t reports them */
	for (i = 0; i < NSHIPPED; i++) {
		snprintf(path, sizeof(path), SHIPPED_DIR "/%s.json",
		    shipped[i].id);
		ASSERT_EQ(persona_load_file(&p, path, OA_GA, err, sizeof(err),
		    warn, sizeof(warn)), 0);
		ASSERT_STR_EQ(p.id, shipped[i].id);
		persona_free(&p);
		ASSERT_EQ(persona_load_file(&p, path, OA_BETA, err,
		    sizeof(err), warn, sizeof(warn)), 0);
		persona_free(&p);
	}
}

TEST(persona_shipped_modes_voices)
{
	struct persona_set ps;
	const struct persona *p;
	size_t i;

	load_shipped(&ps, OA_GA);
	for (i = 0; i < NSHIPPED; i++) {
		p = persona_find(&ps, shipped[i].id);
		if (p == NULL)
			TEST_FAIL_("no persona %s", shipped[i].id);
		ASSERT_STR_EQ(p->mode, shipped[i].mode);
		ASSERT_STR_EQ(p->voice, shipped[i].voice);
		ASSERT_NOT_NULL(p->name);
		if (strncmp(p->name, shipped[i].name,
		    strlen(shipped[i].name)) != 0)
			TEST_FAIL_("%s: name \"%s\"", p->id, p->name);
		/* real instructions, a greeting, what every line needs */
		ASSERT_GT(strlen(p->instructions), 3000);
		ASSERT_NOT_NULL(p->greeting);
		ASSERT_STR_EQ(p->vad.type, "server_vad");
		ASSERT_EQ(p->vad.create_response, 1);
		ASSERT_EQ(p->vad.interrupt_response, 1);
		ASSERT_STR_EQ(p->transcription_model, "gpt-4o-mini-transcribe");
		ASSERT_STR_EQ(p->transcription_language, "en");
		ASSERT_STR_EQ(p->noise_reduction, "near_field");
		ASSERT_STR_EQ(p->tool_choice, "auto");
		ASSERT_GT(p->max_output_tokens, 0);
		if (shipped[i].practice) {
			/* kept for beta, dropped with a warning by GA */
			ASSERT_GE(p->temperature, 0.6);
			ASSERT_LE(p->temperature, 1.2);
		}
	}
	/* the default persona is still there, unchanged in kind */
	p = persona_find(&ps, "default");
	ASSERT_NOT_NULL(p);
	ASSERT_STR_EQ(p->mode, "general");
	/* interview candidates get longer to think */
	p = persona_find(&ps, "rachel");
	ASSERT_GE(p->vad.silence_duration_ms, 700);
	/* the prospects pick up tersely, with their own name */
	ASSERT_HAS(persona_find(&ps, "sarah")->greeting,
	    "\"Sarah Mitchell speaking.\"");
	ASSERT_HAS(persona_find(&ps, "intake")->greeting, "cold call");
	ASSERT_HAS(persona_find(&ps, "intake")->greeting, "job interview");
	ASSERT_HAS(persona_find(&ps, "intake")->greeting, "small talk");
	persona_set_free(&ps);
}

TEST(persona_shipped_intake_tools)
{
	static const char *const modes[] = {
		"cold_call", "interview", "small_talk",
	};
	struct persona_set ps;
	const struct persona *p;
	json_t *t, *e;
	size_t i;

	load_shipped(&ps, OA_GA);
	p = persona_find(&ps, "intake");
	ASSERT_NOT_NULL(p);
	ASSERT_EQ(p->ntools, 3);

	t = tool_get(p, "select_practice_mode");
	ASSERT(tool_requires(t, "mode"));
	ASSERT(!tool_requires(t, "summary"));
	ASSERT_STR_EQ(json_string_value(json_object_get(tool_prop(t, "mode"),
	    "type")), "string");
	ASSERT_STR_EQ(json_string_value(json_object_get(tool_prop(t,
	    "summary"), "type")), "string");
	e = json_object_get(tool_prop(t, "mode"), "enum");
	ASSERT_EQ(json_array_size(e), 3);
	for (i = 0; i < 3; i++) {
		ASSERT_STR_EQ(json_string_value(json_array_get(e, i)),
		    modes[i]);
		/* the names the worker reads back with intent.h */
		ASSERT_STR_EQ(practice_mode_name(practice_mode_parse(modes[i])),
		    modes[i]);
	}
	json_decref(t);

	t = tool_get(p, "get_remaining_time");
	json_decref(t);
	t = tool_get(p, "end_call");
	ASSERT(tool_requires(t, "reason"));
	json_decref(t);

	/* the order of things the worker relies on */
	ASSERT_HAS(p->instructions, "select_practice_mode");
	ASSERT_HAS(p->instructions, "get_remaining_time");
	ASSERT_HAS(p->instructions, "end_call");
	ASSERT_HAS(p->instructions, "connecting you now");
	ASSERT_NOT_NULL(p->transcription_prompt);
	ASSERT_NULL(strstr(p->instructions, "\n\n\n"));
	persona_set_free(&ps);
}

TEST(persona_shipped_practice_tools)
{
	struct persona_set ps;
	const struct persona *p;
	json_t *t;
	size_t i;

	load_shipped(&ps, OA_GA);
	for (i = 0; i < NSHIPPED; i++) {
		if (!shipped[i].practice)
			continue;
		p = persona_find(&ps, shipped[i].id);
		ASSERT_EQ(p->ntools, 2);
		t = tool_get(p, "get_remaining_time");
		/* no arguments */
		ASSERT_EQ(json_object_size(json_object_get(json_object_get(t,
		    "parameters"), "properties")), 0);
		json_decref(t);
		t = tool_get(p, "end_call");
		ASSERT(tool_requires(t, "reason"));
		json_decref(t);
		/* what the worker relies on: time asked, time up, goodbye */
		ASSERT_HAS(p->instructions, "call get_remaining_time");
		ASSERT_HAS(p->instructions, "practice time is over");
		ASSERT_HAS(p->instructions, "ONE short");
		ASSERT_HAS(p->instructions, "then call end_call");
		ASSERT_HAS(p->instructions, "AI");
	}
	persona_set_free(&ps);
}

TEST(persona_shipped_business_lines)
{
	static const char *const booking[] = {
		"name", "phone", "date", "time", "reason",
	};
	struct persona_set ps;
	const struct persona *p;
	json_t *t, *e;
	size_t i;

	load_shipped(&ps, OA_GA);

	/* HVAC: the VAD the customer runs today */
	p = persona_find(&ps, "hvac");
	ASSERT(fabs(p->vad.threshold - 0.5) < 1e-9);
	ASSERT_EQ(p->vad.prefix_padding_ms, 300);
	ASSERT_EQ(p->vad.silence_duration_ms, 500);
	ASSERT_EQ(p->ntools, 2);
	t = tool_get(p, "book_appointment");
	for (i = 0; i < sizeof(booking) / sizeof(booking[0]); i++)
		ASSERT(tool_requires(t, booking[i]));
	ASSERT(tool_requires(t, "address"));
	json_decref(t);
	json_decref(tool_get(p, "end_call"));
	ASSERT_HAS(p->instructions, "call book_appointment");

	/* dental: the same booking, no address */
	p = persona_find(&ps, "dental");
	ASSERT_EQ(p->ntools, 2);
	t = tool_get(p, "book_appointment");
	for (i = 0; i < sizeof(booking) / sizeof(booking[0]); i++)
		ASSERT(tool_requires(t, booking[i]));
	ASSERT(!tool_requires(t, "address"));
	ASSERT_NULL(json_object_get(json_object_get(json_object_get(t,
	    "parameters"), "properties"), "address"));
	json_decref(t);
	json_decref(tool_get(p, "end_call"));

	/* collections: identity first, then an arrangement, or how the
	 * call ended without one (a campaign's outcome) */
	p = persona_find(&ps, "collections");
	ASSERT_EQ(p->ntools, 4);
	t = tool_get(p, "record_call_outcome");
	ASSERT(tool_requires(t, "outcome"));
	ASSERT_EQ(json_array_size(json_object_get(tool_prop(t, "outcome"),
	    "enum")), 3);
	json_decref(t);
	ASSERT_STR_EQ(p->tool_names[0], "verify_identity");
	t = tool_get(p, "verify_identity");
	ASSERT(tool_requires(t, "full_name"));
	(void)tool_prop(t, "date_of_birth");
	(void)tool_prop(t, "account_last4");
	json_decref(t);
	t = tool_get(p, "record_payment_arrangement");
	ASSERT(tool_requires(t, "plan"));
	e = json_object_get(tool_prop(t, "plan"), "enum");
	ASSERT_EQ(json_array_size(e), 3);
	ASSERT_STR_EQ(json_string_value(json_array_get(e, 0)), "pay_in_full");
	ASSERT_STR_EQ(json_string_value(json_array_get(e, 1)), "installments");
	ASSERT_STR_EQ(json_string_value(json_array_get(e, 2)),
	    "hardship_review");
	ASSERT_STR_EQ(json_string_value(json_object_get(tool_prop(t,
	    "amount"), "type")), "number");
	ASSERT_STR_EQ(json_string_value(json_object_get(tool_prop(t,
	    "installments"), "type")), "integer");
	(void)tool_prop(t, "first_payment_date");
	json_decref(t);
	json_decref(tool_get(p, "end_call"));
	ASSERT_HAS(p->instructions, "attempt to collect a debt");
	ASSERT_HAS(p->instructions, "one thousand two hundred forty dollars "
	    "and fifty cents");
	ASSERT_HAS(p->instructions, "four four seven one");
	ASSERT_HAS(p->instructions, "Brightline Utilities");
	persona_set_free(&ps);
}

/* The practice line finds its personas by mode: six prospects, one
 * interviewer, one small-talk colleague. */
TEST(persona_shipped_practice_modes)
{
	static const char *const modes[] = { "cold_call", "interview",
	    "small_talk" };
	static const unsigned want[] = { 6, 1, 1 };
	struct persona_set ps;

	load_shipped(&ps, OA_GA);
	for (size_t m = 0; m < 3; m++) {
		unsigned n = 0;
		for (size_t i = 0; i < ps.n; i++)
			if (ps.v[i].mode != NULL &&
			    strcmp(ps.v[i].mode, modes[m]) == 0)
				n++;
		ASSERT_EQ(n, want[m]);
	}
	persona_set_free(&ps);
}

TEST(persona_shipped_session)
{
	struct oa_session_cfg cfg;
	struct persona_set ps;
	json_t *j, *s;

	/* a prospect: temperature only on the beta wire */
	load_shipped(&ps, OA_GA);
	persona_session_cfg(persona_find(&ps, "sarah"), &cfg);
	j = build(&cfg, OA_GA);
	s = json_object_get(j, "session");
	ASSERT_NULL(json_object_get(s, "temperature"));
	ASSERT_EQ(json_array_size(json_object_get(s, "tools")), 2);
	ASSERT_STR_EQ(sget(s, "audio", "output", "voice", NULL), "ash");
	json_decref(j);
	j = build(&cfg, OA_BETA);
	s = json_object_get(j, "session");
	ASSERT(fabs(json_number_value(json_object_get(s, "temperature")) -
	    0.8) < 1e-9);
	ASSERT_STR_EQ(sget(s, "voice", NULL, NULL, NULL), "ash");
	json_decref(j);

	/* the intake's tool list reaches the wire whole */
	persona_session_cfg(persona_find(&ps, "intake"), &cfg);
	j = build(&cfg, OA_GA);
	s = json_object_get(j, "session");
	ASSERT_EQ(json_array_size(json_object_get(s, "tools")), 3);
	ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(
	    json_object_get(s, "tools"), 0), "name")), "select_practice_mode");
	ASSERT_NULL(json_object_get(s, "temperature"));
	json_decref(j);
	persona_set_free(&ps);
}

TEST(persona_tool_sensitive_fields)
{
	struct persona p;

	ASSERT_EQ(load_text(&p, "s.json", "{\"instructions\": \"x\", "
	    "\"tools\": [{\"name\": \"verify\", \"description\": \"V.\", "
	    "\"sensitive\": [\"dob\", \"name\"], \"parameters\": {\"type\": "
	    "\"object\", \"properties\": {\"name\": {\"type\": \"string\"}, "
	    "\"dob\": {\"type\": \"string\"}, \"reason\": {\"type\": "
	    "\"string\"}}}}, {\"name\": \"end_call\", \"description\": "
	    "\"E.\"}]}", OA_GA), 0);
	ASSERT_EQ(persona_field_sensitive(&p, "verify", "dob"), 1);
	ASSERT_EQ(persona_field_sensitive(&p, "verify", "name"), 1);
	ASSERT_EQ(persona_field_sensitive(&p, "verify", "reason"), 0);
	ASSERT_EQ(persona_field_sensitive(&p, "verify", "na"), 0);
	ASSERT_EQ(persona_field_sensitive(&p, "verify", "ame"), 0);
	ASSERT_EQ(persona_field_sensitive(&p, "verify", ""), 0);
	ASSERT_EQ(persona_field_sensitive(&p, "verify", ",dob"), 0);
	ASSERT_EQ(persona_field_sensitive(&p, "end_call", "dob"), 0);
	ASSERT_EQ(persona_field_sensitive(&p, "other", "dob"), 0);
	/* OpenAI never sees it */
	ASSERT(strstr(p.tools_json, "sensitive") == NULL);
	persona_free(&p);

	ASSERT_EQ(load_text(&p, "s.json", "{\"instructions\": \"x\", "
	    "\"tools\": [{\"name\": \"v\", \"description\": \"V.\", "
	    "\"sensitive\": [\"dob\"], \"parameters\": {\"type\": "
	    "\"object\", \"properties\": {\"name\": {\"type\": \"string\"}}}}]}",
	    OA_GA), 1);
	ASSERT_HAS(err, "tools[0].sensitive[0]: \"dob\" is not one of the "
	    "tool's parameters");
	ASSERT_EQ(load_text(&p, "s.json", "{\"instructions\": \"x\", "
	    "\"tools\": [{\"name\": \"v\", \"description\": \"V.\", "
	    "\"sensitive\": \"dob\"}]}", OA_GA), 1);
	ASSERT_HAS(err, "tools[0].sensitive: must be an array");
}

/* The shipped personas mark what identifies a caller. */
TEST(persona_shipped_sensitive_fields)
{
	static const struct {
		const char *file, *tool, *field;
	} marks[] = {
		{ "collections.json", "verify_identity", "full_name" },
		{ "collections.json", "verify_identity", "date_of_birth" },
		{ "collections.json", "verify_identity", "account_last4" },
		{ "dental.json", "book_appointment", "name" },
		{ "dental.json", "book_appointment", "phone" },
		{ "hvac.json", "book_appointment", "name" },
		{ "hvac.json", "book_appointment", "phone" },
		{ "hvac.json", "book_appointment", "address" },
	};
	struct persona p;
	char path[512];

	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		snprintf(path, sizeof(path), "personas/%s", marks[i].file);
		ASSERT_EQ(persona_load_file(&p, path, OA_GA, err, sizeof(err),
		    warn, sizeof(warn)), 0);
		if (!persona_field_sensitive(&p, marks[i].tool, marks[i].field))
			TEST_FAIL_("%s: %s.%s not sensitive", marks[i].file,
			    marks[i].tool, marks[i].field);
		persona_free(&p);
	}
}
