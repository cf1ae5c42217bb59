/* SPDX-License-Identifier: MIT */
/*
 * env.h - EventfoldDB's environment variables, honoured by the daemons
 * for operators who migrate (their deployment scripts set them).
 *
 * EventfoldDB has no flags and no file: it is configured only by
 * EVENTFOLD_* variables. Each daemon takes those with a meaning for it,
 * as flags placed before its command line's, so they override the file
 * and the command line overrides them. The table of which daemon reads
 * which variable is in eventfold.conf(5), ENVIRONMENT.
 */
#ifndef EF_ENV_H
#define EF_ENV_H

#include <stddef.h>

/* A variable that stands for a flag (env "EVENTFOLD_LISTEN", flag
 * "--listen"). */
struct env_flag {
	const char *env;
	const char *flag;
};

/*
 * Returns a new argv (malloc'd; the strings are argv's and the
 * environment's) of argv[0], then "flag value" for each variable of tab
 * (terminated by a NULL env) that is set, then argv[1..]. *nargc is its
 * length.
 */
char **env_argv(const struct env_flag *tab, int argc, char **argv, int *nargc);

/*
 * EVENTFOLD_DATA, EventfoldDB's data file. Its nearest meaning here is
 * the data directory: a directory, or a path that does not exist yet,
 * is returned in *dir (the environment's string; NULL when unset) and
 * 0 returned. An existing file is refused (-1): an EventfoldDB data
 * file ("EFDB" and a version) with the exact eventfoldctl import
 * command to run, which needs runtime_dir to reach the store; any
 * other file as not a data directory. The message is in err.
 */
int env_data_dir(const char *runtime_dir, const char **dir, char *err,
    size_t errlen);

#endif
