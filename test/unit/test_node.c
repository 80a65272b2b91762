/* node: spawning, heartbeats to the store, restart on crash and on stale
 * heartbeats, graceful stop and SIGKILL after the deadline. The worker is
 * test/fake_worker.py (speaks the control protocol), so no runtime needed. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/memstore.h"
#include "test_store_sync.h"
#include "node/node.h"
#include "proto/task_columns.h"
#include "node/node_internal.h" /* node_worker_send, to push control messages at a worker */

#define CLUSTER "t"
#define TID "topo-1"

typedef struct fx {
    uv_loop_t loop;
    store *st;
    node *nd;
    conf *c;
    char dir[PATH_MAX];
    char exe[PATH_MAX];
    bool stopped;
} fx;

/* test/fake_worker.py, found from this file's path relative to the build root */
static void find_fake_worker(char *out, size_t cap) {
    const char *env = getenv("STREAMD_FAKE_WORKER");
    if (env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    char self[PATH_MAX], src[PATH_MAX * 2];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0'; /* <build>/test/unit */
    if (__FILE__[0] == '/') snprintf(src, sizeof src, "%s", __FILE__);
    else snprintf(src, sizeof src, "%s/../../%s", self, __FILE__);
    *strrchr(src, '/') = '\0'; /* <source>/test/unit */
    int m = snprintf(out, cap, "%.*s/../fake_worker.py", (int)(cap > 32 ? cap - 32 : 0), src);
    assert_true(m > 0 && (size_t)m < cap);
    assert_int_equal(access(out, X_OK), 0);
}

static void set(conf *c, const char *kv) {
    char err[256];
    if (conf_set_kv(c, kv, err, sizeof err) != 0) fail_msg("%s", err);
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/streamd-test-node-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    find_fake_worker(f->exe, sizeof f->exe);
    setenv("FAKE_WORKER_DIR", f->dir, 1);
    setenv("FAKE_WORKER_MODE", "normal", 1);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->st = memstore_new(&f->loop);
    f->c = conf_new();
    char kv[PATH_MAX + 64];
    snprintf(kv, sizeof kv, "streamd.local.dir=%s", f->dir);
    set(f->c, kv);
    set(f->c, "cluster.name=" CLUSTER);
    set(f->c, "supervisor.slots.ports=7001,7002");
    set(f->c, "supervisor.worker.restart.delay.ms=100");
    set(f->c, "supervisor.worker.start.timeout.secs=10"); /* python starts slowly on a busy machine */
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    if (f->nd) node_free(f->nd);
    store_free(f->st);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    conf_free(f->c);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

typedef bool (*pred)(fx *f, void *arg);

static void on_tick(uv_timer_t *t) { (void)t; }
static void on_closed(uv_handle_t *h) { (void)h; }

/* runs the loop until p holds or ms pass (a 5 ms tick keeps UV_RUN_ONCE short) */
static bool wait_for(fx *f, pred p, void *arg, uint64_t ms) {
    uv_timer_t tick;
    uv_timer_init(&f->loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    bool ok;
    while (!(ok = p(f, arg)) && uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
    }
    uv_close((uv_handle_t *)&tick, on_closed);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return ok;
}

/* what the node knows of worker n1:port (with its latest heartbeat), or NULL */
static json_t *status(fx *f, int port) {
    json_t *all = node_workers_json(f->nd), *found = NULL, *e;
    size_t i;
    json_array_foreach(all, i, e) {
        if (json_integer_value(json_object_get(e, "port")) == port) found = json_incref(e);
    }
    json_decref(all);
    return found;
}

/* the status key of worker n1:port in the store, or NULL */
static json_t *status_key(fx *f, int port) {
    char key[256];
    snprintf(key, sizeof key, "/streamd/" CLUSTER "/workers/" TID "/n1:%d", port);
    char *v = ts_get(&f->loop, f->st, key);
    json_t *j = v ? json_loads(v, 0, NULL) : NULL;
    free(v);
    return j;
}

typedef struct want {
    int port;
    int restarts;   /* at least */
    int64_t not_pid; /* a pid different from this */
} want;

static bool has_status(fx *f, void *arg) {
    want *w = arg;
    json_t *j = status(f, w->port);
    bool ok = j && json_integer_value(json_object_get(j, "restarts")) >= w->restarts &&
              json_integer_value(json_object_get(j, "pid")) != w->not_pid &&
              tcol_size(json_object_get(json_object_get(j, "heartbeat"), "task_columns")) > 0;
    json_decref(j);
    return ok;
}

static bool no_status(fx *f, void *arg) {
    json_t *j = status_key(f, *(int *)arg);
    json_decref(j);
    return j == NULL;
}

static bool is_stopped(fx *f, void *arg) {
    (void)arg;
    return f->stopped;
}

static bool is_registered(fx *f, void *arg) {
    (void)arg;
    return node_registered(f->nd);
}

static void on_stopped(void *arg) { ((fx *)arg)->stopped = true; }

static void put_assignment(fx *f, const char *cleanup, const char *hb) {
    json_t *a = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:[{s:s,s:s,s:i,s:[i,i]}, {s:s,s:s,s:i,s:[i]}, "
                          "{s:s,s:s,s:i,s:[i,i]}]}",
                          "topology_id", TID, "topology_name", "topo", "topology_path", "/nonexistent.yaml", "conf",
                          "task.cleanup.timeout.sec", cleanup, "worker.heartbeat.interval.ms", hb, "workers", "node",
                          "n1", "host", "127.0.0.1", "port", 7001, "tasks", 1, 4, "node", "other", "host", "10.0.0.2",
                          "port", 7001, "tasks", 2, "node", "n1", "host", "127.0.0.1", "port", 7002, "tasks", 3, 5);
    assert_non_null(a);
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    assert_int_equal(ts_put(&f->loop, f->st, "/streamd/" CLUSTER "/assignments/" TID, text, 0, NULL), 0);
    free(text);
}

static bool pid_alive(int64_t pid) { return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH); }

static void test_spawn_heartbeat_crash_restart_stop(void **state) {
    fx *f = *state;
    setenv("FAKE_WORKER_MODE", "crash_once", 1);
    put_assignment(f, "1", "100"); /* before the node starts: picked up by listing */
    f->nd = node_new(&f->loop, f->st, f->c, "n1", f->exe);
    assert_non_null(f->nd);
    assert_true(wait_for(f, is_registered, NULL, 5000));
    char *reg = ts_get(&f->loop, f->st, "/streamd/" CLUSTER "/nodes/n1");
    assert_non_null(reg);
    assert_non_null(strstr(reg, "7002"));
    free(reg);
    /* each worker crashes once after its first heartbeat and comes back */
    want w1 = {.port = 7001, .restarts = 1}, w2 = {.port = 7002, .restarts = 1};
    assert_true(wait_for(f, has_status, &w1, 10000));
    assert_true(wait_for(f, has_status, &w2, 10000));
    assert_int_equal(node_restarts(f->nd), 2);
    /* the assignment message as the worker got it */
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/assign-7002.json", f->dir);
    json_t *a = json_load_file(path, 0, NULL);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(a, "type")), "assignment");
    assert_string_equal(json_string_value(json_object_get(a, "cluster")), CLUSTER);
    assert_string_equal(json_string_value(json_object_get(a, "topology_id")), TID);
    assert_int_equal(json_integer_value(json_object_get(a, "worker_index")), 2);
    assert_int_equal(json_array_size(json_object_get(a, "workers")), 3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "conf"), "task.cleanup.timeout.sec")), "1");
    json_decref(a);
    /* the worker's output went to its log file */
    snprintf(path, sizeof path, "%s/logs/" TID "/worker-7001.log", f->dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > 0);
    /* the node keeps the latest heartbeat in memory */
    json_t *s = status(f, 7001);
    int64_t pid = json_integer_value(json_object_get(s, "pid"));
    assert_true(pid_alive(pid));
    assert_int_equal(tcol_size(json_object_get(json_object_get(s, "heartbeat"), "task_columns")), 2);
    json_decref(s);
    /* the store has the state (written on changes only), not the counters */
    s = status_key(f, 7001);
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "state")), "running");
    assert_int_equal(json_integer_value(json_object_get(s, "pid")), pid);
    assert_int_equal(json_integer_value(json_object_get(s, "restarts")), 1);
    assert_null(json_object_get(s, "tasks"));
    json_decref(s);
    /* removing the assignment stops the workers; their status goes away */
    assert_int_equal(ts_del(&f->loop, f->st, "/streamd/" CLUSTER "/assignments/" TID, false), 1);
    int p1 = 7001, p2 = 7002;
    assert_true(wait_for(f, no_status, &p1, 5000));
    assert_true(wait_for(f, no_status, &p2, 5000));
    for (int i = 0; i < 50 && pid_alive(pid); i++) uv_sleep(20); /* reaped by the node's loop */
    node_stop(f->nd, on_stopped, f);
    assert_true(wait_for(f, is_stopped, NULL, 5000));
    assert_null(ts_get(&f->loop, f->st, "/streamd/" CLUSTER "/nodes/n1"));
}

/* The store says the node's lease is gone: every worker stops at once, the
 * node registers again with a new lease and starts them again. */
static void test_lease_lost_stops_workers(void **state) {
    fx *f = *state;
    f->nd = node_new(&f->loop, f->st, f->c, "n1", f->exe);
    assert_non_null(f->nd);
    put_assignment(f, "0", "100");
    want w1 = {.port = 7001};
    assert_true(wait_for(f, has_status, &w1, 10000));
    json_t *s = status(f, 7001);
    int64_t pid = json_integer_value(json_object_get(s, "pid"));
    json_decref(s);
    ts_wait_t w = {0};
    assert_int_equal(store_get(f->st, "/streamd/" CLUSTER "/nodes/n1", ts_cb, &w), 0);
    ts_result *r = ts_wait(&f->loop, &w);
    assert_int_equal(r->nkvs, 1);
    int64_t lease = r->kvs[0].lease;
    assert_true(lease > 0);
    ts_result_clear(r);
    w = (ts_wait_t){0};
    assert_int_equal(store_lease_revoke(f->st, lease, ts_cb, &w), 0);
    assert_int_equal(ts_wait(&f->loop, &w)->err, 0);
    ts_result_clear(&w.r);
    /* the old process is stopped, a new one runs under the new registration */
    want again = {.port = 7001, .not_pid = pid};
    assert_true(wait_for(f, has_status, &again, 10000));
    for (int i = 0; i < 100 && pid_alive(pid); i++) uv_sleep(20);
    assert_false(pid_alive(pid));
    assert_true(wait_for(f, is_registered, NULL, 5000));
    node_stop(f->nd, on_stopped, f);
    assert_true(wait_for(f, is_stopped, NULL, 8000));
}

static void test_stop_deadline_kills(void **state) {
    fx *f = *state;
    setenv("FAKE_WORKER_MODE", "ignore_stop", 1);
    f->nd = node_new(&f->loop, f->st, f->c, "n1", f->exe);
    assert_non_null(f->nd);
    put_assignment(f, "0", "100");
    want w1 = {.port = 7001};
    assert_true(wait_for(f, has_status, &w1, 10000));
    json_t *s = status(f, 7001);
    int64_t pid = json_integer_value(json_object_get(s, "pid"));
    json_decref(s);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    node_stop(f->nd, on_stopped, f);
    assert_true(wait_for(f, is_stopped, NULL, 8000));
    uint64_t took = uv_now(&f->loop) - t0;
    assert_true(took >= 1900); /* cleanup 0 s (a budget of 1 s) + 1 s slack, then SIGKILL */
    assert_true(took < 4000);
    assert_false(pid_alive(pid));
    assert_int_equal(node_restarts(f->nd), 0);
}

static void test_stale_heartbeat_restarts(void **state) {
    fx *f = *state;
    setenv("FAKE_WORKER_MODE", "silent", 1);
    set(f->c, "supervisor.worker.start.timeout.secs=1");
    f->nd = node_new(&f->loop, f->st, f->c, "n1", f->exe);
    assert_non_null(f->nd);
    put_assignment(f, "0", "100");
    /* no heartbeat within 3 x 100 ms + 1 s start timeout: killed, restarted */
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + 8000;
    while (node_restarts(f->nd) < 2 && uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE); /* the node's 1 s check timer wakes the loop */
        uv_update_time(&f->loop);
    }
    assert_true(node_restarts(f->nd) >= 2);
    node_stop(f->nd, on_stopped, f);
    assert_true(wait_for(f, is_stopped, NULL, 8000));
}

static nworker *find_nworker(fx *f, int port) {
    for (nworker *w = f->nd->workers; w; w = w->next)
        if (w->port == port) return w;
    return NULL;
}

static int64_t beats_of(fx *f, int port) { /* the fake worker's rss_kb counts its heartbeats */
    json_t *s = status(f, port);
    int64_t v = json_integer_value(json_object_get(json_object_get(s, "heartbeat"), "rss_kb"));
    json_decref(s);
    return v;
}

/* A worker that stops reading its control channel: the node's sends never
 * wait for it (4 MiB of messages in well under a second, where a blocking
 * write waited up to 5 s each), it is killed as stalled once
 * NODE_CONTROL_QUEUE bytes wait, and the other worker is served throughout. */
static void test_deaf_worker_never_blocks_the_node(void **state) {
    fx *f = *state;
    setenv("FAKE_WORKER_DEAF_PORT", "7001", 1);
    f->nd = node_new(&f->loop, f->st, f->c, "n1", f->exe);
    assert_non_null(f->nd);
    put_assignment(f, "0", "100");
    want w1 = {.port = 7001}, w2 = {.port = 7002};
    assert_true(wait_for(f, has_status, &w1, 10000));
    assert_true(wait_for(f, has_status, &w2, 10000));
    json_t *s = status(f, 7001);
    int64_t deaf_pid = json_integer_value(json_object_get(s, "pid"));
    json_decref(s);
    int64_t beats = beats_of(f, 7002);
    size_t pad = 64u << 10;
    char *text = malloc(pad + 1);
    assert_non_null(text);
    memset(text, 'x', pad);
    text[pad] = 0;
    json_t *msg = json_pack("{s:s, s:s, s:s}", "type", "loglevel", "level", "info", "pad", text);
    free(text);
    uint64_t h0 = uv_hrtime();
    for (int i = 0; i < 64; i++) {
        nworker *w = find_nworker(f, 7001);
        assert_non_null(w);
        node_worker_send(w, msg);
    }
    uint64_t took_ms = (uv_hrtime() - h0) / 1000000;
    json_decref(msg);
    assert_true(took_ms < 1000);
    /* killed as stalled and restarted; the other worker heartbeats on */
    want again = {.port = 7001, .restarts = 1, .not_pid = deaf_pid};
    assert_true(wait_for(f, has_status, &again, 10000));
    assert_false(pid_alive(deaf_pid));
    json_t *s2 = status(f, 7002);
    assert_int_equal(json_integer_value(json_object_get(s2, "restarts")), 0);
    json_decref(s2);
    assert_true(beats_of(f, 7002) > beats);
    node_stop(f->nd, on_stopped, f);
    assert_true(wait_for(f, is_stopped, NULL, 8000));
    unsetenv("FAKE_WORKER_DEAF_PORT");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spawn_heartbeat_crash_restart_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_deadline_kills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_lost_stops_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_heartbeat_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deaf_worker_never_blocks_the_node, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
