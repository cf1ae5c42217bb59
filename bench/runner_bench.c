/* SPDX-License-Identifier: MIT */
/*
 * runner_bench.c - eventfold-runner-bench: how fast eventfold-runnerd
 * folds and executes, against a real eventfold-stored, both spawned in a
 * temporary directory with the counter example plugin only.
 *
 *   projection_catchup   N events already in the log, runnerd started:
 *                        events/s folded into LMDB by "counters"
 *   projection_live      append one event, then QUERY with
 *                        min_position: latency until it is readable
 *   stored_append_cK     K clients appending one event each to their
 *                        own stream (stored's own rate, for comparison)
 *   execute_cK           K clients, EXECUTE Increment on their own
 *                        counter instance
 *
 * Prints one line per measure: NAME events_per_s=... p50_us=...
 * p99_us=... (catch-up has no per-event latency: p50_us/p99_us give the
 * time per 1000 events folded, from progress samples).
 *
 *   eventfold-runner-bench [--build DIR] [--events N] [--seconds S]
 *       [--clients 1,8,32]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "ipc_runner.h"
#include "util.h"
#include "uuid5.h"

#ifndef EF_BUILD_ROOT
#define EF_BUILD_ROOT "."
#endif

static char dir[256], data[300], run[300], plugins[300];
static char store_url[400], events_url[400], runner_url[400];
static const char *build = EF_BUILD_ROOT;
static pid_t stored_pid, runnerd_pid;

static pid_t
spawn(const char *log, char *const argv[])
{
	pid_t pid = fork();
	int fd;

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Prints a measure's line; frees the samples lat. */
static void
report(const char *name, double eps, struct lat *lat)
{
	printf("%s events_per_s=%.0f p50_us=%.0f p99_us=%.0f\n", name, eps,
	    lat_pct(lat, 0.50), lat_pct(lat, 0.99));
	fflush(stdout);
	lat_free(lat);
}

static void
start_stored(void)
{
	char bin[600], log[400];
	char *argv[] = { bin, "--data-dir", data, "--runtime-dir", run, NULL };
	struct ef_client c;
	struct client_reply cr;
	struct ipc_status_rep st;
	int i;

	snprintf(bin, sizeof(bin), "%s/daemons/stored/eventfold-stored",
	    build);
	snprintf(log, sizeof(log), "%s/stored.log", dir);
	stored_pid = spawn(log, argv);
	client_open(&c, store_url, 1000);
	for (i = 0; i < 400; i++) {
		int s = client_status(&c, &cr, &st);

		client_reply_free(&cr);
		if (s == EF_S_OK)
			break;
		sleep_ms(25);
	}
	client_close(&c);
}

static void
start_runnerd(void)
{
	char bin[600], log[400];
	char *argv[] = { bin, "--data-dir", data, "--runtime-dir", run,
		"--plugin-dir", plugins, "--workers", "48", NULL };

	snprintf(bin, sizeof(bin), "%s/daemons/runnerd/eventfold-runnerd",
	    build);
	snprintf(log, sizeof(log), "%s/runnerd.log", dir);
	runnerd_pid = spawn(log, argv);
}

/* The position of projection "counters", or -1. */
static int64_t
counters_position(struct ef_client *c)
{
	struct ipc_runner_status_rep sr;
	struct ipc_fold_info f;
	struct client_reply cr;
	struct ipc_out o;
	const char *why;
	int64_t pos = -1;
	uint32_t i;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_RUNNER_STATUS, 1);
	ipc_nil(&o);
	if (client_call(c, &o, &cr) == EF_S_OK &&
	    ipc_runner_status_rep_decode(cr.in.body, &sr, &why) == 0)
		for (i = 0; i < sr.nfolds; i++)
			if (ipc_fold_info_decode(&sr.folds->via.array.ptr[i],
			        &f, &why) == 0 &&
			    f.name.len == 8 &&
			    !memcmp(f.name.ptr, "counters", 8))
				pos = (int64_t)f.position;
	ipc_out_free(&o);
	client_reply_free(&cr);
	return pos;
}

static int
append_one(struct ef_client *c, const char *sid, const char *inst, uint32_t n)
{
	struct ipc_append_req r;
	struct ipc_proposed *ev = calloc(n, sizeof(*ev));
	char(*ids)[UUID_STR_LEN] = calloc(n, UUID_STR_LEN), meta[200];
	struct client_reply cr;
	uint8_t e[UUID_LEN];
	uint32_t i;
	int st;

	snprintf(meta, sizeof(meta),
	    "{\"aggregate_type\":\"counter\","
	    "\"instance_id\":\"%s\"}",
	    inst);
	for (i = 0; i < n; i++) {
		uuid_random(e);
		ev[i].event_id = ipc_cstr(uuid_format(e, ids[i]));
		ev[i].type = ipc_cstr("Incremented");
		ev[i].metadata = (const uint8_t *)meta;
		ev[i].metadata_len = (uint32_t)strlen(meta);
		ev[i].payload = (const uint8_t *)"null";
		ev[i].payload_len = 4;
	}
	memset(&r, 0, sizeof(r));
	r.stream_id = ipc_cstr(sid);
	r.kind = EF_EXPECT_ANY;
	r.nevents = n;
	r.events = ev;
	st = client_append(c, &r, &cr);
	client_reply_free(&cr);
	free(ev);
	free(ids);
	return st;
}

struct load {
	int id;
	int execute;
	double seconds;
	struct lat lat;
	volatile int *go;
};

static void *
load_main(void *arg)
{
	struct load *l = arg;
	struct ef_client c;
	struct ipc_exec_req r;
	struct client_reply cr;
	struct ipc_out o;
	char inst[64], sid[UUID_STR_LEN], cmd[UUID_STR_LEN];
	uint8_t id[UUID_LEN];
	uint64_t t0, t, end;
	int st;

	client_open(&c, l->execute ? runner_url : store_url, 10000);
	snprintf(inst, sizeof(inst), "bench-%s-%d", l->execute ? "x" : "a",
	    l->id);
	uuid_stream_id("counter", 7, inst, strlen(inst), id);
	uuid_format(id, sid);
	while (!*l->go)
		sleep_ms(1);
	end = now_ns() + (uint64_t)(l->seconds * 1e9);
	while ((t0 = now_ns()) < end) {
		if (l->execute) {
			memset(&r, 0, sizeof(r));
			r.aggregate_type = ipc_cstr("counter");
			r.instance_id = ipc_cstr(inst);
			r.type = ipc_cstr("Increment");
			uuid_random(id);
			r.command_id = ipc_cstr(uuid_format(id, cmd));
			ipc_out_init(&o);
			ipc_request_begin(&o, EF_OP_EXECUTE, 1);
			ipc_exec_req_encode(&o, &r);
			st = client_call(&c, &o, &cr);
			ipc_out_free(&o);
			client_reply_free(&cr);
		} else
			st = append_one(&c, sid, inst, 1);
		t = now_ns();
		if (st != EF_S_OK) {
			fprintf(stderr, "load: status %s\n",
			    ipc_status_name(st));
			continue;
		}
		lat_add(&l->lat, (double)(t - t0) / 1e3);
	}
	client_close(&c);
	return NULL;
}

static void
run_load(int clients, int execute, double seconds)
{
	struct load *ls = calloc((size_t)clients, sizeof(*ls));
	pthread_t *th = calloc((size_t)clients, sizeof(*th));
	volatile int go = 0;
	struct lat all = { 0 };
	uint64_t t0, t1;
	char name[64];
	int i;

	for (i = 0; i < clients; i++) {
		ls[i].id = i;
		ls[i].execute = execute;
		ls[i].seconds = seconds;
		ls[i].go = &go;
		pthread_create(&th[i], NULL, load_main, &ls[i]);
	}
	sleep_ms(200);
	t0 = now_ns();
	go = 1;
	for (i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	t1 = now_ns();
	for (i = 0; i < clients; i++) {
		lat_merge(&all, &ls[i].lat);
		lat_free(&ls[i].lat);
	}
	snprintf(name, sizeof(name), "%s_c%d",
	    execute ? "execute" : "stored_append", clients);
	report(name, (double)all.n * 1e9 / (double)(t1 - t0), &all);
	free(ls);
	free(th);
}

/*
 * Starts runnerd on a log of events and times the counters projection
 * catching up: events per second, and the time per 1000 events between
 * polls (100000 samples at most).
 */
static void
catchup_case(struct ef_client *runner, uint64_t events)
{
	struct lat lat = { 0 };
	uint64_t t0, t, last_t;
	int64_t pos, last_pos = 0;

	t0 = now_ns();
	start_runnerd();
	last_t = t0;
	for (;;) {
		pos = counters_position(runner);
		t = now_ns();
		if (pos > 0 && last_pos == 0) {
			last_pos = pos; /* started: time from here */
			last_t = t;
		} else if (pos > last_pos && lat.n < 100000) {
			/* ns per event: us per 1000 events */
			lat_add(&lat,
			    (double)(t - last_t) / (double)(pos - last_pos));
			last_pos = pos;
			last_t = t;
		}
		if (pos >= (int64_t)events)
			break;
		sleep_ms(5);
	}
	report("projection_catchup", (double)events * 1e9 / (double)(t - t0),
	    &lat);
}

/* Read-your-writes latency: append, then QUERY with min_position (the
 * log holding events before). */
static void
live_case(struct ef_client *store, struct ef_client *runner, uint64_t events)
{
	struct lat lat = { 0 };
	char sid[UUID_STR_LEN];
	uint8_t id[UUID_LEN];
	uint64_t t0, i;

	uuid_stream_id("counter", 7, "live", 4, id);
	uuid_format(id, sid);
	t0 = now_ns();
	for (i = 0; i < 2000; i++) {
		struct ipc_query_req q;
		struct client_reply cr;
		struct ipc_out o;
		uint64_t s = now_ns();

		append_one(store, sid, "live", 1);
		memset(&q, 0, sizeof(q));
		q.projection = ipc_cstr("counters");
		q.mode = EF_QUERY_KEY;
		q.has_key = true;
		q.key = (const uint8_t *)"live";
		q.key_len = 4;
		q.has_min_position = true;
		q.min_position = events + i;
		q.wait_ms = 5000;
		ipc_out_init(&o);
		ipc_request_begin(&o, EF_OP_QUERY, 1);
		ipc_query_req_encode(&o, &q);
		if (client_call(runner, &o, &cr) != EF_S_OK)
			fprintf(stderr, "query: %.*s\n",
			    (int)cr.in.message.len, cr.in.message.ptr);
		ipc_out_free(&o);
		client_reply_free(&cr);
		lat_add(&lat, (double)(now_ns() - s) / 1e3);
	}
	report("projection_live", 2000.0 * 1e9 / (double)(now_ns() - t0),
	    &lat);
}

int
main(int argc, char **argv)
{
	struct ef_client store, runner;
	char src[600], dst[400], sid[UUID_STR_LEN], inst[32], cmd[400];
	const char *clients = "1,8,32";
	uint64_t events = 200000, i;
	double seconds = 5;
	uint8_t id[UUID_LEN];
	char *list, *tok;
	int k;

	for (k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--build") && k + 1 < argc)
			build = argv[++k];
		else if (!strcmp(argv[k], "--events") && k + 1 < argc)
			events = strtoull(argv[++k], NULL, 10);
		else if (!strcmp(argv[k], "--seconds") && k + 1 < argc)
			seconds = atof(argv[++k]);
		else if (!strcmp(argv[k], "--clients") && k + 1 < argc)
			clients = argv[++k];
		else {
			fprintf(stderr,
			    "usage: eventfold-runner-bench [--build "
			    "DIR] [--events N] [--seconds S] [--clients "
			    "1,8,32]\n");
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/ef-runner-bench.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(run, sizeof(run), "%s/run", dir);
	snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
	mkdir(data, 0750);
	mkdir(run, 0750);
	mkdir(plugins, 0755);
	snprintf(src, sizeof(src), "cp '%s/examples/plugins/counter.so' '%s/'",
	    build, plugins);
	if (system(src) != 0)
		return 1;
	snprintf(store_url, sizeof(store_url), "ipc://%s/store.sock", run);
	snprintf(events_url, sizeof(events_url), "ipc://%s/store-events.sock",
	    run);
	snprintf(runner_url, sizeof(runner_url), "ipc://%s/runner.sock", run);
	(void)dst;
	start_stored();
	client_open(&store, store_url, 10000);
	/* the log to catch up on: 1000-event batches over 100 counters */
	for (i = 0; i < events / 1000; i++) {
		snprintf(inst, sizeof(inst), "c-%" PRIu64, i % 100);
		uuid_stream_id("counter", 7, inst, strlen(inst), id);
		if (append_one(&store, uuid_format(id, sid), inst, 1000) !=
		    EF_S_OK) {
			fprintf(stderr, "cannot fill the log\n");
			return 1;
		}
	}
	events = events / 1000 * 1000;
	client_open(&runner, runner_url, 10000);
	catchup_case(&runner, events);
	live_case(&store, &runner, events);
	list = strdup(clients);
	for (tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
		run_load(atoi(tok), 0, seconds);
		run_load(atoi(tok), 1, seconds);
	}
	free(list);
	client_close(&store);
	client_close(&runner);
	kill(runnerd_pid, SIGTERM);
	waitpid(runnerd_pid, NULL, 0);
	kill(stored_pid, SIGTERM);
	waitpid(stored_pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return 0;
}
