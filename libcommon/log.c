/* SPDX-License-Identifier: MIT */
/*
 * log.c - stderr logging with syslog priority prefixes (see log.h).
 * One write(2) per line so lines from several threads never interleave.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char *log_prog = "eventfold";
static int log_verbose;
static int log_journal = -1; /* stderr is the journal: use <N> prefixes */

void
log_init(const char *progname, int verbose)
{
	log_prog = progname;
	log_verbose = verbose;
	/* systemd sets JOURNAL_STREAM when stderr is connected to it */
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

static const char *
log_level_name(int prio)
{
	switch (prio) {
	case 2:
		return "fatal";
	case 4:
		return "warning";
	case 6:
		return "info";
	default:
		return "debug";
	}
}

void
log_setverbose(int verbose)
{
	log_verbose = verbose;
}

int
log_getverbose(void)
{
	return log_verbose;
}

static void
log_emit(int prio, const char *errstr, const char *fmt, va_list ap)
{
	char line[1024];
	int n, m;

	if (log_journal == 1)
		n = snprintf(line, sizeof(line), "<%d>%s: ", prio, log_prog);
	else
		n = snprintf(line, sizeof(line), "%s: %s: ", log_prog,
		    log_level_name(prio));
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (errstr != NULL) {
		m = snprintf(line + n, sizeof(line) - (size_t)n - 1, ": %s",
		    errstr);
		if (m > 0)
			n += m;
		if ((size_t)n >= sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

#define LOG_BODY(prio, err)                                                   \
	do {                                                                  \
		va_list ap;                                                   \
		va_start(ap, fmt);                                            \
		log_emit(prio, err, fmt, ap);                                 \
		va_end(ap);                                                   \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	const char *e = strerror(errno);

	LOG_BODY(4, e);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(4, NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(6, NULL);
}

void
log_debug(const char *fmt, ...)
{
	if (!log_verbose)
		return;
	LOG_BODY(7, NULL);
}

void
fatal(const char *fmt, ...)
{
	const char *e = strerror(errno);

	LOG_BODY(2, e);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(2, NULL);
	exit(1);
}
