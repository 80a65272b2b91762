/*
 * emit: the outgoing side of an executor (see emit.c). Every function runs
 * on the pool thread running the executor's slice (ex->th set).
 */
#ifndef SD_EMIT_H
#define SD_EMIT_H

#include "runtime/executor.h"

/* The paths of emit_tuple. emit_plain (no ackers: ex->unanchored) and
 * emit_plain_acked: an emit that is not direct, to one subscriber task
 * (the task chained to ex on ex->chain_stream, or one a shuffle picks);
 * they hand the other emits to emit_general. */
int emit_general(executor *ex, int stream_id, int direct_task, const sd_value *values, size_t n,
                 sd_tuple *const *anchors, size_t nanchors, int with_root, uint64_t msg_id);
int emit_plain(executor *ex, int stream_id, const sd_value *values, size_t n, int with_root, uint64_t msg_id);
int emit_plain_acked(executor *ex, int stream_id, const sd_value *values, size_t n, sd_tuple *const *anchors,
                     size_t nanchors, int with_root, uint64_t msg_id);
/* Emits values on topology stream stream_id: direct_task > 0 for direct
 * emits; anchors are bolt inputs (may be NULL); with_root: a spout emit
 * with message id msg_id. 0, or -1 after logging and counting the error.
 * Inline: it only chooses between the paths above. */
static inline int emit_tuple(executor *ex, int stream_id, int direct_task, const sd_value *values, size_t n,
                             sd_tuple *const *anchors, size_t nanchors, int with_root, uint64_t msg_id) {
    if (direct_task != 0) return emit_general(ex, stream_id, direct_task, values, n, anchors, nanchors, with_root, msg_id);
    if (ex->unanchored) return emit_plain(ex, stream_id, values, n, with_root, msg_id);
    return emit_plain_acked(ex, stream_id, values, n, anchors, nanchors, with_root, msg_id);
}
/* Holds one acking record (tuple/ackpkt.h) for task dest on system stream
 * stream_id; emit_flush sends the slice's records as packets, on the
 * acking path that never waits for data. */
static inline void emit_ack_record(executor *ex, int stream_id, int dest, uint32_t kind, uint64_t root,
                                   uint64_t xor, int32_t task) {
    ex->th->acks_by = ex;
    ack_stage_add(&ex->th->acks, ex, dest, stream_id, kind, root, xor, task);
}
/* The send function of a pool thread's ack stage (arg: its exec_thread):
 * one packet from src to dest. */
void emit_ack_packet(void *arg, void *src, int dest, int stream_id, const ackrec *recs, size_t n);
/* Hands every outgoing batch to its queue (or the stalled list) or the
 * transport. Tuples the
 * transport drops (their worker is down and its overflow full) have their
 * trees failed at once, so that the spouts replay them without waiting
 * for the message timeout; with acking off they are only counted (the
 * transport's tuples_dropped). */
void emit_flush(executor *ex);
/* Executes the tuples handed to chained tasks on this thread, in order
 * (they may hand on more). After every callback that may emit. */
void emit_chain_run(exec_thread *th);
/* Delivers the stalled batches, oldest first: 0 when none is left, -EAGAIN
 * when a queue is still full (ex->room is woken once it has room). */
int emit_retry_stalled(executor *ex);

/* The acker task that tracks tree root: chosen by the root's top 32 bits,
 * which are random (its low bits are its spout's index of the tree:
 * spout_trees.h), scaled to the ackers by a multiply rather than a
 * division (one per acking record). */
static inline int emit_acker_task(const worker_rt *rt, uint64_t root) {
    return rt->acker->first_task + (int)(((root >> 32) * (uint64_t)(uint32_t)rt->acker->parallelism) >> 32);
}

#endif
