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

uint8_t *
ctl_read_stdin(size_t *len, size_t max)
{
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap), *nb;
	ssize_t r;

	if (buf == NULL)
		return NULL;
	while ((r = read(STDIN_FILENO, buf + n, cap - n)) > 0) {
		n += (size_t)r;
		if (n == cap) {
			if (cap >= max || (nb = realloc(buf, cap * 2)) == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
	}
	*len = n;
	return buf;
}

static int
cmd_append(struct ctl *c, int argc, char **argv)
{
	struct ipc_append_req r;
	struct ipc_proposed ev;
	struct ipc_append_rep rep;
	struct client_reply cr;
	struct ef_client cl;
	char idbuf[UUID_STR_LEN];
	uint8_t id[UUID_LEN], *stdin_buf = NULL;
	const char *stream = NULL, *type = NULL, *payload = NULL, *md = "";
	const char *eid = NULL, *why;
	size_t plen = 0;
	int i, pos = 0, st, rc;

	memset(&r, 0, sizeof(r));
	memset(&ev, 0, sizeof(ev));
	r.kind = EF_EXPECT_ANY;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--expect") && i + 1 < argc) {
			const char *e = argv[++i];

			if (!strcmp(e, "any"))
				r.kind = EF_EXPECT_ANY;
			else if (!strcmp(e, "no-stream") || !strcmp(e, "no_stream"))
				r.kind = EF_EXPECT_NO_STREAM;
			else if (ctl_parse_u64(e, &r.version) == 0)
				r.kind = EF_EXPECT_EXACT;
			else
				return ctl_err(CTL_USAGE, "--expect: any, "
				    "no-stream or a version number");
		} else if (!strcmp(argv[i], "--event-id") && i + 1 < argc)
			eid = argv[++i];
		else if (!strcmp(argv[i], "--metadata") && i + 1 < argc)
			md = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return ctl_err(CTL_USAGE, "append: unknown option %s",
			    argv[i]);
		else if (pos == 0)
			stream = argv[i], pos++;
		else if (pos == 1)
			type = argv[i], pos++;
		else if (pos == 2)
			payload = argv[i], pos++;
		else
			return ctl_err(CTL_USAGE, "append: too many arguments");
	}
	if (stream == NULL || type == NULL)
		return ctl_err(CTL_USAGE, "usage: append STREAM TYPE "
		    "[PAYLOAD|-] [--expect any|no-stream|N] [--event-id UUID] "
		    "[--metadata TEXT]");
	if (payload != NULL && !strcmp(payload, "-")) {
		if ((stdin_buf = ctl_read_stdin(&plen, 64u << 20)) == NULL)
			return ctl_err(CTL_USAGE, "cannot read the payload "
			    "from stdin");
		ev.payload = stdin_buf;
	} else if (payload != NULL) {
		ev.payload = (const uint8_t *)payload;
		plen = strlen(payload);
	}
	ev.payload_len = (uint32_t)plen;
	if (eid == NULL) {
		uuid_random(id);
		eid = uuid_format(id, idbuf);
	}
	ev.event_id.ptr = eid;
	ev.event_id.len = (uint32_t)strlen(eid);
	ev.type.ptr = type;
	ev.type.len = (uint32_t)strlen(type);
	ev.metadata = (const uint8_t *)md;
	ev.metadata_len = (uint32_t)strlen(md);
	r.stream_id.ptr = stream;
	r.stream_id.len = (uint32_t)strlen(stream);
	r.nevents = 1;
	r.events = &ev;
	if (client_open(&cl, c->store_url, (int)c->conf.timeout_ms) != 0) {
		free(stdin_buf);
		return ctl_err(CTL_USAGE, "bad store URL %s", c->store_url);
	}
	st = client_append(&cl, &r, &cr);
	if (st != EF_S_OK) {
		rc = ctl_status_exit(st, &cr.in.message);
		goto out;
	}
	if (ipc_append_rep_decode(cr.in.body, &rep, &why) != 0) {
		rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
		goto out;
	}
	if (c->json)
		printf("{\"event_id\":\"%s\",\"first_stream_version\":%" PRIu64
		    ",\"last_stream_version\":%" PRIu64 ",\"first_global_"
		    "position\":%" PRIu64 ",\"last_global_position\":%" PRIu64
		    "}\n", eid, rep.first_version, rep.last_version,
		    rep.first_pos, rep.last_pos);
	else
		printf("appended event %s: stream version %" PRIu64
		    ", global position %" PRIu64 "\n", eid, rep.last_version,
		    rep.last_pos);
	rc = CTL_OK;
out:
	client_reply_free(&cr);
	client_close(&cl);
	free(stdin_buf);
	return rc;
}

static int
cmd_read(struct ctl *c, int argc, char **argv)
{
	struct client_reply cr;
	struct ipc_read_rep rr;
	struct ef_client cl;
	struct ef_event ev;
	const char *target = NULL, *why;
	uint64_t from = 0, count = UINT64_MAX, done = 0, page, i;
	int backward = 0, from_set = 0, header = 0, st, rc = CTL_OK;

	for (i = 1; i < (uint64_t)argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < (uint64_t)argc) {
			if (ctl_parse_u64(argv[++i], &from) != 0)
				return ctl_err(CTL_USAGE, "--from: a number");
			from_set = 1;
		} else if (!strcmp(argv[i], "--count") && i + 1 < (uint64_t)argc) {
			if (ctl_parse_u64(argv[++i], &count) != 0)
				return ctl_err(CTL_USAGE, "--count: a number");
		} else if (!strcmp(argv[i], "--backward"))
			backward = 1;
		else if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (argv[i][0] == '-')
			return ctl_err(CTL_USAGE, "read: unknown option %s",
			    argv[i]);
		else if (target == NULL)
			target = argv[i];
		else
			return ctl_err(CTL_USAGE, "read: too many arguments");
	}
	if (target == NULL)
		return ctl_err(CTL_USAGE, "usage: read all|STREAM [--from N] "
		    "[--count N] [--backward] [--json]");
	if (backward && !from_set)
		from = EF_FROM_END;
	if (client_open(&cl, c->store_url, (int)c->conf.timeout_ms) != 0)
		return ctl_err(CTL_USAGE, "bad store URL %s", c->store_url);
	while (done < count) {
		page = count - done;
		if (!strcmp(target, "all"))
			st = client_read_all(&cl, from, page, backward, &cr, &rr);
		else
			st = client_read_stream(&cl, target, from, page,
			    backward, &cr, &rr);
		if (st != EF_S_OK) {
			rc = ctl_status_exit(st, &cr.in.message);
			client_reply_free(&cr);
			break;
		}
		if (done == 0 && !header) {
			out_event_header(c);
			header = 1;
		}
		for (i = 0; i < rr.nevents; i++) {
			if (ipc_event_decode(&rr.events->via.array.ptr[i], &ev,
			    &why) != 0) {
				rc = ctl_err(CTL_INTERNAL, "malformed event: %s",
				    why);
				break;
			}
			out_event(c, &ev);
			done++;
			if (!strcmp(target, "all"))
				from = ev.global_position;
			else
				from = ev.stream_version;
		}
		client_reply_free(&cr);
		if (rc != CTL_OK || rr.nevents == 0)
			break;
		if (backward) {
			if (from == 0)
				break;
			from--;
		} else
			from++;
	}
	client_close(&cl);
	fflush(stdout);
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

static int
tail_event(void *arg, const struct ef_event *ev)
{
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
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--from") && i + 1 < argc) {
			if (ctl_parse_u64(argv[++i], &from) != 0)
				return ctl_err(CTL_USAGE, "--from: a number");
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			if (ctl_parse_u64(argv[++i], &count) != 0 || count == 0)
				return ctl_err(CTL_USAGE, "--count: a number "
				    "above 0");
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
			return ctl_err(CTL_REFUSED, "BAD_UUID: malformed stream "
			    "id \"%s\"", stream);
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
	out_event_header(c);
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

static int
cmd_streams(struct ctl *c, int argc, char **argv)
{
	struct ipc_list_req r;
	struct ipc_list_rep lr;
	struct ipc_stream_info si;
	struct client_reply cr;
	struct ipc_out o;
	struct ef_client cl;
	char sid[UUID_STR_LEN], after[UUID_STR_LEN];
	const char *why;
	uint64_t count = UINT64_MAX, done = 0;
	uint32_t k;
	int i, st, rc = CTL_OK;

	memset(&r, 0, sizeof(r));
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--after") && i + 1 < argc) {
			snprintf(after, sizeof(after), "%s", argv[++i]);
			r.has_after = true;
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			if (ctl_parse_u64(argv[++i], &count) != 0)
				return ctl_err(CTL_USAGE, "--count: a number");
		} else if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else
			return ctl_err(CTL_USAGE, "usage: streams [--after "
			    "UUID] [--count N] [--json]");
	}
	if (client_open(&cl, c->store_url, (int)c->conf.timeout_ms) != 0)
		return ctl_err(CTL_USAGE, "bad store URL %s", c->store_url);
	if (!c->json)
		printf("%-36s %12s %14s\n", "STREAM", "EVENTS", "LATEST_VERSION");
	ipc_out_init(&o);
	while (done < count) {
		r.after.ptr = after;
		r.after.len = r.has_after ? (uint32_t)strlen(after) : 0;
		r.max_count = count - done;
		ipc_out_reset(&o);
		ipc_request_begin(&o, EF_OP_LIST_STREAMS, client_request_id(&cl));
		ipc_list_req_encode(&o, &r);
		st = client_call(&cl, &o, &cr);
		if (st != EF_S_OK) {
			rc = ctl_status_exit(st, &cr.in.message);
			client_reply_free(&cr);
			break;
		}
		if (ipc_list_rep_decode(cr.in.body, &lr, &why) != 0) {
			rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
			client_reply_free(&cr);
			break;
		}
		for (k = 0; k < lr.nstreams; k++) {
			if (ipc_stream_info_decode(&lr.streams->via.array.ptr[k],
			    &si, &why) != 0)
				break;
			uuid_format(si.stream_id, sid);
			if (c->json)
				printf("{\"stream_id\":\"%s\",\"event_count\":%"
				    PRIu64 ",\"latest_version\":%" PRIu64 "}\n",
				    sid, si.event_count, si.latest_version);
			else
				printf("%-36s %12" PRIu64 " %14" PRIu64 "\n",
				    sid, si.event_count, si.latest_version);
			memcpy(after, sid, sizeof(after));
			r.has_after = true;
			done++;
		}
		client_reply_free(&cr);
		if (!lr.more || lr.nstreams == 0)
			break;
	}
	ipc_out_free(&o);
	client_close(&cl);
	return rc;
}

static int
cmd_status(struct ctl *c, int argc, char **argv)
{
	struct ipc_status_rep s;
	struct client_reply cr;
	struct ef_client cl;
	int st, rc = CTL_OK;

	if (argc > 1 && !strcmp(argv[1], "--json"))
		c->json = 1;
	else if (argc > 1)
		return ctl_err(CTL_USAGE, "usage: status [--json]");
	if (client_open(&cl, c->store_url, (int)c->conf.timeout_ms) != 0)
		return ctl_err(CTL_USAGE, "bad store URL %s", c->store_url);
	st = client_status(&cl, &cr, &s);
	if (st != EF_S_OK) {
		rc = ctl_status_exit(st, &cr.in.message);
	} else if (c->json) {
		printf("{\"head\":%" PRIu64 ",\"streams\":%" PRIu64
		    ",\"log_bytes\":%" PRIu64 ",\"uptime_ms\":%" PRIu64
		    ",\"commits\":%" PRIu64 ",\"fsyncs\":%" PRIu64
		    ",\"events_written\":%" PRIu64 ",\"avg_batch\":%.2f"
		    ",\"recover_ms\":%" PRIu64 ",\"recovered_events\":%" PRIu64
		    ",\"index_bytes\":%" PRIu64 "}\n", s.head, s.streams,
		    s.log_bytes, s.uptime_ms, s.commits, s.fsyncs,
		    s.events_written, s.fsyncs ? (double)s.events_written /
		    (double)s.fsyncs : 0.0, s.recover_ms, s.recovered_events,
		    s.index_bytes);
	} else {
		printf("head position     %" PRIu64 "\n"
		       "streams           %" PRIu64 "\n"
		       "log bytes         %" PRIu64 "\n"
		       "uptime            %.1f s\n"
		       "appends committed %" PRIu64 "\n"
		       "fsyncs            %" PRIu64 "\n"
		       "events written    %" PRIu64 "\n"
		       "average batch     %.2f events per fsync\n"
		       "recovery          %" PRIu64 " events in %" PRIu64 " ms\n"
		       "index memory      %" PRIu64 " bytes\n",
		    s.head, s.streams, s.log_bytes, (double)s.uptime_ms / 1000.0,
		    s.commits, s.fsyncs, s.events_written, s.fsyncs ?
		    (double)s.events_written / (double)s.fsyncs : 0.0,
		    s.recovered_events, s.recover_ms, s.index_bytes);
	}
	client_reply_free(&cr);
	client_close(&cl);
	return rc;
}

static int
cmd_verify(struct ctl *c, int argc, char **argv)
{
	char path[4200];
	struct stat sb;
	const uint8_t *img;
	uint64_t base, off, len, size, batches = 0, events = 0, pos;
	int fd, rc;

	if (argc > 1)
		return ctl_err(CTL_USAGE, "usage: verify (checks "
		    "--data-dir's events.log)");
	snprintf(path, sizeof(path), "%s/events.log", c->conf.data_dir);
	if ((fd = open(path, O_RDONLY)) < 0)
		return ctl_err(CTL_NOT_FOUND, "%s: %s", path, strerror(errno));
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return ctl_err(CTL_INTERNAL, "%s: %s", path, strerror(errno));
	}
	if (sb.st_size < LOGFILE_HDR) {
		/* stored's creation was interrupted: it writes it again */
		close(fd);
		printf("%s: OK: no events (%lld bytes, shorter than the "
		    "header: an interrupted creation stored redoes on start)\n",
		    path, (long long)sb.st_size);
		return CTL_OK;
	}
	size = (uint64_t)sb.st_size;
	img = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (img == MAP_FAILED)
		return ctl_err(CTL_INTERNAL, "mmap %s: %s", path,
		    strerror(errno));
	if (logfile_hdr_decode(img, size, &base) != REC_OK) {
		munmap((void *)img, size);
		return ctl_err(CTL_CORRUPT, "%s: bad file header", path);
	}
	pos = base;
	for (off = LOGFILE_HDR; off < size; off += len) {
		if (batch_verify(img, size, off, pos, 1, &len) != 0)
			break;
		pos += get_le32(img + off + 8);
		batches++;
	}
	events = pos - base;
	if (off == size) {
		printf("%s: OK: %" PRIu64 " events in %" PRIu64 " batches, %"
		    PRIu64 " bytes\n", path, events, batches, size);
		rc = CTL_OK;
	} else if (!batch_find_after(img, size, off)) {
		printf("%s: OK: %" PRIu64 " events in %" PRIu64 " batches; "
		    "torn tail of %" PRIu64 " bytes at offset %" PRIu64
		    " (an unacknowledged write; stored truncates it on "
		    "start)\n", path, events, batches, size - off, off);
		rc = CTL_OK;
	} else {
		printf("%s: CORRUPT at offset %" PRIu64 " (after %" PRIu64
		    " intact events); intact data follows. Start stored with "
		    "--repair yes to cut the log there (drops %" PRIu64
		    " bytes), or restore from a backup.\n", path, off, events,
		    size - off);
		rc = CTL_CORRUPT;
	}
	munmap((void *)img, size);
	(void)c;
	return rc;
}

const struct ctl_cmd ctl_store_cmds[] = {
	{ "append", cmd_append, "append STREAM TYPE [PAYLOAD|-] [--expect "
	    "any|no-stream|N] [--event-id UUID] [--metadata TEXT]" },
	{ "read", cmd_read, "read all|STREAM [--from N] [--count N] "
	    "[--backward]" },
	{ "tail", cmd_tail, "tail [all|STREAM] [--from N] [--count N]" },
	{ "streams", cmd_streams, "streams [--after UUID] [--count N]" },
	{ "status", cmd_status, "status" },
	{ "verify", cmd_verify, "verify   (offline check of --data-dir's log)" },
	{ NULL, NULL, NULL },
};
