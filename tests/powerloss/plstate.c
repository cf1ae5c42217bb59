/* SPDX-License-Identifier: MIT */
/*
 * plstate.c - plfs's two versions of every file and directory and the
 * power cut between them (see plstate.h; the rules are in plfs.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plstate.h"

struct pl_stats stats;
struct node *root;
static struct node all = { .next = &all, .prev = &all };
static uint64_t next_ino = 1;

static void
die(const char *what)
{
	fprintf(stderr, "plfs: %s: out of memory\n", what);
	abort();
}

static struct page *
page_get(struct page *p)
{
	if (p != NULL)
		p->refs++;
	return p;
}

static void
page_put(struct page *p)
{
	if (p != NULL && --p->refs == 0) {
		free(p);
		stats.pages--;
	}
}

static struct page *
page_new(const struct page *from)
{
	struct page *p = malloc(sizeof(*p));

	if (p == NULL)
		die("page");
	if (from != NULL)
		memcpy(p->data, from->data, PG);
	else
		memset(p->data, 0, PG);
	p->refs = 1;
	stats.pages++;
	return p;
}

/* Grows or shrinks c's page table to n entries (new ones NULL). */
void
content_resize(struct content *c, size_t n)
{
	size_t i;

	for (i = n; i < c->npg; i++)
		page_put(c->pg[i]);
	if (n > c->cap || n < c->cap / 4) {
		size_t cap = n < 16 ? 16 : n + n / 2;
		struct page **pg = realloc(c->pg, cap * sizeof(*pg));

		if (pg == NULL)
			die("page table");
		c->pg = pg;
		c->cap = cap;
	}
	for (i = c->npg; i < n; i++)
		c->pg[i] = NULL;
	c->npg = n;
}

/* Page i of c, private to c and allocated, ready to be written. */
static uint8_t *
content_wpage(struct content *c, size_t i)
{
	struct page *p = c->pg[i];

	if (p == NULL || p->refs > 1) {
		c->pg[i] = page_new(p);
		page_put(p);
	}
	return c->pg[i]->data;
}

/* Sets c's size; bytes past it in the last page become zeros, so that
 * growing the file later shows zeros, as on a disk. */
void
content_set_size(struct content *c, uint64_t size)
{
	size_t n = (size_t)((size + PG - 1) / PG);

	if (n < c->npg)
		content_resize(c, n);
	if (size % PG != 0 && n <= c->npg && c->pg[n - 1] != NULL &&
	    size < c->size) {
		uint8_t *d = content_wpage(c, n - 1);

		memset(d + size % PG, 0, PG - size % PG);
	}
	c->size = size;
}

/* dst becomes a copy of src that shares its pages. */
void
content_share(struct content *dst, const struct content *src)
{
	size_t i;

	content_resize(dst, src->npg);
	for (i = 0; i < src->npg; i++)
		if (dst->pg[i] != src->pg[i]) {
			page_put(dst->pg[i]);
			dst->pg[i] = page_get(src->pg[i]);
		}
	dst->size = src->size;
}

static void
content_free(struct content *c)
{
	content_resize(c, 0);
	free(c->pg);
	memset(c, 0, sizeof(*c));
}

static void
dents_clear(struct dents *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->v[i].name);
	d->n = 0;
}

void
dents_add(struct dents *d, const char *name, struct node *n)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct dent *v = realloc(d->v, cap * sizeof(*v));

		if (v == NULL)
			die("directory");
		d->v = v;
		d->cap = cap;
	}
	if ((d->v[d->n].name = strdup(name)) == NULL)
		die("name");
	d->v[d->n++].node = n;
}

void
dents_copy(struct dents *dst, const struct dents *src)
{
	size_t i;

	dents_clear(dst);
	for (i = 0; i < src->n; i++)
		dents_add(dst, src->v[i].name, src->v[i].node);
}

struct dent *
dents_find(const struct dents *d, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strlen(d->v[i].name) == len &&
		    memcmp(d->v[i].name, name, len) == 0)
			return &d->v[i];
	return NULL;
}

void
dents_del(struct dents *d, struct dent *e)
{
	free(e->name);
	*e = d->v[--d->n];
}

struct node *
node_new(mode_t mode)
{
	struct node *n = calloc(1, sizeof(*n));

	if (n == NULL)
		die("node");
	n->mode = mode;
	n->ino = next_ino++;
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	n->ctime = n->mtime;
	n->next = &all;
	n->prev = all.prev;
	all.prev->next = n;
	all.prev = n;
	stats.nodes++;
	return n;
}

static void
node_free(struct node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	content_free(&n->cur);
	content_free(&n->dur);
	dents_clear(&n->ents);
	dents_clear(&n->dents);
	free(n->ents.v);
	free(n->dents.v);
	free(n);
	stats.nodes--;
}

static void
mark(struct node *n)
{
	size_t i;

	if (n->mark)
		return;
	n->mark = true;
	for (i = 0; i < n->ents.n; i++)
		mark(n->ents.v[i].node);
	for (i = 0; i < n->dents.n; i++)
		mark(n->dents.v[i].node);
}

/* Frees the nodes that no current or durable entry names and that
 * nobody has open. */
void
collect(void)
{
	struct node *n, *next;

	for (n = all.next; n != &all; n = n->next)
		n->mark = false;
	mark(root);
	for (n = all.next; n != &all; n = n->next)
		if (n->opens > 0)
			mark(n);
	for (n = all.next; n != &all; n = next) {
		next = n->next;
		if (!n->mark)
			node_free(n);
	}
}

/* The node at path in the current namespace, or NULL. */
struct node *
resolve(const char *path)
{
	struct node *n = root;
	struct dent *e;
	const char *p = path, *q;

	while (*p == '/')
		p++;
	while (*p != '\0') {
		if (!S_ISDIR(n->mode))
			return NULL;
		for (q = p; *q != '\0' && *q != '/'; q++)
			;
		if ((e = dents_find(&n->ents, p, (size_t)(q - p))) == NULL)
			return NULL;
		n = e->node;
		for (p = q; *p == '/'; p++)
			;
	}
	return n;
}

/* The directory holding path's last component, and that component. */
int
resolve_parent(const char *path, struct node **dir, const char **name)
{
	char buf[4096];
	const char *slash = strrchr(path, '/');
	size_t len;

	if (slash == NULL || slash[1] == '\0')
		return -EINVAL;
	len = (size_t)(slash - path);
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len);
	buf[len] = '\0';
	*dir = resolve(buf);
	if (*dir == NULL)
		return -ENOENT;
	if (!S_ISDIR((*dir)->mode))
		return -ENOTDIR;
	*name = slash + 1;
	if (strlen(*name) > 255)
		return -ENAMETOOLONG;
	return 0;
}

void
touch(struct node *n)
{
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	n->ctime = n->mtime;
}

/* Power cut. */

static unsigned
rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) & 0x7fff;
}

static void
cut_file(struct node *n, bool torn, unsigned *seed)
{
	struct content *c = &n->cur, *d = &n->dur;
	uint64_t size = d->size;
	size_t i;

	if (torn && c->size != d->size && rnd(seed) % 2)
		size = c->size;
	if (size != c->size || size != d->size)
		stats.resized++;
	/* the result is built in d: durable pages, some dirty ones kept */
	if (c->npg > d->npg)
		content_resize(d, c->npg);
	for (i = 0; i < d->npg; i++) {
		struct page *p = i < c->npg ? c->pg[i] : NULL;

		if (p == d->pg[i])
			continue;
		if (torn && rnd(seed) % 2) {
			page_put(d->pg[i]);
			d->pg[i] = page_get(p);
			stats.kept_pages++;
		} else
			stats.lost_pages++;
	}
	d->size = d->npg * (uint64_t)PG; /* so that set_size zeroes the tail */
	content_set_size(d, size);
	content_share(c, d);
}

static void
cut_dir(struct node *n, bool torn, unsigned *seed)
{
	bool same = n->ents.n == n->dents.n;
	size_t i;

	for (i = 0; same && i < n->ents.n; i++) {
		struct dent *e = dents_find(&n->dents, n->ents.v[i].name,
		    strlen(n->ents.v[i].name));

		same = e != NULL && e->node == n->ents.v[i].node;
	}
	if (same)
		return;
	if (torn && rnd(seed) % 2) {
		dents_copy(&n->dents, &n->ents);
		stats.kept_dirs++;
	} else {
		dents_copy(&n->ents, &n->dents);
		stats.reverted_dirs++;
	}
}

void
power_cut(bool torn, unsigned seed)
{
	struct node *n;

	stats.lost_pages = stats.kept_pages = stats.resized = 0;
	stats.reverted_dirs = stats.kept_dirs = 0;
	snprintf(stats.mode, sizeof(stats.mode), "%s", torn ? "torn" : "drop");
	stats.seed = seed;
	for (n = all.next; n != &all; n = n->next) {
		if (S_ISDIR(n->mode))
			cut_dir(n, torn, &seed);
		else
			cut_file(n, torn, &seed);
	}
	stats.cuts++;
	collect();
	fprintf(stderr,
	    "plfs: cut %" PRIu64 " (%s, seed %u): %" PRIu64
	    " unsynced pages lost, %" PRIu64 " kept, %" PRIu64 " sizes "
	    "changed, %" PRIu64 " directories reverted, %" PRIu64 " kept\n",
	    stats.cuts, stats.mode, stats.seed, stats.lost_pages,
	    stats.kept_pages, stats.resized, stats.reverted_dirs,
	    stats.kept_dirs);
}

/* Writes len bytes at off into n's current contents. */
void
node_write(struct node *n, const char *buf, size_t len, uint64_t off)
{
	size_t done = 0, i, o, k, need = (size_t)((off + len + PG - 1) / PG);

	if (need > n->cur.npg)
		content_resize(&n->cur, need);
	while (done < len) {
		i = (size_t)((off + done) / PG);
		o = (size_t)((off + done) % PG);
		k = PG - o < len - done ? PG - o : len - done;
		memcpy(content_wpage(&n->cur, i) + o, buf + done, k);
		done += k;
	}
	if (off + len > n->cur.size)
		n->cur.size = off + len;
	touch(n);
	stats.writes++;
	stats.write_bytes += len;
}
