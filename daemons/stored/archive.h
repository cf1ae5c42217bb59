/* SPDX-License-Identifier: MIT */
/*
 * archive.h - the cold archive of eventfold-stored: a sealed segment
 * compressed in the zstd seekable layout, read back one frame at a time
 * through a shared LRU of decompressed frames.
 *
 * Layout of "<segment>.zst" (all integers little-endian):
 *
 *   zstd frame 0      the 64-byte file header and the first whole batches
 *   zstd frame 1..    whole batches; a batch never spans two frames
 *   seek table        a zstd skippable frame:
 *                       u32 0x184D2A5E, u32 size of what follows,
 *                       per frame: u32 compressed size,
 *                                  u32 decompressed size,
 *                                  u32 low 32 bits of XXH64(decompressed)
 *                       footer: u32 frame count, u8 descriptor (0x80:
 *                       checksums present), u32 0x8F92EAB1
 *
 * A frame closes after the batch that brings its input to frame_size or
 * more. Every zstd frame carries its content size and its own checksum,
 * so plain `zstd -d` gives back the segment byte for byte (the skippable
 * frame decodes to nothing), and a damaged frame is caught twice: by
 * zstd's frame checksum and by the seek table's.
 *
 * Durability (archive_write): the archive is written to
 * "<segment>.zst.tmp", fsynced, renamed to "<segment>.zst", and the
 * directory fsynced. Only after archive_write returns 0 may the caller
 * unlink the plain segment (and fsync the directory). A crash at any
 * point therefore leaves the plain segment, or the whole archive, or
 * both; never neither. archive_cleanup() at startup settles every case:
 *   - "X.zst.tmp": an interrupted write; removed.
 *   - "X" and "X.zst" both present: the rename happened, so the archive
 *     was complete and fsynced; after a directory fsync (the rename may
 *     not have been durable yet) and a check that the seek table is
 *     intact and covers exactly X's size, X is removed. If that check
 *     fails, the archive is the one removed: the plain segment is the
 *     truth until its archive is proven.
 *
 * Errors: 0 or a negative errno. -EBADMSG always means damaged data
 * (a corrupt frame, seek table or batch); the functions that can return
 * it fill a struct archive_fault naming the frame and file offset, so
 * that stored can answer DATA_LOSS and verify can print file and offset.
 * zstd's codes are translated here and never leave archive.c.
 *
 * Threads: an archive and a cache may be used by any number of threads
 * at once (archive_get, archive_frame_release, archive_stat,
 * archive_cache_stat). archive_close and archive_cache_free must not
 * race with other calls on the same object.
 *
 * Caveats: a frame handle pins its bytes; frames pinned by readers are
 * not counted against the budget once evicted, so memory is bounded by
 * budget + (frames held at once) x (frame size). Readers missing on
 * the same frame at once wait for one decompression and share it (or
 * its error); a failed load is not cached, so the next read retries.
 */
#ifndef EF_ARCHIVE_H
#define EF_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#define ARCHIVE_SUFFIX     ".zst"
#define ARCHIVE_TMP_SUFFIX ".zst.tmp"
#define ARCHIVE_FRAME_SIZE (256u * 1024) /* default frame input */
#define ARCHIVE_LEVEL      3             /* default zstd level */
#define ARCHIVE_FRAMES_MAX (1u << 24)    /* frames in one archive */
#define ARCHIVE_DFRAME_MAX (256u << 20)  /* decompressed frame bytes */
#define ARCHIVE_SEEK_MAGIC 0x8F92EAB1u
#define ARCHIVE_SKIP_MAGIC 0x184D2A5Eu
#define ARCHIVE_FOOTER     9
#define ARCHIVE_ENTRY      12 /* with checksum */

struct archive;
struct archive_cache;

/* Where damage was found; filled on -EBADMSG. */
struct archive_fault {
	uint32_t frame;    /* frame index, UINT32_MAX for the seek table */
	uint64_t file_off; /* offset in the archive file (frame start) */
	uint64_t doff;     /* offset in the segment's bytes, if known */
	const char *what;  /* static text: "frame checksum mismatch", ... */
};

struct archive_opts {
	uint32_t frame_size; /* 0: ARCHIVE_FRAME_SIZE; at most 64 MiB */
	int level;           /* 0: ARCHIVE_LEVEL */
	/*
	 * Crash points, for failure injection: when set (tests, and stored
	 * built with crash points), archive_write calls it with each step's
	 * name as it passes: "archive.tmp_open", "archive.frame" (after each
	 * frame), "archive.table", "archive.fsync", "archive.rename",
	 * "archive.dir_fsync". A hook that _exit()s there leaves what a
	 * crash at that step would. NULL: none.
	 */
	void (*crash_point)(const char *name);
};

struct archive_stats {
	uint64_t comp_bytes; /* size of the archive file */
	uint64_t raw_bytes;  /* size of the segment it holds */
	uint32_t frames;
};

struct archive_cache_stats {
	uint64_t budget;
	uint64_t bytes; /* decompressed bytes held by the cache */
	uint64_t entries;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
};

/*
 * A decompressed frame, pinned until archive_frame_release(). data is
 * owned by the cache and valid until then; len bytes of the segment
 * starting at segment offset doff. Read-only for the caller.
 */
struct archive_frame {
	const uint8_t *data;
	size_t len;
	uint64_t doff;
	uint32_t idx;
};

/*
 * Compresses the sealed plain segment "plain" (a name under dirfd) into
 * "plain.zst" as described above, checking every batch on the way.
 * o may be NULL for the defaults; st (may be NULL) receives the sizes.
 * Returns 0 once the archive is durable under its final name;
 * -EBADMSG if the segment is damaged or has a torn tail (*bad_off,
 * may be NULL, is its offset; nothing is left behind); -EINVAL for bad
 * options; -EFBIG if a frame would pass ARCHIVE_DFRAME_MAX; another
 * negative errno on I/O failure (the temp file is removed). The plain
 * segment is never touched: removing it is the caller's next step.
 */
int archive_write(int dirfd, const char *plain, const struct archive_opts *o,
    struct archive_stats *st, uint64_t *bad_off);

/*
 * Removes leftovers under dirfd as described above. *removed (may be
 * NULL) counts the files removed. 0 or a negative errno.
 */
int archive_cleanup(int dirfd, int *removed);

/*
 * A cache of decompressed frames shared by any number of archives,
 * holding at most budget bytes of frames not in use. Returns NULL on
 * ENOMEM. Free with archive_cache_free() after every archive using it
 * is closed (NULL is accepted).
 */
struct archive_cache *archive_cache_new(uint64_t budget);
void archive_cache_free(struct archive_cache *c);
void archive_cache_stat(struct archive_cache *c,
    struct archive_cache_stats *st);

/*
 * Opens the archive at path and loads its seek table, trusting no size
 * or count in it: every one is checked against the file's size and the
 * bounds above. cache (borrowed, must outlive the archive) may be NULL:
 * then every archive_get decompresses afresh and the frame is freed at
 * release. Returns 0 and *ap (free with archive_close); -EBADMSG with
 * *fault (may be NULL) filled if the table is malformed; -errno.
 */
int archive_open(const char *path, struct archive_cache *cache,
    struct archive **ap, struct archive_fault *fault);

/*
 * Drops the archive's frames from its cache and frees it. Every frame
 * it handed out must have been released. NULL is accepted.
 */
void archive_close(struct archive *a);

void archive_stat(const struct archive *a, struct archive_stats *st);

/* Where frame idx lies in the file and in the segment. */
struct archive_frame_info {
	uint64_t file_off;
	uint32_t comp_len;
	uint64_t doff;
	uint32_t len;
};

/* 0, or -ERANGE for a bad index. */
int archive_frame_info(const struct archive *a, uint32_t idx,
    struct archive_frame_info *fi);

/*
 * The index of the frame holding segment offset doff (binary search in
 * the seek table), or -ERANGE if doff is past the segment's end.
 */
int archive_find(const struct archive *a, uint64_t doff, uint32_t *idx);

/*
 * Returns in *fp the decompressed frame idx, from the cache or read,
 * checked (zstd checksum, seek table checksum, size) and decompressed.
 * The caller owns one reference and must archive_frame_release() it.
 * 0; -ERANGE for a bad index; -EBADMSG with *fault (may be NULL) filled
 * if the frame is damaged; -ENOMEM; -errno from pread.
 */
int archive_read_frame(struct archive *a, uint32_t idx,
    struct archive_frame **fp, struct archive_fault *fault);

/*
 * archive_find + archive_read_frame: the frame holding segment offset
 * doff; the record there starts at (*fp)->data + doff - (*fp)->doff,
 * whole within the frame, since frames hold whole batches.
 */
int archive_get(struct archive *a, uint64_t doff, struct archive_frame **fp,
    struct archive_fault *fault);

/* Drops one reference taken by archive_get/archive_read_frame (NULL ok). */
void archive_frame_release(struct archive *a, struct archive_frame *f);

/*
 * Checks the archive at path from end to end without a cache: the seek
 * table, every frame (both checksums, sizes), the file header in frame
 * 0, and that the frames' bytes parse as consecutive intact batches
 * (batch_verify), each batch whole within a frame. st (may be NULL)
 * receives the sizes. 0 if intact; -EBADMSG with *fault filled for the
 * first damage (its file offset and, for a bad batch, its segment
 * offset); -errno on I/O errors.
 */
int archive_verify(const char *path, struct archive_stats *st,
    struct archive_fault *fault);

#endif
