/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - shared state of eventfoldctl's commands.
 *
 * Exit codes (documented in eventfoldctl(8)):
 *   0 success; 1 usage error; 2 daemon unreachable or not answering;
 *   3 request refused (validation, wrong expected version, rejection);
 *   4 not found; 5 data corruption; 6 internal or protocol error.
 */
#ifndef EF_CTL_H
#define EF_CTL_H

#include <stdint.h>

#include "client.h"

#define CTL_OK          0
#define CTL_USAGE       1
#define CTL_UNAVAILABLE 2
#define CTL_REFUSED     3
#define CTL_NOT_FOUND   4
#define CTL_CORRUPT     5
#define CTL_INTERNAL    6

struct ctl_conf {
	char *runtime_dir;
	char *data_dir;
	char *store_url;
	char *events_url;
	char *runner_url;
	uint64_t timeout_ms;
};

struct ctl {
	struct ctl_conf conf;
	int json;
	char store_url[4200];
	char events_url[4200];
	char runner_url[4200];
};

struct ctl_cmd {
	const char *name;
	int (*fn)(struct ctl *, int argc, char **argv);
	const char *usage;
};

/* Command tables: store commands (store.c), runner commands (runner.c). */
extern const struct ctl_cmd ctl_store_cmds[];
extern const struct ctl_cmd ctl_runner_cmds[];
/* backup, export, import (backup.c, ...) */
extern const struct ctl_cmd ctl_data_cmds[];

/* Prints "eventfoldctl: msg" to stderr and returns code. */
int ctl_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Maps a reply status to an exit code and prints its message. */
int ctl_status_exit(int status, const struct ipc_str *msg);
/* Reads all of stdin (at most about max bytes) into a malloc'd buffer;
 * NULL on error or if it is larger. */
uint8_t *ctl_read_stdin(size_t *len, size_t max);
/* Parses a non-negative integer argument; -1 if it is not one. */
int ctl_parse_u64(const char *s, uint64_t *v);

/* output.c */
void out_event(const struct ctl *c, const struct ef_event *ev);
void out_event_header(const struct ctl *c);

#endif
