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

static int run_slice(void *arg, sched_task *t, void *data, int64_t *wake_at) {
    (void)arg;
    executor *ex = EXEC_OF(t);
    exec_thread *th = data;
    if (!th) {
        /* this thread has no buffers: let another one run the task */
        *wake_at = now_ns() + 1000000;
        return SCHED_WAIT;
    }
    ex->th = th;
    int rc;
    if (!ex->opened && !task_open(ex)) {
        rc = SCHED_DONE;
    } else if (atomic_load_explicit(&ex->rt->stopping, memory_order_acquire)) {
        task_close(ex);
        rc = SCHED_DONE;
    } else {
        rc = ex->comp->kind == SD_SPOUT ? spout_slice(ex, wake_at) : bolt_slice(ex, wake_at);
    }
    ex->th = NULL;
    if (rc == SCHED_DONE) atomic_store(&ex->done, true);
    return rc;
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
    for (int i = 0; i < rt->nexecs; i++) {
        executor *ex = rt->execs[i];
        ex->room.wake = on_room;
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

void runner_wake_all(worker_rt *rt) {
    if (rt->sched) sched_notify_all(rt->sched);
}

void runner_stop(worker_rt *rt) {
    if (!rt->sched) return;
    sched_stop(rt->sched);
    sched_free(rt->sched);
    rt->sched = NULL;
}
