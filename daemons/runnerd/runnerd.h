/* SPDX-License-Identifier: MIT */
/*
 * runnerd.h - private structures of eventfold-runnerd.
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
 * Only runnerd touches its LMDB environment (DATA_DIR/runner/), and it
 * is opened after any fork. Plugins are called from several threads,
 * never concurrently for one aggregate instance or fold.
 */
#ifndef EF_RUNNERD_H
#define EF_RUNNERD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "client.h"
#include "ipc.h"
#include "ipc_runner.h"
#include "pipeline.h"
#include "record.h"

#include "eventfold/plugin.h"

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

/* plugin.c */
struct plugin {
	char *path;
	char *file; /* basename, for messages */
	void *dl;
	const struct efp_plugin_info *info;
	struct plugin *next;
};

struct agg_type {
	const struct efp_aggregate *desc;
	struct plugin *plugin;
	uint64_t commands; /* atomic */
	uint64_t cached;   /* atomic */
};

/* A growable byte buffer. */
struct buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

void buf_set(struct buf *b, const void *p, size_t len);
void buf_add(struct buf *b, const void *p, size_t len);
void buf_free(struct buf *b);

enum ctx_kind {
	CTX_APPLY = 1, /* aggregate apply */
	CTX_HANDLE,    /* aggregate handle */
	CTX_PROJECT,   /* projection apply */
	CTX_REACT,     /* manager react */
};

struct emitted {
	char *type;
	uint8_t *payload;
	size_t len;
};

struct sent {
	char *aggregate_type;
	char *instance_id;
	char *type;
	uint8_t *payload;
	size_t len;
};

/* What a host function may touch during one callback (see plugin.h). */
struct efp_ctx {
	enum ctx_kind kind;
	/* CTX_APPLY */
	struct buf state;
	int state_set;
	/* CTX_HANDLE */
	struct emitted *events;
	size_t nevents;
	int rejected;
	char *reject_msg;
	/* CTX_PROJECT */
	MDB_txn *txn;
	MDB_dbi dbi;
	int in_iter;
	int io_err; /* an LMDB failure, reported as an error */
	int io_rc;  /* its LMDB code (MDB_MAP_FULL: grow and redo) */
	/* CTX_REACT */
	struct sent *cmds;
	size_t ncmds;
	/* any */
	char err[512];
	int has_err;
};

void ctx_init(struct efp_ctx *c, enum ctx_kind kind);
void ctx_free(struct efp_ctx *c);

/*
 * A view of ev for plugins: NUL-terminated copies of the type and of
 * aggregate_type/instance_id taken from the metadata. Valid as long as
 * ev and vb are.
 */
struct view_buf {
	char type[RECORD_TYPE_MAX + 1];
	char agg[IPC_NAME_MAX + 1];
	char inst[IPC_ID_MAX + 1];
};

void event_view(const struct ef_event *ev, struct efp_event *out,
    struct view_buf *vb);

/*
 * Finds key at the top level of the JSON object in p (len bytes, parsed
 * with jansson) and, if its value is a string, writes it (unescaped,
 * NUL-terminated) to out. Returns its length, or -1 if absent, not a
 * string, holding U+0000, too long for outsz, or p is not one valid JSON
 * object.
 */
int meta_get_str(const uint8_t *p, size_t len, const char *key, char *out,
    size_t outsz);

int plugin_load_dir(const char *dir);
void plugin_unload_all(void);
struct agg_type *plugin_aggregate(const char *type, size_t len);
extern const struct efp_host plugin_host;
/* For PLUGINS and RUNNER_STATUS. */
struct plugin *plugin_list(void);
/* Files of the plugin directory refused at start: the file name (and
 * *why, the reason), valid for the daemon's life. */
size_t plugin_nrefused(void);
const char *plugin_refused_at(size_t i, const char **why);
size_t plugin_naggs(void);
struct agg_type *plugin_agg_at(size_t i);

/*
 * state.c: the LMDB environment. The one exception to errors.h's rule
 * 2: the transaction functions below and their callers in fold.c,
 * aggregate.c, projection.c and procmgr.c pass LMDB's own codes
 * (MDB_MAP_FULL drives the grow-and-retry loops); what leaves runnerd
 * through state_backup is a negative errno (ef_err_from_mdb).
 */
struct state {
	MDB_env *env;
	MDB_dbi meta;   /* "meta": fold checkpoints */
	MDB_dbi cmds;   /* "cmds": command id -> result */
	MDB_dbi cmdage; /* "cmdage": [recorded ms BE][command id] -> "" */
	MDB_dbi snaps;  /* "snaps": stream id -> snapshot */
	MDB_dbi dead;   /* "dead": manager NUL command id -> dead letter */
	pthread_mutex_t dbi_mu;
	/* Held shared by every open transaction (state_begin to
	 * state_commit or state_abort), exclusive by state_grow. */
	pthread_rwlock_t grow_lock;
	uint64_t map_size; /* current; changed under grow_lock */
	/* doublings of this map and of REPLAY's scratch maps (atomic) */
	uint64_t grows;
};

int state_open(const char *dir, uint64_t map_size);
void state_close(void);
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
 * or EIO with under 1 MiB free) and neither runnerd nor *stop (may be NULL) is
 * stopping, logs it (at most every 10 s), waits 500 ms and returns 1: the
 * caller redoes its work. 0 otherwise.
 */
int state_wait_space(const char *what, int rc, const volatile int *stop);
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

extern struct state st;

/* aggregate.c */
struct exec_cmd {
	const char *aggregate_type;
	const char *instance_id;
	const char *type;
	const uint8_t *payload;
	size_t payload_len;
	const char *command_id;
	const char *actor; /* NULL when absent, as the others */
	const char *correlation_id;
	const char *causation_id;
	const char *source_device;
};

int aggregate_start(void);
/* 0 when results have waited over limit_ms with the writer not coming
 * round (the watchdog is then withheld); 1 otherwise. */
int aggregate_alive(uint64_t limit_ms);
void aggregate_stop(void);
/*
 * Runs one command (see EXECUTE in ipc_runner.h). Returns an EF_S_*
 * status; msg gets the text for any status but OK.
 */
int aggregate_execute(const struct exec_cmd *c, struct ipc_exec_rep *rep,
    char *msg, size_t msglen);
/* The current state of an instance; *state is malloc'd (caller frees). */
int aggregate_get_state(const char *type, const char *inst,
    uint8_t sid[UUID_LEN], bool *exists, uint64_t *version, uint8_t **state,
    size_t *len, char *msg, size_t msglen);
void aggregate_evict(uint64_t now_ms);

/* fold.c: projections and process managers. */
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
int fold_start_all(void);
void fold_stop_all(void);
struct fold *fold_find(const char *name, size_t len);
size_t fold_count(void);
struct fold *fold_at(size_t i);
void fold_rates(uint64_t now_ms);
/* Applies events [0, n) of a batch; see fold.c. */
int fold_request(struct fold *f, int req, char *msg, size_t msglen);
int fold_rebuild(struct fold *f, char *msg, size_t msglen);

/* projection.c: QUERY and REPLAY. */
int projection_query(struct fold *f, const struct ipc_query_req *q,
    struct ipc_out *out, char *msg, size_t msglen);
int projection_replay(struct fold *f, uint64_t until, uint64_t limit,
    struct ipc_out *out, char *msg, size_t msglen);
/* Applies one event to a projection in txn/dbi. 0; MDB_MAP_FULL (txn
 * must be aborted, the map grown and the event applied again); or -1
 * with msg (the plugin failed). */
int projection_apply(struct fold *f, MDB_txn *txn, MDB_dbi dbi,
    const struct ef_event *ev, char *msg, size_t msglen);

/* procmgr.c */
/* Reacts to one event and runs its commands; 0, or -1 when stopping. */
int procmgr_event(struct fold *f, const struct ef_event *ev, char *msg,
    size_t msglen);
int procmgr_dead_letters(const struct ipc_dl_req *r, struct ipc_out *out,
    char *msg, size_t msglen);
uint64_t procmgr_count_dead(const char *manager);

/* dispatch.c */
/* 0 or a negative errno (-EADDRINUSE: the name is another's). */
int dispatch_start(const char *url, uint64_t workers);
void dispatch_stop(void);

/* runnerd.c */
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

extern struct runner rd;

uint64_t now_ms(void);  /* CLOCK_MONOTONIC */
uint64_t wall_ms(void); /* CLOCK_REALTIME */
/* Waits until `since` + commit_interval_ms (monotonic ms) unless *f1 or
 * *f2 (either may be NULL) becomes non-zero; returns at once if that
 * time has passed. */
void commit_pace(uint64_t since, const volatile int *f1,
    const volatile int *f2);
/* Sleeps ms, waking early (returning 1) if the daemon is stopping. */
int nap_ms(uint64_t ms);
/*
 * Whether runnerd has a connection to stored, waiting up to wait_ms for
 * one (a restarting stored is back within that). Requests that need the
 * store are refused at once, naming it, rather than waiting out the
 * client's timeout (runnerd.c).
 */
int store_connected(uint64_t wait_ms);
#define STORE_WAIT_MS 1000

#endif
