/* SPDX-License-Identifier: MIT */
/*
 * crashpoint.c - see crashpoint.h. Test builds only.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crashpoint.h"

#ifdef EF_CRASHPOINTS
void
crashpoint(const char *name)
{
	static unsigned long hits;
	const char *want = getenv("EVENTFOLD_CRASHPOINT");
	size_t n = strlen(name);
	unsigned long nth = 1;

	if (want == NULL || strncmp(want, name, n) != 0)
		return;
	if (want[n] == ':')
		nth = strtoul(want + n + 1, NULL, 10);
	else if (want[n] != '\0')
		return;
	/* one counter is enough: a process is told of one point */
	if (++hits < nth)
		return;
	(void)!write(STDERR_FILENO, "<2>crashpoint: ", 15);
	(void)!write(STDERR_FILENO, name, n);
	(void)!write(STDERR_FILENO, "\n", 1);
	raise(SIGKILL);
	_exit(137);
}
#endif
