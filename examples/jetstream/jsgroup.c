/* SPDX-License-Identifier: MIT */
/*
 * jsgroup.c - eventfold-jsgroup: reading eventfold's log from the
 * JetStream stream eventfold-mirrord fills, with libnats and the
 * RecordedEvent protobuf (proto/eventfold.proto, protobuf-c).
 *
 *   eventfold-jsgroup work NATS_URL STREAM GROUP NAME [options]
 *	(NATS_URL: one server; libnats learns the others of a cluster)
 *	One worker of a consumer group: the durable pull consumer GROUP,
 *	shared by every worker started with the same GROUP. JetStream
 *	gives each event to one worker; an event a worker does not
 *	acknowledge within --ack-wait-ms (it died, it hung) goes to
 *	another. For each event handled, after its acknowledgement:
 *	  handled POSITION NAME DELIVERY TYPE STREAM_ID
 *	Options: --batch N (events per fetch, 16), --ack-wait-ms MS
 *	(5000, when the consumer is created), --hold-after N (test aid:
 *	after N events, fetch one more batch, print "holding POSITION"
 *	for each and never acknowledge them), --idle-exit-ms MS (exit 0
 *	after that long without an event; 0: never). A worker started
 *	before the stream exists waits for it. Once subscribed it prints
 *	"ready NAME GROUP".
 *
 *   eventfold-jsgroup dump NATS_URL STREAM
 *	Every message of the stream in sequence order:
 *	  SEQUENCE POSITION EVENT_ID SUBJECT
 *	(a check that sequence N holds position N - 1, exactly once).
 *	A stream electing its leader (a node just restarted) is waited
 *	for, up to a minute, rather than reported as an error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "eventfold.pb-c.h"

static void
die(const char *what, natsStatus s, jsErrCode je)
{
	fprintf(stderr, "eventfold-jsgroup: %s: %s (JetStream error %d)\n",
	    what, natsStatus_GetText(s), (int)je);
	exit(1);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: eventfold-jsgroup work NATS_URL STREAM GROUP "
	    "NAME [--batch N] [--ack-wait-ms MS]\n"
	    "                         [--hold-after N] [--idle-exit-ms MS]\n"
	    "       eventfold-jsgroup dump NATS_URL STREAM\n");
	exit(2);
}

static void
dial(const char *url, natsConnection **nc, jsCtx **js)
{
	natsOptions *o = NULL;
	natsStatus s;

	if ((s = natsOptions_Create(&o)) != NATS_OK ||
	    (s = natsOptions_SetURL(o, url)) != NATS_OK ||
	    (s = natsOptions_SetMaxReconnect(o, -1)) != NATS_OK ||
	    (s = natsConnection_Connect(nc, o)) != NATS_OK ||
	    (s = natsConnection_JetStream(js, *nc, NULL)) != NATS_OK)
		die(url, s, 0);
	natsOptions_Destroy(o);
}

/*
 * A stream whose leader is being elected (a node was just restarted)
 * answers "temporarily unavailable" or not at all for a few seconds;
 * dump waits that out rather than reporting a stream it cannot read.
 */
static int
transient(natsStatus s, jsErrCode je)
{
	return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS ||
	    je == JSClusterNotAvailErr;
}

#define DUMP_PATIENCE 600 /* tries, 100 ms apart */

static int
dump(const char *url, const char *stream)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	natsMsg *m;
	jsErrCode je = 0;
	natsStatus s;
	const char *pos, *id;
	uint64_t seq;
	int tries = 0;

	dial(url, &nc, &js);
	while ((s = js_GetStreamInfo(&si, js, stream, NULL, &je)) != NATS_OK) {
		if (!transient(s, je) || ++tries == DUMP_PATIENCE)
			die(stream, s, je);
		je = 0;
		usleep(100 * 1000);
	}
	for (seq = si->State.FirstSeq; seq != 0 && seq <= si->State.LastSeq;
	     seq++) {
		m = NULL;
		je = 0;
		s = js_GetMsg(&m, js, stream, seq, NULL, &je);
		if (s != NATS_OK && transient(s, je) &&
		    ++tries < DUMP_PATIENCE) {
			usleep(100 * 1000);
			seq--; /* the same sequence again */
			continue;
		}
		if (s == NATS_NOT_FOUND)
			continue; /* deleted */
		if (s != NATS_OK)
			die("get message", s, je);
		pos = id = "-";
		natsMsgHeader_Get(m, "Eventfold-Position", &pos);
		natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
		printf("%" PRIu64 " %s %s %s\n", seq, pos, id,
		    natsMsg_GetSubject(m));
		natsMsg_Destroy(m);
	}
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* Decodes the event as any consumer would, and reports it. */
static void
handled(natsMsg *m, const char *name, uint64_t delivery)
{
	Eventfold__RecordedEvent *ev;

	ev = eventfold__recorded_event__unpack(NULL,
	    (size_t)natsMsg_GetDataLength(m),
	    (const uint8_t *)natsMsg_GetData(m));
	if (ev == NULL) {
		fprintf(stderr, "eventfold-jsgroup: %s: not a RecordedEvent\n",
		    natsMsg_GetSubject(m));
		return;
	}
	printf("handled %" PRIu64 " %s %" PRIu64 " %s %s\n",
	    ev->global_position, name, delivery, ev->event_type,
	    ev->stream_id);
	fflush(stdout);
	eventfold__recorded_event__free_unpacked(ev, NULL);
}

/*
 * A pull subscription of the consumer group on stream, acknowledged
 * explicitly (ack_wait ms). A worker may start before eventfold-mirrord
 * has made the stream: it waits for it.
 */
static natsSubscription *
subscribe(jsCtx *js, const char *stream, const char *group, int64_t ack_wait)
{
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode je = 0;
	natsStatus s;
	int waited = 0;

	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Config.AckPolicy = js_AckExplicit;
	so.Config.AckWait = ack_wait * 1000000;
	so.Config.DeliverPolicy = js_DeliverAll;
	while ((s = js_PullSubscribe(&sub, js, ">", group, NULL, &so, &je)) !=
	    NATS_OK) {
		if (je != JSStreamNotFoundErr)
			die("pull subscribe", s, je);
		if (!waited)
			fprintf(stderr,
			    "eventfold-jsgroup: no stream %s yet; "
			    "waiting for it\n",
			    stream);
		waited = 1;
		usleep(200000);
	}
	return sub;
}

/* The test's dying worker: says which messages of l it holds, leaves
 * them unacknowledged and waits to be killed. */
static void __attribute__((noreturn))
hold_forever(natsMsgList *l, const char *name)
{
	int i;

	for (i = 0; i < l->Count; i++) {
		const char *p = "-";

		natsMsgHeader_Get(l->Msgs[i], "Eventfold-Position", &p);
		printf("holding %s %s\n", p, name);
	}
	fflush(stdout);
	for (;;)
		pause();
}

/* Acknowledges and handles the messages of l; how many were this
 * worker's (acknowledged first: "handled" is printed once). */
static int64_t
ack_batch(natsMsgList *l, const char *name)
{
	jsMsgMetaData *meta;
	jsErrCode je = 0;
	int64_t count = 0;
	int i;

	for (i = 0; i < l->Count; i++) {
		uint64_t d = 1;

		if (natsMsg_GetMetaData(&meta, l->Msgs[i]) == NATS_OK) {
			d = meta->NumDelivered;
			jsMsgMetaData_Destroy(meta);
		}
		if (natsMsg_AckSync(l->Msgs[i], NULL, &je) != NATS_OK)
			continue; /* redelivered to someone */
		handled(l->Msgs[i], name, d);
		count++;
	}
	return count;
}

static int
work(int argc, char **argv)
{
	const char *url = argv[0], *stream = argv[1], *group = argv[2];
	const char *name = argv[3];
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	natsSubscription *sub;
	natsMsgList l;
	jsErrCode je = 0;
	natsStatus s;
	int64_t batch = 16, ack_wait = 5000, hold = -1, idle_exit = 0;
	int64_t count = 0, idle = 0;
	int i;

	for (i = 4; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--batch") == 0)
			batch = atoll(argv[++i]);
		else if (strcmp(argv[i], "--ack-wait-ms") == 0)
			ack_wait = atoll(argv[++i]);
		else if (strcmp(argv[i], "--hold-after") == 0)
			hold = atoll(argv[++i]);
		else if (strcmp(argv[i], "--idle-exit-ms") == 0)
			idle_exit = atoll(argv[++i]);
		else
			usage();
	}
	if (batch < 1)
		batch = 1;
	dial(url, &nc, &js);
	sub = subscribe(js, stream, group, ack_wait);
	printf("ready %s %s\n", name, group);
	fflush(stdout);
	for (;;) {
		s = natsSubscription_Fetch(&l, sub, (int)batch, 1000, &je);
		if (s == NATS_TIMEOUT) {
			idle += 1000;
			if (idle_exit > 0 && idle >= idle_exit)
				break;
			continue;
		}
		if (s != NATS_OK) {
			fprintf(stderr, "eventfold-jsgroup: fetch: %s\n",
			    natsStatus_GetText(s));
			sleep(1);
			continue;
		}
		idle = 0;
		if (hold >= 0 && count >= hold)
			hold_forever(&l, name);
		count += ack_batch(&l, name);
		natsMsgList_Destroy(&l);
	}
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "dump") == 0)
		return dump(argv[2], argv[3]);
	if (argc >= 6 && strcmp(argv[1], "work") == 0)
		return work(argc - 2, argv + 2);
	usage();
	return 2;
}
