/* SPDX-License-Identifier: MIT */
/*
 * test_validation.c - a real eventfold-stored refusing what it must
 * refuse, each with its own status and a message, and writing nothing:
 * malformed UUIDs, an empty batch, a duplicate event id in a batch, an
 * empty or over-long event type, a record over 64 KiB, a wrong expected
 * version (the reply names the actual version); and the read side:
 * READ_STREAM of an unknown stream, max count 0, the server's cap on the
 * count and on the bytes of a reply with clients paging through it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "harness.h"

TestSuite(validation, .fini = h_cleanup, .timeout = 60);

static struct h_stored sd;
static struct ef_client cl;

#define ASSERT_HEAD(n)                                                        \
	cr_assert_eq(h_head(&cl), (uint64_t)(n),                              \
	    "head moved: something "                                          \
	    "was written")

/*
 * An APPEND of one event (id, type "T") packed by hand: the stream id
 * may hold any bytes (sidlen of them) and kind any number, which the
 * client's encoder would not send.
 */
static void
pack_append1(struct ipc_out *o, const char *sid, uint32_t sidlen, int kind,
    const char *id)
{
	ipc_request_begin(o, EF_OP_APPEND, 1);
	msgpack_pack_array(&o->pk, 4);
	msgpack_pack_str(&o->pk, sidlen);
	msgpack_pack_str_body(&o->pk, sid, sidlen);
	msgpack_pack_uint8(&o->pk, (uint8_t)kind);
	msgpack_pack_uint8(&o->pk, 0);
	msgpack_pack_array(&o->pk, 1);
	msgpack_pack_array(&o->pk, 4);
	msgpack_pack_str(&o->pk, 36);
	msgpack_pack_str_body(&o->pk, id, 36);
	msgpack_pack_str(&o->pk, 1);
	msgpack_pack_str_body(&o->pk, "T", 1);
	msgpack_pack_nil(&o->pk);
	msgpack_pack_nil(&o->pk);
}

Test(validation, malformed_uuids)
{
	static const char *const bad[] = {
		"",
		"not-a-uuid",
		"67e55044-10b1-426f-9247-bb680e5fe0c",
		"67e55044-10b1-426f-9247-bb680e5fe0c8a",
		"67e55044-10b1-426f-9247-bb680e5fe0g8",
		"{67e55044-10b1-426f-9247-bb680e5fe0c8",
		" 67e55044-10b1-426f-9247-bb680e5fe0c8",
	};
	struct h_result r;
	char id[UUID_STR_LEN], sid[UUID_STR_LEN];
	size_t i;

	h_start_fresh(&sd, &cl, NULL, 5000);
	h_uuid(sid);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(h_append1(&cl, bad[i], EF_EXPECT_ANY, 0,
		                 h_uuid(id), "T", "{}", &r),
		    EF_S_BAD_UUID, "stream \"%s\": %s %s", bad[i],
		    ipc_status_name(r.status), r.msg);
		cr_assert(strstr(r.msg, "stream_id") != NULL, "%s", r.msg);
		cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_ANY, 0, bad[i], "T",
		                 "{}", &r),
		    EF_S_BAD_UUID, "event id \"%s\": %s", bad[i], r.msg);
		cr_assert(strstr(r.msg, "event_id") != NULL, "%s", r.msg);
	}
	/* the second event of a batch: the whole batch is refused */
	{
		struct ipc_proposed evs[2];
		char a[UUID_STR_LEN];

		evs[0] = h_proposed(h_uuid(a), "T", "{}");
		evs[1] = h_proposed("nope", "T", "{}");
		cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 2, &r),
		    EF_S_BAD_UUID);
		cr_assert(strstr(r.msg, "event 1") != NULL, "%s", r.msg);
	}
	ASSERT_HEAD(0);
	/* a malformed stream id on READ_STREAM */
	{
		struct client_reply rep;
		struct ipc_read_rep rr;

		cr_assert_eq(client_read_stream(&cl, "nope", 0, 10, EF_FORWARD,
		                 &rep, &rr),
		    EF_S_BAD_UUID);
		client_reply_free(&rep);
	}
}

Test(validation, every_uuid_form_names_the_same_stream_and_event)
{
	static const char *const forms[] = {
		"67e55044-10b1-426f-9247-bb680e5fe0c8",
		"67E55044-10B1-426F-9247-BB680E5FE0C8",
		"67e5504410b1426f9247bb680e5fe0c8",
		"{67e55044-10b1-426f-9247-bb680e5fe0c8}",
		"urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
		"URN:UUID:67E55044-10B1-426F-9247-BB680E5FE0C8",
	};
	uint8_t want[UUID_LEN], eid[UUID_LEN];
	struct h_event *evs;
	struct h_result r;
	char id[UUID_STR_LEN];
	size_t i, n;

	h_start_fresh(&sd, &cl, NULL, 5000);
	uuid_parse(forms[0], strlen(forms[0]), want);
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		cr_assert_eq(h_append1(&cl, forms[i], EF_EXPECT_EXACT, i - 1,
		                 h_uuid(id), "T", "{}", &r),
		    i == 0 ? EF_S_VERSION_CONFLICT : EF_S_OK, "%s: %s",
		    forms[i], r.msg);
		if (i == 0)
			cr_assert_eq(h_append1(&cl, forms[i],
			                 EF_EXPECT_NO_STREAM, 0, id, "T", "{}",
			                 &r),
			    EF_S_OK);
		cr_assert_eq(r.rep.first_version, i, "%s is another stream",
		    forms[i]);
	}
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		cr_assert_eq(h_read_stream(&cl, forms[i], 0, &evs, &n),
		    EF_S_OK);
		cr_assert_eq(n, 6);
		cr_assert_arr_eq(evs[0].stream_id, want, UUID_LEN);
		h_events_free(evs, n);
	}
	/* an event id given in upper case urn form is stored as its bytes */
	h_uuid(id);
	uuid_parse(id, strlen(id), eid);
	{
		char urn[64];

		snprintf(urn, sizeof(urn), "URN:UUID:%s", id);
		for (i = 9; urn[i]; i++)
			if (urn[i] >= 'a' && urn[i] <= 'f')
				urn[i] = (char)(urn[i] - 'a' + 'A');
		cr_assert_eq(h_append1(&cl, forms[2], EF_EXPECT_ANY, 0, urn,
		                 "T", "{}", &r),
		    EF_S_OK);
		/* and the same event in another form is the same event */
		cr_assert_eq(h_append1(&cl, forms[3], EF_EXPECT_ANY, 0, id,
		                 "T", "{}", &r),
		    EF_S_OK, "%s", r.msg);
		cr_assert_eq(r.rep.first_pos, 6,
		    "an idempotent retry was "
		    "written again");
	}
	cr_assert_eq(h_read_all(&cl, 6, &evs, &n), EF_S_OK);
	cr_assert_eq(n, 1);
	cr_assert_arr_eq(evs[0].event_id, eid, UUID_LEN);
	h_events_free(evs, n);
	ASSERT_HEAD(7);
}

Test(validation, empty_batch)
{
	struct h_result r;
	char sid[UUID_STR_LEN];

	h_start_fresh(&sd, &cl, NULL, 5000);
	cr_assert_eq(h_append(&cl, h_uuid(sid), EF_EXPECT_ANY, 0, NULL, 0, &r),
	    EF_S_EMPTY_BATCH);
	cr_assert_str_neq(r.msg, "");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_NO_STREAM, 0, NULL, 0, &r),
	    EF_S_EMPTY_BATCH);
	ASSERT_HEAD(0);
}

Test(validation, duplicate_event_id_in_a_batch)
{
	struct ipc_proposed evs[4];
	struct h_result r;
	char sid[UUID_STR_LEN], a[UUID_STR_LEN], b[UUID_STR_LEN], up[40];
	size_t i;

	h_start_fresh(&sd, &cl, NULL, 5000);
	h_uuid(sid);
	evs[0] = h_proposed(h_uuid(a), "T", "1");
	evs[1] = h_proposed(h_uuid(b), "T", "2");
	evs[2] = h_proposed(a, "T", "3");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 3, &r),
	    EF_S_DUPLICATE_EVENT_ID, "%s", r.msg);
	cr_assert(strstr(r.msg, a) != NULL, "the message names the id: %s",
	    r.msg);
	/* the same id in two textual forms is still the same id */
	snprintf(up, sizeof(up), "%s", b);
	for (i = 0; up[i]; i++)
		if (up[i] >= 'a' && up[i] <= 'f')
			up[i] = (char)(up[i] - 'a' + 'A');
	evs[2] = h_proposed(up, "T", "3");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 3, &r),
	    EF_S_DUPLICATE_EVENT_ID);
	ASSERT_HEAD(0);
	/* without the duplicate it goes through */
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 2, &r), EF_S_OK,
	    "%s", r.msg);
	ASSERT_HEAD(2);
}

/*
 * The contract's order: type and size are checked before stored's writer
 * now, but reported after the replay and expected-version checks, as
 * before: a request with a bad type and a wrong expected version gets
 * VERSION_CONFLICT; with the right one, BAD_EVENT_TYPE; a stored id
 * re-sent with a bad type, EVENT_ID_REUSED.
 */
Test(validation, type_errors_come_after_the_version_check)
{
	char sid[UUID_STR_LEN], id[UUID_STR_LEN], id0[UUID_STR_LEN];
	struct h_result r;

	h_start_fresh(&sd, &cl, NULL, 5000);
	h_uuid(sid);
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_ANY, 0, h_uuid(id0), "T",
	                 "{}", &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_EXACT, 5, h_uuid(id), "",
	                 "{}", &r),
	    EF_S_VERSION_CONFLICT, "%d %s", r.status, r.msg);
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_NO_STREAM, 0, id, "", "{}",
	                 &r),
	    EF_S_VERSION_CONFLICT, "%d %s", r.status, r.msg);
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_EXACT, 0, id, "", "{}", &r),
	    EF_S_BAD_EVENT_TYPE, "%d %s", r.status, r.msg);
	cr_assert_str_eq(r.msg, "event type must not be empty");
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_ANY, 0, id0, "", "{}", &r),
	    EF_S_EVENT_ID_REUSED, "%d %s", r.status, r.msg);
	cr_assert_eq(h_head(&cl), 1);
}

/* Appends one event of type to stream sid with a fresh id; its status. */
static int
append_type(const char *sid, const char *type, struct h_result *r)
{
	char id[UUID_STR_LEN];

	return h_append1(&cl, sid, EF_EXPECT_ANY, 0, h_uuid(id), type, "{}",
	    r);
}

Test(validation, event_type_length_and_encoding)
{
	char type[400], sid[UUID_STR_LEN];
	struct ipc_proposed evs[3];
	struct h_event *got;
	struct h_result r;
	size_t n;

	h_start_fresh(&sd, &cl, NULL, 5000);
	h_uuid(sid);
	cr_assert_eq(append_type(sid, "", &r), EF_S_BAD_EVENT_TYPE, "%s",
	    r.msg);
	memset(type, 'x', sizeof(type));
	type[257] = '\0';
	cr_assert_eq(append_type(sid, type, &r), EF_S_BAD_EVENT_TYPE,
	    "257 bytes: %s", r.msg);
	type[300] = 'x';
	type[399] = '\0';
	cr_assert_eq(append_type(sid, type, &r), EF_S_BAD_EVENT_TYPE,
	    "399 bytes: %s", r.msg);
	cr_assert_eq(append_type(sid, "Bad\xff\xfeUTF8", &r),
	    EF_S_BAD_EVENT_TYPE);
	cr_assert_eq(append_type(sid, "Half\xc3", &r), EF_S_BAD_EVENT_TYPE);
	/* a bad type in the last event of a batch: nothing of it lands */
	{
		char a[UUID_STR_LEN], b[UUID_STR_LEN], c[UUID_STR_LEN];

		evs[0] = h_proposed(h_uuid(a), "Good", "{}");
		evs[1] = h_proposed(h_uuid(b), "Good", "{}");
		evs[2] = h_proposed(h_uuid(c), "", "{}");
		cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 3, &r),
		    EF_S_BAD_EVENT_TYPE);
		cr_assert_str_eq(r.msg, "event type must not be empty");
	}
	ASSERT_HEAD(0);
	{
		struct client_reply rep;
		struct ipc_read_rep rr;

		cr_assert_eq(client_read_stream(&cl, sid, 0, 10, EF_FORWARD,
		                 &rep, &rr),
		    EF_S_STREAM_NOT_FOUND,
		    "a refused batch "
		    "created its stream");
		client_reply_free(&rep);
	}
	/* exactly 256 bytes, and multi-byte UTF-8, are fine */
	type[256] = '\0';
	cr_assert_eq(append_type(sid, type, &r), EF_S_OK, "%s", r.msg);
	cr_assert_eq(append_type(sid,
	                 "Caf\xc3\xa9\xe2\x9c\x93\xf0\x9f\x8e\x89", &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(h_read_stream(&cl, sid, 0, &got, &n), EF_S_OK);
	cr_assert_eq(n, 2);
	cr_assert_eq(got[0].type_len, 256);
	cr_assert_arr_eq(got[0].type, type, 256);
	cr_assert_eq(got[1].type_len, 12);
	h_events_free(got, n);
}

Test(validation, record_over_64k)
{
	/* counted as EventfoldDB counts its record: 74 + type + metadata +
	 * payload (our own header is 72: the limit is EventfoldDB's) */
	size_t plen = RECORD_MAX - RECORD_API_HDR - 1;
	uint8_t *payload = malloc(plen + 2);
	struct ipc_proposed evs[2];
	struct h_event *got;
	struct h_result r;
	char sid[UUID_STR_LEN], a[UUID_STR_LEN], b[UUID_STR_LEN];
	size_t n;

	cr_assert_not_null(payload);
	for (n = 0; n < plen + 2; n++)
		payload[n] = (uint8_t)(n * 31);
	h_start_fresh(&sd, &cl, NULL, 5000);
	h_uuid(sid);
	evs[0] = h_proposed(h_uuid(a), "T", NULL);
	evs[0].payload = payload;
	evs[0].payload_len = (uint32_t)plen + 1;
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 1, &r),
	    EF_S_RECORD_TOO_LARGE, "65537-byte record: %s", r.msg);
	/* metadata counts too */
	evs[0].payload_len = (uint32_t)plen - 10;
	evs[0].metadata = payload;
	evs[0].metadata_len = 11;
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 1, &r),
	    EF_S_RECORD_TOO_LARGE);
	/* an oversized second event refuses the first one as well */
	evs[0] = h_proposed(a, "T", "small");
	evs[1] = h_proposed(h_uuid(b), "T", NULL);
	evs[1].payload = payload;
	evs[1].payload_len = (uint32_t)plen + 1;
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 2, &r),
	    EF_S_RECORD_TOO_LARGE);
	ASSERT_HEAD(0);
	/* exactly 64 KiB is fine, and comes back intact */
	evs[1].payload_len = (uint32_t)plen;
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs + 1, 1, &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(h_read_stream(&cl, sid, 0, &got, &n), EF_S_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(got[0].payload_len, plen);
	cr_assert_arr_eq(got[0].payload, payload, plen);
	h_events_free(got, n);
	free(payload);
}

Test(validation, batch_over_max_append_bytes)
{
	static const char *const extra[] = { "--max-append-bytes", "1K",
		NULL };
	struct ipc_proposed evs[3];
	struct h_result r;
	char sid[UUID_STR_LEN], a[3][UUID_STR_LEN], payload[400];

	memset(payload, 'p', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	h_start_fresh(&sd, &cl, extra, 5000);
	h_uuid(sid);
	for (int i = 0; i < 3; i++)
		evs[i] = h_proposed(h_uuid(a[i]), "T", payload);
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 3, &r),
	    EF_S_BATCH_TOO_LARGE, "%s", r.msg);
	ASSERT_HEAD(0);
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 2, &r), EF_S_OK,
	    "%s", r.msg);
	ASSERT_HEAD(2);
}

Test(validation, expected_version)
{
	struct ipc_proposed evs[2];
	struct h_result r;
	char sid[UUID_STR_LEN], other[UUID_STR_LEN], a[UUID_STR_LEN],
	    b[UUID_STR_LEN], id[UUID_STR_LEN];

	h_start_fresh(&sd, &cl, NULL, 5000);
	h_uuid(sid);
	h_uuid(other);
	/* exact(n) and no_stream on a missing stream */
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_EXACT, 0, h_uuid(id), "T",
	                 "{}", &r),
	    EF_S_VERSION_CONFLICT);
	cr_assert(r.has_conflict, "no conflict body");
	cr_assert_eq(r.conflict.exists, false);
	cr_assert_str_eq(r.msg,
	    "wrong expected version: expected 0, actual "
	    "NoStream");
	ASSERT_HEAD(0);

	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_NO_STREAM, 0, id, "T", "{}",
	                 &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(r.rep.first_version, 0);
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_EXACT, 0, h_uuid(id), "T",
	                 "{}", &r),
	    EF_S_OK);
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_EXACT, 1, h_uuid(id), "T",
	                 "{}", &r),
	    EF_S_OK);
	cr_assert_eq(r.rep.last_version, 2);
	cr_assert_eq(h_append1(&cl, other, EF_EXPECT_ANY, 0, h_uuid(id), "T",
	                 "{}", &r),
	    EF_S_OK);
	ASSERT_HEAD(4);

	/* wrong: too high, too low, no_stream on an existing stream */
	{
		static const struct {
			int kind;
			uint64_t v;
		} wrong[] = {
			{ EF_EXPECT_EXACT, 5 },
			{ EF_EXPECT_EXACT, 3 },
			{ EF_EXPECT_EXACT, 1 },
			{ EF_EXPECT_EXACT, 0 },
			{ EF_EXPECT_EXACT, UINT64_MAX },
			{ EF_EXPECT_NO_STREAM, 0 },
		};
		size_t i;

		for (i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
			cr_assert_eq(h_append1(&cl, sid, wrong[i].kind,
			                 wrong[i].v, h_uuid(id), "T", "{}",
			                 &r),
			    EF_S_VERSION_CONFLICT, "case %zu: %s", i, r.msg);
			cr_assert(r.has_conflict);
			cr_assert_eq(r.conflict.exists, true);
			cr_assert_eq(r.conflict.actual, 2, "case %zu", i);
			cr_assert(strstr(r.msg, "actual 2") != NULL,
			    "the message names the actual version: %s", r.msg);
		}
	}
	/* a two-event batch with a wrong version writes neither */
	evs[0] = h_proposed(h_uuid(a), "T", "{}");
	evs[1] = h_proposed(h_uuid(b), "T", "{}");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_EXACT, 7, evs, 2, &r),
	    EF_S_VERSION_CONFLICT);
	ASSERT_HEAD(4);
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_EXACT, 2, evs, 2, &r),
	    EF_S_OK);
	cr_assert_eq(r.rep.first_version, 3);
	cr_assert_eq(r.rep.last_version, 4);
	cr_assert_eq(r.rep.first_pos, 4);
	cr_assert_eq(r.rep.last_pos, 5);
	/* any always works */
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_ANY, 0, h_uuid(id), "T",
	                 "{}", &r),
	    EF_S_OK);
	cr_assert_eq(r.rep.first_version, 5);
	ASSERT_HEAD(7);
}

Test(validation, bad_expected_kind_is_refused)
{
	struct ipc_out o;
	struct client_reply rep;
	char sid[UUID_STR_LEN], id[UUID_STR_LEN];
	int st;

	h_start_fresh(&sd, &cl, NULL, 5000);
	h_uuid(sid);
	h_uuid(id);
	ipc_out_init(&o);
	pack_append1(&o, sid, 36, 3 /* no such kind */, id);
	st = client_call(&cl, &o, &rep);
	cr_assert_eq(st, EF_S_BAD_EXPECTED_VERSION, "%s: %.*s",
	    ipc_status_name(st), (int)rep.in.message.len, rep.in.message.ptr);
	client_reply_free(&rep);
	ipc_out_free(&o);
	ASSERT_HEAD(0);
}

/*
 * A NUL byte in a string field is refused, never cut short: as a C
 * string "Order\0Placed" would be "Order", and a stream id with a NUL
 * after 36 good characters would name another stream.
 */
Test(validation, nul_in_strings_is_refused)
{
	static const char type[] = "Order\0Placed";
	struct ipc_proposed p;
	struct h_result r;
	struct ipc_out o;
	struct client_reply rep;
	char sid[UUID_STR_LEN + 2], id[UUID_STR_LEN + 2];
	int st;

	h_start_fresh(&sd, &cl, NULL, 5000);
	h_uuid(sid);
	/* the type */
	p = h_proposed(h_uuid(id), "T", "{}");
	p.type.ptr = type;
	p.type.len = sizeof(type) - 1;
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, &p, 1, &r),
	    EF_S_BAD_REQUEST, "%s", r.msg);
	cr_assert(strstr(r.msg, "NUL") != NULL, "%s", r.msg);
	/* the event id, a good uuid followed by a NUL and more */
	p = h_proposed(id, "T", "{}");
	memcpy(id + 36, "\0x", 2);
	p.event_id.len = 38;
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, &p, 1, &r),
	    EF_S_BAD_REQUEST, "%s", r.msg);
	cr_assert(strstr(r.msg, "NUL") != NULL, "%s", r.msg);
	ASSERT_HEAD(0);
	/* the stream id, on APPEND and READ_STREAM */
	h_uuid(id);
	p = h_proposed(id, "T", "{}");
	memcpy(sid + 36, "\0x", 2);
	ipc_out_init(&o);
	pack_append1(&o, sid, 38, EF_EXPECT_ANY, id);
	st = client_call(&cl, &o, &rep);
	cr_assert_eq(st, EF_S_BAD_REQUEST, "%s", ipc_status_name(st));
	client_reply_free(&rep);
	ipc_out_reset(&o);
	ipc_request_begin(&o, EF_OP_READ_STREAM, 2);
	msgpack_pack_array(&o.pk, 4);
	msgpack_pack_str(&o.pk, 38);
	msgpack_pack_str_body(&o.pk, sid, 38);
	msgpack_pack_uint8(&o.pk, 0);
	msgpack_pack_uint8(&o.pk, 10);
	msgpack_pack_uint8(&o.pk, EF_FORWARD);
	h_call_refused(&cl, &o, EF_S_BAD_REQUEST, "NUL");
	ipc_out_free(&o);
	ASSERT_HEAD(0);
	/* the same without the NUL is fine */
	sid[36] = '\0';
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, &p, 1, &r), EF_S_OK,
	    "%s", r.msg);
	ASSERT_HEAD(1);
}

/* ------------------------------------------------------------------ */
/* Reads. */

static void
fill(int nstreams, int per_stream, char sids[][UUID_STR_LEN])
{
	struct h_result r;
	char id[UUID_STR_LEN], payload[64];
	int k, s;

	for (s = 0; s < nstreams; s++)
		h_uuid(sids[s]);
	/* interleaved: position p belongs to stream p % nstreams */
	for (k = 0; k < per_stream; k++)
		for (s = 0; s < nstreams; s++) {
			snprintf(payload, sizeof(payload),
			    "{\"s\":%d,\"k\":%d}", s, k);
			cr_assert_eq(h_append1(&cl, sids[s], EF_EXPECT_ANY, 0,
			                 h_uuid(id), "Filled", payload, &r),
			    EF_S_OK, "%s", r.msg);
		}
}

Test(validation, read_stream_not_found)
{
	struct client_reply rep;
	struct ipc_read_rep rr;
	char sids[1][UUID_STR_LEN], missing[UUID_STR_LEN], *out = NULL,
	                                                   *err = NULL;
	int rc;

	h_start_fresh(&sd, &cl, NULL, 5000);
	fill(1, 3, sids);
	cr_assert_eq(client_read_stream(&cl, h_uuid(missing), 0, 10,
	                 EF_FORWARD, &rep, &rr),
	    EF_S_STREAM_NOT_FOUND);
	cr_assert_eq(rr.nevents, 0);
	cr_assert_eq(rr.head, 3, "the reply still carries the head");
	client_reply_free(&rep);
	cr_assert_eq(client_read_stream(&cl, missing, EF_FROM_END, 10,
	                 EF_BACKWARD, &rep, &rr),
	    EF_S_STREAM_NOT_FOUND);
	client_reply_free(&rep);
	/* and through the CLI: exit status 4 */
	rc = h_ctl(sd.dir,
	    (const char *const[]){ "--runtime-dir", sd.run_dir, "read",
	        missing, NULL },
	    NULL, 0, 10000, &out, &err);
	cr_assert_eq(rc, 4, "eventfoldctl read of a missing stream: %d (%s)",
	    rc, err);
	cr_assert(strstr(err, "STREAM_NOT_FOUND") != NULL, "%s", err);
	free(out);
	free(err);
}

Test(validation, max_count_zero_returns_nothing)
{
	struct client_reply rep;
	struct ipc_read_rep rr;
	char sids[2][UUID_STR_LEN];

	h_start_fresh(&sd, &cl, NULL, 5000);
	fill(2, 3, sids);
	cr_assert_eq(client_read_all(&cl, 0, 0, EF_FORWARD, &rep, &rr),
	    EF_S_OK);
	cr_assert_eq(rr.nevents, 0);
	cr_assert_eq(rr.head, 6);
	client_reply_free(&rep);
	cr_assert_eq(client_read_all(&cl, EF_FROM_END, 0, EF_BACKWARD, &rep,
	                 &rr),
	    EF_S_OK);
	cr_assert_eq(rr.nevents, 0);
	client_reply_free(&rep);
	cr_assert_eq(client_read_stream(&cl, sids[1], 0, 0, EF_FORWARD, &rep,
	                 &rr),
	    EF_S_OK);
	cr_assert_eq(rr.nevents, 0);
	cr_assert(rr.has_last_version);
	cr_assert_eq(rr.last_version, 2);
	client_reply_free(&rep);
	cr_assert_eq(client_read_stream(&cl, sids[1], EF_FROM_END, 0,
	                 EF_BACKWARD, &rep, &rr),
	    EF_S_OK);
	cr_assert_eq(rr.nevents, 0);
	client_reply_free(&rep);
}

/* Reads one page; returns the positions (or versions) it held. */
static uint32_t
page(int all, const char *sid, uint64_t from, uint64_t max, int dir,
    uint64_t *out, uint64_t *head)
{
	struct client_reply rep;
	struct ipc_read_rep rr;
	struct ef_event e;
	const char *why;
	uint32_t i;
	int st;

	st = all ? client_read_all(&cl, from, max, dir, &rep, &rr) :
	           client_read_stream(&cl, sid, from, max, dir, &rep, &rr);
	cr_assert_eq(st, EF_S_OK, "%s", ipc_status_name(st));
	for (i = 0; i < rr.nevents; i++) {
		cr_assert_eq(ipc_event_decode(&rr.events->via.array.ptr[i], &e,
		                 &why),
		    0);
		out[i] = all ? e.global_position : e.stream_version;
	}
	*head = rr.head;
	client_reply_free(&rep);
	return rr.nevents;
}

Test(validation, server_caps_the_count_and_clients_page)
{
	static const char *const extra[] = { "--max-read-count", "10", NULL };
	char sids[3][UUID_STR_LEN], *out = NULL, *err = NULL, *p;
	uint64_t got[64], head, next, seen;
	uint32_t n, i;
	int rc, lines;

	h_start_fresh(&sd, &cl, extra, 5000);
	fill(3, 12, sids); /* 36 events, 12 in each stream */

	/* forward over the log: pages of 10 whatever was asked */
	for (next = 0, seen = 0;; next = got[n - 1] + 1) {
		n = page(1, NULL, next, 1000, EF_FORWARD, got, &head);
		cr_assert_eq(head, 36);
		if (n == 0)
			break;
		cr_assert_leq(n, 10, "the cap was not applied");
		cr_assert_eq(n, seen + 10 <= 36 ? 10 : 36 - seen);
		for (i = 0; i < n; i++)
			cr_assert_eq(got[i], seen + i,
			    "position out of order");
		seen += n;
	}
	cr_assert_eq(seen, 36);
	/* backward from the end */
	n = page(1, NULL, EF_FROM_END, 1000, EF_BACKWARD, got, &head);
	cr_assert_eq(n, 10);
	for (i = 0; i < n; i++)
		cr_assert_eq(got[i], 35 - i);
	n = page(1, NULL, 4, 1000, EF_BACKWARD, got, &head);
	cr_assert_eq(n, 5);
	cr_assert_eq(got[4], 0);
	/* past the head: nothing */
	cr_assert_eq(page(1, NULL, 36, 1000, EF_FORWARD, got, &head), 0);
	cr_assert_eq(page(1, NULL, 1000, 5, EF_FORWARD, got, &head), 0);
	/* a stream, forward and backward */
	n = page(0, sids[1], 0, 1000, EF_FORWARD, got, &head);
	cr_assert_eq(n, 10);
	for (i = 0; i < n; i++)
		cr_assert_eq(got[i], i);
	n = page(0, sids[1], 10, 1000, EF_FORWARD, got, &head);
	cr_assert_eq(n, 2);
	cr_assert_eq(got[1], 11);
	n = page(0, sids[1], EF_FROM_END, 3, EF_BACKWARD, got, &head);
	cr_assert_eq(n, 3);
	cr_assert_eq(got[0], 11);
	cr_assert_eq(got[2], 9);
	cr_assert_eq(page(0, sids[1], 12, 10, EF_FORWARD, got, &head), 0);

	/* eventfoldctl pages through the cap by itself */
	rc = h_ctl(sd.dir,
	    (const char *const[]){ "--runtime-dir", sd.run_dir, "read", "all",
	        "--json", NULL },
	    NULL, 0, 10000, &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	for (lines = 0, p = out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	cr_assert_eq(lines, 36, "eventfoldctl read all printed %d events",
	    lines);
	free(out);
	free(err);
	rc = h_ctl(sd.dir,
	    (const char *const[]){ "--runtime-dir", sd.run_dir, "read",
	        sids[2], "--backward", "--json", NULL },
	    NULL, 0, 10000, &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	for (lines = 0, p = out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	cr_assert_eq(lines, 12, "%s", out);
	free(out);
	free(err);
}

Test(validation, server_caps_the_bytes_but_returns_at_least_one)
{
	static const char *const extra[] = { "--max-read-bytes", "1K", NULL };
	char sid[UUID_STR_LEN], id[UUID_STR_LEN], payload[3000];
	struct h_result r;
	struct h_event *evs;
	uint64_t got[64], head;
	uint32_t n;
	size_t total;
	int k;

	h_start_fresh(&sd, &cl, extra, 5000);
	h_uuid(sid);
	for (k = 0; k < 10; k++) {
		int len = k == 5 ? 2500 : 300;

		memset(payload, 'a' + k, (size_t)len);
		payload[len] = '\0';
		cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_ANY, 0, h_uuid(id),
		                 "Big", payload, &r),
		    EF_S_OK);
	}
	/* about 1 KiB per reply: two or three 300-byte events */
	n = page(1, NULL, 0, 100, EF_FORWARD, got, &head);
	cr_assert(n >= 1 && n <= 3, "%u events in a 1K reply", n);
	/* a single event larger than the cap still comes, alone */
	n = page(1, NULL, 5, 100, EF_FORWARD, got, &head);
	cr_assert_eq(n, 1);
	cr_assert_eq(got[0], 5);
	/* and paging still sees everything exactly once */
	cr_assert_eq(h_read_all(&cl, 0, &evs, &total), EF_S_OK);
	cr_assert_eq(total, 10);
	for (k = 0; k < 10; k++) {
		cr_assert_eq(evs[k].pos, (uint64_t)k);
		cr_assert_eq(evs[k].payload_len, k == 5 ? 2500 : 300);
		cr_assert_eq(evs[k].payload[0], 'a' + k);
	}
	h_events_free(evs, total);
}

Test(validation, list_streams)
{
	char sids[5][UUID_STR_LEN], *out = NULL, *err = NULL, *p;
	int rc, lines;

	h_start_fresh(&sd, &cl, NULL, 5000);
	fill(5, 2, sids);
	rc = h_ctl(sd.dir,
	    (const char *const[]){ "--runtime-dir", sd.run_dir, "streams",
	        "--json", NULL },
	    NULL, 0, 10000, &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	for (lines = 0, p = out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	cr_assert_eq(lines, 5, "%s", out);
	for (int s = 0; s < 5; s++)
		cr_assert(strstr(out, sids[s]) != NULL, "%s missing", sids[s]);
	cr_assert(strstr(out, "\"event_count\":2,\"latest_version\":1") !=
	        NULL,
	    "%s", out);
	/* sorted by id */
	{
		char *prev = NULL, *q = out;

		while ((q = strstr(q, "\"stream_id\":\"")) != NULL) {
			q += 13;
			if (prev != NULL)
				cr_assert_lt(strncmp(prev, q, 36), 0,
				    "not sorted: %s", out);
			prev = q;
		}
	}
	free(out);
	free(err);
}
