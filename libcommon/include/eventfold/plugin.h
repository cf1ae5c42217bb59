/* SPDX-License-Identifier: MIT */
/*
 * eventfold/plugin.h - the plugin ABI of eventfold-runnerd: aggregates,
 * projections and process managers written in C and loaded with
 * dlopen(3). This is the one public header of eventfold; a plugin
 * includes nothing else from eventfold. See eventfold-plugin(7).
 *
 * A plugin is a shared object in runnerd's plugin directory that
 * defines one symbol, the struct efp_plugin_info named by
 * EFP_PLUGIN_SYMBOL, most easily with EFP_PLUGIN(). runnerd reads its
 * abi_version and info_size before it calls anything and refuses a
 * plugin built against another ABI. Then it calls init(), in which the
 * plugin registers any number of aggregates, projections and process
 * managers through the host table it is given.
 *
 * Names: every aggregate type, projection and process manager name is
 * 1..EFP_NAME_MAX bytes of [A-Za-z0-9_.-] and unique across all loaded
 * plugins; plugin names are unique too. A plugin that registers a
 * taken name is refused as a whole.
 *
 * Threads: runnerd calls a plugin from several threads at once, but
 * never concurrently for the same aggregate instance, projection or
 * process manager. Callbacks must not keep pointers they are given
 * beyond their return unless stated, and must not block for long.
 *
 * Determinism: apply() of an aggregate and of a projection, and react()
 * of a process manager, must depend only on their arguments (and, for
 * projections, the projection's own keys): runnerd re-runs them after a
 * crash, on rebuild and on replay, and relies on getting the same
 * result. handle() may look at the clock; its output is recorded as
 * events and never re-run for a command id that already produced some.
 *
 * Return codes: every callback and host function returns EFP_OK (0) or
 * one of the negative EFP_E* codes below. A callback that fails may
 * first call host->fail() with a message; runnerd reports it (EXECUTE
 * gets an INTERNAL error; a projection stops at that event).
 *
 * ABI history (EFP_ABI_VERSION is the date of the last change):
 *   20261123  first version.
 */
#ifndef EVENTFOLD_PLUGIN_H
#define EVENTFOLD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EFP_ABI_VERSION   20261123u
#define EFP_PLUGIN_SYMBOL "eventfold_plugin_info"
#define EFP_NAME_MAX      128

/* Return codes. */
#define EFP_OK        0
#define EFP_ERROR     (-1) /* the callback failed; see host->fail() */
#define EFP_ENOTFOUND (-2) /* kv_get/kv_del: no such key */
#define EFP_EINVAL    (-3) /* an argument is out of its bounds */
#define EFP_ENOMEM    (-4)
#define EFP_EEXIST    (-5) /* register_*: the name is taken */
#define EFP_ESTATE    (-6) /* the host function is not allowed here */
#define EFP_EIO       (-7) /* the host's storage failed */

/* Bounds checked by the host functions (EFP_EINVAL beyond them). */
#define EFP_KEY_MAX      511         /* kv key bytes, at least 1 */
#define EFP_VALUE_MAX    (16u << 20) /* kv value bytes */
#define EFP_TYPE_MAX     256         /* event and command type bytes */
#define EFP_EVENTS_MAX   1024        /* events one handle() may emit */
#define EFP_COMMANDS_MAX 256         /* commands one react() may send */

/* Log levels of host->log(). */
#define EFP_LOG_DEBUG 0
#define EFP_LOG_INFO  1
#define EFP_LOG_WARN  2

/*
 * The context of one callback. Opaque; valid only during the callback
 * it is passed to. Every host function takes it as its first argument.
 */
struct efp_ctx;

/*
 * A recorded event, as every callback sees it. All pointers are owned by
 * runnerd and valid until the callback returns; copy what must last.
 * type, aggregate_type and instance_id are NUL-terminated. metadata and
 * payload are not (use the lengths); either may have length 0, and are
 * usually JSON. aggregate_type and instance_id are taken from the
 * metadata object of events written by eventfold-es or runnerd, and are
 * NULL for other events.
 */
struct efp_event {
	const uint8_t *event_id;  /* 16 bytes */
	const uint8_t *stream_id; /* 16 bytes */
	uint64_t stream_version;  /* 0-based within the stream */
	uint64_t global_position; /* 0-based in the whole log */
	uint64_t recorded_at;     /* Unix ms, set by eventfold-stored */
	const char *type;
	size_t type_len;
	const uint8_t *metadata;
	size_t metadata_len;
	const uint8_t *payload;
	size_t payload_len;
	const char *aggregate_type; /* or NULL */
	const char *instance_id;    /* or NULL */
};

/*
 * A command given to an aggregate's handle(). Owned by runnerd, valid
 * until handle() returns. Strings are NUL-terminated; the optional ones
 * are NULL when absent. payload (usually JSON) may have length 0.
 */
struct efp_command {
	const char *aggregate_type;
	const char *instance_id;
	const char *type;
	const uint8_t *payload;
	size_t payload_len;
	const char *command_id;
	const char *actor;
	const char *correlation_id;
	const char *causation_id;
	const char *source_device;
	int exists;       /* 1 if the instance has events */
	uint64_t version; /* its last version, when exists */
};

/*
 * An aggregate: a consistency boundary whose state is folded from the
 * events of its own stream. The stream id of instance I of type T is
 * the UUIDv5 of "T/I" in the eventfold-es namespace.
 *
 * state is plugin-defined bytes (JSON in the examples). A new instance
 * starts with initial_state (initial_len bytes, may be 0); the host
 * keeps the state and passes it, read-only, to every call; the pointer
 * is valid until the call returns.
 *
 * apply(ctx, state, len, ev): fold one event. Call host->set_state()
 * with the new state (it is copied); not calling it keeps the state.
 * Must accept every event its handle() can emit, and should ignore
 * event types it does not know (another writer may append them).
 *
 * handle(ctx, state, len, cmd): decide. Either emit events with
 * host->emit() (zero or more; they are appended atomically, in order,
 * each then applied) or refuse with host->reject(). Return EFP_OK in
 * both cases; a non-zero return means a bug and is reported as an
 * internal error.
 *
 * state_version: change it when the state layout changes, so runnerd
 * ignores snapshots taken by an older build and refolds from events.
 */
struct efp_aggregate {
	const char *type;
	uint32_t state_version;
	const void *initial_state;
	size_t initial_len;
	int (*apply)(struct efp_ctx *ctx, const void *state, size_t len,
	    const struct efp_event *ev);
	int (*handle)(struct efp_ctx *ctx, const void *state, size_t len,
	    const struct efp_command *cmd);
};

/*
 * A projection: a read model in its own LMDB database. apply() is
 * called once per event of the whole log, in order, and may read and
 * write the projection's keys with host->kv_*(). Its writes and the
 * projection's checkpoint commit together, in batches, so after any
 * crash every event has been applied exactly once. A failing apply()
 * stops the projection at that event (nothing of that event is kept);
 * its status names the position and the message given to fail().
 *
 * Keys sort bytewise (QUERY ranges and prefixes follow this order).
 */
struct efp_projection {
	const char *name;
	int (*apply)(struct efp_ctx *ctx, const struct efp_event *ev);
};

/*
 * A process manager: react(ctx, ev) is called once per event of the log,
 * in order, and may send commands to aggregates with host->send().
 * The commands run after react() returns, in order; each gets the
 * command id derived from (manager, event id, index), so sending the
 * same commands again after a crash changes nothing. A command that
 * keeps failing is retried with backoff, then parked as a dead letter;
 * the manager then goes on. react() has no key-value store: keep the
 * state a manager needs in aggregates.
 */
struct efp_manager {
	const char *name;
	int (*react)(struct efp_ctx *ctx, const struct efp_event *ev);
};

struct efp_registry; /* opaque; only valid during init() */

/*
 * The host table, given to init(). It stays valid (and constant) until
 * fini() returns, so a plugin may keep the pointer in a global.
 */
struct efp_host {
	uint32_t abi_version; /* EFP_ABI_VERSION of runnerd */
	uint32_t size;        /* sizeof(struct efp_host) of runnerd */

	/*
	 * Registration, during init() only (EFP_ESTATE otherwise). The
	 * structure is not copied: it must stay valid and unchanged until
	 * fini() (a static const object is the usual choice). EFP_EEXIST if
	 * the name is taken, EFP_EINVAL if a name or callback is missing.
	 */
	int (*register_aggregate)(struct efp_registry *reg,
	    const struct efp_aggregate *agg);
	int (*register_projection)(struct efp_registry *reg,
	    const struct efp_projection *proj);
	int (*register_manager)(struct efp_registry *reg,
	    const struct efp_manager *mgr);

	/* Aggregate apply() only: the new state, copied. */
	int (*set_state)(struct efp_ctx *ctx, const void *state, size_t len);

	/*
	 * Aggregate handle() only. emit(): one event of type (1..
	 * EFP_TYPE_MAX bytes, NUL-terminated) with payload (len bytes,
	 * copied; NULL/0 is stored as JSON "null"). reject(): refuse the
	 * command with a message for the caller (copied); events emitted
	 * before are dropped. EFP_ESTATE after a rejection.
	 */
	int (*emit)(struct efp_ctx *ctx, const char *type, const void *payload,
	    size_t len);
	int (*reject)(struct efp_ctx *ctx, const char *message);

	/*
	 * Projection apply() only: the projection's keys.
	 * kv_get(): *val and *vlen point at the stored value, valid until
	 * the next kv_* call or the end of apply(); EFP_ENOTFOUND if absent.
	 * kv_put(): copies key and value. kv_del(): EFP_ENOTFOUND if absent.
	 * kv_iter(): calls fn for every key >= start (start may be NULL) in
	 * order until fn returns non-zero (that value is returned) or the
	 * keys end (EFP_OK); pointers valid during that fn call; no kv_put or
	 * kv_del on this projection from inside fn.
	 */
	int (*kv_get)(struct efp_ctx *ctx, const void *key, size_t klen,
	    const void **val, size_t *vlen);
	int (*kv_put)(struct efp_ctx *ctx, const void *key, size_t klen,
	    const void *val, size_t vlen);
	int (*kv_del)(struct efp_ctx *ctx, const void *key, size_t klen);
	int (*kv_iter)(struct efp_ctx *ctx, const void *start, size_t slen,
	    int (*fn)(void *arg, const void *key, size_t klen, const void *val,
	        size_t vlen),
	    void *arg);

	/*
	 * Process manager react() only: send a command to instance_id of
	 * aggregate_type (NUL-terminated strings; type as for emit();
	 * payload copied, may be NULL/0).
	 */
	int (*send)(struct efp_ctx *ctx, const char *aggregate_type,
	    const char *instance_id, const char *type, const void *payload,
	    size_t len);

	/* Any callback: the message reported if the callback fails. */
	void (*fail)(struct efp_ctx *ctx, const char *message);

	/* Anywhere (ctx may be NULL): a line in runnerd's log. */
	void (*log)(struct efp_ctx *ctx, int level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
};

/*
 * The plugin's one exported symbol. init() registers what the plugin
 * offers and returns EFP_OK, or an error to be refused (what it had
 * registered is then forgotten). fini() (may be NULL) is called once at
 * shutdown, after the last callback.
 */
struct efp_plugin_info {
	uint32_t abi_version; /* EFP_ABI_VERSION when the plugin was built */
	uint32_t info_size;   /* sizeof(struct efp_plugin_info) */
	const char *name;     /* unique among plugins */
	const char *version;  /* free text, shown by `eventfoldctl plugins` */
	int (*init)(const struct efp_host *host, struct efp_registry *reg);
	void (*fini)(void);
};

/* Defines the exported symbol: EFP_PLUGIN("todo", "1.0", init, NULL); */
#define EFP_PLUGIN(name, version, init, fini)                                 \
	__attribute__((visibility("default")))                                \
	const struct efp_plugin_info eventfold_plugin_info = {                \
		EFP_ABI_VERSION, sizeof(struct efp_plugin_info), (name),      \
		(version), (init), (fini)                                     \
	}

#ifdef __cplusplus
}
#endif

#endif
