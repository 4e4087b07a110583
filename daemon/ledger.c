/*
 * ledger.c — the usage ledger on disk: loaded at start, saved atomically.
 *
 * Saving: the master turns the ledger into CSV text in memory (fast, no
 * I/O), then forks a short-lived child that writes it to USAGE_CSV_PATH.tmp,
 * fsyncs it, renames the current file to the backup and the new one into
 * place, and fsyncs the directory.  The master never waits on the disk;
 * it learns the result from the child's exit status.  A failure leaves the
 * previous file and its backup as they were, is logged, and is retried at
 * the next interval; the minutes stay in shared memory meanwhile.
 *
 * Loading: the main file, or the backup if the main file is missing or
 * unreadable (a crash between the two renames leaves only the backup).
 */
#include "daemon/master.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FLUSH_FAILED_WRITE	3	/* child exit codes */

/* ---------------------------------------------------------------- */
/* loading */

static int
read_file(const char *path, char **out, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || st.st_size > (off_t)1 << 30) {
		close(fd);
		return -EFBIG;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

struct load_ctx {
	struct master	*m;
	unsigned	 rows;
	int		 full;
};

static int
load_row_cb(void *arg, const struct usage_row *r)
{
	struct load_ctx *lc = arg;

	if (shm_ledger_load_locked(&lc->m->shm, r->phone, r->used_ms,
	    r->last_call_ms, r->calls) < 0) {
		lc->full = 1;
		return 1;
	}
	lc->rows++;
	return 0;
}

/* 0 loaded, -ENOENT missing, other < 0: unusable (why in err) */
static int
load_one(struct master *m, const char *path, char *err, size_t errlen,
    unsigned *rows)
{
	struct load_ctx lc = { m, 0, 0 };
	char *buf, why[256];
	size_t len;
	int rc, line = 0;

	if ((rc = read_file(path, &buf, &len)) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	rc = csv_usage_parse(buf, len, load_row_cb, &lc, &line, why, sizeof(why));
	free(buf);
	if (lc.full) {
		snprintf(err, errlen, "%s: more callers than LEDGER_CAPACITY "
		    "(%d) allows", path, m->conf.ledger_capacity);
		return -ENOSPC;
	}
	if (rc != 0) {
		snprintf(err, errlen, "%s:%d: %s", path, line, why);
		return -EINVAL;
	}
	*rows = lc.rows;
	return 0;
}

/* Forget a half-loaded file.  Only when something was loaded: the table
 * is fresh anonymous memory, already zero, and writing zeros over all of
 * it would make every page of it resident for nothing. */
static void
ledger_clear(struct master *m)
{
	if (atomic_load(&m->shm.hdr->sh_ledger_used) == 0)
		return;
	memset(m->shm.ledger, 0, (size_t)m->shm.hdr->sh_nledger *
	    sizeof(struct shm_ledger));
	atomic_store(&m->shm.hdr->sh_ledger_used, 0);
}

int
ledger_load(struct master *m, char *err, size_t errlen)
{
	char e1[512], e2[512];
	unsigned rows = 0;
	int r1, r2;

	r1 = load_one(m, m->conf.usage_csv_path, e1, sizeof(e1), &rows);
	if (r1 == 0) {
		log_info("usage ledger: %u callers from %s", rows,
		    m->conf.usage_csv_path);
		return 0;
	}
	ledger_clear(m);
	r2 = load_one(m, m->conf.usage_csv_backup_path, e2, sizeof(e2), &rows);
	if (r2 == 0) {
		log_warnx("usage ledger: %s; using the backup %s (%u callers)",
		    e1, m->conf.usage_csv_backup_path, rows);
		return 0;
	}
	ledger_clear(m);
	if (r1 == -ENOENT && r2 == -ENOENT) {
		log_info("usage ledger: no %s yet; starting empty",
		    m->conf.usage_csv_path);
		return 0;
	}
	snprintf(err, errlen, "usage ledger unreadable, refusing to start "
	    "rather than forget minutes: %s; backup: %s", e1, e2);
	return -1;
}

/* ---------------------------------------------------------------- */
/* saving */

/* The whole file as text, from the folded ledger. */
static char *
ledger_render(struct master *m, size_t *outlen)
{
	size_t cap = 4096, len = 0;
	char *out = malloc(cap), line[256];
	struct usage_row r;
	int n;

	if (out == NULL)
		return NULL;
	len = csv_usage_header(out, cap);
	for (unsigned i = 0; i < m->shm.hdr->sh_nledger; i++) {
		struct shm_ledger *e = &m->shm.ledger[i];

		if (atomic_load(&e->le_state) == 0)
			continue;
		memset(&r, 0, sizeof(r));
		vr_strlcpy(r.phone, e->le_phone, sizeof(r.phone));
		r.used_ms = atomic_load(&e->le_used_ms);
		r.calls = atomic_load(&e->le_calls);
		r.last_call_ms = atomic_load(&e->le_last_call_ms);
		if (r.calls == 0 && r.used_ms == 0)
			continue;	/* taken by a webhook, no call yet */
		n = csv_usage_format(&r, m->conf.free_call_minutes, line,
		    sizeof(line));
		if (n < 0 || (size_t)n >= sizeof(line))
			continue;
		if (len + (size_t)n > cap) {
			char *no;
			while (len + (size_t)n > cap)
				cap *= 2;
			if ((no = realloc(out, cap)) == NULL) {
				free(out);
				return NULL;
			}
			out = no;
		}
		memcpy(out + len, line, (size_t)n);
		len += (size_t)n;
	}
	*outlen = len;
	return out;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
fsync_dir_of(const char *path)
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

/* Write text to path+".tmp", durably.  0 or -errno; no tmp left on error. */
static int
write_tmp(const char *path, const char *text, size_t len, char *tmp, size_t tmplen)
{
	int fd, rc;

	snprintf(tmp, tmplen, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, text, len);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/* Keep the previous file as the backup.  Same file system: a rename;
 * otherwise a durable copy.  A missing main file is not an error. */
static int
rotate_backup(const char *path, const char *backup)
{
	char tmp[1100], *old;
	size_t len;
	int rc;

	if (rename(path, backup) == 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EXDEV)
		return -errno;
	if ((rc = read_file(path, &old, &len)) != 0)
		return rc;
	rc = write_tmp(backup, old, len, tmp, sizeof(tmp));
	free(old);
	if (rc == 0 && rename(tmp, backup) != 0) {
		rc = -errno;
		unlink(tmp);
	}
	return rc;
}

/* The whole save, in whatever process runs it.  0 or -errno, *step says
 * which step failed. */
static int
ledger_save(const char *path, const char *backup, const char *text, size_t len,
    const char **step)
{
	char tmp[1100];
	int rc;

	*step = "write";
	if ((rc = write_tmp(path, text, len, tmp, sizeof(tmp))) != 0)
		return rc;
	*step = "keep backup";
	if ((rc = rotate_backup(path, backup)) != 0) {
		unlink(tmp);
		return rc;
	}
	*step = "rename";
	if (rename(tmp, path) != 0) {
		rc = -errno;
		unlink(tmp);
		return rc;
	}
	*step = "sync directory";
	fsync_dir_of(path);
	if (strcmp(path, backup) != 0)
		fsync_dir_of(backup);
	return 0;
}

void
ledger_flush_async(struct master *m)
{
	uint64_t v = atomic_load(&m->shm.hdr->sh_ledger_version);
	const char *step;
	size_t len;
	char *text;
	pid_t pid;

	if (m->flush_pid > 0 || v == m->flushed_version)
		return;
	if ((text = ledger_render(m, &len)) == NULL)
		return;
	pid = fork();
	if (pid < 0) {
		log_warn("fork for the ledger save");
		free(text);
		return;
	}
	if (pid == 0) {
		int rc = ledger_save(m->conf.usage_csv_path,
		    m->conf.usage_csv_backup_path, text, len, &step);
		if (rc != 0) {
			log_warnx("saving the usage ledger to %s failed at %s: %s",
			    m->conf.usage_csv_path, step, strerror(-rc));
			_exit(FLUSH_FAILED_WRITE);
		}
		_exit(0);
	}
	free(text);
	m->flush_pid = pid;
	m->flush_version = v;
}

void
ledger_flush_done(struct master *m, int st)
{
	m->flush_pid = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		if (m->flush_fail_logged)
			log_info("usage ledger saved again after %llu failed attempts",
			    (unsigned long long)m->flush_fail_logged);
		m->flush_fail_logged = 0;
		m->flushed_version = m->flush_version;
		master_count(m, SC_flush_ok);
		return;
	}
	/* the child logged why; retried at the next interval */
	m->flush_fail_logged++;
	master_count(m, SC_flush_failed);
}

int
ledger_flush_sync(struct master *m)
{
	const char *step;
	size_t len;
	char *text;
	int rc;

	if (atomic_load(&m->shm.hdr->sh_ledger_version) == m->flushed_version)
		return 0;
	if ((text = ledger_render(m, &len)) == NULL)
		return -ENOMEM;
	rc = ledger_save(m->conf.usage_csv_path, m->conf.usage_csv_backup_path,
	    text, len, &step);
	free(text);
	if (rc == 0)
		m->flushed_version = atomic_load(&m->shm.hdr->sh_ledger_version);
	else
		log_warnx("saving the usage ledger to %s failed at %s: %s",
		    m->conf.usage_csv_path, step, strerror(-rc));
	return rc;
}
