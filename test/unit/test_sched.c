/* sched: tasks on a pool of threads: fair turns, priority tasks (acks) not
 * starved by data, timers, no lost notify, an idle pool asleep, no wake-up
 * for a thread's own requeued task, held wake-ups sent on release. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "runtime/sched.h"

enum { DATA, ACK, IDLER, TIMED, COUNTER };

typedef struct ttask {
    sched_task st; /* first: the run callback casts back */
    int kind;
    atomic_ulong runs;     /* polled by the test's thread while a pool thread runs the task */
    int64_t run_at[4];
    atomic_long pending;   /* COUNTER: work handed over */
    atomic_long consumed;
    struct ttask *ack;     /* DATA: notifies it every slice */
    uint64_t notified_at;  /* ACK: global slice count when last notified (0: not) */
} ttask;

typedef struct world {
    sched *s;
    atomic_bool stop;
    atomic_ulong slices;   /* every slice of every task */
    uint64_t limit;        /* DATA tasks end after this many slices in all */
    uint64_t max_ack_gap;  /* most slices between a notify and the ACK task's run */
} world;

static int run(void *arg, sched_task *t, void *data, int64_t *wake_at) {
    world *w = arg;
    ttask *k = (ttask *)t;
    (void)data;
    uint64_t n = atomic_fetch_add(&w->slices, 1) + 1;
    unsigned long r = atomic_load(&k->runs); /* one thread at a time runs a task */
    if (r < 4) k->run_at[r] = sched_now_ns();
    atomic_store(&k->runs, r + 1); /* after run_at: who sees the count sees the times */
    if (atomic_load(&w->stop)) return SCHED_DONE;
    switch (k->kind) {
    case DATA:
        if (w->limit && n >= w->limit) return SCHED_DONE;
        if (k->ack) {
            if (k->ack->notified_at == 0) k->ack->notified_at = n;
            sched_notify(w->s, &k->ack->st);
        }
        return SCHED_MORE;
    case ACK:
        if (k->notified_at) {
            uint64_t gap = n - k->notified_at;
            if (gap > w->max_ack_gap) w->max_ack_gap = gap;
            k->notified_at = 0;
        }
        return SCHED_WAIT;
    case TIMED:
        if (k->runs == 1) *wake_at = sched_now_ns() + 20000000; /* once, 20 ms on */
        return SCHED_WAIT;
    case COUNTER:
        atomic_fetch_add(&k->consumed, atomic_exchange(&k->pending, 0));
        return SCHED_WAIT;
    default:
        return SCHED_WAIT;
    }
}

static sched *make(world *w, int threads) {
    sched_ops ops = {.run = run, .arg = w};
    w->s = sched_new(threads, &ops, "test");
    assert_non_null(w->s);
    return w->s;
}

/* polls cond for up to 5 s */
#define WAIT_FOR(cond)                                                   \
    do {                                                                 \
        int64_t until_ = sched_now_ns() + 5000000000LL;                  \
        while (!(cond) && sched_now_ns() < until_) usleep(1000);         \
        assert_true(cond);                                               \
    } while (0)

static void finish(world *w) {
    atomic_store(&w->stop, true);
    sched_notify_all(w->s);
    WAIT_FOR(sched_live(w->s) == 0);
    sched_stop(w->s);
    sched_free(w->s);
}

static void test_fair_turns(void **state) {
    (void)state;
    world w = {.limit = 4000};
    make(&w, 1);
    ttask t[4] = {0};
    for (int i = 0; i < 4; i++) {
        t[i].kind = DATA;
        assert_int_equal(sched_add(w.s, &t[i].st, 0), 0);
    }
    assert_int_equal(sched_start(w.s), 0);
    WAIT_FOR(sched_live(w.s) == 0);
    /* one thread, four busy tasks: each had a quarter of the slices */
    for (int i = 0; i < 4; i++) {
        assert_true(t[i].runs >= 999);
        assert_true(t[i].runs <= 1001);
    }
    finish(&w);
}

static void test_ack_not_starved(void **state) {
    (void)state;
    world w = {.limit = 20000};
    make(&w, 1);
    ttask data[8] = {0}, ack = {.kind = ACK};
    for (int i = 0; i < 8; i++) {
        data[i].kind = DATA;
        data[i].ack = i == 3 ? &ack : NULL; /* one producer of acks among eight busy tasks */
        assert_int_equal(sched_add(w.s, &data[i].st, 0), 0);
    }
    assert_int_equal(sched_add(w.s, &ack.st, 1), 0);
    assert_int_equal(sched_start(w.s), 0);
    WAIT_FOR(atomic_load(&w.slices) >= 20000);
    finish(&w);
    /* the priority task runs in the very next slice after each notify,
     * not after the seven other busy tasks had their turn */
    assert_true(ack.runs >= 2000);
    assert_true(w.max_ack_gap <= 1);
}

static double cpu_secs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_idle_pool_sleeps(void **state) {
    (void)state;
    world w = {0};
    make(&w, 2);
    ttask t[3] = {{.kind = IDLER}, {.kind = IDLER}, {.kind = IDLER}};
    for (int i = 0; i < 3; i++) assert_int_equal(sched_add(w.s, &t[i].st, 0), 0);
    assert_int_equal(sched_start(w.s), 0);
    sched_stats st;
    WAIT_FOR((sched_get_stats(w.s, &st), st.parked == 2));
    uint64_t slices = st.slices, parks = st.parks;
    double cpu = cpu_secs();
    usleep(300000);
    double used = cpu_secs() - cpu;
    sched_get_stats(w.s, &st);
    assert_int_equal(st.slices, slices); /* nobody ran */
    /* a parked thread wakes at most every 100 ms to look at its timers, so
     * in 300 ms each parked a few times at most, instead of spinning */
    assert_true(st.parks - parks <= 2 * 5);
    assert_true(used < 0.03);            /* under 10 % of one CPU, asleep */
    WAIT_FOR((sched_get_stats(w.s, &st), st.parked == 2));
    /* a notify wakes a sleeping thread, which runs the task */
    sched_notify(w.s, &t[1].st);
    WAIT_FOR(t[1].runs == 2);
    finish(&w);
}

static void test_timer(void **state) {
    (void)state;
    world w = {0};
    make(&w, 1);
    ttask t = {.kind = TIMED};
    assert_int_equal(sched_add(w.s, &t.st, 0), 0);
    assert_int_equal(sched_start(w.s), 0);
    WAIT_FOR(t.runs >= 2);
    int64_t gap = t.run_at[1] - t.run_at[0];
    assert_true(gap >= 20000000);
    assert_true(gap < 1000000000);
    usleep(50000);
    assert_int_equal(t.runs, 2); /* the timer fired once */
    finish(&w);
}

typedef struct producer_arg {
    world *w;
    ttask *t;
    long n;
} producer_arg;

static void *producer(void *arg) {
    producer_arg *p = arg;
    for (long i = 0; i < p->n; i++) {
        atomic_fetch_add(&p->t->pending, 1);
        sched_notify(p->w->s, &p->t->st);
    }
    return NULL;
}

static void test_no_lost_notify(void **state) {
    (void)state;
    world w = {0};
    make(&w, 2);
    ttask t = {.kind = COUNTER};
    assert_int_equal(sched_add(w.s, &t.st, 0), 0);
    assert_int_equal(sched_start(w.s), 0);
    producer_arg p[2] = {{&w, &t, 200000}, {&w, &t, 200000}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, producer, &p[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    /* every notify that raced with a running slice still got its run */
    WAIT_FOR(atomic_load(&t.consumed) == 400000);
    finish(&w);
    assert_int_equal(atomic_load(&t.pending), 0);
}

/* a busy task requeued by the thread that ran it goes on with that thread:
 * the other one, parked, is never signalled for it (it would only find the
 * queue empty again) */
static void test_requeue_wakes_nobody(void **state) {
    (void)state;
    world w = {.limit = 20000};
    make(&w, 2);
    ttask t = {.kind = DATA};
    assert_int_equal(sched_add(w.s, &t.st, 0), 0);
    assert_int_equal(sched_start(w.s), 0);
    WAIT_FOR(sched_live(w.s) == 0);
    sched_stats st;
    sched_get_stats(w.s, &st);
    assert_true(st.slices >= 20000);
    assert_int_equal(st.wakeups, 0);
    finish(&w);
}

/* notifies made while holding wake nobody; the release wakes the parked
 * threads, which run the tasks */
static void test_held_wakeups_sent_on_release(void **state) {
    (void)state;
    world w = {0};
    make(&w, 2);
    ttask t[2] = {{.kind = IDLER}, {.kind = IDLER}};
    for (int i = 0; i < 2; i++) assert_int_equal(sched_add(w.s, &t[i].st, 0), 0);
    assert_int_equal(sched_start(w.s), 0);
    sched_stats st;
    WAIT_FOR((sched_get_stats(w.s, &st), st.parked == 2));
    WAIT_FOR(t[0].runs == 1 && t[1].runs == 1);
    uint64_t before = st.wakeups;
    sched_hold_wakeups(w.s, true);
    for (int i = 0; i < 2; i++) sched_notify(w.s, &t[i].st);
    sched_get_stats(w.s, &st);
    assert_int_equal(st.wakeups, before); /* held */
    sched_hold_wakeups(w.s, false);
    WAIT_FOR(t[0].runs == 2 && t[1].runs == 2);
    sched_get_stats(w.s, &st);
    /* the held signals went out at the release */
    assert_true(st.wakeups > before);
    finish(&w);
}

static void test_default_threads(void **state) {
    (void)state;
    int n = sched_default_threads(1);
    assert_true(n >= 1);
    assert_true(n <= sysconf(_SC_NPROCESSORS_CONF));
    /* workers beside it on the same CPUs take their shares; the cgroup
     * quota, if any, still caps what is left */
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    int cpus = CPU_COUNT(&set);
    for (int sharing = 2; sharing <= 5; sharing++) {
        int share = cpus / sharing > 0 ? cpus / sharing : 1;
        assert_int_equal(sched_default_threads(sharing), share < n ? share : n);
    }
    assert_int_equal(sched_default_threads(100000), 1);
    assert_int_equal(sched_default_threads(0), n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fair_turns),
        cmocka_unit_test(test_ack_not_starved),
        cmocka_unit_test(test_idle_pool_sleeps),
        cmocka_unit_test(test_timer),
        cmocka_unit_test(test_no_lost_notify),
        cmocka_unit_test(test_requeue_wakes_nobody),
        cmocka_unit_test(test_held_wakeups_sent_on_release),
        cmocka_unit_test(test_default_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
