/* SPDX-License-Identifier: MIT */
/*
 * server.h - the request side of the eventfold daemons (stored on
 * store.sock, runnerd on runner.sock): a rep socket, its self-healing
 * listener (listen.h), an op -> handler table, and one shutdown policy.
 *
 * Design. The server opens `contexts` nng contexts on one rep socket.
 * Each is a small state machine on its aio's callback, as in nng's
 * demo/async/server.c:
 *
 *     RECV --request--> HANDLE --reply--> SEND --sent--> RECV
 *                          \--deferred: srv_reply() later--/
 *
 * HANDLE opens the request (ipc_request_open: envelope, protocol
 * version, bounds), refuses it with an error reply when the server is
 * stopping, when the op has no row in the table (EF_S_UNKNOWN_OP,
 * naming the socket) or when the daemon's admit hook says no, and
 * otherwise calls the op's handler. A handler either answers at once
 * (returns SRV_DONE with the reply in srv_out() or srv_reply_msg()) or
 * keeps the request (returns SRV_DEFERRED) and has srv_reply() called
 * later from any thread: stored's writer answers APPEND and IMPORT once
 * they are durable, so no thread waits for an fsync.
 *
 * Where handlers run. With threads == 0, on nng's callback threads:
 * fast, but a handler must never wait for nng (a synchronous call to
 * another daemon), since nng 1.5 has a few such threads and a waiting
 * handler may hold the one its own answer needs. With threads > 0 a
 * pool of that many threads takes requests from the callbacks and runs
 * the handlers, which may then block (runnerd's EXECUTE calls stored).
 * No thread polls: the pool sleeps on a condition variable.
 *
 * Checks. A request over max_msg bytes is refused by nng itself
 * (NNG_OPT_RECVMAXSZ): it never reaches a handler and its connection is
 * closed (nng cannot read past a length it refuses, so no reply is
 * possible; client.c refuses such a request before sending it, with
 * EF_S_BATCH_TOO_LARGE). Peers: access to an ipc:// socket is its file
 * mode (perms, 0660: the eventfold group), not a credential check here;
 * what a daemon must know of its own state before serving an op (runnerd:
 * is stored connected?) is its admit hook, from the op's flags.
 * A malformed or foreign-version request gets an error reply naming
 * what was wrong; no input stops a context.
 *
 * Shutdown policy (srv_stop), the same for every daemon:
 *  1. stop admitting: new requests get EF_S_UNAVAILABLE "NAME is
 *     shutting down";
 *  2. wait (at most SRV_DRAIN_MS) until every request taken is answered
 *     and its reply sent, deferred ones included: an append accepted
 *     before SIGTERM is committed and answered;
 *  3. stop the pool, the listener, every aio and context;
 *  4. never nng_close() the socket: nng 1.5.2's close can deadlock
 *     while peers are connected (nng #1543, #1813; guard.h); it is left
 *     to the process's exit, which comes next.
 * A request still held past SRV_DRAIN_MS is logged and its memory is
 * left to the exit too, so a late srv_reply() touches nothing freed
 * (it drops the reply).
 *
 * Errors follow errors.h: srv_start returns 0 or a negative errno; the
 * wire statuses appear only in replies.
 */
#ifndef EF_SERVER_H
#define EF_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "ipc.h"
#include "log.h"

#define SRV_DRAIN_MS 30000

struct srv;     /* a server: srv_start to srv_stop */
struct srv_req; /* one context, serving one request at a time */

/* What a handler returns. */
#define SRV_DONE     0 /* the reply is built: the server sends it */
#define SRV_DEFERRED 1 /* the handler's side calls srv_reply() later */

/*
 * A handler. in (the decoded request) and everything it points into
 * are valid until the reply is sent: srv_reply() for a deferred one.
 * srv_out(r) is empty when it is called.
 */
typedef int (*srv_handler_fn)(struct srv_req *r, const struct ipc_in *in);

struct srv_op {
	int op; /* EF_OP_* */
	srv_handler_fn fn;
	unsigned flags; /* the daemon's, passed to admit */
};

struct srv_conf {
	const char *name; /* "eventfold-runnerd": messages and the log */
	const char *url;  /* to listen on (listen.h) */
	int perms;        /* ipc:// file mode; 0 for 0660 (STYLE.md) */
	const struct srv_op *ops; /* SRV_TABLE; valid until srv_stop */
	size_t nops;
	uint64_t contexts; /* requests served at once; 0 means 1 */
	uint64_t threads;  /* handler threads; 0: on nng's callback threads */
	size_t max_msg;    /* largest request in bytes; 0: IPC_MAX_MSG */
	nng_duration
	    send_ms; /* a reply not sent by then is dropped; 0: none */
	/*
	 * Optional, called before the handler (on the handler's thread):
	 * 0 to go on, or an error reply made with srv_error() and nonzero.
	 */
	int (*admit)(struct srv_req *r, const struct ipc_in *in,
	    unsigned flags);
	/*
	 * Optional, called with arg after every handler returns, on its
	 * thread (stored unpins what reads pinned). A deferred request may
	 * be answered already: it is not passed.
	 */
	void (*after)(void *arg);
	/* Bytes of per-context data for the daemon (srv_data), zeroed. */
	size_t data_size;
	void *arg; /* srv_arg() */
};

/* In a struct srv_conf initializer: the op table t, an array. */
#define SRV_TABLE(t) .ops = (t), .nops = sizeof(t) / sizeof((t)[0])

/*
 * Opens the socket, its contexts and its listener, and starts serving.
 * conf is copied (its pointers must stay valid until srv_stop).
 * 0 and *sp set, or a negative errno (-EADDRINUSE: the name is another
 * process's).
 */
int srv_start(const struct srv_conf *conf, struct srv **sp);
/*
 * The shutdown policy above. Not from a handler. s may be NULL. A
 * per-context data cleanup, if the daemon needs one, is fini, called for
 * each context's data once no handler can run (may be NULL).
 */
void srv_stop(struct srv *s, void (*fini)(void *data));

/* The reply being built: ipc_reply_begin() and a body. */
struct ipc_out *srv_out(struct srv_req *r);
/* An error reply (status EF_S_*, not OK) in srv_out(), logged with the
 * request id (trace_reply). */
void srv_error(struct srv_req *r, int status, const char *fmt, ...)
    EF_PRINTF(3, 4);
/*
 * A reply built in a message of its own (a large read, encoded where it
 * is sent from): sent instead of srv_out(). The server owns m from now.
 */
void srv_reply_msg(struct srv_req *r, nng_msg *m);
/*
 * Sends the reply of a request whose handler returned (or is about to
 * return) SRV_DEFERRED. Once, from any thread; r, its request and its
 * data are not to be touched after, until the next request.
 */
void srv_reply(struct srv_req *r);

uint64_t srv_request_id(const struct srv_req *r);
int srv_op(const struct srv_req *r);
/* The context's data (data_size bytes), and the conf's arg. */
void *srv_data(struct srv_req *r);
void *srv_arg(const struct srv_req *r);
/* Whether srv_stop has begun (a long handler may end early). */
int srv_stopping(const struct srv_req *r);
/* Requests answered since the start (for progress: daemon.h). */
uint64_t srv_served(const struct srv *s);

#endif
