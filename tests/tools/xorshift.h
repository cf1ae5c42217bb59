/* SPDX-License-Identifier: MIT */
/*
 * xorshift.h - the tests' reproducible pseudo-random numbers
 * (Marsaglia's xorshift64, shifts 13, 7, 17): the same seed gives the
 * same sequence on every run, so a failing case can be run again. The
 * caller keeps the state (any nonzero seed).
 */
#ifndef EF_TEST_XORSHIFT_H
#define EF_TEST_XORSHIFT_H

#include <stdint.h>

/* The next number of the sequence in *state. */
static inline uint64_t
xorshift64(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

#endif
