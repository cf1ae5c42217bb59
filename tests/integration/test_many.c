/* SPDX-License-Identifier: MIT */
/*
 * test_many.c - APPEND_MANY against a real eventfold-stored: every
 * append in the message keeps its own rules and result (a conflicting
 * exact(n) fails alone, malformed entries get their own errors while
 * the others are written), appends to one stream in one message get
 * contiguous versions in arrival order and see each other's versions,
 * idempotent replays inside a message and of a whole message return
 * the original positions, the accepted appends share one fdatasync,
 * and the message's own bounds (empty, over IPC_MAX_MANY, not a list).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "ipc_many.h"

TestSuite(many, .fini = h_cleanup, .timeout = 120);

static struct h_stored sd;
static struct ef_client cl;

static void
start(void)
{
	static const char *const extra[] = { "--max-append-bytes", "4096",
		NULL };

	h_start_fresh(&sd, &cl, extra, 10000);
}

static void
add(struct ipc_out *o, const char *stream, int kind, uint64_t version,
    struct ipc_proposed *evs, uint32_t n)
{
	struct ipc_append_req r = h_append_req(stream, kind, version, evs, n);

	ipc_append_req_encode(o, &r);
}

static void
begin(struct ipc_out *o, uint32_t n)
{
	ipc_out_init(o);
	ipc_request_begin(o, EF_OP_APPEND_MANY, 1);
	ipc_many_begin(o, n);
}

/* Sends o; the message's status; res[0..want) filled on OK. */
static int
send_many(struct ipc_out *o, uint32_t want, struct h_result *res)
{
	struct client_reply rep;
	struct ipc_result ir;
	const char *why = "";
	uint32_t i;
	int st;

	st = client_call(&cl, o, &rep);
	ipc_out_free(o);
	if (st != EF_S_OK) {
		client_reply_free(&rep);
		return st;
	}
	cr_assert_eq(ipc_many_rep_open(rep.in.body, want, &why), 0,
	    "reply: %s", why);
	for (i = 0; i < want; i++) {
		struct h_result *r = &res[i];

		memset(r, 0, sizeof(*r));
		cr_assert_eq(ipc_result_decode(&rep.in.body->via.array.ptr[i],
		                 &ir, &why),
		    0, "result %u: %s", i, why);
		r->status = ir.status;
		snprintf(r->msg, sizeof(r->msg), "%.*s", (int)ir.message.len,
		    ir.message.ptr);
		if (ir.status == EF_S_OK)
			cr_assert_eq(ipc_append_rep_decode(ir.body, &r->rep,
			                 &why),
			    0, "result %u: %s", i, why);
		else if (ir.status == EF_S_VERSION_CONFLICT) {
			cr_assert_eq(ipc_conflict_decode(ir.body, &r->conflict,
			                 &why),
			    0, "result %u: %s", i, why);
			r->has_conflict = true;
		} else
			cr_assert_eq(ir.body->type, MSGPACK_OBJECT_NIL);
	}
	client_reply_free(&rep);
	return st;
}

static uint64_t
fsyncs(void)
{
	struct client_reply rep;
	struct ipc_status_rep st;

	cr_assert_eq(client_status(&cl, &rep, &st), EF_S_OK);
	client_reply_free(&rep);
	return st.fsyncs;
}

static void
ok_at(const struct h_result *r, uint64_t pos, uint64_t ver, uint64_t n,
    const char *what)
{
	cr_assert_eq(r->status, EF_S_OK, "%s: %s: %s", what,
	    ipc_status_name(r->status), r->msg);
	cr_assert_eq(r->rep.first_pos, pos, "%s: first_pos %llu", what,
	    (unsigned long long)r->rep.first_pos);
	cr_assert_eq(r->rep.last_pos, pos + n - 1, "%s", what);
	cr_assert_eq(r->rep.first_version, ver, "%s: first_version %llu", what,
	    (unsigned long long)r->rep.first_version);
	cr_assert_eq(r->rep.last_version, ver + n - 1, "%s", what);
}

Test(many, mixed_results_each_append_alone)
{
	char a[UUID_STR_LEN], b[UUID_STR_LEN], ids[8][UUID_STR_LEN];
	struct ipc_proposed e0, e1, e2[2], e3, e4[2], big;
	struct h_result res[9];
	struct h_event *evs;
	struct ipc_out o;
	char *payload;
	uint64_t f0;
	size_t n;
	int i;

	start();
	h_uuid(a);
	h_uuid(b);
	for (i = 0; i < 8; i++)
		h_uuid(ids[i]);
	payload = malloc(5000);
	memset(payload, 'x', 4999);
	payload[4999] = '\0';
	e0 = h_proposed(ids[0], "A0", "{}");
	e1 = h_proposed(ids[1], "B0", "{}");
	e2[0] = h_proposed(ids[2], "A1", "{}");
	e2[1] = h_proposed(ids[2], "A1", "{}");
	e3 = h_proposed(ids[3], "B1", "{}");
	e4[0] = h_proposed(ids[4], "X", "{}");
	e4[1] = h_proposed("not-a-uuid", "X", "{}");
	big = h_proposed(ids[5], "Big", payload);
	f0 = fsyncs();

	begin(&o, 9);
	add(&o, a, EF_EXPECT_NO_STREAM, 0, &e0, 1); /* 0: ok, pos 0 */
	add(&o, b, EF_EXPECT_EXACT, 5, &e1, 1);     /* 1: conflict */
	add(&o, b, EF_EXPECT_NO_STREAM, 0, &e1, 1); /* 2: ok, pos 1 */
	msgpack_pack_str(&o.pk, 3);                 /* 3: not a body */
	msgpack_pack_str_body(&o.pk, "bad", 3);
	add(&o, "nope", EF_EXPECT_ANY, 0, &e3, 1); /* 4: bad uuid */
	add(&o, a, EF_EXPECT_ANY, 0, e2, 2);       /* 5: duplicate */
	add(&o, a, EF_EXPECT_ANY, 0, e4, 2);       /* 6: bad event id */
	add(&o, a, EF_EXPECT_ANY, 0, &big, 1);     /* 7: too large */
	add(&o, b, EF_EXPECT_EXACT, 0, &e3, 1);    /* 8: ok, pos 2 */
	cr_assert_eq(send_many(&o, 9, res), EF_S_OK);
	free(payload);

	ok_at(&res[0], 0, 0, 1, "first append");
	cr_assert_eq(res[1].status, EF_S_VERSION_CONFLICT, "%s", res[1].msg);
	cr_assert(res[1].has_conflict && !res[1].conflict.exists);
	ok_at(&res[2], 1, 0, 1, "append after a conflict");
	cr_assert_eq(res[3].status, EF_S_BAD_REQUEST, "%s", res[3].msg);
	cr_assert(strstr(res[3].msg, "append body") != NULL, "%s", res[3].msg);
	cr_assert_eq(res[4].status, EF_S_BAD_UUID, "%s", res[4].msg);
	cr_assert_eq(res[5].status, EF_S_DUPLICATE_EVENT_ID, "%s", res[5].msg);
	cr_assert_eq(res[6].status, EF_S_BAD_UUID, "%s", res[6].msg);
	cr_assert(strstr(res[6].msg, "event 1") != NULL, "%s", res[6].msg);
	cr_assert_eq(res[7].status, EF_S_BATCH_TOO_LARGE, "%s", res[7].msg);
	ok_at(&res[8], 2, 1, 1, "exact(0) after no_stream in one message");
	/* the accepted appends went to disk together */
	cr_assert_eq(fsyncs() - f0, 1, "one message, one fdatasync");

	/* exactly the accepted events, in arrival order */
	cr_assert_eq(h_read_all(&cl, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(evs[0].type, "A0");
	cr_assert_str_eq(evs[1].type, "B0");
	cr_assert_str_eq(evs[2].type, "B1");
	h_events_free(evs, n);
}

Test(many, same_stream_in_one_message_in_arrival_order)
{
	char s[UUID_STR_LEN], ids[6][UUID_STR_LEN];
	struct ipc_proposed e[6];
	struct h_result res[5];
	struct h_event *evs;
	struct ipc_out o;
	size_t n;
	int i;

	start();
	h_uuid(s);
	for (i = 0; i < 6; i++) {
		h_uuid(ids[i]);
		e[i] = h_proposed(ids[i], "T", "{}");
	}
	begin(&o, 5);
	add(&o, s, EF_EXPECT_NO_STREAM, 0, &e[0], 1); /* v0 */
	add(&o, s, EF_EXPECT_EXACT, 0, &e[1], 1);     /* v1 */
	add(&o, s, EF_EXPECT_EXACT, 0, &e[2], 1);     /* conflict: at 1 */
	add(&o, s, EF_EXPECT_ANY, 0, &e[3], 2);       /* v2..v3 */
	add(&o, s, EF_EXPECT_NO_STREAM, 0, &e[5], 1); /* conflict */
	cr_assert_eq(send_many(&o, 5, res), EF_S_OK);
	ok_at(&res[0], 0, 0, 1, "no_stream");
	ok_at(&res[1], 1, 1, 1, "exact(0)");
	cr_assert_eq(res[2].status, EF_S_VERSION_CONFLICT, "%s", res[2].msg);
	cr_assert(res[2].conflict.exists);
	cr_assert_eq(res[2].conflict.actual, 1);
	ok_at(&res[3], 2, 2, 2, "any, two events");
	cr_assert_eq(res[4].status, EF_S_VERSION_CONFLICT, "%s", res[4].msg);
	cr_assert_eq(res[4].conflict.actual, 3);

	cr_assert_eq(h_read_stream(&cl, s, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, 4);
	for (i = 0; i < 4; i++) {
		uint8_t u[UUID_LEN];

		uuid_parse(ids[i == 0 ? 0 : i == 1 ? 1 : i + 1], 36, u);
		cr_assert_arr_eq(evs[i].event_id, u, UUID_LEN,
		    "version %d is not the append sent in that place", i);
		cr_assert_eq(evs[i].version, (uint64_t)i);
	}
	h_events_free(evs, n);
}

Test(many, idempotent_replays_inside_and_of_a_message)
{
	char s[UUID_STR_LEN], t[UUID_STR_LEN], x[UUID_STR_LEN],
	    y[UUID_STR_LEN], z[UUID_STR_LEN];
	struct ipc_proposed xy[2], xother, zz;
	struct h_result res[4], again[4];
	struct ipc_out o;
	uint64_t head;
	int round;

	start();
	h_uuid(s);
	h_uuid(t);
	h_uuid(x);
	h_uuid(y);
	h_uuid(z);
	xy[0] = h_proposed(x, "T", "{\"n\":1}");
	xy[1] = h_proposed(y, "T", "{\"n\":2}");
	xother = h_proposed(x, "T", "{\"n\":99}");
	zz = h_proposed(z, "U", "{}");
	for (round = 0; round < 2; round++) {
		begin(&o, 4);
		add(&o, s, EF_EXPECT_NO_STREAM, 0, xy, 2); /* written */
		add(&o, s, EF_EXPECT_NO_STREAM, 0, xy, 2); /* replay of it */
		add(&o, s, EF_EXPECT_ANY, 0, &xother, 1);  /* reused id */
		add(&o, t, EF_EXPECT_NO_STREAM, 0, &zz, 1);
		cr_assert_eq(send_many(&o, 4, round ? again : res), EF_S_OK);
		if (round == 0)
			head = h_head(&cl);
	}
	ok_at(&res[0], 0, 0, 2, "first");
	ok_at(&res[1], 0, 0, 2, "replay in the same message");
	cr_assert_eq(res[2].status, EF_S_EVENT_ID_REUSED, "%s", res[2].msg);
	ok_at(&res[3], 2, 0, 1, "other stream");
	cr_assert_eq(head, 3);
	/* the whole message again: original positions, nothing written */
	ok_at(&again[0], 0, 0, 2, "resent");
	ok_at(&again[1], 0, 0, 2, "resent replay");
	cr_assert_eq(again[2].status, EF_S_EVENT_ID_REUSED);
	ok_at(&again[3], 2, 0, 1, "resent other stream");
	cr_assert_eq(h_head(&cl), 3, "a resent message wrote nothing");
}

Test(many, message_bounds)
{
	char s[UUID_STR_LEN];
	static char ids[IPC_MAX_MANY][UUID_STR_LEN];
	struct ipc_proposed e;
	struct client_reply rep;
	struct h_result *res;
	struct ipc_out o;
	uint32_t i;
	int st;

	start();
	h_uuid(s);
	/* empty list */
	begin(&o, 0);
	st = client_call(&cl, &o, &rep);
	cr_assert_eq(st, EF_S_EMPTY_BATCH, "%s", ipc_status_name(st));
	client_reply_free(&rep);
	ipc_out_free(&o);
	/* not a list */
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_APPEND_MANY, 1);
	ipc_nil(&o);
	st = client_call(&cl, &o, &rep);
	cr_assert_eq(st, EF_S_BAD_REQUEST, "%s", ipc_status_name(st));
	client_reply_free(&rep);
	ipc_out_free(&o);
	/* one over the bound: refused whole, nothing written */
	begin(&o, IPC_MAX_MANY + 1);
	for (i = 0; i <= IPC_MAX_MANY; i++) {
		h_uuid(ids[i % IPC_MAX_MANY]);
		e = h_proposed(ids[i % IPC_MAX_MANY], "T", "{}");
		add(&o, s, EF_EXPECT_ANY, 0, &e, 1);
	}
	st = client_call(&cl, &o, &rep);
	cr_assert_eq(st, EF_S_BATCH_TOO_LARGE, "%s", ipc_status_name(st));
	client_reply_free(&rep);
	ipc_out_free(&o);
	cr_assert_eq(h_head(&cl), 0);
	/* exactly the bound: every append written, in order */
	res = calloc(IPC_MAX_MANY, sizeof(*res));
	begin(&o, IPC_MAX_MANY);
	for (i = 0; i < IPC_MAX_MANY; i++) {
		e = h_proposed(ids[i], "T", "{}");
		add(&o, s, EF_EXPECT_EXACT, i - 1, &e, 1);
		if (i == 0) {
			/* the first must create the stream */
			ipc_out_free(&o);
			begin(&o, IPC_MAX_MANY);
			add(&o, s, EF_EXPECT_NO_STREAM, 0, &e, 1);
		}
	}
	cr_assert_eq(send_many(&o, IPC_MAX_MANY, res), EF_S_OK);
	for (i = 0; i < IPC_MAX_MANY; i++)
		ok_at(&res[i], i, i, 1, "bounded message");
	cr_assert_eq(h_head(&cl), IPC_MAX_MANY);
	free(res);
}
