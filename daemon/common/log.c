/*
 * log.c — see log.h.  OpenBSD's relayd log.c is the model: a handful of
 * levels, strerror appended by the _warn variants, fatal exits.
 */
#include "daemon/common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
	int	fd;		/* -1: syslog */
	int	foreground;
	int	verbose;
	int	slot;
	char	role[16];
	char	call[48];
	char	path[512];
} lg = { .fd = 2, .foreground = 1, .slot = -1, .role = "master" };

static int
log_open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	return fd < 0 ? -errno : fd;
}

int
log_init(const char *path, int foreground, int verbose)
{
	int fd;

	lg.foreground = foreground;
	lg.verbose = verbose;
	lg.path[0] = '\0';
	if (path != NULL && path[0] != '\0') {
		if ((fd = log_open_file(path)) < 0)
			return fd;
		if (lg.fd > 2)
			close(lg.fd);
		lg.fd = fd;
		snprintf(lg.path, sizeof(lg.path), "%s", path);
		return 0;
	}
	if (foreground) {
		lg.fd = 2;
	} else {
		lg.fd = -1;
		openlog("voxrelay", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (lg.path[0] == '\0')
		return 0;
	if ((fd = log_open_file(lg.path)) < 0)
		return fd;
	if (lg.fd > 2)
		close(lg.fd);
	lg.fd = fd;
	return 0;
}

void
log_child_prepare(void)
{
	if (lg.fd < 0)
		closelog();
}

void
log_child_ready(void)
{
	if (lg.fd < 0)
		openlog("voxrelay", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
log_fd(void)
{
	return lg.fd;
}

void
log_set_role(const char *role, int slot)
{
	snprintf(lg.role, sizeof(lg.role), "%s", role);
	lg.slot = slot;
}

void
log_set_call(const char *call_sid)
{
	if (call_sid == NULL)
		lg.call[0] = '\0';
	else
		snprintf(lg.call, sizeof(lg.call), "%s", call_sid);
}

void
log_set_level(int verbose)
{
	lg.verbose = verbose;
}

static void
log_emit(int level, int with_errno, const char *fmt, va_list ap)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[2048], who[32];
	int saved = errno, n = 0, m;
	struct timespec ts;
	struct tm tm;

	if (level == LOG_LVL_DEBUG && lg.verbose < 1)
		return;
	if (lg.slot >= 0)
		snprintf(who, sizeof(who), "%s %d", lg.role, lg.slot);
	else
		snprintf(who, sizeof(who), "%s", lg.role);

	if (lg.fd >= 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
		    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, names[level]);
	}
	m = snprintf(line + n, sizeof(line) - n, "%s[%d]%s%s: ", who,
	    (int)getpid(), lg.call[0] ? " " : "", lg.call);
	if (m > 0 && (size_t)m < sizeof(line) - n)
		n += m;
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m > 0)
		n += (size_t)m < sizeof(line) - n ? m : (int)(sizeof(line) - n - 1);
	if (with_errno && (size_t)n < sizeof(line) - 2) {
		m = snprintf(line + n, sizeof(line) - n, ": %s", strerror(saved));
		if (m > 0)
			n += (size_t)m < sizeof(line) - n ? m : (int)(sizeof(line) - n - 1);
	}
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* One line, one record: strip newlines a peer may have smuggled in. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (lg.fd >= 0) {
		line[n++] = '\n';
		ssize_t w = write(lg.fd, line, n);
		(void)w;
	} else {
		line[n] = '\0';
		syslog(prio[level], "%s", line);
	}
	errno = saved;
}

#define LOG_FN(name, lvl, err)				\
void name(const char *fmt, ...)				\
{							\
	va_list ap;					\
	va_start(ap, fmt);				\
	log_emit(lvl, err, fmt, ap);			\
	va_end(ap);					\
}
LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_ERR, 1, fmt, ap);
	va_end(ap);
	exit(EXIT_FATAL_CONFIG);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LVL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(EXIT_FATAL_CONFIG);
}
