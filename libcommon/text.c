/* SPDX-License-Identifier: MIT */
/* text.c - see text.h. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "text.h"

void
text_init(struct text *t, size_t cap)
{
	t->len = 0;
	t->cap = cap > 0 ? cap : 256;
	if ((t->buf = malloc(t->cap)) == NULL)
		fatal("malloc");
	t->buf[0] = '\0';
}

void
text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		t->cap = t->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
		if ((t->buf = realloc(t->buf, t->cap)) == NULL)
			fatal("realloc");
	}
}

void
text_metric(struct text *t, const char *name, const char *type,
    const char *help, uint64_t v)
{
	text_printf(t, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name,
	    help, name, type, name, v);
}
