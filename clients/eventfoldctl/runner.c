/* SPDX-License-Identifier: MIT */
/*
 * runner.c - eventfoldctl's commands for eventfold-runnerd.
 */
#include "ctl.h"

const struct ctl_cmd ctl_runner_cmds[] = {
	{ NULL, NULL, NULL },
};
