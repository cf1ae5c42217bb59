/* SPDX-License-Identifier: MIT */
/*
 * procmgr.h - process managers (procmgr.c): a manager's reaction to one
 * event, its commands with retries, and its dead letters.
 */
#ifndef EF_RUNNERD_PROCMGR_H
#define EF_RUNNERD_PROCMGR_H

#include <stddef.h>
#include <stdint.h>

#include "ipc.h"
#include "ipc_runner.h"
#include "record.h"

struct fold;

/* Reacts to one event and runs its commands; 0, or -1 when stopping. */
int procmgr_event(struct fold *f, const struct ef_event *ev, char *msg,
    size_t msglen);
int procmgr_dead_letters(const struct ipc_dl_req *r, struct ipc_out *out,
    char *msg, size_t msglen);
uint64_t procmgr_count_dead(const char *manager);

#endif
