/* SPDX-License-Identifier: MIT */
/*
 * index.h - eventfold-stored's index of positions, streams and
 * event ids: RAM for the tail, the diskindex below it.
 */
#ifndef EF_STORED_INDEX_H
#define EF_STORED_INDEX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ipc.h"
#include "record.h"

struct diskindex;
struct journal;

/*
 * index.c: locations only, never event bodies. Two tiers: positions at
 * or above `floor` (the tail: the hot segment and sealed segments not
 * yet indexed on disk) are indexed here; those below are in the
 * diskindex. A stream is held here only while it has events in the tail;
 * its versions below `base` are on disk.
 */
struct stream {
	uint8_t id[UUID_LEN];
	uint64_t n;    /* events; version of the last is n - 1 */
	uint64_t base; /* versions below are on disk */
	uint64_t cap;
	uint64_t *pos; /* global position of versions base .. n - 1 */
};

struct index {
	pthread_rwlock_t lock;  /* streams, and offsets below head */
	struct diskindex *disk; /* NULL: everything in RAM */
	uint64_t floor;         /* positions below are on disk */
	uint64_t disk_streams;  /* streams on disk at floor */
	uint64_t new_streams;   /* streams here with base 0 */
	uint64_t bloom_bytes;
	uint64_t **chunks;  /* position -> journal location */
	uint64_t chunks_hi; /* chunks[] at or above are unused: those
	                     * below floor >> 16 are freed, so only
	                     * [floor >> 16, chunks_hi) is ever held */
	uint64_t head;      /* next position; atomic, release/acquire */
	uint64_t added;     /* next position index_add() will see */
	/* streams by id (open addressing), and in creation order */
	struct stream **stab;
	uint64_t stab_cap;
	struct stream **order;
	struct stream *last; /* index_add's last, or NULL */
	uint64_t nstreams;
	uint64_t order_cap;
	/* event id -> position: fingerprint << 40 | (position + 1) */
	uint64_t *etab;
	uint64_t etab_cap;
	uint64_t etab_n;
	uint64_t bytes; /* memory held, for STATUS */
	int bulk;       /* recovery: event ids indexed at the end */
	/* sorted view of streams for LIST_STREAMS */
	pthread_mutex_t sort_lock;
	struct stream **sorted;
	uint64_t nsorted;
	const struct journal *journal; /* to confirm event ids */
};

void index_init(struct index *ix, const struct journal *j,
    struct diskindex *disk);
void index_free(struct index *ix);

/*
 * Position -> journal location for position < head: lock-free below
 * floor (on disk), under ix->lock (read) or on the writer thread above.
 */
uint64_t index_offset(const struct index *ix, uint64_t pos);
static inline uint64_t
index_head(const struct index *ix)
{
	return __atomic_load_n(&ix->head, __ATOMIC_ACQUIRE);
}

/* Under ix->lock (read): the stream or NULL. */
struct stream *index_stream(const struct index *ix,
    const uint8_t id[UUID_LEN]);

/*
 * Index lookups that reach LMDB can fail (an I/O error, a damaged
 * index): they then set the thread's journal_fault() and return
 * INDEX_ERR (or -1/-2 below); the request gets an error reply and
 * stored keeps serving the others. The log stays the truth: deleting
 * the index rebuilds it (diskindex.c).
 */
#define INDEX_ERR UINT64_MAX

/* Writer only: the position of an event id, -1 if none, -2 if the
 * index could not be read. Tail first, then the Bloom filters of sealed
 * segments, and LMDB only on a filter hit. */
int64_t index_event(const struct index *ix, const uint8_t id[UUID_LEN]);

/*
 * The writer hashes each event id once (index_id_hash) and hands the
 * hash to index_event_h and index_add_h (as index_event and index_add).
 * index_prefetch(h) is a hint, under the lock as they are: the event
 * table's slots for h into the cache, a few events before they are
 * looked up or added (each is a cache miss in a table of 16 MiB a
 * million events).
 */
uint64_t index_id_hash(const uint8_t id[UUID_LEN]);
int64_t index_event_h(const struct index *ix, const uint8_t id[UUID_LEN],
    uint64_t h);
void index_prefetch(const struct index *ix, uint64_t h);

/* Under ix->lock (read): a stream's events, RAM or disk (0: none), or
 * INDEX_ERR. */
uint64_t index_stream_count(const struct index *ix,
    const uint8_t id[UUID_LEN]);
/*
 * Under ix->lock (read): positions of n versions from `from` on (down
 * with backward), all below the stream's count, into out; the part on
 * disk in one LMDB cursor pass. 0, or -1 (journal_fault() says why).
 */
int index_stream_positions(const struct index *ix, const struct stream *s,
    const uint8_t id[UUID_LEN], uint64_t from, uint64_t n, int backward,
    uint64_t *out);
/* Streams in all (RAM and disk). Under ix->lock (read). */
uint64_t index_nstreams(const struct index *ix);

/*
 * Indexer, after diskindex_add_segment: drops what is below new_floor
 * from RAM (offsets, streams' old versions, event ids). Takes the lock.
 */
void index_trim(struct index *ix, uint64_t new_floor, uint64_t disk_streams);

/*
 * Writer only, under ix->lock (write), in position order: records an
 * event at location loc. Does not publish head; index_publish() does.
 */
void index_add(struct index *ix, const struct ef_event *ev, uint64_t loc);
void index_add_h(struct index *ix, const struct ef_event *ev, uint64_t loc,
    uint64_t h);
void index_publish(struct index *ix, uint64_t head);

/*
 * Recovery: index_bulk_begin() makes index_add() skip the event-id table;
 * index_bulk_end() then sizes it once for every event below head and
 * fills it in one sequential pass (instead of growing it a dozen times,
 * re-reading every id from the log each time).
 */
void index_bulk_begin(struct index *ix);
void index_bulk_end(struct index *ix, uint64_t head);

/*
 * LIST_STREAMS: up to max streams with id > after (all if after is
 * NULL), sorted by id, into out (caller provides max slots). *more is
 * set if further streams exist. Takes the locks it needs. Returns how
 * many, or INDEX_ERR (journal_fault() says why).
 */
uint64_t index_list(struct index *ix, const uint8_t *after, uint64_t max,
    struct ipc_stream_info *out, bool *more);

#endif
