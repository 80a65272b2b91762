/*
 * wire_check_world: the runtime that wire_check judges received tuples
 * against, as worker 1 of the word count test topology
 * (test/data/wordcount.yaml, 10 tasks) laid out on two workers. Shared by
 * the unit test (test/unit/test_wire_check.c) and the fuzz target
 * (test/fuzz/fuzz_tuple_check.c).
 */
#ifndef SD_WIRE_CHECK_WORLD_H
#define SD_WIRE_CHECK_WORLD_H

#include "runtime/wire_check.h"

#define WCW_TASKS 10

/* the worker of each task: lines 1-2, split 3-5, count 6-7, sink 8, __acker 9-10 */
static const int wcw_on_worker[WCW_TASKS + 1] = {-1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1};

/* Lays topo (the loaded word count) out in rt (zeroed by the caller) as
 * worker 1 of 2, with the caller's tables (WCW_TASKS + 1 entries each), and
 * builds its routes: 0 or what routes_build returned. */
static inline int wcw_layout(worker_rt *rt, topology *topo, int *task_worker, struct executor **task_exec) {
    rt->topo = topo;
    rt->worker_index = 1;
    rt->nworkers = 2;
    for (int t = 0; t <= WCW_TASKS; t++) {
        task_worker[t] = wcw_on_worker[t];
        /* wire_check only asks whether a task has an executor here */
        task_exec[t] = t > 0 && wcw_on_worker[t] == 1 ? (struct executor *)rt : NULL;
    }
    rt->task_worker = task_worker;
    rt->task_exec = task_exec;
    return routes_build(rt);
}

#endif
