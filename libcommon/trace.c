/* SPDX-License-Identifier: MIT */
/* trace.c - see trace.h. */
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "trace.h"

static uint64_t next_id;

uint64_t
trace_id_new(void)
{
	uint64_t id, seed;

	if (__atomic_load_n(&next_id, __ATOMIC_RELAXED) == 0) {
		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(seed))
			seed = (uint64_t)getpid() << 40 ^ (uint64_t)time(NULL);
		/* the first caller's seed wins */
		id = 0;
		__atomic_compare_exchange_n(&next_id, &id, seed | 1, 0,
		    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	do
		id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED);
	while (id == 0);
	return id;
}

int
trace_is_outcome(int status)
{
	return status == EF_S_VERSION_CONFLICT ||
	    status == EF_S_STREAM_NOT_FOUND || status == EF_S_NOT_FOUND ||
	    status == EF_S_REJECTED;
}

void
trace_reply(uint64_t rid, int op, const char *what, int status,
    const char *msg)
{
#define TRACE_LINE                                                            \
	"%s refused (request " TRACE_FMT "%s%s): %s: %s", ipc_op_name(op),    \
	    rid, what ? " " : "", what ? what : "", ipc_status_name(status),  \
	    msg
	if (trace_is_outcome(status))
		log_debug(TRACE_LINE);
	else
		log_warnx(TRACE_LINE);
#undef TRACE_LINE
}
