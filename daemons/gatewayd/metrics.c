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
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gatewayd.h"
#include "ipc_runner.h"
#include "log.h"
#include "promhttp.h"
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

/* cl, one of the MHD thread's own (one scrape at once), on sock. */
static struct ef_client *
scrape_client(struct ef_client *cl, nng_socket sock)
{
	cl->sock = sock;
	cl->timeout_ms = METRICS_STATUS_MS;
	if (cl->next_id == 0)
		cl->next_id = 1;
	return cl;
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
	memset(&rep, 0, sizeof(rep));
	memset(&st, 0, sizeof(st));
	if (client_status(scrape_client(&cl, gw->store), &rep, &st) == EF_S_OK)
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
	scrape_client(&cl, gw->runner);
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

/* A figure of struct metrics, as text_metric renders it. */
struct gauge {
	const char *name, *type, *help;
	size_t off; /* of its uint64_t in struct metrics */
};

#define MX(f)     offsetof(struct metrics, f)
#define NGAUGE(a) (sizeof(a) / sizeof((a)[0]))

/* The figures the store gives, in the order the page lists them. */
static const struct gauge store_totals[] = {
	{ "eventfold_appends_total", "counter",
	    "Appends that wrote (replays excluded), whole store.",
	    MX(appends_total) },
	{ "eventfold_events_total", "counter",
	    "Events written by those appends, whole store.",
	    MX(events_total) },
};
static const struct gauge log_figures[] = {
	{ "eventfold_streams_total", "gauge", "Streams in the log.",
	    MX(streams_total) },
	{ "eventfold_log_bytes", "gauge", "Bytes of the active log file.",
	    MX(log_bytes) },
	{ "eventfold_fsyncs_total", "counter",
	    "Group commits of eventfold-stored (one fdatasync each).",
	    MX(fsyncs_total) },
};
/* eventfold_store_up, the segments and the cold archive. */
static const struct gauge store_figures[] = {
	{ "eventfold_store_up", "gauge",
	    "1 while eventfold-stored answers, else 0.", MX(store_up) },
	{ "eventfold_segments", "gauge",
	    "Segment files of the log, the one being written included.",
	    MX(segments) },
	{ "eventfold_index_lag_events", "gauge",
	    "Events not yet indexed on disk (the hot tail).", MX(index_lag) },
	{ "eventfold_archived_segments", "gauge",
	    "Sealed segments held in the cold archive (zstd).",
	    MX(archived_segments) },
	{ "eventfold_archived_bytes", "gauge",
	    "Bytes on disk of the archived segments.", MX(archived_bytes) },
	{ "eventfold_archive_cache_hits_total", "counter",
	    "Reads of archived events served from the frame cache.",
	    MX(cache_hits) },
	{ "eventfold_archive_cache_misses_total", "counter",
	    "Reads of archived events that decompressed a frame.",
	    MX(cache_misses) },
	{ "eventfold_archive_cache_bytes", "gauge",
	    "Decompressed archive frames held in memory.", MX(cache_bytes) },
};
/* runnerd's LMDB map, once known. */
static const struct gauge runner_figures[] = {
	{ "eventfold_runner_lmdb_map_bytes", "gauge",
	    "Map size of eventfold-runnerd's LMDB environment.",
	    MX(runner_map_bytes) },
	{ "eventfold_runner_lmdb_map_grows_total", "counter",
	    "Times eventfold-runnerd doubled a full LMDB map.",
	    MX(runner_map_grows) },
};

static void
render_gauges(struct text *t, struct metrics *mx, const struct gauge *g,
    size_t n)
{
	for (; n > 0; n--, g++)
		text_metric(t, g->name, g->type, g->help,
		    LD(*(uint64_t *)((char *)mx + g->off)));
}

static char *
metrics_render(struct gw *gw, size_t *len)
{
	struct metrics *mx = &gw->mx;
	struct text t;
	uint64_t head;
	int64_t subs;

	text_init(&t, 4096);
	render_gauges(&t, mx, store_totals, NGAUGE(store_totals));
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
	render_gauges(&t, mx, log_figures, NGAUGE(log_figures));
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
	render_gauges(&t, mx, store_figures, NGAUGE(store_figures));
	if (LD(mx->runner_known))
		render_gauges(&t, mx, runner_figures, NGAUGE(runner_figures));
	*len = t.len;
	return t.buf;
}

/* A scrape: fresh figures from stored and runnerd, then the page. */
static char *
metrics_scrape(void *arg, size_t *len)
{
	struct gw *gw = arg;

	metrics_refresh(gw);
	metrics_refresh_runner(gw);
	return metrics_render(gw, len);
}

int
metrics_start(struct gw *gw, char *err, size_t errlen)
{
	static struct promhttp ph = {
		.conns = 64,
		.dual_stack = 1,
		.not_found = "not found; try /metrics\n",
		.render = metrics_scrape,
	};

	if (*gw->conf.metrics_listen == '\0') {
		log_info("metrics endpoint disabled");
		return 0;
	}
	ph.listen = gw->conf.metrics_listen;
	ph.arg = gw;
	switch (promhttp_start(&ph, &gw->mhd, err, errlen)) {
	case 0:
		break;
	case -EADDRINUSE:
		/* EventfoldDB's rule: gRPC matters more than /metrics */
		log_warnx("%s; serving gRPC without metrics", err);
		return 0;
	default:
		return -1;
	}
	log_info("metrics on http://%s/metrics", gw->conf.metrics_listen);
	return 0;
}

void
metrics_stop(struct gw *gw)
{
	promhttp_stop(&gw->mhd);
}
