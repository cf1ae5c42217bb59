/* SPDX-License-Identifier: MIT */
/*
 * stored.h - private structures of eventfold-stored.
 *
 * Threads: one writer (writer.c) is the only one that appends to the
 * journal and changes the index. Requests are handled in nng aio
 * callbacks (dispatch.c), one state machine per nng context: reads are
 * served straight from the mapped journal (or from decompressed frames
 * of archived segments, archiver.c); appends are handed to the
 * writer, which sends their replies itself once they are durable. Readers see
 * only what is committed: index.head is published (release) after the batch is
 * durable and the index updated.
 *
 * Headers by concern: journal.h (segments, locations, pins), diskindex.h
 * (LMDB index, Bloom and id filters), index.h (positions, streams, event
 * ids), writer.h (jobs and group commit), archive.h (the archive format).
 * This one holds the configuration, struct stored and the other threads.
 */
#ifndef EF_STORED_H
#define EF_STORED_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>
#include <xxhash.h>
#include <nng/nng.h>

#include "bgthread.h"
#include "diskindex.h"
#include "index.h"
#include "ipc.h"
#include "journal.h"
#include "record.h"
#include "writer.h"

struct writer;

struct stored_conf {
	char *data_dir;
	char *runtime_dir;
	char *store_url;  /* overrides runtime_dir/store.sock */
	char *events_url; /* overrides runtime_dir/store-events.sock */
	uint64_t workers;
	uint64_t max_read_count;
	uint64_t max_read_bytes;
	uint64_t max_append_bytes;
	uint64_t max_pub_bytes;
	uint64_t segment_size;
	int repair;
	uint64_t hot_segments;       /* sealed segments kept plain */
	uint64_t archive_frame_size; /* zstd frame input (archive.h) */
	uint64_t archive_level;
	uint64_t archive_cache_mb; /* decompressed frame cache budget */
};

struct stats {
	uint64_t commits; /* appends that wrote; replays are not */
	uint64_t fsyncs;
	uint64_t events_written;
	uint64_t recover_ms;
	uint64_t recovered_events; /* read from the log at start */
	uint64_t start_ms;
};

struct stored {
	struct stored_conf conf;
	struct journal journal;
	struct diskindex disk;
	struct index index;
	struct stats stats;
	struct writer *writer; /* writer.c's queue and thread */
	int stopping;          /* atomic: no new requests */
	/* publish socket, used by the writer only */
	nng_socket pub;
	struct bgthread indexer;  /* indexer.c */
	struct bgthread archiver; /* archiver.c */
	/* held by the archiver while it archives a segment, and by a
	 * backup from start to end (backup.c): no segment changes form */
	pthread_mutex_t ahold;
	uint64_t archive_now;    /* ARCHIVE requests not yet served */
	uint64_t archive_done;   /* ARCHIVE passes finished */
	uint64_t archived_segs;  /* atomic, for STATUS */
	uint64_t archived_bytes; /* .zst bytes; atomic */
	uint64_t archived_raw;   /* segment bytes they hold; atomic */
};

/*
 * archiver.c: compresses sealed, indexed segments past the newest
 * hot_segments into archives in the background (see the file's top
 * comment for the durability rule).
 */
int archiver_start(struct stored *sd);
void archiver_wake(struct stored *sd); /* a segment was indexed */
void archiver_stop(struct stored *sd);
/* ARCHIVE: archives the oldest eligible segment now (the caller loops
 * for all, reporting progress); blocks until done. 0 (rep->archived is
 * false if none was eligible) or a negative errno. */
int archiver_step(struct stored *sd, struct ipc_archive_rep *rep);
/* Startup, before anything lists segments: archive_cleanup(). */
int archiver_cleanup(const char *data_dir);
/*
 * journal_open: loads the segment named base that exists only as an
 * archive. With expand, the archive is decompressed into memory (s->map)
 * so that recovery and the indexer can read it as if it were plain (an
 * index rebuild); otherwise it is read through its archive. 0, -EBADMSG
 * (bad names the archive and offset), or -errno.
 */
int archiver_load(struct journal *j, uint64_t base, int expand,
    struct segment **out, uint64_t *size, struct journal_bad *bad);
/* The size of the segment named base in dir, plain or archived. */
int archiver_segment_size(const char *dir, uint64_t base, uint64_t *size);
/* Free the archive of a segment (segment_free). */
void archiver_segment_free(struct segment *s);

/*
 * backup.c: BACKUP into dir (absolute; absent or an empty directory),
 * on the caller's thread, which must not be the writer's. 0 with rep
 * filled; or -EINVAL/-EEXIST (bad dir), -EBUSY (a backup is running),
 * -ECANCELED (stored is stopping), another negative errno; why says
 * what went wrong. Nothing is left at dir unless it succeeded.
 */
int backup_run(struct stored *sd, const char *dir, struct ipc_backup_rep *rep,
    char *why, size_t whylen);

/* indexer.c: indexes sealed segments on disk in the background. */
int indexer_start(struct stored *sd);
void indexer_wake(struct stored *sd); /* a segment was sealed */
void indexer_stop(struct stored *sd);

/* dispatch.c: contexts on the rep socket. */
/* 0 or a negative errno (-EADDRINUSE: the name is another's). */
int dispatch_start(struct stored *sd, const char *url);
void dispatch_stop(struct stored *sd);

uint64_t now_ms(void);
uint64_t mono_ms(void);

#endif
