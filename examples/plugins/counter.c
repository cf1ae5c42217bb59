/* SPDX-License-Identifier: MIT */
/*
 * counter.c - the smallest useful plugin: aggregate "counter" (commands
 * Increment, with an optional {"by": N}, and Decrement, refused at
 * zero), events as eventfold-es's counter example writes them
 * (Incremented and Decremented with a null payload, Added {"amount"}),
 * and projection "counters" (key: instance id, value: the count in
 * decimal). State: the count as 8 little-endian bytes, to show that
 * state is whatever bytes the plugin chooses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <eventfold/plugin.h>

static const struct efp_host *host;

static int64_t
get_count(const void *state, size_t len)
{
	const uint8_t *p = state;
	uint64_t v = 0;
	int i;

	if (len != 8)
		return 0;
	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return (int64_t)v;
}

static int
put_count(struct efp_ctx *ctx, int64_t n)
{
	uint8_t p[8];
	uint64_t v = (uint64_t)n;
	int i;

	for (i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
	return host->set_state(ctx, p, sizeof(p));
}

/* The amount of an event: +1, -1, +amount, or 0 for others. */
static int64_t
delta(const struct efp_event *ev)
{
	json_t *p;
	int64_t n;

	if (!strcmp(ev->type, "Incremented"))
		return 1;
	if (!strcmp(ev->type, "Decremented"))
		return -1;
	if (strcmp(ev->type, "Added") != 0)
		return 0;
	p = json_loadb((const char *)ev->payload, ev->payload_len, 0, NULL);
	n = json_integer_value(json_object_get(p, "amount"));
	json_decref(p);
	return n;
}

static int
counter_apply(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_event *ev)
{
	int64_t d = delta(ev);

	return d == 0 ? EFP_OK : put_count(ctx, get_count(state, len) + d);
}

static int
counter_handle(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_command *cmd)
{
	char buf[64];
	json_t *p;
	json_int_t by = 1;

	if (!strcmp(cmd->type, "Increment")) {
		p = json_loadb((const char *)cmd->payload, cmd->payload_len,
		    JSON_DECODE_ANY, NULL);
		if (json_is_integer(json_object_get(p, "by")))
			by = json_integer_value(json_object_get(p, "by"));
		json_decref(p);
		if (by <= 0)
			return host->reject(ctx, "\"by\" must be positive");
		if (by == 1)
			return host->emit(ctx, "Incremented", NULL, 0);
		snprintf(buf, sizeof(buf), "{\"amount\":%lld}", (long long)by);
		return host->emit(ctx, "Added", buf, strlen(buf));
	}
	if (!strcmp(cmd->type, "Decrement")) {
		if (get_count(state, len) <= 0)
			return host->reject(ctx, "counter is at zero");
		return host->emit(ctx, "Decremented", NULL, 0);
	}
	return host->reject(ctx, "unknown command (Increment, Decrement)");
}

static const struct efp_aggregate counter_aggregate = {
	.type = "counter",
	.state_version = 1,
	.apply = counter_apply,
	.handle = counter_handle,
};

static int
counters_apply(struct efp_ctx *ctx, const struct efp_event *ev)
{
	const char *id = ev->instance_id;
	const void *v;
	size_t vlen;
	char buf[32];
	long long n = 0;
	int64_t d;
	int rc;

	if (ev->aggregate_type == NULL ||
	    strcmp(ev->aggregate_type, "counter") != 0 || (d = delta(ev)) == 0)
		return EFP_OK;
	rc = host->kv_get(ctx, id, strlen(id), &v, &vlen);
	if (rc == EFP_OK && vlen < sizeof(buf)) {
		memcpy(buf, v, vlen);
		buf[vlen] = '\0';
		n = strtoll(buf, NULL, 10);
	} else if (rc != EFP_OK && rc != EFP_ENOTFOUND)
		return rc;
	snprintf(buf, sizeof(buf), "%lld", n + (long long)d);
	return host->kv_put(ctx, id, strlen(id), buf, strlen(buf));
}

static const struct efp_projection counters = {
	.name = "counters",
	.apply = counters_apply,
};

static int
counter_init(const struct efp_host *h, struct efp_registry *reg)
{
	int rc;

	host = h;
	if ((rc = h->register_aggregate(reg, &counter_aggregate)) != EFP_OK)
		return rc;
	return h->register_projection(reg, &counters);
}

EFP_PLUGIN("counter", "1.0", counter_init, NULL);
