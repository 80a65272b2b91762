/* queue: see queue.h. The bounded ring is a Vyukov-style bounded MPMC
 * queue used with a single consumer: each slot carries a sequence number
 * that tells producers and the consumer whose turn the slot is. */
#include "runtime/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "base/cpu.h"
#include "base/log.h"

#define QUEUE_SPINS 256


typedef struct ring_slot {
    atomic_size_t seq;
    tuple_batch *batch;
} ring_slot;

struct queue {
    bool bounded;
    atomic_bool closed;
    /* bounded ring */
    size_t mask;
    ring_slot *slots;
    _Alignas(64) atomic_size_t head; /* next slot producers claim */
    _Alignas(64) atomic_size_t tail; /* next slot the consumer reads */
    /* unbounded list */
    tuple_batch *list_head, *list_tail;
    /* parking */
    _Alignas(64) atomic_int consumer_parked;
    atomic_int producers_waiting;
    atomic_size_t depth;
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    /* a scheduled consumer and the producers waiting for room (lock) */
    void (*notify)(void *arg);
    void *notify_arg;
    queue_waiter *waiters;
    atomic_int nwaiters;
};

int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

tuple_batch *tuple_batch_new(uint32_t cap) {
    tuple_batch *b = malloc(sizeof *b + cap * sizeof(sd_tuple *));
    if (!b) {
        log_error("out of memory for a tuple batch of %u", cap);
        return NULL;
    }
    b->next = NULL;
    b->n = 0;
    b->cap = cap;
    return b;
}

void tuple_batch_free(tuple_batch *b) {
    if (!b) return;
    for (uint32_t i = 0; i < b->n; i++) tuple_unref(b->items[i]);
    free(b);
}

queue *queue_new(bool bounded, size_t slots) {
    queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->bounded = bounded;
    if (bounded) {
        size_t n = 2;
        while (n < slots) n <<= 1;
        q->slots = calloc(n, sizeof *q->slots);
        if (!q->slots) {
            free(q);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) atomic_init(&q->slots[i].seq, i);
        q->mask = n - 1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_cond_init(&q->not_full, &ca);
    pthread_condattr_destroy(&ca);
    return q;
}

void queue_free(queue *q) {
    if (!q) return;
    tuple_batch *b = queue_pop_all(q, 0);
    while (b) {
        tuple_batch *next = b->next;
        tuple_batch_free(b);
        b = next;
    }
    free(q->slots);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q);
}

static void deadline_in(struct timespec *ts, int64_t ns) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ns / 1000000000;
    ts->tv_nsec += ns % 1000000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

void queue_set_consumer(queue *q, void (*notify)(void *arg), void *arg) {
    q->notify = notify;
    q->notify_arg = arg;
}

static void wake_consumer(queue *q) {
    if (q->notify) {
        q->notify(q->notify_arg);
        return;
    }
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&q->consumer_parked)) {
        pthread_mutex_lock(&q->lock);
        pthread_cond_signal(&q->not_empty);
        pthread_mutex_unlock(&q->lock);
    }
}

/* 0 on success, -1 when the ring is full */
static int ring_try_push(queue *q, tuple_batch *b) {
    size_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
    for (;;) {
        ring_slot *s = &q->slots[pos & q->mask];
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                s->batch = b;
                atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
                return 0;
            }
        } else if (dif < 0) {
            return -1;
        } else {
            pos = atomic_load_explicit(&q->head, memory_order_relaxed);
        }
    }
}

int queue_push(queue *q, tuple_batch *b, bool never_block) {
    if (atomic_load_explicit(&q->closed, memory_order_relaxed)) return -1;
    size_t n = b->n;
    /* b->next is left alone until b is ours to link: a caller that keeps
     * a chain of batches must not lose it when the push fails */
    if (!q->bounded) {
        b->next = NULL;
        pthread_mutex_lock(&q->lock);
        if (q->list_tail) q->list_tail->next = b;
        else q->list_head = b;
        q->list_tail = b;
        atomic_fetch_add_explicit(&q->depth, n, memory_order_relaxed);
        if (atomic_load(&q->consumer_parked)) pthread_cond_signal(&q->not_empty);
        pthread_mutex_unlock(&q->lock);
        if (q->notify) q->notify(q->notify_arg);
        return 0;
    }
    /* counted before it is visible, so the consumer never subtracts first */
    atomic_fetch_add_explicit(&q->depth, n, memory_order_relaxed);
    for (int spins = 0;; spins++) {
        if (ring_try_push(q, b) == 0) {
            wake_consumer(q);
            return 0;
        }
        if (never_block || atomic_load(&q->closed)) {
            atomic_fetch_sub_explicit(&q->depth, n, memory_order_relaxed);
            return -1;
        }
        wake_consumer(q); /* a full ring whose consumer sleeps must be woken */
        if (spins < 64) continue;
        /* full: park until the consumer frees a slot; announce the wait, then
         * look once more (a consumer that emptied slots before seeing us
         * did not signal); the bounded wait guards against anything else */
        pthread_mutex_lock(&q->lock);
        atomic_fetch_add(&q->producers_waiting, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (ring_try_push(q, b) == 0) {
            atomic_fetch_sub(&q->producers_waiting, 1);
            pthread_mutex_unlock(&q->lock);
            wake_consumer(q);
            return 0;
        }
        struct timespec ts;
        deadline_in(&ts, 1000000);
        pthread_cond_timedwait(&q->not_full, &q->lock, &ts);
        atomic_fetch_sub(&q->producers_waiting, 1);
        pthread_mutex_unlock(&q->lock);
    }
}

/* lock held: unlinks w from q's waiters */
static void waiter_unlink(queue *q, queue_waiter *w) {
    for (queue_waiter **p = &q->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            w->next = NULL;
            atomic_store(&w->on, NULL);
            atomic_fetch_sub(&q->nwaiters, 1);
            return;
        }
    }
}

void queue_waiter_cancel(queue_waiter *w) {
    queue *q = atomic_load(&w->on);
    if (!q) return;
    pthread_mutex_lock(&q->lock);
    if (atomic_load(&w->on) == q) waiter_unlink(q, w);
    pthread_mutex_unlock(&q->lock);
}

/* consumer, after taking batches: wakes every producer waiting for room.
 * The wakes run under the lock, so a waiter is never reused while its
 * wake is pending (lock order: queue, then whatever wake takes). */
static void wake_waiters(queue *q) {
    pthread_mutex_lock(&q->lock);
    queue_waiter *w = q->waiters;
    q->waiters = NULL;
    while (w) {
        queue_waiter *next = w->next;
        w->next = NULL;
        atomic_store(&w->on, NULL);
        atomic_fetch_sub(&q->nwaiters, 1);
        w->wake(w);
        w = next;
    }
    pthread_mutex_unlock(&q->lock);
}

int queue_push_or_wait(queue *q, tuple_batch *b, queue_waiter *w) {
    if (atomic_load_explicit(&q->closed, memory_order_relaxed)) return -EPIPE;
    if (!q->bounded) return queue_push(q, b, true) == 0 ? 0 : -EPIPE;
    queue_waiter_cancel(w); /* a wait left over (the task ran for another reason) */
    size_t n = b->n;
    atomic_fetch_add_explicit(&q->depth, n, memory_order_relaxed);
    if (ring_try_push(q, b) == 0) {
        wake_consumer(q);
        return 0;
    }
    /* full: announce the wait, then look once more (a consumer that made
     * room before it could see us will not wake us) */
    pthread_mutex_lock(&q->lock);
    w->next = q->waiters;
    q->waiters = w;
    atomic_store(&w->on, q);
    atomic_fetch_add(&q->nwaiters, 1);
    atomic_thread_fence(memory_order_seq_cst);
    int rc = ring_try_push(q, b);
    if (rc == 0) waiter_unlink(q, w);
    pthread_mutex_unlock(&q->lock);
    if (rc == 0) {
        wake_consumer(q);
        return 0;
    }
    atomic_fetch_sub_explicit(&q->depth, n, memory_order_relaxed);
    return -EAGAIN;
}

static tuple_batch *ring_pop_all(queue *q) {
    tuple_batch *first = NULL, *last = NULL;
    size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        ring_slot *s = &q->slots[pos & q->mask];
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if ((intptr_t)seq - (intptr_t)(pos + 1) < 0) break; /* empty (single consumer) */
        tuple_batch *b = s->batch;
        atomic_store_explicit(&s->seq, pos + q->mask + 1, memory_order_release);
        pos++;
        b->next = NULL;
        if (last) last->next = b;
        else first = b;
        last = b;
    }
    atomic_store_explicit(&q->tail, pos, memory_order_relaxed);
    if (first) {
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&q->producers_waiting)) {
            pthread_mutex_lock(&q->lock);
            pthread_cond_broadcast(&q->not_full);
            pthread_mutex_unlock(&q->lock);
        }
        if (atomic_load(&q->nwaiters)) wake_waiters(q);
    }
    return first;
}

static tuple_batch *take_all(queue *q) {
    tuple_batch *b;
    if (q->bounded) {
        b = ring_pop_all(q);
    } else {
        pthread_mutex_lock(&q->lock);
        b = q->list_head;
        q->list_head = q->list_tail = NULL;
        pthread_mutex_unlock(&q->lock);
    }
    size_t n = 0;
    for (tuple_batch *x = b; x; x = x->next) n += x->n;
    if (n) atomic_fetch_sub_explicit(&q->depth, n, memory_order_relaxed);
    return b;
}

tuple_batch *queue_pop_all(queue *q, int64_t timeout_ns) {
    tuple_batch *b = take_all(q);
    if (b || timeout_ns <= 0) return b;
    /* a busy producer usually hands over the next batch within a few
     * microseconds: look again briefly before paying for a futex sleep
     * and the producer's wake-up call */
    for (int spin = 0; spin < QUEUE_SPINS; spin++) {
        cpu_relax();
        if (queue_depth(q) > 0 && (b = take_all(q)) != NULL) return b;
    }
    struct timespec ts;
    deadline_in(&ts, timeout_ns);
    pthread_mutex_lock(&q->lock);
    atomic_store(&q->consumer_parked, 1);
    atomic_thread_fence(memory_order_seq_cst);
    /* re-check after announcing we park: a producer that pushed before
     * seeing the flag has made its batch visible by now */
    bool empty = q->bounded ? (atomic_load_explicit(&q->slots[atomic_load(&q->tail) & q->mask].seq,
                                                    memory_order_acquire) !=
                               atomic_load(&q->tail) + 1)
                            : q->list_head == NULL;
    if (empty && !atomic_load(&q->closed)) pthread_cond_timedwait(&q->not_empty, &q->lock, &ts);
    atomic_store(&q->consumer_parked, 0);
    pthread_mutex_unlock(&q->lock);
    return take_all(q);
}

size_t queue_depth(queue *q) { return atomic_load_explicit(&q->depth, memory_order_relaxed); }

void queue_close(queue *q) {
    atomic_store(&q->closed, true);
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    wake_waiters(q); /* their next push fails: closed */
}
