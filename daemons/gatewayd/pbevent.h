/* SPDX-License-Identifier: MIT */
/*
 * pbevent.h - one event as EventfoldDB's RecordedEvent protobuf
 * (proto/eventfold.proto), the encoding gatewayd's reads and
 * subscriptions send and eventfold-mirrord publishes to JetStream.
 */
#ifndef EF_PBEVENT_H
#define EF_PBEVENT_H

#include <stddef.h>
#include <stdint.h>

#include "eventfold.pb-c.h"
#include "record.h"
#include "uuid.h"

/* The message for one event, with the text its fields point to. */
struct pbevent {
	Eventfold__RecordedEvent re;
	char eid[UUID_STR_LEN];
	char sid[UUID_STR_LEN];
	char type[RECORD_TYPE_MAX + 1];
};

/*
 * Fills pe from ev. pe's byte fields point into ev (metadata, payload):
 * valid as long as ev's buffer is. Returns the packed size.
 */
size_t pbevent_init(struct pbevent *pe, const struct ef_event *ev);

/* Packs pe into out, which has room for pbevent_init's size; returns it. */
size_t pbevent_pack(const struct pbevent *pe, uint8_t *out);

#endif
