/*
 * http_resp.c — see http_resp.h.
 */
#include "proto/http_resp.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct http_resp *
resp_of(llhttp_t *p)
{
	return p->data;
}

static int
count_head(struct http_resp *r, size_t n)
{
	r->head_bytes += n;
	if (r->head_bytes > r->max_head) {
		r->error = HTTP_ERR_HEADERS_TOO_LARGE;
		return -1;
	}
	return 0;
}

static int
on_status(llhttp_t *p, const char *at, size_t len)
{
	return count_head(resp_of(p), len);
}

static int
on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_resp *r = resp_of(p);

	if (count_head(r, len) != 0)
		return -1;
	if (r->in_value) {
		r->in_value = 0;
		r->field_len = 0;
	}
	for (size_t i = 0; i < len && r->field_len + 1 < sizeof(r->field); i++)
		r->field[r->field_len++] = (char)tolower((unsigned char)at[i]);
	r->field[r->field_len] = '\0';
	return 0;
}

static int
on_header_field_complete(llhttp_t *p)
{
	struct http_resp *r = resp_of(p);

	r->value_dst = NULL;
	r->value_cap = 0;
	r->value_len = 0;
	if (strcmp(r->field, "sec-websocket-accept") == 0) {
		r->value_dst = r->accept;
		r->value_cap = sizeof(r->accept);
	} else if (strcmp(r->field, "upgrade") == 0) {
		r->value_dst = r->upgrade;
		r->value_cap = sizeof(r->upgrade);
	} else if (strcmp(r->field, "connection") == 0) {
		r->value_dst = r->connection;
		r->value_cap = sizeof(r->connection);
	} else if (strcmp(r->field, "x-request-id") == 0) {
		r->value_dst = r->request_id;
		r->value_cap = sizeof(r->request_id);
	}
	if (r->value_dst)
		r->value_dst[0] = '\0';
	r->in_value = 1;
	return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_resp *r = resp_of(p);

	if (count_head(r, len) != 0)
		return -1;
	if (r->value_dst == NULL)
		return 0;
	for (size_t i = 0; i < len && r->value_len + 1 < r->value_cap; i++)
		r->value_dst[r->value_len++] = at[i];
	r->value_dst[r->value_len] = '\0';
	return 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
	struct http_resp *r = resp_of(p);

	r->in_value = 1;	/* the next field starts a new header */
	r->field_len = 0;
	r->field[0] = '\0';
	return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
	struct http_resp *r = resp_of(p);

	r->status = p->status_code;
	return 0;
}

static int
on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_resp *r = resp_of(p);
	size_t keep = r->body_len < r->max_body ? r->max_body - r->body_len : 0;

	if (keep > len)
		keep = len;
	if (keep) {
		memcpy(r->body + r->body_len, at, keep);
		r->body_len += keep;
		r->body[r->body_len] = '\0';
	}
	return 0;
}

static int
on_message_complete(llhttp_t *p)
{
	struct http_resp *r = resp_of(p);

	r->complete = 1;
	if (llhttp_get_upgrade(p))
		return 0;
	return HPE_PAUSED;
}

static llhttp_settings_t settings;
static int settings_ready;

int
http_resp_init(struct http_resp *r, size_t max_head, size_t max_body)
{
	memset(r, 0, sizeof(*r));
	if (!settings_ready) {
		llhttp_settings_init(&settings);
		settings.on_status = on_status;
		settings.on_header_field = on_header_field;
		settings.on_header_field_complete = on_header_field_complete;
		settings.on_header_value = on_header_value;
		settings.on_header_value_complete = on_header_value_complete;
		settings.on_headers_complete = on_headers_complete;
		settings.on_body = on_body;
		settings.on_message_complete = on_message_complete;
		settings_ready = 1;
	}
	r->max_head = max_head;
	r->max_body = max_body;
	if ((r->body = malloc(max_body + 1)) == NULL)
		return -1;
	r->body[0] = '\0';
	llhttp_init(&r->parser, HTTP_RESPONSE, &settings);
	r->parser.data = r;
	return 0;
}

void
http_resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
}

int
http_resp_feed(struct http_resp *r, const char *p, size_t n, size_t *used)
{
	*used = 0;
	if (r->error)
		return r->error;
	switch (http_execute(&r->parser, p, n, used)) {
	case HPE_OK:
		return HTTP_NEED_MORE;
	case HPE_PAUSED:
		return HTTP_COMPLETE;
	case HPE_PAUSED_UPGRADE:
		return r->status == 101 ? HTTP_UPGRADE : HTTP_COMPLETE;
	default:
		if (r->error == 0)
			r->error = HTTP_ERR_PARSE;
		return r->error;
	}
}

int
http_resp_eof(struct http_resp *r)
{
	if (r->complete)
		return HTTP_COMPLETE;
	if (r->status != 0 && llhttp_finish(&r->parser) == HPE_OK)
		return HTTP_COMPLETE;
	return HTTP_ERR_PARSE;
}
