/*
 * tools.c — see tools.h.
 */
#include "worker/tools.h"
#include "worker/app.h"
#include "worker/call.h"
#include "worker/relay.h"
#include "worker/worker.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"

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
		snprintf(out, sizeof(out), "{\"%s\":true,\"reference\":\"%s\"}",
		    t->name[0] == 'b' ? "booked" : "recorded", ref);
		relay_tool_result(c, t->call_id, out, 1);
		return 1;
	}
	if (strcmp(t->name, "verify_identity") == 0) {
		relay_tool_result(c, t->call_id, "{\"verified\":true}", 1);
		return 1;
	}
	return 0;
}
