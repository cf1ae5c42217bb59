/* SPDX-License-Identifier: MIT */
/*
 * harness.c - spawning and driving a real eventfold-stored for the
 * integration tests (see harness.h), and the append load the crash and
 * shutdown tests run against it. Readiness is a deadline-bounded poll:
 * the daemon's own store socket must appear, then STATUS must answer;
 * an early exit of the daemon is noticed at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "clock.h"
#include "harness.h"

#define MAX_TRACKED 64

static pid_t tracked[MAX_TRACKED];
static char *tmpdirs[MAX_TRACKED];
static int ntmpdirs;

uint64_t
h_now_ms(void)
{
	return clock_mono_ms();
}

void
h_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void
track(pid_t pid)
{
	int i;

	for (i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == 0) {
			tracked[i] = pid;
			return;
		}
}

static void
untrack(pid_t pid)
{
	int i;

	for (i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == pid)
			tracked[i] = 0;
}

const char *
h_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	return h_tmpdir_in(base == NULL || *base == '\0' ? "/tmp" : base);
}

const char *
h_tmpdir_in(const char *base)
{
	char tmpl[H_PATH], *d;

	snprintf(tmpl, sizeof(tmpl), "%s/eftest.XXXXXX", base);
	if ((d = mkdtemp(tmpl)) == NULL)
		cr_assert_fail("mkdtemp %s: %s", tmpl, strerror(errno));
	cr_assert_lt(ntmpdirs, MAX_TRACKED);
	tmpdirs[ntmpdirs] = strdup(d);
	cr_assert_not_null(tmpdirs[ntmpdirs]);
	return tmpdirs[ntmpdirs++];
}

static const char *
bin(const char *var)
{
	const char *p = getenv(var);

	if (p == NULL || *p == '\0')
		cr_assert_fail("%s is not set (run the tests through meson)",
		    var);
	return p;
}

void
h_stored_init(struct h_stored *s, const char *dir, const char *const *extra)
{
	int i;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	snprintf(s->data_dir, sizeof(s->data_dir), "%s/data", dir);
	snprintf(s->run_dir, sizeof(s->run_dir), "%s/run", dir);
	snprintf(s->log, sizeof(s->log), "%s/stored.log", dir);
	snprintf(s->store_url, sizeof(s->store_url), "ipc://%s/store.sock",
	    s->run_dir);
	snprintf(s->events_url, sizeof(s->events_url),
	    "ipc://%s/store-events.sock", s->run_dir);
	for (i = 0; extra != NULL && extra[i] != NULL && i < 15; i++)
		s->extra[i] = extra[i];
	s->extra[i] = NULL;
}

/*
 * fork and exec path with argv: stdin from in_fd (or /dev/null), stdout
 * to out_fd or else the file out, stderr to the file err (or with
 * stdout); files are appended to or truncated. The child dies with us
 * (PR_SET_PDEATHSIG) and inherits no other descriptor.
 */
static pid_t
spawn_fd(const char *path, char *const argv[], int in_fd, int out_fd,
    const char *out, const char *err, int append)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC |
	    (append ? O_APPEND : O_TRUNC);
	int ofd, efd, nfd;
	pid_t parent = getpid(), pid;
	sigset_t none;

	/* open in the parent: only async-signal-safe calls after fork */
	if (out_fd >= 0)
		ofd = dup(out_fd);
	else if ((ofd = open(out, flags, 0644)) < 0)
		cr_assert_fail("open %s: %s", out, strerror(errno));
	if (err == NULL || (out != NULL && !strcmp(err, out)))
		efd = dup(ofd);
	else if ((efd = open(err, flags, 0644)) < 0)
		cr_assert_fail("open %s: %s", err, strerror(errno));
	if ((nfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		cr_assert_fail("open /dev/null: %s", strerror(errno));
	sigemptyset(&none);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		cr_assert_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(in_fd >= 0 ? in_fd : nfd, 0) < 0 ||
		    dup2(ofd, 1) < 0 || dup2(efd, 2) < 0)
			_exit(127);
		close_range(3, ~0u, 0);
		execv(path, argv);
		_exit(127);
	}
	close(ofd);
	close(efd);
	close(nfd);
	track(pid);
	return pid;
}

static pid_t
spawn(const char *path, char *const argv[], int in_fd, const char *out,
    const char *err, int append)
{
	return spawn_fd(path, argv, in_fd, -1, out, err, append);
}

pid_t
h_ctl_spawn(const char *const *args, int *out_fd, const char *err_path)
{
	char *argv[32];
	int n = 0, i, p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		cr_assert_fail("pipe: %s", strerror(errno));
	argv[n++] = (char *)"eventfoldctl";
	for (i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	pid = spawn_fd(bin("EF_CTL"), argv, -1, p[1], NULL, err_path, 0);
	close(p[1]);
	*out_fd = p[0];
	return pid;
}

pid_t
h_stored_spawn(struct h_stored *s)
{
	char *argv[32];
	int n = 0, i;

	cr_assert_eq(s->pid, 0, "stored already running (pid %d)",
	    (int)s->pid);
	argv[n++] = (char *)"eventfold-stored";
	argv[n++] = (char *)"-d";
	argv[n++] = (char *)"-f"; /* no system config file */
	argv[n++] = (char *)"/dev/null";
	argv[n++] = (char *)"--data-dir";
	argv[n++] = s->data_dir;
	argv[n++] = (char *)"--runtime-dir";
	argv[n++] = s->run_dir;
	/* segments stay plain unless a test says otherwise (a later
	 * --hot-segments in extra wins): test_archiver.c covers archives */
	argv[n++] = (char *)"--hot-segments";
	argv[n++] = (char *)"1000000";
	for (i = 0; s->extra[i] != NULL; i++)
		argv[n++] = (char *)s->extra[i];
	argv[n] = NULL;
	{
		char path[H_PATH + 16];
		struct stat sb;

		snprintf(path, sizeof(path), "%s/store.sock", s->run_dir);
		if (stat(path, &sb) == 0) {
			s->sock_ino = sb.st_ino;
			s->sock_ctime = sb.st_ctim;
		} else
			s->sock_ino = 0;
	}
	s->pid = spawn(bin("EF_STORED"), argv, -1, s->log, NULL, 1);
	return s->pid;
}

int
h_stored_wait_ready(struct h_stored *s, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	char path[H_PATH + 16];
	struct ef_client c;
	struct client_reply rep;
	struct ipc_status_rep st;
	struct stat sb;
	int wst, rc, opened = 0;

	/*
	 * First the new daemon's socket file (another inode than the one
	 * a killed predecessor left), then STATUS on one client that is
	 * never closed before it has an answer: with nng 1.5.2 a peer that
	 * goes away during the SP handshake wedges the listener for good
	 * (nng issue #1518), so no probe may do that.
	 */
	snprintf(path, sizeof(path), "%s/store.sock", s->run_dir);
	while (h_now_ms() < deadline) {
		if (waitpid(s->pid, &wst, WNOHANG) == s->pid) {
			untrack(s->pid);
			s->pid = 0;
			s->status = wst;
			if (opened)
				client_close(&c);
			return -1;
		}
		if (!opened) {
			if (stat(path, &sb) != 0 ||
			    (sb.st_ino == s->sock_ino &&
			        sb.st_ctim.tv_sec == s->sock_ctime.tv_sec &&
			        sb.st_ctim.tv_nsec == s->sock_ctime.tv_nsec)) {
				h_sleep_ms(2);
				continue;
			}
			if (client_open(&c, s->store_url, 500) != 0)
				cr_assert_fail("client_open %s", s->store_url);
			opened = 1;
		}
		rc = client_status(&c, &rep, &st);
		client_reply_free(&rep);
		if (rc == EF_S_OK) {
			client_close(&c);
			return 0;
		}
	}
	return -2;
}

static void
print_log_tail(const char *path, size_t max)
{
	size_t len;
	char *buf = h_read_file(path, &len), *p;

	if (buf == NULL)
		return;
	p = len > max ? buf + len - max : buf;
	fprintf(stderr, "# --- last %zu bytes of %s ---\n%s\n# ---\n",
	    len > max ? max : len, path, p);
	free(buf);
}

void
h_stored_start(struct h_stored *s)
{
	char *log, *tail;
	size_t len;
	int rc;

	h_stored_spawn(s);
	rc = h_stored_wait_ready(s, 15000);
	if (rc == 0)
		return;
	print_log_tail(s->log, 2000);
	log = h_read_file(s->log, &len);
	tail = log == NULL ? "" : len > 600 ? log + len - 600 : log;
	cr_assert_fail("eventfold-stored did not become ready (%s, wait "
	               "status 0x%x); the end of %s:\n%s",
	    rc == -1 ? "it exited" : "timeout", s->status, s->log, tail);
	free(log);
}

int
h_wait_pid(pid_t pid, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	int st;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			untrack(pid);
			return st;
		}
		if (r < 0 && errno != EINTR) {
			untrack(pid);
			return -1;
		}
		if (h_now_ms() >= deadline)
			return -1;
		h_sleep_ms(1);
	}
}

int
h_stored_stop(struct h_stored *s, int sig, int timeout_ms)
{
	int st;

	if (s->pid == 0)
		return -1;
	kill(s->pid, sig);
	st = h_wait_pid(s->pid, timeout_ms);
	if (st == -1) {
		kill(s->pid, SIGKILL);
		(void)h_wait_pid(s->pid, 10000);
	}
	s->pid = 0;
	s->status = st;
	return st;
}

char *
h_read_file(const char *path, size_t *lenp)
{
	size_t cap = 4096, len = 0;
	char *buf, *nb;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	if ((buf = malloc(cap)) == NULL) {
		close(fd);
		return NULL;
	}
	for (;;) {
		if (len + 1 >= cap) {
			if ((nb = realloc(buf, cap * 2)) == NULL) {
				free(buf);
				close(fd);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

int
h_write_file(const char *path, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) <
	    0)
		return -1;
	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return close(fd);
}

int
h_ctl(const char *dir, const char *const *args, const void *in, size_t inlen,
    int timeout_ms, char **out, char **err)
{
	char opath[H_PATH + 16], epath[H_PATH + 16], ipath[H_PATH + 16];
	char *argv[32];
	int n = 0, i, st, infd = -1;
	pid_t pid;

	snprintf(opath, sizeof(opath), "%s/ctl.out", dir);
	snprintf(epath, sizeof(epath), "%s/ctl.err", dir);
	if (in != NULL) {
		snprintf(ipath, sizeof(ipath), "%s/ctl.in", dir);
		if (h_write_file(ipath, in, inlen) != 0 ||
		    (infd = open(ipath, O_RDONLY | O_CLOEXEC)) < 0)
			cr_assert_fail("cannot write %s", ipath);
	}
	argv[n++] = (char *)"eventfoldctl";
	for (i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	pid = spawn(bin("EF_CTL"), argv, infd, opath, epath, 0);
	if (infd >= 0)
		close(infd);
	st = h_wait_pid(pid, timeout_ms);
	if (st == -1) {
		kill(pid, SIGKILL);
		(void)h_wait_pid(pid, 5000);
	}
	if (out != NULL)
		*out = h_read_file(opath, NULL);
	if (err != NULL)
		*err = h_read_file(epath, NULL);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
h_cleanup(void)
{
	char log[H_PATH + 16];
	const char *keep = getenv("EF_TEST_KEEP");
	int i;

	for (i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] > 0) {
			kill(tracked[i], SIGKILL);
			(void)waitpid(tracked[i], NULL, 0);
			tracked[i] = 0;
		}
	for (i = 0; i < ntmpdirs; i++) {
		snprintf(log, sizeof(log), "%s/stored.log", tmpdirs[i]);
		print_log_tail(log, 1500);
		if (keep != NULL && *keep != '\0')
			fprintf(stderr, "# kept %s\n", tmpdirs[i]);
		else
			nftw(tmpdirs[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
		free(tmpdirs[i]);
		tmpdirs[i] = NULL;
	}
	ntmpdirs = 0;
}

void
h_client(struct ef_client *c, const struct h_stored *s, int timeout_ms)
{
	int rc = client_open(c, s->store_url, timeout_ms);

	cr_assert_eq(rc, 0, "client_open %s: %d", s->store_url, rc);
}

struct ipc_append_req
h_append_req(const char *stream, int kind, uint64_t version,
    const struct ipc_proposed *evs, uint32_t n)
{
	struct ipc_append_req r;

	memset(&r, 0, sizeof(r));
	r.stream_id.ptr = stream;
	r.stream_id.len = (uint32_t)strlen(stream);
	r.kind = (uint8_t)kind;
	r.version = version;
	r.nevents = n;
	r.events = (struct ipc_proposed *)evs;
	return r;
}

int
h_append(struct ef_client *c, const char *stream, int kind, uint64_t version,
    const struct ipc_proposed *evs, uint32_t n, struct h_result *res)
{
	struct ipc_append_req r = h_append_req(stream, kind, version, evs, n);
	struct client_reply rep;
	const char *why;
	int st;

	memset(res, 0, sizeof(*res));
	st = client_append(c, &r, &rep);
	res->status = st;
	snprintf(res->msg, sizeof(res->msg), "%.*s", (int)rep.in.message.len,
	    rep.in.message.ptr ? rep.in.message.ptr : "");
	if (st == EF_S_OK &&
	    (rep.in.body == NULL ||
	        ipc_append_rep_decode(rep.in.body, &res->rep, &why) != 0)) {
		res->status = st = EF_S_INTERNAL;
		snprintf(res->msg, sizeof(res->msg), "bad append reply body");
	}
	if (st == EF_S_VERSION_CONFLICT && rep.in.body != NULL &&
	    ipc_conflict_decode(rep.in.body, &res->conflict, &why) == 0)
		res->has_conflict = true;
	client_reply_free(&rep);
	return st;
}

void
h_call_refused(struct ef_client *c, const struct ipc_out *o, int want,
    const char *needle)
{
	struct client_reply rep;
	int st = client_call(c, o, &rep);

	cr_assert_eq(st, want, "%s, not %s", ipc_status_name(st),
	    ipc_status_name(want));
	cr_assert(rep.in.message.len > 0 &&
	        memmem(rep.in.message.ptr, rep.in.message.len, needle,
	            strlen(needle)) != NULL,
	    "reason: %.*s", (int)rep.in.message.len, rep.in.message.ptr);
	client_reply_free(&rep);
}

static struct h_worker *
worker_at(void *base, size_t size, int i)
{
	return (struct h_worker *)((char *)base + (size_t)i * size);
}

void
h_workers_start(const struct h_stored *s, void *base, size_t size, int n,
    void *(*fn)(void *), int timeout_ms)
{
	struct h_worker *w;
	int i;

	for (i = 0; i < n; i++) {
		w = worker_at(base, size, i);
		h_client(&w->c, s, timeout_ms);
		cr_assert_eq(pthread_create(&w->thr, NULL, fn, w), 0);
	}
}

void
h_workers_join(void *base, size_t size, int n)
{
	int i;

	for (i = 0; i < n; i++)
		pthread_join(worker_at(base, size, i)->thr, NULL);
}

struct ipc_proposed
h_proposed(const char *event_id, const char *type, const char *payload)
{
	struct ipc_proposed p;

	memset(&p, 0, sizeof(p));
	p.event_id.ptr = event_id;
	p.event_id.len = (uint32_t)strlen(event_id);
	p.type.ptr = type;
	p.type.len = (uint32_t)strlen(type);
	p.payload = (const uint8_t *)payload;
	p.payload_len = payload ? (uint32_t)strlen(payload) : 0;
	return p;
}

int
h_append1(struct ef_client *c, const char *stream, int kind, uint64_t version,
    const char *event_id, const char *type, const char *payload,
    struct h_result *res)
{
	struct ipc_proposed p = h_proposed(event_id, type, payload);

	return h_append(c, stream, kind, version, &p, 1, res);
}

uint64_t
h_head(struct ef_client *c)
{
	struct client_reply rep;
	struct ipc_status_rep st;
	uint64_t head = UINT64_MAX;

	if (client_status(c, &rep, &st) == EF_S_OK)
		head = st.head;
	client_reply_free(&rep);
	return head;
}

static void *
dup_bytes(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	if (q != NULL && n)
		memcpy(q, p, n);
	return q;
}

/* Appends the events of one read reply to *evs. */
static int
take_events(const struct ipc_read_rep *rr, struct h_event **evs, size_t *n,
    size_t *cap)
{
	struct ef_event ev;
	const char *why;
	uint32_t i;

	for (i = 0; i < rr->nevents; i++) {
		struct h_event *h;

		if (ipc_event_decode(&rr->events->via.array.ptr[i], &ev,
		        &why) != 0)
			return EF_S_INTERNAL;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 1024;
			*evs = realloc(*evs, *cap * sizeof(**evs));
			if (*evs == NULL)
				return EF_S_INTERNAL;
		}
		h = &(*evs)[(*n)++];
		memset(h, 0, sizeof(*h));
		memcpy(h->event_id, ev.event_id, UUID_LEN);
		memcpy(h->stream_id, ev.stream_id, UUID_LEN);
		h->version = ev.stream_version;
		h->pos = ev.global_position;
		h->recorded_at = ev.recorded_at;
		h->type_len = ev.type_len > RECORD_TYPE_MAX ? RECORD_TYPE_MAX :
		                                              ev.type_len;
		memcpy(h->type, ev.type, h->type_len);
		h->md = dup_bytes(ev.metadata, ev.metadata_len);
		h->md_len = ev.metadata_len;
		h->payload = dup_bytes(ev.payload, ev.payload_len);
		h->payload_len = ev.payload_len;
	}
	return EF_S_OK;
}

/*
 * Every event from `from` on, a page of 4096 at a time: of the whole log
 * (stream NULL, from a position) or of one stream (from a version).
 */
static int
read_pages(struct ef_client *c, const char *stream, uint64_t from,
    struct h_event **evs, size_t *n)
{
	struct client_reply rep;
	struct ipc_read_rep rr;
	size_t cap = 0;
	int st;

	*evs = NULL;
	*n = 0;
	for (;;) {
		st = stream == NULL ?
		    client_read_all(c, from, 4096, EF_FORWARD, &rep, &rr) :
		    client_read_stream(c, stream, from, 4096, EF_FORWARD, &rep,
		        &rr);
		if (st == EF_S_OK)
			st = take_events(&rr, evs, n, &cap);
		client_reply_free(&rep);
		if (st != EF_S_OK || rr.nevents == 0)
			return st;
		if (stream == NULL) {
			from = (*evs)[*n - 1].pos + 1;
			if (from >= rr.head)
				return EF_S_OK;
		} else {
			from = (*evs)[*n - 1].version + 1;
			if (from > rr.last_version)
				return EF_S_OK;
		}
	}
}

int
h_read_all(struct ef_client *c, uint64_t from, struct h_event **evs, size_t *n)
{
	return read_pages(c, NULL, from, evs, n);
}

int
h_read_stream(struct ef_client *c, const char *stream, uint64_t from,
    struct h_event **evs, size_t *n)
{
	return read_pages(c, stream, from, evs, n);
}

void
h_events_free(struct h_event *evs, size_t n)
{
	size_t i;

	for (i = 0; evs != NULL && i < n; i++) {
		free(evs[i].md);
		free(evs[i].payload);
	}
	free(evs);
}

char *
h_uuid(char buf[UUID_STR_LEN])
{
	uint8_t u[UUID_LEN];

	uuid_random(u);
	return uuid_format(u, buf);
}

/* ------------------------------------------------------------------ */
/* Append load. */

#define LOAD_TYPE "LoadEvent"

static size_t
load_payload(char *buf, size_t cap, uint32_t thread, uint32_t seq, uint32_t k,
    uint32_t pad)
{
	int n = snprintf(buf, cap, "{\"t\":%u,\"s\":%u,\"k\":%u,\"pad\":\"",
	    thread, seq, k);
	size_t len = (size_t)n;

	while (pad-- > 0 && len + 3 < cap)
		buf[len++] = (char)('a' + (seq + k + pad) % 26);
	buf[len++] = '"';
	buf[len++] = '}';
	buf[len] = '\0';
	return len;
}

#define PAYLOAD_CAP 4200

/* Sends thread t's pending append on c; records the acks on success. */
static int
load_send(struct h_load *l, struct h_load_thread *t, struct ef_client *c,
    struct h_result *res)
{
	struct ipc_proposed evs[3];
	char payloads[3][PAYLOAD_CAP];
	uint32_t k;
	int st;

	memset(evs, 0, sizeof(evs));
	for (k = 0; k < t->pending_n; k++) {
		evs[k].event_id.ptr = t->pending_ids[k];
		evs[k].event_id.len = (uint32_t)strlen(t->pending_ids[k]);
		evs[k].type.ptr = LOAD_TYPE;
		evs[k].type.len = (uint32_t)strlen(LOAD_TYPE);
		evs[k].payload = (const uint8_t *)payloads[k];
		evs[k].payload_len = (uint32_t)load_payload(payloads[k],
		    PAYLOAD_CAP, t->idx, t->pending_seq, k, l->payload_pad);
	}
	st = h_append(c, t->stream, EF_EXPECT_ANY, 0, evs, t->pending_n, res);
	if (st != EF_S_OK)
		return st;
	if (res->rep.last_pos - res->rep.first_pos != t->pending_n - 1 ||
	    res->rep.last_version - res->rep.first_version !=
	        t->pending_n - 1) {
		snprintf(res->msg, sizeof(res->msg),
		    "append of %u events "
		    "acknowledged as positions %llu..%llu, versions "
		    "%llu..%llu",
		    t->pending_n, (unsigned long long)res->rep.first_pos,
		    (unsigned long long)res->rep.last_pos,
		    (unsigned long long)res->rep.first_version,
		    (unsigned long long)res->rep.last_version);
		return EF_S_INTERNAL;
	}
	for (k = 0; k < t->pending_n; k++) {
		struct h_ack *a;

		if (t->nacks == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 4096;
			t->acks = realloc(t->acks, t->cap * sizeof(*t->acks));
			if (t->acks == NULL)
				abort();
		}
		a = &t->acks[t->nacks++];
		uuid_parse(t->pending_ids[k], strlen(t->pending_ids[k]),
		    a->event_id);
		a->pos = res->rep.first_pos + k;
		a->version = res->rep.first_version + k;
		a->thread = t->idx;
		a->seq = t->pending_seq;
		a->k = k;
	}
	t->pending = false;
	t->seq++;
	__atomic_add_fetch(&l->acked, t->pending_n, __ATOMIC_RELAXED);
	return EF_S_OK;
}

static void *
load_main(void *arg)
{
	struct h_load_thread *t = arg;
	struct h_load *l = t->load;
	struct h_result res;
	uint32_t k;
	int st;

	while (!__atomic_load_n(&l->stop, __ATOMIC_RELAXED)) {
		if (!t->pending) {
			t->pending_seq = t->seq;
			t->pending_n = 1 + t->seq % 3;
			for (k = 0; k < t->pending_n; k++)
				h_uuid(t->pending_ids[k]);
			t->pending = true;
		}
		st = load_send(l, t, &t->client, &res);
		if (st == EF_S_OK)
			continue;
		if (st != EF_S_UNAVAILABLE && t->errors++ == 0)
			snprintf(t->error, sizeof(t->error),
			    "thread %u: %s: "
			    "%s",
			    t->idx, ipc_status_name(st), res.msg);
		break;
	}
	return NULL;
}

void
h_load_init(struct h_load *l, const struct h_stored *s, uint32_t n,
    uint32_t payload_pad)
{
	uint32_t i;

	cr_assert_leq(n, H_LOAD_MAX);
	cr_assert_leq(payload_pad, PAYLOAD_CAP - 100);
	memset(l, 0, sizeof(*l));
	l->stored = s;
	l->nthreads = n;
	l->payload_pad = payload_pad;
	for (i = 0; i < n; i++) {
		l->t[i].load = l;
		l->t[i].idx = i;
		h_uuid(l->t[i].stream);
	}
}

void
h_load_start(struct h_load *l)
{
	uint32_t i;

	__atomic_store_n(&l->stop, 0, __ATOMIC_RELAXED);
	for (i = 0; i < l->nthreads; i++) {
		h_client(&l->t[i].client, l->stored, 20000);
		cr_assert_eq(pthread_create(&l->t[i].thr, NULL, load_main,
		                 &l->t[i]),
		    0);
	}
}

void
h_load_stop(struct h_load *l)
{
	uint32_t i;

	/* join before closing: closing a socket while a thread is inside a
	 * call on it can deadlock nng 1.5 (nng #1813); each call ends fast
	 * (a reply, or UNAVAILABLE once the daemon is gone) */
	__atomic_store_n(&l->stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < l->nthreads; i++)
		pthread_join(l->t[i].thr, NULL);
	for (i = 0; i < l->nthreads; i++)
		client_close(&l->t[i].client);
	for (i = 0; i < l->nthreads; i++)
		cr_assert_eq(l->t[i].errors, 0, "%s", l->t[i].error);
}

void
h_load_running(struct h_load *l, const struct h_stored *s, uint32_t n,
    uint32_t payload_pad, uint64_t acked, int timeout_ms)
{
	h_load_init(l, s, n, payload_pad);
	h_load_start(l);
	cr_assert_eq(h_load_wait_acked(l, acked, timeout_ms), 0,
	    "%llu events not acknowledged in %d ms", (unsigned long long)acked,
	    timeout_ms);
}

int
h_load_wait_acked(struct h_load *l, uint64_t n, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

	while (__atomic_load_n(&l->acked, __ATOMIC_RELAXED) < n) {
		if (h_now_ms() >= deadline)
			return -1;
		h_sleep_ms(2);
	}
	return 0;
}

void
h_load_retry_pending(struct h_load *l, struct ef_client *c)
{
	struct h_result res;
	uint32_t i;
	int st;

	for (i = 0; i < l->nthreads; i++) {
		struct h_load_thread *t = &l->t[i];

		if (!t->pending)
			continue;
		st = load_send(l, t, c, &res);
		cr_assert_eq(st, EF_S_OK,
		    "retry of thread %u's unanswered "
		    "append: %s: %s",
		    i, ipc_status_name(st), res.msg);
	}
}

static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, UUID_LEN);
}

uint64_t
h_load_verify(struct h_load *l, struct ef_client *c)
{
	struct h_event *evs;
	uint8_t(*ids)[UUID_LEN], sids[H_LOAD_MAX + 64][UUID_LEN];
	uint64_t counts[H_LOAD_MAX + 64];
	char payload[PAYLOAD_CAP];
	size_t n, i, j, nsids = 0;
	uint32_t ti;
	int st;

	st = h_read_all(c, 0, &evs, &n);
	cr_assert_eq(st, EF_S_OK, "read_all: %s", ipc_status_name(st));
	cr_assert_eq(h_head(c), n, "head and the events read differ");
	ids = calloc(n ? n : 1, UUID_LEN);
	cr_assert_not_null(ids);
	for (i = 0; i < n; i++) {
		cr_assert_eq(evs[i].pos, i,
		    "position %zu holds %llu: a gap or "
		    "a reordering",
		    i, (unsigned long long)evs[i].pos);
		memcpy(ids[i], evs[i].event_id, UUID_LEN);
		for (j = 0; j < nsids; j++)
			if (!memcmp(sids[j], evs[i].stream_id, UUID_LEN))
				break;
		if (j == nsids) {
			cr_assert_lt(nsids, sizeof(sids) / sizeof(sids[0]));
			memcpy(sids[nsids], evs[i].stream_id, UUID_LEN);
			counts[nsids++] = 0;
		}
		cr_assert_eq(evs[i].version, counts[j],
		    "position %zu: stream "
		    "version %llu, expected %llu",
		    i, (unsigned long long)evs[i].version,
		    (unsigned long long)counts[j]);
		counts[j]++;
	}
	qsort(ids, n, UUID_LEN, cmp_id);
	for (i = 1; i < n; i++)
		cr_assert_neq(memcmp(ids[i - 1], ids[i], UUID_LEN), 0,
		    "an event id is in the log twice");
	free(ids);
	for (ti = 0; ti < l->nthreads; ti++) {
		struct h_load_thread *t = &l->t[ti];
		uint8_t sid[UUID_LEN];

		uuid_parse(t->stream, strlen(t->stream), sid);
		for (i = 0; i < t->nacks; i++) {
			const struct h_ack *a = &t->acks[i];
			const struct h_event *e;
			size_t plen;

			cr_assert_lt(a->pos, n,
			    "acknowledged position %llu is "
			    "missing (head %zu)",
			    (unsigned long long)a->pos, n);
			e = &evs[a->pos];
			cr_assert_arr_eq(e->event_id, a->event_id, UUID_LEN,
			    "position %llu holds another event than the one "
			    "acknowledged there",
			    (unsigned long long)a->pos);
			cr_assert_arr_eq(e->stream_id, sid, UUID_LEN);
			cr_assert_eq(e->version, a->version);
			cr_assert_eq(e->type_len, strlen(LOAD_TYPE));
			cr_assert_arr_eq(e->type, LOAD_TYPE, e->type_len);
			plen = load_payload(payload, sizeof(payload),
			    a->thread, a->seq, a->k, l->payload_pad);
			cr_assert_eq(e->payload_len, plen,
			    "payload length at "
			    "%llu",
			    (unsigned long long)a->pos);
			cr_assert_arr_eq(e->payload, payload, plen,
			    "payload at %llu", (unsigned long long)a->pos);
			cr_assert_eq(e->md_len, 0);
		}
	}
	h_events_free(evs, n);
	return n;
}

void
h_load_free(struct h_load *l)
{
	uint32_t i;

	for (i = 0; i < l->nthreads; i++) {
		free(l->t[i].acks);
		l->t[i].acks = NULL;
		l->t[i].nacks = l->t[i].cap = 0;
	}
}

int
h_ctl_at(const struct h_stored *s, const char *const *args, char **out,
    char **err)
{
	const char *argv[24];
	int n = 0, i;

	argv[n++] = "--runtime-dir";
	argv[n++] = s->run_dir;
	argv[n++] = "--data-dir";
	argv[n++] = s->data_dir;
	argv[n++] = "--timeout-ms";
	argv[n++] = "20000";
	for (i = 0; args[i] != NULL && n < 20; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return h_ctl(s->dir, argv, NULL, 0, 300000, out, err);
}

char *
h_ctl_ok(const struct h_stored *s, const char *const *args)
{
	char *out = NULL, *err = NULL;
	int rc = h_ctl_at(s, args, &out, &err);

	cr_assert_eq(rc, 0, "eventfoldctl %s: exit %d: %s", args[0], rc, err);
	free(err);
	return out;
}

char *
h_ctl_fails(const struct h_stored *s, const char *const *args, int want_rc,
    const char *needle)
{
	char *out = NULL, *err = NULL;
	int rc = h_ctl_at(s, args, &out, &err);

	cr_assert_eq(rc, want_rc, "eventfoldctl %s: exit %d: %s", args[0], rc,
	    err);
	cr_assert(strstr(err, needle) != NULL, "%s", err);
	free(out);
	return err;
}

char *
h_export_all(const struct h_stored *s, const char *path)
{
	char *f;

	free(h_ctl_ok(s,
	    (const char *const[]){ "export", "--quiet", "-o", path, NULL }));
	f = h_read_file(path, NULL);
	cr_assert_not_null(f);
	return f;
}

int
h_wait_for_text(const char *path, const char *needle, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	char *s;

	while (h_now_ms() < deadline) {
		s = h_read_file(path, NULL);
		if (s != NULL && strstr(s, needle) != NULL) {
			free(s);
			return 0;
		}
		free(s);
		h_sleep_ms(5);
	}
	return -1;
}

void
h_stored_stop_ok(struct h_stored *s, struct ef_client *c, int sig)
{
	int st;

	client_close(c);
	st = h_stored_stop(s, sig, 15000);
	if (sig == SIGTERM)
		cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "SIGTERM: wait status 0x%x", st);
	else
		cr_assert(st != -1 && WIFSIGNALED(st), "wait status 0x%x", st);
}

struct ipc_status_rep
h_status(struct ef_client *c)
{
	struct client_reply rep;
	struct ipc_status_rep st;

	cr_assert_eq(client_status(c, &rep, &st), EF_S_OK);
	client_reply_free(&rep);
	return st;
}

void
h_flip(const char *path, uint64_t at)
{
	size_t size;
	uint8_t *img = (uint8_t *)h_read_file(path, &size);

	cr_assert_not_null(img);
	cr_assert_lt(at, size);
	img[at] ^= 0x04;
	cr_assert_eq(h_write_file(path, img, size), 0);
	free(img);
}

void
h_rm_index(const struct h_stored *s)
{
	char cmd[H_PATH + 64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/index'", s->data_dir);
	cr_assert_eq(system(cmd), 0);
}

/* Checks a read reply's events against b (positions want[0..n)). */
static void
book_check_page(const struct h_book *b, const struct ipc_read_rep *rr,
    const uint64_t *want, uint32_t n, const char *what)
{
	struct ef_event ev;
	const char *why = "";
	uint8_t sid[UUID_LEN];
	uint32_t i;

	cr_assert_eq(rr->nevents, n, "%s: %u events, expected %u", what,
	    rr->nevents, n);
	for (i = 0; i < n; i++) {
		cr_assert_eq(ipc_event_decode(&rr->events->via.array.ptr[i],
		                 &ev, &why),
		    0, "%s", why);
		cr_assert_eq(ev.global_position, want[i],
		    "%s: event %u at "
		    "position %llu, expected %llu",
		    what, i, (unsigned long long)ev.global_position,
		    (unsigned long long)want[i]);
		cr_assert_arr_eq(ev.event_id, b->ev[want[i]].id, UUID_LEN,
		    "%s", what);
		uuid_parse(b->streams[b->ev[want[i]].stream], 36, sid);
		cr_assert_arr_eq(ev.stream_id, sid, UUID_LEN);
		cr_assert_eq(ev.stream_version, b->ev[want[i]].version);
	}
}

void
h_book_read(struct ef_client *c, const struct h_book *b)
{
	struct client_reply rep;
	struct ipc_read_rep rr;
	uint64_t want[8], from, pos[H_BOOK_MAX], np, k;
	uint32_t page, m;
	char what[96];
	int s, dir;

	for (page = 1; page <= 7; page++) {
		for (dir = 0; dir < 2; dir++) {
			/* ReadAll */
			from = dir == EF_FORWARD ? 0 : EF_FROM_END;
			for (k = 0; k < b->n; k += m) {
				m = (uint32_t)(b->n - k < page ? b->n - k :
				                                 page);
				for (uint32_t i = 0; i < m; i++)
					want[i] = dir == EF_FORWARD ?
					    k + i :
					    b->n - 1 - k - i;
				cr_assert_eq(client_read_all(c, from, page,
				                 dir, &rep, &rr),
				    EF_S_OK);
				snprintf(what, sizeof(what),
				    "read_all page %u "
				    "dir %d at %llu",
				    page, dir, (unsigned long long)k);
				book_check_page(b, &rr, want, m, what);
				client_reply_free(&rep);
				from = dir == EF_FORWARD ? want[m - 1] + 1 :
				                           want[m - 1] - 1;
			}
			/* ReadStream of each stream */
			for (s = 0; s < H_BOOK_STREAMS; s++) {
				for (np = 0, k = 0; k < b->n; k++)
					if (b->ev[k].stream == s)
						pos[np++] = k;
				from = dir == EF_FORWARD ? 0 : EF_FROM_END;
				for (k = 0; k < np; k += m) {
					m = (uint32_t)(np - k < page ? np - k :
					                               page);
					for (uint32_t i = 0; i < m; i++)
						want[i] = dir == EF_FORWARD ?
						    pos[k + i] :
						    pos[np - 1 - k - i];
					cr_assert_eq(client_read_stream(c,
					                 b->streams[s], from,
					                 page, dir, &rep, &rr),
					    EF_S_OK);
					snprintf(what, sizeof(what),
					    "stream "
					    "%d page %u dir %d at %llu",
					    s, page, dir,
					    (unsigned long long)k);
					book_check_page(b, &rr, want, m, what);
					client_reply_free(&rep);
					from = b->ev[want[m - 1]].version +
					    (dir == EF_FORWARD ? 1 : 0) -
					    (dir == EF_FORWARD ? 0 : 1);
				}
			}
		}
	}
}

void
h_wait_indexed(struct ef_client *c, uint64_t to, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

	while (h_status(c).indexed_to < to) {
		cr_assert_lt(h_now_ms(), deadline,
		    "positions below %llu were "
		    "not indexed (%llu)",
		    (unsigned long long)to,
		    (unsigned long long)h_status(c).indexed_to);
		h_sleep_ms(20);
	}
}

void
h_verify_ok(const struct h_stored *s, uint64_t events)
{
	char *out = NULL, want[96];
	int rc = h_ctl_at(s, (const char *const[]){ "verify", NULL }, &out,
	    NULL);

	cr_assert_eq(rc, 0, "eventfoldctl verify: %d\n%s", rc, out);
	snprintf(want, sizeof(want), ": OK: %llu events in ",
	    (unsigned long long)events);
	cr_assert(strstr(out, want) != NULL, "%s", out);
	free(out);
}

/* ------------------------------------------------------------------ */
/* Segments, the record book, crash points. */

void
h_rotate(const struct h_stored *s)
{
	char *out = NULL;
	int rc = h_ctl_at(s, (const char *const[]){ "rotate", NULL }, &out,
	    NULL);

	cr_assert_eq(rc, 0, "eventfoldctl rotate: %d %s", rc, out);
	free(out);
}

int
h_file_exists(const char *dir, const char *name)
{
	char path[H_PATH + 64];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &sb) == 0;
}

/* One line of `segments --json` into seg; next is where it must start. */
static void
segment_parse(struct h_seginfo *seg, const char *line, uint64_t next, size_t n)
{
	json_t *j = json_loads(line, 0, NULL), *last;
	const char *state;

	cr_assert_not_null(j, "not JSON: %s", line);
	seg->first = json_integer_value(json_object_get(j, "first"));
	seg->events = json_integer_value(json_object_get(j, "events"));
	seg->bytes = json_integer_value(json_object_get(j, "bytes"));
	state = json_string_value(json_object_get(j, "state"));
	seg->archived = strcmp(state, "archived") == 0;
	seg->sealed = seg->archived || strcmp(state, "sealed") == 0;
	if (seg->archived) {
		/* a ratio is shown, from the bytes on disk */
		cr_assert_gt(json_integer_value(
		                 json_object_get(j, "stored_bytes")),
		    0, "%s", line);
		cr_assert_gt(json_real_value(json_object_get(j, "ratio")), 1.0,
		    "%s", line);
	}
	last = json_object_get(j, "last");
	if (seg->events > 0)
		cr_assert_eq(json_integer_value(last),
		    seg->first + seg->events - 1, "%s", line);
	else
		cr_assert(json_is_null(last), "%s", line);
	cr_assert_eq(seg->first, next,
	    "segment %zu starts at %llu, expected %llu", n,
	    (unsigned long long)seg->first, (unsigned long long)next);
	json_decref(j);
}

size_t
h_segments(const struct h_stored *s, struct h_seginfo *segs, size_t max,
    uint64_t head)
{
	char *out = NULL, *line, *save = NULL;
	size_t n = 0;
	uint64_t next = 0;
	int rc;

	rc = h_ctl_at(s, (const char *const[]){ "segments", "--json", NULL },
	    &out, NULL);
	cr_assert_eq(rc, 0, "eventfoldctl segments: %d", rc);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		cr_assert_lt(n, max);
		segment_parse(&segs[n], line, next, n);
		next = segs[n].first + segs[n].events;
		n++;
	}
	free(out);
	cr_assert_gt(n, 0);
	for (size_t i = 0; i + 1 < n; i++) {
		cr_assert(segs[i].sealed, "segment %zu is not sealed", i);
		cr_assert_gt(segs[i].events, 0, "sealed segment %zu is empty",
		    i);
	}
	cr_assert(!segs[n - 1].sealed, "the last segment is not hot");
	cr_assert_eq(next, head, "the segments hold %llu events, head %llu",
	    (unsigned long long)next, (unsigned long long)head);
	return n;
}

/* Appends n events of type to stream s of the book, and books them. */
static void
book_append(struct ef_client *c, struct h_book *b, int s, uint32_t n,
    const char *type, const char *payload, uint64_t *versions)
{
	struct ipc_proposed evs[3];
	char ids[3][UUID_STR_LEN];
	struct h_result r;
	uint64_t first = b->n;
	uint32_t k;

	memset(evs, 0, sizeof(evs));
	for (k = 0; k < n; k++) {
		evs[k] = h_proposed(h_uuid(ids[k]), type, payload);
	}
	cr_assert_eq(h_append(c, b->streams[s], EF_EXPECT_ANY, 0, evs, n, &r),
	    EF_S_OK, "%s", r.msg);
	cr_assert_eq(r.rep.first_pos, first);
	for (k = 0; k < n; k++) {
		uuid_parse(ids[k], 36, b->ev[b->n].id);
		b->ev[b->n].stream = s;
		b->ev[b->n].version = versions[s]++;
		b->n++;
	}
}

void
h_book_write(struct ef_client *c, const struct h_stored *s, struct h_book *b,
    const char *payload, int rotate_twice_at)
{
	uint64_t versions[H_BOOK_STREAMS] = { 0 };
	int a, st;

	for (st = 0; st < H_BOOK_STREAMS; st++)
		h_uuid(b->streams[st]);
	b->n = 0;
	for (a = 0; a < 60; a++) {
		book_append(c, b, a * 5 % H_BOOK_STREAMS,
		    1 + (uint32_t)(a * 7 % 3), "Boundary", payload, versions);
		if (a % 4 == 0 || a % 7 == 3)
			h_rotate(s);
		if (a == rotate_twice_at)
			h_rotate(s); /* again: nothing to seal */
	}
	h_rotate(s);
	for (st = 0; st < H_BOOK_STREAMS; st++)
		book_append(c, b, st, 1, "Hot", NULL, versions);
}

void
h_need_crashpoints(void)
{
	const char *cp = getenv("EF_CRASHPOINTS");

	if (strcmp(cp ? cp : "", "1") != 0)
		cr_skip_test("built without -Dcrashpoints=true");
}

int
h_log_has(const struct h_stored *s, const char *needle)
{
	char *log = h_read_file(s->log, NULL);
	int r = log != NULL && strstr(log, needle) != NULL;

	free(log);
	return r;
}

void
h_stored_wait_killed(struct h_stored *s, int timeout_ms, const char *point)
{
	int st = h_wait_pid(s->pid, timeout_ms);

	s->pid = 0;
	cr_assert(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "%s: stored was not killed there (0x%x)", point, st);
}

/* Fails the test unless s's log names crash point (up to any ':'). */
static void
log_names_point(const struct h_stored *s, const char *point)
{
	char name[128], *log;

	snprintf(name, sizeof(name), "%s", point);
	name[strcspn(name, ":")] = '\0';
	log = h_read_file(s->log, NULL);
	cr_assert(log != NULL && strstr(log, name) != NULL,
	    "not killed at %s:\n%s", name, log);
	free(log);
}

uint64_t
h_load_killed_at(struct h_stored *s, struct h_load *l, const char *point,
    int timeout_ms)
{
	uint64_t acked;

	setenv("EVENTFOLD_CRASHPOINT", point, 1);
	h_stored_spawn(s);
	unsetenv("EVENTFOLD_CRASHPOINT");
	cr_assert_eq(h_stored_wait_ready(s, 15000), 0);
	h_load_start(l);
	h_stored_wait_killed(s, timeout_ms, point);
	h_load_stop(l);
	log_names_point(s, point);
	acked = __atomic_load_n(&l->acked, __ATOMIC_RELAXED);
	cr_assert_gt(acked, 0);
	return acked;
}

uint64_t
h_load_recovered(struct h_load *l, struct ef_client *c, uint64_t acked)
{
	cr_assert_geq(h_load_verify(l, c), acked);
	h_load_retry_pending(l, c);
	return h_load_verify(l, c);
}

uint64_t
h_load_survived(struct h_load *l, struct ef_client *c, uint64_t head,
    int cycle)
{
	uint64_t n = h_load_verify(l, c);

	cr_assert_geq(n, head,
	    "cycle %d: the log shrank from %llu to %llu events: "
	    "acknowledged events were lost",
	    cycle, (unsigned long long)head, (unsigned long long)n);
	h_load_retry_pending(l, c);
	return h_head(c);
}

uint64_t
h_load_goes_on(struct h_load *l, struct ef_client *c, uint64_t acked)
{
	uint32_t i;

	h_load_start(l);
	cr_assert_eq(h_load_wait_acked(l, acked + 500, 60000), 0);
	h_load_stop(l);
	for (i = 0; i < l->nthreads; i++)
		cr_assert_eq(l->t[i].errors, 0, "%s", l->t[i].error);
	return h_load_verify(l, c);
}

/* ------------------------------------------------------------------ */
/* Starting, and raw sockets. */

void
h_start(struct h_stored *s, struct ef_client *c)
{
	h_stored_start(s);
	h_client(c, s, 10000);
}

void
h_start_fresh(struct h_stored *s, struct ef_client *c,
    const char *const *extra, int timeout_ms)
{
	h_stored_init(s, h_tmpdir(), extra);
	h_stored_start(s);
	h_client(c, s, timeout_ms);
}

void
h_stored_start_fails(struct h_stored *s, const char *what)
{
	int st;

	h_stored_spawn(s);
	st = h_wait_pid(s->pid, 15000);
	s->pid = 0;
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
	    "%s did not exit with an error (0x%x)", what, st);
}

void
h_unix_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	cr_assert_lt(strlen(path), sizeof(sa->sun_path), "%s", path);
	memcpy(sa->sun_path, path, strlen(path));
}

int
h_unix_socket(struct sockaddr_un *sa, const char *path, int flags)
{
	h_unix_addr(sa, path);
	return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
}

int
h_unix_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd = h_unix_socket(&sa, path, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
	    "connect %s: %s", path, strerror(errno));
	return fd;
}

void
h_event_same(const struct h_event *a, const struct h_event *b,
    const char *what, size_t i)
{
	cr_assert_eq(memcmp(a->event_id, b->event_id, UUID_LEN), 0,
	    "%s %zu differs", what, i);
	cr_assert_eq(a->version, b->version, "%s %zu", what, i);
	cr_assert_eq(a->recorded_at, b->recorded_at, "%s %zu", what, i);
	cr_assert_eq(a->payload_len, b->payload_len, "%s %zu", what, i);
	cr_assert_eq(memcmp(a->payload, b->payload, a->payload_len), 0,
	    "%s %zu", what, i);
}
