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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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
raw_connect(const char *path, int wait_header, const void *bytes, size_t len)
{
	char hdr[8];
	size_t got = 0;
	ssize_t n;
	int fd;

	fd = h_unix_connect(path);
	while (wait_header && got < sizeof(hdr)) {
		n = read(fd, hdr + got, sizeof(hdr) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (len > 0)
		/* the daemon may have closed it already: no SIGPIPE */
		(void)send(fd, bytes, len, MSG_NOSIGNAL);
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
	struct ef_dialer d;
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
	/* guarded, like every subscriber of ours (guard.h) */
	cr_assert_eq(dialer_open(&d, sub, sd.events_url), 0);
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
	dialer_close(&d);
	nng_close(sub);
	return got;
}

Test(handshake, store_socket_after_rude_peers)
{
	h_stored_init(&sd, h_tmpdir(), NULL);
	h_stored_start(&sd);
	cr_assert(new_client_answered(),
	    "no answer before the test even "
	    "began");
	rude_peers("store.sock");
	cr_assert(new_client_answered(),
	    "a new client gets no answer after "
	    "peers left store.sock during the SP handshake (nng 1.5.2: nng "
	    "issue #1518)");
}

Test(handshake, events_socket_after_rude_peers)
{
	h_stored_init(&sd, h_tmpdir(), NULL);
	h_stored_start(&sd);
	cr_assert(new_subscriber_served(),
	    "no publish message before the "
	    "test even began");
	rude_peers("store-events.sock");
	cr_assert(new_subscriber_served(),
	    "a new subscriber gets nothing "
	    "after peers left store-events.sock during the SP handshake "
	    "(nng 1.5.2: nng issue #1518)");
}

Test(handshake, second_stored_on_the_same_sockets)
{
	struct h_stored two;

	h_stored_init(&sd, h_tmpdir(), NULL);
	h_stored_start(&sd);
	/* another data directory, the same runtime directory: its bind
	 * finds the paths in use, and nng connects to them to see whether
	 * they are alive (then hangs up) */
	h_stored_init(&two, h_tmpdir(), NULL);
	snprintf(two.run_dir, sizeof(two.run_dir), "%s", sd.run_dir);
	h_stored_start_fails(&two, "the second stored");
	cr_assert(new_client_answered(),
	    "the first stored no longer takes "
	    "new clients");
	cr_assert(new_subscriber_served(),
	    "the first stored no longer takes "
	    "new subscribers after a second one probed its socket (nng 1.5.2: "
	    "nng issue #1518)");
}

/*
 * A storm: RUDE_N peers hang up during the handshake on each socket
 * while clients keep appending and a subscriber keeps following. Every
 * call must succeed (a re-created listener drops the clients' pipes;
 * they reconnect and resend), the subscriber must see every event once
 * and in order, and a new client is answered as soon as the storm ends.
 */
#define RUDE_N  1000
#define CALLERS 4

struct caller {
	struct h_worker w; /* first */
	volatile int *stop;
	uint64_t ok, failed;
	char why[600];
};

static void *
caller_main(void *arg)
{
	struct caller *cl = arg;
	struct h_result r;
	char sid[UUID_STR_LEN], id[UUID_STR_LEN];
	int st;

	h_uuid(sid);
	while (!*cl->stop) {
		st = h_append1(&cl->w.c, sid, EF_EXPECT_ANY, 0, h_uuid(id),
		    "Storm", "{}", &r);
		if (st == EF_S_OK)
			__atomic_add_fetch(&cl->ok, 1, __ATOMIC_RELAXED);
		else if (cl->failed++ == 0)
			snprintf(cl->why, sizeof(cl->why), "%s: %s",
			    ipc_status_name(st), r.msg);
	}
	return NULL;
}

/* Connects and hangs up; a refused connect (a listener being
 * re-created) is fine for a rude peer. */
static void
rude_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if ((fd = h_unix_socket(&sa, path, 0)) < 0)
		return;
	(void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
}

static volatile int sub_stop;
static uint64_t sub_next, sub_bad;

static int
sub_event(void *arg, const struct ef_event *ev)
{
	(void)arg;
	if (ev->global_position != sub_next)
		sub_bad++;
	sub_next = ev->global_position + 1;
	return 0;
}

static void *
sub_main(void *arg)
{
	struct sub_params *p = arg;

	(void)sub_run(p);
	return NULL;
}

Test(handshake, rude_storm_while_clients_call)
{
	static struct caller cl[CALLERS];
	struct sub_params sp;
	struct ef_client c;
	pthread_t subthr;
	char store_path[H_PATH + 32], events_path[H_PATH + 32];
	volatile int stop = 0;
	uint64_t head, t0, ok = 0;
	int i;

	h_stored_init(&sd, h_tmpdir(), NULL);
	h_stored_start(&sd);
	snprintf(store_path, sizeof(store_path), "%s/store.sock", sd.run_dir);
	snprintf(events_path, sizeof(events_path), "%s/store-events.sock",
	    sd.run_dir);
	memset(&sp, 0, sizeof(sp));
	sp.store_url = sd.store_url;
	sp.events_url = sd.events_url;
	sp.on_event = sub_event;
	sp.stop = &sub_stop;
	cr_assert_eq(pthread_create(&subthr, NULL, sub_main, &sp), 0);
	for (i = 0; i < CALLERS; i++)
		cl[i].stop = &stop;
	h_workers_start(&sd, cl, sizeof(cl[0]), CALLERS, caller_main, 5000);
	/* the clients are connected and calling before the storm; a new
	 * client is tried after it */
	for (i = 0; i < CALLERS; i++)
		while (__atomic_load_n(&cl[i].ok, __ATOMIC_RELAXED) == 0 &&
		    cl[i].failed == 0)
			h_sleep_ms(1);
	for (i = 0; i < RUDE_N; i++) {
		rude_connect(store_path);
		rude_connect(events_path);
	}
	stop = 1;
	for (i = 0; i < CALLERS; i++) {
		pthread_join(cl[i].w.thr, NULL);
		client_close(&cl[i].w.c);
		ok += cl[i].ok;
		cr_expect_eq(cl[i].failed, 0,
		    "caller %d: %llu of %llu calls "
		    "failed, first: %s",
		    i, (unsigned long long)cl[i].failed,
		    (unsigned long long)(cl[i].failed + cl[i].ok), cl[i].why);
	}
	cr_assert_gt(ok, 0, "no call succeeded during the storm");
	/* one more rude peer, then a new client */
	rude_connect(store_path);
	t0 = h_now_ms();
	h_client(&c, &sd, 5000);
	head = h_head(&c);
	fprintf(stderr,
	    "# %llu appends during %d rude peers per socket; "
	    "a new client after one more was answered in %llu ms\n",
	    (unsigned long long)ok, RUDE_N,
	    (unsigned long long)(h_now_ms() - t0));
	cr_assert_neq(head, UINT64_MAX, "a new client gets no answer");
	client_close(&c);
	cr_assert_eq(head, ok,
	    "the log holds %llu events, %llu appends "
	    "were acknowledged",
	    (unsigned long long)head, (unsigned long long)ok);
	/* the subscriber: every event once, in order */
	t0 = h_now_ms();
	while (__atomic_load_n(&sub_next, __ATOMIC_RELAXED) < head &&
	    h_now_ms() - t0 < 30000)
		h_sleep_ms(10);
	sub_stop = 1;
	pthread_join(subthr, NULL);
	cr_assert_eq(sub_next, head, "the subscriber reached %llu of %llu",
	    (unsigned long long)sub_next, (unsigned long long)head);
	cr_assert_eq(sub_bad, 0,
	    "the subscriber saw %llu events out of "
	    "order",
	    (unsigned long long)sub_bad);
}
