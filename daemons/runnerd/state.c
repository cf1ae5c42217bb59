/* SPDX-License-Identifier: MIT */
/*
 * state.c - runnerd's LMDB environment (DATA_DIR/runner/): one
 * environment, named databases for fold checkpoints ("meta"), command
 * results ("cmds"), aggregate snapshots ("snaps"), dead letters ("dead")
 * and one per projection and generation ("fold/NAME/GEN").
 *
 * Caveats: open the environment after any fork, never before. The map
 * is reserved once, large and sparse (map_size); MDB_MAP_FULL is
 * reported to the caller, which stops what it was doing and says to
 * raise map_size. Named databases are opened under dbi_mu, in their own
 * write transaction, as LMDB requires. Every commit is durable (LMDB's
 * default sync): callers batch their writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "runnerd.h"

struct state st;

int
state_open(const char *dir, uint64_t map_size)
{
	MDB_txn *txn;
	int rc;

	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		log_warn("mkdir %s", dir);
		return -1;
	}
	pthread_mutex_init(&st.dbi_mu, NULL);
	if ((rc = mdb_env_create(&st.env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(st.env, 4096)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st.env, 512)) != 0 ||
	    (rc = mdb_env_set_mapsize(st.env, (size_t)map_size)) != 0)
		goto fail;
	if ((rc = mdb_env_open(st.env, dir, MDB_NOTLS, 0640)) != 0)
		goto fail;
	if ((rc = mdb_txn_begin(st.env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st.meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "cmds", MDB_CREATE, &st.cmds)) != 0 ||
	    (rc = mdb_dbi_open(txn, "snaps", MDB_CREATE, &st.snaps)) != 0 ||
	    (rc = mdb_dbi_open(txn, "dead", MDB_CREATE, &st.dead)) != 0) {
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
	return -1;
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

int
state_dbi(const char *name, int create, MDB_dbi *dbi)
{
	MDB_txn *txn;
	int rc;

	pthread_mutex_lock(&st.dbi_mu);
	if ((rc = mdb_txn_begin(st.env, NULL, 0, &txn)) == 0) {
		rc = mdb_dbi_open(txn, name, create ? MDB_CREATE : 0, dbi);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	pthread_mutex_unlock(&st.dbi_mu);
	return rc;
}

int
state_drop(MDB_dbi dbi, int del)
{
	MDB_txn *txn;
	int rc;

	pthread_mutex_lock(&st.dbi_mu);
	if ((rc = mdb_txn_begin(st.env, NULL, 0, &txn)) == 0) {
		if ((rc = mdb_drop(txn, dbi, del)) == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	pthread_mutex_unlock(&st.dbi_mu);
	return rc;
}

int
state_begin(int rdonly, MDB_txn **txn)
{
	return mdb_txn_begin(st.env, NULL, rdonly ? MDB_RDONLY : 0, txn);
}

int
state_commit(MDB_txn *txn, const char *what)
{
	int rc;

	if ((rc = mdb_txn_commit(txn)) != 0)
		log_warnx("%s: LMDB commit: %s%s", what, mdb_strerror(rc),
		    rc == MDB_MAP_FULL ? " (raise map_size)" : "");
	return rc;
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

static int
fsync_path(const char *path, int dir)
{
	int fd, rc = 0;

	fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int
state_backup(const char *dir, uint64_t *bytes, char *why, size_t whylen)
{
	char file[PATH_MAX + 16], parent[PATH_MAX], *slash;
	struct stat sb;
	int rc;

	*bytes = 0;
	if (dir[0] != '/' || strlen(dir) > PATH_MAX - 16 ||
	    strstr(dir, "/../") != NULL) {
		snprintf(why, whylen, "%s: the backup directory must be an "
		    "absolute path without \"..\"", dir);
		return -EINVAL;
	}
	if (mkdir(dir, 0750) != 0) {
		rc = -errno;
		snprintf(why, whylen, "mkdir %s: %s", dir, strerror(errno));
		return rc;
	}
	snprintf(file, sizeof(file), "%s/data.mdb", dir);
	if ((rc = mdb_env_copy2(st.env, dir, MDB_CP_COMPACT)) != 0) {
		snprintf(why, whylen, "copy of runnerd's state into %s: %s",
		    dir, mdb_strerror(rc));
		rc = rc > 0 ? -rc : -EIO;
		goto fail;
	}
	/* mdb_env_copy2 does not fsync what it wrote */
	snprintf(parent, sizeof(parent), "%s", dir);
	if ((slash = strrchr(parent, '/')) != NULL)
		slash[slash == parent] = '\0';
	if ((rc = fsync_path(file, 0)) != 0 || (rc = fsync_path(dir, 1)) != 0 ||
	    (rc = fsync_path(parent, 1)) != 0) {
		snprintf(why, whylen, "fsync of the copy in %s: %s", dir,
		    strerror(-rc));
		goto fail;
	}
	if (stat(file, &sb) == 0)
		*bytes = (uint64_t)sb.st_size;
	return 0;
fail:
	unlink(file);
	rmdir(dir);
	return rc;
}
