/* SPDX-License-Identifier: MIT */
/* fsync.c - see fsync.h. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fsync.h"

int
fsync_path(const char *path, int dir)
{
	int fd, rc = 0;

	fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}
