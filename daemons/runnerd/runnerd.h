/* SPDX-License-Identifier: MIT */
/*
 * runnerd.h - the runner core of eventfold-runnerd (runnerd.c): its
 * configuration, the context every module is handed (struct runner;
 * there are no globals shared between files) and small helpers. Each
 * other concern has its header: plugin.h, state.h, aggregate.h, fold.h
 * (with projection.c), procmgr.h, dispatch.h.
 *
 * Threads: libcommon's request server (server.h) runs EXECUTE,
 * GET_STATE, QUERY and the admin ops on a pool of `workers` threads
 * (dispatch.c); every projection and process
 * manager (a "fold") has a subscription thread that copies events from
 * stored into a bounded queue and a fold thread that applies them in
 * LMDB transactions together with the checkpoint (fold.c, projection.c,
 * procmgr.c); a rebuild adds a second pair; one writer thread commits
 * command results and aggregate snapshots in batches (aggregate.c); the
 * main thread takes signals and does housekeeping (runnerd.c).
 *
 * Errors follow errors.h's doctrine; its one exception, the LMDB codes
 * state.c's transaction functions hand their callers, is documented in
 * state.h.
 *
 * Only runnerd touches its LMDB environment (DATA_DIR/runner/), and it
 * is opened after any fork. Plugins are called from several threads,
 * never concurrently for one aggregate instance or fold.
 */
#ifndef EF_RUNNERD_H
#define EF_RUNNERD_H

#include <stdint.h>

#include "client.h"
#include "pipeline.h"

struct runner_conf {
	char *data_dir;
	char *runtime_dir;
	char *plugin_dir;
	char *runner_url;
	char *store_url;
	char *events_url;
	uint64_t workers;
	uint64_t map_size;
	uint64_t max_retries;    /* EXECUTE retries after a version conflict */
	uint64_t snapshot_every; /* events between aggregate snapshots */
	uint64_t command_retention;   /* results kept (0: no bound) */
	uint64_t command_retention_s; /* their age bound (0: none) */
	uint64_t idle_evict_s;       /* drop cached instances idle this long */
	uint64_t pm_retries;         /* attempts of a manager's command */
	uint64_t pm_backoff_ms;      /* first backoff; doubles, max 5 s */
	uint64_t fold_batch;         /* most events in one fold transaction */
	uint64_t commit_interval_ms; /* least time between busy commits */
	uint64_t page;               /* events per catch-up read */
	uint64_t store_wait_s;       /* at start: wait for stored, then exit */
};

struct runner {
	struct runner_conf conf;
	char store_url[4200];
	char events_url[4200];
	char runner_url[4200];
	struct ef_client store;
	struct pipeline appends; /* Execute's appends, coalesced */
	uint64_t start_ms;
	volatile int stopping;
};

uint64_t now_ms(void);  /* CLOCK_MONOTONIC */
uint64_t wall_ms(void); /* CLOCK_REALTIME */
/* Waits until `since` + commit_interval_ms (monotonic ms) unless r is
 * stopping or *f1 or *f2 (either may be NULL) becomes non-zero; returns
 * at once if that time has passed. */
void runner_pace(struct runner *r, uint64_t since, const volatile int *f1,
    const volatile int *f2);
/* Sleeps ms, waking early (returning 1) if r is stopping. */
int runner_nap(struct runner *r, uint64_t ms);
/*
 * Whether runnerd has a connection to stored, waiting up to wait_ms for
 * one (a restarting stored is back within that). Requests that need the
 * store are refused at once, naming it, rather than waiting out the
 * client's timeout (runnerd.c).
 */
int runner_store_connected(struct runner *r, uint64_t wait_ms);
#define STORE_WAIT_MS 1000

#endif
