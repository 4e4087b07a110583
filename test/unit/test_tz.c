/*
 * test_tz.c — the TZif reader against the C library's own localtime_r()
 * for the same zone files, across transitions and far past the last one
 * (where the footer's POSIX rule decides).
 */
#include "test/unit/test.h"

#include "proto/tz.h"

#include <time.h>

static void
check_zone(const char *name)
{
	char err[256];
	struct tz *z = tz_load(NULL, name, err, sizeof(err));

	if (z == NULL)
		TEST_FAIL_("%s: %s", name, err);
	setenv("TZ", name, 1);
	tzset();
	/* 1990 to 2060 in steps of a little over 9 hours: every change of
	 * offset is passed near by, at a different hour each year */
	for (int64_t t = 631152000; t < 2871763200LL; t += 33317) {
		time_t tt = (time_t)t;
		struct tm tm;

		localtime_r(&tt, &tm);
		if (tm.tm_gmtoff != tz_offset(z, t))
			TEST_FAIL_("%s at %lld: %ld vs libc %ld", name,
			    (long long)t, tz_offset(z, t), (long)tm.tm_gmtoff);
	}
	tz_free(z);
}

TEST_T(tz_matches_libc, 30)
{
	static const char *const zones[] = { "America/New_York",
	    "America/Los_Angeles", "Europe/Berlin", "Europe/London",
	    "Asia/Tokyo", "Australia/Sydney", "Australia/Adelaide",
	    "Asia/Kolkata", "America/Sao_Paulo", "Pacific/Auckland",
	    "America/St_Johns", "Africa/Casablanca", "UTC", "Asia/Tehran",
	    "America/Phoenix", "Pacific/Chatham" };

	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
		check_zone(zones[i]);
}

TEST(tz_names)
{
	char err[256];

	ASSERT(tz_name_valid("America/New_York"));
	ASSERT(tz_name_valid("Etc/GMT+5"));
	ASSERT(!tz_name_valid("../etc/passwd"));
	ASSERT(!tz_name_valid("/etc/passwd"));
	ASSERT(!tz_name_valid("America/New York"));
	ASSERT(!tz_name_valid(""));
	ASSERT(tz_load(NULL, "Mars/Olympus_Mons", err, sizeof(err)) == NULL);
	ASSERT(strstr(err, "unknown time zone") != NULL);
	ASSERT(tz_load(NULL, "../../etc/passwd", err, sizeof(err)) == NULL);
	ASSERT(tz_parse((const unsigned char *)"hello", 5, err, sizeof(err)) ==
	    NULL);
}

TEST(tz_civil_round_trip)
{
	int y, m, d;

	ASSERT_EQ(tz_days_from_civil(1970, 1, 1), 0);
	ASSERT_EQ(tz_days_from_civil(2000, 3, 1), 11017);
	for (int64_t days = -800000; days < 800000; days += 97) {
		tz_civil_from_days(days, &y, &m, &d);
		ASSERT_EQ(tz_days_from_civil(y, m, d), days);
	}
}
