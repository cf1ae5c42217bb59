/* SPDX-License-Identifier: MIT */
/*
 * rharness.h - what the runner tests share: a fresh temporary directory
 * per test with a real eventfold-stored and a real eventfold-runnerd
 * (spawned with fork/exec on ipc:// sockets in it, killed with the test
 * through PR_SET_PDEATHSIG), a plugin directory filled with copies of
 * chosen plugins, and small helpers over the runner IPC.
 *
 * Binaries come from EF_BUILD_ROOT (set by tests/meson.build). Call the
 * spawning functions from the test's main thread only.
 */
#ifndef EF_RHARNESS_H
#define EF_RHARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"
#include "ipc.h"
#include "ipc_runner.h"
#include "uuid.h"

#define RH_PATH 600

struct rh {
	char dir[RH_PATH];
	char data[RH_PATH];
	char run[RH_PATH];
	char plugins[RH_PATH];
	char stored_log[RH_PATH];
	char runnerd_log[RH_PATH];
	char store_url[RH_PATH + 16];
	char events_url[RH_PATH + 16];
	char runner_url[RH_PATH + 16];
	const char *extra[24]; /* extra runnerd flags, NULL-terminated */
	pid_t stored;
	pid_t runnerd;
	int runnerd_status;
	struct ef_client store;
	struct ef_client runner;
};

/* A fresh directory tree; plugins (NULL-terminated file names from the
 * examples or tests/runner builds) are copied into its plugin dir. */
void rh_init(struct rh *h, const char *const *plugins);
/* rh_init, and runnerd will get the extra flags (NULL-terminated, at
 * most 23). */
void rh_init_args(struct rh *h, const char *const *plugins,
    const char *const *extra);
/* Copies a built plugin (by file name) into h->plugins; returns path. */
const char *rh_add_plugin(struct rh *h, const char *file, char *out);
void rh_start_stored(struct rh *h);
/* rh_init with plugins, then stored and runnerd started; rh_up_args
 * gives runnerd the extra flags (NULL-terminated, at most 23). */
void rh_up(struct rh *h, const char *const *plugins);
void rh_up_args(struct rh *h, const char *const *plugins,
    const char *const *extra);
pid_t rh_spawn_runnerd(struct rh *h);
/* 0 ready; -1 exited (runnerd_status set); -2 timeout. */
int rh_wait_runnerd(struct rh *h, int timeout_ms);
void rh_start_runnerd(struct rh *h);
void rh_kill_runnerd(struct rh *h, int sig);
void rh_stop(struct rh *h);
/* A Criterion .fini: rh_stop of the harness rh_init set up last (each
 * test runs in a process of its own). */
void rh_fini(void);

/* A request for op begun in o (initialised here), request id 1: its body
 * goes next. Returns o. */
struct ipc_out *rh_request(struct ipc_out *o, int op);
/* Sends the request o on c and frees o; the reply in *cr (the caller
 * frees it). Returns the reply's status. */
int rh_call(struct ef_client *c, struct ipc_out *o, struct client_reply *cr);

/* Runner calls. msg (may be NULL) gets the reply message. */
int rh_exec(struct rh *h, const char *agg, const char *inst, const char *type,
    const char *payload, const char *cmd_id, struct ipc_exec_rep *rep,
    char *msg, size_t msglen);
int rh_exec_ctx(struct rh *h, const struct ipc_exec_req *r,
    struct ipc_exec_rep *rep, char *msg, size_t msglen);
/* State as a malloc'd NUL-terminated string (or NULL). */
int rh_state(struct rh *h, const char *agg, const char *inst, char **state,
    uint64_t *version, bool *exists);
/* All items of a projection as "key=value\n" lines (malloc'd), paging
 * with limit items per call. */
int rh_dump(struct rh *h, const char *proj, uint32_t limit, char **out,
    uint64_t *position);
int rh_replay(struct rh *h, const char *proj, uint64_t until, char **out,
    uint64_t *position);
/* One value as a string, or NULL (status returned). */
int rh_get(struct rh *h, const char *proj, const char *key, char **val);
/* Asserts that key of projection proj is there and reads want. */
void rh_expect_get(struct rh *h, const char *proj, const char *key,
    const char *want);

struct rh_fold {
	char state[32];
	uint64_t position;
	bool has_error;
	uint64_t error_position;
	char error[512];
	bool rebuilding;
	uint64_t rebuild_position;
	uint64_t dead_letters;
	uint64_t events_per_s;
	bool has_lag;
	uint64_t lag;
};

int rh_fold(struct rh *h, const char *name, struct rh_fold *f);
/* RUNNER_STATUS's LMDB map size and growth count (asserts it answers). */
void rh_lmdb_map(struct rh *h, uint64_t *bytes, uint64_t *grows);
/* Waits until fold name has position >= pos (true) or timeout. */
bool rh_wait_fold(struct rh *h, const char *name, uint64_t pos, int ms);
uint64_t rh_head(struct rh *h);
int rh_name_op(struct rh *h, int op, const char *name, char *msg,
    size_t msglen);
/* Sends raw bytes as a request; returns the reply status. */
int rh_raw(struct rh *h, const void *buf, size_t len, char *msg,
    size_t msglen);

/* Appends one event to stored as eventfold-es would write it. */
int rh_append_es(struct rh *h, const char *agg, const char *inst,
    const char *type, const char *payload, int kind, uint64_t version);
/* Appends n events (types/payload from fn) in one batch to a stream. */
int rh_append_batch(struct rh *h, const uint8_t sid[UUID_LEN], uint32_t n,
    void (*fn)(uint32_t i, char *type, char *meta, char *payload, void *),
    void *arg);

/* An event generator for rh_append_batch: type arg (a string), no
 * metadata, payload {"i":i}. */
void rh_numbered(uint32_t i, char *type, char *meta, char *payload, void *arg);
/* A stream id of 16 bytes fill, with the UUID version 4 and variant bits. */
void rh_stream_id(uint8_t sid[UUID_LEN], uint8_t fill);
/* Fold name answers and has no error (else the test fails); its
 * position. */
uint64_t rh_fold_ok(struct rh *h, const char *name);
bool rh_log_contains(const char *path, const char *needle);
/* Asserts that runnerd's log holds each of said (NULL-terminated). */
void rh_expect_logged(struct rh *h, const char *const *said);
char *rh_read_file(const char *path);
void rh_ms(int ms);

#endif
