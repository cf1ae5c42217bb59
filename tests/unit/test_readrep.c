/* SPDX-License-Identifier: MIT */
/*
 * test_readrep.c - unit tests of eventfoldctl export's decoder of READ
 * replies (clients/eventfoldctl/readrep.c) against replies built with
 * libcommon's own encoder: the events come back as ipc_event_decode
 * sees them, every truncation and a trailing byte are malformed, and a
 * reply that is not OK is left to ipc_reply_open.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "ipc.h"
#include "readrep.h"
#include "record.h"

#define NEV 5

static void
fill(struct ef_event *ev, uint64_t i, uint8_t *md, uint8_t *pl)
{
	memset(ev, 0, sizeof(*ev));
	memset(ev->event_id, (int)(0x10 + i), UUID_LEN);
	memset(ev->stream_id, (int)(0x80 + i), UUID_LEN);
	ev->stream_version = i * 300;  /* fixint, uint16 forms */
	ev->global_position = i << 33; /* up to uint64 */
	ev->recorded_at = 1764633600000ull + i;
	ev->type = i % 2 ? "OrderPlaced" : "x";
	ev->type_len = (uint32_t)strlen(ev->type);
	/* nil (no bytes), short and long (bin16) metadata and payloads */
	ev->metadata = i == 0 ? NULL : md;
	ev->metadata_len = i == 0 ? 0 : (uint32_t)(i * 70);
	ev->payload = pl;
	ev->payload_len = (uint32_t)(1 + i * 5000);
}

static uint8_t md[RECORD_MAX], pl[RECORD_MAX];

/* A READ reply of NEV events, and what readrep_decode made of it. */
struct reply {
	struct ipc_out o;
	struct ef_event evs[NEV];
	struct ef_event *got;
	uint64_t n, head;
	const char *why;
};

static void
build(struct reply *r, int status)
{
	uint64_t i;

	memset(r, 0, sizeof(*r));
	r->why = "";
	ipc_out_init(&r->o);
	ipc_reply_begin(&r->o, status, status == EF_S_OK ? "ok" : "no stream");
	ipc_read_rep_begin(&r->o, NEV);
	for (i = 0; i < NEV; i++) {
		fill(&r->evs[i], i, md, pl);
		ipc_event_encode(&r->o, &r->evs[i]);
	}
	ipc_read_rep_end(&r->o, 777777, i % 2, 12);
}

/* readrep_decode of len bytes of buf into r; its return. */
static int
decode(struct reply *r, const void *buf, size_t len)
{
	return readrep_decode(buf, len, &r->got, &r->n, &r->head, &r->why);
}

Test(readrep, events_as_encoded)
{
	struct reply r;
	struct ef_event *evs = r.evs, *got;
	uint64_t i;

	for (i = 0; i < sizeof(pl); i++) {
		pl[i] = (uint8_t)(i * 7);
		md[i] = (uint8_t)(i * 13);
	}
	build(&r, EF_S_OK);
	cr_assert_eq(decode(&r, r.o.buf, r.o.len), 0, "why: %s", r.why);
	got = r.got;
	cr_assert_eq(r.n, NEV);
	cr_assert_eq(r.head, 777777);
	for (i = 0; i < NEV; i++) {
		cr_assert_arr_eq(got[i].event_id, evs[i].event_id, UUID_LEN);
		cr_assert_arr_eq(got[i].stream_id, evs[i].stream_id, UUID_LEN);
		cr_assert_eq(got[i].stream_version, evs[i].stream_version);
		cr_assert_eq(got[i].global_position, evs[i].global_position);
		cr_assert_eq(got[i].recorded_at, evs[i].recorded_at);
		cr_assert_eq(got[i].type_len, evs[i].type_len);
		cr_assert_arr_eq(got[i].type, evs[i].type, evs[i].type_len);
		cr_assert_eq(got[i].metadata_len, evs[i].metadata_len);
		if (evs[i].metadata_len)
			cr_assert_arr_eq(got[i].metadata, md,
			    evs[i].metadata_len);
		cr_assert_eq(got[i].payload_len, evs[i].payload_len);
		cr_assert_arr_eq(got[i].payload, pl, evs[i].payload_len);
	}
	free(got);
	ipc_out_free(&r.o);
}

Test(readrep, every_truncation_and_a_trailing_byte_are_malformed)
{
	struct reply r;
	uint8_t *more;
	size_t cut;
	int rc;

	build(&r, EF_S_OK);
	/* past the envelope's start every cut is an OK reply gone short */
	for (cut = 0; cut < r.o.len; cut++) {
		r.got = (struct ef_event *)1;
		rc = decode(&r, r.o.buf, cut);
		cr_assert_neq(rc, 0, "a reply cut at %zu of %zu decoded", cut,
		    r.o.len);
		cr_assert_null(r.got);
		if (cut > 4)
			cr_assert_eq(rc, -1, "cut at %zu", cut);
	}
	more = malloc(r.o.len + 1);
	memcpy(more, r.o.buf, r.o.len);
	more[r.o.len] = 0xc0;
	cr_assert_eq(decode(&r, more, r.o.len + 1), -1);
	cr_assert_str_eq(r.why, "bytes after the reply");
	free(more);
	ipc_out_free(&r.o);
}

Test(readrep, a_reply_that_is_not_ok_is_left_to_ipc_reply_open)
{
	struct reply r;

	build(&r, EF_S_STREAM_NOT_FOUND);
	cr_assert_eq(decode(&r, r.o.buf, r.o.len), 1);
	cr_assert_null(r.got);
	ipc_out_free(&r.o);
}
