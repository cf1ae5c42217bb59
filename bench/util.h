/* SPDX-License-Identifier: MIT */
/*
 * util.h - what the bench programs share (util.c): clocks and sleeps
 * that give way to a signal, a cheap generator of random ids, latency
 * samples and their percentiles, and what /proc says about a process.
 * Every bench program links util.c; none of this starts or talks to a
 * daemon.
 */
#ifndef EF_BENCH_UTIL_H
#define EF_BENCH_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "uuid.h"

/* Set by the SIGINT/SIGTERM handler of a program that installs one
 * (eventfold-bench): its loops check it, and the sleeps end early. */
extern volatile sig_atomic_t interrupted;

/* Latency samples in microseconds. */
struct lat {
	double *v;
	size_t n, cap;
};

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
 * samples (sorts l), the largest for p = 1; 0 with no samples. */
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

#endif
