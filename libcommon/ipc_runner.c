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

static int
get_optu64(const msgpack_object *o, bool *has, uint64_t *v, const char *name,
    const char **why)
{
	*has = false;
	*v = 0;
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	*has = true;
	return ipcf_u64(o, v, name, why);
}

/* A string of 1..max bytes. */
static int
get_name(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why)
{
	if (ipcf_str(o, s, max, name, why) != 0)
		return -1; /* *why set, perhaps with the reason */
	if (s->len == 0)
		return fail(why, name);
	return 0;
}

static int
get_optstr(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why)
{
	s->ptr = NULL;
	s->len = 0;
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	return ipcf_str(o, s, max, name, why);
}

static int
get_bin(const msgpack_object *o, const uint8_t **p, uint32_t *len,
    uint32_t max, const char *name, const char **why)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > max)
		return fail(why, name);
	*p = (const uint8_t *)o->via.bin.ptr;
	*len = o->via.bin.size;
	return 0;
}

static int
get_optbin(const msgpack_object *o, bool *has, const uint8_t **p,
    uint32_t *len, uint32_t max, const char *name, const char **why)
{
	*has = false;
	*p = NULL;
	*len = 0;
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	*has = true;
	return get_bin(o, p, len, max, name, why);
}

#define FIELD(x)                                                              \
	do {                                                                  \
		if ((x) != 0)                                                 \
			return EF_S_BAD_REQUEST;                              \
	} while (0)
#define F(b, i) (&(b)->via.array.ptr[(i)])

struct ipc_str
ipc_cstr(const char *s)
{
	struct ipc_str r = { s, s ? (uint32_t)strlen(s) : 0 };

	return r;
}

int
ipc_exec_req_decode(const msgpack_object *b, struct ipc_exec_req *r,
    const char **why)
{
	bool has;

	memset(r, 0, sizeof(*r));
	FIELD(ipcf_array(b, 9, "execute body", why));
	FIELD(get_name(F(b, 0), &r->aggregate_type, IPC_NAME_MAX,
	    "aggregate_type", why));
	FIELD(get_name(F(b, 1), &r->instance_id, IPC_ID_MAX, "instance_id",
	    why));
	FIELD(get_name(F(b, 2), &r->type, 256, "command_type", why));
	FIELD(get_optbin(F(b, 3), &has, &r->payload, &r->payload_len,
	    IPC_PAYLOAD_MAX, "payload", why));
	FIELD(
	    get_name(F(b, 4), &r->command_id, IPC_ID_MAX, "command_id", why));
	FIELD(get_optstr(F(b, 5), &r->actor, IPC_ID_MAX, "actor", why));
	FIELD(get_optstr(F(b, 6), &r->correlation_id, IPC_ID_MAX,
	    "correlation_id", why));
	FIELD(get_optstr(F(b, 7), &r->causation_id, IPC_ID_MAX, "causation_id",
	    why));
	FIELD(get_optstr(F(b, 8), &r->source_device, IPC_ID_MAX,
	    "source_device", why));
	return 0;
}

int
ipc_exec_rep_decode(const msgpack_object *b, struct ipc_exec_rep *r,
    const char **why)
{
	bool h1, h2;

	memset(r, 0, sizeof(*r));
	FIELD(ipcf_array(b, 6, "execute reply", why));
	FIELD(ipcf_uuid(F(b, 0), r->stream_id, "stream_id", why));
	FIELD(get_optu64(F(b, 1), &r->exists, &r->version, "version", why));
	FIELD(ipcf_u64(F(b, 2), &r->count, "event_count", why));
	FIELD(get_optu64(F(b, 3), &h1, &r->first_pos, "first_position", why));
	FIELD(get_optu64(F(b, 4), &h2, &r->last_pos, "last_position", why));
	FIELD(ipcf_bool(F(b, 5), &r->duplicate, "duplicate", why));
	if ((r->count > 0) != h1 || h1 != h2 || (r->count > 0 && !r->exists))
		FIELD(fail(why, "event_count"));
	return 0;
}

int
ipc_state_req_decode(const msgpack_object *b, struct ipc_state_req *r,
    const char **why)
{
	FIELD(ipcf_array(b, 2, "get_state body", why));
	FIELD(get_name(F(b, 0), &r->aggregate_type, IPC_NAME_MAX,
	    "aggregate_type", why));
	FIELD(get_name(F(b, 1), &r->instance_id, IPC_ID_MAX, "instance_id",
	    why));
	return 0;
}

int
ipc_state_rep_decode(const msgpack_object *b, struct ipc_state_rep *r,
    const char **why)
{
	FIELD(ipcf_array(b, 3, "get_state reply", why));
	FIELD(ipcf_uuid(F(b, 0), r->stream_id, "stream_id", why));
	FIELD(get_optu64(F(b, 1), &r->exists, &r->version, "version", why));
	FIELD(get_bin(F(b, 2), &r->state, &r->state_len, IPC_MAX_MSG, "state",
	    why));
	return 0;
}

int
ipc_query_req_decode(const msgpack_object *b, struct ipc_query_req *r,
    const char **why)
{
	uint64_t mode;

	memset(r, 0, sizeof(*r));
	FIELD(ipcf_array(b, 8, "query body", why));
	FIELD(get_name(F(b, 0), &r->projection, IPC_NAME_MAX, "projection",
	    why));
	FIELD(ipcf_u64(F(b, 1), &mode, "mode", why));
	if (mode > EF_QUERY_RANGE)
		FIELD(fail(why, "mode"));
	r->mode = (uint8_t)mode;
	FIELD(get_optbin(F(b, 2), &r->has_key, &r->key, &r->key_len,
	    IPC_KEY_MAX, "key", why));
	FIELD(get_optbin(F(b, 3), &r->has_end, &r->end, &r->end_len,
	    IPC_KEY_MAX, "end", why));
	FIELD(get_optbin(F(b, 4), &r->has_after, &r->after, &r->after_len,
	    IPC_KEY_MAX, "after", why));
	FIELD(ipcf_u64(F(b, 5), &r->limit, "limit", why));
	if (r->limit > IPC_QUERY_LIMIT)
		FIELD(fail(why, "limit"));
	FIELD(get_optu64(F(b, 6), &r->has_min_position, &r->min_position,
	    "min_position", why));
	FIELD(ipcf_u64(F(b, 7), &r->wait_ms, "wait_ms", why));
	if (r->wait_ms > IPC_WAIT_MAX_MS)
		FIELD(fail(why, "wait_ms"));
	if (r->mode == EF_QUERY_KEY && (!r->has_key || r->key_len == 0))
		FIELD(fail(why, "key"));
	if (r->mode == EF_QUERY_PREFIX && !r->has_key)
		FIELD(fail(why, "key"));
	return 0;
}

int
ipc_kv_decode(const msgpack_object *o, const uint8_t **k, uint32_t *kl,
    const uint8_t **v, uint32_t *vl, const char **why)
{
	FIELD(ipcf_array(o, 2, "item", why));
	FIELD(get_bin(F(o, 0), k, kl, IPC_KEY_MAX, "key", why));
	FIELD(get_bin(F(o, 1), v, vl, IPC_MAX_MSG, "value", why));
	return 0;
}

int
ipc_query_rep_decode(const msgpack_object *b, struct ipc_query_rep *r,
    const char **why)
{
	FIELD(ipcf_array(b, 3, "query reply", why));
	FIELD(ipcf_u64(F(b, 0), &r->position, "position", why));
	FIELD(ipcf_list(F(b, 1), IPC_QUERY_LIMIT, "items", why));
	r->items = F(b, 1);
	r->nitems = r->items->via.array.size;
	FIELD(get_optbin(F(b, 2), &r->has_next, &r->next, &r->next_len,
	    IPC_KEY_MAX, "next", why));
	return 0;
}

int
ipc_fold_info_decode(const msgpack_object *o, struct ipc_fold_info *f,
    const char **why)
{
	uint64_t kind;

	memset(f, 0, sizeof(*f));
	FIELD(ipcf_array(o, 11, "fold", why));
	FIELD(ipcf_str(F(o, 0), &f->name, IPC_NAME_MAX, "name", why));
	FIELD(ipcf_str(F(o, 1), &f->plugin, IPC_MAX_STRLEN, "plugin", why));
	FIELD(ipcf_u64(F(o, 2), &kind, "kind", why));
	if (kind > EF_FOLD_MANAGER)
		FIELD(fail(why, "kind"));
	f->kind = (uint8_t)kind;
	FIELD(ipcf_str(F(o, 3), &f->state, IPC_NAME_MAX, "state", why));
	FIELD(ipcf_u64(F(o, 4), &f->position, "position", why));
	FIELD(get_optu64(F(o, 5), &f->has_lag, &f->lag, "lag", why));
	FIELD(ipcf_u64(F(o, 6), &f->events_per_s, "events_per_s", why));
	FIELD(get_optu64(F(o, 7), &f->has_error, &f->error_position,
	    "error_position", why));
	FIELD(get_optstr(F(o, 8), &f->error, IPC_MAX_STRLEN, "error", why));
	FIELD(get_optu64(F(o, 9), &f->rebuilding, &f->rebuild_position,
	    "rebuild_position", why));
	FIELD(ipcf_u64(F(o, 10), &f->dead_letters, "dead_letters", why));
	return 0;
}

int
ipc_agg_info_decode(const msgpack_object *o, struct ipc_agg_info *a,
    const char **why)
{
	FIELD(ipcf_array(o, 4, "aggregate", why));
	FIELD(ipcf_str(F(o, 0), &a->type, IPC_NAME_MAX, "type", why));
	FIELD(ipcf_str(F(o, 1), &a->plugin, IPC_MAX_STRLEN, "plugin", why));
	FIELD(ipcf_u64(F(o, 2), &a->cached, "cached", why));
	FIELD(ipcf_u64(F(o, 3), &a->commands, "commands", why));
	return 0;
}

int
ipc_runner_status_rep_decode(const msgpack_object *b,
    struct ipc_runner_status_rep *r, const char **why)
{
	FIELD(ipcf_array(b, 6, "runner status", why));
	FIELD(ipcf_u64(F(b, 0), &r->uptime_ms, "uptime_ms", why));
	FIELD(get_optu64(F(b, 1), &r->has_head, &r->head, "head", why));
	FIELD(ipcf_list(F(b, 2), 65536, "folds", why));
	r->folds = F(b, 2);
	r->nfolds = r->folds->via.array.size;
	FIELD(ipcf_list(F(b, 3), 65536, "aggregates", why));
	r->aggs = F(b, 3);
	r->naggs = r->aggs->via.array.size;
	FIELD(ipcf_u64(F(b, 4), &r->lmdb_map_bytes, "lmdb_map_bytes", why));
	FIELD(ipcf_u64(F(b, 5), &r->lmdb_map_grows, "lmdb_map_grows", why));
	return 0;
}

int
ipc_name_req_decode(const msgpack_object *b, struct ipc_name_req *r,
    const char **why)
{
	FIELD(ipcf_array(b, 1, "body", why));
	FIELD(get_name(F(b, 0), &r->name, IPC_NAME_MAX, "name", why));
	return 0;
}

int
ipc_replay_req_decode(const msgpack_object *b, struct ipc_replay_req *r,
    const char **why)
{
	FIELD(ipcf_array(b, 3, "replay body", why));
	FIELD(get_name(F(b, 0), &r->projection, IPC_NAME_MAX, "projection",
	    why));
	FIELD(ipcf_u64(F(b, 1), &r->until, "until", why));
	FIELD(ipcf_u64(F(b, 2), &r->limit, "limit", why));
	if (r->limit > IPC_QUERY_LIMIT)
		FIELD(fail(why, "limit"));
	return 0;
}

int
ipc_replay_rep_decode(const msgpack_object *b, struct ipc_replay_rep *r,
    const char **why)
{
	FIELD(ipcf_array(b, 3, "replay reply", why));
	FIELD(ipcf_u64(F(b, 0), &r->position, "position", why));
	FIELD(ipcf_list(F(b, 1), IPC_QUERY_LIMIT, "items", why));
	r->items = F(b, 1);
	r->nitems = r->items->via.array.size;
	FIELD(ipcf_bool(F(b, 2), &r->truncated, "truncated", why));
	return 0;
}

int
ipc_dl_req_decode(const msgpack_object *b, struct ipc_dl_req *r,
    const char **why)
{
	uint64_t a;

	FIELD(ipcf_array(b, 3, "dead_letters body", why));
	FIELD(ipcf_u64(F(b, 0), &a, "action", why));
	if (a > EF_DL_DROP)
		FIELD(fail(why, "action"));
	r->action = (uint8_t)a;
	FIELD(get_optstr(F(b, 1), &r->manager, IPC_NAME_MAX, "manager", why));
	FIELD(get_optstr(F(b, 2), &r->command_id, IPC_ID_MAX, "command_id",
	    why));
	if (r->action != EF_DL_LIST && r->manager.ptr == NULL)
		FIELD(fail(why, "manager"));
	return 0;
}

int
ipc_dead_letter_decode(const msgpack_object *o, struct ipc_dead_letter *d,
    const char **why)
{
	FIELD(ipcf_array(o, 10, "dead letter", why));
	FIELD(ipcf_str(F(o, 0), &d->manager, IPC_NAME_MAX, "manager", why));
	FIELD(
	    ipcf_str(F(o, 1), &d->command_id, IPC_ID_MAX, "command_id", why));
	FIELD(ipcf_str(F(o, 2), &d->aggregate_type, IPC_NAME_MAX,
	    "aggregate_type", why));
	FIELD(ipcf_str(F(o, 3), &d->instance_id, IPC_ID_MAX, "instance_id",
	    why));
	FIELD(ipcf_str(F(o, 4), &d->type, 256, "type", why));
	FIELD(get_bin(F(o, 5), &d->payload, &d->payload_len, IPC_MAX_MSG,
	    "payload", why));
	FIELD(ipcf_str(F(o, 6), &d->error, IPC_MAX_STRLEN, "error", why));
	FIELD(ipcf_u64(F(o, 7), &d->attempts, "attempts", why));
	FIELD(ipcf_u64(F(o, 8), &d->event_position, "event_position", why));
	FIELD(ipcf_u64(F(o, 9), &d->parked_at, "parked_at", why));
	return 0;
}

int
ipc_dl_list_decode(const msgpack_object *b, const msgpack_object **list,
    uint32_t *n, const char **why)
{
	FIELD(ipcf_array(b, 1, "dead_letters reply", why));
	FIELD(ipcf_list(F(b, 0), 1u << 20, "dead letters", why));
	*list = F(b, 0);
	*n = (*list)->via.array.size;
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
	    get_optstr(F(o, 7), &p->refused, IPC_MAX_STRLEN, "refused", why));
	return 0;
}

int
ipc_plugins_rep_decode(const msgpack_object *b, const msgpack_object **list,
    uint32_t *n, const char **why)
{
	FIELD(ipcf_list(b, 65536, "plugins", why));
	*list = b;
	*n = b->via.array.size;
	return 0;
}

/* Encoders. */

static void
pack_optstr(msgpack_packer *pk, const struct ipc_str *s)
{
	if (s->ptr == NULL)
		msgpack_pack_nil(pk);
	else
		ipcf_pack_str(pk, s->ptr, s->len);
}

static void
pack_optbin(msgpack_packer *pk, bool has, const void *p, size_t len)
{
	if (!has)
		msgpack_pack_nil(pk);
	else
		ipcf_pack_bin(pk, p, len);
}

static void
pack_optu64(msgpack_packer *pk, bool has, uint64_t v)
{
	if (!has)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, v);
}

static void
pack_bool(msgpack_packer *pk, bool v)
{
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void
ipc_str_encode(struct ipc_out *o, const char *s, size_t len)
{
	ipcf_pack_str(&o->pk, s, len);
}

void
ipc_exec_req_encode(struct ipc_out *o, const struct ipc_exec_req *r)
{
	msgpack_packer *pk = &o->pk;

	msgpack_pack_array(pk, 9);
	ipcf_pack_str(pk, r->aggregate_type.ptr, r->aggregate_type.len);
	ipcf_pack_str(pk, r->instance_id.ptr, r->instance_id.len);
	ipcf_pack_str(pk, r->type.ptr, r->type.len);
	pack_optbin(pk, r->payload != NULL, r->payload, r->payload_len);
	ipcf_pack_str(pk, r->command_id.ptr, r->command_id.len);
	pack_optstr(pk, &r->actor);
	pack_optstr(pk, &r->correlation_id);
	pack_optstr(pk, &r->causation_id);
	pack_optstr(pk, &r->source_device);
}

void
ipc_exec_rep_encode(struct ipc_out *o, const struct ipc_exec_rep *r)
{
	msgpack_packer *pk = &o->pk;

	msgpack_pack_array(pk, 6);
	ipcf_pack_bin(pk, r->stream_id, UUID_LEN);
	pack_optu64(pk, r->exists, r->version);
	msgpack_pack_uint64(pk, r->count);
	pack_optu64(pk, r->count > 0, r->first_pos);
	pack_optu64(pk, r->count > 0, r->last_pos);
	pack_bool(pk, r->duplicate);
}

void
ipc_state_req_encode(struct ipc_out *o, const struct ipc_state_req *r)
{
	msgpack_pack_array(&o->pk, 2);
	ipcf_pack_str(&o->pk, r->aggregate_type.ptr, r->aggregate_type.len);
	ipcf_pack_str(&o->pk, r->instance_id.ptr, r->instance_id.len);
}

void
ipc_state_rep_encode(struct ipc_out *o, const struct ipc_state_rep *r)
{
	msgpack_pack_array(&o->pk, 3);
	ipcf_pack_bin(&o->pk, r->stream_id, UUID_LEN);
	pack_optu64(&o->pk, r->exists, r->version);
	ipcf_pack_bin(&o->pk, r->state, r->state_len);
}

void
ipc_query_req_encode(struct ipc_out *o, const struct ipc_query_req *r)
{
	msgpack_packer *pk = &o->pk;

	msgpack_pack_array(pk, 8);
	ipcf_pack_str(pk, r->projection.ptr, r->projection.len);
	msgpack_pack_uint8(pk, r->mode);
	pack_optbin(pk, r->has_key, r->key, r->key_len);
	pack_optbin(pk, r->has_end, r->end, r->end_len);
	pack_optbin(pk, r->has_after, r->after, r->after_len);
	msgpack_pack_uint64(pk, r->limit);
	pack_optu64(pk, r->has_min_position, r->min_position);
	msgpack_pack_uint64(pk, r->wait_ms);
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
	pack_optbin(&o->pk, next != NULL, next, next_len);
}

void
ipc_replay_rep_begin(struct ipc_out *o, uint64_t position, uint32_t n)
{
	ipc_query_rep_begin(o, position, n);
}

void
ipc_replay_rep_end(struct ipc_out *o, bool truncated)
{
	pack_bool(&o->pk, truncated);
}

void
ipc_runner_status_begin(struct ipc_out *o, uint64_t uptime_ms, bool has_head,
    uint64_t head, uint32_t nfolds)
{
	msgpack_pack_array(&o->pk, 6);
	msgpack_pack_uint64(&o->pk, uptime_ms);
	pack_optu64(&o->pk, has_head, head);
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
	pack_optu64(pk, f->has_lag, f->lag);
	msgpack_pack_uint64(pk, f->events_per_s);
	pack_optu64(pk, f->has_error, f->error_position);
	if (f->has_error)
		ipcf_pack_str(pk, f->error.ptr, f->error.len);
	else
		msgpack_pack_nil(pk);
	pack_optu64(pk, f->rebuilding, f->rebuild_position);
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
ipc_agg_info_encode(struct ipc_out *o, const struct ipc_agg_info *a)
{
	msgpack_pack_array(&o->pk, 4);
	ipcf_pack_str(&o->pk, a->type.ptr, a->type.len);
	ipcf_pack_str(&o->pk, a->plugin.ptr, a->plugin.len);
	msgpack_pack_uint64(&o->pk, a->cached);
	msgpack_pack_uint64(&o->pk, a->commands);
}

void
ipc_name_req_encode(struct ipc_out *o, const struct ipc_name_req *r)
{
	msgpack_pack_array(&o->pk, 1);
	ipcf_pack_str(&o->pk, r->name.ptr, r->name.len);
}

void
ipc_replay_req_encode(struct ipc_out *o, const struct ipc_replay_req *r)
{
	msgpack_pack_array(&o->pk, 3);
	ipcf_pack_str(&o->pk, r->projection.ptr, r->projection.len);
	msgpack_pack_uint64(&o->pk, r->until);
	msgpack_pack_uint64(&o->pk, r->limit);
}

void
ipc_dl_req_encode(struct ipc_out *o, const struct ipc_dl_req *r)
{
	msgpack_pack_array(&o->pk, 3);
	msgpack_pack_uint8(&o->pk, r->action);
	pack_optstr(&o->pk, &r->manager);
	pack_optstr(&o->pk, &r->command_id);
}

void
ipc_dl_list_begin(struct ipc_out *o, uint32_t n)
{
	msgpack_pack_array(&o->pk, 1);
	msgpack_pack_array(&o->pk, n);
}

void
ipc_dead_letter_encode(struct ipc_out *o, const struct ipc_dead_letter *d)
{
	msgpack_packer *pk = &o->pk;

	msgpack_pack_array(pk, 10);
	ipcf_pack_str(pk, d->manager.ptr, d->manager.len);
	ipcf_pack_str(pk, d->command_id.ptr, d->command_id.len);
	ipcf_pack_str(pk, d->aggregate_type.ptr, d->aggregate_type.len);
	ipcf_pack_str(pk, d->instance_id.ptr, d->instance_id.len);
	ipcf_pack_str(pk, d->type.ptr, d->type.len);
	ipcf_pack_bin(pk, d->payload, d->payload_len);
	ipcf_pack_str(pk, d->error.ptr, d->error.len);
	msgpack_pack_uint64(pk, d->attempts);
	msgpack_pack_uint64(pk, d->event_position);
	msgpack_pack_uint64(pk, d->parked_at);
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
