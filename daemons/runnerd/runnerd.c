/* SPDX-License-Identifier: MIT */
/*
 * runnerd.c - eventfold-runnerd: main, configuration, lifecycle,
 * signals and housekeeping.
 *
 * Start: parse config and flags, load the plugins, open the LMDB
 * environment (DATA_DIR/runner/, after any fork), connect to stored,
 * start the aggregate writer, the folds (projections and process
 * managers) and the workers on runner.sock, then tell systemd READY=1.
 * The main thread then waits for signals and, twice a second, computes
 * fold rates and evicts idle aggregate instances. SIGTERM/SIGINT: stop
 * taking requests, finish those in flight, stop the folds at a batch
 * boundary, flush the writer, close LMDB, exit 0. See
 * eventfold-runnerd(8).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "clock.h"
#include "conf.h"
#include "daemon.h"
#include "env.h"
#include "log.h"
#include "aggregate.h"
#include "dispatch.h"
#include "fold.h"
#include "plugin.h"
#include "probe.h"
#include "runnerd.h"
#include "state.h"

#ifndef EF_PLUGIN_DIR
#define EF_PLUGIN_DIR "/usr/lib/eventfold/plugins"
#endif

#define OFF(f) offsetof(struct runner_conf, f)

static const struct conf_key runner_keys[] = {
	{ "data_dir", CONF_STR, OFF(data_dir), "/var/lib/eventfold",
	    "runnerd keeps its LMDB environment in DATA_DIR/runner" },
	{ "runtime_dir", CONF_STR, OFF(runtime_dir), "/run/eventfold",
	    "directory of the IPC sockets" },
	{ "plugin_dir", CONF_STR, OFF(plugin_dir), EF_PLUGIN_DIR,
	    "directory of the plugins (*.so) to load" },
	{ "runner_url", CONF_STR, OFF(runner_url), "",
	    "nng URL of the request socket (default ipc://RUNTIME_DIR/"
	    "runner.sock)" },
	{ "store_url", CONF_STR, OFF(store_url), "",
	    "nng URL of stored's request socket" },
	{ "events_url", CONF_STR, OFF(events_url), "",
	    "nng URL of stored's publish socket" },
	{ "workers", CONF_U64, OFF(workers), "16",
	    "request contexts (threads) serving clients" },
	{ "map_size", CONF_SIZE, OFF(map_size), "16G",
	    "LMDB map size at the first start (reserved, sparse; doubles "
	    "when full)" },
	{ "max_retries", CONF_U64, OFF(max_retries), "10",
	    "EXECUTE retries after a version conflict before ABORTED" },
	{ "command_retention", CONF_U64, OFF(command_retention), "1000000",
	    "command results (EXECUTE's command ids) remembered, newest "
	    "first (0: no bound)" },
	{ "command_retention_s", CONF_U64, OFF(command_retention_s), "604800",
	    "seconds a command id is remembered after its events "
	    "(0: no bound)" },
	{ "snapshot_every", CONF_U64, OFF(snapshot_every), "16",
	    "events between snapshots of an aggregate instance (0: never)" },
	{ "idle_evict_s", CONF_U64, OFF(idle_evict_s), "300",
	    "seconds before an idle aggregate instance leaves memory" },
	{ "pm_retries", CONF_U64, OFF(pm_retries), "5",
	    "attempts of a process manager's command before a dead letter" },
	{ "pm_backoff_ms", CONF_U64, OFF(pm_backoff_ms), "100",
	    "first retry delay of a process manager's command (doubles)" },
	{ "fold_batch", CONF_U64, OFF(fold_batch), "8192",
	    "most events in one projection transaction" },
	{ "commit_interval_ms", CONF_U64, OFF(commit_interval_ms), "10",
	    "least time between two LMDB commits of a fold or of the "
	    "aggregate writer while busy (a quiet fold commits at once)" },
	{ "page", CONF_U64, OFF(page), "4096",
	    "events per catch-up read from stored" },
	{ "store_wait_s", CONF_U64, OFF(store_wait_s), "10",
	    "at start, seconds to wait for stored before exiting (0: "
	    "forever)" },
	{ NULL, 0, 0, NULL, NULL },
};

/* main's: every other module is handed the pointer it needs. */
static struct runner rd;

uint64_t
now_ms(void)
{
	return clock_mono_ms();
}

uint64_t
wall_ms(void)
{
	return clock_wall_ms();
}

int
runner_nap(struct runner *r, uint64_t ms)
{
	return daemon_nap(&r->stopping, ms);
}

int
runner_store_connected(struct runner *r, uint64_t wait_ms)
{
	uint64_t end = now_ms() + wait_ms;
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	while (dialer_pipes(&r->store.dialer) == 0) {
		/*
		 * No call goes out to notice a dialer nng 1.5 stopped
		 * (guard.h), so say it is suspect, as an unanswered call
		 * would; the guard re-dials it only if it stays still.
		 */
		dialer_kick(&r->store.dialer);
		if (now_ms() >= end || r->stopping)
			return 0;
		nanosleep(&ts, NULL);
	}
	return 1;
}

/*
 * At start, a store that is not there is most likely a wrong
 * --runtime-dir or store_url (eventfold-plugin(7)'s second runnerd):
 * wait store_wait_s for it (stored may be starting too), then refuse to
 * run, naming the URL, instead of serving folds that never move.
 */
static void
store_wait_start(struct runner *r)
{
	char why[4400];
	uint64_t s = r->conf.store_wait_s;

	if (s == 0 || runner_store_connected(r, 1000))
		return;
	log_warnx("waiting up to %" PRIu64 " s for eventfold-stored at %s", s,
	    r->store_url);
	if (runner_store_connected(r, s * 1000 - 1000))
		return;
	if (probe_rep(r->store_url, 1000, why, sizeof(why)) > PROBE_NOT_IPC)
		fatalx("no eventfold-stored at %s after %" PRIu64
		       " s: %s (set "
		       "--runtime-dir or --store-url)",
		    r->store_url, s, why);
	fatalx("no eventfold-stored answers at %s after %" PRIu64 " s (set "
	       "--runtime-dir or --store-url)",
	    r->store_url, s);
}

void
runner_pace(struct runner *r, uint64_t since, const volatile int *f1,
    const volatile int *f2)
{
	struct timespec ts = { 0, 500 * 1000 };
	uint64_t end = since + r->conf.commit_interval_ms;

	while (now_ms() < end && !r->stopping &&
	    (f1 == NULL || !__atomic_load_n(f1, __ATOMIC_RELAXED)) &&
	    (f2 == NULL || !__atomic_load_n(f2, __ATOMIC_RELAXED)))
		nanosleep(&ts, NULL);
}

/* 0 in these keys: at least one batch, page and attempt. */
static const struct daemon_clamp runner_clamps[] = {
	{ "fold_batch", 1, 0, 0 },
	{ "page", 1000, 0, 0 },
	{ "pm_retries", 1, 0, 0 },
	{ NULL, 0, 0, 0 },
};

/*
 * Start: the URLs and directories, the plugins, LMDB, the connection to
 * stored, then the aggregate writer, the folds and the request socket.
 * Returns the number of plugins loaded; fatal on any failure.
 */
static int
runner_open(struct runner *r)
{
	char dir[4200];
	int rc, nplugins;

	client_url(r->store_url, sizeof(r->store_url), r->conf.runtime_dir,
	    STORE_SOCK, r->conf.store_url);
	client_url(r->events_url, sizeof(r->events_url), r->conf.runtime_dir,
	    STORE_EVENTS_SOCK, r->conf.events_url);
	client_url(r->runner_url, sizeof(r->runner_url), r->conf.runtime_dir,
	    RUNNER_SOCK, r->conf.runner_url);
	if (!*r->conf.runner_url &&
	    (rc = daemon_mkdir_p(r->conf.runtime_dir, 0750)) != 0)
		fatalx("runtime dir %s: %s", r->conf.runtime_dir,
		    strerror(-rc));
	snprintf(dir, sizeof(dir), "%s/runner", r->conf.data_dir);
	if ((rc = daemon_mkdir_p(dir, 0750)) != 0)
		fatalx("data dir %s: %s", dir, strerror(-rc));

	nplugins = plugin_load_dir(r->conf.plugin_dir);
	log_info("%d plugins loaded from %s", nplugins, r->conf.plugin_dir);

	/* LMDB after any fork (there is none: -d only keeps us verbose). */
	if (state_open(dir, r->conf.map_size) != 0)
		fatalx("cannot open the LMDB environment in %s", dir);
	if (client_open(&r->store, r->store_url, 5000) != 0 ||
	    pipeline_open(&r->appends, r->store_url, 5000) != 0)
		fatalx("bad store URL %s", r->store_url);
	store_wait_start(r);
	if (aggregate_start(r) != 0)
		fatalx("cannot start the aggregate writer");
	if (fold_start_all(r) != 0)
		fatalx("cannot start the projections and process managers");
	if ((rc = dispatch_start(r)) != 0)
		fatalx("listen %s: %s", r->runner_url, strerror(-rc));
	log_info("serving %s (store %s)", r->runner_url, r->store_url);
	return nplugins;
}

/* Twice a second: fold rates; every 5 s, evictions. */
static void
runner_tick(void *arg)
{
	static uint64_t last_evict;
	uint64_t t = now_ms();

	(void)arg;
	fold_rates(t);
	if (t - last_evict >= 5000) {
		aggregate_evict(t);
		last_evict = t;
	}
}

static const struct daemon_def runner_def = {
	.section = "runnerd",
	.keys = runner_keys,
	.about = "The eventfold runner: aggregates, projections and process "
	         "managers from plugins,\nwith their state in LMDB.\n"
	         "Environment (below flags): EVENTFOLD_DATA (data_dir, as for "
	         "eventfold-stored),\nEVENTFOLD_LOG_LEVEL or RUST_LOG (error, "
	         "warn, info, debug).\n\n",
	.data_env = 1,
	.clamps = runner_clamps,
	.stopping = "stopping",
	.alive = aggregate_alive,
	.hup_msg = "SIGHUP: nothing to reload (restart to load new plugins "
	           "or settings)",
	.tick = runner_tick,
};

int
main(int argc, char **argv)
{
	struct runner *r = &rd;
	struct conf_opts opts;
	char ready[128];
	sigset_t set;
	int rc;

	if ((rc = daemon_configure(&runner_def, &r->conf, &argc, &argv,
	         &opts)) >= 0)
		return rc;
	r->start_ms = now_ms();

	daemon_signals(&set);
	snprintf(ready, sizeof(ready), "READY=1\nSTATUS=serving, %d plugins",
	    runner_open(r));
	daemon_serve(&runner_def, &set, ready, NULL);

	r->stopping = 1;
	dispatch_stop();
	fold_stop_all();
	aggregate_stop();
	pipeline_close(&r->appends);
	client_close(&r->store);
	state_close();
	plugin_unload_all();
	conf_free(runner_keys, &r->conf);
	log_info("stopped");
	daemon_exit(0); /* runner.sock stays open: server.h */
}
