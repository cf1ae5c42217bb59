/* SPDX-License-Identifier: MIT */
/*
 * mirrord.h - private structures of eventfold-mirrord.
 *
 * Threads: the follower (follow.c) runs the catch-up-then-live
 * subscription to stored (sub_run, libcommon) and queues each event's
 * message; the publisher (follow.c, one per round) takes them in order
 * and publishes them to JetStream asynchronously, so that reading the
 * next page overlaps publishing this one; libnats's threads call the
 * ack handler (js.c); libmicrohttpd's thread serves /metrics
 * (metrics.c); the main
 * thread takes signals and, every second, asks stored for its head and
 * JetStream for the stream's state (mirrord.c).
 *
 * The one invariant: JetStream sequence N holds log position N - 1.
 * Every publish carries Nats-Expected-Last-Sequence = its position, so
 * JetStream refuses anything out of place, and the follower, after any
 * error, drains what is in flight and starts again after the stream's
 * last sequence.
 */
#ifndef EF_MIRRORD_H
#define EF_MIRRORD_H

#include <pthread.h>
#include <stdint.h>

#include <nats/nats.h>

#include "client.h"

struct mirror_conf {
	char *runtime_dir;
	char *store_url;
	char *events_url;
	char *nats_url;       /* comma-separated server URLs */
	char *stream;         /* JetStream stream name */
	char *subject_prefix; /* subjects PREFIX.<stream id> */
	uint64_t replicas;
	char *retention;    /* limits, interest or workqueue */
	uint64_t max_age_s; /* 0: no bound */
	uint64_t max_bytes; /* 0: no bound */
	uint64_t dup_window_s;
	uint64_t max_inflight; /* publishes awaiting their ack */
	uint64_t ack_wait_ms;
	uint64_t page;
	char *metrics_listen; /* "": none */
};

/* The stream's state as JetStream last told it (under mu). */
struct stream_state {
	int known;
	uint64_t msgs;
	uint64_t bytes;
	uint64_t first_seq;
	uint64_t last_seq;
	uint64_t replicas;
	uint64_t consumers;
	char leader[128];
	char cluster[128];
	char subjects[256];
	char error[256];
};

struct mirror {
	struct mirror_conf conf;
	char store_url[4200];
	char events_url[4200];
	struct ef_client store;

	natsConnection *nc;
	jsCtx *js;

	/* atomics */
	uint64_t published;  /* next position handed to libnats */
	uint64_t acked;      /* positions [0, acked) are in the stream */
	uint64_t head;       /* the log's next position, last seen */
	uint64_t errors;     /* failed publishes and JetStream requests */
	uint64_t resyncs;    /* restarts after the stream's last sequence */
	uint64_t duplicates; /* publishes JetStream had already (acked) */
	uint64_t rate;       /* events/s acked over the last interval */
	int store_up;
	volatile int
	    failed; /* a publish failed (or stopping): drain, resync */
	int stale;  /* the stream is not this log's mirror */
	volatile int stopping;

	pthread_mutex_t mu;
	struct stream_state ss;
	uint64_t start_ms;
};

/* Sleeps ms, waking early (returning 1) if the daemon is stopping. */
int nap_ms(struct mirror *md, uint64_t ms);

/* js.c */
/* Connects (retrying in the background if NATS is not there yet). 0,
 * or a negative errno with err filled. */
int js_open(struct mirror *md, char *err, size_t errlen);
void js_close(void);
/*
 * Finds the stream (creating it if missing) and its last message:
 * *last_seq, and the event id that message carries (*has_id 0 if none
 * or the stream is empty). 0, or a negative errno with err filled
 * (NATS unreachable, a refused configuration).
 */
int js_resume(uint64_t *last_seq, uint8_t id[16], int *has_id, char *err,
    size_t errlen);
/*
 * Builds the message of ev (payload and headers) into *mp, the
 * caller's until js_send. 0; 1 on a failure (counted, md->failed set).
 * Not thread-safe: one encoding buffer, the reader's.
 */
int js_message(const struct ef_event *ev, natsMsg **mp);
/*
 * Publishes m, the event at position, at sequence position + 1,
 * asynchronously; takes m in every case. 0; 1 when a failure or a stop
 * is pending (the follower must drain and resync).
 */
int js_send(natsMsg *m, uint64_t position);
/* Waits up to ack_wait_ms for the publishes in flight; drops the rest. */
void js_drain(void);
/* Checks the stream settings of the configuration. 0 or -EINVAL with
 * err. */
int js_check_conf(struct mirror *md, char *err, size_t errlen);
/* Refreshes md->ss from JetStream. */
void js_refresh(void);
int js_connected(void);
uint64_t js_inflight(void);

/* follow.c */
void follow_start(struct mirror *md);
void follow_stop(void);

/* metrics.c */
/* Serves /metrics on metrics_listen (none if ""). 0, or -EINVAL (not
 * HOST:PORT), -EADDRNOTAVAIL, -EADDRINUSE, with err filled. */
int metrics_start(struct mirror *md, char *err, size_t errlen);
void metrics_stop(void);

#endif
