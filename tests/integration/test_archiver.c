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

static size_t
count_archived(const struct h_seginfo *segs, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += segs[i].archived;
	return c;
}

/* The record book, 60-byte payloads, rotations after many batch sizes,
 * then one event per stream hot. */
static void
write_book(void)
{
	h_book_write(&cl, &sd, &book,
	    "{\"pad\":\"0123456789"
	    "01234567890123456789012345678901"
	    "23456789\"}",
	    -1);
}

/* ------------------------------------------------------------------ */

Test(archiver, reads_across_hot_sealed_and_archived_segments)
{
	static struct h_seginfo segs[256];
	const char *const extra[] = { "--hot-segments", "3",
		"--archive-frame-size", "4K", "--archive-cache-mb", "0",
		NULL };
	struct ipc_status_rep st;
	size_t nseg, narc;

	h_start_fresh(&sd, &cl, extra, 10000);
	write_book();
	h_wait_indexed(&cl, book.n - H_BOOK_STREAMS, 30000);
	nseg = h_segments(&sd, segs, 256, book.n);
	cr_assert_geq(nseg, 20, "%zu segments", nseg);
	/* all but the newest 3 sealed ones, and the hot one */
	wait_archived(nseg - 4);
	nseg = h_segments(&sd, segs, 256, book.n);
	narc = count_archived(segs, nseg);
	cr_assert_eq(narc, nseg - 4);
	cr_assert(!segs[nseg - 2].archived && segs[nseg - 2].sealed);
	cr_assert(segs[nseg - 5].archived);
	cr_assert(!h_file_exists(sd.data_dir, "seg-00000000000000000000.log"));
	cr_assert(
	    h_file_exists(sd.data_dir, "seg-00000000000000000000.log.zst"));
	h_book_read(&cl, &book);
	st = h_status(&cl);
	cr_assert_eq(st.archived_segments, narc);
	cr_assert_gt(st.cache_misses, 0);
	cr_assert_gt(st.archived_raw, st.archived_bytes);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	/* a restart reads only the hot segment: 3 events */
	h_start(&sd, &cl);
	st = h_status(&cl);
	cr_assert_eq(st.recovered_events, H_BOOK_STREAMS);
	cr_assert_eq(st.archived_segments, narc);
	cr_assert_eq(h_segments(&sd, segs, 256, book.n), nseg);
	cr_assert_eq(count_archived(segs, nseg), narc);
	h_book_read(&cl, &book);
	/* and with a cache: the second pass is served from it */
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	sd.extra[5] = "64";
	h_start(&sd, &cl);
	h_book_read(&cl, &book);
	st = h_status(&cl);
	cr_assert_gt(st.cache_hits, 0);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	/* the index deleted: rebuilt from the archives (decompressed for
	 * the pass, then read through them again) */
	h_rm_index(&sd);
	h_start(&sd, &cl);
	h_book_read(&cl, &book);
	h_wait_indexed(&cl, book.n - H_BOOK_STREAMS, 30000);
	wait_archived(narc);
	cr_assert_eq(count_archived(segs, h_segments(&sd, segs, 256, book.n)),
	    narc);
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

	h_start_fresh(&sd, &cl, extra, 10000);
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
	h_rotate(&sd);
	cr_assert_eq(h_append1(&cl, other, EF_EXPECT_ANY, 0, h_uuid(warm),
	                 "Warm", "{}", &again),
	    EF_S_OK);
	h_wait_indexed(&cl, first + 2, 30000);
	wait_archived(1);
	cr_assert(
	    h_file_exists(sd.data_dir, "seg-00000000000000000000.log.zst"));
	cr_assert(!h_file_exists(sd.data_dir, "seg-00000000000000000000.log"));

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
	h_start(&sd, &cl);
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

/* `eventfoldctl verify` names frame 0 of the archive at path. */
static void
verify_names_frame0(const char *path)
{
	char *out = NULL;
	int rc;

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
}

/* With frame 0 of segment 0's archive damaged: reads of its events and
 * a retry of its id answer DATA_LOSS naming the file; the rest serves. */
static void
damaged_frame_is_data_loss(void)
{
	struct client_reply rep;
	struct ipc_read_rep rr;
	char id[UUID_STR_LEN];
	struct h_result r;

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
	uuid_format(book.ev[0].id, id);
	cr_assert_eq(h_append1(&cl, book.streams[0], EF_EXPECT_ANY, 0, id,
	                 "Boundary", "{}", &r),
	    EF_S_DATA_LOSS, "%s", r.msg);
	cr_assert(strstr(r.msg, ".zst: damaged at file offset 0") != NULL,
	    "%s", r.msg);
	cr_assert_eq(h_status(&cl).head, book.n);
	/* segment 0 holds position 0 only */
	cr_assert_eq(client_read_all(&cl, 1, 1, EF_FORWARD, &rep, &rr),
	    EF_S_OK);
	client_reply_free(&rep);
}

/* An append to stream 1 of the book still works, at the head. */
static void
append_after_damage(void)
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
	cr_assert_eq(h_status(&cl).head, book.n);
}

Test(archiver, flipped_byte_in_an_archived_frame)
{
	const char *const extra[] = { "--hot-segments", "0", NULL };
	char path[H_PATH + 64];
	size_t size;
	uint8_t *img;

	h_start_fresh(&sd, &cl, extra, 10000);
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
	verify_names_frame0(path);

	/* the start does not read archives: it serves, and the damaged
	 * frame's events are refused with DATA_LOSS naming the file */
	h_start(&sd, &cl);
	cr_assert_eq(h_status(&cl).recovered_events, H_BOOK_STREAMS);
	damaged_frame_is_data_loss();
	append_after_damage();
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	/* undone: every event reads again */
	h_flip(path, FRAME0_DATA);
	h_start(&sd, &cl);
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
		cr_assert(!h_file_exists(sd.data_dir, name),
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
	static struct h_seginfo segs[256];
	char *out = NULL;
	size_t n;
	int rc;

	h_start_fresh(&sd, &cl, extra, 10000);
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
	h_start(&sd, &cl);
	n = h_segments(&sd, segs, 256, book.n);
	rc = h_ctl_at(&sd, (const char *const[]){ "archive", NULL }, &out,
	    NULL);
	cr_assert_eq(rc, 0, "archive: %d %s", rc, out);
	cr_assert(strstr(out, "segments archived") != NULL, "%s", out);
	free(out);
	wait_archived(n - 3);
	cr_assert_eq(count_archived(segs, h_segments(&sd, segs, 256, book.n)),
	    n - 3);
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
	static struct h_seginfo segs[4096];
	const char *const extra[] = { "--segment-size", "16K",
		"--hot-segments", "0", "--archive-frame-size", "4K", NULL };
	uint64_t head, acked;
	size_t p, n;

	h_need_crashpoints();
	for (p = 0; p < sizeof(points) / sizeof(points[0]); p++) {
		h_stored_init(&sd, h_tmpdir(), extra);
		h_load_init(&load, &sd, 8, 200);
		acked = h_load_killed_at(&sd, &load, points[p], 120000);
		h_start(&sd, &cl);
		head = h_load_recovered(&load, &cl, acked);
		n = h_segments(&sd, segs, 4096, head);
		cr_assert_geq(n, 2);
		/* archiving goes on: what was interrupted is redone */
		h_wait_indexed(&cl, segs[n - 2].first + segs[n - 2].events,
		    30000);
		wait_archived(n - 1);
		head = h_load_goes_on(&load, &cl, acked);
		h_stored_stop_ok(&sd, &cl, SIGTERM);
		check_files();
		h_verify_ok(&sd, head);
		fprintf(stderr, "# %s: %llu events after the restart\n",
		    points[p], (unsigned long long)head);
		h_load_free(&load);
	}
}
