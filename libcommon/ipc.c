/* SPDX-License-Identifier: MIT */
/*
 * ipc.c - msgpack encoders and strict decoders for every IPC message
 * (see ipc.h and proto/IPC.md). Before msgpack-c builds an object tree,
 * ipc_precheck() walks the raw bytes and refuses any count that the
 * message is too short to hold, so a hostile peer cannot make the
 * unpacker allocate far more than it sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "ipc.h"
#include "ipc_field.h"
#include "log.h"

#define IPC_MAX_OBJECTS (4u << 20)

static const struct {
	const char *name;
	const char *text;
	int grpc;
} status_table[EF_S__COUNT] = {
#define X(name, num, grpc, str) [num] = { #name, str, grpc },
	EF_STATUSES(X)
#undef X
};

const char *
ipc_op_name(int op)
{
	switch (op) {
#define X(name, num, str)                                                     \
	case num:                                                             \
		return str;
		EF_OPS(X)
#undef X
	}
	return "?";
}

const char *
ipc_status_name(int s)
{
	if (s < 0 || s >= EF_S__COUNT || status_table[s].name == NULL)
		return "UNKNOWN";
	return status_table[s].name;
}

const char *
ipc_status_text(int s)
{
	if (s < 0 || s >= EF_S__COUNT || status_table[s].text == NULL)
		return "unknown status";
	return status_table[s].text;
}

int
ipc_status_grpc(int s)
{
	if (s < 0 || s >= EF_S__COUNT || status_table[s].name == NULL)
		return 2;
	return status_table[s].grpc;
}

/*
 * The layout of each msgpack type byte 0xc0..0xdf after its first byte:
 * a big-endian length field of lenb bytes (0: none), then either plus
 * + that length bytes to skip (bin, str, ext, and the fixed-size types
 * with lenb 0), or, when mul is set, mul * that length objects to follow
 * (arrays 1, maps 2). valid 0: not a type byte (0xc1), or one taken
 * before this table is read (nil, false, true).
 */
static const struct mp_layout {
	uint8_t valid, lenb, plus, mul;
} mp_layouts[32] = {
	[0xc4 - 0xc0] = { 1, 1, 0, 0 },  /* bin 8 */
	[0xc5 - 0xc0] = { 1, 2, 0, 0 },  /* bin 16 */
	[0xc6 - 0xc0] = { 1, 4, 0, 0 },  /* bin 32 */
	[0xc7 - 0xc0] = { 1, 1, 1, 0 },  /* ext 8: type byte + data */
	[0xc8 - 0xc0] = { 1, 2, 1, 0 },  /* ext 16 */
	[0xc9 - 0xc0] = { 1, 4, 1, 0 },  /* ext 32 */
	[0xca - 0xc0] = { 1, 0, 4, 0 },  /* float 32 */
	[0xcb - 0xc0] = { 1, 0, 8, 0 },  /* float 64 */
	[0xcc - 0xc0] = { 1, 0, 1, 0 },  /* uint 8 */
	[0xcd - 0xc0] = { 1, 0, 2, 0 },  /* uint 16 */
	[0xce - 0xc0] = { 1, 0, 4, 0 },  /* uint 32 */
	[0xcf - 0xc0] = { 1, 0, 8, 0 },  /* uint 64 */
	[0xd0 - 0xc0] = { 1, 0, 1, 0 },  /* int 8 */
	[0xd1 - 0xc0] = { 1, 0, 2, 0 },  /* int 16 */
	[0xd2 - 0xc0] = { 1, 0, 4, 0 },  /* int 32 */
	[0xd3 - 0xc0] = { 1, 0, 8, 0 },  /* int 64 */
	[0xd4 - 0xc0] = { 1, 0, 2, 0 },  /* fixext 1 */
	[0xd5 - 0xc0] = { 1, 0, 3, 0 },  /* fixext 2 */
	[0xd6 - 0xc0] = { 1, 0, 5, 0 },  /* fixext 4 */
	[0xd7 - 0xc0] = { 1, 0, 9, 0 },  /* fixext 8 */
	[0xd8 - 0xc0] = { 1, 0, 17, 0 }, /* fixext 16 */
	[0xd9 - 0xc0] = { 1, 1, 0, 0 },  /* str 8 */
	[0xda - 0xc0] = { 1, 2, 0, 0 },  /* str 16 */
	[0xdb - 0xc0] = { 1, 4, 0, 0 },  /* str 32 */
	[0xdc - 0xc0] = { 1, 2, 0, 1 },  /* array 16 */
	[0xdd - 0xc0] = { 1, 4, 0, 1 },  /* array 32 */
	[0xde - 0xc0] = { 1, 2, 0, 2 },  /* map 16 */
	[0xdf - 0xc0] = { 1, 4, 0, 2 },  /* map 32 */
};

/*
 * The head of the object of type byte b (0x80..0xdf, not nil or a
 * boolean) at *off, its first byte already read: the objects it holds
 * into *n, the bytes to skip after its head into *skip; *off moves past
 * its length field. -1 if b is not a type or the field is cut short.
 */
static int
mp_head(const uint8_t *buf, size_t len, size_t *off, uint8_t b, uint64_t *n,
    uint64_t *skip)
{
	const struct mp_layout *l;
	uint64_t v = 0;
	int i;

	*n = *skip = 0;
	if ((b & 0xf0) == 0x80) /* fixmap */
		*n = 2u * (b & 0x0f);
	else if ((b & 0xf0) == 0x90) /* fixarray */
		*n = b & 0x0f;
	else if ((b & 0xe0) == 0xa0) /* fixstr */
		*skip = b & 0x1f;
	if (b < 0xc0)
		return 0;
	l = &mp_layouts[b - 0xc0];
	if (!l->valid || len - *off < l->lenb)
		return -1;
	for (i = 0; i < l->lenb; i++)
		v = v << 8 | buf[(*off)++];
	if (l->mul != 0)
		*n = l->mul * v;
	else
		*skip = l->plus + v;
	return 0;
}

/*
 * Walks one msgpack object (and everything inside it) at buf. Fails if
 * any length or count runs past the end, if a container claims more
 * elements than bytes remain, or if the total object count is too high.
 * Returns 0 and the bytes consumed in *used, or -1.
 */
static int
ipc_precheck(const uint8_t *buf, size_t len, size_t *used)
{
	size_t off = 0, pending = 1, objects = 0;
	uint64_t n, skip;
	uint8_t b;

	while (pending > 0) {
		if (off >= len)
			return -1;
		b = buf[off++];
		pending--;
		if (++objects > IPC_MAX_OBJECTS)
			return -1;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 ||
		    b == 0xc3)
			continue;
		if (mp_head(buf, len, &off, b, &n, &skip) != 0)
			return -1;
		if (skip > len - off)
			return -1;
		off += skip;
		if (n > len - off || pending + n > len - off)
			return -1;
		pending += n;
	}
	*used = off;
	return 0;
}

static int
ipc_unpack(struct ipc_in *in, const void *buf, size_t len, const char **why)
{
	size_t used = 0, off = 0;

	memset(in, 0, sizeof(*in));
	if (len > IPC_MAX_MSG) {
		*why = "message too large";
		return EF_S_BAD_REQUEST;
	}
	if (ipc_precheck(buf, len, &used) != 0 || used != len)
		goto malformed;
	msgpack_unpacked_init(&in->up);
	in->opened = 1;
	if (msgpack_unpack_next(&in->up, buf, len, &off) ==
	    MSGPACK_UNPACK_SUCCESS)
		return 0;
malformed:
	*why = "not a well-formed msgpack message";
	return EF_S_BAD_REQUEST;
}

void
ipc_in_close(struct ipc_in *in)
{
	if (in == NULL || !in->opened)
		return;
	msgpack_unpacked_destroy(&in->up);
	in->opened = 0;
}

/* Field helpers: each returns 0 or -1 and sets *why to the field name. */
int
ipcf_array(const msgpack_object *o, uint32_t want, const char *name,
    const char **why)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != want) {
		*why = name;
		return -1;
	}
	return 0;
}

int
ipcf_u64(const msgpack_object *o, uint64_t *v, const char *name,
    const char **why)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*why = name;
		return -1;
	}
	*v = o->via.u64;
	return 0;
}

int
ipcf_bool(const msgpack_object *o, bool *v, const char *name, const char **why)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN) {
		*why = name;
		return -1;
	}
	*v = o->via.boolean;
	return 0;
}

/*
 * A string with a NUL byte is a bad field: every string of the protocol
 * is text that some daemon keeps or passes on as a C string, where it
 * would be cut short at the NUL (an event type, a stream or plugin
 * name). The exception is an event's type read back from the log
 * (get_logged_str): what is stored is served as it is.
 */
static int
get_str(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why, bool nul_ok)
{
	static __thread char nulwhy[96];

	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max) {
		*why = name;
		return -1;
	}
	if (!nul_ok && memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
		/* valid until this thread's next decode */
		snprintf(nulwhy, sizeof(nulwhy), "%s (contains a NUL byte)",
		    name);
		*why = nulwhy;
		return -1;
	}
	s->ptr = o->via.str.ptr;
	s->len = o->via.str.size;
	return 0;
}

int
ipcf_str(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why)
{
	return get_str(o, s, max, name, why, false);
}

static int
get_logged_str(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why)
{
	return get_str(o, s, max, name, why, true);
}

/* A bin of at most max bytes; with nil_ok nil too, as empty bytes. */
static inline int
get_bin_of(const msgpack_object *o, const uint8_t **p, uint32_t *len,
    uint32_t max, const char *name, const char **why, bool nil_ok)
{
	if (nil_ok && o->type == MSGPACK_OBJECT_NIL) {
		*p = NULL;
		*len = 0;
		return 0;
	}
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > max) {
		*why = name;
		return -1;
	}
	*p = (const uint8_t *)o->via.bin.ptr;
	*len = o->via.bin.size;
	return 0;
}

/* An event's metadata or payload, or an APPEND's: nil is empty. */
static int
get_bin(const msgpack_object *o, const uint8_t **p, uint32_t *len,
    uint32_t max, const char *name, const char **why)
{
	return get_bin_of(o, p, len, max, name, why, true);
}

int
ipcf_uuid(const msgpack_object *o, uint8_t out[UUID_LEN], const char *name,
    const char **why)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != UUID_LEN) {
		*why = name;
		return -1;
	}
	memcpy(out, o->via.bin.ptr, UUID_LEN);
	return 0;
}

int
ipcf_list(const msgpack_object *o, uint32_t max, const char *name,
    const char **why)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max) {
		*why = name;
		return -1;
	}
	return 0;
}

int
ipcf_u64_max(const msgpack_object *o, uint64_t *v, uint64_t max,
    const char *name, const char **why)
{
	if (ipcf_u64(o, v, name, why) != 0)
		return -1;
	if (*v > max) {
		*why = name;
		return -1;
	}
	return 0;
}

int
ipcf_enum(const msgpack_object *o, uint8_t *v, uint8_t max, const char *name,
    const char **why)
{
	uint64_t u;

	if (ipcf_u64_max(o, &u, max, name, why) != 0)
		return -1;
	*v = (uint8_t)u;
	return 0;
}

int
ipcf_name(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why)
{
	if (ipcf_str(o, s, max, name, why) != 0)
		return -1; /* *why set, perhaps with the reason */
	if (s->len == 0) {
		*why = name;
		return -1;
	}
	return 0;
}

int
ipcf_optu64(const msgpack_object *o, bool *has, uint64_t *v, const char *name,
    const char **why)
{
	*has = false;
	*v = 0;
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	*has = true;
	return ipcf_u64(o, v, name, why);
}

int
ipcf_optstr(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why)
{
	s->ptr = NULL;
	s->len = 0;
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	return ipcf_str(o, s, max, name, why);
}

int
ipcf_hasstr(const msgpack_object *o, bool *has, struct ipc_str *s,
    const char *name, const char **why)
{
	*has = o->type != MSGPACK_OBJECT_NIL;
	return ipcf_optstr(o, s, IPC_MAX_STRLEN, name, why);
}

int
ipcf_list_of(const msgpack_object *o, const msgpack_object **list, uint32_t *n,
    uint32_t max, const char *name, const char **why)
{
	if (ipcf_list(o, max, name, why) != 0)
		return -1;
	*list = o;
	*n = o->via.array.size;
	return 0;
}

int
ipcf_bin(const msgpack_object *o, const uint8_t **p, uint32_t *len,
    uint32_t max, const char *name, const char **why)
{
	return get_bin_of(o, p, len, max, name, why, false);
}

int
ipcf_optbin(const msgpack_object *o, bool *has, const uint8_t **p,
    uint32_t *len, uint32_t max, const char *name, const char **why)
{
	*has = false;
	*p = NULL;
	*len = 0;
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	*has = true;
	return ipcf_bin(o, p, len, max, name, why);
}

/* Parses buf as a message that is an array of n fields, *a. */
static int
ipc_open_array(struct ipc_in *in, const void *buf, size_t len, uint32_t n,
    const char *what, const msgpack_object **a, const char **why)
{
	int rc;

	if ((rc = ipc_unpack(in, buf, len, why)) != 0)
		return rc;
	*a = &in->up.data;
	FIELD(ipcf_array(*a, n, what, why));
	return 0;
}

int
ipc_request_open(struct ipc_in *in, const void *buf, size_t len,
    const char **why)
{
	const msgpack_object *a;
	uint64_t v, op;
	int rc;

	if ((rc = ipc_unpack(in, buf, len, why)) != 0)
		return rc;
	a = &in->up.data;
	if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size < 1) {
		*why = "envelope";
		return EF_S_BAD_REQUEST;
	}
	FIELD(ipcf_u64(&a->via.array.ptr[0], &v, "version", why));
	in->version = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	if (v != EF_PROTO_VERSION) {
		*why = "protocol version mismatch";
		return EF_S_BAD_VERSION;
	}
	FIELD(ipcf_array(a, 4, "envelope", why));
	FIELD(ipcf_u64(&a->via.array.ptr[1], &op, "op", why));
	in->op = op > UINT32_MAX ? UINT32_MAX : (uint32_t)op;
	FIELD(ipcf_u64(&a->via.array.ptr[2], &in->request_id, "request_id",
	    why));
	in->body = &a->via.array.ptr[3];
	return 0;
}

int
ipc_reply_open(struct ipc_in *in, const void *buf, size_t len,
    const char **why)
{
	const msgpack_object *a;
	uint64_t st;
	int rc;

	if ((rc = ipc_open_array(in, buf, len, 3, "reply envelope", &a, why)))
		return rc;
	FIELD(ipcf_u64_max(F(a, 0), &st, EF_S__COUNT - 1, "status", why));
	in->status = (int)st;
	FIELD(ipcf_str(&a->via.array.ptr[1], &in->message, IPC_MAX_STRLEN,
	    "message", why));
	in->body = &a->via.array.ptr[2];
	return 0;
}

int
ipc_pub_open(struct ipc_in *in, const void *buf, size_t len,
    struct ipc_pub *pub, const char **why)
{
	const msgpack_object *a;
	uint64_t v;
	int rc;

	if ((rc = ipc_open_array(in, buf, len, 4, "publish envelope", &a,
	         why)))
		return rc;
	FIELD(ipcf_u64(&a->via.array.ptr[0], &v, "version", why));
	if (v != EF_PROTO_VERSION) {
		*why = "protocol version mismatch";
		return EF_S_BAD_VERSION;
	}
	FIELD(ipcf_u64(&a->via.array.ptr[1], &pub->first_pos, "first", why));
	FIELD(ipcf_u64(&a->via.array.ptr[2], &pub->last_pos, "last", why));
	if (pub->last_pos < pub->first_pos) {
		*why = "last";
		return EF_S_BAD_REQUEST;
	}
	if (a->via.array.ptr[3].type == MSGPACK_OBJECT_NIL) {
		pub->events = NULL;
		pub->nevents = 0;
		return 0;
	}
	FIELD(ipcf_list(&a->via.array.ptr[3], IPC_MAX_EVENTS, "events", why));
	pub->events = &a->via.array.ptr[3];
	pub->nevents = pub->events->via.array.size;
	if (pub->nevents != pub->last_pos - pub->first_pos + 1) {
		*why = "events";
		return EF_S_BAD_REQUEST;
	}
	return 0;
}

int
ipc_append_req_decode(const msgpack_object *b, struct ipc_append_req *r,
    const char **why)
{
	const msgpack_object *evs, *e;
	uint64_t kind;
	uint32_t i;

	memset(r, 0, sizeof(*r));
	FIELD(ipcf_array(b, 4, "append body", why));
	FIELD(ipcf_str(&b->via.array.ptr[0], &r->stream_id, IPC_MAX_STRLEN,
	    "stream_id", why));
	/* a bad kind is a bad expectation, a status of its own */
	if (ipcf_u64(&b->via.array.ptr[1], &kind, "expected kind", why) != 0)
		return EF_S_BAD_EXPECTED_VERSION;
	if (kind > EF_EXPECT_EXACT) {
		*why = "expected kind";
		return EF_S_BAD_EXPECTED_VERSION;
	}
	r->kind = (uint8_t)kind;
	FIELD(ipcf_u64(&b->via.array.ptr[2], &r->version, "expected version",
	    why));
	evs = &b->via.array.ptr[3];
	FIELD(ipcf_list(evs, IPC_MAX_EVENTS, "events", why));
	r->nevents = evs->via.array.size;
	if (r->nevents == 0)
		return 0;
	r->events = calloc(r->nevents, sizeof(*r->events));
	if (r->events == NULL)
		fatal("calloc");
	for (i = 0; i < r->nevents; i++) {
		struct ipc_proposed *p = &r->events[i];

		e = &evs->via.array.ptr[i];
		if (ipcf_array(e, 4, "event", why) != 0 ||
		    ipcf_str(&e->via.array.ptr[0], &p->event_id,
		        IPC_MAX_STRLEN, "event_id", why) != 0 ||
		    ipcf_str(&e->via.array.ptr[1], &p->type, IPC_MAX_STRLEN,
		        "event_type", why) != 0 ||
		    get_bin(&e->via.array.ptr[2], &p->metadata,
		        &p->metadata_len, IPC_MAX_MSG, "metadata", why) != 0 ||
		    get_bin(&e->via.array.ptr[3], &p->payload, &p->payload_len,
		        IPC_MAX_MSG, "payload", why) != 0) {
			ipc_append_req_free(r);
			return EF_S_BAD_REQUEST;
		}
	}
	return 0;
}

void
ipc_append_req_free(struct ipc_append_req *r)
{
	if (r == NULL)
		return;
	free(r->events);
	r->events = NULL;
	r->nevents = 0;
}

/*
 * The bodies of a fixed shape, each a list of its fields in wire order
 * (ipc_field.h): one list gives the strict decoder and the encoder.
 */
#define APPEND_REP(X)                                                         \
	X(U64, first_version, "first_version", 0)                             \
	X(U64, last_version, "last_version", 0)                               \
	X(U64, first_pos, "first_position", 0)                                \
	X(U64, last_pos, "last_position", 0)
IPCF_CODEC(append_rep, APPEND_REP, "append reply")

#define CONFLICT(X)                                                           \
	X(BOOL, exists, "exists", 0)                                          \
	X(U64, actual, "actual", 0)
IPCF_CODEC(conflict, CONFLICT, "conflict body")

#define READ_STREAM_REQ(X)                                                    \
	X(STR, stream_id, "stream_id", IPC_MAX_STRLEN)                        \
	X(U64, from, "from_version", 0)                                       \
	X(U64, max_count, "max_count", 0)                                     \
	X(ENUM, direction, "direction", EF_BACKWARD)
IPCF_CODEC(read_stream_req, READ_STREAM_REQ, "read_stream body")

#define READ_ALL_REQ(X)                                                       \
	X(U64, from, "from_position", 0)                                      \
	X(U64, max_count, "max_count", 0)                                     \
	X(ENUM, direction, "direction", EF_BACKWARD)
IPCF_CODEC(read_all_req, READ_ALL_REQ, "read_all body")

#define READ_REP(X)                                                           \
	X(LIST, events, "events", IPC_MAX_OBJECTS)                            \
	X(U64, head, "head", 0)                                               \
	X(OPTU64, last_version, "last_version", has_last_version)
IPCF_DECODER(read_rep, READ_REP, "read reply")

#define LIST_REQ(X)                                                           \
	X(HASSTR, after, "after", has_after)                                  \
	X(U64, max_count, "max_count", 0)
IPCF_CODEC(list_req, LIST_REQ, "list_streams body")

#define LIST_REP(X)                                                           \
	X(LIST, streams, "streams", IPC_MAX_OBJECTS)                          \
	X(BOOL, more, "more", 0)
IPCF_DECODER(list_rep, LIST_REP, "list_streams reply")

#define STREAM_INFO(X)                                                        \
	X(UUID, stream_id, "stream_id", 0)                                    \
	X(U64, event_count, "event_count", 0)                                 \
	X(U64, latest_version, "latest_version", 0)
IPCF_CODEC(stream_info, STREAM_INFO, "stream info")

#define ROTATE_REP(X)                                                         \
	X(BOOL, rotated, "rotated", 0)                                        \
	X(U64, sealed_base, "sealed_base", 0)                                 \
	X(U64, sealed_events, "sealed_events", 0)                             \
	X(U64, hot_base, "hot_base", 0)
IPCF_CODEC(rotate_rep, ROTATE_REP, "rotate reply")

#define ARCHIVE_REP(X)                                                        \
	X(BOOL, archived, "archived", 0)                                      \
	X(U64, base, "base", 0)                                               \
	X(U64, raw_bytes, "raw_bytes", 0)                                     \
	X(U64, comp_bytes, "comp_bytes", 0)                                   \
	X(U64, left, "left", 0)
IPCF_CODEC(archive_rep, ARCHIVE_REP, "archive reply")

#define SEGMENTS_REQ(X)                                                       \
	X(U64, from, "from_base", 0)                                          \
	X(U64, max_count, "max_count", 0)
IPCF_CODEC(segments_req, SEGMENTS_REQ, "segments body")

#define SEGMENTS_REP(X)                                                       \
	X(LIST, segments, "segments", IPC_MAX_OBJECTS)                        \
	X(BOOL, more, "more", 0)
IPCF_DECODER(segments_rep, SEGMENTS_REP, "segments reply")

#define SEGMENT_INFO(X)                                                       \
	X(U64, base, "base", 0)                                               \
	X(U64, events, "events", 0)                                           \
	X(U64, bytes, "bytes", 0)                                             \
	X(STR, state, "state", IPC_SEGMENT_STATE_MAX)                         \
	X(U64, stored_bytes, "stored_bytes", 0)
IPCF_CODEC(segment_info, SEGMENT_INFO, "segment info")

#define BACKUP_REQ(X) X(STR, dir, "dir", IPC_MAX_STRLEN)
IPCF_CODEC(backup_req, BACKUP_REQ, "backup body")

#define BACKUP_REP(X)                                                         \
	X(U64, position, "position", 0)                                       \
	X(U64, segments, "segments", 0)                                       \
	X(U64, linked, "linked", 0)                                           \
	X(U64, copied, "copied", 0)                                           \
	X(U64, bytes, "bytes", 0)                                             \
	X(U64, index_bytes, "index_bytes", 0)
IPCF_CODEC(backup_rep, BACKUP_REP, "backup reply")

#define IMPORT_REP(X)                                                         \
	X(U64, first_pos, "first_position", 0)                                \
	X(U64, count, "count", 0)                                             \
	X(U64, skipped, "skipped", 0)
IPCF_CODEC(import_rep, IMPORT_REP, "import reply")

int
ipc_event_decode(const msgpack_object *e, struct ef_event *ev,
    const char **why)
{
	struct ipc_str t;

	FIELD(ipcf_array(e, 8, "event", why));
	FIELD(ipcf_uuid(&e->via.array.ptr[0], ev->event_id, "event_id", why));
	FIELD(
	    ipcf_uuid(&e->via.array.ptr[1], ev->stream_id, "stream_id", why));
	FIELD(ipcf_u64(&e->via.array.ptr[2], &ev->stream_version,
	    "stream_version", why));
	FIELD(ipcf_u64(&e->via.array.ptr[3], &ev->global_position,
	    "global_position", why));
	FIELD(get_logged_str(&e->via.array.ptr[4], &t, RECORD_TYPE_MAX,
	    "event_type", why));
	ev->type = t.ptr;
	ev->type_len = t.len;
	FIELD(get_bin(&e->via.array.ptr[5], &ev->metadata, &ev->metadata_len,
	    RECORD_MAX, "metadata", why));
	FIELD(get_bin(&e->via.array.ptr[6], &ev->payload, &ev->payload_len,
	    RECORD_MAX, "payload", why));
	FIELD(ipcf_u64(&e->via.array.ptr[7], &ev->recorded_at, "recorded_at",
	    why));
	return 0;
}

#define STATUS_FIELDS(X)                                                      \
	X(head)                                                               \
	X(streams)                                                            \
	X(log_bytes)                                                          \
	X(uptime_ms)                                                          \
	X(commits)                                                            \
	X(fsyncs)                                                             \
	X(events_written)                                                     \
	X(recover_ms)                                                         \
	X(recovered_events)                                                   \
	X(index_bytes)                                                        \
	X(segments)                                                           \
	X(sealed_bytes)                                                       \
	X(indexed_to)                                                         \
	X(archived_segments)                                                  \
	X(archived_bytes)                                                     \
	X(archived_raw)                                                       \
	X(cache_hits)                                                         \
	X(cache_misses)                                                       \
	X(cache_bytes)
#define STATUS_NFIELDS 19

int
ipc_status_rep_decode(const msgpack_object *b, struct ipc_status_rep *r,
    const char **why)
{
	uint32_t i = 0;

	FIELD(ipcf_array(b, STATUS_NFIELDS, "status reply", why));
#define X(f) FIELD(ipcf_u64(&b->via.array.ptr[i++], &r->f, #f, why));
	STATUS_FIELDS(X)
#undef X
	return 0;
}

/* Encoders. */

static int
ipc_out_write(void *data, const char *buf, size_t len)
{
	struct ipc_out *o = data;
	size_t ncap;
	char *nb;

	if (o->len + len > o->cap) {
		ncap = o->cap ? o->cap : 256;
		while (ncap < o->len + len)
			ncap *= 2;
		if (o->msg != NULL) {
			if (nng_msg_realloc(o->msg, ncap) != 0)
				fatalx("nng_msg_realloc: out of memory");
			nb = nng_msg_body(o->msg);
		} else if ((nb = realloc(o->buf, ncap)) == NULL)
			fatal("realloc");
		o->buf = nb;
		o->cap = ncap;
	}
	memcpy(o->buf + o->len, buf, len);
	o->len += len;
	return 0;
}

void
ipc_out_init(struct ipc_out *o)
{
	memset(o, 0, sizeof(*o));
	msgpack_packer_init(&o->pk, o, ipc_out_write);
}

void
ipc_out_reset(struct ipc_out *o)
{
	o->len = 0;
}

void
ipc_out_msg_begin(struct ipc_out *o, struct nng_msg *m)
{
	o->own = o->buf;
	o->own_cap = o->cap;
	o->msg = m;
	o->buf = nng_msg_body(m);
	o->cap = nng_msg_len(m);
	o->len = 0;
}

struct nng_msg *
ipc_out_msg_end(struct ipc_out *o)
{
	struct nng_msg *m = o->msg;

	if (nng_msg_realloc(m, o->len) != 0) /* shrinks: cannot fail */
		fatalx("nng_msg_realloc");
	o->msg = NULL;
	o->buf = o->own;
	o->cap = o->own_cap;
	o->len = 0;
	return m;
}

void
ipc_out_free(struct ipc_out *o)
{
	if (o == NULL)
		return;
	free(o->msg != NULL ? o->own : o->buf); /* a message is the caller's */
	o->buf = o->own = NULL;
	o->msg = NULL;
	o->len = o->cap = 0;
}

void
ipcf_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
	msgpack_pack_str(pk, len);
	if (len)
		msgpack_pack_str_body(pk, s, len);
}

void
ipcf_pack_bin(msgpack_packer *pk, const void *p, size_t len)
{
	msgpack_pack_bin(pk, len);
	if (len)
		msgpack_pack_bin_body(pk, p, len);
}

void
ipcf_pack_bool(msgpack_packer *pk, bool v)
{
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void
ipcf_pack_optu64(msgpack_packer *pk, bool has, uint64_t v)
{
	if (!has)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, v);
}

void
ipcf_pack_optbin(msgpack_packer *pk, bool has, const void *p, size_t len)
{
	if (!has)
		msgpack_pack_nil(pk);
	else
		ipcf_pack_bin(pk, p, len);
}

void
ipcf_pack_hasstr(msgpack_packer *pk, bool has, const struct ipc_str *s)
{
	if (!has)
		msgpack_pack_nil(pk);
	else
		ipcf_pack_str(pk, s->ptr, s->len);
}

void
ipcf_pack_optstr(msgpack_packer *pk, const struct ipc_str *s)
{
	ipcf_pack_hasstr(pk, s->ptr != NULL, s);
}

void
ipc_request_begin(struct ipc_out *o, int op, uint64_t request_id)
{
	msgpack_pack_array(&o->pk, 4);
	msgpack_pack_uint32(&o->pk, EF_PROTO_VERSION);
	msgpack_pack_uint32(&o->pk, (uint32_t)op);
	msgpack_pack_uint64(&o->pk, request_id);
}

void
ipc_reply_begin(struct ipc_out *o, int status, const char *message)
{
	if (message == NULL)
		message = ipc_status_text(status);
	msgpack_pack_array(&o->pk, 3);
	msgpack_pack_uint32(&o->pk, (uint32_t)status);
	ipcf_pack_str(&o->pk, message, strnlen(message, IPC_MAX_STRLEN));
}

void
ipc_pub_begin(struct ipc_out *o, uint64_t first, uint64_t last,
    uint32_t nevents)
{
	msgpack_pack_array(&o->pk, 4);
	msgpack_pack_uint32(&o->pk, EF_PROTO_VERSION);
	msgpack_pack_uint64(&o->pk, first);
	msgpack_pack_uint64(&o->pk, last);
	if (nevents == 0)
		msgpack_pack_nil(&o->pk);
	else
		msgpack_pack_array(&o->pk, nevents);
}

void
ipc_nil(struct ipc_out *o)
{
	msgpack_pack_nil(&o->pk);
}

void
ipc_append_req_encode(struct ipc_out *o, const struct ipc_append_req *r)
{
	uint32_t i;

	msgpack_pack_array(&o->pk, 4);
	ipcf_pack_str(&o->pk, r->stream_id.ptr, r->stream_id.len);
	msgpack_pack_uint8(&o->pk, r->kind);
	msgpack_pack_uint64(&o->pk, r->version);
	msgpack_pack_array(&o->pk, r->nevents);
	for (i = 0; i < r->nevents; i++) {
		const struct ipc_proposed *p = &r->events[i];

		msgpack_pack_array(&o->pk, 4);
		ipcf_pack_str(&o->pk, p->event_id.ptr, p->event_id.len);
		ipcf_pack_str(&o->pk, p->type.ptr, p->type.len);
		ipcf_pack_bin(&o->pk, p->metadata, p->metadata_len);
		ipcf_pack_bin(&o->pk, p->payload, p->payload_len);
	}
}

void
ipc_read_rep_begin(struct ipc_out *o, uint32_t nevents)
{
	msgpack_pack_array(&o->pk, 3);
	msgpack_pack_array(&o->pk, nevents);
}

size_t
ipc_read_rep_begin_open(struct ipc_out *o)
{
	static const char arr32[5] = { (char)0xdd, 0, 0, 0, 0 };
	size_t at;

	msgpack_pack_array(&o->pk, 3);
	at = o->len;
	ipc_out_write(o, arr32, sizeof(arr32));
	return at;
}

void
ipc_read_rep_count(struct ipc_out *o, size_t at, uint32_t nevents)
{
	uint8_t *p = (uint8_t *)o->buf + at + 1;

	p[0] = (uint8_t)(nevents >> 24);
	p[1] = (uint8_t)(nevents >> 16);
	p[2] = (uint8_t)(nevents >> 8);
	p[3] = (uint8_t)nevents;
}

void
ipc_event_encode(struct ipc_out *o, const struct ef_event *ev)
{
	msgpack_pack_array(&o->pk, 8);
	ipcf_pack_bin(&o->pk, ev->event_id, UUID_LEN);
	ipcf_pack_bin(&o->pk, ev->stream_id, UUID_LEN);
	msgpack_pack_uint64(&o->pk, ev->stream_version);
	msgpack_pack_uint64(&o->pk, ev->global_position);
	ipcf_pack_str(&o->pk, ev->type, ev->type_len);
	ipcf_pack_bin(&o->pk, ev->metadata, ev->metadata_len);
	ipcf_pack_bin(&o->pk, ev->payload, ev->payload_len);
	msgpack_pack_uint64(&o->pk, ev->recorded_at);
}

size_t
ipc_event_wire_size(uint32_t type_len, uint32_t md_len, uint32_t payload_len)
{
	/* array hdr, 2 bin16, 3 uint64 (9 each), str and 2 bin headers */
	return 1 + 2 * 18 + 3 * 9 + 5 + type_len + 5 + md_len + 5 +
	    payload_len;
}

void
ipc_read_rep_end(struct ipc_out *o, uint64_t head, bool has_last,
    uint64_t last_version)
{
	msgpack_pack_uint64(&o->pk, head);
	ipcf_pack_optu64(&o->pk, has_last, last_version);
}

void
ipc_page_begin(struct ipc_out *o, uint32_t n)
{
	msgpack_pack_array(&o->pk, 2);
	msgpack_pack_array(&o->pk, n);
}

void
ipc_page_end(struct ipc_out *o, bool more)
{
	ipcf_pack_bool(&o->pk, more);
}

void
ipc_status_rep_encode(struct ipc_out *o, const struct ipc_status_rep *r)
{
	msgpack_pack_array(&o->pk, STATUS_NFIELDS);
#define X(f) msgpack_pack_uint64(&o->pk, r->f);
	STATUS_FIELDS(X)
#undef X
}

int
ipc_import_req_decode(const msgpack_object *b, struct ipc_import_req *r,
    const char **why)
{
	r->run = r->seq = 0;
	/* [keep, events] or [keep, events, run, seq] (ipc.h) */
	if (ipcf_array(b, 2, "import body", why) != 0)
		FIELD(ipcf_array(b, 4, "import body", why));
	FIELD(ipcf_bool(&b->via.array.ptr[0], &r->keep_positions,
	    "keep_positions", why));
	FIELD(ipcf_list(&b->via.array.ptr[1], IPC_MAX_EVENTS, "events", why));
	r->events = &b->via.array.ptr[1];
	r->nevents = r->events->via.array.size;
	if (b->via.array.size == 4) {
		FIELD(ipcf_u64(&b->via.array.ptr[2], &r->run, "run", why));
		FIELD(ipcf_u64(&b->via.array.ptr[3], &r->seq, "seq", why));
		if (r->run == 0) {
			*why = "run (0 is the short body's)";
			return EF_S_BAD_REQUEST;
		}
	}
	return 0;
}

void
ipc_import_req_begin(struct ipc_out *o, bool keep_positions, uint32_t nevents,
    uint64_t run)
{
	msgpack_pack_array(&o->pk, run != 0 ? 4 : 2);
	ipcf_pack_bool(&o->pk, keep_positions);
	msgpack_pack_array(&o->pk, nevents);
}

void
ipc_import_req_end(struct ipc_out *o, uint64_t run, uint64_t seq)
{
	if (run == 0)
		return;
	msgpack_pack_uint64(&o->pk, run);
	msgpack_pack_uint64(&o->pk, seq);
}
