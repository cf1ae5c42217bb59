/* SPDX-License-Identifier: MIT */
/*
 * test_export.c - `eventfoldctl export` against a real eventfold-stored:
 * every line is one JSON object with the fields of its event, and the
 * metadata and payload bytes rebuilt from a line (JSON, JSON plus
 * *_text, or *_base64) are exactly the stored bytes, for compact JSON,
 * JSON with spaces, the text null, numbers written oddly, non-ASCII
 * text, binary and empty bytes; --from/--to/--stream bound it; --zstd
 * decompresses to the same lines; -o leaves no .partial behind; and an
 * export under append load is a consistent snapshot (positions 0..N-1,
 * each equal to the event read back).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "harness.h"

TestSuite(export, .fini = h_cleanup, .timeout = 300);

/* The bytes a line holds under key (the rule of export.c); malloc'd. */
static uint8_t *
line_bytes(json_t *o, const char *key, size_t *len)
{
	char k[64];
	json_t *v;
	uint8_t *b;

	snprintf(k, sizeof(k), "%s_text", key);
	if ((v = json_object_get(o, k)) != NULL) {
		cr_assert(json_is_string(v));
		cr_assert_not_null(json_object_get(o, key), "%s without %s", k,
		    key);
		*len = json_string_length(v);
		b = malloc(*len + 1);
		memcpy(b, json_string_value(v), *len);
		return b;
	}
	snprintf(k, sizeof(k), "%s_base64", key);
	if ((v = json_object_get(o, k)) != NULL) {
		size_t n = json_string_length(v);
		int r;

		cr_assert_null(json_object_get(o, key));
		b = malloc(n + 4);
		r = EVP_DecodeBlock(b,
		    (const unsigned char *)json_string_value(v), (int)n);
		cr_assert_geq(r, 0);
		*len = (size_t)r;
		if (n >= 1 && json_string_value(v)[n - 1] == '=')
			(*len)--;
		if (n >= 2 && json_string_value(v)[n - 2] == '=')
			(*len)--;
		return b;
	}
	v = json_object_get(o, key);
	cr_assert_not_null(v, "no %s in the line", key);
	if (json_is_null(v)) {
		*len = 0;
		return malloc(1);
	}
	b = (uint8_t *)json_dumps(v,
	    JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	*len = strlen((char *)b);
	return b;
}

/* Checks the lines of out against events evs[0..n-1]. */
static void
check_lines(const char *out, const struct h_event *evs, size_t n)
{
	char sid[UUID_STR_LEN], eid[UUID_STR_LEN];
	const char *p = out, *nl;
	json_error_t je;
	size_t i = 0, len;
	uint8_t *b;
	json_t *o;

	for (; *p != '\0'; p = nl + 1, i++) {
		nl = strchr(p, '\n');
		cr_assert_not_null(nl, "the last line has no newline");
		cr_assert_lt(i, n, "more lines than events");
		o = json_loadb(p, (size_t)(nl - p), 0, &je);
		cr_assert_not_null(o, "line %zu: %s", i + 1, je.text);
		cr_assert_eq(json_integer_value(
		                 json_object_get(o, "global_position")),
		    (json_int_t)evs[i].pos);
		uuid_format(evs[i].stream_id, sid);
		uuid_format(evs[i].event_id, eid);
		cr_assert_str_eq(json_string_value(
		                     json_object_get(o, "stream_id")),
		    sid);
		cr_assert_str_eq(json_string_value(
		                     json_object_get(o, "event_id")),
		    eid);
		cr_assert_eq(json_integer_value(
		                 json_object_get(o, "stream_version")),
		    (json_int_t)evs[i].version);
		cr_assert_eq(json_integer_value(
		                 json_object_get(o, "recorded_at")),
		    (json_int_t)evs[i].recorded_at);
		cr_assert_str_eq(json_string_value(
		                     json_object_get(o, "event_type")),
		    evs[i].type);
		b = line_bytes(o, "payload", &len);
		cr_assert_eq(len, evs[i].payload_len,
		    "line %zu: payload of "
		    "%zu bytes, stored %u",
		    i + 1, len, evs[i].payload_len);
		cr_assert_eq(memcmp(b, evs[i].payload, len), 0,
		    "line %zu: payload differs", i + 1);
		free(b);
		b = line_bytes(o, "metadata", &len);
		cr_assert_eq(len, evs[i].md_len, "line %zu: metadata", i + 1);
		cr_assert_eq(memcmp(b, evs[i].md, len), 0);
		free(b);
		json_decref(o);
	}
	cr_assert_eq(i, n, "%zu lines for %zu events", i, n);
}

static void
append_raw(struct ef_client *c, const char *stream, const char *type,
    const void *md, size_t mdlen, const void *pl, size_t pllen)
{
	struct ipc_proposed ev;
	struct h_result res;
	char id[UUID_STR_LEN];

	memset(&ev, 0, sizeof(ev));
	h_uuid(id);
	ev.event_id.ptr = id;
	ev.event_id.len = 36;
	ev.type.ptr = type;
	ev.type.len = (uint32_t)strlen(type);
	ev.metadata = md;
	ev.metadata_len = (uint32_t)mdlen;
	ev.payload = pl;
	ev.payload_len = (uint32_t)pllen;
	cr_assert_eq(h_append(c, stream, EF_EXPECT_ANY, 0, &ev, 1, &res),
	    EF_S_OK, "%s", res.msg);
}

/* Events whose bytes take every form of the rule. */
static void
append_variety(struct ef_client *c, const char *s1, const char *s2)
{
	static const char *payloads[] = { "{\"hello\":\"world\"}",
		"{\"a\": 1, \"b\": [1, 2]}", "null", "1.50", "-0",
		"\"caf\xc3\xa9\"",
		"{\"k\":\"with \\\"quotes\\\" and \\\\ \\n\"}", "[]", "true",
		"{\"a\":1,\"a\":2}", "not json",
		"{\"n\":12345678901234567890}", "\"tab\there\"", NULL };
	static const uint8_t bin[] = { 0, 1, 2, 0xff, 0xfe, '{' };
	int i;

	for (i = 0; payloads[i] != NULL; i++)
		append_raw(c, i % 2 ? s1 : s2,
		    i % 3 ? "Type" : "We\"ird\ttype",
		    i % 4 == 1     ? "{\"actor\":\"alice\"}" :
		        i % 4 == 2 ? "null" :
		        i % 4 == 3 ? "\x01\x02" :
		                     "",
		    i % 4 == 1     ? 17 :
		        i % 4 == 2 ? 4 :
		        i % 4 == 3 ? 2 :
		                     0,
		    payloads[i], strlen(payloads[i]));
	append_raw(c, s1, "Binary", NULL, 0, bin, sizeof(bin));
	append_raw(c, s2, "Empty", NULL, 0, NULL, 0);
}

Test(export, every_form_of_bytes_is_exact)
{
	struct h_stored sd;
	struct ef_client cl;
	struct h_event *evs = NULL;
	char s1[UUID_STR_LEN], s2[UUID_STR_LEN], *out = NULL, *err = NULL;
	size_t n = 0;
	int rc;

	h_start_fresh(&sd, &cl, NULL, 10000);
	append_variety(&cl, h_uuid(s1), h_uuid(s2));
	cr_assert_eq(h_read_all(&cl, 0, &evs, &n), EF_S_OK);
	cr_assert_eq(n, 15);

	rc = h_ctl_at(&sd, (const char *const[]){ "export", NULL }, &out,
	    &err);
	cr_assert_eq(rc, 0, "export: %d %s", rc, err);
	check_lines(out, evs, n);
	cr_assert(strstr(err, "exported 15 events") != NULL, "%s", err);
	/* the plain forms carry no _text */
	cr_assert(strstr(out, "\"payload\":{\"hello\":\"world\"}}\n") != NULL);
	free(out);
	free(err);

	/* bounds: positions 3 .. 9 */
	rc = h_ctl_at(&sd,
	    (const char *const[]){ "export", "--from", "3", "--to", "10",
	        "--quiet", NULL },
	    &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	check_lines(out, evs + 3, 7);
	cr_assert_str_eq(err, "");
	free(out);
	free(err);

	/* one stream, within bounds */
	rc = h_ctl_at(&sd,
	    (const char *const[]){ "export", "--stream", s1, "--from", "2",
	        "--quiet", NULL },
	    &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	{
		struct h_event sub[15];
		size_t k, m = 0;

		for (k = 2; k < n; k++) {
			char id[UUID_STR_LEN];

			if (!strcmp(uuid_format(evs[k].stream_id, id), s1))
				sub[m++] = evs[k];
		}
		check_lines(out, sub, m);
	}
	free(out);
	free(err);
	h_events_free(evs, n);
	client_close(&cl);
}

/* A FIFO or a device is written as it is, never renamed over (a
 * rename over /dev/null made it a regular file): an export of sd into a
 * FIFO gives p (plen bytes) there. */
static void
export_into_a_fifo(const struct h_stored *sd, const char *p, size_t plen)
{
	char fifo[sizeof(sd->dir) + 8], *got, *out = NULL, *err = NULL;
	struct stat sb;
	ssize_t k;
	int fd, rc;

	snprintf(fifo, sizeof(fifo), "%s/fifo", sd->dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	/* opened for reading first: the export's open does not wait,
	 * and its bytes fit the pipe */
	fd = open(fifo, O_RDONLY | O_NONBLOCK);
	cr_assert_geq(fd, 0);
	cr_assert_lt(plen, 65536);
	rc = h_ctl_at(sd,
	    (const char *const[]){ "export", "-o", fifo, "--quiet", NULL },
	    &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	free(out);
	free(err);
	got = malloc(plen + 1);
	k = read(fd, got, plen + 1);
	cr_assert_eq(k, (ssize_t)plen);
	cr_assert_eq(memcmp(got, p, plen), 0);
	free(got);
	close(fd);
	cr_assert_eq(stat(fifo, &sb), 0);
	cr_assert(S_ISFIFO(sb.st_mode), "the FIFO was replaced");
	/* (not tried on /dev/null itself: a regression would break
	 * the machine's /dev/null for everyone, as it did once) */
}

Test(export, zstd_and_output_file)
{
	struct h_stored sd;
	struct ef_client cl;
	char s1[UUID_STR_LEN], s2[UUID_STR_LEN], path[H_PATH + 32];
	char plain[H_PATH + 32], partial[H_PATH + 64];
	char *out = NULL, *err = NULL, *z, *p;
	size_t zlen, plen;
	unsigned long long dlen;
	struct stat sb;
	void *d;
	int rc;

	h_start_fresh(&sd, &cl, NULL, 10000);
	append_variety(&cl, h_uuid(s1), h_uuid(s2));
	snprintf(path, sizeof(path), "%s/x.jsonl.zst", sd.dir);
	snprintf(plain, sizeof(plain), "%s/x.jsonl", sd.dir);
	rc = h_ctl_at(&sd,
	    (const char *const[]){ "export", "--zstd", "-o", path, NULL },
	    &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_str_eq(out, "");
	free(out);
	free(err);
	rc = h_ctl_at(&sd,
	    (const char *const[]){ "export", "-o", plain, "--quiet", NULL },
	    &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	free(out);
	free(err);
	snprintf(partial, sizeof(partial), "%s.partial", path);
	cr_assert_neq(stat(partial, &sb), 0, "%s left behind", partial);
	z = h_read_file(path, &zlen);
	p = h_read_file(plain, &plen);
	cr_assert(z != NULL && p != NULL);
	dlen = ZSTD_getFrameContentSize(z, zlen);
	d = malloc(plen + 1);
	cr_assert_eq(ZSTD_decompress(d, plen + 1, z, zlen), plen,
	    "the zstd export is not the plain one (content size %llu)", dlen);
	cr_assert_eq(memcmp(d, p, plen), 0);
	free(d);
	free(z);

	export_into_a_fifo(&sd, p, plen);
	free(p);

	/* bad arguments are refused before anything is written */
	rc = h_ctl_at(&sd,
	    (const char *const[]){ "export", "--stream", "nope", NULL }, &out,
	    &err);
	cr_assert_eq(rc, 1);
	cr_assert(strstr(err, "malformed stream id") != NULL, "%s", err);
	free(out);
	free(err);
	rc = h_ctl_at(&sd,
	    (const char *const[]){ "export", "--to", "x", NULL }, &out, &err);
	cr_assert_eq(rc, 1);
	free(out);
	free(err);
	client_close(&cl);
}

/*
 * Runs eventfoldctl on a pseudo-terminal (stdout and stderr both), as
 * an operator at a shell would; returns what the terminal got
 * (malloc'd) and the exit code in *code.
 */
static char *
ctl_on_tty(const struct h_stored *sd, const char *const *args, int *code)
{
	const char *argv[24], *bin = getenv("EF_CTL");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t r;
	pid_t pid;
	int fd, n = 0, st;

	cr_assert(bin != NULL, "EF_CTL is not set");
	argv[n++] = bin;
	argv[n++] = "--runtime-dir";
	argv[n++] = sd->run_dir;
	argv[n++] = "--data-dir";
	argv[n++] = sd->data_dir;
	while (*args != NULL && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = forkpty(&fd, NULL, NULL, NULL);
	cr_assert(pid >= 0, "forkpty: %s", strerror(errno));
	if (pid == 0) {
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = (len + 4096 + 1) * 2;
			cr_assert((buf = realloc(buf, cap)) != NULL);
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r <= 0)
			break; /* EIO once the child has gone */
		len += (size_t)r;
	}
	buf[len] = '\0';
	close(fd);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	*code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return buf;
}

/*
 * eventfoldctl args on sd with a terminal exits 0 and shows its progress
 * (progress and " events/s"), or none if progress is NULL (--quiet); and
 * what it prints holds also (when not NULL).
 */
static void
on_tty(const struct h_stored *sd, const char *const *args,
    const char *progress, const char *also)
{
	int rc;
	char *t = ctl_on_tty(sd, args, &rc);

	cr_assert_eq(rc, 0, "%s", t);
	if (progress != NULL)
		cr_assert(strstr(t, progress) != NULL &&
		        strstr(t, " events/s") != NULL,
		    "no progress from %s on a terminal: %s", args[0], t);
	else
		cr_assert(strstr(t, "events/s") == NULL, "%s --quiet: %s",
		    args[0], t);
	if (also != NULL)
		cr_assert(strstr(t, also) != NULL, "%s", t);
	free(t);
}

/*
 * On a terminal, export, import, verify and backup show their progress
 * (events, bytes, rate) on stderr; --quiet silences it, and what the verb
 * prints on stdout is unchanged.
 */
Test(export, progress_on_a_terminal_and_quiet)
{
	struct h_stored sd, sd2;
	struct ef_client cl;
	char s1[UUID_STR_LEN], s2[UUID_STR_LEN], path[H_PATH + 32];
	char bk[H_PATH + 32];

	h_start_fresh(&sd, &cl, NULL, 10000);
	append_variety(&cl, h_uuid(s1), h_uuid(s2));
	snprintf(path, sizeof(path), "%s/x.jsonl", sd.dir);

	on_tty(&sd, (const char *const[]){ "export", "-o", path, NULL },
	    "export: ", NULL);
	on_tty(&sd,
	    (const char *const[]){ "export", "-o", path, "--quiet", NULL },
	    NULL, NULL);

	on_tty(&sd, (const char *const[]){ "verify", NULL },
	    "verify: ", ": OK: ");
	on_tty(&sd, (const char *const[]){ "verify", "--quiet", NULL }, NULL,
	    ": OK: ");

	snprintf(bk, sizeof(bk), "%s/bk1", sd.dir);
	on_tty(&sd, (const char *const[]){ "backup", bk, NULL },
	    "backup: 15 events, ", ": consistent at position 15 ");
	snprintf(bk, sizeof(bk), "%s/bk2", sd.dir);
	on_tty(&sd, (const char *const[]){ "backup", bk, "--quiet", NULL },
	    NULL, ": consistent at position 15 ");

	h_stored_init(&sd2, h_tmpdir(), NULL);
	h_stored_start(&sd2);
	on_tty(&sd2, (const char *const[]){ "import", path, NULL },
	    "import: ", NULL);
	client_close(&cl);
}

/* Under append load: a snapshot, positions 0..N-1, no gap, no torn line. */
Test(export, consistent_under_load)
{
	const char *const extra[] = { "--segment-size", "64K", NULL };
	struct h_stored sd;
	struct ef_client cl;
	struct h_load load;
	struct h_event *evs = NULL;
	char path[H_PATH + 32], *out = NULL, *err = NULL, *f, *p;
	size_t n = 0, len, lines = 0;
	uint64_t head0;
	int rc;

	h_start_fresh(&sd, &cl, extra, 10000);
	h_load_running(&load, &sd, 4, 100, 5000, 60000);
	head0 = h_head(&cl);
	snprintf(path, sizeof(path), "%s/load.jsonl", sd.dir);
	rc = h_ctl_at(&sd, (const char *const[]){ "export", "-o", path, NULL },
	    &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	free(out);
	free(err);
	h_load_stop(&load);
	h_load_verify(&load, &cl);
	f = h_read_file(path, &len);
	cr_assert_not_null(f);
	for (p = f; *p; p++)
		lines += *p == '\n';
	cr_assert_geq(lines, head0,
	    "the export stopped before the head it "
	    "started at");
	cr_assert_eq(h_read_all(&cl, 0, &evs, &n), EF_S_OK);
	cr_assert_geq(n, lines);
	check_lines(f, evs, lines);
	h_events_free(evs, n);
	free(f);
	h_load_free(&load);
	client_close(&cl);
}
