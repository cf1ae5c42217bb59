/* SPDX-License-Identifier: MIT */
/*
 * writer.c - group commit: the one thread that appends to the journal.
 *
 * Workers queue validated APPEND jobs. The writer takes everything that
 * is waiting, checks each job in arrival order (idempotent replay,
 * expected version, type and size) against the index and against the
 * jobs before it in the same batch, assigns positions, encodes all the
 * accepted events as one batch frame, writes it with one write and one
 * fdatasync, then updates the index, publishes the new head, answers
 * every job and publishes the batch on the pub socket. Nothing is
 * answered before it is durable.
 *
 * A write that fails is cut back and every job of the batch gets an
 * error: RESOURCE_EXHAUSTED when the disk is full (ENOSPC, EDQUOT), so
 * that clients can tell it from a fault; reads go on, and the next batch
 * tries again, so appends are accepted once there is space, without a
 * restart. A failed fdatasync is fatal, since the state of the page
 * cache can no longer be trusted: recovery on restart decides.
 *
 * Segments: between two batches, never inside one, the writer seals the
 * hot segment once it has passed segment_size (or when a ROTATE job came
 * with the batch, or when the next batch would not fit its mapping) and
 * starts the next (journal_rotate: the new file and the directory are
 * durable before any batch goes into it). A rotation that fails before
 * its file exists (disk full) leaves the hot segment hot; it is tried
 * again after the next batch.
 *
 * Ordered imports: a client may keep several IMPORTs of one run in
 * flight (ipc.h: run, seq), and the dispatcher hands them to this
 * thread in whatever order its contexts finish decoding them. The
 * writer commits them strictly in seq order: one that comes before its
 * predecessor is held (set aside, answered later) and taken into the
 * batch right after its predecessor, so IMPORTs that wait together
 * share one group commit. Once one fails (refused here or before, or
 * its write failed), every later one of the run is refused ABORTED, so
 * the log never holds a gap. A held one whose predecessor does not
 * come within HOLD_MS, or when stored stops, is refused ABORTED too.
 * The runs are a small table on this thread (RUNS_MAX, the least
 * recently used one goes); a seq past 0 of a run it does not know is
 * refused at once (stored restarted in the middle: the client sends
 * seq 0 alone, so its run is known before the rest come).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "clock.h"
#include "crashpoint.h"
#include "grow.h"
#include "log.h"
#include "stored.h"

#define BATCH_SOFT_MAX (32u << 20) /* stop taking jobs past this */
#define GATHER_MAX_US  1000        /* longest wait for more callers */
#define HOLD_MS        10000       /* longest wait for a predecessor */
#define RUNS_MAX       64          /* ordered import runs remembered */
#define SEQ_NONE       UINT64_MAX
#define PREFETCH_AHEAD 8 /* events ahead whose index slots are fetched */

/*
 * Small per-batch map from a 16-byte id to a value. A slot is in use when
 * its gen is the map's: emptying the map for the next batch bumps gen
 * instead of clearing every slot (that memset was 5% of stored's
 * instructions on an import: a 4096-event batch sizes the map at 16k
 * slots, three maps per batch).
 */
struct bmap {
	struct bslot {
		uint8_t id[UUID_LEN];
		uint64_t val;
		uint32_t gen;
	} * slots;
	uint64_t cap, n;
	uint32_t gen;
};

static void
bmap_reset(struct bmap *m, uint64_t want)
{
	uint64_t cap = 64;

	while (cap < want * 2)
		cap *= 2;
	if (cap > m->cap) {
		free(m->slots);
		if ((m->slots = calloc(cap, sizeof(*m->slots))) == NULL)
			fatal("calloc");
		m->cap = cap;
		m->gen = 1;
	} else if (m->n > 0 && ++m->gen == 0) {
		/* wrapped: once in 4 billion batches */
		memset(m->slots, 0, m->cap * sizeof(*m->slots));
		m->gen = 1;
	}
	m->n = 0;
}

static struct bslot *bmap_find(struct bmap *m, const uint8_t id[UUID_LEN],
    int create);

/* bmap_find of an id whose hash h (index_id_hash) is known */
static struct bslot *
bmap_find_h(struct bmap *m, const uint8_t id[UUID_LEN], uint64_t h, int create)
{
	uint64_t mask = m->cap - 1, i = h & mask;

	while (m->slots[i].gen == m->gen) {
		if (memcmp(m->slots[i].id, id, UUID_LEN) == 0)
			return &m->slots[i];
		i = (i + 1) & mask;
	}
	if (!create)
		return NULL;
	if ((m->n + 1) * 2 > m->cap) {
		/* grow: rehash */
		struct bmap nm = { 0 };
		uint64_t j;

		bmap_reset(&nm, m->cap);
		for (j = 0; j < m->cap; j++)
			if (m->slots[j].gen == m->gen) {
				struct bslot *s = bmap_find(&nm,
				    m->slots[j].id, 1);

				s->val = m->slots[j].val;
			}
		free(m->slots);
		*m = nm;
		return bmap_find_h(m, id, h, 1);
	}
	memcpy(m->slots[i].id, id, UUID_LEN);
	m->slots[i].gen = m->gen;
	m->slots[i].val = 0;
	m->n++;
	return &m->slots[i];
}

static struct bslot *
bmap_find(struct bmap *m, const uint8_t id[UUID_LEN], int create)
{
	return bmap_find_h(m, id, index_id_hash(id), create);
}

struct wbatch {
	uint8_t *buf;
	size_t len, cap;
	uint64_t first_pos, next_pos;
	/* each position's record: its offset in buf, and what the index
	 * takes of it, kept as it was encoded (no decode on the write path) */
	struct wrec {
		uint64_t off;
		uint64_t h; /* index_id_hash of id */
		uint64_t version;
		uint8_t id[UUID_LEN];
		uint8_t sid[UUID_LEN];
	} * rec;
	uint64_t nrec, rec_cap;
	struct bmap ids;     /* event id -> position, this batch */
	struct bmap streams; /* stream id -> event count after batch */
	uint64_t recorded_at;
};

uint64_t
now_ms(void)
{
	return clock_wall_ms();
}

uint64_t
mono_ms(void)
{
	return clock_mono_ms();
}

static void
wb_reserve(struct wbatch *b, size_t more)
{
	if (b->len + more > b->cap)
		b->buf = mem_grow(b->buf, &b->cap, b->len + more, 1u << 16);
}

/* Room for n more record offsets. */
static void
wb_reserve_recs(struct wbatch *b, uint64_t n)
{
	if (b->nrec + n <= b->rec_cap)
		return;
	while (b->rec_cap < b->nrec + n)
		b->rec_cap = b->rec_cap ? b->rec_cap * 2 : 1024;
	b->rec = realloc(b->rec, b->rec_cap * sizeof(*b->rec));
	if (b->rec == NULL)
		fatal("realloc");
}

/* Encodes ev (room reserved, its id's hash h) as the batch's next record,
 * and keeps what the index will take of it. */
static void
wb_rec(struct wbatch *b, const struct ef_event *ev, uint64_t h)
{
	struct wrec *r = &b->rec[b->nrec++];

	r->off = b->len;
	r->h = h;
	r->version = ev->stream_version;
	memcpy(r->id, ev->event_id, UUID_LEN);
	memcpy(r->sid, ev->stream_id, UUID_LEN);
	b->len += record_encode(b->buf + b->len, ev);
}

/* The record of position pos: in this batch's buffer, or in the journal. */
static const uint8_t *
record_of(struct stored *sd, struct wbatch *b, uint64_t pos)
{
	if (pos >= b->first_pos)
		return b->buf + b->rec[pos - b->first_pos].off;
	return journal_at(&sd->journal, index_offset(&sd->index, pos));
}

/*
 * Seals the hot segment if asked to (force) or if it has passed
 * segment_size. Returns journal_rotate()'s result, or 0 if not due.
 */
static int
writer_rotate(struct stored *sd, int force)
{
	struct segment *hot = journal_hot(&sd->journal);
	int rc;

	if (!force && hot->end < sd->journal.segment_size)
		return 0;
	if ((rc = journal_rotate(&sd->journal)) < 0)
		log_warnx("journal: cannot start a new segment after %s: %s; "
		          "writing on in it",
		    hot->path, strerror(-rc));
	if (rc == 1)
		indexer_wake(sd);
	return rc;
}

void
job_fail(struct append_job *job, int status, const char *fmt, ...)
{
	va_list ap;

	job->status = status;
	va_start(ap, fmt);
	vsnprintf(job->msg, sizeof(job->msg), fmt, ap);
	va_end(ap);
}

/* Has stored event s this type, metadata and payload? */
static int
same_body(const struct ef_event *s, const void *type, uint32_t type_len,
    const uint8_t *metadata, uint32_t metadata_len, const uint8_t *payload,
    uint32_t payload_len)
{
	return s->type_len == type_len &&
	    memcmp(s->type, type, type_len) == 0 &&
	    s->metadata_len == metadata_len &&
	    (metadata_len == 0 ||
	        memcmp(s->metadata, metadata, metadata_len) == 0) &&
	    s->payload_len == payload_len &&
	    (payload_len == 0 ||
	        memcmp(s->payload, payload, payload_len) == 0);
}

/* Does the stored event at rec equal proposed event p of stream sid? */
static int
same_event(const uint8_t *rec, const uint8_t sid[UUID_LEN],
    const struct ipc_proposed *p)
{
	struct ef_event ev;
	size_t len;

	if (record_decode(rec, RECORD_MAX, &ev, &len, 0) != REC_OK)
		return 0;
	return memcmp(ev.stream_id, sid, UUID_LEN) == 0 &&
	    same_body(&ev, p->type.ptr, p->type.len, p->metadata,
	        p->metadata_len, p->payload, p->payload_len);
}

static uint64_t
stream_count(struct stored *sd, struct wbatch *b, const uint8_t sid[UUID_LEN])
{
	struct bslot *s = bmap_find(&b->streams, sid, 0);

	if (s != NULL)
		return s->val;
	/* under the index lock (read), taken by writer_main */
	return index_stream_count(&sd->index, sid);
}

/*
 * 1. Idempotent replay. Returns 1 if job is settled: every id of it is
 * stored as given (a replay, answered OK) or it is refused; 0 if none of
 * its ids is stored.
 */
static int
append_replay(struct stored *sd, struct wbatch *b, struct append_job *job)
{
	const struct ipc_append_req *r = job->req;
	char ebuf[UUID_STR_LEN];
	uint64_t n = r->nevents, found = 0, i, first = 0;
	int64_t pos;
	struct bslot *bs;
	struct ef_event ev;
	const uint8_t *rec;
	size_t len;

	for (i = 0; i < n; i++) {
		bs = bmap_find(&b->ids, job->ids[i], 0);
		pos = bs ? (int64_t)bs->val :
		           index_event(&sd->index, job->ids[i]);
		if (pos == -2) {
			job_fail(job, EF_S_INTERNAL,
			    "checking event id %s: %s",
			    uuid_format(job->ids[i], ebuf), journal_fault());
			return 1;
		}
		if (pos < 0)
			continue;
		if (found != i) {
			job_fail(job, EF_S_EVENT_ID_REUSED,
			    "batch mixes stored and new event ids (%s is "
			    "already stored)",
			    uuid_format(job->ids[i], ebuf));
			return 1;
		}
		if (i == 0)
			first = (uint64_t)pos;
		if ((uint64_t)pos == first + i &&
		    (rec = record_of(sd, b, (uint64_t)pos)) == NULL) {
			/* a damaged archive frame (archiver.c) */
			job_fail(job, EF_S_DATA_LOSS,
			    "checking event id %s: "
			    "%s",
			    uuid_format(job->ids[i], ebuf), journal_fault());
			return 1;
		}
		if ((uint64_t)pos != first + i ||
		    !same_event(rec, job->stream_id, &r->events[i])) {
			job_fail(job, EF_S_EVENT_ID_REUSED,
			    "event id %s was already used for a different "
			    "event",
			    uuid_format(job->ids[i], ebuf));
			return 1;
		}
		found++;
	}
	if (found != n && found == 0)
		return 0;
	if (found != n) {
		job_fail(job, EF_S_EVENT_ID_REUSED,
		    "batch mixes stored and new event ids (%s is already "
		    "stored)",
		    uuid_format(job->ids[0], ebuf));
		return 1;
	}
	if ((rec = record_of(sd, b, first)) == NULL) {
		job_fail(job, EF_S_DATA_LOSS,
		    "replaying position %" PRIu64 ": %s", first,
		    journal_fault());
		return 1;
	}
	(void)record_decode(rec, RECORD_MAX, &ev, &len, 0);
	job->status = EF_S_OK;
	job->replay = true;
	job->rep.first_pos = first;
	job->rep.last_pos = first + n - 1;
	job->rep.first_version = ev.stream_version;
	job->rep.last_version = ev.stream_version + n - 1;
	return 1;
}

/*
 * 2. Expected version: the stream's event count into *count. Returns 1
 * if job is refused (a conflict, or the index could not be read).
 */
static int
append_expect(struct stored *sd, struct wbatch *b, struct append_job *job,
    uint64_t *count)
{
	const struct ipc_append_req *r = job->req;
	char abuf[32];
	uint64_t c;

	c = *count = stream_count(sd, b, job->stream_id);
	if (c == INDEX_ERR) {
		job_fail(job, EF_S_INTERNAL,
		    "checking the expected version: "
		    "%s",
		    journal_fault());
		return 1;
	}
	if (!((r->kind == EF_EXPECT_NO_STREAM && c != 0) ||
	        (r->kind == EF_EXPECT_EXACT &&
	            (c == 0 || c - 1 != r->version))))
		return 0;
	/* EventfoldDB's words, which its clients parse: a number or
	 * NoStream on either side */
	if (c == 0)
		snprintf(abuf, sizeof(abuf), "NoStream");
	else
		snprintf(abuf, sizeof(abuf), "%" PRIu64, c - 1);
	if (r->kind == EF_EXPECT_NO_STREAM)
		job_fail(job, EF_S_VERSION_CONFLICT,
		    "wrong expected version: expected NoStream, "
		    "actual %s",
		    abuf);
	else
		job_fail(job, EF_S_VERSION_CONFLICT,
		    "wrong expected version: expected %" PRIu64 ", actual %s",
		    r->version, abuf);
	job->conflict.exists = c != 0;
	job->conflict.actual = c ? c - 1 : 0;
	return 1;
}

/* 4. Accepted: assigns positions and versions from count, encodes. */
static void
append_accept(struct wbatch *b, struct append_job *job, uint64_t count)
{
	const struct ipc_append_req *r = job->req;
	uint64_t n = r->nevents, i;
	struct ef_event ev;

	job->status = EF_S_OK;
	job->rep.first_pos = b->next_pos;
	job->rep.last_pos = b->next_pos + n - 1;
	job->rep.first_version = count;
	job->rep.last_version = count + n - 1;
	wb_reserve_recs(b, n);
	for (i = 0; i < n; i++) {
		const struct ipc_proposed *p = &r->events[i];
		uint64_t h = index_id_hash(job->ids[i]);

		memcpy(ev.event_id, job->ids[i], UUID_LEN);
		memcpy(ev.stream_id, job->stream_id, UUID_LEN);
		ev.stream_version = count + i;
		ev.global_position = b->next_pos;
		ev.recorded_at = b->recorded_at;
		ev.type = p->type.ptr;
		ev.type_len = p->type.len;
		ev.metadata = p->metadata;
		ev.metadata_len = p->metadata_len;
		ev.payload = p->payload;
		ev.payload_len = p->payload_len;
		wb_reserve(b,
		    record_size(ev.type_len, ev.metadata_len, ev.payload_len));
		wb_rec(b, &ev, h);
		bmap_find_h(&b->ids, job->ids[i], h, 1)->val = b->next_pos;
		b->next_pos++;
	}
	bmap_find(&b->streams, job->stream_id, 1)->val = count + n;
}

/* APPEND: the checks in the contract's order, then into the batch. */
static void
writer_process(struct stored *sd, struct wbatch *b, struct append_job *job)
{
	uint64_t count;

	if (append_replay(sd, b, job) || append_expect(sd, b, job, &count))
		return;
	/* 3. type and size: checked before the writer (dispatch.c's
	 * append_check), reported here, after the checks above, as the
	 * contract orders them */
	if (job->late_status != EF_S_OK) {
		job_fail(job, job->late_status, "%s", job->late_msg);
		return;
	}
	append_accept(b, job, count);
}

/* Is the stored event at rec the imported event ev (keep: same position)? */
static int
same_import(const uint8_t *rec, const struct ef_event *ev, int keep)
{
	struct ef_event s;
	size_t len;

	if (record_decode(rec, RECORD_MAX, &s, &len, 0) != REC_OK)
		return 0;
	return memcmp(s.stream_id, ev->stream_id, UUID_LEN) == 0 &&
	    s.stream_version == ev->stream_version &&
	    (!keep || s.global_position == ev->global_position) &&
	    s.recorded_at == ev->recorded_at &&
	    same_body(&s, ev->type, ev->type_len, ev->metadata,
	        ev->metadata_len, ev->payload, ev->payload_len);
}

/*
 * IMPORT: whole events with their ids, streams, versions and times
 * (dispatch.c checked types and sizes). Events already stored exactly
 * as given, as a prefix of the job, are skipped: a re-run after an
 * interruption, even one that groups the source's batches differently,
 * writes nothing twice. An id stored anywhere else, or stored as another
 * event, is refused. After the prefix, every stream version must be its
 * stream's next
 * and, with keep_positions, every position the log's next: an import
 * never reorders or renumbers what the source says, it refuses.
 */
static struct bmap imp_streams; /* writer thread only */
static uint64_t *imp_hash;      /* and the hashes of an IMPORT's ids */
static uint64_t imp_hash_cap;

/* The slots of an id of hash h, in the index and in the batch's map of
 * ids, into the cache (a hint: a few events before they are used). */
static void
prefetch_id(struct stored *sd, const struct wbatch *b, uint64_t h)
{
	index_prefetch(&sd->index, h);
	__builtin_prefetch(&b->ids.slots[h & (b->ids.cap - 1)]);
}

/* The ids of job hashed once, the first ones' slots fetched. */
static void
import_hash(struct stored *sd, const struct wbatch *b,
    const struct append_job *job)
{
	uint64_t i;

	if (job->nimp > imp_hash_cap) {
		imp_hash_cap = job->nimp;
		free(imp_hash);
		if ((imp_hash = malloc(imp_hash_cap * sizeof(*imp_hash))) ==
		    NULL)
			fatal("malloc");
	}
	for (i = 0; i < job->nimp; i++) {
		imp_hash[i] = index_id_hash(job->imp[i].event_id);
		if (i < PREFETCH_AHEAD)
			prefetch_id(sd, b, imp_hash[i]);
	}
}

/*
 * 1. A re-run: the prefix of job already stored as given (*found events
 * from position *first) is skipped. Returns 1 if job is settled: all of
 * it was stored (answered OK) or it is refused.
 */
static int
import_replay(struct stored *sd, struct wbatch *b, struct append_job *job,
    uint64_t *found, uint64_t *first)
{
	char ebuf[UUID_STR_LEN];
	uint64_t n = job->nimp, i;
	const struct ef_event *ev;
	const uint8_t *rec;
	struct bslot *bs;
	int64_t pos;

	*found = *first = 0;
	for (i = 0; i < n; i++) {
		ev = &job->imp[i];
		if (i + PREFETCH_AHEAD < n)
			prefetch_id(sd, b, imp_hash[i + PREFETCH_AHEAD]);
		/* none in the map: the batch's first job */
		bs = b->ids.n == 0 ?
		    NULL :
		    bmap_find_h(&b->ids, ev->event_id, imp_hash[i], 0);
		pos = bs ?
		    (int64_t)bs->val :
		    index_event_h(&sd->index, ev->event_id, imp_hash[i]);
		if (pos < 0)
			continue;
		if (*found != i) {
			job_fail(job, EF_S_EVENT_ID_REUSED,
			    "import mixes "
			    "stored and new event ids (%s is already stored)",
			    uuid_format(ev->event_id, ebuf));
			return 1;
		}
		if (i == 0)
			*first = (uint64_t)pos;
		if ((rec = record_of(sd, b, (uint64_t)pos)) == NULL) {
			job_fail(job, EF_S_DATA_LOSS,
			    "checking event id %s: "
			    "%s",
			    uuid_format(ev->event_id, ebuf), journal_fault());
			return 1;
		}
		if (!same_import(rec, ev, job->keep_positions)) {
			job_fail(job, EF_S_EVENT_ID_REUSED,
			    "event id %s is "
			    "already stored as a different event",
			    uuid_format(ev->event_id, ebuf));
			return 1;
		}
		(*found)++;
	}
	if (*found != n)
		return 0;
	job->status = EF_S_OK;
	job->irep.first_pos = *first;
	job->irep.count = 0;
	job->irep.skipped = n;
	job->rep.first_pos = *first;
	return 1;
}

/*
 * 2. Positions and versions of the events after the first found, tracked
 * within the job. Returns 1 if job is refused.
 */
static int
import_check(struct stored *sd, struct wbatch *b, struct append_job *job,
    uint64_t found)
{
	char ebuf[UUID_STR_LEN];
	uint64_t n = job->nimp, i, count;
	const struct ef_event *ev;
	struct bslot *bs = NULL;

	bmap_reset(&imp_streams, n);
	for (i = found; i < n; i++) {
		ev = &job->imp[i];
		if (job->keep_positions &&
		    ev->global_position != b->next_pos + i - found) {
			job_fail(job, EF_S_INVALID,
			    "event %" PRIu64 ": position "
			    "%" PRIu64
			    ", but the log's next position is %" PRIu64,
			    i, ev->global_position, b->next_pos + i - found);
			return 1;
		}
		/* the previous event's stream's slot, or its own (val 0: new
		 * in this job; a count here is at least 1) */
		if (bs == NULL ||
		    memcmp(ev->stream_id, ev[-1].stream_id, UUID_LEN) != 0)
			bs = bmap_find(&imp_streams, ev->stream_id, 1);
		count = bs->val ? bs->val : stream_count(sd, b, ev->stream_id);
		if (ev->stream_version != count) {
			job_fail(job, EF_S_VERSION_CONFLICT,
			    "event %" PRIu64 ": stream %s version %" PRIu64
			    ", but the stream's "
			    "next version is %" PRIu64,
			    i, uuid_format(ev->stream_id, ebuf),
			    ev->stream_version, count);
			job->conflict.exists = count != 0;
			job->conflict.actual = count ? count - 1 : 0;
			return 1;
		}
		bs->val = count + 1;
	}
	return 0;
}

/* 3. Accepted: the events after the first found into the batch. */
static void
import_accept(struct wbatch *b, struct append_job *job, uint64_t found,
    uint64_t first)
{
	uint64_t n = job->nimp, i;
	struct bslot *ss = NULL; /* the last event's stream's */

	job->status = EF_S_OK;
	job->irep.first_pos = found ? first : b->next_pos;
	job->irep.count = n - found;
	job->irep.skipped = found;
	job->rep.first_pos = b->next_pos;
	wb_reserve_recs(b, n);
	for (i = found; i < n; i++) {
		struct ef_event e = job->imp[i];

		if (i + PREFETCH_AHEAD < n)
			__builtin_prefetch(
			    &b->ids.slots[imp_hash[i + PREFETCH_AHEAD] &
			        (b->ids.cap - 1)]);
		e.global_position = b->next_pos;
		wb_reserve(b,
		    record_size(e.type_len, e.metadata_len, e.payload_len));
		wb_rec(b, &e, imp_hash[i]);
		bmap_find_h(&b->ids, e.event_id, imp_hash[i], 1)->val =
		    b->next_pos;
		if (ss == NULL ||
		    memcmp(e.stream_id, job->imp[i - 1].stream_id, UUID_LEN) !=
		        0)
			ss = bmap_find(&b->streams, e.stream_id, 1);
		ss->val = e.stream_version + 1;
		b->next_pos++;
	}
}

static void
writer_import(struct stored *sd, struct wbatch *b, struct append_job *job)
{
	uint64_t found, first;

	import_hash(sd, b, job);
	if (import_replay(sd, b, job, &found, &first) ||
	    import_check(sd, b, job, found))
		return;
	import_accept(b, job, found, first);
}

static void
job_finish(struct append_job *job)
{
	job->complete(job);
}

/*
 * The queue of jobs, private to this file: dispatch.c and backup.c add
 * to it through writer_submit*(), stored.c's watchdog reads its load
 * through writer_load().
 */
struct writer {
	struct stored *sd;
	struct bgthread bg; /* the thread; its lock and condition guard
	                     * the queue; bg.exit: drain and exit */
	struct append_job *head, **tail;
	uint64_t len;  /* callers (messages) in the queue */
	uint64_t beat; /* mono_ms() of the last commit; atomic */
};

/* ---- ordered import runs (top comment); writer thread only ---- */

struct import_run {
	uint64_t id;        /* the client's run id; 0: a free slot */
	uint64_t next;      /* the seq it commits next */
	uint64_t failed_at; /* the first seq that failed, or SEQ_NONE */
	uint64_t used_ms;
};

static struct import_run runs[RUNS_MAX];
static struct append_job *held; /* jobs that came early, linked by next */

enum { SEQ_GO, SEQ_HOLD, SEQ_DONE };

static struct import_run *
run_find(uint64_t id)
{
	int i;

	for (i = 0; i < RUNS_MAX; i++)
		if (runs[i].id == id)
			return &runs[i];
	return NULL;
}

/* A new run in a free slot, or in the least recently used one's. */
static struct import_run *
run_new(uint64_t id)
{
	struct import_run *r = &runs[0];
	int i;

	for (i = 0; i < RUNS_MAX; i++) {
		if (runs[i].id == 0) {
			r = &runs[i];
			break;
		}
		if (runs[i].used_ms < r->used_ms)
			r = &runs[i];
	}
	r->id = id;
	r->next = 0;
	r->failed_at = SEQ_NONE;
	r->used_ms = mono_ms();
	return r;
}

static void
job_fail_unknown(struct append_job *job)
{
	if (job->status != EF_S_OK)
		return; /* refused before the writer: that error it keeps */
	job_fail(job, EF_S_ABORTED,
	    "import run %016" PRIx64 " is not known "
	    "here (stored restarted?): nothing of its request %" PRIu64
	    " was written; run the import again (what is stored is skipped)",
	    job->run, job->seq);
}

static void
job_fail_after(struct append_job *job, const struct import_run *r)
{
	if (job->status == EF_S_OK)
		job_fail(job, EF_S_ABORTED,
		    "import request %" PRIu64 " of "
		    "this run failed: nothing of request %" PRIu64 " (after "
		    "it) was written",
		    r->failed_at, job->seq);
}

/*
 * Where an IMPORT of an ordered run stands: SEQ_GO, process it now (its
 * turn, or a repeat of one already processed: a client's resend, which
 * the re-run rule of writer_import makes harmless); SEQ_HOLD, its
 * predecessor has not been processed; SEQ_DONE, refused here.
 */
static int
run_admit(struct append_job *job)
{
	struct import_run *r = run_find(job->run);

	if (r == NULL && job->seq == 0)
		r = run_new(job->run);
	if (r == NULL) {
		job_fail_unknown(job);
		return SEQ_DONE;
	}
	r->used_ms = mono_ms();
	if (r->failed_at != SEQ_NONE && job->seq > r->failed_at) {
		job_fail_after(job, r);
		if (job->seq == r->next)
			r->next++;
		return SEQ_DONE;
	}
	return job->seq > r->next ? SEQ_HOLD : SEQ_GO;
}

/* After a job of a run was processed (or refused): its successor's turn. */
static void
run_done(struct append_job *job)
{
	struct import_run *r = run_find(job->run);

	if (r == NULL || job->seq != r->next)
		return; /* a repeat */
	if (job->status != EF_S_OK && r->failed_at == SEQ_NONE)
		r->failed_at = job->seq;
	r->next++;
}

/* The write of a batch failed: each import of a run in it failed. */
static void
run_write_failed(struct append_job *job)
{
	struct import_run *r = run_find(job->run);

	if (r != NULL && (r->failed_at == SEQ_NONE || job->seq < r->failed_at))
		r->failed_at = job->seq;
}

/*
 * Moves the held jobs of at's run that may go now (the next in seq, or
 * every later one once the run failed) into the batch, right after at:
 * the loop of writer_main comes to them next.
 */
static void
run_release(struct append_job *at)
{
	struct import_run *r = run_find(at->run);
	struct append_job **hp, *h;

	if (r == NULL)
		return;
	for (hp = &held; (h = *hp) != NULL;) {
		if (h->run != at->run ||
		    (h->seq != r->next &&
		        (r->failed_at == SEQ_NONE ||
		            h->seq <= r->failed_at))) {
			hp = &h->next;
			continue;
		}
		*hp = h->next;
		h->next = at->next;
		at->next = h;
	}
}

/*
 * An IMPORT of an ordered run, in the batch being checked: processed in
 * its turn (then the held one after it is let in), held (SEQ_HOLD: the
 * caller sets it aside) or refused.
 */
static int
writer_import_run(struct stored *sd, struct wbatch *b, struct append_job *j)
{
	int a = run_admit(j);

	if (a == SEQ_HOLD)
		return a;
	if (a == SEQ_GO) {
		if (j->status == EF_S_OK)
			writer_import(sd, b, j);
		run_done(j);
	}
	run_release(j);
	return a;
}

/*
 * Refuses the held jobs that can wait no longer: their run failed or was
 * forgotten, their predecessor is over HOLD_MS late (the run then fails
 * from the missing one on), or stored is stopping.
 */
static void
held_expire(struct writer *w)
{
	struct stored *sd = w->sd;
	struct append_job **hp, *h;
	struct import_run *r;
	uint64_t now = mono_ms();

	for (hp = &held; (h = *hp) != NULL;) {
		r = run_find(h->run);
		if (r == NULL)
			job_fail_unknown(h);
		else if (r->failed_at != SEQ_NONE && h->seq > r->failed_at)
			job_fail_after(h, r);
		else if (__atomic_load_n(&sd->stopping, __ATOMIC_RELAXED) ||
		    w->bg.exit)
			job_fail(h, EF_S_UNAVAILABLE,
			    "stored is shutting down: "
			    "nothing of import request %" PRIu64
			    " was written",
			    h->seq);
		else if (now - h->held_ms >= HOLD_MS) {
			job_fail(h, EF_S_ABORTED,
			    "import request %" PRIu64
			    " waited %d ms for request %" PRIu64
			    " of its run, "
			    "which did not come: nothing of it was written",
			    h->seq, HOLD_MS, r->next);
			if (r->failed_at == SEQ_NONE)
				r->failed_at = r->next;
		} else {
			hp = &h->next;
			continue;
		}
		*hp = h->next;
		job_finish(h);
	}
}

static void
writer_publish(struct stored *sd, struct wbatch *b)
{
	struct ipc_out o;
	struct ef_event ev;
	uint64_t i, wire = 0;
	size_t len;
	nng_msg *m;

	for (i = 0; i < b->nrec; i++)
		wire += record_len(b->buf + b->rec[i].off, 4) + 64;
	ipc_out_init(&o);
	ipc_pub_begin(&o, b->first_pos, b->next_pos - 1,
	    wire > sd->conf.max_pub_bytes ? 0 : (uint32_t)b->nrec);
	if (wire <= sd->conf.max_pub_bytes)
		for (i = 0; i < b->nrec; i++) {
			(void)record_decode(b->buf + b->rec[i].off, RECORD_MAX,
			    &ev, &len, 0);
			ipc_event_encode(&o, &ev);
		}
	if (nng_msg_alloc(&m, 0) == 0) {
		if (nng_msg_append(m, o.buf, o.len) != 0 ||
		    nng_sendmsg(sd->pub, m, NNG_FLAG_NONBLOCK) != 0)
			nng_msg_free(m);
	}
	ipc_out_free(&o);
}

/* A negative errno that means "no space": the client may retry later. */
static int
disk_full(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

static void
writer_commit(struct stored *sd, struct wbatch *b, struct append_job *jobs)
{
	struct append_job *j, *next;
	struct batch_hdr h;
	struct ef_event ev;
	uint64_t off, i;
	int rc = 0;

	if (b->nrec > 0) {
		h.count = (uint32_t)b->nrec;
		h.body_len = (uint32_t)(b->len - BATCH_HDR);
		h.first_pos = b->first_pos;
		batch_hdr_encode(b->buf, &h);
		/* a batch never spans two segments: one that would not fit
		 * the hot segment's mapping goes into the next */
		if (journal_hot(&sd->journal)->end + b->len >
		    journal_hot(&sd->journal)->map_cap)
			(void)writer_rotate(sd, 1);
		off = journal_tail(&sd->journal);
		rc = journal_append(&sd->journal, b->buf, b->len);
		if (rc == 0) {
			pthread_rwlock_wrlock(&sd->index.lock);
			memset(&ev, 0, sizeof(ev));
			for (i = 0; i < b->nrec && i < PREFETCH_AHEAD; i++)
				index_prefetch(&sd->index, b->rec[i].h);
			for (i = 0; i < b->nrec; i++) {
				if (i + PREFETCH_AHEAD < b->nrec)
					index_prefetch(&sd->index,
					    b->rec[i + PREFETCH_AHEAD].h);
				/* what index_add reads: ids, version, position
				 */
				memcpy(ev.event_id, b->rec[i].id, UUID_LEN);
				memcpy(ev.stream_id, b->rec[i].sid, UUID_LEN);
				ev.stream_version = b->rec[i].version;
				ev.global_position = b->first_pos + i;
				index_add_h(&sd->index, &ev,
				    off + b->rec[i].off, b->rec[i].h);
			}
			pthread_rwlock_unlock(&sd->index.lock);
			index_publish(&sd->index, b->next_pos);
			__atomic_add_fetch(&sd->stats.fsyncs, 1,
			    __ATOMIC_RELAXED);
			__atomic_add_fetch(&sd->stats.events_written, b->nrec,
			    __ATOMIC_RELAXED);
		} else
			log_warnx("journal: write of %zu bytes failed: %s; "
			          "batch refused",
			    b->len, strerror(-rc));
	}
	for (j = jobs; j != NULL; j = next) {
		next = j->next;
		if (j->op == EF_OP_ROTATE)
			continue; /* answered after the rotation */
		if (rc != 0 && j->status == EF_S_OK &&
		    j->rep.first_pos >= b->first_pos) {
			job_fail(j,
			    disk_full(rc) ? EF_S_RESOURCE_EXHAUSTED :
			                    EF_S_INTERNAL,
			    "write failed: %s; nothing of this "
			    "append was stored",
			    strerror(-rc));
			if (j->op == EF_OP_IMPORT && j->run != 0)
				run_write_failed(j);
		} else if (j->status == EF_S_OK && !j->replay)
			__atomic_add_fetch(&sd->stats.commits, 1,
			    __ATOMIC_RELAXED);
		job_finish(j);
	}
	if (rc == 0 && b->nrec > 0)
		writer_publish(sd, b);
}

/*
 * After a batch: seals the hot segment if it is due or if a ROTATE job
 * came with the batch, then answers the ROTATE jobs.
 */
static void
writer_after(struct stored *sd, struct append_job *jobs)
{
	struct append_job *j, *next;
	struct segment *hot = journal_hot(&sd->journal);
	uint64_t base = hot->base, events = hot->next - hot->base;
	int force = 0, rc;

	for (j = jobs; j != NULL; j = j->next)
		if (j->op == EF_OP_ROTATE)
			force = 1;
	rc = writer_rotate(sd, force);
	for (j = jobs; j != NULL; j = next) {
		next = j->next;
		if (j->op == EF_OP_BACKUP) {
			/* between two batches: every position below head is
			 * durable, in segments 0 .. nsegs - 1, the last of
			 * which holds it below hot_end (backup.c) */
			j->snap.head = index_head(&sd->index);
			j->snap.nsegs = journal_nsegs(&sd->journal);
			j->snap.hot_end = journal_hot(&sd->journal)->end;
			j->status = EF_S_OK;
			job_finish(j);
			continue;
		}
		if (j->op != EF_OP_ROTATE)
			continue;
		memset(&j->rot, 0, sizeof(j->rot));
		j->rot.hot_base = journal_hot(&sd->journal)->base;
		if (rc < 0) {
			job_fail(j,
			    disk_full(rc) ? EF_S_RESOURCE_EXHAUSTED :
			                    EF_S_INTERNAL,
			    "cannot start a new segment: %s", strerror(-rc));
		} else {
			j->status = EF_S_OK;
			j->rot.rotated = rc == 1;
			j->rot.sealed_base = rc == 1 ? base : 0;
			j->rot.sealed_events = rc == 1 ? events : 0;
		}
		job_finish(j);
	}
}

static uint64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Group commit's gathering step, called with mu held and a non-empty
 * queue. When the last batch saw more concurrent callers than are
 * queued now, wait a little (at most half the last commit's duration,
 * capped) for the ones that were just answered to come back, so that
 * clients share one fdatasync instead of splitting into alternating
 * half-size groups. A single client never waits.
 */
static void
gather(struct writer *w, uint64_t want, uint64_t wait_us)
{
	struct timespec dl;

	if (want <= 1 || w->len >= want || wait_us == 0)
		return;
	clock_deadline_us(&dl, wait_us);
	while (w->len < want && !w->bg.exit)
		if (pthread_cond_timedwait(&w->bg.cv, &w->bg.mu, &dl) != 0)
			break;
}

/*
 * Waits for jobs (coming back every 50 ms while jobs are held, to expire
 * them), gathers, and takes the whole queue; *taken is its callers. NULL
 * if nothing was taken: *done then says whether the writer is to exit.
 */
static struct append_job *
queue_take(struct writer *w, uint64_t want, uint64_t wait_us, uint64_t *taken,
    bool *done)
{
	struct append_job *jobs;
	struct timespec dl;

	*done = false;
	pthread_mutex_lock(&w->bg.mu);
	while (w->head == NULL && !w->bg.exit) {
		if (held == NULL) {
			pthread_cond_wait(&w->bg.cv, &w->bg.mu);
			continue;
		}
		clock_deadline_us(&dl, 50000);
		if (pthread_cond_timedwait(&w->bg.cv, &w->bg.mu, &dl) != 0)
			break;
	}
	if (w->head == NULL) {
		*done = w->bg.exit && held == NULL;
		pthread_mutex_unlock(&w->bg.mu);
		return NULL;
	}
	if (faultpoint("writer.stall")) {
		/* tests: a writer that makes no progress, with work
		 * waiting (the watchdog must stop, stored.c) */
		pthread_mutex_unlock(&w->bg.mu);
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
		return NULL;
	}
	gather(w, want, wait_us);
	jobs = w->head;
	*taken = w->len;
	w->head = NULL;
	w->tail = &w->head;
	w->len = 0;
	pthread_mutex_unlock(&w->bg.mu);
	return jobs;
}

/* Puts the jobs from j on back at the front of the queue. */
static void
queue_put_back(struct writer *w, struct append_job *j, uint64_t *taken)
{
	struct append_job *t = j;

	pthread_mutex_lock(&w->bg.mu);
	while (t->next != NULL)
		t = t->next;
	t->next = w->head;
	if (w->head == NULL)
		w->tail = &t->next;
	w->head = j;
	for (t = j; t != NULL; t = t->next) {
		w->len += (uint64_t)t->caller;
		*taken -= (uint64_t)t->caller;
	}
	pthread_mutex_unlock(&w->bg.mu);
}

/* An empty batch sized for the events of jobs, at the index's head. */
static void
batch_begin(struct stored *sd, struct wbatch *b, struct append_job *jobs)
{
	struct append_job *j;
	uint64_t nev = 0;

	for (j = jobs; j != NULL; j = j->next)
		if (j->op == EF_OP_APPEND)
			nev += j->req->nevents;
		else if (j->op == EF_OP_IMPORT)
			nev += j->nimp;
	b->len = BATCH_HDR;
	wb_reserve(b, 0);
	b->nrec = 0;
	b->first_pos = b->next_pos = index_head(&sd->index);
	b->recorded_at = now_ms();
	bmap_reset(&b->ids, nev);
	bmap_reset(&b->streams, nev);
}

/*
 * Checks the jobs and encodes the accepted ones into b, until b passes
 * BATCH_SOFT_MAX: the rest go back to the queue. An import job early in
 * its run leaves *jobs for the held list.
 */
static void
batch_fill(struct writer *w, struct wbatch *b, struct append_job **jobs,
    uint64_t *taken)
{
	struct stored *sd = w->sd;
	struct append_job *j, **jp;

	/* the indexer may trim the index meanwhile: read under the lock
	 * (what is read stays true: trimming moves, never changes) */
	pthread_rwlock_rdlock(&sd->index.lock);
	jp = jobs;
	while ((j = *jp) != NULL) {
		if (b->len > BATCH_SOFT_MAX) {
			*jp = NULL;
			queue_put_back(w, j, taken);
			break;
		}
		if (j->op == EF_OP_APPEND)
			writer_process(sd, b, j);
		else if (j->op == EF_OP_IMPORT && j->run == 0)
			writer_import(sd, b, j);
		else if (j->op == EF_OP_IMPORT &&
		    writer_import_run(sd, b, j) == SEQ_HOLD) {
			/* out of the batch until its turn */
			*jp = j->next;
			j->held_ms = mono_ms();
			j->next = held;
			held = j;
			continue;
		}
		jp = &j->next;
	}
	pthread_rwlock_unlock(&sd->index.lock);
}

/*
 * ROTATE and BACKUP jobs set apart from *jobs and returned: once
 * writer_commit has answered an append, its job (next included) belongs
 * to its context again, so writer_after must not walk past it.
 */
static struct append_job *
split_after(struct append_job **jobs)
{
	struct append_job *rot = NULL, **rtail = &rot, **jp;

	for (jp = jobs; *jp != NULL;) {
		if ((*jp)->op != EF_OP_ROTATE && (*jp)->op != EF_OP_BACKUP) {
			jp = &(*jp)->next;
			continue;
		}
		*rtail = *jp;
		*jp = (*jp)->next;
		rtail = &(*rtail)->next;
		*rtail = NULL;
	}
	return rot;
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct stored *sd = w->sd;
	struct append_job *jobs, *rot;
	struct wbatch b;
	uint64_t taken = 0, want = 0, wait_us = 0, t0, t1;
	bool done;

	memset(&b, 0, sizeof(b));
	for (;;) {
		if (held != NULL)
			held_expire(w);
		jobs = queue_take(w, want, wait_us, &taken, &done);
		if (jobs == NULL) {
			if (done)
				break;
			continue;
		}
		batch_begin(sd, &b, jobs);
		batch_fill(w, &b, &jobs, &taken);
		/* records read for the checks are no longer needed */
		journal_unpin();
		rot = split_after(&jobs);
		t0 = mono_us();
		writer_commit(sd, &b, jobs);
		writer_after(sd, rot);
		journal_unpin();
		t1 = mono_us();
		__atomic_store_n(&w->beat, t1 / 1000, __ATOMIC_RELAXED);
		/* Concurrency estimate for the next batch: the callers just
		 * answered (they come back within a round trip) plus those
		 * already waiting. */
		pthread_mutex_lock(&w->bg.mu);
		want = taken + w->len;
		pthread_mutex_unlock(&w->bg.mu);
		wait_us = (t1 - t0) / 2 < GATHER_MAX_US ? (t1 - t0) / 2 :
		                                          GATHER_MAX_US;
	}
	free(b.buf);
	free(b.rec);
	free(b.ids.slots);
	free(b.streams.slots);
	free(imp_hash);
	imp_hash = NULL;
	imp_hash_cap = 0;
	return NULL;
}

int
writer_start(struct stored *sd)
{
	struct writer *w;
	int rc;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	w->sd = sd;
	w->beat = mono_ms();
	w->head = NULL;
	w->tail = &w->head;
	if ((rc = bgthread_start(&w->bg, writer_main, w)) != 0) {
		free(w);
		return rc;
	}
	sd->writer = w;
	return 0;
}

void
writer_submit(struct stored *sd, struct append_job *job)
{
	job->next = NULL;
	writer_submit_list(sd, job, 1);
}

void
writer_submit_list(struct stored *sd, struct append_job *first, uint64_t n)
{
	struct writer *w = sd->writer;
	struct append_job *last = first;
	uint64_t i;

	first->caller = 1;
	for (i = 1; i < n; i++) {
		last = last->next;
		last->caller = 0;
	}
	last->next = NULL;
	pthread_mutex_lock(&w->bg.mu);
	*w->tail = first;
	w->tail = &last->next;
	w->len++;
	pthread_cond_signal(&w->bg.cv);
	pthread_mutex_unlock(&w->bg.mu);
}

void
writer_load(struct stored *sd, uint64_t *waiting, uint64_t *beat_ms)
{
	struct writer *w = sd->writer;

	pthread_mutex_lock(&w->bg.mu);
	*waiting = w->len;
	pthread_mutex_unlock(&w->bg.mu);
	*beat_ms = __atomic_load_n(&w->beat, __ATOMIC_RELAXED);
}

void
writer_stop(struct stored *sd)
{
	struct writer *w = sd->writer;

	if (w == NULL)
		return;
	bgthread_stop(&w->bg);
	pthread_mutex_destroy(&w->bg.mu);
	pthread_cond_destroy(&w->bg.cv);
	free(w);
	sd->writer = NULL;
}
