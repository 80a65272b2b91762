/* latency_hist: buckets keep a bounded relative error, quantiles come out
 * ordered and capped by the exact maximum, an empty histogram reads 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/latency_hist.h"

static atomic_uint_fast64_t hist[LAT_BUCKETS];
static atomic_uint_fast64_t max_us;

static void reset(void) {
    for (int i = 0; i < LAT_BUCKETS; i++) atomic_store(&hist[i], 0);
    atomic_store(&max_us, 0);
}

static void test_empty(void **state) {
    (void)state;
    reset();
    assert_int_equal(lat_quantile(hist, &max_us, 0.5), 0);
    assert_int_equal(lat_quantile(hist, &max_us, 0.99), 0);
}

/* every value lands in a bucket whose upper bound is >= it and within 12.5% */
static void test_bucket_error(void **state) {
    (void)state;
    for (uint64_t us = 0; us < 2000000; us += us < 100 ? 1 : us / 7) {
        reset();
        lat_record(hist, &max_us, (int64_t)us * 1000 + 999); /* sub-microsecond part is dropped */
        atomic_store(&max_us, UINT64_MAX);                    /* read the bucket bound, not the max */
        uint64_t got = lat_quantile(hist, &max_us, 0.5);
        assert_true(got >= us);
        assert_true(got <= us + us / 8);
    }
    int last = -1;
    for (uint64_t us = 1; us < (1ULL << 40); us = us * 3 + 1) { /* buckets grow with the value */
        int b = lat_bucket(us);
        assert_true(b >= last);
        assert_true(b < LAT_BUCKETS);
        last = b;
    }
    assert_true(lat_bucket(UINT64_MAX) < LAT_BUCKETS); /* the largest value still has a bucket */
}

static void test_quantiles(void **state) {
    (void)state;
    reset();
    for (int i = 1; i <= 1000; i++) lat_record(hist, &max_us, (int64_t)i * 1000); /* 1..1000 us */
    lat_record(hist, &max_us, -5);                                            /* clock step: counts as 0 */
    assert_int_equal(atomic_load(&max_us), 1000);
    uint64_t p50 = lat_quantile(hist, &max_us, 0.5), p99 = lat_quantile(hist, &max_us, 0.99),
             p100 = lat_quantile(hist, &max_us, 1.0);
    assert_true(p50 >= 500 && p50 <= 500 + 500 / 8);
    assert_true(p99 >= 990 && p99 <= 1000);
    assert_int_equal(p100, 1000); /* capped by the exact maximum */
    assert_true(lat_quantile(hist, &max_us, 0.0) <= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_bucket_error),
        cmocka_unit_test(test_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
