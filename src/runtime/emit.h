/*
 * emit: the outgoing side of an executor (see emit.c). Every function runs
 * on the pool thread running the executor's slice (ex->th set).
 */
#ifndef SD_EMIT_H
#define SD_EMIT_H

#include "runtime/executor.h"

/* Emits values on topology stream stream_id: direct_task > 0 for direct
 * emits; anchors are bolt inputs (may be NULL); with_root: a spout emit
 * with message id msg_id. 0, or -1 after logging and counting the error. */
int emit_tuple(executor *ex, int stream_id, int direct_task, const sd_value *values, size_t n,
               sd_tuple *const *anchors, size_t nanchors, int with_root, uint64_t msg_id);
/* Queues a system tuple (acking) for task dest; sent without waiting. */
void emit_system(executor *ex, int stream_id, int dest, const sd_value *values, size_t n);
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

/* The acker task that tracks tree root. */
static inline int emit_acker_task(const worker_rt *rt, uint64_t root) {
    return rt->acker->first_task + (int)(root % (uint64_t)rt->acker->parallelism);
}

#endif
