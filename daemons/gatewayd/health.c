/* SPDX-License-Identifier: MIT */
/*
 * health.c - grpc.health.v1.Health (Check and Watch, unauthenticated)
 * and the thread that decides it: every health_interval_ms it asks
 * eventfold-stored for STATUS. SERVING while stored answers;
 * NOT_SERVING while it does not and from the start of shutdown. The
 * same poll refreshes the gauges of /metrics that only stored knows.
 *
 * Services: "" (the whole server) and "eventfold.EventStore"; Check on
 * any other name is NOT_FOUND, Watch sends SERVICE_UNKNOWN (as the
 * health protocol says) and stays open.
 *
 * Watchers are driven by completions, without a thread each: a change
 * of state sends the new status to every watcher whose previous send
 * is done; one still sending resends when it completes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "gatewayd.h"
#include "health.pb-c.h"
#include "log.h"

enum {
	HS_UNKNOWN = 0,
	HS_SERVING = 1,
	HS_NOT_SERVING = 2,
	HS_SERVICE_UNKNOWN = 3,
};

struct watcher {
	struct gw_tag send_tag;
	struct gw_tag close_tag;
	grpc_call *call;
	pthread_mutex_t mu;
	int known;   /* service name known */
	int sent;    /* last status sent, -1 none */
	int sending; /* a batch is in flight */
	int ending;  /* send the final status when idle */
	int ended;   /* final status sent */
	int closed;  /* RECV_CLOSE completed */
	int cancelled;
	int refs;
	int dead;
	int linked;
	grpc_byte_buffer *bb;
	grpc_slice details;
	LIST_ENTRY(watcher) link; /* watch_mu */
	struct gw *gw;            /* the gateway whose health it watches */
};

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, watcher) watchers = LIST_HEAD_INITIALIZER(watchers);
static int health_down;     /* shutdown: NOT_SERVING for good */
static int health_stopping; /* poll thread: exit */
static pthread_mutex_t poll_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t poll_cv = PTHREAD_COND_INITIALIZER;
/* how often the health thread sweeps for overdue peer calls */
#define SWEEP_MS 100

static int
health_status(struct gw *gw)
{
	if (__atomic_load_n(&health_down, __ATOMIC_ACQUIRE))
		return HS_NOT_SERVING;
	return __atomic_load_n(&gw->serving, __ATOMIC_ACQUIRE) ?
	    HS_SERVING :
	    HS_NOT_SERVING;
}

static int
service_known(const char *name)
{
	return *name == '\0' || strcmp(name, "eventfold.EventStore") == 0;
}

static grpc_byte_buffer *
status_buffer(int status)
{
	Grpc__Health__V1__HealthCheckResponse r =
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	uint8_t buf[16];
	size_t n;

	r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)
	    status;
	n = grpc__health__v1__health_check_response__pack(&r, buf);
	return buffer_from(buf, n);
}

void
health_check(struct call *c, const uint8_t *buf, size_t len)
{
	Grpc__Health__V1__HealthCheckRequest *r;
	int known;

	r = call_unpack(c, &grpc__health__v1__health_check_request__descriptor,
	    buf, len);
	if (r == NULL)
		return;
	known = service_known(r->service);
	grpc__health__v1__health_check_request__free_unpacked(r, NULL);
	if (!known) {
		call_finish(c, GW_NOT_FOUND, "unknown service");
		return;
	}
	c->resp = status_buffer(health_status(c->gw));
	call_finish(c, GW_OK, "");
}

/*
 * Called with w->mu held; drops a reference and unlocks. The last one
 * marks the watcher dead (so health_notify skips it), unlinks it under
 * watch_mu (taken after w->mu is released: the list lock comes first)
 * and frees it.
 */
static void
watcher_release(struct watcher *w)
{
	if (--w->refs > 0) {
		pthread_mutex_unlock(&w->mu);
		return;
	}
	w->dead = 1;
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_lock(&watch_mu);
	if (w->linked)
		LIST_REMOVE(w, link);
	pthread_mutex_unlock(&watch_mu);
	grpc_call_unref(w->call);
	grpc_slice_unref(w->details);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

/* Under w->mu: sends what is due, if nothing is in flight. */
static void
watcher_kick(struct watcher *w, struct gw *gw)
{
	grpc_op op;
	int st;

	if (w->sending || w->ended || w->closed || w->dead)
		return;
	memset(&op, 0, sizeof(op));
	if (w->ending) {
		op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
		op.data.send_status_from_server.status = GRPC_STATUS_OK;
		w->details = grpc_slice_from_static_string(
		    "eventfold-gatewayd is shutting down");
		op.data.send_status_from_server.status_details = &w->details;
		w->ended = 1;
	} else {
		st = w->known ? health_status(gw) : HS_SERVICE_UNKNOWN;
		if (st == w->sent)
			return;
		w->bb = status_buffer(st);
		w->sent = st;
		op.op = GRPC_OP_SEND_MESSAGE;
		op.data.send_message.send_message = w->bb;
	}
	w->sending = 1;
	w->refs++;
	if (grpc_call_start_batch(w->call, &op, 1, &w->send_tag, NULL) !=
	    GRPC_CALL_OK) {
		w->sending = 0;
		w->refs--;
	}
}

static void
watch_send_done(struct gw_tag *t, int ok)
{
	struct watcher *w = (struct watcher *)((char *)t -
	    offsetof(struct watcher, send_tag));

	pthread_mutex_lock(&w->mu);
	w->sending = 0;
	if (w->bb != NULL)
		grpc_byte_buffer_destroy(w->bb);
	w->bb = NULL;
	if (!ok)
		w->ended = 1; /* the client is gone */
	watcher_kick(w, w->gw);
	watcher_release(w);
}

static void
watch_close_done(struct gw_tag *t, int ok)
{
	struct watcher *w = (struct watcher *)((char *)t -
	    offsetof(struct watcher, close_tag));

	(void)ok;
	pthread_mutex_lock(&w->mu);
	w->closed = 1;
	watcher_release(w);
}

void
health_watch(struct call *c, const uint8_t *buf, size_t len)
{
	Grpc__Health__V1__HealthCheckRequest *r;
	struct watcher *w;
	grpc_op ops[2];

	r = call_unpack(c, &grpc__health__v1__health_check_request__descriptor,
	    buf, len);
	if (r == NULL)
		return;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		grpc__health__v1__health_check_request__free_unpacked(r, NULL);
		call_finish(c, GW_INTERNAL, "out of memory");
		return;
	}
	w->known = service_known(r->service);
	grpc__health__v1__health_check_request__free_unpacked(r, NULL);
	w->send_tag.fn = watch_send_done;
	w->close_tag.fn = watch_close_done;
	w->sent = -1;
	w->details = grpc_empty_slice();
	pthread_mutex_init(&w->mu, NULL);
	w->gw = c->gw;
	w->call = call_detach(c);

	w->refs = 2; /* the close batch, and this function until it ends */
	pthread_mutex_lock(&watch_mu);
	w->linked = 1;
	LIST_INSERT_HEAD(&watchers, w, link);
	pthread_mutex_unlock(&watch_mu);

	pthread_mutex_lock(&w->mu);
	w->ending = __atomic_load_n(&health_down, __ATOMIC_ACQUIRE);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[1].data.recv_close_on_server.cancelled = &w->cancelled;
	if (grpc_call_start_batch(w->call, ops, 2, &w->close_tag, NULL) !=
	    GRPC_CALL_OK) {
		log_warnx("health watch: cannot start the call");
		w->closed = 1;
		w->refs--;
	}
	watcher_kick(w, w->gw);
	watcher_release(w);
}

/* Tells every watcher about the current state (or ends them). */
static void
health_notify(struct gw *gw, int end)
{
	struct watcher *w;

	pthread_mutex_lock(&watch_mu);
	LIST_FOREACH(w, &watchers, link)
	{
		/* lock order: watch_mu, then w->mu (see watcher_release) */
		pthread_mutex_lock(&w->mu);
		if (end)
			w->ending = 1;
		watcher_kick(w, gw);
		pthread_mutex_unlock(&w->mu);
	}
	pthread_mutex_unlock(&watch_mu);
}

void
health_set(struct gw *gw, int serving)
{
	int old = __atomic_exchange_n(&gw->serving, serving, __ATOMIC_ACQ_REL);

	__atomic_store_n(&gw->mx.store_up, (uint64_t)serving,
	    __ATOMIC_RELAXED);
	if (old == serving)
		return;
	log_info("eventfold-stored %s: health %s",
	    serving ? "answers" : "does not answer",
	    serving ? "SERVING" : "NOT_SERVING");
	sd_notifyf(0, "STATUS=%s",
	    serving ? "serving" : "eventfold-stored unreachable");
	health_notify(gw, 0);
}

static void
health_poll(struct gw *gw, struct ef_client *cl)
{
	static uint64_t last_fsyncs, last_events;
	struct client_reply rep;
	struct ipc_status_rep st;
	struct metrics *mx = &gw->mx;

	memset(&st, 0, sizeof(st));
	memset(&rep, 0, sizeof(rep));
	if (!store_up(gw) || client_status(cl, &rep, &st) != EF_S_OK) {
		client_reply_free(&rep);
		health_set(gw, 0);
		return;
	}
	client_reply_free(&rep);
	metrics_status(gw, &st);
	if (st.fsyncs > last_fsyncs && st.events_written >= last_events)
		__atomic_store_n(&mx->batch_size_milli,
		    (st.events_written - last_events) * 1000 /
		        (st.fsyncs - last_fsyncs),
		    __ATOMIC_RELAXED);
	last_fsyncs = st.fsyncs;
	last_events = st.events_written;
	health_set(gw, 1);
}

static void *
health_main(void *arg)
{
	struct gw *gw = arg;
	struct ef_client cl;
	struct timespec ts;
	uint64_t iv = gw->conf.health_interval_ms ?
	    gw->conf.health_interval_ms :
	    500;
	uint64_t last_poll = 0, now;

	/* Poll over the gateway's own store socket: SERVING then means the
	 * socket the calls use is connected, not just some socket. */
	memset(&cl, 0, sizeof(cl));
	cl.sock = gw->store;
	cl.timeout_ms = (int)(iv < 1000 ? 1000 : iv);
	cl.next_id = 1;
	pthread_mutex_lock(&poll_mu);
	while (!health_stopping) {
		pthread_mutex_unlock(&poll_mu);
		now = gw_mono_ns() / 1000;
		if (now - last_poll >= (gw->serving ? iv : 100) * 1000) {
			health_poll(gw, &cl);
			last_poll = gw_mono_ns() / 1000;
		}
		server_sweep(gw);
		pthread_mutex_lock(&poll_mu);
		if (health_stopping)
			break;
		/* wake every SWEEP_MS for the sweep; polls keep their pace */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += SWEEP_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&poll_cv, &poll_mu, &ts);
	}
	pthread_mutex_unlock(&poll_mu);
	return NULL;
}

int
health_start(struct gw *gw)
{
	int rc = pthread_create(&gw->health_thr, NULL, health_main, gw);

	return -rc;
}

/* Shutdown, first step: NOT_SERVING for good, told to every watcher. */
void
health_shutdown(struct gw *gw)
{
	__atomic_store_n(&health_down, 1, __ATOMIC_RELEASE);
	health_notify(gw, 0);
}

/* Shutdown, later: end the watch streams and the poll thread. */
void
health_stop(struct gw *gw)
{
	health_notify(gw, 1);
	pthread_mutex_lock(&poll_mu);
	if (health_stopping) {
		pthread_mutex_unlock(&poll_mu);
		return;
	}
	health_stopping = 1;
	pthread_cond_broadcast(&poll_cv);
	pthread_mutex_unlock(&poll_mu);
	pthread_join(gw->health_thr, NULL);
}
