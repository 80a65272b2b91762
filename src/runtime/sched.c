/* sched: see sched.h. Two FIFO run queues (priority, normal) and a binary
 * min-heap of timers, all under one mutex taken about twice a slice; the
 * state word of each task makes notify lock-free unless the task was idle. */
#include "runtime/sched.h"
#include "base/cpu.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* task states */
enum {
    SCHED_S_IDLE = 0,     /* waiting for a notify or its timer */
    SCHED_S_QUEUED,       /* in a run queue */
    SCHED_S_RUNNING,      /* a thread runs a slice */
    SCHED_S_NOTIFIED,     /* running, and input came meanwhile: requeue */
    SCHED_S_DONE,
};

/* pause-loop iterations an idle thread looks for work before it parks, at
 * most (tens of microseconds: a busy producer hands over the next batch
 * sooner). Each thread halves its own budget after a spin that found
 * nothing, down to SCHED_SPINS_MIN, and restores it after one that found
 * work: where work comes slower than a spin lasts, a spinning thread only
 * holds a core that the thread about to hand it work (a worker's loop,
 * another worker) is waiting for; with two workers on two cores that wait
 * was most of the latency across workers. */
#define SCHED_SPINS 2000
#define SCHED_SPINS_MIN 32
/* an idle thread wakes at least this often (a lost signal costs no more) */
#define SCHED_MAX_PARK_NS 100000000LL

typedef struct run_queue {
    sched_task *head, *tail;
} run_queue;

typedef struct pool_thread {
    sched *s;
    int index;
    int spins;                    /* its spin budget (SCHED_SPINS_MIN .. SCHED_SPINS) */
    pthread_t tid;
    bool started;
} pool_thread;

struct sched {
    sched_ops ops;
    char name[11];
    int nthreads;
    pool_thread *threads;
    pthread_mutex_t lock;
    pthread_cond_t work;
    run_queue rq[2];              /* [0] priority, [1] the others */
    atomic_int nqueued;           /* tasks in the run queues (spinning threads read it) */
    sched_task **heap;            /* timers, earliest first */
    int nheap, heap_cap;
    sched_task **all;             /* every task added (notify_all) */
    int nall, all_cap;
    int live;                     /* tasks not done */
    int parked;
    int held_signals;             /* signals a holding thread deferred (sched_hold_wakeups) */
    bool stop;
    uint64_t slices, parks, wakeups;
};

int64_t sched_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- timer heap (lock held) ---------------------------------------------------- */

static void heap_set(sched *s, int i, sched_task *t) {
    s->heap[i] = t;
    t->heap_idx = i;
}

static void heap_up(sched *s, int i) {
    sched_task *t = s->heap[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (s->heap[p]->wake_at <= t->wake_at) break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, t);
}

static void heap_down(sched *s, int i) {
    sched_task *t = s->heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= s->nheap) break;
        if (c + 1 < s->nheap && s->heap[c + 1]->wake_at < s->heap[c]->wake_at) c++;
        if (s->heap[c]->wake_at >= t->wake_at) break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, t);
}

static void heap_remove(sched *s, sched_task *t) {
    int i = t->heap_idx;
    if (i < 0) return;
    t->heap_idx = -1;
    sched_task *last = s->heap[--s->nheap];
    if (i == s->nheap) return;
    heap_set(s, i, last);
    heap_down(s, i);
    heap_up(s, last->heap_idx);
}

/* room is made when the task is added: a task is in the heap at most once */
static void heap_put(sched *s, sched_task *t, int64_t at) {
    t->wake_at = at;
    if (t->heap_idx >= 0) {
        heap_down(s, t->heap_idx);
        heap_up(s, t->heap_idx);
        return;
    }
    s->heap[s->nheap] = t;
    t->heap_idx = s->nheap++;
    heap_up(s, t->heap_idx);
}

/* ---- run queues (lock held) ------------------------------------------------------ */

/* the scheduler whose wake-up signals this thread holds back, or NULL */
static _Thread_local sched *holding;

/* mine: the pushing pool thread looks for work right after (a task it
 * requeues after its slice), so a parked thread is woken only for what
 * that thread will leave behind: waking one to find the queue empty again
 * cost a futex wake and a context switch per slice */
static void rq_push(sched *s, sched_task *t, bool mine) {
    run_queue *q = &s->rq[t->prio ? 0 : 1];
    t->next = NULL;
    if (q->tail) q->tail->next = t;
    else q->head = t;
    q->tail = t;
    int queued = atomic_fetch_add_explicit(&s->nqueued, 1, memory_order_release) + 1;
    if (s->parked > 0 && queued > (mine ? 1 : 0)) {
        if (holding == s) {
            s->held_signals++;
            return;
        }
        s->wakeups++;
        pthread_cond_signal(&s->work);
    }
}

static sched_task *rq_pop(sched *s) {
    for (int i = 0; i < 2; i++) {
        run_queue *q = &s->rq[i];
        sched_task *t = q->head;
        if (!t) continue;
        q->head = t->next;
        if (!q->head) q->tail = NULL;
        atomic_fetch_sub_explicit(&s->nqueued, 1, memory_order_relaxed);
        return t;
    }
    return NULL;
}

/* moves tasks whose timer is due to the run queue; the earliest left */
static int64_t fire_timers(sched *s, int64_t now) {
    while (s->nheap > 0 && s->heap[0]->wake_at <= now) {
        sched_task *t = s->heap[0];
        heap_remove(s, t);
        int idle = SCHED_S_IDLE;
        if (atomic_compare_exchange_strong(&t->state, &idle, SCHED_S_QUEUED)) rq_push(s, t, false);
    }
    return s->nheap > 0 ? s->heap[0]->wake_at : SCHED_NEVER;
}

/* ---- threads ----------------------------------------------------------------------- */

static void deadline_at(struct timespec *ts, int64_t at_ns) {
    ts->tv_sec = at_ns / 1000000000;
    ts->tv_nsec = at_ns % 1000000000;
}

/* lock held on entry and exit; NULL when the pool stops */
static sched_task *next_task(sched *s, pool_thread *pt) {
    for (;;) {
        if (s->stop) return NULL;
        int64_t now = sched_now_ns();
        int64_t next_timer = fire_timers(s, now);
        sched_task *t = rq_pop(s);
        if (t) return t;
        /* nothing to run: look again for a little while without the lock */
        pthread_mutex_unlock(&s->lock);
        bool seen = false;
        for (int i = 0; i < pt->spins && !seen; i++) {
            cpu_relax();
            seen = atomic_load_explicit(&s->nqueued, memory_order_acquire) > 0;
        }
        if (seen) pt->spins = SCHED_SPINS;
        else if (pt->spins / 2 >= SCHED_SPINS_MIN) pt->spins /= 2;
        pthread_mutex_lock(&s->lock);
        if (seen || s->nqueued > 0 || s->stop) continue;
        now = sched_now_ns();
        if (next_timer <= now) continue;
        int64_t until = now + SCHED_MAX_PARK_NS;
        if (next_timer < until) until = next_timer;
        struct timespec ts;
        deadline_at(&ts, until);
        s->parked++;
        s->parks++;
        pthread_cond_timedwait(&s->work, &s->lock, &ts);
        s->parked--;
    }
}

static void *pool_thread_main(void *arg) {
    pool_thread *pt = arg;
    sched *s = pt->s;
    char name[16];
    snprintf(name, sizeof name, "%s-%d", s->name, pt->index);
    pthread_setname_np(pthread_self(), name);
    void *data = s->ops.thread_start ? s->ops.thread_start(s->ops.arg, pt->index) : NULL;
    pthread_mutex_lock(&s->lock);
    sched_task *t;
    pt->spins = SCHED_SPINS;
    while ((t = next_task(s, pt)) != NULL) {
        atomic_store(&t->state, SCHED_S_RUNNING);
        s->slices++;
        pthread_mutex_unlock(&s->lock);
        int64_t wake_at = SCHED_NEVER;
        t->slices++;
        int rc = s->ops.run(s->ops.arg, t, data, &wake_at);
        pthread_mutex_lock(&s->lock);
        if (rc == SCHED_DONE) {
            atomic_store(&t->state, SCHED_S_DONE);
            s->live--;
        } else if (rc == SCHED_MORE) {
            atomic_store(&t->state, SCHED_S_QUEUED);
            rq_push(s, t, true);
        } else {
            int running = SCHED_S_RUNNING;
            if (atomic_compare_exchange_strong(&t->state, &running, SCHED_S_IDLE)) {
                if (wake_at != SCHED_NEVER) heap_put(s, t, wake_at);
                else heap_remove(s, t);
            } else { /* notified while it ran */
                atomic_store(&t->state, SCHED_S_QUEUED);
                rq_push(s, t, true);
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (s->ops.thread_stop) s->ops.thread_stop(s->ops.arg, data);
    return NULL;
}

/* ---- API ------------------------------------------------------------------------------ */

sched *sched_new(int nthreads, const sched_ops *ops, const char *name) {
    if (nthreads < 1 || !ops || !ops->run) return NULL;
    sched *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ops = *ops;
    snprintf(s->name, sizeof s->name, "%s", name ? name : "sched");
    s->nthreads = nthreads;
    s->threads = calloc((size_t)nthreads, sizeof *s->threads);
    if (!s->threads) {
        free(s);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

static int grow(void *arrp, int *cap, int need) {
    void **arr = arrp;
    if (need <= *cap) return 0;
    int c = *cap ? *cap * 2 : 64;
    while (c < need) c *= 2;
    void *g = realloc(*arr, (size_t)c * sizeof(sched_task *));
    if (!g) return -ENOMEM;
    *arr = g;
    *cap = c;
    return 0;
}

int sched_add(sched *s, sched_task *t, int prio) {
    t->prio = prio;
    t->heap_idx = -1;
    t->wake_at = SCHED_NEVER;
    pthread_mutex_lock(&s->lock);
    /* the heap and the list have room for every task: timers never allocate */
    if (grow(&s->heap, &s->heap_cap, s->nall + 1) != 0 || grow(&s->all, &s->all_cap, s->nall + 1) != 0) {
        pthread_mutex_unlock(&s->lock);
        return -ENOMEM;
    }
    s->all[s->nall++] = t;
    s->live++;
    atomic_store(&t->state, SCHED_S_QUEUED);
    rq_push(s, t, false);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int sched_start(sched *s) {
    for (int i = 0; i < s->nthreads; i++) {
        pool_thread *pt = &s->threads[i];
        pt->s = s;
        pt->index = i;
        int rc = pthread_create(&pt->tid, NULL, pool_thread_main, pt);
        if (rc != 0) {
            sched_stop(s);
            return -rc;
        }
        pt->started = true;
    }
    return 0;
}

void sched_notify(sched *s, sched_task *t) {
    int st = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        if (st == SCHED_S_RUNNING) {
            if (atomic_compare_exchange_weak(&t->state, &st, SCHED_S_NOTIFIED)) return;
        } else if (st == SCHED_S_IDLE) {
            if (atomic_compare_exchange_weak(&t->state, &st, SCHED_S_QUEUED)) break;
        } else {
            return; /* queued, already notified, or done */
        }
    }
    pthread_mutex_lock(&s->lock);
    heap_remove(s, t);
    rq_push(s, t, false);
    pthread_mutex_unlock(&s->lock);
}

void sched_hold_wakeups(sched *s, bool hold) {
    if (hold) {
        holding = s;
        return;
    }
    holding = NULL;
    pthread_mutex_lock(&s->lock);
    /* a thread that parked since saw the queued tasks and did not park */
    int n = s->held_signals < s->parked ? s->held_signals : s->parked;
    s->held_signals = 0;
    for (int i = 0; i < n; i++) {
        s->wakeups++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->lock);
}

void sched_notify_all(sched *s) {
    pthread_mutex_lock(&s->lock);
    int n = s->nall;
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < n; i++) sched_notify(s, s->all[i]); /* all[] only grows before the threads start */
}

int sched_task_busy(const sched_task *t) {
    int st = atomic_load(&((sched_task *)t)->state);
    return st == SCHED_S_QUEUED || st == SCHED_S_RUNNING || st == SCHED_S_NOTIFIED;
}

int sched_live(sched *s) {
    pthread_mutex_lock(&s->lock);
    int n = s->live;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void sched_get_stats(sched *s, sched_stats *out) {
    pthread_mutex_lock(&s->lock);
    out->slices = s->slices;
    out->parks = s->parks;
    out->wakeups = s->wakeups;
    out->parked = s->parked;
    pthread_mutex_unlock(&s->lock);
}

void sched_stop(sched *s) {
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->nthreads; i++) {
        if (s->threads[i].started) pthread_join(s->threads[i].tid, NULL);
        s->threads[i].started = false;
    }
}

void sched_free(sched *s) {
    if (!s) return;
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    free(s->threads);
    free(s->heap);
    free(s->all);
    free(s);
}

/* ---- how many threads ----------------------------------------------------------------- */

/* the cgroup v2 cpu.max quota of this process's cgroup or an ancestor, in
 * CPUs rounded up; 0 when there is none */
static int cgroup_cpus(void) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 0;
    char line[4096], path[4096] = "";
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(path, sizeof path, "%s", line + 3);
            path[strcspn(path, "\n")] = '\0';
        }
    }
    fclose(f);
    int best = 0;
    for (;;) {
        char file[4200];
        snprintf(file, sizeof file, "/sys/fs/cgroup%s/cpu.max", strcmp(path, "/") == 0 ? "" : path);
        FILE *m = fopen(file, "r");
        if (m) {
            char quota[32];
            long long period = 0;
            if (fscanf(m, "%31s %lld", quota, &period) == 2 && strcmp(quota, "max") != 0 && period > 0) {
                long long q = atoll(quota);
                int cpus = (int)((q + period - 1) / period);
                if (q > 0 && (best == 0 || cpus < best)) best = cpus;
            }
            fclose(m);
        }
        char *slash = strrchr(path, '/');
        if (!slash || path[0] == '\0' || strcmp(path, "/") == 0) break;
        if (slash == path) strcpy(path, "/");
        else *slash = '\0';
    }
    return best;
}

int sched_default_threads(int sharing) {
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (sharing > 1) n /= sharing;
    if (n < 1) n = 1;
    int q = cgroup_cpus();
    if (q > 0 && q < n) n = q;
    return n;
}
