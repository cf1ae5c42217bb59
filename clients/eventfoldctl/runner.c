/* SPDX-License-Identifier: MIT */
/*
 * runner.c - eventfoldctl's commands for eventfold-runnerd, over
 * runner.sock: exec, state, query, projections, rebuild, reset, replay,
 * deadletters, plugins. Tables for people, JSON lines with --json
 * (values that are JSON are embedded, other text as strings, anything
 * else base64 under a *_base64 key). Exit codes as in ctl.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ctl.h"
#include "ipc_runner.h"

/* Adds key: JSON, else a string if UTF-8, else key_base64. */
static void
json_value(json_t *obj, const char *key, const uint8_t *p, size_t len)
{
	char k64[64], *b;
	json_t *v;

	if (len > 0 &&
	    (v = json_loadb((const char *)p, len, JSON_DECODE_ANY, NULL)) !=
	        NULL) {
		json_object_set_new(obj, key, v);
		return;
	}
	if ((v = json_stringn((const char *)p, len)) != NULL) {
		json_object_set_new(obj, key, v);
		return;
	}
	snprintf(k64, sizeof(k64), "%s_base64", key);
	if ((b = malloc(4 * ((len + 2) / 3) + 1)) == NULL)
		return;
	EVP_EncodeBlock((unsigned char *)b, p, (int)len);
	json_object_set_new(obj, k64, json_string(b));
	free(b);
}

static void
json_print(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (s != NULL)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

/* Starts a request of op in o (initialised here) for the body to follow. */
static struct ipc_out *
runner_request(struct ipc_out *o, int op)
{
	ipc_out_init(o);
	ipc_request_begin(o, op, 1);
	return o;
}

/*
 * Sends o to runnerd (o is freed here), waiting extra_ms beyond the
 * timeout. 0 if the reply's status is OK, with the reply in *cr; else the
 * exit code after printing why (no call made, or the reply's status).
 * Free *cr with client_reply_free() either way.
 */
static int
runner_ask(struct ctl *c, struct ipc_out *o, struct client_reply *cr,
    uint64_t extra_ms)
{
	struct ef_client cl;
	int st;

	memset(cr, 0, sizeof(*cr));
	if ((st = ctl_open(c, CTL_RUNNERD, &cl, extra_ms)) != 0) {
		ipc_out_free(o);
		return st;
	}
	st = ctl_ask(c, CTL_RUNNERD, &cl, o, cr);
	client_close(&cl);
	ipc_out_free(o);
	return st;
}

static int
take_opt(int *i, int argc, char **argv, const char *name, const char **v)
{
	if (strcmp(argv[*i], name) != 0)
		return 0;
	if (*i + 1 >= argc) {
		ctl_err(CTL_USAGE, "%s needs a value", name);
		return -1;
	}
	*v = argv[++*i];
	return 1;
}

/*
 * Takes argv[*i] if it is one of the options named in names (a NULL
 * ended list), its value into the same slot of vals. 1 taken, 0 not one
 * of them, -1 a missing value (said).
 */
static int
take_opts(int *i, int argc, char **argv, const char *const *names,
    const char **vals)
{
	int k, t;

	for (k = 0; names[k] != NULL; k++)
		if ((t = take_opt(i, argc, argv, names[k], &vals[k])) != 0)
			return t;
	return 0;
}

/* exec's options, in the order of exec_opts[] */
enum { EXEC_CMD_ID, EXEC_ACTOR, EXEC_CORR, EXEC_CAUS, EXEC_DEV, EXEC_NOPTS };
static const char *const exec_opts[] = { "--command-id", "--actor",
	"--correlation-id", "--causation-id", "--source-device", NULL };

/* exec's arguments: up to 4 positional ones into pos, *np of them. */
static int
exec_args(struct ctl *c, int argc, char **argv, const char **pos, int *np,
    const char **opt)
{
	int i, t;

	for (i = 1; i < argc; i++) {
		if ((t = take_opts(&i, argc, argv, exec_opts, opt)) != 0) {
			if (t < 0)
				return CTL_USAGE;
			continue;
		}
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return ctl_err(CTL_USAGE, "exec: unknown option %s",
			    argv[i]);
		else if (*np < 4)
			pos[(*np)++] = argv[i];
		else
			return ctl_err(CTL_USAGE, "exec: too many arguments");
	}
	return *np < 3 ? ctl_usage("exec") : CTL_OK;
}

static void
exec_print(const struct ctl *c, const char *cmd_id,
    const struct ipc_exec_rep *rep)
{
	char sid[UUID_STR_LEN];
	json_t *j;

	uuid_format(rep->stream_id, sid);
	if (c->json) {
		j = json_pack("{s:s,s:s}", "command_id", cmd_id, "stream_id",
		    sid);
		json_object_set_new(j, "version",
		    rep->exists ? json_integer((json_int_t)rep->version) :
		                  json_null());
		json_object_set_new(j, "event_count",
		    json_integer((json_int_t)rep->count));
		json_object_set_new(j, "first_position",
		    rep->count ? json_integer((json_int_t)rep->first_pos) :
		                 json_null());
		json_object_set_new(j, "last_position",
		    rep->count ? json_integer((json_int_t)rep->last_pos) :
		                 json_null());
		json_object_set_new(j, "duplicate",
		    json_boolean(rep->duplicate));
		json_print(j);
	} else if (rep->count == 0)
		printf("command %s: no events (stream %s, version %s)\n",
		    cmd_id, sid, rep->exists ? "unchanged" : "none");
	else
		printf("command %s: %" PRIu64
		       " event%s, stream %s version %" PRIu64
		       ", positions %" PRIu64 "..%" PRIu64 "%s\n",
		    cmd_id, rep->count, rep->count == 1 ? "" : "s", sid,
		    rep->version, rep->first_pos, rep->last_pos,
		    rep->duplicate ? " (duplicate: the first result)" : "");
}

static int
cmd_exec(struct ctl *c, int argc, char **argv)
{
	struct ipc_exec_req r;
	struct ipc_exec_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const char *pos[4] = { 0 }, *opt[EXEC_NOPTS] = { 0 }, *why;
	char idbuf[UUID_STR_LEN];
	uint8_t id[UUID_LEN], *in = NULL;
	size_t plen = 0;
	int np = 0, rc;

	if ((rc = exec_args(c, argc, argv, pos, &np, opt)) != CTL_OK)
		return rc;
	memset(&r, 0, sizeof(r));
	r.aggregate_type = ipc_cstr(pos[0]);
	r.instance_id = ipc_cstr(pos[1]);
	r.type = ipc_cstr(pos[2]);
	if (np == 4 && !strcmp(pos[3], "-")) {
		if ((in = ctl_read_stdin(&plen, IPC_PAYLOAD_MAX,
		         "a command's payload", &why)) == NULL)
			return ctl_err(CTL_USAGE,
			    "cannot read the payload "
			    "from stdin: %s",
			    why);
		r.payload = in;
		r.payload_len = (uint32_t)plen;
	} else if (np == 4) {
		r.payload = (const uint8_t *)pos[3];
		r.payload_len = (uint32_t)strlen(pos[3]);
	}
	if (opt[EXEC_CMD_ID] == NULL) {
		uuid_random(id);
		opt[EXEC_CMD_ID] = uuid_format(id, idbuf);
	}
	r.command_id = ipc_cstr(opt[EXEC_CMD_ID]);
	r.actor = ipc_cstr(opt[EXEC_ACTOR]);
	r.correlation_id = ipc_cstr(opt[EXEC_CORR]);
	r.causation_id = ipc_cstr(opt[EXEC_CAUS]);
	r.source_device = ipc_cstr(opt[EXEC_DEV]);
	ctl_note_not_json("payload", NULL, r.payload, r.payload_len);
	ipc_exec_req_encode(runner_request(&o, EF_OP_EXECUTE), &r);
	rc = runner_ask(c, &o, &cr, 0);
	free(in);
	if (rc != CTL_OK)
		goto out;
	if (ipc_exec_rep_decode(cr.in.body, &rep, &why) != 0) {
		rc = ctl_malformed(why);
		goto out;
	}
	exec_print(c, opt[EXEC_CMD_ID], &rep);
out:
	client_reply_free(&cr);
	return rc;
}

static void
state_print(const struct ctl *c, const struct ipc_state_rep *rep)
{
	char sid[UUID_STR_LEN], *s;
	json_t *j;

	uuid_format(rep->stream_id, sid);
	j = json_pack("{s:s}", "stream_id", sid);
	json_object_set_new(j, "version",
	    rep->exists ? json_integer((json_int_t)rep->version) :
	                  json_null());
	json_value(j, "state", rep->state, rep->state_len);
	if (c->json) {
		json_print(j);
		return;
	}
	if (rep->exists)
		printf("stream %s, version %" PRIu64 "\n", sid, rep->version);
	else
		printf("stream %s, no events yet\n", sid);
	s = json_dumps(json_object_get(j, "state") ?
	        json_object_get(j, "state") :
	        json_object_get(j, "state_base64"),
	    JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	printf("%s\n", s ? s : "");
	free(s);
	json_decref(j);
}

static int
cmd_state(struct ctl *c, int argc, char **argv)
{
	struct ipc_state_req r;
	struct ipc_state_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const char *pos[2] = { 0 }, *why;
	int i, np = 0, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (argv[i][0] == '-')
			return ctl_err(CTL_USAGE, "state: unknown option %s",
			    argv[i]);
		else if (np < 2)
			pos[np++] = argv[i];
		else
			return ctl_err(CTL_USAGE, "state: too many arguments");
	}
	if (np != 2)
		return ctl_usage("state");
	r.aggregate_type = ipc_cstr(pos[0]);
	r.instance_id = ipc_cstr(pos[1]);
	ipc_state_req_encode(runner_request(&o, EF_OP_GET_STATE), &r);
	if ((rc = runner_ask(c, &o, &cr, 0)) != CTL_OK)
		goto out;
	if (ipc_state_rep_decode(cr.in.body, &rep, &why) != 0) {
		rc = ctl_malformed(why);
		goto out;
	}
	state_print(c, &rep);
out:
	client_reply_free(&cr);
	return rc;
}

static void
print_items(const struct ctl *c, const msgpack_object *items, uint32_t n)
{
	const uint8_t *k, *v;
	uint32_t kl, vl, i;
	const char *why;
	json_t *j;

	for (i = 0; i < n; i++) {
		if (ipc_kv_decode(&items->via.array.ptr[i], &k, &kl, &v, &vl,
		        &why) != 0)
			continue;
		if (c->json) {
			j = json_object();
			json_value(j, "key", k, kl);
			json_value(j, "value", v, vl);
			json_print(j);
		} else {
			fwrite(k, 1, kl, stdout);
			putchar('\t');
			fwrite(v, 1, vl, stdout);
			putchar('\n');
		}
	}
}

/* query's options, in the order of query_opts[] */
enum { Q_PREFIX, Q_FROM, Q_TO, Q_AFTER, Q_LIMIT, Q_MINPOS, Q_WAIT, Q_NOPTS };
static const char *const query_opts[] = { "--prefix", "--from", "--to",
	"--after", "--limit", "--min-position", "--wait", NULL };

/* What query was asked: the projection, a key or none, the options. */
struct query_args {
	const char *name, *key, *opt[Q_NOPTS];
	int all, range;
};

static int
query_args(struct ctl *c, int argc, char **argv, struct query_args *a)
{
	int i, t;

	memset(a, 0, sizeof(*a));
	for (i = 1; i < argc; i++) {
		if ((t = take_opts(&i, argc, argv, query_opts, a->opt)) != 0) {
			if (t < 0)
				return CTL_USAGE;
			continue;
		}
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (!strcmp(argv[i], "--all"))
			a->all = 1;
		else if (!strcmp(argv[i], "--range"))
			a->range = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return ctl_err(CTL_USAGE, "query: unknown option %s",
			    argv[i]);
		else if (a->name == NULL)
			a->name = argv[i];
		else if (a->key == NULL)
			a->key = argv[i];
		else
			return ctl_err(CTL_USAGE, "query: too many arguments");
	}
	if (a->name == NULL ||
	    (a->key != NULL &&
	        (a->opt[Q_PREFIX] || a->opt[Q_FROM] || a->opt[Q_TO] ||
	            a->range)))
		return ctl_usage("query");
	return CTL_OK;
}

/* The mode and keys of r: one key, a prefix, or a range. */
static void
query_keys(struct ipc_query_req *r, const struct query_args *a)
{
	const char *key = a->key ? a->key : a->opt[Q_PREFIX];

	if (key != NULL) {
		r->mode = a->key ? EF_QUERY_KEY : EF_QUERY_PREFIX;
		r->has_key = true;
		r->key = (const uint8_t *)key;
		r->key_len = (uint32_t)strlen(key);
		return;
	}
	r->mode = EF_QUERY_RANGE;
	if (a->opt[Q_FROM] != NULL) {
		r->has_key = true;
		r->key = (const uint8_t *)a->opt[Q_FROM];
		r->key_len = (uint32_t)strlen(a->opt[Q_FROM]);
	}
	if (a->opt[Q_TO] != NULL) {
		r->has_end = true;
		r->end = (const uint8_t *)a->opt[Q_TO];
		r->end_len = (uint32_t)strlen(a->opt[Q_TO]);
	}
}

/* --limit, --min-position and --wait into r. */
static int
query_bounds(struct ipc_query_req *r, const struct query_args *a)
{
	uint64_t v;

	if (a->opt[Q_LIMIT] != NULL) {
		if (ctl_parse_u64(a->opt[Q_LIMIT], &v) != 0 || v == 0 ||
		    v > IPC_QUERY_LIMIT)
			return ctl_err(CTL_USAGE, "--limit: 1..%u",
			    IPC_QUERY_LIMIT);
		r->limit = v;
	}
	if (a->opt[Q_MINPOS] != NULL) {
		if (ctl_parse_u64(a->opt[Q_MINPOS], &r->min_position) != 0)
			return ctl_err(CTL_USAGE,
			    "--min-position: a position");
		r->has_min_position = true;
		r->wait_ms = 5000;
	}
	if (a->opt[Q_WAIT] != NULL) {
		if (ctl_parse_u64(a->opt[Q_WAIT], &r->wait_ms) != 0 ||
		    r->wait_ms > IPC_WAIT_MAX_MS)
			return ctl_err(CTL_USAGE, "--wait: 0..%u ms",
			    IPC_WAIT_MAX_MS);
	}
	return CTL_OK;
}

/*
 * One page of query r after the cursor (cursor_len bytes, if
 * *have_cursor); prints its items, adds their count to *shown and moves
 * the cursor past them. *more: another page is wanted.
 */
static int
query_page(struct ctl *c, struct ipc_query_req *r, int all, uint8_t *cursor,
    uint32_t *cursor_len, int *have_cursor, uint64_t *shown, int *more)
{
	struct ipc_query_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const char *why;
	int rc;

	*more = 0;
	r->has_after = *have_cursor;
	r->after = cursor;
	r->after_len = *cursor_len;
	ipc_query_req_encode(runner_request(&o, EF_OP_QUERY), r);
	if ((rc = runner_ask(c, &o, &cr, r->wait_ms)) != CTL_OK)
		goto out;
	if (ipc_query_rep_decode(cr.in.body, &rep, &why) != 0) {
		rc = ctl_malformed(why);
		goto out;
	}
	print_items(c, rep.items, rep.nitems);
	*shown += rep.nitems;
	if (!rep.has_next || !all || r->mode == EF_QUERY_KEY) {
		if (rep.has_next && !c->json)
			fprintf(stderr,
			    "eventfoldctl: more; next page "
			    "with --after '%.*s' (or --all)\n",
			    (int)rep.next_len, (const char *)rep.next);
		goto out;
	}
	memcpy(cursor, rep.next, rep.next_len);
	*cursor_len = rep.next_len;
	*have_cursor = 1;
	r->has_min_position = false;
	*more = 1;
out:
	client_reply_free(&cr);
	return rc;
}

static int
cmd_query(struct ctl *c, int argc, char **argv)
{
	struct ipc_query_req r;
	struct query_args a;
	const char *after;
	uint8_t cursor[IPC_KEY_MAX];
	uint32_t cursor_len = 0;
	uint64_t shown = 0;
	int rc, have_cursor = 0, more = 1;

	if ((rc = query_args(c, argc, argv, &a)) != CTL_OK)
		return rc;
	memset(&r, 0, sizeof(r));
	r.projection = ipc_cstr(a.name);
	query_keys(&r, &a);
	if ((after = a.opt[Q_AFTER]) != NULL) {
		if (strlen(after) > IPC_KEY_MAX)
			return ctl_err(CTL_USAGE, "--after: key too long");
		cursor_len = (uint32_t)strlen(after);
		memcpy(cursor, after, cursor_len);
		have_cursor = 1;
	}
	if ((rc = query_bounds(&r, &a)) != CTL_OK)
		return rc;
	while (more && rc == CTL_OK)
		rc = query_page(c, &r, a.all, cursor, &cursor_len,
		    &have_cursor, &shown, &more);
	if (rc == CTL_OK && shown == 0)
		ctl_empty(c, a.key != NULL ? "no such key" : "no keys");
	return rc;
}

static int
fetch_status(struct ctl *c, struct client_reply *cr,
    struct ipc_runner_status_rep *sr)
{
	struct ipc_out o;
	const char *why;
	int rc;

	ipc_nil(runner_request(&o, EF_OP_RUNNER_STATUS));
	if ((rc = runner_ask(c, &o, cr, 0)) != CTL_OK)
		return rc;
	if (ipc_runner_status_rep_decode(cr->in.body, sr, &why) != 0)
		return ctl_malformed(why);
	return 0;
}

static const char *
fold_kind(const struct ipc_fold_info *f)
{
	return f->kind == EF_FOLD_PROJECTION ? "projection" : "manager";
}

/* A JSON integer, or null when !has. */
static json_t *
json_opt_int(int has, uint64_t v)
{
	return has ? json_integer((json_int_t)v) : json_null();
}

static void
fold_json(const struct ipc_fold_info *f)
{
	json_t *j;

	j = json_pack("{s:s%,s:s%,s:s,s:s%,s:I}", "name", f->name.ptr,
	    (size_t)f->name.len, "plugin", f->plugin.ptr,
	    (size_t)f->plugin.len, "kind", fold_kind(f), "state", f->state.ptr,
	    (size_t)f->state.len, "position", (json_int_t)f->position);
	json_object_set_new(j, "lag", json_opt_int(f->has_lag, f->lag));
	json_object_set_new(j, "events_per_s",
	    json_integer((json_int_t)f->events_per_s));
	json_object_set_new(j, "error_position",
	    json_opt_int(f->has_error, f->error_position));
	json_object_set_new(j, "error",
	    f->error.ptr ? json_stringn(f->error.ptr, f->error.len) :
	                   json_null());
	json_object_set_new(j, "rebuild_position",
	    json_opt_int(f->rebuilding, f->rebuild_position));
	json_object_set_new(j, "dead_letters",
	    json_integer((json_int_t)f->dead_letters));
	json_print(j);
}

static void
fold_row(struct tbl *t, const struct ipc_fold_info *f)
{
	char name[IPC_NAME_MAX + 1], state[64], pos[32], lag[32], rate[32],
	    dead[32], err[1200];
	int n = 0;

	if (f->has_lag)
		snprintf(lag, sizeof(lag), "%" PRIu64, f->lag);
	else
		snprintf(lag, sizeof(lag), "?");
	snprintf(name, sizeof(name), "%.*s", (int)f->name.len, f->name.ptr);
	snprintf(state, sizeof(state), "%.*s", (int)f->state.len,
	    f->state.ptr);
	snprintf(pos, sizeof(pos), "%" PRIu64, f->position);
	snprintf(rate, sizeof(rate), "%" PRIu64, f->events_per_s);
	snprintf(dead, sizeof(dead), "%" PRIu64, f->dead_letters);
	err[0] = '\0';
	if (f->has_error)
		n = snprintf(err, sizeof(err), "at %" PRIu64 ": %.*s",
		    f->error_position, (int)f->error.len, f->error.ptr);
	if (f->rebuilding && n >= 0 && (size_t)n < sizeof(err))
		snprintf(err + n, sizeof(err) - (size_t)n,
		    "%srebuilding (%" PRIu64 ")", f->has_error ? "; " : "",
		    f->rebuild_position);
	tbl_row(t, name, fold_kind(f), state, pos, lag, rate, dead, err);
}

/* Takes only --json; else the usage of command name. */
static int
json_only_args(struct ctl *c, int argc, char **argv, const char *name)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else
			return ctl_usage(name);
	}
	return CTL_OK;
}

static int
cmd_projections(struct ctl *c, int argc, char **argv)
{
	struct client_reply cr;
	struct ipc_runner_status_rep sr;
	struct ipc_fold_info f;
	struct tbl t;
	const char *why;
	uint32_t i;
	int rc;

	if ((rc = json_only_args(c, argc, argv, "projections")) != CTL_OK)
		return rc;
	if ((rc = fetch_status(c, &cr, &sr)) != 0) {
		client_reply_free(&cr);
		return rc;
	}
	/* POSITION: the next global position the fold applies */
	tbl_init(&t, "lllrrrrl", "NAME", "KIND", "STATE", "POSITION", "LAG",
	    "EV/S", "DEAD", "ERROR");
	for (i = 0; i < sr.nfolds; i++) {
		if (ipc_fold_info_decode(&sr.folds->via.array.ptr[i], &f,
		        &why) != 0)
			continue;
		if (c->json)
			fold_json(&f);
		else
			fold_row(&t, &f);
	}
	if (!c->json && tbl_rows(&t) == 0)
		ctl_empty(c, "no projections or process managers");
	tbl_print(&t);
	tbl_free(&t);
	client_reply_free(&cr);
	return CTL_OK;
}

/* Asks runnerd to do op (REBUILD, RESET) on the fold called name. */
static int
name_op(struct ctl *c, int op, const char *name)
{
	struct ipc_name_req r;
	struct client_reply cr;
	struct ipc_out o;
	int rc;

	r.name = ipc_cstr(name);
	ipc_name_req_encode(runner_request(&o, op), &r);
	rc = runner_ask(c, &o, &cr, 0);
	client_reply_free(&cr);
	return rc;
}

/*
 * Polls runnerd's status until the rebuild of name is over: CTL_OK once
 * it is done (and said so), CTL_REFUSED if it failed.
 */
static int
rebuild_wait(struct ctl *c, const char *name)
{
	struct client_reply cr;
	struct ipc_runner_status_rep sr;
	struct ipc_fold_info f;
	const char *why;
	uint32_t i;
	int rc, busy = 1;

	while (busy) {
		usleep(100 * 1000);
		if ((rc = fetch_status(c, &cr, &sr)) != 0)
			goto out;
		busy = 0;
		for (i = 0; i < sr.nfolds; i++) {
			if (ipc_fold_info_decode(&sr.folds->via.array.ptr[i],
			        &f, &why) != 0 ||
			    f.name.len != strlen(name) ||
			    memcmp(f.name.ptr, name, f.name.len) != 0)
				continue;
			if (f.rebuilding)
				busy = 1;
			else if (f.has_error && f.error.len >= 14 &&
			    !memcmp(f.error.ptr, "rebuild failed", 14)) {
				rc = ctl_err(CTL_REFUSED, "%.*s",
				    (int)f.error.len, f.error.ptr);
				goto out;
			} else
				printf("rebuild of %s done: position %" PRIu64
				       "\n",
				    name, f.position);
		}
		client_reply_free(&cr);
	}
	return CTL_OK;
out:
	client_reply_free(&cr);
	return rc;
}

static int
cmd_rebuild(struct ctl *c, int argc, char **argv)
{
	const char *name = NULL;
	int k, wait = 0, rc;

	for (k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--wait"))
			wait = 1;
		else if (argv[k][0] != '-' && name == NULL)
			name = argv[k];
		else
			return ctl_usage("rebuild");
	}
	if (name == NULL)
		return ctl_usage("rebuild");
	if ((rc = name_op(c, EF_OP_REBUILD, name)) != CTL_OK)
		return rc;
	if (wait)
		return rebuild_wait(c, name);
	printf("rebuild of %s started\n", name);
	return CTL_OK;
}

static int
cmd_reset(struct ctl *c, int argc, char **argv)
{
	int rc;

	if (argc != 2 || argv[1][0] == '-')
		return ctl_usage("reset");
	if ((rc = name_op(c, EF_OP_RESET, argv[1])) == CTL_OK)
		printf("%s reset to position 0\n", argv[1]);
	return rc;
}

static int
cmd_replay(struct ctl *c, int argc, char **argv)
{
	struct ipc_replay_req r;
	struct ipc_replay_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const char *name = NULL, *until = NULL, *limit = NULL, *why;
	int i, rc, t;

	memset(&r, 0, sizeof(r));
	for (i = 1; i < argc; i++) {
		if ((t = take_opt(&i, argc, argv, "--until", &until)) ||
		    (t = take_opt(&i, argc, argv, "--limit", &limit))) {
			if (t < 0)
				return CTL_USAGE;
			continue;
		}
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (argv[i][0] != '-' && name == NULL)
			name = argv[i];
		else if (argv[i][0] == '-')
			return ctl_err(CTL_USAGE, "replay: unknown option %s",
			    argv[i]);
		else
			return ctl_err(CTL_USAGE,
			    "replay: too many arguments");
	}
	if (name == NULL || until == NULL ||
	    ctl_parse_u64(until, &r.until) != 0)
		return ctl_usage("replay");
	/* 0 on the wire means "the default": refuse it here, as query does */
	if (limit != NULL &&
	    (ctl_parse_u64(limit, &r.limit) != 0 || r.limit == 0 ||
	        r.limit > IPC_QUERY_LIMIT))
		return ctl_err(CTL_USAGE, "--limit: 1..%u", IPC_QUERY_LIMIT);
	r.projection = ipc_cstr(name);
	ipc_replay_req_encode(runner_request(&o, EF_OP_REPLAY), &r);
	if ((rc = runner_ask(c, &o, &cr, 60000)) != CTL_OK)
		goto out;
	if (ipc_replay_rep_decode(cr.in.body, &rep, &why) != 0) {
		rc = ctl_malformed(why);
		goto out;
	}
	print_items(c, rep.items, rep.nitems);
	if (!c->json)
		fprintf(stderr,
		    "eventfoldctl: %s as of position %" PRIu64 " (%" PRIu64
		    " events folded)%s\n",
		    name, rep.position ? rep.position - 1 : 0, rep.position,
		    rep.truncated ? "; more keys than --limit" : "");
out:
	client_reply_free(&cr);
	return rc;
}

static void
dead_letter_json(const struct ipc_dead_letter *d)
{
	json_t *j;

	j = json_pack("{s:s%,s:s%,s:s%,s:s%,s:s%}", "manager", d->manager.ptr,
	    (size_t)d->manager.len, "command_id", d->command_id.ptr,
	    (size_t)d->command_id.len, "aggregate_type", d->aggregate_type.ptr,
	    (size_t)d->aggregate_type.len, "instance_id", d->instance_id.ptr,
	    (size_t)d->instance_id.len, "type", d->type.ptr,
	    (size_t)d->type.len);
	json_value(j, "payload", d->payload, d->payload_len);
	json_object_set_new(j, "error",
	    json_stringn(d->error.ptr, d->error.len));
	json_object_set_new(j, "attempts",
	    json_integer((json_int_t)d->attempts));
	json_object_set_new(j, "event_position",
	    json_integer((json_int_t)d->event_position));
	json_object_set_new(j, "parked_at",
	    json_integer((json_int_t)d->parked_at));
	json_print(j);
}

static void
dead_letter_row(struct tbl *t, const struct ipc_dead_letter *d)
{
	char target[400], mgr[IPC_NAME_MAX + 1], cid[IPC_NAME_MAX + 1],
	    att[32], *e;

	snprintf(target, sizeof(target), "%.*s %.*s/%.*s", (int)d->type.len,
	    d->type.ptr, (int)d->aggregate_type.len, d->aggregate_type.ptr,
	    (int)d->instance_id.len, d->instance_id.ptr);
	snprintf(mgr, sizeof(mgr), "%.*s", (int)d->manager.len,
	    d->manager.ptr);
	snprintf(cid, sizeof(cid), "%.*s", (int)d->command_id.len,
	    d->command_id.ptr);
	snprintf(att, sizeof(att), "%" PRIu64, d->attempts);
	if ((e = strndup(d->error.ptr, d->error.len)) == NULL)
		abort();
	tbl_row(t, mgr, cid, target, att, e);
	free(e);
}

/* The reply to `deadletters list`: a table, or JSON lines. */
static int
dl_list_print(const struct ctl *c, const struct client_reply *cr)
{
	struct ipc_dead_letter d;
	const msgpack_object *list;
	const char *why;
	struct tbl t;
	uint32_t n, i;

	if (ipc_dl_list_decode(cr->in.body, &list, &n, &why) != 0)
		return ctl_malformed(why);
	tbl_init(&t, "lllrl", "MANAGER", "COMMAND_ID", "TARGET", "ATTEMPTS",
	    "ERROR");
	for (i = 0; i < n; i++) {
		if (ipc_dead_letter_decode(&list->via.array.ptr[i], &d,
		        &why) != 0)
			continue;
		if (c->json)
			dead_letter_json(&d);
		else
			dead_letter_row(&t, &d);
	}
	if (!c->json && tbl_rows(&t) == 0)
		ctl_empty(c, "no dead letters");
	tbl_print(&t);
	tbl_free(&t);
	return CTL_OK;
}

/* The reply to `deadletters retry`: refused while some still fail. */
static int
dl_retry_print(const struct client_reply *cr)
{
	const struct ipc_str *m = &cr->in.message;
	uint64_t counts[2];
	const char *why;

	if (ipc_counts_decode(cr->in.body, counts, 2, &why) != 0)
		return ctl_malformed(why);
	printf("retried: %" PRIu64 " succeeded, %" PRIu64 " still failing\n",
	    counts[0], counts[1]);
	if (counts[1] == 0)
		return CTL_OK;
	return ctl_err(CTL_REFUSED,
	    "%" PRIu64 " dead letter%s "
	    "still failing%s%.*s",
	    counts[1], counts[1] == 1 ? "" : "s", m->len > 2 ? ": " : "",
	    m->len > 2 ? (int)m->len : 0, m->ptr);
}

static int
dl_drop_print(const struct client_reply *cr)
{
	uint64_t counts[1];
	const char *why;

	if (ipc_counts_decode(cr->in.body, counts, 1, &why) != 0)
		return ctl_malformed(why);
	printf("dropped %" PRIu64 " dead letter%s\n", counts[0],
	    counts[0] == 1 ? "" : "s");
	return CTL_OK;
}

static int
cmd_deadletters(struct ctl *c, int argc, char **argv)
{
	struct ipc_dl_req r;
	struct client_reply cr;
	struct ipc_out o;
	const char *action = "list", *pos[2] = { 0 };
	int k, np = 0, rc;

	for (k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--json"))
			c->json = 1;
		else if (k == 1 &&
		    (!strcmp(argv[k], "list") || !strcmp(argv[k], "retry") ||
		        !strcmp(argv[k], "drop")))
			action = argv[k];
		else if (argv[k][0] != '-' && np < 2)
			pos[np++] = argv[k];
		else
			return ctl_usage("deadletters");
	}
	memset(&r, 0, sizeof(r));
	r.action = !strcmp(action, "list") ? EF_DL_LIST :
	    !strcmp(action, "retry")       ? EF_DL_RETRY :
	                                     EF_DL_DROP;
	if (r.action != EF_DL_LIST && pos[0] == NULL)
		return ctl_err(CTL_USAGE, "deadletters %s: which manager?",
		    action);
	if (r.action == EF_DL_LIST && np > 1)
		return ctl_err(CTL_USAGE, "deadletters list [MANAGER]");
	r.manager = ipc_cstr(pos[0]);
	r.command_id = ipc_cstr(pos[1]);
	ipc_dl_req_encode(runner_request(&o, EF_OP_DEAD_LETTERS), &r);
	if ((rc = runner_ask(c, &o, &cr, 60000)) == CTL_OK)
		rc = r.action == EF_DL_LIST ? dl_list_print(c, &cr) :
		    r.action == EF_DL_RETRY ? dl_retry_print(&cr) :
		                              dl_drop_print(&cr);
	client_reply_free(&cr);
	return rc;
}

/* Names into arr (JSON), or appended to buf (len) comma-separated. */
static void
print_names(const msgpack_object *a, json_t *arr, char *buf, size_t len)
{
	size_t at = buf ? strlen(buf) : 0;
	uint32_t i;

	for (i = 0; i < a->via.array.size; i++) {
		const msgpack_object *s = &a->via.array.ptr[i];

		if (arr != NULL)
			json_array_append_new(arr,
			    json_stringn(s->via.str.ptr, s->via.str.size));
		else if (at < len)
			at += (size_t)snprintf(buf + at, len - at, "%s%.*s",
			    i ? "," : "", (int)s->via.str.size,
			    s->via.str.ptr);
	}
	if (arr == NULL && a->via.array.size == 0 && at < len)
		snprintf(buf + at, len - at, "-");
}

static void
append_str(char *dst, const char *src, size_t len)
{
	size_t at = strlen(dst);

	if (at < len)
		snprintf(dst + at, len - at, "%s", src);
}

/* Adds key: the names in a, as a JSON array. */
static void
json_names(json_t *j, const char *key, const msgpack_object *a)
{
	json_t *arr = json_array();

	json_object_set_new(j, key, arr);
	print_names(a, arr, NULL, 0);
}

static void
plugin_json(const struct ipc_plugin_info *p)
{
	json_t *j;

	j = json_pack("{s:s%,s:s%,s:s%,s:I}", "file", p->file.ptr,
	    (size_t)p->file.len, "name", p->name.ptr, (size_t)p->name.len,
	    "version", p->version.ptr, (size_t)p->version.len, "abi",
	    (json_int_t)p->abi);
	json_names(j, "aggregates", p->aggs);
	json_names(j, "projections", p->projs);
	json_names(j, "managers", p->mgrs);
	json_print(j);
}

static void
plugin_row(struct tbl *t, const struct ipc_plugin_info *p)
{
	char file[IPC_MAX_STRLEN + 1], name[IPC_NAME_MAX + 1],
	    ver[IPC_NAME_MAX + 1], abi[32], names[4096];

	snprintf(file, sizeof(file), "%.*s", (int)p->file.len, p->file.ptr);
	snprintf(name, sizeof(name), "%.*s", (int)p->name.len, p->name.ptr);
	snprintf(ver, sizeof(ver), "%.*s", (int)p->version.len,
	    p->version.ptr);
	snprintf(abi, sizeof(abi), "%" PRIu64, p->abi);
	names[0] = '\0';
	print_names(p->aggs, NULL, names, sizeof(names));
	append_str(names, " / ", sizeof(names));
	print_names(p->projs, NULL, names, sizeof(names));
	append_str(names, " / ", sizeof(names));
	print_names(p->mgrs, NULL, names, sizeof(names));
	tbl_row(t, file, name, ver, abi, names);
}

/* The loaded plugins (n in list); *nrefused: how many were refused. */
static void
plugins_loaded(const struct ctl *c, const msgpack_object *list, uint32_t n,
    uint32_t *nrefused)
{
	struct ipc_plugin_info p;
	const char *why;
	struct tbl t;
	uint32_t i;

	tbl_init(&t, "lllll", "FILE", "NAME", "VERSION", "ABI",
	    "AGGREGATES / PROJECTIONS / MANAGERS");
	for (i = 0; i < n; i++) {
		if (ipc_plugin_info_decode(&list->via.array.ptr[i], &p,
		        &why) != 0)
			continue;
		if (p.refused.ptr != NULL)
			(*nrefused)++;
		else if (c->json)
			plugin_json(&p);
		else
			plugin_row(&t, &p);
	}
	if (!c->json && tbl_rows(&t) == 0)
		ctl_empty(c, "no plugins loaded");
	tbl_print(&t);
	tbl_free(&t);
}

/* Then the files runnerd refused, with its reason. */
static void
plugins_refused(const struct ctl *c, const msgpack_object *list, uint32_t n)
{
	struct ipc_plugin_info p;
	char file[IPC_MAX_STRLEN + 1], why_refused[4096];
	const char *why;
	struct tbl t;
	uint32_t i;

	tbl_init(&t, "ll", "REFUSED", "REASON");
	for (i = 0; i < n; i++) {
		if (ipc_plugin_info_decode(&list->via.array.ptr[i], &p,
		        &why) != 0 ||
		    p.refused.ptr == NULL)
			continue;
		if (c->json) {
			json_print(json_pack("{s:s%,s:s%}", "file", p.file.ptr,
			    (size_t)p.file.len, "refused", p.refused.ptr,
			    (size_t)p.refused.len));
			continue;
		}
		snprintf(file, sizeof(file), "%.*s", (int)p.file.len,
		    p.file.ptr);
		snprintf(why_refused, sizeof(why_refused), "%.*s",
		    (int)p.refused.len, p.refused.ptr);
		tbl_row(&t, file, why_refused);
	}
	if (tbl_rows(&t) > 0)
		printf("\n");
	tbl_print(&t);
	tbl_free(&t);
}

static int
cmd_plugins(struct ctl *c, int argc, char **argv)
{
	struct client_reply cr;
	struct ipc_out o;
	const msgpack_object *list;
	const char *why;
	uint32_t n, nrefused = 0;
	int rc;

	if ((rc = json_only_args(c, argc, argv, "plugins")) != CTL_OK)
		return rc;
	ipc_nil(runner_request(&o, EF_OP_PLUGINS));
	if ((rc = runner_ask(c, &o, &cr, 0)) != CTL_OK)
		goto out;
	if (ipc_plugins_rep_decode(cr.in.body, &list, &n, &why) != 0) {
		rc = ctl_malformed(why);
		goto out;
	}
	plugins_loaded(c, list, n, &nrefused);
	if (nrefused > 0)
		plugins_refused(c, list, n);
out:
	client_reply_free(&cr);
	return rc;
}

const struct ctl_cmd ctl_runner_cmds[] = {
	{ "exec", cmd_exec,
	    "exec TYPE ID COMMAND "
	    "[PAYLOAD|-] [--command-id ID] [--actor A] [--correlation-id C] "
	    "[--causation-id C] [--source-device D]" },
	{ "state", cmd_state, "state TYPE ID" },
	{ "query", cmd_query,
	    "query PROJECTION [KEY | --prefix P | [--range] "
	    "[--from K] [--to K]] [--after K] [--limit N] [--all] "
	    "[--min-position P [--wait MS]]" },
	{ "projections", cmd_projections,
	    "projections   (status of "
	    "projections and process managers)" },
	{ "rebuild", cmd_rebuild, "rebuild PROJECTION [--wait]" },
	{ "reset", cmd_reset, "reset NAME" },
	{ "replay", cmd_replay,
	    "replay PROJECTION --until POSITION "
	    "[--limit N]" },
	{ "deadletters", cmd_deadletters,
	    "deadletters [list [MANAGER] | "
	    "retry MANAGER [ID] | drop MANAGER [ID]]" },
	{ "plugins", cmd_plugins, "plugins" },
	{ NULL, NULL, NULL },
};
