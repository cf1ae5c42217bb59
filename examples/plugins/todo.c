/* SPDX-License-Identifier: MIT */
/*
 * todo.c - the seed's todo app as an eventfold plugin: one aggregate,
 * "todo" (one instance per todo item: Add, Toggle, Delete), and two
 * projections, "todo_list" (key: the item's id, value: its JSON) and
 * "todo_stats" (keys created, completed, deleted: decimal counts).
 * eventfold-plugin(7) walks through this file.
 *
 * State of a todo instance, JSON: {} before Add, then
 * {"title": "...", "completed": false, "deleted": false}.
 * Events: Added {"title"}, Toggled {"completed"}, Deleted (null).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <eventfold/plugin.h>

static const struct efp_host *host;

/* Parses len bytes of JSON; NULL if empty or invalid. */
static json_t *
parse(const void *p, size_t len)
{
	if (p == NULL || len == 0)
		return NULL;
	return json_loadb(p, len, JSON_DECODE_ANY, NULL);
}

/* Hands a JSON value to fn(ctx, bytes, len) and frees it. */
static int
with_json(json_t *v, int (*fn)(struct efp_ctx *, const void *, size_t),
    struct efp_ctx *ctx)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	int rc;

	json_decref(v);
	if (s == NULL)
		return EFP_ENOMEM;
	rc = fn(ctx, s, strlen(s));
	free(s);
	return rc;
}

static int
todo_apply(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_event *ev)
{
	json_t *st = parse(state, len),
	       *p = parse(ev->payload, ev->payload_len);

	if (st == NULL || !json_is_object(st)) {
		json_decref(st);
		st = json_object();
	}
	if (!strcmp(ev->type, "Added")) {
		json_t *t = json_object_get(p, "title");

		json_object_set_new(st, "title",
		    t ? json_incref(t) : json_string(""));
		json_object_set_new(st, "completed", json_false());
		json_object_set_new(st, "deleted", json_false());
	} else if (!strcmp(ev->type, "Toggled")) {
		json_object_set_new(st, "completed",
		    json_boolean(
		        json_is_true(json_object_get(p, "completed"))));
	} else if (!strcmp(ev->type, "Deleted")) {
		json_object_set_new(st, "deleted", json_true());
	}
	json_decref(p);
	return with_json(st, host->set_state, ctx);
}

static int
emit_json(struct efp_ctx *ctx, const char *type, json_t *payload)
{
	char *s = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	int rc;

	json_decref(payload);
	rc = host->emit(ctx, type, s, s ? strlen(s) : 0);
	free(s);
	return rc;
}

static int
todo_handle(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_command *cmd)
{
	json_t *st = parse(state, len), *p;
	const char *title;
	int exists, deleted, completed, rc = EFP_OK;

	exists = json_object_get(st, "title") != NULL;
	deleted = json_is_true(json_object_get(st, "deleted"));
	completed = json_is_true(json_object_get(st, "completed"));
	json_decref(st);
	if (!strcmp(cmd->type, "Add")) {
		p = parse(cmd->payload, cmd->payload_len);
		title = json_string_value(json_object_get(p, "title"));
		if (exists)
			rc = host->reject(ctx, "todo already exists");
		else if (title == NULL || *title == '\0')
			rc = host->reject(ctx,
			    "Add needs {\"title\": "
			    "\"...\"}");
		else
			rc = emit_json(ctx, "Added",
			    json_pack("{s:s}", "title", title));
		json_decref(p);
		return rc;
	}
	if (!exists || deleted)
		return host->reject(ctx,
		    deleted ? "todo was deleted" : "no such todo");
	if (!strcmp(cmd->type, "Toggle"))
		return emit_json(ctx, "Toggled",
		    json_pack("{s:b}", "completed", !completed));
	if (!strcmp(cmd->type, "Delete"))
		return host->emit(ctx, "Deleted", NULL, 0);
	return host->reject(ctx, "unknown command (Add, Toggle, Delete)");
}

static const struct efp_aggregate todo_aggregate = {
	.type = "todo",
	.state_version = 1,
	.initial_state = "{}",
	.initial_len = 2,
	.apply = todo_apply,
	.handle = todo_handle,
};

static int
is_todo(const struct efp_event *ev)
{
	return ev->aggregate_type != NULL &&
	    !strcmp(ev->aggregate_type, "todo");
}

/* todo_list: one key per live item. */
static int
list_apply(struct efp_ctx *ctx, const struct efp_event *ev)
{
	const char *id = ev->instance_id;
	const void *old;
	size_t oldlen;
	json_t *item, *p;
	int rc;

	if (!is_todo(ev))
		return EFP_OK;
	if (!strcmp(ev->type, "Deleted")) {
		rc = host->kv_del(ctx, id, strlen(id));
		return rc == EFP_ENOTFOUND ? EFP_OK : rc;
	}
	p = parse(ev->payload, ev->payload_len);
	if (!strcmp(ev->type, "Added")) {
		item = json_pack("{s:O?,s:b}", "title",
		    json_object_get(p, "title"), "completed", 0);
	} else if (!strcmp(ev->type, "Toggled")) {
		if ((rc = host->kv_get(ctx, id, strlen(id), &old, &oldlen)) !=
		    EFP_OK) {
			json_decref(p);
			return rc == EFP_ENOTFOUND ? EFP_OK : rc;
		}
		item = parse(old, oldlen);
		json_object_set_new(item, "completed",
		    json_boolean(
		        json_is_true(json_object_get(p, "completed"))));
	} else {
		json_decref(p);
		return EFP_OK;
	}
	json_decref(p);
	if (item == NULL) {
		host->fail(ctx, "cannot build the item");
		return EFP_ERROR;
	}
	{
		char *s = json_dumps(item, JSON_COMPACT);

		json_decref(item);
		if (s == NULL)
			return EFP_ENOMEM;
		rc = host->kv_put(ctx, id, strlen(id), s, strlen(s));
		free(s);
	}
	return rc;
}

static int
bump(struct efp_ctx *ctx, const char *key)
{
	const void *v;
	size_t vlen;
	char buf[32];
	unsigned long long n = 0;
	int rc;

	rc = host->kv_get(ctx, key, strlen(key), &v, &vlen);
	if (rc == EFP_OK && vlen < sizeof(buf)) {
		memcpy(buf, v, vlen);
		buf[vlen] = '\0';
		n = strtoull(buf, NULL, 10);
	} else if (rc != EFP_ENOTFOUND && rc != EFP_OK)
		return rc;
	snprintf(buf, sizeof(buf), "%llu", n + 1);
	return host->kv_put(ctx, key, strlen(key), buf, strlen(buf));
}

/* todo_stats: counts of created, completed and deleted items. */
static int
stats_apply(struct efp_ctx *ctx, const struct efp_event *ev)
{
	json_t *p;
	int done;

	if (!is_todo(ev))
		return EFP_OK;
	if (!strcmp(ev->type, "Added"))
		return bump(ctx, "created");
	if (!strcmp(ev->type, "Deleted"))
		return bump(ctx, "deleted");
	if (!strcmp(ev->type, "Toggled")) {
		p = parse(ev->payload, ev->payload_len);
		done = json_is_true(json_object_get(p, "completed"));
		json_decref(p);
		return done ? bump(ctx, "completed") : EFP_OK;
	}
	return EFP_OK;
}

static const struct efp_projection todo_list = {
	.name = "todo_list",
	.apply = list_apply,
};

static const struct efp_projection todo_stats = {
	.name = "todo_stats",
	.apply = stats_apply,
};

static int
todo_init(const struct efp_host *h, struct efp_registry *reg)
{
	int rc;

	host = h;
	if ((rc = h->register_aggregate(reg, &todo_aggregate)) != EFP_OK ||
	    (rc = h->register_projection(reg, &todo_list)) != EFP_OK ||
	    (rc = h->register_projection(reg, &todo_stats)) != EFP_OK)
		return rc;
	return EFP_OK;
}

EFP_PLUGIN("todo", "1.0", todo_init, NULL);
