/*
 * fuzz_conf.c — daemon/common/conf.c: the configuration file.
 *
 * Input: a whole configuration file, loaded with conf_load() from a path
 * (see fuzz_file() in fuzz.h), with an error buffer whose size depends on
 * the input's length.  Checked:
 *  - the error text is NUL-terminated within its buffer and has no more
 *    lines than the count of problems returned; no problems, no text;
 *  - a configuration that loads holds what conf_check() promises: a
 *    worker count, 0/1 switches, a host, port and target for OPENAI_URL,
 *    a PUBLIC_URL without a trailing slash, a stream secret, a route of
 *    1-32 letters, digits, '-' and '_';
 *  - conf_dump() prints it, conf_free() frees it all (LeakSanitizer).
 */
#include "test/fuzz/fuzz.h"

#include <fcntl.h>

#include "daemon/common/conf.h"

FUZZ_TARGET("conf");

static void
check_conf(const struct conf *c, const char *path)
{
	size_t n;

	FUZZ_ASSERT(strcmp(c->path, path) == 0);
	FUZZ_ASSERT(c->port >= 1 && c->port <= 65535);
	FUZZ_ASSERT(c->workers >= 1 && c->workers <= 64);
	FUZZ_ASSERT(c->validate_signature == 0 || c->validate_signature == 1);
	FUZZ_ASSERT(c->sms_enabled == 0 || c->sms_enabled == 1);
	FUZZ_ASSERT(!c->validate_signature || c->twilio_auth_token[0] != '\0');
	FUZZ_ASSERT(c->stream_secret != NULL && c->stream_secret[0] != '\0');
	FUZZ_ASSERT(c->openai_host != NULL && c->openai_host[0] != '\0');
	FUZZ_ASSERT(c->openai_target != NULL && c->openai_target[0] == '/');
	FUZZ_ASSERT(c->openai_port >= 1 && c->openai_port <= 65535);
	FUZZ_ASSERT(c->openai_dialect == 0 || c->openai_dialect == 1);
	n = strlen(c->public_url);
	FUZZ_ASSERT(n == 0 || c->public_url[n - 1] != '/');
	n = strlen(c->default_route);
	FUZZ_ASSERT(n >= 1 && n <= 32);
	FUZZ_ASSERT(strspn(c->default_route, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == n);
	FUZZ_ASSERT(c->usage_csv_path[0] != '\0');
	FUZZ_ASSERT(strcmp(c->usage_csv_path, c->usage_csv_backup_path) != 0);
	FUZZ_ASSERT(c->free_call_minutes >= 0 && c->free_call_minutes <= 1e6);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t errlens[] = { 4096, 0, 1, 48, 200 };
	static int devnull = -1;
	const char *path = fuzz_file("voxrelay.conf", data, size);
	size_t errlen = errlens[size % 5], lines = 0;
	char *err = errlen > 0 ? malloc(errlen) : NULL;
	struct conf c;
	int rc;

	if (errlen > 0 && err == NULL)
		abort();
	if (devnull == -1 &&
	    (devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		abort();
	memset(&c, 0, sizeof(c));
	rc = conf_load(path, &c, err, errlen);
	FUZZ_ASSERT(rc >= 0);
	if (err != NULL) {
		FUZZ_ASSERT(memchr(err, '\0', errlen) != NULL);
		for (const char *s = err; *s; s++)
			lines += *s == '\n';
		FUZZ_ASSERT(lines <= (size_t)rc);
		FUZZ_ASSERT(rc > 0 || err[0] == '\0');
	}
	if (rc == 0) {
		check_conf(&c, path);
		conf_dump(&c, devnull);
		conf_free(&c);
	}
	free(err);
	return 0;
}
