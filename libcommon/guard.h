/* SPDX-License-Identifier: MIT */
/*
 * guard.h - keeps a process's nng endpoints alive despite nng 1.5.2.
 *
 * Why. nng 1.5.2 (Debian 12) ends an endpoint for good when a
 * connection closes during the 8-byte SP handshake (nng #1518, fixed in
 * 1.6.0). The transport hands NNG_ECLOSED, its word for "this endpoint
 * was closed", to the endpoint's accept or connect callback, which then
 * stops:
 *   - a listener stops accepting: one local process that connects to
 *     store.sock and hangs up at once (a port scanner, a client killed
 *     while connecting, `eventfoldctl` exiting early) silences the
 *     daemon for every new client;
 *   - a dialer stops redialing: a client whose daemon was killed while
 *     it was connecting (kill -9 and restart of stored or runnerd) never
 *     connects again, and every later call times out. This is the
 *     "call blocked forever after a daemon restart": the call was not
 *     stuck in nng_aio_wait, its caller kept retrying on a socket that
 *     would never have a pipe again.
 * nng counts these failures in the endpoint's statistics (the counter
 * "other"), so a wedge is visible at once, without probing.
 *
 * What. One thread per process (started with the first endpoint, ended
 * by guard_shutdown()) takes nng's statistics every GUARD_TICK_MS and:
 *   - re-creates a listener whose "other" counter moved (and, as a
 *     backstop, probes ipc:// listeners every GUARD_PROBE_MS: listen.h);
 *   - re-dials a dialer whose "other" counter moved and that has had
 *     neither a pipe nor any further attempt for DIALER_STILL_MS (guard.c
 *     says why it waits);
 *   - re-dials a dialer whose connection ended (its "disconnect" or
 *     "other" counter moved) while nng has not removed the pipe for
 *     DIALER_ENDED_MS. nng 1.5.2 removes pipes, and dials again after a
 *     lost connection, on its single reaper thread; under load that
 *     thread was seen blocked for tens of seconds (runnerd's pipe to a
 *     killed stored was removed 42 s after the kill), and meanwhile the
 *     socket has no usable pipe and makes no attempt, so every call
 *     times out in its send. This was the call "blocked forever" after
 *     a restart under a busy machine.
 *   The old dialer is closed; closing a stopped
 *     one can wedge nng 1.5.2's reaper thread, after which every
 *     nng_close() in the process would hang (nng #1543): nngx_close()
 *     below bounds that wait.
 * Re-creating a listener closes the pipes it accepted; their clients
 * redial and resend (client.c), so no call fails for it.
 *
 * Caveats: endpoints are checked under the guard's lock; removing one
 * (listener_close(), dialer_close()) waits for a check in progress and
 * must happen before the socket is closed and before nng_fini().
 */
#ifndef EF_GUARD_H
#define EF_GUARD_H

#include <pthread.h>
#include <stdint.h>

#include <nng/nng.h>

#define GUARD_TICK_MS  10
#define GUARD_PROBE_MS 2000

struct guard_entry {
	/* called under the guard's lock with this tick's statistics */
	void (*check)(struct guard_entry *, nng_stat *stats, uint64_t now_ms);
	struct guard_entry *next;
};

/* Adds e to the checked endpoints (starts the thread). 0 or -errno. */
int guard_add(struct guard_entry *e);
/* Removes e; when it returns, e is checked no more. */
void guard_remove(struct guard_entry *e);
/*
 * Sets the pipe callbacks of sock that an endpoint follows: cb(pipe,
 * event, arg) once a pipe is added and once one is removed, and with
 * pre also before one is added.
 */
void guard_pipe_notify(nng_socket sock, int pre, nng_pipe_cb cb, void *arg);
/*
 * Ends an endpoint: e checked no more (guard_remove) and sock's pipe
 * callbacks cleared, since closing the socket next removes its pipes and
 * their callbacks must not reach the endpoint, which may be gone by
 * then. Returns 0 if e was not checked (closed already, or never
 * opened), else 1.
 */
int guard_end(struct guard_entry *e, nng_socket sock);
/* Stops the thread (endpoints still added are forgotten). */
void guard_shutdown(void);

/*
 * Closing sockets. nng 1.5.2's nng_close() can wait forever: once a
 * pipe's teardown has wedged nng's reaper thread (seen after a peer
 * closed the connection in the middle of a large send, and after
 * closing a stopped dialer; nng #1543, #1813), every later close and
 * nng_fini() in the process hang. nngx_close() closes on a helper thread
 * and waits at most NNGX_CLOSE_WAIT_MS: past that it logs, leaves the
 * socket to the process's exit and returns -ETIMEDOUT (0 otherwise).
 * Callbacks must no longer reach the caller's memory when it returns
 * (unset pipe notifications first; aios must be ended or heap-owned).
 */
#define NNGX_CLOSE_WAIT_MS 1000
int nngx_close(nng_socket s);
/* guard_shutdown(), then nng_fini() unless a close has hung. */
void nngx_fini(void);

/*
 * Receiving on a sub socket with a deadline. nng 1.5.2's sub0 races a
 * receive timeout against a message arriving: when NNG_OPT_RECVTIMEO
 * fires (nng's aio expire thread cancels the receive) as a batch is
 * delivered, the expire thread can touch freed memory and the process
 * dies (nng #1523, #1682; a runnerd core in our soak: SIGSEGV in
 * pthread_mutex_lock under sub0's cancel, thread "nng:aio:expire").
 * So no timeout is ever armed on a sub socket: nngx_recv_wait() takes
 * a message without blocking (nng schedules no expiry for that), else
 * waits up to ms on the socket's NNG_OPT_RECVFD with poll(2) and tries
 * once more. Returns 0 with *m set, NNG_ETIMEDOUT when nothing came,
 * or another nng error (the socket is closed).
 */
int nngx_recv_wait(nng_socket s, nng_msg **m, int ms);

/* The scope of the endpoint ("listener" or "dialer") with this id. */
nng_stat *guard_find(nng_stat *root, const char *kind, uint64_t id);
/* The value of counter name in stat scope s, 0 if absent. */
uint64_t guard_counter(nng_stat *s, const char *name);

/* Monotonic milliseconds. */
uint64_t guard_now_ms(void);
/* Initialises mu, and cv for waits timed on guard_now_ms()'s clock. */
void guard_cond_init(pthread_mutex_t *mu, pthread_cond_t *cv);
/*
 * pthread_cond_timedwait() on a cv set up by guard_cond_init(), mu
 * held, until guard_now_ms() reaches end_ms: 0 (woken, perhaps
 * spuriously) or ETIMEDOUT.
 */
int guard_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t end_ms);
/*
 * A debugging trace of the client side of nng (dialers, pipes, round
 * trips), on when EF_NNG_TRACE is set in the environment: one line per
 * event on stderr, "trace MONOTONIC_MS what". Off, it costs a load.
 */
int guard_tracing(void);
void guard_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The pipes of an endpoint, by id. nng 1.5 can report a pipe's removal
 * without its addition (a pipe closed between NNG_PIPE_EV_ADD_PRE and
 * _ADD_POST), so a plain counter drifts below the truth for good (a
 * gateway then thinks stored is down while it is connected). Not
 * locked: callers serialise.
 */
#define PIPESET_MAX 64
struct pipeset {
	uint32_t ids[PIPESET_MAX];
	int n;
};
/* Records an added (add 1) or removed (add 0) pipe; returns the count. */
int pipeset_note(struct pipeset *ps, uint32_t id, int add);

/*
 * A dialer that re-dials itself. The dialer owns the socket's
 * NNG_PIPE_EV_ADD_POST and NNG_PIPE_EV_REM_POST notifications (it
 * counts pipes). Not for sockets with a guarded listener.
 */
struct ef_dialer {
	struct guard_entry g;
	nng_socket sock;
	nng_dialer d;
	char url[4200];
	pthread_mutex_t mu; /* pipeset */
	struct pipeset ps;
	int pipes;             /* connected pipes (atomic) */
	uint64_t other;        /* last seen "other" counter of d */
	uint64_t activity;     /* last seen sum of d's counters */
	uint64_t still_since;  /* when activity last moved */
	int suspect;           /* "other" moved (or kicked) since a pipe */
	uint64_t redials;      /* times re-dialed (atomic) */
	uint64_t added;        /* pipes ever added (atomic) */
	uint64_t removed;      /* pipes ever removed (atomic) */
	uint64_t ended;        /* last seen "disconnect" + "other" of d */
	uint64_t seen_removed; /* removed at the last check */
	uint64_t ended_at; /* when a connection's end went unremoved, or 0 */
	uint64_t ended_added, ended_removed; /* added, removed then */
	int kick;           /* suspect it at the next tick (atomic) */
	uint32_t answered;  /* the last pipe a reply came on (atomic) */
	uint32_t newest;    /* the last pipe added (under mu) ... */
	uint64_t newest_at; /* ... and when */
	uint64_t dropped;   /* pipes closed for never answering (atomic) */
};

/* Dials url without blocking and guards the dialer. 0 or an nng error. */
int dialer_open(struct ef_dialer *ed, nng_socket sock, const char *url);
/*
 * Stops guarding and counting pipes (the socket keeps its dialer; close
 * the socket next).
 */
void dialer_close(struct ef_dialer *ed);
/* Pipes connected now. */
int dialer_pipes(const struct ef_dialer *ed);
/* Connections ever made: a change means the peer may be a new process. */
uint64_t dialer_added(const struct ef_dialer *ed);
/*
 * Orphaned connections. In nng 1.5.2 an ipc or tcp listener keeps
 * accepting connections and completing their SP handshake after its
 * accept callback has stopped (the handshake bug above): the dialing
 * side sees a connected pipe and sends on it, but the listening socket
 * never takes the pipe, and no request on it is ever read or answered.
 * The pipe stays until the daemon closes that listener, which with
 * listener generations (listen.h) is when the generation's last real
 * client goes: seen for 12 s and more under load, while other clients
 * of the same daemon were answered (e2e_restarts, bench/RESULTS.md).
 * A client cannot tell such a pipe from a slow daemon, except that it
 * has never brought a reply: dialer_answered() records the pipe of
 * every reply, and a call that timed out after its request was sent
 * calls dialer_drop_unanswered(), which closes the dialer's pipes that
 * never answered and have been connected for DIALER_ORPHAN_MS (the
 * dialer connects again). Returns how many. The age keeps a daemon that
 * is merely slow to answer its first requests (just restarted, a busy
 * machine) from losing every new connection to callers with short
 * deadlines (runnerd asks stored for its head within 500 ms): seen in
 * e2e_restarts before the age was required.
 */
#define DIALER_ORPHAN_MS 1500
void dialer_answered(struct ef_dialer *ed, nng_pipe p);
int dialer_drop_unanswered(struct ef_dialer *ed);
/*
 * Treats the dialer as suspect (re-dialed if it stays without a pipe and
 * still): a caller whose call went unanswered without nng saying why.
 */
void dialer_kick(struct ef_dialer *ed);

#endif
