/* SPDX-License-Identifier: MIT */
/*
 * writer.h - eventfold-stored's writer thread: group commit of the
 * jobs that dispatch.c and backup.c queue.
 */
#ifndef EF_STORED_WRITER_H
#define EF_STORED_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "ipc.h"
#include "record.h"

struct stored;

/* writer.c: group commit. */
struct append_job {
	int op; /* EF_OP_APPEND or _IMPORT, or EF_OP_ROTATE/BACKUP
	           (no req) */
	/* in: validated request (pointers valid until the reply is sent) */
	const struct ipc_append_req *req;
	uint8_t stream_id[UUID_LEN];
	uint8_t (*ids)[UUID_LEN];
	/* in: the first event type or size error of the request, found
	 * before the writer and reported by it after the replay and
	 * expected-version checks (the contract's order); EF_S_OK if none */
	int late_status;
	char late_msg[256];
	/* out */
	int status;
	bool replay; /* OK without writing: the ids were stored */
	char msg[256];
	struct ipc_append_rep rep;
	struct ipc_conflict conflict;
	struct ipc_rotate_rep rot; /* EF_OP_ROTATE */
	/* EF_OP_IMPORT: whole events (views into the request), and out */
	const struct ef_event *imp;
	uint32_t nimp;
	bool keep_positions;
	struct ipc_import_rep irep;
	/* an IMPORT of an ordered run (ipc.h; run 0: none): committed in
	 * seq order; a job that arrives early waits in the writer (since
	 * held_ms). A job refused before the writer still comes to it,
	 * with its status set, so that the run knows it failed. */
	uint64_t run, seq;
	uint64_t held_ms;
	struct {                  /* EF_OP_BACKUP: the log between batches */
		uint64_t head;    /* positions below are committed */
		uint64_t nsegs;   /* segments then, the hot one last */
		uint64_t hot_end; /* its committed bytes */
	} snap;
	/* called by the writer thread once the job is committed or refused;
	 * the writer touches the job no more after it */
	void (*complete)(struct append_job *job);
	struct append_job *next;
	int caller; /* counts as a caller in qlen (the first of its message) */
};

/* writer.c: group commit; 0 or a negative errno. */
int writer_start(struct stored *sd);
/*
 * Queues job; job->complete runs on the writer thread when it is done.
 * An EF_OP_ROTATE job seals the hot segment after the batch it is taken
 * with (see journal_rotate); its outcome is in job->rot.
 */
void writer_submit(struct stored *sd, struct append_job *job);
/*
 * Queues the n jobs linked from first (by next) together and in order,
 * as one caller: they are taken into the same batch unless it passes
 * its size bound, and the gathering step counts them once.
 */
void writer_submit_list(struct stored *sd, struct append_job *first,
    uint64_t n);
/* Callers in the queue and mono_ms() of the writer's last commit, for
 * the watchdog (stored.c). */
void writer_load(struct stored *sd, uint64_t *waiting, uint64_t *beat_ms);
/* Drains the queue, stops the thread and frees the queue. */
void writer_stop(struct stored *sd);
/* Refuses job: its status and message (printf-style). */
void job_fail(struct append_job *job, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
