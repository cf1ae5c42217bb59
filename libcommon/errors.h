/* SPDX-License-Identifier: MIT */
/*
 * errors.h - eventfold's one error doctrine, and the translators of the
 * foreign codes it names.
 *
 * The doctrine, for every file of the tree:
 *
 * 1. A fallible function returns int: 0 for success, a negative errno
 *    (-ENOENT, -ENOSPC, -EIO, ...) for a failure the caller can only
 *    pass up or report with strerror(-rc). Where a caller must tell
 *    outcomes apart that no errno names, the header of the function
 *    documents a small positive enum instead; never a mix of the two
 *    undocumented.
 * 2. Foreign codes are translated once, in the module that calls the
 *    library: nng's with ef_err_from_nng(), LMDB's with
 *    ef_err_from_mdb(). Code may test the raw code right where the call
 *    is made (NNG_ECLOSED in an aio callback, MDB_MAP_FULL before growing
 *    the map), but what leaves that module is a negative errno. (runnerd's
 *    state.c still hands LMDB codes to its callers: the one exception,
 *    documented in runnerd.h.)
 * 3. The wire statuses EF_S_* (ipc.h) exist only at the edges: the IPC
 *    decoders and handlers that build replies, the clients that read
 *    them, and the gateway's mapping onto gRPC codes. They are not a
 *    return convention for internal functions.
 * 4. A status is never chosen by comparing error strings. A decoder
 *    whose failures the caller must tell apart returns a distinct code
 *    (ipc_append_req_decode returns EF_S_BAD_EXPECTED_VERSION for a bad
 *    expected kind); the string ("why") is for people only.
 * 5. A message for people (char err[], a reply's message) goes with a
 *    code, never instead of one.
 */
#ifndef EF_ERRORS_H
#define EF_ERRORS_H

/*
 * A negative errno for nng's code rv (0 for 0): its system errors as
 * they were, the others by meaning (NNG_ETIMEDOUT -ETIMEDOUT,
 * NNG_ECLOSED -EBADF, NNG_ECONNSHUT -ESHUTDOWN, ...); -EIO for what has
 * no closer errno. strerror(-rc) then prints it.
 */
int ef_err_from_nng(int rv);

/*
 * A negative errno for LMDB's code rc (0 for MDB_SUCCESS): MDB_NOTFOUND
 * -ENOENT, MDB_KEYEXIST -EEXIST, MDB_MAP_FULL -ENOSPC, a damaged or
 * foreign file -EBADMSG, MDB_READERS_FULL -EAGAIN, an errno as it was,
 * -EIO for the rest.
 */
int ef_err_from_mdb(int rc);

#endif
