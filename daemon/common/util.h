/*
 * util.h — small helpers both roles link: clocks, randomness, masking.
 */
#ifndef VR_UTIL_H
#define VR_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* CLOCK_MONOTONIC in ms/µs: one clock for every process on the host, so a
 * stamp written by a worker can be compared by the master. */
uint64_t mono_ms(void);
uint64_t mono_us(void);
/* Wall clock, ms since the epoch (for dates shown to people). */
uint64_t wall_ms(void);

/* Fill buf with len bytes from getrandom(2).  0 or -errno. */
int random_bytes(void *buf, size_t len);

/*
 * A caller for logs, /health and the dashboard: "+14155552671" ->
 * "+*******2671", "client:alice" -> "client:*****"; the '+' or the scheme
 * stays, the last four characters stay when at least eight are hidden,
 * everything else is starred, so at most four digits show.  The anonymous
 * forms are shown as they are.  Always NUL-terminates out.
 */
void mask_phone(const char *in, char *out, size_t outlen);
/* A From Twilio sends for a withheld number: "", "anonymous", "Restricted",
 * "unknown" (any case), "+266696687". */
int  caller_is_anonymous(const char *s);
/* A From we accept: E.164 ('+' and 1-15 digits), client:<name>,
 * sip:<uri>, or an anonymous form.  1 or 0. */
int  caller_valid(const char *s);
/* Whether the host of "scheme://host[:port]/..." is a loopback one:
 * localhost, 127.0.0.0/8 or [::1]. */
int  url_host_loopback(const char *url);

/* ISO 8601 UTC with seconds, "2026-11-21T03:04:05Z"; out >= 21 bytes. */
void iso8601_utc(uint64_t wall_ms, char *out, size_t outlen);
/* Parses that form (and "YYYY-MM-DD HH:MM:SS", and a bare date).  Returns
 * 0 and stores ms since the epoch, or -1. */
int  iso8601_parse(const char *s, uint64_t *wall_ms);

/* Write all n bytes, again after EINTR or a short write.  0 or -errno
 * (-EIO when write(2) returns 0). */
int vr_write_all(int fd, const void *p, size_t n);
/* fsync(2) the directory holding path, so a rename or a create in it is
 * durable.  0 or -errno. */
int vr_fsync_dir(const char *path);

/* Copy with truncation; always NUL-terminates.  Returns strlen(src). */
size_t vr_strlcpy(char *dst, const char *src, size_t size);

/* Constant-time comparison of two byte strings of possibly different length:
 * the time depends only on the lengths, never on where they differ. */
int ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
