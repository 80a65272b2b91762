/* grouping: each grouping picks destination tasks as specified. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/executor.h"

#define FIRST 10
#define NTASKS 4

static executor ex;
static topo_component comp;
static topo_input input;
static int field_index[1] = {0};
static int local_tasks[NTASKS];
static route_target tg;

static void setup_wide(topo_grouping g, int nlocal, int ntasks) {
    grouping_free_state(&ex);
    memset(&ex, 0, sizeof ex);
    ex.rng = 12345;
    comp.first_task = FIRST;
    comp.parallelism = ntasks;
    input.grouping = g;
    input.nfields = 1;
    input.field_index = field_index;
    tg.comp = &comp;
    tg.input = &input;
    tg.ntasks = ntasks;
    tg.nlocal = nlocal;
    for (int i = 0; i < nlocal; i++) local_tasks[i] = FIRST + 2 + i; /* tasks 12, 13 are local */
    tg.local_tasks = local_tasks;
}

static void setup_target(topo_grouping g, int nlocal) { setup_wide(g, nlocal, NTASKS); }

static int choose_word(const char *w, int *out) {
    sd_value v = sd_str(w, (uint32_t)strlen(w));
    return grouping_choose(&ex, &tg, &v, 1, out);
}

static void test_fields_same_key_same_task(void **s) {
    (void)s;
    setup_target(GROUP_FIELDS, 0);
    int seen[NTASKS] = {0};
    for (int k = 0; k < 200; k++) {
        char w[16];
        snprintf(w, sizeof w, "key%d", k);
        int out[NTASKS], first;
        assert_int_equal(choose_word(w, out), 1);
        first = out[0];
        assert_in_range(first, FIRST, FIRST + NTASKS - 1);
        for (int rep = 0; rep < 5; rep++) {
            assert_int_equal(choose_word(w, out), 1);
            assert_int_equal(out[0], first);
        }
        seen[first - FIRST]++;
    }
    for (int i = 0; i < NTASKS; i++) assert_true(seen[i] > 20); /* keys spread over every task */
}

static void test_all_every_task(void **s) {
    (void)s;
    setup_target(GROUP_ALL, 0);
    int out[NTASKS];
    assert_int_equal(choose_word("x", out), NTASKS);
    for (int i = 0; i < NTASKS; i++) assert_int_equal(out[i], FIRST + i);
}

static void test_global_lowest_task(void **s) {
    (void)s;
    setup_target(GROUP_GLOBAL, 0);
    for (int k = 0; k < 10; k++) {
        int out[NTASKS];
        assert_int_equal(choose_word(k % 2 ? "a" : "b", out), 1);
        assert_int_equal(out[0], FIRST);
    }
}

static void spread_evenly(topo_grouping g, int nlocal, int lo, int n, int tolerance) {
    setup_target(g, nlocal);
    int count[NTASKS] = {0};
    for (int k = 0; k < 4000; k++) {
        int out[NTASKS];
        assert_int_equal(choose_word("same", out), 1);
        assert_in_range(out[0], lo, lo + n - 1);
        count[out[0] - FIRST]++;
    }
    for (int i = lo - FIRST; i < lo - FIRST + n; i++)
        assert_in_range(count[i], 4000 / n - tolerance, 4000 / n + tolerance);
}

static void test_shuffle_even(void **s) { (void)s; spread_evenly(GROUP_SHUFFLE, 0, FIRST, NTASKS, 1); }
static void test_none_random_spread(void **s) { (void)s; spread_evenly(GROUP_NONE, 0, FIRST, NTASKS, 200); }
static void test_local_or_shuffle_prefers_local(void **s) {
    (void)s;
    spread_evenly(GROUP_LOCAL_OR_SHUFFLE, 2, FIRST + 2, 2, 1);
}
static void test_local_or_shuffle_without_local(void **s) {
    (void)s;
    spread_evenly(GROUP_LOCAL_OR_SHUFFLE, 0, FIRST, NTASKS, 1);
}

static void test_partial_key_two_candidates(void **s) {
    (void)s;
    /* one hot key alone: split evenly over its two candidate tasks; keys
     * whose two candidates differ (3 in 4 for 4 tasks) use both */
    int split = 0;
    for (int k = 0; k < 40; k++) {
        setup_target(GROUP_PARTIAL_KEY, 0);
        char w[16];
        snprintf(w, sizeof w, "hot%d", k);
        int hot[NTASKS] = {0}, used = 0;
        for (int r = 0; r < 1000; r++) {
            int out[NTASKS];
            assert_int_equal(choose_word(w, out), 1);
            assert_in_range(out[0], FIRST, FIRST + NTASKS - 1);
            hot[out[0] - FIRST]++;
        }
        for (int i = 0; i < NTASKS; i++) used += hot[i] > 0;
        assert_in_range(used, 1, 2);
        if (used == 2) {
            split++;
            for (int i = 0; i < NTASKS; i++)
                if (hot[i]) assert_in_range(hot[i], 499, 501);
        }
    }
    assert_in_range(split, 20, 40); /* expected 30 */
    /* 200 keys sent 100 times each, interleaved: each key goes to at most
     * two tasks, always the same two, and the load is balanced */
    setup_target(GROUP_PARTIAL_KEY, 0);
    enum { KEYS = 200, REPS = 100 };
    static int count[KEYS][NTASKS];
    memset(count, 0, sizeof count);
    for (int r = 0; r < REPS; r++)
        for (int k = 0; k < KEYS; k++) {
            char w[16];
            snprintf(w, sizeof w, "key%d", k);
            int out[NTASKS];
            assert_int_equal(choose_word(w, out), 1);
            assert_in_range(out[0], FIRST, FIRST + NTASKS - 1);
            count[k][out[0] - FIRST]++;
        }
    int per_task[NTASKS] = {0};
    for (int k = 0; k < KEYS; k++)
        for (int i = 0; i < NTASKS; i++) per_task[i] += count[k][i];
    /* the producer's load is balanced over every task */
    for (int i = 0; i < NTASKS; i++)
        assert_in_range(per_task[i], KEYS * REPS / NTASKS * 9 / 10, KEYS * REPS / NTASKS * 11 / 10);
    /* another producer sending the keys in the reverse order uses, for each
     * key, no task outside the same two */
    setup_target(GROUP_PARTIAL_KEY, 0);
    for (int r = 0; r < 10; r++)
        for (int k = KEYS - 1; k >= 0; k--) {
            char w[16];
            snprintf(w, sizeof w, "key%d", k);
            int out[NTASKS];
            assert_int_equal(choose_word(w, out), 1);
            count[k][out[0] - FIRST]++;
        }
    for (int k = 0; k < KEYS; k++) {
        int used = 0;
        for (int i = 0; i < NTASKS; i++) used += count[k][i] > 0;
        assert_in_range(used, 1, 2);
    }
}

/* A target wider than PK_LOAD_SLOTS: the producer's estimate stays
 * PK_LOAD_SLOTS counters (no counter per task of the topology: this
 * executor has no runtime at all), and the two choices still take the
 * load of skewed keys off the busiest task, which hashing alone cannot. */
static void test_partial_key_wide_target_bounded(void **s) {
    (void)s;
    enum { WIDE = 8000, KEYS = 20000, HOT = 4000 };
    static int load[WIDE], hashed[WIDE];
    memset(load, 0, sizeof load);
    memset(hashed, 0, sizeof hashed);
    long sent = 0;
    for (int pass = 0; pass < 2; pass++) {
        setup_wide(pass ? GROUP_FIELDS : GROUP_PARTIAL_KEY, 0, WIDE);
        /* key k is sent HOT / (k + 1) + 1 times (Zipf-like), interleaved */
        for (int r = 0; r <= HOT; r++)
            for (int k = 0; k < KEYS && HOT / (k + 1) + 1 > r; k++) {
                char w[16];
                snprintf(w, sizeof w, "w%d", k);
                int out[1];
                assert_int_equal(choose_word(w, out), 1);
                assert_in_range(out[0], FIRST, FIRST + WIDE - 1);
                (pass ? hashed : load)[out[0] - FIRST]++;
                sent += !pass;
            }
        if (pass == 0) {
            size_t bytes = grouping_state_bytes(&ex);
            print_message("partial key, %d tasks: %zu bytes of estimate\n", WIDE, bytes);
            assert_true(bytes <= PK_LOAD_SLOTS * sizeof(uint32_t) + 64);
        }
    }
    int most = 0, most_hashed = 0;
    for (int i = 0; i < WIDE; i++) {
        if (load[i] > most) most = load[i];
        if (hashed[i] > most_hashed) most_hashed = hashed[i];
    }
    print_message("busiest task: %d with two choices, %d hashed (%ld tuples)\n", most, most_hashed, sent);
    assert_true(most_hashed > HOT);             /* the hottest key's task */
    assert_true(most <= most_hashed * 6 / 10);  /* split over two */
    /* a hot key still splits over its two tasks */
    setup_wide(GROUP_PARTIAL_KEY, 0, WIDE);
    int first = -1, firsts = 0, total = 2000;
    for (int r = 0; r < total; r++) {
        int out[1];
        assert_int_equal(choose_word("hot", out), 1);
        if (first < 0) first = out[0];
        firsts += out[0] == first;
    }
    assert_in_range(firsts, total / 2 - 1, total / 2 + 1);
    /* a narrow target: a counter per task, nothing more */
    setup_wide(GROUP_PARTIAL_KEY, 0, NTASKS);
    int out[1];
    assert_int_equal(choose_word("x", out), 1);
    assert_true(grouping_state_bytes(&ex) <= NTASKS * sizeof(uint32_t) + 64);
    grouping_free_state(&ex);
}

static void test_direct_not_chosen(void **s) {
    (void)s;
    setup_target(GROUP_DIRECT, 0);
    int out[NTASKS];
    assert_int_equal(choose_word("x", out), 0); /* only emit_direct reaches it */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_same_key_same_task),
        cmocka_unit_test(test_all_every_task),
        cmocka_unit_test(test_global_lowest_task),
        cmocka_unit_test(test_shuffle_even),
        cmocka_unit_test(test_none_random_spread),
        cmocka_unit_test(test_local_or_shuffle_prefers_local),
        cmocka_unit_test(test_local_or_shuffle_without_local),
        cmocka_unit_test(test_partial_key_two_candidates),
        cmocka_unit_test(test_partial_key_wide_target_bounded),
        cmocka_unit_test(test_direct_not_chosen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
