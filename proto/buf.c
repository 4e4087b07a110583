#include "proto/buf.h"

#include <stdlib.h>
#include <string.h>

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

char *
buf_reserve(struct buf *b, size_t n)
{
	size_t pending = b->len - b->off, need, ncap;
	char *p;

	if (b->max && pending + n > b->max)
		return NULL;
	if (b->len + n <= b->cap)
		return b->data + b->len;
	/* slide down first: cheaper than growing */
	if (b->off > 0 && pending + n <= b->cap) {
		memmove(b->data, b->data + b->off, pending);
		b->off = 0;
		b->len = pending;
		return b->data + b->len;
	}
	need = pending + n;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap *= 2;
	if ((p = malloc(ncap)) == NULL)
		return NULL;
	if (pending)
		memcpy(p, b->data + b->off, pending);
	free(b->data);
	b->data = p;
	b->cap = ncap;
	b->off = 0;
	b->len = pending;
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	char *w;

	if (n == 0)
		return 0;
	if ((w = buf_reserve(b, n)) == NULL)
		return -1;
	memcpy(w, p, n);
	b->len += n;
	return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void
buf_shrink(struct buf *b, size_t keep)
{
	if (b->len == b->off && b->cap > keep) {
		free(b->data);
		b->data = NULL;
		b->off = b->len = b->cap = 0;
	}
}
