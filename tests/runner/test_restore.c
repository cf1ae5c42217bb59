/* SPDX-License-Identifier: MIT */
/*
 * test_restore.c - runnerd given an older log than its state: stored
 * backed up (BACKUP) at position N while runnerd's projections follow,
 * more events applied past N, then stored restored from the backup
 * (runnerd's own state kept). Without a check, the projection would
 * resume at its checkpoint, beyond the restored head, and silently skip
 * the positions N.. that the log gets next. runnerd must see that its
 * checkpoint is beyond the head, say so, and rebuild from 0: the
 * "strict" projection (which fails unless it sees every position once,
 * in order) ends at exactly N, then applies new events from N on.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "rharness.h"

TestSuite(restore, .timeout = 180);

static void
plain(uint32_t i, char *type, char *meta, char *payload, void *arg)
{
	(void)arg;
	strcpy(type, "Plain");
	meta[0] = '\0';
	sprintf(payload, "{\"i\":%u}", i);
}

static void
backup(struct rh *h, const char *dir, uint64_t *position)
{
	struct ipc_backup_req r = { { dir, (uint32_t)strlen(dir) } };
	struct ipc_backup_rep br;
	struct client_reply cr;
	struct ipc_out o;
	const char *why = "";
	int st;

	ipc_out_init(&o);
	ipc_request_begin(&o, EF_OP_BACKUP, client_request_id(&h->store));
	ipc_backup_req_encode(&o, &r);
	st = client_call(&h->store, &o, &cr);
	cr_assert_eq(st, EF_S_OK, "backup: %.*s", (int)cr.in.message.len,
	    cr.in.message.ptr);
	cr_assert_eq(ipc_backup_rep_decode(cr.in.body, &br, &why), 0);
	*position = br.position;
	client_reply_free(&cr);
	ipc_out_free(&o);
}

Test(restore, projection_rebuilds_after_an_older_log)
{
	static const char *const plugins[] = { "testplug.so", NULL };
	struct rh h;
	struct rh_fold f;
	uint8_t sid[UUID_LEN];
	char bk[RH_PATH + 16], old[RH_PATH + 16], from[RH_PATH + 32];
	char to[RH_PATH + 32];
	uint64_t pos;
	int status;

	rh_init(&h, plugins);
	rh_start_stored(&h);
	rh_start_runnerd(&h);
	memset(sid, 0x42, sizeof(sid));
	sid[6] = 0x40;
	sid[8] = 0x80;
	cr_assert_eq(rh_append_batch(&h, sid, 50, plain, NULL), EF_S_OK);
	cr_assert(rh_wait_fold(&h, "strict", 50, 10000));

	snprintf(bk, sizeof(bk), "%s/bk", h.dir);
	backup(&h, bk, &pos);
	cr_assert_eq(pos, 50);
	cr_assert_eq(rh_append_batch(&h, sid, 30, plain, NULL), EF_S_OK);
	cr_assert(rh_wait_fold(&h, "strict", 80, 10000));

	/* stop both; the log goes back to the backup, runnerd's state stays */
	rh_kill_runnerd(&h, SIGTERM);
	kill(h.stored, SIGTERM);
	waitpid(h.stored, &status, 0);
	h.stored = 0;
	snprintf(from, sizeof(from), "%s/runner", h.data);
	snprintf(to, sizeof(to), "%s/runner", bk);
	cr_assert_eq(rename(from, to), 0, "move %s", from);
	snprintf(old, sizeof(old), "%s/old", h.dir);
	cr_assert_eq(rename(h.data, old), 0);
	cr_assert_eq(rename(bk, h.data), 0);

	rh_start_stored(&h);
	rh_start_runnerd(&h);
	/* rebuilt: exactly 50 (80, the old checkpoint, is what a runnerd
	 * that does not check keeps reporting) */
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(rh_fold(&h, "strict", &f), EF_S_OK);
		if (f.position == 50 && !f.has_error)
			break;
		rh_ms(10);
	}
	cr_assert_eq(f.position, 50, "strict at %lu after the restore",
	    (unsigned long)f.position);
	cr_assert(!f.has_error, "strict failed: %s", f.error);
	cr_assert(rh_log_contains(h.runnerd_log, "beyond the log's head"),
	    "runnerd did not say why it rebuilt");

	/* the positions 50.. of the restored log are applied, in order */
	cr_assert_eq(rh_append_batch(&h, sid, 5, plain, NULL), EF_S_OK);
	cr_assert(rh_wait_fold(&h, "strict", 55, 10000));
	cr_assert_eq(rh_fold(&h, "strict", &f), EF_S_OK);
	cr_assert(!f.has_error, "strict failed: %s", f.error);
	cr_assert_eq(f.position, 55);
	rh_stop(&h);
}
