/* SPDX-License-Identifier: MIT */
/*
 * test_plugins.c - loading plugins: the examples load and are listed;
 * a plugin of another ABI version, one without the entry point, a
 * duplicate plugin name, a duplicate aggregate type and a file writable
 * by others are refused with a message naming the file while the good
 * ones load; a plugin directory writable by others stops runnerd.
 */
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "rharness.h"

#include "eventfold/plugin.h"

TestSuite(plugins, .timeout = 60);

/* The loaded plugins' names into names; *refused: files refused. */
static int
list_plugins(struct rh *h, char *names, size_t len, uint32_t *refused)
{
	struct client_reply cr;
	struct ipc_plugin_info p;
	struct ipc_out o;
	const msgpack_object *list;
	const char *why;
	uint32_t n, i, nrefused = 0;
	int st;

	names[0] = '\0';
	ipc_nil(rh_request(&o, EF_OP_PLUGINS));
	st = rh_call(&h->runner, &o, &cr);
	cr_assert_eq(st, EF_S_OK);
	cr_assert(ipc_plugins_rep_decode(cr.in.body, &list, &n, &why) == 0);
	for (i = 0; i < n; i++) {
		cr_assert(ipc_plugin_info_decode(&list->via.array.ptr[i], &p,
		              &why) == 0);
		if (p.refused.ptr != NULL) {
			/* refused files follow the loaded plugins */
			cr_assert_eq(p.name.len, 0);
			cr_assert_gt(p.refused.len, 0);
			nrefused++;
			continue;
		}
		cr_assert_eq(nrefused, 0, "a plugin listed after a refusal");
		cr_assert_eq(p.abi, EFP_ABI_VERSION);
		snprintf(names + strlen(names), len - strlen(names), "%.*s ",
		    (int)p.name.len, p.name.ptr);
	}
	client_reply_free(&cr);
	*refused = nrefused;
	return (int)(n - nrefused);
}

Test(plugins, examples_load_and_are_listed)
{
	static const char *const pl[] = { "todo.so", "counter.so", "orders.so",
		NULL };
	struct rh h;
	char names[256];
	uint32_t refused;

	rh_up(&h, pl);
	cr_assert_eq(list_plugins(&h, names, sizeof(names), &refused), 3);
	cr_assert_eq(refused, 0);
	cr_assert(strstr(names, "todo ") && strstr(names, "counter ") &&
	        strstr(names, "orders "),
	    "%s", names);
	rh_stop(&h);
}

Test(plugins, bad_plugins_are_refused_by_name)
{
	static const char *const pl[] = { "counter.so", "bad_abi.so",
		"no_entry.so", "dup_name.so", "dup_agg.so", NULL };
	struct rh h;
	char names[256], path[RH_PATH + 64], msg[1024];
	uint32_t refused;

	rh_init(&h, pl);
	rh_add_plugin(&h, "todo.so", path);
	/* a copy writable by others */
	snprintf(msg, sizeof(msg), "%s/zz_writable.so", h.plugins);
	cr_assert(rename(path, msg) == 0);
	cr_assert(chmod(msg, 0757) == 0);
	rh_start_stored(&h);
	rh_start_runnerd(&h);
	cr_assert_eq(list_plugins(&h, names, sizeof(names), &refused), 1, "%s",
	    names);
	cr_assert_str_eq(names, "counter ");
	/* and the five refused files are in the reply too, with a reason */
	cr_assert_eq(refused, 5);
	rh_expect_logged(&h,
	    (const char *const[]){
	        "bad_abi.so: refused: built for plugin ABI 19700101",
	        "no_entry.so: refused: no entry point",
	        "dup_name.so: refused: duplicate plugin name \"counter\"",
	        "dup_agg.so: refused: init() failed", "duplicate name",
	        "zz_writable.so: refused: the file is writable by others",
	        NULL });
	/* the good one works */
	cr_assert_eq(rh_exec(&h, "counter", "c-1", "Increment", NULL, NULL,
	                 NULL, msg, sizeof(msg)),
	    EF_S_OK, "%s", msg);
	cr_assert_eq(rh_exec(&h, "todo", "t1", "Add", "{\"title\":\"x\"}",
	                 NULL, NULL, msg, sizeof(msg)),
	    EF_S_NOT_FOUND);
	rh_stop(&h);
}

Test(plugins, directory_writable_by_others_is_fatal)
{
	static const char *const pl[] = { "counter.so", NULL };
	struct rh h;

	rh_init(&h, pl);
	cr_assert(chmod(h.plugins, 0777) == 0);
	rh_start_stored(&h);
	rh_spawn_runnerd(&h);
	cr_assert_eq(rh_wait_runnerd(&h, 5000), -1);
	cr_assert(
	    WIFEXITED(h.runnerd_status) && WEXITSTATUS(h.runnerd_status) == 1);
	cr_assert(rh_log_contains(h.runnerd_log, "is writable by others"));
	cr_assert(rh_log_contains(h.runnerd_log, h.plugins));
	rh_stop(&h);
}
