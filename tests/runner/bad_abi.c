/* SPDX-License-Identifier: MIT */
/*
 * bad_abi.c - a plugin that claims another ABI version: refused.
 */
#include <eventfold/plugin.h>

static int
bad_init(const struct efp_host *h, struct efp_registry *reg)
{
	(void)h;
	(void)reg;
	return EFP_OK;
}

__attribute__((visibility("default")))
const struct efp_plugin_info eventfold_plugin_info = { 19700101u,
	sizeof(struct efp_plugin_info), "bad_abi", "0", bad_init, NULL };
