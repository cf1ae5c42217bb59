/* SPDX-License-Identifier: MIT */
/*
 * test_retention.c - the command results (EXECUTE's command ids) stay
 * within their configured retention: by count (the newest
 * command_retention kept, the oldest forgotten as new ones come) and by
 * age (forgotten command_retention_s seconds later, also with no new
 * command). The table is read from runnerd's LMDB environment by this
 * process (read-only, beside the running daemon). A remembered id is a
 * duplicate; a forgotten one runs again, and stored still does not
 * store its events twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <lmdb.h>

#include "rharness.h"

TestSuite(retention, .timeout = 120);

/* Entries of "cmds" and "cmdage" in h's runnerd environment. */
static void
count_results(struct rh *h, size_t *cmds, size_t *ages)
{
	char dir[RH_PATH + 16];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi a, c;
	MDB_stat ms;

	snprintf(dir, sizeof(dir), "%s/runner", h->data);
	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
	cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0), 0, "%s", dir);
	cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "cmds", 0, &c), 0);
	cr_assert_eq(mdb_dbi_open(txn, "cmdage", 0, &a), 0);
	cr_assert_eq(mdb_stat(txn, c, &ms), 0);
	*cmds = ms.ms_entries;
	cr_assert_eq(mdb_stat(txn, a, &ms), 0);
	*ages = ms.ms_entries;
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/* Polls until "cmds" holds want entries (true) or ms pass. */
static bool
wait_results(struct rh *h, size_t want, int ms, size_t *cmds, size_t *ages)
{
	int waited;

	for (waited = 0; waited <= ms; waited += 50) {
		count_results(h, cmds, ages);
		if (*cmds == want)
			return true;
		rh_ms(50);
	}
	return false;
}

static void
exec_ok(struct rh *h, const char *id, struct ipc_exec_rep *rep)
{
	char msg[1024];

	cr_assert_eq(rh_exec(h, "slow", "r-1", "Inc", NULL, id, rep, msg,
	                 sizeof(msg)),
	    EF_S_OK, "%s: %s", id, msg);
}

Test(retention, by_count)
{
	static const char *const plugins[] = { "testplug.so", NULL };
	struct rh h;
	struct ipc_exec_rep rep, last, again;
	char id[32];
	size_t cmds, ages;
	uint64_t head;
	int i;

	rh_up_args(&h, plugins,
	    (const char *const[]){ "--command-retention", "100",
	        "--command-retention-s", "0", NULL });
	for (i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "keep-%d", i);
		exec_ok(&h, id, i == 299 ? &last : &rep);
		if (i == 99) {
			cr_assert(wait_results(&h, 100, 5000, &cmds, &ages),
			    "%zu results, not 100", cmds);
			cr_assert_eq(ages, 100);
		}
	}
	cr_assert(wait_results(&h, 100, 5000, &cmds, &ages),
	    "%zu results "
	    "kept with command_retention 100",
	    cmds);
	cr_assert_eq(ages, 100);
	head = rh_head(&h);
	cr_assert_eq(head, 300);
	/* the newest is remembered */
	exec_ok(&h, "keep-299", &again);
	cr_assert(again.duplicate);
	cr_assert_eq(again.version, last.version);
	exec_ok(&h, "keep-200", &again);
	cr_assert(again.duplicate);
	/* the oldest is forgotten, and still not stored twice */
	exec_ok(&h, "keep-0", &again);
	cr_assert(!again.duplicate, "keep-0 still remembered");
	cr_assert_eq(rh_head(&h), head,
	    "a forgotten command id appended "
	    "its events again");
	rh_stop(&h);
}

Test(retention, by_age)
{
	static const char *const plugins[] = { "testplug.so", NULL };
	struct rh h;
	struct ipc_exec_rep rep;
	char id[32];
	size_t cmds, ages;
	int i;

	rh_up_args(&h, plugins,
	    (const char *const[]){ "--command-retention-s", "5", NULL });
	for (i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "old-%d", i);
		exec_ok(&h, id, &rep);
	}
	cr_assert(wait_results(&h, 20, 2000, &cmds, &ages), "%zu results",
	    cmds);
	cr_assert_eq(ages, 20);
	exec_ok(&h, "old-3", &rep);
	cr_assert(rep.duplicate, "forgotten before command_retention_s");
	/* no new command: the idle writer forgets them */
	cr_assert(wait_results(&h, 0, 15000, &cmds, &ages),
	    "%zu results "
	    "left after command_retention_s",
	    cmds);
	cr_assert_eq(ages, 0);
	exec_ok(&h, "new-0", &rep);
	cr_assert(!rep.duplicate);
	exec_ok(&h, "new-0", &rep);
	cr_assert(rep.duplicate);
	cr_assert(wait_results(&h, 1, 2000, &cmds, &ages));
	rh_stop(&h);
}
