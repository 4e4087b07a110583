#include "daemon/common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

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

/* The words Twilio puts in From when the caller withheld the number or
 * none came through (protocols.md 3.1: "anonymous", "unknown" and kin). */
static const char *const anonymous_words[] = {
	"anonymous", "restricted", "unknown", "private", "unavailable",
	"blocked",
};

int
caller_is_anonymous(const char *s)
{
	if (s[0] == '\0' || strcmp(s, "+266696687") == 0)
		return 1;
	for (size_t i = 0; i < ARRAY_LEN(anonymous_words); i++)
		if (strcasecmp(s, anonymous_words[i]) == 0)
			return 1;
	return 0;
}

/* The scheme of a client: or sip: caller, with its colon; 0 if none. */
static size_t
caller_scheme(const char *s)
{
	if (strncmp(s, "client:", 7) == 0)
		return 7;
	if (strncmp(s, "sip:", 4) == 0)
		return 4;
	if (strncmp(s, "sips:", 5) == 0)
		return 5;
	return 0;
}

int
caller_valid(const char *s)
{
	size_t n, k;

	if (caller_is_anonymous(s))
		return 1;
	if (s[0] == '+') {
		for (n = 1; s[n] >= '0' && s[n] <= '9'; n++)
			;
		return s[n] == '\0' && n >= 2 && n <= 16;
	}
	if ((k = caller_scheme(s)) == 0 || s[k] == '\0')
		return 0;
	/* printable ASCII only; nothing that ends a CSV cell, quotes, or
	 * starts markup: the value reaches files, logs and TwiML */
	for (s += k; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch))
			continue;
		if (k == 7 ? strchr("_.@-", ch) == NULL :
		    strchr("-_.!~*'()%;:@&=+$/?[]", ch) == NULL)
			return 0;
	}
	return 1;
}

void
mask_phone(const char *in, char *out, size_t outlen)
{
	size_t n, i, o = 0, keep, head;

	if (outlen == 0)
		return;
	if (in == NULL)
		in = "";
	n = strlen(in);
	if (caller_is_anonymous(in)) {
		vr_strlcpy(out, in, outlen);
		return;
	}
	/* keep the '+' or the scheme, and the last four characters if at
	 * least as many are hidden: never more than four digits in all */
	head = in[0] == '+' ? 1 : caller_scheme(in);
	keep = n - head >= 8 ? 4 : 0;
	for (i = 0; i < n && o + 1 < outlen; i++)
		out[o++] = i < head || i >= n - keep ? in[i] : '*';
	out[o] = '\0';
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

int
url_host_loopback(const char *url)
{
	const char *h = strstr(url, "://"), *end, *colon;
	char host[256];
	struct in_addr a;
	size_t n;

	if (h == NULL)
		return 0;
	h += 3;
	end = h + strcspn(h, "/?#");
	if (memchr(h, '@', (size_t)(end - h)) != NULL)
		return 0;	/* user@host: do not guess which is meant */
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (rb == NULL)
			return 0;
		n = (size_t)(rb - h - 1);
		return n == 3 && memcmp(h + 1, "::1", 3) == 0;
	}
	colon = memchr(h, ':', (size_t)(end - h));
	n = (size_t)((colon ? colon : end) - h);
	if (n == 0 || n >= sizeof(host))
		return 0;
	memcpy(host, h, n);
	host[n] = '\0';
	if (strcasecmp(host, "localhost") == 0 ||
	    strcasecmp(host, "localhost.") == 0)
		return 1;
	/* inet_pton takes the dotted quad only: "127.1" is not loopback here */
	return inet_pton(AF_INET, host, &a) == 1 &&
	    (ntohl(a.s_addr) >> 24) == 127;
}

int
vr_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
vr_fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (copy == NULL)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}
