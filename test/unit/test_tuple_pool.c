/* tuple_pool: slab reuse, cross-thread release, close with tuples alive. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <malloc.h>

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
    size_t bytes_before = tuple_pool_slab_bytes();
    tuple_pool *p = tuple_pool_new();
    sd_tuple *first = make(p, 0);
    const void *first_slab = first->slab;
    assert_non_null(first_slab);
    tuple_unref(first);
    /* fill several slabs, checking every value, freeing as we go */
    int first_slab_again = 0;
    const void *slab = first_slab;
    const char *prev = (const char *)first;
    int slabs_seen = 1;
    for (int64_t i = 1; i < 20000; i++) {
        sd_tuple *t = make(p, i);
        assert_int_equal(tuple_values(t)[0].v.i, i);
        assert_int_equal(tuple_values(t)[1].v.s.len, 100);
        assert_int_equal(((uintptr_t)t) % 16, 0);
        /* a new slab starts, or the same one is carved again from its start */
        if (t->slab != slab || (const char *)t <= prev) {
            slab = t->slab;
            slabs_seen++;
            first_slab_again += slab == first_slab;
        }
        prev = (const char *)t;
        tuple_unref(t);
    }
    /* ~300 tuples a slab: dozens of slab changes, and since every tuple was
     * freed at once the first slab came back each time instead of a new one */
    assert_true(slabs_seen > 20);
    assert_int_equal(first_slab_again, slabs_seen - 1);
    /* no other slab was ever allocated */
    assert_int_equal(tuple_pool_slab_bytes() - bytes_before, 65536);
    tuple_pool_close(p);
    assert_int_equal(tuple_pool_slab_bytes(), bytes_before);
}

typedef struct { queue *q; int64_t got; } consumer_arg;

static void *consume(void *a) {
    consumer_arg *c = a;
    int64_t deadline = now_ns() + 20000000000LL;
    while (c->got < 100000 && now_ns() < deadline) {
        for (tuple_batch *b = queue_pop_all(c->q, 1000000); b;) {
            tuple_batch *n = b->next;
            for (uint32_t i = 0; i < b->n; i++) assert_int_equal(tuple_values(b->items[i])[0].v.i, c->got++);
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
        assert_int_equal(tuple_values(keep[i])[0].v.i, i);
        tuple_unref(keep[i]); /* the last one frees the pool (ASan/LSan check) */
    }
}

/* The memory a sparse sample of kept tuples holds, against the bytes of the
 * tuples kept: 1 tuple in 1,000 kept by a bolt (a window, a join), the rest
 * released as executed. With keep=1 through sd_tuple_keep, with keep=0
 * through sd_tuple_retain (which pins each kept tuple's slab). */
static double held_per_kept_byte(int keep, size_t *kept_bytes) {
    enum { N = 100000, EVERY = 1000 };
    sd_tuple *kept[N / EVERY];
    int nkept = 0;
    size_t before = tuple_pool_slab_bytes();
    tuple_pool *p = tuple_pool_new();
    for (int64_t i = 0; i < N; i++) {
        sd_tuple *t = make(p, i);
        if (i % EVERY == 0) {
            if (keep) {
                kept[nkept] = sd_tuple_keep(t);
                assert_non_null(kept[nkept]);
            } else {
                sd_tuple_retain(t);
                kept[nkept] = t;
            }
            nkept++;
        }
        tuple_unref(t); /* the callback returns */
    }
    tuple_pool_close(p); /* the executor stops: spare slabs go */
    size_t held = tuple_pool_slab_bytes() - before, data = 0;
    for (int i = 0; i < nkept; i++) {
        const sd_tuple *t = kept[i];
        assert_int_equal(tuple_values(t)[0].v.i, (int64_t)i * EVERY);
        assert_int_equal(tuple_values(t)[1].v.s.len, 100);
        data += sizeof *t + t->nvalues * sizeof(sd_value) + t->nanchors * sizeof(tuple_anchor) + t->data_len;
        if (!t->slab) held += malloc_usable_size(kept[i]);
    }
    for (int i = 0; i < nkept; i++) sd_tuple_release(kept[i]);
    assert_int_equal(tuple_pool_slab_bytes(), before);
    *kept_bytes = data;
    return (double)held / (double)data;
}

static void test_kept_tuples_cost_their_size(void **s) {
    (void)s;
    size_t data;
    double kept = held_per_kept_byte(1, &data);
    print_message("keep 1 in 1000: %zu bytes of tuples kept, %.2f bytes held per byte kept\n", data, kept);
    assert_true(kept >= 1.0);
    assert_true(kept < 1.5);
    double retained = held_per_kept_byte(0, &data);
    print_message("retain 1 in 1000: %.1f bytes held per byte kept\n", retained);
    assert_true(retained > 100.0); /* what sd_tuple_keep avoids: a slab per tuple */
}

/* a tuple that already has its own allocation is kept as it is; a kept copy
 * carries the acking state */
static void test_keep_copies_ack_state(void **s) {
    (void)s;
    tuple_pool *p = tuple_pool_new();
    tuple_anchor a = {.root = 77, .edge = 5};
    sd_value v[1] = {sd_str("abc", 3)};
    sd_tuple *t = tuple_new_in(p, v, 1, &a, 1);
    assert_non_null(t);
    t->ack_xor = 0x1234;
    t->src_task = 3;
    sd_tuple *k = sd_tuple_keep(t);
    assert_non_null(k);
    assert_ptr_not_equal(k, t);
    assert_null(k->slab);
    tuple_unref(t);
    tuple_pool_close(p); /* the slab and pool are gone; the copy lives on */
    assert_int_equal(k->ack_xor, 0x1234);
    assert_int_equal(k->src_task, 3);
    assert_int_equal(k->nanchors, 1);
    assert_int_equal(tuple_anchors(k)[0].root, 77);
    assert_memory_equal(tuple_values(k)[0].v.s.ptr, "abc", 3);
    sd_tuple *again = sd_tuple_keep(k);
    assert_ptr_equal(again, k);
    sd_tuple_release(again);
    sd_tuple_release(k);
}

/* A view (a chained task's input) borrows its emitter's strings: kept
 * with sd_tuple_keep it is copied; retained, it first gets its data in a
 * block of its own. Either way the kept values outlive the emitter's
 * buffer, and releasing frees everything (the sanitizer build checks). */
static void test_view_keep_and_retain(void **s) {
    (void)s;
    char word[8] = "alpha", blob[5] = {1, 2, 3, 0, 4};
    sd_value v[4] = {sd_str(word, 5), sd_int(9), sd_bytes(blob, sizeof blob), sd_str(word, 0)};
    tuple_anchor anc[2] = {{.root = 11, .edge = 12}, {.root = 21, .edge = 22}};
    sd_tuple *t = tuple_view_new();
    assert_non_null(t);
    tuple_view_set(t, v, 4, anc, 2);
    t->ack_xor = 0x55;
    t->src_task = 4;
    assert_ptr_equal(tuple_values(t)[0].v.s.ptr, word); /* borrowed: no copy */
    sd_tuple *k = sd_tuple_keep(t);
    assert_non_null(k);
    assert_ptr_not_equal(k, t);
    assert_int_equal(k->flags & (TUPLE_F_BORROWED | TUPLE_F_SIDE), 0);
    sd_tuple_retain(t);
    assert_int_equal(atomic_load(&t->refs), 2);
    assert_int_equal(t->flags & (TUPLE_F_BORROWED | TUPLE_F_SIDE), TUPLE_F_SIDE);
    assert_ptr_not_equal(tuple_values(t)[0].v.s.ptr, word);
    /* the emitter's buffers change once its call is over */
    memcpy(word, "omega", 5);
    memset(blob, 0x7f, sizeof blob);
    for (sd_tuple *x = k;; x = t) {
        assert_int_equal(x->src_task, 4);
        assert_int_equal(sd_tuple_size(x), 4);
        assert_memory_equal(sd_tuple_get(x, 0)->v.s.ptr, "alpha", 5);
        assert_int_equal(sd_tuple_get(x, 1)->v.i, 9);
        assert_memory_equal(sd_tuple_get(x, 2)->v.s.ptr, "\1\2\3\0\4", 5);
        assert_int_equal(sd_tuple_get(x, 3)->v.s.len, 0);
        assert_int_equal(x->nanchors, 2); /* the acking state goes along */
        assert_int_equal(tuple_anchors(x)[1].root, 21);
        assert_int_equal(tuple_anchors(x)[1].edge, 22);
        assert_int_equal(x->ack_xor, 0x55);
        if (x == t) break;
    }
    /* a kept view is kept as it is now that its data is its own */
    sd_tuple *again = sd_tuple_keep(t);
    assert_ptr_equal(again, t);
    sd_tuple_release(again);
    sd_tuple_release(k);
    sd_tuple_release(t); /* the caller's reference */
    sd_tuple_release(t); /* the last: frees the view and its block */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_survive_and_slabs_are_reused),
        cmocka_unit_test(test_cross_thread_release),
        cmocka_unit_test(test_close_with_tuples_alive),
        cmocka_unit_test(test_kept_tuples_cost_their_size),
        cmocka_unit_test(test_keep_copies_ack_state),
        cmocka_unit_test(test_view_keep_and_retain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
