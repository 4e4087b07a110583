/*
 * ipc.c — see ipc.h.
 *
 * Both sides run the same checks: the encoder refuses to build what the
 * decoder would reject, so a refused packet always means a broken peer or
 * a bug on this side, never a disagreement between the two.
 *
 * Buffers may be unaligned: the header and the handoff struct are read and
 * written with memcpy.  The payload pointer that ipc_decode() returns is
 * buf + sizeof(struct ipc_hdr); copy it into a struct ipc_handoff (memcpy)
 * unless buf is known to be 8-byte aligned.  ho_pad is written as zero and
 * must read as zero.
 */
#include "proto/ipc.h"

#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(struct ipc_hdr) == 16, "ipc_hdr layout");
_Static_assert(sizeof(struct ipc_handoff) == 1496, "ipc_handoff layout");
_Static_assert(sizeof(struct ipc_amd) == 64, "ipc_amd layout");
_Static_assert(sizeof(struct ipc_prewarm) == 520, "ipc_prewarm layout");

static const char *const ipc_type_names[IPC_TYPE_MAX] = {
	[IPC_HANDOFF] = "handoff",
	[IPC_DRAIN] = "drain",
	[IPC_REOPEN] = "reopen",
	[IPC_SHUTDOWN] = "shutdown",
	[IPC_RECORD] = "record",
	[IPC_AMD] = "amd",
	[IPC_PREWARM] = "prewarm",
};

const char *
ipc_type_name(unsigned type)
{
	if (type == 0 || type >= IPC_TYPE_MAX)
		return "unknown";
	return ipc_type_names[type];
}

#define FIELD_TERMINATED(ho, f) \
	(memchr((ho)->f, '\0', sizeof((ho)->f)) != NULL)

/* An AMD payload: its size, and its strings terminated inside. */
static int
amd_valid(const void *payload, size_t len)
{
	struct ipc_amd a;

	if (payload == NULL || len != sizeof(a))
		return 0;
	memcpy(&a, payload, sizeof(a));
	return FIELD_TERMINATED(&a, ia_call_sid) &&
	    FIELD_TERMINATED(&a, ia_answered_by);
}

/*
 * A handoff payload of len bytes whose fixed part is ho: exactly
 * ho_extra_len bytes follow it, every string is NUL-terminated inside its
 * array, the padding is zero.
 */
static int
handoff_valid(const struct ipc_handoff *ho, size_t len)
{
	if (len < sizeof(*ho) || ho->ho_extra_len > IPC_MAX_EXTRA ||
	    len - sizeof(*ho) != ho->ho_extra_len || ho->ho_pad != 0)
		return 0;
	return FIELD_TERMINATED(ho, ho_path) &&
	    FIELD_TERMINATED(ho, ho_host) &&
	    FIELD_TERMINATED(ho, ho_ws_key) &&
	    FIELD_TERMINATED(ho, ho_ws_version) &&
	    FIELD_TERMINATED(ho, ho_signature) &&
	    FIELD_TERMINATED(ho, ho_peer);
}

long
ipc_encode(void *out, size_t cap, enum ipc_type type, uint64_t id,
    const void *payload, size_t payload_len)
{
	static const uint32_t zero;
	unsigned char *o = out;
	struct ipc_hdr h;
	size_t total;

	if (out == NULL || (int)type <= 0 || type >= IPC_TYPE_MAX)
		return -1;
	if (type == IPC_HANDOFF) {
		struct ipc_handoff ho;

		if (payload == NULL || payload_len < sizeof(ho))
			return -1;
		memcpy(&ho, payload, sizeof(ho));
		ho.ho_pad = 0;	/* the caller's may be garbage */
		if (!handoff_valid(&ho, payload_len))
			return -1;
	} else if (type == IPC_RECORD) {
		if (payload == NULL || payload_len == 0 ||
		    payload_len > IPC_MAX_RECORD)
			return -1;
	} else if (type == IPC_AMD) {
		if (!amd_valid(payload, payload_len))
			return -1;
	} else if (type == IPC_PREWARM) {
		if (payload == NULL || payload_len != sizeof(struct ipc_prewarm) ||
		    memchr(((const struct ipc_prewarm *)payload)->pw_token, '\0',
		    IPC_PREWARM_TOKEN) == NULL)
			return -1;
	} else if (payload_len != 0)
		return -1;

	total = sizeof(h) + payload_len;
	if (total > IPC_MAX_MSG || cap < total)
		return -1;
	h.ih_magic = IPC_MAGIC;
	h.ih_type = (uint16_t)type;
	h.ih_len = (uint32_t)payload_len;
	h.ih_id = id;
	memcpy(o, &h, sizeof(h));
	if (payload_len > 0)
		memcpy(o + sizeof(h), payload, payload_len);
	if (type == IPC_HANDOFF)
		memcpy(o + sizeof(h) + offsetof(struct ipc_handoff, ho_pad),
		    &zero, sizeof(zero));
	return (long)total;
}

/*
 * Runs in the worker for every packet from the master, and treats the
 * master as a peer that may be broken: nothing here trusts a length.
 */
int
ipc_decode(const void *buf, size_t len, int has_fd, struct ipc_hdr *hdr,
    const void **payload, size_t *payload_len)
{
	const unsigned char *b = buf;
	struct ipc_hdr h;
	size_t plen;

	if (buf == NULL || len < sizeof(h) || len > IPC_MAX_MSG)
		return -1;
	memcpy(&h, b, sizeof(h));
	if (h.ih_magic != IPC_MAGIC || h.ih_type == 0 ||
	    h.ih_type >= IPC_TYPE_MAX)
		return -1;
	plen = len - sizeof(h);
	if (h.ih_len != plen)
		return -1;
	if (h.ih_type == IPC_HANDOFF) {
		struct ipc_handoff ho;

		if (has_fd != 1 || plen < sizeof(ho))
			return -1;
		memcpy(&ho, b + sizeof(h), sizeof(ho));
		if (!handoff_valid(&ho, plen))
			return -1;
	} else if (h.ih_type == IPC_RECORD) {
		if (has_fd != 0 || plen == 0)
			return -1;
	} else if (h.ih_type == IPC_AMD) {
		if (has_fd != 0 || !amd_valid(b + sizeof(h), plen))
			return -1;
	} else if (h.ih_type == IPC_PREWARM) {
		/* the token is the struct's first member: no alignment needed */
		if (has_fd != 0 || plen != sizeof(struct ipc_prewarm) ||
		    memchr(b + sizeof(h), '\0', IPC_PREWARM_TOKEN) == NULL)
			return -1;
	} else if (has_fd != 0 || plen != 0)
		return -1;

	if (hdr != NULL)
		*hdr = h;
	if (payload != NULL)
		*payload = plen > 0 ? b + sizeof(h) : NULL;
	if (payload_len != NULL)
		*payload_len = plen;
	return 0;
}
