/* SPDX-License-Identifier: MIT */
/*
 * listen.h - nng listeners that heal themselves, without dropping the
 * clients they already serve.
 *
 * nng 1.5.2 (Debian 12) stops a listener for good when a peer hangs up
 * during the SP handshake (nng #1518; guard.h tells the whole story):
 * established connections go on working, new clients wait forever. Such
 * a failure moves the listener's "other" counter, which the guard thread
 * reads every GUARD_TICK_MS.
 *
 * Generations. Re-creating the listener on its path would close every
 * connection it accepted (nng closes a listener's pipes with it, and
 * unlinks its path), so one rude peer would cost every client a
 * reconnection. Instead an ipc:// listener lives on a private path next
 * to the public one,
 *
 *     RUN/.store.sock.PID.GEN      the socket nng listens on
 *     RUN/store.sock -> .store.sock.PID.GEN   what clients dial
 *
 * and a wedged generation is replaced by a new one behind the public
 * name (a new symlink renamed over the old: atomic). The old generation
 * keeps serving the clients it accepted and is closed once it has had
 * none for LISTEN_DRAIN_MS. A connection is counted from nng's ADD_PRE
 * callback, before the protocol can read a request from it (counted at
 * ADD_POST, a request could be read first, and closing the generation
 * then lost its reply: the client resent it and it ran twice).
 * RUN/store.sock.lock (flock) keeps a second daemon off the public name;
 * the holder removes leftovers of a dead predecessor at start.
 *
 * tcp:// listeners cannot be swapped under a name: a wedged one is
 * closed, and a new one listens on the address at the next guard tick,
 * and at every tick after until the address is free (the old one may
 * hold it a little longer); its clients reconnect and resend.
 *
 * The listener owns the socket's NNG_PIPE_EV_ADD_PRE, _ADD_POST and
 * _REM_POST notifications.
 */
#ifndef EF_LISTEN_H
#define EF_LISTEN_H

#include <pthread.h>
#include <stdint.h>

#include <nng/nng.h>

#include "guard.h"

/* generations alive at once (old ones with clients) */
#define LISTEN_GENS 64
/* an old generation closes after this long empty */
#define LISTEN_DRAIN_MS 1000

struct ef_listener {
	struct guard_entry g;
	nng_socket sock;
	char url[4200];  /* as configured */
	char path[4096]; /* ipc: the public path; "" for other schemes */
	int perms;       /* ipc file mode, 0 to leave it */
	int lockfd;
	uint64_t next_gen;
	int relisten;        /* tcp: closed when wedged, to listen again */
	int relisten_failed; /* failed tries since (logged once) */
	pthread_mutex_t mu;  /* gens, against the pipe callbacks */
	struct listen_gen {
		nng_listener l;
		uint32_t id;
		struct pipeset ps; /* its pipes, by id (guard.h) */
		uint64_t other;
		uint64_t
		    empty_since; /* old and without pipes since (ms), or 0 */
		int current;
	} gens[LISTEN_GENS];
	int ngens;
	uint64_t added;    /* pipes added to the socket (atomic) */
	uint64_t restarts; /* generations replaced (atomic) */
};

/*
 * Creates and starts the listener and guards it. 0 or a negative errno
 * (-EADDRINUSE: another process holds the name).
 */
int listener_open(struct ef_listener *el, nng_socket sock, const char *url,
    int perms);

/* Stops guarding it; the caller closes the socket next. */
void listener_close(struct ef_listener *el);

#endif
