/* SPDX-License-Identifier: MIT */
/*
 * jsonplain.c - a fast, conservative test used by `eventfoldctl export`
 * (export.c) to skip jansson for payloads already in jansson's compact
 * form. On its own so that its unit test needs nothing else.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "jsonplain.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/*
 * The first byte from p on that is '"' or that a plain string may not
 * hold (a control byte, a byte >= 0x80, a backslash), or end. Eight
 * bytes at a time while none of them is one (payloads are mostly long
 * strings): a byte >= 0x80 has its high bit; one below 0x20, or equal
 * to '"' or '\\' once xored with it (then 0), borrows into it. With
 * SSE2 (every x86-64), sixteen at a time first: a byte >= 0x80 is
 * negative as a signed byte, so below 0x20 as well.
 */
static const uint8_t *
str_scan(const uint8_t *p, const uint8_t *end)
{
	uint64_t w, q, bs;

#ifdef __SSE2__
	const __m128i vq = _mm_set1_epi8('"'), vbs = _mm_set1_epi8('\\'),
	              vsp = _mm_set1_epi8(0x20);
	__m128i v;
	int m;

	while (end - p >= 16) {
		v = _mm_loadu_si128((const __m128i *)(const void *)p);
		m = _mm_movemask_epi8(
		    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, vq),
		                     _mm_cmpeq_epi8(v, vbs)),
		        _mm_cmplt_epi8(v, vsp)));
		if (m != 0)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
#endif
	while (end - p >= 8) {
		memcpy(&w, p, 8);
		q = w ^ (ONES * '"');
		bs = w ^ (ONES * '\\');
		if (((w | ((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) |
		         ((bs - ONES) & ~bs)) &
		        HIGHS) != 0)
			break;
		p += 8;
	}
	while (p < end && *p != '"' && *p >= 0x20 && *p < 0x80 && *p != '\\')
		p++;
	return p;
}

/*
 * The fast path of put_bytes(): 1 if p is JSON that jansson would parse
 * and dump (JSON_COMPACT | JSON_PRESERVE_ORDER) as exactly these bytes,
 * 0 if that is not certain. It accepts only the plainest form: no
 * whitespace, ASCII strings without escapes, integers of at most 18
 * digits (no "-0"), objects of at most 16 keys with no key twice, depth
 * at most 64, and not a bare null. Anything else goes to jansson, which
 * decides (so this never changes what is exported, only how fast: it
 * took the share of jansson in an export from ~74% of the CPU time to
 * ~0 for payloads such as {"k":"v","n":1}). tests/unit/test_jsonplain.c
 * checks it against jansson.
 */
/*
 * The key at p (after the '"') of an object whose keys so far are keys
 * (klen bytes each, *nkeys of them, at most 16): the key is added; the
 * end of its ':' is returned, or NULL if it is not plain or twice.
 */
static const uint8_t *
plain_key(const uint8_t *p, const uint8_t *end, const uint8_t **keys,
    size_t *klen, int *nkeys)
{
	const uint8_t *k = p;
	int i;

	p = str_scan(p, end);
	if (p >= end || *p != '"' || *nkeys == 16)
		return NULL;
	for (i = 0; i < *nkeys; i++)
		if (klen[i] == (size_t)(p - k) &&
		    memcmp(keys[i], k, (size_t)(p - k)) == 0)
			return NULL;
	keys[*nkeys] = k;
	klen[(*nkeys)++] = (size_t)(p - k);
	p++;
	if (p >= end || *p++ != ':')
		return NULL;
	return p;
}

/* The end of the literal word (len bytes) at p, or NULL. */
static const uint8_t *
plain_word(const uint8_t *p, const uint8_t *end, const char *word, size_t len)
{
	if ((size_t)(end - p) < len || memcmp(p, word, len) != 0)
		return NULL;
	return p + len;
}

/* The end of the plain integer at p, or NULL. */
static const uint8_t *
plain_int(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *d;
	int neg = *p == '-';

	p += neg;
	d = p;
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	/* "-0" is dumped as "0"; "01" is not JSON */
	if (p == d || p - d > 18 || (*d == '0' && (p - d > 1 || neg)))
		return NULL;
	if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
		return NULL;
	return p;
}

/* The end of the plain scalar (string, word, integer) at p, or NULL. */
static const uint8_t *
plain_scalar(const uint8_t *p, const uint8_t *end)
{
	switch (*p) {
	case '"':
		p = str_scan(p + 1, end);
		return p >= end || *p != '"' ? NULL : p + 1;
	case 't':
		return plain_word(p, end, "true", 4);
	case 'f':
		return plain_word(p, end, "false", 5);
	case 'n':
		return plain_word(p, end, "null", 4);
	default:
		return plain_int(p, end);
	}
}

int
json_plain(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n, *keys[64][16];
	size_t klen[64][16];
	uint8_t kind[64]; /* '{' or '[' */
	int nkeys[64], depth = 0, want_key = 0;

	if (n == 4 && memcmp(p, "null", 4) == 0)
		return 0;
	for (;;) {
		/* a value (or, in an object, a key then ':' then a value) */
		if (p >= end)
			return 0;
		if (want_key) {
			if (*p != '"' ||
			    (p = plain_key(p + 1, end, keys[depth - 1],
			         klen[depth - 1], &nkeys[depth - 1])) == NULL)
				return 0;
			want_key = 0;
			continue;
		}
		if (*p == '{' || *p == '[') {
			if (depth == 64)
				return 0;
			kind[depth] = *p;
			nkeys[depth++] = 0;
			p++;
			if (p >= end ||
			    *p != (kind[depth - 1] == '{' ? '}' : ']')) {
				want_key = kind[depth - 1] == '{';
				continue;
			}
			p++;
			depth--;
		} else if ((p = plain_scalar(p, end)) == NULL)
			return 0;
		/* after a value: a separator, a closer, or the end */
		for (;;) {
			if (depth == 0)
				return p == end;
			if (p >= end)
				return 0;
			if (*p == ',') {
				p++;
				want_key = kind[depth - 1] == '{';
				break;
			}
			if (*p != (kind[depth - 1] == '{' ? '}' : ']'))
				return 0;
			p++;
			depth--;
		}
	}
}
