/*
 * campaign.c — campaigns: the files, each contact's state, the schedule
 * on the master's loop and the operator's endpoints.
 *
 * A contact is dialled only when all of these hold: its state is known
 * from the store (read once at start), it is pending or its retry time
 * has come, its campaign is not paused (nor its contacts table being
 * read again), it never asked not to be called (in any campaign), its
 * time zone is known, its local time is inside one of the campaign's
 * windows and outside the quiet hours, the number
 * may be called (VERIFIED_PHONE_NUMBERS, ALLOW_ALL_US_CANADA) and is out
 * of its cooldown, and the campaign's pace (calls_per_minute,
 * max_concurrent) and MAX_CONCURRENT_CALLS leave room.
 *
 * One attempt is dialled at most once: the attempt is counted and the
 * contact marked `calling` in the store, and read back from it, before
 * the call is asked of Twilio.  A restart finds the contacts left
 * calling: one whose call's record is final takes that call's outcome,
 * one with no CallSid (killed between the create and its answer) has
 * its call looked for among Twilio's calls to the number and adopted if
 * found (callcheck_find()), else has spent the attempt ("unknown",
 * retried like "failed"), and for any other Twilio
 * is asked how its call went (callcheck.c): over, it takes the outcome
 * the final callback would have given; live, it waits for its callbacks;
 * unknown to Twilio, the attempt is spent.  None is dialled again for the
 * same attempt.
 */
#include "daemon/master.h"
#include "daemon/campaign.h"
#include "daemon/callcheck.h"
#include "daemon/outbound.h"
#include "daemon/store.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "personas/line.h"
#include "personas/persona.h"
#include "proto/http.h"
#include "proto/nanp.h"
#include "proto/tmpl.h"
#include "proto/tz.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAMP_CSV_MAX	(32 * 1024 * 1024)
#define CAMP_TICK_MS	1000
#define CAMP_STALE_MS	(4 * 3600 * 1000ull)	/* a call never reported over,
						 * on a line with no limit */
#define CAMP_RELOAD_MS	5000		/* the state's read, again */
#define CAMP_PAGE_MAX	10000		/* contacts in one answer */

static const char *const retry_names[CR__N] = { "no-answer", "busy",
    "voicemail", "failed" };
static const char *const state_names[] = { "pending", "calling", "retry",
    "done", "exhausted" };
/* what a call's tools may decide; each ends the contact's campaign */
static const char *const tool_outcomes[] = { "arranged", "refused",
    "wrong_number", "do_not_call", NULL };

/* ---------------------------------------------------------------- */
/* loading */

struct lerr {
	char	*buf;
	size_t	 len;
	int	 n;
};

static void __attribute__((format(printf, 2, 3)))
lerr_add(struct lerr *e, const char *fmt, ...)
{
	size_t used = strlen(e->buf);
	va_list ap;

	e->n++;
	if (used + 2 >= e->len)
		return;
	va_start(ap, fmt);
	vsnprintf(e->buf + used, e->len - used - 1, fmt, ap);
	va_end(ap);
	used = strlen(e->buf);
	e->buf[used] = '\n';
	e->buf[used + 1] = '\0';
}

static int
id_valid(const char *s, size_t n)
{
	if (n == 0 || n >= CAMP_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

/* "HH:MM" (00:00 to 24:00) in minutes, or -1. */
static int
hhmm(const char *s)
{
	int h, m;
	char end;

	if (s == NULL || strlen(s) != 5 || sscanf(s, "%2d:%2d%c", &h, &m,
	    &end) != 2 || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[3]) || h < 0 || m < 0 || m > 59 ||
	    h > 24 || (h == 24 && m != 0))
		return -1;
	return h * 60 + m;
}

static int
window_load(json_t *o, struct camp_window *w)
{
	if (!json_is_object(o))
		return -1;
	w->from = hhmm(json_string_value(json_object_get(o, "from")));
	w->to = hhmm(json_string_value(json_object_get(o, "to")));
	if (w->from < 0 || w->to < 0 || w->from == w->to || w->from == 1440 ||
	    json_object_size(o) != 2)
		return -1;
	return 0;
}

static int
in_window(const struct camp_window *w, int min)
{
	if (w->from < w->to)
		return min >= w->from && min < w->to;
	/* it spans midnight */
	return min >= w->from || min < w->to;
}

static const struct tz *
zone_get(struct campaign_set *cs, const char *name)
{
	struct camp_zone *z;

	for (size_t i = 0; i < cs->nzones; i++)
		if (strcmp(cs->zones[i].name, name) == 0)
			return cs->zones[i].tz;
	z = realloc(cs->zones, (cs->nzones + 1) * sizeof(*z));
	if (z == NULL)
		return NULL;
	cs->zones = z;
	z = &cs->zones[cs->nzones++];
	memset(z, 0, sizeof(*z));
	vr_strlcpy(z->name, name, sizeof(z->name));
	z->tz = tz_load(getenv("VOXRELAY_ZONEINFO"), name, z->why,
	    sizeof(z->why));
	return z->tz;
}

/* One CSV record (RFC 4180) from *pp: its cells in cells (up to max),
 * their count, or -1 for an unterminated quote; *pp moves past it. */
static int
csv_record(char **pp, char *end, char **cells, int max)
{
	char *p = *pp, *o;
	int n = 0;

	for (;;) {
		char *cell = p;

		o = p;
		if (p < end && *p == '"') {
			p++;
			for (;;) {
				if (p >= end)
					return -1;
				if (*p == '"') {
					if (p + 1 < end && p[1] == '"') {
						*o++ = '"';
						p += 2;
						continue;
					}
					p++;
					break;
				}
				*o++ = *p++;
			}
			/* anything up to the separator is dropped */
			while (p < end && *p != ',' && *p != '\n')
				p++;
		} else {
			while (p < end && *p != ',' && *p != '\n')
				*o++ = *p++;
			if (o > cell && o[-1] == '\r')
				o--;
		}
		if (n < max)
			cells[n] = cell;
		n++;
		if (p >= end || *p == '\n') {
			*o = '\0';
			*pp = p < end ? p + 1 : p;
			return n;
		}
		*o = '\0';
		p++;		/* the comma */
	}
}

/* Collects the variables a template uses, each once, "name" aside (the
 * contact's own column). */
static int
need_one(void *arg, const char *name, size_t len)
{
	json_t *need = arg, *v;
	size_t i;

	if (len == 4 && strncmp(name, "name", 4) == 0)
		return 0;
	json_array_foreach(need, i, v)
		if (strlen(json_string_value(v)) == len &&
		    strncmp(json_string_value(v), name, len) == 0)
			return 0;
	json_array_append_new(need, json_stringn(name, len));
	return 0;
}

/* The first of need that cols (the variable columns) lacks, or NULL. */
static const char *
need_missing(const json_t *need, const json_t *cols)
{
	size_t i, j;
	json_t *v, *w;

	json_array_foreach(need, i, v) {
		int found = 0;

		json_array_foreach(cols, j, w)
			if (strcmp(json_string_value(v), json_string_value(w)) == 0)
				found = 1;
		if (!found)
			return json_string_value(v);
	}
	return NULL;
}

/* A column of a variable: letters, digits and _, at most 32. */
static int
var_name_valid(const char *s)
{
	return id_valid(s, strlen(s)) && strlen(s) <= 32 &&
	    strchr(s, '-') == NULL;
}

/* Where a contact comes from, for its problems: "file.csv:7" or
 * "camp.json: contacts: table payers: row 7 (+1415555****)". */
struct src {
	const char	*shown;
	int		 table;		/* rows of a table, not lines of a CSV */
	int		 full;		/* a row's phone in full (`voxrelay -t`) */
};

static const char *
src_at(const struct src *s, int n, const char *phone, char *buf, size_t len)
{
	char masked[64];

	if (!s->table)
		snprintf(buf, len, "%s:%d", s->shown, n);
	else if (phone == NULL || !e164_valid(phone) ||
	    strlen(phone) >= SHM_PHONE_MAX)
		snprintf(buf, len, "%s: row %d", s->shown, n);
	else {
		if (s->full)
			vr_strlcpy(masked, phone, sizeof(masked));
		else
			mask_phone(phone, masked, sizeof(masked));
		snprintf(buf, len, "%s: row %d (%s)", s->shown, n, masked);
	}
	return buf;
}

/*
 * One contact (a CSV's line or a table's row n) checked and added to c:
 * 0, 1 when it is refused (said in e), -1 when no more can be added.
 * vars: its variables' values by name.
 */
static int
contact_add(struct campaign_set *cs, struct campaign *c, size_t *cap,
    const struct src *s, int n, const char *phone, const char *name,
    const char *tzname, json_t *vars, struct lerr *e)
{
	struct camp_contact *ct;
	char at[300];

	if (phone == NULL || !e164_valid(phone) ||
	    strlen(phone) >= SHM_PHONE_MAX) {
		lerr_add(e, "%s: phone_number: not an E.164 number",
		    src_at(s, n, phone, at, sizeof(at)));
		return 1;
	}
	if (name == NULL || strlen(name) >= sizeof(ct->name)) {
		lerr_add(e, "%s: name: %s", src_at(s, n, phone, at, sizeof(at)),
		    name ? "longer than 127 bytes" : "missing");
		return 1;
	}
	if (tzname == NULL || !tz_name_valid(tzname)) {
		lerr_add(e, "%s: timezone: \"%.40s\" is not an IANA zone name",
		    src_at(s, n, phone, at, sizeof(at)), tzname ? tzname : "");
		return 1;
	}
	if (c->nct >= CAMP_CONTACTS_MAX) {
		lerr_add(e, "%s: more than %d contacts", src_at(s, n, NULL, at,
		    sizeof(at)), CAMP_CONTACTS_MAX);
		return -1;
	}
	if (c->nct == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct camp_contact *v = realloc(c->ct, nc * sizeof(*v));
		if (v == NULL) {
			lerr_add(e, "%s: out of memory", s->shown);
			return -1;
		}
		c->ct = v;
		*cap = nc;
	}
	ct = &c->ct[c->nct++];
	memset(ct, 0, sizeof(*ct));
	vr_strlcpy(ct->phone, phone, sizeof(ct->phone));
	vr_strlcpy(ct->name, name, sizeof(ct->name));
	vr_strlcpy(ct->tzname, tzname, sizeof(ct->tzname));
	ct->line = n;
	ct->zone = zone_get(cs, ct->tzname);
	ct->vars = json_incref(vars);
	return 0;
}

static int
byphone_cmp(const void *a, const void *b, void *arg)
{
	const struct campaign *c = arg;

	return strcmp(c->ct[*(const size_t *)a].phone,
	    c->ct[*(const size_t *)b].phone);
}

/* An index by phone: found in log time, and each number once. */
static void
contacts_index(struct campaign *c, const struct src *s, struct lerr *e)
{
	const char *unit = s->table ? "row" : "line";
	char at[300];

	if (c->nct == 0)
		return;
	if ((c->byphone = malloc(c->nct * sizeof(*c->byphone))) == NULL) {
		lerr_add(e, "%s: out of memory", s->shown);
		return;
	}
	for (size_t i = 0; i < c->nct; i++)
		c->byphone[i] = i;
	qsort_r(c->byphone, c->nct, sizeof(*c->byphone), byphone_cmp, c);
	for (size_t i = 1; i < c->nct; i++) {
		const struct camp_contact *a = &c->ct[c->byphone[i - 1]];
		const struct camp_contact *b = &c->ct[c->byphone[i]];
		if (strcmp(a->phone, b->phone) == 0)
			lerr_add(e, "%s: phone_number: listed twice (also %s %d)",
			    src_at(s, a->line > b->line ? a->line : b->line,
			    a->phone, at, sizeof(at)), unit, a->line > b->line ?
			    b->line : a->line);
	}
}

static char *
read_file(const char *path, size_t max, size_t *len, char *why, size_t wlen)
{
	struct stat st;
	char *buf;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(why, wlen, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max) {
		close(fd);
		snprintf(why, wlen, "not a regular file under %zu bytes", max);
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL ||
	    read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		close(fd);
		snprintf(why, wlen, "cannot read it");
		return NULL;
	}
	close(fd);
	buf[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	return buf;
}

/* The contacts CSV of c at path; problems added to e as "csv:line: ...". */
static void
contacts_load(struct campaign_set *cs, struct campaign *c, const char *path,
    const char *shown, json_t *cols, struct lerr *e)
{
	char why[160], *buf, *p, *end, *cells[64];
	int ncols, iphone = -1, iname = -1, itz = -1, lineno = 1, n;
	size_t len, cap = 0;
	char *hdr[64];
	struct src src = { shown, 0, 1 };

	if ((buf = read_file(path, CAMP_CSV_MAX, &len, why, sizeof(why))) ==
	    NULL) {
		lerr_add(e, "%s: contacts: %s: %s", c->file, shown, why);
		return;
	}
	p = buf;
	end = buf + len;
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		p += 3;		/* a spreadsheet's byte order mark */
	ncols = csv_record(&p, end, hdr, 64);
	if (ncols <= 0 || ncols > 64) {
		lerr_add(e, "%s:1: a header of 3 to 64 columns is needed", shown);
		goto out;
	}
	for (int i = 0; i < ncols; i++) {
		if (strcmp(hdr[i], "phone_number") == 0)
			iphone = i;
		else if (strcmp(hdr[i], "name") == 0)
			iname = i;
		else if (strcmp(hdr[i], "timezone") == 0)
			itz = i;
		else if (!var_name_valid(hdr[i])) {
			lerr_add(e, "%s:1: column \"%.40s\": a variable's name is "
			    "letters, digits and _ (at most 32)", shown, hdr[i]);
			goto out;
		} else
			json_array_append_new(cols, json_string(hdr[i]));
	}
	if (iphone < 0 || iname < 0 || itz < 0) {
		lerr_add(e, "%s:1: the header needs phone_number, name and "
		    "timezone", shown);
		goto out;
	}
	while (p < end) {
		json_t *vars;
		int rc;

		lineno++;
		if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
			p += *p == '\n' ? 1 : 2;
			continue;	/* a blank line */
		}
		n = csv_record(&p, end, cells, 64);
		if (n < 0) {
			lerr_add(e, "%s:%d: unterminated quote", shown, lineno);
			goto out;
		}
		if (n != ncols) {
			lerr_add(e, "%s:%d: %d cells, the header has %d", shown,
			    lineno, n, ncols);
			continue;
		}
		vars = json_object();
		for (int i = 0; i < ncols; i++)
			if (i != iphone && i != iname && i != itz)
				json_object_set_new(vars, hdr[i],
				    json_string(cells[i]));
		rc = contact_add(cs, c, &cap, &src, lineno, cells[iphone],
		    cells[iname], cells[itz], vars, e);
		json_decref(vars);
		if (rc < 0)
			goto out;
	}
	contacts_index(c, &src, e);
out:
	free(buf);
}

/*
 * The contacts table of c, read on db into c (its contacts, their zones in
 * cs): 0, or -1 with the problems in e.  *down: the database did not
 * answer (not the table's fault).  need: the variables the line's
 * templates use, line its id.
 */
static int
table_load(struct store_db *db, struct campaign_set *cs, struct campaign *c,
    const json_t *need, const char *line, int full, struct lerr *e,
    int *down)
{
	char shown[300], why[512];
	json_t *cols, *vcols = NULL, *rows = NULL, *row;
	const char *miss;
	size_t i, cap = 0;
	int n0 = e->n, have = 0;
	struct src src = { shown, 1, full };

	*down = 0;
	snprintf(shown, sizeof(shown), "%s: contacts: table %s%s%s", c->file,
	    c->schema, c->schema[0] ? "." : "", c->table);
	if ((cols = store_db_table_columns(db, c->schema, c->table, why,
	    sizeof(why))) == NULL) {
		*down = store_db_broken(db);
		lerr_add(e, "%s: %s", shown, why);
		return -1;
	}
	vcols = json_array();
	for (i = 0; i < json_array_size(cols); i++) {
		const char *col = json_string_value(json_array_get(cols, i));

		if (strcmp(col, "phone_number") == 0 || strcmp(col, "name") == 0 ||
		    strcmp(col, "timezone") == 0)
			have++;
		else if (!var_name_valid(col))
			lerr_add(e, "%s: column \"%.40s\": a variable's name is "
			    "letters, digits and _ (at most 32)", shown, col);
		else
			json_array_append_new(vcols, json_string(col));
	}
	if (have != 3)
		lerr_add(e, "%s: the columns phone_number, name and timezone "
		    "are needed", shown);
	if ((miss = need_missing(need, vcols)) != NULL)
		lerr_add(e, "%s: line %s uses {{%s}}, which the table has no "
		    "column for", shown, line, miss);
	if (e->n > n0)
		goto out;
	if ((rows = store_db_table_rows(db, c->schema, c->table, cols,
	    "phone_number", CAMP_CONTACTS_MAX + 1, why, sizeof(why))) == NULL) {
		*down = store_db_broken(db);
		lerr_add(e, "%s: %s", shown, why);
		goto out;
	}
	json_array_foreach(rows, i, row) {
		json_t *vars = json_object(), *v;
		size_t j;
		int rc;

		json_array_foreach(vcols, j, v) {
			const char *val = json_string_value(json_object_get(row,
			    json_string_value(v)));
			/* a NULL is an empty cell */
			json_object_set_new(vars, json_string_value(v),
			    json_string(val ? val : ""));
		}
		rc = contact_add(cs, c, &cap, &src, (int)i + 1,
		    json_string_value(json_object_get(row, "phone_number")),
		    json_string_value(json_object_get(row, "name")),
		    json_string_value(json_object_get(row, "timezone")), vars, e);
		json_decref(vars);
		if (rc < 0)
			break;
	}
	contacts_index(c, &src, e);
out:
	json_decref(rows);
	json_decref(vcols);
	json_decref(cols);
	return e->n > n0 ? -1 : 0;
}

static void
camp_free(struct campaign *c)
{
	for (size_t i = 0; i < c->nct; i++) {
		json_decref(c->ct[i].vars);
		json_decref(c->ct[i].detail);
	}
	free(c->ct);
	free(c->byphone);
	free(c->waits);
	free(c->file);
	free(c->starts);
	json_decref(c->need);
}

/* A number in [min, max] from o's key, or the default when absent. */
static int
num_field(json_t *o, const char *key, double min, double max, double def,
    double *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL) {
		*out = def;
		return def >= 0 ? 0 : -1;
	}
	if (!json_is_number(v) || json_number_value(v) < min ||
	    json_number_value(v) > max)
		return -1;
	*out = json_number_value(v);
	return 0;
}

static void
camp_load(struct campaign_set *cs, struct campaign *c, const char *dir,
    const char *fname, const struct line_set *ls,
    const struct persona_set *ps, int have_pg, struct lerr *e)
{
	static const char *const known[] = { "line", "contacts",
	    "every_minutes", "windows", "quiet_hours", "max_attempts",
	    "retry_minutes", "calls_per_minute", "max_concurrent",
	    "description", NULL };
	char path[1200], cpath[1400], why[160], *buf;
	const char *line, *contacts, *k, *f;
	const struct line *l;
	const struct persona *p;
	json_t *root, *v, *cols = json_array();
	json_error_t jerr;
	size_t len, i;
	double d;

	snprintf(path, sizeof(path), "%s/%s", dir, fname);
	c->file = strdup(path);
	f = c->file ? c->file : fname;
	if ((buf = read_file(path, 1024 * 1024, &len, why, sizeof(why))) ==
	    NULL) {
		lerr_add(e, "%s: %s", f, why);
		goto out;
	}
	root = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (!json_is_object(root)) {
		lerr_add(e, "%s:%d: not a JSON object: %s", f, jerr.line,
		    jerr.text);
		json_decref(root);
		goto out;
	}
	json_object_foreach(root, k, v) {
		for (i = 0; known[i] != NULL && strcmp(known[i], k) != 0; i++)
			;
		if (known[i] == NULL)
			lerr_add(e, "%s: %.40s: unknown field", f, k);
	}
	line = json_string_value(json_object_get(root, "line"));
	if (line == NULL || (l = line_find(ls, line)) == NULL ||
	    (p = line_persona(l, ps, line)) == NULL) {
		lerr_add(e, "%s: line: %s", f, line ? "no such line in LINES_DIR" :
		    "missing (the line whose persona makes the calls)");
		l = NULL;
		p = NULL;
	} else
		vr_strlcpy(c->line, l->id, sizeof(c->line));
	if (num_field(root, "every_minutes", 0.01, 1440, -1,
	    &c->every_minutes) != 0)
		lerr_add(e, "%s: every_minutes: a number of minutes from 0.01 "
		    "to 1440 is needed", f);
	c->every_ms = (uint64_t)(c->every_minutes * 60000.0 + 0.5);
	if (num_field(root, "max_attempts", 1, 20, -1, &d) != 0 || d != floor(d))
		lerr_add(e, "%s: max_attempts: an integer from 1 to 20 is needed",
		    f);
	c->max_attempts = (int)d;
	if (num_field(root, "calls_per_minute", 1, 600, -1, &d) != 0 ||
	    d != floor(d))
		lerr_add(e, "%s: calls_per_minute: an integer from 1 to 600 is "
		    "needed", f);
	c->calls_per_minute = (int)d;
	if (num_field(root, "max_concurrent", 1, 100000, -1, &d) != 0 ||
	    d != floor(d))
		lerr_add(e, "%s: max_concurrent: an integer from 1 to 100000 is "
		    "needed (its share of MAX_CONCURRENT_CALLS)", f);
	c->max_concurrent = (int)d;
	v = json_object_get(root, "retry_minutes");
	if (!json_is_object(v))
		lerr_add(e, "%s: retry_minutes: an object with no-answer, busy, "
		    "voicemail and failed is needed", f);
	else {
		json_t *x;
		json_object_foreach(v, k, x) {
			for (i = 0; i < CR__N && strcmp(retry_names[i], k) != 0; i++)
				;
			if (i == CR__N)
				lerr_add(e, "%s: retry_minutes.%.40s: not an outcome "
				    "(no-answer, busy, voicemail, failed)", f, k);
		}
		for (i = 0; i < CR__N; i++)
			if (num_field(v, retry_names[i], 0, 43200, -1,
			    &c->retry_minutes[i]) != 0)
				lerr_add(e, "%s: retry_minutes.%s: minutes from 0 to "
				    "43200 are needed", f, retry_names[i]);
	}
	v = json_object_get(root, "windows");
	if (!json_is_array(v) || json_array_size(v) == 0 ||
	    json_array_size(v) > CAMP_WINDOWS_MAX)
		lerr_add(e, "%s: windows: 1 to %d daily windows are needed, e.g. "
		    "[{\"from\": \"09:00\", \"to\": \"18:00\"}]", f,
		    CAMP_WINDOWS_MAX);
	else
		for (i = 0; i < json_array_size(v); i++)
			if (window_load(json_array_get(v, i),
			    &c->windows[c->nwindows++]) != 0)
				lerr_add(e, "%s: windows[%zu]: {\"from\": \"HH:MM\", "
				    "\"to\": \"HH:MM\"} of two different times is "
				    "needed", f, i);
	c->quiet.from = 21 * 60;
	c->quiet.to = 8 * 60;
	if ((v = json_object_get(root, "quiet_hours")) != NULL &&
	    window_load(v, &c->quiet) != 0)
		lerr_add(e, "%s: quiet_hours: {\"from\": \"HH:MM\", \"to\": "
		    "\"HH:MM\"} is needed (default 21:00 to 08:00)", f);
	/* the variables the line's templates use: each must be a column */
	c->need = json_array();
	if (p != NULL) {
		tmpl_each(p->instructions, need_one, c->need);
		if (p->greeting != NULL)
			tmpl_each(p->greeting, need_one, c->need);
		if (l->voicemail != NULL)
			tmpl_each(l->voicemail, need_one, c->need);
	}
	v = json_object_get(root, "contacts");
	contacts = json_string_value(v);
	if (json_is_object(v)) {
		/* a table, read later (campaign.h) */
		const char *t = json_string_value(json_object_get(v, "table"));
		const char *sc = json_string_value(json_object_get(v, "schema"));
		json_t *x;

		json_object_foreach(v, k, x)
			if (strcmp(k, "table") != 0 && strcmp(k, "schema") != 0)
				lerr_add(e, "%s: contacts.%.40s: unknown field (a "
				    "table is {\"table\": ..., \"schema\": ...})",
				    f, k);
		if (!store_ident_valid(t))
			lerr_add(e, "%s: contacts.table: a table's name of "
			    "letters, digits and _ (at most %d, not starting "
			    "with a digit) is needed", f, STORE_IDENT_MAX);
		else
			vr_strlcpy(c->table, t, sizeof(c->table));
		if (json_object_get(v, "schema") != NULL &&
		    !store_ident_valid(sc))
			lerr_add(e, "%s: contacts.schema: a schema's name of "
			    "letters, digits and _ (at most %d, not starting "
			    "with a digit) is needed", f, STORE_IDENT_MAX);
		else if (sc != NULL)
			vr_strlcpy(c->schema, sc, sizeof(c->schema));
		if (!have_pg)
			lerr_add(e, "%s: contacts: a table needs DATABASE_URL "
			    "(PostgreSQL); without it the contacts are a CSV "
			    "file", f);
	} else if (contacts == NULL || contacts[0] == '\0')
		lerr_add(e, "%s: contacts: missing (a CSV file beside it, or "
		    "{\"table\": ...} with DATABASE_URL)", f);
	else {
		const char *miss;

		if (contacts[0] == '/')
			snprintf(cpath, sizeof(cpath), "%s", contacts);
		else
			snprintf(cpath, sizeof(cpath), "%s/%s", dir, contacts);
		contacts_load(cs, c, cpath, cpath, cols, e);
		/* every variable the line's templates use is a column */
		if (p != NULL && (miss = need_missing(c->need, cols)) != NULL)
			lerr_add(e, "%s: contacts: line %s uses {{%s}}, which %s "
			    "has no column for", f, l->id, miss, contacts);
	}
	json_decref(root);
out:
	json_decref(cols);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
campaign_set_load(struct campaign_set *cs, const char *dir,
    const struct line_set *ls, const struct persona_set *ps, int have_pg,
    char *err, size_t errlen, char *warn, size_t warnlen)
{
	struct lerr e = { err, errlen, 0 };
	char *names[CAMP_MAX + 1];
	size_t nnames = 0;
	struct dirent *de;
	DIR *d;

	memset(cs, 0, sizeof(*cs));
	if (errlen > 0)
		err[0] = '\0';
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		lerr_add(&e, "CAMPAIGNS_DIR %s: %s", dir, strerror(errno));
		return e.n;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0 ||
		    de->d_name[0] == '.')
			continue;
		if (!id_valid(de->d_name, n - 5)) {
			lerr_add(&e, "%s/%s: a campaign's file name (its id) is "
			    "letters, digits, _ and -, at most %d", dir,
			    de->d_name, CAMP_ID_MAX - 1);
			continue;
		}
		if (nnames == CAMP_MAX) {
			lerr_add(&e, "CAMPAIGNS_DIR %s: more than %d campaigns",
			    dir, CAMP_MAX);
			break;
		}
		names[nnames++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, nnames, sizeof(names[0]), name_cmp);
	if (nnames > 0 && (cs->v = calloc(nnames, sizeof(*cs->v))) == NULL)
		lerr_add(&e, "out of memory");
	for (size_t i = 0; i < nnames; i++) {
		if (cs->v != NULL && names[i] != NULL) {
			struct campaign *c = &cs->v[cs->n++];
			snprintf(c->id, sizeof(c->id), "%.*s",
			    (int)(strlen(names[i]) - 5), names[i]);
			camp_load(cs, c, dir, names[i], ls, ps, have_pg, &e);
		}
		free(names[i]);
	}
	for (size_t i = 0; i < cs->nzones && warnlen > 0; i++) {
		size_t used = strlen(warn);
		if (cs->zones[i].tz == NULL && used + 1 < warnlen)
			snprintf(warn + used, warnlen - used, "warning: campaigns: "
			    "%s; its contacts are not dialled\n", cs->zones[i].why);
	}
	if (e.n > 0)
		campaign_set_free(cs);
	return e.n;
}

int
campaign_check_tables(const struct campaign_set *cs,
    const struct store_cfg *sc, char *err, size_t errlen, char *warn,
    size_t warnlen)
{
	struct lerr e = { err, errlen, 0 };
	struct store_db *db = NULL;
	char why[512] = "";
	int tried = 0, down;

	if (errlen > 0)
		err[0] = '\0';
	for (size_t i = 0; i < cs->n; i++) {
		const struct campaign *oc = &cs->v[i];
		struct campaign_set zones;
		struct campaign t;

		if (oc->table[0] == '\0')
			continue;
		if (db == NULL && !tried) {
			tried = 1;
			db = store_db_connect(sc, why, sizeof(why));
		}
		if (db == NULL) {
			lerr_add(&e, "%s: contacts: table %s%s%s cannot be read: %s",
			    oc->file, oc->schema, oc->schema[0] ? "." : "",
			    oc->table, why);
			continue;
		}
		memset(&t, 0, sizeof(t));
		memset(&zones, 0, sizeof(zones));
		t.file = oc->file;
		vr_strlcpy(t.id, oc->id, sizeof(t.id));
		vr_strlcpy(t.table, oc->table, sizeof(t.table));
		vr_strlcpy(t.schema, oc->schema, sizeof(t.schema));
		(void)table_load(db, &zones, &t, oc->need, oc->line, 1, &e, &down);
		for (size_t k = 0; k < zones.nzones && warnlen > 0; k++) {
			size_t used = strlen(warn);
			if (zones.zones[k].tz == NULL && used + 1 < warnlen)
				snprintf(warn + used, warnlen - used, "warning: "
				    "campaigns: %s: %s; its contacts are not "
				    "dialled\n", oc->file, zones.zones[k].why);
		}
		for (size_t k = 0; k < t.nct; k++)
			json_decref(t.ct[k].vars);
		free(t.ct);
		free(t.byphone);
		campaign_set_free(&zones);
	}
	store_db_close(db);
	return e.n;
}

void
campaign_set_free(struct campaign_set *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		camp_free(&cs->v[i]);
	free(cs->v);
	for (size_t i = 0; i < cs->nzones; i++)
		tz_free(cs->zones[i].tz);
	free(cs->zones);
	memset(cs, 0, sizeof(*cs));
}

/* ---------------------------------------------------------------- */
/* the master: state */

static int		 cg_loaded;	/* the store's state was read */
static int		 cg_loading;
static int64_t		 cg_clock_ms;	/* VOXRELAY_TEST_NOW - the start */
static uv_timer_t	 cg_timer;
static int		 cg_timer_on;
static char		(*cg_dnc)[SHM_PHONE_MAX];
static size_t		 cg_ndnc, cg_capdnc;

static int
dnc_has(const char *phone)
{
	for (size_t i = 0; i < cg_ndnc; i++)
		if (strcmp(cg_dnc[i], phone) == 0)
			return 1;
	return 0;
}

static void
dnc_add(const char *phone)
{
	if (dnc_has(phone))
		return;
	if (cg_ndnc == cg_capdnc) {
		size_t n = cg_capdnc ? cg_capdnc * 2 : 32;
		void *v = realloc(cg_dnc, n * sizeof(*cg_dnc));
		if (v == NULL)
			return;
		cg_dnc = v;
		cg_capdnc = n;
	}
	vr_strlcpy(cg_dnc[cg_ndnc++], phone, SHM_PHONE_MAX);
}

static struct campaign *
camp_find(struct master *m, const char *id)
{
	for (size_t i = 0; i < m->campaigns.n; i++)
		if (strcmp(m->campaigns.v[i].id, id) == 0)
			return &m->campaigns.v[i];
	return NULL;
}

static struct camp_contact *
contact_find(struct campaign *c, const char *phone)
{
	size_t lo = 0, hi = c->nct;

	if (c->byphone == NULL)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(c->ct[c->byphone[mid]].phone, phone);

		if (r == 0)
			return &c->ct[c->byphone[mid]];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct camp_contact *
contact_by_sid(struct master *m, const char *sid, struct campaign **cp)
{
	if (sid == NULL || sid[0] == '\0')
		return NULL;
	for (size_t i = 0; i < m->campaigns.n; i++) {
		struct campaign *c = &m->campaigns.v[i];
		for (size_t j = 0; j < c->nct; j++)
			if (strcmp(c->ct[j].sid, sid) == 0) {
				*cp = c;
				return &c->ct[j];
			}
	}
	return NULL;
}

static void
contact_post(struct master *m, const struct campaign *c,
    const struct camp_contact *ct)
{
	json_t *r;

	if (m->store == NULL)
		return;
	r = json_pack("{s:s,s:s,s:s,s:s,s:i,s:I}", "type", "contact",
	    "campaign", c->id, "phone", ct->phone, "state",
	    state_names[ct->state], "attempts", ct->attempts, "at",
	    (json_int_t)wall_ms());
	if (r == NULL)
		return;
	if (ct->outcome[0] != '\0')
		json_object_set_new(r, "outcome", json_string(ct->outcome));
	if (ct->state == CS_RETRY)
		json_object_set_new(r, "retry_at", json_integer(
		    (json_int_t)ct->retry_at));
	if (ct->sid[0] != '\0')
		json_object_set_new(r, "call_sid", json_string(ct->sid));
	if (ct->detail != NULL)
		json_object_set(r, "detail", ct->detail);
	store_post(m->store, r);
}

static int
retry_kind(const char *outcome)
{
	for (int i = 0; i < CR__N; i++)
		if (strcmp(retry_names[i], outcome) == 0)
			return i;
	return -1;
}

/* The attempt in progress ended with outcome: done, or retried after its
 * delay, or exhausted. */
static void
finish(struct master *m, struct campaign *c, struct camp_contact *ct,
    const char *outcome)
{
	int k = retry_kind(outcome);
	char masked[64];

	ct->busy = 0;
	vr_strlcpy(ct->outcome, outcome, sizeof(ct->outcome));
	if (k < 0 && strcmp(outcome, "unknown") == 0)
		k = CR_FAILED;
	if (k < 0)
		ct->state = CS_DONE;
	else if (ct->attempts >= c->max_attempts)
		ct->state = CS_EXHAUSTED;
	else {
		ct->state = CS_RETRY;
		ct->retry_at = wall_ms() + (uint64_t)(c->retry_minutes[k] *
		    60000.0 + 0.5);
	}
	if (strcmp(outcome, "do_not_call") == 0 && !dnc_has(ct->phone)) {
		dnc_add(ct->phone);
		if (m->store != NULL)
			store_post(m->store, json_pack("{s:s,s:s,s:I,s:s,s:s}",
			    "type", "do_not_call", "phone", ct->phone, "at",
			    (json_int_t)wall_ms(), "campaign", c->id, "call_sid",
			    ct->sid));
	}
	contact_post(m, c, ct);
	mask_phone(ct->phone, masked, sizeof(masked));
	log_info("campaign %s: %s attempt %d: %s, now %s", c->id, masked,
	    ct->attempts, outcome, state_names[ct->state]);
}

/* The outcome of a call that is over, from its final status. */
static const char *
status_outcome(const struct camp_contact *ct, const char *status)
{
	if (strcmp(status, "busy") == 0)
		return "busy";
	if (strcmp(status, "no-answer") == 0)
		return "no-answer";
	if (strcmp(status, "failed") == 0 || strcmp(status, "canceled") == 0)
		return "failed";
	if (strcmp(status, "unknown") == 0)
		/* Twilio never created it, or never said; what a tool decided
		 * on the call (an arrangement, do-not-call) stands */
		return ct->outcome[0] != '\0' ? ct->outcome : "unknown";
	if (strcmp(status, "completed") != 0)
		return NULL;
	if (ct->outcome[0] != '\0')
		return ct->outcome;	/* a tool said */
	return ct->machine ? "voicemail" : "answered";
}

/* ---------------------------------------------------------------- */
/* the state read at start, and the contacts tables */

static void campaign_tick(uv_timer_t *t);
static void load_state(struct master *m);
static void camp_run(struct master *m, struct campaign *c, uint64_t mono,
    uint64_t now);

static uint64_t		 cg_read_gen;
static uv_timer_t	 cg_reread;
static int		 cg_reread_on;

static void
contacts_free(struct camp_contact *ct, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_decref(ct[i].vars);
		json_decref(ct[i].detail);
	}
	free(ct);
}

/* The zone called name for to's contacts: to's own, or from's moved into
 * to (from keeps none of it), so that no zone is read from disk here. */
static const struct tz *
zone_take(struct campaign_set *to, struct campaign_set *from,
    const char *name)
{
	struct camp_zone *z;

	for (size_t i = 0; i < to->nzones; i++)
		if (strcmp(to->zones[i].name, name) == 0)
			return to->zones[i].tz;
	for (size_t i = 0; i < from->nzones; i++) {
		if (strcmp(from->zones[i].name, name) != 0)
			continue;
		if ((z = realloc(to->zones, (to->nzones + 1) *
		    sizeof(*z))) == NULL)
			return NULL;
		to->zones = z;
		to->zones[to->nzones++] = from->zones[i];
		from->zones[i].tz = NULL;
		if (to->zones[to->nzones - 1].tz == NULL)
			log_warnx("campaigns: %s; its contacts are not dialled",
			    to->zones[to->nzones - 1].why);
		return to->zones[to->nzones - 1].tz;
	}
	return zone_get(to, name);
}

/* What the master knew of contact o, kept for ct (the same number). */
static void
contact_state_copy(struct camp_contact *ct, const struct camp_contact *o)
{
	ct->state = o->state;
	ct->attempts = o->attempts;
	memcpy(ct->outcome, o->outcome, sizeof(ct->outcome));
	json_decref(ct->detail);
	ct->detail = json_incref(o->detail);
	ct->retry_at = o->retry_at;
	memcpy(ct->sid, o->sid, sizeof(ct->sid));
	ct->machine = o->machine;
	ct->busy = o->busy;
	ct->calling_since = o->calling_since;
	ct->prev_state = o->prev_state;
	memcpy(ct->prev_outcome, o->prev_outcome, sizeof(ct->prev_outcome));
}

/* A contact's row of campaign_contacts applied to ct: 1, or 0 when the
 * row is not one. */
static int
state_apply(struct master *m, struct campaign *c, struct camp_contact *ct,
    const json_t *row)
{
	const char *st = json_string_value(json_object_get(row, "state"));
	const char *oc = json_string_value(json_object_get(row, "outcome"));
	const char *sid = json_string_value(json_object_get(row, "call_sid"));
	const char *cst = json_string_value(json_object_get(row,
	    "call_status"));
	const char *by = json_string_value(json_object_get(row,
	    "answered_by"));
	const char *det = json_string_value(json_object_get(row, "detail"));
	size_t s;

	if (st == NULL)
		return 0;
	for (s = 0; s < ARRAY_LEN(state_names) &&
	    strcmp(state_names[s], st) != 0; s++)
		;
	if (s == ARRAY_LEN(state_names))
		return 0;
	ct->state = (enum camp_state)s;
	ct->attempts = (int)json_integer_value(json_object_get(row,
	    "attempts"));
	vr_strlcpy(ct->outcome, oc ? oc : "", sizeof(ct->outcome));
	vr_strlcpy(ct->sid, sid ? sid : "", sizeof(ct->sid));
	ct->retry_at = (uint64_t)json_integer_value(json_object_get(row,
	    "retry_at"));
	json_decref(ct->detail);
	ct->detail = det ? json_loads(det, 0, NULL) : NULL;
	ct->machine = by != NULL && strncmp(by, "machine", 7) == 0;
	if (ct->state != CS_CALLING)
		return 1;
	/* left calling by the last run: its call decides */
	ct->calling_since = mono_ms();
	if (ct->sid[0] == '\0')
		/* killed between the create and its answer: Twilio may
		 * have made the call.  The row was last written by the
		 * attempt's mark (nothing else writes a calling row with
		 * no sid), so its updated_at is when the attempt began. */
		callcheck_find(m, c->id, ct->phone,
		    (uint64_t)json_integer_value(json_object_get(row,
		    "updated_at")));
	else if (cst != NULL && status_outcome(ct, cst) != NULL)
		finish(m, c, ct, status_outcome(ct, cst));
	else
		/* its final callback may have come while we were down:
		 * Twilio knows */
		callcheck_restore(m, ct->sid, c->line);
	return 1;
}

/*
 * One read of a campaign's contacts table.  The loop fills in what to
 * read (copies: the campaign may be reloaded away meanwhile); the store's
 * thread reads it into c and zones, which the loop then takes over.
 */
struct tread {
	struct master	*m;
	char		 id[CAMP_ID_MAX];
	uint64_t	 gen;
	char		 line[33];
	json_t		*need;
	int		 with_state;	/* also the campaign's stored state */
	/* the thread's */
	struct campaign	 c;
	struct campaign_set zones;
	char		 err[4096];
	int		 nerr;
	int		 down;
	json_t		*rows;		/* the stored state */
	uint64_t	 read_us;	/* the thread's time on it */
};

static void
tread_clear(struct tread *t)
{
	contacts_free(t->c.ct, t->c.nct);
	t->c.ct = NULL;
	t->c.nct = 0;
	free(t->c.byphone);
	t->c.byphone = NULL;
	campaign_set_free(&t->zones);
	json_decref(t->rows);
	t->rows = NULL;
	t->err[0] = '\0';
	t->nerr = 0;
	t->down = 0;
}

static void
tread_free(struct tread *t)
{
	if (t == NULL)
		return;
	tread_clear(t);
	json_decref(t->need);
	free(t->c.file);
	free(t);
}

/*
 * Contacts a read or a reload replaced are freed on the store's thread,
 * never on the loop: freeing writes every page they are on, and those
 * pages are shared with the workers forked since they were written, so
 * each write copies its page first.  100000 contacts freed on the loop
 * held it for 0.5 to 0.75 s (a CSV's, at a reload) and up to a second (a
 * table's).  The one path for both: off_loop_free().
 */
struct off_free {
	void	(*fn)(void *);
	void	*arg;
};

static json_t *
off_free_q(struct store_db *db, void *arg, char *err, size_t errlen)
{
	struct off_free *o = arg;

	(void)db;
	(void)err;
	(void)errlen;
	o->fn(o->arg);
	free(o);
	return json_true();	/* never NULL: that would run it twice */
}

static void
off_freed(json_t *res, const char *err, void *arg)
{
	(void)err;
	(void)arg;
	json_decref(res);
}

/* fn(arg) on the store's thread, or here when there is none. */
static void
off_loop_free(struct master *m, void (*fn)(void *), void *arg)
{
	struct off_free *o;

	if (m->store == NULL || (o = malloc(sizeof(*o))) == NULL) {
		fn(arg);
		return;
	}
	o->fn = fn;
	o->arg = arg;
	if (store_query_async(m->store, off_free_q, o, off_freed, NULL) != 0) {
		free(o);
		fn(arg);
	}
}

static void
tread_free_v(void *t)
{
	tread_free(t);
}

/* t, owning all it holds, freed off the loop where possible. */
static void
tread_dispose(struct master *m, struct tread *t)
{
	off_loop_free(m, tread_free_v, t);
}

static void
set_free_v(void *cs)
{
	campaign_set_free(cs);
	free(cs);
}

static struct tread *
tread_new(struct master *m, struct campaign *c, int with_state)
{
	struct tread *t = calloc(1, sizeof(*t));

	if (t == NULL || (t->c.file = strdup(c->file ? c->file : c->id)) ==
	    NULL || (t->need = json_deep_copy(c->need)) == NULL) {
		if (t != NULL)
			free(t->c.file);
		free(t);
		return NULL;
	}
	t->m = m;
	t->with_state = with_state;
	vr_strlcpy(t->id, c->id, sizeof(t->id));
	vr_strlcpy(t->line, c->line, sizeof(t->line));
	vr_strlcpy(t->c.id, c->id, sizeof(t->c.id));
	vr_strlcpy(t->c.table, c->table, sizeof(t->c.table));
	vr_strlcpy(t->c.schema, c->schema, sizeof(t->c.schema));
	t->gen = c->read_gen = ++cg_read_gen;
	c->reading = 1;
	return t;
}

/* On the store's thread: 0, or -1 (t->down: the database did not answer,
 * else the table's problems are in t->err). */
static int
tread_run(struct store_db *db, struct tread *t)
{
	struct lerr e = { t->err, sizeof(t->err), 0 };
	char why[512];
	uint64_t t0 = mono_us();

	tread_clear(t);
	if (db == NULL) {
		t->down = 1;
		snprintf(t->err, sizeof(t->err), "the database is down");
		return -1;
	}
	if (table_load(db, &t->zones, &t->c, t->need, t->line, 0, &e,
	    &t->down) != 0) {
		t->nerr = e.n;
		return -1;
	}
	if (t->with_state && (t->rows = store_db_campaign_contacts(db, t->id,
	    why, sizeof(why))) == NULL) {
		t->down = 1;
		snprintf(t->err, sizeof(t->err), "%s", why);
		return -1;
	}
	t->read_us = mono_us() - t0;
	return 0;
}

/*
 * t's contacts become c's.  Those c had keep what the master knew of
 * them; the others take their stored state from t->rows (a reload's read:
 * a row added back keeps its attempts), or from the state read at start.
 * c's former contacts go to t, to be freed with it.
 */
static void
table_install(struct master *m, struct campaign *c, struct tread *t)
{
	size_t n = t->c.nct, kept = 0, i;
	unsigned char *known = NULL;
	uint64_t t0 = mono_us();
	json_t *row;

	if (n > 0 && (known = calloc(n, 1)) == NULL) {
		log_warnx("campaign %s: out of memory; the %zu contacts last "
		    "read stay", c->id, c->nct);
		return;
	}
	for (i = 0; i < n; i++) {
		struct camp_contact *ct = &t->c.ct[i], *o;

		ct->zone = zone_take(&m->campaigns, &t->zones, ct->tzname);
		if ((o = contact_find(c, ct->phone)) != NULL) {
			/* o is only read: its pages are shared with the
			 * workers forked since it was written, and a write
			 * copies them (300 ms at 100000 contacts).  A detail
			 * both hold is freed by the last, on either thread
			 * (jansson counts references atomically). */
			contact_state_copy(ct, o);
			known[i] = 1;
			kept++;
		}
	}
	{
		struct camp_contact *oct = c->ct;
		size_t on = c->nct, *oby = c->byphone;

		c->ct = t->c.ct;
		c->nct = n;
		c->byphone = t->c.byphone;
		t->c.ct = oct;
		t->c.nct = on;
		t->c.byphone = oby;
	}
	free(c->waits);
	c->waits = NULL;
	c->cursor = 0;
	json_array_foreach(t->rows, i, row) {
		const char *ph = json_string_value(json_object_get(row, "phone"));
		struct camp_contact *ct = ph ? contact_find(c, ph) : NULL;

		if (ct != NULL && !known[ct - c->ct])
			state_apply(m, c, ct, row);
	}
	free(known);
	log_info("campaign %s: %zu contact%s read from table %s%s%s (%zu "
	    "new) in %.1f ms, %.1f ms of the loop", c->id, n, n == 1 ? "" : "s",
	    c->schema, c->schema[0] ? "." : "", c->table, n - kept,
	    (double)t->read_us / 1000.0, (double)(mono_us() - t0) / 1000.0);
}

/* t's problems, each on a log line of its own. */
static void
tread_log(const struct tread *t)
{
	char *copy = strdup(t->err), *line, *save;

	for (line = copy ? strtok_r(copy, "\n", &save) : NULL; line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		log_warnx("campaigns: %s", line);
	if (t->nerr > 20)
		log_warnx("campaigns: %s: %d problems in all", t->c.file, t->nerr);
	free(copy);
}

static json_t *
tread_q(struct store_db *db, void *arg, char *err, size_t errlen)
{
	struct tread *t = arg;

	if (tread_run(db, t) != 0 && t->down) {
		snprintf(err, errlen, "%.*s", (int)strcspn(t->err, "\n"),
		    t->err);
		return NULL;
	}
	return json_true();
}

static void table_read(struct master *m, struct campaign *c);

static void
reread_cb(uv_timer_t *timer)
{
	struct master *m = timer->loop->data;

	if (m->draining)
		return;
	for (size_t i = 0; i < m->campaigns.n; i++) {
		struct campaign *c = &m->campaigns.v[i];

		if (c->table[0] != '\0' && c->reread && !c->reading)
			table_read(m, c);
	}
}

static void
tread_done(json_t *res, const char *err, void *arg)
{
	struct tread *t = arg;
	struct master *m = t->m;
	struct campaign *c = camp_find(m, t->id);
	int ok = res != NULL;

	json_decref(res);
	if (c == NULL || c->read_gen != t->gen) {
		tread_dispose(m, t);	/* a reload asked again since */
		return;
	}
	c->reading = 0;
	if (!ok) {
		log_warnx("campaign %s: contacts table %s%s%s cannot be read "
		    "(%s); the %zu contacts last read stay, read again in %d s",
		    c->id, c->schema, c->schema[0] ? "." : "", c->table,
		    err ? err : "?", c->nct, CAMP_RELOAD_MS / 1000);
		c->reread = 1;
		if (!cg_reread_on) {
			uv_timer_init(m->loop, &cg_reread);
			cg_reread_on = 1;
		}
		uv_timer_start(&cg_reread, reread_cb, CAMP_RELOAD_MS, 0);
	} else if (t->nerr > 0) {
		tread_log(t);
		log_warnx("campaign %s: its contacts table has errors; the %zu "
		    "contacts last read stay", c->id, c->nct);
	} else
		table_install(m, c, t);
	tread_dispose(m, t);
	/* the first pass after a reload is now */
	c->in_pass = 0;
	c->next_pass = 0;
	if (cg_loaded && !m->draining)
		camp_run(m, c, mono_ms(), wall_ms());
}

/* Read c's table again (a reload): its contacts stay as they are, and
 * none of them is dialled, until the rows are in. */
static void
table_read(struct master *m, struct campaign *c)
{
	struct tread *t;

	c->reread = 0;
	if (m->store == NULL)
		return;
	if ((t = tread_new(m, c, 1)) == NULL) {
		log_warnx("campaign %s: out of memory", c->id);
		return;
	}
	if (store_query_async(m->store, tread_q, t, tread_done, t) != 0) {
		c->reading = 0;
		tread_free(t);
		log_warnx("campaign %s: cannot ask the store for its contacts "
		    "table; the %zu contacts last read stay", c->id, c->nct);
	}
}

/* The read at start: every contacts table, then the state of every
 * contact, in one go on the store's thread so that each contact read
 * finds its stored state. */
struct load {
	struct master	*m;
	size_t		 n;
	struct tread	*t[CAMP_MAX];
};

static void
load_free(struct load *ld)
{
	for (size_t i = 0; i < ld->n; i++)
		tread_dispose(ld->m, ld->t[i]);
	free(ld);
}

static json_t *
load_q(struct store_db *db, void *arg, char *err, size_t errlen)
{
	struct load *ld = arg;

	if (db == NULL) {
		snprintf(err, errlen, "the database is down");
		return NULL;
	}
	for (size_t i = 0; i < ld->n; i++)
		if (tread_run(db, ld->t[i]) != 0 && ld->t[i]->down) {
			snprintf(err, errlen, "%.*s", (int)strcspn(ld->t[i]->err,
			    "\n"), ld->t[i]->err);
			return NULL;
		}
	return store_db_campaign_state(db, err, errlen);
}

static void
reload_timer_cb(uv_timer_t *t)
{
	load_state(t->loop->data);
}

static void
load_done(json_t *res, const char *err, void *arg)
{
	struct load *ld = arg;
	struct master *m = ld->m;
	size_t i, nrec = 0;
	json_t *row;

	cg_loading = 0;
	for (i = 0; i < ld->n; i++) {
		struct campaign *c = camp_find(m, ld->t[i]->id);

		if (c == NULL || c->read_gen != ld->t[i]->gen) {
			/* reloaded meanwhile: read what is now configured */
			json_decref(res);
			load_free(ld);
			load_state(m);
			return;
		}
	}
	if (res == NULL) {
		static uv_timer_t again;
		static int again_on;

		log_warnx("campaigns: cannot read the contacts' state (%s); "
		    "nobody is dialled until it can be read", err ? err : "?");
		if (!again_on) {
			uv_timer_init(m->loop, &again);
			again_on = 1;
		}
		uv_timer_start(&again, reload_timer_cb, CAMP_RELOAD_MS, 0);
		load_free(ld);
		return;
	}
	for (i = 0; i < ld->n; i++) {
		struct tread *t = ld->t[i];
		struct campaign *c = camp_find(m, t->id);

		c->reading = 0;
		if (t->nerr > 0) {
			tread_log(t);
			log_warnx("campaign %s: its contacts table has errors; none "
			    "of it is dialled until they are fixed and voxrelay "
			    "reloaded", c->id);
		} else
			table_install(m, c, t);
	}
	json_array_foreach(json_object_get(res, "do_not_call"), i, row)
		dnc_add(json_string_value(json_object_get(row, "phone")));
	json_array_foreach(json_object_get(res, "campaigns"), i, row) {
		const char *id = json_string_value(json_object_get(row, "id"));
		struct campaign *c = id ? camp_find(m, id) : NULL;
		if (c != NULL)
			c->paused = json_integer_value(json_object_get(row,
			    "paused")) != 0;
	}
	json_array_foreach(json_object_get(res, "contacts"), i, row) {
		const char *cid = json_string_value(json_object_get(row,
		    "campaign"));
		const char *ph = json_string_value(json_object_get(row, "phone"));
		struct campaign *c = cid ? camp_find(m, cid) : NULL;
		struct camp_contact *ct = c && ph ? contact_find(c, ph) : NULL;

		/* one no longer in its campaign's list is skipped */
		if (ct != NULL)
			nrec += (size_t)state_apply(m, c, ct, row);
	}
	json_decref(res);
	load_free(ld);
	cg_loaded = 1;
	log_info("campaigns: %zu campaign%s, the state of %zu contact%s read",
	    m->campaigns.n, m->campaigns.n == 1 ? "" : "s", nrec,
	    nrec == 1 ? "" : "s");
	/* the other calls the last run left open: asked about now that
	 * their answers find the contacts they decide */
	callcheck_start(m);
	campaign_tick(&cg_timer);
}

static void
load_state(struct master *m)
{
	struct load *ld;

	if (cg_loading || cg_loaded || m->campaigns.n == 0)
		return;
	/* (CALL_RECORDS=false with campaigns is refused by config_build()) */
	if (m->store == NULL) {
		log_warnx("campaigns: the store did not start; no contact is "
		    "dialled in this run");
		return;
	}
	if ((ld = calloc(1, sizeof(*ld))) == NULL) {
		log_warnx("campaigns: out of memory");
		return;
	}
	ld->m = m;
	for (size_t i = 0; i < m->campaigns.n && ld->n < CAMP_MAX; i++) {
		struct campaign *c = &m->campaigns.v[i];

		if (c->table[0] == '\0')
			continue;
		if ((ld->t[ld->n] = tread_new(m, c, 0)) == NULL) {
			log_warnx("campaigns: out of memory");
			load_free(ld);
			return;
		}
		ld->n++;
	}
	cg_loading = 1;
	if (store_query_async(m->store, load_q, ld, load_done, ld) != 0) {
		cg_loading = 0;
		load_free(ld);
		log_warnx("campaigns: cannot ask the store for the contacts' "
		    "state");
	}
}

/* ---------------------------------------------------------------- */
/* dialling */

/* Local minutes of the day at the contact, on the campaigns' clock. */
static int
local_minute(const struct camp_contact *ct, uint64_t now_ms)
{
	int64_t t = (int64_t)(now_ms / 1000) + cg_clock_ms / 1000;
	int64_t local = t + tz_offset(ct->zone, t);
	int64_t sod = local % 86400;

	if (sod < 0)
		sod += 86400;
	return (int)(sod / 60);
}

/* NULL when ct may be dialled now, else why not. */
static const char *
why_not(struct master *m, struct campaign *c, struct camp_contact *ct,
    uint64_t now)
{
	int min, ok = 0;

	if (ct->busy || ct->state == CS_CALLING)
		return "calling";
	if (ct->state == CS_DONE || ct->state == CS_EXHAUSTED)
		return "finished";
	if (dnc_has(ct->phone))
		return "do_not_call";
	if (ct->zone == NULL)
		return "unknown_timezone";
	if (ct->state == CS_RETRY && ct->retry_at > now)
		return "retry_later";
	if (ct->attempts >= c->max_attempts)
		return "finished";
	min = local_minute(ct, now);
	if (in_window(&c->quiet, min))
		return "quiet_hours";
	for (int i = 0; i < c->nwindows && !ok; i++)
		ok = in_window(&c->windows[i], min);
	if (!ok)
		return "outside_window";
	if (!outbound_allowed(m, ct->phone))
		return "not_allowed";
	if (outbound_cooldown_left(m, ct->phone) > 0)
		return "cooldown";
	return NULL;
}

static unsigned
camp_calling(const struct campaign *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < c->nct; i++)
		n += c->ct[i].state == CS_CALLING;
	return n;
}

/* Calls started in the last minute. */
static size_t
camp_recent(const struct campaign *c, uint64_t mono)
{
	size_t n = 0;

	for (size_t i = 0; i < c->nstarts; i++)
		n += c->starts[i] + 60000 > mono;
	return n;
}

struct mark {
	struct master	*m;
	char	 campaign[CAMP_ID_MAX];
	char	 phone[SHM_PHONE_MAX];
	int	 attempts;
};

static json_t *
mark_q(struct store_db *db, void *arg, char *err, size_t errlen)
{
	struct mark *mk = arg;

	if (db == NULL) {
		snprintf(err, errlen, "the database is down");
		return NULL;
	}
	return store_db_contact(db, mk->campaign, mk->phone, err, errlen);
}

/* The attempt's mark was written (or not): now ask Twilio, or undo. */
static void
mark_done(json_t *res, const char *err, void *arg)
{
	struct mark *mk = arg;
	struct master *m = mk->m;
	struct campaign *c = camp_find(m, mk->campaign);
	struct camp_contact *ct = c ? contact_find(c, mk->phone) : NULL;
	const char *st = json_string_value(json_object_get(res, "state"));
	char masked[64];

	if (ct == NULL || ct->state != CS_CALLING || ct->attempts !=
	    mk->attempts || !ct->busy)
		goto out;	/* reloaded away meanwhile */
	mask_phone(ct->phone, masked, sizeof(masked));
	if (st == NULL || strcmp(st, "calling") != 0 ||
	    json_integer_value(json_object_get(res, "attempts")) !=
	    mk->attempts) {
		/* not durable: this attempt is not made */
		log_warnx("campaign %s: %s not dialled: its attempt could not be "
		    "written (%s)", c->id, masked, err ? err : "not read back");
		ct->attempts--;
		ct->state = ct->prev_state;
		vr_strlcpy(ct->outcome, ct->prev_outcome, sizeof(ct->outcome));
		ct->busy = 0;
		contact_post(m, c, ct);
		goto out;
	}
	if (outbound_place(m, ct->phone, c->line, ct->name, ct->vars,
	    c->id) != 0) {
		log_warnx("campaign %s: %s: the call could not be started", c->id,
		    masked);
		finish(m, c, ct, "failed");
		goto out;
	}
	log_info("campaign %s: dialling %s, attempt %d of %d", c->id, masked,
	    ct->attempts, c->max_attempts);
out:
	json_decref(res);
	free(mk);
}

static void
dial(struct master *m, struct campaign *c, struct camp_contact *ct)
{
	struct mark *mk = calloc(1, sizeof(*mk));
	uint64_t mono = mono_ms();

	if (mk == NULL)
		return;
	ct->prev_state = ct->state;
	vr_strlcpy(ct->prev_outcome, ct->outcome, sizeof(ct->prev_outcome));
	ct->attempts++;
	ct->state = CS_CALLING;
	ct->outcome[0] = '\0';
	ct->sid[0] = '\0';
	ct->machine = 0;
	json_decref(ct->detail);
	ct->detail = NULL;
	ct->busy = 1;
	ct->calling_since = mono;
	if (c->starts != NULL) {
		/* the oldest start gives its place */
		size_t old = 0;
		for (size_t i = 1; i < c->nstarts; i++)
			if (c->starts[i] < c->starts[old])
				old = i;
		if (c->nstarts < (size_t)c->calls_per_minute)
			c->starts[c->nstarts++] = mono;
		else
			c->starts[old] = mono;
	}
	contact_post(m, c, ct);
	mk->m = m;
	vr_strlcpy(mk->campaign, c->id, sizeof(mk->campaign));
	vr_strlcpy(mk->phone, ct->phone, sizeof(mk->phone));
	mk->attempts = ct->attempts;
	if (store_query_async(m->store, mark_q, mk, mark_done, mk) != 0) {
		/* cannot check it: undo */
		free(mk);
		ct->attempts--;
		ct->state = ct->prev_state;
		vr_strlcpy(ct->outcome, ct->prev_outcome, sizeof(ct->outcome));
		ct->busy = 0;
		contact_post(m, c, ct);
	}
}

static void camp_pass(struct master *m, struct campaign *c, uint64_t mono,
    uint64_t now);

/* One tick of c's schedule; a pass's cost on the loop is logged when it
 * ends. */
static void
camp_run(struct master *m, struct campaign *c, uint64_t mono, uint64_t now)
{
	uint64_t t0 = mono_us(), passes = c->passes;
	int was = c->in_pass;

	if (!was)
		c->pass_us = 0;
	camp_pass(m, c, mono, now);
	c->pass_us += mono_us() - t0;
	if ((was || passes != c->passes) && !c->in_pass)
		log_debug("campaign %s: pass %llu over %zu contacts took %.1f ms "
		    "of the loop", c->id, (unsigned long long)c->passes, c->nct,
		    (double)c->pass_us / 1000.0);
}

static void
camp_pass(struct master *m, struct campaign *c, uint64_t mono, uint64_t now)
{
	const struct line *l = line_find(&m->lines, c->line);
	uint64_t stale = CAMP_STALE_MS;

	if (c->starts == NULL)
		c->starts = calloc((size_t)c->calls_per_minute, sizeof(*c->starts));
	if (c->waits == NULL && c->nct > 0 &&
	    (c->waits = calloc(c->nct, sizeof(*c->waits))) == NULL)
		return;
	/* a call whose end never came is asked about (callcheck.c), which
	 * ends its attempt one way or the other; one nobody asks about
	 * stops holding its place once the line's own limit on a call, and
	 * 5 minutes of ringing and slack, are past: the attempt is spent,
	 * never made again */
	if (l != NULL && l->max_call_minutes > 0)
		stale = (uint64_t)(l->max_call_minutes * 60000.0) + 300000;
	for (size_t i = 0; i < c->nct; i++) {
		struct camp_contact *ct = &c->ct[i];
		if (ct->state == CS_CALLING && !ct->busy &&
		    mono - ct->calling_since > stale &&
		    !callcheck_watching(ct->sid))
			/* what a tool decided on the call stands */
			finish(m, c, ct, ct->outcome[0] != '\0' ? ct->outcome :
			    "unknown");
	}
	if (c->paused || c->reading)
		return;
	if (!c->in_pass && mono >= c->next_pass) {
		c->in_pass = 1;
		c->cursor = 0;
		c->passes++;
		c->next_pass = mono + c->every_ms;
	}
	while (c->in_pass && c->cursor < c->nct) {
		struct camp_contact *ct = &c->ct[c->cursor];
		const char **wait = &c->waits[c->cursor];

		if ((*wait = why_not(m, c, ct, now)) != NULL) {
			c->cursor++;
			continue;
		}
		if (camp_calling(c) >= (unsigned)c->max_concurrent ||
		    camp_recent(c, mono) >= (size_t)c->calls_per_minute ||
		    outbound_active() >= (unsigned)m->conf.max_concurrent_calls) {
			*wait = "pacing";
			return;		/* the next tick goes on from here */
		}
		if (!outbound_ready(m)) {
			*wait = "not_configured";
			return;
		}
		dial(m, c, ct);
		c->cursor++;
	}
	c->in_pass = 0;
}

static void
campaign_tick(uv_timer_t *t)
{
	struct master *m = t->loop->data;
	uint64_t mono = mono_ms(), now = wall_ms();

	if (!cg_loaded || m->draining)
		return;
	for (size_t i = 0; i < m->campaigns.n; i++)
		camp_run(m, &m->campaigns.v[i], mono, now);
}

void
campaign_start(struct master *m)
{
	const char *t = getenv("VOXRELAY_TEST_NOW");
	uint64_t at;

	if (t != NULL && t[0] != '\0') {
		if (iso8601_parse(t, &at) == 0) {
			cg_clock_ms = (int64_t)at - (int64_t)wall_ms();
			log_warnx("campaigns: VOXRELAY_TEST_NOW: windows and quiet "
			    "hours are judged as if it were %s (for tests only)", t);
		} else
			log_warnx("campaigns: VOXRELAY_TEST_NOW \"%s\" is not an "
			    "ISO 8601 time; ignored", t);
	}
	uv_timer_init(m->loop, &cg_timer);
	cg_timer_on = 1;
	uv_timer_start(&cg_timer, campaign_tick, CAMP_TICK_MS, CAMP_TICK_MS);
	load_state(m);
	if (!cg_loading)
		callcheck_start(m);	/* no contacts' state to wait for */
}

void
campaign_reloaded(struct master *m, struct campaign_set *old)
{
	uint64_t t0 = mono_us();
	size_t ncsv = 0, nold = 0;
	struct campaign_set *dead;
	struct rusage ru0, ru1;

	/* the loop thread's page faults: a page shared with the workers
	 * and written here is one, as it is copied first */
	if (getrusage(RUSAGE_THREAD, &ru0) != 0)
		memset(&ru0, 0, sizeof(ru0));

	for (size_t j = 0; j < old->n; j++)
		if (old->v[j].table[0] == '\0')
			nold += old->v[j].nct;
	for (size_t i = 0; i < m->campaigns.n; i++) {
		struct campaign *c = &m->campaigns.v[i];
		struct campaign *oc = NULL;

		for (size_t j = 0; j < old->n; j++)
			if (strcmp(old->v[j].id, c->id) == 0)
				oc = &old->v[j];
		if (oc == NULL)
			continue;
		c->paused = oc->paused;
		c->passes = oc->passes;
		if (oc->starts != NULL && (c->starts = calloc(
		    (size_t)c->calls_per_minute, sizeof(*c->starts))) != NULL)
			for (size_t k = 0; k < oc->nstarts &&
			    c->nstarts < (size_t)c->calls_per_minute; k++)
				c->starts[c->nstarts++] = oc->starts[k];
		if (c->table[0] != '\0') {
			/* the contacts last read stay until the table is read
			 * again, with all the master knew of them */
			c->ct = oc->ct;
			c->nct = oc->nct;
			c->byphone = oc->byphone;
			oc->ct = NULL;
			oc->nct = 0;
			oc->byphone = NULL;
			for (size_t k = 0; k < c->nct; k++)
				c->ct[k].zone = zone_take(&m->campaigns, old,
				    c->ct[k].tzname);
			continue;
		}
		for (size_t k = 0; k < c->nct; k++) {
			struct camp_contact *o;

			if ((o = contact_find(oc, c->ct[k].phone)) != NULL)
				contact_state_copy(&c->ct[k], o);
		}
	}
	for (size_t i = 0; i < m->campaigns.n; i++)
		if (m->campaigns.v[i].table[0] == '\0')
			ncsv += m->campaigns.v[i].nct;
	/* the old set was only read here (a table's contacts moved out of
	 * it): freed off the loop, as a table's replaced contacts are */
	if ((dead = malloc(sizeof(*dead))) != NULL) {
		*dead = *old;
		memset(old, 0, sizeof(*old));
		off_loop_free(m, set_free_v, dead);
	} else
		campaign_set_free(old);
	if (getrusage(RUSAGE_THREAD, &ru1) != 0)
		ru1 = ru0;
	if (ncsv + nold > 0)
		log_info("campaigns: %zu contact%s from CSV files took over the "
		    "state of the %zu before the reload in %.1f ms of the loop "
		    "(%ld page faults)", ncsv, ncsv == 1 ? "" : "s", nold,
		    (double)(mono_us() - t0) / 1000.0,
		    ru1.ru_minflt - ru0.ru_minflt + ru1.ru_majflt - ru0.ru_majflt);
	if (!cg_loaded) {
		load_state(m);
		return;
	}
	for (size_t i = 0; i < m->campaigns.n; i++)
		if (m->campaigns.v[i].table[0] != '\0')
			table_read(m, &m->campaigns.v[i]);
	/* the first pass after a reload is now */
	campaign_tick(&cg_timer);
}

void
campaign_created(struct master *m, const char *campaign, const char *phone,
    const char *sid)
{
	struct campaign *c = camp_find(m, campaign);
	struct camp_contact *ct = c ? contact_find(c, phone) : NULL;

	if (ct == NULL || ct->state != CS_CALLING)
		return;
	if (sid == NULL) {
		finish(m, c, ct, "failed");
		return;
	}
	ct->busy = 0;
	vr_strlcpy(ct->sid, sid, sizeof(ct->sid));
	contact_post(m, c, ct);
}

void
campaign_adopt(struct master *m, const char *campaign, const char *phone,
    const char *sid, uint64_t created_ms)
{
	struct campaign *c = camp_find(m, campaign);
	struct camp_contact *ct = c ? contact_find(c, phone) : NULL;

	if (ct == NULL || ct->state != CS_CALLING || ct->sid[0] != '\0')
		return;
	if (sid == NULL) {
		finish(m, c, ct, "unknown");
		return;
	}
	vr_strlcpy(ct->sid, sid, sizeof(ct->sid));
	ct->calling_since = mono_ms();
	contact_post(m, c, ct);
	/* the call's record, as the create's answer would have begun it */
	if (m->store != NULL)
		store_post(m->store, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,"
		    "s:s}", "type", "call", "call_sid", sid, "direction",
		    "outbound-api", "from", m->conf.phone_number_from, "to", phone,
		    "line", c->line, "started_at", (json_int_t)(created_ms ?
		    created_ms : wall_ms()), "status", "queued", "host",
		    m->hostname));
	callcheck_restore(m, sid, c->line);
}

/* ct's last attempt was spent as unknown (its call given up, or never
 * reported over) and ct has not been dialled since: its call's real end
 * may still say how it went. */
static int
late_ok(const struct camp_contact *ct)
{
	return ct->state != CS_CALLING && !ct->busy && ct->sid[0] != '\0' &&
	    strcmp(ct->outcome, "unknown") == 0;
}

/*
 * The final status of ct's last call came after its attempt was spent as
 * unknown: the real outcome replaces unknown.  Only ever towards fewer
 * calls: answered ends the contact (done), any other outcome keeps its
 * state (retry at the time already set, or exhausted); the attempts stay.
 * A tool's outcome is never replaced (unknown is only what no tool said),
 * nor is do-not-call, which lives apart.
 */
static void
late_status(struct master *m, struct campaign *c, struct camp_contact *ct,
    const char *status)
{
	const char *o;
	char masked[64];

	if (strcmp(status, "completed") == 0)
		o = ct->machine ? "voicemail" : "answered";
	else if (strcmp(status, "unknown") == 0 ||
	    (o = status_outcome(ct, status)) == NULL)
		return;		/* not over, or still not known */
	vr_strlcpy(ct->outcome, o, sizeof(ct->outcome));
	if (retry_kind(o) < 0)
		ct->state = CS_DONE;
	contact_post(m, c, ct);
	mask_phone(ct->phone, masked, sizeof(masked));
	log_info("campaign %s: %s attempt %d: %s after all (its call's status "
	    "came after the attempt was spent as unknown), now %s", c->id,
	    masked, ct->attempts, o, state_names[ct->state]);
}

void
campaign_call_status(struct master *m, const char *sid, const char *status)
{
	struct campaign *c;
	struct camp_contact *ct = contact_by_sid(m, sid, &c);
	const char *o;

	if (ct == NULL)
		return;
	if (late_ok(ct)) {
		late_status(m, c, ct, status);
		return;
	}
	if (ct->state != CS_CALLING)
		return;
	if ((o = status_outcome(ct, status)) != NULL)
		finish(m, c, ct, o);
}

int
campaign_call_known(struct master *m, const char *sid)
{
	struct campaign *c;
	struct camp_contact *ct = contact_by_sid(m, sid, &c);

	return ct != NULL && ct->state == CS_CALLING;
}

void
campaign_call_amd(struct master *m, const char *sid, const char *by)
{
	struct campaign *c;
	struct camp_contact *ct = contact_by_sid(m, sid, &c);

	if (ct != NULL && (ct->state == CS_CALLING || late_ok(ct)))
		ct->machine = strncmp(by, "machine", 7) == 0;
}

void
campaign_call_outcome(struct master *m, const json_t *rec)
{
	const char *sid = json_string_value(json_object_get(rec, "call_sid"));
	const char *o = json_string_value(json_object_get(rec, "outcome"));
	json_t *amount = json_object_get(rec, "amount");
	json_t *date = json_object_get(rec, "date");
	json_t *plan = json_object_get(rec, "plan");
	struct campaign *c;
	struct camp_contact *ct;
	size_t i;

	for (i = 0; o != NULL && tool_outcomes[i] != NULL &&
	    strcmp(tool_outcomes[i], o) != 0; i++)
		;
	if (o == NULL || tool_outcomes[i] == NULL) {
		log_warnx("campaigns: an outcome record without a known outcome");
		return;
	}
	if ((ct = contact_by_sid(m, sid, &c)) == NULL) {
		log_set_call(sid);
		log_info("outcome %s of a call no campaign placed", o);
		log_set_call(NULL);
		if (strcmp(o, "do_not_call") == 0 && m->store != NULL) {
			/* kept all the same: no campaign dials it again */
			const char *to = json_string_value(json_object_get(rec,
			    "phone"));
			if (to != NULL && e164_valid(to)) {
				dnc_add(to);
				store_post(m->store, json_pack("{s:s,s:s,s:I,s:s}",
				    "type", "do_not_call", "phone", to, "at",
				    (json_int_t)wall_ms(), "call_sid", sid));
			}
		}
		return;
	}
	json_decref(ct->detail);
	ct->detail = NULL;
	if (json_is_number(amount) || json_is_string(date) ||
	    json_is_string(plan)) {
		ct->detail = json_object();
		if (json_is_number(amount))
			json_object_set(ct->detail, "amount", amount);
		if (json_is_string(date))
			json_object_set(ct->detail, "date", date);
		if (json_is_string(plan))
			json_object_set(ct->detail, "plan", plan);
	}
	if (ct->state == CS_CALLING) {
		/* the call goes on: its end takes this outcome */
		vr_strlcpy(ct->outcome, o, sizeof(ct->outcome));
		if (strcmp(o, "do_not_call") == 0 && !dnc_has(ct->phone)) {
			dnc_add(ct->phone);
			if (m->store != NULL)
				store_post(m->store, json_pack("{s:s,s:s,s:I,s:s,"
				    "s:s}", "type", "do_not_call", "phone",
				    ct->phone, "at", (json_int_t)wall_ms(),
				    "campaign", c->id, "call_sid", sid));
		}
		contact_post(m, c, ct);
	} else
		/* the call's end came first */
		finish(m, c, ct, o);
}

/* ---------------------------------------------------------------- */
/* /api/campaigns */

static void
api_answer(struct conn *c, int status, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (text == NULL) {
		conn_respond(c, 500, "text/plain", "out of memory\n", 14, NULL);
		return;
	}
	conn_respond(c, status, "application/json", text, strlen(text), NULL);
	free(text);
}

static json_t *
window_json(const struct camp_window *w)
{
	char a[24], b[24];

	snprintf(a, sizeof(a), "%02d:%02d", w->from / 60, w->from % 60);
	snprintf(b, sizeof(b), "%02d:%02d", w->to / 60, w->to % 60);
	return json_pack("{s:s,s:s}", "from", a, "to", b);
}

static json_t *
camp_summary(const struct campaign *c, int full)
{
	json_t *states = json_object(), *outcomes = json_object(), *o;
	size_t finished = 0;

	for (size_t i = 0; i < ARRAY_LEN(state_names); i++)
		json_object_set_new(states, state_names[i], json_integer(0));
	for (size_t i = 0; i < c->nct; i++) {
		const struct camp_contact *ct = &c->ct[i];
		const char *s = state_names[ct->state];
		json_object_set_new(states, s, json_integer(json_integer_value(
		    json_object_get(states, s)) + 1));
		if (ct->outcome[0] != '\0')
			json_object_set_new(outcomes, ct->outcome, json_integer(
			    json_integer_value(json_object_get(outcomes,
			    ct->outcome)) + 1));
		finished += ct->state == CS_DONE || ct->state == CS_EXHAUSTED;
	}
	o = json_pack("{s:s,s:s,s:b,s:b,s:I,s:I,s:o,s:o}", "id", c->id, "line",
	    c->line, "paused", c->paused, "loaded", cg_loaded && !c->reading,
	    "contacts", (json_int_t)c->nct, "finished", (json_int_t)finished,
	    "states", states, "outcomes", outcomes);
	if (o != NULL && c->table[0] != '\0') {
		char name[140];

		snprintf(name, sizeof(name), "%s%s%s", c->schema,
		    c->schema[0] ? "." : "", c->table);
		json_object_set_new(o, "table", json_string(name));
	}
	if (full && o != NULL) {
		json_t *w = json_array(), *r = json_object();

		for (int i = 0; i < c->nwindows; i++)
			json_array_append_new(w, window_json(&c->windows[i]));
		for (int i = 0; i < CR__N; i++)
			json_object_set_new(r, retry_names[i],
			    json_real(c->retry_minutes[i]));
		json_object_set_new(o, "windows", w);
		json_object_set_new(o, "quiet_hours", window_json(&c->quiet));
		json_object_set_new(o, "retry_minutes", r);
		json_object_set_new(o, "every_minutes",
		    json_real(c->every_minutes));
		json_object_set_new(o, "max_attempts",
		    json_integer(c->max_attempts));
		json_object_set_new(o, "calls_per_minute",
		    json_integer(c->calls_per_minute));
		json_object_set_new(o, "max_concurrent",
		    json_integer(c->max_concurrent));
		json_object_set_new(o, "passes", json_integer(
		    (json_int_t)c->passes));
	}
	return o;
}

static json_t *
contact_json(const struct camp_contact *ct, const char *wait)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i}", "phone_number", ct->phone,
	    "name", ct->name, "timezone", ct->tzname, "state",
	    state_names[ct->state], "attempts", ct->attempts);
	char when[32];

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "outcome", ct->outcome[0] ?
	    json_string(ct->outcome) : json_null());
	if (ct->state == CS_RETRY) {
		iso8601_utc(ct->retry_at, when, sizeof(when));
		json_object_set_new(o, "retry_at", json_string(when));
	}
	json_object_set_new(o, "call_sid", ct->sid[0] ? json_string(ct->sid) :
	    json_null());
	if (ct->detail != NULL)
		json_object_set(o, "detail", ct->detail);
	if (ct->zone == NULL)
		json_object_set_new(o, "waiting", json_string("unknown_timezone"));
	else if (wait != NULL && ct->state != CS_DONE &&
	    ct->state != CS_EXHAUSTED)
		json_object_set_new(o, "waiting", json_string(wait));
	return o;
}

/* ?name=N in url, within [min, max]: 0 (*out untouched when absent), or
 * -1 for a bad value. */
static int
query_long(const char *url, const char *name, long min, long max, long *out)
{
	const char *q = strchr(url, '?');
	size_t n = strlen(name);

	while (q != NULL && *q != '\0') {
		q++;
		if (strncmp(q, name, n) == 0 && q[n] == '=') {
			char *end;
			long v;

			errno = 0;
			v = strtol(q + n + 1, &end, 10);
			if (errno != 0 || end == q + n + 1 ||
			    (*end != '\0' && *end != '&') || v < min || v > max)
				return -1;
			*out = v;
			return 0;
		}
		q = strchr(q, '&');
	}
	return 0;
}

void
campaign_api(struct conn *c, struct http_req *r)
{
	struct master *m = conn_master(c);
	const char *url = http_req_url(r), *method = http_req_method(r), *id;
	size_t plen = strcspn(url, "?"), idlen;
	const char *rest;
	struct campaign *cp = NULL;
	char cid[CAMP_ID_MAX];
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (plen == 14 || (plen == 15 && url[14] == '/')) {
		json_t *a = json_array();
		if (!get) {
			conn_respond(c, 405, "text/plain", "method not allowed\n",
			    19, "Allow: GET, HEAD\r\n");
			return;
		}
		for (size_t i = 0; i < m->campaigns.n; i++)
			json_array_append_new(a, camp_summary(&m->campaigns.v[i],
			    0));
		api_answer(c, 200, json_pack("{s:o}", "campaigns", a));
		return;
	}
	id = url + 15;		/* past "/api/campaigns/" */
	idlen = strcspn(id, "/?");
	rest = id + idlen;
	if (idlen < sizeof(cid)) {
		snprintf(cid, sizeof(cid), "%.*s", (int)idlen, id);
		cp = camp_find(m, cid);
	}
	if (cp == NULL) {
		api_answer(c, 404, json_pack("{s:s}", "error", "no such campaign"));
		return;
	}
	plen -= (size_t)(rest - url);
	if (plen == 0) {
		if (!get)
			goto not_allowed;
		api_answer(c, 200, camp_summary(cp, 1));
		return;
	}
	if (plen == 9 && strncmp(rest, "/contacts", 9) == 0) {
		json_t *a;
		long limit = 1000, offset = 0;

		if (!get)
			goto not_allowed;
		if (query_long(url, "limit", 1, CAMP_PAGE_MAX, &limit) != 0 ||
		    query_long(url, "offset", 0, CAMP_CONTACTS_MAX, &offset) != 0) {
			api_answer(c, 400, json_pack("{s:s}", "error", "limit is 1 "
			    "to 10000, offset 0 to 100000"));
			return;
		}
		a = json_array();
		for (size_t i = (size_t)offset; i < cp->nct &&
		    i < (size_t)offset + (size_t)limit; i++)
			json_array_append_new(a, contact_json(&cp->ct[i],
			    cp->waits ? cp->waits[i] : NULL));
		api_answer(c, 200, json_pack("{s:s,s:I,s:I,s:I,s:o}", "id", cp->id,
		    "total", (json_int_t)cp->nct, "limit", (json_int_t)limit,
		    "offset", (json_int_t)offset, "contacts", a));
		return;
	}
	if ((plen == 6 && strncmp(rest, "/pause", 6) == 0) ||
	    (plen == 7 && strncmp(rest, "/resume", 7) == 0)) {
		if (strcmp(method, "POST") != 0) {
			conn_respond(c, 405, "text/plain", "method not allowed\n",
			    19, "Allow: POST\r\n");
			return;
		}
		cp->paused = rest[1] == 'p';
		if (m->store != NULL)
			store_post(m->store, json_pack("{s:s,s:s,s:b}", "type",
			    "campaign", "id", cp->id, "paused", cp->paused));
		log_info("campaign %s: %s", cp->id, cp->paused ? "paused" :
		    "resumed");
		if (!cp->paused && cg_loaded) {
			/* a pass now */
			cp->next_pass = 0;
			cp->in_pass = 0;
			camp_run(m, cp, mono_ms(), wall_ms());
		}
		api_answer(c, 200, json_pack("{s:s,s:b}", "id", cp->id, "paused",
		    cp->paused));
		return;
	}
	api_answer(c, 404, json_pack("{s:s}", "error", "not found"));
	return;
not_allowed:
	conn_respond(c, 405, "text/plain", "method not allowed\n", 19,
	    "Allow: GET, HEAD\r\n");
}
