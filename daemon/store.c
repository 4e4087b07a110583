/*
 * store.c — the master's side of the store: a queue, one thread that owns
 * the database connection, and the journal.
 *
 * The loop only takes a mutex to append to the queue (store_post) and is
 * woken through a uv_async_t when a query has its answer; it never waits
 * on the disk or the network.  The thread takes what is queued (up to
 * BATCH_MAX records) and writes it in one transaction.
 *
 * The journal keeps order.  Once a batch could not be written, it and
 * every record after it go to the journal until the journal has been
 * replayed whole; replay starts as soon as the database opens again
 * (tried every retry_ms), one transaction per BATCH_MAX lines, and the file
 * is truncated when it is all in.  A crash during a replay replays the
 * journal again from its start at the next run: the writes are upserts,
 * so that leaves no duplicate.  The journal is fdatasync'ed per batch.
 */
#include "daemon/store.h"
#include "daemon/common/conf.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_MAGIC	0x53544f52u
#define BATCH_MAX	512
#define LINGER_MS	100		/* for more records before a write */
#define QUEUE_MAX	200000		/* records held while the thread is stuck */
#define REPLAY_ROUNDS	20		/* batches per turn, then new records */
#define PURGE_EVERY_MS	(24ULL * 3600 * 1000)

struct job {
	struct job	*next;
	json_t		*rec;		/* a record, or NULL for a query */
	store_query_cb	 fn;
	void		*arg;
	store_done_cb	 done;
	void		*done_arg;
	json_t		*result;
	char		 err[256];
};

struct store {
	unsigned	 magic;
	struct store_cfg cfg;		/* strings below are our copies */
	char		*path, *url, *journal, *host, *transcripts;

	uv_loop_t	*loop;
	uv_async_t	 async;
	int		 started;
	pthread_t	 thr;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct job	*qh, **qt;	/* to the thread */
	size_t		 nq;
	struct job	*dh, **dt;	/* answered queries, to the loop */
	int		 stopping;
	uint64_t	 stop_by;	/* mono ms: past it, journal the rest */
	uint64_t	 drop_logged;

	/* the thread's own */
	struct store_db	*db;
	uint64_t	 retry_at;
	int		 down_logged;
	int		 jfd;
	off_t		 jsize, joff;	/* file size; replayed up to */
	uint64_t	 next_purge;
	uint64_t	 next_tpurge;	/* transcript files */
	uint64_t	 jdrop_logged;

	_Atomic uint64_t s_queued, s_backlog, s_written, s_journaled,
			 s_replayed, s_rejected, s_dropped, s_purged;
	_Atomic int	 s_up, s_version;
};

void
store_cfg_from_conf(struct store_cfg *sc, const struct conf *c,
    const char *host)
{
	memset(sc, 0, sizeof(*sc));
	sc->path = c->database_path;
	sc->url = c->database_url;
	sc->journal = c->database_journal;
	sc->host = host;
	sc->retention_days = c->retention_days;
	sc->transcripts = c->transcripts_dir;
}

static char *
dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

struct store *
store_new(const struct store_cfg *cfg)
{
	struct store *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->magic = STORE_MAGIC;
	st->cfg = *cfg;
	st->path = dup_or_empty(cfg->path);
	st->url = dup_or_empty(cfg->url);
	st->journal = dup_or_empty(cfg->journal);
	st->host = dup_or_empty(cfg->host);
	st->transcripts = dup_or_empty(cfg->transcripts);
	if (!st->path || !st->url || !st->journal || !st->host ||
	    !st->transcripts) {
		free(st->transcripts);
		free(st->path);
		free(st->url);
		free(st->journal);
		free(st->host);
		free(st);
		return NULL;
	}
	st->cfg.path = st->path;
	st->cfg.url = st->url;
	st->cfg.journal = st->journal;
	st->cfg.host = st->host;
	st->cfg.transcripts = st->transcripts;
	if (st->cfg.retry_ms <= 0)
		st->cfg.retry_ms = 1000;
	st->qt = &st->qh;
	st->dt = &st->dh;
	st->jfd = -1;
	atomic_store(&st->s_version, -1);
	pthread_mutex_init(&st->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&st->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	return st;
}

/* ---------------------------------------------------------------- */
/* the journal (thread only) */

/* Open it, count what an earlier run left in it, and make sure it ends
 * with a newline: a crash mid-line must not glue that line to the next. */
static void
journal_open(struct store *st)
{
	char buf[65536];
	ssize_t n;
	off_t at = 0;
	uint64_t lines = 0;
	char last = '\n';

	st->jfd = open(st->journal, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC,
	    0640);
	if (st->jfd < 0) {
		log_warn("DATABASE_JOURNAL %s", st->journal);
		return;
	}
	while ((n = pread(st->jfd, buf, sizeof(buf), at)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
		last = buf[n - 1];
		at += n;
	}
	if (last != '\n' && write(st->jfd, "\n", 1) == 1) {
		at++;
		lines++;
	}
	st->jsize = at;
	st->joff = 0;
	atomic_store(&st->s_backlog, lines);
	if (lines > 0)
		log_info("journal %s holds %llu records from an earlier run; "
		    "replaying them", st->journal, (unsigned long long)lines);
}

/* Append records; 0, or -1 with nothing appended. */
static int
journal_append(struct store *st, json_t *recs)
{
	char *buf = NULL;
	size_t len = 0, cap = 0, i, off = 0;
	json_t *rec;

	if (st->jfd < 0)
		return -1;
	json_array_foreach(recs, i, rec) {
		char *line = json_dumps(rec, JSON_COMPACT | JSON_ENSURE_ASCII);
		size_t n = line ? strlen(line) : 0;

		if (line == NULL)
			continue;
		if (len + n + 1 > cap) {
			size_t ncap = (len + n + 1) * 2;
			char *nb = realloc(buf, ncap);
			if (nb == NULL) {
				free(line);
				free(buf);
				return -1;
			}
			buf = nb;
			cap = ncap;
		}
		memcpy(buf + len, line, n);
		buf[len + n] = '\n';
		len += n + 1;
		free(line);
	}
	while (off < len) {
		ssize_t w = write(st->jfd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* no half record left behind */
			if (off > 0 && ftruncate(st->jfd, st->jsize) != 0)
				log_warn("journal %s: truncate", st->journal);
			free(buf);
			return -1;
		}
		off += (size_t)w;
	}
	free(buf);
	if (fdatasync(st->jfd) != 0) {
		log_warn("journal %s: fdatasync", st->journal);
		/* on disk or not, it is in the file: keep going */
	}
	st->jsize += (off_t)len;
	return 0;
}

/* ---------------------------------------------------------------- */
/* the database (thread only) */

static void
db_down(struct store *st, const char *why)
{
	if (st->db != NULL) {
		store_db_close(st->db);
		st->db = NULL;
	}
	atomic_store(&st->s_up, 0);
	st->retry_at = mono_ms() + (uint64_t)st->cfg.retry_ms;
	if (!st->down_logged) {
		log_warnx("call records: database unavailable (%s); records go to "
		    "the journal %s until it is back", why, st->journal);
		st->down_logged = 1;
	}
}

static void
db_try_open(struct store *st)
{
	char err[512];
	int v;

	if (st->db != NULL || mono_ms() < st->retry_at)
		return;
	if ((st->db = store_db_open(&st->cfg, 0, err, sizeof(err))) == NULL) {
		db_down(st, err);
		return;
	}
	v = store_db_version(st->db, err, sizeof(err));
	atomic_store(&st->s_version, v);
	atomic_store(&st->s_up, 1);
	if (st->down_logged)
		log_info("call records: database back (%s, schema %d)",
		    st->url[0] ? "postgresql" : "sqlite", v);
	else
		log_info("call records: %s, schema version %d",
		    st->url[0] ? "postgresql (DATABASE_URL)" : st->path, v);
	st->down_logged = 0;
}

/* Write recs: STORE_OK (refused records counted) or STORE_EDOWN. */
static int
db_write(struct store *st, json_t *recs)
{
	char err[512];
	unsigned rejected = 0;
	int rc;

	rc = store_db_apply(st->db, recs, err, sizeof(err));
	if (rc == STORE_EDATA) {
		log_warnx("call records: a batch was refused (%s); writing its "
		    "records one by one", err);
		rc = store_db_apply_each(st->db, recs, &rejected, err,
		    sizeof(err));
		if (rejected > 0) {
			atomic_fetch_add(&st->s_rejected, rejected);
			log_warnx("call records: %u record%s refused: %s", rejected,
			    rejected == 1 ? "" : "s", err);
		}
	}
	if (rc == STORE_EDOWN)
		db_down(st, err);
	return rc == STORE_EDOWN ? STORE_EDOWN : STORE_OK;
}

/* Replay up to REPLAY_ROUNDS batches from the journal. */
static void
journal_replay(struct store *st)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	int fd;

	if (st->jfd < 0 || st->jsize == st->joff || st->db == NULL)
		return;
	if ((fd = fcntl(st->jfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return;
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return;
	}
	if (fseeko(f, st->joff, SEEK_SET) != 0)
		goto out;
	for (int round = 0; round < REPLAY_ROUNDS && st->db != NULL; round++) {
		json_t *batch = json_array();
		off_t end = st->joff;
		ssize_t n;
		unsigned bad = 0;

		while (json_array_size(batch) < BATCH_MAX &&
		    (n = getline(&line, &cap, f)) > 0) {
			json_t *rec = json_loadb(line, (size_t)n, 0, NULL);

			end += n;
			if (rec == NULL) {
				if (n > 1)	/* not the blank line a crash left */
					bad++;
				continue;
			}
			json_array_append_new(batch, rec);
		}
		if (end == st->joff) {
			json_decref(batch);
			break;
		}
		if (json_array_size(batch) > 0 && db_write(st, batch) != STORE_OK) {
			json_decref(batch);
			break;
		}
		if (bad > 0) {
			atomic_fetch_add(&st->s_rejected, bad);
			log_warnx("journal %s: %u unreadable line%s skipped",
			    st->journal, bad, bad == 1 ? "" : "s");
		}
		atomic_fetch_add(&st->s_replayed, json_array_size(batch));
		atomic_fetch_sub(&st->s_backlog, json_array_size(batch) + bad);
		st->joff = end;
		json_decref(batch);
	}
out:
	free(line);
	fclose(f);
	if (st->joff == st->jsize) {
		if (ftruncate(st->jfd, 0) != 0)
			log_warn("journal %s: truncate", st->journal);
		else {
			st->jsize = st->joff = 0;
			atomic_store(&st->s_backlog, 0);
			log_info("call records: journal replayed");
		}
	}
}

static void
handle_records(struct store *st, json_t *recs, int journal_only)
{
	size_t n = json_array_size(recs);

	if (n == 0)
		return;
	if (!journal_only && st->db != NULL && st->jsize == st->joff &&
	    db_write(st, recs) == STORE_OK) {
		atomic_fetch_add(&st->s_written, n);
		return;
	}
	if (journal_append(st, recs) == 0) {
		atomic_fetch_add(&st->s_journaled, n);
		atomic_fetch_add(&st->s_backlog, n);
		return;
	}
	/* logged at 1, 2, 4... records lost, not once per batch */
	uint64_t d = atomic_fetch_add(&st->s_dropped, n) + n;
	if (d >= st->jdrop_logged) {
		log_warnx("call records: %llu records lost so far: neither the "
		    "database nor the journal %s took them",
		    (unsigned long long)d, st->journal);
		st->jdrop_logged = d * 2;
	}
}

long
store_purge_transcripts(const char *dir, uint64_t before)
{
	DIR *d;
	struct dirent *e;
	struct stat sb;
	long n = 0;

	if (dir == NULL || dir[0] == '\0')
		return 0;
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		/* only what the workers write: <CallSid>.jsonl */
		if (len <= 6 || strcmp(e->d_name + len - 6, ".jsonl") != 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		if ((uint64_t)sb.st_mtim.tv_sec * 1000 +
		    (uint64_t)sb.st_mtim.tv_nsec / 1000000 >= before)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void
maybe_purge(struct store *st)
{
	char err[512];
	uint64_t now = wall_ms(), before;
	long n;

	if (st->cfg.retention_days <= 0 || mono_ms() < st->next_purge)
		return;
	before = now - (uint64_t)st->cfg.retention_days * 24 * 3600 * 1000;
	/* the files go on their own day whether the database answers or not */
	if (st->next_tpurge <= mono_ms()) {
		st->next_tpurge = mono_ms() + PURGE_EVERY_MS;
		n = store_purge_transcripts(st->cfg.transcripts, before);
		if (n < 0)
			log_warn("call records: cannot read TRANSCRIPTS_DIR %s",
			    st->cfg.transcripts);
		else if (n > 0)
			log_info("call records: %ld transcript file%s older than "
			    "%d days purged", n, n == 1 ? "" : "s",
			    st->cfg.retention_days);
	}
	if (st->db == NULL)
		return;
	st->next_purge = mono_ms() + PURGE_EVERY_MS;
	n = store_db_purge(st->db, before, now, err, sizeof(err));
	if (n < 0) {
		log_warnx("call records: purge failed: %s", err);
		st->next_purge = mono_ms() + 60000;
	} else {
		atomic_fetch_add(&st->s_purged, (uint64_t)n);
		if (n > 0)
			log_info("call records: %ld call%s older than %d days purged",
			    n, n == 1 ? "" : "s", st->cfg.retention_days);
	}
}

static void *
store_thread(void *arg)
{
	struct store *st = arg;

	journal_open(st);
	for (;;) {
		struct job *q = NULL;
		json_t *recs = json_array();
		int stopping, late;

		uint64_t now = mono_ms(), wait_ms;

		/* idle: up to retry_ms (the purge's clock); down: until the
		 * next attempt; a journal being replayed: not at all */
		if (st->db != NULL)
			wait_ms = st->jsize == st->joff ?
			    (uint64_t)st->cfg.retry_ms : 0;
		else
			wait_ms = st->retry_at > now ? st->retry_at - now : 0;
		pthread_mutex_lock(&st->mu);
		if (st->qh == NULL && !st->stopping && wait_ms > 0) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)(wait_ms / 1000);
			ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&st->cv, &st->mu, &ts);
		}
		/*
		 * A few records: wait LINGER_MS for more, so that a busy
		 * daemon writes a transaction every LINGER_MS rather than one
		 * per record (each costs a commit, a WAL append of the pages
		 * touched, and a round trip on PostgreSQL).  A query, the
		 * stop, or a full batch cuts it short; a transcript line is
		 * still in the database well within 2 s.
		 */
		if (st->qh != NULL && st->qh->rec != NULL && !st->stopping &&
		    st->nq < BATCH_MAX && st->db != NULL && st->jsize == st->joff) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += LINGER_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&st->cv, &st->mu, &ts);
		}
		/* records up to the first query: it runs after them */
		while (st->qh != NULL && json_array_size(recs) < BATCH_MAX) {
			struct job *j = st->qh;

			if ((st->qh = j->next) == NULL)
				st->qt = &st->qh;
			st->nq--;
			if (j->rec == NULL) {
				q = j;
				break;
			}
			json_array_append_new(recs, j->rec);
			free(j);
		}
		atomic_store(&st->s_queued, st->nq);
		stopping = st->stopping && st->qh == NULL && q == NULL;
		late = st->stopping && mono_ms() >= st->stop_by;
		pthread_mutex_unlock(&st->mu);

		if (!late) {
			db_try_open(st);
			journal_replay(st);
		}
		handle_records(st, recs, late);
		json_decref(recs);
		if (q != NULL) {
			q->result = q->fn(late ? NULL : st->db, q->arg, q->err,
			    sizeof(q->err));
			/* the connection was lost since the last write (a
			 * server restarted): once more on a fresh one, so a
			 * question is not answered "down" by a database that
			 * is up */
			if (q->result == NULL && !late && st->db != NULL &&
			    store_db_broken(st->db)) {
				db_down(st, q->err);
				st->retry_at = 0;
				db_try_open(st);
				if (st->db != NULL)
					q->result = q->fn(st->db, q->arg, q->err,
					    sizeof(q->err));
			}
			pthread_mutex_lock(&st->mu);
			*st->dt = q;
			st->dt = &q->next;
			q->next = NULL;
			pthread_mutex_unlock(&st->mu);
			uv_async_send(&st->async);
		}
		if (!late)
			maybe_purge(st);
		if (stopping)
			break;
	}
	store_db_close(st->db);
	st->db = NULL;
	atomic_store(&st->s_up, 0);
	if (st->jfd >= 0)
		close(st->jfd);
	st->jfd = -1;
	return NULL;
}

/* ---------------------------------------------------------------- */
/* the loop's side */

static void
deliver(struct store *st)
{
	struct job *j, *next;

	pthread_mutex_lock(&st->mu);
	j = st->dh;
	st->dh = NULL;
	st->dt = &st->dh;
	pthread_mutex_unlock(&st->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		j->done(j->result, j->result ? NULL : j->err, j->done_arg);
		free(j);
	}
}

static void
async_cb(uv_async_t *a)
{
	struct store *st = a->data;

	if (st->magic != STORE_MAGIC)
		abort();
	deliver(st);
}

int
store_start(struct store *st, uv_loop_t *loop)
{
	sigset_t all, old;
	int rc;

	st->loop = loop;
	if ((rc = uv_async_init(loop, &st->async, async_cb)) != 0)
		return rc;
	st->async.data = st;
	st->next_purge = mono_ms() + 60000;	/* not in the start's rush */
	/* the thread takes no signal: the master's signalfd reads them all */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&st->thr, NULL, store_thread, st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		uv_close((uv_handle_t *)&st->async, NULL);
		return -rc;
	}
	st->started = 1;
	return 0;
}

/* 0, or -1 when the queue is at its limit (j not taken). */
static int
enqueue(struct store *st, struct job *j, size_t limit)
{
	int wake;

	pthread_mutex_lock(&st->mu);
	if (st->nq >= limit) {
		pthread_mutex_unlock(&st->mu);
		return -1;
	}
	/* a query also ends the thread's wait for more records */
	wake = st->qh == NULL || j->rec == NULL;
	*st->qt = j;
	st->qt = &j->next;
	j->next = NULL;
	st->nq++;
	pthread_mutex_unlock(&st->mu);
	if (wake)
		pthread_cond_signal(&st->cv);
	return 0;
}

void
store_post(struct store *st, json_t *rec)
{
	const char *why = store_record_check(rec);
	struct job *j;

	if (why != NULL) {
		atomic_fetch_add(&st->s_rejected, 1);
		log_warnx("call records: record refused: %s", why);
		json_decref(rec);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) != NULL) {
		j->rec = rec;
		if (enqueue(st, j, QUEUE_MAX) == 0)
			return;
		free(j);
	}
	/* the thread is stuck in a call to the database: log at 1, 2, 4... */
	uint64_t d = atomic_fetch_add(&st->s_dropped, 1) + 1;
	if (d >= st->drop_logged) {
		log_warnx("call records: queue full (%d): %llu records lost",
		    QUEUE_MAX, (unsigned long long)d);
		st->drop_logged = d * 2;
	}
	json_decref(rec);
}

int
store_query_async(struct store *st, store_query_cb fn, void *arg,
    store_done_cb done, void *done_arg)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	j->done = done;
	j->done_arg = done_arg;
	if (enqueue(st, j, QUEUE_MAX + 1024) != 0) {
		free(j);
		return -EAGAIN;
	}
	return 0;
}

void
store_get_stats(struct store *st, struct store_stats *o)
{
	o->queued = atomic_load(&st->s_queued);
	o->backlog = atomic_load(&st->s_backlog);
	o->written = atomic_load(&st->s_written);
	o->journaled = atomic_load(&st->s_journaled);
	o->replayed = atomic_load(&st->s_replayed);
	o->rejected = atomic_load(&st->s_rejected);
	o->dropped = atomic_load(&st->s_dropped);
	o->purged = atomic_load(&st->s_purged);
	o->up = atomic_load(&st->s_up);
	o->version = atomic_load(&st->s_version);
}

static void
free_cb(uv_handle_t *h)
{
	struct store *st = h->data;

	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	st->magic = 0;
	free(st->path);
	free(st->url);
	free(st->journal);
	free(st->host);
	free(st->transcripts);
	free(st);
}

void
store_stop(struct store *st, int timeout_ms)
{
	if (st == NULL)
		return;
	if (!st->started) {
		struct job *j, *next;

		for (j = st->qh; j != NULL; j = next) {
			next = j->next;
			json_decref(j->rec);
			free(j);
		}
		st->async.data = st;
		free_cb((uv_handle_t *)&st->async);
		return;
	}
	pthread_mutex_lock(&st->mu);
	st->stopping = 1;
	st->stop_by = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_unlock(&st->mu);
	pthread_cond_signal(&st->cv);
	pthread_join(st->thr, NULL);
	deliver(st);
	uv_close((uv_handle_t *)&st->async, free_cb);
}
