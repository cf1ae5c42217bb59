/* SPDX-License-Identifier: MIT */
/*
 * ipc_many.c - encoding and decoding of APPEND_MANY (ipc_many.h). The
 * entries themselves are APPEND bodies: ipc.c's decoder reads each one.
 */
#include <string.h>

#include "ipc_field.h"
#include "ipc_many.h"

_Static_assert(IPC_MAX_MANY == 4096, "update the message below");

int
ipc_many_req_open(const msgpack_object *body, uint32_t *n, const char **why)
{
	*n = 0;
	if (body->type != MSGPACK_OBJECT_ARRAY) {
		*why = "append_many body must be a list of appends";
		return EF_S_BAD_REQUEST;
	}
	if (body->via.array.size == 0) {
		*why = "append_many: no appends";
		return EF_S_EMPTY_BATCH;
	}
	if (body->via.array.size > IPC_MAX_MANY) {
		*why = "append_many: more than 4096 appends in one message";
		return EF_S_BATCH_TOO_LARGE;
	}
	*n = body->via.array.size;
	return 0;
}

int
ipc_many_rep_open(const msgpack_object *body, uint32_t want, const char **why)
{
	if (ipcf_array(body, want, "append_many results", why) != 0)
		return EF_S_BAD_REQUEST;
	return 0;
}

int
ipc_result_decode(const msgpack_object *o, struct ipc_result *r,
    const char **why)
{
	uint64_t st;

	memset(r, 0, sizeof(*r));
	FIELD(ipcf_array(o, 3, "result", why));
	FIELD(
	    ipcf_u64_max(F(o, 0), &st, EF_S__COUNT - 1, "result status", why));
	FIELD(ipcf_str(F(o, 1), &r->message, IPC_MAX_STRLEN, "result message",
	    why));
	r->status = (int)st;
	r->body = F(o, 2);
	return 0;
}

void
ipc_many_begin(struct ipc_out *o, uint32_t n)
{
	msgpack_pack_array(&o->pk, n);
}

void
ipc_result_begin(struct ipc_out *o, int status, const char *message)
{
	/* a result has the shape of a reply envelope */
	ipc_reply_begin(o, status, message);
}

void
ipc_out_raw(struct ipc_out *o, const void *p, size_t len)
{
	if (len > 0)
		o->pk.callback(o->pk.data, p, len);
}
