/*
 * etcd_store against a real etcd (Debian's etcd-server) that the test
 * starts itself on free ports of 24100-24199: reads, writes, transactions,
 * leases, watches (in order, across a restart, from a compacted revision),
 * failover, timeouts, cancellation, authentication, TLS (when the openssl
 * tool is there) and malformed answers from a fake server. Every wait polls
 * for its condition with a deadline; the loop under test is also shown to
 * keep running while a request waits on an endpoint that never answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/conf.h"
#include "etcd_env.h"
#include "store/etcd/etcd_json.h"
#include "store/etcd/etcd_store.h"
#include "store/store_sync.h"

static uv_loop_t loop;
static char tmp_root[64];
static char tls_dir[128]; /* "" without the openssl tool */
static etcd_proc main_etcd;

/* runs the loop for ms (store_sync_wait on a flag that never flips) */
static void pump(int ms) {
    bool never = false;
    store_sync_wait(&loop, &never, ms);
}

#define WAIT_FOR(cond, ms)                                                                                             \
    do {                                                                                                               \
        uint64_t dl_ = env_now_ms() + (ms);                                                                            \
        while (!(cond) && env_now_ms() < dl_) pump(10);                                                                \
        assert_true(cond);                                                                                             \
    } while (0)

/* ---- capturing results and events ---------------------------------------- */

typedef struct res {
    bool done;
    int calls, err;
    int64_t revision, lease, ttl, deleted;
    bool succeeded;
    size_t nkvs;
    store_kv kvs[8]; /* copies */
} res;

static void res_reset(res *x) {
    for (size_t i = 0; i < 8; i++) {
        free((char *)x->kvs[i].key);
        free((char *)x->kvs[i].value);
    }
    memset(x, 0, sizeof *x);
}

static void on_res(void *arg, const store_result *r) {
    res *x = arg;
    x->done = true;
    x->calls++;
    x->err = r->err;
    x->revision = r->revision;
    x->lease = r->lease;
    x->ttl = r->ttl;
    x->deleted = r->deleted;
    x->succeeded = r->succeeded;
    x->nkvs = r->nkvs;
    for (size_t i = 0; i < r->nkvs && i < 8; i++) {
        x->kvs[i] = r->kvs[i];
        x->kvs[i].key = strdup(r->kvs[i].key);
        x->kvs[i].value = malloc(r->kvs[i].value_len + 1);
        memcpy((char *)x->kvs[i].value, r->kvs[i].value, r->kvs[i].value_len + 1);
    }
}

/* waits for x, checks the callback did not run inside the call */
#define SUBMIT(x, call)                                                                                                \
    do {                                                                                                               \
        res_reset(x);                                                                                                  \
        assert_int_equal((call), 0);                                                                                   \
        assert_false((x)->done);                                                                                       \
        assert_int_equal(store_sync_wait(&loop, &(x)->done, 30000), 0);                                                \
        assert_int_equal((x)->calls, 1);                                                                               \
    } while (0)

static int64_t put_ok(store *s, const char *key, const char *value) {
    res x = {0};
    SUBMIT(&x, store_put(s, key, value, 0, on_res, &x));
    assert_int_equal(x.err, 0);
    assert_true(x.revision > 0);
    return x.revision;
}

typedef struct wrec {
    store *s;
    store_watch *w;
    int n, resyncs, stop_after; /* stop_after > 0: cancel the watch from its n-th event */
    struct {
        store_event_type type;
        int64_t rev, create_rev;
        char key[64], value[64];
    } ev[64];
} wrec;

static void on_event(void *arg, const store_event *ev) {
    wrec *r = arg;
    if (ev->type == STORE_EVENT_RESYNC) r->resyncs++;
    if (r->n < 64) {
        r->ev[r->n].type = ev->type;
        r->ev[r->n].rev = ev->revision;
        if (ev->kv) {
            r->ev[r->n].create_rev = ev->kv->create_rev;
            snprintf(r->ev[r->n].key, 64, "%s", ev->kv->key);
            snprintf(r->ev[r->n].value, 64, "%.*s", (int)ev->kv->value_len, ev->kv->value);
        }
    }
    r->n++;
    if (r->stop_after > 0 && r->n == r->stop_after) {
        store_watch_cancel(r->s, r->w);
        r->w = NULL;
    }
}

static store *new_store(const char *endpoints, int timeout_ms) {
    etcd_options o = {.endpoints = endpoints, .request_timeout_ms = timeout_ms};
    store *s = etcd_store_new(&loop, &o);
    assert_non_null(s);
    return s;
}

static void free_store(store *s) {
    store_free(s);
    pump(50); /* the loop closes the store's handles */
}

/* ---- tests ------------------------------------------------------------------ */

static void test_put_get_list(void **state) {
    (void)state;
    store *s = new_store(main_etcd.url, 5000);
    res x = {0};
    int64_t r1 = put_ok(s, "/t1/a", "{\"v\":1}");
    unsigned char bin[256];
    for (int i = 0; i < 256; i++) bin[i] = (unsigned char)(255 - i); /* NUL and 0xff inside */
    SUBMIT(&x, store_put_bytes(s, "/t1/b", bin, sizeof bin, 0, on_res, &x));
    int64_t r2 = x.revision;
    size_t big_len = STORE_MAX_VALUE;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++) big[i] = (char)(i * 7 + 3);
    SUBMIT(&x, store_put_bytes(s, "/t1/c", big, big_len, 0, on_res, &x));
    assert_int_equal(x.err, 0);
    int64_t r3 = x.revision;
    assert_true(r1 < r2 && r2 < r3);
    assert_int_equal(store_put_bytes(s, "/t1/d", big, big_len + 1, 0, on_res, &x), -EMSGSIZE);
    /* two values at the limit make a request etcd refuses */
    store_op two_big[] = {{.type = STORE_OP_PUT, .key = "/t1/d", .value = big, .value_len = big_len},
                          {.type = STORE_OP_PUT, .key = "/t1/e", .value = big, .value_len = big_len}};
    store_txn too_big = {.then = two_big, .nthen = 2};
    SUBMIT(&x, store_commit(s, &too_big, on_res, &x));
    assert_int_equal(x.err, -EMSGSIZE);

    SUBMIT(&x, store_get(s, "/t1/b", on_res, &x));
    assert_int_equal(x.err, 0);
    assert_int_equal(x.nkvs, 1);
    assert_string_equal(x.kvs[0].key, "/t1/b");
    assert_int_equal(x.kvs[0].value_len, 256);
    assert_memory_equal(x.kvs[0].value, bin, 256);
    assert_int_equal(x.kvs[0].create_rev, r2);
    assert_int_equal(x.kvs[0].mod_rev, r2);
    assert_int_equal(x.revision, r3);
    SUBMIT(&x, store_get(s, "/t1/c", on_res, &x));
    assert_int_equal(x.kvs[0].value_len, big_len);
    assert_memory_equal(x.kvs[0].value, big, big_len);
    free(big);
    SUBMIT(&x, store_get(s, "/t1/nope", on_res, &x));
    assert_int_equal(x.err, 0);
    assert_int_equal(x.nkvs, 0);
    assert_true(x.revision >= r3);

    int64_t r4 = put_ok(s, "/t1/a", "new"); /* overwrite: create_rev stays */
    SUBMIT(&x, store_list(s, "/t1/", on_res, &x));
    assert_int_equal(x.err, 0);
    assert_int_equal(x.nkvs, 3);
    assert_string_equal(x.kvs[0].key, "/t1/a");
    assert_string_equal(x.kvs[0].value, "new");
    assert_int_equal(x.kvs[0].create_rev, r1);
    assert_int_equal(x.kvs[0].mod_rev, r4);
    assert_string_equal(x.kvs[1].key, "/t1/b");
    assert_string_equal(x.kvs[2].key, "/t1/c");
    assert_int_equal(x.revision, r4);
    SUBMIT(&x, store_list(s, "/t1/b", on_res, &x));
    assert_int_equal(x.nkvs, 1);
    SUBMIT(&x, store_list(s, "/t1/x", on_res, &x));
    assert_int_equal(x.nkvs, 0);
    res_reset(&x);
    free_store(s);
}

static void test_delete(void **state) {
    (void)state;
    store *s = new_store(main_etcd.url, 5000);
    res x = {0};
    put_ok(s, "/t2/a", "1");
    put_ok(s, "/t2/b/1", "2");
    put_ok(s, "/t2/b/2", "3");
    put_ok(s, "/t2/c", "4");
    SUBMIT(&x, store_del(s, "/t2/a", false, on_res, &x));
    assert_int_equal(x.err, 0);
    assert_int_equal(x.deleted, 1);
    SUBMIT(&x, store_del(s, "/t2/a", false, on_res, &x));
    assert_int_equal(x.deleted, 0);
    SUBMIT(&x, store_del(s, "/t2/b/", true, on_res, &x));
    assert_int_equal(x.deleted, 2);
    SUBMIT(&x, store_list(s, "/t2/", on_res, &x));
    assert_int_equal(x.nkvs, 1);
    assert_string_equal(x.kvs[0].key, "/t2/c");
    res_reset(&x);
    free_store(s);
}

static void test_txn(void **state) {
    (void)state;
    store *s = new_store(main_etcd.url, 5000);
    res x = {0};
    /* election: whoever creates the key first leads */
    store_cmp absent = {.key = "/t3/leader", .target = STORE_CMP_CREATE_REV, .op = STORE_CMP_EQUAL, .rev = 0};
    store_op be_a = {.type = STORE_OP_PUT, .key = "/t3/leader", .value = "A"};
    store_op be_b = {.type = STORE_OP_PUT, .key = "/t3/leader", .value = "B"};
    store_op lost = {.type = STORE_OP_PUT, .key = "/t3/lost", .value = "B"};
    store_txn ta = {.cmps = &absent, .ncmps = 1, .then = &be_a, .nthen = 1};
    store_txn tb = {.cmps = &absent, .ncmps = 1, .then = &be_b, .nthen = 1, .otherwise = &lost, .notherwise = 1};
    SUBMIT(&x, store_commit(s, &ta, on_res, &x));
    assert_int_equal(x.err, 0);
    assert_true(x.succeeded);
    int64_t rev_a = x.revision;
    SUBMIT(&x, store_commit(s, &tb, on_res, &x));
    assert_int_equal(x.err, 0);
    assert_false(x.succeeded);
    SUBMIT(&x, store_get(s, "/t3/leader", on_res, &x));
    assert_string_equal(x.kvs[0].value, "A");
    assert_int_equal(x.kvs[0].mod_rev, rev_a);
    SUBMIT(&x, store_get(s, "/t3/lost", on_res, &x));
    assert_int_equal(x.nkvs, 1); /* the failure branch ran */

    /* guarded write: only over the version read */
    store_cmp same = {.key = "/t3/leader", .target = STORE_CMP_MOD_REV, .op = STORE_CMP_EQUAL, .rev = rev_a};
    store_op ops[] = {{.type = STORE_OP_PUT, .key = "/t3/leader", .value = "A2"},
                      {.type = STORE_OP_PUT, .key = "/t3/x/1", .value = "1"},
                      {.type = STORE_OP_DEL, .key = "/t3/lost"}};
    store_txn guarded = {.cmps = &same, .ncmps = 1, .then = ops, .nthen = 3};
    SUBMIT(&x, store_commit(s, &guarded, on_res, &x));
    assert_true(x.succeeded);
    int64_t rev2 = x.revision;
    assert_true(rev2 > rev_a);
    SUBMIT(&x, store_commit(s, &guarded, on_res, &x)); /* stale now */
    assert_int_equal(x.err, 0);
    assert_false(x.succeeded);
    SUBMIT(&x, store_get(s, "/t3/lost", on_res, &x));
    assert_int_equal(x.nkvs, 0);

    /* value compares, LESS / GREATER, a prefix delete in a branch */
    store_cmp cmps[] = {{.key = "/t3/leader", .target = STORE_CMP_VALUE, .op = STORE_CMP_EQUAL, .value = "A2"},
                        {.key = "/t3/leader", .target = STORE_CMP_VALUE, .op = STORE_CMP_NOT_EQUAL, .value = "A"},
                        {.key = "/t3/leader", .target = STORE_CMP_MOD_REV, .op = STORE_CMP_LESS, .rev = rev2 + 1},
                        {.key = "/t3/leader", .target = STORE_CMP_CREATE_REV, .op = STORE_CMP_GREATER, .rev = 0}};
    store_op wipe = {.type = STORE_OP_DEL_PREFIX, .key = "/t3/x/"};
    store_txn t4 = {.cmps = cmps, .ncmps = 4, .then = &wipe, .nthen = 1};
    SUBMIT(&x, store_commit(s, &t4, on_res, &x));
    assert_true(x.succeeded);
    SUBMIT(&x, store_list(s, "/t3/x/", on_res, &x));
    assert_int_equal(x.nkvs, 0);
    cmps[2].op = STORE_CMP_GREATER;
    SUBMIT(&x, store_commit(s, &t4, on_res, &x));
    assert_false(x.succeeded);
    res_reset(&x);
    free_store(s);
}

static void test_lease(void **state) {
    (void)state;
    store *s = new_store(main_etcd.url, 5000);
    res x = {0};
    SUBMIT(&x, store_lease_grant(s, 30, on_res, &x));
    assert_int_equal(x.err, 0);
    int64_t lease = x.lease;
    assert_true(lease > 0 && x.ttl > 0);
    SUBMIT(&x, store_put(s, "/t4/held", "x", lease, on_res, &x));
    assert_int_equal(x.err, 0);
    SUBMIT(&x, store_lease_keepalive(s, lease, on_res, &x));
    assert_int_equal(x.err, 0);
    assert_int_equal(x.lease, lease);
    assert_true(x.ttl > 0 && x.ttl <= 30);
    SUBMIT(&x, store_get(s, "/t4/held", on_res, &x));
    assert_int_equal(x.kvs[0].lease, lease);
    SUBMIT(&x, store_lease_revoke(s, lease, on_res, &x));
    assert_int_equal(x.err, 0);
    SUBMIT(&x, store_get(s, "/t4/held", on_res, &x));
    assert_int_equal(x.nkvs, 0);
    SUBMIT(&x, store_lease_keepalive(s, lease, on_res, &x));
    assert_int_equal(x.err, SD_ELEASE_LOST);
    SUBMIT(&x, store_lease_revoke(s, lease, on_res, &x));
    assert_int_equal(x.err, SD_ELEASE_LOST);
    SUBMIT(&x, store_put(s, "/t4/late", "x", lease, on_res, &x));
    assert_int_equal(x.err, SD_ELEASE_LOST);

    /* expiry: the key goes by itself, then keepalive says the lease is lost */
    SUBMIT(&x, store_lease_grant(s, 2, on_res, &x));
    lease = x.lease;
    SUBMIT(&x, store_put(s, "/t4/short", "x", lease, on_res, &x));
    uint64_t deadline = env_now_ms() + 15000;
    do {
        pump(200);
        SUBMIT(&x, store_get(s, "/t4/short", on_res, &x));
    } while (x.nkvs > 0 && env_now_ms() < deadline);
    assert_int_equal(x.nkvs, 0);
    SUBMIT(&x, store_lease_keepalive(s, lease, on_res, &x));
    assert_int_equal(x.err, SD_ELEASE_LOST);
    res_reset(&x);
    free_store(s);
}

static void test_watch_order(void **state) {
    (void)state;
    store *s = new_store(main_etcd.url, 5000);
    res x = {0};
    int64_t r1 = put_ok(s, "/t5/a", "1");
    int64_t r2 = put_ok(s, "/t5/b", "2");
    put_ok(s, "/t6/other", "not watched");
    wrec from = {.s = s}, fresh = {.s = s};
    assert_int_equal(store_watch_prefix(s, "/t5/", r1, on_event, &from, &from.w), 0);
    assert_int_equal(store_watch_prefix(s, "/t5/", 0, on_event, &fresh, &fresh.w), 0);
    WAIT_FOR(from.n == 2, 10000);
    pump(100); /* lets the second watch be created before the next changes */
    store_op two[] = {{.type = STORE_OP_PUT, .key = "/t5/c", .value = "3"},
                      {.type = STORE_OP_PUT, .key = "/t5/d", .value = "4"}};
    store_txn t = {.then = two, .nthen = 2};
    SUBMIT(&x, store_commit(s, &t, on_res, &x));
    int64_t r3 = x.revision;
    SUBMIT(&x, store_del(s, "/t5/a", false, on_res, &x));
    int64_t r4 = x.revision;
    WAIT_FOR(from.n == 5, 10000);
    WAIT_FOR(fresh.n == 3, 10000);
    int64_t want_rev[] = {r1, r2, r3, r3, r4};
    const char *want_key[] = {"/t5/a", "/t5/b", "/t5/c", "/t5/d", "/t5/a"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(from.ev[i].rev, want_rev[i]);
        assert_string_equal(from.ev[i].key, want_key[i]);
        assert_int_equal(from.ev[i].type, i == 4 ? STORE_EVENT_DELETE : STORE_EVENT_PUT);
        if (i >= 2) {
            assert_int_equal(fresh.ev[i - 2].rev, want_rev[i]);
            assert_string_equal(fresh.ev[i - 2].key, want_key[i]);
        }
    }
    assert_string_equal(from.ev[1].value, "2");
    assert_int_equal(from.ev[0].create_rev, r1);
    pump(200);
    assert_int_equal(from.n, 5);
    assert_int_equal(fresh.n, 3);
    store_watch_cancel(s, from.w);
    store_watch_cancel(s, fresh.w);

    /* cancelling from its own callback stops the rest of a batch */
    wrec once = {.s = s, .stop_after = 1};
    assert_int_equal(store_watch_prefix(s, "/t5/", r1, on_event, &once, &once.w), 0);
    WAIT_FOR(once.n == 1, 10000);
    put_ok(s, "/t5/e", "5");
    pump(200);
    assert_int_equal(once.n, 1);
    res_reset(&x);
    free_store(s);
}

static void test_watch_restart(void **state) {
    (void)state;
    store *s = new_store(main_etcd.url, 1000);
    res x = {0};
    int64_t start = put_ok(s, "/t7/0", "x");
    wrec r = {.s = s};
    assert_int_equal(store_watch_prefix(s, "/t7/", start, on_event, &r, &r.w), 0);
    int64_t revs[8];
    revs[0] = start;
    for (int i = 1; i < 4; i++) {
        char k[32];
        snprintf(k, sizeof k, "/t7/%d", i);
        revs[i] = put_ok(s, k, "x");
    }
    WAIT_FOR(r.n == 4, 10000);
    etcd_proc_stop(&main_etcd);
    SUBMIT(&x, store_get(s, "/t7/0", on_res, &x));
    assert_int_equal(x.err, -ECONNREFUSED); /* down, not cut off */
    pump(500); /* the watch retries meanwhile */
    etcd_proc_start(&main_etcd);
    for (int i = 4; i < 8; i++) {
        char k[32];
        snprintf(k, sizeof k, "/t7/%d", i);
        revs[i] = put_ok(s, k, "x");
    }
    WAIT_FOR(r.n == 8, 20000);
    pump(300);
    assert_int_equal(r.n, 8);
    for (int i = 0; i < 8; i++) assert_int_equal(r.ev[i].rev, revs[i]);
    assert_int_equal(r.resyncs, 0);
    store_watch_cancel(s, r.w);
    res_reset(&x);
    free_store(s);
}

static void test_watch_compacted(void **state) {
    (void)state;
    store *s = new_store(main_etcd.url, 5000);
    int64_t first = put_ok(s, "/t8/a", "1");
    int64_t last = 0;
    for (int i = 0; i < 4; i++) last = put_ok(s, "/t8/b", "2");
    char body[64];
    snprintf(body, sizeof body, "{\"revision\":\"%lld\",\"physical\":true}", (long long)last);
    etcd_proc_post(&main_etcd, "/v3/kv/compaction", body);
    wrec r = {.s = s};
    assert_int_equal(store_watch_prefix(s, "/t8/", first, on_event, &r, &r.w), 0);
    WAIT_FOR(r.n == 1, 10000);
    assert_int_equal(r.ev[0].type, STORE_EVENT_RESYNC);
    put_ok(s, "/t8/c", "3");
    pump(300);
    assert_int_equal(r.n, 1); /* nothing after the resync */
    store_watch_cancel(s, r.w);
    free_store(s);
}

static void test_failover(void **state) {
    (void)state;
    char eps[256];
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d, %s/", env_pick_port(), main_etcd.url);
    store *s = new_store(eps, 2000);
    res x = {0};
    put_ok(s, "/t9/a", "1");
    wrec r = {.s = s};
    assert_int_equal(store_watch_prefix(s, "/t9/", 0, on_event, &r, &r.w), 0);
    pump(200);
    put_ok(s, "/t9/b", "2");
    WAIT_FOR(r.n == 1, 10000);
    store_watch_cancel(s, r.w);
    free_store(s);

    snprintf(eps, sizeof eps, "http://127.0.0.1:%d,http://127.0.0.1:%d", env_pick_port(), env_pick_port());
    s = new_store(eps, 2000);
    SUBMIT(&x, store_get(s, "/t9/a", on_res, &x));
    assert_int_equal(x.err, -ECONNREFUSED); /* every endpoint refused */
    free_store(s);
    etcd_options bad = {.endpoints = "127.0.0.1:2379"};
    assert_null(etcd_store_new(&loop, &bad));
    bad.endpoints = " , ";
    assert_null(etcd_store_new(&loop, &bad));
}

static void on_tick(uv_timer_t *t) { (*(int *)t->data)++; }

static void test_timeout_loop_runs(void **state) {
    (void)state;
    /* a listener that never accepts: connections complete, answers never come */
    int port;
    int fd = env_silent_listener(&port);
    char eps[256];
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d", port);
    store *s = new_store(eps, 400);
    int ticks = 0;
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    tick.data = &ticks;
    uv_timer_start(&tick, on_tick, 10, 10);
    res x = {0};
    uint64_t t0 = env_now_ms();
    SUBMIT(&x, store_get(s, "/t10/a", on_res, &x));
    uint64_t took = env_now_ms() - t0;
    assert_int_equal(x.err, -ETIMEDOUT);
    assert_true(took >= 380);
    assert_true(ticks >= 10); /* the loop kept running while the request waited (a blocked one ticks once) */
    free_store(s);

    /* the silent endpoint first: retried on the next, which is then kept */
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d,%s", port, main_etcd.url);
    s = new_store(eps, 400);
    t0 = env_now_ms();
    SUBMIT(&x, store_get(s, "/t10/a", on_res, &x));
    assert_int_equal(x.err, 0);
    assert_true(env_now_ms() - t0 >= 380);
    t0 = env_now_ms();
    SUBMIT(&x, store_get(s, "/t10/a", on_res, &x));
    assert_int_equal(x.err, 0);
    assert_true(env_now_ms() - t0 < 300);
    /* a watch whose endpoint never confirms moves on to the next */
    free_store(s);
    s = new_store(eps, 400);
    wrec r = {.s = s};
    assert_int_equal(store_watch_prefix(s, "/t10/", 0, on_event, &r, &r.w), 0);
    uint64_t deadline = env_now_ms() + 10000;
    while (r.n == 0 && env_now_ms() < deadline) {
        put_ok(s, "/t10/w", "1");
        pump(100);
    }
    assert_true(r.n > 0);
    store_watch_cancel(s, r.w);
    free_store(s);
    uv_close((uv_handle_t *)&tick, NULL);
    pump(10);
    close(fd);
}

typedef struct freer {
    store *s;
    int calls;
} freer;

static void on_free_it(void *arg, const store_result *r) {
    (void)r;
    freer *f = arg;
    if (f->calls++ == 0) store_free(f->s);
}

static void test_cancel(void **state) {
    (void)state;
    store *s = new_store(main_etcd.url, 5000);
    res a = {0}, b = {0};
    for (int i = 0; i < 5; i++) assert_int_equal(store_get(s, "/t11/a", on_res, &a), 0);
    assert_int_equal(store_put(s, "/t11/a", "1", 0, on_res, &a), 0);
    store_cancel(s, &a);
    SUBMIT(&b, store_get(s, "/t11/a", on_res, &b));
    pump(200);
    assert_int_equal(a.calls, 0);
    SUBMIT(&b, store_get(s, "/t11/a", on_res, &b));
    assert_int_equal(b.nkvs, 1); /* the cancelled put itself went through */
    res_reset(&b);
    /* store_free from a callback: no other callback runs */
    freer f = {.s = s};
    for (int i = 0; i < 4; i++) assert_int_equal(store_get(s, "/t11/a", on_free_it, &f), 0);
    wrec r = {.s = s};
    assert_int_equal(store_watch_prefix(s, "/t11/", 0, on_event, &r, &r.w), 0);
    WAIT_FOR(f.calls > 0, 10000);
    pump(300);
    assert_int_equal(f.calls, 1);
    assert_int_equal(r.n, 0);
    /* store_free with requests and a watch pending */
    s = new_store(main_etcd.url, 5000);
    assert_int_equal(store_get(s, "/t11/a", on_res, &a), 0);
    assert_int_equal(store_watch_prefix(s, "/t11/", 0, on_event, &r, &r.w), 0);
    store_free(s);
    pump(300);
    assert_int_equal(a.calls, 0);
    assert_int_equal(r.n, 0);
}

static void test_malformed(void **state) {
    (void)state;
    fake_etcd f;
    fake_start(&f);
    char eps[64];
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d", f.port);
    store *s = new_store(eps, 2000);
    res x = {0};
#define H "\"header\":{\"revision\":\"5\"}"
    static const char *const bad_get[] = {
        "not json", "[1,2]", "{\"header\":{\"revision\":\"abc\"}}", "{\"header\":{}}",
        "{\"header\":{\"revision\":\"99999999999999999999\"}}", "{" H ",\"kvs\":\"x\"}", "{" H ",\"kvs\":[7]}",
        "{" H ",\"kvs\":[{\"key\":\"!!!!\",\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
        "{" H ",\"kvs\":[{\"key\":\"YQ==\",\"value\":\"Y\",\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
        "{" H ",\"kvs\":[{\"key\":\"YQ=a\",\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
        "{" H ",\"kvs\":[{\"key\":\"AGE=\",\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
        "{" H ",\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"x1\",\"mod_revision\":\"1\"}]}",
        "{" H ",\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"1\",\"mod_revision\":\"-\"}]}",
        "{" H ",\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"1\"}]}",
        "{" H ",\"kvs\":[{\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
        "{" H ",\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"1\",\"mod_revision\":\"1\"},"
        "{\"key\":\"Yg==\",\"create_revision\":\"1\",\"mod_revision\":\"1\"}]}",
    };
    for (size_t i = 0; i < sizeof bad_get / sizeof *bad_get; i++) {
        fake_answer(&f, "200 OK", bad_get[i], 0);
        SUBMIT(&x, store_get(s, "/a", on_res, &x));
        if (x.err != SD_EPROTO_STORE) fail_msg("answer %zu (%s): err %d", i, bad_get[i], x.err);
        assert_int_equal(x.nkvs, 0);
    }
    fake_answer(&f, "200 OK", "{" H ",\"kvs\":[{\"key\":\"YQ==\",\"value\":\"AP8=\",\"create_revision\":\"2\","
                              "\"mod_revision\":\"3\",\"lease\":\"9\"}],\"count\":\"1\"}", 0);
    SUBMIT(&x, store_get(s, "/a", on_res, &x));
    assert_int_equal(x.err, 0);
    assert_int_equal(x.kvs[0].value_len, 2);
    assert_memory_equal(x.kvs[0].value, "\0\xff", 2);
    assert_int_equal(x.kvs[0].lease, 9);
    fake_answer(&f, "200 OK", "{\"result\":{" H ",\"ID\":\"7\"}}", 0);
    SUBMIT(&x, store_lease_keepalive(s, 7, on_res, &x));
    assert_int_equal(x.err, SD_ELEASE_LOST);
    fake_answer(&f, "200 OK", "{\"result\":{" H ",\"ID\":\"7\",\"TTL\":\"9\"}}", 0);
    SUBMIT(&x, store_lease_keepalive(s, 7, on_res, &x));
    assert_int_equal(x.err, 0);
    assert_int_equal(x.ttl, 9);
    SUBMIT(&x, store_lease_keepalive(s, 8, on_res, &x)); /* an answer for another lease */
    assert_int_equal(x.err, SD_EPROTO_STORE);
    fake_answer(&f, "200 OK", "{" H ",\"succeeded\":\"yes\"}", 0);
    SUBMIT(&x, store_commit(s, &(store_txn){0}, on_res, &x));
    assert_int_equal(x.err, SD_EPROTO_STORE);
    fake_answer(&f, "200 OK", "{" H ",\"deleted\":\"-1\"}", 0);
    SUBMIT(&x, store_del(s, "/a", false, on_res, &x));
    assert_int_equal(x.err, SD_EPROTO_STORE);
    fake_answer(&f, "404 Not Found", "Not Found", 0);
    SUBMIT(&x, store_put(s, "/a", "v", 0, on_res, &x));
    assert_int_equal(x.err, SD_EPROTO_STORE);
    fake_answer(&f, "500 Internal Server Error", "{\"error\":\"boom\",\"message\":\"boom\",\"code\":2}", 0);
    SUBMIT(&x, store_put(s, "/a", "v", 0, on_res, &x));
    assert_int_equal(x.err, -EIO);
    fake_answer(&f, "503 Service Unavailable", "{\"error\":\"no leader\",\"code\":14}", 0);
    SUBMIT(&x, store_put(s, "/a", "v", 0, on_res, &x));
    assert_int_equal(x.err, SD_EUNAVAILABLE);

    /* a watch stream of garbage: no event, no crash; then a good one */
    wrec r = {.s = s};
    fake_answer(&f, "200 OK", "{\"result\":{" H ",\"created\":true}}\n{\"result\":{\"events\":[{\"kv\":{\"key\":\"!!\"}}]}}\n"
                              "{\"result\":{\"events\":[{\"type\":\"BOOM\"}]}}\n[]\n", 0);
    assert_int_equal(store_watch_prefix(s, "/", 0, on_event, &r, &r.w), 0);
    pump(500);
    assert_int_equal(r.n, 0);
    fake_answer(&f, "200 OK", "{\"result\":{" H ",\"created\":true}}\n{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\","
                              "\"create_revision\":\"6\",\"mod_revision\":\"6\"}}]}}\n", 0);
    WAIT_FOR(r.n >= 1, 10000);
    assert_string_equal(r.ev[0].key, "a");
    assert_int_equal(r.ev[0].rev, 6);
    pump(500); /* the stream ends and is resumed: revision 6 is not repeated */
    assert_int_equal(r.n, 1);
    store_watch_cancel(s, r.w);
#undef H
    res_reset(&x);
    free_store(s);
    fake_stop(&f);
}

/* a callback that makes the next request, and cancels another arg */
typedef struct chain {
    store *s;
    int left, calls, other_calls;
    bool done;
} chain;

static void on_other(void *arg, const store_result *r) {
    (void)r;
    ((chain *)arg)->other_calls++;
}

static void on_chain(void *arg, const store_result *r) {
    chain *c = arg;
    assert_int_equal(r->err, 0);
    c->calls++;
    if (c->calls == 1) { /* requests made and cancelled inside a callback */
        for (int i = 0; i < 3; i++) assert_int_equal(store_get(c->s, "/t14/n", on_other, c), 0);
        store_cancel(c->s, c);
    }
    if (--c->left > 0) assert_int_equal(store_put(c->s, "/t14/n", "x", 0, on_chain, c), 0);
    else c->done = true;
}

static void test_chained(void **state) {
    (void)state;
    chain c = {.s = new_store(main_etcd.url, 5000), .left = 5};
    assert_int_equal(store_put(c.s, "/t14/n", "x", 0, on_chain, &c), 0);
    assert_int_equal(store_sync_wait(&loop, &c.done, 20000), 0);
    assert_int_equal(c.calls, 5); /* the chain after the cancel still runs */
    pump(200);
    assert_int_equal(c.other_calls, 0);
    free_store(c.s);
}

/* a quiet watch stream outlives the request timeout: no reconnection */
static void test_watch_idle(void **state) {
    (void)state;
    fake_etcd f;
    fake_start(&f);
    fake_answer(&f, "200 OK", "{\"result\":{\"header\":{\"revision\":\"5\"},\"created\":true}}\n", 5000);
    char eps[64];
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d", f.port);
    store *s = new_store(eps, 200);
    wrec r = {.s = s};
    assert_int_equal(store_watch_prefix(s, "/", 0, on_event, &r, &r.w), 0);
    WAIT_FOR(atomic_load(&f.conns) == 1, 5000);
    pump(1500);
    assert_int_equal(atomic_load(&f.conns), 1);
    assert_int_equal(r.n, 0);
    store_watch_cancel(s, r.w);
    free_store(s);
    fake_stop(&f);
}

static void test_json(void **state) {
    (void)state;
    unsigned char buf[64];
    for (size_t n = 0; n < sizeof buf; n++) {
        for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(rand() & 0xff);
        char enc[128], *dec;
        size_t len;
        ej_b64_encode(buf, n, enc);
        assert_int_equal(strlen(enc), ej_b64_len(n));
        assert_int_equal(ej_b64_decode(enc, strlen(enc), &dec, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(dec, buf, n);
        free(dec);
    }
    static const char *const bad[] = {"Y", "YQ=", "Y===", "=YQ=", "YQ==YQ==", "Y Q=", "YQ\n="};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *dec;
        size_t len;
        assert_int_equal(ej_b64_decode(bad[i], strlen(bad[i]), &dec, &len), SD_EPROTO_STORE);
    }
    char *body = ej_range_req("a\xff\xff", true); /* range_end "b" */
    assert_non_null(strstr(body, "\"range_end\":\"Yg==\""));
    free(body);
    body = ej_range_req("", true); /* every key: "\0" to "\0" */
    assert_non_null(strstr(body, "\"key\":\"AA==\""));
    assert_non_null(strstr(body, "\"range_end\":\"AA==\""));
    free(body);
}

static void test_options_from_conf(void **state) {
    (void)state;
    conf *c = conf_new();
    etcd_options o;
    etcd_options_from_conf(&o, c);
    assert_string_equal(o.endpoints, "http://127.0.0.1:2379");
    assert_int_equal(o.request_timeout_ms, 5000);
    assert_null(o.tls_ca);
    assert_null(o.user);
    char err[256];
    assert_int_equal(conf_set_kv(c, "store.etcd.endpoints=http://a:1,http://b:2", err, sizeof err), 0);
    assert_int_equal(conf_set_kv(c, "store.etcd.request.timeout.ms=750", err, sizeof err), 0);
    assert_int_equal(conf_set_kv(c, "store.etcd.tls.ca=/ca.pem", err, sizeof err), 0);
    assert_int_equal(conf_set_kv(c, "store.etcd.user=root", err, sizeof err), 0);
    assert_int_equal(conf_set_kv(c, "store.etcd.password=pw", err, sizeof err), 0);
    etcd_options_from_conf(&o, c);
    assert_string_equal(o.endpoints, "http://a:1,http://b:2");
    assert_int_equal(o.request_timeout_ms, 750);
    assert_string_equal(o.tls_ca, "/ca.pem");
    assert_null(o.tls_cert);
    assert_string_equal(o.user, "root");
    assert_string_equal(o.password, "pw");
    conf_free(c);
}

static void test_auth(void **state) {
    (void)state;
    static etcd_proc e;
    etcd_proc_init(&e, tmp_root, "auth", NULL);
    etcd_proc_start(&e);
    etcd_proc_ctl(&e, "user add root:secret");
    etcd_proc_ctl(&e, "auth enable");
    etcd_options o = {.endpoints = e.url, .request_timeout_ms = 2000, .user = "root", .password = "secret"};
    store *s = etcd_store_new(&loop, &o);
    assert_non_null(s);
    res x = {0};
    put_ok(s, "/t12/a", "1");
    wrec r = {.s = s};
    assert_int_equal(store_watch_prefix(s, "/t12/", 0, on_event, &r, &r.w), 0);
    pump(200);
    put_ok(s, "/t12/b", "2");
    WAIT_FOR(r.n == 1, 10000);
    /* a restart forgets every token: the store authenticates again */
    etcd_proc_stop(&e);
    etcd_proc_start(&e);
    put_ok(s, "/t12/c", "3");
    WAIT_FOR(r.n == 2, 20000);
    assert_string_equal(r.ev[1].key, "/t12/c");
    store_watch_cancel(s, r.w);
    free_store(s);
    o.password = "wrong";
    s = etcd_store_new(&loop, &o);
    SUBMIT(&x, store_get(s, "/t12/a", on_res, &x));
    assert_int_equal(x.err, -EACCES);
    free_store(s);
    s = new_store(e.url, 2000); /* no user */
    SUBMIT(&x, store_get(s, "/t12/a", on_res, &x));
    assert_int_equal(x.err, -EACCES);
    free_store(s);
    etcd_proc_stop(&e);
}

static void test_tls(void **state) {
    (void)state;
    if (!tls_dir[0]) skip();
    static etcd_proc e;
    etcd_proc_init(&e, tmp_root, "tls", tls_dir);
    etcd_proc_start(&e);
    char ca[192], cert[192], key[192];
    snprintf(ca, sizeof ca, "%s/ca.crt", tls_dir);
    snprintf(cert, sizeof cert, "%s/client.crt", tls_dir);
    snprintf(key, sizeof key, "%s/client.key", tls_dir);
    etcd_options o = {.endpoints = e.url, .request_timeout_ms = 2000, .tls_ca = ca, .tls_cert = cert, .tls_key = key};
    store *s = etcd_store_new(&loop, &o);
    res x = {0};
    put_ok(s, "/t13/a", "1");
    SUBMIT(&x, store_get(s, "/t13/a", on_res, &x));
    assert_int_equal(x.nkvs, 1);
    free_store(s);
    o.tls_cert = o.tls_key = NULL; /* etcd asks for a client certificate */
    s = etcd_store_new(&loop, &o);
    SUBMIT(&x, store_get(s, "/t13/a", on_res, &x));
    assert_int_equal(x.err, SD_EUNAVAILABLE);
    free_store(s);
    o.tls_ca = NULL; /* the system's CAs do not know the test CA */
    o.tls_cert = cert;
    o.tls_key = key;
    s = etcd_store_new(&loop, &o);
    SUBMIT(&x, store_get(s, "/t13/a", on_res, &x));
    assert_int_equal(x.err, SD_EUNAVAILABLE);
    res_reset(&x);
    free_store(s);
    etcd_proc_stop(&e);
}

static void test_sync_wait(void **state) {
    (void)state;
    bool never = false;
    uint64_t t0 = env_now_ms();
    assert_int_equal(store_sync_wait(&loop, &never, 60), -ETIMEDOUT);
    assert_true(env_now_ms() - t0 >= 55);
    bool done = true;
    assert_int_equal(store_sync_wait(&loop, &done, 60), 0);
}

/* ---- set-up ------------------------------------------------------------------ */

static int group_setup(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    if (env_tmp_root(tmp_root, sizeof tmp_root) != 0 || uv_loop_init(&loop) != 0) return -1;
    env_make_certs(tmp_root, tls_dir, sizeof tls_dir);
    etcd_proc_init(&main_etcd, tmp_root, "main", NULL);
    etcd_proc_start(&main_etcd);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    etcd_proc_stop_all();
    pump(100);
    int rc = uv_loop_close(&loop);
    env_rm_tree(tmp_root);
    return rc == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_options_from_conf),
        cmocka_unit_test(test_sync_wait),
        cmocka_unit_test(test_put_get_list),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_txn),
        cmocka_unit_test(test_lease),
        cmocka_unit_test(test_watch_order),
        cmocka_unit_test(test_watch_compacted),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_timeout_loop_runs),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_chained),
        cmocka_unit_test(test_watch_idle),
        cmocka_unit_test(test_watch_restart),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_tls),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
