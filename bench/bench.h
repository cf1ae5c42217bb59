/* SPDX-License-Identifier: MIT */
/*
 * bench.h - shared parts of eventfold-bench: the eventfold-stored the
 * bench starts and stops (server.c); the helpers every bench program
 * shares are in util.h.
 *
 * Caveats: server.c keeps one temp root and one running server per
 * process, removed and stopped by server_cleanup() (also at exit).
 */
#ifndef EF_BENCH_H
#define EF_BENCH_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc.h"
#include "util.h"

/* A stored started by the bench. */
struct server {
	pid_t pid;
	char data_dir[PATH_MAX];
	char runtime_dir[PATH_MAX];
	char log[PATH_MAX];
	char url[PATH_MAX + 32];
	const char *segment_size; /* --segment-size for stored, or NULL */
	const char *extra[8];     /* more flags for stored, NULL-ended */
};

/* server.c */
/*
 * Picks the eventfold-stored to run: given, else the one of this build
 * tree (../daemons/stored/ from this program), next to it, in ../sbin,
 * or "eventfold-stored" from PATH.
 */
void server_find_stored(const char *given);
/*
 * Sets up s: its data dir (data_dir, or NAME-data under the temp root,
 * created on first use) and a runtime dir of its own. Starts nothing.
 */
void server_init(struct server *s, const char *name, const char *data_dir);
/*
 * Starts stored on s's directories and waits (up to 300 s) until it
 * answers STATUS, filled into *st if st is set. 0, or -1 after printing
 * why (its log included) with nothing left running.
 */
int server_start(struct server *s, struct ipc_status_rep *st);
/* SIGTERM, up to 30 s, then SIGKILL. Accepts NULL or a stopped s. */
void server_stop(struct server *s);
/* Stops the running server and removes the temp root. Idempotent. */
void server_cleanup(void);

#endif
