/* SPDX-License-Identifier: MIT */
/*
 * test_conf.c - unit tests of the keyword-table config parser
 * (libcommon/conf.c): defaults, the INI file ([global] and the
 * program's section), flags winning over the file, every value type,
 * positional arguments left in argv, and errors: every one reported as
 * "file:line: message" (or "flag --x: message"), all of them, and then
 * a failure. stderr is captured into a file to check the messages.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "conf.h"

struct tconf {
	char *data_dir;
	char *name;
	uint64_t workers;
	uint64_t max_size;
	int enabled;
};

#define OFF(f) offsetof(struct tconf, f)

static const struct conf_key keys[] = {
	{ "data_dir", CONF_STR, OFF(data_dir), "/var/lib/test",
	    "where the data lives" },
	{ "name", CONF_STR, OFF(name), NULL, "a name" },
	{ "workers", CONF_U64, OFF(workers), "4", "threads" },
	{ "max_size", CONF_SIZE, OFF(max_size), "1M", "largest thing" },
	{ "enabled", CONF_BOOL, OFF(enabled), "no", "switch" },
	{ NULL, 0, 0, NULL, NULL },
};

static char cfg_path[64];
static char err_path[64];
static int saved_stderr = -1;

static void
cleanup(void)
{
	if (cfg_path[0])
		unlink(cfg_path);
	if (err_path[0])
		unlink(err_path);
}

TestSuite(conf, .fini = cleanup);

static const char *
write_cfg(const char *text)
{
	int fd;

	snprintf(cfg_path, sizeof(cfg_path), "/tmp/eftest-conf.XXXXXX");
	fd = mkstemp(cfg_path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return cfg_path;
}

static void
capture_begin(void)
{
	int fd;

	snprintf(err_path, sizeof(err_path), "/tmp/eftest-err.XXXXXX");
	fd = mkstemp(err_path);
	cr_assert_geq(fd, 0);
	fflush(stderr);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

/* Returns what was written to stderr since capture_begin (malloc'd). */
static char *
capture_end(void)
{
	char *buf = calloc(1, 65536);
	ssize_t n;
	int fd;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	saved_stderr = -1;
	cr_assert_not_null(buf);
	fd = open(err_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	n = read(fd, buf, 65535);
	cr_assert_geq(n, 0);
	close(fd);
	return buf;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* One conf_load: the config it filled, its options, what it left in
 * argv. */
struct run {
	struct tconf c;
	struct conf_opts o;
	char *argv[16];
	int argc;
};

/* Runs conf_load on a copy of args (NULL-terminated) into r. */
static int
load(struct run *r, const char *const *args)
{
	int n = 0;

	while (args[n] != NULL) {
		r->argv[n] = (char *)args[n];
		n++;
	}
	r->argv[n] = NULL;
	r->argc = n;
	memset(&r->c, 0, sizeof(r->c));
	return conf_load(keys, "test", &r->c, &r->argc, r->argv, &r->o,
	    "usage: test\n");
}

/* load with stderr captured: what it wrote into *err (free it). */
static int
load_quiet(struct run *r, const char *const *args, char **err)
{
	int rc;

	capture_begin();
	rc = load(r, args);
	*err = capture_end();
	return rc;
}

/* load_quiet that must fail; what it wrote (free it, with run_free). */
static char *
load_fails(struct run *r, const char *const *args)
{
	char *err;

	cr_assert_eq(load_quiet(r, args, &err), -1);
	return err;
}

/* Frees what load_quiet and load left: err and r's config. */
static void
run_free(struct run *r, char *err)
{
	free(err);
	conf_free(keys, &r->c);
}

Test(conf, defaults)
{
	struct run r;

	cr_assert_eq(load(&r,
	                 (const char *const[]){ "prog", "-f", "/dev/null",
	                     NULL }),
	    0);
	cr_assert_str_eq(r.c.data_dir, "/var/lib/test");
	cr_assert_null(r.c.name);
	cr_assert_eq(r.c.workers, 4);
	cr_assert_eq(r.c.max_size, 1u << 20);
	cr_assert_eq(r.c.enabled, 0);
	cr_assert_eq(r.argc, 1);
	cr_assert_str_eq(r.o.file, "/dev/null");
	cr_assert_eq(r.o.foreground + r.o.verbose + r.o.check, 0);
	conf_free(keys, &r.c);
	cr_assert_null(r.c.data_dir);
}

Test(conf, file_sections)
{
	struct run r;
	const char *path = write_cfg(
	    "# a comment line\n"
	    "\n"
	    "[global]\n"
	    "data_dir = /srv/global\n"
	    "listen = [::]:2113   # a key of another program: ignored here\n"
	    "[ test ]\n"
	    "workers=8\n"
	    "   max_size   =   64M   \n"
	    "enabled = YES\n"
	    "name = a=b # trailing comment\n"
	    "[other]\n"
	    "workers = 99\n"
	    "whatever = is not ours\n"
	    "[test]\n"
	    "data_dir = /srv/test\n");

	cr_assert_eq(load(&r,
	                 (const char *const[]){ "prog", "-f", path, NULL }),
	    0);
	cr_assert_str_eq(r.c.data_dir, "/srv/test");
	cr_assert_str_eq(r.c.name, "a=b");
	cr_assert_eq(r.c.workers, 8);
	cr_assert_eq(r.c.max_size, 64u << 20);
	cr_assert_eq(r.c.enabled, 1);
	conf_free(keys, &r.c);
}

Test(conf, flags_win_over_file)
{
	struct run r;
	const char *path = write_cfg("[test]\nworkers = 8\nname = file\n"
	                             "enabled = yes\ndata_dir = /from/file\n");

	/* -f after the flags still applies first */
	cr_assert_eq(load(&r,
	                 (const char *const[]){ "prog", "--workers", "16",
	                     "--name=flag", "--enabled", "off", "-f", path,
	                     NULL }),
	    0);
	cr_assert_eq(r.c.workers, 16);
	cr_assert_str_eq(r.c.name, "flag");
	cr_assert_eq(r.c.enabled, 0);
	cr_assert_str_eq(r.c.data_dir, "/from/file");
	conf_free(keys, &r.c);

	/* dashes and underscores both name the key */
	cr_assert_eq(load(&r,
	                 (const char *const[]){ "prog", "-f", path,
	                     "--data-dir", "/a", "--max_size", "2G", NULL }),
	    0);
	cr_assert_str_eq(r.c.data_dir, "/a");
	cr_assert_eq(r.c.max_size, 2ull << 30);
	conf_free(keys, &r.c);
}

Test(conf, positional_arguments_and_short_flags)
{
	struct run r;

	cr_assert_eq(load(&r,
	                 (const char *const[]){ "prog", "-f", "/dev/null",
	                     "first", "-dn", "--workers", "3", "second", "--",
	                     "--workers", "-v", NULL }),
	    0);
	cr_assert_eq(r.argc, 5);
	cr_assert_str_eq(r.argv[0], "prog");
	cr_assert_str_eq(r.argv[1], "first");
	cr_assert_str_eq(r.argv[2], "second");
	cr_assert_str_eq(r.argv[3], "--workers");
	cr_assert_str_eq(r.argv[4], "-v");
	cr_assert_null(r.argv[5]);
	cr_assert_eq(r.c.workers, 3);
	cr_assert_eq(r.o.foreground, 1);
	cr_assert_eq(r.o.verbose, 1);
	cr_assert_eq(r.o.check, 1);
	conf_free(keys, &r.c);

	cr_assert_eq(load(&r,
	                 (const char *const[]){ "prog", "-f", "/dev/null",
	                     "-v", NULL }),
	    0);
	cr_assert_eq(r.o.foreground, 0);
	cr_assert_eq(r.o.verbose, 1);
	conf_free(keys, &r.c);
}

Test(conf, value_types)
{
	static const struct {
		const char *flag, *val;
		int ok;
		uint64_t want;
	} cases[] = {
		{ "--workers", "0", 1, 0 },
		{ "--workers", "18446744073709551615", 1, UINT64_MAX },
		{ "--workers", "18446744073709551616", 0, 0 },
		{ "--workers", "-1", 0, 0 },
		{ "--workers", "+1", 0, 0 },
		{ "--workers", "", 0, 0 },
		{ "--workers", "12abc", 0, 0 },
		{ "--workers", "1K", 0, 0 },
		{ "--workers", " 1", 0, 0 },
		{ "--max-size", "0", 1, 0 },
		{ "--max-size", "123", 1, 123 },
		{ "--max-size", "4k", 1, 4096 },
		{ "--max-size", "4K", 1, 4096 },
		{ "--max-size", "4KiB", 1, 4096 },
		{ "--max-size", "4kb", 1, 4096 },
		{ "--max-size", "3M", 1, 3u << 20 },
		{ "--max-size", "3MB", 1, 3u << 20 },
		{ "--max-size", "5G", 1, 5ull << 30 },
		{ "--max-size", "5gib", 1, 5ull << 30 },
		{ "--max-size", "1T", 0, 0 },
		{ "--max-size", "1.5M", 0, 0 },
		{ "--max-size", "M", 0, 0 },
		{ "--max-size", "1MM", 0, 0 },
		{ "--max-size", "1Mi", 0, 0 },
		{ "--max-size", "17179869184G", 0, 0 },
		{ "--max-size", "17179869183G", 1, 17179869183ull << 30 },
		{ "--enabled", "yes", 1, 1 },
		{ "--enabled", "True", 1, 1 },
		{ "--enabled", "ON", 1, 1 },
		{ "--enabled", "1", 1, 1 },
		{ "--enabled", "no", 1, 0 },
		{ "--enabled", "FALSE", 1, 0 },
		{ "--enabled", "off", 1, 0 },
		{ "--enabled", "0", 1, 0 },
		{ "--enabled", "maybe", 0, 0 },
		{ "--enabled", "2", 0, 0 },
		{ "--enabled", "", 0, 0 },
	};
	struct run r;
	char *err;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = load_quiet(&r,
		    (const char *const[]){ "prog", "-f", "/dev/null",
		        cases[i].flag, cases[i].val, NULL },
		    &err);
		if (cases[i].ok) {
			cr_assert_eq(rc, 0, "%s %s: %s", cases[i].flag,
			    cases[i].val, err);
			cr_assert_str_empty(err);
			if (!strcmp(cases[i].flag, "--workers"))
				cr_assert_eq(r.c.workers, cases[i].want);
			else if (!strcmp(cases[i].flag, "--max-size"))
				cr_assert_eq(r.c.max_size, cases[i].want, "%s",
				    cases[i].val);
			else
				cr_assert_eq((uint64_t)r.c.enabled,
				    cases[i].want);
		} else {
			cr_assert_eq(rc, -1, "%s \"%s\" accepted",
			    cases[i].flag, cases[i].val);
			cr_assert(strncmp(err, "flag ", 5) == 0 &&
			        strstr(err, cases[i].flag) != NULL,
			    "message "
			    "does not name the flag: %s",
			    err);
			cr_assert_eq(count_lines(err), 1, "%s", err);
		}
		run_free(&r, err);
	}
}

Test(conf, file_errors_name_file_and_line_all_of_them)
{
	struct run r;
	char *err, want[128];
	int i;
	const char *path = write_cfg(
	    "[test]\n"                         /* 1 */
	    "bogus = 1\n"                      /* 2 unknown key */
	    "workers = 5\n"                    /* 3 fine */
	    "[test\n"                          /* 4 malformed section */
	    "no equals sign here\n"            /* 5 */
	    "workers = lots\n"                 /* 6 */
	    "max_size = 12X\n"                 /* 7 */
	    "enabled = maybe\n"                /* 8 */
	    "[test] x\n"                       /* 9 malformed section */
	    "workers = 99999999999999999999\n" /* 10 */
	    "[other]\n"                        /* 11 */
	    "bogus = fine, not our section\n"  /* 12 */
	    "[global]\n"                       /* 13 */
	    "bogus = fine in global\n"         /* 14 */
	    "[test]\n"                         /* 15 */
	    "= no key\n");                     /* 16 */
	static const struct {
		int line;
		const char *text;
	} errs[] = {
		{ 2, "unknown key \"bogus\" in [test]" },
		{ 4, "malformed section" },
		{ 5, "expected key = value" },
		{ 6, "workers: expected a number, got \"lots\"" },
		{ 7, "max_size: expected a size" },
		{ 8, "enabled: expected yes or no, got \"maybe\"" },
		{ 9, "malformed section" },
		{ 10, "workers: expected a number" },
		{ 16, "unknown key \"\"" },
	};

	err = load_fails(&r,
	    (const char *const[]){ "prog", "-f", path, NULL });
	for (i = 0; i < (int)(sizeof(errs) / sizeof(errs[0])); i++) {
		snprintf(want, sizeof(want), "%s:%d: %s", path, errs[i].line,
		    errs[i].text);
		cr_assert(strstr(err, want) != NULL, "missing \"%s\" in:\n%s",
		    want, err);
	}
	cr_assert_eq(count_lines(err), (int)(sizeof(errs) / sizeof(errs[0])),
	    "one line per error, got:\n%s", err);
	/* every line starts with the file name */
	{
		const char *p = err;

		while (*p) {
			cr_assert_eq(strncmp(p, path, strlen(path)), 0, "%s",
			    p);
			p = strchr(p, '\n');
			cr_assert_not_null(p);
			p++;
		}
	}
	run_free(&r, err);
}

Test(conf, flag_errors_all_reported)
{
	struct run r;
	char *err;

	err = load_fails(&r,
	    (const char *const[]){ "prog", "-f", "/dev/null", "--bogus", "1",
	        "-x", "--workers", "abc", "--enabled", NULL });
	cr_assert(strstr(err, "unknown flag --bogus") != NULL, "%s", err);
	cr_assert(strstr(err, "unknown flag -x") != NULL, "%s", err);
	cr_assert(strstr(err,
	              "flag --workers: workers: expected a number, "
	              "got \"abc\"") != NULL,
	    "%s", err);
	cr_assert(strstr(err, "flag --enabled: needs a value") != NULL, "%s",
	    err);
	cr_assert_eq(count_lines(err), 4, "%s", err);
	run_free(&r, err);
}

Test(conf, missing_file)
{
	struct run r;
	char *err;

	err = load_fails(&r,
	    (const char *const[]){ "prog", "-f", "/nonexistent/eventfold.conf",
	        NULL });
	cr_assert(strstr(err, "/nonexistent/eventfold.conf: No such file") !=
	        NULL,
	    "%s", err);
	run_free(&r, err);

	/* -f without its file */
	err = load_fails(&r, (const char *const[]){ "prog", "-f", NULL });
	cr_assert(strstr(err, "-f") != NULL, "%s", err);
	run_free(&r, err);
}

Test(conf, print_and_usage)
{
	struct run r;
	char buf[4096];
	FILE *fp;

	cr_assert_eq(load(&r,
	                 (const char *const[]){ "prog", "-f", "/dev/null",
	                     "--name", "x y", "--enabled", "1", NULL }),
	    0);
	fp = fmemopen(buf, sizeof(buf), "w");
	cr_assert_not_null(fp);
	conf_print(fp, keys, "test", &r.c);
	fclose(fp);
	cr_assert_str_eq(buf,
	    "[test]\n"
	    "data_dir = /var/lib/test\n"
	    "name = x y\n"
	    "workers = 4\n"
	    "max_size = 1048576\n"
	    "enabled = yes\n");
	fp = fmemopen(buf, sizeof(buf), "w");
	cr_assert_not_null(fp);
	conf_usage(fp, keys);
	fclose(fp);
	cr_assert(strstr(buf, "--data-dir STR") != NULL, "%s", buf);
	cr_assert(strstr(buf, "(default /var/lib/test)") != NULL, "%s", buf);
	cr_assert(strstr(buf, "--max-size N") != NULL, "%s", buf);
	cr_assert(strstr(buf, "--enabled yes|no") != NULL, "%s", buf);
	cr_assert(strstr(buf, "-f FILE") != NULL, "%s", buf);
	conf_free(keys, &r.c);
}

Test(conf, help_exits_zero, .exit_code = 0)
{
	struct run r;

	/* prints usage on stdout and exits 0: never returns */
	load(&r,
	    (const char *const[]){ "prog", "-f", "/dev/null", "--help",
	        NULL });
	cr_assert_fail("conf_load returned on --help");
}
