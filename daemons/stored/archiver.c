/* SPDX-License-Identifier: MIT */
/*
 * archiver.c - the cold archive inside eventfold-stored: a low-priority
 * thread that compresses sealed segments into the zstd seekable layout
 * (archive.c), the switch of a segment from its mapping to its archive,
 * reading records of archived segments (journal_at), and what startup
 * needs to know about archives.
 *
 * Which segments: sealed, already indexed on disk (their Bloom filter is
 * set), and older than the newest hot_segments sealed ones. The thread
 * is woken by the indexer after each segment and by ARCHIVE.
 *
 * Durability rule, in this order, each step proved by a crash point
 * (tests/integration/test_archiver.c):
 *   1. archive_write: "<seg>.zst.tmp" written, fsynced, renamed to
 *      "<seg>.zst", directory fsynced ("archive.*" points);
 *   2. archive_open, and the segment switches to it under maplock
 *      (write): no reader is inside a segment while it changes;
 *   3. the plain segment is unlinked ("archiver.before_unlink") and the
 *      directory fsynced ("archiver.after_unlink").
 * A crash before 1 ends leaves the plain segment (and maybe a .tmp);
 * after it, both files or only the archive. Startup runs
 * archive_cleanup() before any segment is listed: it removes a .tmp,
 * and of a pair it keeps the archive once proven whole (else the plain
 * segment). Never neither.
 *
 * Reads: a thread pins the journal (maplock, read) at its first
 * journal_at() and keeps every frame it was handed until journal_unpin()
 * (thread-local state below). A damaged frame makes journal_at() return
 * NULL and journal_fault() name the archive, the frame's file offset and
 * the segment offset: the read answers DATA_LOSS and stored goes on.
 *
 * Startup stays tail-only: an archived segment below the indexed
 * position is opened (its seek table only), never decompressed. Only an
 * index rebuild decompresses archives, one at a time, into memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "crashpoint.h"
#include "log.h"
#include "segfile.h"
#include "stored.h"

#define RETRY_MS 5000

/* ---- reading: the pins of this thread ---- */

struct pin {
	struct archive *a;
	struct archive_frame *f;
};

static __thread struct {
	struct journal *j; /* pinned (maplock held for read), or NULL */
	struct pin *v;
	size_t n, cap;
	char fault[512];
} tp;

void
journal_pin(const struct journal *j)
{
	if (tp.j != NULL)
		return;
	pthread_rwlock_rdlock((pthread_rwlock_t *)&j->maplock);
	tp.j = (struct journal *)j;
}

void
journal_unpin(void)
{
	size_t i;

	for (i = 0; i < tp.n; i++)
		archive_frame_release(tp.v[i].a, tp.v[i].f);
	tp.n = 0;
	if (tp.j != NULL) {
		pthread_rwlock_unlock(&tp.j->maplock);
		tp.j = NULL;
	}
	if (tp.cap > 64) {
		free(tp.v);
		tp.v = NULL;
		tp.cap = 0;
	}
}

size_t
journal_pinned(void)
{
	return tp.n;
}

const char *
journal_fault(void)
{
	return tp.fault[0] ? tp.fault : "unreadable location";
}

void
journal_set_fault(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tp.fault, sizeof(tp.fault), fmt, ap);
	va_end(ap);
	log_warnx("%s", tp.fault);
}

const uint8_t *
segment_arc_at(const struct journal *j, struct segment *s, uint64_t off)
{
	struct archive *a = s->arc;
	struct archive_fault fault;
	struct archive_frame *f;
	struct pin *nv;
	size_t i;
	int rc;

	(void)j;
	for (i = tp.n; i-- > 0;) {
		f = tp.v[i].f;
		if (tp.v[i].a == a && off >= f->doff && off < f->doff + f->len)
			return f->data + (off - f->doff);
	}
	memset(&fault, 0, sizeof(fault));
	if ((rc = archive_get(a, off, &f, &fault)) != 0) {
		if (rc == -EBADMSG)
			snprintf(tp.fault, sizeof(tp.fault),
			    "%s%s: damaged at "
			    "file offset %" PRIu64 " (frame %" PRIu32
			    ", segment "
			    "offset %" PRIu64 "): %s",
			    s->path, ARCHIVE_SUFFIX, fault.file_off,
			    fault.frame, off,
			    fault.what ? fault.what : "bad frame");
		else
			snprintf(tp.fault, sizeof(tp.fault),
			    "%s%s: reading "
			    "segment offset %" PRIu64 ": %s",
			    s->path, ARCHIVE_SUFFIX, off, strerror(-rc));
		log_warnx("archive: %s", tp.fault);
		return NULL;
	}
	if (tp.n == tp.cap) {
		size_t ncap = tp.cap ? tp.cap * 2 : 8;

		if ((nv = realloc(tp.v, ncap * sizeof(*nv))) == NULL)
			fatal("realloc");
		tp.v = nv;
		tp.cap = ncap;
	}
	tp.v[tp.n].a = a;
	tp.v[tp.n++].f = f;
	return f->data + (off - f->doff);
}

/* ---- startup ---- */

int
archiver_cleanup(const char *data_dir)
{
	int dfd, rc, removed = 0;

	if ((dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = archive_cleanup(dfd, &removed);
	close(dfd);
	if (rc == 0 && removed > 0)
		log_warnx("%s: %d leftover file(s) of interrupted archiving "
		          "removed",
		    data_dir, removed);
	return rc;
}

static char *
arc_path(const char *dir, uint64_t base)
{
	char name[SEGFILE_NAME_MAX], *p;

	segfile_name(name, sizeof(name), base);
	if (asprintf(&p, "%s/%s%s", dir, name, ARCHIVE_SUFFIX) < 0)
		return NULL;
	return p;
}

int
archiver_segment_size(const char *dir, uint64_t base, uint64_t *size)
{
	char name[SEGFILE_NAME_MAX], path[4200], *ap = NULL;
	struct archive_stats st;
	struct archive *a = NULL;
	struct stat sb;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir,
	    segfile_name(name, sizeof(name), base));
	if (stat(path, &sb) == 0) {
		*size = (uint64_t)sb.st_size;
		return 0;
	}
	if ((ap = arc_path(dir, base)) == NULL)
		return -ENOMEM;
	if ((rc = archive_open(ap, NULL, &a, NULL)) != 0)
		goto fail;
	archive_stat(a, &st);
	*size = st.raw_bytes;
	archive_close(a);
fail:
	free(ap);
	return rc;
}

/* Decompresses the whole archive into an anonymous mapping. */
static int
expand(struct segment *s, struct journal_bad *bad)
{
	struct archive_fault fault;
	struct archive_frame *f;
	struct archive_stats st;
	uint8_t *m = MAP_FAILED;
	uint32_t i;
	int rc;

	archive_stat(s->arc, &st);
	if (st.raw_bytes == 0)
		return -EBADMSG;
	m = mmap(NULL, st.raw_bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	for (i = 0; i < st.frames; i++) {
		memset(&fault, 0, sizeof(fault));
		if ((rc = archive_read_frame(s->arc, i, &f, &fault)) != 0) {
			if (rc == -EBADMSG && bad != NULL) {
				snprintf(bad->file, sizeof(bad->file), "%s%s",
				    s->path, ARCHIVE_SUFFIX);
				bad->off = fault.file_off;
			}
			goto fail;
		}
		if (f->doff + f->len > st.raw_bytes) {
			archive_frame_release(s->arc, f);
			rc = -EBADMSG;
			goto fail;
		}
		memcpy(m + f->doff, f->data, f->len);
		archive_frame_release(s->arc, f);
	}
	(void)mprotect(m, st.raw_bytes, PROT_READ);
	s->map = m;
	s->map_cap = st.raw_bytes;
	return 0;
fail:
	munmap(m, st.raw_bytes);
	return rc;
}

int
archiver_load(struct journal *j, uint64_t base, int expand_it,
    struct segment **out, uint64_t *size, struct journal_bad *bad)
{
	struct archive_fault fault;
	struct archive_stats st;
	struct segment *s;
	struct stat sb;
	char *ap = NULL;
	int rc;

	*out = NULL;
	if ((s = segment_new(j, base)) == NULL)
		return -ENOMEM;
	s->zst_only = 1;
	if ((ap = arc_path(j->dir, base)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	memset(&fault, 0, sizeof(fault));
	if ((rc = archive_open(ap, j->cache, &s->arc, &fault)) != 0) {
		if (rc == -EBADMSG && bad != NULL) {
			snprintf(bad->file, sizeof(bad->file), "%s", ap);
			bad->off = fault.file_off;
		}
		log_warnx("%s: cannot open the archive: %s", ap,
		    rc == -EBADMSG && fault.what ? fault.what : strerror(-rc));
		goto fail;
	}
	archive_stat(s->arc, &st);
	if (stat(ap, &sb) == 0)
		s->arc_bytes = (uint64_t)sb.st_size;
	*size = st.raw_bytes;
	if (expand_it) {
		/* read as plain until the archiver switches it back */
		if ((rc = expand(s, bad)) != 0)
			goto fail;
		archive_close(s->arc);
		s->arc = NULL;
	}
	free(ap);
	*out = s;
	return 0;
fail:
	free(ap);
	archiver_segment_free(s);
	free(s->path);
	free(s);
	return rc;
}

void
archiver_segment_free(struct segment *s)
{
	if (s == NULL || s->arc == NULL)
		return;
	archive_close(s->arc);
	s->arc = NULL;
}

/* ---- the archiver thread ---- */

static int
eligible(struct stored *sd, struct segment *s, uint64_t k, uint64_t n)
{
	uint64_t hot = sd->conf.hot_segments;

	/* segs[n - 1] is hot; sealed ones are 0 .. n - 2 */
	return k + 1 + hot < n &&
	    __atomic_load_n(&s->sealed, __ATOMIC_ACQUIRE) &&
	    __atomic_load_n(&s->bloom, __ATOMIC_ACQUIRE) != NULL &&
	    __atomic_load_n(&s->arc, __ATOMIC_ACQUIRE) == NULL;
}

/* The oldest eligible segment; *left counts them all. */
static struct segment *
next_eligible(struct stored *sd, uint64_t *left)
{
	struct journal *j = &sd->journal;
	uint64_t n = journal_nsegs(j), k, c = 0;
	struct segment *first = NULL;

	for (k = 0; k < n; k++)
		if (eligible(sd, j->segs[k], k, n)) {
			if (first == NULL)
				first = j->segs[k];
			c++;
		}
	if (left != NULL)
		*left = c;
	return first;
}

/*
 * Archives s (see the rule at the top). st receives the sizes.
 * 0 or a negative errno; the plain segment stays on any failure before
 * the switch.
 */
static int
archive_one(struct stored *sd, struct segment *s, struct archive_stats *st)
{
	struct journal *j = &sd->journal;
	char name[SEGFILE_NAME_MAX], *ap = NULL;
	struct archive_opts o;
	struct archive_fault fault;
	struct archive *a = NULL;
	const uint8_t *old;
	uint64_t old_cap, bad_off = 0;
	struct stat sb;
	int rc;

	segfile_name(name, sizeof(name), s->base);
	memset(&o, 0, sizeof(o));
	o.frame_size = (uint32_t)sd->conf.archive_frame_size;
	o.level = (int)sd->conf.archive_level;
#ifdef EF_CRASHPOINTS
	o.crash_point = crashpoint;
#endif
	if ((ap = arc_path(j->dir, s->base)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (!s->zst_only) {
		rc = archive_write(j->dirfd, name, &o, st, &bad_off);
		if (rc == -EBADMSG)
			log_warnx("archive: %s is damaged at offset %" PRIu64
			          "; not archived (see eventfoldctl verify)",
			    s->path, bad_off);
		if (rc != 0)
			goto fail;
	}
	memset(&fault, 0, sizeof(fault));
	if ((rc = archive_open(ap, j->cache, &a, &fault)) != 0)
		goto fail;
	archive_stat(a, st);
	if (st->raw_bytes != s->end) {
		log_warnx("archive: %s holds %" PRIu64 " bytes, the segment "
		          "%" PRIu64,
		    ap, st->raw_bytes, s->end);
		rc = -EBADMSG;
		goto fail;
	}
	if (stat(ap, &sb) == 0)
		s->arc_bytes = (uint64_t)sb.st_size;
	/* the switch: no reader is inside any segment now */
	pthread_rwlock_wrlock(&j->maplock);
	old = s->map;
	old_cap = s->map_cap;
	s->map = NULL;
	s->map_cap = 0;
	__atomic_store_n(&s->arc, a, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&j->maplock);
	a = NULL;
	if (old != NULL)
		munmap((void *)old, old_cap);
	if (!s->zst_only) {
		crashpoint("archiver.before_unlink");
		if (unlinkat(j->dirfd, name, 0) != 0) {
			rc = -errno;
			log_warn("archive: unlink %s (the archive is in use; "
			         "startup removes the plain copy)",
			    s->path);
			goto fail;
		}
		crashpoint("archiver.after_unlink");
		if (fsync(j->dirfd) != 0)
			log_warn("archive: fsync of %s after removing %s",
			    j->dir, s->path);
		s->zst_only = 1;
	}
	__atomic_add_fetch(&sd->archived_segs, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&sd->archived_bytes, s->arc_bytes,
	    __ATOMIC_RELAXED);
	__atomic_add_fetch(&sd->archived_raw, s->end, __ATOMIC_RELAXED);
	rc = 0;
fail:
	archive_close(a);
	free(ap);
	return rc;
}

/* Figures for STATUS of the segments archived at start. */
static void
count_archived(struct stored *sd)
{
	struct journal *j = &sd->journal;
	uint64_t n = journal_nsegs(j), k;
	struct segment *s;

	for (k = 0; k < n; k++) {
		s = j->segs[k];
		if (!s->zst_only || s->arc == NULL)
			continue;
		sd->archived_segs++;
		sd->archived_bytes += s->arc_bytes;
		sd->archived_raw += s->end;
	}
}

/*
 * It compresses a whole core: nice 19, so that appends and reads come
 * first. Not SCHED_IDLE: the thread takes maplock for writing (briefly)
 * and must not starve there while readers wait behind it.
 */
static void
lower_priority(void)
{
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
}

struct arun {
	uint64_t seq, done; /* requests asked, answered */
	int rc;
	uint64_t archived; /* by the last request */
	struct archive_stats st;
	uint64_t base, left;
};

static struct arun arun;
static pthread_mutex_t arun_mu = PTHREAD_MUTEX_INITIALIZER;

static void *
archiver_main(void *arg)
{
	struct stored *sd = arg;
	struct archive_stats st;
	struct segment *s;
	struct timespec dl;
	uint64_t left, t0;
	int rc, req, failed = 0;

	lower_priority();
	for (;;) {
		pthread_mutex_lock(&sd->archiver.mu);
		for (;;) {
			req = arun.done < arun.seq;
			if (sd->archiver.exit || req ||
			    (!failed && next_eligible(sd, NULL) != NULL))
				break;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += RETRY_MS / 1000;
			if (pthread_cond_timedwait(&sd->archiver.cv,
			        &sd->archiver.mu, &dl) == ETIMEDOUT)
				failed = 0;
		}
		pthread_mutex_unlock(&sd->archiver.mu);
		if (sd->archiver.exit)
			break;
		s = next_eligible(sd, &left);
		rc = 0;
		memset(&st, 0, sizeof(st));
		if (s != NULL) {
			t0 = mono_ms();
			pthread_mutex_lock(&sd->ahold);
			rc = archive_one(sd, s, &st);
			pthread_mutex_unlock(&sd->ahold);
			if (rc != 0) {
				log_warnx("archive: %s: %s; retrying in %d s",
				    s->path, strerror(-rc), RETRY_MS / 1000);
				failed = 1;
			} else {
				left--;
				log_info("archive: %s archived (%" PRIu64
				         " -> %" PRIu64 " bytes in %" PRIu64
				         " ms); %" PRIu64 " eligible left",
				    s->path, st.raw_bytes, st.comp_bytes,
				    mono_ms() - t0, left);
			}
		}
		if (req) {
			pthread_mutex_lock(&sd->archiver.mu);
			arun.rc = rc;
			arun.archived = s != NULL && rc == 0;
			arun.st = st;
			arun.base = s != NULL ? s->base : 0;
			arun.left = left;
			arun.done = arun.seq;
			pthread_cond_broadcast(&sd->archiver.cv);
			pthread_mutex_unlock(&sd->archiver.mu);
		}
	}
	/* answer a request that came in as we stopped */
	pthread_mutex_lock(&sd->archiver.mu);
	if (arun.done < arun.seq) {
		arun.rc = -ECANCELED;
		arun.archived = 0;
		arun.done = arun.seq;
		pthread_cond_broadcast(&sd->archiver.cv);
	}
	pthread_mutex_unlock(&sd->archiver.mu);
	return NULL;
}

int
archiver_step(struct stored *sd, struct ipc_archive_rep *rep)
{
	uint64_t ticket;
	int rc;

	memset(rep, 0, sizeof(*rep));
	if (!sd->archiver.running)
		return -ECANCELED;
	pthread_mutex_lock(&arun_mu);
	pthread_mutex_lock(&sd->archiver.mu);
	ticket = ++arun.seq;
	pthread_cond_broadcast(&sd->archiver.cv);
	while (arun.done < ticket)
		pthread_cond_wait(&sd->archiver.cv, &sd->archiver.mu);
	rc = arun.rc;
	rep->archived = arun.archived != 0;
	rep->base = arun.base;
	rep->raw_bytes = arun.st.raw_bytes;
	rep->comp_bytes = arun.st.comp_bytes;
	rep->left = arun.left;
	pthread_mutex_unlock(&sd->archiver.mu);
	pthread_mutex_unlock(&arun_mu);
	return rc;
}

int
archiver_start(struct stored *sd)
{
	count_archived(sd);
	pthread_mutex_init(&sd->ahold, NULL);
	return bgthread_start(&sd->archiver, archiver_main, sd);
}

void
archiver_wake(struct stored *sd)
{
	bgthread_wake(&sd->archiver);
}

void
archiver_stop(struct stored *sd)
{
	bgthread_stop(&sd->archiver);
}
