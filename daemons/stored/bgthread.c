/* SPDX-License-Identifier: MIT */
/*
 * bgthread.c - start, wake and stop a background thread of stored
 * (bgthread.h).
 */
#include <pthread.h>

#include "bgthread.h"

int
bgthread_start(struct bgthread *t, void *(*main)(void *), void *arg)
{
	int rc;

	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	if ((rc = pthread_create(&t->thread, NULL, main, arg)) != 0)
		return -rc;
	t->running = 1;
	return 0;
}

void
bgthread_wake(struct bgthread *t)
{
	if (!t->running)
		return;
	pthread_mutex_lock(&t->mu);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

void
bgthread_stop(struct bgthread *t)
{
	if (!t->running)
		return;
	pthread_mutex_lock(&t->mu);
	t->exit = 1;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->thread, NULL);
	t->running = 0;
}
