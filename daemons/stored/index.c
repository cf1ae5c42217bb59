/* SPDX-License-Identifier: MIT */
/*
 * index.c - the in-memory index of eventfold-stored: locations, never
 * event bodies (see stored.h).
 *
 *   position -> journal offset   chunked array, 8 bytes an event; chunks
 *                                never move, so readers need no lock
 *   stream id -> its positions   hash of struct stream, 8 bytes an event
 *   event id -> position         open addressing, one 8-byte slot holding
 *                                a 24-bit fingerprint and the position;
 *                                a fingerprint match is confirmed
 *                                against the event id in the journal
 *
 * That is about 8 + 8 + 8/load bytes an event, plus each stream's
 * header. Only the writer changes the index; stream structures are read
 * under the rwlock, offsets below the published head without one.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "log.h"
#include "stored.h"

#define CHUNK_BITS 16
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS (1u << 22) /* 2^38 events */
#define POS_BITS   40
#define POS_MASK   ((1ull << POS_BITS) - 1)

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

void
index_init(struct index *ix, const struct journal *j)
{
	memset(ix, 0, sizeof(*ix));
	pthread_rwlock_init(&ix->lock, NULL);
	pthread_mutex_init(&ix->sort_lock, NULL);
	ix->journal = j;
	/* virtual until touched: calloc of a large block maps zero pages */
	ix->chunks = xcalloc(MAX_CHUNKS, sizeof(*ix->chunks));
	ix->stab_cap = 1024;
	ix->stab = xcalloc(ix->stab_cap, sizeof(*ix->stab));
	ix->etab_cap = 1u << 16;
	ix->etab = xcalloc(ix->etab_cap, sizeof(*ix->etab));
	ix->bytes = ix->stab_cap * sizeof(*ix->stab) +
	    ix->etab_cap * sizeof(*ix->etab);
}

void
index_free(struct index *ix)
{
	uint64_t i;

	if (ix->chunks != NULL)
		for (i = 0; i < MAX_CHUNKS && ix->chunks[i] != NULL; i++)
			free(ix->chunks[i]);
	free(ix->chunks);
	for (i = 0; i < ix->nstreams; i++) {
		free(ix->order[i]->pos);
		free(ix->order[i]);
	}
	free(ix->order);
	free(ix->stab);
	free(ix->etab);
	free(ix->sorted);
	pthread_rwlock_destroy(&ix->lock);
	pthread_mutex_destroy(&ix->sort_lock);
	memset(ix, 0, sizeof(*ix));
}

uint64_t
index_offset(const struct index *ix, uint64_t pos)
{
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

static int
event_matches(const struct index *ix, uint64_t pos,
    const uint8_t id[UUID_LEN])
{
	const uint8_t *rec = journal_at(ix->journal, index_offset(ix, pos));

	return memcmp(rec + 48, id, UUID_LEN) == 0;
}

int64_t
index_event(const struct index *ix, const uint8_t id[UUID_LEN])
{
	uint64_t h = id_hash(id), mask = ix->etab_cap - 1, i = h & mask;
	uint64_t fp = h >> POS_BITS, slot;

	while ((slot = ix->etab[i]) != 0) {
		if (slot >> POS_BITS == fp &&
		    event_matches(ix, (slot & POS_MASK) - 1, id))
			return (int64_t)((slot & POS_MASK) - 1);
		i = (i + 1) & mask;
	}
	return -1;
}

static void
etab_put(uint64_t *tab, uint64_t cap, uint64_t h, uint64_t pos)
{
	uint64_t mask = cap - 1, i = h & mask;

	while (tab[i] != 0)
		i = (i + 1) & mask;
	tab[i] = (h >> POS_BITS) << POS_BITS | (pos + 1);
}

static void
etab_grow(struct index *ix)
{
	uint64_t ncap = ix->etab_cap * 2, *ntab, i, slot, pos;
	const uint8_t *rec;

	ntab = xcalloc(ncap, sizeof(*ntab));
	for (i = 0; i < ix->etab_cap; i++) {
		if ((slot = ix->etab[i]) == 0)
			continue;
		pos = (slot & POS_MASK) - 1;
		rec = journal_at(ix->journal, index_offset(ix, pos));
		etab_put(ntab, ncap, id_hash(rec + 48), pos);
	}
	free(ix->etab);
	ix->bytes += (ncap - ix->etab_cap) * sizeof(*ntab);
	ix->etab = ntab;
	ix->etab_cap = ncap;
}

void
index_add(struct index *ix, const struct ef_event *ev, uint64_t off)
{
	uint64_t pos = ev->global_position, c = pos >> CHUNK_BITS;
	struct stream *s;

	if (c >= MAX_CHUNKS)
		fatalx("index: log longer than %llu events",
		    (unsigned long long)MAX_CHUNKS << CHUNK_BITS);
	if (ix->chunks[c] == NULL) {
		ix->chunks[c] = malloc(CHUNK_SIZE * sizeof(uint64_t));
		if (ix->chunks[c] == NULL)
			fatal("malloc");
		ix->bytes += CHUNK_SIZE * sizeof(uint64_t);
	}
	ix->chunks[c][pos & (CHUNK_SIZE - 1)] = off;

	if ((s = index_stream(ix, ev->stream_id)) == NULL)
		s = stream_create(ix, ev->stream_id);
	if (s->n == s->cap) {
		uint64_t ncap = s->cap < 4 ? 4 : s->cap + s->cap / 2;

		s->pos = realloc(s->pos, ncap * sizeof(*s->pos));
		if (s->pos == NULL)
			fatal("realloc");
		ix->bytes += (ncap - s->cap) * sizeof(*s->pos);
		s->cap = ncap;
	}
	s->pos[s->n++] = pos;

	if (ix->bulk)
		return;
	if ((ix->etab_n + 1) * 4 > ix->etab_cap * 3)
		etab_grow(ix);
	etab_put(ix->etab, ix->etab_cap, id_hash(ev->event_id), pos);
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
	while ((head + 1) * 4 > cap * 3)
		cap *= 2;
	if (cap != ix->etab_cap) {
		free(ix->etab);
		ix->etab = xcalloc(cap, sizeof(*ix->etab));
		ix->bytes += (cap - ix->etab_cap) * sizeof(*ix->etab);
		ix->etab_cap = cap;
	}
	for (pos = ix->journal->base; pos < head; pos++) {
		rec = journal_at(ix->journal, index_offset(ix, pos));
		etab_put(ix->etab, ix->etab_cap, id_hash(rec + 48), pos);
	}
	ix->etab_n = head > ix->journal->base ? head - ix->journal->base : 0;
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
		    ix->sorted[i++] : tail[j++];
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
	uint64_t lo = 0, hi, mid, n = 0;
	struct stream *s;

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
	for (; lo < ix->nsorted && n < max; lo++, n++) {
		s = ix->sorted[lo];
		memcpy(out[n].stream_id, s->id, UUID_LEN);
		out[n].event_count = s->n;
		out[n].latest_version = s->n - 1;
	}
	*more = lo < ix->nsorted;
	pthread_rwlock_unlock(&ix->lock);
	pthread_mutex_unlock(&ix->sort_lock);
	return n;
}
