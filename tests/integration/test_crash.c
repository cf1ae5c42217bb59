/* SPDX-License-Identifier: MIT */
/*
 * test_crash.c - kill -9 of a real eventfold-stored in the middle of a
 * 16-client append load, ten times over one data directory. After each
 * restart every acknowledged event must be at its acknowledged position
 * with its contents, positions and stream versions must be contiguous
 * and no event id may appear twice; then the appends that were in flight
 * when the daemon died are retried with the same ids and must succeed
 * (returning the original positions if they had been written).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "harness.h"

TestSuite(crash, .fini = h_cleanup, .timeout = 280);

static int
count_in_file(const char *path, const char *needle)
{
	char *buf = h_read_file(path, NULL), *p;
	int n = 0;

	if (buf == NULL)
		return 0;
	for (p = buf; (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(buf);
	return n;
}

Test(crash, kill9_during_load_ten_cycles)
{
	static struct h_load load;
	struct h_stored s;
	struct ef_client c;
	uint64_t head = 0, n, acked, pending;
	int cycle, st;
	uint32_t i;

	h_stored_init(&s, h_tmpdir(), NULL);
	h_load_init(&load, &s, 16, 100);
	for (cycle = 0; cycle <= 10; cycle++) {
		h_start(&s, &c);
		pending = 0;
		for (i = 0; i < load.nthreads; i++)
			pending += load.t[i].pending;
		head = h_load_survived(&load, &c, head, cycle);
		if (cycle == 10)
			break;

		acked = __atomic_load_n(&load.acked, __ATOMIC_RELAXED);
		h_load_start(&load);
		cr_assert_eq(h_load_wait_acked(&load, acked + 300, 30000), 0,
		    "cycle %d: the load does not get going", cycle);
		/* vary where in the load the kill lands: 0.3 .. 1.2 s */
		h_sleep_ms(300 + (cycle * 397) % 900);
		st = h_stored_stop(&s, SIGKILL, 10000);
		cr_assert(st != -1 && WIFSIGNALED(st) &&
		        WTERMSIG(st) == SIGKILL,
		    "cycle %d: wait status 0x%x", cycle, st);
		h_load_stop(&load);
		client_close(&c);
		fprintf(stderr,
		    "# cycle %d: %llu events acknowledged so far, "
		    "%llu appends were unanswered last time\n",
		    cycle,
		    (unsigned long long)__atomic_load_n(&load.acked,
		        __ATOMIC_RELAXED),
		    (unsigned long long)pending);
	}
	/* a clean stop after all that */
	n = h_load_verify(&load, &c);
	client_close(&c);
	st = h_stored_stop(&s, SIGTERM, 10000);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "SIGTERM: wait status 0x%x", st);
	fprintf(stderr,
	    "# %llu events in the log; recovery cut %d torn "
	    "tails\n",
	    (unsigned long long)n, count_in_file(s.log, "torn tail"));
	h_load_free(&load);
}
