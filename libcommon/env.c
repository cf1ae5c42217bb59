/* SPDX-License-Identifier: MIT */
/*
 * env.c - EventfoldDB's environment variables (see env.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env.h"
#include "log.h"

char **
env_argv(const struct env_flag *tab, int argc, char **argv, int *nargc)
{
	char **av;
	const char *v;
	size_t i, nenv = 0;
	int n = 0, j;

	for (i = 0; tab[i].env != NULL; i++)
		nenv++;
	if ((av = calloc((size_t)argc + 2 * nenv + 1, sizeof(*av))) == NULL)
		fatal("calloc");
	av[n++] = argv[0];
	for (i = 0; i < nenv; i++)
		if ((v = getenv(tab[i].env)) != NULL) {
			av[n++] = (char *)tab[i].flag;
			av[n++] = (char *)v;
		}
	for (j = 1; j < argc; j++)
		av[n++] = argv[j];
	av[n] = NULL;
	*nargc = n;
	return av;
}

/* The format version of an EventfoldDB file at fd, or -1 if it is not
 * one (the header: "EFDB", u32 little-endian version). */
static long
efdb_version(int fd)
{
	unsigned char h[8];

	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h, "EFDB", 4) != 0)
		return -1;
	return (long)((uint32_t)h[4] | (uint32_t)h[5] << 8 |
	    (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24);
}

int
env_data_dir(const char *runtime_dir, const char **dir, char *err,
    size_t errlen)
{
	const char *v = getenv("EVENTFOLD_DATA");
	static char abs[PATH_MAX];
	struct stat st;
	long version;
	int fd;

	*dir = NULL;
	if (v == NULL || *v == '\0')
		return 0;
	if (stat(v, &st) != 0) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "EVENTFOLD_DATA=%s: %s", v,
			    strerror(errno));
			return -1;
		}
		*dir = v; /* a new store: created there as a directory */
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		*dir = v;
		return 0;
	}
	version = -1;
	if ((fd = open(v, O_RDONLY | O_CLOEXEC)) >= 0) {
		version = efdb_version(fd);
		close(fd);
	}
	if (version < 0) {
		snprintf(err, errlen,
		    "EVENTFOLD_DATA=%s is a file, and not an "
		    "EventfoldDB data file: eventfold keeps its log in a data "
		    "directory; point EVENTFOLD_DATA (or --data-dir) at one",
		    v);
		return -1;
	}
	if (realpath(v, abs) != NULL)
		v = abs; /* the command must work from any directory */
	snprintf(err, errlen,
	    "EVENTFOLD_DATA=%s is an EventfoldDB data file "
	    "(format version %ld)%s; eventfold keeps its log in a data "
	    "directory and does not open that file. Point EVENTFOLD_DATA "
	    "(or --data-dir) at a new directory, start eventfold, then "
	    "import the file with:\n"
	    "    eventfoldctl --runtime-dir %s import %s",
	    v, version,
	    version == 3 ? "" :
	                   ", which EventfoldDB itself "
	                   "refuses: only version 3 imports",
	    runtime_dir, v);
	return -1;
}
