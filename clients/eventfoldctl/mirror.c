/* SPDX-License-Identifier: MIT */
/*
 * mirror.c - `eventfoldctl mirror`: eventfold-mirrord's state, read
 * from its Prometheus page (GET /metrics at mirror_metrics): the
 * position mirrored, the lag behind the log, the rate, and the
 * JetStream stream's state as mirrord last saw it.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "hostport.h"

#define PAGE_MAX (1u << 20)

/* GETs http://addr/metrics into a malloc'd NUL-terminated body. */
static char *
fetch(const char *addr, uint64_t timeout_ms, char *why, size_t whylen)
{
	struct addrinfo hints, *ai = NULL, *a;
	struct timeval tv;
	char host[256], port[32], req[400], *buf = NULL, *body;
	size_t len = 0;
	ssize_t n;
	int fd = -1, rc;

	if (hostport_split(addr, host, sizeof(host), port, sizeof(port)) !=
	        0 ||
	    *port == '\0') {
		snprintf(why, whylen,
		    "--mirror-metrics %s: expected HOST:PORT", addr);
		return NULL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(*host ? host : "127.0.0.1", port, &hints,
	         &ai)) != 0) {
		snprintf(why, whylen, "%s: %s", addr, gai_strerror(rc));
		return NULL;
	}
	tv.tv_sec = (time_t)(timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
	for (a = ai; a != NULL; a = a->ai_next) {
		if ((fd = socket(a->ai_family, a->ai_socktype, 0)) < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		rc = errno;
		close(fd);
		fd = -1;
		errno = rc;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(why, whylen,
		    "no eventfold-mirrord answers at "
		    "http://%s/metrics: %s (set --mirror-metrics)",
		    addr, strerror(errno));
		return NULL;
	}
	snprintf(req, sizeof(req), "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n",
	    addr);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		goto ioerr;
	if ((buf = malloc(PAGE_MAX + 1)) == NULL)
		goto ioerr;
	while (len < PAGE_MAX && (n = read(fd, buf + len, PAGE_MAX - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	if (strncmp(buf, "HTTP/1.", 7) != 0 ||
	    strncmp(buf + 8, " 200", 4) != 0 ||
	    (body = strstr(buf, "\r\n\r\n")) == NULL) {
		snprintf(why, whylen,
		    "http://%s/metrics: not eventfold-mirrord's "
		    "metrics page (%.40s)",
		    addr, buf);
		free(buf);
		return NULL;
	}
	memmove(buf, body + 4, strlen(body + 4) + 1);
	if (strstr(buf, "eventfold_mirror_position ") == NULL) {
		snprintf(why, whylen,
		    "http://%s/metrics is not "
		    "eventfold-mirrord's (no eventfold_mirror_position): "
		    "another daemon's metrics address?",
		    addr);
		free(buf);
		return NULL;
	}
	return buf;
ioerr:
	snprintf(why, whylen, "http://%s/metrics: %s", addr, strerror(errno));
	close(fd);
	free(buf);
	return NULL;
}

/* The value of metric name (no labels); -1 if absent. */
static int64_t
metric(const char *page, const char *name)
{
	size_t n = strlen(name);
	const char *p = page;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == page || p[-1] == '\n') && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
		p += n;
	}
	return -1;
}

/* The value of label key of eventfold_mirror_info, into out. */
static void
info_label(const char *page, const char *key, char *out, size_t outlen)
{
	const char *p = strstr(page, "\neventfold_mirror_info{"), *e;
	char pat[64];

	*out = '\0';
	if (p == NULL)
		return;
	snprintf(pat, sizeof(pat), "%s=\"", key);
	if ((p = strstr(p, pat)) == NULL ||
	    (e = strchr(p + strlen(pat), '"')) == NULL)
		return;
	p += strlen(pat);
	snprintf(out, outlen, "%.*s", (int)(e - p), p);
}

static const struct {
	const char *key;
	const char *metric;
} fields[] = {
	{ "position", "eventfold_mirror_position" },
	{ "head", "eventfold_mirror_store_head" },
	{ "lag", "eventfold_mirror_lag_events" },
	{ "rate", "eventfold_mirror_rate_events" },
	{ "inflight", "eventfold_mirror_inflight" },
	{ "errors", "eventfold_mirror_errors_total" },
	{ "resyncs", "eventfold_mirror_resyncs_total" },
	{ "duplicates", "eventfold_mirror_duplicates_total" },
	{ "nats_up", "eventfold_mirror_nats_up" },
	{ "store_up", "eventfold_mirror_store_up" },
	{ "stale", "eventfold_mirror_stale" },
	{ "stream_messages", "eventfold_mirror_stream_messages" },
	{ "stream_bytes", "eventfold_mirror_stream_bytes" },
	{ "stream_first_seq", "eventfold_mirror_stream_first_seq" },
	{ "stream_last_seq", "eventfold_mirror_stream_last_seq" },
	{ "stream_replicas", "eventfold_mirror_stream_replicas" },
	{ "stream_consumers", "eventfold_mirror_stream_consumers" },
};
static const char *labels[] = { "stream", "subjects", "cluster", "leader",
	"nats", "error" };
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
#define NLABELS (sizeof(labels) / sizeof(labels[0]))

static int
cmd_mirror(struct ctl *c, int argc, char **argv)
{
	char why[600], lab[NLABELS][256], *page, *s;
	int64_t v[NFIELDS];
	json_t *j;
	size_t i;

	if (argc != 1)
		return ctl_usage("mirror");
	if ((page = fetch(c->conf.mirror_metrics, c->conf.timeout_ms, why,
	         sizeof(why))) == NULL)
		return ctl_err(CTL_UNAVAILABLE, "%s", why);
	for (i = 0; i < NFIELDS; i++)
		v[i] = metric(page, fields[i].metric);
	for (i = 0; i < NLABELS; i++)
		info_label(page, labels[i], lab[i], sizeof(lab[i]));
	free(page);
	if (c->json) {
		j = json_object();
		for (i = 0; i < NFIELDS; i++)
			if (v[i] >= 0)
				json_object_set_new(j, fields[i].key,
				    json_integer(v[i]));
		for (i = 0; i < NLABELS; i++)
			json_object_set_new(j, labels[i], json_string(lab[i]));
		if ((s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER)) !=
		    NULL)
			printf("%s\n", s);
		free(s);
		json_decref(j);
		return CTL_OK;
	}
	printf("mirrored position  %" PRId64 " of %" PRId64 " in the log\n",
	    v[0], v[1]);
	printf("lag                %" PRId64 " events\n", v[2]);
	printf("rate               %" PRId64 " events/s\n", v[3]);
	printf("in flight          %" PRId64 "\n", v[4]);
	printf("nats               %s  %s\n", v[8] == 1 ? "up" : "DOWN",
	    lab[4]);
	printf("store              %s\n", v[9] == 1 ? "up" : "DOWN");
	printf("stream             %s  subjects %s", lab[0], lab[1]);
	if (v[15] >= 0)
		printf("  replicas %" PRId64, v[15]);
	if (*lab[2])
		printf("  cluster %s  leader %s", lab[2],
		    *lab[3] ? lab[3] : "(none)");
	printf("\n");
	if (v[11] >= 0)
		printf("  messages         %" PRId64 "  bytes %" PRId64
		       "  sequences %" PRId64 "..%" PRId64
		       "  consumers %" PRId64 "\n",
		    v[11], v[12], v[13], v[14], v[16]);
	if (*lab[5])
		printf("  JetStream says   %s\n", lab[5]);
	if (v[10] == 1)
		printf("  NOT THIS LOG'S MIRROR: the stream's last message is "
		       "not this log's event; see eventfold-mirrord(8)\n");
	printf("errors             %" PRId64 "  (resyncs %" PRId64
	       ", duplicates acknowledged %" PRId64 ")\n",
	    v[5], v[6], v[7]);
	return CTL_OK;
}

const struct ctl_cmd ctl_mirror_cmds[] = {
	{ "mirror", cmd_mirror,
	    "mirror   (eventfold-mirrord: position "
	    "mirrored into JetStream, lag, rate, the stream's state; from "
	    "its /metrics at --mirror-metrics)" },
	{ NULL, NULL, NULL },
};
