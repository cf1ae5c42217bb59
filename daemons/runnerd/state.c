/* SPDX-License-Identifier: MIT */
/*
 * state.c - runnerd's LMDB environment (DATA_DIR/runner/): one
 * environment, named databases for fold checkpoints ("meta"), command
 * results ("cmds") and their ages ("cmdage", see aggregate.c), aggregate
 * snapshots ("snaps"), dead letters ("dead") and one per projection and
 * generation ("fold/NAME/GEN").
 *
 * Caveats: open the environment after any fork, never before. The map
 * starts at map_size (reserved, sparse) and grows: a transaction that
 * meets MDB_MAP_FULL is aborted, state_grow doubles the map and the
 * caller redoes the same work, so a projection never stops because the
 * map is full. LMDB allows mdb_env_set_mapsize only with no transaction
 * open in the process: every transaction holds grow_lock shared from
 * state_begin to its end, state_grow takes it exclusive. The lock
 * prefers readers (glibc's default), so a thread may begin a second
 * transaction while it holds one; growing waits for a quiet moment.
 * An environment that grew reopens at its file's size, whatever
 * map_size says. A commit that fails for a full disk (ENOSPC, EDQUOT,
 * or EIO with under 1 MiB free: a short write; the commit's pages are
 * not referenced by any meta page, so nothing of it counts) is retried every
 * 500 ms by the caller (state_wait_space) until there is space or runnerd
 * stops: a full disk pauses the folds and the results writer, it never stops
 * them. Named databases are opened under dbi_mu, in their own write
 * transaction, as LMDB requires. Every commit is durable (LMDB's default
 * sync): callers batch their writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "backupdir.h"
#include "errors.h"
#include "fsync.h"
#include "ipc_runner.h"
#include "log.h"
#include "runnerd.h"
#include "state.h"

/* The environment, private to this file: other modules reach it through
 * the functions of state.h. */
struct state {
	MDB_env *env;
	MDB_dbi meta;   /* "meta": fold checkpoints */
	MDB_dbi cmds;   /* "cmds": command id -> result */
	MDB_dbi cmdage; /* "cmdage": [recorded ms BE][command id] -> "" */
	MDB_dbi snaps;  /* "snaps": stream id -> snapshot */
	MDB_dbi dead;   /* "dead": manager NUL command id -> dead letter */
	pthread_mutex_t dbi_mu;
	/* Held shared by every open transaction (state_begin to
	 * state_commit or state_abort), exclusive by state_grow. */
	pthread_rwlock_t grow_lock;
	uint64_t map_size; /* current; changed under grow_lock */
	/* doublings of this map and of REPLAY's scratch maps (atomic) */
	uint64_t grows;
};

static struct state st;

static char env_dir[4096]; /* the environment's directory */

static int disk_full(int rc);

/* The map size this thread's last state_begin ran under. */
static __thread uint64_t begun_map;

/*
 * Results from before "cmdage" existed get an age of now, so retention
 * reaches them too (once: when "cmdage" is empty and "cmds" is not).
 */
static int
cmdage_migrate(MDB_txn *txn)
{
	MDB_stat a, c;
	MDB_cursor *cur;
	MDB_val k, v, ak, av = { 0, "" };
	uint8_t key[8 + IPC_ID_MAX];
	uint64_t now = wall_ms(), t;
	size_t n = 0;
	int rc, i;

	if ((rc = mdb_stat(txn, st.cmdage, &a)) != 0 ||
	    (rc = mdb_stat(txn, st.cmds, &c)) != 0)
		return rc;
	if (a.ms_entries > 0 || c.ms_entries == 0)
		return 0;
	if ((rc = mdb_cursor_open(txn, st.cmds, &cur)) != 0)
		return rc;
	for (t = now, i = 7; i >= 0; i--, t >>= 8)
		key[i] = (uint8_t)t;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size > IPC_ID_MAX)
			continue;
		memcpy(key + 8, k.mv_data, k.mv_size);
		ak.mv_size = 8 + k.mv_size;
		ak.mv_data = key;
		if ((rc = mdb_put(txn, st.cmdage, &ak, &av, 0)) != 0)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return rc;
	log_info("command results: %zu from before their ages were kept "
	         "are remembered from now on",
	    n);
	return 0;
}

int
state_open(const char *dir, uint64_t map_size)
{
	MDB_txn *txn;
	int rc;

	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		rc = -errno;
		log_warn("mkdir %s", dir);
		return rc;
	}
	pthread_mutex_init(&st.dbi_mu, NULL);
	pthread_rwlock_init(&st.grow_lock, NULL);
	snprintf(env_dir, sizeof(env_dir), "%s", dir);
	if ((rc = mdb_env_create(&st.env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(st.env, 4096)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st.env, 512)) != 0 ||
	    (rc = mdb_env_set_mapsize(st.env, (size_t)map_size)) != 0)
		goto fail;
	if ((rc = mdb_env_open(st.env, dir, MDB_NOTLS, 0640)) != 0)
		goto fail;
	{
		MDB_envinfo info;

		/* the file's size, if it grew past map_size before */
		mdb_env_info(st.env, &info);
		st.map_size = info.me_mapsize;
	}
	if ((rc = mdb_txn_begin(st.env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st.meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "cmds", MDB_CREATE, &st.cmds)) != 0 ||
	    (rc = mdb_dbi_open(txn, "cmdage", MDB_CREATE, &st.cmdage)) != 0 ||
	    (rc = mdb_dbi_open(txn, "snaps", MDB_CREATE, &st.snaps)) != 0 ||
	    (rc = mdb_dbi_open(txn, "dead", MDB_CREATE, &st.dead)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = cmdage_migrate(txn)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return 0;
fail:
	log_warnx("LMDB environment %s: %s", dir, mdb_strerror(rc));
	if (st.env != NULL)
		mdb_env_close(st.env);
	st.env = NULL;
	return ef_err_from_mdb(rc);
}

void
state_close(void)
{
	if (st.env == NULL)
		return;
	mdb_env_sync(st.env, 1);
	mdb_env_close(st.env);
	st.env = NULL;
}

struct dbi_open {
	const char *name;
	unsigned flags;
	MDB_dbi *dbi;
};

struct dbi_drop {
	MDB_dbi dbi;
	int del;
};

static int
dbi_open_op(MDB_txn *txn, void *arg)
{
	struct dbi_open *o = arg;

	return mdb_dbi_open(txn, o->name, o->flags, o->dbi);
}

static int
dbi_drop_op(MDB_txn *txn, void *arg)
{
	struct dbi_drop *d = arg;

	return mdb_drop(txn, d->dbi, d->del);
}

/* Runs op(txn, arg) in its own write transaction under dbi_mu, as LMDB
 * wants for opening and dropping databases; grows a full map and runs
 * it again. 0 or the LMDB error. */
static int
dbi_txn(const char *what, int (*op)(MDB_txn *txn, void *arg), void *arg)
{
	MDB_txn *txn;
	int rc;

	pthread_mutex_lock(&st.dbi_mu);
	do {
		if ((rc = state_begin(0, &txn)) != 0)
			break;
		if ((rc = op(txn, arg)) == 0)
			rc = state_commit(txn, what);
		else
			state_abort(txn);
	} while (rc == MDB_MAP_FULL && state_grow(what) == 0);
	pthread_mutex_unlock(&st.dbi_mu);
	return rc;
}

int
state_dbi(const char *name, int create, MDB_dbi *dbi)
{
	struct dbi_open o = { name, create ? MDB_CREATE : 0, dbi };

	return dbi_txn(name, dbi_open_op, &o);
}

int
state_drop(MDB_dbi dbi, int del)
{
	struct dbi_drop d = { dbi, del };

	return dbi_txn("drop", dbi_drop_op, &d);
}

int
state_begin(int rdonly, MDB_txn **txn)
{
	int rc;

	pthread_rwlock_rdlock(&st.grow_lock);
	begun_map = st.map_size;
	rc = mdb_txn_begin(st.env, NULL, rdonly ? MDB_RDONLY : 0, txn);
	if (rc != 0)
		pthread_rwlock_unlock(&st.grow_lock);
	return rc;
}

int
state_commit(MDB_txn *txn, const char *what)
{
	int rc;

	rc = mdb_txn_commit(txn);
	pthread_rwlock_unlock(&st.grow_lock);
	/* MDB_MAP_FULL: the caller grows the map and says so; a full disk:
	 * state_wait_space says so */
	if (rc != 0 && rc != MDB_MAP_FULL && !disk_full(rc))
		log_warnx("%s: LMDB commit: %s", what, mdb_strerror(rc));
	return rc;
}

void
state_abort(MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&st.grow_lock);
}

/*
 * Is rc, from a commit, a full disk? ENOSPC and EDQUOT are; so is EIO
 * when the filesystem has less than 1 MiB left: LMDB reports a short
 * write, which is how a full disk usually ends a page write, as EIO.
 */
static int
disk_full(int rc)
{
	struct statvfs sv;

	if (rc == ENOSPC || rc == EDQUOT)
		return 1;
	return rc == EIO && statvfs(env_dir, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < (1u << 20);
}

MDB_dbi
state_db(enum state_db which)
{
	switch (which) {
	case STATE_META:
		return st.meta;
	case STATE_CMDS:
		return st.cmds;
	case STATE_CMDAGE:
		return st.cmdage;
	case STATE_SNAPS:
		return st.snaps;
	case STATE_DEAD:
		break;
	}
	return st.dead;
}

int
state_wait_space(struct runner *r, const char *what, int rc,
    const volatile int *stop)
{
	static uint64_t last_log; /* atomic */
	uint64_t now = now_ms(), prev;

	if (!disk_full(rc))
		return 0;
	if (r->stopping || (stop != NULL && *stop))
		return 0;
	prev = __atomic_load_n(&last_log, __ATOMIC_RELAXED);
	if (now - prev >= 10000 &&
	    __atomic_compare_exchange_n(&last_log, &prev, now, 0,
	        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		log_warnx("%s: LMDB commit: %s; the disk is full, retrying "
		          "until there is space",
		    what, mdb_strerror(rc));
	runner_nap(r, 500);
	return !r->stopping && (stop == NULL || !*stop);
}

int
state_grow(const char *what)
{
	uint64_t to;
	int rc = 0;

	pthread_rwlock_wrlock(&st.grow_lock);
	if (st.map_size != begun_map)
		goto out; /* another thread grew it meanwhile: just retry */
	to = st.map_size * 2;
	if ((rc = mdb_env_set_mapsize(st.env, (size_t)to)) != 0) {
		log_warnx("%s: LMDB map full at %" PRIu64 " bytes and it "
		          "cannot grow to %" PRIu64 ": %s",
		    what, st.map_size, to, mdb_strerror(rc));
		goto out;
	}
	log_info("%s: LMDB map full: grown from %" PRIu64 " to %" PRIu64
	         " bytes, retrying",
	    what, st.map_size, to);
	st.map_size = to;
	state_count_grow();
out:
	pthread_rwlock_unlock(&st.grow_lock);
	return rc;
}

void
state_count_grow(void)
{
	__atomic_add_fetch(&st.grows, 1, __ATOMIC_RELAXED);
}

void
state_map_figures(uint64_t *map_bytes, uint64_t *grows)
{
	pthread_rwlock_rdlock(&st.grow_lock);
	*map_bytes = st.map_size;
	pthread_rwlock_unlock(&st.grow_lock);
	*grows = __atomic_load_n(&st.grows, __ATOMIC_RELAXED);
}

int
state_checkpoint_get(MDB_txn *txn, const char *name, uint64_t *gen,
    uint64_t *next, uint8_t last_id[UUID_LEN], int *has_id)
{
	char key[IPC_NAME_MAX + 8];
	MDB_val k, v;
	int rc;

	k.mv_size = (size_t)snprintf(key, sizeof(key), "fold/%s", name);
	k.mv_data = key;
	if ((rc = mdb_get(txn, st.meta, &k, &v)) != 0)
		return rc;
	/* 16 bytes: a checkpoint from before the event id was kept */
	if (v.mv_size != 16 && v.mv_size != 16 + UUID_LEN)
		return MDB_CORRUPTED;
	*gen = get_le64(v.mv_data);
	*next = get_le64((const uint8_t *)v.mv_data + 8);
	if (has_id != NULL)
		*has_id = v.mv_size == 16 + UUID_LEN;
	if (last_id != NULL) {
		memset(last_id, 0, UUID_LEN);
		if (v.mv_size == 16 + UUID_LEN)
			memcpy(last_id, (const uint8_t *)v.mv_data + 16,
			    UUID_LEN);
	}
	return 0;
}

int
state_checkpoint_put(MDB_txn *txn, const char *name, uint64_t gen,
    uint64_t next, const uint8_t last_id[UUID_LEN])
{
	char key[IPC_NAME_MAX + 8];
	uint8_t val[16 + UUID_LEN];
	MDB_val k, v = { sizeof(val), val };

	k.mv_size = (size_t)snprintf(key, sizeof(key), "fold/%s", name);
	k.mv_data = key;
	put_le64(val, gen);
	put_le64(val + 8, next);
	if (last_id != NULL)
		memcpy(val + 16, last_id, UUID_LEN);
	else
		memset(val + 16, 0, UUID_LEN);
	return mdb_put(txn, st.meta, &k, &v, 0);
}

int
state_backup(const char *dir, uint64_t *bytes, char *why, size_t whylen)
{
	char file[PATH_MAX + 16], parent[PATH_MAX], *slash;
	int rc;

	*bytes = 0;
	if ((rc = backupdir_check_name(dir, 16, why, whylen)) != 0)
		return rc;
	snprintf(file, sizeof(file), "%s/data.mdb", dir);
	if (mkdir(dir, 0750) != 0) {
		rc = -errno;
		snprintf(why, whylen, "mkdir %s: %s", dir, strerror(errno));
		return rc;
	}
	if ((rc = backupdir_copy_env(st.env, dir, "runnerd's state", bytes,
	         why, whylen)) != 0)
		goto fail;
	snprintf(parent, sizeof(parent), "%s", dir);
	if ((slash = strrchr(parent, '/')) != NULL)
		slash[slash == parent] = '\0';
	if ((rc = fsync_path(parent, 1)) != 0) {
		snprintf(why, whylen, "fsync of the copy in %s: %s", dir,
		    strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	*bytes = 0;
	unlink(file);
	rmdir(dir);
	return rc;
}
