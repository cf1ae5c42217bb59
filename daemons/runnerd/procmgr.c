/* SPDX-License-Identifier: MIT */
/*
 * procmgr.c - process managers: react() to each event, then run the
 * commands it sent, in order, through aggregate_execute(). The command
 * id of the i-th command sent for event E by manager M is
 * "pm:M:E:i", so running them again after a crash (the checkpoint only
 * passes an event once its commands are done) applies nothing twice.
 *
 * A command that fails is retried with exponential backoff (pm_retries
 * attempts, from pm_backoff_ms, at most 5 s apart); errors that cannot
 * heal (unknown aggregate type, invalid command) are not retried. Then
 * it is parked in the "dead" database with its error and the manager
 * goes on. DEAD_LETTERS lists, retries (once, now) and drops them.
 *
 * Dead letter record, key "MANAGER\0COMMAND_ID": msgpack
 * [dead letter (ipc_runner.h), correlation_id|nil, causation_id|nil].
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "aggregate.h"
#include "fold.h"
#include "plugin.h"
#include "procmgr.h"
#include "runnerd.h"
#include "state.h"

#define BACKOFF_MAX_MS 5000

/* Waits ms unless the fold is asked to stop or reset: then 1. */
static int
mgr_nap(struct fold *f, uint64_t ms)
{
	struct timespec ts;
	int r;

	clock_deadline_ms(&ts, ms);
	pthread_mutex_lock(&f->mu);
	while (f->req == REQ_NONE &&
	    pthread_cond_timedwait(&f->cv, &f->mu, &ts) == 0)
		;
	r = f->req != REQ_NONE;
	pthread_mutex_unlock(&f->mu);
	return r;
}

static int
permanent(int s)
{
	return s == EF_S_NOT_FOUND || s == EF_S_INVALID ||
	    s == EF_S_BAD_REQUEST || s == EF_S_BAD_EVENT_TYPE ||
	    s == EF_S_RECORD_TOO_LARGE || s == EF_S_BATCH_TOO_LARGE;
}

static size_t
dl_key(char *buf, size_t len, const char *mgr, const char *cmd)
{
	size_t ml = strlen(mgr), cl = strlen(cmd);

	if (ml + 1 + cl > len)
		return 0;
	memcpy(buf, mgr, ml);
	buf[ml] = '\0';
	memcpy(buf + ml + 1, cmd, cl);
	return ml + 1 + cl;
}

static int
dl_put(const struct ipc_dead_letter *d, const char *corr, const char *caus)
{
	struct ipc_out o;
	char key[IPC_NAME_MAX + IPC_ID_MAX + 2], mgr[IPC_NAME_MAX + 1],
	    cmd[IPC_ID_MAX + 1];
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	snprintf(mgr, sizeof(mgr), "%.*s", (int)d->manager.len,
	    d->manager.ptr);
	snprintf(cmd, sizeof(cmd), "%.*s", (int)d->command_id.len,
	    d->command_id.ptr);
	ipc_out_init(&o);
	msgpack_pack_array(&o.pk, 3);
	ipc_dead_letter_encode(&o, d);
	if (corr != NULL)
		ipc_str_encode(&o, corr, strlen(corr));
	else
		ipc_nil(&o);
	if (caus != NULL)
		ipc_str_encode(&o, caus, strlen(caus));
	else
		ipc_nil(&o);
	k.mv_size = dl_key(key, sizeof(key), mgr, cmd);
	k.mv_data = key;
	v.mv_size = o.len;
	v.mv_data = o.buf;
	do {
		if ((rc = state_begin(0, &txn)) != 0)
			break;
		if ((rc = mdb_put(txn, state_db(STATE_DEAD), &k, &v, 0)) == 0)
			rc = state_commit(txn, "dead letter");
		else
			state_abort(txn);
	} while (rc == MDB_MAP_FULL && state_grow("dead letter") == 0);
	ipc_out_free(&o);
	return rc;
}

/*
 * Runs command (type, payload of len bytes) on instance agg/inst once,
 * with its ids (corr and caus may be NULL): EF_S_OK, or the status with
 * err "<status>: <why>".
 */
static int
pm_run(const char *agg, const char *inst, const char *type,
    const uint8_t *payload, size_t len, const char *cmd_id, const char *corr,
    const char *caus, char *err, size_t el)
{
	struct efp_command ec;
	struct ipc_exec_rep rep;
	char emsg[512];
	int s;

	memset(&ec, 0, sizeof(ec));
	ec.aggregate_type = agg;
	ec.instance_id = inst;
	ec.type = type;
	ec.payload = payload;
	ec.payload_len = len;
	ec.command_id = cmd_id;
	ec.correlation_id = corr;
	ec.causation_id = caus;
	if ((s = aggregate_execute(&ec, &rep, emsg, sizeof(emsg))) != EF_S_OK)
		snprintf(err, el, "%s: %s", ipc_status_name(s), emsg);
	return s;
}

/*
 * Runs command i of a manager's reaction to ev, with retries; one that
 * keeps failing is parked as a dead letter. 0; -1 when stopping; 1 with
 * msg when the dead letter cannot be written.
 */
static int
pm_command(struct fold *f, const struct ef_event *ev, const struct sent *sc,
    size_t i, const char *eid, const char *corr, char *msg, size_t ml)
{
	struct ipc_dead_letter d;
	char cmd_id[IPC_ID_MAX + 1], err[700];
	uint64_t attempt, backoff;
	int rc, s;

	snprintf(cmd_id, sizeof(cmd_id), "pm:%s:%s:%zu", f->name, eid, i);
	backoff = f->rn->conf.pm_backoff_ms;
	for (attempt = 1;; attempt++) {
		s = pm_run(sc->aggregate_type, sc->instance_id, sc->type,
		    sc->payload, sc->len, cmd_id, corr, eid, err, sizeof(err));
		if (s == EF_S_OK || permanent(s) ||
		    attempt >= f->rn->conf.pm_retries)
			break;
		log_debug("%s: command %s failed (%s), retry %" PRIu64
		          " in %" PRIu64 " ms",
		    f->name, cmd_id, err, attempt, backoff);
		if (mgr_nap(f, backoff))
			return -1;
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
		                                         backoff * 2;
	}
	if (s == EF_S_OK)
		return 0;
	log_warnx("%s: command %s (%s to %s/%s) parked as a dead "
	          "letter after %" PRIu64 " attempts: %s",
	    f->name, cmd_id, sc->type, sc->aggregate_type, sc->instance_id,
	    attempt, err);
	memset(&d, 0, sizeof(d));
	d.manager = ipc_cstr(f->name);
	d.command_id = ipc_cstr(cmd_id);
	d.aggregate_type = ipc_cstr(sc->aggregate_type);
	d.instance_id = ipc_cstr(sc->instance_id);
	d.type = ipc_cstr(sc->type);
	d.payload = sc->payload;
	d.payload_len = (uint32_t)sc->len;
	d.error = ipc_cstr(err);
	d.attempts = attempt;
	d.event_position = ev->global_position;
	d.parked_at = wall_ms();
	if ((rc = dl_put(&d, corr, eid)) != 0) {
		snprintf(msg, ml, "cannot park a dead letter: %s",
		    mdb_strerror(rc));
		return 1;
	}
	return 0;
}

int
procmgr_event(struct fold *f, const struct ef_event *ev, char *msg, size_t ml)
{
	struct efp_ctx c;
	struct efp_event v;
	struct view_buf vb;
	char eid[UUID_STR_LEN], corr[IPC_ID_MAX + 1];
	size_t i;
	int rc, ret = 0;

	ctx_init(&c, CTX_REACT);
	event_view(ev, &v, &vb);
	rc = f->mgr->react(&c, &v);
	if (rc != EFP_OK) {
		snprintf(msg, ml,
		    "react to %s at position %" PRIu64 " failed: %s", vb.type,
		    ev->global_position,
		    c.has_err ? c.err : "error without message");
		ctx_free(&c);
		return 1;
	}
	uuid_format(ev->event_id, eid);
	if (ev->metadata_len == 0 ||
	    meta_get_str(ev->metadata, ev->metadata_len, "correlation_id",
	        corr, sizeof(corr)) <= 0)
		snprintf(corr, sizeof(corr), "%s", eid);
	for (i = 0; i < c.ncmds; i++) {
		if ((ret = pm_command(f, ev, &c.cmds[i], i, eid, corr, msg,
		         ml)) != 0)
			break;
	}
	ctx_free(&c);
	return ret;
}

/* A decoded dead letter record, its strings NUL-terminated copies. */
struct dl_rec {
	struct ipc_dead_letter d;
	char mgr[IPC_NAME_MAX + 1];
	char cmd[IPC_ID_MAX + 1];
	char agg[IPC_NAME_MAX + 1];
	char inst[IPC_ID_MAX + 1];
	char type[RECORD_TYPE_MAX + 1];
	char corr[IPC_ID_MAX + 1];
	char caus[IPC_ID_MAX + 1];
	int has_corr, has_caus;
	uint8_t *payload;
};

static void
copy_str(char *dst, size_t dlen, const struct ipc_str *s)
{
	snprintf(dst, dlen, "%.*s", (int)s->len, s->ptr ? s->ptr : "");
}

static int
dl_decode(const void *buf, size_t len, struct dl_rec *r)
{
	msgpack_unpacked up;
	const msgpack_object *a;
	const char *why;
	size_t off = 0;
	int ok = -1;

	memset(r, 0, sizeof(*r));
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS)
		goto out;
	a = &up.data;
	if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != 3 ||
	    ipc_dead_letter_decode(&a->via.array.ptr[0], &r->d, &why) != 0)
		goto out;
	copy_str(r->mgr, sizeof(r->mgr), &r->d.manager);
	copy_str(r->cmd, sizeof(r->cmd), &r->d.command_id);
	copy_str(r->agg, sizeof(r->agg), &r->d.aggregate_type);
	copy_str(r->inst, sizeof(r->inst), &r->d.instance_id);
	copy_str(r->type, sizeof(r->type), &r->d.type);
	if (a->via.array.ptr[1].type == MSGPACK_OBJECT_STR) {
		struct ipc_str s = { a->via.array.ptr[1].via.str.ptr,
			a->via.array.ptr[1].via.str.size };

		copy_str(r->corr, sizeof(r->corr), &s);
		r->has_corr = 1;
	}
	if (a->via.array.ptr[2].type == MSGPACK_OBJECT_STR) {
		struct ipc_str s = { a->via.array.ptr[2].via.str.ptr,
			a->via.array.ptr[2].via.str.size };

		copy_str(r->caus, sizeof(r->caus), &s);
		r->has_caus = 1;
	}
	if ((r->payload = malloc(r->d.payload_len + 1)) == NULL)
		fatal("malloc");
	if (r->d.payload_len)
		memcpy(r->payload, r->d.payload, r->d.payload_len);
	/* the remaining views point into up: re-point them at the copies */
	r->d.manager = ipc_cstr(r->mgr);
	r->d.command_id = ipc_cstr(r->cmd);
	r->d.aggregate_type = ipc_cstr(r->agg);
	r->d.instance_id = ipc_cstr(r->inst);
	r->d.type = ipc_cstr(r->type);
	r->d.payload = r->payload;
	r->d.error.ptr = NULL;
	r->d.error.len = 0;
	ok = 0;
out:
	msgpack_unpacked_destroy(&up);
	return ok;
}

uint64_t
procmgr_count_dead(const char *manager)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t ml = strlen(manager) + 1;
	uint64_t n = 0;
	int rc;

	if (state_begin(1, &txn) != 0)
		return 0;
	if (mdb_cursor_open(txn, state_db(STATE_DEAD), &cur) == 0) {
		k.mv_size = ml;
		k.mv_data = (void *)manager; /* includes the NUL */
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size < ml || memcmp(k.mv_data, manager, ml))
				break;
			n++;
		}
		mdb_cursor_close(cur);
	}
	state_abort(txn);
	return n;
}

/* Copies of the matching records: key, value pairs. */
struct dl_list {
	struct buf *keys;
	struct buf *vals;
	size_t n;
};

static int
dl_collect(const struct ipc_dl_req *r, struct dl_list *l)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	char prefix[IPC_NAME_MAX + IPC_ID_MAX + 2];
	size_t plen = 0, cap = 0;
	int rc;

	memset(l, 0, sizeof(*l));
	if (r->manager.ptr != NULL) {
		memcpy(prefix, r->manager.ptr, r->manager.len);
		prefix[r->manager.len] = '\0';
		plen = r->manager.len + 1;
		if (r->command_id.ptr != NULL) {
			memcpy(prefix + plen, r->command_id.ptr,
			    r->command_id.len);
			plen += r->command_id.len;
		}
	}
	if ((rc = state_begin(1, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, state_db(STATE_DEAD), &cur)) != 0) {
		state_abort(txn);
		return rc;
	}
	k.mv_size = plen;
	k.mv_data = prefix;
	for (rc =
	         mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
	     rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (r->command_id.ptr != NULL && k.mv_size != plen)
			continue;
		if (l->n == cap) {
			cap = cap ? cap * 2 : 16;
			l->keys = realloc(l->keys, cap * sizeof(*l->keys));
			l->vals = realloc(l->vals, cap * sizeof(*l->vals));
			if (l->keys == NULL || l->vals == NULL)
				fatal("realloc");
		}
		memset(&l->keys[l->n], 0, sizeof(struct buf));
		memset(&l->vals[l->n], 0, sizeof(struct buf));
		buf_set(&l->keys[l->n], k.mv_data, k.mv_size);
		buf_set(&l->vals[l->n], v.mv_data, v.mv_size);
		l->n++;
	}
	mdb_cursor_close(cur);
	state_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static void
dl_list_free(struct dl_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		buf_free(&l->keys[i]);
		buf_free(&l->vals[i]);
	}
	free(l->keys);
	free(l->vals);
}

static int
dl_delete(const struct buf *key)
{
	MDB_txn *txn;
	MDB_val k = { key->len, key->p };
	int rc;

	do {
		if ((rc = state_begin(0, &txn)) != 0)
			return rc;
		rc = mdb_del(txn, state_db(STATE_DEAD), &k, NULL);
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = state_commit(txn, "dead letter");
		else
			state_abort(txn);
	} while (rc == MDB_MAP_FULL && state_grow("dead letter") == 0);
	return rc;
}

/* Encodes one stored dead letter (the first element of its record),
 * or a placeholder for a record that cannot be read. */
static void
dl_encode_one(struct ipc_out *out, const struct buf *v)
{
	msgpack_unpacked up;
	struct ipc_dead_letter d;
	const char *why;
	size_t off = 0;

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)v->p, v->len, &off) ==
	        MSGPACK_UNPACK_SUCCESS &&
	    up.data.type == MSGPACK_OBJECT_ARRAY &&
	    up.data.via.array.size == 3 &&
	    ipc_dead_letter_decode(&up.data.via.array.ptr[0], &d, &why) == 0)
		ipc_dead_letter_encode(out, &d);
	else {
		memset(&d, 0, sizeof(d));
		d.manager = ipc_cstr("?");
		d.command_id = ipc_cstr("?");
		d.aggregate_type = ipc_cstr("?");
		d.instance_id = ipc_cstr("?");
		d.type = ipc_cstr("?");
		d.error = ipc_cstr("unreadable record");
		ipc_dead_letter_encode(out, &d);
	}
	msgpack_unpacked_destroy(&up);
}

/*
 * Runs a dead letter's command again: on success the letter is
 * deleted (0); on failure it is kept with the error and one more
 * attempt (-EAGAIN), and msg gets the error when only is set.
 */
static int
dl_retry(const struct buf *key, struct dl_rec *rec, int only, char *msg,
    size_t ml)
{
	const char *corr = rec->has_corr ? rec->corr : NULL,
	           *caus = rec->has_caus ? rec->caus : NULL;
	char err[700];

	if (pm_run(rec->agg, rec->inst, rec->type, rec->payload,
	        rec->d.payload_len, rec->cmd, corr, caus, err,
	        sizeof(err)) == EF_S_OK) {
		dl_delete(key);
		log_info("dead letter %s of %s retried: ok", rec->cmd,
		    rec->mgr);
		return 0;
	}
	rec->d.error = ipc_cstr(err);
	rec->d.attempts++;
	dl_put(&rec->d, corr, caus);
	if (only)
		snprintf(msg, ml, "%s", err);
	return -EAGAIN;
}

int
procmgr_dead_letters(const struct ipc_dl_req *r, struct ipc_out *out,
    char *msg, size_t ml)
{
	struct dl_list l;
	struct dl_rec rec;
	struct ipc_in in;
	struct fold *f;
	uint64_t counts[2] = { 0, 0 };
	size_t i;
	int rc;

	(void)in;
	if (r->manager.ptr != NULL &&
	    ((f = fold_find(r->manager.ptr, r->manager.len)) == NULL ||
	        f->kind != EF_FOLD_MANAGER)) {
		snprintf(msg, ml, "no process manager \"%.*s\"",
		    (int)r->manager.len, r->manager.ptr);
		return EF_S_NOT_FOUND;
	}
	if ((rc = dl_collect(r, &l)) != 0) {
		snprintf(msg, ml, "LMDB: %s", mdb_strerror(rc));
		return EF_S_INTERNAL;
	}
	if (r->command_id.ptr != NULL && l.n == 0) {
		dl_list_free(&l);
		snprintf(msg, ml, "no dead letter %.*s for %.*s",
		    (int)r->command_id.len, r->command_id.ptr,
		    (int)r->manager.len, r->manager.ptr);
		return EF_S_NOT_FOUND;
	}
	ipc_out_reset(out);
	if (r->action == EF_DL_LIST) {
		ipc_reply_begin(out, EF_S_OK, "ok");
		ipc_dl_list_begin(out, (uint32_t)l.n);
		for (i = 0; i < l.n; i++)
			dl_encode_one(out, &l.vals[i]);
		dl_list_free(&l);
		return EF_S_OK;
	}
	for (i = 0; i < l.n; i++) {
		if (r->action == EF_DL_DROP) {
			if (dl_delete(&l.keys[i]) == 0)
				counts[0]++;
			continue;
		}
		if (dl_decode(l.vals[i].p, l.vals[i].len, &rec) != 0) {
			counts[1]++;
			continue;
		}
		if (dl_retry(&l.keys[i], &rec, l.n == 1, msg, ml) == 0)
			counts[0]++;
		else
			counts[1]++;
		free(rec.payload);
	}
	dl_list_free(&l);
	ipc_reply_begin(out, EF_S_OK, "ok");
	if (r->action == EF_DL_DROP)
		ipc_counts_encode(out, counts, 1);
	else
		ipc_counts_encode(out, counts, 2);
	return EF_S_OK;
}
