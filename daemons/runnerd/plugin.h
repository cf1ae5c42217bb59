/* SPDX-License-Identifier: MIT */
/*
 * plugin.h - runnerd's side of the plugin ABI (plugin.c): loading the
 * plugin directory, the aggregate types the plugins register, and what
 * a host function may touch during one callback (struct efp_ctx, the
 * context plugin.h's host table is handed). The ABI itself is
 * <eventfold/plugin.h>.
 */
#ifndef EF_RUNNERD_PLUGIN_H
#define EF_RUNNERD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "ipc.h"
#include "ipc_runner.h"
#include "record.h"

#include "eventfold/plugin.h"

struct plugin {
	char *path;
	char *file; /* basename, for messages */
	void *dl;
	const struct efp_plugin_info *info;
	struct plugin *next;
};

struct agg_type {
	const struct efp_aggregate *desc;
	struct plugin *plugin;
	uint64_t commands; /* atomic */
	uint64_t cached;   /* atomic */
};

/* A growable byte buffer. */
struct buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

void buf_set(struct buf *b, const void *p, size_t len);
void buf_free(struct buf *b);

enum ctx_kind {
	CTX_APPLY = 1, /* aggregate apply */
	CTX_HANDLE,    /* aggregate handle */
	CTX_PROJECT,   /* projection apply */
	CTX_REACT,     /* manager react */
};

struct emitted {
	char *type;
	uint8_t *payload;
	size_t len;
};

struct sent {
	char *aggregate_type;
	char *instance_id;
	char *type;
	uint8_t *payload;
	size_t len;
};

/* What a host function may touch during one callback (see plugin.h). */
struct efp_ctx {
	enum ctx_kind kind;
	/* CTX_APPLY */
	struct buf state;
	int state_set;
	/* CTX_HANDLE */
	struct emitted *events;
	size_t nevents;
	int rejected;
	char *reject_msg;
	/* CTX_PROJECT */
	MDB_txn *txn;
	MDB_dbi dbi;
	int in_iter;
	int io_err; /* an LMDB failure, reported as an error */
	int io_rc;  /* its LMDB code (MDB_MAP_FULL: grow and redo) */
	/* CTX_REACT */
	struct sent *cmds;
	size_t ncmds;
	/* any */
	char err[512];
	int has_err;
};

void ctx_init(struct efp_ctx *c, enum ctx_kind kind);
void ctx_free(struct efp_ctx *c);

/*
 * A view of ev for plugins: NUL-terminated copies of the type and of
 * aggregate_type/instance_id taken from the metadata. Valid as long as
 * ev and vb are.
 */
struct view_buf {
	char type[RECORD_TYPE_MAX + 1];
	char agg[IPC_NAME_MAX + 1];
	char inst[IPC_ID_MAX + 1];
};

void event_view(const struct ef_event *ev, struct efp_event *out,
    struct view_buf *vb);

/*
 * Finds key at the top level of the JSON object in p (len bytes, parsed
 * with jansson) and, if its value is a string, writes it (unescaped,
 * NUL-terminated) to out. Returns its length, or -1 if absent, not a
 * string, holding U+0000, too long for outsz, or p is not one valid JSON
 * object.
 */
int meta_get_str(const uint8_t *p, size_t len, const char *key, char *out,
    size_t outsz);

int plugin_load_dir(const char *dir);
void plugin_unload_all(void);
struct agg_type *plugin_aggregate(const char *type, size_t len);
/* For PLUGINS and RUNNER_STATUS. */
struct plugin *plugin_list(void);
/* Files of the plugin directory refused at start: the file name (and
 * *why, the reason), valid for the daemon's life. */
size_t plugin_nrefused(void);
const char *plugin_refused_at(size_t i, const char **why);
size_t plugin_naggs(void);
struct agg_type *plugin_agg_at(size_t i);

#endif
