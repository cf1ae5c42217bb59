/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - the request side of eventfold-runnerd: worker threads,
 * one nng context each on the rep socket (runner.sock), decode a
 * request, check its version and shape, and call the handler for its
 * op (EXECUTE, GET_STATE, QUERY, RUNNER_STATUS, REBUILD, RESET, REPLAY,
 * DEAD_LETTERS, PLUGINS). A malformed request gets an error reply
 * naming what was wrong; no input makes a worker stop.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "listen.h"
#include "log.h"
#include "runnerd.h"
#include "trace.h"

#include <nng/protocol/reqrep0/rep.h>

/* longest RUNNER_STATUS waits for the store's head (then: no lag) */
#define RUNNER_STATUS_HEAD_MS 500

struct worker {
	nng_ctx ctx;
	nng_aio *aio;
	pthread_t thr;
	struct ipc_out out;
	pthread_mutex_t mu; /* receiving, against dispatch_stop() */
	int receiving;      /* waiting for a request: may be cancelled */
	uint64_t rid;       /* the request's id and op, for the log */
	int op;
};

static nng_socket rep_sock;
static struct ef_listener rep_listener;
static struct worker *workers;
static uint64_t nworkers;
static volatile int dispatch_stopping;

typedef void (*handler_fn)(struct worker *, const struct ipc_in *);

static void
reply_error(struct worker *w, int status, const char *fmt, ...)
    EF_PRINTF(3, 4);

static void
reply_error(struct worker *w, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trace_reply(w->rid, w->op, NULL, status, msg);
	ipc_out_reset(&w->out);
	ipc_reply_begin(&w->out, status, msg);
	ipc_nil(&w->out);
}

/* NUL-terminated copy of an optional string; -1 if it holds a NUL. */
static int
cstr(char *dst, size_t dlen, const struct ipc_str *s, const char **out)
{
	if (s->ptr == NULL) {
		*out = NULL;
		return 0;
	}
	if (s->len >= dlen || memchr(s->ptr, '\0', s->len) != NULL)
		return -1;
	memcpy(dst, s->ptr, s->len);
	dst[s->len] = '\0';
	*out = dst;
	return 0;
}

static void
handle_execute(struct worker *w, const struct ipc_in *in)
{
	struct ipc_exec_req r;
	struct ipc_exec_rep rep;
	struct exec_cmd c;
	char agg[IPC_NAME_MAX + 1], inst[IPC_ID_MAX + 1], type[257],
	    cmd[IPC_ID_MAX + 1], actor[IPC_ID_MAX + 1], corr[IPC_ID_MAX + 1],
	    caus[IPC_ID_MAX + 1], dev[IPC_ID_MAX + 1], msg[1024];
	const char *why = "";
	int s;

	if (ipc_exec_req_decode(in->body, &r, &why) != 0) {
		reply_error(w, EF_S_BAD_REQUEST, "execute: bad field: %s", why);
		return;
	}
	memset(&c, 0, sizeof(c));
	if (cstr(agg, sizeof(agg), &r.aggregate_type, &c.aggregate_type) ||
	    cstr(inst, sizeof(inst), &r.instance_id, &c.instance_id) ||
	    cstr(type, sizeof(type), &r.type, &c.type) ||
	    cstr(cmd, sizeof(cmd), &r.command_id, &c.command_id) ||
	    cstr(actor, sizeof(actor), &r.actor, &c.actor) ||
	    cstr(corr, sizeof(corr), &r.correlation_id, &c.correlation_id) ||
	    cstr(caus, sizeof(caus), &r.causation_id, &c.causation_id) ||
	    cstr(dev, sizeof(dev), &r.source_device, &c.source_device)) {
		reply_error(w, EF_S_INVALID, "execute: a string field holds a "
		    "NUL byte");
		return;
	}
	c.payload = r.payload;
	c.payload_len = r.payload_len;
	s = aggregate_execute(&c, &rep, msg, sizeof(msg));
	if (s != EF_S_OK) {
		log_debug("execute %s/%s %s (%s): %s: %s", agg, inst, type, cmd,
		    ipc_status_name(s), msg);
		reply_error(w, s, "%s", msg);
		return;
	}
	ipc_out_reset(&w->out);
	ipc_reply_begin(&w->out, EF_S_OK, rep.duplicate ? "duplicate "
	    "command id: the first result" : "ok");
	ipc_exec_rep_encode(&w->out, &rep);
}

static void
handle_get_state(struct worker *w, const struct ipc_in *in)
{
	struct ipc_state_req r;
	struct ipc_state_rep rep;
	char agg[IPC_NAME_MAX + 1], inst[IPC_ID_MAX + 1], msg[1024];
	const char *why = "", *a, *i;
	uint8_t *state = NULL;
	size_t len = 0;
	int s;

	if (ipc_state_req_decode(in->body, &r, &why) != 0) {
		reply_error(w, EF_S_BAD_REQUEST, "get_state: bad field: %s",
		    why);
		return;
	}
	if (cstr(agg, sizeof(agg), &r.aggregate_type, &a) ||
	    cstr(inst, sizeof(inst), &r.instance_id, &i)) {
		reply_error(w, EF_S_INVALID, "get_state: a string field holds "
		    "a NUL byte");
		return;
	}
	memset(&rep, 0, sizeof(rep));
	s = aggregate_get_state(agg, inst, rep.stream_id, &rep.exists,
	    &rep.version, &state, &len, msg, sizeof(msg));
	if (s != EF_S_OK) {
		reply_error(w, s, "%s", msg);
		return;
	}
	rep.state = state;
	rep.state_len = (uint32_t)len;
	ipc_out_reset(&w->out);
	ipc_reply_begin(&w->out, EF_S_OK, rep.exists ? "ok" :
	    "no events yet: the initial state");
	ipc_state_rep_encode(&w->out, &rep);
	free(state);
}

static struct fold *
find_fold(struct worker *w, const struct ipc_str *name)
{
	struct fold *f = fold_find(name->ptr, name->len);

	if (f == NULL)
		reply_error(w, EF_S_NOT_FOUND, "no projection or process "
		    "manager \"%.*s\" is loaded", (int)name->len, name->ptr);
	return f;
}

static void
handle_query(struct worker *w, const struct ipc_in *in)
{
	struct ipc_query_req r;
	struct fold *f;
	char msg[1024];
	const char *why = "";
	int s;

	if (ipc_query_req_decode(in->body, &r, &why) != 0) {
		reply_error(w, EF_S_BAD_REQUEST, "query: bad field: %s", why);
		return;
	}
	if ((f = find_fold(w, &r.projection)) == NULL)
		return;
	if ((s = projection_query(f, &r, &w->out, msg, sizeof(msg))) !=
	    EF_S_OK)
		reply_error(w, s, "%s", msg);
}

static void
handle_runner_status(struct worker *w, const struct ipc_in *in)
{
	struct client_reply cr;
	struct ipc_status_rep sr;
	struct ipc_fold_info fi;
	struct ipc_agg_info ai;
	struct agg_type *t;
	struct fold *f;
	const char *state;
	char err[512];
	bool has_head;
	uint64_t head = 0, map_bytes, grows;
	size_t i, n;

	(void)in;
	memset(&cr, 0, sizeof(cr));
	/* the head only decorates the answer: a store that is slow to
	 * answer (restarting, or a connection being re-made) must not make
	 * RUNNER_STATUS outlive its callers' deadlines */
	has_head = store_connected(0) &&
	    client_status_within(&rd.store, RUNNER_STATUS_HEAD_MS, &cr,
	    &sr) == EF_S_OK;
	if (has_head)
		head = sr.head;
	client_reply_free(&cr);
	n = fold_count();
	ipc_out_reset(&w->out);
	ipc_reply_begin(&w->out, EF_S_OK, "ok");
	ipc_runner_status_begin(&w->out, now_ms() - rd.start_ms, has_head,
	    head, (uint32_t)n);
	for (i = 0; i < n; i++) {
		f = fold_at(i);
		memset(&fi, 0, sizeof(fi));
		fi.name = ipc_cstr(f->name);
		fi.plugin = ipc_cstr(f->plugin->file);
		fi.kind = (uint8_t)f->kind;
		pthread_mutex_lock(&f->mu);
		fi.position = f->next;
		/* a fold without its store is not live, whatever it was */
		state = f->stopped ? "stopped" : !has_head ?
		    "waiting-for-store" : f->live ? "live" : "catching-up";
		fi.events_per_s = f->rate;
		fi.has_error = f->stopped || f->err[0] != '\0';
		fi.error_position = f->err_pos;
		snprintf(err, sizeof(err), "%s", f->err);
		fi.rebuilding = f->rebuilding;
		fi.rebuild_position = __atomic_load_n(&f->rb_next,
		    __ATOMIC_RELAXED);
		pthread_mutex_unlock(&f->mu);
		fi.state = ipc_cstr(state);
		fi.error = ipc_cstr(err);
		fi.has_lag = has_head;
		fi.lag = head > fi.position ? head - fi.position : 0;
		if (f->kind == EF_FOLD_MANAGER)
			fi.dead_letters = procmgr_count_dead(f->name);
		ipc_fold_info_encode(&w->out, &fi);
	}
	n = plugin_naggs();
	ipc_runner_status_aggs(&w->out, (uint32_t)n);
	for (i = 0; i < n; i++) {
		t = plugin_agg_at(i);
		ai.type = ipc_cstr(t->desc->type);
		ai.plugin = ipc_cstr(t->plugin->file);
		ai.cached = __atomic_load_n(&t->cached, __ATOMIC_RELAXED);
		ai.commands = __atomic_load_n(&t->commands, __ATOMIC_RELAXED);
		ipc_agg_info_encode(&w->out, &ai);
	}
	state_map_figures(&map_bytes, &grows);
	ipc_runner_status_end(&w->out, map_bytes, grows);
}

/* REBUILD and RESET: the same body, a fold's name. */
static void
handle_rebuild_reset(struct worker *w, const struct ipc_in *in)
{
	struct ipc_name_req r;
	struct fold *f;
	char msg[1024];
	const char *why = "";
	int reset = in->op == EF_OP_RESET, s;

	if (ipc_name_req_decode(in->body, &r, &why) != 0) {
		reply_error(w, EF_S_BAD_REQUEST, "%s: bad field: %s",
		    ipc_op_name((int)in->op), why);
		return;
	}
	if ((f = find_fold(w, &r.name)) == NULL)
		return;
	s = reset ? fold_request(f, REQ_RESET, msg, sizeof(msg)) :
	    fold_rebuild(f, msg, sizeof(msg));
	if (s != EF_S_OK) {
		reply_error(w, s, "%s", msg);
		return;
	}
	ipc_out_reset(&w->out);
	ipc_reply_begin(&w->out, EF_S_OK, reset ? "reset to position 0" :
	    "rebuild started");
	ipc_nil(&w->out);
}

static void
handle_replay(struct worker *w, const struct ipc_in *in)
{
	struct ipc_replay_req r;
	struct fold *f;
	char msg[1024];
	const char *why = "";
	int s;

	if (ipc_replay_req_decode(in->body, &r, &why) != 0) {
		reply_error(w, EF_S_BAD_REQUEST, "replay: bad field: %s", why);
		return;
	}
	if ((f = find_fold(w, &r.projection)) == NULL)
		return;
	if ((s = projection_replay(f, r.until, r.limit, &w->out, msg,
	    sizeof(msg))) != EF_S_OK)
		reply_error(w, s, "%s", msg);
}

static void
handle_dead_letters(struct worker *w, const struct ipc_in *in)
{
	struct ipc_dl_req r;
	char msg[1024];
	const char *why = "";
	int s;

	if (ipc_dl_req_decode(in->body, &r, &why) != 0) {
		reply_error(w, EF_S_BAD_REQUEST, "dead_letters: bad field: %s",
		    why);
		return;
	}
	if ((s = procmgr_dead_letters(&r, &w->out, msg, sizeof(msg))) !=
	    EF_S_OK)
		reply_error(w, s, "%s", msg);
}

static void
handle_plugins(struct worker *w, const struct ipc_in *in)
{
	struct plugin *p;
	struct agg_type *t;
	struct fold *f;
	uint32_t n = 0, k;
	size_t i;

	(void)in;
	for (p = plugin_list(); p != NULL; p = p->next)
		n++;
	ipc_out_reset(&w->out);
	ipc_reply_begin(&w->out, EF_S_OK, "ok");
	ipc_plugins_rep_begin(&w->out, n + (uint32_t)plugin_nrefused());
	for (p = plugin_list(); p != NULL; p = p->next) {
		ipc_plugin_info_begin(&w->out, p->file, p->info->name,
		    p->info->version, p->info->abi_version);
		for (k = 0, i = 0; i < plugin_naggs(); i++)
			k += plugin_agg_at(i)->plugin == p;
		ipc_str_list_begin(&w->out, k);
		for (i = 0; i < plugin_naggs(); i++)
			if ((t = plugin_agg_at(i))->plugin == p)
				ipc_str_encode(&w->out, t->desc->type,
				    strlen(t->desc->type));
		for (int kind = EF_FOLD_PROJECTION; kind <= EF_FOLD_MANAGER;
		    kind++) {
			for (k = 0, i = 0; i < fold_count(); i++)
				k += fold_at(i)->plugin == p &&
				    fold_at(i)->kind == kind;
			ipc_str_list_begin(&w->out, k);
			for (i = 0; i < fold_count(); i++)
				if ((f = fold_at(i))->plugin == p &&
				    f->kind == kind)
					ipc_str_encode(&w->out, f->name,
					    strlen(f->name));
		}
		ipc_plugin_info_end(&w->out, NULL);
	}
	for (i = 0; i < plugin_nrefused(); i++) {
		const char *file, *why;

		file = plugin_refused_at(i, &why);
		ipc_plugin_info_begin(&w->out, file, "", "", 0);
		for (k = 0; k < 3; k++)
			ipc_str_list_begin(&w->out, 0);
		ipc_plugin_info_end(&w->out, why);
	}
}

/*
 * One copy at a time: two would only compete for the disk. A request
 * for the directory being copied is a resend of the same request (the
 * client re-dials a broken connection and sends again, and only the
 * reply on the new connection reaches it): it waits for that copy and
 * gets its outcome, rather than ABORTED while its copy goes on (or
 * "exists" once it is done).
 */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int running;
	char dir[PATH_MAX];   /* of the running or the last copy */
	int rc;               /* the last copy's outcome */
	uint64_t bytes;
	char why[PATH_MAX + 128];
} bk = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, "", 0, 0,
	"" };

static void
handle_runner_backup(struct worker *w, const struct ipc_in *in)
{
	struct ipc_backup_req r;
	char dir[PATH_MAX], why[PATH_MAX + 128];
	const char *bad = "";
	uint64_t bytes;
	int rc;

	if (ipc_backup_req_decode(in->body, &r, &bad) != 0) {
		reply_error(w, EF_S_BAD_REQUEST, "runner_backup: bad field: %s",
		    bad);
		return;
	}
	if (r.dir.len == 0 || r.dir.len >= sizeof(dir) ||
	    memchr(r.dir.ptr, '\0', r.dir.len) != NULL) {
		reply_error(w, EF_S_INVALID, "runner_backup: the directory "
		    "must be an absolute path");
		return;
	}
	memcpy(dir, r.dir.ptr, r.dir.len);
	dir[r.dir.len] = '\0';
	pthread_mutex_lock(&bk.mu);
	if (bk.running && strcmp(bk.dir, dir) != 0) {
		pthread_mutex_unlock(&bk.mu);
		reply_error(w, EF_S_ABORTED, "another backup of runnerd's "
		    "state is running");
		return;
	}
	if (bk.running || (bk.rc == 0 && !strcmp(bk.dir, dir) &&
	    access(dir, F_OK) == 0)) {
		/* the same request again (running, or done and there): its
		 * outcome */
		while (bk.running)
			pthread_cond_wait(&bk.cv, &bk.mu);
		rc = bk.rc;
		bytes = bk.bytes;
		snprintf(why, sizeof(why), "%s", bk.why);
		pthread_mutex_unlock(&bk.mu);
	} else {
		bk.running = 1;
		snprintf(bk.dir, sizeof(bk.dir), "%s", dir);
		pthread_mutex_unlock(&bk.mu);
		why[0] = '\0';
		rc = state_backup(dir, &bytes, why, sizeof(why));
		if (rc != 0)
			log_warnx("backup of runnerd's state: %s", why);
		else
			log_info("runnerd's state copied into %s (%" PRIu64
			    " bytes)", dir, bytes);
		pthread_mutex_lock(&bk.mu);
		bk.running = 0;
		bk.rc = rc;
		bk.bytes = bytes;
		snprintf(bk.why, sizeof(bk.why), "%s", why);
		pthread_cond_broadcast(&bk.cv);
		pthread_mutex_unlock(&bk.mu);
	}
	if (rc != 0) {
		reply_error(w, rc == -EINVAL || rc == -EEXIST ||
		    rc == -ENOENT ? EF_S_INVALID : EF_S_INTERNAL, "%s", why);
		return;
	}
	ipc_out_reset(&w->out);
	ipc_reply_begin(&w->out, EF_S_OK, "ok");
	ipc_counts_encode(&w->out, &bytes, 1);
}

static const struct {
	int op;
	handler_fn fn;
} handlers[] = {
	{ EF_OP_EXECUTE, handle_execute },
	{ EF_OP_GET_STATE, handle_get_state },
	{ EF_OP_QUERY, handle_query },
	{ EF_OP_RUNNER_STATUS, handle_runner_status },
	{ EF_OP_REBUILD, handle_rebuild_reset },
	{ EF_OP_RESET, handle_rebuild_reset },
	{ EF_OP_REPLAY, handle_replay },
	{ EF_OP_DEAD_LETTERS, handle_dead_letters },
	{ EF_OP_PLUGINS, handle_plugins },
	{ EF_OP_RUNNER_BACKUP, handle_runner_backup },
};

static void
dispatch_one(struct worker *w, nng_msg *m)
{
	struct ipc_in in;
	const char *why = "";
	size_t i;
	int rc;

	rc = ipc_request_open(&in, nng_msg_body(m), nng_msg_len(m), &why);
	w->rid = in.request_id;
	w->op = (int)in.op;
	if (rc != 0) {
		reply_error(w, rc, "%s%s", why, rc == EF_S_BAD_VERSION ?
		    " (this runnerd speaks version " EF_STR(EF_PROTO_VERSION) ")" : "");
		goto out;
	}
	if (rd.stopping) {
		reply_error(w, EF_S_UNAVAILABLE, "runnerd is shutting down");
		goto out;
	}
	/*
	 * What needs the store now is refused, naming it, when it is down:
	 * a rebuild or replay accepted then would only stall or fail later,
	 * out of the operator's sight, and a reset would empty a read model
	 * that nothing can refold until the store is back.
	 */
	if ((in.op == EF_OP_EXECUTE || in.op == EF_OP_GET_STATE ||
	    in.op == EF_OP_REBUILD || in.op == EF_OP_REPLAY ||
	    in.op == EF_OP_RESET) &&
	    !store_connected(STORE_WAIT_MS)) {
		reply_error(w, EF_S_UNAVAILABLE, "eventfold-stored is "
		    "unreachable at %s (runnerd keeps trying to connect)",
		    rd.store_url);
		goto out;
	}
	for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (handlers[i].op == (int)in.op) {
			handlers[i].fn(w, &in);
			goto out;
		}
	reply_error(w, EF_S_UNKNOWN_OP, "unknown operation %u (%s) on "
	    "runner.sock", in.op, ipc_op_name((int)in.op));
out:
	ipc_in_close(&in);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	nng_msg *m;
	int rv;

	for (;;) {
		pthread_mutex_lock(&w->mu);
		w->receiving = !dispatch_stopping;
		pthread_mutex_unlock(&w->mu);
		if (!w->receiving)
			break;
		rv = nngx_recv(w->ctx, w->aio, &m, 100);
		pthread_mutex_lock(&w->mu);
		w->receiving = 0;
		pthread_mutex_unlock(&w->mu);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv != 0)
			break;
		dispatch_one(w, m);
		nng_msg_clear(m);
		if (nng_msg_append(m, w->out.buf, w->out.len) != 0) {
			nng_msg_free(m);
			continue;
		}
		if (nngx_send(w->ctx, w->aio, m, 5000) != 0)
			nng_msg_free(m);
		if (w->out.cap > (8u << 20)) {
			ipc_out_free(&w->out);
			ipc_out_init(&w->out);
		}
	}
	return NULL;
}

int
dispatch_start(const char *url, uint64_t n)
{
	uint64_t i;
	int rv;

	if ((rv = nng_rep0_open(&rep_sock)) != 0)
		return ef_err_from_nng(rv);
	nng_socket_set_size(rep_sock, NNG_OPT_RECVMAXSZ, IPC_MAX_MSG);
	if ((rv = listener_open(&rep_listener, rep_sock, url, 0660)) != 0)
		return rv;
	nworkers = n ? n : 1;
	if ((workers = calloc(nworkers, sizeof(*workers))) == NULL)
		fatal("calloc");
	for (i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		ipc_out_init(&w->out);
		pthread_mutex_init(&w->mu, NULL);
		if ((rv = nng_ctx_open(&w->ctx, rep_sock)) != 0)
			return ef_err_from_nng(rv);
		if (nng_aio_alloc(&w->aio, NULL, NULL) != 0)
			fatal("nng_aio_alloc");
		if (pthread_create(&w->thr, NULL, worker_main, w) != 0)
			fatal("pthread_create");
	}
	return 0;
}

void
dispatch_stop(void)
{
	uint64_t i;

	/*
	 * A worker waiting for a request stops now; one busy with a request
	 * finishes it, reply included (its send is never cancelled: it can
	 * only be cancelled while receiving, under its lock).
	 */
	for (i = 0; i < nworkers; i++) {
		pthread_mutex_lock(&workers[i].mu);
		dispatch_stopping = 1;
		if (workers[i].receiving)
			nng_aio_cancel(workers[i].aio);
		pthread_mutex_unlock(&workers[i].mu);
	}
	for (i = 0; i < nworkers; i++)
		pthread_join(workers[i].thr, NULL);
	listener_close(&rep_listener);
	nngx_close(rep_sock);
	for (i = 0; i < nworkers; i++) {
		ipc_out_free(&workers[i].out);
		nng_aio_free(workers[i].aio);
		pthread_mutex_destroy(&workers[i].mu);
	}
	free(workers);
	workers = NULL;
	nworkers = 0;
}
