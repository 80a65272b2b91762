/*
 * hb_tasks: the task counters of a worker heartbeat (see hb_tasks.h).
 * Runs on the worker's loop thread; reads the executors' counters, which
 * their pool threads write, with relaxed atomic loads (a heartbeat is a
 * snapshot, not a consistent cut).
 */
#include "worker/hb_tasks.h"

#include <stdlib.h>

#include "proto/task_columns.h"
#include "runtime/executor.h"
#include "runtime/queue.h"

#define LOAD(x) ((json_int_t)atomic_load_explicit(&(x), memory_order_relaxed))

json_t *hb_task_columns(worker_rt *rt, uint64_t *activity) {
    size_t n = (size_t)rt->nexecs;
    int *ids = malloc((n ? n : 1) * sizeof *ids);
    int64_t *vals = calloc((n ? n : 1) * TCOL_COUNT, sizeof *vals);
    json_t *out = NULL;
    if (ids && vals) {
        for (size_t i = 0; i < n; i++) {
            executor *ex = rt->execs[i];
            int64_t *v = &vals[i * TCOL_COUNT];
            ids[i] = ex->task;
            v[TCOL_EMITTED] = (int64_t)LOAD(ex->emitted);
            v[TCOL_TRANSFERRED] = (int64_t)LOAD(ex->transferred);
            v[TCOL_RECEIVED] = (int64_t)LOAD(ex->received);
            v[TCOL_EXECUTED] = (int64_t)LOAD(ex->executed);
            v[TCOL_ACKED] = (int64_t)LOAD(ex->acked);
            v[TCOL_FAILED] = (int64_t)LOAD(ex->failed);
            v[TCOL_FAILED_FINAL] = (int64_t)LOAD(ex->failed_final);
            v[TCOL_PENDING] = atomic_load(&ex->pending_count);
            v[TCOL_QUEUE] = (int64_t)(queue_depth(ex->inq) + atomic_load(&ex->held_count));
            v[TCOL_EXHAUSTED] = atomic_load(&ex->exhausted);
            v[TCOL_ERRORS] = (int64_t)LOAD(ex->errors);
            /* shown by local mode's summary and `streamd status` */
            v[TCOL_CHAINED_TO] = ex->chain_prev ? ex->chain_prev->task : 0;
            if (ex->comp->kind == SD_SPOUT) {
                v[TCOL_LAT_P50] = (int64_t)executor_latency_us(ex, 0.5);
                v[TCOL_LAT_P99] = (int64_t)executor_latency_us(ex, 0.99);
                v[TCOL_LAT_P999] = (int64_t)executor_latency_us(ex, 0.999);
                v[TCOL_LAT_MAX] = (int64_t)LOAD(ex->lat_max_us);
            }
            *activity += (uint64_t)(v[TCOL_EMITTED] + v[TCOL_EXECUTED] + v[TCOL_ACKED] + v[TCOL_FAILED]);
        }
        out = tcol_encode(ids, vals, n);
    }
    free(ids);
    free(vals);
    return out;
}

