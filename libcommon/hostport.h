/* SPDX-License-Identifier: MIT */
/*
 * hostport.h - "host:port" as the daemons' listen settings write it.
 */
#ifndef EF_HOSTPORT_H
#define EF_HOSTPORT_H

#include <stddef.h>

/*
 * Splits "host:port", "[v6]:port" or ":port" into its parts (host ""
 * for the last). 0, or -1 if s has no port separator.
 */
int hostport_split(const char *s, char *host, size_t hostlen, char *port,
    size_t portlen);

#endif
