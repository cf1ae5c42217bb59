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

/*
 * Opens a client to runnerd and makes the call. Returns the reply's
 * status, or minus the exit code after printing why no call was made
 * (-CTL_USAGE: a bad URL; -CTL_UNAVAILABLE: nobody at runner.sock).
 */
static int
runner_call(struct ctl *c, const struct ipc_out *req, struct client_reply *cr,
    uint64_t extra_ms)
{
	struct ef_client cl;
	int st;

	memset(cr, 0, sizeof(*cr));
	if (ctl_reach(c, CTL_RUNNERD) != 0)
		return -CTL_UNAVAILABLE;
	if (client_open(&cl, c->runner_url,
	        (int)(c->conf.timeout_ms + extra_ms)) != 0) {
		ctl_err(CTL_USAGE, "bad runner URL %s", c->runner_url);
		return -CTL_USAGE;
	}
	st = client_call(&cl, req, cr);
	client_close(&cl);
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

static int
cmd_exec(struct ctl *c, int argc, char **argv)
{
	struct ipc_exec_req r;
	struct ipc_exec_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const char *pos[4] = { 0 }, *cmd_id = NULL, *actor = NULL,
	           *corr = NULL, *caus = NULL, *dev = NULL, *why;
	char idbuf[UUID_STR_LEN], sid[UUID_STR_LEN];
	uint8_t id[UUID_LEN], *in = NULL;
	size_t plen = 0;
	int i, np = 0, st, rc, t;
	json_t *j;

	for (i = 1; i < argc; i++) {
		if ((t = take_opt(&i, argc, argv, "--command-id", &cmd_id)) ||
		    (t = take_opt(&i, argc, argv, "--actor", &actor)) ||
		    (t = take_opt(&i, argc, argv, "--correlation-id",
		         &corr)) ||
		    (t = take_opt(&i, argc, argv, "--causation-id", &caus)) ||
		    (t = take_opt(&i, argc, argv, "--source-device", &dev))) {
			if (t < 0)
				return CTL_USAGE;
			continue;
		}
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return ctl_err(CTL_USAGE, "exec: unknown option %s",
			    argv[i]);
		else if (np < 4)
			pos[np++] = argv[i];
		else
			return ctl_err(CTL_USAGE, "exec: too many arguments");
	}
	if (np < 3)
		return ctl_usage("exec");
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
	if (cmd_id == NULL) {
		uuid_random(id);
		cmd_id = uuid_format(id, idbuf);
	}
	r.command_id = ipc_cstr(cmd_id);
	r.actor = ipc_cstr(actor);
	r.correlation_id = ipc_cstr(corr);
	r.causation_id = ipc_cstr(caus);
	r.source_device = ipc_cstr(dev);
	ctl_note_not_json("payload", NULL, r.payload, r.payload_len);
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_EXECUTE, 1);
	ipc_exec_req_encode(&o, &r);
	st = runner_call(c, &o, &cr, 0);
	ipc_out_free(&o);
	free(in);
	if (st < 0)
		return -st;
	if (st != EF_S_OK) {
		rc = ctl_call_exit(c, CTL_RUNNERD, st, &cr);
		goto out;
	}
	if (ipc_exec_rep_decode(cr.in.body, &rep, &why) != 0) {
		rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
		goto out;
	}
	uuid_format(rep.stream_id, sid);
	if (c->json) {
		j = json_pack("{s:s,s:s}", "command_id", cmd_id, "stream_id",
		    sid);
		json_object_set_new(j, "version",
		    rep.exists ? json_integer((json_int_t)rep.version) :
		                 json_null());
		json_object_set_new(j, "event_count",
		    json_integer((json_int_t)rep.count));
		json_object_set_new(j, "first_position",
		    rep.count ? json_integer((json_int_t)rep.first_pos) :
		                json_null());
		json_object_set_new(j, "last_position",
		    rep.count ? json_integer((json_int_t)rep.last_pos) :
		                json_null());
		json_object_set_new(j, "duplicate",
		    json_boolean(rep.duplicate));
		json_print(j);
	} else if (rep.count == 0)
		printf("command %s: no events (stream %s, version %s)\n",
		    cmd_id, sid, rep.exists ? "unchanged" : "none");
	else
		printf("command %s: %" PRIu64
		       " event%s, stream %s version %" PRIu64
		       ", positions %" PRIu64 "..%" PRIu64 "%s\n",
		    cmd_id, rep.count, rep.count == 1 ? "" : "s", sid,
		    rep.version, rep.first_pos, rep.last_pos,
		    rep.duplicate ? " (duplicate: the first result)" : "");
	rc = CTL_OK;
out:
	client_reply_free(&cr);
	return rc;
}

static int
cmd_state(struct ctl *c, int argc, char **argv)
{
	struct ipc_state_req r;
	struct ipc_state_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const char *pos[2] = { 0 }, *why;
	char sid[UUID_STR_LEN];
	int i, np = 0, st, rc;
	json_t *j;

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
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_GET_STATE, 1);
	ipc_state_req_encode(&o, &r);
	st = runner_call(c, &o, &cr, 0);
	ipc_out_free(&o);
	if (st < 0)
		return -st;
	if (st != EF_S_OK) {
		rc = ctl_call_exit(c, CTL_RUNNERD, st, &cr);
		goto out;
	}
	if (ipc_state_rep_decode(cr.in.body, &rep, &why) != 0) {
		rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
		goto out;
	}
	uuid_format(rep.stream_id, sid);
	j = json_pack("{s:s}", "stream_id", sid);
	json_object_set_new(j, "version",
	    rep.exists ? json_integer((json_int_t)rep.version) : json_null());
	json_value(j, "state", rep.state, rep.state_len);
	if (c->json)
		json_print(j);
	else {
		char *s;

		if (rep.exists)
			printf("stream %s, version %" PRIu64 "\n", sid,
			    rep.version);
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
	rc = CTL_OK;
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

static int
cmd_query(struct ctl *c, int argc, char **argv)
{
	struct ipc_query_req r;
	struct ipc_query_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const char *name = NULL, *key = NULL, *prefix = NULL, *from = NULL,
	           *to = NULL, *after = NULL, *limit = NULL, *minpos = NULL,
	           *wait = NULL, *why;
	uint8_t cursor[IPC_KEY_MAX];
	uint32_t cursor_len = 0;
	uint64_t v, shown = 0;
	int i, st, rc = CTL_OK, t, all = 0, range = 0, have_cursor = 0;

	memset(&r, 0, sizeof(r));
	for (i = 1; i < argc; i++) {
		if ((t = take_opt(&i, argc, argv, "--prefix", &prefix)) ||
		    (t = take_opt(&i, argc, argv, "--from", &from)) ||
		    (t = take_opt(&i, argc, argv, "--to", &to)) ||
		    (t = take_opt(&i, argc, argv, "--after", &after)) ||
		    (t = take_opt(&i, argc, argv, "--limit", &limit)) ||
		    (t = take_opt(&i, argc, argv, "--min-position",
		         &minpos)) ||
		    (t = take_opt(&i, argc, argv, "--wait", &wait))) {
			if (t < 0)
				return CTL_USAGE;
			continue;
		}
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (!strcmp(argv[i], "--all"))
			all = 1;
		else if (!strcmp(argv[i], "--range"))
			range = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return ctl_err(CTL_USAGE, "query: unknown option %s",
			    argv[i]);
		else if (name == NULL)
			name = argv[i];
		else if (key == NULL)
			key = argv[i];
		else
			return ctl_err(CTL_USAGE, "query: too many arguments");
	}
	if (name == NULL || (key != NULL && (prefix || from || to || range)))
		return ctl_usage("query");
	r.projection = ipc_cstr(name);
	if (key != NULL) {
		r.mode = EF_QUERY_KEY;
		r.has_key = true;
		r.key = (const uint8_t *)key;
		r.key_len = (uint32_t)strlen(key);
	} else if (prefix != NULL) {
		r.mode = EF_QUERY_PREFIX;
		r.has_key = true;
		r.key = (const uint8_t *)prefix;
		r.key_len = (uint32_t)strlen(prefix);
	} else {
		r.mode = EF_QUERY_RANGE;
		if (from != NULL) {
			r.has_key = true;
			r.key = (const uint8_t *)from;
			r.key_len = (uint32_t)strlen(from);
		}
		if (to != NULL) {
			r.has_end = true;
			r.end = (const uint8_t *)to;
			r.end_len = (uint32_t)strlen(to);
		}
	}
	if (after != NULL) {
		if (strlen(after) > IPC_KEY_MAX)
			return ctl_err(CTL_USAGE, "--after: key too long");
		cursor_len = (uint32_t)strlen(after);
		memcpy(cursor, after, cursor_len);
		have_cursor = 1;
	}
	if (limit != NULL) {
		if (ctl_parse_u64(limit, &v) != 0 || v == 0 ||
		    v > IPC_QUERY_LIMIT)
			return ctl_err(CTL_USAGE, "--limit: 1..%u",
			    IPC_QUERY_LIMIT);
		r.limit = v;
	}
	if (minpos != NULL) {
		if (ctl_parse_u64(minpos, &r.min_position) != 0)
			return ctl_err(CTL_USAGE,
			    "--min-position: a position");
		r.has_min_position = true;
		r.wait_ms = 5000;
	}
	if (wait != NULL) {
		if (ctl_parse_u64(wait, &r.wait_ms) != 0 ||
		    r.wait_ms > IPC_WAIT_MAX_MS)
			return ctl_err(CTL_USAGE, "--wait: 0..%u ms",
			    IPC_WAIT_MAX_MS);
	}
	for (;;) {
		r.has_after = have_cursor;
		r.after = cursor;
		r.after_len = cursor_len;
		ipc_out_init(&o);
		ipc_request_begin(&o, EF_OP_QUERY, 1);
		ipc_query_req_encode(&o, &r);
		st = runner_call(c, &o, &cr, r.wait_ms);
		ipc_out_free(&o);
		if (st < 0)
			return -st;
		if (st != EF_S_OK) {
			rc = ctl_call_exit(c, CTL_RUNNERD, st, &cr);
			client_reply_free(&cr);
			break;
		}
		if (ipc_query_rep_decode(cr.in.body, &rep, &why) != 0) {
			rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
			client_reply_free(&cr);
			break;
		}
		print_items(c, rep.items, rep.nitems);
		shown += rep.nitems;
		if (!rep.has_next || !all || r.mode == EF_QUERY_KEY) {
			if (rep.has_next && !c->json)
				fprintf(stderr,
				    "eventfoldctl: more; next page "
				    "with --after '%.*s' (or --all)\n",
				    (int)rep.next_len, (const char *)rep.next);
			client_reply_free(&cr);
			break;
		}
		memcpy(cursor, rep.next, rep.next_len);
		cursor_len = rep.next_len;
		have_cursor = 1;
		r.has_min_position = false;
		client_reply_free(&cr);
	}
	if (rc == CTL_OK && shown == 0)
		ctl_empty(c, key != NULL ? "no such key" : "no keys");
	return rc;
}

static int
fetch_status(struct ctl *c, struct client_reply *cr,
    struct ipc_runner_status_rep *sr)
{
	struct ipc_out o;
	const char *why;
	int st;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_RUNNER_STATUS, 1);
	ipc_nil(&o);
	st = runner_call(c, &o, cr, 0);
	ipc_out_free(&o);
	if (st < 0)
		return -st;
	if (st != EF_S_OK)
		return ctl_call_exit(c, CTL_RUNNERD, st, cr);
	if (ipc_runner_status_rep_decode(cr->in.body, sr, &why) != 0)
		return ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
	return 0;
}

static int
cmd_projections(struct ctl *c, int argc, char **argv)
{
	struct client_reply cr;
	struct ipc_runner_status_rep sr;
	struct ipc_fold_info f;
	struct tbl t;
	const char *why;
	char name[IPC_NAME_MAX + 1], state[64], pos[32], lag[32], rate[32],
	    dead[32], err[1200];
	uint32_t i;
	int rc, n;
	json_t *j;

	for (rc = 1; rc < argc; rc++) {
		if (!strcmp(argv[rc], "--json"))
			c->json = 1;
		else
			return ctl_usage("projections");
	}
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
		if (c->json) {
			j = json_pack("{s:s%,s:s%,s:s,s:s%,s:I}", "name",
			    f.name.ptr, (size_t)f.name.len, "plugin",
			    f.plugin.ptr, (size_t)f.plugin.len, "kind",
			    f.kind == EF_FOLD_PROJECTION ? "projection" :
			                                   "manager",
			    "state", f.state.ptr, (size_t)f.state.len,
			    "position", (json_int_t)f.position);
			json_object_set_new(j, "lag",
			    f.has_lag ? json_integer((json_int_t)f.lag) :
			                json_null());
			json_object_set_new(j, "events_per_s",
			    json_integer((json_int_t)f.events_per_s));
			json_object_set_new(j, "error_position",
			    f.has_error ?
			        json_integer((json_int_t)f.error_position) :
			        json_null());
			json_object_set_new(j, "error",
			    f.error.ptr ?
			        json_stringn(f.error.ptr, f.error.len) :
			        json_null());
			json_object_set_new(j, "rebuild_position",
			    f.rebuilding ?
			        json_integer((json_int_t)f.rebuild_position) :
			        json_null());
			json_object_set_new(j, "dead_letters",
			    json_integer((json_int_t)f.dead_letters));
			json_print(j);
			continue;
		}
		if (f.has_lag)
			snprintf(lag, sizeof(lag), "%" PRIu64, f.lag);
		else
			snprintf(lag, sizeof(lag), "?");
		snprintf(name, sizeof(name), "%.*s", (int)f.name.len,
		    f.name.ptr);
		snprintf(state, sizeof(state), "%.*s", (int)f.state.len,
		    f.state.ptr);
		snprintf(pos, sizeof(pos), "%" PRIu64, f.position);
		snprintf(rate, sizeof(rate), "%" PRIu64, f.events_per_s);
		snprintf(dead, sizeof(dead), "%" PRIu64, f.dead_letters);
		n = 0;
		err[0] = '\0';
		if (f.has_error)
			n = snprintf(err, sizeof(err), "at %" PRIu64 ": %.*s",
			    f.error_position, (int)f.error.len, f.error.ptr);
		if (f.rebuilding && n >= 0 && (size_t)n < sizeof(err))
			snprintf(err + n, sizeof(err) - (size_t)n,
			    "%srebuilding (%" PRIu64 ")",
			    f.has_error ? "; " : "", f.rebuild_position);
		tbl_row(&t, name,
		    f.kind == EF_FOLD_PROJECTION ? "projection" : "manager",
		    state, pos, lag, rate, dead, err);
	}
	if (!c->json && tbl_rows(&t) == 0)
		ctl_empty(c, "no projections or process managers");
	tbl_print(&t);
	tbl_free(&t);
	client_reply_free(&cr);
	return CTL_OK;
}

static int
name_op(struct ctl *c, int op, const char *name, struct client_reply *cr)
{
	struct ipc_name_req r;
	struct ipc_out o;
	int st;

	r.name = ipc_cstr(name);
	ipc_out_init(&o);
	ipc_request_begin(&o, op, 1);
	ipc_name_req_encode(&o, &r);
	st = runner_call(c, &o, cr, 0);
	ipc_out_free(&o);
	return st;
}

static int
cmd_rebuild(struct ctl *c, int argc, char **argv)
{
	struct client_reply cr;
	struct ipc_runner_status_rep sr;
	struct ipc_fold_info f;
	const char *name = NULL, *why;
	uint32_t i;
	int k, st, wait = 0, rc, busy;

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
	st = name_op(c, EF_OP_REBUILD, name, &cr);
	if (st < 0)
		return -st;
	if (st != EF_S_OK) {
		rc = ctl_call_exit(c, CTL_RUNNERD, st, &cr);
		client_reply_free(&cr);
		return rc;
	}
	client_reply_free(&cr);
	if (!wait) {
		printf("rebuild of %s started\n", name);
		return CTL_OK;
	}
	for (;;) {
		usleep(100 * 1000);
		if ((rc = fetch_status(c, &cr, &sr)) != 0) {
			client_reply_free(&cr);
			return rc;
		}
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
				client_reply_free(&cr);
				return rc;
			} else
				printf("rebuild of %s done: position %" PRIu64
				       "\n",
				    name, f.position);
		}
		client_reply_free(&cr);
		if (!busy)
			return CTL_OK;
	}
}

static int
cmd_reset(struct ctl *c, int argc, char **argv)
{
	struct client_reply cr;
	int st, rc;

	if (argc != 2 || argv[1][0] == '-')
		return ctl_usage("reset");
	st = name_op(c, EF_OP_RESET, argv[1], &cr);
	if (st < 0)
		return -st;
	if (st != EF_S_OK)
		rc = ctl_call_exit(c, CTL_RUNNERD, st, &cr);
	else {
		printf("%s reset to position 0\n", argv[1]);
		rc = CTL_OK;
	}
	client_reply_free(&cr);
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
	int i, st, rc, t;

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
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_REPLAY, 1);
	ipc_replay_req_encode(&o, &r);
	st = runner_call(c, &o, &cr, 60000);
	ipc_out_free(&o);
	if (st < 0)
		return -st;
	if (st != EF_S_OK) {
		rc = ctl_call_exit(c, CTL_RUNNERD, st, &cr);
		goto out;
	}
	if (ipc_replay_rep_decode(cr.in.body, &rep, &why) != 0) {
		rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
		goto out;
	}
	print_items(c, rep.items, rep.nitems);
	if (!c->json)
		fprintf(stderr,
		    "eventfoldctl: %s as of position %" PRIu64 " (%" PRIu64
		    " events folded)%s\n",
		    name, rep.position ? rep.position - 1 : 0, rep.position,
		    rep.truncated ? "; more keys than --limit" : "");
	rc = CTL_OK;
out:
	client_reply_free(&cr);
	return rc;
}

static int
cmd_deadletters(struct ctl *c, int argc, char **argv)
{
	struct ipc_dl_req r;
	struct ipc_dead_letter d;
	struct client_reply cr;
	struct ipc_out o;
	const msgpack_object *list;
	const char *action = "list", *why, *pos[2] = { 0 };
	uint64_t counts[2];
	struct tbl t;
	uint32_t n, i;
	int k, np = 0, st, rc;
	json_t *j;

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
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_DEAD_LETTERS, 1);
	ipc_dl_req_encode(&o, &r);
	st = runner_call(c, &o, &cr, 60000);
	ipc_out_free(&o);
	if (st < 0)
		return -st;
	if (st != EF_S_OK) {
		rc = ctl_call_exit(c, CTL_RUNNERD, st, &cr);
		goto out;
	}
	rc = CTL_OK;
	if (r.action == EF_DL_LIST) {
		if (ipc_dl_list_decode(cr.in.body, &list, &n, &why) != 0) {
			rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
			goto out;
		}
		tbl_init(&t, "lllrl", "MANAGER", "COMMAND_ID", "TARGET",
		    "ATTEMPTS", "ERROR");
		for (i = 0; i < n; i++) {
			if (ipc_dead_letter_decode(&list->via.array.ptr[i], &d,
			        &why) != 0)
				continue;
			if (!c->json) {
				char target[400], mgr[IPC_NAME_MAX + 1],
				    cid[IPC_NAME_MAX + 1], att[32], *e;

				snprintf(target, sizeof(target),
				    "%.*s %.*s/%.*s", (int)d.type.len,
				    d.type.ptr, (int)d.aggregate_type.len,
				    d.aggregate_type.ptr,
				    (int)d.instance_id.len, d.instance_id.ptr);
				snprintf(mgr, sizeof(mgr), "%.*s",
				    (int)d.manager.len, d.manager.ptr);
				snprintf(cid, sizeof(cid), "%.*s",
				    (int)d.command_id.len, d.command_id.ptr);
				snprintf(att, sizeof(att), "%" PRIu64,
				    d.attempts);
				if ((e = strndup(d.error.ptr, d.error.len)) ==
				    NULL)
					abort();
				tbl_row(&t, mgr, cid, target, att, e);
				free(e);
				continue;
			}
			j = json_pack("{s:s%,s:s%,s:s%,s:s%,s:s%}", "manager",
			    d.manager.ptr, (size_t)d.manager.len, "command_id",
			    d.command_id.ptr, (size_t)d.command_id.len,
			    "aggregate_type", d.aggregate_type.ptr,
			    (size_t)d.aggregate_type.len, "instance_id",
			    d.instance_id.ptr, (size_t)d.instance_id.len,
			    "type", d.type.ptr, (size_t)d.type.len);
			json_value(j, "payload", d.payload, d.payload_len);
			json_object_set_new(j, "error",
			    json_stringn(d.error.ptr, d.error.len));
			json_object_set_new(j, "attempts",
			    json_integer((json_int_t)d.attempts));
			json_object_set_new(j, "event_position",
			    json_integer((json_int_t)d.event_position));
			json_object_set_new(j, "parked_at",
			    json_integer((json_int_t)d.parked_at));
			json_print(j);
		}
		if (!c->json && tbl_rows(&t) == 0)
			ctl_empty(c, "no dead letters");
		tbl_print(&t);
		tbl_free(&t);
	} else if (r.action == EF_DL_RETRY) {
		if (ipc_counts_decode(cr.in.body, counts, 2, &why) != 0) {
			rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
			goto out;
		}
		printf("retried: %" PRIu64 " succeeded, %" PRIu64
		       " still failing\n",
		    counts[0], counts[1]);
		if (counts[1] > 0)
			rc = ctl_err(CTL_REFUSED,
			    "%" PRIu64 " dead letter%s "
			    "still failing%s%.*s",
			    counts[1], counts[1] == 1 ? "" : "s",
			    cr.in.message.len > 2 ? ": " : "",
			    cr.in.message.len > 2 ? (int)cr.in.message.len : 0,
			    cr.in.message.ptr);
	} else {
		if (ipc_counts_decode(cr.in.body, counts, 1, &why) != 0) {
			rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
			goto out;
		}
		printf("dropped %" PRIu64 " dead letter%s\n", counts[0],
		    counts[0] == 1 ? "" : "s");
	}
out:
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

static int
cmd_plugins(struct ctl *c, int argc, char **argv)
{
	struct client_reply cr;
	struct ipc_plugin_info p;
	struct ipc_out o;
	const msgpack_object *list;
	const char *why;
	char file[IPC_MAX_STRLEN + 1], name[IPC_NAME_MAX + 1],
	    ver[IPC_NAME_MAX + 1], abi[32], names[4096];
	struct tbl t;
	uint32_t n, i, nrefused = 0;
	int st, rc;
	json_t *j, *a;

	for (rc = 1; rc < argc; rc++) {
		if (!strcmp(argv[rc], "--json"))
			c->json = 1;
		else
			return ctl_usage("plugins");
	}
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_PLUGINS, 1);
	ipc_nil(&o);
	st = runner_call(c, &o, &cr, 0);
	ipc_out_free(&o);
	if (st < 0)
		return -st;
	if (st != EF_S_OK) {
		rc = ctl_call_exit(c, CTL_RUNNERD, st, &cr);
		goto out;
	}
	if (ipc_plugins_rep_decode(cr.in.body, &list, &n, &why) != 0) {
		rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
		goto out;
	}
	tbl_init(&t, "lllll", "FILE", "NAME", "VERSION", "ABI",
	    "AGGREGATES / PROJECTIONS / MANAGERS");
	for (i = 0; i < n; i++) {
		if (ipc_plugin_info_decode(&list->via.array.ptr[i], &p,
		        &why) != 0)
			continue;
		if (p.refused.ptr != NULL) {
			nrefused++;
			continue;
		}
		if (c->json) {
			j = json_pack("{s:s%,s:s%,s:s%,s:I}", "file",
			    p.file.ptr, (size_t)p.file.len, "name", p.name.ptr,
			    (size_t)p.name.len, "version", p.version.ptr,
			    (size_t)p.version.len, "abi", (json_int_t)p.abi);
			json_object_set_new(j, "aggregates", a = json_array());
			print_names(p.aggs, a, NULL, 0);
			json_object_set_new(j, "projections",
			    a = json_array());
			print_names(p.projs, a, NULL, 0);
			json_object_set_new(j, "managers", a = json_array());
			print_names(p.mgrs, a, NULL, 0);
			json_print(j);
			continue;
		}
		snprintf(file, sizeof(file), "%.*s", (int)p.file.len,
		    p.file.ptr);
		snprintf(name, sizeof(name), "%.*s", (int)p.name.len,
		    p.name.ptr);
		snprintf(ver, sizeof(ver), "%.*s", (int)p.version.len,
		    p.version.ptr);
		snprintf(abi, sizeof(abi), "%" PRIu64, p.abi);
		names[0] = '\0';
		print_names(p.aggs, NULL, names, sizeof(names));
		append_str(names, " / ", sizeof(names));
		print_names(p.projs, NULL, names, sizeof(names));
		append_str(names, " / ", sizeof(names));
		print_names(p.mgrs, NULL, names, sizeof(names));
		tbl_row(&t, file, name, ver, abi, names);
	}
	if (!c->json && tbl_rows(&t) == 0)
		ctl_empty(c, "no plugins loaded");
	tbl_print(&t);
	tbl_free(&t);
	/* then the files runnerd refused, with its reason */
	tbl_init(&t, "ll", "REFUSED", "REASON");
	for (i = 0; nrefused > 0 && i < n; i++) {
		if (ipc_plugin_info_decode(&list->via.array.ptr[i], &p,
		        &why) != 0 ||
		    p.refused.ptr == NULL)
			continue;
		if (c->json) {
			j = json_pack("{s:s%,s:s%}", "file", p.file.ptr,
			    (size_t)p.file.len, "refused", p.refused.ptr,
			    (size_t)p.refused.len);
			json_print(j);
			continue;
		}
		snprintf(file, sizeof(file), "%.*s", (int)p.file.len,
		    p.file.ptr);
		snprintf(names, sizeof(names), "%.*s", (int)p.refused.len,
		    p.refused.ptr);
		tbl_row(&t, file, names);
	}
	if (tbl_rows(&t) > 0)
		printf("\n");
	tbl_print(&t);
	tbl_free(&t);
	rc = CTL_OK;
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
