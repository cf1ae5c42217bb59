/* SPDX-License-Identifier: MIT */
/*
 * client.c - synchronous nng req client for eventfold-stored and
 * runnerd (see client.h). Each call runs on its own nng context so one
 * client can serve many threads.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include "log.h"

const char *
client_url(char *buf, size_t len, const char *runtime_dir, const char *name,
    const char *url)
{
	if (url != NULL && *url != '\0')
		snprintf(buf, len, "%s", url);
	else
		snprintf(buf, len, "ipc://%s/%s", runtime_dir, name);
	return buf;
}

int
client_open(struct ef_client *c, const char *url, int timeout_ms)
{
	int rv;

	memset(c, 0, sizeof(*c));
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	if ((rv = nng_req0_open(&c->sock)) != 0)
		return -EIO;
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, IPC_MAX_MSG);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 200);
	/* No resends inside nng: with them, closing the socket can hang
	 * (nng #1813). A broken connection fails the call; callers retry. */
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	    NNG_DURATION_INFINITE);
	if ((rv = nng_dial(c->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		nng_close(c->sock);
		return rv == NNG_EADDRINVAL ? -EINVAL : -EIO;
	}
	c->next_id = 1;
	return 0;
}

void
client_close(struct ef_client *c)
{
	if (c == NULL)
		return;
	nng_close(c->sock);
}

uint64_t
client_request_id(struct ef_client *c)
{
	return __atomic_fetch_add(&c->next_id, 1, __ATOMIC_RELAXED);
}

int
nngx_send(nng_ctx ctx, nng_aio *aio, nng_msg *m, int timeout_ms)
{
	nng_aio_set_timeout(aio, timeout_ms);
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	return nng_aio_result(aio);
}

int
nngx_recv(nng_ctx ctx, nng_aio *aio, nng_msg **mp, int timeout_ms)
{
	int rv;

	nng_aio_set_timeout(aio, timeout_ms);
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) == 0)
		*mp = nng_aio_get_msg(aio);
	return rv;
}

static int
client_fail(struct client_reply *rep, int status, const char *why)
{
	rep->in.status = status;
	rep->in.message.ptr = why;
	rep->in.message.len = (uint32_t)strlen(why);
	rep->in.body = NULL;
	return status;
}


/*
 * One request, one reply. A request whose connection breaks before the
 * reply gets EF_S_UNAVAILABLE at once: callers retry (every request is
 * idempotent). Not retried here: closing a socket while another thread
 * is inside a call on it can deadlock nng 1.5 (nng #1813), and a call
 * that kept retrying against a dead daemon would hold callers there.
 */
int
client_call(struct ef_client *c, const struct ipc_out *req,
    struct client_reply *rep)
{
	nng_ctx ctx;
	nng_aio *aio = NULL;
	nng_msg *m = NULL;
	const char *why = NULL;
	int rv;

	memset(rep, 0, sizeof(*rep));
	if (nng_aio_alloc(&aio, NULL, NULL) != 0)
		return client_fail(rep, EF_S_INTERNAL, "out of memory");
	if (nng_ctx_open(&ctx, c->sock) != 0) {
		nng_aio_free(aio);
		return client_fail(rep, EF_S_UNAVAILABLE, "cannot open context");
	}
	if (nng_msg_alloc(&m, 0) != 0 ||
	    nng_msg_append(m, req->buf, req->len) != 0) {
		nng_msg_free(m);
		nng_ctx_close(ctx);
		nng_aio_free(aio);
		return client_fail(rep, EF_S_INTERNAL, "out of memory");
	}
	if ((rv = nngx_send(ctx, aio, m, c->timeout_ms)) != 0) {
		nng_msg_free(m);
		nng_ctx_close(ctx);
		nng_aio_free(aio);
		return client_fail(rep, EF_S_UNAVAILABLE,
		    rv == NNG_ETIMEDOUT ? "daemon did not answer in time" :
		    "daemon unreachable");
	}
	rv = nngx_recv(ctx, aio, &rep->msg, c->timeout_ms);
	nng_ctx_close(ctx);
	nng_aio_free(aio);
	if (rv != 0)
		return client_fail(rep, EF_S_UNAVAILABLE,
		    rv == NNG_ETIMEDOUT ? "no reply in time (daemon down?)" :
		    "daemon unreachable (connection lost)");
	rv = ipc_reply_open(&rep->in, nng_msg_body(rep->msg),
	    nng_msg_len(rep->msg), &why);
	if (rv != 0) {
		ipc_in_close(&rep->in);
		return client_fail(rep, EF_S_INTERNAL, "malformed reply");
	}
	return rep->in.status;
}

void
client_reply_free(struct client_reply *rep)
{
	if (rep == NULL)
		return;
	ipc_in_close(&rep->in);
	if (rep->msg != NULL)
		nng_msg_free(rep->msg);
	rep->msg = NULL;
}

int
client_append(struct ef_client *c, const struct ipc_append_req *r,
    struct client_reply *rep)
{
	struct ipc_out o;
	int st;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_APPEND, client_request_id(c));
	ipc_append_req_encode(&o, r);
	st = client_call(c, &o, rep);
	ipc_out_free(&o);
	return st;
}

static int
read_reply(struct client_reply *rep, int st, struct ipc_read_rep *rr)
{
	const char *why;

	memset(rr, 0, sizeof(*rr));
	if ((st == EF_S_OK || st == EF_S_STREAM_NOT_FOUND) &&
	    rep->in.body != NULL &&
	    ipc_read_rep_decode(rep->in.body, rr, &why) != 0)
		return client_fail(rep, EF_S_INTERNAL, "malformed read reply");
	return st;
}

int
client_read_all(struct ef_client *c, uint64_t from, uint64_t max,
    int direction, struct client_reply *rep, struct ipc_read_rep *rr)
{
	struct ipc_read_all_req r = { from, max, (uint8_t)direction };
	struct ipc_out o;
	int st;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_READ_ALL, client_request_id(c));
	ipc_read_all_req_encode(&o, &r);
	st = client_call(c, &o, rep);
	ipc_out_free(&o);
	return read_reply(rep, st, rr);
}

int
client_read_stream(struct ef_client *c, const char *stream_id, uint64_t from,
    uint64_t max, int direction, struct client_reply *rep,
    struct ipc_read_rep *rr)
{
	struct ipc_read_stream_req r;
	struct ipc_out o;
	int st;

	r.stream_id.ptr = stream_id;
	r.stream_id.len = (uint32_t)strlen(stream_id);
	r.from = from;
	r.max_count = max;
	r.direction = (uint8_t)direction;
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_READ_STREAM, client_request_id(c));
	ipc_read_stream_req_encode(&o, &r);
	st = client_call(c, &o, rep);
	ipc_out_free(&o);
	return read_reply(rep, st, rr);
}

int
client_status(struct ef_client *c, struct client_reply *rep,
    struct ipc_status_rep *st)
{
	struct ipc_out o;
	const char *why;
	int s;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_STATUS, client_request_id(c));
	ipc_nil(&o);
	s = client_call(c, &o, rep);
	ipc_out_free(&o);
	if (s == EF_S_OK && ipc_status_rep_decode(rep->in.body, st, &why) != 0)
		return client_fail(rep, EF_S_INTERNAL, "malformed status reply");
	return s;
}
