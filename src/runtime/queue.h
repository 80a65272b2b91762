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
 * A consumer run by the scheduler (sched.h) registers a notify callback,
 * called after every push (cheap when the task is already queued or
 * running), and producers that find a bounded ring full register a waiter,
 * woken once the consumer takes batches out: nobody blocks a pool thread.
 * A consumer on a thread of its own parks on a condition variable only
 * after finding the queue empty, and producers signal only when it is
 * parked, so a busy pipeline makes no syscalls.
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

/* A producer waiting for room in a full bounded queue: wake is called
 * once (on the consumer's thread, or on the producer's when the push
 * succeeds after all) and the waiter is unlinked before. Owned by the
 * producer; it must outlive its waits. */
typedef struct queue_waiter {
    struct queue_waiter *next;
    _Atomic(queue *) on;        /* the queue it waits on, or NULL */
    void (*wake)(struct queue_waiter *w);
} queue_waiter;

/* slots: batches the bounded ring holds (rounded up to a power of two) */
queue *queue_new(bool bounded, size_t slots);
void queue_free(queue *q); /* frees any batches still queued */

/* Hands b to the consumer (ownership passes on success). A bounded queue
 * that is full waits for room unless never_block; returns 0, or -1 when the
 * queue is closed or (never_block) full. */
int queue_push(queue *q, tuple_batch *b, bool never_block);

/* Calls notify(arg) after each successful push (set before any push). */
void queue_set_consumer(queue *q, void (*notify)(void *arg), void *arg);

/* Hands b to the consumer without waiting: 0 when queued (ownership
 * passes); -EAGAIN when full, and w will be woken once the consumer makes
 * room (the caller keeps b); -EPIPE when the queue is closed. */
int queue_push_or_wait(queue *q, tuple_batch *b, queue_waiter *w);
/* Stops waiting (no-op when w waits nowhere). */
void queue_waiter_cancel(queue_waiter *w);

/* Consumer: everything queued, oldest first, chained by ->next; waits up
 * to timeout_ns when empty (0 = do not wait). NULL when nothing arrived. */
tuple_batch *queue_pop_all(queue *q, int64_t timeout_ns);

size_t queue_depth(queue *q);  /* tuples queued (approximate, any thread) */
void queue_close(queue *q);    /* wakes every waiter; pushes fail after */

int64_t now_ns(void);          /* CLOCK_MONOTONIC */

#endif
