/* SPDX-License-Identifier: MIT */
/*
 * backupdir.c - the steps stored's and runnerd's backups share (see
 * backupdir.h): the backup directory's name checked, and an LMDB
 * environment copied and made durable.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "backupdir.h"
#include "errors.h"
#include "fsync.h"

int
backupdir_check_name(const char *dir, size_t room, char *why, size_t whylen)
{
	if (dir[0] != '/' || strlen(dir) > PATH_MAX - room ||
	    strstr(dir, "/../") != NULL) {
		snprintf(why, whylen,
		    "%s: the backup directory must be an "
		    "absolute path without \"..\"",
		    dir);
		return -EINVAL;
	}
	return 0;
}

int
backupdir_copy_env(MDB_env *env, const char *dir, const char *what,
    uint64_t *bytes, char *why, size_t whylen)
{
	char file[PATH_MAX + 16];
	struct stat sb;
	int rc;

	*bytes = 0;
	if ((rc = mdb_env_copy2(env, dir, MDB_CP_COMPACT)) != 0) {
		snprintf(why, whylen, "copy of %s into %s: %s", what, dir,
		    mdb_strerror(rc));
		return ef_err_from_mdb(rc);
	}
	/* mdb_env_copy2 does not fsync what it wrote */
	snprintf(file, sizeof(file), "%s/data.mdb", dir);
	if ((rc = fsync_path(file, 0)) != 0 ||
	    (rc = fsync_path(dir, 1)) != 0) {
		snprintf(why, whylen, "fsync of the copy in %s: %s", dir,
		    strerror(-rc));
		return rc;
	}
	if (stat(file, &sb) == 0)
		*bytes = (uint64_t)sb.st_size;
	return 0;
}
