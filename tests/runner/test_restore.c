/* SPDX-License-Identifier: MIT */
/*
 * test_restore.c - runnerd given an older log than its state: stored
 * backed up (BACKUP) at position N while runnerd's projections follow,
 * more events applied past N, then stored restored from the backup
 * (runnerd's own state kept). Without a check, the projection would
 * resume at its checkpoint, beyond the restored head, and silently skip
 * the positions N.. that the log gets next. runnerd must see that its
 * checkpoint is beyond the head, say so, and rebuild from 0: the
 * "strict" projection (which fails unless it sees every position once,
 * in order) ends at exactly N, then applies new events from N on.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rharness.h"

TestSuite(restore, .timeout = 180);

/* The plugins of the tests with aggregates. */
static const char *const with_counter[] = { "testplug.so", "counter.so",
	NULL };

static void
backup(struct rh *h, const char *dir, uint64_t *position)
{
	struct ipc_backup_req r = { { dir, (uint32_t)strlen(dir) } };
	struct ipc_backup_rep br;
	struct client_reply cr;
	struct ipc_out o;
	const char *why = "";
	int st;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_BACKUP, client_request_id(&h->store));
	ipc_backup_req_encode(&o, &r);
	st = client_call(&h->store, &o, &cr);
	cr_assert_eq(st, EF_S_OK, "backup: %.*s", (int)cr.in.message.len,
	    cr.in.message.ptr);
	cr_assert_eq(ipc_backup_rep_decode(cr.in.body, &br, &why), 0);
	*position = br.position;
	client_reply_free(&cr);
	ipc_out_free(&o);
}

/* Stops h's stored with SIGTERM and reaps it. */
static void
stop_stored(struct rh *h)
{
	int status;

	kill(h->stored, SIGTERM);
	waitpid(h->stored, &status, 0);
	h->stored = 0;
}

/* Stops runnerd, then stored, with SIGTERM. */
static void
stop_both(struct rh *h)
{
	rh_kill_runnerd(h, SIGTERM);
	stop_stored(h);
}

/* n "Plain" events appended to stream sid, then folded by strict up to
 * position pos. */
static void
plain_folded(struct rh *h, const uint8_t sid[UUID_LEN], uint32_t n,
    uint64_t pos)
{
	cr_assert_eq(rh_append_batch(h, sid, n, rh_numbered, "Plain"),
	    EF_S_OK);
	cr_assert(rh_wait_fold(h, "strict", pos, 10000));
}

/*
 * With both daemons stopped, the log goes back to the backup in bk:
 * h's data directory moves aside to h.dir/old and bk takes its place.
 * With keep_runner, runnerd's own state (data/runner) moves with it, so
 * runnerd finds the state it had, newer than the log.
 */
static void
restore_log(struct rh *h, const char *bk, bool keep_runner)
{
	char old[RH_PATH + 16], from[RH_PATH + 32], to[RH_PATH + 32];

	if (keep_runner) {
		snprintf(from, sizeof(from), "%s/runner", h->data);
		snprintf(to, sizeof(to), "%s/runner", bk);
		cr_assert_eq(rename(from, to), 0, "move %s", from);
	}
	snprintf(old, sizeof(old), "%s/old", h->dir);
	cr_assert_eq(rename(h->data, old), 0);
	cr_assert_eq(rename(bk, h->data), 0);
}

Test(restore, projection_rebuilds_after_an_older_log)
{
	static const char *const plugins[] = { "testplug.so", NULL };
	struct rh h;
	struct rh_fold f;
	uint8_t sid[UUID_LEN];
	char bk[RH_PATH + 16];
	uint64_t pos;

	rh_up(&h, plugins);
	rh_stream_id(sid, 0x42);
	plain_folded(&h, sid, 50, 50);

	snprintf(bk, sizeof(bk), "%s/bk", h.dir);
	backup(&h, bk, &pos);
	cr_assert_eq(pos, 50);
	plain_folded(&h, sid, 30, 80);

	/* stop both; the log goes back to the backup, runnerd's state stays */
	stop_both(&h);
	restore_log(&h, bk, true);

	rh_start_stored(&h);
	rh_start_runnerd(&h);
	/* rebuilt: exactly 50 (80, the old checkpoint, is what a runnerd
	 * that does not check keeps reporting) */
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(rh_fold(&h, "strict", &f), EF_S_OK);
		if (f.position == 50 && !f.has_error)
			break;
		rh_ms(10);
	}
	cr_assert_eq(f.position, 50, "strict at %lu after the restore",
	    (unsigned long)f.position);
	cr_assert(!f.has_error, "strict failed: %s", f.error);
	cr_assert(rh_log_contains(h.runnerd_log, "beyond the log's head"),
	    "runnerd did not say why it rebuilt");

	/* the positions 50.. of the restored log are applied, in order */
	plain_folded(&h, sid, 5, 55);
	cr_assert_eq(rh_fold_ok(&h, "strict"), 55);
	rh_stop(&h);
}

/* The count in a counter state (8 bytes little-endian, cut at the first
 * zero byte by rh_state: only counts without a zero byte below their
 * top one are read right, as those used here are). */
static uint64_t
count_of(const char *state)
{
	uint64_t v = 0;
	size_t i, n = strlen(state);

	for (i = n; i > 0; i--)
		v = v << 8 | (uint8_t)state[i - 1];
	return v;
}

static void
increments(struct rh *h, const char *inst, int n)
{
	struct ipc_exec_rep rep;
	char msg[256];

	for (int i = 0; i < n; i++)
		cr_assert_eq(rh_exec(h, "counter", inst, "Increment", NULL,
		                 NULL, &rep, msg, sizeof(msg)),
		    EF_S_OK, "%s: %s", inst, msg);
}

static void
expect_state(struct rh *h, const char *inst, bool exists, uint64_t version,
    uint64_t count)
{
	char *state = NULL;
	uint64_t v = 0;
	bool e = false;

	cr_assert_eq(rh_state(h, "counter", inst, &state, &v, &e), EF_S_OK,
	    "%s", inst);
	cr_assert_eq(e, exists, "%s: exists %d", inst, e);
	if (exists) {
		cr_assert_eq(v, version, "%s: version %lu, not %lu", inst,
		    (unsigned long)v, (unsigned long)version);
		cr_assert_eq(count_of(state), count, "%s: count %lu, not %lu",
		    inst, (unsigned long)count_of(state),
		    (unsigned long)count);
	}
	free(state);
}

/* Counters c-old and c-rep at 10, 50 plain events: backed up into bk at
 * position 70; then 10 more on each, 20 on c-new, the command
 * after-backup on c-late and 30 plain events, all folded (141). */
static void
history_past_the_backup(struct rh *h, const uint8_t sid[UUID_LEN],
    const char *bk)
{
	struct ipc_exec_rep rep;
	char msg[256];
	uint64_t pos;

	increments(h, "c-old", 10);
	increments(h, "c-rep", 10);
	plain_folded(h, sid, 50, 70);
	backup(h, bk, &pos);
	cr_assert_eq(pos, 70);
	/* snapshots (every 16 events) at version 15 of each counter */
	increments(h, "c-old", 10);
	increments(h, "c-rep", 10);
	increments(h, "c-new", 20);
	/* a command whose events the restore takes away */
	cr_assert_eq(rh_exec(h, "counter", "c-late", "Increment", NULL,
	                 "after-backup", &rep, msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	expect_state(h, "c-old", true, 19, 20);
	expect_state(h, "c-rep", true, 19, 20);
	expect_state(h, "c-new", true, 19, 20);
	plain_folded(h, sid, 30, 141);
	cr_assert(rh_wait_fold(h, "tally", 141, 10000));
}

/* Projection, process manager and aggregates fold the log again (it
 * holds head events), and runnerd says why for each. */
static void
folded_again_from_the_log(struct rh *h, uint64_t head)
{
	cr_assert(rh_wait_fold(h, "strict", head, 10000));
	cr_assert(rh_wait_fold(h, "tally", head, 10000));
	cr_assert_eq(rh_fold_ok(h, "strict"), head);
	rh_fold_ok(h, "tally");
	rh_expect_logged(h,
	    (const char *const[]){
	        "projection strict: the event at position 140 is",
	        "process manager tally: the event at position 140 is", NULL });

	/* the log's counts, not the snapshots' (16 at version 15) */
	expect_state(h, "c-old", true, 9, 10);
	expect_state(h, "c-rep", true, 19, 1010);
	expect_state(h, "c-new", false, 0, 0);
	/* c-old, c-rep, c-new */
	rh_expect_logged(h,
	    (const char *const[]){
	        "state at version 15 (a snapshot) is beyond the end of the "
	        "stream",
	        "state at version 15 (a snapshot) follows event",
	        "state at version 15 (a snapshot) is of a stream the log "
	        "does not hold",
	        NULL });
}

/* Commands are decided on the log's state; the command the restore
 * lost runs again, once. */
static void
commands_on_the_log_state(struct rh *h)
{
	struct ipc_exec_rep rep;
	char msg[256];

	cr_assert_eq(rh_exec(h, "counter", "c-old", "Increment", NULL, NULL,
	                 &rep, msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	cr_assert_eq(rep.version, 10);
	cr_assert_eq(rh_exec(h, "counter", "c-new", "Increment", NULL, NULL,
	                 &rep, msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	cr_assert_eq(rep.version, 0);
	expect_state(h, "c-old", true, 10, 11);
	expect_state(h, "c-new", true, 0, 1);
	/* runnerd kept its result, but the log lost its event: a retry must
	 * run it again, not answer "duplicate" */
	cr_assert_eq(rh_exec(h, "counter", "c-late", "Increment", NULL,
	                 "after-backup", &rep, msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	cr_assert(!rep.duplicate, "a lost command answered as a duplicate");
	cr_assert_eq(rep.version, 0);
	expect_state(h, "c-late", true, 0, 1);
	cr_assert(rh_log_contains(h->runnerd_log,
	              "command after-backup: its "
	              "result"),
	    "no word of the lost command");
	cr_assert_eq(rh_exec(h, "counter", "c-late", "Increment", NULL,
	                 "after-backup", &rep, msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	cr_assert(rep.duplicate, "the re-run command ran twice");
	expect_state(h, "c-late", true, 0, 1);
}

/*
 * The log restored from an older backup and then written past runnerd's
 * checkpoint by others (what a repair or a second writer leaves): the
 * checkpoints are now inside the log but at other events, and the
 * aggregate snapshots are beyond their streams' ends, at other events,
 * or of streams the log does not hold. Projection, process manager and
 * every aggregate instance must notice, say so, and fold again; none may
 * resume from what it kept.
 */
Test(restore, repaired_log_rebuilds_folds_and_aggregate_snapshots)
{
	struct rh h;
	uint8_t sid[UUID_LEN];
	char bk[RH_PATH + 16], amount[32];
	uint64_t head;

	rh_up(&h, with_counter);
	rh_stream_id(sid, 0x43);
	snprintf(bk, sizeof(bk), "%s/bk", h.dir);
	history_past_the_backup(&h, sid, bk);

	/* stop both (runnerd's writer commits the snapshots on the way
	 * out); the log goes back to the backup, runnerd's state stays */
	stop_both(&h);
	restore_log(&h, bk, true);

	/* others write while runnerd is away: c-rep gets other events at
	 * versions 10..19, the log grows past runnerd's checkpoint (141) */
	rh_start_stored(&h);
	for (int i = 0; i < 10; i++) {
		snprintf(amount, sizeof(amount), "{\"amount\":%d}", 100);
		cr_assert_eq(rh_append_es(&h, "counter", "c-rep", "Added",
		                 amount, EF_EXPECT_EXACT, 9 + (uint64_t)i),
		    EF_S_OK);
	}
	cr_assert_eq(rh_append_batch(&h, sid, 80, rh_numbered, "Plain"),
	    EF_S_OK);
	head = rh_head(&h);
	cr_assert_eq(head, 160);

	rh_start_runnerd(&h);
	folded_again_from_the_log(&h, head);
	commands_on_the_log_state(&h);
	rh_stop(&h);
}

/* Runs eventfoldctl against h's daemons; its stdout into out. Returns
 * its exit status. */
static int
ctl(struct rh *h, char *out, size_t outlen, const char *a1, const char *a2,
    const char *a3)
{
	char bin[RH_PATH + 64], file[RH_PATH + 32], *text;
	const char *b = getenv("EF_BUILD_ROOT");
	int status, fd;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/clients/eventfoldctl/eventfoldctl",
	    b ? b : ".");
	snprintf(file, sizeof(file), "%s/ctl.out", h->dir);
	if ((pid = fork()) == 0) {
		fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		execl(bin, bin, "--runtime-dir", h->run, a1, a2, a3,
		    (char *)NULL);
		_exit(127);
	}
	cr_assert(pid > 0);
	waitpid(pid, &status, 0);
	text = rh_read_file(file);
	snprintf(out, outlen, "%s", text ? text : "");
	free(text);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Is there an entry of dir whose name starts with prefix? Its name in
 * name if so. */
static bool
left_behind(const char *dir, const char *prefix, char *name, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;

	cr_assert(d != NULL);
	while (!found && (de = readdir(d)) != NULL)
		if (!strncmp(de->d_name, prefix, strlen(prefix))) {
			snprintf(name, len, "%s", de->d_name);
			found = true;
		}
	closedir(d);
	return found;
}

/*
 * `eventfoldctl backup DIR --runner`: runnerd's state is copied too,
 * before the log, into DIR/runner. Restored, runnerd resumes from the
 * copied checkpoints and snapshots (nothing beyond the log, so nothing
 * to rebuild) and the events after the backup's position are not there.
 */
Test(restore, backup_with_runner_state_resumes_without_rebuilding)
{
	struct rh h;
	struct stat sb;
	uint8_t sid[UUID_LEN];
	char bk[RH_PATH + 16], file[RH_PATH + 64];
	char out[2048], want[RH_PATH + 128];

	rh_up(&h, with_counter);
	rh_stream_id(sid, 0x44);
	increments(&h, "c-1", 20);
	expect_state(&h, "c-1", true, 19, 20);
	plain_folded(&h, sid, 50, 70);
	cr_assert(rh_wait_fold(&h, "tally", 70, 10000));

	snprintf(bk, sizeof(bk), "%s/bk", h.dir);
	cr_assert_eq(ctl(&h, out, sizeof(out), "backup", bk, "--runner"), 0,
	    "backup --runner: %s", out);
	snprintf(want, sizeof(want), "backup %s: consistent at position 70 ",
	    bk);
	cr_assert(strstr(out, want) != NULL, "%s", out);
	snprintf(want, sizeof(want), "backup %s/runner: runnerd's state, ",
	    bk);
	cr_assert(strstr(out, want) != NULL, "%s", out);
	snprintf(file, sizeof(file), "%s/runner/data.mdb", bk);
	cr_assert(stat(file, &sb) == 0 && sb.st_size > 0, "no %s", file);
	/* a second backup into the same DIR is refused; nothing is left */
	cr_assert_eq(ctl(&h, out, sizeof(out), "backup", bk, "--runner"), 3);
	cr_assert(!left_behind(h.dir, "bk.runner-", file, sizeof(file)),
	    "left behind: %s", file);

	/* after the backup: not in it */
	increments(&h, "c-1", 3);
	plain_folded(&h, sid, 10, 83);

	stop_both(&h);
	restore_log(&h, bk, false);
	cr_assert_eq(truncate(h.runnerd_log, 0), 0);
	rh_start_stored(&h);
	cr_assert_eq(rh_head(&h), 70);
	rh_start_runnerd(&h);

	/* both resume from the copy */
	rh_expect_logged(&h,
	    (const char *const[]){
	        "projection strict: starting at position 70",
	        "process manager tally: starting at position 70", NULL });
	cr_assert(!rh_log_contains(h.runnerd_log, "rebuilding"));
	cr_assert(!rh_log_contains(h.runnerd_log, "folding it again"));
	expect_state(&h, "c-1", true, 19, 20);
	cr_assert_eq(rh_fold_ok(&h, "strict"), 70);
	rh_stop(&h);
}

/* Waits until projection proj holds key with value want; false after ms. */
static bool
wait_value(struct rh *h, const char *proj, const char *key, const char *want,
    int ms, char *last, size_t lastlen)
{
	char *v;

	for (int waited = 0; waited < ms; waited += 20) {
		v = NULL;
		rh_get(h, proj, key, &v);
		snprintf(last, lastlen, "%s", v ? v : "(none)");
		free(v);
		if (!strcmp(last, want))
			return true;
		rh_ms(20);
	}
	return false;
}

/*
 * stored restored from an older backup while runnerd keeps running (the
 * operator restarts only the store). The subscriptions reconnect and
 * would wait at their old positions, skipping what the restored log gets
 * there next; and the aggregate instances held in memory would answer
 * from a state the log no longer backs. runnerd must notice on its
 * next read, say so, and fold again.
 */
Test(restore, stored_restored_under_a_running_runnerd)
{
	struct rh h;
	uint8_t sid[UUID_LEN];
	char bk[RH_PATH + 16], last[64];
	uint64_t pos, head;

	rh_up(&h, with_counter);
	rh_stream_id(sid, 0x45);
	increments(&h, "c-1", 10);
	cr_assert_eq(rh_append_batch(&h, sid, 50, rh_numbered, "Plain"),
	    EF_S_OK);
	cr_assert(rh_wait_fold(&h, "counters", 60, 10000));
	snprintf(bk, sizeof(bk), "%s/bk", h.dir);
	backup(&h, bk, &pos);
	cr_assert_eq(pos, 60);
	increments(&h, "c-1", 10);
	expect_state(&h, "c-1", true, 19, 20);
	cr_assert_eq(rh_append_batch(&h, sid, 20, rh_numbered, "Plain"),
	    EF_S_OK);
	cr_assert(rh_wait_fold(&h, "counters", 90, 10000));
	cr_assert(rh_wait_fold(&h, "strict", 90, 10000));
	cr_assert(wait_value(&h, "counters", "c-1", "20", 10000, last,
	              sizeof(last)),
	    "counters c-1 = %s before the restore", last);

	/* only stored goes back to the backup; runnerd runs on (its state
	 * moves with the directory, its files stay open) */
	stop_stored(&h);
	restore_log(&h, bk, false);
	rh_start_stored(&h);
	/* the restored log gets other events where runnerd had been */
	for (int i = 0; i < 5; i++)
		cr_assert_eq(rh_append_es(&h, "counter", "c-1", "Added",
		                 "{\"amount\":100}", EF_EXPECT_EXACT,
		                 9 + (uint64_t)i),
		    EF_S_OK);
	cr_assert_eq(rh_append_batch(&h, sid, 40, rh_numbered, "Plain"),
	    EF_S_OK);
	head = rh_head(&h);
	cr_assert_eq(head, 105);

	/* the log's count: 10 increments and 5 x 100, not 20 */
	cr_assert(wait_value(&h, "counters", "c-1", "510", 20000, last,
	              sizeof(last)),
	    "counters c-1 = %s after the restore, not 510", last);
	cr_assert(rh_wait_fold(&h, "strict", head, 10000));
	rh_fold_ok(&h, "strict");
	cr_assert(rh_log_contains(h.runnerd_log,
	              "counters: the log changed "
	              "underneath"),
	    "counters: no word of it");
	expect_state(&h, "c-1", true, 14, 510);
	cr_assert(rh_log_contains(h.runnerd_log,
	              "its state at version 19 "
	              "(held in memory) is beyond the end of the stream"),
	    "c-1: no word of it");
	rh_stop(&h);
}
