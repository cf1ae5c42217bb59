/* SPDX-License-Identifier: MIT */
/*
 * plugin.c - loading plugins and the host side of <eventfold/plugin.h>.
 *
 * plugin_load_dir() dlopen()s every "*.so" in the plugin directory, in
 * name order, and refuses, naming the file, one that is writable by
 * others, has no entry point, was built for another ABI version, fails
 * its init() or registers a name that is taken; the others load. A
 * plugin directory writable by others is refused as a whole (fatal).
 * The host table (plugin_host) is what plugins call back into; every
 * function checks that it is called from the right kind of callback
 * and within the bounds of plugin.h, so a plugin misusing it gets an
 * error code, not a crashed daemon.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "grow.h"
#include "log.h"
#include "fold.h"
#include "plugin.h"
#include "state.h"

struct efp_registry {
	struct plugin *plugin;
	const struct efp_aggregate *aggs[256];
	size_t naggs;
	const struct efp_projection *projs[256];
	size_t nprojs;
	const struct efp_manager *mgrs[256];
	size_t nmgrs;
	int open;
};

static struct plugin *plugins;
static struct agg_type **aggs;
static size_t naggs;

static void
buf_add(struct buf *b, const void *p, size_t len)
{
	if (b->len + len > b->cap)
		b->p = mem_grow(b->p, &b->cap, b->len + len, 64);
	if (len)
		memcpy(b->p + b->len, p, len);
	b->len += len;
}

void
buf_set(struct buf *b, const void *p, size_t len)
{
	b->len = 0;
	buf_add(b, p, len);
}

void
buf_free(struct buf *b)
{
	if (b == NULL)
		return;
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

void
ctx_init(struct efp_ctx *c, enum ctx_kind kind)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
}

void
ctx_free(struct efp_ctx *c)
{
	size_t i;

	buf_free(&c->state);
	for (i = 0; i < c->nevents; i++) {
		free(c->events[i].type);
		free(c->events[i].payload);
	}
	free(c->events);
	free(c->reject_msg);
	for (i = 0; i < c->ncmds; i++) {
		free(c->cmds[i].aggregate_type);
		free(c->cmds[i].instance_id);
		free(c->cmds[i].type);
		free(c->cmds[i].payload);
	}
	free(c->cmds);
	memset(c, 0, sizeof(*c));
}

/*
 * Metadata: top-level string members of a JSON object, read with
 * jansson. \u0000 is accepted in the document (a member we do not read
 * may hold it) but a value holding it is refused, as it cannot be a C
 * string. Metadata that is not a JSON object has no members.
 *
 * Cost: a jansson parse builds the whole tree (~10x the old scanner's
 * time on a 90-byte object), and every fold views every event. Two exact
 * shortcuts keep the folds' rate: metadata that cannot hold the key (its
 * quoted name is absent and nothing is escaped) is not parsed, and
 * event_view remembers, per thread, the last metadata it parsed and what
 * it found (the events of one command, or of one instance, share it).
 */
static int
meta_may_hold(const uint8_t *p, size_t len, const char *key)
{
	char q[80];
	int n;

	n = snprintf(q, sizeof(q), "\"%s\"", key);
	if (n < 0 || (size_t)n >= sizeof(q))
		return 1;
	return memchr(p, '\\', len) != NULL ||
	    memmem(p, len, q, (size_t)n) != NULL;
}

static json_t *
meta_load(const uint8_t *p, size_t len)
{
	json_t *o;

	if (p == NULL || len == 0)
		return NULL;
	if ((o = json_loadb((const char *)p, len, JSON_ALLOW_NUL, NULL)) ==
	    NULL)
		return NULL;
	if (!json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
meta_str(const json_t *o, const char *key, char *out, size_t outsz)
{
	const json_t *v;
	size_t n;

	if (o == NULL || (v = json_object_get(o, key)) == NULL ||
	    !json_is_string(v))
		return -1;
	n = json_string_length(v);
	if (n >= outsz || n > INT_MAX ||
	    memchr(json_string_value(v), '\0', n) != NULL)
		return -1;
	memcpy(out, json_string_value(v), n + 1);
	return (int)n;
}

int
meta_get_str(const uint8_t *p, size_t len, const char *key, char *out,
    size_t outsz)
{
	json_t *o;
	int n;

	if (p == NULL || !meta_may_hold(p, len, key) ||
	    (o = meta_load(p, len)) == NULL)
		return -1;
	n = meta_str(o, key, out, outsz);
	json_decref(o);
	return n;
}

/* event_view's memo: the last metadata this thread parsed, its result */
#define VIEW_MEMO_MAX 1024
static __thread struct {
	uint8_t meta[VIEW_MEMO_MAX];
	size_t len; /* 0: empty */
	int found;
	char agg[IPC_NAME_MAX + 1];
	char inst[IPC_ID_MAX + 1];
} memo;

void
event_view(const struct ef_event *ev, struct efp_event *o, struct view_buf *vb)
{
	json_t *m;
	int found;

	memcpy(vb->type, ev->type, ev->type_len);
	vb->type[ev->type_len] = '\0';
	o->event_id = ev->event_id;
	o->stream_id = ev->stream_id;
	o->stream_version = ev->stream_version;
	o->global_position = ev->global_position;
	o->recorded_at = ev->recorded_at;
	o->type = vb->type;
	o->type_len = ev->type_len;
	o->metadata = ev->metadata;
	o->metadata_len = ev->metadata_len;
	o->payload = ev->payload;
	o->payload_len = ev->payload_len;
	o->aggregate_type = NULL;
	o->instance_id = NULL;
	if (ev->metadata_len == 0 ||
	    !meta_may_hold(ev->metadata, ev->metadata_len, "aggregate_type"))
		return;
	if (memo.len == ev->metadata_len &&
	    memcmp(memo.meta, ev->metadata, memo.len) == 0) {
		found = memo.found;
		if (found) {
			memcpy(vb->agg, memo.agg, sizeof(vb->agg));
			memcpy(vb->inst, memo.inst, sizeof(vb->inst));
		}
	} else {
		if ((m = meta_load(ev->metadata, ev->metadata_len)) == NULL)
			found = 0;
		else {
			found = meta_str(m, "aggregate_type", vb->agg,
			            sizeof(vb->agg)) > 0 &&
			    meta_str(m, "instance_id", vb->inst,
			        sizeof(vb->inst)) > 0;
			json_decref(m);
		}
		memo.len = 0;
		if (ev->metadata_len <= VIEW_MEMO_MAX) {
			memcpy(memo.meta, ev->metadata, ev->metadata_len);
			memo.found = found;
			if (found) {
				memcpy(memo.agg, vb->agg, sizeof(memo.agg));
				memcpy(memo.inst, vb->inst, sizeof(memo.inst));
			}
			memo.len = ev->metadata_len;
		}
	}
	if (found) {
		o->aggregate_type = vb->agg;
		o->instance_id = vb->inst;
	}
}

/* Host functions. */

static int
name_ok(const char *s)
{
	size_t i, n;

	if (s == NULL || (n = strnlen(s, EFP_NAME_MAX + 1)) == 0 ||
	    n > EFP_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		        c == '.'))
			return 0;
	}
	return 1;
}

static int
type_ok(const char *s)
{
	size_t n;

	return s != NULL && (n = strnlen(s, EFP_TYPE_MAX + 1)) > 0 &&
	    n <= EFP_TYPE_MAX;
}

static int
h_register_aggregate(struct efp_registry *reg, const struct efp_aggregate *a)
{
	size_t i;

	if (reg == NULL || !reg->open)
		return EFP_ESTATE;
	if (a == NULL || !name_ok(a->type) || a->apply == NULL ||
	    a->handle == NULL || reg->naggs == 256)
		return EFP_EINVAL;
	if (plugin_aggregate(a->type, strlen(a->type)) != NULL)
		return EFP_EEXIST;
	for (i = 0; i < reg->naggs; i++)
		if (!strcmp(reg->aggs[i]->type, a->type))
			return EFP_EEXIST;
	reg->aggs[reg->naggs++] = a;
	return EFP_OK;
}

static int
reg_fold_taken(struct efp_registry *reg, const char *name)
{
	size_t i;

	if (fold_find(name, strlen(name)) != NULL)
		return 1;
	for (i = 0; i < reg->nprojs; i++)
		if (!strcmp(reg->projs[i]->name, name))
			return 1;
	for (i = 0; i < reg->nmgrs; i++)
		if (!strcmp(reg->mgrs[i]->name, name))
			return 1;
	return 0;
}

/*
 * Whether a fold may be registered: EFP_ESTATE outside init(), EFP_EINVAL
 * for an invalid one (valid 0, a bad name, or n, those registered so
 * far, at 256), EFP_EEXIST for a name taken, else EFP_OK.
 */
static int
reg_fold_check(struct efp_registry *reg, int valid, const char *name, size_t n)
{
	if (reg == NULL || !reg->open)
		return EFP_ESTATE;
	if (!valid || !name_ok(name) || n == 256)
		return EFP_EINVAL;
	if (reg_fold_taken(reg, name))
		return EFP_EEXIST;
	return EFP_OK;
}

static int
h_register_projection(struct efp_registry *reg, const struct efp_projection *p)
{
	int rc = reg_fold_check(reg, p != NULL && p->apply != NULL,
	    p != NULL ? p->name : NULL, reg != NULL ? reg->nprojs : 0);

	if (rc == EFP_OK)
		reg->projs[reg->nprojs++] = p;
	return rc;
}

static int
h_register_manager(struct efp_registry *reg, const struct efp_manager *m)
{
	int rc = reg_fold_check(reg, m != NULL && m->react != NULL,
	    m != NULL ? m->name : NULL, reg != NULL ? reg->nmgrs : 0);

	if (rc == EFP_OK)
		reg->mgrs[reg->nmgrs++] = m;
	return rc;
}

static int
h_set_state(struct efp_ctx *c, const void *state, size_t len)
{
	if (c == NULL || c->kind != CTX_APPLY)
		return EFP_ESTATE;
	if (len > 0 && state == NULL)
		return EFP_EINVAL;
	if (len > (64u << 20))
		return EFP_EINVAL;
	buf_set(&c->state, state, len);
	c->state_set = 1;
	return EFP_OK;
}

static int
h_emit(struct efp_ctx *c, const char *type, const void *payload, size_t len)
{
	struct emitted *e, *ne;

	if (c == NULL || c->kind != CTX_HANDLE || c->rejected)
		return EFP_ESTATE;
	if (!type_ok(type) || (len > 0 && payload == NULL) ||
	    len > RECORD_MAX || c->nevents >= EFP_EVENTS_MAX)
		return EFP_EINVAL;
	if ((ne = realloc(c->events, (c->nevents + 1) * sizeof(*ne))) == NULL)
		return EFP_ENOMEM;
	c->events = ne;
	e = &c->events[c->nevents];
	if ((e->type = strdup(type)) == NULL)
		return EFP_ENOMEM;
	if (len == 0) {
		payload = "null";
		len = 4;
	}
	if ((e->payload = malloc(len)) == NULL) {
		free(e->type);
		return EFP_ENOMEM;
	}
	memcpy(e->payload, payload, len);
	e->len = len;
	c->nevents++;
	return EFP_OK;
}

static int
h_reject(struct efp_ctx *c, const char *message)
{
	size_t i;

	if (c == NULL || c->kind != CTX_HANDLE || c->rejected)
		return EFP_ESTATE;
	c->rejected = 1;
	c->reject_msg = strndup(message ? message : "rejected", 1024);
	for (i = 0; i < c->nevents; i++) {
		free(c->events[i].type);
		free(c->events[i].payload);
	}
	c->nevents = 0;
	return EFP_OK;
}

static int
kv_check(struct efp_ctx *c, const void *key, size_t klen)
{
	if (c == NULL || c->kind != CTX_PROJECT || c->txn == NULL)
		return EFP_ESTATE;
	if (key == NULL || klen == 0 || klen > EFP_KEY_MAX)
		return EFP_EINVAL;
	return EFP_OK;
}

static int
lmdb_err(struct efp_ctx *c, int rc)
{
	c->io_err = 1;
	c->io_rc = rc;
	snprintf(c->err, sizeof(c->err), "LMDB: %s", mdb_strerror(rc));
	c->has_err = 1;
	return EFP_EIO;
}

static int
h_kv_get(struct efp_ctx *c, const void *key, size_t klen, const void **val,
    size_t *vlen)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc;

	if ((rc = kv_check(c, key, klen)) != EFP_OK)
		return rc;
	if (val == NULL || vlen == NULL)
		return EFP_EINVAL;
	rc = mdb_get(c->txn, c->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return EFP_ENOTFOUND;
	if (rc != 0)
		return lmdb_err(c, rc);
	*val = v.mv_data;
	*vlen = v.mv_size;
	return EFP_OK;
}

static int
h_kv_put(struct efp_ctx *c, const void *key, size_t klen, const void *val,
    size_t vlen)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int rc;

	if ((rc = kv_check(c, key, klen)) != EFP_OK)
		return rc;
	if (c->in_iter)
		return EFP_ESTATE;
	if ((vlen > 0 && val == NULL) || vlen > EFP_VALUE_MAX)
		return EFP_EINVAL;
	if (vlen == 0)
		v.mv_data = "";
	if ((rc = mdb_put(c->txn, c->dbi, &k, &v, 0)) != 0)
		return lmdb_err(c, rc);
	return EFP_OK;
}

static int
h_kv_del(struct efp_ctx *c, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key };
	int rc;

	if ((rc = kv_check(c, key, klen)) != EFP_OK)
		return rc;
	if (c->in_iter)
		return EFP_ESTATE;
	rc = mdb_del(c->txn, c->dbi, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return EFP_ENOTFOUND;
	if (rc != 0)
		return lmdb_err(c, rc);
	return EFP_OK;
}

static int
h_kv_iter(struct efp_ctx *c, const void *start, size_t slen,
    int (*fn)(void *, const void *, size_t, const void *, size_t), void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, r = EFP_OK;
	MDB_cursor_op op;

	if (c == NULL || c->kind != CTX_PROJECT || c->txn == NULL)
		return EFP_ESTATE;
	if (fn == NULL || slen > EFP_KEY_MAX || (slen > 0 && start == NULL))
		return EFP_EINVAL;
	if ((rc = mdb_cursor_open(c->txn, c->dbi, &cur)) != 0)
		return lmdb_err(c, rc);
	if (slen > 0) {
		k.mv_size = slen;
		k.mv_data = (void *)start;
		op = MDB_SET_RANGE;
	} else
		op = MDB_FIRST;
	c->in_iter++;
	for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if ((r = fn(arg, k.mv_data, k.mv_size, v.mv_data,
		         v.mv_size)) != 0)
			break;
	}
	c->in_iter--;
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return lmdb_err(c, rc);
	return r;
}

static int
h_send(struct efp_ctx *c, const char *agg, const char *inst, const char *type,
    const void *payload, size_t len)
{
	struct sent *s, *ns;
	size_t il;

	if (c == NULL || c->kind != CTX_REACT)
		return EFP_ESTATE;
	if (!name_ok(agg) || inst == NULL ||
	    (il = strnlen(inst, IPC_ID_MAX + 1)) == 0 || il > IPC_ID_MAX ||
	    !type_ok(type) || (len > 0 && payload == NULL) ||
	    len > IPC_PAYLOAD_MAX || c->ncmds >= EFP_COMMANDS_MAX)
		return EFP_EINVAL;
	if ((ns = realloc(c->cmds, (c->ncmds + 1) * sizeof(*ns))) == NULL)
		return EFP_ENOMEM;
	c->cmds = ns;
	s = &c->cmds[c->ncmds];
	memset(s, 0, sizeof(*s));
	s->aggregate_type = strdup(agg);
	s->instance_id = strdup(inst);
	s->type = strdup(type);
	s->payload = malloc(len ? len : 1);
	if (s->aggregate_type == NULL || s->instance_id == NULL ||
	    s->type == NULL || s->payload == NULL) {
		free(s->aggregate_type);
		free(s->instance_id);
		free(s->type);
		free(s->payload);
		return EFP_ENOMEM;
	}
	if (len)
		memcpy(s->payload, payload, len);
	s->len = len;
	c->ncmds++;
	return EFP_OK;
}

static void
h_fail(struct efp_ctx *c, const char *message)
{
	if (c == NULL || c->io_err)
		return;
	snprintf(c->err, sizeof(c->err), "%s", message ? message : "failed");
	c->has_err = 1;
}

static void
h_log(struct efp_ctx *c, int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	(void)c;
	if (fmt == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (level >= EFP_LOG_WARN)
		log_warnx("plugin: %s", line);
	else if (level == EFP_LOG_INFO)
		log_info("plugin: %s", line);
	else
		log_debug("plugin: %s", line);
}

static const struct efp_host plugin_host = {
	.abi_version = EFP_ABI_VERSION,
	.size = sizeof(struct efp_host),
	.register_aggregate = h_register_aggregate,
	.register_projection = h_register_projection,
	.register_manager = h_register_manager,
	.set_state = h_set_state,
	.emit = h_emit,
	.reject = h_reject,
	.kv_get = h_kv_get,
	.kv_put = h_kv_put,
	.kv_del = h_kv_del,
	.kv_iter = h_kv_iter,
	.send = h_send,
	.fail = h_fail,
	.log = h_log,
};

/* Loading. */

struct agg_type *
plugin_aggregate(const char *type, size_t len)
{
	size_t i;

	for (i = 0; i < naggs; i++)
		if (strlen(aggs[i]->desc->type) == len &&
		    !memcmp(aggs[i]->desc->type, type, len))
			return aggs[i];
	return NULL;
}

static int
plugin_name_taken(const char *name)
{
	struct plugin *p;

	for (p = plugins; p != NULL; p = p->next)
		if (!strcmp(p->info->name, name))
			return 1;
	return 0;
}

/*
 * The files refused at start, with the reason, for PLUGINS: an operator
 * sees them with `eventfoldctl plugins`, not only in the log.
 */
static struct refusal {
	char *file;
	char *why;
} * refusals;
static size_t nrefusals;

size_t
plugin_nrefused(void)
{
	return nrefusals;
}

const char *
plugin_refused_at(size_t i, const char **why)
{
	*why = refusals[i].why;
	return refusals[i].file;
}

/* Logs "plugin PATH: refused: REASON" and records it for file. */
static void __attribute__((format(printf, 3, 4)))
refuse(const char *path, const char *file, const char *fmt, ...)
{
	struct refusal *nr;
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warnx("plugin %s: refused: %s", path, why);
	if ((nr = realloc(refusals, (nrefusals + 1) * sizeof(*nr))) == NULL)
		fatal("realloc");
	refusals = nr;
	if ((nr[nrefusals].file = strdup(file)) == NULL ||
	    (nr[nrefusals].why = strdup(why)) == NULL)
		fatal("strdup");
	nrefusals++;
}

/* Loads one file; 0, or -1 after refuse() said why. */
/* Checks the file at path before loading it. 0, or -EPERM refused. */
static int
plugin_file_ok(const char *path, const char *name)
{
	struct stat sb;

	if (stat(path, &sb) != 0) {
		refuse(path, name, "stat: %s", strerror(errno));
		return -EPERM;
	}
	if (!S_ISREG(sb.st_mode)) {
		refuse(path, name, "not a regular file");
		return -EPERM;
	}
	if (sb.st_mode & S_IWOTH) {
		refuse(path, name,
		    "the file is writable by others "
		    "(mode %04o); chmod o-w it",
		    (unsigned)(sb.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* Checks a loaded plugin's info (NULL: none) against the ABI. 0, or
 * -EPERM refused. */
static int
plugin_info_ok(const char *path, const char *name,
    const struct efp_plugin_info *info)
{
	if (info == NULL) {
		refuse(path, name,
		    "no entry point \"%s\" (not an "
		    "eventfold plugin? define it with EFP_PLUGIN())",
		    EFP_PLUGIN_SYMBOL);
		return -EPERM;
	}
	if (info->abi_version != EFP_ABI_VERSION) {
		refuse(path, name,
		    "built for plugin ABI %u, this "
		    "eventfold-runnerd speaks ABI %u; rebuild it against this "
		    "<eventfold/plugin.h>",
		    info->abi_version, EFP_ABI_VERSION);
		return -EPERM;
	}
	if (info->info_size != sizeof(struct efp_plugin_info)) {
		refuse(path, name,
		    "plugin info of %u bytes, "
		    "expected %zu (ABI mismatch)",
		    info->info_size, sizeof(struct efp_plugin_info));
		return -EPERM;
	}
	if (info->init == NULL || !name_ok(info->name) ||
	    info->version == NULL) {
		refuse(path, name,
		    "missing entry point init() or "
		    "an invalid name or version");
		return -EPERM;
	}
	if (plugin_name_taken(info->name)) {
		refuse(path, name, "duplicate plugin name \"%s\"", info->name);
		return -EPERM;
	}
	return 0;
}

/* Commits what pl's init() registered: its aggregate types and folds. */
static void
plugin_commit(struct plugin *pl, const struct efp_registry *reg)
{
	size_t i;

	for (i = 0; i < reg->naggs; i++) {
		struct agg_type *t, **na;

		if ((t = calloc(1, sizeof(*t))) == NULL ||
		    (na = realloc(aggs, (naggs + 1) * sizeof(*na))) == NULL)
			fatal("calloc");
		t->desc = reg->aggs[i];
		t->plugin = pl;
		aggs = na;
		aggs[naggs++] = t;
	}
	for (i = 0; i < reg->nprojs; i++)
		if (fold_add_projection(reg->projs[i], pl) != 0)
			fatalx("cannot add projection %s",
			    reg->projs[i]->name);
	for (i = 0; i < reg->nmgrs; i++)
		if (fold_add_manager(reg->mgrs[i], pl) != 0)
			fatalx("cannot add manager %s", reg->mgrs[i]->name);
	pl->next = plugins;
	plugins = pl;
}

/* Loads dir/name and records what it registers: 0, or -EPERM when it
 * is refused (the reason recorded, plugin_refused_at). */
static int
plugin_load(const char *dir, const char *name)
{
	struct efp_registry reg;
	const struct efp_plugin_info *info;
	struct plugin *pl = NULL;
	char path[4096];
	void *dl = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (plugin_file_ok(path, name) != 0)
		return -EPERM;
	if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		refuse(path, name, "cannot load: %s", dlerror());
		return -EPERM;
	}
	info = dlsym(dl, EFP_PLUGIN_SYMBOL);
	if (plugin_info_ok(path, name, info) != 0)
		goto fail;
	if ((pl = calloc(1, sizeof(*pl))) == NULL)
		fatal("calloc");
	pl->path = strdup(path);
	pl->file = strdup(name);
	pl->dl = dl;
	pl->info = info;
	memset(&reg, 0, sizeof(reg));
	reg.plugin = pl;
	reg.open = 1;
	rc = info->init(&plugin_host, &reg);
	reg.open = 0;
	if (rc != EFP_OK) {
		refuse(path, name, "init() failed with %d%s", rc,
		    rc == EFP_EEXIST     ? " (a name it registers is "
		                           "taken: duplicate name)" :
		        rc == EFP_EINVAL ? " (invalid registration)" :
		                           "");
		goto fail;
	}
	plugin_commit(pl, &reg);
	log_info("plugin %s: loaded \"%s\" %s: %zu aggregates, %zu "
	         "projections, %zu process managers",
	    path, info->name, info->version, reg.naggs, reg.nprojs, reg.nmgrs);
	return 0;
fail:
	if (pl != NULL) {
		free(pl->path);
		free(pl->file);
		free(pl);
	}
	dlclose(dl);
	return -EPERM;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
plugin_load_dir(const char *dir)
{
	struct stat sb;
	struct dirent *de;
	DIR *d;
	char **names = NULL, **nn;
	size_t n = 0, i, len;
	int loaded = 0;

	if (stat(dir, &sb) != 0) {
		if (errno == ENOENT) {
			log_warnx("plugin directory %s does not exist: no "
			          "plugins loaded",
			    dir);
			return 0;
		}
		fatal("plugin directory %s", dir);
	}
	if (!S_ISDIR(sb.st_mode))
		fatalx("plugin directory %s is not a directory", dir);
	if (sb.st_mode & S_IWOTH)
		fatalx(
		    "plugin directory %s is writable by others (mode %04o): "
		    "refusing to load plugins from it; chmod o-w it",
		    dir, (unsigned)(sb.st_mode & 07777));
	if ((d = opendir(dir)) == NULL)
		fatal("plugin directory %s", dir);
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0 ||
		    de->d_name[0] == '.')
			continue;
		if ((nn = realloc(names, (n + 1) * sizeof(*nn))) == NULL)
			fatal("realloc");
		names = nn;
		if ((names[n++] = strdup(de->d_name)) == NULL)
			fatal("strdup");
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n; i++) {
		if (plugin_load(dir, names[i]) == 0)
			loaded++;
		free(names[i]);
	}
	free(names);
	return loaded;
}

void
plugin_unload_all(void)
{
	struct plugin *p, *np;
	size_t i;

	for (p = plugins; p != NULL; p = p->next)
		if (p->info->fini != NULL)
			p->info->fini();
	for (p = plugins; p != NULL; p = np) {
		np = p->next;
		dlclose(p->dl);
		free(p->path);
		free(p->file);
		free(p);
	}
	plugins = NULL;
	for (i = 0; i < naggs; i++)
		free(aggs[i]);
	free(aggs);
	aggs = NULL;
	naggs = 0;
}

struct plugin *
plugin_list(void)
{
	return plugins;
}

size_t
plugin_naggs(void)
{
	return naggs;
}

struct agg_type *
plugin_agg_at(size_t i)
{
	return i < naggs ? aggs[i] : NULL;
}
