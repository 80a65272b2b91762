/* test_store_sync: see test_store_sync.h. */
#include "test_store_sync.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void on_tick(uv_timer_t *t) { (void)t; }
static void on_closed(uv_handle_t *h) { (void)h; }

bool ts_run_until(uv_loop_t *loop, const bool *flag, uint64_t ms) {
    /* UV_RUN_ONCE may sleep until the next event after running a callback
     * that set the flag: a short tick bounds that wait */
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uv_update_time(loop);
    uint64_t end = uv_now(loop) + ms;
    while (!*flag && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
    uv_close((uv_handle_t *)&tick, on_closed);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

void ts_cb(void *arg, const store_result *r) {
    ts_wait_t *w = arg;
    w->r = (ts_result){.err = r->err, .revision = r->revision, .lease = r->lease, .ttl = r->ttl,
                       .deleted = r->deleted, .succeeded = r->succeeded, .nkvs = r->nkvs};
    w->r.kvs = r->nkvs ? calloc(r->nkvs, sizeof *w->r.kvs) : NULL;
    assert_true(r->nkvs == 0 || w->r.kvs);
    for (size_t i = 0; i < r->nkvs; i++) {
        ts_kv *kv = &w->r.kvs[i];
        kv->key = strdup(r->kvs[i].key);
        kv->value = malloc(r->kvs[i].value_len + 1);
        assert_non_null(kv->key);
        assert_non_null(kv->value);
        memcpy(kv->value, r->kvs[i].value, r->kvs[i].value_len);
        kv->value[r->kvs[i].value_len] = '\0';
        kv->value_len = r->kvs[i].value_len;
        kv->create_rev = r->kvs[i].create_rev;
        kv->mod_rev = r->kvs[i].mod_rev;
        kv->lease = r->kvs[i].lease;
    }
    w->done = true;
}

ts_result *ts_wait(uv_loop_t *loop, ts_wait_t *w) {
    if (!ts_run_until(loop, &w->done, 5000)) fail_msg("store request did not complete within 5 s");
    return &w->r;
}

void ts_result_clear(ts_result *r) {
    for (size_t i = 0; r->kvs && i < r->nkvs; i++) {
        free(r->kvs[i].key);
        free(r->kvs[i].value);
    }
    free(r->kvs);
    r->kvs = NULL;
    r->nkvs = 0;
}

char *ts_get(uv_loop_t *loop, store *s, const char *key) {
    ts_wait_t w = {0};
    assert_int_equal(store_get(s, key, ts_cb, &w), 0);
    ts_result *r = ts_wait(loop, &w);
    assert_int_equal(r->err, 0);
    char *v = r->nkvs ? strdup(r->kvs[0].value) : NULL;
    ts_result_clear(r);
    return v;
}

int ts_put(uv_loop_t *loop, store *s, const char *key, const char *value, int64_t lease, int64_t *rev) {
    ts_wait_t w = {0};
    assert_int_equal(store_put(s, key, value, lease, ts_cb, &w), 0);
    ts_result *r = ts_wait(loop, &w);
    if (rev) *rev = r->revision;
    ts_result_clear(r);
    return r->err;
}

int64_t ts_del(uv_loop_t *loop, store *s, const char *key, bool prefix) {
    ts_wait_t w = {0};
    assert_int_equal(store_del(s, key, prefix, ts_cb, &w), 0);
    ts_result *r = ts_wait(loop, &w);
    assert_int_equal(r->err, 0);
    ts_result_clear(r);
    return r->deleted;
}
