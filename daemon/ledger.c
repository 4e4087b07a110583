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
 *
 * What reached the disk: each save keeps, per ledger entry, the time and
 * calls it wrote (save_snap); once the file is in place these become the
 * entry's le_saved_* (set by the child that saved, so that a master killed
 * before it reaps the child still has them right).  The workers of a dead
 * master journal le_used_ms - le_saved_ms (shm/rescue.h).
 *
 * The rescue journal is taken like this: renamed to USAGE_CSV_PATH
 * .rescue.taking; locked (a worker appending holds the lock, and one that
 * gets it after finds the name gone and opens a new journal); stamped
 * with the usage CSV's identity (device, inode, size, mtime); added to
 * the ledger; saved; removed.  A crash before the removal leaves the
 * .taking file: if the CSV is still the stamped one, the save that would
 * hold it did not happen and it is taken again; if the CSV changed, a
 * save after the adding holds it (no save runs between the stamp and the
 * adding) and it is only removed.
 */
#include "daemon/master.h"
#include "daemon/store.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"
#include "proto/csv.h"
#include "shm/rescue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FLUSH_FAILED_WRITE	3	/* child exit codes */
#define RESCUE_IDS_MAX		8192	/* record ids remembered per run */

struct ledger_saved {
	uint64_t	ms;
	uint32_t	calls;
};

/* ---------------------------------------------------------------- */
/* loading */

static int
read_fd(int fd, char **out, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fstat(fd, &st) != 0 || st.st_size > (off_t)1 << 30)
		return -EFBIG;
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got,
		    (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

static int
read_file(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	rc = read_fd(fd, out, len);
	close(fd);
	return rc;
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

/* The whole file as text, from the folded ledger; snap (one per entry)
 * gets what each entry wrote. */
static char *
ledger_render(struct master *m, size_t *outlen, struct ledger_saved **snapp)
{
	size_t cap = 4096, len = 0;
	char *out = malloc(cap), line[256];
	struct ledger_saved *snap;
	struct usage_row r;
	int n;

	if (out == NULL)
		return NULL;
	snap = calloc(m->shm.hdr->sh_nledger, sizeof(*snap));
	if (snap == NULL) {
		free(out);
		return NULL;
	}
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
				free(snap);
				return NULL;
			}
			out = no;
		}
		memcpy(out + len, line, (size_t)n);
		len += (size_t)n;
		snap[i].ms = r.used_ms;
		snap[i].calls = r.calls;
	}
	*outlen = len;
	*snapp = snap;
	return out;
}

/* The save with snap reached the disk: that is what the file holds.  An
 * entry made after the render has a zero snap, and nothing in the file. */
static void
ledger_saved_set(struct master *m, const struct ledger_saved *snap)
{
	for (unsigned i = 0; i < m->shm.hdr->sh_nledger; i++) {
		struct shm_ledger *e = &m->shm.ledger[i];

		if (atomic_load(&e->le_state) == 0)
			continue;
		atomic_store(&e->le_saved_ms, snap[i].ms);
		atomic_store(&e->le_saved_calls, snap[i].calls);
	}
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
	rc = vr_write_all(fd, text, len);
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
	vr_fsync_dir(path);
	if (strcmp(path, backup) != 0)
		vr_fsync_dir(backup);
	return 0;
}

void
ledger_flush_async(struct master *m)
{
	uint64_t v = atomic_load(&m->shm.hdr->sh_ledger_version);
	struct ledger_saved *snap;
	const char *step;
	int32_t forking = -1;
	size_t len;
	char *text;
	pid_t pid;

	if (m->flush_pid > 0 || v == m->flushed_version)
		return;
	if ((text = ledger_render(m, &len, &snap)) == NULL)
		return;
	/* a save is on its way: workers rescuing wait for its end */
	atomic_store(&m->shm.hdr->sh_save_pid, -1);
	pid = fork();
	if (pid < 0) {
		log_warn("fork for the ledger save");
		atomic_store(&m->shm.hdr->sh_save_pid, 0);
		free(text);
		free(snap);
		return;
	}
	if (pid == 0) {
		int rc = ledger_save(m->conf.usage_csv_path,
		    m->conf.usage_csv_backup_path, text, len, &step);
		if (rc != 0) {
			atomic_store(&m->shm.hdr->sh_save_pid, 0);
			log_warnx("saving the usage ledger to %s failed at %s: %s",
			    m->conf.usage_csv_path, step, strerror(-rc));
			_exit(FLUSH_FAILED_WRITE);
		}
		ledger_saved_set(m, snap);
		atomic_store(&m->shm.hdr->sh_save_pid, 0);
		_exit(0);
	}
	free(text);
	free(snap);
	/* unless the child is done already */
	atomic_compare_exchange_strong(&m->shm.hdr->sh_save_pid, &forking, pid);
	m->flush_pid = pid;
	m->flush_version = v;
}

static void rescue_saved(struct master *m, uint64_t version);

void
ledger_flush_done(struct master *m, int st)
{
	m->flush_pid = 0;
	atomic_store(&m->shm.hdr->sh_save_pid, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		if (m->flush_fail_logged)
			log_info("usage ledger saved again after %llu failed attempts",
			    (unsigned long long)m->flush_fail_logged);
		m->flush_fail_logged = 0;
		m->flushed_version = m->flush_version;
		master_count(m, SC_flush_ok);
		rescue_saved(m, m->flush_version);
		return;
	}
	/* the child logged why; retried at the next interval */
	m->flush_fail_logged++;
	master_count(m, SC_flush_failed);
}

int
ledger_flush_sync(struct master *m)
{
	uint64_t v = atomic_load(&m->shm.hdr->sh_ledger_version);
	struct ledger_saved *snap;
	const char *step;
	size_t len;
	char *text;
	int rc;

	if (v == m->flushed_version)
		return 0;
	if ((text = ledger_render(m, &len, &snap)) == NULL)
		return -ENOMEM;
	rc = ledger_save(m->conf.usage_csv_path, m->conf.usage_csv_backup_path,
	    text, len, &step);
	free(text);
	if (rc == 0) {
		ledger_saved_set(m, snap);
		m->flushed_version = v;
		rescue_saved(m, v);
	} else
		log_warnx("saving the usage ledger to %s failed at %s: %s",
		    m->conf.usage_csv_path, step, strerror(-rc));
	free(snap);
	return rc;
}

/* ---------------------------------------------------------------- */
/* the rescue journal */

enum take_result {
	TAKE_NOTHING,		/* no file, or nothing in it to add */
	TAKE_COUNTED,		/* taken by an earlier run, saved since */
	TAKE_ADDED,		/* in the ledger now; to be saved */
	TAKE_FAILED,		/* not read: kept for the next try */
};

static void
rescue_paths(const struct master *m, char *journal, char *taking, size_t len)
{
	snprintf(journal, len, "%s.rescue", m->conf.usage_csv_path);
	snprintf(taking, len, "%s.rescue.taking", m->conf.usage_csv_path);
}

/* The usage CSV's identity now; all zero when there is none. */
static void
csv_identity(const char *path, struct rescue_stamp *t)
{
	struct stat st;

	memset(t, 0, sizeof(*t));
	if (stat(path, &st) != 0)
		return;
	t->dev = (uint64_t)st.st_dev;
	t->ino = (uint64_t)st.st_ino;
	t->size = (uint64_t)st.st_size;
	t->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull +
	    (uint64_t)st.st_mtim.tv_nsec;
}

/* Remember a record's id; 1 when it was already there. */
static int
rescue_id_seen(struct master *m, const char *id)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = id; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	if (h == 0)
		h = 1;
	if (m->rescue_ids == NULL &&
	    (m->rescue_ids = calloc(RESCUE_IDS_MAX, sizeof(uint64_t))) == NULL)
		return 0;
	for (unsigned k = 0; k < RESCUE_IDS_MAX; k++) {
		uint64_t *slot = &m->rescue_ids[(h + k) % RESCUE_IDS_MAX];

		if (*slot == h)
			return 1;
		if (*slot == 0) {
			/* three quarters full: keep probing short, stop
			 * remembering (ids repeat only within moments) */
			if (m->rescue_nids < RESCUE_IDS_MAX / 4 * 3) {
				*slot = h;
				m->rescue_nids++;
			}
			return 0;
		}
	}
	return 0;
}

struct take_ctx {
	struct master		*m;
	const char		*path;
	int			 have_stamp;
	struct rescue_stamp	 stamp;
	struct rescue_rec	*recs;
	unsigned		 nrecs, caprecs;
	unsigned		 skipped;
	int			 nomem;
};

static void
take_rec(void *arg, const struct rescue_rec *r)
{
	struct take_ctx *tc = arg;

	if (tc->nrecs == tc->caprecs) {
		unsigned cap = tc->caprecs ? tc->caprecs * 2 : 64;
		struct rescue_rec *nr = realloc(tc->recs, cap * sizeof(*nr));

		if (nr == NULL) {
			tc->nomem = 1;
			return;
		}
		tc->recs = nr;
		tc->caprecs = cap;
	}
	tc->recs[tc->nrecs++] = *r;
}

static void
take_stamp(void *arg, const struct rescue_stamp *t)
{
	struct take_ctx *tc = arg;

	if (!tc->have_stamp) {
		tc->have_stamp = 1;
		tc->stamp = *t;
	}
}

static void
take_skip(void *arg, unsigned line, const char *why)
{
	struct take_ctx *tc = arg;

	tc->skipped++;
	log_warnx("rescue journal %s, line %u: %s; skipped", tc->path, line, why);
}

/*
 * A call the dead master's worker ended: its record in the store stays
 * in-progress unless closed here, as records_close_dead() does for a dead
 * worker, with what the journal says (its start and its time).
 */
static void
rescue_record(struct master *m, const struct rescue_rec *r)
{
	uint64_t end = r->last_call_ms + r->ms;
	json_t *a = m->rescue_records;

	if (!m->conf.call_records)
		return;
	if (a == NULL && (a = m->rescue_records = json_array()) == NULL)
		return;
	json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s}",
	    "type", "call", "call_sid", r->call_sid, "status", "failed",
	    "ended_at", (json_int_t)end, "duration_ms", (json_int_t)r->ms,
	    "billed_s", (json_int_t)((r->ms + 999) / 1000),
	    "end_reason", "the master died", "failure_class", "master"));
	json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I}", "type",
	    "status", "call_sid", r->call_sid, "status", "failed", "at",
	    (json_int_t)end));
	json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I,s:I}", "type",
	    "minutes", "phone", r->phone, "call_sid", r->call_sid, "used_ms",
	    (json_int_t)r->ms, "at", (json_int_t)end));
}

void
ledger_rescue_records(struct master *m)
{
	size_t i;
	json_t *rec;

	if (m->store == NULL || m->rescue_records == NULL)
		return;
	json_array_foreach(m->rescue_records, i, rec) {
		const char *type = json_string_value(json_object_get(rec, "type"));

		if (strcmp(type, "status") != 0)
			json_object_set_new(rec, "host", json_string(m->hostname));
		if (strcmp(type, "call") == 0)
			master_count(m, SC_records_closed_master_died);
		store_post(m->store, json_incref(rec));
	}
	json_decref(m->rescue_records);
	m->rescue_records = NULL;
}

/* Take the renamed journal at path into the ledger (see the top),
 * waiting up to wait_ms for a worker that holds its lock. */
static enum take_result
rescue_take_file(struct master *m, const char *path, unsigned wait_ms)
{
	struct take_ctx tc = { m, path, 0, { 0, 0, 0, 0 }, NULL, 0, 0, 0, 0 };
	struct rescue_scan_cb cb = { take_rec, take_stamp, take_skip, &tc };
	struct rescue_stamp cur;
	enum take_result res = TAKE_NOTHING;
	unsigned taken = 0, dups = 0, full = 0;
	uint64_t ms = 0;
	char line[RESCUE_LINE_MAX + 1], *buf;
	size_t len;
	int fd, n, rc;

	if ((fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)) < 0) {
		if (errno != ENOENT)
			log_warn("rescue journal %s", path);
		return TAKE_NOTHING;
	}
	/* a worker still appending to it finishes first (an fsync); one
	 * stopped with the lock held must not stop the master */
	for (unsigned waited = 0;; waited += 10) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if ((errno != EWOULDBLOCK && errno != EINTR) || waited >= wait_ms) {
			log_warnx("rescue journal %s: locked by a worker of the "
			    "master that died; left for the next try", path);
			close(fd);
			return TAKE_FAILED;
		}
		usleep(10000);
	}
	if ((rc = read_fd(fd, &buf, &len)) != 0) {
		log_warnx("rescue journal %s: %s; left for the next try", path,
		    strerror(-rc));
		close(fd);
		return TAKE_FAILED;
	}
	rescue_scan(buf, len, &cb);
	free(buf);
	if (tc.nomem) {
		log_warnx("rescue journal %s: out of memory; left for the next "
		    "try", path);
		free(tc.recs);
		close(fd);
		return TAKE_FAILED;
	}
	csv_identity(m->conf.usage_csv_path, &cur);
	if (tc.have_stamp && memcmp(&tc.stamp, &cur, sizeof(cur)) != 0) {
		/* the usage CSV was saved after this was added */
		log_info("rescue journal %s was taken before and %s saved since; "
		    "removing it", path, m->conf.usage_csv_path);
		free(tc.recs);
		close(fd);
		return TAKE_COUNTED;
	}
	if (!tc.have_stamp) {
		n = rescue_format_stamp(&cur, line + 1, sizeof(line) - 1);
		line[0] = '\n';
		if (n < 0 || write(fd, line, (size_t)n + 1) != n + 1 ||
		    fsync(fd) != 0) {
			log_warn("rescue journal %s: stamping it; left for the "
			    "next try", path);
			free(tc.recs);
			close(fd);
			return TAKE_FAILED;
		}
	}
	for (unsigned i = 0; i < tc.nrecs; i++) {
		const struct rescue_rec *r = &tc.recs[i];
		int idx;

		if (rescue_id_seen(m, r->id)) {
			dups++;
			continue;
		}
		if ((idx = shm_ledger_get_locked(&m->shm, r->phone)) < 0) {
			full++;
			master_count(m, SC_ledger_full);
			continue;
		}
		shm_ledger_add_locked(&m->shm, idx, r->ms, r->last_call_ms,
		    r->calls);
		/* on disk already, in the taking file, which a later start
		 * takes again unless a save holds it: not for this master's
		 * workers to journal again should it die before that save */
		atomic_fetch_add(&m->shm.ledger[idx].le_saved_ms, r->ms);
		atomic_fetch_add(&m->shm.ledger[idx].le_saved_calls, r->calls);
		taken++;
		ms += r->ms;
		if (r->call_sid[0] != '\0')
			rescue_record(m, r);
	}
	shm_count(m->shm.hdr->sh_counters, SC_rescue_records_taken, taken);
	shm_count(m->shm.hdr->sh_counters, SC_rescue_lines_skipped,
	    tc.skipped + dups);
	log_info("usage ledger: %.2f minutes taken from the rescue journal %s "
	    "(%u record%s; %u line%s skipped, %u already taken)", ms / 60000.0,
	    path, taken, taken == 1 ? "" : "s", tc.skipped,
	    tc.skipped == 1 ? "" : "s", dups);
	if (full > 0)
		log_warnx("rescue journal %s: %u record%s of new callers did not "
		    "fit in LEDGER_CAPACITY and are lost", path, full,
		    full == 1 ? "" : "s");
	if (taken > 0)
		res = TAKE_ADDED;
	free(tc.recs);
	close(fd);
	ledger_rescue_records(m);
	return res;
}

/* Rename the journal to the taking name, unless a taking file is there
 * already (left by a crash: it goes first).  0 when there is one to take. */
static int
rescue_move(const char *journal, const char *taking)
{
	if (access(taking, F_OK) == 0)
		return 0;
	if (rename(journal, taking) != 0) {
		if (errno != ENOENT)
			log_warn("rescue journal: renaming %s", journal);
		return -1;
	}
	vr_fsync_dir(taking);
	return 0;
}

static void
rescue_remove(const char *taking)
{
	if (unlink(taking) != 0 && errno != ENOENT)
		log_warn("rescue journal: removing %s", taking);
	vr_fsync_dir(taking);
}

/* A save of ledger version v reached the disk. */
static void
rescue_saved(struct master *m, uint64_t version)
{
	char journal[1100], taking[1100];

	if (!m->rescue_wait || version < m->rescue_version)
		return;
	rescue_paths(m, journal, taking, sizeof(journal));
	rescue_remove(taking);
	m->rescue_wait = 0;
}

void
ledger_rescue_take_sync(struct master *m)
{
	char journal[1100], taking[1100];

	if (m->rescue_wait)
		return;
	rescue_paths(m, journal, taking, sizeof(journal));
	/* a taking file left by a crash, then the journal */
	for (int pass = 0; pass < 2; pass++) {
		if (rescue_move(journal, taking) != 0)
			return;
		switch (rescue_take_file(m, taking, 5000)) {
		case TAKE_ADDED:
			m->rescue_wait = 1;
			m->rescue_version = atomic_load(
			    &m->shm.hdr->sh_ledger_version);
			if (ledger_flush_sync(m) != 0) {
				log_warnx("rescue journal %s kept until the usage "
				    "ledger is saved", taking);
				return;
			}
			break;		/* removed by the save */
		case TAKE_COUNTED:
		case TAKE_NOTHING:
			rescue_remove(taking);
			break;
		case TAKE_FAILED:
			return;
		}
	}
}

void
ledger_rescue_take_async(struct master *m)
{
	char journal[1100], taking[1100];

	if (m->rescue_wait || m->flush_pid > 0)
		return;
	rescue_paths(m, journal, taking, sizeof(journal));
	if (rescue_move(journal, taking) != 0)
		return;
	switch (rescue_take_file(m, taking, 0)) {
	case TAKE_ADDED:
		/* the next save holds it; removed when it succeeds */
		m->rescue_wait = 1;
		m->rescue_version = atomic_load(&m->shm.hdr->sh_ledger_version);
		break;
	case TAKE_COUNTED:
	case TAKE_NOTHING:
		rescue_remove(taking);
		break;
	case TAKE_FAILED:
		break;
	}
}
