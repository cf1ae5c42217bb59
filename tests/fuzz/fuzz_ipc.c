/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ipc.c - libFuzzer entry point for the IPC decoders: any bytes,
 * opened as a request, a reply and a publish message, then every body
 * decoder on whatever body came out. Nothing may crash or leak.
 * Build and run: see tests/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>

#include "ipc.h"
#include "ipc_many.h"

static void
bodies(const msgpack_object *b)
{
	struct ipc_append_req ar;
	struct ipc_append_rep ap;
	struct ipc_conflict cf;
	struct ipc_read_stream_req rs;
	struct ipc_read_all_req ra;
	struct ipc_read_rep rr;
	struct ipc_list_req lq;
	struct ipc_list_rep lr;
	struct ipc_status_rep st;
	struct ipc_stream_info si;
	struct ef_event ev;
	struct ipc_result res;
	const char *why;
	uint32_t i, n;

	if (ipc_append_req_decode(b, &ar, &why) == 0)
		ipc_append_req_free(&ar);
	(void)ipc_append_rep_decode(b, &ap, &why);
	(void)ipc_conflict_decode(b, &cf, &why);
	(void)ipc_read_stream_req_decode(b, &rs, &why);
	(void)ipc_read_all_req_decode(b, &ra, &why);
	if (ipc_read_rep_decode(b, &rr, &why) == 0)
		for (i = 0; i < rr.nevents; i++)
			(void)ipc_event_decode(&rr.events->via.array.ptr[i],
			    &ev, &why);
	(void)ipc_list_req_decode(b, &lq, &why);
	if (ipc_list_rep_decode(b, &lr, &why) == 0)
		for (i = 0; i < lr.nstreams; i++)
			(void)ipc_stream_info_decode(
			    &lr.streams->via.array.ptr[i], &si, &why);
	(void)ipc_status_rep_decode(b, &st, &why);
	if (ipc_many_req_open(b, &n, &why) == 0)
		for (i = 0; i < n; i++)
			if (ipc_append_req_decode(&b->via.array.ptr[i], &ar,
			        &why) == 0)
				ipc_append_req_free(&ar);
	if (b->type == MSGPACK_OBJECT_ARRAY &&
	    ipc_many_rep_open(b, b->via.array.size, &why) == 0)
		for (i = 0; i < b->via.array.size; i++)
			(void)ipc_result_decode(&b->via.array.ptr[i], &res,
			    &why);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_in in;
	struct ipc_pub pub;
	const char *why;

	if (ipc_request_open(&in, data, size, &why) == 0)
		bodies(in.body);
	ipc_in_close(&in);
	if (ipc_reply_open(&in, data, size, &why) == 0)
		bodies(in.body);
	ipc_in_close(&in);
	(void)ipc_pub_open(&in, data, size, &pub, &why);
	ipc_in_close(&in);
	return 0;
}
