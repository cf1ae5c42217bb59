/* SPDX-License-Identifier: MIT */
/* daemon.c - see daemon.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "fsync.h"
#include "guard.h"
#include "clock.h"
#include "log.h"

int
daemon_conf_check(const struct conf_opts *o, const struct conf_key *keys,
    const char *section, const void *conf)
{
	if (o->check) {
		if (o->verbose)
			conf_print(stdout, keys, section, conf);
		else
			printf("configuration OK\n");
		return 1;
	}
	if (o->verbose)
		log_setverbose(1);
	return 0;
}

static const struct env_flag data_env[] = {
	{ "EVENTFOLD_DATA", "--data-dir" }, /* only if a directory */
	{ NULL, NULL },
};

/* The field of key name in conf (described by keys); NULL if none. */
static void *
conf_field(const struct conf_key *keys, void *conf, const char *name)
{
	for (; keys->name != NULL; keys++)
		if (strcmp(keys->name, name) == 0)
			return (char *)conf + keys->off;
	return NULL;
}

void
daemon_clamp(const struct daemon_def *d, void *conf)
{
	const struct daemon_clamp *c;
	uint64_t *v;

	for (c = d->clamps; c != NULL && c->key != NULL; c++) {
		v = conf_field(d->keys, conf, c->key);
		if (*v == 0)
			*v = c->zero;
		if (c->min != 0 && *v < c->min)
			*v = c->min;
		if (c->max != 0 && *v > c->max)
			*v = c->max;
	}
}

/* EventfoldDB's variables as flags before the command line's: they
 * override the file and the command line overrides them. */
static void
daemon_env(const struct daemon_def *d, int *argc, char ***argv)
{
	const struct env_flag *tab = d->env;
	const char *envdir;
	char err[1200];

	if (d->data_env && env_data_dir("", &envdir, err, sizeof(err)) == 0 &&
	    envdir != NULL)
		tab = data_env;
	if (tab != NULL)
		*argv = env_argv(tab, *argc, *argv, argc);
}

int
daemon_configure(const struct daemon_def *d, void *conf, int *argc,
    char ***argv, struct conf_opts *opts)
{
	static char name[64]; /* the log's, for the daemon's life */
	const char *envdir;
	char usage[2048], err[1200];

	snprintf(name, sizeof(name), "eventfold-%s", d->section);
	log_init(name, 0);
	daemon_env(d, argc, argv);
	snprintf(usage, sizeof(usage),
	    "usage: %s [-dnv] [-f file] [--key value ...]\n%s", name,
	    d->about);
	if (conf_load(d->keys, d->section, conf, argc, *argv, opts, usage) !=
	    0)
		return 1;
	if (log_level_from_env() != 0)
		return 1;
	if (d->data_env &&
	    env_data_dir(*(char **)conf_field(d->keys, conf, "runtime_dir"),
	        &envdir, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", name, err);
		return 1;
	}
	if (*argc > 1) {
		fprintf(stderr, "%s: unexpected argument %s (see --help)\n",
		    name, (*argv)[1]);
		return 1;
	}
	if (d->check != NULL && d->check(conf) != 0)
		return 1;
	daemon_clamp(d, conf);
	if (daemon_conf_check(opts, d->keys, d->section, conf))
		return 0;
	return -1;
}

void
daemon_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* mkdir(2) of path, made durable in its parent; 0 if it exists. */
static int
mkdir_durable(const char *path, mode_t mode)
{
	char parent[4096], *slash;

	if (mkdir(path, mode) != 0)
		return errno == EEXIST ? 0 : -errno;
	snprintf(parent, sizeof(parent), "%s", path);
	if ((slash = strrchr(parent, '/')) == NULL)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	return fsync_path(parent, 1);
}

int
daemon_mkdir_p(const char *dir, mode_t mode)
{
	char buf[4096], *p;
	int rc;

	if (strlen(dir) >= sizeof(buf))
		return -ENAMETOOLONG;
	snprintf(buf, sizeof(buf), "%s", dir);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if ((rc = mkdir_durable(buf, 0755)) != 0)
			return rc;
		*p = '/';
	}
	return mkdir_durable(buf, mode);
}

void
daemon_watchdog_init(struct daemon_watchdog *wd)
{
	if (sd_watchdog_enabled(0, &wd->usec) <= 0)
		wd->usec = 0;
}

struct timespec
daemon_watchdog_wait(const struct daemon_watchdog *wd)
{
	struct timespec ts = { 0, 500 * 1000 * 1000 };

	if (wd->usec > 0 && wd->usec / 2 < 500000)
		ts.tv_nsec = (long)(wd->usec / 2) * 1000;
	return ts;
}

void
daemon_watchdog_tick(const struct daemon_watchdog *wd,
    int (*alive)(uint64_t limit_ms))
{
	if (wd->usec > 0 && alive(wd->usec / 2000))
		sd_notify(0, "WATCHDOG=1");
}

int
daemon_progress(uint64_t waiting, uint64_t beat_ms, uint64_t now_ms,
    uint64_t limit_ms)
{
	if (waiting == 0 || beat_ms == 0)
		return 1;
	return now_ms <= beat_ms || now_ms - beat_ms < limit_ms;
}

void
daemon_serve(const struct daemon_def *d, const sigset_t *set,
    const char *ready, void *arg)
{
	struct daemon_watchdog wd;
	struct timespec ts;
	int sig;

	sd_notify(0, ready);
	daemon_watchdog_init(&wd);
	for (;;) {
		ts = daemon_watchdog_wait(&wd);
		if (d->wait_ms > 0) {
			ts.tv_sec = d->wait_ms / 1000;
			ts.tv_nsec = d->wait_ms % 1000 * 1000 * 1000;
		}
		sig = sigtimedwait(set, NULL, &ts);
		if (d->alive != NULL)
			daemon_watchdog_tick(&wd, d->alive);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP && d->hup != NULL)
			d->hup(arg);
		else if (sig == SIGHUP)
			log_info("%s", d->hup_msg);
		if (d->tick != NULL)
			d->tick(arg);
	}
	log_info("%s", d->stopping);
	sd_notify(0, "STOPPING=1");
}

int
daemon_nap(const volatile int *stopping, uint64_t ms)
{
	uint64_t end = clock_mono_ms() + ms;
	struct timespec ts;

	while (!*stopping && clock_mono_ms() < end) {
		ts.tv_sec = 0;
		ts.tv_nsec = 20 * 1000 * 1000;
		nanosleep(&ts, NULL);
	}
	return *stopping != 0;
}

void
daemon_exit(int status)
{
	guard_shutdown();
	_exit(status);
}
