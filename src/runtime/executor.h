/*
 * executor: one task of a component, run in slices by a pool thread
 * (runner.h, sched.h).
 *
 * Threads: whichever pool thread runs the task's slice owns everything in
 * struct executor except the atomics (read by the worker's loop thread for
 * heartbeats) and inq (pushed to by other threads); one thread at a time,
 * so component code stays single-threaded. What a slice emits is gathered
 * in that pool thread's exec_thread and handed over by the end of the
 * slice. Spout, bolt and acker tasks share the outgoing side (emit.h) and
 * differ in their slice (executor_spout.c, executor_bolt.c;
 * executor_internal.h); executor.c sets a task up and frees it.
 */
#ifndef SD_EXECUTOR_H
#define SD_EXECUTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "runtime/ack_stage.h"
#include "runtime/latency_hist.h"
#include "runtime/queue.h"
#include "runtime/runtime.h"
#include "base/agemap.h"
#include "runtime/sched.h"
#include "base/u64map.h"
#include "runtime/spout_trees.h"

struct sd_context { struct executor *ex; };
struct sd_collector { struct executor *ex; };

/* Levels of chained tasks called one inside another's emit (emit.c);
 * deeper, they take the chain's queue. */
#define CHAIN_CALL_DEPTH 32

/* A pool thread's outgoing side, used by the task it runs: batches for
 * local tasks and remote workers are gathered here and handed over by the
 * end of each slice, so their size is threads x tasks, not tasks x tasks. */
typedef struct exec_thread {
    tuple_batch **local_out;      /* [ntasks + 1], by destination task */
    int *local_dirty, nlocal_dirty;  /* destinations with a batch this slice */
    char *local_listed;           /* [ntasks + 1]: dest is in local_dirty */
    /* [worker]: data tuples for that worker, encoded as they are emitted
     * (no tuple is built for them), handed to the transport once they hold
     * recs_batch bytes or by the end of the slice */
    transport_records *remote_recs;
    size_t recs_batch, record_limit;
    /* [worker]: acking tuples for that worker, sent without waiting (acks
     * must never wait for data) */
    sd_tuple ***remote_acks;
    uint32_t *remote_nacks;
    uint32_t remote_cap;
    int *dests;                   /* [rt->max_fanout]: destinations of one emit */
    tuple_anchor *anc;            /* anchors of one emitted tuple (grows) */
    size_t anc_cap;
    struct tuple_pool *pool;      /* tuples emitted on this thread are carved from it */
    int nworkers, ntasks;         /* the sizes above */
    /* tuples for chained tasks, executed in order once the emitting
     * callback has returned (emit_chain_run) */
    struct chain_item { struct executor *to; sd_tuple *t; } *chainq;
    size_t chain_n, chain_pos, chain_cap;
    /* chained tuples executed this slice, released together by the end of
     * it: one atomic operation per run of a slab's tuples, not one each */
    tuple_releaser chain_rel;
    /* views handed to chained tasks by calls (emit.c, with acking off):
     * one per level of calls in progress, view_depth of them in use;
     * allocated on first use */
    sd_tuple *views[CHAIN_CALL_DEPTH];
    int view_depth;
    /* acking records of this slice, sent as packets by emit_flush */
    ack_stage acks;
    /* the task running on this thread that sends the stage's packets: a
     * packet is from the task that made its records, but is routed (its
     * counters, its stalled batches) by the task running now */
    struct executor *acks_by;
} exec_thread;

typedef struct executor {
    worker_rt *rt;
    int task, task_index;
    const topo_component *comp;
    const sd_component_def *def;  /* NULL for the acker */
    void *state;
    queue *inq;
    struct sd_context ctx;
    struct sd_collector col;

    /* scheduling */
    sched_task st;                /* its place in the pool (runner.c) */
    bool started;                 /* handed to the pool */
    bool opened;                  /* open has run */
    exec_thread *th;              /* the pool thread running it (during a slice) */
    tuple_batch *held;            /* input taken but not executed yet (bolts) */
    uint32_t held_pos;            /* executed items of the first held batch */
    /* batches a full queue did not take, oldest first: delivered before
     * anything else runs (backpressure without blocking a pool thread) */
    tuple_batch *stalled_head, *stalled_tail;
    queue_waiter room;            /* waiting for room in a full queue */
    /* operator chaining (runner.c): a bolt fed only by a forward grouping
     * from a task of this worker runs inside that task's slices, its
     * input handed over without a queue; the head of a chain owns the
     * stalled batches of all its members */
    struct executor *chain_prev;  /* the task feeding it inline, or NULL */
    struct executor *chain_head;  /* the task whose slices run it, or NULL */
    struct executor **members;    /* head: the tasks it runs, upstream first */
    int nmembers;
    /* spout: msg ids to ack right after next_tuple (no acker, no subscriber) */
    uint64_t *deferred_acks;
    size_t ndeferred, deferred_cap;
    /* strings handed to the component (resolved paths), freed with the task */
    char **owned;
    int nowned;
    int last_stream_id;           /* the stream last emitted on (-1: none yet) */
    int default_stream_id;        /* the component's default stream (-1: it has none) */
    /* a stream whose every emit goes to one task chained to this one
     * (a forward or local-or-shuffle grouping: emit.c skips choosing), and
     * that task; -1 while none is known */
    int chain_stream, chain_task;
    struct executor *chain_to;    /* the executor of chain_task */
    bool unanchored;              /* the worker has no ackers: emits take emit_plain */
    /* system stream ids, resolved once */
    int sid_ack_init, sid_ack_ack, sid_ack_fail, sid_ack_done, sid_tick;
    /* groupings */
    uint64_t rng;
    uint32_t rr;
    struct pk_load **pk_loads;    /* partial-key load estimates, one per such target (grouping.c) */
    int npk_loads;
    int last_ndest;               /* entries of th->dests the last user emit filled */
    int64_t round_ns;             /* spout: the clock read once per slice */

    /* spout: trees in flight and the order they were emitted in */
    spout_trees pending;
    uint64_t *fifo;               /* ring of root ids in emit order (fifo_cap: a power of two) */
    size_t fifo_cap, fifo_head, fifo_len;
    int last_next;                /* last next_tuple result */
    int deactivated;              /* deactivate callback already called */
    /* acker */
    agemap acks;
    int64_t next_expiry_ns;
    int64_t next_tick_ns;
    int64_t next_idle_ns;       /* multi-lang bolts: next idle call (executor_bolt.c) */

    /* statistics, read by the heartbeat (relaxed atomics) */
    /* received: tuples taken from the queue (bolts); executed: of those,
     * handed to execute (ticks are not counted: they are not work) */
    atomic_uint_fast64_t emitted, transferred, received, executed, acked, failed, failed_final, errors;
    atomic_int pending_count;
    atomic_size_t held_count;     /* tuples taken from the queue, not executed yet */
    atomic_bool exhausted;
    atomic_bool done;             /* cleanup finished (or open failed) */
    atomic_uint_fast64_t *lat_hist; /* [LAT_BUCKETS], spouts only: complete latency (latency_hist.h) */
    atomic_uint_fast64_t lat_max_us;
} executor;

/* Statistics have one writer (the executor thread) and are read by the
 * heartbeat: a plain relaxed load and store, not a locked add, which cost a
 * fifth of the emit path. */
#define STAT_ADD(c, n) \
    atomic_store_explicit(&(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n), memory_order_relaxed)

executor *executor_new(worker_rt *rt, int task); /* NULL on error (logged) */
void executor_free(executor *ex);  /* after the pool has stopped */

/* A pool thread's outgoing buffers (NULL when out of memory), and their end
 * (on that thread, after every task has flushed). */
exec_thread *exec_thread_new(const worker_rt *rt);
void exec_thread_free(exec_thread *th);

/* a random non-zero id (root and edge ids), executor thread only */
uint64_t executor_random(executor *ex);

/* latency percentile (0..1) in microseconds from the histogram */
uint64_t executor_latency_us(executor *ex, double q);

/* acker.c: handles one packet of acking records addressed to an acker task */
void acker_execute(executor *ex, sd_tuple *t);
/* acker.c: drops entries older than the message timeout */
void acker_expire(executor *ex, int64_t now);

/* grouping.c: destination tasks of one target for a tuple with these
 * values; returns the count written to out (capacity: target->ntasks) */
/* A producer's partial-key load estimate has a counter per task of the
 * target, up to this many (task index modulo it beyond). */
#define PK_LOAD_SLOTS 1024
/* Frees what grouping_choose keeps in ex (load estimates). */
void grouping_free_state(executor *ex);
/* The bytes grouping_choose keeps in ex. */
size_t grouping_state_bytes(const executor *ex);
int grouping_choose(executor *ex, const route_target *target, const sd_value *values, size_t n,
                    int *out);
/* r modulo n without a division where n is 1 or a power of two (a
 * division is a fifth of a shuffle's cost per tuple): a shuffle's pick */
static inline uint32_t grouping_pick(uint32_t r, uint32_t n) {
    if ((n & (n - 1)) == 0) return r & (n - 1);
    return r % n;
}

#endif
