/* SPDX-License-Identifier: MIT */
/*
 * server.c - the eventfold-stored processes eventfold-bench runs: each
 * on directories of its own inside one mkdtemp root under /tmp (or
 * TMPDIR_BASE), its output in a log file there, started with "-f
 * /dev/null" so a system config cannot change what is measured.
 * Readiness is the first STATUS answered; stopping is SIGTERM, then
 * SIGKILL after 30 s; the daemon also gets SIGTERM if the bench dies
 * (PR_SET_PDEATHSIG). server_cleanup() stops what runs and removes the
 * root.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "client.h"
#include "log.h"

#define READY_TIMEOUT_S 300 /* recovery of a big log, on a busy machine */
#define STOP_TIMEOUT_S  30

static char tmp_root[PATH_MAX]; /* "" until created */
static struct server *live;     /* the running server, for cleanup */
static char stored_bin[PATH_MAX];

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb;
	(void)type;
	(void)f;
	if (remove(path) != 0)
		log_warn("remove %s", path);
	return 0;
}

void
server_find_stored(const char *given)
{
	static const char *rel[] = {
		"../daemons/stored/eventfold-stored", /* build tree */
		"eventfold-stored", "../sbin/eventfold-stored", /* installed */
	};
	char exe[PATH_MAX], *slash;
	ssize_t n;
	size_t i;

	if (given != NULL) {
		snprintf(stored_bin, sizeof(stored_bin), "%s", given);
		return;
	}
	snprintf(stored_bin, sizeof(stored_bin), "eventfold-stored");
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
		return;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return;
	*slash = '\0';
	for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		char p[PATH_MAX + 64];

		snprintf(p, sizeof(p), "%s/%s", exe, rel[i]);
		if (access(p, X_OK) == 0 && realpath(p, stored_bin) != NULL)
			return;
	}
	snprintf(stored_bin, sizeof(stored_bin), "eventfold-stored");
}

static void
make_tmp_root(void)
{
	const char *base = getenv("TMPDIR_BASE");

	if (tmp_root[0] != '\0')
		return;
	snprintf(tmp_root, sizeof(tmp_root), "%s/eventfold-bench.XXXXXX",
	    base && *base ? base : "/tmp");
	if (mkdtemp(tmp_root) == NULL) {
		tmp_root[0] = '\0';
		fatal("mkdtemp");
	}
}

/*
 * Sets up s for a new server: data dir (given or under the temp root)
 * and a runtime dir of its own. Nothing is started.
 */
void
server_init(struct server *s, const char *name, const char *data_dir)
{
	memset(s, 0, sizeof(*s));
	make_tmp_root();
	if (data_dir != NULL)
		snprintf(s->data_dir, sizeof(s->data_dir), "%s", data_dir);
	else
		snprintf(s->data_dir, sizeof(s->data_dir), "%s/%s-data",
		    tmp_root, name);
	snprintf(s->runtime_dir, sizeof(s->runtime_dir), "%s/%s-run", tmp_root,
	    name);
	snprintf(s->log, sizeof(s->log), "%s/%s-stored.log", tmp_root, name);
	client_url(s->url, sizeof(s->url), s->runtime_dir, STORE_SOCK, NULL);
}

/* Starts stored on s's directories; does not wait. 0 or -1. */
static int
server_spawn(struct server *s)
{
	pid_t parent = getpid(), pid;
	const char *av[24];
	int fd, i, n = 0;

	/* a fresh runtime dir: no stale socket can answer for the new one */
	if (mkdir(s->runtime_dir, 0750) != 0 && errno != EEXIST)
		fatal("mkdir %s", s->runtime_dir);
	unlink(s->url + strlen("ipc://"));
	fflush(NULL);
	if ((pid = fork()) < 0) {
		log_warn("fork");
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		if ((fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0640)) >=
		    0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		if ((fd = open("/dev/null", O_RDONLY)) >= 0) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		/* -f /dev/null: the defaults, not whatever /etc holds */
		av[n++] = "eventfold-stored";
		av[n++] = "-d";
		av[n++] = "-f";
		av[n++] = "/dev/null";
		av[n++] = "--data-dir";
		av[n++] = s->data_dir;
		av[n++] = "--runtime-dir";
		av[n++] = s->runtime_dir;
		if (s->segment_size != NULL) {
			av[n++] = "--segment-size";
			av[n++] = s->segment_size;
		}
		for (i = 0; i < 8 && s->extra[i] != NULL; i++)
			av[n++] = s->extra[i];
		av[n] = NULL;
		execvp(stored_bin, (char *const *)av);
		dprintf(STDERR_FILENO, "exec %s: %s\n", stored_bin,
		    strerror(errno));
		_exit(127);
	}
	s->pid = pid;
	live = s;
	return 0;
}

static void
server_log_tail(const struct server *s)
{
	char line[512];
	FILE *fp;

	if ((fp = fopen(s->log, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL)
		fprintf(stderr, "  stored: %s", line);
	fclose(fp);
}

/*
 * Waits until the server answers STATUS (filled into *st), polling every
 * millisecond for its socket, so the time to ready is accurate to about
 * that. Returns 0, or -1 if it exited, the wait timed out or a signal
 * came.
 */
static int
server_wait_ready(struct server *s, struct ipc_status_rep *st)
{
	const char *sock = s->url + strlen("ipc://");
	uint64_t deadline = now_ns() + (uint64_t)READY_TIMEOUT_S * 1000000000u;
	struct client_reply rep;
	struct ef_client c;
	struct stat sb;
	int status, rc;

	while (!interrupted && now_ns() < deadline) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			log_warnx("%s exited (status %d) before it was ready; "
			          "its log:",
			    stored_bin, status);
			s->pid = 0;
			live = NULL;
			server_log_tail(s);
			return -1;
		}
		if (stat(sock, &sb) != 0) {
			sleep_ms(1);
			continue;
		}
		if (client_open(&c, s->url, 1000) != 0)
			fatalx("client_open %s", s->url);
		rc = client_status(&c, &rep, st);
		client_reply_free(&rep);
		client_close(&c);
		if (rc == EF_S_OK)
			return 0;
		sleep_ms(1);
	}
	if (!interrupted)
		log_warnx("%s did not answer STATUS within %d s", stored_bin,
		    READY_TIMEOUT_S);
	return -1;
}

/* Stops the server: SIGTERM, bounded wait, then SIGKILL. */
void
server_stop(struct server *s)
{
	uint64_t deadline;
	pid_t rc;
	int status = 0;

	if (s == NULL || s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	deadline = now_ns() + (uint64_t)STOP_TIMEOUT_S * 1000000000u;
	for (;;) {
		rc = waitpid(s->pid, &status, WNOHANG);
		if (rc == s->pid || (rc < 0 && errno != EINTR))
			break;
		if (now_ns() > deadline) {
			log_warnx(
			    "stored %d ignored SIGTERM for %d s; killing",
			    (int)s->pid, STOP_TIMEOUT_S);
			kill(s->pid, SIGKILL);
			while (
			    waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		usleep(2000);
	}
	if (rc == s->pid && WIFEXITED(status) && WEXITSTATUS(status) != 0)
		log_warnx("stored exited with status %d", WEXITSTATUS(status));
	s->pid = 0;
	if (live == s)
		live = NULL;
}

int
server_start(struct server *s, struct ipc_status_rep *st)
{
	struct ipc_status_rep dummy;

	if (server_spawn(s) != 0)
		return -1;
	if (server_wait_ready(s, st ? st : &dummy) != 0) {
		server_stop(s);
		return -1;
	}
	return 0;
}

void
server_cleanup(void)
{
	if (live != NULL)
		server_stop(live);
	if (tmp_root[0] != '\0') {
		nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		tmp_root[0] = '\0';
	}
}
