/* SPDX-License-Identifier: MIT */
/*
 * aggregate.c - EXECUTE and GET_STATE: aggregate instances cached in
 * memory, folded from their snapshot and the newer events of their
 * stream in eventfold-stored, commands decided by the plugin's handle()
 * and appended with exact(version), retried on a version conflict.
 *
 * Exactly once per command id. The events of command C get the ids
 * uuid_v5(NS_EVENT, "C/0"), "C/1", ..., so appending them twice is
 * impossible, and every result is kept in the "cmds" database: C ->
 * (stream, versions, positions). Results and snapshots are written by
 * one writer thread in batches, in the order they were produced; until
 * committed they are looked up in the pending table. A snapshot at
 * version V is therefore never durable before the results of the
 * commands up to V; and after a crash, the results that did not make it
 * are found again while catching up: every event carrying a command_id
 * in its metadata and the matching derived id is recorded. So a command
 * id that produced events returns its first result, without handle(),
 * whatever crashed when.
 *
 * A snapshot keeps the id of the event at its version. Loaded, it is
 * checked against the log before use: a log restored from an older
 * backup, or repaired, would otherwise have commands decided on a state
 * it does not back. A snapshot that does not match is dropped (logged)
 * and the instance folded from version 0.
 *
 * Retention. Results are kept command_retention_s seconds after their
 * events were recorded, and only the newest command_retention of them
 * (0: no bound). "cmdage" orders them: [recorded_at ms, big-endian][C]
 * -> nothing. The writer prunes, oldest first, in the transaction that
 * adds results and once a second when idle, at most PRUNE_MAX a
 * transaction. A forgotten id runs handle() again; its derived event
 * ids are those of the first run, so stored still never stores its
 * events twice (the append is answered as a retry when they are
 * identical, refused as a reused id when not).
 *
 * Locking: the instance table has one mutex; each instance has its own,
 * held for a whole EXECUTE (commands on one instance are serialised;
 * distinct instances run in parallel). The writer has its own mutex.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "be64.h"
#include "crashpoint.h"
#include "errors.h"
#include "log.h"
#include "daemon.h"
#include "aggregate.h"
#include "plugin.h"
#include "runnerd.h"
#include "state.h"
#include "uuid5.h"

#define NBUCKETS 4096
#define NPENDING 1024
#define CMD_VAL  48 /* stream, first_ver, first_pos, last_ver, last_pos */
/*
 * A snapshot: state_version u32, format u8, version u64, then (format 2)
 * the id of the event at that version, then the state. Format 1 (no id)
 * is what runnerd wrote before the id was kept; it is still read.
 */
#define SNAP_HDR1 13
#define SNAP_HDR  29
#define SNAP_V1   1
#define SNAP_V2   2
#define READ_PAGE 1000
#define PRUNE_MAX 10000 /* results forgotten in one transaction */

struct instance {
	struct instance *hnext;
	uint8_t stream[UUID_LEN];
	struct agg_type *type;
	pthread_mutex_t mu;
	int refs;           /* under tab_mu */
	uint64_t last_used; /* under tab_mu */
	int loaded;
	int exists;
	uint64_t version;
	struct buf state;
	int snap_exists;
	uint64_t snap_version;
	uint8_t last_id[UUID_LEN]; /* of the event at version */
	int has_id;
	int from_snap; /* state as a snapshot gave it, nothing applied */
};

enum { WOP_CMD = 1, WOP_SNAP, WOP_SNAP_DEL };

struct wop {
	struct wop *next;
	struct wop *hnext; /* pending table (WOP_CMD) */
	int kind;
	uint8_t *key;
	size_t klen;
	uint8_t *val;
	size_t vlen;
	uint64_t at; /* WOP_CMD: recorded_at of its events, Unix ms */
};

static pthread_mutex_t tab_mu = PTHREAD_MUTEX_INITIALIZER;
static struct instance *tab[NBUCKETS];

static pthread_mutex_t w_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_cv = PTHREAD_COND_INITIALIZER;
static struct wop *w_head, *w_tail;
static struct wop *pending[NPENDING];
static int w_stop, w_running;
static pthread_t w_thr;
/* runnerd's context, from aggregate_start to aggregate_stop */
static struct runner *rn;
static uint64_t w_beat; /* atomic: now_ms() at the writer's last round */

static uint32_t
hash_bytes(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

/* The writer. */

static void
wop_free(struct wop *w)
{
	if (w == NULL)
		return;
	free(w->key);
	free(w->val);
	free(w);
}

/* Adds C to "cmdage" at time at. 0 or an LMDB error. */
static int
cmdage_put(MDB_txn *txn, const void *id, size_t idlen, uint64_t at)
{
	uint8_t key[8 + IPC_ID_MAX];
	MDB_val k = { 8 + idlen, key }, v = { 0, "" };

	if (idlen > IPC_ID_MAX)
		return MDB_BAD_VALSIZE;
	put_be64(key, at);
	memcpy(key + 8, id, idlen);
	return mdb_put(txn, state_db(STATE_CMDAGE), &k, &v, 0);
}

/*
 * Forgets the oldest results while there are more than command_retention
 * or they are older than command_retention_s, at most PRUNE_MAX. Sets
 * *n to the number forgotten. 0 or an LMDB error.
 */
static int
cmds_prune(MDB_txn *txn, size_t *n)
{
	MDB_cursor *cur;
	MDB_stat ms;
	MDB_val k, v, id;
	uint64_t max = rn->conf.command_retention, entries, cutoff = 0;
	int rc;

	*n = 0;
	if (rn->conf.command_retention_s > 0 &&
	    wall_ms() > rn->conf.command_retention_s * 1000)
		cutoff = wall_ms() - rn->conf.command_retention_s * 1000;
	if ((rc = mdb_stat(txn, state_db(STATE_CMDS), &ms)) != 0)
		return rc;
	entries = ms.ms_entries;
	if ((rc = mdb_cursor_open(txn, state_db(STATE_CMDAGE), &cur)) != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     rc == 0 && *n < PRUNE_MAX;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
		if (k.mv_size < 8)
			break; /* not ours: leave it */
		if (!(max > 0 && entries > max) &&
		    !(cutoff > 0 && get_be64(k.mv_data) < cutoff))
			break;
		id.mv_size = k.mv_size - 8;
		id.mv_data = (uint8_t *)k.mv_data + 8;
		rc = mdb_del(txn, state_db(STATE_CMDS), &id, NULL);
		if (rc == 0 && entries > 0)
			entries--;
		else if (rc != MDB_NOTFOUND)
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		(*n)++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The idle prune: a transaction committed only if it forgot some. */
static void
writer_prune(void)
{
	MDB_txn *txn;
	size_t n;
	int rc;

	do {
		if ((rc = state_begin(0, &txn)) != 0)
			break;
		if ((rc = cmds_prune(txn, &n)) != 0 || n == 0)
			state_abort(txn);
		else
			rc = state_commit(txn, "command results");
	} while (rc == MDB_MAP_FULL && state_grow("command results") == 0);
	if (rc != 0 && rc != MDB_MAP_FULL)
		log_warnx("command results: pruning: %s", mdb_strerror(rc));
}

/* Waits up to a second for results and takes them all (NULL: none). */
static struct wop *
writer_take(void)
{
	struct wop *list;
	struct timespec ts;

	pthread_mutex_lock(&w_mu);
	while (w_head == NULL && !w_stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (pthread_cond_timedwait(&w_cv, &w_mu, &ts) != 0 &&
		    w_head == NULL && !w_stop)
			break;
	}
	if (w_head != NULL && faultpoint("runner.writer.stall")) {
		/* tests: work waits, the writer makes no progress
		 * (the watchdog must stop, runnerd.c) */
		pthread_mutex_unlock(&w_mu);
		while (faultpoint("runner.writer.stall") &&
		    !__atomic_load_n(&w_stop, __ATOMIC_RELAXED))
			runner_nap(rn, 20);
		pthread_mutex_lock(&w_mu);
	}
	list = w_head;
	w_head = w_tail = NULL;
	pthread_mutex_unlock(&w_mu);
	return list;
}

/* Puts list's writes in txn, then prunes old results. 0 or LMDB's code. */
static int
writer_put(MDB_txn *txn, const struct wop *list)
{
	const struct wop *w;
	MDB_val k, v;
	size_t pruned;
	int rc = 0;

	for (w = list; w != NULL && rc == 0; w = w->next) {
		k.mv_size = w->klen;
		k.mv_data = w->key;
		v.mv_size = w->vlen;
		v.mv_data = w->val;
		if (w->kind == WOP_SNAP_DEL) {
			rc = mdb_del(txn, state_db(STATE_SNAPS), &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		} else
			rc = mdb_put(txn,
			    w->kind == WOP_CMD ? state_db(STATE_CMDS) :
			                         state_db(STATE_SNAPS),
			    &k, &v, 0);
		if (rc == 0 && w->kind == WOP_CMD)
			rc = cmdage_put(txn, w->key, w->klen, w->at);
	}
	if (rc == 0)
		rc = cmds_prune(txn, &pruned);
	return rc;
}

/* Commits list in one transaction, growing the map or waiting for disk
 * space as needed; a failure is logged (the results are then recovered
 * from the events). */
static void
writer_commit(const struct wop *list)
{
	MDB_txn *txn;
	int rc;

	do {
		/* waiting for disk space is not being wedged: the
		 * watchdog goes on (aggregate_alive) */
		__atomic_store_n(&w_beat, now_ms(), __ATOMIC_RELAXED);
		if ((rc = state_begin(0, &txn)) != 0) {
			log_warnx("aggregate writer: %s", mdb_strerror(rc));
			break;
		}
		if ((rc = writer_put(txn, list)) != 0) {
			if (rc != MDB_MAP_FULL)
				log_warnx("aggregate writer: put: %s",
				    mdb_strerror(rc));
			state_abort(txn);
		} else
			rc = state_commit(txn, "aggregate writer");
	} while ((rc == MDB_MAP_FULL && state_grow("aggregate writer") == 0) ||
	    state_wait_space(rn, "aggregate writer", rc, &w_stop));
}

/* Drops list's commands from the pending table, then frees list. */
static void
writer_release(struct wop *list)
{
	struct wop *w, **pp;

	pthread_mutex_lock(&w_mu);
	for (w = list; w != NULL; w = w->next) {
		if (w->kind != WOP_CMD)
			continue;
		pp = &pending[hash_bytes(w->key, w->klen) % NPENDING];
		while (*pp != NULL && *pp != w)
			pp = &(*pp)->hnext;
		if (*pp == w)
			*pp = w->hnext;
	}
	pthread_mutex_unlock(&w_mu);
	while (list != NULL) {
		w = list->next;
		wop_free(list);
		list = w;
	}
}

static void *
writer_main(void *arg)
{
	struct wop *list;
	uint64_t last_commit = 0, last_prune = 0;

	(void)arg;
	for (;;) {
		__atomic_store_n(&w_beat, now_ms(), __ATOMIC_RELAXED);
		/* let a busy stream of results share one commit */
		runner_pace(rn, last_commit, &w_stop, NULL);
		list = writer_take();
		if (list == NULL && !w_stop) {
			/* idle: forget what retention says, once a second */
			if (now_ms() - last_prune >= 1000) {
				writer_prune();
				last_prune = now_ms();
			}
			continue;
		}
		if (list == NULL)
			break;
		writer_commit(list);
		last_commit = now_ms();
		/* committed (or lost, and then recovered from the events) */
		writer_release(list);
	}
	return NULL;
}

static void
writer_push(int kind, const void *key, size_t klen, const void *val,
    size_t vlen, uint64_t at)
{
	struct wop *w;
	uint32_t h;

	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->key = malloc(klen)) == NULL ||
	    (w->val = malloc(vlen ? vlen : 1)) == NULL)
		fatal("malloc");
	w->kind = kind;
	w->at = at;
	memcpy(w->key, key, klen);
	w->klen = klen;
	if (vlen)
		memcpy(w->val, val, vlen);
	w->vlen = vlen;
	pthread_mutex_lock(&w_mu);
	if (kind == WOP_CMD) {
		h = hash_bytes(key, klen) % NPENDING;
		w->hnext = pending[h];
		pending[h] = w;
	}
	if (w_tail != NULL)
		w_tail->next = w;
	else
		w_head = w;
	w_tail = w;
	pthread_cond_signal(&w_cv);
	pthread_mutex_unlock(&w_mu);
}

/*
 * Looks command id up: pending results first, then LMDB (in this order,
 * so a result being committed is never missed). 1 and val filled if
 * found, 0 if not, a negative errno on an LMDB error.
 */
static int
cmd_lookup(const char *id, size_t idlen, uint8_t val[CMD_VAL])
{
	struct wop *w;
	MDB_txn *txn;
	MDB_val k = { idlen, (void *)id }, v;
	int rc, found = 0;

	pthread_mutex_lock(&w_mu);
	for (w = pending[hash_bytes(id, idlen) % NPENDING]; w != NULL;
	     w = w->hnext)
		if (w->klen == idlen && !memcmp(w->key, id, idlen)) {
			memcpy(val, w->val, CMD_VAL);
			found = 1;
			break;
		}
	pthread_mutex_unlock(&w_mu);
	if (found)
		return 1;
	if ((rc = state_begin(1, &txn)) != 0)
		return ef_err_from_mdb(rc);
	rc = mdb_get(txn, state_db(STATE_CMDS), &k, &v);
	if (rc == 0 && v.mv_size == CMD_VAL) {
		memcpy(val, v.mv_data, CMD_VAL);
		found = 1;
	}
	state_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return ef_err_from_mdb(rc);
	return found;
}

static void
cmd_encode(uint8_t val[CMD_VAL], const uint8_t stream[UUID_LEN],
    uint64_t first_ver, uint64_t first_pos, uint64_t last_ver,
    uint64_t last_pos)
{
	memcpy(val, stream, UUID_LEN);
	put_le64(val + 16, first_ver);
	put_le64(val + 24, first_pos);
	put_le64(val + 32, last_ver);
	put_le64(val + 40, last_pos);
}

int
aggregate_alive(uint64_t limit_ms)
{
	uint64_t beat = __atomic_load_n(&w_beat, __ATOMIC_RELAXED);
	int waiting;

	pthread_mutex_lock(&w_mu);
	waiting = w_head != NULL;
	pthread_mutex_unlock(&w_mu);
	return daemon_progress((uint64_t)waiting, beat, now_ms(), limit_ms);
}

int
aggregate_start(struct runner *r)
{
	int rc;

	rn = r;
	w_stop = 0;
	if ((rc = pthread_create(&w_thr, NULL, writer_main, NULL)) != 0)
		return -rc;
	w_running = 1;
	return 0;
}

void
aggregate_stop(void)
{
	struct instance *in, *nx;
	size_t i;

	if (w_running) {
		pthread_mutex_lock(&w_mu);
		w_stop = 1;
		pthread_cond_signal(&w_cv);
		pthread_mutex_unlock(&w_mu);
		pthread_join(w_thr, NULL);
		w_running = 0;
	}
	for (i = 0; i < NBUCKETS; i++) {
		for (in = tab[i]; in != NULL; in = nx) {
			nx = in->hnext;
			buf_free(&in->state);
			pthread_mutex_destroy(&in->mu);
			free(in);
		}
		tab[i] = NULL;
	}
}

/* Instances. */

static struct instance *
inst_get(struct agg_type *t, const uint8_t sid[UUID_LEN])
{
	struct instance *in;
	uint32_t h = hash_bytes(sid, UUID_LEN) % NBUCKETS;

	pthread_mutex_lock(&tab_mu);
	for (in = tab[h]; in != NULL; in = in->hnext)
		if (!memcmp(in->stream, sid, UUID_LEN))
			break;
	if (in == NULL) {
		if ((in = calloc(1, sizeof(*in))) == NULL)
			fatal("calloc");
		memcpy(in->stream, sid, UUID_LEN);
		in->type = t;
		pthread_mutex_init(&in->mu, NULL);
		in->hnext = tab[h];
		tab[h] = in;
		__atomic_add_fetch(&t->cached, 1, __ATOMIC_RELAXED);
	}
	in->refs++;
	in->last_used = now_ms();
	pthread_mutex_unlock(&tab_mu);
	return in;
}

static void
inst_put(struct instance *in)
{
	pthread_mutex_lock(&tab_mu);
	in->refs--;
	in->last_used = now_ms();
	pthread_mutex_unlock(&tab_mu);
}

void
aggregate_evict(uint64_t now)
{
	struct instance **pp, *in;
	uint64_t idle = rn->conf.idle_evict_s * 1000, n = 0;
	size_t i;

	pthread_mutex_lock(&tab_mu);
	for (i = 0; i < NBUCKETS; i++) {
		pp = &tab[i];
		while ((in = *pp) != NULL) {
			if (in->refs == 0 && now - in->last_used >= idle) {
				*pp = in->hnext;
				__atomic_sub_fetch(&in->type->cached, 1,
				    __ATOMIC_RELAXED);
				buf_free(&in->state);
				pthread_mutex_destroy(&in->mu);
				free(in);
				n++;
			} else
				pp = &in->hnext;
		}
	}
	pthread_mutex_unlock(&tab_mu);
	if (n > 0)
		log_debug("evicted %" PRIu64 " idle aggregate instances", n);
}

static void
inst_initial(struct instance *in)
{
	const struct efp_aggregate *d = in->type->desc;

	buf_set(&in->state, d->initial_state,
	    d->initial_state ? d->initial_len : 0);
	in->exists = 0;
	in->version = 0;
	in->has_id = 0;
	in->from_snap = 0;
}

/*
 * Starts from the snapshot, if any fits, else the initial state. A
 * state from a snapshot is checked against the log by inst_catch_up
 * before anything is decided on it.
 */
static void
inst_load(struct instance *in)
{
	const struct efp_aggregate *d = in->type->desc;
	MDB_txn *txn;
	MDB_val k = { UUID_LEN, in->stream }, v;
	const uint8_t *p;
	size_t hdr;

	inst_initial(in);
	if (state_begin(1, &txn) == 0) {
		if (mdb_get(txn, state_db(STATE_SNAPS), &k, &v) == 0 &&
		    v.mv_size >= SNAP_HDR1) {
			p = v.mv_data;
			hdr = p[4] == SNAP_V2 ? SNAP_HDR : SNAP_HDR1;
			if (get_le32(p) == d->state_version &&
			    v.mv_size >= hdr) {
				in->exists = 1;
				in->version = get_le64(p + 5);
				if ((in->has_id = hdr == SNAP_HDR))
					memcpy(in->last_id, p + SNAP_HDR1,
					    UUID_LEN);
				in->from_snap = 1;
				buf_set(&in->state, p + hdr, v.mv_size - hdr);
			}
		}
		state_abort(txn);
	}
	in->snap_exists = in->exists;
	in->snap_version = in->version;
	in->loaded = 1;
}

/*
 * The state (from a snapshot, or held in memory while stored was
 * restored or repaired underneath) does not match the log: deciding on
 * it would silently skip or misapply events. The instance is folded
 * again from version 0 and the snapshot dropped.
 */
static void
inst_discard(struct instance *in, const char *sid, const char *why)
{
	log_warnx("aggregate %s stream %s: its state at version %" PRIu64
	          " (%s) %s; folding it again from version 0",
	    in->type->desc->type, sid, in->version,
	    in->from_snap ? "a snapshot" : "held in memory", why);
	inst_initial(in);
	in->snap_exists = 0;
	in->snap_version = 0;
	writer_push(WOP_SNAP_DEL, in->stream, UUID_LEN, NULL, 0, 0);
}

static void
inst_snapshot(struct instance *in)
{
	uint8_t *val;
	size_t vlen = SNAP_HDR + in->state.len;

	if (!in->exists || !in->has_id || rn->conf.snapshot_every == 0)
		return;
	if (in->snap_exists &&
	    in->version - in->snap_version < rn->conf.snapshot_every)
		return;
	if (!in->snap_exists && in->version + 1 < rn->conf.snapshot_every)
		return;
	if ((val = malloc(vlen)) == NULL)
		fatal("malloc");
	put_le32(val, in->type->desc->state_version);
	val[4] = SNAP_V2;
	put_le64(val + 5, in->version);
	memcpy(val + SNAP_HDR1, in->last_id, UUID_LEN);
	if (in->state.len)
		memcpy(val + SNAP_HDR, in->state.p, in->state.len);
	writer_push(WOP_SNAP, in->stream, UUID_LEN, val, vlen, 0);
	free(val);
	in->snap_exists = 1;
	in->snap_version = in->version;
}

static int
inst_apply(struct instance *in, const struct ef_event *ev, char *msg,
    size_t ml)
{
	const struct efp_aggregate *d = in->type->desc;
	struct efp_ctx c;
	struct efp_event v;
	struct view_buf vb;
	struct buf tmp;
	int rc;

	ctx_init(&c, CTX_APPLY);
	event_view(ev, &v, &vb);
	rc = d->apply(&c, in->state.p, in->state.len, &v);
	if (rc != EFP_OK) {
		snprintf(msg, ml,
		    "aggregate %s: apply failed at stream "
		    "version %" PRIu64 " (%s): %s",
		    d->type, ev->stream_version, vb.type,
		    c.has_err ? c.err : "error without message");
		ctx_free(&c);
		in->loaded = 0;
		return EF_S_INTERNAL;
	}
	if (c.state_set) {
		tmp = in->state;
		in->state = c.state;
		c.state = tmp;
	}
	ctx_free(&c);
	return EF_S_OK;
}

/* Results found again while catching up (see the top of the file). */
struct recovery {
	int open;
	char cmd[IPC_ID_MAX + 1];
	uint64_t count;
	uint64_t first_ver, first_pos, last_ver, last_pos;
	uint64_t at; /* recorded_at of its first event */
};

static void
event_id_for(const char *cmd, uint64_t i, uint8_t out[UUID_LEN])
{
	char name[IPC_ID_MAX + 32];
	int n;

	n = snprintf(name, sizeof(name), "%s/%" PRIu64, cmd, i);
	uuid_v5(uuid_ns_event, name, (size_t)n, out);
}

static void
recovery_flush(struct recovery *r, const uint8_t stream[UUID_LEN])
{
	uint8_t val[CMD_VAL];
	size_t len;

	if (!r->open)
		return;
	r->open = 0;
	len = strlen(r->cmd);
	if (cmd_lookup(r->cmd, len, val) != 0)
		return;
	cmd_encode(val, stream, r->first_ver, r->first_pos, r->last_ver,
	    r->last_pos);
	log_info("command %s: result recovered from the log (versions %" PRIu64
	         "..%" PRIu64 ")",
	    r->cmd, r->first_ver, r->last_ver);
	writer_push(WOP_CMD, r->cmd, len, val, CMD_VAL, r->at);
}

static void
recovery_see(struct recovery *r, const struct ef_event *ev,
    const uint8_t stream[UUID_LEN])
{
	char cmd[IPC_ID_MAX + 1];
	uint8_t id[UUID_LEN];

	if (ev->metadata_len == 0 ||
	    meta_get_str(ev->metadata, ev->metadata_len, "command_id", cmd,
	        sizeof(cmd)) <= 0) {
		recovery_flush(r, stream);
		return;
	}
	if (r->open && !strcmp(r->cmd, cmd)) {
		event_id_for(cmd, r->count, id);
		if (!memcmp(id, ev->event_id, UUID_LEN)) {
			r->count++;
			r->last_ver = ev->stream_version;
			r->last_pos = ev->global_position;
			return;
		}
	}
	recovery_flush(r, stream);
	event_id_for(cmd, 0, id);
	if (memcmp(id, ev->event_id, UUID_LEN) != 0)
		return;
	r->open = 1;
	snprintf(r->cmd, sizeof(r->cmd), "%s", cmd);
	r->count = 1;
	r->first_ver = r->last_ver = ev->stream_version;
	r->first_pos = r->last_pos = ev->global_position;
	r->at = ev->recorded_at;
}

/*
 * Reads and applies the events newer than the instance's version. The
 * state is first checked against the log, whether it came from a
 * snapshot or is held in memory (stored may have been restored or
 * repaired since): the read starts at the instance's own version, whose
 * event must be there and carry the id kept with the state; if not, the
 * snapshot is dropped and the stream folded from version 0. One event
 * more per read.
 */
/*
 * Checks the first event of a page read from the snapshot's version
 * against the snapshot: 0 when it is the snapshot's last event (its id
 * then taken when the snapshot had none), or 1 with why (wl bytes) saying
 * why the snapshot is not of this log.
 */
static int
inst_check(struct instance *in, const struct ipc_read_rep *rr, char *why,
    size_t wl)
{
	struct ef_event ev;
	char got[UUID_STR_LEN], want[UUID_STR_LEN];
	const char *dwhy;

	why[0] = '\0';
	if (rr->nevents == 0 ||
	    ipc_event_decode(&rr->events->via.array.ptr[0], &ev, &dwhy) != 0 ||
	    ev.stream_version != in->version)
		snprintf(why, wl,
		    "is beyond "
		    "the end of the stream in the log "
		    "(version "
		    "%" PRIu64 "; restored from an older "
		    "backup?)",
		    rr->has_last_version ? rr->last_version : 0);
	else if (in->has_id && memcmp(ev.event_id, in->last_id, UUID_LEN) != 0)
		snprintf(why, wl,
		    "follows "
		    "event %s, but the log holds %s there "
		    "(repaired or replaced?)",
		    uuid_format(in->last_id, want),
		    uuid_format(ev.event_id, got));
	if (why[0] != '\0')
		return 1;
	/* a format 1 snapshot: the id is the log's */
	memcpy(in->last_id, ev.event_id, UUID_LEN);
	in->has_id = 1;
	return 0;
}

/* Applies the events of a page from version from on. EF_S_OK, or
 * another status with msg. */
static int
inst_apply_page(struct instance *in, const struct ipc_read_rep *rr,
    struct recovery *rec, uint64_t from, char *msg, size_t ml)
{
	struct ef_event ev;
	const char *why;
	uint32_t i;
	int rc = EF_S_OK;

	for (i = 0; i < rr->nevents; i++) {
		if (ipc_event_decode(&rr->events->via.array.ptr[i], &ev,
		        &why) != 0) {
			snprintf(msg, ml,
			    "stored sent a malformed "
			    "event: %s",
			    why);
			rc = EF_S_INTERNAL;
			break;
		}
		if (ev.stream_version != from)
			continue;
		if ((rc = inst_apply(in, &ev, msg, ml)) != EF_S_OK)
			break;
		recovery_see(rec, &ev, in->stream);
		in->exists = 1;
		in->version = ev.stream_version;
		memcpy(in->last_id, ev.event_id, UUID_LEN);
		in->has_id = 1;
		in->from_snap = 0;
		from++;
	}
	return rc;
}

static int
inst_catch_up(struct instance *in, char *msg, size_t ml)
{
	struct client_reply rep;
	struct ipc_read_rep rr;
	struct recovery rec;
	char sid[UUID_STR_LEN];
	char why_buf[160];
	uint64_t from;
	uint32_t i;
	int st_, rc = EF_S_OK, check = 1;

	memset(&rec, 0, sizeof(rec));
	uuid_format(in->stream, sid);
	for (;;) {
		check = check && in->exists;
		from = check ? in->version : in->exists ? in->version + 1 : 0;
		st_ = client_read_stream(&rn->store, sid, from, READ_PAGE,
		    EF_FORWARD, &rep, &rr);
		if (st_ == EF_S_STREAM_NOT_FOUND) {
			client_reply_free(&rep);
			if (check) {
				inst_discard(in, sid,
				    "is of a stream the "
				    "log does not hold");
				continue;
			}
			if (in->exists) {
				snprintf(msg, ml,
				    "stream %s has events in "
				    "runnerd's snapshot but not in stored (a "
				    "different store?)",
				    sid);
				in->loaded = 0;
				rc = EF_S_INTERNAL;
			}
			break;
		}
		if (st_ != EF_S_OK) {
			snprintf(msg, ml,
			    "reading stream %s from stored: "
			    "%.*s",
			    sid, (int)rep.in.message.len, rep.in.message.ptr);
			client_reply_free(&rep);
			rc = st_ == EF_S_UNAVAILABLE ? EF_S_UNAVAILABLE :
			                               EF_S_INTERNAL;
			break;
		}
		if (check) {
			if (inst_check(in, &rr, why_buf, sizeof(why_buf)) !=
			    0) {
				client_reply_free(&rep);
				inst_discard(in, sid, why_buf);
				continue;
			}
			check = 0;
			from = in->version + 1;
		}
		rc = inst_apply_page(in, &rr, &rec, from, msg, ml);
		i = rr.nevents;
		client_reply_free(&rep);
		if (rc != EF_S_OK)
			break;
		if (i == 0 || !rr.has_last_version ||
		    in->version >= rr.last_version)
			break;
	}
	recovery_flush(&rec, in->stream);
	if (rc == EF_S_OK)
		inst_snapshot(in);
	return rc;
}

static int
inst_ready(struct instance *in, char *msg, size_t ml)
{
	if (!in->loaded)
		inst_load(in);
	return inst_catch_up(in, msg, ml);
}

/* The metadata of the events of command c, as eventfold-es writes it. */
static char *
metadata_json(const struct efp_command *c)
{
	json_t *m = json_object(), *v;
	char *s = NULL;
	const char *keys[] = { "actor", "correlation_id", "source_device",
		"command_id", "causation_id" };
	const char *vals[] = { c->actor, c->correlation_id, c->source_device,
		c->command_id, c->causation_id };
	size_t i;

	if (m == NULL)
		return NULL;
	if ((v = json_string(c->aggregate_type)) == NULL ||
	    json_object_set_new(m, "aggregate_type", v) != 0)
		goto out;
	if ((v = json_string(c->instance_id)) == NULL ||
	    json_object_set_new(m, "instance_id", v) != 0)
		goto out;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (vals[i] == NULL)
			continue;
		if ((v = json_string(vals[i])) == NULL ||
		    json_object_set_new(m, keys[i], v) != 0)
			goto out;
	}
	s = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	json_decref(m);
	return s;
}

/*
 * Is a command's kept result backed by the log? Its first event must be
 * at the kept position with the id derived from the command id. After a
 * restore to an older backup (or a repair) it may not be: answering
 * "duplicate" then would drop the command silently. 1 backed, 0 not
 * (logged), -EAGAIN stored did not answer. A position stored cannot read
 * (DATA_LOSS) counts as backed: running the command twice is worse.
 */
static int
cmd_backed(const char *cmd, const uint8_t val[CMD_VAL])
{
	struct client_reply cr;
	struct ipc_read_rep rr;
	struct ef_event ev;
	uint8_t id[UUID_LEN];
	char sid[UUID_STR_LEN];
	const char *why;
	uint64_t pos = get_le64(val + 24);
	int st, ok;

	st = client_read_all(&rn->store, pos, 1, EF_FORWARD, &cr, &rr);
	if (st != EF_S_OK) {
		client_reply_free(&cr);
		/* damage there is not proof that the command is lost */
		return st == EF_S_UNAVAILABLE || st == EF_S_DEADLINE ?
		    -EAGAIN :
		    1;
	}
	event_id_for(cmd, 0, id);
	ok = rr.nevents == 1 &&
	    ipc_event_decode(&rr.events->via.array.ptr[0], &ev, &why) == 0 &&
	    ev.global_position == pos && !memcmp(ev.event_id, id, UUID_LEN) &&
	    !memcmp(ev.stream_id, val, UUID_LEN);
	client_reply_free(&cr);
	if (!ok)
		log_warnx(
		    "command %s: its result (stream %s, position %" PRIu64
		    ") is not in the log (restored from an older backup, or "
		    "repaired?): executing it again",
		    cmd, uuid_format(val, sid), pos);
	return ok;
}

static int
reply_duplicate(const uint8_t val[CMD_VAL], const uint8_t sid[UUID_LEN],
    const char *cmd, struct ipc_exec_rep *rep, char *msg, size_t ml)
{
	char other[UUID_STR_LEN];

	if (memcmp(val, sid, UUID_LEN) != 0) {
		snprintf(msg, ml,
		    "command id %s was already used for another "
		    "aggregate (stream %s)",
		    cmd, uuid_format(val, other));
		return EF_S_INVALID;
	}
	memcpy(rep->stream_id, sid, UUID_LEN);
	rep->exists = true;
	rep->version = get_le64(val + 32);
	rep->count = get_le64(val + 32) - get_le64(val + 16) + 1;
	rep->first_pos = get_le64(val + 24);
	rep->last_pos = get_le64(val + 40);
	rep->duplicate = true;
	return EF_S_OK;
}

/* One attempt: handle and append. EF_S_VERSION_CONFLICT means retry. */
/* Calls the plugin's handle() for c on in's state, into ctx (the
 * caller's, initialised). EF_S_OK, or another status with msg. */
static int
exec_handle(struct instance *in, const struct efp_command *c,
    struct efp_ctx *ctx, char *msg, size_t ml)
{
	const struct efp_aggregate *d = in->type->desc;
	struct efp_command cmd;
	int rc;

	cmd = *c;
	cmd.exists = in->exists;
	cmd.version = in->version;
	rc = d->handle(ctx, in->state.p, in->state.len, &cmd);
	if (rc != EFP_OK) {
		snprintf(msg, ml, "aggregate %s: handle(%s) failed: %s",
		    d->type, c->type,
		    ctx->has_err ? ctx->err : "error without message");
		return EF_S_INTERNAL;
	}
	if (ctx->rejected) {
		snprintf(msg, ml, "%s",
		    ctx->reject_msg ? ctx->reject_msg : "rejected");
		return EF_S_REJECTED;
	}
	return EF_S_OK;
}

/*
 * Appends the events ctx holds (one or more) to in's stream at its
 * version, with ids derived from the command id, and records the
 * command's result. EF_S_OK (rep filled), EF_S_VERSION_CONFLICT, or
 * another status with msg.
 */
static int
exec_append(struct instance *in, const struct efp_command *c, const char *meta,
    const struct efp_ctx *ctx, struct ipc_exec_rep *rep, char *msg, size_t ml)
{
	struct ipc_append_req ar;
	struct ipc_proposed *ev = NULL;
	struct ipc_append_rep ok;
	struct client_reply cr;
	char sid[UUID_STR_LEN], (*ids)[UUID_STR_LEN] = NULL;
	uint8_t id[UUID_LEN], val[CMD_VAL];
	const char *why;
	size_t i;
	int s;

	if ((ev = calloc(ctx->nevents, sizeof(*ev))) == NULL ||
	    (ids = calloc(ctx->nevents, sizeof(*ids))) == NULL)
		fatal("calloc");
	for (i = 0; i < ctx->nevents; i++) {
		event_id_for(c->command_id, i, id);
		uuid_format(id, ids[i]);
		ev[i].event_id.ptr = ids[i];
		ev[i].event_id.len = 36;
		ev[i].type.ptr = ctx->events[i].type;
		ev[i].type.len = (uint32_t)strlen(ctx->events[i].type);
		ev[i].metadata = (const uint8_t *)meta;
		ev[i].metadata_len = (uint32_t)strlen(meta);
		ev[i].payload = ctx->events[i].payload;
		ev[i].payload_len = (uint32_t)ctx->events[i].len;
	}
	memset(&ar, 0, sizeof(ar));
	ar.stream_id.ptr = uuid_format(in->stream, sid);
	ar.stream_id.len = 36;
	ar.kind = in->exists ? EF_EXPECT_EXACT : EF_EXPECT_NO_STREAM;
	ar.version = in->version;
	ar.nevents = (uint32_t)ctx->nevents;
	ar.events = ev;
	/* through the pipeline: commands executing at the same time share
	 * APPEND_MANY messages to stored (libcommon/pipeline.h) */
	s = pipeline_append_wait(&rn->appends, &ar, &cr);
	if (s == EF_S_OK) {
		if (ipc_append_rep_decode(cr.in.body, &ok, &why) != 0) {
			snprintf(msg, ml,
			    "stored sent a malformed append "
			    "reply: %s",
			    why);
			s = EF_S_INTERNAL;
		} else {
			cmd_encode(val, in->stream, ok.first_version,
			    ok.first_pos, ok.last_version, ok.last_pos);
			writer_push(WOP_CMD, c->command_id,
			    strlen(c->command_id), val, CMD_VAL, wall_ms());
			rep->exists = true;
			rep->version = ok.last_version;
			rep->count = ok.last_version - ok.first_version + 1;
			rep->first_pos = ok.first_pos;
			rep->last_pos = ok.last_pos;
			rep->duplicate = false;
		}
	} else if (s == EF_S_EVENT_ID_REUSED) {
		snprintf(msg, ml,
		    "command id %s: its event ids are already "
		    "used by events of another stream (command id reused for "
		    "another aggregate?)",
		    c->command_id);
		s = EF_S_INVALID;
	} else if (s != EF_S_VERSION_CONFLICT) {
		snprintf(msg, ml, "append to stored: %s: %.*s",
		    ipc_status_name(s), (int)cr.in.message.len,
		    cr.in.message.ptr);
	}
	client_reply_free(&cr);
	free(ev);
	free(ids);
	return s;
}

static int
exec_attempt(struct instance *in, const struct efp_command *c,
    const char *meta, struct ipc_exec_rep *rep, char *msg, size_t ml)
{
	struct efp_ctx ctx;
	int s;

	ctx_init(&ctx, CTX_HANDLE);
	if ((s = exec_handle(in, c, &ctx, msg, ml)) != EF_S_OK)
		goto out;
	memcpy(rep->stream_id, in->stream, UUID_LEN);
	if (ctx.nevents == 0) {
		rep->exists = in->exists;
		rep->version = in->version;
		rep->count = 0;
		s = EF_S_OK;
		goto out;
	}
	s = exec_append(in, c, meta, &ctx, rep, msg, ml);
out:
	ctx_free(&ctx);
	return s;
}

int
aggregate_execute(const struct efp_command *c, struct ipc_exec_rep *rep,
    char *msg, size_t ml)
{
	struct agg_type *t;
	struct instance *in;
	uint8_t sid[UUID_LEN], val[CMD_VAL];
	char *meta = NULL;
	uint64_t attempt;
	int s, found;

	memset(rep, 0, sizeof(*rep));
	if ((t = plugin_aggregate(c->aggregate_type,
	         strlen(c->aggregate_type))) == NULL) {
		snprintf(msg, ml, "no aggregate type \"%s\" is loaded",
		    c->aggregate_type);
		return EF_S_NOT_FOUND;
	}
	if ((meta = metadata_json(c)) == NULL) {
		snprintf(msg, ml,
		    "the command's ids and context must be "
		    "valid UTF-8");
		return EF_S_INVALID;
	}
	uuid_stream_id(c->aggregate_type, strlen(c->aggregate_type),
	    c->instance_id, strlen(c->instance_id), sid);
	memcpy(rep->stream_id, sid, UUID_LEN);
	__atomic_add_fetch(&t->commands, 1, __ATOMIC_RELAXED);
	in = inst_get(t, sid);
	pthread_mutex_lock(&in->mu);
	s = EF_S_ABORTED;
	for (attempt = 0; attempt <= rn->conf.max_retries; attempt++) {
		if ((s = inst_ready(in, msg, ml)) != EF_S_OK)
			break;
		found = cmd_lookup(c->command_id, strlen(c->command_id), val);
		if (found < 0) {
			snprintf(msg, ml, "command table unreadable");
			s = EF_S_INTERNAL;
			break;
		}
		if (found && !memcmp(val, sid, UUID_LEN) &&
		    (found = cmd_backed(c->command_id, val)) < 0) {
			snprintf(msg, ml, "stored did not answer");
			s = EF_S_UNAVAILABLE;
			break;
		}
		if (found) {
			s = reply_duplicate(val, sid, c->command_id, rep, msg,
			    ml);
			break;
		}
		s = exec_attempt(in, c, meta, rep, msg, ml);
		if (s != EF_S_VERSION_CONFLICT)
			break;
		log_debug("command %s: version conflict on %s/%s, retrying",
		    c->command_id, c->aggregate_type, c->instance_id);
	}
	if (s == EF_S_VERSION_CONFLICT) {
		snprintf(msg, ml,
		    "gave up after %" PRIu64 " version "
		    "conflicts (max_retries %" PRIu64 ")",
		    attempt, rn->conf.max_retries);
		s = EF_S_ABORTED;
	}
	pthread_mutex_unlock(&in->mu);
	inst_put(in);
	free(meta);
	return s;
}

int
aggregate_get_state(const char *type, const char *inst, uint8_t sid[UUID_LEN],
    bool *exists, uint64_t *version, uint8_t **state, size_t *len, char *msg,
    size_t ml)
{
	struct agg_type *t;
	struct instance *in;
	int s;

	*state = NULL;
	*len = 0;
	if ((t = plugin_aggregate(type, strlen(type))) == NULL) {
		snprintf(msg, ml, "no aggregate type \"%s\" is loaded", type);
		return EF_S_NOT_FOUND;
	}
	uuid_stream_id(type, strlen(type), inst, strlen(inst), sid);
	in = inst_get(t, sid);
	pthread_mutex_lock(&in->mu);
	if ((s = inst_ready(in, msg, ml)) == EF_S_OK) {
		*exists = in->exists;
		*version = in->version;
		if ((*state = malloc(in->state.len ? in->state.len : 1)) ==
		    NULL)
			fatal("malloc");
		if (in->state.len)
			memcpy(*state, in->state.p, in->state.len);
		*len = in->state.len;
	}
	pthread_mutex_unlock(&in->mu);
	inst_put(in);
	return s;
}
