/* SPDX-License-Identifier: MIT */
/*
 * store.c - eventfoldctl's commands that talk to eventfold-stored
 * (append, read, tail, streams, status) and the offline `verify` of a
 * data directory's log.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "data.h"
#include "archive.h"
#include "segfile.h"
#include "ipc_runner.h"

uint8_t *
ctl_read_stdin(size_t *len, size_t max, const char *what, const char **why)
{
	static char too_big[160];
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap), *nb;
	ssize_t r;

	*why = "out of memory";
	if (buf == NULL)
		return NULL;
	/* one byte past max tells "exactly max" from "more" */
	while ((r = read(STDIN_FILENO, buf + n, cap - n)) > 0) {
		n += (size_t)r;
		if (n > max) {
			if (max % (1u << 20) == 0)
				snprintf(too_big, sizeof(too_big),
				    "more than "
				    "%zu MiB (the most %s holds)",
				    max >> 20, what);
			else
				snprintf(too_big, sizeof(too_big),
				    "more than "
				    "%zu KiB (the most %s holds)",
				    max >> 10, what);
			*why = too_big;
			free(buf);
			return NULL;
		}
		if (n == cap) {
			if ((nb = realloc(buf, cap * 2)) == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (r < 0) {
		*why = strerror(errno);
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

void
ctl_note_not_json(const char *what, const char *key, const uint8_t *p,
    size_t len)
{
	json_error_t e;
	json_t *v;
	size_t i;

	if (len == 0)
		return;
	if ((v = json_loadb((const char *)p, len, JSON_DECODE_ANY, &e)) !=
	    NULL) {
		json_decref(v);
		return;
	}
	/* jansson quotes the bad bytes: keep control bytes off the terminal */
	for (i = 0; e.text[i] != '\0'; i++)
		if ((unsigned char)e.text[i] < 0x20 || e.text[i] == 0x7f)
			e.text[i] = '?';
	if (key != NULL)
		fprintf(stderr,
		    "eventfoldctl: note: the %s is not JSON (%s, "
		    "at byte %d): stored as given; JSON output shows it "
		    "base64-encoded as %s\n",
		    what, e.text, e.position, key);
	else
		fprintf(stderr,
		    "eventfoldctl: note: the %s is not JSON (%s, "
		    "at byte %d): sent as given\n",
		    what, e.text, e.position);
}

/*
 * --from N and --count N (above 0), as read, tail and streams take them
 * (from NULL: no --from). 1 taken (with its value), 0 not one of them,
 * -1 a bad value (said).
 */
static int
range_opt(int *i, int argc, char **argv, uint64_t *from, int *from_set,
    uint64_t *count)
{
	if (from != NULL && !strcmp(argv[*i], "--from") && *i + 1 < argc) {
		if (ctl_parse_u64(argv[++*i], from) != 0) {
			ctl_err(CTL_USAGE, "--from: a number");
			return -1;
		}
		if (from_set != NULL)
			*from_set = 1;
		return 1;
	}
	if (!strcmp(argv[*i], "--count") && *i + 1 < argc) {
		if (ctl_parse_u64(argv[++*i], count) != 0 || *count == 0) {
			ctl_err(CTL_USAGE,
			    "--count: a number "
			    "above 0");
			return -1;
		}
		return 1;
	}
	return 0;
}

/* Starts a request of op on cl in o (reset here) for the body to follow. */
static struct ipc_out *
store_request(struct ipc_out *o, int op, struct ef_client *cl)
{
	ipc_out_reset(o);
	ipc_request_begin(o, op, client_request_id(cl));
	return o;
}

/* What append was given besides the expected version. */
struct append_args {
	const char *stream, *type, *payload, *md, *eid;
};

/* --expect's value e into r. */
static int
append_expect(struct ipc_append_req *r, const char *e)
{
	if (!strcmp(e, "any"))
		r->kind = EF_EXPECT_ANY;
	else if (!strcmp(e, "no-stream") || !strcmp(e, "no_stream"))
		r->kind = EF_EXPECT_NO_STREAM;
	else if (ctl_parse_u64(e, &r->version) == 0)
		r->kind = EF_EXPECT_EXACT;
	else
		return ctl_err(CTL_USAGE,
		    "--expect: any, "
		    "no-stream or a version number");
	return CTL_OK;
}

static int
append_args(struct ctl *c, int argc, char **argv, struct ipc_append_req *r,
    struct append_args *a)
{
	const char **pos[] = { &a->stream, &a->type, &a->payload };
	int i, np = 0, rc;

	memset(a, 0, sizeof(*a));
	a->md = "";
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--expect") && i + 1 < argc) {
			if ((rc = append_expect(r, argv[++i])) != CTL_OK)
				return rc;
		} else if (!strcmp(argv[i], "--event-id") && i + 1 < argc)
			a->eid = argv[++i];
		else if (!strcmp(argv[i], "--metadata") && i + 1 < argc)
			a->md = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return ctl_err(CTL_USAGE, "append: unknown option %s",
			    argv[i]);
		else if (np < 3)
			*pos[np++] = argv[i];
		else
			return ctl_err(CTL_USAGE,
			    "append: too many arguments");
	}
	if (a->stream == NULL || a->type == NULL)
		return ctl_usage("append");
	return CTL_OK;
}

static void
append_print(const struct ctl *c, const char *eid,
    const struct ipc_append_rep *rep)
{
	if (c->json)
		printf("{\"event_id\":\"%s\",\"first_stream_version\":%" PRIu64
		       ",\"last_stream_version\":%" PRIu64 ",\"first_global_"
		       "position\":%" PRIu64
		       ",\"last_global_position\":%" PRIu64 "}\n",
		    eid, rep->first_version, rep->last_version, rep->first_pos,
		    rep->last_pos);
	else
		printf("appended event %s: stream version %" PRIu64
		       ", global position %" PRIu64 "\n",
		    eid, rep->last_version, rep->last_pos);
}

/* Sends the append r to stored and prints the reply. */
static int
append_send(struct ctl *c, const struct ipc_append_req *r, const char *eid)
{
	const struct ipc_proposed *ev = r->events;
	struct ipc_append_rep rep;
	struct client_reply cr;
	struct ef_client cl;
	const char *why;
	int rc;

	if ((rc = ctl_open(c, CTL_STORED, &cl, 0)) != 0)
		return rc;
	ctl_note_not_json("payload", "payload_base64", ev->payload,
	    ev->payload_len);
	ctl_note_not_json("metadata", "metadata_base64", ev->metadata,
	    ev->metadata_len);
	rc = ctl_check(c, CTL_STORED, client_append(&cl, r, &cr), &cr);
	if (rc == CTL_OK && ipc_append_rep_decode(cr.in.body, &rep, &why) != 0)
		rc = ctl_malformed(why);
	else if (rc == CTL_OK)
		append_print(c, eid, &rep);
	client_reply_free(&cr);
	client_close(&cl);
	return rc;
}

static int
cmd_append(struct ctl *c, int argc, char **argv)
{
	struct ipc_append_req r;
	struct ipc_proposed ev;
	struct append_args a;
	char idbuf[UUID_STR_LEN];
	uint8_t id[UUID_LEN], *stdin_buf = NULL;
	const char *why;
	size_t plen = 0;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(&ev, 0, sizeof(ev));
	r.kind = EF_EXPECT_ANY;
	if ((rc = append_args(c, argc, argv, &r, &a)) != CTL_OK)
		return rc;
	if (a.payload != NULL && !strcmp(a.payload, "-")) {
		if ((stdin_buf = ctl_read_stdin(&plen, 64u << 20,
		         "one request", &why)) == NULL)
			return ctl_err(CTL_USAGE,
			    "cannot read the payload "
			    "from stdin: %s",
			    why);
		ev.payload = stdin_buf;
	} else if (a.payload != NULL) {
		ev.payload = (const uint8_t *)a.payload;
		plen = strlen(a.payload);
	}
	ev.payload_len = (uint32_t)plen;
	if (a.eid == NULL) {
		uuid_random(id);
		a.eid = uuid_format(id, idbuf);
	}
	ev.event_id = ipc_cstr(a.eid);
	ev.type = ipc_cstr(a.type);
	ev.metadata = (const uint8_t *)a.md;
	ev.metadata_len = (uint32_t)strlen(a.md);
	r.stream_id = ipc_cstr(a.stream);
	r.nevents = 1;
	r.events = &ev;
	rc = append_send(c, &r, a.eid);
	free(stdin_buf);
	return rc;
}

/* read's arguments: target "all" or a stream; the rest as in usage. */
struct read_args {
	const char *target;
	uint64_t from, count;
	int backward;
};

static int
read_args(struct ctl *c, int argc, char **argv, struct read_args *a)
{
	int i, t, from_set = 0;

	memset(a, 0, sizeof(*a));
	a->count = UINT64_MAX;
	for (i = 1; i < argc; i++) {
		if ((t = range_opt(&i, argc, argv, &a->from, &from_set,
		         &a->count)) != 0) {
			if (t < 0)
				return CTL_USAGE;
		} else if (!strcmp(argv[i], "--backward"))
			a->backward = 1;
		else if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (argv[i][0] == '-')
			return ctl_err(CTL_USAGE, "read: unknown option %s",
			    argv[i]);
		else if (a->target == NULL)
			a->target = argv[i];
		else
			return ctl_err(CTL_USAGE, "read: too many arguments");
	}
	if (a->target == NULL)
		return ctl_usage("read");
	if (a->backward && !from_set)
		a->from = EF_FROM_END;
	return CTL_OK;
}

/*
 * One page of read a from a->from: prints its events, counts them in
 * *done and moves a->from past them. *more: another page is wanted.
 */
static int
read_page(struct ctl *c, struct ef_client *cl, struct read_args *a,
    uint64_t *done, int *header, int *more)
{
	struct client_reply cr;
	struct ipc_read_rep rr;
	struct ef_event ev;
	const char *why;
	int all = !strcmp(a->target, "all"), st, rc = CTL_OK;
	uint64_t page = a->count - *done, i;

	*more = 0;
	if (all)
		st = client_read_all(cl, a->from, page, a->backward, &cr, &rr);
	else
		st = client_read_stream(cl, a->target, a->from, page,
		    a->backward, &cr, &rr);
	if ((rc = ctl_check(c, CTL_STORED, st, &cr)) != CTL_OK)
		goto out;
	/* a table's header only above rows (eventfoldctl(8)) */
	if (!*header && rr.nevents > 0) {
		out_event_header(c);
		*header = 1;
	}
	for (i = 0; i < rr.nevents; i++) {
		if (ipc_event_decode(&rr.events->via.array.ptr[i], &ev,
		        &why) != 0) {
			rc = ctl_err(CTL_INTERNAL, "malformed event: %s", why);
			goto out;
		}
		out_event(c, &ev);
		(*done)++;
		a->from = all ? ev.global_position : ev.stream_version;
	}
	if (rr.nevents == 0 || (a->backward && a->from == 0))
		goto out;
	a->from = a->backward ? a->from - 1 : a->from + 1;
	*more = 1;
out:
	client_reply_free(&cr);
	return rc;
}

static int
cmd_read(struct ctl *c, int argc, char **argv)
{
	struct read_args a;
	struct ef_client cl;
	uint64_t done = 0;
	int header = 0, more = 1, rc;

	if ((rc = read_args(c, argc, argv, &a)) != CTL_OK)
		return rc;
	if ((rc = ctl_open(c, CTL_STORED, &cl, 0)) != 0)
		return rc;
	while (more && done < a.count && rc == CTL_OK)
		rc = read_page(c, &cl, &a, &done, &header, &more);
	client_close(&cl);
	fflush(stdout);
	if (rc == CTL_OK && done == 0)
		ctl_empty(c, "no events");
	return rc;
}

static volatile int tail_stop;
static uint64_t tail_left;

static void
on_signal(int sig)
{
	(void)sig;
	tail_stop = 1;
}

static int tail_header;

static int
tail_event(void *arg, const struct ef_event *ev)
{
	if (!tail_header) {
		out_event_header(arg);
		tail_header = 1;
	}
	out_event(arg, ev);
	if (tail_left != UINT64_MAX && --tail_left == 0) {
		fflush(stdout);
		return 1;
	}
	return 0;
}

static int
tail_caught_up(void *arg)
{
	(void)arg;
	fflush(stdout);
	/* live events reach a pipe (tail | grep) as they come; the
	 * catch-up before this went in large writes */
	setvbuf(stdout, NULL, _IOLBF, 0);
	fprintf(stderr, "eventfoldctl: caught up; following live events\n");
	return 0;
}

static int
cmd_tail(struct ctl *c, int argc, char **argv)
{
	struct sub_params p;
	const char *stream = NULL;
	uint64_t from = 0, count = UINT64_MAX;
	struct sigaction sa;
	int i, t, rc;

	for (i = 1; i < argc; i++) {
		if ((t = range_opt(&i, argc, argv, &from, NULL, &count)) !=
		    0) {
			if (t < 0)
				return CTL_USAGE;
		} else if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (argv[i][0] == '-')
			return ctl_err(CTL_USAGE, "tail: unknown option %s",
			    argv[i]);
		else if (stream == NULL && strcmp(argv[i], "all") != 0)
			stream = argv[i];
		else if (stream != NULL)
			return ctl_err(CTL_USAGE, "tail: too many arguments");
	}
	if (stream != NULL) {
		uint8_t u[UUID_LEN];

		if (uuid_parse(stream, strlen(stream), u) != 0)
			return ctl_err(CTL_REFUSED,
			    "BAD_UUID: malformed stream "
			    "id \"%s\"",
			    stream);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	tail_left = count;
	memset(&p, 0, sizeof(p));
	p.store_url = c->store_url;
	p.events_url = c->events_url;
	p.stream_id = stream;
	p.from = from;
	p.on_event = tail_event;
	p.on_caught_up = tail_caught_up;
	p.timeout_ms = (int)c->conf.timeout_ms;
	p.arg = c;
	p.stop = &tail_stop;
	/* a follower waits for its store: say so, then keep trying */
	if (ctl_reach(c, CTL_STORED) != 0)
		fprintf(stderr,
		    "eventfoldctl: tail: the store is unreachable; "
		    "retrying until it answers (Ctrl-C to stop)\n");
	rc = sub_run(&p);
	fflush(stdout);
	if (rc == -EF_S_INVALID)
		return ctl_err(CTL_USAGE, "bad store or events URL (%s, %s)",
		    c->store_url, c->events_url);
	if (rc < 0)
		return ctl_err(CTL_INTERNAL, "subscription failed: %s",
		    ipc_status_text(-rc));
	return CTL_OK;
}

static void
stream_print(const struct ctl *c, const struct ipc_stream_info *si,
    const char *sid, int first)
{
	if (!c->json && first)
		printf("%-36s %12s %14s\n", "STREAM", "EVENTS",
		    "LATEST_VERSION");
	if (c->json)
		printf("{\"stream_id\":\"%s\",\"event_count\":"
		       "%" PRIu64 ",\"latest_version\":%" PRIu64 "}\n",
		    sid, si->event_count, si->latest_version);
	else
		printf("%-36s %12" PRIu64 " %14" PRIu64 "\n", sid,
		    si->event_count, si->latest_version);
}

/*
 * One page of LIST_STREAMS after r's cursor (after, the text it points
 * to): prints it, counts it in *done, moves the cursor. *more: another
 * page is wanted.
 */
static int
streams_page(struct ctl *c, struct ef_client *cl, struct ipc_out *o,
    struct ipc_list_req *r, char *after, uint64_t *done, int *more)
{
	struct ipc_list_rep lr;
	struct ipc_stream_info si;
	struct client_reply cr;
	const char *why;
	uint32_t k;
	int rc;

	*more = 0;
	r->after.ptr = after;
	r->after.len = r->has_after ? (uint32_t)strlen(after) : 0;
	ipc_list_req_encode(store_request(o, EF_OP_LIST_STREAMS, cl), r);
	if ((rc = ctl_ask(c, CTL_STORED, cl, o, &cr)) != CTL_OK)
		goto out;
	if (ipc_list_rep_decode(cr.in.body, &lr, &why) != 0) {
		rc = ctl_malformed(why);
		goto out;
	}
	for (k = 0; k < lr.nstreams; k++) {
		if (ipc_stream_info_decode(&lr.streams->via.array.ptr[k], &si,
		        &why) != 0)
			break;
		uuid_format(si.stream_id, after);
		stream_print(c, &si, after, *done == 0);
		r->has_after = true;
		(*done)++;
	}
	*more = lr.more && lr.nstreams > 0;
out:
	client_reply_free(&cr);
	return rc;
}

static int
cmd_streams(struct ctl *c, int argc, char **argv)
{
	struct ipc_list_req r;
	struct ipc_out o;
	struct ef_client cl;
	char after[UUID_STR_LEN];
	uint64_t count = UINT64_MAX, done = 0;
	int i, t, more = 1, rc = CTL_OK;

	memset(&r, 0, sizeof(r));
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--after") && i + 1 < argc) {
			snprintf(after, sizeof(after), "%s", argv[++i]);
			r.has_after = true;
		} else if ((t = range_opt(&i, argc, argv, NULL, NULL,
		                &count)) != 0) {
			if (t < 0)
				return CTL_USAGE;
		} else if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else
			return ctl_usage("streams");
	}
	if ((rc = ctl_open(c, CTL_STORED, &cl, 0)) != 0)
		return rc;
	ipc_out_init(&o);
	while (more && done < count && rc == CTL_OK) {
		r.max_count = count - done;
		rc = streams_page(c, &cl, &o, &r, after, &done, &more);
	}
	ipc_out_free(&o);
	client_close(&cl);
	if (rc == CTL_OK && done == 0)
		ctl_empty(c, "no streams");
	return rc;
}

static void
status_print(const struct ctl *c, const struct ipc_status_rep *s)
{
	if (c->json) {
		printf("{\"head\":%" PRIu64 ",\"streams\":%" PRIu64
		       ",\"log_bytes\":%" PRIu64 ",\"uptime_ms\":%" PRIu64
		       ",\"commits\":%" PRIu64 ",\"fsyncs\":%" PRIu64
		       ",\"events_written\":%" PRIu64 ",\"avg_batch\":%.2f"
		       ",\"recover_ms\":%" PRIu64
		       ",\"recovered_events\":%" PRIu64
		       ",\"index_bytes\":%" PRIu64 ",\"segments\":%" PRIu64
		       ",\"sealed_bytes\":%" PRIu64 ",\"indexed_to\":%" PRIu64
		       ",\"archived_segments\":%" PRIu64
		       ",\"archived_bytes\":%" PRIu64
		       ",\"archived_raw\":%" PRIu64 ",\"cache_hits\":%" PRIu64
		       ",\"cache_misses\":%" PRIu64 ",\"cache_bytes\":%" PRIu64
		       "}\n",
		    s->head, s->streams, s->log_bytes, s->uptime_ms,
		    s->commits, s->fsyncs, s->events_written,
		    s->fsyncs ? (double)s->events_written / (double)s->fsyncs :
		                0.0,
		    s->recover_ms, s->recovered_events, s->index_bytes,
		    s->segments, s->sealed_bytes, s->indexed_to,
		    s->archived_segments, s->archived_bytes, s->archived_raw,
		    s->cache_hits, s->cache_misses, s->cache_bytes);
	} else {
		printf("head position     %" PRIu64 "\n"
		       "streams           %" PRIu64 "\n"
		       "log bytes         %" PRIu64 "\n"
		       "uptime            %.1f s\n"
		       "appends committed %" PRIu64 "\n"
		       "fsyncs            %" PRIu64 "\n"
		       "events written    %" PRIu64 "\n"
		       "average batch     %.2f events per fsync\n"
		       "recovery          %" PRIu64 " events in %" PRIu64
		       " ms\n"
		       "index memory      %" PRIu64 " bytes\n"
		       "segments          %" PRIu64 " (%" PRIu64
		       " bytes sealed)\n"
		       "indexed on disk   below position %" PRIu64 "\n"
		       "archived          %" PRIu64 " segments, %" PRIu64
		       " bytes holding %" PRIu64 " (ratio %.2f)\n"
		       "frame cache       %" PRIu64 " hits, %" PRIu64
		       " misses, %" PRIu64 " bytes\n",
		    s->head, s->streams, s->log_bytes,
		    (double)s->uptime_ms / 1000.0, s->commits, s->fsyncs,
		    s->events_written,
		    s->fsyncs ? (double)s->events_written / (double)s->fsyncs :
		                0.0,
		    s->recovered_events, s->recover_ms, s->index_bytes,
		    s->segments, s->sealed_bytes, s->indexed_to,
		    s->archived_segments, s->archived_bytes, s->archived_raw,
		    s->archived_bytes ?
		        (double)s->archived_raw / (double)s->archived_bytes :
		        0.0,
		    s->cache_hits, s->cache_misses, s->cache_bytes);
	}
}

static int
cmd_status(struct ctl *c, int argc, char **argv)
{
	struct ipc_status_rep s;
	struct client_reply cr;
	struct ef_client cl;
	int rc = CTL_OK;

	if (argc > 1 && !strcmp(argv[1], "--json"))
		c->json = 1;
	else if (argc > 1)
		return ctl_usage("status");
	if ((rc = ctl_open(c, CTL_STORED, &cl, 0)) != 0)
		return rc;
	rc = ctl_check(c, CTL_STORED, client_status(&cl, &cr, &s), &cr);
	if (rc == CTL_OK)
		status_print(c, &s);
	client_reply_free(&cr);
	client_close(&cl);
	return rc;
}

/* What verify_file() found in one segment file. */
struct vres {
	uint64_t base; /* from the header */
	uint64_t next; /* position after the last intact event */
	uint64_t batches;
	uint64_t size;
	int corrupt;
};

/*
 * Maps the segment file at path read-only into *img (*size bytes);
 * NULL-free on success. On failure, or for a file shorter than the
 * header, prints the verdict (OK for the hot segment's interrupted
 * creation, else CORRUPT) and returns -1.
 */
static int
verify_map(const char *path, int last, struct vres *v, const uint8_t **img)
{
	struct stat sb;
	uint64_t size;
	int fd;

	if ((fd = open(path, O_RDONLY)) < 0 || fstat(fd, &sb) != 0) {
		printf("%s: CORRUPT: cannot read: %s\n", path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		v->corrupt = 1;
		return -1;
	}
	v->size = size = (uint64_t)sb.st_size;
	if (size < LOGFILE_HDR) {
		close(fd);
		if (last) {
			/* an older stored's creation was interrupted: it
			 * writes the header again */
			printf(
			    "%s: OK: no events (%" PRIu64 " bytes, shorter "
			    "than the header: an interrupted creation stored "
			    "redoes on start)\n",
			    path, size);
			return -1;
		}
		printf("%s: CORRUPT at offset 0: %" PRIu64 " bytes, shorter "
		       "than the file header, in a sealed segment\n",
		    path, size);
		v->corrupt = 1;
		return -1;
	}
	*img = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (*img == MAP_FAILED) {
		printf("%s: CORRUPT: cannot map: %s\n", path, strerror(errno));
		v->corrupt = 1;
		return -1;
	}
	return 0;
}

/* The verdict on a segment whose intact batches end at offset off. */
static void
verify_verdict(const char *path, const uint8_t *img, uint64_t off, int last,
    struct vres *v)
{
	uint64_t size = v->size, events = v->next - v->base;

	if (off == size) {
		printf("%s: OK: %" PRIu64 " events in %" PRIu64
		       " batches, %" PRIu64 " bytes\n",
		    path, events, v->batches, size);
	} else if (last && !batch_find_after(img, size, off)) {
		printf("%s: OK: %" PRIu64 " events in %" PRIu64 " batches; "
		       "torn tail of %" PRIu64 " bytes at offset %" PRIu64
		       " (an unacknowledged write; stored truncates it on "
		       "start)\n",
		    path, events, v->batches, size - off, off);
	} else {
		printf(
		    "%s: CORRUPT at offset %" PRIu64 " (after %" PRIu64
		    " intact events)%s. Start stored with --repair yes to cut "
		    "the log there (drops %" PRIu64 " bytes%s), or restore "
		    "from a backup.\n",
		    path, off, events,
		    last ? "; intact data follows" : " in a sealed segment",
		    size - off, last ? "" : " and every later segment");
		v->corrupt = 1;
	}
}

/*
 * Checks one segment file: header (base expect_base), then batch after
 * batch. last: the hot segment, which may end in a torn tail; in a
 * sealed segment any damage is corruption. Prints one line.
 */
static void
verify_file(const char *path, uint64_t expect_base, int check_base, int last,
    struct vres *v, struct progress *pr, uint64_t ev0, uint64_t by0)
{
	const uint8_t *img;
	uint64_t off, len, size, pos;

	memset(v, 0, sizeof(*v));
	v->base = v->next = expect_base;
	if (verify_map(path, last, v, &img) != 0)
		return;
	size = v->size;
	if (logfile_hdr_decode(img, size, &v->base) != REC_OK ||
	    (check_base && v->base != expect_base)) {
		printf("%s: CORRUPT at offset 0: bad file header (not a "
		       "segment starting at position %" PRIu64 ")\n",
		    path, expect_base);
		v->corrupt = 1;
		munmap((void *)img, size);
		return;
	}
	pos = v->base;
	for (off = LOGFILE_HDR; off < size; off += len) {
		if (batch_verify(img, size, off, pos, 1, &len) != 0)
			break;
		pos += get_le32(img + off + 8);
		v->batches++;
		progress(pr, ev0 + pos - v->base, by0 + off + len, 0);
	}
	v->next = pos;
	progress_clear(pr);
	verify_verdict(path, img, off, last, v);
	munmap((void *)img, size);
}

/*
 * Checks the archive of the sealed segment at path (path + ".zst"):
 * archive_verify reads every frame (both checksums) and every batch in
 * it. Its events are next_base - base (the next segment's name).
 */
static void
verify_archive(const char *path, uint64_t base, uint64_t next_base, int last,
    struct vres *v)
{
	char ap[4300];
	struct archive_stats st;
	struct archive_fault f;
	int rc;

	memset(v, 0, sizeof(*v));
	memset(&f, 0, sizeof(f));
	memset(&st, 0, sizeof(st));
	v->base = v->next = base;
	snprintf(ap, sizeof(ap), "%s%s", path, ARCHIVE_SUFFIX);
	if (last) {
		printf(
		    "%s: CORRUPT: the last segment exists only as an archive "
		    "(its plain file, the one being written, is missing)\n",
		    ap);
		v->corrupt = 1;
		return;
	}
	rc = archive_verify(ap, &st, &f);
	if (rc == -EBADMSG) {
		printf("%s: CORRUPT at file offset %" PRIu64 " (frame %" PRIu32
		       ", segment offset %" PRIu64
		       "): %s. Restore this archive "
		       "from a backup.\n",
		    ap, f.file_off, f.frame, f.doff,
		    f.what ? f.what : "damaged");
		v->corrupt = 1;
		return;
	}
	if (rc != 0) {
		printf("%s: CORRUPT: cannot read: %s\n", ap, strerror(-rc));
		v->corrupt = 1;
		return;
	}
	v->next = next_base;
	v->size = st.raw_bytes;
	printf("%s: OK: archived, %" PRIu64 " events, %" PRIu64
	       " bytes in %" PRIu32 " frames, %" PRIu64
	       " on disk (ratio %.2f)\n",
	    ap, next_base - base, st.raw_bytes, st.frames, st.comp_bytes,
	    st.comp_bytes ? (double)st.raw_bytes / (double)st.comp_bytes :
	                    0.0);
}

/* Bytes on disk of the n segments of dir (files and archives): the
 * progress line's ETA. */
static uint64_t
verify_disk_bytes(const char *dir, const uint64_t *bases, const uint8_t *arcs,
    size_t n)
{
	char path[4200], name[SEGFILE_NAME_MAX];
	struct stat sb;
	uint64_t total = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s%s", dir,
		    segfile_name(name, sizeof(name), bases[i]),
		    arcs[i] ? ARCHIVE_SUFFIX : "");
		if (stat(path, &sb) == 0)
			total += (uint64_t)sb.st_size;
	}
	return total;
}

/* What verify has seen so far over a directory's segments. */
struct vtally {
	uint64_t events, bytes, pos, done;
	int bad;
};

/* Checks segment i of n (base bases[i], archived if arcs[i]) of dir. */
static void
verify_segment(const char *dir, const uint64_t *bases, const uint8_t *arcs,
    size_t i, size_t n, struct progress *pr, struct vtally *t)
{
	char path[4200], name[SEGFILE_NAME_MAX];
	struct stat sb;
	struct vres v;

	snprintf(path, sizeof(path), "%s/%s", dir,
	    segfile_name(name, sizeof(name), bases[i]));
	if (i > 0 && !t->bad && bases[i] != t->pos) {
		progress_clear(pr);
		printf("%s: CORRUPT at offset 0: starts at position "
		       "%" PRIu64
		       " but the previous segment ends before %" PRIu64 "\n",
		    path, bases[i], t->pos);
		t->bad = 1;
		return;
	}
	if (arcs[i]) {
		progress_clear(pr);
		verify_archive(path, bases[i],
		    i + 1 < n ? bases[i + 1] : bases[i], i == n - 1, &v);
	} else
		verify_file(path, bases[i], 1, i == n - 1, &v, pr, t->events,
		    t->done);
	t->bad |= v.corrupt;
	t->events += v.next - v.base;
	t->bytes += v.size;
	t->pos = v.next;
	if (!arcs[i]) {
		t->done += v.size;
		return;
	}
	snprintf(path, sizeof(path), "%s/%s%s", dir, name, ARCHIVE_SUFFIX);
	if (stat(path, &sb) == 0)
		t->done += (uint64_t)sb.st_size;
	progress(pr, t->events, t->done, 0);
}

/* A log from before segments (LEGACY_LOG_NAME at path); stored takes it
 * over. */
static int
verify_legacy(const char *path, struct progress *pr)
{
	struct vres v;

	verify_file(path, 0, 0, 1, &v, pr, 0, 0);
	progress(pr, v.next - v.base, v.size, 1);
	return v.corrupt ? CTL_CORRUPT : CTL_OK;
}

static int
cmd_verify(struct ctl *c, int argc, char **argv)
{
	const char *dir = c->conf.data_dir;
	char path[4200];
	uint64_t *bases = NULL;
	uint8_t *arcs = NULL;
	size_t n = 0, i;
	struct progress pr;
	struct vtally t;
	struct stat sb;
	int legacy, quiet = 0, rc;

	for (i = 1; i < (size_t)argc; i++) {
		if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
			quiet = 1;
		else
			return ctl_usage("verify");
	}
	progress_init(&pr, "verify", quiet);
	snprintf(path, sizeof(path), "%s/%s", dir, LEGACY_LOG_NAME);
	legacy = stat(path, &sb) == 0;
	if ((rc = segfile_list_all(dir, &bases, &arcs, &n)) != 0)
		return ctl_err(CTL_NOT_FOUND, "%s: %s", dir, strerror(-rc));
	if (legacy || n == 0) {
		free(bases);
		free(arcs);
	}
	if (legacy && n > 0) {
		printf("%s: CORRUPT: both %s and segment files are present "
		       "(stored will not start; which is the log?)\n",
		    dir, LEGACY_LOG_NAME);
		return CTL_CORRUPT;
	}
	if (legacy)
		return verify_legacy(path, &pr);
	if (n == 0)
		return ctl_err(CTL_NOT_FOUND,
		    "%s: no segment files (no log "
		    "here)",
		    dir);
	pr.total_bytes += verify_disk_bytes(dir, bases, arcs, n);
	memset(&t, 0, sizeof(t));
	for (i = 0; i < n; i++)
		verify_segment(dir, bases, arcs, i, n, &pr, &t);
	progress(&pr, t.events, t.done, 1);
	free(bases);
	free(arcs);
	if (t.bad) {
		printf("%s: CORRUPT: see above\n", dir);
		return CTL_CORRUPT;
	}
	printf("%s: OK: %" PRIu64 " events in %zu segments, %" PRIu64
	       " bytes\n",
	    dir, t.events, n, t.bytes);
	return CTL_OK;
}

static void
rotate_print(const struct ctl *c, const struct ipc_rotate_rep *rr)
{
	char sealed[SEGFILE_NAME_MAX], hot[SEGFILE_NAME_MAX];

	if (c->json)
		printf("{\"rotated\":%s,\"sealed_base\":%" PRIu64
		       ",\"sealed_events\":%" PRIu64 ",\"hot_base\":%" PRIu64
		       "}\n",
		    rr->rotated ? "true" : "false", rr->sealed_base,
		    rr->sealed_events, rr->hot_base);
	else if (rr->rotated)
		printf("sealed %s (positions %" PRIu64 "..%" PRIu64 "); "
		       "writing %s\n",
		    segfile_name(sealed, sizeof(sealed), rr->sealed_base),
		    rr->sealed_base, rr->sealed_base + rr->sealed_events - 1,
		    segfile_name(hot, sizeof(hot), rr->hot_base));
	else
		printf("nothing to seal: %s holds no event yet\n",
		    segfile_name(hot, sizeof(hot), rr->hot_base));
}

static int
cmd_rotate(struct ctl *c, int argc, char **argv)
{
	struct ipc_rotate_rep rr;
	struct client_reply cr;
	struct ef_client cl;
	struct ipc_out o;
	const char *why = "";
	int rc = CTL_OK;

	if (argc > 1 && !strcmp(argv[1], "--json"))
		c->json = 1;
	else if (argc > 1)
		return ctl_usage("rotate");
	if ((rc = ctl_open(c, CTL_STORED, &cl, 0)) != 0)
		return rc;
	ipc_out_init(&o);
	ipc_nil(store_request(&o, EF_OP_ROTATE, &cl));
	rc = ctl_ask(c, CTL_STORED, &cl, &o, &cr);
	if (rc == CTL_OK && ipc_rotate_rep_decode(cr.in.body, &rr, &why) != 0)
		rc = ctl_malformed(why);
	else if (rc == CTL_OK)
		rotate_print(c, &rr);
	client_reply_free(&cr);
	ipc_out_free(&o);
	client_close(&cl);
	return rc;
}

static void
segment_print(const struct ctl *c, const struct ipc_segment_info *si)
{
	char name[SEGFILE_NAME_MAX], last[32];
	double ratio;

	segfile_name(name, sizeof(name), si->base);
	if (si->events > 0)
		snprintf(last, sizeof(last), "%" PRIu64,
		    si->base + si->events - 1);
	else
		snprintf(last, sizeof(last), c->json ? "null" : "-");
	/* ratio: segment bytes per byte on disk */
	ratio = si->stored_bytes ?
	    (double)si->bytes / (double)si->stored_bytes :
	    1.0;
	if (c->json)
		printf("{\"segment\":\"%s\",\"first\":%" PRIu64
		       ",\"last\":%s,\"events\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"stored_bytes\":%" PRIu64
		       ",\"ratio\":%.2f,\"state\":\"%.*s\"}\n",
		    name, si->base, last, si->events, si->bytes,
		    si->stored_bytes, ratio, (int)si->state.len,
		    si->state.ptr);
	else
		printf("%-28s %20" PRIu64 " %20s %12" PRIu64 " %8.*s %6.2f\n",
		    name, si->base, last, si->bytes, (int)si->state.len,
		    si->state.ptr, ratio);
}

/* One page of SEGMENTS from r->from: prints it and moves r->from past
 * it. *more: another page is wanted. */
static int
segments_page(struct ctl *c, struct ef_client *cl, struct ipc_out *o,
    struct ipc_segments_req *r, int *more)
{
	struct ipc_segments_rep sr;
	struct ipc_segment_info si;
	struct client_reply cr;
	const char *why = "";
	uint32_t k;
	int rc;

	*more = 0;
	ipc_segments_req_encode(store_request(o, EF_OP_SEGMENTS, cl), r);
	if ((rc = ctl_ask(c, CTL_STORED, cl, o, &cr)) != CTL_OK)
		goto out;
	if (ipc_segments_rep_decode(cr.in.body, &sr, &why) != 0) {
		rc = ctl_malformed(why);
		goto out;
	}
	for (k = 0; k < sr.nsegments; k++) {
		if (ipc_segment_info_decode(&sr.segments->via.array.ptr[k],
		        &si, &why) != 0) {
			rc = ctl_malformed(why);
			goto out;
		}
		segment_print(c, &si);
		r->from = si.base + 1;
	}
	*more = sr.more && sr.nsegments > 0;
out:
	client_reply_free(&cr);
	return rc;
}

static int
cmd_segments(struct ctl *c, int argc, char **argv)
{
	struct ipc_segments_req r = { 0, 4096 };
	struct ef_client cl;
	struct ipc_out o;
	int i, more = 1, rc = CTL_OK;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else
			return ctl_usage("segments");
	}
	if ((rc = ctl_open(c, CTL_STORED, &cl, 0)) != 0)
		return rc;
	/* stored always has a segment being written: never empty */
	if (!c->json)
		printf("%-28s %20s %20s %12s %8s %6s\n", "SEGMENT", "FIRST",
		    "LAST", "BYTES", "STATE", "RATIO");
	ipc_out_init(&o);
	while (more && rc == CTL_OK)
		rc = segments_page(c, &cl, &o, &r, &more);
	ipc_out_free(&o);
	client_close(&cl);
	return rc;
}

/*
 * ARCHIVE, one segment per call, until none is eligible: a line per
 * segment as it is done.
 */
static int
cmd_archive(struct ctl *c, int argc, char **argv)
{
	char name[SEGFILE_NAME_MAX];
	struct ipc_archive_rep ar;
	struct client_reply cr;
	struct ef_client cl;
	struct ipc_out o;
	const char *why = "";
	uint64_t n = 0, raw = 0, comp = 0;
	int rc = CTL_OK;

	if (argc > 1 && !strcmp(argv[1], "--json"))
		c->json = 1;
	else if (argc > 1)
		return ctl_usage("archive");
	if ((rc = ctl_open(c, CTL_STORED, &cl, 0)) != 0)
		return rc;
	ipc_out_init(&o);
	for (;;) {
		ipc_nil(store_request(&o, EF_OP_ARCHIVE, &cl));
		if ((rc = ctl_ask(c, CTL_STORED, &cl, &o, &cr)) == CTL_OK &&
		    ipc_archive_rep_decode(cr.in.body, &ar, &why) != 0)
			rc = ctl_malformed(why);
		client_reply_free(&cr);
		if (rc != CTL_OK)
			break;
		if (!ar.archived)
			break;
		n++;
		raw += ar.raw_bytes;
		comp += ar.comp_bytes;
		segfile_name(name, sizeof(name), ar.base);
		if (c->json)
			printf("{\"segment\":\"%s\",\"bytes\":%" PRIu64
			       ",\"stored_bytes\":%" PRIu64
			       ",\"left\":%" PRIu64 "}\n",
			    name, ar.raw_bytes, ar.comp_bytes, ar.left);
		else
			printf("archived %s: %" PRIu64 " -> %" PRIu64 " bytes "
			       "(ratio %.2f); %" PRIu64 " left\n",
			    name, ar.raw_bytes, ar.comp_bytes,
			    ar.comp_bytes ?
			        (double)ar.raw_bytes / (double)ar.comp_bytes :
			        0.0,
			    ar.left);
		fflush(stdout);
		if (ar.left == 0)
			break;
	}
	if (rc == CTL_OK && !c->json)
		printf("%" PRIu64 " segments archived (%" PRIu64 " -> %" PRIu64
		       " bytes)\n",
		    n, raw, comp);
	ipc_out_free(&o);
	client_close(&cl);
	return rc;
}

const struct ctl_cmd ctl_store_cmds[] = {
	{ "append", cmd_append,
	    "append STREAM TYPE [PAYLOAD|-] [--expect "
	    "any|no-stream|N] [--event-id UUID] [--metadata TEXT]" },
	{ "read", cmd_read,
	    "read all|STREAM [--from N] [--count N] "
	    "[--backward]" },
	{ "tail", cmd_tail, "tail [all|STREAM] [--from N] [--count N]" },
	{ "streams", cmd_streams, "streams [--after UUID] [--count N]" },
	{ "status", cmd_status, "status" },
	{ "segments", cmd_segments,
	    "segments [--json]   (each segment's "
	    "positions, bytes, state, compression ratio)" },
	{ "archive", cmd_archive,
	    "archive [--json]   (compress every "
	    "eligible sealed segment now, with progress)" },
	{ "rotate", cmd_rotate,
	    "rotate [--json]   (seal the segment being "
	    "written now)" },
	{ "verify", cmd_verify,
	    "verify [--quiet]   (offline check of every "
	    "segment of --data-dir's log; progress on a terminal)" },
	{ NULL, NULL, NULL },
};
