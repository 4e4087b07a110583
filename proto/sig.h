/*
 * sig.h — Twilio request signatures (X-Twilio-Signature), protocols.md §5.
 *
 * HMAC-SHA1, keyed with the account auth token, over the full URL followed
 * by every POST parameter as name+value, names sorted in byte order
 * (repeated names: once per value, values sorted), base64 of the digest.
 */
#ifndef VR_PROTO_SIG_H
#define VR_PROTO_SIG_H

#include "proto/form.h"

#define SIG_B64_LEN 28	/* base64 of a 20-byte digest, with padding */

/* Compute the signature of url (+ params, may be NULL) into out
 * (SIG_B64_LEN + 1 bytes).  Returns 0, or -1 (out of memory). */
int sig_compute(const char *auth_token, const char *url,
    const struct form *params, char *out);

/*
 * Validate header against url as given, then against the variant with the
 * scheme's default port inserted (https :443, http :80, wss :443, ws :80)
 * or removed, as Twilio's own validators do.  Comparison is constant-time.
 * Returns 1 when one of them matches, 0 otherwise (also for a NULL or
 * malformed header).
 */
int sig_validate(const char *auth_token, const char *url,
    const struct form *params, const char *header);

#endif
