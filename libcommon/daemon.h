/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - the lifecycle steps every eventfold daemon takes the same
 * way (stored, gatewayd, runnerd): -n / -nv, the signal mask, and
 * creating the runtime and data directories (called from main() before
 * any thread starts); the watchdog rule; the last step of a shutdown.
 */
#ifndef EF_DAEMON_H
#define EF_DAEMON_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

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
 * The watchdog, one rule for every daemon: WATCHDOG=1 is sent only
 * while the daemon's own work makes progress. Each daemon names the
 * work that must move with an alive() test (stored: its writer's queue;
 * runnerd: its aggregate writer's results); work that has waited longer
 * than half the watchdog period while its worker did not come round
 * withholds the ping, and systemd restarts the daemon (WatchdogSec=).
 * An idle daemon is fed; nothing feeds it unconditionally.
 */
struct daemon_watchdog {
	uint64_t usec; /* systemd's WATCHDOG_USEC; 0 when off */
};

/* Reads whether systemd wants a watchdog, and its period. */
void daemon_watchdog_init(struct daemon_watchdog *wd);
/* How long the main loop may sleep between ticks: 500 ms, or half the
 * watchdog's period when shorter. */
struct timespec daemon_watchdog_wait(const struct daemon_watchdog *wd);
/* Pings systemd if the watchdog is on and alive(half the period in ms)
 * says the daemon's work moves. */
void daemon_watchdog_tick(const struct daemon_watchdog *wd,
    int (*alive)(uint64_t limit_ms));
/*
 * The test alive() makes: 1 unless work is waiting (waiting != 0) and
 * the worker's last round (beat_ms, on the clock of now_ms; 0: none
 * yet) is limit_ms or more ago.
 */
int daemon_progress(uint64_t waiting, uint64_t beat_ms, uint64_t now_ms,
    uint64_t limit_ms);

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
