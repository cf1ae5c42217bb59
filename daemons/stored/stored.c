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

static const struct daemon_def stored_def;

/* What SIGHUP changes, in the order reload's log line names it; the
 * rest needs a restart. */
static const char *const reloadable[] = { "max_read_count", "max_read_bytes",
	"max_append_bytes", "max_pub_bytes", "segment_size", "hot_segments",
	"archive_level", "archive_frame_size", NULL };

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

static int
segment_size_ok(const struct stored_conf *c)
{
	return c->segment_size >= SEGMENT_SIZE_MIN &&
	    c->segment_size <= JOURNAL_OFF_MASK / 2;
}

/* The field of c that key name stands for (a key of stored_keys). */
static uint64_t *
conf_field(struct stored_conf *c, const char *name)
{
	const struct conf_key *k = stored_keys;

	while (strcmp(k->name, name) != 0)
		k++;
	return (uint64_t *)((char *)c + k->off);
}

/* Takes the reloadable limits of nc (checked) and logs them. */
static void
reload_apply(struct stored_conf *nc)
{
	char line[1024];
	size_t n = 0;
	uint64_t v;
	int i;

	daemon_clamp(&stored_def, nc);
	for (i = 0; reloadable[i] != NULL; i++) {
		v = *conf_field(nc, reloadable[i]);
		__atomic_store_n(conf_field(&sd.conf, reloadable[i]), v,
		    __ATOMIC_RELAXED);
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		    "%s%s %" PRIu64, i ? ", " : "", reloadable[i], v);
	}
	__atomic_store_n(&sd.journal.segment_size, nc->segment_size,
	    __ATOMIC_RELAXED);
	log_info("reload: %s (directories, URLs, workers, repair and "
	         "archive_cache_mb need a restart)",
	    line);
}

/* SIGHUP: the limits from the file and the arguments, if they parse. */
static void
reload(void *arg)
{
	char **argv = arg;
	struct stored_conf nc;
	struct conf_opts o;
	const char *why = NULL;
	int ac = 0;

	while (argv[ac] != NULL)
		ac++;
	char *av[ac + 1];
	memcpy(av, argv, sizeof(char *) * (size_t)(ac + 1));
	memset(&nc, 0, sizeof(nc));
	if (conf_load(stored_keys, "stored", &nc, &ac, av, &o, "") != 0) {
		log_warnx("reload: configuration has errors, keeping the "
		          "current one");
		conf_free(stored_keys, &nc);
		return;
	}
	/* all or nothing: one bad value keeps every current one */
	if (!segment_size_ok(&nc))
		why = "segment_size is out of range";
	else if (archive_conf_check(&nc, NULL) != 0)
		why = "an archive key or hot_segments is out of range";
	if (why != NULL)
		log_warnx("reload: configuration has errors, keeping the "
		          "current one (%s)",
		    why);
	else
		reload_apply(&nc);
	conf_free(stored_keys, &nc);
}

/* The checks of a configuration past the flags (daemon_def.check). */
static int
stored_check(void *conf)
{
	struct stored_conf *c = conf;

	if (!segment_size_ok(c)) {
		fprintf(stderr,
		    "eventfold-stored: segment_size %" PRIu64
		    " is out of range (%u .. %llu)\n",
		    c->segment_size, SEGMENT_SIZE_MIN, JOURNAL_OFF_MASK / 2);
		return 1;
	}
	return archive_conf_check(c, stderr) != 0;
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
}

/* Then: a read returns one event at least. */
static const struct daemon_clamp stored_clamps[] = {
	{ "max_read_count", 1, 0, 0 },
	{ NULL, 0, 0, 0 },
};

static const struct daemon_def stored_def = {
	.section = "stored",
	.keys = stored_keys,
	.about =
	    "The eventfold storage daemon: owns the event log and serves "
	    "it over nng.\n"
	    "Environment (below flags): EVENTFOLD_DATA (data_dir; an "
	    "EventfoldDB data file is\nrefused with the command that "
	    "imports it), EVENTFOLD_DEDUP_CAPACITY (not needed:\nlogged), "
	    "EVENTFOLD_LOG_LEVEL or RUST_LOG (error, warn, info, "
	    "debug).\n\n",
	.data_env = 1,
	.check = stored_check,
	.clamps = stored_clamps,
	.stopping = "stopping: finishing in-flight commits",
	.alive = writer_alive,
	.hup = reload,
};

/*
 * Reads the configuration (files, environment, arguments) into sd.conf
 * and checks it. Returns -1 to go on, else the exit status (-n, errors).
 */
static int
configure(int *argc, char ***argv, struct conf_opts *opts)
{
	const char *v;
	int rc;

	if ((rc = daemon_configure(&stored_def, &sd.conf, argc, argv, opts)) >=
	    0)
		return rc;
	if ((v = getenv("EVENTFOLD_DEDUP_CAPACITY")) != NULL)
		log_info(
		    "EVENTFOLD_DEDUP_CAPACITY=%s is not needed: eventfold "
		    "recognises a retried append by its event ids for the "
		    "whole log, not for the last N of them",
		    v);
	return -1;
}

/* The URLs and the directories they and the log need. */
static void
stored_dirs(char *store_url, char *events_url, size_t len)
{
	int rc;

	client_url(store_url, len, sd.conf.runtime_dir, STORE_SOCK,
	    sd.conf.store_url);
	client_url(events_url, len, sd.conf.runtime_dir, STORE_EVENTS_SOCK,
	    sd.conf.events_url);
	if ((!*sd.conf.store_url || !*sd.conf.events_url) &&
	    (rc = daemon_mkdir_p(sd.conf.runtime_dir, 0750)) != 0)
		fatalx("runtime dir %s: %s", sd.conf.runtime_dir,
		    strerror(-rc));
	if ((rc = daemon_mkdir_p(sd.conf.data_dir, 0750)) != 0)
		fatalx("data dir %s: %s", sd.conf.data_dir, strerror(-rc));
}

int
main(int argc, char **argv)
{
	struct conf_opts opts;
	char store_url[4200], events_url[4200], **argv_copy, ready[128];
	struct ef_listener pl;
	sigset_t set;
	int rc, i;

	/* keep a copy of argv for SIGHUP (conf_load compacts argv) */
	argv_copy = calloc((size_t)argc + 1, sizeof(char *));
	for (i = 0; i < argc; i++)
		argv_copy[i] = argv[i];
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
	stored_dirs(store_url, events_url, sizeof(store_url));
	recover();
	serve(store_url, events_url, &pl);
	snprintf(ready, sizeof(ready),
	    "READY=1\nSTATUS=serving, %" PRIu64 " events", sd.index.head);
	daemon_serve(&stored_def, &set, ready, argv_copy);

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
