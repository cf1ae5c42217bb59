/* SPDX-License-Identifier: MIT */
/* acall.c - one asynchronous round trip on an nng context (acall.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "acall.h"
#include "errors.h"
#include "log.h"
#include "trace.h"

enum {
	STAGE_IDLE,
	STAGE_SEND,
	STAGE_RECV,
	STAGE_PAUSE, /* before sending again on the next connection */
	STAGE_NOMEM, /* no message could be made: end through the callback */
	STAGE_SLEEP, /* acall_sleep */
};

static void acall_cb(void *arg);

int
acall_init(struct acall *a, nng_socket sock, const char *peer,
    acall_done_fn done, void *arg)
{
	int rv;

	memset(a, 0, sizeof(*a));
	a->peer = peer;
	a->done = done;
	a->arg = arg;
	if ((rv = nng_ctx_open(&a->ctx, sock)) != 0)
		return ef_err_from_nng(rv);
	if ((rv = nng_aio_alloc(&a->aio, acall_cb, a)) != 0) {
		a->aio = NULL;
		nng_ctx_close(a->ctx);
		return ef_err_from_nng(rv);
	}
	return 0;
}

void
acall_fini(struct acall *a)
{
	if (a->aio == NULL)
		return;
	nng_aio_stop(a->aio); /* cancels the trip, waits for its callback */
	nng_aio_free(a->aio);
	a->aio = NULL;
	nng_ctx_close(a->ctx);
}

void
acall_reap(struct acall *a)
{
	if (a->aio == NULL)
		return;
	nng_ctx_close(a->ctx);
	nng_aio_reap(a->aio);
	a->aio = NULL;
}

static bool
connection_lost(int rv)
{
	return rv == NNG_ECONNRESET || rv == NNG_ECONNSHUT ||
	    rv == NNG_ECONNREFUSED || rv == NNG_ECONNABORTED;
}

/* What is left of the trip, for nng (at least 1: 0 means no timeout). */
static nng_duration
ms_left(const struct acall *a)
{
	uint64_t now = guard_now_ms();
	uint64_t dl = __atomic_load_n(&a->deadline, __ATOMIC_RELAXED);

	if (dl <= now)
		return 1;
	return dl - now > INT32_MAX ? INT32_MAX : (nng_duration)(dl - now);
}

/* Sends the request by the deadline; again: only if a connection comes
 * within CLIENT_RECONNECT_MS. */
static void
acall_send(struct acall *a, bool again)
{
	nng_duration left = ms_left(a);
	nng_msg *m = NULL;

	if (nng_msg_alloc(&m, 0) != 0 ||
	    nng_msg_append(m, a->req, a->len) != 0) {
		nng_msg_free(m);
		a->stage = STAGE_NOMEM;
		nng_aio_set_msg(a->aio, NULL);
		nng_sleep_aio(0, a->aio);
		return;
	}
	a->stage = STAGE_SEND;
	nng_aio_set_msg(a->aio, m);
	nng_aio_set_timeout(a->aio,
	    again && left > CLIENT_RECONNECT_MS ? CLIENT_RECONNECT_MS : left);
	nng_ctx_send(a->ctx, a->aio);
}

void
acall_start(struct acall *a, const void *req, size_t len, uint64_t rid,
    uint64_t deadline)
{
	a->req = req;
	a->len = len;
	a->rid = rid;
	__atomic_store_n(&a->deadline, deadline, __ATOMIC_RELAXED);
	acall_send(a, false);
}

void
acall_sleep(struct acall *a, nng_duration ms, void (*woken)(void *))
{
	a->woken = woken;
	a->stage = STAGE_SLEEP;
	nng_aio_set_timeout(a->aio, NNG_DURATION_INFINITE); /* not cut short */
	nng_sleep_aio(ms, a->aio);
}

uint64_t
acall_sweep(struct acall *a, uint64_t now, uint64_t grace_ms)
{
	uint64_t dl;

	if (a->aio == NULL)
		return 0;
	dl = __atomic_load_n(&a->deadline, __ATOMIC_RELAXED);
	if (dl == 0 || now <= dl + grace_ms)
		return 0;
	nng_aio_cancel(a->aio);
	return now - dl;
}

/* Ends the trip: the reply m opened, or err; then done. */
static void
acall_end(struct acall *a, int err, nng_msg *m)
{
	struct client_reply rep;
	const char *why = "";
	char msg[160];

	__atomic_store_n(&a->deadline, 0, __ATOMIC_RELAXED);
	a->stage = STAGE_IDLE;
	memset(&rep, 0, sizeof(rep));
	rep.msg = m;
	if (err == 0 &&
	    ipc_reply_open(&rep.in, nng_msg_body(m), nng_msg_len(m), &why) !=
	        0) {
		log_warnx("call " TRACE_FMT ": malformed reply from %s: %s",
		    a->rid, a->peer, why);
		client_reply_free(&rep);
		memset(&rep, 0, sizeof(rep));
		err = -EBADMSG;
	}
	if (err != 0) {
		rep.in.status = EF_S_UNAVAILABLE;
		if (err == -EBADMSG || err == -ENOMEM)
			rep.in.status = EF_S_INTERNAL;
		if (err == -EBADMSG)
			snprintf(msg, sizeof(msg), "malformed reply from %s",
			    a->peer);
		else if (err == -ENOMEM)
			snprintf(msg, sizeof(msg), "out of memory");
		else
			snprintf(msg, sizeof(msg),
			    err == -ETIMEDOUT || err == -ECANCELED ?
			        "%s did not answer in time" :
			        "%s is unreachable",
			    a->peer);
		rep.in.message.ptr = msg;
		rep.in.message.len = (uint32_t)strlen(msg);
	}
	a->done(a->arg, err, &rep); /* may start the next trip on a */
	client_reply_free(&rep);
}

static void
acall_cb(void *arg)
{
	struct acall *a = arg;
	int rv = nng_aio_result(a->aio);
	nng_msg *m;

	switch (a->stage) {
	case STAGE_IDLE:
		/* nothing of ours is in flight: ending a trip here would
		 * tell its owner twice */
		log_warnx("call " TRACE_FMT ": %s: a completion with no trip "
		          "in flight (%s); ignored",
		    a->rid, a->peer, nng_strerror(rv));
		return;
	case STAGE_SLEEP:
		a->stage = STAGE_IDLE;
		a->woken(a->arg);
		return;
	case STAGE_NOMEM:
		acall_end(a, -ENOMEM, NULL);
		return;
	case STAGE_PAUSE:
		if (rv == 0) {
			acall_send(a, true);
			return;
		}
		break; /* cancelled during the pause */
	case STAGE_SEND:
		if (rv != 0) {
			/* a failed send leaves the message ours */
			nng_msg_free(nng_aio_get_msg(a->aio));
			nng_aio_set_msg(a->aio, NULL);
			break;
		}
		a->stage = STAGE_RECV;
		nng_aio_set_timeout(a->aio, ms_left(a));
		nng_ctx_recv(a->ctx, a->aio);
		return;
	default:
		break;
	}
	m = rv == 0 ? nng_aio_get_msg(a->aio) : NULL;
	nng_aio_set_msg(a->aio, NULL);
	if (rv == 0 && m == NULL) {
		/* a gatewayd died once in nng_msg_len(NULL) on an nng
		 * task thread (soak loop, kill -9 restarts of stored), and
		 * acall_end is where a callback of ours reads a reply's
		 * length: whatever nng did, such a trip fails, the daemon
		 * does not crash */
		log_warnx("call " TRACE_FMT ": %s: nng ended the trip (stage "
		          "%d) without a reply message",
		    a->rid, a->peer, a->stage);
		rv = NNG_EINTERNAL;
	}
	if (a->stage == STAGE_RECV && a->dialer != NULL) {
		if (rv == 0)
			dialer_answered(a->dialer, nng_msg_get_pipe(m));
		else if (rv == NNG_ETIMEDOUT)
			/* sent, and no reply by the deadline: maybe on a
			 * connection the daemon never took */
			(void)dialer_drop_unanswered(a->dialer);
	}
	if (a->resend && connection_lost(rv) && ms_left(a) > 5 &&
	    (a->halt == NULL || !__atomic_load_n(a->halt, __ATOMIC_RELAXED))) {
		/* the connection broke under the request: send it again on
		 * the next one, after a pause for the dialer */
		a->stage = STAGE_PAUSE;
		nng_sleep_aio(2, a->aio);
		return;
	}
	acall_end(a, ef_err_from_nng(rv), m);
}
