/* SPDX-License-Identifier: MIT */
/*
 * uuid.c - UUID text forms (see uuid.h).
 */
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "uuid.h"

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 32 hex digits, hyphens allowed only at the canonical places if hyph. */
static int
parse_hex(const char *s, size_t len, int hyph, uint8_t out[UUID_LEN])
{
	size_t i, n = 0;
	int hi, lo;

	for (i = 0; i < len && n < UUID_LEN;) {
		if (hyph && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (s[i] != '-')
				return -1;
			i++;
			continue;
		}
		if (i + 1 >= len)
			return -1;
		hi = hexval(s[i]);
		lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return (n == UUID_LEN && i == len) ? 0 : -1;
}

int
uuid_parse(const char *s, size_t len, uint8_t out[UUID_LEN])
{
	if (s == NULL)
		return -1;
	if (len == 32)
		return parse_hex(s, len, 0, out);
	if (len == 36)
		return parse_hex(s, len, 1, out);
	if (len == 38 && s[0] == '{' && s[37] == '}')
		return parse_hex(s + 1, 36, 1, out);
	if (len == 45 && strncasecmp(s, "urn:uuid:", 9) == 0)
		return parse_hex(s + 9, 36, 1, out);
	return -1;
}

char *
uuid_format(const uint8_t u[UUID_LEN], char out[UUID_STR_LEN])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;
	int i;

	for (i = 0; i < UUID_LEN; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[u[i] >> 4];
		*p++ = hex[u[i] & 15];
	}
	*p = '\0';
	return out;
}

void
uuid_random(uint8_t u[UUID_LEN])
{
	size_t got = 0;
	ssize_t n;

	while (got < UUID_LEN) {
		n = getrandom(u + got, UUID_LEN - got, 0);
		if (n > 0)
			got += (size_t)n;
	}
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
}
