/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - small helpers that tests of every suite share (unit,
 * integration, runner), header-only so that each test program takes
 * what it uses:
 *   - reproducible pseudo-random numbers (Marsaglia's xorshift64,
 *     shifts 13, 7, 17): the same seed gives the same sequence on every
 *     run, so a failing case can be run again; the caller keeps the
 *     state (any nonzero seed);
 *   - counting the occurrences of a string in a text (a daemon's log).
 */
#ifndef EF_TEST_TESTUTIL_H
#define EF_TEST_TESTUTIL_H

#include <stdint.h>
#include <string.h>

/* The next number of the sequence in *state. */
static inline uint64_t
xorshift64(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* How many times needle occurs in s (0 if s is NULL), not overlapping. */
static inline int
count_substr(const char *s, const char *needle)
{
	int n = 0;

	while (s != NULL && (s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return n;
}

#endif
