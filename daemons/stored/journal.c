/* SPDX-License-Identifier: MIT */
/*
 * journal.c - the active log file of eventfold-stored: lock, open,
 * recover, append durably, map for readers. Format in record.h.
 *
 * Recovery treats a batch (one group commit) as the unit. Scanning from
 * the file header, every batch must have an intact header, lie within
 * the file, and hold records with good checksums and consecutive global
 * positions. At the first batch that does not:
 *   - if no intact batch follows anywhere in the file, what remains is a
 *     torn tail of a write that was never acknowledged: it is cut off
 *     and the cut logged;
 *   - otherwise the log is corrupt before its tail: stored refuses to
 *     start and names the offset, unless started with --repair yes,
 *     which cuts the log there (dropping everything after, loudly).
 *
 * Caveats: the mapping reserves a large range of address space beyond
 * the file so that it never moves; only bytes below `end` are read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "stored.h"

#define JOURNAL_NAME "events.log"
#define LOCK_NAME    "LOCK"
#define MAP_RESERVE  (1ull << 40)

static int
fsync_dir(const char *dir)
{
	int fd, rc = 0;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY)) < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int
journal_create(struct journal *j, const char *data_dir)
{
	uint8_t hdr[LOGFILE_HDR];

	logfile_hdr_encode(hdr, 0);
	if (ftruncate(j->fd, 0) != 0 ||
	    pwrite(j->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    fdatasync(j->fd) != 0)
		return -errno ? -errno : -EIO;
	return fsync_dir(data_dir);
}

int
journal_open(struct journal *j, const char *data_dir, int repair,
    journal_visit_fn visit, void *arg, uint64_t *bad_off)
{
	char path[4096];
	struct stat sb;
	struct batch_hdr h;
	struct ef_event ev;
	uint64_t off, size, len, pos = 0, p;
	size_t rlen;
	uint32_t i;
	int rc;

	memset(j, 0, sizeof(*j));
	j->fd = j->lockfd = j->dirfd = -1;
	if (mkdir(data_dir, 0750) != 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s", data_dir, LOCK_NAME);
	if ((j->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0)
		return -errno;
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK ? -EEXIST : -errno;
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", data_dir, JOURNAL_NAME);
	if ((j->path = strdup(path)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0) {
		rc = -errno;
		goto fail;
	}
	if (fstat(j->fd, &sb) != 0) {
		rc = -errno;
		goto fail;
	}
	if ((uint64_t)sb.st_size < LOGFILE_HDR) {
		/* new, or its creation was interrupted: no events yet */
		if ((rc = journal_create(j, data_dir)) != 0)
			goto fail;
		sb.st_size = LOGFILE_HDR;
	}
	size = (uint64_t)sb.st_size;
	/* as large a reservation as the address space allows (valgrind and
	 * ulimit -v allow less than 1 TiB) */
	for (j->map_cap = MAP_RESERVE; j->map_cap >= size + (1ull << 28);
	    j->map_cap /= 4) {
		j->map = mmap(NULL, j->map_cap, PROT_READ, MAP_SHARED, j->fd,
		    0);
		if (j->map != MAP_FAILED)
			break;
	}
	if (j->map == MAP_FAILED || j->map == NULL) {
		j->map = NULL;
		rc = -errno;
		goto fail;
	}
	if (logfile_hdr_decode(j->map, size, &j->base) != REC_OK) {
		struct batch_hdr bh;
		uint8_t hdr[LOGFILE_HDR];

		*bad_off = 0;
		if (!repair) {
			log_warnx("%s: bad file header", path);
			rc = -EBADMSG;
			goto fail;
		}
		/* rewrite it; the base is the first intact batch's position */
		j->base = 0;
		if (batch_verify(j->map, size, LOGFILE_HDR, 0, 0, &len) == 0 &&
		    batch_hdr_decode(j->map + LOGFILE_HDR, size - LOGFILE_HDR,
		    &bh) == REC_OK)
			j->base = bh.first_pos;
		logfile_hdr_encode(hdr, j->base);
		if (pwrite(j->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
		    fdatasync(j->fd) != 0) {
			rc = -errno;
			goto fail;
		}
		log_warnx("%s: REPAIR: bad file header rewritten (base "
		    "position %" PRIu64 ")", path, j->base);
	}
	madvise((void *)j->map, size, MADV_SEQUENTIAL);
	pos = j->base;
	off = LOGFILE_HDR;
	while (off < size) {
		if (batch_verify(j->map, size, off, pos, 1, &len) != 0)
			break;
		(void)batch_hdr_decode(j->map + off, size - off, &h);
		p = off + BATCH_HDR;
		for (i = 0; i < h.count; i++) {
			(void)record_decode(j->map + p, size - p, &ev, &rlen, 0);
			visit(arg, &ev, p);
			p += rlen;
		}
		pos += h.count;
		off += len;
	}
	madvise((void *)j->map, size, MADV_NORMAL);
	if (off < size) {
		if (batch_find_after(j->map, size, off)) {
			*bad_off = off;
			if (!repair) {
				log_warnx("%s: corrupt batch at offset %" PRIu64
				    " with intact data after it; refusing to "
				    "start (see eventfoldctl verify, or "
				    "--repair yes to cut the log there)",
				    path, off);
				rc = -EBADMSG;
				goto fail;
			}
			log_warnx("%s: REPAIR: cutting the log at corrupt "
			    "offset %" PRIu64 ", dropping %" PRIu64 " bytes",
			    path, off, size - off);
		} else
			log_warnx("%s: torn tail at offset %" PRIu64
			    " (%" PRIu64 " bytes of an unacknowledged write)"
			    " truncated", path, off, size - off);
		if (ftruncate(j->fd, (off_t)off) != 0 || fdatasync(j->fd) != 0) {
			rc = -errno;
			goto fail;
		}
	}
	j->end = off;
	return 0;
fail:
	journal_close(j);
	return rc;
}

int
journal_append(struct journal *j, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0;
	ssize_t n;
	int err;

	if (j->end + len > j->map_cap)
		return -EFBIG; /* beyond what readers can map */

	while (done < len) {
		n = pwrite(j->fd, p + done, len - done,
		    (off_t)(j->end + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			/* nothing of this batch may stay: cut it off */
			if (ftruncate(j->fd, (off_t)j->end) != 0)
				fatal("journal: cannot cut failed write");
			return -err;
		}
		done += (size_t)n;
	}
	if (fdatasync(j->fd) != 0)
		fatal("journal: fdatasync (page cache state unknown, "
		    "restarting through recovery)");
	j->end += len;
	return 0;
}

void
journal_close(struct journal *j)
{
	if (j->map != NULL)
		munmap((void *)j->map, j->map_cap);
	if (j->fd >= 0) {
		(void)fdatasync(j->fd);
		close(j->fd);
	}
	if (j->lockfd >= 0)
		close(j->lockfd);
	free(j->path);
	memset(j, 0, sizeof(*j));
	j->fd = j->lockfd = j->dirfd = -1;
}
