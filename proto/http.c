/*
 * http.c — llhttp glue; see http.h.
 *
 * llhttp hands us the URL and each header name and value in pieces, as
 * they arrive.  We append the pieces to one arena (`head`), NUL-terminate
 * each field when the next one starts, and count every byte against
 * max_head.  on_message_complete pauses the parser so one call of
 * http_req_feed() never runs past the end of a request.
 */
#include "proto/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct http_req *
req_of(llhttp_t *p)
{
	return p->data;
}

/* Append to the arena; the +1 keeps room for each field's NUL. */
static int
head_append(struct http_req *r, const char *at, size_t len)
{
	if (r->head_len + len + 1 > r->max_head) {
		r->error = HTTP_ERR_HEADERS_TOO_LARGE;
		return -1;
	}
	memcpy(r->head + r->head_len, at, len);
	r->head_len += len;
	return 0;
}

static int
head_terminate(struct http_req *r)
{
	if (r->head_len + 1 > r->max_head) {
		r->error = HTTP_ERR_HEADERS_TOO_LARGE;
		return -1;
	}
	r->head[r->head_len++] = '\0';
	return 0;
}

static int
on_message_begin(llhttp_t *p)
{
	req_of(p)->started = 1;
	return 0;
}

static int
on_url(llhttp_t *p, const char *at, size_t len)
{
	struct http_req *r = req_of(p);

	if (r->url_len + len + 1 > r->max_head) {
		r->error = HTTP_ERR_URI_TOO_LONG;
		return -1;
	}
	if (head_append(r, at, len) != 0)
		return -1;
	r->url_len += len;
	return 0;
}

static int
on_url_complete(llhttp_t *p)
{
	return head_terminate(req_of(p)) == 0 ? 0 : -1;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_req *r = req_of(p);
	struct http_hdr *h;

	if (r->in_value || r->nhdrs == 0 ||
	    r->hdrs[r->nhdrs - 1].value_off != 0) {
		/* a new header starts */
		if (r->in_value && head_terminate(r) != 0)
			return -1;
		r->in_value = 0;
		if (r->nhdrs >= r->max_headers) {
			r->error = HTTP_ERR_TOO_MANY_HEADERS;
			return -1;
		}
		h = &r->hdrs[r->nhdrs++];
		memset(h, 0, sizeof(*h));
		h->name_off = (uint32_t)r->head_len;
	}
	h = &r->hdrs[r->nhdrs - 1];
	if (head_append(r, at, len) != 0)
		return -1;
	h->name_len += (uint32_t)len;
	return 0;
}

static int
on_header_field_complete(llhttp_t *p)
{
	struct http_req *r = req_of(p);
	struct http_hdr *h = &r->hdrs[r->nhdrs - 1];

	/* llhttp lets "Name : value" through; RFC 9112 §5.1 says reject */
	if (r->head_len > h->name_off && (r->head[r->head_len - 1] == ' ' ||
	    r->head[r->head_len - 1] == '\t')) {
		r->error = HTTP_ERR_PARSE;
		r->reason = "whitespace before the colon";
		return -1;
	}
	if (head_terminate(r) != 0)
		return -1;
	h->value_off = (uint32_t)r->head_len;
	r->in_value = 1;
	return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_req *r = req_of(p);

	if (head_append(r, at, len) != 0)
		return -1;
	r->hdrs[r->nhdrs - 1].value_len += (uint32_t)len;
	return 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
	struct http_req *r = req_of(p);
	struct http_hdr *h = &r->hdrs[r->nhdrs - 1];

	/* llhttp keeps trailing blanks; they are not part of the value */
	while (h->value_len > 0 && (r->head[r->head_len - 1] == ' ' ||
	    r->head[r->head_len - 1] == '\t')) {
		r->head_len--;
		h->value_len--;
	}
	r->in_value = 0;
	return head_terminate(r) == 0 ? 0 : -1;
}

static int
on_headers_complete(llhttp_t *p)
{
	struct http_req *r = req_of(p);

	if (p->content_length > r->max_body &&
	    p->content_length != UINT64_MAX) {
		r->error = HTTP_ERR_BODY_TOO_LARGE;
		return -1;
	}
	return 0;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_req *r = req_of(p);

	if (r->body_len + len > r->max_body) {
		r->error = HTTP_ERR_BODY_TOO_LARGE;
		return -1;
	}
	if (r->body_len + len + 1 > r->body_cap) {
		size_t ncap = r->body_cap ? r->body_cap : 1024;
		char *nb;
		while (ncap < r->body_len + len + 1)
			ncap *= 2;
		if ((nb = realloc(r->body, ncap)) == NULL) {
			r->error = HTTP_ERR_NOMEM;
			return -1;
		}
		r->body = nb;
		r->body_cap = ncap;
	}
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return 0;
}

static int
on_message_complete(llhttp_t *p)
{
	struct http_req *r = req_of(p);

	r->complete = 1;
	r->keep_alive = llhttp_should_keep_alive(p);
	if (llhttp_get_upgrade(p)) {
		r->upgrade = 1;
		return 0;	/* llhttp stops with HPE_PAUSED_UPGRADE */
	}
	return HPE_PAUSED;
}

static llhttp_settings_t settings;
static int settings_ready;

static void
settings_init(void)
{
	llhttp_settings_init(&settings);
	settings.on_message_begin = on_message_begin;
	settings.on_url = on_url;
	settings.on_url_complete = on_url_complete;
	settings.on_header_field = on_header_field;
	settings.on_header_field_complete = on_header_field_complete;
	settings.on_header_value = on_header_value;
	settings.on_header_value_complete = on_header_value_complete;
	settings.on_headers_complete = on_headers_complete;
	settings.on_body = on_body;
	settings.on_message_complete = on_message_complete;
	settings_ready = 1;
}

int
http_req_init(struct http_req *r, size_t max_head, unsigned max_headers,
    size_t max_body)
{
	memset(r, 0, sizeof(*r));
	if (!settings_ready)
		settings_init();
	if (max_headers > HTTP_MAX_HEADERS_HARD)
		max_headers = HTTP_MAX_HEADERS_HARD;
	r->max_head = max_head;
	r->max_headers = max_headers;
	r->max_body = max_body;
	r->head = malloc(max_head);
	r->hdrs = calloc(max_headers ? max_headers : 1, sizeof(*r->hdrs));
	if (r->head == NULL || r->hdrs == NULL) {
		http_req_free(r);
		return -1;
	}
	llhttp_init(&r->parser, HTTP_REQUEST, &settings);
	r->parser.data = r;
	return 0;
}

void
http_req_free(struct http_req *r)
{
	free(r->head);
	free(r->hdrs);
	free(r->body);
	r->head = NULL;
	r->hdrs = NULL;
	r->body = NULL;
}

void
http_req_reset(struct http_req *r)
{
	r->head_len = 0;
	r->url_off = 0;
	r->url_len = 0;
	r->nhdrs = 0;
	r->in_value = 0;
	r->body_len = 0;
	r->started = 0;
	r->complete = 0;
	r->upgrade = 0;
	r->keep_alive = 0;
	r->error = 0;
	r->reason = NULL;
	if (llhttp_get_errno(&r->parser) == HPE_PAUSED)
		llhttp_resume(&r->parser);
}

llhttp_errno_t
http_execute(llhttp_t *p, const char *data, size_t len, size_t *used)
{
	llhttp_errno_t e = llhttp_execute(p, data, len);

	if (e == HPE_OK)
		*used = len;
	else if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE)
		*used = (size_t)(llhttp_get_error_pos(p) - data);
	else
		*used = 0;
	return e;
}

int
http_req_feed(struct http_req *r, const char *data, size_t len, size_t *used)
{
	*used = 0;
	if (r->error)
		return r->error;
	if (len == 0)
		return HTTP_NEED_MORE;
	switch (http_execute(&r->parser, data, len, used)) {
	case HPE_OK:
		return HTTP_NEED_MORE;
	case HPE_PAUSED:
		return HTTP_COMPLETE;
	case HPE_PAUSED_UPGRADE:
		return HTTP_UPGRADE;
	default:
		if (r->error == 0) {
			r->error = HTTP_ERR_PARSE;
			r->reason = llhttp_get_error_reason(&r->parser);
		}
		return r->error;
	}
}

const char *
http_req_method(const struct http_req *r)
{
	return llhttp_method_name((llhttp_method_t)r->parser.method);
}

const char *
http_req_url(const struct http_req *r)
{
	return r->head + r->url_off;
}

const char *
http_req_header(const struct http_req *r, const char *name)
{
	for (unsigned i = 0; i < r->nhdrs; i++)
		if (strcasecmp(r->head + r->hdrs[i].name_off, name) == 0)
			return r->hdrs[i].value_off ? r->head + r->hdrs[i].value_off : "";
	return NULL;
}

int
http_req_header_has(const struct http_req *r, const char *name, const char *token)
{
	size_t tl = strlen(token);

	for (unsigned i = 0; i < r->nhdrs; i++) {
		const char *v, *s;

		if (strcasecmp(r->head + r->hdrs[i].name_off, name) != 0 ||
		    r->hdrs[i].value_off == 0)
			continue;
		v = r->head + r->hdrs[i].value_off;
		for (s = v; *s; ) {
			while (*s == ' ' || *s == '\t' || *s == ',')
				s++;
			if (*s == '\0')
				break;
			const char *e = s;
			while (*e && *e != ',')
				e++;
			const char *t = e;
			while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
				t--;
			if ((size_t)(t - s) == tl && strncasecmp(s, token, tl) == 0)
				return 1;
			s = e;
		}
	}
	return 0;
}

int
http_err_status(int err)
{
	switch (err) {
	case HTTP_ERR_HEADERS_TOO_LARGE:
	case HTTP_ERR_TOO_MANY_HEADERS:
		return 431;
	case HTTP_ERR_BODY_TOO_LARGE:
		return 413;
	case HTTP_ERR_URI_TOO_LONG:
		return 414;
	case HTTP_ERR_NOMEM:
		return 500;
	default:
		return 400;
	}
}

const char *
http_status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default:  return "Unknown";
	}
}

static int
response_head(char *out, size_t cap, int status, const char *content_type,
    const char *framing, int keep_alive, const char *extra)
{
	int n;

	n = snprintf(out, cap,
	    "HTTP/1.1 %d %s\r\n"
	    "Server: voxrelay\r\n"
	    "%s%s%s"
	    "%s"
	    "Connection: %s\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    "\r\n",
	    status, http_status_text(status),
	    content_type ? "Content-Type: " : "", content_type ? content_type : "",
	    content_type ? "\r\n" : "",
	    framing, keep_alive ? "keep-alive" : "close",
	    extra ? extra : "");
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return n;
}

int
http_response_head(char *out, size_t cap, int status, const char *content_type,
    size_t content_length, int keep_alive, const char *extra)
{
	char len[48];

	snprintf(len, sizeof(len), "Content-Length: %zu\r\n", content_length);
	return response_head(out, cap, status, content_type, len, keep_alive,
	    extra);
}

int
http_response_head_stream(char *out, size_t cap, int status,
    const char *content_type, int chunked, int keep_alive, const char *extra)
{
	return response_head(out, cap, status, content_type,
	    chunked ? "Transfer-Encoding: chunked\r\n" : "",
	    chunked && keep_alive, extra);
}
