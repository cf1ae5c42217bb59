/* SPDX-License-Identifier: MIT */
/*
 * conf.c - keyword-table driven config file and flag parser (conf.h).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"

static int
conf_set(const struct conf_key *k, void *dst, const char *val, char *err,
    size_t errlen)
{
	char *end, **sp;
	uint64_t v, mul = 1;
	int *bp;

	switch (k->type) {
	case CONF_STR:
		sp = (char **)((char *)dst + k->off);
		free(*sp);
		if ((*sp = strdup(val)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	case CONF_U64:
	case CONF_SIZE:
		if (!isdigit((unsigned char)val[0]))
			goto badnum;
		errno = 0;
		v = strtoull(val, &end, 10);
		if (errno != 0)
			goto badnum;
		if (k->type == CONF_SIZE && *end != '\0') {
			switch (toupper((unsigned char)*end)) {
			case 'K':
				mul = 1ull << 10;
				break;
			case 'M':
				mul = 1ull << 20;
				break;
			case 'G':
				mul = 1ull << 30;
				break;
			default:
				goto badnum;
			}
			end++;
			if (toupper((unsigned char)*end) == 'I' &&
			    toupper((unsigned char)end[1]) == 'B')
				end += 2;
			else if (toupper((unsigned char)*end) == 'B')
				end++;
		}
		if (*end != '\0' || (mul > 1 && v > UINT64_MAX / mul))
			goto badnum;
		*(uint64_t *)((char *)dst + k->off) = v * mul;
		return 0;
	case CONF_BOOL:
		bp = (int *)((char *)dst + k->off);
		if (!strcasecmp(val, "yes") || !strcasecmp(val, "true") ||
		    !strcasecmp(val, "on") || !strcmp(val, "1"))
			*bp = 1;
		else if (!strcasecmp(val, "no") || !strcasecmp(val, "false") ||
		    !strcasecmp(val, "off") || !strcmp(val, "0"))
			*bp = 0;
		else {
			snprintf(err, errlen,
			    "%s: expected yes or no, got "
			    "\"%s\"",
			    k->name, val);
			return -1;
		}
		return 0;
	}
	return -1;
badnum:
	snprintf(err, errlen, "%s: expected a %s, got \"%s\"", k->name,
	    k->type == CONF_SIZE ? "size (e.g. 64M)" : "number", val);
	return -1;
}

static const struct conf_key *
conf_find(const struct conf_key *keys, const char *name, size_t len, int flag)
{
	const struct conf_key *k;
	size_t i;

	for (k = keys; k->name != NULL; k++) {
		if (strlen(k->name) != len)
			continue;
		for (i = 0; i < len; i++) {
			char c = name[i];

			if (flag && c == '-')
				c = '_';
			if (c != k->name[i])
				break;
		}
		if (i == len)
			return k;
	}
	return NULL;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int
conf_file(const struct conf_key *keys, const char *section, void *dst,
    const char *path, int must)
{
	char line[4096], err[512], *p, *eq, *key, *val, *hash;
	const struct conf_key *k;
	int lineno = 0, errors = 0, active = 0, global = 0;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		if (!must && errno == ENOENT)
			return 0;
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		p = trim(line);
		if (*p == '\0')
			continue;
		if (*p == '[') {
			char *e = strchr(p, ']');

			if (e == NULL || e[1] != '\0') {
				fprintf(stderr, "%s:%d: malformed section\n",
				    path, lineno);
				errors++;
				continue;
			}
			*e = '\0';
			p = trim(p + 1);
			global = !strcmp(p, "global");
			active = global || !strcmp(p, section);
			continue;
		}
		if ((eq = strchr(p, '=')) == NULL) {
			fprintf(stderr, "%s:%d: expected key = value\n", path,
			    lineno);
			errors++;
			continue;
		}
		*eq = '\0';
		key = trim(p);
		val = trim(eq + 1);
		if (!active)
			continue;
		if ((k = conf_find(keys, key, strlen(key), 0)) == NULL) {
			if (global) /* keys of the other programs */
				continue;
			fprintf(stderr, "%s:%d: unknown key \"%s\" in [%s]\n",
			    path, lineno, key, section);
			errors++;
			continue;
		}
		if (conf_set(k, dst, val, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s:%d: %s\n", path, lineno, err);
			errors++;
		}
	}
	fclose(fp);
	return errors;
}

void
conf_usage(FILE *fp, const struct conf_key *keys)
{
	fprintf(fp,
	    "  -d                  run in the foreground, verbose\n"
	    "  -v                  verbose (debug) logging\n"
	    "  -f FILE             config file (default %s)\n"
	    "  -n                  check the configuration and exit "
	    "(-nv: print it)\n"
	    "  -h, --help          this help\n",
	    CONF_DEFAULT_FILE);
	conf_usage_keys(fp, keys);
}

void
conf_usage_keys(FILE *fp, const struct conf_key *keys)
{
	const struct conf_key *k;
	char flag[128];
	size_t i;

	for (k = keys; k->name != NULL; k++) {
		snprintf(flag, sizeof(flag), "--%s %s", k->name,
		    k->type == CONF_BOOL    ? "yes|no" :
		        k->type == CONF_STR ? "STR" :
		                              "N");
		for (i = 2; flag[i] != ' '; i++)
			if (flag[i] == '_')
				flag[i] = '-';
		fprintf(fp, "  %-19s %s", flag, k->help);
		if (k->def != NULL && *k->def != '\0')
			fprintf(fp, " (default %s)", k->def);
		fputc('\n', fp);
	}
}

/* The short flags of a ("-dv"): -d, -v, -n into opts. The errors. */
static int
short_flags(const char *a, struct conf_opts *opts)
{
	const char *c;
	int errors = 0;

	for (c = a + 1; *c; c++) {
		if (*c == 'd')
			opts->foreground = opts->verbose = 1;
		else if (*c == 'v')
			opts->verbose = 1;
		else if (*c == 'n')
			opts->check = 1;
		else {
			fprintf(stderr, "unknown flag -%c (see --help)\n", *c);
			errors++;
		}
	}
	return errors;
}

/* The long flag argv[*i] (--key=value or --key value) into dst. The
 * errors. */
static int
long_flag(const struct conf_key *keys, void *dst, int *i, int argc,
    char **argv)
{
	const char *a = argv[*i], *name = a + 2, *val, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const struct conf_key *k;
	char err[512];

	if ((k = conf_find(keys, name, len, 1)) == NULL) {
		fprintf(stderr, "unknown flag %s (see --help)\n", a);
		return 1;
	}
	if (eq != NULL)
		val = eq + 1;
	else if (*i + 1 < argc)
		val = argv[++*i];
	else {
		fprintf(stderr, "flag %s: needs a value\n", a);
		return 1;
	}
	if (conf_set(k, dst, val, err, sizeof(err)) != 0) {
		fprintf(stderr, "flag --%.*s: %s\n", (int)len, name, err);
		return 1;
	}
	return 0;
}

/* The defaults, then the file (-f FILE, else the default file's if it
 * exists) into dst. The errors. */
static int
load_defaults_and_file(const struct conf_key *keys, const char *section,
    void *dst, int argc, char **argv, struct conf_opts *opts)
{
	const struct conf_key *k;
	const char *file = NULL;
	char err[512];
	int i, errors = 0;

	for (k = keys; k->name != NULL; k++)
		if (k->def != NULL &&
		    conf_set(k, dst, k->def, err, sizeof(err)) != 0) {
			fprintf(stderr, "default %s\n", err);
			errors++;
		}
	/* First pass: -f, so the file is read before the flags apply. */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-f") && i + 1 < argc)
			file = argv[++i];
	}
	if (file != NULL)
		errors += conf_file(keys, section, dst, file, 1);
	else
		errors += conf_file(keys, section, dst, CONF_DEFAULT_FILE, 0);
	opts->file = file ? file : CONF_DEFAULT_FILE;
	return errors;
}

int
conf_load(const struct conf_key *keys, const char *section, void *dst,
    int *argcp, char **argv, struct conf_opts *opts, const char *usage)
{
	int argc = *argcp, i, out = 1, errors;

	memset(opts, 0, sizeof(*opts));
	errors = load_defaults_and_file(keys, section, dst, argc, argv, opts);
	for (i = 1; i < argc; i++) {
		char *a = argv[i];

		if (!strcmp(a, "--")) {
			for (i++; i < argc; i++)
				argv[out++] = argv[i];
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("%s", usage);
			conf_usage(stdout, keys);
			exit(0);
		}
		if (!strcmp(a, "-f")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "flag -f: needs a file\n");
				errors++;
			}
			i++;
		} else if (a[0] == '-' && a[1] != '-' && a[1] != '\0')
			errors += short_flags(a, opts);
		else if (a[0] == '-' && a[1] == '-')
			errors += long_flag(keys, dst, &i, argc, argv);
		else
			argv[out++] = a;
	}
	argv[out] = NULL;
	*argcp = out;
	return errors ? -1 : 0;
}

void
conf_print(FILE *fp, const struct conf_key *keys, const char *section,
    const void *dst)
{
	const struct conf_key *k;
	const char *s;

	fprintf(fp, "[%s]\n", section);
	for (k = keys; k->name != NULL; k++) {
		const char *p = (const char *)dst + k->off;

		switch (k->type) {
		case CONF_STR:
			s = *(char *const *)p;
			fprintf(fp, "%s = %s\n", k->name, s ? s : "");
			break;
		case CONF_U64:
		case CONF_SIZE:
			fprintf(fp, "%s = %" PRIu64 "\n", k->name,
			    *(const uint64_t *)p);
			break;
		case CONF_BOOL:
			fprintf(fp, "%s = %s\n", k->name,
			    *(const int *)p ? "yes" : "no");
			break;
		}
	}
}

void
conf_free(const struct conf_key *keys, void *dst)
{
	const struct conf_key *k;

	for (k = keys; k->name != NULL; k++)
		if (k->type == CONF_STR) {
			char **sp = (char **)((char *)dst + k->off);

			free(*sp);
			*sp = NULL;
		}
}
