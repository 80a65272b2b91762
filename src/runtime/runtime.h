/*
 * runtime: the state of one worker process that its executors share.
 * Built by worker.c before any executor thread starts and read-only after
 * that (except the atomics), so executors read it without locks.
 */
#ifndef SD_RUNTIME_H
#define SD_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/conf.h"
#include "topology/topology.h"
#include "transport/transport.h"

struct executor;
struct sched;

/* one subscriber (a bolt's input) of a stream */
typedef struct route_target {
    const topo_component *comp;
    const topo_input *input;
    int ntasks;          /* comp->parallelism; tasks first_task.. */
    int nlocal;          /* those running in this worker */
    int *local_tasks;
} route_target;

typedef struct stream_routes {
    int ntargets;
    route_target *targets;
    int *sub_comps;      /* [ntargets]: the subscribers' component indexes, ascending */
} stream_routes;

/* what a stream carries, for the executors' fast checks */
enum { STREAM_USER = 0, STREAM_ACK_INIT, STREAM_ACK_ACK, STREAM_ACK_FAIL, STREAM_ACK_DONE, STREAM_TICK };

typedef struct worker_rt {
    const topology *topo;
    const conf *conf;
    const char *topology_id;
    int worker_index, nworkers;
    int *task_worker;             /* [ntasks + 1]: worker index of each task */
    struct executor **task_exec;  /* [ntasks + 1]: this worker's executors, else NULL */
    int nexecs;
    struct executor **execs;
    stream_routes *routes;        /* [nstreams] */
    const topo_component **task_comp; /* [ntasks + 1]: each task's component ([0] NULL) */
    uint8_t *stream_kind;         /* [nstreams]: STREAM_* */
    int max_fanout;               /* most destination tasks one emit can have */
    const topo_component *acker;  /* NULL when acking is off */
    transport *tr;                /* NULL with a single worker */
    struct sched *sched;          /* the pool running the executors (runner.h) */
    int nthreads;                 /* its threads */
    int nchained;                 /* tasks run inside another task's slices (topology.chaining) */
    /* configuration read once */
    uint32_t batch_size;
    uint32_t slice_tuples;        /* most tuples a task handles in one slice */
    int64_t timeout_ns, tick_ns, spout_idle_ns;
    int max_pending;
    size_t spout_hold_bytes;      /* spouts emit nothing while tuples alive exceed it (0: no limit) */
    /* lifecycle, written by the loop thread */
    atomic_bool active;           /* spouts call next_tuple */
    atomic_bool stopping;         /* executors clean up and exit */
    atomic_int throttle_votes;    /* workers asking the spouts to pause (backpressure) */
} worker_rt;

/* Builds rt->routes from the topology and rt->task_worker. 0 or -1. */
int routes_build(worker_rt *rt);
/* Does component comp subscribe to stream (a valid id)? */
bool routes_subscribed(const worker_rt *rt, int stream, int comp);
void routes_free(worker_rt *rt);

#endif
