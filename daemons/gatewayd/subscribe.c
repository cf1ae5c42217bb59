/* SPDX-License-Identifier: MIT */
/*
 * subscribe.c - SubscribeAll and SubscribeStream: catch-up, exactly one
 * caught_up, then live events, in order, without gaps or repeats, for
 * any number of subscribers at once.
 *
 * The live feed: ONE thread with ONE nng sub socket on stored's publish
 * socket appends every published batch to a shared ring of the most
 * recent events (ring_cap, live_ring_events of the configuration, or
 * EventfoldDB's EVENTFOLD_BROKER_CAPACITY; contiguous global positions
 * lo..hi-1), each
 * already encoded once as a SubscribeResponse in a refcounted gRPC
 * slice. A batch that does not start at hi (pub dropped something) or
 * came without its events, and a quiet second, make the feed read the
 * missing events from stored (READ_ALL) before going on; if stored
 * cannot answer, the ring restarts empty at the batch. Positions are
 * the truth; the publish socket is only a hint.
 *
 * A subscription is a state machine driven by its completions, with no
 * thread of its own. It has at most one activity at a time: a send on
 * the completion queue, a read page from stored on its own nng context
 * (async, like the unary calls), or being parked on the ring's waiter
 * list; whoever completes that activity runs sub_pump() next, so its
 * state needs no lock (the ring's mutex covers parking, waking and the
 * close). Its modes:
 *   STORE  read pages from stored (READ_ALL from the next position, or
 *          READ_STREAM from the next version) until the head; the first
 *          time, then queue caught_up; go LIVE.
 *   LIVE   take the events after the last one delivered from the ring
 *          (slice refs, up to SUB_TAKE under one lock); past the tail:
 *          park until the feed adds more; fallen behind lo (a slow
 *          client) or, for a stream, a version missing: back to STORE.
 * A slow client only slows itself, and memory is bounded: the ring is
 * shared and a subscription queues at most one page.
 *
 * Sends: one event per message (the proto's rule), one SEND_MESSAGE per
 * completion (the core allows one in flight per call). Each event is
 * encoded once, by the feed, for every subscriber; a send costs a slice
 * ref and a byte buffer, and the queue is refilled with one lock per
 * run of up to SUB_TAKE events. GRPC_WRITE_BUFFER_HINT is NOT used: in
 * gRPC 1.51 hinted messages were lost or held back (a subscriber missed
 * events, or got none) - checked with the e2e tests.
 *
 * Catch-up pages: a full page of SubscribeAll catch-up read from stored
 * is kept, encoded, in a small shared cache (PAGES_N pages, PAGES_BYTES
 * at most, least recently used out first), so that subscriptions that
 * need the same page (many starting from 0, or slow ones fallen behind
 * the ring together) take slice refs instead of a read and an encoding
 * of every event each. Events never change once written, so an entry is
 * never stale; only full pages are kept, so a page from the cache never
 * decides caught_up (the next read from stored does).
 *
 * stored restarting: reads fail and are retried every RETRY_MS, the
 * feed's socket redials and the gap is filled; subscriptions resume
 * where they were. Ending: the client cancelling (RECV_CLOSE_ON_SERVER,
 * or a failed send), or shutdown (subscribe_stop_all: status OK).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "eventfold.pb-c.h"
#include "gatewayd.h"
#include "log.h"
#include "trace.h"

#include <nng/protocol/pubsub0/sub.h>

#define SUB_PAGE     512u  /* events per catch-up read */
#define SUB_TAKE     256u  /* events taken from the ring per lock */
#define SUB_SCAN     8192u /* ring entries a stream subscription scans */
#define RETRY_MS     200   /* between reads while stored is away */
#define FEED_IDLE_MS 1000  /* a quiet feed checks stored for a lost batch */
#define PAGES_N      32u   /* catch-up pages kept */
#define PAGES_BYTES  (32u << 20) /* their encoded bytes at most */

enum sub_mode { MODE_STORE, MODE_LIVE };

struct ring_ent {
	uint64_t pos;
	uint64_t ver;
	uint8_t sid[UUID_LEN];
	grpc_slice msg; /* SubscribeResponse{event} */
};

struct sub {
	struct gw *gw;
	grpc_call *call;
	struct gw_tag send_tag;
	struct gw_tag close_tag;
	int refs; /* atomic: the activity, the close op */
	int cancelled;
	bool closed; /* ring_mu: RECV_CLOSE came */
	bool parked; /* ring_mu: on the waiter list */
	bool md_sent, ending, failed;
	int end_code;
	const char *end_msg;
	bool is_stream;
	uint8_t sid[UUID_LEN];
	char stream_id[UUID_STR_LEN];
	enum sub_mode mode;
	bool caught_up_sent;
	uint64_t next_pos; /* atomic: next global position to look at */
	uint64_t next_ver; /* stream: next version to deliver */
	/* messages to send, q[qi..qn) */
	grpc_slice *q;
	size_t qi, qn, qcap;
	grpc_byte_buffer *bb; /* the message in flight */
	grpc_slice details;
	/* reads from stored (acall.h), and the pause before another */
	struct acall ac;
	struct ipc_out req;
	uint64_t rid; /* the subscribe call's request id (trace.h) */
	struct pbuf pb;
	LIST_ENTRY(sub) link; /* subs_mu */
	struct sub *wnext;    /* ring_mu: waiter list */
};

/* The ring and its waiters. */
static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ring_ent *ring;
static uint64_t ring_cap; /* set once, before the feed starts */
static uint64_t ring_lo, ring_hi;
static bool ring_init;
static struct sub *waiters;

/* Every subscription, for shutdown and the lag metric. */
static pthread_mutex_t subs_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t subs_cv = PTHREAD_COND_INITIALIZER;
static LIST_HEAD(, sub) subs = LIST_HEAD_INITIALIZER(subs);
static int subs_stopping; /* atomic */

/* The feed thread. */
static pthread_t feed_thr;
static bool feed_started;
static int feed_stop; /* atomic */

/* Catch-up pages (pages_mu). */
struct page {
	uint64_t from; /* its first global position */
	uint64_t used; /* pages_clock when last taken or kept */
	size_t bytes;
	grpc_slice *msgs; /* SUB_PAGE events, or NULL: a free slot */
};
static pthread_mutex_t pages_mu = PTHREAD_MUTEX_INITIALIZER;
static struct page pages[PAGES_N];
static size_t pages_bytes;
static uint64_t pages_clock;

static void sub_pump(struct sub *s);
static void sub_send_done(struct gw_tag *t, int ok);

/* Ring (callers hold ring_mu unless noted) */

/* Takes the waiter list; the caller pumps each one outside the lock. */
static struct sub *
ring_take_waiters(void)
{
	struct sub *w = waiters, *s;

	waiters = NULL;
	for (s = w; s != NULL; s = s->wnext)
		s->parked = false;
	return w;
}

static void
wake(struct sub *w)
{
	struct sub *n;

	for (; w != NULL; w = n) {
		n = w->wnext;
		w->wnext = NULL;
		sub_pump(w);
	}
}

/* Empties the ring and restarts it at pos. */
static void
ring_reset(uint64_t pos)
{
	uint64_t p;

	for (p = ring_lo; p < ring_hi; p++)
		grpc_slice_unref(ring[p % ring_cap].msg);
	ring_lo = ring_hi = pos;
	ring_init = true;
}

/* Encodes ev as a SubscribeResponse slice (no lock needed). */
static grpc_slice
event_slice(struct pbuf *pb, const struct ef_event *ev)
{
	pb->len = 0;
	rpc_pack_event(pb, 1, ev, 0);
	return grpc_slice_from_copied_buffer((const char *)pb->buf, pb->len);
}

/* Appends an entry at ring_hi (e->pos must be it); takes e->msg. */
static void
ring_push(const struct ring_ent *e)
{
	if (ring_hi - ring_lo == ring_cap) {
		grpc_slice_unref(ring[ring_lo % ring_cap].msg);
		ring_lo++;
	}
	ring[ring_hi % ring_cap] = *e;
	ring_hi++;
}

/*
 * Adds the events of one array (a pub batch or a read page) that come
 * next; returns the events added. Decodes and encodes outside the lock.
 */
static size_t
ring_add(const msgpack_object *arr, uint32_t n, struct pbuf *pb)
{
	struct ef_event ev;
	struct ring_ent *es;
	const char *why;
	struct sub *w;
	uint32_t i;
	size_t added = 0;

	if (n == 0)
		return 0;
	if ((es = calloc(n, sizeof(*es))) == NULL)
		fatal("calloc");
	for (i = 0; i < n; i++) {
		if (ipc_event_decode(&arr->via.array.ptr[i], &ev, &why) != 0) {
			log_warnx(
			    "feed: malformed event from eventfold-stored: "
			    "%s",
			    why);
			n = i;
			break;
		}
		es[i].pos = ev.global_position;
		es[i].ver = ev.stream_version;
		memcpy(es[i].sid, ev.stream_id, UUID_LEN);
		es[i].msg = event_slice(pb, &ev);
	}
	pthread_mutex_lock(&ring_mu);
	for (i = 0; i < n; i++) {
		if (!ring_init)
			ring_reset(es[i].pos);
		if (es[i].pos == ring_hi) {
			ring_push(&es[i]);
			added++;
		} else
			grpc_slice_unref(es[i].msg);
	}
	w = added > 0 ? ring_take_waiters() : NULL;
	pthread_mutex_unlock(&ring_mu);
	wake(w);
	free(es);
	return added;
}

/* Feed */

/*
 * Reads from stored what the ring misses, up to `to` (exclusive;
 * UINT64_MAX: the head). If stored cannot say, the ring restarts empty
 * at `to` (subscriptions read from stored what is below it).
 */
static void
feed_fill(struct ef_client *cl, struct ipc_out *o, struct pbuf *pb,
    uint64_t to)
{
	struct client_reply rep;
	struct ipc_read_all_req r;
	struct ipc_read_rep rr;
	struct sub *w;
	const char *why;
	uint64_t hi;
	int st;

	for (;;) {
		pthread_mutex_lock(&ring_mu);
		hi = ring_hi;
		pthread_mutex_unlock(&ring_mu);
		if (hi >= to)
			return;
		r.from = hi;
		r.max_count = to - hi < 1000 ? to - hi : 1000;
		r.direction = EF_FORWARD;
		ipc_out_reset(o);
		ipc_request_begin(o, EF_OP_READ_ALL, trace_id_new());
		ipc_read_all_req_encode(o, &r);
		st = client_call(cl, o, &rep);
		if (st != EF_S_OK || rep.in.body == NULL ||
		    ipc_read_rep_decode(rep.in.body, &rr, &why) != 0 ||
		    rr.nevents == 0 ||
		    ring_add(rr.events, rr.nevents, pb) == 0) {
			client_reply_free(&rep);
			if (to == UINT64_MAX)
				return;
			log_debug("feed: cannot fill %llu..%llu from stored: "
			          "restarting the ring",
			    (unsigned long long)hi, (unsigned long long)to);
			pthread_mutex_lock(&ring_mu);
			if (ring_hi < to)
				ring_reset(to);
			w = ring_take_waiters();
			pthread_mutex_unlock(&ring_mu);
			wake(w);
			return;
		}
		client_reply_free(&rep);
	}
}

/*
 * A ring that has seen no batch yet starts at stored's head: the batches
 * published before the feed's socket (re)connected are lost, and the
 * subscriptions parked on an empty ring would otherwise wait for the next
 * publish forever (seen: a restart of stored whose appends all came
 * before the feed redialed). Those below the head read it from stored.
 */
static void
feed_init(struct ef_client *cl, struct ipc_out *o)
{
	struct ipc_read_all_req r = { 0, 0, EF_FORWARD };
	struct client_reply rep;
	struct ipc_read_rep rr;
	struct sub *w = NULL;
	const char *why;

	ipc_out_reset(o);
	ipc_request_begin(o, EF_OP_READ_ALL, trace_id_new());
	ipc_read_all_req_encode(o, &r);
	if (client_call(cl, o, &rep) == EF_S_OK && rep.in.body != NULL &&
	    ipc_read_rep_decode(rep.in.body, &rr, &why) == 0) {
		pthread_mutex_lock(&ring_mu);
		if (!ring_init) {
			ring_reset(rr.head);
			w = ring_take_waiters();
		}
		pthread_mutex_unlock(&ring_mu);
		wake(w);
	}
	client_reply_free(&rep);
}

static void *
feed_main(void *arg)
{
	struct gw *gw = arg;
	struct ef_client cl;
	struct ipc_out o;
	struct ipc_in in;
	struct ipc_pub pub;
	struct pbuf pb = { NULL, 0, 0 };
	nng_socket sock;
	struct ef_dialer dialer;
	nng_msg *m;
	const char *why;
	uint64_t quiet = gw_mono_ns(), hi;
	bool init;
	int rv;

	ipc_out_init(&o);
	if (client_open(&cl, gw->store_url, (int)gw->conf.store_timeout_ms) !=
	        0 ||
	    nng_sub0_open(&sock) != 0)
		fatalx("feed: cannot open the sockets to eventfold-stored");
	nng_socket_set(sock, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_int(sock, NNG_OPT_RECVBUF, 8192);
	nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, IPC_MAX_MSG);
	nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(sock, NNG_OPT_RECONNMAXT, 100);
	if ((rv = dialer_open(&dialer, sock, gw->events_url)) != 0)
		fatalx("feed: %s: %s", gw->events_url, nng_strerror(rv));
	while (!__atomic_load_n(&feed_stop, __ATOMIC_RELAXED)) {
		if ((rv = nngx_recv_wait(sock, &m, 100)) != 0) {
			pthread_mutex_lock(&ring_mu);
			init = ring_init;
			pthread_mutex_unlock(&ring_mu);
			/* quiet: was the last batch lost? */
			if (gw_mono_ns() - quiet > FEED_IDLE_MS * 1000000ull) {
				if (init)
					feed_fill(&cl, &o, &pb, UINT64_MAX);
				else
					feed_init(&cl, &o);
				quiet = gw_mono_ns();
			}
			continue;
		}
		quiet = gw_mono_ns();
		memset(&in, 0, sizeof(in));
		if (ipc_pub_open(&in, nng_msg_body(m), nng_msg_len(m), &pub,
		        &why) != 0) {
			log_warnx("feed: malformed publish message: %s", why);
			ipc_in_close(&in);
			nng_msg_free(m);
			continue;
		}
		pthread_mutex_lock(&ring_mu);
		init = ring_init;
		hi = ring_hi;
		pthread_mutex_unlock(&ring_mu);
		if (init && pub.first_pos > hi)
			feed_fill(&cl, &o, &pb, pub.first_pos);
		if (pub.events != NULL)
			ring_add(pub.events, pub.nevents, &pb);
		else if (init)
			feed_fill(&cl, &o, &pb, pub.last_pos + 1);
		ipc_in_close(&in);
		nng_msg_free(m);
	}
	dialer_close(&dialer);
	nngx_close(sock);
	client_close(&cl);
	ipc_out_free(&o);
	free(pb.buf);
	return NULL;
}

/* Subscriptions */

static void
sub_unref(struct sub *s)
{
	size_t i;

	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	pthread_mutex_lock(&subs_mu);
	LIST_REMOVE(s, link);
	pthread_cond_broadcast(&subs_cv);
	pthread_mutex_unlock(&subs_mu);
	for (i = s->qi; i < s->qn; i++)
		grpc_slice_unref(s->q[i]);
	if (s->bb != NULL)
		grpc_byte_buffer_destroy(s->bb);
	grpc_call_unref(s->call);
	grpc_slice_unref(s->details);
	acall_reap(&s->ac); /* this may run on its callback */
	ipc_out_free(&s->req);
	free(s->pb.buf);
	free(s->q);
	__atomic_sub_fetch(&s->gw->mx.subscriptions_active, 1,
	    __ATOMIC_RELAXED);
	log_debug("subscription ended");
	free(s);
}

static void
sub_queue(struct sub *s, grpc_slice msg)
{
	grpc_slice *nq;
	size_t ncap;

	if (s->qn == s->qcap) {
		ncap = s->qcap ? s->qcap * 2 : 64;
		if ((nq = realloc(s->q, ncap * sizeof(*nq))) == NULL)
			fatal("realloc");
		s->q = nq;
		s->qcap = ncap;
	}
	s->q[s->qn++] = msg;
}

/* Catch-up pages (pages_mu held) */

static void
page_drop(struct page *p)
{
	uint32_t i;

	for (i = 0; i < SUB_PAGE; i++)
		grpc_slice_unref(p->msgs[i]);
	free(p->msgs);
	pages_bytes -= p->bytes;
	memset(p, 0, sizeof(*p));
}

/* Queues the kept page that starts at s->next_pos: true if there was one. */
static bool
page_take(struct sub *s)
{
	struct page *p;
	uint32_t i;

	pthread_mutex_lock(&pages_mu);
	for (p = pages; p < pages + PAGES_N; p++)
		if (p->msgs != NULL && p->from == s->next_pos)
			break;
	if (p == pages + PAGES_N) {
		pthread_mutex_unlock(&pages_mu);
		return false;
	}
	for (i = 0; i < SUB_PAGE; i++)
		sub_queue(s, grpc_slice_ref(p->msgs[i]));
	p->used = ++pages_clock;
	__atomic_store_n(&s->next_pos, s->next_pos + SUB_PAGE,
	    __ATOMIC_RELAXED);
	pthread_mutex_unlock(&pages_mu);
	return true;
}

/* Keeps a full page (its SUB_PAGE messages are referenced, not taken). */
static void
page_keep(uint64_t from, const grpc_slice *msgs)
{
	struct page *p, *slot, *lru;
	size_t bytes = 0;
	uint32_t i;

	for (i = 0; i < SUB_PAGE; i++)
		bytes += GRPC_SLICE_LENGTH(msgs[i]);
	if (bytes > PAGES_BYTES / 4)
		return;
	pthread_mutex_lock(&pages_mu);
	for (;;) {
		slot = lru = NULL;
		for (p = pages; p < pages + PAGES_N; p++) {
			if (p->msgs == NULL) {
				if (slot == NULL)
					slot = p;
			} else if (p->from == from) {
				pthread_mutex_unlock(&pages_mu);
				return; /* another subscription kept it */
			} else if (lru == NULL || p->used < lru->used)
				lru = p;
		}
		if (slot != NULL && pages_bytes + bytes <= PAGES_BYTES)
			break;
		page_drop(lru); /* not NULL: no slot, or bytes are kept */
	}
	if ((slot->msgs = calloc(SUB_PAGE, sizeof(*slot->msgs))) != NULL) {
		for (i = 0; i < SUB_PAGE; i++)
			slot->msgs[i] = grpc_slice_ref(msgs[i]);
		slot->from = from;
		slot->bytes = bytes;
		slot->used = ++pages_clock;
		pages_bytes += bytes;
	}
	pthread_mutex_unlock(&pages_mu);
}

static void
sub_caught_up(struct sub *s)
{
	static const uint8_t msg[2] = { 2 << 3 | 2, 0 }; /* caught_up {} */

	if (!s->caught_up_sent) {
		sub_queue(s,
		    grpc_slice_from_copied_buffer((const char *)msg,
		        sizeof(msg)));
		s->caught_up_sent = true;
	}
	s->mode = MODE_LIVE;
}

/* Ends the stream with its status; the completion drops the activity. */
static void
sub_end(struct sub *s)
{
	grpc_op ops[2], *op = ops;

	memset(ops, 0, sizeof(ops));
	s->ending = true;
	if (!s->md_sent) {
		op->op = GRPC_OP_SEND_INITIAL_METADATA;
		op++;
		s->md_sent = true;
	}
	s->details = grpc_slice_from_copied_string(
	    s->end_msg ? s->end_msg : "");
	op->op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op->data.send_status_from_server.status = (grpc_status_code)
	                                              s->end_code;
	op->data.send_status_from_server.status_details = &s->details;
	op++;
	if (grpc_call_start_batch(s->call, ops, (size_t)(op - ops),
	        &s->send_tag, NULL) != GRPC_CALL_OK)
		sub_unref(s);
}

static void
sub_send_next(struct sub *s)
{
	grpc_op ops[2], *op = ops;

	memset(ops, 0, sizeof(ops));
	if (!s->md_sent) {
		op->op = GRPC_OP_SEND_INITIAL_METADATA;
		op++;
		s->md_sent = true;
	}
	s->bb = grpc_raw_byte_buffer_create(&s->q[s->qi], 1);
	op->op = GRPC_OP_SEND_MESSAGE;
	op->data.send_message.send_message = s->bb;
	op++;
	if (grpc_call_start_batch(s->call, ops, (size_t)(op - ops),
	        &s->send_tag, NULL) != GRPC_CALL_OK) {
		s->failed = true;
		sub_send_done(&s->send_tag, 0);
	}
}

static void
sub_send_done(struct gw_tag *t, int ok)
{
	struct sub *s = (struct sub *)((char *)t -
	    offsetof(struct sub, send_tag));

	if (s->ending) {
		sub_unref(s);
		return;
	}
	grpc_byte_buffer_destroy(s->bb);
	s->bb = NULL;
	grpc_slice_unref(s->q[s->qi]);
	s->qi++;
	if (!ok)
		s->failed = true;
	sub_pump(s);
}

static void
sub_close_done(struct gw_tag *t, int ok)
{
	struct sub *s = (struct sub *)((char *)t -
	    offsetof(struct sub, close_tag));
	struct sub **pp;
	bool resume = false;

	(void)ok;
	pthread_mutex_lock(&ring_mu);
	__atomic_store_n(&s->closed, true, __ATOMIC_RELEASE);
	if (s->parked) {
		for (pp = &waiters; *pp != NULL; pp = &(*pp)->wnext)
			if (*pp == s) {
				*pp = s->wnext;
				break;
			}
		s->wnext = NULL;
		s->parked = false;
		resume = true;
	}
	pthread_mutex_unlock(&ring_mu);
	if (resume)
		sub_pump(s);
	sub_unref(s);
}

/* Starts a read page from stored. */
static void
sub_read(struct sub *s)
{
	ipc_out_reset(&s->req);
	if (s->is_stream) {
		struct ipc_read_stream_req r;

		r.stream_id.ptr = s->stream_id;
		r.stream_id.len = (uint32_t)strlen(s->stream_id);
		r.from = s->next_ver;
		r.max_count = SUB_PAGE;
		r.direction = EF_FORWARD;
		ipc_request_begin(&s->req, EF_OP_READ_STREAM, s->rid);
		ipc_read_stream_req_encode(&s->req, &r);
	} else {
		struct ipc_read_all_req r = { s->next_pos, SUB_PAGE,
			EF_FORWARD };

		ipc_request_begin(&s->req, EF_OP_READ_ALL, s->rid);
		ipc_read_all_req_encode(&s->req, &r);
	}
	acall_start(&s->ac, s->req.buf, s->req.len, s->rid,
	    guard_now_ms() + s->gw->conf.store_timeout_ms);
}

static void
sub_woken(void *arg)
{
	sub_pump(arg);
}

static void
sub_retry(struct sub *s)
{
	acall_sleep(&s->ac, RETRY_MS, sub_woken);
}

/* A page from stored: queue what comes next, decide the mode. */
static void
sub_page(struct sub *s, struct client_reply *rep)
{
	struct ipc_read_rep rr;
	struct ef_event ev;
	const char *why;
	uint64_t from = s->next_pos;
	size_t q0 = s->qn;
	uint32_t i;
	int st = rep->in.status;

	if ((st != EF_S_OK &&
	        !(s->is_stream && st == EF_S_STREAM_NOT_FOUND &&
	            rep->in.body != NULL)) ||
	    rep->in.body == NULL ||
	    ipc_read_rep_decode(rep->in.body, &rr, &why) != 0) {
		if (st == EF_S_OK || st == EF_S_UNAVAILABLE) {
			sub_retry(s);
			return;
		}
		log_warnx("call " TRACE_FMT ": subscription ended: %s: %.*s",
		    s->rid, ipc_status_name(st), (int)rep->in.message.len,
		    rep->in.message.ptr);
		s->end_code = ipc_status_grpc(st);
		s->end_msg = ipc_status_text(st);
		s->failed = true;
		sub_pump(s);
		return;
	}
	for (i = 0; i < rr.nevents; i++) {
		if (ipc_event_decode(&rr.events->via.array.ptr[i], &ev,
		        &why) != 0) {
			s->end_code = GW_INTERNAL;
			s->end_msg = "malformed event from eventfold-stored";
			s->failed = true;
			break;
		}
		if (s->is_stream) {
			if (ev.stream_version != s->next_ver)
				continue;
			s->next_ver++;
		} else {
			if (ev.global_position != s->next_pos)
				continue;
			__atomic_store_n(&s->next_pos, s->next_pos + 1,
			    __ATOMIC_RELAXED);
		}
		sub_queue(s, event_slice(&s->pb, &ev));
	}
	if (!s->is_stream && !s->failed && s->next_pos - from == SUB_PAGE &&
	    s->qn - q0 == SUB_PAGE)
		page_keep(from, &s->q[q0]);
	if (s->is_stream) {
		/* one snapshot: every version up to its last is below head */
		if (rr.nevents == 0 || !rr.has_last_version ||
		    s->next_ver > rr.last_version) {
			s->next_pos = rr.head;
			sub_caught_up(s);
		}
	} else if (rr.nevents == 0 || s->next_pos >= rr.head)
		sub_caught_up(s); /* (or from is past the head: wait there) */
	pbuf_trim(&s->pb, 64u << 10);
	sub_pump(s);
}

/* A read ended: stored away or not answering (err) means try again. */
static void
sub_read_done(void *arg, int err, struct client_reply *rep)
{
	struct sub *s = arg;

	if (err != 0) {
		sub_retry(s);
		return;
	}
	sub_page(s, rep);
}

enum take { TAKE_AGAIN, TAKE_PARKED, TAKE_BEHIND };

/* LIVE: queue the next events from the ring, or park, or fall back. */
static enum take
sub_take(struct sub *s)
{
	struct ring_ent *e;
	uint64_t p, end;
	size_t n = 0;

	pthread_mutex_lock(&ring_mu);
	if (s->closed || __atomic_load_n(&subs_stopping, __ATOMIC_RELAXED)) {
		pthread_mutex_unlock(&ring_mu);
		return TAKE_AGAIN; /* the pump ends it */
	}
	if (ring_init && s->next_pos < ring_lo) {
		pthread_mutex_unlock(&ring_mu);
		return TAKE_BEHIND;
	}
	if (!ring_init || s->next_pos >= ring_hi) {
		s->parked = true;
		s->wnext = waiters;
		waiters = s;
		pthread_mutex_unlock(&ring_mu);
		return TAKE_PARKED;
	}
	end = ring_hi - s->next_pos > SUB_SCAN ? s->next_pos + SUB_SCAN :
	                                         ring_hi;
	for (p = s->next_pos; p < end && n < SUB_TAKE; p++) {
		e = &ring[p % ring_cap];
		if (s->is_stream) {
			if (memcmp(e->sid, s->sid, UUID_LEN) != 0 ||
			    e->ver < s->next_ver)
				continue;
			if (e->ver > s->next_ver) {
				/* a version is missing: read it */
				pthread_mutex_unlock(&ring_mu);
				return TAKE_BEHIND;
			}
			s->next_ver++;
		}
		sub_queue(s, grpc_slice_ref(e->msg));
		n++;
	}
	__atomic_store_n(&s->next_pos, p, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&ring_mu);
	return TAKE_AGAIN;
}

/*
 * Runs the state machine until it starts an activity (a send, a read,
 * a sleep) or parks. Only the owner of the sub's single activity calls
 * it.
 */
static void
sub_pump(struct sub *s)
{
	for (;;) {
		if (s->failed ||
		    __atomic_load_n(&s->closed, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&subs_stopping, __ATOMIC_RELAXED)) {
			if (!s->failed &&
			    !__atomic_load_n(&s->closed, __ATOMIC_ACQUIRE))
				s->end_msg = "eventfold-gatewayd is shutting "
				             "down";
			sub_end(s);
			return;
		}
		if (s->qi < s->qn) {
			sub_send_next(s);
			return;
		}
		s->qi = s->qn = 0;
		if (s->qcap > 4 * SUB_PAGE) {
			free(s->q);
			s->q = NULL;
			s->qcap = 0;
		}
		if (s->mode == MODE_STORE) {
			if (!s->is_stream && page_take(s))
				continue;
			sub_read(s);
			return;
		}
		switch (sub_take(s)) {
		case TAKE_PARKED:
			return;
		case TAKE_BEHIND:
			s->mode = MODE_STORE;
			break;
		case TAKE_AGAIN:
			break;
		}
	}
}

static void
sub_start(struct call *c, bool is_stream, const uint8_t *sid, uint64_t from)
{
	struct gw *gw = c->gw;
	grpc_op op;
	struct sub *s;

	if (!store_up(gw)) {
		call_finish(c, GW_UNAVAILABLE,
		    "eventfold-stored is "
		    "unreachable");
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		call_finish(c, GW_INTERNAL, "out of memory");
		return;
	}
	pthread_mutex_lock(&subs_mu);
	if (__atomic_load_n(&subs_stopping, __ATOMIC_RELAXED)) {
		pthread_mutex_unlock(&subs_mu);
		free(s);
		call_finish(c, GW_UNAVAILABLE,
		    "eventfold-gatewayd is "
		    "shutting down");
		return;
	}
	if (!feed_started) {
		pthread_mutex_lock(&ring_mu);
		ring_cap = gw->conf.live_ring_events;
		if ((ring = calloc(ring_cap, sizeof(*ring))) == NULL)
			fatal("calloc");
		pthread_mutex_unlock(&ring_mu);
		if (pthread_create(&feed_thr, NULL, feed_main, gw) != 0)
			fatal("pthread_create");
		feed_started = true;
	}
	if (acall_init(&s->ac, gw->store, "eventfold-stored", sub_read_done,
	        s) != 0)
		fatalx("cannot open an nng context to stored");
	s->ac.dialer = &gw->store_dialer;
	s->gw = gw;
	s->send_tag.fn = sub_send_done;
	s->close_tag.fn = sub_close_done;
	s->refs = 2;
	s->is_stream = is_stream;
	s->rid = c->rid;
	if (is_stream) {
		memcpy(s->sid, sid, UUID_LEN);
		uuid_format(sid, s->stream_id);
		s->next_ver = from;
	} else
		s->next_pos = from;
	s->mode = MODE_STORE;
	s->end_code = GW_OK;
	s->details = grpc_empty_slice();
	ipc_out_init(&s->req);
	s->call = call_detach(c);
	LIST_INSERT_HEAD(&subs, s, link);
	__atomic_add_fetch(&gw->mx.subscriptions_active, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&subs_mu);

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &s->cancelled;
	if (grpc_call_start_batch(s->call, &op, 1, &s->close_tag, NULL) !=
	    GRPC_CALL_OK) {
		s->closed = true;
		sub_unref(s);
	}
	sub_pump(s);
}

void
subscribe_all(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__SubscribeAllRequest *r;
	uint64_t from;

	if ((r = call_unpack(c, &eventfold__subscribe_all_request__descriptor,
	         buf, len)) == NULL)
		return;
	from = r->from_position;
	eventfold__subscribe_all_request__free_unpacked(r, NULL);
	sub_start(c, false, NULL, from);
}

void
subscribe_stream(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__SubscribeStreamRequest *r;
	uint8_t sid[UUID_LEN];
	uint64_t from;

	r = call_unpack(c, &eventfold__subscribe_stream_request__descriptor,
	    buf, len);
	if (r == NULL)
		return;
	if (call_stream_id(c, r->stream_id, sid) != 0) {
		eventfold__subscribe_stream_request__free_unpacked(r, NULL);
		return;
	}
	from = r->from_version;
	eventfold__subscribe_stream_request__free_unpacked(r, NULL);
	sub_start(c, true, sid, from);
}

void
subscribe_stop_all(void)
{
	struct sub *w;

	pthread_mutex_lock(&subs_mu);
	__atomic_store_n(&subs_stopping, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&subs_mu);
	pthread_mutex_lock(&ring_mu);
	w = ring_take_waiters();
	pthread_mutex_unlock(&ring_mu);
	wake(w);
}

void
subscribe_wait_all(uint64_t timeout_ms)
{
	struct timespec ts;
	uint64_t p;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(timeout_ms / 1000) + 1;
	pthread_mutex_lock(&subs_mu);
	while (!LIST_EMPTY(&subs))
		if (pthread_cond_timedwait(&subs_cv, &subs_mu, &ts) ==
		    ETIMEDOUT)
			break;
	if (!LIST_EMPTY(&subs))
		log_warnx("subscriptions still ending at exit");
	pthread_mutex_unlock(&subs_mu);
	if (feed_started) {
		__atomic_store_n(&feed_stop, 1, __ATOMIC_RELAXED);
		pthread_join(feed_thr, NULL);
		feed_started = false;
		if (LIST_EMPTY(&subs)) {
			for (p = ring_lo; p < ring_hi; p++)
				grpc_slice_unref(ring[p % ring_cap].msg);
			free(ring);
			ring = NULL;
		}
	}
}

uint64_t
subscribe_max_lag(uint64_t head)
{
	struct sub *s;
	uint64_t lag = 0, next;

	pthread_mutex_lock(&subs_mu);
	LIST_FOREACH(s, &subs, link)
	{
		if (s->is_stream)
			continue;
		next = __atomic_load_n(&s->next_pos, __ATOMIC_RELAXED);
		if (head > next && head - next > lag)
			lag = head - next;
	}
	pthread_mutex_unlock(&subs_mu);
	return lag;
}
