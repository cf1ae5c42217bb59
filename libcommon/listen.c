/* SPDX-License-Identifier: MIT */
/*
 * listen.c - self-healing nng listeners (see listen.h and guard.h).
 */
#include <stdio.h>
#include <string.h>

#include "listen.h"
#include "log.h"

static int
listener_start(struct ef_listener *el)
{
	int rv;

	if ((rv = nng_listener_create(&el->l, el->sock, el->url)) != 0)
		return rv;
	if (el->perms && strncmp(el->url, "ipc://", 6) == 0)
		nng_listener_set_int(el->l, NNG_OPT_IPC_PERMISSIONS, el->perms);
	if ((rv = nng_listener_start(el->l, 0)) != 0) {
		nng_listener_close(el->l);
		return rv;
	}
	return 0;
}

static void
listener_pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct ef_listener *el = arg;

	(void)p;
	(void)ev;
	__atomic_add_fetch(&el->added, 1, __ATOMIC_RELAXED);
}

/*
 * Guard tick: a moved "other" counter is an accept that ended with an
 * error nng's listener does not recover from (the handshake bug, or
 * resource exhaustion): re-create the listener.
 */
static void
listener_check(struct guard_entry *g, nng_stat *stats, uint64_t now)
{
	struct ef_listener *el = (struct ef_listener *)g;
	uint64_t other;
	int rv;

	(void)now;
	other = guard_counter(guard_find(stats, "listener",
	    (uint64_t)nng_listener_id(el->l)), "other");
	if (other == el->other)
		return;
	nng_listener_close(el->l);
	el->other = 0;
	if ((rv = listener_start(el)) != 0) {
		/* the next tick tries again */
		el->other = UINT64_MAX;
		log_warnx("%s: cannot listen again: %s", el->url,
		    nng_strerror(rv));
		return;
	}
	__atomic_add_fetch(&el->restarts, 1, __ATOMIC_RELAXED);
	log_debug("%s: a peer hung up during the handshake, which stops "
	    "nng 1.5's listener; listening again", el->url);
}

int
listener_open(struct ef_listener *el, nng_socket sock, const char *url,
    int perms)
{
	int rv;

	memset(el, 0, sizeof(*el));
	el->sock = sock;
	el->g.check = listener_check;
	snprintf(el->url, sizeof(el->url), "%s", url);
	el->perms = perms;
	nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, listener_pipe_added, el);
	if ((rv = listener_start(el)) != 0)
		return rv;
	if (guard_add(&el->g) != 0)
		return NNG_ENOMEM;
	return 0;
}

void
listener_close(struct ef_listener *el)
{
	if (el == NULL || el->g.check == NULL)
		return;
	guard_remove(&el->g);
	el->g.check = NULL;
}
