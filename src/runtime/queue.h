/*
 * queue: an executor's inbound queue of tuple batches.
 *
 * Producers (other executors' threads, the worker's loop thread) hand over
 * whole batches, so the per-tuple cost of crossing threads is one pointer
 * store; the consumer (the owning executor thread) takes everything queued
 * at once. Two kinds, chosen by topology.executor.queue.type:
 *   bounded   - a lock-free multi-producer ring of batch slots (in the
 *               spirit of the LMAX Disruptor): producers wait when it is
 *               full, which is how backpressure reaches the spouts;
 *   unbounded - a mutex-guarded list; used where waiting could deadlock
 *               (spout ack paths, ackers) and when configured.
 * The consumer parks on a condition variable only after finding the queue
 * empty, and producers signal only when it is parked, so a busy pipeline
 * makes no syscalls.
 */
#ifndef SD_QUEUE_H
#define SD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tuple/tuple.h"

typedef struct tuple_batch {
    struct tuple_batch *next; /* consumer-side chaining only */
    uint32_t n, cap;
    sd_tuple *items[];
} tuple_batch;

tuple_batch *tuple_batch_new(uint32_t cap); /* NULL on allocation failure */
void tuple_batch_free(tuple_batch *b);      /* drops the refs it holds, then frees */

typedef struct queue queue;

/* slots: batches the bounded ring holds (rounded up to a power of two) */
queue *queue_new(bool bounded, size_t slots);
void queue_free(queue *q); /* frees any batches still queued */

/* Hands b to the consumer (ownership passes on success). A bounded queue
 * that is full waits for room unless never_block; returns 0, or -1 when the
 * queue is closed or (never_block) full. */
int queue_push(queue *q, tuple_batch *b, bool never_block);

/* Consumer: everything queued, oldest first, chained by ->next; waits up
 * to timeout_ns when empty (0 = do not wait). NULL when nothing arrived. */
tuple_batch *queue_pop_all(queue *q, int64_t timeout_ns);

size_t queue_depth(queue *q);  /* tuples queued (approximate, any thread) */
void queue_close(queue *q);    /* wakes every waiter; pushes fail after */

int64_t now_ns(void);          /* CLOCK_MONOTONIC */

#endif
