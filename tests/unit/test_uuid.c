/* SPDX-License-Identifier: MIT */
/*
 * test_uuid.c - unit tests of libcommon/uuid.c: every textual form
 * EventfoldDB accepts (hyphenated, simple 32 hex digits, braced,
 * urn:uuid:, in any case) parses to the same bytes; near misses are
 * refused; the printed form is lowercase hyphenated; random UUIDs are
 * version 4.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "uuid.h"

static const uint8_t want[UUID_LEN] = { 0x67, 0xe5, 0x50, 0x44, 0x10, 0xb1,
	0x42, 0x6f, 0x92, 0x47, 0xbb, 0x68, 0x0e, 0x5f, 0xe0, 0xc8 };

/* Parses s from an exactly-sized heap copy, so over-reads are caught. */
static int
parse(const char *s, size_t len, uint8_t out[UUID_LEN])
{
	char *copy = malloc(len ? len : 1);
	int rc;

	cr_assert_not_null(copy);
	memcpy(copy, s, len);
	rc = uuid_parse(copy, len, out);
	free(copy);
	return rc;
}

static const char *const good[] = {
	"67e55044-10b1-426f-9247-bb680e5fe0c8",
	"67E55044-10B1-426F-9247-BB680E5FE0C8",
	"67e55044-10B1-426f-9247-Bb680E5fe0C8",
	"67e5504410b1426f9247bb680e5fe0c8",
	"67E5504410B1426F9247BB680E5FE0C8",
	"{67e55044-10b1-426f-9247-bb680e5fe0c8}",
	"{67E55044-10B1-426F-9247-BB680E5FE0C8}",
	"urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
	"URN:UUID:67E55044-10B1-426F-9247-BB680E5FE0C8",
	"Urn:Uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
};

Test(uuid, accepts_every_form)
{
	uint8_t out[UUID_LEN];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(out, 0, sizeof(out));
		cr_assert_eq(parse(good[i], strlen(good[i]), out), 0,
		    "refused \"%s\"", good[i]);
		cr_assert_arr_eq(out, want, UUID_LEN, "wrong bytes for \"%s\"",
		    good[i]);
	}
}

Test(uuid, length_is_explicit)
{
	/* no NUL needed, and bytes past len are not looked at */
	const char *s = "67e55044-10b1-426f-9247-bb680e5fe0c8trailing";
	uint8_t out[UUID_LEN];

	cr_assert_eq(uuid_parse(s, 36, out), 0);
	cr_assert_arr_eq(out, want, UUID_LEN);
	cr_assert_eq(uuid_parse(s, strlen(s), out), -1);
	cr_assert_eq(uuid_parse(s, 35, out), -1);
	cr_assert_eq(uuid_parse(NULL, 36, out), -1);
}

static const char *const bad[] = {
	"",
	"67e55044-10b1-426f-9247-bb680e5fe0c",   /* one digit short */
	"67e55044-10b1-426f-9247-bb680e5fe0c8a", /* one digit over */
	"67e5504-410b1-426f-9247-bb680e5fe0c8",  /* hyphen moved */
	"67e55044-10b1-426f-9247bb680e5fe0c8-",  /* hyphen moved to end */
	"67e55044_10b1_426f_9247_bb680e5fe0c8",  /* not hyphens */
	"67e55044 10b1 426f 9247 bb680e5fe0c8",
	"67e55044-10b1-426f-9247-bb680e5fe0g8", /* not hex */
	"67e55044-10b1-426f-9247-bb680e5fe0c ",
	" 67e55044-10b1-426f-9247-bb680e5fe0c8", /* whitespace */
	"67e55044-10b1-426f-9247-bb680e5fe0c8 ",
	"+7e55044-10b1-426f-9247-bb680e5fe0c8", /* sign */
	"67e55044-+0b1-426f-9247-bb680e5fe0c8",
	"67e5504410b1426f9247bb680e5fe0c",      /* 31 digits */
	"67e5504410b1426f9247bb680e5fe0c8a",    /* 33 digits */
	"67e5504410b1426f9247bb680e5fe0c80000", /* 36 digits, no hyphens */
	"0x67e5504410b1426f9247bb680e5fe0c8",
	"67e5504410b1426f9247bb680e5fe0cz",
	"67e55044-10b1426f9247bb680e5fe0c8",     /* some hyphens only */
	"{67e55044-10b1-426f-9247-bb680e5fe0c8", /* unbalanced braces */
	"67e55044-10b1-426f-9247-bb680e5fe0c8}",
	"{67e55044-10b1-426f-9247-bb680e5fe0c8]",
	"[67e55044-10b1-426f-9247-bb680e5fe0c8]",
	"(67e55044-10b1-426f-9247-bb680e5fe0c8)",
	"{67e5504410b1426f9247bb680e5fe0c8}", /* braced simple form */
	"{{67e55044-10b1-426f-9247-bb680e5fe0c8}}",
	"{ 67e55044-10b1-426f-9247-bb680e5fe0c8}",
	"urn:uuid:67e5504410b1426f9247bb680e5fe0c8", /* urn simple form */
	"urn:uuid:{67e55044-10b1-426f-9247-bb680e5fe0c8}",
	"urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c",
	"urn:uuid67e55044-10b1-426f-9247-bb680e5fe0c8x",
	"urn:uid:67e55044-10b1-426f-9247-bb680e5fe0c8",
	"urn:uuie:67e55044-10b1-426f-9247-bb680e5fe0c8",
	"uuid:urn:67e55044-10b1-426f-9247-bb680e5fe0c8",
	"urn-uuid-67e55044-10b1-426f-9247-bb680e5fe0c8",
	"urn:uuid: 7e55044-10b1-426f-9247-bb680e5fe0c8",
	"67e55044--0b1-426f-9247-bb680e5fe0c8",
	"------------------------------------",
	"--------------------------------",
	"{------------------------------------}",
};

Test(uuid, rejects_near_misses)
{
	uint8_t out[UUID_LEN];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse(bad[i], strlen(bad[i]), out), -1,
		    "accepted \"%s\"", bad[i]);
}

Test(uuid, rejects_nul_and_high_bytes)
{
	char s[37];
	uint8_t out[UUID_LEN];
	size_t i;

	/* each position in turn replaced by NUL, 0xff and a non-ASCII
	 * byte whose low bits look like a hex digit */
	for (i = 0; i < 36; i++) {
		const unsigned char subst[] = { 0x00, 0xff, 0xb0, 0xc1 };
		size_t k;

		for (k = 0; k < sizeof(subst); k++) {
			memcpy(s, good[0], 37);
			s[i] = (char)subst[k];
			cr_assert_eq(parse(s, 36, out), -1,
			    "byte 0x%02x at %zu accepted", subst[k], i);
		}
	}
}

Test(uuid, every_single_character_change_is_caught_or_exact)
{
	/*
	 * Replacing any one character of the hyphenated form either fails
	 * or (for another hex digit, or a case change) yields exactly the
	 * bytes that character denotes.
	 */
	static const char alphabet[] = "0123456789abcdefABCDEFgG-{}:xz ";
	uint8_t out[UUID_LEN], expect[UUID_LEN];
	char s[37];
	size_t i, k;

	for (i = 0; i < 36; i++)
		for (k = 0; k < sizeof(alphabet) - 1; k++) {
			char c = alphabet[k];
			int hyph = i == 8 || i == 13 || i == 18 || i == 23;
			int ishex = (c >= '0' && c <= '9') ||
			    (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
			int rc;

			memcpy(s, good[0], 37);
			s[i] = c;
			rc = parse(s, 36, out);
			if (hyph ? c != '-' : !ishex) {
				cr_assert_eq(rc, -1, "\"%s\" accepted", s);
				continue;
			}
			cr_assert_eq(rc, 0, "\"%s\" refused", s);
			memcpy(expect, want, UUID_LEN);
			if (!hyph) {
				/* which nibble did position i hold? */
				size_t digit = i - (i > 8) - (i > 13) -
				    (i > 18) - (i > 23);
				int v = c <= '9' ? c - '0' :
				                   (c | 0x20) - 'a' + 10;
				uint8_t *e = &expect[digit / 2];

				if (digit % 2 == 0)
					*e = (uint8_t)((*e & 0x0f) | v << 4);
				else
					*e = (uint8_t)((*e & 0xf0) | v);
			}
			cr_assert_arr_eq(out, expect, UUID_LEN, "\"%s\"", s);
		}
}

Test(uuid, format_is_lowercase_hyphenated)
{
	char buf[UUID_STR_LEN];
	uint8_t all[UUID_LEN], back[UUID_LEN];
	int i;

	cr_assert_eq(uuid_format(want, buf), buf);
	cr_assert_str_eq(buf, "67e55044-10b1-426f-9247-bb680e5fe0c8");
	for (i = 0; i < UUID_LEN; i++)
		all[i] = (uint8_t)(0x01 * i | (0xf0 - 0x10 * i));
	uuid_format(all, buf);
	cr_assert_eq(strlen(buf), 36);
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			cr_assert_eq(buf[i], '-');
		else
			cr_assert((buf[i] >= '0' && buf[i] <= '9') ||
			        (buf[i] >= 'a' && buf[i] <= 'f'),
			    "char %d: %c", i, buf[i]);
	}
	cr_assert_eq(uuid_parse(buf, 36, back), 0);
	cr_assert_arr_eq(back, all, UUID_LEN);
	memset(all, 0xff, sizeof(all));
	cr_assert_str_eq(uuid_format(all, buf),
	    "ffffffff-ffff-ffff-ffff-ffffffffffff");
	memset(all, 0, sizeof(all));
	cr_assert_str_eq(uuid_format(all, buf),
	    "00000000-0000-0000-0000-000000000000");
}

static int
cmp16(const void *a, const void *b)
{
	return memcmp(a, b, UUID_LEN);
}

Test(uuid, random_is_version_4_and_distinct)
{
	enum { N = 4096 };
	uint8_t(*u)[UUID_LEN] = calloc(N, UUID_LEN), back[UUID_LEN];
	char buf[UUID_STR_LEN];
	int i;

	cr_assert_not_null(u);
	for (i = 0; i < N; i++) {
		uuid_random(u[i]);
		cr_assert_eq(u[i][6] >> 4, 4, "version nibble");
		cr_assert_eq(u[i][8] >> 6, 2, "RFC 4122 variant");
		uuid_format(u[i], buf);
		cr_assert_eq(buf[14], '4');
		cr_assert_eq(uuid_parse(buf, strlen(buf), back), 0);
		cr_assert_arr_eq(back, u[i], UUID_LEN);
	}
	qsort(u, N, UUID_LEN, cmp16);
	for (i = 1; i < N; i++)
		cr_assert_neq(memcmp(u[i - 1], u[i], UUID_LEN), 0);
	free(u);
}
