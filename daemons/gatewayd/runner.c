/* SPDX-License-Identifier: MIT */
/*
 * runner.c - the unary methods of eventfold.Runner (proto/runner.proto):
 * Execute, GetState, Query and ListProjections. Each decodes its
 * protobuf request, sends the matching message (EXECUTE, GET_STATE,
 * QUERY, RUNNER_STATUS of libcommon/ipc_runner.h) to eventfold-runnerd
 * over the slot's nng context on runner.sock (call_peer), and
 * translates the reply. Nothing else: runnerd checks what it owns.
 *
 * Status mapping: runnerd's status becomes the gRPC code of its row in
 * EF_STATUSES (ipc_status_grpc), with runnerd's message as the details;
 * runnerd not connected or silent is UNAVAILABLE. The gateway refuses
 * (INVALID_ARGUMENT) only what cannot be encoded for the IPC: a
 * malformed protobuf, a required string that is empty or too long, a
 * limit or wait over the IPC's bounds.
 *
 * Query with min_position waits in runnerd. How long: wait_ms if given,
 * else until the call's deadline, never past the deadline and never
 * more than IPC_WAIT_MAX_MS; the round trip's own timeout is that wait
 * plus store_timeout_ms. So a gRPC deadline always bounds the wait, and
 * a position not reached in time is DEADLINE_EXCEEDED.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gatewayd.h"
#include "ipc_runner.h"
#include "log.h"
#include "runner.pb-c.h"

/*
 * An ipc_str of a protobuf string: NULL (nil) when empty. Fails (1,
 * error sent) when a required one is empty, or when it is over max
 * bytes or not UTF-8.
 */
static int
str_arg(struct call *c, const char *field, const char *s, size_t max,
    bool required, struct ipc_str *out)
{
	size_t n = s != NULL ? strlen(s) : 0;

	out->ptr = NULL;
	out->len = 0;
	if (n == 0) {
		if (required) {
			call_errorf(c, GW_INVALID_ARGUMENT, "%s must be set",
			    field);
			return 1;
		}
		return 0;
	}
	if (n > max) {
		call_errorf(c, GW_INVALID_ARGUMENT, "%s: at most %zu bytes",
		    field, max);
		return 1;
	}
	if (!utf8_valid(s, n)) {
		call_errorf(c, GW_INVALID_ARGUMENT, "%s: invalid UTF-8",
		    field);
		return 1;
	}
	out->ptr = s;
	out->len = (uint32_t)n;
	return 0;
}

/* Execute */

static void
execute_done(struct call *c, struct client_reply *rep)
{
	Eventfold__ExecuteResponse r = EVENTFOLD__EXECUTE_RESPONSE__INIT;
	struct ipc_exec_rep er;
	char sid[UUID_STR_LEN];

	if (CALL_REPLY_DECODE(c, rep, ipc_exec_rep_decode, &er,
	        "execute reply from eventfold-runnerd") != 0)
		return;
	r.stream_id = uuid_format(er.stream_id, sid);
	if (er.exists) {
		r.stream_case = EVENTFOLD__EXECUTE_RESPONSE__STREAM_VERSION;
		r.version = er.version;
	}
	r.event_count = er.count;
	if (er.count > 0) {
		r.first_position = er.first_pos;
		r.last_position = er.last_pos;
	}
	r.duplicate = er.duplicate;
	call_reply_msg(c, &r.base);
}

void
runner_execute(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__ExecuteRequest *r;
	struct ipc_exec_req er;

	memset(&er, 0, sizeof(er));
	if ((r = call_unpack(c, &eventfold__execute_request__descriptor, buf,
	         len)) == NULL)
		return;
	if (str_arg(c, "aggregate_type", r->aggregate_type, IPC_NAME_MAX, true,
	        &er.aggregate_type) ||
	    str_arg(c, "instance_id", r->instance_id, IPC_ID_MAX, true,
	        &er.instance_id) ||
	    str_arg(c, "command_type", r->command_type, 256, true, &er.type) ||
	    str_arg(c, "command_id", r->command_id, IPC_ID_MAX, true,
	        &er.command_id) ||
	    str_arg(c, "actor", r->actor, IPC_ID_MAX, false, &er.actor) ||
	    str_arg(c, "correlation_id", r->correlation_id, IPC_ID_MAX, false,
	        &er.correlation_id) ||
	    str_arg(c, "causation_id", r->causation_id, IPC_ID_MAX, false,
	        &er.causation_id) ||
	    str_arg(c, "source_device", r->source_device, IPC_ID_MAX, false,
	        &er.source_device))
		goto out;
	if (r->payload.len > IPC_PAYLOAD_MAX) {
		call_errorf(c, GW_INVALID_ARGUMENT,
		    "payload: at most %u bytes", IPC_PAYLOAD_MAX);
		goto out;
	}
	if (r->payload.len > 0) {
		er.payload = r->payload.data;
		er.payload_len = (uint32_t)r->payload.len;
	}
	ipc_exec_req_encode(call_request(c, EF_OP_EXECUTE), &er);
	eventfold__execute_request__free_unpacked(r, NULL);
	call_peer(c, execute_done, c->gw->conf.store_timeout_ms);
	return;
out:
	eventfold__execute_request__free_unpacked(r, NULL);
}

/* GetState */

static void
get_state_done(struct call *c, struct client_reply *rep)
{
	Eventfold__GetStateResponse r = EVENTFOLD__GET_STATE_RESPONSE__INIT;
	struct ipc_state_rep sr;
	char sid[UUID_STR_LEN];

	if (CALL_REPLY_DECODE(c, rep, ipc_state_rep_decode, &sr,
	        "get_state reply from eventfold-runnerd") != 0)
		return;
	r.stream_id = uuid_format(sr.stream_id, sid);
	if (sr.exists) {
		r.stream_case = EVENTFOLD__GET_STATE_RESPONSE__STREAM_VERSION;
		r.version = sr.version;
	}
	r.state.data = (uint8_t *)sr.state;
	r.state.len = sr.state_len;
	call_reply_msg(c, &r.base);
}

void
runner_get_state(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__GetStateRequest *r;
	struct ipc_state_req sr;

	if ((r = call_unpack(c, &eventfold__get_state_request__descriptor, buf,
	         len)) == NULL)
		return;
	if (str_arg(c, "aggregate_type", r->aggregate_type, IPC_NAME_MAX, true,
	        &sr.aggregate_type) ||
	    str_arg(c, "instance_id", r->instance_id, IPC_ID_MAX, true,
	        &sr.instance_id)) {
		eventfold__get_state_request__free_unpacked(r, NULL);
		return;
	}
	ipc_state_req_encode(call_request(c, EF_OP_GET_STATE), &sr);
	eventfold__get_state_request__free_unpacked(r, NULL);
	call_peer(c, get_state_done, c->gw->conf.store_timeout_ms);
}

/* Query */

static void
query_done(struct call *c, struct client_reply *rep)
{
	Eventfold__QueryResponse r = EVENTFOLD__QUERY_RESPONSE__INIT;
	Eventfold__Item it = EVENTFOLD__ITEM__INIT;
	struct ipc_query_rep qr;
	const uint8_t *k, *v;
	uint32_t kl, vl, i;
	const char *why = NULL;

	if (CALL_REPLY_DECODE(c, rep, ipc_query_rep_decode, &qr,
	        "query reply from eventfold-runnerd") != 0)
		return;
	/* QueryResponse by hand: position (1), items (2), next (3) */
	r.position = qr.position;
	if (qr.has_next) {
		r.next.data = (uint8_t *)qr.next;
		r.next.len = qr.next_len;
	}
	pbuf_pack(&c->out, &r.base);
	for (i = 0; i < qr.nitems; i++) {
		if (ipc_kv_decode(&qr.items->via.array.ptr[i], &k, &kl, &v,
		        &vl, &why) != 0) {
			call_finish(c, GW_INTERNAL,
			    "malformed item from "
			    "eventfold-runnerd");
			return;
		}
		it.key.data = (uint8_t *)k;
		it.key.len = kl;
		it.value.data = (uint8_t *)v;
		it.value.len = vl;
		pbuf_pack_field(&c->out, 2, &it.base);
	}
	call_reply(c);
}

/* The key, prefix or range of r in q; keys point into r. */
static void
query_selector(struct ipc_query_req *q, const Eventfold__QueryRequest *r)
{
	switch (r->selector_case) {
	case EVENTFOLD__QUERY_REQUEST__SELECTOR_KEY:
		q->mode = EF_QUERY_KEY;
		q->has_key = true;
		q->key = r->key.data;
		q->key_len = (uint32_t)r->key.len;
		break;
	case EVENTFOLD__QUERY_REQUEST__SELECTOR_PREFIX:
		q->mode = EF_QUERY_PREFIX;
		q->has_key = true;
		q->key = r->prefix.data;
		q->key_len = (uint32_t)r->prefix.len;
		break;
	case EVENTFOLD__QUERY_REQUEST__SELECTOR_RANGE:
		q->mode = EF_QUERY_RANGE;
		if (r->range != NULL && r->range->start.len > 0) {
			q->has_key = true;
			q->key = r->range->start.data;
			q->key_len = (uint32_t)r->range->start.len;
		}
		if (r->range != NULL && r->range->end.len > 0) {
			q->has_end = true;
			q->end = r->range->end.data;
			q->end_len = (uint32_t)r->range->end.len;
		}
		break;
	default:
		q->mode = EF_QUERY_RANGE; /* every key */
		break;
	}
}

void
runner_query(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__QueryRequest *r;
	struct ipc_query_req q;
	uint64_t left, wait = 0;

	memset(&q, 0, sizeof(q));
	if ((r = call_unpack(c, &eventfold__query_request__descriptor, buf,
	         len)) == NULL)
		return;
	if (str_arg(c, "projection", r->projection, IPC_NAME_MAX, true,
	        &q.projection))
		goto out;
	if (r->limit > IPC_QUERY_LIMIT) {
		call_errorf(c, GW_INVALID_ARGUMENT, "limit: at most %u",
		    IPC_QUERY_LIMIT);
		goto out;
	}
	if (r->wait_ms > IPC_WAIT_MAX_MS) {
		call_errorf(c, GW_INVALID_ARGUMENT, "wait_ms: at most %u",
		    IPC_WAIT_MAX_MS);
		goto out;
	}
	query_selector(&q, r);
	if ((q.has_key && q.key_len > IPC_KEY_MAX) ||
	    (q.has_end && q.end_len > IPC_KEY_MAX) ||
	    r->after.len > IPC_KEY_MAX) {
		call_errorf(c, GW_INVALID_ARGUMENT,
		    "keys are at most %u bytes", IPC_KEY_MAX);
		goto out;
	}
	if (r->after.len > 0) {
		q.has_after = true;
		q.after = r->after.data;
		q.after_len = (uint32_t)r->after.len;
	}
	q.limit = r->limit;
	if (r->wait_case == EVENTFOLD__QUERY_REQUEST__WAIT_MIN_POSITION) {
		q.has_min_position = true;
		q.min_position = r->min_position;
		/* wait_ms, else until the deadline; never past it */
		wait = r->wait_ms != 0 ? r->wait_ms : IPC_WAIT_MAX_MS;
		left = call_ms_left(c);
		if (left < wait)
			wait = left;
		q.wait_ms = wait;
	}
	ipc_query_req_encode(call_request(c, EF_OP_QUERY), &q);
	eventfold__query_request__free_unpacked(r, NULL);
	call_peer(c, query_done, c->gw->conf.store_timeout_ms + wait);
	return;
out:
	eventfold__query_request__free_unpacked(r, NULL);
}

/* ListProjections */

/* Appends one fold's ProjectionStatus to c->out. */
static void
pack_fold(struct call *c, const struct ipc_fold_info *fi)
{
	Eventfold__ProjectionStatus ps;
	char name[IPC_NAME_MAX + 1], plugin[4097], state[64], err[4097];

#define CSTR(dst, s)                                                          \
	snprintf((dst), sizeof(dst), "%.*s",                                  \
	    (int)((s).ptr != NULL ? (s).len : 0),                             \
	    (s).ptr != NULL ? (s).ptr : "")
	eventfold__projection_status__init(&ps);
	CSTR(name, fi->name);
	CSTR(plugin, fi->plugin);
	CSTR(state, fi->state);
	CSTR(err, fi->error);
	ps.name = name;
	ps.plugin = plugin;
	ps.kind = fi->kind == EF_FOLD_MANAGER ?
	    EVENTFOLD__PROJECTION_STATUS__KIND__PROCESS_MANAGER :
	    EVENTFOLD__PROJECTION_STATUS__KIND__PROJECTION;
	ps.state = state;
	ps.position = fi->position;
	if (fi->has_lag) {
		ps.lag_known_case =
		    EVENTFOLD__PROJECTION_STATUS__LAG_KNOWN_LAG;
		ps.lag = fi->lag;
	}
	ps.events_per_s = fi->events_per_s;
	if (fi->has_error) {
		ps.failed_case =
		    EVENTFOLD__PROJECTION_STATUS__FAILED_ERROR_POSITION;
		ps.error_position = fi->error_position;
	}
	ps.error = err;
	if (fi->rebuilding) {
		ps.rebuild_case =
		    EVENTFOLD__PROJECTION_STATUS__REBUILD_REBUILD_POSITION;
		ps.rebuild_position = fi->rebuild_position;
	}
	ps.dead_letters = fi->dead_letters;
	pbuf_pack_field(&c->out, 1, &ps.base);
#undef CSTR
}

static void
list_projections_done(struct call *c, struct client_reply *rep)
{
	Eventfold__ListProjectionsResponse r =
	    EVENTFOLD__LIST_PROJECTIONS_RESPONSE__INIT;
	struct ipc_runner_status_rep sr;
	struct ipc_fold_info fi;
	const char *why = NULL;
	uint32_t i;

	if (CALL_REPLY_DECODE(c, rep, ipc_runner_status_rep_decode, &sr,
	        "runner_status reply from eventfold-runnerd") != 0)
		return;
	if (sr.has_head) {
		r.head_known_case =
		    EVENTFOLD__LIST_PROJECTIONS_RESPONSE__HEAD_KNOWN_HEAD;
		r.head = sr.head;
	}
	pbuf_pack(&c->out, &r.base);
	for (i = 0; i < sr.nfolds; i++) {
		if (ipc_fold_info_decode(&sr.folds->via.array.ptr[i], &fi,
		        &why) != 0) {
			call_finish(c, GW_INTERNAL,
			    "malformed fold status "
			    "from eventfold-runnerd");
			return;
		}
		pack_fold(c, &fi);
	}
	call_reply(c);
}

void
runner_list_projections(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__ListProjectionsRequest *r;

	r = call_unpack(c, &eventfold__list_projections_request__descriptor,
	    buf, len);
	if (r == NULL)
		return;
	eventfold__list_projections_request__free_unpacked(r, NULL);
	ipc_nil(call_request(c, EF_OP_RUNNER_STATUS));
	call_peer(c, list_projections_done, c->gw->conf.store_timeout_ms);
}
