/* SPDX-License-Identifier: MIT */
/* clock.c - see clock.h. */
#include "clock.h"

static uint64_t
ms_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
clock_mono_ms(void)
{
	return ms_of(CLOCK_MONOTONIC);
}

uint64_t
clock_wall_ms(void)
{
	return ms_of(CLOCK_REALTIME);
}

void
clock_deadline_us(struct timespec *ts, uint64_t us)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += (time_t)(us / 1000000);
	ts->tv_nsec += (long)(us % 1000000) * 1000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

void
clock_deadline_ms(struct timespec *ts, uint64_t ms)
{
	clock_deadline_us(ts, ms > UINT64_MAX / 1000 ? UINT64_MAX : ms * 1000);
}

bool
clock_nap(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms,
    const bool *stop)
{
	struct timespec ts;

	if (__atomic_load_n(stop, __ATOMIC_RELAXED))
		return false;
	clock_deadline_ms(&ts, ms);
	pthread_cond_timedwait(cv, mu, &ts);
	return !__atomic_load_n(stop, __ATOMIC_RELAXED);
}
