/* SPDX-License-Identifier: MIT */
/*
 * grow.c - the growth step of the daemons' byte buffers (grow.h).
 */
#include <stdlib.h>

#include "grow.h"
#include "log.h"

void *
mem_grow(void *p, size_t *cap, size_t need, size_t first)
{
	size_t ncap = *cap ? *cap : first;

	while (ncap < need)
		ncap *= 2;
	if ((p = realloc(p, ncap)) == NULL)
		fatal("realloc");
	*cap = ncap;
	return p;
}
