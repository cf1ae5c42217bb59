/* SPDX-License-Identifier: MIT */
/*
 * auth.c - HS256 JWT bearer authentication, compatible with
 * EventfoldDB's: every EventStore call must carry the metadata
 * `authorization: Bearer <token>`, the token signed with jwt_secret
 * (HS256 only), with a numeric `exp` not in the past (no leeway) and a
 * string `sub`. Every failure is UNAUTHENTICATED. The health service is
 * never authenticated (server.c decides which methods need this).
 * Verification is libjwt's.
 *
 * The status messages are EventfoldDB's: "missing authorization token"
 * when there is no bearer token, else the Display text of the Rust
 * jsonwebtoken crate's error (InvalidToken, InvalidSignature,
 * ExpiredSignature, InvalidAlgorithm, "Missing required claim: C"),
 * libjwt's failures mapped onto those kinds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>

#include "gatewayd.h"
#include "log.h"

#define TOKEN_MAX 8192

static int
slice_is(grpc_slice s, const char *str)
{
	size_t n = strlen(str);

	return GRPC_SLICE_LENGTH(s) == n &&
	    memcmp(GRPC_SLICE_START_PTR(s), str, n) == 0;
}

int
auth_check(struct gw *gw, const grpc_metadata_array *md, char *why,
    size_t whylen)
{
	const grpc_metadata *auth = NULL;
	char token[TOKEN_MAX + 1];
	const char *sub, *alg;
	jwt_t *jwt = NULL;
	size_t i, n;
	long exp;
	int rc = GW_UNAUTHENTICATED;

	for (i = 0; i < md->count; i++)
		if (slice_is(md->metadata[i].key, "authorization")) {
			auth = &md->metadata[i];
			break;
		}
	n = auth == NULL ? 0 : GRPC_SLICE_LENGTH(auth->value);
	if (n < 8 ||
	    memcmp(GRPC_SLICE_START_PTR(auth->value), "Bearer ", 7) != 0) {
		snprintf(why, whylen, "missing authorization token");
		return rc;
	}
	n -= 7;
	if (n > TOKEN_MAX) {
		snprintf(why, whylen, "InvalidToken");
		return rc;
	}
	memcpy(token, GRPC_SLICE_START_PTR(auth->value) + 7, n);
	token[n] = '\0';
	if (memchr(token, '\0', n) != NULL) {
		snprintf(why, whylen, "InvalidToken");
		return rc;
	}
	if (jwt_decode(&jwt, token, (const unsigned char *)gw->jwt_secret,
	        (int)gw->jwt_secret_len) != 0 ||
	    jwt == NULL) {
		/* well-formed without the key: the signature is wrong
		 * (libjwt says alg none of a token read without a key,
		 * hence the header) */
		jwt = NULL;
		if (jwt_decode(&jwt, token, NULL, 0) != 0 || jwt == NULL)
			snprintf(why, whylen, "InvalidToken");
		else if ((alg = jwt_get_header(jwt, "alg")) == NULL ||
		    strcmp(alg, "HS256") != 0)
			snprintf(why, whylen, "InvalidAlgorithm");
		else
			snprintf(why, whylen, "InvalidSignature");
		goto fail;
	}
	if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
		snprintf(why, whylen, "InvalidAlgorithm");
		goto fail;
	}
	errno = 0;
	exp = jwt_get_grant_int(jwt, "exp");
	if (errno != 0) {
		snprintf(why, whylen, "Missing required claim: exp");
		goto fail;
	}
	if ((long long)exp < (long long)time(NULL)) {
		snprintf(why, whylen, "ExpiredSignature");
		goto fail;
	}
	if ((sub = jwt_get_grant(jwt, "sub")) == NULL) {
		snprintf(why, whylen, "Missing required claim: sub");
		goto fail;
	}
	rc = 0;
fail:
	jwt_free(jwt);
	explicit_bzero(token, sizeof(token));
	return rc;
}
