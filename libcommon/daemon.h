/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - the lifecycle steps every eventfold daemon takes the same
 * way (stored, gatewayd, runnerd, mirrord): the configuration (file,
 * environment, flags, -n / -nv), the signal mask, and creating the
 * runtime and data directories (called from main() before any thread
 * starts); the watchdog rule; the main thread's signal loop with READY=1
 * and STOPPING=1; the last step of a shutdown.
 */
#ifndef EF_DAEMON_H
#define EF_DAEMON_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "conf.h"
#include "env.h"

/*
 * What a daemon is, to its lifecycle. Its configuration: its section of
 * the file (its name is "eventfold-" and the section: the log's and the
 * messages' prefix), its keys, the text --help prints after the
 * synopsis line (which is the same for every daemon: "usage: NAME
 * [-dnv] [-f file] [--key value ...]"), the environment it honours and
 * a check of its own. Its main loop (daemon_serve): what it logs when
 * it stops, the watchdog's test, what SIGHUP does, a periodic tick.
 */
/*
 * The normal form of a number key: 0 stands for zero (when zero is not
 * 0), then the value is kept within [min, max] (a bound of 0: none).
 * A table of them ends with a NULL key.
 */
struct daemon_clamp {
	const char *key;
	uint64_t zero, min, max;
};

struct daemon_def {
	const char *section;
	const struct conf_key *keys;
	const char *about;
	/* EventfoldDB's variables that stand for a flag (env.h), or NULL */
	const struct env_flag *env;
	/* EVENTFOLD_DATA is data_dir when it is not a file (env_data_dir) */
	int data_env;
	/* after the flags: clamps and range checks of conf; 0, or 1 after
	 * saying why on stderr. NULL: none. */
	int (*check)(void *conf);
	/* then the number keys put in their normal form, or NULL */
	const struct daemon_clamp *clamps;

	const char *stopping;            /* logged on SIGTERM / SIGINT */
	int (*alive)(uint64_t limit_ms); /* the watchdog's test, or NULL */
	void (*hup)(void *arg);          /* SIGHUP; NULL: log hup_msg */
	const char *hup_msg;
	void (*tick)(void *arg); /* after each wake-up but a stop, or NULL */
	long wait_ms;            /* longest wait; 0: the watchdog's */
};

/*
 * Starts the log as the daemon's name and reads the configuration into conf
 * (the struct d->keys describe): the defaults, the file, the environment (as
 * flags before the command line's), then *argv (*argc words, replaced by the
 * argv that holds the environment's flags, malloc'd, when there are any).
 * Refuses an EventfoldDB data file in EVENTFOLD_DATA and any argument that is
 * not an option, then runs d->check and -n / -nv (daemon_conf_check). Returns
 * -1 to go on, or the exit status: 0 after -n, 1 after an error (said on
 * stderr).
 */
int daemon_configure(const struct daemon_def *d, void *conf, int *argc,
    char ***argv, struct conf_opts *opts);

/* Puts the number keys of conf in their normal form (d->clamps). */
void daemon_clamp(const struct daemon_def *d, void *conf);

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
 * The main thread's loop, one for every daemon: tells systemd ready
 * (sd_notify of ready, e.g. "READY=1\nSTATUS=listening"), then until
 * SIGTERM or SIGINT waits for a signal, at most d->wait_ms (0: the
 * watchdog's wait, daemon_watchdog_wait), and after each wake-up feeds
 * the watchdog if d->alive is set (daemon_watchdog_tick). SIGHUP calls
 * d->hup(arg), or logs d->hup_msg when hup is NULL. Every wake-up that
 * is not a stop then calls d->tick(arg) when set. On the stop: logs
 * d->stopping and sends STOPPING=1, then returns; the caller shuts its
 * work down.
 */
void daemon_serve(const struct daemon_def *d, const sigset_t *set,
    const char *ready, void *arg);

/*
 * Sleeps ms in short naps, waking early when *stopping is set. 1 if
 * stopping, else 0.
 */
int daemon_nap(const volatile int *stopping, uint64_t ms);

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
