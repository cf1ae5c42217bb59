/* SPDX-License-Identifier: MIT */
/*
 * efdb_gen.c - writes an EventfoldDB data file (format 3, as in
 * ../shared/formats/eventfolddb.md) of N events for the import
 * benchmark (bench/data.sh): batches of B events, each batch one of S
 * streams, payloads of P bytes of JSON, CRC-32s from zlib.
 *
 *   eventfold-efdb-gen FILE N [B [S [P]]]   (defaults 64, 1000, 200)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint8_t *buf;
static size_t len, cap;

static void
put(const void *p, size_t n)
{
	if (len + n > cap) {
		cap = (len + n) * 2;
		if ((buf = realloc(buf, cap)) == NULL) {
			perror("realloc");
			exit(1);
		}
	}
	memcpy(buf + len, p, n);
	len += n;
}

static void
put32(uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
		(uint8_t)(v >> 24) };

	put(b, 4);
}

static void
put64(uint64_t v)
{
	put32((uint32_t)v);
	put32((uint32_t)(v >> 32));
}

static void
uuid(uint64_t a, uint64_t b, uint8_t out[16])
{
	memcpy(out, &a, 8);
	memcpy(out + 8, &b, 8);
	out[6] = (uint8_t)((out[6] & 0x0f) | 0x40);
	out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

int
main(int argc, char **argv)
{
	uint64_t n, b = 64, s = 1000, p = 200, pos = 0, *vers, k, i, m;
	char *payload;
	uint8_t u[16];
	size_t start, rec;
	FILE *f;

	if (argc < 3) {
		fprintf(stderr,
		    "usage: eventfold-efdb-gen FILE N [B [S [P]]]\n");
		return 2;
	}
	n = strtoull(argv[2], NULL, 10);
	if (argc > 3)
		b = strtoull(argv[3], NULL, 10);
	if (argc > 4)
		s = strtoull(argv[4], NULL, 10);
	if (argc > 5)
		p = strtoull(argv[5], NULL, 10);
	if (b == 0 || s == 0 || p < 12 || p > 60000)
		return 2;
	vers = calloc(s, sizeof(*vers));
	payload = malloc(p + 1);
	if ((f = fopen(argv[1], "w")) == NULL || vers == NULL || !payload) {
		perror(argv[1]);
		return 1;
	}
	memset(payload, 'x', p);
	memcpy(payload, "{\"k\":\"", 6);
	memcpy(payload + p - 2, "\"}", 2);
	put("EFDB", 4);
	put32(3);
	for (k = 0; pos < n; k++) {
		m = n - pos < b ? n - pos : b;
		start = len;
		put("EFBB", 4);
		put32((uint32_t)m);
		put64(pos);
		for (i = 0; i < m; i++, pos++) {
			rec = len;
			put32((uint32_t)(70 + 5 + p));
			put64(pos);
			put64(1700000000000ull + pos);
			uuid(k % s, 0x5eed, u);
			put(u, 16);
			put64(vers[k % s]++);
			uuid(pos, 0xe1e1e1e1, u);
			put(u, 16);
			put((uint8_t[]){ 5, 0 }, 2);
			put("Bench", 5);
			put32(0);
			put32((uint32_t)p);
			put(payload, p);
			put32((uint32_t)crc32(0L, buf + rec + 4,
			    (uInt)(len - rec - 4)));
		}
		rec = len;
		put("EFBF", 4);
		put32((uint32_t)crc32(0L, buf + start, (uInt)(rec - start)));
		if (len > (64u << 20)) {
			fwrite(buf, 1, len, f);
			len = 0;
		}
	}
	fwrite(buf, 1, len, f);
	if (fclose(f) != 0) {
		perror(argv[1]);
		return 1;
	}
	printf("%s: %" PRIu64 " events in %" PRIu64 " batches\n", argv[1], n,
	    k);
	free(buf);
	free(vers);
	free(payload);
	return 0;
}
