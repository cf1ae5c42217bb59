/* SPDX-License-Identifier: MIT */
/*
 * log.h - the one logging API of every eventfold program.
 *
 * Lines go to stderr. When stderr is the journal (systemd sets
 * JOURNAL_STREAM) each line has a syslog priority prefix ("<4>") so the
 * journal files it by level; otherwise (a terminal, a log file, -d) the
 * level is written as a word: "eventfold-stored: warning: ...". Debug
 * lines are shown only with -d or -v, or with the level set to debug
 * (EVENTFOLD_LOG_LEVEL, log_level_from_env); info is the default level.
 *
 * Levels:
 *   fatal/fatalx  startup errors and broken invariants only; exits 1.
 *   log_warn      an operation failed; appends strerror(errno).
 *   log_warnx     an operation failed; no errno involved.
 *   log_info      lifecycle: started, recovered, stopping.
 *   log_debug     per-request detail, shown only with -d or verbose.
 */
#ifndef EF_LOG_H
#define EF_LOG_H

#include <stdarg.h>

#define EF_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Sets the program name and whether debug lines are shown. */
void log_init(const char *progname, int verbose);
void log_setverbose(int verbose);
int log_getverbose(void);
/*
 * Shows only lines of priority max or more urgent: 3 fatal only
 * ("error"), 4 warnings too ("warn"), 6 info too (the default), 7 debug.
 */
void log_setlevel(int max);
/*
 * Sets the level from EVENTFOLD_LOG_LEVEL (error, warn, info, debug),
 * or, when it is unset, from EventfoldDB's RUST_LOG (its most verbose
 * level; trace is debug, off is error). 0, or -1 after saying on stderr
 * that EVENTFOLD_LOG_LEVEL is not a level. -d and -v, applied after,
 * show debug lines whatever it says.
 */
int log_level_from_env(void);

void log_warn(const char *fmt, ...) EF_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) EF_PRINTF(1, 2);
void log_info(const char *fmt, ...) EF_PRINTF(1, 2);
void log_debug(const char *fmt, ...) EF_PRINTF(1, 2);
void fatal(const char *fmt, ...) EF_PRINTF(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) EF_PRINTF(1, 2) __attribute__((noreturn));

#endif
