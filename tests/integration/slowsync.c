/* SPDX-License-Identifier: MIT */
/*
 * slowsync.c - a slow disk for the integration tests, loaded into
 * eventfold-stored with LD_PRELOAD: fdatasync() and fsync() take
 * EF_SLOW_SYNC_MS milliseconds longer than the disk needs, so a test can
 * see how clients fare when the store answers late (test_import.c).
 */
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void
slow(void)
{
	const char *e = getenv("EF_SLOW_SYNC_MS");
	long ms = e != NULL ? atol(e) : 0;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	if (ms > 0)
		nanosleep(&ts, NULL);
}

int
fdatasync(int fd)
{
	slow();
	return (int)syscall(SYS_fdatasync, fd);
}

int
fsync(int fd)
{
	slow();
	return (int)syscall(SYS_fsync, fd);
}
