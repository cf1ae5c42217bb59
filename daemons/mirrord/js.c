/* SPDX-License-Identifier: MIT */
/*
 * js.c - JetStream through libnats: the connection (reconnecting for
 * ever), the stream (created when missing), asynchronous publishes with
 * bounded acknowledgements in flight, and the ack handler.
 *
 * Each event is published to PREFIX.<stream id> as its RecordedEvent
 * protobuf (pbevent.h) with headers
 *   Nats-Msg-Id                  the event id (JetStream deduplicates)
 *   Nats-Expected-Last-Sequence  its position: the stream must end at
 *                                sequence position, or refuse it
 *   Eventfold-Position, Eventfold-Stream-Id, Eventfold-Stream-Version,
 *   Eventfold-Type               for routing and filtering
 * so that sequence N is position N - 1, whatever was lost or resent.
 * An ack with another sequence, or any failure, marks md->failed: the
 * follower drains and resumes after the stream's last sequence.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mirrord.h"
#include "pbevent.h"
#include "urllist.h"

/* The mirror this file serves, set by its start (js_check_conf,
 * js_open, follow_start, metrics_start): mirrord.c's. */
static struct mirror *md;

#define HDR_POS     "Eventfold-Position"
#define HDR_SID     "Eventfold-Stream-Id"
#define HDR_VERSION "Eventfold-Stream-Version"
#define HDR_TYPE    "Eventfold-Type"

static uint8_t *pbuf; /* the follower's encoding buffer */
static size_t pbuf_cap;

static void fail_once(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Counts an error; logs only the first of a round (before a resync). */
static void
fail_once(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	__atomic_add_fetch(&md->errors, 1, __ATOMIC_RELAXED);
	if (__atomic_exchange_n(&md->failed, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("%s", msg);
}

static uint64_t
msg_position(natsMsg *m)
{
	const char *v = NULL;

	if (natsMsgHeader_Get(m, HDR_POS, &v) != NATS_OK || v == NULL)
		return UINT64_MAX;
	return strtoull(v, NULL, 10);
}

static void
ack_handler(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *arg)
{
	uint64_t pos = msg_position(m), cur;

	if (pa != NULL && pa->Sequence == pos + 1) {
		cur = __atomic_load_n(&md->acked, __ATOMIC_RELAXED);
		while (cur < pa->Sequence &&
		    !__atomic_compare_exchange_n(&md->acked, &cur,
		        pa->Sequence, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			;
		if (pa->Duplicate)
			__atomic_add_fetch(&md->duplicates, 1,
			    __ATOMIC_RELAXED);
	} else if (pa != NULL) {
		fail_once("position %" PRIu64
		          " was stored at sequence %" PRIu64
		          " of stream %s: another publisher writes to it? "
		          "resyncing",
		    pos, pa->Sequence, md->conf.stream);
	} else if (pae != NULL) {
		fail_once("publish of position %" PRIu64 " failed: %s "
		          "(%s, JetStream error %d); resyncing",
		    pos, pae->ErrText != NULL ? pae->ErrText : "",
		    natsStatus_GetText(pae->Err), (int)pae->ErrCode);
	}
	natsMsg_Destroy(m);
}

static void
on_disconnected(natsConnection *nc, void *arg)
{
	if (!md->stopping)
		log_warnx("NATS: disconnected, reconnecting");
}

static void
on_reconnected(natsConnection *nc, void *arg)
{
	char url[256];

	if (natsConnection_GetConnectedUrl(nc, url, sizeof(url)) != NATS_OK)
		snprintf(url, sizeof(url), "?");
	log_info("NATS: connected to %s", url);
}

/* NATS's status s as a negative errno (translated here, once). */
static int
nats_errno(natsStatus s)
{
	switch (s) {
	case NATS_OK:
		return 0;
	case NATS_NO_MEMORY:
		return -ENOMEM;
	case NATS_TIMEOUT:
		return -ETIMEDOUT;
	case NATS_NOT_FOUND:
		return -ENOENT;
	case NATS_INVALID_ARG:
		return -EINVAL;
	case NATS_NO_SERVER:
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
		return -ENOTCONN;
	default:
		return -EIO;
	}
}

int
js_open(struct mirror *m, char *err, size_t errlen)
{
	natsOptions *o = NULL;
	jsOptions jo;
	natsStatus s;
	char **urls = NULL;
	int n;

	md = m;
	/* libnats 3.4 takes one URL per string: split the list */
	if ((n = urllist_split(md->conf.nats_url, &urls)) <= 0) {
		snprintf(err, errlen, "nats_url \"%s\": no URL",
		    md->conf.nats_url);
		urllist_free(urls);
		return -EINVAL;
	}
	if ((s = natsOptions_Create(&o)) != NATS_OK ||
	    (s = natsOptions_SetServers(o, (const char **)urls, n)) !=
	        NATS_OK ||
	    (s = natsOptions_SetName(o, "eventfold-mirrord")) != NATS_OK ||
	    (s = natsOptions_SetMaxReconnect(o, -1)) != NATS_OK ||
	    (s = natsOptions_SetReconnectWait(o, 250)) != NATS_OK ||
	    (s = natsOptions_SetRetryOnFailedConnect(o, true, on_reconnected,
	         NULL)) != NATS_OK ||
	    (s = natsOptions_SetDisconnectedCB(o, on_disconnected, NULL)) !=
	        NATS_OK ||
	    (s = natsOptions_SetReconnectedCB(o, on_reconnected, NULL)) !=
	        NATS_OK)
		goto fail;
	s = natsConnection_Connect(&md->nc, o);
	if (s == NATS_OK)
		on_reconnected(md->nc, NULL);
	else if (s == NATS_NOT_YET_CONNECTED)
		log_warnx("NATS: no server at %s yet, retrying",
		    md->conf.nats_url);
	else
		goto fail;
	jsOptions_Init(&jo);
	jo.Wait = (int64_t)md->conf.ack_wait_ms;
	jo.PublishAsync.MaxPending = (int64_t)md->conf.max_inflight;
	jo.PublishAsync.AckHandler = ack_handler;
	jo.PublishAsync.StallWait = 100;
	if ((s = natsConnection_JetStream(&md->js, md->nc, &jo)) != NATS_OK)
		goto fail;
	natsOptions_Destroy(o);
	urllist_free(urls);
	return 0;
fail:
	snprintf(err, errlen, "NATS %s: %s", md->conf.nats_url,
	    natsStatus_GetText(s));
	natsOptions_Destroy(o);
	urllist_free(urls);
	return nats_errno(s) != 0 ? nats_errno(s) : -EIO;
}

void
js_close(void)
{
	jsCtx_Destroy(md->js);
	md->js = NULL;
	natsConnection_Destroy(md->nc);
	md->nc = NULL;
	free(pbuf);
	pbuf = NULL;
	nats_Close();
}

int
js_connected(void)
{
	return md->nc != NULL &&
	    natsConnection_Status(md->nc) == NATS_CONN_STATUS_CONNECTED;
}

uint64_t
js_inflight(void)
{
	uint64_t p = __atomic_load_n(&md->published, __ATOMIC_RELAXED);
	uint64_t a = __atomic_load_n(&md->acked, __ATOMIC_RELAXED);

	return p > a ? p - a : 0;
}

static int
parse_retention(const char *s, jsRetentionPolicy *p)
{
	if (strcmp(s, "limits") == 0)
		*p = js_LimitsPolicy;
	else if (strcmp(s, "interest") == 0)
		*p = js_InterestPolicy;
	else if (strcmp(s, "workqueue") == 0)
		*p = js_WorkQueuePolicy;
	else
		return -EINVAL;
	return 0;
}

int
js_check_conf(struct mirror *m, char *err, size_t errlen)
{
	jsRetentionPolicy p;
	char **urls = NULL;
	int n;

	md = m;
	n = urllist_split(md->conf.nats_url, &urls);
	urllist_free(urls);
	if (n <= 0) {
		snprintf(err, errlen,
		    "nats_url \"%s\": no URL (nats://HOST:"
		    "PORT, comma-separated)",
		    md->conf.nats_url);
		return -EINVAL;
	}
	if (parse_retention(md->conf.retention, &p) != 0) {
		snprintf(err, errlen,
		    "retention %s: not limits, interest or "
		    "workqueue",
		    md->conf.retention);
		return -EINVAL;
	}
	if (md->conf.replicas < 1 || md->conf.replicas > 5) {
		snprintf(err, errlen,
		    "replicas %" PRIu64 ": JetStream takes "
		    "1 to 5",
		    md->conf.replicas);
		return -EINVAL;
	}
	if (*md->conf.subject_prefix == '\0' ||
	    strpbrk(md->conf.subject_prefix, " \t*>\"\\") != NULL ||
	    md->conf.subject_prefix[strlen(md->conf.subject_prefix) - 1] ==
	        '.') {
		snprintf(err, errlen,
		    "subject_prefix \"%s\": a subject "
		    "without spaces, wildcards, quotes or a trailing dot",
		    md->conf.subject_prefix);
		return -EINVAL;
	}
	if (*md->conf.stream == '\0' ||
	    strpbrk(md->conf.stream, " \t.*>/\\\"") != NULL) {
		snprintf(err, errlen,
		    "stream \"%s\": a JetStream stream name "
		    "has no spaces, dots, wildcards, slashes or quotes",
		    md->conf.stream);
		return -EINVAL;
	}
	return 0;
}

static natsStatus
stream_create(jsStreamInfo **si, jsErrCode *je)
{
	jsStreamConfig cfg;
	char subj[300];
	const char *subjects[1] = { subj };

	snprintf(subj, sizeof(subj), "%s.>", md->conf.subject_prefix);
	jsStreamConfig_Init(&cfg);
	cfg.Name = md->conf.stream;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Replicas = (int64_t)md->conf.replicas;
	parse_retention(md->conf.retention, &cfg.Retention);
	if (md->conf.max_age_s != 0)
		cfg.MaxAge = (int64_t)md->conf.max_age_s * 1000000000;
	if (md->conf.max_bytes != 0)
		cfg.MaxBytes = (int64_t)md->conf.max_bytes;
	cfg.Duplicates = (int64_t)md->conf.dup_window_s * 1000000000;
	return js_AddStream(si, md->js, &cfg, NULL, je);
}

int
js_resume(uint64_t *last_seq, uint8_t id[16], int *has_id, char *err,
    size_t errlen)
{
	jsStreamInfo *si = NULL;
	natsMsg *m = NULL;
	jsErrCode je = 0;
	const char *v = NULL;
	natsStatus s;
	int rc = -EIO;

	*has_id = 0;
	s = js_GetStreamInfo(&si, md->js, md->conf.stream, NULL, &je);
	if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
		je = 0;
		if ((s = stream_create(&si, &je)) != NATS_OK) {
			rc = nats_errno(s);
			snprintf(err, errlen,
			    "cannot create stream %s: %s "
			    "(JetStream error %d)",
			    md->conf.stream, nats_GetLastError(NULL), (int)je);
			goto out;
		}
		log_info("created stream %s (subjects %s.>, %" PRIu64
		         " replicas, retention %s)",
		    md->conf.stream, md->conf.subject_prefix,
		    md->conf.replicas, md->conf.retention);
	} else if (s != NATS_OK) {
		rc = nats_errno(s);
		snprintf(err, errlen, "stream %s: %s (JetStream error %d)",
		    md->conf.stream, natsStatus_GetText(s), (int)je);
		goto out;
	}
	*last_seq = si->State.LastSeq;
	if (*last_seq == 0) {
		rc = 0;
		goto out;
	}
	s = js_GetMsg(&m, md->js, md->conf.stream, *last_seq, NULL, &je);
	if (s == NATS_NOT_FOUND) {
		rc = 0; /* removed (a purge): nothing to check against */
		goto out;
	}
	if (s != NATS_OK) {
		rc = nats_errno(s);
		snprintf(err, errlen, "stream %s, message %" PRIu64 ": %s",
		    md->conf.stream, *last_seq, natsStatus_GetText(s));
		goto out;
	}
	if (natsMsgHeader_Get(m, "Nats-Msg-Id", &v) == NATS_OK && v != NULL &&
	    uuid_parse(v, strlen(v), id) == 0)
		*has_id = 1;
	rc = 0;
out:
	if (rc != 0)
		__atomic_add_fetch(&md->errors, 1, __ATOMIC_RELAXED);
	natsMsg_Destroy(m);
	jsStreamInfo_Destroy(si);
	return rc;
}

/* A header value: no control characters (a type is UTF-8 text). */
static void
header_text(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

int
js_message(const struct ef_event *ev, natsMsg **mp)
{
	struct pbevent pe;
	natsMsg *m = NULL;
	natsStatus s;
	char subj[320], num[24], ver[24];
	size_t sz;

	*mp = NULL;
	sz = pbevent_init(&pe, ev);
	if (sz > pbuf_cap) {
		free(pbuf);
		pbuf_cap = sz + 4096;
		if ((pbuf = malloc(pbuf_cap)) == NULL)
			fatal("malloc");
	}
	pbevent_pack(&pe, pbuf);
	snprintf(subj, sizeof(subj), "%s.%s", md->conf.subject_prefix, pe.sid);
	snprintf(num, sizeof(num), "%" PRIu64, ev->global_position);
	snprintf(ver, sizeof(ver), "%" PRIu64, ev->stream_version);
	header_text(pe.type);
	if ((s = natsMsg_Create(&m, subj, NULL, (const char *)pbuf,
	         (int)sz)) != NATS_OK ||
	    (s = natsMsgHeader_Set(m, "Nats-Msg-Id", pe.eid)) != NATS_OK ||
	    (s = natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", num)) !=
	        NATS_OK ||
	    (s = natsMsgHeader_Set(m, HDR_POS, num)) != NATS_OK ||
	    (s = natsMsgHeader_Set(m, HDR_SID, pe.sid)) != NATS_OK ||
	    (s = natsMsgHeader_Set(m, HDR_VERSION, ver)) != NATS_OK ||
	    (s = natsMsgHeader_Set(m, HDR_TYPE, pe.type)) != NATS_OK) {
		fail_once("publish of position %" PRIu64 ": %s; resyncing",
		    ev->global_position, natsStatus_GetText(s));
		natsMsg_Destroy(m);
		return 1;
	}
	*mp = m;
	return 0;
}

int
js_send(natsMsg *m, uint64_t position)
{
	jsPubOptions po;
	natsStatus s;

	jsPubOptions_Init(&po);
	po.MaxWait = (int64_t)md->conf.ack_wait_ms;
	for (;;) {
		if (__atomic_load_n(&md->failed, __ATOMIC_ACQUIRE) ||
		    md->stopping) {
			natsMsg_Destroy(m);
			return 1;
		}
		s = js_PublishMsgAsync(md->js, &m, &po);
		if (s == NATS_OK)
			break;
		if (s != NATS_TIMEOUT) /* NATS_TIMEOUT: max_inflight reached */
			goto fail;
	}
	__atomic_store_n(&md->published, position + 1, __ATOMIC_RELEASE);
	return 0;
fail:
	fail_once("publish of position %" PRIu64 ": %s; resyncing", position,
	    natsStatus_GetText(s));
	natsMsg_Destroy(m);
	return 1;
}

void
js_drain(void)
{
	jsPubOptions po;
	natsMsgList l;

	jsPubOptions_Init(&po);
	po.MaxWait = (int64_t)md->conf.ack_wait_ms;
	if (js_PublishAsyncComplete(md->js, &po) == NATS_OK)
		return;
	/* what is left may still land: Nats-Expected-Last-Sequence keeps
	 * it from landing out of place */
	if (js_PublishAsyncGetPendingList(&l, md->js) == NATS_OK)
		natsMsgList_Destroy(&l);
}

void
js_refresh(void)
{
	struct stream_state ss;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s;
	size_t off = 0;
	int i;

	memset(&ss, 0, sizeof(ss));
	s = js_GetStreamInfo(&si, md->js, md->conf.stream, NULL, &je);
	if (s != NATS_OK) {
		snprintf(ss.error, sizeof(ss.error), "%s%s",
		    natsStatus_GetText(s),
		    je == JSStreamNotFoundErr ? " (no such stream yet)" : "");
		goto out;
	}
	ss.known = 1;
	ss.msgs = si->State.Msgs;
	ss.bytes = si->State.Bytes;
	ss.first_seq = si->State.FirstSeq;
	ss.last_seq = si->State.LastSeq;
	ss.consumers = (uint64_t)si->State.Consumers;
	if (si->Config != NULL) {
		ss.replicas = (uint64_t)si->Config->Replicas;
		for (i = 0;
		     i < si->Config->SubjectsLen && off < sizeof(ss.subjects);
		     i++)
			off += (size_t)snprintf(ss.subjects + off,
			    sizeof(ss.subjects) - off, "%s%s", i ? "," : "",
			    si->Config->Subjects[i]);
	}
	if (si->Cluster != NULL) {
		snprintf(ss.leader, sizeof(ss.leader), "%s",
		    si->Cluster->Leader ? si->Cluster->Leader : "");
		snprintf(ss.cluster, sizeof(ss.cluster), "%s",
		    si->Cluster->Name ? si->Cluster->Name : "");
	}
out:
	jsStreamInfo_Destroy(si);
	pthread_mutex_lock(&md->mu);
	if (!ss.known && md->ss.known) {
		/* keep the last figures, say they are old */
		snprintf(md->ss.error, sizeof(md->ss.error), "%s", ss.error);
	} else
		md->ss = ss;
	pthread_mutex_unlock(&md->mu);
}
