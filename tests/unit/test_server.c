/* SPDX-License-Identifier: MIT */
/*
 * test_server.c - unit tests of libcommon/server.c, the request server
 * of stored and runnerd: a real rep socket listening on ipc:// in a
 * fresh directory, and real req sockets as clients. Covered: the op
 * table, the error replies of the server itself (unknown op, foreign
 * version), the size bound, deferred replies from another thread, and
 * the shutdown policy with requests in flight.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "ipc.h"
#include "server.h"
#include "tmpdir.h"

#define OP_ECHO  EF_OP_STATUS /* answers at once */
#define OP_LATER EF_OP_APPEND /* deferred, answered by another thread */
#define OP_SLOW  EF_OP_ROTATE /* blocks its thread for a second */
#define OP_SHUT  EF_OP_BACKUP /* refused by the admit hook */

static char dir[64], url[128];
static struct srv *srv;

/* What the handlers saw, and the deferred requests to answer. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int echoes, slow_started, later_taken;
static struct srv_req *later;

static int
h_echo(struct srv_req *r, const struct ipc_in *in)
{
	uint64_t *calls = srv_data(r);

	(void)in;
	(*calls)++;
	pthread_mutex_lock(&mu);
	echoes++;
	pthread_mutex_unlock(&mu);
	ipc_reply_begin(srv_out(r), EF_S_OK, "echo");
	ipc_nil(srv_out(r));
	return SRV_DONE;
}

static int
h_later(struct srv_req *r, const struct ipc_in *in)
{
	(void)in;
	pthread_mutex_lock(&mu);
	later = r;
	later_taken++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	return SRV_DEFERRED;
}

static int
h_slow(struct srv_req *r, const struct ipc_in *in)
{
	(void)in;
	pthread_mutex_lock(&mu);
	slow_started++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	nng_msleep(1000);
	ipc_reply_begin(srv_out(r), EF_S_OK, "slow");
	ipc_nil(srv_out(r));
	return SRV_DONE;
}

static int
admit(struct srv_req *r, const struct ipc_in *in, unsigned flags)
{
	(void)in;
	if (flags == 0)
		return 0;
	srv_error(r, EF_S_UNAVAILABLE, "refused by admit");
	return 1;
}

static const struct srv_op ops[] = {
	{ OP_ECHO, h_echo, 0 },
	{ OP_LATER, h_later, 0 },
	{ OP_SLOW, h_slow, 0 },
	{ OP_SHUT, h_echo, 1 },
};

static void
start(uint64_t contexts, uint64_t threads, size_t max_msg)
{
	struct srv_conf c = {
		.name = "test-server",
		.url = url,
		SRV_TABLE(ops),
		.contexts = contexts,
		.threads = threads,
		.max_msg = max_msg,
		.admit = admit,
		.data_size = sizeof(uint64_t),
	};

	snprintf(dir, sizeof(dir), "/tmp/test_server.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "ipc://%s/t.sock", dir);
	cr_assert_eq(srv_start(&c, &srv), 0);
}

static void
cleanup(void)
{
	tmpdir_remove(dir);
}

static nng_socket
dial(void)
{
	nng_socket s;

	cr_assert_eq(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 5000);
	cr_assert_eq(nng_dial(s, url, NULL, 0), 0);
	return s;
}

/* Sends a request (version, op, padded with pad bytes of body). */
static int
send_req(nng_socket s, uint32_t version, int op, size_t pad)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char *junk;
	int rv;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint32(&pk, version);
	msgpack_pack_int(&pk, op);
	msgpack_pack_uint64(&pk, 0x1234);
	if (pad == 0)
		msgpack_pack_nil(&pk);
	else {
		junk = calloc(1, pad);
		msgpack_pack_bin(&pk, pad);
		msgpack_pack_bin_body(&pk, junk, pad);
		free(junk);
	}
	rv = nng_send(s, sb.data, sb.size, 0);
	msgpack_sbuffer_destroy(&sb);
	return rv;
}

/* Receives a reply: its status, and its message into msg. */
static int
recv_rep(nng_socket s, int *status, char *msg, size_t len)
{
	struct ipc_in in;
	const char *why = "";
	void *buf;
	size_t n;
	int rv;

	if ((rv = nng_recv(s, &buf, &n, NNG_FLAG_ALLOC)) != 0)
		return rv;
	memset(&in, 0, sizeof(in));
	cr_assert_eq(ipc_reply_open(&in, buf, n, &why), 0, "reply: %s", why);
	*status = in.status;
	snprintf(msg, len, "%.*s", (int)in.message.len, in.message.ptr);
	ipc_in_close(&in);
	nng_free(buf, n);
	return 0;
}

static void
call(nng_socket s, int op, int want, const char *want_msg)
{
	char msg[256];
	int status;

	cr_assert_eq(send_req(s, EF_PROTO_VERSION, op, 0), 0);
	cr_assert_eq(recv_rep(s, &status, msg, sizeof(msg)), 0);
	cr_assert_eq(status, want, "op %d: status %d (%s)", op, status, msg);
	cr_assert(strstr(msg, want_msg) != NULL, "message \"%s\"", msg);
}

TestSuite(server, .fini = cleanup);

Test(server, table_and_server_errors)
{
	nng_socket s;
	char msg[256];
	int status;

	start(2, 0, 0);
	s = dial();
	call(s, OP_ECHO, EF_S_OK, "echo");
	call(s, OP_ECHO, EF_S_OK, "echo");
	call(s, EF_OP_EXECUTE, EF_S_UNKNOWN_OP,
	    "unknown operation 32 (execute) for test-server");
	call(s, OP_SHUT, EF_S_UNAVAILABLE, "refused by admit");
	cr_assert_eq(send_req(s, 99, OP_ECHO, 0), 0);
	cr_assert_eq(recv_rep(s, &status, msg, sizeof(msg)), 0);
	cr_assert_eq(status, EF_S_BAD_VERSION);
	cr_assert(strstr(msg,
	              "this test-server speaks version " EF_STR(
	                  EF_PROTO_VERSION)) != NULL,
	    "%s", msg);
	/* not msgpack at all */
	cr_assert_eq(nng_send(s, "\xc1\xc1", 2, 0), 0);
	cr_assert_eq(recv_rep(s, &status, msg, sizeof(msg)), 0);
	cr_assert_eq(status, EF_S_BAD_REQUEST);
	cr_assert_eq(echoes, 2, "the admit hook let OP_SHUT through");
	nng_close(s);
	srv_stop(srv, NULL);
}

Test(server, oversized_request_never_reaches_a_handler)
{
	nng_socket big, s;
	char msg[256];
	int status;

	start(2, 0, 4096);
	big = dial();
	nng_socket_set_ms(big, NNG_OPT_RECVTIMEO, 500);
	cr_assert_eq(send_req(big, EF_PROTO_VERSION, OP_ECHO, 8192), 0);
	cr_assert_eq(recv_rep(big, &status, msg, sizeof(msg)), NNG_ETIMEDOUT);
	cr_assert_eq(echoes, 0);
	/* just under the bound is served, and others go on being served */
	s = dial();
	cr_assert_eq(send_req(s, EF_PROTO_VERSION, OP_ECHO, 3000), 0);
	cr_assert_eq(recv_rep(s, &status, msg, sizeof(msg)), 0);
	cr_assert_eq(status, EF_S_OK);
	call(s, OP_ECHO, EF_S_OK, "echo");
	nng_close(s);
	nng_close(big);
	srv_stop(srv, NULL);
}

static void *
answer_later(void *arg)
{
	struct srv_req *r;

	(void)arg;
	pthread_mutex_lock(&mu);
	while (later == NULL)
		pthread_cond_wait(&cv, &mu);
	r = later;
	later = NULL;
	pthread_mutex_unlock(&mu);
	nng_msleep(200);
	ipc_reply_begin(srv_out(r), EF_S_OK, "later");
	ipc_nil(srv_out(r));
	srv_reply(r);
	return NULL;
}

Test(server, deferred_reply_from_another_thread)
{
	nng_socket s, t;
	nng_ctx c;
	nng_aio *aio;
	nng_msg *m;
	pthread_t thr;
	char msg[256];
	int status;

	/* no pool: a handler that blocked would hold an nng thread; a
	 * deferred request holds only its context */
	start(2, 0, 0);
	s = dial();
	t = dial();
	cr_assert_eq(nng_ctx_open(&c, s), 0);
	cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
	{
		struct ipc_out o;

		ipc_out_init(&o);
		ipc_request_begin(&o, OP_LATER, 7);
		ipc_nil(&o);
		cr_assert_eq(nng_msg_alloc(&m, 0), 0);
		cr_assert_eq(nng_msg_append(m, o.buf, o.len), 0);
		ipc_out_free(&o);
	}
	nng_aio_set_msg(aio, m);
	nng_ctx_send(c, aio);
	nng_aio_wait(aio);
	cr_assert_eq(nng_aio_result(aio), 0);
	pthread_mutex_lock(&mu);
	while (later_taken == 0)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	/* held by the "writer", yet the server answers another client */
	call(t, OP_ECHO, EF_S_OK, "echo");
	cr_assert_eq(pthread_create(&thr, NULL, answer_later, NULL), 0);
	nng_aio_set_timeout(aio, 5000);
	nng_ctx_recv(c, aio);
	nng_aio_wait(aio);
	cr_assert_eq(nng_aio_result(aio), 0);
	m = nng_aio_get_msg(aio);
	{
		struct ipc_in in;
		const char *why = "";

		memset(&in, 0, sizeof(in));
		cr_assert_eq(ipc_reply_open(&in, nng_msg_body(m),
		                 nng_msg_len(m), &why),
		    0);
		status = in.status;
		snprintf(msg, sizeof(msg), "%.*s", (int)in.message.len,
		    in.message.ptr);
		ipc_in_close(&in);
	}
	nng_msg_free(m);
	cr_assert_eq(status, EF_S_OK);
	cr_assert_str_eq(msg, "later");
	pthread_join(thr, NULL);
	nng_aio_free(aio);
	nng_close(s);
	nng_close(t);
	srv_stop(srv, NULL);
}

struct client {
	int op;
	int rv;
	int status;
	char msg[256];
};

static void *
client_main(void *arg)
{
	struct client *cl = arg;
	nng_socket s = dial();

	cl->rv = send_req(s, EF_PROTO_VERSION, cl->op, 0);
	if (cl->rv == 0)
		cl->rv = recv_rep(s, &cl->status, cl->msg, sizeof(cl->msg));
	nng_close(s);
	return NULL;
}

static void
wait_count(int *n, int want)
{
	pthread_mutex_lock(&mu);
	while (*n < want)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

/*
 * srv_stop with a blocking handler running (on the pool) and a deferred
 * request held: both are answered before it returns, and a request
 * arriving meanwhile is refused with UNAVAILABLE.
 */
static void *
stop_main(void *arg)
{
	(void)arg;
	srv_stop(srv, NULL);
	return NULL;
}

Test(server, stop_answers_requests_in_flight)
{
	struct client slow = { .op = OP_SLOW }, held = { .op = OP_LATER },
	              late = { .op = OP_ECHO };
	pthread_t t1, t2, t3, tr, ts;

	start(4, 2, 0);
	cr_assert_eq(pthread_create(&t2, NULL, client_main, &held), 0);
	wait_count(&later_taken, 1);
	cr_assert_eq(pthread_create(&t1, NULL, client_main, &slow), 0);
	wait_count(&slow_started, 1);
	cr_assert_eq(pthread_create(&tr, NULL, answer_later, NULL), 0);
	cr_assert_eq(pthread_create(&ts, NULL, stop_main, NULL), 0);
	/* while the drain waits for the slow handler (a second), a new
	 * request is refused; past the drain it goes unanswered */
	nng_msleep(50);
	cr_assert_eq(pthread_create(&t3, NULL, client_main, &late), 0);
	pthread_join(ts, NULL);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	pthread_join(tr, NULL);
	cr_assert_eq(slow.rv, 0, "slow: %s", nng_strerror(slow.rv));
	cr_assert_eq(slow.status, EF_S_OK);
	cr_assert_str_eq(slow.msg, "slow");
	cr_assert_eq(held.rv, 0, "held: %s", nng_strerror(held.rv));
	cr_assert_eq(held.status, EF_S_OK);
	cr_assert_str_eq(held.msg, "later");
	pthread_join(t3, NULL);
	if (late.rv == 0) {
		cr_assert_eq(late.status, EF_S_UNAVAILABLE, "%s", late.msg);
		cr_assert(strstr(late.msg, "test-server is shutting down"));
	}
	cr_assert_eq(echoes, 0, "a request ran after stopping began");
}
