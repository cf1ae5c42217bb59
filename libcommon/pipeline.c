/* SPDX-License-Identifier: MIT */
/*
 * pipeline.c - asynchronous appends coalesced into APPEND_MANY messages
 * (pipeline.h has the rules).
 *
 * Each message slot makes its trips with an acall (acall.h): send,
 * receive, and on a broken connection a pause and the same message
 * again, unless the pipeline is closing. When a slot's trip ends it first
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
#include "log.h"
#include "pipeline.h"
#include "trace.h"

#define SWEEP_MS 50

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
	while (p->head != NULL && s->n < IPC_MAX_MANY &&
	    (s->n == 0 || bytes + p->head->len <= PIPELINE_MAX_BYTES)) {
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
	s->deadline = dl;
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

/* Sends s's appends as one APPEND_MANY. */
static void
slot_send(struct pipeline *p, struct pipeline_slot *s)
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
	acall_start(&s->ac, s->msg.buf, s->msg.len, rid, s->deadline);
}

/* Hands the reply (or the failure err) out to list, n appends. */
static void
deliver(struct pipeline_req *list, uint32_t n, int err,
    struct client_reply *rep)
{
	char msg[IPC_MAX_STRLEN + 1];
	struct ipc_result res;
	struct pipeline_req *rq, *next;
	const char *why = "";
	uint32_t i;

	if (err == 0 && rep->in.status == EF_S_OK &&
	    ipc_many_rep_open(rep->in.body, n, &why) != 0) {
		log_warnx("malformed append_many reply: %s", why);
		fail_all(list, EF_S_INTERNAL,
		    "malformed reply from "
		    "eventfold-stored");
		return;
	}
	if (err != 0 || rep->in.status != EF_S_OK) {
		/* the message failed, or was refused whole (stored shutting
		 * down) */
		snprintf(msg, sizeof(msg), "%.*s", (int)rep->in.message.len,
		    rep->in.message.ptr);
		fail_all(list, rep->in.status,
		    err == -EBADF ? "pipeline closed" : msg);
		return;
	}
	for (rq = list, i = 0; rq != NULL; rq = next, i++) {
		next = rq->next;
		rq->next = NULL;
		if (ipc_result_decode(&rep->in.body->via.array.ptr[i], &res,
		        &why) != 0) {
			fail_all(rq, EF_S_INTERNAL,
			    "malformed reply from "
			    "eventfold-stored");
			continue;
		}
		rq->done(rq, &res);
	}
}

/* The trip of s ended: send what waits, then answer its appends. */
static void
slot_done(void *arg, int err, struct client_reply *rep)
{
	struct pipeline_slot *s = arg;
	struct pipeline *p = s->p;
	struct pipeline_req *list = s->reqs;
	uint32_t n = s->n;
	bool next = false, drop;

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
	if (next)
		slot_send(p, s);
	if (!drop)
		deliver(list, n, err, rep);
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
	if (s != NULL)
		slot_send(p, s);
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
	uint64_t now = guard_now_ms(), late;
	size_t i;

	for (i = 0; i < PIPELINE_SLOTS; i++)
		if ((late = acall_sweep(&p->slots[i].ac, now,
		         CLIENT_GRACE_MS)) != 0)
			log_warnx("append_many: a message outlived its "
			          "deadline by %" PRIu64 " ms; cancelled",
			    late);
}

/* Opens the slots' contexts on sock; p is zeroed but for cl. */
static int
pipeline_setup(struct pipeline *p, nng_socket sock, uint64_t timeout_ms)
{
	size_t i;
	int rc;

	pthread_mutex_init(&p->mu, NULL);
	p->tail = &p->head;
	p->timeout_ms = timeout_ms > INT32_MAX ? INT32_MAX : timeout_ms;
	for (i = 0; i < PIPELINE_SLOTS; i++) {
		struct pipeline_slot *s = &p->slots[i];

		s->p = p;
		ipc_out_init(&s->msg);
		if ((rc = acall_init(&s->ac, sock, "eventfold-stored",
		         slot_done, s)) != 0)
			goto fail;
		s->ac.resend = true;
		s->ac.halt = &p->closing;
	}
	return 0;
fail:
	pipeline_fini(p, false);
	return rc;
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

		/* cancels the trip and waits for its callback */
		acall_fini(&s->ac);
		ipc_out_free(&s->msg);
	}
	pthread_mutex_destroy(&p->mu);
}

static void *
sweeper_main(void *arg)
{
	struct pipeline *p = arg;

	pthread_mutex_lock(&p->smu);
	while (clock_nap(&p->scv, &p->smu, SWEEP_MS, &p->closing))
		pipeline_sweep(p);
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
	if ((rc = pipeline_setup(p, p->cl.sock, (uint64_t)p->cl.timeout_ms)) !=
	    0) {
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
