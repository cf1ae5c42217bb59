/* SPDX-License-Identifier: MIT */
/*
 * test_procmgr.c - process managers against real daemons: the order ->
 * shipment example, a command that keeps failing becomes a dead letter
 * (listed with its error and attempts), the manager goes on with later
 * events, a retry that still fails keeps it, a retry after the cause is
 * fixed applies it once, and drop forgets one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rharness.h"

TestSuite(procmgr, .timeout = 120);

static const char *const examples[] = { "counter.so", "orders.so", NULL };

static struct rh h;

static void
up(void)
{
	rh_up_args(&h, examples,
	    (const char *const[]){ "--pm-retries", "3", "--pm-backoff-ms",
	        "20", NULL });
}

struct dl {
	char cmd[300];
	char target[300];
	char error[600];
	uint64_t attempts;
};

static int
dead_letters(int action, const char *mgr, const char *cmd, struct dl *out,
    int max, uint64_t counts[2])
{
	struct ipc_dl_req r;
	struct ipc_dead_letter d;
	struct client_reply cr;
	struct ipc_out o;
	const msgpack_object *list;
	const char *why;
	uint32_t n = 0, i;
	int st;

	memset(&r, 0, sizeof(r));
	r.action = (uint8_t)action;
	r.manager = ipc_cstr(mgr);
	r.command_id = ipc_cstr(cmd);
	ipc_dl_req_encode(rh_request(&o, EF_OP_DEAD_LETTERS), &r);
	st = rh_call(&h.runner, &o, &cr);
	if (st != EF_S_OK) {
		client_reply_free(&cr);
		return -st;
	}
	if (action == EF_DL_LIST) {
		cr_assert(
		    ipc_dl_list_decode(cr.in.body, &list, &n, &why) == 0);
		for (i = 0; i < n && (int)i < max; i++) {
			cr_assert(
			    ipc_dead_letter_decode(&list->via.array.ptr[i], &d,
			        &why) == 0);
			snprintf(out[i].cmd, sizeof(out[i].cmd), "%.*s",
			    (int)d.command_id.len, d.command_id.ptr);
			snprintf(out[i].target, sizeof(out[i].target),
			    "%.*s %.*s/%.*s", (int)d.type.len, d.type.ptr,
			    (int)d.aggregate_type.len, d.aggregate_type.ptr,
			    (int)d.instance_id.len, d.instance_id.ptr);
			snprintf(out[i].error, sizeof(out[i].error), "%.*s",
			    (int)d.error.len, d.error.ptr);
			out[i].attempts = d.attempts;
		}
	} else
		cr_assert(ipc_counts_decode(cr.in.body, counts,
		              action == EF_DL_RETRY ? 2 : 1, &why) == 0);
	client_reply_free(&cr);
	return (int)n;
}

static bool
shipment_created(const char *id)
{
	char *state;
	bool r;

	cr_assert_eq(rh_state(&h, "shipment", id, &state, NULL, NULL),
	    EF_S_OK);
	r = strstr(state, "\"created\":true") != NULL;
	free(state);
	return r;
}

Test(procmgr, dead_letter_retry_and_drop, .init = up, .fini = rh_fini)
{
	/* aggregate, instance, command, payload */
	static const char *const orders[][4] = {
		/* the happy path */
		{ "order", "o-1", "Place", "{\"address\":\"1 Main St\"}" },
		/* two orders whose shipments are on hold */
		{ "shipment", "o-2", "Hold",
		    "{\"reason\":\"address check\"}" },
		{ "shipment", "o-3", "Hold", "{\"reason\":\"fraud check\"}" },
		{ "order", "o-2", "Place", "{\"address\":\"2 Main St\"}" },
		{ "order", "o-3", "Place", "{\"address\":\"3 Main St\"}" },
		/* and a later one, which must not wait for them */
		{ "order", "o-4", "Place", "{\"address\":\"4 Main St\"}" },
	};
	struct dl d[4];
	struct rh_fold f;
	uint64_t counts[2], head;
	char msg[1024];
	int i;

	for (i = 0; i < (int)(sizeof(orders) / sizeof(orders[0])); i++)
		cr_assert_eq(rh_exec(&h, orders[i][0], orders[i][1],
		                 orders[i][2], orders[i][3], NULL, NULL, msg,
		                 sizeof(msg)),
		    EF_S_OK, "%s %s: %s", orders[i][0], orders[i][1], msg);
	head = rh_head(&h);
	cr_assert(rh_wait_fold(&h, "order_shipping", head, 10000));
	cr_assert(shipment_created("o-1"));
	cr_assert(shipment_created("o-4"));
	cr_assert(!shipment_created("o-2"));
	cr_assert_eq(dead_letters(EF_DL_LIST, NULL, NULL, d, 4, NULL), 2);
	cr_assert(strstr(d[0].error, "on hold") != NULL, "%s", d[0].error);
	cr_assert_eq(d[0].attempts, 3);
	cr_assert(strstr(d[0].cmd, "pm:order_shipping:") == d[0].cmd);
	cr_assert(strstr(d[0].target, "Create shipment/o-") != NULL);
	cr_assert_eq(rh_fold(&h, "order_shipping", &f), EF_S_OK);
	cr_assert_eq(f.dead_letters, 2);
	cr_assert(!f.has_error);
	/* retry while still on hold: kept, attempts + 1 */
	for (i = 0; i < 2; i++)
		if (strstr(d[i].error, "address check"))
			break;
	cr_assert(i < 2);
	cr_assert_eq(dead_letters(EF_DL_RETRY, "order_shipping", d[i].cmd,
	                 NULL, 0, counts),
	    0);
	cr_assert(counts[0] == 0 && counts[1] == 1);
	/* fix the cause, retry: applied */
	cr_assert_eq(rh_exec(&h, "shipment", "o-2", "Release", NULL, NULL,
	                 NULL, NULL, 0),
	    EF_S_OK);
	cr_assert_eq(dead_letters(EF_DL_RETRY, "order_shipping", d[i].cmd,
	                 NULL, 0, counts),
	    0);
	cr_assert(counts[0] == 1 && counts[1] == 0);
	cr_assert(shipment_created("o-2"));
	/* a retry of what was done is gone: NOT_FOUND */
	cr_assert_eq(dead_letters(EF_DL_RETRY, "order_shipping", d[i].cmd,
	                 NULL, 0, counts),
	    -EF_S_NOT_FOUND);
	/* drop the other */
	cr_assert_eq(dead_letters(EF_DL_LIST, "order_shipping", NULL, d, 4,
	                 NULL),
	    1);
	cr_assert_eq(dead_letters(EF_DL_DROP, "order_shipping", d[0].cmd, NULL,
	                 0, counts),
	    0);
	cr_assert_eq(counts[0], 1);
	cr_assert_eq(dead_letters(EF_DL_LIST, NULL, NULL, d, 4, NULL), 0);
	cr_assert(!shipment_created("o-3"));
	/* unknown manager */
	cr_assert_eq(dead_letters(EF_DL_LIST, "nosuch", NULL, d, 4, NULL),
	    -EF_S_NOT_FOUND);
}
