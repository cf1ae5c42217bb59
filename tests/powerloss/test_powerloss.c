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
 * Before the first start and every fourth cycle, a second cut lands
 * while stored starts (creating the log, or cutting a torn tail).
 * A last load without a cut is read back from the running stored, whose
 * read-only mapping predates it: mmap reads see what pwrite wrote.
 * kill -9 alone (test_crash.c) cannot catch a missing fsync; this can:
 * remove the fdatasync from journal_append and it fails in the first
 * cycles. The cycles stop after PL_CYCLES or PL_BUDGET_MS, whichever is
 * first (EF_PL_CYCLES and EF_PL_SEED override the count and the seed, to
 * replay a failure; EF_PL_FSYNC_US the length of a flush).
 *
 * A first, quick test checks plfs's own rules (a power-loss test on a
 * filesystem that forgets nothing would pass anything).
 *
 * If this machine cannot mount FUSE (no /dev/fuse, no privilege), or
 * plfs was not built (no libfuse3-dev), the test is skipped and says
 * why. stored creates the data directory itself, on the test
 * filesystem: its entry must be made durable before any event is
 * acknowledged in it (it was not, until this test found it).
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "plharness.h"

#define PL_THREADS   8
#define PL_PAD       300
#define PL_CYCLES    30
#define PL_BUDGET_MS 50000
/* a disk flush of 1 ms: many kills land inside one, so about half the
 * cuts find an unsynced batch to lose or tear (with no delay almost none
 * would, and the test would only ever cut between batches) */
#define PL_FSYNC_US 1000
/* longer than a client's longest wait between two dials (client.c) */
#define PL_RECONNECT_MS 400

static struct h_stored s;
static struct h_load load;
static const char *mnt; /* plfs's mount point */

/* Stops stored, then plfs (which unmounts), then the harness cleanup. */
static void
fini(void)
{
	if (s.pid > 0)
		(void)h_stored_stop(&s, SIGKILL, 10000);
	pl_unmount();
	h_cleanup();
}

TestSuite(powerloss, .fini = fini, .timeout = 110);

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

/*
 * `eventfoldctl verify` on what is on the disk now: must pass. With
 * may_be_empty (nothing acknowledged yet), a log that does not exist yet
 * (its creation was cut short) is fine too.
 */
static void
verify_offline(int cycle, bool may_be_empty)
{
	char *out = NULL, *err = NULL;
	int rc;

	rc = h_ctl(s.dir,
	    (const char *const[]){ "--data-dir", s.data_dir, "verify", NULL },
	    NULL, 0, 30000, &out, &err);
	if (may_be_empty && rc == 4) /* CTL_NOT_FOUND */
		rc = 0;
	cr_assert_eq(rc, 0,
	    "cycle %d: eventfoldctl verify exits %d after "
	    "the power cut:\n%s%s",
	    cycle, rc, out ? out : "", err ? err : "");
	free(out);
	free(err);
}

/* Small file helpers for the semantics test (fail the test on error). */
static int
file_open(const char *rel, int flags)
{
	char path[H_PATH + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", mnt, rel);
	fd = open(path, flags | O_CLOEXEC, 0640);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	return fd;
}

static void
file_put(int fd, const char *text, off_t off)
{
	size_t len = strlen(text);

	cr_assert_eq(pwrite(fd, text, len, off), (ssize_t)len, "pwrite: %s",
	    strerror(errno));
}

static void
dir_sync(const char *rel)
{
	int fd = file_open(rel, O_RDONLY | O_DIRECTORY);

	cr_assert_eq(fsync(fd), 0, "fsync %s: %s", rel, strerror(errno));
	close(fd);
}

/* The contents of mnt/rel, or NULL if it does not exist. */
static char *
file_get(const char *rel)
{
	char path[H_PATH + 64];

	snprintf(path, sizeof(path), "%s/%s", mnt, rel);
	return h_read_file(path, NULL);
}

static void
expect(const char *rel, const char *want)
{
	char *got = file_get(rel);

	if (want == NULL)
		cr_assert_null(got, "%s exists (\"%s\"), should not", rel,
		    got);
	else {
		cr_assert_not_null(got, "%s is missing", rel);
		cr_assert_str_eq(got, want, "%s", rel);
	}
	free(got);
}

/* mnt/rel, in a static buffer (one at a time). */
static const char *
mnt_path(const char *rel)
{
	static char path[2][H_PATH + 64];
	static int which;

	which = !which;
	snprintf(path[which], sizeof(path[which]), "%s/%s", mnt, rel);
	return path[which];
}

/* A file with contents and entry both durable. */
static void
make_file(const char *rel, const char *text)
{
	int fd = file_open(rel, O_RDWR | O_CREAT | O_TRUNC);
	char dir[H_PATH];

	file_put(fd, text, 0);
	cr_assert_eq(fsync(fd), 0);
	close(fd);
	snprintf(dir, sizeof(dir), "%s", rel);
	*strrchr(dir, '/') = '\0';
	dir_sync(dir);
}

/*
 * plfs's own rules, checked on their own (a power-loss test on a
 * filesystem that forgets nothing would pass anything).
 */
/* A cut keeps data only where fdatasync covered it (also as seen
 * through a mapping made before), entries only where a directory fsync
 * covered them. */
static void
cut_drops_what_was_not_synced(void)
{
	char *map;
	int fd;

	/* data: only what fdatasync covered survives */
	fd = file_open("d/a", O_RDWR | O_CREAT);
	file_put(fd, "one", 0);
	cr_assert_eq(fdatasync(fd), 0);
	dir_sync("d");
	map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(map, MAP_FAILED, "mmap: %s", strerror(errno));
	file_put(fd, " two", 3);
	cr_assert_eq(memcmp(map, "one two", 7), 0,
	    "mmap does not see the "
	    "pwrite");
	close(fd);
	/* entries: only what a directory fsync covered survives */
	make_file("d/tmp", "t");
	make_file("d/renamed", "r");
	make_file("d/unlinked", "u");
	cr_assert_eq(rename(mnt_path("d/tmp"), mnt_path("d/final")), 0);
	dir_sync("d");
	/* from here on, nothing in d is fsynced */
	fd = file_open("d/new", O_RDWR | O_CREAT);
	file_put(fd, "synced, but its entry is not", 0);
	cr_assert_eq(fsync(fd), 0);
	close(fd);
	cr_assert_eq(rename(mnt_path("d/renamed"), mnt_path("d/renamed2")), 0);
	cr_assert_eq(unlink(mnt_path("d/unlinked")), 0);
	cr_assert_eq(rename(mnt_path("d/final"), mnt_path("d/final2")), 0);

	pl_command("cut drop\n");
	expect("d/a", "one"); /* through the open: stale pages dropped */
	cr_assert_eq(memcmp(map, "one\0", 4), 0,
	    "a mapping made before the "
	    "cut still shows dropped data");
	munmap(map, 4096);
	expect("d/new", NULL);
	expect("d/renamed", "r");
	expect("d/renamed2", NULL);
	expect("d/unlinked", "u");
	expect("d/tmp", NULL);
	expect("d/final", "t");
	expect("d/final2", NULL);
}

/* A torn cut keeps each unsynced page old or new, whole, and the size
 * old or new; over 24 seeds, some of each. */
static void
torn_cuts_keep_pages_whole(void)
{
	char *img;
	size_t len, i;
	int fd, seed, kept[3] = { 0, 0, 0 }, grew = 0;

	for (seed = 1; seed <= 24; seed++) {
		char fill[3][4097];

		memset(fill, 0, sizeof(fill));
		memset(fill[0], 'A', 4096);
		memset(fill[1], 'B', 4096);
		memset(fill[2], 'C', 4096);
		fd = file_open("d/x", O_RDWR | O_CREAT | O_TRUNC);
		file_put(fd, fill[0], 0);
		file_put(fd, fill[0], 4096);
		cr_assert_eq(fsync(fd), 0);
		if (seed == 1)
			dir_sync("d");
		file_put(fd, fill[1], 0);
		file_put(fd, fill[1], 4096);
		file_put(fd, fill[2], 8192);
		close(fd);
		snprintf(fill[0], sizeof(fill[0]), "cut torn %d\n", seed);
		pl_command(fill[0]);
		img = h_read_file(mnt_path("d/x"), &len);
		cr_assert(len == 8192 || len == 12288, "torn size %zu", len);
		for (i = 0; i < len; i += 4096) {
			char was = i < 8192 ? 'A' : '\0',
			     now = "BBC"[i / 4096];
			size_t k;

			for (k = 1; k < 4096; k++)
				cr_assert_eq(img[i + k], img[i],
				    "page %zu is "
				    "mixed: a page is kept or lost whole",
				    i / 4096);
			cr_assert(img[i] == was || img[i] == now,
			    "page %zu "
			    "holds '%c'",
			    i / 4096, img[i]);
			kept[i / 4096] += img[i] == now;
		}
		grew += len == 12288;
		free(img);
	}
	cr_assert(kept[0] > 0 && kept[0] < 24 && kept[1] > 0 && kept[1] < 24,
	    "torn cuts should keep some unsynced pages and lose others "
	    "(%d, %d of 24 kept)",
	    kept[0], kept[1]);
	cr_assert(grew > 0 && grew < 24,
	    "torn cuts should keep the new "
	    "size sometimes (%d of 24)",
	    grew);
}

/* O_DSYNC writes are durable (the kernel fsyncs after each); d/a is
 * "one" again after. */
static void
dsync_writes_are_durable(void)
{
	int fd;

	fd = file_open("d/a", O_RDWR | O_DSYNC);
	file_put(fd, "two", 0);
	close(fd);
	pl_command("cut drop\n");
	expect("d/a", "two");
	make_file("d/a", "one");
}

/* A flush the power cut interrupts never happens; one that ends does. */
static void
interrupted_flush_never_happens(void)
{
	int fd, seed;

	pl_command("fsync_delay_us 300000\n");
	for (seed = 0; seed < 2; seed++) {
		pid_t pid;
		int st;

		fd = file_open("d/a", O_RDWR);
		file_put(fd, seed ? "ONE" : "uno", 0);
		if ((pid = fork()) == 0)
			_exit(fsync(fd) == 0 ? 0 : 1);
		cr_assert_gt(pid, 0);
		h_sleep_ms(100);
		if (seed == 0)
			kill(pid, SIGKILL);
		st = h_wait_pid(pid, 5000);
		cr_assert(seed ? WIFEXITED(st) && WEXITSTATUS(st) == 0 :
		                 WIFSIGNALED(st),
		    "fsync child: status 0x%x", st);
		close(fd);
		pl_command("cut drop\n");
		expect("d/a", seed ? "ONE" : "one");
	}
}

Test(powerloss, plfs_forgets_what_was_not_synced)
{
	mnt = pl_mount(h_tmpdir());
	cr_assert_eq(mkdir(mnt_path("d"), 0750), 0);
	dir_sync(".");
	cut_drops_what_was_not_synced();
	torn_cuts_keep_pages_whole();
	dsync_writes_are_durable();
	interrupted_flush_never_happens();
}

/*
 * A second power cut while stored starts up (creating its files, or
 * cutting a torn tail): start it, kill it after 0..ms_max ms, cut (torn).
 * It may be ready or not by then; it must not have exited by itself.
 */
static void
cut_during_start(unsigned cycle, unsigned ms_max)
{
	char cmd[64];
	int st;

	h_stored_spawn(&s);
	h_sleep_ms((int)((unsigned)rand() % (ms_max + 1)));
	st = h_stored_stop(&s, SIGKILL, 10000);
	cr_assert(st != -1 && WIFSIGNALED(st),
	    "cycle %u: stored exited "
	    "while starting (wait status 0x%x); see %s",
	    cycle, st, s.log);
	snprintf(cmd, sizeof(cmd), "cut torn %u\n", (unsigned)rand());
	pl_command(cmd);
	verify_offline((int)cycle,
	    __atomic_load_n(&load.acked, __ATOMIC_RELAXED) == 0);
}

static unsigned
env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

/*
 * One power cut: load on stored s, which is killed after 10..409 ms, then
 * the cut (drop or torn, in turn), an offline verify, sometimes a cut
 * while starting, and a restart (c is closed). *cut_lost: the unsynced
 * pages the cut dropped. Whether it landed on unsynced data.
 */
static bool
cut_power(unsigned cycle, struct ef_client *c, uint64_t start,
    uint64_t *cut_lost)
{
	uint64_t acked, cut_kept;
	unsigned wait_ms;
	char cmd[64];
	int st;

	acked = __atomic_load_n(&load.acked, __ATOMIC_RELAXED);
	h_load_start(&load);
	cr_assert_eq(h_load_wait_acked(&load, acked + 50, 30000), 0,
	    "cycle %u: the load does not get going", cycle);
	wait_ms = 10 + (unsigned)rand() % 400;
	h_sleep_ms((int)wait_ms);
	st = h_stored_stop(&s, SIGKILL, 10000);
	cr_assert(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "cycle %u: wait status 0x%x", cycle, st);
	client_close(c);
	/* stored is gone: nothing can be written after the cut */
	if (cycle % 2 == 0)
		snprintf(cmd, sizeof(cmd), "cut drop\n");
	else
		snprintf(cmd, sizeof(cmd), "cut torn %u\n", (unsigned)rand());
	pl_command(cmd);
	*cut_lost = pl_stat("last_lost_pages");
	cut_kept = pl_stat("last_kept_pages");
	cr_assert_gt(pl_stat("fsyncs"), 0,
	    "stored's fsyncs do not "
	    "reach plfs: is the data directory on it?");
	verify_offline((int)cycle, false);
	if (cycle % 4 == 3)
		cut_during_start(cycle, 20);
	/*
	 * Restart before the load stops: an append that was waiting
	 * for a connection when stored died goes to the new one
	 * rather than waiting out its 20 s deadline (what the new
	 * stored acknowledges is checked like the rest). Then give
	 * every load client time to reconnect (they retry at least
	 * every 200 ms): one closed in the middle of its handshake
	 * would wedge stored's listener (nng 1.5, see harness.c).
	 */
	h_stored_start(&s);
	h_sleep_ms(PL_RECONNECT_MS);
	h_load_stop(&load);
	fprintf(stderr,
	    "# cycle %u at %llu ms: %s after %u ms of "
	    "load: %llu unsynced pages lost, %llu kept; %llu events "
	    "acknowledged so far\n",
	    cycle, (unsigned long long)(h_now_ms() - start),
	    cycle % 2 ? "cut torn" : "cut drop", wait_ms,
	    (unsigned long long)*cut_lost, (unsigned long long)cut_kept,
	    (unsigned long long)__atomic_load_n(&load.acked,
	        __ATOMIC_RELAXED));
	return *cut_lost + cut_kept > 0;
}

/* One more load with no cut, read back through the mapping stored
 * made before it: its pwrites through plfs and its mmap reads agree;
 * then a clean stop (c is closed). The events in the log. */
static uint64_t
last_load_without_a_cut(struct ef_client *c)
{
	uint64_t acked, n;
	int st;

	acked = __atomic_load_n(&load.acked, __ATOMIC_RELAXED);
	h_load_start(&load);
	cr_assert_eq(h_load_wait_acked(&load, acked + 500, 30000), 0,
	    "the last load does not get going");
	h_load_stop(&load);
	h_load_retry_pending(&load, c);
	n = h_load_verify(&load, c);
	client_close(c);
	st = h_stored_stop(&s, SIGTERM, 10000);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "SIGTERM: wait status 0x%x", st);
	return n;
}

Test(powerloss, cut_power_under_append_load)
{
	/* small segments, and every sealed one archived as soon as it is
	 * indexed: cuts land in rotation, indexing and archiving too */
	static const char *const seg[] = { "--segment-size", "65536",
		"--hot-segments", "0", "--archive-frame-size", "4K", NULL };
	const char *dir = h_tmpdir();
	unsigned cycles = env_uint("EF_PL_CYCLES", PL_CYCLES);
	unsigned seed = env_uint("EF_PL_SEED", (unsigned)time(NULL));
	uint64_t start = h_now_ms(), head = 0, n, lost = 0, hit = 0, cut_lost;
	struct ef_client c;
	char cmd[64];
	unsigned cycle;

	mnt = pl_mount(dir);
	h_stored_init(&s, dir, stored_has_segments() ? seg : NULL);
	snprintf(s.data_dir, sizeof(s.data_dir), "%s/data", mnt);
	snprintf(cmd, sizeof(cmd), "fsync_delay_us %u\n",
	    env_uint("EF_PL_FSYNC_US", PL_FSYNC_US));
	pl_command(cmd);
	h_load_init(&load, &s, PL_THREADS, PL_PAD);
	srand(seed);
	fprintf(stderr,
	    "# seed %u (EF_PL_SEED to replay), up to %u cycles, "
	    "segments %s\n",
	    seed, cycles, s.extra[0] ? "65536 B" : "no");
	cut_during_start(0, 20); /* the very first start creates the log */
	h_stored_start(&s);
	for (cycle = 0;; cycle++) {
		h_client(&c, &s, 10000);
		head = h_load_survived(&load, &c, head, (int)cycle);
		if (cycle == cycles ||
		    (cycle >= 10 && h_now_ms() - start > PL_BUDGET_MS))
			break;

		hit += cut_power(cycle, &c, start, &cut_lost);
		lost += cut_lost;
	}
	/* a test whose cuts never find anything unsynced tests nothing */
	cr_assert_gt(hit, 0, "no power cut in %u landed on unsynced data",
	    cycle);
	n = last_load_without_a_cut(&c);
	verify_offline((int)cycle, false);
	fprintf(stderr,
	    "# %u power cuts in %llu ms: %llu events in the log, "
	    "%llu cuts found unsynced data, %llu pages of it dropped in all; "
	    "plfs saw %llu writes, %llu fsyncs (%llu cut short by the kill), "
	    "%llu directory fsyncs\n",
	    cycle, (unsigned long long)(h_now_ms() - start),
	    (unsigned long long)n, (unsigned long long)hit,
	    (unsigned long long)lost, (unsigned long long)pl_stat("writes"),
	    (unsigned long long)pl_stat("fsyncs"),
	    (unsigned long long)pl_stat("killed_syncs"),
	    (unsigned long long)pl_stat("dirsyncs"));
	h_load_free(&load);
}
