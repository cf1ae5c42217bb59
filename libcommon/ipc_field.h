/* SPDX-License-Identifier: MIT */
/*
 * ipc_field.h - the msgpack field helpers that ipc.c (stored's messages)
 * and ipc_runner.c (runnerd's) share; private to libcommon.
 *
 * Each getter checks the object's type (and bound), stores the value and
 * returns 0, or sets *why to the field's name and returns -1. Strings and
 * bytes point into the decoded message (see ipc.h for lifetimes).
 */
#ifndef EF_IPC_FIELD_H
#define EF_IPC_FIELD_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

#include "ipc.h"

int ipcf_array(const msgpack_object *o, uint32_t want, const char *name,
    const char **why); /* an array of exactly want elements */
int ipcf_list(const msgpack_object *o, uint32_t max, const char *name,
    const char **why); /* an array of at most max elements */
int ipcf_u64(const msgpack_object *o, uint64_t *v, const char *name,
    const char **why);
int ipcf_bool(const msgpack_object *o, bool *v, const char *name,
    const char **why);
/* A str of at most max bytes, none of them NUL (*why then says so). */
int ipcf_str(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why);
int ipcf_uuid(const msgpack_object *o, uint8_t out[UUID_LEN], const char *name,
    const char **why); /* a 16-byte bin */

/* An unsigned integer of at most max. */
int ipcf_u64_max(const msgpack_object *o, uint64_t *v, uint64_t max,
    const char *name, const char **why);
/* An unsigned integer of at most max (< 256): an enum's value. */
int ipcf_enum(const msgpack_object *o, uint8_t *v, uint8_t max,
    const char *name, const char **why);
/* A str of 1..max bytes. */
int ipcf_name(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why);
/* nil (*has false, *v 0) or an unsigned integer. */
int ipcf_optu64(const msgpack_object *o, bool *has, uint64_t *v,
    const char *name, const char **why);
/* nil (s->ptr NULL) or a str of at most max bytes. */
int ipcf_optstr(const msgpack_object *o, struct ipc_str *s, uint32_t max,
    const char *name, const char **why);
/* nil (*has false, s->ptr NULL) or a str of at most IPC_MAX_STRLEN. */
int ipcf_hasstr(const msgpack_object *o, bool *has, struct ipc_str *s,
    const char *name, const char **why);
/* An array of at most max elements: *list is o, *n their count. */
int ipcf_list_of(const msgpack_object *o, const msgpack_object **list,
    uint32_t *n, uint32_t max, const char *name, const char **why);
/* A bin of at most max bytes (nil refused). */
int ipcf_bin(const msgpack_object *o, const uint8_t **p, uint32_t *len,
    uint32_t max, const char *name, const char **why);
/* nil (*has false, *p NULL, *len 0) or a bin of at most max bytes. */
int ipcf_optbin(const msgpack_object *o, bool *has, const uint8_t **p,
    uint32_t *len, uint32_t max, const char *name, const char **why);

void ipcf_pack_str(msgpack_packer *pk, const char *s, size_t len);
void ipcf_pack_bin(msgpack_packer *pk, const void *p, size_t len);
void ipcf_pack_bool(msgpack_packer *pk, bool v);
/* nil unless has; then the value. */
void ipcf_pack_optu64(msgpack_packer *pk, bool has, uint64_t v);
void ipcf_pack_optbin(msgpack_packer *pk, bool has, const void *p, size_t len);
void ipcf_pack_optstr(msgpack_packer *pk, const struct ipc_str *s); /* ptr */
void ipcf_pack_hasstr(msgpack_packer *pk, bool has, const struct ipc_str *s);

/* In a body decoder: field i of the array b, and a getter's failure. */
#define F(b, i) (&(b)->via.array.ptr[(i)])
#define FIELD(x)                                                              \
	do {                                                                  \
		if ((x) != 0)                                                 \
			return EF_S_BAD_REQUEST;                              \
	} while (0)

/*
 * The codec of a body that is an array of fields, written once as a
 * list: FIELDS(X) holds X(KIND, member, "name", arg) per field, in wire
 * order, and IPCF_CODEC(msg, FIELDS, "what") defines
 * ipc_<msg>_decode(), strict as every decoder ("what" names a body of
 * the wrong shape, "name" a bad field), and ipc_<msg>_encode(), for
 * struct ipc_<msg>; IPCF_DECODER and IPCF_ENCODER define one of them.
 * The _CHECK forms add check(r, why), 0 or -1 with *why set, for what
 * one field alone cannot say. The kinds, and arg:
 *   U64     unsigned integer (arg unused, 0)
 *   U64MAX  unsigned integer of at most arg
 *   ENUM    uint8_t member of at most arg, an unsigned integer on the wire
 *   BOOL    boolean (arg 0)
 *   UUID    uint8_t[UUID_LEN] member, a 16-byte bin (arg 0)
 *   STR     struct ipc_str of at most arg bytes
 *   NAME    the same, of at least one byte
 *   OPTSTR  the same or nil (ptr NULL)
 *   OPTU64  uint64_t or nil, arg the bool member saying which
 *   BIN     bytes member and its <member>_len, at most arg bytes
 *   OPTBIN  the same or nil, has_<member> saying which
 *   NILBIN  the same or nil, a NULL member saying which
 *   HASSTR  struct ipc_str of at most IPC_MAX_STRLEN or nil, arg the bool
 *           member saying which
 *   LIST    const msgpack_object * member of an array of at most arg
 *           elements, their count in n<member> (decode only: such a
 *           body is encoded in steps, its elements one by one)
 * The generated code calls the same helpers as a decoder written out,
 * inline: no table is walked at run time.
 */
#define IPCF_N(K, f, name, arg) +1
#define IPCF_GET(K, f, name, arg)                                             \
	FIELD(IPCF_GET_##K(F(b, i), f, name, arg));                           \
	i++;
#define IPCF_GET_U64(o, f, name, arg)    ipcf_u64(o, &r->f, name, why)
#define IPCF_GET_U64MAX(o, f, name, max) ipcf_u64_max(o, &r->f, max, name, why)
#define IPCF_GET_ENUM(o, f, name, max)   ipcf_enum(o, &r->f, max, name, why)
#define IPCF_GET_BOOL(o, f, name, arg)   ipcf_bool(o, &r->f, name, why)
#define IPCF_GET_UUID(o, f, name, arg)   ipcf_uuid(o, r->f, name, why)
#define IPCF_GET_STR(o, f, name, max)    ipcf_str(o, &r->f, max, name, why)
#define IPCF_GET_NAME(o, f, name, max)   ipcf_name(o, &r->f, max, name, why)
#define IPCF_GET_OPTSTR(o, f, name, max) ipcf_optstr(o, &r->f, max, name, why)
#define IPCF_GET_OPTU64(o, f, name, has)                                      \
	ipcf_optu64(o, &r->has, &r->f, name, why)
#define IPCF_GET_BIN(o, f, name, max)                                         \
	ipcf_bin(o, &r->f, &r->f##_len, max, name, why)
#define IPCF_GET_OPTBIN(o, f, name, max)                                      \
	ipcf_optbin(o, &r->has_##f, &r->f, &r->f##_len, max, name, why)
#define IPCF_GET_NILBIN(o, f, name, max)                                      \
	ipcf_optbin(o, &(bool){ false }, &r->f, &r->f##_len, max, name, why)
#define IPCF_GET_HASSTR(o, f, name, has)                                      \
	ipcf_hasstr(o, &r->has, &r->f, name, why)
#define IPCF_GET_LIST(o, f, name, max)                                        \
	ipcf_list_of(o, &r->f, &r->n##f, max, name, why)
#define IPCF_PUT(K, f, name, arg)      IPCF_PUT_##K(pk, r, f, arg);
#define IPCF_PUT_U64(pk, r, f, arg)    msgpack_pack_uint64(pk, r->f)
#define IPCF_PUT_U64MAX(pk, r, f, arg) msgpack_pack_uint64(pk, r->f)
#define IPCF_PUT_ENUM(pk, r, f, arg)   msgpack_pack_uint8(pk, r->f)
#define IPCF_PUT_BOOL(pk, r, f, arg)   ipcf_pack_bool(pk, r->f)
#define IPCF_PUT_UUID(pk, r, f, arg)   ipcf_pack_bin(pk, r->f, UUID_LEN)
#define IPCF_PUT_STR(pk, r, f, arg)    ipcf_pack_str(pk, r->f.ptr, r->f.len)
#define IPCF_PUT_NAME(pk, r, f, arg)   ipcf_pack_str(pk, r->f.ptr, r->f.len)
#define IPCF_PUT_OPTSTR(pk, r, f, arg) ipcf_pack_optstr(pk, &r->f)
#define IPCF_PUT_OPTU64(pk, r, f, has) ipcf_pack_optu64(pk, r->has, r->f)
#define IPCF_PUT_BIN(pk, r, f, arg)    ipcf_pack_bin(pk, r->f, r->f##_len)
#define IPCF_PUT_OPTBIN(pk, r, f, arg)                                        \
	ipcf_pack_optbin(pk, r->has_##f, r->f, r->f##_len)
#define IPCF_PUT_NILBIN(pk, r, f, arg)                                        \
	ipcf_pack_optbin(pk, r->f != NULL, r->f, r->f##_len)
#define IPCF_PUT_HASSTR(pk, r, f, has) ipcf_pack_hasstr(pk, r->has, &r->f)

#define IPCF_ENCODER(msg, FIELDS)                                             \
	void ipc_##msg##_encode(struct ipc_out *o, const struct ipc_##msg *r) \
	{                                                                     \
		msgpack_packer *pk = &o->pk;                                  \
                                                                              \
		msgpack_pack_array(pk, 0 FIELDS(IPCF_N));                     \
		FIELDS(IPCF_PUT)                                              \
	}
#define IPCF_DECODER_CHECK(msg, FIELDS, what, check)                          \
	int ipc_##msg##_decode(const msgpack_object *b, struct ipc_##msg *r,  \
	    const char **why)                                                 \
	{                                                                     \
		uint32_t i = 0;                                               \
                                                                              \
		memset(r, 0, sizeof(*r));                                     \
		FIELD(ipcf_array(b, 0 FIELDS(IPCF_N), what, why));            \
		FIELDS(IPCF_GET)                                              \
		FIELD(check(r, why));                                         \
		return 0;                                                     \
	}
#define IPCF_DECODER(msg, FIELDS, what)                                       \
	IPCF_DECODER_CHECK(msg, FIELDS, what, IPCF_NO_CHECK)
#define IPCF_CODEC_CHECK(msg, FIELDS, what, check)                            \
	IPCF_DECODER_CHECK(msg, FIELDS, what, check)                          \
	IPCF_ENCODER(msg, FIELDS)
#define IPCF_CODEC(msg, FIELDS, what)                                         \
	IPCF_DECODER(msg, FIELDS, what)                                       \
	IPCF_ENCODER(msg, FIELDS)
#define IPCF_NO_CHECK(r, why) 0

#endif
