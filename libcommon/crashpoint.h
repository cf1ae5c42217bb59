/* SPDX-License-Identifier: MIT */
/*
 * crashpoint.h - named places where a test build can kill its own
 * process, so that tests can prove what a crash at exactly that step
 * leaves behind (e.g. between creating a segment file and fsyncing its
 * directory).
 *
 * Compiled in only with `meson setup -Dcrashpoints=true` (./dev does it
 * for its development and test builds); otherwise crashpoint() is
 * nothing. When compiled in, crashpoint(NAME) kills the process with
 * SIGKILL, writing no buffer and running no handler, if the environment
 * variable EVENTFOLD_CRASHPOINT equals NAME. "NAME:N" kills at the Nth
 * time the point is reached (1 is the first).
 *
 * Names in use: rotate.before_create, rotate.after_create (file renamed
 * into place, directory not yet fsynced), rotate.after_dirsync (before
 * the first batch in the new segment), takeover.before_rename,
 * takeover.after_rename (before the directory fsync),
 * index.between_chunks (a sealed segment partly indexed), index.
 * before_commit (its last LMDB transaction built, not committed),
 * index.after_commit (committed, RAM not yet trimmed). Test builds also
 * read EVENTFOLD_INDEX_CHUNK: events per LMDB transaction of the indexer.
 * Archiving (stored's archive.c through archive_crash_point, and
 * archiver.c): archive.tmp_open, archive.frame (after each frame),
 * archive.table, archive.fsync, archive.rename, archive.dir_fsync,
 * archiver.before_unlink (archive in use, plain segment still there),
 * archiver.after_unlink (directory not yet fsynced).
 */
#ifndef EF_CRASHPOINT_H
#define EF_CRASHPOINT_H

/*
 * Fault points, the same way: faultpoint(NAME) is true while the file
 * named by the environment variable EVENTFOLD_FAULT_FILE exists and
 * contains NAME, so that a test can make an operation fail and recover
 * in a running daemon. Names in use: index.read (stored's LMDB lookups
 * fail with EIO), writer.stall (stored's writer takes no job while it
 * holds), runner.writer.stall (runnerd's command-results writer
 * likewise).
 */
#ifdef EF_CRASHPOINTS
void crashpoint(const char *name);
int faultpoint(const char *name);
#define CRASHPOINTS_ENABLED 1
#else
#define crashpoint(name)    ((void)0)
#define faultpoint(name)    0
#define CRASHPOINTS_ENABLED 0
#endif

#endif
