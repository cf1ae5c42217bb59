/* SPDX-License-Identifier: MIT */
/*
 * segfile.h - names of the event log's segment files, shared by
 * eventfold-stored (which owns them) and eventfoldctl verify (which reads
 * them offline).
 *
 * A data directory holds segment files named by the global position of
 * their first event, zero-padded to 20 digits so that the names sort in
 * log order: seg-00000000000000000000.log, seg-00000000000000001234.log.
 * Each has the record.h file header (whose base repeats the name) and
 * batch frames. `events.log` is the single file of releases before
 * segments; stored takes it over (renames it) on first start.
 * A name ending in ".tmp" is a segment being created, never part of the
 * log. A sealed segment may be held only as its zstd archive, the same
 * name plus ".zst" ("seg-...log.zst"; ".zst.tmp" while being written).
 */
#ifndef EF_SEGFILE_H
#define EF_SEGFILE_H

#include <stddef.h>
#include <stdint.h>

#define SEGFILE_PREFIX   "seg-"
#define SEGFILE_SUFFIX   ".log"
#define SEGFILE_NAME_MAX 32 /* "seg-" + 20 digits + ".log" + NUL, rounded */
#define LEGACY_LOG_NAME  "events.log"

/* "seg-%020llu.log" into buf (at least SEGFILE_NAME_MAX bytes). */
char *segfile_name(char *buf, size_t len, uint64_t base);

/* The base of a segment file name: 0, or -1 if name is not one. */
int segfile_parse(const char *name, uint64_t *base);

/*
 * The segment files of dir, sorted by base: *bases is malloc'd (the
 * caller frees it), *n of them. Returns 0 or a negative errno.
 */
int segfile_list(const char *dir, uint64_t **bases, size_t *n);

/*
 * Like segfile_list, but also lists segments present only as their cold
 * archive "<name>.zst" (eventfold-stored's archive.h): (*archived)[i] is
 * 1 for those. A segment present both ways is listed once, as plain.
 * Both arrays are malloc'd (the caller frees them). 0 or -errno.
 */
#define SEGFILE_ZST_SUFFIX ".zst"
int segfile_list_all(const char *dir, uint64_t **bases, uint8_t **archived,
    size_t *n);

#endif
