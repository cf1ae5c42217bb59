/* SPDX-License-Identifier: MIT */
/*
 * journal.h - eventfold-stored's log: segments, locations, the
 * readers' pins (archiver.c) and window (readwin.c).
 */
#ifndef EF_STORED_JOURNAL_H
#define EF_STORED_JOURNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct archive;
struct archive_cache;
struct bloom;

/*
 * journal.c: the log as a sequence of segment files (segfile.h), each
 * mapped read-only for readers. Only the newest, the hot segment, is
 * written; the others are sealed and never change.
 *
 * A location names a record: the segment's index in segs[] in the high
 * bits, the byte offset in that segment in the low JOURNAL_OFF_BITS.
 * The index stores locations; readers turn one into bytes with
 * journal_at(), the one place that knows how a segment is held.
 */
#define JOURNAL_OFF_BITS 40
#define JOURNAL_OFF_MASK ((1ull << JOURNAL_OFF_BITS) - 1)
#define JOURNAL_MAX_SEGS (1u << 24)
#define SEGMENT_SIZE_MIN 4096

struct segment {
	struct bloom *bloom; /* once indexed on disk (atomic), else NULL */
	uint64_t base; /* global position of its first event (its name) */
	uint64_t end;  /* committed bytes; atomic, written by the writer */
	uint64_t next; /* position after its last event; atomic */
	int sealed;    /* atomic; set once, never cleared */
	int fd;        /* the hot segment's, -1 once sealed */
	const uint8_t *map; /* PROT_READ view; valid bytes are [0, end) */
	uint64_t map_cap;   /* size of the mapping */
	uint64_t populated; /* atomic: pages of [0, populated) were made
	                     * present for readers (dispatch.c) */
	char *path;
	/* archiver.c: once set (under journal.maplock, write), the segment
	 * is read through its archive and map is NULL. zst_only: the plain
	 * file is gone; map, if set, is the archive decompressed in memory
	 * for a rebuild of the index. */
	struct archive *arc;
	uint64_t arc_bytes; /* size of the .zst file */
	int zst_only;
};

struct journal {
	int lockfd;
	int dirfd;
	char *dir;
	uint64_t segment_size;
	/* JOURNAL_MAX_SEGS slots, virtual until touched, never moved: a
	 * slot is filled before any location in it is published */
	struct segment **segs;
	uint64_t nsegs;        /* atomic (release by the writer) */
	uint64_t bytes;        /* all segment files; atomic */
	uint64_t sealed_bytes; /* atomic */
	uint64_t base;         /* the first segment's base */
	/* archiver.c: readers of any segment hold it (read) from their
	 * first journal_at() until journal_unpin(); the archiver takes it
	 * (write) to switch a segment from its mapping to its archive */
	pthread_rwlock_t maplock;
	struct archive_cache *cache; /* frames of archived segments */
};

/* Where recovery found damage it refuses to pass (for the message). */
struct journal_bad {
	char file[4200];
	uint64_t off;
};

/*
 * Called by journal_open() for every intact record, in order, with its
 * location; the index is built from these.
 */
typedef void (
    *journal_visit_fn)(void *arg, const struct ef_event *ev, uint64_t loc);

/*
 * Opens (creating if needed) data_dir's log, takes the lock file, takes
 * over a single events.log from before segments, verifies every batch of
 * every segment, truncates a torn tail of the last one, and calls visit
 * for each event. Segments that end at or below skip_to (the on-disk
 * index covers them) are mapped but neither read nor visited.
 * segment_size 0 means the default; cache_bytes is the budget of the
 * cache of archived segments' frames (JOURNAL_CACHE_DEFAULT if not
 * configured). Returns 0; -EEXIST if
 * another stored holds the lock; -EBADMSG if there is corruption that is
 * not a torn tail of the last segment (bad says where) and repair is 0;
 * -ENOTUNIQ if events.log and segment files are both present; another
 * negative errno on I/O failure.
 */
#define JOURNAL_CACHE_DEFAULT (64ull << 20)
int journal_open(struct journal *j, const char *data_dir,
    uint64_t segment_size, uint64_t cache_bytes, int repair, uint64_t skip_to,
    journal_visit_fn visit, void *arg, struct journal_bad *bad);

/* A segment named base in j's directory (its path set, no file opened,
 * fd -1), or NULL if out of memory. Freed by journal_close() once in
 * segs[], else by free(s->path), free(s). */
struct segment *segment_new(const struct journal *j, uint64_t base);

/* The index in segs[] of the segment named base (which must exist). */
uint64_t journal_find(const struct journal *j, uint64_t base);

/*
 * Appends one batch frame (len bytes, its header first) to the hot
 * segment and makes it durable (fdatasync). 0, -EFBIG if it does not fit
 * the hot segment's mapping (rotate first), or -errno; on a write error
 * the tail is cut back.
 */
int journal_append(struct journal *j, const void *buf, size_t len);

/*
 * Writer only, between batches: seals the hot segment and starts the
 * next, named next_pos. The new file is written with its header,
 * fsynced, renamed into place and the directory fsynced before this
 * returns, so no batch is acknowledged in a segment a crash could lose.
 * Returns 1 if rotated, 0 if the hot segment holds no event (nothing
 * done), or a negative errno (the hot segment stays hot).
 */
int journal_rotate(struct journal *j);

/* The segment being written. */
static inline struct segment *
journal_hot(const struct journal *j)
{
	return j->segs[__atomic_load_n(&j->nsegs, __ATOMIC_ACQUIRE) - 1];
}

/* Segments now (acquire): slots below are safe to read. */
static inline uint64_t
journal_nsegs(const struct journal *j)
{
	return __atomic_load_n(&j->nsegs, __ATOMIC_ACQUIRE);
}

/* Writer: the location the next batch will be written at. */
static inline uint64_t
journal_tail(const struct journal *j)
{
	uint64_t n = journal_nsegs(j) - 1;

	return n << JOURNAL_OFF_BITS | j->segs[n]->end;
}

/*
 * archiver.c: reading a location. The first journal_at() of a thread
 * pins the journal (maplock, read); frames of archived segments it
 * decompresses stay pinned too. Everything journal_at() returned stays
 * valid until that thread calls journal_unpin(), which every reader
 * does once its reply is encoded (dispatch), its batch is checked
 * (writer) or its pass is done (indexer, recovery). A thread must not
 * wait for another reader while pinned.
 */
#define JOURNAL_LOC_BAD UINT64_MAX /* a location that could not be read */
void journal_pin(const struct journal *j);
void journal_unpin(void);
/* Frames pinned by this thread (to unpin between records of a long read). */
size_t journal_pinned(void);
/* Why the last journal_at() of this thread returned NULL: file, offset. */
const char *journal_fault(void);
/* Sets (and logs) this thread's fault: an index lookup that failed. */
void journal_set_fault(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
const uint8_t *segment_arc_at(const struct journal *j, struct segment *s,
    uint64_t off);

/*
 * The bytes of the record at a committed location. Every reader (reads,
 * subscriptions' catch-up, idempotency checks) comes through here: a
 * plain segment is mapped, an archived one is read by decompressing the
 * frame that holds off into the shared cache. NULL (only for an archived
 * segment, or loc JOURNAL_LOC_BAD) if the data is damaged:
 * journal_fault() names the file and offset.
 */
static inline const uint8_t *
segment_at(const struct journal *j, struct segment *s, uint64_t off)
{
	if (__atomic_load_n(&s->arc, __ATOMIC_ACQUIRE) == NULL)
		return s->map + off;
	return segment_arc_at(j, s, off);
}

static inline const uint8_t *
journal_at(const struct journal *j, uint64_t loc)
{
	if (loc == JOURNAL_LOC_BAD)
		return NULL;
	journal_pin(j);
	return segment_at(j, j->segs[loc >> JOURNAL_OFF_BITS],
	    loc & JOURNAL_OFF_MASK);
}

/*
 * journal_at() that also says whether the bytes were checked on their way
 * here: an archived segment's frame is checked against its zstd content
 * checksum and the seek table's when it is decompressed, so a reader
 * need not check each record's CRC again (crc32 was a fifth of a ReadAll
 * of archived segments). A mapped segment's bytes are not checked.
 */
static inline const uint8_t *
journal_at_checked(const struct journal *j, uint64_t loc, bool *checked)
{
	struct segment *s;

	*checked = false;
	if (loc == JOURNAL_LOC_BAD)
		return NULL;
	journal_pin(j);
	s = j->segs[loc >> JOURNAL_OFF_BITS];
	if (__atomic_load_n(&s->arc, __ATOMIC_ACQUIRE) == NULL)
		return s->map + (loc & JOURNAL_OFF_MASK);
	*checked = true;
	return segment_arc_at(j, s, loc & JOURNAL_OFF_MASK);
}

void journal_close(struct journal *j);

/*
 * readwin.c: forward reads of a plain segment through pread() into this
 * thread's window instead of first touches of the mapping (why, and the
 * rules, at the top of readwin.c). readwin_at() returns the record at
 * segment offset off, whole (its length checked against RECORD_MAX and
 * the committed end, nothing else), valid until the next readwin_at()
 * or readwin_done() of this thread; NULL if the segment is archived or
 * cannot be read so: the caller then uses journal_at_checked(). Call
 * under the journal pin; readwin_done() when the read is over (closes
 * the file).
 */
const uint8_t *readwin_at(struct segment *s, uint64_t off);
/* n (<= 256 KiB) committed bytes at off through the window, or NULL. */
const uint8_t *readwin_peek(struct segment *s, uint64_t off, size_t n);
void readwin_done(void);

#endif
