/* SPDX-License-Identifier: MIT */
/*
 * index.c - the in-memory index of eventfold-stored: locations, never
 * event bodies (see stored.h).
 *
 *   position -> journal offset   chunked array, 8 bytes an event; chunks
 *                                never move, so readers need no lock
 *   stream id -> its positions   hash of struct stream, 8 bytes an event
 *   event id -> position         open addressing, one 8-byte slot holding
 *                                a 32-bit fingerprint and the position
 *                                above floor; a fingerprint match is
 *                                confirmed against the event id in the
 *                                journal
 *
 * That is about 8 + 8 + 8/load bytes an event, plus each stream's
 * header, for the tail only: positions at or above `floor`. Below it,
 * the diskindex (LMDB) answers, and RAM keeps one Bloom filter of event
 * ids per sealed segment (about 1.25 bytes an event) so that a new event
 * id costs no disk read. The indexer moves `floor` up after each sealed
 * segment it commits to LMDB (index_trim).
 *
 * Only the writer adds to the index, only the indexer trims it, both
 * under the rwlock (write); readers take it to read. The writer reads
 * while it checks a batch under the lock (read) too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "log.h"
#include "stored.h"

#define CHUNK_BITS 16
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS (1u << 22) /* 2^38 events */
/*
 * The event table's slot: the top 32 bits of the id's hash (the
 * fingerprint) above position - floor + 1 (0 is an empty slot). The
 * home slot is the fingerprint's top bits, so the table doubles (or is
 * rebuilt for a new floor) from its own slots: no event id is read back
 * from the journal and hashed again, which made every doubling cost a
 * random read of each record in the tail.
 */
#define FP_BITS  32
#define REL_MASK ((1ull << FP_BITS) - 1)
#define HUGE_SZ  (2u << 20) /* a transparent huge page */

static void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);

	if (p == NULL)
		fatal("calloc");
	return p;
}

static uint64_t
id_hash(const uint8_t id[UUID_LEN])
{
	return XXH3_64bits(id, UUID_LEN);
}

uint64_t
index_id_hash(const uint8_t id[UUID_LEN])
{
	return id_hash(id);
}

/*
 * A zeroed event table of cap slots. One of 2 MiB or more is a mapping
 * of its own, aligned and advised into transparent huge pages: the
 * table grows by doubling to 16 MiB for 1M events, and touching fresh
 * 4 KiB pages one fault at a time cost more CPU than filling them
 * (~18 us a page on our VM, ~2 us a page in huge pages).
 */
static uint64_t *
etab_alloc(uint64_t cap)
{
	size_t len = cap * sizeof(uint64_t), off;
	uint8_t *p;

	if (len < HUGE_SZ)
		return xcalloc(cap, sizeof(uint64_t));
	p = mmap(NULL, len + HUGE_SZ, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal("mmap");
	off = (HUGE_SZ - (uintptr_t)p % HUGE_SZ) % HUGE_SZ;
	if (off > 0)
		(void)munmap(p, off);
	(void)munmap(p + off + len, HUGE_SZ - off);
	(void)madvise(p + off, len, MADV_HUGEPAGE); /* a hint only */
	return (uint64_t *)(void *)(p + off);
}

static void
etab_free(uint64_t *tab, uint64_t cap)
{
	if (cap * sizeof(uint64_t) < HUGE_SZ)
		free(tab);
	else if (tab != NULL)
		(void)munmap(tab, cap * sizeof(uint64_t));
}

void
index_init(struct index *ix, const struct journal *j, struct diskindex *disk)
{
	memset(ix, 0, sizeof(*ix));
	pthread_rwlock_init(&ix->lock, NULL);
	pthread_mutex_init(&ix->sort_lock, NULL);
	ix->journal = j;
	ix->disk = disk;
	if (disk != NULL) {
		ix->floor = ix->head = ix->added = disk->indexed_to;
		ix->disk_streams = disk->indexed_to ?
		    diskindex_nstreams(disk) :
		    0;
	}
	/* virtual until touched: calloc of a large block maps zero pages */
	ix->chunks = xcalloc(MAX_CHUNKS, sizeof(*ix->chunks));
	ix->stab_cap = 1024;
	ix->stab = xcalloc(ix->stab_cap, sizeof(*ix->stab));
	ix->etab_cap = 1u << 16;
	ix->etab = etab_alloc(ix->etab_cap);
	ix->bytes = ix->stab_cap * sizeof(*ix->stab) +
	    ix->etab_cap * sizeof(*ix->etab);
}

void
index_free(struct index *ix)
{
	uint64_t i;

	/*
	 * Only the chunks that can be held: the table is 32 MiB of calloc'd
	 * address space, and reading all of it faulted in 8192 pages, which
	 * made an idle stored's exit on SIGTERM take hundreds of ms.
	 */
	if (ix->chunks != NULL)
		for (i = ix->floor >> CHUNK_BITS; i < ix->chunks_hi; i++)
			free(ix->chunks[i]);
	free(ix->chunks);
	for (i = 0; i < ix->nstreams; i++) {
		free(ix->order[i]->pos);
		free(ix->order[i]);
	}
	free(ix->order);
	free(ix->stab);
	etab_free(ix->etab, ix->etab_cap);
	free(ix->sorted);
	pthread_rwlock_destroy(&ix->lock);
	pthread_mutex_destroy(&ix->sort_lock);
	memset(ix, 0, sizeof(*ix));
}

/*
 * A sealed, indexed position: LMDB gives the batch, the records of the
 * batch are walked. A per-thread cursor makes reading on in the same
 * batch (ReadAll pages) cost no LMDB lookup; sealed segments never
 * change, so it never goes stale.
 */
static __thread struct {
	uint64_t first, count; /* the batch */
	uint64_t rec0;         /* location of its first record */
	uint64_t pos, loc;     /* a record in it */
	int valid;
} dcache;

static uint64_t
disk_offset(const struct index *ix, uint64_t pos)
{
	uint64_t base, off, seg, loc;
	struct batch_hdr h;
	const uint8_t *p;
	int rc;

	if (!dcache.valid || pos < dcache.first ||
	    pos >= dcache.first + dcache.count) {
		if ((rc = diskindex_batch_of(ix->disk, pos, &base, &off)) !=
		    0) {
			journal_set_fault("index: position %" PRIu64 ": %s",
			    pos, strerror(-rc));
			dcache.valid = 0;
			return JOURNAL_LOC_BAD;
		}
		seg = journal_find(ix->journal, base);
		loc = seg << JOURNAL_OFF_BITS | off;
		/* NULL: a damaged archive frame; the reader says DATA_LOSS */
		if ((p = journal_at(ix->journal, loc)) == NULL) {
			dcache.valid = 0;
			return JOURNAL_LOC_BAD;
		}
		if (batch_hdr_decode(p, BATCH_HDR, &h) != REC_OK ||
		    pos < h.first_pos || pos >= h.first_pos + h.count) {
			/* the index disagrees with the log */
			journal_set_fault("index: batch at %" PRIu64
			                  ":%" PRIu64
			                  " does not hold position %" PRIu64
			                  " (delete the "
			                  "index to rebuild it)",
			    base, off, pos);
			dcache.valid = 0;
			return JOURNAL_LOC_BAD;
		}
		dcache.first = dcache.pos = h.first_pos;
		dcache.count = h.count;
		dcache.rec0 = dcache.loc = loc + BATCH_HDR;
		dcache.valid = 1;
	} else if (pos < dcache.pos) {
		/* back to the start of the batch */
		dcache.pos = dcache.first;
		dcache.loc = dcache.rec0;
	}
	while (dcache.pos < pos) {
		if ((p = journal_at(ix->journal, dcache.loc)) == NULL) {
			dcache.valid = 0;
			return JOURNAL_LOC_BAD;
		}
		dcache.loc += record_len(p, RECORD_HDR);
		dcache.pos++;
	}
	return dcache.loc;
}

uint64_t
index_offset(const struct index *ix, uint64_t pos)
{
	if (pos < ix->floor)
		return disk_offset(ix, pos);
	return ix->chunks[pos >> CHUNK_BITS][pos & (CHUNK_SIZE - 1)];
}

struct stream *
index_stream(const struct index *ix, const uint8_t id[UUID_LEN])
{
	uint64_t mask = ix->stab_cap - 1, i = id_hash(id) & mask;
	struct stream *s;

	while ((s = ix->stab[i]) != NULL) {
		if (memcmp(s->id, id, UUID_LEN) == 0)
			return s;
		i = (i + 1) & mask;
	}
	return NULL;
}

static void
stab_insert(struct stream **tab, uint64_t cap, struct stream *s)
{
	uint64_t mask = cap - 1, i = id_hash(s->id) & mask;

	while (tab[i] != NULL)
		i = (i + 1) & mask;
	tab[i] = s;
}

static struct stream *
stream_create(struct index *ix, const uint8_t id[UUID_LEN])
{
	struct stream *s, **ntab;
	uint64_t i, ncap;

	if ((ix->nstreams + 1) * 4 > ix->stab_cap * 3) {
		ncap = ix->stab_cap * 2;
		ntab = xcalloc(ncap, sizeof(*ntab));
		for (i = 0; i < ix->nstreams; i++)
			stab_insert(ntab, ncap, ix->order[i]);
		free(ix->stab);
		ix->bytes += (ncap - ix->stab_cap) * sizeof(*ntab);
		ix->stab = ntab;
		ix->stab_cap = ncap;
	}
	if (ix->nstreams == ix->order_cap) {
		ix->order_cap = ix->order_cap ? ix->order_cap * 2 : 1024;
		ix->order = realloc(ix->order,
		    ix->order_cap * sizeof(*ix->order));
		if (ix->order == NULL)
			fatal("realloc");
		ix->bytes += ix->order_cap / 2 * sizeof(*ix->order);
	}
	s = xcalloc(1, sizeof(*s));
	memcpy(s->id, id, UUID_LEN);
	stab_insert(ix->stab, ix->stab_cap, s);
	ix->order[ix->nstreams++] = s;
	ix->bytes += sizeof(*s);
	return s;
}

/* The home slot of fingerprint fp in a table of cap (a power of 2). */
static inline uint64_t
etab_home(uint64_t fp, uint64_t cap)
{
	return fp >> (FP_BITS - (unsigned)__builtin_ctzll(cap));
}

static int
event_matches(const struct index *ix, uint64_t pos, const uint8_t id[UUID_LEN])
{
	const uint8_t *rec = journal_at(ix->journal, index_offset(ix, pos));

	return rec != NULL && memcmp(rec + 48, id, UUID_LEN) == 0;
}

void
index_prefetch(const struct index *ix, uint64_t h)
{
	__builtin_prefetch(&ix->etab[etab_home(h >> FP_BITS, ix->etab_cap)]);
}

int64_t
index_event(const struct index *ix, const uint8_t id[UUID_LEN])
{
	return index_event_h(ix, id, id_hash(id));
}

int64_t
index_event_h(const struct index *ix, const uint8_t id[UUID_LEN], uint64_t h)
{
	uint64_t fp = h >> FP_BITS, mask = ix->etab_cap - 1;
	uint64_t i = etab_home(fp, ix->etab_cap), slot, n, k, pos;
	const struct bloom *bl;
	XXH128_hash_t bh;
	int rc;

	while ((slot = ix->etab[i]) != 0) {
		pos = ix->floor + (slot & REL_MASK) - 1;
		if (slot >> FP_BITS == fp && event_matches(ix, pos, id))
			return (int64_t)pos;
		i = (i + 1) & mask;
	}
	if (ix->disk == NULL || ix->floor == 0)
		return -1;
	/* below the floor: a new id is turned away by the filter over all
	 * indexed ids or, until it is built, by the segments' filters */
	bh = bloom_hash(id);
	rc = diskindex_filter_maybe(ix->disk, bh, ix->floor);
	if (rc == 0)
		return -1;
	if (rc < 0) {
		n = journal_nsegs(ix->journal);
		for (k = 0; k < n; k++) {
			bl = __atomic_load_n(&ix->journal->segs[k]->bloom,
			    __ATOMIC_ACQUIRE);
			if (bl == NULL)
				break;
			if (bloom_maybe(bl, bh))
				break;
		}
		if (k == n || bl == NULL)
			return -1;
	}
	rc = diskindex_event(ix->disk, id, &pos);
	if (rc == -ENOENT)
		return -1;
	if (rc != 0) {
		journal_set_fault("index: event id lookup: %s", strerror(-rc));
		return -2;
	}
	return (int64_t)pos;
}

uint64_t
index_stream_count(const struct index *ix, const uint8_t id[UUID_LEN])
{
	struct stream *s = index_stream(ix, id);
	uint64_t n;
	int rc;

	if (s != NULL)
		return s->n;
	if (ix->disk == NULL || ix->floor == 0)
		return 0;
	if ((rc = diskindex_stream_count(ix->disk, id, &n)) != 0) {
		journal_set_fault("index: stream lookup: %s", strerror(-rc));
		return INDEX_ERR;
	}
	return n;
}

int
index_stream_positions(const struct index *ix, const struct stream *s,
    const uint8_t id[UUID_LEN], uint64_t from, uint64_t n, int backward,
    uint64_t *out)
{
	uint64_t base = s != NULL ? s->base : UINT64_MAX, i, nd, v0;
	int rc;

	/* versions below base are on disk: a contiguous run at the start
	 * (forward) or at the end (backward) of the range */
	if (!backward) {
		nd = from >= base ? 0 : (base - from < n ? base - from : n);
		v0 = from;
	} else {
		nd = from < base ?
		    n :
		    (from - base + 1 < n ? n - (from - base + 1) : 0);
		v0 = from - (n - nd);
	}
	if (nd > 0 &&
	    (rc = diskindex_stream_range(ix->disk, id, v0, nd, backward,
	         backward ? out + (n - nd) : out)) != 0) {
		journal_set_fault("index: versions %" PRIu64 ".. of a stream: "
		                  "%s",
		    v0, strerror(-rc));
		return -1;
	}
	for (i = 0; i < n; i++) {
		uint64_t v = backward ? from - i : from + i;

		if (v >= base)
			out[i] = s->pos[v - base];
	}
	return 0;
}

uint64_t
index_nstreams(const struct index *ix)
{
	return ix->disk_streams + ix->new_streams;
}

/* Puts a slot (fingerprint and relative position) into tab. */
static void
etab_put(uint64_t *tab, uint64_t cap, uint64_t slot)
{
	uint64_t mask = cap - 1, i = etab_home(slot >> FP_BITS, cap);

	while (tab[i] != 0)
		i = (i + 1) & mask;
	tab[i] = slot;
}

/* The slot of an event id (of hash h) at position pos. */
static uint64_t
etab_slot(const struct index *ix, uint64_t h, uint64_t pos)
{
	uint64_t rel = pos - ix->floor + 1;

	if (rel > REL_MASK)
		fatalx("index: more than %llu events above the on-disk index",
		    (unsigned long long)REL_MASK - 1);
	return h >> FP_BITS << FP_BITS | rel;
}

/*
 * A table of cap slots holding the slots of ix->etab whose positions
 * are at or above new_floor, made relative to it; rebuilt from the
 * fingerprints alone. cap is a power of 2 with room for all of them,
 * at most 2^32 (one home slot per fingerprint).
 */
static uint64_t *
etab_rebuild(struct index *ix, uint64_t cap, uint64_t new_floor,
    uint64_t *kept)
{
	uint64_t *ntab, i, slot, rel, drop = new_floor - ix->floor;

	if (cap > (1ull << FP_BITS))
		fatalx("index: event table over 2^32 slots");
	ntab = etab_alloc(cap);
	*kept = 0;
	for (i = 0; i < ix->etab_cap; i++) {
		if ((slot = ix->etab[i]) == 0)
			continue;
		rel = slot & REL_MASK;
		if (rel <= drop)
			continue;
		etab_put(ntab, cap, (slot & ~REL_MASK) | (rel - drop));
		(*kept)++;
	}
	return ntab;
}

static void
etab_grow(struct index *ix)
{
	uint64_t ncap = ix->etab_cap * 2, *ntab, kept;

	ntab = etab_rebuild(ix, ncap, ix->floor, &kept);
	etab_free(ix->etab, ix->etab_cap);
	ix->bytes += (ncap - ix->etab_cap) * sizeof(*ntab);
	ix->etab = ntab;
	ix->etab_cap = ncap;
}

void
index_add(struct index *ix, const struct ef_event *ev, uint64_t off)
{
	index_add_h(ix, ev, off, ix->bulk ? 0 : id_hash(ev->event_id));
}

void
index_add_h(struct index *ix, const struct ef_event *ev, uint64_t off,
    uint64_t h)
{
	uint64_t pos = ev->global_position, c = pos >> CHUNK_BITS, on_disk;
	struct stream *s;

	if (c >= MAX_CHUNKS)
		fatalx("index: log longer than %llu events",
		    (unsigned long long)MAX_CHUNKS << CHUNK_BITS);
	if (ix->chunks[c] == NULL) {
		ix->chunks[c] = malloc(CHUNK_SIZE * sizeof(uint64_t));
		if (ix->chunks[c] == NULL)
			fatal("malloc");
		ix->bytes += CHUNK_SIZE * sizeof(uint64_t);
		if (c >= ix->chunks_hi)
			ix->chunks_hi = c + 1;
	}
	ix->chunks[c][pos & (CHUNK_SIZE - 1)] = off;
	ix->added = pos + 1;

	/* events come in runs of one stream: the last one's first */
	s = ix->last;
	if (s == NULL || memcmp(s->id, ev->stream_id, UUID_LEN) != 0)
		s = index_stream(ix, ev->stream_id);
	if (s == NULL) {
		s = stream_create(ix, ev->stream_id);
		/* its older versions, if any, are on disk; a new stream is
		 * counted unless a partly indexed segment (a crash while it
		 * was being indexed) already put it there */
		s->base = s->n = ev->stream_version;
		if (s->base == 0 &&
		    (ix->disk == NULL ||
		        diskindex_stream_count(ix->disk, ev->stream_id,
		            &on_disk) != 0 ||
		        on_disk == 0))
			ix->new_streams++; /* a count only: an error counts */
	}
	if (s->n - s->base == s->cap) {
		uint64_t ncap = s->cap < 4 ? 4 : s->cap + s->cap / 2;

		s->pos = realloc(s->pos, ncap * sizeof(*s->pos));
		if (s->pos == NULL)
			fatal("realloc");
		ix->bytes += (ncap - s->cap) * sizeof(*s->pos);
		s->cap = ncap;
	}
	s->pos[s->n++ - s->base] = pos;
	ix->last = s;

	if (ix->bulk)
		return;
	if ((ix->etab_n + 1) * 4 > ix->etab_cap * 3)
		etab_grow(ix);
	etab_put(ix->etab, ix->etab_cap, etab_slot(ix, h, pos));
	ix->etab_n++;
}

void
index_bulk_begin(struct index *ix)
{
	ix->bulk = 1;
}

void
index_bulk_end(struct index *ix, uint64_t head)
{
	uint64_t cap = ix->etab_cap, pos;
	const uint8_t *rec;

	ix->bulk = 0;
	while ((head - ix->floor + 1) * 4 > cap * 3)
		cap *= 2;
	if (cap > (1ull << FP_BITS))
		fatalx("index: event table over 2^32 slots");
	if (cap != ix->etab_cap) {
		etab_free(ix->etab, ix->etab_cap);
		ix->etab = etab_alloc(cap);
		ix->bytes += (cap - ix->etab_cap) * sizeof(*ix->etab);
		ix->etab_cap = cap;
	}
	for (pos = ix->floor; pos < head; pos++) {
		rec = journal_at(ix->journal, index_offset(ix, pos));
		etab_put(ix->etab, ix->etab_cap,
		    etab_slot(ix, id_hash(rec + 48), pos));
	}
	ix->etab_n = head > ix->floor ? head - ix->floor : 0;
}

void
index_publish(struct index *ix, uint64_t head)
{
	__atomic_store_n(&ix->head, head, __ATOMIC_RELEASE);
}

static int
stream_cmp(const void *a, const void *b)
{
	const struct stream *x = *(struct stream *const *)a;
	const struct stream *y = *(struct stream *const *)b;

	return memcmp(x->id, y->id, UUID_LEN);
}

/* Brings ix->sorted up to date with the streams created since. */
static void
index_sort(struct index *ix, uint64_t n)
{
	struct stream **merged, **tail;
	uint64_t k = n - ix->nsorted, i = 0, j = 0, o = 0;

	tail = xcalloc(k, sizeof(*tail));
	memcpy(tail, ix->order + ix->nsorted, k * sizeof(*tail));
	qsort(tail, k, sizeof(*tail), stream_cmp);
	merged = xcalloc(n, sizeof(*merged));
	while (i < ix->nsorted && j < k)
		merged[o++] = stream_cmp(&ix->sorted[i], &tail[j]) < 0 ?
		    ix->sorted[i++] :
		    tail[j++];
	while (i < ix->nsorted)
		merged[o++] = ix->sorted[i++];
	while (j < k)
		merged[o++] = tail[j++];
	free(tail);
	free(ix->sorted);
	ix->sorted = merged;
	ix->nsorted = n;
}

uint64_t
index_list(struct index *ix, const uint8_t *after, uint64_t max,
    struct ipc_stream_info *out, bool *more)
{
	struct ipc_stream_info *disk = NULL;
	uint64_t lo = 0, hi, mid, n = 0, nd = 0, di = 0;
	struct stream *s;
	int rc, c;

	pthread_mutex_lock(&ix->sort_lock);
	pthread_rwlock_rdlock(&ix->lock);
	if (ix->nsorted < ix->nstreams)
		index_sort(ix, ix->nstreams);
	hi = ix->nsorted;
	if (after != NULL) {
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (memcmp(ix->sorted[mid]->id, after, UUID_LEN) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	/* streams on disk, merged in id order with those here (whose counts
	 * are the whole truth when a stream is in both) */
	if (ix->disk != NULL && ix->floor > 0 && max > 0) {
		if ((disk = calloc(max + 1, sizeof(*disk))) == NULL)
			fatal("calloc");
		if ((rc = diskindex_list(ix->disk, after, max + 1, disk,
		         &nd)) != 0) {
			pthread_rwlock_unlock(&ix->lock);
			pthread_mutex_unlock(&ix->sort_lock);
			free(disk);
			journal_set_fault("index: list streams: %s",
			    strerror(-rc));
			return INDEX_ERR;
		}
	}
	while (n < max && (lo < ix->nsorted || di < nd)) {
		s = lo < ix->nsorted ? ix->sorted[lo] : NULL;
		c = s == NULL ? 1 :
		    di == nd  ? -1 :
		                memcmp(s->id, disk[di].stream_id, UUID_LEN);
		if (c <= 0) {
			memcpy(out[n].stream_id, s->id, UUID_LEN);
			out[n].event_count = s->n;
			out[n].latest_version = s->n - 1;
			lo++;
			if (c == 0)
				di++;
		} else
			out[n] = disk[di++];
		n++;
	}
	*more = lo < ix->nsorted || di < nd;
	pthread_rwlock_unlock(&ix->lock);
	pthread_mutex_unlock(&ix->sort_lock);
	free(disk);
	return n;
}

/* Recomputes ix->bytes from what is held now. */
static void
index_measure(struct index *ix)
{
	uint64_t b = 0, i;

	for (i = ix->floor >> CHUNK_BITS; i < ix->chunks_hi; i++)
		if (ix->chunks[i] != NULL)
			b += CHUNK_SIZE * sizeof(uint64_t);
	b += ix->stab_cap * sizeof(*ix->stab) +
	    ix->order_cap * sizeof(*ix->order) +
	    ix->etab_cap * sizeof(*ix->etab);
	for (i = 0; i < ix->nstreams; i++)
		b += sizeof(struct stream) +
		    ix->order[i]->cap * sizeof(uint64_t);
	ix->bytes = b + ix->bloom_bytes +
	    (ix->disk != NULL ? __atomic_load_n(&ix->disk->filter_bytes,
	                            __ATOMIC_RELAXED) :
	                        0);
}

void
index_trim(struct index *ix, uint64_t new_floor, uint64_t disk_streams)
{
	struct stream *s;
	uint64_t c, i, k, kept = 0, cap, head, *etab;

	pthread_mutex_lock(&ix->sort_lock);
	pthread_rwlock_wrlock(&ix->lock);
	if (new_floor <= ix->floor)
		goto out;
	head = ix->added;
	/* offsets: whole chunks below the new floor */
	for (c = ix->floor >> CHUNK_BITS; (c + 1) << CHUNK_BITS <= new_floor;
	     c++) {
		free(ix->chunks[c]);
		ix->chunks[c] = NULL;
	}
	/* event ids of the tail only, from the table's own slots (they are
	 * relative to the floor) */
	cap = 1u << 16;
	while ((head - new_floor + 1) * 4 > cap * 3)
		cap *= 2;
	etab = etab_rebuild(ix, cap, new_floor, &ix->etab_n);
	etab_free(ix->etab, ix->etab_cap);
	ix->etab = etab;
	ix->etab_cap = cap;
	ix->floor = new_floor;
	ix->disk_streams = disk_streams;
	/* streams: keep the tail versions of those that have any */
	ix->new_streams = 0;
	ix->last = NULL;
	memset(ix->stab, 0, ix->stab_cap * sizeof(*ix->stab));
	for (i = 0; i < ix->nstreams; i++) {
		s = ix->order[i];
		for (k = 0; k < s->n - s->base && s->pos[k] < new_floor; k++)
			;
		if (k == s->n - s->base) {
			free(s->pos);
			free(s);
			continue;
		}
		memmove(s->pos, s->pos + k,
		    (s->n - s->base - k) * sizeof(*s->pos));
		s->base += k;
		if (s->base == 0)
			ix->new_streams++;
		ix->order[kept++] = s;
		stab_insert(ix->stab, ix->stab_cap, s);
	}
	ix->nstreams = kept;
	free(ix->sorted);
	ix->sorted = NULL;
	ix->nsorted = 0;
	index_measure(ix);
out:
	pthread_rwlock_unlock(&ix->lock);
	pthread_mutex_unlock(&ix->sort_lock);
}
