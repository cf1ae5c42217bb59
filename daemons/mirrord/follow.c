/* SPDX-License-Identifier: MIT */
/*
 * follow.c - the follower: stored's log, in order, into JetStream.
 *
 * A round: ask JetStream where the stream ends (js_resume: last
 * sequence L and the event id of its last message), then run the
 * catch-up-then-live subscription (sub_run, as runnerd's folds do) from
 * position L, checking that the event at L - 1 is the one the stream
 * holds, and publish every event asynchronously. Any failure (a
 * refused or unacknowledged publish, NATS gone) ends the round: the
 * follower waits for what is in flight (js_drain), backs off (100 ms,
 * doubling to 5 s, reset by progress) and starts the next round, which
 * again starts after the stream's last sequence. A failure stops the
 * subscription at once (md->failed is its stop flag), so an event whose
 * ack timed out is sent again even if no other event follows it.
 * Nothing is skipped, since the stream is the only record of what was
 * mirrored, and nothing is repeated, since every publish names the
 * sequence it must follow.
 *
 * Read-ahead: within a round two threads share the work, so that
 * reading the next page from stored overlaps publishing this one. The
 * follower thread runs sub_run and turns each event into its message
 * (js_message), appending it to a bounded FIFO (2 pages, QUEUE_BYTES);
 * the publisher thread, started for the round, takes the messages in
 * that order and hands them to libnats (js_send). One producer, one
 * consumer, one queue: the order of the log is the order of the
 * publishes, as before. When sub_run returns without a failure (the
 * log changed, stored unusable) the publisher still sends what is
 * queued, as the single thread did before returning; on a failure or a
 * stop both threads give up at once and whatever is queued is dropped
 * unsent: the next round resumes after the stream's last sequence
 * anyway.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mirrord.h"

/* The mirror this file serves, set by its start (js_check_conf,
 * js_open, follow_start, metrics_start): mirrord.c's. */
static struct mirror *md;

/* Bounds of the queue: messages and bytes (payload + MSG_OVERHEAD). */
#define QUEUE_MAX    (1u << 17)
#define QUEUE_BYTES  (32u << 20)
#define MSG_OVERHEAD 256
/* Messages the publisher takes per lock. */
#define QUEUE_BATCH 64
/* Waits are sliced: libnats's threads set md->failed without a signal. */
#define QUEUE_SLICE_MS 20

struct queued {
	natsMsg *m;
	uint64_t pos;
	size_t bytes;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t nonempty;
	pthread_cond_t nonfull;
	struct queued *ring;
	size_t cap;
	size_t first;
	size_t n;
	size_t bytes;
	int closed;      /* the reader is done for this round */
	int pub_waiting; /* the publisher sleeps on nonempty */
	int rd_waiting;  /* the reader sleeps on nonfull */
} q = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.nonempty = PTHREAD_COND_INITIALIZER,
	.nonfull = PTHREAD_COND_INITIALIZER,
};

static pthread_t follow_thr;
static int follow_running;

static int
given_up(void)
{
	return __atomic_load_n(&md->failed, __ATOMIC_ACQUIRE) || md->stopping;
}

/* Waits on cv (q.mu held) for one slice at most. */
static void
queue_wait(pthread_cond_t *cv)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += QUEUE_SLICE_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(cv, &q.mu, &ts);
}

/* Destroys what is queued; for the follower, with the publisher gone. */
static void
queue_clear(void)
{
	pthread_mutex_lock(&q.mu);
	while (q.n > 0) {
		natsMsg_Destroy(q.ring[q.first].m);
		q.first = (q.first + 1) % q.cap;
		q.n--;
	}
	q.first = 0;
	q.bytes = 0;
	q.closed = 0;
	pthread_mutex_unlock(&q.mu);
}

/* The reader's side: 0, or 1 when the round is given up (m destroyed). */
static int
queue_put(natsMsg *m, uint64_t pos)
{
	size_t bytes = (size_t)natsMsg_GetDataLength(m) + MSG_OVERHEAD, i;

	pthread_mutex_lock(&q.mu);
	while (q.n == q.cap || (q.n > 0 && q.bytes + bytes > QUEUE_BYTES)) {
		if (given_up()) {
			pthread_mutex_unlock(&q.mu);
			natsMsg_Destroy(m);
			return 1;
		}
		q.rd_waiting = 1;
		queue_wait(&q.nonfull);
		q.rd_waiting = 0;
	}
	i = (q.first + q.n) % q.cap;
	q.ring[i].m = m;
	q.ring[i].pos = pos;
	q.ring[i].bytes = bytes;
	q.n++;
	q.bytes += bytes;
	if (q.pub_waiting)
		pthread_cond_signal(&q.nonempty);
	pthread_mutex_unlock(&q.mu);
	return 0;
}

/*
 * The publisher thread of a round: sends what the reader queues, in
 * order, until the reader is done and the queue empty, or the round is
 * given up.
 */
static void *
publish_main(void *arg)
{
	struct queued batch[QUEUE_BATCH];
	size_t k, nb;

	for (;;) {
		pthread_mutex_lock(&q.mu);
		while (q.n == 0 && !q.closed && !given_up()) {
			q.pub_waiting = 1;
			queue_wait(&q.nonempty);
			q.pub_waiting = 0;
		}
		if (given_up() || q.n == 0) {
			pthread_mutex_unlock(&q.mu);
			break;
		}
		for (nb = 0; nb < QUEUE_BATCH && q.n > 0; nb++) {
			batch[nb] = q.ring[q.first];
			q.first = (q.first + 1) % q.cap;
			q.n--;
			q.bytes -= batch[nb].bytes;
		}
		if (q.rd_waiting)
			pthread_cond_signal(&q.nonfull);
		pthread_mutex_unlock(&q.mu);
		for (k = 0; k < nb; k++)
			if (js_send(batch[k].m, batch[k].pos) != 0)
				break;
		if (k < nb) {
			/* js_send took batch[k]; the rest is not sent */
			for (k++; k < nb; k++)
				natsMsg_Destroy(batch[k].m);
			break;
		}
	}
	return NULL;
}

static int
on_event(void *arg, const struct ef_event *ev)
{
	natsMsg *m;

	if (given_up())
		return 1;
	if (js_message(ev, &m) != 0)
		return 1;
	return queue_put(m, ev->global_position);
}

static int
on_caught_up(void *arg)
{
	log_debug("caught up with the log at position %" PRIu64,
	    __atomic_load_n(&md->published, __ATOMIC_RELAXED));
	return 0;
}

static void *
follow_main(void *arg)
{
	struct sub_params sp;
	pthread_t pub_thr;
	uint64_t last, backoff = 100, before;
	uint8_t id[16];
	char err[512];
	int has_id, rc, warned = 0;

	while (!md->stopping) {
		if (js_resume(&last, id, &has_id, err, sizeof(err)) != 0) {
			if (!warned++)
				log_warnx("%s; retrying", err);
			nap_ms(md, backoff);
			backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
			continue;
		}
		if (warned)
			log_info("stream %s: resuming after sequence %" PRIu64,
			    md->conf.stream, last);
		warned = 0;
		__atomic_store_n(&md->acked, last, __ATOMIC_RELEASE);
		__atomic_store_n(&md->published, last, __ATOMIC_RELEASE);
		__atomic_store_n(&md->failed, 0, __ATOMIC_RELEASE);
		before = last;

		memset(&sp, 0, sizeof(sp));
		sp.store_url = md->store_url;
		sp.events_url = md->events_url;
		sp.page = (uint32_t)md->conf.page;
		sp.from = last;
		sp.on_event = on_event;
		sp.on_caught_up = on_caught_up;
		sp.stop = &md->failed; /* set also when stopping */
		sp.check_log = 1;
		sp.from_id = has_id ? id : NULL;
		if (pthread_create(&pub_thr, NULL, publish_main, NULL) != 0)
			fatal("pthread_create");
		rc = sub_run(&sp);
		pthread_mutex_lock(&q.mu);
		q.closed = 1;
		pthread_cond_signal(&q.nonempty);
		pthread_mutex_unlock(&q.mu);
		pthread_join(pub_thr, NULL);
		queue_clear();
		js_drain();
		if (rc == SUB_LOG_CHANGED) {
			__atomic_store_n(&md->stale, 1, __ATOMIC_RELEASE);
			__atomic_add_fetch(&md->errors, 1, __ATOMIC_RELAXED);
			log_warnx(
			    "stream %s does not end with this log's "
			    "event at position %" PRIu64 ": it mirrors "
			    "another log (or this one was restored from an "
			    "older backup); not publishing, checking again "
			    "in 10 s (see eventfold-mirrord(8))",
			    md->conf.stream, last - 1);
			nap_ms(md, 10000);
			continue;
		}
		__atomic_store_n(&md->stale, 0, __ATOMIC_RELEASE);
		if (md->stopping)
			break;
		if (rc < 0)
			log_warnx("subscription to the log failed (%d), "
			          "retrying",
			    rc);
		__atomic_add_fetch(&md->resyncs, 1, __ATOMIC_RELAXED);
		if (__atomic_load_n(&md->acked, __ATOMIC_ACQUIRE) > before)
			backoff = 100;
		nap_ms(md, backoff);
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
	}
	return NULL;
}

void
follow_start(struct mirror *m)
{
	md = m;
	q.cap = md->conf.page < QUEUE_MAX / 2 ? md->conf.page * 2 : QUEUE_MAX;
	if (q.cap < 1024)
		q.cap = 1024;
	if ((q.ring = calloc(q.cap, sizeof(*q.ring))) == NULL)
		fatal("calloc");
	if (pthread_create(&follow_thr, NULL, follow_main, NULL) != 0)
		fatal("pthread_create");
	follow_running = 1;
}

void
follow_stop(void)
{
	if (!follow_running)
		return;
	pthread_join(follow_thr, NULL);
	follow_running = 0;
	free(q.ring);
	q.ring = NULL;
}
