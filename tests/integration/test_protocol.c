/* SPDX-License-Identifier: MIT */
/*
 * test_protocol.c - hostile bytes sent to a real eventfold-stored's
 * store.sock: garbage, truncated requests, counts far beyond the
 * message, deep nesting, other protocol versions, unknown ops, bodies of
 * the wrong shape, random mutations of valid requests, all of it from
 * several clients at once, and a message over the size bound. Each gets
 * an error reply with a reason (or, for the oversized one, a closed
 * connection), and the daemon keeps serving: it stays up and valid
 * requests before, between and after succeed. (Peers that do not speak
 * the SP protocol at all: test_handshake.c.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <errno.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "../tools/testutil.h"

TestSuite(protocol, .fini = h_cleanup, .timeout = 120);

static struct h_stored sd;
static struct ef_client cl;

static void
assert_alive(void)
{
	int st;

	cr_assert_eq(waitpid(sd.pid, &st, WNOHANG), 0,
	    "stored exited "
	    "(wait status 0x%x)",
	    st);
	cr_assert_neq(h_head(&cl), UINT64_MAX,
	    "stored does not answer "
	    "STATUS any more");
}

/* Sends len raw bytes as one request; returns the reply status. */
static int
send_raw(struct ef_client *c, const void *buf, size_t len, char *msg,
    size_t msglen, bool *nil_body)
{
	struct ipc_out o;
	struct client_reply rep;
	int st;

	memset(&o, 0, sizeof(o));
	o.buf = (char *)buf;
	o.len = len;
	st = client_call(c, &o, &rep);
	if (msg != NULL)
		snprintf(msg, msglen, "%.*s", (int)rep.in.message.len,
		    rep.in.message.ptr ? rep.in.message.ptr : "");
	if (nil_body != NULL)
		*nil_body = rep.in.body != NULL &&
		    rep.in.body->type == MSGPACK_OBJECT_NIL;
	client_reply_free(&rep);
	return st;
}

/* A valid APPEND request of one event to a fresh stream. */
static void
valid_append(struct ipc_out *o)
{
	struct ipc_append_req r;
	struct ipc_proposed p;
	char sid[UUID_STR_LEN], eid[UUID_STR_LEN]; /* copied by the encoder */

	memset(&r, 0, sizeof(r));
	memset(&p, 0, sizeof(p));
	h_uuid(sid);
	h_uuid(eid);
	p.event_id.ptr = eid;
	p.event_id.len = 36;
	p.type.ptr = "Valid";
	p.type.len = 5;
	p.payload = (const uint8_t *)"{\"ok\":true}";
	p.payload_len = 11;
	r.stream_id.ptr = sid;
	r.stream_id.len = 36;
	r.nevents = 1;
	r.events = &p;
	ipc_out_init(o);
	ipc_request_begin(o, EF_OP_APPEND, 1);
	ipc_append_req_encode(o, &r);
}

struct bad {
	const char *what;
	uint8_t bytes[64];
	size_t len;
	int status;
	const char *says; /* in the reply message */
};

/* the version byte of a well-formed envelope (a positive fixint) */
#define V EF_PROTO_VERSION

static const struct bad bads[] = {
	{ "empty message", { 0 }, 0, EF_S_BAD_REQUEST, "msgpack" },
	{ "text", "hello, stored", 13, EF_S_BAD_REQUEST, "msgpack" },
	{ "never-used byte", { 0xc1 }, 1, EF_S_BAD_REQUEST, "msgpack" },
	{ "array32 of 2^32-1", { 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 1, 1 }, 8,
	    EF_S_BAD_REQUEST, "msgpack" },
	{ "map32 of 2^31", { 0xdf, 0x80, 0, 0, 0, 1, 2 }, 7, EF_S_BAD_REQUEST,
	    "msgpack" },
	{ "str32 of 4 GiB", { 0xdb, 0xff, 0xff, 0xff, 0xff, 'x' }, 6,
	    EF_S_BAD_REQUEST, "msgpack" },
	{ "envelope, body claims 2^32-1",
	    { 0x94, V, 1, 1, 0xdd, 0xff, 0xff, 0xff, 0xff }, 9,
	    EF_S_BAD_REQUEST, "msgpack" },
	{ "a map", { 0x81, 1, 2 }, 3, EF_S_BAD_REQUEST, "envelope" },
	{ "empty array", { 0x90 }, 1, EF_S_BAD_REQUEST, "envelope" },
	{ "three fields", { 0x93, V, 5, 1 }, 4, EF_S_BAD_REQUEST, "envelope" },
	{ "five fields", { 0x95, V, 5, 1, 0xc0, 0xc0 }, 6, EF_S_BAD_REQUEST,
	    "envelope" },
	{ "op as a string", { 0x94, V, 0xa1, 'x', 1, 0xc0 }, 6,
	    EF_S_BAD_REQUEST, "op" },
	{ "negative request id", { 0x94, V, 5, 0xff, 0xc0 }, 5,
	    EF_S_BAD_REQUEST, "request_id" },
	{ "the next version", { 0x94, V + 1, 5, 1, 0xc0 }, 5, EF_S_BAD_VERSION,
	    "version" },
	{ "version 0", { 0x94, 0, 5, 1, 0xc0 }, 5, EF_S_BAD_VERSION,
	    "version" },
	{ "version 2^32", { 0x94, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 5, 1, 0xc0 },
	    13, EF_S_BAD_VERSION, "version" },
	{ "a reply instead", { 0x93, 0, 0xa2, 'o', 'k', 0xc0 }, 6,
	    EF_S_BAD_VERSION, "version" },
	{ "op 0", { 0x94, V, 0, 1, 0xc0 }, 5, EF_S_UNKNOWN_OP, "0" },
	{ "op 99", { 0x94, V, 99, 1, 0xc0 }, 5, EF_S_UNKNOWN_OP, "99" },
	{ "a runner op", { 0x94, V, 32, 1, 0xc0 }, 5, EF_S_UNKNOWN_OP, "32" },
	{ "append, nil body", { 0x94, V, 1, 1, 0xc0 }, 5, EF_S_BAD_REQUEST,
	    "append" },
	{ "append, 3 fields", { 0x94, V, 1, 1, 0x93, 0xa0, 0, 0 }, 8,
	    EF_S_BAD_REQUEST, "append" },
	{ "append, events not an array",
	    { 0x94, V, 1, 1, 0x94, 0xa0, 0, 0, 0xc0 }, 9, EF_S_BAD_REQUEST,
	    "events" },
	{ "append, event of 2 fields",
	    { 0x94, V, 1, 1, 0x94, 0xa0, 0, 0, 0x91, 0x92, 0xa0, 0xa0 }, 12,
	    EF_S_BAD_REQUEST, "event" },
	{ "read_stream, nil body", { 0x94, V, 2, 1, 0xc0 }, 5,
	    EF_S_BAD_REQUEST, "read_stream" },
	{ "read_stream, direction 7",
	    { 0x94, V, 2, 1, 0x94, 0xa1, 'x', 0, 1, 7 }, 10, EF_S_BAD_REQUEST,
	    "direction" },
	{ "read_all, string body", { 0x94, V, 3, 1, 0xa1, 'x' }, 6,
	    EF_S_BAD_REQUEST, "read_all" },
	{ "read_all, negative count", { 0x94, V, 3, 1, 0x93, 0, 0xff, 0 }, 8,
	    EF_S_BAD_REQUEST, "max_count" },
	{ "list_streams, after as int", { 0x94, V, 4, 1, 0x92, 1, 1 }, 7,
	    EF_S_BAD_REQUEST, "after" },
	{ "deeply nested body", { 0 }, 0, EF_S_BAD_REQUEST, NULL }, /* below */
};

static void
check_bad(struct ef_client *c, const struct bad *b)
{
	char msg[600];
	bool nil = false;
	int st;

	st = send_raw(c, b->bytes, b->len, msg, sizeof(msg), &nil);
	cr_assert_eq(st, b->status, "%s: got %s (%s)", b->what,
	    ipc_status_name(st), msg);
	cr_assert_str_neq(msg, "", "%s: no reason given", b->what);
	cr_assert(nil, "%s: an error reply has a nil body", b->what);
	if (b->says != NULL)
		cr_assert(strstr(msg, b->says) != NULL,
		    "%s: reason \"%s\" "
		    "does not mention \"%s\"",
		    b->what, msg, b->says);
}

Test(protocol, malformed_requests_get_error_replies)
{
	struct ipc_out ok;
	uint8_t *deep;
	size_t i, n = sizeof(bads) / sizeof(bads[0]) - 1;
	char msg[600];

	h_start_fresh(&sd, &cl, NULL, 5000);
	valid_append(&ok);
	for (i = 0; i < n; i++) {
		check_bad(&cl, &bads[i]);
		/* a valid request right after each one */
		cr_assert_eq(send_raw(&cl, ok.buf, ok.len, msg, sizeof(msg),
		                 NULL),
		    EF_S_OK, "after %s: %s", bads[i].what, msg);
		ipc_out_free(&ok);
		valid_append(&ok);
	}
	/* 100000 nested arrays as the body */
	deep = malloc(100005);
	cr_assert_not_null(deep);
	deep[0] = 0x94;
	deep[1] = 1;
	deep[2] = 1;
	deep[3] = 1;
	memset(deep + 4, 0x91, 100000);
	deep[100004] = 0xc0;
	cr_assert_eq(send_raw(&cl, deep, 100005, msg, sizeof(msg), NULL),
	    EF_S_BAD_REQUEST, "%s", msg);
	free(deep);
	assert_alive();
	cr_assert_eq(h_head(&cl), n, "exactly the valid appends were written");
	ipc_out_free(&ok);
}

Test(protocol, every_truncation_of_a_valid_request)
{
	struct ipc_out ok;
	size_t cut;
	char msg[600];
	int st;

	h_start_fresh(&sd, &cl, NULL, 5000);
	valid_append(&ok);
	for (cut = 0; cut < ok.len; cut++) {
		st = send_raw(&cl, ok.buf, cut, msg, sizeof(msg), NULL);
		cr_assert_eq(st, EF_S_BAD_REQUEST, "cut at %zu: %s %s", cut,
		    ipc_status_name(st), msg);
	}
	cr_assert_eq(send_raw(&cl, ok.buf, ok.len, msg, sizeof(msg), NULL),
	    EF_S_OK, "%s", msg);
	assert_alive();
	cr_assert_eq(h_head(&cl), 1);
	ipc_out_free(&ok);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

Test(protocol, mutated_requests_are_all_answered)
{
	struct ipc_out seeds[4];
	struct ipc_read_all_req ra = { 0, 10, EF_FORWARD };
	struct ipc_read_stream_req rs;
	struct ipc_list_req lr = { false, { NULL, 0 }, 10 };
	uint8_t buf[512];
	char sid[UUID_STR_LEN], msg[600];
	int k, round, st;

	h_start_fresh(&sd, &cl, NULL, 5000);
	valid_append(&seeds[0]);
	cr_assert_eq(send_raw(&cl, seeds[0].buf, seeds[0].len, NULL, 0, NULL),
	    EF_S_OK);
	ipc_out_init(&seeds[1]);
	ipc_request_begin(&seeds[1], EF_OP_READ_ALL, 2);
	ipc_read_all_req_encode(&seeds[1], &ra);
	rs.stream_id.ptr = h_uuid(sid);
	rs.stream_id.len = 36;
	rs.from = 0;
	rs.max_count = 10;
	rs.direction = EF_FORWARD;
	ipc_out_init(&seeds[2]);
	ipc_request_begin(&seeds[2], EF_OP_READ_STREAM, 3);
	ipc_read_stream_req_encode(&seeds[2], &rs);
	ipc_out_init(&seeds[3]);
	ipc_request_begin(&seeds[3], EF_OP_LIST_STREAMS, 4);
	ipc_list_req_encode(&seeds[3], &lr);

	for (round = 0; round < 1500; round++) {
		const struct ipc_out *s = &seeds[round % 4];
		size_t len = s->len, j, n;

		cr_assert_leq(len + 16, sizeof(buf));
		memcpy(buf, s->buf, len);
		n = 1 + xorshift64(&rng) % 3;
		for (j = 0; j < n; j++) {
			uint64_t r = xorshift64(&rng);
			size_t at = (size_t)(r >> 8) % len;

			switch (r % 4) {
			case 0:
				buf[at] ^= (uint8_t)(1u << (r >> 4 & 7));
				break;
			case 1:
				buf[at] = (uint8_t)(r >> 40);
				break;
			case 2:
				buf[at] = (const uint8_t[]){ 0xdd, 0xdf, 0xdb,
					0xc6, 0xc1, 0xff, 0x00,
					0xc0 }[(r >> 32) % 8];
				break;
			default:
				len = at + 1;
			}
		}
		st = send_raw(&cl, buf, len, msg, sizeof(msg), NULL);
		cr_assert(st >= 0 && st < EF_S__COUNT &&
		        st != EF_S_UNAVAILABLE && st != EF_S_INTERNAL,
		    "round %d: %s (%s)", round, ipc_status_name(st), msg);
		if (st != EF_S_OK)
			cr_assert_str_neq(msg, "", "round %d: no reason",
			    round);
	}
	assert_alive();
	for (k = 0; k < 4; k++)
		ipc_out_free(&seeds[k]);
}

#define SENDERS 8

struct sender {
	struct h_worker w; /* first */
	int idx;
	int appended;
	char error[1024];
};

static void *
sender_main(void *arg)
{
	struct sender *s = arg;
	size_t n = sizeof(bads) / sizeof(bads[0]) - 1, i;
	struct ipc_out ok;
	char msg[600];
	int k, st;

	for (k = 0; k < 20; k++)
		for (i = 0; i < n; i++) {
			st = send_raw(&s->w.c, bads[i].bytes, bads[i].len, msg,
			    sizeof(msg), NULL);
			if (st != bads[i].status) {
				snprintf(s->error, sizeof(s->error),
				    "%s: %s "
				    "(%s)",
				    bads[i].what, ipc_status_name(st), msg);
				return NULL;
			}
			if ((i + (size_t)s->idx) % 7 != 0)
				continue;
			valid_append(&ok);
			st = send_raw(&s->w.c, ok.buf, ok.len, msg,
			    sizeof(msg), NULL);
			ipc_out_free(&ok);
			if (st != EF_S_OK) {
				snprintf(s->error, sizeof(s->error),
				    "valid append: %s (%s)",
				    ipc_status_name(st), msg);
				return NULL;
			}
			s->appended++;
		}
	return NULL;
}

Test(protocol, malformed_requests_from_many_clients_at_once)
{
	static struct sender s[SENDERS];
	uint64_t total = 0;
	int i;

	h_start_fresh(&sd, &cl, NULL, 5000);
	for (i = 0; i < SENDERS; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].idx = i;
	}
	h_workers_start(&sd, s, sizeof(s[0]), SENDERS, sender_main, 10000);
	h_workers_join(s, sizeof(s[0]), SENDERS);
	for (i = 0; i < SENDERS; i++) {
		cr_assert_str_empty(s[i].error, "sender %d: %s", i,
		    s[i].error);
		total += (uint64_t)s[i].appended;
		client_close(&s[i].w.c);
	}
	cr_assert_gt(total, 0);
	assert_alive();
	cr_assert_eq(h_head(&cl), total,
	    "head %llu, %llu appends acknowledged",
	    (unsigned long long)h_head(&cl), (unsigned long long)total);
}

/*
 * Speaks nng's IPC framing by hand: the 8-byte SP header of a REQ peer,
 * then one message header announcing len bytes, then len bytes of a
 * well-formed request whose body is one huge bin, until the daemon
 * hangs up. Returns the bytes the daemon let us send. (A raw socket and
 * not an ef_client: client_call() refuses oversized requests itself,
 * and in nng 1.5.2 a peer closing a pipe in the middle of a large send
 * can wedge the sender's reaper thread, which would hang this test
 * process at exit: guard.h.)
 */
static size_t
send_oversized(const char *path, uint64_t len, int *replied)
{
	uint8_t hdr[8], frame[9], chunk[65536];
	uint64_t sent = 0;
	ssize_t n;
	int fd, i;

	fd = h_unix_connect(path);
	cr_assert_eq(send(fd, "\0SP\0\0\x30\0\0", 8, MSG_NOSIGNAL), 8);
	cr_assert_eq(read(fd, hdr, 8), 8, "no SP header from stored");
	cr_assert_eq(hdr[5], 0x31, "stored's socket is not REP");
	frame[0] = 1;
	for (i = 0; i < 8; i++)
		frame[1 + i] = (uint8_t)(len >> (56 - 8 * i));
	cr_assert_eq(send(fd, frame, 9, MSG_NOSIGNAL), 9);
	/* nng's request id, then the envelope [3, STATUS, 1, bin32] */
	memset(chunk, 0, sizeof(chunk));
	chunk[0] = 0x80;
	chunk[3] = 1;
	chunk[4] = 0x94;
	chunk[5] = 3;
	chunk[6] = EF_OP_STATUS;
	chunk[7] = 1;
	chunk[8] = 0xc6;
	chunk[9] = (uint8_t)((len - 13) >> 24);
	chunk[10] = (uint8_t)((len - 13) >> 16);
	chunk[11] = (uint8_t)((len - 13) >> 8);
	chunk[12] = (uint8_t)(len - 13);
	while (sent < len) {
		size_t want = len - sent < sizeof(chunk) ? len - sent :
		                                           sizeof(chunk);

		n = send(fd, chunk, want, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		sent += (uint64_t)n;
		if (sent == (uint64_t)n)
			memset(chunk, 0, 16);
	}
	/* whatever was sent, the daemon must not answer it */
	n = read(fd, chunk, sizeof(chunk));
	*replied = n > 0;
	close(fd);
	return sent;
}

Test(protocol, message_over_the_size_bound)
{
	char path[H_PATH + 16];
	uint64_t len = IPC_MAX_MSG + 64;
	size_t sent;
	int replied = 0;

	h_start_fresh(&sd, &cl, NULL, 5000);
	snprintf(path, sizeof(path), "%s/store.sock", sd.run_dir);
	sent = send_oversized(path, len, &replied);
	cr_assert_not(replied, "an oversized message was answered");
	cr_assert_lt(sent, len,
	    "stored read all %llu bytes of a message "
	    "over its bound before hanging up",
	    (unsigned long long)len);
	/* the daemon did not take it in and keeps serving */
	assert_alive();
	{
		struct ipc_out ok;

		valid_append(&ok);
		cr_assert_eq(send_raw(&cl, ok.buf, ok.len, NULL, 0, NULL),
		    EF_S_OK);
		ipc_out_free(&ok);
	}
}

/* A client refuses to send a request over the bound, with a reason. */
Test(protocol, client_refuses_an_oversized_request)
{
	size_t len = IPC_MAX_MSG + 64;
	uint8_t *buf = calloc(1, len);
	char msg[600];
	int st;

	cr_assert_not_null(buf);
	h_start_fresh(&sd, &cl, NULL, 5000);
	st = send_raw(&cl, buf, len, msg, sizeof(msg), NULL);
	free(buf);
	cr_assert_eq(st, EF_S_BATCH_TOO_LARGE, "got %s (%s)",
	    ipc_status_name(st), msg);
	cr_assert(strstr(msg, "64 MiB") != NULL, "reason: %s", msg);
	assert_alive();
}
