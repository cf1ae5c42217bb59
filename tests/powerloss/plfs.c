/* SPDX-License-Identifier: MIT */
/*
 * plfs.c - a FUSE filesystem that forgets, on command, everything not yet
 * made durable: the power-loss test's disk. kill -9 cannot show a missing
 * fsync because the kernel's page cache outlives the process; plfs keeps
 * every file in its own memory, in two versions, so a "power cut" can
 * throw the volatile one away (the idea of Jepsen's LazyFS, written here
 * from the rules below, with libfuse3's path API).
 *
 * What is modelled (the rules a daemon may rely on, and no more):
 *   - File data. A write changes the file's current contents at once
 *     (every reader, mmap included, sees it). fsync or fdatasync of that
 *     file makes its current data and size durable. Nothing else does:
 *     not close, not a directory fsync, not time passing.
 *   - Directory entries. create, mkdir, rename, unlink and rmdir change
 *     the current namespace at once; fsync of a directory makes that
 *     directory's current entries durable. A renamed file is durable in
 *     its new place only once the new directory is fsynced; an unlinked
 *     one stays until its directory is.
 *   - A power cut ("cut" written to /.plfs), in one of two modes:
 *       drop  every file's data and size go back to what was last made
 *             durable, every directory's entries likewise: new files
 *             vanish, renames revert, unlinked files come back;
 *       torn  what a real disk may also do: each file's size is either
 *             its durable or its current size, and each 4 KiB page
 *             written since the last fsync is independently either its
 *             new or its old contents (holes read as zeros); each
 *             directory independently keeps all its unsynced entry
 *             changes or none. Seeded, so a failure can be replayed.
 *     After a cut, what is left is both current and durable.
 *   - A flush takes time: "fsync_delay_us N" makes every fsync wait N
 *     microseconds before it takes effect, as a disk's flush would, so
 *     that kills land inside flushes (in RAM an fsync is so quick that
 *     they almost never would).
 *     An fsync whose caller gets SIGKILL meanwhile never takes effect:
 *     the power went while the disk was flushing.
 *   - A 4 KiB page is the unit a disk writes whole or not at all (real
 *     disks promise 512 B or 4 KiB sectors); bytes of a page already
 *     durable are never damaged by a later unsynced write to that page.
 *   - O_SYNC/O_DSYNC writes are durable: the kernel follows each with an
 *     fsync request. sync(2) and syncfs(2) make nothing durable here
 *     (libfuse's path API has no syncfs): a daemon must fsync its files.
 *   - Not modelled: metadata other than size (modes, times, owners are
 *     kept but never lost), hard links (refused), xattrs, O_TMPFILE,
 *     and cross-directory renames are lost or duplicated per directory
 *     (the pessimistic reading; eventfold renames within one directory).
 *     Writable shared mappings: their dirty pages reach plfs when the
 *     kernel writes them back, which may be after a cut; stored maps
 *     read-only.
 *
 * The caller's side (tests/powerloss/plharness.h, used by
 * test_powerloss.c): kill the daemon with SIGKILL first, so that it
 * cannot write after the cut, then write "cut" or "cut torn SEED" to
 * MOUNT/.plfs; reading MOUNT/.plfs gives counters (and what the last cut
 * dropped). The kernel must not serve stale pages after a cut: files are
 * opened without keep_cache (the kernel drops a file's cached pages at
 * every open) and attributes and entries are never cached, so the
 * restarted daemon reads plfs's state.
 * Files are not direct_io, so stored's read-only MAP_SHARED mapping
 * works and stays coherent with its pwrites (both go through the same
 * kernel page cache, written through to plfs).
 *
 * Usage: plfs MOUNTPOINT [libfuse options]; runs in the foreground and
 * unmounts on SIGTERM/SIGINT. Exits 77 when the mount itself fails (no
 * FUSE here), so a test can skip rather than fail.
 *
 * The tree of files and directories in their two versions, and the cut
 * itself, are in plstate.c; this file is the FUSE side, the control file
 * and main.
 *
 * Caveats: one global lock serialises every operation (an fsync's delay
 * is waited outside it); contents live in RAM (copy-on-write 4 KiB pages
 * shared between the two versions, so an fsync costs a pass over the
 * file's page table, not a copy).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plstate.h"

#define CTL_PATH  "/.plfs"
#define CTL_FH    1 /* fi->fh of the control file; nodes are pointers */
#define EXIT_SKIP 77

/* Every operation on plstate.c's tree holds it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* How long an fsync takes (microseconds), as a disk's flush would: set
 * with "fsync_delay_us N" on the control file. */
static unsigned fsync_delay_us;

/* The control file, by path or by handle. */
static bool
is_ctl(const char *path, const struct fuse_file_info *fi)
{
	if (fi != NULL && fi->fh == CTL_FH)
		return true;
	return path != NULL && strcmp(path, CTL_PATH) == 0;
}

/* The node an operation is about: its open handle's, or path's. */
static struct node *
fh_node(const char *path, struct fuse_file_info *fi)
{
	if (fi != NULL && fi->fh != 0 && fi->fh != CTL_FH)
		return (struct node *)(uintptr_t)fi->fh;
	return path != NULL ? resolve(path) : NULL;
}

/* The control file. */

static int
ctl_text(char *buf, size_t cap)
{
	return snprintf(buf, cap,
	    "writes %" PRIu64 "\nwrite_bytes %" PRIu64 "\nfsyncs %" PRIu64
	    "\ndirsyncs %" PRIu64 "\nkilled_syncs %" PRIu64 "\ncuts %" PRIu64
	    "\nnodes %" PRIu64 "\npages %" PRIu64
	    "\nlast_mode %s\nlast_seed %u\n"
	    "last_lost_pages %" PRIu64 "\nlast_kept_pages %" PRIu64
	    "\nlast_resized %" PRIu64 "\nlast_reverted_dirs %" PRIu64
	    "\nlast_kept_dirs %" PRIu64 "\n",
	    stats.writes, stats.write_bytes, stats.fsyncs, stats.dirsyncs,
	    stats.killed_syncs, stats.cuts, stats.nodes, stats.pages,
	    stats.mode[0] ? stats.mode : "none", stats.seed, stats.lost_pages,
	    stats.kept_pages, stats.resized, stats.reverted_dirs,
	    stats.kept_dirs);
}

static int
ctl_command(const char *buf, size_t len)
{
	char cmd[64];
	unsigned seed = 0;

	if (len >= sizeof(cmd))
		return -EINVAL;
	memcpy(cmd, buf, len);
	cmd[len] = '\0';
	cmd[strcspn(cmd, "\n")] = '\0';
	if (strcmp(cmd, "cut") == 0 || strcmp(cmd, "cut drop") == 0)
		power_cut(false, 0);
	else if (sscanf(cmd, "cut torn %u", &seed) == 1)
		power_cut(true, seed);
	else if (sscanf(cmd, "fsync_delay_us %u", &seed) == 1)
		fsync_delay_us = seed;
	else {
		fprintf(stderr,
		    "plfs: unknown command \"%s\" (cut, cut "
		    "drop, cut torn SEED, fsync_delay_us N)\n",
		    cmd);
		return -EINVAL;
	}
	return (int)len;
}

/* FUSE operations; each takes the lock for its whole duration. */

static void *
pl_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* the kernel must never answer from what plfs may have dropped */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->kernel_cache = 0;
	cfg->direct_io = 0;
	cfg->use_ino = 1;
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	return NULL;
}

static void
fill_stat(const struct node *n, struct stat *sb)
{
	memset(sb, 0, sizeof(*sb));
	sb->st_ino = n->ino;
	sb->st_mode = n->mode;
	sb->st_nlink = S_ISDIR(n->mode) ? 2 : 1;
	sb->st_uid = getuid();
	sb->st_gid = getgid();
	sb->st_size = S_ISDIR(n->mode) ? 4096 : (off_t)n->cur.size;
	sb->st_blksize = PG;
	sb->st_blocks = (blkcnt_t)(n->cur.npg * (PG / 512));
	sb->st_mtim = n->mtime;
	sb->st_ctim = n->ctime;
	sb->st_atim = n->mtime;
}

static int
pl_getattr(const char *path, struct stat *sb, struct fuse_file_info *fi)
{
	struct node *n;

	if (is_ctl(path, fi)) {
		memset(sb, 0, sizeof(*sb));
		sb->st_mode = S_IFREG | 0600;
		sb->st_nlink = 1;
		sb->st_size = 4096;
		sb->st_ino = UINT32_MAX;
		return 0;
	}
	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) != NULL)
		fill_stat(n, sb);
	pthread_mutex_unlock(&lock);
	return n != NULL ? 0 : -ENOENT;
}

static int
pl_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
    struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct node *n;
	size_t i;
	int rc = 0;

	(void)off;
	(void)flags;
	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) == NULL)
		rc = -ENOENT;
	else if (!S_ISDIR(n->mode))
		rc = -ENOTDIR;
	else {
		fill(buf, ".", NULL, 0, 0);
		fill(buf, "..", NULL, 0, 0);
		for (i = 0; i < n->ents.n; i++)
			fill(buf, n->ents.v[i].name, NULL, 0, 0);
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

/* A new entry name in path's parent: a new node of the given mode. */
static int
add_entry(const char *path, mode_t mode, struct node **out)
{
	struct node *dir, *n;
	const char *name;
	int rc;

	if ((rc = resolve_parent(path, &dir, &name)) != 0)
		return rc;
	if (dents_find(&dir->ents, name, strlen(name)) != NULL)
		return -EEXIST;
	n = node_new(mode);
	dents_add(&dir->ents, name, n);
	touch(dir);
	*out = n;
	return 0;
}

static int
pl_mkdir(const char *path, mode_t mode)
{
	struct node *n;
	int rc;

	pthread_mutex_lock(&lock);
	rc = add_entry(path, S_IFDIR | (mode & 07777), &n);
	pthread_mutex_unlock(&lock);
	return rc;
}

static int
pl_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct node *n;
	int rc;

	if (strcmp(path, CTL_PATH) == 0)
		return -EEXIST;
	pthread_mutex_lock(&lock);
	if ((rc = add_entry(path, S_IFREG | (mode & 07777), &n)) == 0) {
		n->opens++;
		fi->fh = (uint64_t)(uintptr_t)n;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

/* Opens the file (dir 0) or directory (dir 1) at path into fi. */
static int
open_node(const char *path, struct fuse_file_info *fi, int dir)
{
	struct node *n;
	int rc = 0;

	pthread_mutex_lock(&lock);
	if ((n = resolve(path)) == NULL)
		rc = -ENOENT;
	else if (!S_ISDIR(n->mode) != !dir) /* not the kind asked for */
		rc = dir ? -ENOTDIR : -EISDIR;
	else {
		if (!dir && (fi->flags & O_TRUNC)) {
			content_set_size(&n->cur, 0);
			touch(n);
		}
		n->opens++;
		fi->fh = (uint64_t)(uintptr_t)n;
		/* a file: drop the kernel's pages (see the top) */
		if (!dir)
			fi->keep_cache = 0;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

static int
pl_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, CTL_PATH) == 0) {
		fi->fh = CTL_FH;
		fi->direct_io = 1;
		return 0;
	}
	return open_node(path, fi, 0);
}

static int
pl_opendir(const char *path, struct fuse_file_info *fi)
{
	return open_node(path, fi, 1);
}

static int
pl_release(const char *path, struct fuse_file_info *fi)
{
	struct node *n;

	(void)path;
	if (fi->fh == CTL_FH)
		return 0;
	pthread_mutex_lock(&lock);
	n = (struct node *)(uintptr_t)fi->fh;
	n->opens--;
	if (n->opens == 0)
		collect();
	pthread_mutex_unlock(&lock);
	return 0;
}

static int
pl_read(const char *path, char *buf, size_t len, off_t off,
    struct fuse_file_info *fi)
{
	struct node *n;
	size_t done = 0, i, o, k;

	if (fi->fh == CTL_FH) {
		char text[1024];
		int tl;

		pthread_mutex_lock(&lock);
		tl = ctl_text(text, sizeof(text));
		pthread_mutex_unlock(&lock);
		if (off >= tl)
			return 0;
		k = (size_t)(tl - off) < len ? (size_t)(tl - off) : len;
		memcpy(buf, text + off, k);
		return (int)k;
	}
	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) == NULL) {
		pthread_mutex_unlock(&lock);
		return -EBADF;
	}
	if ((uint64_t)off < n->cur.size) {
		if (len > n->cur.size - (uint64_t)off)
			len = (size_t)(n->cur.size - (uint64_t)off);
		while (done < len) {
			i = (size_t)(((uint64_t)off + done) / PG);
			o = (size_t)(((uint64_t)off + done) % PG);
			k = PG - o < len - done ? PG - o : len - done;
			if (i < n->cur.npg && n->cur.pg[i] != NULL)
				memcpy(buf + done, n->cur.pg[i]->data + o, k);
			else
				memset(buf + done, 0, k);
			done += k;
		}
	}
	pthread_mutex_unlock(&lock);
	return (int)done;
}

static int
pl_write(const char *path, const char *buf, size_t len, off_t off,
    struct fuse_file_info *fi)
{
	struct node *n;

	if (fi->fh == CTL_FH) {
		int rc;

		pthread_mutex_lock(&lock);
		rc = ctl_command(buf, len);
		pthread_mutex_unlock(&lock);
		return rc;
	}
	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) == NULL) {
		pthread_mutex_unlock(&lock);
		return -EBADF;
	}
	node_write(n, buf, len, (uint64_t)off);
	pthread_mutex_unlock(&lock);
	return (int)len;
}

static int
pl_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct node *n;
	int rc = 0;

	if (is_ctl(path, fi))
		return 0;
	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) == NULL)
		rc = -ENOENT;
	else if (S_ISDIR(n->mode))
		rc = -EISDIR;
	else {
		content_set_size(&n->cur, (uint64_t)size);
		touch(n);
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

static int
pl_fallocate(const char *path, int mode, off_t off, off_t len,
    struct fuse_file_info *fi)
{
	struct node *n;
	int rc = 0;

	if (mode != 0)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) == NULL)
		rc = -EBADF;
	else if ((uint64_t)(off + len) > n->cur.size) {
		/* allocation is a size change; the new bytes are zeros */
		content_resize(&n->cur,
		    (size_t)(((uint64_t)(off + len) + PG - 1) / PG));
		n->cur.size = (uint64_t)(off + len);
		touch(n);
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

/* Is SIGKILL pending for thread tid (so it will never see our answer)? */
static bool
being_killed(pid_t tid)
{
	char path[64], line[256];
	unsigned long long mask;
	bool killed = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	if ((f = fopen(path, "re")) == NULL)
		return true; /* gone already */
	while (fgets(line, sizeof(line), f) != NULL)
		if ((sscanf(line, "SigPnd: %llx", &mask) == 1 ||
		        sscanf(line, "ShdPnd: %llx", &mask) == 1) &&
		    (mask & (1ull << (SIGKILL - 1))))
			killed = true;
	fclose(f);
	return killed;
}

/*
 * The flush of a disk takes time (fsync_delay_us). A SIGKILL that
 * arrives meanwhile models a power cut in the middle of the flush: the
 * fsync does not happen (the caller is gone and never learns of it).
 * 0 to go on with the fsync, -EINTR if the caller is being killed.
 */
static int
fsync_wait(void)
{
	pid_t tid = fuse_get_context()->pid;
	uint64_t waited = 0, delay = fsync_delay_us;
	struct timespec step = { 0, 200 * 1000 };

	while (waited < delay) {
		if (being_killed(tid)) {
			pthread_mutex_lock(&lock);
			stats.killed_syncs++;
			pthread_mutex_unlock(&lock);
			return -EINTR;
		}
		nanosleep(&step, NULL);
		waited += 200;
	}
	return 0;
}

static int
pl_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct node *n;
	int rc;

	(void)datasync; /* fdatasync covers data and size: all we model */
	if (fi != NULL && fi->fh == CTL_FH)
		return 0;
	if ((rc = fsync_wait()) != 0)
		return rc;
	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) != NULL) {
		content_share(&n->dur, &n->cur);
		stats.fsyncs++;
	}
	pthread_mutex_unlock(&lock);
	return n != NULL ? 0 : -EBADF;
}

static int
pl_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct node *n;
	int rc;

	(void)datasync;
	if ((rc = fsync_wait()) != 0)
		return rc;
	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) != NULL && S_ISDIR(n->mode)) {
		dents_copy(&n->dents, &n->ents);
		stats.dirsyncs++;
	}
	pthread_mutex_unlock(&lock);
	return n != NULL ? 0 : -ENOENT;
}

static int
remove_entry(const char *path, bool want_dir)
{
	struct node *dir;
	struct dent *e;
	const char *name;
	int rc;

	if ((rc = resolve_parent(path, &dir, &name)) != 0)
		return rc;
	if ((e = dents_find(&dir->ents, name, strlen(name))) == NULL)
		return -ENOENT;
	if (want_dir && !S_ISDIR(e->node->mode))
		return -ENOTDIR;
	if (!want_dir && S_ISDIR(e->node->mode))
		return -EISDIR;
	if (want_dir && e->node->ents.n > 0)
		return -ENOTEMPTY;
	dents_del(&dir->ents, e);
	touch(dir);
	collect();
	return 0;
}

static int
pl_unlink(const char *path)
{
	int rc;

	if (strcmp(path, CTL_PATH) == 0)
		return -EPERM;
	pthread_mutex_lock(&lock);
	rc = remove_entry(path, false);
	pthread_mutex_unlock(&lock);
	return rc;
}

static int
pl_rmdir(const char *path)
{
	int rc;

	pthread_mutex_lock(&lock);
	rc = remove_entry(path, true);
	pthread_mutex_unlock(&lock);
	return rc;
}

static int
do_rename(const char *from, const char *to, unsigned flags)
{
	struct node *fdir, *tdir, *n;
	struct dent *fe, *te;
	const char *fname, *tname;
	int rc;

	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL;
	if ((rc = resolve_parent(from, &fdir, &fname)) != 0 ||
	    (rc = resolve_parent(to, &tdir, &tname)) != 0)
		return rc;
	if ((fe = dents_find(&fdir->ents, fname, strlen(fname))) == NULL)
		return -ENOENT;
	n = fe->node;
	if ((te = dents_find(&tdir->ents, tname, strlen(tname))) != NULL) {
		if (te->node == n)
			return 0;
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		if (S_ISDIR(te->node->mode) != S_ISDIR(n->mode))
			return S_ISDIR(n->mode) ? -ENOTDIR : -EISDIR;
		if (S_ISDIR(te->node->mode) && te->node->ents.n > 0)
			return -ENOTEMPTY;
		te->node = n;
		fe = dents_find(&fdir->ents, fname, strlen(fname));
		dents_del(&fdir->ents, fe);
	} else {
		dents_del(&fdir->ents, fe);
		dents_add(&tdir->ents, tname, n);
	}
	touch(fdir);
	touch(tdir);
	collect();
	return 0;
}

static int
pl_rename(const char *from, const char *to, unsigned flags)
{
	int rc;

	if (strcmp(from, CTL_PATH) == 0 || strcmp(to, CTL_PATH) == 0)
		return -EPERM;
	pthread_mutex_lock(&lock);
	rc = do_rename(from, to, flags);
	pthread_mutex_unlock(&lock);
	return rc;
}

static int
pl_link(const char *from, const char *to)
{
	(void)from;
	(void)to;
	return -EPERM; /* hard links are not modelled */
}

static int
pl_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct node *n;

	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) != NULL)
		n->mode = (n->mode & S_IFMT) | (mode & 07777);
	pthread_mutex_unlock(&lock);
	return n != NULL ? 0 : -ENOENT;
}

static int
pl_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	(void)path;
	(void)uid;
	(void)gid;
	(void)fi;
	return 0; /* owners are not modelled */
}

static int
pl_utimens(const char *path, const struct timespec tv[2],
    struct fuse_file_info *fi)
{
	struct node *n;

	(void)tv;
	pthread_mutex_lock(&lock);
	if ((n = fh_node(path, fi)) != NULL)
		touch(n);
	pthread_mutex_unlock(&lock);
	return n != NULL ? 0 : -ENOENT;
}

static int
pl_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = sv->f_frsize = PG;
	sv->f_blocks = 1u << 20;
	sv->f_bfree = sv->f_bavail = (1u << 20) - (fsblkcnt_t)stats.pages;
	sv->f_files = sv->f_ffree = 1u << 20;
	sv->f_namemax = 255;
	return 0;
}

static const struct fuse_operations pl_ops = {
	.init = pl_init,
	.getattr = pl_getattr,
	.readdir = pl_readdir,
	.mkdir = pl_mkdir,
	.rmdir = pl_rmdir,
	.create = pl_create,
	.open = pl_open,
	.release = pl_release,
	.opendir = pl_opendir,
	.releasedir = pl_release,
	.read = pl_read,
	.write = pl_write,
	.truncate = pl_truncate,
	.fallocate = pl_fallocate,
	.fsync = pl_fsync,
	.fsyncdir = pl_fsyncdir,
	.unlink = pl_unlink,
	.rename = pl_rename,
	.link = pl_link,
	.chmod = pl_chmod,
	.chown = pl_chown,
	.utimens = pl_utimens,
	.statfs = pl_statfs,
};

int
main(int argc, char **argv)
{
	char *args[64];
	int n = 0, i, rc;

	if (argc < 2) {
		fprintf(stderr, "usage: plfs MOUNTPOINT [libfuse options]\n");
		return 2;
	}
	root = node_new(S_IFDIR | 0755);
	args[n++] = argv[0];
	args[n++] = (char *)"-f";
	args[n++] = (char *)"-o";
	/* max_idle_threads set: libfuse 3.14 warns when it is left unset */
	args[n++] = (char *)"fsname=plfs,subtype=plfs,max_idle_threads=8";
	for (i = 1; i < argc && n < 63; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	rc = fuse_main(n, args, &pl_ops, NULL);
	if (rc == 3 || rc == 4) {
		/* fuse_main: 3 = setup failed, 4 = mount failed */
		fprintf(stderr,
		    "plfs: cannot mount %s (is FUSE available "
		    "here? /dev/fuse, and root or fusermount3)\n",
		    argv[1]);
		return EXIT_SKIP;
	}
	return rc;
}
