/* SPDX-License-Identifier: MIT */
/*
 * plharness.c - mounting plfs (plfs.c) for a test and talking to it: see
 * plharness.h. One plfs per test process, like the daemons of
 * harness.c; the binary comes from EF_PLFS (tests/powerloss/meson.build).
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
#include "plharness.h"

static char mnt[H_PATH - 16]; /* so that mnt/data fits a data_dir */
static pid_t plfs_pid;

/* Skips the test, saying why on stderr; .fini does not run then. */
#define SKIP(...)                                                             \
	do {                                                                  \
		fprintf(stderr, "# skip: " __VA_ARGS__);                      \
		fprintf(stderr, "\n");                                        \
		h_cleanup();                                                  \
		cr_skip_test(__VA_ARGS__);                                    \
	} while (0)

/* The first line of what plfs said on stderr, for a skip message. */
static void
first_line(const char *path, char *buf, size_t cap)
{
	char *text = h_read_file(path, NULL);

	snprintf(buf, cap, "%s", text != NULL ? text : "(no output)");
	buf[strcspn(buf, "\n")] = '\0';
	free(text);
}

const char *
pl_mount(const char *dir)
{
	const char *bin = getenv("EF_PLFS");
	char log[H_PATH + 16], ctl[H_PATH + 16], why[256];
	uint64_t deadline;
	struct stat sb;
	int fd, st;

	if (bin == NULL || *bin == '\0')
		SKIP("plfs was not built (libfuse3-dev missing when meson "
		     "configured)");
	if (access("/dev/fuse", R_OK | W_OK) != 0)
		SKIP("no usable /dev/fuse: %s", strerror(errno));
	cr_assert_lt(strlen(dir) + 4, sizeof(mnt), "%s: too long", dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(log, sizeof(log), "%s/plfs.log", dir);
	snprintf(ctl, sizeof(ctl), "%s/.plfs", mnt);
	cr_assert_eq(mkdir(mnt, 0755), 0, "mkdir %s: %s", mnt,
	    strerror(errno));
	if ((fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) <
	    0)
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
			if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
				SKIP("FUSE cannot mount here: %s", why);
			cr_assert_fail("plfs exited (status 0x%x): %s", st,
			    why);
		}
		cr_assert_lt(h_now_ms(), deadline, "plfs did not mount %s",
		    mnt);
		h_sleep_ms(10);
	}
	return mnt;
}

void
pl_command(const char *cmd)
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

uint64_t
pl_stat(const char *name)
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

void
pl_unmount(void)
{
	if (plfs_pid <= 0)
		return;
	kill(plfs_pid, SIGTERM);
	if (h_wait_pid(plfs_pid, 10000) == -1) {
		(void)umount2(mnt, MNT_DETACH);
		kill(plfs_pid, SIGKILL);
		(void)h_wait_pid(plfs_pid, 5000);
	}
	plfs_pid = 0;
}
