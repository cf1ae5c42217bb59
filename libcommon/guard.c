/* SPDX-License-Identifier: MIT */
/*
 * guard.c - the thread that keeps nng endpoints alive, and dialers that
 * re-dial themselves (see guard.h for why).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "guard.h"
#include "log.h"

/*
 * The thread runs while there are endpoints: removing the last one (or
 * guard_shutdown()) stops it and waits for it, so that a process may
 * close its last socket and call nng_fini() or exit at once.
 */
static pthread_mutex_t guard_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t guard_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t guard_done_cv = PTHREAD_COND_INITIALIZER;
static struct guard_entry *guard_list;
static pthread_t guard_thr;
static int guard_running;
static int guard_stopping;

uint64_t
guard_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
guard_cond_init(pthread_mutex_t *mu, pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_mutex_init(mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

int
guard_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t end_ms)
{
	struct timespec until;

	until.tv_sec = (time_t)(end_ms / 1000);
	until.tv_nsec = (long)(end_ms % 1000) * 1000000L;
	return pthread_cond_timedwait(cv, mu, &until) == ETIMEDOUT ?
	    ETIMEDOUT :
	    0;
}

static int trace_on = -1; /* -1: not looked at yet */

int
guard_tracing(void)
{
	int on = __atomic_load_n(&trace_on, __ATOMIC_RELAXED);

	if (on < 0) {
		on = getenv("EF_NNG_TRACE") != NULL;
		__atomic_store_n(&trace_on, on, __ATOMIC_RELAXED);
	}
	return on;
}

void
guard_trace(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (!guard_tracing())
		return;
	n = snprintf(line, sizeof(line), "trace %llu ",
	    (unsigned long long)guard_now_ms());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}

uint64_t
guard_counter(nng_stat *s, const char *name)
{
	nng_stat *c;

	if (s == NULL || (c = nng_stat_find(s, name)) == NULL)
		return 0;
	return nng_stat_value(c);
}

/*
 * nng 1.5.2's nng_stat_find_listener() and nng_stat_find_dialer() return
 * the first scope of their kind whatever the endpoint: look by id.
 */
nng_stat *
guard_find(nng_stat *root, const char *kind, uint64_t id)
{
	nng_stat *s, *c;

	for (s = nng_stat_child(root); s != NULL; s = nng_stat_next(s)) {
		if (nng_stat_type(s) != NNG_STAT_SCOPE ||
		    strcmp(nng_stat_name(s), kind) != 0)
			continue;
		if ((c = nng_stat_find(s, "id")) != NULL &&
		    nng_stat_value(c) == id)
			return s;
	}
	return NULL;
}

static void *
guard_main(void *arg)
{
	struct guard_entry *e;
	struct timespec until;
	nng_stat *stats;

	(void)arg;
	uint64_t last = guard_now_ms();

	pthread_mutex_lock(&guard_mu);
	while (!guard_stopping && guard_list != NULL) {
		if (nng_stats_get(&stats) == 0) {
			uint64_t now = guard_now_ms();

			if (now - last > 10 * GUARD_TICK_MS)
				guard_trace("guard: tick %llu ms after the "
				            "last",
				    (unsigned long long)(now - last));
			last = now;

			for (e = guard_list; e != NULL; e = e->next)
				e->check(e, stats, now);
			nng_stats_free(stats);
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += GUARD_TICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&guard_cv, &guard_mu, &until);
	}
	guard_running = 0;
	pthread_cond_broadcast(&guard_done_cv);
	pthread_mutex_unlock(&guard_mu);
	return NULL;
}

/* Under guard_mu: stops the thread and waits until it has ended. */
static void
guard_stop_locked(void)
{
	guard_stopping = 1;
	pthread_cond_broadcast(&guard_cv);
	while (guard_running)
		pthread_cond_wait(&guard_done_cv, &guard_mu);
}

int
guard_add(struct guard_entry *e)
{
	int rc = 0;

	pthread_mutex_lock(&guard_mu);
	e->next = guard_list;
	guard_list = e;
	if (!guard_running) {
		guard_stopping = 0;
		if (pthread_create(&guard_thr, NULL, guard_main, NULL) != 0) {
			guard_list = e->next;
			rc = -EAGAIN;
		} else {
			pthread_detach(guard_thr);
			guard_running = 1;
		}
	}
	pthread_mutex_unlock(&guard_mu);
	return rc;
}

void
guard_remove(struct guard_entry *e)
{
	struct guard_entry **pp;

	pthread_mutex_lock(&guard_mu);
	for (pp = &guard_list; *pp != NULL; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	if (guard_list == NULL && guard_running)
		guard_stop_locked();
	pthread_mutex_unlock(&guard_mu);
}

void
guard_shutdown(void)
{
	pthread_mutex_lock(&guard_mu);
	guard_list = NULL;
	if (guard_running)
		guard_stop_locked();
	pthread_mutex_unlock(&guard_mu);
}

/*
 * Dialers. A wedged dialer has no pipe and has made no attempt since
 * its "other" counter last moved; a live one retries within its
 * reconnect time (at most 100 ms here), which moves a counter, or gets
 * a pipe. So a dialer is re-dialed only after DIALER_STILL_MS without
 * a pipe and without activity following a moved "other": re-dialing a
 * live one would close a connection in the middle of its handshake,
 * which is exactly what wedges the daemon's listener (and makes it drop
 * every other client: listen.h).
 */
#define DIALER_STILL_MS 150
/*
 * A connection that has not finished its handshake after this long has
 * landed in a listener that no longer accepts (a wedged one, or an old
 * generation: listen.h): give up on it and dial again.
 */
#define DIALER_STUCK_MS 500
/*
 * A connection that ended (a counter moved, no pipe was removed in the
 * same tick) and whose pipe nng has still not removed after this long:
 * nng's reaper is stuck (guard.h). A slow reaper on a busy machine
 * takes milliseconds; it is given far more before the socket is made
 * to dial again on its own.
 */
#define DIALER_ENDED_MS 500

int
pipeset_note(struct pipeset *ps, uint32_t id, int add)
{
	int i;

	for (i = 0; i < ps->n; i++)
		if (ps->ids[i] == id)
			break;
	if (add && i == ps->n && ps->n < PIPESET_MAX)
		ps->ids[ps->n++] = id;
	else if (!add && i < ps->n)
		ps->ids[i] = ps->ids[--ps->n];
	return ps->n;
}

static void
dialer_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct ef_dialer *ed = arg;
	int n;

	if (ev == NNG_PIPE_EV_ADD_POST)
		__atomic_add_fetch(&ed->added, 1, __ATOMIC_RELEASE);
	else
		__atomic_add_fetch(&ed->removed, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&ed->mu);
	n = pipeset_note(&ed->ps, (uint32_t)nng_pipe_id(p),
	    ev == NNG_PIPE_EV_ADD_POST);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		ed->newest = (uint32_t)nng_pipe_id(p);
		ed->newest_at = guard_now_ms();
	}
	pthread_mutex_unlock(&ed->mu);
	__atomic_store_n(&ed->pipes, n, __ATOMIC_RELAXED);
	guard_trace("pipe %s id %u dialer %d: pipes %d",
	    ev == NNG_PIPE_EV_ADD_POST ? "added" : "removed",
	    (unsigned)nng_pipe_id(p), nng_dialer_id(nng_pipe_dialer(p)), n);
}

/* Sum of the dialer's counters: any attempt moves it. */
static uint64_t
dialer_activity(nng_stat *ds)
{
	nng_stat *c;
	uint64_t sum = 0;

	for (c = ds != NULL ? nng_stat_child(ds) : NULL; c != NULL;
	     c = nng_stat_next(c))
		if (nng_stat_type(c) == NNG_STAT_COUNTER)
			sum += nng_stat_value(c);
	return sum;
}

/*
 * Closes the dialer and dials again. Closing a dialer ends only its own
 * connection attempt. (Leaving the old one open instead was tried: under
 * load a live dialer is sometimes taken for a stopped one, and every
 * such re-dial then left one more dialer retrying, until a gateway spun
 * at 100% CPU with 1,483 of them against a missing runner.sock. Closing
 * a truly stopped dialer can wedge nng 1.5.2's reaper (guard.h), which
 * nngx_close() bounds.)
 */
static void
dialer_redial(struct ef_dialer *ed, uint64_t now)
{
	int rv;

	nng_dialer_close(ed->d);
	ed->other = ed->activity = ed->ended = 0;
	ed->suspect = 0;
	ed->ended_at = 0;
	ed->still_since = now;
	if ((rv = nng_dial(ed->sock, ed->url, &ed->d, NNG_FLAG_NONBLOCK)) !=
	    0) {
		log_warnx("%s: cannot dial again: %s", ed->url,
		    nng_strerror(rv));
		ed->suspect = 1;
		return;
	}
	guard_trace("dialer %d: dialing (re-dial)", nng_dialer_id(ed->d));
	__atomic_add_fetch(&ed->redials, 1, __ATOMIC_RELAXED);
}

/*
 * Watches for a connection that ended while its pipe stays counted
 * (guard.h): 1 when the dialer must dial again. An end is explained by
 * any pipe removed or added since it was seen.
 */
static int
dialer_ended_unremoved(struct ef_dialer *ed, uint64_t ended, int pipes,
    uint64_t now)
{
	uint64_t added = __atomic_load_n(&ed->added, __ATOMIC_ACQUIRE);
	uint64_t removed = __atomic_load_n(&ed->removed, __ATOMIC_ACQUIRE);
	int moved = ended != ed->ended;

	ed->ended = ended;
	if (moved && pipes > 0 && removed == ed->seen_removed &&
	    ed->ended_at == 0) {
		ed->ended_at = now;
		ed->ended_added = added;
		ed->ended_removed = removed;
	}
	ed->seen_removed = removed;
	if (ed->ended_at == 0)
		return 0;
	if (pipes == 0 || added != ed->ended_added ||
	    removed != ed->ended_removed) {
		ed->ended_at = 0;
		return 0;
	}
	return now - ed->ended_at >= DIALER_ENDED_MS;
}

/* The trace of a dialer whose counters moved: each non-zero counter. */
static void
dialer_trace_counters(struct ef_dialer *ed, nng_stat *ds, int pipes)
{
	char buf[400];
	size_t n = 0;
	nng_stat *c;

	buf[0] = '\0';
	for (c = ds != NULL ? nng_stat_child(ds) : NULL;
	     c != NULL && n < sizeof(buf) - 40; c = nng_stat_next(c))
		if (nng_stat_type(c) == NNG_STAT_COUNTER &&
		    nng_stat_value(c) != 0)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n,
			    " %s=%llu", nng_stat_name(c),
			    (unsigned long long)nng_stat_value(c));
	guard_trace("dialer %d%s: pipes %d, counters%s", nng_dialer_id(ed->d),
	    ds == NULL ? " (no stats)" : "", pipes, buf);
}

static void
dialer_check(struct guard_entry *g, nng_stat *stats, uint64_t now)
{
	struct ef_dialer *ed = (struct ef_dialer *)g;
	nng_stat *ds;
	uint64_t other, activity, ended;
	int pipes;

	ds = guard_find(stats, "dialer", (uint64_t)nng_dialer_id(ed->d));
	other = guard_counter(ds, "other");
	ended = guard_counter(ds, "disconnect") + other;
	activity = dialer_activity(ds);
	pipes = __atomic_load_n(&ed->pipes, __ATOMIC_RELAXED);
	if (dialer_ended_unremoved(ed, ended, pipes, now)) {
		log_warnx("%s: the connection ended but nng 1.5 has not "
		          "removed it for %d ms (its reaper thread is stuck); "
		          "dialing again",
		    ed->url, DIALER_ENDED_MS);
		/* the stuck pipe's removal, when it comes, finds no id */
		pthread_mutex_lock(&ed->mu);
		ed->ps.n = 0;
		pthread_mutex_unlock(&ed->mu);
		__atomic_store_n(&ed->pipes, 0, __ATOMIC_RELAXED);
		guard_trace("dialer %d: ended, unremoved: re-dial",
		    nng_dialer_id(ed->d));
		dialer_redial(ed, now);
		return;
	}
	if (__atomic_exchange_n(&ed->kick, 0, __ATOMIC_RELAXED)) {
		guard_trace("dialer %d: kicked, pipes %d",
		    nng_dialer_id(ed->d), pipes);
		ed->suspect = 1;
	}
	if (other != ed->other)
		ed->suspect = 1;
	if (activity != ed->activity && guard_tracing())
		dialer_trace_counters(ed, ds, pipes);
	if (activity != ed->activity || other != ed->other || pipes > 0)
		ed->still_since = now;
	ed->activity = activity;
	ed->other = other;
	if (pipes > 0) {
		ed->suspect = 0;
		return;
	}
	if (now - ed->still_since <
	    (ed->suspect ? DIALER_STILL_MS : DIALER_STUCK_MS))
		return;
	guard_trace("dialer %d: still %llu ms%s: re-dial",
	    nng_dialer_id(ed->d), (unsigned long long)(now - ed->still_since),
	    ed->suspect ? " (suspect)" : "");
	dialer_redial(ed, now);
	log_debug("%s: connection attempts stopped after nng 1.5's "
	          "handshake bug; dialing again",
	    ed->url);
}

void
guard_pipe_notify(nng_socket sock, int pre, nng_pipe_cb cb, void *arg)
{
	if (pre)
		nng_pipe_notify(sock, NNG_PIPE_EV_ADD_PRE, cb, arg);
	nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, cb, arg);
	nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, cb, arg);
}

int
guard_end(struct guard_entry *e, nng_socket sock)
{
	if (e->check == NULL)
		return 0;
	guard_remove(e);
	e->check = NULL;
	guard_pipe_notify(sock, 1, NULL, NULL);
	return 1;
}

int
dialer_open(struct ef_dialer *ed, nng_socket sock, const char *url)
{
	int rv;

	memset(ed, 0, sizeof(*ed));
	pthread_mutex_init(&ed->mu, NULL);
	ed->sock = sock;
	ed->g.check = dialer_check;
	ed->still_since = guard_now_ms();
	snprintf(ed->url, sizeof(ed->url), "%s", url);
	guard_pipe_notify(sock, 0, dialer_pipe_cb, ed);
	if ((rv = nng_dial(sock, url, &ed->d, NNG_FLAG_NONBLOCK)) != 0)
		return rv;
	if (guard_add(&ed->g) != 0)
		return NNG_ENOMEM;
	return 0;
}

void
dialer_close(struct ef_dialer *ed)
{
	if (ed != NULL)
		(void)guard_end(&ed->g, ed->sock);
}

int
dialer_pipes(const struct ef_dialer *ed)
{
	return __atomic_load_n(&ed->pipes, __ATOMIC_RELAXED);
}

uint64_t
dialer_added(const struct ef_dialer *ed)
{
	return __atomic_load_n(&ed->added, __ATOMIC_ACQUIRE);
}

void
dialer_answered(struct ef_dialer *ed, nng_pipe p)
{
	if (nng_pipe_id(p) > 0)
		__atomic_store_n(&ed->answered, (uint32_t)nng_pipe_id(p),
		    __ATOMIC_RELAXED);
}

int
dialer_drop_unanswered(struct ef_dialer *ed)
{
	uint32_t ids[PIPESET_MAX], answered;
	uint64_t now = guard_now_ms();
	int i, n = 0;

	answered = __atomic_load_n(&ed->answered, __ATOMIC_RELAXED);
	pthread_mutex_lock(&ed->mu);
	for (i = 0; i < ed->ps.n; i++)
		if (ed->ps.ids[i] != answered &&
		    (ed->ps.ids[i] != ed->newest ||
		        now - ed->newest_at >= DIALER_ORPHAN_MS))
			ids[n++] = ed->ps.ids[i];
	pthread_mutex_unlock(&ed->mu);
	for (i = 0; i < n; i++) {
		nng_pipe p = { ids[i] };

		/* an id already gone makes nng_pipe_close fail: harmless */
		if (nng_pipe_close(p) == 0) {
			__atomic_add_fetch(&ed->dropped, 1, __ATOMIC_RELAXED);
			guard_trace("pipe %u: connected but never answered: "
			            "closed",
			    (unsigned)ids[i]);
			log_debug(
			    "%s: a connection that never brought a reply "
			    "(a listener that stopped accepting, nng 1.5): "
			    "closed; connecting again",
			    ed->url);
		}
	}
	return n;
}

void
dialer_kick(struct ef_dialer *ed)
{
	__atomic_store_n(&ed->kick, 1, __ATOMIC_RELAXED);
}

/* Closing sockets without hanging (guard.h). */
struct closer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	nng_socket sock;
	int done;
	int abandoned;
};

static int closes_hung; /* atomic */

static void
closer_free(struct closer *c)
{
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void *
closer_main(void *arg)
{
	struct closer *c = arg;
	int abandoned;

	nng_close(c->sock);
	pthread_mutex_lock(&c->mu);
	c->done = 1;
	abandoned = c->abandoned;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (abandoned)
		closer_free(c);
	return NULL;
}

int
nngx_close(nng_socket s)
{
	struct closer *c;
	pthread_t thr;
	uint64_t end;
	int rc = 0;

	if (nng_socket_id(s) <= 0)
		return 0;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		nng_close(s);
		return 0;
	}
	guard_cond_init(&c->mu, &c->cv);
	c->sock = s;
	if (pthread_create(&thr, NULL, closer_main, c) != 0) {
		closer_free(c);
		nng_close(s);
		return 0;
	}
	pthread_detach(thr);
	end = guard_now_ms() + NNGX_CLOSE_WAIT_MS;
	pthread_mutex_lock(&c->mu);
	while (!c->done)
		if (guard_cond_wait(&c->cv, &c->mu, end) == ETIMEDOUT &&
		    !c->done)
			break;
	if (!c->done) {
		c->abandoned = 1;
		rc = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&c->mu);
	if (rc == 0) {
		closer_free(c);
		return 0;
	}
	__atomic_add_fetch(&closes_hung, 1, __ATOMIC_RELAXED);
	log_warnx("nng did not close a socket in %d ms (nng 1.5's reaper "
	          "is stuck); leaving it to the process's exit",
	    NNGX_CLOSE_WAIT_MS);
	return rc;
}

void
nngx_fini(void)
{
	guard_shutdown();
	if (__atomic_load_n(&closes_hung, __ATOMIC_RELAXED) == 0)
		nng_fini();
}

int
nngx_recv_wait(nng_socket s, nng_msg **m, int ms)
{
	struct pollfd pfd = { .events = POLLIN };
	int rv;

	rv = nng_recvmsg(s, m, NNG_FLAG_NONBLOCK);
	if (rv != NNG_EAGAIN)
		return rv;
	if ((rv = nng_socket_get_int(s, NNG_OPT_RECVFD, &pfd.fd)) != 0)
		return rv;
	if (poll(&pfd, 1, ms) <= 0)
		return NNG_ETIMEDOUT; /* quiet, or a signal: the caller loops
		                       */
	rv = nng_recvmsg(s, m, NNG_FLAG_NONBLOCK);
	return rv == NNG_EAGAIN ? NNG_ETIMEDOUT : rv;
}
