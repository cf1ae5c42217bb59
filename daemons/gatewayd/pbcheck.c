/* SPDX-License-Identifier: MIT */
/*
 * pbcheck.c - refuses a gRPC request whose string fields hold a NUL
 * byte, before its handler unpacks it.
 *
 * protobuf-c hands every string over NUL-terminated and without its
 * length, so "Order\0Placed" would reach eventfold-stored (or runnerd)
 * as "Order": cut short, silently, and stored as if the client had sent
 * that. Protobuf allows NUL in a string, so the check cannot be left to
 * the unpacker: pbcheck_nul() walks the request's wire bytes with the
 * method's protobuf-c descriptor and looks into every string field,
 * nested and repeated messages included. Bytes fields (metadata,
 * payload) are binary and not looked at. Malformed wire data is left
 * to the unpacker, which refuses it with its own message.
 */
#include <stdio.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "eventfold.pb-c.h"
#include "gatewayd.h"
#include "health.pb-c.h"
#include "runner.pb-c.h"

#define PB_DEPTH_MAX 16 /* our messages nest 2 deep */

static const struct {
	const char *path;
	const ProtobufCMessageDescriptor *desc;
} requests[] = {
	{ "/eventfold.EventStore/Append",
	    &eventfold__append_request__descriptor },
	{ "/eventfold.EventStore/ReadStream",
	    &eventfold__read_stream_request__descriptor },
	{ "/eventfold.EventStore/ReadAll",
	    &eventfold__read_all_request__descriptor },
	{ "/eventfold.EventStore/ListStreams",
	    &eventfold__list_streams_request__descriptor },
	{ "/eventfold.EventStore/SubscribeAll",
	    &eventfold__subscribe_all_request__descriptor },
	{ "/eventfold.EventStore/SubscribeStream",
	    &eventfold__subscribe_stream_request__descriptor },
	{ "/eventfold.Runner/Execute",
	    &eventfold__execute_request__descriptor },
	{ "/eventfold.Runner/GetState",
	    &eventfold__get_state_request__descriptor },
	{ "/eventfold.Runner/Query", &eventfold__query_request__descriptor },
	{ "/eventfold.Runner/ListProjections",
	    &eventfold__list_projections_request__descriptor },
	{ "/grpc.health.v1.Health/Check",
	    &grpc__health__v1__health_check_request__descriptor },
	{ "/grpc.health.v1.Health/Watch",
	    &grpc__health__v1__health_check_request__descriptor },
};

/* Reads a varint; 0, or -1 when the bytes end or it runs over 10. */
static int
varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	int shift = 0;

	*v = 0;
	while (*p < end && shift < 64) {
		uint8_t b = *(*p)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return 0;
		shift += 7;
	}
	return -1;
}

/*
 * 1 if a string field of the message (desc) in [p, end) holds a NUL;
 * its path ("events[1].event_type") is then in why. 0 otherwise, also
 * for wire data that does not parse.
 */
static int
walk(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
    const uint8_t *end, int depth, char *why, size_t whylen)
{
	const ProtobufCFieldDescriptor *f;
	uint32_t seen[32];
	uint64_t key, len;
	size_t at;
	unsigned idx;

	memset(seen, 0, sizeof(seen));
	while (p < end) {
		if (varint(&p, end, &key) != 0)
			return 0;
		switch (key & 7) {
		case 0:
			if (varint(&p, end, &len) != 0)
				return 0;
			continue;
		case 1:
			p += (size_t)(end - p) < 8 ? (size_t)(end - p) : 8;
			continue;
		case 5:
			p += (size_t)(end - p) < 4 ? (size_t)(end - p) : 4;
			continue;
		case 2:
			break;
		default:
			return 0; /* groups: not in our protos */
		}
		if (varint(&p, end, &len) != 0 || len > (uint64_t)(end - p))
			return 0;
		f = key >> 3 > UINT32_MAX ?
		    NULL :
		    protobuf_c_message_descriptor_get_field(desc,
		        (unsigned)(key >> 3));
		if (f != NULL) {
			idx = (unsigned)(f - desc->fields);
			at = strlen(why);
			if (f->label == PROTOBUF_C_LABEL_REPEATED)
				snprintf(why + at, whylen - at, "%s%s[%u]",
				    at ? "." : "", f->name,
				    idx < 32 ? seen[idx]++ : 0);
			else
				snprintf(why + at, whylen - at, "%s%s",
				    at ? "." : "", f->name);
			if (f->type == PROTOBUF_C_TYPE_STRING &&
			    memchr(p, '\0', (size_t)len) != NULL)
				return 1;
			if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
			    depth < PB_DEPTH_MAX &&
			    walk(f->descriptor, p, p + len, depth + 1, why,
			        whylen))
				return 1;
			why[at] = '\0';
		}
		p += len;
	}
	return 0;
}

int
pbcheck_nul(const char *path, const uint8_t *buf, size_t len, char *why,
    size_t whylen)
{
	size_t i, at;

	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		if (strcmp(requests[i].path, path) != 0)
			continue;
		why[0] = '\0';
		if (!walk(requests[i].desc, buf, buf + len, 0, why, whylen))
			return 0;
		at = strlen(why);
		snprintf(why + at, whylen - at,
		    ": a string must not contain "
		    "a NUL byte");
		return 1;
	}
	return 0;
}
