/* SPDX-License-Identifier: MIT */
/*
 * data.c - the table of eventfoldctl's data-in-and-out verbs (backup,
 * export, import) and their progress line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "data.h"
#include "guard.h"

const struct ctl_cmd ctl_data_cmds[] = {
	{ "backup", cmd_backup,
	    "backup DIR [--runner] [--wait SECONDS] "
	    "[--json] [--quiet]   (online consistent copy; prints its "
	    "position; --runner: runnerd's state too)" },
	{ "export", cmd_export,
	    "export [--from POSITION] [--to POSITION] "
	    "[--stream UUID] "
	    "[--zstd] [-o FILE] [--quiet]   (JSON lines, consistent "
	    "snapshot)" },
	{ "import", cmd_import,
	    "import FILE|DIR [--stream UUID | "
	    "--stream-name NAME] [--in-flight N] [--quiet]   (an export, "
	    "plain or zstd, an EventfoldDB data file, or an eventfold "
	    "directory; N batches with the store at once, default 2)" },
	{ NULL, NULL, NULL },
};

void
progress_init(struct progress *p, const char *what, int quiet)
{
	p->on = !quiet && isatty(STDERR_FILENO);
	p->what = what;
	p->start_ms = guard_now_ms();
	p->next_ms = p->start_ms + 500;
	p->total = 0;
	p->total_bytes = 0;
	p->shown = 0;
}

void
progress_clear(struct progress *p)
{
	if (!p->on || !p->shown)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	p->shown = 0;
}

void
progress(struct progress *p, uint64_t events, uint64_t bytes, int last)
{
	uint64_t now = guard_now_ms(), el;
	double rate;

	if (!p->on || (!last && now < p->next_ms))
		return;
	p->next_ms = now + 500;
	el = now - p->start_ms;
	rate = el ? (double)events * 1000.0 / (double)el : 0.0;
	fprintf(stderr, "\r%s: %" PRIu64 " events, %.1f MiB, %.0f events/s",
	    p->what, events, (double)bytes / 1048576.0, rate);
	if (p->total > events && rate > 0)
		fprintf(stderr, ", ETA %.0f s",
		    (double)(p->total - events) / rate);
	else if (p->total_bytes > bytes && bytes > 0 && el > 0)
		fprintf(stderr, ", ETA %.0f s",
		    (double)(p->total_bytes - bytes) * (double)el / 1000.0 /
		        (double)bytes);
	fputs(last ? "\n" : "   ", stderr);
	p->shown = !last;
	fflush(stderr);
}
