/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - Prometheus text at GET /metrics on metrics_listen
 * (libmicrohttpd, one internal thread). `eventfoldctl mirror` reads the
 * same page.
 *
 *   eventfold_mirror_position            positions [0, N) are in JetStream
 *   eventfold_mirror_store_head          the log's next position, last seen
 *   eventfold_mirror_lag_events          head - position
 *   eventfold_mirror_rate_events         events/s mirrored, last second
 *   eventfold_mirror_inflight            publishes awaiting their ack
 *   eventfold_mirror_errors_total        failed publishes and requests
 *   eventfold_mirror_resyncs_total       rounds restarted after the
 *                                        stream's last sequence
 *   eventfold_mirror_duplicates_total    publishes JetStream already had
 *   eventfold_mirror_nats_up, eventfold_mirror_store_up
 *   eventfold_mirror_stale               1: the stream is another log's
 *   eventfold_mirror_stream_{messages,bytes,first_seq,last_seq,replicas,
 *     consumers}                         JetStream's stream info, last second
 *   eventfold_mirror_info{stream,subjects,cluster,leader,nats} 1
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mirrord.h"
#include "promhttp.h"
#include "text.h"

/* The mirror this file serves, set by its start (js_check_conf,
 * js_open, follow_start, metrics_start): mirrord.c's. */
static struct mirror *md;

/* A label value: no quote, backslash or newline. */
static void
label(char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || *s == '\n')
			*s = '_';
}

#define SS(f) offsetof(struct stream_state, f)

/* JetStream's stream info, once known: gauges of struct stream_state. */
static const struct {
	const char *name, *help;
	size_t off;
} stream_gauges[] = {
	{ "eventfold_mirror_stream_messages", "Messages in the stream",
	    SS(msgs) },
	{ "eventfold_mirror_stream_bytes", "Bytes in the stream", SS(bytes) },
	{ "eventfold_mirror_stream_first_seq", "The stream's first sequence",
	    SS(first_seq) },
	{ "eventfold_mirror_stream_last_seq", "The stream's last sequence",
	    SS(last_seq) },
	{ "eventfold_mirror_stream_replicas", "The stream's replicas",
	    SS(replicas) },
	{ "eventfold_mirror_stream_consumers", "The stream's consumers",
	    SS(consumers) },
};

static char *
render(size_t *len)
{
	struct text t;
	struct stream_state ss;
	uint64_t pos, head;
	char nats[256];
	size_t i;

	text_init(&t, 4096);
	pthread_mutex_lock(&md->mu);
	ss = md->ss;
	pthread_mutex_unlock(&md->mu);
	pos = __atomic_load_n(&md->acked, __ATOMIC_RELAXED);
	head = __atomic_load_n(&md->head, __ATOMIC_RELAXED);
	text_metric(&t, "eventfold_mirror_position", "gauge",
	    "Log positions below this are in the JetStream stream", pos);
	text_metric(&t, "eventfold_mirror_store_head", "gauge",
	    "The log's next position, as last seen", head);
	text_metric(&t, "eventfold_mirror_lag_events", "gauge",
	    "Events committed but not yet in JetStream",
	    head > pos ? head - pos : 0);
	text_metric(&t, "eventfold_mirror_rate_events", "gauge",
	    "Events mirrored per second over the last second",
	    __atomic_load_n(&md->rate, __ATOMIC_RELAXED));
	text_metric(&t, "eventfold_mirror_inflight", "gauge",
	    "Publishes awaiting their acknowledgement", js_inflight());
	text_metric(&t, "eventfold_mirror_errors_total", "counter",
	    "Failed publishes and JetStream requests",
	    __atomic_load_n(&md->errors, __ATOMIC_RELAXED));
	text_metric(&t, "eventfold_mirror_resyncs_total", "counter",
	    "Restarts after the stream's last sequence",
	    __atomic_load_n(&md->resyncs, __ATOMIC_RELAXED));
	text_metric(&t, "eventfold_mirror_duplicates_total", "counter",
	    "Publishes JetStream already held (acknowledged as duplicates)",
	    __atomic_load_n(&md->duplicates, __ATOMIC_RELAXED));
	text_metric(&t, "eventfold_mirror_nats_up", "gauge",
	    "1 if connected to a NATS server", (uint64_t)js_connected());
	text_metric(&t, "eventfold_mirror_store_up", "gauge",
	    "1 if eventfold-stored answered last",
	    (uint64_t)__atomic_load_n(&md->store_up, __ATOMIC_RELAXED));
	text_metric(&t, "eventfold_mirror_stale", "gauge",
	    "1 if the stream does not end with this log's events",
	    (uint64_t)__atomic_load_n(&md->stale, __ATOMIC_RELAXED));
	for (i = 0;
	     ss.known && i < sizeof(stream_gauges) / sizeof(stream_gauges[0]);
	     i++)
		text_metric(&t, stream_gauges[i].name, "gauge",
		    stream_gauges[i].help,
		    *(const uint64_t *)((const char *)&ss +
		        stream_gauges[i].off));
	snprintf(nats, sizeof(nats), "%s", md->conf.nats_url);
	label(nats);
	label(ss.subjects);
	label(ss.cluster);
	label(ss.leader);
	label(ss.error);
	text_printf(&t,
	    "# HELP eventfold_mirror_info The mirror's stream "
	    "and NATS servers\n# TYPE eventfold_mirror_info gauge\n"
	    "eventfold_mirror_info{stream=\"%s\",subjects=\"%s\",cluster="
	    "\"%s\",leader=\"%s\",nats=\"%s\",error=\"%s\"} 1\n",
	    md->conf.stream, ss.subjects, ss.cluster, ss.leader, nats,
	    ss.error);
	*len = t.len;
	return t.buf;
}

static char *
render_page(void *arg, size_t *len)
{
	(void)arg;
	return render(len);
}

static struct promhttp ph = {
	.conns = 16,
	.not_found = "not found: try /metrics\n",
	.render = render_page,
};

static void *mhd;

int
metrics_start(struct mirror *m, char *err, size_t errlen)
{
	int rc;

	md = m;
	if (*md->conf.metrics_listen == '\0')
		return 0;
	ph.listen = md->conf.metrics_listen;
	if ((rc = promhttp_start(&ph, &mhd, err, errlen)) != 0)
		return rc;
	log_info("metrics on http://%s/metrics", md->conf.metrics_listen);
	return 0;
}

void
metrics_stop(void)
{
	promhttp_stop(&mhd);
}
