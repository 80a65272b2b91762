/*
 * memstore: the embedded in-memory store (store.h) for local mode and for
 * tests of the code above the store. Runs entirely on the owner's libuv loop
 * thread: completions and watch events are delivered from a zero-delay
 * timer, lease expiry from another timer.
 */
#ifndef SD_MEMSTORE_H
#define SD_MEMSTORE_H

#include <uv.h>

#include "store/store.h"

/* NULL on allocation failure. */
store *memstore_new(uv_loop_t *loop);
/* store_free() closes the store's two timers; the memory is released by
 * their close callbacks, so run the loop once more afterwards. Completions
 * and events not yet delivered are dropped. Not to be called from a
 * callback of the store. */

#endif
