/* SPDX-License-Identifier: MIT */
/*
 * test_import_order.c - several IMPORTs of one run in flight (IMPORT's
 * run and seq, proto/IPC.md) against a real eventfold-stored:
 *   - a request that reaches stored before its predecessor is held and
 *     committed after it: versions 4..5 sent before 2..3 of one stream
 *     both succeed (out of order, the first would be a version
 *     conflict), in seq order in the log;
 *   - a failing request stops the ones after it: a request held behind
 *     one that fails (a version conflict in the writer, or a bad event
 *     type refused before the writer) is refused ABORTED naming the
 *     failed one, nothing of it is written, and so is a later one that
 *     would be valid on its own;
 *   - a seq past 0 of a run stored does not know is refused at once;
 *   - eventfoldctl import with --in-flight 1 and 4: the export of the
 *     result is the source's, byte for byte, and a re-run imports nothing.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <criterion/criterion.h>

#include "harness.h"

TestSuite(import_order, .fini = h_cleanup, .timeout = 300);

/* One IMPORT call, possibly on its own thread. */
struct call {
	struct ef_client *c;
	struct ipc_out o;
	pthread_t thr;
	int done; /* atomic */
	int status;
	char msg[512];
	struct ipc_import_rep ir;
};

/*
 * An IMPORT of run/seq: n events of stream sid at versions v, v+1, ...
 * (positions assigned by the store), type "T" unless bad_type (empty).
 */
static void
call_init(struct call *k, struct ef_client *c, uint64_t run, uint64_t seq,
    const uint8_t sid[UUID_LEN], uint64_t v, uint32_t n, int bad_type)
{
	struct ef_event ev;
	uint32_t i;

	memset(k, 0, sizeof(*k));
	k->c = c;
	ipc_out_init(&k->o);
	ipc_request_begin(&k->o, EF_OP_IMPORT, client_request_id(c));
	ipc_import_req_begin(&k->o, false, n, run);
	for (i = 0; i < n; i++) {
		memset(&ev, 0, sizeof(ev));
		cr_assert_eq(getrandom(ev.event_id, UUID_LEN, 0), UUID_LEN);
		memcpy(ev.stream_id, sid, UUID_LEN);
		ev.stream_version = v + i;
		ev.recorded_at = 1700000000000ull + v + i;
		ev.type = bad_type ? "" : "T";
		ev.type_len = bad_type ? 0 : 1;
		ev.payload = (const uint8_t *)"{}";
		ev.payload_len = 2;
		ipc_event_encode(&k->o, &ev);
	}
	ipc_import_req_end(&k->o, run, seq);
}

static void *
call_main(void *arg)
{
	struct call *k = arg;
	struct client_reply cr;
	const char *why = "";

	k->status = client_call(k->c, &k->o, &cr);
	snprintf(k->msg, sizeof(k->msg), "%.*s", (int)cr.in.message.len,
	    cr.in.message.ptr ? cr.in.message.ptr : "");
	if (k->status == EF_S_OK &&
	    ipc_import_rep_decode(cr.in.body, &k->ir, &why) != 0)
		k->status = -1;
	client_reply_free(&cr);
	ipc_out_free(&k->o);
	__atomic_store_n(&k->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void
call_start(struct call *k)
{
	cr_assert_eq(pthread_create(&k->thr, NULL, call_main, k), 0);
}

static void
call_join(struct call *k)
{
	pthread_join(k->thr, NULL);
}

/* The call made on this thread; its status. */
static int
call_now(struct call *k)
{
	call_main(k);
	return k->status;
}

static uint64_t
new_run(void)
{
	uint64_t run = 0;

	while (run == 0)
		cr_assert_eq(getrandom(&run, sizeof(run), 0), sizeof(run));
	return run;
}

/* Starts k (sent later than now) and checks that it stays unanswered
 * while its predecessor has not come: held, not refused, not written. */
static void
start_held(struct call *k)
{
	call_start(k);
	h_sleep_ms(300);
	cr_assert_eq(__atomic_load_n(&k->done, __ATOMIC_ACQUIRE), 0,
	    "a request before its predecessor was answered: %d %s", k->status,
	    k->msg);
}

Test(import_order, held_until_its_predecessor_commits)
{
	struct h_stored s;
	struct ef_client c;
	struct call k0, k1, k2;
	struct h_event *evs;
	uint8_t sid[UUID_LEN];
	uint64_t run = new_run(), i;
	size_t n;

	h_start_fresh(&s, &c, NULL, 20000);
	cr_assert_eq(getrandom(sid, UUID_LEN, 0), UUID_LEN);

	call_init(&k0, &c, run, 0, sid, 0, 2, 0);
	cr_assert_eq(call_now(&k0), EF_S_OK, "%s", k0.msg);
	cr_assert_eq(k0.ir.count, 2);
	/* seq 2 first: versions 4..5, a conflict if it went before seq 1 */
	call_init(&k2, &c, run, 2, sid, 4, 2, 0);
	start_held(&k2);
	cr_assert_eq(h_head(&c), 2);
	call_init(&k1, &c, run, 1, sid, 2, 2, 0);
	cr_assert_eq(call_now(&k1), EF_S_OK, "%s", k1.msg);
	call_join(&k2);
	cr_assert_eq(k2.status, EF_S_OK, "%s", k2.msg);
	cr_assert_eq(k1.ir.first_pos, 2);
	cr_assert_eq(k2.ir.first_pos, 4);
	cr_assert_eq(k2.ir.count, 2);

	cr_assert_eq(h_read_all(&c, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, 6);
	for (i = 0; i < n; i++) {
		cr_assert_eq(evs[i].pos, i);
		cr_assert_eq(evs[i].version, i);
		cr_assert_eq(evs[i].recorded_at, 1700000000000ull + i);
	}
	h_events_free(evs, n);
	client_close(&c);
}

/*
 * seq 0 commits; seq 2 is sent first and held; seq 1 fails: seq 2 is
 * refused ABORTED naming request 1, and a valid seq 3 after it too.
 * bad_type: seq 1 is refused before the writer (an empty event type),
 * else by the writer (a version conflict).
 */
static void
failing_first_stops_the_next(int bad_type)
{
	struct h_stored s;
	struct ef_client c;
	struct call k0, k1, k2, k3;
	uint8_t sid[UUID_LEN];
	uint64_t run = new_run();

	h_start_fresh(&s, &c, NULL, 20000);
	cr_assert_eq(getrandom(sid, UUID_LEN, 0), UUID_LEN);

	call_init(&k0, &c, run, 0, sid, 0, 1, 0);
	cr_assert_eq(call_now(&k0), EF_S_OK, "%s", k0.msg);
	call_init(&k2, &c, run, 2, sid, 2, 1, 0);
	start_held(&k2);
	/* seq 1: version 7 (the stream's next is 1), or an empty type */
	call_init(&k1, &c, run, 1, sid, bad_type ? 1 : 7, 1, bad_type);
	cr_assert_eq(call_now(&k1),
	    bad_type ? EF_S_BAD_EVENT_TYPE : EF_S_VERSION_CONFLICT, "%d %s",
	    k1.status, k1.msg);
	call_join(&k2);
	cr_assert_eq(k2.status, EF_S_ABORTED, "%d %s", k2.status, k2.msg);
	cr_assert(strstr(k2.msg, "request 1 ") != NULL, "%s", k2.msg);
	/* valid on its own (version 1 is the stream's next), but after a
	 * failed one of its run */
	call_init(&k3, &c, run, 3, sid, 1, 1, 0);
	cr_assert_eq(call_now(&k3), EF_S_ABORTED, "%d %s", k3.status, k3.msg);
	cr_assert_eq(h_head(&c), 1, "something after the failure was written");
	/* the store goes on serving imports of other runs */
	call_init(&k0, &c, new_run(), 0, sid, 1, 1, 0);
	cr_assert_eq(call_now(&k0), EF_S_OK, "%s", k0.msg);
	cr_assert_eq(h_head(&c), 2);
	client_close(&c);
}

Test(import_order, failure_in_the_writer_stops_the_next)
{
	failing_first_stops_the_next(0);
}

Test(import_order, failure_before_the_writer_stops_the_next)
{
	failing_first_stops_the_next(1);
}

Test(import_order, unknown_run_refused)
{
	struct h_stored s;
	struct ef_client c;
	struct call k;
	uint8_t sid[UUID_LEN];

	h_start_fresh(&s, &c, NULL, 20000);
	cr_assert_eq(getrandom(sid, UUID_LEN, 0), UUID_LEN);
	call_init(&k, &c, new_run(), 1, sid, 0, 1, 0);
	cr_assert_eq(call_now(&k), EF_S_ABORTED, "%d %s", k.status, k.msg);
	cr_assert(strstr(k.msg, "not known") != NULL, "%s", k.msg);
	cr_assert_eq(h_head(&c), 0);
	client_close(&c);
}

Test(import_order, eventfoldctl_in_flight)
{
	static const char *const nflight[] = { "1", "4" };
	struct h_stored a, b;
	struct ef_client ca;
	struct h_load load;
	char pa[H_PATH + 32], pb[H_PATH + 32];
	char *fa, *fb, *out;
	size_t k;

	h_start_fresh(&a, &ca, NULL, 20000);
	/* more than four batches of 4096 lines */
	h_load_running(&load, &a, 4, 64, 20000, 120000);
	h_load_stop(&load);
	h_load_free(&load);
	snprintf(pa, sizeof(pa), "%s/a.jsonl", a.dir);
	fa = h_export_all(&a, pa);
	for (k = 0; k < 2; k++) {
		h_stored_init(&b, h_tmpdir(), NULL);
		h_stored_start(&b);
		out = h_ctl_ok(&b,
		    (const char *const[]){ "import", pa, "--in-flight",
		        nflight[k], NULL });
		cr_assert(strstr(out, "positions kept") != NULL, "%s", out);
		free(out);
		snprintf(pb, sizeof(pb), "%s/b.jsonl", b.dir);
		fb = h_export_all(&b, pb);
		cr_assert_str_eq(fa, fb, "--in-flight %s", nflight[k]);
		free(fb);
		out = h_ctl_ok(&b,
		    (const char *const[]){ "import", pa, "--in-flight",
		        nflight[k], NULL });
		cr_assert(strstr(out, "imported 0 events") != NULL, "%s", out);
		free(out);
		h_stored_stop(&b, SIGTERM, 20000);
	}
	{
		char *err = NULL;
		int rc = h_ctl_at(&a,
		    (const char *const[]){ "import", pa, "--in-flight", "0",
		        NULL },
		    &out, &err);

		cr_assert_neq(rc, 0);
		cr_assert(strstr(err, "--in-flight") != NULL, "%s", err);
		free(out);
		free(err);
	}
	free(fa);
	client_close(&ca);
}
