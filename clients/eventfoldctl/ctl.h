/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - shared state of eventfoldctl's commands.
 *
 * Exit codes (documented in eventfoldctl(8)):
 *   0 success; 1 usage error; 2 daemon unreachable or not answering;
 *   3 request refused (validation, wrong expected version, rejection);
 *   4 not found; 5 data corruption; 6 internal or protocol error.
 */
#ifndef EF_CTL_H
#define EF_CTL_H

#include <stdint.h>

#include "client.h"

#define CTL_OK          0
#define CTL_USAGE       1
#define CTL_UNAVAILABLE 2
#define CTL_REFUSED     3
#define CTL_NOT_FOUND   4
#define CTL_CORRUPT     5
#define CTL_INTERNAL    6

struct ctl_conf {
	char *runtime_dir;
	char *data_dir;
	char *store_url;
	char *events_url;
	char *runner_url;
	uint64_t timeout_ms;
	char *mirror_metrics;
};

struct ctl {
	struct ctl_conf conf;
	int json;
	char store_url[4200];
	char events_url[4200];
	char runner_url[4200];
};

/*
 * One row per command. usage is its one line in --help, in `help NAME`
 * and in usage errors, starting with the name. A global option (such as
 * --data-dir) after the command word is refused with "options go before
 * the command word", unless usage names it: then it is the command's.
 */
struct ctl_cmd {
	const char *name;
	int (*fn)(struct ctl *, int argc, char **argv);
	const char *usage;
};

/* The daemons eventfoldctl talks to. */
enum ctl_daemon { CTL_STORED, CTL_RUNNERD };

/* Command tables: store commands (store.c), runner commands (runner.c). */
extern const struct ctl_cmd ctl_store_cmds[];
extern const struct ctl_cmd ctl_runner_cmds[];
/* backup, export, import (backup.c, ...) */
extern const struct ctl_cmd ctl_data_cmds[];
/* mirror (mirror.c): eventfold-mirrord's state */
extern const struct ctl_cmd ctl_mirror_cmds[];

/* Prints "eventfoldctl: msg" to stderr and returns code. */
int ctl_err(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "usage: eventfoldctl [options] USAGE" of command name;
 * returns CTL_USAGE. */
int ctl_usage(const char *name);
/* 0 if d's request socket can be dialled; else prints why, naming the
 * path and the option that sets it, and returns CTL_UNAVAILABLE. */
int ctl_reach(const struct ctl *c, enum ctl_daemon d);
const char *ctl_daemon_name(enum ctl_daemon d);
/* Opens cl to d's request socket with the configured timeout plus
 * extra_ms. 0, or the exit code after printing why (CTL_UNAVAILABLE:
 * nobody at the socket; CTL_USAGE: a bad URL). Close cl with
 * client_close() after a 0. */
int ctl_open(const struct ctl *c, enum ctl_daemon d, struct ef_client *cl,
    uint64_t extra_ms);
/* CTL_OK if status st of a call to d is EF_S_OK, else ctl_call_exit(). */
int ctl_check(const struct ctl *c, enum ctl_daemon d, int st,
    const struct client_reply *cr);
/* Sends req on cl (open to d) and ctl_check()s the status; the reply is
 * in *cr either way, to be freed with client_reply_free(). */
int ctl_ask(const struct ctl *c, enum ctl_daemon d, struct ef_client *cl,
    const struct ipc_out *req, struct client_reply *cr);
/* Prints "malformed reply: why" and returns CTL_INTERNAL. */
int ctl_malformed(const char *why);
/* ctl_status_exit, naming the daemon when no reply came at all. */
int ctl_call_exit(const struct ctl *c, enum ctl_daemon d, int status,
    const struct client_reply *cr);
/* Maps a reply status to an exit code and prints its message. */
int ctl_status_exit(int status, const struct ipc_str *msg);
/* Reads all of stdin (at most max bytes, a whole number of KiB) into a
 * malloc'd buffer; NULL on error or if it is larger, with *why saying
 * which: "more than N MiB|KiB (the most WHAT holds)" for the latter.
 * *why stays valid until the next call. */
uint8_t *ctl_read_stdin(size_t *len, size_t max, const char *what,
    const char **why);
/* Says on stderr that what (payload, metadata) is not JSON and goes as
 * bytes, when p (len bytes, len > 0) does not parse as JSON; key: the
 * JSON output key that will show it (NULL if it is not stored). */
void ctl_note_not_json(const char *what, const char *key, const uint8_t *p,
    size_t len);
/* Parses a non-negative integer argument; -1 if it is not one. */
int ctl_parse_u64(const char *s, uint64_t *v);

/* Prints "eventfoldctl: what" on stderr for an empty table (nothing on
 * stdout: a table's header is printed only above rows); silent with
 * --json. */
void ctl_empty(const struct ctl *c, const char *what);

/* table.c: a table whose columns are as wide as their widest cell. */
#define TBL_MAXCOLS 12
struct tbl {
	int ncols;
	char align[TBL_MAXCOLS]; /* 'l' or 'r' per column */
	const char *hdr[TBL_MAXCOLS];
	char ***rows;
	size_t n, cap;
};
/* align: one letter per column; then one header string per column. */
void tbl_init(struct tbl *t, const char *align, ...);
/* One string per column (copied; NULL is empty). */
void tbl_row(struct tbl *t, ...);
size_t tbl_rows(const struct tbl *t);
/* Header and rows; prints nothing at all when there is no row. */
void tbl_print(struct tbl *t);
void tbl_free(struct tbl *t);

/* output.c */
void out_event(const struct ctl *c, const struct ef_event *ev);
void out_event_header(const struct ctl *c);

#endif
