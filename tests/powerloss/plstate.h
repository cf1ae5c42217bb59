/* SPDX-License-Identifier: MIT */
/*
 * plstate.h - plfs's files and directories in two versions, current and
 * durable, and the power cut between them (plstate.c); the FUSE side is
 * plfs.c, whose opening comment gives the rules modelled.
 *
 * Files: a page table of copy-on-write 4 KiB pages per version; an
 * fsync shares the current pages into the durable table. Directories: a
 * list of entries per version. Every node is on one list, so that a cut
 * can visit them all and collect() can free the unreachable ones.
 *
 * Caveats: not thread-safe; plfs.c calls everything here under its one
 * lock. Out of memory aborts (a test filesystem has nothing to save).
 */
#ifndef EF_TEST_PLSTATE_H
#define EF_TEST_PLSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define PG 4096u

struct page {
	unsigned refs;
	uint8_t data[PG];
};

/* A file's contents: a page table (NULL pages are zeros) and a size. */
struct content {
	struct page **pg;
	size_t npg, cap;
	uint64_t size;
};

struct dent {
	char *name;
	struct node *node;
};

struct dents {
	struct dent *v;
	size_t n, cap;
};

struct node {
	struct node *next, *prev; /* every node, for cuts and collection */
	mode_t mode;              /* S_IFREG or S_IFDIR, and permissions */
	uint64_t ino;
	unsigned opens;
	bool mark;
	struct timespec mtime, ctime;
	struct content cur, dur;  /* files */
	struct dents ents, dents; /* directories: current, durable */
};

/* Counters, for the control file and the cut log line. */
struct pl_stats {
	uint64_t writes, write_bytes, fsyncs, dirsyncs, cuts, killed_syncs;
	uint64_t nodes, pages;
	/* the last cut */
	uint64_t lost_pages, kept_pages, resized, reverted_dirs, kept_dirs;
	char mode[8];
	unsigned seed;
};

extern struct pl_stats stats;
extern struct node *root;

/* Grows or shrinks c's page table to n entries (new ones NULL). */
void content_resize(struct content *c, size_t n);
/* Sets c's size; bytes past it in the last page become zeros. */
void content_set_size(struct content *c, uint64_t size);
/* dst becomes a copy of src that shares its pages (an fsync). */
void content_share(struct content *dst, const struct content *src);

/* Directory entries: names are copied; nodes are not owned. */
void dents_add(struct dents *d, const char *name, struct node *n);
void dents_copy(struct dents *dst, const struct dents *src);
struct dent *dents_find(const struct dents *d, const char *name, size_t len);
void dents_del(struct dents *d, struct dent *e);

/* A new node (mode: S_IFREG or S_IFDIR and permissions), on the list. */
struct node *node_new(mode_t mode);
/* Writes len bytes at off into n's current contents. */
void node_write(struct node *n, const char *buf, size_t len, uint64_t off);
/* Sets n's mtime and ctime to now. */
void touch(struct node *n);

/* Frees the nodes no current or durable entry names and nobody has
 * open. */
void collect(void);

/* The node at path in the current namespace, or NULL. */
struct node *resolve(const char *path);
/* The directory holding path's last component, and that component
 * (pointing into path). 0, -EINVAL, -ENAMETOOLONG, -ENOENT, -ENOTDIR. */
int resolve_parent(const char *path, struct node **dir, const char **name);

/* Power cut: drop (torn false) or torn with seed; see plfs.c. */
void power_cut(bool torn, unsigned seed);

#endif
