/* SPDX-License-Identifier: MIT */
/*
 * diskindex.c - the on-disk index of sealed segments, in LMDB (an
 * environment in data_dir/index), written by one background thread and
 * read by the writer and the request handlers.
 *
 * The log stays the truth: this is a cache of it. Delete the directory
 * and stored rebuilds it from the segments. Named databases:
 *
 *   meta     "state" -> indexed_to, last_base, last_bytes (le64 each)
 *   pos      be64 first position of a batch -> le64 segment base,
 *            le64 offset of the batch frame (sparse: one per batch)
 *   sver     stream id + be64 version -> le64 position
 *   streams  stream id -> le64 event count (keys sort: ListStreams)
 *   ids      event id -> le64 position
 *   blooms   be64 segment base -> le64 size, le64 next position, then
 *            the segment's Bloom filter of event ids (one per segment)
 *
 * Durability rules:
 *   - A sealed segment is indexed in transactions of a bounded size; the
 *     last one writes its Bloom filter, moves `indexed_to` to the
 *     segment's end and names the segment (base and size) as the last
 *     one indexed. LMDB's commits are durable (no MDB_NOSYNC), so after a
 *     crash the index covers whole segments exactly up to indexed_to, plus
 *     perhaps true facts about positions past it that nothing asks it
 *     (they are in the RAM tier) and that indexing them again rewrites;
 *     a stream first seen there is not counted twice (index_add asks).
 *   - At start, every indexed segment must be in the directory with the
 *     size it had and followed by the segment starting where it ended, the
 *     last one by a segment starting at indexed_to (a stat per segment, no
 *     read); otherwise the index is emptied and rebuilt (logged).
 *   - RAM entries for positions below indexed_to are dropped only after
 *     the commit (by the writer, see index_trim).
 *
 * Caveats: open LMDB after any fork, never before (stored does not
 * fork). The map is large and sparse; MDB_MAP_FULL aborts the
 * transaction, grows the map (no transaction open) and retries.
 * Crash points: index.between_chunks, index.before_commit (the last
 * transaction of a segment), index.after_commit.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "be64.h"
#include "crashpoint.h"
#include "errors.h"
#include "log.h"
#include "segfile.h"
#include "stored.h"

#define MAP_INITIAL (1ull << 30)
#define BLOOM_BITS  10 /* per event: about 1% false positives */
#define BLOOM_K     7

/* LMDB's codes become negative errnos here, once (errors.h). */
static inline int
mdb_err(int rc)
{
	return ef_err_from_mdb(rc);
}

/*
 * Read transactions. Lookups run on any thread while the indexer may
 * have to grow the map, which LMDB allows only with no transaction open
 * in the process (growing it under a reader crashed stored in the
 * 20M-event benchmark): readers hold grow_lock shared from begin to
 * end. Test builds can make the lookups fail (crashpoint.h).
 */
static int
read_begin_nofault(struct diskindex *d, MDB_txn **t)
{
	int rc;

	pthread_rwlock_rdlock(&d->grow_lock);
	if ((rc = mdb_txn_begin(d->env, NULL, MDB_RDONLY, t)) != 0)
		pthread_rwlock_unlock(&d->grow_lock);
	return rc;
}

static int
read_begin(struct diskindex *d, MDB_txn **t)
{
	if (faultpoint("index.read"))
		return EIO;
	return read_begin_nofault(d, t);
}

static void
read_end(struct diskindex *d, MDB_txn *t)
{
	mdb_txn_abort(t);
	pthread_rwlock_unlock(&d->grow_lock);
}

/* ---- Bloom filters ---------------------------------------------------- */

struct bloom *
bloom_new(uint64_t nitems)
{
	struct bloom *b;
	uint64_t words = (nitems * BLOOM_BITS + 63) / 64;

	if (words == 0)
		words = 1;
	if ((b = calloc(1, sizeof(*b) + words * 8)) == NULL)
		fatal("calloc");
	b->nbits = words * 64;
	return b;
}

XXH128_hash_t
bloom_hash(const uint8_t id[UUID_LEN])
{
	return XXH3_128bits(id, UUID_LEN);
}

void
bloom_add(struct bloom *b, XXH128_hash_t h)
{
	uint64_t i, bit;

	for (i = 0; i < BLOOM_K; i++) {
		bit = (h.low64 + i * h.high64) % b->nbits;
		b->bits[bit / 64] |= 1ull << (bit % 64);
	}
}

int
bloom_maybe(const struct bloom *b, XXH128_hash_t h)
{
	uint64_t i, bit;

	for (i = 0; i < BLOOM_K; i++) {
		bit = (h.low64 + i * h.high64) % b->nbits;
		if (!(b->bits[bit / 64] >> (bit % 64) & 1))
			return 0;
	}
	return 1;
}

/* ---- open, check, reset ---------------------------------------------- */

/* The databases (see the top of this file): dbs_all opens them all
 * (DBS_OPEN) or empties them all (DBS_DROP). */
static const struct {
	const char *name;
	size_t off; /* of its MDB_dbi in struct diskindex */
} dbs[] = {
	{ "meta", offsetof(struct diskindex, meta) },
	{ "pos", offsetof(struct diskindex, pos) },
	{ "sver", offsetof(struct diskindex, sver) },
	{ "streams", offsetof(struct diskindex, streams) },
	{ "ids", offsetof(struct diskindex, ids) },
	{ "blooms", offsetof(struct diskindex, blooms) },
};
#define NDBS      (sizeof(dbs) / sizeof(dbs[0]))
#define DBI(d, i) ((MDB_dbi *)((char *)(d) + dbs[i].off))
#define DBS_OPEN  0
#define DBS_DROP  1

static int
read_meta(struct diskindex *d, MDB_txn *t)
{
	MDB_val k = { 5, (void *)"state" }, v;
	const uint8_t *p;
	int rc;

	if ((rc = mdb_get(t, d->meta, &k, &v)) == MDB_NOTFOUND) {
		d->indexed_to = d->last_base = d->last_bytes = 0;
		d->has_last = 0;
		return 0;
	}
	if (rc != 0)
		return mdb_err(rc);
	if (v.mv_size != 24)
		return -EBADMSG;
	p = v.mv_data;
	d->indexed_to = get_le64(p);
	d->last_base = get_le64(p + 8);
	d->last_bytes = get_le64(p + 16);
	d->has_last = 1;
	return 0;
}

/*
 * One transaction over every database: DBS_OPEN opens them (creating
 * any missing) and reads the index's state; DBS_DROP empties them and
 * the state (the index is then rebuilt from the log). 0 or a negative
 * errno.
 */
static int
dbs_all(struct diskindex *d, int drop)
{
	MDB_txn *t;
	size_t i;
	int rc;

	if ((rc = mdb_txn_begin(d->env, NULL, 0, &t)) != 0)
		return mdb_err(rc);
	for (i = 0; i < NDBS; i++) {
		rc = drop ?
		    mdb_drop(t, *DBI(d, i), 0) :
		    mdb_dbi_open(t, dbs[i].name, MDB_CREATE, DBI(d, i));
		if (rc != 0) {
			mdb_txn_abort(t);
			return mdb_err(rc);
		}
	}
	if (!drop && (rc = read_meta(d, t)) != 0) {
		mdb_txn_abort(t);
		return rc;
	}
	if ((rc = mdb_txn_commit(t)) != 0)
		return mdb_err(rc);
	if (drop) {
		d->indexed_to = d->last_base = d->last_bytes = 0;
		d->has_last = 0;
	}
	return 0;
}

/*
 * Are the indexed segments in data_dir as they were indexed? Each must
 * have its recorded size and be followed by the segment starting where
 * it ended, and the last (at indexed_to) must be followed too, so it is
 * sealed. Looks at the directory only, before the journal is opened.
 */
static int
matches_log(struct diskindex *d, const char *data_dir)
{
	char path[4200], name[SEGFILE_NAME_MAX];
	uint8_t kb[8], *arcs = NULL;
	uint64_t *bases = NULL, size;
	size_t n = 0, i, seen = 0;
	MDB_stat ms;
	MDB_val k = { 8, kb }, v;
	MDB_txn *t;
	int ok = 0;

	/* a segment may be held only as its archive (archiver.c): its size
	 * is then the one its seek table covers */
	if (segfile_list_all(data_dir, &bases, &arcs, &n) != 0)
		return 0;
	if (mdb_txn_begin(d->env, NULL, MDB_RDONLY, &t) != 0) {
		free(bases);
		free(arcs);
		return 0;
	}
	for (i = 0; i + 1 < n && bases[i] < d->indexed_to; i++, seen++) {
		snprintf(path, sizeof(path), "%s/%s%s", data_dir,
		    segfile_name(name, sizeof(name), bases[i]),
		    arcs[i] ? SEGFILE_ZST_SUFFIX : "");
		put_be64(kb, bases[i]);
		if (mdb_get(t, d->blooms, &k, &v) != 0 || v.mv_size < 24 ||
		    archiver_segment_size(data_dir, bases[i], &size) != 0 ||
		    size != get_le64(v.mv_data) ||
		    bases[i + 1] != get_le64((const uint8_t *)v.mv_data + 8)) {
			log_warnx("%s: not as it was indexed", path);
			goto out;
		}
	}
	ok = (i == 0 || bases[i] == d->indexed_to) &&
	    mdb_stat(t, d->blooms, &ms) == 0 && ms.ms_entries == seen &&
	    i > 0 && bases[i - 1] == d->last_base;
out:
	mdb_txn_abort(t);
	free(bases);
	free(arcs);
	return ok;
}

/* The first map size; test builds take EVENTFOLD_INDEX_MAP_KB, so that
 * a test can make the map grow often while lookups run. */
static uint64_t
map_initial(void)
{
#ifdef EF_CRASHPOINTS
	const char *e = getenv("EVENTFOLD_INDEX_MAP_KB");
	unsigned long long v;

	if (e != NULL && (v = strtoull(e, NULL, 10)) >= 32)
		return (uint64_t)v << 10;
#endif
	return MAP_INITIAL;
}

int
diskindex_open(struct diskindex *d, const char *data_dir)
{
	pthread_rwlockattr_t ra;
	char dir[4200];
	int rc;

	memset(d, 0, sizeof(*d));
	/* writers first: a map to grow must not wait behind a stream of
	 * lookups (no lookup takes it twice, so this cannot deadlock) */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&d->grow_lock, &ra);
	pthread_rwlock_init(&d->filter_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	snprintf(dir, sizeof(dir), "%s/index", data_dir);
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return -errno;
	/* as the kernel names the file in /proc/self/maps */
	if (realpath(dir, d->dir) == NULL)
		snprintf(d->dir, sizeof(d->dir), "%s", dir);
	d->map_size = map_initial();
	if ((rc = mdb_env_create(&d->env)) != 0)
		return mdb_err(rc);
	if ((rc = mdb_env_set_maxdbs(d->env, 8)) != 0 ||
	    (rc = mdb_env_set_maxreaders(d->env, 1024)) != 0 ||
	    (rc = mdb_env_set_mapsize(d->env, (size_t)d->map_size)) != 0 ||
	    (rc = mdb_env_open(d->env, dir, MDB_NOTLS | MDB_NORDAHEAD,
	         0640)) != 0) {
		rc = mdb_err(rc);
		goto fail;
	}
	/* the environment may have been grown before */
	{
		MDB_envinfo info;

		if (mdb_env_info(d->env, &info) == 0 &&
		    info.me_mapsize > d->map_size)
			d->map_size = info.me_mapsize;
	}
	if ((rc = dbs_all(d, DBS_OPEN)) != 0)
		goto fail;
	if (d->has_last && !matches_log(d, data_dir)) {
		log_warnx(
		    "%s: the index does not match the log (indexed up to "
		    "position %" PRIu64 ", the last segment at %" PRIu64
		    " with %" PRIu64
		    " bytes); rebuilding it from the segments",
		    dir, d->indexed_to, d->last_base, d->last_bytes);
		if ((rc = dbs_all(d, DBS_DROP)) != 0)
			goto fail;
	}
	if (!d->has_last)
		log_info("%s: empty index; sealed segments are indexed in the "
		         "background",
		    dir);
	return 0;
fail:
	mdb_env_close(d->env);
	d->env = NULL;
	return rc;
}

void
diskindex_release(struct diskindex *d)
{
	char line[4500], want[4300];
	unsigned long lo, hi;
	size_t wl;
	FILE *fp;

	/*
	 * LMDB does not say where its map is (me_mapaddr is only set with
	 * MDB_FIXEDMAP): find data.mdb's mapping in /proc/self/maps. The map
	 * is read-only (no MDB_WRITEMAP), so dropping our page table entries
	 * is safe while readers run; pages refault from the page cache.
	 */
	if (d->env == NULL || (fp = fopen("/proc/self/maps", "r")) == NULL)
		return;
	snprintf(want, sizeof(want), "%s/data.mdb", d->dir);
	wl = strlen(want);
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t n = strcspn(line, "\n");

		line[n] = '\0';
		if (n < wl || strcmp(line + n - wl, want) != 0 ||
		    sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
	}
	fclose(fp);
}

void
diskindex_close(struct diskindex *d)
{
	if (d->env != NULL)
		mdb_env_close(d->env);
	d->env = NULL;
	free(d->filter);
	d->filter = NULL;
}

/* ---- indexing a sealed segment --------------------------------------- */

/*
 * Events per write transaction: LMDB keeps a transaction's dirty pages in
 * a list of bounded length (MDB_TXN_FULL past it), and every event dirties
 * up to four random leaf pages. Test builds take another number from
 * EVENTFOLD_INDEX_CHUNK, so that tests with tiny segments can index each
 * in several transactions.
 */
#define CHUNK_EVENTS 20000

static uint64_t
chunk_events(void)
{
#ifdef EF_CRASHPOINTS
	const char *e = getenv("EVENTFOLD_INDEX_CHUNK");
	unsigned long long v;

	if (e != NULL && (v = strtoull(e, NULL, 10)) > 0)
		return v;
#endif
	return CHUNK_EVENTS;
}

/*
 * Puts the batches of s from *off on, whole batches, until chunk_events()
 * events are in or the segment ends; advances *off. What these write
 * before the segment's last transaction commits are true facts about the
 * log at positions at or above indexed_to, which nothing asks the disk
 * about (those positions are in the RAM tier), and a retry writes the
 * same again.
 */
static int
put_batches(struct diskindex *d, MDB_txn *t, const struct segment *s,
    uint64_t *offp, struct bloom *bl)
{
	uint8_t kb[UUID_LEN + 8], vb[16];
	MDB_val k, v;
	struct batch_hdr h;
	struct ef_event ev;
	XXH128_hash_t ih;
	uint64_t off = *offp, p, len, n = 0, max = chunk_events();
	size_t rlen;
	uint32_t i;
	int rc;

	while (off < s->end && n < max) {
		if (batch_verify(s->map, s->end, off, 0, 0, &len) != 0 ||
		    batch_hdr_decode(s->map + off, s->end - off, &h) != REC_OK)
			return -EBADMSG;
		put_be64(kb, h.first_pos);
		put_le64(vb, s->base);
		put_le64(vb + 8, off);
		k = (MDB_val){ 8, kb };
		v = (MDB_val){ 16, vb };
		if ((rc = mdb_put(t, d->pos, &k, &v, 0)) != 0)
			return mdb_err(rc);
		p = off + BATCH_HDR;
		for (i = 0; i < h.count; i++) {
			(void)record_decode(s->map + p, s->end - p, &ev, &rlen,
			    0);
			put_le64(vb, ev.global_position);
			v = (MDB_val){ 8, vb };
			memcpy(kb, ev.stream_id, UUID_LEN);
			put_be64(kb + UUID_LEN, ev.stream_version);
			k = (MDB_val){ UUID_LEN + 8, kb };
			if ((rc = mdb_put(t, d->sver, &k, &v, 0)) != 0)
				return mdb_err(rc);
			k = (MDB_val){ UUID_LEN, ev.event_id };
			if ((rc = mdb_put(t, d->ids, &k, &v, 0)) != 0)
				return mdb_err(rc);
			/* log order: the last write is the stream's count */
			put_le64(vb + 8, ev.stream_version + 1);
			k = (MDB_val){ UUID_LEN, ev.stream_id };
			v = (MDB_val){ 8, vb + 8 };
			if ((rc = mdb_put(t, d->streams, &k, &v, 0)) != 0)
				return mdb_err(rc);
			ih = bloom_hash(ev.event_id);
			bloom_add(bl, ih);
			if (d->filter != NULL)
				idfilter_add(d->filter, ih);
			p += rlen;
		}
		n += h.count;
		off += len;
	}
	*offp = off;
	return 0;
}

/* The segment's last transaction: its filter and indexed_to. */
static int
put_final(struct diskindex *d, MDB_txn *t, const struct segment *s,
    const struct bloom *bl)
{
	uint8_t kb[8], vb[24];
	MDB_val k, v;
	int rc;

	put_be64(kb, s->base);
	k = (MDB_val){ 8, kb };
	v = (MDB_val){ 16 + bl->nbits / 8, NULL };
	if ((rc = mdb_put(t, d->blooms, &k, &v, MDB_RESERVE)) != 0)
		return mdb_err(rc);
	put_le64(v.mv_data, s->end);
	put_le64((uint8_t *)v.mv_data + 8, s->next);
	memcpy((uint8_t *)v.mv_data + 16, bl->bits, bl->nbits / 8);
	put_le64(vb, s->next);
	put_le64(vb + 8, s->base);
	put_le64(vb + 16, s->end);
	k = (MDB_val){ 5, (void *)"state" };
	v = (MDB_val){ 24, vb };
	if ((rc = mdb_put(t, d->meta, &k, &v, 0)) != 0)
		return mdb_err(rc);
	return 0;
}

int
diskindex_add_segment(struct diskindex *d, struct segment *s)
{
	uint64_t off = LOGFILE_HDR, start;
	struct bloom *bl = bloom_new(s->next - s->base);
	MDB_txn *t;
	int rc, last;

	for (;;) {
		start = off;
		if ((rc = mdb_txn_begin(d->env, NULL, 0, &t)) != 0) {
			rc = mdb_err(rc);
			goto fail;
		}
		rc = put_batches(d, t, s, &off, bl);
		last = rc == 0 && off >= s->end;
		if (rc == 0 && last)
			rc = put_final(d, t, s, bl);
		if (rc == 0) {
			if (last)
				crashpoint("index.before_commit");
			rc = mdb_err(mdb_txn_commit(t));
		} else
			mdb_txn_abort(t);
		if (rc == -ENOSPC) {
			/* MDB_MAP_FULL: grow with no transaction open, redo
			 * this transaction's batches */
			d->map_size *= 2;
			pthread_rwlock_wrlock(&d->grow_lock);
			rc = mdb_env_set_mapsize(d->env, (size_t)d->map_size);
			pthread_rwlock_unlock(&d->grow_lock);
			if (rc != 0) {
				rc = mdb_err(rc);
				goto fail;
			}
			log_info("index: map grown to %" PRIu64 " MiB",
			    d->map_size >> 20);
			off = start;
			continue;
		}
		if (rc != 0)
			goto fail;
		if (last)
			break;
		crashpoint("index.between_chunks");
	}
	crashpoint("index.after_commit");
	if (d->filter != NULL) {
		d->filter->n += s->next - s->base;
		__atomic_store_n(&d->filter->covers, s->next,
		    __ATOMIC_RELEASE);
	}
	__atomic_store_n(&s->bloom, bl, __ATOMIC_RELEASE);
	d->last_base = s->base;
	d->last_bytes = s->end;
	d->has_last = 1;
	__atomic_store_n(&d->indexed_to, s->next, __ATOMIC_RELEASE);
	return 0;
fail:
	free(bl);
	return rc;
}

int
diskindex_load_bloom(struct diskindex *d, struct segment *s)
{
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	struct bloom *bl;
	MDB_txn *t;
	int rc;

	put_be64(kb, s->base);
	if ((rc = read_begin_nofault(d, &t)) != 0)
		return mdb_err(rc);
	if ((rc = mdb_get(t, d->blooms, &k, &v)) != 0) {
		read_end(d, t);
		return mdb_err(rc);
	}
	if (v.mv_size < 24 || v.mv_size % 8 != 0) {
		read_end(d, t);
		return -EBADMSG;
	}
	if ((bl = calloc(1, sizeof(*bl) + v.mv_size - 16)) == NULL)
		fatal("calloc");
	bl->nbits = (v.mv_size - 16) * 8;
	memcpy(bl->bits, (const uint8_t *)v.mv_data + 16, v.mv_size - 16);
	read_end(d, t);
	s->bloom = bl;
	return 0;
}

/* ---- lookups ---------------------------------------------------------- */

int
diskindex_batch_of(struct diskindex *d, uint64_t pos, uint64_t *seg_base,
    uint64_t *off)
{
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	MDB_cursor *c;
	MDB_txn *t;
	int rc;

	put_be64(kb, pos);
	if ((rc = read_begin(d, &t)) != 0)
		return mdb_err(rc);
	if ((rc = mdb_cursor_open(t, d->pos, &c)) != 0)
		goto out;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	else if (rc == 0 && get_be64(k.mv_data) > pos)
		rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
	if (rc == 0 && (k.mv_size != 8 || v.mv_size != 16))
		rc = MDB_CORRUPTED;
	if (rc == 0) {
		*seg_base = get_le64(v.mv_data);
		*off = get_le64((const uint8_t *)v.mv_data + 8);
	}
	mdb_cursor_close(c);
out:
	read_end(d, t);
	return mdb_err(rc);
}

static int
get_u64(struct diskindex *d, MDB_dbi dbi, const void *key, size_t klen,
    uint64_t *val)
{
	MDB_val k = { klen, (void *)key }, v;
	MDB_txn *t;
	int rc;

	if ((rc = read_begin(d, &t)) != 0)
		return mdb_err(rc);
	rc = mdb_get(t, dbi, &k, &v);
	if (rc == 0 && v.mv_size != 8)
		rc = MDB_CORRUPTED;
	if (rc == 0)
		*val = get_le64(v.mv_data);
	read_end(d, t);
	return mdb_err(rc);
}

int
diskindex_stream_count(struct diskindex *d, const uint8_t sid[UUID_LEN],
    uint64_t *n)
{
	int rc;

	*n = 0;
	rc = get_u64(d, d->streams, sid, UUID_LEN, n);
	return rc == -ENOENT ? 0 : rc;
}

int
diskindex_stream_range(struct diskindex *d, const uint8_t sid[UUID_LEN],
    uint64_t from, uint64_t n, int backward, uint64_t *out)
{
	uint8_t kb[UUID_LEN + 8];
	MDB_val k = { sizeof(kb), kb }, v;
	MDB_cursor *c;
	MDB_txn *t;
	uint64_t i;
	int rc;

	if (n == 0)
		return 0;
	memcpy(kb, sid, UUID_LEN);
	put_be64(kb + UUID_LEN, from);
	if ((rc = read_begin(d, &t)) != 0)
		return mdb_err(rc);
	if ((rc = mdb_cursor_open(t, d->sver, &c)) != 0) {
		read_end(d, t);
		return mdb_err(rc);
	}
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
	for (i = 0; rc == 0;) {
		if (k.mv_size != sizeof(kb) || v.mv_size != 8 ||
		    memcmp(k.mv_data, sid, UUID_LEN) != 0 ||
		    get_be64((const uint8_t *)k.mv_data + UUID_LEN) !=
		        (backward ? from - i : from + i)) {
			rc = MDB_CORRUPTED; /* a version is missing */
			break;
		}
		out[i] = get_le64(v.mv_data);
		if (++i == n)
			break;
		rc = mdb_cursor_get(c, &k, &v, backward ? MDB_PREV : MDB_NEXT);
	}
	mdb_cursor_close(c);
	read_end(d, t);
	if (rc == MDB_NOTFOUND)
		rc = MDB_CORRUPTED;
	return mdb_err(rc);
}

int
diskindex_event(struct diskindex *d, const uint8_t id[UUID_LEN], uint64_t *pos)
{
	return get_u64(d, d->ids, id, UUID_LEN, pos);
}

/* ---- the filter over every indexed id (idfilter.c) -------------------- */

#define FILTER_MIN_IDS (1u << 20)

static void
filter_path(const struct diskindex *d, char *path, size_t size)
{
	snprintf(path, size, "%s/idfilter", d->dir);
}

static void
filter_install(struct diskindex *d, struct idfilter *f)
{
	struct idfilter *old;

	pthread_rwlock_wrlock(&d->filter_lock);
	old = d->filter;
	d->filter = f;
	pthread_rwlock_unlock(&d->filter_lock);
	free(old);
	__atomic_store_n(&d->filter_bytes, idfilter_bytes(f),
	    __ATOMIC_RELAXED);
}

int
diskindex_filter_build(struct diskindex *d, const int *stop)
{
	struct idfilter *f;
	MDB_cursor *c;
	MDB_stat st;
	MDB_val k, v;
	MDB_txn *t;
	uint64_t t0 = mono_ms(), n, cap, seen = 0;
	char path[4300];
	int rc;

	/* only this thread (the indexer) writes: the ids table and
	 * indexed_to cannot move while it reads them */
	filter_path(d, path, sizeof(path));
	if (d->filter == NULL &&
	    (f = idfilter_load(path,
	         __atomic_load_n(&d->indexed_to, __ATOMIC_ACQUIRE))) != NULL) {
		filter_install(d, f);
		log_info("index: filter over %" PRIu64 " event ids read back "
		         "in %" PRIu64 " ms",
		    f->n, mono_ms() - t0);
		return 0;
	}
	if ((rc = read_begin_nofault(d, &t)) != 0)
		return mdb_err(rc);
	if ((rc = mdb_stat(t, d->ids, &st)) != 0 ||
	    (rc = mdb_cursor_open(t, d->ids, &c)) != 0) {
		read_end(d, t);
		return mdb_err(rc);
	}
	n = st.ms_entries;
	cap = n + n / 2 > FILTER_MIN_IDS ? n + n / 2 : FILTER_MIN_IDS;
	f = idfilter_new(cap);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size == UUID_LEN)
			idfilter_add(f, bloom_hash(k.mv_data));
		/* a stop does not wait for a scan of every id */
		if ((++seen & 0xffff) == 0 &&
		    __atomic_load_n(stop, __ATOMIC_RELAXED)) {
			rc = -ECANCELED;
			break;
		}
	}
	mdb_cursor_close(c);
	read_end(d, t);
	if (rc != MDB_NOTFOUND) {
		free(f);
		return rc == -ECANCELED ? rc : mdb_err(rc);
	}
	f->n = n;
	f->covers = __atomic_load_n(&d->indexed_to, __ATOMIC_ACQUIRE);
	filter_install(d, f);
	log_info("index: filter over %" PRIu64 " event ids built in %" PRIu64
	         " ms (%" PRIu64 " KiB, room for %" PRIu64 ")",
	    n, mono_ms() - t0, idfilter_bytes(f) >> 10, cap);
	return 0;
}

void
diskindex_filter_keep(struct diskindex *d)
{
	char path[4300];
	int rc;

	/* the indexer has stopped: nothing adds to it now */
	if (d->filter == NULL ||
	    d->filter->covers !=
	        __atomic_load_n(&d->indexed_to, __ATOMIC_ACQUIRE))
		return;
	filter_path(d, path, sizeof(path));
	if ((rc = idfilter_save(d->filter, path)) != 0)
		log_warnx("index: cannot keep the filter over event ids in "
		          "%s: %s (it is built again at the next start)",
		    path, strerror(-rc));
}

bool
diskindex_filter_full(struct diskindex *d)
{
	return d->filter == NULL || d->filter->n > d->filter->cap;
}

int
diskindex_filter_maybe(struct diskindex *d, XXH128_hash_t h, uint64_t floor)
{
	const struct idfilter *f;
	int r = -1;

	pthread_rwlock_rdlock(&d->filter_lock);
	f = d->filter;
	if (f != NULL &&
	    __atomic_load_n(&f->covers, __ATOMIC_ACQUIRE) >= floor)
		r = idfilter_maybe(f, h);
	pthread_rwlock_unlock(&d->filter_lock);
	return r;
}

uint64_t
diskindex_nstreams(struct diskindex *d)
{
	MDB_stat st;
	MDB_txn *t;
	uint64_t n = 0;

	if (read_begin_nofault(d, &t) != 0)
		return 0;
	if (mdb_stat(t, d->streams, &st) == 0)
		n = st.ms_entries;
	read_end(d, t);
	return n;
}

int
diskindex_list(struct diskindex *d, const uint8_t *after, uint64_t max,
    struct ipc_stream_info *out, uint64_t *n)
{
	uint8_t kb[UUID_LEN];
	MDB_val k, v;
	MDB_cursor *c;
	MDB_txn *t;
	int rc;

	*n = 0;
	if (max == 0)
		return 0;
	if ((rc = read_begin(d, &t)) != 0)
		return mdb_err(rc);
	if ((rc = mdb_cursor_open(t, d->streams, &c)) != 0) {
		read_end(d, t);
		return mdb_err(rc);
	}
	if (after != NULL) {
		memcpy(kb, after, UUID_LEN);
		k = (MDB_val){ UUID_LEN, kb };
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && memcmp(k.mv_data, after, UUID_LEN) == 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	} else
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0 && *n < max) {
		if (k.mv_size != UUID_LEN || v.mv_size != 8) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(out[*n].stream_id, k.mv_data, UUID_LEN);
		out[*n].event_count = get_le64(v.mv_data);
		out[*n].latest_version = out[*n].event_count - 1;
		(*n)++;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	read_end(d, t);
	return rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
}
