/* queue: bounded ring and unbounded list, ordering, blocking when full. */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "runtime/queue.h"

static tuple_batch *batch_of(int first, int n) {
    tuple_batch *b = tuple_batch_new((uint32_t)n);
    assert_non_null(b);
    for (int i = 0; i < n; i++) {
        sd_value v = sd_int(first + i);
        b->items[b->n++] = tuple_new(&v, 1, NULL, 0);
    }
    return b;
}

/* pops everything, checks values continue from *next, frees */
static int drain(queue *q, int64_t *next, int64_t timeout) {
    int got = 0;
    for (tuple_batch *b = queue_pop_all(q, timeout); b;) {
        tuple_batch *n = b->next;
        for (uint32_t i = 0; i < b->n; i++) {
            assert_int_equal(tuple_values(b->items[i])[0].v.i, *next);
            (*next)++;
            got++;
        }
        tuple_batch_free(b);
        b = n;
    }
    return got;
}

static void fifo_order(bool bounded) {
    queue *q = queue_new(bounded, 8);
    assert_non_null(q);
    for (int i = 0; i < 5; i++) assert_int_equal(queue_push(q, batch_of(i * 3, 3), false), 0);
    assert_int_equal(queue_depth(q), 15);
    int64_t next = 0;
    assert_int_equal(drain(q, &next, 0), 15);
    assert_int_equal(queue_depth(q), 0);
    assert_null(queue_pop_all(q, 1000000)); /* empty: waits 1 ms, returns NULL */
    queue_free(q);
}

static void test_bounded_fifo(void **s) { (void)s; fifo_order(true); }
static void test_unbounded_fifo(void **s) { (void)s; fifo_order(false); }

static void test_bounded_full_never_block(void **s) {
    (void)s;
    queue *q = queue_new(true, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(queue_push(q, batch_of(i, 1), true), 0);
    tuple_batch *extra = batch_of(4, 1), *chained = batch_of(5, 1);
    extra->next = chained; /* the caller's own chain of waiting batches */
    assert_int_equal(queue_push(q, extra, true), -1); /* full, and told not to wait */
    assert_ptr_equal(extra->next, chained);           /* a failed push keeps the chain */
    tuple_batch_free(extra);
    tuple_batch_free(chained);
    int64_t next = 0;
    assert_int_equal(drain(q, &next, 0), 4);
    queue_free(q);
}

typedef struct { queue *q; int first, batches; } producer_arg;

static void *producer(void *p) {
    producer_arg *a = p;
    for (int i = 0; i < a->batches; i++) {
        tuple_batch *b = batch_of(a->first + i * 4, 4);
        if (queue_push(a->q, b, false) != 0) {
            tuple_batch_free(b); /* refused: still ours */
            return (void *)1;
        }
    }
    return NULL;
}

/* a producer far ahead of a small ring waits (backpressure) and loses nothing */
static void test_bounded_backpressure(void **s) {
    (void)s;
    queue *q = queue_new(true, 4);
    producer_arg a = {q, 0, 2000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, &a), 0);
    int64_t next = 0, deadline = now_ns() + 20000000000LL;
    while (next < 8000 && now_ns() < deadline) {
        /* 4 slots of 4, plus the batch the blocked producer is pushing
         * (counted from the start of its push) */
        assert_true(queue_depth(q) <= 4 * 4 + 4);
        drain(q, &next, 1000000);
    }
    void *rc;
    pthread_join(t, &rc);
    assert_null(rc);
    assert_int_equal(next, 8000);
    queue_free(q);
}

/* several producers on one small queue (the ThreadSanitizer build runs this
 * too): every tuple arrives once, and each producer's tuples in its order */
#define NPROD 4
#define PER_PROD 1500 /* batches of 4 per producer */
static void several_producers(bool bounded) {
    queue *q = queue_new(bounded, 4);
    assert_non_null(q);
    producer_arg a[NPROD];
    pthread_t t[NPROD];
    for (int p = 0; p < NPROD; p++) {
        a[p] = (producer_arg){q, p * 1000000, PER_PROD};
        assert_int_equal(pthread_create(&t[p], NULL, producer, &a[p]), 0);
    }
    int64_t next[NPROD] = {0}, got = 0, deadline = now_ns() + 30000000000LL;
    while (got < NPROD * PER_PROD * 4 && now_ns() < deadline) {
        for (tuple_batch *b = queue_pop_all(q, 1000000); b;) {
            tuple_batch *n = b->next;
            for (uint32_t i = 0; i < b->n; i++) {
                int64_t v = tuple_values(b->items[i])[0].v.i;
                int p = (int)(v / 1000000);
                assert_true(p >= 0 && p < NPROD);
                assert_int_equal(v % 1000000, next[p]);
                next[p]++;
                got++;
            }
            tuple_batch_free(b);
            b = n;
        }
    }
    for (int p = 0; p < NPROD; p++) {
        void *rc;
        pthread_join(t[p], &rc);
        assert_null(rc);
        assert_int_equal(next[p], PER_PROD * 4);
    }
    assert_int_equal(got, NPROD * PER_PROD * 4);
    queue_free(q);
}

static void test_several_producers_bounded(void **s) { (void)s; several_producers(true); }
static void test_several_producers_unbounded(void **s) { (void)s; several_producers(false); }

static void test_close_wakes_blocked_producer(void **s) {
    (void)s;
    queue *q = queue_new(true, 2);
    producer_arg a = {q, 0, 100};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, &a), 0);
    int64_t deadline = now_ns() + 10000000000LL;
    while (queue_depth(q) < 12 && now_ns() < deadline) usleep(1000); /* let it fill the ring */
    assert_int_equal(queue_depth(q), 12); /* 2 slots of 4, and the batch waiting for room */
    queue_close(q);
    void *rc;
    pthread_join(t, &rc);
    assert_ptr_equal(rc, (void *)1); /* its push failed instead of waiting forever */
    queue_free(q);
}

static int woken;
static void on_room(queue_waiter *w) { (void)w; woken++; }
static int notified;
static void on_push(void *arg) { (void)arg; notified++; }

/* a full ring does not block a scheduled producer: it waits, and is woken
 * once the consumer takes batches; the consumer is notified of pushes */
static void test_push_or_wait(void **s) {
    (void)s;
    queue *q = queue_new(true, 4);
    queue_set_consumer(q, on_push, NULL);
    queue_waiter w = {.wake = on_room};
    for (int i = 0; i < 4; i++) assert_int_equal(queue_push_or_wait(q, batch_of(i, 1), &w), 0);
    assert_int_equal(notified, 4);
    tuple_batch *extra = batch_of(4, 1);
    assert_int_equal(queue_push_or_wait(q, extra, &w), -EAGAIN); /* the caller keeps extra */
    assert_int_equal(woken, 0);
    assert_int_equal(queue_depth(q), 4);
    int64_t next = 0;
    assert_int_equal(drain(q, &next, 0), 4);
    assert_int_equal(woken, 1); /* room: the waiter is woken, once */
    assert_int_equal(queue_push_or_wait(q, extra, &w), 0);
    assert_int_equal(drain(q, &next, 0), 1);
    assert_int_equal(woken, 1); /* nobody waited this time */
    /* a waiter cancelled is not woken; a closed queue refuses */
    for (int i = 0; i < 4; i++) assert_int_equal(queue_push_or_wait(q, batch_of(5 + i, 1), &w), 0);
    extra = batch_of(9, 1);
    assert_int_equal(queue_push_or_wait(q, extra, &w), -EAGAIN);
    queue_waiter_cancel(&w);
    assert_int_equal(drain(q, &next, 0), 4);
    assert_int_equal(woken, 1);
    queue_close(q);
    assert_int_equal(queue_push_or_wait(q, extra, &w), -EPIPE);
    tuple_batch_free(extra);
    queue_free(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounded_fifo),
        cmocka_unit_test(test_unbounded_fifo),
        cmocka_unit_test(test_bounded_full_never_block),
        cmocka_unit_test(test_bounded_backpressure),
        cmocka_unit_test(test_close_wakes_blocked_producer),
        cmocka_unit_test(test_several_producers_bounded),
        cmocka_unit_test(test_several_producers_unbounded),
        cmocka_unit_test(test_push_or_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
