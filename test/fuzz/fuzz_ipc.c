/*
 * fuzz_ipc.c — proto/ipc.c: master/worker channel messages.
 *
 * Input: a mode byte, then one packet.  Checked:
 *  - ipc_decode() of the packet, with 0, 1 or 2 descriptors, accepts only
 *    a packet whose header says its length, a known type, a descriptor
 *    exactly for HANDOFF, and (for HANDOFF) terminated strings, zero
 *    padding and the extra length that is there;
 *  - a packet it accepts, encoded again with ipc_encode() from what it
 *    returned, is the same bytes;
 *  - the packet read as a payload for each type, encoded and decoded,
 *    round-trips, or ipc_encode() refuses what ipc_decode() would.
 */
#include "test/fuzz/fuzz.h"

#include <stddef.h>

#include "proto/ipc.h"

FUZZ_TARGET("ipc");

#define TERMINATED(ho, f) (memchr((ho)->f, '\0', sizeof((ho)->f)) != NULL)

/* The decoder's rules, written out again. */
static int
ref_ok(const uint8_t *b, size_t len, int nfd)
{
	struct ipc_hdr h;
	struct ipc_handoff ho;

	if (len < sizeof(h) || len > IPC_MAX_MSG)
		return 0;
	memcpy(&h, b, sizeof(h));
	if (h.ih_magic != IPC_MAGIC || h.ih_type < IPC_HANDOFF ||
	    h.ih_type >= IPC_TYPE_MAX || h.ih_len != len - sizeof(h))
		return 0;
	if (h.ih_type == IPC_RECORD)
		return nfd == 0 && h.ih_len > 0;
	if (h.ih_type == IPC_AMD) {
		struct ipc_amd a;

		if (nfd != 0 || h.ih_len != sizeof(a))
			return 0;
		memcpy(&a, b + sizeof(h), sizeof(a));
		return TERMINATED(&a, ia_call_sid) &&
		    TERMINATED(&a, ia_answered_by);
	}
	if (h.ih_type == IPC_PREWARM)
		return nfd == 0 && h.ih_len == sizeof(struct ipc_prewarm) &&
		    memchr(b + sizeof(h), '\0', IPC_PREWARM_TOKEN) != NULL;
	if (h.ih_type != IPC_HANDOFF)
		return nfd == 0 && h.ih_len == 0;
	if (nfd != 1 || h.ih_len < sizeof(ho))
		return 0;
	memcpy(&ho, b + sizeof(h), sizeof(ho));
	return ho.ho_pad == 0 && ho.ho_extra_len == h.ih_len - sizeof(ho) &&
	    ho.ho_extra_len <= IPC_MAX_EXTRA &&
	    TERMINATED(&ho, ho_path) && TERMINATED(&ho, ho_host) &&
	    TERMINATED(&ho, ho_ws_key) && TERMINATED(&ho, ho_ws_version) &&
	    TERMINATED(&ho, ho_signature) && TERMINATED(&ho, ho_peer);
}

static void
check_decode(const uint8_t *p, size_t len, int nfd, uint8_t *out)
{
	struct ipc_hdr h;
	const void *pl = NULL;
	size_t plen = 0;
	long n;
	int rc;

	rc = ipc_decode(p, len, nfd, &h, &pl, &plen);
	FUZZ_ASSERT(rc == 0 || rc == -1);
	FUZZ_ASSERT((rc == 0) == ref_ok(p, len, nfd));
	if (rc != 0)
		return;
	FUZZ_ASSERT(strcmp(ipc_type_name(h.ih_type), "unknown") != 0);
	FUZZ_ASSERT(plen == len - sizeof(h) && plen == h.ih_len);
	FUZZ_ASSERT(plen == 0 ? pl == NULL :
	    (const uint8_t *)pl == p + sizeof(h));
	n = ipc_encode(out, IPC_MAX_MSG, (enum ipc_type)h.ih_type, h.ih_id,
	    pl, plen);
	FUZZ_ASSERT(n > 0 && (size_t)n == len);
	FUZZ_ASSERT(memcmp(out, p, len) == 0);
	/* and with a buffer one byte short */
	FUZZ_ASSERT(ipc_encode(out, len - 1, (enum ipc_type)h.ih_type,
	    h.ih_id, pl, plen) == -1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_u8(&in);
	uint8_t *p = fuzz_dup(in.p, in.n), *out, *again;
	struct ipc_handoff ho;
	long n;

	if ((out = malloc(IPC_MAX_MSG)) == NULL ||
	    (again = malloc(IPC_MAX_MSG)) == NULL)
		abort();
	for (int nfd = 0; nfd <= 2; nfd++)
		check_decode(p, in.n, nfd, out);

	/* the input as a payload */
	for (int type = 0; type <= IPC_TYPE_MAX; type++) {
		size_t plen = type == IPC_HANDOFF || (mode & 1) ? in.n : 0;

		if (type == IPC_HANDOFF && plen >= sizeof(ho)) {
			/* a payload that can pass: fix the extra length */
			memcpy(&ho, p, sizeof(ho));
			if (mode & 2) {
				ho.ho_extra_len = (uint32_t)(plen - sizeof(ho));
				memcpy(p, &ho, sizeof(ho));
			}
		}
		n = ipc_encode(out, IPC_MAX_MSG, (enum ipc_type)type,
		    mode * 0x0101010101010101ULL, plen ? p : NULL, plen);
		FUZZ_ASSERT(n == -1 || (size_t)n == sizeof(struct ipc_hdr) + plen);
		if (n > 0) {
			FUZZ_ASSERT(ref_ok(out, (size_t)n,
			    type == IPC_HANDOFF));
			check_decode(out, (size_t)n, type == IPC_HANDOFF, again);
		} else if (type > 0 && type < IPC_TYPE_MAX &&
		    plen <= IPC_MAX_MSG - sizeof(struct ipc_hdr)) {
			/* refused: what ipc_decode() would refuse too (the
			 * encoder zeroes the padding, so set it first) */
			struct ipc_hdr h = { IPC_MAGIC, (uint16_t)type,
			    (uint32_t)plen, 0 };

			memcpy(again, &h, sizeof(h));
			if (plen > 0)
				memcpy(again + sizeof(h), p, plen);
			if (type == IPC_HANDOFF && plen >= sizeof(ho))
				memset(again + sizeof(h) +
				    offsetof(struct ipc_handoff, ho_pad), 0,
				    sizeof(ho.ho_pad));
			FUZZ_ASSERT(!ref_ok(again, sizeof(h) + plen,
			    type == IPC_HANDOFF));
		}
	}
	free(out);
	free(again);
	free(p);
	return 0;
}
