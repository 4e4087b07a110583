/*
 * test_ipc.c — the master/worker channel codec.
 */
#include "test/unit/test.h"
#include "proto/ipc.h"

#include <stddef.h>

#define HO_SIZE	sizeof(struct ipc_handoff)
#define HDR	sizeof(struct ipc_hdr)

/* A handoff as the master would fill it, followed by extra bytes. */
static size_t
make_handoff(unsigned char *buf, size_t extra)
{
	struct ipc_handoff ho;
	size_t i;

	memset(&ho, 0, sizeof(ho));
	snprintf(ho.ho_path, sizeof(ho.ho_path), "/stream?t=abc");
	snprintf(ho.ho_host, sizeof(ho.ho_host), "relay.example.com");
	snprintf(ho.ho_ws_key, sizeof(ho.ho_ws_key), "dGhlIHNhbXBsZSBub25jZQ==");
	snprintf(ho.ho_ws_version, sizeof(ho.ho_ws_version), "13");
	snprintf(ho.ho_signature, sizeof(ho.ho_signature), "c2lnbmF0dXJl");
	snprintf(ho.ho_peer, sizeof(ho.ho_peer), "203.0.113.9:40211");
	ho.ho_accepted_us = 1234567890123ULL;
	ho.ho_extra_len = (uint32_t)extra;
	memcpy(buf, &ho, sizeof(ho));
	for (i = 0; i < extra; i++)
		buf[sizeof(ho) + i] = (unsigned char)(i * 7 + 1);
	return sizeof(ho) + extra;
}

static unsigned char *
msg_buf(void)
{
	unsigned char *b = malloc(IPC_MAX_MSG + 64);

	ASSERT_NOT_NULL(b);
	memset(b, 0xa5, IPC_MAX_MSG + 64);
	return b;
}

TEST(ipc_layout)
{
	ASSERT_UEQ(HDR, 16);
	ASSERT_UEQ(HO_SIZE, 1496);
	ASSERT_UEQ(IPC_MAX_MSG, 16 + 1496 + 16384);
	ASSERT_STR_EQ(ipc_type_name(IPC_HANDOFF), "handoff");
	ASSERT_STR_EQ(ipc_type_name(IPC_DRAIN), "drain");
	ASSERT_STR_EQ(ipc_type_name(IPC_REOPEN), "reopen");
	ASSERT_STR_EQ(ipc_type_name(IPC_SHUTDOWN), "shutdown");
	ASSERT_STR_EQ(ipc_type_name(IPC_RECORD), "record");
	ASSERT_STR_EQ(ipc_type_name(IPC_AMD), "amd");
	ASSERT_UEQ(sizeof(struct ipc_amd), 64);
	ASSERT_STR_EQ(ipc_type_name(IPC_PREWARM), "prewarm");
	ASSERT_UEQ(sizeof(struct ipc_prewarm), 520);
	ASSERT_STR_EQ(ipc_type_name(0), "unknown");
	ASSERT_STR_EQ(ipc_type_name(IPC_TYPE_MAX), "unknown");
	ASSERT_STR_EQ(ipc_type_name(0xffffffffu), "unknown");
}

TEST(ipc_round_trip_simple)
{
	static const enum ipc_type types[] = { IPC_DRAIN, IPC_REOPEN,
	    IPC_SHUTDOWN };
	unsigned char buf[64];
	struct ipc_hdr h;
	const void *p = buf;
	size_t plen = 99;
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		long n = ipc_encode(buf, sizeof(buf), types[i], 77 + i, NULL, 0);

		ASSERT_EQ(n, (long)HDR);
		ASSERT_EQ(ipc_decode(buf, (size_t)n, 0, &h, &p, &plen), 0);
		ASSERT_EQ(h.ih_magic, IPC_MAGIC);
		ASSERT_EQ(h.ih_type, types[i]);
		ASSERT_EQ(h.ih_len, 0);
		ASSERT_UEQ(h.ih_id, 77 + i);
		ASSERT_NULL(p);
		ASSERT_UEQ(plen, 0);
		/* a non-NULL payload with length 0 is the same thing */
		ASSERT_EQ(ipc_encode(buf, sizeof(buf), types[i], 1, buf, 0),
		    (long)HDR);
		/* output arguments are optional */
		ASSERT_EQ(ipc_decode(buf, HDR, 0, NULL, NULL, NULL), 0);
	}
}

TEST(ipc_record)
{
	static unsigned char buf[IPC_MAX_MSG + 8], big[IPC_MAX_MSG];
	const char *js = "{\"type\":\"status\"}";
	struct ipc_hdr h;
	const void *p;
	size_t plen;
	long n;

	n = ipc_encode(buf, sizeof(buf), IPC_RECORD, 5, js, strlen(js));
	ASSERT_EQ(n, (long)(sizeof(h) + strlen(js)));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 0, &h, &p, &plen), 0);
	ASSERT_EQ(h.ih_type, IPC_RECORD);
	ASSERT_EQ(plen, strlen(js));
	ASSERT(memcmp(p, js, plen) == 0);
	/* with a descriptor, or empty: refused both ways */
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, &h, &p, &plen), -1);
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_RECORD, 5, js, 0), -1);
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_RECORD, 5, NULL, 3), -1);
	memset(big, 'x', sizeof(big));
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_RECORD, 5, big,
	    IPC_MAX_RECORD), (long)IPC_MAX_MSG);
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_RECORD, 5, big,
	    IPC_MAX_RECORD + 1), -1);
	h.ih_magic = IPC_MAGIC;
	h.ih_type = IPC_RECORD;
	h.ih_len = 0;
	h.ih_id = 0;
	memcpy(buf, &h, sizeof(h));
	ASSERT_EQ(ipc_decode(buf, sizeof(h), 0, NULL, NULL, NULL), -1);
}

TEST(ipc_amd)
{
	unsigned char buf[256];
	struct ipc_amd a, back;
	struct ipc_hdr h;
	const void *p;
	size_t plen;
	long n;

	memset(&a, 0, sizeof(a));
	memcpy(a.ia_call_sid, "CA0123456789abcdef0123456789abcdef", 35);
	memcpy(a.ia_answered_by, "human", 6);
	n = ipc_encode(buf, sizeof(buf), IPC_AMD, 0, &a, sizeof(a));
	ASSERT_EQ(n, (long)(HDR + sizeof(a)));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 0, &h, &p, &plen), 0);
	ASSERT_EQ(h.ih_type, IPC_AMD);
	ASSERT_UEQ(plen, sizeof(a));
	memcpy(&back, p, sizeof(back));
	ASSERT_STR_EQ(back.ia_call_sid, a.ia_call_sid);
	ASSERT_STR_EQ(back.ia_answered_by, "human");
	/* with a descriptor, short, long: refused */
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, &h, &p, &plen), -1);
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_AMD, 0, &a, sizeof(a) - 1), -1);
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_AMD, 0, NULL, 0), -1);
	h.ih_len = sizeof(a) - 1;
	memcpy(buf, &h, sizeof(h));
	ASSERT_EQ(ipc_decode(buf, (size_t)n - 1, 0, NULL, NULL, NULL), -1);
	/* a string not terminated inside its array: refused both ways */
	memset(a.ia_answered_by, 'x', sizeof(a.ia_answered_by));
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_AMD, 0, &a, sizeof(a)), -1);
	h.ih_len = sizeof(a);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &a, sizeof(a));
	ASSERT_EQ(ipc_decode(buf, HDR + sizeof(a), 0, NULL, NULL, NULL), -1);
	memcpy(a.ia_answered_by, "human", 6);
	memset(a.ia_call_sid, 'C', sizeof(a.ia_call_sid));
	memcpy(buf + sizeof(h), &a, sizeof(a));
	ASSERT_EQ(ipc_decode(buf, HDR + sizeof(a), 0, NULL, NULL, NULL), -1);
}

TEST(ipc_prewarm)
{
	unsigned char buf[1024];
	struct ipc_prewarm pw, back;
	struct ipc_hdr h;
	const void *p;
	size_t plen;
	long n;

	memset(&pw, 0, sizeof(pw));
	memset(pw.pw_token, 'A', sizeof(pw.pw_token) - 1);	/* the longest */
	pw.pw_webhook_us = 123456789;
	n = ipc_encode(buf, sizeof(buf), IPC_PREWARM, 0, &pw, sizeof(pw));
	ASSERT_EQ(n, (long)(HDR + sizeof(pw)));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 0, &h, &p, &plen), 0);
	ASSERT_EQ(h.ih_type, IPC_PREWARM);
	ASSERT_UEQ(plen, sizeof(pw));
	memcpy(&back, p, sizeof(back));
	ASSERT_UEQ(strlen(back.pw_token), sizeof(pw.pw_token) - 1);
	ASSERT_UEQ(back.pw_webhook_us, 123456789);
	/* with a descriptor, short, without a payload: refused */
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, &h, &p, &plen), -1);
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_PREWARM, 0, &pw,
	    sizeof(pw) - 1), -1);
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_PREWARM, 0, NULL, 0), -1);
	h.ih_len = sizeof(pw) - 1;
	memcpy(buf, &h, sizeof(h));
	ASSERT_EQ(ipc_decode(buf, (size_t)n - 1, 0, NULL, NULL, NULL), -1);
	/* a token not terminated inside its array: refused both ways */
	memset(pw.pw_token, 'A', sizeof(pw.pw_token));
	ASSERT_EQ(ipc_encode(buf, sizeof(buf), IPC_PREWARM, 0, &pw,
	    sizeof(pw)), -1);
	h.ih_len = sizeof(pw);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &pw, sizeof(pw));
	ASSERT_EQ(ipc_decode(buf, HDR + sizeof(pw), 0, NULL, NULL, NULL), -1);
}

TEST(ipc_round_trip_handoff)
{
	static const size_t extras[] = { 0, 1, 7, 100, 4096, IPC_MAX_EXTRA };
	unsigned char *in = msg_buf(), *buf = msg_buf();
	struct ipc_handoff ho;
	struct ipc_hdr h;
	const void *p;
	size_t plen, i;

	for (i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
		size_t len = make_handoff(in, extras[i]);
		long n = ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF,
		    UINT64_MAX - i, in, len);

		ASSERT_EQ(n, (long)(HDR + len));
		ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, &h, &p, &plen), 0);
		ASSERT_EQ(h.ih_type, IPC_HANDOFF);
		ASSERT_UEQ(h.ih_id, UINT64_MAX - i);
		ASSERT_UEQ(h.ih_len, len);
		ASSERT_UEQ(plen, len);
		ASSERT(p == buf + HDR);
		ASSERT_MEM_EQ(p, in, len);
		memcpy(&ho, p, sizeof(ho));
		ASSERT_STR_EQ(ho.ho_path, "/stream?t=abc");
		ASSERT_STR_EQ(ho.ho_ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
		ASSERT_STR_EQ(ho.ho_peer, "203.0.113.9:40211");
		ASSERT_UEQ(ho.ho_accepted_us, 1234567890123ULL);
		ASSERT_UEQ(ho.ho_extra_len, extras[i]);
	}
	/* the largest message is exactly IPC_MAX_MSG and fits that cap */
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 1, in,
	    make_handoff(in, IPC_MAX_EXTRA)), (long)IPC_MAX_MSG);
	free(in);
	free(buf);
}

/* Strings filled to the last byte before their NUL are fine. */
TEST(ipc_handoff_full_strings)
{
	unsigned char *buf = msg_buf();
	struct ipc_handoff ho;
	long n;

	memset(&ho, 'x', sizeof(ho));
	ho.ho_path[sizeof(ho.ho_path) - 1] = '\0';
	ho.ho_host[sizeof(ho.ho_host) - 1] = '\0';
	ho.ho_ws_key[sizeof(ho.ho_ws_key) - 1] = '\0';
	ho.ho_ws_version[sizeof(ho.ho_ws_version) - 1] = '\0';
	ho.ho_signature[sizeof(ho.ho_signature) - 1] = '\0';
	ho.ho_peer[sizeof(ho.ho_peer) - 1] = '\0';
	ho.ho_extra_len = 0;
	/* ho_pad is 'xxxx': the encoder zeroes it on the wire */
	n = ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 5, &ho, sizeof(ho));
	ASSERT_EQ(n, (long)(HDR + sizeof(ho)));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), 0);
	memcpy(&ho, buf + HDR, sizeof(ho));
	ASSERT_EQ(ho.ho_pad, 0);
	ASSERT_EQ(strlen(ho.ho_host), sizeof(ho.ho_host) - 1);
	free(buf);
}

TEST(ipc_every_truncation)
{
	unsigned char *in = msg_buf(), *buf = msg_buf();
	size_t len, cut;
	long n;

	len = make_handoff(in, 300);
	n = ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 9, in, len);
	ASSERT_GT(n, 0);
	for (cut = 0; cut < (size_t)n; cut++)
		if (ipc_decode(buf, cut, 1, NULL, NULL, NULL) != -1)
			TEST_FAIL_("handoff cut at %zu of %ld accepted", cut, n);
	/* a consistent header over a shortened payload is refused too */
	for (cut = HDR; cut < (size_t)n; cut++) {
		struct ipc_hdr h;

		memcpy(&h, buf, HDR);
		h.ih_len = (uint32_t)(cut - HDR);
		memcpy(buf, &h, HDR);
		if (ipc_decode(buf, cut, 1, NULL, NULL, NULL) != -1)
			TEST_FAIL_("handoff relabelled at %zu accepted", cut);
	}
	n = ipc_encode(buf, IPC_MAX_MSG, IPC_DRAIN, 9, NULL, 0);
	for (cut = 0; cut < (size_t)n; cut++)
		ASSERT_EQ(ipc_decode(buf, cut, 0, NULL, NULL, NULL), -1);
	ASSERT_EQ(ipc_decode(NULL, 0, 0, NULL, NULL, NULL), -1);
	free(in);
	free(buf);
}

TEST(ipc_encode_cap)
{
	unsigned char *in = msg_buf(), *buf = msg_buf();
	size_t len = make_handoff(in, 10), cap;

	for (cap = 0; cap < HDR + len; cap++)
		ASSERT_EQ(ipc_encode(buf, cap, IPC_HANDOFF, 1, in, len), -1);
	ASSERT_EQ(ipc_encode(buf, cap, IPC_HANDOFF, 1, in, len),
	    (long)(HDR + len));
	for (cap = 0; cap < HDR; cap++)
		ASSERT_EQ(ipc_encode(buf, cap, IPC_REOPEN, 1, NULL, 0), -1);
	ASSERT_EQ(ipc_encode(NULL, 100, IPC_REOPEN, 1, NULL, 0), -1);
	free(in);
	free(buf);
}

TEST(ipc_encode_refuses)
{
	unsigned char *in = msg_buf(), *buf = msg_buf();
	struct ipc_handoff ho;
	size_t len = make_handoff(in, 10);

	/* unknown types */
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, 0, 1, NULL, 0), -1);
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, IPC_TYPE_MAX, 1, NULL, 0), -1);
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, (enum ipc_type)-1, 1, NULL, 0),
	    -1);
	/* a payload on a type without one */
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, IPC_DRAIN, 1, in, 4), -1);
	/* handoff: no payload, short, lengths disagreeing */
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 1, NULL, 0), -1);
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 1, NULL, len), -1);
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 1, in, HO_SIZE - 1),
	    -1);
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 1, in, len - 1), -1);
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 1, in, len + 1), -1);
	/* too much extra */
	len = make_handoff(in, IPC_MAX_EXTRA + 1);
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG + 64, IPC_HANDOFF, 1, in, len),
	    -1);
	/* an unterminated string */
	len = make_handoff(in, 0);
	memcpy(&ho, in, sizeof(ho));
	memset(ho.ho_ws_version, '1', sizeof(ho.ho_ws_version));
	ASSERT_EQ(ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 1, &ho, len), -1);
	free(in);
	free(buf);
}

static void
put_hdr(unsigned char *buf, uint16_t magic, uint16_t type, uint32_t len,
    uint64_t id)
{
	struct ipc_hdr h = { magic, type, len, id };

	memcpy(buf, &h, sizeof(h));
}

TEST(ipc_decode_bad_header)
{
	unsigned char *buf = msg_buf(), *in = msg_buf();
	size_t len;
	unsigned t;

	put_hdr(buf, IPC_MAGIC, IPC_DRAIN, 0, 1);
	ASSERT_EQ(ipc_decode(buf, HDR, 0, NULL, NULL, NULL), 0);
	/* magic: every other value of each byte */
	put_hdr(buf, 0x5256, IPC_DRAIN, 0, 1);
	ASSERT_EQ(ipc_decode(buf, HDR, 0, NULL, NULL, NULL), -1);
	put_hdr(buf, 0, IPC_DRAIN, 0, 1);
	ASSERT_EQ(ipc_decode(buf, HDR, 0, NULL, NULL, NULL), -1);
	put_hdr(buf, IPC_MAGIC ^ 0x0100, IPC_DRAIN, 0, 1);
	ASSERT_EQ(ipc_decode(buf, HDR, 0, NULL, NULL, NULL), -1);
	/* types */
	for (t = 0; t < 0x10000; t++) {
		int want = (t == IPC_DRAIN || t == IPC_REOPEN ||
		    t == IPC_SHUTDOWN) ? 0 : -1;	/* RECORD: not empty */

		put_hdr(buf, IPC_MAGIC, (uint16_t)t, 0, 1);
		ASSERT_EQ(ipc_decode(buf, HDR, 0, NULL, NULL, NULL), want);
	}
	/* a length that disagrees with the packet */
	put_hdr(buf, IPC_MAGIC, IPC_DRAIN, 1, 1);
	ASSERT_EQ(ipc_decode(buf, HDR, 0, NULL, NULL, NULL), -1);
	ASSERT_EQ(ipc_decode(buf, HDR + 1, 0, NULL, NULL, NULL), -1);
	put_hdr(buf, IPC_MAGIC, IPC_DRAIN, 0, 1);
	ASSERT_EQ(ipc_decode(buf, HDR + 1, 0, NULL, NULL, NULL), -1);
	put_hdr(buf, IPC_MAGIC, IPC_REOPEN, 0xffffffffu, 1);
	ASSERT_EQ(ipc_decode(buf, HDR, 0, NULL, NULL, NULL), -1);
	/* a packet longer than any message */
	len = make_handoff(in, IPC_MAX_EXTRA);
	put_hdr(buf, IPC_MAGIC, IPC_HANDOFF, (uint32_t)(len + 1), 1);
	memcpy(buf + HDR, in, len);
	ASSERT_EQ(ipc_decode(buf, HDR + len + 1, 1, NULL, NULL, NULL), -1);
	free(buf);
	free(in);
}

TEST(ipc_decode_handoff_fields)
{
	unsigned char *in = msg_buf(), *buf = msg_buf();
	struct ipc_handoff ho;
	size_t len = make_handoff(in, 50);
	long n = ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 3, in, len);
	unsigned char *saved = msg_buf();
	static const struct {
		size_t off, size;
	} strs[] = {
		{ offsetof(struct ipc_handoff, ho_path), 1024 },
		{ offsetof(struct ipc_handoff, ho_host), 256 },
		{ offsetof(struct ipc_handoff, ho_ws_key), 64 },
		{ offsetof(struct ipc_handoff, ho_ws_version), 8 },
		{ offsetof(struct ipc_handoff, ho_signature), 64 },
		{ offsetof(struct ipc_handoff, ho_peer), 64 },
	};
	size_t i;

	ASSERT_GT(n, 0);
	memcpy(saved, buf, (size_t)n);
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), 0);

	/* each string, unterminated */
	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		memcpy(buf, saved, (size_t)n);
		memset(buf + HDR + strs[i].off, 'A', strs[i].size);
		if (ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL) != -1)
			TEST_FAIL_("unterminated string %zu accepted", i);
		/* a NUL in the last byte is enough */
		buf[HDR + strs[i].off + strs[i].size - 1] = '\0';
		ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), 0);
	}

	/* ho_extra_len disagreeing with the packet, or past the cap */
	memcpy(buf, saved, (size_t)n);
	memcpy(&ho, buf + HDR, sizeof(ho));
	ho.ho_extra_len = 49;
	memcpy(buf + HDR, &ho, sizeof(ho));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), -1);
	ho.ho_extra_len = 51;
	memcpy(buf + HDR, &ho, sizeof(ho));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), -1);
	ho.ho_extra_len = 0xffffffffu;
	memcpy(buf + HDR, &ho, sizeof(ho));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), -1);
	/* the padding must be zero */
	ho.ho_extra_len = 50;
	ho.ho_pad = 1;
	memcpy(buf + HDR, &ho, sizeof(ho));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), -1);
	ho.ho_pad = 0;
	memcpy(buf + HDR, &ho, sizeof(ho));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), 0);
	/* a handoff shorter than its fixed part, with a matching header */
	put_hdr(buf, IPC_MAGIC, IPC_HANDOFF, (uint32_t)HO_SIZE - 1, 3);
	ASSERT_EQ(ipc_decode(buf, HDR + HO_SIZE - 1, 1, NULL, NULL, NULL), -1);
	put_hdr(buf, IPC_MAGIC, IPC_HANDOFF, 0, 3);
	ASSERT_EQ(ipc_decode(buf, HDR, 1, NULL, NULL, NULL), -1);
	free(in);
	free(buf);
	free(saved);
}

TEST(ipc_fd_rules)
{
	unsigned char *in = msg_buf(), *buf = msg_buf();
	size_t len = make_handoff(in, 0);
	long n;
	struct ipc_hdr h = { 0, 0, 0, 0 };

	n = ipc_encode(buf, IPC_MAX_MSG, IPC_HANDOFF, 1, in, len);
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, &h, NULL, NULL), 0);
	ASSERT_EQ(h.ih_type, IPC_HANDOFF);
	/* a handoff without its fd, or with more than one */
	memset(&h, 0, sizeof(h));
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 0, &h, NULL, NULL), -1);
	ASSERT_EQ(h.ih_type, 0);	/* nothing set on failure */
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 2, NULL, NULL, NULL), -1);
	/* an fd on a type that carries none */
	n = ipc_encode(buf, IPC_MAX_MSG, IPC_SHUTDOWN, 1, NULL, 0);
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 0, NULL, NULL, NULL), 0);
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), -1);
	n = ipc_encode(buf, IPC_MAX_MSG, IPC_DRAIN, 1, NULL, 0);
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), -1);
	n = ipc_encode(buf, IPC_MAX_MSG, IPC_REOPEN, 1, NULL, 0);
	ASSERT_EQ(ipc_decode(buf, (size_t)n, 1, NULL, NULL, NULL), -1);
	free(in);
	free(buf);
}

/* Buffers need no alignment on either side. */
TEST(ipc_unaligned)
{
	unsigned char *in = msg_buf(), *buf = msg_buf();
	size_t len = make_handoff(in + 1, 33), plen;
	const void *p;
	struct ipc_hdr h;
	long n;

	n = ipc_encode(buf + 3, IPC_MAX_MSG, IPC_HANDOFF, 42, in + 1, len);
	ASSERT_EQ(n, (long)(HDR + len));
	ASSERT_EQ(ipc_decode(buf + 3, (size_t)n, 1, &h, &p, &plen), 0);
	ASSERT_UEQ(h.ih_id, 42);
	ASSERT_MEM_EQ(p, in + 1, len);
	free(in);
	free(buf);
}

/* Random damage to a valid handoff is refused or, if accepted, still
 * passes every check a reader relies on. */
TEST(ipc_random_damage)
{
	unsigned char *in = msg_buf(), *buf = msg_buf(), *good = msg_buf();
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t len = make_handoff(in, 20);
	long n = ipc_encode(good, IPC_MAX_MSG, IPC_HANDOFF, 8, in, len);
	int i, k;

	ASSERT_GT(n, 0);
	for (i = 0; i < 20000; i++) {
		struct ipc_hdr h;
		struct ipc_handoff ho;
		const void *p;
		size_t plen, blen = (size_t)n;

		memcpy(buf, good, (size_t)n);
		for (k = 0; k < 1 + i % 4; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[x % (size_t)n] = (unsigned char)(x >> 40);
		}
		if (i % 3 == 0)
			blen = (size_t)((x >> 20) % ((size_t)n + 8));
		if (ipc_decode(buf, blen, 1, &h, &p, &plen) != 0)
			continue;
		ASSERT_EQ(h.ih_magic, IPC_MAGIC);
		ASSERT_EQ(h.ih_type, IPC_HANDOFF);
		ASSERT_UEQ(plen, blen - HDR);
		memcpy(&ho, p, sizeof(ho));
		ASSERT_UEQ(HO_SIZE + ho.ho_extra_len, plen);
		ASSERT_LT(strlen(ho.ho_path), sizeof(ho.ho_path));
		ASSERT_LT(strlen(ho.ho_peer), sizeof(ho.ho_peer));
	}
	free(in);
	free(buf);
	free(good);
}
