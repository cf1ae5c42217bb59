/* SPDX-License-Identifier: MIT */
/*
 * rpc.c - the unary methods of eventfold.EventStore: Append, ReadStream,
 * ReadAll and ListStreams. Each decodes its protobuf request, asks
 * eventfold-stored over the slot's nng context (call_store; Appends are
 * coalesced with others into APPEND_MANY messages, call_store_append),
 * and builds
 * the protobuf reply; reads page through stored (which caps one reply)
 * until max_count, the end of the log or stream, or max_response_bytes.
 *
 * Status mapping: a stored status becomes the gRPC code of its row in
 * EF_STATUSES, with stored's message as the details. The gateway itself
 * checks only what stored cannot: the protobuf and its UTF-8, and that
 * expected_version is set (between the stream id and the events, as
 * the contract orders the checks).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventfold.pb-c.h"
#include "gatewayd.h"
#include "pbevent.h"
#include "log.h"

int
rpc_pack_event(struct pbuf *pb, uint32_t field, const struct ef_event *ev,
    size_t limit)
{
	struct pbevent pe;
	size_t sz;

	sz = pbevent_init(&pe, ev);
	if (limit != 0 && pb->len > 0 && pb->len + sz + 11 > limit)
		return 1;
	if (field != 0)
		pbuf_field(pb, field, sz);
	pbuf_reserve(pb, sz);
	pb->len += pbevent_pack(&pe, pb->buf + pb->len);
	return 0;
}

/* Append */

static void
append_done(struct call *c, struct client_reply *rep)
{
	Eventfold__AppendResponse r = EVENTFOLD__APPEND_RESPONSE__INIT;
	struct ipc_append_rep ar;

	if (CALL_REPLY_DECODE(c, rep, ipc_append_rep_decode, &ar,
	        "append reply from eventfold-stored") != 0)
		return;
	metrics_append(c->gw, gw_mono_ns() - c->t0,
	    ar.last_pos - ar.first_pos + 1, ar.last_pos);
	r.first_stream_version = ar.first_version;
	r.last_stream_version = ar.last_version;
	r.first_global_position = ar.first_pos;
	r.last_global_position = ar.last_pos;
	call_reply_msg(c, &r.base);
}

/*
 * Checks an AppendRequest in the gateway's order: UTF-8 of the strings,
 * 1. the stream id, 2. the expected version, the count; the rest is
 * stored's, in the contract's order. 0, or -EINVAL with the call
 * finished.
 */
static int
append_check(struct call *c, const Eventfold__AppendRequest *r)
{
	uint8_t sid[UUID_LEN];
	size_t i;

	if (!utf8_valid(r->stream_id, strlen(r->stream_id))) {
		call_finish(c, GW_INVALID_ARGUMENT,
		    "invalid stream_id: "
		    "invalid UTF-8");
		return -EINVAL;
	}
	for (i = 0; i < r->n_events; i++)
		if (!utf8_valid(r->events[i]->event_id,
		        strlen(r->events[i]->event_id)) ||
		    !utf8_valid(r->events[i]->event_type,
		        strlen(r->events[i]->event_type))) {
			call_errorf(c, GW_INVALID_ARGUMENT,
			    "event %zu: invalid "
			    "UTF-8 in a string field",
			    i);
			return -EINVAL;
		}
	if (call_stream_id(c, r->stream_id, sid) != 0)
		return -EINVAL;
	if (r->expected_version == NULL) {
		call_finish(c, GW_INVALID_ARGUMENT,
		    "expected_version is "
		    "required");
		return -EINVAL;
	}
	if (r->expected_version->kind_case ==
	    EVENTFOLD__EXPECTED_VERSION__KIND__NOT_SET) {
		call_finish(c, GW_INVALID_ARGUMENT,
		    "expected_version.kind is "
		    "required");
		return -EINVAL;
	}
	if (r->n_events > IPC_MAX_EVENTS) {
		call_errorf(c, GW_INVALID_ARGUMENT,
		    "at most %u events per "
		    "append",
		    IPC_MAX_EVENTS);
		return -EINVAL;
	}
	return 0;
}

/*
 * Fills ar from a checked r; ar's strings and events point into r,
 * ar->events is malloc'd (the caller frees it). 0 or -ENOMEM.
 */
static int
append_fill(struct ipc_append_req *ar, const Eventfold__AppendRequest *r)
{
	size_t i;

	memset(ar, 0, sizeof(*ar));
	ar->stream_id.ptr = r->stream_id;
	ar->stream_id.len = (uint32_t)strlen(r->stream_id);
	switch (r->expected_version->kind_case) {
	case EVENTFOLD__EXPECTED_VERSION__KIND_NO_STREAM:
		ar->kind = EF_EXPECT_NO_STREAM;
		break;
	case EVENTFOLD__EXPECTED_VERSION__KIND_EXACT:
		ar->kind = EF_EXPECT_EXACT;
		ar->version = r->expected_version->exact;
		break;
	default:
		ar->kind = EF_EXPECT_ANY;
		break;
	}
	ar->nevents = (uint32_t)r->n_events;
	if (ar->nevents > 0 &&
	    (ar->events = calloc(ar->nevents, sizeof(*ar->events))) == NULL)
		return -ENOMEM;
	for (i = 0; i < r->n_events; i++) {
		const Eventfold__ProposedEvent *p = r->events[i];

		ar->events[i].event_id.ptr = p->event_id;
		ar->events[i].event_id.len = (uint32_t)strlen(p->event_id);
		ar->events[i].type.ptr = p->event_type;
		ar->events[i].type.len = (uint32_t)strlen(p->event_type);
		ar->events[i].metadata = p->metadata.data;
		ar->events[i].metadata_len = (uint32_t)p->metadata.len;
		ar->events[i].payload = p->payload.data;
		ar->events[i].payload_len = (uint32_t)p->payload.len;
	}
	return 0;
}

void
rpc_append(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__AppendRequest *r;
	struct ipc_append_req ar;

	if ((r = call_unpack(c, &eventfold__append_request__descriptor, buf,
	         len)) == NULL)
		return;
	if (append_check(c, r) != 0)
		goto out;
	if (append_fill(&ar, r) != 0) {
		call_finish(c, GW_INTERNAL, "out of memory");
		goto out;
	}
	/* the body only: the pipeline puts it in an APPEND_MANY */
	ipc_out_reset(&c->req);
	ipc_append_req_encode(&c->req, &ar);
	free(ar.events);
	eventfold__append_request__free_unpacked(r, NULL);
	call_store_append(c, append_done);
	return;
out:
	eventfold__append_request__free_unpacked(r, NULL);
}

/* ReadStream and ReadAll: page until done. */

static void read_next(struct call *c, int op);

static void
read_page_done(struct call *c, struct client_reply *rep, int op)
{
	struct ipc_read_rep rr;
	struct ef_event ev;
	const char *why = NULL;
	uint32_t i;
	int full = 0;

	if (CALL_REPLY_DECODE(c, rep, ipc_read_rep_decode, &rr,
	        "read reply from eventfold-stored") != 0)
		return;
	for (i = 0; i < rr.nevents && c->remaining > 0; i++) {
		if (ipc_event_decode(&rr.events->via.array.ptr[i], &ev,
		        &why) != 0) {
			call_finish(c, GW_INTERNAL,
			    "malformed event from "
			    "eventfold-stored");
			return;
		}
		if (rpc_pack_event(&c->out, 1, &ev,
		        c->gw->conf.max_response_bytes)) {
			full = 1;
			break;
		}
		c->remaining--;
		if (op == EF_OP_READ_ALL)
			c->from = ev.global_position + 1;
		else
			c->from = ev.stream_version + 1;
	}
	if (full || c->remaining == 0 || rr.nevents == 0 ||
	    (op == EF_OP_READ_ALL && c->from >= rr.head) ||
	    (op == EF_OP_READ_STREAM &&
	        (!rr.has_last_version || c->from > rr.last_version))) {
		call_reply(c);
		return;
	}
	read_next(c, op);
}

static void
read_all_done(struct call *c, struct client_reply *rep)
{
	read_page_done(c, rep, EF_OP_READ_ALL);
}

static void
read_stream_done(struct call *c, struct client_reply *rep)
{
	read_page_done(c, rep, EF_OP_READ_STREAM);
}

static void
read_next(struct call *c, int op)
{
	call_request(c, op);
	if (op == EF_OP_READ_ALL) {
		struct ipc_read_all_req r = { c->from, c->remaining,
			EF_FORWARD };

		ipc_read_all_req_encode(&c->req, &r);
		call_store(c, read_all_done);
	} else {
		struct ipc_read_stream_req r;

		r.stream_id.ptr = c->stream_id;
		r.stream_id.len = (uint32_t)strlen(c->stream_id);
		r.from = c->from;
		r.max_count = c->remaining;
		r.direction = EF_FORWARD;
		ipc_read_stream_req_encode(&c->req, &r);
		call_store(c, read_stream_done);
	}
}

void
rpc_read_stream(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__ReadStreamRequest *r;
	uint8_t sid[UUID_LEN];

	__atomic_add_fetch(&c->gw->mx.reads_read_stream, 1, __ATOMIC_RELAXED);
	if ((r = call_unpack(c, &eventfold__read_stream_request__descriptor,
	         buf, len)) == NULL)
		return;
	if (call_stream_id(c, r->stream_id, sid) != 0) {
		eventfold__read_stream_request__free_unpacked(r, NULL);
		return;
	}
	uuid_format(sid, c->stream_id);
	c->from = r->from_version;
	c->remaining = r->max_count;
	c->out.len = 0;
	eventfold__read_stream_request__free_unpacked(r, NULL);
	/* even max_count 0 asks stored, so a missing stream is NOT_FOUND */
	read_next(c, EF_OP_READ_STREAM);
}

void
rpc_read_all(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__ReadAllRequest *r;

	__atomic_add_fetch(&c->gw->mx.reads_read_all, 1, __ATOMIC_RELAXED);
	if ((r = call_unpack(c, &eventfold__read_all_request__descriptor, buf,
	         len)) == NULL)
		return;
	c->from = r->from_position;
	c->remaining = r->max_count;
	c->out.len = 0;
	eventfold__read_all_request__free_unpacked(r, NULL);
	if (c->remaining == 0) {
		call_reply(c);
		return;
	}
	read_next(c, EF_OP_READ_ALL);
}

/* ListStreams: every stream, sorted by id, paged through stored. */

static void list_next(struct call *c);

static void
list_done(struct call *c, struct client_reply *rep)
{
	Eventfold__StreamInfo si = EVENTFOLD__STREAM_INFO__INIT;
	struct ipc_list_rep lr;
	struct ipc_stream_info info;
	const char *why = NULL;
	char sid[UUID_STR_LEN];
	uint32_t i;

	if (CALL_REPLY_DECODE(c, rep, ipc_list_rep_decode, &lr,
	        "list reply from eventfold-stored") != 0)
		return;
	for (i = 0; i < lr.nstreams; i++) {
		if (ipc_stream_info_decode(&lr.streams->via.array.ptr[i],
		        &info, &why) != 0) {
			call_finish(c, GW_INTERNAL,
			    "malformed stream info "
			    "from eventfold-stored");
			return;
		}
		si.stream_id = uuid_format(info.stream_id, sid);
		si.event_count = info.event_count;
		si.latest_version = info.latest_version;
		pbuf_pack_field(&c->out, 1, &si.base);
		memcpy(c->after, sid, sizeof(c->after));
		c->has_after = true;
	}
	if (!lr.more || lr.nstreams == 0) {
		call_reply(c);
		return;
	}
	list_next(c);
}

static void
list_next(struct call *c)
{
	struct ipc_list_req r;

	memset(&r, 0, sizeof(r));
	r.has_after = c->has_after;
	if (c->has_after) {
		r.after.ptr = c->after;
		r.after.len = (uint32_t)strlen(c->after);
	}
	r.max_count = 4096;
	ipc_list_req_encode(call_request(c, EF_OP_LIST_STREAMS), &r);
	call_store(c, list_done);
}

void
rpc_list_streams(struct call *c, const uint8_t *buf, size_t len)
{
	Eventfold__ListStreamsRequest *r;

	if ((r = call_unpack(c, &eventfold__list_streams_request__descriptor,
	         buf, len)) == NULL)
		return;
	eventfold__list_streams_request__free_unpacked(r, NULL);
	c->out.len = 0;
	c->has_after = false;
	list_next(c);
}
