/* SPDX-License-Identifier: MIT */
/*
 * test_client.c - unit tests of libcommon/client.c against real nng
 * sockets over ipc in this process.
 *
 * orphaned_connection: nng 1.5.2's listener, once a peer has hung up
 * during the SP handshake, no longer takes new connections into its
 * socket, but its transport still accepts them and completes their
 * handshake (guard.h). A client that connects then has a pipe on which
 * nothing is ever answered; before the client closed such a pipe, every
 * later call timed out for as long as the listener lived (12 s and more
 * in e2e_restarts under load). The client here dials a name that points
 * at a wedged listener, then the name is moved to a healthy one (what
 * listen.c's generations do): the client must be answered again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

#include "acall.h"
#include "client.h"
#include "guard.h"

static char dir[] = "/tmp/ef-test-client-XXXXXX";
static nng_socket srv;
static volatile int stopping;
static pthread_t echo_thr;
static struct ef_client cl; /* closed by teardown, even after a failure */
static int cl_open;

/* Answers every request with its own body. */
static void *
echo_main(void *arg)
{
	nng_msg *m;

	(void)arg;
	while (!stopping) {
		if (nng_recvmsg(srv, &m, 0) != 0)
			continue;
		if (nng_sendmsg(srv, m, 0) != 0)
			nng_msg_free(m);
	}
	return NULL;
}

static void
path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/*
 * Connects to path and hangs up before the SP handshake (at once, or
 * once the listener's 8-byte header came).
 */
static void
rude_peer(const char *path, int wait_header)
{
	struct sockaddr_un sa;
	char hdr[8];
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
	    "connect %s: %s", path, strerror(errno));
	if (wait_header) {
		struct timeval tv = { 1, 0 };

		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)read(fd, hdr, sizeof(hdr));
	}
	close(fd);
}

/* The listener's "other" counter: a failed accept (guard.h). */
static uint64_t
listener_other(nng_listener l)
{
	nng_stat *st;
	uint64_t v;

	cr_assert_eq(nng_stats_get(&st), 0);
	v = guard_counter(guard_find(st, "listener",
	                      (uint64_t)nng_listener_id(l)),
	    "other");
	nng_stats_free(st);
	return v;
}

/* Points the name "sock" at target, atomically. */
static void
point_at(const char *target)
{
	char name[300], tmp[300];

	path_of(name, sizeof(name), "sock");
	path_of(tmp, sizeof(tmp), "sock.tmp");
	(void)unlink(tmp);
	cr_assert_eq(symlink(target, tmp), 0);
	cr_assert_eq(rename(tmp, name), 0);
}

static void
setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(nng_rep0_open(&srv), 0);
	nng_socket_set_ms(srv, NNG_OPT_RECVTIMEO, 50);
	nng_socket_set_ms(srv, NNG_OPT_SENDTIMEO, 500);
	stopping = 0;
	cr_assert_eq(pthread_create(&echo_thr, NULL, echo_main, NULL), 0);
}

static void
teardown(void)
{
	char p[300];

	if (cl_open)
		client_close(&cl);
	cl_open = 0;
	stopping = 1;
	pthread_join(echo_thr, NULL);
	nngx_close(srv);
	path_of(p, sizeof(p), "sock");
	unlink(p);
	path_of(p, sizeof(p), "a");
	unlink(p);
	path_of(p, sizeof(p), "b");
	unlink(p);
	rmdir(dir);
}

/*
 * Wedges listener la (nng 1.5.2, nng #1518) and connects the client cl
 * to it through the name "sock" (url): its one connection is then one
 * the listener never took, on which nothing is answered.
 */
static void
wedge_and_connect(nng_listener la, const char *url)
{
	char a[300];
	nng_msg *rep = NULL;
	uint64_t t0, end, other = 0;
	int i, tries, rv, orphaned = 0;

	path_of(a, sizeof(a), "a");
	/*
	 * Not every early hang-up stops the
	 * listener (some errors only pause it), so the client's first call
	 * tells: answered, the listener still works and it is tried again.
	 */
	end = guard_now_ms() + 30000;
	for (tries = 0; !orphaned && guard_now_ms() < end; tries++) {
		for (i = 0; i < 200 && listener_other(la) == other; i++) {
			rude_peer(a, (tries + i) % 2);
			nng_msleep(10);
		}
		other = listener_other(la);
		point_at("a");
		cr_assert_eq(client_open(&cl, url, 400), 0);
		cl_open = 1;
		end = guard_now_ms() + 5000;
		while (dialer_pipes(&cl.dialer) == 0 && guard_now_ms() < end)
			nng_msleep(5);
		cr_assert_eq(dialer_pipes(&cl.dialer), 1,
		    "the client did "
		    "not connect to listener a");
		t0 = guard_now_ms();
		rv = client_roundtrip(&cl, "ping", 4, t0 + 300, t0 + 300,
		    &rep);
		if (rv == 0) {
			nng_msg_free(rep);
			client_close(&cl);
			cl_open = 0;
			continue;
		}
		cr_assert_eq(rv, -ETIMEDOUT, "%s", strerror(-rv));
		orphaned = 1;
	}
	cr_assert(orphaned,
	    "no rude peer stopped the listener in %d tries: "
	    "is this nng newer than 1.5 (then the test has nothing to show)?",
	    tries);
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 60);

/* Listeners la and lb on the server at paths a and b; the client's name
 * (dir/sock) is connected through la, which is wedged, then pointed at
 * b, a listener that works (listen.c does so). */
static void
orphan_then_point_at_b(nng_listener *la, nng_listener *lb)
{
	char a[300], b[300], url[320];

	path_of(a, sizeof(a), "a");
	path_of(b, sizeof(b), "b");
	snprintf(url, sizeof(url), "ipc://%s", a);
	cr_assert_eq(nng_listen(srv, url, la, 0), 0);
	snprintf(url, sizeof(url), "ipc://%s", b);
	cr_assert_eq(nng_listen(srv, url, lb, 0), 0);
	snprintf(url, sizeof(url), "ipc://%s/sock", dir);
	wedge_and_connect(*la, url);
	point_at("b");
}

Test(client, orphaned_connection)
{
	nng_listener la, lb;
	nng_msg *rep = NULL;
	uint64_t t0, end;
	int rv, ok = 0, timeouts = 0;

	orphan_then_point_at_b(&la, &lb);

	/* within 5 s the client must be answered again (the orphan goes
	 * once it is DIALER_ORPHAN_MS old) */
	end = guard_now_ms() + 5000;
	while (!ok && guard_now_ms() < end) {
		t0 = guard_now_ms();
		rv = client_roundtrip(&cl, "ping", 4, t0 + 400, t0 + 400,
		    &rep);
		if (rv == 0) {
			cr_assert_eq(nng_msg_len(rep), 4);
			cr_assert_eq(memcmp(nng_msg_body(rep), "ping", 4), 0);
			nng_msg_free(rep);
			ok = 1;
		} else if (rv == -ETIMEDOUT)
			timeouts++;
		nng_msleep(5);
	}
	cr_assert(ok,
	    "every call for 5 s timed out (%d): the client kept "
	    "the connection the wedged listener never took",
	    timeouts);
	cr_assert_geq(__atomic_load_n(&cl.dialer.dropped, __ATOMIC_RELAXED), 1,
	    "answered without closing the orphaned connection?");
	/* and it stays answered */
	t0 = guard_now_ms();
	cr_assert_eq(client_roundtrip(&cl, "pong", 4, t0 + 1000, t0 + 1000,
	                 &rep),
	    0);
	nng_msg_free(rep);
}

/* acall's side: a trip on a socket whose dialer is given. */
struct trip_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, err;
};

static void
trip_done(void *arg, int err, struct client_reply *rep)
{
	struct trip_wait *w = arg;

	(void)rep;
	pthread_mutex_lock(&w->mu);
	w->err = err;
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* One acall trip of "ping" with ms to go; its error (the echo is not
 * an eventfold reply: -EBADMSG means answered). */
static int
trip(struct acall *ac, struct trip_wait *w, int ms)
{
	w->done = 0;
	acall_start(ac, "ping", 4, 1, guard_now_ms() + (uint64_t)ms);
	pthread_mutex_lock(&w->mu);
	while (!w->done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	return w->err;
}

/*
 * The gateway's asynchronous calls (acall.c) on an orphaned connection:
 * with the socket's dialer given, a trip that timed out closes the
 * connection that never answered, and later trips are answered.
 */
Test(client, orphaned_connection_async)
{
	struct trip_wait w = { PTHREAD_MUTEX_INITIALIZER,
		PTHREAD_COND_INITIALIZER, 0, 0 };
	nng_listener la, lb;
	struct acall ac;
	uint64_t end;
	int err, ok = 0, timeouts = 0;

	orphan_then_point_at_b(&la, &lb);

	cr_assert_eq(acall_init(&ac, cl.sock, "echo", trip_done, &w), 0);
	ac.dialer = &cl.dialer;
	end = guard_now_ms() + 5000;
	while (!ok && guard_now_ms() < end) {
		err = trip(&ac, &w, 400);
		if (err == -EBADMSG)
			ok = 1;
		else if (err == -ETIMEDOUT)
			timeouts++;
		nng_msleep(5);
	}
	acall_fini(&ac);
	cr_assert(ok,
	    "every trip for 5 s timed out (%d): acall kept the connection "
	    "the wedged listener never took",
	    timeouts);
	cr_assert_geq(__atomic_load_n(&cl.dialer.dropped, __ATOMIC_RELAXED), 1,
	    "answered without closing the orphaned connection?");
}
