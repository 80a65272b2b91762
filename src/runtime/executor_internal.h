/*
 * executor_internal: how the executor's own modules call each other, all
 * on the executor's thread. Not for use outside src/runtime.
 *   executor.c        runs spout_loop or bolt_loop on the task's thread;
 *   emit.c            tells the spout about new trees and about acks it
 *                     cannot track (spout_track, spout_defer_ack: inline
 *                     here, their slow paths in executor_spout.c).
 */
#ifndef SD_EXECUTOR_INTERNAL_H
#define SD_EXECUTOR_INTERNAL_H

#include "runtime/executor.h"

/* executor_spout.c: the spout's main loop, until the worker stops. */
void spout_loop(executor *ex);
/* executor_spout.c: room for one more root in the FIFO of trees in flight
 * (compacts or grows it). 0, or -1 when out of memory. */
int spout_fifo_make_room(executor *ex);
/* executor_spout.c: room for one more deferred ack. 0, or -1 when out of
 * memory (then msg_id has been acked inline). */
int spout_deferred_make_room(executor *ex, uint64_t msg_id);

/* Starts tracking tree root for message msg_id (timed from the round's
 * clock). 0, or -1 when out of memory (nothing tracked). Inline: one call
 * per spout emit, from emit.c. */
static inline int spout_track(executor *ex, uint64_t root, uint64_t msg_id) {
    int created;
    u64map_rec *rec = u64map_upsert(&ex->pending, root, &created);
    if (!rec) return -1;
    if (ex->fifo_len == ex->fifo_cap && spout_fifo_make_room(ex) != 0) {
        u64map_del(&ex->pending, root);
        return -1;
    }
    ex->fifo[(ex->fifo_head + ex->fifo_len++) % ex->fifo_cap] = root;
    rec->a = msg_id;
    rec->t = ex->round_ns; /* the round's clock: one clock read per round, not per tuple */
    atomic_store_explicit(&ex->pending_count, (int)ex->pending.len, memory_order_relaxed);
    return 0;
}

/* Acks msg_id after the current next_tuple returns (a message nothing
 * tracks: no acker, or no subscriber). Inline, as spout_track. */
static inline void spout_defer_ack(executor *ex, uint64_t msg_id) {
    if (ex->ndeferred == ex->deferred_cap && spout_deferred_make_room(ex, msg_id) != 0) return;
    ex->deferred_acks[ex->ndeferred++] = msg_id;
}

/* executor_bolt.c: the main loop of a bolt or acker, until the worker stops. */
void bolt_loop(executor *ex);

#endif
