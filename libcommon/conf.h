/* SPDX-License-Identifier: MIT */
/*
 * conf.h - one keyword table drives both the INI config file and the
 * command-line flags of a program.
 *
 * The file (default /etc/eventfold/eventfold.conf, read if it exists, or
 * the one given with -f) has a section per daemon, "[stored]",
 * "[gatewayd]", "[runnerd]", "[ctl]", and a "[global]" section read by
 * all; lines are "key = value", '#' starts a comment. Every key is also
 * a flag: key data_dir is --data-dir DIR (or --data-dir=DIR). Flags win
 * over the file, the file over the defaults.
 *
 * Errors are collected as "file:line: message" (or "flag --x: message"),
 * all printed, then conf_load() fails.
 */
#ifndef EF_CONF_H
#define EF_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONF_DEFAULT_FILE "/etc/eventfold/eventfold.conf"

enum conf_type {
	CONF_STR,  /* char *, owned by the struct, strdup'd */
	CONF_U64,  /* uint64_t */
	CONF_SIZE, /* uint64_t, accepts K, M, G suffixes (powers of 1024) */
	CONF_BOOL, /* int: yes/no, true/false, on/off, 1/0 */
};

struct conf_key {
	const char *name; /* key in the file; flag is --name with '-' */
	enum conf_type type;
	size_t off;      /* offset of the field in the config struct */
	const char *def; /* default, as text; NULL for none */
	const char *help;
};

/* Options common to every program, filled by conf_load(). */
struct conf_opts {
	int foreground; /* -d */
	int verbose;    /* -v */
	int check;      /* -n */
	const char *file;
};

/*
 * Loads defaults, then the file, then the flags of argv into dst, using
 * keys (terminated by a key with a NULL name) for section. Handles -d,
 * -v, -n, -f FILE and -h/--help (prints usage to stdout and exits 0).
 * Arguments that are not options are left in argv, compacted, and their
 * count returned through *argcp. Returns 0, or -1 after printing every
 * error to stderr.
 */
int conf_load(const struct conf_key *keys, const char *section, void *dst,
    int *argcp, char **argv, struct conf_opts *opts, const char *usage);

/* Prints the effective configuration as a config file section. */
void conf_print(FILE *fp, const struct conf_key *keys, const char *section,
    const void *dst);

/* Prints the flags with their defaults and help (for --help). */
void conf_usage(FILE *fp, const struct conf_key *keys);
/* Only the --key flags of keys (a client lists its own -d/-n/-v). */
void conf_usage_keys(FILE *fp, const struct conf_key *keys);

/* Frees the strings conf_load() allocated in dst. */
void conf_free(const struct conf_key *keys, void *dst);

#endif
