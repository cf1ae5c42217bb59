/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what the integration tests share: a fresh temporary
 * directory per test, a real eventfold-stored spawned with fork/exec on
 * ipc:// sockets in it, readiness by polling STATUS, signals and exit
 * waits with deadlines, running eventfoldctl, and small client helpers
 * on top of libcommon/client.h.
 *
 * The binaries come from the environment: EF_STORED and EF_CTL (set by
 * tests/integration/meson.build). Every daemon is started with
 * PR_SET_PDEATHSIG(SIGKILL), so it dies with the test process even if
 * the test crashes, and h_cleanup() (register it as the suite's .fini)
 * kills whatever is still running and removes the temporary directories.
 *
 * Caveats: call the spawning functions from the test's main thread only
 * (the death signal follows the thread that forked), and never use
 * cr_assert in another thread: load threads record what they saw and the
 * main thread asserts.
 */
#ifndef EF_TEST_HARNESS_H
#define EF_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>

#include "client.h"
#include "ipc.h"
#include "record.h"
#include "uuid.h"

#define H_PATH 512

/* One eventfold-stored: its directories, its process, its log. */
struct h_stored {
	char dir[H_PATH]; /* the test's temporary directory */
	char data_dir[H_PATH];
	char run_dir[H_PATH];
	char log[H_PATH]; /* the daemon's stderr and stdout, appended */
	char store_url[H_PATH + 32];
	char events_url[H_PATH + 32];
	const char *extra[16]; /* extra flags for every start, NULL-ended */
	pid_t pid;             /* 0 when not running */
	ino_t sock_ino;        /* store.sock before the last spawn */
	struct timespec sock_ctime;
	int status; /* wait status of the last exit */
};

/* Creates a fresh temporary directory (removed by h_cleanup), under
 * $TMPDIR or /tmp, or under base with h_tmpdir_in. */
const char *h_tmpdir(void);
const char *h_tmpdir_in(const char *base);

/*
 * Fills s for a stored living in dir: dir/data, dir/run, dir/stored.log.
 * extra (may be NULL) are flags added to every start, NULL-terminated.
 */
void h_stored_init(struct h_stored *s, const char *dir,
    const char *const *extra);

/* Starts s without waiting. Returns the pid. */
pid_t h_stored_spawn(struct h_stored *s);

/*
 * Waits until s answers STATUS (0), or until it exits (-1, with
 * s->status set and s->pid 0), or until timeout_ms passes (-2).
 */
int h_stored_wait_ready(struct h_stored *s, int timeout_ms);

/* Spawn and wait ready; fails the test if the daemon does not come up. */
void h_stored_start(struct h_stored *s);
/* h_stored_start, then h_client on c (10 s). */
void h_start(struct h_stored *s, struct ef_client *c);
/* h_stored_init in a fresh h_tmpdir with extra, h_stored_start, then
 * h_client on c with timeout_ms. */
void h_start_fresh(struct h_stored *s, struct ef_client *c,
    const char *const *extra, int timeout_ms);
/* Spawns s, which must exit with an error within 15 s (what says which
 * stored, in the failure message). */
void h_stored_start_fails(struct h_stored *s, const char *what);

/*
 * Sends sig and waits up to timeout_ms for the exit. Returns the wait
 * status, or -1 on timeout (the daemon is then killed with SIGKILL).
 */
int h_stored_stop(struct h_stored *s, int sig, int timeout_ms);
/*
 * Closes c, then stops s with sig and fails the test unless it exited
 * cleanly (SIGTERM) or died of sig (any other signal).
 */
void h_stored_stop_ok(struct h_stored *s, struct ef_client *c, int sig);

/* Waits for pid to exit; the wait status, or -1 on timeout. */
int h_wait_pid(pid_t pid, int timeout_ms);

/* Waits until file path contains needle (0) or timeout_ms passes (-1). */
int h_wait_for_text(const char *path, const char *needle, int timeout_ms);

/* Reads a whole file into a NUL-terminated malloc'd buffer (or NULL). */
char *h_read_file(const char *path, size_t *len);
/* Writes len bytes to path (truncating). 0 or -1. */
int h_write_file(const char *path, const void *buf, size_t len);

/*
 * Runs eventfoldctl with args (NULL-terminated) and the given stdin
 * bytes (may be NULL), waiting up to timeout_ms. Returns the exit code
 * (or -1 if it did not exit normally); *out and *err (if not NULL)
 * receive malloc'd NUL-terminated copies of stdout and stderr.
 */
int h_ctl(const char *dir, const char *const *args, const void *in,
    size_t inlen, int timeout_ms, char **out, char **err);

/*
 * h_ctl against stored s: --runtime-dir, --data-dir and a 20 s
 * --timeout-ms come first, then args (at most 14); 300 s to finish.
 */
int h_ctl_at(const struct h_stored *s, const char *const *args, char **out,
    char **err);
/* h_ctl_at that must exit 0 (else the test fails); its stdout. */
char *h_ctl_ok(const struct h_stored *s, const char *const *args);
/* h_ctl_at that must exit want_rc with needle in its stderr (else the
 * test fails); that stderr (free it). */
char *h_ctl_fails(const struct h_stored *s, const char *const *args,
    int want_rc, const char *needle);
/* `eventfoldctl export --quiet -o path` of s; the file's bytes. */
char *h_export_all(const struct h_stored *s, const char *path);

/*
 * Starts eventfoldctl with args (NULL-terminated) in the background:
 * its stdout is the read end returned in *out_fd (close it when done),
 * its stderr goes to err_path. Returns the pid (reap with h_wait_pid).
 */
pid_t h_ctl_spawn(const char *const *args, int *out_fd, const char *err_path);

/* Fills sa with the unix socket address path (fails the test if it is
 * too long). */
void h_unix_addr(struct sockaddr_un *sa, const char *path);
/* A unix stream socket connected to path (fails the test otherwise). */
int h_unix_connect(const char *path);
/* A unix stream socket (SOCK_CLOEXEC and flags) for path, whose address
 * goes into sa (h_unix_addr); the fd, or -1 with errno. */
int h_unix_socket(struct sockaddr_un *sa, const char *path, int flags);

/* Kills what is still running, removes the temporary directories. */
void h_cleanup(void);

/* Milliseconds on the monotonic clock; a plain sleep (for load
 * durations, never for synchronisation). */
uint64_t h_now_ms(void);
void h_sleep_ms(int ms);

/* Opens a client on s's store socket (fails the test on error). */
void h_client(struct ef_client *c, const struct h_stored *s, int timeout_ms);

/* An owned copy of one event. */
struct h_event {
	uint8_t event_id[UUID_LEN];
	uint8_t stream_id[UUID_LEN];
	uint64_t version;
	uint64_t pos;
	uint64_t recorded_at;
	char type[RECORD_TYPE_MAX + 1];
	uint32_t type_len;
	uint8_t *md;
	uint32_t md_len;
	uint8_t *payload;
	uint32_t payload_len;
};

/* The outcome of an append. */
struct h_result {
	int status;
	char msg[512];
	struct ipc_append_rep rep;    /* with EF_S_OK */
	struct ipc_conflict conflict; /* with EF_S_VERSION_CONFLICT */
	bool has_conflict;
};

/* The APPEND request of n events to stream with an expected version
 * (kind, version); points at stream and evs. */
struct ipc_append_req h_append_req(const char *stream, int kind,
    uint64_t version, const struct ipc_proposed *evs, uint32_t n);
/*
 * APPEND of n events (ids as text) to stream with an expected version;
 * never fails the test by itself (safe in any thread).
 */
int h_append(struct ef_client *c, const char *stream, int kind,
    uint64_t version, const struct ipc_proposed *evs, uint32_t n,
    struct h_result *res);

/* A proposed event of text id, type and payload (NULL: empty);
 * metadata empty. Points at the strings given. */
struct ipc_proposed h_proposed(const char *event_id, const char *type,
    const char *payload);

/* A single event with text id, type and payload; metadata empty. */
int h_append1(struct ef_client *c, const char *stream, int kind,
    uint64_t version, const char *event_id, const char *type,
    const char *payload, struct h_result *res);

/*
 * A thread of a test with its own client: the first member of the
 * test's own struct for the thread, so that an array of those can be
 * started and joined here.
 */
struct h_worker {
	pthread_t thr;
	struct ef_client c; /* open while the thread runs; close it after */
};

/*
 * For each of the n structs at base (size bytes apart, each beginning
 * with a struct h_worker): opens its client on s (timeout_ms), then
 * starts fn on the struct. Fails the test if a thread cannot start.
 */
void h_workers_start(const struct h_stored *s, void *base, size_t size, int n,
    void *(*fn)(void *), int timeout_ms);
/* Waits for the n threads that h_workers_start started at base. */
void h_workers_join(void *base, size_t size, int n);

/* Sends request o on c: the reply must have status want and a message
 * that holds needle (else the test fails). */
void h_call_refused(struct ef_client *c, const struct ipc_out *o, int want,
    const char *needle);

/* STATUS head, or UINT64_MAX if the call failed (any thread). */
uint64_t h_head(struct ef_client *c);
/* STATUS (fails the test if the call does). */
struct ipc_status_rep h_status(struct ef_client *c);
/* Flips one bit of the byte at `at` of the file path. */
void h_flip(const char *path, uint64_t at);
/* Polls STATUS until positions below `to` are indexed on disk (fails
 * the test after timeout_ms). */
void h_wait_indexed(struct ef_client *c, uint64_t to, int timeout_ms);
/* `eventfoldctl verify` on s passes and counts `events` events. */
void h_verify_ok(const struct h_stored *s, uint64_t events);
/* Deletes s's LMDB index (s stopped): the next start rebuilds it. */
void h_rm_index(const struct h_stored *s);

/*
 * A small log written by a test (its events' ids, streams and versions,
 * in position order), and the check that reads it back every way:
 * every page size from 1 to 7, forward and backward, ReadAll and each
 * stream's ReadStream, every event where it belongs.
 */
#define H_BOOK_STREAMS 3
#define H_BOOK_MAX     200
struct h_book {
	struct {
		uint8_t id[UUID_LEN];
		int stream;
		uint64_t version;
	} ev[H_BOOK_MAX];
	uint64_t n;
	char streams[H_BOOK_STREAMS][UUID_STR_LEN];
};
void h_book_read(struct ef_client *c, const struct h_book *b);

/*
 * Reads the whole log forward from position from, paging, into a
 * malloc'd array of owned events (*n of them). Returns the status of the
 * first failing read or EF_S_OK. Free with h_events_free.
 */
int h_read_all(struct ef_client *c, uint64_t from, struct h_event **evs,
    size_t *n);
/* The same for one stream (from version from). */
int h_read_stream(struct ef_client *c, const char *stream, uint64_t from,
    struct h_event **evs, size_t *n);
void h_events_free(struct h_event *evs, size_t n);
/* Fails the test unless a and b carry the same id (else "what %zu
 * differs", with i), version, time and payload; positions and streams
 * are not compared. */
void h_event_same(const struct h_event *a, const struct h_event *b,
    const char *what, size_t i);

/*
 * Append load: n threads, each with its own client and its own stream,
 * appending batches of 1..3 events (ids random, payloads derived from
 * thread, sequence and index so they can be checked later) until told to
 * stop. Every acknowledged event is recorded; an append whose reply never
 * came stays "pending" so it can be retried (same ids, same contents)
 * after a restart.
 */
#define H_LOAD_MAX 32

struct h_ack {
	uint8_t event_id[UUID_LEN];
	uint64_t pos;
	uint64_t version;
	uint32_t thread;
	uint32_t seq; /* the append's sequence number in its thread */
	uint32_t k;   /* index in the append */
};

struct h_load_thread {
	struct h_load *load;
	pthread_t thr;
	uint32_t idx;
	struct ef_client client;
	char stream[UUID_STR_LEN];
	uint32_t seq; /* next append */
	struct h_ack *acks;
	size_t nacks, cap;
	/* the append in flight when the thread stopped, if unanswered */
	bool pending;
	uint32_t pending_seq;
	uint32_t pending_n;
	char pending_ids[3][UUID_STR_LEN];
	/* anything unexpected (the main thread asserts on it) */
	int errors;
	char error[768];
};

struct h_load {
	const struct h_stored *stored;
	uint32_t nthreads;
	int stop;             /* atomic */
	uint64_t acked;       /* events acknowledged, atomic */
	uint32_t payload_pad; /* extra payload bytes per event */
	struct h_load_thread t[H_LOAD_MAX];
};

/* Prepares n threads' state once (streams stay the same across runs). */
void h_load_init(struct h_load *l, const struct h_stored *s, uint32_t n,
    uint32_t payload_pad);
/* h_load_init of l on s (n threads, payload_pad) and h_load_start, then
 * waits up to timeout_ms until acked events are acknowledged (else the
 * test fails). */
void h_load_running(struct h_load *l, const struct h_stored *s, uint32_t n,
    uint32_t payload_pad, uint64_t acked, int timeout_ms);
/* Starts the threads (fresh clients on the stored of h_load_init). */
void h_load_start(struct h_load *l);
/*
 * Stops the threads: sets stop, closes their clients (which fails any call
 * in flight: its append stays pending) and joins them.
 */
void h_load_stop(struct h_load *l);
/* Waits until at least n events are acknowledged in total (0 on time). */
int h_load_wait_acked(struct h_load *l, uint64_t n, int timeout_ms);
/*
 * Re-sends every pending append with the same ids and contents; each
 * must succeed (idempotent if it had been written). Fails the test
 * otherwise.
 */
void h_load_retry_pending(struct h_load *l, struct ef_client *c);
/*
 * Reads the whole log and checks: positions 0..head-1 all present in
 * order, stream versions contiguous, no event id twice, and every
 * acknowledged event at its acknowledged position with its id, stream,
 * version, type and payload. Fails the test otherwise; returns head.
 */
uint64_t h_load_verify(struct h_load *l, struct ef_client *c);
void h_load_free(struct h_load *l);

/* `eventfoldctl rotate` on s, which must succeed. */
void h_rotate(const struct h_stored *s);
/* Whether dir/name exists. */
int h_file_exists(const char *dir, const char *name);

/*
 * `eventfoldctl segments --json` of s into segs (at most max), checked:
 * contiguous from 0 to head, every segment sealed (or archived, with a
 * size on disk and a ratio over 1) but the last, which is hot and the
 * only one that may be empty. Returns the count.
 */
struct h_seginfo {
	uint64_t first, events, bytes;
	int sealed, archived; /* an archived segment is sealed too */
};
size_t h_segments(const struct h_stored *s, struct h_seginfo *segs, size_t max,
    uint64_t head);

/*
 * Writes b through c on s: 60 appends of 1..3 events of type "Boundary"
 * and the given payload over H_BOOK_STREAMS new streams, with `eventfoldctl
 * rotate` after append a when a % 4 == 0 or a % 7 == 3, so that boundaries
 * fall after every batch size (and twice in a row after append
 * rotate_twice_at: an empty hot segment; -1 for none); then a rotation
 * and one "Hot" event per stream, so that each stream is in the hot
 * segment too.
 */
void h_book_write(struct ef_client *c, const struct h_stored *s,
    struct h_book *b, const char *payload, int rotate_twice_at);

/* Skips the test unless stored was built with crash points. */
void h_need_crashpoints(void);
/* Whether s's log contains needle. */
int h_log_has(const struct h_stored *s, const char *needle);
/* Waits up to timeout_ms for s to die of SIGKILL at crash point point
 * (named in the failure message); fails the test otherwise. */
void h_stored_wait_killed(struct h_stored *s, int timeout_ms,
    const char *point);
/*
 * Starts s with EVENTFOLD_CRASHPOINT=point and load l on it, waits up to
 * timeout_ms for the kill there (the log must name point, up to any
 * ':'), stops l. Returns the events acknowledged (more than 0).
 */
uint64_t h_load_killed_at(struct h_stored *s, struct h_load *l,
    const char *point, int timeout_ms);
/* After the restart: every acknowledged event (at least acked) is there,
 * pending appends retried; the head. */
uint64_t h_load_recovered(struct h_load *l, struct ef_client *c,
    uint64_t acked);
/* After a restart in a cycle of kills: the log verified, with at least
 * head events (none acknowledged was lost: else the test fails, naming
 * cycle), pending appends retried; the new head. */
uint64_t h_load_survived(struct h_load *l, struct ef_client *c, uint64_t head,
    int cycle);
/* The load goes on: 500 more events acknowledged without an error, all
 * verified; the head. */
uint64_t h_load_goes_on(struct h_load *l, struct ef_client *c, uint64_t acked);

/* A random UUID as lowercase hyphenated text into buf. */
char *h_uuid(char buf[UUID_STR_LEN]);

#endif
