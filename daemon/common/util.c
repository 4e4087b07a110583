#include "daemon/common/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void
mask_phone(const char *in, char *out, size_t outlen)
{
	size_t n = in ? strlen(in) : 0, i;

	if (outlen == 0)
		return;
	if (n < 8) {
		for (i = 0; i < n && i + 1 < outlen; i++)
			out[i] = '*';
		out[i] = '\0';
		return;
	}
	/* keep the first 5 and the last 4 characters */
	snprintf(out, outlen, "%.5s***%s", in, in + n - 4);
}

void
iso8601_utc(uint64_t ms, char *out, size_t outlen)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
}

int
iso8601_parse(const char *s, uint64_t *ms)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	char sep;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -1;
	s += n;
	if (*s == 'T' || *s == ' ') {
		sep = *s++;
		(void)sep;
		if (sscanf(s, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3)
			return -1;
		s += n;
		if (*s == '.')	/* fractional seconds: skip */
			for (s++; *s >= '0' && *s <= '9'; s++)
				;
		if (*s == 'Z')
			s++;
		else if (strncmp(s, "+00:00", 6) == 0)
			s += 6;
	}
	if (*s != '\0')
		return -1;
	/* %2d takes a sign: "T-1:00:00" would wrap below the epoch */
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 ||
	    h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*ms = (uint64_t)timegm(&tm) * 1000;
	return 0;
}

size_t
vr_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

int
ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = alen != blen;
	size_t i, n = alen > blen ? alen : blen;

	if (alen == 0 || blen == 0)
		return alen == blen;
	for (i = 0; i < n; i++)
		diff |= x[i % alen] ^ y[i % blen];
	return diff == 0;
}
