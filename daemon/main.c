/*
 * main.c — command line, configuration check, daemonising, pid file.
 *
 *   voxrelay [-d] [-t] [-v] [-f file]
 *
 * -f  the configuration file (default /etc/voxrelay/voxrelay.conf; the
 *     environment overrides it key by key)
 * -d  stay in the foreground and log to stderr (unless LOG_FILE is set)
 * -t  check the configuration and exit: 0, or what is wrong and 1
 * -v  print the version and exit
 */
#include "daemon/config.h"
#include "daemon/master.h"
#include "daemon/store.h"
#include "daemon/common/conf.h"
#include "daemon/common/log.h"
#include "daemon/common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CONF "/etc/voxrelay/voxrelay.conf"

/* The master process's state: reached here only, and passed down. */
static struct master M;

static void
usage(void)
{
	fprintf(stderr, "usage: voxrelay [-dtv] [-f file]\n");
	exit(1);
}

static int
check_writable_dir(const char *path, const char *key, char *err, size_t len)
{
	char *copy = strdup(path), *slash;
	int rc = 0;

	if (copy == NULL)
		return 0;
	slash = strrchr(copy, '/');
	if (slash == copy)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		strcpy(copy, ".");
	if (access(copy, W_OK | X_OK) != 0) {
		snprintf(err, len, "%s: directory %s is not writable: %s", key,
		    copy, strerror(errno));
		rc = -1;
	}
	free(copy);
	return rc;
}

/* The checks -t adds on top of conf_load(): the things that would stop a
 * start.  Returns the number of problems printed. */
static int
check_environment(const struct conf *c)
{
	char err[600];
	int n = 0;

	if (check_writable_dir(c->usage_csv_path, "USAGE_CSV_PATH", err,
	    sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		n++;
	}
	if (check_writable_dir(c->usage_csv_backup_path, "USAGE_CSV_BACKUP_PATH",
	    err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		n++;
	}
	if (check_writable_dir(c->database_journal, "DATABASE_JOURNAL", err,
	    sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		n++;
	}
	{
		/* reachable, and a schema this binary knows or can migrate */
		struct store_cfg sc;
		int version;

		store_cfg_from_conf(&sc, c, NULL);
		if (c->call_records && store_check(&sc, &version, err,
		    sizeof(err)) != 0) {
			fprintf(stderr, "%s: %s\n", c->database_url[0] ?
			    "DATABASE_URL" : "DATABASE_PATH", err);
			n++;
		}
		if (c->database_url[0] != '\0') {
			/* the contacts tables: read now, checked as a CSV */
			char cerr[8192], cwarn[2048] = "";
			int k = campaign_check_tables(&M.campaigns, &sc, cerr,
			    sizeof(cerr), cwarn, sizeof(cwarn));

			fprintf(stderr, "%s", cwarn);
			if (k > 0) {
				fprintf(stderr, "%scampaigns in %s have errors\n",
				    cerr, c->campaigns_dir);
				n += k;
			}
		}
		if (c->database_url[0] != '\0' && c->stream_secret_random)
			fprintf(stderr, "warning: DATABASE_URL is set but "
			    "STREAM_SECRET is not: hosts sharing the database "
			    "must share one STREAM_SECRET\n");
	}
	return n;
}

static int
write_pidfile(const char *path)
{
	char buf[32];
	int fd, n;

	if (path == NULL || path[0] == '\0')
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

/*
 * The process that was started waits until the daemon is listening with
 * its workers up (a byte on a pipe), so `voxrelay -f` and the init script
 * learn about a port in use or an unreadable ledger from the exit code,
 * not from a log read later.
 */
static int
daemonise(int *ready_fd)
{
	pid_t pid;
	int fd, p[2];

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	if ((pid = fork()) < 0)
		return -1;
	if (pid > 0) {
		char c = 0;
		ssize_t n;

		close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1 && c == '1')
			_exit(0);
		fprintf(stderr, "voxrelay: the daemon did not start; its reason is "
		    "in the log (LOG_FILE, or syslog)\n");
		_exit(EXIT_FATAL_CONFIG);
	}
	close(p[0]);
	*ready_fd = p[1];
	if (setsid() < 0)
		return -1;
	if ((pid = fork()) < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") != 0)
		return -1;
	umask(027);
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	int foreground = 0, test = 0, ch, rc, explicit = 0;
	char err[8192];

	while ((ch = getopt(argc, argv, "df:tvh")) != -1) {
		switch (ch) {
		case 'd':
			foreground = 1;
			break;
		case 'f':
			path = optarg;
			explicit = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'v':
			printf("voxrelay %s\n", VOXRELAY_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (path == NULL && access(DEFAULT_CONF, F_OK) == 0)
		path = DEFAULT_CONF;
	(void)explicit;

	{
		char warn[4096];
		int n = config_build(path, &M.conf, &M.personas, &M.lines,
		    &M.campaigns, err, sizeof(err), warn, sizeof(warn));
		if (warn[0] != '\0')
			fprintf(stderr, "%s", warn);
		if (n != 0) {
			fprintf(stderr, "%s", err);
			return test ? 1 : EXIT_FATAL_CONFIG;
		}
	}
	if (test) {
		int n = check_environment(&M.conf);
		if (M.conf.openai_api_key[0] == '\0')
			fprintf(stderr, "warning: OPENAI_API_KEY is empty: every "
			    "call will fail upstream\n");
		if (!M.conf.validate_signature)
			fprintf(stderr, "warning: VALIDATE_TWILIO_SIGNATURE=false: "
			    "webhooks are accepted without a valid "
			    "X-Twilio-Signature\n");
		if (n > 0) {
			fprintf(stderr, "voxrelay: configuration %s: %d problem%s\n",
			    path ? path : "(environment)", n, n == 1 ? "" : "s");
			return 1;
		}
		printf("voxrelay: configuration %s is ok (%zu personas, %zu "
		    "lines, %zu campaigns)\n", path ? path : "(environment)",
		    M.personas.n, M.lines.n, M.campaigns.n);
		return 0;
	}
	snprintf(M.conf_path, sizeof(M.conf_path), "%s", path ? path : "");
	M.foreground = foreground;

	M.ready_fd = -1;
	if (!foreground && daemonise(&M.ready_fd) != 0) {
		perror("voxrelay: daemonise");
		return 1;
	}
	if ((rc = log_init(M.conf.log_file, foreground, M.conf.log_level)) != 0) {
		fprintf(stderr, "voxrelay: LOG_FILE %s: %s\n", M.conf.log_file,
		    strerror(-rc));
		return EXIT_FATAL_CONFIG;
	}
	log_set_role("master", -1);
	if ((rc = write_pidfile(M.conf.pid_file)) != 0) {
		log_warnx("PID_FILE %s: %s", M.conf.pid_file, strerror(-rc));
		return EXIT_FATAL_CONFIG;
	}
	rc = master_run(&M);
	if (M.conf.pid_file && M.conf.pid_file[0])
		unlink(M.conf.pid_file);
	return rc;
}
