/* SPDX-License-Identifier: MIT */
/*
 * aggregate.h - aggregates (aggregate.c): EXECUTE and GET_STATE, the
 * instance cache, and the writer thread that commits command results
 * and snapshots.
 */
#ifndef EF_RUNNERD_AGGREGATE_H
#define EF_RUNNERD_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc_runner.h"
#include "uuid.h"

#include "eventfold/plugin.h"

struct runner;

/* Starts the results writer; r stays valid until aggregate_stop. 0 or
 * a negative errno. */
int aggregate_start(struct runner *r);
/* 0 when results have waited over limit_ms with the writer not coming
 * round (the watchdog is then withheld); 1 otherwise. */
int aggregate_alive(uint64_t limit_ms);
void aggregate_stop(void);
/*
 * Runs one command (see EXECUTE in ipc_runner.h): c is the command as
 * the plugin's handle() gets it, its exists and version ignored (the
 * instance's are passed). Returns an EF_S_* status; msg gets the text
 * for any status but OK.
 */
int aggregate_execute(const struct efp_command *c, struct ipc_exec_rep *rep,
    char *msg, size_t msglen);
/* The current state of an instance; *state is malloc'd (caller frees). */
int aggregate_get_state(const char *type, const char *inst,
    uint8_t sid[UUID_LEN], bool *exists, uint64_t *version, uint8_t **state,
    size_t *len, char *msg, size_t msglen);
void aggregate_evict(uint64_t now_ms);

#endif
