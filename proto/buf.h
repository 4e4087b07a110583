/*
 * buf.h — a growable byte buffer with a hard cap, consumed from the front.
 *
 * Used for what a connection still has to write and what it has read but
 * not parsed.  The cap is the contract that a slow peer cannot make us
 * buffer without bound: buf_append() refuses past it.
 */
#ifndef VR_PROTO_BUF_H
#define VR_PROTO_BUF_H

#include <stddef.h>

struct buf {
	char	*data;
	size_t	 off;		/* first unconsumed byte */
	size_t	 len;		/* end of valid data */
	size_t	 cap;		/* allocated */
	size_t	 max;		/* hard cap on len - off; 0 = none */
};

void   buf_init(struct buf *b, size_t max);
void   buf_free(struct buf *b);
/* Returns 0, or -1 if the cap would be passed or memory ran out. */
int    buf_append(struct buf *b, const void *p, size_t n);
/* Make room for n more bytes; returns a pointer to write them, or NULL.
 * Commit what was written with buf_commit(). */
char  *buf_reserve(struct buf *b, size_t n);
void   buf_commit(struct buf *b, size_t n);
void   buf_consume(struct buf *b, size_t n);
/* Give memory back once empty if more than keep bytes are held: a burst
 * must not pin its peak for the rest of a long call. */
void   buf_shrink(struct buf *b, size_t keep);
static inline size_t buf_pending(const struct buf *b) { return b->len - b->off; }
/* NULL while nothing was ever allocated (NULL + 0 is undefined in C). */
static inline char  *buf_head(const struct buf *b)
{
	return b->data != NULL ? b->data + b->off : NULL;
}

#endif
