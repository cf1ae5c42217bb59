/* SPDX-License-Identifier: MIT */
/*
 * mirrord.c - eventfold-mirrord: main, configuration, lifecycle and
 * signals.
 *
 * Start: parse config and flags, connect to NATS (retrying in the
 * background: NATS may come later), open /metrics, start the follower
 * (follow.c), tell systemd READY=1. The main thread then waits for
 * signals and, every second, asks stored for its head and JetStream for
 * the stream's state, and computes the rate. SIGTERM/SIGINT: stop the
 * follower, wait up to ack_wait_ms for the publishes in flight, exit 0.
 * See eventfold-mirrord(8).
 */
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "clock.h"
#include "conf.h"
#include "daemon.h"
#include "env.h"
#include "log.h"
#include "mirrord.h"

#define OFF(f) offsetof(struct mirror_conf, f)

static const struct conf_key mirror_keys[] = {
	{ "runtime_dir", CONF_STR, OFF(runtime_dir), "/run/eventfold",
	    "directory of stored's IPC sockets" },
	{ "store_url", CONF_STR, OFF(store_url), "",
	    "nng URL of stored's request socket" },
	{ "events_url", CONF_STR, OFF(events_url), "",
	    "nng URL of stored's publish socket" },
	{ "nats_url", CONF_STR, OFF(nats_url), "nats://127.0.0.1:4222",
	    "NATS servers, comma-separated" },
	{ "stream", CONF_STR, OFF(stream), "EVENTFOLD",
	    "JetStream stream the log is mirrored into" },
	{ "subject_prefix", CONF_STR, OFF(subject_prefix), "eventfold",
	    "events go to PREFIX.<stream id>" },
	{ "replicas", CONF_U64, OFF(replicas), "1",
	    "replicas of the stream when mirrord creates it (1 to 5)" },
	{ "retention", CONF_STR, OFF(retention), "limits",
	    "retention of the stream when mirrord creates it: limits, "
	    "interest or workqueue" },
	{ "max_age_s", CONF_U64, OFF(max_age_s), "0",
	    "seconds JetStream keeps a message (0: no bound)" },
	{ "max_bytes", CONF_SIZE, OFF(max_bytes), "0",
	    "bytes the stream keeps, oldest dropped first (0: no bound)" },
	{ "dup_window_s", CONF_U64, OFF(dup_window_s), "120",
	    "JetStream's duplicate window for event ids" },
	{ "max_inflight", CONF_U64, OFF(max_inflight), "4096",
	    "publishes awaiting their acknowledgement at most" },
	{ "ack_wait_ms", CONF_U64, OFF(ack_wait_ms), "5000",
	    "how long an acknowledgement may take before a resync" },
	{ "page", CONF_U64, OFF(page), "4096",
	    "events per catch-up read from stored; up to two pages are "
	    "queued ahead of the publisher" },
	{ "metrics_listen", CONF_STR, OFF(metrics_listen), "127.0.0.1:9091",
	    "HOST:PORT of /metrics, which eventfoldctl mirror reads (\"\": "
	    "none)" },
	{ NULL, 0, 0, NULL, NULL },
};

static struct mirror md;

int
nap_ms(struct mirror *m, uint64_t ms)
{
	return daemon_nap(&m->stopping, ms);
}

/* Every second: the log's head, the stream's state, the rate. */
static void
housekeeping(uint64_t *prev_acked, uint64_t *prev_ms)
{
	struct client_reply rep;
	struct ipc_status_rep st;
	uint64_t t = clock_mono_ms(), a;

	if (client_status_within(&md.store, 500, &rep, &st) == EF_S_OK) {
		__atomic_store_n(&md.head, st.head, __ATOMIC_RELAXED);
		__atomic_store_n(&md.store_up, 1, __ATOMIC_RELAXED);
	} else
		__atomic_store_n(&md.store_up, 0, __ATOMIC_RELAXED);
	client_reply_free(&rep);
	js_refresh();
	a = __atomic_load_n(&md.acked, __ATOMIC_RELAXED);
	if (t > *prev_ms && a >= *prev_acked)
		__atomic_store_n(&md.rate,
		    (a - *prev_acked) * 1000 / (t - *prev_ms),
		    __ATOMIC_RELAXED);
	*prev_acked = a;
	*prev_ms = t;
}

/* The stream's settings, checked (daemon_def.check). */
static int
mirror_check(void *conf)
{
	char err[1200];

	if (js_check_conf(&md, err, sizeof(err)) != 0) {
		fprintf(stderr, "eventfold-mirrord: %s\n", err);
		return 1;
	}
	return 0;
}

/* Then: at least one publish in flight, 100 ms for an ack, a page. */
static const struct daemon_clamp mirror_clamps[] = {
	{ "max_inflight", 1, 0, 0 },
	{ "ack_wait_ms", 0, 100, 0 },
	{ "page", 1000, 0, 0 },
	{ NULL, 0, 0, 0 },
};

/* The main loop's: the last housekeeping, and the rate's base. */
struct mirror_tick {
	uint64_t prev_acked, prev_ms, last;
};

/* Every second: housekeeping, and the progress in systemd's STATUS. */
static void
mirror_tick(void *arg)
{
	struct mirror_tick *mt = arg;
	uint64_t t = clock_mono_ms();

	if (t - mt->last < 1000)
		return;
	housekeeping(&mt->prev_acked, &mt->prev_ms);
	sd_notifyf(0, "STATUS=mirrored %" PRIu64 " of %" PRIu64,
	    __atomic_load_n(&md.acked, __ATOMIC_RELAXED),
	    __atomic_load_n(&md.head, __ATOMIC_RELAXED));
	mt->last = t;
}

static const struct daemon_def mirror_def = {
	.section = "mirrord",
	.keys = mirror_keys,
	.about = "Mirrors eventfold's committed log, in order and exactly "
	         "once, into a NATS\nJetStream stream (sequence N = log "
	         "position N - 1).\n"
	         "Environment: EVENTFOLD_LOG_LEVEL or RUST_LOG (error, warn, "
	         "info, debug).\n\n",
	.check = mirror_check,
	.clamps = mirror_clamps,
	.stopping = "stopping",
	.hup_msg = "SIGHUP: nothing to reload (restart for new settings)",
	.tick = mirror_tick,
	.wait_ms = 250,
};

int
main(int argc, char **argv)
{
	struct conf_opts opts;
	struct mirror_tick mt = { 0, 0, 0 };
	char err[1200];
	sigset_t set;
	int rc;

	if ((rc = daemon_configure(&mirror_def, &md.conf, &argc, &argv,
	         &opts)) >= 0)
		return rc;
	md.start_ms = clock_mono_ms();
	pthread_mutex_init(&md.mu, NULL);

	daemon_signals(&set);

	client_url(md.store_url, sizeof(md.store_url), md.conf.runtime_dir,
	    STORE_SOCK, md.conf.store_url);
	client_url(md.events_url, sizeof(md.events_url), md.conf.runtime_dir,
	    STORE_EVENTS_SOCK, md.conf.events_url);
	if (client_open(&md.store, md.store_url, 5000) != 0)
		fatalx("bad store URL %s", md.store_url);
	if (metrics_start(&md, err, sizeof(err)) != 0)
		fatalx("%s", err);
	if (js_open(&md, err, sizeof(err)) != 0)
		fatalx("%s", err);
	follow_start(&md);
	log_info("mirroring %s into stream %s (%s.<stream id>) at %s",
	    md.store_url, md.conf.stream, md.conf.subject_prefix,
	    md.conf.nats_url);
	mt.prev_ms = clock_mono_ms();
	daemon_serve(&mirror_def, &set, "READY=1", &mt);

	md.stopping = 1;
	__atomic_store_n(&md.failed, 1, __ATOMIC_RELEASE);
	follow_stop();
	metrics_stop();
	js_close();
	client_close(&md.store);
	log_info("stopped at position %" PRIu64, md.acked);
	conf_free(mirror_keys, &md.conf);
	nngx_fini();
	return 0;
}
