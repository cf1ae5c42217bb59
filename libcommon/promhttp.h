/* SPDX-License-Identifier: MIT */
/*
 * promhttp.h - GET /metrics, Prometheus's text, on a listener of its
 * own (libmicrohttpd, one internal thread): the HTTP side that
 * gatewayd's and mirrord's metrics.c share. Each renders its own page;
 * this file parses HOST:PORT, listens, answers 405 to a method other
 * than GET and HEAD, 404 to another path, and 200 with the page.
 * Linked only by the daemons that serve /metrics (promhttp_dep).
 */
#ifndef EF_PROMHTTP_H
#define EF_PROMHTTP_H

#include <stddef.h>

struct promhttp {
	const char *listen;    /* HOST:PORT; HOST may be empty (any) */
	unsigned int conns;    /* connections served at once at most */
	int dual_stack;        /* an unspecified IPv6 host takes IPv4 too */
	const char *not_found; /* the body of a 404 */
	/* the page, malloc'd (freed here), its length in *len; called on
	 * the listener's thread, one scrape at a time */
	char *(*render)(void *arg, size_t *len);
	void *arg;
};

/*
 * Listens on p->listen (p stays valid until promhttp_stop); *handle is
 * what promhttp_stop takes. 0, or with err filled: -EINVAL (not
 * HOST:PORT), -EADDRNOTAVAIL (the address does not resolve),
 * -EADDRINUSE (cannot listen there).
 */
int promhttp_start(const struct promhttp *p, void **handle, char *err,
    size_t errlen);

/* Stops the listener of *handle, if any, and clears it. */
void promhttp_stop(void **handle);

#endif
