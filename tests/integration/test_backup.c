/* SPDX-License-Identifier: MIT */
/*
 * test_backup.c - `eventfoldctl backup DIR` against a real
 * eventfold-stored under append load, with tiny segments archived in
 * the background (hot_segments 0), restored by starting a second stored
 * on DIR with no other step:
 *   - every event acknowledged below the printed position is in the
 *     backup at its position with its id, stream, version and payload;
 *     nothing at or past it is; `eventfoldctl verify` passes on it;
 *   - on the same filesystem sealed and archived segments are hard
 *     links and the hot one a copy; on another filesystem (/dev/shm)
 *     everything is copied;
 *   - the restored stored takes appends while the original goes on, and
 *     neither sees the other's (no shared file is written);
 *   - bad targets (not empty, a file, a missing parent) are refused
 *     with a clear message and stored keeps serving.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"

TestSuite(backup, .fini = h_cleanup, .timeout = 300);

/* Runs eventfoldctl against s; the exit code, *out and *err malloc'd. */

struct bk {
	uint64_t position, segments, linked, copied;
};

/* `backup DIR --json`, which must succeed; its figures. */
static struct bk
backup(const struct h_stored *s, const char *dir)
{
	char *out = NULL, *err = NULL;
	json_error_t je;
	json_t *j;
	struct bk b;
	int rc;

	rc = h_ctl_at(s,
	    (const char *const[]){ "backup", dir, "--json", NULL }, &out,
	    &err);
	cr_assert_eq(rc, 0, "backup %s: exit %d: %s%s", dir, rc, out, err);
	j = json_loads(out, 0, &je);
	cr_assert_not_null(j, "backup output is not JSON: %s", out);
	b.position = (uint64_t)json_integer_value(
	    json_object_get(j, "position"));
	b.segments = (uint64_t)json_integer_value(
	    json_object_get(j, "segments"));
	b.linked = (uint64_t)json_integer_value(json_object_get(j, "linked"));
	b.copied = (uint64_t)json_integer_value(json_object_get(j, "copied"));
	cr_assert_str_eq(json_string_value(json_object_get(j, "dir")), dir);
	json_decref(j);
	free(out);
	free(err);
	return b;
}

/* `verify` on a data directory must say OK. */
static void
verify_ok(const struct h_stored *s)
{
	char *out = NULL, *err = NULL;
	int rc = h_ctl_at(s, (const char *const[]){ "verify", NULL }, &out,
	    &err);

	cr_assert_eq(rc, 0, "verify %s: exit %d: %s%s", s->data_dir, rc, out,
	    err);
	cr_assert(strstr(out, ": OK: ") != NULL, "verify: %s", out);
	free(out);
	free(err);
}

/*
 * The restored store rs must hold exactly positions 0 .. pos - 1, equal
 * to the original's events there, and every event the load had
 * acknowledged below pos.
 */
static void
check_restored(struct h_load *l, struct ef_client *orig, struct ef_client *rs,
    uint64_t pos)
{
	struct h_event *a = NULL, *b = NULL;
	size_t na = 0, nb = 0, i, t, acked_below = 0;

	cr_assert_eq(h_read_all(rs, 0, &b, &nb), EF_S_OK);
	cr_assert_eq(nb, pos,
	    "the backup holds %zu events, its position is %" PRIu64, nb, pos);
	cr_assert_eq(h_read_all(orig, 0, &a, &na), EF_S_OK);
	cr_assert_geq(na, pos);
	for (i = 0; i < nb; i++) {
		cr_assert_eq(b[i].pos, i);
		h_event_same(&a[i], &b[i], "position", i);
		cr_assert_eq(memcmp(a[i].stream_id, b[i].stream_id, UUID_LEN),
		    0);
	}
	for (t = 0; t < l->nthreads; t++)
		for (i = 0; i < l->t[t].nacks; i++) {
			const struct h_ack *k = &l->t[t].acks[i];

			if (k->pos >= pos)
				continue;
			acked_below++;
			cr_assert_eq(memcmp(b[k->pos].event_id, k->event_id,
			                 UUID_LEN),
			    0,
			    "acknowledged event at %" PRIu64
			    " missing from the backup",
			    k->pos);
		}
	cr_assert_gt(acked_below, 0);
	h_events_free(a, na);
	h_events_free(b, nb);
}

/* Archived segments (".zst" files) in dir. */
static int
count_zst(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	size_t len;
	int n = 0;

	cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len > 4 && !strcmp(de->d_name + len - 4, ".zst"))
			n++;
	}
	closedir(d);
	return n;
}

/* The original (cl, at head with load) and the restored copy (rcl, at
 * pos) both take appends; neither sees the other's. */
static void
both_take_appends(struct h_load *load, struct ef_client *cl,
    struct ef_client *rcl, uint64_t head, uint64_t pos)
{
	char ev[UUID_STR_LEN], st[UUID_STR_LEN];
	struct h_result res;

	cr_assert_eq(h_append1(rcl, h_uuid(st), EF_EXPECT_NO_STREAM, 0,
	                 h_uuid(ev), "Restored", "{}", &res),
	    EF_S_OK, "%s", res.msg);
	cr_assert_eq(res.rep.first_pos, pos);
	cr_assert_eq(h_append1(cl, h_uuid(st), EF_EXPECT_NO_STREAM, 0,
	                 h_uuid(ev), "Original", "{}", &res),
	    EF_S_OK, "%s", res.msg);
	cr_assert_eq(res.rep.first_pos, head);
	cr_assert_eq(h_load_verify(load, cl), head + 1);
	cr_assert_eq(h_head(rcl), pos + 1);
}

/* Both stopped (cl and rcl closed) and verified; the original restarted
 * still holds the load's events and one more (head + 1 in all). */
static void
both_verify_after_a_restart(struct h_stored *sd, struct h_stored *rs,
    struct h_load *load, struct ef_client *cl, struct ef_client *rcl,
    uint64_t head)
{
	client_close(rcl);
	cr_assert_neq(h_stored_stop(rs, SIGTERM, 15000), -1);
	verify_ok(rs);
	client_close(cl);
	cr_assert_neq(h_stored_stop(sd, SIGTERM, 15000), -1);
	verify_ok(sd);
	h_stored_start(sd);
	h_client(cl, sd, 10000);
	cr_assert_eq(h_load_verify(load, cl), head + 1);
	client_close(cl);
}

/*
 * Under load, with archiving: back up to the same filesystem and to
 * another, start on each, compare, then let both stores take appends.
 */
static void
under_load(const char *other_base)
{
	const char *const extra[] = { "--segment-size", "16K",
		"--hot-segments", "0", "--archive-frame-size", "4K", NULL };
	struct h_stored sd, rs;
	struct ef_client cl, rcl;
	struct h_load load;
	struct bk b;
	char target[H_PATH + 16];
	const char *rdir;
	char *out = NULL, *err = NULL;
	uint64_t head;
	int rc;

	h_start_fresh(&sd, &cl, extra, 10000);
	h_load_running(&load, &sd, 4, 200, 3000, 60000);

	/* some segments archived for sure (the rest may be meanwhile) */
	rc = h_ctl_at(&sd, (const char *const[]){ "archive", NULL }, &out,
	    &err);
	cr_assert_eq(rc, 0, "archive: %d %s", rc, err);
	free(out);
	free(err);

	rdir = other_base ? h_tmpdir_in(other_base) : h_tmpdir();
	h_stored_init(&rs, rdir, NULL);
	/* rs.data_dir is where the backup goes: stored creates it */
	snprintf(target, sizeof(target), "%s", rs.data_dir);
	b = backup(&sd, target);
	cr_assert_geq(b.position, 3000);
	cr_assert_gt(b.segments, 2);
	if (other_base == NULL) {
		/* the hot segment is copied, everything else linked */
		cr_assert_eq(b.copied, 1, "copied %" PRIu64, b.copied);
		cr_assert_eq(b.linked, b.segments - 1);
	} else {
		cr_assert_eq(b.linked, 0);
		cr_assert_eq(b.copied, b.segments);
	}
	/* the load goes on past the backup */
	cr_assert_eq(h_load_wait_acked(&load,
	                 __atomic_load_n(&load.acked, __ATOMIC_RELAXED) + 500,
	                 60000),
	    0);
	h_load_stop(&load);
	head = h_load_verify(&load, &cl);
	cr_assert_gt(head, b.position);

	cr_assert_gt(count_zst(rs.data_dir), 0,
	    "no archived segment in "
	    "the backup");
	verify_ok(&rs);
	h_stored_start(&rs);
	h_client(&rcl, &rs, 10000);
	check_restored(&load, &cl, &rcl, b.position);

	both_take_appends(&load, &cl, &rcl, head, b.position);
	both_verify_after_a_restart(&sd, &rs, &load, &cl, &rcl, head);
	h_load_free(&load);
}

Test(backup, under_load_same_filesystem)
{
	under_load(NULL);
}

Test(backup, under_load_other_filesystem)
{
	struct stat a, b;

	if (stat("/dev/shm", &b) != 0 || stat(h_tmpdir(), &a) != 0 ||
	    a.st_dev == b.st_dev)
		cr_skip_test("no second filesystem at /dev/shm");
	under_load("/dev/shm");
}

/* An empty directory is taken; an empty log backs up to position 0. */
Test(backup, empty_log_into_empty_dir)
{
	struct h_stored sd, rs;
	struct ef_client rcl;
	struct bk b;

	h_stored_init(&sd, h_tmpdir(), NULL);
	h_stored_start(&sd);
	h_stored_init(&rs, h_tmpdir(), NULL);
	cr_assert_eq(mkdir(rs.data_dir, 0750), 0);
	b = backup(&sd, rs.data_dir);
	cr_assert_eq(b.position, 0);
	cr_assert_eq(b.segments, 1);
	h_stored_start(&rs);
	h_client(&rcl, &rs, 10000);
	cr_assert_eq(h_head(&rcl), 0);
	client_close(&rcl);
}

/* Refusals name the problem; nothing is left behind; stored serves. */
Test(backup, bad_targets)
{
	struct h_stored sd;
	struct ef_client cl;
	struct h_result res;
	char path[H_PATH + 64], ev[UUID_STR_LEN], st[UUID_STR_LEN];

	h_start_fresh(&sd, &cl, NULL, 10000);
	cr_assert_eq(h_append1(&cl, h_uuid(st), EF_EXPECT_ANY, 0, h_uuid(ev),
	                 "T", "{}", &res),
	    EF_S_OK);

	/* not empty (every target is in the store's temporary directory) */
	snprintf(path, sizeof(path), "%s/full", sd.dir);
	cr_assert_eq(mkdir(path, 0750), 0);
	snprintf(path, sizeof(path), "%s/full/x", sd.dir);
	cr_assert_eq(h_write_file(path, "x", 1), 0);
	snprintf(path, sizeof(path), "%s/full", sd.dir);
	free(h_ctl_fails(&sd, (const char *const[]){ "backup", path, NULL }, 3,
	    "exists and is not empty"));

	/* a file */
	snprintf(path, sizeof(path), "%s/full/x", sd.dir);
	free(h_ctl_fails(&sd, (const char *const[]){ "backup", path, NULL }, 3,
	    "not a directory"));

	/* a missing parent: refused before asking stored */
	snprintf(path, sizeof(path), "%s/no/such/dir", sd.dir);
	free(h_ctl_fails(&sd, (const char *const[]){ "backup", path, NULL }, 1,
	    "parent directory must exist"));

	/* no partial directory left next to the refused targets */
	{
		char cmd[H_PATH + 128];

		snprintf(cmd, sizeof(cmd), "ls %s | grep -q partial", sd.dir);
		cr_assert_neq(system(cmd), 0, "a .partial directory was left");
	}
	cr_assert_eq(h_head(&cl), 1);
	client_close(&cl);
}
