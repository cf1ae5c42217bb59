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

static void
build(struct ipc_out *o, struct ef_event *evs, uint8_t *md, uint8_t *pl,
    int status)
{
	uint64_t i;

	ipc_out_init(o);
	ipc_reply_begin(o, status, status == EF_S_OK ? "ok" : "no stream");
	ipc_read_rep_begin(o, NEV);
	for (i = 0; i < NEV; i++) {
		fill(&evs[i], i, md, pl);
		ipc_event_encode(o, &evs[i]);
	}
	ipc_read_rep_end(o, 777777, i % 2, 12);
}

Test(readrep, events_as_encoded)
{
	static uint8_t md[RECORD_MAX], pl[RECORD_MAX];
	struct ef_event evs[NEV], *got = NULL;
	struct ipc_out o;
	const char *why = "";
	uint64_t n = 0, head = 0, i;

	for (i = 0; i < sizeof(pl); i++) {
		pl[i] = (uint8_t)(i * 7);
		md[i] = (uint8_t)(i * 13);
	}
	build(&o, evs, md, pl, EF_S_OK);
	cr_assert_eq(readrep_decode(o.buf, o.len, &got, &n, &head, &why), 0,
	    "why: %s", why);
	cr_assert_eq(n, NEV);
	cr_assert_eq(head, 777777);
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
	ipc_out_free(&o);
}

Test(readrep, every_truncation_and_a_trailing_byte_are_malformed)
{
	static uint8_t md[RECORD_MAX], pl[RECORD_MAX];
	struct ef_event evs[NEV], *got;
	struct ipc_out o;
	const char *why;
	uint64_t n, head;
	uint8_t *more;
	size_t cut;
	int rc;

	build(&o, evs, md, pl, EF_S_OK);
	/* past the envelope's start every cut is an OK reply gone short */
	for (cut = 0; cut < o.len; cut++) {
		got = (struct ef_event *)1;
		rc = readrep_decode(o.buf, cut, &got, &n, &head, &why);
		cr_assert_neq(rc, 0, "a reply cut at %zu of %zu decoded", cut,
		    o.len);
		cr_assert_null(got);
		if (cut > 4)
			cr_assert_eq(rc, -1, "cut at %zu", cut);
	}
	more = malloc(o.len + 1);
	memcpy(more, o.buf, o.len);
	more[o.len] = 0xc0;
	cr_assert_eq(readrep_decode(more, o.len + 1, &got, &n, &head, &why),
	    -1);
	cr_assert_str_eq(why, "bytes after the reply");
	free(more);
	ipc_out_free(&o);
}

Test(readrep, a_reply_that_is_not_ok_is_left_to_ipc_reply_open)
{
	static uint8_t md[RECORD_MAX], pl[RECORD_MAX];
	struct ef_event evs[NEV], *got;
	struct ipc_out o;
	const char *why;
	uint64_t n, head;

	build(&o, evs, md, pl, EF_S_STREAM_NOT_FOUND);
	cr_assert_eq(readrep_decode(o.buf, o.len, &got, &n, &head, &why), 1);
	cr_assert_null(got);
	ipc_out_free(&o);
}
