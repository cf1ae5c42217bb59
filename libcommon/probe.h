/* SPDX-License-Identifier: MIT */
/*
 * probe.h - is anybody listening on an ipc:// socket? Asked before a
 * client dials, so that a command aimed at a runtime directory where no
 * daemon runs fails at once and says which path it tried, instead of
 * waiting out its timeout (an nng dialer retries a missing path
 * silently until the deadline).
 *
 * The probe is connect(2) on the socket's path and, when that works,
 * the 8-byte SP handshake of a req0 peer (the daemons' request sockets
 * are rep0), read back before closing: a peer that hangs up during the
 * handshake stops nng 1.5.2's listener (guard.h), so the probe must
 * never be that peer. Only rep0 sockets may be probed.
 */
#ifndef EF_PROBE_H
#define EF_PROBE_H

#include <stddef.h>

/* What probe_rep() found. */
#define PROBE_OK      0 /* a rep0 socket answered the handshake */
#define PROBE_NOT_IPC 1 /* not an ipc:// URL: nothing checked */
#define PROBE_NO_FILE 2 /* no socket file at the path */
#define PROBE_REFUSED 3 /* the file is there, nobody listens */
#define PROBE_ERROR   4 /* another error (permissions, not a socket) */

/*
 * Probes the ipc:// URL url, waiting at most timeout_ms for the
 * handshake. Returns a PROBE_* code; for PROBE_NO_FILE, PROBE_REFUSED
 * and PROBE_ERROR, why (len bytes) says what happened, naming the path.
 */
int probe_rep(const char *url, int timeout_ms, char *why, size_t len);

#endif
