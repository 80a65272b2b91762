/* u64map and agemap: growth and shrinking, deletion under churn, and the acker's
 * generations forgetting old entries without a scan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/agemap.h"
#include "base/u64map.h"

static void test_grows_and_shrinks(void **s) {
    (void)s;
    u64map m;
    assert_int_equal(u64map_init(&m, 64), 0);
    size_t initial = m.cap;
    int created;
    for (uint64_t k = 1; k <= 100000; k++) {
        u64map_rec *r = u64map_upsert(&m, k, &created);
        assert_non_null(r);
        assert_int_equal(created, 1);
        r->a = k * 3;
    }
    assert_int_equal(m.len, 100000);
    size_t big = m.cap;
    assert_true(big >= 100000 * 4 / 3);
    /* a burst drained: the table comes back to about what is left */
    for (uint64_t k = 1; k <= 99990; k++) assert_int_equal(u64map_del(&m, k), 1);
    assert_int_equal(m.len, 10);
    assert_true(m.cap <= initial * 2);
    assert_true(m.cap >= initial); /* never below the initial size */
    for (uint64_t k = 99991; k <= 100000; k++) {
        u64map_rec *r = u64map_get(&m, k);
        assert_non_null(r);
        assert_int_equal(r->a, k * 3);
    }
    assert_null(u64map_get(&m, 5));
    assert_int_equal(u64map_del(&m, 5), 0);
    u64map_destroy(&m);
}

/* insert and delete churn at a steady size does not grow the table */
static void test_churn_keeps_size(void **s) {
    (void)s;
    u64map m;
    assert_int_equal(u64map_init(&m, 1024), 0);
    size_t cap = m.cap;
    int created;
    for (uint64_t k = 1; k <= 200000; k++) {
        assert_non_null(u64map_upsert(&m, k, &created));
        if (k > 500) assert_int_equal(u64map_del(&m, k - 500), 1);
    }
    assert_int_equal(m.len, 500);
    assert_int_equal(m.cap, cap);
    u64map_destroy(&m);
}

/* random keys in and out (as roots of trees are): after every delete each
 * key still in the table is found with its record, and none that left is
 * (deletion moves entries back along their probe run) */
static uint64_t rnd(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_random_churn_finds_every_key(void **s) {
    (void)s;
    enum { LIVE = 700, ROUNDS = 20000 };
    u64map m;
    assert_int_equal(u64map_init(&m, 64), 0);
    uint64_t live[LIVE] = {0}, x = 0x9e3779b97f4a7c15ULL;
    int created;
    for (int r = 0; r < ROUNDS; r++) {
        int k = (int)(rnd(&x) % LIVE);
        if (live[k] && r % 2) {
            assert_int_equal(u64map_del(&m, live[k]), 1);
            assert_null(u64map_get(&m, live[k]));
        } else if (live[k]) { /* by its record, as the acker deletes a tree it just completed */
            u64map_rec *g = u64map_get(&m, live[k]);
            assert_non_null(g);
            assert_true(u64map_holds(&m, g));
            u64map_del_rec(&m, g);
            assert_null(u64map_get(&m, live[k]));
        }
        uint64_t key = rnd(&x) | 1;
        u64map_rec *rec = u64map_upsert(&m, key, &created);
        assert_non_null(rec);
        assert_int_equal(created, 1);
        rec->a = key ^ 0x5a5a;
        live[k] = key;
        if (r % 997 == 0)
            for (int i = 0; i < LIVE; i++) {
                if (!live[i]) continue;
                u64map_rec *g = u64map_get(&m, live[i]);
                assert_non_null(g);
                assert_true(g->a == (live[i] ^ 0x5a5a));
            }
    }
    size_t n = 0;
    for (int i = 0; i < LIVE; i++) n += live[i] != 0;
    assert_int_equal(m.len, n);
    u64map_destroy(&m);
}

#define SEC 1000000000LL

static void test_agemap_forgets_after_one_to_two_periods(void **s) {
    (void)s;
    agemap m;
    assert_int_equal(agemap_init(&m, 16, 10 * SEC, 0), 0);
    int created;
    for (uint64_t k = 1; k <= 1000; k++) assert_non_null(agemap_upsert(&m, k, &created)); /* at t=0 */
    assert_int_equal(agemap_expire(&m, 5 * SEC), 0); /* not a period yet */
    assert_int_equal(agemap_expire(&m, 10 * SEC), 0); /* rotated: the old generation was empty */
    for (uint64_t k = 1001; k <= 1500; k++) assert_non_null(agemap_upsert(&m, k, &created)); /* at t=10 s */
    /* entries of both generations are found and updated where they are */
    u64map_rec *r = agemap_upsert(&m, 7, &created);
    assert_int_equal(created, 0);
    r->a = 99;
    assert_int_equal(agemap_get(&m, 7)->a, 99);
    assert_int_equal(agemap_del(&m, 8), 1);
    assert_int_equal(agemap_del(&m, 1200), 1);
    assert_int_equal(agemap_len(&m), 1498);
    /* by record, in either generation */
    agemap_del_rec(&m, agemap_get(&m, 9));
    agemap_del_rec(&m, agemap_upsert(&m, 1201, &created));
    assert_int_equal(created, 0);
    assert_null(agemap_get(&m, 9));
    assert_null(agemap_get(&m, 1201));
    assert_int_equal(agemap_len(&m), 1496);
    u64map_rec *back = agemap_upsert(&m, 9, &created); /* a late ack: a new entry */
    assert_int_equal(created, 1);
    agemap_del_rec(&m, back);
    assert_int_equal(agemap_expire(&m, 15 * SEC), 0);
    /* t=20 s: the t=0 entries (998 left) are forgotten, the t=10 s ones kept */
    assert_int_equal(agemap_expire(&m, 20 * SEC), 998);
    assert_null(agemap_get(&m, 7));
    assert_non_null(agemap_get(&m, 1001));
    assert_int_equal(agemap_len(&m), 498);
    assert_int_equal(agemap_expire(&m, 30 * SEC), 498);
    assert_int_equal(agemap_len(&m), 0);
    agemap_destroy(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_and_shrinks),
        cmocka_unit_test(test_churn_keeps_size),
        cmocka_unit_test(test_random_churn_finds_every_key),
        cmocka_unit_test(test_agemap_forgets_after_one_to_two_periods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
