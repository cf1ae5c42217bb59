/* SPDX-License-Identifier: MIT */
/*
 * utf8.h - UTF-8 validation, shared by stored (event types) and the
 * gateway (every protobuf string field).
 */
#ifndef EF_UTF8_H
#define EF_UTF8_H

#include <stddef.h>

/*
 * 1 if the n bytes at s are well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF), else 0. s need not be
 * NUL-terminated.
 */
int utf8_valid(const char *s, size_t n);

#endif
