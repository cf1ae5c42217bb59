/* SPDX-License-Identifier: MIT */
/*
 * journal.c - the event log of eventfold-stored as segment files: lock,
 * take over the old single file, open, recover, append durably, rotate,
 * map for readers. Formats in record.h, names in segfile.h.
 *
 * Durability rules, each proved by a test in tests/integration/
 * test_segments.c (crash points in crashpoint.h):
 *   - Only the last segment (the hot one) is ever written. A segment is
 *     sealed between two batches, so a batch never spans two segments.
 *   - The next segment is written to a temporary name with its header,
 *     fdatasync'ed, renamed to its final name, and the directory fsynced,
 *     all before the first batch in it is written, let alone answered.
 *     A crash before the rename leaves a ".tmp" that startup removes; a
 *     crash after it leaves an empty last segment, which is a valid log.
 *     A failure after the rename is fatal (like a failed fdatasync): the
 *     directory's state is unknown and recovery decides.
 *   - Take-over of a pre-segment data directory: events.log is
 *     fdatasync'ed, renamed to the first segment's name (its header's
 *     base) and the directory fsynced. Either name is a startable
 *     directory, so a crash at any step is harmless.
 *
 * Recovery treats a batch (one group commit) as the unit and checks every
 * segment: an intact file header whose base is the segment's name, and
 * batches with intact headers, good record checksums and global
 * positions that continue from the previous segment. At the first batch
 * that does not verify:
 *   - in the last segment, if no intact batch follows anywhere in it,
 *     what remains is a torn tail of a write that was never acknowledged:
 *     it is cut off and the cut logged;
 *   - otherwise (anywhere in a sealed segment, or before intact data in
 *     the last one) the log is corrupt: stored refuses to start and names
 *     the file and offset, unless started with --repair yes, which cuts
 *     the log there (truncating that segment and deleting every later
 *     one, loudly).
 *
 * Caveats: the hot segment's mapping reserves address space beyond the
 * file so that it never moves while it grows; sealing shrinks it in
 * place. Only bytes below a segment's `end` are ever read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "crashpoint.h"
#include "log.h"
#include "segfile.h"
#include "stored.h"

#define LOCK_NAME            "LOCK"
#define SEGMENT_SIZE_DEFAULT (256ull << 20)
#define HOT_SLACK            (256ull << 20) /* room past segment_size */
#define TMP_SUFFIX           ".tmp"

static int
fsync_dirfd(struct journal *j)
{
	return fsync(j->dirfd) == 0 ? 0 : -errno;
}

static char *
seg_path(const struct journal *j, uint64_t base, const char *suffix)
{
	char name[SEGFILE_NAME_MAX], *p;

	segfile_name(name, sizeof(name), base);
	if (asprintf(&p, "%s/%s%s", j->dir, name, suffix) < 0)
		return NULL;
	return p;
}

static void
segment_free(struct segment *s)
{
	if (s == NULL)
		return;
	if (s->map != NULL)
		munmap((void *)s->map, s->map_cap);
	if (s->fd >= 0)
		close(s->fd);
	archiver_segment_free(s);
	free(s->bloom);
	free(s->path);
	free(s);
}

/*
 * Maps s (size bytes now). A hot segment gets a reservation it can grow
 * into: at least segment_size plus HOT_SLACK, less when the address
 * space does not allow it (valgrind, ulimit -v).
 */
static int
segment_map(struct journal *j, struct segment *s, uint64_t size, int hot)
{
	uint64_t cap, min;

	if (s->map != NULL) {
		munmap((void *)s->map, s->map_cap);
		s->map = NULL;
	}
	if (!hot) {
		s->map = mmap(NULL, size, PROT_READ, MAP_SHARED, s->fd, 0);
		if (s->map == MAP_FAILED) {
			s->map = NULL;
			return -errno;
		}
		s->map_cap = size;
		return 0;
	}
	cap = (size > j->segment_size ? size : j->segment_size) + HOT_SLACK;
	min = size + (16ull << 20);
	for (; cap >= min; cap /= 2) {
		s->map = mmap(NULL, cap, PROT_READ, MAP_SHARED, s->fd, 0);
		if (s->map != MAP_FAILED)
			break;
	}
	if (s->map == MAP_FAILED || s->map == NULL) {
		s->map = NULL;
		return -ENOMEM;
	}
	s->map_cap = cap;
	return 0;
}

struct segment *
segment_new(const struct journal *j, uint64_t base)
{
	struct segment *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->fd = -1;
	s->base = s->next = base;
	if ((s->path = seg_path(j, base, "")) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

/* Opens the segment file named base (read-write); not mapped yet. */
static int
segment_load(struct journal *j, uint64_t base, struct segment **out,
    uint64_t *size)
{
	struct segment *s;
	struct stat sb;
	int rc;

	*out = NULL;
	if ((s = segment_new(j, base)) == NULL)
		return -ENOMEM;
	if ((s->fd = open(s->path, O_RDWR | O_CLOEXEC)) < 0 ||
	    fstat(s->fd, &sb) != 0) {
		rc = -errno;
		goto fail;
	}
	*size = (uint64_t)sb.st_size;
	*out = s;
	return 0;
fail:
	segment_free(s);
	return rc;
}

/*
 * Creates the segment file named base, durably: temp file with the
 * header, fdatasync, rename, directory fsync (see the rules above).
 * Returns 0 or a negative errno if nothing was renamed; a failure after
 * the rename is fatal.
 */
static int
segment_create(struct journal *j, uint64_t base)
{
	uint8_t hdr[LOGFILE_HDR];
	char *tmp = NULL, *final = NULL;
	int fd = -1, rc;

	crashpoint("rotate.before_create");
	if ((tmp = seg_path(j, base, TMP_SUFFIX)) == NULL ||
	    (final = seg_path(j, base, "")) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	logfile_hdr_encode(hdr, base);
	if ((fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) <
	    0) {
		rc = -errno;
		goto fail;
	}
	if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
		rc = errno ? -errno : -EIO;
		goto fail;
	}
	if (fdatasync(fd) != 0) {
		rc = -errno;
		goto fail;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, final) != 0) {
		rc = -errno;
		goto fail;
	}
	crashpoint("rotate.after_create");
	if (fsync_dirfd(j) != 0)
		fatal(
		    "journal: fsync of %s after creating %s (directory state "
		    "unknown, restarting through recovery)",
		    j->dir, final);
	crashpoint("rotate.after_dirsync");
	free(tmp);
	free(final);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL)
		(void)unlink(tmp);
	free(tmp);
	free(final);
	return rc;
}

/* Removes the temporary files of segment creations a crash cut short. */
static void
remove_leftovers(struct journal *j)
{
	struct dirent *de;
	size_t n, sl = strlen(TMP_SUFFIX);
	DIR *d;

	if ((d = opendir(j->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (strncmp(de->d_name, SEGFILE_PREFIX,
		        strlen(SEGFILE_PREFIX)) != 0 ||
		    n <= sl || strcmp(de->d_name + n - sl, TMP_SUFFIX) != 0)
			continue;
		if (unlinkat(j->dirfd, de->d_name, 0) == 0)
			log_warnx("%s/%s: removed (a segment creation that a "
			          "crash interrupted; it held no event)",
			    j->dir, de->d_name);
	}
	closedir(d);
}

/*
 * Takes over the events.log of a release before segments, if there is
 * one: it becomes the first segment under its header's base.
 */
static int
takeover(struct journal *j, size_t nsegs)
{
	char old[4200], name[SEGFILE_NAME_MAX], *final = NULL;
	uint8_t hdr[LOGFILE_HDR];
	uint64_t base = 0;
	int fd, rc;

	snprintf(old, sizeof(old), "%s/%s", j->dir, LEGACY_LOG_NAME);
	if ((fd = open(old, O_RDWR | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (nsegs > 0) {
		close(fd);
		log_warnx("%s: both %s and segment files are present; which "
		          "is the log? Move one away",
		    j->dir, LEGACY_LOG_NAME);
		return -ENOTUNIQ;
	}
	if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    logfile_hdr_decode(hdr, sizeof(hdr), &base) != REC_OK)
		base = 0; /* short or damaged: recovery judges it below */
	if (fdatasync(fd) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);
	if ((final = seg_path(j, base, "")) == NULL)
		return -ENOMEM;
	crashpoint("takeover.before_rename");
	if (rename(old, final) != 0) {
		rc = -errno;
		free(final);
		return rc;
	}
	crashpoint("takeover.after_rename");
	free(final);
	if ((rc = fsync_dirfd(j)) != 0)
		return rc;
	log_info("%s: took over %s from a release before segments as %s",
	    j->dir, LEGACY_LOG_NAME, segfile_name(name, sizeof(name), base));
	return 0;
}

/* Rewrites s's file header (repair, or an interrupted creation). */
static int
rewrite_header(struct segment *s)
{
	uint8_t hdr[LOGFILE_HDR];

	logfile_hdr_encode(hdr, s->base);
	if (pwrite(s->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    fdatasync(s->fd) != 0)
		return errno ? -errno : -EIO;
	return 0;
}

/*
 * Repair: deletes the segment files bases[from..nb) and frees those of
 * them that are loaded (below *n, which becomes from).
 */
static int
drop_from(struct journal *j, const uint64_t *bases, uint64_t from, uint64_t nb,
    uint64_t *n)
{
	uint64_t i;
	char *path;

	for (i = from; i < nb; i++) {
		if ((path = seg_path(j, bases[i], "")) == NULL)
			return -ENOMEM;
		log_warnx("%s: REPAIR: deleting the segment (after the cut)",
		    path);
		if (unlink(path) != 0) {
			free(path);
			return -errno;
		}
		free(path);
	}
	for (i = from; i < *n; i++) {
		segment_free(j->segs[i]);
		j->segs[i] = NULL;
	}
	*n = from;
	return fsync_dirfd(j);
}

static void
note_bad(struct journal_bad *bad, const struct segment *s, uint64_t off)
{
	snprintf(bad->file, sizeof(bad->file), "%s", s->path);
	bad->off = off;
}

uint64_t
journal_find(const struct journal *j, uint64_t base)
{
	uint64_t lo = 0, hi = journal_nsegs(j), mid;

	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (j->segs[mid]->base <= base)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Takes data_dir's lock file, opens the directory, reserves segs[]. */
static int
journal_lock(struct journal *j, const char *data_dir)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", data_dir, LOCK_NAME);
	if ((j->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0)
		return -errno;
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) != 0)
		return errno == EWOULDBLOCK ? -EEXIST : -errno;
	if ((j->dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) <
	    0)
		return -errno;
	/* a reservation of zero pages, touched only as segments come (not
	 * malloc: MALLOC_PERTURB_ would fill all of it on free) */
	j->segs = mmap(NULL, JOURNAL_MAX_SEGS * sizeof(*j->segs),
	    PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (j->segs == MAP_FAILED) {
		j->segs = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* What journal_open() carries from one segment to the next. */
struct recovery {
	uint64_t *bases; /* of the segment files, in order */
	uint8_t *arcs;   /* which of them exist only as an archive */
	size_t nb;
	uint64_t n;   /* segments loaded into segs[] */
	uint64_t pos; /* the position the next segment must start at */
	uint64_t skip_to;
	int repair;
	int cut; /* the log was cut: no segment after this one */
	journal_visit_fn visit;
	void *arg;
	struct journal_bad *bad;
};

/*
 * Lists the segment files into r (after removing leftovers and taking
 * over an events.log), creating the first segment of a new log.
 */
static int
list_segments(struct journal *j, const char *data_dir, struct recovery *r)
{
	int rc;

	remove_leftovers(j);
	if ((rc = segfile_list_all(data_dir, &r->bases, &r->arcs, &r->nb)) !=
	    0)
		return rc;
	if ((rc = takeover(j, r->nb)) != 0)
		return rc;
	free(r->bases);
	free(r->arcs);
	r->bases = NULL;
	r->arcs = NULL;
	if ((rc = segfile_list_all(data_dir, &r->bases, &r->arcs, &r->nb)) !=
	    0)
		return rc;
	if (r->nb == 0) {
		/* a new log */
		if ((rc = segment_create(j, 0)) != 0)
			return rc;
		free(r->bases);
		free(r->arcs);
		r->bases = NULL;
		r->arcs = NULL;
		if ((rc = segfile_list_all(data_dir, &r->bases, &r->arcs,
		         &r->nb)) != 0)
			return rc;
	}
	if (r->nb > JOURNAL_MAX_SEGS)
		return -EFBIG;
	return 0;
}

/*
 * Checks the file header of segment i (s, size bytes) and that it
 * starts where the previous one ended; maps it if it has a file. 1 if
 * the log was cut before it (repair), 0, or a negative errno.
 */
static int
check_start(struct journal *j, struct recovery *r, uint64_t i,
    struct segment *s, uint64_t *size)
{
	int last = i == r->nb - 1, rc;
	uint64_t base;

	if (*size < LOGFILE_HDR && last) {
		/* a creation (of an older release) was interrupted: no
		 * events yet */
		if ((rc = rewrite_header(s)) != 0)
			return rc;
		*size = LOGFILE_HDR;
	}
	if (*size >= LOGFILE_HDR && s->fd >= 0 &&
	    (rc = segment_map(j, s, *size, last)) != 0)
		return rc;
	if (*size < LOGFILE_HDR ||
	    logfile_hdr_decode(s->map, *size, &base) != REC_OK ||
	    base != s->base) {
		note_bad(r->bad, s, 0);
		if (!r->repair || *size < LOGFILE_HDR) {
			log_warnx("%s: bad file header (not a segment "
			          "starting at position %" PRIu64 ")",
			    s->path, s->base);
			return -EBADMSG;
		}
		if ((rc = rewrite_header(s)) != 0)
			return rc;
		log_warnx("%s: REPAIR: bad file header rewritten (base "
		          "position %" PRIu64 ")",
		    s->path, s->base);
	}
	if (i > 0 && s->base != r->pos) {
		note_bad(r->bad, s, 0);
		log_warnx("%s: starts at position %" PRIu64 " but the "
		          "previous segment ends before %" PRIu64,
		    s->path, s->base, r->pos);
		if (!r->repair)
			return -EBADMSG;
		/* cut before this segment */
		if ((rc = drop_from(j, r->bases, i, r->nb, &r->n)) != 0)
			return rc;
		return 1;
	}
	return 0;
}

/*
 * Verifies the batches of segment i (s, size bytes) in order, visiting
 * each event, up to the first that does not verify; sets s->end and
 * s->next there.
 */
static void
replay_segment(struct recovery *r, uint64_t i, struct segment *s,
    uint64_t size)
{
	struct batch_hdr h;
	struct ef_event ev;
	uint64_t off = LOGFILE_HDR, len, p;
	size_t rlen;
	uint32_t k;

	madvise((void *)s->map, size, MADV_SEQUENTIAL);
	while (off < size) {
		if (batch_verify(s->map, size, off, r->pos, 1, &len) != 0)
			break;
		(void)batch_hdr_decode(s->map + off, size - off, &h);
		p = off + BATCH_HDR;
		for (k = 0; k < h.count; k++) {
			(void)record_decode(s->map + p, size - p, &ev, &rlen,
			    0);
			r->visit(r->arg, &ev, i << JOURNAL_OFF_BITS | p);
			p += rlen;
		}
		r->pos += h.count;
		off += len;
	}
	madvise((void *)s->map, size, MADV_NORMAL);
	s->end = off;
	s->next = r->pos;
}

/*
 * Segment i (s, size bytes) did not verify to its end: a torn tail of
 * the last segment is truncated; other damage is refused (-EBADMSG)
 * unless repair cuts the log there (r->cut).
 */
static int
settle_tail(struct journal *j, struct recovery *r, uint64_t i,
    struct segment *s, uint64_t size)
{
	uint64_t off = s->end;
	int last = i == r->nb - 1, rc;

	note_bad(r->bad, s, off);
	if (last && !batch_find_after(s->map, size, off)) {
		log_warnx("%s: torn tail at offset %" PRIu64 " (%" PRIu64
		          " bytes of an unacknowledged write) truncated",
		    s->path, off, size - off);
	} else if (!r->repair) {
		log_warnx("%s: corrupt batch at offset %" PRIu64 "%s; "
		          "refusing to start (see eventfoldctl verify, or "
		          "--repair yes to cut the log there)",
		    s->path, off,
		    last ? " with intact data after it" :
		           " of a sealed segment");
		return -EBADMSG;
	} else {
		log_warnx("%s: REPAIR: cutting the log at corrupt "
		          "offset %" PRIu64 ", dropping %" PRIu64 " bytes%s",
		    s->path, off, size - off,
		    last ? "" : " and every later segment");
		if ((rc = drop_from(j, r->bases, i + 1, r->nb, &r->n)) != 0)
			return rc;
		r->cut = 1;
	}
	if (ftruncate(s->fd, (off_t)off) != 0 || fdatasync(s->fd) != 0)
		return -errno;
	return 0;
}

/* Loads segment i into segs[] and recovers it (journal_open). */
static int
recover_segment(struct journal *j, struct recovery *r, uint64_t i)
{
	char path[SEGFILE_NAME_MAX];
	const uint64_t *bases = r->bases;
	int last = i == r->nb - 1, rc;
	struct segment *s;
	uint64_t size;

	if (r->arcs[i] && last) {
		/* the hot segment is never archived */
		snprintf(r->bad->file, sizeof(r->bad->file), "%s/%s%s", j->dir,
		    segfile_name(path, sizeof(path), bases[i]),
		    SEGFILE_ZST_SUFFIX);
		r->bad->off = 0;
		log_warnx("%s: the last segment exists only as an "
		          "archive; its plain file is missing",
		    r->bad->file);
		return -EBADMSG;
	}
	/* an archive (archiver.c) is opened, not read, when indexed; else
	 * decompressed into memory and recovered like a file */
	rc = r->arcs[i] ? archiver_load(j, bases[i], bases[i + 1] > r->skip_to,
	                      &s, &size, r->bad) :
	                  segment_load(j, bases[i], &s, &size);
	if (rc != 0)
		return rc;
	j->segs[r->n++] = s;
	if (!last && bases[i + 1] <= r->skip_to && size >= LOGFILE_HDR) {
		/* indexed on disk: checked when it was indexed; the start
		 * reads only the tail */
		if (s->fd >= 0 && (rc = segment_map(j, s, size, 0)) != 0)
			return rc;
		s->end = size;
		s->next = r->pos = bases[i + 1];
		if (i == 0)
			j->base = s->base;
		return 0;
	}
	if ((rc = check_start(j, r, i, s, &size)) != 0) {
		if (rc == 1)
			r->cut = 1;
		return rc == 1 ? 0 : rc;
	}
	r->pos = s->base;
	if (i == 0)
		j->base = s->base;
	replay_segment(r, i, s, size);
	if (s->end == size)
		return 0;
	return settle_tail(j, r, i, s, size);
}

/* After recovery: every segment but the last is sealed. */
static void
seal_all_but_hot(struct journal *j, uint64_t n)
{
	struct segment *s;
	uint64_t i;

	for (i = 0; i < n; i++) {
		s = j->segs[i];
		j->bytes += s->end;
		if (i == n - 1)
			break;
		s->sealed = 1;
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		j->sealed_bytes += s->end;
	}
}

int
journal_open(struct journal *j, const char *data_dir, uint64_t segment_size,
    uint64_t cache_bytes, int repair, uint64_t skip_to, journal_visit_fn visit,
    void *arg, struct journal_bad *bad)
{
	struct recovery r = { .skip_to = skip_to,
		.repair = repair,
		.visit = visit,
		.arg = arg,
		.bad = bad };
	struct segment *s;
	uint64_t i;
	int rc;

	memset(j, 0, sizeof(*j));
	memset(bad, 0, sizeof(*bad));
	j->lockfd = j->dirfd = -1;
	j->segment_size = segment_size ? segment_size : SEGMENT_SIZE_DEFAULT;
	pthread_rwlock_init(&j->maplock, NULL);
	if ((j->cache = archive_cache_new(cache_bytes)) == NULL)
		return -ENOMEM;
	if (mkdir(data_dir, 0750) != 0 && errno != EEXIST)
		return -errno;
	if ((j->dir = strdup(data_dir)) == NULL)
		return -ENOMEM;
	if ((rc = journal_lock(j, data_dir)) != 0 ||
	    (rc = list_segments(j, data_dir, &r)) != 0)
		goto fail;
	for (i = 0; i < r.nb && !r.cut; i++)
		if ((rc = recover_segment(j, &r, i)) != 0)
			goto fail;
	if (r.cut) {
		/* the last segment kept becomes the hot one */
		s = j->segs[r.n - 1];
		if ((rc = segment_map(j, s, s->end, 1)) != 0)
			goto fail;
	}
	seal_all_but_hot(j, r.n);
	__atomic_store_n(&j->nsegs, r.n, __ATOMIC_RELEASE);
	free(r.bases);
	free(r.arcs);
	return 0;
fail:
	free(r.bases);
	free(r.arcs);
	j->nsegs = r.n;
	journal_close(j);
	return rc;
}

int
journal_append(struct journal *j, const void *buf, size_t len)
{
	struct segment *s = journal_hot(j);
	const uint8_t *p = buf;
	struct batch_hdr h;
	size_t done = 0;
	ssize_t n;
	int err;

	if (batch_hdr_decode(buf, len, &h) != REC_OK)
		return -EINVAL;
	if (s->end + len > s->map_cap)
		return -EFBIG; /* beyond what readers can map: rotate */

	while (done < len) {
		n = pwrite(s->fd, p + done, len - done,
		    (off_t)(s->end + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			/* nothing of this batch may stay: cut it off */
			if (ftruncate(s->fd, (off_t)s->end) != 0)
				fatal("journal: cannot cut failed write");
			return -err;
		}
		done += (size_t)n;
	}
	if (fdatasync(s->fd) != 0)
		fatal("journal: fdatasync (page cache state unknown, "
		      "restarting through recovery)");
	__atomic_store_n(&s->end, s->end + len, __ATOMIC_RELEASE);
	__atomic_store_n(&s->next, s->next + h.count, __ATOMIC_RELEASE);
	__atomic_add_fetch(&j->bytes, len, __ATOMIC_RELAXED);
	return 0;
}

int
journal_rotate(struct journal *j)
{
	uint64_t n = journal_nsegs(j), size, keep;
	struct segment *old = j->segs[n - 1], *s;
	void *m;
	int rc;

	if (old->next == old->base)
		return 0;
	if (n >= JOURNAL_MAX_SEGS)
		return -EFBIG;
	if ((rc = segment_create(j, old->next)) != 0)
		return rc;
	if ((rc = segment_load(j, old->next, &s, &size)) != 0 ||
	    (rc = segment_map(j, s, size, 1)) != 0) {
		errno = -rc;
		fatal("journal: cannot open the segment just created");
	}
	s->end = size;
	j->segs[n] = s;
	/* seal: no more writes; give back the reservation past the end */
	keep = (old->end + 4095) & ~4095ull;
	if (keep < old->map_cap &&
	    (m = mremap((void *)old->map, old->map_cap, keep, 0)) !=
	        MAP_FAILED &&
	    m == old->map)
		old->map_cap = keep;
	close(old->fd);
	old->fd = -1;
	__atomic_store_n(&old->sealed, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&j->sealed_bytes, old->end, __ATOMIC_RELAXED);
	__atomic_add_fetch(&j->bytes, size, __ATOMIC_RELAXED);
	__atomic_store_n(&j->nsegs, n + 1, __ATOMIC_RELEASE);
	log_info("sealed %s (positions %" PRIu64 "..%" PRIu64 ", %" PRIu64
	         " bytes); writing %s",
	    old->path, old->base, old->next - 1, old->end, s->path);
	return 1;
}

void
journal_close(struct journal *j)
{
	uint64_t i;

	if (j->segs != NULL) {
		for (i = 0; i < j->nsegs; i++) {
			if (j->segs[i] != NULL && j->segs[i]->fd >= 0)
				(void)fdatasync(j->segs[i]->fd);
			segment_free(j->segs[i]);
		}
		munmap(j->segs, JOURNAL_MAX_SEGS * sizeof(*j->segs));
	}
	if (j->cache != NULL) {
		archive_cache_free(j->cache);
		pthread_rwlock_destroy(&j->maplock);
	}
	if (j->dirfd >= 0)
		close(j->dirfd);
	if (j->lockfd >= 0)
		close(j->lockfd);
	free(j->dir);
	memset(j, 0, sizeof(*j));
	j->lockfd = j->dirfd = -1;
}
