/* SPDX-License-Identifier: MIT */
/*
 * output.c - how eventfoldctl prints events: an aligned table for
 * people, or JSON lines (--json) for scripts, where a payload or
 * metadata that is valid JSON is embedded as JSON and anything else is
 * given base64-encoded under a *_base64 key. JSON via jansson, base64 via
 * OpenSSL's libcrypto.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ctl.h"

static char *
base64(const uint8_t *p, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, p, (int)len);
	return out;
}

/* Adds key (JSON) or key_base64 (anything else) to obj; empty: null. */
static void
json_bytes(json_t *obj, const char *key, const uint8_t *p, size_t len)
{
	char k64[64];
	json_t *v;
	char *b;

	if (len == 0) {
		json_object_set_new(obj, key, json_null());
		return;
	}
	v = json_loadb((const char *)p, len, JSON_DECODE_ANY, NULL);
	if (v != NULL) {
		json_object_set_new(obj, key, v);
		return;
	}
	snprintf(k64, sizeof(k64), "%s_base64", key);
	b = base64(p, len);
	json_object_set_new(obj, k64, json_string(b ? b : ""));
	free(b);
}

static void
fmt_time(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + strlen(buf), len - strlen(buf), ".%03uZ",
	    (unsigned)(ms % 1000));
}

void
out_event_header(const struct ctl *c)
{
	if (c->json)
		return;
	printf("%-9s %-36s %-7s %-24s %-24s %s\n", "POSITION", "STREAM",
	    "VERSION", "TYPE", "RECORDED_AT", "PAYLOAD");
}

void
out_event(const struct ctl *c, const struct ef_event *ev)
{
	char sid[UUID_STR_LEN], eid[UUID_STR_LEN], ts[40];

	uuid_format(ev->stream_id, sid);
	uuid_format(ev->event_id, eid);
	if (c->json) {
		json_t *o = json_object();

		json_object_set_new(o, "global_position",
		    json_integer((json_int_t)ev->global_position));
		json_object_set_new(o, "stream_id", json_string(sid));
		json_object_set_new(o, "stream_version",
		    json_integer((json_int_t)ev->stream_version));
		json_object_set_new(o, "event_id", json_string(eid));
		json_object_set_new(o, "event_type",
		    json_stringn(ev->type, ev->type_len));
		json_object_set_new(o, "recorded_at",
		    json_integer((json_int_t)ev->recorded_at));
		json_bytes(o, "metadata", ev->metadata, ev->metadata_len);
		json_bytes(o, "payload", ev->payload, ev->payload_len);
		json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
		return;
	}
	fmt_time(ev->recorded_at, ts, sizeof(ts));
	printf("%-9" PRIu64 " %s %-7" PRIu64 " %-24.*s %-24s ",
	    ev->global_position, sid, ev->stream_version, (int)ev->type_len,
	    ev->type, ts);
	{
		json_t *v = ev->payload_len ?
		    json_loadb((const char *)ev->payload, ev->payload_len,
		        JSON_DECODE_ANY, NULL) :
		    NULL;

		if (v != NULL) {
			char *s = json_dumps(v,
			    JSON_COMPACT | JSON_ENCODE_ANY |
			        JSON_PRESERVE_ORDER);

			printf("%.80s%s\n", s ? s : "",
			    s && strlen(s) > 80 ? "..." : "");
			free(s);
			json_decref(v);
		} else if (ev->payload_len == 0) {
			printf("-\n");
		} else {
			char *b = base64(ev->payload,
			    ev->payload_len > 60 ? 60 : ev->payload_len);

			printf("base64:%s%s\n", b ? b : "",
			    ev->payload_len > 60 ? "..." : "");
			free(b);
		}
	}
}
