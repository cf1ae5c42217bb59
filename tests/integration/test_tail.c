/* SPDX-License-Identifier: MIT */
/*
 * test_tail.c - `eventfoldctl tail` through a burst that nng pub/sub
 * cannot carry: 16 clients append 128000 events as fast as they can
 * while tail follows live with --json --count N. During the burst
 * tail's stdout is not read, so tail stalls and its subscriber queue
 * overflows: nng drops publish messages, and tail must fill every gap
 * by reading. Its output must then be exactly global positions 0..N-1,
 * in order, each line the event stored there.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"

TestSuite(tail, .fini = h_cleanup, .timeout = 240);

#define WRITERS    16
#define PER_WRITER 8000

struct writer {
	struct h_worker w; /* first */
	char stream[UUID_STR_LEN];
	int done;
	char error[1024];
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct h_result r;
	char id[UUID_STR_LEN], payload[64];
	int k;

	for (k = 0; k < PER_WRITER; k++) {
		snprintf(payload, sizeof(payload), "{\"k\":%d}", k);
		if (h_append1(&w->w.c, w->stream, EF_EXPECT_ANY, 0, h_uuid(id),
		        "Burst", payload, &r) != EF_S_OK) {
			snprintf(w->error, sizeof(w->error),
			    "append %d: %s: %s", k, ipc_status_name(r.status),
			    r.msg);
			return NULL;
		}
		w->done++;
	}
	return NULL;
}

/* Reads fd to EOF (or the deadline) into a malloc'd buffer. */
static char *
read_all_fd(int fd, size_t *lenp, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n;

	cr_assert_not_null(buf);
	for (;;) {
		int left = (int)(deadline - h_now_ms());

		if (h_now_ms() >= deadline)
			break;
		if (poll(&p, 1, left) <= 0)
			continue;
		if (len + 65536 + 1 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		n = read(fd, buf + len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

/* A stored s on tmpfs when there is one: fdatasync is then nearly free,
 * so the burst makes many more (smaller) batches than a disk allows,
 * i.e. many more publish messages than nng can queue. */
static void
start_on_tmpfs(struct h_stored *s, struct ef_client *c)
{
	struct stat sb;

	h_stored_init(s,
	    stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) &&
	            access("/dev/shm", W_OK) == 0 ?
	        h_tmpdir_in("/dev/shm") :
	        h_tmpdir(),
	    NULL);
	h_stored_start(s);
	h_client(c, s, 10000);
}

/*
 * The burst: WRITERS threads of PER_WRITER appends each. tail's stdout
 * is not read meanwhile: it blocks in a write once the pipe is full,
 * while its subscriber socket keeps taking publish messages until its
 * queue (8192) overflows and nng drops some. Stopping it (SIGSTOP)
 * instead would not do: tail would find the socket quiet when resumed
 * and read everything from the store, never meeting a gap in the live
 * messages.
 */
static void
burst(struct h_stored *sd, struct ef_client *cl, uint64_t total)
{
	static struct writer w[WRITERS];
	struct client_reply rep;
	struct ipc_status_rep st;
	int i;

	for (i = 0; i < WRITERS; i++)
		h_uuid(w[i].stream);
	h_workers_start(sd, w, sizeof(w[0]), WRITERS, writer_main, 20000);
	h_workers_join(w, sizeof(w[0]), WRITERS);
	for (i = 0; i < WRITERS; i++) {
		cr_assert_str_empty(w[i].error, "writer %d: %s", i,
		    w[i].error);
		client_close(&w[i].w.c);
	}
	cr_assert_eq(h_head(cl), total);
	cr_assert_eq(client_status(cl, &rep, &st), EF_S_OK);
	client_reply_free(&rep);
	fprintf(stderr,
	    "# %llu events in %llu published batches (more than "
	    "~8200 cannot all be queued for a stopped subscriber)\n",
	    (unsigned long long)st.events_written,
	    (unsigned long long)st.fsyncs);
}

/* tail's output out holds exactly positions 0..total-1, each the event
 * stored there (read through cl); out is cut into lines. */
static void
check_tail_output(struct ef_client *cl, char *out, uint64_t total)
{
	char *line, *next;
	struct h_event *evs;
	uint64_t expect = 0;
	size_t n;

	cr_assert_eq(h_read_all(cl, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, total);
	for (line = out; *line != '\0'; line = next) {
		json_t *o, *v;
		json_error_t je;
		char eid[UUID_STR_LEN], sid[UUID_STR_LEN];

		next = strchr(line, '\n');
		cr_assert_not_null(next, "an unterminated line at event %llu",
		    (unsigned long long)expect);
		*next++ = '\0';
		o = json_loads(line, 0, &je);
		cr_assert_not_null(o, "line %llu is not JSON: %s",
		    (unsigned long long)expect, line);
		v = json_object_get(o, "global_position");
		cr_assert(json_is_integer(v), "%s", line);
		cr_assert_lt(expect, total, "more than %llu events printed",
		    (unsigned long long)total);
		cr_assert_eq((uint64_t)json_integer_value(v), expect,
		    "line %llu has position %lld: a gap, a duplicate or a "
		    "reordering",
		    (unsigned long long)expect,
		    (long long)json_integer_value(v));
		uuid_format(evs[expect].event_id, eid);
		uuid_format(evs[expect].stream_id, sid);
		cr_assert_str_eq(json_string_value(
		                     json_object_get(o, "event_id")),
		    eid, "position %llu", (unsigned long long)expect);
		cr_assert_str_eq(json_string_value(
		                     json_object_get(o, "stream_id")),
		    sid);
		cr_assert_eq((uint64_t)json_integer_value(
		                 json_object_get(o, "stream_version")),
		    evs[expect].version);
		json_decref(o);
		expect++;
	}
	cr_assert_eq(expect, total, "tail printed %llu of %llu events",
	    (unsigned long long)expect, (unsigned long long)total);
	h_events_free(evs, n);
}

Test(tail, burst_without_gap_duplicate_or_reordering)
{
	const uint64_t total = (uint64_t)WRITERS * PER_WRITER;
	char count[32], errpath[H_PATH + 32], *out, *err;
	struct h_stored sd;
	struct ef_client cl;
	size_t len;
	uint64_t t0, t1;
	pid_t tail;
	int fd, wst;

	start_on_tmpfs(&sd, &cl);
	snprintf(count, sizeof(count), "%llu", (unsigned long long)total);
	snprintf(errpath, sizeof(errpath), "%s/tail.err", sd.dir);
	tail = h_ctl_spawn((const char *const[]){ "--runtime-dir", sd.run_dir,
	                       "tail", "all", "--json", "--count", count,
	                       NULL },
	    &fd, errpath);
	cr_assert_eq(h_wait_for_text(errpath, "caught up", 15000), 0,
	    "tail did not catch up on an empty store");
	t0 = h_now_ms();
	burst(&sd, &cl, total);
	t1 = h_now_ms();
	out = read_all_fd(fd, &len, 120000);
	fprintf(stderr, "# burst %llu ms, tail done %llu ms later\n",
	    (unsigned long long)(t1 - t0),
	    (unsigned long long)(h_now_ms() - t1));
	close(fd);
	wst = h_wait_pid(tail, 20000);
	err = h_read_file(errpath, NULL);
	cr_assert(wst != -1 && WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
	    "tail: wait status 0x%x, stderr:\n%s", wst, err);
	free(err);
	/* exactly positions 0..N-1, each the event stored there */
	check_tail_output(&cl, out, total);
	free(out);
	client_close(&cl);
}
