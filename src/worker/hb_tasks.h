/*
 * hb_tasks: the "task_columns" of a worker heartbeat (proto/task_columns.h):
 * every task's counters, queue depth, pending trees, exhaustion, the task it
 * runs chained to, and a spout's complete latency, as columns. Called by
 * worker.c once a heartbeat interval.
 */
#ifndef SD_HB_TASKS_H
#define SD_HB_TASKS_H

#include <jansson.h>
#include <stdint.h>

#include "runtime/runtime.h"

/* The task columns of every task of rt (a new object; NULL on allocation
 * failure); adds the tuples moved so far (emitted + executed + acked +
 * failed, over the tasks) into *activity. */
json_t *hb_task_columns(worker_rt *rt, uint64_t *activity);

#endif
