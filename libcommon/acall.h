/* SPDX-License-Identifier: MIT */
/*
 * acall.h - one asynchronous round trip to eventfold-stored or
 * eventfold-runnerd, ended by a callback: the client side of every call
 * eventfold-gatewayd makes (unary calls, subscription pages, the append
 * pipeline's messages). client.h has the synchronous form.
 *
 * Design. A struct acall owns one nng req context and one aio and runs
 * one trip at a time as a small state machine on the aio's callback:
 * send, receive, and, when resend is set and the connection broke under
 * the request (a daemon restart, a re-created listener: listen.h), a
 * short pause and the same request again on the next connection, which
 * must come within CLIENT_RECONNECT_MS (every request is idempotent).
 * A trip ends by its absolute deadline (guard_now_ms clock): nng's
 * timeouts are set to what is left, and acall_sweep(), called from the
 * owner's timer, cancels a trip nng has not ended by then.
 *
 * The end is reported once, to done, never from inside acall_start.
 * err is 0 and rep the reply, already opened (ipc_reply_open); or err
 * is a negative errno, translated here once (errors.h): -ETIMEDOUT or
 * -ECANCELED (no answer in time), -EBADF (the socket closed), -EBADMSG
 * (a malformed reply, logged here with the request id), -ENOMEM, or
 * what ef_err_from_nng gives for an unreachable peer. On a failure rep
 * still holds the wire status to pass on, EF_S_UNAVAILABLE (EF_S_INTERNAL
 * for -EBADMSG and -ENOMEM) and a message naming the peer, so that
 * every caller says the same thing.
 *
 * Ownership and threads: the request (req, len) stays the caller's and
 * must stay valid until done. done runs on an nng thread; rep and what
 * it points into are valid until done returns. done may start the next
 * trip on the same acall, or let another thread do so, and may reap it
 * and free its owner: acall touches neither after done returns.
 */
#ifndef EF_ACALL_H
#define EF_ACALL_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "client.h"

typedef void (*acall_done_fn)(void *arg, int err, struct client_reply *rep);

struct acall {
	nng_ctx ctx;
	nng_aio *aio;
	int stage;
	uint64_t deadline; /* atomic: guard_now_ms, 0 when no trip runs */
	uint64_t rid;      /* the request's id, for the log (trace.h) */
	const void *req;   /* the caller's, until done */
	size_t len;
	/* set by acall_init */
	const char *peer; /* "eventfold-stored", for messages */
	acall_done_fn done;
	void (*woken)(void *arg); /* acall_sleep's */
	void *arg;
	/* options, the owner's to set after acall_init */
	bool resend;      /* a request whose connection broke goes again */
	const bool *halt; /* if set: no resend once *halt (atomic) */
	/* if set: the dialer of the socket; a reply marks its connection
	 * answered, and a trip that timed out waiting for its reply closes
	 * the connections that never answered (guard.h,
	 * dialer_drop_unanswered: nng 1.5's orphaned connections) */
	struct ef_dialer *dialer;
};

/*
 * Opens a context on sock (a req socket the caller dialed) for trips to
 * peer (a static string). 0 or -errno.
 */
int acall_init(struct acall *a, nng_socket sock, const char *peer,
    acall_done_fn done, void *arg);
/*
 * Ends a trip in flight (done runs, with -ECANCELED) and frees what
 * acall_init made. Not from done. a may be zeroed or already ended.
 */
void acall_fini(struct acall *a);
/* As acall_fini, for an idle acall, from anywhere (done included). */
void acall_reap(struct acall *a);

/* Starts a trip of (req, len), request id rid, to end by deadline. */
void acall_start(struct acall *a, const void *req, size_t len, uint64_t rid,
    uint64_t deadline);
/* On an idle acall: calls woken(arg) after ms (or when cancelled). */
void acall_sleep(struct acall *a, nng_duration ms, void (*woken)(void *));
/*
 * Cancels the trip if it runs more than grace_ms past its deadline at
 * now (guard_now_ms); returns by how many ms it was late, else 0.
 */
uint64_t acall_sweep(struct acall *a, uint64_t now, uint64_t grace_ms);

#endif
