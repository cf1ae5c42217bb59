/* SPDX-License-Identifier: MIT */
/*
 * gatewayd.h - private structures of eventfold-gatewayd, the gRPC front
 * door of eventfold.
 *
 * Threads: `threads` completion-queue threads (server.c) run every gRPC
 * event; unary EventStore calls go to eventfold-stored over nng req/rep
 * asynchronously (each call slot owns one round trip, acall.h, with its
 * nng context, so the slots are the pool of contexts), and their
 * replies are finished from nng's callback threads. The eventfold.Runner
 * calls (runner.c) work the same way against eventfold-runnerd's
 * runner.sock. Appends are the exception: they are coalesced into
 * APPEND_MANY messages by one pipeline (libcommon/pipeline.h) on a few
 * contexts of its own, behind one short-held mutex.
 * Subscriptions (subscribe.c) share one feed thread on stored's publish
 * socket and a ring of recent events; each is a state machine on the
 * completion queues and its own nng context, with no thread of its
 * own. A health thread polls stored's STATUS; libmicrohttpd serves /metrics
 * from its own thread. No other lock is on the unary hot path.
 *
 * Every CQ tag is a struct gw_tag: the completion calls tag->fn.
 */
#ifndef EF_GATEWAYD_H
#define EF_GATEWAYD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>

#include "acall.h"
#include "client.h"
#include "ipc.h"
#include "pipeline.h"
#include "utf8.h"

/* gRPC status codes we use (grpc/status.h names them too). */
#define GW_OK                  0
#define GW_CANCELLED           1
#define GW_UNKNOWN             2
#define GW_INVALID_ARGUMENT    3
#define GW_DEADLINE_EXCEEDED   4
#define GW_NOT_FOUND           5
#define GW_FAILED_PRECONDITION 9
#define GW_UNIMPLEMENTED       12
#define GW_INTERNAL            13
#define GW_UNAVAILABLE         14
#define GW_UNAUTHENTICATED     16

struct gw_conf {
	char *data_dir; /* accepted, unused: no durable state */
	char *runtime_dir;
	char *store_url;
	char *events_url;
	char *runner_url;
	char *listen;         /* comma-separated gRPC addresses */
	char *metrics_listen; /* "" disables /metrics */
	char *tls_cert;
	char *tls_key;
	char *tls_ca;     /* set: clients must present a cert (mTLS) */
	char *jwt_secret; /* set: HS256 bearer tokens required */
	uint64_t threads; /* completion queues, one thread each */
	uint64_t slots;   /* outstanding calls per method and queue */
	uint64_t max_request_bytes;
	uint64_t max_response_bytes;
	uint64_t store_timeout_ms;
	uint64_t health_interval_ms;
	uint64_t shutdown_grace_ms;
	uint64_t live_ring_events; /* the subscribers' shared ring */
};

struct gw_tag {
	void (*fn)(struct gw_tag *t, int ok);
};

/* Histogram of append latency (seconds); bounds in metrics.c. */
#define METRICS_BUCKETS 14
/* Appends whose durations make the summary's quantiles. */
#define DURATION_WINDOW 4096

struct metrics {
	uint64_t appends_total; /* from stored's STATUS: whole store */
	uint64_t events_total;
	uint64_t append_buckets[METRICS_BUCKETS + 1]; /* last: +Inf */
	uint64_t append_sum_ns;
	uint64_t append_count;
	uint64_t recent_ns[DURATION_WINDOW]; /* ring, by append_count */
	uint64_t reads_read_stream;
	uint64_t reads_read_all;
	int64_t subscriptions_active;
	/* from stored's STATUS, refreshed by the health thread */
	uint64_t global_position;
	uint64_t streams_total;
	uint64_t log_bytes;
	uint64_t fsyncs_total;
	uint64_t store_events_written;
	uint64_t batch_size_milli; /* events per fsync * 1000, last interval */
	uint64_t segments;         /* segment files, the hot one included */
	uint64_t index_lag;        /* head - indexed_to */
	uint64_t archived_segments;
	uint64_t archived_bytes;
	uint64_t cache_hits; /* archive frame cache */
	uint64_t cache_misses;
	uint64_t cache_bytes;
	uint64_t store_up;
	/* from runnerd's RUNNER_STATUS at each scrape (shown once known) */
	uint64_t runner_known;
	uint64_t runner_map_bytes;
	uint64_t runner_map_grows;
};

struct method;
struct gw;

/* Which daemon a unary method's slots talk to. */
enum call_peer {
	PEER_STORE,
	PEER_RUNNER,
	PEER_NONE,
};

/* A protobuf message being built (bytes, grown with pbuf_reserve). */
struct pbuf {
	uint8_t *buf;
	size_t len, cap;
};

/*
 * A call slot: one outstanding request for one method on one queue. It
 * owns an nng context on the store socket. Unary calls keep the slot
 * until the reply is sent; streaming calls hand the call off and re-arm.
 */
struct call {
	struct gw_tag tag;
	struct gw *gw;
	const struct method *m;
	grpc_completion_queue *cq;
	int state;
	grpc_call *call;
	grpc_call_details details; /* generic (unimplemented) slots only */
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	/* reply */
	grpc_byte_buffer *resp;
	grpc_slice details_slice;
	int cancelled;
	/* round trip to stored or runnerd (on the peer's socket) */
	struct acall ac;
	enum call_peer peer;
	void (*store_done)(struct call *, struct client_reply *);
	struct ipc_out req;
	/* Append: its place in the store pipeline (call_store_append) */
	struct pipeline_req preq;
	/* response being built */
	struct pbuf out;
	/* per-RPC progress */
	uint64_t from, remaining, t0;
	uint64_t rid; /* the request id of its IPC requests (trace.h) */
	char stream_id[UUID_STR_LEN];
	char after[UUID_STR_LEN];
	bool has_after;
};

enum call_kind {
	KIND_UNARY,
	KIND_STREAM, /* handler takes the call over */
};

struct method {
	const char *path;
	enum call_kind kind;
	bool auth; /* JWT required when configured */
	enum call_peer peer;
	void (*begin)(struct call *c, const uint8_t *req, size_t len);
	void *handle; /* from grpc_server_register_method */
};

/* One completion-queue thread and its heartbeat (server_alive). */
struct cq_loop {
	grpc_completion_queue *cq;
	pthread_t thr;
	uint64_t turn_ms; /* how often it wakes, idle or not */
	uint64_t beat_ms; /* atomic: when it last came round (0: not yet) */
};

struct gw {
	struct gw_conf conf;
	char store_url[4200];
	char events_url[4200];
	char runner_url[4200];
	grpc_server *server;
	struct cq_loop *loops; /* conf.threads of them */
	struct call *calls;    /* every slot */
	size_t ncalls;
	grpc_completion_queue *shutdown_cq;
	int stopping; /* atomic */
	/* store */
	nng_socket store;
	struct ef_dialer store_dialer;
	struct pipeline appends; /* Appends, coalesced (pipeline.h) */
	uint64_t store_down_ms;  /* atomic: since when stored has no pipe */
	/* runner */
	nng_socket runner;
	struct ef_dialer runner_dialer;
	uint64_t runner_down_ms;
	/* health */
	int serving; /* atomic: stored answered the last poll */
	pthread_t health_thr;
	/* metrics */
	struct metrics mx;
	void *mhd;
	/* auth */
	const char *jwt_secret;
	size_t jwt_secret_len;
};

/* server.c */
int server_start(struct gw *gw, char *err, size_t errlen);
void server_stop(struct gw *gw);
/*
 * The watchdog's test (daemon.h): 0 when a completion-queue thread has
 * not come round for limit_ms or more (each wakes every turn_ms,
 * under half the limit, even when idle: only a stuck one stays away);
 * 1 otherwise.
 */
int server_alive(struct gw *gw, uint64_t limit_ms);
/* Sends a unary reply (resp may be NULL for an error) and re-arms. */
void call_finish(struct call *c, int code, const char *msg);
/*
 * The first step of a peer's reply handler: 0 when the peer answered OK
 * and its body decoded (decoded); else finishes c with the peer's own
 * status and message (-EIO), or with INTERNAL "malformed WHAT" when the
 * body is missing or does not decode (-EPROTO).
 */
int call_reply_body(struct call *c, const struct client_reply *rep,
    bool decoded, const char *what);
/* call_reply_body, decoding rep's body with decode (an ipc_*_decode)
 * into out only when the peer answered OK. */
#define CALL_REPLY_DECODE(c, rep, decode, out, what)                          \
	call_reply_body((c), (rep),                                           \
	    (rep)->in.status == EF_S_OK && (rep)->in.body != NULL &&          \
	        decode((rep)->in.body, (out), &(const char *){ NULL }) == 0,  \
	    (what))
/*
 * The first step of a handler: unpacks its request (buf, len) as a
 * message of descriptor d. The message (the caller frees it with its
 * __free_unpacked), or NULL with c finished (INVALID_ARGUMENT
 * "malformed <message name>").
 */
void *call_unpack(struct call *c, const ProtobufCMessageDescriptor *d,
    const uint8_t *buf, size_t len);
/* Parses a stream id (s, NUL-terminated) into sid: 0, or -EINVAL with
 * the call finished (INVALID_ARGUMENT). */
int call_stream_id(struct call *c, const char *s, uint8_t sid[UUID_LEN]);
/* Empties c->req and begins a request of op in it (c's request id):
 * the caller encodes the body next. Returns &c->req. */
struct ipc_out *call_request(struct call *c, int op);
/* Sends c->out as the reply message, status OK. */
void call_reply(struct call *c);
/* Packs m into c->out and sends it as the reply, status OK. */
void call_reply_msg(struct call *c, const ProtobufCMessage *m);
/*
 * For streaming handlers: takes the call over and re-arms the slot. The
 * slot's metadata and payload are released; the returned call is the
 * caller's (grpc_call_unref when done).
 */
grpc_call *call_detach(struct call *c);
void call_errorf(struct call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Starts a store round trip of c->req; done runs on an nng thread. */
void call_store(struct call *c,
    void (*done)(struct call *, struct client_reply *));
/*
 * Starts a round trip of c->req to the slot's peer (stored or runnerd)
 * that may take up to timeout_ms; done runs on an nng thread, with
 * EF_S_UNAVAILABLE when the peer is not connected or does not answer.
 */
void call_peer(struct call *c,
    void (*done)(struct call *, struct client_reply *), uint64_t timeout_ms);
/*
 * Appends go through the store pipeline instead (libcommon/pipeline.h):
 * c->req holds an APPEND body (no envelope); done runs on an nng thread
 * with that append's own result, or EF_S_UNAVAILABLE.
 */
void call_store_append(struct call *c,
    void (*done)(struct call *, struct client_reply *));
/* Milliseconds left before the call's deadline (UINT64_MAX: none). */
uint64_t call_ms_left(const struct call *c);
/* Room for more bytes; appends the key and length of a
 * length-delimited field; frees a buffer that grew past keep. */
void pbuf_reserve(struct pbuf *pb, size_t more);
void pbuf_field(struct pbuf *pb, uint32_t field, size_t len);
/* Packs m into pb, replacing what pb held. */
void pbuf_pack(struct pbuf *pb, const ProtobufCMessage *m);
/* Appends m to pb as the embedded message of field (length-delimited). */
void pbuf_pack_field(struct pbuf *pb, uint32_t field,
    const ProtobufCMessage *m);
void pbuf_trim(struct pbuf *pb, size_t keep);
/* Makes a byte buffer of (p, len); the caller destroys it. */
grpc_byte_buffer *buffer_from(const void *p, size_t len);
/* Reads a whole byte buffer into a malloc'd block (*len); NULL on OOM. */
uint8_t *buffer_read(grpc_byte_buffer *bb, size_t *len);
uint64_t gw_mono_ns(void);
bool store_up(struct gw *gw);
bool runner_up(struct gw *gw);
/* Cancels peer round trips nng has not ended by their deadline. */
void server_sweep(struct gw *gw);

/* rpc.c: the unary EventStore methods. */
void rpc_append(struct call *c, const uint8_t *req, size_t len);
void rpc_read_stream(struct call *c, const uint8_t *req, size_t len);
void rpc_read_all(struct call *c, const uint8_t *req, size_t len);
void rpc_list_streams(struct call *c, const uint8_t *req, size_t len);
/* Packs ev as a RecordedEvent into pb as field `field`; returns 0, or
 * 1 if pb is not empty and it would pass limit (nothing added then). */
int rpc_pack_event(struct pbuf *pb, uint32_t field, const struct ef_event *ev,
    size_t limit);

/* runner.c: the unary eventfold.Runner methods. */
void runner_execute(struct call *c, const uint8_t *req, size_t len);
void runner_get_state(struct call *c, const uint8_t *req, size_t len);
void runner_query(struct call *c, const uint8_t *req, size_t len);
void runner_list_projections(struct call *c, const uint8_t *req, size_t len);

/* subscribe.c */
void subscribe_all(struct call *c, const uint8_t *req, size_t len);
void subscribe_stream(struct call *c, const uint8_t *req, size_t len);
void subscribe_stop_all(void);
void subscribe_wait_all(uint64_t timeout_ms);
uint64_t subscribe_max_lag(uint64_t head);

/* health.c */
void health_check(struct call *c, const uint8_t *req, size_t len);
void health_watch(struct call *c, const uint8_t *req, size_t len);
/* Starts the health thread: 0 or a negative errno. */
int health_start(struct gw *gw);
void health_set(struct gw *gw, int serving);
void health_shutdown(struct gw *gw);
void health_stop(struct gw *gw);

/* metrics.c */
int metrics_start(struct gw *gw, char *err, size_t errlen);
void metrics_stop(struct gw *gw);
void metrics_append(struct gw *gw, uint64_t ns, uint64_t events,
    uint64_t last_pos);
/* Takes the store's figures from a STATUS reply. */
void metrics_status(struct gw *gw, const struct ipc_status_rep *st);

/*
 * pbcheck.c: 1 if a string field of the request of method path holds a
 * NUL byte (why then names the field), else 0.
 */
int pbcheck_nul(const char *path, const uint8_t *buf, size_t len, char *why,
    size_t whylen);

/* auth.c: 0, or GW_UNAUTHENTICATED with why set. */
int auth_check(struct gw *gw, const grpc_metadata_array *md, char *why,
    size_t whylen);

#endif
