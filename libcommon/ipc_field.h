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

void ipcf_pack_str(msgpack_packer *pk, const char *s, size_t len);
void ipcf_pack_bin(msgpack_packer *pk, const void *p, size_t len);

#endif
