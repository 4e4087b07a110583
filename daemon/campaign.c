/*
 * campaign.c — campaigns: the files, each contact's state, the schedule
 * on the master's loop and the operator's endpoints.
 *
 * A contact is dialled only when all of these hold: its state is known
 * from the store (read once at start), it is pending or its retry time
 * has come, its campaign is not paused, it never asked not to be called
 * (in any campaign), its time zone is known, its local time is inside
 * one of the campaign's windows and outside the quiet hours, the number
 * may be called (VERIFIED_PHONE_NUMBERS, ALLOW_ALL_US_CANADA) and is out
 * of its cooldown, and the campaign's pace (calls_per_minute,
 * max_concurrent) and MAX_CONCURRENT_CALLS leave room.
 *
 * One attempt is dialled at most once: the attempt is counted and the
 * contact marked `calling` in the store, and read back from it, before
 * the call is asked of Twilio.  A restart finds the contacts left
 * calling: one whose call is over takes that call's outcome, one whose
 * call was never created (or not known to be) has spent the attempt
 * ("unknown", retried like "failed"), one still live waits for its
 * callbacks.  None is dialled again for the same attempt.
 */
#include "daemon/master.h"
#include "daemon/campaign.h"
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

struct need {
	json_t		*cols;		/* array of the CSV's variable names */
	char		 missing[40];
};

static int
need_one(void *arg, const char *name, size_t len)
{
	struct need *n = arg;
	size_t i;
	json_t *v;

	if (len == 4 && strncmp(name, "name", 4) == 0)
		return 0;
	json_array_foreach(n->cols, i, v)
		if (strlen(json_string_value(v)) == len &&
		    strncmp(json_string_value(v), name, len) == 0)
			return 0;
	snprintf(n->missing, sizeof(n->missing), "%.*s", (int)len, name);
	return 1;
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

static int
byphone_cmp(const void *a, const void *b, void *arg)
{
	const struct campaign *c = arg;

	return strcmp(c->ct[*(const size_t *)a].phone,
	    c->ct[*(const size_t *)b].phone);
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
		else if (!id_valid(hdr[i], strlen(hdr[i])) || strlen(hdr[i]) > 32 ||
		    strchr(hdr[i], '-') != NULL) {
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
		struct camp_contact *ct;

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
		if (!e164_valid(cells[iphone]) ||
		    strlen(cells[iphone]) >= SHM_PHONE_MAX) {
			lerr_add(e, "%s:%d: phone_number: not an E.164 number",
			    shown, lineno);
			continue;
		}
		if (strlen(cells[iname]) >= sizeof(ct->name)) {
			lerr_add(e, "%s:%d: name: longer than 127 bytes", shown,
			    lineno);
			continue;
		}
		if (!tz_name_valid(cells[itz])) {
			lerr_add(e, "%s:%d: timezone: \"%.40s\" is not an IANA "
			    "zone name", shown, lineno, cells[itz]);
			continue;
		}
		if (c->nct >= CAMP_CONTACTS_MAX) {
			lerr_add(e, "%s:%d: more than %d contacts", shown, lineno,
			    CAMP_CONTACTS_MAX);
			goto out;
		}
		if (c->nct == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct camp_contact *v = realloc(c->ct, nc * sizeof(*v));
			if (v == NULL) {
				lerr_add(e, "%s: out of memory", shown);
				goto out;
			}
			c->ct = v;
			cap = nc;
		}
		ct = &c->ct[c->nct++];
		memset(ct, 0, sizeof(*ct));
		vr_strlcpy(ct->phone, cells[iphone], sizeof(ct->phone));
		vr_strlcpy(ct->name, cells[iname], sizeof(ct->name));
		vr_strlcpy(ct->tzname, cells[itz], sizeof(ct->tzname));
		ct->line = lineno;
		ct->zone = zone_get(cs, ct->tzname);
		ct->vars = json_object();
		for (int i = 0; i < ncols; i++)
			if (i != iphone && i != iname && i != itz)
				json_object_set_new(ct->vars, hdr[i],
				    json_string(cells[i]));
	}
	/* an index by phone: found in log time, and each number once */
	if (c->nct > 0 && (c->byphone = malloc(c->nct *
	    sizeof(*c->byphone))) != NULL) {
		for (size_t i = 0; i < c->nct; i++)
			c->byphone[i] = i;
		qsort_r(c->byphone, c->nct, sizeof(*c->byphone), byphone_cmp, c);
		for (size_t i = 1; i < c->nct; i++) {
			const struct camp_contact *a = &c->ct[c->byphone[i - 1]];
			const struct camp_contact *b = &c->ct[c->byphone[i]];
			if (strcmp(a->phone, b->phone) == 0)
				lerr_add(e, "%s:%d: phone_number: listed twice (also "
				    "line %d)", shown, a->line > b->line ? a->line :
				    b->line, a->line > b->line ? b->line : a->line);
		}
	} else if (c->nct > 0)
		lerr_add(e, "%s: out of memory", shown);
out:
	free(buf);
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
    const struct persona_set *ps, struct lerr *e)
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
	struct need need;

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
	contacts = json_string_value(json_object_get(root, "contacts"));
	if (contacts == NULL || contacts[0] == '\0')
		lerr_add(e, "%s: contacts: missing (a CSV file beside it)", f);
	else {
		if (contacts[0] == '/')
			snprintf(cpath, sizeof(cpath), "%s", contacts);
		else
			snprintf(cpath, sizeof(cpath), "%s/%s", dir, contacts);
		contacts_load(cs, c, cpath, cpath, cols, e);
	}
	/* every variable the line's templates use is a column */
	need.cols = cols;
	need.missing[0] = '\0';
	if (p != NULL && contacts != NULL &&
	    (tmpl_each(p->instructions, need_one, &need) != 0 ||
	    (p->greeting != NULL && tmpl_each(p->greeting, need_one, &need) != 0) ||
	    (l->voicemail != NULL && tmpl_each(l->voicemail, need_one,
	    &need) != 0)))
		lerr_add(e, "%s: contacts: line %s uses {{%s}}, which %s has no "
		    "column for", f, l->id, need.missing, contacts);
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
    const struct line_set *ls, const struct persona_set *ps, char *err,
    size_t errlen, char *warn, size_t warnlen)
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
			camp_load(cs, c, dir, names[i], ls, ps, &e);
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
	if (strcmp(status, "completed") != 0)
		return NULL;
	if (ct->outcome[0] != '\0')
		return ct->outcome;	/* a tool said */
	return ct->machine ? "voicemail" : "answered";
}

/* ---------------------------------------------------------------- */
/* the state read at start */

static json_t *
load_q(struct store_db *db, void *arg, char *err, size_t errlen)
{
	if (db == NULL) {
		snprintf(err, errlen, "the database is down");
		return NULL;
	}
	return store_db_campaign_state(db, err, errlen);
}

static void campaign_tick(uv_timer_t *t);
static void load_state(struct master *m);

static void
reload_timer_cb(uv_timer_t *t)
{
	load_state(t->loop->data);
}

static void
load_done(json_t *res, const char *err, void *arg)
{
	struct master *m = arg;
	size_t i, nrec = 0;
	json_t *row;

	cg_loading = 0;
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
		return;
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
		const char *st = json_string_value(json_object_get(row, "state"));
		const char *oc = json_string_value(json_object_get(row, "outcome"));
		const char *sid = json_string_value(json_object_get(row,
		    "call_sid"));
		const char *cst = json_string_value(json_object_get(row,
		    "call_status"));
		const char *by = json_string_value(json_object_get(row,
		    "answered_by"));
		const char *det = json_string_value(json_object_get(row,
		    "detail"));
		struct campaign *c = cid ? camp_find(m, cid) : NULL;
		struct camp_contact *ct = c && ph ? contact_find(c, ph) : NULL;
		size_t s;

		if (ct == NULL || st == NULL)
			continue;	/* no longer in its campaign's list */
		for (s = 0; s < ARRAY_LEN(state_names) &&
		    strcmp(state_names[s], st) != 0; s++)
			;
		if (s == ARRAY_LEN(state_names))
			continue;
		nrec++;
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
			continue;
		/* left calling by the last run: its call decides */
		ct->calling_since = mono_ms();
		if (ct->sid[0] == '\0')
			finish(m, c, ct, "unknown");
		else if (cst != NULL && status_outcome(ct, cst) != NULL)
			finish(m, c, ct, status_outcome(ct, cst));
	}
	json_decref(res);
	cg_loaded = 1;
	log_info("campaigns: %zu campaign%s, the state of %zu contact%s read",
	    m->campaigns.n, m->campaigns.n == 1 ? "" : "s", nrec,
	    nrec == 1 ? "" : "s");
	campaign_tick(&cg_timer);
}

static void
load_state(struct master *m)
{
	if (cg_loading || cg_loaded || m->campaigns.n == 0)
		return;
	/* (CALL_RECORDS=false with campaigns is refused by config_build()) */
	if (m->store == NULL) {
		log_warnx("campaigns: the store did not start; no contact is "
		    "dialled in this run");
		return;
	}
	cg_loading = 1;
	if (store_query_async(m->store, load_q, NULL, load_done, m) != 0) {
		cg_loading = 0;
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
	/* a call whose end never came (its callback lost while the daemon
	 * was down) stops holding its place once the line's own limit on a
	 * call, and 5 minutes of ringing and slack, are past: the attempt is
	 * spent, never made again */
	if (l != NULL && l->max_call_minutes > 0)
		stale = (uint64_t)(l->max_call_minutes * 60000.0) + 300000;
	for (size_t i = 0; i < c->nct; i++) {
		struct camp_contact *ct = &c->ct[i];
		if (ct->state == CS_CALLING && !ct->busy &&
		    mono - ct->calling_since > stale)
			finish(m, c, ct, "unknown");
	}
	if (c->paused)
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
}

void
campaign_reloaded(struct master *m, struct campaign_set *old)
{
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
		for (size_t k = 0; k < c->nct; k++) {
			struct camp_contact *ct = &c->ct[k], *o;

			if ((o = contact_find(oc, ct->phone)) == NULL)
				continue;
			ct->state = o->state;
			ct->attempts = o->attempts;
			memcpy(ct->outcome, o->outcome, sizeof(ct->outcome));
			ct->detail = json_incref(o->detail);
			ct->retry_at = o->retry_at;
			memcpy(ct->sid, o->sid, sizeof(ct->sid));
			ct->machine = o->machine;
			ct->busy = o->busy;
			ct->calling_since = o->calling_since;
			ct->prev_state = o->prev_state;
			memcpy(ct->prev_outcome, o->prev_outcome,
			    sizeof(ct->prev_outcome));
		}
	}
	campaign_set_free(old);
	/* the first pass after a reload is now */
	if (cg_loaded)
		campaign_tick(&cg_timer);
	else
		load_state(m);
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
campaign_call_status(struct master *m, const char *sid, const char *status)
{
	struct campaign *c;
	struct camp_contact *ct = contact_by_sid(m, sid, &c);
	const char *o;

	if (ct == NULL || ct->state != CS_CALLING)
		return;
	if ((o = status_outcome(ct, status)) != NULL)
		finish(m, c, ct, o);
}

void
campaign_call_amd(struct master *m, const char *sid, const char *by)
{
	struct campaign *c;
	struct camp_contact *ct = contact_by_sid(m, sid, &c);

	if (ct != NULL && ct->state == CS_CALLING)
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
	    c->line, "paused", c->paused, "loaded", cg_loaded, "contacts",
	    (json_int_t)c->nct, "finished", (json_int_t)finished, "states",
	    states, "outcomes", outcomes);
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
