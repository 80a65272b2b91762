/*
 * Unit tests for spout_trees: roots carry their entry's index and random
 * bits; a root is found until taken, a stale root (same entry, earlier
 * tree) never is; entries are reused; the table grows to the most trees
 * in flight and shrinks back once none is left.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "runtime/spout_trees.h"

static uint64_t rnd(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_add_get_take(void **st) {
    (void)st;
    spout_trees s;
    assert_int_equal(spout_trees_init(&s, 16), 0);
    uint64_t x = 12345;
    uint64_t a = spout_trees_add(&s, rnd(&x), 100, 5);
    uint64_t b = spout_trees_add(&s, rnd(&x), 101, 6);
    assert_true(a != 0 && b != 0 && a != b);
    assert_int_equal(s.len, 2);
    spout_tree *e = spout_trees_get(&s, b);
    assert_non_null(e);
    assert_int_equal(e->msg_id, 101);
    assert_int_equal(e->started, 6);
    assert_null(spout_trees_get(&s, 0));
    assert_null(spout_trees_get(&s, b ^ ((uint64_t)1 << 40))); /* same entry, other random bits */
    assert_null(spout_trees_get(&s, (b & ~(SPOUT_TREES_MAX - 1)) | 9)); /* an entry never used */
    spout_tree out;
    assert_int_equal(spout_trees_take(&s, a, &out), 1);
    assert_int_equal(out.msg_id, 100);
    assert_int_equal(spout_trees_take(&s, a, &out), 0); /* a second verdict: ignored */
    assert_null(spout_trees_get(&s, a));
    /* the freed entry is reused by the next tree; the old root stays unknown */
    uint64_t c = spout_trees_add(&s, rnd(&x), 102, 7);
    assert_int_equal(c & (SPOUT_TREES_MAX - 1), a & (SPOUT_TREES_MAX - 1));
    assert_true(c != a);
    assert_null(spout_trees_get(&s, a));
    assert_non_null(spout_trees_get(&s, c));
    /* random bits of all zeros or all ones still make a usable root */
    uint64_t z = spout_trees_add(&s, 0, 1, 0), o = spout_trees_add(&s, UINT64_MAX, 2, 0);
    assert_true(z != 0 && z != UINT64_MAX && o != 0 && o != UINT64_MAX);
    assert_non_null(spout_trees_get(&s, z));
    assert_non_null(spout_trees_get(&s, o));
    spout_trees_destroy(&s);
}

/* many trees in and out in random order: every tracked root is found with
 * its message, every taken one is not; then a burst grows the table and
 * shrinks it back once drained */
static void test_churn_and_burst(void **st) {
    (void)st;
    enum { LIVE = 500, ROUNDS = 50000, BURST = 5000 };
    spout_trees s;
    assert_int_equal(spout_trees_init(&s, 64), 0);
    uint64_t live[LIVE] = {0}, x = 99;
    for (int r = 0; r < ROUNDS; r++) {
        int k = (int)(rnd(&x) % LIVE);
        if (live[k]) {
            spout_tree out;
            assert_int_equal(spout_trees_take(&s, live[k], &out), 1);
            assert_int_equal(out.msg_id, (uint64_t)k);
            assert_null(spout_trees_get(&s, live[k]));
        }
        live[k] = spout_trees_add(&s, rnd(&x), (uint64_t)k, r);
        assert_true(live[k] != 0);
    }
    size_t n = 0;
    for (int k = 0; k < LIVE; k++) {
        if (!live[k]) continue;
        n++;
        spout_tree *e = spout_trees_get(&s, live[k]);
        assert_non_null(e);
        assert_int_equal(e->msg_id, (uint64_t)k);
    }
    assert_int_equal(s.len, n);
    assert_true(s.used <= LIVE); /* entries were reused, not spread */
    static uint64_t burst[BURST];
    for (int i = 0; i < BURST; i++) assert_true((burst[i] = spout_trees_add(&s, rnd(&x), 7, 0)) != 0);
    assert_true(s.cap >= BURST);
    for (int i = 0; i < BURST; i++) assert_int_equal(spout_trees_take(&s, burst[i], NULL), 1);
    for (int k = 0; k < LIVE; k++)
        if (live[k]) assert_int_equal(spout_trees_take(&s, live[k], NULL), 1);
    assert_int_equal(s.len, 0);
    assert_int_equal(s.cap, s.min_cap); /* drained: back to the initial room */
    assert_true(spout_trees_add(&s, rnd(&x), 1, 0) != 0);
    spout_trees_destroy(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_get_take),
        cmocka_unit_test(test_churn_and_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
