/* SPDX-License-Identifier: MIT */
/*
 * import.c - `eventfoldctl import FILE|DIR`: events from our own export
 * (JSON lines, plain or zstd), from an EventfoldDB data file (format
 * 3, ../shared/formats/eventfolddb.md) or from an eventfold directory
 * (../shared/formats/eventfold-jsonl.md) into eventfold-stored, through
 * IMPORT (proto/IPC.md): whole batches of whole events, with their ids,
 * streams, versions and recorded_at.
 *
 * Positions: into an empty store (or one whose head is the source's
 * first position) the source's positions are kept. Into a store that
 * holds other events they are appended in order, and the mapping (a
 * constant offset) is reported. The choice is the same on a re-run: a
 * store whose event at the source's first position is the source's
 * first event is a kept-positions import being resumed.
 *
 * Re-runs: every IMPORT is committed whole or not at all, and stored
 * skips the events of an IMPORT that are already stored exactly as
 * given (a prefix of it), so after an interruption (even kill -9) the
 * same import run again skips what is there and nothing is imported
 * twice, however the batches fall.
 *
 * Bad input: a line that is not a whole event of our export, an
 * EventfoldDB batch whose CRC or record does not check: everything
 * before it is imported (whole batches), nothing after it, and the
 * error names the file and the line or byte offset. A torn last batch
 * of an EventfoldDB file (the file ends inside it) is what EventfoldDB's
 * own recovery cuts off: it is skipped with a warning.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "ctl.h"
#include "data.h"
#include "record.h"
#include "uuid5.h"

#define BATCH_EVENTS 4096       /* events per IMPORT from an export */
#define BATCH_BYTES  (4u << 20) /* and record bytes */
#define EFDB_HDR     8
#define EFDB_BHDR    16
#define EFDB_BFTR    8
#define EFDB_REC_MIN 74
#define EFDB_AHEAD   (32u << 20) /* bytes of the file mapped ahead */
/*
 * How long one IMPORT may take stored to answer (or --timeout-ms if
 * longer): a whole batch written, indexed and fsynced, on a disk or a
 * machine that may be busy. The request itself must still reach stored
 * within --timeout-ms, and a stored that died is noticed at once.
 */
#define IMPORT_WAIT_MS   120000
#define INFLIGHT_MAX     8 /* --in-flight bound */
#define INFLIGHT_DEFAULT 2

/* ---- the destination ---- */

struct importer {
	struct ctl *c;
	struct ef_client cl;
	const char *file;
	int quiet, decided, keep;
	uint64_t head0;     /* the store's head at start */
	uint64_t src_first; /* the source's first position */
	uint64_t dst_first; /* where it went */
	uint64_t imported, skipped, batches, bytes;
	struct progress pr;
	/*
	 * Several IMPORTs in flight (--in-flight N): batches are encoded
	 * into a ring of N + 1 buffers, the next one while up to N are
	 * with stored, sent by N sender threads; their outcomes are read
	 * in order. With N > 1 each IMPORT carries this run's random id
	 * and its seq (libcommon/ipc.h), and stored commits them in seq
	 * order whatever order they reach its writer in, several in one
	 * group commit when they wait together. The first goes alone, so
	 * that stored knows the run before the rest come. One that fails
	 * stops the import: stored refuses the ones after it (no gap in
	 * the log) and nothing more is sent.
	 */
	int inflight; /* N */
	int nslots;   /* N + 1 */
	uint64_t run; /* 0 when N is 1: the short IMPORT */
	struct slot {
		struct ipc_out o;
		char where[96]; /* the batch's source, for an error */
		int done;       /* the outcome below is in, unread */
		int st;         /* its status, and on success ... */
		struct ipc_import_rep ir; /* ... the reply */
		char msg[512];            /* stored's message on an error */
	} slots[INFLIGHT_MAX + 1];
	pthread_t thr[INFLIGHT_MAX];
	int nthr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t queued; /* seqs below were handed to the senders */
	uint64_t taken;  /* seqs below were taken by a sender */
	uint64_t seen;   /* seqs below had their outcome read */
	int stop;
	int rc; /* CTL_OK, or the first failure's exit code */
};

/* Keep positions? Decided once, from the first event (top comment). */
static int
decide(struct importer *im, const struct ef_event *first)
{
	struct client_reply cr;
	struct ipc_status_rep st;
	struct ipc_read_rep rr;
	struct ef_event ev;
	const char *why;
	int s;

	if ((s = client_status(&im->cl, &cr, &st)) != EF_S_OK) {
		s = ctl_status_exit(s, &cr.in.message);
		client_reply_free(&cr);
		return s;
	}
	client_reply_free(&cr);
	im->head0 = st.head;
	im->src_first = first->global_position;
	im->keep = st.head == first->global_position;
	if (!im->keep && st.head > first->global_position) {
		s = client_read_all(&im->cl, first->global_position, 1,
		    EF_FORWARD, &cr, &rr);
		if (s == EF_S_OK && rr.nevents == 1 &&
		    ipc_event_decode(&rr.events->via.array.ptr[0], &ev,
		        &why) == 0 &&
		    memcmp(ev.event_id, first->event_id, UUID_LEN) == 0)
			im->keep = 1; /* resuming a kept-positions import */
		client_reply_free(&cr);
	}
	im->decided = 1;
	return CTL_OK;
}

/* A sender thread: takes the IMPORTs in seq order, keeps each reply. */
static void *
sender_main(void *arg)
{
	struct importer *im = arg;
	struct client_reply cr;
	struct slot *sl;
	const char *why = "";
	int st;

	pthread_mutex_lock(&im->mu);
	for (;;) {
		while (im->taken == im->queued && !im->stop)
			pthread_cond_wait(&im->cv, &im->mu);
		if (im->taken == im->queued)
			break;
		sl = &im->slots[im->taken++ % (uint64_t)im->nslots];
		pthread_mutex_unlock(&im->mu);
		st = client_call_wait(&im->cl, &sl->o,
		    im->c->conf.timeout_ms > IMPORT_WAIT_MS ?
		        im->c->conf.timeout_ms :
		        IMPORT_WAIT_MS,
		    &cr);
		pthread_mutex_lock(&im->mu);
		sl->msg[0] = '\0';
		if (st != EF_S_OK)
			snprintf(sl->msg, sizeof(sl->msg), "%.*s",
			    (int)cr.in.message.len,
			    cr.in.message.ptr ? cr.in.message.ptr : "");
		else if (ipc_import_rep_decode(cr.in.body, &sl->ir, &why) !=
		    0) {
			st = -1;
			snprintf(sl->msg, sizeof(sl->msg), "%s", why);
		}
		client_reply_free(&cr);
		sl->st = st;
		sl->done = 1;
		pthread_cond_broadcast(&im->cv);
	}
	pthread_mutex_unlock(&im->mu);
	return NULL;
}

/*
 * With im->mu held: reads the outcomes that are in, in seq order: the
 * counts, progress, or the first error (printed; after it the rest are
 * stored's refusals of what followed, not printed). im->rc.
 */
static int
take_done(struct importer *im)
{
	struct slot *sl;
	int st;

	while (im->seen < im->queued &&
	    (sl = &im->slots[im->seen % (uint64_t)im->nslots])->done) {
		sl->done = 0;
		im->seen++;
		if (im->rc != CTL_OK)
			continue;
		st = sl->st;
		if (st == -1) {
			im->rc = ctl_err(CTL_INTERNAL, "malformed reply: %s",
			    sl->msg);
			continue;
		}
		if (st != EF_S_OK) {
			fflush(stdout);
			fprintf(stderr, "eventfoldctl: %s: %s: %s: %s\n",
			    im->file, sl->where, ipc_status_name(st), sl->msg);
			im->rc = st == EF_S_UNAVAILABLE ||
			        st == EF_S_DEADLINE ?
			    CTL_UNAVAILABLE :
			    st == EF_S_INTERNAL ? CTL_INTERNAL :
			                          CTL_REFUSED;
			continue;
		}
		if (im->batches++ == 0)
			im->dst_first = sl->ir.first_pos;
		im->imported += sl->ir.count;
		im->skipped += sl->ir.skipped;
		progress(&im->pr, im->imported + im->skipped, im->bytes, 0);
	}
	return im->rc;
}

/* With im->mu held: reads outcomes until fewer than limit are out. */
static int
wait_below(struct importer *im, uint64_t limit)
{
	for (;;) {
		(void)take_done(im);
		if (im->queued - im->seen < limit)
			return im->rc;
		pthread_cond_wait(&im->cv, &im->mu);
	}
}

/*
 * Waits for every IMPORT in flight and reads their outcomes. CTL_OK or
 * the exit code of the first that failed (printed).
 */
static int
import_wait(struct importer *im)
{
	int rc;

	pthread_mutex_lock(&im->mu);
	rc = wait_below(im, 1);
	pthread_mutex_unlock(&im->mu);
	return rc;
}

/*
 * Sends events[0..n-1] as one IMPORT: encoded now (the events may be
 * reused once this returns), sent once fewer than --in-flight are with
 * stored (the first alone). where names the source of the batch for
 * an error message. CTL_OK or an exit code (printed) if this or an
 * earlier batch failed; the outcome of the last ones comes from
 * import_wait().
 */
static int
send_batch(struct importer *im, const struct ef_event *evs, size_t n,
    const char *where)
{
	struct slot *sl;
	uint64_t seq;
	size_t i;
	int rc;

	if (n == 0)
		return CTL_OK;
	if (!im->decided && (rc = decide(im, &evs[0])) != CTL_OK)
		return rc;
	while (im->nthr < im->inflight) {
		if (pthread_create(&im->thr[im->nthr], NULL, sender_main,
		        im) != 0)
			return ctl_err(CTL_INTERNAL, "cannot start a thread");
		im->nthr++;
	}
	/* a free buffer: the oldest outcome read if all are in use */
	pthread_mutex_lock(&im->mu);
	rc = wait_below(im, (uint64_t)im->nslots);
	seq = im->queued;
	pthread_mutex_unlock(&im->mu);
	if (rc != CTL_OK)
		return rc;
	sl = &im->slots[seq % (uint64_t)im->nslots];
	ipc_out_reset(&sl->o);
	ipc_request_begin(&sl->o, EF_OP_IMPORT, client_request_id(&im->cl));
	ipc_import_req_begin(&sl->o, im->keep, (uint32_t)n, im->run);
	for (i = 0; i < n; i++)
		ipc_event_encode(&sl->o, &evs[i]);
	ipc_import_req_end(&sl->o, im->run, seq);
	snprintf(sl->where, sizeof(sl->where), "%s", where);
	pthread_mutex_lock(&im->mu);
	rc = wait_below(im, im->seen == 0 ? 1 : (uint64_t)im->inflight);
	if (rc == CTL_OK) {
		im->queued++;
		pthread_cond_broadcast(&im->cv);
	}
	pthread_mutex_unlock(&im->mu);
	return rc;
}

/* Sends the last batch before an error and waits for it. */
static int
send_final(struct importer *im, int rc)
{
	return rc != CTL_OK ? rc : import_wait(im);
}

/* ---- our own export: JSON lines, maybe zstd ---- */

/* Input, decompressed if it is zstd, handed out line by line. */
struct lines {
	int fd;
	ZSTD_DCtx *z;
	uint8_t *in;
	size_t in_len, in_pos, in_cap;
	char *buf;
	size_t len, pos, cap;
	uint64_t line, off; /* number and byte offset of the next line */
	int eof;
};

static int
lines_fill(struct lines *l)
{
	ssize_t r;

	if (l->pos > 0) {
		memmove(l->buf, l->buf + l->pos, l->len - l->pos);
		l->len -= l->pos;
		l->pos = 0;
	}
	if (l->cap - l->len < (1u << 20)) {
		l->cap = l->cap ? l->cap * 2 : 4u << 20;
		if ((l->buf = realloc(l->buf, l->cap)) == NULL)
			return -ENOMEM;
	}
	if (l->z == NULL) {
		r = read(l->fd, l->buf + l->len, l->cap - l->len);
		if (r < 0)
			return -errno;
		if (r == 0)
			l->eof = 1;
		l->len += (size_t)r;
		return 0;
	}
	for (;;) {
		ZSTD_outBuffer out = { l->buf, l->cap, l->len };
		ZSTD_inBuffer in;
		size_t zr;

		if (l->in_pos == l->in_len) {
			r = read(l->fd, l->in, l->in_cap);
			if (r < 0)
				return -errno;
			if (r == 0) {
				l->eof = 1;
				return 0;
			}
			l->in_len = (size_t)r;
			l->in_pos = 0;
		}
		in.src = l->in;
		in.size = l->in_len;
		in.pos = l->in_pos;
		zr = ZSTD_decompressStream(l->z, &out, &in);
		l->in_pos = in.pos;
		if (ZSTD_isError(zr))
			return -EBADMSG;
		if (out.pos > l->len) {
			l->len = out.pos;
			return 0;
		}
	}
}

/* The next line (without its \n) or NULL at the end; *torn if it had
 * no \n (the file ends inside it). */
static char *
lines_next(struct lines *l, size_t *len, int *torn, int *err)
{
	char *nl, *s;

	*torn = 0;
	for (;;) {
		nl = memchr(l->buf + l->pos, '\n', l->len - l->pos);
		if (nl != NULL || l->eof)
			break;
		if ((*err = lines_fill(l)) != 0)
			return NULL;
	}
	if (nl == NULL) {
		if (l->pos == l->len)
			return NULL;
		*torn = 1;
		nl = l->buf + l->len;
	}
	s = l->buf + l->pos;
	*len = (size_t)(nl - s);
	l->pos += *len + (*torn ? 0 : 1);
	return s;
}

/* Events of one batch parsed from lines: bytes in an arena (offsets). */
struct jbatch {
	struct ef_event *ev;
	size_t *off; /* 3 per event: type, metadata, payload */
	size_t n, cap;
	struct obuf arena;
	uint64_t first_line;
};

static size_t
arena_put(struct jbatch *b, const void *p, size_t n)
{
	size_t at = b->arena.len;

	obuf_grow(&b->arena, n + 1);
	memcpy(b->arena.p + at, p, n);
	b->arena.len += n;
	return at;
}

/* The next event of b (zeroed) and its three offsets; NULL if no memory. */
static struct ef_event *
jbatch_slot(struct jbatch *b, size_t **off)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 1024;
		b->ev = realloc(b->ev, b->cap * sizeof(*b->ev));
		b->off = realloc(b->off, b->cap * 3 * sizeof(*b->off));
		if (b->ev == NULL || b->off == NULL)
			return NULL;
	}
	*off = &b->off[b->n * 3];
	memset(&b->ev[b->n], 0, sizeof(b->ev[b->n]));
	return &b->ev[b->n];
}

static int
b64_decode(struct jbatch *b, const char *s, size_t n, size_t *at,
    uint32_t *len)
{
	int r;

	if (n % 4 != 0)
		return -1;
	*at = b->arena.len;
	obuf_grow(&b->arena, n / 4 * 3 + 1);
	r = EVP_DecodeBlock((unsigned char *)b->arena.p + *at,
	    (const unsigned char *)s, (int)n);
	if (r < 0)
		return -1;
	if (n >= 1 && s[n - 1] == '=')
		r--;
	if (n >= 2 && s[n - 2] == '=')
		r--;
	b->arena.len += (size_t)r;
	*len = (uint32_t)r;
	return 0;
}

/* The bytes of key in line object o (export.c's rule), into the arena. */
static const char *
line_bytes(struct jbatch *b, json_t *o, const char *key, size_t *at,
    uint32_t *len)
{
	char k[32];
	json_t *v, *j;

	snprintf(k, sizeof(k), "%s_base64", key);
	if ((v = json_object_get(o, k)) != NULL) {
		if (!json_is_string(v) ||
		    b64_decode(b, json_string_value(v), json_string_length(v),
		        at, len) != 0)
			return "bad base64";
		return NULL;
	}
	snprintf(k, sizeof(k), "%s_text", key);
	v = json_object_get(o, k);
	j = json_object_get(o, key);
	if (j == NULL)
		return "missing";
	if (v != NULL) {
		if (!json_is_string(v))
			return "not a string";
		*len = (uint32_t)json_string_length(v);
		*at = arena_put(b, json_string_value(v), *len);
		return NULL;
	}
	if (json_is_null(j)) {
		*at = b->arena.len;
		*len = 0;
		return NULL;
	}
	{
		char *d = json_dumps(j,
		    JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);

		if (d == NULL)
			return "cannot encode";
		*len = (uint32_t)strlen(d);
		*at = arena_put(b, d, *len);
		free(d);
	}
	return NULL;
}

static int
uuid_field(json_t *o, const char *key, uint8_t out[UUID_LEN])
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) &&
	        uuid_parse(json_string_value(v), json_string_length(v), out) ==
	            0 ?
	    0 :
	    -1;
}

static int
u64_field(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* One line into b; NULL or what is wrong with it. */
static const char *
parse_line(struct jbatch *b, const char *s, size_t len)
{
	struct ef_event *ev;
	json_error_t je;
	json_t *o, *t;
	const char *bad = NULL;
	static char msg[256];
	size_t *off;

	if ((ev = jbatch_slot(b, &off)) == NULL)
		return "out of memory";
	if ((o = json_loadb(s, len, 0, &je)) == NULL) {
		snprintf(msg, sizeof(msg), "invalid JSON at column %d: %s",
		    je.column, je.text);
		return msg;
	}
	t = json_object_get(o, "event_type");
	if (!json_is_object(o))
		bad = "not a JSON object";
	else if (u64_field(o, "global_position", &ev->global_position))
		bad = "global_position: not a position";
	else if (uuid_field(o, "stream_id", ev->stream_id))
		bad = "stream_id: not a UUID";
	else if (u64_field(o, "stream_version", &ev->stream_version))
		bad = "stream_version: not a version";
	else if (uuid_field(o, "event_id", ev->event_id))
		bad = "event_id: not a UUID";
	else if (!json_is_string(t) || json_string_length(t) < 1 ||
	    json_string_length(t) > RECORD_TYPE_MAX)
		bad = "event_type: not 1..256 bytes";
	else if (u64_field(o, "recorded_at", &ev->recorded_at))
		bad = "recorded_at: not a time in ms";
	if (bad == NULL) {
		ev->type_len = (uint32_t)json_string_length(t);
		off[0] = arena_put(b, json_string_value(t), ev->type_len);
		if ((bad = line_bytes(b, o, "metadata", &off[1],
		         &ev->metadata_len)) != NULL) {
			snprintf(msg, sizeof(msg), "metadata: %s", bad);
			bad = msg;
		} else if ((bad = line_bytes(b, o, "payload", &off[2],
		                &ev->payload_len)) != NULL) {
			snprintf(msg, sizeof(msg), "payload: %s", bad);
			bad = msg;
		}
	}
	json_decref(o);
	if (bad == NULL)
		b->n++;
	return bad;
}

/* Points the batch's events into its arena (it may have moved). */
static void
jbatch_fix(struct jbatch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		b->ev[i].type = b->arena.p + b->off[i * 3];
		b->ev[i].metadata = (const uint8_t *)b->arena.p +
		    b->off[i * 3 + 1];
		b->ev[i].payload = (const uint8_t *)b->arena.p +
		    b->off[i * 3 + 2];
	}
}

static int
jbatch_send(struct importer *im, struct jbatch *b, uint64_t last_line)
{
	char where[96];
	int rc;

	jbatch_fix(b);
	snprintf(where, sizeof(where), "lines %" PRIu64 "..%" PRIu64,
	    b->first_line, last_line);
	rc = send_batch(im, b->ev, b->n, where);
	b->n = 0;
	b->arena.len = 0;
	b->first_line = last_line + 1;
	return rc;
}

static int
import_jsonl(struct importer *im, int fd, int zstd)
{
	struct lines l;
	struct jbatch b;
	const char *bad;
	char *s;
	size_t len;
	int torn, err = 0, rc = CTL_OK;

	memset(&l, 0, sizeof(l));
	memset(&b, 0, sizeof(b));
	l.fd = fd;
	l.line = 1;
	b.first_line = 1;
	if (zstd) {
		l.z = ZSTD_createDCtx();
		l.in_cap = ZSTD_DStreamInSize();
		if (l.z == NULL || (l.in = malloc(l.in_cap)) == NULL) {
			rc = ctl_err(CTL_INTERNAL, "out of memory");
			goto out;
		}
	}
	for (;; l.line++) {
		s = lines_next(&l, &len, &torn, &err);
		if (s == NULL)
			break;
		im->bytes += len + 1;
		if (len == 0 && !torn) {
			l.off++;
			continue;
		}
		bad = parse_line(&b, s, len);
		if (bad != NULL) {
			/* what came before is whole: import it, then stop */
			if ((rc = send_final(im,
			         jbatch_send(im, &b, l.line - 1))) != CTL_OK)
				goto out;
			rc = ctl_err(CTL_CORRUPT,
			    "%s: line %" PRIu64 " (byte "
			    "offset %" PRIu64 "): %s%s; the %" PRIu64
			    " events "
			    "before it are imported, nothing after it",
			    im->file, l.line, l.off,
			    torn ? "the file ends inside it: " : "", bad,
			    im->imported + im->skipped);
			goto out;
		}
		l.off += len + 1;
		if (b.n >= BATCH_EVENTS || b.arena.len >= BATCH_BYTES)
			if ((rc = jbatch_send(im, &b, l.line)) != CTL_OK)
				goto out;
	}
	if (err != 0) {
		rc = ctl_err(CTL_CORRUPT, "%s: after line %" PRIu64 ": %s",
		    im->file, l.line - 1,
		    err == -EBADMSG ? "damaged zstd "
		                      "data" :
		                      strerror(-err));
		(void)send_final(im, jbatch_send(im, &b, l.line - 1));
		goto out;
	}
	if (l.z != NULL && l.in_pos < l.in_len) {
		rc = ctl_err(CTL_CORRUPT, "%s: data after the end", im->file);
		goto out;
	}
	rc = jbatch_send(im, &b, l.line - 1);
out:
	ZSTD_freeDCtx(l.z);
	free(l.in);
	free(l.buf);
	free(b.ev);
	free(b.off);
	free(b.arena.p);
	return rc;
}

/* ---- EventfoldDB data file, format 3 ---- */

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/*
 * One record at p (avail bytes) into ev (views into the file); its size,
 * or 0 with *why set.
 */
static size_t
efdb_record(const uint8_t *p, size_t avail, struct ef_event *ev,
    const char **why)
{
	uint32_t rest, t, m, pl;
	size_t size;
	const uint8_t *q;

	if (avail < 4 || (uint64_t)(rest = le32(p)) + 4 > avail) {
		*why = "record runs past the end of the batch";
		return 0;
	}
	size = (size_t)rest + 4;
	if (size < EFDB_REC_MIN || size > 65536) {
		*why = "impossible record length";
		return 0;
	}
	if (le32(p + size - 4) != ef_crc32(p + 4, size - 8)) {
		*why = "record CRC mismatch";
		return 0;
	}
	ev->global_position = le64(p + 4);
	ev->recorded_at = le64(p + 12);
	memcpy(ev->stream_id, p + 20, UUID_LEN);
	ev->stream_version = le64(p + 36);
	memcpy(ev->event_id, p + 44, UUID_LEN);
	t = (uint32_t)p[60] | (uint32_t)p[61] << 8;
	q = p + 62;
	if ((size_t)(q - p) + t + 4 > size - 4) {
		*why = "event type runs past the record";
		return 0;
	}
	ev->type = (const char *)q;
	ev->type_len = t;
	q += t;
	m = le32(q);
	q += 4;
	if ((size_t)(q - p) + m + 4 > size - 4) {
		*why = "metadata runs past the record";
		return 0;
	}
	ev->metadata = q;
	ev->metadata_len = m;
	q += m;
	pl = le32(q);
	q += 4;
	if ((size_t)(q - p) + pl != size - 4) {
		*why = "payload length does not match the record";
		return 0;
	}
	ev->payload = q;
	ev->payload_len = pl;
	return size;
}

/*
 * Whole EventfoldDB batches are gathered into one IMPORT up to
 * BATCH_EVENTS events or BATCH_BYTES (an EventfoldDB batch is one
 * client append, often a single event: one fdatasync each would cap the
 * import at the disk's sync rate). A group only ever holds batches that
 * were read and checked whole.
 */
static int
efdb_flush(struct importer *im, struct ef_event *evs, size_t *n,
    uint64_t first_off)
{
	char where[64];
	int rc;

	snprintf(where, sizeof(where), "batches from byte offset %" PRIu64,
	    first_off);
	rc = send_batch(im, evs, *n, where);
	*n = 0;
	return rc;
}

/* What efdb_batch() found. */
enum { EFDB_OK, EFDB_TORN, EFDB_BAD };

/*
 * The count records and the footer of the batch that starts at bstart,
 * read from *off (past its header) into evs. *expect_pos: the position
 * the first record must have (set from it when first). EFDB_OK with
 * *off past the footer; EFDB_TORN when the file ends inside the batch;
 * EFDB_BAD with *why, *off at the damage.
 */
static uint32_t
efdb_batch(const uint8_t *f, size_t size, uint64_t bstart, uint64_t *off,
    uint32_t count, struct ef_event *evs, int first, uint64_t *expect_pos,
    const char **why)
{
	uint32_t k;
	size_t rs;

	for (k = 0; k < count; k++) {
		if (size - *off >= 4 && le32(f + *off) > 65536) {
			*why = "impossible record length";
			return EFDB_BAD;
		}
		if (size - *off < 4 ||
		    (uint64_t)le32(f + *off) + 4 > size - *off)
			return EFDB_TORN; /* the file ends in this batch */
		if ((rs = efdb_record(f + *off, size - *off, &evs[k], why)) ==
		    0)
			return EFDB_BAD;
		if (first && k == 0)
			*expect_pos = evs[0].global_position;
		if (evs[k].global_position != *expect_pos + k) {
			*why = "positions are not contiguous";
			return EFDB_BAD;
		}
		*off += rs;
	}
	if (size - *off < EFDB_BFTR)
		return EFDB_TORN;
	if (memcmp(f + *off, "EFBF", 4) != 0) {
		*why = "no batch footer (EFBF)";
		return EFDB_BAD;
	}
	if (le32(f + *off + 4) != ef_crc32(f + bstart, *off - bstart)) {
		*why = "batch CRC mismatch";
		return EFDB_BAD;
	}
	return EFDB_OK;
}

/*
 * Maps the next EFDB_AHEAD bytes of the file f once off comes within
 * EFDB_AHEAD of *mapped: one madvise instead of a page fault every 64
 * KiB (reading a 280 MB file through its mapping took 0.23 CPU s here
 * with the faults, 0.17 s so; the faults were a fifth of eventfoldctl's
 * samples on an import).
 */
static void
efdb_ahead(const uint8_t *f, size_t size, uint64_t off, uint64_t *mapped)
{
	size_t len;

	if (*mapped >= size || off + EFDB_AHEAD <= *mapped)
		return;
	len = size - *mapped < EFDB_AHEAD ? size - *mapped : EFDB_AHEAD;
	(void)madvise((void *)(f + *mapped), len, MADV_POPULATE_READ);
	*mapped += len;
}

static int
import_efdb(struct importer *im, const uint8_t *f, size_t size)
{
	struct ef_event *evs = NULL;
	const char *why = NULL;
	uint64_t off = EFDB_HDR, bstart = EFDB_HDR, expect_pos = 0;
	uint64_t gstart = EFDB_HDR, gbytes = 0, mapped = 0;
	uint32_t count, k, version;
	size_t cap = 0, n = 0;
	int rc = CTL_OK, first = 1;

	version = le32(f + 4);
	if (version != 3) {
		return ctl_err(CTL_REFUSED,
		    "%s: EventfoldDB format version %u"
		    " (only 3 is read; EventfoldDB itself refuses %u)",
		    im->file, version, version);
	}
	while (off < size) {
		bstart = off;
		efdb_ahead(f, size, off, &mapped);
		if (size - off < EFDB_BHDR)
			goto torn;
		if (memcmp(f + off, "EFBB", 4) != 0) {
			why = "no batch header (EFBB)";
			goto bad;
		}
		count = le32(f + off + 4);
		if (count == 0 || count > IPC_MAX_EVENTS) {
			why = "impossible record count";
			goto bad;
		}
		if (n + count > cap) {
			cap = (n + count) * 2;
			if ((evs = realloc(evs, cap * sizeof(*evs))) == NULL)
				return ctl_err(CTL_INTERNAL, "out of memory");
		}
		off += EFDB_BHDR;
		if ((k = efdb_batch(f, size, bstart, &off, count, evs + n,
		         first, &expect_pos, &why)) == EFDB_TORN)
			goto torn;
		if (k == EFDB_BAD)
			goto bad;
		off += EFDB_BFTR;
		first = 0;
		expect_pos += count;
		n += count;
		gbytes += off - bstart;
		im->bytes = off;
		if ((n >= BATCH_EVENTS || gbytes >= BATCH_BYTES) &&
		    (rc = efdb_flush(im, evs, &n, gstart)) != CTL_OK)
			goto out;
		if (n == 0) {
			gstart = off;
			gbytes = 0;
		}
	}
	rc = efdb_flush(im, evs, &n, gstart);
	goto out;
torn:
	if ((rc = send_final(im, efdb_flush(im, evs, &n, gstart))) != CTL_OK)
		goto out;
	fprintf(stderr,
	    "eventfoldctl: %s: warning: the file ends inside the "
	    "batch at byte offset %" PRIu64 " (%" PRIu64 " bytes): a torn "
	    "last write, skipped as EventfoldDB's recovery would\n",
	    im->file, bstart, (uint64_t)(size - bstart));
	goto out;
bad:
	if ((rc = send_final(im, efdb_flush(im, evs, &n, gstart))) != CTL_OK)
		goto out;
	rc = ctl_err(CTL_CORRUPT,
	    "%s: byte offset %" PRIu64 " (batch at %" PRIu64
	    "): %s; the %" PRIu64 " events before it are imported, "
	    "nothing after it",
	    im->file, off, bstart, why, im->imported + im->skipped);
out:
	free(evs);
	return rc;
}

/* ---- an eventfold directory (../shared/formats/eventfold-jsonl.md) ---- */

/* A whole file into memory (decompressed if zst); NULL and errno. */
static char *
slurp(const char *path, int zst, size_t *len)
{
	struct lines l;
	int err = 0;

	memset(&l, 0, sizeof(l));
	if ((l.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	if (zst) {
		l.z = ZSTD_createDCtx();
		l.in_cap = ZSTD_DStreamInSize();
		if (l.z == NULL || (l.in = malloc(l.in_cap)) == NULL)
			err = -ENOMEM;
	}
	while (err == 0 && !l.eof)
		err = lines_fill(&l);
	if (err == 0 && l.z != NULL && l.in_pos < l.in_len)
		err = -EBADMSG;
	close(l.fd);
	ZSTD_freeDCtx(l.z);
	free(l.in);
	if (err != 0) {
		free(l.buf);
		errno = -err;
		return NULL;
	}
	*len = l.len;
	return l.buf ? l.buf : calloc(1, 1);
}

struct span {
	const char *p;
	size_t len;
};

/* The complete lines of buf; *torn set if it ends without \n. */
static struct span *
split_lines(const char *buf, size_t len, size_t *n, int *torn)
{
	struct span *v = NULL;
	size_t cap = 0, at = 0;
	const char *nl;

	*n = 0;
	*torn = 0;
	while (at < len) {
		if ((nl = memchr(buf + at, '\n', len - at)) == NULL) {
			*torn = 1;
			break;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((v = realloc(v, cap * sizeof(*v))) == NULL)
				return NULL;
		}
		v[*n].p = buf + at;
		v[(*n)++].len = (size_t)(nl - (buf + at));
		at = (size_t)(nl - buf) + 1;
	}
	if (v == NULL)
		v = calloc(1, sizeof(*v));
	return v;
}

/*
 * ev's event id: the line's "id" if it is a UUID (1), else a UUIDv5 of
 * the line's number k and its bytes (0), so that importing the same
 * directory again gives the same ids. -1: out of memory.
 */
static int
ef_event_id(struct ef_event *ev, json_t *id, const struct span *ln, uint64_t k)
{
	static const uint8_t ns[UUID_LEN] = { /* eventfoldctl import ids */
		0x3c, 0x0f, 0x6a, 0x52, 0x9d, 0x41, 0x4e, 0x7b, 0xa8, 0x2e,
		0x51, 0x6f, 0x0c, 0x93, 0xd4, 0x17
	};
	char name[32], *nm;
	int nl;

	if (json_is_string(id) &&
	    uuid_parse(json_string_value(id), json_string_length(id),
	        ev->event_id) == 0)
		return 1;
	nl = snprintf(name, sizeof(name), "%" PRIu64 ":", k);
	if ((nm = malloc((size_t)nl + ln->len)) == NULL)
		return -1;
	memcpy(nm, name, (size_t)nl);
	memcpy(nm + nl, ln->p, ln->len);
	uuid_v5(ns, nm, (size_t)nl + ln->len, ev->event_id);
	free(nm);
	return 0;
}

/* ev's metadata (at off[1] of b's arena): the keys of line o other than
 * type, data, ts and (when it was the event id) id. */
static void
ef_metadata(struct jbatch *b, struct ef_event *ev, size_t *off, json_t *o,
    int id_used)
{
	json_t *rest = json_object(), *v;
	const char *key;
	void *tmp;
	char *d;

	json_object_foreach_safe(o, tmp, key, v)
	{
		/* an id that is not a UUID is kept, in the metadata */
		if (strcmp(key, "type") && strcmp(key, "data") &&
		    strcmp(key, "ts") && (strcmp(key, "id") || !id_used))
			json_object_set(rest, key, v);
	}
	off[1] = b->arena.len;
	ev->metadata_len = 0;
	if (json_object_size(rest) > 0) {
		d = json_dumps(rest, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (d != NULL) {
			ev->metadata_len = (uint32_t)strlen(d);
			off[1] = arena_put(b, d, ev->metadata_len);
			free(d);
		}
	}
	json_decref(rest);
}

/*
 * One eventfold line as event number k of stream sid: type -> type,
 * data -> payload (compact JSON), ts -> recorded_at, id -> event id when
 * it is a UUID, else the UUIDv5 of "k:" + the line's bytes (so a re-run
 * derives the same ids); every other field (actor, meta, unknown ones)
 * -> metadata, a JSON object, empty when there is none.
 */
static const char *
ef_line(struct jbatch *b, const struct span *ln, const uint8_t sid[UUID_LEN],
    uint64_t k)
{
	struct ef_event *ev;
	json_error_t je;
	json_t *o, *t, *ts, *id;
	const char *bad = NULL;
	static char msg[256];
	size_t *off;
	char *d;
	int id_used;

	if ((ev = jbatch_slot(b, &off)) == NULL)
		return "out of memory";
	if ((o = json_loadb(ln->p, ln->len, 0, &je)) == NULL) {
		snprintf(msg, sizeof(msg), "invalid JSON at column %d: %s",
		    je.column, je.text);
		return msg;
	}
	t = json_object_get(o, "type");
	ts = json_object_get(o, "ts");
	id = json_object_get(o, "id");
	if (!json_is_object(o))
		bad = "not a JSON object";
	else if (!json_is_string(t) || json_string_length(t) < 1 ||
	    json_string_length(t) > RECORD_TYPE_MAX)
		bad = "type: not 1..256 bytes";
	else if (!json_is_integer(ts) || json_integer_value(ts) < 0)
		bad = "ts: not a time in ms";
	else if (json_object_get(o, "data") == NULL)
		bad = "no data";
	if (bad != NULL) {
		json_decref(o);
		return bad;
	}
	memcpy(ev->stream_id, sid, UUID_LEN);
	ev->stream_version = k;
	ev->global_position = k;
	ev->recorded_at = (uint64_t)json_integer_value(ts);
	if ((id_used = ef_event_id(ev, id, ln, k)) < 0) {
		json_decref(o);
		return "out of memory";
	}
	ev->type_len = (uint32_t)json_string_length(t);
	off[0] = arena_put(b, json_string_value(t), ev->type_len);
	d = json_dumps(json_object_get(o, "data"),
	    JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	if (d == NULL) {
		json_decref(o);
		return "data: cannot encode";
	}
	ev->payload_len = (uint32_t)strlen(d);
	off[2] = arena_put(b, d, ev->payload_len);
	free(d);
	ef_metadata(b, ev, off, o, id_used);
	json_decref(o);
	b->n++;
	return NULL;
}

/*
 * A rotation cut by a crash: the archive's last lines (al, na of them)
 * again at the start of app.jsonl (pl, np), byte for byte. The length
 * of the longest such run, kept once.
 */
static size_t
rotation_overlap(const struct span *al, size_t na, const struct span *pl,
    size_t np)
{
	size_t i, k;

	for (k = na < np ? na : np; k > 0; k--) {
		for (i = 0; i < k; i++)
			if (al[na - k + i].len != pl[i].len ||
			    memcmp(al[na - k + i].p, pl[i].p, pl[i].len) != 0)
				break;
		if (i == k)
			return k;
	}
	return 0;
}

/*
 * Sends the lines of dir's archive (al, na) then of its app.jsonl (pl,
 * np, the first dup of them skipped) to stream sid, in batches b.
 */
static int
efdir_send(struct importer *im, const char *dir, const uint8_t sid[UUID_LEN],
    const struct span *al, size_t na, const struct span *pl, size_t np,
    size_t dup, struct jbatch *b)
{
	const char *bad;
	uint64_t ord = 0;
	size_t i;
	int rc;

	b->first_line = 1;
	for (i = 0; i < na + np; i++) {
		const struct span *ln = i < na ? &al[i] : &pl[i - na];

		if (i >= na && i - na < dup)
			continue;
		im->bytes += ln->len + 1;
		if ((bad = ef_line(b, ln, sid, ord)) != NULL) {
			if ((rc = send_final(im, jbatch_send(im, b, i))) !=
			    CTL_OK)
				return rc;
			return ctl_err(CTL_CORRUPT,
			    "%s/%s: line %zu: %s; the %" PRIu64
			    " events before it are imported, nothing "
			    "after it",
			    dir, i < na ? "archive.jsonl.zst" : "app.jsonl",
			    i < na ? i + 1 : i - na + 1, bad,
			    im->imported + im->skipped);
		}
		ord++;
		if (b->n >= BATCH_EVENTS || b->arena.len >= BATCH_BYTES)
			if ((rc = jbatch_send(im, b, i + 1)) != CTL_OK)
				return rc;
	}
	return jbatch_send(im, b, na + np);
}

static int
import_efdir(struct importer *im, const char *dir, const uint8_t sid[UUID_LEN])
{
	char path[4200];
	char *arc = NULL, *app = NULL;
	size_t alen = 0, plen = 0, na = 0, np = 0, dup = 0;
	struct span *al = NULL, *pl = NULL;
	struct jbatch b;
	int torn_a = 0, torn_p = 0, rc = CTL_OK;

	memset(&b, 0, sizeof(b));
	snprintf(path, sizeof(path), "%s/archive.jsonl.zst", dir);
	if ((arc = slurp(path, 1, &alen)) == NULL && errno != ENOENT) {
		rc = ctl_err(CTL_CORRUPT, "%s: %s", path,
		    errno == EBADMSG ? "damaged zstd data" : strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/app.jsonl", dir);
	if ((app = slurp(path, 0, &plen)) == NULL && errno != ENOENT) {
		rc = ctl_err(CTL_CORRUPT, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (arc == NULL && app == NULL) {
		rc = ctl_err(CTL_REFUSED,
		    "%s: neither archive.jsonl.zst nor "
		    "app.jsonl (not an eventfold directory)",
		    dir);
		goto out;
	}
	if ((arc && (al = split_lines(arc, alen, &na, &torn_a)) == NULL) ||
	    (app && (pl = split_lines(app, plen, &np, &torn_p)) == NULL)) {
		rc = ctl_err(CTL_INTERNAL, "out of memory");
		goto out;
	}
	if (torn_a) {
		rc = ctl_err(CTL_CORRUPT,
		    "%s/archive.jsonl.zst: its last "
		    "line has no newline (a damaged archive)",
		    dir);
		goto out;
	}
	dup = rotation_overlap(al, na, pl, np);
	if (dup > 0 && !im->quiet)
		fprintf(stderr,
		    "eventfoldctl: %s: the first %zu lines of "
		    "app.jsonl repeat the end of the archive (a rotation cut "
		    "short); imported once\n",
		    dir, dup);
	if (torn_p && !im->quiet)
		fprintf(stderr,
		    "eventfoldctl: %s/app.jsonl: its last line has "
		    "no newline (a torn write): skipped\n",
		    dir);
	rc = efdir_send(im, dir, sid, al, na, pl, np, dup, &b);
out:
	free(arc);
	free(app);
	free(al);
	free(pl);
	free(b.ev);
	free(b.off);
	free(b.arena.p);
	return rc;
}

/* ---- the verb ---- */

/* --in-flight's value v into im. */
static int
import_inflight(struct importer *im, const char *v)
{
	char *end;
	long k;

	errno = 0;
	k = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || k < 1 ||
	    k > INFLIGHT_MAX)
		return ctl_err(CTL_USAGE,
		    "--in-flight: \"%s\" "
		    "is not a number of requests from 1 to %d",
		    v, INFLIGHT_MAX);
	im->inflight = (int)k;
	return CTL_OK;
}

/* import's arguments: the file into *file, a stream id into sid
 * (*has_sid), the options into im. */
static int
import_args(struct importer *im, int argc, char **argv, const char **file,
    uint8_t sid[UUID_LEN], int *has_sid)
{
	int i, rc;

	for (i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
			im->quiet = 1;
		else if (!strcmp(argv[i], "--stream") && v != NULL) {
			if (uuid_parse(v, strlen(v), sid) != 0)
				return ctl_err(CTL_USAGE,
				    "--stream: malformed "
				    "stream id \"%s\"",
				    v);
			*has_sid = 1;
			i++;
		} else if (!strcmp(argv[i], "--stream-name") && v != NULL) {
			/* eventfold-es's stream id of that name */
			uuid_v5(uuid_ns_stream, v, strlen(v), sid);
			*has_sid = 1;
			i++;
		} else if (!strcmp(argv[i], "--in-flight") && v != NULL) {
			if ((rc = import_inflight(im, v)) != CTL_OK)
				return rc;
			i++;
		} else if (argv[i][0] != '-' && *file == NULL)
			*file = argv[i];
		else
			return ctl_usage("import");
	}
	return CTL_OK;
}

/*
 * Imports the open file fd (sb its stat, head its first got bytes) by
 * its format: an eventfold directory into stream sid, an export (plain
 * or zstd), or an EventfoldDB data file (mapped into *map).
 */
static int
import_format(struct importer *im, int fd, const struct stat *sb,
    const uint8_t *head, ssize_t got, const uint8_t sid[UUID_LEN],
    const uint8_t **map)
{
	if (S_ISDIR(sb->st_mode))
		return import_efdir(im, im->file, sid);
	if (got >= 4 && le32(head) == 0xFD2FB528u)
		return import_jsonl(im, fd, 1);
	if (got >= 8 && memcmp(head, "EFDB", 4) == 0) {
		*map = mmap(NULL, (size_t)sb->st_size, PROT_READ, MAP_PRIVATE,
		    fd, 0);
		if (*map == MAP_FAILED) {
			*map = NULL;
			return ctl_err(CTL_INTERNAL, "%s: mmap: %s", im->file,
			    strerror(errno));
		}
		(void)madvise((void *)*map, (size_t)sb->st_size,
		    MADV_SEQUENTIAL);
		return import_efdb(im, *map, (size_t)sb->st_size);
	}
	if (got >= 1 && head[0] == '{')
		return import_jsonl(im, fd, 0);
	if (got == 0)
		return ctl_err(CTL_REFUSED, "%s: empty file", im->file);
	return ctl_err(CTL_REFUSED,
	    "%s: unknown format (not an "
	    "eventfoldctl export, plain or zstd, nor an EventfoldDB "
	    "data file)",
	    im->file);
}

/* Waits for the last batch, stops the senders, says what was done. rc:
 * how the import went so far; returns the outcome. */
static int
import_finish(struct importer *im, int rc)
{
	int i;

	/* the last batch's outcome, whatever stopped the import */
	if (rc == CTL_OK)
		rc = import_wait(im);
	else
		(void)import_wait(im);
	pthread_mutex_lock(&im->mu);
	im->stop = 1;
	pthread_cond_broadcast(&im->cv);
	pthread_mutex_unlock(&im->mu);
	for (i = 0; i < im->nthr; i++)
		pthread_join(im->thr[i], NULL);
	progress(&im->pr, im->imported + im->skipped, im->bytes, 1);
	if (im->batches > 0 && !im->quiet) {
		printf("imported %" PRIu64 " events from %s (%" PRIu64
		       " already there, skipped)",
		    im->imported, im->file, im->skipped);
		if (im->keep)
			printf("; positions kept\n");
		else
			printf("; source positions from %" PRIu64
			       " are at %" PRIu64 " here (offset %+" PRId64
			       ")\n",
			    im->src_first, im->dst_first,
			    (int64_t)(im->dst_first - im->src_first));
	}
	for (i = 0; i < im->nslots; i++)
		ipc_out_free(&im->slots[i].o);
	pthread_mutex_destroy(&im->mu);
	pthread_cond_destroy(&im->cv);
	client_close(&im->cl);
	return rc;
}

int
cmd_import(struct ctl *c, int argc, char **argv)
{
	struct importer im;
	struct stat sb;
	uint8_t head[8];
	const uint8_t *map = NULL;
	const char *file = NULL;
	uint8_t sid[UUID_LEN];
	ssize_t got;
	int i, fd = -1, rc, has_sid = 0;

	memset(&im, 0, sizeof(im));
	if ((rc = import_args(&im, argc, argv, &file, sid, &has_sid)) !=
	    CTL_OK)
		return rc;
	if (im.inflight == 0)
		im.inflight = INFLIGHT_DEFAULT;
	im.nslots = im.inflight + 1;
	/* a run id for ordered IMPORTs: random, never 0 */
	while (im.inflight > 1 && im.run == 0)
		if (getrandom(&im.run, sizeof(im.run), 0) !=
		    (ssize_t)sizeof(im.run))
			return ctl_err(CTL_INTERNAL, "getrandom: %s",
			    strerror(errno));
	if (file == NULL)
		return ctl_usage("import");
	im.c = c;
	im.file = file;
	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &sb) != 0) {
		rc = ctl_err(CTL_NOT_FOUND, "%s: %s", file, strerror(errno));
		goto out;
	}
	if (S_ISDIR(sb.st_mode) && !has_sid) {
		rc = ctl_err(CTL_USAGE,
		    "%s: an eventfold directory: its events "
		    "go to one stream: give --stream UUID or --stream-name "
		    "NAME",
		    file);
		goto out;
	}
	got = S_ISDIR(sb.st_mode) ? 0 : pread(fd, head, sizeof(head), 0);
	if ((rc = ctl_open(c, CTL_STORED, &im.cl, 0)) != 0)
		goto out;
	for (i = 0; i < im.nslots; i++)
		ipc_out_init(&im.slots[i].o);
	pthread_mutex_init(&im.mu, NULL);
	pthread_cond_init(&im.cv, NULL);
	progress_init(&im.pr, "import", im.quiet);
	rc = import_finish(&im,
	    import_format(&im, fd, &sb, head, got, sid, &map));
out:
	if (map != NULL)
		munmap((void *)map, (size_t)sb.st_size);
	if (fd >= 0)
		close(fd);
	return rc;
}
