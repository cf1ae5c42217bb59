/* SPDX-License-Identifier: MIT */
/*
 * follow.c - the follower thread: stored's log, in order, into
 * JetStream.
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
 * subscription at once (md.failed is its stop flag), so an event whose
 * ack timed out is sent again even if no other event follows it. Nothing is skipped,
 * since the stream is the only record of what was mirrored, and
 * nothing is repeated, since every publish names the sequence it must
 * follow.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "mirrord.h"

static pthread_t follow_thr;
static int follow_running;

static int
on_event(void *arg, const struct ef_event *ev)
{
	return js_publish(ev);
}

static int
on_caught_up(void *arg)
{
	log_debug("caught up with the log at position %" PRIu64,
	    __atomic_load_n(&md.published, __ATOMIC_RELAXED));
	return 0;
}

static void *
follow_main(void *arg)
{
	struct sub_params sp;
	uint64_t last, backoff = 100, before;
	uint8_t id[16];
	char err[512];
	int has_id, rc, warned = 0;

	while (!md.stopping) {
		if (js_resume(&last, id, &has_id, err, sizeof(err)) != 0) {
			if (!warned++)
				log_warnx("%s; retrying", err);
			nap_ms(backoff);
			backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
			continue;
		}
		if (warned)
			log_info("stream %s: resuming after sequence %" PRIu64,
			    md.conf.stream, last);
		warned = 0;
		__atomic_store_n(&md.acked, last, __ATOMIC_RELEASE);
		__atomic_store_n(&md.published, last, __ATOMIC_RELEASE);
		__atomic_store_n(&md.failed, 0, __ATOMIC_RELEASE);
		before = last;

		memset(&sp, 0, sizeof(sp));
		sp.store_url = md.store_url;
		sp.events_url = md.events_url;
		sp.page = (uint32_t)md.conf.page;
		sp.from = last;
		sp.on_event = on_event;
		sp.on_caught_up = on_caught_up;
		sp.stop = &md.failed; /* set also when stopping */
		sp.check_log = 1;
		sp.from_id = has_id ? id : NULL;
		rc = sub_run(&sp);
		js_drain();
		if (rc == SUB_LOG_CHANGED) {
			__atomic_store_n(&md.stale, 1, __ATOMIC_RELEASE);
			__atomic_add_fetch(&md.errors, 1, __ATOMIC_RELAXED);
			log_warnx("stream %s does not end with this log's "
			    "event at position %" PRIu64 ": it mirrors "
			    "another log (or this one was restored from an "
			    "older backup); not publishing, checking again "
			    "in 10 s (see eventfold-mirrord(8))",
			    md.conf.stream, last - 1);
			nap_ms(10000);
			continue;
		}
		__atomic_store_n(&md.stale, 0, __ATOMIC_RELEASE);
		if (md.stopping)
			break;
		if (rc < 0)
			log_warnx("subscription to the log failed (%d), "
			    "retrying", rc);
		__atomic_add_fetch(&md.resyncs, 1, __ATOMIC_RELAXED);
		if (__atomic_load_n(&md.acked, __ATOMIC_ACQUIRE) > before)
			backoff = 100;
		nap_ms(backoff);
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
	}
	return NULL;
}

void
follow_start(void)
{
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
}
