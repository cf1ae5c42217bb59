/* SPDX-License-Identifier: MIT */
/*
 * stored.h - private structures of eventfold-stored.
 *
 * Threads: one writer (writer.c) is the only one that appends to the
 * journal and changes the index. Requests are handled in nng aio
 * callbacks (dispatch.c), one state machine per nng context: reads are
 * served straight from the mapped journal (or from decompressed frames
 * of archived segments, archiver.c); appends are handed to the
 * writer, which sends their replies itself once they are durable. Readers see
 * only what is committed: index.head is published (release) after the batch is
 * durable and the index updated.
 */
#ifndef EF_STORED_H
#define EF_STORED_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>
#include <xxhash.h>
#include <nng/nng.h>

#include "ipc.h"
#include "record.h"

struct archive;
struct archive_cache;
struct writer;

struct stored_conf {
	char *data_dir;
	char *runtime_dir;
	char *store_url;  /* overrides runtime_dir/store.sock */
	char *events_url; /* overrides runtime_dir/store-events.sock */
	uint64_t workers;
	uint64_t max_read_count;
	uint64_t max_read_bytes;
	uint64_t max_append_bytes;
	uint64_t max_pub_bytes;
	uint64_t segment_size;
	int repair;
	uint64_t hot_segments;       /* sealed segments kept plain */
	uint64_t archive_frame_size; /* zstd frame input (archive.h) */
	uint64_t archive_level;
	uint64_t archive_cache_mb; /* decompressed frame cache budget */
};

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

/* A Bloom filter of a sealed segment's event ids (diskindex.c). */
struct bloom {
	uint64_t nbits;
	uint64_t bits[];
};

/* One filter over the ids of every indexed segment (idfilter.c). */
#define IDF_BITS 12 /* per id at capacity */
struct idfilter {
	uint64_t nblocks; /* 512-bit blocks */
	uint64_t cap;     /* ids it is sized for */
	uint64_t n;       /* ids in it (the indexer's count) */
	uint64_t covers;  /* atomic: the ids of positions below are in it */
	uint64_t words[];
};
struct idfilter *idfilter_new(uint64_t cap);
uint64_t idfilter_bytes(const struct idfilter *f);
void idfilter_add(struct idfilter *f, XXH128_hash_t h);
int idfilter_maybe(const struct idfilter *f, XXH128_hash_t h);
/* Kept across a clean stop (index/idfilter); load takes it back only if
 * it covers exactly `covers`, and removes the file in any case. */
int idfilter_save(const struct idfilter *f, const char *path);
struct idfilter *idfilter_load(const char *path, uint64_t covers);

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

/*
 * diskindex.c: the index of sealed segments in LMDB (data_dir/index).
 * Lookups open their own read transaction and may run on any thread;
 * only the indexer thread writes. Functions return 0 or a negative
 * errno (-ENOENT: no such key); LMDB codes are translated there.
 */
struct diskindex {
	char dir[4200];
	MDB_env *env;
	MDB_dbi meta, pos, sver, streams, ids, blooms;
	uint64_t map_size;
	/* read transactions hold it shared; growing the map takes it
	 * exclusive (LMDB: no transaction may be open in the process) */
	pthread_rwlock_t grow_lock;
	uint64_t indexed_to; /* positions below are indexed (atomic) */
	uint64_t last_base;  /* the last segment indexed ... */
	uint64_t last_bytes; /* ... and its size */
	int has_last;
	/* the filter over every indexed id: built, grown and filled by the
	 * indexer thread, read by lookups under filter_lock (shared); NULL
	 * until the first build */
	pthread_rwlock_t filter_lock;
	struct idfilter *filter;
	uint64_t filter_bytes; /* atomic */
};

/* Opens (creating) data_dir/index; empties it if it does not match the
 * segments in data_dir (logged). Open after any fork. */
int diskindex_open(struct diskindex *d, const char *data_dir);
void diskindex_close(struct diskindex *d);
/* Gives back the resident pages of the LMDB map (they stay cached). */
void diskindex_release(struct diskindex *d);
/* Indexer: indexes sealed segment s in one durable transaction (which
 * moves indexed_to to its end), then sets s->bloom. */
int diskindex_add_segment(struct diskindex *d, struct segment *s);
/* Start: reads s's Bloom filter back into s->bloom. */
int diskindex_load_bloom(struct diskindex *d, struct segment *s);
/* The batch holding pos: its segment's base and frame offset. */
int diskindex_batch_of(struct diskindex *d, uint64_t pos, uint64_t *seg_base,
    uint64_t *off);
/* Events of a stream on disk into *n (0 if none); 0 or -errno. */
int diskindex_stream_count(struct diskindex *d, const uint8_t sid[UUID_LEN],
    uint64_t *n);
/* Positions of versions from, from +- 1, ... (n of them) into out. */
int diskindex_stream_range(struct diskindex *d, const uint8_t sid[UUID_LEN],
    uint64_t from, uint64_t n, int backward, uint64_t *out);
int diskindex_event(struct diskindex *d, const uint8_t id[UUID_LEN],
    uint64_t *pos);
/* Indexer: (re)builds the filter over every indexed id from the ids
 * table, sized for 1.5 times their number (or, at start, takes back the
 * one kept at the last clean stop); 0, -ECANCELED once *stop is set, or
 * -errno. */
int diskindex_filter_build(struct diskindex *d, const int *stop);
/* At a clean stop: keeps the filter for the next start (idfilter_save). */
void diskindex_filter_keep(struct diskindex *d);
/* Whether the filter must grow (more ids than it was sized for). */
bool diskindex_filter_full(struct diskindex *d);
/* Is the id with hash h (bloom_hash) maybe below floor? 1 maybe, 0 no,
 * -1 the filter does not cover floor yet (ask the segments' filters). */
int diskindex_filter_maybe(struct diskindex *d, XXH128_hash_t h,
    uint64_t floor);
uint64_t diskindex_nstreams(struct diskindex *d);
/* Up to max streams with id > after (or from the first), sorted. */
int diskindex_list(struct diskindex *d, const uint8_t *after, uint64_t max,
    struct ipc_stream_info *out, uint64_t *n);

struct bloom *bloom_new(uint64_t nitems);
/* The hash the filters take: computed once per id. */
XXH128_hash_t bloom_hash(const uint8_t id[UUID_LEN]);
void bloom_add(struct bloom *b, XXH128_hash_t h);
int bloom_maybe(const struct bloom *b, XXH128_hash_t h);

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

/* writer.c: group commit. */
struct append_job {
	int op; /* EF_OP_APPEND or _IMPORT, or EF_OP_ROTATE/BACKUP
	           (no req) */
	/* in: validated request (pointers valid until the reply is sent) */
	const struct ipc_append_req *req;
	uint8_t stream_id[UUID_LEN];
	uint8_t (*ids)[UUID_LEN];
	/* in: the first event type or size error of the request, found
	 * before the writer and reported by it after the replay and
	 * expected-version checks (the contract's order); EF_S_OK if none */
	int late_status;
	char late_msg[256];
	/* out */
	int status;
	bool replay; /* OK without writing: the ids were stored */
	char msg[256];
	struct ipc_append_rep rep;
	struct ipc_conflict conflict;
	struct ipc_rotate_rep rot; /* EF_OP_ROTATE */
	/* EF_OP_IMPORT: whole events (views into the request), and out */
	const struct ef_event *imp;
	uint32_t nimp;
	bool keep_positions;
	struct ipc_import_rep irep;
	/* an IMPORT of an ordered run (ipc.h; run 0: none): committed in
	 * seq order; a job that arrives early waits in the writer (since
	 * held_ms). A job refused before the writer still comes to it,
	 * with its status set, so that the run knows it failed. */
	uint64_t run, seq;
	uint64_t held_ms;
	struct {                  /* EF_OP_BACKUP: the log between batches */
		uint64_t head;    /* positions below are committed */
		uint64_t nsegs;   /* segments then, the hot one last */
		uint64_t hot_end; /* its committed bytes */
	} snap;
	/* called by the writer thread once the job is committed or refused;
	 * the writer touches the job no more after it */
	void (*complete)(struct append_job *job);
	struct append_job *next;
	int caller; /* counts as a caller in qlen (the first of its message) */
};

struct stats {
	uint64_t commits; /* appends that wrote; replays are not */
	uint64_t fsyncs;
	uint64_t events_written;
	uint64_t recover_ms;
	uint64_t recovered_events; /* read from the log at start */
	uint64_t start_ms;
};

struct stored {
	struct stored_conf conf;
	struct journal journal;
	struct diskindex disk;
	struct index index;
	struct stats stats;
	struct writer *writer; /* writer.c's queue and thread */
	int stopping;          /* atomic: no new requests */
	/* publish socket, used by the writer only */
	nng_socket pub;
	/* indexer thread (indexer.c) */
	pthread_t indexer;
	pthread_mutex_t imu;
	pthread_cond_t icv;
	int indexer_exit;
	int indexer_running;
	/* archiver thread (archiver.c) */
	pthread_t archiver;
	pthread_mutex_t amu;
	pthread_cond_t acv;
	int archiver_exit;
	int archiver_running;
	/* held by the archiver while it archives a segment, and by a
	 * backup from start to end (backup.c): no segment changes form */
	pthread_mutex_t ahold;
	uint64_t archive_now;    /* ARCHIVE requests not yet served */
	uint64_t archive_done;   /* ARCHIVE passes finished */
	uint64_t archived_segs;  /* atomic, for STATUS */
	uint64_t archived_bytes; /* .zst bytes; atomic */
	uint64_t archived_raw;   /* segment bytes they hold; atomic */
};

/*
 * archiver.c: compresses sealed, indexed segments past the newest
 * hot_segments into archives in the background (see the file's top
 * comment for the durability rule).
 */
int archiver_start(struct stored *sd);
void archiver_wake(struct stored *sd); /* a segment was indexed */
void archiver_stop(struct stored *sd);
/* ARCHIVE: archives the oldest eligible segment now (the caller loops
 * for all, reporting progress); blocks until done. 0 (rep->archived is
 * false if none was eligible) or a negative errno. */
int archiver_step(struct stored *sd, struct ipc_archive_rep *rep);
/* Startup, before anything lists segments: archive_cleanup(). */
int archiver_cleanup(const char *data_dir);
/*
 * journal_open: loads the segment named base that exists only as an
 * archive. With expand, the archive is decompressed into memory (s->map)
 * so that recovery and the indexer can read it as if it were plain (an
 * index rebuild); otherwise it is read through its archive. 0, -EBADMSG
 * (bad names the archive and offset), or -errno.
 */
int archiver_load(struct journal *j, uint64_t base, int expand,
    struct segment **out, uint64_t *size, struct journal_bad *bad);
/* The size of the segment named base in dir, plain or archived. */
int archiver_segment_size(const char *dir, uint64_t base, uint64_t *size);
/* Free the archive of a segment (segment_free). */
void archiver_segment_free(struct segment *s);

/*
 * backup.c: BACKUP into dir (absolute; absent or an empty directory),
 * on the caller's thread, which must not be the writer's. 0 with rep
 * filled; or -EINVAL/-EEXIST (bad dir), -EBUSY (a backup is running),
 * -ECANCELED (stored is stopping), another negative errno; why says
 * what went wrong. Nothing is left at dir unless it succeeded.
 */
int backup_run(struct stored *sd, const char *dir, struct ipc_backup_rep *rep,
    char *why, size_t whylen);

/* indexer.c: indexes sealed segments on disk in the background. */
int indexer_start(struct stored *sd);
void indexer_wake(struct stored *sd); /* a segment was sealed */
void indexer_stop(struct stored *sd);

/* writer.c: group commit; 0 or a negative errno. */
int writer_start(struct stored *sd);
/*
 * Queues job; job->complete runs on the writer thread when it is done.
 * An EF_OP_ROTATE job seals the hot segment after the batch it is taken
 * with (see journal_rotate); its outcome is in job->rot.
 */
void writer_submit(struct stored *sd, struct append_job *job);
/*
 * Queues the n jobs linked from first (by next) together and in order,
 * as one caller: they are taken into the same batch unless it passes
 * its size bound, and the gathering step counts them once.
 */
void writer_submit_list(struct stored *sd, struct append_job *first,
    uint64_t n);
/* Callers in the queue and mono_ms() of the writer's last commit, for
 * the watchdog (stored.c). */
void writer_load(struct stored *sd, uint64_t *waiting, uint64_t *beat_ms);
/* Drains the queue, stops the thread and frees the queue. */
void writer_stop(struct stored *sd);
/* Refuses job: its status and message (printf-style). */
void job_fail(struct append_job *job, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* dispatch.c: contexts on the rep socket. */
/* 0 or a negative errno (-EADDRINUSE: the name is another's). */
int dispatch_start(struct stored *sd, const char *url);
void dispatch_stop(struct stored *sd);

uint64_t now_ms(void);
uint64_t mono_ms(void);

#endif
