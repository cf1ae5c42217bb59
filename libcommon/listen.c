/* SPDX-License-Identifier: MIT */
/*
 * listen.c - self-healing nng listeners (see listen.h for why).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"

static int
listener_start(struct ef_listener *el)
{
	int rv;

	if ((rv = nng_listener_create(&el->l, el->sock, el->url)) != 0)
		return rv;
	if (el->perms && strncmp(el->url, "ipc://", 6) == 0)
		nng_listener_set_int(el->l, NNG_OPT_IPC_PERMISSIONS, el->perms);
	if ((rv = nng_listener_start(el->l, 0)) != 0) {
		nng_listener_close(el->l);
		return rv;
	}
	return 0;
}

static void
listener_pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct ef_listener *el = arg;

	(void)p;
	(void)ev;
	__atomic_add_fetch(&el->added, 1, __ATOMIC_RELEASE);
}

int
listener_open(struct ef_listener *el, nng_socket sock, const char *url,
    int perms, uint16_t peer_proto)
{
	memset(el, 0, sizeof(*el));
	el->sock = sock;
	snprintf(el->url, sizeof(el->url), "%s", url);
	el->perms = perms;
	el->peer_proto = peer_proto;
	nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, listener_pipe_added, el);
	return listener_start(el);
}

static int
ms_left(const struct timespec *end)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (end->tv_sec - now.tv_sec) * 1000 +
	    (end->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : (int)ms;
}

/*
 * Connects to the ipc path, reads the listener's 8-byte SP header,
 * sends ours as the peer protocol (so the pipe is fully established and
 * our hang-up is an ordinary disconnect, not the handshake failure that
 * triggers the bug), and closes. 1 if the listener answered, 0 if not,
 * -1 if the probe itself could not run.
 */
static int
probe_ipc(struct ef_listener *el, const char *path, uint16_t proto,
    int timeout_ms)
{
	struct sockaddr_un sa;
	struct timespec end;
	struct pollfd pfd;
	uint8_t mine[8] = { 0, 'S', 'P', 0, (uint8_t)(proto >> 8),
		(uint8_t)proto, 0, 0 };
	uint8_t theirs[8];
	uint64_t before = __atomic_load_n(&el->added, __ATOMIC_ACQUIRE);
	size_t got = 0;
	ssize_t n;
	int fd, ok = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		/* no such path (being re-created) or refused: not wedged by
		 * the bug; the caller's next check will tell */
		close(fd);
		return errno == EAGAIN ? 0 : -1;
	}
	if (write(fd, mine, sizeof(mine)) != (ssize_t)sizeof(mine)) {
		close(fd);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_ms / 1000;
	end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (got < sizeof(theirs)) {
		if (poll(&pfd, 1, ms_left(&end)) <= 0)
			break;
		n = read(fd, theirs + got, sizeof(theirs) - got);
		if (n <= 0) {
			if (n < 0 && errno == EAGAIN)
				continue;
			break;
		}
		got += (size_t)n;
	}
	/* the handshake alone proves nothing: wait for the pipe to reach
	 * the socket */
	while (got == sizeof(theirs) && theirs[0] == 0 && theirs[1] == 'S' &&
	    theirs[2] == 'P') {
		if (__atomic_load_n(&el->added, __ATOMIC_ACQUIRE) != before) {
			ok = 1;
			break;
		}
		if (ms_left(&end) == 0)
			break;
		usleep(2000);
	}
	close(fd);
	return ok;
}

int
listener_check(struct ef_listener *el, int timeout_ms)
{
	int rv;

	if (strncmp(el->url, "ipc://", 6) != 0)
		return 0;
	if (probe_ipc(el, el->url + 6, el->peer_proto, timeout_ms) != 0) {
		el->strikes = 0;
		return 0;
	}
	if (++el->strikes < 2)
		return 0;
	el->strikes = 0;
	log_warnx("%s: listener stopped accepting (nng 1.5 handshake bug); "
	    "re-creating it", el->url);
	nng_listener_close(el->l);
	if ((rv = listener_start(el)) != 0) {
		log_warnx("%s: cannot listen again: %s", el->url,
		    nng_strerror(rv));
		return rv;
	}
	el->restarts++;
	return 1;
}
