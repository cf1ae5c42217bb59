/* SPDX-License-Identifier: MIT */
/*
 * eventfoldctl.c - the operator's and scripter's tool: global options,
 * config, and the command dispatch. Commands live in store.c (stored)
 * and runner.c (runnerd). See eventfoldctl(8).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "probe.h"
#include "ctl.h"
#include "log.h"

#define OFF(f) offsetof(struct ctl_conf, f)

static const struct conf_key ctl_keys[] = {
	{ "runtime_dir", CONF_STR, OFF(runtime_dir), "/run/eventfold",
	    "directory of the daemons' IPC sockets" },
	{ "data_dir", CONF_STR, OFF(data_dir), "/var/lib/eventfold",
	    "data directory (for verify)" },
	{ "store_url", CONF_STR, OFF(store_url), "",
	    "nng URL of stored's request socket" },
	{ "events_url", CONF_STR, OFF(events_url), "",
	    "nng URL of stored's publish socket" },
	{ "runner_url", CONF_STR, OFF(runner_url), "",
	    "nng URL of runnerd's request socket" },
	{ "timeout_ms", CONF_U64, OFF(timeout_ms), "5000",
	    "how long to wait for a daemon's reply" },
	{ "mirror_metrics", CONF_STR, OFF(mirror_metrics), "127.0.0.1:9091",
	    "HOST:PORT of eventfold-mirrord's /metrics (for mirror)" },
	{ NULL, 0, 0, NULL, NULL },
};

int
ctl_err(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("eventfoldctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int
ctl_status_exit(int status, const struct ipc_str *msg)
{
	int code;

	switch (status) {
	case EF_S_OK:
		return CTL_OK;
	case EF_S_UNAVAILABLE:
	case EF_S_DEADLINE:
		code = CTL_UNAVAILABLE;
		break;
	case EF_S_STREAM_NOT_FOUND:
	case EF_S_NOT_FOUND:
		code = CTL_NOT_FOUND;
		break;
	case EF_S_DATA_LOSS:
		code = CTL_CORRUPT;
		break;
	case EF_S_INTERNAL:
	case EF_S_BAD_VERSION:
	case EF_S_UNKNOWN_OP:
		code = CTL_INTERNAL;
		break;
	default:
		code = CTL_REFUSED;
	}
	return ctl_err(code, "%s: %.*s", ipc_status_name(status),
	    msg ? (int)msg->len : 0, msg ? msg->ptr : "");
}

/*
 * Fails at once, naming the socket and how to choose it, when nobody can
 * answer at url: an nng dialer would retry a missing path silently until
 * the timeout. Only rep sockets (store.sock, runner.sock) are probed.
 */
int
ctl_reach(const struct ctl *c, enum ctl_daemon d)
{
	const char *url = d == CTL_STORED ? c->store_url : c->runner_url;
	const char *key = d == CTL_STORED ? "store_url" : "runner_url";
	const char *set = d == CTL_STORED ? c->conf.store_url :
	                                    c->conf.runner_url;
	char why[4400], flag[32];
	size_t i;
	int rc;

	rc = probe_rep(url, (int)c->conf.timeout_ms, why, sizeof(why));
	if (rc == PROBE_OK || rc == PROBE_NOT_IPC)
		return 0;
	snprintf(flag, sizeof(flag), "--%s", key);
	for (i = 2; flag[i] != '\0'; i++)
		if (flag[i] == '_')
			flag[i] = '-';
	if (set != NULL && *set != '\0')
		return ctl_err(CTL_UNAVAILABLE,
		    "UNAVAILABLE: %s: is %s "
		    "running? The URL comes from %s (%s in eventfold.conf)",
		    why, ctl_daemon_name(d), flag, key);
	return ctl_err(CTL_UNAVAILABLE,
	    "UNAVAILABLE: %s: is %s running "
	    "with runtime directory %s? Choose the directory with "
	    "--runtime-dir DIR (runtime_dir in eventfold.conf), or the URL "
	    "with %s",
	    why, ctl_daemon_name(d), c->conf.runtime_dir, flag);
}

int
ctl_open(const struct ctl *c, enum ctl_daemon d, struct ef_client *cl,
    uint64_t extra_ms)
{
	const char *url = d == CTL_STORED ? c->store_url : c->runner_url;
	int rc;

	if ((rc = ctl_reach(c, d)) != 0)
		return rc;
	if (client_open(cl, url, (int)(c->conf.timeout_ms + extra_ms)) != 0)
		return ctl_err(CTL_USAGE, "bad %s URL %s",
		    d == CTL_STORED ? "store" : "runner", url);
	return 0;
}

int
ctl_check(const struct ctl *c, enum ctl_daemon d, int st,
    const struct client_reply *cr)
{
	return st == EF_S_OK ? CTL_OK : ctl_call_exit(c, d, st, cr);
}

int
ctl_ask(const struct ctl *c, enum ctl_daemon d, struct ef_client *cl,
    const struct ipc_out *req, struct client_reply *cr)
{
	return ctl_check(c, d, client_call(cl, req, cr), cr);
}

int
ctl_malformed(const char *why)
{
	return ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
}

const char *
ctl_daemon_name(enum ctl_daemon d)
{
	return d == CTL_STORED ? "eventfold-stored" : "eventfold-runnerd";
}

/*
 * A call that failed on this side (no reply at all) says which daemon
 * did not answer; a reply's own status and message are printed as sent.
 */
int
ctl_call_exit(const struct ctl *c, enum ctl_daemon d, int status,
    const struct client_reply *cr)
{
	if (cr->msg == NULL && status == EF_S_UNAVAILABLE)
		return ctl_err(CTL_UNAVAILABLE, "UNAVAILABLE: %s at %s: %.*s",
		    ctl_daemon_name(d),
		    d == CTL_STORED ? c->store_url : c->runner_url,
		    (int)cr->in.message.len,
		    cr->in.message.ptr ? cr->in.message.ptr : "");
	return ctl_status_exit(status, &cr->in.message);
}

void
ctl_empty(const struct ctl *c, const char *what)
{
	if (!c->json)
		fprintf(stderr, "eventfoldctl: %s\n", what);
}

int
ctl_parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (errno != 0 || *end != '\0') ? -1 : 0;
}

/* Every command table, in the order help lists them. */
static const struct ctl_cmd *const cmd_tables[] = {
	ctl_store_cmds,
	ctl_runner_cmds,
	ctl_data_cmds,
	ctl_mirror_cmds,
};

/* The command named name in any table, or NULL. */
static const struct ctl_cmd *
find_cmd(const char *name)
{
	const struct ctl_cmd *k;
	size_t i;

	for (i = 0; i < sizeof(cmd_tables) / sizeof(cmd_tables[0]); i++)
		for (k = cmd_tables[i]; k->name; k++)
			if (!strcmp(k->name, name))
				return k;
	return NULL;
}

int
ctl_usage(const char *name)
{
	const struct ctl_cmd *k = find_cmd(name);

	return ctl_err(CTL_USAGE, "usage: eventfoldctl [options] %s",
	    k ? k->usage : name);
}

static void
usage_cmds(FILE *fp)
{
	const struct ctl_cmd *k;
	size_t i;

	fprintf(fp,
	    "\ncommands (eventfoldctl help COMMAND, or COMMAND --help, "
	    "for one):\n");
	for (i = 0; i < sizeof(cmd_tables) / sizeof(cmd_tables[0]); i++)
		for (k = cmd_tables[i]; k->name; k++)
			fprintf(fp, "  %s\n", k->usage);
	fprintf(fp,
	    "\nexit status: 0 ok, 1 usage, 2 daemon unreachable, "
	    "3 refused, 4 not found,\n5 data corruption, 6 internal "
	    "error. See eventfoldctl(8).\n");
}

/*
 * The client's own options. conf_usage() would also list a daemon's -d
 * (foreground), which means nothing here; -d is still taken, as -v.
 */
static void
usage_opts(FILE *fp)
{
	fprintf(fp,
	    "  -j, --json          JSON lines instead of tables\n"
	    "  -v                  verbose (debug) logging\n"
	    "  -f FILE             config file, its [ctl] and [global] "
	    "sections\n"
	    "                      (default %s)\n"
	    "  -n                  check that config file and exit "
	    "(-nv: print it)\n"
	    "  -h, --help          this help\n",
	    CONF_DEFAULT_FILE);
	conf_usage_keys(fp, ctl_keys);
}

static const char usage[] =
    "usage: eventfoldctl [options] command [args]\n"
    "Talks to eventfold-stored and eventfold-runnerd over their IPC "
    "sockets.\nOptions go before the command word.\n\noptions:\n";

static void
usage_all(FILE *fp)
{
	fputs(usage, fp);
	usage_opts(fp);
	usage_cmds(fp);
}

/* `eventfoldctl help [COMMAND]` and `COMMAND --help`: exit 0. */
static int
help(const char *name)
{
	const struct ctl_cmd *k;

	if (name == NULL) {
		usage_all(stdout);
		return CTL_OK;
	}
	if ((k = find_cmd(name)) == NULL)
		return ctl_err(CTL_USAGE,
		    "unknown command \"%s\" (see --help)", name);
	printf("usage: eventfoldctl [options] %s\n"
	       "Options (eventfoldctl --help) go before the command word; "
	       "see eventfoldctl(8).\n",
	    k->usage);
	return CTL_OK;
}

/* Whether usage names the option opt (a whole word: "--from" is not
 * "--from-x"). */
static int
usage_has(const char *usage, const char *opt)
{
	size_t n = strlen(opt);
	const char *p;

	for (p = usage; (p = strstr(p, opt)) != NULL; p += n)
		if ((p == usage || p[-1] == ' ' || p[-1] == '[') &&
		    strchr(" ]=|", p[n]) != NULL)
			return 1;
	return 0;
}

/*
 * A global option given after the command word (`status --runtime-dir
 * X`) is a common slip: say where it goes instead of a bare usage line.
 * A command whose usage names the same option takes it as its own.
 * Returns the option, or NULL.
 */
static const char *
misplaced_option(const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const shorts[] = { "-f", "-v", "-n", "-d", NULL };
	const struct conf_key *k;
	char flag[64];
	size_t i, n;
	int a, j;

	for (a = 1; a < argc; a++) {
		for (j = 0; shorts[j] != NULL; j++)
			if (!strcmp(argv[a], shorts[j]) &&
			    !usage_has(cmd->usage, shorts[j]))
				return argv[a];
		for (k = ctl_keys; k->name != NULL; k++) {
			n = (size_t)snprintf(flag, sizeof(flag), "--%s",
			    k->name);
			for (i = 2; i < n; i++)
				if (flag[i] == '_')
					flag[i] = '-';
			if (!strncmp(argv[a], flag, n) &&
			    (argv[a][n] == '\0' || argv[a][n] == '=') &&
			    !usage_has(cmd->usage, flag))
				return argv[a];
		}
	}
	return NULL;
}

/*
 * Splits argv at the command word: the global options into gargv
 * (*gargc of them, argv[0] first), the command word's index into *cmd
 * (-1: none). 1 if -h or --help came among the options.
 */
static int
global_args(struct ctl *c, int argc, char **argv, char **gargv, int *gargc,
    int *cmd)
{
	int i;

	*cmd = -1;
	gargv[0] = argv[0];
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json") || !strcmp(a, "-j")) {
			c->json = 1;
			continue;
		}
		/* among the options, whatever they are (-f FILE --help) */
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return 1;
		if (a[0] != '-') {
			*cmd = i;
			break;
		}
		gargv[(*gargc)++] = argv[i];
		if ((!strcmp(a, "-f") ||
		        (a[1] == '-' && !strchr(a, '=') &&
		            strcmp(a, "--help"))) &&
		    i + 1 < argc)
			gargv[(*gargc)++] = argv[++i];
	}
	return 0;
}

/*
 * `help [COMMAND]`, or a known command with -h or --help among its
 * arguments: the help, and its exit code; -1 if help was not asked.
 */
static int
help_asked(int argc, char **argv, int cmd)
{
	const struct ctl_cmd *k;
	int i;

	if (cmd < 0)
		return -1;
	if (!strcmp(argv[cmd], "help"))
		return help(cmd + 1 < argc ? argv[cmd + 1] : NULL);
	if ((k = find_cmd(argv[cmd])) == NULL)
		return -1;
	for (i = cmd + 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return help(k->name);
	return -1;
}

/* Runs the command at argv[cmd] of c, once configured. */
static int
run_cmd(struct ctl *c, int argc, char **argv, int cmd)
{
	const struct ctl_cmd *k;
	const char *bad;

	client_url(c->store_url, sizeof(c->store_url), c->conf.runtime_dir,
	    STORE_SOCK, c->conf.store_url);
	client_url(c->events_url, sizeof(c->events_url), c->conf.runtime_dir,
	    STORE_EVENTS_SOCK, c->conf.events_url);
	client_url(c->runner_url, sizeof(c->runner_url), c->conf.runtime_dir,
	    RUNNER_SOCK, c->conf.runner_url);
	if ((k = find_cmd(argv[cmd])) == NULL)
		return ctl_err(CTL_USAGE,
		    "unknown command \"%s\" (see --help)", argv[cmd]);
	if ((bad = misplaced_option(k, argc - cmd, argv + cmd)) != NULL)
		return ctl_err(CTL_USAGE,
		    "%s after the command: options go "
		    "before the command word (eventfoldctl [options] %s ...)",
		    bad, k->name);
	return k->fn(c, argc - cmd, argv + cmd);
}

int
main(int argc, char **argv)
{
	static struct ctl c;
	struct conf_opts opts;
	char **gargv;
	int gargc = 1, cmd, rc;

	log_init("eventfoldctl", 0);
	/* Global options come before the command word. */
	gargv = calloc((size_t)argc + 1, sizeof(char *));
	if (gargv == NULL)
		return CTL_INTERNAL;
	if (global_args(&c, argc, argv, gargv, &gargc, &cmd)) {
		free(gargv);
		return help(NULL);
	}
	if ((rc = help_asked(argc, argv, cmd)) >= 0) {
		free(gargv);
		return rc;
	}
	if (conf_load(ctl_keys, "ctl", &c.conf, &gargc, gargv, &opts, usage) !=
	    0) {
		fputs("(eventfoldctl --help lists the options)\n", stderr);
		free(gargv);
		return CTL_USAGE;
	}
	if (opts.check) {
		if (opts.verbose)
			conf_print(stdout, ctl_keys, "ctl", &c.conf);
		else
			printf("configuration OK\n");
		rc = CTL_OK;
	} else if (cmd < 0) {
		usage_all(stderr);
		rc = CTL_USAGE;
	} else {
		log_setverbose(opts.verbose || opts.foreground);
		rc = run_cmd(&c, argc, argv, cmd);
	}
	conf_free(ctl_keys, &c.conf);
	free(gargv);
	return rc;
}
