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

static void
usage_cmds(FILE *fp)
{
	const struct ctl_cmd *k;

	fprintf(fp, "\ncommands:\n");
	for (k = ctl_store_cmds; k->name; k++)
		fprintf(fp, "  %s\n", k->usage);
	for (k = ctl_runner_cmds; k->name; k++)
		fprintf(fp, "  %s\n", k->usage);
	for (k = ctl_data_cmds; k->name; k++)
		fprintf(fp, "  %s\n", k->usage);
	fprintf(fp, "\nexit status: 0 ok, 1 usage, 2 daemon unreachable, "
	    "3 refused, 4 not found,\n5 data corruption, 6 internal "
	    "error. See eventfoldctl(8).\n");
}

static const char usage[] =
    "usage: eventfoldctl [--json] [-f file] [--key value ...] command "
    "[args]\n"
    "Talks to eventfold-stored and eventfold-runnerd over their IPC "
    "sockets.\n\noptions:\n"
    "  --json, -j          JSON lines instead of tables\n";

int
main(int argc, char **argv)
{
	static struct ctl c;
	struct conf_opts opts;
	const struct ctl_cmd *k;
	char **gargv;
	int i, gargc = 1, cmd = -1, rc;

	log_init("eventfoldctl", 0);
	for (i = 1; i < argc && argv[i][0] == '-'; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			conf_usage(stdout, ctl_keys);
			usage_cmds(stdout);
			return CTL_OK;
		}
	/* Global options come before the command word. */
	gargv = calloc((size_t)argc + 1, sizeof(char *));
	if (gargv == NULL)
		return CTL_INTERNAL;
	gargv[0] = argv[0];
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json") || !strcmp(a, "-j")) {
			c.json = 1;
			continue;
		}
		if (a[0] != '-') {
			cmd = i;
			break;
		}
		gargv[gargc++] = argv[i];
		if ((!strcmp(a, "-f") || (a[1] == '-' && !strchr(a, '=') &&
		    strcmp(a, "--help"))) && i + 1 < argc)
			gargv[gargc++] = argv[++i];
	}
	if (conf_load(ctl_keys, "ctl", &c.conf, &gargc, gargv, &opts, usage)
	    != 0) {
		usage_cmds(stderr);
		return CTL_USAGE;
	}
	if (opts.check) {
		if (opts.verbose)
			conf_print(stdout, ctl_keys, "ctl", &c.conf);
		else
			printf("configuration OK\n");
		conf_free(ctl_keys, &c.conf);
		free(gargv);
		return CTL_OK;
	}
	if (cmd < 0) {
		fputs(usage, stderr);
		conf_usage(stderr, ctl_keys);
		usage_cmds(stderr);
		return CTL_USAGE;
	}
	log_setverbose(opts.verbose);
	client_url(c.store_url, sizeof(c.store_url), c.conf.runtime_dir,
	    STORE_SOCK, c.conf.store_url);
	client_url(c.events_url, sizeof(c.events_url), c.conf.runtime_dir,
	    STORE_EVENTS_SOCK, c.conf.events_url);
	client_url(c.runner_url, sizeof(c.runner_url), c.conf.runtime_dir,
	    RUNNER_SOCK, c.conf.runner_url);
	for (k = ctl_store_cmds; k->name; k++)
		if (!strcmp(k->name, argv[cmd]))
			goto found;
	for (k = ctl_runner_cmds; k->name; k++)
		if (!strcmp(k->name, argv[cmd]))
			goto found;
	for (k = ctl_data_cmds; k->name; k++)
		if (!strcmp(k->name, argv[cmd]))
			goto found;
	rc = ctl_err(CTL_USAGE, "unknown command \"%s\" (see --help)",
	    argv[cmd]);
	free(gargv);
	return rc;
found:
	rc = k->fn(&c, argc - cmd, argv + cmd);
	conf_free(ctl_keys, &c.conf);
	free(gargv);
	return rc;
}
