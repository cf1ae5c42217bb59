/* SPDX-License-Identifier: MIT */
/*
 * dup_name.c - a plugin named like the counter example: refused.
 */
#include <eventfold/plugin.h>

static int
dup_init(const struct efp_host *h, struct efp_registry *reg)
{
	(void)h;
	(void)reg;
	return EFP_OK;
}

EFP_PLUGIN("counter", "9.9", dup_init, NULL);
