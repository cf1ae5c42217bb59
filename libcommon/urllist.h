/* SPDX-License-Identifier: MIT */
/*
 * urllist.h - a comma-separated list of URLs, as a setting writes it
 * ("nats://a:4222, nats://b:4222"), split into its items.
 */
#ifndef EF_URLLIST_H
#define EF_URLLIST_H

#include <stddef.h>

/*
 * Splits s at commas, dropping blanks around items and empty items.
 * Returns the count (0 for none) and, in *out, a malloc'd array of
 * pointers into one malloc'd block: free with urllist_free(*out). -1 if
 * out of memory.
 */
int urllist_split(const char *s, char ***out);
void urllist_free(char **list);

#endif
