/* SPDX-License-Identifier: MIT */
/*
 * test_ctl.c - eventfoldctl as a new operator meets it (issue 13): with
 * no daemon where it looks, with options in the wrong place, asking for
 * help, with bad counts and oversized input, with empty results, and
 * with the runner's store down. Real stored and runnerd on ipc:// paths
 * in a fresh directory; runnerd (EF_RUNNERD, with the example plugins
 * of EF_PLUGIN_DIR) is started here the way harness.c starts stored.
 *
 * "At once" is checked without timing anything: the client's timeout is
 * set far above the time h_ctl() allows (--timeout-ms 60000 against 20
 * s), so a command that waited for a daemon instead of failing fails
 * the test.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

TestSuite(ctl, .fini = h_cleanup, .timeout = 240);

#define SLOW  "60000" /* a --timeout-ms no test may wait out */
#define QUICK 20000   /* what h_ctl allows a command that must not wait */

static pid_t runnerd_pid;

static void
kill_runnerd(void)
{
	if (runnerd_pid > 0) {
		kill(runnerd_pid, SIGKILL);
		(void)h_wait_pid(runnerd_pid, 5000);
		runnerd_pid = 0;
	}
}

/* Starts runnerd on s's directories with the example plugins (extra:
 * more flags, NULL-ended, may be NULL); log to dir/runnerd.log. */
static pid_t
runnerd_spawn_in(const struct h_stored *s, const char *run_dir,
    const char *plugins, const char *const *extra)
{
	char log[H_PATH + 16], *argv[32];
	const char *bin = getenv("EF_RUNNERD");
	pid_t parent = getpid(), pid;
	int n = 0, i, fd;

	cr_assert_not_null(bin, "EF_RUNNERD is not set");
	cr_assert_not_null(plugins, "EF_PLUGIN_DIR is not set");
	snprintf(log, sizeof(log), "%s/runnerd.log", s->dir);
	argv[n++] = (char *)"eventfold-runnerd";
	argv[n++] = (char *)"-d";
	argv[n++] = (char *)"-f";
	argv[n++] = (char *)"/dev/null";
	argv[n++] = (char *)"--data-dir";
	argv[n++] = (char *)s->data_dir;
	argv[n++] = (char *)"--runtime-dir";
	argv[n++] = (char *)run_dir;
	argv[n++] = (char *)"--plugin-dir";
	argv[n++] = (char *)plugins;
	for (i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) <
	    0)
		cr_assert_fail("open %s: %s", log, strerror(errno));
	fflush(NULL);
	if ((pid = fork()) < 0)
		cr_assert_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(bin, argv);
		_exit(127);
	}
	close(fd);
	return pid;
}

static pid_t
runnerd_spawn(const struct h_stored *s, const char *run_dir,
    const char *const *extra)
{
	return runnerd_spawn_in(s, run_dir, getenv("EF_PLUGIN_DIR"), extra);
}

/* Runs eventfoldctl --runtime-dir run_dir ARGS...; returns the exit
 * code, *out and *err as h_ctl. */
static int
ctl_in(const char *dir, const char *run_dir, const char *const *args,
    char **out, char **err)
{
	const char *argv[32];
	int n = 0, i;

	argv[n++] = "--timeout-ms";
	argv[n++] = SLOW;
	argv[n++] = "--runtime-dir";
	argv[n++] = run_dir;
	for (i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return h_ctl(dir, argv, NULL, 0, QUICK, out, err);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Every command that dials a request socket, with valid arguments. */
static const char *const *dialing[] = {
	ARGS("status"),
	ARGS("read", "all"),
	ARGS("streams"),
	ARGS("segments"),
	ARGS("rotate"),
	ARGS("archive"),
	ARGS("append", "0b4e2f8a-5c1d-4e7b-9a3f-2d6c8e1f0a47", "T", "{}"),
	ARGS("exec", "todo", "l1", "Add", "{}"),
	ARGS("state", "todo", "l1"),
	ARGS("query", "todo_list"),
	ARGS("projections"),
	ARGS("plugins"),
	ARGS("deadletters"),
	ARGS("rebuild", "todo_list"),
	ARGS("reset", "todo_list"),
	ARGS("replay", "todo_list", "--until", "1"),
	ARGS("backup", "/tmp/eventfoldctl-test-no-backup"),
	ARGS("export", "--quiet"),
	ARGS("import", "/dev/null"),
};

static int
is_runner_cmd(const char *name)
{
	static const char *const r[] = { "exec", "state", "query",
		"projections", "plugins", "deadletters", "rebuild", "reset",
		"replay", NULL };
	int i;

	for (i = 0; r[i] != NULL; i++)
		if (!strcmp(r[i], name))
			return 1;
	return 0;
}

Test(ctl, no_daemon_fails_at_once_naming_path_and_flag)
{
	const char *dir = h_tmpdir();
	char run[H_PATH], sock[H_PATH + 32], *out, *err;
	size_t i;
	int rc;

	snprintf(run, sizeof(run), "%s/nothing-here", dir);
	for (i = 0; i < sizeof(dialing) / sizeof(dialing[0]); i++) {
		const char *verb = dialing[i][0];

		rc = ctl_in(dir, run, dialing[i], &out, &err);
		snprintf(sock, sizeof(sock), "no socket at %s/%s", run,
		    is_runner_cmd(verb) ? "runner.sock" : "store.sock");
		cr_expect_eq(rc, 2, "%s: exit %d, stderr: %s", verb, rc, err);
		cr_expect(err && strstr(err, sock),
		    "%s: stderr does not say "
		    "\"%s\": %s",
		    verb, sock, err);
		cr_expect(err && strstr(err, "--runtime-dir"),
		    "%s: stderr "
		    "does not name --runtime-dir: %s",
		    verb, err);
		cr_expect(err &&
		        strstr(err,
		            is_runner_cmd(verb) ? "eventfold-runnerd" :
		                                  "eventfold-stored"),
		    "%s: stderr "
		    "does not name the daemon: %s",
		    verb, err);
		cr_expect(out && *out == '\0', "%s: stdout: %s", verb, out);
		free(out);
		free(err);
	}
}

Test(ctl, stale_socket_and_configured_url)
{
	const char *dir = h_tmpdir();
	char run[H_PATH], url[H_PATH + 64], *err;
	struct sockaddr_un sa;
	int fd, rc;

	/* a socket file left by a daemon that died: nobody listens */
	snprintf(run, sizeof(run), "%s/run", dir);
	cr_assert_eq(mkdir(run, 0755), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	cr_assert_lt(strlen(run) + 12, sizeof(sa.sun_path));
	memcpy(sa.sun_path, run, strlen(run));
	memcpy(sa.sun_path + strlen(run), "/store.sock", 12);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	rc = ctl_in(dir, run, ARGS("status"), NULL, &err);
	cr_expect_eq(rc, 2, "exit %d: %s", rc, err);
	cr_expect(err && strstr(err, "nobody listens on") &&
	        strstr(err, sa.sun_path),
	    "stderr: %s", err);
	free(err);

	/* a configured URL: the message names --store-url, not the dir */
	snprintf(url, sizeof(url), "--store-url=ipc://%s/elsewhere.sock", dir);
	rc = h_ctl(dir, ARGS("--timeout-ms", SLOW, url, "status"), NULL, 0,
	    QUICK, NULL, &err);
	cr_expect_eq(rc, 2, "exit %d: %s", rc, err);
	cr_expect(err && strstr(err, "elsewhere.sock") &&
	        strstr(err, "--store-url"),
	    "stderr: %s", err);
	free(err);
}

/* The command words listed by --help, one per "  word ..." line. */
static size_t
help_verbs(const char *help, char verbs[][32], size_t max)
{
	const char *p = strstr(help, "\ncommands");
	size_t n = 0, l;

	cr_assert_not_null(p, "--help lists no commands: %s", help);
	p = strchr(p + 1, '\n');
	while (p != NULL && p[1] == ' ' && p[2] == ' ' && n < max) {
		p += 3;
		l = strcspn(p, " \n");
		cr_assert_lt(l, 32);
		memcpy(verbs[n], p, l);
		verbs[n++][l] = '\0';
		p = strchr(p, '\n');
	}
	return n;
}

/* A listening unix socket at path, non-blocking: a client that dials it
 * is left in its backlog, where accept() finds it. */
static int
listen_at(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	fd = h_unix_socket(&sa, path, SOCK_NONBLOCK);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s",
	    path);
	cr_assert_eq(listen(fd, 128), 0);
	return fd;
}

/*
 * Help needs no daemon: run with no daemon anywhere (--runtime-dir is a
 * directory where only our own listening sockets sit, and -f /dev/null
 * keeps the system config out), every `VERB --help`, `VERB x -h` and
 * `help VERB` exits 0 with its usage on stdout, nothing on stderr, and
 * nobody connected to store.sock, store-events.sock or runner.sock.
 */
#define HELP_ARGS(...)                                                        \
	ARGS("-f", "/dev/null", "--runtime-dir", run, __VA_ARGS__)

/* `VERB --help`, `VERB x -h` and `help VERB` print VERB's usage on stdout
 * and nothing on stderr (eventfoldctl in dir, runtime dir run). */
static void
verb_help_answers(const char *dir, const char *run, const char *verb)
{
	char want[128], *out, *err;
	int rc;

	snprintf(want, sizeof(want),
	    "usage: eventfoldctl [options] "
	    "%s",
	    verb);
	rc = h_ctl(dir, HELP_ARGS(verb, "--help"), NULL, 0, QUICK, &out, &err);
	cr_expect_eq(rc, 0, "%s --help: exit %d, %s", verb, rc, err);
	cr_expect(out && !strncmp(out, want, strlen(want)), "%s --help: %s",
	    verb, out);
	cr_expect(err && *err == '\0', "%s --help: stderr %s", verb, err);
	free(out);
	free(err);
	/* after other arguments too, and as `help VERB` */
	rc = h_ctl(dir, HELP_ARGS(verb, "x", "-h"), NULL, 0, QUICK, &out,
	    &err);
	cr_expect(rc == 0 && out && strstr(out, want) && err && *err == '\0',
	    "%s x -h: %d %s %s", verb, rc, out, err);
	free(out);
	free(err);
	rc = h_ctl(dir, HELP_ARGS("help", verb), NULL, 0, QUICK, &out, &err);
	cr_expect(rc == 0 && out && strstr(out, want) && err && *err == '\0',
	    "help %s: %d %s %s", verb, rc, out, err);
	free(out);
	free(err);
}

/* Nothing dialled the three listening sockets fds (socks), which are
 * closed. */
static void
nothing_dialled(const int *fds, const char *const *socks)
{
	int k;

	for (k = 0; k < 3; k++) {
		int c = accept(fds[k], NULL, NULL);

		cr_expect(c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
		    "something dialled %s while asking for help", socks[k]);
		if (c >= 0)
			close(c);
		close(fds[k]);
	}
}

Test(ctl, every_command_answers_help)
{
	const char *dir = h_tmpdir();
	static const char *const socks[] = { "store.sock", "store-events.sock",
		"runner.sock" };
	char verbs[64][32], run[H_PATH], path[H_PATH + 32];
	char *out, *err, *help;
	int fds[3], rc, k;
	size_t n, i;

	snprintf(run, sizeof(run), "%s/run", dir);
	cr_assert_eq(mkdir(run, 0755), 0);
	for (k = 0; k < 3; k++) {
		snprintf(path, sizeof(path), "%s/%s", run, socks[k]);
		fds[k] = listen_at(path);
	}
	rc = h_ctl(dir, HELP_ARGS("--help"), NULL, 0, QUICK, &help, NULL);
	cr_assert_eq(rc, 0);
	/* a client's help has no daemon flags */
	cr_expect_null(strstr(help, "  -d "), "--help lists -d: %s", help);
	cr_expect_null(strstr(help, "foreground"), "--help: %s", help);
	cr_expect(strstr(help, "--runtime-dir"), "--help: %s", help);
	n = help_verbs(help, verbs, 64);
	cr_assert_geq(n, 21, "only %zu commands in --help", n);
	for (i = 0; i < n; i++)
		verb_help_answers(dir, run, verbs[i]);
	rc = h_ctl(dir, HELP_ARGS("help"), NULL, 0, QUICK, &out, NULL);
	cr_expect(rc == 0 && out && !strcmp(out, help), "help: %d", rc);
	free(out);
	rc = h_ctl(dir, HELP_ARGS("help", "nosuch"), NULL, 0, QUICK, NULL,
	    &err);
	cr_expect(rc == 1 && err && strstr(err, "unknown command"),
	    "help nosuch: %d %s", rc, err);
	free(err);
	free(help);
	nothing_dialled(fds, socks);
	/* the check can fail: a command that dials is seen */
	unlink(path); /* runner.sock, listened on again */
	fds[0] = listen_at(path);
	rc = h_ctl(dir,
	    ARGS("--timeout-ms", "300", "--runtime-dir", run, "plugins"), NULL,
	    0, QUICK, NULL, NULL);
	cr_expect_neq(rc, 0);
	k = accept(fds[0], NULL, NULL);
	cr_expect_geq(k, 0,
	    "plugins did not dial runner.sock: the check "
	    "above proves nothing");
	if (k >= 0)
		close(k);
	close(fds[0]);
}
#undef HELP_ARGS

Test(ctl, global_option_after_the_command)
{
	const char *dir = h_tmpdir();
	const char *const *cases[] = {
		ARGS("status", "--runtime-dir", "/x"),
		ARGS("read", "all", "--store-url=ipc:///x"),
		ARGS("projections", "-f", "/dev/null"),
		ARGS("tail", "--timeout-ms", "5"),
	};
	char *err;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = h_ctl(dir, cases[i], NULL, 0, QUICK, NULL, &err);
		cr_expect_eq(rc, 1, "%s: exit %d", cases[i][0], rc);
		cr_expect(err &&
		        strstr(err,
		            "options go before the command "
		            "word"),
		    "%s: %s", cases[i][0], err);
		free(err);
	}
}

Test(ctl, count_zero_refused_before_dialling)
{
	const char *dir = h_tmpdir();
	const struct {
		const char *const *args;
		const char *says;
	} cases[] = {
		{ ARGS("read", "all", "--count", "0"),
		    "--count: a number "
		    "above 0" },
		{ ARGS("streams", "--count", "0"),
		    "--count: a number above 0" },
		{ ARGS("tail", "--count", "0"), "--count: a number above 0" },
		{ ARGS("replay", "todo_list", "--until", "1", "--limit", "0"),
		    "--limit: 1.." },
		{ ARGS("query", "todo_list", "--limit", "0"), "--limit: 1.." },
		{ ARGS("backup", "/tmp/eventfoldctl-test-no-backup", "--wait",
		      "0"),
		    "--wait: a number of seconds, at least 1" },
	};
	char run[H_PATH], *err;
	size_t i;
	int rc;

	/* no daemon: exit 1 (usage), not 2 (unreachable), proves that
	 * nothing was dialled */
	snprintf(run, sizeof(run), "%s/none", dir);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = ctl_in(dir, run, cases[i].args, NULL, &err);
		cr_expect_eq(rc, 1, "%s: exit %d: %s", cases[i].args[0], rc,
		    err);
		cr_expect(err && strstr(err, cases[i].says), "%s: %s",
		    cases[i].args[0], err);
		free(err);
	}
}

Test(ctl, oversized_stdin_says_why)
{
	const char *dir = h_tmpdir();
	size_t len = (64u << 20) + 1;
	char *big = malloc(len), *err;
	int rc;

	cr_assert_not_null(big);
	memset(big, 'x', len);
	rc = h_ctl(dir,
	    ARGS("--runtime-dir", dir, "append",
	        "0b4e2f8a-5c1d-4e7b-9a3f-2d6c8e1f0a47", "Big", "-"),
	    big, len, 60000, NULL, &err);
	free(big);
	cr_expect_eq(rc, 1, "exit %d: %s", rc, err);
	cr_expect(err &&
	        strstr(err,
	            "cannot read the payload from stdin: "
	            "more than 64 MiB (the most one request holds)"),
	    "stderr: %s", err);
	free(err);
}

Test(ctl, oversized_exec_stdin_says_why)
{
	const char *dir = h_tmpdir();
	char run[H_PATH], *big, *err;
	size_t len = (64u << 20) + 1;
	int rc;

	/* over 64 MiB, and just over a command's 64 KiB: the same reason,
	 * said before anything is dialled (no daemon: exit 1, not 2) */
	snprintf(run, sizeof(run), "%s/none", dir);
	big = malloc(len);
	cr_assert_not_null(big);
	memset(big, 'x', len);
	rc = h_ctl(dir,
	    ARGS("--runtime-dir", run, "exec", "todo", "l1", "Add", "-"), big,
	    len, 60000, NULL, &err);
	cr_expect_eq(rc, 1, "exit %d: %s", rc, err);
	cr_expect(err &&
	        strstr(err,
	            "cannot read the payload from stdin: "
	            "more than 64 KiB (the most a command's payload holds)"),
	    "stderr: %s", err);
	free(err);
	rc = h_ctl(dir,
	    ARGS("--runtime-dir", run, "exec", "todo", "l1", "Add", "-"), big,
	    65537, 60000, NULL, &err);
	cr_expect_eq(rc, 1, "exit %d: %s", rc, err);
	cr_expect(err && strstr(err, "more than 64 KiB"), "stderr: %s", err);
	free(err);
	free(big);
}

Test(ctl, not_json_said_on_stderr_and_empty_results)
{
	const char *dir = h_tmpdir();
	const char *sid = "0b4e2f8a-5c1d-4e7b-9a3f-2d6c8e1f0a47";
	struct h_stored s;
	char *out, *err;
	int rc;

	h_stored_init(&s, dir, NULL);
	h_stored_start(&s);

	/* empty results: nothing on stdout (no header), a word on stderr */
	rc = ctl_in(dir, s.run_dir, ARGS("read", "all"), &out, &err);
	cr_expect(rc == 0 && out && *out == '\0', "read: %d [%s]", rc, out);
	cr_expect(err && strstr(err, "no events"), "read: %s", err);
	free(out);
	free(err);
	rc = ctl_in(dir, s.run_dir, ARGS("streams"), &out, &err);
	cr_expect(rc == 0 && out && *out == '\0', "streams: %d [%s]", rc, out);
	cr_expect(err && strstr(err, "no streams"), "streams: %s", err);
	free(out);
	free(err);
	rc = ctl_in(dir, s.run_dir, ARGS("--json", "read", "all"), &out, &err);
	cr_expect(rc == 0 && out && *out == '\0' && err && *err == '\0',
	    "read --json: %d [%s] [%s]", rc, out, err);
	free(out);
	free(err);

	/* not JSON: stored as given, said on stderr */
	rc = ctl_in(dir, s.run_dir, ARGS("append", sid, "Raw", "not json"),
	    &out, &err);
	cr_expect_eq(rc, 0, "append: %d %s", rc, err);
	cr_expect(err && strstr(err, "payload is not JSON") &&
	        strstr(err, "payload_base64"),
	    "append: %s", err);
	free(out);
	free(err);
	rc = ctl_in(dir, s.run_dir, ARGS("append", sid, "Json", "{\"a\":1}"),
	    &out, &err);
	cr_expect(rc == 0 && err && *err == '\0', "append JSON: %d [%s]", rc,
	    err);
	free(out);
	free(err);
	rc = ctl_in(dir, s.run_dir, ARGS("--json", "read", "all"), &out, &err);
	cr_expect_eq(rc, 0);
	cr_expect(out && strstr(out, "\"payload_base64\":\"bm90IGpzb24=\"") &&
	        strstr(out, "\"payload\":{\"a\":1}"),
	    "read: %s", out);
	free(out);
	free(err);
	/* with rows, the table has its header */
	rc = ctl_in(dir, s.run_dir, ARGS("read", "all"), &out, &err);
	cr_expect(rc == 0 && out && !strncmp(out, "POSITION", 8), "read: %s",
	    out);
	free(out);
	free(err);
	h_stored_stop(&s, SIGTERM, 10000);
}

Test(ctl, tail_says_store_unreachable_and_keeps_trying)
{
	const char *dir = h_tmpdir();
	const char *sid = "0b4e2f8a-5c1d-4e7b-9a3f-2d6c8e1f0a47";
	char errp[H_PATH + 16], buf[4096], *out;
	struct h_stored s;
	size_t n = 0;
	ssize_t r;
	pid_t tail;
	int fd, rc;

	h_stored_init(&s, dir, NULL);
	snprintf(errp, sizeof(errp), "%s/tail.err", dir);
	tail = h_ctl_spawn(ARGS("--runtime-dir", s.run_dir, "--json", "tail",
	                       "--count", "1"),
	    &fd, errp);
	cr_assert_eq(h_wait_for_text(errp,
	                 "the store is unreachable; retrying", QUICK),
	    0, "tail did not say the store is unreachable");
	/* the store comes: tail finds it by itself */
	h_stored_start(&s);
	rc = ctl_in(dir, s.run_dir, ARGS("append", sid, "Late", "{}"), &out,
	    NULL);
	cr_assert_eq(rc, 0);
	free(out);
	while (n < sizeof(buf) - 1 &&
	    (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(fd);
	rc = h_wait_pid(tail, 30000);
	cr_expect(rc >= 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0,
	    "tail: status %d", rc);
	cr_expect(strstr(buf, "\"event_type\":\"Late\""), "tail: %s", buf);
	h_stored_stop(&s, SIGTERM, 10000);
}

/*
 * Checks that every row's cells start where their header's words do:
 * strictly (a cell begins right there) for the left-aligned columns of
 * mask (bit k for column k), and for the others that a blank precedes
 * the column, so no earlier value ran into it.
 */
static void
check_aligned(const char *table, int ncols, unsigned mask)
{
	const char *nl = strchr(table, '\n'), *line;
	size_t off[16], i, k;
	int c;

	cr_assert_not_null(nl, "no header: %s", table);
	for (i = 0, c = 0; table + i < nl && c < ncols; i++)
		if (table[i] != ' ' && (i == 0 || table[i - 1] == ' '))
			off[c++] = i;
	cr_assert_eq(c, ncols, "header: %.*s", (int)(nl - table), table);
	for (line = nl + 1; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		cr_assert_not_null(nl);
		for (k = 1; k < (size_t)ncols; k++) {
			if (line + off[k] >= nl)
				break; /* an empty last cell */
			cr_expect(line[off[k] - 1] == ' ' &&
			        (!(mask & 1u << k) || line[off[k]] != ' '),
			    "column %zu out of line "
			    "in:\n%s",
			    k, table);
		}
	}
}

/* A verb that needs the store, asked of runnerd with stored down: exit
 * 2, stderr naming the store's socket; stdout does not claim not_in_out
 * (unless NULL). */
static void
store_unreachable(const char *dir, const char *run, const char *const *args,
    const char *what, const char *not_in_out)
{
	char *out, *err;
	int rc;

	rc = ctl_in(dir, run, args, &out, &err);
	cr_expect_eq(rc, 2, "%s: %d %s", what, rc, err);
	cr_expect(err && strstr(err, "eventfold-stored is unreachable at") &&
	        strstr(err, "store.sock"),
	    "%s: %s", what, err);
	if (not_in_out != NULL)
		cr_expect(out && !strstr(out, not_in_out), "%s: %s", what,
		    out);
	free(out);
	free(err);
}

Test(ctl, runner_verbs_name_the_daemon_that_is_down)
{
	const char *dir = h_tmpdir();
	struct h_stored s;
	char *out, *err;
	int rc, i;

	h_stored_init(&s, dir, NULL);
	h_stored_start(&s);
	runnerd_pid = runnerd_spawn(&s, s.run_dir, NULL);
	for (i = 0; i < 200; i++) {
		rc = ctl_in(dir, s.run_dir, ARGS("plugins"), &out, NULL);
		if (rc == 0)
			break;
		free(out);
		out = NULL;
		h_sleep_ms(50);
	}
	cr_assert_eq(rc, 0, "runnerd did not come up");
	check_aligned(out, 5, 0x1f);
	free(out);

	/* empty results, the same rule as the store's */
	rc = ctl_in(dir, s.run_dir, ARGS("query", "todo_list"), &out, &err);
	cr_expect(rc == 0 && *out == '\0' && strstr(err, "no keys"),
	    "query: %d [%s] [%s]", rc, out, err);
	free(out);
	free(err);
	rc = ctl_in(dir, s.run_dir, ARGS("deadletters"), &out, &err);
	cr_expect(rc == 0 && *out == '\0' && strstr(err, "no dead letters"),
	    "deadletters: %d [%s] [%s]", rc, out, err);
	free(out);
	free(err);
	rc = ctl_in(dir, s.run_dir, ARGS("projections"), &out, &err);
	cr_expect_eq(rc, 0, "%s", err);
	check_aligned(out, 7, 0x07); /* ERROR is empty */
	free(out);
	free(err);

	/* stored down: runnerd says so, at once */
	h_stored_stop(&s, SIGTERM, 10000);
	store_unreachable(dir, s.run_dir,
	    ARGS("exec", "todo", "l1", "Add", "{\"title\":\"milk\"}"), "exec",
	    NULL);
	/* what needs the store now is refused too, not started silently */
	store_unreachable(dir, s.run_dir, ARGS("rebuild", "todo_list"),
	    "rebuild", "started");
	store_unreachable(dir, s.run_dir,
	    ARGS("replay", "todo_list", "--until", "1"), "replay", NULL);
	store_unreachable(dir, s.run_dir, ARGS("reset", "todo_list"), "reset",
	    "reset to position 0");
	rc = ctl_in(dir, s.run_dir, ARGS("projections"), &out, &err);
	cr_expect_eq(rc, 0, "projections: %d %s", rc, err);
	cr_expect(out && strstr(out, "waiting-for-store") &&
	        !strstr(out, " live "),
	    "projections: %s", out);
	free(out);
	free(err);

	/* runnerd down: named with its socket */
	kill_runnerd();
	rc = ctl_in(dir, s.run_dir, ARGS("projections"), &out, &err);
	cr_expect_eq(rc, 2);
	cr_expect(err && strstr(err, "eventfold-runnerd") &&
	        strstr(err, "runner.sock"),
	    "projections: %s", err);
	free(out);
	free(err);
}

Test(ctl, runnerd_refuses_a_store_that_is_not_there)
{
	const char *dir = h_tmpdir();
	char run[H_PATH], url[H_PATH + 64], log[H_PATH + 16], *text;
	struct h_stored s;
	int st;

	h_stored_init(&s, dir, NULL);
	snprintf(run, sizeof(run), "%s/no-such-run", dir);
	runnerd_pid = runnerd_spawn(&s, run, ARGS("--store-wait-s", "1"));
	st = h_wait_pid(runnerd_pid, 30000);
	cr_assert_neq(st, -1, "runnerd still runs without a store");
	runnerd_pid = 0;
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0, "status %d", st);
	snprintf(log, sizeof(log), "%s/runnerd.log", dir);
	snprintf(url, sizeof(url),
	    "no eventfold-stored at ipc://%s/"
	    "store.sock",
	    run);
	text = h_read_file(log, NULL);
	cr_expect(text && strstr(text, url), "runnerd.log: %s", text);
	free(text);
}

Test(ctl, plugins_shows_refused_files_and_why)
{
	const char *dir = h_tmpdir();
	char plugins[H_PATH + 16], path[H_PATH + 64], *out, *err, *text;
	struct h_stored s;
	size_t len;
	int rc = -1, i;

	/* the todo example and a file that is not a shared object */
	snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
	cr_assert_eq(mkdir(plugins, 0755), 0);
	snprintf(path, sizeof(path), "%s/todo.so", getenv("EF_PLUGIN_DIR"));
	text = h_read_file(path, &len);
	cr_assert_not_null(text, "%s", path);
	snprintf(path, sizeof(path), "%s/todo.so", plugins);
	cr_assert_eq(h_write_file(path, text, len), 0);
	free(text);
	snprintf(path, sizeof(path), "%s/broken.so", plugins);
	cr_assert_eq(h_write_file(path, "not ELF\n", 8), 0);

	h_stored_init(&s, dir, NULL);
	h_stored_start(&s);
	runnerd_pid = runnerd_spawn_in(&s, s.run_dir, plugins, NULL);
	for (i = 0; i < 200; i++) {
		rc = ctl_in(dir, s.run_dir, ARGS("plugins"), &out, &err);
		if (rc == 0)
			break;
		free(out);
		free(err);
		h_sleep_ms(50);
	}
	cr_assert_eq(rc, 0, "runnerd did not come up");
	cr_expect(strstr(out, "todo.so") && strstr(out, "REFUSED") &&
	        strstr(out, "broken.so") && strstr(out, "cannot load"),
	    "plugins: %s", out);
	free(out);
	free(err);
	rc = ctl_in(dir, s.run_dir, ARGS("--json", "plugins"), &out, &err);
	cr_expect(rc == 0 &&
	        strstr(out,
	            "{\"file\":\"broken.so\","
	            "\"refused\":\"cannot load: "),
	    "plugins --json: %s", out);
	free(out);
	free(err);
	kill_runnerd();
}

Test(ctl, deadletters_columns_fit_their_values)
{
	const char *dir = h_tmpdir();
	struct h_stored s;
	char *out = NULL, *err = NULL;
	int rc, i;

	h_stored_init(&s, dir, NULL);
	h_stored_start(&s);
	runnerd_pid = runnerd_spawn(&s, s.run_dir,
	    ARGS("--pm-retries", "1", "--pm-backoff-ms", "10"));
	for (i = 0; i < 200; i++) {
		rc = ctl_in(dir, s.run_dir, ARGS("plugins"), NULL, NULL);
		if (rc == 0)
			break;
		h_sleep_ms(50);
	}
	cr_assert_eq(rc, 0, "runnerd did not come up");
	/* a shipment on hold refuses the manager's Create: a dead letter
	 * whose command id is longer than a UUID */
	cr_assert_eq(ctl_in(dir, s.run_dir,
	                 ARGS("exec", "shipment", "o-1", "Hold",
	                     "{\"reason\":\"address check\"}"),
	                 NULL, NULL),
	    0);
	cr_assert_eq(
	    ctl_in(dir, s.run_dir,
	        ARGS("exec", "order", "o-1", "Place",
	            "{\"address\":\"1 Main St\",\"items\":[\"tea\"]}"),
	        NULL, NULL),
	    0);
	for (i = 0; i < 300; i++) {
		free(out);
		free(err);
		rc = ctl_in(dir, s.run_dir, ARGS("deadletters"), &out, &err);
		if (rc == 0 && out && strstr(out, "order_shipping"))
			break;
		h_sleep_ms(50);
	}
	cr_assert(rc == 0 && strstr(out, "order_shipping"),
	    "deadletters: "
	    "%d [%s] [%s]",
	    rc, out, err);
	check_aligned(out, 5, 0x17);
	free(out);
	free(err);
	kill_runnerd();
}

/* -n is the client's config check: a good file says so, a bad one is
 * named with its line; -nv prints what the options and file add up to.
 * No daemon is needed (--runtime-dir names nothing). */
Test(ctl, n_checks_the_client_config)
{
	const char *dir = h_tmpdir();
	char good[H_PATH + 16], bad[H_PATH + 16], want[H_PATH + 64];
	char *out, *err;
	int rc;

	snprintf(good, sizeof(good), "%s/good.conf", dir);
	snprintf(bad, sizeof(bad), "%s/bad.conf", dir);
	cr_assert_eq(h_write_file(good, "[ctl]\ntimeout_ms = 700\n", 22), 0);
	cr_assert_eq(h_write_file(bad, "[ctl]\ntimeout_ms = 700\nbogus = 1\n",
	                 32),
	    0);
	rc = h_ctl(dir, ARGS("-n", "-f", good), NULL, 0, QUICK, &out, &err);
	cr_expect(rc == 0 && out && !strcmp(out, "configuration OK\n"),
	    "-n good: %d [%s] [%s]", rc, out, err);
	free(out);
	free(err);
	rc = h_ctl(dir, ARGS("-n", "-f", bad), NULL, 0, QUICK, &out, &err);
	snprintf(want, sizeof(want), "%s:3: unknown key \"bogus\" in [ctl]",
	    bad);
	cr_expect(rc == 1 && out && *out == '\0' && err && strstr(err, want),
	    "-n bad: %d [%s] [%s]", rc, out, err);
	free(out);
	free(err);
	rc = h_ctl(dir, ARGS("-nv", "-f", good, "--runtime-dir", "/nowhere"),
	    NULL, 0, QUICK, &out, &err);
	cr_expect(rc == 0 && out && strstr(out, "timeout_ms = 700\n") &&
	        strstr(out, "runtime_dir = /nowhere\n"),
	    "-nv: %d [%s] [%s]", rc, out, err);
	free(out);
	free(err);
}
