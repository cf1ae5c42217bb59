/* SPDX-License-Identifier: MIT */
/* daemon.c - see daemon.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "fsync.h"
#include "guard.h"
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
daemon_exit(int status)
{
	guard_shutdown();
	_exit(status);
}
