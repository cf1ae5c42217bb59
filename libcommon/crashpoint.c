/* SPDX-License-Identifier: MIT */
/*
 * crashpoint.c - see crashpoint.h. Test builds only.
 */
#include <fcntl.h>
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

int
faultpoint(const char *name)
{
	static const char *path;
	static int looked;
	char buf[512];
	ssize_t n;
	int fd;

	if (!__atomic_load_n(&looked, __ATOMIC_ACQUIRE)) {
		path = getenv("EVENTFOLD_FAULT_FILE");
		__atomic_store_n(&looked, 1, __ATOMIC_RELEASE);
	}
	if (path == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, name) != NULL;
}
#endif
