/* SPDX-License-Identifier: MIT */
/*
 * bgthread.h - the start, wake-up and stop of eventfold-stored's
 * background threads (indexer.c, archiver.c, writer.c): one thread, the
 * lock and condition it waits on, and its exit flag.
 *
 * The thread waits on cv under mu in a loop that rechecks its work and
 * `exit`; bgthread_wake() and bgthread_stop() broadcast on cv under mu,
 * so a waiter that is not the thread (an ARCHIVE request) is woken too.
 */
#ifndef EF_STORED_BGTHREAD_H
#define EF_STORED_BGTHREAD_H

#include <pthread.h>

struct bgthread {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int exit;    /* set under mu by bgthread_stop(): finish and return */
	int running; /* between a successful start and the stop */
};

/* Initialises t's lock and condition and starts main(arg) on a new
 * thread. 0 or a negative errno. */
int bgthread_start(struct bgthread *t, void *(*main)(void *), void *arg);
/* Wakes the thread (and every other waiter on cv); nothing if it is not
 * running. */
void bgthread_wake(struct bgthread *t);
/* Sets exit, wakes the thread and joins it; nothing if it is not
 * running. */
void bgthread_stop(struct bgthread *t);

#endif
