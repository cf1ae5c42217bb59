/* SPDX-License-Identifier: MIT */
/*
 * client.c - synchronous nng req client for eventfold-stored and
 * runnerd (see client.h). Each call runs on its own nng context so one
 * client can serve many threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include "errors.h"
#include "log.h"

const char *
client_url(char *buf, size_t len, const char *runtime_dir, const char *name,
    const char *url)
{
	if (url != NULL && *url != '\0')
		snprintf(buf, len, "%s", url);
	else
		snprintf(buf, len, "ipc://%s/%s", runtime_dir, name);
	return buf;
}

int
client_open(struct ef_client *c, const char *url, int timeout_ms)
{
	int rv;

	memset(c, 0, sizeof(*c));
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	if ((rv = nng_req0_open(&c->sock)) != 0)
		return -EIO;
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, IPC_MAX_MSG);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 100);
	/* No resends inside nng: with them, closing the socket can hang
	 * (nng #1813). client_call() resends on a new connection itself. */
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	    NNG_DURATION_INFINITE);
	if ((rv = dialer_open(&c->dialer, c->sock, url)) != 0) {
		dialer_close(&c->dialer);
		nngx_close(c->sock);
		return rv == NNG_EADDRINVAL ? -EINVAL : -EIO;
	}
	c->next_id = 1;
	return 0;
}

void
client_close(struct ef_client *c)
{
	if (c == NULL)
		return;
	dialer_close(&c->dialer);
	nngx_close(c->sock);
}

uint64_t
client_request_id(struct ef_client *c)
{
	return __atomic_fetch_add(&c->next_id, 1, __ATOMIC_RELAXED);
}

/*
 * One round trip as a small state machine on an aio callback, so that
 * the caller can wait on its own clock. Ownership: the caller owns the
 * trip until it gives up on it (abandoned); from then on the callback
 * frees it when nng finally completes the aio.
 */
struct trip {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	nng_ctx ctx;
	nng_aio *aio;
	uint64_t deadline;
	int stage; /* 0 send, 1 receive */
	int done;
	int abandoned;
	int rv;
	nng_msg *reply;
	uint64_t t0, sent_at; /* for the trace (guard.h) */
	int send_rv;
};

static nng_duration
ms_until(uint64_t deadline)
{
	uint64_t now = guard_now_ms();

	if (now >= deadline)
		return 1; /* nng: 0 would mean "no timeout" on some paths */
	return deadline - now > INT32_MAX ? INT32_MAX :
	                                    (nng_duration)(deadline - now);
}

static void
trip_free(struct trip *t)
{
	if (t->reply != NULL)
		nng_msg_free(t->reply);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static void
trip_cb(void *arg)
{
	struct trip *t = arg;
	int rv = nng_aio_result(t->aio), abandoned;

	if (t->stage == 0) {
		t->sent_at = guard_now_ms();
		t->send_rv = rv;
		if (rv == 0) {
			__atomic_store_n(&t->stage, 1, __ATOMIC_RELAXED);
			nng_aio_set_timeout(t->aio, ms_until(t->deadline));
			nng_ctx_recv(t->ctx, t->aio);
			return;
		}
		nng_msg_free(nng_aio_get_msg(t->aio));
		nng_aio_set_msg(t->aio, NULL);
	} else if (rv == 0)
		t->reply = nng_aio_get_msg(t->aio);
	pthread_mutex_lock(&t->mu);
	t->rv = rv;
	t->done = 1;
	abandoned = t->abandoned;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (abandoned) {
		/* the caller is gone: end the trip here */
		nng_ctx_close(t->ctx);
		nng_aio_reap(t->aio);
		trip_free(t);
	}
}

static void
trip_trace(struct ef_client *c, const struct trip *t)
{
	nng_pipe p = NNG_PIPE_INITIALIZER;

	if (t->reply != NULL)
		p = nng_msg_get_pipe(t->reply);
	guard_trace(
	    "trip ctx %u: %s after %llu ms; send %s at %lld ms; "
	    "reply pipe %d; dialer %d, pipes %d, added %llu, removed %llu, "
	    "redials %llu",
	    (unsigned)nng_ctx_id(t->ctx),
	    t->rv == 0 ? "ok" : nng_strerror(t->rv),
	    (unsigned long long)(guard_now_ms() - t->t0),
	    t->sent_at == 0     ? "-" :
	        t->send_rv == 0 ? "ok" :
	                          nng_strerror(t->send_rv),
	    t->sent_at == 0 ? -1LL : (long long)(t->sent_at - t->t0),
	    nng_pipe_id(p), nng_dialer_id(c->dialer.d),
	    dialer_pipes(&c->dialer),
	    (unsigned long long)dialer_added(&c->dialer),
	    (unsigned long long)__atomic_load_n(&c->dialer.removed,
	        __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&c->dialer.redials,
	        __ATOMIC_RELAXED));
}

/*
 * A new trip for req (len bytes) on its own context of c's socket, sent
 * (the send ends by send_by or deadline); *tp is the trip. 0 or nng's
 * code, with nothing left to free.
 */
static int
trip_start(struct ef_client *c, const void *req, size_t len, uint64_t send_by,
    uint64_t deadline, struct trip **tp)
{
	struct trip *t;
	nng_msg *m = NULL;
	int rv;

	if ((*tp = t = calloc(1, sizeof(*t))) == NULL)
		return NNG_ENOMEM;
	guard_cond_init(&t->mu, &t->cv);
	t->deadline = deadline;
	t->t0 = guard_now_ms();
	if ((rv = nng_aio_alloc(&t->aio, trip_cb, t)) != 0)
		goto fail;
	if ((rv = nng_ctx_open(&t->ctx, c->sock)) != 0)
		goto fail_aio;
	if ((rv = nng_msg_alloc(&m, 0)) != 0 ||
	    (rv = nng_msg_append(m, req, len)) != 0) {
		nng_msg_free(m);
		nng_ctx_close(t->ctx);
		goto fail_aio;
	}
	nng_aio_set_msg(t->aio, m);
	nng_aio_set_timeout(t->aio,
	    ms_until(send_by < deadline ? send_by : deadline));
	nng_ctx_send(t->ctx, t->aio);
	return 0;
fail_aio:
	nng_aio_free(t->aio);
fail:
	trip_free(t);
	return rv;
}

/*
 * Waits, under t->mu (held on return), until t is done or wait_end
 * passes. A request still waiting for a connection after CLIENT_KICK_MS
 * makes the dialer suspect (guard.h): it is re-dialed if it has stopped
 * trying.
 */
static void
trip_wait(struct ef_client *c, struct trip *t, uint64_t wait_end)
{
	uint64_t kick_at = guard_now_ms() + CLIENT_KICK_MS, until_ms;

	pthread_mutex_lock(&t->mu);
	while (!t->done) {
		until_ms = kick_at != 0 && kick_at < wait_end ? kick_at :
		                                                wait_end;
		if (guard_cond_wait(&t->cv, &t->mu, until_ms) != ETIMEDOUT ||
		    t->done)
			continue;
		if (until_ms == wait_end)
			break;
		kick_at = 0;
		if (dialer_pipes(&c->dialer) == 0)
			dialer_kick(&c->dialer);
	}
}

/*
 * nng did not end the call by its deadline: gives the trip (t->mu held,
 * released here) to its callback, and re-dials in case the socket is
 * stuck.
 */
static void
trip_abandon(struct ef_client *c, struct trip *t)
{
	int sent;

	t->abandoned = 1;
	sent = __atomic_load_n(&t->stage, __ATOMIC_RELAXED) == 1;
	guard_trace("trip ctx %u: abandoned after %llu ms in stage %d; "
	            "pipes %d",
	    (unsigned)nng_ctx_id(t->ctx),
	    (unsigned long long)(guard_now_ms() - t->t0), sent,
	    dialer_pipes(&c->dialer));
	/* under t->mu: from the unlock on, the callback may free t
	 * (nng runs it on its own thread, never inside the cancel) */
	nng_aio_cancel(t->aio);
	pthread_mutex_unlock(&t->mu);
	__atomic_add_fetch(&c->abandoned, 1, __ATOMIC_RELAXED);
	dialer_kick(&c->dialer);
	if (sent)
		(void)dialer_drop_unanswered(&c->dialer);
}

/* The end of a trip nng has ended (t->mu held, released here): its
 * reply into *reply, t freed. nng's code. */
static int
trip_end(struct ef_client *c, struct trip *t, nng_msg **reply)
{
	int rv;

	pthread_mutex_unlock(&t->mu);
	rv = t->rv;
	if (guard_tracing())
		trip_trace(c, t);
	if (rv == 0 && t->reply != NULL)
		dialer_answered(&c->dialer, nng_msg_get_pipe(t->reply));
	else if (rv == NNG_ETIMEDOUT && t->stage == 1)
		/* sent, and no reply by the deadline: on a pipe that never
		 * answered, the daemon may never have taken it (guard.h) */
		(void)dialer_drop_unanswered(&c->dialer);
	*reply = t->reply;
	t->reply = NULL;
	nng_ctx_close(t->ctx);
	nng_aio_free(t->aio);
	trip_free(t);
	return rv;
}

int
client_roundtrip(struct ef_client *c, const void *req, size_t len,
    uint64_t send_by, uint64_t deadline, nng_msg **reply)
{
	struct trip *t;
	int rv;

	*reply = NULL;
	if ((rv = trip_start(c, req, len, send_by, deadline, &t)) != 0)
		return ef_err_from_nng(rv);
	trip_wait(c, t, deadline + CLIENT_GRACE_MS);
	if (!t->done) {
		trip_abandon(c, t);
		return -ETIMEDOUT;
	}
	return ef_err_from_nng(trip_end(c, t, reply));
}

static int
client_fail(struct client_reply *rep, int status, const char *why)
{
	rep->in.status = status;
	rep->in.message.ptr = why;
	rep->in.message.len = (uint32_t)strlen(why);
	rep->in.body = NULL;
	return status;
}

/* A failure after which the same request may go again on a new pipe. */
static int
connection_lost(int rv)
{
	return rv == -ECONNRESET || rv == -ESHUTDOWN || rv == -ECONNREFUSED ||
	    rv == -ECONNABORTED;
}

/*
 * One request, one reply, by the client's timeout. A request whose
 * connection breaks is sent again (see client.h) if a new connection
 * comes within CLIENT_RECONNECT_MS: a restart or a re-created listener
 * reconnects in milliseconds, a daemon that died does not, and its
 * callers learn it then rather than at their deadline.
 */
int
client_call(struct ef_client *c, const struct ipc_out *req,
    struct client_reply *rep)
{
	return client_call_wait(c, req, (uint64_t)c->timeout_ms, rep);
}

/* client_call_wait() up to the reply's message: 0 with rep->msg set,
 * its bytes not looked at, or a failed call's status */
static int
call_msg(struct ef_client *c, const struct ipc_out *req, uint64_t wait_ms,
    struct client_reply *rep)
{
	uint64_t now = guard_now_ms(), deadline = now + wait_ms;
	uint64_t send_by = now + (uint64_t)c->timeout_ms;
	int rv;

	memset(rep, 0, sizeof(*rep));
	/* the daemon would hang up on it, and in nng 1.5.2 a pipe closed in
	 * the middle of a large send can wedge this process's nng (guard.h) */
	if (req->len > IPC_MAX_MSG - 64)
		return client_fail(rep, EF_S_BATCH_TOO_LARGE,
		    "request over "
		    "the 64 MiB message bound: send it in smaller batches");
	for (;;) {
		rv = client_roundtrip(c, req->buf, req->len, send_by, deadline,
		    &rep->msg);
		if (!connection_lost(rv) || guard_now_ms() + 5 >= deadline)
			break;
		__atomic_add_fetch(&c->resends, 1, __ATOMIC_RELAXED);
		nng_msleep(2);
		send_by = guard_now_ms() + CLIENT_RECONNECT_MS;
	}
	if (rv != 0)
		return client_fail(rep, EF_S_UNAVAILABLE,
		    rv == -ETIMEDOUT ? "daemon did not answer in time" :
		        rv == -EBADF ? "client closed" :
		                       "daemon unreachable (connection lost)");
	return 0;
}

int
client_call_raw(struct ef_client *c, const struct ipc_out *req,
    struct client_reply *rep)
{
	return call_msg(c, req, (uint64_t)c->timeout_ms, rep);
}

int
client_call_wait(struct ef_client *c, const struct ipc_out *req,
    uint64_t wait_ms, struct client_reply *rep)
{
	const char *why = NULL;
	int rv;

	if ((rv = call_msg(c, req, wait_ms, rep)) != 0)
		return rv;
	rv = ipc_reply_open(&rep->in, nng_msg_body(rep->msg),
	    nng_msg_len(rep->msg), &why);
	if (rv != 0) {
		ipc_in_close(&rep->in);
		return client_fail(rep, EF_S_INTERNAL, "malformed reply");
	}
	return rep->in.status;
}

void
client_reply_free(struct client_reply *rep)
{
	if (rep == NULL)
		return;
	ipc_in_close(&rep->in);
	if (rep->msg != NULL)
		nng_msg_free(rep->msg);
	rep->msg = NULL;
}

/* Starts a request of op on c in o (initialised here) for the body to
 * follow; returns o. */
static struct ipc_out *
request_begin(struct ipc_out *o, struct ef_client *c, int op)
{
	ipc_out_init(o);
	ipc_request_begin(o, op, client_request_id(c));
	return o;
}

/* Sends o (freed here) within wait_ms; the reply's status. */
static int
request_send(struct ef_client *c, struct ipc_out *o, uint64_t wait_ms,
    struct client_reply *rep)
{
	int st = client_call_wait(c, o, wait_ms, rep);

	ipc_out_free(o);
	return st;
}

int
client_append(struct ef_client *c, const struct ipc_append_req *r,
    struct client_reply *rep)
{
	struct ipc_out o;

	ipc_append_req_encode(request_begin(&o, c, EF_OP_APPEND), r);
	return request_send(c, &o, (uint64_t)c->timeout_ms, rep);
}

static int
read_reply(struct client_reply *rep, int st, struct ipc_read_rep *rr)
{
	const char *why;

	memset(rr, 0, sizeof(*rr));
	if ((st == EF_S_OK || st == EF_S_STREAM_NOT_FOUND) &&
	    rep->in.body != NULL &&
	    ipc_read_rep_decode(rep->in.body, rr, &why) != 0)
		return client_fail(rep, EF_S_INTERNAL, "malformed read reply");
	return st;
}

void
client_read_request(struct ef_client *c, struct ipc_out *o,
    const char *stream_id, uint64_t from, uint64_t max, int direction)
{
	struct ipc_read_all_req a = { from, max, (uint8_t)direction };
	struct ipc_read_stream_req r = { { stream_id, 0 }, from, max,
		(uint8_t)direction };

	if (stream_id == NULL) {
		ipc_read_all_req_encode(request_begin(o, c, EF_OP_READ_ALL),
		    &a);
		return;
	}
	r.stream_id.len = (uint32_t)strlen(stream_id);
	ipc_read_stream_req_encode(request_begin(o, c, EF_OP_READ_STREAM), &r);
}

/* A READ call: client_read_stream(), or client_read_all() (NULL). */
static int
client_read(struct ef_client *c, const char *stream_id, uint64_t from,
    uint64_t max, int direction, struct client_reply *rep,
    struct ipc_read_rep *rr)
{
	struct ipc_out o;

	client_read_request(c, &o, stream_id, from, max, direction);
	return read_reply(rep,
	    request_send(c, &o, (uint64_t)c->timeout_ms, rep), rr);
}

int
client_read_all(struct ef_client *c, uint64_t from, uint64_t max,
    int direction, struct client_reply *rep, struct ipc_read_rep *rr)
{
	return client_read(c, NULL, from, max, direction, rep, rr);
}

int
client_read_stream(struct ef_client *c, const char *stream_id, uint64_t from,
    uint64_t max, int direction, struct client_reply *rep,
    struct ipc_read_rep *rr)
{
	return client_read(c, stream_id, from, max, direction, rep, rr);
}

int
client_status(struct ef_client *c, struct client_reply *rep,
    struct ipc_status_rep *st)
{
	return client_status_within(c, (uint64_t)c->timeout_ms, rep, st);
}

int
client_status_within(struct ef_client *c, uint64_t wait_ms,
    struct client_reply *rep, struct ipc_status_rep *st)
{
	struct ipc_out o;
	const char *why;
	int s;

	ipc_nil(request_begin(&o, c, EF_OP_STATUS));
	s = request_send(c, &o, wait_ms, rep);
	if (s == EF_S_OK && ipc_status_rep_decode(rep->in.body, st, &why) != 0)
		return client_fail(rep, EF_S_INTERNAL,
		    "malformed status reply");
	return s;
}
