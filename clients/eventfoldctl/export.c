/* SPDX-License-Identifier: MIT */
/*
 * export.c - `eventfoldctl export`: the log (or one stream) as JSON
 * lines, plain or zstd-compressed, from a consistent snapshot.
 *
 * Snapshot: the log only grows, so the head that the first read answers
 * with bounds the export; events appended meanwhile are left out, and
 * --to (exclusive) can bound it lower, e.g. at a backup's position.
 *
 * One object per line, keys in this order:
 *   global_position, stream_id, stream_version, event_id, event_type,
 *   recorded_at, then metadata and payload, each as one of
 *     "K": JSON      the bytes are exactly this JSON, compactly encoded
 *                    (jansson, JSON_COMPACT | JSON_PRESERVE_ORDER);
 *                    "K": null means no bytes at all
 *     "K": JSON, "K_text": "..."
 *                    valid JSON written differently (spaces, key
 *                    order, escapes, or the text `null`): the JSON for
 *                    tools, and the exact bytes as a string
 *     "K_base64": "..."  anything else
 * That is `read --json`'s rule (JSON embedded, else base64) plus the
 * exact bytes where re-encoding would change them, so an import gives
 * back byte-identical events (import.c), and export -> import -> export
 * gives identical bytes.
 *
 * Speed: lines are built by hand into one buffer (jansson only parses
 * and re-encodes payloads), and the next page is read while this one is
 * written (a reader thread, which also decodes each READ reply in place:
 * readrep.c), so the store's reads and our formatting overlap; the
 * output file is written with O_DIRECT by a writer thread, lines
 * formatted straight into its blocks (dwrite.c, sink_line), or where
 * the file system refuses that, written back as it grows
 * (sink_writeback).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "ctl.h"
#include "data.h"
#include "dwrite.h"
#include "jsonplain.h"
#include "readrep.h"

#define OUT_FLUSH   (1u << 20)
#define PAGE_EVENTS 65536 /* asked for; stored caps it (max_read_count) */

/* ---- building lines ---- */

void
obuf_grow(struct obuf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 1 << 16;
	char *p;

	while (cap < b->len + more)
		cap *= 2;
	if (cap == b->cap)
		return;
	if ((p = realloc(b->p, cap)) == NULL) {
		fprintf(stderr, "eventfoldctl: out of memory\n");
		exit(CTL_INTERNAL);
	}
	b->p = p;
	b->cap = cap;
}

static inline void
obuf_put(struct obuf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n)
		obuf_grow(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

#define OBUF_LIT(b, s) obuf_put((b), (s), sizeof(s) - 1)

/* "00" .. "99": two digits at a time */
static const char digits2[] = "00010203040506070809"
                              "10111213141516171819"
                              "20212223242526272829"
                              "30313233343536373839"
                              "40414243444546474849"
                              "50515253545556575859"
                              "60616263646566676869"
                              "70717273747576777879"
                              "80818283848586878889"
                              "90919293949596979899";

/* v in decimal, as "%" PRIu64 writes it, straight into b. */
static inline void
obuf_u64(struct obuf *b, uint64_t v)
{
	static const uint64_t pow10[19] = { 10ull, 100ull, 1000ull, 10000ull,
		100000ull, 1000000ull, 10000000ull, 100000000ull,
		1000000000ull, 10000000000ull, 100000000000ull,
		1000000000000ull, 10000000000000ull, 100000000000000ull,
		1000000000000000ull, 10000000000000000ull,
		100000000000000000ull, 1000000000000000000ull,
		10000000000000000000ull };
	size_t n = 1;
	char *o;

	while (n < 20 && v >= pow10[n - 1])
		n++;
	if (b->cap - b->len < n)
		obuf_grow(b, n);
	o = b->p + b->len + n;
	b->len += n;
	while (v >= 100) {
		o -= 2;
		memcpy(o, digits2 + 2 * (v % 100), 2);
		v /= 100;
	}
	if (v >= 10)
		memcpy(o - 2, digits2 + 2 * v, 2);
	else
		o[-1] = (char)('0' + v);
}

/* "uuid", as uuid_format() writes it, straight into b. */
static inline void
obuf_uuid(struct obuf *b, const uint8_t u[UUID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	static const uint8_t at[UUID_LEN] = { 1, 3, 5, 7, 10, 12, 15, 17, 20,
		22, 25, 27, 29, 31, 33, 35 }; /* where byte i's digits go */
	char *o;
	int i;

	if (b->cap - b->len < 38)
		obuf_grow(b, 38);
	o = b->p + b->len;
	o[0] = '"';
	o[9] = o[14] = o[19] = o[24] = '-';
	o[37] = '"';
	for (i = 0; i < UUID_LEN; i++) {
		o[at[i]] = hex[u[i] >> 4];
		o[at[i] + 1] = hex[u[i] & 15];
	}
	b->len += 38;
}

/*
 * A JSON string of n bytes of UTF-8 (event types are checked UTF-8 by
 * stored; the *_text fields hold bytes jansson accepted as JSON, so
 * UTF-8 too). Written by hand, as jansson would escape it, because it
 * runs for every event.
 */
static void
obuf_jstr(struct obuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;
	char *o;

	obuf_grow(b, n * 6 + 2);
	o = b->p + b->len;
	*o++ = '"';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20) {
			*o++ = '\\';
			switch (c) {
			case '\n':
				*o++ = 'n';
				break;
			case '\r':
				*o++ = 'r';
				break;
			case '\t':
				*o++ = 't';
				break;
			case '\b':
				*o++ = 'b';
				break;
			case '\f':
				*o++ = 'f';
				break;
			default:
				*o++ = 'u';
				*o++ = '0';
				*o++ = '0';
				*o++ = hex[c >> 4];
				*o++ = hex[c & 15];
			}
		} else
			*o++ = (char)c;
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
}

static int
dump_cb(const char *buf, size_t size, void *data)
{
	obuf_put(data, buf, size);
	return 0;
}

/* ,"key":... for metadata or payload (the rule at the top). */
static void
put_bytes(struct obuf *b, const char *key, const uint8_t *p, size_t n)
{
	size_t klen = strlen(key), at;
	json_t *v;
	int is_null;

	obuf_put(b, ",\"", 2);
	obuf_put(b, key, klen);
	if (n == 0) {
		OBUF_LIT(b, "\":null");
		return;
	}
	if (json_plain(p, n)) {
		obuf_put(b, "\":", 2);
		obuf_put(b, p, n);
		return;
	}
	v = json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL,
	    NULL);
	if (v == NULL) {
		obuf_put(b, "_base64\":\"", 10);
		obuf_grow(b, 4 * ((n + 2) / 3) + 2);
		b->len += (size_t)EVP_EncodeBlock((unsigned char *)b->p +
		        b->len,
		    p, (int)n);
		obuf_put(b, "\"", 1);
		return;
	}
	obuf_put(b, "\":", 2);
	at = b->len;
	json_dump_callback(v, dump_cb, b,
	    JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	/* null alone stands for no bytes: the text "null" needs _text */
	is_null = json_is_null(v);
	json_decref(v);
	if (is_null || b->len - at != n || memcmp(b->p + at, p, n) != 0) {
		obuf_put(b, ",\"", 2);
		obuf_put(b, key, klen);
		obuf_put(b, "_text\":", 7);
		obuf_jstr(b, (const char *)p, n);
	}
}

void
export_line(struct obuf *b, const struct ef_event *ev)
{
	OBUF_LIT(b, "{\"global_position\":");
	obuf_u64(b, ev->global_position);
	OBUF_LIT(b, ",\"stream_id\":");
	obuf_uuid(b, ev->stream_id);
	OBUF_LIT(b, ",\"stream_version\":");
	obuf_u64(b, ev->stream_version);
	OBUF_LIT(b, ",\"event_id\":");
	obuf_uuid(b, ev->event_id);
	OBUF_LIT(b, ",\"event_type\":");
	obuf_jstr(b, ev->type, ev->type_len);
	OBUF_LIT(b, ",\"recorded_at\":");
	obuf_u64(b, ev->recorded_at);
	put_bytes(b, "metadata", ev->metadata, ev->metadata_len);
	put_bytes(b, "payload", ev->payload, ev->payload_len);
	OBUF_LIT(b, "}\n");
}

/* ---- where lines go: a file or stdout, plain or zstd ---- */

struct sink {
	int fd;
	ZSTD_CCtx *z;
	char *zbuf;
	size_t zcap;
	uint64_t bytes;    /* written to fd */
	struct dwrite *dw; /* fd written with O_DIRECT (dwrite.c) */
	int regular;       /* fd is a regular file: write it back as we go */
	uint64_t started;  /* writeback started below this offset ... */
	uint64_t dropped;  /* ... and done, pages dropped, below this one */
};

/*
 * The output file (FILE.partial, ours) is written back while the export runs,
 * not all at the fsync that ends it, and its pages leave the page cache once
 * on disk: every WRITEBACK bytes, writeback of what is new starts
 * (sync_file_range, asynchronous) and the chunk before it, whose
 * writeback has had a chunk's time to finish, is waited for and
 * dropped (POSIX_FADV_DONTNEED). Why: the final fsync of a 400 MB
 * export took a quarter of its time, and an export of a large log
 * would otherwise push the store's own pages out of the cache with
 * ones nobody reads again; reused page-cache pages are also cheaper to
 * write into than fresh ones on a VM. Best effort: a failure here
 * leaves the work to the fsync at the end, which reports errors.
 */
#define WRITEBACK (8u << 20)

static void
sink_writeback(struct sink *s)
{
	if (!s->regular || s->bytes - s->started < WRITEBACK)
		return;
	if (s->started > s->dropped &&
	    sync_file_range(s->fd, (off_t)s->dropped,
	        (off_t)(s->started - s->dropped),
	        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
	            SYNC_FILE_RANGE_WAIT_AFTER) == 0) {
		(void)posix_fadvise(s->fd, (off_t)s->dropped,
		    (off_t)(s->started - s->dropped), POSIX_FADV_DONTNEED);
		s->dropped = s->started;
	}
	if (sync_file_range(s->fd, (off_t)s->started,
	        (off_t)(s->bytes - s->started), SYNC_FILE_RANGE_WRITE) == 0)
		s->started = s->bytes;
	else
		s->regular = 0;
}

static int
write_all(struct sink *s, const char *p, size_t n)
{
	ssize_t w;
	int rc;

	if (s->dw != NULL) {
		if ((rc = dwrite_put(s->dw, p, n)) == 0)
			s->bytes += n;
		return rc;
	}
	while (n > 0) {
		if ((w = write(s->fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		s->bytes += (uint64_t)w;
	}
	sink_writeback(s);
	return 0;
}

/* Writes (compresses) b's bytes and empties it; end finishes a frame. */
static int
sink_put(struct sink *s, struct obuf *b, int end)
{
	ZSTD_inBuffer in = { b->p, b->len, 0 };
	ZSTD_outBuffer out;
	size_t left;
	int rc = 0;

	if (s->z == NULL) {
		rc = write_all(s, b->p, b->len);
		b->len = 0;
		return rc;
	}
	do {
		out.dst = s->zbuf;
		out.size = s->zcap;
		out.pos = 0;
		left = ZSTD_compressStream2(s->z, &out, &in,
		    end ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(left))
			return -EIO;
		if ((rc = write_all(s, s->zbuf, out.pos)) != 0)
			return rc;
	} while (end ? left != 0 : in.pos < in.size);
	b->len = 0;
	return 0;
}

/*
 * The most bytes ev's line can take: its fixed part, the type escaped
 * (6 bytes a byte at worst), and metadata and payload each as re-encoded
 * JSON (jansson may write a 3-byte real such as 1e5 in up to 25 bytes)
 * followed by its _text, or as base64.
 */
static size_t
line_bound(const struct ef_event *ev)
{
	return 1024 + 6 * (size_t)ev->type_len +
	    16 * ((size_t)ev->metadata_len + ev->payload_len);
}

/*
 * Adds ev's line. Plain output to a direct writer is formatted in place,
 * in the writer's block (no copy), when the line is sure to fit there;
 * everything else goes through b, written or compressed once it passes
 * OUT_FLUSH. 0 or a negative errno.
 */
static int
sink_line(struct sink *s, struct obuf *b, const struct ef_event *ev)
{
	struct obuf in;
	size_t len;

	if (s->dw != NULL && s->z == NULL) {
		in.p = dwrite_block(s->dw, &len, &in.cap);
		in.len = len;
		if (in.cap - len < line_bound(ev)) {
			export_line(b, ev);
			return sink_put(s, b, 0);
		}
		export_line(&in, ev); /* never grows it: it fits */
		s->bytes += in.len - len;
		return dwrite_fill(s->dw, in.len);
	}
	export_line(b, ev);
	return b->len >= OUT_FLUSH ? sink_put(s, b, 0) : 0;
}

/* ---- reading pages ahead ---- */

struct page {
	struct client_reply rep;
	struct ef_event *ev; /* views into rep.msg */
	uint64_t n, head;
	int st;
	char why[96];
};

static void
page_free(struct page *pg)
{
	client_reply_free(&pg->rep);
	free(pg->ev);
	pg->ev = NULL;
}

struct reader {
	struct ef_client cl;
	const char *stream; /* NULL: the whole log */
	uint64_t from;      /* next position (or stream version) */
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct page pg;
	int full, want, busy, stop;
};

/* One READ call, its reply decoded into pg (see read_reply_decode). */
static void
reader_fetch(struct reader *r, struct page *pg)
{
	struct ipc_out o;
	const char *why = "";
	int rc;

	memset(pg, 0, sizeof(*pg));
	client_read_request(&r->cl, &o, r->stream, r->from, PAGE_EVENTS,
	    EF_FORWARD);
	pg->st = client_call_raw(&r->cl, &o, &pg->rep);
	ipc_out_free(&o);
	if (pg->st != EF_S_OK)
		return;
	rc = readrep_decode(nng_msg_body(pg->rep.msg),
	    nng_msg_len(pg->rep.msg), &pg->ev, &pg->n, &pg->head, &why);
	if (rc == 0)
		return;
	if (rc < 0)
		snprintf(pg->why, sizeof(pg->why), "malformed read reply: %s",
		    why);
	else {
		/* not OK (or not a reply): the usual decoding says which */
		if (ipc_reply_open(&pg->rep.in, nng_msg_body(pg->rep.msg),
		        nng_msg_len(pg->rep.msg), &why) == 0 &&
		    pg->rep.in.status != EF_S_OK) {
			pg->st = pg->rep.in.status;
			return;
		}
		snprintf(pg->why, sizeof(pg->why), "malformed reply: %s", why);
	}
	pg->st = EF_S_INTERNAL;
	pg->rep.in.message.ptr = pg->why;
	pg->rep.in.message.len = (uint32_t)strlen(pg->why);
}

/* The position (version) after the last event of a page. */
static uint64_t
page_next(const struct reader *r, const struct page *pg, uint64_t cur)
{
	const struct ef_event *ev;

	if (pg->st != EF_S_OK || pg->n == 0)
		return cur;
	ev = &pg->ev[pg->n - 1];
	return (r->stream ? ev->stream_version : ev->global_position) + 1;
}

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	struct page pg;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->want && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stop)
			break;
		r->want = 0;
		r->busy = 1;
		pthread_mutex_unlock(&r->mu);
		reader_fetch(r, &pg);
		pthread_mutex_lock(&r->mu);
		r->from = page_next(r, &pg, r->from);
		r->pg = pg;
		r->full = 1;
		r->busy = 0;
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* The next page (the caller frees it), and the one after requested. */
static void
reader_next(struct reader *r, struct page *pg, int more)
{
	pthread_mutex_lock(&r->mu);
	while (!r->full)
		pthread_cond_wait(&r->cv, &r->mu);
	*pg = r->pg;
	r->full = 0;
	if (more && pg->st == EF_S_OK && pg->n > 0) {
		r->want = 1;
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
}

/* ---- the verb ---- */

struct export_opts {
	uint64_t from, to;
	int has_to, zstd, quiet;
	const char *stream, *out;
};

static int
export_parse(int argc, char **argv, struct export_opts *o)
{
	uint8_t u[UUID_LEN];
	int i;

	memset(o, 0, sizeof(*o));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i],
		           *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--zstd"))
			o->zstd = 1;
		else if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
			o->quiet = 1;
		else if (!strcmp(a, "--from") && v != NULL) {
			if (ctl_parse_u64(v, &o->from) != 0)
				return ctl_err(CTL_USAGE,
				    "--from: a position");
			i++;
		} else if (!strcmp(a, "--to") && v != NULL) {
			if (ctl_parse_u64(v, &o->to) != 0)
				return ctl_err(CTL_USAGE, "--to: a position");
			o->has_to = 1;
			i++;
		} else if (!strcmp(a, "--stream") && v != NULL) {
			if (uuid_parse(v, strlen(v), u) != 0)
				return ctl_err(CTL_USAGE,
				    "--stream: malformed "
				    "stream id \"%s\"",
				    v);
			o->stream = v;
			i++;
		} else if (!strcmp(a, "-o") && v != NULL) {
			o->out = v;
			i++;
		} else
			return ctl_usage("export");
	}
	return CTL_OK;
}

/*
 * Opens the sink: FILE.partial (renamed at the end) or stdout. FILE
 * that exists and is not a regular file (/dev/null, a FIFO, a
 * terminal) is written as it is: a rename over it would replace the
 * device with a regular file.
 */
static int
sink_open(struct sink *s, const struct export_opts *o, char *tmp,
    size_t tmplen)
{
	struct stat sb;

	memset(s, 0, sizeof(*s));
	s->fd = STDOUT_FILENO;
	if (o->out != NULL && strcmp(o->out, "-") != 0 &&
	    stat(o->out, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		s->fd = open(o->out, O_WRONLY | O_CLOEXEC);
		if (s->fd < 0)
			return ctl_err(CTL_USAGE, "%s: %s", o->out,
			    strerror(errno));
	} else if (o->out != NULL && strcmp(o->out, "-") != 0) {
		snprintf(tmp, tmplen, "%s.partial", o->out);
		s->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0644);
		if (s->fd < 0)
			return ctl_err(CTL_USAGE, "%s: %s", tmp,
			    strerror(errno));
		/* ours, written from offset 0: directly if the file system
		 * takes it (dwrite.c), else written back as it grows */
		s->regular = dwrite_open(&s->dw, s->fd) != 0;
	}
	if (o->zstd) {
		s->z = ZSTD_createCCtx();
		s->zcap = ZSTD_CStreamOutSize();
		if (s->z == NULL || (s->zbuf = malloc(s->zcap)) == NULL)
			return ctl_err(CTL_INTERNAL, "out of memory");
		ZSTD_CCtx_setParameter(s->z, ZSTD_c_compressionLevel, 3);
		ZSTD_CCtx_setParameter(s->z, ZSTD_c_checksumFlag, 1);
		/* a worker thread compresses while we format (if built in) */
		ZSTD_CCtx_setParameter(s->z, ZSTD_c_nbWorkers, 1);
	}
	return CTL_OK;
}

/* Starts the thread that fetches pages ahead of the formatting. */
static int
reader_start(struct reader *r, struct ctl *c, const struct export_opts *o)
{
	memset(r, 0, sizeof(*r));
	if (client_open(&r->cl, c->store_url, (int)c->conf.timeout_ms) != 0)
		return ctl_err(CTL_USAGE, "bad store URL %s", c->store_url);
	r->stream = o->stream;
	r->from = o->stream ? 0 : o->from;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->want = 1;
	if (pthread_create(&r->thr, NULL, reader_main, r) != 0) {
		client_close(&r->cl);
		return ctl_err(CTL_INTERNAL, "cannot start a thread");
	}
	return CTL_OK;
}

/* Stops the reader, which may be fetching: takes its page first. */
static void
reader_stop(struct reader *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->want || r->busy)
		pthread_cond_wait(&r->cv, &r->mu);
	r->stop = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thr, NULL);
	if (r->full)
		page_free(&r->pg);
	client_close(&r->cl);
}

/*
 * Writes the events of the pages the reader fetches, from o->from up to
 * the head of the first page (the snapshot, or o->to below it), into
 * s; *n counts them, *head is the snapshot.
 */
static int
export_pages(struct reader *r, const struct export_opts *o, struct sink *s,
    struct obuf *b, struct progress *pr, uint64_t *n, uint64_t *head)
{
	struct page pg;
	uint64_t k, pos;
	int rc, more = 1;

	while (more) {
		reader_next(r, &pg, 1);
		if (pg.st != EF_S_OK) {
			if (pg.why[0] != '\0') /* pg.why moved with pg */
				pg.rep.in.message.ptr = pg.why;
			rc = ctl_status_exit(pg.st, &pg.rep.in.message);
			page_free(&pg);
			return rc;
		}
		if (*head == UINT64_MAX) {
			/* the snapshot: what is committed now */
			*head = pg.head;
			if (o->has_to && o->to < *head)
				*head = o->to;
			pr->total = *head > o->from ? *head - o->from : 0;
		}
		if (pg.n == 0)
			more = 0;
		for (k = 0; k < pg.n; k++) {
			const struct ef_event *ev = &pg.ev[k];

			pos = ev->global_position;
			if (pos >= *head) {
				more = 0;
				break;
			}
			if (pos < o->from)
				continue;
			(*n)++;
			if ((rc = sink_line(s, b, ev)) != 0) {
				page_free(&pg);
				return ctl_err(CTL_INTERNAL, "write: %s",
				    strerror(-rc));
			}
		}
		page_free(&pg);
		progress(pr, *n, s->bytes, 0);
	}
	return CTL_OK;
}

/*
 * Writes out what the sink holds; a file is synced, closed and renamed
 * from tmp to its name (tmp is emptied once it is).
 */
static int
sink_finish(struct sink *s, struct obuf *b, const struct export_opts *o,
    char *tmp)
{
	int rc;

	if ((rc = sink_put(s, b, 1)) != 0 ||
	    (s->dw != NULL && (rc = dwrite_finish(s->dw)) != 0))
		return ctl_err(CTL_INTERNAL, "write: %s", strerror(-rc));
	if (tmp[0] == '\0')
		return CTL_OK;
	if (fsync(s->fd) != 0 || close(s->fd) != 0) {
		s->fd = -1;
		return ctl_err(CTL_INTERNAL, "%s: %s", tmp, strerror(errno));
	}
	s->fd = -1;
	if (rename(tmp, o->out) != 0)
		return ctl_err(CTL_INTERNAL, "rename %s: %s", tmp,
		    strerror(errno));
	tmp[0] = '\0';
	return CTL_OK;
}

static void
sink_close(struct sink *s, struct obuf *b, const char *tmp)
{
	dwrite_free(s->dw);
	if (s->fd >= 0 && s->fd != STDOUT_FILENO)
		close(s->fd);
	if (tmp[0] != '\0')
		(void)unlink(tmp);
	ZSTD_freeCCtx(s->z);
	free(s->zbuf);
	free(b->p);
}

int
cmd_export(struct ctl *c, int argc, char **argv)
{
	struct export_opts o;
	struct reader r;
	struct sink s;
	struct obuf b = { 0 };
	struct progress pr = { 0 };
	char tmp[4200] = "";
	uint64_t head = UINT64_MAX, n = 0;
	int rc;

	if ((rc = export_parse(argc, argv, &o)) != CTL_OK)
		return rc;
	/*
	 * nng allocates each reply (a page, 1-2 MB) zeroed on its own thread
	 * and we free it here. glibc would give such blocks back to the
	 * kernel (an mmap of their own, a trimmed heap, or a thread arena's
	 * heap unmapped once empty), so that every reply was zeroed and
	 * received into fresh pages, page fault by page fault (~8% of the
	 * CPU): keep them in the one untrimmed heap.
	 */
	(void)mallopt(M_ARENA_MAX, 1);
	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
	/* before the output file is created: nothing to clean up */
	if ((rc = ctl_reach(c, CTL_STORED)) != 0)
		return rc;
	if ((rc = sink_open(&s, &o, tmp, sizeof(tmp))) != CTL_OK ||
	    (rc = reader_start(&r, c, &o)) != CTL_OK) {
		sink_close(&s, &b, tmp);
		return rc;
	}
	progress_init(&pr, "export", o.quiet);
	rc = export_pages(&r, &o, &s, &b, &pr, &n, &head);
	reader_stop(&r);
	if (rc == CTL_OK && (rc = sink_finish(&s, &b, &o, tmp)) == CTL_OK) {
		progress(&pr, n, s.bytes, 1);
		if (!o.quiet)
			fprintf(stderr,
			    "eventfoldctl: exported %" PRIu64 " events "
			    "(positions below %" PRIu64 ")%s%s\n",
			    n, head, o.out ? " to " : "", o.out ? o.out : "");
	}
	sink_close(&s, &b, tmp);
	return rc;
}
