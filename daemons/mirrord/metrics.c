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
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "hostport.h"
#include "log.h"
#include "mirrord.h"
#include "text.h"

/* The mirror this file serves, set by its start (js_check_conf,
 * js_open, follow_start, metrics_start): mirrord.c's. */
static struct mirror *md;

static struct MHD_Daemon *mhd;

/* A label value: no quote, backslash or newline. */
static void
label(char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || *s == '\n')
			*s = '_';
}

static char *
render(size_t *len)
{
	struct text t;
	struct stream_state ss;
	uint64_t pos, head;
	char nats[256];

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
	if (ss.known) {
		text_metric(&t, "eventfold_mirror_stream_messages", "gauge",
		    "Messages in the stream", ss.msgs);
		text_metric(&t, "eventfold_mirror_stream_bytes", "gauge",
		    "Bytes in the stream", ss.bytes);
		text_metric(&t, "eventfold_mirror_stream_first_seq", "gauge",
		    "The stream's first sequence", ss.first_seq);
		text_metric(&t, "eventfold_mirror_stream_last_seq", "gauge",
		    "The stream's last sequence", ss.last_seq);
		text_metric(&t, "eventfold_mirror_stream_replicas", "gauge",
		    "The stream's replicas", ss.replicas);
		text_metric(&t, "eventfold_mirror_stream_consumers", "gauge",
		    "The stream's consumers", ss.consumers);
	}
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

static enum MHD_Result
handler(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **state)
{
	static const char nf[] = "not found: try /metrics\n";
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned int code = MHD_HTTP_OK;
	size_t len;
	char *body;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		r = MHD_create_response_from_buffer(0, (void *)"",
		    MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") != 0) {
		r = MHD_create_response_from_buffer(sizeof(nf) - 1, (void *)nf,
		    MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NOT_FOUND;
	} else {
		body = render(&len);
		r = MHD_create_response_from_buffer(len, body,
		    MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(r, "Content-Type",
		    "text/plain; version=0.0.4");
	}
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

int
metrics_start(struct mirror *m, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	char host[256], port[32];
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_ERROR_LOG;
	int rc;

	md = m;
	if (*md->conf.metrics_listen == '\0')
		return 0;
	if (hostport_split(md->conf.metrics_listen, host, sizeof(host), port,
	        sizeof(port)) != 0 ||
	    *port == '\0') {
		snprintf(err, errlen, "metrics_listen %s: expected HOST:PORT",
		    md->conf.metrics_listen);
		return -EINVAL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(*host ? host : NULL, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s",
		    md->conf.metrics_listen, gai_strerror(rc));
		return -EADDRNOTAVAIL;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	mhd = MHD_start_daemon(flags, (uint16_t)atoi(port), NULL, NULL,
	    handler, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (mhd == NULL) {
		snprintf(err, errlen,
		    "cannot listen on %s for /metrics (in "
		    "use?)",
		    md->conf.metrics_listen);
		return -EADDRINUSE;
	}
	log_info("metrics on http://%s/metrics", md->conf.metrics_listen);
	return 0;
}

void
metrics_stop(void)
{
	if (mhd != NULL)
		MHD_stop_daemon(mhd);
	mhd = NULL;
}
