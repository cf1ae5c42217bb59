/* SPDX-License-Identifier: MIT */
/*
 * diskindex.h - eventfold-stored's index of sealed segments (LMDB),
 * their Bloom filters and the filter over every indexed id.
 */
#ifndef EF_STORED_DISKINDEX_H
#define EF_STORED_DISKINDEX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>
#include <xxhash.h>

#include "ipc.h"

struct segment;

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

#endif
