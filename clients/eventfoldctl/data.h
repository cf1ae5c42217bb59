/* SPDX-License-Identifier: MIT */
/*
 * data.h - what eventfoldctl's data-in-and-out verbs share: backup
 * (backup.c), export (export.c), import (import.c); their table and
 * progress reports are in data.c.
 */
#ifndef EF_CTL_DATA_H
#define EF_CTL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "ctl.h"

int cmd_backup(struct ctl *c, int argc, char **argv);
int cmd_export(struct ctl *c, int argc, char **argv);
int cmd_import(struct ctl *c, int argc, char **argv);

/* A growing output buffer (export lines). */
struct obuf {
	char *p;
	size_t len, cap;
};
/* Room for more bytes (exits on ENOMEM, like ipc_out). */
void obuf_grow(struct obuf *b, size_t more);
/* Appends ev as one export line (export.c's top comment) to b. */
void export_line(struct obuf *b, const struct ef_event *ev);

/*
 * Progress on stderr, at most twice a second, only when stderr is a
 * terminal and not --quiet: events, bytes, rate, and an ETA when total
 * (events expected) or total_bytes (bytes expected) is known.
 */
struct progress {
	int on;
	const char *what;
	uint64_t start_ms, next_ms, total, total_bytes;
	int shown; /* a line without its newline is on the terminal */
};
void progress_init(struct progress *p, const char *what, int quiet);
void progress(struct progress *p, uint64_t events, uint64_t bytes, int last);
/* Erases a progress line still shown, before other output. */
void progress_clear(struct progress *p);

#endif
