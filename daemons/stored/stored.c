/* SPDX-License-Identifier: MIT */
/*
 * stored.c - eventfold-stored: main, configuration, lifecycle, signals.
 *
 * Start: parse config and flags, lock and recover the journal (building
 * the index), start the writer, listen on the pub and rep sockets, then
 * tell systemd READY=1. SIGTERM/SIGINT: stop taking requests, finish the
 * appends in flight, fsync, exit 0. SIGHUP: reload the limits from the
 * config file if it parses. See eventfold-stored(8).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "client.h"
#include "conf.h"
#include "daemon.h"
#include "env.h"
#include "listen.h"
#include "log.h"
#include "segfile.h"
#include "stored.h"

#include <nng/protocol/pubsub0/pub.h>

#define OFF(f) offsetof(struct stored_conf, f)

static const struct conf_key stored_keys[] = {
	{ "data_dir", CONF_STR, OFF(data_dir), "/var/lib/eventfold",
	    "directory of the event log and its lock" },
	{ "runtime_dir", CONF_STR, OFF(runtime_dir), "/run/eventfold",
	    "directory of the IPC sockets" },
	{ "store_url", CONF_STR, OFF(store_url), "",
	    "nng URL of the request socket (default ipc://RUNTIME_DIR/"
	    "store.sock)" },
	{ "events_url", CONF_STR, OFF(events_url), "",
	    "nng URL of the publish socket (default ipc://RUNTIME_DIR/"
	    "store-events.sock)" },
	{ "workers", CONF_U64, OFF(workers), "64",
	    "nng contexts, each able to hold one request at a time" },
	{ "max_read_count", CONF_U64, OFF(max_read_count), "4096",
	    "most events one read returns (clients page)" },
	{ "max_read_bytes", CONF_SIZE, OFF(max_read_bytes), "4M",
	    "most bytes of events one read returns (at least one event)" },
	{ "max_append_bytes", CONF_SIZE, OFF(max_append_bytes), "16M",
	    "largest append accepted" },
	{ "max_pub_bytes", CONF_SIZE, OFF(max_pub_bytes), "1M",
	    "batches larger than this are published without their events" },
	{ "segment_size", CONF_SIZE, OFF(segment_size), "256M",
	    "seal the segment being written once it passes this size (at "
	    "least 4K)" },
	{ "hot_segments", CONF_U64, OFF(hot_segments), "2",
	    "sealed segments kept plain after the hot one; older sealed, "
	    "indexed segments are archived (zstd) in the background" },
	{ "archive_frame_size", CONF_SIZE, OFF(archive_frame_size), "256K",
	    "input bytes per zstd frame of an archive (a read decompresses "
	    "one frame; 4K .. 64M)" },
	{ "archive_level", CONF_U64, OFF(archive_level), "3",
	    "zstd level of archives (1 .. 19)" },
	{ "archive_cache_mb", CONF_U64, OFF(archive_cache_mb), "64",
	    "MiB of decompressed archive frames kept for reads (LRU)" },
	{ "repair", CONF_BOOL, OFF(repair), "no",
	    "cut the log at the first corrupt batch instead of refusing to "
	    "start" },
	{ NULL, 0, 0, NULL, NULL },
};

static const char usage[] =
    "usage: eventfold-stored [-dnv] [-f file] [--key value ...]\n"
    "The eventfold storage daemon: owns the event log and serves it over "
    "nng.\n"
    "Environment (below flags): EVENTFOLD_DATA (data_dir; an EventfoldDB "
    "data file is\nrefused with the command that imports it), "
    "EVENTFOLD_DEDUP_CAPACITY (not needed:\nlogged), EVENTFOLD_LOG_LEVEL "
    "or RUST_LOG (error, warn, info, debug).\n\n";

/* EventfoldDB's variables that stand for a flag of ours (env.h). */
static struct env_flag stored_env[] = {
	{ "EVENTFOLD_DATA", "--data-dir" }, /* only if a directory */
	{ NULL, NULL },
};

static struct stored sd;

static void
visit(void *arg, const struct ef_event *ev, uint64_t loc)
{
	struct index *ix = arg;

	index_add(ix, ev, loc);
	ix->head = ev->global_position + 1;
}

/*
 * The watchdog is fed only while the writer makes progress: appends are
 * waiting and its last commit is older than limit_ms means it is stuck
 * (a hung disk), and systemd should restart us through recovery.
 */
static int
writer_alive(uint64_t limit_ms)
{
	uint64_t waiting, beat;

	writer_load(&sd, &waiting, &beat);
	return daemon_progress(waiting, beat, mono_ms(), limit_ms);
}

/* 0 if the archive keys are in range, else -1 (said on f if not NULL). */
static int
archive_conf_check(const struct stored_conf *c, FILE *f)
{
	const char *what = NULL;

	if (c->archive_frame_size < 4096 ||
	    c->archive_frame_size > (64u << 20))
		what = "archive_frame_size is out of range (4K .. 64M)";
	else if (c->archive_level < 1 || c->archive_level > 19)
		what = "archive_level is out of range (1 .. 19)";
	else if (c->archive_cache_mb > (1u << 20))
		what = "archive_cache_mb is out of range (0 .. 1048576)";
	else if (c->hot_segments > JOURNAL_MAX_SEGS)
		what = "hot_segments is out of range";
	if (what != NULL && f != NULL)
		fprintf(f, "eventfold-stored: %s\n", what);
	return what == NULL ? 0 : -1;
}

static void
reload(const char *file, int argc, char **argv)
{
	struct stored_conf nc;
	struct conf_opts o;
	char *av[argc + 1];
	int ac = argc;

	(void)file;
	memcpy(av, argv, sizeof(char *) * (size_t)(argc + 1));
	memset(&nc, 0, sizeof(nc));
	if (conf_load(stored_keys, "stored", &nc, &ac, av, &o, usage) != 0) {
		log_warnx("reload: configuration has errors, keeping the "
		          "current one");
		conf_free(stored_keys, &nc);
		return;
	}
	/* all or nothing: one bad value keeps every current one */
	if (nc.segment_size < SEGMENT_SIZE_MIN ||
	    nc.segment_size > JOURNAL_OFF_MASK / 2 ||
	    archive_conf_check(&nc, NULL) != 0) {
		log_warnx("reload: configuration has errors, keeping the "
		          "current one (%s)",
		    nc.segment_size < SEGMENT_SIZE_MIN ||
		            nc.segment_size > JOURNAL_OFF_MASK / 2 ?
		        "segment_size is out of range" :
		        "an archive key or "
		        "hot_segments is out of range");
		conf_free(stored_keys, &nc);
		return;
	}
	__atomic_store_n(&sd.conf.max_read_count,
	    nc.max_read_count ? nc.max_read_count : 1, __ATOMIC_RELAXED);
	__atomic_store_n(&sd.conf.max_read_bytes, nc.max_read_bytes,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&sd.conf.max_append_bytes, nc.max_append_bytes,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&sd.conf.max_pub_bytes, nc.max_pub_bytes,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&sd.journal.segment_size, nc.segment_size,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&sd.conf.hot_segments, nc.hot_segments,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&sd.conf.archive_level, nc.archive_level,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&sd.conf.archive_frame_size, nc.archive_frame_size,
	    __ATOMIC_RELAXED);
	log_info(
	    "reload: max_read_count %" PRIu64 ", max_read_bytes %" PRIu64
	    ", max_append_bytes %" PRIu64 ", max_pub_bytes %" PRIu64
	    ", segment_size %" PRIu64 ", hot_segments %" PRIu64
	    ", archive_level %" PRIu64 ", archive_frame_size %" PRIu64
	    " (directories, URLs, workers, repair and archive_cache_mb need "
	    "a restart)",
	    sd.conf.max_read_count, nc.max_read_bytes, nc.max_append_bytes,
	    nc.max_pub_bytes, nc.segment_size, nc.hot_segments,
	    nc.archive_level, nc.archive_frame_size);
	conf_free(stored_keys, &nc);
}

/*
 * Reads the configuration (files, environment, arguments) into sd.conf
 * and checks it. Returns -1 to go on, else the exit status (-n, errors).
 */
static int
configure(int *argc, char ***argv, struct conf_opts *opts)
{
	const char *envdir, *v;
	char err[1200];

	/* EVENTFOLD_DATA is a data_dir only if it is not a file */
	if (env_data_dir("", &envdir, err, sizeof(err)) != 0 || envdir == NULL)
		stored_env[0].env = NULL;
	*argv = env_argv(stored_env, *argc, *argv, argc);
	if (conf_load(stored_keys, "stored", &sd.conf, argc, *argv, opts,
	        usage) != 0)
		return 1;
	if (log_level_from_env() != 0)
		return 1;
	if (env_data_dir(sd.conf.runtime_dir, &envdir, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "eventfold-stored: %s\n", err);
		return 1;
	}
	if (*argc > 1) {
		fprintf(stderr,
		    "eventfold-stored: unexpected argument %s "
		    "(see --help)\n",
		    (*argv)[1]);
		return 1;
	}
	if (sd.conf.max_read_count == 0)
		sd.conf.max_read_count = 1;
	if (sd.conf.segment_size < SEGMENT_SIZE_MIN ||
	    sd.conf.segment_size > JOURNAL_OFF_MASK / 2) {
		fprintf(stderr,
		    "eventfold-stored: segment_size %" PRIu64
		    " is out of range (%u .. %llu)\n",
		    sd.conf.segment_size, SEGMENT_SIZE_MIN,
		    JOURNAL_OFF_MASK / 2);
		return 1;
	}
	if (archive_conf_check(&sd.conf, stderr) != 0)
		return 1;
	if (daemon_conf_check(opts, stored_keys, "stored", &sd.conf))
		return 0;
	if ((v = getenv("EVENTFOLD_DEDUP_CAPACITY")) != NULL)
		log_info(
		    "EVENTFOLD_DEDUP_CAPACITY=%s is not needed: eventfold "
		    "recognises a retried append by its event ids for the "
		    "whole log, not for the last N of them",
		    v);
	return -1;
}

/* Opens the journal, indexing what the on-disk index does not cover. */
static void
recover_journal(void)
{
	struct journal_bad bad;
	int rc;

	index_init(&sd.index, &sd.journal, &sd.disk);
	index_bulk_begin(&sd.index);
	rc = journal_open(&sd.journal, sd.conf.data_dir, sd.conf.segment_size,
	    sd.conf.archive_cache_mb << 20, sd.conf.repair, sd.disk.indexed_to,
	    visit, &sd.index, &bad);
	if (rc == -EEXIST)
		fatalx("%s is in use by another eventfold-stored (lock held "
		       "on %s/LOCK)",
		    sd.conf.data_dir, sd.conf.data_dir);
	if (rc == -EBADMSG)
		fatalx(
		    "%s: corrupt at offset %" PRIu64 "; not starting (run "
		    "eventfoldctl verify, or start with --repair yes to cut "
		    "the log there)",
		    bad.file, bad.off);
	if (rc == -ENOTUNIQ)
		fatalx("%s holds both %s and segment files; not starting",
		    sd.conf.data_dir, LEGACY_LOG_NAME);
	if (rc != 0) {
		errno = -rc;
		fatal("open journal in %s", sd.conf.data_dir);
	}
	index_bulk_end(&sd.index, sd.index.head);
	journal_unpin(); /* what recovery read */
}

/* Reads back the Bloom filters of the segments indexed on disk. */
static void
load_blooms(void)
{
	struct segment *s;
	uint64_t i;
	int rc;

	for (i = 0; i < journal_nsegs(&sd.journal); i++) {
		s = sd.journal.segs[i];
		if (!s->sealed || s->next > sd.disk.indexed_to)
			break;
		if ((rc = diskindex_load_bloom(&sd.disk, s)) != 0)
			fatalx("%s/index: no filter for %s (%s); delete that "
			       "directory to rebuild the index",
			    sd.conf.data_dir, s->path, strerror(-rc));
		sd.index.bloom_bytes += s->bloom->nbits / 8 +
		    sizeof(struct bloom);
	}
	sd.index.bytes += sd.index.bloom_bytes;
}

/* Everything before serving: the log and its index, checked and loaded. */
static void
recover(void)
{
	uint64_t t0;
	int rc;

	sd.stats.start_ms = mono_ms();
	t0 = mono_ms();
	/* interrupted archiving settled before any segment is listed: a
	 * segment is then either plain or archived (archiver.c) */
	if ((rc = archiver_cleanup(sd.conf.data_dir)) != 0) {
		errno = -rc;
		fatal("clean up interrupted archives in %s", sd.conf.data_dir);
	}
	/* the index of sealed segments: the start reads only what is past
	 * it (LMDB is opened here, after any fork: stored never forks) */
	if ((rc = diskindex_open(&sd.disk, sd.conf.data_dir)) != 0) {
		errno = -rc;
		fatal("open the index in %s/index (delete that directory to "
		      "rebuild it)",
		    sd.conf.data_dir);
	}
	recover_journal();
	load_blooms();
	diskindex_release(&sd.disk);
	/* a hot segment that passed segment_size before the restart (or a
	 * large events.log just taken over) is sealed before serving */
	if (journal_hot(&sd.journal)->end >= sd.journal.segment_size &&
	    (rc = journal_rotate(&sd.journal)) < 0) {
		errno = -rc;
		fatal("start a new segment in %s", sd.conf.data_dir);
	}
	sd.stats.recover_ms = mono_ms() - t0;
	sd.stats.recovered_events = sd.index.head - sd.index.floor;
	log_info("recovered %" PRIu64 " events (%" PRIu64 " bytes in %" PRIu64
	         " segments) in %" PRIu64 " ms; read %" PRIu64 " from the "
	         "log, %" PRIu64 " are indexed on disk",
	    sd.index.head, sd.journal.bytes, journal_nsegs(&sd.journal),
	    sd.stats.recover_ms, sd.stats.recovered_events, sd.index.floor);
}

/* The threads, the publish socket on events_url, requests on store_url. */
static void
serve(const char *store_url, const char *events_url, struct ef_listener *pl)
{
	int rc;

	if (indexer_start(&sd) != 0)
		fatalx("cannot start the indexer thread");
	if (archiver_start(&sd) != 0)
		fatalx("cannot start the archiver thread");
	if (writer_start(&sd) != 0)
		fatalx("cannot start the writer thread");
	if (nng_pub0_open(&sd.pub) != 0)
		fatalx("cannot open the publish socket");
	nng_socket_set_int(sd.pub, NNG_OPT_SENDBUF, 8192);
	if ((rc = listener_open(pl, sd.pub, events_url, 0660)) != 0)
		fatalx("listen %s: %s", events_url, strerror(-rc));
	if ((rc = dispatch_start(&sd, store_url)) != 0)
		fatalx("listen %s: %s", store_url, strerror(-rc));
	log_info("serving %s, publishing on %s", store_url, events_url);
	sd_notifyf(0, "READY=1\nSTATUS=serving, %" PRIu64 " events",
	    sd.index.head);
}

/* Until SIGTERM or SIGINT: reloads on SIGHUP, feeds the watchdog. */
static void
wait_for_stop(const sigset_t *set, const char *file, int argc, char **argv)
{
	struct daemon_watchdog wd;
	struct timespec ts;
	int sig;

	daemon_watchdog_init(&wd);
	for (;;) {
		ts = daemon_watchdog_wait(&wd);
		sig = sigtimedwait(set, NULL, &ts);
		daemon_watchdog_tick(&wd, writer_alive);
		if (sig == SIGHUP) {
			reload(file, argc, argv);
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT)
			return;
	}
}

int
main(int argc, char **argv)
{
	struct conf_opts opts;
	char store_url[4200], events_url[4200], **argv_copy;
	struct ef_listener pl;
	sigset_t set;
	int rc, i, orig_argc = argc;

	/* keep a copy of argv for SIGHUP (conf_load compacts argv) */
	argv_copy = calloc((size_t)argc + 1, sizeof(char *));
	for (i = 0; i < argc; i++)
		argv_copy[i] = argv[i];
	log_init("eventfold-stored", 0);
	/*
	 * An IMPORT or APPEND request (up to a few MB) is received by nng
	 * into a block of its own, freed once answered. glibc gave such
	 * blocks back to the kernel (an mmap of their own, or a trimmed
	 * heap), so that every request was received into fresh pages, one
	 * page fault each (~18 us of CPU on our VM): keep them in the heap.
	 */
	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
	if ((rc = configure(&argc, &argv, &opts)) >= 0)
		return rc;

	/* Signals are taken synchronously by the main thread only. */
	daemon_signals(&set);

	client_url(store_url, sizeof(store_url), sd.conf.runtime_dir,
	    STORE_SOCK, sd.conf.store_url);
	client_url(events_url, sizeof(events_url), sd.conf.runtime_dir,
	    STORE_EVENTS_SOCK, sd.conf.events_url);
	if ((!*sd.conf.store_url || !*sd.conf.events_url) &&
	    (rc = daemon_mkdir_p(sd.conf.runtime_dir, 0750)) != 0)
		fatalx("runtime dir %s: %s", sd.conf.runtime_dir,
		    strerror(-rc));
	if ((rc = daemon_mkdir_p(sd.conf.data_dir, 0750)) != 0)
		fatalx("data dir %s: %s", sd.conf.data_dir, strerror(-rc));

	recover();
	serve(store_url, events_url, &pl);
	wait_for_stop(&set, opts.file, orig_argc, argv_copy);

	log_info("stopping: finishing in-flight commits");
	sd_notify(0, "STOPPING=1");
	__atomic_store_n(&sd.stopping, 1, __ATOMIC_RELAXED);
	dispatch_stop(&sd);
	listener_close(&pl);
	guard_shutdown();
	writer_stop(&sd);
	archiver_stop(&sd);
	indexer_stop(&sd);
	/* sockets are not closed: server.h, shutdown policy */
	index_free(&sd.index);
	journal_close(&sd.journal);
	diskindex_close(&sd.disk);
	conf_free(stored_keys, &sd.conf);
	free(argv_copy);
	log_info("stopped");
	/* everything durable is closed; store.sock is not (server.h) */
	daemon_exit(0);
}
