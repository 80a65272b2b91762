/*
 * executor_internal: how the executor's own modules call each other, all
 * on the pool thread running the task's slice. Not for use outside
 * src/runtime.
 *   runner.c          runs spout_slice or bolt_slice on a pool thread;
 *   emit.c            tells the spout about new trees and about acks it
 *                     cannot track (spout_track, spout_defer_ack: inline
 *                     here, their slow paths in executor_spout.c).
 */
#ifndef SD_EXECUTOR_INTERNAL_H
#define SD_EXECUTOR_INTERNAL_H

#include "runtime/executor.h"

/* executor_spout.c: before the first slice. */
void spout_begin(executor *ex);
/* executor_spout.c: one slice of a spout: SCHED_MORE or SCHED_WAIT (then
 * *wake_at is when to run again without input). */
int spout_slice(executor *ex, int64_t *wake_at);
/* executor_spout.c: room for one more root in the FIFO of trees in flight
 * (compacts or grows it). 0, or -1 when out of memory. */
int spout_fifo_make_room(executor *ex);
/* executor_spout.c: room for one more deferred ack. 0, or -1 when out of
 * memory (then msg_id has been acked inline). */
int spout_deferred_make_room(executor *ex, uint64_t msg_id);

/* Starts tracking a new tree for message msg_id (timed from the round's
 * clock): its root, or 0 when out of memory (nothing tracked). Inline: one
 * call per spout emit, from emit.c. */
static inline uint64_t spout_track(executor *ex, uint64_t msg_id) {
    if (ex->fifo_len == ex->fifo_cap && spout_fifo_make_room(ex) != 0) return 0;
    /* the round's clock: one clock read per round, not per tuple */
    uint64_t root = spout_trees_add(&ex->pending, executor_random(ex), msg_id, ex->round_ns);
    if (!root) return 0;
    ex->fifo[(ex->fifo_head + ex->fifo_len++) & (ex->fifo_cap - 1)] = root;
    atomic_store_explicit(&ex->pending_count, (int)ex->pending.len, memory_order_relaxed);
    return root;
}

/* Acks msg_id after the current next_tuple returns (a message nothing
 * tracks: no acker, or no subscriber). Inline, as spout_track. */
static inline void spout_defer_ack(executor *ex, uint64_t msg_id) {
    if (ex->ndeferred == ex->deferred_cap && spout_deferred_make_room(ex, msg_id) != 0) return;
    ex->deferred_acks[ex->ndeferred++] = msg_id;
}

/* executor_bolt.c: before the first slice. */
void bolt_begin(executor *ex);
/* Executes one input tuple of a bolt or acker (the caller keeps its
 * reference). Inline: once per tuple, from executor_bolt.c and emit.c. */
static inline void bolt_execute_one(executor *ex, sd_tuple *t) {
    if (ex->comp->is_acker) acker_execute(ex, t);
    else ex->def->execute(ex->state, &ex->col, t);
    STAT_ADD(ex->executed, 1);
}
/* executor_bolt.c: a tick (or an acker's expiry scan) when due; returns
 * when the next one is (SCHED_NEVER: none). */
int64_t bolt_tick_due(executor *ex, int64_t now);
/* executor_bolt.c: one slice of a bolt or acker, as spout_slice. */
int bolt_slice(executor *ex, int64_t *wake_at);

#endif
