/* SPDX-License-Identifier: MIT */
/*
 * projection.c - what is specific to projections: applying one event
 * through the plugin with the host's key-value functions bound to an
 * LMDB transaction, QUERY (key, prefix, range, paging, and waiting for
 * a position: read-your-writes), and REPLAY (time travel: fold events
 * 0..until into a scratch LMDB environment and return its keys, without
 * touching the live projection).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "fold.h"
#include "plugin.h"
#include "runnerd.h"
#include "state.h"

#define QUERY_MAX_BYTES (4u << 20)
#define QUERY_DEFAULT   100

int
projection_apply(struct fold *f, MDB_txn *txn, MDB_dbi dbi,
    const struct ef_event *ev, char *msg, size_t ml)
{
	struct efp_ctx c;
	struct efp_event v;
	struct view_buf vb;
	int rc;

	ctx_init(&c, CTX_PROJECT);
	c.txn = txn;
	c.dbi = dbi;
	event_view(ev, &v, &vb);
	rc = f->proj->apply(&c, &v);
	if (c.io_err && c.io_rc == MDB_MAP_FULL) {
		/* not the plugin's failure: the caller grows the map */
		ctx_free(&c);
		return MDB_MAP_FULL;
	}
	if (rc != EFP_OK || c.io_err) {
		snprintf(msg, ml,
		    "apply of %s at position %" PRIu64 " failed: %s", vb.type,
		    ev->global_position,
		    c.has_err ? c.err : "error without message");
		ctx_free(&c);
		return -1;
	}
	ctx_free(&c);
	return 0;
}

/* Waits until f has applied position pos. */
static int
query_wait(struct fold *f, uint64_t pos, uint64_t wait_ms, char *msg,
    size_t ml)
{
	struct timespec ts;
	int rc = EF_S_OK;

	clock_deadline_ms(&ts, wait_ms);
	pthread_mutex_lock(&f->mu);
	if (f->next <= pos)
		__atomic_store_n(&f->hurry, 1, __ATOMIC_RELAXED);
	while (f->next <= pos) {
		if (f->stopped) {
			snprintf(msg, ml,
			    "projection %s stopped at position %" PRIu64
			    " before %" PRIu64 ": %s",
			    f->name, f->err_pos, pos, f->err);
			rc = EF_S_ABORTED;
			break;
		}
		__atomic_store_n(&f->hurry, 1, __ATOMIC_RELAXED);
		if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0 &&
		    f->next <= pos) {
			snprintf(msg, ml,
			    "projection %s has applied %" PRIu64
			    " events, not yet position %" PRIu64
			    " (waited %" PRIu64 " ms)",
			    f->name, f->next, pos, wait_ms);
			rc = EF_S_DEADLINE;
			break;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

static int
key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c != 0)
		return c;
	return al < bl ? -1 : al > bl;
}

/*
 * A PREFIX or RANGE query from cur: up to limit pairs (and
 * QUERY_MAX_BYTES) into ks and vs, *n of them, *more when some were
 * left. 0 or MDB_NOTFOUND at the end; another LMDB code on failure.
 */
static int
query_scan(MDB_cursor *cur, const struct ipc_query_req *q, uint64_t limit,
    MDB_val *ks, MDB_val *vs, uint64_t *n, int *more)
{
	MDB_val k, v;
	MDB_cursor_op op;
	uint64_t bytes = 0;
	int rc;

	/* where to start: the later of the lower bound and the cursor */
	op = MDB_FIRST;
	if (q->has_key && q->key_len > 0) {
		k.mv_size = q->key_len;
		k.mv_data = (void *)q->key;
		op = MDB_SET_RANGE;
	}
	if (q->has_after &&
	    (op == MDB_FIRST ||
	        key_cmp(q->after, q->after_len, q->key, q->key_len) >= 0)) {
		k.mv_size = q->after_len;
		k.mv_data = (void *)q->after;
		op = MDB_SET_RANGE;
	}
	if (op == MDB_SET_RANGE && k.mv_size == 0)
		op = MDB_FIRST;
	rc = mdb_cursor_get(cur, &k, &v, op);
	if (rc == 0 && q->has_after &&
	    key_cmp(k.mv_data, k.mv_size, q->after, q->after_len) <= 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (q->mode == EF_QUERY_PREFIX &&
		    (k.mv_size < q->key_len ||
		        memcmp(k.mv_data, q->key, q->key_len) != 0))
			break;
		if (q->mode == EF_QUERY_RANGE && q->has_end &&
		    key_cmp(k.mv_data, k.mv_size, q->end, q->end_len) >= 0)
			break;
		if (*n == limit ||
		    (*n > 0 &&
		        bytes + k.mv_size + v.mv_size > QUERY_MAX_BYTES)) {
			*more = 1;
			break;
		}
		ks[*n] = k;
		vs[*n] = v;
		bytes += k.mv_size + v.mv_size + 16;
		(*n)++;
	}
	return rc;
}

int
projection_query(struct fold *f, const struct ipc_query_req *q,
    struct ipc_out *out, char *msg, size_t ml)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v, *ks = NULL, *vs = NULL;
	uint64_t gen, next = 0, limit, n = 0;
	int rc, s = EF_S_OK, more = 0;

	if ((s = fold_need_projection(f, ", not a projection", msg, ml)) !=
	    EF_S_OK)
		return s;
	if (q->has_min_position &&
	    (s = query_wait(f, q->min_position, q->wait_ms, msg, ml)) !=
	        EF_S_OK)
		return s;
	limit = q->limit ? q->limit : QUERY_DEFAULT;
	if ((ks = calloc(limit, sizeof(*ks))) == NULL ||
	    (vs = calloc(limit, sizeof(*vs))) == NULL)
		fatal("calloc");
	pthread_rwlock_rdlock(&f->dbi_lock);
	if ((rc = state_begin(1, &txn)) != 0 ||
	    (rc = state_checkpoint_get(txn, f->name, &gen, &next, NULL,
	         NULL)) != 0 ||
	    (rc = mdb_cursor_open(txn, f->dbi, &cur)) != 0) {
		snprintf(msg, ml, "LMDB: %s", mdb_strerror(rc));
		s = EF_S_INTERNAL;
		goto out;
	}
	if (q->mode == EF_QUERY_KEY) {
		k.mv_size = q->key_len;
		k.mv_data = (void *)q->key;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
		if (rc == MDB_NOTFOUND) {
			snprintf(msg, ml, "no key \"%.*s\" in %s",
			    (int)(q->key_len > 64 ? 64 : q->key_len),
			    (const char *)q->key, f->name);
			s = EF_S_NOT_FOUND;
			goto out;
		}
		if (rc == 0) {
			ks[0] = k;
			vs[0] = v;
			n = 1;
		}
		goto encode;
	}
	rc = query_scan(cur, q, limit, ks, vs, &n, &more);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		snprintf(msg, ml, "LMDB: %s", mdb_strerror(rc));
		s = EF_S_INTERNAL;
		goto out;
	}
encode:
	ipc_out_reset(out);
	ipc_reply_begin(out, EF_S_OK, "ok");
	ipc_query_rep_begin(out, next, (uint32_t)n);
	for (uint64_t i = 0; i < n; i++)
		ipc_kv_encode(out, ks[i].mv_data, ks[i].mv_size, vs[i].mv_data,
		    vs[i].mv_size);
	if (more)
		ipc_query_rep_end(out, ks[n - 1].mv_data, ks[n - 1].mv_size);
	else
		ipc_query_rep_end(out, NULL, 0);
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		state_abort(txn);
	pthread_rwlock_unlock(&f->dbi_lock);
	free(ks);
	free(vs);
	return s;
}

static void
rm_env_dir(const char *dir)
{
	char p[4300];

	snprintf(p, sizeof(p), "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", dir);
	unlink(p);
	rmdir(dir);
}

/* REPLAY's fold into a scratch environment. */
struct replay {
	MDB_env *env;
	MDB_dbi dbi;
	uint64_t map;   /* the scratch map's size */
	uint64_t next;  /* the next position to apply */
	uint64_t until; /* the last position to apply */
	int done;
};

/* Reports an LMDB failure of the scratch environment: EF_S_INTERNAL. */
static int
replay_lmdb_fail(int rc, char *msg, size_t ml)
{
	snprintf(msg, ml, "scratch LMDB: %s", mdb_strerror(rc));
	return EF_S_INTERNAL;
}

/* Creates the scratch environment in dir. EF_S_OK or EF_S_INTERNAL. */
static int
replay_open(struct replay *rp, const char *dir, char *msg, size_t ml)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_env_create(&rp->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(rp->env, (size_t)rp->map)) != 0 ||
	    (rc = mdb_env_open(rp->env, dir, MDB_NOSYNC | MDB_NOTLS, 0600)) !=
	        0)
		return replay_lmdb_fail(rc, msg, ml);
	if ((rc = mdb_txn_begin(rp->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &rp->dbi)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0)
		return replay_lmdb_fail(rc, msg, ml);
	return EF_S_OK;
}

/*
 * Reads one page from rp->next and applies it in one scratch
 * transaction; a full map is doubled and the page read again. EF_S_OK
 * (rp->done set at the end), or another status with msg.
 */
static int
replay_page(struct fold *f, struct replay *rp, char *msg, size_t ml)
{
	struct client_reply rep;
	struct ipc_read_rep rr;
	struct ef_event ev;
	const char *why;
	MDB_txn *txn;
	uint64_t page_start;
	uint32_t j;
	int rc, s, full;

	s = client_read_all(&f->rn->store, rp->next, f->rn->conf.page,
	    EF_FORWARD, &rep, &rr);
	if (s != EF_S_OK) {
		snprintf(msg, ml, "reading from stored: %.*s",
		    (int)rep.in.message.len, rep.in.message.ptr);
		client_reply_free(&rep);
		return s;
	}
	if (rr.nevents == 0)
		rp->done = 1;
	page_start = rp->next;
	full = 0;
	if ((rc = mdb_txn_begin(rp->env, NULL, 0, &txn)) != 0) {
		client_reply_free(&rep);
		return replay_lmdb_fail(rc, msg, ml);
	}
	for (j = 0; j < rr.nevents && !rp->done; j++) {
		if (ipc_event_decode(&rr.events->via.array.ptr[j], &ev,
		        &why) != 0 ||
		    ev.global_position != rp->next) {
			snprintf(msg, ml,
			    "stored sent an unexpected "
			    "event");
			s = EF_S_INTERNAL;
			break;
		}
		if (ev.global_position > rp->until) {
			rp->done = 1;
			break;
		}
		if ((rc = projection_apply(f, txn, rp->dbi, &ev, msg, ml)) ==
		    MDB_MAP_FULL) {
			full = 1;
			break;
		} else if (rc != 0) {
			s = EF_S_ABORTED;
			break;
		}
		rp->next++;
	}
	client_reply_free(&rep);
	if (s != EF_S_OK || full) {
		mdb_txn_abort(txn);
		if (s != EF_S_OK)
			return s;
	} else {
		rc = mdb_txn_commit(txn);
		if (rc == MDB_MAP_FULL)
			full = 1;
		else if (rc != 0)
			return replay_lmdb_fail(rc, msg, ml);
	}
	if (full) {
		/* no transaction open: grow, read the page again */
		rp->map *= 2;
		if ((rc = mdb_env_set_mapsize(rp->env, (size_t)rp->map)) != 0)
			return replay_lmdb_fail(rc, msg, ml);
		state_count_grow();
		rp->next = page_start;
		rp->done = 0;
		return EF_S_OK;
	}
	if (rp->next >= rr.head)
		rp->done = 1;
	return EF_S_OK;
}

/* The REPLAY reply: the first limit pairs of the scratch database. */
static int
replay_reply(struct replay *rp, uint64_t limit, struct ipc_out *out, char *msg,
    size_t ml)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t n = 0, i;
	int rc, truncated = 0;

	if ((rc = mdb_txn_begin(rp->env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_cursor_open(txn, rp->dbi, &cur)) != 0) {
		if (txn != NULL)
			mdb_txn_abort(txn);
		return replay_lmdb_fail(rc, msg, ml);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		n++;
	if (n > limit) {
		n = limit;
		truncated = 1;
	}
	ipc_out_reset(out);
	ipc_reply_begin(out, EF_S_OK, "ok");
	ipc_replay_rep_begin(out, rp->next, (uint32_t)n);
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (i = 0; i < n && rc == 0; i++) {
		ipc_kv_encode(out, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	ipc_replay_rep_end(out, truncated);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return EF_S_OK;
}

int
projection_replay(struct fold *f, uint64_t until, uint64_t limit,
    struct ipc_out *out, char *msg, size_t ml)
{
	struct replay rp;
	char dir[4200];
	int s;

	if ((s = fold_need_projection(f, ": replaying it would send commands",
	         msg, ml)) != EF_S_OK)
		return s;
	if (limit == 0)
		limit = 1000;
	snprintf(dir, sizeof(dir), "%s/runner/replay.XXXXXX",
	    f->rn->conf.data_dir);
	if (mkdtemp(dir) == NULL) {
		snprintf(msg, ml, "mkdtemp %s: %s", dir, strerror(errno));
		return EF_S_INTERNAL;
	}
	memset(&rp, 0, sizeof(rp));
	/* the scratch map starts at map_size and grows like the live one */
	rp.map = f->rn->conf.map_size;
	rp.until = until;
	if ((s = replay_open(&rp, dir, msg, ml)) != EF_S_OK)
		goto out;
	while (!rp.done && rp.next <= until)
		if ((s = replay_page(f, &rp, msg, ml)) != EF_S_OK)
			goto out;
	s = replay_reply(&rp, limit, out, msg, ml);
out:
	if (rp.env != NULL)
		mdb_env_close(rp.env);
	rm_env_dir(dir);
	return s;
}
