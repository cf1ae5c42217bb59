/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - Prometheus text exposition at GET /metrics on its own
 * listener (libmicrohttpd, one internal thread), metrics_listen.
 *
 * EventfoldDB's names, all present from the start, rendered as
 * EventfoldDB renders them:
 *   eventfold_appends_total            Appends that wrote (not replays)
 *   eventfold_events_total             events those Appends wrote
 *   eventfold_append_duration_seconds  a summary: quantiles 0, .5, .9,
 *                                      .95, .99, .999, 1 over the last
 *                                      DURATION_WINDOW Appends, _sum and
 *                                      _count over all of them
 *   eventfold_reads_total{rpc}         ReadStream / ReadAll calls
 *   eventfold_subscriptions_active     open Subscribe* streams
 *   eventfold_global_position          next global position (log length)
 *   eventfold_streams_total            streams in the log
 *   eventfold_log_bytes                bytes of the active log file
 * and ours: eventfold_append_latency_seconds (the same durations as a
 * histogram, which aggregates across gateways), eventfold_fsyncs_total,
 * eventfold_append_messages_total (APPEND_MANY messages sent),
 * eventfold_batch_size_events (events per group commit over the last
 * health interval), eventfold_subscriber_lag_events (the furthest a
 * SubscribeAll stream is behind the head), eventfold_store_up, and the
 * log's: eventfold_segments, eventfold_index_lag_events (events not yet
 * indexed on disk), eventfold_archived_segments,
 * eventfold_archived_bytes, eventfold_archive_cache_{hits,misses}_total,
 * eventfold_archive_cache_bytes; and runnerd's, once it has answered:
 * eventfold_runner_lmdb_map_bytes and eventfold_runner_lmdb_map_grows_total
 * (its LMDB map size and the times a full map was doubled).
 *
 * Whole store, current at the scrape: the appends and events counters
 * and every figure of the log are stored's own (its STATUS), asked for
 * when /metrics is read, so they count every gateway's and
 * eventfoldctl's appends, and a dashboard that reads them right after an
 * Append returns sees that Append. If stored does not answer within
 * METRICS_STATUS_MS, the last figures the health poll got are served.
 * runnerd's figures are asked for likewise (RUNNER_STATUS); if it does
 * not answer, its last figures are served.
 * The durations and read and subscription counts are this gateway's.
 *
 * A metrics address that cannot be bound is logged and the gateway goes
 * on serving gRPC without /metrics, as EventfoldDB does. Counters are
 * relaxed atomics: the hot path never takes a lock for them.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "gatewayd.h"
#include "hostport.h"
#include "ipc_runner.h"
#include "log.h"
#include "text.h"

static const double bucket_le[METRICS_BUCKETS] = { 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5 };

#define METRICS_STATUS_MS 1000

/* EventfoldDB's summary quantiles. */
static const double quantiles[] = { 0, 0.5, 0.9, 0.95, 0.99, 0.999, 1 };

#define LD(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static void
max_store(uint64_t *p, uint64_t v)
{
	uint64_t cur = LD(*p);

	while (v > cur &&
	    !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_RELAXED,
	        __ATOMIC_RELAXED))
		;
}

void
metrics_append(struct gw *gw, uint64_t ns, uint64_t events, uint64_t last_pos)
{
	struct metrics *mx = &gw->mx;
	double s = (double)ns / 1e9;
	uint64_t slot;
	int i;

	(void)events; /* counted by stored: replays are not appends */
	for (i = 0; i < METRICS_BUCKETS; i++)
		if (s <= bucket_le[i])
			break;
	__atomic_add_fetch(&mx->append_buckets[i], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&mx->append_sum_ns, ns, __ATOMIC_RELAXED);
	slot = __atomic_fetch_add(&mx->append_count, 1, __ATOMIC_RELAXED);
	ST(mx->recent_ns[slot % DURATION_WINDOW], ns);
	max_store(&mx->global_position, last_pos + 1);
}

void
metrics_status(struct gw *gw, const struct ipc_status_rep *st)
{
	struct metrics *mx = &gw->mx;

	max_store(&mx->global_position, st->head);
	ST(mx->appends_total, st->commits);
	ST(mx->events_total, st->events_written);
	ST(mx->streams_total, st->streams);
	ST(mx->log_bytes, st->log_bytes);
	ST(mx->fsyncs_total, st->fsyncs);
	ST(mx->store_events_written, st->events_written);
	ST(mx->segments, st->segments);
	ST(mx->index_lag,
	    st->head > st->indexed_to ? st->head - st->indexed_to : 0);
	ST(mx->archived_segments, st->archived_segments);
	ST(mx->archived_bytes, st->archived_bytes);
	ST(mx->cache_hits, st->cache_hits);
	ST(mx->cache_misses, st->cache_misses);
	ST(mx->cache_bytes, st->cache_bytes);
}

/* Fresh figures from stored for a scrape (the MHD thread, one at once). */
static void
metrics_refresh(struct gw *gw)
{
	static struct ef_client cl;
	struct client_reply rep;
	struct ipc_status_rep st;

	if (!store_up(gw))
		return;
	cl.sock = gw->store;
	cl.timeout_ms = METRICS_STATUS_MS;
	if (cl.next_id == 0)
		cl.next_id = 1;
	memset(&rep, 0, sizeof(rep));
	memset(&st, 0, sizeof(st));
	if (client_status(&cl, &rep, &st) == EF_S_OK)
		metrics_status(gw, &st);
	client_reply_free(&rep);
}

/* runnerd's figures for a scrape (the MHD thread, one at once). */
static void
metrics_refresh_runner(struct gw *gw)
{
	static struct ef_client cl;
	struct metrics *mx = &gw->mx;
	struct ipc_runner_status_rep sr;
	struct client_reply rep;
	struct ipc_out o;
	const char *why;

	if (!runner_up(gw))
		return;
	cl.sock = gw->runner;
	cl.timeout_ms = METRICS_STATUS_MS;
	if (cl.next_id == 0)
		cl.next_id = 1;
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_RUNNER_STATUS, client_request_id(&cl));
	ipc_nil(&o);
	memset(&sr, 0, sizeof(sr));
	if (client_call(&cl, &o, &rep) == EF_S_OK &&
	    ipc_runner_status_rep_decode(rep.in.body, &sr, &why) == 0) {
		ST(mx->runner_map_bytes, sr.lmdb_map_bytes);
		ST(mx->runner_map_grows, sr.lmdb_map_grows);
		ST(mx->runner_known, 1);
	}
	ipc_out_free(&o);
	client_reply_free(&rep);
}

static int
ns_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * eventfold_append_duration_seconds as EventfoldDB's summary: quantile q
 * is the ceil(q * n)-th smallest of the last n <= DURATION_WINDOW
 * durations (q 0 the smallest); NaN before the first Append, as the
 * Prometheus client renders an empty summary.
 */
static void
render_summary(struct text *t, struct metrics *mx)
{
	static uint64_t sorted[DURATION_WINDOW];
	uint64_t count = LD(mx->append_count), n, k, i;
	size_t q;

	n = count < DURATION_WINDOW ? count : DURATION_WINDOW;
	for (i = 0; i < n; i++)
		sorted[i] = LD(mx->recent_ns[i]);
	qsort(sorted, n, sizeof(sorted[0]), ns_cmp);
	text_printf(t,
	    "# HELP eventfold_append_duration_seconds Append "
	    "latency through eventfold-stored (durable commit included).\n"
	    "# TYPE eventfold_append_duration_seconds summary\n");
	for (q = 0; q < sizeof(quantiles) / sizeof(quantiles[0]); q++) {
		text_printf(t,
		    "eventfold_append_duration_seconds{quantile=\""
		    "%g\"} ",
		    quantiles[q]);
		if (n == 0) {
			text_printf(t, "NaN\n");
			continue;
		}
		k = (uint64_t)(quantiles[q] * (double)n);
		if ((double)k < quantiles[q] * (double)n)
			k++; /* ceil */
		k = k == 0 ? 0 : k - 1;
		text_printf(t, "%.9f\n", (double)sorted[k] / 1e9);
	}
	text_printf(t,
	    "eventfold_append_duration_seconds_sum %.9f\n"
	    "eventfold_append_duration_seconds_count %" PRIu64 "\n",
	    (double)LD(mx->append_sum_ns) / 1e9, count);
}

/* The append latency histogram. */
static void
render_latency(struct text *t, struct metrics *mx)
{
	uint64_t cum = 0;
	int i;

	text_printf(t,
	    "# HELP eventfold_append_latency_seconds Append "
	    "latency through eventfold-stored (durable commit included).\n"
	    "# TYPE eventfold_append_latency_seconds histogram\n");
	for (i = 0; i < METRICS_BUCKETS; i++) {
		cum += LD(mx->append_buckets[i]);
		text_printf(t,
		    "eventfold_append_latency_seconds_bucket"
		    "{le=\"%g\"} %" PRIu64 "\n",
		    bucket_le[i], cum);
	}
	cum += LD(mx->append_buckets[METRICS_BUCKETS]);
	text_printf(t,
	    "eventfold_append_latency_seconds_bucket{le=\"+Inf\"} "
	    "%" PRIu64 "\n",
	    cum);
	text_printf(t, "eventfold_append_latency_seconds_sum %.9f\n",
	    (double)LD(mx->append_sum_ns) / 1e9);
	text_printf(t, "eventfold_append_latency_seconds_count %" PRIu64 "\n",
	    cum);
}

/* The cold archive's figures, and runnerd's LMDB map once known. */
static void
render_archive(struct text *t, struct metrics *mx)
{
	text_metric(t, "eventfold_archived_segments", "gauge",
	    "Sealed segments held in the cold archive (zstd).",
	    LD(mx->archived_segments));
	text_metric(t, "eventfold_archived_bytes", "gauge",
	    "Bytes on disk of the archived segments.", LD(mx->archived_bytes));
	text_metric(t, "eventfold_archive_cache_hits_total", "counter",
	    "Reads of archived events served from the frame cache.",
	    LD(mx->cache_hits));
	text_metric(t, "eventfold_archive_cache_misses_total", "counter",
	    "Reads of archived events that decompressed a frame.",
	    LD(mx->cache_misses));
	text_metric(t, "eventfold_archive_cache_bytes", "gauge",
	    "Decompressed archive frames held in memory.",
	    LD(mx->cache_bytes));
	if (LD(mx->runner_known)) {
		text_metric(t, "eventfold_runner_lmdb_map_bytes", "gauge",
		    "Map size of eventfold-runnerd's LMDB environment.",
		    LD(mx->runner_map_bytes));
		text_metric(t, "eventfold_runner_lmdb_map_grows_total",
		    "counter",
		    "Times eventfold-runnerd doubled a full LMDB map.",
		    LD(mx->runner_map_grows));
	}
}

static char *
metrics_render(struct gw *gw, size_t *len)
{
	struct metrics *mx = &gw->mx;
	struct text t;
	uint64_t head;
	int64_t subs;

	text_init(&t, 4096);
	text_metric(&t, "eventfold_appends_total", "counter",
	    "Appends that wrote (replays excluded), whole store.",
	    LD(mx->appends_total));
	text_metric(&t, "eventfold_events_total", "counter",
	    "Events written by those appends, whole store.",
	    LD(mx->events_total));
	render_summary(&t, mx);
	render_latency(&t, mx);
	text_printf(&t,
	    "# HELP eventfold_reads_total Read calls by RPC.\n"
	    "# TYPE eventfold_reads_total counter\n"
	    "eventfold_reads_total{rpc=\"read_stream\"} %" PRIu64 "\n"
	    "eventfold_reads_total{rpc=\"read_all\"} %" PRIu64 "\n",
	    LD(mx->reads_read_stream), LD(mx->reads_read_all));
	subs = LD(mx->subscriptions_active);
	text_metric(&t, "eventfold_subscriptions_active", "gauge",
	    "Open SubscribeAll and SubscribeStream calls.",
	    subs > 0 ? (uint64_t)subs : 0);
	head = LD(mx->global_position);
	text_metric(&t, "eventfold_global_position", "gauge",
	    "Next global position to be written (events in the log).", head);
	text_metric(&t, "eventfold_streams_total", "gauge",
	    "Streams in the log.", LD(mx->streams_total));
	text_metric(&t, "eventfold_log_bytes", "gauge",
	    "Bytes of the active log file.", LD(mx->log_bytes));
	text_metric(&t, "eventfold_fsyncs_total", "counter",
	    "Group commits of eventfold-stored (one fdatasync each).",
	    LD(mx->fsyncs_total));
	text_metric(&t, "eventfold_append_messages_total", "counter",
	    "Messages that carried Appends to eventfold-stored.",
	    LD(gw->appends.messages));
	text_printf(&t,
	    "# HELP eventfold_batch_size_events Events per group "
	    "commit over the last health interval.\n"
	    "# TYPE eventfold_batch_size_events gauge\n"
	    "eventfold_batch_size_events %.3f\n",
	    (double)LD(mx->batch_size_milli) / 1000.0);
	text_metric(&t, "eventfold_subscriber_lag_events", "gauge",
	    "Events the furthest-behind SubscribeAll stream has yet to get.",
	    subscribe_max_lag(head));
	text_metric(&t, "eventfold_store_up", "gauge",
	    "1 while eventfold-stored answers, else 0.", LD(mx->store_up));
	text_metric(&t, "eventfold_segments", "gauge",
	    "Segment files of the log, the one being written included.",
	    LD(mx->segments));
	text_metric(&t, "eventfold_index_lag_events", "gauge",
	    "Events not yet indexed on disk (the hot tail).",
	    LD(mx->index_lag));
	render_archive(&t, mx);
	*len = t.len;
	return t.buf;
}

static enum MHD_Result
metrics_handler(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **ctx)
{
	struct gw *gw = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	static const char nf[] = "not found; try /metrics\n";
	char *body;
	size_t len;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)ctx;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		r = MHD_create_response_from_buffer(0, (void *)"",
		    MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (strcmp(url, "/metrics") != 0) {
		r = MHD_create_response_from_buffer(sizeof(nf) - 1, (void *)nf,
		    MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, r);
		MHD_destroy_response(r);
		return ret;
	}
	metrics_refresh(gw);
	metrics_refresh_runner(gw);
	body = metrics_render(gw, &len);
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type",
	    "text/plain; version=0.0.4");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

int
metrics_start(struct gw *gw, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	char host[256], port[32];
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_ERROR_LOG;
	struct sockaddr_in6 *sin6;
	int rc;

	if (*gw->conf.metrics_listen == '\0') {
		log_info("metrics endpoint disabled");
		return 0;
	}
	if (hostport_split(gw->conf.metrics_listen, host, sizeof(host), port,
	        sizeof(port)) != 0 ||
	    *port == '\0') {
		snprintf(err, errlen, "metrics_listen %s: expected HOST:PORT",
		    gw->conf.metrics_listen);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(*host ? host : NULL, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s",
		    gw->conf.metrics_listen, gai_strerror(rc));
		return -1;
	}
	if (ai->ai_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		sin6 = (struct sockaddr_in6 *)ai->ai_addr;
		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			flags |= MHD_USE_DUAL_STACK;
	}
	gw->mhd = MHD_start_daemon(flags, (uint16_t)atoi(port), NULL, NULL,
	    metrics_handler, gw, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (gw->mhd == NULL) {
		/* EventfoldDB's rule: gRPC matters more than /metrics */
		log_warnx(
		    "cannot listen on %s for /metrics (in use?); serving "
		    "gRPC without metrics",
		    gw->conf.metrics_listen);
		return 0;
	}
	log_info("metrics on http://%s/metrics", gw->conf.metrics_listen);
	return 0;
}

void
metrics_stop(struct gw *gw)
{
	if (gw->mhd != NULL)
		MHD_stop_daemon(gw->mhd);
	gw->mhd = NULL;
}
