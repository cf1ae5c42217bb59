/* SPDX-License-Identifier: MIT */
/*
 * test_record.c - unit tests of the on-disk codec (libcommon/record.c):
 * record round trips, every truncation of a record reported as short,
 * every single-bit flip detected, the batch and file headers, and the
 * batch-level checks recovery relies on (batch_verify,
 * batch_find_after) over small log images built here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <zlib.h>

#include "eventcheck.h"
#include "record.h"
#include "uuid.h"

static void
fill_event(struct ef_event *ev, uint64_t pos, const char *type, const char *md,
    const char *payload)
{
	int i;

	memset(ev, 0, sizeof(*ev));
	for (i = 0; i < UUID_LEN; i++) {
		ev->event_id[i] = (uint8_t)(0xa0 + i + pos);
		ev->stream_id[i] = (uint8_t)(0x10 * (i & 3) + 7);
	}
	ev->global_position = pos;
	ev->stream_version = pos * 3 + 1;
	ev->recorded_at = 1700000000123ull + pos;
	ev->type = type;
	ev->type_len = (uint32_t)strlen(type);
	ev->metadata = (const uint8_t *)md;
	ev->metadata_len = md ? (uint32_t)strlen(md) : 0;
	ev->payload = (const uint8_t *)payload;
	ev->payload_len = payload ? (uint32_t)strlen(payload) : 0;
}

static uint8_t *
encode(const struct ef_event *ev, size_t *len)
{
	size_t sz = record_size(ev->type_len, ev->metadata_len,
	    ev->payload_len);
	uint8_t *buf = malloc(sz);

	cr_assert_not_null(buf);
	*len = record_encode(buf, ev);
	cr_assert_eq(*len, sz);
	return buf;
}

Test(record, round_trip)
{
	struct ef_event ev, out;
	uint8_t *buf;
	size_t len, rlen = 0;

	fill_event(&ev, 42, "OrderPlaced", "{\"corr\":1}",
	    "{\"order\":\"A-1\",\"qty\":3}");
	buf = encode(&ev, &len);
	cr_assert_eq(record_len(buf, len), len);
	cr_assert_eq(record_decode(buf, len, &out, &rlen, 1), REC_OK);
	cr_assert_eq(rlen, len);
	assert_event_eq(&ev, &out);
	/* views point into the buffer, nothing is copied */
	cr_assert_eq((const uint8_t *)out.type, buf + RECORD_HDR);
	/* the fixed layout of record.h */
	cr_assert_eq(get_le32(buf), len);
	cr_assert_eq(get_le64(buf + 8), 42);
	cr_assert_eq(get_le64(buf + 16), 127);
	cr_assert_eq(get_le16(buf + 64), strlen("OrderPlaced"));
	cr_assert_eq(get_le16(buf + 66), 0);
	cr_assert_eq(get_le32(buf + 68), strlen("{\"corr\":1}"));
	cr_assert_eq(get_le32(buf + 4), ef_crc32(buf + 8, len - 8));
	free(buf);
}

Test(record, round_trip_empty_metadata_and_payload)
{
	struct ef_event ev, out;
	uint8_t *buf;
	size_t len, rlen;

	fill_event(&ev, 0, "x", NULL, NULL);
	buf = encode(&ev, &len);
	cr_assert_eq(len, RECORD_HDR + 1);
	cr_assert_eq(record_decode(buf, len, &out, &rlen, 1), REC_OK);
	assert_event_eq(&ev, &out);
	cr_assert_eq(out.payload_len, 0);
	cr_assert_eq(out.metadata_len, 0);
	free(buf);
}

Test(record, round_trip_limits)
{
	struct ef_event ev, out;
	char type[RECORD_TYPE_MAX + 1];
	uint8_t *payload, *buf;
	size_t len, rlen, plen;

	memset(type, 'T', RECORD_TYPE_MAX);
	type[RECORD_TYPE_MAX] = '\0';
	plen = RECORD_MAX - RECORD_HDR - RECORD_TYPE_MAX;
	payload = malloc(plen);
	cr_assert_not_null(payload);
	for (size_t i = 0; i < plen; i++)
		payload[i] = (uint8_t)(i * 7);
	fill_event(&ev, UINT64_MAX - 1, type, NULL, NULL);
	ev.payload = payload;
	ev.payload_len = (uint32_t)plen;
	buf = encode(&ev, &len);
	cr_assert_eq(len, RECORD_MAX);
	cr_assert_eq(record_decode(buf, len, &out, &rlen, 1), REC_OK);
	assert_event_eq(&ev, &out);
	free(buf);
	free(payload);
}

Test(record, decode_stops_at_its_length)
{
	struct ef_event a, b, out;
	uint8_t *ba, *bb, img[1024];
	size_t la, lb, rlen;

	fill_event(&a, 1, "A", "m", "first");
	fill_event(&b, 2, "BB", NULL, "second one");
	ba = encode(&a, &la);
	bb = encode(&b, &lb);
	memcpy(img, ba, la);
	memcpy(img + la, bb, lb);
	cr_assert_eq(record_decode(img, la + lb, &out, &rlen, 1), REC_OK);
	cr_assert_eq(rlen, la);
	assert_event_eq(&a, &out);
	cr_assert_eq(record_decode(img + la, lb, &out, &rlen, 1), REC_OK);
	assert_event_eq(&b, &out);
	free(ba);
	free(bb);
}

Test(record, every_truncation_is_short)
{
	struct ef_event ev, out;
	uint8_t *buf, *copy;
	size_t len, rlen, cut;

	fill_event(&ev, 9, "Truncated", "meta", "payload bytes");
	buf = encode(&ev, &len);
	for (cut = 0; cut < len; cut++) {
		/* a copy of exactly cut bytes, so reads past it are caught */
		copy = malloc(cut ? cut : 1);
		cr_assert_not_null(copy);
		memcpy(copy, buf, cut);
		cr_assert_eq(record_decode(copy, cut, &out, &rlen, 1),
		    REC_SHORT, "cut at %zu of %zu", cut, len);
		cr_assert_eq(record_decode(copy, cut, &out, &rlen, 0),
		    REC_SHORT, "cut at %zu of %zu (no verify)", cut, len);
		free(copy);
	}
	cr_assert_eq(record_len(buf, 3), 0);
	free(buf);
}

Test(record, every_bit_flip_is_detected)
{
	struct ef_event ev, out;
	uint8_t *buf, *copy;
	size_t len, rlen, i;
	int bit, st;

	fill_event(&ev, 77, "BitFlip", "{\"m\":true}", "0123456789abcdef");
	buf = encode(&ev, &len);
	copy = malloc(len);
	cr_assert_not_null(copy);
	for (i = 0; i < len; i++)
		for (bit = 0; bit < 8; bit++) {
			memcpy(copy, buf, len);
			copy[i] ^= (uint8_t)(1u << bit);
			st = record_decode(copy, len, &out, &rlen, 1);
			cr_assert_neq(st, REC_OK,
			    "flip of byte %zu bit %d "
			    "not detected",
			    i, bit);
		}
	free(copy);
	free(buf);
}

Test(record, impossible_lengths)
{
	struct ef_event ev, out;
	uint8_t *buf;
	size_t len, rlen;

	fill_event(&ev, 1, "Len", NULL, "abc");
	buf = encode(&ev, &len);

	/* whole length under a header plus a one-byte type */
	put_le32(buf, RECORD_HDR);
	cr_assert_eq(record_decode(buf, len, &out, &rlen, 0), REC_BADLEN);
	/* over 64 KiB */
	put_le32(buf, RECORD_MAX + 1);
	cr_assert_eq(record_decode(buf, len, &out, &rlen, 0), REC_BADLEN);
	put_le32(buf, (uint32_t)len);

	/* type length 0 and over 256 */
	put_le16(buf + 64, 0);
	cr_assert_eq(record_decode(buf, len, &out, &rlen, 0), REC_BADLEN);
	put_le16(buf + 64, RECORD_TYPE_MAX + 1);
	cr_assert_eq(record_decode(buf, len, &out, &rlen, 0), REC_BADLEN);
	put_le16(buf + 64, 3);

	/* metadata running past the record */
	put_le32(buf + 68, 0xffffffffu);
	cr_assert_eq(record_decode(buf, len, &out, &rlen, 0), REC_BADLEN);
	put_le32(buf + 68, 0);
	cr_assert_eq(record_decode(buf, len, &out, &rlen, 1), REC_OK);
	free(buf);
}

Test(record, crc_is_zlib_crc32)
{
	/* the standard check value of CRC-32 (ISO-HDLC) */
	cr_assert_eq(ef_crc32("123456789", 9), 0xcbf43926u);
	cr_assert_eq(ef_crc32("", 0), 0);
}

/*
 * ef_crc32 (ISA-L) against zlib's own crc32 over every length up to a
 * few kilobytes at every alignment within 16 bytes, and whole records:
 * the log's format is zlib's crc32, whoever computes it.
 */
Test(record, crc_matches_zlib_at_every_length_and_alignment)
{
	size_t cap = RECORD_MAX + 64, len, a;
	uint8_t *buf = malloc(cap);
	uint32_t x = 2463534242u;

	cr_assert_not_null(buf);
	for (a = 0; a < cap; a++) { /* xorshift32: reproducible bytes */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[a] = (uint8_t)x;
	}
	for (a = 0; a < 16; a++)
		for (len = 0; len <= 4200; len++)
			cr_assert_eq(ef_crc32(buf + a, len),
			    (uint32_t)crc32_z(0L, buf + a, len),
			    "length %zu at offset %zu", len, a);
	for (len = 4200; len <= RECORD_MAX; len += 997)
		cr_assert_eq(ef_crc32(buf + 7, len),
		    (uint32_t)crc32_z(0L, buf + 7, len), "length %zu", len);
	free(buf);
}

Test(batch_hdr, round_trip)
{
	struct batch_hdr h = { 3, 1000, 123456789012ull }, out;
	uint8_t buf[BATCH_HDR];

	batch_hdr_encode(buf, &h);
	cr_assert_eq(get_le32(buf), BATCH_MAGIC);
	cr_assert_eq(batch_hdr_decode(buf, sizeof(buf), &out), REC_OK);
	cr_assert_eq(out.count, 3);
	cr_assert_eq(out.body_len, 1000);
	cr_assert_eq(out.first_pos, 123456789012ull);
}

Test(batch_hdr, truncation_and_every_bit_flip)
{
	struct batch_hdr h = { 2, 400, 5 }, out;
	uint8_t buf[BATCH_HDR], copy[BATCH_HDR];
	size_t cut, i;
	int bit, st;

	batch_hdr_encode(buf, &h);
	for (cut = 0; cut < BATCH_HDR; cut++)
		cr_assert_eq(batch_hdr_decode(buf, cut, &out), REC_SHORT,
		    "cut at %zu", cut);
	for (i = 0; i < BATCH_HDR; i++)
		for (bit = 0; bit < 8; bit++) {
			memcpy(copy, buf, BATCH_HDR);
			copy[i] ^= (uint8_t)(1u << bit);
			st = batch_hdr_decode(copy, BATCH_HDR, &out);
			cr_assert_eq(st, i < 4 ? REC_BADMAGIC : REC_BADCRC,
			    "flip of byte %zu bit %d gave %d", i, bit, st);
		}
}

Test(batch_hdr, impossible_counts)
{
	struct batch_hdr h = { 0, 100, 0 }, out;
	uint8_t buf[BATCH_HDR];

	batch_hdr_encode(buf, &h);
	cr_assert_eq(batch_hdr_decode(buf, BATCH_HDR, &out), REC_BADLEN);
	/* a body too small for count minimal records */
	h.count = 2;
	h.body_len = 2 * (RECORD_HDR + 1) - 1;
	batch_hdr_encode(buf, &h);
	cr_assert_eq(batch_hdr_decode(buf, BATCH_HDR, &out), REC_BADLEN);
	h.body_len++;
	batch_hdr_encode(buf, &h);
	cr_assert_eq(batch_hdr_decode(buf, BATCH_HDR, &out), REC_OK);
	/* a count whose product with the minimum overflows 32 bits */
	h.count = 0x10000000u;
	h.body_len = 0xffffffffu;
	batch_hdr_encode(buf, &h);
	cr_assert_eq(batch_hdr_decode(buf, BATCH_HDR, &out), REC_BADLEN);
}

Test(logfile_hdr, round_trip_truncation_and_every_bit_flip)
{
	uint8_t buf[LOGFILE_HDR], copy[LOGFILE_HDR];
	uint64_t base = 0;
	size_t cut, i;
	int bit, st;

	logfile_hdr_encode(buf, 987654321ull);
	cr_assert_arr_eq(buf, LOGFILE_MAGIC, 8);
	cr_assert_eq(logfile_hdr_decode(buf, sizeof(buf), &base), REC_OK);
	cr_assert_eq(base, 987654321ull);
	for (cut = 0; cut < LOGFILE_HDR; cut++)
		cr_assert_eq(logfile_hdr_decode(buf, cut, &base), REC_SHORT);
	for (i = 0; i < LOGFILE_HDR; i++)
		for (bit = 0; bit < 8; bit++) {
			memcpy(copy, buf, LOGFILE_HDR);
			copy[i] ^= (uint8_t)(1u << bit);
			st = logfile_hdr_decode(copy, LOGFILE_HDR, &base);
			cr_assert_neq(st, REC_OK, "flip of byte %zu bit %d", i,
			    bit);
			if (i < 8)
				cr_assert_eq(st, REC_BADMAGIC);
		}
}

Test(logfile_hdr, other_format_version)
{
	uint8_t buf[LOGFILE_HDR];
	uint64_t base;

	logfile_hdr_encode(buf, 0);
	put_le32(buf + 8, LOGFILE_VERSION + 1);
	cr_assert_neq(logfile_hdr_decode(buf, sizeof(buf), &base), REC_OK);
}

/* A log image: file header and batch frames, built in memory. */
struct image {
	uint8_t buf[16384];
	size_t len;
	size_t batch_off[8];
	int nbatches;
	uint64_t next_pos;
};

static void
image_init(struct image *im, uint64_t base)
{
	memset(im, 0, sizeof(*im));
	logfile_hdr_encode(im->buf, base);
	im->len = LOGFILE_HDR;
	im->next_pos = base;
}

/* Appends a batch of n events; pos_skew shifts the k-th record's position. */
static void
image_batch(struct image *im, int n, int skew_at, uint64_t skew)
{
	struct batch_hdr h;
	struct ef_event ev;
	char payload[64];
	size_t off = im->len, p = off + BATCH_HDR;
	int i;

	for (i = 0; i < n; i++) {
		snprintf(payload, sizeof(payload), "{\"n\":%d,\"b\":%d}", i,
		    im->nbatches);
		fill_event(&ev, im->next_pos + (uint64_t)i, "Evt", NULL,
		    payload);
		if (i == skew_at)
			ev.global_position += skew;
		p += record_encode(im->buf + p, &ev);
	}
	h.count = (uint32_t)n;
	h.body_len = (uint32_t)(p - off - BATCH_HDR);
	h.first_pos = im->next_pos;
	batch_hdr_encode(im->buf + off, &h);
	im->batch_off[im->nbatches++] = off;
	im->len = p;
	im->next_pos += (uint64_t)n;
}

Test(batch, verify_good_image)
{
	struct image im;
	uint64_t len, off, pos = 100;
	int b;

	image_init(&im, 100);
	image_batch(&im, 3, -1, 0);
	image_batch(&im, 1, -1, 0);
	image_batch(&im, 5, -1, 0);
	off = LOGFILE_HDR;
	for (b = 0; b < im.nbatches; b++) {
		cr_assert_eq(off, im.batch_off[b]);
		cr_assert_eq(batch_verify(im.buf, im.len, off, pos, 1, &len),
		    0, "batch %d", b);
		pos += get_le32(im.buf + off + 8);
		off += len;
	}
	cr_assert_eq(off, im.len);
	cr_assert_eq(pos, 109);
	/* the wrong expected position is refused only when checked */
	cr_assert_eq(batch_verify(im.buf, im.len, im.batch_off[1], 104, 1,
	                 &len),
	    -1);
	cr_assert_eq(batch_verify(im.buf, im.len, im.batch_off[1], 104, 0,
	                 &len),
	    0);
	cr_assert_eq(batch_find_after(im.buf, im.len, LOGFILE_HDR), 1);
	cr_assert_eq(batch_find_after(im.buf, im.len, im.batch_off[2]), 0);
}

Test(batch, every_truncation_of_the_last_batch)
{
	struct image im;
	uint64_t len, size;

	image_init(&im, 0);
	image_batch(&im, 2, -1, 0);
	image_batch(&im, 3, -1, 0);
	for (size = im.batch_off[1]; size < im.len; size++) {
		cr_assert_eq(batch_verify(im.buf, size, im.batch_off[1], 2, 1,
		                 &len),
		    -1, "size %lu", (unsigned long)size);
		/* a torn tail: no intact batch after the cut point */
		cr_assert_eq(batch_find_after(im.buf, size, im.batch_off[1]),
		    0);
		/* the batch before it is untouched */
		cr_assert_eq(batch_verify(im.buf, size, im.batch_off[0], 0, 1,
		                 &len),
		    0);
	}
}

Test(batch, every_bit_flip_in_a_batch)
{
	struct image im, copy;
	uint64_t len;
	size_t i, start, end;
	int bit;

	image_init(&im, 0);
	image_batch(&im, 2, -1, 0);
	image_batch(&im, 2, -1, 0);
	image_batch(&im, 1, -1, 0);
	start = im.batch_off[1];
	end = im.batch_off[2];
	for (i = start; i < end; i++)
		for (bit = 0; bit < 8; bit++) {
			memcpy(&copy, &im, sizeof(im));
			copy.buf[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(batch_verify(copy.buf, copy.len, start, 2,
			                 1, &len),
			    -1, "flip of byte %zu bit %d", i, bit);
			/* corruption before the tail: intact data follows */
			cr_assert_eq(batch_find_after(copy.buf, copy.len,
			                 start),
			    1, "byte %zu bit %d", i, bit);
		}
}

Test(batch, positions_must_be_consecutive)
{
	struct image im;
	uint64_t len;

	image_init(&im, 0);
	image_batch(&im, 3, 1, 1); /* second record claims position 2 */
	cr_assert_eq(batch_verify(im.buf, im.len, LOGFILE_HDR, 0, 1, &len),
	    -1);
	cr_assert_eq(batch_verify(im.buf, im.len, LOGFILE_HDR, 0, 0, &len),
	    -1);
}

Test(batch, body_length_must_match_records)
{
	struct image im;
	struct batch_hdr h;
	uint64_t len;

	image_init(&im, 0);
	image_batch(&im, 2, -1, 0);
	cr_assert_eq(batch_hdr_decode(im.buf + LOGFILE_HDR, BATCH_HDR, &h),
	    REC_OK);
	/* a body claiming one byte more than its records (and present) */
	h.body_len++;
	batch_hdr_encode(im.buf + LOGFILE_HDR, &h);
	im.buf[im.len] = 0;
	cr_assert_eq(batch_verify(im.buf, im.len + 1, LOGFILE_HDR, 0, 1, &len),
	    -1);
	/* a count claiming more records than the body holds */
	h.body_len--;
	h.count = 3;
	batch_hdr_encode(im.buf + LOGFILE_HDR, &h);
	cr_assert_eq(batch_verify(im.buf, im.len, LOGFILE_HDR, 0, 1, &len),
	    -1);
	/* and fewer */
	h.count = 1;
	batch_hdr_encode(im.buf + LOGFILE_HDR, &h);
	cr_assert_eq(batch_verify(im.buf, im.len, LOGFILE_HDR, 0, 1, &len),
	    -1);
}

Test(batch, find_after_ignores_stray_magic)
{
	struct image im;
	size_t off;

	image_init(&im, 0);
	image_batch(&im, 1, -1, 0);
	/* garbage holding the magic bytes, but no intact frame */
	off = im.len;
	memset(im.buf + off, 0x55, 200);
	put_le32(im.buf + off + 10, BATCH_MAGIC);
	put_le32(im.buf + off + 100, BATCH_MAGIC);
	im.len = off + 200;
	cr_assert_eq(batch_find_after(im.buf, im.len, off), 0);
	/* a real frame after the garbage is found */
	image_batch(&im, 2, -1, 0);
	cr_assert_eq(batch_find_after(im.buf, im.len, off), 1);
	/* starting exactly at a frame skips that frame itself */
	cr_assert_eq(batch_find_after(im.buf, im.len,
	                 im.batch_off[im.nbatches - 1]),
	    0);
}
