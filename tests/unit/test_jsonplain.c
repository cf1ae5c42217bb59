/* SPDX-License-Identifier: MIT */
/*
 * test_jsonplain.c - export's JSON fast path (clients/eventfoldctl/
 * jsonplain.c) against jansson itself: whenever json_plain() says 1,
 * jansson must parse the bytes and dump them back identically; the
 * plain forms it exists for must get 1; and a million random and
 * mutated texts must never get a wrong 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "jsonplain.h"

#define FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER)

/* What jansson says: 1 if it parses s and dumps it as the same bytes. */
static int
jansson_same(const char *s, size_t n)
{
	json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	char *d;
	int same;

	if (v == NULL)
		return 0;
	d = json_dumps(v, FLAGS);
	same = d != NULL && strlen(d) == n && memcmp(d, s, n) == 0 &&
	    !json_is_null(v);
	free(d);
	json_decref(v);
	return same;
}

static void
check(const char *s, size_t n)
{
	if (json_plain((const uint8_t *)s, n))
		cr_assert(jansson_same(s, n),
		    "json_plain says 1 for \"%.*s\" "
		    "but jansson disagrees",
		    (int)n, s);
}

Test(jsonplain, plain_forms_take_the_fast_path)
{
	const char *yes[] = { "{}", "[]", "0", "-5", "123456789012345678",
		"true", "false", "\"\"", "\"str\"", "{\"k\":\"v\",\"n\":1}",
		"[1,2,[3,{}],{\"a\":[true,false,null]}]", "{\"a\":{\"a\":1}}",
		"\"with / slash and ~\"", NULL };
	int i;

	for (i = 0; yes[i] != NULL; i++) {
		cr_assert(json_plain((const uint8_t *)yes[i], strlen(yes[i])),
		    "\"%s\" should be plain", yes[i]);
		cr_assert(jansson_same(yes[i], strlen(yes[i])), "%s", yes[i]);
	}
}

Test(jsonplain, everything_else_goes_to_jansson)
{
	const char *no[] = { "", "null", "{\"a\": 1}", " 1", "1 ", "1.5",
		"1e3", "-0", "01", "1234567890123456789", "{\"a\":1,\"a\":2}",
		"\"\\u00e9\"", "\"\\n\"", "\"caf\xc3\xa9\"", "[1,]", "{\"a\"}",
		"[", "]", "{", "}", "[1", "{\"a\":1", "tru", "nul", "\"abc",
		"[1]x", "{\"a\":1}}", "\"a\nb\"", "-", "+1", "[01]", "{1:2}",
		"{\"a\":}", "[,1]", NULL };
	int i;

	for (i = 0; no[i] != NULL; i++)
		cr_assert(!json_plain((const uint8_t *)no[i], strlen(no[i])),
		    "\"%s\" should not be plain", no[i]);
}

Test(jsonplain, depth_and_key_limits)
{
	char buf[512];
	int i, n = 0;

	for (i = 0; i < 65; i++)
		buf[n++] = '[';
	for (i = 0; i < 65; i++)
		buf[n++] = ']';
	cr_assert(!json_plain((const uint8_t *)buf, (size_t)n));
	check(buf, (size_t)n);
	n = 0;
	buf[n++] = '{';
	for (i = 0; i < 17; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\"k%d\":%d",
		    i ? "," : "", i, i);
	buf[n++] = '}';
	cr_assert(!json_plain((const uint8_t *)buf, (size_t)n));
	check(buf, (size_t)n);
}

/* Random texts from a small grammar, then mutated byte by byte. */
static unsigned long long rs = 0x9e3779b97f4a7c15ull;

static unsigned
rnd(unsigned n)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (unsigned)(rs % n);
}

static void
gen(char *b, size_t *n, size_t cap, int depth)
{
	static const char *atoms[] = { "0", "1", "-7", "12", "true", "false",
		"null", "\"a\"", "\"\"", "\"k\"", "1.0", "-0", "\"\\t\"",
		"99999999999999999999", " ", "\"b c\"" };
	unsigned k = rnd(depth > 4 ? 2 : 4), i, m;

	if (*n + 64 > cap)
		return;
	if (k < 2) {
		const char *a = atoms[rnd(sizeof(atoms) / sizeof(atoms[0]))];

		memcpy(b + *n, a, strlen(a));
		*n += strlen(a);
		return;
	}
	b[(*n)++] = k == 2 ? '[' : '{';
	m = rnd(4);
	for (i = 0; i < m; i++) {
		if (i)
			b[(*n)++] = ',';
		if (k == 3) {
			const char *key = rnd(3) ? "\"a\"" : "\"b\"";

			memcpy(b + *n, key, 3);
			*n += 3;
			b[(*n)++] = ':';
		}
		gen(b, n, cap, depth + 1);
	}
	b[(*n)++] = k == 2 ? ']' : '}';
}

Test(jsonplain, never_a_wrong_yes, .timeout = 120)
{
	char buf[4096];
	size_t n;
	int i, j, yes = 0;

	for (i = 0; i < 200000; i++) {
		n = 0;
		gen(buf, &n, sizeof(buf), 0);
		check(buf, n);
		yes += json_plain((const uint8_t *)buf, n);
		for (j = 0; j < 4 && n > 0; j++) {
			buf[rnd((unsigned)n)] = "{}[],:\"01-e. tnx\\"[rnd(18)];
			check(buf, n);
		}
		if (n > 1)
			check(buf, n - 1 - rnd((unsigned)n - 1));
	}
	/* the generator reaches the fast path often, or this proves little */
	cr_assert_gt(yes, 10000, "only %d plain texts generated", yes);
}
