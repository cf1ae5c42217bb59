/* SPDX-License-Identifier: MIT */
/*
 * server.c - the gRPC C core server of eventfold-gatewayd: listeners
 * (TCP, unix:, TLS), method registration, completion-queue threads and
 * the call slots.
 *
 * Every registered method has `slots` outstanding request_call slots on
 * each completion queue; a generic slot per queue answers any other
 * method UNIMPLEMENTED (without it such a call would hang until the
 * client's deadline). A unary slot keeps its call until the reply is
 * sent and owns one nng context to eventfold-stored, so the slots are
 * the gateway's pool of store contexts and nothing on the unary path
 * takes a shared lock. eventfold.Runner slots own a context on
 * runnerd's socket (runner.sock, or runner_url) instead. Streaming
 * handlers take the call over and the slot re-arms at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <grpc/byte_buffer_reader.h>

#include "clock.h"
#include "daemon.h"
#include "gatewayd.h"
#include "grow.h"
#include "log.h"
#include "trace.h"
#include "utf8.h"

#include <nng/protocol/reqrep0/req.h>

enum call_state {
	CALL_IDLE,
	CALL_REQUESTED,
	CALL_ACTIVE,
	CALL_FINISHING,
	CALL_DEAD,
};

/*
 * Round trips to stored and runnerd are acall.h's: they end by their
 * deadline, a request whose connection breaks (a daemon restart, a
 * listener re-created after nng 1.5's handshake bug) goes again on the
 * next connection, and server_sweep() cancels a trip nng has not ended
 * PEER_GRACE_MS after its deadline. A peer without a connection for
 * PEER_DOWN_MS fails calls at once instead of queueing them. Appends go
 * through a pipeline (libcommon/pipeline.h) that coalesces them into
 * APPEND_MANY messages under the same rules.
 */
#define PEER_GRACE_MS 250
#define PEER_DOWN_MS  2000
#define CQ_TURN_MS    1000 /* a completion-queue thread wakes this often */

static struct method methods[] = {
	{ "/eventfold.EventStore/Append", KIND_UNARY, true, PEER_STORE,
	    rpc_append, NULL },
	{ "/eventfold.EventStore/ReadStream", KIND_UNARY, true, PEER_STORE,
	    rpc_read_stream, NULL },
	{ "/eventfold.EventStore/ReadAll", KIND_UNARY, true, PEER_STORE,
	    rpc_read_all, NULL },
	{ "/eventfold.EventStore/ListStreams", KIND_UNARY, true, PEER_STORE,
	    rpc_list_streams, NULL },
	{ "/eventfold.EventStore/SubscribeAll", KIND_STREAM, true, PEER_NONE,
	    subscribe_all, NULL },
	{ "/eventfold.EventStore/SubscribeStream", KIND_STREAM, true,
	    PEER_NONE, subscribe_stream, NULL },
	{ "/eventfold.Runner/Execute", KIND_UNARY, true, PEER_RUNNER,
	    runner_execute, NULL },
	{ "/eventfold.Runner/GetState", KIND_UNARY, true, PEER_RUNNER,
	    runner_get_state, NULL },
	{ "/eventfold.Runner/Query", KIND_UNARY, true, PEER_RUNNER,
	    runner_query, NULL },
	{ "/eventfold.Runner/ListProjections", KIND_UNARY, true, PEER_RUNNER,
	    runner_list_projections, NULL },
	{ "/grpc.health.v1.Health/Check", KIND_UNARY, false, PEER_NONE,
	    health_check, NULL },
	{ "/grpc.health.v1.Health/Watch", KIND_STREAM, false, PEER_NONE,
	    health_watch, NULL },
};
#define NMETHODS      (sizeof(methods) / sizeof(methods[0]))
#define STREAM_SLOTS  4 /* streaming slots re-arm at once: few suffice */
#define GENERIC_SLOTS 2

struct shutdown_wait {
	struct gw_tag tag;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

static struct shutdown_wait sdw = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

static void call_event(struct gw_tag *t, int ok);
static void call_arm(struct call *c);

uint64_t
gw_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Up: connected, or disconnected for less than PEER_DOWN_MS (a restart
 * or a re-created listener: calls wait for the new connection).
 */
static bool
peer_up(const struct ef_dialer *ed, uint64_t *down_since)
{
	uint64_t now, since;

	if (dialer_pipes(ed) > 0) {
		__atomic_store_n(down_since, 0, __ATOMIC_RELAXED);
		return true;
	}
	now = guard_now_ms();
	since = __atomic_load_n(down_since, __ATOMIC_RELAXED);
	if (since == 0) {
		__atomic_store_n(down_since, now, __ATOMIC_RELAXED);
		since = now;
	}
	return now - since < PEER_DOWN_MS;
}

bool
store_up(struct gw *gw)
{
	return peer_up(&gw->store_dialer, &gw->store_down_ms);
}

bool
runner_up(struct gw *gw)
{
	return peer_up(&gw->runner_dialer, &gw->runner_down_ms);
}

void
server_sweep(struct gw *gw)
{
	uint64_t now = guard_now_ms(), late;
	size_t i;

	for (i = 0; i < gw->ncalls; i++) {
		struct call *c = &gw->calls[i];

		if ((late = acall_sweep(&c->ac, now, PEER_GRACE_MS)) != 0)
			log_warnx(
			    "%s: a call outlived its deadline by %" PRIu64
			    " ms; cancelled",
			    c->m != NULL ? c->m->path : "?", late);
	}
	pipeline_sweep(&gw->appends);
}

uint64_t
call_ms_left(const struct call *c)
{
	gpr_timespec now, dl;
	int64_t ms;

	dl = gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC);
	if (gpr_time_cmp(dl, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0 ||
	    dl.tv_sec > INT64_MAX / 2000)
		return UINT64_MAX;
	now = gpr_now(GPR_CLOCK_MONOTONIC);
	if (gpr_time_cmp(dl, now) <= 0)
		return 0;
	ms = gpr_time_to_millis(gpr_time_sub(dl, now));
	return ms > 0 ? (uint64_t)ms : 0;
}

grpc_byte_buffer *
buffer_from(const void *p, size_t len)
{
	grpc_slice s = grpc_slice_from_copied_buffer(p, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);

	grpc_slice_unref(s);
	return bb;
}

uint8_t *
buffer_read(grpc_byte_buffer *bb, size_t *len)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;
	uint8_t *p;

	if (!grpc_byte_buffer_reader_init(&r, bb))
		return NULL;
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	*len = GRPC_SLICE_LENGTH(s);
	if ((p = malloc(*len ? *len : 1)) != NULL)
		memcpy(p, GRPC_SLICE_START_PTR(s), *len);
	grpc_slice_unref(s);
	return p;
}

void
pbuf_reserve(struct pbuf *pb, size_t more)
{
	if (pb->len + more > pb->cap)
		pb->buf = mem_grow(pb->buf, &pb->cap, pb->len + more, 4096);
}

/* Appends v as a protobuf varint; room was reserved. */
static void
pbuf_varint(struct pbuf *pb, uint64_t v)
{
	do {
		pb->buf[pb->len++] = (uint8_t)(v & 0x7f) |
		    (v > 0x7f ? 0x80 : 0);
		v >>= 7;
	} while (v != 0);
}

void
pbuf_field(struct pbuf *pb, uint32_t field, size_t len)
{
	pbuf_reserve(pb, 20);
	pbuf_varint(pb, (uint64_t)field << 3 | 2);
	pbuf_varint(pb, len);
}

void
pbuf_pack(struct pbuf *pb, const ProtobufCMessage *m)
{
	pb->len = 0;
	pbuf_reserve(pb, protobuf_c_message_get_packed_size(m));
	pb->len = protobuf_c_message_pack(m, pb->buf);
}

void
pbuf_pack_field(struct pbuf *pb, uint32_t field, const ProtobufCMessage *m)
{
	size_t sz = protobuf_c_message_get_packed_size(m);

	pbuf_field(pb, field, sz);
	pbuf_reserve(pb, sz);
	pb->len += protobuf_c_message_pack(m, pb->buf + pb->len);
}

void
pbuf_trim(struct pbuf *pb, size_t keep)
{
	pb->len = 0;
	if (pb->cap > keep) {
		free(pb->buf);
		pb->buf = NULL;
		pb->cap = 0;
	}
}

/* Releases what one call used and re-arms the slot. */
static void
call_reset(struct call *c)
{
	if (c->call != NULL)
		grpc_call_unref(c->call);
	c->call = NULL;
	if (c->payload != NULL)
		grpc_byte_buffer_destroy(c->payload);
	c->payload = NULL;
	if (c->resp != NULL)
		grpc_byte_buffer_destroy(c->resp);
	c->resp = NULL;
	grpc_slice_unref(c->details_slice);
	c->details_slice = grpc_empty_slice();
	grpc_metadata_array_destroy(&c->md);
	grpc_metadata_array_init(&c->md);
	if (c->m == NULL) {
		grpc_call_details_destroy(&c->details);
		grpc_call_details_init(&c->details);
	}
	pbuf_trim(&c->out, 256u << 10);
	if (c->req.cap > (256u << 10)) {
		ipc_out_free(&c->req);
		ipc_out_init(&c->req);
	}
	call_arm(c);
}

/*
 * A call ending in an error, with its request id (trace.h): a warning,
 * or a debug line for what a correct client meets in normal use
 * (cancelled, not found, a failed precondition).
 */
static void
call_log_error(const struct call *c, int code, const char *msg)
{
#define CALL_LINE                                                             \
	"call " TRACE_FMT " %s: gRPC status %d: %s", c->rid,                  \
	    c->m != NULL ? c->m->path : "?", code, msg ? msg : ""
	if (code == GW_CANCELLED || code == GW_NOT_FOUND ||
	    code == GW_FAILED_PRECONDITION)
		log_debug(CALL_LINE);
	else
		log_warnx(CALL_LINE);
#undef CALL_LINE
}

void
call_finish(struct call *c, int code, const char *msg)
{
	grpc_op ops[4], *op = ops;
	grpc_call_error err;

	if (code != GW_OK)
		call_log_error(c, code, msg);
	memset(ops, 0, sizeof(ops));
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op++;
	if (code == GW_OK && c->resp != NULL) {
		op->op = GRPC_OP_SEND_MESSAGE;
		op->data.send_message.send_message = c->resp;
		op++;
	}
	grpc_slice_unref(c->details_slice);
	c->details_slice = grpc_slice_from_copied_string(msg ? msg : "");
	op->op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op->data.send_status_from_server.status = (grpc_status_code)code;
	op->data.send_status_from_server.status_details = &c->details_slice;
	op++;
	op->op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op->data.recv_close_on_server.cancelled = &c->cancelled;
	op++;
	c->state = CALL_FINISHING;
	err = grpc_call_start_batch(c->call, ops, (size_t)(op - ops), &c->tag,
	    NULL);
	if (err != GRPC_CALL_OK) {
		log_warnx("grpc: cannot finish call: error %d", err);
		call_reset(c);
	}
}

void
call_errorf(struct call *c, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	call_finish(c, code, msg);
}

int
call_reply_body(struct call *c, const struct client_reply *rep, bool decoded,
    const char *what)
{
	char msg[IPC_MAX_STRLEN + 1];
	uint32_t n = rep->in.message.len;

	if (decoded)
		return 0;
	if (rep->in.status == EF_S_OK) {
		call_errorf(c, GW_INTERNAL, "malformed %s", what);
		return -EPROTO;
	}
	if (n > IPC_MAX_STRLEN)
		n = IPC_MAX_STRLEN;
	memcpy(msg, rep->in.message.ptr, n);
	msg[n] = '\0';
	call_finish(c, ipc_status_grpc(rep->in.status), msg);
	return -EIO;
}

void *
call_unpack(struct call *c, const ProtobufCMessageDescriptor *d,
    const uint8_t *buf, size_t len)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);

	if (m == NULL)
		call_errorf(c, GW_INVALID_ARGUMENT, "malformed %s",
		    d->short_name);
	return m;
}

int
call_stream_id(struct call *c, const char *s, uint8_t sid[UUID_LEN])
{
	if (utf8_valid(s, strlen(s)) && uuid_parse(s, strlen(s), sid) == 0)
		return 0;
	call_errorf(c, GW_INVALID_ARGUMENT,
	    "invalid stream_id: "
	    "malformed uuid \"%.64s\"",
	    s);
	return -EINVAL;
}

struct ipc_out *
call_request(struct call *c, int op)
{
	ipc_out_reset(&c->req);
	ipc_request_begin(&c->req, op, c->rid);
	return &c->req;
}

void
call_reply(struct call *c)
{
	c->resp = buffer_from(c->out.buf, c->out.len);
	call_finish(c, GW_OK, "");
}

void
call_reply_msg(struct call *c, const ProtobufCMessage *m)
{
	pbuf_pack(&c->out, m);
	call_reply(c);
}

static void
store_fail(struct call *c, int status, const char *why)
{
	struct client_reply rep;

	memset(&rep, 0, sizeof(rep));
	rep.in.status = status;
	rep.in.message.ptr = why;
	rep.in.message.len = (uint32_t)strlen(why);
	c->store_done(c, &rep);
}

static const char *
peer_name(const struct call *c)
{
	if (c->peer == PEER_RUNNER)
		return "eventfold-runnerd";
	return "eventfold-stored";
}

/* The end of a round trip (acall.h): the reply, or the failure as one. */
static void
peer_done(void *arg, int err, struct client_reply *rep)
{
	struct call *c = arg;

	(void)err; /* rep says it: EF_S_UNAVAILABLE or EF_S_INTERNAL */
	c->store_done(c, rep);
}

/* Pipeline callback: one Append's own result, as a reply to store_done. */
static void
append_result(struct pipeline_req *rq, const struct ipc_result *res)
{
	struct call *c = (struct call *)((char *)rq -
	    offsetof(struct call, preq));
	struct client_reply rep;

	if (res->status != EF_S_OK) {
		/* links the call's id to the id stored logs it under */
#define APPEND_LINE                                                           \
	"call " TRACE_FMT ": append went as request " TRACE_FMT               \
	" entry %" PRIu32 ": %s: %.*s",                                       \
	    c->rid, rq->rid, rq->entry, ipc_status_name(res->status),         \
	    (int)res->message.len, res->message.ptr
		if (trace_is_outcome(res->status))
			log_debug(APPEND_LINE);
		else
			log_warnx(APPEND_LINE);
#undef APPEND_LINE
	}
	memset(&rep, 0, sizeof(rep));
	rep.in.status = res->status;
	rep.in.message = res->message;
	rep.in.body = res->body;
	c->store_done(c, &rep); /* nothing to free: rep owns nothing */
}

void
call_store_append(struct call *c,
    void (*done)(struct call *, struct client_reply *))
{
	c->store_done = done;
	if (!store_up(c->gw)) {
		store_fail(c, EF_S_UNAVAILABLE,
		    "eventfold-stored is "
		    "unreachable");
		return;
	}
	c->preq.body = c->req.buf;
	c->preq.len = c->req.len;
	c->preq.done = append_result;
	pipeline_submit(&c->gw->appends, &c->preq);
}

void
call_store(struct call *c, void (*done)(struct call *, struct client_reply *))
{
	call_peer(c, done, c->gw->conf.store_timeout_ms);
}

void
call_peer(struct call *c, void (*done)(struct call *, struct client_reply *),
    uint64_t timeout_ms)
{
	char msg[128];

	c->store_done = done;
	if (c->peer == PEER_NONE ||
	    !(c->peer == PEER_RUNNER ? runner_up(c->gw) : store_up(c->gw))) {
		snprintf(msg, sizeof(msg), "%s is unreachable", peer_name(c));
		store_fail(c, EF_S_UNAVAILABLE, msg);
		return;
	}
	if (timeout_ms > INT32_MAX)
		timeout_ms = INT32_MAX;
	acall_start(&c->ac, c->req.buf, c->req.len, c->rid,
	    guard_now_ms() + timeout_ms);
}

static void
call_arm(struct call *c)
{
	struct gw *gw = c->gw;
	grpc_call_error err;

	if (__atomic_load_n(&gw->stopping, __ATOMIC_ACQUIRE)) {
		c->state = CALL_DEAD;
		return;
	}
	c->state = CALL_REQUESTED;
	c->call = NULL;
	c->payload = NULL;
	c->cancelled = 0;
	if (c->m == NULL)
		err = grpc_server_request_call(gw->server, &c->call,
		    &c->details, &c->md, c->cq, c->cq, &c->tag);
	else
		err = grpc_server_request_registered_call(gw->server,
		    c->m->handle, &c->call, &c->deadline, &c->md, &c->payload,
		    c->cq, c->cq, &c->tag);
	if (err != GRPC_CALL_OK) {
		log_debug("grpc: request_call: error %d", err);
		c->state = CALL_DEAD;
	}
}

grpc_call *
call_detach(struct call *c)
{
	grpc_call *gc = c->call;

	c->call = NULL;
	call_reset(c);
	return gc;
}

static void
call_begin(struct call *c)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;
	char why[256];

	c->state = CALL_ACTIVE;
	if (c->m == NULL) {
		char path[256];
		size_t n = GRPC_SLICE_LENGTH(c->details.method);

		if (n >= sizeof(path))
			n = sizeof(path) - 1;
		memcpy(path, GRPC_SLICE_START_PTR(c->details.method), n);
		path[n] = '\0';
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)path[i] < 0x20 ||
			    (unsigned char)path[i] >= 0x7f)
				path[i] = '?';
		call_errorf(c, GW_UNIMPLEMENTED, "unknown method %s", path);
		return;
	}
	if (c->m->auth && c->gw->jwt_secret != NULL &&
	    auth_check(c->gw, &c->md, why, sizeof(why)) != 0) {
		call_finish(c, GW_UNAUTHENTICATED, why);
		return;
	}
	if (c->payload == NULL) {
		call_finish(c, GW_INVALID_ARGUMENT, "missing request message");
		return;
	}
	if (!grpc_byte_buffer_reader_init(&r, c->payload)) {
		call_finish(c, GW_INVALID_ARGUMENT,
		    "cannot read request "
		    "message");
		return;
	}
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	if (pbcheck_nul(c->m->path, GRPC_SLICE_START_PTR(s),
	        GRPC_SLICE_LENGTH(s), why, sizeof(why))) {
		grpc_slice_unref(s);
		call_finish(c, GW_INVALID_ARGUMENT, why);
		return;
	}
	c->t0 = gw_mono_ns();
	c->rid = trace_id_new();
	c->m->begin(c, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
	grpc_slice_unref(s);
}

static void
call_event(struct gw_tag *t, int ok)
{
	struct call *c = (struct call *)t;

	switch (c->state) {
	case CALL_REQUESTED:
		if (!ok) {
			/* the server is shutting down */
			c->state = CALL_DEAD;
			return;
		}
		call_begin(c);
		break;
	case CALL_FINISHING:
		call_reset(c);
		break;
	default:
		log_warnx("grpc: completion for a slot in state %d", c->state);
		break;
	}
}

/*
 * A completion-queue thread. It wakes at least every turn_ms and notes
 * when it came round: the watchdog is fed only while every such loop
 * turns (server_alive).
 */
static void *
cq_main(void *arg)
{
	struct cq_loop *l = arg;
	int64_t turn_ms = (int64_t)l->turn_ms;
	grpc_event ev;

	for (;;) {
		__atomic_store_n(&l->beat_ms, gw_mono_ns() / 1000000,
		    __ATOMIC_RELAXED);
		ev = grpc_completion_queue_next(l->cq,
		    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
		        gpr_time_from_millis(turn_ms, GPR_TIMESPAN)),
		    NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE && ev.tag != NULL)
			((struct gw_tag *)ev.tag)->fn(ev.tag, ev.success);
	}
	return NULL;
}

int
server_alive(struct gw *gw, uint64_t limit_ms)
{
	size_t i, n = gw->conf.threads ? gw->conf.threads : 1;
	uint64_t now = gw_mono_ns() / 1000000;

	if (gw->loops == NULL)
		return 1;
	for (i = 0; i < n; i++)
		if (!daemon_progress(1,
		        __atomic_load_n(&gw->loops[i].beat_ms,
		            __ATOMIC_RELAXED),
		        now, limit_ms))
			return 0;
	return 1;
}

/* Opens a req socket dialing url (the daemon may come later). */
static int
peer_open(nng_socket *s, const char *url, struct ef_dialer *ed, char *err,
    size_t errlen)
{
	int rc;

	if (nng_req0_open(s) != 0) {
		snprintf(err, errlen, "cannot open a req socket for %s", url);
		return -1;
	}
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, IPC_MAX_MSG);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 100);
	nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if ((rc = dialer_open(ed, *s, url)) != 0) {
		snprintf(err, errlen, "%s: %s", url, nng_strerror(rc));
		return -1;
	}
	return 0;
}

static char *
read_file(const char *path, char *err, size_t errlen)
{
	FILE *fp;
	char *buf = NULL;
	long n;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
	    n > (16l << 20) || fseek(fp, 0, SEEK_SET) != 0 ||
	    (buf = calloc(1, (size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		snprintf(err, errlen, "%s: cannot read", path);
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	return buf;
}

static grpc_server_credentials *
server_creds(struct gw *gw, char *err, size_t errlen)
{
	grpc_ssl_pem_key_cert_pair pair;
	grpc_server_credentials *cr = NULL;
	char *cert = NULL, *key = NULL, *ca = NULL;
	const struct gw_conf *cf = &gw->conf;

	if (*cf->tls_cert == '\0' && *cf->tls_key == '\0') {
		if (*cf->tls_ca != '\0') {
			snprintf(err, errlen,
			    "tls_ca needs tls_cert and "
			    "tls_key");
			return NULL;
		}
		return grpc_insecure_server_credentials_create();
	}
	if (*cf->tls_cert == '\0' || *cf->tls_key == '\0') {
		snprintf(err, errlen, "TLS needs both tls_cert and tls_key");
		return NULL;
	}
	if ((cert = read_file(cf->tls_cert, err, errlen)) == NULL ||
	    (key = read_file(cf->tls_key, err, errlen)) == NULL)
		goto fail;
	if (*cf->tls_ca != '\0' &&
	    (ca = read_file(cf->tls_ca, err, errlen)) == NULL)
		goto fail;
	pair.private_key = key;
	pair.cert_chain = cert;
	cr = grpc_ssl_server_credentials_create_ex(ca, &pair, 1,
	    ca != NULL ?
	        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY :
	        GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
	    NULL);
	if (cr == NULL)
		snprintf(err, errlen, "cannot build TLS credentials");
fail:
	free(cert);
	free(key);
	free(ca);
	return cr;
}

/* gRPC takes over a live unix: path: a lock file next to it says who
 * owns it. The descriptor stays open (and locked) until exit. */
static int
unix_lock(const char *addr, char *err, size_t errlen)
{
	char lock[4200];
	const char *path = addr + 5;
	int fd;

	if (strncmp(path, "//", 2) == 0)
		path += 2;
	if (*path == '\0' || strlen(path) > 4000) {
		snprintf(err, errlen, "%s: bad unix: address", addr);
		return -1;
	}
	snprintf(lock, sizeof(lock), "%s.lock", path);
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "%s: %s", lock, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen,
		    "%s is in use by another "
		    "eventfold-gatewayd (lock held on %s)",
		    path, lock);
		close(fd);
		return -1;
	}
	return 0;
}

static void
shutdown_done(struct gw_tag *t, int ok)
{
	(void)t;
	(void)ok;
	pthread_mutex_lock(&sdw.mu);
	sdw.done = 1;
	pthread_cond_broadcast(&sdw.cv);
	pthread_mutex_unlock(&sdw.mu);
}

static void
slot_init(struct gw *gw, struct call *c, const struct method *m,
    grpc_completion_queue *cq)
{
	c->tag.fn = call_event;
	c->gw = gw;
	c->m = m;
	c->cq = cq;
	c->details_slice = grpc_empty_slice();
	grpc_metadata_array_init(&c->md);
	grpc_call_details_init(&c->details);
	ipc_out_init(&c->req);
	c->peer = m != NULL && m->kind == KIND_UNARY ? m->peer : PEER_NONE;
	if (c->peer != PEER_NONE) {
		if (acall_init(&c->ac,
		        c->peer == PEER_RUNNER ? gw->runner : gw->store,
		        peer_name(c), peer_done, c) != 0)
			fatalx("cannot open an nng context to %s",
			    peer_name(c));
		c->ac.resend = true;
		c->ac.dialer = c->peer == PEER_RUNNER ? &gw->runner_dialer :
		                                        &gw->store_dialer;
	}
}

/*
 * The channel arguments of the server: args (4 of them) and ca are the
 * caller's.
 */
static void
server_args(const struct gw *gw, grpc_arg args[4], grpc_channel_args *ca)
{
	memset(args, 0, 4 * sizeof(*args));
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
	args[0].value.integer = 0;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[1].value.integer = (int)gw->conf.max_request_bytes;
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[2].value.integer = -1;
	/*
	 * gRPC core sets TCP_USER_TIMEOUT (20 s) on every connection it
	 * accepts unless keepalive pings are off: a client that stops
	 * reading its socket for 20 s (a paused process, a consumer busy
	 * with one long event) then has its connection aborted by the
	 * kernel while data waits in a zero window, and every subscription
	 * on it ends with UNAVAILABLE. Subscribers are never cut off here
	 * (a slow one reads what it missed from the log), so the server
	 * sends no keepalive pings, which turns that timeout off. Dead
	 * peers are still found by TCP itself and by the client's pings.
	 */
	args[3].type = GRPC_ARG_INTEGER;
	args[3].key = (char *)GRPC_ARG_KEEPALIVE_TIME_MS;
	args[3].value.integer = INT_MAX;
	ca->num_args = 4;
	ca->args = args;
}

/* One completion queue per thread (n), each waking at least every
 * quarter of the watchdog's period. */
static void
server_queues(struct gw *gw, size_t n)
{
	struct daemon_watchdog wd;
	size_t i;

	if ((gw->loops = calloc(n, sizeof(*gw->loops))) == NULL)
		fatal("calloc");
	daemon_watchdog_init(&wd);
	for (i = 0; i < n; i++) {
		/* a quarter of the watchdog's period: under half its limit */
		gw->loops[i].turn_ms = CQ_TURN_MS;
		if (wd.usec > 0 && wd.usec / 4000 < CQ_TURN_MS)
			gw->loops[i].turn_ms = wd.usec / 4000 ?
			    wd.usec / 4000 :
			    1;
		gw->loops[i].cq = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(gw->server,
		    gw->loops[i].cq, NULL);
	}
}

/* Listens on every address of conf.listen. 0, or -1 with err set. */
static int
server_listen(struct gw *gw, grpc_server_credentials *creds, char *err,
    size_t errlen)
{
	char *addrs, *addr, *save = NULL;
	int rc = -1;

	if ((addrs = strdup(gw->conf.listen)) == NULL)
		fatal("strdup");
	for (addr = strtok_r(addrs, ",", &save); addr != NULL;
	     addr = strtok_r(NULL, ",", &save)) {
		while (*addr == ' ')
			addr++;
		if (strncmp(addr, "unix:", 5) == 0 &&
		    unix_lock(addr, err, errlen) != 0)
			goto fail;
		if (grpc_server_add_http2_port(gw->server, addr, creds) == 0) {
			snprintf(err, errlen,
			    "cannot listen on %s (in use, or "
			    "not an address?)",
			    addr);
			goto fail;
		}
		log_info("listening on %s%s", addr,
		    *gw->conf.tls_cert ?
		        (*gw->conf.tls_ca ? " (mTLS)" : " (TLS)") :
		        "");
	}
	rc = 0;
fail:
	free(addrs);
	return rc;
}

/* Every call slot of every queue (n), armed, and the queues' threads. */
static void
server_slots(struct gw *gw, size_t n)
{
	size_t i, j, k, s, ns, nslots = 0;

	for (i = 0; i < NMETHODS; i++)
		nslots += methods[i].kind == KIND_UNARY ? gw->conf.slots :
		                                          STREAM_SLOTS;
	nslots += GENERIC_SLOTS;
	gw->ncalls = nslots * n;
	if ((gw->calls = calloc(gw->ncalls, sizeof(*gw->calls))) == NULL)
		fatal("calloc");
	k = 0;
	for (i = 0; i < n; i++) {
		for (j = 0; j < NMETHODS; j++) {
			ns = methods[j].kind == KIND_UNARY ? gw->conf.slots :
			                                     STREAM_SLOTS;
			for (s = 0; s < ns; s++)
				slot_init(gw, &gw->calls[k++], &methods[j],
				    gw->loops[i].cq);
		}
		for (j = 0; j < GENERIC_SLOTS; j++)
			slot_init(gw, &gw->calls[k++], NULL, gw->loops[i].cq);
	}
	for (k = 0; k < gw->ncalls; k++)
		call_arm(&gw->calls[k]);
	for (i = 0; i < n; i++)
		if (pthread_create(&gw->loops[i].thr, NULL, cq_main,
		        &gw->loops[i]) != 0)
			fatal("pthread_create");
}

int
server_start(struct gw *gw, char *err, size_t errlen)
{
	grpc_arg args[4];
	grpc_channel_args ca;
	grpc_server_credentials *creds;
	size_t i, n;
	int rc;

	server_args(gw, args, &ca);
	/* the peer sockets first: slots open contexts on them */
	if (peer_open(&gw->store, gw->store_url, &gw->store_dialer, err,
	        errlen) != 0 ||
	    peer_open(&gw->runner, gw->runner_url, &gw->runner_dialer, err,
	        errlen) != 0)
		return -1;
	if (pipeline_init(&gw->appends, gw->store,
	        gw->conf.store_timeout_ms) != 0) {
		snprintf(err, errlen, "cannot open nng contexts to %s",
		    gw->store_url);
		return -1;
	}

	gw->server = grpc_server_create(&ca, NULL);
	for (i = 0; i < NMETHODS; i++) {
		methods[i].handle = grpc_server_register_method(gw->server,
		    methods[i].path, NULL,
		    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
		if (methods[i].handle == NULL)
			fatalx("cannot register %s", methods[i].path);
	}
	n = gw->conf.threads ? gw->conf.threads : 1;
	server_queues(gw, n);
	if ((creds = server_creds(gw, err, errlen)) == NULL)
		return -1;
	if ((rc = server_listen(gw, creds, err, errlen)) == 0) {
		grpc_server_start(gw->server);
		server_slots(gw, n);
	}
	grpc_server_credentials_release(creds);
	return rc;
}

void
server_stop(struct gw *gw)
{
	struct timespec ts;
	size_t i, n = gw->conf.threads ? gw->conf.threads : 1;
	int timed_out = 0;

	if (gw->server == NULL)
		return;
	__atomic_store_n(&gw->stopping, 1, __ATOMIC_RELEASE);
	sdw.tag.fn = shutdown_done;
	grpc_server_shutdown_and_notify(gw->server, gw->loops[0].cq, &sdw.tag);
	/* end the streams cleanly, then wait for every call to finish */
	subscribe_stop_all();
	health_stop(gw);
	clock_deadline_ms(&ts, gw->conf.shutdown_grace_ms);
	pthread_mutex_lock(&sdw.mu);
	while (!sdw.done && !timed_out)
		timed_out = pthread_cond_timedwait(&sdw.cv, &sdw.mu, &ts) ==
		    ETIMEDOUT;
	pthread_mutex_unlock(&sdw.mu);
	if (timed_out) {
		log_warnx("calls still open after %llu ms: cancelling them",
		    (unsigned long long)gw->conf.shutdown_grace_ms);
		grpc_server_cancel_all_calls(gw->server);
		pthread_mutex_lock(&sdw.mu);
		while (!sdw.done)
			pthread_cond_wait(&sdw.cv, &sdw.mu);
		pthread_mutex_unlock(&sdw.mu);
	}
	subscribe_wait_all(gw->conf.shutdown_grace_ms);
	grpc_server_destroy(gw->server);
	gw->server = NULL;
	for (i = 0; i < n; i++)
		grpc_completion_queue_shutdown(gw->loops[i].cq);
	for (i = 0; i < n; i++) {
		pthread_join(gw->loops[i].thr, NULL);
		grpc_completion_queue_destroy(gw->loops[i].cq);
	}
	/* every call has ended: nobody is left to answer */
	pipeline_fini(&gw->appends, false);
	for (i = 0; i < gw->ncalls; i++)
		acall_fini(&gw->calls[i].ac);
	dialer_close(&gw->store_dialer);
	dialer_close(&gw->runner_dialer);
	nngx_close(gw->store);
	nngx_close(gw->runner);
	for (i = 0; i < gw->ncalls; i++) {
		struct call *c = &gw->calls[i];

		if (c->call != NULL)
			grpc_call_unref(c->call);
		if (c->payload != NULL)
			grpc_byte_buffer_destroy(c->payload);
		grpc_metadata_array_destroy(&c->md);
		grpc_call_details_destroy(&c->details);
		grpc_slice_unref(c->details_slice);
		ipc_out_free(&c->req);
		free(c->out.buf);
	}
	free(gw->calls);
	free(gw->loops);
	gw->loops = NULL;
}
