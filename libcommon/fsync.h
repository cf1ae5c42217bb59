/* SPDX-License-Identifier: MIT */
/*
 * fsync.h - making a file or a directory entry durable by its path, for
 * the copies that backups make (stored's log, runnerd's LMDB state).
 */
#ifndef EF_FSYNC_H
#define EF_FSYNC_H

/* fsync(2) of path (a directory if dir is non-zero). 0 or -errno. */
int fsync_path(const char *path, int dir);

#endif
