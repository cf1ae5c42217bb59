/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - the request side of eventfold-runnerd: the handlers of
 * its ops (EXECUTE, GET_STATE, QUERY, RUNNER_STATUS, REBUILD, RESET,
 * REPLAY, DEAD_LETTERS, PLUGINS, RUNNER_BACKUP) on libcommon's request
 * server (server.h), which listens on runner.sock, checks version and
 * shape, and runs them on a pool of `workers` threads: they block
 * (EXECUTE calls stored). A malformed request gets an error reply
 * naming what was wrong; no input stops the server.
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
#include "log.h"
#include "aggregate.h"
#include "dispatch.h"
#include "fold.h"
#include "plugin.h"
#include "procmgr.h"
#include "runnerd.h"
#include "state.h"
#include "server.h"
#include "trace.h"

/* longest RUNNER_STATUS waits for the store's head (then: no lag) */
#define RUNNER_STATUS_HEAD_MS 500

/* An op that needs stored now (admit): refused at once when it is down. */
#define NEEDS_STORE 1u

static struct srv *server;
/* runnerd's context, from dispatch_start to dispatch_stop */
static struct runner *rn;

/* The reply to a body that did not decode: BAD_REQUEST naming the op
 * and the field (why). SRV_DONE. */
static int
bad_body(struct srv_req *rq, const struct ipc_in *in, const char *why)
{
	srv_error(rq, EF_S_BAD_REQUEST, "%s: bad field: %s",
	    ipc_op_name((int)in->op), why);
	return SRV_DONE;
}

/* Begins an OK reply with message msg in srv_out(rq): the handler
 * encodes the body next. */
static void
reply_ok(struct srv_req *rq, const char *msg)
{
	ipc_out_reset(srv_out(rq));
	ipc_reply_begin(srv_out(rq), EF_S_OK, msg);
}

/*
 * The end of a handler whose op returned status s: SRV_DONE, after an
 * error reply with msg unless s is EF_S_OK (the op's reply is then in
 * srv_out).
 */
static int
finish(struct srv_req *rq, int s, const char *msg)
{
	if (s != EF_S_OK)
		srv_error(rq, s, "%s", msg);
	return SRV_DONE;
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

static int
handle_execute(struct srv_req *rq, const struct ipc_in *in)
{
	struct ipc_exec_req r;
	struct ipc_exec_rep rep;
	struct efp_command c;
	char agg[IPC_NAME_MAX + 1], inst[IPC_ID_MAX + 1], type[257],
	    cmd[IPC_ID_MAX + 1], actor[IPC_ID_MAX + 1], corr[IPC_ID_MAX + 1],
	    caus[IPC_ID_MAX + 1], dev[IPC_ID_MAX + 1], msg[1024];
	const char *why = "";
	int s;

	if (ipc_exec_req_decode(in->body, &r, &why) != 0)
		return bad_body(rq, in, why);
	memset(&c, 0, sizeof(c));
	if (cstr(agg, sizeof(agg), &r.aggregate_type, &c.aggregate_type) ||
	    cstr(inst, sizeof(inst), &r.instance_id, &c.instance_id) ||
	    cstr(type, sizeof(type), &r.type, &c.type) ||
	    cstr(cmd, sizeof(cmd), &r.command_id, &c.command_id) ||
	    cstr(actor, sizeof(actor), &r.actor, &c.actor) ||
	    cstr(corr, sizeof(corr), &r.correlation_id, &c.correlation_id) ||
	    cstr(caus, sizeof(caus), &r.causation_id, &c.causation_id) ||
	    cstr(dev, sizeof(dev), &r.source_device, &c.source_device)) {
		srv_error(rq, EF_S_INVALID,
		    "execute: a string field holds a "
		    "NUL byte");
		return SRV_DONE;
	}
	c.payload = r.payload;
	c.payload_len = r.payload_len;
	s = aggregate_execute(&c, &rep, msg, sizeof(msg));
	if (s != EF_S_OK) {
		log_debug("execute %s/%s %s (%s): %s: %s", agg, inst, type,
		    cmd, ipc_status_name(s), msg);
		srv_error(rq, s, "%s", msg);
		return SRV_DONE;
	}
	reply_ok(rq,
	    rep.duplicate ? "duplicate "
	                    "command id: the first result" :
	                    "ok");
	ipc_exec_rep_encode(srv_out(rq), &rep);
	return SRV_DONE;
}

static int
handle_get_state(struct srv_req *rq, const struct ipc_in *in)
{
	struct ipc_state_req r;
	struct ipc_state_rep rep;
	char agg[IPC_NAME_MAX + 1], inst[IPC_ID_MAX + 1], msg[1024];
	const char *why = "", *a, *i;
	uint8_t *state = NULL;
	size_t len = 0;
	int s;

	if (ipc_state_req_decode(in->body, &r, &why) != 0)
		return bad_body(rq, in, why);
	if (cstr(agg, sizeof(agg), &r.aggregate_type, &a) ||
	    cstr(inst, sizeof(inst), &r.instance_id, &i)) {
		srv_error(rq, EF_S_INVALID,
		    "get_state: a string field holds "
		    "a NUL byte");
		return SRV_DONE;
	}
	memset(&rep, 0, sizeof(rep));
	s = aggregate_get_state(agg, inst, rep.stream_id, &rep.exists,
	    &rep.version, &state, &len, msg, sizeof(msg));
	if (s != EF_S_OK)
		return finish(rq, s, msg);
	rep.state = state;
	rep.state_len = (uint32_t)len;
	reply_ok(rq, rep.exists ? "ok" : "no events yet: the initial state");
	ipc_state_rep_encode(srv_out(rq), &rep);
	free(state);
	return SRV_DONE;
}

static struct fold *
find_fold(struct srv_req *rq, const struct ipc_str *name)
{
	struct fold *f = fold_find(name->ptr, name->len);

	if (f == NULL)
		srv_error(rq, EF_S_NOT_FOUND,
		    "no projection or process "
		    "manager \"%.*s\" is loaded",
		    (int)name->len, name->ptr);
	return f;
}

static int
handle_query(struct srv_req *rq, const struct ipc_in *in)
{
	struct ipc_query_req r;
	struct fold *f;
	char msg[1024];
	const char *why = "";
	int s;

	if (ipc_query_req_decode(in->body, &r, &why) != 0)
		return bad_body(rq, in, why);
	if ((f = find_fold(rq, &r.projection)) == NULL)
		return SRV_DONE;
	s = projection_query(f, &r, srv_out(rq), msg, sizeof(msg));
	return finish(rq, s, msg);
}

static int
handle_runner_status(struct srv_req *rq, const struct ipc_in *in)
{
	struct client_reply cr;
	struct ipc_status_rep sr;
	struct ipc_fold_info fi;
	struct ipc_agg_info ai;
	struct agg_type *t;
	char err[512];
	bool has_head;
	uint64_t head = 0, map_bytes, grows;
	size_t i, n;

	(void)in;
	memset(&cr, 0, sizeof(cr));
	/* the head only decorates the answer: a store that is slow to
	 * answer (restarting, or a connection being re-made) must not make
	 * RUNNER_STATUS outlive its callers' deadlines */
	has_head = runner_store_connected(rn, 0) &&
	    client_status_within(&rn->store, RUNNER_STATUS_HEAD_MS, &cr,
	        &sr) == EF_S_OK;
	if (has_head)
		head = sr.head;
	client_reply_free(&cr);
	n = fold_count();
	reply_ok(rq, "ok");
	ipc_runner_status_begin(srv_out(rq), now_ms() - rn->start_ms, has_head,
	    head, (uint32_t)n);
	for (i = 0; i < n; i++) {
		fold_info(fold_at(i), has_head, head, &fi, err, sizeof(err));
		ipc_fold_info_encode(srv_out(rq), &fi);
	}
	n = plugin_naggs();
	ipc_runner_status_aggs(srv_out(rq), (uint32_t)n);
	for (i = 0; i < n; i++) {
		t = plugin_agg_at(i);
		ai.type = ipc_cstr(t->desc->type);
		ai.plugin = ipc_cstr(t->plugin->file);
		ai.cached = __atomic_load_n(&t->cached, __ATOMIC_RELAXED);
		ai.commands = __atomic_load_n(&t->commands, __ATOMIC_RELAXED);
		ipc_agg_info_encode(srv_out(rq), &ai);
	}
	state_map_figures(&map_bytes, &grows);
	ipc_runner_status_end(srv_out(rq), map_bytes, grows);
	return SRV_DONE;
}

/* REBUILD and RESET: the same body, a fold's name. */
static int
handle_rebuild_reset(struct srv_req *rq, const struct ipc_in *in)
{
	struct ipc_name_req r;
	struct fold *f;
	char msg[1024];
	const char *why = "";
	int reset = in->op == EF_OP_RESET, s;

	if (ipc_name_req_decode(in->body, &r, &why) != 0)
		return bad_body(rq, in, why);
	if ((f = find_fold(rq, &r.name)) == NULL)
		return SRV_DONE;
	s = reset ? fold_request(f, REQ_RESET, msg, sizeof(msg)) :
	            fold_rebuild(f, msg, sizeof(msg));
	if (s != EF_S_OK)
		return finish(rq, s, msg);
	reply_ok(rq, reset ? "reset to position 0" : "rebuild started");
	ipc_nil(srv_out(rq));
	return SRV_DONE;
}

static int
handle_replay(struct srv_req *rq, const struct ipc_in *in)
{
	struct ipc_replay_req r;
	struct fold *f;
	char msg[1024];
	const char *why = "";
	int s;

	if (ipc_replay_req_decode(in->body, &r, &why) != 0)
		return bad_body(rq, in, why);
	if ((f = find_fold(rq, &r.projection)) == NULL)
		return SRV_DONE;
	s = projection_replay(f, r.until, r.limit, srv_out(rq), msg,
	    sizeof(msg));
	return finish(rq, s, msg);
}

static int
handle_dead_letters(struct srv_req *rq, const struct ipc_in *in)
{
	struct ipc_dl_req r;
	char msg[1024];
	const char *why = "";
	int s;

	if (ipc_dl_req_decode(in->body, &r, &why) != 0)
		return bad_body(rq, in, why);
	s = procmgr_dead_letters(&r, srv_out(rq), msg, sizeof(msg));
	return finish(rq, s, msg);
}

static int
handle_plugins(struct srv_req *rq, const struct ipc_in *in)
{
	struct plugin *p;
	struct agg_type *t;
	struct fold *f;
	uint32_t n = 0, k;
	size_t i;

	(void)in;
	for (p = plugin_list(); p != NULL; p = p->next)
		n++;
	reply_ok(rq, "ok");
	ipc_plugins_rep_begin(srv_out(rq), n + (uint32_t)plugin_nrefused());
	for (p = plugin_list(); p != NULL; p = p->next) {
		ipc_plugin_info_begin(srv_out(rq), p->file, p->info->name,
		    p->info->version, p->info->abi_version);
		for (k = 0, i = 0; i < plugin_naggs(); i++)
			k += plugin_agg_at(i)->plugin == p;
		ipc_str_list_begin(srv_out(rq), k);
		for (i = 0; i < plugin_naggs(); i++)
			if ((t = plugin_agg_at(i))->plugin == p)
				ipc_str_encode(srv_out(rq), t->desc->type,
				    strlen(t->desc->type));
		for (int kind = EF_FOLD_PROJECTION; kind <= EF_FOLD_MANAGER;
		     kind++) {
			for (k = 0, i = 0; i < fold_count(); i++)
				k += fold_at(i)->plugin == p &&
				    fold_at(i)->kind == kind;
			ipc_str_list_begin(srv_out(rq), k);
			for (i = 0; i < fold_count(); i++)
				if ((f = fold_at(i))->plugin == p &&
				    f->kind == kind)
					ipc_str_encode(srv_out(rq), f->name,
					    strlen(f->name));
		}
		ipc_plugin_info_end(srv_out(rq), NULL);
	}
	for (i = 0; i < plugin_nrefused(); i++) {
		const char *file, *why;

		file = plugin_refused_at(i, &why);
		ipc_plugin_info_begin(srv_out(rq), file, "", "", 0);
		for (k = 0; k < 3; k++)
			ipc_str_list_begin(srv_out(rq), 0);
		ipc_plugin_info_end(srv_out(rq), why);
	}
	return SRV_DONE;
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
	char dir[PATH_MAX]; /* of the running or the last copy */
	int rc;             /* the last copy's outcome */
	uint64_t bytes;
	char why[PATH_MAX + 128];
} bk = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, "", 0, 0,
	"" };

static int
handle_runner_backup(struct srv_req *rq, const struct ipc_in *in)
{
	struct ipc_backup_req r;
	char dir[PATH_MAX], why[PATH_MAX + 128];
	const char *bad = "";
	uint64_t bytes;
	int rc;

	if (ipc_backup_req_decode(in->body, &r, &bad) != 0)
		return bad_body(rq, in, bad);
	if (r.dir.len == 0 || r.dir.len >= sizeof(dir) ||
	    memchr(r.dir.ptr, '\0', r.dir.len) != NULL) {
		srv_error(rq, EF_S_INVALID,
		    "runner_backup: the directory "
		    "must be an absolute path");
		return SRV_DONE;
	}
	memcpy(dir, r.dir.ptr, r.dir.len);
	dir[r.dir.len] = '\0';
	pthread_mutex_lock(&bk.mu);
	if (bk.running && strcmp(bk.dir, dir) != 0) {
		pthread_mutex_unlock(&bk.mu);
		srv_error(rq, EF_S_ABORTED,
		    "another backup of runnerd's "
		    "state is running");
		return SRV_DONE;
	}
	if (bk.running ||
	    (bk.rc == 0 && !strcmp(bk.dir, dir) && access(dir, F_OK) == 0)) {
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
			         " bytes)",
			    dir, bytes);
		pthread_mutex_lock(&bk.mu);
		bk.running = 0;
		bk.rc = rc;
		bk.bytes = bytes;
		snprintf(bk.why, sizeof(bk.why), "%s", why);
		pthread_cond_broadcast(&bk.cv);
		pthread_mutex_unlock(&bk.mu);
	}
	if (rc != 0) {
		srv_error(rq,
		    rc == -EINVAL || rc == -EEXIST || rc == -ENOENT ?
		        EF_S_INVALID :
		        EF_S_INTERNAL,
		    "%s", why);
		return SRV_DONE;
	}
	reply_ok(rq, "ok");
	ipc_counts_encode(srv_out(rq), &bytes, 1);
	return SRV_DONE;
}

static const struct srv_op handlers[] = {
	{ EF_OP_EXECUTE, handle_execute, NEEDS_STORE },
	{ EF_OP_GET_STATE, handle_get_state, NEEDS_STORE },
	{ EF_OP_QUERY, handle_query, 0 },
	{ EF_OP_RUNNER_STATUS, handle_runner_status, 0 },
	{ EF_OP_REBUILD, handle_rebuild_reset, NEEDS_STORE },
	{ EF_OP_RESET, handle_rebuild_reset, NEEDS_STORE },
	{ EF_OP_REPLAY, handle_replay, NEEDS_STORE },
	{ EF_OP_DEAD_LETTERS, handle_dead_letters, 0 },
	{ EF_OP_PLUGINS, handle_plugins, 0 },
	{ EF_OP_RUNNER_BACKUP, handle_runner_backup, 0 },
};

/*
 * What needs the store now is refused, naming it, when it is down: a
 * rebuild or replay accepted then would only stall or fail later, out
 * of the operator's sight, and a reset would empty a read model that
 * nothing can refold until the store is back.
 */
static int
admit(struct srv_req *rq, const struct ipc_in *in, unsigned flags)
{
	(void)in;
	if (rn->stopping) {
		srv_error(rq, EF_S_UNAVAILABLE, "runnerd is shutting down");
		return 1;
	}
	if ((flags & NEEDS_STORE) &&
	    !runner_store_connected(rn, STORE_WAIT_MS)) {
		srv_error(rq, EF_S_UNAVAILABLE,
		    "eventfold-stored is "
		    "unreachable at %s (runnerd keeps trying to connect)",
		    rn->store_url);
		return 1;
	}
	return 0;
}

int
dispatch_start(struct runner *r)
{
	uint64_t n = r->conf.workers;
	struct srv_conf c = {
		.name = "eventfold-runnerd",
		.url = r->runner_url,
		SRV_TABLE(handlers),
		.contexts = n ? n : 1,
		.threads = n ? n : 1,
		.send_ms = 5000,
		.admit = admit,
	};

	rn = r;
	return srv_start(&c, &server);
}

void
dispatch_stop(void)
{
	/* requests in flight finish, replies included (server.h) */
	srv_stop(server, NULL);
	server = NULL;
}
