/* SPDX-License-Identifier: MIT */
/*
 * test_diskindex.c - the on-disk (LMDB) index of sealed segments, with a
 * real eventfold-stored: idempotent retries and expected-version checks
 * against streams and event ids that live only in sealed, indexed
 * segments, ReadStream and ListStreams (sorted, paged) and STATUS for
 * them, before and after a restart; a restart that reads only the tail
 * (STATUS recovered_events, and the log line); the index deleted and
 * rebuilt from the segments (progress logged) with the same answers; and
 * stored killed at each indexing crash point under load: every
 * acknowledged event there exactly once, in order, and the index catches
 * up.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "harness.h"

TestSuite(diskindex, .fini = h_cleanup, .timeout = 300);

static struct h_stored sd;
static struct ef_client cl;

static void
rotate(void)
{
	struct client_reply rep;
	struct ipc_rotate_rep rr;
	struct ipc_out o;
	const char *why;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_ROTATE, client_request_id(&cl));
	ipc_nil(&o);
	cr_assert_eq(client_call(&cl, &o, &rep), EF_S_OK);
	cr_assert_eq(ipc_rotate_rep_decode(rep.in.body, &rr, &why), 0);
	client_reply_free(&rep);
	ipc_out_free(&o);
}

/* ------------------------------------------------------------------ */

#define NS 40 /* streams */

static char streams[NS][UUID_STR_LEN];
static char ids[NS][4][UUID_STR_LEN];

static int
stream_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Stream i gets 1 + i % 4 events, one append each, payload "i/k". */
static void
write_history(void)
{
	char payload[32];
	struct h_result r;
	int i, k;

	for (i = 0; i < NS; i++)
		h_uuid(streams[i]);
	for (k = 0; k < 4; k++)
		for (i = 0; i < NS; i++) {
			if (k > i % 4)
				continue;
			snprintf(payload, sizeof(payload), "\"%d/%d\"", i, k);
			cr_assert_eq(h_append1(&cl, streams[i],
			                 k == 0 ? EF_EXPECT_NO_STREAM :
			                          EF_EXPECT_EXACT,
			                 (uint64_t)k - 1, h_uuid(ids[i][k]),
			                 "Hist", payload, &r),
			    EF_S_OK, "%s", r.msg);
		}
}

/* Idempotent retry of every event: the original positions, nothing
 * written; a reused id, and a mix of stored and new ids, refused. */
static void
check_retries(void)
{
	char payload[32], id[UUID_STR_LEN];
	struct h_result r;
	uint64_t head = h_status(&cl).head;
	int i, k;

	for (i = 0; i < NS; i++)
		for (k = 0; k <= i % 4; k++) {
			snprintf(payload, sizeof(payload), "\"%d/%d\"", i, k);
			cr_assert_eq(h_append1(&cl, streams[i], EF_EXPECT_ANY,
			                 0, ids[i][k], "Hist", payload, &r),
			    EF_S_OK, "retry %d/%d: %s", i, k, r.msg);
			cr_assert_eq(r.rep.first_version, (uint64_t)k);
			cr_assert_lt(r.rep.first_pos, head);
			cr_assert_eq(h_append1(&cl, streams[i], EF_EXPECT_ANY,
			                 0, ids[i][k], "Hist", "\"other\"",
			                 &r),
			    EF_S_EVENT_ID_REUSED, "%d/%d: %s", i, k, r.msg);
		}
	{
		struct ipc_proposed evs2[2];

		memset(evs2, 0, sizeof(evs2));
		evs2[0].event_id.ptr = ids[0][0];
		evs2[0].event_id.len = 36;
		evs2[1].event_id.ptr = h_uuid(id);
		evs2[1].event_id.len = 36;
		evs2[0].type.ptr = evs2[1].type.ptr = "Hist";
		evs2[0].type.len = evs2[1].type.len = 4;
		evs2[0].payload = (const uint8_t *)"\"0/0\"";
		evs2[0].payload_len = 5;
		cr_assert_eq(h_append(&cl, streams[0], EF_EXPECT_ANY, 0, evs2,
		                 2, &r),
		    EF_S_EVENT_ID_REUSED, "%s", r.msg);
	}
	cr_assert_eq(h_status(&cl).head, head, "a retry wrote something");
}

/* Expected versions: wrong ones refused with the actual version. */
static void
check_versions(uint64_t extra_events)
{
	char id[UUID_STR_LEN];
	struct h_result r;
	int i;

	for (i = 0; i < NS; i++) {
		cr_assert_eq(h_append1(&cl, streams[i], EF_EXPECT_NO_STREAM, 0,
		                 h_uuid(id), "No", "{}", &r),
		    EF_S_VERSION_CONFLICT);
		cr_assert(r.has_conflict && r.conflict.exists);
		cr_assert_eq(r.conflict.actual,
		    (uint64_t)(i % 4) + (i == 1 ? extra_events : 0),
		    "stream %d: actual %llu", i,
		    (unsigned long long)r.conflict.actual);
		cr_assert_eq(h_append1(&cl, streams[i], EF_EXPECT_EXACT,
		                 (uint64_t)(i % 4) + 7, h_uuid(id), "No", "{}",
		                 &r),
		    EF_S_VERSION_CONFLICT);
	}
}

/* ReadStream: every version, in order. */
static void
check_read_streams(uint64_t extra_events)
{
	char payload[32];
	struct h_event *evs;
	size_t n;
	int i, k;

	for (i = 0; i < NS; i++) {
		cr_assert_eq(h_read_stream(&cl, streams[i], 0, &evs, &n),
		    EF_S_OK);
		cr_assert_eq(n,
		    (size_t)(i % 4 + 1) + (i == 1 ? extra_events : 0),
		    "stream %d: %zu events", i, n);
		for (k = 0; k <= i % 4; k++) {
			snprintf(payload, sizeof(payload), "\"%d/%d\"", i, k);
			cr_assert_eq(evs[k].version, (uint64_t)k);
			cr_assert_eq(evs[k].payload_len, strlen(payload));
			cr_assert_arr_eq(evs[k].payload, payload,
			    strlen(payload));
		}
		h_events_free(evs, n);
	}
}

/* ListStreams, one page of 3 at a time: sorted, exact counts. */
static void
check_list_streams(uint64_t extra_events)
{
	char sorted[NS][UUID_STR_LEN], id[UUID_STR_LEN];
	struct ipc_stream_info si;
	struct client_reply rep;
	struct ipc_list_rep lr;
	struct ipc_list_req lq;
	struct ipc_out o;
	const char *why;
	size_t total;
	int i, k, page;

	memcpy(sorted, streams, sizeof(sorted));
	qsort(sorted, NS, UUID_STR_LEN, stream_cmp);
	memset(&lq, 0, sizeof(lq));
	lq.max_count = 3;
	ipc_out_init(&o);
	for (total = 0, page = 0; page < NS; page++) {
		ipc_out_reset(&o);
		ipc_request_begin(&o, EF_OP_LIST_STREAMS,
		    client_request_id(&cl));
		ipc_list_req_encode(&o, &lq);
		cr_assert_eq(client_call(&cl, &o, &rep), EF_S_OK);
		cr_assert_eq(ipc_list_rep_decode(rep.in.body, &lr, &why), 0);
		for (k = 0; k < (int)lr.nstreams; k++, total++) {
			cr_assert_eq(ipc_stream_info_decode(&lr.streams->via
			                                         .array.ptr[k],
			                 &si, &why),
			    0);
			uuid_format(si.stream_id, id);
			cr_assert_str_eq(id, sorted[total]);
			for (i = 0; i < NS && strcmp(streams[i], id); i++)
				;
			cr_assert_eq(si.event_count,
			    (uint64_t)(i % 4 + 1) +
			        (i == 1 ? extra_events : 0),
			    "%s", id);
		}
		lq.has_after = true;
		lq.after.ptr = sorted[total - 1];
		lq.after.len = 36;
		client_reply_free(&rep);
		if (!lr.more)
			break;
	}
	ipc_out_free(&o);
	cr_assert_eq(total, NS);
	cr_assert_eq(h_status(&cl).streams, NS);
}

/* write_history, sealed and indexed on disk; the head. */
static uint64_t
indexed_history(void)
{
	uint64_t head;

	write_history();
	rotate();
	head = h_status(&cl).head;
	h_wait_indexed(&cl, head, 60000);
	return head;
}

/* Everything the store says about the history, as it must be. */
static void
check_history(uint64_t extra_events)
{
	check_retries();
	check_versions(extra_events);
	check_read_streams(extra_events);
	check_list_streams(extra_events);
}

Test(diskindex, streams_and_ids_only_in_sealed_segments)
{
	const char *const extra[] = { "--segment-size", "4K", NULL };
	struct ipc_status_rep st;
	struct h_result r;
	char id[UUID_STR_LEN];
	uint64_t head;

	h_start_fresh(&sd, &cl, extra, 10000);
	head = indexed_history();
	/* now nothing of the history is in RAM any more */
	check_history(0);
	/* appends go on where the streams were */
	cr_assert_eq(h_append1(&cl, streams[1], EF_EXPECT_EXACT, 1, h_uuid(id),
	                 "More", "{}", &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(r.rep.first_version, 2);
	cr_assert_eq(r.rep.first_pos, head);

	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_start(&sd, &cl);
	st = h_status(&cl);
	cr_assert_eq(st.head, head + 1);
	cr_assert_eq(st.recovered_events, 1, "the start read %llu events",
	    (unsigned long long)st.recovered_events);
	check_history(1);
}

/* Waits until the log holds needle at least n times; 0 or -1. */
static int
log_count_at_least(const char *needle, int n, int timeout_ms)
{
	int waited, k;
	char *log, *p;

	for (waited = 0; waited < timeout_ms; waited += 50) {
		k = 0;
		if ((log = h_read_file(sd.log, NULL)) != NULL)
			for (p = log; (p = strstr(p, needle)) != NULL; p++)
				k++;
		free(log);
		if (k >= n)
			return 0;
		usleep(50 * 1000);
	}
	return -1;
}

/*
 * The filter over every indexed id is kept across a clean stop and taken
 * back at the next start, but only when it covers exactly what the index
 * holds: an older one (the index moved on, then a kill -9) is refused and
 * built again. Either way every stored id is still known.
 */
Test(diskindex, id_filter_kept_across_a_clean_stop)
{
	const char *const extra[] = { "--segment-size", "4K", NULL };
	char path[H_PATH + 32], id[UUID_STR_LEN], *old;
	struct h_result r;
	size_t old_len;
	uint64_t head;

	h_stored_init(&sd, h_tmpdir(), extra);
	snprintf(path, sizeof(path), "%s/index/idfilter", sd.data_dir);
	h_start(&sd, &cl);
	head = indexed_history();
	cr_assert_eq(log_count_at_least("event ids built", 1, 30000), 0);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	cr_assert_not_null(old = h_read_file(path, &old_len),
	    "no %s after a clean stop", path);

	h_start(&sd, &cl);
	cr_assert_eq(h_wait_for_text(sd.log, "event ids read back", 30000), 0,
	    "the kept filter was not taken back");
	cr_assert_null(h_read_file(path, NULL), "%s is still there", path);
	check_history(0);

	/* the index moves on, stored is killed: the file put back covers
	 * less than the index and must not be used */
	cr_assert_eq(h_append1(&cl, streams[1], EF_EXPECT_ANY, 0, h_uuid(id),
	                 "More", "{}", &r),
	    EF_S_OK, "%s", r.msg);
	rotate();
	h_wait_indexed(&cl, head + 1, 60000);
	h_stored_stop_ok(&sd, &cl, SIGKILL);
	cr_assert_eq(h_write_file(path, old, old_len), 0);
	free(old);
	h_start(&sd, &cl);
	cr_assert_eq(h_wait_for_text(sd.log, "does not match the index",
	                 30000),
	    0, "an older filter was taken back");
	cr_assert_eq(log_count_at_least("event ids built", 2, 30000), 0,
	    "the filter was not built again");
	check_history(1);
	cr_assert_eq(h_append1(&cl, streams[1], EF_EXPECT_ANY, 0, id, "More",
	                 "{}", &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(r.rep.first_pos, head, "the last id was not known");

	/* a kept filter that covers the right positions but whose bits
	 * were damaged (a torn write: it is saved without fsync) fails its
	 * checksum and is built again */
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	cr_assert_not_null(old = h_read_file(path, &old_len));
	cr_assert_gt(old_len, 4096);
	old[old_len / 2] ^= 0x5a;
	cr_assert_eq(h_write_file(path, old, old_len), 0);
	free(old);
	h_start(&sd, &cl);
	cr_assert_eq(log_count_at_least("does not match the index", 2, 30000),
	    0, "a damaged filter was taken back");
	cr_assert_eq(log_count_at_least("event ids built", 3, 30000), 0);
	check_history(1);
}

Test(diskindex, restart_reads_only_the_tail)
{
	static struct h_load load;
	const char *const extra[] = { "--segment-size", "16K", NULL };
	struct ipc_status_rep st;
	uint64_t head, sealed;
	char want[128];

	h_start_fresh(&sd, &cl, extra, 10000);
	h_load_running(&load, &sd, 8, 200, 3000, 60000);
	h_load_stop(&load);
	head = h_load_verify(&load, &cl);
	st = h_status(&cl);
	cr_assert_gt(st.segments, 10);
	/* the hot segment's first position */
	sealed = head;
	{
		struct h_result r;
		char id[UUID_STR_LEN], other[UUID_STR_LEN];

		rotate();
		cr_assert_eq(h_append1(&cl, h_uuid(other), EF_EXPECT_ANY, 0,
		                 h_uuid(id), "Tail", "{}", &r),
		    EF_S_OK);
	}
	h_wait_indexed(&cl, sealed, 60000);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_start(&sd, &cl);
	st = h_status(&cl);
	cr_assert_eq(st.head, head + 1);
	cr_assert_eq(st.indexed_to, sealed);
	cr_assert_eq(st.recovered_events, 1,
	    "the start read %llu of %llu "
	    "events",
	    (unsigned long long)st.recovered_events,
	    (unsigned long long)st.head);
	snprintf(want, sizeof(want),
	    "read 1 from the log, %llu are indexed "
	    "on disk",
	    (unsigned long long)sealed);
	cr_assert(h_log_has(&sd, want), "no \"%s\" in the log", want);
	/* and everything reads back */
	cr_assert_geq(h_load_verify(&load, &cl), head);
	h_load_retry_pending(&load, &cl);
	h_load_free(&load);
}

Test(diskindex, deleted_then_rebuilt)
{
	const char *const extra[] = { "--segment-size", "4K", NULL };
	struct h_event *before, *after;
	struct ipc_status_rep st;
	char cmd[H_PATH + 64];
	uint64_t head;
	size_t n, m, i;

	h_start_fresh(&sd, &cl, extra, 10000);
	head = indexed_history();
	cr_assert_eq(h_read_all(&cl, 0, &before, &n), EF_S_OK);
	h_stored_stop_ok(&sd, &cl, SIGTERM);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/index'", sd.data_dir);
	cr_assert_eq(system(cmd), 0);
	/* rebuilt in transactions of 5 events (test builds only) */
	setenv("EVENTFOLD_INDEX_CHUNK", "5", 1);
	h_start(&sd, &cl);
	unsetenv("EVENTFOLD_INDEX_CHUNK");
	st = h_status(&cl);
	cr_assert_eq(st.recovered_events, head,
	    "without an index the start "
	    "reads everything");
	h_wait_indexed(&cl, head, 60000);
	cr_assert(h_log_has(&sd, "empty index"), "the rebuild was not logged");
	cr_assert(h_log_has(&sd, "segments to index"),
	    "no rebuild progress logged");
	cr_assert(h_log_has(&sd, " indexed ("), "no rebuild progress logged");
	cr_assert_eq(h_read_all(&cl, 0, &after, &m), EF_S_OK);
	cr_assert_eq(m, n);
	for (i = 0; i < n; i++) {
		cr_assert_arr_eq(after[i].event_id, before[i].event_id,
		    UUID_LEN);
		cr_assert_eq(after[i].pos, before[i].pos);
		cr_assert_eq(after[i].version, before[i].version);
	}
	h_events_free(before, n);
	h_events_free(after, m);
	check_history(0);
	/* the rebuilt index serves the next start */
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_start(&sd, &cl);
	cr_assert_eq(h_status(&cl).recovered_events, 0);
	check_history(0);
}

/* The number of distinct streams the whole log holds. */
static uint64_t
streams_in_log(void)
{
	struct h_event *evs;
	uint64_t n = 0;
	size_t count, i, j;

	cr_assert_eq(h_read_all(&cl, 0, &evs, &count), EF_S_OK);
	for (i = 0; i < count; i++) {
		for (j = 0; j < i; j++)
			if (memcmp(evs[j].stream_id, evs[i].stream_id,
			        UUID_LEN) == 0)
				break;
		if (j == i)
			n++;
	}
	h_events_free(evs, count);
	return n;
}

Test(diskindex, killed_at_every_indexing_crash_point, .timeout = 400)
{
	static const char *const points[] = { "index.before_commit",
		"index.after_commit", "index.between_chunks" };
	static struct h_load load;
	const char *const extra[] = { "--segment-size", "16K", NULL };
	uint64_t head, acked;
	size_t p;

	h_need_crashpoints();
	for (p = 0; p < 3; p++) {
		char env[64];

		h_stored_init(&sd, h_tmpdir(), extra);
		h_load_init(&load, &sd, 8, 200);
		snprintf(env, sizeof(env), "%s:3", points[p]);
		/* several LMDB transactions per (16 KiB) segment */
		setenv("EVENTFOLD_INDEX_CHUNK", "16", 1);
		acked = h_load_killed_at(&sd, &load, env, 60000);
		h_start(&sd, &cl);
		unsetenv("EVENTFOLD_INDEX_CHUNK");
		/* two segments were indexed before the kill; the third is
		 * indexed again (before_commit) or was (after_commit) */
		head = h_load_verify(&load, &cl);
		cr_assert_geq(head, acked);
		/* a stream is counted once, even one that a partly indexed
		 * segment already put on disk (a thread whose first append
		 * was not yet durable at the kill has no stream yet) */
		cr_assert_eq(h_status(&cl).streams, streams_in_log(),
		    "%s: STATUS counts %llu streams", points[p],
		    (unsigned long long)h_status(&cl).streams);
		h_load_retry_pending(&load, &cl);
		h_load_goes_on(&load, &cl, acked);
		h_load_retry_pending(&load, &cl);
		rotate();
		head = h_load_verify(&load, &cl);
		h_wait_indexed(&cl, head, 60000);
		/* the ids the index holds still make retries idempotent */
		h_load_retry_pending(&load, &cl);
		cr_assert_eq(h_status(&cl).head, head);
		h_stored_stop_ok(&sd, &cl, SIGTERM);
		h_start(&sd, &cl);
		cr_assert_eq(h_load_verify(&load, &cl), head);
		cr_assert_eq(h_status(&cl).recovered_events, 0);
		cr_assert_eq(h_status(&cl).streams, load.nthreads);
		h_stored_stop_ok(&sd, &cl, SIGTERM);
		h_load_free(&load);
	}
}

Test(diskindex, a_sealed_segment_changed_behind_its_back)
{
	const char *const extra[] = { "--segment-size", "4K", NULL };
	char path[H_PATH + 64], want[H_PATH + 128], *log;
	uint64_t head;
	size_t size;
	uint8_t *img;

	h_start_fresh(&sd, &cl, extra, 10000);
	head = indexed_history();
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	/* bytes appended to the first sealed (and indexed) segment: the
	 * index no longer matches, every segment is read, and that one is
	 * found corrupt where the appended bytes begin */
	snprintf(path, sizeof(path), "%s/seg-00000000000000000000.log",
	    sd.data_dir);
	img = (uint8_t *)h_read_file(path, &size);
	cr_assert_not_null(img);
	img = realloc(img, size + 100);
	memset(img + size, 0x5a, 100);
	cr_assert_eq(h_write_file(path, img, size + 100), 0);
	h_stored_spawn(&sd);
	cr_assert_eq(h_stored_wait_ready(&sd, 15000), -1, "stored started");
	cr_assert(h_log_has(&sd, "does not match the log"),
	    "the mismatch was not "
	    "noticed");
	snprintf(want, sizeof(want), "%s: corrupt at offset %zu", path, size);
	log = h_read_file(sd.log, NULL);
	cr_assert(log != NULL && strstr(log, want) != NULL,
	    "no \"%s\" in:\n%s", want, log);
	free(log);
	/* put back as it was: starts, rebuilds, answers as before */
	cr_assert_eq(h_write_file(path, img, size), 0);
	free(img);
	h_start(&sd, &cl);
	h_wait_indexed(&cl, head, 60000);
	check_history(0);
}

/*
 * LMDB lookups that fail (an I/O error, a damaged index) get error
 * replies naming the index, and stored keeps serving everything that
 * does not need the failing lookup; once the index reads again, every
 * request succeeds as before. Test builds turn the failure on and off
 * with a fault point (crashpoint.h).
 */
/* With index reads failing: reads of sealed history are errors with the
 * reason. */
static void
sealed_reads_fail(void)
{
	struct h_event *evs;
	struct ipc_out o;
	struct ipc_list_req lq;
	size_t n;
	int st;

	st = h_read_stream(&cl, streams[3], 0, &evs, &n);
	cr_assert_eq(st, EF_S_INTERNAL, "read_stream: %s",
	    ipc_status_name(st));
	h_events_free(evs, n);
	st = h_read_all(&cl, 0, &evs, &n);
	cr_assert_eq(st, EF_S_DATA_LOSS, "read_all: %s", ipc_status_name(st));
	h_events_free(evs, n);
	memset(&lq, 0, sizeof(lq));
	lq.max_count = 10;
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_LIST_STREAMS, client_request_id(&cl));
	ipc_list_req_encode(&o, &lq);
	h_call_refused(&cl, &o, EF_S_INTERNAL, "index");
	ipc_out_free(&o);
}

Test(diskindex, index_read_errors_are_error_replies)
{
	const char *const extra[] = { "--segment-size", "4K", NULL };
	struct h_event *evs;
	struct h_result r;
	char fault[H_PATH + 16], id[UUID_STR_LEN], tail[UUID_STR_LEN];
	uint64_t head;
	size_t n;
	int st;

	h_need_crashpoints();
	h_stored_init(&sd, h_tmpdir(), extra);
	snprintf(fault, sizeof(fault), "%s/fault", sd.dir);
	setenv("EVENTFOLD_FAULT_FILE", fault, 1);
	h_start(&sd, &cl);
	unsetenv("EVENTFOLD_FAULT_FILE");
	head = indexed_history();
	/* a stream that lives in the tail (RAM) */
	cr_assert_eq(h_append1(&cl, h_uuid(tail), EF_EXPECT_NO_STREAM, 0,
	                 h_uuid(id), "Tail", "{}", &r),
	    EF_S_OK, "%s", r.msg);

	cr_assert_eq(h_write_file(fault, "index.read\n", 11), 0);
	sealed_reads_fail();
	/* appends that must look into the index: refused, nothing written */
	cr_assert_eq(h_append1(&cl, streams[2], EF_EXPECT_ANY, 0, ids[2][0],
	                 "Hist", "\"2/0\"", &r),
	    EF_S_INTERNAL, "replay: %s", r.msg);
	cr_assert(strstr(r.msg, "index") != NULL, "%s", r.msg);
	cr_assert_eq(h_append1(&cl, streams[5], EF_EXPECT_EXACT, 1, h_uuid(id),
	                 "More", "{}", &r),
	    EF_S_INTERNAL,
	    "expected "
	    "version: %s",
	    r.msg);
	cr_assert_eq(h_status(&cl).head, head + 1, "a refused append wrote");
	/* what does not need the index goes on */
	cr_assert_eq(h_append1(&cl, tail, EF_EXPECT_EXACT, 0, h_uuid(id),
	                 "Tail", "{}", &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(h_read_stream(&cl, tail, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, 2);
	h_events_free(evs, n);

	/* the index reads again: everything as before */
	cr_assert_eq(unlink(fault), 0);
	cr_assert_eq(h_append1(&cl, streams[5], EF_EXPECT_EXACT, 1, h_uuid(id),
	                 "More", "{}", &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(h_read_all(&cl, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, head + 3);
	h_events_free(evs, n);
	cr_assert_eq(waitpid(sd.pid, &st, WNOHANG), 0, "stored exited");
	h_stored_stop_ok(&sd, &cl, SIGTERM);
}

/*
 * The LMDB map grows (doubling) while lookups run on other threads:
 * LMDB allows that only with no transaction open in the process, and
 * growing it under a reader crashed stored at 15M events in the
 * benchmark. Test builds start the map at 64 KiB so that it grows
 * several times here, under lookups that all reach LMDB.
 */
struct looker {
	pthread_t thr;
	int stop; /* atomic */
	uint64_t calls;
	int errors;
	char error[600];
};

static void *
looker_main(void *arg)
{
	struct looker *lk = arg;
	struct ef_client c;
	struct h_event *evs;
	struct h_result r;
	char payload[32];
	size_t n;
	int i, st;

	h_client(&c, &sd, 10000);
	for (i = 0; !__atomic_load_n(&lk->stop, __ATOMIC_RELAXED); i++) {
		int s = i % NS;

		/* an idempotent retry: a Bloom hit, then an LMDB lookup */
		snprintf(payload, sizeof(payload), "\"%d/0\"", s);
		st = h_append1(&c, streams[s], EF_EXPECT_ANY, 0, ids[s][0],
		    "Hist", payload, &r);
		if (st == EF_S_OK && r.rep.first_version != 0)
			st = -1;
		if (st == EF_S_OK) {
			st = h_read_stream(&c, streams[s], 0, &evs, &n);
			if (st == EF_S_OK && n != (size_t)(s % 4 + 1))
				st = -2;
			h_events_free(evs, n);
		}
		lk->calls++;
		if (st != EF_S_OK && lk->errors++ == 0)
			snprintf(lk->error, sizeof(lk->error),
			    "stream %d: "
			    "status %d: %s",
			    s, st, r.msg);
	}
	client_close(&c);
	return NULL;
}

Test(diskindex, map_grows_under_lookups)
{
	const char *const extra[] = { "--segment-size", "16K", NULL };
	static struct h_load load;
	struct looker lk[2];
	int i, st;

	h_need_crashpoints();
	h_stored_init(&sd, h_tmpdir(), extra);
	setenv("EVENTFOLD_INDEX_MAP_KB", "64", 1);
	setenv("EVENTFOLD_INDEX_CHUNK", "300", 1);
	h_start(&sd, &cl);
	unsetenv("EVENTFOLD_INDEX_MAP_KB");
	unsetenv("EVENTFOLD_INDEX_CHUNK");
	indexed_history();
	memset(lk, 0, sizeof(lk));
	for (i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&lk[i].thr, NULL, looker_main,
		                 &lk[i]),
		    0);
	h_load_init(&load, &sd, 4, 200);
	h_load_start(&load);
	cr_assert_eq(h_load_wait_acked(&load, 8000, 120000), 0,
	    "the load stalled at %llu events",
	    (unsigned long long)__atomic_load_n(&load.acked,
	        __ATOMIC_RELAXED));
	h_load_stop(&load);
	for (i = 0; i < 2; i++) {
		__atomic_store_n(&lk[i].stop, 1, __ATOMIC_RELAXED);
		pthread_join(lk[i].thr, NULL);
	}
	cr_assert_eq(waitpid(sd.pid, &st, WNOHANG), 0,
	    "stored died (wait "
	    "status 0x%x)",
	    st);
	for (i = 0; i < 2; i++) {
		cr_assert_gt(lk[i].calls, 0);
		cr_assert_eq(lk[i].errors, 0,
		    "looker %d: %d errors, first: %s", i, lk[i].errors,
		    lk[i].error);
	}
	h_load_retry_pending(&load, &cl);
	rotate();
	h_wait_indexed(&cl, h_status(&cl).head, 60000);
	cr_assert(h_log_has(&sd, "map grown"), "the map never grew");
	h_load_verify(&load, &cl);
	h_load_free(&load);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
}
