/* SPDX-License-Identifier: MIT */
/*
 * dwrite.h - a new regular file written with O_DIRECT from a writer
 * thread: eventfoldctl export's output file (export.c), on its own for
 * tests/unit/test_dwrite.c.
 *
 * Caveats: the fd is the caller's (dwrite never closes it) and is not
 * written by anyone else between dwrite_open() and dwrite_finish();
 * the file is written from offset 0 on. The caller fsyncs it after
 * dwrite_finish(): nothing here makes it durable.
 */
#ifndef EF_CTL_DWRITE_H
#define EF_CTL_DWRITE_H

#include <stddef.h>

struct dwrite;

/*
 * Starts direct writes of fd, a regular file open for writing, empty.
 * 0: *dw is set (dwrite_free() frees it). 1: the file system does not
 * take O_DIRECT on fd: write it as before. A negative errno: out of
 * memory or no thread; fd is unchanged, write it as before.
 */
int dwrite_open(struct dwrite **dw, int fd);

/*
 * Appends n bytes of p (copied: p is the caller's again on return).
 * Whole blocks are written behind by the writer thread; this waits only
 * when every block is taken. 0, or the negative errno of a failed
 * earlier write (the file is then incomplete; stop).
 */
int dwrite_put(struct dwrite *dw, const void *p, size_t n);

/*
 * The block being filled, for a caller that writes lines in place: its
 * first *len bytes are taken, and up to *cap bytes in all (more than a
 * block: a line may run past it) may be written, after which
 * dwrite_fill() says how many are taken. Valid until the next call of
 * dwrite_put() or dwrite_fill().
 */
char *dwrite_block(struct dwrite *dw, size_t *len, size_t *cap);

/*
 * The block being filled now holds len bytes (at most the *cap of
 * dwrite_block). At a block or more it is handed over, the bytes past
 * the block moved to the next one. 0 or a negative errno, as
 * dwrite_put().
 */
int dwrite_fill(struct dwrite *dw, size_t len);

/*
 * Writes what is left (its last partial block without O_DIRECT) and
 * waits for every write. 0 or a negative errno. fd is left without
 * O_DIRECT, at no particular offset; dwrite_put() must not follow.
 */
int dwrite_finish(struct dwrite *dw);

/* Stops the writer (a block being written is finished, queued ones are
 * dropped) and frees dw. NULL is fine. */
void dwrite_free(struct dwrite *dw);

#endif
