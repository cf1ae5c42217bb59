/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - the request side of eventfold-stored: the handlers of
 * its ops on libcommon's request server (server.h), `workers` nng
 * contexts on store.sock whose aio callbacks receive, check version and
 * shape, call the handler for the op, and send. Handlers run on nng's
 * callback threads (none waits for nng). Reads are answered there,
 * straight from the mapped journal or from archive frames (archiver.c),
 * unpinned once the reply is encoded.
 * Appends are validated (the checks that need no state) and queued for
 * the writer, whose completion callback sends the reply: no thread waits
 * for an fsync, and a request costs no thread hand-offs beyond nng's own
 * and the one to the writer.
 *
 * A malformed request gets an error reply naming what was wrong; no
 * input stops a context.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "archive.h"
#include "client.h"
#include "errors.h"
#include "ipc_many.h"
#include "log.h"
#include "server.h"
#include "stored.h"
#include "trace.h"
#include "utf8.h"

struct worker;

/* One append of an APPEND_MANY. */
struct many_entry {
	struct worker *w;
	struct ipc_append_req req;
	struct append_job job;
};

/* A context's data (srv_data): what its request holds until answered. */
struct worker {
	struct stored *sd;
	struct srv_req *r;   /* the request being served */
	struct ipc_out *out; /* srv_out(r) */
	struct ipc_append_req req;
	struct append_job job;
	uint8_t (*sorted)[UUID_LEN]; /* IMPORT: its event ids, sorted */
	struct many_entry *many;     /* APPEND_MANY: one per entry */
	uint32_t nmany, many_cap;
	uint32_t many_left; /* entries the writer has not finished */
	uint64_t *pos;      /* scratch for reads: positions ... */
	uint64_t *loc;      /* ... and their locations */
	uint64_t pos_cap;
};

/* An op that writes (admit): refused once stored is stopping. */
#define WRITES 1u

static struct srv *server;

static int
ids_cmp(const void *a, const void *b)
{
	return memcmp(a, b, UUID_LEN);
}

/*
 * The first id, in request order, that an earlier event of the batch
 * already has: the one EventfoldDB names (it checks event by event).
 * sorted holds the same n ids sorted; at least one repeats.
 */
static const uint8_t *
first_repeat(uint8_t (*ids)[UUID_LEN], uint8_t (*sorted)[UUID_LEN], uint32_t n)
{
	const uint8_t *hit = ids[n - 1];
	uint8_t *seen;
	uint32_t i, lo, hi, mid;

	if ((seen = calloc(n, 1)) == NULL)
		fatal("calloc");
	for (i = 0; i < n; i++) {
		/* the first slot of ids[i]'s run in sorted */
		lo = 0;
		hi = n;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (memcmp(sorted[mid], ids[i], UUID_LEN) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (seen[lo]) {
			hit = ids[i];
			break;
		}
		seen[lo] = 1;
	}
	free(seen);
	return hit;
}

static void
append_free(struct worker *w)
{
	free(w->job.ids);
	w->job.ids = NULL;
	ipc_append_req_free(&w->req);
}

/* Packs an append's or import's outcome: the positions, the conflict,
 * or nil. */
static void
append_result_body(struct ipc_out *o, const struct append_job *job)
{
	if (job->status == EF_S_OK && job->op == EF_OP_IMPORT)
		ipc_import_rep_encode(o, &job->irep);
	else if (job->status == EF_S_OK)
		ipc_append_rep_encode(o, &job->rep);
	else if (job->status == EF_S_VERSION_CONFLICT)
		ipc_conflict_encode(o, &job->conflict);
	else
		ipc_nil(o);
}

/* Writer thread: the worker whose job is done, its reply begun with the
 * job's status (and message, if refused). */
static struct worker *
job_reply_begin(struct append_job *job)
{
	struct worker *w = (struct worker *)((char *)job -
	    offsetof(struct worker, job));

	ipc_out_reset(w->out);
	ipc_reply_begin(w->out, job->status,
	    job->status == EF_S_OK ? "ok" : job->msg);
	return w;
}

/*
 * Writer thread: an APPEND or IMPORT is durable or refused; encode its
 * reply (into w->out), free what the request held, and send it.
 */
static void
job_reply(struct append_job *job)
{
	struct worker *w = job_reply_begin(job);

	append_result_body(w->out, job);
	if (job->status != EF_S_OK)
		trace_reply(srv_request_id(w->r), job->op, NULL, job->status,
		    job->msg);
	if (job->op == EF_OP_IMPORT) {
		free((void *)job->imp);
		job->imp = NULL;
		free(w->sorted);
		w->sorted = NULL;
	} else
		append_free(w);
	srv_reply(w->r);
}

/* Writer thread: the rotation is done or failed; send the reply. */
static void
rotate_done(struct append_job *job)
{
	struct worker *w = job_reply_begin(job);

	if (job->status == EF_S_OK)
		ipc_rotate_rep_encode(w->out, &job->rot);
	else {
		trace_reply(srv_request_id(w->r), EF_OP_ROTATE, NULL,
		    job->status, job->msg);
		ipc_nil(w->out);
	}
	srv_reply(w->r);
}

/* ROTATE: the writer seals the hot segment between two batches. */
static int
handle_rotate(struct worker *w, const struct ipc_in *in)
{
	struct append_job *job = &w->job;

	if (in->body->type != MSGPACK_OBJECT_NIL) {
		srv_error(w->r, EF_S_BAD_REQUEST,
		    "rotate: the body must be "
		    "nil");
		return SRV_DONE;
	}
	memset(job, 0, sizeof(*job));
	job->op = EF_OP_ROTATE;
	job->complete = rotate_done;
	writer_submit(w->sd, job);
	return SRV_DEFERRED;
}

/* Sets the error the writer reports after its own checks (printf-style). */
static void late_fail(struct append_job *job, int status, const char *fmt, ...)
    EF_PRINTF(3, 4);

static void
late_fail(struct append_job *job, int status, const char *fmt, ...)
{
	va_list ap;

	job->late_status = status;
	va_start(ap, fmt);
	vsnprintf(job->late_msg, sizeof(job->late_msg), fmt, ap);
	va_end(ap);
}

/*
 * Parses the event ids of req into job->ids (allocated), and adds up
 * the records' sizes into *total. 0, or -1 with job refused.
 */
static int
append_ids(const struct ipc_append_req *req, struct append_job *job,
    uint64_t *total)
{
	uint32_t i;

	if ((job->ids = calloc(req->nevents, UUID_LEN)) == NULL)
		fatal("calloc");
	for (i = 0; i < req->nevents; i++) {
		const struct ipc_proposed *p = &req->events[i];

		if (uuid_parse(p->event_id.ptr, p->event_id.len,
		        job->ids[i]) != 0) {
			job_fail(job, EF_S_BAD_UUID,
			    "invalid event_id: "
			    "malformed uuid \"%.*s\" (event %u)",
			    (int)(p->event_id.len > 64 ? 64 : p->event_id.len),
			    p->event_id.ptr, i);
			return -1;
		}
		*total += record_size(p->type.len, p->metadata_len,
		    p->payload_len);
	}
	return 0;
}

/* An event id twice in job's n ids: -1 with job refused, else 0. */
static int
append_unique(struct append_job *job, uint32_t n)
{
	uint8_t(*sorted)[UUID_LEN];
	char ebuf[UUID_STR_LEN];
	uint32_t i;
	int rc = 0;

	if (n <= 1)
		return 0;
	if ((sorted = calloc(n, UUID_LEN)) == NULL)
		fatal("calloc");
	memcpy(sorted, job->ids, (size_t)n * UUID_LEN);
	qsort(sorted, n, UUID_LEN, ids_cmp);
	for (i = 1; i < n; i++)
		if (memcmp(sorted[i - 1], sorted[i], UUID_LEN) == 0) {
			job_fail(job, EF_S_DUPLICATE_EVENT_ID,
			    "duplicate event_id %s within batch",
			    uuid_format(first_repeat(job->ids, sorted, n),
			        ebuf));
			rc = -1;
			break;
		}
	free(sorted);
	return rc;
}

/*
 * Type and size, event by event, in EventfoldDB's words; the size
 * counted as EventfoldDB counts its record (RECORD_API_MAX). Found here,
 * reported by the writer after the replay and expected version checks
 * (the contract's order).
 */
static void
append_late_checks(const struct ipc_append_req *req, struct append_job *job)
{
	uint32_t i;

	for (i = 0; i < req->nevents; i++) {
		const struct ipc_proposed *p = &req->events[i];
		size_t sz = record_api_size(p->type.len, p->metadata_len,
		    p->payload_len);

		if (p->type.len < 1)
			late_fail(job, EF_S_BAD_EVENT_TYPE,
			    "event type must "
			    "not be empty");
		else if (p->type.len > RECORD_TYPE_MAX)
			late_fail(job, EF_S_BAD_EVENT_TYPE,
			    "event type exceeds "
			    "%d byte limit: %u bytes",
			    RECORD_TYPE_MAX, p->type.len);
		else if (!utf8_valid(p->type.ptr, p->type.len))
			late_fail(job, EF_S_BAD_EVENT_TYPE,
			    "event type is not "
			    "valid UTF-8 (event %u)",
			    i);
		else if (sz > RECORD_MAX)
			late_fail(job, EF_S_RECORD_TOO_LARGE,
			    "event too large: "
			    "%zu bytes exceeds %d byte limit",
			    sz, RECORD_MAX);
		else
			continue;
		break;
	}
}

/*
 * The checks of one append that need no state, in the contract's order
 * (proto/IPC.md): stream id, events non-empty, event ids, duplicates,
 * size. Returns 0 with req decoded and job ready for the writer (job->ids
 * owned by job), or -1 with job->status and job->msg set and nothing
 * left to free. body is an APPEND body (alone, or an APPEND_MANY entry).
 */
static int
append_check(struct stored *sd, const msgpack_object *body,
    struct ipc_append_req *req, struct append_job *job)
{
	const char *why = "";
	uint64_t total = 0;
	int st;

	if ((st = ipc_append_req_decode(body, req, &why)) != 0) {
		job_fail(job, st, "append: bad field: %s", why);
		return -1;
	}
	if (uuid_parse(req->stream_id.ptr, req->stream_id.len,
	        job->stream_id) != 0) {
		job_fail(job, EF_S_BAD_UUID,
		    "invalid stream_id: malformed "
		    "uuid \"%.*s\"",
		    (int)(req->stream_id.len > 64 ? 64 : req->stream_id.len),
		    req->stream_id.ptr);
		goto refused;
	}
	if (req->nevents == 0) {
		job_fail(job, EF_S_EMPTY_BATCH, "events must not be empty");
		goto refused;
	}
	if (append_ids(req, job, &total) != 0 ||
	    append_unique(job, req->nevents) != 0)
		goto refused;
	if (total > sd->conf.max_append_bytes) {
		job_fail(job, EF_S_BATCH_TOO_LARGE,
		    "append of %" PRIu64
		    " bytes is over max_append_bytes %" PRIu64,
		    total, sd->conf.max_append_bytes);
		goto refused;
	}
	append_late_checks(req, job);
	job->req = req;
	return 0;
refused:
	free(job->ids);
	job->ids = NULL;
	ipc_append_req_free(req);
	return -1;
}

static int
handle_append(struct worker *w, const struct ipc_in *in)
{
	struct append_job *job = &w->job;

	memset(job, 0, sizeof(*job));
	job->op = EF_OP_APPEND;
	if (append_check(w->sd, in->body, &w->req, job) != 0) {
		srv_error(w->r, job->status, "%s", job->msg);
		return SRV_DONE;
	}
	job->complete = job_reply;
	writer_submit(w->sd, job);
	return SRV_DEFERRED;
}

/*
 * APPEND_MANY (ipc_many.h): every entry is checked as an APPEND would
 * be; those that pass go to the writer together, in order, so that they
 * share a group commit (the writer checks each against the ones before
 * it, as for appends from different callers). The last one the writer
 * finishes sends the reply with every entry's result.
 */
static void
many_reply(struct worker *w)
{
	uint32_t i;

	ipc_out_reset(w->out);
	ipc_reply_begin(w->out, EF_S_OK, "ok");
	ipc_many_begin(w->out, w->nmany);
	for (i = 0; i < w->nmany; i++) {
		struct many_entry *e = &w->many[i];
		char what[32];

		ipc_result_begin(w->out, e->job.status,
		    e->job.status == EF_S_OK ? "ok" : e->job.msg);
		if (e->job.status != EF_S_OK) {
			snprintf(what, sizeof(what), "entry %" PRIu32, i);
			trace_reply(srv_request_id(w->r), EF_OP_APPEND, what,
			    e->job.status, e->job.msg);
		}
		append_result_body(w->out, &e->job);
		free(e->job.ids);
		e->job.ids = NULL;
		ipc_append_req_free(&e->req);
	}
	if (w->many_cap > 256) {
		/* do not keep a large array per context */
		free(w->many);
		w->many = NULL;
		w->many_cap = 0;
	}
}

/* Writer thread: one entry of an APPEND_MANY is durable or refused. */
static void
many_done(struct append_job *job)
{
	struct many_entry *e = (struct many_entry *)((char *)job -
	    offsetof(struct many_entry, job));
	struct worker *w = e->w;

	if (__atomic_sub_fetch(&w->many_left, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	many_reply(w);
	srv_reply(w->r);
}

static int
handle_append_many(struct worker *w, const struct ipc_in *in)
{
	struct append_job *first = NULL, **tail = &first;
	const char *why = "";
	uint32_t n, i, queued = 0;
	int rc;

	if ((rc = ipc_many_req_open(in->body, &n, &why)) != 0) {
		srv_error(w->r, rc, "%s", why);
		return SRV_DONE;
	}
	if (n > w->many_cap) {
		free(w->many);
		if ((w->many = calloc(n, sizeof(*w->many))) == NULL)
			fatal("calloc");
		w->many_cap = n;
	}
	memset(w->many, 0, n * sizeof(*w->many));
	w->nmany = n;
	for (i = 0; i < n; i++) {
		struct many_entry *e = &w->many[i];

		e->w = w;
		e->job.op = EF_OP_APPEND;
		if (append_check(w->sd, &in->body->via.array.ptr[i], &e->req,
		        &e->job) != 0)
			continue;
		e->job.complete = many_done;
		*tail = &e->job;
		tail = &e->job.next;
		queued++;
	}
	if (queued == 0) {
		many_reply(w);
		return SRV_DONE;
	}
	/* before the writer can finish any of them */
	__atomic_store_n(&w->many_left, queued, __ATOMIC_RELEASE);
	writer_submit_list(w->sd, first, queued);
	return SRV_DEFERRED;
}

/*
 * IMPORT: whole events from another log (eventfoldctl import). What
 * needs no state is checked here, as for APPEND: the shape of every
 * event, types, sizes, ids unique in the request; the writer checks
 * versions, positions and ids against the log (writer_import).
 *
 * An IMPORT of an ordered run (ipc.h: run, seq) that fails these checks
 * still goes to the writer, refused: the writer must know that the run
 * failed at this seq, so that it refuses the ones after it (no gap).
 */
static int import_refuse(struct worker *w, int status, const char *fmt, ...)
    EF_PRINTF(3, 4);

static int
import_refuse(struct worker *w, int status, const char *fmt, ...)
{
	struct append_job *job = &w->job;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(job->msg, sizeof(job->msg), fmt, ap);
	va_end(ap);
	job->status = status;
	free((void *)job->imp);
	job->imp = NULL;
	free(w->sorted);
	w->sorted = NULL;
	if (job->run == 0) {
		srv_error(w->r, status, "%s", job->msg);
		return SRV_DONE;
	}
	job->complete = job_reply;
	writer_submit(w->sd, job);
	return SRV_DEFERRED;
}

static int
handle_import(struct worker *w, const struct ipc_in *in)
{
	struct stored *sd = w->sd;
	struct append_job *job = &w->job;
	struct ipc_import_req r;
	struct ef_event *evs = NULL;
	const char *why = "";
	char ebuf[UUID_STR_LEN];
	uint64_t total = 0, sz;
	uint32_t i;

	memset(job, 0, sizeof(*job));
	job->op = EF_OP_IMPORT;
	if (ipc_import_req_decode(in->body, &r, &why) != 0) {
		srv_error(w->r, EF_S_BAD_REQUEST, "import: bad field: %s",
		    why);
		return SRV_DONE;
	}
	job->run = r.run;
	job->seq = r.seq;
	if (r.nevents == 0)
		return import_refuse(w, EF_S_EMPTY_BATCH,
		    "import: no events "
		    "in batch");
	if ((evs = calloc(r.nevents, sizeof(*evs))) == NULL ||
	    (w->sorted = calloc(r.nevents, UUID_LEN)) == NULL)
		fatal("calloc");
	job->imp = evs;
	for (i = 0; i < r.nevents; i++) {
		if (ipc_event_decode(&r.events->via.array.ptr[i], &evs[i],
		        &why) != 0)
			return import_refuse(w, EF_S_BAD_REQUEST,
			    "import: "
			    "event %u: bad field: %s",
			    i, why);
		if (evs[i].type_len < 1 || evs[i].type_len > RECORD_TYPE_MAX ||
		    !utf8_valid(evs[i].type, evs[i].type_len))
			return import_refuse(w, EF_S_BAD_EVENT_TYPE,
			    "event %u: "
			    "event type must be 1..%d bytes of UTF-8 (got %u "
			    "bytes)",
			    i, RECORD_TYPE_MAX, evs[i].type_len);
		sz = record_size(evs[i].type_len, evs[i].metadata_len,
		    evs[i].payload_len);
		if (sz > RECORD_MAX)
			return import_refuse(w, EF_S_RECORD_TOO_LARGE,
			    "event %u: "
			    "record of %" PRIu64 " bytes is over the %d-byte "
			    "limit",
			    i, sz, RECORD_MAX);
		total += sz;
		memcpy(w->sorted[i], evs[i].event_id, UUID_LEN);
	}
	qsort(w->sorted, r.nevents, UUID_LEN, ids_cmp);
	for (i = 1; i < r.nevents; i++)
		if (memcmp(w->sorted[i - 1], w->sorted[i], UUID_LEN) == 0)
			return import_refuse(w, EF_S_DUPLICATE_EVENT_ID,
			    "duplicate event id %s in batch",
			    uuid_format(w->sorted[i], ebuf));
	if (total > sd->conf.max_append_bytes)
		return import_refuse(w, EF_S_BATCH_TOO_LARGE,
		    "import of %" PRIu64
		    " bytes is over max_append_bytes %" PRIu64,
		    total, sd->conf.max_append_bytes);
	job->nimp = r.nevents;
	job->keep_positions = r.keep_positions;
	job->complete = job_reply;
	writer_submit(sd, job);
	return SRV_DEFERRED;
}

static uint64_t
read_cap(const struct stored *sd, uint64_t max)
{
	return max < sd->conf.max_read_count ? max : sd->conf.max_read_count;
}

/*
 * Makes the pages of [lo, hi) of a mapped segment present with one
 * madvise instead of a page fault every few pages as the records are
 * first touched (a quarter of a ReadAll's CPU was in the kernel). Each
 * segment remembers how far from its start it was populated, so a
 * forward read of the log populates each page once. Best effort: pages
 * the kernel drops later are faulted in again as before. Under the
 * journal pin, the segment not archived.
 */
static void
segment_populate(struct segment *s, uint64_t lo, uint64_t hi)
{
	static uintptr_t pgsz;
	uint64_t done = __atomic_load_n(&s->populated, __ATOMIC_RELAXED);
	uintptr_t a, b;

	if (hi <= done)
		return;
	if (pgsz == 0)
		pgsz = (uintptr_t)sysconf(_SC_PAGESIZE);
	if (lo < done)
		lo = done;
	a = ((uintptr_t)s->map + lo) & ~(pgsz - 1);
	b = ((uintptr_t)s->map + hi + pgsz - 1) & ~(pgsz - 1);
	(void)madvise((void *)a, b - a, MADV_POPULATE_READ);
	if (lo == done)
		(void)__atomic_compare_exchange_n(&s->populated, &done, hi, 0,
		    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* segment_populate() for the records at loc[0..n), by segment. */
static void
populate_locations(struct journal *j, const uint64_t *loc, uint64_t n)
{
	struct segment *s;
	uint64_t i, k, lo, hi, off, end;

	journal_pin(j);
	for (i = 0; i < n; i = k) {
		lo = hi = loc[i] & JOURNAL_OFF_MASK;
		for (k = i + 1; k < n &&
		     loc[k] >> JOURNAL_OFF_BITS == loc[i] >> JOURNAL_OFF_BITS;
		     k++) {
			off = loc[k] & JOURNAL_OFF_MASK;
			lo = off < lo ? off : lo;
			hi = off > hi ? off : hi;
		}
		if (loc[i] == JOURNAL_LOC_BAD)
			continue;
		s = j->segs[loc[i] >> JOURNAL_OFF_BITS];
		if (__atomic_load_n(&s->arc, __ATOMIC_ACQUIRE) != NULL)
			continue;
		/* the last record's header at least; committed bytes only */
		end = __atomic_load_n(&s->end, __ATOMIC_ACQUIRE);
		hi = hi + RECORD_MAX < end ? hi + RECORD_MAX : end;
		segment_populate(s, lo, hi);
	}
}

#define PREFETCH 4 /* records ahead */

/* Starts loading the first lines of a mapped record into the cache. */
static inline void
prefetch_location(const struct journal *j, uint64_t loc)
{
	struct segment *s = j->segs[loc >> JOURNAL_OFF_BITS];
	const uint8_t *p;

	if (__atomic_load_n(&s->arc, __ATOMIC_RELAXED) != NULL)
		return;
	p = s->map + (loc & JOURNAL_OFF_MASK);
	__builtin_prefetch(p);
	__builtin_prefetch(p + 64);
	__builtin_prefetch(p + 128);
	__builtin_prefetch(p + 192);
}

/* The location of pos from the index (under its lock), or
 * JOURNAL_LOC_BAD. */
static uint64_t
lookup_location(struct stored *sd, uint64_t pos)
{
	uint64_t loc;

	pthread_rwlock_rdlock(&sd->index.lock);
	loc = index_offset(&sd->index, pos);
	pthread_rwlock_unlock(&sd->index.lock);
	return loc;
}

/*
 * A forward read: the location of pos, the position after the record of
 * len bytes at loc, walked through this thread's window: the next record
 * of the same batch or, when a batch header follows, the first record
 * of that batch, which must start at pos. JOURNAL_LOC_BAD where the walk
 * cannot go (the segment's end, an archived segment): the caller looks
 * pos up in the index. Why: the index finds a sealed position by its
 * batch in LMDB and then walks the record headers before it through the
 * mapping (index.c), page by page on first touch; that walk was a third
 * of stored's CPU in an export once the records themselves came from
 * the window. A batch header cannot be taken for a record: its magic is
 * over RECORD_MAX, where a record starts with its length.
 */
static uint64_t
walk_next(struct journal *j, uint64_t loc, uint64_t len, uint64_t pos)
{
	struct segment *s = j->segs[loc >> JOURNAL_OFF_BITS];
	uint64_t off = (loc & JOURNAL_OFF_MASK) + len;
	struct batch_hdr h;
	const uint8_t *p;

	if ((p = readwin_peek(s, off, 4)) == NULL)
		return JOURNAL_LOC_BAD;
	if (get_le32(p) == BATCH_MAGIC) {
		if ((p = readwin_peek(s, off, BATCH_HDR)) == NULL ||
		    batch_hdr_decode(p, BATCH_HDR, &h) != REC_OK ||
		    h.first_pos != pos)
			return JOURNAL_LOC_BAD;
		off += BATCH_HDR;
	}
	return (loc & ~JOURNAL_OFF_MASK) | off;
}

/*
 * Where the last forward reads stopped: the location and length of the
 * record before `pos`, so that the next page's first location is walked
 * too (the index would walk from the start of its batch, up to 4096
 * records through the mapping, on whichever thread answers). A few
 * slots for a few readers at once; a position's location never changes
 * while stored runs, so a hint is either for pos[0] or not used.
 */
#define HINTS 8
static struct {
	uint64_t pos, loc, len;
} hints[HINTS];
static unsigned hint_next;
static pthread_mutex_t hint_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t
hint_take(struct journal *j, uint64_t pos)
{
	uint64_t loc = JOURNAL_LOC_BAD, prev = 0, len = 0;
	unsigned k;

	pthread_mutex_lock(&hint_mu);
	for (k = 0; k < HINTS; k++)
		if (hints[k].len != 0 && hints[k].pos == pos) {
			prev = hints[k].loc;
			len = hints[k].len;
			break;
		}
	pthread_mutex_unlock(&hint_mu);
	if (len != 0)
		loc = walk_next(j, prev, len, pos);
	return loc;
}

/* The hint for pos; replaces the one for was (this read's first). */
static void
hint_put(uint64_t was, uint64_t pos, uint64_t loc, uint64_t len)
{
	unsigned k;

	pthread_mutex_lock(&hint_mu);
	for (k = 0; k < HINTS; k++)
		if (hints[k].pos == was && hints[k].len != 0)
			break;
	if (k == HINTS)
		k = hint_next++ % HINTS;
	hints[k].pos = pos;
	hints[k].loc = loc;
	hints[k].len = len;
	pthread_mutex_unlock(&hint_mu);
}

/*
 * Positions to locations into w->loc, under the lock (the tail's
 * offsets may be trimmed meanwhile; locations stay valid), and their
 * pages made present. Returns how many to read: up to and including
 * the first that could not be looked up (the reply is an error about
 * it).
 */
static uint64_t
locate_positions(struct worker *w, const uint64_t *pos, uint64_t n)
{
	struct stored *sd = w->sd;
	uint64_t i;

	pthread_rwlock_rdlock(&sd->index.lock);
	for (i = 0; i < n; i++)
		if ((w->loc[i] = index_offset(&sd->index, pos[i])) ==
		    JOURNAL_LOC_BAD) {
			n = i + 1;
			break;
		}
	pthread_rwlock_unlock(&sd->index.lock);
	populate_locations(&sd->journal, w->loc, n);
	return n;
}

/*
 * The record of the i-th position of a forward run (encode_positions'
 * seq): its location walked from the one before (prev_len bytes long),
 * or looked up, into w->loc[i]; read through this thread's window. NULL
 * if the window cannot serve it (the caller reads it otherwise).
 */
static const uint8_t *
seq_record(struct worker *w, const uint64_t *pos, uint64_t i, size_t prev_len)
{
	struct journal *j = &w->sd->journal;

	journal_pin(j);
	w->loc[i] = i > 0 ? walk_next(j, w->loc[i - 1], prev_len, pos[i]) :
	                    hint_take(j, pos[0]);
	if (w->loc[i] == JOURNAL_LOC_BAD) {
		/* not under the pin: the index pins itself */
		journal_unpin();
		w->loc[i] = lookup_location(w->sd, pos[i]);
		journal_pin(j);
	}
	if (w->loc[i] == JOURNAL_LOC_BAD)
		return NULL;
	return readwin_at(j->segs[w->loc[i] >> JOURNAL_OFF_BITS],
	    w->loc[i] & JOURNAL_OFF_MASK);
}

/* Why encode_positions stopped short. */
enum read_bad {
	READ_OK,
	READ_CHECKSUM, /* a record does not decode */
	READ_LOST,     /* a record could not be read (journal_fault) */
	READ_ELSEWHERE /* a walk or the index led to another position */
};

/* The error reply for a read that stopped at position pos (ev: the
 * event read there, for READ_ELSEWHERE). */
static void
read_fail(struct worker *w, enum read_bad bad, uint64_t pos,
    const struct ef_event *ev)
{
	uint64_t found;

	if (bad == READ_LOST) {
		srv_error(w->r, EF_S_DATA_LOSS,
		    "reading position %" PRIu64 ": %s", pos, journal_fault());
		return;
	}
	if (bad == READ_ELSEWHERE) {
		found = ev->global_position;
		log_warnx("journal: the record read for position %" PRIu64
		          " holds position %" PRIu64,
		    pos, found);
		srv_error(w->r, EF_S_DATA_LOSS,
		    "reading position %" PRIu64
		    ": the log holds position %" PRIu64 " there",
		    pos, found);
		return;
	}
	log_warnx("journal: checksum mismatch at position %" PRIu64, pos);
	srv_error(w->r, EF_S_DATA_LOSS,
	    "checksum mismatch reading "
	    "position %" PRIu64,
	    pos);
}

/*
 * Encodes the events at positions pos[0..n) (offsets looked up) into a
 * reply message of their size (srv_reply_msg), sent as it is: no buffer in
 * between and no copy. seq: the positions run forward through the log
 * one by one (a forward ReadAll), so plain segments are read with
 * pread() through this thread's window (readwin.c) rather than through
 * the mapping, and each location after the first is walked from the
 * record before it (walk_next) rather than looked up.
 */
static void
encode_positions(struct worker *w, const uint64_t *pos, uint64_t n,
    uint64_t head, bool has_last, uint64_t last, bool seq)
{
	struct stored *sd = w->sd;
	struct ef_event ev;
	enum read_bad bad = READ_OK;
	nng_msg *m;
	uint64_t i, bytes = 0, keep = 0;
	size_t len = 0, at;

	if (!seq)
		n = locate_positions(w, pos, n);
	if (nng_msg_alloc(&m,
	        n * 512 < sd->conf.max_read_bytes ?
	            n * 512 :
	            sd->conf.max_read_bytes + 4096) != 0) {
		srv_error(w->r, EF_S_UNAVAILABLE, "out of memory for a reply");
		return;
	}
	/*
	 * One pass: whole events only, up to max_read_bytes (at least one),
	 * the count set at the end. Records of archived segments come from
	 * pinned frames: unpinned as we go (what is encoded is copied), so
	 * a read holds few frames at once. The records a few ahead are
	 * prefetched: the first touch of each was a third of the time.
	 */
	ipc_out_msg_begin(w->out, m);
	ipc_reply_begin(w->out, EF_S_OK, "ok");
	at = ipc_read_rep_begin_open(w->out);
	for (i = 0; i < n; i++) {
		bool checked = false;
		const uint8_t *rec = NULL;
		uint64_t sz;

		if (seq)
			rec = seq_record(w, pos, i, len);
		else if (i + PREFETCH < n &&
		    w->loc[i + PREFETCH] != JOURNAL_LOC_BAD)
			prefetch_location(&sd->journal, w->loc[i + PREFETCH]);
		if (rec == NULL &&
		    (rec = journal_at_checked(&sd->journal, w->loc[i],
		         &checked)) == NULL) {
			bad = READ_LOST;
			break;
		}
		/* >= the event's encoded size (ipc_event_wire_size) */
		sz = record_len(rec, RECORD_HDR) + 64;
		if (keep > 0 && bytes + sz > sd->conf.max_read_bytes)
			break;
		if (record_decode(rec, RECORD_MAX, &ev, &len, !checked) !=
		    REC_OK) {
			bad = READ_CHECKSUM;
			break;
		}
		if (seq && ev.global_position != pos[i]) {
			bad = READ_ELSEWHERE;
			break;
		}
		ipc_event_encode(w->out, &ev);
		bytes += sz;
		keep++;
		if (journal_pinned() > 4)
			journal_unpin();
	}
	if (seq && !bad && keep > 0)
		hint_put(pos[0], pos[keep - 1] + 1, w->loc[keep - 1],
		    len); /* len: record keep - 1's */
	readwin_done();
	journal_unpin();
	ipc_read_rep_count(w->out, at, (uint32_t)keep);
	if (!bad)
		ipc_read_rep_end(w->out, head, has_last, last);
	m = ipc_out_msg_end(w->out);
	if (bad) {
		nng_msg_free(m);
		read_fail(w, bad, pos[i], &ev);
		return;
	}
	srv_reply_msg(w->r, m);
}

static uint64_t *
scratch(struct worker *w, uint64_t n)
{
	if (n > w->pos_cap) {
		free(w->pos);
		free(w->loc);
		if ((w->pos = calloc(n, sizeof(*w->pos))) == NULL ||
		    (w->loc = calloc(n, sizeof(*w->loc))) == NULL)
			fatal("calloc");
		w->pos_cap = n;
	}
	return w->pos;
}

static int
handle_read_all(struct worker *w, const struct ipc_in *in)
{
	struct ipc_read_all_req r;
	const char *why = "";
	uint64_t head, n = 0, i, from, *pos;

	if (ipc_read_all_req_decode(in->body, &r, &why) != 0) {
		srv_error(w->r, EF_S_BAD_REQUEST, "read_all: bad field: %s",
		    why);
		return SRV_DONE;
	}
	head = index_head(&w->sd->index);
	r.max_count = read_cap(w->sd, r.max_count);
	if (r.direction == EF_FORWARD) {
		if (r.from < head)
			n = head - r.from < r.max_count ? head - r.from :
			                                  r.max_count;
		pos = scratch(w, n ? n : 1);
		for (i = 0; i < n; i++)
			pos[i] = r.from + i;
	} else {
		from = r.from >= head ? head - 1 : r.from;
		if (head > 0)
			n = from + 1 < r.max_count ? from + 1 : r.max_count;
		pos = scratch(w, n ? n : 1);
		for (i = 0; i < n; i++)
			pos[i] = from - i;
	}
	encode_positions(w, pos, n, head, false, 0, r.direction == EF_FORWARD);
	return SRV_DONE;
}

static int
handle_read_stream(struct worker *w, const struct ipc_in *in)
{
	struct stored *sd = w->sd;
	struct ipc_read_stream_req r;
	struct stream *s;
	uint8_t sid[UUID_LEN];
	const char *why = "";
	uint64_t head, n = 0, from, last = 0, cnt, *pos;
	int err = 0;

	if (ipc_read_stream_req_decode(in->body, &r, &why) != 0) {
		srv_error(w->r, EF_S_BAD_REQUEST, "read_stream: bad field: %s",
		    why);
		return SRV_DONE;
	}
	if (uuid_parse(r.stream_id.ptr, r.stream_id.len, sid) != 0) {
		srv_error(w->r, EF_S_BAD_UUID,
		    "invalid stream_id: malformed "
		    "uuid \"%.*s\"",
		    (int)(r.stream_id.len > 64 ? 64 : r.stream_id.len),
		    r.stream_id.ptr);
		return SRV_DONE;
	}
	r.max_count = read_cap(sd, r.max_count);
	pos = scratch(w, r.max_count ? r.max_count : 1);
	pthread_rwlock_rdlock(&sd->index.lock);
	head = index_head(&sd->index);
	s = index_stream(&sd->index, sid);
	cnt = index_stream_count(&sd->index, sid);
	if (cnt == INDEX_ERR)
		err = -1;
	else if (cnt > 0) {
		last = cnt - 1;
		if (r.direction == EF_FORWARD) {
			if (r.from < cnt)
				n = cnt - r.from < r.max_count ? cnt - r.from :
				                                 r.max_count;
			err = index_stream_positions(&sd->index, s, sid,
			    r.from, n, 0, pos);
		} else {
			from = r.from >= cnt ? cnt - 1 : r.from;
			n = from + 1 < r.max_count ? from + 1 : r.max_count;
			err = index_stream_positions(&sd->index, s, sid, from,
			    n, 1, pos);
		}
	}
	pthread_rwlock_unlock(&sd->index.lock);
	if (err != 0) {
		srv_error(w->r, EF_S_INTERNAL, "read_stream: %s",
		    journal_fault());
		return SRV_DONE;
	}
	if (cnt == 0) {
		char ubuf[UUID_STR_LEN];

		ipc_out_reset(w->out);
		snprintf(ubuf, sizeof(ubuf), "%s", "");
		{
			char msg[128];

			snprintf(msg, sizeof(msg), "stream not found: %s",
			    uuid_format(sid, ubuf));
			ipc_reply_begin(w->out, EF_S_STREAM_NOT_FOUND, msg);
		}
		ipc_read_rep_begin(w->out, 0);
		ipc_read_rep_end(w->out, head, false, 0);
		return SRV_DONE;
	}
	encode_positions(w, pos, n, head, true, last, false);
	return SRV_DONE;
}

static int
handle_list_streams(struct worker *w, const struct ipc_in *in)
{
	struct ipc_list_req r;
	struct ipc_stream_info *out;
	uint8_t after[UUID_LEN];
	const char *why = "";
	uint64_t n, i, max;
	bool more;

	if (ipc_list_req_decode(in->body, &r, &why) != 0) {
		srv_error(w->r, EF_S_BAD_REQUEST,
		    "list_streams: bad field: %s", why);
		return SRV_DONE;
	}
	if (r.has_after && uuid_parse(r.after.ptr, r.after.len, after) != 0) {
		srv_error(w->r, EF_S_BAD_UUID, "after: malformed uuid");
		return SRV_DONE;
	}
	max = read_cap(w->sd, r.max_count);
	if ((out = calloc(max ? max : 1, sizeof(*out))) == NULL)
		fatal("calloc");
	n = index_list(&w->sd->index, r.has_after ? after : NULL, max, out,
	    &more);
	if (n == INDEX_ERR) {
		free(out);
		srv_error(w->r, EF_S_INTERNAL, "list_streams: %s",
		    journal_fault());
		return SRV_DONE;
	}
	ipc_out_reset(w->out);
	ipc_reply_begin(w->out, EF_S_OK, "ok");
	ipc_list_rep_begin(w->out, (uint32_t)n);
	for (i = 0; i < n; i++)
		ipc_stream_info_encode(w->out, &out[i]);
	ipc_list_rep_end(w->out, more);
	free(out);
	return SRV_DONE;
}

static int
handle_status(struct worker *w, const struct ipc_in *in)
{
	struct stored *sd = w->sd;
	struct ipc_status_rep st;

	(void)in;
	memset(&st, 0, sizeof(st));
	pthread_rwlock_rdlock(&sd->index.lock);
	st.head = index_head(&sd->index);
	st.streams = index_nstreams(&sd->index);
	st.index_bytes = sd->index.bytes;
	pthread_rwlock_unlock(&sd->index.lock);
	st.log_bytes = __atomic_load_n(&sd->journal.bytes, __ATOMIC_RELAXED);
	st.segments = journal_nsegs(&sd->journal);
	st.sealed_bytes = __atomic_load_n(&sd->journal.sealed_bytes,
	    __ATOMIC_RELAXED);
	st.indexed_to = __atomic_load_n(&sd->disk.indexed_to,
	    __ATOMIC_ACQUIRE);
	st.uptime_ms = mono_ms() - sd->stats.start_ms;
	st.commits = __atomic_load_n(&sd->stats.commits, __ATOMIC_RELAXED);
	st.fsyncs = __atomic_load_n(&sd->stats.fsyncs, __ATOMIC_RELAXED);
	st.events_written = __atomic_load_n(&sd->stats.events_written,
	    __ATOMIC_RELAXED);
	st.recover_ms = sd->stats.recover_ms;
	st.recovered_events = sd->stats.recovered_events;
	st.archived_segments = __atomic_load_n(&sd->archived_segs,
	    __ATOMIC_RELAXED);
	st.archived_bytes = __atomic_load_n(&sd->archived_bytes,
	    __ATOMIC_RELAXED);
	st.archived_raw = __atomic_load_n(&sd->archived_raw, __ATOMIC_RELAXED);
	{
		struct archive_cache_stats cs;

		archive_cache_stat(sd->journal.cache, &cs);
		st.cache_hits = cs.hits;
		st.cache_misses = cs.misses;
		st.cache_bytes = cs.bytes;
	}
	ipc_out_reset(w->out);
	ipc_reply_begin(w->out, EF_S_OK, "ok");
	ipc_status_rep_encode(w->out, &st);
	return SRV_DONE;
}

/* SEGMENTS: each segment's range, size and state, oldest first. */
static int
handle_segments(struct worker *w, const struct ipc_in *in)
{
	const struct journal *j = &w->sd->journal;
	struct ipc_segments_req r;
	struct ipc_segment_info si;
	const struct segment *s;
	const char *why = "";
	uint64_t n = journal_nsegs(j), lo = 0, hi = n, mid, max, cnt, i;

	if (ipc_segments_req_decode(in->body, &r, &why) != 0) {
		srv_error(w->r, EF_S_BAD_REQUEST, "segments: bad field: %s",
		    why);
		return SRV_DONE;
	}
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (j->segs[mid]->base < r.from)
			lo = mid + 1;
		else
			hi = mid;
	}
	max = read_cap(w->sd, r.max_count);
	cnt = n - lo < max ? n - lo : max;
	ipc_out_reset(w->out);
	ipc_reply_begin(w->out, EF_S_OK, "ok");
	ipc_segments_rep_begin(w->out, (uint32_t)cnt);
	for (i = lo; i < lo + cnt; i++) {
		s = j->segs[i];
		/* the writer may be appending: next before end, both read
		 * once; a sealed segment no longer changes */
		si.base = s->base;
		si.events = __atomic_load_n(&s->next, __ATOMIC_ACQUIRE) -
		    s->base;
		si.bytes = __atomic_load_n(&s->end, __ATOMIC_ACQUIRE);
		si.stored_bytes = si.bytes;
		if (__atomic_load_n(&s->arc, __ATOMIC_ACQUIRE) != NULL) {
			si.state.ptr = "archived";
			si.stored_bytes = s->arc_bytes;
		} else
			si.state.ptr = __atomic_load_n(&s->sealed,
			                   __ATOMIC_ACQUIRE) ?
			    "sealed" :
			    "hot";
		si.state.len = (uint32_t)strlen(si.state.ptr);
		ipc_segment_info_encode(w->out, &si);
	}
	ipc_segments_rep_end(w->out, lo + cnt < n);
	return SRV_DONE;
}

/*
 * ARCHIVE: the oldest eligible segment archived now (archiver.c); the
 * client repeats it for all, printing progress. Blocks this context
 * (and its nng thread) while one segment is compressed.
 */
static int
handle_archive(struct worker *w, const struct ipc_in *in)
{
	struct ipc_archive_rep rep;
	int rc;

	if (in->body->type != MSGPACK_OBJECT_NIL) {
		srv_error(w->r, EF_S_BAD_REQUEST, "archive: body must be nil");
		return SRV_DONE;
	}
	if ((rc = archiver_step(w->sd, &rep)) != 0) {
		srv_error(w->r,
		    rc == -ECANCELED ? EF_S_UNAVAILABLE : EF_S_INTERNAL,
		    "archive: %s",
		    rc == -ECANCELED ? "stored is shutting down" :
		                       strerror(-rc));
		return SRV_DONE;
	}
	ipc_out_reset(w->out);
	ipc_reply_begin(w->out, EF_S_OK, "ok");
	ipc_archive_rep_encode(w->out, &rep);
	return SRV_DONE;
}

/*
 * BACKUP runs on a thread of its own (backup.c): it takes as long as
 * copying the log takes, and must hold neither an nng callback thread
 * nor the writer. The thread sends the reply itself, like the writer
 * does for appends; dispatch_stop() waits for it (it stops early once
 * `stopping` is set).
 */
static uint64_t backups; /* threads running; under backup_mu */
static pthread_mutex_t backup_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t backup_cv = PTHREAD_COND_INITIALIZER;

struct backup_arg {
	struct worker *w;
	char dir[IPC_MAX_STRLEN + 1];
};

static void *
backup_main(void *arg)
{
	struct backup_arg *ba = arg;
	struct worker *w = ba->w;
	struct ipc_backup_rep rep;
	char why[768];
	int rc, st;

	why[0] = '\0';
	rc = backup_run(w->sd, ba->dir, &rep, why, sizeof(why));
	ipc_out_reset(w->out);
	if (rc == 0) {
		ipc_reply_begin(w->out, EF_S_OK, "ok");
		ipc_backup_rep_encode(w->out, &rep);
	} else {
		switch (rc) {
		case -EINVAL:
		case -EEXIST:
		case -ENOENT:
		case -ENOTDIR:
		case -EACCES:
		case -EROFS:
			st = EF_S_INVALID;
			break;
		case -EBUSY:
			st = EF_S_ABORTED;
			break;
		case -ECANCELED:
			st = EF_S_UNAVAILABLE;
			break;
		default:
			st = EF_S_INTERNAL;
		}
		srv_error(w->r, st, "backup: %s", why);
	}
	free(ba);
	srv_reply(w->r);
	pthread_mutex_lock(&backup_mu);
	backups--;
	pthread_cond_broadcast(&backup_cv);
	pthread_mutex_unlock(&backup_mu);
	return NULL;
}

static int
handle_backup(struct worker *w, const struct ipc_in *in)
{
	struct ipc_backup_req r;
	struct backup_arg *ba;
	pthread_attr_t attr;
	pthread_t thr;
	const char *why = "";
	int rc;

	if (ipc_backup_req_decode(in->body, &r, &why) != 0) {
		srv_error(w->r, EF_S_BAD_REQUEST, "backup: bad field: %s",
		    why);
		return SRV_DONE;
	}
	if (r.dir.len == 0 || memchr(r.dir.ptr, '\0', r.dir.len) != NULL) {
		srv_error(w->r, EF_S_INVALID,
		    "backup: the directory must be "
		    "a non-empty path");
		return SRV_DONE;
	}
	if ((ba = calloc(1, sizeof(*ba))) == NULL) {
		srv_error(w->r, EF_S_INTERNAL, "backup: out of memory");
		return SRV_DONE;
	}
	ba->w = w;
	memcpy(ba->dir, r.dir.ptr, r.dir.len);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&backup_mu);
	rc = pthread_create(&thr, &attr, backup_main, ba);
	if (rc == 0)
		backups++;
	pthread_mutex_unlock(&backup_mu);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(ba);
		srv_error(w->r, EF_S_INTERNAL, "backup: no thread: %s",
		    strerror(rc));
		return SRV_DONE;
	}
	return SRV_DEFERRED;
}

/* The server's handlers: each takes its context's worker. */
#define SRV_HANDLER(name)                                                     \
	static int name##_srv(struct srv_req *r, const struct ipc_in *in)     \
	{                                                                     \
		struct worker *w = srv_data(r);                               \
                                                                              \
		w->sd = srv_arg(r);                                           \
		w->r = r;                                                     \
		w->out = srv_out(r);                                          \
		return name(w, in);                                           \
	}
SRV_HANDLER(handle_append)
SRV_HANDLER(handle_append_many)
SRV_HANDLER(handle_import)
SRV_HANDLER(handle_rotate)
SRV_HANDLER(handle_backup)
SRV_HANDLER(handle_archive)
SRV_HANDLER(handle_segments)
SRV_HANDLER(handle_read_stream)
SRV_HANDLER(handle_read_all)
SRV_HANDLER(handle_list_streams)
SRV_HANDLER(handle_status)

static const struct srv_op handlers[] = {
	{ EF_OP_APPEND, handle_append_srv, WRITES },
	{ EF_OP_APPEND_MANY, handle_append_many_srv, WRITES },
	{ EF_OP_IMPORT, handle_import_srv, WRITES },
	{ EF_OP_ROTATE, handle_rotate_srv, WRITES },
	{ EF_OP_BACKUP, handle_backup_srv, WRITES },
	{ EF_OP_ARCHIVE, handle_archive_srv, 0 },
	{ EF_OP_SEGMENTS, handle_segments_srv, 0 },
	{ EF_OP_READ_STREAM, handle_read_stream_srv, 0 },
	{ EF_OP_READ_ALL, handle_read_all_srv, 0 },
	{ EF_OP_LIST_STREAMS, handle_list_streams_srv, 0 },
	{ EF_OP_STATUS, handle_status_srv, 0 },
};

/*
 * Once `stopping` is set (SIGTERM), what would write is refused; reads
 * go on until the server stops. What was queued before is committed and
 * answered: srv_stop waits for it.
 */
static int
admit(struct srv_req *r, const struct ipc_in *in, unsigned flags)
{
	struct stored *sd = srv_arg(r);

	(void)in;
	if ((flags & WRITES) &&
	    __atomic_load_n(&sd->stopping, __ATOMIC_SEQ_CST)) {
		srv_error(r, EF_S_UNAVAILABLE, "stored is shutting down");
		return 1;
	}
	return 0;
}

/* After each handler: the reply is encoded (copied), what reads pinned
 * goes. */
static void
after(void *arg)
{
	(void)arg;
	journal_unpin();
}

static void
worker_fini(void *data)
{
	struct worker *w = data;

	free(w->pos);
	free(w->loc);
	free(w->many);
}

int
dispatch_start(struct stored *sd, const char *url)
{
	struct srv_conf c = {
		.name = "eventfold-stored",
		.url = url,
		SRV_TABLE(handlers),
		.contexts = sd->conf.workers ? sd->conf.workers : 1,
		.admit = admit,
		.after = after,
		.data_size = sizeof(struct worker),
		.arg = sd,
	};

	return srv_start(&c, &server);
}

void
dispatch_stop(struct stored *sd)
{
	(void)sd;
	/* `stopping` is set: new appends are refused; the queued ones are
	 * committed and answered before the server stops (server.h) */
	srv_stop(server, worker_fini);
	server = NULL;
	/* a backup sees `stopping` and ends soon; its reply is sent */
	pthread_mutex_lock(&backup_mu);
	while (backups > 0)
		pthread_cond_wait(&backup_cv, &backup_mu);
	pthread_mutex_unlock(&backup_mu);
}
