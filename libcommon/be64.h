/* SPDX-License-Identifier: MIT */
/*
 * be64.h - big-endian 64-bit integers in LMDB keys, where the byte
 * order must be the numeric order (stored's disk index, runnerd's
 * command ages). The little-endian helpers of the log are in record.h.
 */
#ifndef EF_BE64_H
#define EF_BE64_H

#include <stdint.h>

/* Writes v at p (8 bytes), most significant byte first. */
static inline void
put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* The value put_be64() wrote at p. */
static inline uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

#endif
