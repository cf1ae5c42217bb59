/* SPDX-License-Identifier: MIT */
/*
 * dwrite.c - export's output file written with O_DIRECT by a writer
 * thread, from a few large aligned blocks that the caller fills in turn.
 *
 * Why: through the page cache, a 425 MB export (1M events) spent about
 * a quarter of eventfoldctl's CPU in write(2), sync_file_range and
 * posix_fadvise (page-cache folios and their buffer heads allocated,
 * copied into, written back, dropped), all on the thread that formats
 * the lines. O_DIRECT hands the block's pages to the device as they
 * are; the thread that formats only copies lines into a block, and
 * never waits for the disk while another block is free.
 *
 * Rules:
 *   - Blocks are DW_BLOCK bytes at DW_ALIGN-aligned addresses and file
 *     offsets, written in order by the one writer thread: a block is
 *     written whole before the next one starts.
 *   - Lines are written into the block in place (dwrite_block,
 *     dwrite_fill) or copied (dwrite_put). In place, a line may run
 *     past the block into its slack: that tail moves to the start of
 *     the next block when the block is handed over.
 *   - The last, partial block is written by dwrite_finish(): its
 *     aligned part directly, the rest after O_DIRECT is cleared.
 *   - A file system that refuses O_DIRECT (fcntl fails) is not written
 *     here at all (dwrite_open returns 1); one that takes the flag but
 *     fails an aligned write with EINVAL gets the rest through the page
 *     cache from that block on (the flag cleared): same bytes, the old
 *     speed.
 *   - The first failed write is kept and returned by every later
 *     dwrite_put() and by dwrite_finish(); nothing after it is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dwrite.h"

#define DW_BLOCK (8u << 20) /* the device splits it: several in flight */
#define DW_SLACK (1u << 20) /* past a block: lines written in place */
#define DW_NBUF  3
#define DW_ALIGN 4096
#define DW_HUGE  (2u << 20) /* blocks in transparent huge pages */

struct dwrite {
	int fd;
	int direct; /* O_DIRECT still set on fd */
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *buf[DW_NBUF];
	unsigned fill;   /* the block being filled (the caller's) */
	size_t len;      /* bytes in it */
	unsigned next;   /* the next block to write (the writer's) */
	unsigned queued; /* blocks handed over and not yet written */
	uint64_t off;    /* file offset of the next block written */
	int err;         /* the first failed write, a negative errno */
	int stop, started;
};

/* Clears O_DIRECT on fd: later writes go through the page cache. */
static void
direct_off(struct dwrite *dw)
{
	int fl = fcntl(dw->fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(dw->fd, F_SETFL, fl & ~O_DIRECT);
	dw->direct = 0;
}

/* Writes n bytes of p at off. 0 or a negative errno. */
static int
write_at(struct dwrite *dw, const char *p, size_t n, uint64_t off)
{
	ssize_t w;

	while (n > 0) {
		w = pwrite(dw->fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EINVAL && dw->direct) {
			direct_off(dw); /* alignment refused: page cache */
			continue;
		}
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static void *
writer_main(void *arg)
{
	struct dwrite *dw = arg;
	unsigned k;
	int rc;

	pthread_mutex_lock(&dw->mu);
	for (;;) {
		while (dw->queued == 0 && !dw->stop)
			pthread_cond_wait(&dw->cv, &dw->mu);
		if (dw->stop)
			break;
		k = dw->next;
		pthread_mutex_unlock(&dw->mu);
		rc = dw->err ? 0 : write_at(dw, dw->buf[k], DW_BLOCK, dw->off);
		pthread_mutex_lock(&dw->mu);
		if (rc != 0 && dw->err == 0)
			dw->err = rc;
		dw->off += DW_BLOCK;
		dw->next = (dw->next + 1) % DW_NBUF;
		dw->queued--;
		pthread_cond_broadcast(&dw->cv);
	}
	pthread_mutex_unlock(&dw->mu);
	return NULL;
}

int
dwrite_open(struct dwrite **dwp, int fd)
{
	struct dwrite *dw;
	int fl, k;

	*dwp = NULL;
	if ((dw = calloc(1, sizeof(*dw))) == NULL)
		return -ENOMEM;
	dw->fd = fd;
	/*
	 * In huge pages where the system allows them: a few faults instead
	 * of one per 4 KiB page when the blocks are first filled, and fewer
	 * pages for each O_DIRECT write to pin (both were ~4% of the CPU).
	 */
	for (k = 0; k < DW_NBUF; k++) {
		if (posix_memalign((void **)&dw->buf[k], DW_HUGE,
		        DW_BLOCK + DW_SLACK) != 0) {
			dwrite_free(dw);
			return -ENOMEM;
		}
		(void)madvise(dw->buf[k], DW_BLOCK + DW_SLACK, MADV_HUGEPAGE);
	}
	pthread_mutex_init(&dw->mu, NULL);
	pthread_cond_init(&dw->cv, NULL);
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl | O_DIRECT) != 0) {
		dwrite_free(dw);
		return 1;
	}
	dw->direct = 1;
	if (pthread_create(&dw->thr, NULL, writer_main, dw) != 0) {
		direct_off(dw);
		dwrite_free(dw);
		return -EAGAIN;
	}
	dw->started = 1;
	*dwp = dw;
	return 0;
}

/* Hands the full block over and takes the next free one. */
static int
hand_over(struct dwrite *dw)
{
	int rc;

	pthread_mutex_lock(&dw->mu);
	dw->queued++;
	pthread_cond_broadcast(&dw->cv);
	while (dw->queued == DW_NBUF)
		pthread_cond_wait(&dw->cv, &dw->mu);
	rc = dw->err;
	pthread_mutex_unlock(&dw->mu);
	dw->fill = (dw->fill + 1) % DW_NBUF;
	dw->len = 0;
	return rc;
}

int
dwrite_put(struct dwrite *dw, const void *p, size_t n)
{
	const char *s = p;
	size_t k;
	int rc;

	while (n > 0) {
		k = DW_BLOCK - dw->len < n ? DW_BLOCK - dw->len : n;
		memcpy(dw->buf[dw->fill] + dw->len, s, k);
		dw->len += k;
		s += k;
		n -= k;
		if (dw->len == DW_BLOCK && (rc = hand_over(dw)) != 0)
			return rc;
	}
	return 0;
}

char *
dwrite_block(struct dwrite *dw, size_t *len, size_t *cap)
{
	*len = dw->len;
	*cap = DW_BLOCK + DW_SLACK;
	return dw->buf[dw->fill];
}

int
dwrite_fill(struct dwrite *dw, size_t len)
{
	unsigned was = dw->fill;
	size_t over;
	int rc;

	dw->len = len;
	if (len < DW_BLOCK)
		return 0;
	/* the writer reads only the block's first DW_BLOCK bytes */
	over = len - DW_BLOCK;
	rc = hand_over(dw);
	memcpy(dw->buf[dw->fill], dw->buf[was] + DW_BLOCK, over);
	dw->len = over;
	return rc;
}

int
dwrite_finish(struct dwrite *dw)
{
	size_t aligned = dw->len & ~(size_t)(DW_ALIGN - 1);
	uint64_t off;
	int rc;

	pthread_mutex_lock(&dw->mu);
	while (dw->queued > 0)
		pthread_cond_wait(&dw->cv, &dw->mu);
	rc = dw->err;
	off = dw->off;
	pthread_mutex_unlock(&dw->mu);
	if (rc == 0 && aligned > 0)
		rc = write_at(dw, dw->buf[dw->fill], aligned, off);
	if (dw->direct)
		direct_off(dw);
	if (rc == 0)
		rc = write_at(dw, dw->buf[dw->fill] + aligned,
		    dw->len - aligned, off + aligned);
	dw->len = 0;
	return rc;
}

void
dwrite_free(struct dwrite *dw)
{
	int k;

	if (dw == NULL)
		return;
	if (dw->started) {
		pthread_mutex_lock(&dw->mu);
		dw->stop = 1;
		pthread_cond_broadcast(&dw->cv);
		pthread_mutex_unlock(&dw->mu);
		pthread_join(dw->thr, NULL);
		pthread_mutex_destroy(&dw->mu);
		pthread_cond_destroy(&dw->cv);
	}
	if (dw->direct)
		direct_off(dw);
	for (k = 0; k < DW_NBUF; k++)
		free(dw->buf[k]);
	free(dw);
}
