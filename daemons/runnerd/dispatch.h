/* SPDX-License-Identifier: MIT */
/*
 * dispatch.h - runnerd's request socket (dispatch.c): the handler table
 * on libcommon's request server.
 */
#ifndef EF_RUNNERD_DISPATCH_H
#define EF_RUNNERD_DISPATCH_H

struct runner;

/*
 * Serves the request socket r->runner_url with r->conf.workers
 * contexts; r stays valid until dispatch_stop. 0 or a negative errno
 * (-EADDRINUSE: the name is another's).
 */
int dispatch_start(struct runner *r);
void dispatch_stop(void);

#endif
