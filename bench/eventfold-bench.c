/* SPDX-License-Identifier: MIT */
/*
 * eventfold-bench.c - load generator and measurements for
 * eventfold-stored, which it reaches only through libcommon's client
 * (client.h): the same requests any program sends.
 *
 * Subcommands (see usage below): append, pipeline, status, read-all,
 * recover, index-mem, restart.
 * Each prints one line per case on stdout, in the format of the peer
 * baselines in ../shared/peers, so bench/run.sh can put both side by
 * side:
 *
 *   NAME events_per_s=N p50_us=N p99_us=N [key=value ...]
 *
 * Latency is per request (what a caller waits for). Unless --runtime-dir
 * names a running stored, the bench starts its own eventfold-stored on a
 * fresh data dir in a temp dir (server.c), and stops it and removes the
 * dir when done, on error, or on SIGINT/SIGTERM. Every wait is bounded.
 * Benchmarks are programs: nothing here asserts a timing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "client.h"
#include "ipc.h"
#include "log.h"
#include "pipeline.h"
#include "segfile.h"

#define EVENT_TYPE      "BenchEvent"
#define CALL_TIMEOUT_MS 10000

static const char usage_text[] =
    "usage: eventfold-bench [options] COMMAND [options]\n"
    "\n"
    "  append     --clients C --batch B --payload BYTES --seconds S\n"
    "             C threads append B events per request to their own\n"
    "             stream (expected version any) for S seconds\n"
    "  pipeline   --inflight N --batch B --payload BYTES --seconds S\n"
    "             one client keeps N appends in flight on the pipelined\n"
    "             API (pipeline.h: one socket, coalesced APPEND_MANY\n"
    "             messages), each to its own stream, for S seconds\n"
    "  status     --clients C --seconds S  the same load of STATUS\n"
    "             round trips: the IPC alone, no disk\n"
    "  read-all   [--events N]  append up to N events, then read the\n"
    "             whole log in READ_ALL pages, decoding every event\n"
    "  recover    [--events N]  build a log of N events, then time\n"
    "             restarts of stored until it answers STATUS (warm page\n"
    "             cache, then cold: the log evicted with fadvise)\n"
    "  index-mem  [--events N] [--streams K]  RSS growth of stored per\n"
    "             event appended, beside STATUS index_bytes\n"
    "  restart    [--events N] [--segment-size S]  build a log of N\n"
    "             events in segments of S bytes (default 64M), seal and\n"
    "             index them all on disk, then time restarts until STATUS\n"
    "             (only the tail is read), and as the baseline restarts\n"
    "             with the index deleted (every segment read, as the\n"
    "             single-file log was); RSS per sealed event (above\n"
    "             that of the store before the load)\n"
    "  history    [--events N] [--segment-size S] [--hot-segments H]\n"
    "             [--baseline]  a store of N events (default 20M) over\n"
    "             N/1000 streams of 1000 events spread over the log, all\n"
    "             sealed, indexed and archived but H sealed segments and\n"
    "             a 100k-event tail: restart time, ReadAll, ReadStream of\n"
    "             whole streams, appends (--clients x --batch) with the\n"
    "             indexer and archiver at work beside an empty store's;\n"
    "             --baseline: also a restart with the index deleted\n"
    "\n"
    "options:\n"
    "  --runtime-dir DIR  use the stored listening in DIR (append,\n"
    "                     status, read-all); default: start one on a\n"
    "                     fresh data dir in a temp dir\n"
    "  --data-dir DIR     data dir for the stored the bench starts\n"
    "                     (append, status, read-all, recover); kept\n"
    "                     afterwards, and events already there count\n"
    "  --stored PATH      eventfold-stored to start (default: the one of\n"
    "                     this build tree, next to this program, or PATH)\n"
    "  --clients C        threads (append, status; default 1)\n"
    "  --batch B          events per append request (default 1)\n"
    "  --payload BYTES    payload size (default 200)\n"
    "  --seconds S        measured time (append, status; default 5)\n"
    "  --warmup S         unmeasured time before it (default 0.5)\n"
    "  --shared-client    all threads share one client (one socket)\n"
    "  --inflight N       pipeline: appends in flight (default 32)\n"
    "  --events N         events (read-all 1000000, recover 5000000,\n"
    "                     index-mem 2000000, history 20000000)\n"
    "  --hot-segments H   history: sealed segments stored keeps plain\n"
    "                     (default 1); the rest are archived\n"
    "  --baseline         history: also time a restart with the index\n"
    "                     deleted\n"
    "  --streams K        streams the loaded events are spread over\n"
    "                     (default 1000)\n"
    "  --repeat R         passes/restarts measured (default 3)\n"
    "  --page N           events per READ_ALL request (default 4096)\n"
    "  --readers R        read-all: R threads read alternate pages, to\n"
    "                     overlap decoding with serving (default 1)\n"
    "  --name NAME        case name printed instead of the default\n";

struct opts {
	const char *stored;
	const char *runtime_dir;
	const char *data_dir;
	const char *name;
	unsigned clients;
	unsigned batch;
	unsigned payload;
	double seconds;
	double warmup;
	uint64_t events;
	unsigned streams;
	unsigned repeat;
	unsigned page;
	unsigned readers;
	unsigned inflight;
	int shared;
	unsigned hot_segments;    /* history: sealed segments kept plain */
	int baseline;             /* history: also restart without the index */
	const char *segment_size; /* restart, history: stored's */
	int events_set;           /* --events given: not the command's */
};

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int
status_of(const char *url, struct ipc_status_rep *st)
{
	struct client_reply rep;
	struct ef_client c;
	int rc;

	if (client_open(&c, url, CALL_TIMEOUT_MS) != 0)
		return -1;
	rc = client_status(&c, &rep, st);
	if (rc != EF_S_OK)
		log_warnx("STATUS: %s: %.*s", ipc_status_name(rc),
		    (int)rep.in.message.len, rep.in.message.ptr);
	client_reply_free(&rep);
	client_close(&c);
	return rc == EF_S_OK ? 0 : -1;
}

/*
 * The stored to load: the one in --runtime-dir (*s NULL), or one started
 * in srv on a fresh (or --data-dir) data dir (*s = srv). 0 or -1.
 */
static int
store_target(const struct opts *o, const char *name, struct server *srv,
    struct server **s, char *url, size_t len)
{
	*s = NULL;
	if (o->runtime_dir != NULL) {
		client_url(url, len, o->runtime_dir, STORE_SOCK, NULL);
		return 0;
	}
	server_init(srv, name, o->data_dir);
	if (server_start(srv, NULL) != 0)
		return -1;
	*s = srv;
	snprintf(url, len, "%s", srv->url);
	return 0;
}

/* ---- append load -------------------------------------------------------- */

/* The request one thread sends again and again, with fresh event ids. */
struct appendreq {
	struct ipc_append_req req;
	char (*ids)[UUID_STR_LEN];
	char stream[UUID_STR_LEN];
};

static uint8_t *payload_buf;

static void
payload_init(unsigned bytes)
{
	unsigned i;

	if ((payload_buf = malloc(bytes + 1)) == NULL)
		fatal("malloc");
	/* JSON when there is room for it: {"k":"xxx..."} */
	for (i = 0; i < bytes; i++)
		payload_buf[i] = 'x';
	if (bytes >= 8) {
		memcpy(payload_buf, "{\"k\":\"", 6);
		memcpy(payload_buf + bytes - 2, "\"}", 2);
	}
}

static void
appendreq_init(struct appendreq *a, unsigned batch, unsigned payload,
    uint64_t *rng)
{
	static const uint8_t none[1];
	unsigned i;

	memset(a, 0, sizeof(*a));
	rand_uuid_str(rng, a->stream);
	a->req.stream_id.ptr = a->stream;
	a->req.stream_id.len = UUID_STR_LEN - 1;
	a->req.kind = EF_EXPECT_ANY;
	a->req.nevents = batch;
	a->req.events = calloc(batch, sizeof(*a->req.events));
	a->ids = calloc(batch, UUID_STR_LEN);
	if (a->req.events == NULL || a->ids == NULL)
		fatal("calloc");
	for (i = 0; i < batch; i++) {
		struct ipc_proposed *p = &a->req.events[i];

		p->event_id.ptr = a->ids[i];
		p->event_id.len = UUID_STR_LEN - 1;
		p->type.ptr = EVENT_TYPE;
		p->type.len = sizeof(EVENT_TYPE) - 1;
		p->metadata = none;
		p->metadata_len = 0;
		p->payload = payload_buf;
		p->payload_len = payload;
	}
}

static void
appendreq_fresh_ids(struct appendreq *a, uint64_t *rng)
{
	uint32_t i;

	for (i = 0; i < a->req.nevents; i++)
		rand_uuid_str(rng, a->ids[i]);
}

static void
appendreq_free(struct appendreq *a)
{
	free(a->req.events);
	free(a->ids);
}

enum { PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP };

struct appender {
	pthread_t thr;
	const struct opts *o;
	const char *url;
	struct ef_client *shared;
	int status_only; /* STATUS round trips instead of appends */
	int *phase;
	pthread_barrier_t *start;
	uint64_t rng;
	struct lat lat;
	uint64_t events, requests, errors;
	char lasterr[160];
};

static void *
appender_main(void *arg)
{
	struct appender *t = arg;
	struct ef_client own, *c = t->shared;
	struct client_reply rep;
	struct appendreq a;
	uint64_t t0, t1;
	int rc, ph;

	if (c == NULL) {
		if (client_open(&own, t->url, CALL_TIMEOUT_MS) != 0)
			fatalx("client_open %s", t->url);
		c = &own;
	}
	appendreq_init(&a, t->o->batch, t->o->payload, &t->rng);
	pthread_barrier_wait(t->start);
	while (
	    (ph = __atomic_load_n(t->phase, __ATOMIC_ACQUIRE)) != PHASE_STOP &&
	    !interrupted) {
		if (t->status_only) {
			struct ipc_status_rep st;

			t0 = now_ns();
			rc = client_status(c, &rep, &st);
			t1 = now_ns();
		} else {
			appendreq_fresh_ids(&a, &t->rng);
			t0 = now_ns();
			rc = client_append(c, &a.req, &rep);
			t1 = now_ns();
		}
		if (rc != EF_S_OK && t->errors++ == 0)
			snprintf(t->lasterr, sizeof(t->lasterr), "%s: %.*s",
			    ipc_status_name(rc), (int)rep.in.message.len,
			    rep.in.message.ptr);
		client_reply_free(&rep);
		/* counted if it completed inside the measured window */
		if (__atomic_load_n(t->phase, __ATOMIC_ACQUIRE) !=
		        PHASE_MEASURE ||
		    ph != PHASE_MEASURE)
			continue;
		t->requests++;
		if (rc == EF_S_OK) {
			t->events += t->status_only ? 1 : a.req.nevents;
			lat_add(&t->lat, (double)(t1 - t0) / 1e3);
		}
	}
	appendreq_free(&a);
	if (c == &own)
		client_close(&own);
	return NULL;
}

/*
 * append, or with status_only the same load of STATUS round trips: the
 * cost of the IPC alone, with no disk in the path.
 */
/* The case name into name (len bytes): --name if given, else fmt's. */
static void __attribute__((format(printf, 4, 5)))
case_name(const struct opts *o, char *name, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (o->name != NULL) {
		snprintf(name, len, "%s", o->name);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(name, len, fmt, ap);
	va_end(ap);
}

/* Waits for the n appenders th; their latencies into all, their
 * counts added up. */
static void
appenders_join(struct appender *th, unsigned n, struct lat *all,
    uint64_t *events, uint64_t *requests, uint64_t *errors)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		pthread_join(th[i].thr, NULL);
		*events += th[i].events;
		*requests += th[i].requests;
		*errors += th[i].errors;
		if (th[i].errors)
			log_warnx("client %u: %" PRIu64 " errors, first: %s",
			    i, th[i].errors, th[i].lasterr);
		lat_merge(all, &th[i].lat);
		lat_free(&th[i].lat);
	}
}

/* The case name of an append (or status) run. */
static void
append_name(const struct opts *o, int status_only, char *name, size_t len)
{
	if (status_only)
		case_name(o, name, len, "stored_status_c%u", o->clients);
	else
		case_name(o, name, len, "stored_append_c%u_b%u", o->clients,
		    o->batch);
}

static int
cmd_append(const struct opts *o, int status_only)
{
	struct server srv, *s = NULL;
	struct appender *th;
	struct ef_client shared;
	struct ipc_status_rep st0, st1;
	pthread_barrier_t start;
	struct lat all = { 0 };
	char name[128], url[PATH_MAX + 32];
	uint64_t t0, t1, events = 0, requests = 0, errors = 0;
	double secs, cpu0 = 0, cpu1 = 0, self0, self1;
	int phase = PHASE_WARMUP, have_status;
	unsigned i;

	if (store_target(o, "append", &srv, &s, url, sizeof(url)) != 0)
		return 1;
	append_name(o, status_only, name, sizeof(name));
	payload_init(o->payload);
	if (o->shared && client_open(&shared, url, CALL_TIMEOUT_MS) != 0)
		fatalx("client_open %s", url);
	if ((th = calloc(o->clients, sizeof(*th))) == NULL)
		fatal("calloc");
	pthread_barrier_init(&start, NULL, o->clients + 1);
	for (i = 0; i < o->clients; i++) {
		th[i].o = o;
		th[i].url = url;
		th[i].shared = o->shared ? &shared : NULL;
		th[i].status_only = status_only;
		th[i].phase = &phase;
		th[i].start = &start;
		th[i].rng = seed();
		if (pthread_create(&th[i].thr, NULL, appender_main, &th[i]))
			fatal("pthread_create");
	}
	pthread_barrier_wait(&start);
	sleep_s(o->warmup);
	have_status = status_of(url, &st0) == 0;
	if (s)
		cpu0 = proc_cpu_s(s->pid);
	self0 = self_cpu_s();
	t0 = now_ns();
	__atomic_store_n(&phase, PHASE_MEASURE, __ATOMIC_RELEASE);
	sleep_s(o->seconds);
	__atomic_store_n(&phase, PHASE_STOP, __ATOMIC_RELEASE);
	t1 = now_ns();
	if (s)
		cpu1 = proc_cpu_s(s->pid);
	self1 = self_cpu_s();
	have_status = have_status && status_of(url, &st1) == 0;
	appenders_join(th, o->clients, &all, &events, &requests, &errors);
	secs = (double)(t1 - t0) / 1e9;
	printf("%s events_per_s=%.0f p50_us=%.0f p99_us=%.0f clients=%u", name,
	    (double)events / secs, lat_pct(&all, 0.50), lat_pct(&all, 0.99),
	    o->clients);
	if (!status_only)
		printf(" batch=%u payload=%u", o->batch, o->payload);
	printf(" requests=%" PRIu64 " errors=%" PRIu64, requests, errors);
	if (have_status && st1.fsyncs > st0.fsyncs) {
		/* the writer's batching: events per fdatasync */
		uint64_t f = st1.fsyncs - st0.fsyncs;

		printf(" fsyncs_per_s=%.0f events_per_fsync=%.1f",
		    (double)f / secs,
		    (double)(st1.events_written - st0.events_written) /
		        (double)f);
	}
	if (s && cpu0 >= 0 && cpu1 >= 0)
		printf(" stored_cpu_pct=%.0f", 100 * (cpu1 - cpu0) / secs);
	printf(" bench_cpu_pct=%.0f secs=%.1f\n", 100 * (self1 - self0) / secs,
	    secs);
	fflush(stdout);
	lat_free(&all);
	free(th);
	if (o->shared)
		client_close(&shared);
	free(payload_buf);
	payload_buf = NULL;
	if (s)
		server_stop(s);
	return interrupted || events == 0 ? 1 : 0;
}

/* ---- pipelined appends -------------------------------------------------- */

/*
 * One client, one pipeline (one socket), N appends in flight: each
 * completion records its latency and submits the next append of its
 * slot at once, from the callback. What the pipeline coalesces is
 * whatever completes and resubmits while a message is in flight.
 */
struct pctx {
	struct pipeline p;
	int phase; /* atomic */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned outstanding; /* slots not yet stopped */
	struct lat lat;
	uint64_t events, requests, errors;
	char lasterr[160];
};

struct pslot {
	struct pipeline_req rq;
	struct appendreq a;
	struct pctx *ctx;
	uint64_t t0, rng;
	int ph0; /* phase at submission */
};

static void
pslot_submit(struct pslot *ps)
{
	appendreq_fresh_ids(&ps->a, &ps->rng);
	pipeline_req_set(&ps->rq, &ps->a.req);
	ps->ph0 = __atomic_load_n(&ps->ctx->phase, __ATOMIC_ACQUIRE);
	ps->t0 = now_ns();
	pipeline_submit(&ps->ctx->p, &ps->rq);
}

static void
pslot_done(struct pipeline_req *rq, const struct ipc_result *res)
{
	struct pslot *ps = rq->arg;
	struct pctx *x = ps->ctx;
	uint64_t t1 = now_ns();
	int ph = __atomic_load_n(&x->phase, __ATOMIC_ACQUIRE);

	pthread_mutex_lock(&x->mu);
	if (res->status != EF_S_OK && x->errors++ == 0)
		snprintf(x->lasterr, sizeof(x->lasterr), "%s: %.*s",
		    ipc_status_name(res->status), (int)res->message.len,
		    res->message.ptr);
	/* counted if it completed inside the measured window */
	if (ph == PHASE_MEASURE && ps->ph0 == PHASE_MEASURE) {
		x->requests++;
		if (res->status == EF_S_OK) {
			x->events += ps->a.req.nevents;
			lat_add(&x->lat, (double)(t1 - ps->t0) / 1e3);
		}
	}
	if (ph == PHASE_STOP || interrupted) {
		x->outstanding--;
		pthread_cond_signal(&x->cv);
		pthread_mutex_unlock(&x->mu);
		return;
	}
	pthread_mutex_unlock(&x->mu);
	pslot_submit(ps);
}

static int
cmd_pipeline(const struct opts *o)
{
	struct server srv, *s = NULL;
	struct pctx *x;
	struct pslot *ps;
	char name[128], url[PATH_MAX + 32];
	uint64_t t0, t1, m0, m1;
	double secs, cpu0 = 0, cpu1 = 0, self0, self1;
	unsigned i;

	if (store_target(o, "pipeline", &srv, &s, url, sizeof(url)) != 0)
		return 1;
	case_name(o, name, sizeof(name), "stored_pipeline_n%u_b%u",
	    o->inflight, o->batch);
	payload_init(o->payload);
	if ((x = calloc(1, sizeof(*x))) == NULL ||
	    (ps = calloc(o->inflight, sizeof(*ps))) == NULL)
		fatal("calloc");
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	if (pipeline_open(&x->p, url, CALL_TIMEOUT_MS) != 0)
		fatalx("pipeline_open %s", url);
	x->phase = PHASE_WARMUP;
	x->outstanding = o->inflight;
	for (i = 0; i < o->inflight; i++) {
		ps[i].ctx = x;
		ps[i].rng = seed();
		ps[i].rq.arg = &ps[i];
		ps[i].rq.done = pslot_done;
		ipc_out_init(&ps[i].rq.out);
		appendreq_init(&ps[i].a, o->batch, o->payload, &ps[i].rng);
	}
	for (i = 0; i < o->inflight; i++)
		pslot_submit(&ps[i]);
	sleep_s(o->warmup);
	if (s)
		cpu0 = proc_cpu_s(s->pid);
	self0 = self_cpu_s();
	m0 = __atomic_load_n(&x->p.messages, __ATOMIC_RELAXED);
	t0 = now_ns();
	__atomic_store_n(&x->phase, PHASE_MEASURE, __ATOMIC_RELEASE);
	sleep_s(o->seconds);
	__atomic_store_n(&x->phase, PHASE_STOP, __ATOMIC_RELEASE);
	t1 = now_ns();
	m1 = __atomic_load_n(&x->p.messages, __ATOMIC_RELAXED);
	if (s)
		cpu1 = proc_cpu_s(s->pid);
	self1 = self_cpu_s();
	pthread_mutex_lock(&x->mu);
	while (x->outstanding > 0)
		pthread_cond_wait(&x->cv, &x->mu);
	pthread_mutex_unlock(&x->mu);
	pipeline_close(&x->p);
	if (x->errors)
		log_warnx("%" PRIu64 " errors, first: %s", x->errors,
		    x->lasterr);
	secs = (double)(t1 - t0) / 1e9;
	printf("%s events_per_s=%.0f p50_us=%.0f p99_us=%.0f inflight=%u "
	       "batch=%u payload=%u requests=%" PRIu64 " errors=%" PRIu64
	       " messages_per_s=%.0f",
	    name, (double)x->events / secs, lat_pct(&x->lat, 0.50),
	    lat_pct(&x->lat, 0.99), o->inflight, o->batch, o->payload,
	    x->requests, x->errors, (double)(m1 - m0) / secs);
	if (s && cpu0 >= 0 && cpu1 >= 0)
		printf(" stored_cpu_pct=%.0f", 100 * (cpu1 - cpu0) / secs);
	printf(" bench_cpu_pct=%.0f secs=%.1f\n", 100 * (self1 - self0) / secs,
	    secs);
	fflush(stdout);
	for (i = 0; i < o->inflight; i++) {
		appendreq_free(&ps[i].a);
		ipc_out_free(&ps[i].rq.out);
	}
	lat_free(&x->lat);
	i = x->events == 0;
	free(ps);
	free(x);
	free(payload_buf);
	payload_buf = NULL;
	if (s)
		server_stop(s);
	return interrupted || i ? 1 : 0;
}

/*
 * Bulk load: n events of payload bytes over streams streams, in appends
 * of batch events, from threads threads (each its own client). Fills
 * *lat with per-request latency if lat is set. Returns the events/s of
 * the load, or -1 on an error.
 */
struct loader {
	pthread_t thr;
	const char *url;
	uint64_t *left;
	unsigned batch, payload, nstreams, first, step;
	char (*streams)[UUID_STR_LEN];
	struct lat lat;
	uint64_t rng;
	int failed;
};

static void *
loader_main(void *arg)
{
	struct loader *t = arg;
	struct client_reply rep;
	struct ef_client c;
	struct appendreq a;
	uint64_t take, left, t0;
	unsigned k = t->first;
	int rc, tries;

	if (client_open(&c, t->url, CALL_TIMEOUT_MS) != 0)
		fatalx("client_open %s", t->url);
	appendreq_init(&a, t->batch, t->payload, &t->rng);
	while (!interrupted) {
		left = __atomic_load_n(t->left, __ATOMIC_RELAXED);
		do {
			if (left == 0)
				goto out;
			take = left < t->batch ? left : t->batch;
		} while (!__atomic_compare_exchange_n(t->left, &left,
		    left - take, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
		a.req.nevents = (uint32_t)take;
		a.req.stream_id.ptr = t->streams[k];
		k = (k + t->step) % t->nstreams;
		appendreq_fresh_ids(&a, &t->rng);
		t0 = now_ns();
		rc = client_append(&c, &a.req, &rep);
		/* a slow fdatasync (other writers on the disk) is not a
		 * failure of the load: the same ids again are idempotent */
		for (tries = 0;
		     rc == EF_S_UNAVAILABLE && tries < 5 && !interrupted;
		     tries++) {
			log_warnx("load: append: %.*s; sending it again",
			    (int)rep.in.message.len, rep.in.message.ptr);
			client_reply_free(&rep);
			rc = client_append(&c, &a.req, &rep);
		}
		lat_add(&t->lat, (double)(now_ns() - t0) / 1e3);
		if (rc != EF_S_OK) {
			log_warnx("load: append: %s: %.*s",
			    ipc_status_name(rc), (int)rep.in.message.len,
			    rep.in.message.ptr);
			client_reply_free(&rep);
			t->failed = 1;
			break;
		}
		client_reply_free(&rep);
	}
out:
	appendreq_free(&a);
	client_close(&c);
	return NULL;
}

static uint64_t load_streams_seed; /* 0: new random streams each load */

static double
load(const char *url, uint64_t n, unsigned nstreams, unsigned batch,
    unsigned payload, unsigned threads, struct lat *lat)
{
	char(*streams)[UUID_STR_LEN];
	struct loader *th;
	uint64_t left = n, rng = seed(), t0;
	double secs;
	unsigned i;
	int failed = 0;

	if (n == 0)
		return 0;
	if (nstreams == 0)
		nstreams = 1;
	if (threads > nstreams)
		threads = nstreams;
	payload_init(payload);
	if ((streams = calloc(nstreams, UUID_STR_LEN)) == NULL ||
	    (th = calloc(threads, sizeof(*th))) == NULL)
		fatal("calloc");
	/* the same streams at every load when load_streams_seed is set */
	if (load_streams_seed != 0)
		rng = load_streams_seed;
	for (i = 0; i < nstreams; i++)
		rand_uuid_str(&rng, streams[i]);
	rng = seed();
	t0 = now_ns();
	for (i = 0; i < threads; i++) {
		th[i].url = url;
		th[i].left = &left;
		th[i].batch = batch;
		th[i].payload = payload;
		th[i].nstreams = nstreams;
		th[i].first = i;
		th[i].step = threads;
		th[i].streams = streams;
		th[i].rng = seed();
		if (pthread_create(&th[i].thr, NULL, loader_main, &th[i]))
			fatal("pthread_create");
	}
	for (i = 0; i < threads; i++) {
		pthread_join(th[i].thr, NULL);
		failed |= th[i].failed;
		if (lat)
			lat_merge(lat, &th[i].lat);
		lat_free(&th[i].lat);
	}
	secs = (double)(now_ns() - t0) / 1e9;
	free(th);
	free(streams);
	free(payload_buf);
	payload_buf = NULL;
	if (failed || interrupted)
		return -1;
	return (double)n / secs;
}

/* ---- read-all ----------------------------------------------------------- */

/*
 * One reader of a read-all pass: pages k, k + R, k + 2R, ... of the
 * log (R readers), each read with READ_ALL and every event decoded and
 * checked for its position. A short page (max_read_bytes) is finished
 * before the reader moves on.
 */
struct reader {
	pthread_t thr;
	const char *url;
	uint64_t head;
	unsigned page, k, nreaders;
	struct lat lat;
	uint64_t bytes, sum, events;
	int bad;
};

static void *
reader_main(void *arg)
{
	struct reader *t = arg;
	struct client_reply rep;
	struct ipc_read_rep rr;
	struct ef_event ev;
	struct ef_client c;
	uint64_t base, from, end, p0;
	const char *why;
	uint32_t i;
	int rc;

	if (client_open(&c, t->url, CALL_TIMEOUT_MS) != 0)
		fatalx("client_open %s", t->url);
	for (base = (uint64_t)t->k * t->page;
	     base < t->head && !t->bad && !interrupted;
	     base += (uint64_t)t->nreaders * t->page) {
		end = base + t->page < t->head ? base + t->page : t->head;
		for (from = base; from < end && !interrupted;) {
			p0 = now_ns();
			rc = client_read_all(&c, from, end - from, EF_FORWARD,
			    &rep, &rr);
			if (rc != EF_S_OK || rr.nevents == 0) {
				log_warnx("READ_ALL from %" PRIu64
				          ": %s: %.*s",
				    from, ipc_status_name(rc),
				    (int)rep.in.message.len,
				    rep.in.message.ptr);
				client_reply_free(&rep);
				t->bad = 1;
				break;
			}
			/* decode every event fully, and check the order */
			for (i = 0; i < rr.nevents; i++) {
				if (ipc_event_decode(&rr.events->via.array
				                          .ptr[i],
				        &ev, &why) != 0 ||
				    ev.global_position != from + i) {
					log_warnx(
					    "READ_ALL: bad event at %" PRIu64,
					    from + i);
					t->bad = 1;
					break;
				}
				t->bytes += ev.payload_len + ev.metadata_len +
				    ev.type_len;
				t->sum += ev.payload_len ? ev.payload[0] : 0;
				t->sum += ev.stream_version + ev.recorded_at;
			}
			client_reply_free(&rep);
			lat_add(&t->lat, (double)(now_ns() - p0) / 1e3);
			if (t->bad)
				break;
			t->events += rr.nevents;
			from += rr.nevents;
		}
	}
	client_close(&c);
	return NULL;
}

/*
 * One pass of o->readers readers (rd) over positions 0..head of url:
 * their page latencies into pages, the events they got into *got, their
 * bytes and checksum added to *bytes and *sum. Whether one went wrong.
 */
static int
read_pass(const struct opts *o, const char *url, uint64_t head,
    struct reader *rd, struct lat *pages, uint64_t *got, uint64_t *bytes,
    uint64_t *sum)
{
	unsigned k;
	int bad = 0;

	for (k = 0; k < o->readers; k++) {
		memset(&rd[k], 0, sizeof(rd[k]));
		rd[k].url = url;
		rd[k].head = head;
		rd[k].page = o->page;
		rd[k].k = k;
		rd[k].nreaders = o->readers;
		if (pthread_create(&rd[k].thr, NULL, reader_main, &rd[k]) != 0)
			fatal("pthread_create");
	}
	*got = 0;
	for (k = 0; k < o->readers; k++) {
		pthread_join(rd[k].thr, NULL);
		bad |= rd[k].bad;
		*got += rd[k].events;
		*bytes += rd[k].bytes;
		*sum += rd[k].sum;
		lat_merge(pages, &rd[k].lat);
		lat_free(&rd[k].lat);
	}
	return bad;
}

/* The largest sample of l (which has one at least). */
static double
lat_max(const struct lat *l)
{
	double best = l->v[0];
	size_t k;

	for (k = 1; k < l->n; k++)
		if (l->v[k] > best)
			best = l->v[k];
	return best;
}

static int
cmd_read_all(const struct opts *o)
{
	struct server srv, *s = NULL;
	struct ipc_status_rep st;
	struct reader *rd;
	struct lat pages = { 0 }, passes = { 0 };
	char name[128], cnt[32], url[PATH_MAX + 32];
	uint64_t head, t0, t1, bytes = 0, sum = 0, got;
	double load_rate = 0, best = 0, self0, self1, cpu0 = 0, cpu1 = 0;
	double rtime = 0;
	unsigned r;
	int bad = 0, rc = 1;

	if (o->runtime_dir != NULL)
		client_url(url, sizeof(url), o->runtime_dir, STORE_SOCK, NULL);
	else {
		server_init(&srv, "readall", o->data_dir);
		if (server_start(&srv, NULL) != 0)
			return 1;
		s = &srv;
		snprintf(url, sizeof(url), "%s", srv.url);
	}
	if ((rd = calloc(o->readers, sizeof(*rd))) == NULL)
		fatal("calloc");
	if (status_of(url, &st) != 0)
		goto out;
	if (st.head < o->events) {
		load_rate = load(url, o->events - st.head, o->streams, 1000,
		    o->payload, 2, NULL);
		if (load_rate < 0 || status_of(url, &st) != 0)
			goto out;
	}
	head = st.head;
	self0 = self_cpu_s();
	if (s)
		cpu0 = proc_cpu_s(s->pid);
	for (r = 0; r < o->repeat && !interrupted && !bad; r++) {
		t0 = now_ns();
		bad = read_pass(o, url, head, rd, &pages, &got, &bytes, &sum);
		t1 = now_ns();
		if (bad || got != head)
			break;
		lat_add(&passes, (double)head / ((double)(t1 - t0) / 1e9));
		rtime += (double)(t1 - t0) / 1e9;
	}
	self1 = self_cpu_s();
	if (s)
		cpu1 = proc_cpu_s(s->pid);
	if (passes.n == 0 || bad)
		goto out;
	best = lat_max(&passes);
	case_name(o, name, sizeof(name), "stored_read_all_%s%s",
	    short_count(head, cnt), o->readers > 1 ? "_r" : "");
	if (!o->name && o->readers > 1)
		snprintf(name + strlen(name), sizeof(name) - strlen(name),
		    "%u", o->readers);
	/* events_per_s: median pass; p50/p99: per READ_ALL request */
	printf("%s events_per_s=%.0f p50_us=%.0f p99_us=%.0f events=%" PRIu64
	       " page=%u readers=%u passes=%zu best_events_per_s=%.0f "
	       "mb_per_s=%.0f",
	    name, lat_pct(&passes, 0.5), lat_pct(&pages, 0.5),
	    lat_pct(&pages, 0.99), head, o->page, o->readers, passes.n, best,
	    (double)bytes / rtime / 1e6);
	if (s && cpu0 >= 0 && cpu1 >= 0)
		printf(" stored_cpu_pct=%.0f", 100 * (cpu1 - cpu0) / rtime);
	printf(" bench_cpu_pct=%.0f", 100 * (self1 - self0) / rtime);
	if (load_rate > 0)
		printf(" load_events_per_s=%.0f", load_rate);
	printf(" check=%" PRIu64 "\n", sum % 1000);
	fflush(stdout);
	rc = 0;
out:
	free(rd);
	lat_free(&pages);
	lat_free(&passes);
	if (s)
		server_stop(s);
	return rc;
}

/* ---- recover ------------------------------------------------------------ */

/* Drops the log's pages from the page cache (clean after stop): every
 * segment file of the data directory. */
static void
evict_log(const char *data_dir)
{
	char path[PATH_MAX + 64], name[SEGFILE_NAME_MAX];
	uint64_t *bases = NULL;
	size_t n = 0, i;
	int fd;

	if ((errno = -segfile_list(data_dir, &bases, &n)) != 0) {
		log_warn("list %s", data_dir);
		return;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", data_dir,
		    segfile_name(name, sizeof(name), bases[i]));
		if ((fd = open(path, O_RDONLY)) < 0) {
			log_warn("open %s", path);
			continue;
		}
		(void)fdatasync(fd);
		if ((errno = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) !=
		    0)
			log_warn("posix_fadvise %s", path);
		close(fd);
	}
	free(bases);
}

/* Restarts s repeat times; prints one line. cold: evict the log first. */
static int
recover_case(struct server *s, const struct opts *o, uint64_t n, int cold,
    uint64_t log_bytes, double build_rate)
{
	struct lat wall = { 0 }, rec = { 0 };
	struct ipc_status_rep st;
	char name[128], cnt[32];
	uint64_t t0;
	unsigned r;

	for (r = 0; r < o->repeat && !interrupted; r++) {
		if (cold)
			evict_log(s->data_dir);
		t0 = now_ns();
		if (server_start(s, &st) != 0)
			return -1;
		lat_add(&wall, (double)(now_ns() - t0) / 1e3);
		lat_add(&rec, (double)st.recover_ms);
		if (st.recovered_events != n || st.head != n)
			log_warnx("recovered %" PRIu64 " events, head %" PRIu64
			          ", expected %" PRIu64,
			    st.recovered_events, st.head, n);
		server_stop(s);
	}
	if (wall.n == 0)
		return -1;
	if (o->name)
		snprintf(name, sizeof(name), "%s%s", o->name,
		    cold ? "_cold" : "");
	else
		snprintf(name, sizeof(name), "stored_recover_%s%s",
		    short_count(n, cnt), cold ? "_cold" : "");
	/* p50/p99 here: median and worst of the restarts */
	printf("%s events_per_s=%.0f p50_us=%.0f p99_us=%.0f events=%" PRIu64
	       " open_s=%.3f recover_ms=%.0f restarts=%zu log_mb=%.0f "
	       "page_cache=%s build_events_per_s=%.0f\n",
	    name, (double)n / (lat_pct(&wall, 0.5) / 1e6), lat_pct(&wall, 0.5),
	    lat_pct(&wall, 1.0), n, lat_pct(&wall, 0.5) / 1e6,
	    lat_pct(&rec, 0.5), wall.n, (double)log_bytes / 1e6,
	    cold ? "cold" : "warm", build_rate);
	fflush(stdout);
	lat_free(&wall);
	lat_free(&rec);
	return 0;
}

static int
cmd_recover(const struct opts *o)
{
	struct server srv;
	struct ipc_status_rep st;
	double rate;
	int rc = 1;

	server_init(&srv, "recover", o->data_dir);
	if (server_start(&srv, &st) != 0)
		return 1;
	if (st.head < o->events) {
		rate = load(srv.url, o->events - st.head, o->streams, 2048,
		    o->payload, 2, NULL);
		if (rate < 0)
			goto out;
	} else
		rate = 0;
	if (status_of(srv.url, &st) != 0)
		goto out;
	server_stop(&srv);
	if (recover_case(&srv, o, st.head, 0, st.log_bytes, rate) != 0 ||
	    recover_case(&srv, o, st.head, 1, st.log_bytes, rate) != 0)
		goto out;
	rc = 0;
out:
	server_stop(&srv);
	return rc;
}

/* ---- restart ------------------------------------------------------------ */

/* Sends ROTATE, then polls STATUS until everything sealed is indexed. */
static int
seal_and_index(const char *url, struct ipc_status_rep *st)
{
	struct ef_client c;
	struct client_reply rep;
	struct ipc_out o;
	uint64_t t0 = now_ns();
	int rc;

	if (client_open(&c, url, CALL_TIMEOUT_MS) != 0)
		return -1;
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_ROTATE, client_request_id(&c));
	ipc_nil(&o);
	rc = client_call(&c, &o, &rep);
	client_reply_free(&rep);
	ipc_out_free(&o);
	client_close(&c);
	if (rc != EF_S_OK) {
		log_warnx("rotate: %s", ipc_status_name(rc));
		return -1;
	}
	for (;;) {
		if (status_of(url, st) != 0 || interrupted)
			return -1;
		if (st->indexed_to >= st->head)
			break;
		sleep_ms(100);
	}
	log_info("sealed and indexed %" PRIu64 " events in %.1f s", st->head,
	    (double)(now_ns() - t0) / 1e9);
	return 0;
}

static int
rm_index(const char *data_dir)
{
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/index'", data_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Restarts s repeat times (the index deleted first: baseline). */
static uint64_t rss_empty; /* of a stored with an empty log */

static int
restart_case(struct server *s, const struct opts *o, uint64_t n, int baseline)
{
	struct lat wall = { 0 };
	struct ipc_status_rep st;
	char name[128], cnt[32];
	uint64_t t0, rss = 0, read = 0, ixb = 0;
	unsigned r;

	for (r = 0; r < o->repeat && !interrupted; r++) {
		if (baseline && rm_index(s->data_dir) != 0)
			return -1;
		t0 = now_ns();
		if (server_start(s, &st) != 0)
			return -1;
		lat_add(&wall, (double)(now_ns() - t0) / 1e3);
		rss = proc_status_bytes(s->pid, "VmRSS");
		read = st.recovered_events;
		ixb = st.index_bytes;
		if (st.head != n)
			log_warnx("head %" PRIu64 ", expected %" PRIu64,
			    st.head, n);
		server_stop(s);
	}
	if (wall.n == 0)
		return -1;
	snprintf(name, sizeof(name), "%s_%s",
	    o->name ? o->name : "stored_restart",
	    baseline ? "noindex" : "sealed");
	(void)cnt;
	printf("%s_%s first_status_ms_p50=%.1f first_status_ms_max=%.1f "
	       "events=%" PRIu64 " read_from_log=%" PRIu64 " restarts=%zu "
	       "rss_mb=%.1f rss_empty_mb=%.1f rss_bytes_per_event=%.2f "
	       "index_bytes=%" PRIu64 " index_bytes_per_event=%.2f\n",
	    name, short_count(n, cnt), lat_pct(&wall, 0.5) / 1e3,
	    lat_pct(&wall, 1.0) / 1e3, n, read, wall.n, (double)rss / 1e6,
	    (double)rss_empty / 1e6,
	    n && rss > rss_empty ? (double)(rss - rss_empty) / (double)n : 0.0,
	    ixb, n ? (double)ixb / (double)n : 0.0);
	fflush(stdout);
	lat_free(&wall);
	return 0;
}

static int
cmd_restart(const struct opts *o)
{
	struct server srv;
	struct ipc_status_rep st;
	int rc = 1;

	server_init(&srv, "restart", o->data_dir);
	srv.segment_size = o->segment_size;
	if (server_start(&srv, &st) != 0)
		return 1;
	/* the resident set of a store with nothing in it, for reference
	 * (when --data-dir already holds events, of that store instead) */
	rss_empty = proc_status_bytes(srv.pid, "VmRSS");
	if (st.head < o->events &&
	    load(srv.url, o->events - st.head, o->streams, 2048, o->payload, 2,
	        NULL) < 0)
		goto out;
	if (seal_and_index(srv.url, &st) != 0)
		goto out;
	server_stop(&srv);
	if (restart_case(&srv, o, st.head, 0) != 0 ||
	    restart_case(&srv, o, st.head, 1) != 0)
		goto out;
	/* leave it indexed for the next run on the same --data-dir */
	if (server_start(&srv, &st) != 0 || seal_and_index(srv.url, &st) != 0)
		goto out;
	rc = 0;
out:
	server_stop(&srv);
	return rc;
}

/* ---- history ------------------------------------------------------------ */

/*
 * The figures of a store that has lived for a while, on one store of
 * --events N (default 20M): built in appends of 50 events round-robin
 * over N/1000 streams (so each stream's 1000 events are spread over the
 * whole log), sealed, indexed and archived but for --hot-segments sealed
 * segments, then HISTORY_TAIL more events left in the hot segment. Then:
 * restarts (time to first STATUS), ReadAll of the whole log, ReadStream
 * of whole streams, appends of --clients x --batch with the indexer and
 * archiver at work beside the same on an empty store, and last the
 * baseline restart with the index deleted (every segment read).
 */
#define HISTORY_TAIL 100000

/* Polls STATUS until all sealed segments but hot are archived. */
static int
wait_archived(const char *url, unsigned hot, struct ipc_status_rep *st)
{
	uint64_t t0 = now_ns(), last = UINT64_MAX;

	for (;;) {
		if (status_of(url, st) != 0 || interrupted)
			return -1;
		/* segments counts the one being written */
		if (st->archived_segments + hot + 1 >= st->segments)
			break;
		if (st->archived_segments != last)
			log_info("archived %" PRIu64 " of %" PRIu64
			         " segments",
			    st->archived_segments, st->segments - 1 - hot);
		last = st->archived_segments;
		sleep_ms(500);
	}
	log_info("archived %" PRIu64 " segments (%.0f MB as %.0f MB) in "
	         "%.1f s",
	    st->archived_segments, (double)st->archived_raw / 1e6,
	    (double)st->archived_bytes / 1e6, (double)(now_ns() - t0) / 1e9);
	return 0;
}

/* Up to max stream ids of the store, in id order, from LIST_STREAMS. */
static size_t
list_stream_ids(const char *url, char (*ids)[UUID_STR_LEN], size_t max,
    uint64_t min_count)
{
	struct ef_client c;
	struct client_reply rep;
	struct ipc_list_req lr;
	struct ipc_list_rep lp;
	struct ipc_stream_info si;
	struct ipc_out o;
	char after[UUID_STR_LEN];
	const char *why;
	size_t n = 0;
	uint32_t i;
	int more = 1;

	if (client_open(&c, url, CALL_TIMEOUT_MS) != 0)
		return 0;
	memset(&lr, 0, sizeof(lr));
	while (more && n < max && !interrupted) {
		lr.max_count = 1000;
		ipc_out_init(&o);
		ipc_request_begin(&o, EF_OP_LIST_STREAMS,
		    client_request_id(&c));
		ipc_list_req_encode(&o, &lr);
		if (client_call(&c, &o, &rep) != EF_S_OK ||
		    ipc_list_rep_decode(rep.in.body, &lp, &why) != 0) {
			ipc_out_free(&o);
			client_reply_free(&rep);
			break;
		}
		ipc_out_free(&o);
		more = lp.more && lp.nstreams > 0;
		for (i = 0; i < lp.nstreams; i++) {
			if (ipc_stream_info_decode(
			        &lp.streams->via.array.ptr[i], &si, &why) != 0)
				break;
			uuid_format(si.stream_id, after);
			if (si.event_count >= min_count && n < max)
				memcpy(ids[n++], after, UUID_STR_LEN);
		}
		lr.has_after = true;
		lr.after.ptr = after;
		lr.after.len = 36;
		client_reply_free(&rep);
	}
	client_close(&c);
	return n;
}

/* Reads count whole streams of the store; prints latency per stream. */
static int
read_streams(const char *url, const char *name, unsigned count)
{
	char(*ids)[UUID_STR_LEN];
	struct ef_client c;
	struct client_reply rep;
	struct ipc_read_rep rr;
	struct ipc_status_rep st0, st1;
	struct lat lat = { 0 };
	uint64_t rng = seed(), t0, from, got, total = 0;
	size_t n, i;
	int rc = -1;

	if ((ids = calloc(count * 8, UUID_STR_LEN)) == NULL)
		fatal("calloc");
	/* streams of at least 1000 events: the spread ones */
	n = list_stream_ids(url, ids, (size_t)count * 8, 1000);
	if (n == 0 || client_open(&c, url, CALL_TIMEOUT_MS) != 0) {
		log_warnx("read-stream: no stream of 1000 events");
		free(ids);
		return -1;
	}
	(void)status_of(url, &st0);
	for (i = 0; i < count && !interrupted; i++) {
		const char *sid = ids[splitmix64(&rng) % n];

		t0 = now_ns();
		for (from = 0, got = 1; got > 0 && from < 1000; from += got) {
			if (client_read_stream(&c, sid, from, 1000 - from,
			        EF_FORWARD, &rep, &rr) != EF_S_OK) {
				log_warnx("read-stream %s: %.*s", sid,
				    (int)rep.in.message.len,
				    rep.in.message.ptr);
				client_reply_free(&rep);
				goto out;
			}
			got = rr.nevents;
			client_reply_free(&rep);
		}
		if (from != 1000) {
			log_warnx("read-stream %s: %" PRIu64
			          " events, not 1000",
			    sid, from);
			goto out;
		}
		total += from;
		lat_add(&lat, (double)(now_ns() - t0) / 1e3);
	}
	(void)status_of(url, &st1);
	/* p50/p99: one whole 1000-event stream, all its requests */
	printf("%s p50_us=%.0f p99_us=%.0f max_us=%.0f streams_read=%zu "
	       "events=%" PRIu64 " cache_hits=%" PRIu64
	       " cache_misses=%" PRIu64 "\n",
	    name, lat_pct(&lat, 0.5), lat_pct(&lat, 0.99), lat_pct(&lat, 1.0),
	    lat.n, total, st1.cache_hits - st0.cache_hits,
	    st1.cache_misses - st0.cache_misses);
	fflush(stdout);
	rc = 0;
out:
	lat_free(&lat);
	client_close(&c);
	free(ids);
	return rc;
}

/*
 * Starts srv (segment_size, hot segments) and fills it with o->events
 * events: all but the last HISTORY_TAIL sealed, indexed and archived,
 * those in the hot segments. 0 with its status in *st, or -1.
 */
static int
history_build(const struct opts *o, struct server *srv,
    struct ipc_status_rep *st, const char *segment_size, const char *hot)
{
	uint64_t target = o->events, streams;

	/* every load (and a later run on the same --data-dir) appends to
	 * the same streams */
	load_streams_seed = 0x5eed5eed5eedull;
	server_init(srv, "history", o->data_dir);
	srv->segment_size = segment_size;
	srv->extra[0] = "--hot-segments";
	srv->extra[1] = hot;
	if (server_start(srv, st) != 0)
		return -1;
	rss_empty = proc_status_bytes(srv->pid, "VmRSS");
	streams = target / 1000 > 0 ? target / 1000 : 1;
	if (st->head + HISTORY_TAIL < target) {
		log_info("building %" PRIu64 " events over %" PRIu64
		         " streams",
		    target - HISTORY_TAIL - st->head, streams);
		if (load(srv->url, target - HISTORY_TAIL - st->head,
		        (unsigned)streams, 50, o->payload, 2, NULL) < 0)
			return -1;
	}
	if (seal_and_index(srv->url, st) != 0 ||
	    wait_archived(srv->url, o->hot_segments, st) != 0)
		return -1;
	if (st->head < target &&
	    load(srv->url, target - st->head, (unsigned)streams, 50,
	        o->payload, 2, NULL) < 0)
		return -1;
	if (status_of(srv->url, st) != 0)
		return -1;
	log_info("store: %" PRIu64 " events, %" PRIu64 " segments, %" PRIu64
	         " archived, indexed to %" PRIu64,
	    st->head, st->segments, st->archived_segments, st->indexed_to);
	return 0;
}

static int
cmd_history(const struct opts *o)
{
	struct server srv, empty;
	struct ipc_status_rep st;
	struct opts a = *o;
	char hot[32];
	unsigned r;
	int rc = 1;

	if (o->events < 2 * HISTORY_TAIL)
		fatalx("history: --events must be at least %d",
		    2 * HISTORY_TAIL);
	snprintf(hot, sizeof(hot), "%u", o->hot_segments);
	if (history_build(o, &srv, &st, o->segment_size, hot) != 0)
		goto out;
	server_stop(&srv);
	if (restart_case(&srv, o, st.head, 0) != 0)
		goto out;

	/* reads and appends on the store as it is after a restart */
	if (server_start(&srv, &st) != 0)
		goto out;
	a.runtime_dir = srv.runtime_dir;
	a.events = 0;
	a.repeat = 1;
	a.name = "history_read_all";
	if (cmd_read_all(&a) != 0 ||
	    read_streams(srv.url, "history_read_stream_1000", 200) != 0)
		goto out;
	/* appends here and on an empty store, alternated --repeat times
	 * so that both see the same machine */
	server_init(&empty, "history-empty", NULL);
	empty.segment_size = o->segment_size;
	empty.extra[0] = "--hot-segments";
	empty.extra[1] = hot;
	if (server_start(&empty, NULL) != 0)
		goto out;
	for (r = 0; r < o->repeat && !interrupted; r++) {
		a.runtime_dir = srv.runtime_dir;
		a.name = "history_append";
		if (cmd_append(&a, 0) != 0)
			break;
		a.runtime_dir = empty.runtime_dir;
		a.name = "empty_append";
		if (cmd_append(&a, 0) != 0)
			break;
	}
	server_stop(&empty);
	server_stop(&srv);
	if (r < o->repeat)
		goto out;

	/* the baseline: every segment read at start */
	if (o->baseline) {
		struct opts b = *o;

		b.repeat = 1;
		if (server_start(&srv, &st) != 0)
			goto out;
		server_stop(&srv);
		if (restart_case(&srv, &b, st.head, 1) != 0)
			goto out;
	}
	rc = 0;
out:
	server_stop(&srv);
	return rc;
}

/* ---- index-mem ---------------------------------------------------------- */

static int
cmd_index_mem(const struct opts *o)
{
	struct server srv;
	struct ipc_status_rep st0, st1;
	struct lat lat = { 0 };
	char name[128], cnt[32];
	uint64_t rss0, rss1, anon0, anon1, n = o->events;
	double rate;
	int rc = 1;

	if (o->events == 0)
		fatalx("index-mem: --events must be at least 1");
	server_init(&srv, "indexmem", NULL);
	if (server_start(&srv, &st0) != 0)
		return 1;
	rss0 = proc_status_bytes(srv.pid, "VmRSS");
	anon0 = proc_status_bytes(srv.pid, "RssAnon");
	rate = load(srv.url, n, o->streams, 500, o->payload, 2, &lat);
	if (rate < 0 || status_of(srv.url, &st1) != 0)
		goto out;
	sleep_ms(200);
	rss1 = proc_status_bytes(srv.pid, "VmRSS");
	anon1 = proc_status_bytes(srv.pid, "RssAnon");
	case_name(o, name, sizeof(name), "stored_index_mem_%s",
	    short_count(n, cnt));
	/* events_per_s and latency: of the bulk load (appends of 500) */
	printf(
	    "%s events_per_s=%.0f p50_us=%.0f p99_us=%.0f events=%" PRIu64
	    " streams=%u rss_bytes_per_event=%.1f anon_bytes_per_event=%.1f "
	    "index_bytes_per_event=%.1f rss_mb=%.0f anon_mb=%.0f "
	    "index_mb=%.0f\n",
	    name, rate, lat_pct(&lat, 0.5), lat_pct(&lat, 0.99), n, o->streams,
	    ((double)rss1 - (double)rss0) / (double)n,
	    ((double)anon1 - (double)anon0) / (double)n,
	    ((double)st1.index_bytes - (double)st0.index_bytes) / (double)n,
	    (double)rss1 / 1e6, (double)anon1 / 1e6,
	    (double)st1.index_bytes / 1e6);
	fflush(stdout);
	rc = 0;
out:
	lat_free(&lat);
	server_stop(&srv);
	return rc;
}

/* ---- main ----------------------------------------------------------------
 */

static uint64_t
parse_u64(const char *flag, const char *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0')
		fatalx("%s: not a number: %s", flag, v);
	return x;
}

static double
parse_secs(const char *flag, const char *v)
{
	char *end;
	double x = strtod(v, &end);

	if (end == v || *end != '\0' || x < 0 || x > 3600)
		fatalx("%s: not a number of seconds (0..3600): %s", flag, v);
	return x;
}

/* The long options: each sets a field of struct opts. */
enum opt_kind { OPT_UNSIGNED, OPT_U64, OPT_SECS, OPT_STR, OPT_FLAG };

static const struct optspec {
	const char *name; /* --name */
	enum opt_kind kind;
	size_t off; /* of its field in struct opts */
} optspecs[] = {
	{ "clients", OPT_UNSIGNED, offsetof(struct opts, clients) },
	{ "batch", OPT_UNSIGNED, offsetof(struct opts, batch) },
	{ "payload", OPT_UNSIGNED, offsetof(struct opts, payload) },
	{ "seconds", OPT_SECS, offsetof(struct opts, seconds) },
	{ "warmup", OPT_SECS, offsetof(struct opts, warmup) },
	{ "runtime-dir", OPT_STR, offsetof(struct opts, runtime_dir) },
	{ "data-dir", OPT_STR, offsetof(struct opts, data_dir) },
	{ "stored", OPT_STR, offsetof(struct opts, stored) },
	{ "events", OPT_U64, offsetof(struct opts, events) },
	{ "streams", OPT_UNSIGNED, offsetof(struct opts, streams) },
	{ "repeat", OPT_UNSIGNED, offsetof(struct opts, repeat) },
	{ "page", OPT_UNSIGNED, offsetof(struct opts, page) },
	{ "readers", OPT_UNSIGNED, offsetof(struct opts, readers) },
	{ "name", OPT_STR, offsetof(struct opts, name) },
	{ "shared-client", OPT_FLAG, offsetof(struct opts, shared) },
	{ "segment-size", OPT_STR, offsetof(struct opts, segment_size) },
	{ "hot-segments", OPT_UNSIGNED, offsetof(struct opts, hot_segments) },
	{ "baseline", OPT_FLAG, offsetof(struct opts, baseline) },
	{ "inflight", OPT_UNSIGNED, offsetof(struct opts, inflight) },
};
#define NOPTS (sizeof(optspecs) / sizeof(optspecs[0]))

/* Sets the field of o that option s names from its value v. */
static void
set_opt(const struct optspec *s, struct opts *o, const char *v)
{
	void *field = (char *)o + s->off;
	char flag[32];

	snprintf(flag, sizeof(flag), "--%s", s->name);
	switch (s->kind) {
	case OPT_UNSIGNED:
		*(unsigned *)field = (unsigned)parse_u64(flag, v);
		break;
	case OPT_U64:
		*(uint64_t *)field = parse_u64(flag, v);
		break;
	case OPT_SECS:
		*(double *)field = parse_secs(flag, v);
		break;
	case OPT_STR:
		*(const char **)field = v;
		break;
	case OPT_FLAG:
		*(int *)field = 1;
		break;
	}
	/* each command has its own default number of events */
	if (s->off == offsetof(struct opts, events))
		o->events_set = 1;
}

/*
 * The options of argv into o (they may come before or after the
 * command: GNU getopt); optind is left at the command. -1, or the exit
 * code (--help, a bad option).
 */
static int
parse_opts(int argc, char **argv, struct opts *o)
{
	struct option longopts[NOPTS + 2];
	size_t i;
	int ch;

	for (i = 0; i < NOPTS; i++)
		longopts[i] = (struct option){ optspecs[i].name,
			optspecs[i].kind == OPT_FLAG ? no_argument :
			                               required_argument,
			NULL, 256 + (int)i };
	longopts[NOPTS] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[NOPTS + 1] = (struct option){ NULL, 0, NULL, 0 };
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (ch == 'h') {
			fputs(usage_text, stdout);
			return 0;
		}
		if (ch < 256 || ch >= 256 + (int)NOPTS) {
			fputs(usage_text, stderr);
			return 2;
		}
		set_opt(&optspecs[ch - 256], o, optarg);
	}
	return -1;
}

static int
cmd_append_only(const struct opts *o)
{
	return cmd_append(o, 0);
}

static int
cmd_status(const struct opts *o)
{
	return cmd_append(o, 1);
}

/* The commands, with the number of events each loads by default. */
static const struct command {
	const char *name;
	uint64_t events; /* default --events */
	int (*run)(const struct opts *o);
} commands[] = {
	{ "append", 0, cmd_append_only },
	{ "pipeline", 0, cmd_pipeline },
	{ "status", 0, cmd_status },
	{ "read-all", 1000000, cmd_read_all },
	{ "recover", 5000000, cmd_recover },
	{ "restart", 5000000, cmd_restart },
	{ "history", 20000000, cmd_history },
	{ "index-mem", 2000000, cmd_index_mem },
};

/* Runs the command cmd with o; its exit code. */
static int
run_cmd(const char *cmd, struct opts *o)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name) != 0)
			continue;
		if (!o->events_set)
			o->events = commands[i].events;
		return commands[i].run(o);
	}
	fprintf(stderr, "eventfold-bench: unknown command %s\n\n%s", cmd,
	    usage_text);
	return 2;
}

int
main(int argc, char **argv)
{
	struct opts o = {
		.clients = 1,
		.batch = 1,
		.payload = 200,
		.seconds = 5,
		.warmup = 0.5,
		.streams = 1000,
		.repeat = 3,
		.page = 4096,
		.readers = 1,
		.hot_segments = 1,
		.inflight = 32,
		.segment_size = "64M",
	};
	struct sigaction sa;
	const char *cmd;
	int rc;

	log_init("eventfold-bench", 0);
	if ((rc = parse_opts(argc, argv, &o)) >= 0)
		return rc;
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	cmd = argv[optind];
	if (optind + 1 < argc)
		fatalx("unexpected argument %s (see --help)",
		    argv[optind + 1]);
	if (o.clients < 1 || o.clients > 4096 || o.batch < 1 ||
	    o.batch > IPC_MAX_EVENTS || o.payload > 60000 || o.streams < 1 ||
	    o.repeat < 1 || o.page < 1 || o.readers < 1 || o.readers > 64 ||
	    o.inflight < 1 || o.inflight > IPC_MAX_MANY)
		fatalx("an option is out of range (see --help)");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	server_find_stored(o.stored);
	atexit(server_cleanup);

	rc = run_cmd(cmd, &o);
	server_cleanup();
	nngx_fini();
	return interrupted ? 130 : rc;
}
