/* SPDX-License-Identifier: MIT */
/*
 * backup.c - BACKUP: an online, consistent copy of the data directory
 * that eventfold-stored starts on as it is, taken while appends go on.
 * Runs on a thread of its own (dispatch.c), one backup at a time.
 *
 * What makes it consistent, in this order:
 *   1. The archiver is held (sd->ahold): no segment changes between plain
 *      and archived, and no file goes away, until the backup is done.
 *   2. The LMDB index is copied first, with LMDB's own compacting copy
 *      (one read transaction: a snapshot). It covers only segments that
 *      are sealed now; those sealed later are past its indexed position,
 *      and the restored stored reads them at start and indexes them, as
 *      after any restart. Taken after the log's snapshot instead, it
 *      could cover a segment the backup holds only in part.
 *   3. The writer takes the log's snapshot between two batches (an
 *      EF_OP_BACKUP job, writer.c): the head H, the segments then, and
 *      the committed end of the last (hot) one. Every position below H
 *      is durable in those segments and nothing else is.
 *   4. Sealed segments never change: each is hard-linked when the backup
 *      is on the data directory's filesystem, copied otherwise; an
 *      archived one as its .zst. The hot segment is always copied (the
 *      stored started on the backup writes into it) and only up to its
 *      snapshot end: it may hold later batches by now.
 *   5. Everything is built in a sibling directory "DIR.partial-XXXXXX",
 *      each copied file fsynced, the directories fsynced, then renamed
 *      to DIR and the parent fsynced: DIR either does not exist or is a
 *      whole backup. A failure removes the partial directory; a crash
 *      leaves it, under a name that says what it is.
 *
 * Caveats: the files are written by stored, so DIR must be writable by
 * stored's user (under systemd's ProtectSystem=strict, a path in
 * ReadWritePaths=). Hard links share the file with the live log: a backup
 * on the same filesystem guards against operator error, not disk failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backupdir.h"
#include "fsync.h"
#include "log.h"
#include "segfile.h"
#include "stored.h"

#define COPY_CHUNK (8u << 20)

static pthread_mutex_t backup_mu = PTHREAD_MUTEX_INITIALIZER;

struct snap_wait {
	struct append_job job;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

/* Writer thread: the snapshot is taken. */
static void
snap_done(struct append_job *job)
{
	struct snap_wait *sw = (struct snap_wait *)job;

	pthread_mutex_lock(&sw->mu);
	sw->done = 1;
	pthread_cond_signal(&sw->cv);
	pthread_mutex_unlock(&sw->mu);
}

static int
stopping(const struct stored *sd)
{
	return __atomic_load_n(&sd->stopping, __ATOMIC_RELAXED);
}

/*
 * Copies the first len bytes of src into a new file dst (len UINT64_MAX:
 * all of it) and fsyncs it; *copied gets the byte count. The kernel
 * copies where it can (copy_file_range); plain reads and writes where
 * it cannot (another filesystem type). 0, -ECANCELED if stored is
 * stopping, or -errno.
 */
static int
copy_file(const struct stored *sd, const char *src, const char *dst,
    uint64_t len, uint64_t *copied)
{
	struct stat sb;
	char *buf = NULL;
	uint64_t done = 0, want;
	ssize_t n;
	int in = -1, out = -1, rc = 0, kernel = 1;

	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(in, &sb) != 0) {
		rc = -errno;
		goto out;
	}
	if (len == UINT64_MAX)
		len = (uint64_t)sb.st_size;
	if ((uint64_t)sb.st_size < len) {
		rc = -EIO; /* a committed byte would be missing */
		goto out;
	}
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) <
	    0) {
		rc = -errno;
		goto out;
	}
	while (done < len) {
		if (stopping(sd)) {
			rc = -ECANCELED;
			goto out;
		}
		want = len - done < COPY_CHUNK ? len - done : COPY_CHUNK;
		if (kernel) {
			loff_t off = (loff_t)done;

			n = copy_file_range(in, &off, out, NULL, (size_t)want,
			    0);
			if (n < 0 &&
			    (errno == EXDEV || errno == ENOSYS ||
			        errno == EINVAL || errno == EOPNOTSUPP)) {
				kernel = 0;
				continue;
			}
		} else {
			if (buf == NULL &&
			    (buf = malloc(COPY_CHUNK)) == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			n = pread(in, buf, (size_t)want, (off_t)done);
			if (n > 0 && write(out, buf, (size_t)n) != n)
				n = -1;
		}
		if (n < 0) {
			rc = errno ? -errno : -EIO;
			goto out;
		}
		if (n == 0) {
			rc = -EIO; /* the file shrank under us */
			goto out;
		}
		done += (uint64_t)n;
	}
	if (fsync(out) != 0)
		rc = -errno;
out:
	*copied = done;
	free(buf);
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Removes what a failed backup left in tmp (two levels), then tmp. */
static void
remove_partial(const char *tmp)
{
	char path[PATH_MAX + 300];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/index", tmp);
	for (int pass = 0; pass < 2; pass++) {
		const char *dir = pass == 0 ? path : tmp;
		char file[PATH_MAX + 600];

		if ((d = opendir(dir)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			snprintf(file, sizeof(file), "%s/%s", dir, de->d_name);
			if (unlink(file) != 0 && errno == EISDIR)
				(void)rmdir(file);
		}
		closedir(d);
		(void)rmdir(dir);
	}
}

/* DIR must be absolute, and absent or an empty directory. */
static int
check_target(const char *dir, char *why, size_t whylen)
{
	struct stat sb;
	struct dirent *de;
	DIR *d;
	int empty = 1;

	if (backupdir_check_name(dir, 64, why, whylen) != 0)
		return -EINVAL;
	if (stat(dir, &sb) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(sb.st_mode) || (d = opendir(dir)) == NULL) {
		snprintf(why, whylen, "%s exists and is not a directory", dir);
		return -EEXIST;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(d);
	if (!empty) {
		snprintf(why, whylen, "%s exists and is not empty", dir);
		return -EEXIST;
	}
	return 0;
}

/* The parent directory of path (absolute) into buf. */
static void
parent_of(const char *path, char *buf, size_t len)
{
	char *slash;

	snprintf(buf, len, "%s", path);
	slash = strrchr(buf, '/');
	if (slash == buf)
		buf[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
}

/* Step 2: the LMDB index, compacted, into tmp/index. */
static int
backup_index(struct stored *sd, const char *tmp, uint64_t *bytes, char *why,
    size_t whylen)
{
	char dir[PATH_MAX + 16];

	*bytes = 0;
	snprintf(dir, sizeof(dir), "%s/index", tmp);
	if (mkdir(dir, 0750) != 0) {
		snprintf(why, whylen, "mkdir %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (sd->disk.env == NULL)
		return 0; /* no index yet: the restored stored builds one */
	return backupdir_copy_env(sd->disk.env, dir, "the index", bytes, why,
	    whylen);
}

/* Step 3: the writer's snapshot of the log. */
static void
backup_snapshot(struct stored *sd, struct snap_wait *sw)
{
	memset(sw, 0, sizeof(*sw));
	pthread_mutex_init(&sw->mu, NULL);
	pthread_cond_init(&sw->cv, NULL);
	sw->job.op = EF_OP_BACKUP;
	sw->job.complete = snap_done;
	writer_submit(sd, &sw->job);
	pthread_mutex_lock(&sw->mu);
	while (!sw->done)
		pthread_cond_wait(&sw->cv, &sw->mu);
	pthread_mutex_unlock(&sw->mu);
	pthread_mutex_destroy(&sw->mu);
	pthread_cond_destroy(&sw->cv);
}

/*
 * Step 4 for one sealed segment: link (same filesystem) or copy its
 * plain file, or its archive if it has no plain file any more.
 */
static int
backup_sealed(struct stored *sd, const char *tmp, uint64_t base, int same_fs,
    struct ipc_backup_rep *rep, char *why, size_t whylen)
{
	char name[SEGFILE_NAME_MAX], src[PATH_MAX + 64], dst[PATH_MAX + 64];
	const char *suffix = "";
	struct stat sb;
	uint64_t n;
	int rc;

	segfile_name(name, sizeof(name), base);
	snprintf(src, sizeof(src), "%s/%s", sd->journal.dir, name);
	if (stat(src, &sb) != 0) {
		suffix = SEGFILE_ZST_SUFFIX;
		snprintf(src, sizeof(src), "%s/%s%s", sd->journal.dir, name,
		    suffix);
		if (stat(src, &sb) != 0) {
			rc = -errno;
			snprintf(why, whylen, "%s: %s", src, strerror(errno));
			return rc;
		}
	}
	snprintf(dst, sizeof(dst), "%s/%s%s", tmp, name, suffix);
	if (same_fs) {
		if (link(src, dst) == 0) {
			rep->linked++;
			rep->bytes += (uint64_t)sb.st_size;
			return 0;
		}
		if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
			rc = -errno;
			snprintf(why, whylen, "link %s to %s: %s", src, dst,
			    strerror(errno));
			return rc;
		}
	}
	if ((rc = copy_file(sd, src, dst, UINT64_MAX, &n)) != 0) {
		snprintf(why, whylen, "copy %s to %s: %s", src, dst,
		    strerror(-rc));
		return rc;
	}
	rep->copied++;
	rep->bytes += n;
	return 0;
}

/* Steps 4 and 5 once the snapshot is taken. */
static int
backup_segments(struct stored *sd, const char *tmp, const struct snap_wait *sw,
    struct ipc_backup_rep *rep, char *why, size_t whylen)
{
	char name[SEGFILE_NAME_MAX], dst[PATH_MAX + 64];
	struct stat a, b;
	struct segment *hot;
	uint64_t k, n;
	int same_fs, rc;

	if (stat(sd->journal.dir, &a) != 0 || stat(tmp, &b) != 0) {
		rc = -errno;
		snprintf(why, whylen, "stat: %s", strerror(errno));
		return rc;
	}
	same_fs = a.st_dev == b.st_dev;
	for (k = 0; k + 1 < sw->job.snap.nsegs; k++) {
		if (stopping(sd)) {
			snprintf(why, whylen, "stored is shutting down");
			return -ECANCELED;
		}
		if ((rc = backup_sealed(sd, tmp, sd->journal.segs[k]->base,
		         same_fs, rep, why, whylen)) != 0)
			return rc;
	}
	hot = sd->journal.segs[sw->job.snap.nsegs - 1];
	snprintf(dst, sizeof(dst), "%s/%s", tmp,
	    segfile_name(name, sizeof(name), hot->base));
	if ((rc = copy_file(sd, hot->path, dst, sw->job.snap.hot_end, &n)) !=
	    0) {
		snprintf(why, whylen, "copy %s to %s: %s", hot->path, dst,
		    rc == -ECANCELED ? "stored is shutting down" :
		                       strerror(-rc));
		return rc;
	}
	rep->copied++;
	rep->bytes += n;
	rep->segments = sw->job.snap.nsegs;
	if ((rc = fsync_path(tmp, 1)) != 0) {
		snprintf(why, whylen, "fsync %s: %s", tmp, strerror(-rc));
		return rc;
	}
	return 0;
}

int
backup_run(struct stored *sd, const char *dir, struct ipc_backup_rep *rep,
    char *why, size_t whylen)
{
	char tmp[PATH_MAX], parent[PATH_MAX];
	struct snap_wait sw;
	uint64_t t0 = mono_ms();
	int rc, made = 0;

	memset(rep, 0, sizeof(*rep));
	if ((rc = check_target(dir, why, whylen)) != 0)
		return rc;
	if (pthread_mutex_trylock(&backup_mu) != 0) {
		snprintf(why, whylen, "another backup is running");
		return -EBUSY;
	}
	snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", dir);
	if (mkdtemp(tmp) == NULL) {
		rc = -errno;
		snprintf(why, whylen, "create %s: %s", tmp, strerror(errno));
		goto out;
	}
	made = 1;
	(void)chmod(tmp, 0750);
	pthread_mutex_lock(&sd->ahold);
	if ((rc = backup_index(sd, tmp, &rep->index_bytes, why, whylen)) ==
	    0) {
		backup_snapshot(sd, &sw);
		rep->position = sw.job.snap.head;
		rc = backup_segments(sd, tmp, &sw, rep, why, whylen);
	}
	pthread_mutex_unlock(&sd->ahold);
	if (rc != 0)
		goto out;
	/* an empty directory at DIR is replaced; anything else refuses */
	if (rename(tmp, dir) != 0) {
		rc = -errno;
		snprintf(why, whylen, "rename %s to %s: %s", tmp, dir,
		    strerror(errno));
		goto out;
	}
	made = 0;
	parent_of(dir, parent, sizeof(parent));
	if ((rc = fsync_path(parent, 1)) != 0) {
		snprintf(why, whylen, "fsync %s: %s", parent, strerror(-rc));
		goto out;
	}
	log_info("backup: %s holds positions below %" PRIu64 " (%" PRIu64
	         " segments: %" PRIu64 " linked, %" PRIu64 " copied, %" PRIu64
	         " bytes; index %" PRIu64 " bytes) in %" PRIu64 " ms",
	    dir, rep->position, rep->segments, rep->linked, rep->copied,
	    rep->bytes, rep->index_bytes, mono_ms() - t0);
out:
	if (made)
		remove_partial(tmp);
	if (rc != 0)
		log_warnx("backup to %s failed: %s", dir, why);
	pthread_mutex_unlock(&backup_mu);
	return rc;
}
