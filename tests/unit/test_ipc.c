/* SPDX-License-Identifier: MIT */
/*
 * test_ipc.c - unit tests of the IPC codec (libcommon/ipc.c): every
 * message encoded and decoded back; then hostile input: every message
 * truncated at every byte, trailing bytes, counts and lengths larger
 * than the message (array32 claiming 2^32-1 elements in a few bytes),
 * deep nesting, every field of every body given every wrong type,
 * dropped or followed by an extra field, values out of range, other
 * protocol versions, and a deterministic mutation fuzz of valid
 * messages. A decoder must answer with an error status and a reason,
 * never crash and never allocate more than the message justifies (the
 * address space is capped to make an attempt fail loudly).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <criterion/criterion.h>

#include "eventcheck.h"
#include "ipc.h"
#include "ipc_runner.h"
#include "../tools/testutil.h"

static void
cap_memory(void)
{
	struct rlimit rl = { 1ull << 30, 1ull << 30 };

	setrlimit(RLIMIT_AS, &rl);
}

TestSuite(ipc, .init = cap_memory);

/* ------------------------------------------------------------------ */
/* Building messages. */

static const uint8_t sid_bytes[UUID_LEN] = { 0x67, 0xe5, 0x50, 0x44, 0x10,
	0xb1, 0x42, 0x6f, 0x92, 0x47, 0xbb, 0x68, 0x0e, 0x5f, 0xe0, 0xc8 };
static const uint8_t eid_bytes[UUID_LEN] = { 0x01, 0x02, 0x03, 0x04, 0x05,
	0x06, 0x47, 0x08, 0x89, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10 };
static const uint8_t bin_payload[] = { 0, 1, 2, 0xff, 0, 0x80, '{', '}' };

static struct ipc_proposed proposed[3];

static void
make_append(struct ipc_append_req *r)
{
	memset(r, 0, sizeof(*r));
	memset(proposed, 0, sizeof(proposed));
	r->stream_id.ptr = "67e55044-10b1-426f-9247-bb680e5fe0c8";
	r->stream_id.len = 36;
	r->kind = EF_EXPECT_EXACT;
	r->version = 0x123456789abcull;
	proposed[0].event_id.ptr = "01020304-0506-4708-890a-0b0c0d0e0f10";
	proposed[0].event_id.len = 36;
	proposed[0].type.ptr = "OrderPlaced";
	proposed[0].type.len = 11;
	proposed[0].metadata = (const uint8_t *)"{\"actor\":\"me\"}";
	proposed[0].metadata_len = 14;
	proposed[0].payload = (const uint8_t *)"{\"qty\":3}";
	proposed[0].payload_len = 9;
	proposed[1].event_id.ptr =
	    "urn:uuid:11111111-2222-4333-8444-555555555555";
	proposed[1].event_id.len = 45;
	proposed[1].type.ptr = "Empty";
	proposed[1].type.len = 5;
	proposed[2].event_id.ptr = "X";
	proposed[2].event_id.len = 1;
	proposed[2].type.ptr = "Bin";
	proposed[2].type.len = 3;
	proposed[2].payload = bin_payload;
	proposed[2].payload_len = sizeof(bin_payload);
	r->nevents = 3;
	r->events = proposed;
}

static void
make_event(struct ef_event *ev, uint64_t pos)
{
	memset(ev, 0, sizeof(*ev));
	memcpy(ev->event_id, eid_bytes, UUID_LEN);
	ev->event_id[15] = (uint8_t)pos;
	memcpy(ev->stream_id, sid_bytes, UUID_LEN);
	ev->stream_version = pos + 10;
	ev->global_position = pos;
	ev->recorded_at = 1700000000000ull + pos;
	ev->type = "Shipped";
	ev->type_len = 7;
	ev->metadata = (const uint8_t *)"md";
	ev->metadata_len = pos % 2 ? 0 : 2;
	ev->payload = bin_payload;
	ev->payload_len = sizeof(bin_payload);
}

/* Encodes the n events make_event(first), make_event(first + 1)... */
static void
encode_events(struct ipc_out *o, uint64_t first, uint32_t n)
{
	struct ef_event ev;
	uint32_t i;

	for (i = 0; i < n; i++) {
		make_event(&ev, first + i);
		ipc_event_encode(o, &ev);
	}
}

/* Fails unless the msgpack array arr holds what encode_events(first, n)
 * wrote. */
static void
check_events(const msgpack_object *arr, uint64_t first, uint32_t n)
{
	struct ef_event ev, got;
	const char *why = NULL;
	uint32_t i;

	for (i = 0; i < n; i++) {
		make_event(&ev, first + i);
		cr_assert_eq(ipc_event_decode(&arr->via.array.ptr[i], &got,
		                 &why),
		    0);
		assert_event_eq(&ev, &got);
	}
}

/* The valid messages every wire-level test starts from. */
enum msg_kind { M_REQUEST, M_REPLY, M_PUB };

struct sample_msg {
	const char *name;
	enum msg_kind kind;
	struct ipc_out out;
};

#define NSAMPLES 23
static struct sample_msg samples[NSAMPLES];

/* Appends the next sample, named n, of kind kd; its ipc_out. */
static int nbuilt;
#define NEXT(n, kd)                                                           \
	(samples[nbuilt].name = (n), samples[nbuilt].kind = (kd),             \
	    &samples[nbuilt++].out)

/* The requests stored and runnerd answer. */
static void
build_requests(void)
{
	struct ipc_append_req ar;
	struct ipc_read_stream_req rs;
	struct ipc_read_all_req ra = { 5, 100, EF_BACKWARD };
	struct ipc_list_req lr;

	{
		struct ipc_out *o = NEXT("append request", M_REQUEST);

		make_append(&ar);
		ipc_request_begin(o, EF_OP_APPEND, 7);
		ipc_append_req_encode(o, &ar);
	}
	{
		struct ipc_out *o = NEXT("read_stream request", M_REQUEST);

		rs.stream_id.ptr = "{67e55044-10b1-426f-9247-bb680e5fe0c8}";
		rs.stream_id.len = 38;
		rs.from = EF_FROM_END;
		rs.max_count = 17;
		rs.direction = EF_BACKWARD;
		ipc_request_begin(o, EF_OP_READ_STREAM, 8);
		ipc_read_stream_req_encode(o, &rs);
	}
	{
		struct ipc_out *o = NEXT("read_all request", M_REQUEST);

		ipc_request_begin(o, EF_OP_READ_ALL, 9);
		ipc_read_all_req_encode(o, &ra);
	}
	{
		struct ipc_out *o = NEXT("list request", M_REQUEST);

		lr.has_after = true;
		lr.after.ptr = "67e55044-10b1-426f-9247-bb680e5fe0c8";
		lr.after.len = 36;
		lr.max_count = 50;
		ipc_request_begin(o, EF_OP_LIST_STREAMS, 10);
		ipc_list_req_encode(o, &lr);
	}
	{
		struct ipc_out *o = NEXT("status request", M_REQUEST);

		ipc_request_begin(o, EF_OP_STATUS, 11);
		ipc_nil(o);
	}
}

/* Their replies, success and error. */
static void
build_replies(void)
{
	struct ipc_append_rep rep = { 1, 3, 100, 102 };
	struct ipc_conflict conf = { true, 41 };
	struct ipc_stream_info si;
	struct ipc_status_rep st = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
		13 };
	int k;

	{
		struct ipc_out *o = NEXT("append reply", M_REPLY);

		ipc_reply_begin(o, EF_S_OK, "ok");
		ipc_append_rep_encode(o, &rep);
	}
	{
		struct ipc_out *o = NEXT("conflict reply", M_REPLY);

		ipc_reply_begin(o, EF_S_VERSION_CONFLICT,
		    "wrong expected "
		    "version: expected 3, actual 41");
		ipc_conflict_encode(o, &conf);
	}
	{
		struct ipc_out *o = NEXT("read reply", M_REPLY);

		ipc_reply_begin(o, EF_S_OK, "ok");
		ipc_read_rep_begin(o, 3);
		encode_events(o, 0, 3);
		ipc_read_rep_end(o, 3, true, 12);
	}
	{
		struct ipc_out *o = NEXT("list reply", M_REPLY);

		ipc_reply_begin(o, EF_S_OK, "ok");
		ipc_list_rep_begin(o, 2);
		for (k = 0; k < 2; k++) {
			memcpy(si.stream_id, sid_bytes, UUID_LEN);
			si.stream_id[0] = (uint8_t)k;
			si.event_count = 5 + (uint64_t)k;
			si.latest_version = 4 + (uint64_t)k;
			ipc_stream_info_encode(o, &si);
		}
		ipc_list_rep_end(o, true);
	}
	{
		struct ipc_out *o = NEXT("status reply", M_REPLY);

		ipc_reply_begin(o, EF_S_OK, NULL);
		ipc_status_rep_encode(o, &st);
	}
	{
		struct ipc_out *o = NEXT("error reply", M_REPLY);

		ipc_reply_begin(o, EF_S_BAD_UUID, "stream_id: malformed uuid");
		ipc_nil(o);
	}
}

/* Publications, and a read reply without events. */
static void
build_publishes(void)
{
	{
		struct ipc_out *o = NEXT("publish", M_PUB);

		ipc_pub_begin(o, 40, 41, 2);
		encode_events(o, 40, 2);
	}
	{
		struct ipc_out *o = NEXT("publish without events", M_PUB);

		ipc_pub_begin(o, 40, 1040, 0);
	}
	{
		struct ipc_out *o = NEXT("read reply, no events", M_REPLY);

		ipc_reply_begin(o, EF_S_STREAM_NOT_FOUND, "stream not found");
		ipc_read_rep_begin(o, 0);
		ipc_read_rep_end(o, 0, false, 0);
	}
}

/* Rotation, segments and archiving. */
static void
build_segment_samples(void)
{
	{
		struct ipc_out *o = NEXT("rotate reply", M_REPLY);
		struct ipc_rotate_rep rr = { true, 100, 50, 150 };

		ipc_reply_begin(o, EF_S_OK, "ok");
		ipc_rotate_rep_encode(o, &rr);
	}
	{
		struct ipc_out *o = NEXT("segments request", M_REQUEST);
		struct ipc_segments_req sr = { 7, 100 };

		ipc_request_begin(o, EF_OP_SEGMENTS, 9);
		ipc_segments_req_encode(o, &sr);
	}
	{
		struct ipc_out *o = NEXT("segments reply", M_REPLY);
		struct ipc_segment_info sg = { 0, 10, 4096, { "archived", 8 },
			1024 };

		ipc_reply_begin(o, EF_S_OK, "ok");
		ipc_segments_rep_begin(o, 2);
		ipc_segment_info_encode(o, &sg);
		sg.base = 10;
		sg.state.ptr = "hot";
		sg.state.len = 3;
		ipc_segment_info_encode(o, &sg);
		ipc_segments_rep_end(o, false);
	}
	{
		struct ipc_out *o = NEXT("archive reply", M_REPLY);
		struct ipc_archive_rep ar = { true, 10, 4096, 1024, 3 };

		ipc_reply_begin(o, EF_S_OK, "ok");
		ipc_archive_rep_encode(o, &ar);
	}
}

/* An IMPORT request of one empty event of type T; run 0 gives the short
 * body, without run and seq. */
static void
encode_import(struct ipc_out *o, uint64_t request_id, bool keep, uint64_t run,
    uint64_t seq)
{
	struct ef_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = "T";
	ev.type_len = 1;
	ipc_request_begin(o, EF_OP_IMPORT, request_id);
	ipc_import_req_begin(o, keep, 1, run);
	ipc_event_encode(o, &ev);
	if (run != 0)
		ipc_import_req_end(o, run, seq);
}

/* Backup and import. */
static void
build_backup_import_samples(void)
{
	{
		struct ipc_out *o = NEXT("backup request", M_REQUEST);
		struct ipc_backup_req br = { { "/srv/backup", 11 } };

		ipc_request_begin(o, EF_OP_BACKUP, 12);
		ipc_backup_req_encode(o, &br);
	}
	{
		struct ipc_out *o = NEXT("backup reply", M_REPLY);
		struct ipc_backup_rep br = { 1000, 3, 2, 1, 65536, 8192 };

		ipc_reply_begin(o, EF_S_OK, "ok");
		ipc_backup_rep_encode(o, &br);
	}
	encode_import(NEXT("import request", M_REQUEST), 13, true, 0, 0);
	/* one of an ordered run (several in flight) */
	encode_import(NEXT("import request (run)", M_REQUEST), 14, false,
	    0x1234567890ull, 3);
	{
		struct ipc_out *o = NEXT("import reply", M_REPLY);
		struct ipc_import_rep ir = { 100, 50, 0 };

		ipc_reply_begin(o, EF_S_OK, "ok");
		ipc_import_rep_encode(o, &ir);
	}
}

#undef NEXT

static void
build_samples(void)
{
	int k;

	for (k = 0; k < NSAMPLES; k++)
		ipc_out_init(&samples[k].out);
	nbuilt = 0;
	build_requests();
	build_replies();
	build_publishes();
	build_segment_samples();
	build_backup_import_samples();
	cr_assert_eq(nbuilt, NSAMPLES);
}

static void
free_samples(void)
{
	int k;

	for (k = 0; k < NSAMPLES; k++)
		ipc_out_free(&samples[k].out);
}

static int
open_any(enum msg_kind kind, struct ipc_in *in, const void *buf, size_t len,
    const char **why)
{
	struct ipc_pub pub;

	switch (kind) {
	case M_REQUEST:
		return ipc_request_open(in, buf, len, why);
	case M_REPLY:
		return ipc_reply_open(in, buf, len, why);
	case M_PUB:
		return ipc_pub_open(in, buf, len, &pub, why);
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Names and tables. */

Test(ipc, op_and_status_tables)
{
	int s, t;

	cr_assert_str_eq(ipc_op_name(EF_OP_APPEND), "append");
	cr_assert_str_eq(ipc_op_name(EF_OP_READ_STREAM), "read_stream");
	cr_assert_str_eq(ipc_op_name(EF_OP_READ_ALL), "read_all");
	cr_assert_str_eq(ipc_op_name(EF_OP_LIST_STREAMS), "list_streams");
	cr_assert_str_eq(ipc_op_name(EF_OP_STATUS), "status");
	cr_assert_str_eq(ipc_op_name(0), "?");
	cr_assert_str_eq(ipc_op_name(-1), "?");
	cr_assert_str_eq(ipc_op_name(1000), "?");

	for (s = 0; s < EF_S__COUNT; s++) {
		cr_assert_str_neq(ipc_status_name(s), "UNKNOWN", "status %d",
		    s);
		cr_assert_str_neq(ipc_status_text(s), "unknown status");
		for (t = 0; t < s; t++)
			cr_assert_str_neq(ipc_status_name(s),
			    ipc_status_name(t));
	}
	cr_assert_str_eq(ipc_status_name(EF_S_VERSION_CONFLICT),
	    "VERSION_CONFLICT");
	cr_assert_str_eq(ipc_status_name(-1), "UNKNOWN");
	cr_assert_str_eq(ipc_status_name(EF_S__COUNT), "UNKNOWN");
	cr_assert_str_eq(ipc_status_text(EF_S__COUNT), "unknown status");

	/* the gRPC mapping of proto/IPC.md */
	cr_assert_eq(ipc_status_grpc(EF_S_OK), 0);
	cr_assert_eq(ipc_status_grpc(EF_S_BAD_REQUEST), 3);
	cr_assert_eq(ipc_status_grpc(EF_S_BAD_VERSION), 12);
	cr_assert_eq(ipc_status_grpc(EF_S_UNKNOWN_OP), 12);
	cr_assert_eq(ipc_status_grpc(EF_S_BAD_UUID), 3);
	cr_assert_eq(ipc_status_grpc(EF_S_EMPTY_BATCH), 3);
	cr_assert_eq(ipc_status_grpc(EF_S_DUPLICATE_EVENT_ID), 3);
	cr_assert_eq(ipc_status_grpc(EF_S_BAD_EVENT_TYPE), 3);
	cr_assert_eq(ipc_status_grpc(EF_S_RECORD_TOO_LARGE), 3);
	cr_assert_eq(ipc_status_grpc(EF_S_VERSION_CONFLICT), 9);
	cr_assert_eq(ipc_status_grpc(EF_S_EVENT_ID_REUSED), 6);
	cr_assert_eq(ipc_status_grpc(EF_S_STREAM_NOT_FOUND), 5);
	cr_assert_eq(ipc_status_grpc(EF_S_BATCH_TOO_LARGE), 3);
	cr_assert_eq(ipc_status_grpc(EF_S_DATA_LOSS), 15);
	cr_assert_eq(ipc_status_grpc(EF_S_INTERNAL), 13);
	cr_assert_eq(ipc_status_grpc(EF_S_UNAVAILABLE), 14);
	cr_assert_eq(ipc_status_grpc(EF_S_NOT_FOUND), 5);
	cr_assert_eq(ipc_status_grpc(EF_S_ABORTED), 10);
	cr_assert_eq(ipc_status_grpc(EF_S_REJECTED), 9);
	cr_assert_eq(ipc_status_grpc(EF_S_INVALID), 3);
	cr_assert_eq(ipc_status_grpc(EF_S_DEADLINE), 4);
	cr_assert_eq(ipc_status_grpc(EF_S_RESOURCE_EXHAUSTED), 8);
	cr_assert_eq(ipc_status_grpc(-1), 2);
	cr_assert_eq(ipc_status_grpc(EF_S__COUNT), 2);
}

/* ------------------------------------------------------------------ */
/* Round trips. */

Test(ipc, request_envelope_round_trip)
{
	struct ipc_out o;
	struct ipc_in in;
	const char *why = NULL;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_READ_ALL, UINT64_MAX - 3);
	ipc_nil(&o);
	cr_assert_eq(ipc_request_open(&in, o.buf, o.len, &why), 0);
	cr_assert_eq(in.version, EF_PROTO_VERSION);
	cr_assert_eq(in.op, EF_OP_READ_ALL);
	cr_assert_eq(in.request_id, UINT64_MAX - 3);
	cr_assert_eq(in.body->type, MSGPACK_OBJECT_NIL);
	ipc_in_close(&in);
	ipc_in_close(&in); /* twice is harmless */
	ipc_out_reset(&o);
	cr_assert_eq(o.len, 0);
	ipc_out_free(&o);
	ipc_out_free(NULL);
}

Test(ipc, reply_envelope_round_trip)
{
	struct ipc_out o;
	struct ipc_in in;
	const char *why = NULL;
	int s;

	ipc_out_init(&o);
	for (s = 0; s < EF_S__COUNT; s++) {
		ipc_out_reset(&o);
		ipc_reply_begin(&o, s, s % 2 ? "custom message" : NULL);
		ipc_nil(&o);
		cr_assert_eq(ipc_reply_open(&in, o.buf, o.len, &why), 0);
		cr_assert_eq(in.status, s);
		if (s % 2)
			cr_assert_eq(in.message.len, 14);
		else
			cr_assert_eq(in.message.len,
			    strlen(ipc_status_text(s)));
		cr_assert_arr_eq(in.message.ptr,
		    s % 2 ? "custom message" : ipc_status_text(s),
		    in.message.len);
		ipc_in_close(&in);
	}
	ipc_out_free(&o);
}

Test(ipc, append_request_round_trip)
{
	struct ipc_append_req r, d;
	struct ipc_out o;
	struct ipc_in in;
	const char *why = NULL;
	uint32_t i;

	make_append(&r);
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_APPEND, 1);
	ipc_append_req_encode(&o, &r);
	cr_assert_eq(ipc_request_open(&in, o.buf, o.len, &why), 0);
	cr_assert_eq(in.op, EF_OP_APPEND);
	cr_assert_eq(ipc_append_req_decode(in.body, &d, &why), 0, "%s", why);
	cr_assert_eq(d.stream_id.len, r.stream_id.len);
	cr_assert_arr_eq(d.stream_id.ptr, r.stream_id.ptr, r.stream_id.len);
	cr_assert_eq(d.kind, r.kind);
	cr_assert_eq(d.version, r.version);
	cr_assert_eq(d.nevents, 3);
	for (i = 0; i < 3; i++) {
		const struct ipc_proposed *a = &r.events[i], *b = &d.events[i];

		cr_assert_eq(a->event_id.len, b->event_id.len);
		cr_assert_arr_eq(a->event_id.ptr, b->event_id.ptr,
		    a->event_id.len);
		cr_assert_eq(a->type.len, b->type.len);
		cr_assert_arr_eq(a->type.ptr, b->type.ptr, a->type.len);
		cr_assert_eq(a->metadata_len, b->metadata_len);
		if (a->metadata_len)
			cr_assert_arr_eq(a->metadata, b->metadata,
			    a->metadata_len);
		cr_assert_eq(a->payload_len, b->payload_len);
		if (a->payload_len)
			cr_assert_arr_eq(a->payload, b->payload,
			    a->payload_len);
	}
	ipc_append_req_free(&d);
	cr_assert_null(d.events);
	ipc_append_req_free(NULL);
	ipc_in_close(&in);

	/* no events decodes (stored refuses it as EMPTY_BATCH) */
	r.nevents = 0;
	ipc_out_reset(&o);
	ipc_request_begin(&o, EF_OP_APPEND, 2);
	ipc_append_req_encode(&o, &r);
	cr_assert_eq(ipc_request_open(&in, o.buf, o.len, &why), 0);
	cr_assert_eq(ipc_append_req_decode(in.body, &d, &why), 0);
	cr_assert_eq(d.nevents, 0);
	ipc_append_req_free(&d);
	ipc_in_close(&in);
	ipc_out_free(&o);
}

/* Opens a reply carrying a body encoded by fn into in. */
#define OPEN_REPLY(o, in, encode)                                             \
	do {                                                                  \
		const char *why_ = NULL;                                      \
		ipc_out_init(&(o));                                           \
		ipc_reply_begin(&(o), EF_S_OK, "ok");                         \
		encode;                                                       \
		cr_assert_eq(ipc_reply_open(&(in), (o).buf, (o).len, &why_),  \
		    0);                                                       \
	} while (0)

#define OPEN_REQUEST(o, in, op, encode)                                       \
	do {                                                                  \
		const char *why_ = NULL;                                      \
		ipc_out_init(&(o));                                           \
		ipc_request_begin(&(o), (op), 1);                             \
		encode;                                                       \
		cr_assert_eq(ipc_request_open(&(in), (o).buf, (o).len,        \
		                 &why_),                                      \
		    0);                                                       \
	} while (0)

/* The small replies: append, conflict (both ways), status. */
static void
small_replies_round_trip(void)
{
	struct ipc_out o;
	struct ipc_in in;
	const char *why = NULL;
	struct ipc_append_rep ar = { 7, 9, 1ull << 40, (1ull << 40) + 2 }, ard;
	struct ipc_conflict c = { false, 0 }, cd;
	struct ipc_status_rep st, std;
	uint64_t *f = (uint64_t *)&st;
	size_t i;

	OPEN_REPLY(o, in, ipc_append_rep_encode(&o, &ar));
	cr_assert_eq(ipc_append_rep_decode(in.body, &ard, &why), 0);
	cr_assert_eq(memcmp(&ar, &ard, sizeof(ar)), 0);
	ipc_in_close(&in);
	ipc_out_free(&o);

	OPEN_REPLY(o, in, ipc_conflict_encode(&o, &c));
	cd.exists = true;
	cr_assert_eq(ipc_conflict_decode(in.body, &cd, &why), 0);
	cr_assert_eq(cd.exists, false);
	cr_assert_eq(cd.actual, 0);
	ipc_in_close(&in);
	ipc_out_free(&o);
	c.exists = true;
	c.actual = UINT64_MAX;
	OPEN_REPLY(o, in, ipc_conflict_encode(&o, &c));
	cr_assert_eq(ipc_conflict_decode(in.body, &cd, &why), 0);
	cr_assert_eq(cd.exists, true);
	cr_assert_eq(cd.actual, UINT64_MAX);
	ipc_in_close(&in);
	ipc_out_free(&o);

	for (i = 0; i < sizeof(st) / sizeof(uint64_t); i++)
		f[i] = 1000 * (i + 1) + (i == 9 ? UINT64_MAX - 20000 : 0);
	OPEN_REPLY(o, in, ipc_status_rep_encode(&o, &st));
	cr_assert_eq(ipc_status_rep_decode(in.body, &std, &why), 0);
	cr_assert_eq(memcmp(&st, &std, sizeof(st)), 0);
	ipc_in_close(&in);
	ipc_out_free(&o);
}

/* The small requests: read_stream, read_all, list (with and without
 * after). */
static void
small_requests_round_trip(void)
{
	struct ipc_out o;
	struct ipc_in in;
	const char *why = NULL;
	struct ipc_read_stream_req rs, rsd;
	struct ipc_read_all_req ra = { UINT64_MAX, 0, EF_FORWARD }, rad;
	struct ipc_list_req lr, lrd;

	rs.stream_id.ptr = "abc";
	rs.stream_id.len = 3;
	rs.from = 12;
	rs.max_count = UINT64_MAX;
	rs.direction = EF_FORWARD;
	OPEN_REQUEST(o, in, EF_OP_READ_STREAM,
	    ipc_read_stream_req_encode(&o, &rs));
	cr_assert_eq(ipc_read_stream_req_decode(in.body, &rsd, &why), 0);
	cr_assert_eq(rsd.stream_id.len, 3);
	cr_assert_arr_eq(rsd.stream_id.ptr, "abc", 3);
	cr_assert_eq(rsd.from, 12);
	cr_assert_eq(rsd.max_count, UINT64_MAX);
	cr_assert_eq(rsd.direction, EF_FORWARD);
	ipc_in_close(&in);
	ipc_out_free(&o);

	OPEN_REQUEST(o, in, EF_OP_READ_ALL, ipc_read_all_req_encode(&o, &ra));
	cr_assert_eq(ipc_read_all_req_decode(in.body, &rad, &why), 0);
	cr_assert_eq(rad.from, UINT64_MAX);
	cr_assert_eq(rad.max_count, 0);
	cr_assert_eq(rad.direction, EF_FORWARD);
	ipc_in_close(&in);
	ipc_out_free(&o);

	memset(&lr, 0, sizeof(lr));
	lr.max_count = 3;
	OPEN_REQUEST(o, in, EF_OP_LIST_STREAMS, ipc_list_req_encode(&o, &lr));
	lrd.has_after = true;
	cr_assert_eq(ipc_list_req_decode(in.body, &lrd, &why), 0);
	cr_assert_eq(lrd.has_after, false);
	cr_assert_eq(lrd.max_count, 3);
	ipc_in_close(&in);
	ipc_out_free(&o);
	lr.has_after = true;
	lr.after.ptr = "zz";
	lr.after.len = 2;
	OPEN_REQUEST(o, in, EF_OP_LIST_STREAMS, ipc_list_req_encode(&o, &lr));
	cr_assert_eq(ipc_list_req_decode(in.body, &lrd, &why), 0);
	cr_assert_eq(lrd.has_after, true);
	cr_assert_eq(lrd.after.len, 2);
	cr_assert_arr_eq(lrd.after.ptr, "zz", 2);
	ipc_in_close(&in);
	ipc_out_free(&o);
}

Test(ipc, small_bodies_round_trip)
{
	small_replies_round_trip();
	small_requests_round_trip();
}

Test(ipc, read_reply_round_trip)
{
	struct ipc_out o;
	struct ipc_in in;
	struct ipc_read_rep rr;
	struct ef_event ev;
	const char *why = NULL;

	OPEN_REPLY(o, in, {
		ipc_read_rep_begin(&o, 4);
		encode_events(&o, 0, 4);
		ipc_read_rep_end(&o, 99, true, 13);
	});
	cr_assert_eq(ipc_read_rep_decode(in.body, &rr, &why), 0);
	cr_assert_eq(rr.nevents, 4);
	cr_assert_eq(rr.head, 99);
	cr_assert(rr.has_last_version);
	cr_assert_eq(rr.last_version, 13);
	check_events(rr.events, 0, 4);
	ipc_in_close(&in);
	/* the wire size bound holds */
	make_event(&ev, 0);
	ipc_out_reset(&o);
	ipc_event_encode(&o, &ev);
	cr_assert_leq(o.len,
	    ipc_event_wire_size(ev.type_len, ev.metadata_len, ev.payload_len));
	ipc_out_free(&o);

	OPEN_REPLY(o, in, {
		ipc_read_rep_begin(&o, 0);
		ipc_read_rep_end(&o, 0, false, 77);
	});
	cr_assert_eq(ipc_read_rep_decode(in.body, &rr, &why), 0);
	cr_assert_eq(rr.nevents, 0);
	cr_assert_eq(rr.has_last_version, false);
	ipc_in_close(&in);
	ipc_out_free(&o);
}

Test(ipc, list_reply_round_trip)
{
	struct ipc_out o;
	struct ipc_in in;
	struct ipc_list_rep lr;
	struct ipc_stream_info si, got;
	const char *why = NULL;
	uint32_t i;

	OPEN_REPLY(o, in, {
		ipc_list_rep_begin(&o, 3);
		for (i = 0; i < 3; i++) {
			memcpy(si.stream_id, sid_bytes, UUID_LEN);
			si.stream_id[3] = (uint8_t)i;
			si.event_count = i + 1;
			si.latest_version = i;
			ipc_stream_info_encode(&o, &si);
		}
		ipc_list_rep_end(&o, false);
	});
	cr_assert_eq(ipc_list_rep_decode(in.body, &lr, &why), 0);
	cr_assert_eq(lr.nstreams, 3);
	cr_assert_eq(lr.more, false);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(ipc_stream_info_decode(
		                 &lr.streams->via.array.ptr[i], &got, &why),
		    0);
		cr_assert_eq(got.stream_id[3], i);
		cr_assert_eq(got.event_count, i + 1);
		cr_assert_eq(got.latest_version, i);
	}
	ipc_in_close(&in);
	ipc_out_free(&o);
}

Test(ipc, publish_round_trip)
{
	struct ipc_out o;
	struct ipc_in in;
	struct ipc_pub pub;
	const char *why = NULL;

	ipc_out_init(&o);
	ipc_pub_begin(&o, 1000, 1002, 3);
	encode_events(&o, 1000, 3);
	cr_assert_eq(ipc_pub_open(&in, o.buf, o.len, &pub, &why), 0);
	cr_assert_eq(pub.first_pos, 1000);
	cr_assert_eq(pub.last_pos, 1002);
	cr_assert_eq(pub.nevents, 3);
	check_events(pub.events, 1000, 3);
	ipc_in_close(&in);

	ipc_out_reset(&o);
	ipc_pub_begin(&o, 5, 500, 0);
	cr_assert_eq(ipc_pub_open(&in, o.buf, o.len, &pub, &why), 0);
	cr_assert_null(pub.events);
	cr_assert_eq(pub.nevents, 0);
	cr_assert_eq(pub.first_pos, 5);
	cr_assert_eq(pub.last_pos, 500);
	ipc_in_close(&in);
	ipc_out_free(&o);
}

/* ------------------------------------------------------------------ */
/* Hostile bytes. */

Test(ipc, every_truncation_is_refused)
{
	struct ipc_in in;
	const char *why;
	size_t cut, len;
	uint8_t *copy;
	int k, rc;

	build_samples();
	for (k = 0; k < NSAMPLES; k++) {
		len = samples[k].out.len;
		why = NULL;
		cr_assert_eq(open_any(samples[k].kind, &in, samples[k].out.buf,
		                 len, &why),
		    0, "%s: %s", samples[k].name, why);
		ipc_in_close(&in);
		for (cut = 0; cut < len; cut++) {
			copy = malloc(cut ? cut : 1);
			cr_assert_not_null(copy);
			memcpy(copy, samples[k].out.buf, cut);
			why = NULL;
			rc = open_any(samples[k].kind, &in, copy, cut, &why);
			cr_assert_neq(rc, 0, "%s cut at %zu of %zu accepted",
			    samples[k].name, cut, len);
			cr_assert_not_null(why);
			ipc_in_close(&in);
			free(copy);
		}
	}
	free_samples();
}

Test(ipc, trailing_bytes_are_refused)
{
	struct ipc_in in;
	const char *why;
	uint8_t *copy;
	size_t len;
	int k;

	build_samples();
	for (k = 0; k < NSAMPLES; k++) {
		len = samples[k].out.len;
		copy = malloc(len + 1);
		cr_assert_not_null(copy);
		memcpy(copy, samples[k].out.buf, len);
		copy[len] = 0xc0; /* a whole second object: nil */
		why = NULL;
		cr_assert_eq(open_any(samples[k].kind, &in, copy, len + 1,
		                 &why),
		    EF_S_BAD_REQUEST, "%s", samples[k].name);
		cr_assert_not_null(why);
		ipc_in_close(&in);
		free(copy);
	}
	free_samples();
}

static void
assert_bad(const void *buf, size_t len, const char *what)
{
	struct ipc_in in;
	struct ipc_pub pub;
	const char *why;

	why = NULL;
	cr_assert_eq(ipc_request_open(&in, buf, len, &why), EF_S_BAD_REQUEST,
	    "request: %s", what);
	cr_assert_not_null(why);
	ipc_in_close(&in);
	why = NULL;
	cr_assert_eq(ipc_reply_open(&in, buf, len, &why), EF_S_BAD_REQUEST,
	    "reply: %s", what);
	cr_assert_not_null(why);
	ipc_in_close(&in);
	why = NULL;
	cr_assert_eq(ipc_pub_open(&in, buf, len, &pub, &why), EF_S_BAD_REQUEST,
	    "publish: %s", what);
	cr_assert_not_null(why);
	ipc_in_close(&in);
}

Test(ipc, counts_and_lengths_beyond_the_message)
{
	/* each claims far more than the few bytes that follow */
	static const struct {
		const char *what;
		uint8_t bytes[16];
		size_t len;
	} cases[] = {
		{ "array32 of 2^32-1", { 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 1 },
		    7 },
		{ "array32 of 2^32-1, empty", { 0xdd, 0xff, 0xff, 0xff, 0xff },
		    5 },
		{ "map32 of 2^32-1", { 0xdf, 0xff, 0xff, 0xff, 0xff, 1, 1 },
		    7 },
		{ "array16 of 65535", { 0xdc, 0xff, 0xff, 0xc0, 0xc0 }, 5 },
		{ "map16 of 65535", { 0xde, 0xff, 0xff, 0xc0, 0xc0 }, 5 },
		{ "str32 of 4 GiB", { 0xdb, 0xff, 0xff, 0xff, 0xff, 'a' }, 6 },
		{ "bin32 of 4 GiB", { 0xc6, 0xff, 0xff, 0xff, 0xff, 'a' }, 6 },
		{ "ext32 of 4 GiB", { 0xc9, 0xff, 0xff, 0xff, 0xff, 1, 'a' },
		    7 },
		{ "str16", { 0xda, 0xff, 0xff, 'a' }, 4 },
		{ "str8", { 0xd9, 0xff, 'a' }, 3 },
		{ "fixstr", { 0xbf, 'a' }, 2 },
		{ "fixarray of 15", { 0x9f, 1, 2, 3 }, 4 },
		{ "fixmap of 15", { 0x8f, 1, 2, 3 }, 4 },
		{ "uint64 cut", { 0xcf, 1, 2, 3 }, 4 },
		{ "float64 cut", { 0xcb, 1, 2 }, 3 },
		{ "fixext16 cut", { 0xd8, 1, 2 }, 3 },
		{ "never-used byte", { 0xc1 }, 1 },
		{ "envelope with array32 body",
		    { 0x94, 1, 1, 1, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0 },
		    10 },
		{ "envelope with map32 body",
		    { 0x94, 1, 1, 1, 0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0,
		        0xc0 },
		    11 },
		{ "empty", { 0 }, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_bad(cases[i].bytes, cases[i].len, cases[i].what);
}

Test(ipc, too_many_objects)
{
	/* an array of 4 Mi + 1 nils: well-formed, but over the bound */
	size_t n = (4u << 20) + 1, len = 5 + n;
	uint8_t *buf = malloc(len);

	cr_assert_not_null(buf);
	buf[0] = 0xdd;
	buf[1] = (uint8_t)(n >> 24);
	buf[2] = (uint8_t)(n >> 16);
	buf[3] = (uint8_t)(n >> 8);
	buf[4] = (uint8_t)n;
	memset(buf + 5, 0xc0, n);
	assert_bad(buf, len, "4 Mi + 1 objects");
	free(buf);
}

Test(ipc, deep_nesting)
{
	/* 100000 nested one-element arrays around a nil */
	size_t depth = 100000, k;
	uint8_t *buf = malloc(depth + 1);

	cr_assert_not_null(buf);
	memset(buf, 0x91, depth);
	buf[depth] = 0xc0;
	assert_bad(buf, depth + 1, "deep nesting");
	/* and inside a valid request envelope */
	buf[0] = 0x94;
	buf[1] = 1;
	buf[2] = 5;
	buf[3] = 1;
	for (k = 4; k < depth; k++)
		buf[k] = 0x91;
	{
		struct ipc_in in;
		const char *why = NULL;
		int rc = ipc_request_open(&in, buf, depth + 1, &why);

		cr_assert_neq(rc, 0);
		ipc_in_close(&in);
	}
	free(buf);
}

/* What follows the version in a STATUS request envelope of n fields
 * packed by hand: STATUS, request id 1, then nil for every further field
 * (n may be short of the 4 a request has). */
static void
pack_status_after_version(struct ipc_out *o, uint32_t n)
{
	uint32_t i;

	msgpack_pack_uint8(&o->pk, EF_OP_STATUS);
	msgpack_pack_uint8(&o->pk, 1);
	for (i = 3; i < n; i++)
		msgpack_pack_nil(&o->pk);
}

/* A STATUS request envelope of n fields with version, packed by hand
 * into o (reset first). */
static void
pack_status_request(struct ipc_out *o, uint32_t n, uint64_t version)
{
	ipc_out_reset(o);
	msgpack_pack_array(&o->pk, n);
	msgpack_pack_uint64(&o->pk, version);
	pack_status_after_version(o, n);
}

/* ipc_request_open of o's bytes; its status. */
static int
request_status(const struct ipc_out *o)
{
	struct ipc_in in;
	const char *why = NULL;
	int st = ipc_request_open(&in, o->buf, o->len, &why);

	ipc_in_close(&in);
	return st;
}

Test(ipc, not_an_envelope)
{
	struct ipc_out o;
	struct ipc_in in;
	const char *why;

	ipc_out_init(&o);
	/* a map, a string, an empty array, a scalar */
	msgpack_pack_map(&o.pk, 0);
	assert_bad(o.buf, o.len, "map");
	ipc_out_reset(&o);
	msgpack_pack_str(&o.pk, 3);
	msgpack_pack_str_body(&o.pk, "abc", 3);
	assert_bad(o.buf, o.len, "str");
	ipc_out_reset(&o);
	msgpack_pack_array(&o.pk, 0);
	assert_bad(o.buf, o.len, "empty array");
	ipc_out_reset(&o);
	msgpack_pack_uint8(&o.pk, 1);
	assert_bad(o.buf, o.len, "scalar");

	/* request envelopes of the wrong size, correct version */
	pack_status_request(&o, 3, EF_PROTO_VERSION);
	why = NULL;
	cr_assert_eq(ipc_request_open(&in, o.buf, o.len, &why),
	    EF_S_BAD_REQUEST);
	cr_assert_not_null(why);
	ipc_in_close(&in);
	pack_status_request(&o, 5, EF_PROTO_VERSION);
	cr_assert_eq(request_status(&o), EF_S_BAD_REQUEST);

	/* the envelope fields read so far are kept for the error reply */
	ipc_out_reset(&o);
	msgpack_pack_array(&o.pk, 4);
	msgpack_pack_uint8(&o.pk, EF_PROTO_VERSION);
	msgpack_pack_uint8(&o.pk, EF_OP_APPEND);
	msgpack_pack_str(&o.pk, 1);
	msgpack_pack_str_body(&o.pk, "x", 1);
	msgpack_pack_nil(&o.pk);
	why = NULL;
	cr_assert_eq(ipc_request_open(&in, o.buf, o.len, &why),
	    EF_S_BAD_REQUEST);
	cr_assert_str_eq(why, "request_id");
	cr_assert_eq(in.version, EF_PROTO_VERSION);
	cr_assert_eq(in.op, EF_OP_APPEND);
	ipc_in_close(&in);
	ipc_out_free(&o);
}

Test(ipc, other_protocol_versions)
{
	static const uint64_t versions[] = { 0, EF_PROTO_VERSION + 1, 255,
		65536, UINT32_MAX, UINT64_MAX };
	struct ipc_out o;
	struct ipc_in in;
	struct ipc_pub pub;
	const char *why;
	size_t i, k;

	ipc_out_init(&o);
	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		pack_status_request(&o, 4, versions[i]);
		why = NULL;
		cr_assert_eq(ipc_request_open(&in, o.buf, o.len, &why),
		    EF_S_BAD_VERSION, "version %llu",
		    (unsigned long long)versions[i]);
		cr_assert_not_null(why);
		cr_assert_eq(in.version,
		    versions[i] > UINT32_MAX ? UINT32_MAX :
		                               (uint32_t)versions[i]);
		ipc_in_close(&in);
		why = NULL;
		cr_assert_eq(ipc_pub_open(&in, o.buf, o.len, &pub, &why),
		    EF_S_BAD_VERSION);
		ipc_in_close(&in);

		/* a request of another version and another shape is still
		 * a version mismatch: a newer peer must learn that */
		ipc_out_reset(&o);
		msgpack_pack_array(&o.pk, 6);
		msgpack_pack_uint64(&o.pk, versions[i]);
		for (k = 1; k < 6; k++)
			msgpack_pack_nil(&o.pk);
		cr_assert_eq(request_status(&o), EF_S_BAD_VERSION);
	}
	/* a version that is not a number is malformed */
	ipc_out_reset(&o);
	msgpack_pack_array(&o.pk, 4);
	msgpack_pack_str(&o.pk, 1);
	msgpack_pack_str_body(&o.pk, "1", 1);
	pack_status_after_version(&o, 4);
	cr_assert_eq(request_status(&o), EF_S_BAD_REQUEST);
	ipc_out_reset(&o);
	msgpack_pack_array(&o.pk, 4);
	msgpack_pack_int8(&o.pk, -1);
	pack_status_after_version(&o, 4);
	cr_assert_neq(request_status(&o), 0);
	ipc_out_free(&o);
}

/* ------------------------------------------------------------------ */
/* Every field of every body: wrong types, missing, extra, bad values. */

enum {
	T_NIL = 1 << 0,
	T_BOOL = 1 << 1,
	T_UINT = 1 << 2,
	T_NEG = 1 << 3,
	T_FLOAT = 1 << 4,
	T_STR = 1 << 5,
	T_ARRAY = 1 << 6,
	T_MAP = 1 << 7,
	T_BIN = 1 << 8,
	T_EXT = 1 << 9,
	T_ALL = (1 << 10) - 1,
};

static msgpack_object wrong[10];
static const uint8_t sixteen[16] = "0123456789abcdef";

static void
init_wrong(void)
{
	memset(wrong, 0, sizeof(wrong));
	wrong[0].type = MSGPACK_OBJECT_NIL;
	wrong[1].type = MSGPACK_OBJECT_BOOLEAN;
	wrong[1].via.boolean = true;
	wrong[2].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	wrong[2].via.u64 = 1;
	wrong[3].type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
	wrong[3].via.i64 = -1;
	wrong[4].type = MSGPACK_OBJECT_FLOAT64;
	wrong[4].via.f64 = 1.0;
	wrong[5].type = MSGPACK_OBJECT_STR;
	wrong[5].via.str.ptr = (const char *)sixteen;
	wrong[5].via.str.size = 16;
	wrong[6].type = MSGPACK_OBJECT_ARRAY;
	wrong[7].type = MSGPACK_OBJECT_MAP;
	wrong[8].type = MSGPACK_OBJECT_BIN;
	wrong[8].via.bin.ptr = (const char *)sixteen;
	wrong[8].via.bin.size = 16;
	wrong[9].type = MSGPACK_OBJECT_EXT;
	wrong[9].via.ext.type = 1;
	wrong[9].via.ext.ptr = (const char *)sixteen;
	wrong[9].via.ext.size = 1;
}

typedef int (*decode_fn)(const msgpack_object *o, const char **why);

/* Uniform wrappers (outputs are scratch). */
static struct ipc_append_req s_append;
static int
d_append(const msgpack_object *o, const char **why)
{
	int rc = ipc_append_req_decode(o, &s_append, why);

	ipc_append_req_free(&s_append);
	return rc;
}
static int
d_append_rep(const msgpack_object *o, const char **why)
{
	struct ipc_append_rep r;

	return ipc_append_rep_decode(o, &r, why);
}
static int
d_conflict(const msgpack_object *o, const char **why)
{
	struct ipc_conflict c;

	return ipc_conflict_decode(o, &c, why);
}
static int
d_read_stream(const msgpack_object *o, const char **why)
{
	struct ipc_read_stream_req r;

	return ipc_read_stream_req_decode(o, &r, why);
}
static int
d_read_all(const msgpack_object *o, const char **why)
{
	struct ipc_read_all_req r;

	return ipc_read_all_req_decode(o, &r, why);
}
static int
d_read_rep(const msgpack_object *o, const char **why)
{
	struct ipc_read_rep r;

	return ipc_read_rep_decode(o, &r, why);
}
static int
d_event(const msgpack_object *o, const char **why)
{
	struct ef_event ev;

	return ipc_event_decode(o, &ev, why);
}
static int
d_list(const msgpack_object *o, const char **why)
{
	struct ipc_list_req r;

	return ipc_list_req_decode(o, &r, why);
}
static int
d_list_rep(const msgpack_object *o, const char **why)
{
	struct ipc_list_rep r;

	return ipc_list_rep_decode(o, &r, why);
}
static int
d_stream_info(const msgpack_object *o, const char **why)
{
	struct ipc_stream_info s;

	return ipc_stream_info_decode(o, &s, why);
}
static int
d_backup_req(const msgpack_object *o, const char **why)
{
	struct ipc_backup_req r;

	return ipc_backup_req_decode(o, &r, why);
}
static int
d_backup_rep(const msgpack_object *o, const char **why)
{
	struct ipc_backup_rep r;

	return ipc_backup_rep_decode(o, &r, why);
}
static int
d_import_req(const msgpack_object *o, const char **why)
{
	struct ipc_import_req r;

	return ipc_import_req_decode(o, &r, why);
}
static int
d_import_rep(const msgpack_object *o, const char **why)
{
	struct ipc_import_rep r;

	return ipc_import_rep_decode(o, &r, why);
}
static int
d_rotate_rep(const msgpack_object *o, const char **why)
{
	struct ipc_rotate_rep r;

	return ipc_rotate_rep_decode(o, &r, why);
}
static int
d_segments_req(const msgpack_object *o, const char **why)
{
	struct ipc_segments_req r;

	return ipc_segments_req_decode(o, &r, why);
}
static int
d_segments_rep(const msgpack_object *o, const char **why)
{
	struct ipc_segments_rep r;

	return ipc_segments_rep_decode(o, &r, why);
}
static int
d_segment_info(const msgpack_object *o, const char **why)
{
	struct ipc_segment_info r;

	return ipc_segment_info_decode(o, &r, why);
}
static int
d_archive_rep(const msgpack_object *o, const char **why)
{
	struct ipc_archive_rep r;

	return ipc_archive_rep_decode(o, &r, why);
}
static int
d_status_rep(const msgpack_object *o, const char **why)
{
	struct ipc_status_rep r;

	return ipc_status_rep_decode(o, &r, why);
}

/* Envelopes: pack the object and open it. */
static int
pack_open(const msgpack_object *o, enum msg_kind kind, const char **why)
{
	struct ipc_out out;
	struct ipc_in in;
	int rc;

	ipc_out_init(&out);
	msgpack_pack_object(&out.pk, *o);
	rc = open_any(kind, &in, out.buf, out.len, why);
	ipc_in_close(&in);
	ipc_out_free(&out);
	return rc;
}
static int
d_request_env(const msgpack_object *o, const char **why)
{
	return pack_open(o, M_REQUEST, why);
}
static int
d_reply_env(const msgpack_object *o, const char **why)
{
	return pack_open(o, M_REPLY, why);
}
static int
d_pub_env(const msgpack_object *o, const char **why)
{
	return pack_open(o, M_PUB, why);
}

/* A copy of array a with element i replaced by v (or removed if v is
 * NULL, or v appended if i == size). Free ->via.array.ptr. */
static msgpack_object
with_field(const msgpack_object *a, uint32_t i, const msgpack_object *v)
{
	msgpack_object r = *a;
	uint32_t n = a->via.array.size, k, o = 0;

	r.via.array.ptr = calloc(n + 1, sizeof(msgpack_object));
	cr_assert_not_null(r.via.array.ptr);
	for (k = 0; k < n; k++) {
		if (k == i) {
			if (v != NULL)
				r.via.array.ptr[o++] = *v;
			continue;
		}
		r.via.array.ptr[o++] = a->via.array.ptr[k];
	}
	if (i >= n && v != NULL)
		r.via.array.ptr[o++] = *v;
	r.via.array.size = o;
	return r;
}

/*
 * Checks a decoder against the schema of the array it decodes: good
 * decodes; every field given each type it does not allow fails and
 * *why names the field; dropping any field fails; an extra one fails;
 * a non-array fails.
 */
static void
check_schema(const char *what, decode_fn dec, const msgpack_object *good,
    const unsigned *allowed, const char *const *names)
{
	const char *why = NULL;
	msgpack_object m;
	uint32_t n, i, t;
	int rc;

	cr_assert_eq(good->type, MSGPACK_OBJECT_ARRAY, "%s", what);
	n = good->via.array.size;
	cr_assert_eq(dec(good, &why), 0, "%s: the good one fails: %s", what,
	    why);
	for (i = 0; i < n; i++)
		for (t = 0; t < 10; t++) {
			if (allowed[i] & (1u << t))
				continue;
			m = with_field(good, i, &wrong[t]);
			why = NULL;
			rc = dec(&m, &why);
			cr_assert_neq(rc, 0,
			    "%s: field %u (%s) accepted type "
			    "%u",
			    what, i, names[i] ? names[i] : "?", t);
			cr_assert_not_null(why, "%s: no reason", what);
			if (names[i] != NULL)
				cr_assert(strstr(why, names[i]) != NULL,
				    "%s: field %u of type %u: reason \"%s\" "
				    "does not name \"%s\"",
				    what, i, t, why, names[i]);
			free(m.via.array.ptr);
		}
	for (i = 0; i < n; i++) {
		m = with_field(good, i, NULL);
		cr_assert_eq(m.via.array.size, n - 1);
		why = NULL;
		cr_assert_neq(dec(&m, &why), 0,
		    "%s: field %u missing accepted", what, i);
		cr_assert_not_null(why);
		free(m.via.array.ptr);
	}
	m = with_field(good, n, &wrong[0]);
	cr_assert_eq(m.via.array.size, n + 1);
	why = NULL;
	cr_assert_neq(dec(&m, &why), 0, "%s: extra field accepted", what);
	cr_assert_not_null(why);
	free(m.via.array.ptr);
	for (t = 0; t < 10; t++) {
		if (t == 6)
			continue;
		why = NULL;
		cr_assert_neq(dec(&wrong[t], &why), 0,
		    "%s: type %u as the "
		    "whole body",
		    what, t);
	}
}

/* Opens sample k (kind known) and returns its body (in stays open). */
static const msgpack_object *
sample_body(int k, struct ipc_in *in)
{
	const char *why = NULL;
	struct ipc_pub pub;

	switch (samples[k].kind) {
	case M_REQUEST:
		cr_assert_eq(ipc_request_open(in, samples[k].out.buf,
		                 samples[k].out.len, &why),
		    0);
		break;
	case M_REPLY:
		cr_assert_eq(ipc_reply_open(in, samples[k].out.buf,
		                 samples[k].out.len, &why),
		    0);
		break;
	case M_PUB:
		cr_assert_eq(ipc_pub_open(in, samples[k].out.buf,
		                 samples[k].out.len, &pub, &why),
		    0);
		return &in->up.data;
	}
	return in->body;
}

static int
sample_index(const char *name)
{
	int k;

	for (k = 0; k < NSAMPLES; k++)
		if (!strcmp(samples[k].name, name))
			return k;
	cr_assert_fail("no sample %s", name);
	return -1;
}

/* A copy of append body b whose events array has event k replaced by ev0
 * with field i replaced by v (or removed if v is NULL, or v appended if i
 * is past the end). Free with free_event_body. */
struct event_body {
	msgpack_object e, evs, body;
};

static void
with_event_field(struct event_body *eb, const msgpack_object *b, uint32_t k,
    uint32_t i, const msgpack_object *v)
{
	const msgpack_object *ev0 = &b->via.array.ptr[3].via.array.ptr[0];

	eb->e = with_field(ev0, i, v);
	eb->evs = with_field(&b->via.array.ptr[3], k, &eb->e);
	eb->body = with_field(b, 3, &eb->evs);
}

static void
free_event_body(struct event_body *eb)
{
	free(eb->body.via.array.ptr);
	free(eb->evs.via.array.ptr);
	free(eb->e.via.array.ptr);
}

/* The fields of one proposed event, checked through the append body b:
 * each wrong type fails naming the field; each missing field and one
 * extra fail. */
static void
check_proposed_event_schema(const msgpack_object *b)
{
	const unsigned S = T_STR, BN = T_BIN | T_NIL;
	unsigned allowed[4] = { S, S, BN, BN };
	const char *names[4] = { "event_id", "event_type", "metadata",
		"payload" };
	struct event_body eb;
	const char *why;
	uint32_t i, t;

	for (i = 0; i < 4; i++)
		for (t = 0; t < 10; t++) {
			if (allowed[i] & (1u << t))
				continue;
			why = NULL;
			with_event_field(&eb, b, 0, i, &wrong[t]);
			cr_assert_neq(d_append(&eb.body, &why), 0,
			    "event field %u type %u accepted", i, t);
			cr_assert(strstr(why, names[i]) != NULL,
			    "\"%s\" does not name %s", why, names[i]);
			free_event_body(&eb);
		}
	for (i = 0; i <= 4; i++) {
		/* missing each field, then one extra */
		why = NULL;
		with_event_field(&eb, b, 1, i, i < 4 ? NULL : &wrong[0]);
		cr_assert_neq(d_append(&eb.body, &why), 0,
		    "event with "
		    "field %u missing/extra accepted",
		    i);
		free_event_body(&eb);
	}
}

/* The short import body has no run; a run of 0 belongs to it. */
static void
check_import_run(const msgpack_object *b)
{
	struct ipc_import_req r;
	const char *why = NULL;
	msgpack_object m;

	cr_assert_eq(ipc_import_req_decode(b, &r, &why), 0);
	cr_assert_eq(r.run, 0x1234567890ull);
	cr_assert_eq(r.seq, 3);
	cr_assert_eq(r.nevents, 1);
	m = with_field(b, 2, &wrong[0]);
	m.via.array.ptr[2].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	m.via.array.ptr[2].via.u64 = 0;
	cr_assert_neq(ipc_import_req_decode(&m, &r, &why), 0);
	cr_assert(strstr(why, "run") != NULL, "%s", why);
	free(m.via.array.ptr);
}

/* The envelopes themselves (their bodies may be anything). */
static void
check_envelope_schemas(void)
{
	const unsigned U = T_UINT;
	const msgpack_object *b;
	const char *why = NULL;
	struct ipc_in in;

	cr_assert_eq(ipc_request_open(&in, samples[0].out.buf,
	                 samples[0].out.len, &why),
	    0);
	check_schema("request envelope", d_request_env, &in.up.data,
	    (const unsigned[]){ U, U, U, T_ALL },
	    (const char *const[]){ "version", "op", "request_id", NULL });
	ipc_in_close(&in);
	b = sample_body(sample_index("error reply"), &in);
	check_schema("reply envelope", d_reply_env, &in.up.data,
	    (const unsigned[]){ U, T_STR, T_ALL },
	    (const char *const[]){ "status", "message", NULL });
	ipc_in_close(&in);
	b = sample_body(sample_index("publish"), &in);
	check_schema("publish", d_pub_env, b,
	    (const unsigned[]){ U, U, U, T_ARRAY | T_NIL },
	    (const char *const[]){ "version", "first", "last", "events" });
	ipc_in_close(&in);
}

/* One body schema: the sample it is checked on, the decoder, whether it
 * is the body itself or the first element of the body's first array (an
 * event, a stream, a segment), its fields (names NULL-ended), and a
 * further check of the body, if any. */
#define SCHEMA_FIELDS 20
struct schema_case {
	const char *sample;
	const char *what;
	decode_fn dec;
	bool inner;
	unsigned allowed[SCHEMA_FIELDS];
	const char *names[SCHEMA_FIELDS];
	void (*also)(const msgpack_object *b);
};

#define U  T_UINT
#define S  T_STR
#define A  T_ARRAY
#define BN (T_BIN | T_NIL)
static const struct schema_case schemas[] = {
	{ "append request", "append", d_append, false, { S, U, U, A },
	    { "stream_id", "expected kind", "expected version", "events" },
	    check_proposed_event_schema },
	{ "read_stream request", "read_stream", d_read_stream, false,
	    { S, U, U, U },
	    { "stream_id", "from_version", "max_count", "direction" } },
	{ "read_all request", "read_all", d_read_all, false, { U, U, U },
	    { "from_position", "max_count", "direction" } },
	{ "list request", "list_streams", d_list, false, { S | T_NIL, U },
	    { "after", "max_count" } },
	{ "append reply", "append reply", d_append_rep, false, { U, U, U, U },
	    { "first_version", "last_version", "first_position",
	        "last_position" } },
	{ "conflict reply", "conflict", d_conflict, false, { T_BOOL, U },
	    { "exists", "actual" } },
	{ "read reply", "read reply", d_read_rep, false, { A, U, U | T_NIL },
	    { "events", "head", "last_version" } },
	{ "read reply", "event", d_event, true,
	    { T_BIN, T_BIN, U, U, S, BN, BN, U },
	    { "event_id", "stream_id", "stream_version", "global_position",
	        "event_type", "metadata", "payload", "recorded_at" } },
	{ "list reply", "list reply", d_list_rep, false, { A, T_BOOL },
	    { "streams", "more" } },
	{ "list reply", "stream info", d_stream_info, true, { T_BIN, U, U },
	    { "stream_id", "event_count", "latest_version" } },
	{ "status reply", "status", d_status_rep, false,
	    { U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U },
	    { "head", "streams", "log_bytes", "uptime_ms", "commits", "fsyncs",
	        "events_written", "recover_ms", "recovered_events",
	        "index_bytes", "segments", "sealed_bytes", "indexed_to",
	        "archived_segments", "archived_bytes", "archived_raw",
	        "cache_hits", "cache_misses", "cache_bytes" } },
	{ "rotate reply", "rotate reply", d_rotate_rep, false,
	    { T_BOOL, U, U, U },
	    { "rotated", "sealed_base", "sealed_events", "hot_base" } },
	{ "segments request", "segments", d_segments_req, false, { U, U },
	    { "from_base", "max_count" } },
	{ "segments reply", "segments reply", d_segments_rep, false,
	    { A, T_BOOL }, { "segments", "more" } },
	{ "segments reply", "segment info", d_segment_info, true,
	    { U, U, U, S, U },
	    { "base", "events", "bytes", "state", "stored_bytes" } },
	{ "backup request", "backup", d_backup_req, false, { S }, { "dir" } },
	{ "backup reply", "backup reply", d_backup_rep, false,
	    { U, U, U, U, U, U },
	    { "position", "segments", "linked", "copied", "bytes",
	        "index_bytes" } },
	{ "import request", "import", d_import_req, false, { T_BOOL, A },
	    { "keep_positions", "events" } },
	{ "import request (run)", "import (run)", d_import_req, false,
	    { T_BOOL, A, U, U }, { "keep_positions", "events", "run", "seq" },
	    check_import_run },
	{ "import reply", "import reply", d_import_rep, false, { U, U, U },
	    { "first_position", "count", "skipped" } },
	{ "archive reply", "archive reply", d_archive_rep, false,
	    { T_BOOL, U, U, U, U },
	    { "archived", "base", "raw_bytes", "comp_bytes", "left" } },
};
#undef U
#undef S
#undef A
#undef BN

Test(ipc, every_field_of_every_body)
{
	const struct schema_case *sc;
	const msgpack_object *b, *good;
	struct ipc_in in;
	uint32_t n;
	size_t k;

	init_wrong();
	build_samples();
	for (k = 0; k < sizeof(schemas) / sizeof(schemas[0]); k++) {
		sc = &schemas[k];
		b = sample_body(sample_index(sc->sample), &in);
		good = sc->inner ? &b->via.array.ptr[0].via.array.ptr[0] : b;
		/* the table lists every field of the sample, no more */
		n = good->via.array.size;
		cr_assert(n > 0 && n < SCHEMA_FIELDS && sc->names[n - 1] &&
		        !sc->names[n],
		    "%s: the table does not list its %u fields", sc->what, n);
		check_schema(sc->what, sc->dec, good, sc->allowed, sc->names);
		if (sc->also != NULL)
			sc->also(b);
		ipc_in_close(&in);
	}
	check_envelope_schemas();
	free_samples();
}

/* Bad values of the right type. */

/* A string or binary of size bytes of longstr, of the type of wrong[t]. */
static msgpack_object
long_value(int t, const char *longstr, uint32_t size)
{
	msgpack_object v = wrong[t];

	if (v.type == MSGPACK_OBJECT_STR) {
		v.via.str.ptr = longstr;
		v.via.str.size = size;
	} else {
		v.via.bin.ptr = longstr;
		v.via.bin.size = size;
	}
	return v;
}

/* An append: an expected kind out of range, strings and an event count
 * over their bounds (each bound itself accepted). */
static void
append_out_of_range(const msgpack_object *b, const char *longstr)
{
	struct event_body eb;
	msgpack_object v, m, body, many;
	const char *why;
	uint32_t i;

	/* expected kind 3 */
	v = wrong[2];
	v.via.u64 = EF_EXPECT_EXACT + 1;
	m = with_field(b, 1, &v);
	why = NULL;
	cr_assert_eq(d_append(&m, &why), EF_S_BAD_EXPECTED_VERSION);
	cr_assert_str_eq(why, "expected kind");
	free(m.via.array.ptr);
	/* an expected kind that is not a number: the same status */
	m = with_field(b, 1, &wrong[5]);
	why = NULL;
	cr_assert_eq(d_append(&m, &why), EF_S_BAD_EXPECTED_VERSION);
	cr_assert(strstr(why, "expected kind") != NULL, "%s", why);
	free(m.via.array.ptr);
	/* a stream id over IPC_MAX_STRLEN */
	v = long_value(5, longstr, IPC_MAX_STRLEN + 1);
	m = with_field(b, 0, &v);
	cr_assert_eq(d_append(&m, &why), EF_S_BAD_REQUEST);
	cr_assert_str_eq(why, "stream_id");
	free(m.via.array.ptr);
	v.via.str.size = IPC_MAX_STRLEN;
	m = with_field(b, 0, &v);
	cr_assert_eq(d_append(&m, &why), 0, "exactly the bound is fine");
	free(m.via.array.ptr);
	/* an event type over IPC_MAX_STRLEN */
	v.via.str.size = IPC_MAX_STRLEN + 1;
	with_event_field(&eb, b, 0, 1, &v);
	cr_assert_eq(d_append(&eb.body, &why), EF_S_BAD_REQUEST);
	cr_assert_str_eq(why, "event_type");
	free_event_body(&eb);
	/* IPC_MAX_EVENTS + 1 events (the bound itself is accepted) */
	many.type = MSGPACK_OBJECT_ARRAY;
	many.via.array.size = IPC_MAX_EVENTS + 1;
	many.via.array.ptr = calloc(IPC_MAX_EVENTS + 1,
	    sizeof(msgpack_object));
	cr_assert_not_null(many.via.array.ptr);
	for (i = 0; i <= IPC_MAX_EVENTS; i++)
		many.via.array.ptr[i] = b->via.array.ptr[3].via.array.ptr[0];
	body = with_field(b, 3, &many);
	cr_assert_eq(d_append(&body, &why), EF_S_BAD_REQUEST);
	cr_assert_str_eq(why, "events");
	free(body.via.array.ptr);
	many.via.array.size = IPC_MAX_EVENTS;
	body = with_field(b, 3, &many);
	cr_assert_eq(ipc_append_req_decode(&body, &s_append, &why), 0);
	cr_assert_eq(s_append.nevents, IPC_MAX_EVENTS);
	ipc_append_req_free(&s_append);
	free(body.via.array.ptr);
	free(many.via.array.ptr);
}

/* Direction 2, in ReadStream and in ReadAll. */
static void
direction_out_of_range(void)
{
	struct ipc_in in;
	const msgpack_object *b;
	msgpack_object v, m;
	const char *why;

	b = sample_body(sample_index("read_stream request"), &in);
	v = wrong[2];
	v.via.u64 = 2;
	m = with_field(b, 3, &v);
	cr_assert_eq(d_read_stream(&m, &why), EF_S_BAD_REQUEST);
	cr_assert_str_eq(why, "direction");
	free(m.via.array.ptr);
	ipc_in_close(&in);
	b = sample_body(sample_index("read_all request"), &in);
	m = with_field(b, 2, &v);
	cr_assert_eq(d_read_all(&m, &why), EF_S_BAD_REQUEST);
	free(m.via.array.ptr);
	ipc_in_close(&in);
}

/* Events: uuids of 15 and 17 bytes, a type over 256 bytes, a payload over
 * 64 KiB; ev0 is an event of a read reply. */
static void
event_out_of_range(const msgpack_object *ev0, const char *longstr)
{
	struct {
		uint32_t field;
		int type;
		uint32_t size;
		int ok;
	} cases[] = {
		{ 0, 8, 15, 0 },
		{ 0, 8, 17, 0 },
		{ 1, 8, 15, 0 },
		{ 1, 8, 0, 0 },
		{ 4, 5, RECORD_TYPE_MAX + 1, 0 },
		{ 4, 5, RECORD_TYPE_MAX, 1 },
		{ 5, 8, RECORD_MAX + 1, 0 },
		{ 6, 8, RECORD_MAX + 1, 0 },
		{ 6, 8, RECORD_MAX, 1 },
	};
	msgpack_object v, m;
	const char *why;
	size_t k;

	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		v = long_value(cases[k].type, longstr, cases[k].size);
		m = with_field(ev0, cases[k].field, &v);
		why = NULL;
		if (cases[k].ok)
			cr_assert_eq(d_event(&m, &why), 0, "case %zu", k);
		else
			cr_assert_eq(d_event(&m, &why), EF_S_BAD_REQUEST,
			    "case %zu", k);
		free(m.via.array.ptr);
	}
}

/* A reply [status, msg (len bytes), nil] packed by hand into o (reset
 * first): an encoder would refuse what these tests send. */
static void
pack_reply(struct ipc_out *o, uint32_t status, const char *msg, uint32_t len)
{
	ipc_out_reset(o);
	msgpack_pack_array(&o->pk, 3);
	msgpack_pack_uint32(&o->pk, status);
	msgpack_pack_str(&o->pk, len);
	msgpack_pack_str_body(&o->pk, msg, len);
	msgpack_pack_nil(&o->pk);
}

/* A reply status past the enum; a message over IPC_MAX_STRLEN, which an
 * encoder never writes (long messages are cut). longstr is 70000 bytes
 * and gets NUL-terminated. */
static void
reply_out_of_range(char *longstr)
{
	struct ipc_out o;
	struct ipc_in in;
	const char *why;

	ipc_out_init(&o);
	pack_reply(&o, EF_S__COUNT, "", 0);
	cr_assert_eq(ipc_reply_open(&in, o.buf, o.len, &why),
	    EF_S_BAD_REQUEST);
	ipc_in_close(&in);
	pack_reply(&o, EF_S_OK, longstr, IPC_MAX_STRLEN + 1);
	cr_assert_eq(ipc_reply_open(&in, o.buf, o.len, &why),
	    EF_S_BAD_REQUEST);
	cr_assert_str_eq(why, "message");
	ipc_in_close(&in);
	ipc_out_reset(&o);
	longstr[69999] = '\0';
	ipc_reply_begin(&o, EF_S_INTERNAL, longstr);
	ipc_nil(&o);
	cr_assert_eq(ipc_reply_open(&in, o.buf, o.len, &why), 0);
	cr_assert_eq(in.message.len, IPC_MAX_STRLEN);
	ipc_in_close(&in);
	ipc_out_free(&o);
}

/* A publication whose last is before its first; one whose count does
 * not match its events. */
static void
publish_out_of_range(void)
{
	struct ipc_out o;
	struct ipc_in in;
	struct ef_event ev;
	const char *why;

	ipc_out_init(&o);
	ipc_pub_begin(&o, 10, 9, 0);
	cr_assert_eq(ipc_pub_open(&in, o.buf, o.len, &(struct ipc_pub){ 0 },
	                 &why),
	    EF_S_BAD_REQUEST);
	ipc_in_close(&in);
	ipc_out_reset(&o);
	ipc_pub_begin(&o, 10, 12, 2);
	make_event(&ev, 10);
	ipc_event_encode(&o, &ev);
	make_event(&ev, 11);
	ipc_event_encode(&o, &ev);
	cr_assert_eq(ipc_pub_open(&in, o.buf, o.len, &(struct ipc_pub){ 0 },
	                 &why),
	    EF_S_BAD_REQUEST);
	cr_assert_str_eq(why, "events");
	ipc_in_close(&in);
	ipc_out_free(&o);
}

Test(ipc, values_out_of_range)
{
	struct ipc_in in;
	const msgpack_object *b;
	char *longstr;

	init_wrong();
	build_samples();
	longstr = malloc(70000);
	cr_assert_not_null(longstr);
	memset(longstr, 'a', 70000);

	b = sample_body(sample_index("append request"), &in);
	append_out_of_range(b, longstr);
	ipc_in_close(&in);
	direction_out_of_range();
	b = sample_body(sample_index("read reply"), &in);
	event_out_of_range(&b->via.array.ptr[0].via.array.ptr[0], longstr);
	ipc_in_close(&in);
	reply_out_of_range(longstr);
	publish_out_of_range();
	free(longstr);
	free_samples();
}

/* ------------------------------------------------------------------ */
/* Mutation fuzz: whatever the bytes, no crash and a reason on error. */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static void
decode_everything(const uint8_t *buf, size_t len)
{
	struct ipc_in in;
	struct ipc_pub pub;
	struct ef_event ev;
	struct ipc_read_rep rr;
	struct ipc_list_rep lr;
	struct ipc_stream_info si;
	const char *why = NULL;
	uint32_t i;

	if (ipc_request_open(&in, buf, len, &why) == 0) {
		why = NULL;
		if (d_append(in.body, &why) != 0)
			cr_assert_not_null(why);
		(void)d_read_stream(in.body, &why);
		(void)d_read_all(in.body, &why);
		(void)d_list(in.body, &why);
	} else
		cr_assert_not_null(why);
	ipc_in_close(&in);
	why = NULL;
	if (ipc_reply_open(&in, buf, len, &why) == 0) {
		(void)d_append_rep(in.body, &why);
		(void)d_conflict(in.body, &why);
		(void)d_status_rep(in.body, &why);
		if (ipc_read_rep_decode(in.body, &rr, &why) == 0)
			for (i = 0; i < rr.nevents; i++)
				(void)ipc_event_decode(
				    &rr.events->via.array.ptr[i], &ev, &why);
		if (ipc_list_rep_decode(in.body, &lr, &why) == 0)
			for (i = 0; i < lr.nstreams; i++)
				(void)ipc_stream_info_decode(
				    &lr.streams->via.array.ptr[i], &si, &why);
	} else
		cr_assert_not_null(why);
	ipc_in_close(&in);
	why = NULL;
	if (ipc_pub_open(&in, buf, len, &pub, &why) == 0) {
		cr_assert(pub.events == NULL ||
		    pub.nevents == pub.last_pos - pub.first_pos + 1);
		for (i = 0; i < pub.nevents; i++)
			(void)ipc_event_decode(&pub.events->via.array.ptr[i],
			    &ev, &why);
	} else
		cr_assert_not_null(why);
	ipc_in_close(&in);
}

Test(ipc, mutation_fuzz, .timeout = 60)
{
	uint8_t buf[4096];
	size_t len, n, j;
	int k, round;

	build_samples();
	for (k = 0; k < NSAMPLES; k++) {
		cr_assert_leq(samples[k].out.len, sizeof(buf));
		for (round = 0; round < 4000; round++) {
			len = samples[k].out.len;
			memcpy(buf, samples[k].out.buf, len);
			n = 1 + xorshift64(&rng) % 4;
			for (j = 0; j < n; j++) {
				uint64_t r = xorshift64(&rng);
				size_t at = (size_t)(r >> 8) % len;

				switch (r % 5) {
				case 0: /* flip a bit */
					buf[at] ^= (uint8_t)(1u
					    << (r >> 4 & 7));
					break;
				case 1: /* a random byte */
					buf[at] = (uint8_t)(r >> 40);
					break;
				case 2: /* an interesting byte */
					buf[at] = (const uint8_t[]){ 0xdd,
						0xdf, 0xdb, 0xc6, 0xc9, 0xff,
						0x00, 0x7f, 0xc0,
						0xc1 }[(r >> 32) % 10];
					break;
				case 3: /* cut */
					len = at + 1;
					break;
				default: /* duplicate a slice */
					if (len + 8 < sizeof(buf)) {
						memmove(buf + at + 8, buf + at,
						    len - at);
						len += 8;
					}
				}
			}
			decode_everything(buf, len);
		}
	}
	/* and plain noise */
	for (round = 0; round < 20000; round++) {
		len = xorshift64(&rng) % 64;
		for (j = 0; j < len; j++)
			buf[j] = (uint8_t)xorshift64(&rng);
		decode_everything(buf, len);
	}
	free_samples();
}

/*
 * A NUL byte inside any string of a request is a bad field, named in
 * *why: stored and runnerd keep these strings as C strings, where the
 * NUL would cut them short. An event type read back from the log is
 * the exception: what is stored is served as stored.
 */
static void
exec_with(struct ipc_exec_req *r, struct ipc_str *field, const char *s,
    size_t len, bool want, const char *name)
{
	struct ipc_exec_req back;
	struct ipc_out o;
	struct ipc_in in;
	const char *why = NULL;

	field->ptr = s;
	field->len = (uint32_t)len;
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_EXECUTE, 1);
	ipc_exec_req_encode(&o, r);
	cr_assert_eq(ipc_request_open(&in, o.buf, o.len, &why), 0, "%s", why);
	cr_assert_eq(ipc_exec_req_decode(in.body, &back, &why) != 0, want,
	    "%s: %s", name, why ? why : "");
	if (want != 0)
		cr_assert(strstr(why, name) != NULL &&
		        strstr(why, "NUL") != NULL,
		    "%s", why);
	ipc_in_close(&in);
	ipc_out_free(&o);
}

Test(ipc, nul_in_a_string_is_a_bad_field)
{
	struct ipc_exec_req r;
	struct ipc_append_req ar, back;
	struct ipc_proposed p;
	struct ipc_out o;
	struct ipc_in in;
	const char *why = NULL;

	memset(&r, 0, sizeof(r));
	r.aggregate_type.ptr = "todo";
	r.aggregate_type.len = 4;
	r.instance_id.ptr = "a";
	r.instance_id.len = 1;
	r.type.ptr = "Add";
	r.type.len = 3;
	r.command_id.ptr = "c1";
	r.command_id.len = 2;
	exec_with(&r, &r.command_id, "c1", 2, 0, "command_id");
	exec_with(&r, &r.aggregate_type, "to\0do", 5, 1, "aggregate_type");
	exec_with(&r, &r.aggregate_type, "todo", 4, 0, "aggregate_type");
	exec_with(&r, &r.instance_id, "a\0", 2, 1, "instance_id");
	exec_with(&r, &r.instance_id, "a", 1, 0, "instance_id");
	exec_with(&r, &r.actor, "\0root", 5, 1, "actor");

	/* an append's event type */
	memset(&ar, 0, sizeof(ar));
	memset(&p, 0, sizeof(p));
	ar.stream_id.ptr = "67e55044-10b1-426f-9247-bb680e5fe0c8";
	ar.stream_id.len = 36;
	p.event_id = ar.stream_id;
	p.type.ptr = "Order\0Placed";
	p.type.len = 12;
	ar.events = &p;
	ar.nevents = 1;
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_APPEND, 1);
	ipc_append_req_encode(&o, &ar);
	cr_assert_eq(ipc_request_open(&in, o.buf, o.len, &why), 0);
	cr_assert_neq(ipc_append_req_decode(in.body, &back, &why), 0);
	cr_assert(strstr(why, "NUL") != NULL, "%s", why);
	ipc_in_close(&in);
	ipc_out_free(&o);
}
