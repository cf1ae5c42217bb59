/* SPDX-License-Identifier: MIT */
/*
 * ipc_runner.h - the bodies of the eventfold-runnerd messages (ops 32 and
 * up of EF_OPS in ipc.h), on runner.sock. Same envelope, version and
 * rules as ipc.h: every body is a msgpack array with a fixed number of
 * fields, decoders refuse a missing, extra or ill-typed field and any
 * length or count over its bound (EF_S_BAD_REQUEST, *why names the
 * field), and decoded strings and byte fields point into the received
 * message (valid until ipc_in_close(), not NUL-terminated).
 * proto/runner.proto is the gRPC face of the same operations.
 *
 * Optional string fields are nil on the wire; decoded, their ptr is NULL.
 */
#ifndef EF_IPC_RUNNER_H
#define EF_IPC_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "ipc.h"

#define IPC_NAME_MAX    128    /* aggregate types, projection names */
#define IPC_ID_MAX      256    /* instance ids, command ids, contexts */
#define IPC_KEY_MAX     511    /* projection keys (LMDB's bound) */
#define IPC_PAYLOAD_MAX 65536u /* command payloads */
#define IPC_QUERY_LIMIT 10000u /* items in one QUERY or REPLAY reply */
#define IPC_WAIT_MAX_MS 60000u /* longest QUERY wait */

/*
 * EXECUTE body: [aggregate_type, instance_id, command_type,
 *   payload bin|nil, command_id, actor|nil, correlation_id|nil,
 *   causation_id|nil, source_device|nil]
 */
struct ipc_exec_req {
	struct ipc_str aggregate_type;
	struct ipc_str instance_id;
	struct ipc_str type;
	const uint8_t *payload;
	uint32_t payload_len;
	struct ipc_str command_id;
	struct ipc_str actor;
	struct ipc_str correlation_id;
	struct ipc_str causation_id;
	struct ipc_str source_device;
};

/*
 * EXECUTE reply body: [stream_id bin16, version u|nil, event_count,
 *   first_position u|nil, last_position u|nil, duplicate bool]
 * version is the stream's last version after the command (nil: the
 * stream does not exist); the command's events are versions
 * version - event_count + 1 .. version. duplicate: the command id had
 * already produced these events; nothing ran. A rejection is status
 * EF_S_REJECTED with the plugin's message and a nil body.
 */
struct ipc_exec_rep {
	uint8_t stream_id[UUID_LEN];
	bool exists;
	uint64_t version;
	uint64_t count;
	uint64_t first_pos; /* meaningful when count > 0 */
	uint64_t last_pos;
	bool duplicate;
};

/* GET_STATE body: [aggregate_type, instance_id] */
struct ipc_state_req {
	struct ipc_str aggregate_type;
	struct ipc_str instance_id;
};

/* GET_STATE reply body: [stream_id bin16, version u|nil, state bin] */
struct ipc_state_rep {
	uint8_t stream_id[UUID_LEN];
	bool exists;
	uint64_t version;
	const uint8_t *state;
	uint32_t state_len;
};

enum ipc_query_mode {
	EF_QUERY_KEY = 0,    /* key: exactly that key */
	EF_QUERY_PREFIX = 1, /* key: every key starting with it */
	EF_QUERY_RANGE =
	    2, /* key <= k < end (nil key: first, nil end: last) */
};

/*
 * QUERY body: [projection, mode, key bin|nil, end bin|nil,
 *   after bin|nil, limit, min_position u|nil, wait_ms]
 * after: paging cursor, only keys greater than it. limit: at most this
 * many items (0: 100; over IPC_QUERY_LIMIT refused). min_position: wait
 * up to wait_ms (<= IPC_WAIT_MAX_MS) until the projection has applied
 * the event at that position, else EF_S_DEADLINE.
 */
struct ipc_query_req {
	struct ipc_str projection;
	uint8_t mode;
	const uint8_t *key;
	uint32_t key_len;
	bool has_key;
	const uint8_t *end;
	uint32_t end_len;
	bool has_end;
	const uint8_t *after;
	uint32_t after_len;
	bool has_after;
	uint64_t limit;
	bool has_min_position;
	uint64_t min_position;
	uint64_t wait_ms;
};

/*
 * QUERY reply body: [position, [[key bin, value bin]...], next bin|nil]
 * position: events the projection had applied when read (its
 * checkpoint). next: give it as `after` for the next page; nil at the
 * end. A KEY query for a missing key is EF_S_NOT_FOUND.
 */
struct ipc_query_rep {
	uint64_t position;
	const msgpack_object *items; /* use ipc_kv_decode */
	uint32_t nitems;
	bool has_next;
	const uint8_t *next;
	uint32_t next_len;
};

/* Fold kinds and states in RUNNER_STATUS. */
#define EF_FOLD_PROJECTION 0
#define EF_FOLD_MANAGER    1

/*
 * RUNNER_STATUS reply body: [uptime_ms, head u|nil, [fold...], [agg...],
 *   lmdb_map_bytes, lmdb_map_grows]
 * fold: [name, plugin, kind, state, position, lag u|nil, events_per_s,
 *   error_position u|nil, error str|nil, rebuild_position u|nil,
 *   dead_letters]
 * agg: [type, plugin, cached_instances, commands]
 * head is nil when stored did not answer; lag likewise.
 * lmdb_map_bytes: the current map size of runnerd's LMDB environment;
 * lmdb_map_grows: the times since runnerd started that a full map was
 * doubled (that environment's and REPLAY's scratch ones). Both were
 * added in protocol version 6.
 */
struct ipc_fold_info {
	struct ipc_str name;
	struct ipc_str plugin;
	uint8_t kind;
	struct ipc_str state; /* "catching-up", "live", "stopped",
	                         "waiting-for-store" */
	uint64_t position;
	bool has_lag;
	uint64_t lag;
	uint64_t events_per_s;
	bool has_error;
	uint64_t error_position;
	struct ipc_str error;
	bool rebuilding;
	uint64_t rebuild_position;
	uint64_t dead_letters;
};

struct ipc_agg_info {
	struct ipc_str type;
	struct ipc_str plugin;
	uint64_t cached;
	uint64_t commands;
};

struct ipc_runner_status_rep {
	uint64_t uptime_ms;
	bool has_head;
	uint64_t head;
	const msgpack_object *folds; /* ipc_fold_info_decode */
	uint32_t nfolds;
	const msgpack_object *aggs; /* ipc_agg_info_decode */
	uint32_t naggs;
	uint64_t lmdb_map_bytes;
	uint64_t lmdb_map_grows;
};

/* REBUILD and RESET body: [name] ; reply body nil. */
struct ipc_name_req {
	struct ipc_str name;
};

/*
 * REPLAY body: [projection, until, limit]: fold events 0..until
 * (inclusive) into a scratch store and return its keys, without
 * touching the live projection.
 * REPLAY reply body: [position, [[key, value]...], truncated bool]
 * position: events folded (less than until + 1 if the log is shorter).
 */
struct ipc_replay_req {
	struct ipc_str projection;
	uint64_t until;
	uint64_t limit;
};

struct ipc_replay_rep {
	uint64_t position;
	const msgpack_object *items;
	uint32_t nitems;
	bool truncated;
};

/*
 * DEAD_LETTERS body: [action, manager|nil, command_id|nil]
 *   LIST: the dead letters (of one manager if given) ->
 *         [[dead letter...]]
 *   RETRY: run them again now (one, or all of a manager) ->
 *         [succeeded, failed]; those that succeed are removed
 *   DROP: forget them -> [dropped]
 * dead letter: [manager, command_id, aggregate_type, instance_id, type,
 *   payload bin, error, attempts, event_position, parked_at_ms]
 */
enum ipc_dl_action {
	EF_DL_LIST = 0,
	EF_DL_RETRY = 1,
	EF_DL_DROP = 2,
};

struct ipc_dl_req {
	uint8_t action;
	struct ipc_str manager;
	struct ipc_str command_id;
};

struct ipc_dead_letter {
	struct ipc_str manager;
	struct ipc_str command_id;
	struct ipc_str aggregate_type;
	struct ipc_str instance_id;
	struct ipc_str type;
	const uint8_t *payload;
	uint32_t payload_len;
	struct ipc_str error;
	uint64_t attempts;
	uint64_t event_position;
	uint64_t parked_at;
};

/*
 * PLUGINS reply body: [[file, name, version, abi, [aggregate types],
 *   [projections], [managers], refused]...]: loaded plugins with refused
 * nil, then the files of the plugin directory runnerd refused, with
 * empty name and version, abi 0, empty lists and refused the reason.
 */
struct ipc_plugin_info {
	struct ipc_str file;
	struct ipc_str name;
	struct ipc_str version;
	uint64_t abi;
	const msgpack_object *aggs; /* arrays of str */
	const msgpack_object *projs;
	const msgpack_object *mgrs;
	struct ipc_str refused; /* ptr NULL: loaded */
};

/*
 * RUNNER_BACKUP body: [dir str], as BACKUP's (struct ipc_backup_req):
 * an absolute path on runnerd's host that does not exist yet. runnerd
 * copies its LMDB environment there with LMDB's compacting copy (one
 * read transaction: consistent). Reply body: [bytes] (ipc_counts_*,
 * n = 1), the size of the copy.
 */

/* Decoders: 0 or EF_S_BAD_REQUEST with *why set. */
int ipc_exec_req_decode(const msgpack_object *b, struct ipc_exec_req *r,
    const char **why);
int ipc_exec_rep_decode(const msgpack_object *b, struct ipc_exec_rep *r,
    const char **why);
int ipc_state_req_decode(const msgpack_object *b, struct ipc_state_req *r,
    const char **why);
int ipc_state_rep_decode(const msgpack_object *b, struct ipc_state_rep *r,
    const char **why);
int ipc_query_req_decode(const msgpack_object *b, struct ipc_query_req *r,
    const char **why);
int ipc_query_rep_decode(const msgpack_object *b, struct ipc_query_rep *r,
    const char **why);
int ipc_kv_decode(const msgpack_object *o, const uint8_t **k, uint32_t *kl,
    const uint8_t **v, uint32_t *vl, const char **why);
int ipc_runner_status_rep_decode(const msgpack_object *b,
    struct ipc_runner_status_rep *r, const char **why);
int ipc_fold_info_decode(const msgpack_object *o, struct ipc_fold_info *f,
    const char **why);
int ipc_agg_info_decode(const msgpack_object *o, struct ipc_agg_info *a,
    const char **why);
int ipc_name_req_decode(const msgpack_object *b, struct ipc_name_req *r,
    const char **why);
int ipc_replay_req_decode(const msgpack_object *b, struct ipc_replay_req *r,
    const char **why);
int ipc_replay_rep_decode(const msgpack_object *b, struct ipc_replay_rep *r,
    const char **why);
int ipc_dl_req_decode(const msgpack_object *b, struct ipc_dl_req *r,
    const char **why);
int ipc_dead_letter_decode(const msgpack_object *o, struct ipc_dead_letter *d,
    const char **why);
/* LIST reply: the array of dead letters. RETRY/DROP: counts. */
int ipc_dl_list_decode(const msgpack_object *b, const msgpack_object **list,
    uint32_t *n, const char **why);
int ipc_counts_decode(const msgpack_object *b, uint64_t *v, uint32_t n,
    const char **why);
int ipc_plugin_info_decode(const msgpack_object *o, struct ipc_plugin_info *p,
    const char **why);
int ipc_plugins_rep_decode(const msgpack_object *b,
    const msgpack_object **list, uint32_t *n, const char **why);

/* Encoders (never fail; see ipc_out in ipc.h). */
void ipc_exec_req_encode(struct ipc_out *o, const struct ipc_exec_req *r);
void ipc_exec_rep_encode(struct ipc_out *o, const struct ipc_exec_rep *r);
void ipc_state_req_encode(struct ipc_out *o, const struct ipc_state_req *r);
void ipc_state_rep_encode(struct ipc_out *o, const struct ipc_state_rep *r);
void ipc_query_req_encode(struct ipc_out *o, const struct ipc_query_req *r);
/* Query and replay replies: begin with the count, that many kv, end. */
void ipc_query_rep_begin(struct ipc_out *o, uint64_t position, uint32_t n);
void ipc_kv_encode(struct ipc_out *o, const void *k, size_t kl, const void *v,
    size_t vl);
void ipc_query_rep_end(struct ipc_out *o, const void *next, size_t next_len);
void ipc_replay_rep_begin(struct ipc_out *o, uint64_t position, uint32_t n);
void ipc_replay_rep_end(struct ipc_out *o, bool truncated);
void ipc_runner_status_begin(struct ipc_out *o, uint64_t uptime_ms,
    bool has_head, uint64_t head, uint32_t nfolds);
void ipc_fold_info_encode(struct ipc_out *o, const struct ipc_fold_info *f);
void ipc_runner_status_aggs(struct ipc_out *o, uint32_t naggs);
void ipc_agg_info_encode(struct ipc_out *o, const struct ipc_agg_info *a);
/* After the aggregates: the last two fields. */
void ipc_runner_status_end(struct ipc_out *o, uint64_t lmdb_map_bytes,
    uint64_t lmdb_map_grows);
void ipc_name_req_encode(struct ipc_out *o, const struct ipc_name_req *r);
void ipc_replay_req_encode(struct ipc_out *o, const struct ipc_replay_req *r);
void ipc_dl_req_encode(struct ipc_out *o, const struct ipc_dl_req *r);
void ipc_dl_list_begin(struct ipc_out *o, uint32_t n);
void ipc_dead_letter_encode(struct ipc_out *o,
    const struct ipc_dead_letter *d);
void ipc_counts_encode(struct ipc_out *o, const uint64_t *v, uint32_t n);
void ipc_plugins_rep_begin(struct ipc_out *o, uint32_t n);
/* One plugin: its fields, then three name lists via ipc_str_list_*, then
 * ipc_plugin_info_end() with why it was refused (NULL: loaded). */
void ipc_plugin_info_begin(struct ipc_out *o, const char *file,
    const char *name, const char *version, uint64_t abi);
void ipc_plugin_info_end(struct ipc_out *o, const char *refused);
void ipc_str_list_begin(struct ipc_out *o, uint32_t n);
void ipc_str_encode(struct ipc_out *o, const char *s, size_t len);

/* An ipc_str from a C string (NULL stays NULL). */
struct ipc_str ipc_cstr(const char *s);

#endif
