/* SPDX-License-Identifier: MIT */
/*
 * ipc_many.h - APPEND_MANY: many appends in one message (proto/IPC.md).
 *
 * A message costs about one fdatasync on a small VM (nng 1.5 passes it
 * through several threads on both sides), so a sender that multiplexes
 * callers (gatewayd, the pipelined client of pipeline.h) puts every
 * append that waits into one message. Each append keeps its own stream,
 * expected version, atomicity, idempotency and result:
 *
 *   body   [append body, ...]            1..IPC_MAX_MANY APPEND bodies
 *   OK     [[status, message, body], ...] one result per append, in order
 *
 * A result's body is what APPEND's reply body would be (the positions on
 * OK, [exists, actual] on VERSION_CONFLICT, nil otherwise). The message's
 * own status is OK whenever the list could be read: an append that is
 * malformed gets BAD_REQUEST in its own result and the others proceed.
 * Only a body that is not a list (BAD_REQUEST), an empty list
 * (EMPTY_BATCH) or more than IPC_MAX_MANY entries (BATCH_TOO_LARGE)
 * fails the whole message.
 *
 * Lifetimes as in ipc.h: decoded pointers are valid until ipc_in_close().
 */
#ifndef EF_IPC_MANY_H
#define EF_IPC_MANY_H

#include <stdint.h>

#include "ipc.h"

#define IPC_MAX_MANY 4096u /* appends in one APPEND_MANY */

/* One append's result inside an APPEND_MANY reply. */
struct ipc_result {
	int status;
	struct ipc_str message;
	const msgpack_object *body;
};

/*
 * Checks an APPEND_MANY body: 0 with *n set (the entries are
 * body->via.array.ptr[0 .. n)), or the whole message's status
 * (EF_S_BAD_REQUEST, EF_S_EMPTY_BATCH, EF_S_BATCH_TOO_LARGE) with *why.
 */
int ipc_many_req_open(const msgpack_object *body, uint32_t *n,
    const char **why);
/* Checks an APPEND_MANY reply body of exactly want results. */
int ipc_many_rep_open(const msgpack_object *body, uint32_t want,
    const char **why);
/* Result i of a reply body checked by ipc_many_rep_open. */
int ipc_result_decode(const msgpack_object *o, struct ipc_result *r,
    const char **why);

/*
 * Building: ipc_request_begin(o, EF_OP_APPEND_MANY, id), then
 * ipc_many_begin(o, n), then n APPEND bodies (ipc_append_req_encode or
 * bytes already encoded, ipc_out_raw). A reply: ipc_reply_begin(o, OK),
 * ipc_many_begin(o, n), then per append ipc_result_begin() and its body.
 */
void ipc_many_begin(struct ipc_out *o, uint32_t n);
void ipc_result_begin(struct ipc_out *o, int status, const char *message);
/* Appends len bytes that are already one whole msgpack object. */
void ipc_out_raw(struct ipc_out *o, const void *p, size_t len);

#endif
