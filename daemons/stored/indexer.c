/* SPDX-License-Identifier: MIT */
/*
 * indexer.c - the background thread that indexes sealed segments on
 * disk (diskindex.c), oldest first, one durable LMDB transaction per
 * segment, and then trims the in-memory index of what is now on disk
 * (index_trim). Woken by the writer whenever it seals a segment; at
 * start it catches up on every sealed segment past the indexed position
 * (all of them after the index was deleted: a rebuild, logged with its
 * progress).
 *
 * Nothing here is on the append path: the writer never waits for it.
 * An indexing failure (disk full) is logged and retried later; what is
 * not indexed stays in RAM, so nothing is ever unanswerable.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"
#include "stored.h"

#define RETRY_MS 5000

/* The next sealed segment to index, or NULL. */
static struct segment *
next_sealed(struct stored *sd)
{
	const struct journal *j = &sd->journal;
	uint64_t n = journal_nsegs(j), to, k;
	struct segment *s;

	to = __atomic_load_n(&sd->disk.indexed_to, __ATOMIC_ACQUIRE);
	k = journal_find(j, to);
	if (k >= n)
		return NULL;
	s = j->segs[k];
	if (s->base != to || !__atomic_load_n(&s->sealed, __ATOMIC_ACQUIRE))
		return NULL;
	return s;
}

static uint64_t
unindexed(struct stored *sd)
{
	uint64_t n = journal_nsegs(&sd->journal), k, c = 0;

	for (k = 0; k < n; k++)
		if (sd->journal.segs[k]->bloom == NULL &&
		    __atomic_load_n(&sd->journal.segs[k]->sealed,
		        __ATOMIC_ACQUIRE))
			c++;
	return c;
}

/*
 * (Re)builds the filter over every indexed id (idfilter.c) when there is
 * none yet (start) or it holds more ids than it was sized for. Until it
 * is built, lookups ask each segment's filter; a failed build is logged
 * and tried again after the next segment.
 */
static void
filter_grow(struct stored *sd)
{
	int rc;

	if (!diskindex_filter_full(&sd->disk))
		return;
	if ((rc = diskindex_filter_build(&sd->disk, &sd->indexer.exit)) ==
	    -ECANCELED)
		return;
	if (rc != 0)
		log_warnx("index: cannot build the filter over event ids: %s",
		    strerror(-rc));
}

static void *
indexer_main(void *arg)
{
	struct stored *sd = arg;
	struct segment *s = NULL;
	struct timespec dl;
	uint64_t t0, total = unindexed(sd), done = 0;
	int rc;

	if (total > 1)
		log_info("index: %" PRIu64 " sealed segments to index", total);
	filter_grow(sd);
	for (;;) {
		pthread_mutex_lock(&sd->indexer.mu);
		while (!sd->indexer.exit && (s = next_sealed(sd)) == NULL)
			pthread_cond_wait(&sd->indexer.cv, &sd->indexer.mu);
		pthread_mutex_unlock(&sd->indexer.mu);
		if (sd->indexer.exit) {
			diskindex_filter_keep(&sd->disk);
			break;
		}
		t0 = mono_ms();
		rc = diskindex_add_segment(&sd->disk, s);
		if (rc != 0) {
			log_warnx("index: %s: %s; retrying in %d s", s->path,
			    strerror(-rc), RETRY_MS / 1000);
			pthread_mutex_lock(&sd->indexer.mu);
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += RETRY_MS / 1000;
			if (!sd->indexer.exit)
				pthread_cond_timedwait(&sd->indexer.cv,
				    &sd->indexer.mu, &dl);
			pthread_mutex_unlock(&sd->indexer.mu);
			continue;
		}
		__atomic_add_fetch(&sd->index.bloom_bytes,
		    s->bloom->nbits / 8 + sizeof(*s->bloom), __ATOMIC_RELAXED);
		/* the pass mapped the whole segment into our resident set:
		 * give the pages back (they stay in the page cache); pinned,
		 * since the archiver may take the segment (and its map) as
		 * soon as its filter is set */
		journal_pin(&sd->journal);
		if (s->map != NULL && !s->zst_only)
			(void)madvise((void *)s->map, s->map_cap,
			    MADV_DONTNEED);
		diskindex_release(&sd->disk);
		index_trim(&sd->index, s->next, diskindex_nstreams(&sd->disk));
		journal_unpin();
		archiver_wake(sd);
		filter_grow(sd);
		done++;
		if (total > 1)
			log_info("index: %s indexed (%" PRIu64
			         " events in %" PRIu64 " ms); %" PRIu64
			         " of %" PRIu64 " segments",
			    s->path, s->next - s->base, mono_ms() - t0, done,
			    total);
		else
			log_debug("index: %s indexed (%" PRIu64
			          " events in %" PRIu64 " ms)",
			    s->path, s->next - s->base, mono_ms() - t0);
		if (done >= total)
			total = 0; /* caught up: quieter from now on */
	}
	return NULL;
}

int
indexer_start(struct stored *sd)
{
	return bgthread_start(&sd->indexer, indexer_main, sd);
}

void
indexer_wake(struct stored *sd)
{
	bgthread_wake(&sd->indexer);
}

void
indexer_stop(struct stored *sd)
{
	bgthread_stop(&sd->indexer);
}
