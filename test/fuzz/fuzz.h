/*
 * fuzz.h — what every fuzz target in test/fuzz/ shares.
 *
 * A target defines LLVMFuzzerTestOneInput() and names itself with
 * FUZZ_TARGET("http").  Built with clang -fsanitize=fuzzer it is a
 * libFuzzer program; built with -DFUZZ_REPLAY and linked with replay.c it
 * is a plain program that replays test/fuzz/corpus/<name>/ (make check).
 *
 * A broken invariant is reported with FUZZ_ASSERT(), which prints the
 * condition and calls abort(), so libFuzzer keeps the input as a crash.
 * The input is split into parts with struct fuzz_in, and chunk sizes come
 * from struct fuzz_rng, seeded from the input: a run is a pure function of
 * its input, so every crash replays.
 */
#ifndef VR_FUZZ_H
#define VR_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The target's name, for replay.c: corpus directory and report line. */
extern const char fuzz_target_name[];
#define FUZZ_TARGET(name) const char fuzz_target_name[] = name

#define FUZZ_ASSERT(c) do {						\
	if (!(c))							\
		fuzz_fail(__FILE__, __LINE__, #c);			\
} while (0)

static inline void __attribute__((noreturn))
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

/* splitmix64: chunk sizes and choices, from a seed taken off the input. */
struct fuzz_rng {
	uint64_t	s;
};

static inline uint64_t
fuzz_rng_next(struct fuzz_rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* A length for the next chunk of what is left: mostly small, sometimes
 * everything, never 0 when something is left. */
static inline size_t
fuzz_rng_chunk(struct fuzz_rng *r, size_t left)
{
	uint64_t x = fuzz_rng_next(r);
	size_t n;

	if (left == 0)
		return 0;
	switch (x & 3) {
	case 0:
		n = 1;
		break;
	case 1:
		n = (size_t)(x >> 8) % 16 + 1;
		break;
	case 2:
		n = (size_t)(x >> 8) % 256 + 1;
		break;
	default:
		n = left;
		break;
	}
	return n < left ? n : left;
}

/* The input, consumed from the front. */
struct fuzz_in {
	const uint8_t	*p;
	size_t		 n;
};

static inline unsigned
fuzz_u8(struct fuzz_in *in)
{
	unsigned v;

	if (in->n == 0)
		return 0;
	v = in->p[0];
	in->p++;
	in->n--;
	return v;
}

static inline uint64_t
fuzz_u64(struct fuzz_in *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | fuzz_u8(in);
	return v;
}

/*
 * The next part: the bytes up to a NUL byte (taken and dropped) or the
 * end, copied into a fresh NUL-terminated allocation of exactly that size,
 * so reading past it is caught.  *len gets its length.  Free with free().
 */
static inline char *
fuzz_part(struct fuzz_in *in, size_t *len)
{
	const uint8_t *z = in->n > 0 ? memchr(in->p, '\0', in->n) : NULL;
	size_t n = z != NULL ? (size_t)(z - in->p) : in->n;
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	if (n > 0)
		memcpy(s, in->p, n);
	s[n] = '\0';
	in->p += n;
	in->n -= n;
	if (z != NULL) {
		in->p++;
		in->n--;
	}
	if (len != NULL)
		*len = n;
	return s;
}

/* A copy of data[0..n) in an allocation of exactly n bytes (one if n is
 * 0), so a read past the end is caught. */
static inline uint8_t *
fuzz_dup(const uint8_t *data, size_t n)
{
	uint8_t *p = malloc(n > 0 ? n : 1);

	if (p == NULL)
		abort();
	if (n > 0)
		memcpy(p, data, n);
	else
		p[0] = 0;
	return p;
}

/*
 * For the loaders that take a path: the input as a file whose name ends in
 * name ("fuzz.json").  The bytes live in a memfd, rewritten for each
 * input; the name is a symbolic link to /proc/self/fd/N in a directory
 * made under /tmp on first use and removed at exit.
 */
static inline char *
fuzz_file_name(int dir)
{
	static char d[64], p[128];

	return dir ? d : p;
}

static inline void
fuzz_file_cleanup(void)
{
	unlink(fuzz_file_name(0));
	rmdir(fuzz_file_name(1));
}

static inline const char *
fuzz_file(const char *name, const uint8_t *data, size_t size)
{
	static int fd = -1;
	char target[64], *dir = fuzz_file_name(1), *path = fuzz_file_name(0);
	size_t off = 0;
	ssize_t w;

	if (fd == -1) {
		snprintf(dir, 64, "/tmp/voxrelay-fuzz.XXXXXX");
		if ((fd = memfd_create("fuzz", MFD_CLOEXEC)) == -1 ||
		    mkdtemp(dir) == NULL)
			abort();
		snprintf(path, 128, "%s/%s", dir, name);
		snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
		if (symlink(target, path) == -1)
			abort();
		atexit(fuzz_file_cleanup);
	}
	if (ftruncate(fd, 0) == -1)
		abort();
	while (off < size) {
		if ((w = pwrite(fd, data + off, size - off, (off_t)off)) <= 0)
			abort();
		off += (size_t)w;
	}
	return path;
}

/*
 * The reference UTF-8 check, the slow way: decode each sequence to its
 * code point, then reject overlong forms, surrogates and values past
 * U+10FFFF.  Shared by the targets that check proto/'s fast one.
 */
static inline int
fuzz_utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, k;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			need = 1;
			cp = c & 0x1F;
			min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			need = 2;
			cp = c & 0x0F;
			min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			need = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else
			return 0;
		if (n - i - 1 < need)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += need + 1;
	}
	return 1;
}

#endif
