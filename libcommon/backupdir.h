/* SPDX-License-Identifier: MIT */
/*
 * backupdir.h - the steps stored's and runnerd's backups share: the
 * check of the directory an operator names, and the durable copy of an
 * LMDB environment (stored's index, runnerd's state) into it.
 */
#ifndef EF_BACKUPDIR_H
#define EF_BACKUPDIR_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

/*
 * Is dir a name a backup may take: absolute, without "/../", and room
 * bytes shorter than PATH_MAX (for the names the backup adds under
 * it)? 0, or -EINVAL with why. The directory itself is not looked at.
 */
int backupdir_check_name(const char *dir, size_t room, char *why,
    size_t whylen);

/*
 * Copies env, compacted, into the existing directory dir and makes the
 * copy durable (dir/data.mdb and its entry in dir; the caller syncs
 * dir's own entry if it made dir). what names the copy in messages
 * ("the index"). 0 with *bytes the size of the copy, or a negative
 * errno with why; a partial copy is the caller's to remove.
 */
int backupdir_copy_env(MDB_env *env, const char *dir, const char *what,
    uint64_t *bytes, char *why, size_t whylen);

#endif
