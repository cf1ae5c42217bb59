/* SPDX-License-Identifier: MIT */
/*
 * client.h - the small synchronous client every program uses to talk to
 * eventfold-stored (and, with the same envelope, to runnerd) over nng
 * req/rep, and the catch-up-then-live subscription built on it.
 *
 * One struct ef_client may be shared by threads: every call opens its own
 * nng context.
 *
 * Every call ends by its deadline (the client's timeout from the call's
 * start), whatever nng does: the caller waits on its own clock, and a
 * call nng has not finished GRACE_MS after the deadline is cancelled and
 * abandoned (its resources are freed whenever nng lets go of them) and
 * reported as EF_S_UNAVAILABLE. A request whose connection breaks (the
 * daemon restarted, or its listener was re-created: listen.h) is sent
 * again on the next connection if one comes within CLIENT_RECONNECT_MS
 * and the deadline allows: every request is idempotent (appends by
 * event id, commands by command id). The dialer
 * is guarded (guard.h): a daemon killed while we were connecting does
 * not leave the client unable to connect again.
 */
#ifndef EF_CLIENT_H
#define EF_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "guard.h"
#include "ipc.h"

#define STORE_SOCK        "store.sock"
#define STORE_EVENTS_SOCK "store-events.sock"
#define RUNNER_SOCK       "runner.sock"

#define CLIENT_GRACE_MS     250  /* past the deadline: abandon the call */
#define CLIENT_RECONNECT_MS 1000 /* resend only if reconnected by then */
#define CLIENT_KICK_MS      300 /* no connection by then: suspect the dialer */

struct ef_client {
	nng_socket sock;
	struct ef_dialer dialer;
	int timeout_ms;
	uint64_t next_id;
	uint64_t resends;   /* requests sent again after a lost pipe */
	uint64_t abandoned; /* calls nng did not end by their deadline */
};

/*
 * A reply: in is the decoded envelope, valid (with every pointer into it)
 * until client_reply_free(). When the call itself failed, in.status is
 * EF_S_UNAVAILABLE or EF_S_BAD_REQUEST and in.message says why.
 */
struct client_reply {
	struct ipc_in in;
	nng_msg *msg;
};

/*
 * Builds "ipc://DIR/NAME" into buf, or copies url if it is given (a
 * configured nng URL such as tcp://host:port wins over runtime_dir).
 */
const char *client_url(char *buf, size_t len, const char *runtime_dir,
    const char *name, const char *url);

/*
 * Dials url (non-blocking: the daemon may come later). 0 or -errno.
 * The struct must stay at its address until client_close().
 */
int client_open(struct ef_client *c, const char *url, int timeout_ms);
void client_close(struct ef_client *c);

/*
 * One round trip on an nng context by an absolute deadline (guard_now_ms()
 * clock), enforced by the caller's own clock as described above; the
 * request must have gone to a connection by send_by. On 0, *reply is
 * the caller's. Returns 0 or a negative errno (nng's code translated,
 * errors.h): -ETIMEDOUT past a deadline, -ECONNRESET or -ESHUTDOWN if
 * the connection broke, -EBADF if the client was closed, ...
 */
int client_roundtrip(struct ef_client *c, const void *req, size_t len,
    uint64_t send_by, uint64_t deadline, nng_msg **reply);

/*
 * Sends the request in req (built with ipc_request_begin and a body
 * encoder) and waits for the reply. Returns rep->in.status; the caller
 * must client_reply_free(rep) whatever the result.
 */
int client_call(struct ef_client *c, const struct ipc_out *req,
    struct client_reply *rep);
void client_reply_free(struct client_reply *rep);
/*
 * client_call for a request that may take long to answer (a backup): it
 * must reach the daemon within the client's timeout, as client_call's,
 * and the reply may take up to wait_ms. A wait_ms below the timeout
 * bounds the whole call.
 */
int client_call_wait(struct ef_client *c, const struct ipc_out *req,
    uint64_t wait_ms, struct client_reply *rep);
/*
 * client_call whose reply is left as the caller's message, not decoded
 * (for a caller with a decoder of its own, e.g. export's of READ
 * replies, that must check every byte itself): 0 and rep->msg set, or
 * the status of a call that failed (UNAVAILABLE, BAD_REQUEST) with
 * rep->in.message saying why. client_reply_free(rep) whatever the
 * result; ipc_reply_open() on rep->msg gives the usual decoding.
 */
int client_call_raw(struct ef_client *c, const struct ipc_out *req,
    struct client_reply *rep);

/* Next request id for this client (for ipc_request_begin). */
uint64_t client_request_id(struct ef_client *c);
/*
 * Builds in o (initialised here; ipc_out_free() it) the READ request of
 * client_read_stream() (stream_id given) or client_read_all() (NULL),
 * for a caller that sends it itself (client_call_raw).
 */
void client_read_request(struct ef_client *c, struct ipc_out *o,
    const char *stream_id, uint64_t from, uint64_t max, int direction);

/* Convenience wrappers; each returns the status and fills rep. */
int client_append(struct ef_client *c, const struct ipc_append_req *r,
    struct client_reply *rep);
int client_read_all(struct ef_client *c, uint64_t from, uint64_t max,
    int direction, struct client_reply *rep, struct ipc_read_rep *rr);
int client_read_stream(struct ef_client *c, const char *stream_id,
    uint64_t from, uint64_t max, int direction, struct client_reply *rep,
    struct ipc_read_rep *rr);
int client_status(struct ef_client *c, struct client_reply *rep,
    struct ipc_status_rep *st);
/* client_status that gives up after wait_ms (below the client's timeout:
 * a status that only decorates another answer) */
int client_status_within(struct ef_client *c, uint64_t wait_ms,
    struct client_reply *rep, struct ipc_status_rep *st);

/*
 * Subscription: catch-up then live, in order, without gaps or repeats.
 *
 * sub_run() connects a sub socket to events_url first, then reads pages
 * from the store (READ_ALL, or READ_STREAM when stream_id is set) until
 * it reaches the head, calls caught_up once, then follows the published
 * batches: positions already delivered are skipped, and a gap (a batch
 * starting past the next expected position, a batch published without
 * its events, a quiet period, or a store restart) is filled by reading
 * again. Returns when a callback returns non-zero (that value), when
 * *stop becomes non-zero (0), or on a fatal error (negative).
 *
 * With check_log (whole log only), every catch-up read starts one event
 * early and checks that the last event delivered (at first: from_id,
 * the id of the event at from - 1, if not NULL) is still there, with
 * its id, and that the head has not gone below the next position. A log that
 * shrank or changed under the subscription (stored restored from an older
 * backup, or repaired, while the subscriber kept running) returns
 * SUB_LOG_CHANGED instead of silently waiting for positions it already saw.
 */
#define SUB_LOG_CHANGED (-3000)
struct sub_params {
	const char *store_url;
	const char *events_url;
	const char *stream_id; /* NULL: the whole log */
	uint64_t from;         /* first position (or stream version) */
	uint32_t page;         /* events per catch-up read; 0: 1000 */
	int timeout_ms;        /* per store request; 0: 2000 */
	int recv_buf;          /* messages the sub socket queues; 0: 8192 */
	int (*on_event)(void *arg, const struct ef_event *ev);
	int (*on_caught_up)(void *arg);
	void *arg;
	volatile int *stop;
	int check_log;          /* see above */
	const uint8_t *from_id; /* NULL: checks start after one event */
};

int sub_run(const struct sub_params *p);

#endif
