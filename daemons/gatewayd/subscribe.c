/* SPDX-License-Identifier: MIT */
/*
 * subscribe.c - SubscribeAll and SubscribeStream: catch-up, exactly one
 * caught_up, then live events, in order, without gaps or repeats.
 *
 * Each open subscription has a thread running libcommon's sub_run():
 * it reads pages from eventfold-stored up to the head, then follows
 * stored's publish socket, filling any gap by reading again. The thread
 * sends one message at a time and waits for the gRPC send to complete,
 * so a slow client slows only its own thread: meanwhile its sub socket
 * (a bounded buffer) overflows and drops, and sub_run refills what was
 * dropped from stored. Memory per subscription is bounded; a slow
 * client is never cut off. If stored restarts, sub_run keeps the
 * position and resumes when stored is back.
 *
 * `from` past the head waits there: the first event delivered is the
 * one at `from` (stream version `from` for SubscribeStream).
 *
 * Ending: the client cancelling (RECV_CLOSE_ON_SERVER, or a failed
 * send) or shutdown (subscribe_stop_all: status OK) stops sub_run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eventfold.pb-c.h"
#include "gatewayd.h"
#include "log.h"

#define SUB_STACK (256u << 10)

struct sub {
	struct gw *gw;
	grpc_call *call;
	struct gw_tag send_tag;
	struct gw_tag close_tag;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int send_done, send_ok, closed, cancelled;
	int stop;               /* atomic: sub_run's stop flag */
	bool is_stream;
	char stream_id[UUID_STR_LEN];
	uint64_t from;
	uint64_t next;          /* atomic: next global position (all) */
	grpc_slice details;
	struct pbuf out;
	struct sub *prev, *nextsub;
};

static pthread_mutex_t subs_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t subs_cv = PTHREAD_COND_INITIALIZER;
static struct sub *subs;
static int subs_stopping;

static void
sub_send_done(struct gw_tag *t, int ok)
{
	struct sub *s = (struct sub *)((char *)t -
	    offsetof(struct sub, send_tag));

	pthread_mutex_lock(&s->mu);
	s->send_done = 1;
	s->send_ok = ok;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void
sub_close_done(struct gw_tag *t, int ok)
{
	struct sub *s = (struct sub *)((char *)t -
	    offsetof(struct sub, close_tag));

	(void)ok;
	pthread_mutex_lock(&s->mu);
	s->closed = 1;
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Starts a batch on the send tag and waits for it; returns its success. */
static int
sub_batch(struct sub *s, grpc_op *ops, size_t n)
{
	int ok;

	pthread_mutex_lock(&s->mu);
	s->send_done = 0;
	pthread_mutex_unlock(&s->mu);
	if (grpc_call_start_batch(s->call, ops, n, &s->send_tag, NULL) !=
	    GRPC_CALL_OK)
		return 0;
	pthread_mutex_lock(&s->mu);
	while (!s->send_done)
		pthread_cond_wait(&s->cv, &s->mu);
	ok = s->send_ok;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

static int
sub_send(struct sub *s)
{
	grpc_op op;
	int ok;

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = buffer_from(s->out.buf,
	    s->out.len);
	ok = sub_batch(s, &op, 1);
	grpc_byte_buffer_destroy(op.data.send_message.send_message);
	pbuf_trim(&s->out, 64u << 10);
	return ok;
}

static int
sub_on_event(void *arg, const struct ef_event *ev)
{
	struct sub *s = arg;

	if (__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
		return 1;
	s->out.len = 0;
	/* SubscribeResponse{event = 1}: the event is field 1 */
	rpc_pack_event(&s->out, 1, ev, 0);
	if (!sub_send(s))
		return 1;
	__atomic_store_n(&s->next, ev->global_position + 1, __ATOMIC_RELAXED);
	return 0;
}

static int
sub_on_caught_up(void *arg)
{
	struct sub *s = arg;

	if (__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
		return 1;
	/* SubscribeResponse{caught_up = Empty{}} */
	s->out.len = 0;
	pbuf_field(&s->out, 2, 0);
	return sub_send(s) ? 0 : 1;
}

static void
sub_unlink(struct sub *s)
{
	pthread_mutex_lock(&subs_mu);
	if (s->prev != NULL)
		s->prev->nextsub = s->nextsub;
	else
		subs = s->nextsub;
	if (s->nextsub != NULL)
		s->nextsub->prev = s->prev;
	pthread_cond_broadcast(&subs_cv);
	pthread_mutex_unlock(&subs_mu);
}

static void *
sub_main(void *arg)
{
	struct sub *s = arg;
	struct gw *gw = s->gw;
	struct sub_params p;
	grpc_op ops[2];
	int rc = 0, code = GW_OK;
	const char *msg = "";

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (!sub_batch(s, ops, 1))
		__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[0].data.recv_close_on_server.cancelled = &s->cancelled;
	if (grpc_call_start_batch(s->call, ops, 1, &s->close_tag, NULL) !=
	    GRPC_CALL_OK) {
		s->closed = 1;
		__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	}

	memset(&p, 0, sizeof(p));
	p.store_url = gw->store_url;
	p.events_url = gw->events_url;
	p.stream_id = s->is_stream ? s->stream_id : NULL;
	p.from = s->from;
	p.page = 1000;
	p.on_event = sub_on_event;
	p.on_caught_up = sub_on_caught_up;
	p.arg = s;
	p.stop = &s->stop;
	if (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
		rc = sub_run(&p);
	if (rc < 0) {
		log_warnx("subscription ended: %s", ipc_status_text(-rc));
		code = ipc_status_grpc(-rc);
		msg = ipc_status_text(-rc);
	} else if (__atomic_load_n(&gw->stopping, __ATOMIC_RELAXED)) {
		msg = "eventfold-gatewayd is shutting down";
	}

	pthread_mutex_lock(&s->mu);
	if (!s->closed) {
		pthread_mutex_unlock(&s->mu);
		memset(ops, 0, sizeof(ops));
		s->details = grpc_slice_from_copied_string(msg);
		ops[0].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
		ops[0].data.send_status_from_server.status =
		    (grpc_status_code)code;
		ops[0].data.send_status_from_server.status_details =
		    &s->details;
		(void)sub_batch(s, ops, 1);
		pthread_mutex_lock(&s->mu);
	}
	while (!s->closed)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);

	grpc_call_unref(s->call);
	grpc_slice_unref(s->details);
	__atomic_sub_fetch(&gw->mx.subscriptions_active, 1, __ATOMIC_RELAXED);
	log_debug("subscription ended");
	sub_unlink(s);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->out.buf);
	free(s);
	return NULL;
}

static void
sub_start(struct call *c, bool is_stream, const char *stream_id,
    uint64_t from)
{
	struct gw *gw = c->gw;
	pthread_attr_t attr;
	pthread_t thr;
	struct sub *s;

	if (!store_up(gw)) {
		call_finish(c, GW_UNAVAILABLE, "eventfold-stored is "
		    "unreachable");
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		call_finish(c, GW_INTERNAL, "out of memory");
		return;
	}
	pthread_mutex_lock(&subs_mu);
	if (subs_stopping) {
		pthread_mutex_unlock(&subs_mu);
		free(s);
		call_finish(c, GW_UNAVAILABLE, "eventfold-gatewayd is "
		    "shutting down");
		return;
	}
	s->gw = gw;
	s->send_tag.fn = sub_send_done;
	s->close_tag.fn = sub_close_done;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->is_stream = is_stream;
	if (is_stream)
		snprintf(s->stream_id, sizeof(s->stream_id), "%s", stream_id);
	s->from = from;
	s->next = is_stream ? 0 : from;
	s->details = grpc_empty_slice();
	s->call = call_detach(c);
	s->nextsub = subs;
	if (subs != NULL)
		subs->prev = s;
	subs = s;
	__atomic_add_fetch(&gw->mx.subscriptions_active, 1, __ATOMIC_RELAXED);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SUB_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thr, &attr, sub_main, s) != 0)
		fatal("pthread_create");
	pthread_attr_destroy(&attr);
	pthread_mutex_unlock(&subs_mu);
}

void
subscribe_all(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__SubscribeAllRequest *r;
	uint64_t from;

	if ((r = eventfold__subscribe_all_request__unpack(NULL, len, buf)) ==
	    NULL) {
		call_finish(c, GW_INVALID_ARGUMENT, "malformed "
		    "SubscribeAllRequest");
		return;
	}
	from = r->from_position;
	eventfold__subscribe_all_request__free_unpacked(r, NULL);
	sub_start(c, false, NULL, from);
}

void
subscribe_stream(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__SubscribeStreamRequest *r;
	uint8_t sid[UUID_LEN];
	char sbuf[UUID_STR_LEN];
	uint64_t from;

	if ((r = eventfold__subscribe_stream_request__unpack(NULL, len,
	    buf)) == NULL) {
		call_finish(c, GW_INVALID_ARGUMENT, "malformed "
		    "SubscribeStreamRequest");
		return;
	}
	if (!utf8_valid(r->stream_id, strlen(r->stream_id)) ||
	    uuid_parse(r->stream_id, strlen(r->stream_id), sid) != 0) {
		call_errorf(c, GW_INVALID_ARGUMENT, "stream_id: malformed uuid "
		    "\"%.64s\"", r->stream_id);
		eventfold__subscribe_stream_request__free_unpacked(r, NULL);
		return;
	}
	from = r->from_version;
	eventfold__subscribe_stream_request__free_unpacked(r, NULL);
	sub_start(c, true, uuid_format(sid, sbuf), from);
}

void
subscribe_stop_all(void)
{
	struct sub *s;

	pthread_mutex_lock(&subs_mu);
	subs_stopping = 1;
	for (s = subs; s != NULL; s = s->nextsub)
		__atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&subs_mu);
}

void
subscribe_wait_all(uint64_t timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(timeout_ms / 1000) + 1;
	pthread_mutex_lock(&subs_mu);
	while (subs != NULL)
		if (pthread_cond_timedwait(&subs_cv, &subs_mu, &ts) ==
		    ETIMEDOUT)
			break;
	if (subs != NULL)
		log_warnx("subscriptions still ending at exit");
	pthread_mutex_unlock(&subs_mu);
}

uint64_t
subscribe_max_lag(uint64_t head)
{
	struct sub *s;
	uint64_t lag = 0, next;

	pthread_mutex_lock(&subs_mu);
	for (s = subs; s != NULL; s = s->nextsub) {
		if (s->is_stream)
			continue;
		next = __atomic_load_n(&s->next, __ATOMIC_RELAXED);
		if (head > next && head - next > lag)
			lag = head - next;
	}
	pthread_mutex_unlock(&subs_mu);
	return lag;
}
