/* SPDX-License-Identifier: MIT */
/*
 * plharness.h - plfs for Criterion tests: mount it in a test's temporary
 * directory, cut the power, read its counters, unmount. plfs (plfs.c) is
 * a FUSE filesystem that loses, on command, every change not made
 * durable by fsync/fdatasync (file data and size) or by a directory
 * fsync (entries); plfs.c's opening comment gives the exact rules.
 *
 * A power cut, in this order: stop the writer with SIGKILL and wait for
 * it (nothing may write after the cut), then pl_command("cut drop\n") or
 * pl_command("cut torn SEED\n"), then restart the writer on the same
 * directory. pl_command("fsync_delay_us N\n") makes every fsync take N
 * microseconds, and a SIGKILL during one cancels it (the power went
 * while the disk flushed), so that kills land inside flushes.
 *
 * Caveats: one mount per test process; call pl_unmount() in the suite's
 * .fini after stopping whatever has files open on it, before
 * h_cleanup(). Criterion skips do not run .fini: pl_mount cleans up
 * itself when it skips.
 */
#ifndef EF_TEST_PLHARNESS_H
#define EF_TEST_PLHARNESS_H

#include <stdint.h>

/*
 * Mounts plfs on dir/mnt (its stderr in dir/plfs.log) and returns the
 * mount point (valid until pl_unmount). Skips the test, saying why on
 * stderr, if plfs was not built or FUSE cannot mount here; fails it if
 * plfs runs but never mounts.
 */
const char *pl_mount(const char *dir);

/* Writes one command to plfs's control file; fails the test if refused. */
void pl_command(const char *cmd);

/* One counter from plfs's control file (0 if absent), e.g. "fsyncs",
 * "killed_syncs", "last_lost_pages", "last_kept_pages". */
uint64_t pl_stat(const char *name);

/* Stops plfs, which unmounts (lazily if still busy). */
void pl_unmount(void);

#endif
