/* SPDX-License-Identifier: MIT */
/*
 * listen.h - nng listeners that heal themselves.
 *
 * nng 1.5.2 (Debian 12) stops a listener for good when a peer hangs up
 * during the SP handshake (nng #1518; guard.h tells the whole story):
 * established connections go on working, new clients wait forever. A
 * guarded listener is watched by the guard thread through nng's
 * statistics: the failed handshake moves the listener's "other"
 * counter, and the listener is closed and created again on the same URL
 * within GUARD_TICK_MS. Its connected peers lose their pipe, redial and
 * resend (client.c), so the heal costs them a few milliseconds.
 *
 * The guard owns the socket's NNG_PIPE_EV_ADD_POST notification.
 */
#ifndef EF_LISTEN_H
#define EF_LISTEN_H

#include <stdint.h>

#include <nng/nng.h>

#include "guard.h"

struct ef_listener {
	struct guard_entry g;
	nng_socket sock;
	nng_listener l;
	char url[4200];
	int perms;          /* ipc file mode, 0 to leave it */
	uint64_t other;     /* last seen "other" counter of l */
	uint64_t added;     /* pipes added to the socket (atomic) */
	uint64_t restarts;  /* times re-created (atomic) */
};

/* Creates and starts the listener and guards it. 0 or an nng error. */
int listener_open(struct ef_listener *el, nng_socket sock, const char *url,
    int perms);

/* Stops guarding it; the caller closes the socket next. */
void listener_close(struct ef_listener *el);

#endif
