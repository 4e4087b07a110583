/*
 * rescue.h — the rescue journal: the minutes a dead master had not saved.
 *
 * The master is the ledger's only writer and saves it every
 * USAGE_FLUSH_INTERVAL.  When it dies, what lives only in shared memory
 * (the calls live at that moment, the calls folded since the last save)
 * would die with it.  The workers outlive it by a moment: each one ends
 * its calls and appends their time to USAGE_CSV_PATH.rescue, and the
 * first one to find the master gone (sh_rescuer) also appends the
 * ledger's unsaved part and the calls of workers that died unreaped.
 * The next master adds the journal to the ledger before it serves
 * (daemon/ledger.c).
 *
 * The file is text, one record a line, each line checked:
 *
 *   r1 <id> <phone> <ms> <calls> <last call, wall ms> <call> <check>
 *   t1 <dev> <ino> <size> <mtime ns> <check>
 *
 * id, phone and call are percent-encoded (space, control bytes, '%' and
 * bytes above 0x7e), check is FNV-1a 32 of the line before it, in hex.
 * An "r1" record is a caller's time; its id names what it is (a call's
 * stream, a ledger entry of one master's life) so that taking a record
 * twice adds it once; call is the CallSid whose record in the store the
 * next master closes ("master died"), or "-" for none.  A "t1" line is the master's stamp, written when it takes the
 * file: the identity of the usage CSV at that moment (see ledger.c).
 * Every append starts with a newline, so a line torn by a crash ends
 * there and the next append is whole; a line that does not check is
 * skipped, never fatal.
 */
#ifndef VR_SHM_RESCUE_H
#define VR_SHM_RESCUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/shm.h"

#define RESCUE_ID_MAX	96
#define RESCUE_LINE_MAX	512

struct rescue_rec {
	char		id[RESCUE_ID_MAX];
	char		phone[SHM_PHONE_MAX];
	uint64_t	ms;
	uint64_t	last_call_ms;	/* wall */
	uint32_t	calls;
	char		call_sid[SHM_SID_MAX];	/* its record to close, or "" */
};

/* The usage CSV's identity, to tell whether it was saved again since. */
struct rescue_stamp {
	uint64_t	dev, ino, size, mtime_ns;
};

/* One line, newline included, into out.  Its length, or -1 when it does
 * not fit. */
int  rescue_format(const struct rescue_rec *r, char *out, size_t outlen);
int  rescue_format_stamp(const struct rescue_stamp *t, char *out,
    size_t outlen);

/* What a journal holds, line by line.  rec for each good record, stamp
 * for each good stamp, skip for each line that does not check (its
 * number, from 1); blank lines are nothing.  Returns the lines skipped. */
struct rescue_scan_cb {
	void	(*rec)(void *arg, const struct rescue_rec *r);
	void	(*stamp)(void *arg, const struct rescue_stamp *t);
	void	(*skip)(void *arg, unsigned line, const char *why);
	void	 *arg;
};
unsigned rescue_scan(const char *buf, size_t len, const struct rescue_scan_cb *cb);

/* Append text to the journal at path, durably: under an exclusive lock
 * of the file, to the file the path names when the lock is held (the
 * master renames the journal away to take it), then fsync.  0 or -errno. */
int  rescue_append(const char *path, const char *text, size_t len);

/* ---- in a worker that found the master gone ---- */

/* Journal the time of the calls this worker (slot, pid) holds, live or
 * ended, and free their slots.  now_ms (mono) ends a live one.  A call
 * for which close_record(arg, its slot) is true carries its CallSid, for
 * the next master to close its record.  The number of calls journaled,
 * or -errno (slots left as they were). */
int  rescue_own_calls(struct shm *s, int slot, pid_t pid, const char *path,
    uint64_t now_ms, int (*close_record)(void *arg, int idx), void *arg);

/* Become the rescuer unless another worker is: then journal the ledger's
 * unsaved part (after waiting for a save in progress), wait up to wait_ms
 * for the other workers to journal their own calls, and journal the
 * calls of workers that are dead.  0 when another worker is the rescuer,
 * else the number of records written, or -errno. */
int  rescue_as_rescuer(struct shm *s, pid_t self, const char *path,
    uint64_t wait_ms);

#endif
