/* SPDX-License-Identifier: MIT */
/*
 * rharness.c - the runner tests' harness (see rharness.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rharness.h"
#include "uuid5.h"

static const char *
build_root(void)
{
	const char *b = getenv("EF_BUILD_ROOT");

	return b ? b : ".";
}

void
rh_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void
copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in, out;
	ssize_t n;

	in = open(from, O_RDONLY);
	cr_assert(in >= 0, "open %s: %s", from, strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	cr_assert(out >= 0, "create %s: %s", to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert(write(out, buf, (size_t)n) == n);
	close(in);
	close(out);
	chmod(to, 0755);
}

const char *
rh_add_plugin(struct rh *h, const char *file, char *out)
{
	char from[RH_PATH + 64];

	snprintf(from, sizeof(from), "%s/examples/plugins/%s", build_root(),
	    file);
	if (access(from, R_OK) != 0)
		snprintf(from, sizeof(from), "%s/tests/runner/%s",
		    build_root(), file);
	snprintf(out, RH_PATH + 64, "%s/%s", h->plugins, file);
	copy_file(from, out);
	return out;
}

/* The harness rh_init set up last, for rh_fini. */
static struct rh *current;

void
rh_init(struct rh *h, const char *const *plugins)
{
	char p[RH_PATH + 64];
	size_t i;

	memset(h, 0, sizeof(*h));
	current = h;
	snprintf(h->dir, sizeof(h->dir), "/tmp/ef-runner-test.XXXXXX");
	cr_assert(mkdtemp(h->dir) != NULL);
	snprintf(h->data, sizeof(h->data), "%s/data", h->dir);
	snprintf(h->run, sizeof(h->run), "%s/run", h->dir);
	snprintf(h->plugins, sizeof(h->plugins), "%s/plugins", h->dir);
	snprintf(h->stored_log, sizeof(h->stored_log), "%s/stored.log",
	    h->dir);
	snprintf(h->runnerd_log, sizeof(h->runnerd_log), "%s/runnerd.log",
	    h->dir);
	mkdir(h->data, 0750);
	mkdir(h->run, 0750);
	mkdir(h->plugins, 0755);
	chmod(h->plugins, 0755);
	snprintf(h->store_url, sizeof(h->store_url), "ipc://%s/store.sock",
	    h->run);
	snprintf(h->events_url, sizeof(h->events_url),
	    "ipc://%s/store-events.sock", h->run);
	snprintf(h->runner_url, sizeof(h->runner_url), "ipc://%s/runner.sock",
	    h->run);
	for (i = 0; plugins != NULL && plugins[i] != NULL; i++)
		rh_add_plugin(h, plugins[i], p);
	cr_assert(client_open(&h->store, h->store_url, 5000) == 0);
	cr_assert(client_open(&h->runner, h->runner_url, 20000) == 0);
}

static pid_t
spawn(const char *log, char *const argv[])
{
	pid_t pid, parent = getpid();
	int fd;

	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

void
rh_start_stored(struct rh *h)
{
	char bin[RH_PATH + 64];
	char *argv[] = { bin, "-d", "--data-dir", h->data, "--runtime-dir",
		h->run, NULL };
	struct client_reply cr;
	struct ipc_status_rep st;
	int i;

	snprintf(bin, sizeof(bin), "%s/daemons/stored/eventfold-stored",
	    build_root());
	h->stored = spawn(h->stored_log, argv);
	for (i = 0; i < 200; i++) {
		int s = client_status(&h->store, &cr, &st);

		client_reply_free(&cr);
		if (s == EF_S_OK)
			return;
		rh_ms(25);
	}
	cr_assert_fail("stored did not start (see %s)", h->stored_log);
}

pid_t
rh_spawn_runnerd(struct rh *h)
{
	char bin[RH_PATH + 64];
	char *argv[40];
	int n = 0, i;

	snprintf(bin, sizeof(bin), "%s/daemons/runnerd/eventfold-runnerd",
	    build_root());
	argv[n++] = bin;
	argv[n++] = "-d";
	argv[n++] = "--data-dir";
	argv[n++] = h->data;
	argv[n++] = "--runtime-dir";
	argv[n++] = h->run;
	argv[n++] = "--plugin-dir";
	argv[n++] = h->plugins;
	argv[n++] = "--map-size";
	argv[n++] = "1G";
	for (i = 0; h->extra[i] != NULL && n < 38; i++)
		argv[n++] = (char *)h->extra[i];
	argv[n] = NULL;
	h->runnerd = spawn(h->runnerd_log, argv);
	return h->runnerd;
}

struct ipc_out *
rh_request(struct ipc_out *o, int op)
{
	ipc_out_init(o);
	ipc_request_begin(o, op, 1);
	return o;
}

int
rh_call(struct ef_client *c, struct ipc_out *o, struct client_reply *cr)
{
	int st = client_call(c, o, cr);

	ipc_out_free(o);
	return st;
}

int
rh_wait_runnerd(struct rh *h, int timeout_ms)
{
	struct ef_client c;
	struct client_reply cr;
	struct ipc_out o;
	int waited = 0, st, status;

	cr_assert(client_open(&c, h->runner_url, 200) == 0);
	while (waited < timeout_ms) {
		if (waitpid(h->runnerd, &status, WNOHANG) == h->runnerd) {
			h->runnerd_status = status;
			h->runnerd = 0;
			client_close(&c);
			return -1;
		}
		ipc_nil(rh_request(&o, EF_OP_PLUGINS));
		st = rh_call(&c, &o, &cr);
		client_reply_free(&cr);
		if (st == EF_S_OK) {
			client_close(&c);
			return 0;
		}
		rh_ms(20);
		waited += 220;
	}
	client_close(&c);
	return -2;
}

void
rh_start_runnerd(struct rh *h)
{
	rh_spawn_runnerd(h);
	cr_assert(rh_wait_runnerd(h, 10000) == 0,
	    "runnerd did not start "
	    "(see %s)",
	    h->runnerd_log);
}

void
rh_kill_runnerd(struct rh *h, int sig)
{
	int status;

	if (h->runnerd <= 0)
		return;
	kill(h->runnerd, sig);
	waitpid(h->runnerd, &status, 0);
	h->runnerd_status = status;
	h->runnerd = 0;
}

void
rh_stop(struct rh *h)
{
	int status;

	rh_kill_runnerd(h, SIGTERM);
	if (h->stored > 0) {
		kill(h->stored, SIGTERM);
		waitpid(h->stored, &status, 0);
		h->stored = 0;
	}
	client_close(&h->store);
	client_close(&h->runner);
	if (getenv("EF_KEEP") == NULL) {
		char cmd[RH_PATH + 32];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", h->dir);
	}
}

void
rh_fini(void)
{
	if (current != NULL)
		rh_stop(current);
	current = NULL;
}

static void
copy_msg(const struct client_reply *cr, char *msg, size_t ml)
{
	if (msg != NULL)
		snprintf(msg, ml, "%.*s", (int)cr->in.message.len,
		    cr->in.message.ptr ? cr->in.message.ptr : "");
}

int
rh_exec_ctx(struct rh *h, const struct ipc_exec_req *r,
    struct ipc_exec_rep *rep, char *msg, size_t ml)
{
	struct client_reply cr;
	struct ipc_out o;
	const char *why;
	int st;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_EXECUTE, client_request_id(&h->runner));
	ipc_exec_req_encode(&o, r);
	st = client_call(&h->runner, &o, &cr);
	ipc_out_free(&o);
	copy_msg(&cr, msg, ml);
	if (st == EF_S_OK && rep != NULL)
		cr_assert(ipc_exec_rep_decode(cr.in.body, rep, &why) == 0,
		    "exec reply: %s", why);
	client_reply_free(&cr);
	return st;
}

int
rh_exec(struct rh *h, const char *agg, const char *inst, const char *type,
    const char *payload, const char *cmd_id, struct ipc_exec_rep *rep,
    char *msg, size_t ml)
{
	struct ipc_exec_req r;
	char idbuf[UUID_STR_LEN];
	uint8_t id[UUID_LEN];

	memset(&r, 0, sizeof(r));
	r.aggregate_type = ipc_cstr(agg);
	r.instance_id = ipc_cstr(inst);
	r.type = ipc_cstr(type);
	if (payload != NULL) {
		r.payload = (const uint8_t *)payload;
		r.payload_len = (uint32_t)strlen(payload);
	}
	if (cmd_id == NULL) {
		uuid_random(id);
		cmd_id = uuid_format(id, idbuf);
	}
	r.command_id = ipc_cstr(cmd_id);
	return rh_exec_ctx(h, &r, rep, msg, ml);
}

int
rh_state(struct rh *h, const char *agg, const char *inst, char **state,
    uint64_t *version, bool *exists)
{
	struct ipc_state_req r = { ipc_cstr(agg), ipc_cstr(inst) };
	struct ipc_state_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const char *why;
	int st;

	*state = NULL;
	ipc_state_req_encode(rh_request(&o, EF_OP_GET_STATE), &r);
	st = rh_call(&h->runner, &o, &cr);
	if (st == EF_S_OK) {
		cr_assert(ipc_state_rep_decode(cr.in.body, &rep, &why) == 0);
		*state = strndup((const char *)rep.state, rep.state_len);
		if (version)
			*version = rep.version;
		if (exists)
			*exists = rep.exists;
	}
	client_reply_free(&cr);
	return st;
}

static void
append_items(char **out, size_t *len, const msgpack_object *items, uint32_t n)
{
	const uint8_t *k, *v;
	uint32_t kl, vl, i;
	const char *why;
	FILE *fp;
	char *buf = NULL;
	size_t blen = 0;

	fp = open_memstream(&buf, &blen);
	for (i = 0; i < n; i++) {
		cr_assert(ipc_kv_decode(&items->via.array.ptr[i], &k, &kl, &v,
		              &vl, &why) == 0);
		fprintf(fp, "%.*s=%.*s\n", (int)kl, k, (int)vl, v);
	}
	fclose(fp);
	*out = realloc(*out, *len + blen + 1);
	memcpy(*out + *len, buf, blen);
	*len += blen;
	(*out)[*len] = '\0';
	free(buf);
}

int
rh_dump(struct rh *h, const char *proj, uint32_t limit, char **out,
    uint64_t *position)
{
	struct ipc_query_req q;
	struct ipc_query_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	uint8_t cursor[IPC_KEY_MAX];
	uint32_t clen = 0;
	size_t len = 0;
	const char *why;
	int st, first = 1;

	*out = strdup("");
	for (;;) {
		memset(&q, 0, sizeof(q));
		q.projection = ipc_cstr(proj);
		q.mode = EF_QUERY_RANGE;
		q.limit = limit;
		q.has_after = !first;
		q.after = cursor;
		q.after_len = clen;
		ipc_query_req_encode(rh_request(&o, EF_OP_QUERY), &q);
		st = rh_call(&h->runner, &o, &cr);
		if (st != EF_S_OK) {
			client_reply_free(&cr);
			return st;
		}
		cr_assert(ipc_query_rep_decode(cr.in.body, &rep, &why) == 0);
		if (first && position != NULL)
			*position = rep.position;
		append_items(out, &len, rep.items, rep.nitems);
		first = 0;
		if (!rep.has_next) {
			client_reply_free(&cr);
			return EF_S_OK;
		}
		memcpy(cursor, rep.next, rep.next_len);
		clen = rep.next_len;
		client_reply_free(&cr);
	}
}

int
rh_replay(struct rh *h, const char *proj, uint64_t until, char **out,
    uint64_t *position)
{
	struct ipc_replay_req r = { ipc_cstr(proj), until, IPC_QUERY_LIMIT };
	struct ipc_replay_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	size_t len = 0;
	const char *why;
	int st;

	*out = strdup("");
	ipc_replay_req_encode(rh_request(&o, EF_OP_REPLAY), &r);
	st = rh_call(&h->runner, &o, &cr);
	if (st == EF_S_OK) {
		cr_assert(ipc_replay_rep_decode(cr.in.body, &rep, &why) == 0);
		append_items(out, &len, rep.items, rep.nitems);
		if (position)
			*position = rep.position;
	}
	client_reply_free(&cr);
	return st;
}

int
rh_get(struct rh *h, const char *proj, const char *key, char **val)
{
	struct ipc_query_req q;
	struct ipc_query_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const uint8_t *k, *v;
	uint32_t kl, vl;
	const char *why;
	int st;

	*val = NULL;
	memset(&q, 0, sizeof(q));
	q.projection = ipc_cstr(proj);
	q.mode = EF_QUERY_KEY;
	q.has_key = true;
	q.key = (const uint8_t *)key;
	q.key_len = (uint32_t)strlen(key);
	ipc_query_req_encode(rh_request(&o, EF_OP_QUERY), &q);
	st = rh_call(&h->runner, &o, &cr);
	if (st == EF_S_OK) {
		cr_assert(ipc_query_rep_decode(cr.in.body, &rep, &why) == 0);
		cr_assert(rep.nitems == 1);
		cr_assert(ipc_kv_decode(&rep.items->via.array.ptr[0], &k, &kl,
		              &v, &vl, &why) == 0);
		*val = strndup((const char *)v, vl);
	}
	client_reply_free(&cr);
	return st;
}

void
rh_expect_get(struct rh *h, const char *proj, const char *key,
    const char *want)
{
	char *val;

	cr_assert_eq(rh_get(h, proj, key, &val), EF_S_OK, "%s %s", proj, key);
	cr_assert_str_eq(val, want, "%s %s", proj, key);
	free(val);
}

int
rh_fold(struct rh *h, const char *name, struct rh_fold *out)
{
	struct ipc_runner_status_rep sr;
	struct ipc_fold_info f;
	struct client_reply cr;
	struct ipc_out o;
	const char *why;
	uint32_t i;
	int st;

	memset(out, 0, sizeof(*out));
	ipc_nil(rh_request(&o, EF_OP_RUNNER_STATUS));
	st = rh_call(&h->runner, &o, &cr);
	if (st != EF_S_OK) {
		client_reply_free(&cr);
		return st;
	}
	cr_assert(ipc_runner_status_rep_decode(cr.in.body, &sr, &why) == 0);
	st = EF_S_NOT_FOUND;
	for (i = 0; i < sr.nfolds; i++) {
		cr_assert(ipc_fold_info_decode(&sr.folds->via.array.ptr[i], &f,
		              &why) == 0,
		    "fold info: %s", why);
		if (f.name.len != strlen(name) ||
		    memcmp(f.name.ptr, name, f.name.len) != 0)
			continue;
		snprintf(out->state, sizeof(out->state), "%.*s",
		    (int)f.state.len, f.state.ptr);
		out->position = f.position;
		out->has_error = f.has_error;
		out->error_position = f.error_position;
		snprintf(out->error, sizeof(out->error), "%.*s",
		    (int)f.error.len, f.error.ptr ? f.error.ptr : "");
		out->rebuilding = f.rebuilding;
		out->rebuild_position = f.rebuilding ? f.rebuild_position : 0;
		out->dead_letters = f.dead_letters;
		out->events_per_s = f.events_per_s;
		out->has_lag = f.has_lag;
		out->lag = f.lag;
		st = EF_S_OK;
	}
	client_reply_free(&cr);
	return st;
}

void
rh_lmdb_map(struct rh *h, uint64_t *bytes, uint64_t *grows)
{
	struct ipc_runner_status_rep sr;
	struct client_reply cr;
	struct ipc_out o;
	const char *why = "";
	int st;

	ipc_nil(rh_request(&o, EF_OP_RUNNER_STATUS));
	st = rh_call(&h->runner, &o, &cr);
	cr_assert_eq(st, EF_S_OK, "RUNNER_STATUS: %d", st);
	cr_assert(ipc_runner_status_rep_decode(cr.in.body, &sr, &why) == 0,
	    "RUNNER_STATUS: %s", why);
	*bytes = sr.lmdb_map_bytes;
	*grows = sr.lmdb_map_grows;
	client_reply_free(&cr);
}

bool
rh_wait_fold(struct rh *h, const char *name, uint64_t pos, int ms)
{
	struct rh_fold f;
	int waited;

	for (waited = 0; waited < ms; waited += 20) {
		if (rh_fold(h, name, &f) == EF_S_OK && f.position >= pos &&
		    !f.rebuilding)
			return true;
		rh_ms(20);
	}
	return false;
}

uint64_t
rh_head(struct rh *h)
{
	struct client_reply cr;
	struct ipc_status_rep st;
	uint64_t head = 0;

	if (client_status(&h->store, &cr, &st) == EF_S_OK)
		head = st.head;
	client_reply_free(&cr);
	return head;
}

int
rh_name_op(struct rh *h, int op, const char *name, char *msg, size_t ml)
{
	struct ipc_name_req r = { ipc_cstr(name) };
	struct client_reply cr;
	struct ipc_out o;
	int st;

	ipc_name_req_encode(rh_request(&o, op), &r);
	st = rh_call(&h->runner, &o, &cr);
	copy_msg(&cr, msg, ml);
	client_reply_free(&cr);
	return st;
}

int
rh_raw(struct rh *h, const void *buf, size_t len, char *msg, size_t ml)
{
	struct ipc_out o;
	struct client_reply cr;
	int st;

	ipc_out_init(&o);
	o.buf = malloc(len);
	memcpy(o.buf, buf, len);
	o.len = o.cap = len;
	st = client_call(&h->runner, &o, &cr);
	copy_msg(&cr, msg, ml);
	client_reply_free(&cr);
	ipc_out_free(&o);
	return st;
}

int
rh_append_es(struct rh *h, const char *agg, const char *inst, const char *type,
    const char *payload, int kind, uint64_t version)
{
	struct ipc_append_req r;
	struct ipc_proposed ev;
	struct client_reply cr;
	char sid[UUID_STR_LEN], eid[UUID_STR_LEN], meta[512];
	uint8_t s[UUID_LEN], e[UUID_LEN];
	int st;

	uuid_stream_id(agg, strlen(agg), inst, strlen(inst), s);
	uuid_random(e);
	snprintf(meta, sizeof(meta),
	    "{\"aggregate_type\":\"%s\","
	    "\"instance_id\":\"%s\"}",
	    agg, inst);
	memset(&ev, 0, sizeof(ev));
	ev.event_id = ipc_cstr(uuid_format(e, eid));
	ev.type = ipc_cstr(type);
	ev.metadata = (const uint8_t *)meta;
	ev.metadata_len = (uint32_t)strlen(meta);
	ev.payload = (const uint8_t *)(payload ? payload : "null");
	ev.payload_len = (uint32_t)strlen(payload ? payload : "null");
	memset(&r, 0, sizeof(r));
	r.stream_id = ipc_cstr(uuid_format(s, sid));
	r.kind = (uint8_t)kind;
	r.version = version;
	r.nevents = 1;
	r.events = &ev;
	st = client_append(&h->store, &r, &cr);
	client_reply_free(&cr);
	return st;
}

int
rh_append_batch(struct rh *h, const uint8_t sid[UUID_LEN], uint32_t n,
    void (*fn)(uint32_t, char *, char *, char *, void *), void *arg)
{
	struct ipc_append_req r;
	struct ipc_proposed *ev;
	struct client_reply cr;
	char sbuf[UUID_STR_LEN], (*ids)[UUID_STR_LEN], (*types)[64],
	    (*metas)[256], (*pays)[256];
	uint8_t e[UUID_LEN];
	uint32_t i;
	int st;

	ev = calloc(n, sizeof(*ev));
	ids = calloc(n, sizeof(*ids));
	types = calloc(n, sizeof(*types));
	metas = calloc(n, sizeof(*metas));
	pays = calloc(n, sizeof(*pays));
	for (i = 0; i < n; i++) {
		fn(i, types[i], metas[i], pays[i], arg);
		uuid_random(e);
		ev[i].event_id = ipc_cstr(uuid_format(e, ids[i]));
		ev[i].type = ipc_cstr(types[i]);
		ev[i].metadata = (const uint8_t *)metas[i];
		ev[i].metadata_len = (uint32_t)strlen(metas[i]);
		ev[i].payload = (const uint8_t *)pays[i];
		ev[i].payload_len = (uint32_t)strlen(pays[i]);
	}
	memset(&r, 0, sizeof(r));
	r.stream_id = ipc_cstr(uuid_format(sid, sbuf));
	r.kind = EF_EXPECT_ANY;
	r.nevents = n;
	r.events = ev;
	st = client_append(&h->store, &r, &cr);
	client_reply_free(&cr);
	free(ev);
	free(ids);
	free(types);
	free(metas);
	free(pays);
	return st;
}

char *
rh_read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	if (fp == NULL)
		return strdup("");
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (fread(buf, 1, (size_t)n, fp) != (size_t)n)
		buf[0] = '\0';
	fclose(fp);
	return buf;
}

bool
rh_log_contains(const char *path, const char *needle)
{
	char *s = rh_read_file(path);
	bool r = strstr(s, needle) != NULL;

	free(s);
	return r;
}

void
rh_expect_logged(struct rh *h, const char *const *said)
{
	for (; *said != NULL; said++)
		cr_assert(rh_log_contains(h->runnerd_log, *said),
		    "runnerd's log does not say \"%s\"", *said);
}

void
rh_numbered(uint32_t i, char *type, char *meta, char *payload, void *arg)
{
	strcpy(type, arg);
	meta[0] = '\0';
	sprintf(payload, "{\"i\":%u}", i);
}

void
rh_stream_id(uint8_t sid[UUID_LEN], uint8_t fill)
{
	memset(sid, fill, UUID_LEN);
	sid[6] = 0x40;
	sid[8] = 0x80;
}

uint64_t
rh_fold_ok(struct rh *h, const char *name)
{
	struct rh_fold f;

	cr_assert_eq(rh_fold(h, name, &f), EF_S_OK, "%s", name);
	cr_assert(!f.has_error, "%s failed: %s", name, f.error);
	return f.position;
}

void
rh_init_args(struct rh *h, const char *const *plugins,
    const char *const *extra)
{
	size_t i;

	rh_init(h, plugins);
	for (i = 0; extra != NULL && extra[i] != NULL; i++) {
		cr_assert_lt(i + 1, sizeof(h->extra) / sizeof(h->extra[0]));
		h->extra[i] = extra[i];
	}
}

void
rh_up_args(struct rh *h, const char *const *plugins, const char *const *extra)
{
	rh_init_args(h, plugins, extra);
	rh_start_stored(h);
	rh_start_runnerd(h);
}

void
rh_up(struct rh *h, const char *const *plugins)
{
	rh_up_args(h, plugins, NULL);
}
