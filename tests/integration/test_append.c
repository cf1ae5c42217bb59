/* SPDX-License-Identifier: MIT */
/*
 * test_append.c - appends to a real eventfold-stored from many clients:
 * idempotent retries (identical batches return the original positions
 * and write nothing, before and after a restart, even when sent
 * concurrently; a batch mixing stored and new ids, or reusing an id for
 * another event, is refused), multi-event atomicity and contiguity
 * under concurrency, and optimistic concurrency: clients racing with
 * exact(n) on one stream, exactly one of them winning each version.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "harness.h"

TestSuite(append, .fini = h_cleanup, .timeout = 120);

static struct h_stored sd;
static struct ef_client cl;

static void
restart(int sig)
{
	int st;

	client_close(&cl);
	st = h_stored_stop(&sd, sig, 10000);
	cr_assert_neq(st, -1, "stored did not stop");
	h_stored_start(&sd);
	h_client(&cl, &sd, 10000);
}

/* h_proposed with metadata md (NULL: none). */
static struct ipc_proposed
ev(const char *id, const char *type, const char *md, const char *payload)
{
	struct ipc_proposed p = h_proposed(id, type, payload);

	p.metadata = (const uint8_t *)md;
	p.metadata_len = md ? (uint32_t)strlen(md) : 0;
	return p;
}

static void
assert_same_rep(const struct h_result *r, const struct ipc_append_rep *want,
    const char *what)
{
	cr_assert_eq(r->status, EF_S_OK, "%s: %s: %s", what,
	    ipc_status_name(r->status), r->msg);
	cr_assert_eq(r->rep.first_pos, want->first_pos, "%s", what);
	cr_assert_eq(r->rep.last_pos, want->last_pos, "%s", what);
	cr_assert_eq(r->rep.first_version, want->first_version, "%s", what);
	cr_assert_eq(r->rep.last_version, want->last_version, "%s", what);
}

/* The identical batch evs (3 events, appended to sid as orig), even with
 * an expected version that would now fail, returns the original
 * result; so does one with an id in another textual form. */
static void
retries_answer_the_original(const char *sid, const struct ipc_proposed *evs,
    const struct ipc_append_rep *orig, int round)
{
	char upper[UUID_STR_LEN];
	struct ipc_proposed batch[3];
	struct h_result r;
	int i;

	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_NO_STREAM, 0, evs, 3, &r),
	    EF_S_OK, "round %d: %s", round, r.msg);
	assert_same_rep(&r, orig, "retry");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, evs, 3, &r),
	    EF_S_OK);
	assert_same_rep(&r, orig, "retry with any");
	/* ids in another textual form are the same ids */
	snprintf(upper, sizeof(upper), "%.*s", (int)evs[1].event_id.len,
	    evs[1].event_id.ptr);
	for (i = 0; upper[i]; i++)
		if (upper[i] >= 'a' && upper[i] <= 'f')
			upper[i] = (char)(upper[i] - 32);
	batch[0] = evs[0];
	batch[1] = evs[1];
	batch[1].event_id.ptr = upper;
	batch[2] = evs[2];
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_EXACT, 99, batch, 3, &r),
	    EF_S_OK, "%s", r.msg);
	assert_same_rep(&r, orig, "retry, upper-case id");
	cr_assert_eq(h_head(&cl), 4, "round %d: a retry was written again",
	    round);
}

/* Stored ids of evs (in sid; id0 is evs[0]'s) mixed with a new one
 * (fresh, given a new value here), out of order, or reused for another
 * event (other payload, type, metadata, stream): refused, nothing
 * written. */
static void
reused_ids_refused(const char *sid, const char *other, const char *id0,
    const struct ipc_proposed *evs, char *fresh, int round)
{
	struct ipc_proposed mix[2], batch[3];
	struct h_result r;

	/* a batch mixing stored and new ids */
	h_uuid(fresh);
	mix[0] = evs[0];
	mix[1] = ev(fresh, "New", NULL, "{}");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, mix, 2, &r),
	    EF_S_EVENT_ID_REUSED, "%s", r.msg);
	mix[0] = ev(fresh, "New", NULL, "{}");
	mix[1] = evs[2];
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, mix, 2, &r),
	    EF_S_EVENT_ID_REUSED, "%s", r.msg);
	/* the stored ids out of order */
	batch[0] = evs[1];
	batch[1] = evs[0];
	batch[2] = evs[2];
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, batch, 3, &r),
	    EF_S_EVENT_ID_REUSED, "reordered: %s", r.msg);
	/* an id reused for another event */
	batch[0] = ev(id0, "Opened", "{\"by\":\"me\"}", "{\"n\":9}");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, batch, 1, &r),
	    EF_S_EVENT_ID_REUSED, "other payload: %s", r.msg);
	batch[0] = ev(id0, "Closed", "{\"by\":\"me\"}", "{\"n\":0}");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, batch, 1, &r),
	    EF_S_EVENT_ID_REUSED, "other type");
	batch[0] = ev(id0, "Opened", NULL, "{\"n\":0}");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_ANY, 0, batch, 1, &r),
	    EF_S_EVENT_ID_REUSED, "other metadata");
	batch[0] = evs[0];
	cr_assert_eq(h_append(&cl, other, EF_EXPECT_ANY, 0, batch, 1, &r),
	    EF_S_EVENT_ID_REUSED, "other stream");
	cr_assert_eq(h_head(&cl), 4,
	    "round %d: a refused append wrote "
	    "something",
	    round);
}

Test(append, idempotent_retry_before_and_after_restart)
{
	char sid[UUID_STR_LEN], other[UUID_STR_LEN], ids[4][UUID_STR_LEN],
	    fresh[UUID_STR_LEN];
	struct ipc_proposed evs[3], last;
	struct ipc_append_rep orig;
	struct h_result r;
	int round, i;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(sid);
	h_uuid(other);
	for (i = 0; i < 4; i++)
		h_uuid(ids[i]);
	/* something before, so positions and versions differ */
	evs[0] = ev(ids[3], "Before", NULL, "{}");
	cr_assert_eq(h_append(&cl, other, EF_EXPECT_ANY, 0, evs, 1, &r),
	    EF_S_OK);
	evs[0] = ev(ids[0], "Opened", "{\"by\":\"me\"}", "{\"n\":0}");
	evs[1] = ev(ids[1], "Deposited", NULL, "{\"n\":1}");
	evs[2] = ev(ids[2], "Withdrawn", NULL, NULL);
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_NO_STREAM, 0, evs, 3, &r),
	    EF_S_OK, "%s", r.msg);
	orig = r.rep;
	cr_assert_eq(orig.first_pos, 1);
	cr_assert_eq(orig.last_pos, 3);

	for (round = 0; round < 3; round++) {
		/* round 0 as is, 1 after SIGTERM, 2 after kill -9 */
		if (round == 1)
			restart(SIGTERM);
		if (round == 2)
			restart(SIGKILL);
		retries_answer_the_original(sid, evs, &orig, round);
		reused_ids_refused(sid, other, ids[0], evs, fresh, round);
	}
	/* the new id of the refused mix was never written: it can go now */
	last = ev(fresh, "New", NULL, "{}");
	cr_assert_eq(h_append(&cl, sid, EF_EXPECT_EXACT, 2, &last, 1, &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(r.rep.first_pos, 4);
	cr_assert_eq(r.rep.first_version, 3);
}

/* ------------------------------------------------------------------ */

#define RACERS 8

struct racer {
	struct h_worker w; /* first */
	int idx;
	pthread_barrier_t *bar;
	const char *stream;
	int rounds;
	/* per round: status and event id */
	int status[64];
	uint64_t actual[64];
	bool exists[64];
	uint64_t got_version[64];
	char ids[64][UUID_STR_LEN];
	char error[1024];
};

static void *
racer_main(void *arg)
{
	struct racer *rc = arg;
	struct h_result r;
	int k;

	for (k = 0; k < rc->rounds; k++) {
		char payload[64];

		snprintf(payload, sizeof(payload),
		    "{\"racer\":%d,\"round\":%d}", rc->idx, k);
		h_uuid(rc->ids[k]);
		pthread_barrier_wait(rc->bar);
		/* everyone expects version k: the stream holds k+1 events */
		rc->status[k] = h_append1(&rc->w.c, rc->stream,
		    EF_EXPECT_EXACT, (uint64_t)k, rc->ids[k], "Raced", payload,
		    &r);
		rc->actual[k] = r.conflict.actual;
		rc->exists[k] = r.conflict.exists;
		rc->got_version[k] = r.rep.first_version;
		if (r.status != EF_S_OK && r.status != EF_S_VERSION_CONFLICT)
			snprintf(rc->error, sizeof(rc->error),
			    "round %d: %s: "
			    "%s",
			    k, ipc_status_name(r.status), r.msg);
		/* the round is over for everyone before the next starts */
		pthread_barrier_wait(rc->bar);
	}
	return NULL;
}

Test(append, racing_exact_version_one_winner_per_version)
{
	static struct racer rc[RACERS];
	pthread_barrier_t bar;
	struct h_event *evs;
	struct h_result r;
	char sid[UUID_STR_LEN], id[UUID_STR_LEN];
	size_t n;
	int i, k, rounds = 40;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(sid);
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_NO_STREAM, 0, h_uuid(id),
	                 "Created", "{}", &r),
	    EF_S_OK);
	pthread_barrier_init(&bar, NULL, RACERS);
	for (i = 0; i < RACERS; i++) {
		memset(&rc[i], 0, sizeof(rc[i]));
		rc[i].idx = i;
		rc[i].bar = &bar;
		rc[i].stream = sid;
		rc[i].rounds = rounds;
	}
	h_workers_start(&sd, rc, sizeof(rc[0]), RACERS, racer_main, 10000);
	h_workers_join(rc, sizeof(rc[0]), RACERS);
	pthread_barrier_destroy(&bar);

	cr_assert_eq(h_read_stream(&cl, sid, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, (size_t)rounds + 1, "the stream has %zu events", n);
	for (k = 0; k < rounds; k++) {
		int winners = 0, winner = -1;
		uint8_t wid[UUID_LEN];

		for (i = 0; i < RACERS; i++) {
			cr_assert_str_empty(rc[i].error, "%s", rc[i].error);
			if (rc[i].status[k] == EF_S_OK) {
				winners++;
				winner = i;
				cr_assert_eq(rc[i].got_version[k],
				    (uint64_t)k + 1);
			} else {
				cr_assert_eq(rc[i].status[k],
				    EF_S_VERSION_CONFLICT);
				/* the loser learns the version it lost to */
				cr_assert(rc[i].exists[k]);
				cr_assert_eq(rc[i].actual[k], (uint64_t)k + 1,
				    "round %d racer %d: actual %llu", k, i,
				    (unsigned long long)rc[i].actual[k]);
			}
		}
		cr_assert_eq(winners, 1, "round %d: %d winners", k, winners);
		uuid_parse(rc[winner].ids[k], 36, wid);
		cr_assert_arr_eq(evs[k + 1].event_id, wid, UUID_LEN,
		    "version %d is not the winner's event", k + 1);
		cr_assert_eq(evs[k + 1].version, (uint64_t)k + 1);
	}
	h_events_free(evs, n);
	for (i = 0; i < RACERS; i++)
		client_close(&rc[i].w.c);
}

/* Free-running: every client loops until the stream is long enough,
 * retrying on conflict with the version the reply names. */
struct runner {
	struct h_worker w; /* first */
	int idx;
	const char *stream;
	uint64_t target;
	uint64_t won[512]; /* versions this client wrote */
	char ids[512][UUID_STR_LEN];
	int nwon;
	int conflicts;
	char error[1024];
};

static void *
runner_main(void *arg)
{
	struct runner *ru = arg;
	struct h_result r;
	uint64_t v = 0;
	char id[UUID_STR_LEN];

	while (v + 1 < ru->target && ru->nwon < 512) {
		h_uuid(id);
		if (h_append1(&ru->w.c, ru->stream, EF_EXPECT_EXACT, v, id,
		        "Ran", "{}", &r) == EF_S_OK) {
			if (r.rep.first_version != v + 1) {
				snprintf(ru->error, sizeof(ru->error),
				    "exact(%llu) wrote version %llu",
				    (unsigned long long)v,
				    (unsigned long long)r.rep.first_version);
				return NULL;
			}
			memcpy(ru->ids[ru->nwon], id, sizeof(id));
			ru->won[ru->nwon++] = v + 1;
			v++;
		} else if (r.status == EF_S_VERSION_CONFLICT &&
		    r.has_conflict && r.conflict.exists) {
			if (r.conflict.actual <= v) {
				snprintf(ru->error, sizeof(ru->error),
				    "conflict at %llu names %llu",
				    (unsigned long long)v,
				    (unsigned long long)r.conflict.actual);
				return NULL;
			}
			ru->conflicts++;
			v = r.conflict.actual;
		} else {
			snprintf(ru->error, sizeof(ru->error), "%s: %s",
			    ipc_status_name(r.status), r.msg);
			return NULL;
		}
	}
	return NULL;
}

Test(append, racing_exact_version_free_running)
{
	static struct runner ru[RACERS];
	struct h_event *evs;
	struct h_result r;
	char sid[UUID_STR_LEN], id[UUID_STR_LEN];
	int8_t *owner;
	uint64_t target = 300;
	size_t n;
	int i, k;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(sid);
	cr_assert_eq(h_append1(&cl, sid, EF_EXPECT_NO_STREAM, 0, h_uuid(id),
	                 "Created", "{}", &r),
	    EF_S_OK);
	for (i = 0; i < RACERS; i++) {
		memset(&ru[i], 0, sizeof(ru[i]));
		ru[i].idx = i;
		ru[i].stream = sid;
		ru[i].target = target;
	}
	h_workers_start(&sd, ru, sizeof(ru[0]), RACERS, runner_main, 10000);
	h_workers_join(ru, sizeof(ru[0]), RACERS);
	owner = calloc(target, 1);
	cr_assert_not_null(owner);
	cr_assert_eq(h_read_stream(&cl, sid, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, target, "the stream has %zu events", n);
	for (i = 0; i < RACERS; i++) {
		cr_assert_str_empty(ru[i].error, "%s", ru[i].error);
		for (k = 0; k < ru[i].nwon; k++) {
			uint64_t v = ru[i].won[k];
			uint8_t u[UUID_LEN];

			cr_assert_lt(v, target);
			cr_assert_eq(owner[v], 0,
			    "version %llu acknowledged "
			    "to two clients",
			    (unsigned long long)v);
			owner[v] = (int8_t)(i + 1);
			uuid_parse(ru[i].ids[k], 36, u);
			cr_assert_arr_eq(evs[v].event_id, u, UUID_LEN,
			    "version %llu holds another event than the one "
			    "acknowledged",
			    (unsigned long long)v);
		}
	}
	for (k = 1; k < (int)target; k++)
		cr_assert_neq(owner[k], 0,
		    "version %d was written by nobody "
		    "who was told so",
		    k);
	free(owner);
	h_events_free(evs, n);
	for (i = 0; i < RACERS; i++)
		client_close(&ru[i].w.c);
}

/* ------------------------------------------------------------------ */

#define BATCHERS 8
#define BATCH_N  5

struct batcher {
	struct h_worker w; /* first */
	int idx;
	const char *stream;
	int nbatches;
	char ids[40][BATCH_N][UUID_STR_LEN];
	struct ipc_append_rep rep[40];
	char error[1024];
};

static void *
batcher_main(void *arg)
{
	struct batcher *b = arg;
	struct ipc_proposed evs[BATCH_N];
	struct h_result r;
	char payload[BATCH_N][64];
	int k, j;

	for (k = 0; k < b->nbatches; k++) {
		for (j = 0; j < BATCH_N; j++) {
			snprintf(payload[j], sizeof(payload[j]),
			    "{\"b\":%d,\"k\":%d,\"j\":%d}", b->idx, k, j);
			evs[j] = ev(h_uuid(b->ids[k][j]), "Part", NULL,
			    payload[j]);
		}
		if (h_append(&b->w.c, b->stream, EF_EXPECT_ANY, 0, evs,
		        BATCH_N, &r) != EF_S_OK) {
			snprintf(b->error, sizeof(b->error), "%s: %s",
			    ipc_status_name(r.status), r.msg);
			return NULL;
		}
		b->rep[k] = r.rep;
	}
	return NULL;
}

Test(append, multi_event_batches_are_atomic_and_contiguous)
{
	static struct batcher b[BATCHERS];
	struct h_event *evs, *sev;
	char sid[UUID_STR_LEN], other[UUID_STR_LEN], id[UUID_STR_LEN];
	struct h_result r;
	size_t n, sn;
	int i, k, j;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(sid);
	h_uuid(other);
	for (i = 0; i < BATCHERS; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].idx = i;
		b[i].stream = i % 2 ? sid : other;
		b[i].nbatches = 40;
	}
	h_workers_start(&sd, b, sizeof(b[0]), BATCHERS, batcher_main, 10000);
	/* single events in between, from here */
	for (k = 0; k < 50; k++)
		cr_assert_eq(h_append1(&cl, k % 2 ? sid : other, EF_EXPECT_ANY,
		                 0, h_uuid(id), "Single", "{}", &r),
		    EF_S_OK);
	h_workers_join(b, sizeof(b[0]), BATCHERS);

	cr_assert_eq(h_read_all(&cl, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, BATCHERS * 40 * BATCH_N + 50);
	for (i = 0; i < BATCHERS; i++) {
		cr_assert_str_empty(b[i].error, "%s", b[i].error);
		for (k = 0; k < 40; k++) {
			const struct ipc_append_rep *rp = &b[i].rep[k];

			cr_assert_eq(rp->last_pos - rp->first_pos,
			    BATCH_N - 1);
			cr_assert_eq(rp->last_version - rp->first_version,
			    BATCH_N - 1);
			for (j = 0; j < BATCH_N; j++) {
				const struct h_event *e =
				    &evs[rp->first_pos + j];
				uint8_t u[UUID_LEN];

				uuid_parse(b[i].ids[k][j], 36, u);
				cr_assert_arr_eq(e->event_id, u, UUID_LEN,
				    "batch %d/%d event %d is not at position "
				    "%llu",
				    i, k, j,
				    (unsigned long long)(rp->first_pos + j));
				cr_assert_eq(e->version, rp->first_version + j,
				    "versions of a batch are contiguous");
			}
		}
	}
	/* every stream's versions run 0..n-1 in log order */
	cr_assert_eq(h_read_stream(&cl, sid, 0, &sev, &sn), EF_S_OK);
	cr_assert_eq(sn, BATCHERS / 2 * 40 * BATCH_N + 25);
	for (k = 0; k < (int)sn; k++) {
		cr_assert_eq(sev[k].version, (uint64_t)k);
		if (k > 0)
			cr_assert_gt(sev[k].pos, sev[k - 1].pos);
	}
	h_events_free(sev, sn);
	h_events_free(evs, n);
	for (i = 0; i < BATCHERS; i++)
		client_close(&b[i].w.c);
}

/* ------------------------------------------------------------------ */

#define RETRIERS 8

struct retrier {
	struct h_worker w; /* first */
	pthread_barrier_t *bar;
	const struct ipc_proposed *evs;
	const char *stream;
	struct h_result r;
};

static void *
retrier_main(void *arg)
{
	struct retrier *t = arg;

	pthread_barrier_wait(t->bar);
	h_append(&t->w.c, t->stream, EF_EXPECT_ANY, 0, t->evs, 3, &t->r);
	return NULL;
}

Test(append, concurrent_identical_retries_are_written_once)
{
	static struct retrier t[RETRIERS];
	pthread_barrier_t bar;
	struct ipc_proposed evs[3];
	char sid[UUID_STR_LEN], ids[3][UUID_STR_LEN];
	int i, round;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(sid);
	for (round = 0; round < 10; round++) {
		for (i = 0; i < 3; i++)
			evs[i] = ev(h_uuid(ids[i]), "Same", NULL, "{\"x\":1}");
		pthread_barrier_init(&bar, NULL, RETRIERS);
		for (i = 0; i < RETRIERS; i++) {
			t[i].bar = &bar;
			t[i].evs = evs;
			t[i].stream = sid;
		}
		h_workers_start(&sd, t, sizeof(t[0]), RETRIERS, retrier_main,
		    10000);
		h_workers_join(t, sizeof(t[0]), RETRIERS);
		pthread_barrier_destroy(&bar);
		for (i = 0; i < RETRIERS; i++) {
			cr_assert_eq(t[i].r.status, EF_S_OK, "round %d: %s",
			    round, t[i].r.msg);
			cr_assert_eq(t[i].r.rep.first_pos, (uint64_t)round * 3,
			    "round %d sender %d got positions %llu..", round,
			    i, (unsigned long long)t[i].r.rep.first_pos);
			cr_assert_eq(t[i].r.rep.first_version,
			    (uint64_t)round * 3);
			client_close(&t[i].w.c);
		}
		cr_assert_eq(h_head(&cl), (uint64_t)(round + 1) * 3,
		    "round %d: the batch was written more than once", round);
	}
}
