/* SPDX-License-Identifier: MIT */
/*
 * test_segments.c - the log as segment files, with a real
 * eventfold-stored: rotation by size under a 8-client load and by
 * `eventfoldctl rotate`, with every acknowledged event readable exactly
 * once and in order across many segments; ReadAll and ReadStream pages
 * (forward and backward, every page size from 1 to 7) across every
 * boundary, before and after a restart; take-over of a data directory in
 * the single-file layout of the previous release (written here with the
 * record codec), also when killed in the middle of it; a torn tail in the
 * last segment is cut; a flipped byte in a sealed segment refuses start
 * and `eventfoldctl verify` names the file and offset (and --repair yes
 * cuts there), and once indexed a read onto it, single or a forward
 * page, answers DATA_LOSS; and stored killed at every rotation crash point
 * under load comes back with every acknowledged event, exactly once, in order,
 * with verify agreeing.
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

TestSuite(segments, .fini = h_cleanup, .timeout = 300);

static struct h_stored sd;
static struct ef_client cl;

/* h_segments, none of them archived: this stored keeps every segment
 * plain. */
static size_t
segments(struct h_seginfo *segs, size_t max, uint64_t head)
{
	size_t n = h_segments(&sd, segs, max, head), i;

	for (i = 0; i < n; i++)
		cr_assert(!segs[i].archived, "segment %zu is archived", i);
	return n;
}

static char *
seg_file(char *buf, size_t len, uint64_t base)
{
	char name[SEGFILE_NAME_MAX];

	snprintf(buf, len, "%s/%s", sd.data_dir,
	    segfile_name(name, sizeof(name), base));
	return buf;
}

/* ------------------------------------------------------------------ */

Test(segments, rotation_under_load)
{
	static struct h_load load;
	static struct h_seginfo segs[4096];
	const char *const extra[] = { "--segment-size", "64K", NULL };
	struct ipc_status_rep st;
	uint64_t head, sealed = 0;
	size_t n, i;
	int r;

	h_start_fresh(&sd, &cl, extra, 10000);
	h_load_init(&load, &sd, 8, 300);
	h_load_start(&load);
	/* rotations asked for by the operator, between size rotations */
	for (r = 0; r < 5; r++) {
		cr_assert_eq(h_load_wait_acked(&load, 600 * (uint64_t)(r + 1),
		                 60000),
		    0, "the load does not get going");
		h_rotate(&sd);
	}
	cr_assert_eq(h_load_wait_acked(&load, 4000, 60000), 0);
	h_load_stop(&load);
	for (i = 0; i < load.nthreads; i++)
		cr_assert_eq(load.t[i].errors, 0, "%s", load.t[i].error);
	head = h_load_verify(&load, &cl);
	n = segments(segs, 4096, head);
	cr_assert_geq(n, 10, "only %zu segments for %llu events", n,
	    (unsigned long long)head);
	for (i = 0; i + 1 < n; i++)
		sealed += segs[i].bytes;
	st = h_status(&cl);
	cr_assert_eq(st.segments, n);
	cr_assert_eq(st.sealed_bytes, sealed);
	cr_assert_eq(st.log_bytes, sealed + segs[n - 1].bytes);
	fprintf(stderr, "# %llu events in %zu segments\n",
	    (unsigned long long)head, n);

	/* the same after a restart, which reads every segment */
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_verify_ok(&sd, head);
	h_start(&sd, &cl);
	cr_assert_eq(h_load_verify(&load, &cl), head);
	cr_assert_eq(segments(segs, 4096, head), n);
	h_load_free(&load);
}

/* ------------------------------------------------------------------ */

static struct h_book book;

Test(segments, reads_across_every_boundary)
{
	static struct h_seginfo segs[256];
	size_t nseg;

	h_start_fresh(&sd, &cl, NULL, 10000);
	/* rotations after every batch size, twice in a row after append 20
	 * (an empty hot segment: nothing to seal); every stream also in the
	 * hot segment, the older versions in sealed segments indexed on
	 * disk: reads cross that boundary too */
	h_book_write(&cl, &sd, &book, "{}", 20);
	h_wait_indexed(&cl, book.n - H_BOOK_STREAMS, 30000);
	nseg = segments(segs, 256, book.n);
	cr_assert_geq(nseg, 20, "%zu segments", nseg);
	h_book_read(&cl, &book);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_start(&sd, &cl);
	cr_assert_eq(segments(segs, 256, book.n), nseg);
	h_book_read(&cl, &book);
	h_verify_ok(&sd, book.n);
}

/* ------------------------------------------------------------------ */

static uint64_t legacy_versions[2]; /* events per stream written */

/* Writes a single-file log of the previous release into dir/data:
 * 30 events in batches of 1..3 over two streams, 400-byte payloads. */
static uint64_t
write_legacy(const char *data_dir, uint8_t (*ids)[UUID_LEN],
    uint8_t sids[2][UUID_LEN])
{
	static uint8_t buf[1 << 16];
	char path[H_PATH + 32], payload[400];
	struct batch_hdr h;
	struct ef_event ev;
	uint64_t pos = 0, *ver = legacy_versions;
	size_t len, total = 0;
	uint8_t *img = malloc(1 << 20);
	int b, k, n;

	cr_assert_not_null(img);
	ver[0] = ver[1] = 0;
	mkdir(data_dir, 0750);
	logfile_hdr_encode(img, 0);
	total = LOGFILE_HDR;
	memset(payload, 'p', sizeof(payload));
	for (b = 0; pos < 30; b++) {
		n = 1 + b % 3;
		len = BATCH_HDR;
		for (k = 0; k < n; k++) {
			memset(&ev, 0, sizeof(ev));
			uuid_parse(h_uuid(path), 36, ids[pos]);
			memcpy(ev.event_id, ids[pos], UUID_LEN);
			memcpy(ev.stream_id, sids[b % 2], UUID_LEN);
			ev.stream_version = ver[b % 2]++;
			ev.global_position = pos++;
			ev.recorded_at = 1700000000000ull + pos;
			ev.type = "Legacy";
			ev.type_len = 6;
			ev.payload = (const uint8_t *)payload;
			ev.payload_len = sizeof(payload);
			len += record_encode(buf + len, &ev);
		}
		h.count = (uint32_t)n;
		h.body_len = (uint32_t)(len - BATCH_HDR);
		h.first_pos = pos - (uint64_t)n;
		batch_hdr_encode(buf, &h);
		memcpy(img + total, buf, len);
		total += len;
	}
	snprintf(path, sizeof(path), "%s/%s", data_dir, LEGACY_LOG_NAME);
	cr_assert_eq(h_write_file(path, img, total), 0);
	free(img);
	return pos;
}

static void
check_legacy_events(uint8_t (*ids)[UUID_LEN], uint64_t n)
{
	struct h_event *evs;
	size_t m, i;

	cr_assert_eq(h_read_all(&cl, 0, &evs, &m), EF_S_OK);
	cr_assert_geq(m, n);
	for (i = 0; i < n; i++) {
		cr_assert_arr_eq(evs[i].event_id, ids[i], UUID_LEN,
		    "event %zu", i);
		cr_assert_eq(evs[i].pos, i);
		cr_assert_eq(evs[i].recorded_at, 1700000000000ull + i + 1);
		cr_assert_eq(evs[i].payload_len, 400);
	}
	h_events_free(evs, m);
}

Test(segments, takeover_of_a_single_file_data_dir)
{
	static struct h_seginfo segs[64];
	const char *const extra[] = { "--segment-size", "4K", NULL };
	uint8_t ids[64][UUID_LEN], sids[2][UUID_LEN];
	char sid_txt[UUID_STR_LEN], id[UUID_STR_LEN], *log;
	struct h_result r;
	uint64_t n;

	h_stored_init(&sd, h_tmpdir(), extra);
	uuid_parse(h_uuid(sid_txt), 36, sids[0]);
	uuid_parse(h_uuid(sid_txt), 36, sids[1]);
	n = write_legacy(sd.data_dir, ids, sids);
	h_start(&sd, &cl);
	check_legacy_events(ids, n);
	cr_assert(!h_file_exists(sd.data_dir, LEGACY_LOG_NAME),
	    "events.log is still there");
	cr_assert(h_file_exists(sd.data_dir, "seg-00000000000000000000.log"));
	log = h_read_file(sd.log, NULL);
	cr_assert(log != NULL && strstr(log, "took over events.log") != NULL,
	    "the take-over was not logged:\n%s", log);
	free(log);
	/* the 13 KB file was over segment_size: sealed at start */
	cr_assert_eq(segments(segs, 64, n), 2);
	cr_assert_eq(h_status(&cl).streams, 2);
	/* streams go on where they were */
	uuid_format(sids[1], sid_txt);
	cr_assert_eq(h_append1(&cl, sid_txt, EF_EXPECT_EXACT,
	                 legacy_versions[1] - 1, h_uuid(id), "After", "{}",
	                 &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(r.rep.first_pos, n);
	cr_assert_eq(r.rep.first_version, legacy_versions[1]);
	h_stored_stop_ok(&sd, &cl, SIGKILL);
	h_verify_ok(&sd, n + 1);
	h_start(&sd, &cl);
	check_legacy_events(ids, n);
	cr_assert_eq(h_status(&cl).head, n + 1);
}

Test(segments, takeover_killed_at_each_step)
{
	static const char *const points[] = { "takeover.before_rename",
		"takeover.after_rename" };
	uint8_t ids[64][UUID_LEN], sids[2][UUID_LEN];
	char sid_txt[UUID_STR_LEN];
	uint64_t n;
	size_t p;

	h_need_crashpoints();
	for (p = 0; p < 2; p++) {
		h_stored_init(&sd, h_tmpdir(), NULL);
		uuid_parse(h_uuid(sid_txt), 36, sids[0]);
		uuid_parse(h_uuid(sid_txt), 36, sids[1]);
		n = write_legacy(sd.data_dir, ids, sids);
		setenv("EVENTFOLD_CRASHPOINT", points[p], 1);
		h_stored_spawn(&sd);
		unsetenv("EVENTFOLD_CRASHPOINT");
		h_stored_wait_killed(&sd, 15000, points[p]);
		cr_assert_eq(h_file_exists(sd.data_dir, LEGACY_LOG_NAME),
		    p == 0, "%s", points[p]);
		h_start(&sd, &cl);
		check_legacy_events(ids, n);
		cr_assert_eq(h_status(&cl).head, n);
		h_stored_stop_ok(&sd, &cl, SIGTERM);
		h_verify_ok(&sd, n);
	}
}

/* ------------------------------------------------------------------ */

/* Appends n single events to stream; returns the last position. */
static uint64_t
append_n(const char *stream, int n)
{
	struct h_result r;
	char id[UUID_STR_LEN];
	int i;

	for (i = 0; i < n; i++)
		cr_assert_eq(h_append1(&cl, stream, EF_EXPECT_ANY, 0,
		                 h_uuid(id), "E", "{\"x\":\"0123456789\"}",
		                 &r),
		    EF_S_OK, "%s", r.msg);
	return r.rep.last_pos;
}

/* Three segments: positions 0..4, 5..9 sealed, 10..12 hot. */
static void
three_segments(char *stream)
{
	h_start_fresh(&sd, &cl, NULL, 10000);
	h_uuid(stream);
	append_n(stream, 5);
	h_rotate(&sd);
	append_n(stream, 5);
	h_rotate(&sd);
	append_n(stream, 3);
}

/* Offsets of the batch frames of a segment image; returns the count. */
static size_t
batch_offsets(const uint8_t *img, size_t size, uint64_t *off, size_t max)
{
	uint64_t o = LOGFILE_HDR, len;
	size_t n = 0;

	while (o < size && n < max) {
		cr_assert_eq(batch_verify(img, size, o, 0, 0, &len), 0);
		off[n++] = o;
		o += len;
	}
	cr_assert_eq(o, size);
	return n;
}

Test(segments, torn_tail_in_the_last_segment)
{
	char stream[UUID_STR_LEN], path[H_PATH + 64], *out = NULL;
	struct h_event *evs;
	uint64_t off[8];
	uint8_t *img;
	size_t size, m, cut;

	three_segments(stream);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	seg_file(path, sizeof(path), 10);
	img = (uint8_t *)h_read_file(path, &size);
	cr_assert_not_null(img);
	cr_assert_eq(batch_offsets(img, size, off, 8), 3);
	/* cuts through the last batch (every 5th byte) */
	for (cut = off[2] + 1; cut < size; cut += 5) {
		cr_assert_eq(h_write_file(path, img, cut), 0);
		cr_assert_eq(h_ctl_at(&sd,
		                 (const char *const[]){ "verify", NULL }, &out,
		                 NULL),
		    0, "%s", out);
		cr_assert(strstr(out, "torn tail") != NULL, "%s", out);
		free(out);
		h_start(&sd, &cl);
		cr_assert_eq(h_status(&cl).head, 12, "cut at %zu", cut);
		cr_assert_eq(h_read_all(&cl, 0, &evs, &m), EF_S_OK);
		cr_assert_eq(m, 12);
		h_events_free(evs, m);
		/* appends go on right after the good data */
		cr_assert_eq(append_n(stream, 1), 12);
		h_stored_stop_ok(&sd, &cl, SIGKILL);
	}
	h_start(&sd, &cl);
	cr_assert_eq(h_status(&cl).head, 13);
	cr_assert_eq(h_status(&cl).segments, 3);
	free(img);
}

/* Position 9 damaged: a read of it is refused; so is a forward page that
 * walks onto it (its locations after the first come from the record
 * before, through stored's read window), twice: the second starts from
 * where the first stopped. Position 8 reads. */
static void
position_9_is_data_loss(void)
{
	struct client_reply rep;
	struct ipc_read_rep rr;

	cr_assert_eq(client_read_all(&cl, 9, 1, EF_FORWARD, &rep, &rr),
	    EF_S_DATA_LOSS);
	client_reply_free(&rep);
	cr_assert_eq(client_read_all(&cl, 8, 1, EF_FORWARD, &rep, &rr),
	    EF_S_OK);
	client_reply_free(&rep);
	cr_assert_eq(client_read_all(&cl, 0, 100, EF_FORWARD, &rep, &rr),
	    EF_S_DATA_LOSS);
	client_reply_free(&rep);
	cr_assert_eq(client_read_all(&cl, 0, 9, EF_FORWARD, &rep, &rr),
	    EF_S_OK);
	cr_assert_eq(rr.nevents, 9);
	client_reply_free(&rep);
	cr_assert_eq(client_read_all(&cl, 9, 4, EF_FORWARD, &rep, &rr),
	    EF_S_DATA_LOSS);
	client_reply_free(&rep);
}

Test(segments, flipped_byte_in_a_sealed_segment)
{
	char stream[UUID_STR_LEN], path[H_PATH + 64], want[H_PATH + 128];
	char *out = NULL, *log;
	uint64_t off[8];
	uint8_t *img;
	size_t size;
	int rc;

	three_segments(stream);
	h_wait_indexed(&cl, 10, 30000);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	h_verify_ok(&sd, 13);
	seg_file(path, sizeof(path), 5);
	img = (uint8_t *)h_read_file(path, &size);
	cr_assert_eq(batch_offsets(img, size, off, 8), 5);
	free(img);
	/* the last batch of a sealed segment: never a torn tail */
	h_flip(path, off[4] + BATCH_HDR + RECORD_HDR + 3);
	rc = h_ctl_at(&sd, (const char *const[]){ "verify", NULL }, &out,
	    NULL);
	cr_assert_eq(rc, 5, "verify exit %d: %s", rc, out);
	snprintf(want, sizeof(want), "%s: CORRUPT at offset %llu", path,
	    (unsigned long long)off[4]);
	cr_assert(strstr(out, want) != NULL, "no \"%s\" in:\n%s", want, out);
	free(out);

	/* indexed on disk: the start reads only the tail */
	h_start(&sd, &cl);
	cr_assert_eq(h_status(&cl).recovered_events, 3);
	position_9_is_data_loss();
	h_stored_stop_ok(&sd, &cl, SIGTERM);

	/* without the index every segment is read: the start refuses */
	h_rm_index(&sd);
	h_stored_spawn(&sd);
	cr_assert_eq(h_stored_wait_ready(&sd, 15000), -1,
	    "stored started "
	    "on a corrupt sealed segment");
	log = h_read_file(sd.log, NULL);
	snprintf(want, sizeof(want), "%s: corrupt at offset %llu", path,
	    (unsigned long long)off[4]);
	cr_assert(log != NULL && strstr(log, want) != NULL,
	    "no \"%s\" in:\n%s", want, log);
	free(log);

	/* undone: starts with everything */
	h_flip(path, off[4] + BATCH_HDR + RECORD_HDR + 3);
	h_start(&sd, &cl);
	cr_assert_eq(h_status(&cl).head, 13);
	h_stored_stop_ok(&sd, &cl, SIGTERM);

	/* --repair yes cuts there: the segment after goes, 9 events stay */
	h_flip(path, off[4] + BATCH_HDR + RECORD_HDR + 3);
	h_rm_index(&sd);
	sd.extra[0] = "--repair";
	sd.extra[1] = "yes";
	sd.extra[2] = NULL;
	h_start(&sd, &cl);
	cr_assert_eq(h_status(&cl).head, 9);
	cr_assert_eq(h_status(&cl).segments, 2);
	cr_assert_eq(append_n(stream, 1), 9);
	h_stored_stop_ok(&sd, &cl, SIGTERM);
	cr_assert(!h_file_exists(sd.data_dir, "seg-00000000000000000010.log"));
	h_verify_ok(&sd, 10);
}

/* ------------------------------------------------------------------ */

Test(segments, killed_at_every_rotation_crash_point, .timeout = 560)
{
	/* the third rotation, under load */
	static const char *const points[] = { "rotate.before_create:3",
		"rotate.after_create:3", "rotate.after_dirsync:3" };
	static struct h_load load;
	static struct h_seginfo segs[4096];
	const char *const extra[] = { "--segment-size", "16K", NULL };
	uint64_t head, acked;
	size_t p;

	h_need_crashpoints();
	for (p = 0; p < 3; p++) {
		h_stored_init(&sd, h_tmpdir(), extra);
		h_load_init(&load, &sd, 8, 200);
		acked = h_load_killed_at(&sd, &load, points[p], 60000);
		h_start(&sd, &cl);
		head = h_load_recovered(&load, &cl, acked);
		cr_assert_geq(segments(segs, 4096, head), 3);
		/* and it goes on rotating */
		head = h_load_goes_on(&load, &cl, acked);
		h_stored_stop_ok(&sd, &cl, SIGTERM);
		h_verify_ok(&sd, head);
		fprintf(stderr, "# %s: %llu events after the restart\n",
		    points[p], (unsigned long long)head);
		h_load_free(&load);
	}
}
