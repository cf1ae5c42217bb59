/* SPDX-License-Identifier: MIT */
/*
 * text.h - a growing text buffer for the Prometheus pages of gatewayd
 * and mirrord: printf onto its end, one metric's HELP/TYPE/value lines.
 * Out of memory is fatal (as for the rest of a daemon's page).
 */
#ifndef EF_TEXT_H
#define EF_TEXT_H

#include <stddef.h>
#include <stdint.h>

struct text {
	char *buf;
	size_t len, cap;
};

/* An empty text with room for cap bytes. */
void text_init(struct text *t, size_t cap);
void text_printf(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "# HELP name help", "# TYPE name type" and "name v". */
void text_metric(struct text *t, const char *name, const char *type,
    const char *help, uint64_t v);

#endif
