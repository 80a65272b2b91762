/* memstore: put/get/list/delete, transactions, leases, watches (from now and from
 * a past revision), completions never inside the call, cancel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/memstore.h"
#include "test_store_sync.h"

typedef struct fixture {
    uv_loop_t loop;
    store *s;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->s = memstore_new(&f->loop);
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    store_free(f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* close callbacks free the store */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}


#define L (&f->loop)

static void test_put_get_list_delete(void **state) {
    fixture *f = *state;
    store *s = f->s;
    int64_t r1, r2, r3;
    assert_int_equal(ts_put(L, s, "/a/2", "{\"v\":2}", 0, &r1), 0);
    assert_int_equal(ts_put(L, s, "/a/1", "{\"v\":1}", 0, &r2), 0);
    assert_int_equal(ts_put(L, s, "/b", "x", 0, &r3), 0);
    assert_true(r1 < r2 && r2 < r3);
    ts_wait_t w = {0};
    assert_int_equal(store_get(s, "/a/1", ts_cb, &w), 0);
    assert_false(w.done); /* never inside the call */
    ts_result *r = ts_wait(L, &w);
    assert_int_equal(r->nkvs, 1);
    assert_string_equal(r->kvs[0].value, "{\"v\":1}");
    assert_int_equal(r->kvs[0].create_rev, r2);
    assert_int_equal(r->kvs[0].mod_rev, r2);
    ts_result_clear(r);
    assert_null(ts_get(L, s, "/a/3")); /* missing: no kvs, no error */
    /* overwrite keeps create_rev, bumps mod_rev */
    int64_t r4;
    assert_int_equal(ts_put(L, s, "/a/1", "new", 0, &r4), 0);
    w = (ts_wait_t){0};
    assert_int_equal(store_get(s, "/a/1", ts_cb, &w), 0);
    r = ts_wait(L, &w);
    assert_int_equal(r->kvs[0].create_rev, r2);
    assert_int_equal(r->kvs[0].mod_rev, r4);
    assert_string_equal(r->kvs[0].value, "new");
    ts_result_clear(r);
    w = (ts_wait_t){0};
    assert_int_equal(store_list(s, "/a/", ts_cb, &w), 0);
    r = ts_wait(L, &w);
    assert_int_equal(r->nkvs, 2);
    assert_string_equal(r->kvs[0].key, "/a/1"); /* key order */
    assert_string_equal(r->kvs[1].key, "/a/2");
    assert_int_equal(r->revision, r4);
    ts_result_clear(r);
    assert_int_equal(ts_del(L, s, "/b", false), 1);
    assert_int_equal(ts_del(L, s, "/b", false), 0);
    assert_int_equal(ts_del(L, s, "/a/", true), 2);
    w = (ts_wait_t){0};
    assert_int_equal(store_list(s, "/", ts_cb, &w), 0);
    assert_int_equal(ts_wait(L, &w)->nkvs, 0);
    ts_result_clear(&w.r);
}

static void test_binary_value(void **state) {
    fixture *f = *state;
    const char bytes[] = {'a', 0, 'b', (char)0xff, 0};
    ts_wait_t w = {0};
    assert_int_equal(store_put_bytes(f->s, "/bin", bytes, sizeof bytes, 0, ts_cb, &w), 0);
    assert_int_equal(ts_wait(L, &w)->err, 0);
    w = (ts_wait_t){0};
    assert_int_equal(store_get(f->s, "/bin", ts_cb, &w), 0);
    ts_result *r = ts_wait(L, &w);
    assert_int_equal(r->kvs[0].value_len, sizeof bytes);
    assert_memory_equal(r->kvs[0].value, bytes, sizeof bytes);
    ts_result_clear(r);
}

static int txn(fixture *f, const store_cmp *c, size_t nc, const store_op *then, size_t nthen, bool *ok) {
    store_txn t = {.cmps = c, .ncmps = nc, .then = then, .nthen = nthen};
    ts_wait_t w = {0};
    assert_int_equal(store_commit(f->s, &t, ts_cb, &w), 0);
    ts_result *r = ts_wait(L, &w);
    *ok = r->succeeded;
    return r->err;
}

static void test_txn(void **state) {
    fixture *f = *state;
    bool ok;
    /* election: create only if absent */
    store_cmp absent = {.key = "/leader", .target = STORE_CMP_CREATE_REV, .op = STORE_CMP_EQUAL, .rev = 0};
    store_op put_me = {.type = STORE_OP_PUT, .key = "/leader", .value = "me"};
    assert_int_equal(txn(f, &absent, 1, &put_me, 1, &ok), 0);
    assert_true(ok);
    store_op put_other = {.type = STORE_OP_PUT, .key = "/leader", .value = "other"};
    assert_int_equal(txn(f, &absent, 1, &put_other, 1, &ok), 0);
    assert_false(ok);
    char *v = ts_get(L, f->s, "/leader");
    assert_string_equal(v, "me");
    free(v);
    /* a write guarded by the leader key's create revision, then a value compare */
    ts_wait_t w = {0};
    assert_int_equal(store_get(f->s, "/leader", ts_cb, &w), 0);
    int64_t crev = ts_wait(L, &w)->kvs[0].create_rev;
    ts_result_clear(&w.r);
    store_cmp guard[2] = {{.key = "/leader", .target = STORE_CMP_CREATE_REV, .op = STORE_CMP_EQUAL, .rev = crev},
                          {.key = "/leader", .target = STORE_CMP_VALUE, .op = STORE_CMP_EQUAL, .value = "me"}};
    store_op ops[2] = {{.type = STORE_OP_PUT, .key = "/state/a", .value = "1"},
                       {.type = STORE_OP_PUT, .key = "/state/b", .value = "2"}};
    assert_int_equal(txn(f, guard, 2, ops, 2, &ok), 0);
    assert_true(ok);
    /* the leader key is re-created: the old guard fails, nothing is written */
    assert_int_equal(ts_del(L, f->s, "/leader", false), 1);
    assert_int_equal(ts_put(L, f->s, "/leader", "me", 0, NULL), 0);
    store_op del = {.type = STORE_OP_DEL_PREFIX, .key = "/state/"};
    assert_int_equal(txn(f, guard, 2, &del, 1, &ok), 0);
    assert_false(ok);
    v = ts_get(L, f->s, "/state/b");
    assert_string_equal(v, "2");
    free(v);
    store_cmp greater = {.key = "/state/a", .target = STORE_CMP_MOD_REV, .op = STORE_CMP_GREATER, .rev = 0};
    assert_int_equal(txn(f, &greater, 1, &del, 1, &ok), 0);
    assert_true(ok);
    assert_null(ts_get(L, f->s, "/state/a"));
    /* a put under a lease that does not exist fails the whole txn */
    store_op bad[2] = {{.type = STORE_OP_PUT, .key = "/x", .value = "1"},
                       {.type = STORE_OP_PUT, .key = "/y", .value = "1", .lease = 999}};
    assert_int_equal(txn(f, NULL, 0, bad, 2, &ok), SD_ELEASE_LOST);
    assert_null(ts_get(L, f->s, "/x"));
}

typedef struct events {
    int n;
    store_event_type type[32];
    char key[32][64];
    char value[32][64];
    int64_t rev[32];
    int want;
    bool done;
    store *s;
    bool put_from_cb;
} events;

static void on_event(void *arg, const store_event *ev) {
    events *e = arg;
    assert_true(e->n < 32);
    e->type[e->n] = ev->type;
    snprintf(e->key[e->n], 64, "%s", ev->kv ? ev->kv->key : "");
    snprintf(e->value[e->n], 64, "%s", ev->kv && ev->kv->value ? ev->kv->value : "");
    e->rev[e->n] = ev->revision;
    e->n++;
    if (e->put_from_cb) { /* a change made by a callback is delivered later, not re-entrantly */
        e->put_from_cb = false;
        assert_int_equal(store_put(e->s, "/w/from-cb", "y", 0, NULL, NULL), 0);
        assert_int_equal(e->n, 1);
    }
    if (e->n >= e->want) e->done = true;
}

static int64_t grant(fixture *f, int ttl) {
    ts_wait_t w = {0};
    assert_int_equal(store_lease_grant(f->s, ttl, ts_cb, &w), 0);
    ts_result *r = ts_wait(L, &w);
    assert_int_equal(r->err, 0);
    assert_int_equal(r->ttl, ttl);
    return r->lease;
}

static int lease_call(fixture *f, int (*fn)(store *, int64_t, store_cb, void *), int64_t lease) {
    ts_wait_t w = {0};
    assert_int_equal(fn(f->s, lease, ts_cb, &w), 0);
    return ts_wait(L, &w)->err;
}

static void test_lease_expiry(void **state) {
    fixture *f = *state;
    store *s = f->s;
    int64_t lease = grant(f, 1), other = grant(f, 60);
    assert_int_equal(ts_put(L, s, "/nodes/a", "x", lease, NULL), 0);
    assert_int_equal(ts_put(L, s, "/nodes/b", "y", other, NULL), 0);
    assert_int_equal(ts_put(L, s, "/nodes/c", "z", 999, NULL), SD_ELEASE_LOST); /* unknown lease */
    events e = {.want = 1};
    store_watch *w;
    assert_int_equal(store_watch_prefix(s, "/nodes/", 0, on_event, &e, &w), 0);
    uv_update_time(L);
    uint64_t t0 = uv_now(L);
    assert_true(ts_run_until(L, &e.done, 5000));
    assert_true(uv_now(L) - t0 >= 900); /* not before its TTL */
    assert_int_equal(e.type[0], STORE_EVENT_DELETE);
    assert_string_equal(e.key[0], "/nodes/a");
    assert_null(ts_get(L, s, "/nodes/a"));
    char *v = ts_get(L, s, "/nodes/b");
    assert_non_null(v);
    free(v);
    assert_int_equal(lease_call(f, store_lease_keepalive, lease), SD_ELEASE_LOST);
    assert_int_equal(lease_call(f, store_lease_keepalive, other), 0);
    /* revoke deletes at once */
    assert_int_equal(lease_call(f, store_lease_revoke, other), 0);
    assert_null(ts_get(L, s, "/nodes/b"));
    store_watch_cancel(s, w);
}

static void test_keepalive_extends(void **state) {
    fixture *f = *state;
    int64_t lease = grant(f, 1);
    assert_int_equal(ts_put(L, f->s, "/k", "v", lease, NULL), 0);
    /* keep alive for ~1.6 s (past the 1 s TTL) */
    uv_update_time(L);
    uint64_t end = uv_now(L) + 1600;
    while (uv_now(L) < end) {
        assert_int_equal(lease_call(f, store_lease_keepalive, lease), 0);
        uv_sleep(200);
        uv_run(L, UV_RUN_NOWAIT);
        uv_update_time(L);
    }
    char *v = ts_get(L, f->s, "/k");
    assert_non_null(v);
    free(v);
    assert_int_equal(lease_call(f, store_lease_revoke, lease), 0);
}

static void test_watch_order(void **state) {
    fixture *f = *state;
    store *s = f->s;
    assert_int_equal(ts_put(L, s, "/w/before", "0", 0, NULL), 0); /* before the watch: not seen */
    events e = {.want = 6};
    events other = {.want = 1000};
    store_watch *w, *w2;
    assert_int_equal(store_watch_prefix(s, "/w/", 0, on_event, &e, &w), 0);
    assert_int_equal(store_watch_prefix(s, "/elsewhere/", 0, on_event, &other, &w2), 0);
    int64_t r1, r2, r3;
    assert_int_equal(ts_put(L, s, "/w/a", "1", 0, &r1), 0);
    assert_int_equal(ts_put(L, s, "/x/ignored", "1", 0, NULL), 0);
    assert_int_equal(ts_put(L, s, "/w/b", "2", 0, &r2), 0);
    assert_int_equal(ts_put(L, s, "/w/a", "3", 0, &r3), 0);
    assert_int_equal(ts_del(L, s, "/w/b", false), 1);
    assert_int_equal(ts_del(L, s, "/w/", true), 2); /* /w/a and /w/before */
    assert_true(ts_run_until(L, &e.done, 2000));
    assert_int_equal(e.type[0], STORE_EVENT_PUT);
    assert_string_equal(e.key[0], "/w/a");
    assert_string_equal(e.value[0], "1");
    assert_int_equal(e.rev[0], r1);
    assert_string_equal(e.key[1], "/w/b");
    assert_int_equal(e.rev[1], r2);
    assert_string_equal(e.value[2], "3");
    assert_int_equal(e.rev[2], r3);
    assert_int_equal(e.type[3], STORE_EVENT_DELETE);
    assert_string_equal(e.key[3], "/w/b");
    assert_int_equal(e.type[4], STORE_EVENT_DELETE);
    assert_int_equal(e.type[5], STORE_EVENT_DELETE);
    assert_int_equal(e.rev[4], e.rev[5]); /* one revision per range delete */
    for (int i = 1; i < 5; i++) assert_true(e.rev[i] > e.rev[i - 1]);
    assert_int_equal(other.n, 0);
    /* cancelled: no more events */
    store_watch_cancel(s, w);
    assert_int_equal(ts_put(L, s, "/w/after", "z", 0, NULL), 0);
    for (int i = 0; i < 5; i++) uv_run(L, UV_RUN_NOWAIT);
    assert_int_equal(e.n, 6);
    store_watch_cancel(s, w2);
}

/* A change made by a watch callback is delivered in a later round, never
 * inside the callback. */
static void test_put_from_callback(void **state) {
    fixture *f = *state;
    events e = {.want = 2, .s = f->s, .put_from_cb = true};
    store_watch *w;
    assert_int_equal(store_watch_prefix(f->s, "/w/", 0, on_event, &e, &w), 0);
    assert_int_equal(store_put(f->s, "/w/a", "1", 0, NULL, NULL), 0);
    assert_true(ts_run_until(L, &e.done, 2000));
    assert_string_equal(e.key[1], "/w/from-cb");
    store_watch_cancel(f->s, w);
}

/* A watch from a past revision replays what followed it: list, then watch
 * from the listed revision + 1, and nothing made in between is missed. */
static void test_watch_from_revision(void **state) {
    fixture *f = *state;
    store *s = f->s;
    int64_t r1, r2;
    assert_int_equal(ts_put(L, s, "/h/a", "1", 0, &r1), 0);
    assert_int_equal(ts_put(L, s, "/h/b", "2", 0, &r2), 0);
    assert_int_equal(ts_put(L, s, "/h/a", "3", 0, NULL), 0);
    events e = {.want = 2};
    store_watch *w;
    assert_int_equal(store_watch_prefix(s, "/h/", r2, on_event, &e, &w), 0);
    assert_true(ts_run_until(L, &e.done, 2000));
    assert_int_equal(e.rev[0], r2);
    assert_string_equal(e.key[0], "/h/b");
    assert_string_equal(e.value[1], "3");
    store_watch_cancel(s, w);
}

/* Older than the history kept: one RESYNC, then nothing. */
static void test_watch_resync(void **state) {
    fixture *f = *state;
    store *s = f->s;
    int64_t first;
    assert_int_equal(ts_put(L, s, "/r/0", "x", 0, &first), 0);
    for (int i = 0; i < 9000; i++) assert_int_equal(store_put(s, "/r/k", "v", 0, NULL, NULL), 0);
    events e = {.want = 1};
    store_watch *w;
    assert_int_equal(store_watch_prefix(s, "/r/", first, on_event, &e, &w), 0);
    assert_true(ts_run_until(L, &e.done, 2000));
    assert_int_equal(e.type[0], STORE_EVENT_RESYNC);
    assert_int_equal(ts_put(L, s, "/r/later", "x", 0, NULL), 0);
    for (int i = 0; i < 5; i++) uv_run(L, UV_RUN_NOWAIT);
    assert_int_equal(e.n, 1);
    store_watch_cancel(s, w);
}

static void test_cancel(void **state) {
    fixture *f = *state;
    ts_wait_t a = {0}, b = {0};
    assert_int_equal(store_put(f->s, "/c", "1", 0, ts_cb, &a), 0);
    assert_int_equal(store_put(f->s, "/c", "2", 0, ts_cb, &b), 0);
    store_cancel(f->s, &a);
    ts_wait(L, &b);
    for (int i = 0; i < 5; i++) uv_run(L, UV_RUN_NOWAIT);
    assert_false(a.done);
    ts_result_clear(&b.r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_extends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_from_revision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_resync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
