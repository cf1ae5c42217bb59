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
#include "probe.h"
#include "runnerd.h"

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

static const char usage[] =
    "usage: eventfold-runnerd [-dnv] [-f file] [--key value ...]\n"
    "The eventfold runner: aggregates, projections and process managers "
    "from plugins,\nwith their state in LMDB.\n"
    "Environment (below flags): EVENTFOLD_DATA (data_dir, as for "
    "eventfold-stored),\nEVENTFOLD_LOG_LEVEL or RUST_LOG (error, warn, "
    "info, debug).\n\n";

/* EventfoldDB's variables that stand for a flag of ours (env.h). */
static struct env_flag runner_env[] = {
	{ "EVENTFOLD_DATA", "--data-dir" }, /* only if a directory */
	{ NULL, NULL },
};

struct runner rd;

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
nap_ms(uint64_t ms)
{
	uint64_t end = now_ms() + ms;
	struct timespec ts;

	while (!rd.stopping && now_ms() < end) {
		ts.tv_sec = 0;
		ts.tv_nsec = 20 * 1000 * 1000;
		nanosleep(&ts, NULL);
	}
	return rd.stopping != 0;
}

int
store_connected(uint64_t wait_ms)
{
	uint64_t end = now_ms() + wait_ms;
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	while (dialer_pipes(&rd.store.dialer) == 0) {
		/*
		 * No call goes out to notice a dialer nng 1.5 stopped
		 * (guard.h), so say it is suspect, as an unanswered call
		 * would; the guard re-dials it only if it stays still.
		 */
		dialer_kick(&rd.store.dialer);
		if (now_ms() >= end || rd.stopping)
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
store_wait_start(void)
{
	char why[4400];
	uint64_t s = rd.conf.store_wait_s;

	if (s == 0 || store_connected(1000))
		return;
	log_warnx("waiting up to %" PRIu64 " s for eventfold-stored at %s", s,
	    rd.store_url);
	if (store_connected(s * 1000 - 1000))
		return;
	if (probe_rep(rd.store_url, 1000, why, sizeof(why)) > PROBE_NOT_IPC)
		fatalx("no eventfold-stored at %s after %" PRIu64
		       " s: %s (set "
		       "--runtime-dir or --store-url)",
		    rd.store_url, s, why);
	fatalx("no eventfold-stored answers at %s after %" PRIu64 " s (set "
	       "--runtime-dir or --store-url)",
	    rd.store_url, s);
}

void
commit_pace(uint64_t since, const volatile int *f1, const volatile int *f2)
{
	struct timespec ts = { 0, 500 * 1000 };
	uint64_t end = since + rd.conf.commit_interval_ms;

	while (now_ms() < end && !rd.stopping &&
	    (f1 == NULL || !__atomic_load_n(f1, __ATOMIC_RELAXED)) &&
	    (f2 == NULL || !__atomic_load_n(f2, __ATOMIC_RELAXED)))
		nanosleep(&ts, NULL);
}

int
main(int argc, char **argv)
{
	struct conf_opts opts;
	const char *envdir;
	char dir[4200], err[1200];
	uint64_t last_evict = 0, t;
	sigset_t set;
	struct daemon_watchdog wd;
	struct timespec ts;
	int rc, sig, nplugins;

	log_init("eventfold-runnerd", 0);
	if (env_data_dir("", &envdir, err, sizeof(err)) != 0 || envdir == NULL)
		runner_env[0].env = NULL;
	argv = env_argv(runner_env, argc, argv, &argc);
	if (conf_load(runner_keys, "runnerd", &rd.conf, &argc, argv, &opts,
	        usage) != 0)
		return 1;
	if (log_level_from_env() != 0)
		return 1;
	if (env_data_dir(rd.conf.runtime_dir, &envdir, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "eventfold-runnerd: %s\n", err);
		return 1;
	}
	if (argc > 1) {
		fprintf(stderr,
		    "eventfold-runnerd: unexpected argument %s "
		    "(see --help)\n",
		    argv[1]);
		return 1;
	}
	if (rd.conf.fold_batch == 0)
		rd.conf.fold_batch = 1;
	if (rd.conf.page == 0)
		rd.conf.page = 1000;
	if (rd.conf.pm_retries == 0)
		rd.conf.pm_retries = 1;
	if (daemon_conf_check(&opts, runner_keys, "runnerd", &rd.conf))
		return 0;
	rd.start_ms = now_ms();

	daemon_signals(&set);

	client_url(rd.store_url, sizeof(rd.store_url), rd.conf.runtime_dir,
	    STORE_SOCK, rd.conf.store_url);
	client_url(rd.events_url, sizeof(rd.events_url), rd.conf.runtime_dir,
	    STORE_EVENTS_SOCK, rd.conf.events_url);
	client_url(rd.runner_url, sizeof(rd.runner_url), rd.conf.runtime_dir,
	    RUNNER_SOCK, rd.conf.runner_url);
	if (!*rd.conf.runner_url &&
	    (rc = daemon_mkdir_p(rd.conf.runtime_dir, 0750)) != 0)
		fatalx("runtime dir %s: %s", rd.conf.runtime_dir,
		    strerror(-rc));
	snprintf(dir, sizeof(dir), "%s/runner", rd.conf.data_dir);
	if ((rc = daemon_mkdir_p(dir, 0750)) != 0)
		fatalx("data dir %s: %s", dir, strerror(-rc));

	nplugins = plugin_load_dir(rd.conf.plugin_dir);
	log_info("%d plugins loaded from %s", nplugins, rd.conf.plugin_dir);

	/* LMDB after any fork (there is none: -d only keeps us verbose). */
	if (state_open(dir, rd.conf.map_size) != 0)
		fatalx("cannot open the LMDB environment in %s", dir);
	if (client_open(&rd.store, rd.store_url, 5000) != 0 ||
	    pipeline_open(&rd.appends, rd.store_url, 5000) != 0)
		fatalx("bad store URL %s", rd.store_url);
	store_wait_start();
	if (aggregate_start() != 0)
		fatalx("cannot start the aggregate writer");
	if (fold_start_all() != 0)
		fatalx("cannot start the projections and process managers");
	if ((rc = dispatch_start(rd.runner_url, rd.conf.workers)) != 0)
		fatalx("listen %s: %s", rd.runner_url, strerror(-rc));
	log_info("serving %s (store %s)", rd.runner_url, rd.store_url);
	sd_notifyf(0, "READY=1\nSTATUS=serving, %d plugins", nplugins);

	daemon_watchdog_init(&wd);
	for (;;) {
		ts = daemon_watchdog_wait(&wd);
		sig = sigtimedwait(&set, NULL, &ts);
		daemon_watchdog_tick(&wd, aggregate_alive);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			log_info("SIGHUP: nothing to reload (restart to load "
			         "new plugins or settings)");
		t = now_ms();
		fold_rates(t);
		if (t - last_evict >= 5000) {
			aggregate_evict(t);
			last_evict = t;
		}
	}
	log_info("stopping");
	sd_notify(0, "STOPPING=1");
	rd.stopping = 1;
	dispatch_stop();
	fold_stop_all();
	aggregate_stop();
	pipeline_close(&rd.appends);
	client_close(&rd.store);
	state_close();
	plugin_unload_all();
	conf_free(runner_keys, &rd.conf);
	log_info("stopped");
	daemon_exit(0); /* runner.sock stays open: server.h */
}
