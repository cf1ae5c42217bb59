/* SPDX-License-Identifier: MIT */
/*
 * table.c - eventfoldctl's tables for people whose cells are of any
 * width (names, command ids, errors): rows are kept until the end, then
 * printed with each column as wide as its widest cell, so no value
 * pushes the columns after it out of line. A line ends at its last
 * non-blank character. Tables of fixed-width values (events, streams)
 * print as they go instead (output.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

void
tbl_init(struct tbl *t, const char *align, ...)
{
	va_list ap;
	int i;

	memset(t, 0, sizeof(*t));
	t->ncols = (int)strlen(align);
	if (t->ncols > TBL_MAXCOLS)
		t->ncols = TBL_MAXCOLS;
	memcpy(t->align, align, (size_t)t->ncols);
	va_start(ap, align);
	for (i = 0; i < t->ncols; i++)
		t->hdr[i] = va_arg(ap, const char *);
	va_end(ap);
}

void
tbl_row(struct tbl *t, ...)
{
	char **row, ***nr;
	const char *cell;
	va_list ap;
	int i;

	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		if ((nr = realloc(t->rows, t->cap * sizeof(*nr))) == NULL)
			abort();
		t->rows = nr;
	}
	if ((row = calloc((size_t)t->ncols, sizeof(char *))) == NULL)
		abort();
	va_start(ap, t);
	for (i = 0; i < t->ncols; i++) {
		cell = va_arg(ap, const char *);
		if ((row[i] = strdup(cell ? cell : "")) == NULL)
			abort();
	}
	va_end(ap);
	t->rows[t->n++] = row;
}

size_t
tbl_rows(const struct tbl *t)
{
	return t->n;
}

void
tbl_print(struct tbl *t)
{
	size_t w[TBL_MAXCOLS], r, l, at;
	char *line;
	int i;

	if (t->n == 0)
		return;
	for (i = 0, l = 0; i < t->ncols; i++) {
		w[i] = strlen(t->hdr[i]);
		for (r = 0; r < t->n; r++)
			if (strlen(t->rows[r][i]) > w[i])
				w[i] = strlen(t->rows[r][i]);
		l += w[i] + 1;
	}
	if ((line = malloc(l + 1)) == NULL)
		abort();
	for (r = 0; r <= t->n; r++) {
		for (i = 0, at = 0; i < t->ncols; i++) {
			const char *s = r == 0 ? t->hdr[i] : t->rows[r - 1][i];

			at += (size_t)sprintf(line + at,
			    t->align[i] == 'r' ? "%*s " : "%-*s ", (int)w[i],
			    s);
		}
		/* an empty last cell leaves no trailing blanks */
		while (at > 0 && line[at - 1] == ' ')
			at--;
		printf("%.*s\n", (int)at, line);
	}
	free(line);
}

void
tbl_free(struct tbl *t)
{
	size_t r;
	int i;

	for (r = 0; r < t->n; r++) {
		for (i = 0; i < t->ncols; i++)
			free(t->rows[r][i]);
		free(t->rows[r]);
	}
	free(t->rows);
	memset(t, 0, sizeof(*t));
}
