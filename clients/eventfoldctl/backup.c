/* SPDX-License-Identifier: MIT */
/*
 * backup.c - eventfoldctl's data-in-and-out commands: `backup` (an
 * online, consistent copy taken by eventfold-stored itself, BACKUP in
 * proto/IPC.md; the copying is done in daemons/stored/backup.c because
 * only stored knows its committed position and its segments), with
 * --runner runnerd's state too (RUNNER_BACKUP, copied by runnerd first,
 * so that its checkpoints are at or below the log's position).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "clock.h"
#include "data.h"
#include "guard.h"
#include "ipc_runner.h"

#define BACKUP_WAIT_S 3600 /* default --wait */

/*
 * dir as an absolute path for stored, whose working directory is not
 * ours: its parent resolved (it must exist), its last component kept.
 */
static int
absolute_dir(const char *dir, char *out, size_t len)
{
	char parent[PATH_MAX], real[PATH_MAX], *copy, *slash, *base;
	size_t n;

	if ((copy = strdup(dir)) == NULL)
		return -ENOMEM;
	n = strlen(copy);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = '\0';
	slash = strrchr(copy, '/');
	if (slash == NULL) {
		snprintf(parent, sizeof(parent), ".");
		base = copy;
	} else {
		*slash = '\0';
		snprintf(parent, sizeof(parent), "%s",
		    slash == copy ? "/" : copy);
		base = slash + 1;
	}
	if (!strcmp(base, ".") || !strcmp(base, "..") || *base == '\0' ||
	    realpath(parent, real) == NULL) {
		free(copy);
		return -ENOENT;
	}
	if ((size_t)snprintf(out, len, "%s/%s", strcmp(real, "/") ? real : "",
	        base) >= len) {
		free(copy);
		return -ENAMETOOLONG;
	}
	free(copy);
	return 0;
}

/*
 * While stored copies, a terminal sees how long it has been: stored
 * answers BACKUP once, at the end, so there are no events or bytes to
 * show before then (the last line has them).
 */
struct ticker {
	struct progress *pr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void *
ticker_main(void *arg)
{
	struct ticker *t = arg;

	pthread_mutex_lock(&t->mu);
	while (clock_nap(&t->cv, &t->mu, 500, &t->done)) {
		fprintf(stderr, "\rbackup: stored is copying, %.0f s   ",
		    (double)(guard_now_ms() - t->pr->start_ms) / 1000.0);
		fflush(stderr);
		t->pr->shown = 1;
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/*
 * runnerd copies its state into tmp (RUNNER_BACKUP). 0 with *bytes set,
 * else the exit code after saying why.
 */
static int
runner_backup(struct ctl *c, const char *tmp, uint64_t *bytes)
{
	struct ipc_backup_req r;
	struct client_reply cr;
	struct ef_client cl;
	struct ipc_out o;
	const char *why = "";
	int rc;

	if ((rc = ctl_open(c, CTL_RUNNERD, &cl, 0)) != 0)
		return rc;
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_RUNNER_BACKUP, client_request_id(&cl));
	r.dir.ptr = tmp;
	r.dir.len = (uint32_t)strlen(tmp);
	ipc_backup_req_encode(&o, &r);
	rc = ctl_check(c, CTL_RUNNERD,
	    client_call_wait(&cl, &o, (uint64_t)BACKUP_WAIT_S * 1000, &cr),
	    &cr);
	if (rc == CTL_OK && ipc_counts_decode(cr.in.body, bytes, 1, &why) != 0)
		rc = ctl_err(CTL_INTERNAL, "malformed reply from runnerd: %s",
		    why);
	client_reply_free(&cr);
	ipc_out_free(&o);
	client_close(&cl);
	return rc;
}

/* Removes what runner_backup() left in tmp. */
static void
runner_discard(const char *tmp)
{
	char file[PATH_MAX + 16];

	snprintf(file, sizeof(file), "%s/data.mdb", tmp);
	unlink(file);
	rmdir(tmp);
}

/* Moves the runner copy into DIR/runner and makes the move durable. */
static int
runner_place(const char *tmp, const char *dir)
{
	char to[PATH_MAX + 16];
	int fd, rc = 0;

	snprintf(to, sizeof(to), "%s/runner", dir);
	if (rename(tmp, to) != 0)
		return ctl_err(CTL_INTERNAL,
		    "rename %s to %s: %s (runnerd's "
		    "state is in %s: move it there by hand)",
		    tmp, to, strerror(errno), tmp);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(fd) != 0)
		rc = ctl_err(CTL_INTERNAL, "fsync %s: %s", dir,
		    strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Starts t's thread if pr is shown; 1 if it runs. */
static int
ticker_start(struct ticker *t, pthread_t *thr, struct progress *pr)
{
	if (!pr->on)
		return 0;
	t->pr = pr;
	t->done = false;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	return pthread_create(thr, NULL, ticker_main, t) == 0;
}

static void
ticker_stop(struct ticker *t, pthread_t thr)
{
	pthread_mutex_lock(&t->mu);
	t->done = true;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(thr, NULL);
}

/* backup's arguments: the target directory and the options. */
struct backup_args {
	const char *target;
	uint64_t wait_s;
	int runner, quiet;
};

static int
backup_args(struct ctl *c, int argc, char **argv, struct backup_args *a)
{
	int i;

	memset(a, 0, sizeof(*a));
	a->wait_s = BACKUP_WAIT_S;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (!strcmp(argv[i], "--runner"))
			a->runner = 1;
		else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
			a->quiet = 1;
		else if (!strcmp(argv[i], "--wait") && i + 1 < argc) {
			if (ctl_parse_u64(argv[++i], &a->wait_s) != 0 ||
			    a->wait_s == 0)
				return ctl_err(CTL_USAGE,
				    "--wait: a number of "
				    "seconds, at least 1");
		} else if (argv[i][0] != '-' && a->target == NULL)
			a->target = argv[i];
		else
			return ctl_usage("backup");
	}
	return a->target == NULL ? ctl_usage("backup") : CTL_OK;
}

/* What stored's BACKUP reply br says (and runnerd's share, if any). */
static void
backup_print(const struct ctl *c, const char *dir,
    const struct ipc_backup_rep *br, int runner, uint64_t runner_bytes)
{
	json_t *j;
	char *txt;

	if (!c->json) {
		printf("backup %s: consistent at position %" PRIu64
		       " (%" PRIu64 " events; %" PRIu64 " segments: %" PRIu64
		       " linked, %" PRIu64 " copied, %" PRIu64
		       " bytes; index %" PRIu64 " bytes)\n",
		    dir, br->position, br->position, br->segments, br->linked,
		    br->copied, br->bytes, br->index_bytes);
		return;
	}
	j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "dir", dir,
	    "position", (json_int_t)br->position, "segments",
	    (json_int_t)br->segments, "linked", (json_int_t)br->linked,
	    "copied", (json_int_t)br->copied, "bytes", (json_int_t)br->bytes,
	    "index_bytes", (json_int_t)br->index_bytes);
	if (j != NULL && runner)
		json_object_set_new(j, "runner_bytes",
		    json_integer((json_int_t)runner_bytes));
	txt = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (txt != NULL)
		printf("%s\n", txt);
	free(txt);
	json_decref(j);
}

/*
 * What stored's reply to BACKUP of dir (status st, in cr) means, said;
 * with the runner's share (runner_bytes) when a asked for it. The exit
 * code.
 */
static int
backup_outcome(const struct ctl *c, const char *dir, int st,
    const struct client_reply *cr, const struct backup_args *a,
    uint64_t runner_bytes, struct progress *pr)
{
	struct ipc_backup_rep br;
	const char *why = "";

	if (st == EF_S_UNAVAILABLE && cr->msg == NULL)
		return ctl_err(CTL_UNAVAILABLE,
		    "UNAVAILABLE: %.*s (the backup "
		    "may still be running: see stored's log)",
		    (int)cr->in.message.len, cr->in.message.ptr);
	if (st != EF_S_OK)
		return ctl_status_exit(st, &cr->in.message);
	if (ipc_backup_rep_decode(cr->in.body, &br, &why) != 0)
		return ctl_malformed(why);
	backup_print(c, dir, &br, a->runner, runner_bytes);
	fflush(stdout);
	progress(pr, br.position, br.bytes + br.index_bytes + runner_bytes, 1);
	if (a->runner && !c->json)
		printf("backup %s/runner: runnerd's state, %" PRIu64 " bytes, "
		       "taken before the log (its checkpoints are at or below "
		       "position %" PRIu64 ")\n",
		    dir, runner_bytes, br.position);
	return CTL_OK;
}

int
cmd_backup(struct ctl *c, int argc, char **argv)
{
	char dir[PATH_MAX];
	const char *target;
	struct ipc_backup_req r;
	struct backup_args a;
	struct client_reply cr;
	struct ef_client cl;
	struct ipc_out o;
	char tmp[PATH_MAX + 32];
	uint64_t runner_bytes = 0;
	struct progress pr;
	struct ticker tk;
	pthread_t tk_thr;
	int st, runner, ticking, rc = CTL_OK;

	if ((rc = backup_args(c, argc, argv, &a)) != CTL_OK)
		return rc;
	target = a.target;
	runner = a.runner;
	if (absolute_dir(target, dir, sizeof(dir)) != 0)
		return ctl_err(CTL_USAGE,
		    "%s: its parent directory must "
		    "exist",
		    target);
	if ((rc = ctl_reach(c, CTL_STORED)) != 0)
		return rc;
	progress_init(&pr, "backup", a.quiet || c->json);
	/*
	 * runnerd's state first: what it holds was read from the log
	 * before the log's copy is taken, so its checkpoints and snapshots
	 * are at or below the position the log's copy is consistent at.
	 */
	if (runner) {
		snprintf(tmp, sizeof(tmp), "%s.runner-%ld", dir,
		    (long)getpid());
		if ((rc = runner_backup(c, tmp, &runner_bytes)) != CTL_OK)
			return rc;
	}
	if (client_open(&cl, c->store_url, (int)c->conf.timeout_ms) != 0) {
		if (runner)
			runner_discard(tmp);
		return ctl_err(CTL_USAGE, "bad store URL %s", c->store_url);
	}
	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_BACKUP, client_request_id(&cl));
	r.dir.ptr = dir;
	r.dir.len = (uint32_t)strlen(dir);
	ipc_backup_req_encode(&o, &r);
	/*
	 * The request must reach stored within the usual timeout, but the
	 * copy may take far longer. A connection that breaks is re-dialed
	 * and the request sent again, as for any call (nng 1.5 re-creates a
	 * wedged listener under our feet): if the first one had started,
	 * the second is refused ("another backup is running") and the
	 * first goes on; stored's log says how it ended.
	 */
	ticking = ticker_start(&tk, &tk_thr, &pr);
	st = client_call_wait(&cl, &o, a.wait_s * 1000, &cr);
	if (ticking)
		ticker_stop(&tk, tk_thr);
	progress_clear(&pr);
	if (runner && st != EF_S_OK)
		runner_discard(tmp);
	if (runner && st == EF_S_OK && (rc = runner_place(tmp, dir)) != 0)
		goto out;
	rc = backup_outcome(c, dir, st, &cr, &a, runner_bytes, &pr);
out:
	client_reply_free(&cr);
	ipc_out_free(&o);
	client_close(&cl);
	return rc;
}
