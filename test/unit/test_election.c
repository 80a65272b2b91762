/* election on the in-memory store: one of two masters leads; when its lease
 * goes the other takes over; a deposed leader's guarded write fails; losing
 * the lease steps down at once; a deleted leader key is won again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "master/election.h"
#include "store/faulty_store.h"
#include "store/memstore.h"

#define WAIT_MS 3000

typedef struct cand {
    election *e;
    int wins, losses; /* callbacks seen */
    bool leader;      /* as told by the callback */
} cand;

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps the loop turning while a test polls */
    store *s;
    cand a, b;
} fixture;

static void on_change(void *arg, bool leader) {
    cand *c = arg;
    assert_true(leader != c->leader); /* told only of changes */
    c->leader = leader;
    if (leader) c->wins++;
    else c->losses++;
}

static void on_tick(uv_timer_t *t) { (void)t; }

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->s = memstore_new(&f->loop);
    assert_non_null(f->s);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    election_options oa = {.cluster = "t", .id = "a", .host = "ha", .api = "http://ha:1", .retry_ms = 50};
    election_options ob = {.cluster = "t", .id = "b", .host = "hb", .api = "http://hb:2", .retry_ms = 50};
    f->a.e = election_new(&f->loop, f->s, &oa, on_change, &f->a);
    f->b.e = election_new(&f->loop, f->s, &ob, on_change, &f->b);
    assert_non_null(f->a.e);
    assert_non_null(f->b.e);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    election_free(f->a.e);
    election_free(f->b.e);
    store_free(f->s);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* Turns the loop until *flag is true, at most WAIT_MS. */
static bool run_until(fixture *f, const bool *flag) {
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (!*flag && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    return *flag;
}

/* ---- store requests (each waits for its answer) ----------------------------------- */

typedef struct answer {
    bool done;
    store_result r;
    char value[256];
} answer;

static void on_answer(void *arg, const store_result *r) {
    answer *a = arg;
    a->r = *r;
    a->r.kvs = NULL;
    a->value[0] = '\0';
    if (r->nkvs > 0 && r->kvs[0].value) snprintf(a->value, sizeof a->value, "%.*s", (int)r->kvs[0].value_len, r->kvs[0].value);
    a->done = true;
}

static int64_t grant(fixture *f) {
    answer a = {0};
    assert_int_equal(store_lease_grant(f->s, 30, on_answer, &a), 0);
    assert_true(run_until(f, &a.done));
    assert_int_equal(a.r.err, 0);
    assert_true(a.r.lease > 0);
    return a.r.lease;
}

static void revoke_lease(fixture *f, int64_t lease) {
    answer a = {0};
    assert_int_equal(store_lease_revoke(f->s, lease, on_answer, &a), 0);
    assert_true(run_until(f, &a.done));
    assert_int_equal(a.r.err, 0);
}

/* A guarded put as the leader makes it; returns whether the txn succeeded. */
static bool guarded_put(fixture *f, const store_cmp *guard, const char *value) {
    answer a = {0};
    store_op put = {.type = STORE_OP_PUT, .key = "/streamd/t/topologies/x", .value = value};
    store_txn t = {.cmps = guard, .ncmps = 1, .then = &put, .nthen = 1};
    assert_int_equal(store_commit(f->s, &t, on_answer, &a), 0);
    assert_true(run_until(f, &a.done));
    assert_int_equal(a.r.err, 0);
    return a.r.succeeded;
}

static void get_leader_key(fixture *f, answer *a) {
    memset(a, 0, sizeof *a);
    assert_int_equal(store_get(f->s, "/streamd/t/master/leader", on_answer, a), 0);
    assert_true(run_until(f, &a->done));
    assert_int_equal(a->r.err, 0);
}

static bool knows_leader(const election *e, const char *id) {
    const json_t *l = election_leader(e);
    const char *got = l ? json_string_value(json_object_get(l, "id")) : NULL;
    return got && strcmp(got, id) == 0;
}

/* turns the loop until e knows id leads */
static void wait_known(fixture *f, const election *e, const char *id) {
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (!knows_leader(e, id) && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(knows_leader(e, id));
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_one_leads_then_the_other(void **state) {
    fixture *f = *state;
    int64_t la = grant(f), lb = grant(f);
    election_set_lease(f->a.e, la);
    assert_true(run_until(f, &f->a.leader));
    election_set_lease(f->b.e, lb);
    wait_known(f, f->b.e, "a");
    assert_false(f->b.leader);
    assert_false(election_is_leader(f->b.e));
    assert_string_equal(election_leader_api(f->b.e), "http://ha:1");
    assert_int_equal(f->a.wins, 1);

    /* the key holds the leader record, on the leader's lease */
    answer k;
    get_leader_key(f, &k);
    assert_int_equal(k.r.nkvs, 1);
    json_t *rec = json_loads(k.value, 0, NULL);
    assert_non_null(rec);
    assert_string_equal(json_string_value(json_object_get(rec, "id")), "a");
    assert_string_equal(json_string_value(json_object_get(rec, "host")), "ha");
    assert_string_equal(json_string_value(json_object_get(rec, "api")), "http://ha:1");
    assert_true(json_is_integer(json_object_get(rec, "since")));
    json_decref(rec);

    store_cmp guard_a, guard_b;
    assert_int_equal(election_guard(f->a.e, &guard_a), 0);
    assert_int_equal(election_guard(f->b.e, &guard_b), -EPERM);
    assert_true(election_guard_rev(f->a.e) > 0);
    assert_true(guarded_put(f, &guard_a, "{\"by\":\"a\"}"));
    int64_t old_rev = guard_a.rev;

    /* a's lease goes: b takes over; a is told it lost */
    revoke_lease(f, la);
    assert_true(run_until(f, &f->b.leader));
    bool a_lost = false;
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (!(a_lost = f->a.losses == 1) && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(a_lost);
    assert_false(election_is_leader(f->a.e));
    wait_known(f, f->a.e, "b");

    /* the deposed leader's guarded write fails; the new one's succeeds */
    guard_a.rev = old_rev;
    assert_false(guarded_put(f, &guard_a, "{\"by\":\"a\"}"));
    assert_int_equal(election_guard(f->a.e, &guard_a), -EPERM);
    assert_int_equal(election_guard(f->b.e, &guard_b), 0);
    assert_true(guard_b.rev > old_rev);
    assert_true(guarded_put(f, &guard_b, "{\"by\":\"b\"}"));
}

static void test_lease_loss_steps_down_at_once(void **state) {
    fixture *f = *state;
    int64_t la = grant(f), lb = grant(f);
    election_set_lease(f->a.e, la);
    assert_true(run_until(f, &f->a.leader));
    election_set_lease(f->b.e, lb);
    wait_known(f, f->b.e, "a");

    store_cmp g;
    election_set_lease(f->a.e, 0); /* the keeper says the lease may be gone */
    assert_false(election_is_leader(f->a.e));
    assert_int_equal(election_guard(f->a.e, &g), -EPERM);
    bool told = false;
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (!(told = !f->a.leader) && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(told);
    /* the key lives until the lease really ends; then b leads */
    assert_false(f->b.leader);
    revoke_lease(f, la);
    assert_true(run_until(f, &f->b.leader));
    /* a new lease for a: it follows b and does not lead */
    election_set_lease(f->a.e, grant(f));
    wait_known(f, f->a.e, "b");
    for (int i = 0; i < 20; i++) uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(f->a.leader);
    assert_true(f->b.leader);
}

static void test_deleted_key_is_won_again(void **state) {
    fixture *f = *state;
    election_set_lease(f->a.e, grant(f));
    assert_true(run_until(f, &f->a.leader));
    int64_t first = election_guard_rev(f->a.e);
    answer a = {0};
    assert_int_equal(store_del(f->s, "/streamd/t/master/leader", false, on_answer, &a), 0);
    assert_true(run_until(f, &a.done));
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (f->a.wins < 2 && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->a.wins, 2);
    assert_int_equal(f->a.losses, 1); /* told of the loss before the new term */
    assert_true(election_guard_rev(f->a.e) > first);
}

static void test_follower_without_lease(void **state) {
    fixture *f = *state;
    assert_null(election_leader(f->b.e));
    election_set_lease(f->a.e, grant(f));
    assert_true(run_until(f, &f->a.leader));
    wait_known(f, f->b.e, "a"); /* b never had a lease: it only follows */
    assert_false(election_is_leader(f->b.e));
    assert_int_equal(f->b.wins, 0);
}

/* ---- with faults ------------------------------------------------------------------ */

typedef struct faulty {
    store *fs;
    cand c;
} faulty;

static void faulty_start(fixture *f, faulty *x, const char *id) {
    x->fs = faulty_store_new(&f->loop, f->s);
    assert_non_null(x->fs);
    election_options o = {.cluster = "t", .id = id, .host = "hc", .api = "http://hc:3", .retry_ms = 50};
    x->c.e = election_new(&f->loop, x->fs, &o, on_change, &x->c);
    assert_non_null(x->c.e);
}

static void faulty_stop(faulty *x) {
    election_free(x->c.e);
    store_free(x->fs); /* the fixture's teardown turns the loop */
}

/* The campaign's txn went through but its answer was lost: the election
 * finds its own key on its own lease and leads. */
static void test_lost_answer_still_leads(void **state) {
    fixture *f = *state;
    faulty x = {0};
    faulty_start(f, &x, "c");
    faulty_store_fail_ops(x.fs, FAULTY_OP_TXN, FAULTY_AFTER, -ETIMEDOUT, 1);
    election_set_lease(x.c.e, grant(f));
    assert_true(run_until(f, &x.c.leader));
    answer k;
    get_leader_key(f, &k);
    assert_int_equal(k.r.nkvs, 1);
    assert_non_null(strstr(k.value, "\"id\":\"c\""));
    store_cmp g;
    assert_int_equal(election_guard(x.c.e, &g), 0);
    assert_true(guarded_put(f, &g, "{}"));
    assert_int_equal(x.c.wins, 1);
    faulty_stop(&x);
}

/* A store that refuses connections: no leader; once it is back, one. */
static void test_store_down_then_back(void **state) {
    fixture *f = *state;
    faulty x = {0};
    faulty_start(f, &x, "c");
    int64_t lease = grant(f);
    faulty_store_fail(x.fs, -ECONNREFUSED, FAULTY_ALWAYS);
    election_set_lease(x.c.e, lease);
    uint64_t end = uv_now(&f->loop) + 300;
    while (uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(x.c.leader);
    assert_true(faulty_store_count(x.fs, FAULTY_OP_TXN | FAULTY_OP_GET) >= 2); /* it kept trying */
    faulty_store_heal(x.fs);
    assert_true(run_until(f, &x.c.leader));
    faulty_stop(&x);
}

/* A follower whose watch ends with RESYNC reads the key again and keeps
 * following: it takes over when the leader goes. */
static void test_follower_resync(void **state) {
    fixture *f = *state;
    faulty x = {0};
    faulty_start(f, &x, "c");
    int64_t la = grant(f);
    election_set_lease(f->a.e, la);
    assert_true(run_until(f, &f->a.leader));
    election_set_lease(x.c.e, grant(f));
    wait_known(f, x.c.e, "a");
    unsigned long gets = faulty_store_count(x.fs, FAULTY_OP_GET);
    faulty_store_lose_watches(x.fs);
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (faulty_store_count(x.fs, FAULTY_OP_GET) == gets && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(faulty_store_count(x.fs, FAULTY_OP_GET) > gets); /* read again */
    wait_known(f, x.c.e, "a");
    assert_false(x.c.leader);
    revoke_lease(f, la);
    assert_true(run_until(f, &x.c.leader));
    faulty_stop(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_leads_then_the_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_loss_steps_down_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_key_is_won_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follower_without_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_answer_still_leads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_down_then_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follower_resync, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
