/* SPDX-License-Identifier: MIT */
/*
 * stored.h - private structures of eventfold-stored.
 *
 * Threads: one writer (writer.c) is the only one that appends to the
 * journal and changes the index. Requests are handled in nng aio
 * callbacks (dispatch.c), one state machine per nng context: reads are
 * served straight from the mapped journal; appends are handed to the
 * writer, which sends their replies itself once they are durable. Readers see only what is committed:
 * index.head is published (release) after the batch is durable and the
 * index updated.
 */
#ifndef EF_STORED_H
#define EF_STORED_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "ipc.h"
#include "record.h"

struct stored_conf {
	char *data_dir;
	char *runtime_dir;
	char *store_url;   /* overrides runtime_dir/store.sock */
	char *events_url;  /* overrides runtime_dir/store-events.sock */
	uint64_t workers;
	uint64_t max_read_count;
	uint64_t max_read_bytes;
	uint64_t max_append_bytes;
	uint64_t max_pub_bytes;
	int repair;
};

/* journal.c: the active log file, mapped read-only for readers. */
struct journal {
	int fd;
	int lockfd;
	int dirfd;
	char *path;
	const uint8_t *map; /* PROT_READ view of the whole reservation */
	uint64_t map_cap;
	uint64_t end;       /* committed bytes; written only by the writer */
	uint64_t base;      /* global position of the file's first event */
};

/*
 * Called by journal_open() for every intact record, in order, with its
 * file offset; the index is built from these.
 */
typedef void (*journal_visit_fn)(void *arg, const struct ef_event *ev,
    uint64_t off);

/*
 * Opens (creating if needed) data_dir's journal, takes the lock file,
 * verifies every batch, truncates a torn tail, and calls visit for each
 * event. Returns 0; -EEXIST if another stored holds the lock; -EBADMSG
 * if corruption precedes the tail (*bad_off says where) and repair is 0;
 * another negative errno on I/O failure.
 */
int journal_open(struct journal *j, const char *data_dir, int repair,
    journal_visit_fn visit, void *arg, uint64_t *bad_off);

/* Appends len bytes at the end and makes them durable (fdatasync).
 * 0, or -errno; on a write error the tail is cut back. */
int journal_append(struct journal *j, const void *buf, size_t len);

/* The record bytes at off (within the committed area). */
static inline const uint8_t *
journal_at(const struct journal *j, uint64_t off)
{
	return j->map + off;
}

void journal_close(struct journal *j);

/* index.c: locations only, never event bodies. */
struct stream {
	uint8_t id[UUID_LEN];
	uint64_t n;        /* events; version of the last is n - 1 */
	uint64_t cap;
	uint64_t *pos;     /* global position of each version */
};

struct index {
	pthread_rwlock_t lock;   /* streams; offsets are lock-free */
	uint64_t **chunks;       /* position -> journal offset */
	uint64_t head;           /* next position; atomic, release/acquire */
	/* streams by id (open addressing), and in creation order */
	struct stream **stab;
	uint64_t stab_cap;
	struct stream **order;
	uint64_t nstreams;
	uint64_t order_cap;
	/* event id -> position: fingerprint << 40 | (position + 1) */
	uint64_t *etab;
	uint64_t etab_cap;
	uint64_t etab_n;
	uint64_t bytes;          /* memory held, for STATUS */
	int bulk;                /* recovery: event ids indexed at the end */
	/* sorted view of streams for LIST_STREAMS */
	pthread_mutex_t sort_lock;
	struct stream **sorted;
	uint64_t nsorted;
	const struct journal *journal; /* to confirm event ids */
};

void index_init(struct index *ix, const struct journal *j);
void index_free(struct index *ix);

/* Readers: position -> offset for position < head. */
uint64_t index_offset(const struct index *ix, uint64_t pos);
static inline uint64_t
index_head(const struct index *ix)
{
	return __atomic_load_n(&ix->head, __ATOMIC_ACQUIRE);
}

/* Under ix->lock (read): the stream or NULL. */
struct stream *index_stream(const struct index *ix,
    const uint8_t id[UUID_LEN]);

/* Writer only: the position of an event id, or -1. */
int64_t index_event(const struct index *ix, const uint8_t id[UUID_LEN]);

/*
 * Writer only, under ix->lock (write), in position order: records an
 * event at off. Does not publish head; index_publish() does.
 */
void index_add(struct index *ix, const struct ef_event *ev, uint64_t off);
void index_publish(struct index *ix, uint64_t head);

/*
 * Recovery: index_bulk_begin() makes index_add() skip the event-id table;
 * index_bulk_end() then sizes it once for every event below head and
 * fills it in one sequential pass (instead of growing it a dozen times,
 * re-reading every id from the log each time).
 */
void index_bulk_begin(struct index *ix);
void index_bulk_end(struct index *ix, uint64_t head);

/*
 * LIST_STREAMS: up to max streams with id > after (all if after is
 * NULL), sorted by id, into out (caller provides max slots). *more is
 * set if further streams exist. Takes the locks it needs.
 */
uint64_t index_list(struct index *ix, const uint8_t *after, uint64_t max,
    struct ipc_stream_info *out, bool *more);

/* writer.c: group commit. */
struct append_job {
	/* in: validated request (pointers valid until the reply is sent) */
	const struct ipc_append_req *req;
	uint8_t stream_id[UUID_LEN];
	uint8_t (*ids)[UUID_LEN];
	/* out */
	int status;
	char msg[256];
	struct ipc_append_rep rep;
	struct ipc_conflict conflict;
	/* called by the writer thread once the job is committed or refused;
	 * the writer touches the job no more after it */
	void (*complete)(struct append_job *job);
	struct append_job *next;
};

struct stats {
	uint64_t commits;
	uint64_t fsyncs;
	uint64_t events_written;
	uint64_t recover_ms;
	uint64_t recovered_events;
	uint64_t start_ms;
};

struct stored {
	struct stored_conf conf;
	struct journal journal;
	struct index index;
	struct stats stats;
	/* writer queue */
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct append_job *qhead, **qtail;
	uint64_t qlen;     /* jobs in the queue */
	uint64_t writer_beat; /* mono_ms() of the writer's last commit */
	int stopping;      /* no new requests */
	int writer_exit;   /* writer: drain and exit */
	pthread_t writer;
	/* publish socket, used by the writer only */
	nng_socket pub;
};

int writer_start(struct stored *sd);
/* Queues job; job->complete runs on the writer thread when it is done. */
void writer_submit(struct stored *sd, struct append_job *job);
void writer_stop(struct stored *sd);

/* dispatch.c: contexts on the rep socket. */
int dispatch_start(struct stored *sd, const char *url);
void dispatch_stop(struct stored *sd);

uint64_t now_ms(void);
uint64_t mono_ms(void);

#endif
