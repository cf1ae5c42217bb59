/* SPDX-License-Identifier: MIT */
/*
 * listen.h - nng listeners that heal themselves.
 *
 * nng 1.5.2 (Debian 12) has a bug (nng issue #1518, fixed in 1.6.0): a
 * peer that connects and hangs up during the SP handshake - a port
 * scanner, `socat`, a client killed at the wrong moment, a second daemon
 * probing whether a socket path is live - makes the listener stop
 * handing new connections to the socket. Established connections go on
 * working; new clients wait forever.
 *
 * A guarded listener is probed from time to time by listener_check():
 * it connects to its own ipc:// path, completes a proper handshake as
 * the peer protocol, and waits for nng to report the new pipe on the
 * socket (a pipe-add notification), then hangs up. The wedged listener
 * still completes the handshake but never adds the pipe; if no pipe is
 * added within the probe timeout twice in a row (a busy machine can be
 * slow once), the listener is closed and created again on the same URL (its connected peers redial by themselves;
 * requests are idempotent or retried by their callers). tcp:// listeners
 * are not probed. The guard owns the socket's NNG_PIPE_EV_ADD_POST
 * notification.
 */
#ifndef EF_LISTEN_H
#define EF_LISTEN_H

#include <stdint.h>

#include <nng/nng.h>

/* SP protocol numbers of the peers we probe as. */
#define SP_PROTO_SUB0 0x21 /* peer of pub0 */
#define SP_PROTO_REQ0 0x30 /* peer of rep0 */

struct ef_listener {
	nng_socket sock;
	nng_listener l;
	char url[4200];
	int perms;          /* ipc file mode, 0 to leave it */
	uint16_t peer_proto;
	uint64_t added;     /* pipes added to the socket (atomic) */
	int strikes;        /* consecutive failed probes */
	uint64_t restarts;
};

/* Creates and starts the listener. 0 or an nng error. */
int listener_open(struct ef_listener *el, nng_socket sock, const char *url,
    int perms, uint16_t peer_proto);

/*
 * Probes the listener (blocks up to timeout_ms) and re-creates it if it
 * no longer accepts. Returns 0 if healthy, 1 if it was re-created, or
 * an nng error if re-creating failed (the caller logs and retries).
 */
int listener_check(struct ef_listener *el, int timeout_ms);

#endif
