/*
 * tz.h — local time in an IANA zone, read from the system's TZif files
 * (/usr/share/zoneinfo, Debian's tzdata).
 *
 * Why not setenv("TZ") + localtime_r(): TZ is process-wide and getenv()
 * is not safe against setenv() in another thread; the master runs the
 * store's thread and libpq reads the environment when it connects.  A
 * zone here is loaded once (a few KiB read when the campaigns are
 * loaded, never on the loop's hot path) and then converting a time is
 * pure arithmetic: the zone's transitions, and past the last one the
 * POSIX TZ rule in the file's footer ("EST5EDT,M3.2.0,M11.1.0").
 */
#ifndef VR_PROTO_TZ_H
#define VR_PROTO_TZ_H

#include <stddef.h>
#include <stdint.h>

#define TZ_NAME_MAX	64

struct tz;

/* A name we look up: letters, digits, '_', '-', '+' and '/', no "..",
 * not starting with '/'. */
int  tz_name_valid(const char *name);
/* Load zone name from dir (NULL: /usr/share/zoneinfo).  NULL with a
 * reason in err for an unknown zone or a file that is not TZif. */
struct tz *tz_load(const char *dir, const char *name, char *err,
    size_t errlen);
/* Parse TZif data in buf (tests).  NULL with a reason. */
struct tz *tz_parse(const unsigned char *buf, size_t len, char *err,
    size_t errlen);
void tz_free(struct tz *z);
/* The zone's UTC offset in seconds (east positive) at utc (s since the
 * epoch). */
long tz_offset(const struct tz *z, int64_t utc);

/* Days since 1970-01-01 of a civil date, and back. */
int64_t tz_days_from_civil(int y, int m, int d);
void tz_civil_from_days(int64_t days, int *y, int *m, int *d);

#endif
