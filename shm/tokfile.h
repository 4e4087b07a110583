/*
 * tokfile.h — the used stream tokens on disk, so that a restart with the
 * same STREAM_SECRET does not accept a redeemed token a second time.
 *
 * One file, TOKFILE_NAME, in the directory of USAGE_CSV_PATH (no key of
 * its own), one record a line:
 *
 *   <key: 16 lowercase hex digits> <expires: Unix seconds>\n
 *
 * keys as in the shared table (shm_token_key, shm_sid_key).  A worker
 * appends its records when it redeems a token; the master loads the
 * unexpired ones into the table at start and rewrites the file with only
 * those, and rewrites it from the table when it has grown.  A line that
 * does not parse (a torn last line) is skipped, never an error.
 */
#ifndef VR_SHM_TOKFILE_H
#define VR_SHM_TOKFILE_H

#include <stddef.h>
#include <stdint.h>

#include "shm/shm.h"

#define TOKFILE_NAME	"stream_tokens_used"
#define TOKFILE_REC_MAX	40	/* one record, with its newline */

/* The file's path beside usage_csv_path.  0, or -1 if it does not fit. */
int tokfile_path(const char *usage_csv_path, char *out, size_t len);

/* Append n records (one write(), no fsync: the page cache outlives the
 * process).  0, or -errno. */
int tokfile_append(const char *path, const uint64_t *keys, size_t n,
    uint64_t expires);

/* Master, at start, before any worker: put the unexpired records of path
 * into the table (a missing file is an empty one), then compact.
 * *loaded and *skipped (lines that did not parse) may be NULL.
 * 0, or -errno. */
int tokfile_load(struct shm *s, const char *path, uint64_t now_s,
    size_t *loaded, size_t *skipped);

/* Rewrite path with the table's unexpired entries (a temporary file
 * renamed over it), holding the table's lock until the rename, so that a
 * record a worker appends meanwhile is in the table copied or goes to the
 * new file.  0, or -errno. */
int tokfile_compact(struct shm *s, const char *path, uint64_t now_s);

#endif
