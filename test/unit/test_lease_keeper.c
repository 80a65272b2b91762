/* lease_keeper on memstore behind faulty_store: grants and keeps a lease
 * alive; a lease revoked behind its back is reported and replaced; a store
 * that times out makes it tell the owner before the TTL runs out; a store
 * that refuses connections does not; stop revokes and silences it. */
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
#include "store/lease_keeper.h"
#include "store/memstore.h"
#include "test_store_sync.h"

#define KEY "/streamd/t/nodes/n1"
#define MAX_CALLS 16

typedef struct call {
    int64_t lease;
    int err;
    uint64_t at; /* uv_now() */
} call;

typedef struct fx {
    uv_loop_t loop;
    store *mem, *s; /* the keeper talks to s, which wraps mem */
    lease_keeper *k;
    call calls[MAX_CALLS];
    int ncalls;
    bool stopped; /* lease_keeper_stop was called: no callback may follow */
    store_watch *watch;
    uint64_t deleted_at; /* when KEY was deleted in mem (0 = not yet) */
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
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
    fx *f = *state;
    if (f->k) lease_keeper_stop(f->k);
    if (f->watch) store_watch_cancel(f->mem, f->watch);
    store_free(f->s);
    store_free(f->mem);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

#define L (&f->loop)

static uint64_t now_ms(uv_loop_t *loop) {
    uv_update_time(loop);
    return uv_now(loop);
}

static void on_change(void *arg, int64_t lease, int err) {
    fx *f = arg;
    if (f->stopped) fail_msg("lease keeper callback after stop (lease %lld, err %d)", (long long)lease, err);
    assert_true(f->ncalls < MAX_CALLS);
    f->calls[f->ncalls++] = (call){.lease = lease, .err = err, .at = now_ms(L)};
}

typedef bool (*pred)(fx *f, void *arg);

static void on_tick(uv_timer_t *t) { (void)t; }
static void on_closed(uv_handle_t *h) { (void)h; }

/* Runs the loop until p holds or ms pass; a 5 ms tick keeps each round short. */
static bool wait_for(fx *f, pred p, void *arg, uint64_t ms) {
    uv_timer_t tick;
    uv_timer_init(L, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uint64_t end = now_ms(L) + ms;
    bool ok;
    while (!(ok = p(f, arg)) && now_ms(L) < end) uv_run(L, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, on_closed);
    uv_run(L, UV_RUN_NOWAIT);
    return ok;
}

static bool never(fx *f, void *arg) {
    (void)f;
    (void)arg;
    return false;
}

static void run_for(fx *f, uint64_t ms) { wait_for(f, never, NULL, ms); }

static bool has_calls(fx *f, void *arg) { return f->ncalls >= *(int *)arg; }

static bool wait_calls(fx *f, int n, uint64_t ms) { return wait_for(f, has_calls, &n, ms); }

static bool count_above(fx *f, void *arg) {
    return faulty_store_count(f->s, FAULTY_OP_LEASE_KEEPALIVE) > *(unsigned long *)arg;
}

/* Waits until the keeper sends its next keepalive; returns when it did
 * (it reached the store before anything set after this). */
static uint64_t next_keepalive(fx *f) {
    unsigned long seen = faulty_store_count(f->s, FAULTY_OP_LEASE_KEEPALIVE);
    assert_true(wait_for(f, count_above, &seen, 3000));
    return now_ms(L);
}

static void on_key_event(void *arg, const store_event *ev) {
    fx *f = arg;
    if (ev->type == STORE_EVENT_DELETE && !f->deleted_at) f->deleted_at = now_ms(L);
}

static bool key_deleted(fx *f, void *arg) {
    (void)arg;
    return f->deleted_at != 0;
}

/* Starts the keeper, waits for its first lease and puts KEY under it
 * (straight into mem, so faults do not touch it); watches KEY's deletion. */
static int64_t start(fx *f, int ttl, int margin_ms) {
    f->k = lease_keeper_start(L, f->s, ttl, margin_ms, on_change, f);
    assert_non_null(f->k);
    assert_true(wait_calls(f, 1, 3000));
    assert_int_equal(f->calls[0].err, 0);
    int64_t lease = f->calls[0].lease;
    assert_true(lease > 0);
    assert_int_equal(lease_keeper_lease(f->k), lease);
    assert_int_equal(ts_put(L, f->mem, KEY, "{}", lease, NULL), 0);
    assert_int_equal(store_watch_prefix(f->mem, KEY, 0, on_key_event, f, &f->watch), 0);
    return lease;
}

static bool key_exists(fx *f) {
    char *v = ts_get(L, f->mem, KEY);
    free(v);
    return v != NULL;
}

static void stop(fx *f) {
    lease_keeper_stop(f->k);
    f->k = NULL;
    f->stopped = true;
}

/* A key under the lease outlives the TTL several times over; at rest the
 * keeper sends keepalives and nothing else. */
static void test_keeps_lease_alive(void **state) {
    fx *f = *state;
    int64_t lease = start(f, 1, 300);
    faulty_store_reset_counts(f->s);
    run_for(f, 3500);
    assert_true(key_exists(f));
    assert_int_equal(f->ncalls, 1);
    assert_int_equal(lease_keeper_lease(f->k), lease);
    unsigned long kept = faulty_store_count(f->s, FAULTY_OP_LEASE_KEEPALIVE);
    assert_true(kept >= 4);   /* about one every ttl/3 rounded up to the 250 ms tick */
    assert_true(kept <= 15);  /* not one per tick */
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_ALL), kept);
    assert_int_equal(f->deleted_at, 0);
}

/* Revoked by someone else: the next keepalive finds out, the owner is told
 * SD_ELEASE_LOST, and a new lease follows. */
static void test_revoked_behind_its_back(void **state) {
    fx *f = *state;
    int64_t lease = start(f, 2, 500);
    ts_wait_t w = {0};
    assert_int_equal(store_lease_revoke(f->mem, lease, ts_cb, &w), 0);
    assert_int_equal(ts_wait(L, &w)->err, 0);
    ts_result_clear(&w.r);
    uint64_t t0 = now_ms(L);
    assert_true(wait_calls(f, 2, 3000));
    assert_int_equal(f->calls[1].lease, lease);
    assert_int_equal(f->calls[1].err, SD_ELEASE_LOST);
    assert_true(f->calls[1].at - t0 <= 667 + 250 + 300); /* within one renewal period and a tick */
    assert_int_equal(lease_keeper_lease(f->k), 0);
    assert_true(wait_calls(f, 3, 3000));
    assert_int_equal(f->calls[2].err, 0);
    assert_true(f->calls[2].lease > 0);
    assert_true(f->calls[2].lease != lease);
    assert_true(f->calls[2].at - f->calls[1].at <= 500 + 250 + 300); /* the first retry's backoff */
    assert_int_equal(lease_keeper_lease(f->k), f->calls[2].lease);
    run_for(f, 1000);
    assert_int_equal(f->ncalls, 3);
}

/* A network cut: keepalives (and everything else) time out. The owner is
 * told at ttl - margin after the last renewal, while the store still holds
 * the lease; once the store answers again a new lease is granted. */
static void test_timeouts_tell_before_ttl(void **state) {
    fx *f = *state;
    const int ttl = 2, margin = 500;
    int64_t lease = start(f, ttl, margin);
    uint64_t renewed = next_keepalive(f); /* this one still reaches the store */
    faulty_store_delay(f->s, 200);
    faulty_store_fail(f->s, -ETIMEDOUT, FAULTY_ALWAYS);
    assert_true(wait_calls(f, 2, 4000));
    call *lost = &f->calls[1];
    assert_int_equal(lost->lease, lease);
    assert_int_equal(lost->err, -ETIMEDOUT);
    uint64_t after = lost->at - renewed;
    assert_true(after + 100 >= ttl * 1000 - margin); /* not before the deadline (as seen from here) */
    assert_true(after < ttl * 1000);                /* before the TTL */
    assert_int_equal(f->deleted_at, 0);             /* the store has not expired it yet */
    assert_int_equal(lease_keeper_lease(f->k), 0);
    assert_true(wait_for(f, key_deleted, NULL, 2000)); /* then it does (nobody renews it) */
    assert_true(f->deleted_at > lost->at);
    /* no grant while the cut lasts (the keeper tries); one soon after it heals */
    run_for(f, 1000);
    assert_true(faulty_store_count(f->s, FAULTY_OP_LEASE_GRANT) >= 1);
    assert_int_equal(f->ncalls, 2);
    faulty_store_heal(f->s);
    assert_true(wait_calls(f, 3, 6000)); /* the backoff is at most 5 s */
    assert_int_equal(f->calls[2].err, 0);
    assert_true(f->calls[2].lease > 0 && f->calls[2].lease != lease);
    assert_int_equal(lease_keeper_lease(f->k), f->calls[2].lease);
}

/* The store refuses connections (down for everyone) for less than the TTL
 * but past ttl - margin: the owner is not told, and the same lease goes on
 * once the store is back. */
static void test_refused_short_outage_keeps_lease(void **state) {
    fx *f = *state;
    const int ttl = 3, margin = 1000;
    int64_t lease = start(f, ttl, margin);
    uint64_t renewed = next_keepalive(f);
    faulty_store_fail(f->s, -ECONNREFUSED, FAULTY_ALWAYS);
    run_for(f, (uint64_t)ttl * 1000 - margin + 300 - (now_ms(L) - renewed));
    unsigned long refused = faulty_store_count(f->s, FAULTY_OP_LEASE_KEEPALIVE);
    faulty_store_heal(f->s);
    assert_int_equal(f->ncalls, 1); /* past the deadline, not told */
    assert_int_equal(lease_keeper_lease(f->k), lease);
    run_for(f, 2 * (uint64_t)ttl * 1000); /* past the old TTL twice over */
    assert_true(faulty_store_count(f->s, FAULTY_OP_LEASE_KEEPALIVE) > refused);
    assert_int_equal(f->ncalls, 1);
    assert_int_equal(lease_keeper_lease(f->k), lease);
    assert_int_equal(f->deleted_at, 0);
    assert_true(key_exists(f));
}

/* Refused for longer than the TTL: still not told while it lasts. etcd
 * expires no lease while it is down and restores them when it is back;
 * memstore cannot be down, so here the lease really expired meanwhile, and
 * when the store answers again it says so: the owner is told exactly once
 * (SD_ELEASE_LOST) and gets a new lease. */
static void test_refused_long_outage(void **state) {
    fx *f = *state;
    const int ttl = 2, margin = 500;
    int64_t lease = start(f, ttl, margin);
    next_keepalive(f);
    faulty_store_fail(f->s, -ECONNREFUSED, FAULTY_ALWAYS);
    assert_true(wait_for(f, key_deleted, NULL, 4000)); /* memstore expired it at the TTL */
    run_for(f, 1000);
    assert_int_equal(f->ncalls, 1);
    assert_int_equal(lease_keeper_lease(f->k), lease);
    assert_true(faulty_store_count(f->s, FAULTY_OP_LEASE_KEEPALIVE) >= 4); /* it kept trying */
    faulty_store_heal(f->s);
    uint64_t healed = now_ms(L);
    assert_true(wait_calls(f, 3, 4000));
    assert_int_equal(f->calls[1].lease, lease);
    assert_int_equal(f->calls[1].err, SD_ELEASE_LOST);
    assert_true(f->calls[1].at - healed <= 250 + 300); /* the first keepalive after */
    assert_int_equal(f->calls[2].err, 0);
    assert_true(f->calls[2].lease != lease);
    run_for(f, 1500);
    assert_int_equal(f->ncalls, 3);
    assert_int_equal(lease_keeper_lease(f->k), f->calls[2].lease);
}

/* One refused keepalive, then the store stops answering (a cut right after
 * a restart, or a failover to an unreachable endpoint). The refusal proves
 * the store was down when it was sent, so no lease could expire before
 * then + TTL (a store that comes back restores every lease in full); the
 * silence that follows must still make the keeper tell its owner within
 * that TTL, at its margin. (memstore itself never goes down, so its own
 * expiry is not what this test checks.) */
static void test_refusal_then_silence(void **state) {
    fx *f = *state;
    const int ttl = 2, margin = 500;
    int64_t lease = start(f, ttl, margin);
    next_keepalive(f);
    faulty_store_fail_ops(f->s, FAULTY_OP_LEASE_KEEPALIVE, FAULTY_BEFORE, -ECONNREFUSED, 1);
    uint64_t refused = next_keepalive(f); /* refused at once */
    faulty_store_delay(f->s, 3000);
    faulty_store_fail(f->s, -ETIMEDOUT, FAULTY_ALWAYS);
    assert_true(wait_calls(f, 2, 6000));
    assert_int_equal(f->calls[1].lease, lease);
    uint64_t after = f->calls[1].at - refused;
    assert_true(after + 300 >= ttl * 1000 - margin); /* the refusal counted as a renewal */
    assert_true(after < ttl * 1000);                 /* and the silence was not forgiven */
}

/* stop revokes the lease (its key goes), and no callback runs after it,
 * not even for the keepalive in flight. */
static void test_stop_revokes(void **state) {
    fx *f = *state;
    start(f, 2, 500);
    faulty_store_delay(f->s, 300);
    next_keepalive(f); /* its answer is held back */
    stop(f);
    assert_true(wait_for(f, key_deleted, NULL, 1000)); /* well before the TTL: revoked, not expired */
    assert_false(key_exists(f));
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_LEASE_REVOKE), 1);
    run_for(f, 1000);
    assert_int_equal(f->ncalls, 1);
}

/* Stopped while its grant is in flight: never called. */
static void test_stop_during_grant(void **state) {
    fx *f = *state;
    faulty_store_delay(f->s, 300);
    f->k = lease_keeper_start(L, f->s, 2, 500, on_change, f);
    assert_non_null(f->k);
    for (int i = 0; i < 100 && faulty_store_count(f->s, FAULTY_OP_LEASE_GRANT) == 0; i++)
        uv_run(L, UV_RUN_ONCE); /* the keeper's first tick is due at once */
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_LEASE_GRANT), 1);
    stop(f);
    run_for(f, 800);
    assert_int_equal(f->ncalls, 0);
    assert_int_equal(faulty_store_count(f->s, FAULTY_OP_LEASE_REVOKE), 0); /* it had no lease to revoke */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keeps_lease_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_behind_its_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts_tell_before_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_short_outage_keeps_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_long_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusal_then_silence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_revokes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_during_grant, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
