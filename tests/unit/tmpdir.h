/* SPDX-License-Identifier: MIT */
/*
 * tmpdir.h - what the unit tests that work on files (test_archive.c,
 * test_dwrite.c, test_index.c, test_server.c) share: removing the
 * temporary directory a test made, with everything in it.
 */
#ifndef EF_TEST_TMPDIR_H
#define EF_TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

/* rm -rf dir (made by mkdtemp: no quote in it); says so if it cannot. */
static inline void
tmpdir_remove(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

#endif
