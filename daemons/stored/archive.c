/* SPDX-License-Identifier: MIT */
/*
 * archive.c - compress sealed segments into the zstd seekable layout and
 * read them back a frame at a time (layout, durability rules and
 * ownership in archive.h). Talks to libzstd and xxhash only; stored's
 * archiver thread calls archive_write, its readers archive_get.
 *
 * The rules, as the code keeps them:
 *   - The plain segment is checked batch by batch while it is compressed;
 *     a damaged segment is never archived (it stays for verify/repair).
 *   - Temp file, fsync, rename, directory fsync, in that order; the temp
 *     file is removed on any failure, and archive_cleanup removes what a
 *     crash left.
 *   - Nothing read from an archive is trusted: the seek table's count and
 *     sizes are bounded by the file's size and ARCHIVE_*_MAX before any
 *     allocation; each frame must be exactly one zstd frame of the size
 *     the table says, decompress to exactly the size it says, and match
 *     both checksums.
 *
 * The cache: one mutex guards the LRU list, every archive's slot array
 * and the counters; decompression happens outside it. A cached frame
 * holds one reference of its own, each reader one more; the last
 * reference frees it, so eviction never pulls bytes from under a reader.
 * A frame being loaded sits in its slot (not yet in the LRU) marked
 * loading; readers that find it take a reference and wait on the
 * condition variable, so one decompression serves them all.
 */
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "archive.h"
#include "log.h"
#include "record.h"

#define DCTX_POOL      8
#define FRAME_SIZE_MAX (64u << 20)

struct cframe {
	struct archive_frame pub; /* first: handles are cast back */
	struct archive *a;
	uint32_t refs; /* the cache's (while cached) + readers' */
	int cached;    /* in the LRU */
	int loading;   /* in its slot, being decompressed */
	int err;       /* the load failed: waiters return it */
	struct archive_fault fault;
	TAILQ_ENTRY(cframe) lru;
	uint8_t *buf;
};
TAILQ_HEAD(cframe_list, cframe);

struct archive_cache {
	pthread_mutex_t mtx;
	pthread_cond_t cv;      /* a load finished */
	struct cframe_list lru; /* most recently used first */
	uint64_t budget;
	uint64_t bytes;
	uint64_t entries;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	ZSTD_DCtx *dctx[DCTX_POOL];
	int ndctx;
};

struct archive {
	int fd;
	struct archive_cache *cache;
	uint32_t nframes;
	int has_csum;
	uint64_t file_size;
	uint64_t max_dsize;
	uint64_t *coff;       /* nframes + 1 file offsets */
	uint64_t *dstart;     /* nframes + 1 segment offsets */
	uint32_t *csum;       /* nframes, if has_csum */
	struct cframe **slot; /* nframes; under cache->mtx */
};

static int
set_fault(struct archive_fault *f, uint32_t frame, uint64_t file_off,
    uint64_t doff, const char *what)
{
	if (f != NULL) {
		f->frame = frame;
		f->file_off = file_off;
		f->doff = doff;
		f->what = what;
	}
	return -EBADMSG;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 0, -errno, or 1 if the file ended first. */
static int
pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 1;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int
zstd_errno(size_t r)
{
	switch (ZSTD_getErrorCode(r)) {
	case ZSTD_error_memory_allocation:
		return -ENOMEM;
	case ZSTD_error_parameter_outOfBound:
	case ZSTD_error_parameter_unsupported:
		return -EINVAL;
	case ZSTD_error_dstSize_tooSmall:
		return -ENOBUFS;
	default:
		return -EIO;
	}
}

/*
 * Writing.
 */

struct zwriter {
	int fd;
	ZSTD_CCtx *cctx;
	uint8_t *out;
	size_t out_cap;
	uint8_t *table; /* seek table entries */
	size_t table_len;
	size_t table_cap;
	uint32_t frames;
	uint64_t comp_bytes;
	void (*crash_point)(const char *name); /* archive_opts */
};

#define CRASH_POINT(w, name)                                                  \
	do {                                                                  \
		if ((w)->crash_point != NULL)                                 \
			(w)->crash_point(name);                               \
	} while (0)

static int
zw_frame(struct zwriter *w, const uint8_t *src, size_t len)
{
	size_t bound = ZSTD_compressBound(len), r;
	uint8_t *p;
	int rc;

	if (len > ARCHIVE_DFRAME_MAX)
		return -EFBIG;
	if (w->frames >= ARCHIVE_FRAMES_MAX)
		return -EFBIG;
	if (bound > w->out_cap) {
		if ((p = realloc(w->out, bound)) == NULL)
			return -ENOMEM;
		w->out = p;
		w->out_cap = bound;
	}
	if (w->table_len + ARCHIVE_ENTRY > w->table_cap) {
		size_t cap = w->table_cap ? w->table_cap * 2 :
		                            64 * ARCHIVE_ENTRY;

		if ((p = realloc(w->table, cap)) == NULL)
			return -ENOMEM;
		w->table = p;
		w->table_cap = cap;
	}
	r = ZSTD_compress2(w->cctx, w->out, w->out_cap, src, len);
	if (ZSTD_isError(r))
		return zstd_errno(r);
	if (r > UINT32_MAX)
		return -EFBIG;
	if ((rc = write_all(w->fd, w->out, r)) != 0)
		return rc;
	p = w->table + w->table_len;
	put_le32(p, (uint32_t)r);
	put_le32(p + 4, (uint32_t)len);
	put_le32(p + 8, (uint32_t)XXH64(src, len, 0));
	w->table_len += ARCHIVE_ENTRY;
	w->frames++;
	w->comp_bytes += r;
	CRASH_POINT(w, "archive.frame");
	return 0;
}

static int
zw_table(struct zwriter *w)
{
	uint8_t hdr[8], foot[ARCHIVE_FOOTER];
	int rc;

	put_le32(hdr, ARCHIVE_SKIP_MAGIC);
	put_le32(hdr + 4, (uint32_t)(w->table_len + ARCHIVE_FOOTER));
	put_le32(foot, w->frames);
	foot[4] = 0x80; /* checksums present */
	put_le32(foot + 5, ARCHIVE_SEEK_MAGIC);
	if ((rc = write_all(w->fd, hdr, sizeof(hdr))) != 0 ||
	    (rc = write_all(w->fd, w->table, w->table_len)) != 0 ||
	    (rc = write_all(w->fd, foot, sizeof(foot))) != 0)
		return rc;
	w->comp_bytes += sizeof(hdr) + w->table_len + sizeof(foot);
	return 0;
}

/* A plain segment to archive, mapped whole. */
struct plain_seg {
	int fd;
	const uint8_t *map;
	uint64_t size;
	uint64_t base;
};

/* Opens and maps dirfd/plain and checks its file header: 0, -EBADMSG
 * (damaged at offset 0) or -errno. plain_unmap() in any case. */
static int
plain_map(struct plain_seg *p, int dirfd, const char *plain)
{
	struct stat sb;
	const uint8_t *map;

	if ((p->fd = openat(dirfd, plain, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(p->fd, &sb) != 0)
		return -errno;
	p->size = (uint64_t)sb.st_size;
	if (p->size < LOGFILE_HDR)
		return -EBADMSG;
	map = mmap(NULL, p->size, PROT_READ, MAP_SHARED, p->fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	p->map = map;
	(void)madvise((void *)map, p->size, MADV_SEQUENTIAL);
	if (logfile_hdr_decode(map, p->size, &p->base) != REC_OK)
		return -EBADMSG;
	return 0;
}

static void
plain_unmap(struct plain_seg *p)
{
	if (p->map != NULL)
		munmap((void *)p->map, p->size);
	if (p->fd >= 0)
		close(p->fd);
}

/* The compression context at level, and dirfd/tmp created for writing. */
static int
zw_open(struct zwriter *w, int level, int dirfd, const char *tmp)
{
	size_t r;

	if ((w->cctx = ZSTD_createCCtx()) == NULL)
		return -ENOMEM;
	if (ZSTD_isError(r = ZSTD_CCtx_setParameter(w->cctx,
	                     ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(
	        r = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(r = ZSTD_CCtx_setParameter(w->cctx,
	                     ZSTD_c_contentSizeFlag, 1)))
		return zstd_errno(r);
	w->fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0640);
	if (w->fd < 0)
		return -errno;
	return 0;
}

/*
 * Frames of whole batches of p (the file header rides in the first),
 * each verified on the way, then the seek table. -EBADMSG with *bad_off
 * at the first batch that does not verify.
 */
static int
zw_segment(struct zwriter *w, const struct plain_seg *p, uint32_t frame_size,
    uint64_t *bad_off)
{
	struct batch_hdr h;
	uint64_t pos = p->base, start = 0, off = LOGFILE_HDR, len;
	int rc;

	while (off < p->size) {
		if (batch_verify(p->map, p->size, off, pos, 1, &len) != 0) {
			*bad_off = off;
			return -EBADMSG;
		}
		(void)batch_hdr_decode(p->map + off, p->size - off, &h);
		pos += h.count;
		off += len;
		if (off - start >= frame_size) {
			if ((rc = zw_frame(w, p->map + start,
			         (size_t)(off - start))) != 0)
				return rc;
			start = off;
		}
	}
	if (off > start &&
	    (rc = zw_frame(w, p->map + start, (size_t)(off - start))) != 0)
		return rc;
	if ((rc = zw_table(w)) != 0)
		return rc;
	CRASH_POINT(w, "archive.table");
	return 0;
}

/*
 * Durable under the temp name, then under the final one. *tmp_made is
 * cleared once tmp is renamed.
 */
static int
zw_commit(struct zwriter *w, int dirfd, const char *tmp, const char *name,
    int *tmp_made)
{
	int rc;

	if (fsync(w->fd) != 0)
		return -errno;
	rc = close(w->fd);
	w->fd = -1;
	if (rc != 0)
		return -errno;
	CRASH_POINT(w, "archive.fsync");
	if (renameat(dirfd, tmp, dirfd, name) != 0)
		return -errno;
	*tmp_made = 0;
	CRASH_POINT(w, "archive.rename");
	/* the rename may or may not survive a crash; the plain segment
	 * must stay, and cleanup settles it at startup */
	if (fsync(dirfd) != 0)
		return -errno;
	CRASH_POINT(w, "archive.dir_fsync");
	return 0;
}

int
archive_write(int dirfd, const char *plain, const struct archive_opts *o,
    struct archive_stats *st, uint64_t *bad_off)
{
	struct zwriter w = { .fd = -1 };
	struct plain_seg p = { .fd = -1 };
	char name[4096], tmp[4096];
	uint32_t frame_size = ARCHIVE_FRAME_SIZE;
	uint64_t bad = 0;
	int level = ARCHIVE_LEVEL, rc, tmp_made = 0;

	if (o != NULL && o->frame_size != 0)
		frame_size = o->frame_size;
	if (o != NULL && o->level != 0)
		level = o->level;
	if (o != NULL)
		w.crash_point = o->crash_point;
	if (frame_size > FRAME_SIZE_MAX || level < ZSTD_minCLevel() ||
	    level > ZSTD_maxCLevel())
		return -EINVAL;
	if ((size_t)snprintf(name, sizeof(name), "%s%s", plain,
	        ARCHIVE_SUFFIX) >= sizeof(name) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s%s", plain,
	        ARCHIVE_TMP_SUFFIX) >= sizeof(tmp))
		return -ENAMETOOLONG;

	if ((rc = plain_map(&p, dirfd, plain)) != 0)
		goto fail;
	rc = zw_open(&w, level, dirfd, tmp);
	if (w.fd >= 0)
		tmp_made = 1;
	if (rc != 0)
		goto fail;
	CRASH_POINT(&w, "archive.tmp_open");
	if ((rc = zw_segment(&w, &p, frame_size, &bad)) != 0 ||
	    (rc = zw_commit(&w, dirfd, tmp, name, &tmp_made)) != 0)
		goto fail;
	if (st != NULL) {
		st->comp_bytes = w.comp_bytes;
		st->raw_bytes = p.size;
		st->frames = w.frames;
	}
fail:
	if (rc == -EBADMSG && bad_off != NULL)
		*bad_off = bad;
	if (w.fd >= 0)
		close(w.fd);
	if (tmp_made)
		(void)unlinkat(dirfd, tmp, 0);
	ZSTD_freeCCtx(w.cctx);
	free(w.out);
	free(w.table);
	plain_unmap(&p);
	return rc;
}

/*
 * Reading.
 */

/* Where the seek table is: n entries of esz bytes from toff + 8. */
struct seek_table {
	uint32_t n, esz;
	uint64_t tsize; /* entries and footer */
	uint64_t toff;  /* its skippable frame's header */
};

/* pread_all()'s short read (rc > 0) of a file of size bytes as a fault. */
static int
short_read(int rc, struct archive_fault *fault, uint64_t size)
{
	if (rc > 0)
		rc = set_fault(fault, UINT32_MAX, size, 0, "file shrank");
	return rc;
}

/* Reads and checks the footer and the seek table's frame header. */
static int
seek_table_find(struct archive *a, struct seek_table *t,
    struct archive_fault *fault)
{
	uint8_t foot[ARCHIVE_FOOTER], hdr[8];
	uint64_t size = a->file_size;
	int rc;

	if (size < 8 + ARCHIVE_FOOTER)
		return set_fault(fault, UINT32_MAX, 0, 0,
		    "file too short for a seek table");
	if ((rc = pread_all(a->fd, foot, sizeof(foot), size - sizeof(foot))) !=
	    0)
		return short_read(rc, fault, size);
	if (get_le32(foot + 5) != ARCHIVE_SEEK_MAGIC)
		return set_fault(fault, UINT32_MAX, size - sizeof(foot), 0,
		    "no seek table footer");
	if ((foot[4] & 0x7f) != 0)
		return set_fault(fault, UINT32_MAX, size - sizeof(foot), 0,
		    "unknown seek table descriptor bits");
	a->has_csum = (foot[4] & 0x80) != 0;
	t->esz = a->has_csum ? 12 : 8;
	t->n = get_le32(foot);
	t->tsize = (uint64_t)t->n * t->esz + ARCHIVE_FOOTER;
	if (t->n == 0 || t->n > ARCHIVE_FRAMES_MAX || t->tsize + 8 > size)
		return set_fault(fault, UINT32_MAX, size - sizeof(foot), 0,
		    "seek table frame count out of bounds");
	t->toff = size - t->tsize - 8;
	if ((rc = pread_all(a->fd, hdr, sizeof(hdr), t->toff)) != 0)
		return short_read(rc, fault, size);
	if (get_le32(hdr) != ARCHIVE_SKIP_MAGIC ||
	    get_le32(hdr + 4) != t->tsize)
		return set_fault(fault, UINT32_MAX, t->toff, 0,
		    "bad seek table frame header");
	return 0;
}

/* Reads the entries of the seek table into a's frame offsets, checked. */
static int
seek_table_load(struct archive *a, const struct seek_table *t,
    struct archive_fault *fault)
{
	uint32_t n = t->n, i, csize, dsize;
	uint64_t co = 0, doff = 0;
	uint8_t *tab, *e;
	int rc;

	a->nframes = n;
	if ((tab = malloc(t->tsize)) == NULL ||
	    (a->coff = calloc(n + 1, sizeof(*a->coff))) == NULL ||
	    (a->dstart = calloc(n + 1, sizeof(*a->dstart))) == NULL ||
	    (a->csum = calloc(n, sizeof(*a->csum))) == NULL ||
	    (a->cache != NULL &&
	        (a->slot = calloc(n, sizeof(*a->slot))) == NULL)) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = pread_all(a->fd, tab, t->tsize, t->toff + 8)) != 0) {
		rc = short_read(rc, fault, a->file_size);
		goto out;
	}
	for (i = 0; i < n; i++) {
		e = tab + (uint64_t)i * t->esz;
		csize = get_le32(e);
		dsize = get_le32(e + 4);
		if (csize == 0 || dsize == 0 || dsize > ARCHIVE_DFRAME_MAX ||
		    co + csize > t->toff) {
			rc = set_fault(fault, i,
			    t->toff + 8 + (uint64_t)i * t->esz, doff,
			    "bad seek table entry");
			goto out;
		}
		a->coff[i] = co;
		a->dstart[i] = doff;
		if (a->has_csum)
			a->csum[i] = get_le32(e + 8);
		if (dsize > a->max_dsize)
			a->max_dsize = dsize;
		co += csize;
		doff += dsize;
	}
	if (co != t->toff) {
		rc = set_fault(fault, UINT32_MAX, t->toff, doff,
		    "frames do not reach the seek table");
		goto out;
	}
	a->coff[n] = co;
	a->dstart[n] = doff;
	rc = 0;
out:
	free(tab);
	return rc;
}

static int
archive_openfd(int fd, struct archive_cache *cache, struct archive **ap,
    struct archive_fault *fault)
{
	struct seek_table t;
	struct archive *a;
	struct stat sb;
	int rc;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	a->fd = fd;
	a->cache = cache;
	if (fstat(fd, &sb) != 0) {
		rc = -errno;
		goto fail;
	}
	a->file_size = (uint64_t)sb.st_size;
	if ((rc = seek_table_find(a, &t, fault)) != 0 ||
	    (rc = seek_table_load(a, &t, fault)) != 0)
		goto fail;
	*ap = a;
	return 0;
fail:
	archive_close(a);
	return rc;
}

int
archive_open(const char *path, struct archive_cache *cache,
    struct archive **ap, struct archive_fault *fault)
{
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	return archive_openfd(fd, cache, ap, fault);
}

void
archive_stat(const struct archive *a, struct archive_stats *st)
{
	st->comp_bytes = a->file_size;
	st->raw_bytes = a->dstart[a->nframes];
	st->frames = a->nframes;
}

int
archive_frame_info(const struct archive *a, uint32_t idx,
    struct archive_frame_info *fi)
{
	if (idx >= a->nframes)
		return -ERANGE;
	fi->file_off = a->coff[idx];
	fi->comp_len = (uint32_t)(a->coff[idx + 1] - a->coff[idx]);
	fi->doff = a->dstart[idx];
	fi->len = (uint32_t)(a->dstart[idx + 1] - a->dstart[idx]);
	return 0;
}

int
archive_find(const struct archive *a, uint64_t doff, uint32_t *idx)
{
	uint32_t lo = 0, hi = a->nframes, mid;

	if (doff >= a->dstart[a->nframes])
		return -ERANGE;
	/* the last frame starting at or before doff */
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (a->dstart[mid] <= doff)
			lo = mid;
		else
			hi = mid;
	}
	*idx = lo;
	return 0;
}

/* Reads, checks and decompresses frame idx into out (its dsize bytes). */
static int
frame_load(struct archive *a, uint32_t idx, ZSTD_DCtx *dctx, uint8_t *out,
    struct archive_fault *fault)
{
	uint64_t coff = a->coff[idx], doff = a->dstart[idx];
	size_t csize = (size_t)(a->coff[idx + 1] - coff);
	size_t dsize = (size_t)(a->dstart[idx + 1] - doff), r;
	uint8_t *cbuf;
	int rc;

	if ((cbuf = malloc(csize)) == NULL)
		return -ENOMEM;
	if ((rc = pread_all(a->fd, cbuf, csize, coff)) != 0) {
		if (rc > 0)
			rc = set_fault(fault, idx, coff, doff, "file shrank");
		goto fail;
	}
	r = ZSTD_findFrameCompressedSize(cbuf, csize);
	if (ZSTD_isError(r) || r != csize) {
		rc = set_fault(fault, idx, coff, doff,
		    "frame size does not match the seek table");
		goto fail;
	}
	if (ZSTD_getFrameContentSize(cbuf, csize) != dsize) {
		rc = set_fault(fault, idx, coff, doff,
		    "frame content size does not match the seek table");
		goto fail;
	}
	r = ZSTD_decompressDCtx(dctx, out, dsize, cbuf, csize);
	if (ZSTD_isError(r)) {
		if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
			rc = -ENOMEM;
		else if (ZSTD_getErrorCode(r) == ZSTD_error_checksum_wrong)
			rc = set_fault(fault, idx, coff, doff,
			    "frame checksum mismatch");
		else
			rc = set_fault(fault, idx, coff, doff,
			    "frame does not decompress");
		goto fail;
	}
	if (r != dsize) {
		rc = set_fault(fault, idx, coff, doff,
		    "frame decompresses to the wrong size");
		goto fail;
	}
	if (a->has_csum && (uint32_t)XXH64(out, dsize, 0) != a->csum[idx]) {
		rc = set_fault(fault, idx, coff, doff,
		    "seek table checksum mismatch");
		goto fail;
	}
	rc = 0;
fail:
	free(cbuf);
	return rc;
}

static void
cframe_free(struct cframe *e)
{
	if (e != NULL) {
		free(e->buf);
		free(e);
	}
}

static ZSTD_DCtx *
dctx_get(struct archive_cache *c)
{
	ZSTD_DCtx *d = NULL;

	if (c != NULL) {
		pthread_mutex_lock(&c->mtx);
		if (c->ndctx > 0)
			d = c->dctx[--c->ndctx];
		pthread_mutex_unlock(&c->mtx);
	}
	return d != NULL ? d : ZSTD_createDCtx();
}

static void
dctx_put(struct archive_cache *c, ZSTD_DCtx *d)
{
	if (c != NULL) {
		pthread_mutex_lock(&c->mtx);
		if (c->ndctx < DCTX_POOL) {
			c->dctx[c->ndctx++] = d;
			d = NULL;
		}
		pthread_mutex_unlock(&c->mtx);
	}
	ZSTD_freeDCtx(d);
}

/* Under c->mtx: takes e out of the LRU; returns it if now unreferenced. */
static struct cframe *
cache_unlink(struct archive_cache *c, struct cframe *e)
{
	TAILQ_REMOVE(&c->lru, e, lru);
	e->cached = 0;
	e->a->slot[e->pub.idx] = NULL;
	c->bytes -= e->pub.len;
	c->entries--;
	return --e->refs == 0 ? e : NULL;
}

/*
 * Under c->mtx, with a reference taken on e: waits out its loading, then
 * hands it over. 0, or the loader's error (and its fault).
 */
static int
cache_take(struct archive_cache *c, struct cframe *e,
    struct archive_frame **fp, struct archive_fault *fault,
    struct cframe **dead)
{
	while (e->loading)
		pthread_cond_wait(&c->cv, &c->mtx);
	if (e->err != 0) {
		if (fault != NULL)
			*fault = e->fault;
		if (--e->refs == 0)
			*dead = e;
		return e->err;
	}
	if (e->cached) {
		TAILQ_REMOVE(&c->lru, e, lru);
		TAILQ_INSERT_HEAD(&c->lru, e, lru);
	}
	c->hits++;
	*fp = &e->pub;
	return 0;
}

/* A frame entry for frame idx of a (len bytes decompressed), one
 * reference held; NULL if out of memory. */
static struct cframe *
cframe_new(struct archive *a, uint32_t idx, size_t len)
{
	struct cframe *e;

	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->buf = malloc(len)) == NULL) {
		cframe_free(e);
		return NULL;
	}
	e->a = a;
	e->refs = 1;
	e->pub.data = e->buf;
	e->pub.len = len;
	e->pub.doff = a->dstart[idx];
	e->pub.idx = idx;
	return e;
}

/* Decompresses frame idx into e with a pooled context (frame_load). */
static int
cframe_load(struct archive_cache *c, struct archive *a, uint32_t idx,
    struct cframe *e)
{
	ZSTD_DCtx *dctx;
	int rc;

	if ((dctx = dctx_get(c)) == NULL)
		return -ENOMEM;
	rc = frame_load(a, idx, dctx, e->buf, &e->fault);
	dctx_put(c, dctx);
	return rc;
}

/*
 * The loader of e (frame idx of a) is done, with rc: on success e goes
 * into the cache (evicting the least recently used past the budget) and
 * to the caller (*fp); on failure its waiters see the error and the
 * next reader tries afresh. Wakes the waiters. Returns rc.
 */
static int
cache_settle(struct archive_cache *c, struct archive *a, uint32_t idx,
    struct cframe *e, int rc, struct archive_frame **fp,
    struct archive_fault *fault)
{
	struct cframe_list evicted = TAILQ_HEAD_INITIALIZER(evicted);
	struct cframe *t, *dead = NULL;

	pthread_mutex_lock(&c->mtx);
	e->loading = 0;
	if (rc != 0) {
		e->err = rc;
		a->slot[idx] = NULL;
		if (fault != NULL && rc == -EBADMSG)
			*fault = e->fault;
		if (--e->refs == 0)
			dead = e;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mtx);
		cframe_free(dead);
		return rc;
	}
	e->refs++; /* the cache's own */
	e->cached = 1;
	TAILQ_INSERT_HEAD(&c->lru, e, lru);
	c->bytes += e->pub.len;
	c->entries++;
	/* may evict e itself when one frame exceeds the budget: the
	 * caller's reference keeps it alive until released */
	while (c->bytes > c->budget &&
	    (t = TAILQ_LAST(&c->lru, cframe_list)) != NULL) {
		c->evictions++;
		if (cache_unlink(c, t) != NULL)
			TAILQ_INSERT_TAIL(&evicted, t, lru);
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mtx);
	while ((t = TAILQ_FIRST(&evicted)) != NULL) {
		TAILQ_REMOVE(&evicted, t, lru);
		cframe_free(t);
	}
	*fp = &e->pub;
	return 0;
}

int
archive_read_frame(struct archive *a, uint32_t idx, struct archive_frame **fp,
    struct archive_fault *fault)
{
	struct archive_cache *c = a->cache;
	struct cframe *e = NULL, *old, *dead = NULL;
	size_t len;
	int rc;

	if (idx >= a->nframes)
		return -ERANGE;
	len = (size_t)(a->dstart[idx + 1] - a->dstart[idx]);
	for (;;) {
		if (c != NULL) {
			pthread_mutex_lock(&c->mtx);
			if ((old = a->slot[idx]) != NULL) {
				/* cached, or being loaded by another reader:
				 * one decompression serves both */
				old->refs++;
				rc = cache_take(c, old, fp, fault, &dead);
				pthread_mutex_unlock(&c->mtx);
				cframe_free(dead);
				cframe_free(e);
				return rc;
			}
			if (e != NULL) {
				e->loading = 1;
				a->slot[idx] = e;
				c->misses++;
				pthread_mutex_unlock(&c->mtx);
				break;
			}
			pthread_mutex_unlock(&c->mtx);
		} else if (e != NULL)
			break;
		if ((e = cframe_new(a, idx, len)) == NULL)
			return -ENOMEM;
	}

	rc = cframe_load(c, a, idx, e);
	if (c != NULL)
		return cache_settle(c, a, idx, e, rc, fp, fault);
	if (rc != 0) {
		if (fault != NULL && rc == -EBADMSG)
			*fault = e->fault;
		cframe_free(e);
		return rc;
	}
	*fp = &e->pub;
	return 0;
}

int
archive_get(struct archive *a, uint64_t doff, struct archive_frame **fp,
    struct archive_fault *fault)
{
	uint32_t idx;
	int rc;

	if ((rc = archive_find(a, doff, &idx)) != 0)
		return rc;
	return archive_read_frame(a, idx, fp, fault);
}

void
archive_frame_release(struct archive *a, struct archive_frame *f)
{
	struct cframe *e = (struct cframe *)f;
	struct archive_cache *c = a->cache;
	uint32_t left;

	if (e == NULL)
		return;
	if (c == NULL) {
		cframe_free(e);
		return;
	}
	pthread_mutex_lock(&c->mtx);
	left = --e->refs;
	pthread_mutex_unlock(&c->mtx);
	if (left == 0)
		cframe_free(e);
}

void
archive_close(struct archive *a)
{
	struct archive_cache *c;
	struct cframe *e;
	uint32_t i;

	if (a == NULL)
		return;
	c = a->cache;
	if (c != NULL && a->slot != NULL) {
		pthread_mutex_lock(&c->mtx);
		for (i = 0; i < a->nframes; i++) {
			if ((e = a->slot[i]) != NULL) {
				e = cache_unlink(c, e);
				cframe_free(e); /* NULL if a reader holds it */
			}
		}
		pthread_mutex_unlock(&c->mtx);
	}
	if (a->fd >= 0)
		close(a->fd);
	free(a->coff);
	free(a->dstart);
	free(a->csum);
	free(a->slot);
	free(a);
}

struct archive_cache *
archive_cache_new(uint64_t budget)
{
	struct archive_cache *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (pthread_mutex_init(&c->mtx, NULL) != 0) {
		free(c);
		return NULL;
	}
	if (pthread_cond_init(&c->cv, NULL) != 0) {
		pthread_mutex_destroy(&c->mtx);
		free(c);
		return NULL;
	}
	TAILQ_INIT(&c->lru);
	c->budget = budget;
	return c;
}

void
archive_cache_free(struct archive_cache *c)
{
	int i;

	if (c == NULL)
		return;
	for (i = 0; i < c->ndctx; i++)
		ZSTD_freeDCtx(c->dctx[i]);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mtx);
	free(c);
}

void
archive_cache_stat(struct archive_cache *c, struct archive_cache_stats *st)
{
	pthread_mutex_lock(&c->mtx);
	st->budget = c->budget;
	st->bytes = c->bytes;
	st->entries = c->entries;
	st->hits = c->hits;
	st->misses = c->misses;
	st->evictions = c->evictions;
	pthread_mutex_unlock(&c->mtx);
}

/*
 * Verification and startup cleanup.
 */

int
archive_verify(const char *path, struct archive_stats *st,
    struct archive_fault *fault)
{
	struct archive *a = NULL;
	struct batch_hdr h;
	ZSTD_DCtx *dctx = NULL;
	uint8_t *buf = NULL;
	uint64_t pos = 0, off, blen, len;
	uint32_t i;
	int rc;

	if ((rc = archive_open(path, NULL, &a, fault)) != 0)
		return rc;
	if ((dctx = ZSTD_createDCtx()) == NULL ||
	    (buf = malloc(a->max_dsize)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < a->nframes; i++) {
		if ((rc = frame_load(a, i, dctx, buf, fault)) != 0)
			goto fail;
		len = a->dstart[i + 1] - a->dstart[i];
		off = 0;
		if (i == 0) {
			if (logfile_hdr_decode(buf, len, &pos) != REC_OK) {
				rc = set_fault(fault, 0, 0, 0,
				    "bad segment file header");
				goto fail;
			}
			off = LOGFILE_HDR;
		}
		while (off < len) {
			if (batch_verify(buf, len, off, pos, 1, &blen) != 0) {
				rc = set_fault(fault, i, a->coff[i],
				    a->dstart[i] + off,
				    "bad batch (or one split across frames)");
				goto fail;
			}
			(void)batch_hdr_decode(buf + off, len - off, &h);
			pos += h.count;
			off += blen;
		}
	}
	if (st != NULL)
		archive_stat(a, st);
	rc = 0;
fail:
	free(buf);
	ZSTD_freeDCtx(dctx);
	archive_close(a);
	return rc;
}

/* Settles "X" and "X.zst" both present (see archive.h). */
static int
cleanup_pair(int dirfd, const char *zname, int *removed)
{
	struct archive *a = NULL;
	struct archive_fault f;
	struct stat sb;
	char plain[NAME_MAX + 1];
	size_t n = strlen(zname) - strlen(ARCHIVE_SUFFIX);
	int fd, rc;

	memcpy(plain, zname, n);
	plain[n] = '\0';
	if (fstatat(dirfd, plain, &sb, 0) != 0)
		return errno == ENOENT ? 0 : -errno;
	if ((fd = openat(dirfd, zname, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	rc = archive_openfd(fd, NULL, &a, &f);
	if (rc == 0 && a->dstart[a->nframes] == (uint64_t)sb.st_size) {
		log_info("archive %s is complete; removing plain %s", zname,
		    plain);
		rc = unlinkat(dirfd, plain, 0) == 0 ? 0 : -errno;
	} else if (rc == 0 || rc == -EBADMSG) {
		log_warnx("archive %s does not match plain %s (%s); removing "
		          "the archive",
		    zname, plain, rc == 0 ? "size differs" : f.what);
		rc = unlinkat(dirfd, zname, 0) == 0 ? 0 : -errno;
	}
	if (rc == 0)
		(*removed)++;
	archive_close(a);
	return rc;
}

static int
has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n > m && strcmp(s + n - m, suf) == 0;
}

int
archive_cleanup(int dirfd, int *removedp)
{
	struct dirent *de;
	DIR *d = NULL;
	char **pairs = NULL, **p;
	size_t npairs = 0, i;
	int fd, rc = 0, removed = 0;

	if ((fd = dup(dirfd)) < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		rc = -errno;
		close(fd);
		goto fail;
	}
	rewinddir(d);
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (has_suffix(de->d_name, ARCHIVE_TMP_SUFFIX)) {
			log_info("removing interrupted archive %s",
			    de->d_name);
			if (unlinkat(dirfd, de->d_name, 0) != 0 &&
			    errno != ENOENT) {
				rc = -errno;
				goto fail;
			}
			removed++;
		} else if (has_suffix(de->d_name, ARCHIVE_SUFFIX)) {
			if ((p = reallocarray(pairs, npairs + 1,
			         sizeof(*pairs))) == NULL) {
				rc = -ENOMEM;
				goto fail;
			}
			pairs = p;
			if ((pairs[npairs] = strdup(de->d_name)) == NULL) {
				rc = -ENOMEM;
				goto fail;
			}
			npairs++;
		}
	}
	if (errno != 0) {
		rc = -errno;
		goto fail;
	}
	/* a rename seen now may not be durable yet: make it so before
	 * any plain segment goes */
	if (npairs > 0 && fsync(dirfd) != 0) {
		rc = -errno;
		goto fail;
	}
	for (i = 0; i < npairs; i++)
		if ((rc = cleanup_pair(dirfd, pairs[i], &removed)) != 0)
			goto fail;
	if (removed > 0 && fsync(dirfd) != 0) {
		rc = -errno;
		goto fail;
	}
fail:
	if (d != NULL)
		closedir(d);
	for (i = 0; i < npairs; i++)
		free(pairs[i]);
	free(pairs);
	if (removedp != NULL)
		*removedp = removed;
	return rc;
}
