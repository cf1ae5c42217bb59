/* SPDX-License-Identifier: MIT */
/*
 * hostport.c - see hostport.h.
 */
#include <stdio.h>
#include <string.h>

#include "hostport.h"

int
hostport_split(const char *s, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	const char *colon;

	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		snprintf(host, hostlen, "%.*s", (int)(end - s - 1), s + 1);
		snprintf(port, portlen, "%s", end + 2);
		return 0;
	}
	if ((colon = strrchr(s, ':')) == NULL)
		return -1;
	snprintf(host, hostlen, "%.*s", (int)(colon - s), s);
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}
