/*
 * log.h — one line per event, for both roles.
 *
 * Every line: UTC time, role and slot, pid, the current call's SID when one is
 * set, then the message.  Each line is written with one write(2), so lines of
 * several processes appending to one file never interleave.
 *
 * Destinations: stderr (foreground), LOG_FILE (appended, reopened on
 * SIGUSR1), or syslog(3) when neither.  Never call from a signal handler.
 * Never pass a key, token or Authorization header to these functions.
 */
#ifndef VR_LOG_H
#define VR_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* path NULL or "": stderr when foreground, else syslog. Returns 0 or -errno. */
int  log_init(const char *path, int foreground, int verbose);
int  log_reopen(void);
void log_set_role(const char *role, int slot);
/* The call a line is about; NULL clears.  The string is copied. */
void log_set_call(const char *call_sid);
void log_set_level(int verbose);
/* In a forked child, before it closes inherited descriptors: drop the
 * syslog connection (its descriptor number would be reused by another
 * socket).  log_child_ready() reconnects afterwards. */
void log_child_prepare(void);
void log_child_ready(void);
/* The fd lines go to (-1 for syslog); a forked child keeps it open. */
int  log_fd(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Exit code of fatal()/fatalx(): the master does not respawn a worker that
 * exits with it (bad configuration, missing resource). */
#define EXIT_FATAL_CONFIG 2

#endif
