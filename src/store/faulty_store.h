/*
 * faulty_store: a store (store.h) that passes every request and watch on to
 * another store, and fails, delays or loses them on demand, so that unit
 * tests of the code above the store (node, master, lease keeper) reach
 * their error paths. Requests and watch events are counted per operation,
 * so a test can also assert what traffic the code makes.
 *
 * Everything it delivers (results, failures, watch events) goes through one
 * queue, in order, from a timer on the loop: a callback never runs inside a
 * request call, and store_cancel / store_watch_cancel hold exactly (nothing
 * is delivered for a cancelled arg or watch, delayed or not).
 *
 * Recipes:
 *   store down (etcd refuses connections):
 *     faulty_store_fail(s, -ECONNREFUSED, FAULTY_ALWAYS);
 *   network cut (requests time out, watches go quiet):
 *     faulty_store_delay(s, timeout_ms);
 *     faulty_store_fail(s, -ETIMEDOUT, FAULTY_ALWAYS);
 *     faulty_store_drop_watch_events(s, true);
 *   then faulty_store_heal(s).
 *
 * Threads: none; runs on the loop passed in, like the store it wraps.
 */
#ifndef SD_FAULTY_STORE_H
#define SD_FAULTY_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <uv.h>

#include "store/store.h"

/* Operations, as bits of a mask. */
enum {
    FAULTY_OP_GET = 1u << 0,
    FAULTY_OP_LIST = 1u << 1,
    FAULTY_OP_PUT = 1u << 2,
    FAULTY_OP_DEL = 1u << 3,
    FAULTY_OP_TXN = 1u << 4,
    FAULTY_OP_LEASE_GRANT = 1u << 5,
    FAULTY_OP_LEASE_KEEPALIVE = 1u << 6,
    FAULTY_OP_LEASE_REVOKE = 1u << 7,
    FAULTY_OP_WATCH = 1u << 8, /* opening a watch */
    FAULTY_OP_REQUESTS = (1u << 8) - 1, /* every request that has a callback */
    FAULTY_OP_ALL = (1u << 9) - 1,
};

/* How a failing request fails. */
typedef enum {
    FAULTY_BEFORE,  /* never reaches the inner store; its callback gets err */
    FAULTY_AFTER,   /* the inner store carries it out, but the callback gets err
                     * instead of the answer (a reply lost on the way back) */
    FAULTY_AT_CALL, /* the request call itself returns err; no callback */
} faulty_mode;

#define FAULTY_ALWAYS UINT_MAX

/* Wraps inner, which it does not own: free this store first, then inner.
 * NULL on allocation failure. store_free() cancels everything sent on to
 * inner and closes a timer: run the loop once more to release the memory.
 * Not to be freed from one of its own callbacks. */
store *faulty_store_new(uv_loop_t *loop, store *inner);

/* The next count requests (of any op in FAULTY_OP_REQUESTS) fail with err
 * (FAULTY_BEFORE); count FAULTY_ALWAYS: every one until told otherwise;
 * count 0 or err 0: none. Replaces the failure rule set before. */
void faulty_store_fail(store *s, int err, unsigned count);
/* The same for the ops in the mask only, failing as mode says. A failure
 * result has err, and for a keepalive or revoke, lease = the request's
 * lease; nothing else. FAULTY_OP_WATCH in the mask: opening a watch fails
 * with err at the call (FAULTY_AT_CALL), or else succeeds and the watch gets
 * only STORE_EVENT_RESYNC (it could not be started from the revision). */
void faulty_store_fail_ops(store *s, unsigned ops, faulty_mode mode, int err, unsigned count);

/* Results and watch events that arrive from now on are held back ms
 * (failures too: a timeout takes time). Order is kept: nothing overtakes
 * what was queued before it. */
void faulty_store_delay(store *s, unsigned ms);

/* Every open watch gets STORE_EVENT_RESYNC now (after what is queued for
 * it), as after a compaction, and nothing more. */
void faulty_store_lose_watches(store *s);
/* on: watch events arriving from now on are swallowed (a silent
 * disconnect), for watches open now and opened later; events of a revision
 * partly delivered are still delivered, as etcd sends a revision whole.
 * off: the same as faulty_store_resume_watches. */
void faulty_store_drop_watch_events(store *s, bool on);
/* Ends dropping: each open watch starts again on the inner store from the
 * revision after the last one it received, as an etcd client reconnects.
 * A watch opened from revision 0 that has received nothing has no such
 * revision, and one the inner store cannot resume: they get
 * STORE_EVENT_RESYNC. */
void faulty_store_resume_watches(store *s);

/* No failures, no delay, watches resumed. Counters are kept. */
void faulty_store_heal(store *s);

/* How many requests (or watch openings) of the ops in the mask were made,
 * failed ones included. */
unsigned long faulty_store_count(store *s, unsigned ops);
void faulty_store_reset_counts(store *s);
/* Watch events swallowed so far (faulty_store_drop_watch_events). */
unsigned long faulty_store_dropped_events(store *s);

#endif
