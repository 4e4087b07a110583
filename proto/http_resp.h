/*
 * http_resp.h — parsing the HTTP response to our own upgrade request (the
 * OpenAI leg), over llhttp in response mode.
 *
 * Keeps the status, the few headers a WebSocket client checks, and a
 * bounded body (an error answer's JSON).  Stops at the end of the head for
 * a 101, so the bytes after it go to the WebSocket.  Pure: no I/O.
 */
#ifndef VR_PROTO_HTTP_RESP_H
#define VR_PROTO_HTTP_RESP_H

#include <stddef.h>

#include <llhttp.h>

#include "proto/http.h"

struct http_resp {
	llhttp_t	 parser;
	int		 status;
	char		 accept[64];		/* Sec-WebSocket-Accept */
	char		 upgrade[32];		/* Upgrade */
	char		 connection[64];	/* Connection */
	char		 request_id[96];	/* x-request-id, for logs */
	/* the header being read */
	char		 field[64];
	size_t		 field_len;
	char		*value_dst;
	size_t		 value_cap, value_len;
	int		 in_value;
	size_t		 head_bytes, max_head;
	char		*body;
	size_t		 body_len, max_body;
	int		 complete;
	int		 error;
};

int  http_resp_init(struct http_resp *r, size_t max_head, size_t max_body);
void http_resp_free(struct http_resp *r);
/* Returns HTTP_NEED_MORE, HTTP_COMPLETE (a whole non-upgrade response),
 * HTTP_UPGRADE (a 101 head; *used stops at its end) or an HTTP_ERR_*.
 * Body bytes past max_body are counted but not kept. */
int  http_resp_feed(struct http_resp *r, const char *p, size_t n, size_t *used);
/* The peer closed: a response delimited by the close is complete. */
int  http_resp_eof(struct http_resp *r);

#endif
