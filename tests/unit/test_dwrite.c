/* SPDX-License-Identifier: MIT */
/*
 * test_dwrite.c - unit tests of eventfoldctl export's direct writer
 * (clients/eventfoldctl/dwrite.c): files of every size around its
 * alignment and its blocks, put in pieces of many sizes, read back byte
 * for byte; lines written in place that run past a block; the flag gone
 * after dwrite_finish; a failed write returned by the calls after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "dwrite.h"
#include "tmpdir.h"

#define MIB (1u << 20)

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_dwrite.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
	tmpdir_remove(dir);
}

static uint8_t
byte_at(size_t i)
{
	return (uint8_t)(i * 131 + i / 4093);
}

/* Writes size bytes through dwrite in pieces of piece bytes (cycling
 * through a few sizes when piece is 0; in place with dwrite_block and
 * dwrite_fill, pieces up to 600 KiB, when inplace) and checks the file. */
static void
write_and_check_as(size_t size, size_t piece, int inplace)
{
	static const size_t pieces[] = { 1, 7, 4096, 65537, 3 * MIB + 5 };
	struct dwrite *dw;
	struct stat sb;
	char path[128];
	uint8_t *src, *back;
	size_t at, n, k = 0;
	int fd, rc, fl;

	src = malloc(size + 1);
	back = malloc(size + 1);
	cr_assert(src != NULL && back != NULL);
	for (at = 0; at < size; at++)
		src[at] = byte_at(at);
	snprintf(path, sizeof(path), "%s/f-%zu-%zu", dir, size, piece);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	rc = dwrite_open(&dw, fd);
	if (rc == 1)
		cr_skip_test("the file system of /tmp refuses O_DIRECT");
	cr_assert_eq(rc, 0, "dwrite_open: %d", rc);
	for (at = 0; at < size; at += n) {
		n = piece ? piece : pieces[k++ % 5];
		if (inplace)
			n = (k++ * 7919 * 131) % (600 << 10) + 1;
		if (n > size - at)
			n = size - at;
		if (inplace && k % 3 != 0) { /* every third one copied */
			size_t len, cap;
			char *b = dwrite_block(dw, &len, &cap);

			cr_assert(cap - len >= n, "room %zu for %zu",
			    cap - len, n);
			memcpy(b + len, src + at, n);
			cr_assert_eq(dwrite_fill(dw, len + n), 0,
			    "fill at %zu", at);
		} else
			cr_assert_eq(dwrite_put(dw, src + at, n), 0,
			    "put at %zu", at);
	}
	cr_assert_eq(dwrite_finish(dw), 0, "finish of %zu bytes", size);
	fl = fcntl(fd, F_GETFL);
	cr_assert(fl >= 0 && !(fl & O_DIRECT), "O_DIRECT left on the fd");
	dwrite_free(dw);
	cr_assert_eq(close(fd), 0);

	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq((size_t)sb.st_size, size, "size %zu, want %zu",
	    (size_t)sb.st_size, size);
	fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	for (at = 0; at < size; at += (size_t)rc) {
		rc = (int)read(fd, back + at, size - at);
		cr_assert(rc > 0, "read at %zu", at);
	}
	close(fd);
	for (at = 0; at < size; at++)
		if (back[at] != src[at])
			cr_assert_fail("byte %zu of %zu: %u, want %u", at,
			    size, back[at], src[at]);
	free(src);
	free(back);
}

static void
write_and_check(size_t size, size_t piece)
{
	write_and_check_as(size, piece, 0);
}

TestSuite(dwrite, .init = setup, .fini = teardown);

Test(dwrite, sizes_around_the_alignment)
{
	static const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 12289 };
	size_t i;

	/* every allocation of the writer's blocks costs (MALLOC_PERTURB_
	 * fills them): a few files, pieces of 1 byte or of mixed sizes */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		write_and_check(sizes[i], i % 2);
}

/* 8 MiB blocks, three of them: sizes around one block and past all
 * three, so that the caller waits for the writer and blocks are
 * reused. */
Test(dwrite, sizes_around_the_blocks)
{
	write_and_check(8 * MIB - 1, 0);
	write_and_check(8 * MIB, MIB - 3);
	write_and_check(8 * MIB + 4097, 0);
	write_and_check(41 * MIB + 12345, MIB - 3);
	write_and_check(16 * MIB + 100, 16 * MIB + 100); /* one put */
}

/* Lines formatted in place into the block run past its end; mixed with
 * copied pieces as export mixes them. */
Test(dwrite, lines_in_place_past_the_blocks)
{
	write_and_check_as(8 * MIB + 1, 0, 1);
	write_and_check_as(27 * MIB + 4321, 0, 1);
}

/* A failed write (here: the fd is not open for writing) comes back from
 * the next put that waits for the writer and from finish. */
Test(dwrite, a_failed_write_is_returned)
{
	struct dwrite *dw;
	char path[128];
	uint8_t *buf;
	size_t i;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/ro", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	close(fd);
	fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	rc = dwrite_open(&dw, fd);
	if (rc == 1)
		cr_skip_test("the file system of /tmp refuses O_DIRECT");
	cr_assert_eq(rc, 0);
	buf = calloc(1, MIB);
	cr_assert_not_null(buf);
	for (i = 0; i < 64 && rc == 0; i++)
		rc = dwrite_put(dw, buf, MIB);
	cr_assert_eq(rc, -EBADF, "put: %d after %zu MiB", rc, i);
	cr_assert_eq(dwrite_finish(dw), -EBADF);
	dwrite_free(dw);
	close(fd);
	free(buf);
}
