/* SPDX-License-Identifier: MIT */
/*
 * record.c - encode and verify log records, batch headers and the file
 * header (format in record.h). Checksums are zlib's crc32 (the same
 * polynomial, reflected, initial 0), computed by ISA-L's crc32_gzip_refl:
 * with PCLMULQDQ it is several times faster than zlib's table-driven
 * crc32 (a quarter of a ReadAll's CPU in stored, and of an import's in
 * eventfoldctl, went to zlib's), and it gives the same value for the
 * same bytes (tests/unit/test_record.c), so the format is unchanged.
 */
#include <string.h>
#include <sys/types.h>

#include <isa-l/crc.h>

#include "record.h"

uint32_t
ef_crc32(const void *p, size_t len)
{
	return crc32_gzip_refl(0, p, (uint64_t)len);
}

size_t
record_encode(uint8_t *buf, const struct ef_event *ev)
{
	size_t len = record_size(ev->type_len, ev->metadata_len,
	    ev->payload_len);
	uint8_t *p = buf + RECORD_HDR;

	put_le32(buf, (uint32_t)len);
	put_le64(buf + 8, ev->global_position);
	put_le64(buf + 16, ev->stream_version);
	put_le64(buf + 24, ev->recorded_at);
	memcpy(buf + 32, ev->stream_id, UUID_LEN);
	memcpy(buf + 48, ev->event_id, UUID_LEN);
	put_le16(buf + 64, (uint16_t)ev->type_len);
	put_le16(buf + 66, 0);
	put_le32(buf + 68, ev->metadata_len);
	memcpy(p, ev->type, ev->type_len);
	p += ev->type_len;
	if (ev->metadata_len)
		memcpy(p, ev->metadata, ev->metadata_len);
	p += ev->metadata_len;
	if (ev->payload_len)
		memcpy(p, ev->payload, ev->payload_len);
	put_le32(buf + 4, ef_crc32(buf + 8, len - 8));
	return len;
}

uint32_t
record_len(const uint8_t *buf, size_t avail)
{
	return avail < 4 ? 0 : get_le32(buf);
}

enum record_status
record_decode(const uint8_t *buf, size_t avail, struct ef_event *ev,
    size_t *lenp, int verify)
{
	uint32_t len, tlen, mlen;

	if (avail < RECORD_HDR)
		return REC_SHORT;
	len = get_le32(buf);
	if (len < RECORD_HDR + 1 || len > RECORD_MAX)
		return REC_BADLEN;
	tlen = get_le16(buf + 64);
	mlen = get_le32(buf + 68);
	if (tlen < 1 || tlen > RECORD_TYPE_MAX ||
	    (uint64_t)RECORD_HDR + tlen + mlen > len)
		return avail < len ? REC_SHORT : REC_BADLEN;
	if (avail < len)
		return REC_SHORT;
	if (verify && ef_crc32(buf + 8, len - 8) != get_le32(buf + 4))
		return REC_BADCRC;
	ev->global_position = get_le64(buf + 8);
	ev->stream_version = get_le64(buf + 16);
	ev->recorded_at = get_le64(buf + 24);
	memcpy(ev->stream_id, buf + 32, UUID_LEN);
	memcpy(ev->event_id, buf + 48, UUID_LEN);
	ev->type = (const char *)buf + RECORD_HDR;
	ev->type_len = tlen;
	ev->metadata = buf + RECORD_HDR + tlen;
	ev->metadata_len = mlen;
	ev->payload = buf + RECORD_HDR + tlen + mlen;
	ev->payload_len = len - RECORD_HDR - tlen - mlen;
	*lenp = len;
	return REC_OK;
}

void
batch_hdr_encode(uint8_t buf[BATCH_HDR], const struct batch_hdr *h)
{
	put_le32(buf, BATCH_MAGIC);
	put_le32(buf + 8, h->count);
	put_le32(buf + 12, h->body_len);
	put_le64(buf + 16, h->first_pos);
	put_le64(buf + 24, 0);
	put_le32(buf + 4, ef_crc32(buf + 8, BATCH_HDR - 8));
}

enum record_status
batch_hdr_decode(const uint8_t *buf, size_t avail, struct batch_hdr *h)
{
	if (avail < BATCH_HDR)
		return REC_SHORT;
	if (get_le32(buf) != BATCH_MAGIC)
		return REC_BADMAGIC;
	if (ef_crc32(buf + 8, BATCH_HDR - 8) != get_le32(buf + 4))
		return REC_BADCRC;
	h->count = get_le32(buf + 8);
	h->body_len = get_le32(buf + 12);
	h->first_pos = get_le64(buf + 16);
	if (h->count == 0 ||
	    (uint64_t)h->body_len < (uint64_t)h->count * (RECORD_HDR + 1))
		return REC_BADLEN;
	return REC_OK;
}

void
logfile_hdr_encode(uint8_t buf[LOGFILE_HDR], uint64_t base)
{
	memset(buf, 0, LOGFILE_HDR);
	memcpy(buf, LOGFILE_MAGIC, 8);
	put_le32(buf + 8, LOGFILE_VERSION);
	put_le64(buf + 16, base);
	put_le32(buf + 12, ef_crc32(buf + 16, LOGFILE_HDR - 16));
}

enum record_status
logfile_hdr_decode(const uint8_t *buf, size_t avail, uint64_t *base)
{
	if (avail < LOGFILE_HDR)
		return REC_SHORT;
	if (memcmp(buf, LOGFILE_MAGIC, 8) != 0)
		return REC_BADMAGIC;
	if (get_le32(buf + 8) != LOGFILE_VERSION)
		return REC_BADLEN;
	if (ef_crc32(buf + 16, LOGFILE_HDR - 16) != get_le32(buf + 12))
		return REC_BADCRC;
	*base = get_le64(buf + 16);
	return REC_OK;
}

int
batch_verify(const uint8_t *map, uint64_t size, uint64_t off,
    uint64_t expect_pos, int check_pos, uint64_t *len)
{
	struct batch_hdr h;
	struct ef_event ev;
	uint64_t p, end;
	size_t rlen;
	uint32_t i;

	if (batch_hdr_decode(map + off, size - off, &h) != REC_OK)
		return -1;
	if (h.body_len > size - off - BATCH_HDR)
		return -1;
	if (check_pos && h.first_pos != expect_pos)
		return -1;
	p = off + BATCH_HDR;
	end = p + h.body_len;
	for (i = 0; i < h.count; i++) {
		if (p >= end ||
		    record_decode(map + p, end - p, &ev, &rlen, 1) != REC_OK)
			return -1;
		if (ev.global_position != h.first_pos + i)
			return -1;
		p += rlen;
	}
	if (p != end)
		return -1;
	*len = BATCH_HDR + h.body_len;
	return 0;
}

int
batch_find_after(const uint8_t *map, uint64_t size, uint64_t off)
{
	static const uint8_t magic[4] = { 0x01, 0x7c, 0xba, 0xef };
	const uint8_t *p = map + off + 1, *end = map + size;
	uint64_t len;

	while (p < end) {
		p = memmem(p, (size_t)(end - p), magic, sizeof(magic));
		if (p == NULL)
			return 0;
		if (batch_verify(map, size, (uint64_t)(p - map), 0, 0, &len) ==
		    0)
			return 1;
		p++;
	}
	return 0;
}
