/* SPDX-License-Identifier: MIT */
/*
 * mirror_bench.c - eventfold-mirror-bench: the figures of
 * bench/mirror.sh for eventfold-mirrord (issue 14).
 *
 *   preload --runtime-dir DIR --events N --payload B
 *	appends N events of B-byte payloads to a running stored (appends
 *	of 500 events over 16 streams)
 *   plain --nats URL --stream S --events N --payload B [--replicas R]
 *	JetStream's own ceiling: a fresh stream S, and N messages of the
 *	size and headers mirrord sends (RecordedEvent of a B-byte
 *	payload, Nats-Msg-Id, Nats-Expected-Last-Sequence, the four
 *	Eventfold-* headers) published asynchronously with 4096 in flight,
 *	as mirrord does; prints events/s
 *   wait --nats URL --stream S --events N
 *	from now until stream S's last sequence reaches N (polls every
 *	5 ms; started beside mirrord, it times the catch-up); events/s
 *   latency --runtime-dir DIR --nats URL --stream S --events N --rate R
 *	    --payload B
 *	appends N single events at R/s and takes each from JetStream
 *	(an ordered push consumer of S from new messages): commit (the
 *	append's reply) to visible (delivered by JetStream), p50/p99/max
 *
 * One line per case: NAME events_per_s=N [p50_us=N p99_us=N ...].
 * A program, not a test: it asserts no timing.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bench.h"
#include "client.h"
#include "ipc.h"
#include "log.h"
#include "pbevent.h"
#include "urllist.h"
#include "uuid.h"

struct opts {
	const char *runtime_dir;
	const char *nats;
	const char *stream;
	uint64_t events;
	uint64_t payload;
	uint64_t rate;
	uint64_t replicas;
};

static uint8_t payload_buf[65536];

static void
die_nats(const char *what, natsStatus s)
{
	fprintf(stderr, "eventfold-mirror-bench: %s: %s\n", what,
	    natsStatus_GetText(s));
	exit(1);
}

static void
dial(const char *url, natsConnection **nc, jsCtx **js, int64_t pending)
{
	natsOptions *o = NULL;
	jsOptions jo;
	natsStatus s;
	char **urls = NULL;
	int n;

	if ((n = urllist_split(url, &urls)) <= 0)
		fatalx("no URL in %s", url);
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = pending;
	jo.Wait = 10000;
	if ((s = natsOptions_Create(&o)) != NATS_OK ||
	    (s = natsOptions_SetServers(o, (const char **)urls, n)) !=
	        NATS_OK ||
	    (s = natsConnection_Connect(nc, o)) != NATS_OK ||
	    (s = natsConnection_JetStream(js, *nc, &jo)) != NATS_OK)
		die_nats(url, s);
	natsOptions_Destroy(o);
	urllist_free(urls);
}

static uint64_t
store_url(const struct opts *o, struct ef_client *c)
{
	char url[4200];

	client_url(url, sizeof(url), o->runtime_dir, STORE_SOCK, NULL);
	if (client_open(c, url, 10000) != 0)
		fatalx("client_open %s", url);
	return 0;
}

/* Appends n events to stream sid; first position in *pos. */
static void
append(struct ef_client *c, const char *sid, unsigned n, size_t payload,
    uint64_t *rng, uint64_t *pos)
{
	static const uint8_t none[1];
	struct ipc_append_req r;
	struct ipc_proposed ev[500];
	char ids[500][UUID_STR_LEN];
	struct client_reply rep;
	struct ipc_append_rep ar;
	const char *why;
	unsigned i;
	int st;

	memset(&r, 0, sizeof(r));
	r.stream_id.ptr = sid;
	r.stream_id.len = UUID_STR_LEN - 1;
	r.kind = EF_EXPECT_ANY;
	r.nevents = n;
	r.events = ev;
	for (i = 0; i < n; i++) {
		rand_uuid_str(rng, ids[i]);
		ev[i].event_id.ptr = ids[i];
		ev[i].event_id.len = UUID_STR_LEN - 1;
		ev[i].type.ptr = "BenchEvent";
		ev[i].type.len = 10;
		ev[i].metadata = none;
		ev[i].metadata_len = 0;
		ev[i].payload = payload_buf;
		ev[i].payload_len = (uint32_t)payload;
	}
	while ((st = client_append(c, &r, &rep)) == EF_S_UNAVAILABLE)
		client_reply_free(&rep); /* the same ids: idempotent */
	if (st != EF_S_OK)
		fatalx("append: %.*s", (int)rep.in.message.len,
		    rep.in.message.ptr);
	if (pos != NULL) {
		if (rep.in.body == NULL ||
		    ipc_append_rep_decode(rep.in.body, &ar, &why) != 0)
			fatalx("append reply: %s", why);
		*pos = ar.first_pos;
	}
	client_reply_free(&rep);
}

static int
cmd_preload(const struct opts *o)
{
	struct ef_client c;
	char sids[16][UUID_STR_LEN];
	uint64_t rng = now_ns(), left = o->events, t0;
	unsigned k = 0, n;
	int i;

	store_url(o, &c);
	for (i = 0; i < 16; i++)
		rand_uuid_str(&rng, sids[i]);
	t0 = now_ns();
	while (left > 0) {
		n = left < 500 ? (unsigned)left : 500;
		append(&c, sids[k++ % 16], n, o->payload, &rng, NULL);
		left -= n;
	}
	printf("preload events=%" PRIu64 " events_per_s=%.0f\n", o->events,
	    o->events / ((now_ns() - t0) / 1e9));
	client_close(&c);
	return 0;
}

static volatile uint64_t acked_plain, failed_plain;

static void
plain_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *arg)
{
	if (pa != NULL)
		__atomic_add_fetch(&acked_plain, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&failed_plain, 1, __ATOMIC_RELAXED);
	natsMsg_Destroy(m);
}

/* Event number i, of ev's stream and payload, as the message
 * eventfold-mirrord would publish for it. */
static natsMsg *
plain_msg(struct ef_event *ev, uint64_t i)
{
	struct pbevent pe;
	char subj[128], num[24];
	natsMsg *m = NULL;
	natsStatus s;
	uint8_t *buf;
	size_t sz;

	uuid_random(ev->event_id);
	ev->global_position = i;
	ev->stream_version = i / 16;
	sz = pbevent_init(&pe, ev);
	if ((buf = malloc(sz)) == NULL)
		fatal("malloc");
	pbevent_pack(&pe, buf);
	snprintf(subj, sizeof(subj), "plainbench.%s", pe.sid);
	snprintf(num, sizeof(num), "%" PRIu64, i);
	if ((s = natsMsg_Create(&m, subj, NULL, (char *)buf, (int)sz)) !=
	    NATS_OK)
		die_nats("msg", s);
	free(buf);
	natsMsgHeader_Set(m, "Nats-Msg-Id", pe.eid);
	natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", num);
	natsMsgHeader_Set(m, "Eventfold-Position", num);
	natsMsgHeader_Set(m, "Eventfold-Stream-Id", pe.sid);
	natsMsgHeader_Set(m, "Eventfold-Stream-Version", num);
	natsMsgHeader_Set(m, "Eventfold-Type", pe.type);
	return m;
}

static int
cmd_plain(const struct opts *o)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsStreamConfig cfg;
	jsStreamInfo *si = NULL;
	jsOptions jo;
	jsPubOptions po;
	jsErrCode je = 0;
	natsStatus s;
	struct ef_event ev;
	const char *subjects[1] = { "plainbench.>" };
	uint64_t i, t0, t1;
	natsMsg *m;
	int tries;

	dial(o->nats, &nc, &js, 4096);
	js_DeleteStream(js, o->stream, NULL, NULL);
	jsStreamConfig_Init(&cfg);
	cfg.Name = o->stream;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Replicas = (int64_t)o->replicas;
	/* a new cluster may not have elected its meta leader yet */
	for (tries = 0;
	     (s = js_AddStream(&si, js, &cfg, NULL, &je)) != NATS_OK &&
	     tries < 60;
	     tries++)
		sleep(1);
	if (s != NATS_OK)
		die_nats("add stream", s);
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = 4096;
	jo.PublishAsync.AckHandler = plain_ack;
	jo.Wait = 10000;
	if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
		die_nats("jetstream", s);

	memset(&ev, 0, sizeof(ev));
	ev.type = "BenchEvent";
	ev.type_len = 10;
	ev.payload = payload_buf;
	ev.payload_len = (uint32_t)o->payload;
	ev.metadata = payload_buf;
	ev.recorded_at = 1764633600000;
	uuid_random(ev.stream_id);
	jsPubOptions_Init(&po);
	po.MaxWait = 10000;
	t0 = now_ns();
	for (i = 0; i < o->events; i++) {
		m = plain_msg(&ev, i);
		while ((s = js_PublishMsgAsync(js, &m, &po)) == NATS_TIMEOUT)
			;
		if (s != NATS_OK)
			die_nats("publish", s);
	}
	if ((s = js_PublishAsyncComplete(js, &po)) != NATS_OK)
		die_nats("complete", s);
	t1 = now_ns();
	printf("plain_publisher replicas=%" PRIu64 " events=%" PRIu64
	       " failed=%" PRIu64 " events_per_s=%.0f\n",
	    o->replicas, acked_plain, failed_plain,
	    o->events / ((t1 - t0) / 1e9));
	js_DeleteStream(js, o->stream, NULL, NULL);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return 0;
}

static uint64_t
last_seq(jsCtx *js, const char *stream)
{
	jsStreamInfo *si = NULL;
	uint64_t l = 0;

	if (js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK) {
		l = si->State.LastSeq;
		jsStreamInfo_Destroy(si);
	}
	return l;
}

static int
cmd_wait(const struct opts *o)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	uint64_t t0 = now_ns(), l;

	dial(o->nats, &nc, &js, 16);
	while ((l = last_seq(js, o->stream)) < o->events)
		nanosleep(&ts, NULL);
	printf("mirror_catchup events=%" PRIu64 " events_per_s=%.0f\n", l,
	    l / ((now_ns() - t0) / 1e9));
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return 0;
}

/* latency: commit (append reply) and visible (delivered) times by
 * position - base */
static uint64_t *t_commit, *t_visible, lat_base;
static uint64_t nvisible;

static void
on_visible(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
	const struct opts *o = arg;
	const char *v = NULL;
	uint64_t pos, t = now_ns();

	if (natsMsgHeader_Get(m, "Eventfold-Position", &v) == NATS_OK &&
	    v != NULL) {
		pos = strtoull(v, NULL, 10);
		if (pos >= lat_base && pos - lat_base < o->events &&
		    t_visible[pos - lat_base] == 0) {
			t_visible[pos - lat_base] = t;
			__atomic_add_fetch(&nvisible, 1, __ATOMIC_RELEASE);
		}
	}
	natsMsg_Destroy(m);
}

static int
cmd_latency(const struct opts *o)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode je = 0;
	natsStatus s;
	struct ef_client c;
	struct client_reply rep;
	struct ipc_status_rep st;
	char sid[UUID_STR_LEN];
	uint64_t rng = now_ns(), i, pos, t0, due, early = 0;
	uint64_t deadline;
	struct lat lat = { 0 };
	struct timespec ts;

	store_url(o, &c);
	if (client_status(&c, &rep, &st) != EF_S_OK)
		fatalx("status: no stored at %s", o->runtime_dir);
	lat_base = st.head;
	client_reply_free(&rep);
	t_commit = calloc(o->events, sizeof(*t_commit));
	t_visible = calloc(o->events, sizeof(*t_visible));
	if (t_commit == NULL || t_visible == NULL)
		fatal("calloc");
	dial(o->nats, &nc, &js, 16);
	jsSubOptions_Init(&so);
	so.Stream = o->stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverNew;
	if ((s = js_Subscribe(&sub, js, ">", on_visible, (void *)o, NULL, &so,
	         &je)) != NATS_OK)
		die_nats("subscribe", s);
	rand_uuid_str(&rng, sid);
	t0 = now_ns();
	for (i = 0; i < o->events; i++) {
		due = t0 + i * 1000000000ull / o->rate;
		while (now_ns() < due) {
			ts.tv_sec = 0;
			ts.tv_nsec = (long)(due - now_ns());
			nanosleep(&ts, NULL);
		}
		append(&c, sid, 1, o->payload, &rng, &pos);
		if (pos >= lat_base && pos - lat_base < o->events)
			t_commit[pos - lat_base] = now_ns();
	}
	deadline = now_ns() + 30ull * 1000000000;
	while (__atomic_load_n(&nvisible, __ATOMIC_ACQUIRE) < o->events &&
	    now_ns() < deadline)
		usleep(10000);
	for (i = 0; i < o->events; i++) {
		if (t_commit[i] == 0 || t_visible[i] == 0)
			continue;
		if (t_visible[i] < t_commit[i]) {
			early++; /* delivered before the append's reply */
			lat_add(&lat, 0);
		} else
			lat_add(&lat,
			    (double)(t_visible[i] - t_commit[i]) / 1e3);
	}
	if (lat.n == 0)
		fatalx("no event seen in JetStream");
	printf("commit_to_visible rate=%" PRIu64 " events=%" PRIu64
	       " seen=%zu p50_us=%.0f p99_us=%.0f max_us=%.0f"
	       " before_reply=%" PRIu64 "\n",
	    o->rate, o->events, lat.n, lat_pct(&lat, 0.50),
	    lat_pct(&lat, 0.99), lat_pct(&lat, 1), early);
	lat_free(&lat);
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	client_close(&c);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: eventfold-mirror-bench preload|plain|wait|"
	    "latency [--runtime-dir DIR] [--nats URL]\n"
	    "       [--stream S] [--events N] [--payload B] [--rate R] "
	    "[--replicas R]\n(see bench/mirror_bench.c)\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct opts o = { "var/run", "nats://127.0.0.1:4222", "EVENTFOLD",
		10000, 200, 1000, 1 };
	int i;

	log_init("eventfold-mirror-bench", 0);
	if (argc < 2)
		usage();
	for (i = 2; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--runtime-dir"))
			o.runtime_dir = argv[++i];
		else if (!strcmp(argv[i], "--nats"))
			o.nats = argv[++i];
		else if (!strcmp(argv[i], "--stream"))
			o.stream = argv[++i];
		else if (!strcmp(argv[i], "--events"))
			o.events = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--payload"))
			o.payload = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rate"))
			o.rate = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--replicas"))
			o.replicas = strtoull(argv[++i], NULL, 10);
		else
			usage();
	}
	if (o.payload > sizeof(payload_buf) || o.events == 0 || o.rate == 0)
		usage();
	memset(payload_buf, 'x', sizeof(payload_buf));
	if (!strcmp(argv[1], "preload"))
		return cmd_preload(&o);
	if (!strcmp(argv[1], "plain"))
		return cmd_plain(&o);
	if (!strcmp(argv[1], "wait"))
		return cmd_wait(&o);
	if (!strcmp(argv[1], "latency"))
		return cmd_latency(&o);
	usage();
	return 2;
}
