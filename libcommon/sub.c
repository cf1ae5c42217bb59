/* SPDX-License-Identifier: MIT */
/*
 * sub.c - catch-up-then-live subscription (see client.h, DESIGN.md
 * "Subscriptions across processes"). The pub socket is only a hint:
 * what is delivered always follows the next expected position, and
 * anything the hint skipped is read again over req/rep.
 */
#include <inttypes.h>
#include <string.h>

#include "client.h"

#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/util/platform.h>
#include "log.h"

#define SUB_IDLE_MS 250 /* poll the store after this long without news */
/* ...waiting in slices this long, so that *stop ends an idle
 * subscription at once */
#define SUB_SLICE_MS 20
#define SUB_RETRY_MS 100
#define SUB_GAP      (-1000) /* internal: re-read from the store */

struct sub_state {
	const struct sub_params *p;
	struct ef_client store;
	uint64_t next;        /* next global position to deliver (all) */
	uint64_t next_ver;    /* next stream version (stream mode) */
	uint64_t seen_global; /* stream mode: all positions < this seen */
	uint8_t stream[UUID_LEN];
	int check;      /* last_id is the event at next - 1 */
	int want_check; /* p->check_log, whole log */
	uint8_t last_id[UUID_LEN];
};

static int
stopped(const struct sub_params *p)
{
	return p->stop != NULL && __atomic_load_n(p->stop, __ATOMIC_RELAXED);
}

/* Whether ev is the next event of the whole log for s: if so, s moves
 * past it (and checks it at the next read, with check_log). */
static int
next_in_log(struct sub_state *s, const struct ef_event *ev)
{
	if (ev->global_position != s->next)
		return 0;
	s->next++;
	memcpy(s->last_id, ev->event_id, UUID_LEN);
	s->check = s->want_check;
	return 1;
}

/*
 * With s->check, the first event of the page rr must be the one last
 * delivered (at s->next - 1, with s->last_id): 1 (said) if it is not,
 * the log having changed underneath (a restored store).
 */
static int
log_changed(const struct sub_state *s, const struct ipc_read_rep *rr)
{
	struct ef_event ev;
	const char *why;

	if (rr->head >= s->next && rr->nevents > 0 &&
	    ipc_event_decode(&rr->events->via.array.ptr[0], &ev, &why) == 0 &&
	    ev.global_position == s->next - 1 &&
	    memcmp(ev.event_id, s->last_id, UUID_LEN) == 0)
		return 0;
	log_warnx("subscription: the log changed underneath: "
	          "head %" PRIu64 ", %s at position %" PRIu64,
	    rr->head, rr->head < s->next ? "nothing" : "another event",
	    s->next - 1);
	return 1;
}

/*
 * Whether the event ev is delivered: 1 if it is the next one for s (s
 * then moves past it), 0 if it is not, or SUB_GAP to read again from
 * the store.
 */
typedef int (*sub_pick)(struct sub_state *s, const struct ef_event *ev);

/*
 * Decodes the n events of list and delivers those that pick takes: 0, a
 * callback's non-zero value, SUB_GAP from pick, or -EF_S_INTERNAL for a
 * malformed event.
 */
static int
deliver_events(struct sub_state *s, const msgpack_object *list, uint32_t n,
    sub_pick pick)
{
	const struct sub_params *p = s->p;
	struct ef_event ev;
	const char *why;
	uint32_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if (ipc_event_decode(&list->via.array.ptr[i], &ev, &why) != 0)
			return -EF_S_INTERNAL;
		if ((rc = pick(s, &ev)) == 0)
			continue;
		if (rc != 1)
			return rc;
		if ((rc = p->on_event(p->arg, &ev)) != 0)
			return rc;
	}
	return 0;
}

/* sub_pick for the events of a page read from the store. */
static int
pick_read(struct sub_state *s, const struct ef_event *ev)
{
	if (s->p->stream_id == NULL)
		return next_in_log(s, ev);
	if (ev->stream_version != s->next_ver)
		return 0;
	s->next_ver++;
	return 1;
}

/* Whether the page rr, delivered, leaves s caught up. */
static int
caught_up(struct sub_state *s, const struct ipc_read_rep *rr)
{
	if (s->p->stream_id == NULL)
		/* caught up (or from is past the head: wait there) */
		return rr->nevents == 0 || s->next >= rr->head;
	/* Each reply is one snapshot: once every version up to the
	 * stream's last of that moment is delivered, nothing of this
	 * stream below head is missing. */
	if (rr->nevents == 0 || !rr->has_last_version ||
	    s->next_ver > rr->last_version) {
		if (rr->head > s->seen_global)
			s->seen_global = rr->head;
		return 1;
	}
	return 0;
}

/*
 * Reads pages until the head. Returns 0 when caught up, a callback's
 * non-zero value, 1 when stopped, or EF_S_UNAVAILABLE-style positive
 * statuses as negatives (-status) for retry.
 */
static int
sub_catch_up(struct sub_state *s)
{
	const struct sub_params *p = s->p;
	struct client_reply rep;
	struct ipc_read_rep rr;
	uint32_t page = p->page ? p->page : 1000;
	int st, rc, check, more;

	for (;;) {
		if (stopped(p))
			return 1;
		more = 0;
		check = s->check && s->next > 0 && p->stream_id == NULL;
		if (p->stream_id != NULL)
			st = client_read_stream(&s->store, p->stream_id,
			    s->next_ver, page, EF_FORWARD, &rep, &rr);
		else
			st = client_read_all(&s->store,
			    s->next - (uint64_t)check, page, EF_FORWARD, &rep,
			    &rr);
		if (check && st == EF_S_DATA_LOSS) {
			/* the event behind us cannot be read: go on unchecked
			 * rather than stop at damage already passed */
			client_reply_free(&rep);
			s->check = 0; /* until the next delivery */
			continue;
		}
		if (check && st == EF_S_OK && log_changed(s, &rr))
			rc = SUB_LOG_CHANGED;
		else if (st != EF_S_OK &&
		    !(st == EF_S_STREAM_NOT_FOUND && rep.in.body != NULL)) {
			log_debug("subscription read: %.*s",
			    (int)rep.in.message.len, rep.in.message.ptr);
			rc = -st;
		} else if ((rc = deliver_events(s, rr.events, rr.nevents,
		                pick_read)) == 0)
			more = !caught_up(s, &rr);
		client_reply_free(&rep);
		if (!more)
			return rc;
	}
}

/* sub_pick for the events of a published batch. */
static int
pick_pub(struct sub_state *s, const struct ef_event *ev)
{
	if (s->p->stream_id != NULL) {
		if (ev->global_position < s->seen_global ||
		    memcmp(ev->stream_id, s->stream, UUID_LEN) != 0 ||
		    ev->stream_version < s->next_ver)
			return 0;
		if (ev->stream_version > s->next_ver)
			return SUB_GAP; /* missed some: read them */
		s->next_ver++;
		return 1;
	}
	/* the batch holds the event last delivered, and it is another: a
	 * restored store; the read that follows checks it and says so */
	if (s->check && s->next > 0 && ev->global_position == s->next - 1 &&
	    memcmp(ev->event_id, s->last_id, UUID_LEN) != 0)
		return SUB_GAP;
	return next_in_log(s, ev);
}

/* Delivers the events of one published batch that are new. */
static int
sub_deliver_pub(struct sub_state *s, const struct ipc_pub *pub)
{
	int rc;

	if ((rc = deliver_events(s, pub->events, pub->nevents, pick_pub)) != 0)
		return rc;
	if (s->p->stream_id != NULL && pub->last_pos + 1 > s->seen_global)
		s->seen_global = pub->last_pos + 1;
	return 0;
}

/* s's starting position from p. 0 or -EF_S_BAD_UUID. */
static int
sub_init(struct sub_state *s, const struct sub_params *p)
{
	memset(s, 0, sizeof(*s));
	s->p = p;
	if (p->stream_id != NULL) {
		if (uuid_parse(p->stream_id, strlen(p->stream_id), s->stream))
			return -EF_S_BAD_UUID;
		s->next_ver = p->from;
		return 0;
	}
	s->next = p->from;
	s->want_check = p->check_log;
	if ((s->check = p->check_log && p->from_id != NULL && p->from > 0))
		memcpy(s->last_id, p->from_id, UUID_LEN);
	return 0;
}

/* The sub socket, dialled to p->events_url, and s->store to
 * p->store_url. 0, or -EF_S_INTERNAL or -EF_S_INVALID (a bad URL). */
static int
sub_open(struct sub_state *s, nng_socket *sub, struct ef_dialer *dialer)
{
	const struct sub_params *p = s->p;

	if (nng_sub0_open(sub) != 0)
		return -EF_S_INTERNAL;
	nng_socket_set(*sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_int(*sub, NNG_OPT_RECVBUF,
	    p->recv_buf > 0 ? p->recv_buf : 8192);
	nng_socket_set_size(*sub, NNG_OPT_RECVMAXSZ, IPC_MAX_MSG);
	nng_socket_set_ms(*sub, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(*sub, NNG_OPT_RECONNMAXT, 100);
	if (dialer_open(dialer, *sub, p->events_url) != 0 ||
	    client_open(&s->store, p->store_url,
	        p->timeout_ms > 0 ? p->timeout_ms : 2000) != 0) {
		dialer_close(dialer);
		nngx_close(*sub);
		return -EF_S_INVALID;
	}
	return 0;
}

/*
 * Takes one published message m (freed here): delivers what is new in
 * it, or sets *need_read when what it missed must be read from the
 * store. 0, or a callback's non-zero value to stop with.
 */
static int
sub_take(struct sub_state *s, nng_msg *m, int *need_read)
{
	struct ipc_in in;
	struct ipc_pub pub;
	const char *why;
	uint64_t have;
	int rc = 0;

	if (ipc_pub_open(&in, nng_msg_body(m), nng_msg_len(m), &pub, &why) !=
	    0) {
		log_warnx("subscription: bad publish message: %s", why);
		*need_read = 1;
		goto out;
	}
	have = s->p->stream_id != NULL ? s->seen_global : s->next;
	if (pub.last_pos < have) {
		/* already delivered */
	} else if (pub.first_pos > have || pub.events == NULL) {
		*need_read = 1; /* gap: fill it by reading */
	} else if ((rc = sub_deliver_pub(s, &pub)) < 0) {
		*need_read = 1;
		rc = 0;
	}
out:
	ipc_in_close(&in);
	nng_msg_free(m);
	return rc;
}

int
sub_run(const struct sub_params *p)
{
	struct sub_state s;
	struct ef_dialer dialer;
	nng_socket sub;
	nng_msg *m;
	int rc, rv, caught_up = 0, need_read = 1;
	uint64_t quiet_since = 0, conns = 0;

	if ((rc = sub_init(&s, p)) != 0 ||
	    (rc = sub_open(&s, &sub, &dialer)) != 0)
		return rc;
	while (!stopped(p)) {
		/*
		 * A new connection to the publisher may be to another stored
		 * (restarted, perhaps on a restored data directory): what it
		 * publishes next cannot show a change below it, so read (and
		 * check, with check_log) before taking its batches.
		 */
		if (dialer_added(&dialer) != conns) {
			conns = dialer_added(&dialer);
			need_read = 1;
		}
		if (need_read) {
			rc = sub_catch_up(&s);
			if (rc == SUB_LOG_CHANGED)
				break;
			if (rc < 0) {
				/* store away: retry, keep our position */
				nng_msleep(SUB_RETRY_MS);
				rc = 0;
				continue;
			}
			if (rc != 0)
				break;
			need_read = 0;
			quiet_since = guard_now_ms();
			if (!caught_up) {
				caught_up = 1;
				if (p->on_caught_up != NULL &&
				    (rc = p->on_caught_up(p->arg)) != 0)
					break;
			}
		}
		rv = nngx_recv_wait(sub, &m, SUB_SLICE_MS);
		if (rv == NNG_ETIMEDOUT) {
			/* quiet: check for anything dropped */
			if (guard_now_ms() - quiet_since >= SUB_IDLE_MS)
				need_read = 1;
			continue;
		}
		quiet_since = guard_now_ms();
		if (rv != 0) {
			rc = -EF_S_INTERNAL;
			break;
		}
		if (dialer_added(&dialer) != conns) {
			nng_msg_free(m);
			continue; /* read first (above) */
		}
		if ((rc = sub_take(&s, m, &need_read)) != 0)
			break;
	}
	client_close(&s.store);
	dialer_close(&dialer);
	nngx_close(sub);
	return rc;
}
