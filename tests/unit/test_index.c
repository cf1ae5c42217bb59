/* SPDX-License-Identifier: MIT */
/*
 * test_index.c - unit tests of eventfold-stored's index (index.c) over a
 * small real journal (journal.c) in a temporary directory: batches are
 * appended with journal_append and indexed the way the writer does it,
 * then index_offset, index_stream, index_event and index_list are
 * checked against what was written, again after the journal is reopened
 * and the index rebuilt by recovery, and across the growth points of
 * every table (chunks, stream hash, event hash). A few journal_open
 * cases (torn tail, corruption before the tail, lock, bad header) ride
 * along in the "journal" suite.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "stored.h"
#include "tmpdir.h"

static char dir[64];
static struct journal jr;
static struct index ix;
static int ix_live;

static void
setup(void)
{
	/* tmpfs when there is one: these tests fdatasync a lot, and what
	 * they check does not depend on the disk */
	snprintf(dir, sizeof(dir), "%s/eftest-index.XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	cr_assert_not_null(mkdtemp(dir));
	memset(&jr, 0, sizeof(jr));
	jr.lockfd = jr.dirfd = -1;
	ix_live = 0;
}

static void
teardown(void)
{
	if (ix_live)
		index_free(&ix);
	journal_close(&jr);
	tmpdir_remove(dir);
}

TestSuite(index, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(journal, .init = setup, .fini = teardown, .timeout = 60);

/* Deterministic ids: stream s, event at position p. */
static void
stream_id(uint8_t out[UUID_LEN], uint32_t s)
{
	memset(out, 0, UUID_LEN);
	/* spread the ids so that sorted order differs from creation order */
	put_le32(out, s * 2654435761u);
	put_le32(out + 4, s);
	out[6] = 0x40;
	out[8] = 0x80;
}

static void
event_id(uint8_t out[UUID_LEN], uint64_t p)
{
	memset(out, 0xee, UUID_LEN);
	put_le64(out, p * 0x9e3779b97f4a7c15ull);
	put_le64(out + 8, p);
}

static void
visit(void *arg, const struct ef_event *ev, uint64_t off)
{
	struct index *x = arg;

	index_add(x, ev, off);
	x->head = ev->global_position + 1;
}

/* A new index (freed by teardown), and journal_open of dir into it, which
 * must return want, with bad->off at at when it refuses. */
static void
open_index(int want, uint64_t at)
{
	struct journal_bad bad;

	index_init(&ix, &jr, NULL);
	ix_live = 1;
	cr_assert_eq(journal_open(&jr, dir, 0, JOURNAL_CACHE_DEFAULT, 0, 0,
	                 visit, &ix, &bad),
	    want);
	if (want != 0)
		cr_assert_eq(bad.off, at);
}

/* open_index of a journal that opens. */
static void
open_fresh(void)
{
	open_index(0, 0);
}

/*
 * Writes one batch of n events (event k to stream streams[k]) the way
 * writer.c does: one frame, one journal_append, then index_add of each
 * record at its file offset and index_publish.
 */
static void
write_batch(uint32_t n, const uint32_t *streams)
{
	static uint8_t buf[1 << 20];
	uint64_t rec_off[4096], first = index_head(&ix), off;
	struct batch_hdr h;
	struct ef_event ev;
	size_t len = BATCH_HDR, rlen;
	char payload[64];
	uint32_t k;

	cr_assert_leq(n, 4096);
	for (k = 0; k < n; k++) {
		struct stream *s;
		uint64_t version;

		pthread_rwlock_rdlock(&ix.lock);
		stream_id(ev.stream_id, streams[k]);
		s = index_stream(&ix, ev.stream_id);
		version = s ? s->n : 0;
		pthread_rwlock_unlock(&ix.lock);
		/* earlier events of the same stream in this batch */
		for (uint32_t q = 0; q < k; q++)
			version += streams[q] == streams[k];
		event_id(ev.event_id, first + k);
		ev.global_position = first + k;
		ev.stream_version = version;
		ev.recorded_at = 1700000000000ull;
		ev.type = "T";
		ev.type_len = 1;
		ev.metadata = NULL;
		ev.metadata_len = 0;
		snprintf(payload, sizeof(payload), "{\"p\":%llu}",
		    (unsigned long long)(first + k));
		ev.payload = (const uint8_t *)payload;
		ev.payload_len = (uint32_t)strlen(payload);
		cr_assert_leq(len + record_size(1, 0, ev.payload_len),
		    sizeof(buf));
		rec_off[k] = len;
		len += record_encode(buf + len, &ev);
	}
	h.count = n;
	h.body_len = (uint32_t)(len - BATCH_HDR);
	h.first_pos = first;
	batch_hdr_encode(buf, &h);
	off = journal_hot(&jr)->end;
	cr_assert_eq(journal_append(&jr, buf, len), 0);
	cr_assert_eq(journal_hot(&jr)->end, off + len);
	pthread_rwlock_wrlock(&ix.lock);
	for (k = 0; k < n; k++) {
		cr_assert_eq(record_decode(buf + rec_off[k], len - rec_off[k],
		                 &ev, &rlen, 1),
		    REC_OK);
		index_add(&ix, &ev, off + rec_off[k]);
	}
	pthread_rwlock_unlock(&ix.lock);
	index_publish(&ix, first + n);
}

/* What the test wrote: position -> stream. */
static uint32_t *pos_stream;
static uint64_t npos;

static void
remember(uint32_t n, const uint32_t *streams)
{
	pos_stream = realloc(pos_stream, (npos + n) * sizeof(*pos_stream));
	cr_assert_not_null(pos_stream);
	memcpy(pos_stream + npos, streams, n * sizeof(*streams));
	npos += n;
}

/* Checks every position, every stream and every event id. */
static void
check_index(uint32_t nstreams)
{
	uint64_t p, *seen = calloc(nstreams, sizeof(uint64_t));
	uint8_t id[UUID_LEN];
	struct ef_event ev;
	struct stream *s;
	size_t len;
	uint32_t k;

	cr_assert_not_null(seen);
	cr_assert_eq(index_head(&ix), npos);
	for (p = 0; p < npos; p++) {
		uint64_t off = index_offset(&ix, p);

		cr_assert_lt(off, journal_hot(&jr)->end);
		cr_assert_eq(record_decode(journal_at(&jr, off),
		                 journal_hot(&jr)->end - off, &ev, &len, 1),
		    REC_OK, "position %llu", (unsigned long long)p);
		cr_assert_eq(ev.global_position, p);
		event_id(id, p);
		cr_assert_arr_eq(ev.event_id, id, UUID_LEN);
		stream_id(id, pos_stream[p]);
		cr_assert_arr_eq(ev.stream_id, id, UUID_LEN);
		cr_assert_eq(ev.stream_version, seen[pos_stream[p]]);
		seen[pos_stream[p]]++;
		event_id(id, p);
		cr_assert_eq(index_event(&ix, id), (int64_t)p);
	}
	pthread_rwlock_rdlock(&ix.lock);
	cr_assert_eq(ix.nstreams, nstreams);
	for (k = 0; k < nstreams; k++) {
		uint64_t v = 0;

		stream_id(id, k);
		s = index_stream(&ix, id);
		cr_assert_not_null(s, "stream %u", k);
		cr_assert_eq(s->n, seen[k]);
		for (p = 0; p < npos; p++)
			if (pos_stream[p] == k) {
				cr_assert_eq(s->pos[v], p);
				v++;
			}
	}
	pthread_rwlock_unlock(&ix.lock);
	/* ids that were never written */
	event_id(id, npos);
	cr_assert_eq(index_event(&ix, id), -1);
	event_id(id, 0);
	id[15] ^= 1;
	cr_assert_eq(index_event(&ix, id), -1);
	stream_id(id, nstreams);
	pthread_rwlock_rdlock(&ix.lock);
	cr_assert_null(index_stream(&ix, id));
	pthread_rwlock_unlock(&ix.lock);
	free(seen);
}

static void
reopen(void)
{
	struct journal_bad bad;

	index_free(&ix);
	journal_close(&jr);
	index_init(&ix, &jr, NULL);
	cr_assert_eq(journal_open(&jr, dir, 0, JOURNAL_CACHE_DEFAULT, 0, 0,
	                 visit, &ix, &bad),
	    0);
	index_publish(&ix, ix.head);
}

Test(index, empty)
{
	uint8_t id[UUID_LEN];
	struct ipc_stream_info out[4];
	bool more = true;

	open_fresh();
	cr_assert_eq(journal_hot(&jr)->end, LOGFILE_HDR);
	cr_assert_eq(jr.base, 0);
	cr_assert_eq(index_head(&ix), 0);
	stream_id(id, 0);
	cr_assert_null(index_stream(&ix, id));
	event_id(id, 0);
	cr_assert_eq(index_event(&ix, id), -1);
	cr_assert_eq(index_list(&ix, NULL, 4, out, &more), 0);
	cr_assert_eq(more, false);
	cr_assert_gt(ix.bytes, 0);
}

Test(index, small_log_and_reopen)
{
	static const uint32_t b1[] = { 0, 1, 0 }, b2[] = { 2 },
	                      b3[] = { 1, 0, 0, 2, 1 };

	open_fresh();
	write_batch(3, b1);
	remember(3, b1);
	write_batch(1, b2);
	remember(1, b2);
	write_batch(5, b3);
	remember(5, b3);
	check_index(3);
	reopen();
	check_index(3);
	/* appending after recovery continues the same log */
	write_batch(2, b1);
	remember(2, b1);
	check_index(3);
	reopen();
	check_index(3);
}

static int
cmp_info(const void *a, const void *b)
{
	return memcmp(((const struct ipc_stream_info *)a)->stream_id,
	    ((const struct ipc_stream_info *)b)->stream_id, UUID_LEN);
}

Test(index, list_sorted_and_paged)
{
	enum { NS = 40 };
	struct ipc_stream_info all[NS], page[NS], want[NS];
	uint32_t streams[NS * 2];
	uint8_t after[UUID_LEN];
	uint64_t n, got = 0, k;
	bool more;

	open_fresh();
	/* stream k gets k % 3 + 1 events */
	for (k = 0; k < NS; k++) {
		uint32_t m = (uint32_t)(k % 3 + 1), q;

		for (q = 0; q < m; q++)
			streams[q] = (uint32_t)k;
		write_batch(m, streams);
		stream_id(want[k].stream_id, (uint32_t)k);
		want[k].event_count = m;
		want[k].latest_version = m - 1;
	}
	qsort(want, NS, sizeof(want[0]), cmp_info);

	n = index_list(&ix, NULL, NS + 5, all, &more);
	cr_assert_eq(n, NS);
	cr_assert_eq(more, false);
	for (k = 0; k < NS; k++) {
		cr_assert_arr_eq(all[k].stream_id, want[k].stream_id, UUID_LEN,
		    "entry %llu out of order", (unsigned long long)k);
		cr_assert_eq(all[k].event_count, want[k].event_count);
		cr_assert_eq(all[k].latest_version, want[k].latest_version);
	}
	/* pages of 7, each starting after the last id of the previous */
	n = index_list(&ix, NULL, 7, page, &more);
	while (n > 0) {
		cr_assert_leq(n, 7);
		for (k = 0; k < n; k++)
			cr_assert_arr_eq(page[k].stream_id,
			    want[got + k].stream_id, UUID_LEN);
		got += n;
		cr_assert_eq(more, got < NS);
		if (!more)
			break;
		memcpy(after, page[n - 1].stream_id, UUID_LEN);
		n = index_list(&ix, after, 7, page, &more);
	}
	cr_assert_eq(got, NS);
	/* after the last id: nothing; max 0: nothing but more */
	cr_assert_eq(index_list(&ix, want[NS - 1].stream_id, 10, page, &more),
	    0);
	cr_assert_eq(more, false);
	cr_assert_eq(index_list(&ix, NULL, 0, page, &more), 0);
	cr_assert_eq(more, true);
	/* an after id that is not a stream: the ones above it */
	memcpy(after, want[9].stream_id, UUID_LEN);
	after[15] ^= 0x01;
	n = index_list(&ix, after, NS, page, &more);
	cr_assert_eq(n,
	    memcmp(after, want[9].stream_id, UUID_LEN) < 0 ? NS - 9 : NS - 10);
	/* streams created after a listing are merged in order */
	for (k = NS; k < NS + 5; k++) {
		uint32_t s = (uint32_t)k;

		write_batch(1, &s);
	}
	{
		struct ipc_stream_info more_all[NS + 5];

		n = index_list(&ix, NULL, NS + 5, more_all, &more);
		cr_assert_eq(n, NS + 5);
		for (k = 1; k < n; k++)
			cr_assert_lt(memcmp(more_all[k - 1].stream_id,
			                 more_all[k].stream_id, UUID_LEN),
			    0);
	}
}

Test(index, grows_past_every_table)
{
	/*
	 * 70000 events in 1100 streams: more than one 65536-entry chunk of
	 * offsets, a stream table that doubles (1024 slots at 3/4 load) and
	 * an event table that doubles (65536 slots at 3/4 load).
	 */
	enum { N = 70000, NS = 1100, B = 1000 };
	uint32_t streams[B];
	uint64_t p = 0, k;

	open_fresh();
	while (p < N) {
		for (k = 0; k < B; k++)
			streams[k] = (uint32_t)((p + k) * 7 % NS);
		write_batch(B, streams);
		remember(B, streams);
		p += B;
	}
	cr_assert_gt(ix.stab_cap, 1024);
	cr_assert_gt(ix.etab_cap, 65536);
	cr_assert_not_null(ix.chunks[1]);
	check_index(NS);
	/* tens of bytes per event, not the event size */
	cr_assert_lt(ix.bytes / N, 64, "index holds %llu bytes an event",
	    (unsigned long long)(ix.bytes / N));
	reopen();
	check_index(NS);
}

/* ------------------------------------------------------------------ */

static uint64_t
file_size(const char *name)
{
	char path[128];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(stat(path, &sb), 0);
	return (uint64_t)sb.st_size;
}

static void
log_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/seg-00000000000000000000.log", dir);
}

/* Three batches, closed; returns their offsets in off[0..3] (3 = end). */
static void
three_batches(uint64_t off[4])
{
	static const uint32_t s[] = { 0, 1, 0, 1 };

	open_fresh();
	off[0] = journal_hot(&jr)->end;
	write_batch(2, s);
	off[1] = journal_hot(&jr)->end;
	write_batch(3, s);
	off[2] = journal_hot(&jr)->end;
	write_batch(4, s);
	off[3] = journal_hot(&jr)->end;
	index_free(&ix);
	ix_live = 0;
	journal_close(&jr);
}

/* A visit that only counts, and checks positions run 0, 1, 2... */
struct counter {
	uint64_t n;
	uint64_t bad;
};

static void
count_visit(void *arg, const struct ef_event *ev, uint64_t off)
{
	struct counter *c = arg;

	(void)off;
	if (ev->global_position != c->n)
		c->bad++;
	c->n++;
}

Test(journal, torn_tail_is_cut)
{
	uint64_t off[4], cut;
	struct journal_bad bad;
	char path[128];
	uint8_t *orig;
	int fd;

	three_batches(off);
	log_path(path, sizeof(path));
	orig = malloc(off[3]);
	cr_assert_not_null(orig);
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, orig, off[3], 0), (ssize_t)off[3]);
	close(fd);
	/* every length from the start of the last batch to one byte short */
	for (cut = off[2]; cut < off[3]; cut++) {
		struct counter cnt = { 0, 0 };

		fd = open(path, O_WRONLY | O_TRUNC);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, orig, cut), (ssize_t)cut);
		close(fd);
		cr_assert_eq(journal_open(&jr, dir, 0, JOURNAL_CACHE_DEFAULT,
		                 0, 0, count_visit, &cnt, &bad),
		    0, "cut at %llu", (unsigned long long)cut);
		cr_assert_eq(journal_hot(&jr)->end, off[2]);
		cr_assert_eq(cnt.n, 5);
		cr_assert_eq(cnt.bad, 0);
		cr_assert_eq(file_size("seg-00000000000000000000.log"),
		    off[2]);
		journal_close(&jr);
	}
	free(orig);
}

Test(journal, corruption_before_the_tail_is_refused)
{
	uint64_t off[4];
	struct journal_bad bad;
	char path[128];
	int fd;
	uint8_t b;

	three_batches(off);
	log_path(path, sizeof(path));
	/* one byte in the middle of the second batch */
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, (off_t)(off[1] + 50)), 1);
	b ^= 0x10;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)(off[1] + 50)), 1);
	close(fd);

	open_index(-EBADMSG, off[1]);
	cr_assert_eq(file_size("seg-00000000000000000000.log"), off[3],
	    "nothing was cut");
	index_free(&ix);

	/* the explicit repair cuts there */
	index_init(&ix, &jr, NULL);
	cr_assert_eq(journal_open(&jr, dir, 0, JOURNAL_CACHE_DEFAULT, 1, 0,
	                 visit, &ix, &bad),
	    0);
	cr_assert_eq(bad.off, off[1]);
	cr_assert_eq(journal_hot(&jr)->end, off[1]);
	cr_assert_eq(ix.head, 2);
	cr_assert_eq(file_size("seg-00000000000000000000.log"), off[1]);
}

Test(journal, lock_is_exclusive)
{
	struct journal other;
	struct journal_bad bad;

	open_fresh();
	cr_assert_eq(journal_open(&other, dir, 0, JOURNAL_CACHE_DEFAULT, 0, 0,
	                 visit, &ix, &bad),
	    -EEXIST);
	journal_close(&jr);
	cr_assert_eq(journal_open(&other, dir, 0, JOURNAL_CACHE_DEFAULT, 0, 0,
	                 visit, &ix, &bad),
	    0);
	journal_close(&other);
}

Test(journal, bad_or_short_file_header)
{
	uint64_t off[4];
	struct journal_bad bad;
	char path[128];
	int fd;

	three_batches(off);
	log_path(path, sizeof(path));
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, "X", 1, 3), 1);
	close(fd);
	open_index(-EBADMSG, 0);

	/* shorter than a header: a creation that never finished */
	cr_assert_eq(truncate(path, 10), 0);
	cr_assert_eq(journal_open(&jr, dir, 0, JOURNAL_CACHE_DEFAULT, 0, 0,
	                 visit, &ix, &bad),
	    0);
	cr_assert_eq(journal_hot(&jr)->end, LOGFILE_HDR);
	cr_assert_eq(ix.head, 0);
}
