/* SPDX-License-Identifier: MIT */
/*
 * bench.h - shared parts of eventfold-bench: the eventfold-stored the
 * bench starts and stops (server.c), and small helpers for clocks,
 * random ids, latency samples and /proc (util.c).
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
#include "uuid.h"

/* Set by SIGINT/SIGTERM; every loop of the bench checks it. */
extern volatile sig_atomic_t interrupted;

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

/* Latency samples in microseconds. */
struct lat {
	double *v;
	size_t n, cap;
};

/* util.c */
uint64_t now_ns(void);      /* CLOCK_MONOTONIC, ns */
void sleep_ms(unsigned ms); /* returns early on a signal */
void sleep_s(double s);
uint64_t splitmix64(uint64_t *state);
uint64_t seed(void); /* from getrandom(2) */
/* A random version 4 UUID as lowercase text, from *rng. */
void rand_uuid_str(uint64_t *rng, char out[UUID_STR_LEN]);

void lat_add(struct lat *l, double us);
void lat_merge(struct lat *into, const struct lat *from);
/* Percentile p (0..1) as the peers compute it: v[n * p] of the sorted
 * samples (sorts l); 0 with no samples. */
double lat_pct(struct lat *l, double p);
void lat_free(struct lat *l);

/* "1m", "250k", "1500": the short count used in case names; buf. */
const char *short_count(uint64_t n, char buf[32]);

/* A /proc/PID/status field ("VmRSS", "RssAnon") in bytes; 0 if absent. */
uint64_t proc_status_bytes(pid_t pid, const char *field);
/* CPU time (user + system) of pid, or of this process, in seconds;
 * proc_cpu_s returns -1 if unknown. */
double proc_cpu_s(pid_t pid);
double self_cpu_s(void);

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
