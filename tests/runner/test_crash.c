/* SPDX-License-Identifier: MIT */
/*
 * test_crash.c - kill -9 of runnerd at random moments. During a catch-up
 * of 200k events, 10 cycles: afterwards every projection has applied
 * every event exactly once ("strict" fails on a repeat or a gap), and
 * the read model equals a replay and a rebuild from scratch. And a
 * process manager killed while it dispatches: each event's command
 * applied exactly once (counted in the target streams in stored). And
 * a rebuild stopped halfway, by kill -9 and by SIGTERM, starts over at
 * the next start: the old model serves whole meanwhile, "strict" (which
 * fails on a repeat or a gap) ends rebuilt at the head.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "rharness.h"
#include "uuid5.h"
#include "../tools/testutil.h"

TestSuite(crash, .timeout = 300);

/* The events of one aggregate type as eventfold-es writes them: its
 * instances are PREFIX-N, each event of type with payload. */
struct es_kind {
	const char *agg, *prefix, *type, *payload;
};
static const struct es_kind counter = { "counter", "c", "Incremented",
	"null" };
static const struct es_kind ticker = { "ticker", "t", "Tick", "{}" };

/* One event of an instance (an rh_append_batch generator). */
struct es_instance {
	const struct es_kind *kind;
	char inst[32];
};

static void
es_event(uint32_t i, char *type, char *meta, char *payload, void *arg)
{
	const struct es_instance *in = arg;

	(void)i;
	strcpy(type, in->kind->type);
	snprintf(meta, 256,
	    "{\"aggregate_type\":\"%s\","
	    "\"instance_id\":\"%s\"}",
	    in->kind->agg, in->inst);
	strcpy(payload, in->kind->payload);
}

/* batches of per events of kind k, over instances 0..streams-1 in turn. */
static void
fill(struct rh *h, uint32_t batches, uint32_t per, uint32_t streams,
    const struct es_kind *k)
{
	struct es_instance in = { k, "" };
	uint8_t sid[UUID_LEN];
	uint32_t b;

	for (b = 0; b < batches; b++) {
		snprintf(in.inst, sizeof(in.inst), "%s-%u", k->prefix,
		    b % streams);
		uuid_stream_id(k->agg, strlen(k->agg), in.inst,
		    strlen(in.inst), sid);
		cr_assert_eq(rh_append_batch(h, sid, per, es_event, &in),
		    EF_S_OK);
	}
}

/* Starts runnerd, then kills it with SIGKILL and starts it again, kills
 * times, after min_ms plus up to spread_ms each (rand_r of *seed). */
static void
kill9_while_folding(struct rh *h, int kills, int min_ms, int spread_ms,
    unsigned *seed)
{
	int k;

	rh_start_runnerd(h);
	for (k = 0; k < kills; k++) {
		rh_ms(min_ms + (int)(rand_r(seed) % (unsigned)spread_ms));
		rh_kill_runnerd(h, SIGKILL);
		rh_start_runnerd(h);
	}
}

Test(crash, kill9_during_catch_up_of_200k_events)
{
	static const char *const pl[] = { "counter.so", "testplug.so", NULL };
	struct rh h;
	struct rh_fold f;
	char *live, *replayed, *rebuilt, expect[4096], msg[512];
	uint64_t head, pos;
	unsigned seed = (unsigned)time(NULL);
	size_t len = 0;
	int k;

	rh_init(&h, pl);
	rh_start_stored(&h);
	fill(&h, 200, 1000, 50, &counter);
	head = rh_head(&h);
	cr_assert_eq(head, 200000);
	kill9_while_folding(&h, 10, 100, 500, &seed);
	cr_assert(rh_wait_fold(&h, "strict", head, 120000),
	    "strict did not "
	    "finish");
	cr_assert(rh_wait_fold(&h, "counters", head, 120000));
	cr_assert(rh_wait_fold(&h, "poisoned", head, 120000));
	cr_assert_eq(rh_fold(&h, "strict", &f), EF_S_OK);
	cr_assert(!f.has_error, "strict: %s", f.error);
	cr_assert_eq(f.position, head);
	rh_expect_get(&h, "strict", "next", "200000");
	rh_expect_get(&h, "poisoned", "count", "200000");
	/* the counters: 4 batches of 1000 per instance */
	for (k = 0; k < 50; k++) {
		char key[16];

		snprintf(key, sizeof(key), "c-%d", k);
		(void)key;
	}
	{
		/* keys sort bytewise: c-0, c-1, c-10, ... */
		char keys[50][8];
		int i, j;

		for (i = 0; i < 50; i++)
			snprintf(keys[i], sizeof(keys[i]), "c-%d", i);
		for (i = 0; i < 50; i++)
			for (j = i + 1; j < 50; j++)
				if (strcmp(keys[i], keys[j]) > 0) {
					char t[8];

					strcpy(t, keys[i]);
					strcpy(keys[i], keys[j]);
					strcpy(keys[j], t);
				}
		for (i = 0; i < 50; i++)
			len += (size_t)snprintf(expect + len,
			    sizeof(expect) - len, "%s=4000\n", keys[i]);
	}
	cr_assert_eq(rh_dump(&h, "counters", 1000, &live, &pos), EF_S_OK);
	cr_assert_eq(pos, head);
	cr_assert_str_eq(live, expect);
	cr_assert_eq(rh_replay(&h, "counters", head - 1, &replayed, &pos),
	    EF_S_OK);
	cr_assert_str_eq(replayed, live);
	cr_assert_eq(rh_name_op(&h, EF_OP_REBUILD, "counters", msg,
	                 sizeof(msg)),
	    EF_S_OK, "%s", msg);
	cr_assert(rh_wait_fold(&h, "counters", head, 120000));
	cr_assert_eq(rh_dump(&h, "counters", 1000, &rebuilt, &pos), EF_S_OK);
	cr_assert_str_eq(rebuilt, live);
	free(live);
	free(replayed);
	free(rebuilt);
	rh_stop(&h);
}

Test(crash, manager_applies_each_command_once_under_kill9)
{
	static const char *const pl[] = { "counter.so", "testplug.so", NULL };
	struct rh h;
	struct rh_fold f;
	struct client_reply cr;
	struct ipc_read_rep rr;
	char sid[UUID_STR_LEN], inst[16];
	uint8_t id[UUID_LEN];
	uint64_t head, expect[4] = { 0 }, total = 0;
	unsigned seed = (unsigned)time(NULL) ^ 0x5a5a;
	int k;

	rh_init_args(&h, pl,
	    (const char *const[]){ "--pm-backoff-ms", "10", NULL });
	rh_start_stored(&h);
	fill(&h, 15, 100, 5, &ticker);
	head = rh_head(&h);
	for (k = 0; k < (int)head; k++)
		expect[k % 4]++;
	kill9_while_folding(&h, 6, 150, 400, &seed);
	cr_assert(rh_wait_fold(&h, "tally", head, 120000),
	    "tally did not "
	    "finish");
	cr_assert_eq(rh_fold(&h, "tally", &f), EF_S_OK);
	cr_assert(!f.has_error, "%s", f.error);
	cr_assert_eq(f.dead_letters, 0);
	for (k = 0; k < 4; k++) {
		snprintf(inst, sizeof(inst), "tally-%d", k);
		uuid_stream_id("counter", 7, inst, strlen(inst), id);
		cr_assert_eq(client_read_stream(&h.store, uuid_format(id, sid),
		                 0, 1, EF_FORWARD, &cr, &rr),
		    EF_S_OK);
		cr_assert(rr.has_last_version);
		cr_assert_eq(rr.last_version + 1, expect[k],
		    "tally-%d: %llu events for %llu ticks", k,
		    (unsigned long long)rr.last_version + 1,
		    (unsigned long long)expect[k]);
		total += rr.last_version + 1;
		client_reply_free(&cr);
	}
	cr_assert_eq(total, 1500);
	rh_stop(&h);
}

/* Starts a rebuild of "strict" and of "counters", waits until each has
 * applied some events but not all, then stops runnerd with sig. */
static void
stop_halfway_through_rebuilds(struct rh *h, uint64_t head, int sig)
{
	static const char *const projs[] = { "strict", "counters" };
	struct rh_fold f;
	char msg[512];
	int waited, p;

	for (p = 0; p < 2; p++)
		cr_assert_eq(rh_name_op(h, EF_OP_REBUILD, projs[p], msg,
		                 sizeof(msg)),
		    EF_S_OK, "%s", msg);
	for (p = 0; p < 2; p++) {
		for (waited = 0; waited < 60000; waited += 2) {
			cr_assert_eq(rh_fold(h, projs[p], &f), EF_S_OK);
			cr_assert(f.rebuilding,
			    "%s: the rebuild ended before "
			    "it could be interrupted",
			    projs[p]);
			if (f.rebuild_position > 0)
				break;
			rh_ms(2);
		}
		cr_assert_gt(f.rebuild_position, 0);
		cr_assert_lt(f.rebuild_position, head);
	}
	rh_kill_runnerd(h, sig);
}

/* strict's next reads head_s and counters holds live, as at the start. */
static void
expect_models(struct rh *h, const char *head_s, const char *live)
{
	uint64_t pos;
	char *now;

	rh_expect_get(h, "strict", "next", head_s);
	cr_assert_eq(rh_dump(h, "counters", 1000, &now, &pos), EF_S_OK);
	cr_assert_str_eq(now, live);
	free(now);
}

Test(crash, rebuild_survives_a_restart)
{
	static const char *const pl[] = { "counter.so", "testplug.so", NULL };
	struct rh h;
	struct rh_fold f;
	char *live, *log, head_s[32];
	uint64_t head, pos;
	int round;
	static const int sigs[] = { SIGKILL, SIGTERM };

	rh_init_args(&h, pl,
	    (const char *const[]){ "--fold-batch", "512", NULL });
	rh_start_stored(&h);
	fill(&h, 100, 1000, 50, &counter);
	head = rh_head(&h);
	snprintf(head_s, sizeof(head_s), "%llu", (unsigned long long)head);
	rh_start_runnerd(&h);
	cr_assert(rh_wait_fold(&h, "strict", head, 120000));
	cr_assert(rh_wait_fold(&h, "counters", head, 120000));
	cr_assert_eq(rh_dump(&h, "counters", 1000, &live, &pos), EF_S_OK);
	for (round = 0; round < 2; round++) {
		stop_halfway_through_rebuilds(&h, head, sigs[round]);
		rh_start_runnerd(&h);
		/* the old generation serves, whole, until the swap */
		expect_models(&h, head_s, live);
		cr_assert(rh_wait_fold(&h, "strict", head, 120000));
		cr_assert(rh_wait_fold(&h, "counters", head, 120000));
		cr_assert_eq(rh_fold(&h, "strict", &f), EF_S_OK);
		cr_assert(!f.has_error, "strict: %s", f.error);
		expect_models(&h, head_s, live);
	}
	/* every rebuild was interrupted: each swap is one started over */
	log = rh_read_file(h.runnerd_log);
	cr_assert_eq(count_substr(log,
	                 "strict: a rebuild was under way when "
	                 "runnerd stopped; starting it over"),
	    2);
	cr_assert_eq(count_substr(log, "strict: rebuild swapped in"), 2);
	cr_assert_eq(count_substr(log, "counters: rebuild swapped in"), 2);
	free(log);
	free(live);
	rh_stop(&h);
}
