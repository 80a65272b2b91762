/* runner: see runner.h. */
#include "runtime/runner.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "runtime/emit.h"
#include "runtime/executor_internal.h"

#define EXEC_OF(t) ((executor *)((char *)(t) - offsetof(executor, st)))

int runner_threads(const conf *c) {
    const char *env = getenv("STREAMD_EXECUTOR_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 4096) return (int)n;
        log_warn("STREAMD_EXECUTOR_THREADS=%s is not a thread count from 1 to 4096; ignored", env);
    }
    int64_t n = conf_int_or(c, "worker.executor.threads", 0);
    return n >= 1 ? (int)n : sched_default_threads();
}

static void *thread_start(void *arg, int index) {
    worker_rt *rt = arg;
    exec_thread *th = exec_thread_new(rt);
    if (!th) log_error("executor thread %d: out of memory for its buffers; its tasks do not run", index);
    return th;
}

static void thread_stop(void *arg, void *data) {
    (void)arg;
    exec_thread_free(data);
}

/* the task's first slice; false when it cannot run */
static bool task_open(executor *ex) {
    ex->opened = true;
    if (ex->def && ex->def->open) {
        ex->state = ex->def->open(&ex->ctx, &ex->col);
        if (!ex->state) {
            log_task(SD_LOG_ERROR, ex->task, "%s '%s' (class %s) failed to open; the task does not run",
                     ex->comp->kind == SD_SPOUT ? "spout" : "bolt", ex->comp->id, ex->comp->class_name);
            STAT_ADD(ex->errors, 1);
            return false;
        }
    }
    if (ex->comp->kind == SD_SPOUT) spout_begin(ex);
    else bolt_begin(ex);
    return true;
}

/* the last slice: what was held back is delivered where queues still take
 * it (they are closed by now: it is dropped), then the close callback */
static void task_close(executor *ex) {
    emit_retry_stalled(ex);
    if (ex->def && ex->def->close) ex->def->close(ex->state, &ex->col);
    emit_flush(ex);
    emit_retry_stalled(ex);
}

/* a chain's members: opened after their head (they run only once it runs);
 * one that fails to open is done, and is fed through its queue (the
 * worker stops) */
static void members_open(executor *ex) {
    for (int i = 0; i < ex->nmembers; i++) {
        executor *m = ex->members[i];
        if (!task_open(m)) {
            m->chain_prev = NULL;
            atomic_store(&m->done, true);
        }
    }
}

/* closes the members after their head, upstream first: what a close emits
 * still reaches the tasks downstream of it */
static void members_close(executor *ex) {
    for (int i = 0; i < ex->nmembers; i++) {
        executor *m = ex->members[i];
        if (m->opened && !atomic_load(&m->done)) {
            if (m->def && m->def->close) m->def->close(m->state, &m->col);
            emit_chain_run(ex->th);
        }
        atomic_store(&m->done, true);
    }
    emit_flush(ex);
    emit_retry_stalled(ex);
}

/* members' ticks; the earliest next one */
static int64_t members_tick(executor *ex, int64_t wake) {
    int64_t now = now_ns();
    for (int i = 0; i < ex->nmembers; i++) {
        executor *m = ex->members[i];
        if (atomic_load(&m->done)) continue;
        int64_t next = bolt_tick_due(m, now);
        emit_chain_run(ex->th);
        if (next < wake) wake = next;
    }
    emit_flush(ex);
    return wake;
}

static void set_thread(executor *ex, exec_thread *th) {
    ex->th = th;
    for (int i = 0; i < ex->nmembers; i++) ex->members[i]->th = th;
}

static int run_slice(void *arg, sched_task *t, void *data, int64_t *wake_at) {
    (void)arg;
    executor *ex = EXEC_OF(t);
    exec_thread *th = data;
    if (!th) {
        /* this thread has no buffers: let another one run the task */
        *wake_at = now_ns() + 1000000;
        return SCHED_WAIT;
    }
    set_thread(ex, th);
    int rc;
    if (!ex->opened && !task_open(ex)) {
        rc = SCHED_DONE;
    } else if (atomic_load_explicit(&ex->rt->stopping, memory_order_acquire)) {
        task_close(ex);
        emit_chain_run(th);
        members_close(ex);
        rc = SCHED_DONE;
    } else {
        if (ex->nmembers && !ex->members[0]->opened) members_open(ex);
        rc = ex->comp->kind == SD_SPOUT ? spout_slice(ex, wake_at) : bolt_slice(ex, wake_at);
        if (th->chain_n) { /* what acks, fails or ticks emitted to members */
            emit_chain_run(th);
            emit_flush(ex);
        }
        if (ex->nmembers) *wake_at = members_tick(ex, *wake_at);
    }
    tuple_releaser_flush(&th->chain_rel);
    if (rc == SCHED_DONE) {
        for (int i = 0; i < ex->nmembers; i++) atomic_store(&ex->members[i]->done, true);
        atomic_store(&ex->done, true);
    }
    set_thread(ex, NULL);
    return rc;
}

/* local_or_shuffle, chained: the k-th task of `from` in this worker feeds
 * the k-th task of ex's component here, and only it (grouping.c sends a
 * producer's tuples to the task chained to it). Only when this worker runs
 * as many tasks of each, and every worker running a task of `from` runs one
 * of ex's component too, so no producer anywhere falls back to a shuffle that
 * could reach a chained task through its queue. NULL otherwise. */
static executor *local_pair(worker_rt *rt, const topo_component *from, executor *ex) {
    const topo_component *c = ex->comp;
    int nfrom = 0, nmine = 0, k = -1;
    executor *up = NULL;
    for (int j = 0; j < c->parallelism; j++) {
        int task = c->first_task + j;
        if (rt->task_worker[task] != rt->worker_index) continue;
        if (task == ex->task) k = nmine;
        nmine++;
    }
    for (int j = 0; j < from->parallelism; j++) {
        int task = from->first_task + j;
        int w = rt->task_worker[task];
        bool has_mine = false;
        for (int m = 0; m < c->parallelism && !has_mine; m++) has_mine = rt->task_worker[c->first_task + m] == w;
        if (!has_mine) return NULL;
        if (w != rt->worker_index) continue;
        if (nfrom == k) up = rt->task_exec[task];
        nfrom++;
    }
    return nfrom == nmine ? up : NULL;
}

/* topology.chaining: a bolt whose only input is a forward grouping from a
 * task of this worker, or a local_or_shuffle one it can be paired 1:1 on
 * (local_pair), joins that task's chain. Members are listed with
 * their head, upstream first (depth order). */
static int plan_chains(worker_rt *rt) {
    if (!conf_bool(rt->conf, "topology.chaining")) return 0;
    const topology *t = rt->topo;
    for (int i = 0; i < rt->nexecs; i++) {
        executor *ex = rt->execs[i];
        const topo_component *c = ex->comp;
        if (c->kind != SD_BOLT || c->is_acker || c->ninputs != 1) continue;
        const topo_component *from = &t->components[c->inputs[0].from_component];
        if (from->is_acker) continue;
        if (c->inputs[0].grouping == GROUP_FORWARD) {
            if (ex->task_index >= from->parallelism) continue;
            executor *up = rt->task_exec[from->first_task + ex->task_index];
            if (up) ex->chain_prev = up;
        } else if (c->inputs[0].grouping == GROUP_LOCAL_OR_SHUFFLE) {
            ex->chain_prev = local_pair(rt, from, ex);
        }
    }
    for (int depth = 1;; depth++) {
        int added = 0;
        for (int i = 0; i < rt->nexecs; i++) {
            executor *ex = rt->execs[i];
            if (!ex->chain_prev) continue;
            int d = 1;
            executor *head = ex->chain_prev;
            while (head->chain_prev) {
                head = head->chain_prev;
                d++;
            }
            if (d != depth) continue;
            executor **grown = realloc(head->members, (size_t)(head->nmembers + 1) * sizeof *grown);
            if (!grown) return -ENOMEM;
            head->members = grown;
            head->members[head->nmembers++] = ex;
            ex->chain_head = head;
            rt->nchained++;
            added++;
        }
        if (!added) break;
    }
    return 0;
}

static void on_input(void *arg) {
    executor *ex = arg;
    sched_notify(ex->rt->sched, &ex->st);
}

static void on_room(queue_waiter *w) {
    executor *ex = (executor *)((char *)w - offsetof(executor, room));
    sched_notify(ex->rt->sched, &ex->st);
}

int runner_start(worker_rt *rt, int nthreads) {
    sched_ops ops = {.run = run_slice, .thread_start = thread_start, .thread_stop = thread_stop, .arg = rt};
    rt->sched = sched_new(nthreads, &ops, "exec");
    if (!rt->sched) {
        log_error("cannot make a pool of %d executor threads", nthreads);
        return -ENOMEM;
    }
    rt->nthreads = nthreads;
    if (plan_chains(rt) != 0) {
        log_error("out of memory planning chained tasks");
        return -ENOMEM;
    }
    if (rt->nchained) log_info("%d tasks run chained to the task that feeds them (topology.chaining)", rt->nchained);
    for (int i = 0; i < rt->nexecs; i++) {
        executor *ex = rt->execs[i];
        ex->room.wake = on_room;
        if (ex->chain_prev) { /* runs inside its head's slices */
            ex->started = true;
            continue;
        }
        queue_set_consumer(ex->inq, on_input, ex);
        int rc = sched_add(rt->sched, &ex->st, ex->comp->is_acker ? 1 : 0);
        if (rc != 0) {
            log_error("cannot schedule task %d: %s", ex->task, strerror(-rc));
            return rc;
        }
        ex->started = true;
    }
    int rc = sched_start(rt->sched);
    if (rc != 0) {
        log_error("cannot start the executor threads: %s", strerror(-rc));
        return rc;
    }
    return 0;
}

bool runner_task_busy(const executor *ex) {
    return atomic_load_explicit(&ex->held_count, memory_order_relaxed) > 0 || sched_task_busy(&ex->st);
}

void runner_hold_wakeups(worker_rt *rt, bool hold) {
    if (rt->sched) sched_hold_wakeups(rt->sched, hold);
}

void runner_wake_all(worker_rt *rt) {
    if (rt->sched) sched_notify_all(rt->sched);
}

void runner_stop(worker_rt *rt) {
    if (!rt->sched) return;
    sched_stop(rt->sched);
    sched_free(rt->sched);
    rt->sched = NULL;
}
