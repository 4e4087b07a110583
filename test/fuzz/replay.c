/*
 * replay.c — main() for a fuzz target built as a plain program
 * (-DFUZZ_REPLAY), so make check runs every corpus without clang.
 *
 * Runs each file of test/fuzz/corpus/<name>/ once through
 * LLVMFuzzerTestOneInput(), then each path given on the command line (a
 * directory: its files), in name order.  Each input sits in a buffer of
 * exactly its size.  A broken invariant aborts inside the target, as under
 * libFuzzer; when every input went through the last line is
 * "<name>: N inputs ok".  Run from the top of the tree (where make runs);
 * from elsewhere, give the paths.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test/fuzz/fuzz.h"

#define CORPUS_ROOT	"test/fuzz/corpus"
#define INPUT_MAX	(16 * 1024 * 1024)

static unsigned long ninputs;

static int
run_file(const char *path)
{
	struct stat st;
	uint8_t *data;
	size_t len = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (st.st_size > INPUT_MAX) {
		fprintf(stderr, "%s: larger than %d bytes\n", path, INPUT_MAX);
		close(fd);
		return -1;
	}
	if ((data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL) {
		fprintf(stderr, "%s: out of memory\n", path);
		close(fd);
		return -1;
	}
	while (len < (size_t)st.st_size) {
		r = read(fd, data + len, (size_t)st.st_size - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "%s: %s\n", path,
			    r == 0 ? "short read" : strerror(errno));
			free(data);
			close(fd);
			return -1;
		}
		len += (size_t)r;
	}
	close(fd);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	ninputs++;
	return 0;
}

static int
skip_name(const struct dirent *de)
{
	return de->d_name[0] != '.';
}

static int
run_path(const char *path)
{
	struct dirent **list;
	struct stat st;
	char *sub;
	int n, i, rc = 0;

	if (stat(path, &st) == -1) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	if ((n = scandir(path, &list, skip_name, alphasort)) == -1) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (rc == 0) {
			if (asprintf(&sub, "%s/%s", path, list[i]->d_name) == -1) {
				fprintf(stderr, "%s: out of memory\n", path);
				rc = -1;
			} else {
				if (stat(sub, &st) == 0 && S_ISREG(st.st_mode) &&
				    run_file(sub) != 0)
					rc = -1;
				free(sub);
			}
		}
		free(list[i]);
	}
	free(list);
	return rc;
}

int
main(int argc, char **argv)
{
	struct stat st;
	char dir[256];
	int i;

	snprintf(dir, sizeof(dir), "%s/%s", CORPUS_ROOT, fuzz_target_name);
	if ((argc == 1 || stat(dir, &st) == 0) && run_path(dir) != 0)
		return 1;
	for (i = 1; i < argc; i++)
		if (run_path(argv[i]) != 0)
			return 1;
	if (ninputs == 0) {
		fprintf(stderr, "%s: no inputs in %s\n", fuzz_target_name, dir);
		return 1;
	}
	printf("%s: %lu inputs ok\n", fuzz_target_name, ninputs);
	return 0;
}
