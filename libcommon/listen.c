/* SPDX-License-Identifier: MIT */
/*
 * listen.c - self-healing nng listeners in generations (see listen.h
 * and guard.h).
 *
 * Locking: el->mu guards gens[]; nng's pipe callbacks take it to count a
 * generation's pipes. nng_listener_close() runs without it (it may call
 * the callbacks).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "errors.h"
#include "listen.h"
#include "log.h"

/* The private path of generation gen: DIR/.BASE.PID.GEN */
static void
gen_path(const struct ef_listener *el, uint64_t gen, char *buf, size_t len,
    int relative)
{
	char d[4096], b[4096];

	snprintf(d, sizeof(d), "%s", el->path);
	snprintf(b, sizeof(b), "%s", el->path);
	if (relative)
		snprintf(buf, len, ".%s.%ld.%llu", basename(b), (long)getpid(),
		    (unsigned long long)gen);
	else
		snprintf(buf, len, "%s/.%s.%ld.%llu", dirname(d), basename(b),
		    (long)getpid(), (unsigned long long)gen);
}

/* Points the public name at generation gen (atomically). 0 or -errno. */
static int
gen_publish(struct ef_listener *el, uint64_t gen)
{
	char target[4200], tmp[4200];

	gen_path(el, gen, target, sizeof(target), 1);
	gen_path(el, gen, tmp, sizeof(tmp), 0);
	strncat(tmp, ".lnk", sizeof(tmp) - strlen(tmp) - 1);
	(void)unlink(tmp);
	if (symlink(target, tmp) != 0)
		return -errno;
	if (rename(tmp, el->path) != 0) {
		int rc = -errno;

		(void)unlink(tmp);
		return rc;
	}
	return 0;
}

/*
 * Under el->mu: starts a new current generation (ipc), or the one
 * listener (other schemes). 0 or a negative errno.
 */
static int
gen_start(struct ef_listener *el)
{
	char url[4300], priv[4200];
	struct listen_gen *g;
	nng_listener l;
	uint64_t gen = el->next_gen++;
	int rv, i;

	if (el->ngens == LISTEN_GENS)
		return -ENOMEM;
	if (el->path[0] != '\0') {
		gen_path(el, gen, priv, sizeof(priv), 0);
		snprintf(url, sizeof(url), "ipc://%s", priv);
	} else
		snprintf(url, sizeof(url), "%s", el->url);
	if ((rv = nng_listener_create(&l, el->sock, url)) != 0)
		return ef_err_from_nng(rv);
	if (el->perms && el->path[0] != '\0')
		nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, el->perms);
	if ((rv = nng_listener_start(l, 0)) != 0) {
		nng_listener_close(l);
		return ef_err_from_nng(rv);
	}
	if (el->path[0] != '\0' && (rv = gen_publish(el, gen)) != 0) {
		log_warnx("%s: cannot point %s at %s: %s", el->url, el->path,
		    priv, strerror(-rv));
		nng_listener_close(l);
		return -EADDRINUSE;
	}
	for (i = 0; i < el->ngens; i++)
		el->gens[i].current = 0;
	g = &el->gens[el->ngens++];
	memset(g, 0, sizeof(*g));
	g->l = l;
	g->id = (uint32_t)nng_listener_id(l);
	g->current = 1;
	return 0;
}

static struct listen_gen *
gen_find(struct ef_listener *el, uint32_t id)
{
	int i;

	for (i = 0; i < el->ngens; i++)
		if (el->gens[i].id == id)
			return &el->gens[i];
	return NULL;
}

static void
listener_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct ef_listener *el = arg;
	struct listen_gen *g;
	uint32_t id = (uint32_t)nng_listener_id(nng_pipe_listener(p));

	if (ev == NNG_PIPE_EV_ADD_POST)
		__atomic_add_fetch(&el->added, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&el->mu);
	if ((g = gen_find(el, id)) != NULL)
		(void)pipeset_note(&g->ps, (uint32_t)nng_pipe_id(p),
		    ev != NNG_PIPE_EV_REM_POST);
	pthread_mutex_unlock(&el->mu);
}

/*
 * Guard tick. A moved "other" counter on the current generation is an
 * accept that ended with an error nng does not recover from (the
 * handshake bug, or resource exhaustion): a new generation takes the
 * name. Old generations go LISTEN_DRAIN_MS after their last client.
 */
static void
listener_check(struct guard_entry *ge, nng_stat *stats, uint64_t now)
{
	struct ef_listener *el = (struct ef_listener *)ge;
	nng_listener gone[LISTEN_GENS];
	int ngone = 0, i, rv, wedged = 0;
	uint64_t other;

	pthread_mutex_lock(&el->mu);
	for (i = 0; i < el->ngens; i++) {
		struct listen_gen *g = &el->gens[i];

		other = guard_counter(guard_find(stats, "listener", g->id),
		    "other");
		if (other != g->other && g->current)
			wedged = 1;
		g->other = other;
	}
	if (wedged && el->path[0] == '\0') {
		/*
		 * tcp: the old listener holds the address, so it is closed
		 * first (below, without el->mu: closing runs the pipe
		 * callbacks) and the new one started at the next tick, and
		 * at every tick after until the address is free again.
		 */
		gone[ngone++] = el->gens[0].l;
		el->ngens = 0;
		el->relisten = 1;
		log_debug("%s: a peer hung up during the handshake, which "
		          "stops nng 1.5's listener; listening again",
		    el->url);
	} else if (wedged) {
		if (el->ngens == LISTEN_GENS) {
			/* too many old ones: the oldest goes with its clients
			 */
			gone[ngone++] = el->gens[0].l;
			memmove(&el->gens[0], &el->gens[1],
			    sizeof(el->gens[0]) * (size_t)--el->ngens);
		}
		if ((rv = gen_start(el)) != 0)
			log_warnx("%s: cannot listen again: %s", el->url,
			    strerror(-rv));
		else {
			__atomic_add_fetch(&el->restarts, 1, __ATOMIC_RELAXED);
			log_debug(
			    "%s: a peer hung up during the handshake, "
			    "which stops nng 1.5's listener; a new one took "
			    "its name",
			    el->url);
		}
	} else if (el->relisten) {
		if ((rv = gen_start(el)) == 0) {
			el->relisten = 0;
			__atomic_add_fetch(&el->restarts, 1, __ATOMIC_RELAXED);
			if (el->relisten_failed)
				log_info("%s: listening again", el->url);
			el->relisten_failed = 0;
		} else if (!el->relisten_failed++)
			log_warnx("%s: cannot listen again yet: %s; retrying",
			    el->url, strerror(-rv));
	}
	for (i = 0; i < el->ngens;) {
		struct listen_gen *g = &el->gens[i];

		if (g->current || g->ps.n > 0)
			g->empty_since = 0;
		else if (g->empty_since == 0)
			g->empty_since = now;
		if (g->empty_since != 0 &&
		    now - g->empty_since >= LISTEN_DRAIN_MS) {
			gone[ngone++] = g->l;
			*g = el->gens[--el->ngens];
		} else
			i++;
	}
	pthread_mutex_unlock(&el->mu);
	for (i = 0; i < ngone; i++)
		nng_listener_close(gone[i]);
}

/*
 * ipc: takes the name's lock and removes what a dead predecessor left
 * (the public name, its private sockets and links).
 */
static int
listener_claim(struct ef_listener *el)
{
	char lock[4200], d[4096], b[4096], pre[4200], f[8400];
	const char *dn;
	struct dirent *de;
	DIR *dir;

	snprintf(lock, sizeof(lock), "%s.lock", el->path);
	if ((el->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0660)) < 0)
		return -errno;
	if (flock(el->lockfd, LOCK_EX | LOCK_NB) != 0) {
		close(el->lockfd);
		el->lockfd = -1;
		return -EADDRINUSE;
	}
	(void)unlink(el->path);
	snprintf(d, sizeof(d), "%s", el->path);
	snprintf(b, sizeof(b), "%s", el->path);
	snprintf(pre, sizeof(pre), ".%s.", basename(b));
	dn = dirname(d);
	if ((dir = opendir(dn)) == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL)
		if (strncmp(de->d_name, pre, strlen(pre)) == 0) {
			snprintf(f, sizeof(f), "%s/%s", dn, de->d_name);
			(void)unlink(f);
		}
	closedir(dir);
	return 0;
}

int
listener_open(struct ef_listener *el, nng_socket sock, const char *url,
    int perms)
{
	int rv;

	memset(el, 0, sizeof(*el));
	el->sock = sock;
	el->g.check = listener_check;
	el->lockfd = -1;
	snprintf(el->url, sizeof(el->url), "%s", url);
	if (strncmp(url, "ipc://", 6) == 0) {
		char priv[4200];

		snprintf(el->path, sizeof(el->path), "%s", url + 6);
		/* a private name too long for a unix socket: one listener on
		 * the public name, healed as tcp's are */
		gen_path(el, UINT32_MAX, priv, sizeof(priv), 0);
		if (strlen(priv) + 4 >= 108)
			el->path[0] = '\0';
	}
	el->perms = perms;
	pthread_mutex_init(&el->mu, NULL);
	if (el->path[0] != '\0' && (rv = listener_claim(el)) != 0)
		return rv;
	guard_pipe_notify(sock, 1, listener_pipe_cb, el);
	pthread_mutex_lock(&el->mu);
	rv = gen_start(el);
	pthread_mutex_unlock(&el->mu);
	if (rv != 0)
		return rv;
	if (guard_add(&el->g) != 0)
		return -ENOMEM;
	return 0;
}

void
listener_close(struct ef_listener *el)
{
	if (el == NULL || !guard_end(&el->g, el->sock))
		return;
	/* new clients find no name and fail at once; the generations go
	 * with the socket */
	if (el->path[0] != '\0')
		(void)unlink(el->path);
	if (el->lockfd >= 0)
		close(el->lockfd);
	el->lockfd = -1;
}
