/* SPDX-License-Identifier: MIT */
/*
 * server.c - libcommon's request server; server.h says what it does and
 * its shutdown policy.
 *
 * Locking: s->mu guards the pool's queue, `busy` (requests taken and
 * not yet sent) and `closing`. A context is touched by one thread at a
 * time: its callback (RECV, SEND), a pool thread (HANDLE), or, for a
 * deferred request, whoever calls srv_reply(). `busy` is raised under
 * mu before a request is looked at and `closing` is set under mu only
 * once it is 0 (or the drain gave up), so no request can slip in
 * between the drain and the stop.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "errors.h"
#include "listen.h"
#include "server.h"
#include "trace.h"

enum { ST_IDLE, ST_RECV, ST_HANDLE, ST_SEND };

/* a context's encode buffer over this is given back after a reply */
#define SRV_OUT_KEEP (8u << 20)

struct srv_req {
	struct srv *s;
	nng_ctx ctx;
	nng_aio *aio;
	int state;
	nng_msg *msg;     /* the request, reused for the reply */
	nng_msg *reply;   /* srv_reply_msg's, sent instead */
	struct ipc_in in; /* decoded from msg */
	struct ipc_out out;
	struct srv_req *qnext; /* in the pool's queue */
	void *data;            /* the daemon's (data_size bytes) */
};

struct srv {
	struct srv_conf c;
	nng_socket sock;
	struct ef_listener l;
	int listening;
	struct srv_req *reqs;
	uint64_t n;
	pthread_t *thr;
	uint64_t nthr;
	pthread_mutex_t mu;
	pthread_cond_t work; /* the queue has a request, or quit */
	pthread_cond_t idle; /* busy fell to 0 */
	struct srv_req *qhead, *qtail;
	uint64_t busy;
	int closing;
	int quit;
	int stopping;    /* atomic */
	uint64_t served; /* atomic */
};

static void
recv_start(struct srv_req *r)
{
	r->state = ST_RECV;
	nng_aio_set_timeout(r->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(r->ctx, r->aio);
}

/* Under s->mu: r's request is over (answered or dropped). */
static void
finish_locked(struct srv_req *r)
{
	struct srv *s = r->s;

	r->state = ST_IDLE;
	__atomic_add_fetch(&s->served, 1, __ATOMIC_RELAXED);
	if (--s->busy == 0)
		pthread_cond_broadcast(&s->idle);
}

/* Sends the reply in r->reply, or r->out in the request's message. */
static void
send_reply(struct srv_req *r)
{
	struct srv *s = r->s;
	nng_msg *m = r->msg;

	ipc_in_close(&r->in);
	r->msg = NULL;
	if (r->reply != NULL) {
		nng_msg_free(m);
		m = r->reply;
		r->reply = NULL;
	} else {
		nng_msg_clear(m);
		if (nng_msg_append(m, r->out.buf, r->out.len) != 0) {
			log_warnx("%s: no memory for a reply of %zu bytes",
			    s->c.name, r->out.len);
			nng_msg_free(m);
			m = NULL;
		}
	}
	if (r->out.cap > SRV_OUT_KEEP) {
		ipc_out_free(&r->out);
		ipc_out_init(&r->out);
	}
	pthread_mutex_lock(&s->mu);
	if (m == NULL || s->closing) {
		/* the drain gave up on this one: the process exits next */
		if (m != NULL)
			nng_msg_free(m);
		finish_locked(r);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	r->state = ST_SEND;
	pthread_mutex_unlock(&s->mu);
	nng_aio_set_timeout(r->aio,
	    s->c.send_ms > 0 ? s->c.send_ms : NNG_DURATION_INFINITE);
	nng_aio_set_msg(r->aio, m);
	nng_ctx_send(r->ctx, r->aio);
}

static const struct srv_op *
find_op(const struct srv *s, uint32_t op)
{
	size_t i;

	for (i = 0; i < s->c.nops; i++)
		if (s->c.ops[i].op == (int)op)
			return &s->c.ops[i];
	return NULL;
}

/* HANDLE: r->msg holds a request, counted in busy. */
static void
handle(struct srv_req *r)
{
	struct srv *s = r->s;
	const struct srv_op *op;
	const char *why = "";
	int rc;

	r->state = ST_HANDLE;
	ipc_out_reset(&r->out);
	memset(&r->in, 0, sizeof(r->in));
	rc = ipc_request_open(&r->in, nng_msg_body(r->msg),
	    nng_msg_len(r->msg), &why);
	if (rc != 0)
		srv_error(r, rc, "%s%s%s%s", why,
		    rc == EF_S_BAD_VERSION ? " (this " : "",
		    rc == EF_S_BAD_VERSION ? s->c.name : "",
		    rc == EF_S_BAD_VERSION ?
		        " speaks version " EF_STR(EF_PROTO_VERSION) ")" :
		        "");
	else if (__atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST))
		srv_error(r, EF_S_UNAVAILABLE, "%s is shutting down",
		    s->c.name);
	else if ((op = find_op(s, r->in.op)) == NULL)
		srv_error(r, EF_S_UNKNOWN_OP,
		    "unknown operation %u (%s) for "
		    "%s",
		    r->in.op, ipc_op_name((int)r->in.op), s->c.name);
	else if (s->c.admit == NULL || s->c.admit(r, &r->in, op->flags) == 0) {
		/* deferred: r may be answered, even re-armed, already */
		rc = op->fn(r, &r->in);
		if (s->c.after != NULL)
			s->c.after(s->c.arg);
		if (rc == SRV_DEFERRED)
			return;
		send_reply(r);
		return;
	}
	if (s->c.after != NULL)
		s->c.after(s->c.arg);
	send_reply(r);
}

static void
srv_cb(void *arg)
{
	struct srv_req *r = arg;
	struct srv *s = r->s;
	int rv = nng_aio_result(r->aio);

	switch (r->state) {
	case ST_RECV:
		if (rv != 0) {
			pthread_mutex_lock(&s->mu);
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED ||
			    s->closing) {
				r->state = ST_IDLE;
				pthread_mutex_unlock(&s->mu);
				return;
			}
			pthread_mutex_unlock(&s->mu);
			recv_start(r);
			return;
		}
		r->msg = nng_aio_get_msg(r->aio);
		pthread_mutex_lock(&s->mu);
		if (s->closing) {
			/* past the drain: unanswered, the client resends */
			r->state = ST_IDLE;
			pthread_mutex_unlock(&s->mu);
			nng_msg_free(r->msg);
			r->msg = NULL;
			return;
		}
		s->busy++;
		if (s->nthr > 0) {
			r->state = ST_HANDLE;
			r->qnext = NULL;
			if (s->qtail != NULL)
				s->qtail->qnext = r;
			else
				s->qhead = r;
			s->qtail = r;
			pthread_cond_signal(&s->work);
			pthread_mutex_unlock(&s->mu);
			return;
		}
		pthread_mutex_unlock(&s->mu);
		handle(r);
		return;
	case ST_SEND:
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(r->aio));
		pthread_mutex_lock(&s->mu);
		finish_locked(r);
		if (s->closing) {
			pthread_mutex_unlock(&s->mu);
			return;
		}
		pthread_mutex_unlock(&s->mu);
		recv_start(r);
		return;
	}
}

static void *
pool_main(void *arg)
{
	struct srv *s = arg;
	struct srv_req *r;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->qhead == NULL && !s->quit)
			pthread_cond_wait(&s->work, &s->mu);
		if ((r = s->qhead) == NULL)
			break; /* quit, and nothing left queued */
		if ((s->qhead = r->qnext) == NULL)
			s->qtail = NULL;
		pthread_mutex_unlock(&s->mu);
		handle(r);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
srv_start(const struct srv_conf *conf, struct srv **sp)
{
	struct srv *s;
	uint64_t i;
	int rv;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->c = *conf;
	s->n = conf->contexts ? conf->contexts : 1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->idle, NULL);
	if ((rv = nng_rep0_open(&s->sock)) != 0)
		goto fail_nng;
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ,
	    conf->max_msg ? conf->max_msg : IPC_MAX_MSG);
	if ((s->reqs = calloc(s->n, sizeof(*s->reqs))) == NULL)
		fatal("calloc");
	for (i = 0; i < s->n; i++) {
		struct srv_req *r = &s->reqs[i];

		r->s = s;
		ipc_out_init(&r->out);
		if (conf->data_size > 0 &&
		    (r->data = calloc(1, conf->data_size)) == NULL)
			fatal("calloc");
		if ((rv = nng_ctx_open(&r->ctx, s->sock)) != 0 ||
		    (rv = nng_aio_alloc(&r->aio, srv_cb, r)) != 0)
			goto fail_nng;
	}
	if ((s->thr = calloc(conf->threads ? conf->threads : 1,
	         sizeof(*s->thr))) == NULL)
		fatal("calloc");
	for (; s->nthr < conf->threads; s->nthr++)
		if (pthread_create(&s->thr[s->nthr], NULL, pool_main, s) != 0)
			fatal("pthread_create");
	if ((rv = listener_open(&s->l, s->sock, conf->url,
	         conf->perms ? conf->perms : 0660)) != 0)
		goto fail;
	s->listening = 1;
	for (i = 0; i < s->n; i++)
		recv_start(&s->reqs[i]);
	*sp = s;
	return 0;
fail_nng:
	rv = ef_err_from_nng(rv);
fail:
	srv_stop(s, NULL);
	return rv;
}

void
srv_stop(struct srv *s, void (*fini)(void *data))
{
	struct timespec until;
	uint64_t i, left;

	if (s == NULL)
		return;
	__atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SRV_DRAIN_MS / 1000;
	pthread_mutex_lock(&s->mu);
	while (s->busy > 0 &&
	    pthread_cond_timedwait(&s->idle, &s->mu, &until) != ETIMEDOUT)
		;
	left = s->busy;
	s->closing = 1;
	s->quit = 1;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->mu);
	/* a handler running now ends by its own deadlines */
	for (i = 0; i < s->nthr; i++)
		pthread_join(s->thr[i], NULL);
	if (s->listening)
		listener_close(&s->l);
	for (i = 0; s->reqs != NULL && i < s->n; i++)
		if (s->reqs[i].aio != NULL)
			nng_aio_stop(s->reqs[i].aio);
	for (i = 0; s->reqs != NULL && i < s->n; i++)
		nng_ctx_close(s->reqs[i].ctx);
	/* the socket is never closed: server.h, shutdown policy, step 4 */
	if (left > 0) {
		log_warnx("%s: %" PRIu64 " requests still unanswered after "
		          "%d ms; left to the exit",
		    s->c.name, left, SRV_DRAIN_MS);
		return;
	}
	for (i = 0; s->reqs != NULL && i < s->n; i++) {
		struct srv_req *r = &s->reqs[i];

		if (fini != NULL && r->data != NULL)
			fini(r->data);
		free(r->data);
		if (r->aio != NULL)
			nng_aio_free(r->aio);
		if (r->msg != NULL)
			nng_msg_free(r->msg);
		if (r->reply != NULL)
			nng_msg_free(r->reply);
		ipc_in_close(&r->in);
		ipc_out_free(&r->out);
	}
	free(s->reqs);
	free(s->thr);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->idle);
	free(s);
}

struct ipc_out *
srv_out(struct srv_req *r)
{
	return &r->out;
}

void
srv_error(struct srv_req *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trace_reply(r->in.request_id, (int)r->in.op, NULL, status, msg);
	if (r->reply != NULL) {
		nng_msg_free(r->reply);
		r->reply = NULL;
	}
	ipc_out_reset(&r->out);
	ipc_reply_begin(&r->out, status, msg);
	ipc_nil(&r->out);
}

void
srv_reply_msg(struct srv_req *r, nng_msg *m)
{
	if (r->reply != NULL)
		nng_msg_free(r->reply);
	r->reply = m;
}

void
srv_reply(struct srv_req *r)
{
	send_reply(r);
}

uint64_t
srv_request_id(const struct srv_req *r)
{
	return r->in.request_id;
}

int
srv_op(const struct srv_req *r)
{
	return (int)r->in.op;
}

void *
srv_data(struct srv_req *r)
{
	return r->data;
}

void *
srv_arg(const struct srv_req *r)
{
	return r->s->c.arg;
}

int
srv_stopping(const struct srv_req *r)
{
	return __atomic_load_n(&r->s->stopping, __ATOMIC_SEQ_CST);
}

uint64_t
srv_served(const struct srv *s)
{
	return __atomic_load_n(&s->served, __ATOMIC_RELAXED);
}
