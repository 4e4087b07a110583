/*
 * tls.h — TLS client connections with mbedTLS, driven by the worker's loop.
 *
 * mbedTLS never touches a socket here.  Its BIO callbacks read ciphertext
 * from `cin` (filled by the owner from uv reads) and append ciphertext to
 * `cout` (written by the owner with uv writes), so no call ever blocks:
 * MBEDTLS_ERR_SSL_WANT_READ means "feed me more", and WANT_WRITE cannot
 * happen while `cout` has room.
 *
 * One struct tls_ctx per worker, made after fork: trust anchors (the
 * system bundle plus OPENAI_CA_FILE), and a CTR-DRBG seeded from the
 * kernel with the worker's pid and slot as personalisation, so no two
 * workers share a random stream.
 */
#ifndef VR_TLS_H
#define VR_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "proto/buf.h"

struct tls_ctx {
	mbedtls_entropy_context		entropy;
	mbedtls_ctr_drbg_context	drbg;
	mbedtls_x509_crt		ca;
	mbedtls_ssl_config		conf;
	int				ready;
	unsigned			anchors;	/* certificates loaded */
};

enum tls_rc {
	TLS_OK = 0,
	TLS_AGAIN = 1,		/* handshake/read: needs more input */
	TLS_EOF = 2,		/* peer sent close_notify, or the stream ended */
	TLS_ERR = -1,		/* see tls_conn_error() */
};

struct tls_conn {
	mbedtls_ssl_context	 ssl;
	struct buf		*cin, *cout;
	int			 setup;
	int			 done;		/* handshake complete */
	int			 last_err;	/* mbedTLS error code */
};

/* system_bundle may be NULL (skip); extra_ca may be NULL.  Returns 0 or -1
 * with a message in err. */
int  tls_ctx_init(struct tls_ctx *t, const char *system_bundle,
    const char *extra_ca, int slot, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *t);

/* host: the name to send as SNI and to verify the certificate against. */
int  tls_conn_init(struct tls_conn *c, struct tls_ctx *t, const char *host,
    struct buf *cin, struct buf *cout);
void tls_conn_free(struct tls_conn *c);
/* Run the handshake as far as the input allows.  TLS_OK when done. */
int  tls_conn_handshake(struct tls_conn *c);
/* Decrypt into buf.  Returns bytes (> 0), TLS_AGAIN (0 bytes now), TLS_EOF
 * or TLS_ERR. */
long tls_conn_read(struct tls_conn *c, uint8_t *buf, size_t len);
/* Encrypt all of p into cout.  TLS_OK or TLS_ERR. */
int  tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n);
/* Queue close_notify. */
void tls_conn_close_notify(struct tls_conn *c);
/* What went wrong, certificate problems spelled out. */
void tls_conn_error(struct tls_conn *c, char *out, size_t len);

#endif
