/* reconcile + mstate on the in-memory store: the leader writes assignments
 * from nodes and topologies alone; a second pass writes nothing; a new
 * leader after failover rewrites nothing still valid; a dead node's worker
 * moves (the others keep their slots and tasks); status and removal follow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "master/election.h"
#include "master/master_ctx.h"
#include "master/mstate.h"
#include "master/reconcile.h"
#include "store/memstore.h"

#define WAIT_MS 3000
#define PKG "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    store *s;
    master_ctx m[2];
    int64_t lease[2];
} fixture;

static void on_tick(uv_timer_t *t) { (void)t; }

static void on_leader(void *arg, bool leader) {
    master_ctx *m = arg;
    m->leading = leader;
    m->term++;
    if (leader) mstate_start(m->state);
    else mstate_stop(m->state);
}

static int state_changes;
static void on_state(void *arg) {
    (void)arg;
    state_changes++;
}

typedef struct answer {
    bool done;
    store_result r;
    char value[2048];
    int64_t mod_rev;
} answer;

static void on_answer(void *arg, const store_result *r) {
    answer *a = arg;
    a->r = *r;
    a->r.kvs = NULL;
    a->value[0] = '\0';
    if (r->nkvs > 0) {
        snprintf(a->value, sizeof a->value, "%.*s", (int)r->kvs[0].value_len, r->kvs[0].value);
        a->mod_rev = r->kvs[0].mod_rev;
    }
    a->done = true;
}

static bool run_until(fixture *f, const bool *flag) {
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (!*flag && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    return *flag;
}

static void on_put_counted(void *arg, const store_result *r) {
    assert_int_equal(r->err, 0);
    (*(int *)arg)--;
}

/* many puts at once; waits for all of them */
static void put_many(fixture *f, char (*keys)[64], char (*values)[400], int n) {
    int left = n;
    for (int i = 0; i < n; i++) assert_int_equal(store_put(f->s, keys[i], values[i], 0, on_put_counted, &left), 0);
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (left > 0 && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(left, 0);
}

static void settle(fixture *f) {
    for (int i = 0; i < 30; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void put(fixture *f, const char *key, const char *value) {
    answer a = {0};
    char full[256];
    snprintf(full, sizeof full, "/streamd/t/%s", key);
    assert_int_equal(value ? store_put(f->s, full, value, 0, on_answer, &a) : store_del(f->s, full, false, on_answer, &a), 0);
    assert_true(run_until(f, &a.done));
    assert_int_equal(a.r.err, 0);
}

/* the stored assignment of tid (NULL if none) and its mod revision */
static json_t *assignment(fixture *f, const char *tid, int64_t *mod_rev) {
    answer a = {0};
    char key[256];
    snprintf(key, sizeof key, "/streamd/t/assignments/%s", tid);
    assert_int_equal(store_get(f->s, key, on_answer, &a), 0);
    assert_true(run_until(f, &a.done));
    if (mod_rev) *mod_rev = a.mod_rev;
    return a.r.nkvs ? json_loads(a.value, 0, NULL) : NULL;
}

static int64_t grant(fixture *f) {
    answer a = {0};
    assert_int_equal(store_lease_grant(f->s, 30, on_answer, &a), 0);
    assert_true(run_until(f, &a.done));
    return a.r.lease;
}

static void lead(fixture *f, int i) {
    master_ctx *m = &f->m[i];
    f->lease[i] = grant(f);
    election_set_lease(m->el, f->lease[i]);
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (!(m->leading && mstate_synced(m->state)) && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(m->leading && mstate_synced(m->state));
}

/* one reconciler pass, its writes landed; returns the number of writes */
static int pass(fixture *f, int i) {
    settle(f);
    int n = recon_run(&f->m[i]);
    assert_true(n >= 0);
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (json_object_size(f->m[i].pending_assign) > 0 && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(json_object_size(f->m[i].pending_assign), 0);
    settle(f);
    return n;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->s = memstore_new(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    for (int i = 0; i < 2; i++) {
        master_ctx *m = &f->m[i];
        m->loop = &f->loop;
        m->st = f->s;
        m->cluster = "t";
        snprintf(m->id, sizeof m->id, "m%d", i);
        m->pending_assign = json_object();
        m->state = mstate_new(&f->loop, f->s, "t", on_state, m);
        election_options o = {.cluster = "t", .id = m->id, .host = "h", .api = "http://h:1", .retry_ms = 50};
        m->el = election_new(&f->loop, f->s, &o, on_leader, m);
        assert_non_null(m->state);
        assert_non_null(m->el);
    }
    put(f, "nodes/n1", "{\"id\":\"n1\",\"host\":\"h1\",\"slots\":[6700,6701]}");
    put(f, "nodes/n2", "{\"id\":\"n2\",\"host\":\"h2\",\"slots\":[6700,6701]}");
    put(f, "topologies/wc",
        "{\"name\":\"wc\",\"id\":\"wc-1-00000001\",\"status\":\"active\",\"package\":\"" PKG "\",\"workers\":2,"
        "\"ntasks\":4,\"conf\":{\"topology.workers\":\"2\"},\"submit_time\":1}");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    for (int i = 0; i < 2; i++) {
        election_free(f->m[i].el);
        mstate_free(f->m[i].state);
        json_decref(f->m[i].pending_assign);
    }
    store_free(f->s);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static const char *worker_node(json_t *a, size_t i) {
    return json_string_value(json_object_get(json_array_get(json_object_get(a, "workers"), i), "node"));
}

static int worker_port(json_t *a, size_t i) {
    return (int)json_integer_value(json_object_get(json_array_get(json_object_get(a, "workers"), i), "port"));
}

static void test_assign_and_failover(void **state) {
    fixture *f = *state;
    lead(f, 0);
    assert_int_equal(pass(f, 0), 1);
    int64_t rev1;
    json_t *a = assignment(f, "wc-1-00000001", &rev1);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(a, "topology_name")), "wc");
    assert_string_equal(json_string_value(json_object_get(a, "package")), PKG);
    assert_string_equal(json_string_value(json_object_get(a, "topology_path")), "topology.yaml");
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "conf"), "topology.workers")), "2");
    assert_true(json_is_object(json_object_get(a, "overrides")));
    assert_true(json_is_true(json_object_get(a, "active")));
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 1);
    json_t *ws = json_object_get(a, "workers");
    assert_int_equal(json_array_size(ws), 2);
    assert_string_not_equal(worker_node(a, 0), worker_node(a, 1)); /* spread */
    json_t *t0 = json_object_get(json_array_get(ws, 0), "tasks");
    assert_int_equal(json_array_size(t0), 2);
    assert_int_equal(json_integer_value(json_array_get(t0, 0)), 1);
    assert_int_equal(json_integer_value(json_array_get(t0, 1)), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ws, 0), "host")),
                        strcmp(worker_node(a, 0), "n1") == 0 ? "h1" : "h2");

    /* nothing changed: nothing written */
    assert_int_equal(pass(f, 0), 0);

    /* failover: the first leader's lease ends; the second leads and rewrites nothing */
    answer r = {0};
    assert_int_equal(store_lease_revoke(f->s, f->lease[0], on_answer, &r), 0);
    assert_true(run_until(f, &r.done));
    lead(f, 1);
    assert_int_equal(pass(f, 1), 0);
    int64_t rev2;
    json_t *b = assignment(f, "wc-1-00000001", &rev2);
    assert_int_equal(rev2, rev1);
    json_decref(b);

    /* the deposed leader cannot write (it was told, or its guard fails) */
    settle(f);
    assert_false(f->m[0].leading);

    /* n2 dies: its worker moves to n1's free slot; the other keeps slot and tasks */
    const char *stay = strcmp(worker_node(a, 0), "n1") == 0 ? "0" : "1";
    int keep = stay[0] - '0';
    put(f, "nodes/n2", NULL);
    assert_int_equal(pass(f, 1), 1);
    b = assignment(f, "wc-1-00000001", NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "version")), 2);
    assert_string_equal(worker_node(b, 0), "n1");
    assert_string_equal(worker_node(b, 1), "n1");
    assert_int_equal(worker_port(b, (size_t)keep), worker_port(a, (size_t)keep));
    assert_int_not_equal(worker_port(b, 0), worker_port(b, 1));
    json_t *tk = json_object_get(json_array_get(json_object_get(b, "workers"), 1), "tasks");
    assert_int_equal(json_integer_value(json_array_get(tk, 0)), 2);
    json_decref(a);
    json_decref(b);
}

static void test_status_and_removal(void **state) {
    fixture *f = *state;
    lead(f, 0);
    assert_int_equal(pass(f, 0), 1);
    put(f, "topologies/wc",
        "{\"name\":\"wc\",\"id\":\"wc-1-00000001\",\"status\":\"inactive\",\"package\":\"" PKG "\",\"workers\":2,"
        "\"ntasks\":4,\"conf\":{},\"submit_time\":1}");
    assert_int_equal(pass(f, 0), 1);
    json_t *a = assignment(f, "wc-1-00000001", NULL);
    assert_true(json_is_false(json_object_get(a, "active")));
    json_decref(a);
    /* a bad record counts as absent: its assignment goes */
    put(f, "topologies/wc", "{\"name\":\"wc\",\"id\":\"wc-1-00000001\",\"status\":\"bogus\"}");
    assert_int_equal(pass(f, 0), 1);
    assert_null(assignment(f, "wc-1-00000001", NULL));
    /* no nodes: an assignment with no workers, filled when nodes come */
    put(f, "nodes/n1", NULL);
    put(f, "nodes/n2", NULL);
    put(f, "topologies/late",
        "{\"name\":\"late\",\"id\":\"late-2-00000002\",\"status\":\"active\",\"package\":\"" PKG "\",\"workers\":3,"
        "\"ntasks\":3,\"conf\":{},\"submit_time\":2}");
    assert_int_equal(pass(f, 0), 1);
    a = assignment(f, "late-2-00000002", NULL);
    assert_int_equal(json_array_size(json_object_get(a, "workers")), 0);
    json_decref(a);
    put(f, "nodes/n3", "{\"id\":\"n3\",\"host\":\"h3\",\"slots\":[7000,7001,7002,7003]}");
    assert_int_equal(pass(f, 0), 1);
    a = assignment(f, "late-2-00000002", NULL);
    assert_int_equal(json_array_size(json_object_get(a, "workers")), 3);
    json_decref(a);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1200 nodes x 4 slots, 400 topologies x 12 workers: every slot used; a pass
 * over the unchanged cluster computes everything again and writes nothing */
static void test_cluster_scale(void **state) {
    fixture *f = *state;
    put(f, "topologies/wc", NULL);
    char(*keys)[64] = calloc(1600, sizeof *keys);
    char(*values)[400] = calloc(1600, sizeof *values);
    assert_non_null(keys);
    assert_non_null(values);
    for (int i = 0; i < 1200; i++) {
        snprintf(keys[i], sizeof keys[i], "/streamd/t/nodes/node%04d", i);
        snprintf(values[i], sizeof values[i],
                 "{\"id\":\"node%04d\",\"host\":\"10.0.%d.%d\",\"slots\":[6700,6701,6702,6703]}", i, i / 250,
                 i % 250);
    }
    for (int i = 0; i < 400; i++) {
        snprintf(keys[1200 + i], sizeof keys[0], "/streamd/t/topologies/t%03d", i);
        snprintf(values[1200 + i], sizeof values[0],
                 "{\"name\":\"t%03d\",\"id\":\"t%03d-1-00000000\",\"status\":\"active\",\"package\":\"" PKG
                 "\",\"workers\":12,\"ntasks\":40,\"conf\":{\"topology.workers\":\"12\"},\"submit_time\":%d}",
                 i, i, 100 + i);
    }
    put_many(f, keys, values, 1600);
    free(keys);
    free(values);
    lead(f, 0);
    double t0 = now_s();
    assert_int_equal(pass(f, 0), 400);
    double first = now_s() - t0;
    t0 = now_s();
    assert_int_equal(recon_run(&f->m[0]), 0);
    double again = now_s() - t0;
    print_message("reconciled 400 topologies on 1200 nodes: %.3f s with the writes, %.3f s unchanged\n", first, again);
    assert_true(again < 1.0);
    json_t *a = assignment(f, "t399-1-00000000", NULL);
    assert_int_equal(json_array_size(json_object_get(a, "workers")), 12);
    json_decref(a);
}

/* A watch that cannot start where the list left off (the history is gone)
 * ends with RESYNC: the feed is listed again and misses nothing. */
static void test_resync(void **state) {
    fixture *f = *state;
    mstate *st = f->m[0].state;
    mstate_start(st); /* the lists are answered at today's revision ... */
    enum { N = 9000 };  /* ... and more changes than the store's history holds follow at once */
    static char keys[N][64], values[N][400];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "/streamd/t/nodes/x%05d", i);
        snprintf(values[i], sizeof values[i], "{\"id\":\"x%05d\",\"host\":\"h\",\"slots\":[1]}", i);
    }
    state_changes = 0;
    put_many(f, keys, values, N);
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while ((!mstate_synced(st) || json_object_size(mstate_map(st, MSTATE_NODES)) < N + 2) && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(json_object_size(mstate_map(st, MSTATE_NODES)), N + 2);
    assert_true(state_changes < 100); /* relisted, not fed event by event */
    mstate_stop(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_assign_and_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_and_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_scale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
