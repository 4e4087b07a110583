/*
 * tools.c — see tools.h.
 */
#include "worker/tools.h"
#include "worker/app.h"
#include "worker/call.h"
#include "worker/record.h"
#include "worker/relay.h"
#include "worker/worker.h"
#include "personas/line.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One JSON line per recorded tool call in BOOKINGS_PATH (O_APPEND: the
 * lines of several workers never mix). */
static void
record_json_line(struct call *c, const char *tool, const char *args,
    const char *ref)
{
	const char *path = c->w->conf->bookings_path;
	char when[32];
	json_t *j, *a;
	char *line;
	int fd;

	if (path[0] == '\0')
		return;
	iso8601_utc(wall_ms(), when, sizeof(when));
	a = json_loads(args, 0, NULL);
	j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "t", when, "reference", ref,
	    "call_sid", call_sid_of(c), "caller", c->tok.caller, "persona",
	    c->persona->id, "tool", tool, "arguments", a ? a : json_object());
	line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (line == NULL)
		return;
	log_set_call(call_sid_of(c));
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd >= 0) {
		size_t n = strlen(line);
		line[n] = '\n';
		if (write(fd, line, n + 1) < 0)
			log_warnx("%s: %s", path, strerror(errno));
		close(fd);
	} else
		log_warnx("%s: %s", path, strerror(errno));
	log_set_call(NULL);
	free(line);
}

/* Letters and digits lower-cased, every other run of characters one
 * space, none at the ends: "  Jordan  O'Neil " is "jordan o neil". */
static void
norm_name(const char *s, char *out, size_t len)
{
	size_t n = 0;
	int gap = 0;

	for (; *s != '\0' && n + 2 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || ch >= 0x80) {
			if (gap && n > 0)
				out[n++] = ' ';
			gap = 0;
			out[n++] = (char)tolower(ch);
		} else
			gap = 1;
	}
	out[n] = '\0';
}

/* The digits of s only: "1980-03-14" and "03/14/1980" differ, "1980 03 14"
 * and "1980-03-14" do not. */
static void
digits_of(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < len; s++)
		if (*s >= '0' && *s <= '9')
			out[n++] = *s;
	out[n] = '\0';
}

/* One fact against what the caller said: 1 same, 0 differs, -1 not said. */
static int
fact_matches(json_t *facts, json_t *args, const char *key)
{
	const char *want = json_string_value(json_object_get(facts, key));
	const char *got = json_string_value(json_object_get(args, key));
	char a[256], b[256];

	if (got == NULL || got[0] == '\0' || want == NULL)
		return -1;
	if (strcmp(key, "full_name") == 0) {
		norm_name(want, a, sizeof(a));
		norm_name(got, b, sizeof(b));
	} else {
		digits_of(want, a, sizeof(a));
		digits_of(got, b, sizeof(b));
	}
	return a[0] != '\0' && strcmp(a, b) == 0;
}

/*
 * verify_identity: the caller's answers against the facts the line says
 * (app_line_facts(): its own, or the call's).  The name must match, and at least one of date of birth and account digits
 * must be given, and every one given must match.  A wrong answer says
 * only "not verified", never which fact was wrong.
 */
static void
verify_identity(struct call *c, const struct app_tool *t)
{
	json_t *facts, *args;
	int name, dob, last4, ok, of_call;

	facts = app_line_facts(c, &of_call);
	if (facts == NULL) {
		/* not offered on such a line; a model that calls it anyway
		 * learns nothing */
		relay_tool_result(c, t->call_id, of_call ?
		    "{\"verified\":false,\"error\":\"identity cannot be "
		    "checked on this call\"}" : "{\"verified\":false,\"error\":"
		    "\"identity cannot be checked on this line\"}", 1);
		return;
	}
	args = json_loads(t->args, 0, NULL);
	name = fact_matches(facts, args, "full_name");
	dob = fact_matches(facts, args, "date_of_birth");
	last4 = fact_matches(facts, args, "account_last4");
	ok = name == 1 && (dob == 1 || last4 == 1) && dob != 0 && last4 != 0;
	json_decref(facts);
	json_decref(args);
	log_set_call(call_sid_of(c));
	log_info("verify_identity: %s", ok ? "verified" : "not verified");
	log_set_call(NULL);
	relay_tool_result(c, t->call_id, ok ? "{\"verified\":true}" :
	    "{\"verified\":false}", 1);
}

int
tools_business(struct call *c, const struct app_tool *t)
{
	char out[128];

	if (strcmp(t->name, "book_appointment") == 0 ||
	    strcmp(t->name, "record_payment_arrangement") == 0) {
		unsigned char r[3];
		char ref[16];
		random_bytes(r, sizeof(r));
		snprintf(ref, sizeof(ref), "VR-%02X%02X%02X", r[0], r[1], r[2]);
		record_json_line(c, t->name, t->args, ref);
		/* an outbound call's arrangement ends its contact's campaign */
		if (t->name[0] == 'r' && c->outbound)
			record_outcome(c, "arranged", t->args);
		snprintf(out, sizeof(out), "{\"%s\":true,\"reference\":\"%s\"}",
		    t->name[0] == 'b' ? "booked" : "recorded", ref);
		relay_tool_result(c, t->call_id, out, 1);
		return 1;
	}
	if (strcmp(t->name, "record_call_outcome") == 0) {
		json_t *a = json_loads(t->args, 0, NULL);
		const char *o = json_string_value(json_object_get(a, "outcome"));
		int ok = o != NULL && (strcmp(o, "refused") == 0 ||
		    strcmp(o, "wrong_number") == 0 ||
		    strcmp(o, "do_not_call") == 0);

		if (ok) {
			log_set_call(call_sid_of(c));
			log_info("record_call_outcome: %s", o);
			log_set_call(NULL);
			record_outcome(c, o, NULL);
		}
		relay_tool_result(c, t->call_id, ok ? "{\"recorded\":true}" :
		    "{\"recorded\":false,\"error\":\"outcome is refused, "
		    "wrong_number or do_not_call\"}", 1);
		json_decref(a);
		return 1;
	}
	if (strcmp(t->name, "verify_identity") == 0) {
		verify_identity(c, t);
		return 1;
	}
	return 0;
}
