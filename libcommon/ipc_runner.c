/* SPDX-License-Identifier: MIT */
/*
 * ipc_runner.c - msgpack encoders and strict decoders of the runnerd
 * messages (see ipc_runner.h). The envelope and the raw-byte precheck
 * are ipc.c's; this file only shapes bodies.
 */
#include <string.h>

#include "ipc_field.h"
#include "ipc_runner.h"

static int
fail(const char **why, const char *name)
{
	*why = name;
	return -1;
}

struct ipc_str
ipc_cstr(const char *s)
{
	struct ipc_str r = { s, s ? (uint32_t)strlen(s) : 0 };

	return r;
}

/*
 * The bodies of a fixed shape, each a list of its fields in wire order
 * (ipc_field.h): one list gives the strict decoder and the encoder.
 */
#define EXEC_REQ(X)                                                           \
	X(NAME, aggregate_type, "aggregate_type", IPC_NAME_MAX)               \
	X(NAME, instance_id, "instance_id", IPC_ID_MAX)                       \
	X(NAME, type, "command_type", 256)                                    \
	X(NILBIN, payload, "payload", IPC_PAYLOAD_MAX)                        \
	X(NAME, command_id, "command_id", IPC_ID_MAX)                         \
	X(OPTSTR, actor, "actor", IPC_ID_MAX)                                 \
	X(OPTSTR, correlation_id, "correlation_id", IPC_ID_MAX)               \
	X(OPTSTR, causation_id, "causation_id", IPC_ID_MAX)                   \
	X(OPTSTR, source_device, "source_device", IPC_ID_MAX)
IPCF_CODEC(exec_req, EXEC_REQ, "execute body")

#define STATE_REQ(X)                                                          \
	X(NAME, aggregate_type, "aggregate_type", IPC_NAME_MAX)               \
	X(NAME, instance_id, "instance_id", IPC_ID_MAX)
IPCF_CODEC(state_req, STATE_REQ, "get_state body")

#define STATE_REP(X)                                                          \
	X(UUID, stream_id, "stream_id", 0)                                    \
	X(OPTU64, version, "version", exists)                                 \
	X(BIN, state, "state", IPC_MAX_MSG)
IPCF_CODEC(state_rep, STATE_REP, "get_state reply")

/* What a query's fields say together. */
static int
query_check(const struct ipc_query_req *r, const char **why)
{
	if (r->mode == EF_QUERY_KEY && (!r->has_key || r->key_len == 0))
		return fail(why, "key");
	if (r->mode == EF_QUERY_PREFIX && !r->has_key)
		return fail(why, "key");
	return 0;
}

#define QUERY_REQ(X)                                                          \
	X(NAME, projection, "projection", IPC_NAME_MAX)                       \
	X(ENUM, mode, "mode", EF_QUERY_RANGE)                                 \
	X(OPTBIN, key, "key", IPC_KEY_MAX)                                    \
	X(OPTBIN, end, "end", IPC_KEY_MAX)                                    \
	X(OPTBIN, after, "after", IPC_KEY_MAX)                                \
	X(U64MAX, limit, "limit", IPC_QUERY_LIMIT)                            \
	X(OPTU64, min_position, "min_position", has_min_position)             \
	X(U64MAX, wait_ms, "wait_ms", IPC_WAIT_MAX_MS)
IPCF_CODEC_CHECK(query_req, QUERY_REQ, "query body", query_check)

#define QUERY_REP(X)                                                          \
	X(U64, position, "position", 0)                                       \
	X(LIST, items, "items", IPC_QUERY_LIMIT)                              \
	X(OPTBIN, next, "next", IPC_KEY_MAX)
IPCF_DECODER(query_rep, QUERY_REP, "query reply")

#define FOLD_INFO(X)                                                          \
	X(STR, name, "name", IPC_NAME_MAX)                                    \
	X(STR, plugin, "plugin", IPC_MAX_STRLEN)                              \
	X(ENUM, kind, "kind", EF_FOLD_MANAGER)                                \
	X(STR, state, "state", IPC_NAME_MAX)                                  \
	X(U64, position, "position", 0)                                       \
	X(OPTU64, lag, "lag", has_lag)                                        \
	X(U64, events_per_s, "events_per_s", 0)                               \
	X(OPTU64, error_position, "error_position", has_error)                \
	X(OPTSTR, error, "error", IPC_MAX_STRLEN)                             \
	X(OPTU64, rebuild_position, "rebuild_position", rebuilding)           \
	X(U64, dead_letters, "dead_letters", 0)
IPCF_DECODER(fold_info, FOLD_INFO, "fold")

#define AGG_INFO(X)                                                           \
	X(STR, type, "type", IPC_NAME_MAX)                                    \
	X(STR, plugin, "plugin", IPC_MAX_STRLEN)                              \
	X(U64, cached, "cached", 0)                                           \
	X(U64, commands, "commands", 0)
IPCF_CODEC(agg_info, AGG_INFO, "aggregate")

#define RUNNER_STATUS_REP(X)                                                  \
	X(U64, uptime_ms, "uptime_ms", 0)                                     \
	X(OPTU64, head, "head", has_head)                                     \
	X(LIST, folds, "folds", 65536)                                        \
	X(LIST, aggs, "aggregates", 65536)                                    \
	X(U64, lmdb_map_bytes, "lmdb_map_bytes", 0)                           \
	X(U64, lmdb_map_grows, "lmdb_map_grows", 0)
IPCF_DECODER(runner_status_rep, RUNNER_STATUS_REP, "runner status")

#define NAME_REQ(X) X(NAME, name, "name", IPC_NAME_MAX)
IPCF_CODEC(name_req, NAME_REQ, "body")

#define REPLAY_REQ(X)                                                         \
	X(NAME, projection, "projection", IPC_NAME_MAX)                       \
	X(U64, until, "until", 0)                                             \
	X(U64MAX, limit, "limit", IPC_QUERY_LIMIT)
IPCF_CODEC(replay_req, REPLAY_REQ, "replay body")

#define REPLAY_REP(X)                                                         \
	X(U64, position, "position", 0)                                       \
	X(LIST, items, "items", IPC_QUERY_LIMIT)                              \
	X(BOOL, truncated, "truncated", 0)
IPCF_DECODER(replay_rep, REPLAY_REP, "replay reply")

/* LIST takes any manager, or none; RETRY and DROP one. */
static int
dl_check(const struct ipc_dl_req *r, const char **why)
{
	if (r->action != EF_DL_LIST && r->manager.ptr == NULL)
		return fail(why, "manager");
	return 0;
}

#define DL_REQ(X)                                                             \
	X(ENUM, action, "action", EF_DL_DROP)                                 \
	X(OPTSTR, manager, "manager", IPC_NAME_MAX)                           \
	X(OPTSTR, command_id, "command_id", IPC_ID_MAX)
IPCF_CODEC_CHECK(dl_req, DL_REQ, "dead_letters body", dl_check)

#define DEAD_LETTER(X)                                                        \
	X(STR, manager, "manager", IPC_NAME_MAX)                              \
	X(STR, command_id, "command_id", IPC_ID_MAX)                          \
	X(STR, aggregate_type, "aggregate_type", IPC_NAME_MAX)                \
	X(STR, instance_id, "instance_id", IPC_ID_MAX)                        \
	X(STR, type, "type", 256)                                             \
	X(BIN, payload, "payload", IPC_MAX_MSG)                               \
	X(STR, error, "error", IPC_MAX_STRLEN)                                \
	X(U64, attempts, "attempts", 0)                                       \
	X(U64, event_position, "event_position", 0)                           \
	X(U64, parked_at, "parked_at", 0)
IPCF_CODEC(dead_letter, DEAD_LETTER, "dead letter")

int
ipc_exec_rep_decode(const msgpack_object *b, struct ipc_exec_rep *r,
    const char **why)
{
	bool h1, h2;

	memset(r, 0, sizeof(*r));
	FIELD(ipcf_array(b, 6, "execute reply", why));
	FIELD(ipcf_uuid(F(b, 0), r->stream_id, "stream_id", why));
	FIELD(ipcf_optu64(F(b, 1), &r->exists, &r->version, "version", why));
	FIELD(ipcf_u64(F(b, 2), &r->count, "event_count", why));
	FIELD(ipcf_optu64(F(b, 3), &h1, &r->first_pos, "first_position", why));
	FIELD(ipcf_optu64(F(b, 4), &h2, &r->last_pos, "last_position", why));
	FIELD(ipcf_bool(F(b, 5), &r->duplicate, "duplicate", why));
	if ((r->count > 0) != h1 || h1 != h2 || (r->count > 0 && !r->exists))
		FIELD(fail(why, "event_count"));
	return 0;
}

int
ipc_kv_decode(const msgpack_object *o, const uint8_t **k, uint32_t *kl,
    const uint8_t **v, uint32_t *vl, const char **why)
{
	FIELD(ipcf_array(o, 2, "item", why));
	FIELD(ipcf_bin(F(o, 0), k, kl, IPC_KEY_MAX, "key", why));
	FIELD(ipcf_bin(F(o, 1), v, vl, IPC_MAX_MSG, "value", why));
	return 0;
}

int
ipc_dl_list_decode(const msgpack_object *b, const msgpack_object **list,
    uint32_t *n, const char **why)
{
	FIELD(ipcf_array(b, 1, "dead_letters reply", why));
	FIELD(ipcf_list_of(F(b, 0), list, n, 1u << 20, "dead letters", why));
	return 0;
}

int
ipc_counts_decode(const msgpack_object *b, uint64_t *v, uint32_t n,
    const char **why)
{
	uint32_t i;

	FIELD(ipcf_array(b, n, "counts", why));
	for (i = 0; i < n; i++)
		FIELD(ipcf_u64(F(b, i), &v[i], "count", why));
	return 0;
}

int
ipc_plugin_info_decode(const msgpack_object *o, struct ipc_plugin_info *p,
    const char **why)
{
	uint32_t i, k;

	FIELD(ipcf_array(o, 8, "plugin", why));
	FIELD(ipcf_str(F(o, 0), &p->file, IPC_MAX_STRLEN, "file", why));
	FIELD(ipcf_str(F(o, 1), &p->name, IPC_NAME_MAX, "name", why));
	FIELD(ipcf_str(F(o, 2), &p->version, IPC_NAME_MAX, "version", why));
	FIELD(ipcf_u64(F(o, 3), &p->abi, "abi", why));
	for (k = 4; k < 7; k++) {
		FIELD(ipcf_list(F(o, k), 65536, "names", why));
		for (i = 0; i < F(o, k)->via.array.size; i++)
			if (F(o, k)->via.array.ptr[i].type !=
			    MSGPACK_OBJECT_STR)
				FIELD(fail(why, "names"));
	}
	p->aggs = F(o, 4);
	p->projs = F(o, 5);
	p->mgrs = F(o, 6);
	FIELD(
	    ipcf_optstr(F(o, 7), &p->refused, IPC_MAX_STRLEN, "refused", why));
	return 0;
}

int
ipc_plugins_rep_decode(const msgpack_object *b, const msgpack_object **list,
    uint32_t *n, const char **why)
{
	FIELD(ipcf_list_of(b, list, n, 65536, "plugins", why));
	return 0;
}

/* Encoders. */

void
ipc_str_encode(struct ipc_out *o, const char *s, size_t len)
{
	ipcf_pack_str(&o->pk, s, len);
}

void
ipc_exec_rep_encode(struct ipc_out *o, const struct ipc_exec_rep *r)
{
	msgpack_packer *pk = &o->pk;

	msgpack_pack_array(pk, 6);
	ipcf_pack_bin(pk, r->stream_id, UUID_LEN);
	ipcf_pack_optu64(pk, r->exists, r->version);
	msgpack_pack_uint64(pk, r->count);
	ipcf_pack_optu64(pk, r->count > 0, r->first_pos);
	ipcf_pack_optu64(pk, r->count > 0, r->last_pos);
	ipcf_pack_bool(pk, r->duplicate);
}

void
ipc_query_rep_begin(struct ipc_out *o, uint64_t position, uint32_t n)
{
	msgpack_pack_array(&o->pk, 3);
	msgpack_pack_uint64(&o->pk, position);
	msgpack_pack_array(&o->pk, n);
}

void
ipc_kv_encode(struct ipc_out *o, const void *k, size_t kl, const void *v,
    size_t vl)
{
	msgpack_pack_array(&o->pk, 2);
	ipcf_pack_bin(&o->pk, k, kl);
	ipcf_pack_bin(&o->pk, v, vl);
}

void
ipc_query_rep_end(struct ipc_out *o, const void *next, size_t next_len)
{
	ipcf_pack_optbin(&o->pk, next != NULL, next, next_len);
}

void
ipc_replay_rep_begin(struct ipc_out *o, uint64_t position, uint32_t n)
{
	ipc_query_rep_begin(o, position, n);
}

void
ipc_replay_rep_end(struct ipc_out *o, bool truncated)
{
	ipcf_pack_bool(&o->pk, truncated);
}

void
ipc_runner_status_begin(struct ipc_out *o, uint64_t uptime_ms, bool has_head,
    uint64_t head, uint32_t nfolds)
{
	msgpack_pack_array(&o->pk, 6);
	msgpack_pack_uint64(&o->pk, uptime_ms);
	ipcf_pack_optu64(&o->pk, has_head, head);
	msgpack_pack_array(&o->pk, nfolds);
}

void
ipc_fold_info_encode(struct ipc_out *o, const struct ipc_fold_info *f)
{
	msgpack_packer *pk = &o->pk;

	msgpack_pack_array(pk, 11);
	ipcf_pack_str(pk, f->name.ptr, f->name.len);
	ipcf_pack_str(pk, f->plugin.ptr, f->plugin.len);
	msgpack_pack_uint8(pk, f->kind);
	ipcf_pack_str(pk, f->state.ptr, f->state.len);
	msgpack_pack_uint64(pk, f->position);
	ipcf_pack_optu64(pk, f->has_lag, f->lag);
	msgpack_pack_uint64(pk, f->events_per_s);
	ipcf_pack_optu64(pk, f->has_error, f->error_position);
	if (f->has_error)
		ipcf_pack_str(pk, f->error.ptr, f->error.len);
	else
		msgpack_pack_nil(pk);
	ipcf_pack_optu64(pk, f->rebuilding, f->rebuild_position);
	msgpack_pack_uint64(pk, f->dead_letters);
}

void
ipc_runner_status_aggs(struct ipc_out *o, uint32_t naggs)
{
	msgpack_pack_array(&o->pk, naggs);
}

void
ipc_runner_status_end(struct ipc_out *o, uint64_t lmdb_map_bytes,
    uint64_t lmdb_map_grows)
{
	msgpack_pack_uint64(&o->pk, lmdb_map_bytes);
	msgpack_pack_uint64(&o->pk, lmdb_map_grows);
}

void
ipc_dl_list_begin(struct ipc_out *o, uint32_t n)
{
	msgpack_pack_array(&o->pk, 1);
	msgpack_pack_array(&o->pk, n);
}

void
ipc_counts_encode(struct ipc_out *o, const uint64_t *v, uint32_t n)
{
	uint32_t i;

	msgpack_pack_array(&o->pk, n);
	for (i = 0; i < n; i++)
		msgpack_pack_uint64(&o->pk, v[i]);
}

void
ipc_plugins_rep_begin(struct ipc_out *o, uint32_t n)
{
	msgpack_pack_array(&o->pk, n);
}

void
ipc_plugin_info_begin(struct ipc_out *o, const char *file, const char *name,
    const char *version, uint64_t abi)
{
	msgpack_pack_array(&o->pk, 8);
	ipcf_pack_str(&o->pk, file, strlen(file));
	ipcf_pack_str(&o->pk, name, strlen(name));
	ipcf_pack_str(&o->pk, version, strlen(version));
	msgpack_pack_uint64(&o->pk, abi);
}

void
ipc_plugin_info_end(struct ipc_out *o, const char *refused)
{
	if (refused == NULL)
		msgpack_pack_nil(&o->pk);
	else
		ipcf_pack_str(&o->pk, refused, strlen(refused));
}

void
ipc_str_list_begin(struct ipc_out *o, uint32_t n)
{
	msgpack_pack_array(&o->pk, n);
}
