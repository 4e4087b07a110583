/*
 * dashboard.c — GET /dashboard: one self-contained page for the on-call
 * engineer.  It polls /health every 2 s and draws everything itself, with
 * no request to anywhere else.  GET /dashboard/calls: the call records
 * (history, a call's transcript, analytics charts) from /api/..., built
 * and served the same way.
 *
 * The page's source is daemon/dashboard.html; the Makefile turns it into
 * build/gen/dashboard_html.c (a byte array) and links it in, so the binary
 * serves it without reading the disk, and a change to the page rebuilds.
 *
 * Every answer of the master is Cache-Control: no-store and nosniff
 * (proto/http.c).  The Content-Security-Policy forbids every load but
 * this origin's own endpoints (connect-src 'self').  The page's one inline <script> is allowed by
 * its SHA-256, computed here on the first request from the bytes actually
 * served, so the hash cannot drift from the page.  Styles are inline too
 * ('unsafe-inline' for style only: no script runs from a style).
 */
#include "daemon/master.h"
#include "daemon/common/log.h"

#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <string.h>

/* build/gen/{dashboard,calls}_html.c, made from daemon/NAME.html */
extern const unsigned char dashboard_html[], calls_html[];
extern const size_t dashboard_html_len, calls_html_len;

#define CSP_FIXED							\
	"default-src 'none'; connect-src 'self'; img-src 'self' data:; "	\
	"style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "	\
	"frame-ancestors 'none'; script-src "

struct page {
	const unsigned char	*html;
	const size_t		*len;
	char			 headers[512];	/* made once: "" until then */
};

static struct page dashboard_page = { dashboard_html, &dashboard_html_len, "" };
static struct page calls_page = { calls_html, &calls_html_len, "" };

/* 'sha256-<base64>' of the text of the page's first inline script, or
 * 'none' when there is none (the page then runs no script at all). */
static void
script_source(const struct page *pg, char *out, size_t len)
{
	const char *page = (const char *)pg->html;
	size_t plen = *pg->len;
	const char *open, *start, *end;
	unsigned char digest[32], b64[64];
	const mbedtls_md_info_t *info;
	size_t olen;

	snprintf(out, len, "'none'");
	open = memmem(page, plen, "<script>", 8);
	if (open == NULL)
		return;
	start = open + 8;
	end = memmem(start, plen - (size_t)(start - page), "</script>", 9);
	info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	if (end == NULL || info == NULL ||
	    mbedtls_md(info, (const unsigned char *)start, (size_t)(end - start),
	    digest) != 0 ||
	    mbedtls_base64_encode(b64, sizeof(b64), &olen, digest,
	    sizeof(digest)) != 0) {
		log_warnx("dashboard: cannot hash the page's script; it will "
		    "not run");
		return;
	}
	snprintf(out, len, "'sha256-%.*s'", (int)olen, (const char *)b64);
}

static void
page_send(struct conn *c, struct page *pg)
{
	if (pg->headers[0] == '\0') {
		char src[96];

		script_source(pg, src, sizeof(src));
		snprintf(pg->headers, sizeof(pg->headers),
		    "Content-Security-Policy: " CSP_FIXED "%s\r\n"
		    "Referrer-Policy: no-referrer\r\n", src);
	}
	conn_respond(c, 200, "text/html; charset=utf-8",
	    (const char *)pg->html, *pg->len, pg->headers);
}

void
route_dashboard(struct conn *c)
{
	page_send(c, &dashboard_page);
}

void
route_dashboard_calls(struct conn *c)
{
	page_send(c, &calls_page);
}
