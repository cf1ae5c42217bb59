/* SPDX-License-Identifier: MIT */
/*
 * idfilter.c - one Bloom filter over the event ids of every indexed
 * segment (stored.h, "idfilter").
 *
 * Why: a new event id must be shown new without a disk read. Each sealed
 * segment has its own filter (diskindex.c), but asking all of them costs
 * a cache miss or two per segment, and their false positives add up: 83
 * segments at 1% each sent 57% of new ids to an LMDB lookup, inside the
 * writer, and appends over a 20M-event history ran at a tenth of an empty
 * store's rate (bench/RESULTS.md). One filter over all of them costs one
 * cache line per id whatever the number of segments, at a false-positive
 * rate that does not grow with the history.
 *
 * The filter is blocked: an id sets IDF_K bits inside one 512-bit block
 * (a cache line) chosen by the low half of its 128-bit xxh3 hash; the
 * high half gives the bits, 9 at a time. At IDF_BITS bits per id that
 * is about 0.5% false positives when full, 0.1% at the 1.5x headroom
 * the indexer leaves when it (re)builds it.
 *
 * Concurrency: only the indexer thread adds (bits are set with atomic
 * OR: lookups on other threads read the words at the same time); an id
 * counts as present only once `covers` has moved past its position,
 * which the indexer stores (release) after the segment's ids are in.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stored.h"

#define IDF_WORDS 8u /* 64-bit words in a block: 512 bits, a cache line */
#define IDF_K     7u /* bits an id sets in its block */

struct idfilter *
idfilter_new(uint64_t cap)
{
	struct idfilter *f;
	uint64_t nblocks = (cap * IDF_BITS + 511) / 512;

	if (nblocks == 0)
		nblocks = 1;
	if ((f = aligned_alloc(64, (sizeof(*f) + nblocks * IDF_WORDS * 8 +
	    63) / 64 * 64)) == NULL)
		fatal("aligned_alloc");
	f->nblocks = nblocks;
	f->cap = cap;
	f->n = 0;
	f->covers = 0;
	memset(f->words, 0, nblocks * IDF_WORDS * 8);
	return f;
}

uint64_t
idfilter_bytes(const struct idfilter *f)
{
	return f != NULL ? sizeof(*f) + f->nblocks * IDF_WORDS * 8 : 0;
}

static uint64_t *
block_of(const struct idfilter *f, XXH128_hash_t h)
{
	/* the high 64 bits of low64 * nblocks: a block, without a division */
	uint64_t b = (uint64_t)(((unsigned __int128)h.low64 * f->nblocks) >>
	    64);

	return (uint64_t *)&f->words[b * IDF_WORDS];
}

void
idfilter_add(struct idfilter *f, XXH128_hash_t h)
{
	uint64_t *blk = block_of(f, h), bits = h.high64;
	unsigned i, bit;

	for (i = 0; i < IDF_K; i++, bits >>= 9) {
		bit = (unsigned)(bits & 511);
		__atomic_fetch_or(&blk[bit / 64], 1ull << (bit % 64),
		    __ATOMIC_RELAXED);
	}
}

int
idfilter_maybe(const struct idfilter *f, XXH128_hash_t h)
{
	const uint64_t *blk = block_of(f, h);
	uint64_t bits = h.high64;
	unsigned i, bit;

	for (i = 0; i < IDF_K; i++, bits >>= 9) {
		bit = (unsigned)(bits & 511);
		if (!(__atomic_load_n(&blk[bit / 64], __ATOMIC_RELAXED) >>
		    (bit % 64) & 1))
			return 0;
	}
	return 1;
}
