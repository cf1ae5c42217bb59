/* SPDX-License-Identifier: MIT */
/*
 * pipeline.c - asynchronous appends coalesced into APPEND_MANY messages
 * (pipeline.h has the rules).
 *
 * Each message slot is a small state machine on its aio, as the request
 * server's contexts are: send, receive, and on a broken connection a
 * pause and the same message again. When a slot's trip ends it first
 * takes what waits and sends it (stored can work on the next message
 * while this one's callbacks run), then hands the reply out. One mutex
 * guards the queue and which slots are busy; a busy slot's list and
 * message belong to whoever made it busy until its reply is handed out.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "errors.h"
#include "log.h"
#include "pipeline.h"
#include "trace.h"

enum { STAGE_SEND = 1, STAGE_RECV, STAGE_PAUSE };

#define SWEEP_MS 50

static void slot_cb(void *arg);

static bool
connection_lost(int rv)
{
	return rv == NNG_ECONNRESET || rv == NNG_ECONNSHUT ||
	    rv == NNG_ECONNREFUSED || rv == NNG_ECONNABORTED;
}

/*
 * Under p->mu: moves waiting appends into s, in order: at most
 * IPC_MAX_MANY, and no more than PIPELINE_MAX_BYTES but at least one
 * (so that a message stays far below stored's IPC_MAX_MSG; what is left
 * goes with a later message).
 */
static void
slot_take(struct pipeline *p, struct pipeline_slot *s)
{
	struct pipeline_req *rq, **tp = &s->reqs;
	uint64_t dl = 0;
	size_t bytes = 0;

	s->n = 0;
	while (p->head != NULL && s->n < IPC_MAX_MANY && (s->n == 0 ||
	    bytes + p->head->len <= PIPELINE_MAX_BYTES)) {
		rq = p->head;
		bytes += rq->len;
		p->head = rq->next;
		p->n--;
		p->bytes -= rq->len;
		rq->next = NULL;
		*tp = rq;
		tp = &rq->next;
		s->n++;
		if (rq->deadline > dl)
			dl = rq->deadline;
	}
	if (p->head == NULL)
		p->tail = &p->head;
	__atomic_store_n(&s->deadline, dl, __ATOMIC_RELAXED);
}

/*
 * Under p->mu: a free slot if what waits should go now (nothing in
 * flight, or the queue is past its bounds), else NULL.
 */
static struct pipeline_slot *
slot_pick(struct pipeline *p)
{
	size_t i;

	if (p->head == NULL || p->closing)
		return NULL;
	if (p->nbusy > 0 && p->bytes < PIPELINE_MAX_BYTES &&
	    p->n < IPC_MAX_MANY)
		return NULL; /* goes when a reply comes back */
	for (i = 0; i < PIPELINE_SLOTS; i++)
		if (!p->slots[i].busy) {
			p->slots[i].busy = true;
			p->nbusy++;
			return &p->slots[i];
		}
	return NULL;
}

static nng_duration
slot_ms_left(struct pipeline_slot *s)
{
	uint64_t now = guard_now_ms();
	uint64_t dl = __atomic_load_n(&s->deadline, __ATOMIC_RELAXED);

	if (dl <= now)
		return 1;
	return dl - now > INT32_MAX ? INT32_MAX : (nng_duration)(dl - now);
}

/* Ends every append of list with status and why (body NULL). */
static void
fail_all(struct pipeline_req *list, int status, const char *why)
{
	struct ipc_result res;
	struct pipeline_req *rq, *next;

	memset(&res, 0, sizeof(res));
	res.status = status;
	res.message.ptr = why;
	res.message.len = (uint32_t)strlen(why);
	for (rq = list; rq != NULL; rq = next) {
		next = rq->next; /* rq is the caller's once done runs */
		rq->next = NULL;
		rq->done(rq, &res);
	}
}

/* Encodes s's appends as one APPEND_MANY. */
static void
slot_encode(struct pipeline *p, struct pipeline_slot *s)
{
	struct pipeline_req *rq;
	uint64_t rid = trace_id_new();
	uint32_t i = 0;

	__atomic_add_fetch(&p->messages, 1, __ATOMIC_RELAXED);
	ipc_out_reset(&s->msg);
	ipc_request_begin(&s->msg, EF_OP_APPEND_MANY, rid);
	ipc_many_begin(&s->msg, s->n);
	for (rq = s->reqs; rq != NULL; rq = rq->next) {
		rq->rid = rid;
		rq->entry = i++;
		ipc_out_raw(&s->msg, rq->body, rq->len);
	}
}

/* Sends s->msg by the trip's deadline; a resend must find a connection
 * within CLIENT_RECONNECT_MS. */
static void
slot_send(struct pipeline_slot *s, bool resend)
{
	nng_duration left = slot_ms_left(s);
	nng_msg *m = NULL;

	if (nng_msg_alloc(&m, 0) != 0 ||
	    nng_msg_append(m, s->msg.buf, s->msg.len) != 0) {
		nng_msg_free(m);
		/* end the trip through the callback: no reply, rv 0 */
		s->stage = STAGE_RECV;
		nng_aio_set_msg(s->aio, NULL);
		nng_sleep_aio(0, s->aio);
		return;
	}
	s->stage = STAGE_SEND;
	nng_aio_set_msg(s->aio, m);
	nng_aio_set_timeout(s->aio, resend && left > CLIENT_RECONNECT_MS ?
	    CLIENT_RECONNECT_MS : left);
	nng_ctx_send(s->ctx, s->aio);
}

/* Hands the reply m (or the failure rv) out to list, n appends. */
static void
deliver(struct pipeline_req *list, uint32_t n, int rv, nng_msg *m)
{
	char msg[IPC_MAX_STRLEN + 1];
	struct ipc_result res;
	struct ipc_in in;
	struct pipeline_req *rq, *next;
	const char *why = "";
	uint32_t i;

	if (rv != 0 || m == NULL) {
		fail_all(list, EF_S_UNAVAILABLE, rv == NNG_ETIMEDOUT ||
		    rv == NNG_ECANCELED ? "eventfold-stored did not answer in "
		    "time" : rv == NNG_ECLOSED ? "pipeline closed" : rv == 0 ?
		    "out of memory" : "eventfold-stored is unreachable");
		return;
	}
	if (ipc_reply_open(&in, nng_msg_body(m), nng_msg_len(m), &why) != 0 ||
	    (in.status == EF_S_OK && ipc_many_rep_open(in.body, n,
	    &why) != 0)) {
		log_warnx("malformed append_many reply: %s", why);
		ipc_in_close(&in);
		fail_all(list, EF_S_INTERNAL, "malformed reply from "
		    "eventfold-stored");
		return;
	}
	if (in.status != EF_S_OK) {
		/* the whole message was refused (stored shutting down) */
		int st = in.status;

		snprintf(msg, sizeof(msg), "%.*s", (int)in.message.len,
		    in.message.ptr);
		ipc_in_close(&in);
		fail_all(list, st, msg);
		return;
	}
	for (rq = list, i = 0; rq != NULL; rq = next, i++) {
		next = rq->next;
		rq->next = NULL;
		if (ipc_result_decode(&in.body->via.array.ptr[i], &res,
		    &why) != 0) {
			fail_all(rq, EF_S_INTERNAL, "malformed reply from "
			    "eventfold-stored");
			continue;
		}
		rq->done(rq, &res);
	}
	ipc_in_close(&in);
}

/* The trip of s ended (rv): send what waits, then answer its appends. */
static void
slot_done(struct pipeline_slot *s, int rv, nng_msg *m)
{
	struct pipeline *p = s->p;
	struct pipeline_req *list = s->reqs;
	uint32_t n = s->n;
	bool next = false, drop;

	__atomic_store_n(&s->deadline, 0, __ATOMIC_RELAXED);
	s->reqs = NULL;
	s->n = 0;
	pthread_mutex_lock(&p->mu);
	/* pipeline_fini(p, false): nobody is left to answer */
	drop = p->closing && p->tail == NULL;
	if (p->head != NULL && !p->closing) {
		slot_take(p, s);
		next = true;
	} else {
		s->busy = false;
		p->nbusy--;
	}
	pthread_mutex_unlock(&p->mu);
	if (next) {
		slot_encode(p, s);
		slot_send(s, false);
	}
	if (!drop)
		deliver(list, n, rv, m);
	nng_msg_free(m);
}

static void
slot_cb(void *arg)
{
	struct pipeline_slot *s = arg;
	int rv = nng_aio_result(s->aio);

	switch (s->stage) {
	case STAGE_PAUSE:
		if (rv == 0) {
			slot_send(s, true);
			return;
		}
		break; /* cancelled during the pause */
	case STAGE_SEND:
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(s->aio));
			nng_aio_set_msg(s->aio, NULL);
			break;
		}
		s->stage = STAGE_RECV;
		nng_aio_set_timeout(s->aio, slot_ms_left(s));
		nng_ctx_recv(s->ctx, s->aio);
		return;
	default:
		break;
	}
	if (connection_lost(rv) && slot_ms_left(s) > 5 &&
	    !__atomic_load_n(&s->p->closing, __ATOMIC_RELAXED)) {
		/* the connection broke under the message: send it again on
		 * the next one, after a pause for the dialer */
		s->stage = STAGE_PAUSE;
		nng_sleep_aio(2, s->aio);
		return;
	}
	slot_done(s, rv, rv == 0 ? nng_aio_get_msg(s->aio) : NULL);
}

void
pipeline_req_set(struct pipeline_req *rq, const struct ipc_append_req *r)
{
	ipc_out_reset(&rq->out);
	ipc_append_req_encode(&rq->out, r);
	rq->body = rq->out.buf;
	rq->len = rq->out.len;
}

void
pipeline_submit(struct pipeline *p, struct pipeline_req *rq)
{
	struct pipeline_slot *s;
	struct ipc_result res;

	rq->deadline = guard_now_ms() + p->timeout_ms;
	rq->next = NULL;
	rq->rid = 0; /* not sent (yet) */
	rq->entry = 0;
	pthread_mutex_lock(&p->mu);
	if (p->closing) {
		pthread_mutex_unlock(&p->mu);
		memset(&res, 0, sizeof(res));
		res.status = EF_S_UNAVAILABLE;
		res.message.ptr = "pipeline closed";
		res.message.len = (uint32_t)strlen(res.message.ptr);
		rq->done(rq, &res);
		return;
	}
	*p->tail = rq;
	p->tail = &rq->next;
	p->n++;
	p->bytes += rq->len;
	if ((s = slot_pick(p)) != NULL)
		slot_take(p, s);
	pthread_mutex_unlock(&p->mu);
	if (s != NULL) {
		slot_encode(p, s);
		slot_send(s, false);
	}
}

/* pipeline_append_wait(): the result, copied out of the callback. */
struct waiter {
	struct pipeline_req rq;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	struct ipc_out copy; /* a whole reply [status, message, body] */
};

static void
waiter_done(struct pipeline_req *rq, const struct ipc_result *res)
{
	struct waiter *w = rq->arg;
	char msg[IPC_MAX_STRLEN + 1];

	snprintf(msg, sizeof(msg), "%.*s", (int)res->message.len,
	    res->message.ptr ? res->message.ptr : "");
	ipc_reply_begin(&w->copy, res->status, msg);
	if (res->body != NULL)
		msgpack_pack_object(&w->copy.pk, *res->body);
	else
		ipc_nil(&w->copy);
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int
pipeline_append_wait(struct pipeline *p, const struct ipc_append_req *r,
    struct client_reply *rep)
{
	struct waiter w;
	const char *why = "";
	int rc = EF_S_OK;

	memset(&w, 0, sizeof(w));
	memset(rep, 0, sizeof(*rep));
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	ipc_out_init(&w.rq.out);
	ipc_out_init(&w.copy);
	pipeline_req_set(&w.rq, r);
	w.rq.done = waiter_done;
	w.rq.arg = &w;
	pipeline_submit(p, &w.rq);
	/* the callback comes by the deadline: pipeline_sweep() sees to it */
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	if (nng_msg_alloc(&rep->msg, 0) != 0 ||
	    nng_msg_append(rep->msg, w.copy.buf, w.copy.len) != 0 ||
	    ipc_reply_open(&rep->in, nng_msg_body(rep->msg),
	    nng_msg_len(rep->msg), &why) != 0) {
		client_reply_free(rep);
		memset(rep, 0, sizeof(*rep));
		rep->in.status = rc = EF_S_INTERNAL;
		rep->in.message.ptr = "out of memory";
		rep->in.message.len = (uint32_t)strlen(rep->in.message.ptr);
	} else
		rc = rep->in.status;
	ipc_out_free(&w.rq.out);
	ipc_out_free(&w.copy);
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

void
pipeline_sweep(struct pipeline *p)
{
	uint64_t now = guard_now_ms(), dl;
	size_t i;

	for (i = 0; i < PIPELINE_SLOTS; i++) {
		struct pipeline_slot *s = &p->slots[i];

		dl = __atomic_load_n(&s->deadline, __ATOMIC_RELAXED);
		if (dl != 0 && now > dl + CLIENT_GRACE_MS) {
			log_warnx("append_many: a message outlived its "
			    "deadline by %" PRIu64 " ms; cancelled", now - dl);
			nng_aio_cancel(s->aio);
		}
	}
}

/* Opens the slots' contexts on sock; p is zeroed but for cl. */
static int
pipeline_setup(struct pipeline *p, nng_socket sock, uint64_t timeout_ms)
{
	size_t i;
	int rv;

	pthread_mutex_init(&p->mu, NULL);
	p->tail = &p->head;
	p->timeout_ms = timeout_ms > INT32_MAX ? INT32_MAX : timeout_ms;
	for (i = 0; i < PIPELINE_SLOTS; i++) {
		struct pipeline_slot *s = &p->slots[i];

		s->p = p;
		ipc_out_init(&s->msg);
		if ((rv = nng_ctx_open(&s->ctx, sock)) != 0)
			goto fail;
		if ((rv = nng_aio_alloc(&s->aio, slot_cb, s)) != 0) {
			nng_ctx_close(s->ctx);
			goto fail;
		}
	}
	return 0;
fail:
	pipeline_fini(p, false);
	return ef_err_from_nng(rv);
}

int
pipeline_init(struct pipeline *p, nng_socket sock, uint64_t timeout_ms)
{
	memset(p, 0, sizeof(*p));
	return pipeline_setup(p, sock, timeout_ms);
}

void
pipeline_fini(struct pipeline *p, bool deliver_all)
{
	struct pipeline_req *waiting;
	size_t i;

	pthread_mutex_lock(&p->mu);
	p->closing = true;
	waiting = p->head;
	p->head = NULL;
	/* tail NULL: trips cancelled from here on are dropped unanswered */
	p->tail = deliver_all ? &p->head : NULL;
	p->n = 0;
	p->bytes = 0;
	pthread_mutex_unlock(&p->mu);
	if (deliver_all)
		fail_all(waiting, EF_S_UNAVAILABLE, "pipeline closed");
	for (i = 0; i < PIPELINE_SLOTS; i++) {
		struct pipeline_slot *s = &p->slots[i];

		if (s->aio != NULL) {
			/* cancels the trip and waits for its callback */
			nng_aio_stop(s->aio);
			nng_aio_free(s->aio);
			s->aio = NULL;
			nng_ctx_close(s->ctx);
		}
		ipc_out_free(&s->msg);
	}
	pthread_mutex_destroy(&p->mu);
}

static void *
sweeper_main(void *arg)
{
	struct pipeline *p = arg;
	struct timespec ts;

	pthread_mutex_lock(&p->smu);
	while (!p->closing) {
		clock_deadline_ms(&ts, SWEEP_MS);
		pthread_cond_timedwait(&p->scv, &p->smu, &ts);
		pipeline_sweep(p);
	}
	pthread_mutex_unlock(&p->smu);
	return NULL;
}

int
pipeline_open(struct pipeline *p, const char *url, int timeout_ms)
{
	int rc;

	memset(p, 0, sizeof(*p));
	/* in place: the dialer's guard keeps a pointer into p->cl */
	if ((rc = client_open(&p->cl, url, timeout_ms)) != 0)
		return rc;
	if ((rc = pipeline_setup(p, p->cl.sock,
	    (uint64_t)p->cl.timeout_ms)) != 0) {
		client_close(&p->cl);
		return rc;
	}
	p->own = true;
	pthread_mutex_init(&p->smu, NULL);
	pthread_cond_init(&p->scv, NULL);
	if (pthread_create(&p->sweeper, NULL, sweeper_main, p) != 0) {
		pipeline_fini(p, false);
		client_close(&p->cl);
		return -EAGAIN;
	}
	return 0;
}

void
pipeline_close(struct pipeline *p)
{
	if (p == NULL || !p->own)
		return;
	pthread_mutex_lock(&p->smu);
	__atomic_store_n(&p->closing, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&p->scv);
	pthread_mutex_unlock(&p->smu);
	pthread_join(p->sweeper, NULL);
	pipeline_fini(p, true);
	client_close(&p->cl);
	pthread_mutex_destroy(&p->smu);
	pthread_cond_destroy(&p->scv);
}
