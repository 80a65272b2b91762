/* faulty_store over memstore: requests pass through unchanged; failures
 * (before, after, at the call; by count and by op), delays, lost and dropped
 * watches with resumption; cancel and watch cancel hold for delayed and
 * failed results; counters. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/faulty_store.h"
#include "store/memstore.h"
#include "test_store_sync.h"

typedef struct fixture {
    uv_loop_t loop;
    store *mem, *s; /* s wraps mem */
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->mem = memstore_new(&f->loop);
    assert_non_null(f->mem);
    f->s = faulty_store_new(&f->loop, f->mem);
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    store_free(f->s);
    store_free(f->mem);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

#define L (&f->loop)

/* runs the loop for about ms, whatever happens */
static void run_for(uv_loop_t *loop, uint64_t ms) {
    bool never = false;
    ts_run_until(loop, &never, ms);
}

static uint64_t now_ms(uv_loop_t *loop) {
    uv_update_time(loop);
    return uv_now(loop);
}

/* A request's result, waited for. */
static ts_result *call_wait(fixture *f, ts_wait_t *w, int rc) {
    assert_int_equal(rc, 0);
    assert_false(w->done); /* never inside the call */
    return ts_wait(L, w);
}

typedef struct events {
    int n;
    store_event_type type[64];
    char key[64][32];
    int64_t rev[64];
    uint64_t at[64]; /* uv_now() when it arrived */
    uv_loop_t *loop;
    store *s;
    store_watch *w;
    bool cancel_in_cb;
} events;

static void on_event(void *arg, const store_event *ev) {
    events *e = arg;
    assert_true(e->n < 64);
    e->type[e->n] = ev->type;
    snprintf(e->key[e->n], sizeof e->key[0], "%s", ev->kv ? ev->kv->key : "");
    e->rev[e->n] = ev->revision;
    e->at[e->n] = e->loop ? now_ms(e->loop) : 0;
    e->n++;
    if (e->cancel_in_cb) {
        store_watch_cancel(e->s, e->w);
        e->w = NULL;
    }
}

static void test_passthrough_and_counts(void **state) {
    fixture *f = *state;
    ts_wait_t w = {0};
    ts_result *r = call_wait(f, &w, store_put(f->s, "/a/1", "one", 0, ts_cb, &w));
    assert_int_equal(r->err, 0);
    int64_t rev = r->revision;
    assert_true(rev > 0);
    ts_result_clear(r);
    w = (ts_wait_t){0};
    r = call_wait(f, &w, store_get(f->s, "/a/1", ts_cb, &w));
    assert_int_equal(r->nkvs, 1);
    assert_string_equal(r->kvs[0].value, "one");
    assert_int_equal(r->kvs[0].mod_rev, rev);
    ts_result_clear(r);
    const char bytes[] = {'x', 0, 'y'};
    w = (ts_wait_t){0};
    assert_int_equal(call_wait(f, &w, store_put_bytes(f->s, "/a/2", bytes, sizeof bytes, 0, ts_cb, &w))->err, 0);
    ts_result_clear(&w.r);
    w = (ts_wait_t){0};
    r = call_wait(f, &w, store_list(f->s, "/a/", ts_cb, &w));
    assert_int_equal(r->nkvs, 2);
    assert_int_equal(r->kvs[1].value_len, sizeof bytes);
    assert_memory_equal(r->kvs[1].value, bytes, sizeof bytes);
    ts_result_clear(r);
    store_cmp absent = {.key = "/lead", .target = STORE_CMP_CREATE_REV, .op = STORE_CMP_EQUAL, .rev = 0};
    store_op put = {.type = STORE_OP_PUT, .key = "/lead", .value = "me"};
    store_txn t = {.cmps = &absent, .ncmps = 1, .then = &put, .nthen = 1};
    w = (ts_wait_t){0};
    assert_true(call_wait(f, &w, store_commit(f->s, &t, ts_cb, &w))->succeeded);
    ts_result_clear(&w.r);
    w = (ts_wait_t){0};
    r = call_wait(f, &w, store_lease_grant(f->s, 5, ts_cb, &w));
    int64_t lease = r->lease;
    assert_true(lease > 0);
    assert_int_equal(r->ttl, 5);
    ts_result_clear(r);
    w = (ts_wait_t){0};
    assert_int_equal(call_wait(f, &w, store_lease_keepalive(f->s, lease, ts_cb, &w))->err, 0);
    ts_result_clear(&w.r);
    w = (ts_wait_t){0};
    assert_int_equal(call_wait(f, &w, store_lease_revoke(f->s, lease, ts_cb, &w))->err, 0);
    ts_result_clear(&w.r);
    w = (ts_wait_t){0};
    assert_int_equal(call_wait(f, &w, store_del(f->s, "/a/", true, ts_cb, &w))->deleted, 2);
    ts_result_clear(&w.r);
    store_watch *sw;
    events e = {0};
    assert_int_equal(store_watch_prefix(f->s, "/x/", 0, on_event, &e, &sw), 0);
    store_watch_cancel(f->s, sw);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_PUT), 2);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_GET | FAULTY_OP_LIST), 2);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_TXN), 1);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_LEASE_GRANT), 1);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_LEASE_KEEPALIVE), 1);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_LEASE_REVOKE), 1);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_DEL), 1);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_WATCH), 1);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_REQUESTS), 9);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_ALL), 10);
    faulty_store_reset_counts(f->s);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_ALL), 0);
}

/* The next count requests fail without reaching the inner store; then
 * requests work again. */
static void test_fail_count(void **state) {
    fixture *f = *state;
    faulty_store_fail(f->s, -ECONNREFUSED, 2);
    ts_wait_t a = {0}, b = {0}, c = {0};
    assert_int_equal(call_wait(f, &a, store_put(f->s, "/k", "1", 0, ts_cb, &a))->err, -ECONNREFUSED);
    assert_int_equal(call_wait(f, &b, store_get(f->s, "/k", ts_cb, &b))->err, -ECONNREFUSED);
    assert_int_equal(call_wait(f, &c, store_put(f->s, "/k", "2", 0, ts_cb, &c))->err, 0);
    assert_true(c.r.revision > 0);
    char *v = ts_get(L, f->mem, "/k");
    assert_string_equal(v, "2"); /* the failed put never reached memstore */
    free(v);
    ts_result_clear(&a.r);
    ts_result_clear(&b.r);
    ts_result_clear(&c.r);
    /* always, until told otherwise; a request with no callback fails quietly */
    faulty_store_fail(f->s, SD_EUNAVAILABLE, FAULTY_ALWAYS);
    assert_int_equal(store_put(f->s, "/k", "3", 0, NULL, NULL), 0);
    for (int i = 0; i < 20; i++) {
        ts_wait_t w = {0};
        assert_int_equal(call_wait(f, &w, store_get(f->s, "/k", ts_cb, &w))->err, SD_EUNAVAILABLE);
        assert_int_equal(w.r.nkvs, 0);
        ts_result_clear(&w.r);
    }
    v = ts_get(L, f->mem, "/k");
    assert_string_equal(v, "2");
    free(v);
    faulty_store_fail(f->s, 0, 0);
    v = ts_get(L, f->s, "/k");
    assert_string_equal(v, "2");
    free(v);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_PUT), 3);
}

/* Only the ops in the mask fail; a failed keepalive names its lease. */
static void test_fail_ops_mask(void **state) {
    fixture *f = *state;
    faulty_store_fail_ops(f->s, FAULTY_OP_LEASE_KEEPALIVE, FAULTY_BEFORE, -ETIMEDOUT, FAULTY_ALWAYS);
    ts_wait_t w = {0};
    int64_t lease = call_wait(f, &w, store_lease_grant(f->s, 1, ts_cb, &w))->lease;
    assert_int_equal(w.r.err, 0);
    ts_result_clear(&w.r);
    assert_int_equal(ts_put(L, f->s, "/l", "x", lease, NULL), 0);
    for (int i = 0; i < 3; i++) {
        w = (ts_wait_t){0};
        assert_int_equal(call_wait(f, &w, store_lease_keepalive(f->s, lease, ts_cb, &w))->err, -ETIMEDOUT);
        assert_int_equal(w.r.lease, lease);
        ts_result_clear(&w.r);
    }
    /* the keepalives never reached memstore: the lease expires there */
    uv_update_time(L);
    uint64_t end = now_ms(L) + 3000;
    char *v;
    while ((v = ts_get(L, f->s, "/l")) && now_ms(L) < end) {
        free(v);
        run_for(L, 50);
    }
    assert_null(v);
    w = (ts_wait_t){0};
    assert_int_equal(call_wait(f, &w, store_lease_revoke(f->s, lease, ts_cb, &w))->err, SD_ELEASE_LOST);
    assert_int_equal(w.r.lease, lease);
    ts_result_clear(&w.r);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_LEASE_KEEPALIVE), 3);
}

/* FAULTY_AFTER: the change is made, the answer is lost. FAULTY_AT_CALL:
 * the call fails, no callback. */
static void test_fail_after_and_at_call(void **state) {
    fixture *f = *state;
    faulty_store_fail_ops(f->s, FAULTY_OP_PUT, FAULTY_AFTER, -ETIMEDOUT, 1);
    ts_wait_t w = {0};
    assert_int_equal(call_wait(f, &w, store_put(f->s, "/k", "made", 0, ts_cb, &w))->err, -ETIMEDOUT);
    assert_int_equal(w.r.revision, 0);
    ts_result_clear(&w.r);
    char *v = ts_get(L, f->mem, "/k");
    assert_string_equal(v, "made");
    free(v);
    faulty_store_fail_ops(f->s, FAULTY_OP_GET | FAULTY_OP_DEL, FAULTY_AT_CALL, SD_EUNAVAILABLE, 2);
    w = (ts_wait_t){0};
    assert_int_equal(store_get(f->s, "/k", ts_cb, &w), SD_EUNAVAILABLE);
    assert_int_equal(store_del(f->s, "/k", false, ts_cb, &w), SD_EUNAVAILABLE);
    run_for(L, 50);
    assert_false(w.done);
    v = ts_get(L, f->s, "/k"); /* the count is used up */
    assert_string_equal(v, "made");
    free(v);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_GET), 2);
}

static bool wait_events(fixture *f, events *e, int n, uint64_t ms) {
    uint64_t end = now_ms(L) + ms;
    while (e->n < n && now_ms(L) < end) run_for(L, 5);
    return e->n >= n;
}

/* Results and events are held back by the delay, in order. */
static void test_delay(void **state) {
    fixture *f = *state;
    events e = {.loop = L};
    store_watch *sw;
    assert_int_equal(store_watch_prefix(f->s, "/d/", 0, on_event, &e, &sw), 0);
    faulty_store_delay(f->s, 300);
    ts_wait_t a = {0}, b = {0};
    uint64_t t0 = now_ms(L);
    assert_int_equal(store_put(f->s, "/d/1", "x", 0, ts_cb, &a), 0);
    assert_int_equal(store_put(f->s, "/d/2", "x", 0, ts_cb, &b), 0);
    run_for(L, 150);
    assert_false(a.done);
    assert_int_equal(e.n, 0);
    char *v = ts_get(L, f->mem, "/d/1"); /* the inner store has it at once */
    assert_non_null(v);
    free(v);
    ts_wait(L, &a);
    uint64_t took = now_ms(L) - t0;
    assert_true(took >= 290);
    ts_wait(L, &b);
    assert_true(wait_events(f, &e, 2, 2000));
    assert_true(e.at[0] - t0 >= 290);
    assert_string_equal(e.key[0], "/d/1");
    assert_string_equal(e.key[1], "/d/2");
    assert_int_equal(e.rev[0], a.r.revision);
    assert_int_equal(e.rev[1], b.r.revision);
    ts_result_clear(&a.r);
    ts_result_clear(&b.r);
    /* a failure is delayed too (a timeout takes time) */
    faulty_store_fail(f->s, -ETIMEDOUT, 1);
    ts_wait_t c = {0};
    t0 = now_ms(L);
    assert_int_equal(call_wait(f, &c, store_get(f->s, "/d/1", ts_cb, &c))->err, -ETIMEDOUT);
    assert_true(now_ms(L) - t0 >= 290);
    ts_result_clear(&c.r);
    /* without delay, quick again */
    faulty_store_delay(f->s, 0);
    ts_wait_t d = {0};
    t0 = now_ms(L);
    assert_int_equal(call_wait(f, &d, store_get(f->s, "/d/1", ts_cb, &d))->err, 0);
    assert_true(now_ms(L) - t0 < 200);
    ts_result_clear(&d.r);
    store_watch_cancel(f->s, sw);
}

/* store_cancel: no callback for that arg, whether the result is in flight,
 * queued behind a delay or a failure; other args are not affected. */
static void test_cancel(void **state) {
    fixture *f = *state;
    ts_wait_t a = {0}, b = {0}, c = {0}, d = {0};
    assert_int_equal(store_put(f->s, "/c", "1", 0, ts_cb, &a), 0);
    assert_int_equal(store_put(f->s, "/c", "2", 0, ts_cb, &b), 0);
    store_cancel(f->s, &a); /* in flight in the inner store */
    ts_wait(L, &b);
    ts_result_clear(&b.r);
    faulty_store_delay(f->s, 200);
    assert_int_equal(store_put(f->s, "/c", "3", 0, ts_cb, &a), 0);
    b = (ts_wait_t){0};
    assert_int_equal(store_put(f->s, "/c", "4", 0, ts_cb, &b), 0);
    run_for(L, 50); /* answered by memstore, queued behind the delay */
    store_cancel(f->s, &a);
    faulty_store_fail(f->s, -ECONNREFUSED, 1);
    assert_int_equal(store_get(f->s, "/c", ts_cb, &c), 0);
    store_cancel(f->s, &c); /* a queued failure */
    faulty_store_fail_ops(f->s, FAULTY_OP_GET, FAULTY_AFTER, -ETIMEDOUT, 1);
    assert_int_equal(store_get(f->s, "/c", ts_cb, &d), 0);
    store_cancel(f->s, &d);
    ts_wait(L, &b);
    run_for(L, 400);
    assert_false(a.done);
    assert_false(c.done);
    assert_false(d.done);
    ts_result_clear(&b.r);
    char *v = ts_get(L, f->mem, "/c");
    assert_string_equal(v, "4"); /* cancelled requests still happened */
    free(v);
}

/* store_watch_cancel: nothing more, even for events already queued. */
static void test_watch_cancel_delayed(void **state) {
    fixture *f = *state;
    events e = {0}, other = {0};
    store_watch *w1, *w2;
    assert_int_equal(store_watch_prefix(f->s, "/w/", 0, on_event, &e, &w1), 0);
    assert_int_equal(store_watch_prefix(f->s, "/w/", 0, on_event, &other, &w2), 0);
    faulty_store_delay(f->s, 200);
    assert_int_equal(store_put(f->s, "/w/a", "1", 0, NULL, NULL), 0);
    run_for(L, 50);
    store_watch_cancel(f->s, w1);
    assert_true(wait_events(f, &other, 1, 2000));
    run_for(L, 300);
    assert_int_equal(e.n, 0);
    /* cancelled from its own callback: the rest of the queue is not delivered */
    faulty_store_delay(f->s, 0);
    other = (events){.s = f->s, .w = w2, .cancel_in_cb = true};
    assert_int_equal(store_put(f->s, "/w/b", "1", 0, NULL, NULL), 0);
    assert_int_equal(store_put(f->s, "/w/c", "1", 0, NULL, NULL), 0);
    assert_true(wait_events(f, &other, 1, 2000));
    run_for(L, 100);
    assert_int_equal(other.n, 1);
    assert_null(other.w);
}

/* lose_watches: one RESYNC now, then nothing. */
static void test_lose_watches(void **state) {
    fixture *f = *state;
    events e = {0}, g = {0};
    store_watch *w1, *w2;
    assert_int_equal(store_watch_prefix(f->s, "/a/", 0, on_event, &e, &w1), 0);
    assert_int_equal(store_watch_prefix(f->s, "/b/", 0, on_event, &g, &w2), 0);
    assert_int_equal(ts_put(L, f->s, "/a/1", "x", 0, NULL), 0);
    assert_true(wait_events(f, &e, 1, 2000));
    faulty_store_lose_watches(f->s);
    assert_true(wait_events(f, &e, 2, 2000));
    assert_true(wait_events(f, &g, 1, 2000));
    assert_int_equal(e.type[0], STORE_EVENT_PUT);
    assert_int_equal(e.type[1], STORE_EVENT_RESYNC);
    assert_int_equal(g.type[0], STORE_EVENT_RESYNC);
    assert_int_equal(ts_put(L, f->s, "/a/2", "x", 0, NULL), 0);
    assert_int_equal(ts_put(L, f->s, "/b/2", "x", 0, NULL), 0);
    run_for(L, 100);
    assert_int_equal(e.n, 2);
    assert_int_equal(g.n, 1);
    store_watch_cancel(f->s, w1);
    store_watch_cancel(f->s, w2);
    /* a new watch after the loss works */
    events h = {0};
    store_watch *w3;
    assert_int_equal(store_watch_prefix(f->s, "/a/", 0, on_event, &h, &w3), 0);
    assert_int_equal(ts_put(L, f->s, "/a/3", "x", 0, NULL), 0);
    assert_true(wait_events(f, &h, 1, 2000));
    assert_string_equal(h.key[0], "/a/3");
    store_watch_cancel(f->s, w3);
}

/* Dropped events are swallowed; resuming replays them from the last
 * revision received, without gaps or repeats. */
static void test_drop_and_resume(void **state) {
    fixture *f = *state;
    int64_t r0;
    assert_int_equal(ts_put(L, f->s, "/r/0", "x", 0, &r0), 0);
    events e = {0};
    store_watch *sw;
    assert_int_equal(store_watch_prefix(f->s, "/r/", r0 + 1, on_event, &e, &sw), 0);
    int64_t r1;
    assert_int_equal(ts_put(L, f->s, "/r/1", "x", 0, &r1), 0);
    assert_true(wait_events(f, &e, 1, 2000));
    faulty_store_drop_watch_events(f->s, true);
    int64_t rev[3];
    assert_int_equal(ts_put(L, f->s, "/r/2", "x", 0, &rev[0]), 0);
    assert_int_equal(ts_put(L, f->s, "/elsewhere", "x", 0, NULL), 0);
    assert_int_equal(ts_put(L, f->s, "/r/3", "x", 0, &rev[1]), 0);
    assert_int_equal(ts_del(L, f->s, "/r/1", false), 1);
    rev[2] = rev[1] + 1;
    run_for(L, 100);
    assert_int_equal(e.n, 1);
    assert_int_equal(faulty_store_dropped_events(f->s), 3);
    faulty_store_resume_watches(f->s);
    assert_true(wait_events(f, &e, 4, 2000));
    run_for(L, 50);
    assert_int_equal(e.n, 4);
    assert_int_equal(e.rev[0], r1);
    assert_string_equal(e.key[1], "/r/2");
    assert_int_equal(e.rev[1], rev[0]);
    assert_string_equal(e.key[2], "/r/3");
    assert_int_equal(e.rev[2], rev[1]);
    assert_int_equal(e.type[3], STORE_EVENT_DELETE);
    assert_int_equal(e.rev[3], rev[2]);
    /* live again */
    assert_int_equal(ts_put(L, f->s, "/r/4", "x", 0, NULL), 0);
    assert_true(wait_events(f, &e, 5, 2000));
    assert_string_equal(e.key[4], "/r/4");
    store_watch_cancel(f->s, sw);
}

/* Events of a revision partly received are delivered whole: a range delete
 * is not cut in half by a disconnect that starts inside it. */
static void drop_in_cb(void *arg, const store_event *ev) {
    events *e = arg;
    on_event(arg, ev);
    if (e->n == 1) faulty_store_drop_watch_events(e->s, true);
}

static void test_drop_keeps_revision_whole(void **state) {
    fixture *f = *state;
    assert_int_equal(ts_put(L, f->s, "/p/a", "x", 0, NULL), 0);
    assert_int_equal(ts_put(L, f->s, "/p/b", "x", 0, NULL), 0);
    events e = {.s = f->s};
    store_watch *sw;
    assert_int_equal(store_watch_prefix(f->s, "/p/", 0, drop_in_cb, &e, &sw), 0);
    assert_int_equal(ts_del(L, f->s, "/p/", true), 2);
    assert_true(wait_events(f, &e, 2, 2000));
    assert_int_equal(e.rev[0], e.rev[1]);
    assert_int_equal(ts_put(L, f->s, "/p/c", "x", 0, NULL), 0);
    run_for(L, 50);
    assert_int_equal(e.n, 2); /* dropped */
    faulty_store_resume_watches(f->s);
    assert_true(wait_events(f, &e, 3, 2000));
    run_for(L, 50);
    assert_int_equal(e.n, 3);
    assert_string_equal(e.key[2], "/p/c");
    store_watch_cancel(f->s, sw);
}

/* A resumption the inner store cannot serve (its history is gone), and a
 * watch from revision 0 that received nothing: RESYNC. */
static void test_resume_resync(void **state) {
    fixture *f = *state;
    int64_t r0;
    assert_int_equal(ts_put(L, f->s, "/q/0", "x", 0, &r0), 0);
    events e = {0}, z = {0};
    store_watch *w1, *w2;
    assert_int_equal(store_watch_prefix(f->s, "/q/", r0, on_event, &e, &w1), 0);
    assert_true(wait_events(f, &e, 1, 2000));
    assert_int_equal(store_watch_prefix(f->s, "/z/", 0, on_event, &z, &w2), 0);
    faulty_store_drop_watch_events(f->s, true);
    for (int i = 0; i < 9000; i++) assert_int_equal(store_put(f->mem, "/q/k", "v", 0, NULL, NULL), 0);
    run_for(L, 200);
    assert_int_equal(e.n, 1);
    faulty_store_drop_watch_events(f->s, false);
    assert_true(wait_events(f, &e, 2, 2000));
    assert_true(wait_events(f, &z, 1, 2000));
    assert_int_equal(e.type[1], STORE_EVENT_RESYNC);
    assert_int_equal(z.type[0], STORE_EVENT_RESYNC);
    assert_int_equal(ts_put(L, f->s, "/q/1", "x", 0, NULL), 0);
    run_for(L, 50);
    assert_int_equal(e.n, 2);
    store_watch_cancel(f->s, w1);
    store_watch_cancel(f->s, w2);
}

/* Opening a watch fails at the call, or yields a RESYNC. */
static void test_watch_failures(void **state) {
    fixture *f = *state;
    events e = {0};
    store_watch *sw = NULL;
    faulty_store_fail_ops(f->s, FAULTY_OP_WATCH, FAULTY_AT_CALL, -ECONNREFUSED, 1);
    assert_int_equal(store_watch_prefix(f->s, "/v/", 0, on_event, &e, &sw), -ECONNREFUSED);
    faulty_store_fail_ops(f->s, FAULTY_OP_WATCH, FAULTY_BEFORE, SD_ECOMPACTED, 1);
    assert_int_equal(store_watch_prefix(f->s, "/v/", 5, on_event, &e, &sw), 0);
    assert_int_equal(e.n, 0); /* not inside the call */
    assert_true(wait_events(f, &e, 1, 2000));
    assert_int_equal(e.type[0], STORE_EVENT_RESYNC);
    assert_int_equal(ts_put(L, f->s, "/v/1", "x", 0, NULL), 0); /* requests are not affected */
    run_for(L, 50);
    assert_int_equal(e.n, 1);
    store_watch_cancel(f->s, sw);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_WATCH), 2);
}

/* heal: no failures, no delay, watches resumed. */
static void test_heal(void **state) {
    fixture *f = *state;
    int64_t r0;
    assert_int_equal(ts_put(L, f->s, "/h/0", "x", 0, &r0), 0);
    events e = {0};
    store_watch *sw;
    assert_int_equal(store_watch_prefix(f->s, "/h/", r0 + 1, on_event, &e, &sw), 0);
    faulty_store_delay(f->s, 500);
    faulty_store_fail(f->s, -ETIMEDOUT, FAULTY_ALWAYS);
    faulty_store_drop_watch_events(f->s, true);
    assert_int_equal(store_put(f->mem, "/h/1", "x", 0, NULL, NULL), 0);
    run_for(L, 50);
    faulty_store_heal(f->s);
    uint64_t t0 = now_ms(L);
    assert_int_equal(ts_put(L, f->s, "/h/2", "x", 0, NULL), 0);
    assert_true(now_ms(L) - t0 < 400);
    assert_true(wait_events(f, &e, 2, 2000));
    assert_string_equal(e.key[0], "/h/1");
    assert_string_equal(e.key[1], "/h/2");
    store_watch_cancel(f->s, sw);
}

/* Freed with requests in flight, results queued and watches open: no
 * callback runs (the sanitizer build checks that nothing leaks). */
static void test_free_with_pending(void **state) {
    fixture *f = *state;
    events e = {0};
    store_watch *sw;
    assert_int_equal(store_watch_prefix(f->s, "/f/", 0, on_event, &e, &sw), 0);
    faulty_store_delay(f->s, 100);
    ts_wait_t a = {0}, b = {0};
    assert_int_equal(store_put(f->s, "/f/1", "x", 0, ts_cb, &a), 0);
    run_for(L, 20); /* answered by memstore, queued */
    assert_int_equal(store_get(f->s, "/f/1", ts_cb, &b), 0); /* in flight */
    store_free(f->s);
    f->s = faulty_store_new(L, f->mem); /* for teardown */
    assert_non_null(f->s);
    run_for(L, 300);
    assert_false(a.done);
    assert_false(b.done);
    assert_int_equal(e.n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_passthrough_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_ops_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_after_and_at_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_cancel_delayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lose_watches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_keeps_revision_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_resync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
