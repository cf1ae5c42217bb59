/* SPDX-License-Identifier: MIT */
/*
 * test_import.c - `eventfoldctl import` into a real eventfold-stored:
 *   - our export: export -> import into an empty store -> export gives
 *     identical bytes (plain and zstd); a re-run imports nothing; into
 *     a store that holds other events they are appended in order with
 *     the offset reported, and a re-run imports nothing either;
 *   - stored killed with SIGKILL in the middle of a large import: after
 *     a restart a re-run completes it and the export is identical to
 *     the source's (nothing lost, nothing twice); the same with the
 *     importer killed with SIGKILL instead;
 *   - EventfoldDB data files (format 3) written here by a generator that
 *     follows ../shared/formats/eventfolddb.md: positions, streams,
 *     versions, ids, recorded_at and bytes preserved; damaged copies (a
 *     torn last batch, a bad batch CRC in the middle, format version 2,
 *     a bad record CRC) give the clear outcome each deserves, with
 *     nothing after the damage written and stored still serving;
 *   - a line of bad JSON in an export: an error naming the line, the
 *     events before it imported, none after;
 *   - an eventfold directory made with the zstd tool: a two-frame
 *     archive, then app.jsonl starting with a run the archive already
 *     ends with (a rotation cut short) and ending with a torn line: every
 *     event once, in order, in one stream (--stream-name: eventfold-es's
 *     id), ids kept when they are UUIDs and derived the same way again
 *     otherwise (a re-run imports nothing), other fields in metadata;
 *   - a file of no known format and an EventfoldDB header of version 7:
 *     refused by file name, nothing written;
 *   - a store on a slow disk (slowsync.c) answering each batch after
 *     --timeout-ms: the import waits and completes.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "uuid5.h"

TestSuite(import, .fini = h_cleanup, .timeout = 600);

static void
start(struct h_stored *s, struct ef_client *c)
{
	h_start_fresh(s, c, NULL, 20000);
}

/* A source store with load from 4 threads plus odd bytes. */
static void
fill(struct h_stored *s, struct ef_client *c, uint64_t events)
{
	struct h_load load;
	struct h_result res;
	char id[UUID_STR_LEN], st[UUID_STR_LEN];

	h_load_running(&load, s, 4, 64, events, 120000);
	h_load_stop(&load);
	h_load_free(&load);
	cr_assert_eq(h_append1(c, h_uuid(st), EF_EXPECT_ANY, 0, h_uuid(id),
	                 "Spaced", "{\"a\": 1,  \"b\" : [ 1.50 ]}", &res),
	    EF_S_OK);
	cr_assert_eq(h_append1(c, st, EF_EXPECT_ANY, 0, h_uuid(id), "Null",
	                 "null", &res),
	    EF_S_OK);
}

/* A started source store a filled with events, exported to
 * a.dir/a.jsonl (the path into pa); the export's bytes (free them). */
static char *
source_export(struct h_stored *a, struct ef_client *ca, uint64_t events,
    char *pa, size_t palen)
{
	start(a, ca);
	fill(a, ca, events);
	snprintf(pa, palen, "%s/a.jsonl", a->dir);
	return h_export_all(a, pa);
}

/* `eventfoldctl import path` on s exits want_rc, and its stderr holds
 * needle; that stderr (free it). */
static char *
import_err(const struct h_stored *s, const char *path, int want_rc,
    const char *needle)
{
	return h_ctl_fails(s, (const char *const[]){ "import", path, NULL },
	    want_rc, needle);
}

/* `eventfoldctl import path` on s succeeds and its stdout holds needle. */
static void
import_says(const struct h_stored *s, const char *path, const char *needle)
{
	char *out = h_ctl_ok(s, (const char *const[]){ "import", path, NULL });

	cr_assert(strstr(out, needle) != NULL, "%s", out);
	free(out);
}

/* The export of s (to s.dir/name) is the string want. */
static void
export_same(const struct h_stored *s, const char *name, const char *want)
{
	char path[H_PATH + 32], *got;

	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	got = h_export_all(s, path);
	cr_assert_str_eq(want, got);
	free(got);
}

/* The export of b (to b.dir/b.jsonl) is byte for byte fa; what says
 * what happened before (with head) if it is not. */
static void
export_is(const struct h_stored *b, const char *fa, const char *what,
    uint64_t head)
{
	char pb[H_PATH + 32], *fb;

	snprintf(pb, sizeof(pb), "%s/b.jsonl", b->dir);
	fb = h_export_all(b, pb);
	cr_assert_eq(strlen(fb), strlen(fa),
	    "%s (head %" PRIu64 "): the store differs from the source", what,
	    head);
	cr_assert_eq(memcmp(fa, fb, strlen(fa)), 0,
	    "%s (head %" PRIu64 "): the store differs from the source", what,
	    head);
	free(fb);
}

/* The events of cm from position 1 are those of ca, each position one
 * further. */
static void
check_shifted_by_one(struct ef_client *ca, struct ef_client *cm)
{
	struct h_event *ea = NULL, *em = NULL;
	size_t na = 0, nm = 0, i;

	cr_assert_eq(h_read_all(ca, 0, &ea, &na), EF_S_OK);
	cr_assert_eq(h_read_all(cm, 1, &em, &nm), EF_S_OK);
	cr_assert_eq(na, nm);
	for (i = 0; i < na; i++) {
		cr_assert_eq(em[i].pos, ea[i].pos + 1);
		h_event_same(&em[i], &ea[i], "event", i);
	}
	h_events_free(ea, na);
	h_events_free(em, nm);
}

Test(import, export_round_trip_and_rerun)
{
	struct h_stored a, b, m;
	struct ef_client ca, cb, cm;
	struct h_result res;
	char pa[H_PATH + 32], pz[H_PATH + 32], pm[H_PATH + 32];
	char id[UUID_STR_LEN], st[UUID_STR_LEN], *fa;
	size_t la, lines = 0;

	fa = source_export(&a, &ca, 3000, pa, sizeof(pa));
	snprintf(pz, sizeof(pz), "%s/a.jsonl.zst", a.dir);
	free(h_ctl_ok(&a,
	    (const char *const[]){ "export", "--quiet", "--zstd", "-o", pz,
	        NULL }));
	la = strlen(fa);
	for (size_t i = 0; i < la; i++)
		lines += fa[i] == '\n';

	/* into an empty store: the same export */
	start(&b, &cb);
	import_says(&b, pa, "positions kept");
	export_is(&b, fa, "export -> import -> export", 0);
	/* again, and from the zstd copy: nothing new */
	import_says(&b, pz, "imported 0 events");
	cr_assert_eq(h_head(&cb), lines);

	/* into a store with other events: appended, offset reported */
	start(&m, &cm);
	cr_assert_eq(h_append1(&cm, h_uuid(st), EF_EXPECT_ANY, 0, h_uuid(id),
	                 "Before", "{}", &res),
	    EF_S_OK);
	import_says(&m, pz, "offset +1");
	import_says(&m, pa, "imported 0 events");
	cr_assert_eq(h_head(&cm), lines + 1);
	snprintf(pm, sizeof(pm), "%s/m.jsonl", m.dir);
	free(h_ctl_ok(&m,
	    (const char *const[]){ "export", "--quiet", "--from", "1", "-o",
	        pm, NULL }));
	/* the same events, each position one further */
	check_shifted_by_one(&ca, &cm);
	free(fa);
	client_close(&ca);
	client_close(&cb);
	client_close(&cm);
}

/* `eventfoldctl import pa` started against b in the background, left
 * running until part of it is committed: its pid (*fd: its stdout). */
static pid_t
import_started(const struct h_stored *b, struct ef_client *cb, const char *pa,
    int *fd)
{
	char errp[H_PATH + 32];
	const char *args[] = { "--runtime-dir", b->run_dir, "import", pa,
		NULL };
	uint64_t head, deadline;
	pid_t pid;

	snprintf(errp, sizeof(errp), "%s/import.err", b->dir);
	pid = h_ctl_spawn(args, fd, errp);
	deadline = h_now_ms() + 60000;
	while (((head = h_head(cb)) == 0 || head == UINT64_MAX) &&
	    h_now_ms() < deadline)
		h_sleep_ms(1);
	cr_assert(head > 0 && head != UINT64_MAX, "the import did not start");
	return pid;
}

/* A re-run of the import of pa into b skips what is there. */
static void
rerun_skips(const struct h_stored *b, const char *pa)
{
	char *out, *err;
	int rc;

	rc = h_ctl_at(b, (const char *const[]){ "import", pa, NULL }, &out,
	    &err);
	cr_assert_eq(rc, 0, "re-run: %s", err);
	cr_assert(strstr(out, "already there, skipped") != NULL, "%s", out);
	free(out);
	free(err);
}

/*
 * A large import into b killed in the middle, then re-run: it skips
 * what is there and the result is the source, nothing lost, nothing
 * twice. kill_stored: stored is killed (the import must stop with an
 * error, stored is restarted); else the importer itself.
 */
static void
import_killed_then_rerun(bool kill_stored)
{
	struct h_stored a, b;
	struct ef_client ca, cb;
	char pa[H_PATH + 32], *fa;
	uint64_t head;
	pid_t pid;
	int fd, st;

	fa = source_export(&a, &ca, 40000, pa, sizeof(pa));
	start(&b, &cb);
	pid = import_started(&b, &cb, pa, &fd);
	if (kill_stored) {
		client_close(&cb);
		cr_assert_neq(h_stored_stop(&b, SIGKILL, 10000), -1);
	} else {
		kill(pid, SIGKILL);
	}
	st = h_wait_pid(pid, 60000);
	close(fd);
	if (kill_stored) {
		cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
		    "the import went on without stored (status 0x%x)", st);
		h_stored_start(&b);
		h_client(&cb, &b, 20000);
	} else {
		cr_assert(st != -1 && WIFSIGNALED(st),
		    "the import ended before the kill (status 0x%x): make "
		    "the source larger",
		    st);
	}
	head = h_head(&cb);
	rerun_skips(&b, pa);
	export_is(&b, fa,
	    kill_stored ? "after kill -9 of stored and a re-run" :
	                  "after kill -9 of the importer and a re-run",
	    head);
	free(fa);
	client_close(&ca);
	client_close(&cb);
}

/* stored killed with SIGKILL once part of the import is committed. */
Test(import, sigkill_mid_import_then_rerun)
{
	import_killed_then_rerun(true);
}

/*
 * The importer itself killed with SIGKILL in the middle (an operator's
 * kill -9, an OOM kill): every IMPORT is committed whole or not at all,
 * so a re-run finds a prefix of whole batches, skips it and completes
 * the rest.
 */
Test(import, importer_killed_mid_import_then_rerun)
{
	import_killed_then_rerun(false);
}

/* ---- EventfoldDB data files, from ../shared/formats/eventfolddb.md ---- */

struct efdb {
	uint8_t *buf;
	size_t len, cap;
	uint64_t pos;         /* next global position */
	uint64_t vers[4];     /* next version of each stream */
	size_t batch_off[64]; /* where each batch starts */
	size_t nbatches;
};

static void
put(struct efdb *f, const void *p, size_t n)
{
	if (f->len + n > f->cap) {
		f->cap = (f->len + n) * 2;
		f->buf = realloc(f->buf, f->cap);
	}
	memcpy(f->buf + f->len, p, n);
	f->len += n;
}

static void
put32(struct efdb *f, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
		(uint8_t)(v >> 24) };

	put(f, b, 4);
}

static void
put64(struct efdb *f, uint64_t v)
{
	put32(f, (uint32_t)v);
	put32(f, (uint32_t)(v >> 32));
}

static void
sid_of(int s, uint8_t out[16])
{
	memset(out, 0, 16);
	out[0] = 0x5e;
	out[15] = (uint8_t)s;
	out[6] = 0x40;
	out[8] = 0x80;
}

static void
eid_of(uint64_t pos, uint8_t out[16])
{
	memset(out, 0xe1, 16);
	memcpy(out, &pos, 8);
	out[6] = 0x40;
	out[8] = 0x80;
}

/* A batch of n events of stream s (EventfoldDB: one stream a batch). */
static void
efdb_batch(struct efdb *f, int s, uint32_t n)
{
	size_t start = f->len, rec;
	uint8_t u[16];
	char type[32], payload[64];
	uint32_t i, t, p;

	f->batch_off[f->nbatches++] = start;
	put(f, "EFBB", 4);
	put32(f, n);
	put64(f, f->pos);
	for (i = 0; i < n; i++) {
		snprintf(type, sizeof(type), "Type%u", i % 3);
		snprintf(payload, sizeof(payload),
		    i % 4 == 3 ? "\x01\x02%" PRIu64 : "{\"n\": %" PRIu64 "}",
		    f->pos);
		t = (uint32_t)strlen(type);
		p = (uint32_t)strlen(payload);
		rec = f->len;
		put32(f, 70 + t + (i % 2 ? 7 : 0) + p);
		put64(f, f->pos);
		put64(f, 1700000000000ull + f->pos);
		sid_of(s, u);
		put(f, u, 16);
		put64(f, f->vers[s]++);
		eid_of(f->pos, u);
		put(f, u, 16);
		put(f, (uint8_t[]){ (uint8_t)t, 0 }, 2);
		put(f, type, t);
		put32(f, i % 2 ? 7 : 0);
		if (i % 2)
			put(f, "{\"m\":1}", 7);
		put32(f, p);
		put(f, payload, p);
		put32(f,
		    (uint32_t)crc32(0L, f->buf + rec + 4,
		        (uInt)(f->len - rec - 4)));
		f->pos++;
	}
	rec = f->len; /* the CRC covers the header and records only */
	put(f, "EFBF", 4);
	put32(f, (uint32_t)crc32(0L, f->buf + start, (uInt)(rec - start)));
}

static struct efdb
efdb_make(void)
{
	struct efdb f;
	int k;

	memset(&f, 0, sizeof(f));
	put(&f, "EFDB", 4);
	put32(&f, 3);
	for (k = 0; k < 40; k++)
		efdb_batch(&f, k % 4, 1 + (uint32_t)(k * 7 % 50));
	return f;
}

/* The store holds exactly the first n events of f, as f says. */
static void
check_efdb(struct ef_client *c, const struct efdb *f, uint64_t n)
{
	struct h_event *e = NULL;
	uint64_t vers[4] = { 0 };
	size_t ne = 0, i;
	uint8_t u[16];

	cr_assert_eq(h_read_all(c, 0, &e, &ne), EF_S_OK);
	cr_assert_eq(ne, n, "%zu events in the store, expected %" PRIu64, ne,
	    n);
	for (i = 0; i < ne; i++) {
		char want[64];
		int s = e[i].stream_id[15];

		cr_assert_eq(e[i].pos, i);
		sid_of(s, u);
		cr_assert_eq(memcmp(e[i].stream_id, u, 16), 0);
		cr_assert_eq(e[i].version, vers[s]++, "position %zu", i);
		eid_of(i, u);
		cr_assert_eq(memcmp(e[i].event_id, u, 16), 0);
		cr_assert_eq(e[i].recorded_at, 1700000000000ull + i);
		cr_assert_eq(strncmp(e[i].type, "Type", 4), 0);
		snprintf(want, sizeof(want),
		    e[i].payload_len > 0 && e[i].payload[0] == 1 ?
		        "\x01\x02%zu" :
		        "{\"n\": %zu}",
		    i);
		cr_assert_eq(e[i].payload_len, strlen(want));
		cr_assert_eq(memcmp(e[i].payload, want, strlen(want)), 0);
	}
	(void)f;
	h_events_free(e, ne);
}

/* Events in the first k batches of f. */
static uint64_t
events_before(const struct efdb *f, size_t k)
{
	const uint8_t *p = f->buf + f->batch_off[k] + 8;
	uint64_t pos;

	memcpy(&pos, p, 8);
	return pos;
}

/* A copy of f with the byte at `at` XORed with mask, written to path. */
static void
write_damaged(const char *path, const struct efdb *f, size_t at, uint8_t mask)
{
	uint8_t *copy = malloc(f->len);

	cr_assert_not_null(copy);
	memcpy(copy, f->buf, f->len);
	copy[at] ^= mask;
	cr_assert_eq(h_write_file(path, copy, f->len), 0);
	free(copy);
}

/* The whole file f into a fresh store: every event; a re-run imports
 * nothing. The export of the result (free it). */
static char *
efdb_whole(const struct efdb *f)
{
	struct h_stored s;
	struct ef_client c;
	char path[H_PATH + 32], *exp;

	start(&s, &c);
	snprintf(path, sizeof(path), "%s/efdb.dat", s.dir);
	cr_assert_eq(h_write_file(path, f->buf, f->len), 0);
	import_says(&s, path, "positions kept");
	check_efdb(&c, f, f->pos);
	/* a re-run imports nothing; an export of it round-trips */
	import_says(&s, path, "imported 0 events");
	snprintf(path, sizeof(path), "%s/e1.jsonl", s.dir);
	exp = h_export_all(&s, path);
	client_close(&c);
	return exp;
}

/* A bad batch CRC in the middle (the footer of batch 20): an error with
 * its offset, the batches before imported. */
static void
efdb_bad_batch_crc(const struct efdb *f)
{
	struct h_stored s;
	struct ef_client c;
	char path[H_PATH + 32], want[64], *err;

	start(&s, &c);
	snprintf(path, sizeof(path), "%s/badcrc.dat", s.dir);
	write_damaged(path, f, f->batch_off[21] - 1, 0x40);
	snprintf(want, sizeof(want), "batch at %zu", f->batch_off[20]);
	err = import_err(&s, path, 5, "batch CRC mismatch");
	cr_assert(strstr(err, want) != NULL, "%s (want %s)", err, want);
	free(err);
	check_efdb(&c, f, events_before(f, 20));
	client_close(&c);
}

Test(import, eventfolddb_file_and_damaged_copies)
{
	struct h_stored s;
	struct ef_client c;
	struct efdb f = efdb_make();
	char path[H_PATH + 32], *exp1;
	uint64_t total = f.pos;

	exp1 = efdb_whole(&f);

	/* torn last batch: skipped with a warning, the rest imported */
	start(&s, &c);
	snprintf(path, sizeof(path), "%s/torn.dat", s.dir);
	cr_assert_eq(h_write_file(path, f.buf, f.batch_off[39] + 30), 0);
	free(import_err(&s, path, 0, "torn last write"));
	check_efdb(&c, &f, events_before(&f, 39));
	client_close(&c);

	efdb_bad_batch_crc(&f);

	/* a bad record CRC (inside the first record of batch 5) */
	start(&s, &c);
	snprintf(path, sizeof(path), "%s/badrec.dat", s.dir);
	write_damaged(path, &f, f.batch_off[5] + 16 + 30, 1);
	free(import_err(&s, path, 5, "record CRC mismatch"));
	check_efdb(&c, &f, events_before(&f, 5));

	/* format version 2: refused, nothing written, stored serves */
	snprintf(path, sizeof(path), "%s/v2.dat", s.dir);
	write_damaged(path, &f, 4, 3 ^ 2); /* version 3 -> 2 */
	free(import_err(&s, path, 3, "format version 2"));
	check_efdb(&c, &f, events_before(&f, 5));

	/* the rest of the good file goes on top of the prefix: no twice */
	snprintf(path, sizeof(path), "%s/efdb.dat", s.dir);
	cr_assert_eq(h_write_file(path, f.buf, f.len), 0);
	free(h_ctl_ok(&s, (const char *const[]){ "import", path, NULL }));
	check_efdb(&c, &f, total);
	export_same(&s, "e2.jsonl", exp1);
	free(exp1);
	client_close(&c);
	free(f.buf);
}

Test(import, bad_json_line)
{
	struct h_stored a, b;
	struct ef_client ca, cb;
	char pa[H_PATH + 32], *fa, *nl, *err;
	size_t len;
	int i;

	fa = source_export(&a, &ca, 100, pa, sizeof(pa));
	/* line 11 made invalid */
	for (nl = fa, i = 0; i < 10; i++)
		nl = strchr(nl, '\n') + 1;
	nl[0] = '#';
	len = strlen(fa);
	cr_assert_eq(h_write_file(pa, fa, len), 0);
	start(&b, &cb);
	err = import_err(&b, pa, 5, "line 11 (byte offset");
	cr_assert(strstr(err, "invalid JSON") != NULL, "%s", err);
	free(err);
	cr_assert_eq(h_head(&cb), 10);
	free(fa);
	client_close(&ca);
	client_close(&cb);
}

static void
write_text(const char *path, const char *text)
{
	cr_assert_eq(h_write_file(path, text, strlen(text)), 0, "%s", path);
}

/* An eventfold directory dir (s.dir/ef, its app.jsonl in app): a
 * two-frame archive of events A..D, as two rotations leave it, then
 * app.jsonl repeating C and D (a rotation cut short), then E and a torn
 * line. */
static void
write_eventfold_dir(const struct h_stored *s, char *dir, size_t dirlen,
    char *app, size_t applen)
{
	char p1[H_PATH + 32], p2[H_PATH + 32], cmd[8 * H_PATH];

	snprintf(dir, dirlen, "%s/ef", s->dir);
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(p1, sizeof(p1), "%s/p1", s->dir);
	snprintf(p2, sizeof(p2), "%s/p2", s->dir);
	write_text(p1,
	    "{\"type\":\"A\",\"data\":{\"n\":1},\"ts\":1000}\n"
	    "{\"type\":\"B\",\"data\":[1, 2],\"ts\":1001,\"id\":"
	    "\"5f0c6a52-7d3e-4b8a-9c1f-0e2d4a6b8c9d\",\"actor\":\"bob\"}\n");
	write_text(p2,
	    "{\"type\":\"C\",\"data\":\"x\",\"ts\":1002,\"id\":"
	    "\"not-a-uuid\",\"meta\":{\"k\":1},\"extra\":true}\n"
	    "{\"type\":\"D\",\"data\":null,\"ts\":1003}\n");
	/* two frames, as two rotations leave them */
	snprintf(cmd, sizeof(cmd),
	    "zstd -q -c %s > %s/archive.jsonl.zst && "
	    "zstd -q -c %s >> %s/archive.jsonl.zst",
	    p1, dir, p2, dir);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	snprintf(app, applen, "%s/app.jsonl", dir);
	write_text(app,
	    "{\"type\":\"C\",\"data\":\"x\",\"ts\":1002,\"id\":"
	    "\"not-a-uuid\",\"meta\":{\"k\":1},\"extra\":true}\n"
	    "{\"type\":\"D\",\"data\":null,\"ts\":1003}\n"
	    "{\"type\":\"E\",\"data\":{},\"ts\":1004}\n{\"type\":\"F\",\"da");
}

/* Stream todo/1 holds A..E, once each, in order: payloads, times, ids
 * kept when they are UUIDs, other fields in metadata. */
static void
check_directory_events(struct ef_client *c)
{
	static const char *types[] = { "A", "B", "C", "D", "E" };
	static const char *payloads[] = { "{\"n\":1}", "[1,2]", "\"x\"",
		"null", "{}" };
	struct h_event *e = NULL;
	char id[UUID_STR_LEN];
	uint8_t sid[UUID_LEN];
	size_t n = 0, i;

	cr_assert_eq(h_read_all(c, 0, &e, &n), EF_S_OK);
	cr_assert_eq(n, 5);
	uuid_stream_id("todo", 4, "1", 1, sid);
	for (i = 0; i < n; i++) {
		cr_assert_eq(memcmp(e[i].stream_id, sid, UUID_LEN), 0);
		cr_assert_eq(e[i].version, i);
		cr_assert_eq(e[i].recorded_at, 1000 + i);
		cr_assert_str_eq(e[i].type, types[i]);
		cr_assert_eq(e[i].payload_len, strlen(payloads[i]));
		cr_assert_eq(memcmp(e[i].payload, payloads[i],
		                 e[i].payload_len),
		    0, "payload %zu", i);
	}
	cr_assert_str_eq(uuid_format(e[1].event_id, id),
	    "5f0c6a52-7d3e-4b8a-9c1f-0e2d4a6b8c9d");
	cr_assert_eq(e[1].md_len, strlen("{\"actor\":\"bob\"}"));
	cr_assert_eq(memcmp(e[2].md,
	                 "{\"id\":\"not-a-uuid\",\"meta\":"
	                 "{\"k\":1},\"extra\":true}",
	                 e[2].md_len),
	    0);
	cr_assert_eq(e[0].md_len, 0);
	h_events_free(e, n);
}

Test(import, eventfold_directory)
{
	struct h_stored s;
	struct ef_client c;
	char dir[H_PATH + 32], app[H_PATH + 64];
	char *out, *err;
	int rc;

	start(&s, &c);
	write_eventfold_dir(&s, dir, sizeof(dir), app, sizeof(app));

	/* a stream is needed */
	rc = h_ctl_at(&s, (const char *const[]){ "import", dir, NULL }, &out,
	    &err);
	cr_assert_eq(rc, 1, "%s", err);
	free(out);
	free(err);
	rc = h_ctl_at(&s,
	    (const char *const[]){ "import", dir, "--stream-name", "todo/1",
	        NULL },
	    &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert(strstr(out, "imported 5 events") != NULL, "%s", out);
	cr_assert(strstr(err, "repeat the end of the archive") != NULL, "%s",
	    err);
	cr_assert(strstr(err, "torn write") != NULL, "%s", err);
	free(out);
	free(err);

	check_directory_events(&c);

	/* again: the derived ids are the same, nothing is imported */
	rc = h_ctl_at(&s,
	    (const char *const[]){ "import", dir, "--stream-name", "todo/1",
	        "--quiet", NULL },
	    &out, &err);
	cr_assert_eq(rc, 0, "%s", err);
	free(out);
	free(err);
	cr_assert_eq(h_head(&c), 5);
	/* after the torn line is completed and more is appended: only those */
	write_text(app,
	    "{\"type\":\"C\",\"data\":\"x\",\"ts\":1002,\"id\":"
	    "\"not-a-uuid\",\"meta\":{\"k\":1},\"extra\":true}\n"
	    "{\"type\":\"D\",\"data\":null,\"ts\":1003}\n"
	    "{\"type\":\"E\",\"data\":{},\"ts\":1004}\n"
	    "{\"type\":\"F\",\"data\":1,\"ts\":1005}\n");
	out = h_ctl_ok(&s,
	    (const char *const[]){ "import", dir, "--stream-name", "todo/1",
	        NULL });
	cr_assert(strstr(out, "imported 1 events") != NULL, "%s", out);
	free(out);
	cr_assert_eq(h_head(&c), 6);
	client_close(&c);
}

/*
 * Files that are none of the three formats, and an EventfoldDB header of
 * a version other than 2 or 3: refused by name before anything is
 * written, and stored goes on serving.
 */
Test(import, unknown_format_and_wrong_version)
{
	static const uint8_t v7[8] = { 'E', 'F', 'D', 'B', 7, 0, 0, 0 };
	struct h_stored s;
	struct ef_client c;
	char path[H_PATH + 32], want[H_PATH + 96], junk[3000];

	start(&s, &c);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	snprintf(path, sizeof(path), "%s/junk.bin", s.dir);
	cr_assert_eq(h_write_file(path, junk, sizeof(junk)), 0);
	snprintf(want, sizeof(want), "%s: unknown format", path);
	free(import_err(&s, path, 3, want));

	snprintf(path, sizeof(path), "%s/v7.dat", s.dir);
	cr_assert_eq(h_write_file(path, v7, sizeof(v7)), 0);
	snprintf(want, sizeof(want), "%s: EventfoldDB format version 7", path);
	free(import_err(&s, path, 3, want));
	cr_assert_eq(h_head(&c), 0, "something was written");
	client_close(&c);
}

/*
 * A store on a slow disk (every fsync 1.5 s longer, through the
 * slowsync LD_PRELOAD shim) answers each IMPORT batch later than
 * eventfoldctl's --timeout-ms (here 500 ms): the import must wait for
 * the batch, as stored is alive and working, not stop UNAVAILABLE
 * halfway (as it did on a loaded machine with the default 5 s).
 */
Test(import, waits_for_a_slow_store)
{
	struct h_stored a, b;
	struct ef_client ca, cb;
	char pa[H_PATH + 32], *fa, *out = NULL, *err = NULL;
	const char *shim = getenv("EF_SLOWSYNC");
	int rc;

	cr_assert(shim != NULL, "EF_SLOWSYNC is not set");
	fa = source_export(&a, &ca, 3000, pa, sizeof(pa));

	setenv("LD_PRELOAD", shim, 1);
	setenv("EF_SLOW_SYNC_MS", "1500", 1);
	h_stored_init(&b, h_tmpdir(), NULL);
	h_stored_start(&b);
	unsetenv("LD_PRELOAD");
	unsetenv("EF_SLOW_SYNC_MS");
	h_client(&cb, &b, 20000);
	{
		const char *args[] = { "--runtime-dir", b.run_dir,
			"--timeout-ms", "500", "import", pa, NULL };

		rc = h_ctl(b.dir, args, NULL, 0, 120000, &out, &err);
	}
	cr_assert_eq(rc, 0, "the import stopped: exit %d: %s", rc, err);
	cr_assert(strstr(out, "positions kept") != NULL, "%s", out);
	free(out);
	free(err);
	export_same(&b, "b.jsonl", fa);
	free(fa);
	client_close(&ca);
	client_close(&cb);
}
