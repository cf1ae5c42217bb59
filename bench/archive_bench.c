/* SPDX-License-Identifier: MIT */
/*
 * archive_bench.c - eventfold-archive-bench: the cold archive
 * (daemons/stored/archive.c) on a segment of realistic events, built
 * here with libcommon's encoders in a temporary directory.
 *
 *   ratio        archive bytes against `zstd -<level> -q -c SEGMENT`
 *                (the real zstd binary, one stream over the whole file)
 *   compress     archive_write's rate, MB/s of segment bytes, fsyncs
 *                included
 *   seq_frames   read-all, frame by frame through the cache, every
 *                record decoded with its crc checked: events/s
 *   seq_records  read-all, one archive_get per record (what a reader
 *                that holds only locations does): events/s
 *   random_hot   random records with a cache of -c MiB: p50/p99 and hit
 *                rate
 *   random_cold  random records with no cache (every read decompresses
 *                a frame): p50/p99
 *
 *   eventfold-archive-bench [-n EVENTS] [-f FRAME_BYTES] [-l LEVEL]
 *       [-c CACHE_MIB] [-r RANDOM_READS] [-d DIR] [-k]
 *
 * -k keeps the segment and archive in DIR. One line per measure.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "record.h"
#include "util.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Seconds since t0, a now_ns() time. */
static double
since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e9;
}

static void
die(const char *what, int rc)
{
	fprintf(stderr, "archive-bench: %s: %s\n", what, strerror(-rc));
	exit(1);
}

static const char *types[] = { "OrderPlaced", "OrderPaid", "ItemAdded",
	"ItemRemoved", "OrderShipped", "CustomerRegistered", "AddressChanged",
	"OrderCancelled" };
static const char *statuses[] = { "new", "paid", "packed", "shipped",
	"delivered", "cancelled" };
static const char *cities[] = { "Berlin", "Lyon", "Porto", "Gdansk", "Utrecht",
	"Bologna", "Tampere", "Graz" };

/* One JSON-ish payload and metadata of a few hundred bytes. */
static void
make_event(struct ef_event *ev, uint64_t pos, char *pl, size_t plcap, char *md,
    size_t mdcap)
{
	uint64_t cust = rnd() % 20000, order = pos / 3 + rnd() % 50;
	int items = 1 + (int)(rnd() % 4), i, n;
	const char *t = types[rnd() % 8];

	memset(ev, 0, sizeof(*ev));
	for (i = 0; i < UUID_LEN; i++)
		ev->event_id[i] = (uint8_t)rnd();
	for (i = 0; i < UUID_LEN; i++)
		ev->stream_id[i] = (uint8_t)((order * 2654435761u) >>
		    (i % 4 * 8));
	ev->global_position = pos;
	ev->stream_version = pos % 17;
	ev->recorded_at = 1764547200000ull + pos * 3 + rnd() % 3;
	ev->type = t;
	ev->type_len = (uint32_t)strlen(t);
	n = snprintf(pl, plcap,
	    "{\"orderId\":\"ord-%08" PRIu64 "\","
	    "\"customer\":{\"id\":\"cust-%05" PRIu64 "\",\"city\":\"%s\","
	    "\"tier\":%d},\"status\":\"%s\",\"items\":[",
	    order, cust, cities[cust % 8], (int)(cust % 3),
	    statuses[rnd() % 6]);
	for (i = 0; i < items; i++)
		n += snprintf(pl + n, plcap - (size_t)n,
		    "%s{\"sku\":\"SKU-%05d\","
		    "\"qty\":%d,\"price\":%d.%02d}",
		    i ? "," : "", (int)(rnd() % 30000), 1 + (int)(rnd() % 5),
		    (int)(rnd() % 300), (int)(rnd() % 100));
	n += snprintf(pl + n, plcap - (size_t)n,
	    "],\"total\":%d.%02d,"
	    "\"currency\":\"EUR\",\"note\":\"%s\"}",
	    (int)(rnd() % 2000), (int)(rnd() % 100),
	    rnd() % 4 ? "" : "leave at the door please");
	ev->payload = (const uint8_t *)pl;
	ev->payload_len = (uint32_t)n;
	n = snprintf(md, mdcap,
	    "{\"correlationId\":\"%016" PRIx64 "%016" PRIx64
	    "\",\"user\":\"u-%04d\",\"client\":\"web/2.%d\"}",
	    rnd(), rnd(), (int)(cust % 4000), (int)(rnd() % 9));
	ev->metadata = (const uint8_t *)md;
	ev->metadata_len = (uint32_t)n;
}

/* Writes the segment; returns its size and every record's offset. */
static uint64_t
build_segment(const char *path, uint64_t nev, uint64_t **offsp)
{
	uint8_t hdr[LOGFILE_HDR], *buf;
	char pl[2048], md[256];
	struct batch_hdr h;
	struct ef_event ev;
	uint64_t pos = 0, off = LOGFILE_HDR, *offs;
	size_t cap = 64 * RECORD_MAX, len;
	uint32_t k, count;
	FILE *f;

	if ((f = fopen(path, "w")) == NULL || (buf = malloc(cap)) == NULL ||
	    (offs = malloc(nev * sizeof(*offs))) == NULL)
		die(path, -errno);
	logfile_hdr_encode(hdr, 0);
	fwrite(hdr, 1, sizeof(hdr), f);
	while (pos < nev) {
		/* group commits of 1..64 events, mostly small */
		count = 1 + (uint32_t)(rnd() % (rnd() % 4 ? 8 : 64));
		if (count > nev - pos)
			count = (uint32_t)(nev - pos);
		len = BATCH_HDR;
		for (k = 0; k < count; k++) {
			make_event(&ev, pos + k, pl, sizeof(pl), md,
			    sizeof(md));
			offs[pos + k] = off + len;
			len += record_encode(buf + len, &ev);
		}
		h.count = count;
		h.body_len = (uint32_t)(len - BATCH_HDR);
		h.first_pos = pos;
		batch_hdr_encode(buf, &h);
		fwrite(buf, 1, len, f);
		off += len;
		pos += count;
	}
	if (fclose(f) != 0)
		die(path, -errno);
	free(buf);
	*offsp = offs;
	return off;
}

static void
random_reads(const char *zpath, struct archive_cache *c, const uint64_t *offs,
    uint64_t nev, int nreads, const char *name)
{
	struct archive_cache_stats cs0 = { 0 }, cs;
	struct archive_frame *fr;
	struct archive *a;
	struct ef_event ev;
	struct lat lat = { 0 };
	size_t rlen;
	uint64_t d, t;
	int i, rc;

	if ((rc = archive_open(zpath, c, &a, NULL)) != 0)
		die(zpath, rc);
	if (c != NULL)
		archive_cache_stat(c, &cs0);
	for (i = 0; i < nreads; i++) {
		d = offs[rnd() % nev];
		t = now_ns();
		if ((rc = archive_get(a, d, &fr, NULL)) != 0)
			die("archive_get", rc);
		if (record_decode(fr->data + (d - fr->doff),
		        fr->len - (d - fr->doff), &ev, &rlen, 1) != REC_OK)
			die("record_decode", -EBADMSG);
		archive_frame_release(a, fr);
		lat_add(&lat, (double)(now_ns() - t) / 1e3);
	}
	printf("%-12s reads=%d p50_us=%.1f p99_us=%.1f", name, nreads,
	    lat_pct(&lat, 0.50), lat_pct(&lat, 0.99));
	if (c != NULL) {
		archive_cache_stat(c, &cs);
		printf(" cache_mib=%.0f hit_rate=%.3f",
		    (double)cs.budget / (1 << 20),
		    (double)(cs.hits - cs0.hits) /
		        (double)(cs.hits + cs.misses - cs0.hits - cs0.misses));
	}
	printf("\n");
	archive_close(a);
	lat_free(&lat);
}

/* Archives the segment seg (size bytes) of dfd with o into *st, and
 * compares the ratio with the zstd binary's at the same level. */
static void
compress_case(int dfd, const char *seg, const struct archive_opts *o,
    uint64_t size, struct archive_stats *st)
{
	char cmd[8600];
	uint64_t zbytes = 0, t0;
	double t;
	FILE *p;
	int rc;

	t0 = now_ns();
	if ((rc = archive_write(dfd, "segment", o, st, NULL)) != 0)
		die("archive_write", rc);
	t = since(t0);
	snprintf(cmd, sizeof(cmd), "zstd -%d -q -c '%s' | wc -c",
	    o->level ? o->level : ARCHIVE_LEVEL, seg);
	if ((p = popen(cmd, "r")) == NULL ||
	    fscanf(p, "%" SCNu64, &zbytes) != 1 || pclose(p) != 0 ||
	    zbytes == 0)
		die("running the zstd binary", -EIO);
	printf("ratio        archive_bytes=%" PRIu64 " zstd_bytes=%" PRIu64
	       " archive/zstd=%.4f segment/archive=%.2f frames=%u\n",
	    st->comp_bytes, zbytes, (double)st->comp_bytes / (double)zbytes,
	    (double)size / (double)st->comp_bytes, st->frames);
	printf("compress     mb_per_s=%.1f seconds=%.3f\n",
	    (double)size / 1e6 / t, t);
}

/* The records of one frame fr (the first: k == 0); their count. */
static uint64_t
frame_records(const struct archive_frame *fr, uint32_t k)
{
	struct ef_event ev;
	struct batch_hdr h;
	uint64_t off = k == 0 ? LOGFILE_HDR : 0, n = 0;
	size_t rlen;

	while (off < fr->len) {
		if (batch_hdr_decode(fr->data + off, fr->len - off, &h) !=
		    REC_OK)
			die("batch_hdr_decode", -EBADMSG);
		off += BATCH_HDR;
		while (h.count-- > 0) {
			if (record_decode(fr->data + off, fr->len - off, &ev,
			        &rlen, 1) != REC_OK)
				die("record_decode", -EBADMSG);
			off += rlen;
			n++;
		}
	}
	return n;
}

/* Read-all of the archive zpath (nframes frames), frame by frame. */
static void
seq_frames(const char *zpath, struct archive_cache *c, uint32_t nframes,
    uint64_t nev, uint64_t size)
{
	struct archive_frame *fr;
	struct archive *a;
	uint64_t n = 0, t0;
	double t;
	uint32_t k;
	int rc;

	if ((rc = archive_open(zpath, c, &a, NULL)) != 0)
		die(zpath, rc);
	t0 = now_ns();
	for (k = 0; k < nframes; k++) {
		if ((rc = archive_read_frame(a, k, &fr, NULL)) != 0)
			die("archive_read_frame", rc);
		n += frame_records(fr, k);
		archive_frame_release(a, fr);
	}
	t = since(t0);
	if (n != nev)
		die("read-all count", -EIO);
	printf("seq_frames   events_per_s=%.0f mb_per_s=%.1f\n", (double)n / t,
	    (double)size / 1e6 / t);
	archive_close(a);
}

/* Read-all of the archive zpath, one lookup per record (at offs). */
static void
seq_records(const char *zpath, struct archive_cache *c, const uint64_t *offs,
    uint64_t nev)
{
	struct archive_frame *fr;
	struct archive *a;
	struct ef_event ev;
	uint64_t t0;
	double t;
	size_t rlen, i;
	int rc;

	if ((rc = archive_open(zpath, c, &a, NULL)) != 0)
		die(zpath, rc);
	t0 = now_ns();
	for (i = 0; i < nev; i++) {
		if ((rc = archive_get(a, offs[i], &fr, NULL)) != 0)
			die("archive_get", rc);
		if (record_decode(fr->data + (offs[i] - fr->doff),
		        fr->len - (offs[i] - fr->doff), &ev, &rlen,
		        1) != REC_OK)
			die("record_decode", -EBADMSG);
		archive_frame_release(a, fr);
	}
	t = since(t0);
	printf("seq_records  events_per_s=%.0f\n", (double)nev / t);
	archive_close(a);
}

int
main(int argc, char **argv)
{
	struct archive_opts o = { 0 };
	struct archive_stats st;
	struct archive_cache *c;
	char tmpl[] = "/tmp/archive-bench.XXXXXX", seg[4200], zpath[4200];
	const char *dir = NULL;
	uint64_t nev = 200000, size, *offs;
	uint64_t cache_mib = 16;
	int ch, nreads = 100000, keep = 0, dfd;

	while ((ch = getopt(argc, argv, "n:f:l:c:r:d:k")) != -1) {
		switch (ch) {
		case 'n':
			nev = strtoull(optarg, NULL, 10);
			break;
		case 'f':
			o.frame_size = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'l':
			o.level = atoi(optarg);
			break;
		case 'c':
			cache_mib = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			nreads = atoi(optarg);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'k':
			keep = 1;
			break;
		default:
			fprintf(stderr,
			    "usage: eventfold-archive-bench"
			    " [-n events] [-f frame_bytes] [-l level]"
			    " [-c cache_mib] [-r random_reads] [-d dir]"
			    " [-k]\n");
			return 1;
		}
	}
	if (nev == 0 || nreads <= 0)
		return 1;
	if (dir == NULL && (dir = mkdtemp(tmpl)) == NULL)
		die("mkdtemp", -errno);
	snprintf(seg, sizeof(seg), "%s/segment", dir);
	snprintf(zpath, sizeof(zpath), "%s/segment%s", dir, ARCHIVE_SUFFIX);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY)) < 0)
		die(dir, -errno);

	size = build_segment(seg, nev, &offs);
	printf("segment      events=%" PRIu64 " bytes=%" PRIu64 " frame=%u "
	       "level=%d\n",
	    nev, size, o.frame_size ? o.frame_size : ARCHIVE_FRAME_SIZE,
	    o.level ? o.level : ARCHIVE_LEVEL);

	compress_case(dfd, seg, &o, size, &st);
	if ((c = archive_cache_new(cache_mib << 20)) == NULL)
		die("archive_cache_new", -ENOMEM);
	seq_frames(zpath, c, st.frames, nev, size);
	seq_records(zpath, c, offs, nev);
	random_reads(zpath, c, offs, nev, nreads, "random_hot");
	archive_cache_free(c);
	random_reads(zpath, NULL, offs, nev, nreads / 10 ? nreads / 10 : 1,
	    "random_cold");

	if (!keep) {
		unlink(seg);
		unlink(zpath);
		if (dir == tmpl)
			rmdir(dir);
	}
	close(dfd);
	free(offs);
	return 0;
}
