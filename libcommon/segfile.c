/* SPDX-License-Identifier: MIT */
/*
 * segfile.c - segment file names and listing (see segfile.h).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segfile.h"

char *
segfile_name(char *buf, size_t len, uint64_t base)
{
	snprintf(buf, len, SEGFILE_PREFIX "%020" PRIu64 SEGFILE_SUFFIX, base);
	return buf;
}

int
segfile_parse(const char *name, uint64_t *base)
{
	const char *p = name + strlen(SEGFILE_PREFIX);
	uint64_t v = 0;
	int i;

	if (strncmp(name, SEGFILE_PREFIX, strlen(SEGFILE_PREFIX)) != 0)
		return -1;
	for (i = 0; i < 20; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (strcmp(p + 20, SEGFILE_SUFFIX) != 0)
		return -1;
	*base = v;
	return 0;
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int
segfile_list(const char *dir, uint64_t **bases, size_t *n)
{
	struct dirent *de;
	uint64_t *v = NULL, *nv, base;
	size_t cnt = 0, cap = 0;
	DIR *d;
	int rc = 0;

	*bases = NULL;
	*n = 0;
	if ((d = opendir(dir)) == NULL)
		return -errno;
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (segfile_parse(de->d_name, &base) != 0)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				rc = -ENOMEM;
				goto fail;
			}
			v = nv;
		}
		v[cnt++] = base;
	}
	if (errno != 0) {
		rc = -errno;
		goto fail;
	}
	closedir(d);
	qsort(v, cnt, sizeof(*v), u64_cmp);
	*bases = v;
	*n = cnt;
	return 0;
fail:
	closedir(d);
	free(v);
	return rc;
}
