/* SPDX-License-Identifier: MIT */
/*
 * eventfold-run.c - eventfold as one foreground process, for those who
 * ran EventfoldDB as one (a container's entry point, a shell): starts
 * eventfold-stored, eventfold-runnerd and eventfold-gatewayd, forwards
 * signals to them, stops all when one dies and exits with its status.
 * They read the environment it was given (EventfoldDB's EVENTFOLD_*
 * variables, eventfold.conf(5)) and the file of -f.
 *
 * Why a C program and not a sh script: it must wait for whichever of
 * three children ends first while also taking signals, and as PID 1 of a
 * container reap every orphan; POSIX sh has neither `wait -n` nor a way
 * to wait for a signal and a child at once without races. Here one
 * sigwaitinfo() loop takes both (SIGCHLD included), with no handler.
 *
 * Stopping: on SIGTERM or SIGINT, or when a daemon ends, the others get
 * SIGTERM in the order that loses nothing: gatewayd and runnerd first,
 * stored once they are gone (so it finishes the appends they sent);
 * any still running STOP_GRACE_S later is killed. The exit status is
 * that of the daemon that ended first (128 + N if signal N ended it),
 * or 0 when a signal asked for the stop and all stopped cleanly.
 * SIGQUIT stops them the same way. SIGHUP goes to all three (each
 * reloads what its man page says). SIGUSR1 and SIGUSR2 mean nothing to
 * the daemons, and would end them: they are logged and dropped.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define STOP_GRACE_S 30

enum { STORED, RUNNERD, GATEWAYD, NDAEMONS };

static const char *const names[NDAEMONS] = {
	"eventfold-stored",
	"eventfold-runnerd",
	"eventfold-gatewayd",
};

struct daemon {
	pid_t pid;  /* 0: not running */
	int status; /* wait status once it ended */
};

static struct daemon d[NDAEMONS];
static char selfdir[PATH_MAX];

static const char usage[] =
    "usage: eventfold-run [-f file]\n"
    "Runs eventfold-stored, eventfold-runnerd and eventfold-gatewayd in "
    "the foreground,\nconfigured by the environment (EVENTFOLD_DATA, "
    "EVENTFOLD_LISTEN, ..., see\neventfold.conf(5)) and by file; forwards "
    "signals; stops all when one ends and\nexits with its status.\n";

/* The exit status of a wait status, as a shell gives it. */
static int
exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static pid_t
start(int i, const char *file, const sigset_t *orig)
{
	char path[PATH_MAX + 64];
	const char *argv[4];
	int n = 0;
	pid_t pid;

	argv[n++] = names[i];
	if (file != NULL) {
		argv[n++] = "-f";
		argv[n++] = file;
	}
	argv[n] = NULL;
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0)
		return pid;
	/* the child: the signal mask of our parent, its own process
	 * group (a terminal's ^C comes to us, and we stop it in order),
	 * no systemd notify socket (three daemons cannot share it) */
	sigprocmask(SIG_SETMASK, orig, NULL);
	setpgid(0, 0);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	/* installed side by side; else wherever PATH finds it */
	snprintf(path, sizeof(path), "%s/%s", selfdir, names[i]);
	if (*selfdir != '\0' && access(path, X_OK) == 0)
		execv(path, (char *const *)argv);
	execvp(names[i], (char *const *)argv);
	fprintf(stderr, "eventfold-run: cannot run %s: %s\n", names[i],
	    strerror(errno));
	_exit(127);
}

/* Reaps every ended child (orphans too, as PID 1); 1 if one of ours. */
static int
reap(int *first)
{
	pid_t pid;
	int st, i, ours = 0;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (i = 0; i < NDAEMONS; i++) {
			if (d[i].pid != pid)
				continue;
			d[i].pid = 0;
			d[i].status = st;
			ours = 1;
			log_info("%s (pid %d) ended: status %d", names[i],
			    (int)pid, exit_code(st));
			if (*first < 0)
				*first = i;
		}
	return ours;
}

static int
running(int from, int to)
{
	int i;

	for (i = from; i <= to; i++)
		if (d[i].pid != 0)
			return 1;
	return 0;
}

static void
signal_all(int from, int to, int sig)
{
	int i;

	for (i = from; i <= to; i++)
		if (d[i].pid != 0)
			kill(d[i].pid, sig);
}

/* A signal that is not a stop: SIGHUP to all, the rest dropped. */
static void
forward(int sig)
{
	if (sig == SIGHUP)
		signal_all(0, NDAEMONS - 1, sig);
	else
		log_info("%s means nothing to eventfold: ignored",
		    strsignal(sig));
}

/*
 * Waits up to the deadline for daemons from..to to end, reaping; other
 * signals that come meanwhile are forwarded; a second SIGTERM, SIGINT
 * or SIGQUIT makes the wait end at once (and what runs is killed). 0 if they
 * all ended.
 */
static int
wait_ended(const sigset_t *set, int from, int to, time_t deadline, int *first)
{
	struct timespec ts;
	siginfo_t si;
	int sig;

	while (running(from, to)) {
		ts.tv_sec = deadline - time(NULL);
		ts.tv_nsec = 0;
		if (ts.tv_sec <= 0)
			return -1;
		sig = sigtimedwait(set, &si, &ts);
		if (sig == SIGCHLD)
			reap(first);
		else if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
			return -1;
		else if (sig > 0)
			forward(sig);
	}
	return 0;
}

/* Stops what runs: the clients of stored first, then stored. */
static void
stop(const sigset_t *set, int *first)
{
	time_t deadline = time(NULL) + STOP_GRACE_S;

	signal_all(RUNNERD, GATEWAYD, SIGTERM);
	if (wait_ended(set, RUNNERD, GATEWAYD, deadline, first) != 0) {
		log_warnx("gatewayd or runnerd did not stop: killing them");
		signal_all(RUNNERD, GATEWAYD, SIGKILL);
		(void)wait_ended(set, RUNNERD, GATEWAYD, time(NULL) + 5,
		    first);
	}
	signal_all(STORED, STORED, SIGTERM);
	if (wait_ended(set, STORED, STORED, deadline, first) != 0) {
		log_warnx("eventfold-stored did not stop: killing it");
		signal_all(STORED, STORED, SIGKILL);
		(void)wait_ended(set, STORED, STORED, time(NULL) + 5, first);
	}
}

int
main(int argc, char **argv)
{
	const char *file = NULL;
	sigset_t set, orig;
	siginfo_t si;
	ssize_t n;
	char *slash;
	int ch, i, sig, first = -1, asked = 0;

	log_init("eventfold-run", 0);
	if (log_level_from_env() != 0)
		return 1;
	while ((ch = getopt(argc, argv, "f:h")) != -1) {
		switch (ch) {
		case 'f':
			file = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 1;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 1;
	}
	if ((n = readlink("/proc/self/exe", selfdir, sizeof(selfdir) - 1)) >
	    0) {
		selfdir[n] = '\0';
		if ((slash = strrchr(selfdir, '/')) != NULL)
			*slash = '\0';
	} else
		*selfdir = '\0';

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &orig);

	for (i = 0; i < NDAEMONS; i++) {
		d[i].pid = start(i, file, &orig);
		log_info("started %s (pid %d)", names[i], (int)d[i].pid);
	}
	for (;;) {
		sig = sigwaitinfo(&set, &si);
		if (sig == SIGCHLD) {
			if (reap(&first))
				break;
		} else if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
			log_info("%s: stopping", strsignal(sig));
			asked = 1;
			break;
		} else if (sig > 0)
			forward(sig);
	}
	if (first >= 0)
		log_warnx("%s ended: stopping the others", names[first]);
	stop(&set, &first);
	reap(&first);
	if (!asked)
		return exit_code(d[first].status);
	/* asked to stop: 0 if every daemon ended cleanly */
	for (i = 0; i < NDAEMONS; i++)
		if (exit_code(d[i].status) != 0)
			return exit_code(d[i].status);
	return 0;
}
