/* Node reports (untrusted input) and the API views built from them and the
 * leader's state: what is kept, what is refused, what is summed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "master/api/views.h"
#include "master/mstate.h"
#include "master/reports.h"
#include "store/memstore.h"

#define WAIT_MS 3000
#define PKG "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define TID "wc-1-0000000a"

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    store *s;
    mstate *st;
    reports *r;
} fixture;

static void on_tick(uv_timer_t *t) { (void)t; }
static void on_state(void *arg) { (void)arg; }

static void on_put(void *arg, const store_result *r) {
    assert_int_equal(r->err, 0);
    (*(int *)arg)--;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->s = memstore_new(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    static const char *const kv[][2] = {
        {"/streamd/t/nodes/n1", "{\"id\":\"n1\",\"host\":\"h1\",\"slots\":[6700,6701]}"},
        {"/streamd/t/nodes/n2", "{\"id\":\"n2\",\"host\":\"h2\",\"slots\":[6700]}"},
        {"/streamd/t/topologies/wc",
         "{\"name\":\"wc\",\"id\":\"" TID "\",\"status\":\"active\",\"package\":\"" PKG "\",\"workers\":2,"
         "\"ntasks\":4,\"conf\":{},\"submit_time\":5,\"components\":[{\"id\":\"src\",\"kind\":\"spout\","
         "\"parallelism\":2,\"first_task\":1},{\"id\":\"out\",\"kind\":\"bolt\",\"parallelism\":2,\"first_task\":3}]}"},
        {"/streamd/t/assignments/" TID,
         "{\"topology_id\":\"" TID "\",\"active\":true,\"version\":1,\"workers\":["
         "{\"node\":\"n1\",\"host\":\"h1\",\"port\":6700,\"tasks\":[1,3]},"
         "{\"node\":\"n2\",\"host\":\"h2\",\"port\":6700,\"tasks\":[2,4]}]}"},
    };
    int left = 4;
    for (int i = 0; i < 4; i++) assert_int_equal(store_put(f->s, kv[i][0], kv[i][1], 0, on_put, &left), 0);
    f->st = mstate_new(&f->loop, f->s, "t", on_state, NULL);
    f->r = reports_new();
    assert_non_null(f->st);
    assert_non_null(f->r);
    mstate_start(f->st);
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while ((left > 0 || !mstate_synced(f->st)) && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(mstate_synced(f->st));
    assert_int_equal(json_object_size(mstate_map(f->st, MSTATE_ASSIGNMENTS)), 1);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    reports_free(f->r);
    mstate_free(f->st);
    store_free(f->s);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static int put(fixture *f, const char *node, const char *body, char *err) {
    return reports_put(f->r, f->st, node, body, strlen(body), 1000, err, 256);
}

/* a heartbeat's task columns (see proto/task_columns.h): task ids, then counters */
#define COLS(t, e, a, x) "{\"task_columns\":{\"task\":[" t "],\"emitted\":[" e "],\"acked\":[" a "],\"failed\":[" x "]}}"
#define NO_TASKS "{\"task_columns\":{\"task\":[]}}"

static void test_kept_and_ignored(void **state) {
    fixture *f = *state;
    char err[256];
    /* n1 runs tasks 1 and 3: task 2 (not its own) is dropped; an unknown topology and
     * a port not assigned to n1 are ignored */
    const char *body = "{\"node\":\"n1\",\"workers\":["
                       "{\"topology_id\":\"" TID "\",\"port\":6700,\"state\":\"running\",\"heartbeat\":"
                       COLS("1,3,2", "10,5,99", "8,0,99", "1,0,99") "},"
                       "{\"topology_id\":\"other-1-1\",\"port\":6701,\"heartbeat\":" NO_TASKS "},"
                       "{\"topology_id\":\"" TID "\",\"port\":6701,\"heartbeat\":" NO_TASKS "}]}";
    assert_int_equal(put(f, "n1", body, err), 1);
    const json_t *w = reports_worker(f->r, "n1", TID, 6700);
    assert_non_null(w);
    /* kept as sums per component */
    json_t *kept = json_object_get(w, "components");
    assert_int_equal(json_object_size(kept), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(kept, "src"), "emitted")), 10);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(kept, "out"), "emitted")), 5);
    assert_string_equal(json_string_value(json_object_get(w, "state")), "running");
    assert_null(reports_worker(f->r, "n1", TID, 6701));
    assert_int_equal(reports_node_time(f->r, "n1"), 1000);
    assert_int_equal(reports_node_time(f->r, "n2"), 0);

    /* task 4 runs chained into task 2 (topology.chaining) */
    body = "{\"node\":\"n2\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":"
           "{\"task_columns\":{\"task\":[2,4],\"emitted\":[20,1],\"acked\":[20,1],\"failed\":[0,1],"
           "\"chained_to\":[0,2]}}}]}";
    assert_int_equal(put(f, "n2", body, err), 1);

    /* the view sums the latest reports per component */
    json_t *v = view_topology(json_object_get(mstate_map(f->st, MSTATE_TOPOLOGIES), "wc"),
                              json_object_get(mstate_map(f->st, MSTATE_ASSIGNMENTS), TID), NULL, f->r, 1001, 9);
    assert_non_null(v);
    json_t *comps = json_object_get(v, "components");
    assert_int_equal(json_array_size(comps), 2);
    json_t *src = json_array_get(comps, 0), *out = json_array_get(comps, 1);
    assert_string_equal(json_string_value(json_object_get(src, "id")), "src");
    assert_int_equal(json_integer_value(json_object_get(src, "emitted")), 30);
    assert_int_equal(json_integer_value(json_object_get(src, "acked")), 28);
    assert_int_equal(json_integer_value(json_object_get(src, "failed")), 1);
    assert_int_equal(json_integer_value(json_object_get(out, "emitted")), 6);
    assert_int_equal(json_array_size(json_object_get(out, "tasks")), 2);
    assert_string_equal(json_string_value(json_object_get(out, "chained_into")), "src");
    assert_int_equal(json_integer_value(json_object_get(out, "chained_tasks")), 1);
    assert_null(json_object_get(src, "chained_into"));
    json_t *ws = json_object_get(v, "workers");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ws, 0), "state")), "running");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ws, 1), "state")), "running");
    json_decref(v);
    /* reports older than the staleness bound say nothing about the state */
    v = view_topology(json_object_get(mstate_map(f->st, MSTATE_TOPOLOGIES), "wc"),
                      json_object_get(mstate_map(f->st, MSTATE_ASSIGNMENTS), TID), NULL, f->r, 2000, 9);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(v, "workers"), 0), "state")),
                        "unknown");
    json_decref(v);

    /* why a worker crashes travels with the report; a bad shape is refused */
    assert_int_equal(put(f, "n2",
                         "{\"node\":\"n2\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,"
                         "\"state\":\"failed\",\"restarts\":3,\"last_exit\":\"OOM killed\","
                         "\"errors\":[\"task 1: cannot open x\"]}]}",
                         err),
                     1);
    v = view_topology(json_object_get(mstate_map(f->st, MSTATE_TOPOLOGIES), "wc"),
                      json_object_get(mstate_map(f->st, MSTATE_ASSIGNMENTS), TID), NULL, f->r, 1000, 9);
    json_t *crashed = NULL;
    for (size_t i = 0; i < json_array_size(json_object_get(v, "workers")); i++) {
        json_t *x = json_array_get(json_object_get(v, "workers"), i);
        if (strcmp(json_string_value(json_object_get(x, "node")), "n2") == 0) crashed = x;
    }
    assert_non_null(crashed);
    assert_int_equal(json_integer_value(json_object_get(crashed, "restarts")), 3);
    assert_string_equal(json_string_value(json_object_get(crashed, "last_exit")), "OOM killed");
    assert_string_equal(json_string_value(json_array_get(json_object_get(crashed, "errors"), 0)), "task 1: cannot open x");
    json_decref(v);
    assert_true(put(f, "n2",
                    "{\"node\":\"n2\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,"
                    "\"errors\":[1]}]}",
                    err) < 0);

    /* a worker not heard from yet: its state, no counters */
    assert_int_equal(put(f, "n2",
                         "{\"node\":\"n2\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,"
                         "\"pid\":12,\"state\":\"starting\",\"restarts\":0,\"last_exit\":0}]}",
                         err),
                     1);
    w = reports_worker(f->r, "n2", TID, 6700);
    assert_string_equal(json_string_value(json_object_get(w, "state")), "starting");
    assert_int_equal(json_object_size(json_object_get(w, "components")), 0);

    /* a new report replaces the node's previous one */
    assert_int_equal(put(f, "n1", "{\"node\":\"n1\",\"workers\":[]}", err), 0);
    assert_null(reports_worker(f->r, "n1", TID, 6700));
}

static void test_refused(void **state) {
    fixture *f = *state;
    char err[256];
    static const char *const bad[] = {
        "{\"node\":\"n1\",\"workers\":[",                          /* not JSON */
        "[1,2]",                                                   /* not an object */
        "{\"node\":\"n2\",\"workers\":[]}",                        /* another node's name */
        "{\"node\":\"n1\",\"workers\":{}}",                        /* workers not an array */
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":70000,\"heartbeat\":" NO_TASKS "}]}",
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"state\":\"bogus\","
        "\"heartbeat\":" NO_TASKS "}]}",
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":[]}]}",
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":" "{\"tasks\":[]}}]}",                                   /* the old per-task list */
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":" COLS("1", "-1", "0", "0") "}]}",                         /* negative counter */
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":" COLS("9", "1", "0", "0") "}]}",                          /* task out of range */
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":" COLS("1,3", "1", "0,0", "0,0") "}]}",                    /* a column shorter than the tasks */
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":" COLS("1", "\"x\"", "0", "0") "}]}",                      /* not a number */
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":" "{\"task_columns\":{\"task\":[1],\"chained_to\":[5]}}}]}", /* chained to a task that does not exist */
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":" COLS("1", "4611686018427387904", "0", "0") "}]}",        /* a counter too large to sum */
        "{\"node\":\"n1\",\"workers\":[{\"topology_id\":\"" TID "\",\"port\":6700,\"heartbeat\":" COLS("1,1,1,1,1", "1,1,1,1,1", "0,0,0,0,0", "0,0,0,0,0") "}]}", /* more tasks than exist */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = put(f, "n1", bad[i], err);
        if (rc != -EINVAL) fail_msg("case %zu: got %d", i, rc);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(reports_node_time(f->r, "n1"), 0); /* nothing kept */
    assert_int_equal(put(f, "n9", "{\"node\":\"n9\",\"workers\":[]}", err), -ENOENT);
}

static void test_views(void **state) {
    fixture *f = *state;
    json_t *nodes = mstate_map(f->st, MSTATE_NODES), *topos = mstate_map(f->st, MSTATE_TOPOLOGIES),
           *assigns = mstate_map(f->st, MSTATE_ASSIGNMENTS);
    json_t *masters = json_pack("{s:{s:s}, s:{s:s}}", "m1", "id", "m1", "m2", "id", "m2");
    json_t *leader = json_pack("{s:s, s:s}", "id", "m2", "api", "http://x:1");
    json_t *c = view_cluster("t", leader, masters, nodes, topos, assigns);
    assert_int_equal(json_integer_value(json_object_get(c, "masters")), 2);
    assert_int_equal(json_integer_value(json_object_get(c, "nodes")), 2);
    assert_int_equal(json_integer_value(json_object_get(c, "topologies")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "slots_total")), 3);
    assert_int_equal(json_integer_value(json_object_get(c, "slots_used")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "leader"), "id")), "m2");
    json_decref(c);
    json_t *m = view_masters(masters, leader);
    json_t *ml = json_object_get(m, "masters");
    assert_false(json_is_true(json_object_get(json_array_get(ml, 0), "leader")));
    assert_true(json_is_true(json_object_get(json_array_get(ml, 1), "leader")));
    json_decref(m);
    json_t *n = view_nodes(nodes, assigns, f->r);
    json_t *n1 = json_array_get(json_object_get(n, "nodes"), 0);
    assert_string_equal(json_string_value(json_object_get(n1, "id")), "n1");
    assert_int_equal(json_array_size(json_object_get(n1, "workers")), 1);
    json_decref(n);
    json_t *t = view_topologies(topos, assigns);
    json_t *t0 = json_array_get(json_object_get(t, "topologies"), 0);
    assert_string_equal(json_string_value(json_object_get(t0, "name")), "wc");
    assert_int_equal(json_integer_value(json_object_get(t0, "workers_assigned")), 2);
    json_decref(t);
    json_decref(masters);
    json_decref(leader);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kept_and_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_views, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
