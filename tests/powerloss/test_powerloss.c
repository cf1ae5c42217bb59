/* SPDX-License-Identifier: MIT */
/*
 * test_powerloss.c - power cuts under a real eventfold-stored. stored
 * runs with its data directory on plfs (plfs.c: a FUSE filesystem that
 * forgets, on command, whatever was not fsynced), under an 8-client
 * append load that records every acknowledged event. At a random moment
 * stored is killed with SIGKILL (first, so that it cannot write after
 * the cut), then the power is cut: every write not covered by an fsync
 * or fdatasync of its file, and every directory change not covered by an
 * fsync of its directory, is lost (alternately all of it, "drop", or a
 * seeded random part of it, "torn"). Then, every cycle:
 *   - `eventfoldctl verify` passes on what the cut left;
 *   - stored starts (it must never refuse);
 *   - every acknowledged event is at its acknowledged position with its
 *     contents, positions are contiguous from 0, stream versions too, no
 *     event id appears twice (h_load_verify), and the log is at least as
 *     long as everything acknowledged before;
 *   - the appends left unanswered are retried with the same ids.
 * kill -9 alone (test_crash.c) cannot catch a missing fsync; this can:
 * remove the fdatasync from journal_append and it fails in the first
 * cycles. The cycles stop after PL_CYCLES or PL_BUDGET_MS, whichever is
 * first (EF_PL_CYCLES and EF_PL_SEED override the count and the seed, to
 * replay a failure; EF_PL_FSYNC_US the length of a flush).
 *
 * If this machine cannot mount FUSE (no /dev/fuse, no privilege), or
 * plfs was not built (no libfuse3-dev), the test is skipped and says
 * why. The data directory is created by the test and its parent
 * fsynced, as systemd's StateDirectory= would: stored's own mkdir of a
 * missing data directory is not made durable (its parent is never
 * fsynced), which is outside what this test is about.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

#define PL_THREADS   8
#define PL_PAD       300
#define PL_CYCLES    30
#define PL_BUDGET_MS 50000
/* a disk flush of 1 ms: most kills land inside one, so most cuts find an
 * unsynced batch to lose or tear (without it they almost never would) */
#define PL_FSYNC_US  1000

static struct h_stored s;
static struct h_load load;
static char mnt[H_PATH - 16]; /* so that mnt/data fits a data_dir */
static pid_t plfs_pid;

/* Stops stored, then plfs (which unmounts), then the harness cleanup. */
static void
pl_fini(void)
{
	if (s.pid > 0)
		(void)h_stored_stop(&s, SIGKILL, 10000);
	if (plfs_pid > 0) {
		kill(plfs_pid, SIGTERM);
		if (h_wait_pid(plfs_pid, 10000) == -1) {
			(void)umount2(mnt, MNT_DETACH);
			kill(plfs_pid, SIGKILL);
			(void)h_wait_pid(plfs_pid, 5000);
		}
		plfs_pid = 0;
	}
	h_cleanup();
}

TestSuite(powerloss, .fini = pl_fini, .timeout = 110);

/* The first line of what plfs said on stderr, for a skip message. */
static void
first_line(const char *path, char *buf, size_t cap)
{
	char *text = h_read_file(path, NULL);

	snprintf(buf, cap, "%s", text != NULL ? text : "(no output)");
	buf[strcspn(buf, "\n")] = '\0';
	free(text);
}

/*
 * Mounts plfs on dir/mnt, its stderr in dir/plfs.log. Skips the test if
 * FUSE is not usable here; fails it if plfs runs but never mounts.
 */
static void
plfs_start(const char *dir)
{
	const char *bin = getenv("EF_PLFS");
	char log[H_PATH + 16], ctl[H_PATH + 16], why[256];
	uint64_t deadline;
	struct stat sb;
	int fd, st;

	if (bin == NULL || *bin == '\0') {
		fprintf(stderr, "# skip: plfs was not built (libfuse3-dev "
		    "missing when meson configured)\n");
		cr_skip_test("plfs not built (no libfuse3-dev)");
	}
	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		fprintf(stderr, "# skip: /dev/fuse: %s\n", strerror(errno));
		cr_skip_test("no usable /dev/fuse: %s", strerror(errno));
	}
	cr_assert_lt(strlen(dir) + 4, sizeof(mnt), "%s: too long", dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(log, sizeof(log), "%s/plfs.log", dir);
	snprintf(ctl, sizeof(ctl), "%s/.plfs", mnt);
	cr_assert_eq(mkdir(mnt, 0755), 0, "mkdir %s: %s", mnt,
	    strerror(errno));
	if ((fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) < 0)
		cr_assert_fail("open %s: %s", log, strerror(errno));
	if ((plfs_pid = fork()) == 0) {
		/* SIGTERM makes libfuse unmount on the way out */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, "plfs", mnt, (char *)NULL);
		_exit(127);
	}
	close(fd);
	cr_assert_gt(plfs_pid, 0, "fork: %s", strerror(errno));
	deadline = h_now_ms() + 10000;
	while (stat(ctl, &sb) != 0) {
		if (waitpid(plfs_pid, &st, WNOHANG) == plfs_pid) {
			plfs_pid = 0;
			first_line(log, why, sizeof(why));
			if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
				fprintf(stderr, "# skip: FUSE cannot mount "
				    "here: %s\n", why);
				cr_skip_test("FUSE cannot mount here: %s", why);
			}
			cr_assert_fail("plfs exited (status 0x%x): %s", st,
			    why);
		}
		cr_assert_lt(h_now_ms(), deadline, "plfs did not mount %s",
		    mnt);
		h_sleep_ms(10);
	}
}

/* Writes one command to plfs's control file. */
static void
plfs_command(const char *cmd)
{
	char ctl[H_PATH + 16];
	size_t len = strlen(cmd);
	int fd;

	snprintf(ctl, sizeof(ctl), "%s/.plfs", mnt);
	fd = open(ctl, O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s: %s", ctl, strerror(errno));
	cr_assert_eq(write(fd, cmd, len), (ssize_t)len, "plfs: %s: %s", cmd,
	    strerror(errno));
	close(fd);
}

/* One counter from plfs's control file. */
static uint64_t
plfs_stat(const char *name)
{
	char ctl[H_PATH + 16], key[64], *text, *p;
	unsigned long long v = 0;

	snprintf(ctl, sizeof(ctl), "%s/.plfs", mnt);
	text = h_read_file(ctl, NULL);
	cr_assert_not_null(text, "cannot read %s", ctl);
	snprintf(key, sizeof(key), "%s ", name);
	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, key, strlen(key)) == 0) {
			v = strtoull(p + strlen(key), NULL, 10);
			break;
		}
	}
	free(text);
	return v;
}

/* Creates mnt/data and makes its entry durable. */
static void
make_data_dir(const char *path)
{
	int fd;

	cr_assert_eq(mkdir(path, 0750), 0, "mkdir %s: %s", path,
	    strerror(errno));
	fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fsync(fd), 0, "fsync %s: %s", mnt, strerror(errno));
	close(fd);
}

/* Does this stored take --segment-size? (Not before the segment work.) */
static bool
stored_has_segments(void)
{
	char cmd[H_PATH * 2], line[512];
	const char *bin = getenv("EF_STORED");
	bool found = false;
	FILE *f;

	cr_assert(bin != NULL, "EF_STORED is not set (run through meson)");
	snprintf(cmd, sizeof(cmd), "'%s' --help 2>&1", bin);
	if ((f = popen(cmd, "r")) == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "--segment-size") != NULL)
			found = true;
	pclose(f);
	return found;
}

/* `eventfoldctl verify` on what is on the disk now: must pass. */
static void
verify_offline(int cycle)
{
	char *out = NULL, *err = NULL;
	int rc;

	rc = h_ctl(s.dir, (const char *const[]){ "--data-dir", s.data_dir,
	    "verify", NULL }, NULL, 0, 30000, &out, &err);
	cr_assert_eq(rc, 0, "cycle %d: eventfoldctl verify exits %d after "
	    "the power cut:\n%s%s", cycle, rc, out ? out : "", err ? err : "");
	free(out);
	free(err);
}

static unsigned
env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

Test(powerloss, cut_power_under_append_load)
{
	static const char *const seg[] = { "--segment-size", "65536", NULL };
	const char *dir = h_tmpdir();
	unsigned cycles = env_uint("EF_PL_CYCLES", PL_CYCLES);
	unsigned seed = env_uint("EF_PL_SEED", (unsigned)time(NULL));
	uint64_t start = h_now_ms(), head = 0, n, acked, lost = 0, hit = 0;
	struct ef_client c;
	char cmd[64];
	unsigned cycle, wait_ms;
	int st;

	plfs_start(dir);
	h_stored_init(&s, dir, stored_has_segments() ? seg : NULL);
	snprintf(s.data_dir, sizeof(s.data_dir), "%s/data", mnt);
	make_data_dir(s.data_dir);
	snprintf(cmd, sizeof(cmd), "fsync_delay_us %u\n",
	    env_uint("EF_PL_FSYNC_US", PL_FSYNC_US));
	plfs_command(cmd);
	h_load_init(&load, &s, PL_THREADS, PL_PAD);
	srand(seed);
	fprintf(stderr, "# seed %u (EF_PL_SEED to replay), up to %u cycles, "
	    "segments %s\n", seed, cycles, s.extra[0] ? "65536 B" : "no");
	for (cycle = 0;; cycle++) {
		h_stored_start(&s);
		h_client(&c, &s, 10000);
		n = h_load_verify(&load, &c);
		cr_assert_geq(n, head, "cycle %u: the log shrank from %llu to "
		    "%llu events: acknowledged events were lost", cycle,
		    (unsigned long long)head, (unsigned long long)n);
		h_load_retry_pending(&load, &c);
		head = h_head(&c);
		if (cycle == cycles || (cycle >= 10 &&
		    h_now_ms() - start > PL_BUDGET_MS))
			break;

		acked = __atomic_load_n(&load.acked, __ATOMIC_RELAXED);
		h_load_start(&load);
		cr_assert_eq(h_load_wait_acked(&load, acked + 50, 30000), 0,
		    "cycle %u: the load does not get going", cycle);
		wait_ms = 10 + (unsigned)rand() % 400;
		h_sleep_ms((int)wait_ms);
		st = h_stored_stop(&s, SIGKILL, 10000);
		cr_assert(st != -1 && WIFSIGNALED(st) &&
		    WTERMSIG(st) == SIGKILL, "cycle %u: wait status 0x%x",
		    cycle, st);
		client_close(&c);
		h_load_stop(&load);
		/* stored is gone: nothing can be written after the cut */
		if (cycle % 2 == 0)
			snprintf(cmd, sizeof(cmd), "cut drop\n");
		else
			snprintf(cmd, sizeof(cmd), "cut torn %u\n",
			    (unsigned)rand());
		plfs_command(cmd);
		n = plfs_stat("last_lost_pages") + plfs_stat("last_kept_pages");
		lost += plfs_stat("last_lost_pages");
		hit += n > 0;
		cr_assert_gt(plfs_stat("fsyncs"), 0, "stored's fsyncs do not "
		    "reach plfs: is the data directory on it?");
		verify_offline((int)cycle);
		fprintf(stderr, "# cycle %u: cut after %u ms (%.*s): %llu "
		    "events acknowledged so far, %llu unsynced pages lost, "
		    "%llu kept\n", cycle, wait_ms, (int)strcspn(cmd, "\n"),
		    cmd, (unsigned long long)__atomic_load_n(&load.acked,
		    __ATOMIC_RELAXED),
		    (unsigned long long)plfs_stat("last_lost_pages"),
		    (unsigned long long)plfs_stat("last_kept_pages"));
	}
	/* a test whose cuts never find anything unsynced tests nothing */
	cr_assert_gt(hit, 0, "no power cut in %u landed on unsynced data",
	    cycle);
	n = h_load_verify(&load, &c);
	client_close(&c);
	st = h_stored_stop(&s, SIGTERM, 10000);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "SIGTERM: wait status 0x%x", st);
	verify_offline((int)cycle);
	fprintf(stderr, "# %u power cuts in %llu ms: %llu events in the log, "
	    "%llu cuts found unsynced data, %llu pages of it dropped in all; "
	    "plfs saw %llu writes, %llu fsyncs (%llu cut short by the kill), "
	    "%llu directory fsyncs\n", cycle,
	    (unsigned long long)(h_now_ms() - start), (unsigned long long)n,
	    (unsigned long long)hit, (unsigned long long)lost,
	    (unsigned long long)plfs_stat("writes"),
	    (unsigned long long)plfs_stat("fsyncs"),
	    (unsigned long long)plfs_stat("killed_syncs"),
	    (unsigned long long)plfs_stat("dirsyncs"));
	h_load_free(&load);
}
