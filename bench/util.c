/* SPDX-License-Identifier: MIT */
/*
 * util.c - small helpers of the bench programs (see util.h): clocks and
 * sleeps that give way to a signal, a cheap per-thread generator of
 * random UUIDs, latency samples and their percentiles, and what /proc
 * says about a process.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

volatile sig_atomic_t interrupted;

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted)
		;
}

/* Sleeps s seconds in small steps, returning early on a signal. */
void
sleep_s(double s)
{
	uint64_t end = now_ns() + (uint64_t)(s * 1e9);

	while (!interrupted && now_ns() < end)
		sleep_ms(20);
}

uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

uint64_t
seed(void)
{
	uint64_t s;

	if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s))
		s = now_ns() ^ (uint64_t)getpid() << 32;
	return s;
}

/* A random (version 4) UUID as text, from a cheap per-thread generator. */
void
rand_uuid_str(uint64_t *rng, char out[UUID_STR_LEN])
{
	uint8_t u[UUID_LEN];
	uint64_t a = splitmix64(rng), b = splitmix64(rng);

	memcpy(u, &a, 8);
	memcpy(u + 8, &b, 8);
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	uuid_format(u, out);
}

void
lat_add(struct lat *l, double us)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4096;
		if ((l->v = realloc(l->v, l->cap * sizeof(*l->v))) == NULL)
			fatal("realloc");
	}
	l->v[l->n++] = us;
}

void
lat_merge(struct lat *into, const struct lat *from)
{
	size_t i;

	for (i = 0; i < from->n; i++)
		lat_add(into, from->v[i]);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Percentile as the peers compute it: v[n * p], sorted ascending. */
double
lat_pct(struct lat *l, double p)
{
	size_t i;

	if (l->n == 0)
		return 0;
	qsort(l->v, l->n, sizeof(*l->v), cmp_double);
	i = (size_t)((double)l->n * p);
	return l->v[i < l->n ? i : l->n - 1];
}

void
lat_free(struct lat *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* "1m", "250k", "1500": the short count used in case names. */
const char *
short_count(uint64_t n, char buf[32])
{
	if (n >= 1000000 && n % 1000000 == 0)
		snprintf(buf, 32, "%" PRIu64 "m", n / 1000000);
	else if (n >= 1000 && n % 1000 == 0)
		snprintf(buf, 32, "%" PRIu64 "k", n / 1000);
	else
		snprintf(buf, 32, "%" PRIu64, n);
	return buf;
}

/* A "/proc/PID/status" field in kB, times 1024; 0 if absent. */
uint64_t
proc_status_bytes(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	uint64_t v = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			v = strtoull(line + flen + 1, NULL, 10) * 1024;
			break;
		}
	fclose(fp);
	return v;
}

/* CPU time (user + system) of pid in seconds, -1 if unknown. */
double
proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* fields after the command name: state is field 3, utime 14 */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2,
	        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
	        "%llu",
	        &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double
self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}
