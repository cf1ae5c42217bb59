/* SPDX-License-Identifier: MIT */
/*
 * test_archive.c - unit tests of the cold archive (daemons/stored/
 * archive.c) over segments built here with libcommon's record and batch
 * encoders: round trips at many batch and frame sizes, the exact segment
 * bytes back from the real `zstd -d`, every record read at random, the
 * frame cache under a tiny budget with concurrent readers, every kind of
 * damage reported as -EBADMSG naming frame and offset, damaged segments
 * refused, and the startup cleanup of what a crash leaves.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <xxhash.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "archive.h"
#include "record.h"
#include "../tools/testutil.h"
#include "tmpdir.h"

struct seg {
	uint8_t *img;
	size_t len;
	uint64_t *rec_off; /* offset of every record */
	size_t nrec;
	uint64_t *batch_off; /* offset of every batch, then the end */
	size_t nbatch;
};

static char dir[] = "/tmp/test_archive.XXXXXX";
static int dirfd_ = -1;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static void seg_build(struct seg *s, uint64_t base, const uint32_t *sizes,
    size_t nb, size_t payload);

/* seg_build of nb batches of 1..max_events events each, at random. */
static void
seg_build_random(struct seg *s, uint64_t base, size_t nb, uint32_t max_events,
    size_t payload)
{
	uint32_t *sizes = calloc(nb, sizeof(*sizes));
	size_t i;

	cr_assert_not_null(sizes);
	for (i = 0; i < nb; i++)
		sizes[i] = 1 + (uint32_t)(xorshift64(&rng) % max_events);
	seg_build(s, base, sizes, nb, payload);
	free(sizes);
}

static void
setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dirfd_, 0);
}

static void
teardown(void)
{
	close(dirfd_);
	tmpdir_remove(dir);
}

TestSuite(archive, .init = setup, .fini = teardown);

static void
seg_append(struct seg *s, const void *p, size_t n)
{
	s->img = realloc(s->img, s->len + n);
	cr_assert_not_null(s->img);
	memcpy(s->img + s->len, p, n);
	s->len += n;
}

/*
 * A segment starting at position base with the given batch sizes
 * (events per batch); payloads of payload bytes give or take half.
 */
static void
seg_build(struct seg *s, uint64_t base, const uint32_t *sizes, size_t nb,
    size_t payload)
{
	uint8_t hdr[LOGFILE_HDR], bh[BATCH_HDR], rec[RECORD_MAX];
	char pl[RECORD_MAX], type[32];
	struct batch_hdr h;
	struct ef_event ev;
	uint64_t pos = base;
	size_t b, i, j, plen, hoff, body;

	memset(s, 0, sizeof(*s));
	logfile_hdr_encode(hdr, base);
	seg_append(s, hdr, sizeof(hdr));
	for (b = 0; b < nb; b++) {
		s->batch_off = realloc(s->batch_off,
		    (s->nbatch + 2) * sizeof(*s->batch_off));
		s->batch_off[s->nbatch++] = s->len;
		hoff = s->len;
		seg_append(s, bh, sizeof(bh)); /* filled in below */
		body = 0;
		for (i = 0; i < sizes[b]; i++) {
			memset(&ev, 0, sizeof(ev));
			for (j = 0; j < UUID_LEN; j++) {
				ev.event_id[j] = (uint8_t)xorshift64(&rng);
				ev.stream_id[j] = (uint8_t)(pos % 7 + j);
			}
			ev.global_position = pos;
			ev.stream_version = pos / 7;
			ev.recorded_at = 1700000000000ull + pos;
			snprintf(type, sizeof(type), "Thing%uHappened",
			    (unsigned)(pos % 5));
			ev.type = type;
			ev.type_len = (uint32_t)strlen(type);
			plen = payload / 2 +
			    (payload ? xorshift64(&rng) % payload : 0);
			plen = snprintf(pl, sizeof(pl),
			           "{\"n\":%llu,\"pad\":\"",
			           (unsigned long long)pos) +
			    plen;
			for (j = strlen(pl); j < plen && j < sizeof(pl) - 3;
			     j++)
				pl[j] = "abcdefgh"[xorshift64(&rng) % 8];
			pl[j++] = '"';
			pl[j++] = '}';
			ev.payload = (const uint8_t *)pl;
			ev.payload_len = (uint32_t)j;
			s->rec_off = realloc(s->rec_off,
			    (s->nrec + 1) * sizeof(*s->rec_off));
			s->rec_off[s->nrec++] = s->len;
			seg_append(s, rec, record_encode(rec, &ev));
			body += record_size(ev.type_len, 0, ev.payload_len);
			pos++;
		}
		h.count = sizes[b];
		h.body_len = (uint32_t)body;
		h.first_pos = pos - sizes[b];
		batch_hdr_encode(s->img + hoff, &h);
	}
	if (s->batch_off == NULL)
		s->batch_off = malloc(sizeof(*s->batch_off));
	s->batch_off[s->nbatch] = s->len;
}

static void
seg_free(struct seg *s)
{
	free(s->img);
	free(s->rec_off);
	free(s->batch_off);
}

static void
write_file(const char *name, const void *p, size_t n)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC, 0640);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static uint8_t *
read_file(const char *name, size_t *n)
{
	struct stat sb;
	uint8_t *p;
	int fd = openat(dirfd_, name, O_RDONLY);

	cr_assert_geq(fd, 0, "open %s", name);
	cr_assert_eq(fstat(fd, &sb), 0);
	p = malloc((size_t)sb.st_size + 1);
	cr_assert_eq(read(fd, p, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*n = (size_t)sb.st_size;
	return p;
}

static int
exists(const char *name)
{
	struct stat sb;

	return fstatat(dirfd_, name, &sb, 0) == 0;
}

static const char *
path(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

/* Archives s as "name" and checks the result end to end. */
static void
archive_and_check(const struct seg *s, const char *name, uint32_t frame_size)
{
	struct archive_opts o = { .frame_size = frame_size };
	struct archive_stats st, vst;
	struct archive_fault f;
	struct archive_frame *fr;
	struct archive_frame_info fi;
	struct archive *a;
	struct ef_event ev;
	char zname[128];
	uint64_t bad = 1, doff, expect_off = 0;
	size_t i, rlen, b = 0, prev;
	uint32_t k;

	write_file(name, s->img, s->len);
	cr_assert_eq(archive_write(dirfd_, name, &o, &st, &bad), 0);
	if (frame_size == 0)
		frame_size = ARCHIVE_FRAME_SIZE;
	snprintf(zname, sizeof(zname), "%s%s", name, ARCHIVE_SUFFIX);
	cr_assert(exists(zname));
	snprintf(zname, sizeof(zname), "%s%s", name, ARCHIVE_TMP_SUFFIX);
	cr_assert_not(exists(zname));
	snprintf(zname, sizeof(zname), "%s%s", name, ARCHIVE_SUFFIX);
	cr_assert_eq(st.raw_bytes, s->len);
	cr_assert_eq(archive_verify(path(zname), &vst, &f), 0, "%s", f.what);
	cr_assert_eq(vst.frames, st.frames);
	cr_assert_eq(vst.comp_bytes, st.comp_bytes);

	cr_assert_eq(archive_open(path(zname), NULL, &a, &f), 0);
	/* frames tile the segment, each ends on a batch boundary, and each
	 * but the last closed at the first batch reaching frame_size */
	for (k = 0; k < st.frames; k++) {
		cr_assert_eq(archive_frame_info(a, k, &fi), 0);
		cr_assert_eq(fi.doff, expect_off);
		expect_off += fi.len;
		while (b < s->nbatch && s->batch_off[b] < expect_off)
			b++;
		cr_assert_eq(s->batch_off[b], expect_off,
		    "frame %u ends inside a batch", k);
		prev = b > 0 ? s->batch_off[b - 1] : LOGFILE_HDR;
		if (k + 1 < st.frames) {
			cr_assert_geq(fi.len, frame_size);
			/* without its last batch it was short, unless that
			 * batch is its only one */
			cr_assert(prev - fi.doff < frame_size ||
			        prev == fi.doff ||
			        (k == 0 && prev == LOGFILE_HDR),
			    "frame %u did not close at frame_size", k);
		}
	}
	cr_assert_eq(expect_off, s->len);
	cr_assert_eq(archive_frame_info(a, st.frames, &fi), -ERANGE);

	/* every record, through the frame that holds its offset */
	for (i = 0; i < s->nrec; i++) {
		doff = s->rec_off[i];
		cr_assert_eq(archive_get(a, doff, &fr, &f), 0);
		cr_assert_leq(fr->doff, doff);
		cr_assert_eq(record_decode(fr->data + (doff - fr->doff),
		                 fr->len - (doff - fr->doff), &ev, &rlen, 1),
		    REC_OK, "record %zu not whole in its frame", i);
		cr_assert_arr_eq(fr->data + (doff - fr->doff), s->img + doff,
		    rlen);
		archive_frame_release(a, fr);
	}
	cr_assert_eq(archive_get(a, s->len, &fr, &f), -ERANGE);
	cr_assert_eq(archive_read_frame(a, st.frames, &fr, &f), -ERANGE);
	archive_close(a);
}

static void
zstd_d_matches(const char *zname, const struct seg *s)
{
	struct archive_frame_info fi;
	ZSTD_frameHeader zfh;
	struct archive *a;
	char cmd[512];
	uint8_t *out, *z;
	size_t n, zn;
	uint32_t k;

	/* every frame carries its content size and its own checksum */
	z = read_file(zname, &zn);
	cr_assert_eq(archive_open(path(zname), NULL, &a, NULL), 0);
	for (k = 0; archive_frame_info(a, k, &fi) == 0; k++) {
		cr_assert_eq(ZSTD_getFrameHeader(&zfh, z + fi.file_off,
		                 fi.comp_len),
		    0);
		cr_assert_eq(zfh.frameType, ZSTD_frame);
		cr_assert_eq(zfh.checksumFlag, 1);
		cr_assert_eq(zfh.frameContentSize, fi.len);
	}
	cr_assert_gt(k, 0);
	archive_close(a);
	free(z);

	snprintf(cmd, sizeof(cmd), "zstd -d -q -c '%s' > '%s'", path(zname),
	    path("zstd-out"));
	cr_assert_eq(system(cmd), 0, "the zstd binary failed: %s", cmd);
	out = read_file("zstd-out", &n);
	cr_assert_eq(n, s->len);
	cr_assert_arr_eq(out, s->img, n);
	free(out);
}

Test(archive, round_trip_many_batch_sizes)
{
	static const uint32_t frame_sizes[] = { 1, 700, 4096, 65536,
		ARCHIVE_FRAME_SIZE };
	uint32_t sizes[300];
	struct seg s;
	size_t i, fs;
	char name[32];

	for (i = 0; i < 300; i++)
		sizes[i] = 1 +
		    (uint32_t)(xorshift64(&rng) % (i % 10 == 0 ? 40 : 4));
	sizes[150] = 400; /* ~100 KiB: one batch bigger than a frame */
	seg_build(&s, 1000, sizes, 300, 200);
	cr_assert_gt(s.batch_off[151] - s.batch_off[150], 65536);
	for (fs = 0; fs < sizeof(frame_sizes) / sizeof(*frame_sizes); fs++) {
		snprintf(name, sizeof(name), "seg-%zu", fs);
		archive_and_check(&s, name, frame_sizes[fs]);
	}
	seg_free(&s);
}

Test(archive, zstd_binary_gives_back_exact_bytes)
{
	struct seg s;

	seg_build_random(&s, 0, 500, 20, 300);
	archive_and_check(&s, "a", 0); /* default frame size */
	zstd_d_matches("a.zst", &s);
	archive_and_check(&s, "b", 3000); /* many frames */
	zstd_d_matches("b.zst", &s);
	seg_free(&s);
}

Test(archive, empty_segment)
{
	struct archive_stats st;
	struct archive_frame *fr;
	struct archive *a;
	struct seg s;

	seg_build(&s, 42, NULL, 0, 0);
	cr_assert_eq(s.len, LOGFILE_HDR);
	archive_and_check(&s, "e", 0);
	zstd_d_matches("e.zst", &s);
	cr_assert_eq(archive_open(path("e.zst"), NULL, &a, NULL), 0);
	archive_stat(a, &st);
	cr_assert_eq(st.frames, 1);
	cr_assert_eq(st.raw_bytes, LOGFILE_HDR);
	cr_assert_eq(archive_get(a, 0, &fr, NULL), 0);
	cr_assert_arr_eq(fr->data, s.img, LOGFILE_HDR);
	archive_frame_release(a, fr);
	cr_assert_eq(archive_get(a, LOGFILE_HDR, &fr, NULL), -ERANGE);
	archive_close(a);
	seg_free(&s);
}

Test(archive, options_checked)
{
	struct archive_opts o = { .frame_size = 65u << 20 };
	struct seg s;

	seg_build(&s, 0, NULL, 0, 0);
	write_file("o", s.img, s.len);
	cr_assert_eq(archive_write(dirfd_, "o", &o, NULL, NULL), -EINVAL);
	o.frame_size = 0;
	o.level = 1000;
	cr_assert_eq(archive_write(dirfd_, "o", &o, NULL, NULL), -EINVAL);
	cr_assert_eq(archive_write(dirfd_, "missing", NULL, NULL, NULL),
	    -ENOENT);
	o.level = 19;
	cr_assert_eq(archive_write(dirfd_, "o", &o, NULL, NULL), 0);
	cr_assert_not(exists("o.zst.tmp"));
	seg_free(&s);
}

Test(archive, damaged_segment_is_not_archived)
{
	uint32_t sizes[20] = { 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
		3, 3, 3, 3 };
	struct seg s;
	uint64_t bad;

	seg_build(&s, 0, sizes, 20, 100);
	/* a flipped byte inside batch 7's third record */
	s.img[s.batch_off[7] + BATCH_HDR + 300] ^= 0x20;
	write_file("d", s.img, s.len);
	cr_assert_eq(archive_write(dirfd_, "d", NULL, NULL, &bad), -EBADMSG);
	cr_assert_eq(bad, s.batch_off[7]);
	cr_assert_not(exists("d.zst"));
	cr_assert_not(exists("d.zst.tmp"));
	s.img[s.batch_off[7] + BATCH_HDR + 300] ^= 0x20;

	/* a torn tail */
	write_file("t", s.img, s.len - 10);
	cr_assert_eq(archive_write(dirfd_, "t", NULL, NULL, &bad), -EBADMSG);
	cr_assert_eq(bad, s.batch_off[19]);
	cr_assert_not(exists("t.zst"));
	cr_assert_not(exists("t.zst.tmp"));

	/* a bad file header, and a file shorter than one */
	s.img[20] ^= 1;
	write_file("h", s.img, s.len);
	cr_assert_eq(archive_write(dirfd_, "h", NULL, NULL, &bad), -EBADMSG);
	cr_assert_eq(bad, 0);
	write_file("h", s.img, 10);
	cr_assert_eq(archive_write(dirfd_, "h", NULL, NULL, &bad), -EBADMSG);
	cr_assert_not(exists("h.zst"));
	seg_free(&s);
}

/*
 * Concurrent readers over a cache far smaller than the archive: every
 * record read must match, and the cache must stay within its budget.
 */
struct reader_arg {
	struct archive *a;
	const struct seg *s;
	uint64_t seed;
	int iters;
	int bad;
};

static void *
reader(void *p)
{
	struct reader_arg *r = p;
	struct archive_frame *fr;
	struct ef_event ev;
	uint64_t x = r->seed, doff;
	size_t i, rlen;
	int k;

	for (k = 0; k < r->iters; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		i = (size_t)(x % r->s->nrec);
		doff = r->s->rec_off[i];
		if (archive_get(r->a, doff, &fr, NULL) != 0) {
			r->bad++;
			continue;
		}
		if (record_decode(fr->data + (doff - fr->doff),
		        fr->len - (doff - fr->doff), &ev, &rlen,
		        1) != REC_OK ||
		    memcmp(fr->data + (doff - fr->doff), r->s->img + doff,
		        rlen) != 0)
			r->bad++;
		if (k % 3 == 0)
			sched_yield(); /* hold it across others' evictions */
		archive_frame_release(r->a, fr);
	}
	return NULL;
}

static void
lru_run(uint64_t budget)
{
	struct archive_opts o = { .frame_size = 8192 };
	struct archive_cache_stats cs;
	struct archive_stats st;
	struct archive_cache *c;
	struct archive *a;
	struct reader_arg args[4];
	pthread_t t[4];
	struct seg s;
	size_t i;

	seg_build_random(&s, 7, 400, 8, 250);
	write_file("l", s.img, s.len);
	cr_assert_eq(archive_write(dirfd_, "l", &o, &st, NULL), 0);
	cr_assert_gt(st.frames, 50);
	cr_assert_not_null(c = archive_cache_new(budget));
	cr_assert_eq(archive_open(path("l.zst"), c, &a, NULL), 0);
	for (i = 0; i < 4; i++) {
		args[i] = (struct reader_arg){ a, &s, 0x1234567ull * (i + 1),
			5000, 0 };
		cr_assert_eq(pthread_create(&t[i], NULL, reader, &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(args[i].bad, 0, "reader %zu saw bad data", i);
	}
	archive_cache_stat(c, &cs);
	cr_assert_eq(cs.budget, budget);
	cr_assert_leq(cs.bytes, budget);
	cr_assert_eq(cs.hits + cs.misses, 4 * 5000);
	cr_assert_gt(cs.evictions, 0);
	cr_assert_gt(cs.misses, st.frames); /* evicted frames came back */
	if (budget > 0)
		cr_assert_gt(cs.hits, 0);
	archive_close(a);
	archive_cache_stat(c, &cs);
	cr_assert_eq(cs.bytes, 0);
	cr_assert_eq(cs.entries, 0);
	archive_cache_free(c);
	seg_free(&s);
}

Test(archive, lru_tiny_budget_concurrent_readers)
{
	lru_run(3 * 8192 + 5000);
}

Test(archive, lru_zero_budget_concurrent_readers)
{
	lru_run(0);
}

Test(archive, lru_keeps_recent_frames)
{
	uint32_t sizes[100];
	struct archive_opts o = { .frame_size = 4096 };
	struct archive_cache_stats cs;
	struct archive_frame *fr, *held;
	struct archive_cache *c;
	struct archive *a;
	struct seg s;
	size_t i;

	for (i = 0; i < 100; i++)
		sizes[i] = 4;
	seg_build(&s, 0, sizes, 100, 100);
	write_file("k", s.img, s.len);
	cr_assert_eq(archive_write(dirfd_, "k", &o, NULL, NULL), 0);
	cr_assert_not_null(c = archive_cache_new(1 << 20));
	cr_assert_eq(archive_open(path("k.zst"), c, &a, NULL), 0);
	cr_assert_eq(archive_read_frame(a, 0, &held, NULL), 0);
	cr_assert_eq(archive_read_frame(a, 0, &fr, NULL), 0);
	cr_assert_eq(fr, held); /* one copy, shared */
	archive_frame_release(a, fr);
	archive_cache_stat(c, &cs);
	cr_assert_eq(cs.hits, 1);
	cr_assert_eq(cs.misses, 1);
	cr_assert_eq(cs.entries, 1);
	cr_assert_eq(cs.bytes, held->len);
	archive_frame_release(a, held);
	archive_close(a);
	archive_cache_free(c);
	seg_free(&s);
}

/* Readers started together on the same frames, in the same order. */
struct flight_arg {
	struct archive *a;
	pthread_barrier_t *bar;
	uint32_t frames;
	int ok;
	int bad;
	uint32_t bad_frame;
};

static void *
flight_reader(void *p)
{
	struct flight_arg *r = p;
	struct archive_frame *fr;
	struct archive_fault f;
	uint32_t k;

	pthread_barrier_wait(r->bar);
	for (k = 0; k < r->frames; k++) {
		memset(&f, 0, sizeof(f));
		if (archive_read_frame(r->a, k, &fr, &f) == 0) {
			r->ok++;
			archive_frame_release(r->a, fr);
		} else {
			r->bad++;
			r->bad_frame = f.frame;
		}
	}
	return NULL;
}

static void
flight_run(const char *zname, struct archive_cache *c, struct flight_arg *args)
{
	pthread_barrier_t bar;
	pthread_t t[4];
	struct archive *a;
	struct archive_stats st;
	int i;

	cr_assert_eq(archive_open(path(zname), c, &a, NULL), 0);
	archive_stat(a, &st);
	cr_assert_eq(pthread_barrier_init(&bar, NULL, 4), 0);
	for (i = 0; i < 4; i++) {
		args[i] = (struct flight_arg){ a, &bar, st.frames, 0, 0, 0 };
		cr_assert_eq(pthread_create(&t[i], NULL, flight_reader,
		                 &args[i]),
		    0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);
	archive_close(a);
}

/* Readers missing on one frame at once share one decompression, and
 * share its failure too. */
Test(archive, concurrent_misses_decompress_once)
{
	struct archive_opts o = { .frame_size = 4096 };
	struct archive_cache_stats cs;
	struct archive_stats st;
	struct archive_frame_info fi;
	struct archive_cache *c;
	struct archive *a;
	struct flight_arg args[4];
	struct seg s;
	uint8_t *z;
	size_t i, n;

	seg_build_random(&s, 0, 200, 8, 200);
	write_file("f", s.img, s.len);
	cr_assert_eq(archive_write(dirfd_, "f", &o, &st, NULL), 0);
	cr_assert_not_null(c = archive_cache_new(1ull << 30));
	flight_run("f.zst", c, args);
	archive_cache_stat(c, &cs);
	for (i = 0; i < 4; i++)
		cr_assert_eq(args[i].ok, (int)st.frames);
	cr_assert_eq(cs.misses, st.frames);
	cr_assert_eq(cs.hits, 3ull * st.frames);
	archive_cache_free(c);

	/* frame 3 damaged: every reader gets the error, then a later
	 * read tries again rather than keep a failure around */
	z = read_file("f.zst", &n);
	cr_assert_eq(archive_open(path("f.zst"), NULL, &a, NULL), 0);
	cr_assert_eq(archive_frame_info(a, 3, &fi), 0);
	archive_close(a);
	z[fi.file_off + fi.comp_len / 2] ^= 0x10;
	write_file("g.zst", z, n);
	free(z);
	cr_assert_not_null(c = archive_cache_new(1ull << 30));
	flight_run("g.zst", c, args);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(args[i].bad, 1);
		cr_assert_eq(args[i].bad_frame, 3);
		cr_assert_eq(args[i].ok, (int)st.frames - 1);
	}
	archive_cache_stat(c, &cs);
	cr_assert_eq(cs.entries, 0); /* closed */
	cr_assert_geq(cs.misses, st.frames);
	archive_cache_free(c);
	seg_free(&s);
}

/* Archive "v" of a small multi-frame segment. */
struct small {
	struct seg s;    /* the segment */
	uint8_t *img;    /* v.zst's bytes */
	size_t n;        /* and their count */
	uint32_t frames; /* in v.zst, at least 5 */
};

static void
small_archive(struct small *v)
{
	uint32_t sizes[60];
	struct archive_opts o = { .frame_size = 2000 };
	struct archive_stats st;
	size_t i;

	for (i = 0; i < 60; i++)
		sizes[i] = 1 + (uint32_t)(i % 5);
	seg_build(&v->s, 0, sizes, 60, 80);
	write_file("v", v->s.img, v->s.len);
	cr_assert_eq(archive_write(dirfd_, "v", &o, &st, NULL), 0);
	v->frames = st.frames;
	cr_assert_geq(st.frames, 5);
	v->img = read_file("v.zst", &v->n);
}

static void
small_free(struct small *v)
{
	free(v->img);
	seg_free(&v->s);
}

Test(archive, flipped_byte_in_each_frame)
{
	struct archive_frame_info fi;
	struct archive_frame *fr;
	struct archive_fault f;
	struct archive *a;
	struct small v;
	uint32_t k, j, other;
	uint64_t at[5];
	int rc;

	small_archive(&v);
	for (k = 0; k < v.frames; k++) {
		cr_assert_eq(archive_open(path("v.zst"), NULL, &a, NULL), 0);
		cr_assert_eq(archive_frame_info(a, k, &fi), 0);
		archive_close(a);
		/* the magic, the header, the middle, the block end, the
		 * frame's own checksum */
		at[0] = fi.file_off;
		at[1] = fi.file_off + 5;
		at[2] = fi.file_off + fi.comp_len / 2;
		at[3] = fi.file_off + fi.comp_len - 5;
		at[4] = fi.file_off + fi.comp_len - 1;
		for (j = 0; j < 5; j++) {
			v.img[at[j]] ^= 0x04;
			write_file("w.zst", v.img, v.n);
			v.img[at[j]] ^= 0x04;
			cr_assert_eq(archive_open(path("w.zst"), NULL, &a, &f),
			    0, "frame damage is not the table's business");
			rc = archive_read_frame(a, k, &fr, &f);
			cr_assert_eq(rc, -EBADMSG, "frame %u byte %llu: %d", k,
			    (unsigned long long)at[j], rc);
			cr_assert_eq(f.frame, k);
			cr_assert_eq(f.file_off, fi.file_off);
			cr_assert_eq(f.doff, fi.doff);
			cr_assert_not_null(f.what);
			/* the other frames are still good */
			other = (k + 1) % v.frames;
			cr_assert_eq(archive_read_frame(a, other, &fr, &f), 0);
			archive_frame_release(a, fr);
			archive_close(a);
			memset(&f, 0, sizeof(f));
			cr_assert_eq(archive_verify(path("w.zst"), NULL, &f),
			    -EBADMSG);
			cr_assert_eq(f.frame, k);
			cr_assert_eq(f.file_off, fi.file_off);
		}
	}
	small_free(&v);
}

Test(archive, every_truncation_is_an_error)
{
	struct archive_fault f;
	struct archive *a;
	struct small v;
	size_t len;

	small_archive(&v);
	for (len = 0; len < v.n; len++) {
		write_file("w.zst", v.img, len);
		cr_assert_eq(archive_open(path("w.zst"), NULL, &a, &f),
		    -EBADMSG, "truncated to %zu", len);
		cr_assert_not_null(f.what);
		cr_assert_eq(archive_verify(path("w.zst"), NULL, &f),
		    -EBADMSG);
	}
	small_free(&v);
}

Test(archive, file_shrinks_after_open)
{
	struct archive_frame *fr;
	struct archive_fault f;
	struct archive *a;
	struct small v;

	small_archive(&v);
	write_file("w.zst", v.img, v.n);
	cr_assert_eq(archive_open(path("w.zst"), NULL, &a, &f), 0);
	cr_assert_eq(truncate(path("w.zst"), 100), 0);
	cr_assert_eq(archive_read_frame(a, v.frames - 1, &fr, &f), -EBADMSG);
	cr_assert_eq(f.frame, v.frames - 1);
	archive_close(a);
	small_free(&v);
}

/* Writes img with a change and expects archive_open to refuse it. */
static void
bad_table(uint8_t *img, size_t n, size_t off, const void *val, size_t len,
    const char *why)
{
	struct archive_fault f = { 0 };
	struct archive *a = NULL;
	uint8_t save[8];
	int rc;

	memcpy(save, img + off, len);
	memcpy(img + off, val, len);
	write_file("w.zst", img, n);
	memcpy(img + off, save, len);
	rc = archive_open(path("w.zst"), NULL, &a, &f);
	cr_assert_eq(rc, -EBADMSG, "%s: %d", why, rc);
	cr_assert_null(a);
	cr_assert_not_null(f.what, "%s", why);
	cr_assert_eq(archive_verify(path("w.zst"), NULL, &f), -EBADMSG);
}

/* Each bad value in the footer (at foot) or the seek table (at tab, its
 * entries at ent) of archive img (n bytes, frames frames) is refused. */
static void
bad_footer_and_table_values(uint8_t *img, size_t n, size_t foot, size_t tab,
    size_t ent, uint32_t frames)
{
	static const uint32_t counts[] = { 0, 1, 2, 0x7fffffff, 0xffffffff,
		0x15555556, ARCHIVE_FRAMES_MAX + 1 };
	uint8_t v[4];
	uint32_t k;

	put_le32(v, 0x8F92EAB0);
	bad_table(img, n, foot + 5, v, 4, "footer magic");
	v[0] = 0x81;
	bad_table(img, n, foot + 4, v, 1, "descriptor bits");
	v[0] = 0x00; /* no checksums: entries read as 8 bytes, misaligned */
	bad_table(img, n, foot + 4, v, 1, "descriptor without checksums");
	for (k = 0; k < sizeof(counts) / sizeof(*counts); k++) {
		put_le32(v, counts[k]);
		bad_table(img, n, foot, v, 4, "frame count");
	}
	put_le32(v, frames + 1);
	bad_table(img, n, foot, v, 4, "frame count + 1");
	put_le32(v, frames - 1);
	bad_table(img, n, foot, v, 4, "frame count - 1");
	put_le32(v, 0x184D2A5F);
	bad_table(img, n, tab, v, 4, "skippable magic");
	put_le32(v, get_le32(img + tab + 4) + 1);
	bad_table(img, n, tab + 4, v, 4, "skippable size");
	put_le32(v, 0xffffffff);
	bad_table(img, n, tab + 4, v, 4, "skippable size huge");
	put_le32(v, 0);
	bad_table(img, n, ent, v, 4, "compressed size 0");
	put_le32(v, 0);
	bad_table(img, n, ent + 4, v, 4, "decompressed size 0");
	put_le32(v, 0xffffffff);
	bad_table(img, n, ent + ARCHIVE_ENTRY, v, 4, "compressed size huge");
	put_le32(v, 0xffffffff);
	bad_table(img, n, ent + 4, v, 4, "decompressed size huge");
	put_le32(v, get_le32(img + ent) + 1);
	bad_table(img, n, ent, v, 4, "frames overrun the table");
	put_le32(v, get_le32(img + ent) - 1);
	bad_table(img, n, ent, v, 4, "frames fall short of the table");
}

/* Frame sizes (entries at ent of img) that still add up but cut frames in
 * the wrong place: frames 0 and 1 are refused; img is left as it was. */
static void
frames_cut_in_the_wrong_place(uint8_t *img, size_t n, size_t ent)
{
	struct archive_frame *fr;
	struct archive_fault f;
	struct archive *a;

	put_le32(img + ent, get_le32(img + ent) + 1);
	put_le32(img + ent + ARCHIVE_ENTRY,
	    get_le32(img + ent + ARCHIVE_ENTRY) - 1);
	write_file("w.zst", img, n);
	cr_assert_eq(archive_open(path("w.zst"), NULL, &a, &f), 0);
	cr_assert_eq(archive_read_frame(a, 0, &fr, &f), -EBADMSG);
	cr_assert_eq(f.frame, 0);
	cr_assert_eq(archive_read_frame(a, 1, &fr, &f), -EBADMSG);
	cr_assert_eq(f.frame, 1);
	archive_close(a);
	put_le32(img + ent, get_le32(img + ent) - 1);
	put_le32(img + ent + ARCHIVE_ENTRY,
	    get_le32(img + ent + ARCHIVE_ENTRY) + 1);
}

/* A wrong decompressed size, a wrong table checksum (entries at ent of
 * img): the frame is refused, the others read; img is left as it was. */
static void
wrong_size_and_checksum(uint8_t *img, size_t n, size_t ent)
{
	struct archive_frame *fr;
	struct archive_fault f;
	struct archive *a;

	put_le32(img + ent + 4, get_le32(img + ent + 4) + 1);
	write_file("w.zst", img, n);
	put_le32(img + ent + 4, get_le32(img + ent + 4) - 1);
	cr_assert_eq(archive_open(path("w.zst"), NULL, &a, &f), 0);
	cr_assert_eq(archive_read_frame(a, 0, &fr, &f), -EBADMSG);
	archive_close(a);
	img[ent + 2 * ARCHIVE_ENTRY + 8] ^= 1;
	write_file("w.zst", img, n);
	img[ent + 2 * ARCHIVE_ENTRY + 8] ^= 1;
	cr_assert_eq(archive_open(path("w.zst"), NULL, &a, &f), 0);
	cr_assert_eq(archive_read_frame(a, 2, &fr, &f), -EBADMSG);
	cr_assert_str_eq(f.what, "seek table checksum mismatch");
	cr_assert_eq(f.frame, 2);
	cr_assert_eq(archive_read_frame(a, 1, &fr, &f), 0);
	archive_frame_release(a, fr);
	archive_close(a);
}

Test(archive, bad_seek_tables_and_footers)
{
	struct archive_fault f;
	struct archive *a;
	struct small v;
	size_t foot, tab, ent;

	small_archive(&v);
	foot = v.n - ARCHIVE_FOOTER;
	tab = foot - (size_t)v.frames * ARCHIVE_ENTRY - 8;
	ent = tab + 8;
	cr_assert_eq(get_le32(v.img + tab), ARCHIVE_SKIP_MAGIC);

	bad_footer_and_table_values(v.img, v.n, foot, tab, ent, v.frames);
	frames_cut_in_the_wrong_place(v.img, v.n, ent);
	wrong_size_and_checksum(v.img, v.n, ent);

	/* a footer alone, and garbage */
	write_file("w.zst", v.img + foot, ARCHIVE_FOOTER);
	cr_assert_eq(archive_open(path("w.zst"), NULL, &a, &f), -EBADMSG);
	write_file("w.zst", v.s.img, v.s.len);
	cr_assert_eq(archive_open(path("w.zst"), NULL, &a, &f), -EBADMSG);
	cr_assert_eq(archive_open(path("absent.zst"), NULL, &a, &f), -ENOENT);
	small_free(&v);
}

/* Writes m.zst: segment s compressed as two frames split at byte cut,
 * with a seek table whose checksums match them (so only the batch check
 * can see a bad byte inside). */
static void
write_two_frames(const struct seg *s, size_t cut)
{
	uint8_t *out, foot[ARCHIVE_FOOTER], hdr[8], ent[ARCHIVE_ENTRY * 2];
	size_t cap, c0, c1;
	int fd;

	cap = ZSTD_compressBound(s->len);
	out = malloc(2 * cap);
	cr_assert_not_null(out);
	c0 = ZSTD_compress(out, cap, s->img, cut, 3);
	c1 = ZSTD_compress(out + c0, cap, s->img + cut, s->len - cut, 3);
	cr_assert(!ZSTD_isError(c0) && !ZSTD_isError(c1));
	put_le32(hdr, ARCHIVE_SKIP_MAGIC);
	put_le32(hdr + 4, 2 * ARCHIVE_ENTRY + ARCHIVE_FOOTER);
	put_le32(ent, (uint32_t)c0);
	put_le32(ent + 4, (uint32_t)cut);
	put_le32(ent + 8, (uint32_t)XXH64(s->img, cut, 0));
	put_le32(ent + 12, (uint32_t)c1);
	put_le32(ent + 16, (uint32_t)(s->len - cut));
	put_le32(ent + 20, (uint32_t)XXH64(s->img + cut, s->len - cut, 0));
	put_le32(foot, 2);
	foot[4] = 0x80;
	put_le32(foot + 5, ARCHIVE_SEEK_MAGIC);
	fd = openat(dirfd_, "m.zst", O_WRONLY | O_CREAT | O_TRUNC, 0640);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, out, c0 + c1), (ssize_t)(c0 + c1));
	cr_assert_eq(write(fd, hdr, 8), 8);
	cr_assert_eq(write(fd, ent, sizeof(ent)), (ssize_t)sizeof(ent));
	cr_assert_eq(write(fd, foot, sizeof(foot)), (ssize_t)sizeof(foot));
	close(fd);
	free(out);
}

Test(archive, verify_checks_batches_inside_good_frames)
{
	uint32_t sizes[10] = { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2 };
	struct archive_fault f;
	struct seg s;

	/* a frame with intact checksums over bad batch bytes: only the
	 * batch check can see it */
	seg_build(&s, 5, sizes, 10, 50);
	s.img[s.rec_off[7] + 80] ^= 1;
	write_two_frames(&s, s.batch_off[5]);
	cr_assert_eq(archive_verify(path("m.zst"), NULL, &f), -EBADMSG);
	cr_assert_eq(f.frame, 0);
	cr_assert_eq(f.file_off, 0);
	cr_assert_eq(f.doff, s.batch_off[3]); /* record 7 is in batch 3 */

	/* intact batches but one split across the two frames */
	s.img[s.rec_off[7] + 80] ^= 1;
	write_two_frames(&s, s.batch_off[5] + 40);
	cr_assert_eq(archive_verify(path("m.zst"), NULL, &f), -EBADMSG);
	cr_assert_eq(f.frame, 0);
	cr_assert_eq(f.doff, s.batch_off[5]);
	seg_free(&s);
}

Test(archive, cleanup_after_crashes)
{
	uint32_t sizes[30];
	struct seg s;
	uint8_t *z;
	size_t i, n;
	int removed = -1;

	for (i = 0; i < 30; i++)
		sizes[i] = 3;
	seg_build(&s, 0, sizes, 30, 100);
	/* 1: crash after the rename: plain and complete archive */
	write_file("p1", s.img, s.len);
	cr_assert_eq(archive_write(dirfd_, "p1", NULL, NULL, NULL), 0);
	/* 2: crash mid-write: plain and a temp file */
	write_file("p2", s.img, s.len);
	write_file("p2.zst.tmp", "partial", 7);
	/* 3: an archive that does not match its plain segment */
	write_file("p3", s.img, s.len);
	z = read_file("p1.zst", &n);
	write_file("p3.zst", z, n - 3);
	/* 4: an archive of another size than the plain next to it */
	write_file("p4", s.img, s.len - 1);
	write_file("p4.zst", z, n);
	/* 5: the finished state, and an unrelated file */
	write_file("p5.zst", z, n);
	write_file("LOCK", "", 0);
	free(z);

	cr_assert_eq(archive_cleanup(dirfd_, &removed), 0);
	cr_assert_eq(removed, 4);
	cr_assert_not(exists("p1"));
	cr_assert(exists("p1.zst"));
	cr_assert(exists("p2"));
	cr_assert_not(exists("p2.zst.tmp"));
	cr_assert(exists("p3"));
	cr_assert_not(exists("p3.zst"));
	cr_assert(exists("p4"));
	cr_assert_not(exists("p4.zst"));
	cr_assert(exists("p5.zst"));
	cr_assert(exists("LOCK"));
	cr_assert_eq(archive_verify(path("p1.zst"), NULL, NULL), 0);

	/* nothing left to do the second time */
	cr_assert_eq(archive_cleanup(dirfd_, &removed), 0);
	cr_assert_eq(removed, 0);
	seg_free(&s);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *crash_at;
static int crash_nth;

static void
crash_hook(const char *name)
{
	if (strcmp(name, crash_at) == 0 && --crash_nth == 0)
		_exit(99);
}

/*
 * A crash at every named step of archive_write (a child _exits there),
 * then the startup cleanup: exactly one whole copy remains, and which
 * one is fixed by the step.
 */
Test(archive, crash_at_every_step)
{
	static const struct {
		const char *point;
		int nth;
		int archive_stays;
	} steps[] = {
		{ "archive.tmp_open", 1, 0 },
		{ "archive.frame", 1, 0 },
		{ "archive.frame", 3, 0 },
		{ "archive.table", 1, 0 },
		{ "archive.fsync", 1, 0 },
		{ "archive.rename", 1, 1 },
		{ "archive.dir_fsync", 1, 1 },
	};
	struct archive_opts o = { .frame_size = 4096 };
	struct archive_stats st;
	struct seg s;
	uint8_t *back;
	size_t i, n;
	pid_t pid;
	int status, removed;

	seg_build_random(&s, 0, 200, 8, 200);
	for (i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
		(void)unlinkat(dirfd_, "c.zst", 0);
		write_file("c", s.img, s.len);
		if ((pid = fork()) == 0) {
			crash_at = steps[i].point;
			crash_nth = steps[i].nth;
			o.crash_point = crash_hook;
			(void)archive_write(dirfd_, "c", &o, NULL, NULL);
			_exit(0);
		}
		cr_assert_gt(pid, 0);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 99,
		    "%s did not crash", steps[i].point);
		cr_assert_eq(exists("c.zst.tmp"), !steps[i].archive_stays,
		    "%s", steps[i].point);
		cr_assert_eq(archive_cleanup(dirfd_, &removed), 0);
		cr_assert_eq(removed, 1, "%s", steps[i].point);
		cr_assert_not(exists("c.zst.tmp"));
		cr_assert_eq(exists("c.zst"), steps[i].archive_stays, "%s",
		    steps[i].point);
		cr_assert_eq(exists("c"), !steps[i].archive_stays, "%s",
		    steps[i].point);
		if (steps[i].archive_stays) {
			cr_assert_eq(archive_verify(path("c.zst"), &st, NULL),
			    0);
			cr_assert_eq(st.raw_bytes, s.len);
			zstd_d_matches("c.zst", &s);
		} else {
			back = read_file("c", &n);
			cr_assert_eq(n, s.len);
			cr_assert_arr_eq(back, s.img, n);
			free(back);
		}
	}
	seg_free(&s);
}

/*
 * archive_write killed (SIGKILL) at random moments, then the startup
 * cleanup: exactly one of the plain segment and the archive remains,
 * and it holds the segment whole. (A process crash only: the page
 * cache survives it; power loss is the power-loss test's business.)
 */
Test(archive, killed_mid_write_leaves_one_whole_copy, .timeout = 60)
{
	struct archive_opts o = { .frame_size = 16384 };
	struct archive_frame *fr;
	struct archive_stats st;
	struct archive *a;
	struct seg s;
	uint8_t *back;
	double t0, full;
	size_t n;
	pid_t pid;
	int it, status, removed, kept_plain = 0, kept_archive = 0;
	uint32_t k;

	seg_build_random(&s, 0, 3000, 8, 300);
	write_file("c", s.img, s.len);
	t0 = now();
	cr_assert_eq(archive_write(dirfd_, "c", &o, NULL, NULL), 0);
	full = now() - t0;
	for (it = 0; it < 40; it++) {
		(void)unlinkat(dirfd_, "c.zst", 0);
		write_file("c", s.img, s.len);
		if ((pid = fork()) == 0)
			_exit(archive_write(dirfd_, "c", &o, NULL, NULL) == 0 ?
			        0 :
			        1);
		cr_assert_gt(pid, 0);
		usleep((useconds_t)(full * 1.2e6 *
		    (double)(xorshift64(&rng) % 1000) / 1000.0));
		kill(pid, SIGKILL);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status) || WEXITSTATUS(status) == 0);

		cr_assert_eq(archive_cleanup(dirfd_, &removed), 0);
		cr_assert_not(exists("c.zst.tmp"));
		cr_assert_neq(exists("c"), exists("c.zst"),
		    "iteration %d: not exactly one copy", it);
		if (exists("c")) {
			back = read_file("c", &n);
			cr_assert_eq(n, s.len);
			cr_assert_arr_eq(back, s.img, n);
			free(back);
			kept_plain++;
			continue;
		}
		kept_archive++;
		cr_assert_eq(archive_verify(path("c.zst"), &st, NULL), 0);
		cr_assert_eq(st.raw_bytes, s.len);
		cr_assert_eq(archive_open(path("c.zst"), NULL, &a, NULL), 0);
		for (k = 0; k < st.frames; k++) {
			cr_assert_eq(archive_read_frame(a, k, &fr, NULL), 0);
			cr_assert_arr_eq(fr->data, s.img + fr->doff, fr->len);
			archive_frame_release(a, fr);
		}
		archive_close(a);
	}
	cr_log_info("killed 40 times: %d left the plain segment, %d the "
	            "archive",
	    kept_plain, kept_archive);
	seg_free(&s);
}
