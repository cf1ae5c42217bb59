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

struct seg_ent {
	uint64_t base;
	uint8_t archived;
};

static int
ent_cmp(const void *a, const void *b)
{
	const struct seg_ent *x = a, *y = b;

	if (x->base != y->base)
		return x->base < y->base ? -1 : 1;
	return (int)x->archived - (int)y->archived;
}

int
segfile_list_all(const char *dir, uint64_t **bases, uint8_t **archived,
    size_t *n)
{
	char name[SEGFILE_NAME_MAX + 8];
	struct seg_ent *v = NULL, *nv;
	struct dirent *de;
	uint64_t base, *ob = NULL;
	uint8_t *oa = NULL, arc;
	size_t cnt = 0, cap = 0, i, k, len, zl = strlen(SEGFILE_ZST_SUFFIX);
	DIR *d;
	int rc = 0;

	*bases = NULL;
	*archived = NULL;
	*n = 0;
	if ((d = opendir(dir)) == NULL)
		return -errno;
	while ((errno = 0, de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		arc = 0;
		if (len > zl && len - zl < sizeof(name) &&
		    strcmp(de->d_name + len - zl, SEGFILE_ZST_SUFFIX) == 0) {
			memcpy(name, de->d_name, len - zl);
			name[len - zl] = '\0';
			arc = 1;
		} else if (len < sizeof(name))
			memcpy(name, de->d_name, len + 1);
		else
			continue;
		if (segfile_parse(name, &base) != 0)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				rc = -ENOMEM;
				goto fail;
			}
			v = nv;
		}
		v[cnt].base = base;
		v[cnt++].archived = arc;
	}
	if (errno != 0) {
		rc = -errno;
		goto fail;
	}
	qsort(v, cnt, sizeof(*v), ent_cmp);
	if ((ob = calloc(cnt ? cnt : 1, sizeof(*ob))) == NULL ||
	    (oa = calloc(cnt ? cnt : 1, 1)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	/* a plain segment and its archive: the plain one is listed */
	for (i = 0, k = 0; i < cnt; i++) {
		if (k > 0 && ob[k - 1] == v[i].base)
			continue;
		ob[k] = v[i].base;
		oa[k++] = v[i].archived;
	}
	closedir(d);
	free(v);
	*bases = ob;
	*archived = oa;
	*n = k;
	return 0;
fail:
	closedir(d);
	free(v);
	free(ob);
	free(oa);
	return rc;
}

/* The plain segments only: segfile_list_all's entries not archived. */
int
segfile_list(const char *dir, uint64_t **bases, size_t *n)
{
	uint8_t *arc;
	size_t i, k = 0;
	int rc;

	if ((rc = segfile_list_all(dir, bases, &arc, n)) != 0)
		return rc;
	for (i = 0; i < *n; i++)
		if (!arc[i])
			(*bases)[k++] = (*bases)[i];
	free(arc);
	*n = k;
	return 0;
}
