/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - the start-up steps every eventfold daemon takes the same way
 * (stored, gatewayd, runnerd): -n / -nv, the signal mask, and creating
 * the runtime and data directories. Called from main() before any
 * thread starts.
 */
#ifndef EF_DAEMON_H
#define EF_DAEMON_H

#include <signal.h>
#include <sys/types.h>

#include "conf.h"

/*
 * -n: prints "configuration OK", or with -v the effective configuration
 * of section (conf_print), on stdout and returns 1: the caller exits 0.
 * Otherwise shows debug lines if -d or -v was given and returns 0.
 */
int daemon_conf_check(const struct conf_opts *o, const struct conf_key *keys,
    const char *section, const void *conf);

/*
 * Blocks SIGTERM, SIGINT and SIGHUP (set: what to sigwait or
 * sigtimedwait for; threads started later inherit the mask) and ignores
 * SIGPIPE.
 */
void daemon_signals(sigset_t *set);

/*
 * Creates dir and its missing parents (parents 0755, dir itself mode).
 * A directory created here is made durable in its parent (fsync of the
 * parent) before anything is written in it: otherwise a power cut can
 * take the data directory, and every acknowledged event in it, away
 * (found by tests/powerloss). An existing directory is left as it is.
 * 0 or a negative errno.
 */
int daemon_mkdir_p(const char *dir, mode_t mode);

/*
 * The last step of a daemon's shutdown, once what is durable is closed:
 * stops the guard thread (guard.h) and leaves with _exit(status). The
 * request server's socket is never closed (server.h, shutdown policy),
 * so nng's threads still run: exit()'s library teardown, or nng_fini(),
 * would run under their feet (a SIGTERM exit of stored was seen dying
 * of SIGSEGV in an nng task thread) or wait on them forever.
 */
void daemon_exit(int status) __attribute__((noreturn));

#endif
