/* SPDX-License-Identifier: MIT */
/*
 * test_diskfull.c - runnerd's LMDB environment on a full disk: its
 * directory (DATA_DIR/runner, a link) on an 8 MiB tmpfs mounted by the
 * test, beside a 6 MiB ballast file. The "bulky" projection (8 KiB per
 * event) fills it: the projection must pause (no error, no stop, runnerd
 * alive, the full disk logged), an EXECUTE meanwhile still answers, and
 * once the ballast is deleted the projection reaches the head with every
 * value intact and the command's result is committed, with no restart.
 * Meanwhile runnerd keeps pinging the watchdog (a fake NOTIFY_SOCKET):
 * waiting for space is not being wedged, and systemd must not restart
 * it for that.
 *
 * Mounting needs root: otherwise the test is skipped, saying so.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rharness.h"

static struct rh h;
static char mnt[RH_PATH + 16];
static int mounted;

/* Also after a failed assertion: runnerd holds files on the mount. */
static void
down(void)
{
	if (!mounted)
		return;
	if (h.runnerd > 0)
		rh_kill_runnerd(&h, SIGKILL);
	if (umount2(mnt, 0) != 0 && umount2(mnt, MNT_DETACH) != 0)
		fprintf(stderr, "umount %s: %s\n", mnt, strerror(errno));
	mounted = 0;
}

TestSuite(diskfull, .timeout = 180, .fini = down);

/* WATCHDOG=1 datagrams waiting on fd. */
static int
pings(int fd)
{
	char buf[512];
	ssize_t n;
	int count = 0;

	while ((n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) >= 0) {
		buf[n] = '\0';
		if (strstr(buf, "WATCHDOG=1") != NULL)
			count++;
	}
	return count;
}

/* A tmpfs of 8 MiB at h.dir/small holding 6 MiB of ballast (its path
 * into ballast), and runnerd's state directory on it; skips the test
 * where no tmpfs can be mounted. */
static void
small_disk(char *ballast, size_t len)
{
	char link[RH_PATH + 32], target[RH_PATH + 32];
	FILE *fp;
	int k;

	snprintf(mnt, sizeof(mnt), "%s/small", h.dir);
	cr_assert_eq(mkdir(mnt, 0755), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m,mode=0755") != 0)
		cr_skip_test(
		    "cannot mount a tmpfs at %s (%s): no full disk to "
		    "test",
		    mnt, strerror(errno));
	mounted = 1;
	snprintf(ballast, len, "%s/ballast", mnt);
	cr_assert((fp = fopen(ballast, "w")) != NULL);
	for (k = 0; k < 6 * 1024; k++)
		cr_assert_eq(fwrite(h.dir, 1, 1024, fp), 1024);
	cr_assert_eq(fclose(fp), 0);
	rh_start_stored(&h);
	snprintf(target, sizeof(target), "%s/runner", mnt);
	cr_assert_eq(mkdir(target, 0750), 0);
	snprintf(link, sizeof(link), "%s/runner", h.data);
	cr_assert_eq(symlink(target, link), 0, "%s: %s", link,
	    strerror(errno));
}

/* Starts runnerd with a notify socket and a 400 ms watchdog; the
 * socket, to count its WATCHDOG=1 pings. */
static int
start_watched_runnerd(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int nfd;

	cr_assert_lt(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify",
	                 h.dir),
	    (int)sizeof(sa.sun_path));
	cr_assert((nfd = socket(AF_UNIX, SOCK_DGRAM, 0)) >= 0);
	cr_assert_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	setenv("WATCHDOG_USEC", "400000", 1);
	rh_start_runnerd(&h);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	return nfd;
}

/* With the disk full, bulky waits below head without an error; commands
 * still answer (the first reply into rep), their results waiting for
 * space, and the watchdog goes on (pings on nfd). */
static void
waits_while_full(uint64_t head, struct ipc_exec_rep *rep, int nfd)
{
	struct ipc_exec_rep again;
	char msg[1024];
	int waited;

	for (waited = 0; waited < 30000 &&
	     !rh_log_contains(h.runnerd_log, "the disk is full, retrying");
	     waited += 50)
		rh_ms(50);
	cr_assert(rh_log_contains(h.runnerd_log,
	              "the disk is full, "
	              "retrying"),
	    "the disk never filled");
	cr_assert_lt(rh_fold_ok(&h, "bulky"), head);
	cr_assert_eq(rh_exec(&h, "slow", "s-1", "Inc", NULL, "full-1", rep,
	                 msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	rh_ms(300);
	cr_assert_eq(rh_exec(&h, "slow", "s-1", "Inc", NULL, "full-2", &again,
	                 msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	rh_ms(500);
	(void)pings(nfd);
	rh_ms(1500);
	cr_assert_geq(pings(nfd), 3,
	    "no WATCHDOG=1 while waiting for disk "
	    "space: systemd would restart runnerd");
	rh_fold_ok(&h, "bulky");
	cr_assert_eq(kill(h.runnerd, 0), 0, "runnerd died");
}

/* Once there is space, bulky resumes past head with every value. */
static void
resumes_with_space(uint64_t head)
{
	char key[32], *val;
	uint64_t p;

	cr_assert(rh_wait_fold(&h, "bulky", head + 2, 60000),
	    "bulky did not "
	    "resume once there was space");
	rh_fold_ok(&h, "bulky");
	for (p = 0; p < 300; p += 29) {
		snprintf(key, sizeof(key), "b-%08llu", (unsigned long long)p);
		cr_assert_eq(rh_get(&h, "bulky", key, &val), EF_S_OK, "%s",
		    key);
		cr_assert_eq(strlen(val), 8192);
		cr_assert_eq(val[0], 'a' + (int)(p % 26));
		free(val);
	}
}

Test(diskfull, projection_pauses_and_resumes)
{
	static const char *const plugins[] = { "testplug.so", NULL };
	struct ipc_exec_rep rep, again;
	char ballast[RH_PATH + 32], msg[1024];
	uint8_t sid[UUID_LEN];
	uint64_t head;
	int k, nfd;

	if (geteuid() != 0)
		cr_skip_test("mounting a small tmpfs needs root; run the "
		             "runner suite as root to test a full disk");
	rh_init(&h, plugins);
	small_disk(ballast, sizeof(ballast));
	nfd = start_watched_runnerd();

	rh_stream_id(sid, 0x51);
	for (k = 0; k < 3; k++)
		cr_assert_eq(rh_append_batch(&h, sid, 100, rh_numbered,
		                 "Bulky"),
		    EF_S_OK);
	head = rh_head(&h);
	cr_assert_eq(head, 300);
	waits_while_full(head, &rep, nfd);

	cr_assert_eq(unlink(ballast), 0);
	resumes_with_space(head);
	/* the result was committed by the writer, not lost and found
	 * again in the log after the restart */
	rh_kill_runnerd(&h, SIGTERM);
	rh_start_runnerd(&h);
	cr_assert_eq(rh_exec(&h, "slow", "s-1", "Inc", NULL, "full-1", &again,
	                 msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	cr_assert(again.duplicate);
	cr_assert_eq(again.version, rep.version);
	cr_assert(!rh_log_contains(h.runnerd_log,
	              "command full-1: result "
	              "recovered"),
	    "the result was lost on the full disk");
	cr_assert(rh_wait_fold(&h, "bulky", head + 2, 60000));
	rh_kill_runnerd(&h, SIGTERM);
	close(nfd);
	down();
	rh_stop(&h);
}
