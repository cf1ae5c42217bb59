/* SPDX-License-Identifier: MIT */
/*
 * test_projection.c - projections against real daemons: QUERY by key,
 * prefix, range and pages; read-your-writes with min_position and its
 * deadline; status; a failing projection stops at its event while the
 * others go on; reset; and the property that folding incrementally,
 * rebuilding from 0 and replaying give the same read model as a model
 * of the todo app, over random command sequences.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rharness.h"

TestSuite(projection, .timeout = 180);

static const char *const examples[] = { "todo.so", "counter.so", "testplug.so",
	NULL };

static struct rh h;

static void
up(void)
{
	rh_up(&h, examples);
}

static int
query(const struct ipc_query_req *q, char **out, bool *more, char *next)
{
	struct ipc_query_rep rep;
	struct client_reply cr;
	struct ipc_out o;
	const uint8_t *k, *v;
	uint32_t kl, vl, i;
	const char *why;
	size_t len = 0;
	int st;

	*out = calloc(1, 4096);
	ipc_query_req_encode(rh_request(&o, EF_OP_QUERY), q);
	st = rh_call(&h.runner, &o, &cr);
	if (st == EF_S_OK) {
		cr_assert(ipc_query_rep_decode(cr.in.body, &rep, &why) == 0);
		for (i = 0; i < rep.nitems; i++) {
			cr_assert(ipc_kv_decode(&rep.items->via.array.ptr[i],
			              &k, &kl, &v, &vl, &why) == 0);
			len += (size_t)snprintf(*out + len, 4096 - len,
			    "%.*s=%.*s ", (int)kl, k, (int)vl, v);
		}
		*more = rep.has_next;
		if (rep.has_next)
			snprintf(next, 64, "%.*s", (int)rep.next_len,
			    rep.next);
	}
	client_reply_free(&cr);
	return st;
}

Test(projection, query_modes_and_paging, .init = up, .fini = rh_fini)
{
	static const char *const ids[] = { "a1", "a2", "a3", "b1", "b2",
		"c1" };
	struct ipc_query_req q;
	struct ipc_exec_rep rep;
	char *out, next[64];
	bool more;
	size_t i;

	for (i = 0; i < 6; i++)
		cr_assert_eq(rh_exec(&h, "counter", ids[i], "Increment", NULL,
		                 NULL, &rep, NULL, 0),
		    EF_S_OK);
	/* read-your-writes: wait for the last position */
	memset(&q, 0, sizeof(q));
	q.projection = ipc_cstr("counters");
	q.mode = EF_QUERY_PREFIX;
	q.has_key = true;
	q.key = (const uint8_t *)"a";
	q.key_len = 1;
	q.has_min_position = true;
	q.min_position = rep.last_pos;
	q.wait_ms = 5000;
	cr_assert_eq(query(&q, &out, &more, next), EF_S_OK);
	cr_assert_str_eq(out, "a1=1 a2=1 a3=1 ");
	cr_assert(!more);
	free(out);
	/* range [a2, b2) in pages of 2 */
	q.mode = EF_QUERY_RANGE;
	q.key = (const uint8_t *)"a2";
	q.key_len = 2;
	q.has_end = true;
	q.end = (const uint8_t *)"b2";
	q.end_len = 2;
	q.limit = 2;
	q.has_min_position = false;
	cr_assert_eq(query(&q, &out, &more, next), EF_S_OK);
	cr_assert_str_eq(out, "a2=1 a3=1 ");
	cr_assert(more);
	cr_assert_str_eq(next, "a3");
	free(out);
	q.has_after = true;
	q.after = (const uint8_t *)next;
	q.after_len = (uint32_t)strlen(next);
	cr_assert_eq(query(&q, &out, &more, next), EF_S_OK);
	cr_assert_str_eq(out, "b1=1 ");
	cr_assert(!more);
	free(out);
	/* everything, no bounds */
	memset(&q, 0, sizeof(q));
	q.projection = ipc_cstr("counters");
	q.mode = EF_QUERY_RANGE;
	cr_assert_eq(query(&q, &out, &more, next), EF_S_OK);
	cr_assert_str_eq(out, "a1=1 a2=1 a3=1 b1=1 b2=1 c1=1 ");
	free(out);
	/* a position not yet written: the deadline */
	q.has_min_position = true;
	q.min_position = 1000;
	q.wait_ms = 300;
	cr_assert_eq(query(&q, &out, &more, next), EF_S_DEADLINE);
	free(out);
	/* bad shapes */
	q.has_min_position = false;
	q.mode = EF_QUERY_KEY;
	q.has_key = false;
	cr_assert_eq(query(&q, &out, &more, next), EF_S_BAD_REQUEST);
	free(out);
	q.mode = EF_QUERY_RANGE;
	q.limit = IPC_QUERY_LIMIT + 1;
	cr_assert_eq(query(&q, &out, &more, next), EF_S_BAD_REQUEST);
	free(out);
}

Test(projection, status_and_a_failing_projection, .init = up, .fini = rh_fini)
{
	struct rh_fold f;
	char msg[1024];
	uint64_t head;
	int waited;

	cr_assert_eq(rh_exec(&h, "counter", "x", "Increment", NULL, NULL, NULL,
	                 NULL, 0),
	    EF_S_OK);
	cr_assert_eq(rh_append_es(&h, "other", "o", "Poison", NULL,
	                 EF_EXPECT_ANY, 0),
	    EF_S_OK);
	cr_assert_eq(rh_exec(&h, "counter", "x", "Increment", NULL, NULL, NULL,
	                 NULL, 0),
	    EF_S_OK);
	head = rh_head(&h);
	cr_assert(rh_wait_fold(&h, "counters", head, 5000));
	cr_assert(rh_wait_fold(&h, "strict", head, 5000));
	/* each projection folds on its own: "poisoned" may not have
	 * reached the poison yet when the others are at the head */
	for (waited = 0; waited < 5000; waited += 20) {
		cr_assert_eq(rh_fold(&h, "poisoned", &f), EF_S_OK);
		if (strcmp(f.state, "stopped") == 0)
			break;
		rh_ms(20);
	}
	cr_assert_str_eq(f.state, "stopped");
	cr_assert_eq(f.position, 1, "stopped at the poison, not before");
	cr_assert(f.has_error && f.error_position == 1);
	cr_assert(strstr(f.error, "poison pill") != NULL, "%s", f.error);
	cr_assert(f.has_lag && f.lag == head - 1);
	rh_expect_get(&h, "poisoned", "count", "1");
	/* the others went on */
	rh_expect_get(&h, "counters", "x", "2");
	cr_assert_eq(rh_fold(&h, "counters", &f), EF_S_OK);
	cr_assert_str_eq(f.state, "live");
	cr_assert(!f.has_error && f.lag == 0);
	/* waiting on a stopped projection fails fast */
	{
		struct ipc_query_req q;
		struct client_reply cr;
		struct ipc_out o;

		memset(&q, 0, sizeof(q));
		q.projection = ipc_cstr("poisoned");
		q.mode = EF_QUERY_RANGE;
		q.has_min_position = true;
		q.min_position = 2;
		q.wait_ms = 10000;
		ipc_query_req_encode(rh_request(&o, EF_OP_QUERY), &q);
		cr_assert_eq(rh_call(&h.runner, &o, &cr), EF_S_ABORTED);
		client_reply_free(&cr);
	}
	/* it stays stopped across a restart (same plugin, same event) */
	rh_kill_runnerd(&h, SIGTERM);
	rh_start_runnerd(&h);
	rh_ms(300);
	cr_assert_eq(rh_fold(&h, "poisoned", &f), EF_S_OK);
	cr_assert_str_eq(f.state, "stopped");
	cr_assert_eq(f.position, 1);
	/* reset empties counters and refolds from 0 */
	cr_assert_eq(rh_name_op(&h, EF_OP_RESET, "counters", msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	cr_assert(rh_wait_fold(&h, "counters", head, 5000));
	rh_expect_get(&h, "counters", "x", "2");
}

/* A model of the todo app, to check the read models against. */
struct model {
	int exists[20], deleted[20], completed[20];
	char title[20][16];
	int created, ncompleted, ndeleted;
};

static void
random_commands(struct model *m, unsigned *seed, int n)
{
	char id[16], payload[64];
	const char *cmd;
	int i, k, op, st;

	for (i = 0; i < n; i++) {
		k = (int)(rand_r(seed) % 20);
		op = (int)(rand_r(seed) % 3);
		snprintf(id, sizeof(id), "t%02d", k);
		if (op == 0) {
			snprintf(payload, sizeof(payload),
			    "{\"title\":\"item %d\"}", i);
			st = rh_exec(&h, "todo", id, "Add", payload, NULL,
			    NULL, NULL, 0);
			cr_assert_eq(st,
			    m->exists[k] ? EF_S_REJECTED : EF_S_OK,
			    "%s Add: %s", id, ipc_status_name(st));
			if (!m->exists[k]) {
				m->exists[k] = 1;
				snprintf(m->title[k], sizeof(m->title[k]),
				    "item %d", i);
				m->created++;
			}
		} else {
			/* Toggle or Delete: only a live item takes either */
			cmd = op == 1 ? "Toggle" : "Delete";
			st = rh_exec(&h, "todo", id, cmd, NULL, NULL, NULL,
			    NULL, 0);
			if (!m->exists[k] || m->deleted[k]) {
				cr_assert_eq(st, EF_S_REJECTED, "%s %s: %s",
				    id, cmd, ipc_status_name(st));
				continue;
			}
			cr_assert_eq(st, EF_S_OK, "%s %s: %s", id, cmd,
			    ipc_status_name(st));
			if (op == 1) {
				m->completed[k] = !m->completed[k];
				if (m->completed[k])
					m->ncompleted++;
			} else {
				m->deleted[k] = 1;
				m->ndeleted++;
			}
		}
	}
}

static char *
model_list(const struct model *m)
{
	char *s = calloc(1, 8192);
	size_t len = 0;
	int k;

	for (k = 0; k < 20; k++)
		if (m->exists[k] && !m->deleted[k])
			len += (size_t)snprintf(s + len, 8192 - len,
			    "t%02d={\"title\":\"%s\",\"completed\":%s}\n", k,
			    m->title[k], m->completed[k] ? "true" : "false");
	return s;
}

static char *
model_stats(const struct model *m)
{
	char *s = calloc(1, 256);
	size_t len = 0;

	if (m->ncompleted)
		len += (size_t)snprintf(s + len, 256 - len, "completed=%d\n",
		    m->ncompleted);
	if (m->created)
		len += (size_t)snprintf(s + len, 256 - len, "created=%d\n",
		    m->created);
	if (m->ndeleted)
		snprintf(s + len, 256 - len, "deleted=%d\n", m->ndeleted);
	return s;
}

Test(projection, rebuild_equals_incremental_equals_model, .init = up,
    .fini = rh_fini)
{
	static const char *const projs[] = { "todo_list", "todo_stats" };
	struct model m;
	unsigned seed;
	uint64_t head, pos;
	char *live, *rebuilt, *replayed, *want, msg[1024];
	int round, p;

	for (round = 0; round < 4; round++) {
		seed = 1234u + (unsigned)round;
		memset(&m, 0, sizeof(m));
		if (round > 0) {
			/* a fresh log for each sequence */
			rh_stop(&h);
			up();
		}
		random_commands(&m, &seed, 60 + round * 40);
		head = rh_head(&h);
		for (p = 0; p < 2; p++) {
			cr_assert(rh_wait_fold(&h, projs[p], head, 10000));
			cr_assert_eq(rh_dump(&h, projs[p], 3, &live, &pos),
			    EF_S_OK);
			cr_assert_eq(pos, head);
			want = p == 0 ? model_list(&m) : model_stats(&m);
			cr_assert_str_eq(live, want, "round %d %s", round,
			    projs[p]);
			cr_assert_eq(rh_replay(&h, projs[p], head - 1,
			                 &replayed, &pos),
			    EF_S_OK);
			cr_assert_eq(pos, head);
			cr_assert_str_eq(replayed, live);
			cr_assert_eq(rh_name_op(&h, EF_OP_REBUILD, projs[p],
			                 msg, sizeof(msg)),
			    EF_S_OK, "%s", msg);
			cr_assert(rh_wait_fold(&h, projs[p], head, 20000));
			cr_assert_eq(rh_dump(&h, projs[p], 1000, &rebuilt,
			                 NULL),
			    EF_S_OK);
			cr_assert_str_eq(rebuilt, live, "round %d %s", round,
			    projs[p]);
			free(live);
			free(rebuilt);
			free(replayed);
			free(want);
		}
	}
}

Test(projection, replay_is_time_travel, .init = up, .fini = rh_fini)
{
	struct ipc_exec_rep r1, r2;
	char *out, *live;
	uint64_t pos;

	cr_assert_eq(rh_exec(&h, "todo", "t1", "Add", "{\"title\":\"a\"}",
	                 NULL, &r1, NULL, 0),
	    EF_S_OK);
	cr_assert_eq(rh_exec(&h, "todo", "t1", "Toggle", NULL, NULL, &r2, NULL,
	                 0),
	    EF_S_OK);
	cr_assert_eq(rh_exec(&h, "todo", "t1", "Delete", NULL, NULL, NULL,
	                 NULL, 0),
	    EF_S_OK);
	cr_assert(rh_wait_fold(&h, "todo_list", 3, 5000));
	cr_assert_eq(rh_replay(&h, "todo_list", r1.last_pos, &out, &pos),
	    EF_S_OK);
	cr_assert_str_eq(out, "t1={\"title\":\"a\",\"completed\":false}\n");
	cr_assert_eq(pos, r1.last_pos + 1);
	free(out);
	cr_assert_eq(rh_replay(&h, "todo_list", r2.last_pos, &out, &pos),
	    EF_S_OK);
	cr_assert_str_eq(out, "t1={\"title\":\"a\",\"completed\":true}\n");
	free(out);
	/* past the head: everything there is */
	cr_assert_eq(rh_replay(&h, "todo_list", 1000000, &out, &pos), EF_S_OK);
	cr_assert_str_eq(out, "");
	cr_assert_eq(pos, 3);
	free(out);
	/* the live projection was not touched */
	cr_assert_eq(rh_dump(&h, "todo_list", 10, &live, &pos), EF_S_OK);
	cr_assert_str_eq(live, "");
	cr_assert_eq(pos, 3);
	free(live);
}
