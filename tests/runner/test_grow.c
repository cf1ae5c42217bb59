/* SPDX-License-Identifier: MIT */
/*
 * test_grow.c - runnerd's LMDB map grows when full. runnerd starts with
 * a 64 KiB map; the "bulky" projection stores 8 KiB per event (600
 * events: about 5 MiB, seven doublings) while commands on "slow" fill
 * the command results: the projection must reach the head without an
 * error, every value intact, the growth logged, MDB_MAP_FULL never
 * reported as a failure; after a restart with the same small map_size
 * the environment reopens at its grown size and carries on; REPLAY (a
 * scratch environment) grows too and equals the live model; command ids
 * committed while the map grew are still remembered. RUNNER_STATUS
 * reports the map's size and counts the doublings (the gateway's
 * eventfold_runner_lmdb_map_* metrics).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rharness.h"

TestSuite(grow, .timeout = 180);

#define BULKY_BYTES 8192

static void
append_bulky(struct rh *h, uint8_t fill, uint32_t batches)
{
	uint8_t sid[UUID_LEN];
	uint32_t b;

	rh_stream_id(sid, fill);
	for (b = 0; b < batches; b++)
		cr_assert_eq(rh_append_batch(h, sid, 100, rh_numbered,
		                 "Bulky"),
		    EF_S_OK);
}

/* Every b-POSITION value is BULKY_BYTES of 'a' + position % 26 (the
 * commands' events are at 300..349). */
static void
check_values(struct rh *h, uint64_t head)
{
	char key[32], *val;
	uint64_t p;
	size_t i;

	for (p = 0; p < head; p += 37) {
		if (p >= 300 && p < 350)
			continue;
		snprintf(key, sizeof(key), "b-%08llu", (unsigned long long)p);
		cr_assert_eq(rh_get(h, "bulky", key, &val), EF_S_OK, "%s",
		    key);
		cr_assert_eq(strlen(val), BULKY_BYTES, "%s", key);
		for (i = 0; i < BULKY_BYTES; i++)
			if (val[i] != 'a' + (int)(p % 26))
				break;
		cr_assert_eq(i, BULKY_BYTES, "%s: wrong byte at %zu", key, i);
		free(val);
	}
}

/* The 50 commands grow-cmd-N on s-1: run (rep[N] their replies), or
 * again (each answered as a duplicate of rep[N]). */
static void
commands(struct rh *h, struct ipc_exec_rep *rep, bool again)
{
	struct ipc_exec_rep r;
	char msg[1024], id[32];
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "grow-cmd-%d", i);
		cr_assert_eq(rh_exec(h, "slow", "s-1", "Inc", NULL, id,
		                 again ? &r : &rep[i], msg, sizeof(msg)),
		    EF_S_OK, "%s", msg);
		if (!again)
			continue;
		cr_assert(r.duplicate, "%s ran twice", id);
		cr_assert_eq(r.version, rep[i].version);
	}
}

/* bulky and strict folded to head without an error; the values right;
 * growth logged, never a failure. */
static void
folded_through_growth(struct rh *h, uint64_t head)
{
	cr_assert(rh_wait_fold(h, "bulky", head, 60000),
	    "bulky did not "
	    "reach %llu",
	    (unsigned long long)head);
	rh_fold_ok(h, "bulky");
	cr_assert(rh_wait_fold(h, "strict", head, 60000));
	rh_fold_ok(h, "strict");
	check_values(h, head);
	cr_assert(rh_log_contains(h->runnerd_log, "LMDB map full: grown from"),
	    "no growth logged");
	cr_assert(!rh_log_contains(h->runnerd_log, "mapsize limit reached"),
	    "MDB_MAP_FULL reported as a failure");
}

/* The scratch environment of REPLAY starts small too and grows: its
 * growths count too (over grows_before), the environment's size stays
 * map_before. */
static void
replay_grows_too(struct rh *h, uint64_t head, uint64_t map_before,
    uint64_t grows_before)
{
	char *live, *replayed;
	uint64_t pos, map, grows;

	cr_assert_eq(rh_dump(h, "bulky", 100, &live, &pos), EF_S_OK);
	cr_assert_eq(pos, head);
	cr_assert_eq(rh_replay(h, "bulky", head - 1, &replayed, &pos),
	    EF_S_OK);
	cr_assert_eq(pos, head);
	cr_assert_eq(strlen(replayed), strlen(live));
	cr_assert(strcmp(replayed, live) == 0, "replay differs from live");
	rh_lmdb_map(h, &map, &grows);
	cr_assert(grows >= grows_before + 5,
	    "%llu growths after REPLAY, %llu "
	    "before",
	    (unsigned long long)grows, (unsigned long long)grows_before);
	cr_assert_eq(map, map_before);
	cr_assert(!rh_log_contains(h->runnerd_log, "mapsize limit reached"),
	    "MDB_MAP_FULL reported as a failure");
	free(live);
	free(replayed);
}

Test(grow, map_doubles_when_full)
{
	static const char *const plugins[] = { "testplug.so", NULL };
	struct rh h;
	struct ipc_exec_rep rep[50];
	uint64_t head, map0, grows0, map, grows, map2, grows2;

	rh_up_args(&h, plugins,
	    (const char *const[]){ "--map-size", "64K", NULL });
	rh_lmdb_map(&h, &map0, &grows0);
	cr_assert_eq(grows0, 0);
	cr_assert(map0 >= 65536 && map0 < 1024 * 1024, "map %llu at start",
	    (unsigned long long)map0);

	append_bulky(&h, 0x41, 3);
	commands(&h, rep, false);
	append_bulky(&h, 0x42, 3);
	head = rh_head(&h);
	cr_assert_eq(head, 650);
	folded_through_growth(&h, head);
	/* 650 events of 8 KiB: several doublings, each counted */
	rh_lmdb_map(&h, &map, &grows);
	cr_assert(grows >= 5, "%llu growths counted",
	    (unsigned long long)grows);
	cr_assert_eq(map, map0 << grows,
	    "map %llu, started at %llu, %llu "
	    "growths",
	    (unsigned long long)map, (unsigned long long)map0,
	    (unsigned long long)grows);

	/* a restart with the same small map_size reopens at the file's size */
	rh_kill_runnerd(&h, SIGTERM);
	rh_start_runnerd(&h);
	commands(&h, rep, true);
	append_bulky(&h, 0x43, 2);
	head = rh_head(&h);
	cr_assert(rh_wait_fold(&h, "bulky", head, 60000));
	rh_fold_ok(&h, "bulky");
	check_values(&h, head);
	/* the count is since the start; the size is the grown one */
	rh_lmdb_map(&h, &map2, &grows2);
	cr_assert(map2 >= map, "map %llu after the restart, %llu before",
	    (unsigned long long)map2, (unsigned long long)map);
	cr_assert(grows2 == 0 || map2 > map, "map %llu, %llu growths",
	    (unsigned long long)map2, (unsigned long long)grows2);

	replay_grows_too(&h, head, map2, grows2);
	rh_stop(&h);
}
