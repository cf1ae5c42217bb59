/* SPDX-License-Identifier: MIT */
/*
 * fold.h - projections and process managers ("folds", fold.c): each
 * has a subscription thread filling a bounded queue and a fold thread
 * applying it with the checkpoint; projection.c answers QUERY and
 * REPLAY on a projection's data.
 */
#ifndef EF_RUNNERD_FOLD_H
#define EF_RUNNERD_FOLD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "ipc.h"
#include "ipc_runner.h"
#include "record.h"
#include "uuid.h"

#include "eventfold/plugin.h"

struct plugin;
struct runner;

struct qev {
	struct qev *next;
	size_t size;
	struct ef_event ev; /* pointers into data */
	uint8_t data[];
};

struct evq {
	pthread_mutex_t mu;
	pthread_cond_t cv_put;
	pthread_cond_t cv_get;
	struct qev *head;
	struct qev *tail;
	size_t n;
	size_t bytes;
};

struct fold;

/* A subscription thread filling a queue from position `from`. */
struct pipe {
	struct fold *f;
	struct evq q;
	pthread_t thr;
	int running;
	volatile int stop;
	uint64_t from;
	uint64_t delivered; /* next position enqueued (atomic) */
	int caught_up;      /* atomic */
	/* the id of the event at delivered - 1 (pipe thread only), checked
	 * against the log on each catch-up read when check and has_id */
	uint8_t last_id[UUID_LEN];
	int has_id;
	int check;   /* the fold's own pipe, not a rebuild's */
	int changed; /* atomic: the log changed underneath */
};

enum fold_req {
	REQ_NONE = 0,
	REQ_RESET,
	REQ_SWAP,
	REQ_QUIT,
};

struct fold {
	struct runner *rn; /* set by fold_start_all */
	char *name;
	int kind; /* EF_FOLD_PROJECTION or EF_FOLD_MANAGER */
	const struct efp_projection *proj;
	const struct efp_manager *mgr;
	struct plugin *plugin;

	pthread_mutex_t mu;
	pthread_cond_t cv;         /* progress, requests, their completion */
	uint64_t next;             /* committed checkpoint: events applied */
	uint8_t last_id[UUID_LEN]; /* event id at next - 1, if has_id */
	int has_id;
	int checked;  /* the checkpoint was checked against the log */
	uint64_t gen; /* generation of the data database */
	MDB_dbi dbi;
	int live;    /* caught up since the last (re)start */
	int stopped; /* an apply failed */
	uint64_t err_pos;
	char err[512];
	int req;           /* enum fold_req being asked for */
	int hurry;         /* a reader waits: commit without pacing */
	uint64_t req_done; /* counts requests completed */
	uint64_t applied;  /* events applied since start (stats) */
	uint64_t rate;     /* events/s over the last interval */
	uint64_t rate_prev;
	uint64_t rate_ms;
	uint64_t dead_letters;

	/* rebuild: a second pipe folding into generation gen + 1 */
	int rebuilding;
	int rb_resume; /* a rebuild was under way at the last stop */
	uint64_t rb_next;
	uint8_t rb_last_id[UUID_LEN];
	MDB_dbi rb_dbi;
	pthread_t rb_thr;
	int rb_joinable; /* rb_thr to be joined (fold thread only) */
	struct pipe rb_pipe;
	volatile int rb_stop;

	pthread_rwlock_t dbi_lock; /* readers of dbi vs drop and swap */
	struct pipe pipe;
	pthread_t thr;
};

int fold_add_projection(const struct efp_projection *p, struct plugin *pl);
int fold_add_manager(const struct efp_manager *m, struct plugin *pl);
/* Starts every fold; r stays valid until fold_stop_all. */
int fold_start_all(struct runner *r);
void fold_stop_all(void);
struct fold *fold_find(const char *name, size_t len);
size_t fold_count(void);
/*
 * For RUNNER_STATUS: f's figures in fi, taken under its lock; head is
 * stored's head when has_head. fi's strings point into f and into err
 * (errlen bytes, the caller's), valid while both are.
 */
void fold_info(struct fold *f, bool has_head, uint64_t head,
    struct ipc_fold_info *fi, char *err, size_t errlen);
struct fold *fold_at(size_t i);
void fold_rates(uint64_t now_ms);
/* Applies events [0, n) of a batch; see fold.c. */
int fold_request(struct fold *f, int req, char *msg, size_t msglen);
int fold_rebuild(struct fold *f, char *msg, size_t msglen);
/*
 * For the ops only a projection has: EF_S_OK when f is one; else
 * EF_S_INVALID with msg "<name> is a process manager" and why (", not a
 * projection", ": replaying it would send commands").
 */
int fold_need_projection(const struct fold *f, const char *why, char *msg,
    size_t msglen);

/* projection.c: QUERY, REPLAY and a projection's apply. */
int projection_query(struct fold *f, const struct ipc_query_req *q,
    struct ipc_out *out, char *msg, size_t msglen);
int projection_replay(struct fold *f, uint64_t until, uint64_t limit,
    struct ipc_out *out, char *msg, size_t msglen);
/* Applies one event to a projection in txn/dbi. 0; MDB_MAP_FULL (txn
 * must be aborted, the map grown and the event applied again); or -1
 * with msg (the plugin failed). */
int projection_apply(struct fold *f, MDB_txn *txn, MDB_dbi dbi,
    const struct ef_event *ev, char *msg, size_t msglen);

#endif
