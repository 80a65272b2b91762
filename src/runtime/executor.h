/*
 * executor: runs one task of a component on a thread of its own.
 *
 * Thread: the executor thread owns everything in struct executor except
 * the atomics (read by the worker's loop thread for heartbeats) and inq
 * (pushed to by other threads). Spout, bolt and acker tasks share the
 * outgoing side (emit.h) and differ in their main loop (executor_spout.c,
 * executor_bolt.c; executor_internal.h); executor.c sets a task up and
 * runs its thread.
 */
#ifndef SD_EXECUTOR_H
#define SD_EXECUTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "runtime/latency_hist.h"
#include "runtime/queue.h"
#include "runtime/runtime.h"
#include "base/agemap.h"
#include "base/u64map.h"

struct sd_context { struct executor *ex; };
struct sd_collector { struct executor *ex; };

typedef struct executor {
    worker_rt *rt;
    int task, task_index;
    const topo_component *comp;
    const sd_component_def *def;  /* NULL for the acker */
    void *state;
    queue *inq;
    pthread_t thread;
    int thread_started;
    struct sd_context ctx;
    struct sd_collector col;

    /* outgoing, flushed at the end of every round */
    tuple_batch **local_out;      /* [ntasks + 1], by destination task */
    int *local_dirty, nlocal_dirty;  /* destinations with a batch this round */
    char *local_listed;           /* [ntasks + 1]: dest is in local_dirty */
    /* [2 * worker + sys]: tuples for that worker; sys = acking tuples,
     * which are sent without waiting (acks must never wait for data) */
    sd_tuple ***remote_out;
    uint32_t *remote_n;
    uint32_t remote_cap;
    /* spout: msg ids to ack right after next_tuple (no acker, no subscriber) */
    uint64_t *deferred_acks;
    size_t ndeferred, deferred_cap;
    /* strings handed to the component (resolved paths), freed with the task */
    char **owned;
    int nowned;
    struct tuple_pool *pool;      /* tuples this task emits are carved from it */
    int last_stream_id;           /* the stream last emitted on (-1: none yet) */
    /* system stream ids, resolved once */
    int sid_ack_init, sid_ack_ack, sid_ack_fail, sid_ack_done, sid_tick;
    /* groupings */
    uint64_t rng;
    uint32_t rr;
    uint32_t *sent_to;            /* [ntasks + 1]: partial-key load estimate */
    int *dests;                   /* [rt->max_fanout]: destinations of one emit */
    int last_ndest;               /* entries of dests the last user emit filled */
    tuple_anchor *anc;            /* anchors of one emitted tuple (grows) */
    size_t anc_cap;
    int64_t round_ns;             /* spout: the clock read once per round */

    /* spout: trees in flight and the order they were emitted in */
    u64map pending;
    uint64_t *fifo;               /* ring of root ids in emit order */
    size_t fifo_cap, fifo_head, fifo_len;
    int last_next;                /* last next_tuple result */
    int deactivated;              /* deactivate callback already called */
    /* acker */
    agemap acks;
    int64_t next_expiry_ns;
    int64_t next_tick_ns;

    /* statistics, read by the heartbeat (relaxed atomics) */
    /* received: tuples taken from the queue (bolts); executed: of those,
     * handed to execute (ticks are not counted: they are not work) */
    atomic_uint_fast64_t emitted, transferred, received, executed, acked, failed, failed_final, errors;
    atomic_int pending_count;
    atomic_bool exhausted;
    atomic_bool done;             /* thread finished cleanup */
    atomic_uint_fast64_t lat_hist[LAT_BUCKETS]; /* spout complete latency (latency_hist.h) */
    atomic_uint_fast64_t lat_max_us;
} executor;

/* Statistics have one writer (the executor thread) and are read by the
 * heartbeat: a plain relaxed load and store, not a locked add, which cost a
 * fifth of the emit path. */
#define STAT_ADD(c, n) \
    atomic_store_explicit(&(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n), memory_order_relaxed)

executor *executor_new(worker_rt *rt, int task); /* NULL on error (logged) */
int executor_start(executor *ex);  /* starts the thread; 0 or -1 */
void executor_free(executor *ex);  /* after the thread has ended */

/* a random non-zero id (root and edge ids), executor thread only */
uint64_t executor_random(executor *ex);

/* latency percentile (0..1) in microseconds from the histogram */
uint64_t executor_latency_us(executor *ex, double q);

/* acker.c: handles one tuple addressed to an acker task */
void acker_execute(executor *ex, sd_tuple *t);
/* acker.c: drops entries older than the message timeout */
void acker_expire(executor *ex, int64_t now);

/* grouping.c: destination tasks of one target for a tuple with these
 * values; returns the count written to out (capacity: target->ntasks) */
int grouping_choose(executor *ex, const route_target *target, const sd_value *values, size_t n,
                    int *out);

#endif
