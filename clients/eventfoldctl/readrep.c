/* SPDX-License-Identifier: MIT */
/*
 * readrep.c - export's decoder of READ replies (READ_ALL, READ_STREAM):
 * from the reply message's bytes straight to event views.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "readrep.h"
#include "record.h"

/*
 * A READ reply is decoded straight from the message's bytes into
 * event views, rather than by ipc_reply_open() (a well-formedness pass,
 * then msgpack objects for every field of every event, then
 * ipc_event_decode()): that was a fifth of export's CPU. The same
 * checks: the envelope [status, message, [events, head, last]], each
 * event [event_id, stream_id, stream_version, global_position,
 * event_type, metadata, payload, recorded_at] with uuids of 16 bytes,
 * a type of at most RECORD_TYPE_MAX bytes, metadata and payload bin or
 * nil of at most RECORD_MAX, every length checked against the bytes
 * left, nothing after the reply. Integers are the unsigned encodings
 * stored writes (msgpack_pack_uint64). A reply that is not OK goes
 * through ipc_reply_open() for its status and message.
 */
struct cur {
	const uint8_t *p, *end;
};

/* n bytes (1, 2, 4 or 8: a msgpack length or integer) big-endian. */
static inline int
cur_be(struct cur *c, unsigned n, uint64_t *v)
{
	uint64_t x8;
	uint32_t x4;
	uint16_t x2;

	if ((size_t)(c->end - c->p) < n)
		return -1;
	switch (n) {
	case 1:
		*v = c->p[0];
		break;
	case 2:
		memcpy(&x2, c->p, 2);
		*v = be16toh(x2);
		break;
	case 4:
		memcpy(&x4, c->p, 4);
		*v = be32toh(x4);
		break;
	default:
		memcpy(&x8, c->p, 8);
		*v = be64toh(x8);
	}
	c->p += n;
	return 0;
}

static int
cur_array(struct cur *c, uint64_t *n)
{
	uint8_t b;

	if (c->p >= c->end)
		return -1;
	b = *c->p++;
	if ((b & 0xf0) == 0x90) {
		*n = b & 0x0f;
		return 0;
	}
	return b == 0xdc ? cur_be(c, 2, n) : b == 0xdd ? cur_be(c, 4, n) : -1;
}

static inline int
cur_u64(struct cur *c, uint64_t *v)
{
	uint8_t b;

	if (c->p >= c->end)
		return -1;
	b = *c->p++;
	if (b <= 0x7f) {
		*v = b;
		return 0;
	}
	if (b < 0xcc || b > 0xcf)
		return -1;
	return cur_be(c, 1u << (b - 0xcc), v);
}

/* A str (str set) or bin of at most max bytes; nil as no bytes if
 * nil_ok. */
static inline int
cur_bytes(struct cur *c, int str, int nil_ok, uint64_t max, const uint8_t **p,
    uint32_t *n)
{
	uint64_t len;
	uint8_t b;

	if (c->p >= c->end)
		return -1;
	b = *c->p++;
	if (b == 0xc0 && nil_ok) {
		*p = NULL;
		*n = 0;
		return 0;
	}
	if (str && (b & 0xe0) == 0xa0)
		len = b & 0x1f;
	else if (str && b >= 0xd9 && b <= 0xdb) {
		if (cur_be(c, 1u << (b - 0xd9), &len) != 0)
			return -1;
	} else if (!str && b >= 0xc4 && b <= 0xc6) {
		if (cur_be(c, 1u << (b - 0xc4), &len) != 0)
			return -1;
	} else
		return -1;
	if (len > max || (uint64_t)(c->end - c->p) < len)
		return -1;
	*p = c->p;
	*n = (uint32_t)len;
	c->p += len;
	return 0;
}

static inline int
cur_uuid(struct cur *c, uint8_t out[UUID_LEN])
{
	const uint8_t *p;
	uint32_t n;

	/* bin 8 of 16 bytes, the form stored writes */
	if (c->end - c->p >= 2 + UUID_LEN && c->p[0] == 0xc4 &&
	    c->p[1] == UUID_LEN) {
		memcpy(out, c->p + 2, UUID_LEN);
		c->p += 2 + UUID_LEN;
		return 0;
	}
	if (cur_bytes(c, 0, 0, UUID_LEN, &p, &n) != 0 || n != UUID_LEN)
		return -1;
	memcpy(out, p, UUID_LEN);
	return 0;
}

#define EVENT_MIN_WIRE 44 /* the smallest event on the wire, in bytes */

/* The body of an OK reply: its events into ev[0..*n) (views into the
 * message) and its head. 0, or -1 naming the bad part in *why. */
static int
body_decode(struct cur *c, struct ef_event **evp, uint64_t *np, uint64_t *head,
    const char **why)
{
	struct ef_event *ev;
	const uint8_t *p;
	uint64_t n, k, f, last;
	uint32_t len;

	*why = "read reply";
	if (cur_array(c, &n) != 0 || n != 3 || cur_array(c, &n) != 0 ||
	    n > (uint64_t)(c->end - c->p) / EVENT_MIN_WIRE)
		return -1;
	if ((ev = *evp = malloc((n ? n : 1) * sizeof(*ev))) == NULL) {
		*why = "out of memory";
		return -1;
	}
	for (k = 0; k < n; k++, ev++) {
		*why = "event";
		if (cur_array(c, &f) != 0 || f != 8)
			return -1;
		*why = "event_id";
		if (cur_uuid(c, ev->event_id) != 0)
			return -1;
		*why = "stream_id";
		if (cur_uuid(c, ev->stream_id) != 0)
			return -1;
		*why = "stream_version";
		if (cur_u64(c, &ev->stream_version) != 0)
			return -1;
		*why = "global_position";
		if (cur_u64(c, &ev->global_position) != 0)
			return -1;
		*why = "event_type";
		if (cur_bytes(c, 1, 0, RECORD_TYPE_MAX, &p, &len) != 0)
			return -1;
		ev->type = (const char *)p;
		ev->type_len = len;
		*why = "metadata";
		if (cur_bytes(c, 0, 1, RECORD_MAX, &ev->metadata,
		        &ev->metadata_len) != 0)
			return -1;
		*why = "payload";
		if (cur_bytes(c, 0, 1, RECORD_MAX, &ev->payload,
		        &ev->payload_len) != 0)
			return -1;
		*why = "recorded_at";
		if (cur_u64(c, &ev->recorded_at) != 0)
			return -1;
	}
	*why = "head";
	if (cur_u64(c, head) != 0)
		return -1;
	*why = "last_version";
	if (c->p < c->end && *c->p == 0xc0)
		c->p++;
	else if (cur_u64(c, &last) != 0)
		return -1;
	*why = "bytes after the reply";
	if (c->p != c->end)
		return -1;
	*np = n;
	return 0;
}

int
readrep_decode(const void *buf, size_t len, struct ef_event **ev, uint64_t *n,
    uint64_t *head, const char **why)
{
	struct cur c = { buf, (const uint8_t *)buf + len };
	const uint8_t *msg;
	uint64_t f, st;
	uint32_t mlen;

	*ev = NULL;
	*n = 0;
	if (cur_array(&c, &f) != 0 || f != 3 || cur_u64(&c, &st) != 0 ||
	    st != EF_S_OK ||
	    cur_bytes(&c, 1, 0, IPC_MAX_STRLEN, &msg, &mlen) != 0)
		return 1;
	if (body_decode(&c, ev, n, head, why) != 0) {
		free(*ev);
		*ev = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}
