/*
 * tz.c — see tz.h.  TZif is RFC 8536: a version 1 block of 32-bit
 * times, and from version 2 on a second header with 64-bit times and a
 * footer holding a POSIX TZ string for the times after the last
 * transition.  Leap seconds and the standard/UT indicators are skipped:
 * they do not move a wall clock.
 */
#include "proto/tz.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_FILE_MAX	(256 * 1024)

/* A POSIX TZ rule's date: Mm.w.d, Jn (1..365, no Feb 29) or n (0..365). */
struct tz_date {
	char	 kind;		/* 'M', 'J' or 'N' */
	int	 m, w, d;	/* M: month, week (5: last), weekday (0: Sun) */
	int	 n;
	long	 secs;		/* local time of the change, default 02:00 */
};

struct tz {
	int64_t		*trans;		/* UTC times, ascending */
	unsigned char	*idx;		/* the type in force from trans[i] */
	long		*off;		/* each type's UTC offset */
	size_t		 ntrans, ntypes;
	/* the footer */
	int		 has_rule, has_dst;
	long		 std_off, dst_off;	/* east positive */
	struct tz_date	 start, end;
};

int
tz_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= TZ_NAME_MAX || s[0] == '/' || strstr(s, "..") != NULL)
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("_-+/", *s) == NULL)
			return 0;
	return 1;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* ---------------------------------------------------------------- */
/* civil dates (proleptic Gregorian, days since 1970-01-01) */

int64_t
tz_days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void
tz_civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int y, int m)
{
	static const int n[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && leap(y) ? 29 : n[m - 1];
}

/* ---------------------------------------------------------------- */
/* the POSIX TZ footer */

/* A zone abbreviation: letters, or anything in <...>. */
static const char *
skip_name(const char *p)
{
	const char *s = p;

	if (*p == '<') {
		while (*p != '\0' && *p != '>')
			p++;
		return *p == '>' && p - s > 1 ? p + 1 : NULL;
	}
	while (isalpha((unsigned char)*p))
		p++;
	return p - s >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] in seconds; hours up to 167 for a rule's time. */
static const char *
parse_hms(const char *p, long *out)
{
	long sign = 1, h = 0, mi = 0, s = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (!isdigit((unsigned char)*p))
		return NULL;
	while (isdigit((unsigned char)*p))
		h = h * 10 + (*p++ - '0');
	if (*p == ':') {
		p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			mi = mi * 10 + (*p++ - '0');
		if (*p == ':') {
			p++;
			while (isdigit((unsigned char)*p))
				s = s * 10 + (*p++ - '0');
		}
	}
	if (h > 167 || mi > 59 || s > 59)
		return NULL;
	*out = sign * (h * 3600 + mi * 60 + s);
	return p;
}

static const char *
parse_date(const char *p, struct tz_date *dt)
{
	char *e;

	memset(dt, 0, sizeof(*dt));
	dt->secs = 7200;
	if (*p == 'M') {
		dt->kind = 'M';
		if (sscanf(p + 1, "%d.%d.%d", &dt->m, &dt->w, &dt->d) != 3 ||
		    dt->m < 1 || dt->m > 12 || dt->w < 1 || dt->w > 5 ||
		    dt->d < 0 || dt->d > 6)
			return NULL;
		p++;
		while (isdigit((unsigned char)*p) || *p == '.')
			p++;
	} else {
		dt->kind = *p == 'J' ? 'J' : 'N';
		if (*p == 'J')
			p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		dt->n = (int)strtol(p, &e, 10);
		if (dt->n > 365 || (dt->kind == 'J' && dt->n < 1))
			return NULL;
		p = e;
	}
	if (*p == '/' && (p = parse_hms(p + 1, &dt->secs)) == NULL)
		return NULL;
	return p;
}

/* "EST5EDT,M3.2.0,M11.1.0", "<+0330>-3:30", "UTC0". */
static int
parse_rule(struct tz *z, const char *s)
{
	const char *p = skip_name(s);
	long off;

	if (p == NULL || (p = parse_hms(p, &off)) == NULL)
		return -1;
	z->std_off = -off;		/* POSIX counts west positive */
	z->has_rule = 1;
	if (*p == '\0')
		return 0;
	if ((p = skip_name(p)) == NULL)
		return -1;
	z->dst_off = z->std_off + 3600;
	if (*p != ',' && *p != '\0') {
		if ((p = parse_hms(p, &off)) == NULL)
			return -1;
		z->dst_off = -off;
	}
	if (*p != ',' || (p = parse_date(p + 1, &z->start)) == NULL ||
	    *p != ',' || (p = parse_date(p + 1, &z->end)) == NULL || *p != '\0')
		return -1;
	z->has_dst = 1;
	return 0;
}

/* The day (since the epoch) a rule date falls on in year y. */
static int64_t
rule_day(const struct tz_date *dt, int y)
{
	int64_t first;
	int wd, day;

	switch (dt->kind) {
	case 'J':	/* 1..365, February 29 never counted */
		day = dt->n;
		if (leap(y) && day >= 60)
			day++;
		return tz_days_from_civil(y, 1, 1) + day - 1;
	case 'N':
		return tz_days_from_civil(y, 1, 1) + dt->n;
	default:
		first = tz_days_from_civil(y, dt->m, 1);
		wd = (int)(((first % 7) + 7 + 4) % 7);	/* 1970-01-01: Thu */
		day = 1 + (dt->d - wd + 7) % 7 + (dt->w - 1) * 7;
		while (day > month_days(y, dt->m))
			day -= 7;
		return first + day - 1;
	}
}

static long
rule_offset(const struct tz *z, int64_t t)
{
	int64_t start, end;
	int y, m, d;

	if (!z->has_dst)
		return z->std_off;
	tz_civil_from_days((t + z->std_off) / 86400 - ((t + z->std_off) % 86400 < 0),
	    &y, &m, &d);
	/* each change is at a local time: the start in standard time, the
	 * end in summer time */
	start = rule_day(&z->start, y) * 86400 + z->start.secs - z->std_off;
	end = rule_day(&z->end, y) * 86400 + z->end.secs - z->dst_off;
	if (start < end)
		return t >= start && t < end ? z->dst_off : z->std_off;
	/* the southern hemisphere: summer spans the new year */
	return t >= end && t < start ? z->std_off : z->dst_off;
}

/* ---------------------------------------------------------------- */

void
tz_free(struct tz *z)
{
	if (z == NULL)
		return;
	free(z->trans);
	free(z->idx);
	free(z->off);
	free(z);
}

struct tz *
tz_parse(const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	const unsigned char *p = buf, *end = buf + len;
	uint32_t isut, isstd, leapcnt, timecnt, typecnt, charcnt;
	size_t v1, tsize = 4, lsize = 8;
	struct tz *z;
	int version;

	if (len < 44 || memcmp(buf, "TZif", 4) != 0) {
		snprintf(err, errlen, "not a TZif file");
		return NULL;
	}
	version = buf[4] == 0 ? 1 : buf[4] - '0';
	for (int pass = 0; pass < 2; pass++) {
		if ((size_t)(end - p) < 44 || memcmp(p, "TZif", 4) != 0)
			goto bad;
		isut = be32(p + 20);
		isstd = be32(p + 24);
		leapcnt = be32(p + 28);
		timecnt = be32(p + 32);
		typecnt = be32(p + 36);
		charcnt = be32(p + 40);
		if (typecnt == 0 || typecnt > 256 || timecnt > 100000 ||
		    leapcnt > 10000 || charcnt > 10000)
			goto bad;
		v1 = (size_t)timecnt * tsize + timecnt + (size_t)typecnt * 6 +
		    charcnt + (size_t)leapcnt * lsize + isstd + isut;
		if ((size_t)(end - p) < 44 + v1)
			goto bad;
		if (pass == 0 && version >= 2) {
			/* the 64-bit block follows */
			p += 44 + v1;
			tsize = 8;
			lsize = 12;
			continue;
		}
		break;
	}
	if ((z = calloc(1, sizeof(*z))) == NULL ||
	    (z->trans = calloc(timecnt + 1, sizeof(*z->trans))) == NULL ||
	    (z->idx = calloc(timecnt + 1, 1)) == NULL ||
	    (z->off = calloc(typecnt, sizeof(*z->off))) == NULL) {
		tz_free(z);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	z->ntrans = timecnt;
	z->ntypes = typecnt;
	{
		const unsigned char *q = p + 44;
		for (uint32_t i = 0; i < timecnt; i++, q += tsize)
			z->trans[i] = tsize == 8 ? be64(q) :
			    (int64_t)(int32_t)be32(q);
		for (uint32_t i = 0; i < timecnt; i++, q++) {
			if (*q >= typecnt) {
				tz_free(z);
				goto bad;
			}
			z->idx[i] = *q;
		}
		for (uint32_t i = 0; i < typecnt; i++, q += 6)
			z->off[i] = (long)(int32_t)be32(q);
		q += charcnt + (size_t)leapcnt * lsize + isstd + isut;
		/* the footer: "\n" TZ "\n" */
		if (version >= 2 && q < end && *q == '\n') {
			const unsigned char *nl = memchr(q + 1, '\n',
			    (size_t)(end - q - 1));
			char rule[128];

			if (nl != NULL && (size_t)(nl - q - 1) < sizeof(rule) &&
			    nl > q + 1) {
				memcpy(rule, q + 1, (size_t)(nl - q - 1));
				rule[nl - q - 1] = '\0';
				if (parse_rule(z, rule) != 0) {
					z->has_rule = z->has_dst = 0;
				}
			}
		}
	}
	return z;
bad:
	snprintf(err, errlen, "a damaged TZif file");
	return NULL;
}

struct tz *
tz_load(const char *dir, const char *name, char *err, size_t errlen)
{
	char path[1200];
	unsigned char *buf;
	struct stat st;
	struct tz *z;
	ssize_t n;
	int fd;

	if (!tz_name_valid(name)) {
		snprintf(err, errlen, "\"%.70s\" is not a time zone name", name);
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "/usr/share/zoneinfo",
	    name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "unknown time zone \"%s\" (%s: %s)", name,
		    path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 44 ||
	    st.st_size > TZ_FILE_MAX) {
		close(fd);
		snprintf(err, errlen, "unknown time zone \"%s\" (%s is not a "
		    "zone file)", name, path);
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size)) == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		free(buf);
		snprintf(err, errlen, "%s: short read", path);
		return NULL;
	}
	z = tz_parse(buf, (size_t)n, err, errlen);
	free(buf);
	return z;
}

long
tz_offset(const struct tz *z, int64_t t)
{
	size_t lo, hi;

	if (z->ntrans == 0 || t < z->trans[0]) {
		if (z->ntrans == 0 && z->has_rule)
			return rule_offset(z, t);
		return z->off[0];
	}
	if (t >= z->trans[z->ntrans - 1] && z->has_rule)
		return rule_offset(z, t);
	lo = 0;
	hi = z->ntrans;		/* trans[lo] <= t < trans[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return z->off[z->idx[lo]];
}
