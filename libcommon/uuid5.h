/* SPDX-License-Identifier: MIT */
/*
 * uuid5.h - name-based UUIDs (RFC 4122 version 5, SHA-1), as eventfold-es
 * derives its stream ids, and the namespaces eventfold uses.
 *
 * Needs libcrypto (OpenSSL) for SHA-1: link what uses it with
 * dependency('libcrypto').
 */
#ifndef EF_UUID5_H
#define EF_UUID5_H

#include <stddef.h>
#include <stdint.h>

#include "uuid.h"

/* eventfold-es stream ids: uuid_v5(NS, "{aggregate_type}/{instance_id}") */
extern const uint8_t uuid_ns_stream[UUID_LEN];
/* runnerd event ids: uuid_v5(NS, "{command_id}/{index}") */
extern const uint8_t uuid_ns_event[UUID_LEN];

/* Writes the version 5 UUID of (ns, name[0..len)) into out. */
void uuid_v5(const uint8_t ns[UUID_LEN], const void *name, size_t len,
    uint8_t out[UUID_LEN]);

/* The eventfold-es stream id of an aggregate instance. */
void uuid_stream_id(const char *aggregate_type, size_t tlen,
    const char *instance_id, size_t ilen, uint8_t out[UUID_LEN]);

#endif
