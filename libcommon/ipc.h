/* SPDX-License-Identifier: MIT */
/*
 * ipc.h - the messages the eventfold daemons exchange over nng, encoded
 * with msgpack. proto/IPC.md is the prose description of the same thing.
 *
 * Request:  [version, op, request_id, body]
 * Reply:    [status, message, body]
 * Publish:  [version, first_position, last_position, events | nil]
 *
 * version is EF_PROTO_VERSION, bumped on any change; a request of another
 * version gets EF_S_BAD_VERSION. Every body is an array with a fixed
 * number of fields; a decoder refuses a missing, extra or ill-typed field
 * and any count or length over its bound, with EF_S_BAD_REQUEST and a
 * message naming the field. Nothing here crashes on hostile input.
 *
 * Lifetimes: decoded strings and byte fields point into the received
 * buffer and the msgpack zone of struct ipc_in; they are valid until
 * ipc_in_close() and are not NUL-terminated. Copy what must outlive it.
 */
#ifndef EF_IPC_H
#define EF_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "record.h"

#define EF_PROTO_VERSION 7
#define EF_XSTR(x)       #x
#define EF_STR(x)        EF_XSTR(x) /* EF_STR(EF_PROTO_VERSION) is "7" */

/* Bounds enforced by every decoder. */
#define IPC_MAX_MSG    (64u << 20) /* a whole message */
#define IPC_MAX_EVENTS 65536u      /* events in one APPEND or reply */
#define IPC_MAX_STRLEN 4096u       /* uuids, names, messages */

/* Operations: name, number, wire name. Runner ops start at 32. */
#define EF_OPS(X)                                                             \
	X(APPEND, 1, "append")                                                \
	X(READ_STREAM, 2, "read_stream")                                      \
	X(READ_ALL, 3, "read_all")                                            \
	X(LIST_STREAMS, 4, "list_streams")                                    \
	X(STATUS, 5, "status")                                                \
	X(ROTATE, 6, "rotate")                                                \
	X(SEGMENTS, 7, "segments")                                            \
	X(ARCHIVE, 8, "archive")                                              \
	X(BACKUP, 9, "backup")                                                \
	X(IMPORT, 10, "import")                                               \
	X(APPEND_MANY, 12, "append_many")                                     \
	X(EXECUTE, 32, "execute")                                             \
	X(GET_STATE, 33, "get_state")                                         \
	X(QUERY, 34, "query")                                                 \
	X(RUNNER_STATUS, 35, "runner_status")                                 \
	X(REBUILD, 36, "rebuild")                                             \
	X(RESET, 37, "reset")                                                 \
	X(REPLAY, 38, "replay")                                               \
	X(DEAD_LETTERS, 39, "dead_letters")                                   \
	X(PLUGINS, 40, "plugins")                                             \
	X(RUNNER_BACKUP, 41, "runner_backup")

enum ef_op {
#define X(name, num, str) EF_OP_##name = num,
	EF_OPS(X)
#undef X
};

/*
 * Reply statuses: name, number, the gRPC status code it maps to, text.
 * The gateway maps each one onto exactly one gRPC code.
 */
#define EF_STATUSES(X)                                                        \
	X(OK, 0, 0, "ok")                                                     \
	X(BAD_REQUEST, 1, 3, "malformed request")                             \
	X(BAD_VERSION, 2, 12, "protocol version mismatch")                    \
	X(UNKNOWN_OP, 3, 12, "unknown operation")                             \
	X(BAD_UUID, 4, 3, "malformed uuid")                                   \
	X(EMPTY_BATCH, 5, 3, "empty batch")                                   \
	X(DUPLICATE_EVENT_ID, 6, 3, "duplicate event id in batch")            \
	X(BAD_EVENT_TYPE, 7, 3, "event type must be 1..256 bytes")            \
	X(RECORD_TOO_LARGE, 8, 3, "record over 64 KiB")                       \
	X(BAD_EXPECTED_VERSION, 9, 3, "expected version missing or invalid")  \
	X(VERSION_CONFLICT, 10, 9, "wrong expected version")                  \
	X(EVENT_ID_REUSED, 11, 6, "event id already used by another event")   \
	X(STREAM_NOT_FOUND, 12, 5, "stream not found")                        \
	X(BATCH_TOO_LARGE, 13, 3, "batch too large")                          \
	X(DATA_LOSS, 14, 15, "data corruption")                               \
	X(INTERNAL, 15, 13, "internal error")                                 \
	X(UNAVAILABLE, 16, 14, "unavailable")                                 \
	X(NOT_FOUND, 17, 5, "not found")                                      \
	X(ABORTED, 18, 10, "aborted")                                         \
	X(REJECTED, 19, 9, "rejected")                                        \
	X(INVALID, 20, 3, "invalid argument")                                 \
	X(DEADLINE, 21, 4, "deadline exceeded")                               \
	X(RESOURCE_EXHAUSTED, 22, 8, "disk full")

enum ef_status {
#define X(name, num, grpc, str) EF_S_##name = num,
	EF_STATUSES(X)
#undef X
	    EF_S__COUNT
};

const char *ipc_op_name(int op);         /* "?" if unknown */
const char *ipc_status_name(int status); /* "OK", "VERSION_CONFLICT", ... */
const char *ipc_status_text(int status); /* default human text */
int ipc_status_grpc(int status);         /* gRPC code; 2 (UNKNOWN) if bad */

/* Expected version kinds of APPEND. */
enum ef_expect {
	EF_EXPECT_ANY = 0,
	EF_EXPECT_NO_STREAM = 1,
	EF_EXPECT_EXACT = 2,
};

/* Directions of the read ops. */
#define EF_FORWARD  0
#define EF_BACKWARD 1
/* from_* value that means "the end" when reading backward. */
#define EF_FROM_END UINT64_MAX

struct ipc_str {
	const char *ptr;
	uint32_t len;
};

struct ipc_proposed {
	struct ipc_str event_id; /* text, parsed by stored */
	struct ipc_str type;
	const uint8_t *metadata;
	uint32_t metadata_len;
	const uint8_t *payload;
	uint32_t payload_len;
};

/* APPEND body: [stream_id str, kind uint, version uint, [[id, type, md,
 * payload]...]] */
struct ipc_append_req {
	struct ipc_str stream_id;
	uint8_t kind;
	uint64_t version; /* meaningful with EF_EXPECT_EXACT */
	uint32_t nevents;
	struct ipc_proposed *events; /* owned; freed by ipc_append_req_free */
};

/* APPEND OK body: [first_version, last_version, first_pos, last_pos] */
struct ipc_append_rep {
	uint64_t first_version;
	uint64_t last_version;
	uint64_t first_pos;
	uint64_t last_pos;
};

/* VERSION_CONFLICT body: [exists bool, actual_version uint] */
struct ipc_conflict {
	bool exists;
	uint64_t actual;
};

/* READ_STREAM body: [stream_id str, from_version, max_count, direction] */
struct ipc_read_stream_req {
	struct ipc_str stream_id;
	uint64_t from;
	uint64_t max_count;
	uint8_t direction;
};

/* READ_ALL body: [from_position, max_count, direction] */
struct ipc_read_all_req {
	uint64_t from;
	uint64_t max_count;
	uint8_t direction;
};

/*
 * Read reply body: [events, head, last_version | nil]
 * head is the next global position to be written (the log's length);
 * last_version is the stream's latest version (READ_STREAM) or nil.
 * Each event is [event_id bin16, stream_id bin16, stream_version,
 * global_position, type str, metadata bin, payload bin, recorded_at].
 */
struct ipc_read_rep {
	const msgpack_object *events; /* array; use ipc_event_decode */
	uint32_t nevents;
	uint64_t head;
	bool has_last_version;
	uint64_t last_version;
};

/* LIST_STREAMS body: [after str | nil, max_count] */
struct ipc_list_req {
	bool has_after;
	struct ipc_str after;
	uint64_t max_count;
};

struct ipc_stream_info {
	uint8_t stream_id[UUID_LEN];
	uint64_t event_count;
	uint64_t latest_version;
};

/* LIST_STREAMS reply body: [[[id bin16, count, latest]...], more bool] */
struct ipc_list_rep {
	const msgpack_object *streams;
	uint32_t nstreams;
	bool more;
};

/* STATUS reply body: array of the fields below, in this order. */
struct ipc_status_rep {
	uint64_t head; /* next global position */
	uint64_t streams;
	uint64_t log_bytes;
	uint64_t uptime_ms;
	uint64_t commits; /* appends that wrote (replays excluded) */
	uint64_t fsyncs;  /* group commits (one fdatasync each) */
	uint64_t events_written;
	uint64_t recover_ms; /* time the last start spent in recovery */
	uint64_t recovered_events;
	uint64_t index_bytes;       /* memory held by the index */
	uint64_t segments;          /* segment files, the hot one included */
	uint64_t sealed_bytes;      /* bytes in sealed segments */
	uint64_t indexed_to;        /* positions below are indexed on disk */
	uint64_t archived_segments; /* sealed segments held as archives */
	uint64_t archived_bytes;    /* their .zst files' bytes */
	uint64_t archived_raw;      /* the segment bytes they hold */
	uint64_t cache_hits;        /* archive frame cache */
	uint64_t cache_misses;
	uint64_t cache_bytes; /* decompressed bytes held */
};

/* ROTATE body: nil (no fields). */
/*
 * ROTATE reply body: [rotated bool, sealed_base, sealed_events, hot_base]
 * rotated is false when the hot segment held no event (nothing to seal);
 * sealed_* describe the segment just sealed; hot_base is the first
 * position of the segment now being written.
 */
struct ipc_rotate_rep {
	bool rotated;
	uint64_t sealed_base;
	uint64_t sealed_events;
	uint64_t hot_base;
};

/* SEGMENTS body: [from_base, max_count]: segments whose base >= from. */
struct ipc_segments_req {
	uint64_t from;
	uint64_t max_count;
};

#define IPC_SEGMENT_STATE_MAX 16

/*
 * One segment: [base, events, bytes, state str ("hot", "sealed",
 * "archived"), stored_bytes].
 */
struct ipc_segment_info {
	uint64_t base;   /* its first global position (its name) */
	uint64_t events; /* positions base .. base + events - 1 */
	uint64_t bytes;  /* segment bytes (decompressed if archived) */
	struct ipc_str state;
	uint64_t stored_bytes; /* on disk: the .zst's size if archived */
};

/* ARCHIVE body: nil. Archives the oldest eligible segment, if any.
 * Reply body: [archived bool, base, raw_bytes, comp_bytes, left]; left
 * is how many eligible segments remain. */
struct ipc_archive_rep {
	bool archived;
	uint64_t base;
	uint64_t raw_bytes;
	uint64_t comp_bytes;
	uint64_t left;
};

/*
 * BACKUP body: [dir str]: an absolute path on stored's host that does
 * not exist yet (or is an empty directory). stored builds a data
 * directory there (daemons/stored/backup.c) and answers once it is
 * durable.
 * Reply body: [position, segments, linked, copied, bytes, index_bytes]:
 * the backup holds exactly the positions below `position` (the log's
 * head when it was taken); `linked` segment files were hard-linked and
 * `copied` copied, `bytes` in all; index_bytes is the size of the
 * compacted copy of the LMDB index.
 */
struct ipc_backup_req {
	struct ipc_str dir;
};

struct ipc_backup_rep {
	uint64_t position;
	uint64_t segments;
	uint64_t linked;
	uint64_t copied;
	uint64_t bytes;
	uint64_t index_bytes;
};

/*
 * IMPORT body: [keep_positions bool, [event...]]: whole events as a read
 * reply carries them (ipc_event_encode), in log order, appended as one
 * batch with their event ids, stream ids, stream versions and
 * recorded_at kept. Each stream version must be the stream's next; with
 * keep_positions each global_position must be the log's next too (an
 * import into an empty store keeps the source's positions), otherwise
 * positions are assigned. Events already stored exactly as given, as
 * a prefix of the batch (a re-run), are not written again: `skipped`
 * counts them; first_position is then the first one's.
 * Reply body: [first_position, count, skipped].
 *
 * Several in flight: the body may carry two more fields, [keep, events,
 * run uint, seq uint]: run (nonzero, the client's random id for one
 * import) and seq (0, 1, 2, ... within it). stored commits the IMPORTs
 * of a run strictly in seq order whatever order they reach its writer
 * in (one that comes early waits for its predecessor, and they share a
 * group commit when they wait together); once one fails, every later
 * one of the run is refused ABORTED, so the log never holds a gap. The
 * client sends seq 0 alone and the rest only once it is answered: a run
 * stored does not know, past seq 0, is refused ABORTED (stored
 * restarted), and a re-run skips what is stored. run 0 or the short
 * body: no ordering, as before.
 */
struct ipc_import_req {
	bool keep_positions;
	const msgpack_object *events; /* array; use ipc_event_decode */
	uint32_t nevents;
	uint64_t run; /* 0: not part of an ordered run */
	uint64_t seq;
};

struct ipc_import_rep {
	uint64_t first_pos;
	uint64_t count;
	uint64_t skipped;
};

/* SEGMENTS reply body: [[segment...], more bool] */
struct ipc_segments_rep {
	const msgpack_object *segments;
	uint32_t nsegments;
	bool more;
};

/* Publish message of stored: one per committed batch. */
struct ipc_pub {
	uint64_t first_pos;
	uint64_t last_pos;
	const msgpack_object *events; /* NULL when the batch was too large */
	uint32_t nevents;
};

/*
 * A decoded incoming message. Open with ipc_request_open() or
 * ipc_reply_open(); close with ipc_in_close() (accepts a zeroed struct).
 */
struct ipc_in {
	msgpack_unpacked up;
	int opened;
	const msgpack_object *body;
	/* request envelope */
	uint32_t version;
	uint32_t op;
	uint64_t request_id;
	/* reply envelope */
	int status;
	struct ipc_str message;
};

/*
 * Parse buf as a request. Returns 0, EF_S_BAD_REQUEST (not msgpack, bad
 * envelope, a count over the bounds) or EF_S_BAD_VERSION; *why says
 * what was wrong (static string). The envelope fields are set whenever
 * they could be read, so an error reply can name the op.
 */
int ipc_request_open(struct ipc_in *in, const void *buf, size_t len,
    const char **why);
int ipc_reply_open(struct ipc_in *in, const void *buf, size_t len,
    const char **why);
int ipc_pub_open(struct ipc_in *in, const void *buf, size_t len,
    struct ipc_pub *pub, const char **why);
void ipc_in_close(struct ipc_in *in);

/*
 * Body decoders: 0 or EF_S_BAD_REQUEST with *why set (naming the field,
 * for people: callers never compare it). ipc_append_req_decode returns
 * EF_S_BAD_EXPECTED_VERSION where the expected kind is ill-typed or out
 * of range.
 */
int ipc_append_req_decode(const msgpack_object *body, struct ipc_append_req *r,
    const char **why);
void ipc_append_req_free(struct ipc_append_req *r);
int ipc_append_rep_decode(const msgpack_object *body, struct ipc_append_rep *r,
    const char **why);
int ipc_conflict_decode(const msgpack_object *body, struct ipc_conflict *c,
    const char **why);
int ipc_read_stream_req_decode(const msgpack_object *body,
    struct ipc_read_stream_req *r, const char **why);
int ipc_read_all_req_decode(const msgpack_object *body,
    struct ipc_read_all_req *r, const char **why);
int ipc_read_rep_decode(const msgpack_object *body, struct ipc_read_rep *r,
    const char **why);
int ipc_event_decode(const msgpack_object *o, struct ef_event *ev,
    const char **why);
int ipc_list_req_decode(const msgpack_object *body, struct ipc_list_req *r,
    const char **why);
int ipc_list_rep_decode(const msgpack_object *body, struct ipc_list_rep *r,
    const char **why);
int ipc_stream_info_decode(const msgpack_object *o, struct ipc_stream_info *s,
    const char **why);
int ipc_status_rep_decode(const msgpack_object *body, struct ipc_status_rep *r,
    const char **why);
int ipc_archive_rep_decode(const msgpack_object *body,
    struct ipc_archive_rep *r, const char **why);
int ipc_rotate_rep_decode(const msgpack_object *body, struct ipc_rotate_rep *r,
    const char **why);
int ipc_segments_req_decode(const msgpack_object *body,
    struct ipc_segments_req *r, const char **why);
int ipc_segments_rep_decode(const msgpack_object *body,
    struct ipc_segments_rep *r, const char **why);
int ipc_segment_info_decode(const msgpack_object *o,
    struct ipc_segment_info *s, const char **why);
int ipc_backup_req_decode(const msgpack_object *body, struct ipc_backup_req *r,
    const char **why);
int ipc_backup_rep_decode(const msgpack_object *body, struct ipc_backup_rep *r,
    const char **why);
int ipc_import_req_decode(const msgpack_object *body, struct ipc_import_req *r,
    const char **why);
int ipc_import_rep_decode(const msgpack_object *body, struct ipc_import_rep *r,
    const char **why);

/*
 * Building messages. ipc_out packs straight into a growing buffer that
 * the caller owns (buf, len); ipc_out_reset() empties it for reuse and
 * ipc_out_free() releases it. Packing never fails short of ENOMEM, which
 * is fatal.
 */
struct nng_msg;

/*
 * An encoder's output: a buffer of its own (ipc_out_init), or the body
 * of an nng message (ipc_out_msg_begin), so that a large reply is built
 * where it is sent from, with no copy.
 */
struct ipc_out {
	char *buf;
	size_t len;
	size_t cap;
	msgpack_packer pk;
	struct nng_msg *msg; /* non-NULL: buf is its body ... */
	char *own;           /* ... and these are o's own buffer */
	size_t own_cap;
};

void ipc_out_init(struct ipc_out *o);
void ipc_out_reset(struct ipc_out *o);
void ipc_out_free(struct ipc_out *o);
/*
 * Encodes into m's body from now on (its length is the room first
 * held; it grows as needed), in place of o's own buffer, which is kept.
 * ipc_out_msg_end() sets the body's length to what was encoded and
 * gives m back: the caller owns it, as before. A failure to grow m is
 * fatal, as one of o's own buffer is.
 */
void ipc_out_msg_begin(struct ipc_out *o, struct nng_msg *m);
struct nng_msg *ipc_out_msg_end(struct ipc_out *o);

void ipc_request_begin(struct ipc_out *o, int op, uint64_t request_id);
void ipc_reply_begin(struct ipc_out *o, int status, const char *message);
void ipc_pub_begin(struct ipc_out *o, uint64_t first, uint64_t last,
    uint32_t nevents);

void ipc_append_req_encode(struct ipc_out *o, const struct ipc_append_req *r);
void ipc_append_rep_encode(struct ipc_out *o, const struct ipc_append_rep *r);
void ipc_conflict_encode(struct ipc_out *o, const struct ipc_conflict *c);
void ipc_read_stream_req_encode(struct ipc_out *o,
    const struct ipc_read_stream_req *r);
void ipc_read_all_req_encode(struct ipc_out *o,
    const struct ipc_read_all_req *r);
/* A read reply: begin with the count, pack that many events, then end. */
void ipc_read_rep_begin(struct ipc_out *o, uint32_t nevents);
/*
 * The same, for a count known only once the events are packed: returns
 * where the count is (a 32-bit array header), to be set with
 * ipc_read_rep_count() before the reply is sent.
 */
size_t ipc_read_rep_begin_open(struct ipc_out *o);
void ipc_read_rep_count(struct ipc_out *o, size_t at, uint32_t nevents);
void ipc_event_encode(struct ipc_out *o, const struct ef_event *ev);
void ipc_read_rep_end(struct ipc_out *o, uint64_t head, bool has_last,
    uint64_t last_version);
void ipc_list_req_encode(struct ipc_out *o, const struct ipc_list_req *r);
/*
 * A page, LIST_STREAMS's reply or SEGMENTS's: begin with the count, pack
 * that many items (ipc_stream_info_encode, ipc_segment_info_encode),
 * then end with whether there are more.
 */
void ipc_page_begin(struct ipc_out *o, uint32_t n);
void ipc_page_end(struct ipc_out *o, bool more);
#define ipc_list_rep_begin     ipc_page_begin
#define ipc_list_rep_end       ipc_page_end
#define ipc_segments_rep_begin ipc_page_begin
#define ipc_segments_rep_end   ipc_page_end
void ipc_stream_info_encode(struct ipc_out *o,
    const struct ipc_stream_info *s);
void ipc_status_rep_encode(struct ipc_out *o, const struct ipc_status_rep *r);
void ipc_rotate_rep_encode(struct ipc_out *o, const struct ipc_rotate_rep *r);
void ipc_archive_rep_encode(struct ipc_out *o,
    const struct ipc_archive_rep *r);
void ipc_segments_req_encode(struct ipc_out *o,
    const struct ipc_segments_req *r);
void ipc_segment_info_encode(struct ipc_out *o,
    const struct ipc_segment_info *s);
void ipc_backup_req_encode(struct ipc_out *o, const struct ipc_backup_req *r);
void ipc_backup_rep_encode(struct ipc_out *o, const struct ipc_backup_rep *r);
/* An import request: begin with the count, pack that many events. run 0
 * packs the short body (no ordering); else the body ends with run and
 * seq, packed by ipc_import_req_end() after the events. */
void ipc_import_req_end(struct ipc_out *o, uint64_t run, uint64_t seq);
void ipc_import_req_begin(struct ipc_out *o, bool keep_positions,
    uint32_t nevents, uint64_t run);
void ipc_import_rep_encode(struct ipc_out *o, const struct ipc_import_rep *r);
void ipc_nil(struct ipc_out *o);

/* Size on the wire of an event encoded by ipc_event_encode (upper bound). */
size_t ipc_event_wire_size(uint32_t type_len, uint32_t md_len,
    uint32_t payload_len);

#endif
