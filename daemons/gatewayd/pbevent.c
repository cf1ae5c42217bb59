/* SPDX-License-Identifier: MIT */
/*
 * pbevent.c - RecordedEvent encoding shared by eventfold-gatewayd and
 * eventfold-mirrord (pbevent.h).
 */
#include <string.h>

#include "pbevent.h"

size_t
pbevent_init(struct pbevent *pe, const struct ef_event *ev)
{
	Eventfold__RecordedEvent init = EVENTFOLD__RECORDED_EVENT__INIT;
	size_t n;

	pe->re = init;
	n = ev->type_len > RECORD_TYPE_MAX ? RECORD_TYPE_MAX : ev->type_len;
	memcpy(pe->type, ev->type, n);
	pe->type[n] = '\0';
	pe->re.event_id = uuid_format(ev->event_id, pe->eid);
	pe->re.stream_id = uuid_format(ev->stream_id, pe->sid);
	pe->re.stream_version = ev->stream_version;
	pe->re.global_position = ev->global_position;
	pe->re.event_type = pe->type;
	pe->re.metadata.data = (uint8_t *)ev->metadata;
	pe->re.metadata.len = ev->metadata_len;
	pe->re.payload.data = (uint8_t *)ev->payload;
	pe->re.payload.len = ev->payload_len;
	pe->re.recorded_at = ev->recorded_at;
	return eventfold__recorded_event__get_packed_size(&pe->re);
}

size_t
pbevent_pack(const struct pbevent *pe, uint8_t *out)
{
	return eventfold__recorded_event__pack(&pe->re, out);
}
