/*
 * http.h — HTTP/1.1 requests over llhttp, with limits; responses.
 *
 * A struct http_req parses one request at a time from bytes fed in any
 * split.  It stops after each complete request (so pipelined requests are
 * answered in order) and after an upgrade request, reporting how many bytes
 * it used: what follows belongs to the next request, or to the WebSocket.
 * Limits: total header bytes (request line included), header count, body
 * size.  Pure: no I/O.
 */
#ifndef VR_PROTO_HTTP_H
#define VR_PROTO_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#define HTTP_MAX_HEADERS_HARD 512

enum http_rc {
	HTTP_NEED_MORE = 0,	/* all input used, request incomplete */
	HTTP_COMPLETE = 1,	/* one request complete */
	HTTP_UPGRADE = 2,	/* complete, and the connection upgrades */
	/* errors: the connection answers with http_err_status() and closes */
	HTTP_ERR_PARSE = -1,
	HTTP_ERR_HEADERS_TOO_LARGE = -2,
	HTTP_ERR_TOO_MANY_HEADERS = -3,
	HTTP_ERR_BODY_TOO_LARGE = -4,
	HTTP_ERR_URI_TOO_LONG = -5,
	HTTP_ERR_NOMEM = -6,
};

struct http_hdr {
	uint32_t	name_off, name_len;
	uint32_t	value_off, value_len;
};

struct http_req {
	llhttp_t	 parser;
	/* limits */
	size_t		 max_head, max_body;
	unsigned	 max_headers;
	/* the head: url and headers, each NUL-terminated, in one arena */
	char		*head;
	size_t		 head_len;
	uint32_t	 url_off, url_len;
	struct http_hdr	*hdrs;
	unsigned	 nhdrs;
	int		 in_value;	/* last callback was a value */
	/* the body */
	char		*body;
	size_t		 body_len, body_cap;
	/* state */
	int		 started;	/* first byte of this request seen */
	int		 complete;
	int		 upgrade;
	int		 keep_alive;
	int		 error;		/* enum http_rc (< 0) */
	const char	*reason;	/* llhttp's reason on HTTP_ERR_PARSE */
};

int  http_req_init(struct http_req *r, size_t max_head, unsigned max_headers,
    size_t max_body);
void http_req_free(struct http_req *r);
/* Forget the finished request and get ready for the next one. */
void http_req_reset(struct http_req *r);
/* Feed data[0..len); *used gets how much was consumed.  Returns an enum
 * http_rc.  After HTTP_COMPLETE, call http_req_reset() before feeding
 * the rest. */
int  http_req_feed(struct http_req *r, const char *data, size_t len,
    size_t *used);

const char *http_req_method(const struct http_req *r);
/* Raw request target, NUL-terminated. */
const char *http_req_url(const struct http_req *r);
/* First value of a header (case-insensitive), NUL-terminated, or NULL. */
const char *http_req_header(const struct http_req *r, const char *name);
/* 1 if the comma-separated header contains token (case-insensitive). */
int  http_req_header_has(const struct http_req *r, const char *name,
    const char *token);

/*
 * llhttp_execute() over data[0..len) for http_req_feed() and
 * http_resp_feed(): *used gets the bytes it took, all of them (HPE_OK) or
 * those up to where it paused at the end of a message or an upgrade
 * (HPE_PAUSED, HPE_PAUSED_UPGRADE); 0 on an error.
 */
llhttp_errno_t http_execute(llhttp_t *p, const char *data, size_t len,
    size_t *used);

/* Status for an error code (400, 413, 414, 431, 500). */
int  http_err_status(int err);
const char *http_status_text(int status);

/*
 * Write a complete response head into out: status line, Content-Type (if
 * not NULL), Content-Length, Connection, the fixed security headers, and
 * extra (already "Name: value\r\n" lines, may be NULL).  Returns the
 * length, or -1 if it does not fit.
 */
int  http_response_head(char *out, size_t cap, int status,
    const char *content_type, size_t content_length, int keep_alive,
    const char *extra);
/*
 * The same for a body of unknown length: chunked (HTTP/1.1), or, for an
 * HTTP/1.0 client, no length at all and the connection closed at its end
 * (keep_alive is then ignored).
 */
int  http_response_head_stream(char *out, size_t cap, int status,
    const char *content_type, int chunked, int keep_alive, const char *extra);

#endif
