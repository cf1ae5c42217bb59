/* SPDX-License-Identifier: MIT */
/*
 * backup.c - eventfoldctl's data-in-and-out commands: `backup` (an
 * online, consistent copy taken by eventfold-stored itself, BACKUP in
 * proto/IPC.md; the copying is done in daemons/stored/backup.c because
 * only stored knows its committed position and its segments).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "data.h"
#include "guard.h"

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
		snprintf(parent, sizeof(parent), "%s", slash == copy ? "/" :
		    copy);
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

int
cmd_backup(struct ctl *c, int argc, char **argv)
{
	char dir[PATH_MAX];
	const char *target = NULL, *why = "";
	struct ipc_backup_req r;
	struct ipc_backup_rep br;
	struct client_reply cr;
	struct ef_client cl;
	struct ipc_out o;
	uint64_t wait_s = BACKUP_WAIT_S;
	int i, st, rc = CTL_OK;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else if (!strcmp(argv[i], "--wait") && i + 1 < argc) {
			if (ctl_parse_u64(argv[++i], &wait_s) != 0 ||
			    wait_s == 0)
				return ctl_err(CTL_USAGE, "--wait: a number of "
				    "seconds, at least 1");
		} else if (argv[i][0] != '-' && target == NULL)
			target = argv[i];
		else
			target = NULL, i = argc + 1;
	}
	if (target == NULL || i > argc)
		return ctl_usage("backup");
	if (absolute_dir(target, dir, sizeof(dir)) != 0)
		return ctl_err(CTL_USAGE, "%s: its parent directory must "
		    "exist", target);
	if ((rc = ctl_reach(c, CTL_STORED)) != 0)
		return rc;
	if (client_open(&cl, c->store_url, (int)c->conf.timeout_ms) != 0)
		return ctl_err(CTL_USAGE, "bad store URL %s", c->store_url);
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
	st = client_call_wait(&cl, &o, wait_s * 1000, &cr);
	if (st == EF_S_UNAVAILABLE && cr.msg == NULL) {
		rc = ctl_err(CTL_UNAVAILABLE, "UNAVAILABLE: %.*s (the backup "
		    "may still be running: see stored's log)",
		    (int)cr.in.message.len, cr.in.message.ptr);
		goto out;
	}
	if (st != EF_S_OK)
		rc = ctl_status_exit(st, &cr.in.message);
	else if (ipc_backup_rep_decode(cr.in.body, &br, &why) != 0)
		rc = ctl_err(CTL_INTERNAL, "malformed reply: %s", why);
	else if (c->json) {
		json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
		    "dir", dir, "position", (json_int_t)br.position,
		    "segments", (json_int_t)br.segments, "linked",
		    (json_int_t)br.linked, "copied", (json_int_t)br.copied,
		    "bytes", (json_int_t)br.bytes, "index_bytes",
		    (json_int_t)br.index_bytes);
		char *txt = j ? json_dumps(j, JSON_COMPACT |
		    JSON_PRESERVE_ORDER) : NULL;

		if (txt != NULL)
			printf("%s\n", txt);
		free(txt);
		json_decref(j);
	} else
		printf("backup %s: consistent at position %" PRIu64 " (%"
		    PRIu64 " events; %" PRIu64 " segments: %" PRIu64
		    " linked, %" PRIu64 " copied, %" PRIu64 " bytes; index %"
		    PRIu64 " bytes)\n", dir, br.position, br.position,
		    br.segments, br.linked, br.copied, br.bytes,
		    br.index_bytes);
out:
	client_reply_free(&cr);
	ipc_out_free(&o);
	client_close(&cl);
	return rc;
}
