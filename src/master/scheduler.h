/*
 * scheduler: decides which node slot (host port) runs each worker of each
 * topology. A pure function of its inputs (no store, no clock, no I/O),
 * called by the leader's reconciler after any change to nodes, topologies
 * or assignments, and by unit tests.
 *
 * Rules:
 *  - sticky: a current worker keeps its slot while its node is alive, the
 *    port is still one of the node's slots and no earlier topology holds it;
 *    it also keeps its index in the worker list, so its tasks stay the same;
 *  - the other workers go to free slots, spread over nodes: first nodes that
 *    run fewer of the topology's workers, then the least loaded node (used
 *    slots / slots), then the node id; its lowest free port;
 *  - topologies are served oldest first (submit time, then id), so when
 *    slots run short the newest go without; a topology that cannot get all
 *    its workers gets as many as fit (a later run places the rest);
 *  - task t (1..ntasks) runs on worker (t-1) % nworkers, as in local mode.
 * The result does not depend on the order of the input arrays.
 * Cost: O((slots + workers) log nodes + tasks).
 */
#ifndef SD_SCHEDULER_H
#define SD_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

/* A live node and its slots (ports; invalid and repeated ports ignored). */
typedef struct sched_node {
    const char *id;
    const int *slots;
    int nslots;
} sched_node;

/* One worker of a stored assignment, in its order. */
typedef struct sched_place {
    const char *node;
    int port;
} sched_place;

typedef struct sched_topology {
    const char *id;
    int64_t submit_time;
    int nworkers;               /* wanted (<= 0: none) */
    int ntasks;                 /* tasks 1..ntasks */
    bool keep_only;             /* keep valid current workers, place none (being killed) */
    const sched_place *current; /* the stored assignment's workers (may be NULL) */
    int ncurrent;
} sched_topology;

typedef struct sched_worker {
    int node; /* index into the nodes array passed in */
    int port;
    int ntasks;
    const int *tasks; /* ascending; points into the result */
} sched_worker;

typedef struct sched_assignment {
    int nworkers; /* placed, <= wanted */
    sched_worker *workers;
} sched_assignment;

typedef struct sched_result {
    sched_assignment *topologies; /* one per input topology, in input order */
    int ntopologies;
    int slots_total; /* valid slots over all nodes */
    int slots_used;
    /* storage */
    sched_worker *worker_buf;
    int *task_buf;
} sched_result;

/* Fills out (release with sched_result_free). 0, or -ENOMEM / -EINVAL (a
 * topology with ntasks < 0 or absurd sizes); out is then empty. */
int sched_run(const sched_node *nodes, int nnodes, const sched_topology *topos, int ntopos, sched_result *out);
void sched_result_free(sched_result *r);

#endif
