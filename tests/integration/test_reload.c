/* SPDX-License-Identifier: MIT */
/*
 * test_reload.c - SIGHUP in eventfold-stored does what eventfold-
 * stored(8) says: the file is read again with the start's flags on top;
 * max_read_count, max_append_bytes and segment_size (the limits, the
 * segment and archive keys) take effect at once, in the running process;
 * workers (the directories, URLs, ...) need a restart; a file with an
 * error, or one value out of range, keeps the whole running
 * configuration.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "../tools/testutil.h"

TestSuite(reload, .timeout = 120, .fini = h_cleanup);

/* Writes conf, sends SIGHUP, waits for the nth line with needle. */
static void
reload(struct h_stored *s, const char *conf, const char *text,
    const char *needle, int nth)
{
	char *log;
	int waited;

	cr_assert_eq(h_write_file(conf, text, strlen(text)), 0);
	cr_assert_eq(kill(s->pid, SIGHUP), 0);
	for (waited = 0; waited < 10000; waited += 20) {
		log = h_read_file(s->log, NULL);
		if (count_substr(log, needle) >= nth) {
			free(log);
			return;
		}
		free(log);
		h_sleep_ms(20);
	}
	cr_assert_fail("no \"%s\" (#%d) in %s after SIGHUP", needle, nth,
	    s->log);
}

/* Events a READ_ALL from 0 asking for 100 returns. */
static uint32_t
read_n(struct ef_client *c)
{
	struct client_reply cr;
	struct ipc_read_rep rr;
	uint32_t n;

	cr_assert_eq(client_read_all(c, 0, 100, EF_FORWARD, &cr, &rr),
	    EF_S_OK);
	n = rr.nevents;
	client_reply_free(&cr);
	return n;
}

/* Four events of ~50 KB (200 KB) in one append. */
static int
append_200k(struct ef_client *c, const char *stream)
{
	struct ipc_proposed ev[4];
	struct h_result res;
	char ids[4][UUID_STR_LEN], *payload;
	uint8_t u[UUID_LEN];
	int i, st;

	payload = malloc(50001);
	memset(payload, 'x', 50000);
	payload[50000] = '\0';
	for (i = 0; i < 4; i++) {
		uuid_random(u);
		ev[i] = h_proposed(uuid_format(u, ids[i]), "Big", payload);
	}
	st = h_append(c, stream, EF_EXPECT_ANY, 0, ev, 4, &res);
	free(payload);
	return st;
}

Test(reload, sighup_reloads_what_the_manual_says)
{
	struct h_stored s;
	struct ef_client c;
	struct h_result res;
	char conf[H_PATH + 32], stream[UUID_STR_LEN], id[UUID_STR_LEN];
	const char *dir = h_tmpdir();
	const char *extra[] = { "-f", conf, "--max-pub-bytes", "2M", NULL };
	uint8_t u[UUID_LEN];
	uint64_t segs;
	pid_t pid;
	char *log;
	int i;

	snprintf(conf, sizeof(conf), "%s/eventfold.conf", dir);
	{
		const char *first = "[stored]\nmax_read_count = 1000\n"
		                    "workers = 4\nmax_pub_bytes = 512K\n";

		cr_assert_eq(h_write_file(conf, first, strlen(first)), 0);
	}
	h_stored_init(&s, dir, extra);
	h_stored_start(&s);
	pid = s.pid;
	h_client(&c, &s, 10000);
	uuid_random(u);
	uuid_format(u, stream);
	for (i = 0; i < 20; i++) {
		uuid_random(u);
		cr_assert_eq(h_append1(&c, stream, EF_EXPECT_ANY, 0,
		                 uuid_format(u, id), "Small", "{}", &res),
		    EF_S_OK);
	}
	cr_assert_eq(read_n(&c), 20);
	cr_assert_eq(append_200k(&c, stream), EF_S_OK);
	segs = h_status(&c).segments;

	/* the limits and segment_size at once; workers not */
	reload(&s, conf,
	    "[stored]\nmax_read_count = 5\n"
	    "max_append_bytes = 100K\nsegment_size = 4K\nworkers = 8\n"
	    "max_pub_bytes = 512K\n",
	    "reload: max_read_count 5,", 1);
	log = h_read_file(s.log, NULL);
	cr_assert(strstr(log,
	              "max_append_bytes 102400, max_pub_bytes "
	              "2097152, segment_size 4096,") != NULL,
	    "the flags given at "
	    "start are not on top:\n%s",
	    log);
	cr_assert(strstr(log,
	              "workers, repair and archive_cache_mb need a "
	              "restart") != NULL);
	free(log);
	cr_assert_eq(read_n(&c), 5, "max_read_count not reloaded");
	cr_assert_eq(append_200k(&c, stream), EF_S_BATCH_TOO_LARGE,
	    "max_append_bytes not reloaded");
	uuid_random(u);
	cr_assert_eq(h_append1(&c, stream, EF_EXPECT_ANY, 0,
	                 uuid_format(u, id), "Small", "{}", &res),
	    EF_S_OK);
	for (i = 0; i < 250 && h_status(&c).segments == segs; i++)
		h_sleep_ms(20);
	cr_assert_eq(h_status(&c).segments, segs + 1,
	    "segment_size not "
	    "reloaded: the hot segment was not sealed");

	/* a bad file, then one value out of range: nothing changes */
	reload(&s, conf, "[stored]\nmax_read_count = lots\n",
	    "configuration has errors, keeping the current one", 1);
	cr_assert_eq(read_n(&c), 5);
	reload(&s, conf, "[stored]\nmax_read_count = 7\nsegment_size = 1K\n",
	    "configuration has errors, keeping the current one", 2);
	cr_assert_eq(read_n(&c), 5, "a partly valid file was half taken");

	/* and back: the same process all along */
	reload(&s, conf, "[stored]\nmax_read_count = 1000\n",
	    "reload: max_read_count 1000,", 1);
	cr_assert_eq(read_n(&c), 25);
	cr_assert_eq(s.pid, pid);
	h_stored_stop_ok(&s, &c, SIGTERM);
}
