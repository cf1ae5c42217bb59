/* SPDX-License-Identifier: MIT */
/*
 * grow.h - the growth step of the daemons' byte buffers (stored's write
 * batch, the gateway's protobuf replies, runnerd's plugin buffers).
 */
#ifndef EF_GROW_H
#define EF_GROW_H

#include <stddef.h>

/*
 * Grows the malloc'd block p (NULL, or *cap bytes) to hold need bytes:
 * its capacity doubles, from first when *cap is 0, until it does. Returns
 * the block, perhaps moved (its bytes kept), with *cap its new capacity;
 * fatal() when memory is out. The caller tests need > *cap first.
 */
void *mem_grow(void *p, size_t *cap, size_t need, size_t first);

#endif
