/* SPDX-License-Identifier: MIT */
/*
 * test_aggregate.c - EXECUTE and GET_STATE against real daemons: the
 * todo example end to end, rejections, unknown aggregates, command ids
 * (a second run returns the first result and appends nothing, also
 * after kill -9, and even with runnerd's LMDB deleted), eventfold-es
 * stream ids and metadata, a concurrent external append forcing a
 * retry, the retry bound, and every malformed or unknown request.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "rharness.h"
#include "uuid5.h"

TestSuite(aggregate, .timeout = 120);

static const char *const examples[] = { "todo.so", "counter.so", "orders.so",
	"testplug.so", NULL };

static struct rh h;

static void
up(void)
{
	rh_up(&h, examples);
}

Test(aggregate, todo_add_toggle_delete, .init = up, .fini = rh_fini)
{
	struct ipc_exec_rep rep;
	char msg[1024], *state;
	uint64_t version;
	bool exists;
	json_t *j;

	cr_assert_eq(rh_state(&h, "todo", "t1", &state, &version, &exists),
	    EF_S_OK);
	cr_assert(!exists);
	cr_assert_str_eq(state, "{}");
	free(state);
	cr_assert_eq(rh_exec(&h, "todo", "t1", "Add", "{\"title\":\"milk\"}",
	                 "c-add", &rep, msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	cr_assert(rep.exists && rep.version == 0 && rep.count == 1 &&
	    !rep.duplicate);
	cr_assert_eq(rh_exec(&h, "todo", "t1", "Toggle", NULL, NULL, &rep, msg,
	                 sizeof(msg)),
	    EF_S_OK);
	cr_assert_eq(rep.version, 1);
	cr_assert_eq(rh_state(&h, "todo", "t1", &state, &version, &exists),
	    EF_S_OK);
	cr_assert(exists && version == 1);
	j = json_loads(state, 0, NULL);
	cr_assert(j != NULL, "%s", state);
	cr_assert(json_is_true(json_object_get(j, "completed")));
	cr_assert_str_eq(json_string_value(json_object_get(j, "title")),
	    "milk");
	json_decref(j);
	free(state);
	cr_assert_eq(rh_exec(&h, "todo", "t1", "Delete", NULL, NULL, &rep, msg,
	                 sizeof(msg)),
	    EF_S_OK);
	cr_assert_eq(rh_exec(&h, "todo", "t1", "Toggle", NULL, NULL, &rep, msg,
	                 sizeof(msg)),
	    EF_S_REJECTED);
	cr_assert_str_eq(msg, "todo was deleted");
	cr_assert_eq(rh_exec(&h, "todo", "t2", "Add", "{}", NULL, &rep, msg,
	                 sizeof(msg)),
	    EF_S_REJECTED);
	cr_assert_eq(rh_exec(&h, "nosuch", "x", "Do", NULL, NULL, &rep, msg,
	                 sizeof(msg)),
	    EF_S_NOT_FOUND);
	cr_assert(strstr(msg, "nosuch") != NULL);
	/* a plugin error is an internal error, not a crash */
	cr_assert_eq(rh_exec(&h, "slow", "s", "Fail", NULL, NULL, &rep, msg,
	                 sizeof(msg)),
	    EF_S_INTERNAL);
	cr_assert(strstr(msg, "asked to fail") != NULL, "%s", msg);
	cr_assert_eq(rh_head(&h), 3);
}

Test(aggregate, command_id_is_applied_once, .init = up, .fini = rh_fini)
{
	struct ipc_exec_rep rep, again;
	char msg[1024], cmd[700];
	uint64_t head;

	cr_assert_eq(rh_exec(&h, "counter", "c-1", "Increment", NULL, "once",
	                 &rep, msg, sizeof(msg)),
	    EF_S_OK);
	head = rh_head(&h);
	cr_assert_eq(rh_exec(&h, "counter", "c-1", "Increment", NULL, "once",
	                 &again, msg, sizeof(msg)),
	    EF_S_OK);
	cr_assert(again.duplicate);
	cr_assert_eq(again.version, rep.version);
	cr_assert_eq(again.first_pos, rep.first_pos);
	cr_assert_eq(rh_head(&h), head);
	/* the same id for another aggregate is refused */
	cr_assert_eq(rh_exec(&h, "counter", "c-2", "Increment", NULL, "once",
	                 &again, msg, sizeof(msg)),
	    EF_S_INVALID);
	/* after kill -9 */
	rh_kill_runnerd(&h, SIGKILL);
	rh_start_runnerd(&h);
	cr_assert_eq(rh_exec(&h, "counter", "c-1", "Increment", NULL, "once",
	                 &again, msg, sizeof(msg)),
	    EF_S_OK);
	cr_assert(again.duplicate && again.first_pos == rep.first_pos);
	/* with runnerd's whole LMDB gone: recovered from the log */
	rh_kill_runnerd(&h, SIGKILL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/runner'", h.data);
	cr_assert(system(cmd) == 0);
	rh_start_runnerd(&h);
	cr_assert_eq(rh_exec(&h, "counter", "c-1", "Increment", NULL, "once",
	                 &again, msg, sizeof(msg)),
	    EF_S_OK);
	cr_assert(again.duplicate, "re-ran a command whose events exist");
	cr_assert_eq(again.first_pos, rep.first_pos);
	cr_assert_eq(rh_head(&h), head);
	cr_assert(rh_log_contains(h.runnerd_log, "result recovered"));
}

Test(aggregate, eventfold_es_conventions, .init = up, .fini = rh_fini)
{
	struct ipc_exec_req r;
	struct ipc_exec_rep rep;
	struct client_reply cr;
	struct ipc_read_rep rr;
	struct ef_event ev;
	char msg[1024], sid[UUID_STR_LEN];
	const char *why;
	uint8_t id[UUID_LEN];
	json_t *m;

	/* uuid5 of "counter/c-1" in the eventfold-es namespace (Python) */
	uuid_stream_id("counter", 7, "c-1", 3, id);
	cr_assert_str_eq(uuid_format(id, sid),
	    "6e25385d-dbc4-5717-882b-1338d47baa8e");
	memset(&r, 0, sizeof(r));
	r.aggregate_type = ipc_cstr("counter");
	r.instance_id = ipc_cstr("c-1");
	r.type = ipc_cstr("Increment");
	r.command_id = ipc_cstr("cmd-1");
	r.actor = ipc_cstr("alice");
	r.correlation_id = ipc_cstr("corr-9");
	cr_assert_eq(rh_exec_ctx(&h, &r, &rep, msg, sizeof(msg)), EF_S_OK);
	cr_assert(memcmp(rep.stream_id, id, UUID_LEN) == 0);
	cr_assert_eq(client_read_stream(&h.store, sid, 0, 10, EF_FORWARD, &cr,
	                 &rr),
	    EF_S_OK);
	cr_assert_eq(rr.nevents, 1);
	cr_assert(
	    ipc_event_decode(&rr.events->via.array.ptr[0], &ev, &why) == 0);
	cr_assert(ev.type_len == 11 && !memcmp(ev.type, "Incremented", 11));
	cr_assert(ev.payload_len == 4 && !memcmp(ev.payload, "null", 4));
	m = json_loadb((const char *)ev.metadata, ev.metadata_len, 0, NULL);
	cr_assert(m != NULL);
	cr_assert_eq(json_object_size(m), 5, "%.*s", (int)ev.metadata_len,
	    ev.metadata);
	cr_assert_str_eq(json_string_value(
	                     json_object_get(m, "aggregate_type")),
	    "counter");
	cr_assert_str_eq(json_string_value(json_object_get(m, "instance_id")),
	    "c-1");
	cr_assert_str_eq(json_string_value(json_object_get(m, "actor")),
	    "alice");
	cr_assert_str_eq(json_string_value(
	                     json_object_get(m, "correlation_id")),
	    "corr-9");
	cr_assert_str_eq(json_string_value(json_object_get(m, "command_id")),
	    "cmd-1");
	cr_assert_null(json_object_get(m, "source_device"));
	cr_assert_null(json_object_get(m, "causation_id"));
	/* the key order eventfold-es writes */
	cr_assert(!strncmp((const char *)ev.metadata,
	    "{\"aggregate_type\":\"counter\",\"instance_id\":\"c-1\","
	    "\"actor\":\"alice\",\"correlation_id\":\"corr-9\"",
	    78));
	json_decref(m);
	client_reply_free(&cr);
	/* events written by eventfold-es (other ids) fold in too */
	cr_assert_eq(rh_append_es(&h, "counter", "c-1", "Added",
	                 "{\"amount\":5}", EF_EXPECT_EXACT, 0),
	    EF_S_OK);
	{
		char *state;
		uint64_t v;
		bool e;

		cr_assert_eq(rh_state(&h, "counter", "c-1", &state, &v, &e),
		    EF_S_OK);
		cr_assert_eq(v, 1);
		/* 8 little-endian bytes holding 6 */
		cr_assert(strlen(state) == 1 && state[0] == 6);
		free(state);
	}
	cr_assert(rh_wait_fold(&h, "counters", 2, 5000));
	rh_expect_get(&h, "counters", "c-1", "6");
}

struct bg {
	struct rh *h;
	const char *payload;
	int st;
	struct ipc_exec_rep rep;
	char msg[1024];
};

static void *
bg_exec(void *arg)
{
	struct bg *b = arg;

	b->st = rh_exec(b->h, "slow", "s-1", "Add", b->payload, NULL, &b->rep,
	    b->msg, sizeof(b->msg));
	return NULL;
}

/* An Add on slow s-1 (payload first), then b's Add in another thread;
 * while its handle() sleeps, someone else appends at version 1. */
static void
external_append_during(struct bg *b, const char *first)
{
	pthread_t t;

	cr_assert_eq(rh_exec(&h, "slow", "s-1", "Add", first, NULL, NULL, NULL,
	                 0),
	    EF_S_OK);
	pthread_create(&t, NULL, bg_exec, b);
	rh_ms(150);
	cr_assert_eq(rh_append_es(&h, "slow", "s-1", "Incremented", NULL,
	                 EF_EXPECT_EXACT, 0),
	    EF_S_OK);
	pthread_join(t, NULL);
}

Test(aggregate, external_append_forces_a_retry, .init = up, .fini = rh_fini)
{
	struct bg b = { &h, "{\"sleep_ms\":400}", 0, { { 0 } }, "" };
	char *state;
	uint64_t v;
	bool e;

	external_append_during(&b, "{\"sleep_ms\":0}");
	cr_assert_eq(b.st, EF_S_OK, "%s", b.msg);
	cr_assert_eq(b.rep.version, 2,
	    "the retry went after the external "
	    "event");
	cr_assert_eq(rh_state(&h, "slow", "s-1", &state, &v, &e), EF_S_OK);
	cr_assert_str_eq(state, "3");
	cr_assert_eq(v, 2);
	free(state);
}

Test(aggregate, retries_are_bounded)
{
	struct bg b = { &h, "{\"sleep_ms\":400}", 0, { { 0 } }, "" };

	rh_up_args(&h, examples,
	    (const char *const[]){ "--max-retries", "0", NULL });
	external_append_during(&b, NULL);
	cr_assert_eq(b.st, EF_S_ABORTED, "%d %s", b.st, b.msg);
	cr_assert(strstr(b.msg, "version conflict") != NULL, "%s", b.msg);
	rh_stop(&h);
}

/* Every op with a body of the wrong shape, and envelope errors. */
Test(aggregate, malformed_requests_get_errors, .init = up, .fini = rh_fini)
{
	static const int ops[] = { EF_OP_EXECUTE, EF_OP_GET_STATE, EF_OP_QUERY,
		EF_OP_REBUILD, EF_OP_RESET, EF_OP_REPLAY, EF_OP_DEAD_LETTERS };
	struct ipc_out o;
	char msg[1024];
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		msgpack_pack_array(&rh_request(&o, ops[i])->pk, 1);
		msgpack_pack_int(&o.pk, -5);
		cr_assert_eq(rh_raw(&h, o.buf, o.len, msg, sizeof(msg)),
		    EF_S_BAD_REQUEST, "op %d", ops[i]);
		ipc_out_free(&o);
	}
	/* unknown op, wrong version, garbage */
	ipc_nil(rh_request(&o, 99));
	cr_assert_eq(rh_raw(&h, o.buf, o.len, msg, sizeof(msg)),
	    EF_S_UNKNOWN_OP);
	ipc_out_reset(&o);
	msgpack_pack_array(&o.pk, 4);
	msgpack_pack_uint32(&o.pk, 77);
	msgpack_pack_uint32(&o.pk, EF_OP_EXECUTE);
	msgpack_pack_uint32(&o.pk, 1);
	ipc_nil(&o);
	cr_assert_eq(rh_raw(&h, o.buf, o.len, msg, sizeof(msg)),
	    EF_S_BAD_VERSION);
	ipc_out_free(&o);
	cr_assert_eq(rh_raw(&h, "\xc1\xff\x00", 3, msg, sizeof(msg)),
	    EF_S_BAD_REQUEST);
	/* bounds: an empty instance id, an over-long command id */
	{
		char longid[400];

		memset(longid, 'x', sizeof(longid) - 1);
		longid[sizeof(longid) - 1] = '\0';
		cr_assert_eq(rh_exec(&h, "todo", "", "Add", NULL, NULL, NULL,
		                 msg, sizeof(msg)),
		    EF_S_BAD_REQUEST);
		cr_assert_eq(rh_exec(&h, "todo", "t", "Add", NULL, longid,
		                 NULL, msg, sizeof(msg)),
		    EF_S_BAD_REQUEST);
		cr_assert(strstr(msg, "command_id") != NULL, "%s", msg);
	}
	/* unknown names */
	cr_assert_eq(rh_name_op(&h, EF_OP_REBUILD, "nosuch", msg, sizeof(msg)),
	    EF_S_NOT_FOUND);
	cr_assert_eq(rh_name_op(&h, EF_OP_RESET, "nosuch", msg, sizeof(msg)),
	    EF_S_NOT_FOUND);
	cr_assert_eq(rh_name_op(&h, EF_OP_REBUILD, "order_shipping", msg,
	                 sizeof(msg)),
	    EF_S_INVALID);
	{
		char *out;

		cr_assert_eq(rh_replay(&h, "nosuch", 5, &out, NULL),
		    EF_S_NOT_FOUND);
		free(out);
		cr_assert_eq(rh_replay(&h, "order_shipping", 5, &out, NULL),
		    EF_S_INVALID);
		free(out);
		cr_assert_eq(rh_dump(&h, "nosuch", 10, &out, NULL),
		    EF_S_NOT_FOUND);
		free(out);
		cr_assert_eq(rh_get(&h, "counters", "absent", &out),
		    EF_S_NOT_FOUND);
	}
	/* the daemon is still fine */
	cr_assert_eq(rh_exec(&h, "counter", "c", "Increment", NULL, NULL, NULL,
	                 msg, sizeof(msg)),
	    EF_S_OK);
}
