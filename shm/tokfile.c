/*
 * tokfile.c — see tokfile.h.
 *
 * Nothing here calls fsync(): the workers append on their loops and the
 * master compacts on its own, and neither may wait on the disk.  A crash
 * of any process loses nothing (the page cache keeps what write() gave
 * it); a power cut may lose the records of the last seconds, tokens that
 * expire within STREAM_TOKEN_TTL anyway.
 */
#include "shm/tokfile.h"
#include "daemon/common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
tokfile_path(const char *usage_csv_path, char *out, size_t len)
{
	const char *slash = strrchr(usage_csv_path, '/');
	int n;

	if (slash == NULL)
		n = snprintf(out, len, "%s", TOKFILE_NAME);
	else
		n = snprintf(out, len, "%.*s/%s",
		    (int)(slash - usage_csv_path), usage_csv_path, TOKFILE_NAME);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static size_t
rec_format(char *out, uint64_t key, uint64_t expires)
{
	return (size_t)snprintf(out, TOKFILE_REC_MAX, "%016" PRIx64 " %" PRIu64
	    "\n", key, expires);
}

/* One line, without its newline: 0 and the record, or -1. */
static int
rec_parse(const char *s, size_t len, uint64_t *key, uint64_t *expires)
{
	uint64_t k = 0, e = 0;
	size_t i;

	if (len < 18 || len > TOKFILE_REC_MAX || s[16] != ' ')
		return -1;
	for (i = 0; i < 16; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' :
		    c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		k = k << 4 | (uint64_t)v;
	}
	for (i = 17; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || e > (UINT64_MAX - 9) / 10)
			return -1;
		e = e * 10 + (uint64_t)(s[i] - '0');
	}
	if (k == 0)
		return -1;
	*key = k;
	*expires = e;
	return 0;
}

int
tokfile_append(const char *path, const uint64_t *keys, size_t n,
    uint64_t expires)
{
	char buf[4 * TOKFILE_REC_MAX];
	size_t len = 0;
	int fd, rc;

	if (n > sizeof(buf) / TOKFILE_REC_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		len += rec_format(buf + len, keys[i], expires);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	/* one write of a few dozen bytes to an O_APPEND file: the records
	 * of two workers never interleave */
	rc = vr_write_all(fd, buf, len);
	close(fd);
	return rc;
}

int
tokfile_load(struct shm *s, const char *path, uint64_t now_s,
    size_t *loaded, size_t *skipped)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0, nload = 0, nskip = 0;
	ssize_t n;

	if (f == NULL && errno != ENOENT)
		return -errno;
	while (f != NULL && (n = getline(&line, &cap, f)) >= 0) {
		uint64_t key, expires;

		/* a line without its newline was cut short: skipped too */
		if (n == 0 || line[n - 1] != '\n' ||
		    rec_parse(line, (size_t)n - 1, &key, &expires) != 0) {
			nskip++;
			continue;
		}
		if (expires < now_s)
			continue;
		if (shm_token_use(s, key, expires, now_s) == 0)
			nload++;
	}
	free(line);
	if (f != NULL)
		fclose(f);
	if (loaded)
		*loaded = nload;
	if (skipped)
		*skipped = nskip;
	return tokfile_compact(s, path, now_s);
}

int
tokfile_compact(struct shm *s, const char *path, uint64_t now_s)
{
	struct shm_token_rec *recs;
	char tmp[4096], *buf;
	size_t n, len = 0;
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	recs = calloc(s->hdr->sh_ntokens, sizeof(*recs));
	buf = malloc((size_t)s->hdr->sh_ntokens * TOKFILE_REC_MAX);
	if (recs == NULL || buf == NULL) {
		free(recs);
		free(buf);
		return -ENOMEM;
	}
	if ((rc = shm_token_lock(s)) != 0) {
		free(recs);
		free(buf);
		return -rc;
	}
	n = shm_token_list_locked(s, now_s, recs, s->hdr->sh_ntokens);
	for (size_t i = 0; i < n; i++)
		len += rec_format(buf + len, recs[i].key, recs[i].expires);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		rc = -errno;
	else {
		rc = vr_write_all(fd, buf, len);
		if (close(fd) != 0 && rc == 0)
			rc = -errno;
		if (rc == 0 && rename(tmp, path) != 0)
			rc = -errno;
		if (rc != 0)
			unlink(tmp);
	}
	shm_token_unlock(s);
	free(recs);
	free(buf);
	return rc;
}
