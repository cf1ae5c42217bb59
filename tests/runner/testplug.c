/* SPDX-License-Identifier: MIT */
/*
 * testplug.c - a plugin for the runner tests: aggregate "slow" (its
 * handle sleeps, to let a test append behind its back), projection
 * "strict" (fails unless every event arrives exactly once and in
 * order), projection "poisoned" (fails at events of type Poison),
 * projection "bulky" (each Bulky event stores BULKY_BYTES under its
 * position, to fill an LMDB map fast) and process manager "tally" (each
 * Tick of aggregate "ticker" increments counter "tally-N", N = position
 * % 4).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <eventfold/plugin.h>

static const struct efp_host *host;

static long long
num(const void *p, size_t len)
{
	char buf[32];

	if (p == NULL || len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return strtoll(buf, NULL, 10);
}

static int
slow_apply(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_event *ev)
{
	char buf[32];

	if (strcmp(ev->type, "Incremented") != 0)
		return EFP_OK;
	snprintf(buf, sizeof(buf), "%lld", num(state, len) + 1);
	return host->set_state(ctx, buf, strlen(buf));
}

static int
slow_handle(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_command *cmd)
{
	const char *p;
	struct timespec ts;
	long ms = 0;

	(void)state;
	(void)len;
	if (cmd->payload_len > 0 &&
	    (p = memchr(cmd->payload, ':', cmd->payload_len)) != NULL)
		ms = strtol(p + 1, NULL, 10);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	if (!strcmp(cmd->type, "Fail")) {
		host->fail(ctx, "slow: asked to fail");
		return EFP_ERROR;
	}
	return host->emit(ctx, "Incremented", NULL, 0);
}

static const struct efp_aggregate slow = {
	.type = "slow",
	.state_version = 1,
	.initial_state = "0",
	.initial_len = 1,
	.apply = slow_apply,
	.handle = slow_handle,
};

static int
strict_apply(struct efp_ctx *ctx, const struct efp_event *ev)
{
	const void *v;
	size_t vlen;
	long long next = 0;
	char buf[64];
	int rc;

	rc = host->kv_get(ctx, "next", 4, &v, &vlen);
	if (rc == EFP_OK)
		next = num(v, vlen);
	else if (rc != EFP_ENOTFOUND)
		return rc;
	if ((unsigned long long)next != ev->global_position) {
		snprintf(buf, sizeof(buf), "expected position %lld, got %llu",
		    next, (unsigned long long)ev->global_position);
		host->fail(ctx, buf);
		return EFP_ERROR;
	}
	snprintf(buf, sizeof(buf), "%llu",
	    (unsigned long long)ev->global_position + 1);
	return host->kv_put(ctx, "next", 4, buf, strlen(buf));
}

static int
poisoned_apply(struct efp_ctx *ctx, const struct efp_event *ev)
{
	const void *v;
	size_t vlen;
	char buf[32];

	if (!strcmp(ev->type, "Poison")) {
		host->fail(ctx, "poison pill");
		return EFP_ERROR;
	}
	if (host->kv_get(ctx, "count", 5, &v, &vlen) != EFP_OK)
		vlen = 0;
	snprintf(buf, sizeof(buf), "%lld", num(vlen ? v : NULL, vlen) + 1);
	return host->kv_put(ctx, "count", 5, buf, strlen(buf));
}

#define BULKY_BYTES 8192

/* Key "b-%08llu" (position), value BULKY_BYTES of 'a' + position % 26. */
static int
bulky_apply(struct efp_ctx *ctx, const struct efp_event *ev)
{
	static __thread char val[BULKY_BYTES];
	char key[32];
	int klen;

	if (strcmp(ev->type, "Bulky") != 0)
		return EFP_OK;
	klen = snprintf(key, sizeof(key), "b-%08llu",
	    (unsigned long long)ev->global_position);
	memset(val, 'a' + (int)(ev->global_position % 26), sizeof(val));
	return host->kv_put(ctx, key, (size_t)klen, val, sizeof(val));
}

static int
tally_react(struct efp_ctx *ctx, const struct efp_event *ev)
{
	char inst[32];

	if (ev->aggregate_type == NULL ||
	    strcmp(ev->aggregate_type, "ticker") != 0 ||
	    strcmp(ev->type, "Tick") != 0)
		return EFP_OK;
	snprintf(inst, sizeof(inst), "tally-%llu",
	    (unsigned long long)(ev->global_position % 4));
	return host->send(ctx, "counter", inst, "Increment", NULL, 0);
}

static const struct efp_projection strict = { "strict", strict_apply };
static const struct efp_projection poisoned = { "poisoned", poisoned_apply };
static const struct efp_projection bulky = { "bulky", bulky_apply };
static const struct efp_manager tally = { "tally", tally_react };

static int
test_init(const struct efp_host *h, struct efp_registry *reg)
{
	int rc;

	host = h;
	if ((rc = h->register_aggregate(reg, &slow)) != EFP_OK ||
	    (rc = h->register_projection(reg, &strict)) != EFP_OK ||
	    (rc = h->register_projection(reg, &poisoned)) != EFP_OK ||
	    (rc = h->register_projection(reg, &bulky)) != EFP_OK ||
	    (rc = h->register_manager(reg, &tally)) != EFP_OK)
		return rc;
	return EFP_OK;
}

EFP_PLUGIN("testplug", "0.1", test_init, NULL);
