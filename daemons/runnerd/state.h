/* SPDX-License-Identifier: MIT */
/*
 * state.h - runnerd's LMDB environment (state.c): the shared databases,
 * transactions that can grow the map, checkpoints and backup.
 */
#ifndef EF_RUNNERD_STATE_H
#define EF_RUNNERD_STATE_H

#include <stdint.h>

#include <lmdb.h>

#include "uuid.h"

struct runner;

/*
 * The one exception to errors.h's rule
 * 2: the transaction functions below and their callers in fold.c,
 * aggregate.c, projection.c and procmgr.c pass LMDB's own codes
 * (MDB_MAP_FULL drives the grow-and-retry loops); what leaves runnerd
 * through state_backup is a negative errno (ef_err_from_mdb).
 */
/* The databases every module shares (state_db). */
enum state_db {
	STATE_META,   /* "meta": fold checkpoints */
	STATE_CMDS,   /* "cmds": command id -> result */
	STATE_CMDAGE, /* "cmdage": [recorded ms BE][command id] -> "" */
	STATE_SNAPS,  /* "snaps": stream id -> snapshot */
	STATE_DEAD,   /* "dead": manager NUL command id -> dead letter */
};

/* Opens (creating) the environment in dir, its map at least map_size
 * bytes. 0 or a negative errno (logged). */
int state_open(const char *dir, uint64_t map_size);
void state_close(void);
/* One of the shared databases, open once state_open has returned 0. */
MDB_dbi state_db(enum state_db which);
/* Opens (create: creating) the named database. 0 or an LMDB error. */
int state_dbi(const char *name, int create, MDB_dbi *dbi);
/* Empties (del 0) or deletes (del 1) a database in its own transaction. */
int state_drop(MDB_dbi dbi, int del);
/*
 * Every transaction on the environment starts with state_begin and ends
 * with state_commit or state_abort (never mdb_txn_commit/abort): they
 * hold grow_lock shared for its life.
 */
int state_begin(int rdonly, MDB_txn **txn);
/*
 * Copies the environment into dir (absolute, must not exist), compacted,
 * fsynced, dir's parent too. 0 (*bytes set) or -errno / an LMDB code
 * with why filled; a failed copy leaves no dir behind.
 */
int state_backup(const char *dir, uint64_t *bytes, char *why, size_t whylen);
/* Commit; a failure is logged with what. 0 or the LMDB error. */
int state_commit(MDB_txn *txn, const char *what);
void state_abort(MDB_txn *txn);
/*
 * After MDB_MAP_FULL, with this thread's transaction ended: doubles the
 * map (unless another thread grew it since this thread's last
 * state_begin) and logs it with what; the caller then redoes its work.
 * 0, or an LMDB error (the map could not grow: the caller stops).
 */
int state_grow(const char *what);
/* For RUNNER_STATUS: the map's current size, and the growths counted. */
void state_map_figures(uint64_t *map_bytes, uint64_t *grows);
/* Counts a growth of a map other than the environment's (REPLAY's). */
void state_count_grow(void);
/*
 * After a commit failed with rc: if it is a full disk (ENOSPC, EDQUOT,
 * or EIO with under 1 MiB free) and neither runnerd (r) nor *stop (may
 * be NULL) is stopping, logs it (at most every 10 s), waits 500 ms and
 * returns 1: the caller redoes its work. 0 otherwise.
 */
int state_wait_space(struct runner *r, const char *what, int rc,
    const volatile int *stop);
/*
 * Fold checkpoint record under "fold/NAME": [gen u64][next u64]
 * [last_id 16]: the event id at position next - 1 (zeros when next is
 * 0), so that a log that is not the one the fold was applied to (an
 * older backup, a repair) is noticed at start (fold.c). Records of 16
 * bytes, from before the id was kept, are read with *has_id 0.
 * last_id and has_id may be NULL.
 */
int state_checkpoint_get(MDB_txn *txn, const char *name, uint64_t *gen,
    uint64_t *next, uint8_t last_id[UUID_LEN], int *has_id);
int state_checkpoint_put(MDB_txn *txn, const char *name, uint64_t gen,
    uint64_t next, const uint8_t last_id[UUID_LEN]);

#endif
