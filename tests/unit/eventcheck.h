/* SPDX-License-Identifier: MIT */
/*
 * eventcheck.h - what the codec unit tests (test_record.c, test_ipc.c)
 * share: the check that two events are the same, field by field.
 */
#ifndef EF_TEST_EVENTCHECK_H
#define EF_TEST_EVENTCHECK_H

#include <criterion/criterion.h>

#include "record.h"
#include "uuid.h"

/* Fails the test unless a and b carry the same ids, stream version,
 * position, time, type, metadata and payload. */
static inline void
assert_event_eq(const struct ef_event *a, const struct ef_event *b)
{
	cr_assert_arr_eq(a->event_id, b->event_id, UUID_LEN);
	cr_assert_arr_eq(a->stream_id, b->stream_id, UUID_LEN);
	cr_assert_eq(a->stream_version, b->stream_version);
	cr_assert_eq(a->global_position, b->global_position);
	cr_assert_eq(a->recorded_at, b->recorded_at);
	cr_assert_eq(a->type_len, b->type_len);
	cr_assert_arr_eq(a->type, b->type, a->type_len);
	cr_assert_eq(a->metadata_len, b->metadata_len);
	if (a->metadata_len)
		cr_assert_arr_eq(a->metadata, b->metadata, a->metadata_len);
	cr_assert_eq(a->payload_len, b->payload_len);
	if (a->payload_len)
		cr_assert_arr_eq(a->payload, b->payload, a->payload_len);
}

#endif
