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

int runner_threads(const conf *c, int sharing) {
    const char *env = getenv("STREAMD_EXECUTOR_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 4096) return (int)n;
        log_warn("STREAMD_EXECUTOR_THREADS=%s is not a thread count from 1 to 4096; ignored", env);
    }
    int64_t n = conf_int_or(c, "worker.executor.threads", 0);
    return n >= 1 ? (int)n : sched_default_threads(sharing);
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
 * the k-th task of component c here, and only it (grouping.c sends a
 * producer's tuples to the task chained to it). Only when this worker runs
 * as many tasks of each, and every worker running a task of `from` runs one
 * of c too, so no producer anywhere falls back to a shuffle that could
 * reach a chained task through its queue. Sets the pairs' chain_prev; work
 * in the two components' parallelism (this runs once per component, not per
 * task: a per-task search grows with tasks^2). 0 or -ENOMEM. */
static int local_pairs(worker_rt *rt, const topo_component *from, const topo_component *c) {
    bool *runs_c = calloc((size_t)rt->nworkers, sizeof *runs_c);
    if (!runs_c) return -ENOMEM;
    int nmine = 0, nfrom = 0;
    for (int j = 0; j < c->parallelism; j++) {
        int w = rt->task_worker[c->first_task + j];
        if (w >= 0 && w < rt->nworkers) runs_c[w] = true;
        nmine += w == rt->worker_index;
    }
    bool ok = true;
    for (int j = 0; j < from->parallelism && ok; j++) {
        int w = rt->task_worker[from->first_task + j];
        ok = w >= 0 && w < rt->nworkers && runs_c[w];
        nfrom += w == rt->worker_index;
    }
    free(runs_c);
    if (!ok || nfrom != nmine) return 0;
    /* pair them in task order */
    int jf = 0;
    for (int j = 0; j < c->parallelism; j++) {
        executor *ex = rt->task_exec[c->first_task + j];
        if (!ex) continue;
        while (!rt->task_exec[from->first_task + jf]) jf++; /* nfrom == nmine: one is left */
        ex->chain_prev = rt->task_exec[from->first_task + jf++];
    }
    return 0;
}

/* Lists every chained task with its chain's head, upstream first (by depth,
 * then in execs order), in time linear in the tasks: each task's depth and
 * head are found once (a walk per task and per depth grows with
 * tasks x depth^2 on a long chain). */
static int list_members(worker_rt *rt) {
    int ntasks = rt->topo->ntasks, n = rt->nexecs;
    int *depth = calloc((size_t)ntasks + 1, sizeof *depth); /* 0: not known yet */
    executor **head = calloc((size_t)ntasks + 1, sizeof *head);
    executor **path = malloc(((size_t)n + 1) * sizeof *path);
    int *count = calloc((size_t)n + 2, sizeof *count);
    executor **order = malloc(((size_t)n + 1) * sizeof *order);
    int rc = depth && head && path && count && order ? 0 : -ENOMEM;
    for (int i = 0; i < n && rc == 0; i++) {
        int np = 0;
        executor *x = rt->execs[i];
        while (x && !depth[x->task]) { /* up to a task whose depth is known, or the head */
            path[np++] = x;
            x = x->chain_prev;
        }
        /* a head has depth 1; chained tasks below it 2, 3, ... */
        int d = x ? depth[x->task] : 0;
        executor *h = x ? (head[x->task] ? head[x->task] : x) : NULL;
        while (np > 0) {
            executor *y = path[--np];
            depth[y->task] = ++d;
            head[y->task] = d > 1 ? h : NULL;
            if (d == 1) h = y;
        }
    }
    /* counting sort on depth, stable */
    for (int i = 0; i < n && rc == 0; i++) count[depth[rt->execs[i]->task]]++;
    for (int d = 1; d <= n + 1 && rc == 0; d++) count[d] += count[d - 1];
    for (int i = n - 1; i >= 0 && rc == 0; i--) order[--count[depth[rt->execs[i]->task]]] = rt->execs[i];
    for (int i = 0; i < n && rc == 0; i++) {
        executor *ex = order[i], *h = head[ex->task];
        if (!h) continue;
        executor **grown = realloc(h->members, (size_t)(h->nmembers + 1) * sizeof *grown);
        if (!grown) {
            rc = -ENOMEM;
            break;
        }
        h->members = grown;
        h->members[h->nmembers++] = ex;
        ex->chain_head = h;
        rt->nchained++;
    }
    free(depth);
    free(head);
    free(path);
    free(count);
    free(order);
    return rc;
}

/* topology.chaining: a bolt whose only input is a forward grouping from a
 * task of this worker, or a local_or_shuffle one it can be paired 1:1 on
 * (local_pairs), joins that task's chain. Members are listed with
 * their head, upstream first (depth order). */
static int plan_chains(worker_rt *rt) {
    if (!conf_bool(rt->conf, "topology.chaining")) return 0;
    const topology *t = rt->topo;
    bool *paired = calloc((size_t)t->ncomponents, sizeof *paired);
    if (!paired) return -ENOMEM;
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
        } else if (c->inputs[0].grouping == GROUP_LOCAL_OR_SHUFFLE && !paired[c->index]) {
            paired[c->index] = true; /* once per component */
            if (local_pairs(rt, from, c) != 0) {
                free(paired);
                return -ENOMEM;
            }
        }
    }
    free(paired);
    return list_members(rt);
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
