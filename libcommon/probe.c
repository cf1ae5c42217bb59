/* SPDX-License-Identifier: MIT */
/*
 * probe.c - connect(2) and an SP handshake on an ipc:// socket before
 * dialling it with nng (probe.h says why the handshake).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#define PROBE_TRIES    3
#define PROBE_PAUSE_MS 30

/* SP header: "\0SP\0", protocol id (req0 = 0x30) big-endian, reserved. */
static const uint8_t sp_req0[8] = { 0, 'S', 'P', 0, 0x00, 0x30, 0, 0 };

/* Reads exactly len bytes by the deadline (poll); 0 or -1. */
static int
read_full(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	size_t n = 0;
	ssize_t r;

	while (n < len) {
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		if ((r = read(fd, buf + n, len - n)) <= 0)
			return -1;
		n += (size_t)r;
	}
	return 0;
}

int
probe_rep(const char *url, int timeout_ms, char *why, size_t len)
{
	struct timespec pause = { 0, PROBE_PAUSE_MS * 1000 * 1000 };
	struct sockaddr_un sa;
	const char *path;
	uint8_t hdr[8];
	int fd = -1, rc, try, err = 0;

	if (strncmp(url, "ipc://", 6) != 0)
		return PROBE_NOT_IPC;
	path = url + 6;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, len, "socket path %s is too long", path);
		return PROBE_ERROR;
	}
	memcpy(sa.sun_path, path, strlen(path));
	/*
	 * The public name is a symbolic link a daemon swings to a new
	 * listener now and then (listen.h), closing the old one: a connect
	 * that resolved the old target just before can find it gone. Only a
	 * failure that lasts PROBE_TRIES attempts is an answer.
	 */
	for (try = 0; try < PROBE_TRIES; try++) {
		if (try > 0)
			nanosleep(&pause, NULL);
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) <
		    0) {
			snprintf(why, len, "socket: %s", strerror(errno));
			return PROBE_ERROR;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
		if (err != ENOENT && err != ECONNREFUSED)
			break;
	}
	if (fd < 0) {
		if (err == ENOENT) {
			snprintf(why, len, "no socket at %s", path);
			return PROBE_NO_FILE;
		}
		if (err == ECONNREFUSED) {
			snprintf(why, len,
			    "nobody listens on %s (a socket "
			    "left by a daemon that stopped)",
			    path);
			return PROBE_REFUSED;
		}
		snprintf(why, len, "cannot connect to %s: %s", path,
		    strerror(err));
		return PROBE_ERROR;
	}
	/*
	 * Connected: finish the handshake as a req0 peer would, so the
	 * listener sees an ordinary connection that closes. A daemon too
	 * busy to answer in time is alive: leave the verdict to nng.
	 */
	rc = PROBE_OK;
	if (send(fd, sp_req0, sizeof(sp_req0), MSG_NOSIGNAL) ==
	    (ssize_t)sizeof(sp_req0))
		(void)read_full(fd, hdr, sizeof(hdr), timeout_ms);
	close(fd);
	return rc;
}
