/* SPDX-License-Identifier: MIT */
/*
 * log.c - stderr logging with syslog priority prefixes (see log.h).
 * One write(2) per line so lines from several threads never interleave.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

static const char *log_prog = "eventfold";
static int log_verbose;
static int log_max = 6;      /* the least urgent priority written */
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
	if (verbose)
		log_max = 7;
}

int
log_getverbose(void)
{
	return log_verbose;
}

/*
 * Levels by name, with the priority each lets through; "trace" and
 * "off" are EventfoldDB's (RUST_LOG), read as debug and error.
 */
static const struct {
	const char *name;
	int max;
} log_levels[] = {
	{ "error", 3 },
	{ "off", 3 },
	{ "warn", 4 },
	{ "warning", 4 },
	{ "info", 6 },
	{ "debug", 7 },
	{ "trace", 7 },
};

static int
log_level_named(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (strlen(log_levels[i].name) == n &&
		    strncasecmp(log_levels[i].name, s, n) == 0)
			return log_levels[i].max;
	return -1;
}

void
log_setlevel(int max)
{
	log_max = max;
	log_verbose = max >= 7;
}

/*
 * RUST_LOG is a list of directives, "info" or "target=level", comma
 * separated. All of eventfold is one target here, so the most verbose
 * level named anywhere wins; a directive that names no level is
 * skipped with a warning, as EventfoldDB's filter skips it.
 */
static int
log_rust_level(const char *v)
{
	const char *p = v, *end, *lvl;
	int best = -1, m;

	while (*p != '\0') {
		end = p + strcspn(p, ",");
		lvl = memchr(p, '=', (size_t)(end - p));
		lvl = lvl != NULL ? lvl + 1 : p;
		if (end > lvl &&
		    (m = log_level_named(lvl, (size_t)(end - lvl))) >= 0) {
			if (m > best)
				best = m;
		} else if (end > p)
			log_warnx(
			    "RUST_LOG: skipping \"%.*s\" (no level in it)",
			    (int)(end - p), p);
		p = *end == ',' ? end + 1 : end;
	}
	return best;
}

int
log_level_from_env(void)
{
	const char *v = getenv("EVENTFOLD_LOG_LEVEL");
	int m;

	if (v != NULL && *v != '\0') {
		if ((m = log_level_named(v, strlen(v))) < 0) {
			fprintf(stderr,
			    "%s: EVENTFOLD_LOG_LEVEL=%s: not a "
			    "level (error, warn, info, debug)\n",
			    log_prog, v);
			return -1;
		}
		log_setlevel(m);
		return 0;
	}
	if ((v = getenv("RUST_LOG")) != NULL && (m = log_rust_level(v)) >= 0)
		log_setlevel(m);
	return 0;
}

static void
log_emit(int prio, const char *errstr, const char *fmt, va_list ap)
{
	char line[1024];
	int n, m;

	if (prio > log_max)
		return;

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
