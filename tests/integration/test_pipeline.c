/* SPDX-License-Identifier: MIT */
/*
 * test_pipeline.c - the pipelined client (libcommon/pipeline.h) against
 * a real eventfold-stored: 64 threads sharing one pipeline each get
 * their own results (the positions they are given hold their events,
 * their streams' versions are contiguous), appends really share
 * messages, every callback runs exactly once, a stored that stops
 * answering (SIGSTOP) ends every append by its deadline with
 * UNAVAILABLE, and kill -9 and restart under load gives each caller its
 * own result or UNAVAILABLE, never another's.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "pipeline.h"

TestSuite(pipeline, .fini = h_cleanup, .timeout = 180);

#define THREADS 64

static struct h_stored sd;
static struct ef_client cl;
static struct pipeline pl;

struct job {
	struct pipeline_req rq;
	sem_t done;
	int calls; /* atomic: callbacks run */
	int status;
	char msg[256];
	struct ipc_append_rep rep;
};

struct worker {
	pthread_t thr;
	int idx;
	int n; /* appends to make (0: until stop) */
	volatile int *stop;
	char stream[UUID_STR_LEN];
	/* what came back */
	int ok, unavailable, other, lost, twice;
	char error[256];
	uint64_t *pos; /* first position of each OK append */
	char (*ids)[UUID_STR_LEN];
	int nok;
	uint64_t last; /* the stream's last version + 1 */
};

static void
job_done(struct pipeline_req *rq, const struct ipc_result *res)
{
	struct job *j = rq->arg;
	const char *why;

	j->status = res->status;
	snprintf(j->msg, sizeof(j->msg), "%.*s", (int)res->message.len,
	    res->message.ptr ? res->message.ptr : "");
	if (res->status == EF_S_OK &&
	    (res->body == NULL ||
	        ipc_append_rep_decode(res->body, &j->rep, &why) != 0))
		j->status = -1;
	__atomic_add_fetch(&j->calls, 1, __ATOMIC_SEQ_CST);
	sem_post(&j->done);
}

/* One append of one event through the pipeline; waits for it. */
static int
one(struct worker *w, struct job *j, const char *id, int kind,
    uint64_t version)
{
	struct ipc_append_req r;
	struct ipc_proposed p;
	struct timespec ts;

	memset(&p, 0, sizeof(p));
	p.event_id.ptr = id;
	p.event_id.len = (uint32_t)strlen(id);
	p.type.ptr = "Piped";
	p.type.len = 5;
	p.payload = (const uint8_t *)w->stream;
	p.payload_len = (uint32_t)strlen(w->stream);
	memset(&r, 0, sizeof(r));
	r.stream_id.ptr = w->stream;
	r.stream_id.len = (uint32_t)strlen(w->stream);
	r.kind = (uint8_t)kind;
	r.version = version;
	r.nevents = 1;
	r.events = &p;
	j->calls = 0;
	j->rq.arg = j;
	j->rq.done = job_done;
	pipeline_req_set(&j->rq, &r);
	pipeline_submit(&pl, &j->rq);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	while (sem_timedwait(&j->done, &ts) != 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct job j;
	char id[UUID_STR_LEN];
	int k;

	memset(&j, 0, sizeof(j));
	sem_init(&j.done, 0, 0);
	ipc_out_init(&j.rq.out);
	for (k = 0; w->n == 0 ? !*w->stop : k < w->n; k++) {
		h_uuid(id);
		/* exact versions where the stream's state is known */
		if (one(w, &j, id,
		        w->stop     ? EF_EXPECT_ANY :
		            w->last ? EF_EXPECT_EXACT :
		                      EF_EXPECT_NO_STREAM,
		        w->last ? w->last - 1 : 0) != 0) {
			w->lost++;
			snprintf(w->error, sizeof(w->error),
			    "append %d: no "
			    "callback in 30 s",
			    k);
			break;
		}
		if (j.status == EF_S_OK) {
			memcpy(w->ids[w->nok], id, UUID_STR_LEN);
			w->pos[w->nok++] = j.rep.first_pos;
			w->ok++;
			w->last = j.rep.last_version + 1;
		} else if (j.status == EF_S_UNAVAILABLE)
			w->unavailable++;
		else {
			w->other++;
			snprintf(w->error, sizeof(w->error),
			    "append %d: %s: "
			    "%.200s",
			    k, ipc_status_name(j.status), j.msg);
		}
	}
	/* a second callback would come now or never */
	h_sleep_ms(50);
	if (__atomic_load_n(&j.calls, __ATOMIC_SEQ_CST) > 1)
		w->twice++;
	ipc_out_free(&j.rq.out);
	sem_destroy(&j.done);
	return NULL;
}

static struct worker ws[THREADS];

static void
run(int n, volatile int *stop, int cap)
{
	int i;

	for (i = 0; i < THREADS; i++) {
		memset(&ws[i], 0, sizeof(ws[i]));
		ws[i].idx = i;
		ws[i].n = n;
		ws[i].stop = stop;
		h_uuid(ws[i].stream);
		ws[i].pos = calloc((size_t)cap, sizeof(*ws[i].pos));
		ws[i].ids = calloc((size_t)cap, UUID_STR_LEN);
		cr_assert_eq(pthread_create(&ws[i].thr, NULL, worker_main,
		                 &ws[i]),
		    0);
	}
}

static void
join_and_check(void)
{
	struct h_event *evs;
	size_t n;
	int i, k;

	for (i = 0; i < THREADS; i++)
		pthread_join(ws[i].thr, NULL);
	cr_assert_eq(h_read_all(&cl, 0, &evs, &n), EF_S_OK);
	for (i = 0; i < THREADS; i++) {
		struct worker *w = &ws[i];

		cr_assert_eq(w->lost, 0, "thread %d: %s", i, w->error);
		cr_assert_eq(w->twice, 0, "thread %d: a callback ran twice",
		    i);
		cr_assert_eq(w->other, 0, "thread %d: %s", i, w->error);
		for (k = 0; k < w->nok; k++) {
			uint8_t u[UUID_LEN];

			cr_assert_lt(w->pos[k], n);
			uuid_parse(w->ids[k], 36, u);
			cr_assert_arr_eq(evs[w->pos[k]].event_id, u, UUID_LEN,
			    "thread %d append %d: position %llu holds "
			    "another's event",
			    i, k, (unsigned long long)w->pos[k]);
		}
		free(w->pos);
		free(w->ids);
	}
	h_events_free(evs, n);
}

static void
start(int timeout_ms)
{
	h_start_fresh(&sd, &cl, NULL, 10000);
	cr_assert_eq(pipeline_open(&pl, sd.store_url, timeout_ms), 0);
}

Test(pipeline, threads_share_messages_and_get_their_own_results)
{
	struct h_event *evs;
	size_t n;
	int i, k;

	start(10000);
	run(40, NULL, 40);
	join_and_check();
	for (i = 0; i < THREADS; i++) {
		cr_assert_eq(ws[i].ok, 40, "thread %d: %d ok, %d unavailable",
		    i, ws[i].ok, ws[i].unavailable);
		cr_assert_eq(h_read_stream(&cl, ws[i].stream, 0, &evs, &n),
		    EF_S_OK);
		cr_assert_eq(n, 40);
		for (k = 0; k < 40; k++)
			cr_assert_eq(evs[k].version, (uint64_t)k);
		h_events_free(evs, n);
	}
	cr_assert_lt(__atomic_load_n(&pl.messages, __ATOMIC_RELAXED),
	    (uint64_t)THREADS * 40, "no message carried two appends");
	pipeline_close(&pl);
}

Test(pipeline, a_stopped_stored_ends_every_append_by_its_deadline)
{
	volatile int stop = 0;
	uint64_t t0;
	int i, unavailable = 0;

	start(300);
	run(0, &stop, 100000);
	h_sleep_ms(300);
	kill(sd.pid, SIGSTOP);
	t0 = h_now_ms();
	h_sleep_ms(1500);
	stop = 1;
	for (i = 0; i < THREADS; i++)
		pthread_join(ws[i].thr, NULL);
	/* every thread's last append ended, well before the 30 s wait */
	cr_assert_lt(h_now_ms() - t0, 1500 + 300 + CLIENT_GRACE_MS + 2000);
	kill(sd.pid, SIGCONT);
	for (i = 0; i < THREADS; i++) {
		cr_assert_eq(ws[i].lost, 0, "thread %d: %s", i, ws[i].error);
		cr_assert_eq(ws[i].other, 0, "thread %d: %s", i, ws[i].error);
		cr_assert_eq(ws[i].twice, 0);
		unavailable += ws[i].unavailable;
		ws[i].stop = NULL;
		ws[i].lost = ws[i].other = ws[i].twice = 0;
	}
	cr_assert_gt(unavailable, 0, "no append ended UNAVAILABLE");
	/* and they work again, each result its own (with a deadline that
	 * a loaded machine meets: at 300 ms an append could end UNAVAILABLE
	 * and be committed after, so the next exact version conflicted) */
	for (i = 0; i < THREADS; i++) {
		free(ws[i].pos);
		free(ws[i].ids);
	}
	pipeline_close(&pl);
	cr_assert_eq(pipeline_open(&pl, sd.store_url, 10000), 0);
	run(5, NULL, 5);
	join_and_check();
	for (i = 0; i < THREADS; i++)
		cr_assert_eq(ws[i].ok, 5, "thread %d after SIGCONT", i);
	pipeline_close(&pl);
}

Test(pipeline, kill9_restart_under_load_own_result_or_unavailable)
{
	volatile int stop = 0;
	int i, r, ok = 0;

	start(3000);
	run(0, &stop, 100000);
	for (r = 0; r < 3; r++) {
		h_sleep_ms(300);
		cr_assert_neq(h_stored_stop(&sd, SIGKILL, 10000), -1);
		h_stored_start(&sd);
	}
	h_sleep_ms(300);
	stop = 1;
	client_close(&cl);
	h_client(&cl, &sd, 10000);
	join_and_check();
	for (i = 0; i < THREADS; i++)
		ok += ws[i].ok;
	cr_assert_gt(ok, 0);
	pipeline_close(&pl);
}

/* Big appends: no message passes PIPELINE_MAX_BYTES (stored would hang
 * up on one over IPC_MAX_MSG); all are written, in several messages. */
static void
big_done(struct pipeline_req *rq, const struct ipc_result *res)
{
	struct job *j = rq->arg;

	j->status = res->status;
	snprintf(j->msg, sizeof(j->msg), "%.*s", (int)res->message.len,
	    res->message.ptr ? res->message.ptr : "");
	sem_post(&j->done);
}

Test(pipeline, big_appends_are_split_across_messages)
{
	enum { N = 40, EV = 20, SZ = 60000 };
	static struct job jobs[N];
	static char ids[N][EV][UUID_STR_LEN], streams[N][UUID_STR_LEN];
	struct ipc_proposed evs[EV];
	struct ipc_append_req r;
	uint8_t *payload;
	uint64_t m0;
	int i, k;

	start(30000);
	payload = malloc(SZ);
	memset(payload, 'p', SZ);
	m0 = pl.messages;
	for (i = 0; i < N; i++) {
		memset(evs, 0, sizeof(evs));
		for (k = 0; k < EV; k++) {
			evs[k].event_id.ptr = h_uuid(ids[i][k]);
			evs[k].event_id.len = 36;
			evs[k].type.ptr = "Big";
			evs[k].type.len = 3;
			evs[k].payload = payload;
			evs[k].payload_len = SZ;
		}
		memset(&r, 0, sizeof(r));
		r.stream_id.ptr = h_uuid(streams[i]);
		r.stream_id.len = 36;
		r.kind = EF_EXPECT_NO_STREAM;
		r.nevents = EV;
		r.events = evs;
		sem_init(&jobs[i].done, 0, 0);
		ipc_out_init(&jobs[i].rq.out);
		jobs[i].rq.arg = &jobs[i];
		jobs[i].rq.done = big_done;
		pipeline_req_set(&jobs[i].rq, &r);
	}
	free(payload);
	for (i = 0; i < N; i++)
		pipeline_submit(&pl, &jobs[i].rq);
	for (i = 0; i < N; i++) {
		sem_wait(&jobs[i].done);
		cr_assert_eq(jobs[i].status, EF_S_OK, "append %d: %s: %s", i,
		    ipc_status_name(jobs[i].status), jobs[i].msg);
		ipc_out_free(&jobs[i].rq.out);
		sem_destroy(&jobs[i].done);
	}
	/* 40 x 1.2 MB: at least 12 messages of at most 4 MiB */
	cr_assert_geq(pl.messages - m0, 12, "%llu messages",
	    (unsigned long long)(pl.messages - m0));
	cr_assert_eq(h_head(&cl), (uint64_t)N * EV);
	pipeline_close(&pl);
}
