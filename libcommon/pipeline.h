/* SPDX-License-Identifier: MIT */
/*
 * pipeline.h - asynchronous, coalescing appends to eventfold-stored: many
 * in flight on one socket, completion callbacks, APPEND_MANY messages
 * (ipc_many.h).
 *
 * A message to stored costs about one fdatasync on a small VM, so a
 * sender that multiplexes callers should not send one per append. The
 * pipeline follows the rule of DESIGN.md: the first append goes at once;
 * those submitted while a message is in flight wait and go together, as
 * one APPEND_MANY, when its reply comes back. A queue that passes
 * PIPELINE_MAX_BYTES (or IPC_MAX_MANY appends) goes at once on another of
 * PIPELINE_SLOTS message slots; no message carries more than that (but
 * at least one append), the rest waits for the next. Threads that share a
 * pipeline share its messages. eventfold-gatewayd puts its gRPC Appends
 * through one.
 *
 * Every append ends: its callback runs exactly once, with its own result
 * (entry i of a reply belongs to the i-th append of that message, so a
 * caller never gets another's) or with EF_S_UNAVAILABLE (stored did not
 * answer by the deadline, was unreachable, or the pipeline closed). A
 * message whose connection breaks (a restart of stored, a re-created
 * listener) goes again whole on the next connection if one comes within
 * CLIENT_RECONNECT_MS and time is left: appends are idempotent by their
 * event ids, so those already committed are answered with their original
 * positions. A trip nng has not ended CLIENT_GRACE_MS after its deadline
 * is cancelled by pipeline_sweep() (pipeline_open() runs it on a thread
 * of its own; an embedder calls it from its own timer).
 *
 * Threads: pipeline_submit() may be called from any thread, callbacks
 * included. Callbacks run on nng's threads, one message's appends in
 * order; they must not block for long (the next message is already on
 * its way when they run).
 */
#ifndef EF_PIPELINE_H
#define EF_PIPELINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "acall.h"
#include "client.h"
#include "ipc.h"
#include "ipc_many.h"

#define PIPELINE_SLOTS 4
/* a queue this large goes at once, and a message takes no more */
#define PIPELINE_MAX_BYTES (4u << 20)

struct pipeline_req;

/*
 * Called once per append. res->status is the append's own status (as
 * APPEND would answer) and res->body its body, or EF_S_UNAVAILABLE /
 * EF_S_INTERNAL with body NULL when the message failed. res and what it
 * points to are valid only during the call; rq is the caller's again.
 */
typedef void (
    *pipeline_done_fn)(struct pipeline_req *rq, const struct ipc_result *res);

/*
 * One append, owned by the caller and left untouched until its callback.
 * body/len: one encoded APPEND body (ipc_append_req_encode), e.g. in out
 * after pipeline_req_set(). arg is the caller's.
 */
struct pipeline_req {
	const void *body;
	size_t len;
	pipeline_done_fn done;
	void *arg;
	struct ipc_out out; /* optional home for body */
	/* the pipeline's */
	struct pipeline_req *next;
	uint64_t deadline;
	/* set when sent, for the caller's log in done: the APPEND_MANY's
	 * request id (trace.h; 0 if never sent) and this append's entry */
	uint64_t rid;
	uint32_t entry;
};

struct pipeline_slot {
	struct pipeline *p;
	struct acall ac;           /* its trips to stored (acall.h) */
	bool busy;                 /* under p->mu */
	struct pipeline_req *reqs; /* in submission order */
	uint32_t n;
	uint64_t deadline; /* the latest of reqs' (guard_now_ms) */
	struct ipc_out msg;
};

struct pipeline {
	pthread_mutex_t mu;
	struct pipeline_req *head, **tail; /* waiting */
	uint32_t n;
	size_t bytes;
	uint32_t nbusy;
	bool closing;
	uint64_t timeout_ms;
	uint64_t messages; /* APPEND_MANY messages sent (atomic) */
	struct pipeline_slot slots[PIPELINE_SLOTS];
	/* pipeline_open() only */
	struct ef_client cl;
	bool own;
	pthread_t sweeper;
	pthread_mutex_t smu;
	pthread_cond_t scv;
};

/*
 * Embeds a pipeline on sock (a req socket the caller dialed; it must
 * outlive pipeline_fini). Appends end by timeout_ms after submission.
 * 0 or -errno.
 */
int pipeline_init(struct pipeline *p, nng_socket sock, uint64_t timeout_ms);
/*
 * Stops: appends still waiting or in flight end with EF_S_UNAVAILABLE if
 * deliver is true, or are dropped without a callback if it is false (the
 * embedder is going away and has no one left to answer).
 */
void pipeline_fini(struct pipeline *p, bool deliver);

/* A pipeline with its own socket dialing url and its own sweeper. */
int pipeline_open(struct pipeline *p, const char *url, int timeout_ms);
void pipeline_close(struct pipeline *p);

/* Encodes r into rq->out (ipc_out_init'ed by the caller) as rq's body. */
void pipeline_req_set(struct pipeline_req *rq, const struct ipc_append_req *r);
/* Queues rq (body, len, done set); its callback may run before return. */
void pipeline_submit(struct pipeline *p, struct pipeline_req *rq);
/*
 * The synchronous form, for threads that share a pipeline: appends r and
 * waits for its result, which is returned as client_append() would
 * (rep->in valid until client_reply_free(rep)). Returns rep->in.status.
 */
int pipeline_append_wait(struct pipeline *p, const struct ipc_append_req *r,
    struct client_reply *rep);
/* Cancels trips nng has not ended CLIENT_GRACE_MS after their deadline. */
void pipeline_sweep(struct pipeline *p);

#endif
