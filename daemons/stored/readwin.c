/* SPDX-License-Identifier: MIT */
/*
 * readwin.c - forward reads of plain segments with pread() into a
 * window that each reading thread reuses, instead of first touches of
 * the segment's mapping.
 *
 * Why: a ReadAll that walks the log forward (an export, a subscriber
 * catching up) touches every page of a segment once. Through the
 * mapping each first touch is a page fault (and, on a VM, the host's
 * side of it); MADV_POPULATE_READ ahead of the reads saved nothing on
 * our VM. Measured there on one 256 MB segment read at a 350-byte
 * stride: 0.43-0.73 s through a fresh mapping, 0.12-0.27 s with pread
 * into one reused buffer. pread copies from the page cache into a
 * buffer that stays in cache, and the kernel's read-ahead sees a
 * sequential reader.
 *
 * Rules:
 *   - Only forward reads use the window (dispatch.c passes seq);
 *     scattered reads (one stream's events) keep the mapping, where a
 *     window would read far more than it uses.
 *   - The file is opened by its path for this read alone and closed by
 *     readwin_done(): never the writer's fd, which rotation closes
 *     while readers run. An archived segment, or one whose plain file
 *     is gone, is not windowed: readwin_at() returns NULL and the
 *     caller reads through journal_at_checked() as before.
 *   - Only committed bytes (below the segment's end, which only grows
 *     while hot and never changes once sealed) are read, so a window
 *     never holds bytes that differ from the mapping's.
 *   - Bytes read here are not checked: the caller verifies each
 *     record's crc as it does for the mapping.
 * Under the journal pin, like every reader (the pin keeps the archiver
 * from switching the segment mid-read; an fd opened before a switch
 * would still read the same bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "record.h"
#include "stored.h"

#define WINDOW (256u << 10) /* read at once; stays in L2 while encoded */

/* this thread's window: bytes [lo, hi) of seg's file in buf */
static __thread struct {
	const struct segment *seg;
	int fd;
	int failed; /* seg could not be opened: use the mapping */
	uint64_t lo, hi;
	uint8_t *buf;
} rw = { .fd = -1 };

/* Reads [off, off + WINDOW) of the segment (clipped at end). 0 or -1. */
static int
window_fill(uint64_t off, uint64_t end)
{
	size_t want = end - off < WINDOW ? (size_t)(end - off) : WINDOW;
	size_t got = 0;
	ssize_t n;

	rw.lo = rw.hi = off;
	while (got < want) {
		n = pread(rw.fd, rw.buf + got, want - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	rw.hi = off + got;
	return 0;
}

/* Opens s for this thread's window if it is not the one open. 0 or -1
 * (archived, no path, or open failed: use the mapping). */
static int
window_open(struct segment *s)
{
	if (__atomic_load_n(&s->arc, __ATOMIC_ACQUIRE) != NULL ||
	    s->path == NULL)
		return -1;
	if (rw.seg != s) {
		readwin_done();
		rw.seg = s;
		if (rw.buf == NULL && (rw.buf = malloc(WINDOW)) == NULL) {
			rw.failed = 1;
			return -1;
		}
		rw.fd = open(s->path, O_RDONLY | O_CLOEXEC);
		rw.failed = rw.fd < 0;
	}
	return rw.failed ? -1 : 0;
}

/* [off, off + n) of the window (read if need be), n <= WINDOW, all below
 * the committed end; NULL if not. */
static const uint8_t *
window_bytes(uint64_t off, uint64_t n, uint64_t end)
{
	if (off + n > end)
		return NULL;
	if ((off < rw.lo || off + n > rw.hi) &&
	    (window_fill(off, end) != 0 || off + n > rw.hi))
		return NULL;
	return rw.buf + (off - rw.lo);
}

const uint8_t *
readwin_peek(struct segment *s, uint64_t off, size_t n)
{
	if (n > WINDOW || window_open(s) != 0)
		return NULL;
	return window_bytes(off, n,
	    __atomic_load_n(&s->end, __ATOMIC_ACQUIRE));
}

const uint8_t *
readwin_at(struct segment *s, uint64_t off)
{
	const uint8_t *p;
	uint64_t end, len;

	if (window_open(s) != 0)
		return NULL;
	end = __atomic_load_n(&s->end, __ATOMIC_ACQUIRE);
	if ((p = window_bytes(off, RECORD_HDR, end)) == NULL)
		return NULL;
	len = get_le32(p);
	if (len < RECORD_HDR || len > RECORD_MAX)
		return NULL; /* the mapping's read reports it */
	return window_bytes(off, len, end);
}

void
readwin_done(void)
{
	if (rw.fd >= 0)
		close(rw.fd);
	rw.fd = -1;
	rw.seg = NULL;
	rw.failed = 0;
	rw.lo = rw.hi = 0;
}
