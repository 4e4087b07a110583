/*
 * wpath.h — the one write path of both legs (the Twilio socket in call.c,
 * the OpenAI socket in leg_openai.c).
 *
 * Bytes queued during a loop iteration sit in `out`.  A flush first offers
 * them to uv_try_write(); what the kernel does not take goes out in one
 * uv_write(), with `out` and `wbuf` swapped so that the next messages fill
 * a buffer of their own while that write is in flight (a uv_write must
 * keep its bytes unchanged until its callback).  Only `out` is bounded:
 * its max moves with it through the swap.  Inline: it is the hot path.
 */
#ifndef VR_WPATH_H
#define VR_WPATH_H

#include <uv.h>

#include "proto/buf.h"

/*
 * Write what out holds to s.  Returns 0 when everything was written, 1
 * when a write is in flight (cb will be called with req; do not flush
 * again before), or a negative libuv error.
 */
static inline int
wpath_flush(uv_stream_t *s, struct buf *out, struct buf *wbuf,
    uv_write_t *req, uv_write_cb cb)
{
	uv_buf_t b;
	int n;

	if (buf_pending(out) > 0) {
		b = uv_buf_init(buf_head(out), (unsigned)buf_pending(out));
		n = uv_try_write(s, &b, 1);
		if (n > 0)
			buf_consume(out, (size_t)n);
		else if (n < 0 && n != UV_EAGAIN)
			return n;
	}
	if (buf_pending(out) == 0)
		return 0;

	struct buf tmp = *wbuf;
	size_t max = out->max;

	*wbuf = *out;
	*out = tmp;
	out->max = max;
	wbuf->max = 0;
	b = uv_buf_init(buf_head(wbuf), (unsigned)buf_pending(wbuf));
	if ((n = uv_write(req, s, &b, 1, cb)) != 0)
		return n;
	return 1;
}

/* In the write callback: wbuf was written; keep at most `keep` bytes of it. */
static inline void
wpath_written(struct buf *wbuf, size_t keep)
{
	buf_consume(wbuf, buf_pending(wbuf));
	buf_shrink(wbuf, keep);
}

#endif
