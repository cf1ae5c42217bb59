/* SPDX-License-Identifier: MIT */
/*
 * trace.h - request ids, so that one call can be followed across the
 * daemons (proto/IPC.md, "Request ids").
 *
 * Every request envelope carries a request_id. The gateway takes a new
 * one for each gRPC call (trace_id_new) and puts it on every request it
 * sends for that call; the append pipeline takes one for each
 * APPEND_MANY it sends. stored and runnerd log the id of a request with
 * every error they reply to it (trace_reply), and the gateway logs it
 * with a call that ends in an error, so a failing call's lines in the
 * three journals can be matched by the id. Ids are printed as sixteen
 * hex digits (TRACE_FMT).
 */
#ifndef EF_TRACE_H
#define EF_TRACE_H

#include <inttypes.h>
#include <stdint.h>

#define TRACE_FMT "%016" PRIx64

/*
 * A new request id, never 0 and never the same twice in this process;
 * the first is random (getrandom), so that ids of two processes, or of
 * one before and after a restart, do not meet. Thread-safe.
 */
uint64_t trace_id_new(void);

/*
 * Whether status is an outcome a correct client meets in normal use
 * (VERSION_CONFLICT, STREAM_NOT_FOUND, NOT_FOUND, REJECTED) rather than
 * an error.
 */
int trace_is_outcome(int status);

/*
 * Logs that request rid (operation op, an EF_OP_*) is answered with
 * status (EF_S_*, not OK) and msg: with log_warnx, or with log_debug for
 * an outcome (trace_is_outcome). what, if not NULL, says which part of
 * the request ("entry 3"). The line reads
 *   append refused (request 00c0ffee00000001 entry 3): VERSION_CONFLICT: msg
 */
void trace_reply(uint64_t rid, int op, const char *what, int status,
    const char *msg);

#endif
