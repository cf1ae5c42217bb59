/* SPDX-License-Identifier: MIT */
/*
 * readrep.h - eventfoldctl export's decoder of READ replies, on its own
 * for tests/unit/test_readrep.c.
 */
#ifndef EF_CTL_READREP_H
#define EF_CTL_READREP_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/*
 * Decodes the READ reply in buf (len bytes, a reply message's body).
 * 0: an OK reply; *ev (malloc'ed, the caller frees it) holds its *n
 * events, views into buf valid as long as it is, and *head its head.
 * 1: not an OK reply, or no reply envelope: ipc_reply_open() says
 * which. -1: an OK reply that is malformed; *why names the part.
 * *ev is NULL unless 0 is returned.
 */
int readrep_decode(const void *buf, size_t len, struct ef_event **ev,
    uint64_t *n, uint64_t *head, const char **why);

#endif
