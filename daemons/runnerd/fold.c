/* SPDX-License-Identifier: MIT */
/*
 * fold.c - the engine under projections and process managers ("folds").
 *
 * Each fold has a subscription thread (a "pipe") running sub_run() from
 * the fold's checkpoint, catch-up then live with the design's gap
 * filling, which copies every event into a bounded queue; and a fold
 * thread that takes what is queued, applies it and commits the
 * checkpoint. For a projection, the writes of a batch and its
 * checkpoint are one LMDB transaction, so a kill -9 at any moment
 * neither repeats nor skips an event. Batches grow with the load (all
 * that is queued, up to fold_batch) and shrink to one event when quiet,
 * so a lone event is visible after one commit.
 *
 * Control requests (reset, the swap at the end of a rebuild, quit) are
 * handled by the fold thread between batches, with the pipe stopped:
 * it is then restarted from the new checkpoint. A rebuild runs a
 * second pipe and applier into generation gen + 1 until it has caught
 * up with the log, then asks for the swap: one transaction points the
 * checkpoint at the new generation and drops the old database.
 *
 * A rebuild survives a restart by starting over. REBUILD records
 * "rebuild/NAME" in "meta" before it starts; the swap transaction
 * deletes it, and so does a rebuild that failed (its error is shown;
 * another REBUILD retries). At start, generation gen + 1 is always
 * dropped (it is never half-swapped: the old generation serves until
 * the one swap transaction), and a fold whose record is there rebuilds
 * again from position 0 as soon as it runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "fold.h"
#include "plugin.h"
#include "procmgr.h"
#include "runnerd.h"
#include "state.h"

#define Q_MAX_EVENTS 65536
#define Q_MAX_BYTES  (64u << 20)

static struct fold **folds;
static size_t nfolds;

/* The queue. */

static void
evq_init(struct evq *q)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv_put, NULL);
	pthread_cond_init(&q->cv_get, NULL);
}

static void
evq_free_list(struct qev *e)
{
	struct qev *n;

	for (; e != NULL; e = n) {
		n = e->next;
		free(e);
	}
}

static void
evq_clear(struct evq *q)
{
	pthread_mutex_lock(&q->mu);
	evq_free_list(q->head);
	q->head = q->tail = NULL;
	q->n = q->bytes = 0;
	pthread_cond_broadcast(&q->cv_put);
	pthread_mutex_unlock(&q->mu);
}

/* Copies ev into the queue; waits while it is full. 1 if stopped. */
static int
evq_push(struct evq *q, const struct ef_event *ev, volatile int *stop)
{
	struct qev *e;
	size_t size = ev->type_len + ev->metadata_len + ev->payload_len;
	struct timespec ts;
	uint8_t *p;

	if ((e = malloc(sizeof(*e) + size)) == NULL)
		fatal("malloc");
	e->next = NULL;
	e->size = size;
	e->ev = *ev;
	p = e->data;
	memcpy(p, ev->type, ev->type_len);
	e->ev.type = (const char *)p;
	p += ev->type_len;
	if (ev->metadata_len)
		memcpy(p, ev->metadata, ev->metadata_len);
	e->ev.metadata = p;
	p += ev->metadata_len;
	if (ev->payload_len)
		memcpy(p, ev->payload, ev->payload_len);
	e->ev.payload = p;
	pthread_mutex_lock(&q->mu);
	while ((q->n >= Q_MAX_EVENTS || q->bytes >= Q_MAX_BYTES) &&
	    !__atomic_load_n(stop, __ATOMIC_RELAXED)) {
		clock_deadline_ms(&ts, 100);
		pthread_cond_timedwait(&q->cv_put, &q->mu, &ts);
	}
	if (__atomic_load_n(stop, __ATOMIC_RELAXED)) {
		pthread_mutex_unlock(&q->mu);
		free(e);
		return 1;
	}
	if (q->tail != NULL)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	q->n++;
	q->bytes += size;
	pthread_cond_signal(&q->cv_get);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

/* Takes up to max queued events, waiting up to ms for the first. */
static struct qev *
evq_take(struct evq *q, size_t max, uint64_t ms, size_t *n)
{
	struct qev *head, *e;
	struct timespec ts;
	size_t k = 0;

	*n = 0;
	pthread_mutex_lock(&q->mu);
	if (q->head == NULL) {
		clock_deadline_ms(&ts, ms);
		pthread_cond_timedwait(&q->cv_get, &q->mu, &ts);
	}
	head = q->head;
	for (e = head; e != NULL && k < max; e = e->next) {
		k++;
		q->bytes -= e->size;
		if (k == max || e->next == NULL)
			break;
	}
	if (head != NULL) {
		q->head = e->next;
		if (q->head == NULL)
			q->tail = NULL;
		e->next = NULL;
		q->n -= k;
		pthread_cond_broadcast(&q->cv_put);
	}
	pthread_mutex_unlock(&q->mu);
	*n = k;
	return head;
}

/* Pipes. */

static int
pipe_on_event(void *arg, const struct ef_event *ev)
{
	struct pipe *p = arg;

	if (evq_push(&p->q, ev, &p->stop))
		return 1;
	memcpy(p->last_id, ev->event_id, UUID_LEN);
	p->has_id = 1;
	__atomic_store_n(&p->delivered, ev->global_position + 1,
	    __ATOMIC_RELEASE);
	return 0;
}

static int
pipe_on_caught_up(void *arg)
{
	struct pipe *p = arg;

	__atomic_store_n(&p->caught_up, 1, __ATOMIC_RELEASE);
	return 0;
}

static void *
pipe_main(void *arg)
{
	struct pipe *p = arg;
	struct sub_params sp;
	int rc;

	memset(&sp, 0, sizeof(sp));
	sp.store_url = p->f->rn->store_url;
	sp.events_url = p->f->rn->events_url;
	sp.page = (uint32_t)p->f->rn->conf.page;
	sp.on_event = pipe_on_event;
	sp.on_caught_up = pipe_on_caught_up;
	sp.arg = p;
	sp.stop = &p->stop;
	while (!__atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
		sp.from = __atomic_load_n(&p->delivered, __ATOMIC_ACQUIRE);
		/* the fold's own pipe only: a rebuild starts at 0 on the
		 * log as it is */
		sp.check_log = p->check;
		sp.from_id = p->has_id ? p->last_id : NULL;
		rc = sub_run(&sp);
		if (rc == SUB_LOG_CHANGED) {
			/* the fold thread checks its checkpoint again */
			__atomic_store_n(&p->changed, 1, __ATOMIC_RELEASE);
			break;
		}
		if (rc == 0 || rc == 1)
			continue;
		log_warnx("%s: subscription failed (%d), retrying", p->f->name,
		    rc);
		runner_nap(p->f->rn, 500);
	}
	return NULL;
}

/* from_id: the id of the event at from - 1 (NULL: unknown); check: the
 * log is checked against the last event delivered (not in a rebuild). */
static void
pipe_start(struct pipe *p, struct fold *f, uint64_t from,
    const uint8_t *from_id, int check)
{
	p->f = f;
	p->stop = 0;
	p->from = from;
	p->delivered = from;
	p->caught_up = 0;
	p->changed = 0;
	p->check = check;
	if ((p->has_id = from_id != NULL))
		memcpy(p->last_id, from_id, UUID_LEN);
	evq_clear(&p->q);
	if (pthread_create(&p->thr, NULL, pipe_main, p) != 0)
		fatal("pthread_create");
	p->running = 1;
}

static void
pipe_stop(struct pipe *p)
{
	if (!p->running)
		return;
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELAXED);
	evq_clear(&p->q); /* wakes a blocked push */
	pthread_join(p->thr, NULL);
	p->running = 0;
	evq_clear(&p->q);
}

/* Folds. */

static struct fold *
fold_new(const char *name, int kind, struct plugin *pl)
{
	struct fold *f, **nf;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->name = strdup(name)) == NULL)
		fatal("calloc");
	f->kind = kind;
	f->plugin = pl;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	pthread_rwlock_init(&f->dbi_lock, NULL);
	evq_init(&f->pipe.q);
	evq_init(&f->rb_pipe.q);
	if ((nf = realloc(folds, (nfolds + 1) * sizeof(*nf))) == NULL)
		fatal("realloc");
	folds = nf;
	folds[nfolds++] = f;
	return f;
}

int
fold_add_projection(const struct efp_projection *p, struct plugin *pl)
{
	struct fold *f = fold_new(p->name, EF_FOLD_PROJECTION, pl);

	f->proj = p;
	return 0;
}

int
fold_add_manager(const struct efp_manager *m, struct plugin *pl)
{
	struct fold *f = fold_new(m->name, EF_FOLD_MANAGER, pl);

	f->mgr = m;
	return 0;
}

struct fold *
fold_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < nfolds; i++)
		if (strlen(folds[i]->name) == len &&
		    !memcmp(folds[i]->name, name, len))
			return folds[i];
	return NULL;
}

void
fold_info(struct fold *f, bool has_head, uint64_t head,
    struct ipc_fold_info *fi, char *err, size_t errlen)
{
	const char *state;

	memset(fi, 0, sizeof(*fi));
	fi->name = ipc_cstr(f->name);
	fi->plugin = ipc_cstr(f->plugin->file);
	fi->kind = (uint8_t)f->kind;
	pthread_mutex_lock(&f->mu);
	fi->position = f->next;
	/* a fold without its store is not live, whatever it was */
	state = f->stopped ? "stopped" :
	    !has_head      ? "waiting-for-store" :
	    f->live        ? "live" :
	                     "catching-up";
	fi->events_per_s = f->rate;
	fi->has_error = f->stopped || f->err[0] != '\0';
	fi->error_position = f->err_pos;
	snprintf(err, errlen, "%s", f->err);
	fi->rebuilding = f->rebuilding;
	fi->rebuild_position = __atomic_load_n(&f->rb_next, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&f->mu);
	fi->state = ipc_cstr(state);
	fi->error = ipc_cstr(err);
	fi->has_lag = has_head;
	fi->lag = head > fi->position ? head - fi->position : 0;
	if (f->kind == EF_FOLD_MANAGER)
		fi->dead_letters = procmgr_count_dead(f->name);
}

size_t
fold_count(void)
{
	return nfolds;
}

struct fold *
fold_at(size_t i)
{
	return i < nfolds ? folds[i] : NULL;
}

static void
gen_name(char *buf, size_t len, const struct fold *f, uint64_t gen)
{
	snprintf(buf, len, "fold/%s/%" PRIu64, f->name, gen);
}

static void
fold_set_error(struct fold *f, uint64_t pos, const char *msg)
{
	pthread_mutex_lock(&f->mu);
	f->stopped = 1;
	f->err_pos = pos;
	snprintf(f->err, sizeof(f->err), "%s", msg);
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	log_warnx("%s %s stopped at position %" PRIu64 ": %s",
	    f->kind == EF_FOLD_PROJECTION ? "projection" : "process manager",
	    f->name, pos, msg);
}

/*
 * Projections: applies events of list (n of them, from position next)
 * into dbi and, if ckpt, the checkpoint, in one transaction. Returns the
 * number applied and committed; on an apply failure at event k, events
 * before k are committed and *failed is set with msg.
 */
static size_t
proj_batch(struct fold *f, MDB_dbi dbi, uint64_t gen, int ckpt,
    struct qev *list, size_t n, uint64_t next, int *failed, uint64_t *fpos,
    uint8_t last_id[UUID_LEN], char *msg, size_t ml)
{
	MDB_txn *txn;
	struct qev *e, *last = NULL;
	size_t k, limit = n;
	int rc;

	*failed = 0;
again:
	if ((rc = state_begin(0, &txn)) != 0) {
		snprintf(msg, ml, "LMDB: %s", mdb_strerror(rc));
		*failed = 1;
		*fpos = next;
		return 0;
	}
	for (k = 0, e = list; k < limit; k++, e = e->next) {
		last = e;
		if (e->ev.global_position != next + k) {
			snprintf(msg, ml,
			    "internal: event at position %" PRIu64
			    " where %" PRIu64 " was expected",
			    e->ev.global_position, next + k);
			rc = -1;
		} else
			rc = projection_apply(f, txn, dbi, &e->ev, msg, ml);
		if (rc == MDB_MAP_FULL) {
			state_abort(txn);
			goto grow;
		}
		if (rc != 0) {
			state_abort(txn);
			*failed = 1;
			*fpos = next + k;
			if (k == 0)
				return 0;
			limit = k; /* redo what went well, then stop */
			goto again;
		}
	}
	if (ckpt &&
	    (rc = state_checkpoint_put(txn, f->name, gen, next + limit,
	         last->ev.event_id)) != 0) {
		state_abort(txn);
		if (rc == MDB_MAP_FULL)
			goto grow;
		snprintf(msg, ml, "LMDB checkpoint: %s", mdb_strerror(rc));
		*failed = 1;
		*fpos = next;
		return 0;
	}
	if ((rc = state_commit(txn, f->name)) != 0) {
		if (rc == MDB_MAP_FULL)
			goto grow;
		/* a full disk: the same batch again once there is space */
		if (state_wait_space(f->rn, f->name, rc,
		        ckpt ? (volatile int *)&f->req : &f->rb_stop))
			goto again;
		snprintf(msg, ml, "LMDB commit: %s", mdb_strerror(rc));
		*failed = 1;
		*fpos = next;
		return 0;
	}
	memcpy(last_id, last->ev.event_id, UUID_LEN);
	return limit;
grow:
	/* the whole batch again, into a map twice the size */
	if ((rc = state_grow(f->name)) == 0)
		goto again;
	snprintf(msg, ml, "LMDB map full and it cannot grow: %s",
	    mdb_strerror(rc));
	*failed = 1;
	*fpos = next;
	return 0;
}

static int
mgr_checkpoint(struct fold *f, uint64_t next, const uint8_t id[UUID_LEN])
{
	MDB_txn *txn;
	int rc;

	do {
		if ((rc = state_begin(0, &txn)) != 0)
			return rc;
		if ((rc = state_checkpoint_put(txn, f->name, f->gen, next,
		         id)) != 0)
			state_abort(txn);
		else
			rc = state_commit(txn, f->name);
	} while ((rc == MDB_MAP_FULL && state_grow(f->name) == 0) ||
	    state_wait_space(f->rn, f->name, rc, NULL));
	return rc;
}

/* Managers: one event at a time; the checkpoint once per batch. */
static size_t
mgr_batch(struct fold *f, struct qev *list, size_t n, uint64_t next,
    int *failed, uint64_t *fpos, int *interrupted, uint8_t last_id[UUID_LEN],
    char *msg, size_t ml)
{
	struct qev *e, *last = NULL;
	size_t k;
	int rc;

	*failed = 0;
	*interrupted = 0;
	for (k = 0, e = list; k < n; k++, e = e->next) {
		if (e->ev.global_position != next + k) {
			snprintf(msg, ml,
			    "internal: event at position %" PRIu64
			    " where %" PRIu64 " was expected",
			    e->ev.global_position, next + k);
			*failed = 1;
			*fpos = next + k;
			break;
		}
		rc = procmgr_event(f, &e->ev, msg, ml);
		if (rc < 0) {
			*interrupted = 1;
			break;
		}
		if (rc > 0) {
			*failed = 1;
			*fpos = next + k;
			break;
		}
		last = e;
	}
	if (k > 0 &&
	    (rc = mgr_checkpoint(f, next + k, last->ev.event_id)) != 0) {
		snprintf(msg, ml, "LMDB checkpoint: %s", mdb_strerror(rc));
		*failed = 1;
		*fpos = next;
		return 0;
	}
	if (k > 0)
		memcpy(last_id, last->ev.event_id, UUID_LEN);
	return k;
}

/* Records (on) or deletes the "a rebuild is under way" mark in txn. */
static int
rb_mark(MDB_txn *txn, const char *name, int on)
{
	char key[IPC_NAME_MAX + 16];
	MDB_val k, v = { 1, "1" };
	int rc;

	k.mv_size = (size_t)snprintf(key, sizeof(key), "rebuild/%s", name);
	k.mv_data = key;
	if (on)
		return mdb_put(txn, state_db(STATE_META), &k, &v, 0);
	rc = mdb_del(txn, state_db(STATE_META), &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* rb_mark in a transaction of its own. */
static int
rb_mark_commit(const char *name, int on)
{
	MDB_txn *txn;
	int rc;

	do {
		if ((rc = state_begin(0, &txn)) != 0)
			break;
		if ((rc = rb_mark(txn, name, on)) == 0)
			rc = state_commit(txn, name);
		else
			state_abort(txn);
	} while (rc == MDB_MAP_FULL && state_grow(name) == 0);
	return rc;
}

static int
fold_load(struct fold *f)
{
	MDB_txn *txn;
	char name[IPC_NAME_MAX + 32];
	MDB_dbi old;
	int rc;

	do {
		if ((rc = state_begin(0, &txn)) != 0)
			return rc;
		rc = state_checkpoint_get(txn, f->name, &f->gen, &f->next,
		    f->last_id, &f->has_id);
		if (rc == 0 || rc == MDB_NOTFOUND) {
			MDB_val k, v;
			char key[IPC_NAME_MAX + 16];
			int mrc;

			k.mv_size = (size_t)snprintf(key, sizeof(key),
			    "rebuild/%s", f->name);
			k.mv_data = key;
			mrc = mdb_get(txn, state_db(STATE_META), &k, &v);
			f->rb_resume = mrc == 0 &&
			    f->kind == EF_FOLD_PROJECTION;
		}
		if (rc == MDB_NOTFOUND) {
			f->gen = 0;
			f->next = 0;
			f->has_id = 0;
			rc = state_checkpoint_put(txn, f->name, 0, 0, NULL);
		}
		if (rc != 0)
			state_abort(txn);
		else
			rc = state_commit(txn, f->name);
	} while (rc == MDB_MAP_FULL && state_grow(f->name) == 0);
	if (rc != 0)
		return rc;
	if (f->kind == EF_FOLD_PROJECTION) {
		gen_name(name, sizeof(name), f, f->gen);
		if ((rc = state_dbi(name, 1, &f->dbi)) != 0)
			return rc;
		/* a rebuild that did not finish before a crash */
		gen_name(name, sizeof(name), f, f->gen + 1);
		if (state_dbi(name, 0, &old) == 0)
			state_drop(old, 1);
	}
	return 0;
}

static int
fold_do_reset(struct fold *f)
{
	MDB_txn *txn;
	int rc;

	pthread_rwlock_wrlock(&f->dbi_lock);
	do {
		if ((rc = state_begin(0, &txn)) != 0)
			break;
		if (f->kind == EF_FOLD_PROJECTION)
			rc = mdb_drop(txn, f->dbi, 0);
		if (rc == 0)
			rc = state_checkpoint_put(txn, f->name, f->gen, 0,
			    NULL);
		if (rc == 0)
			rc = state_commit(txn, f->name);
		else
			state_abort(txn);
	} while (rc == MDB_MAP_FULL && state_grow(f->name) == 0);
	pthread_rwlock_unlock(&f->dbi_lock);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&f->mu);
	f->next = 0;
	f->has_id = 0;
	f->stopped = 0;
	f->err[0] = '\0';
	pthread_mutex_unlock(&f->mu);
	log_info("%s: reset to position 0", f->name);
	return 0;
}

/* Joins a finished rebuild thread, if there is one. */
static void
rb_reap(struct fold *f)
{
	int j;

	pthread_mutex_lock(&f->mu);
	j = f->rb_joinable;
	f->rb_joinable = 0;
	pthread_mutex_unlock(&f->mu);
	if (j)
		pthread_join(f->rb_thr, NULL);
}

static int
fold_do_swap(struct fold *f)
{
	MDB_txn *txn;
	MDB_dbi old = f->dbi;
	int rc;

	rb_reap(f);
	pthread_rwlock_wrlock(&f->dbi_lock);
	do {
		if ((rc = state_begin(0, &txn)) != 0)
			break;
		rc = state_checkpoint_put(txn, f->name, f->gen + 1, f->rb_next,
		    f->rb_next ? f->rb_last_id : NULL);
		if (rc == 0)
			rc = rb_mark(txn, f->name, 0);
		if (rc == 0)
			rc = mdb_drop(txn, old, 1);
		if (rc == 0)
			rc = state_commit(txn, f->name);
		else
			state_abort(txn);
	} while (rc == MDB_MAP_FULL && state_grow(f->name) == 0);
	if (rc == 0) {
		pthread_mutex_lock(&f->mu);
		f->dbi = f->rb_dbi;
		f->gen++;
		f->next = f->rb_next;
		memcpy(f->last_id, f->rb_last_id, UUID_LEN);
		f->has_id = f->rb_next > 0;
		f->stopped = 0;
		f->err[0] = '\0';
		f->rebuilding = 0;
		pthread_mutex_unlock(&f->mu);
	}
	pthread_rwlock_unlock(&f->dbi_lock);
	if (rc == 0)
		log_info("%s: rebuild swapped in at position %" PRIu64
		         " (generation %" PRIu64 ")",
		    f->name, f->next, f->gen);
	else
		log_warnx("%s: rebuild swap failed: %s", f->name,
		    mdb_strerror(rc));
	return rc;
}

static void
rd_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * Does the checkpoint match the log it is given? A log restored from an
 * older backup ends before the checkpoint; a repaired or replaced one
 * holds another event at the last applied position (its id is kept with
 * the checkpoint). Either way skipping to the checkpoint would silently
 * miss or misapply events, so the fold starts again from position 0
 * (the caller resets it; a process manager re-reacts, and its commands
 * carry ids derived from the events, so aggregates see repeats as
 * repeats). 0 matches, 1 does not (logged), -EAGAIN stored did not
 * answer (try again). A log that cannot be read there (DATA_LOSS) is logged
 * and left to the fold, which stops at the damage as it would anyway.
 */
static int
fold_check(struct fold *f, struct ef_client *store)
{
	struct client_reply cr;
	struct ipc_read_rep rr;
	struct ef_event ev;
	char want[UUID_STR_LEN], got[UUID_STR_LEN];
	const char *why = "",
	           *what = f->kind == EF_FOLD_PROJECTION ? "projection" :
	                                                   "process manager";
	int st, rc = 0;

	if (f->next == 0)
		return 0;
	st = client_read_all(store, f->next - 1, 1, EF_FORWARD, &cr, &rr);
	if (st == EF_S_UNAVAILABLE || st == EF_S_DEADLINE) {
		client_reply_free(&cr);
		return -EAGAIN;
	}
	if (st != EF_S_OK) {
		log_warnx(
		    "%s %s: cannot check the checkpoint at position %" PRIu64
		    " against the log: %s: %.*s",
		    what, f->name, f->next, ipc_status_name(st),
		    (int)cr.in.message.len,
		    cr.in.message.ptr ? cr.in.message.ptr : "");
		client_reply_free(&cr);
		return 0;
	}
	if (rr.head < f->next) {
		log_warnx(
		    "%s %s: its checkpoint (position %" PRIu64 ") is "
		    "beyond the log's head (%" PRIu64
		    "): the log is older than "
		    "the state (restored from a backup?); rebuilding from "
		    "position 0",
		    what, f->name, f->next, rr.head);
		rc = 1;
	} else if (f->has_id &&
	    (rr.nevents != 1 ||
	        ipc_event_decode(&rr.events->via.array.ptr[0], &ev, &why) !=
	            0 ||
	        memcmp(ev.event_id, f->last_id, UUID_LEN) != 0)) {
		log_warnx(
		    "%s %s: the event at position %" PRIu64 " is %s, not "
		    "%s, the last one it applied: the log was repaired or "
		    "replaced; rebuilding from position 0",
		    what, f->name, f->next - 1,
		    rr.nevents == 1 ? uuid_format(ev.event_id, got) :
		                      "missing",
		    uuid_format(f->last_id, want));
		rc = 1;
	}
	client_reply_free(&cr);
	return rc;
}

/* Runs a RESET or SWAP request and tells the asker it is done. */
static void
fold_serve(struct fold *f, int req)
{
	int rc;

	rc = req == REQ_RESET ? fold_do_reset(f) : fold_do_swap(f);
	pthread_mutex_lock(&f->mu);
	f->req = REQ_NONE;
	f->req_done++;
	if (rc != 0)
		snprintf(f->err, sizeof(f->err), "%s", mdb_strerror(rc));
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/*
 * One round of a running fold: takes a batch from its pipe (paced
 * after *last_commit unless the last batch, *last_n, was full) and
 * applies it. 0 to go on; 1 to leave the loop (a request, a changed log,
 * a failure, an interrupted manager).
 */
static int
fold_step(struct fold *f, uint64_t *last_commit, size_t *last_n)
{
	struct qev *list;
	char msg[512];
	uint8_t last_id[UUID_LEN];
	size_t n, done;
	uint64_t fpos;
	int failed, intr;

	if (__atomic_load_n(&f->req, __ATOMIC_ACQUIRE) != REQ_NONE)
		return 1;
	if (__atomic_load_n(&f->pipe.changed, __ATOMIC_ACQUIRE)) {
		/* stored restored or repaired while we ran:
		 * check the checkpoint again, as at start */
		log_warnx("%s: the log changed underneath the "
		          "subscription; checking the checkpoint "
		          "(position %" PRIu64 ") again",
		    f->name, f->next);
		f->checked = 0;
		return 1;
	}
	if (!f->live &&
	    __atomic_load_n(&f->pipe.caught_up, __ATOMIC_ACQUIRE) &&
	    __atomic_load_n(&f->pipe.q.n, __ATOMIC_RELAXED) == 0) {
		pthread_mutex_lock(&f->mu);
		f->live = 1;
		pthread_mutex_unlock(&f->mu);
	}
	/* group commits under load, one at once when quiet */
	if (*last_n < f->rn->conf.fold_batch)
		runner_pace(f->rn, *last_commit, &f->req, &f->hurry);
	__atomic_store_n(&f->hurry, 0, __ATOMIC_RELAXED);
	list = evq_take(&f->pipe.q, f->rn->conf.fold_batch, 100, &n);
	if (list == NULL)
		return 0;
	intr = 0;
	if (f->kind == EF_FOLD_PROJECTION)
		done = proj_batch(f, f->dbi, f->gen, 1, list, n, f->next,
		    &failed, &fpos, last_id, msg, sizeof(msg));
	else
		done = mgr_batch(f, list, n, f->next, &failed, &fpos, &intr,
		    last_id, msg, sizeof(msg));
	evq_free_list(list);
	*last_commit = now_ms();
	*last_n = n;
	pthread_mutex_lock(&f->mu);
	if (done > 0) {
		memcpy(f->last_id, last_id, UUID_LEN);
		f->has_id = 1;
	}
	f->next += done;
	f->applied += done;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	if (failed) {
		fold_set_error(f, fpos, msg);
		return 1;
	}
	return intr;
}

static void *
fold_main(void *arg)
{
	struct fold *f = arg;
	size_t last_n = 0;
	uint64_t last_commit = 0;
	int req, rc;

	for (;;) {
		pthread_mutex_lock(&f->mu);
		while (f->stopped && f->req == REQ_NONE)
			pthread_cond_wait(&f->cv, &f->mu);
		req = f->req;
		pthread_mutex_unlock(&f->mu);
		if (req == REQ_QUIT)
			break;
		if (req != REQ_NONE) {
			fold_serve(f, req);
			continue;
		}
		if (!f->checked) {
			/* once per start, before the first event */
			if ((rc = fold_check(f, &f->rn->store)) < 0) {
				rd_sleep_ms(200); /* stored not there yet */
				continue;
			}
			f->checked = 1;
			if (rc > 0 && fold_do_reset(f) != 0)
				log_warnx(
				    "%s: reset after the mismatch failed",
				    f->name);
		}
		pthread_mutex_lock(&f->mu);
		f->live = 0;
		pthread_mutex_unlock(&f->mu);
		pipe_start(&f->pipe, f, f->next,
		    f->has_id && f->next > 0 ? f->last_id : NULL, 1);
		while (fold_step(f, &last_commit, &last_n) == 0)
			;
		pipe_stop(&f->pipe);
	}
	pipe_stop(&f->pipe);
	return NULL;
}

int
fold_start_all(struct runner *r)
{
	struct ef_client quick;
	size_t i;
	int rc, down, opened, ret = -1;

	for (i = 0; i < nfolds; i++)
		folds[i]->rn = r;
	/* a short timeout: a stored that is not up yet must not hold
	 * runnerd's start; the fold threads check once it answers */
	opened = client_open(&quick, r->store_url, 1000) == 0;
	down = !opened;
	for (i = 0; i < nfolds; i++) {
		if ((rc = fold_load(folds[i])) != 0) {
			log_warnx("%s: cannot open its state: %s",
			    folds[i]->name, mdb_strerror(rc));
			goto out;
		}
		/* checked now if stored answers, so that no reader sees a
		 * state the log does not back */
		if (!down && (rc = fold_check(folds[i], &quick)) < 0)
			down = 1;
		else if (!down) {
			folds[i]->checked = 1;
			if (rc > 0 && (rc = fold_do_reset(folds[i])) != 0) {
				log_warnx("%s: cannot reset it: %s",
				    folds[i]->name, mdb_strerror(rc));
				goto out;
			}
		}
		log_info("%s %s: starting at position %" PRIu64,
		    folds[i]->kind == EF_FOLD_PROJECTION ? "projection" :
		                                           "process manager",
		    folds[i]->name, folds[i]->next);
	}
	for (i = 0; i < nfolds; i++)
		if (pthread_create(&folds[i]->thr, NULL, fold_main,
		        folds[i]) != 0)
			fatal("pthread_create");
	for (i = 0; i < nfolds; i++) {
		char msg[512];

		if (!folds[i]->rb_resume)
			continue;
		folds[i]->rb_resume = 0;
		log_info("%s: a rebuild was under way when runnerd stopped; "
		         "starting it over",
		    folds[i]->name);
		if (fold_rebuild(folds[i], msg, sizeof(msg)) != EF_S_OK)
			log_warnx("%s: rebuild: %s", folds[i]->name, msg);
	}
	ret = 0;
out:
	if (opened)
		client_close(&quick);
	return ret;
}

void
fold_stop_all(void)
{
	struct fold *f;
	size_t i;

	for (i = 0; i < nfolds; i++) {
		f = folds[i];
		pthread_mutex_lock(&f->mu);
		f->rb_stop = 1;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		rb_reap(f);
		pthread_mutex_lock(&f->mu);
		f->req = REQ_QUIT;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		/* a fold waiting for events sees REQ_QUIT now */
		pthread_mutex_lock(&f->pipe.q.mu);
		pthread_cond_broadcast(&f->pipe.q.cv_get);
		pthread_mutex_unlock(&f->pipe.q.mu);
	}
	for (i = 0; i < nfolds; i++)
		pthread_join(folds[i]->thr, NULL);
	for (i = 0; i < nfolds; i++) {
		f = folds[i];
		evq_clear(&f->pipe.q);
		evq_clear(&f->rb_pipe.q);
		free(f->name);
		free(f);
	}
	free(folds);
	folds = NULL;
	nfolds = 0;
}

int
fold_request(struct fold *f, int req, char *msg, size_t ml)
{
	uint64_t done;
	int rc = EF_S_OK;

	pthread_mutex_lock(&f->mu);
	if (f->rebuilding) {
		pthread_mutex_unlock(&f->mu);
		snprintf(msg, ml,
		    "%s is being rebuilt; try again when it is "
		    "done",
		    f->name);
		return EF_S_ABORTED;
	}
	while (f->req != REQ_NONE)
		pthread_cond_wait(&f->cv, &f->mu);
	f->req = req;
	done = f->req_done;
	pthread_cond_broadcast(&f->cv);
	while (f->req_done == done)
		pthread_cond_wait(&f->cv, &f->mu);
	if (f->stopped && f->err[0] != '\0' && req == REQ_RESET &&
	    f->next != 0) {
		snprintf(msg, ml, "%s", f->err);
		rc = EF_S_INTERNAL;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

/* The rebuild: its own pipe and applier, then the swap. */
static void *
rebuild_main(void *arg)
{
	struct fold *f = arg;
	struct pipe *p = &f->rb_pipe;
	struct qev *list;
	char msg[512];
	size_t n, done;
	uint64_t next = 0, fpos, caught;
	int failed = 0;

	pipe_start(p, f, 0, NULL, 0);
	for (;;) {
		if (__atomic_load_n(&f->rb_stop, __ATOMIC_RELAXED))
			break;
		list = evq_take(&p->q, f->rn->conf.fold_batch, 100, &n);
		if (list != NULL) {
			done = proj_batch(f, f->rb_dbi, f->gen + 1, 0, list, n,
			    next, &failed, &fpos, f->rb_last_id, msg,
			    sizeof(msg));
			evq_free_list(list);
			next += done;
			__atomic_store_n(&f->rb_next, next, __ATOMIC_RELAXED);
			if (failed)
				break;
		}
		if (__atomic_load_n(&p->caught_up, __ATOMIC_ACQUIRE)) {
			caught = __atomic_load_n(&p->delivered,
			    __ATOMIC_ACQUIRE);
			if (next >= caught &&
			    __atomic_load_n(&p->q.n, __ATOMIC_RELAXED) == 0)
				break;
		}
	}
	pipe_stop(p);
	if (failed || __atomic_load_n(&f->rb_stop, __ATOMIC_RELAXED)) {
		if (failed) {
			log_warnx("%s: rebuild failed at position %" PRIu64
			          ": %s",
			    f->name, fpos, msg);
			/* not again at the next start: the error says it */
			rb_mark_commit(f->name, 0);
		}
		state_drop(f->rb_dbi, 1);
		pthread_mutex_lock(&f->mu);
		if (failed) {
			snprintf(f->err, sizeof(f->err),
			    "rebuild failed at "
			    "position %" PRIu64 ": %.400s",
			    fpos, msg);
			f->err_pos = fpos;
		}
		f->rebuilding = 0;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		return NULL;
	}
	pthread_mutex_lock(&f->mu);
	f->rb_next = next;
	while (f->req != REQ_NONE && !f->rb_stop)
		pthread_cond_wait(&f->cv, &f->mu);
	if (f->rb_stop) {
		f->rebuilding = 0;
		pthread_mutex_unlock(&f->mu);
		state_drop(f->rb_dbi, 1);
		return NULL;
	}
	f->req = REQ_SWAP; /* the fold thread joins us */
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int
fold_need_projection(const struct fold *f, const char *why, char *msg,
    size_t ml)
{
	if (f->kind == EF_FOLD_PROJECTION)
		return EF_S_OK;
	snprintf(msg, ml, "%s is a process manager%s", f->name, why);
	return EF_S_INVALID;
}

int
fold_rebuild(struct fold *f, char *msg, size_t ml)
{
	char name[IPC_NAME_MAX + 32];
	int rc;

	if ((rc = fold_need_projection(f,
	         ": it has no read model to rebuild (reset re-reacts from 0)",
	         msg, ml)) != EF_S_OK)
		return rc;
	pthread_mutex_lock(&f->mu);
	if (f->rebuilding || f->req != REQ_NONE) {
		pthread_mutex_unlock(&f->mu);
		snprintf(msg, ml, "%s is already being rebuilt", f->name);
		return EF_S_ABORTED;
	}
	f->rebuilding = 1;
	f->rb_next = 0;
	f->rb_stop = 0;
	pthread_mutex_unlock(&f->mu);
	rb_reap(f); /* the previous, failed, rebuild */
	gen_name(name, sizeof(name), f, f->gen + 1);
	if ((rc = rb_mark_commit(f->name, 1)) != 0 ||
	    (rc = state_dbi(name, 1, &f->rb_dbi)) != 0 ||
	    (rc = state_drop(f->rb_dbi, 0)) != 0) {
		pthread_mutex_lock(&f->mu);
		f->rebuilding = 0;
		pthread_mutex_unlock(&f->mu);
		snprintf(msg, ml, "LMDB: %s", mdb_strerror(rc));
		return EF_S_INTERNAL;
	}
	pthread_mutex_lock(&f->mu);
	if (pthread_create(&f->rb_thr, NULL, rebuild_main, f) != 0)
		fatal("pthread_create");
	f->rb_joinable = 1;
	pthread_mutex_unlock(&f->mu);
	log_info("%s: rebuild started into generation %" PRIu64, f->name,
	    f->gen + 1);
	return EF_S_OK;
}

void
fold_rates(uint64_t now)
{
	struct fold *f;
	uint64_t a;
	size_t i;

	for (i = 0; i < nfolds; i++) {
		f = folds[i];
		pthread_mutex_lock(&f->mu);
		a = f->applied;
		if (f->rate_ms != 0 && now > f->rate_ms)
			f->rate = (a - f->rate_prev) * 1000 /
			    (now - f->rate_ms);
		f->rate_prev = a;
		f->rate_ms = now;
		pthread_mutex_unlock(&f->mu);
	}
}
