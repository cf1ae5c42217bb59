/* SPDX-License-Identifier: MIT */
/*
 * uuid.h - UUIDs as 16 raw bytes; parse every textual form EventfoldDB
 * accepts, print one.
 *
 * Accepted: hyphenated "67e55044-10b1-426f-9247-bb680e5fe0c8", simple
 * (32 hex digits), braced "{...hyphenated...}" and "urn:uuid:..."; hex
 * digits and the urn prefix in any case. Printed: lowercase hyphenated.
 */
#ifndef EF_UUID_H
#define EF_UUID_H

#include <stddef.h>
#include <stdint.h>

#define UUID_LEN     16
#define UUID_STR_LEN 37 /* 36 characters and the NUL */

/*
 * Parses s (len bytes, need not be NUL-terminated) into out.
 * Returns 0, or -1 if s is not a UUID in an accepted form.
 */
int uuid_parse(const char *s, size_t len, uint8_t out[UUID_LEN]);

/* Writes the lowercase hyphenated form and a NUL into out; returns out. */
char *uuid_format(const uint8_t u[UUID_LEN], char out[UUID_STR_LEN]);

/* Fills u with a random (version 4) UUID from getrandom(2). */
void uuid_random(uint8_t u[UUID_LEN]);

#endif
