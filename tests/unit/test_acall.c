/* SPDX-License-Identifier: MIT */
/*
 * test_acall.c - unit tests of libcommon/acall.c, the asynchronous round
 * trip eventfold-gatewayd makes every call to stored and runnerd with:
 * against a real nng rep socket in this process (inproc transport), the
 * reply comes back opened, and each failure comes as one errno with the
 * wire status and message every caller passes on.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "acall.h"
#include "guard.h"
#include "ipc.h"

#define URL "inproc://test_acall"

/* What done saw, handed to the test thread. */
struct seen {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ended;
	int err;
	int status;
	char message[128];
	int woken;
};

static struct seen seen = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

static void
done(void *arg, int err, struct client_reply *rep)
{
	struct seen *s = arg;

	pthread_mutex_lock(&s->mu);
	s->err = err;
	s->status = rep->in.status;
	snprintf(s->message, sizeof(s->message), "%.*s",
	    (int)rep->in.message.len, rep->in.message.ptr);
	s->ended++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void
woken(void *arg)
{
	struct seen *s = arg;

	pthread_mutex_lock(&s->mu);
	s->woken++;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Waits until *counter reaches 1 (no timed assertion: meson's timeout). */
static void
wait_for(int *counter)
{
	pthread_mutex_lock(&seen.mu);
	while (*counter == 0)
		pthread_cond_wait(&seen.cv, &seen.mu);
	pthread_mutex_unlock(&seen.mu);
}

static nng_socket req, rep;
static struct acall ac;
static struct ipc_out out;

static void
setup(void)
{
	memset(&seen.ended, 0, sizeof(seen) - offsetof(struct seen, ended));
	cr_assert_eq(nng_req0_open(&req), 0);
	nng_socket_set_ms(req, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	cr_assert_eq(nng_rep0_open(&rep), 0);
	cr_assert_eq(nng_listen(rep, URL, NULL, 0), 0);
	cr_assert_eq(nng_dial(req, URL, NULL, 0), 0);
	cr_assert_eq(acall_init(&ac, req, "test-peer", done, &seen), 0);
	ipc_out_init(&out);
	ipc_request_begin(&out, EF_OP_STATUS, 42);
	ipc_nil(&out);
}

static void
teardown(void)
{
	acall_fini(&ac);
	ipc_out_free(&out);
	nng_close(req);
	nng_close(rep);
}

/* The server side: takes one request and answers it with (buf, len). */
static void
answer(const void *buf, size_t len)
{
	nng_msg *m;

	cr_assert_eq(nng_recvmsg(rep, &m, 0), 0);
	nng_msg_clear(m);
	cr_assert_eq(nng_msg_append(m, buf, len), 0);
	cr_assert_eq(nng_sendmsg(rep, m, 0), 0);
}

Test(acall, reply_comes_opened, .init = setup, .fini = teardown)
{
	struct ipc_out r;

	ipc_out_init(&r);
	ipc_reply_begin(&r, EF_S_NOT_FOUND, "no such thing");
	ipc_nil(&r);
	acall_start(&ac, out.buf, out.len, 42, guard_now_ms() + 60000);
	answer(r.buf, r.len);
	wait_for(&seen.ended);
	cr_assert_eq(seen.err, 0);
	cr_assert_eq(seen.status, EF_S_NOT_FOUND);
	cr_assert_str_eq(seen.message, "no such thing");
	ipc_out_free(&r);
}

Test(acall, malformed_reply, .init = setup, .fini = teardown)
{
	acall_start(&ac, out.buf, out.len, 42, guard_now_ms() + 60000);
	answer("\xc1junk", 5);
	wait_for(&seen.ended);
	cr_assert_eq(seen.err, -EBADMSG);
	cr_assert_eq(seen.status, EF_S_INTERNAL);
	cr_assert_str_eq(seen.message, "malformed reply from test-peer");
}

Test(acall, no_answer_by_the_deadline, .init = setup, .fini = teardown)
{
	/* the request is taken and never answered */
	acall_start(&ac, out.buf, out.len, 42, guard_now_ms() + 50);
	wait_for(&seen.ended);
	cr_assert_eq(seen.err, -ETIMEDOUT);
	cr_assert_eq(seen.status, EF_S_UNAVAILABLE);
	cr_assert_str_eq(seen.message, "test-peer did not answer in time");
}

Test(acall, sweep_cancels_a_late_trip, .init = setup, .fini = teardown)
{
	uint64_t dl = guard_now_ms() + 60000;

	nng_msg *m;

	acall_start(&ac, out.buf, out.len, 42, dl);
	cr_assert_eq(nng_recvmsg(rep, &m, 0), 0); /* taken, never answered */
	nng_msg_free(m);
	cr_assert_eq(acall_sweep(&ac, dl, 250), 0);
	cr_assert_eq(acall_sweep(&ac, dl + 300, 250), 300);
	/* a cancel between the send's end and the receive's start is
	 * lost (the timer of the caller sweeps again, as here) */
	pthread_mutex_lock(&seen.mu);
	while (seen.ended == 0) {
		pthread_mutex_unlock(&seen.mu);
		nng_msleep(10);
		acall_sweep(&ac, dl + 300, 250);
		pthread_mutex_lock(&seen.mu);
	}
	pthread_mutex_unlock(&seen.mu);
	cr_assert_eq(seen.err, -ECANCELED);
	cr_assert_eq(seen.status, EF_S_UNAVAILABLE);
	cr_assert_eq(acall_sweep(&ac, dl + 300, 250), 0, "idle: no trip");
}

Test(acall, sleep_wakes, .init = setup, .fini = teardown)
{
	acall_sleep(&ac, 1, woken);
	wait_for(&seen.woken);
	cr_assert_eq(seen.ended, 0, "a sleep is not a trip");
}
