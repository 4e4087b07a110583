/*
 * tls.c — see tls.h.
 */
#include "worker/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/error.h>

#include "daemon/common/util.h"

static int
bio_send(void *arg, const unsigned char *p, size_t n)
{
	struct tls_conn *c = arg;

	if (buf_append(c->cout, p, n) != 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	return (int)n;
}

static int
bio_recv(void *arg, unsigned char *p, size_t n)
{
	struct tls_conn *c = arg;
	size_t have = buf_pending(c->cin);

	if (have == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (n > have)
		n = have;
	memcpy(p, buf_head(c->cin), n);
	buf_consume(c->cin, n);
	return (int)n;
}

int
tls_ctx_init(struct tls_ctx *t, const char *system_bundle, const char *extra_ca,
    int slot, char *err, size_t errlen)
{
	char pers[64], msg[128];
	int rc, n;

	memset(t, 0, sizeof(*t));
	mbedtls_entropy_init(&t->entropy);
	mbedtls_ctr_drbg_init(&t->drbg);
	mbedtls_x509_crt_init(&t->ca);
	mbedtls_ssl_config_init(&t->conf);

	/* personalised per process: forked workers must not share a stream */
	n = snprintf(pers, sizeof(pers), "voxrelay worker %d pid %d t %llu",
	    slot, (int)getpid(), (unsigned long long)mono_us());
	rc = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
	    (const unsigned char *)pers, (size_t)n);
	if (rc != 0) {
		mbedtls_strerror(rc, msg, sizeof(msg));
		snprintf(err, errlen, "seeding the TLS random generator: %s", msg);
		goto fail;
	}
	if (system_bundle != NULL && access(system_bundle, R_OK) == 0) {
		rc = mbedtls_x509_crt_parse_file(&t->ca, system_bundle);
		if (rc < 0) {
			mbedtls_strerror(rc, msg, sizeof(msg));
			snprintf(err, errlen, "%s: %s", system_bundle, msg);
			goto fail;
		}
	}
	if (extra_ca != NULL && extra_ca[0] != '\0') {
		rc = mbedtls_x509_crt_parse_file(&t->ca, extra_ca);
		if (rc != 0) {
			if (rc < 0)
				mbedtls_strerror(rc, msg, sizeof(msg));
			else
				snprintf(msg, sizeof(msg), "%d certificates unusable", rc);
			snprintf(err, errlen, "OPENAI_CA_FILE %s: %s", extra_ca, msg);
			goto fail;
		}
	}
	for (mbedtls_x509_crt *c = &t->ca; c != NULL && c->raw.len > 0; c = c->next)
		t->anchors++;
	rc = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc != 0) {
		mbedtls_strerror(rc, msg, sizeof(msg));
		snprintf(err, errlen, "TLS configuration: %s", msg);
		goto fail;
	}
	mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
	mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
	mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);	/* TLS 1.2 and up */
	t->ready = 1;
	return 0;
fail:
	tls_ctx_free(t);
	return -1;
}

void
tls_ctx_free(struct tls_ctx *t)
{
	mbedtls_ssl_config_free(&t->conf);
	mbedtls_x509_crt_free(&t->ca);
	mbedtls_ctr_drbg_free(&t->drbg);
	mbedtls_entropy_free(&t->entropy);
	t->ready = 0;
}

int
tls_conn_init(struct tls_conn *c, struct tls_ctx *t, const char *host,
    struct buf *cin, struct buf *cout)
{
	memset(c, 0, sizeof(*c));
	mbedtls_ssl_init(&c->ssl);
	c->setup = 1;
	c->cin = cin;
	c->cout = cout;
	if ((c->last_err = mbedtls_ssl_setup(&c->ssl, &t->conf)) != 0)
		return TLS_ERR;
	if ((c->last_err = mbedtls_ssl_set_hostname(&c->ssl, host)) != 0)
		return TLS_ERR;
	mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
	return TLS_OK;
}

void
tls_conn_free(struct tls_conn *c)
{
	if (c->setup)
		mbedtls_ssl_free(&c->ssl);
	c->setup = 0;
}

int
tls_conn_handshake(struct tls_conn *c)
{
	int rc;

	if (c->done)
		return TLS_OK;
	rc = mbedtls_ssl_handshake(&c->ssl);
	if (rc == 0) {
		c->done = 1;
		return TLS_OK;
	}
	if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
		return TLS_AGAIN;
	c->last_err = rc;
	return TLS_ERR;
}

long
tls_conn_read(struct tls_conn *c, uint8_t *buf, size_t len)
{
	int rc = mbedtls_ssl_read(&c->ssl, buf, len);

	if (rc > 0)
		return rc;
	if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
		return TLS_AGAIN;
	if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		return TLS_EOF;
	c->last_err = rc;
	return TLS_ERR;
}

int
tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		int rc = mbedtls_ssl_write(&c->ssl, p, n);
		if (rc < 0) {
			/* our BIO only says WANT_WRITE when cout is full:
			 * the peer is not reading and the call gives up */
			c->last_err = rc;
			return TLS_ERR;
		}
		p += rc;
		n -= (size_t)rc;
	}
	return TLS_OK;
}

void
tls_conn_close_notify(struct tls_conn *c)
{
	if (c->setup && c->done)
		mbedtls_ssl_close_notify(&c->ssl);
}

void
tls_conn_error(struct tls_conn *c, char *out, size_t len)
{
	char msg[160];
	uint32_t flags;

	if (c->last_err == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED &&
	    (flags = mbedtls_ssl_get_verify_result(&c->ssl)) != 0) {
		char info[256];
		int n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
		/* one line: the verify info comes newline-separated */
		for (int i = 0; i < n && info[i]; i++)
			if (info[i] == '\n')
				info[i] = i + 1 < n && info[i + 1] ? ';' : '\0';
		snprintf(out, len, "certificate verification failed: %s", info);
		return;
	}
	if (c->last_err == MBEDTLS_ERR_SSL_WANT_WRITE) {
		snprintf(out, len, "output buffer full");
		return;
	}
	mbedtls_strerror(c->last_err, msg, sizeof(msg));
	snprintf(out, len, "%s (-0x%04x)", msg, (unsigned)-c->last_err);
}
