/* SPDX-License-Identifier: MIT */
/*
 * caller.c - a long-lived synchronous client for the restart tests: one
 * struct ef_client (libcommon's), calling one daemon in a loop until
 * stdin closes, one line per call on stdout:
 *
 *     START_MS DURATION_MS STATUS
 *
 * START_MS is CLOCK_MONOTONIC milliseconds (the tests compare them with
 * time.monotonic()). Ops: "status" (STATUS to stored), "append" (one
 * event to stored), "runner" (RUNNER_STATUS to runnerd).
 *
 *     ef-caller URL OP TIMEOUT_MS [PAUSE_MS]
 *
 * With EF_NNG_TRACE set, stderr has libcommon's trace of every round
 * trip, pipe and re-dial (guard.h) and a line per call, to show what a
 * client that goes without a success is doing.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "ipc_runner.h"
#include "log.h"
#include "uuid.h"

static int
call_once(struct ef_client *c, const char *op)
{
	struct client_reply rep;
	struct ipc_status_rep st;
	struct ipc_out o;
	int s;

	if (strcmp(op, "status") == 0) {
		s = client_status(c, &rep, &st);
	} else if (strcmp(op, "append") == 0) {
		struct ipc_append_req r;
		struct ipc_proposed ev;
		uint8_t sid[UUID_LEN], eid[UUID_LEN];
		char ssid[UUID_STR_LEN], seid[UUID_STR_LEN];

		uuid_random(sid);
		uuid_random(eid);
		uuid_format(sid, ssid);
		uuid_format(eid, seid);
		memset(&r, 0, sizeof(r));
		memset(&ev, 0, sizeof(ev));
		ev.event_id.ptr = seid;
		ev.event_id.len = (uint32_t)strlen(seid);
		ev.type.ptr = "Called";
		ev.type.len = 6;
		ev.payload = (const uint8_t *)"{}";
		ev.payload_len = 2;
		r.stream_id.ptr = ssid;
		r.stream_id.len = (uint32_t)strlen(ssid);
		r.kind = EF_EXPECT_ANY;
		r.nevents = 1;
		r.events = &ev;
		s = client_append(c, &r, &rep);
	} else {
		ipc_out_init(&o);
		ipc_request_begin(&o, EF_OP_RUNNER_STATUS,
		    client_request_id(c));
		ipc_nil(&o);
		s = client_call(c, &o, &rep);
		ipc_out_free(&o);
	}
	client_reply_free(&rep);
	return s;
}

int
main(int argc, char **argv)
{
	struct ef_client c;
	struct pollfd pfd = { 0, POLLIN, 0 };
	uint64_t t0;
	int s, pause_ms;

	if (argc < 4) {
		fprintf(stderr,
		    "usage: ef-caller URL status|append|runner "
		    "TIMEOUT_MS [PAUSE_MS]\n");
		return 1;
	}
	pause_ms = argc > 4 ? atoi(argv[4]) : 5;
	log_init("ef-caller", getenv("EF_CALLER_DEBUG") != NULL);
	if (client_open(&c, argv[1], atoi(argv[3])) != 0) {
		fprintf(stderr, "ef-caller: cannot open %s\n", argv[1]);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		/* stdin closed or readable: stop */
		if (poll(&pfd, 1, pause_ms) != 0)
			break;
		t0 = guard_now_ms();
		s = call_once(&c, argv[2]);
		printf("%llu %llu %s\n", (unsigned long long)t0,
		    (unsigned long long)(guard_now_ms() - t0),
		    ipc_status_name(s));
		guard_trace("call started at %llu: %s after %llu ms",
		    (unsigned long long)t0, ipc_status_name(s),
		    (unsigned long long)(guard_now_ms() - t0));
	}
	client_close(&c);
	nngx_fini();
	return 0;
}
