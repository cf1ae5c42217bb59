/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the clocks in milliseconds, and absolute deadlines for
 * pthread_cond_timedwait(3), which takes a CLOCK_REALTIME time, not a
 * duration.
 */
#ifndef EF_CLOCK_H
#define EF_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in ms: for intervals and timeouts. */
uint64_t clock_mono_ms(void);

/* CLOCK_REALTIME in ms since the epoch: for timestamps people read. */
uint64_t clock_wall_ms(void);

/* *ts = now (CLOCK_REALTIME) + ms milliseconds. */
void clock_deadline_ms(struct timespec *ts, uint64_t ms);

/* *ts = now (CLOCK_REALTIME) + us microseconds. */
void clock_deadline_us(struct timespec *ts, uint64_t us);

/*
 * The wait of a thread that works every ms milliseconds until *stop is
 * set (under mu, cv signalled): with mu held, waits on cv (a default,
 * CLOCK_REALTIME one) for ms or until woken. Returns false, without
 * waiting if it is set already, once *stop is set: the thread ends.
 */
bool clock_nap(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms,
    const bool *stop);

#endif
