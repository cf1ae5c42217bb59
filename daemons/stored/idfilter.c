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
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	if ((f = aligned_alloc(64,
	         (sizeof(*f) + nblocks * IDF_WORDS * 8 + 63) / 64 * 64)) ==
	    NULL)
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
		            (bit % 64) &
		        1))
			return 0;
	}
	return 1;
}

/*
 * The filter kept across a clean stop, beside the LMDB environment it was
 * built from (index/idfilter). Why: building it means reading every id of
 * the ids table; at 20M ids on this VM that took 3-70 s, during which new
 * ids went through each segment's filter and a SIGTERM waited for the
 * build. The file is a cache of the index, as the index is of the log:
 * it is written at a clean stop (temporary file, rename; no fsync: a torn
 * file fails its checksum), taken back only when it covers exactly the
 * positions the index holds, and removed whenever it is read, so that a
 * crash after the index moved on can never bring an older filter back.
 *
 *   magic "EFIDFLT1", then nblocks, cap, n, covers, XXH64 of the words
 *   (little-endian u64 each), then the words.
 */
#define IDF_MAGIC "EFIDFLT1"

struct idf_file {
	char magic[8];
	uint64_t nblocks, cap, n, covers, sum;
};

int
idfilter_save(const struct idfilter *f, const char *path)
{
	struct idf_file h;
	char tmp[4300];
	size_t len = f->nblocks * IDF_WORDS * 8;
	int fd, rc = 0;

	memcpy(h.magic, IDF_MAGIC, 8);
	h.nblocks = f->nblocks;
	h.cap = f->cap;
	h.n = f->n;
	h.covers = __atomic_load_n(&f->covers, __ATOMIC_ACQUIRE);
	h.sum = XXH64(f->words, len, 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) <
	    0)
		return -errno;
	if (write(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    write(fd, f->words, len) != (ssize_t)len)
		rc = errno != 0 ? -errno : -EIO;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		(void)unlink(tmp);
	return rc;
}

struct idfilter *
idfilter_load(const char *path, uint64_t covers)
{
	struct idfilter *f = NULL;
	struct idf_file h;
	size_t len;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	(void)unlink(path);
	if (read(fd, &h, sizeof(h)) != (ssize_t)sizeof(h) ||
	    memcmp(h.magic, IDF_MAGIC, 8) != 0 || h.covers != covers ||
	    h.cap == 0 || h.cap > (UINT64_C(1) << 36))
		goto bad;
	f = idfilter_new(h.cap);
	len = f->nblocks * IDF_WORDS * 8;
	if (f->nblocks != h.nblocks ||
	    read(fd, f->words, len) != (ssize_t)len ||
	    XXH64(f->words, len, 0) != h.sum)
		goto bad;
	close(fd);
	f->n = h.n;
	f->covers = h.covers;
	return f;
bad:
	log_info("index: %s does not match the index; the filter over "
	         "event ids is built again",
	    path);
	free(f);
	close(fd);
	return NULL;
}
