/*
 * ipc.h — messages on the master/worker channel (one SOCK_SEQPACKET
 * socketpair per worker slot: one message per packet, boundaries kept).
 *
 * Every message is a fixed header and a payload whose exact size the type
 * decides (HANDOFF: the fixed part plus extra bytes).  The reader rejects
 * an unknown type, a length that disagrees with the header or the type, and
 * an fd on a type that carries none (the caller closes it).  Pure codec:
 * sending and receiving (sendmsg/recvmsg with SCM_RIGHTS) live in the roles.
 */
#ifndef VR_PROTO_IPC_H
#define VR_PROTO_IPC_H

#include <stddef.h>
#include <stdint.h>

#define IPC_MAGIC	0x5652	/* "VR" */
#define IPC_MAX_EXTRA	16384	/* bytes the master read past the headers */
#define IPC_MAX_MSG	(sizeof(struct ipc_hdr) + sizeof(struct ipc_handoff) + IPC_MAX_EXTRA)
/* A record's JSON text: the worker cuts what could be longer (an
 * utterance's text) to stay under it. */
#define IPC_MAX_RECORD	(IPC_MAX_MSG - sizeof(struct ipc_hdr))

enum ipc_type {
	IPC_HANDOFF = 1,	/* m->w, carries the client socket */
	IPC_DRAIN,		/* m->w: take no new calls, exit when idle */
	IPC_REOPEN,		/* m->w: reopen the log file */
	IPC_SHUTDOWN,		/* m->w: close every call now (billed), exit */
	IPC_RECORD,		/* w->m: one call record, a JSON object */
	IPC_AMD,		/* m->w: an outbound call's answering-machine
				 * verdict, for the worker holding its stream */
	IPC_PREWARM,		/* m->w: open the model's session for a
				 * stream the webhook just offered */
	IPC_TYPE_MAX
};

struct ipc_hdr {
	uint16_t	ih_magic;
	uint16_t	ih_type;
	uint32_t	ih_len;		/* payload bytes after the header */
	uint64_t	ih_id;		/* handoff id (master's counter) */
};

/* The upgrade request, as the master parsed it.  Strings NUL-terminated. */
struct ipc_handoff {
	char		ho_path[1024];	/* request target, raw */
	char		ho_host[256];
	char		ho_ws_key[64];	/* Sec-WebSocket-Key */
	char		ho_ws_version[8];
	char		ho_signature[64]; /* X-Twilio-Signature, "" if none */
	char		ho_peer[64];	/* "addr:port" */
	uint64_t	ho_accepted_us;	/* mono_us() when the master accepted */
	uint32_t	ho_extra_len;	/* bytes after this struct */
	uint32_t	ho_pad;
};

/* IPC_AMD's payload: exactly this struct, both strings NUL-terminated
 * inside their arrays. */
struct ipc_amd {
	char		ia_call_sid[40];	/* CA + 32 hex */
	char		ia_answered_by[24];	/* human, machine_start, ... */
};

/*
 * A call the webhook admitted: the stream token it put in the Stream URL
 * (the worker verifies it as it would at the upgrade, so this message is
 * trusted no more than the URL) and when the webhook was answered, for
 * the time-to-ready histogram.
 */
#define IPC_PREWARM_TOKEN	512	/* TOKEN_MAX_LEN */
struct ipc_prewarm {
	char		pw_token[IPC_PREWARM_TOKEN];	/* NUL-terminated */
	uint64_t	pw_webhook_us;	/* mono_us() at the webhook */
};

/* Encode a message into out (cap >= IPC_MAX_MSG always fits).  payload may
 * be NULL for types without one; for HANDOFF it is the struct followed by
 * ho_extra_len bytes; for RECORD 1 to IPC_MAX_RECORD bytes of JSON text
 * (not NUL-terminated; the reader parses it and refuses what is not an
 * object); for AMD a struct ipc_amd; for PREWARM a struct ipc_prewarm.
 * Returns the total length, or -1. */
long ipc_encode(void *out, size_t cap, enum ipc_type type, uint64_t id,
    const void *payload, size_t payload_len);

/*
 * Check one received packet buf[0..len) and whether it came with an fd.
 * Returns 0 and sets *hdr (and *payload, *payload_len) if it is well
 * formed; -1 if not (and then, if has_fd, the caller closes the fd).
 * HANDOFF must come with exactly one fd, the others with none; strings
 * inside ipc_handoff must be NUL-terminated; ho_extra_len must match.
 */
int ipc_decode(const void *buf, size_t len, int has_fd, struct ipc_hdr *hdr,
    const void **payload, size_t *payload_len);
const char *ipc_type_name(unsigned type);

#endif
