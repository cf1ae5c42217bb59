/* SPDX-License-Identifier: MIT */
/*
 * record.h - the on-disk format of the event log: file header, batch
 * frames and event records, with their checksums (zlib crc32).
 *
 * A log file is a 64-byte file header followed by batch frames. A batch
 * frame is what one group commit wrote with one write and one fdatasync:
 * a 32-byte batch header (magic, header crc, record count, body length,
 * first global position) followed by that many records. A record is a
 * 72-byte header and then the event type, metadata and payload bytes:
 *
 *   off len field
 *     0   4 len             whole record, header included (<= 64 KiB)
 *     4   4 crc             crc32 of bytes [8, len)
 *     8   8 global_position
 *    16   8 stream_version
 *    24   8 recorded_at     Unix ms
 *    32  16 stream_id
 *    48  16 event_id
 *    64   2 type_len        1..256
 *    66   2 flags           0
 *    68   4 metadata_len
 *    72     type, metadata, payload (payload_len = len - 72 - type - md)
 *
 * Integers are little-endian. Recovery treats a batch as the unit: either
 * every record of a batch is intact or the batch is not part of the log.
 *
 * Caveats: decoders here trust nothing they read; every length is checked
 * against what is available before it is used.
 */
#ifndef EF_RECORD_H
#define EF_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "uuid.h"

#define RECORD_HDR      72
#define RECORD_MAX      65536 /* a whole record, header included */
#define RECORD_TYPE_MAX 256
#define BATCH_HDR       32
#define BATCH_MAGIC     0xEFBA7C01u
#define LOGFILE_HDR     64
#define LOGFILE_MAGIC   "EVFOLDLG"
#define LOGFILE_VERSION 1

/*
 * One event. As a view from record_decode(), the type, metadata and
 * payload pointers point into the decoded buffer and are valid as long
 * as it is; nothing is owned.
 */
struct ef_event {
	uint8_t event_id[UUID_LEN];
	uint8_t stream_id[UUID_LEN];
	uint64_t stream_version;
	uint64_t global_position;
	uint64_t recorded_at;
	const char *type;
	uint32_t type_len;
	const uint8_t *metadata;
	uint32_t metadata_len;
	const uint8_t *payload;
	uint32_t payload_len;
};

/* Outcomes of the decoders. */
enum record_status {
	REC_OK = 0,
	REC_SHORT,  /* fewer bytes available than the header or len says */
	REC_BADLEN, /* a length field is impossible */
	REC_BADCRC, /* checksum mismatch */
	REC_BADMAGIC,
};

/* Size of the record for these lengths (not checked against RECORD_MAX). */
static inline size_t
record_size(size_t type_len, size_t metadata_len, size_t payload_len)
{
	return RECORD_HDR + type_len + metadata_len + payload_len;
}

/*
 * The size EventfoldDB gives the same event in its own data file (74
 * bytes of framing, two more than ours). Appends are limited by this one
 * against RECORD_MAX, so that eventfold refuses exactly the events
 * EventfoldDB refuses, with the same figure in the message, and every
 * event accepted fits both formats.
 */
#define RECORD_API_HDR 74

static inline size_t
record_api_size(size_t type_len, size_t metadata_len, size_t payload_len)
{
	return RECORD_API_HDR + type_len + metadata_len + payload_len;
}

/* Encodes ev into buf, which has room for record_size(); returns it. */
size_t record_encode(uint8_t *buf, const struct ef_event *ev);

/*
 * Decodes the record at buf (avail bytes readable). On REC_OK fills ev
 * (a view into buf) and *len with the record's size. With verify 0 the
 * crc is not checked (for data already verified).
 */
enum record_status record_decode(const uint8_t *buf, size_t avail,
    struct ef_event *ev, size_t *len, int verify);

/* Only the stored length of the record at buf, 0 if fewer than 4 bytes. */
uint32_t record_len(const uint8_t *buf, size_t avail);

struct batch_hdr {
	uint32_t count;
	uint32_t body_len;
	uint64_t first_pos;
};

void batch_hdr_encode(uint8_t buf[BATCH_HDR], const struct batch_hdr *h);
enum record_status batch_hdr_decode(const uint8_t *buf, size_t avail,
    struct batch_hdr *h);

/* The file header; base is the global position of the file's first event. */
void logfile_hdr_encode(uint8_t buf[LOGFILE_HDR], uint64_t base);
enum record_status logfile_hdr_decode(const uint8_t *buf, size_t avail,
    uint64_t *base);

/*
 * Checks the batch frame at off in a log image of size bytes: intact
 * header, body within the image, every record's checksum, consecutive
 * global positions (starting at expect_pos when check_pos is set).
 * Returns 0 and the frame's size in *len, or -1.
 */
int batch_verify(const uint8_t *img, uint64_t size, uint64_t off,
    uint64_t expect_pos, int check_pos, uint64_t *len);

/* Is there an intact batch frame anywhere after off? (1 or 0) */
int batch_find_after(const uint8_t *img, uint64_t size, uint64_t off);

/* zlib crc32 of len bytes. */
uint32_t ef_crc32(const void *p, size_t len);

/* Little-endian helpers shared by the codecs. */
static inline void
put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void
put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void
put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t
get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t
get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static inline uint64_t
get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

#endif
