/* SPDX-License-Identifier: MIT */
/*
 * batch.c - coalescing of gRPC Appends into APPEND_MANY messages to
 * eventfold-stored.
 *
 * One message to stored costs about one fdatasync here (nng 1.5 hands
 * it through several threads on both sides), so the gateway does not
 * send one message per Append. The rule is the one of proto/IPC.md:
 * the first Append goes at once; those that arrive while a message is
 * in flight wait in a queue and go together, as one APPEND_MANY, when
 * its reply comes back. At low load nothing waits; under load each
 * message carries what arrived during the previous round trip, which is
 * also what stored's writer puts under one fdatasync.
 *
 * A queue that passes BATCH_MAX_BYTES (or IPC_MAX_MANY appends) does not
 * wait for the reply: it goes on another of BATCH_SLOTS message slots,
 * if one is free. Each slot owns an nng context and aio on the store
 * socket, with the same round-trip rules as a call slot (server.c): the
 * trip ends by its deadline (the latest of its Appends'), a connection
 * that breaks under it makes the whole message go again on the next one
 * (every append is idempotent by its event ids, so entries already
 * committed are answered with their original positions), and
 * server_sweep() cancels a trip nng has not ended in time.
 *
 * Results go back by position: entry i of the reply is the result of
 * the i-th call of the slot's list, so a caller gets its own result or
 * UNAVAILABLE, never another's.
 *
 * Locking: one mutex guards the queue and which slots are busy; a busy
 * slot's list and buffers belong to whoever made it busy, until its
 * reply has been handed out.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gatewayd.h"
#include "ipc_many.h"
#include "log.h"

#define BATCH_SLOTS     4
#define BATCH_MAX_BYTES (4u << 20) /* a queue this large goes at once */

enum { BSTAGE_SEND = 1, BSTAGE_RECV, BSTAGE_PAUSE };

struct batch_slot {
	nng_ctx ctx;
	nng_aio *aio;
	int stage;
	bool busy;              /* under bq.mu */
	struct call *calls;     /* in arrival order, by bnext */
	uint32_t n;
	uint64_t deadline;      /* atomic: mono ms, 0 when no trip runs */
	struct ipc_out req;
};

static struct {
	pthread_mutex_t mu;
	struct call *head, **tail; /* waiting Appends */
	uint32_t n;
	size_t bytes;
	uint32_t nbusy;
	bool stopping;
	bool started;
	struct batch_slot slots[BATCH_SLOTS];
} bq = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void slot_cb(void *arg);

/* Under bq.mu: moves up to IPC_MAX_MANY waiting calls into s. */
static void
slot_take(struct batch_slot *s)
{
	struct call *c, **tp = &s->calls;
	uint64_t dl = 0;

	s->n = 0;
	while (bq.head != NULL && s->n < IPC_MAX_MANY) {
		c = bq.head;
		bq.head = c->bnext;
		bq.n--;
		bq.bytes -= c->req.len;
		c->bnext = NULL;
		*tp = c;
		tp = &c->bnext;
		s->n++;
		if (c->bdeadline > dl)
			dl = c->bdeadline;
	}
	if (bq.head == NULL)
		bq.tail = &bq.head;
	__atomic_store_n(&s->deadline, dl, __ATOMIC_RELAXED);
}

/* Under bq.mu: a free slot if the queue should go now, else NULL. */
static struct batch_slot *
slot_pick(void)
{
	size_t i;

	if (bq.head == NULL || bq.stopping)
		return NULL;
	if (bq.nbusy > 0 && bq.bytes < BATCH_MAX_BYTES && bq.n < IPC_MAX_MANY)
		return NULL; /* goes when a reply comes back */
	for (i = 0; i < BATCH_SLOTS; i++)
		if (!bq.slots[i].busy) {
			bq.slots[i].busy = true;
			bq.nbusy++;
			return &bq.slots[i];
		}
	return NULL;
}

static nng_duration
slot_ms_left(struct batch_slot *s)
{
	uint64_t now = guard_now_ms();
	uint64_t dl = __atomic_load_n(&s->deadline, __ATOMIC_RELAXED);

	if (dl <= now)
		return 1;
	return dl - now > INT32_MAX ? INT32_MAX : (nng_duration)(dl - now);
}

/* Fails every call of list with status and why. */
static void
fail_all(struct call *list, int status, const char *why)
{
	struct call *c, *next;

	for (c = list; c != NULL; c = next) {
		next = c->bnext; /* c may be re-armed by its reply */
		c->bnext = NULL;
		call_store_fail(c, status, why);
	}
}

/* Encodes s's calls as one APPEND_MANY (each req is an APPEND body). */
static void
slot_encode(struct batch_slot *s)
{
	static uint64_t next_id;
	struct call *c;

	if (s->calls != NULL)
		__atomic_add_fetch(&s->calls->gw->mx.append_messages, 1,
		    __ATOMIC_RELAXED);
	ipc_out_reset(&s->req);
	ipc_request_begin(&s->req, EF_OP_APPEND_MANY,
	    __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED));
	ipc_many_begin(&s->req, s->n);
	for (c = s->calls; c != NULL; c = c->bnext)
		ipc_out_raw(&s->req, c->req.buf, c->req.len);
}

/* Sends s->req by the trip's deadline; a resend must find a connection
 * within PEER_RECONNECT_MS. */
static void
slot_send(struct batch_slot *s, bool resend)
{
	nng_duration left = slot_ms_left(s);
	nng_msg *m = NULL;

	if (nng_msg_alloc(&m, 0) != 0 ||
	    nng_msg_append(m, s->req.buf, s->req.len) != 0) {
		nng_msg_free(m);
		/* as if stored had failed: the callback hands it out */
		s->stage = BSTAGE_RECV;
		nng_aio_set_msg(s->aio, NULL);
		nng_sleep_aio(0, s->aio);
		return;
	}
	s->stage = BSTAGE_SEND;
	nng_aio_set_msg(s->aio, m);
	nng_aio_set_timeout(s->aio, resend && left > PEER_RECONNECT_MS ?
	    PEER_RECONNECT_MS : left);
	nng_ctx_send(s->ctx, s->aio);
}

/* Hands the reply (or the failure rv) out to the calls of list. */
static void
deliver(struct call *list, uint32_t n, int rv, nng_msg *m)
{
	struct client_reply rep;
	struct ipc_result res;
	struct ipc_in in;
	struct call *c, *next;
	const char *why = "";
	uint32_t i;

	if (rv != 0 || m == NULL) {
		fail_all(list, EF_S_UNAVAILABLE, rv == NNG_ETIMEDOUT ||
		    rv == NNG_ECANCELED ? "eventfold-stored did not answer in "
		    "time" : rv == 0 ? "out of memory" :
		    "eventfold-stored is unreachable");
		return;
	}
	if (ipc_reply_open(&in, nng_msg_body(m), nng_msg_len(m), &why) != 0 ||
	    (in.status == EF_S_OK &&
	    ipc_many_rep_open(in.body, n, &why) != 0)) {
		log_warnx("malformed append_many reply from eventfold-stored: "
		    "%s", why);
		ipc_in_close(&in);
		fail_all(list, EF_S_INTERNAL, "malformed reply from "
		    "eventfold-stored");
		return;
	}
	if (in.status != EF_S_OK) {
		/* the whole message was refused (stored shutting down) */
		char msg[IPC_MAX_STRLEN + 1];

		snprintf(msg, sizeof(msg), "%.*s", (int)in.message.len,
		    in.message.ptr);
		ipc_in_close(&in);
		fail_all(list, in.status, msg);
		return;
	}
	for (c = list, i = 0; c != NULL; c = next, i++) {
		next = c->bnext;
		c->bnext = NULL;
		if (ipc_result_decode(&in.body->via.array.ptr[i], &res,
		    &why) != 0) {
			call_store_fail(c, EF_S_INTERNAL, "malformed reply from "
			    "eventfold-stored");
			continue;
		}
		memset(&rep, 0, sizeof(rep));
		rep.in.status = res.status;
		rep.in.message = res.message;
		rep.in.body = res.body;
		c->store_done(c, &rep); /* nothing to free: in and m are ours */
	}
	ipc_in_close(&in);
}

/* The trip of s ended (rv): send what waits, then answer its calls. */
static void
slot_done(struct batch_slot *s, int rv, nng_msg *m)
{
	struct call *list = s->calls;
	uint32_t n = s->n;
	bool next = false;

	__atomic_store_n(&s->deadline, 0, __ATOMIC_RELAXED);
	s->calls = NULL;
	s->n = 0;
	pthread_mutex_lock(&bq.mu);
	if (bq.stopping) {
		/* the server is gone: nobody to answer */
		pthread_mutex_unlock(&bq.mu);
		nng_msg_free(m);
		return;
	}
	if (bq.head != NULL) {
		slot_take(s);
		next = true;
	} else {
		s->busy = false;
		bq.nbusy--;
	}
	pthread_mutex_unlock(&bq.mu);
	/* the next message first: stored can work on it meanwhile */
	if (next) {
		slot_encode(s);
		slot_send(s, false);
	}
	deliver(list, n, rv, m);
	nng_msg_free(m);
}

static void
slot_cb(void *arg)
{
	struct batch_slot *s = arg;
	int rv = nng_aio_result(s->aio);

	switch (s->stage) {
	case BSTAGE_PAUSE:
		slot_send(s, true);
		return;
	case BSTAGE_SEND:
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(s->aio));
			nng_aio_set_msg(s->aio, NULL);
			break;
		}
		s->stage = BSTAGE_RECV;
		nng_aio_set_timeout(s->aio, slot_ms_left(s));
		nng_ctx_recv(s->ctx, s->aio);
		return;
	default:
		break;
	}
	if (peer_connection_lost(rv) && slot_ms_left(s) > 5 &&
	    !__atomic_load_n(&bq.stopping, __ATOMIC_RELAXED)) {
		/* the connection broke under the message: send it again on
		 * the next one, after a pause for the dialer */
		s->stage = BSTAGE_PAUSE;
		nng_sleep_aio(2, s->aio);
		return;
	}
	slot_done(s, rv, rv == 0 ? nng_aio_get_msg(s->aio) : NULL);
}

void
batch_append(struct call *c,
    void (*done)(struct call *, struct client_reply *))
{
	struct batch_slot *s;
	uint64_t timeout = c->gw->conf.store_timeout_ms;

	c->store_done = done;
	if (!store_up(c->gw)) {
		call_store_fail(c, EF_S_UNAVAILABLE,
		    "eventfold-stored is unreachable");
		return;
	}
	c->bdeadline = guard_now_ms() + (timeout > INT32_MAX ? INT32_MAX :
	    timeout);
	c->bnext = NULL;
	pthread_mutex_lock(&bq.mu);
	*bq.tail = c;
	bq.tail = &c->bnext;
	bq.n++;
	bq.bytes += c->req.len;
	if ((s = slot_pick()) != NULL)
		slot_take(s);
	pthread_mutex_unlock(&bq.mu);
	if (s != NULL) {
		slot_encode(s);
		slot_send(s, false);
	}
}

int
batch_start(struct gw *gw)
{
	size_t i;
	int rv;

	bq.tail = &bq.head;
	for (i = 0; i < BATCH_SLOTS; i++) {
		struct batch_slot *s = &bq.slots[i];

		ipc_out_init(&s->req);
		if ((rv = nng_ctx_open(&s->ctx, gw->store)) != 0 ||
		    (rv = nng_aio_alloc(&s->aio, slot_cb, s)) != 0)
			return rv;
	}
	bq.started = true;
	return 0;
}

void
batch_sweep(struct gw *gw)
{
	uint64_t now = guard_now_ms(), dl;
	size_t i;

	(void)gw;
	if (!bq.started)
		return;
	for (i = 0; i < BATCH_SLOTS; i++) {
		struct batch_slot *s = &bq.slots[i];

		dl = __atomic_load_n(&s->deadline, __ATOMIC_RELAXED);
		if (dl != 0 && now > dl + PEER_GRACE_MS) {
			log_warnx("append_many: a message outlived its "
			    "deadline by %" PRIu64 " ms; cancelled", now - dl);
			nng_aio_cancel(s->aio);
		}
	}
}

void
batch_stop(struct gw *gw)
{
	size_t i;

	(void)gw;
	if (!bq.started)
		return;
	pthread_mutex_lock(&bq.mu);
	bq.stopping = true;
	pthread_mutex_unlock(&bq.mu);
	for (i = 0; i < BATCH_SLOTS; i++) {
		struct batch_slot *s = &bq.slots[i];

		nng_aio_stop(s->aio);
		nng_ctx_close(s->ctx);
		nng_aio_free(s->aio);
		ipc_out_free(&s->req);
	}
	bq.started = false;
}
