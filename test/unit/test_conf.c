/*
 * test_conf.c — the configuration file, the environment on top of it,
 * the checks across keys, and conf_dump keeping secrets out.
 *
 * Every test starts from an empty environment (each test runs in its own
 * process, so this touches nothing else) and unsets what it sets.
 */
#include "test/unit/test.h"
#include "daemon/common/conf.h"

#include <ctype.h>
#include <fcntl.h>
#include <unistd.h>

#define UNIT_AUTH_TOKEN	"unit-test-auth-token"

static void
clean_env(void)
{
	(void)test_tmpdir();	/* before TMPDIR goes */
	ASSERT_EQ(clearenv(), 0);
	/* without it (and no waiver) every load fails: the tests that are
	 * about it unset it */
	ASSERT_EQ(setenv("TWILIO_AUTH_TOKEN", UNIT_AUTH_TOKEN, 1), 0);
}

/* Write text to a file in the test's scratch directory; returns its
 * malloc'd path. */
static char *
write_conf(const char *name, const char *text)
{
	char *path;
	FILE *f;

	ASSERT(asprintf(&path, "%s/%s", test_tmpdir(), name) > 0);
	f = fopen(path, "w");
	ASSERT_NOT_NULL(f);
	ASSERT_EQ(fputs(text, f) >= 0, 1);
	ASSERT_EQ(fclose(f), 0);
	return path;
}

static int
is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
			return 0;
	return 1;
}

static unsigned
count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Load a file that must have exactly nerr problems; each expected line
 * prefix must start one line of the report. */
static void
expect_errors(const char *path, int nerr, const char *const *prefixes)
{
	struct conf c;
	char err[4096];
	int rc;

	memset(&c, 0, sizeof(c));
	c.port = 4242;
	rc = conf_load(path, &c, err, sizeof(err));
	if (rc != nerr)
		fprintf(stderr, "  report:\n%s", err);
	ASSERT_EQ(rc, nerr);
	ASSERT_EQ(count_lines(err), nerr);
	/* a failed load leaves *out alone */
	ASSERT_EQ(c.port, 4242);
	ASSERT_NULL(c.bind);
	for (const char *const *p = prefixes; *p != NULL; p++) {
		int found = 0;

		for (const char *l = err; *l; ) {
			const char *e = strchr(l, '\n');
			if (strncmp(l, *p, strlen(*p)) == 0)
				found = 1;
			l = e ? e + 1 : l + strlen(l);
		}
		if (!found)
			fprintf(stderr, "  no line starts with \"%s\" in:\n%s",
			    *p, err);
		ASSERT(found);
	}
}

TEST(conf_defaults)
{
	struct conf c;
	char err[1024];

	clean_env();
	ASSERT_EQ(conf_load(NULL, &c, err, sizeof(err)), 0);
	ASSERT_STR_EQ(err, "");
	ASSERT_EQ(c.port, 5050);
	ASSERT_STR_EQ(c.bind, "0.0.0.0");
	ASSERT(c.free_call_minutes == 3.0);
	ASSERT(c.min_call_duration == 0.5);
	ASSERT_GE(c.workers, 1);
	ASSERT_LE(c.workers, 64);
	ASSERT_STR_EQ(c.public_url, "");
	ASSERT_STR_EQ(c.twilio_auth_token, UNIT_AUTH_TOKEN);
	ASSERT_EQ(c.validate_signature, 1);
	ASSERT_EQ(c.stream_token_ttl, 120);
	ASSERT_STR_EQ(c.usage_csv_path, "/var/lib/voxrelay/user_usage.csv");
	ASSERT_STR_EQ(c.usage_csv_backup_path,
	    "/var/lib/voxrelay/user_usage_backup.csv");
	ASSERT_EQ(c.max_ws_connections, 1000);
	ASSERT_EQ(c.max_header_size, 8192);
	ASSERT_EQ(c.ws_max_message, 65536);
	ASSERT_STR_EQ(c.default_route, "default");
	ASSERT_STR_EQ(c.after_stream_message, "Thank you for calling. Goodbye.");
	ASSERT_EQ(c.log_level, 0);
	ASSERT_STR_EQ(c.path, "");
	ASSERT_EQ(c.stream_secret_random, 1);
	ASSERT(is_hex(c.stream_secret, 64));
	conf_free(&c);
	ASSERT_NULL(c.bind);
	ASSERT_NULL(c.path);
}

TEST(conf_file_syntax)
{
	static const char text[] =
	    "# voxrelay test configuration\n"
	    "\n"
	    "   # an indented comment\n"
	    "PORT=6001\n"
	    "export BIND=127.0.0.1\n"
	    "export    WORKERS=3\n"
	    "  FREE_CALL_MINUTES = 2.5  \n"
	    "SAY_VOICE=\"Polly.Joanna \\\"Neural\\\"\"\n"
	    "BUSY_MESSAGE=\"line one\\nline two\\tand a tab \\\\ # not a comment\"\n"
	    "OUT_OF_MINUTES_MESSAGE='single \\n literal \"quotes\" # kept'\n"
	    "DEFAULT_ROUTE=cold-call_3 # the usual one\n"
	    "AFTER_STREAM_MESSAGE=wss://h/p?model=a=b&x=#frag\n"
	    "PUBLIC_URL=https://voice.example.com/base/\n"
	    "OPENAI_SOMETHING_ELSE=whatever\n"
	    "CONVOREPS_URL=\"https://example.com/?a=1\"\n"
	    "NOT_OURS='unterminated is fine when\n"
	    "LOG_LEVEL=DEBUG\r\n"
	    "TWILIO_ACCOUNT_SID=\"AC123\"   # quoted, then a comment\n"
	    "TWILIO_PHONE_NUMBER=\n"
	    "USAGE_CSV_PATH=/tmp/u.csv\n"
	    "USAGE_CSV_BACKUP_PATH=/tmp/u.bak#1\n"
	    "STREAM_TOKEN_TTL=\t300\t\n"
	    "PORT=6002\n";
	struct conf c;
	char err[1024], *path;
	int rc;

	clean_env();
	path = write_conf("syntax.conf", text);
	rc = conf_load(path, &c, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "%s", err);
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(c.port, 6002);		/* the last one wins */
	ASSERT_STR_EQ(c.bind, "127.0.0.1");
	ASSERT_EQ(c.workers, 3);
	ASSERT(c.free_call_minutes == 2.5);
	ASSERT_STR_EQ(c.say_voice, "Polly.Joanna \"Neural\"");
	ASSERT_STR_EQ(c.busy_message,
	    "line one\nline two\tand a tab \\ # not a comment");
	ASSERT_STR_EQ(c.out_of_minutes_message,
	    "single \\n literal \"quotes\" # kept");
	ASSERT_STR_EQ(c.default_route, "cold-call_3");
	ASSERT_STR_EQ(c.after_stream_message, "wss://h/p?model=a=b&x=#frag");
	ASSERT_STR_EQ(c.public_url, "https://voice.example.com/base");
	ASSERT_EQ(c.log_level, 1);
	ASSERT_STR_EQ(c.twilio_account_sid, "AC123");
	ASSERT_STR_EQ(c.twilio_phone_number, "");
	ASSERT_STR_EQ(c.usage_csv_path, "/tmp/u.csv");
	ASSERT_STR_EQ(c.usage_csv_backup_path, "/tmp/u.bak#1");
	ASSERT_EQ(c.stream_token_ttl, 300);
	ASSERT_STR_EQ(c.path, path);
	conf_free(&c);
	free(path);
}

TEST(conf_values_and_bounds)
{
	static const struct {
		const char	*line;
		int		 ok;
	} cases[] = {
		{ "PORT=1", 1 },
		{ "PORT=65535", 1 },
		{ "PORT=0", 0 },
		{ "PORT=65536", 0 },
		{ "PORT=-1", 0 },
		{ "PORT=", 0 },
		{ "PORT=80x", 0 },
		{ "PORT=8 0", 0 },
		{ "PORT=99999999999999999999", 0 },
		{ "FREE_CALL_MINUTES=0", 1 },
		{ "FREE_CALL_MINUTES=1e3", 1 },
		{ "FREE_CALL_MINUTES=-0.5", 0 },
		{ "FREE_CALL_MINUTES=abc", 0 },
		{ "FREE_CALL_MINUTES=nan", 0 },
		{ "FREE_CALL_MINUTES=inf", 0 },
		{ "VALIDATE_TWILIO_SIGNATURE=no", 1 },
		{ "VALIDATE_TWILIO_SIGNATURE=OFF", 1 },
		{ "VALIDATE_TWILIO_SIGNATURE=false", 1 },
		{ "VALIDATE_TWILIO_SIGNATURE=auto", 1 },
		{ "VALIDATE_TWILIO_SIGNATURE=", 1 },
		{ "VALIDATE_TWILIO_SIGNATURE=maybe", 0 },
		{ "VALIDATE_TWILIO_SIGNATURE=2", 0 },
		{ "LOG_LEVEL=info", 1 },
		{ "LOG_LEVEL=warning", 1 },
		{ "LOG_LEVEL=verbose", 0 },
		{ "DEFAULT_ROUTE=a/b", 0 },
		{ "DEFAULT_ROUTE=", 0 },
		{ "DEFAULT_ROUTE=abcdefghijklmnopqrstuvwxyz0123456", 0 },
		{ "DEFAULT_ROUTE=abcdefghijklmnopqrstuvwxyz012345", 1 },
		{ "MIN_CALL_DURATION=3.5", 0 },
		{ "USAGE_CSV_PATH=", 0 },
		{ "USAGE_CSV_BACKUP_PATH=/var/lib/voxrelay/user_usage.csv", 0 },
		{ "MAX_HEADERS=7", 0 },
		{ "WS_MAX_MESSAGE=16777216", 1 },
		{ "WS_MAX_MESSAGE=16777217", 0 },
	};
	struct conf c;
	char err[1024], *path, *text;

	clean_env();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		ASSERT(asprintf(&text, "%s\n", cases[i].line) > 0);
		path = write_conf("value.conf", text);
		rc = conf_load(path, &c, err, sizeof(err));
		if ((rc == 0) != cases[i].ok)
			fprintf(stderr, "  %s: rc %d: %s\n", cases[i].line, rc, err);
		ASSERT_EQ(rc == 0, cases[i].ok);
		if (rc == 0)
			conf_free(&c);
		else
			ASSERT_EQ(rc, 1);
		free(path);
		free(text);
	}
}

TEST(conf_errors_name_file_line_key)
{
	static const char text[] =
	    "# line 1\n"
	    "PORT=eighty\n"				/* 2 */
	    "MAX_WEBSOCKET_CONNECTIONS=0\n"		/* 3 */
	    "\n"
	    "VALIDATE_TWILIO_SIGNATURE=perhaps\n"	/* 5 */
	    "SAY_VOICE=\"Polly\n"			/* 6 */
	    "this line has no equals sign\n"		/* 7 */
	    "BIND=ok\n"
	    "BUSY_MESSAGE='x' trailing\n"		/* 9 */
	    "FREE_CALL_MINUTES=1.5.2\n";		/* 10 */
	const char *prefixes[9];
	char *path, *p[8];

	clean_env();
	path = write_conf("errors.conf", text);
	ASSERT(asprintf(&p[0], "%s:2: PORT: ", path) > 0);
	ASSERT(asprintf(&p[1], "%s:3: MAX_WEBSOCKET_CONNECTIONS: ", path) > 0);
	ASSERT(asprintf(&p[2], "%s:5: VALIDATE_TWILIO_SIGNATURE: ", path) > 0);
	ASSERT(asprintf(&p[3], "%s:6: SAY_VOICE: ", path) > 0);
	ASSERT(asprintf(&p[4], "%s:7: ", path) > 0);
	ASSERT(asprintf(&p[5], "%s:9: BUSY_MESSAGE: ", path) > 0);
	ASSERT(asprintf(&p[6], "%s:10: FREE_CALL_MINUTES: ", path) > 0);
	ASSERT(asprintf(&p[7], "%s:2: PORT: not an integer: \"eighty\"", path) > 0);
	for (int i = 0; i < 8; i++)
		prefixes[i] = p[i];
	prefixes[8] = NULL;
	expect_errors(path, 7, prefixes);
	for (int i = 0; i < 8; i++)
		free(p[i]);
	free(path);

	/* the range is reported with the value and the bounds */
	path = write_conf("range.conf", "\n\nPORT=70000\n");
	ASSERT(asprintf(&p[0], "%s:3: PORT: 70000 is out of range 1..65535",
	    path) > 0);
	prefixes[0] = p[0];
	prefixes[1] = NULL;
	expect_errors(path, 1, prefixes);
	free(p[0]);
	free(path);
}

TEST(conf_missing_file)
{
	struct conf c;
	char err[1024];
	char *path;

	clean_env();
	ASSERT(asprintf(&path, "%s/nope.conf", test_tmpdir()) > 0);
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 1);
	ASSERT(strncmp(err, path, strlen(path)) == 0);
	ASSERT_NOT_NULL(strstr(err, "cannot open"));
	free(path);
}

TEST(conf_error_buffer_small)
{
	struct conf c;
	char err[40], *path;

	clean_env();
	path = write_conf("many.conf",
	    "PORT=a\nPORT=b\nPORT=c\nWORKERS=x\nWORKERS=999\n");
	memset(err, 'Z', sizeof(err));
	/* every problem is counted even when the report is cut short */
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 5);
	ASSERT_NOT_NULL(memchr(err, '\0', sizeof(err)));
	ASSERT_EQ(conf_load(path, &c, NULL, 0), 5);
	ASSERT_EQ(conf_load(path, &c, err, 1), 5);
	ASSERT_EQ(err[0], '\0');
	free(path);
}

TEST(conf_environment_overrides)
{
	struct conf c;
	char err[1024], *path;

	clean_env();
	path = write_conf("env.conf",
	    "PORT=7000\n"
	    "BIND=10.0.0.1\n"
	    "SAY_VOICE=from-file\n"
	    "FREE_CALL_MINUTES=4\n");
	ASSERT_EQ(setenv("PORT", "6000", 1), 0);
	ASSERT_EQ(setenv("SAY_VOICE", "Polly.Amy # not a comment", 1), 0);
	ASSERT_EQ(setenv("AFTER_STREAM_MESSAGE", "wss://h/p?model=a=b", 1), 0);
	ASSERT_EQ(setenv("NOT_A_KEY", "1", 1), 0);
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 0);
	ASSERT_EQ(c.port, 6000);
	ASSERT_STR_EQ(c.bind, "10.0.0.1");		/* not in the environment */
	/* the shell already unquoted it: taken literally */
	ASSERT_STR_EQ(c.say_voice, "Polly.Amy # not a comment");
	ASSERT_STR_EQ(c.after_stream_message, "wss://h/p?model=a=b");
	ASSERT(c.free_call_minutes == 4.0);
	conf_free(&c);

	/* without a file, too */
	ASSERT_EQ(conf_load(NULL, &c, err, sizeof(err)), 0);
	ASSERT_EQ(c.port, 6000);
	conf_free(&c);

	/* a bad value in the environment is reported as such */
	ASSERT_EQ(setenv("PORT", "sixty", 1), 0);
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 1);
	ASSERT(strncmp(err, "environment", 11) == 0);
	ASSERT_NOT_NULL(strstr(err, "PORT"));
	ASSERT_NOT_NULL(strstr(err, "\"sixty\""));
	ASSERT_EQ(setenv("PORT", "\"6000", 1), 0);
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 1);
	ASSERT(strncmp(err, "environment", 11) == 0);
	/* an empty variable is a value, not an absence */
	ASSERT_EQ(setenv("PORT", "", 1), 0);
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 1);

	/* the environment also overrides a bad line's key: the file's error
	 * is still reported */
	unsetenv("PORT");
	unsetenv("SAY_VOICE");
	unsetenv("AFTER_STREAM_MESSAGE");
	unsetenv("NOT_A_KEY");
	free(path);
	path = write_conf("env2.conf", "PORT=bad\n");
	ASSERT_EQ(setenv("PORT", "6001", 1), 0);
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 1);
	unsetenv("PORT");
	free(path);
}

TEST(conf_validate_signature)
{
	struct conf c;
	char err[1024], *path, *want;

	clean_env();
	unsetenv("TWILIO_AUTH_TOKEN");
	/* auto follows the token */
	path = write_conf("sig1.conf", "TWILIO_AUTH_TOKEN=0123456789abcdef\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 0);
	ASSERT_EQ(c.validate_signature, 1);
	conf_free(&c);
	free(path);

	/* auto without a token: refused, naming the file and the key */
	path = write_conf("sig2.conf", "VALIDATE_TWILIO_SIGNATURE=auto\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 1);
	ASSERT(asprintf(&want, "%s: TWILIO_AUTH_TOKEN: not set", path) > 0);
	ASSERT(strncmp(err, want, strlen(want)) == 0);
	ASSERT_NOT_NULL(strstr(err, "VALIDATE_TWILIO_SIGNATURE=false"));
	free(want);
	/* the default is auto */
	ASSERT_EQ(conf_load(NULL, &c, err, sizeof(err)), 1);
	ASSERT(strncmp(err, "environment: TWILIO_AUTH_TOKEN: not set", 39) == 0);

	/* the token from the environment counts */
	ASSERT_EQ(setenv("TWILIO_AUTH_TOKEN", "tok", 1), 0);
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 0);
	ASSERT_EQ(c.validate_signature, 1);
	conf_free(&c);
	unsetenv("TWILIO_AUTH_TOKEN");
	free(path);

	/* forced on without a token: refused */
	path = write_conf("sig3.conf", "VALIDATE_TWILIO_SIGNATURE=true\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 1);
	ASSERT(strncmp(err, "VALIDATE_TWILIO_SIGNATURE: ", 27) == 0);
	ASSERT_NOT_NULL(strstr(err, "TWILIO_AUTH_TOKEN"));
	free(path);

	/* waived explicitly: no token needed */
	path = write_conf("sig5.conf", "VALIDATE_TWILIO_SIGNATURE=false\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 0);
	ASSERT_EQ(c.validate_signature, 0);
	conf_free(&c);
	free(path);

	/* forced on with a token, forced off with one */
	path = write_conf("sig4.conf",
	    "VALIDATE_TWILIO_SIGNATURE=yes\nTWILIO_AUTH_TOKEN=t\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 0);
	ASSERT_EQ(c.validate_signature, 1);
	conf_free(&c);
	ASSERT_EQ(setenv("VALIDATE_TWILIO_SIGNATURE", "0", 1), 0);
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 0);
	ASSERT_EQ(c.validate_signature, 0);
	conf_free(&c);
	unsetenv("VALIDATE_TWILIO_SIGNATURE");
	free(path);
}

TEST(conf_stream_secret)
{
	struct conf c, d;
	char err[1024], *path;

	clean_env();
	ASSERT_EQ(conf_load(NULL, &c, err, sizeof(err)), 0);
	ASSERT_EQ(conf_load(NULL, &d, err, sizeof(err)), 0);
	ASSERT_EQ(c.stream_secret_random, 1);
	ASSERT(is_hex(c.stream_secret, 64));
	ASSERT(is_hex(d.stream_secret, 64));
	ASSERT(strcmp(c.stream_secret, d.stream_secret) != 0);
	conf_free(&c);
	conf_free(&d);

	path = write_conf("secret1.conf", "STREAM_SECRET=short\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 1);
	ASSERT(strncmp(err, "STREAM_SECRET: ", 15) == 0);
	ASSERT_NULL(strstr(err, "short"));	/* the secret is not echoed */
	free(path);

	path = write_conf("secret2.conf", "STREAM_SECRET=0123456789abcdef\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 0);
	ASSERT_STR_EQ(c.stream_secret, "0123456789abcdef");
	ASSERT_EQ(c.stream_secret_random, 0);
	conf_free(&c);
	free(path);

	ASSERT_EQ(setenv("STREAM_SECRET", "fifteen-chars!!", 1), 0);
	ASSERT_EQ(conf_load(NULL, &c, err, sizeof(err)), 1);
	unsetenv("STREAM_SECRET");
}

TEST(conf_public_url)
{
	static const struct {
		const char	*value, *want;	/* want NULL: refused */
	} cases[] = {
		{ "https://voice.example.com/", "https://voice.example.com" },
		{ "https://voice.example.com", "https://voice.example.com" },
		{ "https://voice.example.com/relay//", "https://voice.example.com/relay" },
		{ "http://127.0.0.1:5050/", "http://127.0.0.1:5050" },
		{ "http://localhost:5050", "http://localhost:5050" },
		{ "http://voice.example.com", NULL },
		{ "http://127.0.0.1.example.com", NULL },
		{ "", "" },
		{ "ftp://voice.example.com", NULL },
		{ "voice.example.com", NULL },
		{ "wss://voice.example.com", NULL },
		{ "https://voice.example.com/?a=1", NULL },
		{ "https://voice.example.com/x#frag", NULL },
		{ "https://", NULL },
		{ "https:///path", NULL },
	};
	struct conf c;
	char err[1024];

	clean_env();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		ASSERT_EQ(setenv("PUBLIC_URL", cases[i].value, 1), 0);
		rc = conf_load(NULL, &c, err, sizeof(err));
		if ((rc == 0) != (cases[i].want != NULL))
			fprintf(stderr, "  PUBLIC_URL=%s: rc %d %s\n",
			    cases[i].value, rc, err);
		if (cases[i].want == NULL) {
			ASSERT_EQ(rc, 1);
			ASSERT(strncmp(err, "PUBLIC_URL: ", 12) == 0);
			continue;
		}
		ASSERT_EQ(rc, 0);
		ASSERT_STR_EQ(c.public_url, cases[i].want);
		conf_free(&c);
	}
	unsetenv("PUBLIC_URL");
}

/* conf_dump into a file; returns its contents (malloc'd). */
static char *
dump(const struct conf *c)
{
	char *path, *s;
	int fd;
	off_t n;

	ASSERT(asprintf(&path, "%s/dump.txt", test_tmpdir()) > 0);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_GE(fd, 0);
	conf_dump(c, fd);
	n = lseek(fd, 0, SEEK_END);
	ASSERT_GT(n, 0);
	s = malloc((size_t)n + 1);
	ASSERT_NOT_NULL(s);
	ASSERT_EQ(pread(fd, s, (size_t)n, 0), n);
	s[n] = '\0';
	close(fd);
	unlink(path);
	free(path);
	return s;
}

TEST(conf_dump_hides_secrets)
{
	struct conf c;
	char err[1024], *path, *s;

	clean_env();
	path = write_conf("dump.conf",
	    "TWILIO_AUTH_TOKEN=hunter2-auth-token-value\n"
	    "STREAM_SECRET=stream-secret-value-0123\n"
	    "TWILIO_ACCOUNT_SID=AC0123\n"
	    "PORT=5151\n"
	    "FREE_CALL_MINUTES=2.5\n"
	    "LOG_LEVEL=debug\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 0);
	s = dump(&c);
	ASSERT_NULL(strstr(s, "hunter2"));
	ASSERT_NULL(strstr(s, "stream-secret-value"));
	ASSERT_NOT_NULL(strstr(s, "\nTWILIO_AUTH_TOKEN=(set)\n"));
	ASSERT_NOT_NULL(strstr(s, "\nSTREAM_SECRET=(set)\n"));
	ASSERT_NOT_NULL(strstr(s, "\nTWILIO_ACCOUNT_SID=AC0123\n"));
	ASSERT(strncmp(s, "PORT=5151\n", 10) == 0);
	ASSERT_NOT_NULL(strstr(s, "\nFREE_CALL_MINUTES=2.5\n"));
	ASSERT_NOT_NULL(strstr(s, "\nLOG_LEVEL=debug\n"));
	ASSERT_NOT_NULL(strstr(s, "\nVALIDATE_TWILIO_SIGNATURE=1\n"));
	ASSERT_EQ(s[strlen(s) - 1], '\n');
	free(s);
	conf_free(&c);
	free(path);

	/* unset secrets say so; a random stream secret is still a secret */
	unsetenv("TWILIO_AUTH_TOKEN");
	ASSERT_EQ(setenv("VALIDATE_TWILIO_SIGNATURE", "false", 1), 0);
	ASSERT_EQ(conf_load(NULL, &c, err, sizeof(err)), 0);
	s = dump(&c);
	ASSERT_NOT_NULL(strstr(s, "\nTWILIO_AUTH_TOKEN=(unset)\n"));
	ASSERT_NOT_NULL(strstr(s, "\nSTREAM_SECRET=(set)\n"));
	ASSERT_NULL(strstr(s, c.stream_secret));
	free(s);
	conf_free(&c);
}

static void
v4(uint8_t a[16], int b0, int b1, int b2, int b3)
{
	memset(a, 0, 16);
	a[10] = a[11] = 0xff;
	a[12] = (uint8_t)b0;
	a[13] = (uint8_t)b1;
	a[14] = (uint8_t)b2;
	a[15] = (uint8_t)b3;
}

TEST(conf_trusted_proxies)
{
	struct conf c;
	char err[1024], *path;
	uint8_t a[16];

	clean_env();
	path = write_conf("proxies.conf",
	    "TRUSTED_PROXIES=127.0.0.1, 10.1.0.0/16 ::1,fd00::/8 192.168.7.9/31\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 0);
	ASSERT_EQ(c.ntrusted, 5);
	v4(a, 127, 0, 0, 1);
	ASSERT_EQ(conf_addr_trusted(&c, a), 1);
	v4(a, 127, 0, 0, 2);
	ASSERT_EQ(conf_addr_trusted(&c, a), 0);
	v4(a, 10, 1, 255, 3);
	ASSERT_EQ(conf_addr_trusted(&c, a), 1);
	v4(a, 10, 2, 0, 1);
	ASSERT_EQ(conf_addr_trusted(&c, a), 0);
	v4(a, 192, 168, 7, 8);
	ASSERT_EQ(conf_addr_trusted(&c, a), 1);
	v4(a, 192, 168, 7, 10);
	ASSERT_EQ(conf_addr_trusted(&c, a), 0);
	memset(a, 0, 16);
	a[15] = 1;	/* ::1 */
	ASSERT_EQ(conf_addr_trusted(&c, a), 1);
	a[0] = 0xfd;	/* in fd00::/8 */
	ASSERT_EQ(conf_addr_trusted(&c, a), 1);
	a[0] = 0xfe;
	ASSERT_EQ(conf_addr_trusted(&c, a), 0);
	conf_free(&c);
	free(path);

	/* the default trusts nobody; a bad item is named */
	ASSERT_EQ(conf_load(NULL, &c, err, sizeof(err)), 0);
	ASSERT_EQ(c.ntrusted, 0);
	v4(a, 127, 0, 0, 1);
	ASSERT_EQ(conf_addr_trusted(&c, a), 0);
	conf_free(&c);
	path = write_conf("bad.conf",
	    "TRUSTED_PROXIES=10.0.0.0/33, nginx, ::1/129, 1.2.3.4/x\n");
	ASSERT_EQ(conf_load(path, &c, err, sizeof(err)), 4);
	ASSERT_NOT_NULL(strstr(err, "TRUSTED_PROXIES: \"10.0.0.0/33\" is not"));
	ASSERT_NOT_NULL(strstr(err, "\"nginx\""));
	free(path);
}

/* A secret sent to a URL goes over TLS unless the peer is on this host. */
TEST(conf_plain_urls_only_on_loopback)
{
	static const struct {
		const char	*key, *value;
		int		 ok;
	} cases[] = {
		{ "OPENAI_URL", "wss://api.openai.com/v1/realtime", 1 },
		{ "OPENAI_URL", "ws://127.0.0.1:9000/v1/realtime", 1 },
		{ "OPENAI_URL", "ws://[::1]:9000/v1/realtime", 1 },
		{ "OPENAI_URL", "ws://localhost:9000/", 1 },
		{ "OPENAI_URL", "ws://api.openai.com/v1/realtime", 0 },
		{ "OPENAI_URL", "ws://10.1.2.3:9000/", 0 },
		{ "TWILIO_API_BASE", "https://api.twilio.com", 1 },
		{ "TWILIO_API_BASE", "http://127.0.0.1:8080", 1 },
		{ "TWILIO_API_BASE", "http://api.twilio.com", 0 },
		{ "TWILIO_API_BASE", "http://user@127.0.0.1.evil", 0 },
		{ "PUBLIC_URL", "http://voice.example.com", 0 },
	};
	struct conf c;
	char err[1024], why[256];

	clean_env();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		ASSERT_EQ(setenv(cases[i].key, cases[i].value, 1), 0);
		rc = conf_load(NULL, &c, err, sizeof(err));
		unsetenv(cases[i].key);
		if ((rc == 0) != cases[i].ok)
			TEST_FAIL_("%s=%s: rc %d %s", cases[i].key,
			    cases[i].value, rc, err);
		if (rc == 0) {
			conf_free(&c);
			continue;
		}
		ASSERT(strncmp(err, cases[i].key, strlen(cases[i].key)) == 0);
		ASSERT(strstr(err, "in clear") != NULL);
	}
	ASSERT_EQ(conf_url_check("ftp://x", "https://", "http://", why,
	    sizeof(why)), -1);
	ASSERT(strstr(why, "must start with https://") != NULL);
	ASSERT_EQ(conf_url_check("https://x", "https://", "http://", why,
	    sizeof(why)), 0);
}
