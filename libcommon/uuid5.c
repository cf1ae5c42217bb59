/* SPDX-License-Identifier: MIT */
/*
 * uuid5.c - RFC 4122 version 5 UUIDs with OpenSSL's SHA-1 (see uuid5.h).
 * Used by runnerd for stream ids compatible with eventfold-es and for
 * the deterministic event ids that make commands idempotent.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "log.h"
#include "uuid5.h"

/* 9a1e7c3b-4d2f-4a8e-b56c-1f3d7e9a0bc4, fixed by eventfold-es */
const uint8_t uuid_ns_stream[UUID_LEN] = {
	0x9a,
	0x1e,
	0x7c,
	0x3b,
	0x4d,
	0x2f,
	0x4a,
	0x8e,
	0xb5,
	0x6c,
	0x1f,
	0x3d,
	0x7e,
	0x9a,
	0x0b,
	0xc4,
};

/* 3f0c2a71-8b5e-4d19-a6c4-7e21d9b05f38, chosen by eventfold */
const uint8_t uuid_ns_event[UUID_LEN] = {
	0x3f,
	0x0c,
	0x2a,
	0x71,
	0x8b,
	0x5e,
	0x4d,
	0x19,
	0xa6,
	0xc4,
	0x7e,
	0x21,
	0xd9,
	0xb0,
	0x5f,
	0x38,
};

void
uuid_v5(const uint8_t ns[UUID_LEN], const void *name, size_t len,
    uint8_t out[UUID_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		fatalx("EVP_MD_CTX_new");
	if (EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, ns, UUID_LEN) != 1 ||
	    EVP_DigestUpdate(ctx, name, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen < UUID_LEN)
		fatalx("sha1 failed");
	EVP_MD_CTX_free(ctx);
	memcpy(out, md, UUID_LEN);
	out[6] = (uint8_t)((out[6] & 0x0f) | 0x50);
	out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

void
uuid_stream_id(const char *type, size_t tlen, const char *inst, size_t ilen,
    uint8_t out[UUID_LEN])
{
	char stackbuf[512], *buf = stackbuf;
	size_t n = tlen + 1 + ilen;

	if (n > sizeof(stackbuf) && (buf = malloc(n)) == NULL)
		fatal("malloc");
	memcpy(buf, type, tlen);
	buf[tlen] = '/';
	memcpy(buf + tlen + 1, inst, ilen);
	uuid_v5(uuid_ns_stream, buf, n, out);
	if (buf != stackbuf)
		free(buf);
}
