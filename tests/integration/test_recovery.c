/* SPDX-License-Identifier: MIT */
/*
 * test_recovery.c - what a real eventfold-stored does with its data
 * directory across restarts: everything persists (SIGTERM and kill -9);
 * a torn tail at every byte offset of the last record is cut and every
 * earlier event survives, and new appends work; a flipped byte before
 * the tail makes stored refuse to start, naming the offset, while
 * `eventfoldctl verify` exits 5 (and --repair yes cuts there); a second
 * stored on the same data directory (or the same sockets) exits with a
 * clear message and the first keeps serving; SIGTERM during a 16-client
 * load exits 0 with every acknowledged event present.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "harness.h"

TestSuite(recovery, .fini = h_cleanup, .timeout = 180);

static struct h_stored sd;
static struct ef_client cl;

static void
start_again(void)
{
	h_stored_start(&sd);
	h_client(&cl, &sd, 10000);
}

static void
assert_events_eq(const struct h_event *a, const struct h_event *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		cr_assert_arr_eq(a[i].event_id, b[i].event_id, UUID_LEN,
		    "event %zu", i);
		cr_assert_arr_eq(a[i].stream_id, b[i].stream_id, UUID_LEN);
		cr_assert_eq(a[i].version, b[i].version);
		cr_assert_eq(a[i].pos, b[i].pos);
		cr_assert_eq(a[i].recorded_at, b[i].recorded_at,
		    "recorded_at changed at %zu", i);
		cr_assert_eq(a[i].type_len, b[i].type_len);
		cr_assert_arr_eq(a[i].type, b[i].type, a[i].type_len);
		cr_assert_eq(a[i].md_len, b[i].md_len);
		cr_assert_arr_eq(a[i].md, b[i].md, a[i].md_len);
		cr_assert_eq(a[i].payload_len, b[i].payload_len);
		cr_assert_arr_eq(a[i].payload, b[i].payload, a[i].payload_len,
		    "payload of event %zu", i);
	}
}

/* Appends n events in n appends to streams[i % ns]; small payloads. */
static void
append_some(int n, char (*streams)[UUID_STR_LEN], int ns, int first)
{
	struct h_result r;
	char id[UUID_STR_LEN], payload[64];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(payload, sizeof(payload), "{\"i\":%d}", first + i);
		cr_assert_eq(h_append1(&cl, streams[i % ns], EF_EXPECT_ANY, 0,
		                 h_uuid(id), "Some", payload, &r),
		    EF_S_OK, "%s", r.msg);
	}
}

Test(recovery, everything_persists_across_restarts)
{
	char streams[10][UUID_STR_LEN], ids[5][UUID_STR_LEN], md[64];
	uint8_t bin[300];
	struct ipc_proposed evs[5];
	struct h_event *before, *after;
	struct ipc_status_rep st;
	struct h_result r;
	char *out = NULL, *err = NULL;
	size_t n, m;
	int i, k, rc;

	for (i = 0; i < (int)sizeof(bin); i++)
		bin[i] = (uint8_t)(i * 7 + 3);
	h_start_fresh(&sd, &cl, NULL, 10000);
	for (i = 0; i < 10; i++)
		h_uuid(streams[i]);
	/* 40 appends of 5 events: metadata, binary payloads, empty ones */
	for (k = 0; k < 40; k++) {
		snprintf(md, sizeof(md), "{\"corr\":%d}", k);
		for (i = 0; i < 5; i++) {
			memset(&evs[i], 0, sizeof(evs[i]));
			evs[i].event_id.ptr = h_uuid(ids[i]);
			evs[i].event_id.len = 36;
			evs[i].type.ptr = i % 2 ? "Odd" : "EvenTypeName";
			evs[i].type.len = (uint32_t)strlen(evs[i].type.ptr);
			evs[i].metadata = (const uint8_t *)md;
			evs[i].metadata_len = i == 4 ? 0 :
			                               (uint32_t)strlen(md);
			evs[i].payload = bin;
			evs[i].payload_len = (uint32_t)((k * 5 + i) % 300);
		}
		cr_assert_eq(h_append(&cl, streams[k % 10], EF_EXPECT_ANY, 0,
		                 evs, 5, &r),
		    EF_S_OK, "%s", r.msg);
	}
	cr_assert_eq(h_read_all(&cl, 0, &before, &n), EF_S_OK);
	cr_assert_eq(n, 200);

	h_stored_stop_ok(&sd, &cl, SIGTERM);
	start_again();
	st = h_status(&cl);
	cr_assert_eq(st.head, 200);
	cr_assert_eq(st.recovered_events, 200);
	cr_assert_eq(st.streams, 10);
	cr_assert_eq(h_read_all(&cl, 0, &after, &m), EF_S_OK);
	cr_assert_eq(m, n);
	assert_events_eq(before, after, n);
	h_events_free(after, m);

	/* acknowledged means durable: kill -9 loses nothing */
	append_some(7, streams, 10, 0);
	cr_assert_eq(h_read_all(&cl, 0, &before, &n), EF_S_OK);
	h_stored_stop_ok(&sd, &cl, SIGKILL);
	start_again();
	cr_assert_eq(h_read_all(&cl, 0, &after, &m), EF_S_OK);
	cr_assert_eq(m, 207);
	cr_assert_eq(n, 207);
	assert_events_eq(before, after, n);
	h_events_free(after, m);
	h_events_free(before, n);

	/* the CLI sees the same */
	rc = h_ctl(sd.dir,
	    (const char *const[]){ "--runtime-dir", sd.run_dir, "status",
	        "--json", NULL },
	    NULL, 0, 10000, &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert(strstr(out, "\"head\":207,\"streams\":10") != NULL, "%s",
	    out);
	free(out);
	free(err);
}

/* Offsets of the batch frames of a log image (n of them). */
static size_t
batch_offsets(const uint8_t *img, size_t size, uint64_t *off, size_t max)
{
	uint64_t o = LOGFILE_HDR, len;
	size_t n = 0;

	while (o < size && n < max) {
		cr_assert_eq(batch_verify(img, size, o, 0, 0, &len), 0,
		    "the log written by stored does not verify at %llu",
		    (unsigned long long)o);
		off[n++] = o;
		o += len;
	}
	cr_assert_eq(o, size);
	return n;
}

static char *
log_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/seg-00000000000000000000.log", sd.data_dir);
	return buf;
}

Test(recovery, torn_tail_at_every_offset_of_the_last_record, .timeout = 240)
{
	char streams[2][UUID_STR_LEN], path[H_PATH + 32], id[UUID_STR_LEN];
	struct h_event *orig, *got;
	struct ipc_status_rep st;
	struct h_result r;
	uint64_t off[16];
	uint8_t *img;
	size_t size, n, m, nb, cut, cuts = 0;
	char *log;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(streams[0]);
	h_uuid(streams[1]);
	append_some(5, streams, 2, 0);
	/* the last record: one small event in its own batch */
	cr_assert_eq(h_append1(&cl, streams[0], EF_EXPECT_ANY, 0, h_uuid(id),
	                 "L", "x", &r),
	    EF_S_OK);
	cr_assert_eq(h_read_all(&cl, 0, &orig, &n), EF_S_OK);
	cr_assert_eq(n, 6);
	h_stored_stop_ok(&sd, &cl, SIGTERM);

	img = (uint8_t *)h_read_file(log_path(path, sizeof(path)), &size);
	cr_assert_not_null(img);
	nb = batch_offsets(img, size, off, 16);
	cr_assert_eq(nb, 6);
	/* from the start of the last batch frame to one byte short of the
	 * end: every prefix of the last record (and of its frame header) */
	for (cut = off[5]; cut < size; cut++) {
		cr_assert_eq(h_write_file(path, img, cut), 0);
		start_again();
		st = h_status(&cl);
		cr_assert_eq(st.head, 5, "cut at %zu of %zu: head %llu", cut,
		    size, (unsigned long long)st.head);
		cr_assert_eq(st.log_bytes, off[5],
		    "cut at %zu: the torn tail "
		    "was not truncated",
		    cut);
		cr_assert_eq(h_read_all(&cl, 0, &got, &m), EF_S_OK);
		cr_assert_eq(m, 5);
		assert_events_eq(orig, got, 5);
		h_events_free(got, m);
		/* the store takes new appends, right after the good data */
		cr_assert_eq(h_append1(&cl, streams[1], EF_EXPECT_EXACT, 1,
		                 h_uuid(id), "After", "{}", &r),
		    EF_S_OK, "cut at %zu: %s", cut, r.msg);
		cr_assert_eq(r.rep.first_pos, 5);
		h_stored_stop_ok(&sd, &cl, SIGKILL);
		cuts++;
	}
	cr_assert_eq(cuts, size - off[5]);
	/* the last round's append survived its restart too */
	start_again();
	cr_assert_eq(h_read_all(&cl, 0, &got, &m), EF_S_OK);
	cr_assert_eq(m, 6);
	assert_events_eq(orig, got, 5);
	cr_assert_eq(got[5].type_len, 5);
	cr_assert_arr_eq(got[5].type, "After", 5);
	h_events_free(got, m);
	log = h_read_file(sd.log, NULL);
	cr_assert(log != NULL && strstr(log, "torn tail") != NULL,
	    "the cut was not logged");
	free(log);
	h_events_free(orig, n);
	free(img);
}

/* Starts stored and expects it to refuse: returns its log. */
static char *
start_refused(void)
{
	char *log;
	int rc;

	h_stored_spawn(&sd);
	rc = h_stored_wait_ready(&sd, 15000);
	cr_assert_eq(rc, -1, "stored started on a corrupt log (%d)", rc);
	cr_assert(WIFEXITED(sd.status) && WEXITSTATUS(sd.status) != 0,
	    "wait status 0x%x", sd.status);
	log = h_read_file(sd.log, NULL);
	cr_assert_not_null(log);
	return log;
}

/* The byte at `at` of the log at path flipped, in the batch at offset
 * where: stored refuses to start, naming where, and leaves the log as
 * it was (size bytes); `eventfoldctl verify` names it too. */
static void
corrupt_before_the_tail(const char *path, uint64_t at, uint64_t where,
    size_t size)
{
	const char *const verify[] = { "--data-dir", sd.data_dir, "verify",
		NULL };
	char want[128], *out = NULL, *err = NULL, *log;
	size_t size2;
	int rc;

	h_flip(path, at);
	log = start_refused();
	snprintf(want, sizeof(want), "corrupt at offset %llu",
	    (unsigned long long)where);
	cr_assert(strstr(log, want) != NULL,
	    "the message does not "
	    "name offset %llu:\n%s",
	    (unsigned long long)where, log);
	free(log);
	free(h_read_file(path, &size2));
	cr_assert_eq(size2, size, "stored changed a corrupt log");
	rc = h_ctl(sd.dir, verify, NULL, 0, 10000, &out, &err);
	cr_assert_eq(rc, 5, "eventfoldctl verify exit %d: %s %s", rc, out,
	    err);
	snprintf(want, sizeof(want), "CORRUPT at offset %llu",
	    (unsigned long long)where);
	cr_assert(strstr(out, want) != NULL, "%s", out);
	free(out);
	free(err);
}

Test(recovery, flipped_byte_before_the_tail)
{
	char streams[3][UUID_STR_LEN], path[H_PATH + 32];
	char *out = NULL, *err = NULL;
	const char *const verify[] = { "--data-dir", sd.data_dir, "verify",
		NULL };
	uint64_t off[16];
	uint8_t *img;
	size_t size, nb;
	struct h_event *got;
	size_t m;
	int rc, target;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(streams[0]);
	h_uuid(streams[1]);
	h_uuid(streams[2]);
	append_some(10, streams, 3, 0);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	log_path(path, sizeof(path));
	img = (uint8_t *)h_read_file(path, &size);
	nb = batch_offsets(img, size, off, 16);
	cr_assert_eq(nb, 10);
	free(img);

	/* intact: verify says OK */
	rc = h_ctl(sd.dir,
	    (const char *const[]){ "--data-dir", sd.data_dir, "verify", NULL },
	    NULL, 0, 10000, &out, &err);
	cr_assert_eq(rc, 0, "verify of an intact log: %d %s %s", rc, out, err);
	cr_assert(strstr(out, "OK: 10 events in 10 batches") != NULL, "%s",
	    out);
	free(out);
	free(err);

	/* a payload byte of the fifth batch, then a header byte of the
	 * first: both are corruption before the tail */
	for (target = 0; target < 2; target++) {
		uint64_t at = target == 0 ?
		    off[4] + BATCH_HDR + RECORD_HDR + 6 :
		    off[0] + 9;

		corrupt_before_the_tail(path, at,
		    target == 0 ? off[4] : off[0], size);
		if (target == 0)
			h_flip(path,
			    at); /* undo, then break the first batch */
	}

	/* the explicit repair cuts the log there and starts */
	sd.extra[0] = "--repair";
	sd.extra[1] = "yes";
	sd.extra[2] = NULL;
	start_again();
	cr_assert_eq(h_head(&cl), 0, "repair kept events after the cut");
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	sd.extra[0] = NULL;
	start_again();
	cr_assert_eq(h_read_all(&cl, 0, &got, &m), EF_S_OK);
	cr_assert_eq(m, 0);
	h_events_free(got, m);
	append_some(2, streams, 3, 100);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	rc = h_ctl(sd.dir, verify, NULL, 0, 10000, &out, &err);
	cr_assert_eq(rc, 0, "verify after repair: %s", out);
	free(out);
	free(err);
}

Test(recovery, flipped_byte_in_the_last_batch_is_a_torn_tail)
{
	char streams[1][UUID_STR_LEN], path[H_PATH + 32];
	struct h_event *orig, *got;
	uint64_t off[16];
	uint8_t *img;
	size_t size, n, m;
	char *out = NULL, *err = NULL;
	int rc;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(streams[0]);
	append_some(4, streams, 1, 0);
	cr_assert_eq(h_read_all(&cl, 0, &orig, &n), EF_S_OK);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	log_path(path, sizeof(path));
	img = (uint8_t *)h_read_file(path, &size);
	cr_assert_eq(batch_offsets(img, size, off, 16), 4);
	free(img);
	h_flip(path, size - 2);
	/* verify calls it a torn tail, not corruption */
	rc = h_ctl(sd.dir,
	    (const char *const[]){ "--data-dir", sd.data_dir, "verify", NULL },
	    NULL, 0, 10000, &out, &err);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "torn tail") != NULL, "%s", out);
	free(out);
	free(err);
	start_again();
	cr_assert_eq(h_read_all(&cl, 0, &got, &m), EF_S_OK);
	cr_assert_eq(m, 3);
	assert_events_eq(orig, got, 3);
	h_events_free(got, m);
	h_events_free(orig, n);
}

Test(recovery, second_stored_on_the_same_data_dir)
{
	struct h_stored two;
	char streams[1][UUID_STR_LEN], *log;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(streams[0]);
	append_some(3, streams, 1, 0);

	/* same data directory, its own sockets */
	h_stored_init(&two, h_tmpdir(), NULL);
	snprintf(two.data_dir, sizeof(two.data_dir), "%s", sd.data_dir);
	h_stored_start_fails(&two, "the second stored");
	log = h_read_file(two.log, NULL);
	cr_assert(log != NULL &&
	        strstr(log,
	            "in use by another "
	            "eventfold-stored") != NULL,
	    "no clear message:\n%s", log);
	cr_assert(strstr(log, sd.data_dir) != NULL,
	    "the message does not "
	    "name the directory:\n%s",
	    log);
	free(log);
	/* the first one is unharmed */
	append_some(2, streams, 1, 3);
	cr_assert_eq(h_head(&cl), 5);

	/* same sockets, another data directory */
	h_stored_init(&two, h_tmpdir(), NULL);
	snprintf(two.run_dir, sizeof(two.run_dir), "%s", sd.run_dir);
	h_stored_start_fails(&two, "a second stored on the same sockets");
	log = h_read_file(two.log, NULL);
	cr_assert(log != NULL && strstr(log, sd.run_dir) != NULL,
	    "the message does not name the socket:\n%s", log);
	free(log);
	append_some(1, streams, 1, 5);
	cr_assert_eq(h_head(&cl), 6);
}

Test(recovery, sigterm_during_load)
{
	static struct h_load load;
	uint64_t n;

	h_start_fresh(&sd, &cl, NULL, 10000);
	h_load_init(&load, &sd, 16, 200);
	h_load_start(&load);
	cr_assert_eq(h_load_wait_acked(&load, 500, 30000), 0,
	    "the load does not get going");
	h_sleep_ms(300);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_load_stop(&load);
	start_again();
	n = h_load_verify(&load, &cl);
	cr_assert_geq(n, __atomic_load_n(&load.acked, __ATOMIC_RELAXED));
	/* what was in flight can be retried, idempotently */
	h_load_retry_pending(&load, &cl);
	n = h_load_verify(&load, &cl);
	fprintf(stderr, "# %llu events acknowledged, %llu in the log\n",
	    (unsigned long long)load.acked, (unsigned long long)n);
	h_load_free(&load);
}
