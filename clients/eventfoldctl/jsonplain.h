/* SPDX-License-Identifier: MIT */
/*
 * jsonplain.h - is this JSON already exactly what jansson would dump?
 */
#ifndef EF_CTL_JSONPLAIN_H
#define EF_CTL_JSONPLAIN_H

#include <stddef.h>
#include <stdint.h>

/*
 * 1 if the n bytes at p are JSON that jansson parses (JSON_DECODE_ANY)
 * and dumps (JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) as
 * exactly the same bytes, and are not the bare text null; 0 when that is
 * not certain (the caller then asks jansson). Never 1 wrongly.
 */
int json_plain(const uint8_t *p, size_t n);

#endif
