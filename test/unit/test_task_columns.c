/* task_columns: a heartbeat's per-task counters as columns. Round trip,
 * refused shapes, and the size bounds: a 10,000-task heartbeat stays small,
 * and the largest topology the validator takes (TOPO_MAX_TASKS, every task
 * in one worker, every counter at its largest) fits the control channel. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/control.h"
#include "proto/task_columns.h"
#include "topology/topology.h"

/* n tasks with ids first.. and values from fill(i, col) */
static json_t *encode(int n, int first, int64_t (*fill)(int i, int col)) {
    int *ids = malloc((size_t)n * sizeof *ids);
    int64_t *vals = malloc((size_t)n * TCOL_COUNT * sizeof *vals);
    assert_non_null(ids);
    assert_non_null(vals);
    for (int i = 0; i < n; i++) {
        ids[i] = first + i;
        for (int c = 0; c < TCOL_COUNT; c++) vals[(size_t)i * TCOL_COUNT + c] = fill(i, c);
    }
    json_t *out = tcol_encode(ids, vals, (size_t)n);
    assert_non_null(out);
    free(ids);
    free(vals);
    return out;
}

static size_t dumped_size(const json_t *j) {
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    size_t n = strlen(text);
    free(text);
    return n;
}

static int64_t sample(int i, int c) {
    if (c == TCOL_CHAINED_TO) return i == 1 ? 1 : 0; /* task 2 runs in task 1's thread */
    if (c == TCOL_ERRORS || c == TCOL_LAT_P999) return 0;
    return (i + 1) * 100 + c;
}

typedef struct seen {
    int n;
    int tasks[4];
    int64_t v[4][TCOL_COUNT];
} seen;

static int keep(void *arg, int task, const int64_t *v) {
    seen *s = arg;
    if (s->n >= 4) return -E2BIG;
    s->tasks[s->n] = task;
    memcpy(s->v[s->n++], v, sizeof s->v[0]);
    return 0;
}

static void test_round_trip(void **state) {
    (void)state;
    json_t *cols = encode(3, 1, sample);
    /* all-zero columns are left out */
    assert_null(json_object_get(cols, "errors"));
    assert_null(json_object_get(cols, "lat_p999"));
    assert_non_null(json_object_get(cols, "chained_to"));
    assert_int_equal(tcol_size(cols), 3);
    seen s = {0};
    char err[200];
    assert_int_equal(tcol_each(cols, 3, keep, &s, err, sizeof err), 0);
    assert_int_equal(s.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.tasks[i], i + 1);
        for (int c = 0; c < TCOL_COUNT; c++) assert_int_equal(s.v[i][c], sample(i, c));
    }
    /* a subset shares the chosen columns only */
    json_t *sub = tcol_subset(cols, TCOL_REPORT_MASK);
    assert_non_null(sub);
    assert_ptr_equal(json_object_get(sub, "emitted"), json_object_get(cols, "emitted"));
    assert_null(json_object_get(sub, "executed"));
    assert_int_equal(json_object_size(sub), 5); /* task, emitted, acked, failed, chained_to */
    json_decref(sub);
    json_decref(cols);
}

static void test_refused(void **state) {
    (void)state;
    static const char *const bad[] = {
        "[]", "{}", "{\"task\":{}}", "{\"task\":[0]}", "{\"task\":[4]}", "{\"task\":[\"1\"]}",
        "{\"task\":[1,2],\"emitted\":[1]}", "{\"task\":[1],\"emitted\":[-1]}", "{\"task\":[1],\"acked\":[1.5]}",
        "{\"task\":[1],\"chained_to\":[4]}", "{\"task\":[1],\"failed\":{}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        assert_non_null(j);
        seen s = {0};
        char err[200] = "";
        if (tcol_each(j, 3, keep, &s, err, sizeof err) != -EINVAL) fail_msg("case %zu accepted", i);
        assert_true(strlen(err) > 0);
        assert_int_equal(s.n, 0); /* checked whole before any task is visited */
        json_decref(j);
    }
    /* unknown columns are left for newer readers */
    json_t *j = json_loads("{\"task\":[1],\"future\":[\"x\"]}", 0, NULL);
    char err[200];
    assert_int_equal(tcol_each(j, 3, NULL, NULL, err, sizeof err), 0);
    json_decref(j);
}

/* A 10,000-task worker of a busy run: every counter in the millions, a
 * spout's latencies, chained tasks. */
static int64_t busy(int i, int c) {
    if (c == TCOL_CHAINED_TO) return i % 2 ? i : 0;
    if (c == TCOL_EXHAUSTED) return 1;
    if (c >= TCOL_LAT_P50) return i == 0 ? 1234 : 0;
    return 1000000 + (int64_t)i * 97 + c;
}

/* ... and of the 10,000-task word count: small counts, most columns zero */
static int64_t wide(int i, int c) {
    if (c == TCOL_EMITTED || c == TCOL_TRANSFERRED) return i % 50;
    if (c == TCOL_RECEIVED || c == TCOL_EXECUTED || c == TCOL_ACKED) return i % 40;
    return 0;
}

static int64_t largest(int i, int c) {
    if (c == TCOL_CHAINED_TO) return i ? TOPO_MAX_TASKS : 0;
    if (c == TCOL_EXHAUSTED) return 1;
    return INT64_MAX;
}

#define BUSY_BYTES_PER_TASK 110 /* with every counter at 7 digits */
#define WIDE_BYTES_PER_TASK 24

static void test_sizes(void **state) {
    (void)state;
    json_t *j = encode(10000, 1, busy);
    size_t n = dumped_size(j);
    print_message("10,000 busy tasks: %zu bytes, %.1f a task\n", n, n / 10000.0);
    assert_true(n <= 10000u * BUSY_BYTES_PER_TASK);
    json_decref(j);
    j = encode(10000, 1, wide);
    n = dumped_size(j);
    print_message("10,000 word count tasks: %zu bytes, %.1f a task\n", n, n / 10000.0);
    assert_true(n <= 10000u * WIDE_BYTES_PER_TASK);
    json_decref(j);
    /* the largest topology, all in one worker, in a whole heartbeat message */
    j = encode(TOPO_MAX_TASKS, 1, largest);
    json_t *msg = json_pack("{s:s, s:I, s:i, s:o, s:b, s:I, s:I, s:b}", "type", "heartbeat", "time_ms",
                            (json_int_t)INT64_MAX, "worker_index", 1023, "task_columns", j, "idle", 0, "rss_kb",
                            (json_int_t)INT64_MAX, "waiting", (json_int_t)INT64_MAX, "throttled", 1);
    assert_non_null(msg);
    n = dumped_size(msg);
    print_message("%d tasks at their largest: %zu bytes (limit %u)\n", TOPO_MAX_TASKS, n, CONTROL_MAX_MSG);
    /* room left for the transport's figures */
    assert_true(n + 4096 <= CONTROL_MAX_MSG);
    json_decref(msg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
