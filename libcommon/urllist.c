/* SPDX-License-Identifier: MIT */
/*
 * urllist.c - see urllist.h.
 */
#include <stdlib.h>
#include <string.h>

#include "urllist.h"

int
urllist_split(const char *s, char ***out)
{
	size_t len = strlen(s), n = 1, i;
	char **v, *copy, *p, *item, *end;
	int k = 0;

	for (i = 0; i < len; i++)
		if (s[i] == ',')
			n++;
	/* the pointers, then the copy of s, in one block */
	if ((v = malloc((n + 1) * sizeof(*v) + len + 1)) == NULL)
		return -1;
	copy = (char *)(v + n + 1);
	memcpy(copy, s, len + 1);
	for (p = copy; p != NULL; p = end) {
		item = p;
		if ((end = strchr(p, ',')) != NULL)
			*end++ = '\0';
		while (*item == ' ' || *item == '\t')
			item++;
		i = strlen(item);
		while (i > 0 && (item[i - 1] == ' ' || item[i - 1] == '\t'))
			item[--i] = '\0';
		if (*item != '\0')
			v[k++] = item;
	}
	v[k] = NULL;
	*out = v;
	return k;
}

void
urllist_free(char **list)
{
	free(list);
}
