/* memstore: put/get/list/delete, compare-and-put, leases, watch events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/memstore.h"

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

static void test_put_get_list_delete(void **state) {
    fixture *f = *state;
    store *s = f->s;
    int64_t r1, r2, r3;
    assert_int_equal(store_put(s, "/a/2", "{\"v\":2}", 0, &r1), 0);
    assert_int_equal(store_put(s, "/a/1", "{\"v\":1}", 0, &r2), 0);
    assert_int_equal(store_put(s, "/b", "x", 0, &r3), 0);
    assert_true(r1 < r2 && r2 < r3);
    store_kv kv;
    assert_int_equal(store_get(s, "/a/1", &kv), 0);
    assert_string_equal(kv.value, "{\"v\":1}");
    assert_int_equal(kv.create_rev, r2);
    assert_int_equal(kv.mod_rev, r2);
    store_kv_clear(&kv);
    assert_int_equal(store_get(s, "/a/3", &kv), STORE_NOT_FOUND);
    /* overwrite keeps create_rev, bumps mod_rev */
    int64_t r4;
    assert_int_equal(store_put(s, "/a/1", "new", 0, &r4), 0);
    assert_int_equal(store_get(s, "/a/1", &kv), 0);
    assert_int_equal(kv.create_rev, r2);
    assert_int_equal(kv.mod_rev, r4);
    assert_string_equal(kv.value, "new");
    store_kv_clear(&kv);
    store_kv *list;
    size_t n;
    assert_int_equal(store_list_prefix(s, "/a/", &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].key, "/a/1"); /* key order */
    assert_string_equal(list[1].key, "/a/2");
    store_kvs_free(list, n);
    assert_int_equal(store_list_prefix(s, "/zzz", &list, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_del(s, "/b"), 0);
    assert_int_equal(store_del(s, "/b"), STORE_NOT_FOUND);
    size_t nd;
    assert_int_equal(store_del_prefix(s, "/a/", &nd), 0);
    assert_int_equal(nd, 2);
    assert_int_equal(store_list_prefix(s, "/", &list, &n), 0);
    assert_int_equal(n, 0);
}

static void test_cas(void **state) {
    fixture *f = *state;
    store *s = f->s;
    int64_t rev, rev2;
    assert_int_equal(store_cas(s, "/leader", 0, "me", 0, &rev), 0);      /* create if absent */
    assert_int_equal(store_cas(s, "/leader", 0, "other", 0, NULL), STORE_CONFLICT);
    assert_int_equal(store_cas(s, "/leader", rev + 1, "other", 0, NULL), STORE_CONFLICT);
    assert_int_equal(store_cas(s, "/leader", rev, "me2", 0, &rev2), 0);
    assert_true(rev2 > rev);
    store_kv kv;
    assert_int_equal(store_get(s, "/leader", &kv), 0);
    assert_string_equal(kv.value, "me2");
    store_kv_clear(&kv);
}

/* runs the loop until *flag or deadline_ms passes; returns *flag */
static bool run_until(uv_loop_t *loop, bool *flag, uint64_t deadline_ms) {
    uv_update_time(loop);
    uint64_t end = uv_now(loop) + deadline_ms;
    while (!*flag && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
    return *flag;
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
    snprintf(e->key[e->n], 64, "%s", ev->key);
    snprintf(e->value[e->n], 64, "%s", ev->value ? ev->value : "");
    e->rev[e->n] = ev->revision;
    e->n++;
    if (e->put_from_cb) { /* a change made by a callback is delivered later, not re-entrantly */
        e->put_from_cb = false;
        assert_int_equal(store_put(e->s, "/w/from-cb", "y", 0, NULL), 0);
        assert_int_equal(e->n, 1);
    }
    if (e->n >= e->want) e->done = true;
}

static void test_lease_expiry(void **state) {
    fixture *f = *state;
    store *s = f->s;
    int64_t lease, other;
    assert_int_equal(store_lease_grant(s, 1, &lease), 0);
    assert_int_equal(store_lease_grant(s, 60, &other), 0);
    assert_int_equal(store_put(s, "/nodes/a", "x", lease, NULL), 0);
    assert_int_equal(store_put(s, "/nodes/b", "y", other, NULL), 0);
    assert_int_equal(store_put(s, "/nodes/c", "z", 999, NULL), -1); /* unknown lease */
    events e = {.want = 1};
    store_watch *w = store_watch_prefix(s, "/nodes/", on_event, &e);
    assert_non_null(w);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    assert_true(run_until(&f->loop, &e.done, 5000));
    uint64_t waited = uv_now(&f->loop) - t0;
    assert_true(waited >= 900); /* not before its TTL */
    assert_int_equal(e.type[0], STORE_EVENT_DELETE);
    assert_string_equal(e.key[0], "/nodes/a");
    store_kv kv;
    assert_int_equal(store_get(s, "/nodes/a", &kv), STORE_NOT_FOUND);
    assert_int_equal(store_get(s, "/nodes/b", &kv), 0);
    store_kv_clear(&kv);
    assert_int_equal(store_lease_keepalive(s, lease), STORE_NOT_FOUND);
    assert_int_equal(store_lease_keepalive(s, other), 0);
    /* revoke deletes at once */
    assert_int_equal(store_lease_revoke(s, other), 0);
    assert_int_equal(store_get(s, "/nodes/b", &kv), STORE_NOT_FOUND);
    store_watch_cancel(s, w);
}

static void test_keepalive_extends(void **state) {
    fixture *f = *state;
    store *s = f->s;
    int64_t lease;
    assert_int_equal(store_lease_grant(s, 1, &lease), 0);
    assert_int_equal(store_put(s, "/k", "v", lease, NULL), 0);
    /* keep alive for ~1.6 s (past the 1 s TTL) */
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + 1600;
    while (uv_now(&f->loop) < end) {
        assert_int_equal(store_lease_keepalive(s, lease), 0);
        uv_sleep(200);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uv_update_time(&f->loop);
    }
    store_kv kv;
    assert_int_equal(store_get(s, "/k", &kv), 0);
    store_kv_clear(&kv);
    assert_int_equal(store_lease_revoke(s, lease), 0);
}

static void test_watch_order(void **state) {
    fixture *f = *state;
    store *s = f->s;
    assert_int_equal(store_put(s, "/w/before", "0", 0, NULL), 0); /* before the watch: not seen */
    events e = {.want = 6, .s = s, .put_from_cb = true};
    events other = {.want = 1000};
    store_watch *w = store_watch_prefix(s, "/w/", on_event, &e);
    store_watch *w2 = store_watch_prefix(s, "/elsewhere/", on_event, &other);
    assert_non_null(w);
    int64_t r1, r2, r3;
    assert_int_equal(store_put(s, "/w/a", "1", 0, &r1), 0);
    assert_int_equal(store_put(s, "/x/ignored", "1", 0, NULL), 0);
    assert_int_equal(store_put(s, "/w/b", "2", 0, &r2), 0);
    assert_int_equal(store_put(s, "/w/a", "3", 0, &r3), 0);
    assert_int_equal(store_del(s, "/w/b"), 0);
    assert_int_equal(e.n, 0); /* nothing delivered inside the calls */
    size_t nd;
    assert_int_equal(store_del_prefix(s, "/w/", &nd), 0); /* /w/a and /w/before */
    assert_int_equal(nd, 2);
    assert_true(run_until(&f->loop, &e.done, 2000));
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
    /* the put made from a callback arrives in a later round */
    e.want = 7;
    e.done = e.n >= 7; /* may have come in the same loop iteration */
    assert_true(run_until(&f->loop, &e.done, 2000));
    assert_string_equal(e.key[6], "/w/from-cb");
    assert_int_equal(other.n, 0);
    /* cancelled: no more events */
    store_watch_cancel(s, w);
    assert_int_equal(store_put(s, "/w/after", "z", 0, NULL), 0);
    for (int i = 0; i < 5; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(e.n, 7);
    store_watch_cancel(s, w2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_extends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
