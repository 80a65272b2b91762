/* tuple_pool: slab reuse, cross-thread release, close with tuples alive. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/queue.h"
#include "tuple/tuple_pool.h"

static sd_tuple *make(tuple_pool *p, int64_t i) {
    char payload[100];
    memset(payload, 'x', sizeof payload);
    sd_value v[2] = {sd_int(i), sd_bytes(payload, sizeof payload)};
    sd_tuple *t = tuple_new_in(p, v, 2, NULL, 0);
    assert_non_null(t);
    return t;
}

static void test_values_survive_and_slabs_are_reused(void **s) {
    (void)s;
    tuple_pool *p = tuple_pool_new();
    sd_tuple *first = make(p, 0);
    const void *first_slab = first->slab;
    assert_non_null(first_slab);
    tuple_unref(first);
    /* fill several slabs, checking every value, freeing as we go */
    for (int64_t i = 1; i < 20000; i++) {
        sd_tuple *t = make(p, i);
        assert_int_equal(t->values[0].v.i, i);
        assert_int_equal(t->values[1].v.s.len, 100);
        assert_int_equal(((uintptr_t)t) % 16, 0);
        tuple_unref(t);
    }
    tuple_pool_close(p);
}

typedef struct { queue *q; int64_t got; } consumer_arg;

static void *consume(void *a) {
    consumer_arg *c = a;
    int64_t deadline = now_ns() + 20000000000LL;
    while (c->got < 100000 && now_ns() < deadline) {
        for (tuple_batch *b = queue_pop_all(c->q, 1000000); b;) {
            tuple_batch *n = b->next;
            for (uint32_t i = 0; i < b->n; i++) assert_int_equal(b->items[i]->values[0].v.i, c->got++);
            tuple_batch_free(b); /* frees on this thread: slabs go home */
            b = n;
        }
    }
    return NULL;
}

static void test_cross_thread_release(void **s) {
    (void)s;
    tuple_pool *p = tuple_pool_new();
    consumer_arg c = {queue_new(true, 16), 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, consume, &c), 0);
    for (int64_t i = 0; i < 100000;) {
        tuple_batch *b = tuple_batch_new(64);
        while (b->n < 64 && i < 100000) b->items[b->n++] = make(p, i++);
        assert_int_equal(queue_push(c.q, b, false), 0);
    }
    pthread_join(th, NULL);
    assert_int_equal(c.got, 100000);
    tuple_pool_close(p);
    queue_free(c.q);
}

static void test_close_with_tuples_alive(void **s) {
    (void)s;
    tuple_pool *p = tuple_pool_new();
    sd_tuple *keep[1000];
    for (int i = 0; i < 1000; i++) keep[i] = make(p, i);
    tuple_pool_close(p); /* the owner goes away first */
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(keep[i]->values[0].v.i, i);
        tuple_unref(keep[i]); /* the last one frees the pool (ASan/LSan check) */
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_survive_and_slabs_are_reused),
        cmocka_unit_test(test_cross_thread_release),
        cmocka_unit_test(test_close_with_tuples_alive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
