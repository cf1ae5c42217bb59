/* SPDX-License-Identifier: MIT */
/*
 * test_handshake.c - peers that open eventfold-stored's sockets and go
 * away without completing the SP handshake: a port scanner, a health
 * check with socat, a client killed at the wrong moment, or nng itself
 * when a second stored probes whether the socket path is live. None of
 * them may stop stored from accepting new clients and subscribers.
 *
 * With nng 1.5.2 (Debian 12) all three fail: a connection closed during
 * the handshake makes the listener stop handing new connections to the
 * socket (nng issue #1518, fixed in nng 1.6.0 by pull request #1519).
 * Established connections keep working, so only new clients notice.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

#include <nng/protocol/pubsub0/sub.h>

TestSuite(handshake, .fini = h_cleanup, .timeout = 60);

static struct h_stored sd;

/*
 * Connects to path, optionally waits for the daemon's 8-byte SP header,
 * sends len bytes, and hangs up.
 */
static void
raw_connect(const char *path, int wait_header, const void *bytes,
    size_t len)
{
	struct sockaddr_un sa;
	char hdr[8];
	size_t got = 0;
	ssize_t n;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	cr_assert_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
	    "connect %s: %s", path, strerror(errno));
	while (wait_header && got < sizeof(hdr)) {
		n = read(fd, hdr + got, sizeof(hdr) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (len > 0)
		(void)write(fd, bytes, len);
	close(fd);
}

/* The three kinds of peer that leave early. */
static void
rude_peers(const char *sock)
{
	char path[H_PATH + 32];

	snprintf(path, sizeof(path), "%s/%s", sd.run_dir, sock);
	for (int i = 0; i < 2; i++) {
		raw_connect(path, i, NULL, 0);
		raw_connect(path, i, "GET / HTTP/1.0\r\n\r\n", 18);
		raw_connect(path, i, "\0SP\0\0\x30\0\0garbage", 15);
	}
}

/* Does a new client get an answer within 10 s (the listener guard
 * probes every second and heals after two failed probes of 2 s)? */
static bool
new_client_answered(void)
{
	struct ef_client c;
	uint64_t head = UINT64_MAX, deadline = h_now_ms() + 10000;

	/* like any client, retry when the connection breaks (the guard
	 * re-creating the listener closes the connections it held) */
	h_client(&c, &sd, 2000);
	while (head == UINT64_MAX && h_now_ms() < deadline)
		head = h_head(&c);
	client_close(&c);
	return head != UINT64_MAX;
}

/* Does a new subscriber get a publish message within 10 s? */
static bool
new_subscriber_served(void)
{
	struct ef_client c;
	struct h_result r;
	nng_socket sub;
	nng_msg *m;
	uint64_t deadline = h_now_ms() + 10000;
	char sid[UUID_STR_LEN], id[UUID_STR_LEN];
	bool got = false;

	cr_assert_eq(nng_sub0_open(&sub), 0);
	nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, 200);
	nng_socket_set_ms(sub, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(sub, NNG_OPT_RECONNMAXT, 100);
	cr_assert_eq(nng_dial(sub, sd.events_url, NULL, NNG_FLAG_NONBLOCK), 0);
	h_client(&c, &sd, 10000);
	h_uuid(sid);
	/* pub/sub has no "connected" signal: publish until one arrives */
	while (!got && h_now_ms() < deadline) {
		if (h_append1(&c, sid, EF_EXPECT_ANY, 0, h_uuid(id), "Ping",
		    "{}", &r) != EF_S_OK)
			break;
		if (nng_recvmsg(sub, &m, 0) == 0) {
			nng_msg_free(m);
			got = true;
		}
	}
	client_close(&c);
	nng_close(sub);
	return got;
}

Test(handshake, store_socket_after_rude_peers)
{
	h_stored_init(&sd, h_tmpdir(), NULL);
	h_stored_start(&sd);
	cr_assert(new_client_answered(), "no answer before the test even "
	    "began");
	rude_peers("store.sock");
	cr_assert(new_client_answered(), "a new client gets no answer after "
	    "peers left store.sock during the SP handshake (nng 1.5.2: nng "
	    "issue #1518)");
}

Test(handshake, events_socket_after_rude_peers)
{
	h_stored_init(&sd, h_tmpdir(), NULL);
	h_stored_start(&sd);
	cr_assert(new_subscriber_served(), "no publish message before the "
	    "test even began");
	rude_peers("store-events.sock");
	cr_assert(new_subscriber_served(), "a new subscriber gets nothing "
	    "after peers left store-events.sock during the SP handshake "
	    "(nng 1.5.2: nng issue #1518)");
}

Test(handshake, second_stored_on_the_same_sockets)
{
	struct h_stored two;
	int st;

	h_stored_init(&sd, h_tmpdir(), NULL);
	h_stored_start(&sd);
	/* another data directory, the same runtime directory: its bind
	 * finds the paths in use, and nng connects to them to see whether
	 * they are alive (then hangs up) */
	h_stored_init(&two, h_tmpdir(), NULL);
	snprintf(two.run_dir, sizeof(two.run_dir), "%s", sd.run_dir);
	h_stored_spawn(&two);
	st = h_wait_pid(two.pid, 15000);
	two.pid = 0;
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
	    "the second stored did not fail (0x%x)", st);
	cr_assert(new_client_answered(), "the first stored no longer takes "
	    "new clients");
	cr_assert(new_subscriber_served(), "the first stored no longer takes "
	    "new subscribers after a second one probed its socket (nng 1.5.2: "
	    "nng issue #1518)");
}
