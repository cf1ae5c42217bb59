/* SPDX-License-Identifier: MIT */
/*
 * grpc_bench.c - the gRPC benchmark of eventfold-gatewayd, a client on
 * the gRPC C core API (the Python client is far slower than the
 * gateway, so it cannot measure it).
 *
 *   grpc_bench [-t ADDR] [-s SECS] [append N...] [sub SUBS RATE]
 *
 * append N: N client threads, each with its own channel, append one
 * event (a 200-byte payload, like the Redis XADD peer) per call, with
 * expected version any, for SECS seconds. Prints
 *   grpc_append_cN events_per_s=... p50_us=... p99_us=...
 * (latency of one Append call, durable commit included).
 *
 * sub SUBS RATE: SUBS SubscribeAll streams from the head, while four
 * appender threads write RATE events/s in batches of 10 for SECS
 * seconds. Latency is commit -> delivery: from the moment the append
 * reply (the durable commit) reached the appender to the moment each
 * subscriber received the event, clamped at 0 when delivery wins. Prints
 *   grpc_sub_SUBSx_RATE events_per_s=... p50_us=... p99_us=...
 * where events_per_s is the delivered rate over all subscribers.
 *
 * check N: the same with the no-op RPC grpc.health.v1.Health/Check (an
 * empty request, answered by the gateway without stored): the gRPC
 * core's own ceiling on this machine, printed as grpc_check_cN.
 *
 * Without modes it runs: append 1, append 8, append 32, sub 100 10000.
 * Start stored and gatewayd first (bench/run.sh or by hand).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "eventfold.pb-c.h"
#include "util.h"
#include "uuid.h"

#define PAYLOAD_LEN 200
#define SUB_BATCH   10
#define APPENDERS   4

static const char *target = "127.0.0.1:2113";
static double secs = 5.0;

/*
 * What one client thread calls on: a channel of its own (no shared
 * subchannel), a completion queue it plucks, and the method it calls,
 * registered on the channel (NULL if none).
 */
struct conn {
	grpc_channel *ch;
	grpc_completion_queue *cq;
	void *m;
};

static void
conn_open(struct conn *c, const char *method)
{
	grpc_channel_credentials *cr = grpc_insecure_credentials_create();
	grpc_arg arg;
	grpc_channel_args args;

	memset(&arg, 0, sizeof(arg));
	arg.type = GRPC_ARG_INTEGER;
	arg.key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
	arg.value.integer = 1;
	args.num_args = 1;
	args.args = &arg;
	c->ch = grpc_channel_create(target, cr, &args);
	grpc_channel_credentials_release(cr);
	c->cq = grpc_completion_queue_create_for_pluck(NULL);
	c->m = method != NULL ?
	    grpc_channel_register_call(c->ch, method, NULL, NULL) :
	    NULL;
}

/* Shuts the queue down, drains and destroys it, then the channel. */
static void
conn_close(struct conn *c)
{
	grpc_completion_queue_shutdown(c->cq);
	while (grpc_completion_queue_pluck(c->cq, NULL,
	           gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
	           .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(c->cq);
	grpc_channel_destroy(c->ch);
}

static grpc_byte_buffer *
bb_from(const uint8_t *p, size_t n)
{
	grpc_slice s = grpc_slice_from_copied_buffer((const char *)p, n);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);

	grpc_slice_unref(s);
	return bb;
}

static grpc_slice
bb_read(grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;

	grpc_byte_buffer_reader_init(&r, bb);
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	return s;
}

/*
 * One unary call of c's method, synchronous on its queue. Returns the
 * gRPC status; *resp gets the reply (caller destroys) when not NULL.
 */
static int
unary(struct conn *c, const uint8_t *req, size_t len, grpc_byte_buffer **resp)
{
	grpc_op ops[6], *op = ops;
	grpc_metadata_array imd, tmd;
	grpc_byte_buffer *sendbb = bb_from(req, len), *recvbb = NULL;
	grpc_status_code st = GRPC_STATUS_UNKNOWN;
	grpc_slice details;
	grpc_call *call;
	grpc_event ev;

	grpc_metadata_array_init(&imd);
	grpc_metadata_array_init(&tmd);
	call = grpc_channel_create_registered_call(c->ch, NULL,
	    GRPC_PROPAGATE_DEFAULTS, c->cq, c->m,
	    gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	        gpr_time_from_seconds(30, GPR_TIMESPAN)),
	    NULL);
	memset(ops, 0, sizeof(ops));
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op++;
	op->op = GRPC_OP_SEND_MESSAGE;
	op->data.send_message.send_message = sendbb;
	op++;
	op->op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	op++;
	op->op = GRPC_OP_RECV_INITIAL_METADATA;
	op->data.recv_initial_metadata.recv_initial_metadata = &imd;
	op++;
	op->op = GRPC_OP_RECV_MESSAGE;
	op->data.recv_message.recv_message = &recvbb;
	op++;
	op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op->data.recv_status_on_client.trailing_metadata = &tmd;
	op->data.recv_status_on_client.status = &st;
	op->data.recv_status_on_client.status_details = &details;
	op++;
	grpc_call_start_batch(call, ops, (size_t)(op - ops), call, NULL);
	ev = grpc_completion_queue_pluck(c->cq, call,
	    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (!ev.success)
		st = GRPC_STATUS_UNKNOWN;
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&imd);
	grpc_metadata_array_destroy(&tmd);
	grpc_byte_buffer_destroy(sendbb);
	if (resp != NULL)
		*resp = recvbb;
	else if (recvbb != NULL)
		grpc_byte_buffer_destroy(recvbb);
	grpc_call_unref(call);
	return (int)st;
}

/* An AppendRequest of n events on stream sid, expected version any. */
static size_t
append_req(uint8_t **buf, const char *sid, int n, const uint8_t *payload,
    size_t plen)
{
	Eventfold__AppendRequest r = EVENTFOLD__APPEND_REQUEST__INIT;
	Eventfold__ExpectedVersion ev = EVENTFOLD__EXPECTED_VERSION__INIT;
	Eventfold__Empty empty = EVENTFOLD__EMPTY__INIT;
	Eventfold__ProposedEvent pe[SUB_BATCH], *pp[SUB_BATCH];
	char ids[SUB_BATCH][UUID_STR_LEN];
	uint8_t u[UUID_LEN];
	size_t len;
	int i;

	ev.kind_case = EVENTFOLD__EXPECTED_VERSION__KIND_ANY;
	ev.any = &empty;
	r.stream_id = (char *)sid;
	r.expected_version = &ev;
	for (i = 0; i < n; i++) {
		eventfold__proposed_event__init(&pe[i]);
		uuid_random(u);
		uuid_format(u, ids[i]);
		pe[i].event_id = ids[i];
		pe[i].event_type = (char *)"BenchEvent";
		pe[i].payload.data = (uint8_t *)payload;
		pe[i].payload.len = plen;
		pp[i] = &pe[i];
	}
	r.n_events = (size_t)n;
	r.events = pp;
	len = eventfold__append_request__get_packed_size(&r);
	*buf = realloc(*buf, len);
	eventfold__append_request__pack(&r, *buf);
	return len;
}

/*
 * The Append call of req (len bytes) on c, whose method is Append: its
 * response (the caller frees it), or NULL on an error. *t gets the time
 * the reply came.
 */
static Eventfold__AppendResponse *
append_call(struct conn *c, const uint8_t *req, size_t len, uint64_t *t)
{
	Eventfold__AppendResponse *r;
	grpc_byte_buffer *resp = NULL;
	grpc_slice sl;
	int st;

	st = unary(c, req, len, &resp);
	*t = now_ns();
	if (st != 0 || resp == NULL) {
		if (resp != NULL)
			grpc_byte_buffer_destroy(resp);
		return NULL;
	}
	sl = bb_read(resp);
	grpc_byte_buffer_destroy(resp);
	r = eventfold__append_response__unpack(NULL, GRPC_SLICE_LENGTH(sl),
	    GRPC_SLICE_START_PTR(sl));
	grpc_slice_unref(sl);
	return r;
}

/* append mode */

struct appender {
	pthread_t thr;
	int check; /* Health/Check instead of Append */
	struct lat lat;
	int errors;
	uint64_t deadline;
};

static void *
append_main(void *arg)
{
	struct appender *a = arg;
	struct conn c;
	uint8_t payload[PAYLOAD_LEN], *req = NULL, u[UUID_LEN];
	char sid[UUID_STR_LEN];
	uint64_t t0;
	size_t len;

	conn_open(&c,
	    a->check ? "/grpc.health.v1.Health/Check" :
	               "/eventfold.EventStore/Append");
	memset(payload, 'x', sizeof(payload));
	uuid_random(u);
	uuid_format(u, sid);
	while ((t0 = now_ns()) < a->deadline) {
		len = a->check ?
		    0 :
		    append_req(&req, sid, 1, payload, sizeof(payload));
		t0 = now_ns();
		if (unary(&c, req, len, NULL) != 0) {
			a->errors++;
			continue;
		}
		lat_add(&a->lat, (double)(now_ns() - t0) / 1e3);
	}
	free(req);
	conn_close(&c);
	return NULL;
}

static void
bench_append(int clients, int check)
{
	struct appender *as = calloc((size_t)clients, sizeof(*as));
	struct lat all = { 0 };
	uint64_t start, elapsed;
	int i, errors = 0;

	/* warm up one connection and the server */
	start = now_ns();
	for (i = 0; i < clients; i++) {
		as[i].deadline = start + (uint64_t)(secs * 1e9);
		as[i].check = check;
		pthread_create(&as[i].thr, NULL, append_main, &as[i]);
	}
	for (i = 0; i < clients; i++) {
		pthread_join(as[i].thr, NULL);
		lat_merge(&all, &as[i].lat);
		errors += as[i].errors;
		lat_free(&as[i].lat);
	}
	elapsed = now_ns() - start;
	printf("grpc_%s_c%d events_per_s=%.0f p50_us=%.0f p99_us=%.0f "
	       "calls=%zu errors=%d\n",
	    check ? "check" : "append", clients,
	    (double)all.n * 1e9 / (double)elapsed, lat_pct(&all, 0.50),
	    lat_pct(&all, 0.99), all.n, errors);
	fflush(stdout);
	lat_free(&all);
	free(as);
}

/* subscription latency mode */

static uint64_t *ack_ns; /* by position - base: commit ack time */
static uint64_t ack_base, ack_cap;
static uint64_t last_pos_written; /* + 1; 0 = none; atomic */
static int appenders_done;        /* atomic */

struct subscriber {
	pthread_t thr;
	uint64_t from;
	uint64_t *lat;
	size_t n, cap;
	uint64_t got;
	int caught_up;
	volatile int *ready;
};

/*
 * One SubscribeAll message m, which came at time t: counts a caught-up
 * mark, or records (position, arrival) of an event (its position into
 * *pos) whose append is tracked. The latency is computed after the run,
 * once every ack is recorded: spinning here for the ack would starve
 * the appenders of CPU.
 */
static void
sub_record(struct subscriber *s, const Eventfold__SubscribeResponse *m,
    uint64_t t, uint64_t *pos)
{
	if (m->content_case ==
	    EVENTFOLD__SUBSCRIBE_RESPONSE__CONTENT_CAUGHT_UP) {
		s->caught_up = 1;
		__atomic_add_fetch(s->ready, 1, __ATOMIC_RELAXED);
		return;
	}
	if (m->content_case != EVENTFOLD__SUBSCRIBE_RESPONSE__CONTENT_EVENT)
		return;
	*pos = m->event->global_position;
	s->got++;
	if (*pos < ack_base || *pos - ack_base >= ack_cap)
		return;
	if (s->n + 2 > s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		s->lat = realloc(s->lat, s->cap * sizeof(*s->lat));
	}
	s->lat[s->n++] = *pos;
	s->lat[s->n++] = t;
}

/* Cancels call and waits for its status; frees imd. */
static void
sub_end_call(grpc_call *call, grpc_completion_queue *cq,
    grpc_metadata_array *imd)
{
	grpc_metadata_array tmd;
	grpc_status_code st;
	grpc_slice details;
	grpc_op ops[1];
	int tag = 1;

	grpc_metadata_array_init(&tmd);
	grpc_call_cancel(call, NULL);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &tmd;
	ops[0].data.recv_status_on_client.status = &st;
	ops[0].data.recv_status_on_client.status_details = &details;
	grpc_call_start_batch(call, ops, 1, &tag, NULL);
	grpc_completion_queue_pluck(cq, &tag,
	    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(imd);
	grpc_metadata_array_destroy(&tmd);
}

static void *
sub_main(void *arg)
{
	struct subscriber *s = arg;
	struct conn c;
	Eventfold__SubscribeAllRequest r =
	    EVENTFOLD__SUBSCRIBE_ALL_REQUEST__INIT;
	Eventfold__SubscribeResponse *m;
	grpc_metadata_array imd;
	grpc_byte_buffer *sendbb, *recvbb;
	grpc_slice sl;
	grpc_op ops[4];
	grpc_call *call;
	uint8_t buf[32];
	uint64_t t, pos = 0, drain_end = 0, lw;
	int done;
	int tag = 1;

	conn_open(&c, NULL);
	grpc_metadata_array_init(&imd);
	r.from_position = s->from;
	sendbb = bb_from(buf, eventfold__subscribe_all_request__pack(&r, buf));
	call = grpc_channel_create_call(c.ch, NULL, GRPC_PROPAGATE_DEFAULTS,
	    c.cq,
	    grpc_slice_from_static_string(
	        "/eventfold.EventStore/SubscribeAll"),
	    NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = sendbb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
	grpc_call_start_batch(call, ops, 4, &tag, NULL);
	grpc_completion_queue_pluck(c.cq, &tag,
	    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	for (;;) {
		recvbb = NULL;
		memset(ops, 0, sizeof(ops));
		ops[0].op = GRPC_OP_RECV_MESSAGE;
		ops[0].data.recv_message.recv_message = &recvbb;
		grpc_call_start_batch(call, ops, 1, &tag, NULL);
		if (!grpc_completion_queue_pluck(c.cq, &tag,
		        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
		            gpr_time_from_seconds(10, GPR_TIMESPAN)),
		        NULL)
		         .success ||
		    recvbb == NULL)
			break;
		t = now_ns();
		sl = bb_read(recvbb);
		grpc_byte_buffer_destroy(recvbb);
		m = eventfold__subscribe_response__unpack(NULL,
		    GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
		grpc_slice_unref(sl);
		if (m == NULL)
			break;
		sub_record(s, m, t, &pos);
		eventfold__subscribe_response__free_unpacked(m, NULL);
		done = __atomic_load_n(&appenders_done, __ATOMIC_ACQUIRE);
		lw = __atomic_load_n(&last_pos_written, __ATOMIC_RELAXED);
		if (done && lw && pos + 1 >= lw)
			break;
		if (done && drain_end == 0)
			drain_end = now_ns() + 10000000000ull;
		if (drain_end && now_ns() > drain_end)
			break;
	}
	sub_end_call(call, c.cq, &imd);
	grpc_byte_buffer_destroy(sendbb);
	grpc_call_unref(call);
	conn_close(&c);
	return NULL;
}

struct paced {
	pthread_t thr;
	double rate; /* events/s for this thread */
	uint64_t deadline;
	int errors;
};

static void *
paced_main(void *arg)
{
	struct paced *p = arg;
	struct conn c;
	Eventfold__AppendResponse *r;
	uint8_t payload[PAYLOAD_LEN], *req = NULL, u[UUID_LEN];
	char sid[UUID_STR_LEN];
	uint64_t start = now_ns(), sent = 0, due, t, pos, last, cur;
	size_t len;

	conn_open(&c, "/eventfold.EventStore/Append");
	memset(payload, 'x', sizeof(payload));
	uuid_random(u);
	uuid_format(u, sid);
	while ((t = now_ns()) < p->deadline) {
		due = start + (uint64_t)((double)sent * 1e9 / p->rate);
		if (t < due) {
			usleep((useconds_t)((due - t) / 1000));
			continue;
		}
		len = append_req(&req, sid, SUB_BATCH, payload,
		    sizeof(payload));
		if ((r = append_call(&c, req, len, &t)) == NULL) {
			p->errors++;
			continue;
		}
		for (pos = r->first_global_position;
		     pos <= r->last_global_position; pos++)
			if (pos >= ack_base && pos - ack_base < ack_cap)
				__atomic_store_n(&ack_ns[pos - ack_base], t,
				    __ATOMIC_RELEASE);
		last = r->last_global_position + 1;
		cur = __atomic_load_n(&last_pos_written, __ATOMIC_RELAXED);
		while (last > cur &&
		    !__atomic_compare_exchange_n(&last_pos_written, &cur, last,
		        0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
		eventfold__append_response__free_unpacked(r, NULL);
		sent += SUB_BATCH;
	}
	free(req);
	conn_close(&c);
	return NULL;
}

/* The head of the log: appends one event (on c, its method Append) and
 * returns the position after it; exits if it cannot. */
static uint64_t
bench_head(struct conn *c)
{
	uint8_t *req = NULL, payload[PAYLOAD_LEN];
	Eventfold__AppendResponse *r;
	uint64_t head, t;
	size_t len;

	memset(payload, 'x', sizeof(payload));
	len = append_req(&req, "00000000-0000-4000-8000-000000000001", 1,
	    payload, sizeof(payload));
	if ((r = append_call(c, req, len, &t)) == NULL) {
		fprintf(stderr, "grpc_bench: cannot append to %s\n", target);
		exit(1);
	}
	head = r->last_global_position + 1;
	eventfold__append_response__free_unpacked(r, NULL);
	free(req);
	return head;
}

static void
bench_sub(int nsubs, double rate)
{
	struct subscriber *ss = calloc((size_t)nsubs, sizeof(*ss));
	struct paced ps[APPENDERS];
	volatile int ready = 0;
	struct lat all = { 0 };
	uint64_t head, start, elapsed, got = 0, a, t;
	struct conn c;
	size_t k;
	int i, errors = 0;

	conn_open(&c, "/eventfold.EventStore/Append");
	head = bench_head(&c);

	ack_base = head;
	ack_cap = (uint64_t)(rate * secs * 1.5) + 10000;
	ack_ns = calloc(ack_cap, sizeof(*ack_ns));
	last_pos_written = 0;
	appenders_done = 0;
	for (i = 0; i < nsubs; i++) {
		ss[i].from = head;
		ss[i].ready = &ready;
		pthread_create(&ss[i].thr, NULL, sub_main, &ss[i]);
	}
	while (__atomic_load_n(&ready, __ATOMIC_RELAXED) < nsubs)
		usleep(1000);
	start = now_ns();
	for (i = 0; i < APPENDERS; i++) {
		ps[i].rate = rate / APPENDERS;
		ps[i].deadline = start + (uint64_t)(secs * 1e9);
		ps[i].errors = 0;
		pthread_create(&ps[i].thr, NULL, paced_main, &ps[i]);
	}
	for (i = 0; i < APPENDERS; i++) {
		pthread_join(ps[i].thr, NULL);
		errors += ps[i].errors;
	}
	__atomic_store_n(&appenders_done, 1, __ATOMIC_RELEASE);
	for (i = 0; i < nsubs; i++) {
		pthread_join(ss[i].thr, NULL);
		for (k = 0; k + 1 < ss[i].n; k += 2) {
			a = ack_ns[ss[i].lat[k] - ack_base];
			if (a == 0)
				continue; /* the append's reply never came */
			t = ss[i].lat[k + 1];
			lat_add(&all, t > a ? (double)(t - a) / 1e3 : 0);
		}
		got += ss[i].got;
		free(ss[i].lat);
	}
	elapsed = now_ns() - start;
	printf("grpc_sub_%dx%.0f events_per_s=%.0f p50_us=%.0f p99_us=%.0f "
	       "written=%" PRIu64 " delivered=%" PRIu64 " errors=%d\n",
	    nsubs, rate, (double)got * 1e9 / (double)elapsed,
	    lat_pct(&all, 0.50), lat_pct(&all, 0.99),
	    last_pos_written > head ? last_pos_written - head : 0, got,
	    errors);
	fflush(stdout);
	lat_free(&all);
	free(ss);
	free(ack_ns);
	conn_close(&c);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: grpc_bench [-t ADDR] [-s SECS] "
	    "[append N ...] [check N ...] [sub SUBS RATE ...]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	int c, i, ran = 0;

	while ((c = getopt(argc, argv, "t:s:h")) != -1) {
		switch (c) {
		case 't':
			target = optarg;
			break;
		case 's':
			secs = atof(optarg);
			break;
		default:
			usage();
		}
	}
	grpc_init();
	for (i = optind; i < argc; i++) {
		if (strcmp(argv[i], "append") == 0 && i + 1 < argc) {
			bench_append(atoi(argv[++i]), 0);
			ran = 1;
		} else if (strcmp(argv[i], "check") == 0 && i + 1 < argc) {
			bench_append(atoi(argv[++i]), 1);
			ran = 1;
		} else if (strcmp(argv[i], "sub") == 0 && i + 2 < argc) {
			bench_sub(atoi(argv[i + 1]), atof(argv[i + 2]));
			i += 2;
			ran = 1;
		} else
			usage();
	}
	if (!ran) {
		bench_append(1, 0);
		bench_append(8, 0);
		bench_append(32, 0);
		bench_sub(100, 10000);
	}
	grpc_shutdown();
	return 0;
}
