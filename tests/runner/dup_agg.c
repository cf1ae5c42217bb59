/* SPDX-License-Identifier: MIT */
/*
 * dup_agg.c - a plugin registering aggregate type "counter" again: its
 * init() gets EFP_EEXIST and the plugin is refused.
 */
#include <eventfold/plugin.h>

static int
a_apply(struct efp_ctx *c, const void *s, size_t l, const struct efp_event *e)
{
	(void)c, (void)s, (void)l, (void)e;
	return EFP_OK;
}

static int
a_handle(struct efp_ctx *c, const void *s, size_t l,
    const struct efp_command *m)
{
	(void)c, (void)s, (void)l, (void)m;
	return EFP_OK;
}

static const struct efp_aggregate agg = { "counter", 1, NULL, 0, a_apply,
	a_handle };

static int
dup_init(const struct efp_host *h, struct efp_registry *reg)
{
	return h->register_aggregate(reg, &agg);
}

EFP_PLUGIN("dupagg", "1", dup_init, NULL);
