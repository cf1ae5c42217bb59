/* SPDX-License-Identifier: MIT */
/*
 * test_archiver.c - the cold archive inside a real eventfold-stored
 * (tiny segments, hot_segments 0 or 1, 4 KiB frames): ReadAll and
 * ReadStream pages of every size, both directions, across hot, sealed
 * and archived segments and every boundary between them, before and
 * after a restart that reads only the tail; idempotent retries, reused
 * ids and expected-version checks against streams and ids that live only
 * in archived segments; a flipped byte in an archived frame answers
 * DATA_LOSS naming the archive and offset, stored keeps serving and
 * `eventfoldctl verify` names the same; `eventfoldctl archive` and
 * `segments`; and stored killed at every archiving crash point under
 * load comes back with every acknowledged event exactly once, in order,
 * with verify agreeing and no file left twice or lost.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"
#include "segfile.h"

TestSuite(archiver, .fini = h_cleanup, .timeout = 300);

static struct h_stored sd;
static struct ef_client cl;

static void wait_archived(uint64_t n);
static void check_files(void);

static void
start(void)
{
	h_stored_start(&sd);
	h_client(&cl, &sd, 10000);
}

static void
rotate(void)
{
	char *out = NULL;
	int rc = h_ctl_at(&sd, (const char *const[]){ "rotate", NULL }, &out,
	    NULL);

	cr_assert_eq(rc, 0, "eventfoldctl rotate: %d %s", rc, out);
	free(out);
}

/* `eventfoldctl segments --json`, checked for contiguity from 0 to head:
 * every segment sealed but the last, which is hot. Returns the count. */
struct seginfo {
	uint64_t first, events, bytes;
	int sealed, archived;
};

static size_t
segments(struct seginfo *segs, size_t max, uint64_t head)
{
	char *out = NULL, *line, *save = NULL;
	json_t *j, *last;
	size_t n = 0;
	uint64_t next = 0;
	int rc;

	rc = h_ctl_at(&sd, (const char *const[]){ "segments", "--json", NULL },
	    &out, NULL);
	cr_assert_eq(rc, 0, "eventfoldctl segments: %d", rc);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		cr_assert_lt(n, max);
		j = json_loads(line, 0, NULL);
		cr_assert_not_null(j, "not JSON: %s", line);
		segs[n].first = json_integer_value(
		    json_object_get(j, "first"));
		segs[n].events = json_integer_value(
		    json_object_get(j, "events"));
		segs[n].bytes = json_integer_value(
		    json_object_get(j, "bytes"));
		segs[n].archived = strcmp(json_string_value(
		                              json_object_get(j, "state")),
		                       "archived") == 0;
		segs[n].sealed = segs[n].archived ||
		    strcmp(json_string_value(json_object_get(j, "state")),
		        "sealed") == 0;
		if (segs[n].archived) {
			/* a ratio is shown, from the bytes on disk */
			cr_assert_gt(json_integer_value(
			                 json_object_get(j, "stored_bytes")),
			    0, "%s", line);
			cr_assert_gt(json_real_value(
			                 json_object_get(j, "ratio")),
			    1.0, "%s", line);
		}
		last = json_object_get(j, "last");
		if (segs[n].events > 0)
			cr_assert_eq(json_integer_value(last),
			    segs[n].first + segs[n].events - 1, "%s", line);
		else
			cr_assert(json_is_null(last), "%s", line);
		cr_assert_eq(segs[n].first, next,
		    "segment %zu starts at %llu, "
		    "expected %llu",
		    n, (unsigned long long)segs[n].first,
		    (unsigned long long)next);
		next = segs[n].first + segs[n].events;
		json_decref(j);
		n++;
	}
	free(out);
	cr_assert_gt(n, 0);
	for (size_t i = 0; i + 1 < n; i++) {
		cr_assert(segs[i].sealed, "segment %zu is not sealed", i);
		cr_assert_gt(segs[i].events, 0, "sealed segment %zu is empty",
		    i);
	}
	cr_assert(!segs[n - 1].sealed, "the last segment is not hot");
	cr_assert_eq(next, head, "the segments hold %llu events, head %llu",
	    (unsigned long long)next, (unsigned long long)head);
	return n;
}

/* ------------------------------------------------------------------ */

static struct h_book book;
/* Polls STATUS until n segments are archived. */
static void
wait_archived(uint64_t n)
{
	uint64_t deadline = h_now_ms() + 60000;

	while (h_status(&cl).archived_segments < n) {
		cr_assert_lt(h_now_ms(), deadline,
		    "%llu segments were not "
		    "archived",
		    (unsigned long long)n);
		h_sleep_ms(20);
	}
}

static int
file_exists(const char *dir, const char *name)
{
	char path[H_PATH + 64];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &sb) == 0;
}

static size_t
count_archived(const struct seginfo *segs, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += segs[i].archived;
	return c;
}

/* The record book: 60 appends of 1..3 events over 3 streams with
 * rotations after many batch sizes, then one event per stream hot. */
static void
write_book(void)
{
	struct ipc_proposed evs[3];
	char ids[3][UUID_STR_LEN];
	uint64_t versions[H_BOOK_STREAMS] = { 0 };
	struct h_result r;
	uint32_t k, n;
	int a, s;

	for (s = 0; s < H_BOOK_STREAMS; s++)
		h_uuid(book.streams[s]);
	book.n = 0;
	for (a = 0; a < 60; a++) {
		n = 1 + (uint32_t)(a * 7 % 3);
		s = a * 5 % H_BOOK_STREAMS;
		memset(evs, 0, sizeof(evs));
		for (k = 0; k < n; k++) {
			evs[k].event_id.ptr = h_uuid(ids[k]);
			evs[k].event_id.len = 36;
			evs[k].type.ptr = "Boundary";
			evs[k].type.len = 8;
			evs[k].payload =
			    (const uint8_t *)"{\"pad\":\"0123456789"
			                     "01234567890123456789012345678901"
			                     "23456789\"}";
			evs[k].payload_len = 60;
		}
		cr_assert_eq(h_append(&cl, book.streams[s], EF_EXPECT_ANY, 0,
		                 evs, n, &r),
		    EF_S_OK, "%s", r.msg);
		cr_assert_eq(r.rep.first_pos, book.n);
		for (k = 0; k < n; k++) {
			uuid_parse(ids[k], 36, book.ev[book.n].id);
			book.ev[book.n].stream = s;
			book.ev[book.n].version = versions[s]++;
			book.n++;
		}
		if (a % 4 == 0 || a % 7 == 3)
			rotate();
	}
	rotate();
	for (s = 0; s < H_BOOK_STREAMS; s++) {
		memset(evs, 0, sizeof(evs));
		evs[0].event_id.ptr = h_uuid(ids[0]);
		evs[0].event_id.len = 36;
		evs[0].type.ptr = "Hot";
		evs[0].type.len = 3;
		cr_assert_eq(h_append(&cl, book.streams[s], EF_EXPECT_ANY, 0,
		                 evs, 1, &r),
		    EF_S_OK, "%s", r.msg);
		uuid_parse(ids[0], 36, book.ev[book.n].id);
		book.ev[book.n].stream = s;
		book.ev[book.n].version = versions[s]++;
		book.n++;
	}
}

/* ------------------------------------------------------------------ */

Test(archiver, reads_across_hot_sealed_and_archived_segments)
{
	static struct seginfo segs[256];
	const char *const extra[] = { "--hot-segments", "3",
		"--archive-frame-size", "4K", "--archive-cache-mb", "0",
		NULL };
	struct ipc_status_rep st;
	size_t nseg, narc;

	h_stored_init(&sd, h_tmpdir(), extra);
	start();
	write_book();
	h_wait_indexed(&cl, book.n - H_BOOK_STREAMS, 30000);
	nseg = segments(segs, 256, book.n);
	cr_assert_geq(nseg, 20, "%zu segments", nseg);
	/* all but the newest 3 sealed ones, and the hot one */
	wait_archived(nseg - 4);
	nseg = segments(segs, 256, book.n);
	narc = count_archived(segs, nseg);
	cr_assert_eq(narc, nseg - 4);
	cr_assert(!segs[nseg - 2].archived && segs[nseg - 2].sealed);
	cr_assert(segs[nseg - 5].archived);
	cr_assert(!file_exists(sd.data_dir, "seg-00000000000000000000.log"));
	cr_assert(
	    file_exists(sd.data_dir, "seg-00000000000000000000.log.zst"));
	h_book_read(&cl, &book);
	st = h_status(&cl);
	cr_assert_eq(st.archived_segments, narc);
	cr_assert_gt(st.cache_misses, 0);
	cr_assert_gt(st.archived_raw, st.archived_bytes);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	/* a restart reads only the hot segment: 3 events */
	start();
	st = h_status(&cl);
	cr_assert_eq(st.recovered_events, H_BOOK_STREAMS);
	cr_assert_eq(st.archived_segments, narc);
	cr_assert_eq(segments(segs, 256, book.n), nseg);
	cr_assert_eq(count_archived(segs, nseg), narc);
	h_book_read(&cl, &book);
	/* and with a cache: the second pass is served from it */
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	sd.extra[5] = "64";
	start();
	h_book_read(&cl, &book);
	st = h_status(&cl);
	cr_assert_gt(st.cache_hits, 0);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	/* the index deleted: rebuilt from the archives (decompressed for
	 * the pass, then read through them again) */
	h_rm_index(&sd);
	start();
	h_book_read(&cl, &book);
	h_wait_indexed(&cl, book.n - H_BOOK_STREAMS, 30000);
	wait_archived(narc);
	cr_assert_eq(count_archived(segs, segments(segs, 256, book.n)), narc);
	h_book_read(&cl, &book);
	check_files();
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_verify_ok(&sd, book.n);
}

Test(archiver, idempotency_and_versions_in_archived_segments)
{
	const char *const extra[] = { "--hot-segments", "0", NULL };
	struct ipc_proposed evs[2];
	char ids[2][UUID_STR_LEN], other[UUID_STR_LEN], cold[UUID_STR_LEN];
	char warm[UUID_STR_LEN], fresh[UUID_STR_LEN];
	struct h_result r, again;
	uint64_t first;
	int k;

	h_stored_init(&sd, h_tmpdir(), extra);
	start();
	h_uuid(cold);
	h_uuid(other);
	memset(evs, 0, sizeof(evs));
	for (k = 0; k < 2; k++) {
		evs[k].event_id.ptr = h_uuid(ids[k]);
		evs[k].event_id.len = 36;
		evs[k].type.ptr = "Cold";
		evs[k].type.len = 4;
		evs[k].payload = (const uint8_t *)"{\"k\":1}";
		evs[k].payload_len = 7;
	}
	cr_assert_eq(h_append1(&cl, other, EF_EXPECT_ANY, 0, h_uuid(warm),
	                 "Warm", "{}", &r),
	    EF_S_OK, "%s", r.msg);
	/* the cold stream's two events, then sealed and archived */
	cr_assert_eq(h_append(&cl, cold, EF_EXPECT_NO_STREAM, 0, evs, 2, &r),
	    EF_S_OK, "%s", r.msg);
	first = r.rep.first_pos;
	rotate();
	cr_assert_eq(h_append1(&cl, other, EF_EXPECT_ANY, 0, h_uuid(warm),
	                 "Warm", "{}", &again),
	    EF_S_OK);
	h_wait_indexed(&cl, first + 2, 30000);
	wait_archived(1);
	cr_assert(
	    file_exists(sd.data_dir, "seg-00000000000000000000.log.zst"));
	cr_assert(!file_exists(sd.data_dir, "seg-00000000000000000000.log"));

	/* the same append again: the same positions, nothing written */
	cr_assert_eq(h_append(&cl, cold, EF_EXPECT_NO_STREAM, 0, evs, 2,
	                 &again),
	    EF_S_OK, "%s", again.msg);
	cr_assert_eq(again.rep.first_pos, first);
	cr_assert_eq(again.rep.last_pos, first + 1);
	cr_assert_eq(again.rep.first_version, 0);
	cr_assert_eq(again.rep.last_version, 1);
	/* an archived id with another payload: refused */
	evs[1].payload = (const uint8_t *)"{\"k\":2}";
	cr_assert_eq(h_append(&cl, cold, EF_EXPECT_ANY, 0, evs + 1, 1, &r),
	    EF_S_EVENT_ID_REUSED, "%s", r.msg);
	/* expected versions of a stream that lives only in the archive */
	cr_assert_eq(h_append1(&cl, cold, EF_EXPECT_EXACT, 0, h_uuid(fresh),
	                 "Cold", "{}", &r),
	    EF_S_VERSION_CONFLICT);
	cr_assert(
	    r.has_conflict && r.conflict.exists && r.conflict.actual == 1);
	cr_assert_eq(h_append1(&cl, cold, EF_EXPECT_NO_STREAM, 0,
	                 h_uuid(fresh), "Cold", "{}", &r),
	    EF_S_VERSION_CONFLICT);
	cr_assert_eq(h_append1(&cl, cold, EF_EXPECT_EXACT, 1, h_uuid(fresh),
	                 "Cold", "{}", &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(r.rep.first_version, 2);
	/* the same after a restart (tail only) */
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	start();
	evs[1].payload = (const uint8_t *)"{\"k\":1}";
	cr_assert_eq(h_append(&cl, cold, EF_EXPECT_NO_STREAM, 0, evs, 2,
	                 &again),
	    EF_S_OK, "%s", again.msg);
	cr_assert_eq(again.rep.first_pos, first);
	cr_assert_eq(h_append1(&cl, cold, EF_EXPECT_EXACT, 1, h_uuid(fresh),
	                 "Cold", "{}", &r),
	    EF_S_VERSION_CONFLICT);
	cr_assert(r.has_conflict && r.conflict.actual == 2);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
}

/* The file offset of the first zstd frame's compressed data: past the
 * frame header (4-byte magic, descriptor, content size ...). */
#define FRAME0_DATA 24

Test(archiver, flipped_byte_in_an_archived_frame)
{
	const char *const extra[] = { "--hot-segments", "0", NULL };
	char path[H_PATH + 64], *out = NULL;
	struct client_reply rep;
	struct ipc_read_rep rr;
	size_t size;
	uint8_t *img;
	int rc;

	h_stored_init(&sd, h_tmpdir(), extra);
	start();
	write_book();
	h_wait_indexed(&cl, book.n - H_BOOK_STREAMS, 30000);
	wait_archived(3);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_verify_ok(&sd, book.n);
	snprintf(path, sizeof(path), "%s/seg-00000000000000000000.log.zst",
	    sd.data_dir);
	img = (uint8_t *)h_read_file(path, &size);
	cr_assert_not_null(img);
	cr_assert_gt(size, FRAME0_DATA + 8);
	free(img);
	h_flip(path, FRAME0_DATA);
	rc = h_ctl_at(&sd, (const char *const[]){ "verify", NULL }, &out,
	    NULL);
	cr_assert_eq(rc, 5, "verify exit %d: %s", rc, out);
	cr_assert(strstr(out, path) != NULL &&
	        strstr(out,
	            "CORRUPT at file "
	            "offset 0 (frame 0") != NULL,
	    "verify did not name %s frame 0:\n"
	    "%s",
	    path, out);
	free(out);

	/* the start does not read archives: it serves, and the damaged
	 * frame's events are refused with DATA_LOSS naming the file */
	start();
	cr_assert_eq(h_status(&cl).recovered_events, H_BOOK_STREAMS);
	cr_assert_eq(client_read_all(&cl, 0, 1, EF_FORWARD, &rep, &rr),
	    EF_S_DATA_LOSS);
	cr_assert(strstr(rep.in.message.ptr,
	              "seg-00000000000000000000.log"
	              ".zst: damaged at file offset 0") != NULL,
	    "%.*s", (int)rep.in.message.len, rep.in.message.ptr);
	client_reply_free(&rep);
	cr_assert_eq(client_read_stream(&cl, book.streams[0], 0, 5, EF_FORWARD,
	                 &rep, &rr),
	    EF_S_DATA_LOSS);
	client_reply_free(&rep);
	/* still serving: the other segments and the hot one */
	cr_assert_eq(client_read_all(&cl, book.n - 1, 1, EF_FORWARD, &rep,
	                 &rr),
	    EF_S_OK);
	client_reply_free(&rep);
	/* a retry of the damaged event's id cannot be checked: DATA_LOSS
	 * too, nothing written */
	{
		char id[UUID_STR_LEN];
		struct h_result r;

		uuid_format(book.ev[0].id, id);
		cr_assert_eq(h_append1(&cl, book.streams[0], EF_EXPECT_ANY, 0,
		                 id, "Boundary", "{}", &r),
		    EF_S_DATA_LOSS, "%s", r.msg);
		cr_assert(strstr(r.msg, ".zst: damaged at file offset 0") !=
		        NULL,
		    "%s", r.msg);
		cr_assert_eq(h_status(&cl).head, book.n);
	}
	/* segment 0 holds position 0 only */
	cr_assert_eq(client_read_all(&cl, 1, 1, EF_FORWARD, &rep, &rr),
	    EF_S_OK);
	client_reply_free(&rep);
	{
		char id[UUID_STR_LEN];
		struct h_result r;

		cr_assert_eq(h_append1(&cl, book.streams[1], EF_EXPECT_ANY, 0,
		                 h_uuid(id), "After", "{}", &r),
		    EF_S_OK, "%s", r.msg);
		cr_assert_eq(r.rep.first_pos, book.n);
		uuid_parse(id, 36, book.ev[book.n].id);
		book.ev[book.n].stream = 1;
		book.ev[book.n].version = book.ev[book.n - 2].version + 1;
		book.n++;
	}
	cr_assert_eq(h_status(&cl).head, book.n);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	/* undone: every event reads again */
	h_flip(path, FRAME0_DATA);
	start();
	h_book_read(&cl, &book);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
}

/* No segment both plain and archived, no temporary file left. */
static void
check_files(void)
{
	uint64_t *bases = NULL;
	uint8_t *arcs = NULL;
	size_t n = 0, i;
	char name[SEGFILE_NAME_MAX + 16];
	struct dirent *de;
	DIR *d;

	cr_assert_eq(segfile_list_all(sd.data_dir, &bases, &arcs, &n), 0);
	for (i = 0; i < n; i++) {
		if (!arcs[i])
			continue;
		segfile_name(name, sizeof(name), bases[i]);
		cr_assert(!file_exists(sd.data_dir, name),
		    "%s and its archive", name);
	}
	free(bases);
	free(arcs);
	cr_assert_not_null(d = opendir(sd.data_dir));
	while ((de = readdir(d)) != NULL)
		cr_assert(strstr(de->d_name, ".tmp") == NULL, "%s left",
		    de->d_name);
	closedir(d);
}

Test(archiver, archive_verb_and_segments)
{
	const char *const extra[] = { "--hot-segments", "1000", NULL };
	static struct seginfo segs[256];
	char *out = NULL;
	size_t n;
	int rc;

	h_stored_init(&sd, h_tmpdir(), extra);
	start();
	write_book();
	h_wait_indexed(&cl, book.n - H_BOOK_STREAMS, 30000);
	/* nothing is eligible with 1000 kept plain */
	rc = h_ctl_at(&sd, (const char *const[]){ "archive", NULL }, &out,
	    NULL);
	cr_assert_eq(rc, 0, "archive: %d %s", rc, out);
	cr_assert(strstr(out, "0 segments archived") != NULL, "%s", out);
	free(out);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	/* restarted keeping 2 plain: the verb archives the rest now */
	sd.extra[1] = "2";
	start();
	n = segments(segs, 256, book.n);
	rc = h_ctl_at(&sd, (const char *const[]){ "archive", NULL }, &out,
	    NULL);
	cr_assert_eq(rc, 0, "archive: %d %s", rc, out);
	cr_assert(strstr(out, "segments archived") != NULL, "%s", out);
	free(out);
	wait_archived(n - 3);
	cr_assert_eq(count_archived(segs, segments(segs, 256, book.n)), n - 3);
	rc = h_ctl_at(&sd, (const char *const[]){ "status", NULL }, &out,
	    NULL);
	cr_assert_eq(rc, 0);
	cr_assert(strstr(out, "archived ") != NULL &&
	        strstr(out, "frame cache") != NULL,
	    "%s", out);
	free(out);
	h_book_read(&cl, &book);
	check_files();
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_verify_ok(&sd, book.n);
}

Test(archiver, killed_at_every_archiving_crash_point, .timeout = 900)
{
	static const char *const points[] = { "archive.tmp_open:2",
		"archive.frame:3", "archive.table:2", "archive.fsync:2",
		"archive.rename:2", "archive.dir_fsync:2",
		"archiver.before_unlink:2", "archiver.after_unlink:2" };
	static struct h_load load;
	static struct seginfo segs[4096];
	const char *const extra[] = { "--segment-size", "16K",
		"--hot-segments", "0", "--archive-frame-size", "4K", NULL };
	uint64_t head, acked;
	size_t p, i, n;
	char name[64];
	int st;

	if (strcmp(getenv("EF_CRASHPOINTS") ? getenv("EF_CRASHPOINTS") : "",
	        "1") != 0)
		cr_skip_test("built without -Dcrashpoints=true");
	for (p = 0; p < sizeof(points) / sizeof(points[0]); p++) {
		h_stored_init(&sd, h_tmpdir(), extra);
		h_load_init(&load, &sd, 8, 200);
		setenv("EVENTFOLD_CRASHPOINT", points[p], 1);
		h_stored_spawn(&sd);
		unsetenv("EVENTFOLD_CRASHPOINT");
		cr_assert_eq(h_stored_wait_ready(&sd, 15000), 0);
		h_load_start(&load);
		st = h_wait_pid(sd.pid, 120000);
		sd.pid = 0;
		cr_assert(st != -1 && WIFSIGNALED(st) &&
		        WTERMSIG(st) == SIGKILL,
		    "%s: stored was not killed there "
		    "(0x%x)",
		    points[p], st);
		h_load_stop(&load);
		acked = __atomic_load_n(&load.acked, __ATOMIC_RELAXED);
		cr_assert_gt(acked, 0);
		snprintf(name, sizeof(name), "%s", points[p]);
		*strchr(name, ':') = '\0';
		{
			char *log = h_read_file(sd.log, NULL);

			cr_assert(log != NULL && strstr(log, name) != NULL,
			    "not killed at %s:\n%s", name, log);
			free(log);
		}
		start();
		head = h_load_verify(&load, &cl);
		cr_assert_geq(head, acked);
		h_load_retry_pending(&load, &cl);
		head = h_load_verify(&load, &cl);
		n = segments(segs, 4096, head);
		cr_assert_geq(n, 2);
		/* archiving goes on: what was interrupted is redone */
		h_wait_indexed(&cl, segs[n - 2].first + segs[n - 2].events,
		    30000);
		wait_archived(n - 1);
		h_load_start(&load);
		cr_assert_eq(h_load_wait_acked(&load, acked + 500, 60000), 0);
		h_load_stop(&load);
		for (i = 0; i < load.nthreads; i++)
			cr_assert_eq(load.t[i].errors, 0, "%s",
			    load.t[i].error);
		head = h_load_verify(&load, &cl);
		h_stored_stop_ok(&sd, &cl, SIGTERM);
		check_files();
		h_verify_ok(&sd, head);
		fprintf(stderr, "# %s: %llu events after the restart\n",
		    points[p], (unsigned long long)head);
		h_load_free(&load);
	}
}
