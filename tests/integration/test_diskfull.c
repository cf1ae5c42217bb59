/* SPDX-License-Identifier: MIT */
/*
 * test_diskfull.c - eventfold-stored on a full disk: its data directory
 * on a 6 MiB tmpfs mounted by the test, beside a 1 MiB ballast file.
 * Appends of ~60 KB events go on until one is refused: it must be
 * RESOURCE_EXHAUSTED (not INTERNAL, not a crash), every later one too,
 * with the head unchanged; reads keep serving every stored event; once
 * the ballast is deleted the same process accepts appends again; and
 * after a restart the log holds exactly the acknowledged events, with
 * no torn tail to cut and `eventfoldctl verify` passing.
 *
 * Mounting needs root (CAP_SYS_ADMIN): otherwise the test is skipped,
 * saying so.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

#define PAYLOAD 60000

static char mnt[H_PATH];
static int mounted;

static void
down(void)
{
	h_cleanup();
	if (mounted && umount2(mnt, MNT_DETACH) != 0)
		fprintf(stderr, "umount %s: %s\n", mnt, strerror(errno));
	mounted = 0;
	if (mnt[0] != '\0')
		rmdir(mnt);
}

TestSuite(diskfull, .timeout = 120, .fini = down);

static int
append_big(struct ef_client *c, const char *stream, const char *payload,
    struct h_result *res)
{
	char id[UUID_STR_LEN];
	uint8_t u[UUID_LEN];

	uuid_random(u);
	return h_append1(c, stream, EF_EXPECT_ANY, 0, uuid_format(u, id),
	    "Big", payload, res);
}

/* A 6 MiB tmpfs at mnt holding 1 MiB of ballast (its path into
 * ballast); skips the test where no tmpfs can be mounted. */
static void
small_disk(char *ballast, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	FILE *f;
	int k;

	snprintf(mnt, sizeof(mnt), "%s/ef-diskfull.XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	cr_assert(mkdtemp(mnt) != NULL, "mkdtemp: %s", strerror(errno));
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=6m,mode=0755") != 0)
		cr_skip_test(
		    "cannot mount a tmpfs at %s (%s): no full disk to "
		    "test",
		    mnt, strerror(errno));
	mounted = 1;
	snprintf(ballast, len, "%s/ballast", mnt);
	cr_assert((f = fopen(ballast, "w")) != NULL);
	for (k = 0; k < 1024; k++)
		cr_assert_eq(fwrite(mnt, 1, 1024, f), 1024);
	cr_assert_eq(fclose(f), 0);
}

/* Appends of payload to stream until the disk is full: refused with
 * RESOURCE_EXHAUSTED naming ENOSPC, then five more; the head stays at
 * the appends acknowledged, which are returned. */
static uint64_t
fill_the_disk(struct ef_client *c, const char *stream, const char *payload)
{
	struct h_result res;
	uint64_t ok = 0, head;
	int k;

	while (ok < 1000 && append_big(c, stream, payload, &res) == EF_S_OK)
		ok++;
	cr_assert_eq(res.status, EF_S_RESOURCE_EXHAUSTED,
	    "append %llu: "
	    "%s: %s",
	    (unsigned long long)ok, ipc_status_name(res.status), res.msg);
	cr_assert(strstr(res.msg, strerror(ENOSPC)) != NULL, "%s", res.msg);
	cr_assert_gt(ok, 10, "the disk was full from the start");
	cr_assert_lt(ok, 1000, "the disk never filled");
	for (k = 0; k < 5; k++) {
		cr_assert_eq(append_big(c, stream, payload, &res),
		    EF_S_RESOURCE_EXHAUSTED, "%s", res.msg);
	}
	head = h_head(c);
	cr_assert_eq(head, ok, "head %llu after %llu acknowledged appends",
	    (unsigned long long)head, (unsigned long long)ok);
	return ok;
}

/* Reads keep serving the ok events of stream, every event whole. */
static void
reads_serve(struct ef_client *c, const char *stream, uint64_t ok)
{
	struct h_event *evs;
	size_t n, i;

	cr_assert_eq(h_read_all(c, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, ok);
	for (i = 0; i < n; i++) {
		cr_assert_eq(evs[i].pos, i);
		cr_assert_eq(evs[i].payload_len, PAYLOAD);
	}
	h_events_free(evs, n);
	cr_assert_eq(h_read_stream(c, stream, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, ok);
	h_events_free(evs, n);
}

Test(diskfull, refused_then_accepted_again_without_restart)
{
	struct h_stored s;
	struct ef_client c;
	struct h_result res;
	char ballast[H_PATH + 16], stream[UUID_STR_LEN], *payload, *log;
	uint8_t sid[UUID_LEN];
	uint64_t ok;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("mounting a small tmpfs needs root; run the "
		             "integration suite as root to test a full disk");
	small_disk(ballast, sizeof(ballast));
	h_stored_init(&s, h_tmpdir_in(mnt), NULL);
	h_stored_start(&s);
	pid = s.pid;
	h_client(&c, &s, 10000);
	uuid_random(sid);
	uuid_format(sid, stream);
	cr_assert((payload = malloc(PAYLOAD + 1)) != NULL);
	memset(payload, 'p', PAYLOAD);
	payload[PAYLOAD] = '\0';

	ok = fill_the_disk(&c, stream, payload);
	reads_serve(&c, stream, ok);

	/* space again: the same process accepts appends */
	cr_assert_eq(unlink(ballast), 0);
	cr_assert_eq(append_big(&c, stream, payload, &res), EF_S_OK,
	    "after freeing space: %s: %s", ipc_status_name(res.status),
	    res.msg);
	cr_assert_eq(res.rep.first_pos, ok);
	cr_assert_eq(s.pid, pid);
	cr_assert_eq(kill(pid, 0), 0, "stored is gone");
	cr_assert_eq(h_head(&c), ok + 1);

	/* nothing torn: a restart finds exactly what was acknowledged */
	h_stored_stop_ok(&s, &c, SIGTERM);
	h_stored_start(&s);
	h_client(&c, &s, 10000);
	cr_assert_eq(h_head(&c), ok + 1);
	log = h_read_file(s.log, NULL);
	cr_assert(log != NULL);
	cr_assert(strstr(log, "torn tail") == NULL, "%s", log);
	free(log);
	h_verify_ok(&s, ok + 1);
	h_stored_stop_ok(&s, &c, SIGTERM);
	free(payload);
}
