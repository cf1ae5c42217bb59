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
bulky(uint32_t i, char *type, char *meta, char *payload, void *arg)
{
	(void)arg;
	strcpy(type, "Bulky");
	meta[0] = '\0';
	sprintf(payload, "{\"i\":%u}", i);
}

static void
append_bulky(struct rh *h, uint8_t fill, uint32_t batches)
{
	uint8_t sid[UUID_LEN];
	uint32_t b;

	memset(sid, fill, sizeof(sid));
	sid[6] = 0x40;
	sid[8] = 0x80;
	for (b = 0; b < batches; b++)
		cr_assert_eq(rh_append_batch(h, sid, 100, bulky, NULL),
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

Test(grow, map_doubles_when_full)
{
	static const char *const plugins[] = { "testplug.so", NULL };
	struct rh h;
	struct rh_fold f;
	struct ipc_exec_rep rep[50], again;
	char msg[1024], id[32], *live, *replayed;
	uint64_t head, pos, map0, grows0, map, grows, map2, grows2;
	int i;

	rh_init(&h, plugins);
	h.extra[0] = "--map-size";
	h.extra[1] = "64K";
	rh_start_stored(&h);
	rh_start_runnerd(&h);
	rh_lmdb_map(&h, &map0, &grows0);
	cr_assert_eq(grows0, 0);
	cr_assert(map0 >= 65536 && map0 < 1024 * 1024, "map %llu at start",
	    (unsigned long long)map0);

	append_bulky(&h, 0x41, 3);
	for (i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "grow-cmd-%d", i);
		cr_assert_eq(rh_exec(&h, "slow", "s-1", "Inc", NULL, id,
		                 &rep[i], msg, sizeof(msg)),
		    EF_S_OK, "%s", msg);
	}
	append_bulky(&h, 0x42, 3);
	head = rh_head(&h);
	cr_assert_eq(head, 650);
	cr_assert(rh_wait_fold(&h, "bulky", head, 60000),
	    "bulky did not "
	    "reach %llu",
	    (unsigned long long)head);
	cr_assert_eq(rh_fold(&h, "bulky", &f), EF_S_OK);
	cr_assert(!f.has_error, "bulky stopped: %s", f.error);
	cr_assert(rh_wait_fold(&h, "strict", head, 60000));
	cr_assert_eq(rh_fold(&h, "strict", &f), EF_S_OK);
	cr_assert(!f.has_error, "strict stopped: %s", f.error);
	check_values(&h, head);
	cr_assert(rh_log_contains(h.runnerd_log, "LMDB map full: grown from"),
	    "no growth logged");
	cr_assert(!rh_log_contains(h.runnerd_log, "mapsize limit reached"),
	    "MDB_MAP_FULL reported as a failure");
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
	for (i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "grow-cmd-%d", i);
		cr_assert_eq(rh_exec(&h, "slow", "s-1", "Inc", NULL, id,
		                 &again, msg, sizeof(msg)),
		    EF_S_OK, "%s", msg);
		cr_assert(again.duplicate, "%s ran twice", id);
		cr_assert_eq(again.version, rep[i].version);
	}
	append_bulky(&h, 0x43, 2);
	head = rh_head(&h);
	cr_assert(rh_wait_fold(&h, "bulky", head, 60000));
	cr_assert_eq(rh_fold(&h, "bulky", &f), EF_S_OK);
	cr_assert(!f.has_error, "bulky stopped: %s", f.error);
	check_values(&h, head);
	/* the count is since the start; the size is the grown one */
	rh_lmdb_map(&h, &map2, &grows2);
	cr_assert(map2 >= map, "map %llu after the restart, %llu before",
	    (unsigned long long)map2, (unsigned long long)map);
	cr_assert(grows2 == 0 || map2 > map, "map %llu, %llu growths",
	    (unsigned long long)map2, (unsigned long long)grows2);

	/* the scratch environment of REPLAY starts small too and grows */
	cr_assert_eq(rh_dump(&h, "bulky", 100, &live, &pos), EF_S_OK);
	cr_assert_eq(pos, head);
	cr_assert_eq(rh_replay(&h, "bulky", head - 1, &replayed, &pos),
	    EF_S_OK);
	cr_assert_eq(pos, head);
	cr_assert_eq(strlen(replayed), strlen(live));
	cr_assert(strcmp(replayed, live) == 0, "replay differs from live");
	/* REPLAY's growths count too; the environment's size is unchanged */
	rh_lmdb_map(&h, &map, &grows);
	cr_assert(grows >= grows2 + 5,
	    "%llu growths after REPLAY, %llu "
	    "before",
	    (unsigned long long)grows, (unsigned long long)grows2);
	cr_assert_eq(map, map2);
	cr_assert(!rh_log_contains(h.runnerd_log, "mapsize limit reached"),
	    "MDB_MAP_FULL reported as a failure");
	free(live);
	free(replayed);
	rh_stop(&h);
}
